/**
 * Fused attention against the composed path, interleaved in one process (issue 13): for each sequence length,
 * the forward + backward of bench/workloads.ts's attention row (gradients of sum(attention(q, k, v) * w) with
 * respect to q, k and v; batch and heads as ATTN, E = ATTN.dim, float32, native backend) alternately through
 * nn.scaledDotProductAttention (the sdpa primitive) and through the composition (_attention: softmax(q k^T /
 * sqrt(E)) v with the [L, S] scores materialised). Alternating A and B within one process spreads a shared
 * machine's noise over both; the report is the median of each and the median of the per-round ratios.
 *
 *   npx tsx bench/attention-ab.ts [--lens 128,512,1024] [--rounds 9] [--causal]
 *   npx tsx bench/attention-ab.ts --mem fused|composed [--len 1024] [--steps 3]   (for /usr/bin/time -v)
 *
 * With `--autocast bfloat16|float16` (float32 leaves, q, k, v cast by autocast, gradients back to float32) three
 * paths alternate: the fused primitive under autocast, the composition under autocast (two 16-bit matmuls
 * around a float32 softmax) and the float32 fused primitive without autocast; each call's wall time and the
 * process's CPU time (process.cpuUsage, user + system) are recorded, medians and per-round ratios reported.
 * `--threads n` sets the native pool's threads (for CPU time, run `taskset -c 1 ... --threads 1`). With
 * `--mem`, `--autocast` runs that path under autocast.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { autocast, grad, manualSeed, nn, randn, type Tensor } from "../src/index.ts";
import { _attention } from "../src/nn/attention.ts";
import { ATTN } from "./workloads.ts";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const loaded = loadNativeBackend();
if (!("backend" in loaded)) throw new Error(`native backend: ${loaded.error}`);
setBackend(loaded.backend);
const causal = process.argv.includes("--causal");
const low = arg("autocast", "") as "" | "bfloat16" | "float16";
if (arg("threads", "") !== "") setNumThreads(Number(arg("threads", "")));

function step(len: number, fused: boolean, dtype: "" | "bfloat16" | "float16" = low): () => number {
  manualSeed(13);
  const shape = [ATTN.batch, ATTN.heads, len, ATTN.dim];
  const [q, k, v, w] = [0, 1, 2, 3].map(() => randn(shape));
  const attn = fused
    ? (a: Tensor, b: Tensor, c: Tensor) => nn.scaledDotProductAttention(a, b, c, { isCausal: causal })
    : (a: Tensor, b: Tensor, c: Tensor) => _attention("attention", a, b, c, { isCausal: causal }, "keep")[0];
  const run =
    dtype === "" ? attn : (a: Tensor, b: Tensor, c: Tensor) => autocast({ dtype }, () => attn(a, b, c));
  const g = grad((a: Tensor, b: Tensor, c: Tensor) => run(a, b, c).mul(w).sum(), { argnums: [0, 1, 2] });
  return () => (g(q, k, v) as Tensor[])[0].index(0, 0, 0, 0).item();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(f: () => number): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

/** Wall and CPU time (ms) of one call. */
function times(f: () => number): [number, number] {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  f();
  const t = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return [t, (c.user + c.system) / 1000];
}

const mem = arg("mem", "");
if (mem === "" && low !== "") {
  const rounds = Number(arg("rounds", "9"));
  console.log(
    `batch ${ATTN.batch}, heads ${ATTN.heads}, E ${ATTN.dim}, forward + backward${causal ? ", causal" : ""}: fused ${low} (autocast) / composed ${low} (autocast) / fused float32`,
  );
  for (const len of arg("lens", "512,1024").split(",").map(Number)) {
    const paths = [step(len, true), step(len, false), step(len, true, "")];
    for (const f of paths) f();
    const wall: number[][] = [[], [], []];
    const cpu: number[][] = [[], [], []];
    const rFC: number[] = [];
    const rF32: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // rotate the order each round so no path always runs right after another
      for (let j = 0; j < 3; j++) {
        const i = (r + j) % 3;
        const [w, c] = times(paths[i]);
        wall[i].push(w);
        cpu[i].push(c);
      }
      rFC.push(cpu[0][r] / cpu[1][r]);
      rF32.push(cpu[0][r] / cpu[2][r]);
    }
    const fmt = (xs: number[]) => median(xs).toFixed(1);
    console.log(
      `L=${len}: CPU ms fused ${fmt(cpu[0])}, composed ${fmt(cpu[1])}, float32 fused ${fmt(cpu[2])}; wall ms ${fmt(wall[0])} / ${fmt(wall[1])} / ${fmt(wall[2])}; median ratios (CPU) fused/composed ${median(rFC).toFixed(3)}, fused ${low}/fused float32 ${median(rF32).toFixed(3)}`,
    );
  }
} else if (mem !== "") {
  const f = step(Number(arg("len", "1024")), mem === "fused");
  for (let i = 0; i < Number(arg("steps", "3")); i++) f();
  // one more step's peak above the resident set before it (VmHWM reset through clear_refs, after a full GC),
  // as bench/peers/chainrule.ts's peak-memory rows
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  writeFileSync("/proc/self/clear_refs", "5");
  const before = process.memoryUsage().rss;
  f();
  const hwm = Number(/VmHWM:\s*(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? Number.NaN);
  console.log(
    `${mem}${low === "" ? " float32" : ` under ${low} autocast`} L=${arg("len", "1024")}: one step's peak ${((hwm * 1024 - before) / 2 ** 20).toFixed(0)} MiB above the resident set before it (${(before / 2 ** 20).toFixed(0)} MiB); rss now ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
} else {
  const rounds = Number(arg("rounds", "9"));
  console.log(
    `batch ${ATTN.batch}, heads ${ATTN.heads}, E ${ATTN.dim}, float32, forward + backward${causal ? ", causal" : ""}`,
  );
  for (const len of arg("lens", "128,512,1024").split(",").map(Number)) {
    const f = step(len, true);
    const c = step(len, false);
    f();
    c();
    const tf: number[] = [];
    const tc: number[] = [];
    const ratio: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const a = time(f);
      const b = time(c);
      tf.push(a);
      tc.push(b);
      ratio.push(a / b);
    }
    console.log(
      `L=${len}: fused ${median(tf).toFixed(1)} ms (min ${Math.min(...tf).toFixed(1)}), composed ${median(tc).toFixed(1)} ms (min ${Math.min(...tc).toFixed(1)}), fused/composed median ratio ${median(ratio).toFixed(3)}`,
    );
  }
}
