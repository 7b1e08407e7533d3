/**
 * Numerical gradient checks (gradCheck: forward mode against central differences, reverse mode against
 * forward mode by the dot-product identity, float64, small sizes) through the layers, with respect to both
 * the input and the parameters (via functionalCall), through every loss, and through the ResNet and DenseNet
 * blocks in training mode. Also: eager backward() through a model agrees with grad() of functionalCall.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { grad, gradCheck, manualSeed, rand, randint, randn, type Tensor, tensor } from "../../src/index.ts";
import {
  BasicBlock,
  BatchNorm1d,
  BatchNorm2d,
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  Conv2d,
  crossEntropy,
  DenseBlock,
  Embedding,
  functionalCall,
  huberLoss,
  l1Loss,
  LayerNorm,
  Linear,
  type Module,
  mseLoss,
  nllLoss,
  Sequential,
  smoothL1Loss,
  Tanh,
} from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };

/** gradCheck f(input, ...params) = module(input) with the module's parameters replaced. */
function checkModule(m: Module, x: Tensor, withInput = true): void {
  const named = m.namedParameters();
  const names = named.map(([n]) => n);
  const f = (...xs: Tensor[]) => {
    const input = withInput ? xs[0] : x;
    const ps = withInput ? xs.slice(1) : xs;
    return functionalCall(m, Object.fromEntries(names.map((n, i) => [n, ps[i]])), input);
  };
  const inputs = [...(withInput ? [x] : []), ...named.map(([, p]) => p)];
  const report = gradCheck(f, inputs);
  assert.ok(report.ok, report.worst);
}

test("gradCheck through Linear (input, weight, bias)", () => {
  manualSeed(10);
  checkModule(new Linear(4, 3, f64), randn([5, 4], f64));
  checkModule(new Linear(3, 2, { ...f64, bias: false }), randn([2, 4, 3], f64));
});

test("gradCheck through Conv2d (stride, padding, dilation, groups, 'same')", () => {
  manualSeed(11);
  checkModule(new Conv2d(2, 3, 3, { ...f64, padding: 1, stride: 2 }), randn([2, 2, 5, 5], f64));
  checkModule(new Conv2d(4, 2, [2, 3], { ...f64, dilation: [1, 2], groups: 2 }), randn([1, 4, 5, 6], f64));
  checkModule(new Conv2d(2, 2, 2, { ...f64, padding: "same" }), randn([1, 2, 4, 4], f64));
});

test("gradCheck through BatchNorm1d/2d in training mode and LayerNorm", () => {
  manualSeed(12);
  const bn1 = new BatchNorm1d(3, f64);
  checkModule(bn1, randn([4, 3], f64));
  checkModule(new BatchNorm1d(2, f64), randn([3, 2, 4], f64));
  const bn2 = new BatchNorm2d(2, f64);
  checkModule(bn2, randn([2, 2, 3, 3], f64));
  assert.ok(bn2.training);
  // eval mode (running statistics are constants)
  checkModule(bn2.eval(), randn([2, 2, 3, 3], f64));
  checkModule(new LayerNorm([2, 3], f64), randn([4, 2, 3], f64));
});

test("gradCheck through Embedding (weight) and a small MLP", () => {
  manualSeed(13);
  const emb = new Embedding(6, 3, { ...f64, paddingIdx: 0 });
  checkModule(
    emb,
    tensor(
      [
        [1, 5, 0],
        [2, 1, 1],
      ],
      { dtype: "int32" },
    ),
    false,
  );
  checkModule(new Sequential(new Linear(3, 4, f64), new Tanh(), new Linear(4, 2, f64)), randn([5, 3], f64));
});

test("gradCheck through the ResNet BasicBlock and the DenseNet DenseBlock (training mode)", () => {
  manualSeed(14);
  checkModule(new BasicBlock(2, 2, 1, f64), randn([2, 2, 4, 4], f64));
  checkModule(new BasicBlock(2, 3, 2, f64), randn([2, 2, 5, 5], f64));
  checkModule(new DenseBlock(2, 2, 2, f64), randn([2, 2, 3, 3], f64));
});

test("gradCheck through every loss, with respect to input (and target where differentiable)", () => {
  manualSeed(15);
  const x = randn([4, 3], f64);
  const y = randn([4, 3], f64);
  const probs = rand([4, 3], f64).mul(0.8).add(0.1);
  const labels01 = rand([4, 3], f64);
  const cls = tensor([0, 2, -100, 1], { dtype: "int32" });
  const w = tensor([0.5, 2, 1], f64);
  const checks: [string, (...t: Tensor[]) => Tensor, Tensor[]][] = [
    ["mse", (a, b) => mseLoss(a, b), [x, y]],
    ["l1", (a, b) => l1Loss(a, b, { reduction: "sum" }), [x, y]],
    ["huber", (a, b) => huberLoss(a, b, { delta: 0.7, reduction: "none" }), [x, y]],
    ["smoothL1", (a, b) => smoothL1Loss(a, b, { beta: 0.5 }), [x, y]],
    ["bce", (p, t) => binaryCrossEntropy(p, t), [probs, labels01]],
    ["bceWithLogits", (a, t) => binaryCrossEntropyWithLogits(a, t), [x, labels01]],
    [
      "bceWithLogits posWeight weight",
      (a, t, pw) => binaryCrossEntropyWithLogits(a, t, { posWeight: pw, weight: w }),
      [x, labels01, tensor([1, 3, 0.5], f64)],
    ],
    ["crossEntropy", (a) => crossEntropy(a, cls), [x]],
    [
      "crossEntropy weight smoothing none",
      (a, cw) => crossEntropy(a, cls, { weight: cw, labelSmoothing: 0.2, reduction: "none" }),
      [x, w],
    ],
    ["crossEntropy probabilities", (a, t) => crossEntropy(a, t.softmax(1), { labelSmoothing: 0.1 }), [x, y]],
    [
      "crossEntropy [N, C, d]",
      (a) =>
        crossEntropy(
          a,
          tensor(
            [
              [0, 1],
              [2, -100],
            ],
            { dtype: "int32" },
          ),
        ),
      [randn([2, 3, 2], f64)],
    ],
    ["nll", (a) => nllLoss(a.logSoftmax(1), cls, { weight: w }), [x]],
  ];
  for (const [name, f, inputs] of checks) {
    const r = gradCheck(f, inputs, { raise: false });
    assert.ok(r.ok, `${name}: ${r.worst}`);
  }
});

test("eager backward through a model agrees with grad of functionalCall", () => {
  manualSeed(16);
  const model = new Sequential(new Linear(3, 4, f64), new Tanh(), new Linear(4, 3, f64));
  const x = randn([5, 3], f64);
  const t = randint(0, 3, [5]);
  crossEntropy(model.call(x), t).backward();
  const names = model.namedParameters().map(([n]) => n);
  const grads = grad(
    (...ps: Tensor[]) =>
      crossEntropy(functionalCall(model, Object.fromEntries(names.map((n, i) => [n, ps[i]])), x), t),
    { argnums: names.map((_, i) => i) },
  )(...model.parameters()) as Tensor[];
  model.parameters().forEach((p, i) => {
    const a = p.grad!.dataSync();
    const b = grads[i].dataSync();
    for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k] - b[k]) < 1e-12, `${names[i]}[${k}]`);
  });
});

test("a Linear weight's eager gradient is laid out as the weight (contiguous), values x^T-products of the cotangent", () => {
  manualSeed(3);
  const layer = new Linear(5, 3);
  const x = randn([4, 5]);
  const dy = randn([4, 3]);
  layer.call(x).mul(dy).sum().backward();
  const g = layer.weight.grad!;
  assert.deepEqual(g.shape, [3, 5]);
  assert.deepEqual(g._strides, [5, 1]);
  // dW[o, i] = sum_b dy[b, o] x[b, i], computed here by hand
  const xs = x.toArray() as number[][];
  const ds = dy.toArray() as number[][];
  const got = g.toArray() as number[][];
  for (let o = 0; o < 3; o++) {
    for (let i = 0; i < 5; i++) {
      let s = 0;
      for (let b = 0; b < 4; b++) s += ds[b][o] * xs[b][i];
      assert.ok(Math.abs(got[o][i] - s) < 1e-5, `dW[${o}, ${i}] = ${got[o][i]}, expected ${s}`);
    }
  }
});
