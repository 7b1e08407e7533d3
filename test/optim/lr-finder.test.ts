/**
 * The learning-rate range test: its lr grid, smoothing and divergence stop, and its suggestion on a quadratic
 * whose stable step sizes are known (gradient descent on sum a_i w_i^2 / 2 diverges for lr > 2 / max a_i).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tensor } from "../../src/ops/creation.ts";
import { lrRangeTest } from "../../src/optim/lr-finder.ts";
import { SGD } from "../../src/optim/sgd.ts";
import { assertClose } from "./helpers.ts";

/** A range test on f(w) = sum(a * w^2) / 2 with SGD, weights carried over from step to step. */
function quadraticTest(suggest: "steepest" | "minOver10") {
  const a = tensor([1, 2, 4], { dtype: "float64" });
  const w = tensor([1, 1, 1], { dtype: "float64", requiresGrad: true });
  const opt = new SGD([w], { lr: 1 });
  return lrRangeTest({
    minLr: 1e-4,
    maxLr: 10,
    numSteps: 100,
    beta: 0.9,
    suggest,
    step: (lr) => {
      opt.paramGroups[0].lr = lr;
      opt.zeroGrad();
      const loss = w.square().mul(a).sum().mul(0.5);
      loss.backward();
      opt.step();
      return loss;
    },
  });
}

test("on a quadratic, the suggestion lies in the stable range (below 2 / max curvature = 0.5)", () => {
  for (const rule of ["steepest", "minOver10"] as const) {
    const r = quadraticTest(rule);
    assert.equal(r.diverged, true, "the test runs until the loss blows up");
    assert.ok(r.lrs.length < 100, "and stops early");
    assert.ok(r.lrs.at(-1)! > 0.5, "divergence happens above the stability limit");
    assert.ok(r.suggestion >= 1e-2 && r.suggestion <= 0.5, `${rule} suggestion ${r.suggestion}`);
    assert.equal(r.suggestion, rule === "steepest" ? r.steepest : r.minOver10);
  }
});

test("lr grid is geometric from minLr to maxLr; losses are bias-corrected EMAs of the raw losses", () => {
  const raw = [5, 4, 6, 3, 2, 2.5, 1, 1.5];
  let i = 0;
  const r = lrRangeTest({ minLr: 1e-3, maxLr: 1e-1, numSteps: 8, beta: 0.5, step: () => raw[i++] });
  assert.equal(r.diverged, false);
  assertClose(
    r.lrs,
    raw.map((_, k) => 1e-3 * 100 ** (k / 7)),
    1e-14,
  );
  assert.equal(r.lrs[7], 1e-1);
  assert.deepEqual(r.rawLosses, raw);
  let avg = 0;
  const expected = raw.map((x, k) => {
    avg = 0.5 * avg + 0.5 * x;
    return avg / (1 - 0.5 ** (k + 1));
  });
  assertClose(r.losses, expected, 1e-14);
  // lowest smoothed loss at the last point
  const minIdx = expected.indexOf(Math.min(...expected));
  assertClose([r.minOver10], [r.lrs[minIdx] / 10], 1e-15);
});

test("stops at the first smoothed loss above divergeFactor x best, or a non-finite loss", () => {
  const raw = [4, 3.5, 2, 1, 3.9, 4.1, 0];
  let i = 0;
  const r = lrRangeTest({ numSteps: 7, beta: 0, step: () => raw[i++] });
  assert.equal(r.diverged, true);
  assert.deepEqual(r.rawLosses, [4, 3.5, 2, 1, 3.9, 4.1]);
  // central differences over the points before divergence: -0.5, -1, -1.25, +0.95, +2.9 (per log-lr step)
  assert.equal(r.steepest, r.lrs[2]);
  assertClose([r.minOver10], [r.lrs[3] / 10], 1e-15);
  let j = 0;
  const n = lrRangeTest({ numSteps: 10, step: () => (j++ === 3 ? Number.NaN : 1) });
  assert.equal(n.diverged, true);
  assert.equal(n.lrs.length, 4);
  assert.throws(() => lrRangeTest({ step: () => 1, minLr: 1, maxLr: 0.5 }), /lrRangeTest: invalid maxLr 0.5/);
});
