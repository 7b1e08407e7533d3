// Post-accumulate gradient hooks (Tensor.registerPostAccumulateGradHook), which DistributedDataParallel uses
// to start reducing gradients while backward is still running.
import assert from "node:assert/strict";
import { test } from "node:test";
import { tensor } from "../../src/index.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

test("a hook runs once per backward, after .grad holds the final gradient, before backward ends", () => {
  const x = tensor([0.5, -1, 2], { dtype: "float64" });
  const w1 = tensor([1, 2, 3], { dtype: "float64", requiresGrad: true });
  const w2 = tensor([0.25, 0.5, -1], { dtype: "float64", requiresGrad: true });
  // w1 is used twice (its gradient has two contributions) and earlier than w2
  const h = w1.mul(x).add(w1.mul(w1));
  const loss = h.mul(w2).sum();
  const seen: string[] = [];
  let w1GradWhenW2Hooked: Tensor | null | undefined;
  w1.registerPostAccumulateGradHook((t) => {
    assert.equal(t, w1);
    seen.push("w1");
    // d loss / d w1 = w2 * (x + 2 w1)
    assert.deepEqual(t.grad!.toArray(), [0.25 * (0.5 + 2), 0.5 * (-1 + 4), -1 * (2 + 6)]);
  });
  w2.registerPostAccumulateGradHook((t) => {
    seen.push("w2");
    w1GradWhenW2Hooked = w1.grad;
    assert.deepEqual(t.grad!.toArray(), [0.5 + 1, -2 + 4, 6 + 9]); // h
  });
  loss.backward();
  assert.deepEqual(seen, ["w2", "w1"]);
  assert.equal(w1GradWhenW2Hooked, null, "w2's hook ran while w1's gradient was still being computed");
});

test("hooks see accumulated gradients across backward passes; remove() unregisters", () => {
  const w = tensor([1, 2], { dtype: "float64", requiresGrad: true });
  const grads: unknown[] = [];
  const handle = w.registerPostAccumulateGradHook((t) => grads.push(t.grad!.toArray()));
  w.mul(3).sum().backward();
  w.mul(3).sum().backward();
  assert.deepEqual(grads, [
    [3, 3],
    [6, 6],
  ]);
  handle.remove();
  w.sum().backward();
  assert.equal(grads.length, 2);
  assert.deepEqual(w.grad!.toArray(), [7, 7]);
});

test("a leaf that is the backward root itself also runs its hook; non-leaves are refused", () => {
  const w = tensor([2], { dtype: "float64", requiresGrad: true });
  let calls = 0;
  w.registerPostAccumulateGradHook(() => calls++);
  w.backward();
  assert.equal(calls, 1);
  const y = w.mul(2);
  assert.throws(() => y.registerPostAccumulateGradHook(() => {}), /only a leaf tensor that requires grad/);
  assert.throws(() => tensor([1]).registerPostAccumulateGradHook(() => {}), /only a leaf tensor/);
});
