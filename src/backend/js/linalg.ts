/**
 * Batched matrix product of the js reference backend.
 *
 * out[b, i, j] = sum_k a[b, i, k] * b[b, k, j], computed with the cache-friendly i-k-j loop order over
 * row-major copies of the operands (a transposed operand arrives as a strided view and is made contiguous
 * once). Products accumulate in a row buffer of the output's dtype: float64 in float64, int32 with C wrap-around
 * (Math.imul, Int32Array), and float32 in float32 (a Float32Array row: each step rounds acc + a*b to float32,
 * the product being exact in float64, so a step is a fused multiply-add up to a rare double rounding).
 * Why float32 accumulation and not a float64 sum rounded once (more accurate): PyTorch, the native GEMM and the
 * wasm GEMM all accumulate float32 products in float32, so a sum whose partial sums overflow is +-Inf or NaN
 * there, and the reference must say the same (issue 8 item 12: [3e38, 3e38, -3e38, -3e38, -3e38] . ones gives
 * Inf in PyTorch, not -3e38). The cost is accuracy: the reference now carries the usual float32 summation error
 * (k u sum |a||b| at worst), so tests compare other backends with it within twice that bound, and tests that
 * need the exact product compute it in float64 (test/ref.ts). Reductions (sum, mean, cumsum) are different:
 * all three backends accumulate float32 in float64 there (cheap outside a GEMM's inner loop, and more
 * accurate), so they agree with each other, and differ from PyTorch only when a float32 partial sum overflows
 * while the total does not (sum([3e38, 3e38, -3e38]) is 3e38 here, Inf in PyTorch).
 * Zeros in `a` are not skipped: 0 * Inf and 0 * NaN must still produce NaN.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import { assertOutSize, contiguousData } from "./strided.ts";

function fmt(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

/** Batched matmul: a [...batch, M, K] x b [...batch, K, N] -> out [...batch, M, N] (contiguous). */
export function dot(a: View, b: View, out: TypedArray): void {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || ra !== rb)
    throw internal(`dot: operand shapes ${fmt(a.shape)} and ${fmt(b.shape)}: rank < 2 or unequal`);
  let batch = 1;
  for (let i = 0; i < ra - 2; i++) {
    if (a.shape[i] !== b.shape[i]) {
      throw internal(`dot: batch dimensions of ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
    }
    batch *= a.shape[i];
  }
  const m = a.shape[ra - 2];
  const k = a.shape[ra - 1];
  const n = b.shape[rb - 1];
  if (b.shape[rb - 2] !== k) {
    throw internal(
      `dot: inner dimensions of ${fmt(a.shape)} and ${fmt(b.shape)} differ (${k} vs ${b.shape[rb - 2]})`,
    );
  }
  assertOutSize("dot", out, batch * m * n);
  const A = contiguousData(a);
  const B = contiguousData(b);
  if (out instanceof Int32Array) matmulInt32(A, B, out, batch, m, k, n);
  else matmulFloat(A, B, out, batch, m, k, n);
}

/** Float i-k-j loop: row i of the result accumulates in a buffer of out's float dtype (see the module comment). */
function matmulFloat(
  A: TypedArray,
  B: TypedArray,
  out: TypedArray,
  batch: number,
  m: number,
  k: number,
  n: number,
) {
  const row = out instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      row.fill(0);
      const aRow = (t * m + i) * k;
      for (let p = 0; p < k; p++) {
        const aip = A[aRow + p];
        const bRow = (t * k + p) * n;
        for (let j = 0; j < n; j++) row[j] += aip * B[bRow + j];
      }
      const o = (t * m + i) * n;
      for (let j = 0; j < n; j++) out[o + j] = row[j];
    }
  }
}

/** int32 i-k-j loop with C wrap-around: Math.imul products, sums wrapped by the Int32Array store. */
function matmulInt32(
  A: TypedArray,
  B: TypedArray,
  out: Int32Array,
  batch: number,
  m: number,
  k: number,
  n: number,
) {
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < m; i++) {
      const o = (t * m + i) * n;
      out.fill(0, o, o + n);
      const aRow = (t * m + i) * k;
      for (let p = 0; p < k; p++) {
        const aip = A[aRow + p];
        const bRow = (t * k + p) * n;
        for (let j = 0; j < n; j++) out[o + j] += Math.imul(aip, B[bRow + j]);
      }
    }
  }
}
