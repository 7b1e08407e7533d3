/**
 * float32 GEMM throughput of the native backend: C = A B for square n x n matrices, n = 128, 256, 512, 1024,
 * on one thread and on all threads. Prints GFLOP/s (2 n^3 flops per product) as the median of several timed
 * runs after warm-up, with the min-max range, plus the transposed-operand case (A^T B, A B^T) at n = 512 and
 * float64 for comparison.
 *
 * Run: node --import tsx bench/gemm-native.ts   (after `npm run build:native`)
 */
import type { Backend, View } from "../src/backend/backend.ts";
import type { DType } from "../src/dtype.ts";
import { loadNativeBackend, nativeInfo, setNumThreads } from "../src/backend/native/index.ts";

function matrix(b: Backend, n: number, seed: number, dtype: DType, transposed = false): View {
  const data = b.alloc(dtype, n * n);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return { data, shape: [n, n], strides: transposed ? [1, n] : [n, 1], offset: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** GFLOP/s figures (median, min, max) of `b.dot` at size n. */
function measure(b: Backend, n: number, runs: number, dtype: DType = "float32", ta = false, tb = false) {
  const a = matrix(b, n, 1, dtype, ta);
  const m = matrix(b, n, 2, dtype, tb);
  const out = b.alloc(dtype, n * n);
  const flops = 2 * n ** 3;
  // warm-up: at least 3 products and 0.2 s
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) b.dot(a, m, out);
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    // repeat small products so that one sample lasts at least ~50 ms
    let reps = 0;
    const s = performance.now();
    let e = s;
    while (e - s < 50) {
      b.dot(a, m, out);
      reps++;
      e = performance.now();
    }
    rates.push((flops * reps) / ((e - s) / 1000) / 1e9);
  }
  return [median(rates), Math.min(...rates), Math.max(...rates)] as const;
}

const loaded = loadNativeBackend();
if ("error" in loaded) {
  console.error(loaded.error);
  process.exit(1);
}
const b = loaded.backend;
const info = nativeInfo();
const fmt = ([med, lo, hi]: readonly [number, number, number]) =>
  `${med.toFixed(1).padStart(6)} [${lo.toFixed(1)}-${hi.toFixed(1)}]`;

console.log(`native backend (${info.isa} kernels), GFLOP/s: median [min-max] of 7 runs`);
const threadCounts = info.threads > 1 ? [1, info.threads] : [1];
for (const threads of threadCounts) {
  setNumThreads(threads);
  for (const n of [128, 256, 512, 1024]) {
    console.log(
      `float32 n=${String(n).padEnd(5)} ${threads} thread${threads > 1 ? "s" : " "}  ${fmt(measure(b, n, 7))}`,
    );
  }
}
setNumThreads(1);
console.log(`float32 n=512   A^T B, 1 thread   ${fmt(measure(b, 512, 5, "float32", true, false))}`);
console.log(`float32 n=512   A B^T, 1 thread   ${fmt(measure(b, 512, 5, "float32", false, true))}`);
console.log(`float64 n=512   1 thread          ${fmt(measure(b, 512, 5, "float64"))}`);
setNumThreads(0);
