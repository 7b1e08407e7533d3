/**
 * The eager MLP step (784-512-256-10, batch 128, Adam) on 1 and 2 native threads, interleaved in one process
 * (setNumThreads between rounds), with a per-phase breakdown (forward, backward, optimizer step) and the garbage collector's pauses: why 2 threads
 * can be slower than 1. Run: `node --import tsx bench/mlp-threads.ts [--rounds 20] [--steps 50]`.
 */
import { loadavg } from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { rand, randint } from "../src/index.ts";
import { crossEntropy, Linear, ReLU, Sequential } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "20" }, steps: { type: "string", default: "50" } },
});
const loaded = loadNativeBackend();
if ("error" in loaded) throw new Error(loaded.error);
setBackend(loaded.backend);

const model = new Sequential(
  new Linear(784, 512),
  new ReLU(),
  new Linear(512, 256),
  new ReLU(),
  new Linear(256, 10),
);
const opt = new Adam(model.parameters(), { lr: 1e-3 });
const x = rand([128, 784]);
const y = randint(0, 10, [128], { dtype: "int32" });
const PH = ["forward", "backward", "step", "total", "gc"] as const;
// garbage collection pauses (V8's gc performance entries), summed per mode
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ["gc"] });
const turn = () => new Promise((r) => setImmediate(r));
const res: Record<number, Record<string, number[]>> = {};
for (const t of [1, 2]) res[t] = Object.fromEntries(PH.map((p) => [p, [] as number[]]));
const steps = Number(values.steps);
console.log(
  `load average ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")}`,
);
for (let r = 0; r < Number(values.rounds); r++) {
  for (const t of r % 2 === 0 ? [1, 2] : [2, 1]) {
    setNumThreads(t);
    await turn(); // deliver the previous mode's gc entries
    gcMs = 0;
    const acc = { forward: 0, backward: 0, step: 0, total: 0, gc: 0 };
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      let a = performance.now();
      opt.zeroGrad();
      const loss = crossEntropy(model.call(x), y);
      let b = performance.now();
      acc.forward += b - a;
      a = b;
      loss.backward();
      b = performance.now();
      acc.backward += b - a;
      a = b;
      opt.step();
      b = performance.now();
      acc.step += b - a;
      loss.item();
    }
    acc.total = performance.now() - t0;
    await turn();
    acc.gc = gcMs;
    if (r > 0) for (const p of PH) res[t][p].push(acc[p] / steps);
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
for (const t of [1, 2])
  console.log(
    `${t} thread(s), ms per step (median; gc: mean): ${PH.map((p) => `${p} ${(p === "gc" ? mean : med)(res[t][p]).toFixed(3)}`).join(", ")}`,
  );
console.log(
  `load average ${loadavg()
    .map((v) => v.toFixed(2))
    .join(" ")}`,
);
