/**
 * float32 GEMM throughput of the wasm backend: C = A B for square n x n matrices, n = 128, 256, 512. Prints
 * GFLOP/s (2 n^3 flops per product) as the median of several timed runs after warm-up, with the min-max
 * range, for the module variant the runtime picked (relaxed SIMD needs, in Node 20,
 * `node --experimental-wasm-relaxed-simd`) on one thread and on the worker pool, and for comparison the
 * plain-SIMD variant and the js backend.
 *
 * Run: node --import tsx bench/gemm-wasm.ts   (add --experimental-wasm-relaxed-simd before --import for FMA)
 */
import type { Backend, View } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { createWasmBackend, loadWasmBackend } from "../src/backend/wasm/index.ts";

function matrix(b: Backend, n: number, seed: number): View {
  const data = b.alloc("float32", n * n);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return { data, shape: [n, n], strides: [n, 1], offset: 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** GFLOP/s figures (median, min, max) of `b.dot` at size n. */
function measure(b: Backend, n: number, runs: number): [number, number, number] {
  const a = matrix(b, n, 1);
  const m = matrix(b, n, 2);
  const out = b.alloc("float32", n * n);
  const flops = 2 * n ** 3;
  // warm-up: at least 3 products and 0.2 s
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) b.dot(a, m, out);
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    // repeat small products so one sample lasts at least ~50 ms
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
  return [median(rates), Math.min(...rates), Math.max(...rates)];
}

const loaded = loadWasmBackend();
if ("error" in loaded) {
  console.error(loaded.error);
  process.exit(1);
}
const simd = loaded.backend.relaxedSimd ? "relaxed SIMD, FMA" : "SIMD128";
const variants: [string, Backend][] = [[`wasm ${simd}, 1 thread`, createWasmBackend({ threads: 1 })]];
if (loaded.backend.threads > 1)
  variants.push([`wasm ${simd}, ${loaded.backend.threads} threads`, loaded.backend]);
if (loaded.backend.relaxedSimd) {
  variants.push(["wasm SIMD128 (no FMA), 1 thread", createWasmBackend({ noRelaxed: true, threads: 1 })]);
}
variants.push(["js (reference)", jsBackend]);

console.log("float32 GEMM C = A B (n x n), GFLOP/s: median [min-max] of 7 runs");
for (const n of [128, 256, 512]) {
  for (const [name, b] of variants) {
    if (b === jsBackend && n > 256) continue; // the reference is slow; one size is enough to compare
    const [med, lo, hi] = measure(b, n, 7);
    console.log(`n=${n}  ${name.padEnd(34)} ${med.toFixed(2)} [${lo.toFixed(2)}-${hi.toFixed(2)}]`);
  }
}
