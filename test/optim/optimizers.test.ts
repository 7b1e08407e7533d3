/**
 * Every optimizer and every option against plain-number references of the update rules (reference.ts), on a
 * replayed gradient sequence; plus a few end values produced once by PyTorch 1.13 (torch.optim, float64) and
 * pasted as literals, which checks that the references read the algorithms the way PyTorch runs them.
 * Also: null gradients are skipped, groups with different lr, zeroGrad, closures, argument errors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { noGrad } from "../../src/core/trace.ts";
import { AutodiffError, DTypeError, ShapeError } from "../../src/errors.ts";
import { tensor, zeros } from "../../src/ops/creation.ts";
import { Adagrad } from "../../src/optim/adagrad.ts";
import { Adam, AdamW } from "../../src/optim/adam.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { RMSprop } from "../../src/optim/rmsprop.ts";
import { SGD } from "../../src/optim/sgd.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, F64, param, values } from "./helpers.ts";
import { refAdagrad, refAdam, refRMSprop, refSGD } from "./reference.ts";

const P0 = [0.5, -1.0, 2.0];
const G = [
  [0.1, -0.2, 0.3],
  [0.4, 0.0, -0.5],
  [-0.3, 0.25, 0.6],
  [0.05, -0.7, 0.2],
];
// a [2, 2] parameter, with five steps
const P0_22 = [
  [1.0, -0.5],
  [0.25, 3.0],
];
const G_22 = [
  [1.0, -2.0, 0.5, 0.1],
  [0.3, -0.1, -0.4, 0.2],
  [-0.6, 0.7, 0.05, -0.3],
  [0.2, 0.2, 0.2, 0.2],
  [-1.5, 0.4, 0.9, -0.05],
];

type Make = (p: Tensor) => Optimizer<{ lr: number }>;

/** Replay G on a fresh parameter and compare with the reference trajectory after every step. */
function check(name: string, make: Make, ref: number[][], p0: number[] | number[][] = P0, grads = G): void {
  const p = param(p0);
  const opt = make(p);
  grads.forEach((g, k) => {
    p.grad = tensor(g, F64).reshape(p.shape);
    opt.step();
    assertClose(values(p), ref[k], 1e-12, `${name} step ${k + 1}`);
  });
  assert.equal(p.requiresGrad, true);
  assert.equal(p.isLeaf, true, `${name}: the update must not record a graph`);
}

const sgdCases = [
  { lr: 0.1 },
  { lr: 0.1, weightDecay: 0.05 },
  { lr: 0.1, momentum: 0.9 },
  { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 },
  { lr: 0.05, momentum: 0.8, nesterov: true },
  { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.1, maximize: true },
  { lr: 0.2, maximize: true },
];
for (const h of sgdCases) {
  test(`SGD ${JSON.stringify(h)} follows the update rule`, () => {
    check("SGD", (p) => new SGD([p], h), refSGD(P0, G, h));
    check("SGD [2,2]", (p) => new SGD([p], h), refSGD(P0_22.flat(), G_22, h), P0_22, G_22);
  });
}

const adagradCases = [
  { lr: 0.1 },
  { lr: 0.1, lrDecay: 0.05 },
  { lr: 0.1, weightDecay: 0.1 },
  { lr: 0.1, initialAccumulatorValue: 0.2, eps: 1e-3 },
  { lr: 0.1, lrDecay: 0.05, weightDecay: 0.1, initialAccumulatorValue: 0.2, eps: 1e-10 },
  { lr: 0.1, maximize: true, weightDecay: 0.2 },
];
for (const h of adagradCases) {
  test(`Adagrad ${JSON.stringify(h)} follows the update rule`, () => {
    check("Adagrad", (p) => new Adagrad([p], h), refAdagrad(P0, G, h));
    check("Adagrad [2,2]", (p) => new Adagrad([p], h), refAdagrad(P0_22.flat(), G_22, h), P0_22, G_22);
  });
}

const rmspropCases = [
  { lr: 0.01 },
  { lr: 0.01, alpha: 0.9, eps: 1e-4 },
  { lr: 0.01, weightDecay: 0.1 },
  { lr: 0.01, momentum: 0.8 },
  { lr: 0.01, centered: true },
  { lr: 0.01, alpha: 0.9, eps: 1e-8, weightDecay: 0.1, momentum: 0.8, centered: true },
  { lr: 0.01, maximize: true, momentum: 0.5 },
];
for (const h of rmspropCases) {
  test(`RMSprop ${JSON.stringify(h)} follows the update rule`, () => {
    check("RMSprop", (p) => new RMSprop([p], h), refRMSprop(P0, G, h));
    check("RMSprop [2,2]", (p) => new RMSprop([p], h), refRMSprop(P0_22.flat(), G_22, h), P0_22, G_22);
  });
}

const adamCases: Array<{
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
  maximize?: boolean;
}> = [
  { lr: 0.1 },
  { lr: 0.1, betas: [0.8, 0.9], eps: 1e-3 },
  { lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.1 },
  { lr: 0.1, betas: [0.8, 0.9], amsgrad: true },
  { lr: 0.1, betas: [0.5, 0.6], amsgrad: true, weightDecay: 0.3, maximize: true },
];
for (const h of adamCases) {
  test(`Adam ${JSON.stringify(h)} follows the update rule (coupled L2 decay)`, () => {
    check("Adam", (p) => new Adam([p], h), refAdam(P0, G, h));
    check("Adam [2,2]", (p) => new Adam([p], h), refAdam(P0_22.flat(), G_22, h), P0_22, G_22);
  });
  test(`AdamW ${JSON.stringify(h)} follows the update rule (decoupled decay)`, () => {
    const hw = { ...h, weightDecay: h.weightDecay ?? 0.5 };
    check("AdamW", (p) => new AdamW([p], hw), refAdam(P0, G, { ...hw, decoupled: true }));
    check(
      "AdamW [2,2]",
      (p) => new AdamW([p], hw),
      refAdam(P0_22.flat(), G_22, { ...hw, decoupled: true }),
      P0_22,
      G_22,
    );
  });
}

test("AdamW defaults to weightDecay 1e-2 and differs from Adam with the same decay", () => {
  const p = param(P0);
  const q = param(P0);
  const w = new AdamW([p], { lr: 0.1 });
  assert.equal(w.defaults.weightDecay, 1e-2);
  const a = new Adam([q], { lr: 0.1, weightDecay: 1e-2 });
  for (const g of G) {
    p.grad = tensor(g, F64);
    q.grad = tensor(g, F64);
    w.step();
    a.step();
  }
  assertClose(values(p), refAdam(P0, G, { lr: 0.1, weightDecay: 1e-2, decoupled: true })[3]);
  assertClose(values(q), refAdam(P0, G, { lr: 0.1, weightDecay: 1e-2 })[3]);
  assert.ok(Math.abs(values(p)[2] - values(q)[2]) > 1e-4, "decoupled and coupled decay must differ");
});

test("end values match PyTorch 1.13 (literals produced once with torch.optim, float64)", () => {
  // produced by /usr/bin/python3 with torch 1.13: p = [0.5, -1, 2], grads G, four opt.step() calls
  const torchRef: Array<[string, Make, number[]]> = [
    ["sgd", (p) => new SGD([p], { lr: 0.1 }), [0.47500000000000003, -0.9349999999999999, 1.94]],
    [
      "sgd momentum dampening wd",
      (p) => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }),
      [0.41079201950465444, -0.902636207329309, 1.881366427271328],
    ],
    [
      "sgd nesterov maximize wd",
      (p) => new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.1, maximize: true }),
      [0.5426677009895, -1.0259854299789999, 1.9123255759789999],
    ],
    [
      "adagrad all options",
      (p) =>
        new Adagrad([p], {
          lr: 0.1,
          lrDecay: 0.05,
          weightDecay: 0.1,
          initialAccumulatorValue: 0.2,
          eps: 1e-10,
        }),
      [0.4249145448863834, -0.8822406525261561, 1.8690724011277833],
    ],
    [
      "rmsprop centered momentum wd",
      (p) =>
        new RMSprop([p], {
          lr: 0.01,
          alpha: 0.9,
          eps: 1e-8,
          weightDecay: 0.1,
          momentum: 0.8,
          centered: true,
        }),
      [0.345019045255045, -0.8710865853874177, 1.8800534477735762],
    ],
    [
      "rmsprop defaults",
      (p) => new RMSprop([p], { lr: 0.01 }),
      [0.3521552953262008, -0.8873126717904843, 1.8905002394137604],
    ],
    [
      "adam wd",
      (p) => new Adam([p], { lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.1 }),
      [0.2557244448785406, -0.7317547843811077, 1.7585403632783017],
    ],
    [
      "adam amsgrad",
      (p) => new Adam([p], { lr: 0.1, betas: [0.8, 0.9], amsgrad: true }),
      [0.284105323435964, -0.8155686640522319, 1.8622225523262776],
    ],
    [
      "adamw",
      (p) => new AdamW([p], { lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.5 }),
      [0.21419495098713467, -0.6459838049051554, 1.5029503250597405],
    ],
    [
      "adamw amsgrad maximize",
      (p) => new AdamW([p], { lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.5, amsgrad: true, maximize: true }),
      [0.5995916058971396, -0.9800379533416907, 1.754271315386567],
    ],
  ];
  for (const [name, make, expected] of torchRef) {
    const p = param(P0);
    const opt = make(p);
    for (const g of G) {
      p.grad = tensor(g, F64);
      opt.step();
    }
    assertClose(values(p), expected, 1e-13, `torch ${name}`);
  }
});

test("parameters whose grad is null are skipped (no update, no state)", () => {
  const makers: Array<(ps: Tensor[]) => Optimizer<{ lr: number }>> = [
    (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 }),
    (ps) => new Adagrad(ps, { lr: 0.1, weightDecay: 0.1 }),
    (ps) => new RMSprop(ps, { lr: 0.1, weightDecay: 0.1 }),
    (ps) => new Adam(ps, { lr: 0.1, weightDecay: 0.1 }),
    (ps) => new AdamW(ps, { lr: 0.1 }),
  ];
  for (const make of makers) {
    const a = param(P0);
    const b = param([1, 2, 3]);
    const opt = make([a, b]);
    a.grad = tensor(G[0], F64);
    opt.step();
    assert.deepEqual(values(b), [1, 2, 3]);
    assert.equal(opt.state.has(b), false);
    assert.equal(opt.state.has(a), true);
    // b joins later: its first step is a first step (Adam's step counter starts at 1 for it)
    b.grad = tensor(G[0], F64);
    a.grad = null;
    const aBefore = values(a);
    opt.step();
    assert.deepEqual(values(a), aBefore);
    assert.notDeepEqual(values(b), [1, 2, 3]);
  }
  const b = param([1, 2, 3]);
  const adam = new Adam([param(P0), b], { lr: 0.1 });
  adam.step();
  b.grad = tensor(G[1], F64);
  adam.step();
  assertClose(values(b), refAdam([1, 2, 3], [G[1]], { lr: 0.1 })[0]);
  assert.equal(adam.state.get(b)!.step, 1);
});

test("two parameter groups with their own lr (and other hyper-parameters from defaults)", () => {
  const a = param(P0);
  const b = param(P0_22);
  const opt = new SGD(
    [
      { params: [a], lr: 0.1 },
      { params: [b], lr: 0.01, momentum: 0.5 },
    ],
    { lr: 1, momentum: 0.9, weightDecay: 0.1 },
  );
  assert.equal(opt.paramGroups.length, 2);
  assert.equal(opt.paramGroups[0].momentum, 0.9);
  assert.equal(opt.paramGroups[1].weightDecay, 0.1);
  for (let k = 0; k < 4; k++) {
    a.grad = tensor(G[k], F64);
    b.grad = tensor(G_22[k], F64).reshape([2, 2]);
    opt.step();
  }
  assertClose(values(a), refSGD(P0, G, { lr: 0.1, momentum: 0.9, weightDecay: 0.1 })[3]);
  assertClose(
    values(b),
    refSGD(P0_22.flat(), G_22.slice(0, 4), { lr: 0.01, momentum: 0.5, weightDecay: 0.1 })[3],
  );

  // Adam groups with different lr and betas
  const c = param(P0);
  const d = param(P0);
  const adam = new Adam(
    [
      { params: [c], lr: 0.05 },
      { params: [d], betas: [0.5, 0.7] },
    ],
    { lr: 0.2 },
  );
  for (const g of G) {
    c.grad = tensor(g, F64);
    d.grad = tensor(g, F64);
    adam.step();
  }
  assertClose(values(c), refAdam(P0, G, { lr: 0.05 })[3]);
  assertClose(values(d), refAdam(P0, G, { lr: 0.2, betas: [0.5, 0.7] })[3]);
});

test("changing a group's lr between steps takes effect at the next step (what schedulers do)", () => {
  const p = param([1, 1, 1]);
  const opt = new SGD([p], { lr: 0.1 });
  p.grad = tensor([1, 2, 3], F64);
  opt.step();
  opt.paramGroups[0].lr = 0.01;
  opt.step();
  assertClose(values(p), [1 - 0.11, 1 - 0.22, 1 - 0.33]);
});

test("zeroGrad sets grads to null, or to zeros in place", () => {
  const p = param([1, 2]);
  const q = param([3]);
  const opt = new SGD([p, q], { lr: 0.1 });
  p.grad = tensor([1, 1], F64);
  opt.zeroGrad();
  assert.equal(p.grad, null);
  assert.equal(q.grad, null);
  const g = tensor([5, 6], F64);
  p.grad = g;
  opt.zeroGrad(false);
  assert.equal(p.grad, g);
  assert.deepEqual(values(g), [0, 0]);
});

test("step(closure) evaluates the loss with grad enabled and returns it", () => {
  const w = param([2, -1]);
  const opt = new SGD([w], { lr: 0.25 });
  const loss = noGrad(() =>
    opt.step(() => {
      opt.zeroGrad();
      const l = w.square().sum();
      l.backward();
      return l.item();
    }),
  );
  assert.equal(loss, 5);
  // gradient 2w, so w <- w - 0.25 * 2w = w / 2
  assertClose(values(w), [1, -0.5]);
});

test("updates work on float32 parameters and on a real backward pass, recording no graph", () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  const opt = new Adam([w], { lr: 0.1 });
  w.square().sum().backward();
  opt.step();
  assert.equal(w.dtype, "float32");
  assert.equal(w.isLeaf, true);
  assert.equal(w.grad!.requiresGrad, false);
  assertClose(values(w), [0.9, 1.9, 2.9], 1e-6);
  assert.equal((opt.state.get(w)!.expAvg as Tensor).dtype, "float32");
});

test("constructor and step errors are clear", () => {
  const p = param([1]);
  assert.throws(() => new SGD([], { lr: 0.1 }), /SGD: got an empty parameter list/);
  assert.throws(() => new SGD([p], { lr: -1 }), /SGD: invalid lr -1/);
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov momentum requires momentum > 0/);
  assert.throws(
    () => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.5, nesterov: true }),
    /dampening 0/,
  );
  assert.throws(() => new Adam([p], { betas: [0.9, 1] }), /Adam: invalid betas \[0.9,1\]/);
  assert.throws(() => new AdamW([p], { eps: -1 }), /AdamW: invalid eps -1/);
  assert.throws(() => new RMSprop([p], { alpha: -0.5 }), /RMSprop: invalid alpha/);
  assert.throws(() => new Adagrad([p], { lrDecay: -1 }), /Adagrad: invalid lrDecay/);
  assert.throws(() => new SGD([p, p], { lr: 0.1 }), /appears in more than one group/);
  assert.throws(() => new SGD([{ params: [p] }, { params: [p] }]), /appears in more than one group/);
  assert.throws(() => new SGD([tensor([1, 2], { dtype: "int32" })]), DTypeError);
  const leaf = param([1, 2]);
  assert.throws(() => new SGD([leaf.mul(2)]), AutodiffError);
  const opt = new SGD([p], { lr: 0.1 });
  p.grad = zeros([2], F64);
  assert.throws(() => opt.step(), ShapeError);
  p.grad = zeros([1], F64);
  opt.paramGroups[0].lr = Number.NaN;
  assert.throws(() => opt.step(), /SGD: invalid lr NaN/);
});

test("addParamGroup adds parameters with their own options", () => {
  const a = param([1]);
  const b = param([1]);
  const opt = new SGD([a], { lr: 0.1 });
  opt.addParamGroup({ params: [b], lr: 0.5 });
  a.grad = tensor([1], F64);
  b.grad = tensor([1], F64);
  opt.step();
  assertClose(values(a), [0.9]);
  assertClose(values(b), [0.5]);
  assert.throws(() => opt.addParamGroup({ params: [a] }), /more than one group/);
});
