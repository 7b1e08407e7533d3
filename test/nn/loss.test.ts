/**
 * Tests of the loss values: cross-entropy against a hand-written logsumexp formula (plain, label smoothing,
 * ignoreIndex, class weights, probability targets, [N, C, d] inputs) and against PyTorch reference numbers,
 * its plain fast path against the general one (values, gradients, the closed-form Hessian);
 * BCE-with-logits stability at |x| = 100; BCE clamping; MSE/L1/Huber/SmoothL1; the loss modules; error messages.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DTypeError, grad, hvp, ShapeError, type Tensor, tensor } from "../../src/index.ts";
import {
  BCELoss,
  BCEWithLogitsLoss,
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  CrossEntropyLoss,
  crossEntropy,
  HuberLoss,
  huberLoss,
  L1Loss,
  l1Loss,
  MSELoss,
  mseLoss,
  NLLLoss,
  nllLoss,
  SmoothL1Loss,
  smoothL1Loss,
} from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };
const i32 = { dtype: "int32" as const };

function near(a: number, e: number, tol = 1e-12, what = "value"): void {
  assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `${what}: ${a} vs ${e}`);
}
function nearAll(a: readonly number[], e: readonly number[], tol = 1e-12): void {
  assert.equal(a.length, e.length);
  e.forEach((v, i) => {
    near(a[i], v, tol, `[${i}]`);
  });
}
const num = (t: Tensor) => t.item() as number;

const X = [
  [2.0, 1.0, 0.1, -1.0],
  [0.5, 2.5, -0.3, 0.0],
  [1.0, 1.0, 1.0, 1.0],
  [-2.0, 0.3, 0.7, 3.0],
];
const logits = tensor(X, f64);

/** The hand formula: loss_i = logsumexp(x_i) - sum_c q_ic x_ic with the smoothed target q. */
function lse(row: number[]): number {
  const m = Math.max(...row);
  return m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
}
function handCE(rows: number[][], targets: number[], eps: number, ignore = -100): number[] {
  return rows.map((r, i) => {
    if (targets[i] === ignore) return 0;
    const c = r.length;
    const q = r.map((_, k) => (k === targets[i] ? 1 - eps : 0) + eps / c);
    return lse(r) - q.reduce((s, qk, k) => s + qk * r[k], 0);
  });
}

test("crossEntropy equals logsumexp(x_i) - x_i[t_i], averaged", () => {
  const t = [0, 3, 1, 2];
  const per = handCE(X, t, 0);
  nearAll(crossEntropy(logits, tensor(t, i32), { reduction: "none" }).toArray() as number[], per);
  near(num(crossEntropy(logits, tensor(t, i32))), per.reduce((a, b) => a + b) / 4);
  near(
    num(crossEntropy(logits, tensor(t, i32), { reduction: "sum" })),
    per.reduce((a, b) => a + b),
  );
  // PyTorch 1.13: F.cross_entropy(x, [0, 3, 1, 2]) in float64
  near(num(crossEntropy(logits, tensor(t, i32))), 1.7604182419602308);
  // nllLoss of logSoftmax is the same thing
  near(num(nllLoss(logits.logSoftmax(1), tensor(t, i32))), 1.7604182419602308);
});

test("crossEntropy's plain path (no weight, no ignored target, no smoothing) equals the general path exactly", () => {
  // weights of ones take the general (masked, weighted) path; the values and gradients must not differ
  const t = tensor([0, 3, 1, 2], i32);
  const ones = tensor([1, 1, 1, 1], f64);
  for (const reduction of ["mean", "sum", "none"] as const) {
    const plain = crossEntropy(logits, t, { reduction });
    const general = crossEntropy(logits, t, { reduction, weight: ones });
    assert.deepEqual(Array.from(plain.dataSync()), Array.from(general.dataSync()), reduction);
    const u = tensor([0.3, -1.2, 0.7, 2.0], f64);
    const loss = (o: Record<string, unknown>) => (a: Tensor) =>
      reduction === "none" ? crossEntropy(a, t, o).mul(u).sum() : crossEntropy(a, t, o);
    const g1 = (grad(loss({ reduction })) as (a: Tensor) => Tensor)(logits).dataSync();
    const g2 = (grad(loss({ reduction, weight: ones })) as (a: Tensor) => Tensor)(logits).dataSync();
    nearAll(Array.from(g1), Array.from(g2), 1e-15);
    // second order: the Hessian of the mean loss of row i is (diag(p_i) - p_i p_i^T) / N
    if (reduction === "mean") {
      const v = tensor(
        X.map((r) => r.map((_, k) => (k === 1 ? 1 : 0))),
        f64,
      );
      const hv = hvp(loss({ reduction }), logits, v) as Tensor;
      const got = hv.toArray() as number[][];
      X.forEach((row, i) => {
        const m = Math.max(...row);
        const e = row.map((a) => Math.exp(a - m));
        const z = e.reduce((a, b) => a + b);
        const p = e.map((a) => a / z);
        // (H v)_k = (p_k [k = 1] - p_k p_1) / N
        row.forEach((_, k) => {
          near(got[i][k], ((k === 1 ? p[k] : 0) - p[k] * p[1]) / X.length, 1e-13, `H v [${i}, ${k}]`);
        });
      });
    }
  }
});

test("crossEntropy label smoothing: (1 - eps) one-hot + eps / C target", () => {
  const t = [0, 3, 1, 2];
  const per = handCE(X, t, 0.1);
  nearAll(
    crossEntropy(logits, tensor(t, i32), { labelSmoothing: 0.1, reduction: "none" }).toArray() as number[],
    per,
  );
  const mean = per.reduce((a, b) => a + b) / 4;
  near(num(crossEntropy(logits, tensor(t, i32), { labelSmoothing: 0.1 })), mean);
  near(mean, 1.785418241960231); // PyTorch 1.13, label_smoothing=0.1
});

test("crossEntropy ignoreIndex: ignored samples contribute 0 and the mean is over the rest", () => {
  const t = [0, 3, -100, 2];
  const per = handCE(X, t, 0);
  const none = crossEntropy(logits, tensor(t, i32), { reduction: "none" }).toArray() as number[];
  nearAll(none, per);
  assert.equal(none[2], 0);
  near(num(crossEntropy(logits, tensor(t, i32))), (per[0] + per[1] + per[3]) / 3);
  near(num(crossEntropy(logits, tensor(t, i32))), 1.8851262022403443); // PyTorch 1.13
  // a custom ignore index, with smoothing
  const t2 = [0, 7, 1, 7];
  const per2 = handCE(X, t2, 0.3, 7);
  near(
    num(crossEntropy(logits, tensor(t2, i32), { ignoreIndex: 7, labelSmoothing: 0.3 })),
    (per2[0] + per2[2]) / 2,
  );
  // everything ignored: 0 / 0 as PyTorch
  assert.ok(Number.isNaN(num(crossEntropy(logits, tensor([-100, -100, -100, -100], i32)))));
});

test("crossEntropy with class weights (+ smoothing + ignoreIndex) matches PyTorch", () => {
  const w = tensor([1.0, 2.0, 0.5, 1.5], f64);
  const t = [0, 3, 1, 2];
  // weighted mean: sum_i w[t_i] loss_i / sum_i w[t_i]
  const per = handCE(X, t, 0);
  const wt = [1.0, 1.5, 2.0, 0.5];
  const expected = per.reduce((s, l, i) => s + wt[i] * l, 0) / wt.reduce((a, b) => a + b);
  near(num(crossEntropy(logits, tensor(t, i32), { weight: w })), expected);
  near(expected, 1.71408222095132); // PyTorch 1.13
  // PyTorch 1.13: F.cross_entropy(x, [0, 3, -100, 2], weight=w, label_smoothing=0.2, reduction=...)
  const ti = tensor([0, 3, -100, 2], i32);
  const opts = { weight: w, labelSmoothing: 0.2 };
  near(num(crossEntropy(logits, ti, opts)), 2.0532008525645713);
  near(num(crossEntropy(logits, ti, { ...opts, reduction: "sum" })), 6.159602557693714);
  nearAll(
    crossEntropy(logits, ti, { ...opts, reduction: "none" }).toArray() as number[],
    [0.8442786524993722, 3.713441038050882, 0.0, 1.6018828671434597],
  );
});

test("crossEntropy with class-probability targets", () => {
  // target rows are softmax(3 * r) of some rows r (PyTorch printed them; they are probability vectors)
  const Y = [
    [0.1507936105062107, 0.20355008326799384, 0.27476387268213026, 0.3708924335436652],
    [0.8700485065614081, 0.04331716447953075, 0.04331716447953075, 0.04331716447953075],
    [0.25, 0.25, 0.25, 0.25],
    [0.09121276190317816, 0.09121276190317816, 0.4087872380968218, 0.4087872380968218],
  ];
  const per = X.map((r, i) => lse(r) - Y[i].reduce((s, y, k) => s + y * r[k], 0));
  nearAll(crossEntropy(logits, tensor(Y, f64), { reduction: "none" }).toArray() as number[], per);
  near(num(crossEntropy(logits, tensor(Y, f64))), per.reduce((a, b) => a + b) / 4);
  // with weights and smoothing: PyTorch 1.13 gives 2.133754625749248
  const w = tensor([1.0, 2.0, 0.5, 1.5], f64);
  near(num(crossEntropy(logits, tensor(Y, f64), { weight: w, labelSmoothing: 0.1 })), 2.133754625749248);
  // a one-hot probability target equals the index target
  const onehot = tensor(
    [
      [1, 0, 0, 0],
      [0, 0, 0, 1],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ],
    f64,
  );
  near(num(crossEntropy(logits, onehot)), num(crossEntropy(logits, tensor([0, 3, 1, 2], i32))));
});

test("crossEntropy on [N, C, d] input and on unbatched [C] input", () => {
  // x3 = sin(arange(24)).reshape(2, 3, 4); class dim 1
  const flat = Array.from({ length: 24 }, (_, i) => Math.sin(i));
  const x3 = tensor(flat, f64).reshape([2, 3, 4]);
  const t3 = [
    [0, 2, 1, -100],
    [2, 2, 0, 1],
  ];
  near(num(crossEntropy(x3, tensor(t3, i32), { labelSmoothing: 0.05 })), 0.9673500934931434); // PyTorch 1.13
  // by hand: sample (n, d) has logits flat[n*12 + c*4 + d] over c
  const rows: number[][] = [];
  const ts: number[] = [];
  for (let n = 0; n < 2; n++)
    for (let d = 0; d < 4; d++) {
      rows.push([0, 1, 2].map((c) => flat[n * 12 + c * 4 + d]));
      ts.push(t3[n][d]);
    }
  const per = handCE(rows, ts, 0.05);
  near(num(crossEntropy(x3, tensor(t3, i32), { labelSmoothing: 0.05 })), per.reduce((a, b) => a + b) / 7);
  // unbatched
  near(num(crossEntropy(tensor(X[0], f64), tensor(2, i32))), lse(X[0]) - X[0][2]);
});

test("crossEntropy errors name the loss, the shapes and the dtypes", () => {
  assert.throws(
    () => crossEntropy(logits, tensor([0, 1], i32)),
    (e: Error) =>
      e instanceof ShapeError &&
      /crossEntropy: input \[4, 4\] expects target \[4\] \(class indices\) or \[4, 4\]/.test(e.message),
  );
  assert.throws(
    () => crossEntropy(logits, tensor([[1], [2], [0], [1]])),
    /float \(class probability\) target must have the input's shape \[4, 4\], got \[4, 1\]/,
  );
  assert.throws(() => crossEntropy(logits, tensor([true, false, true, true])), DTypeError);
  assert.throws(
    () => crossEntropy(tensor([[1, 2]], i32), tensor([0], i32)),
    /crossEntropy: input must be float32 or float64, got int32/,
  );
  assert.throws(
    () => crossEntropy(logits, tensor([0, 4, 1, 2], i32)),
    /target 4 is out of range for 4 classes/,
  );
  assert.throws(
    () => crossEntropy(logits, tensor([0, 1, 1, 2], i32), { weight: tensor([1, 2]) }),
    /weight must have shape \[4\]/,
  );
  assert.throws(
    () => crossEntropy(logits, tensor([0, 1, 1, 2], i32), { labelSmoothing: 2 }),
    /labelSmoothing must be in \[0, 1\]/,
  );
  assert.throws(
    () => crossEntropy(logits, tensor([0, 1, 1, 2], i32), { reduction: "avg" as "mean" }),
    /reduction must be/,
  );
  assert.throws(
    () => nllLoss(logits, tensor([0, 1, 1, 2])),
    /nllLoss: target must be int32 class indices, got float32/,
  );
});

test("BCE with logits is finite and exact at |x| = 100 (float32), and matches PyTorch", () => {
  const x = tensor([100, -100, 100, -100], { requiresGrad: true });
  const y = tensor([1, 0, 0, 1]);
  const l = binaryCrossEntropyWithLogits(x, y, { reduction: "none" });
  const v = l.toArray() as number[];
  assert.ok(v.every(Number.isFinite));
  assert.ok(v[0] >= 0 && v[0] < 1e-30 && v[1] >= 0 && v[1] < 1e-30, `${v}`);
  assert.equal(v[2], 100);
  assert.equal(v[3], 100);
  l.sum().backward();
  // d/dx = sigmoid(x) - y: [1 - 1, sigmoid(-100) = 3.7e-44, 1, -1]
  nearAll(x.grad!.toArray() as number[], [0, 0, 1, -1], 1e-30);
  // at x = 0 the derivative is sigmoid(0) - y = 0.5 - y (no kink artefact)
  const z = tensor([0, 0], { requiresGrad: true });
  binaryCrossEntropyWithLogits(z, tensor([1, 0]), { reduction: "sum" }).backward();
  assert.deepEqual(z.grad!.toArray(), [-0.5, 0.5]);

  // PyTorch 1.13 reference, float64
  const zz = tensor(
    [
      [-3.0, 0.0, 100.0],
      [2.0, -100.0, 0.5],
    ],
    f64,
  );
  const yy = tensor(
    [
      [0.0, 1.0, 1.0],
      [0.3, 0.0, 1.0],
    ],
    f64,
  );
  nearAll((binaryCrossEntropyWithLogits(zz, yy, { reduction: "none" }).toArray() as number[][]).flat(), [
    0.048587351573741965,
    Math.LN2,
    0.0,
    1.5269280110429726,
    0.0,
    0.4740769841801067,
  ]);
  const posWeight = tensor([2.0, 0.5, 3.0], f64);
  const weight = tensor([[1.0], [2.0]], f64);
  near(num(binaryCrossEntropyWithLogits(zz, yy, { posWeight, weight })), 1.0616059459410139);
});

test("BCE on probabilities clamps log at -100 as PyTorch", () => {
  // PyTorch 1.13: F.binary_cross_entropy(p, y, reduction="none")
  const p = tensor([0.0, 1.0, 0.3, 0.9, 1e-50], f64);
  const y = tensor([1.0, 1.0, 0.0, 0.5, 1.0], f64);
  nearAll(
    binaryCrossEntropy(p, y, { reduction: "none" }).toArray() as number[],
    [100.0, 0, 0.35667494393873245, 1.2039728043259361, 100.0],
  );
  // gradients stay finite at p = 0 and p = 1 (the clamped terms are constant there)
  const pr = tensor([0, 1, 0.3], { ...f64, requiresGrad: true });
  binaryCrossEntropy(pr, tensor([1, 1, 0], f64), { reduction: "sum" }).backward();
  const g = pr.grad!.toArray() as number[];
  assert.ok(g.every(Number.isFinite), `${g}`);
  near(g[2], 1 / 0.7); // d/dp -log(1 - p)
  assert.throws(
    () => binaryCrossEntropy(tensor([1.5]), tensor([1])),
    /elements of input should be between 0 and 1, found 1\.5/,
  );
  assert.throws(
    () => binaryCrossEntropy(tensor([0.5]), tensor([2])),
    /elements of target should be between 0 and 1/,
  );
  assert.throws(
    () => binaryCrossEntropy(tensor([0.5]), tensor([1]), { weight: tensor([1, 2]) }),
    /weight \[2\] does not broadcast/,
  );
});

test("regression losses: MSE, L1, Huber, SmoothL1", () => {
  const a = tensor([0.0, 0.5, 3.0, -2.0], f64);
  const b = tensor([0.2, -0.5, 0.0, 0.0], f64);
  near(num(mseLoss(a, b)), (0.04 + 1 + 9 + 4) / 4);
  near(num(mseLoss(a, b, { reduction: "sum" })), 0.04 + 1 + 9 + 4);
  near(num(l1Loss(a, b)), (0.2 + 1 + 3 + 2) / 4);
  nearAll(l1Loss(a, b, { reduction: "none" }).toArray() as number[], [0.2, 1, 3, 2]);
  // PyTorch 1.13: F.huber_loss(a, b, delta=1.5) and F.smooth_l1_loss(a, b, beta=0.5), reduction none
  nearAll(
    huberLoss(a, b, { delta: 1.5, reduction: "none" }).toArray() as number[],
    [0.02, 0.5, 3.375, 1.875],
  );
  nearAll(
    smoothL1Loss(a, b, { beta: 0.5, reduction: "none" }).toArray() as number[],
    [0.04, 0.75, 2.75, 1.75],
  );
  nearAll(smoothL1Loss(a, b, { beta: 0, reduction: "none" }).toArray() as number[], [0.2, 1, 3, 2]);
  assert.throws(
    () => mseLoss(tensor([[1], [2]]), tensor([1, 2])),
    /mseLoss: input and target must have the same shape, got input \[2, 1\] and target \[2\]/,
  );
  assert.throws(
    () => l1Loss(tensor([1], i32), tensor([1], i32)),
    /l1Loss: input must be float32 or float64, got int32/,
  );
  assert.throws(() => huberLoss(a, b, { delta: 0 }), /delta must be > 0/);
});

test("loss modules forward to the functional losses with their options", () => {
  const t = tensor([0, 3, 1, 2], i32);
  near(num(new CrossEntropyLoss().call(logits, t)), 1.7604182419602308);
  near(num(new CrossEntropyLoss({ labelSmoothing: 0.1 }).call(logits, t)), 1.785418241960231);
  const w = tensor([1.0, 2.0, 0.5, 1.5], f64);
  const ce = new CrossEntropyLoss({ weight: w, labelSmoothing: 0.2, reduction: "sum" });
  near(num(ce.call(logits, tensor([0, 3, -100, 2], i32))), 6.159602557693714);
  assert.deepEqual(Object.keys(ce.stateDict()), ["weight"]); // the class weight is a buffer, as PyTorch
  near(num(new NLLLoss().call(logits.logSoftmax(1), t)), 1.7604182419602308);
  const a = tensor([0.0, 0.5, 3.0, -2.0], f64);
  const b = tensor([0.2, -0.5, 0.0, 0.0], f64);
  near(num(new MSELoss().call(a, b)), num(mseLoss(a, b)));
  near(num(new L1Loss({ reduction: "sum" }).call(a, b)), 6.2);
  near(num(new HuberLoss({ delta: 1.5, reduction: "sum" }).call(a, b)), 0.02 + 0.5 + 3.375 + 1.875);
  near(num(new SmoothL1Loss({ beta: 0.5, reduction: "sum" }).call(a, b)), 0.04 + 0.75 + 2.75 + 1.75);
  near(num(new BCELoss().call(tensor([0.3], f64), tensor([0], f64))), 0.35667494393873245);
  const bcel = new BCEWithLogitsLoss({
    posWeight: tensor([2.0, 0.5, 3.0], f64),
    weight: tensor([[1.0], [2.0]], f64),
  });
  const zz = tensor(
    [
      [-3.0, 0.0, 100.0],
      [2.0, -100.0, 0.5],
    ],
    f64,
  );
  const yy = tensor(
    [
      [0.0, 1.0, 1.0],
      [0.3, 0.0, 1.0],
    ],
    f64,
  );
  near(num(bcel.call(zz, yy)), 1.0616059459410139);
  assert.equal(
    new CrossEntropyLoss().toString(),
    "CrossEntropyLoss(reduction=mean, ignoreIndex=-100, labelSmoothing=0)",
  );
});
