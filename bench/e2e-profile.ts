/**
 * Phase breakdown of the bench's e2e workload (MLP 784-256-128-10 on the 10,000 digits, batch 128, Adam 1e-3,
 * eager, native backend): per step, the batch gather, forward + loss, backward, zeroGrad and the optimizer step,
 * by wall and process CPU time. Run pinned for the 1-thread figure:
 *   taskset -c 1 node --import tsx bench/e2e-profile.ts --threads 1 [--epochs 5] [--rounds 3] [--warm 0]
 * `--warm N` runs N untimed epochs first in each round (steady state without the JIT's and the heap's warm-up);
 * `--mlp-warm N` first runs N steps of the bench's MLP case (784-512-256-10, one batch), as bench/run.ts does
 * before the e2e row when both run (`--only e2e,mlp`). Each round also reports the garbage collections in its timed
 * epochs (count and total duration, minor/major). `--v8-flags "..."` applies V8 flags at start (v8.setFlagsFromString),
 * e.g. "--no-incremental-marking" to compare the collector's schedules. `--curve` prints each epoch's wall time and the
 * first 20 steps' (the warm-up of a fresh process).
 */
import { loadavg } from "node:os";
import { constants as perfConstants, PerformanceObserver } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { parseArgs } from "node:util";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { loadDigits } from "../src/data/digits.ts";
import { crossEntropy, Linear, ReLU, Sequential } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { tensor } from "../src/index.ts";
import { timeBackendCalls } from "./harness.ts";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "1" },
    epochs: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    warm: { type: "string", default: "0" },
    "mlp-warm": { type: "string", default: "0" },
    "v8-flags": { type: "string" },
    kernels: { type: "boolean" },
    curve: { type: "boolean" },
  },
});
if (values["v8-flags"] !== undefined) setFlagsFromString(values["v8-flags"]);
/** Garbage collections: start time, duration (ms) and kind (perf_hooks' NODE_PERFORMANCE_GC_MINOR / _MAJOR ...). */
const gcLog: { start: number; ms: number; kind: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
    gcLog.push({ start: e.startTime, ms: e.duration, kind });
  }
}).observe({ entryTypes: ["gc"] });
/** "minor N (ms), major N (ms)" for the collections that started in [t0, t1] (after the observer has run). */
async function gcSummary(t0: number, t1: number): Promise<string> {
  await new Promise((r) => setTimeout(r, 50)); // the observer is called from a later task
  const sum = (kind: number) => {
    const es = gcLog.filter((g) => g.kind === kind && g.start >= t0 && g.start <= t1);
    return `${es.length} (${es.reduce((a, g) => a + g.ms, 0).toFixed(0)} ms)`;
  };
  return `GC minor ${sum(perfConstants.NODE_PERFORMANCE_GC_MINOR)}, major ${sum(perfConstants.NODE_PERFORMANCE_GC_MAJOR)}`;
}
const loaded = loadNativeBackend();
if ("error" in loaded) throw new Error(loaded.error);
/** With --kernels, every backend method is wrapped to add up its wall time per call name (kernel time per step). */
const kernelMs = values.kernels
  ? timeBackendCalls(loaded.backend, (k, args) =>
      // products by shape: [..., M, K] @ [..., K, N]
      k === "dot"
        ? `dot ${(args[0] as { shape: number[] }).shape.join("x")}@${(args[1] as { shape: number[] }).shape.join("x")}${(args[1] as { strides: number[] }).strides.at(-1) === 1 ? "" : "^T"}`
        : k,
    )
  : new Map<string, { ms: number; calls: number }>();
setBackend(loaded.backend);
setNumThreads(Number(values.threads));

const d = loadDigits();
const n = d.n;
const epochs = Number(values.epochs);
const warm = Number(values.warm);
let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const perm = new Int32Array((warm + epochs) * n);
for (let e = 0; e < warm + epochs; e++) {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  perm.set(p, e * n);
}

const PHASES = ["gather", "forward", "backward", "zeroGrad", "step"] as const;
function run(): {
  wall: number;
  cpu: number;
  phases: Record<string, number>;
  cpuPhases: Record<string, number>;
  loss: number;
  t0: number;
  t1: number;
  epochMs: number[];
  firstSteps: number[];
} {
  const X = tensor(d.images, { shape: [n, 784] });
  const Y = tensor(d.labels, { dtype: "int32" });
  const model = new Sequential(
    new Linear(784, 256),
    new ReLU(),
    new Linear(256, 128),
    new ReLU(),
    new Linear(128, 10),
  );
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const steps = Math.floor(n / 128);
  const ph: Record<string, number> = Object.fromEntries(PHASES.map((p) => [p, 0]));
  const pc: Record<string, number> = Object.fromEntries(PHASES.map((p) => [p, 0]));
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  // the end of the previous phase, wall and CPU; `lap(k)` charges the time since then to phase k
  let wallAt = 0;
  let cpuAt = 0;
  const lap = (k: string) => {
    const w = performance.now();
    const c = cpuMs();
    ph[k] += w - wallAt;
    pc[k] += c - cpuAt;
    wallAt = w;
    cpuAt = c;
  };
  let lossT = null as ReturnType<typeof crossEntropy> | null;
  for (let e = epochs; e < epochs + warm; e++) {
    for (let s = 0; s < steps; s++) {
      const idx = tensor(perm.subarray(e * n + s * 128, e * n + s * 128 + 128));
      opt.zeroGrad();
      crossEntropy(model.call(X.indexSelect(0, idx)), Y.indexSelect(0, idx)).backward();
      opt.step();
    }
  }
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const epochMs: number[] = [];
  const firstSteps: number[] = [];
  for (let e = 0; e < epochs; e++) {
    const te = performance.now();
    for (let s = 0; s < steps; s++) {
      const ts = performance.now();
      const start = e * n + s * 128;
      wallAt = performance.now();
      cpuAt = cpuMs();
      const idx = tensor(perm.subarray(start, start + 128));
      const x = X.indexSelect(0, idx);
      const y = Y.indexSelect(0, idx);
      lap("gather");
      opt.zeroGrad(process.env.KEEP_GRAD !== "1");
      lap("zeroGrad");
      const loss = crossEntropy(model.call(x), y);
      lap("forward");
      loss.backward();
      lap("backward");
      opt.step();
      lap("step");
      lossT = loss;
      if (firstSteps.length < 20) firstSteps.push(performance.now() - ts);
    }
    epochMs.push(performance.now() - te);
  }
  const loss = lossT!.item();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    wall,
    cpu: (c.user + c.system) / 1000,
    phases: ph,
    cpuPhases: pc,
    loss,
    t0,
    t1: t0 + wall,
    epochMs,
    firstSteps,
  };
}

console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}, threads ${values.threads}`,
);
const mlpWarm = Number(values["mlp-warm"]);
if (mlpWarm > 0) {
  const m = new Sequential(
    new Linear(784, 512),
    new ReLU(),
    new Linear(512, 256),
    new ReLU(),
    new Linear(256, 10),
  );
  const o = new Adam(m.parameters(), { lr: 1e-3 });
  const xb = tensor(d.images.subarray(0, 128 * 784), { shape: [128, 784] });
  const yb = tensor(d.labels.subarray(0, 128), { dtype: "int32" });
  const c0 = process.cpuUsage();
  for (let i = 0; i < mlpWarm; i++) {
    o.zeroGrad();
    crossEntropy(m.call(xb), yb).backward();
    o.step();
  }
  const c = process.cpuUsage(c0);
  console.log(
    `MLP warm-up: ${mlpWarm} steps, cpu ${((c.user + c.system) / 1000 / mlpWarm).toFixed(3)} ms per step`,
  );
}
const rounds = Number(values.rounds);
const all: ReturnType<typeof run>[] = [];
for (let r = 0; r < rounds; r++) {
  kernelMs.clear();
  const res = run();
  all.push(res);
  const steps = epochs * Math.floor(n / 128);
  console.log(
    `round ${r}: wall ${(res.wall / 1000).toFixed(3)} s, cpu ${(res.cpu / 1000).toFixed(3)} s, loss ${res.loss.toFixed(4)}; per step (ms): ` +
      PHASES.map((p) => `${p} ${(res.phases[p] / steps).toFixed(3)}`).join(", ") +
      "; cpu per step (ms): " +
      PHASES.map((p) => `${p} ${(res.cpuPhases[p] / steps).toFixed(3)}`).join(", ") +
      `; ${await gcSummary(res.t0, res.t1)}`,
  );
  if (values.curve) {
    console.log(
      `  epochs (ms): ${res.epochMs.map((x) => x.toFixed(0)).join(", ")}; first steps (ms): ${res.firstSteps.map((x) => x.toFixed(2)).join(" ")}`,
    );
  }
  if (values.kernels) {
    const rows = [...kernelMs].sort((a, b) => b[1].ms - a[1].ms);
    const total = rows.reduce((a, [, e]) => a + e.ms, 0);
    console.log(
      `  backend calls per step: ${(total / steps).toFixed(3)} ms; ` +
        rows
          .map(([k, e]) => `${k} ${(e.ms / steps).toFixed(3)} (${(e.calls / steps).toFixed(1)})`)
          .join(", "),
    );
  }
}
console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
