/**
 * The GEMM paths of small products, on every instruction-set build with all threads and with one, against the js
 * backend's plain loops, with every transpose pair (the packing reads transposed operands through strides):
 * - the narrow last B panel (at most one vector of real columns runs a one-vector micro-kernel), at widths that
 *   straddle the vector widths of every build (4, 8, 16 floats; 2, 4, 8 doubles), with short A panels;
 * - the one-thread path of products under ~2 MFLOP;
 * - the per-thread split of products with few rows of A or under 64 MFLOP: each thread computes a range of rows
 *   (B read in place or packed by each thread) or of columns (A packed by each), uneven ranges included.
 */
import { test } from "node:test";
import { checkDotLayouts, N, prng } from "./native-helpers.ts";

for (const [dtype, m, k, n] of [
  ["float32", 128, 256, 10], // an MLP's output layer: one narrow panel, a one-thread product
  ["float32", 25, 300, 16], // exactly one AVX-512 vector of columns; a 1-row last A panel
  ["float32", 31, 70, 17], // one column more than a vector
  ["float32", 200, 600, 48], // a full 32-column panel and a 16-column one, on all threads
  ["float32", 13, 50, 4], // one SSE vector
  ["float64", 40, 500, 8], // one AVX-512 vector of doubles
  ["float64", 27, 90, 9],
  // split between threads
  ["float32", 5, 2000, 3001], // 3 + 2 rows, or 47 + 47 column panels with a short last one
  ["float32", 150, 64, 70], // N <= M: rows, B packed by each thread when not read in place
  ["float32", 40, 300, 1000], // few rows: B in place by rows, or columns with A packed by each
  ["float32", 301, 200, 333], // 301 rows under 64 MFLOP: 151 + 150 rows
  ["float64", 33, 400, 260],
] as const) {
  test(`dot ${dtype} ${m}x${k} @ ${k}x${n}: small-product paths`, { skip: !N }, () => {
    const rng = prng(m * 5 + k * 11 + n);
    checkDotLayouts(dtype, m, k, n, rng);
  });
}
