/**
 * A/B of the bench's e2e loop (MLP 784-256-128-10, batch 128, Adam 1e-3, digits) in one process, alternating
 * run by run (A, B, then B, A, ...; the first round is a warm-up), reporting median process CPU and wall time
 * per epoch. Two kinds of A:
 *   --old PATH      another native addon build (e.g. a copy of main's native/build/Release/chainrule_native.node)
 *                   under this checkout's TypeScript: compares kernels.
 *   --old-src DIR   another checkout's library (DIR/src, e.g. a `git worktree` of main with native/build in
 *                   place), a second copy of the whole library in this process: compares TypeScript (and
 *                   each side's own addon).
 * B is always this checkout. `--case mlp` runs the bench's MLP step instead (784-512-256-10, one fixed batch of
 * 128, 78 steps a run).
 *   taskset -c 1 node --import tsx bench/e2e-ab.ts --old-src /tmp/main-copy [--rounds 10] [--threads 1] [--case mlp]
 */
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Backend } from "../src/backend/backend.ts";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { createNativeBackend } from "../src/backend/native/backend.ts";
import * as nativeIndex from "../src/backend/native/index.ts";
import * as registry from "../src/backend/registry.ts";
import { loadDigits } from "../src/data/digits.ts";
import * as lib from "../src/index.ts";
import * as nn from "../src/nn/index.ts";
import * as optim from "../src/optim/index.ts";

const { values } = parseArgs({
  options: {
    old: { type: "string" },
    "old-src": { type: "string" },
    rounds: { type: "string", default: "10" },
    threads: { type: "string", default: "1" },
    case: { type: "string", default: "e2e" },
  },
});
if ((values.old === undefined) === (values["old-src"] === undefined))
  throw new Error("e2e-ab: give one of --old PATH (an addon build) or --old-src DIR (another checkout)");
const threads = Number(values.threads);
const mlpCase = values.case === "mlp";

/** What one side of the comparison needs of a library copy. */
interface Side {
  name: string;
  setBackend: (b: Backend) => void;
  backend: Backend;
  tensor: typeof lib.tensor;
  nn: Pick<typeof nn, "crossEntropy" | "Linear" | "ReLU" | "Sequential">;
  Adam: typeof optim.Adam;
}

function loadedBackend(m: typeof nativeIndex): Backend {
  const loaded = m.loadNativeBackend();
  if ("error" in loaded) throw new Error(loaded.error);
  m.setNumThreads(threads);
  return loaded.backend;
}

const here: Side = {
  name: "B (this checkout)",
  setBackend: registry.setBackend,
  backend: loadedBackend(nativeIndex),
  tensor: lib.tensor,
  nn,
  Adam: optim.Adam,
};
let other: Side;
if (values.old !== undefined) {
  const oldAddon = createRequire(import.meta.url)(values.old) as NativeAddon;
  oldAddon.setNumThreads(threads);
  other = { ...here, name: "A (old addon)", backend: createNativeBackend(oldAddon) };
} else {
  const root = resolve(values["old-src"]!, "src");
  const imp = (p: string) => import(pathToFileURL(resolve(root, p)).href);
  const [oi, oreg, olib, onn, ooptim] = await Promise.all([
    imp("backend/native/index.ts"),
    imp("backend/registry.ts"),
    imp("index.ts"),
    imp("nn/index.ts"),
    imp("optim/index.ts"),
  ]);
  other = {
    name: `A (${values["old-src"]})`,
    setBackend: oreg.setBackend,
    backend: loadedBackend(oi),
    tensor: olib.tensor,
    nn: onn,
    Adam: ooptim.Adam,
  };
}
const sides = [other, here];

const d = loadDigits();
const steps = Math.floor(d.n / 128);
let seed = 7;
const perm = Int32Array.from({ length: d.n }, (_, i) => i);
for (let i = d.n - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  const j = Math.floor((seed / 2 ** 31) * (i + 1));
  [perm[i], perm[j]] = [perm[j], perm[i]];
}

/** One epoch on side `s`: [cpu ms, wall ms, final loss]. */
function epoch(s: Side): [number, number, number] {
  s.setBackend(s.backend);
  const { tensor } = s;
  const { crossEntropy, Linear, ReLU, Sequential } = s.nn;
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
  const opt = new s.Adam(model.parameters(), { lr: 1e-3 });
  let loss = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < steps; k++) {
    const idx = tensor(perm.subarray(mlpCase ? 0 : k * 128, mlpCase ? 128 : (k + 1) * 128));
    opt.zeroGrad();
    const l = crossEntropy(model.call(X.indexSelect(0, idx)), Y.indexSelect(0, idx));
    l.backward();
    opt.step();
    if (k === steps - 1) loss = l.item();
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
const res = sides.map(() => ({ cpu: [] as number[], wall: [] as number[], loss: 0 }));
const rounds = Number(values.rounds);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const k of order) {
    const [cpu, wall, loss] = epoch(sides[k]);
    if (r === 0) continue; // warm-up
    res[k].cpu.push(cpu);
    res[k].wall.push(wall);
    res[k].loss = loss;
  }
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
for (const [k, s] of sides.entries())
  console.log(
    `${s.name}: per epoch (${steps} steps) median cpu ${med(res[k].cpu).toFixed(0)} ms, wall ${med(res[k].wall).toFixed(0)} ms; last loss ${res[k].loss.toFixed(4)}`,
  );
console.log(
  `B / A: cpu ${(med(res[1].cpu) / med(res[0].cpu)).toFixed(3)}, wall ${(med(res[1].wall) / med(res[0].wall)).toFixed(3)}; load average ${load()}`,
);
