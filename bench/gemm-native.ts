/**
 * float32 GEMM throughput of the native backend: C = A B for square n x n matrices, n = 128, 256, 512, 1024,
 * on one thread and on all threads, plus the transposed-operand cases (A^T B, A B^T) at n = 512 and float64.
 *
 * Each figure is the median over several samples (each at least ~50 ms of back-to-back products after warm-up)
 * of 2 n^3 flops per product divided by
 *   - wall time ("wall"), and
 *   - process CPU time divided by the thread count ("cpu"): for one thread pinned to a core this is nearly
 *     independent of other processes sharing the machine (they delay the product, they do not make it use
 *     more CPU time), so it is the figure to compare while the machine is busy;
 * and "% peak" is the cpu figure over the FMA peak of the core measured with the same clock right before
 * (bench/fma-peak.c; times the thread count). The load average is printed next to the figures.
 *
 * With --mlp, the products of one training step of the MLP 784-512-256-10 at batch 128 instead (the shapes of
 * bench/workloads.ts; nn.Linear keeps its weight as [out, in], so the forward product reads a transposed B, the
 * weight gradient a transposed A; both orientations of the weight gradient are listed, as either may be formed),
 * and the step's total per thread count (wall, and the CPU time of all threads: what spinning and waiting cost).
 * With --mlp --e2e, the products of the e2e workload's MLP 784-256-128-10 at batch 128. With --shapes, the products
 * listed instead, each as M,K,N with an optional t after M (A stored transposed) or after N (B stored transposed),
 * separated by colons: `--shapes 128,4096,512t:4096t,128,512` (a Transformer's weight gradient x^T dy, and the
 * forward product of a Linear, x W^T, with the roles turned). (Products under 2 MFLOP run
 * on one thread whatever the thread count, see gemm.h: their 2-thread "cpu" and "% peak" figures, CPU time divided
 * by 2, are then twice the real per-thread rate.)
 *
 * With --ab-addon PATH, every row instead compares another build of the addon (e.g. a copy of main's
 * native/build/Release/chainrule_native.node) as "old" with this checkout's as "new", both loaded in this process
 * and set to the same instruction set and thread count, alternating sample by sample (CPU time, median of
 * --rounds samples of ~40 ms each), so that a change in the machine's load hits both alike.
 *
 * Run pinned: `taskset -c 1 node --import tsx bench/gemm-native.ts` (one core: the 1-thread rows only), or
 * `taskset -c 0,1 ...` for the 2-thread rows too. Options: --isa avx2|base (a lesser kernel build than the
 * best the CPU runs), --sizes 256,1024, --threads 1 (only that count), --mlp [--e2e], --ab-addon PATH
 * [--rounds 15].
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Backend, View } from "../src/backend/backend.ts";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { loadNativeBackend, nativeInfo, setNativeIsa, setNumThreads } from "../src/backend/native/index.ts";
import type { DType } from "../src/dtype.ts";
import { cpuRateSample, fmaPeak, otherAddon, peakForIsa, rates } from "./native-rates.ts";

/** An r x c matrix of pseudo-random values in [-0.5, 0.5); `transposed`: stored column-major (a .mT view). */
function matrix(b: Backend, r: number, c: number, seed: number, dtype: DType, transposed = false): View {
  const data = b.alloc(dtype, r * c);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return { data, shape: [r, c], strides: transposed ? [1, r] : [c, 1], offset: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** CPU-time GFLOP/s (per thread) of `runOld` and `run` alternating sample by sample: medians over `rounds`. */
function abRates(run: () => void, runOld: () => void, flops: number, threads: number, rounds: number) {
  const r: { old: number[]; new: number[] } = { old: [], new: [] };
  for (let i = 0; i < rounds; i++) {
    for (const mode of i % 2 === 0 ? (["old", "new"] as const) : (["new", "old"] as const)) {
      const go = mode === "old" ? runOld : run;
      r[mode].push(cpuRateSample(go, flops, threads));
    }
  }
  return { old: median(r.old), new: median(r.new) };
}

/** A product of an MLP training step: [label, M, K, N, A^T, B^T]. */
type Product = [string, number, number, number, boolean, boolean];

/**
 * The matrix products of one training step of an MLP with layer widths `widths` at batch `batch` (nn.Linear keeps
 * its weight as [out, in]: the forward product reads a transposed B, the weight gradient a transposed A, the input
 * gradient a plain B; the first layer's input gradient is not formed). With `both`, the weight gradients are also
 * listed in their other orientation (W^T's gradient), as either may be formed; they are marked "alt".
 */
function mlpProducts(widths: number[], batch: number, both: boolean): Product[] {
  const out: Product[] = [];
  const L = widths.length - 1;
  for (let l = 0; l < L; l++)
    out.push([`fwd ${l + 1}: h${l} W${l + 1}^T`, batch, widths[l], widths[l + 1], false, true]);
  for (let l = L - 1; l >= 0; l--) {
    out.push([`dW${l + 1}: dY${l + 1}^T h${l}`, widths[l + 1], batch, widths[l], true, false]);
    if (both)
      out.push([`alt dW${l + 1}^T: h${l}^T dY${l + 1}`, widths[l], batch, widths[l + 1], true, false]);
    if (l > 0)
      out.push([`bwd ${l + 1}: dY${l + 1} W${l + 1}`, batch, widths[l + 1], widths[l], false, false]);
  }
  return out;
}

function main() {
  const { values } = parseArgs({
    options: {
      isa: { type: "string" },
      sizes: { type: "string" },
      shapes: { type: "string" },
      threads: { type: "string" },
      mlp: { type: "boolean" },
      e2e: { type: "boolean" },
      "ab-addon": { type: "string" },
      rounds: { type: "string" },
    },
  });
  const loaded = loadNativeBackend();
  if ("error" in loaded) {
    console.error(loaded.error);
    process.exit(1);
  }
  const b = loaded.backend;
  if (values.isa && !setNativeIsa(values.isa as "avx512" | "avx2" | "base")) {
    console.error(`gemm-native: this CPU cannot run the ${values.isa} kernels`);
    process.exit(1);
  }
  const info = nativeInfo();
  // the other build for --ab-addon, on the same instruction set
  let other: { addon: NativeAddon; backend: Backend } | undefined;
  if (values["ab-addon"]) other = otherAddon("gemm-native", values["ab-addon"], info.isa);
  const rounds = values.rounds ? Number(values.rounds) : 15;
  const setThreads = (n: number) => {
    setNumThreads(n);
    other?.addon.setNumThreads(n);
  };
  const sizes = values.sizes ? values.sizes.split(",").map(Number) : [128, 256, 512, 1024];
  const threadCounts = values.threads ? [Number(values.threads)] : info.threads > 1 ? [1, info.threads] : [1];
  const peak = () => peakForIsa(fmaPeak("cpu"), info.isa);
  const p0 = peak();
  console.log(
    `native backend (${info.isa} kernels), ${info.threads} threads available; FMA peak per core for them (cpu ` +
      `clock): ${p0 ? p0.toFixed(1) : "unknown"} GFLOP/s; load average ${loadavg()[0].toFixed(2)}`,
  );
  console.log(
    other
      ? "case                                     old cpu GFLOP/s (% peak)   new cpu GFLOP/s (% peak)   new/old"
      : "case                                     wall GFLOP/s   cpu GFLOP/s   % peak (cpu)",
  );
  const pct = (g: number, pk: number | undefined, threads: number) =>
    pk ? `${((100 * g) / (pk * threads)).toFixed(1)}%` : "-";
  const row = (
    label: string,
    r: { wall: number; cpu: number; old?: number },
    threads: number,
    pk: number | undefined,
  ) =>
    r.old !== undefined
      ? console.log(
          `${label.padEnd(40)} ${`${r.old.toFixed(1)} (${pct(r.old, pk, threads)})`.padStart(24)} ${`${r.cpu.toFixed(1)} (${pct(r.cpu, pk, threads)})`.padStart(26)} ${(r.cpu / r.old).toFixed(3).padStart(9)}`,
        )
      : console.log(
          `${label.padEnd(40)} ${r.wall.toFixed(1).padStart(12)} ${r.cpu.toFixed(1).padStart(13)} ${
            pk ? `${((100 * r.cpu) / (pk * threads)).toFixed(1)}%`.padStart(14) : "             -"
          }`,
        );
  const product = (
    M: number,
    K: number,
    N: number,
    dtype: DType,
    ta: boolean,
    tb: boolean,
    threads: number,
  ): { wall: number; cpu: number; old?: number } => {
    const a = matrix(b, M, K, 1, dtype, ta);
    const m = matrix(b, K, N, 2, dtype, tb);
    const out = b.alloc(dtype, M * N);
    const flops = 2 * M * N * K;
    if (other) {
      const ob = other.backend;
      const out2 = ob.alloc(dtype, M * N);
      const r = abRates(
        () => b.dot(a, m, out),
        () => ob.dot(a, m, out2),
        flops,
        threads,
        rounds,
      );
      return { wall: r.new, cpu: r.new, old: r.old };
    }
    return rates(() => b.dot(a, m, out), flops, threads, 7);
  };
  const gemm = (n: number, dtype: DType, ta: boolean, tb: boolean, threads: number) =>
    product(n, n, n, dtype, ta, tb, threads);
  if (values.mlp) {
    // the bench's MLP (784-512-256-10) or, with --e2e, the e2e workload's (784-256-128-10); batch 128
    const widths = values.e2e ? [784, 256, 128, 10] : [784, 512, 256, 10];
    for (const threads of threadCounts) {
      setThreads(threads);
      let flops = 0;
      let cpu = 0;
      let wall = 0;
      let cpuOld = 0;
      for (const [label, M, K, N, ta, tb] of mlpProducts(widths, 128, !values.e2e)) {
        const pk = peak();
        const r = product(M, K, N, "float32", ta, tb, threads);
        row(`${label} ${M}x${K}@${K}x${N} ${threads}T`, r, threads, pk);
        if (!label.startsWith("alt")) {
          flops += 2 * M * N * K;
          cpu += (2 * M * N * K) / (r.cpu * 1e9);
          wall += (2 * M * N * K) / (r.wall * 1e9);
          if (r.old !== undefined) cpuOld += (2 * M * N * K) / (r.old * 1e9);
        }
      }
      if (other) {
        console.log(
          `one step's products (first orientation of dW), ${threads} thread${threads > 1 ? "s" : ""}: ` +
            `${(cpuOld * threads * 1e3).toFixed(3)} ms (old) -> ${(cpu * threads * 1e3).toFixed(3)} ms (new) total cpu`,
        );
        continue;
      }
      console.log(
        `one step's products (first orientation of dW), ${threads} thread${threads > 1 ? "s" : ""}: ` +
          `${(wall * 1e3).toFixed(3)} ms wall (${(flops / wall / 1e9).toFixed(1)} GFLOP/s), ` +
          `${(cpu * threads * 1e3).toFixed(3)} ms total cpu of ${threads} thread${threads > 1 ? "s" : ""}`,
      );
    }
    setThreads(0);
    console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
    return;
  }
  if (values.shapes) {
    for (const threads of threadCounts) {
      setThreads(threads);
      for (const spec of values.shapes.split(":")) {
        const [m, k, n] = spec.split(",");
        const [M, K, N] = [m, k, n].map((v) => Number.parseInt(v, 10));
        if (![M, K, N].every((v) => Number.isInteger(v) && v > 0))
          throw new Error(`gemm-native: bad shape ${spec}`);
        const ta = m.endsWith("t");
        const tb = n.endsWith("t");
        const pk = peak();
        const r = product(M, K, N, "float32", ta, tb, threads);
        row(`${M}x${K}${ta ? "^T" : ""}@${K}x${N}${tb ? "^T" : ""} ${threads}T`, r, threads, pk);
      }
    }
    setThreads(0);
    return;
  }
  for (const threads of threadCounts) {
    setThreads(threads);
    for (const n of sizes) {
      const pk = peak(); // measured next to each figure: the load changes
      const r = gemm(n, "float32", false, false, threads);
      row(`float32 n=${n} ${threads} thread${threads > 1 ? "s" : ""}`, r, threads, pk);
    }
  }
  setThreads(1);
  const pk = peak();
  row("float32 n=512 A^T B 1 thread", gemm(512, "float32", true, false, 1), 1, pk);
  row("float32 n=512 A B^T 1 thread", gemm(512, "float32", false, true, 1), 1, pk);
  row("float64 n=512 1 thread", gemm(512, "float64", false, false, 1), 1, pk ? pk / 2 : undefined);
  setThreads(0);
  console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
}

main();
