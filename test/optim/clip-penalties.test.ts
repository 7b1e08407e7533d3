/**
 * Gradient clipping (norms of several orders, against closed forms and PyTorch 1.13 literals), L1/L2 penalty
 * terms (values, gradients, and the L2 term's equivalence with weightDecay), and early stopping.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tensor } from "../../src/ops/creation.ts";
import { clipGradNorm_, clipGradValue_ } from "../../src/optim/clip.ts";
import { EarlyStopping } from "../../src/optim/early-stopping.ts";
import { l1Penalty, l2Penalty } from "../../src/optim/penalties.ts";
import { SGD } from "../../src/optim/sgd.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, F64, param, values } from "./helpers.ts";

function withGrads(): [Tensor, Tensor, Tensor] {
  const a = param([0, 0]);
  const b = param([
    [0, 0],
    [0, 0],
  ]);
  const c = param([7]); // no gradient: ignored
  a.grad = tensor([3, -4], F64);
  b.grad = tensor(
    [
      [1, 2],
      [-2, 0.5],
    ],
    F64,
  );
  return [a, b, c];
}

test("clipGradNorm_ returns the total norm and rescales by maxNorm / (total + 1e-6)", () => {
  const entries = [3, -4, 1, 2, -2, 0.5];
  const cases: Array<[number, number]> = [
    [2, Math.sqrt(entries.reduce((s, x) => s + x * x, 0))],
    [1, entries.reduce((s, x) => s + Math.abs(x), 0)],
    [Number.POSITIVE_INFINITY, 4],
    [3, entries.reduce((s, x) => s + Math.abs(x) ** 3, 0) ** (1 / 3)],
  ];
  // total norms from torch 1.13 clip_grad_norm_ with max_norm 2 and the same gradients
  const torchTotals = [5.852349955359813, 12.5, 4.0, 4.7640397172728965];
  const torchA = [
    [1.0252290140776612, -1.366972018770215],
    [0.4799999616000031, -0.6399999488000041],
    [1.4999996250000938, -1.999999500000125],
    [1.2594350796049891, -1.679246772806652],
  ];
  cases.forEach(([normType, total], i) => {
    const [a, b, c] = withGrads();
    const got = clipGradNorm_([a, b, c], 2, normType);
    assertClose([got], [total], 1e-14, `norm ${normType}`);
    assertClose([got], [torchTotals[i]], 1e-14, `torch norm ${normType}`);
    const coef = 2 / (total + 1e-6);
    assertClose(values(a.grad!), [3 * coef, -4 * coef], 1e-14);
    assertClose(values(a.grad!), torchA[i], 1e-14);
    assertClose(
      values(b.grad!),
      [1, 2, -2, 0.5].map((x) => x * coef),
      1e-14,
    );
    assert.equal(c.grad, null);
  });
});

test("clipGradNorm_ leaves small gradients alone and can reject non-finite norms", () => {
  const [a, b] = withGrads();
  assertClose([clipGradNorm_([a, b], 100)], [Math.sqrt(34.25)], 1e-14);
  assert.deepEqual(values(a.grad!), [3, -4]);
  assert.equal(clipGradNorm_([param([1])], 1), 0);
  const p = param([1, 2]);
  p.grad = tensor([Number.POSITIVE_INFINITY, 1], F64);
  assert.throws(() => clipGradNorm_([p], 1, 2, true), /total norm of order 2 of the gradients is Infinity/);
  assert.throws(() => clipGradNorm_([p], -1), /maxNorm must be >= 0/);
});

test("clipGradValue_ clamps every entry", () => {
  const [a, b] = withGrads();
  clipGradValue_([a, b], 1.5);
  assert.deepEqual(values(a.grad!), [1.5, -1.5]);
  assert.deepEqual(values(b.grad!), [1, 1.5, -1.5, 0.5]);
});

test("l1Penalty and l2Penalty: values and gradients", () => {
  const a = param([1, -2, 0]);
  const b = param([[0.5], [-3]]);
  const l1 = l1Penalty([a, b], 0.1);
  assertClose([l1.item() as number], [0.1 * 6.5], 1e-15);
  l1.backward();
  assertClose(values(a.grad!), [0.1, -0.1, 0], 1e-15);
  assertClose(values(b.grad!), [0.1, -0.1], 1e-15);
  a.grad = null;
  b.grad = null;
  const l2 = l2Penalty([a, b], 0.2);
  assertClose([l2.item() as number], [0.1 * (1 + 4 + 0.25 + 9)], 1e-15);
  l2.backward();
  assertClose(values(a.grad!), [0.2, -0.4, 0], 1e-15);
  assertClose(values(b.grad!), [0.1, -0.6], 1e-15);
  assert.equal(l1Penalty([], 1).item(), 0);
  assert.throws(() => l2Penalty([a], -1), /lambda must be finite and >= 0/);
});

test("adding l2Penalty(lambda) to the loss equals SGD's weightDecay = lambda", () => {
  const x = tensor([0.5, -1, 2], F64);
  const w1 = param([1, 2, 3]);
  const w2 = param([1, 2, 3]);
  const o1 = new SGD([w1], { lr: 0.1, momentum: 0.9, weightDecay: 0.3 });
  const o2 = new SGD([w2], { lr: 0.1, momentum: 0.9 });
  for (let k = 0; k < 4; k++) {
    o1.zeroGrad();
    w1.mul(x).sum().square().backward();
    o1.step();
    o2.zeroGrad();
    w2.mul(x)
      .sum()
      .square()
      .add(l2Penalty([w2], 0.3))
      .backward();
    o2.step();
  }
  assertClose(values(w1), values(w2), 1e-13);
});

test("EarlyStopping (min): stops after `patience` epochs without improvement beyond minDelta", () => {
  const snapshots: Array<[number, number]> = [];
  const es = new EarlyStopping({ patience: 3, minDelta: 0.05, onImprove: (m, e) => snapshots.push([m, e]) });
  const metrics = [1.0, 0.8, 0.78, 0.7, 0.69, 0.72, 0.66, 0.9];
  const stops = metrics.map((m) => es.step(m));
  // 0.78 is within minDelta of 0.8 (no improvement); 0.7 improves; 0.69, 0.72, 0.66 do not improve by > 0.05
  assert.deepEqual(stops, [false, false, false, false, false, false, true, true]);
  assert.equal(es.bestValue, 0.7);
  assert.equal(es.bestEpoch, 3);
  assert.deepEqual(snapshots, [
    [1.0, 0],
    [0.8, 1],
    [0.7, 3],
  ]);
  es.reset();
  assert.equal(es.step(5), false);
  assert.equal(es.bestEpoch, 0);
});

test("EarlyStopping (max, patience 0), NaN never improves, tensor metrics", () => {
  const es = new EarlyStopping({ mode: "max", patience: 0 });
  assert.equal(es.step(tensor(0.5)), false);
  assert.equal(es.step(0.6), false);
  assert.equal(es.step(Number.NaN), true);
  assert.equal(es.bestValue, 0.6);
  assert.equal(es.bestEpoch, 1);
  const es2 = new EarlyStopping({ patience: 2 });
  assert.deepEqual(
    [Number.NaN, Number.NaN].map((m) => es2.step(m)),
    [false, true],
  );
  assert.equal(es2.bestEpoch, -1);
  assert.throws(() => new EarlyStopping({ patience: -1 }), /EarlyStopping: invalid patience -1/);
});
