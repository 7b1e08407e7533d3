/**
 * The packed GEMM behind the native `dot` at sizes the conformance rows do not reach: several K slices (the
 * second and later slices accumulate into C), several row blocks of A (M above the packing bound of about 8 MB
 * of A, 5460 rows at float32 on any cache size) and several column blocks, on every instruction-set build with
 * all threads and with one, against the js backend's plain loops. Transposed operands are read through their
 * strides by the packing routines, so each shape runs with every transpose pair.
 */
import { test } from "node:test";
import { checkDotLayouts, N, prng } from "./native-helpers.ts";

for (const [dtype, m, k, n] of [
  ["float32", 37, 1000, 45], // 3 K slices, a 1-row last A panel (the half-height kernel)
  ["float32", 26, 390, 700], // 2 K slices, several column blocks
  ["float32", 5500, 20, 9], // 2 row blocks of A
  ["float64", 29, 700, 33], // 3 K slices at float64
  // a transposed A packed several panels per pass (column by column: 8 full panels, then 2 and a short one) and a
  // row-major B packed several panels per pass (16 full panels and a short one), 2 K slices
  ["float32", 130, 700, 530],
  ["float64", 100, 300, 200],
  // few rows of A (M <= 16 panels) over a row-major B larger than L2 on every CPU this runs on (4.8 MB): B packed,
  // not read in place
  ["float32", 40, 2400, 500],
  // a row-major A whose rows are 4 KB apart (all on one L1 set): packed rather than read in place (gemm.h,
  // direct_a_conflicts), at float32 and float64
  ["float32", 40, 1024, 70],
  ["float64", 30, 512, 40],
] as const) {
  test(`dot ${dtype} ${m}x${k} @ ${k}x${n}: K slices, row and column blocks`, { skip: !N }, () => {
    const rng = prng(m * 7 + k * 3 + n);
    checkDotLayouts(dtype, m, k, n, rng);
  });
}
