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
 * With --mlp --e2e, the products of the e2e workload's MLP 784-256-128-10 at batch 128. (Products under 2 MFLOP run
 * on one thread whatever the thread count, see gemm.h: their 2-thread "cpu" and "% peak" figures, CPU time divided
 * by 2, are then twice the real per-thread rate.)
 *
 * Run pinned: `taskset -c 1 node --import tsx bench/gemm-native.ts` (one core: the 1-thread rows only), or
 * `taskset -c 0,1 ...` for the 2-thread rows too. Options: --isa avx2|base (a lesser kernel build than the
 * best the CPU runs), --sizes 256,1024, --threads 1 (only that count), --mlp [--e2e].
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Backend, View } from "../src/backend/backend.ts";
import { loadNativeBackend, nativeInfo, setNativeIsa, setNumThreads } from "../src/backend/native/index.ts";
import type { DType } from "../src/dtype.ts";
import { fmaPeak, peakForIsa, rates } from "./native-rates.ts";

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
      threads: { type: "string" },
      mlp: { type: "boolean" },
      e2e: { type: "boolean" },
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
  const sizes = values.sizes ? values.sizes.split(",").map(Number) : [128, 256, 512, 1024];
  const threadCounts = values.threads ? [Number(values.threads)] : info.threads > 1 ? [1, info.threads] : [1];
  const peak = () => peakForIsa(fmaPeak("cpu"), info.isa);
  const p0 = peak();
  console.log(
    `native backend (${info.isa} kernels), ${info.threads} threads available; FMA peak per core for them (cpu ` +
      `clock): ${p0 ? p0.toFixed(1) : "unknown"} GFLOP/s; load average ${loadavg()[0].toFixed(2)}`,
  );
  console.log("case                                     wall GFLOP/s   cpu GFLOP/s   % peak (cpu)");
  const row = (label: string, r: { wall: number; cpu: number }, threads: number, pk: number | undefined) =>
    console.log(
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
  ) => {
    const a = matrix(b, M, K, 1, dtype, ta);
    const m = matrix(b, K, N, 2, dtype, tb);
    const out = b.alloc(dtype, M * N);
    return rates(() => b.dot(a, m, out), 2 * M * N * K, threads, 7);
  };
  const gemm = (n: number, dtype: DType, ta: boolean, tb: boolean, threads: number) =>
    product(n, n, n, dtype, ta, tb, threads);
  if (values.mlp) {
    // the bench's MLP (784-512-256-10) or, with --e2e, the e2e workload's (784-256-128-10); batch 128
    const widths = values.e2e ? [784, 256, 128, 10] : [784, 512, 256, 10];
    for (const threads of threadCounts) {
      setNumThreads(threads);
      let flops = 0;
      let cpu = 0;
      let wall = 0;
      for (const [label, M, K, N, ta, tb] of mlpProducts(widths, 128, !values.e2e)) {
        const pk = peak();
        const r = product(M, K, N, "float32", ta, tb, threads);
        row(`${label} ${M}x${K}@${K}x${N} ${threads}T`, r, threads, pk);
        if (!label.startsWith("alt")) {
          flops += 2 * M * N * K;
          cpu += (2 * M * N * K) / (r.cpu * 1e9);
          wall += (2 * M * N * K) / (r.wall * 1e9);
        }
      }
      console.log(
        `one step's products (first orientation of dW), ${threads} thread${threads > 1 ? "s" : ""}: ` +
          `${(wall * 1e3).toFixed(3)} ms wall (${(flops / wall / 1e9).toFixed(1)} GFLOP/s), ` +
          `${(cpu * threads * 1e3).toFixed(3)} ms total cpu of ${threads} thread${threads > 1 ? "s" : ""}`,
      );
    }
    setNumThreads(0);
    console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
    return;
  }
  for (const threads of threadCounts) {
    setNumThreads(threads);
    for (const n of sizes) {
      const pk = peak(); // measured next to each figure: the load changes
      const r = gemm(n, "float32", false, false, threads);
      row(`float32 n=${n} ${threads} thread${threads > 1 ? "s" : ""}`, r, threads, pk);
    }
  }
  setNumThreads(1);
  const pk = peak();
  row("float32 n=512 A^T B 1 thread", gemm(512, "float32", true, false, 1), 1, pk);
  row("float32 n=512 A B^T 1 thread", gemm(512, "float32", false, true, 1), 1, pk);
  row("float64 n=512 1 thread", gemm(512, "float64", false, false, 1), 1, pk ? pk / 2 : undefined);
  setNumThreads(0);
  console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
}

main();
