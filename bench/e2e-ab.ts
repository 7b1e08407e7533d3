/**
 * A/B of two native addon builds on the bench's e2e loop (MLP 784-256-128-10, batch 128, Adam 1e-3, digits),
 * in one process, alternating run by run: this checkout's build (B) against another build (A, e.g. a copy of
 * main's native/build/Release/chainrule_native.node). Reports median process CPU and wall time per epoch.
 * `--case mlp` runs the bench's MLP step instead (784-512-256-10, one fixed batch of 128, 78 steps a run).
 *   taskset -c 1 node --import tsx bench/e2e-ab.ts --old /tmp/old.node [--rounds 10] [--threads 1] [--case mlp]
 */
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.ts";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { createNativeBackend } from "../src/backend/native/backend.ts";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { loadDigits } from "../src/data/digits.ts";
import { tensor } from "../src/index.ts";
import { crossEntropy, Linear, ReLU, Sequential } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";

const { values } = parseArgs({
  options: {
    old: { type: "string" },
    rounds: { type: "string", default: "10" },
    threads: { type: "string", default: "1" },
    case: { type: "string", default: "e2e" },
  },
});
if (values.old === undefined)
  throw new Error("e2e-ab: --old PATH (the A build's chainrule_native.node) is required");
const threads = Number(values.threads);
const mlpCase = values.case === "mlp";
const loaded = loadNativeBackend();
if ("error" in loaded) throw new Error(loaded.error);
setNumThreads(threads);
const oldAddon = createRequire(import.meta.url)(values.old) as NativeAddon;
const oldBackend = createNativeBackend(oldAddon);
oldAddon.setNumThreads(threads);
const backends: [string, Backend][] = [
  ["A (old)", oldBackend],
  ["B (this build)", loaded.backend],
];

const d = loadDigits();
const steps = Math.floor(d.n / 128);
let seed = 7;
const perm = Int32Array.from({ length: d.n }, (_, i) => i);
for (let i = d.n - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  const j = Math.floor((seed / 2 ** 31) * (i + 1));
  [perm[i], perm[j]] = [perm[j], perm[i]];
}

/** One epoch on `be`: [cpu ms, wall ms, final loss]. */
function epoch(be: Backend): [number, number, number] {
  setBackend(be);
  const X = tensor(d.images, { shape: [d.n, 784] });
  const Y = tensor(d.labels, { dtype: "int32" });
  const [h1, h2] = mlpCase ? [512, 256] : [256, 128];
  const model = new Sequential(
    new Linear(784, h1),
    new ReLU(),
    new Linear(h1, h2),
    new ReLU(),
    new Linear(h2, 10),
  );
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  let loss = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const idx = tensor(perm.subarray(mlpCase ? 0 : s * 128, mlpCase ? 128 : (s + 1) * 128));
    opt.zeroGrad();
    const l = crossEntropy(model.call(X.indexSelect(0, idx)), Y.indexSelect(0, idx));
    l.backward();
    opt.step();
    if (s === steps - 1) loss = l.item();
  }
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return [(c.user + c.system) / 1000, wall, loss];
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
console.log(`load average ${load()}; ${threads} thread(s); ${mlpCase ? "MLP step" : "e2e"}`);
const res = backends.map(() => ({ cpu: [] as number[], wall: [] as number[], loss: 0 }));
const rounds = Number(values.rounds);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const k of order) {
    const [cpu, wall, loss] = epoch(backends[k][1]);
    if (r === 0) continue; // warm-up
    res[k].cpu.push(cpu);
    res[k].wall.push(wall);
    res[k].loss = loss;
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const [k, [name]] of backends.entries())
  console.log(
    `${name}: per epoch (${steps} steps) median cpu ${med(res[k].cpu).toFixed(0)} ms, wall ${med(res[k].wall).toFixed(0)} ms; last loss ${res[k].loss.toFixed(4)}`,
  );
console.log(
  `B / A: cpu ${(med(res[1].cpu) / med(res[0].cpu)).toFixed(3)}, wall ${(med(res[1].wall) / med(res[0].wall)).toFixed(3)}; load average ${load()}`,
);
