/**
 * Memory manages itself: thousands of eager and functional training steps, with no dispose/tidy calls, keep the
 * heap and typed-array memory flat once the garbage collector has run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { grad, manualSeed, noGrad, randn, type Tensor, tensor } from "../src/index.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

function usedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test("eager and functional training loops keep memory flat (no dispose needed)", () => {
  manualSeed(3);
  const x = randn([64, 32]);
  const y = randn([64, 1]);
  const w1 = randn([32, 64]).mul(0.1).requiresGrad_();
  const w2 = randn([64, 1]).mul(0.1).requiresGrad_();
  const loss = (a: Tensor, b: Tensor) => x.matmul(a).tanh().matmul(b).sub(y).square().mean();
  const step = () => {
    const l = loss(w1, w2);
    l.backward();
    noGrad(() => {
      w1.sub_(w1.grad!, 0.01);
      w2.sub_(w2.grad!, 0.01);
    });
    w1.grad = null;
    w2.grad = null;
    const [g1, g2] = grad(loss, { argnums: [0, 1] })(w1.detach(), w2.detach()) as Tensor[];
    return (g1.sum().item() as number) + (g2.sum().item() as number);
  };
  for (let i = 0; i < 300; i++) step();
  const start = usedBytes();
  const samples: number[] = [];
  for (let i = 0; i < 3000; i++) {
    step();
    if (i % 500 === 499) samples.push(usedBytes());
  }
  const growth = samples[samples.length - 1] - start;
  // one step allocates ~100 KB of tensors; 3000 leaked steps would be ~300 MB
  assert.ok(
    growth < 4 * 1024 * 1024,
    `memory grew by ${(growth / 1e6).toFixed(1)} MB over 3000 steps: ${samples}`,
  );
  assert.ok(Number.isFinite(loss(w1, w2).item() as number));
  assert.equal(tensor(1).add(1).item(), 2);
});
