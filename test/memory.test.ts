/**
 * Memory manages itself: thousands of eager and functional training steps, with no dispose/tidy calls, keep the
 * heap and typed-array memory flat once the garbage collector has run; and on the wasm backend, a synchronous
 * training loop (which never lets FinalizationRegistry callbacks run) keeps the wasm memory and RSS flat; so does
 * a native CNN loop, whose freed tensor memory the addon keeps for reuse (mallopt) instead of returning it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import {
  getBackend,
  grad,
  manualSeed,
  nn,
  noGrad,
  optim,
  randn,
  randint,
  setBackend,
  type Tensor,
  tensor,
} from "../src/index.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

function usedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** One Adam training step of `model` on (x, y) per call; returns the loss. */
function adamStep(model: nn.Module, x: Tensor, y: Tensor): () => number {
  const opt = new optim.Adam(model.parameters(), { lr: 1e-3 });
  return () => {
    opt.zeroGrad();
    const loss = nn.crossEntropy(model.call(x) as Tensor, y);
    loss.backward();
    opt.step();
    return loss.item() as number;
  };
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

test("wasm backend: a synchronous training loop keeps wasm memory and RSS flat", () => {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(r.error);
  const wasm = r.backend;
  const previous = getBackend();
  setBackend(wasm);
  try {
    manualSeed(4);
    const model = new nn.Sequential(new nn.Linear(256, 256), new nn.ReLU(), new nn.Linear(256, 10));
    const x = randn([64, 256]);
    const y = randint(0, 10, [64]);
    // no await anywhere: finalizers cannot run, so storage the GC does not reclaim by itself would pile up
    // (each step allocates about 0.65 MB: activations, gradients, temporaries; the previous design, storage
    // in wasm memory freed by a FinalizationRegistry, grew by that much per step here)
    const step = adamStep(model, x, y);
    for (let i = 0; i < 100; i++) step();
    const wasmBytes: number[] = [];
    const memory: number[] = [];
    const rss: number[] = [];
    let last = 0;
    for (let i = 0; i < 800; i++) {
      last = step();
      if (i % 200 === 199) {
        gc();
        wasmBytes.push(wasm.backendBytes());
        memory.push(wasm.heapStats().memoryBytes);
        rss.push(process.memoryUsage().rss);
      }
    }
    const msg = JSON.stringify({ wasmBytes, memory, rss });
    assert.ok(Number.isFinite(last) && last < 2.3, `the loop trains: loss ${last}`);
    assert.ok(
      wasmBytes.every((b) => b === wasmBytes[0]),
      `the backend's wasm bytes stop growing: ${msg}`,
    );
    assert.ok(
      memory.every((b) => b === memory[0]),
      `the wasm memory stops growing: ${msg}`,
    );
    // 800 leaked steps would be over 500 MB
    assert.ok(rss[rss.length - 1] - rss[0] < 64 * 2 ** 20, `RSS stops growing: ${msg}`);
  } finally {
    setBackend(previous);
  }
});

test("native backend: a CNN training loop keeps tensor memory and RSS flat (with the addon's malloc settings)", () => {
  const r = loadNativeBackend();
  if ("error" in r) throw new Error(r.error);
  const previous = getBackend();
  setBackend(r.backend);
  try {
    manualSeed(5);
    // conv + relu + pool (the direct convolution with its epilogue, the fused pool backward), then a linear layer
    const model = new nn.Sequential(
      new nn.Conv2d(1, 8, 3, { padding: 1 }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Flatten(),
      new nn.Linear(8 * 8 * 8, 10),
    );
    const x = randn([32, 1, 16, 16]);
    const y = randint(0, 10, [32]);
    // each step allocates about 1 MB of tensors (the largest 260 KB, above the uninitialised-allocation cut-off)
    const step = adamStep(model, x, y);
    for (let i = 0; i < 100; i++) step();
    const used: number[] = [];
    const rss: number[] = [];
    let last = 0;
    for (let i = 0; i < 800; i++) {
      last = step();
      if (i % 200 === 199) {
        used.push(usedBytes());
        rss.push(process.memoryUsage().rss);
      }
    }
    const msg = JSON.stringify({ used, rss });
    assert.ok(Number.isFinite(last) && last < 2.3, `the loop trains: loss ${last}`);
    // 800 leaked steps would be about 800 MB
    assert.ok(used[used.length - 1] - used[0] < 4 * 2 ** 20, `heap and array buffers stop growing: ${msg}`);
    assert.ok(rss[rss.length - 1] - rss[0] < 64 * 2 ** 20, `RSS stops growing: ${msg}`);
  } finally {
    setBackend(previous);
  }
});
