/**
 * Indexing kernels of the js reference backend: gather along an axis and its transpose, scatterAdd.
 *
 * Both view their operands as [outer, A, inner] around `axis` (outer = product of the axes before it, inner =
 * product of the axes after it, which all operands share). Then, with A_i the index tensor's extent on
 * `axis`:
 *   gather:     out[o, a, r] = x[o, idx[o, a, r], r]
 *   scatterAdd: out[o, idx[o, a, r], r] += src[o, a, r]
 * so scatterAdd is the transpose of gather (<gather(x), s> = <x, scatterAdd(s)>), duplicates accumulating.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import { assertOutSize, assertSameShape, contiguousData } from "./strided.ts";

/** outer/inner sizes around `axis`, checking that `a` and `b` agree on every other axis. */
function around(op: string, a: readonly number[], b: readonly number[], axis: number) {
  const s = (t: readonly number[]) => `[${t.join(", ")}]`;
  if (a.length !== b.length || axis < 0 || axis >= a.length) {
    throw internal(`${op}: shapes ${s(a)} and ${s(b)} with axis ${axis}`);
  }
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < a.length; i++) {
    if (i === axis) continue;
    if (a[i] !== b[i]) throw internal(`${op}: shapes ${s(a)} and ${s(b)} differ off axis ${axis}`);
    if (i < axis) outer *= a[i];
    else inner *= a[i];
  }
  return { outer, inner };
}

/**
 * Every index in [0, bound), or a RangeError naming the kernel, the index, the axis and its size (as the native
 * backend reports it). The reference checks too: under jit the ops layer cannot read traced indices, so the
 * kernels are where a bad index is caught, and an unchecked one would read outside its row.
 */
function checkIndices(op: string, I: TypedArray, axis: number, bound: number): void {
  for (let k = 0; k < I.length; k++) {
    const v = I[k];
    if (!(v >= 0 && v < bound)) {
      throw new RangeError(
        `${op}: index ${v} is out of bounds for axis ${axis} of size ${bound} (expected 0 <= index < ${bound})`,
      );
    }
  }
}

/** out[..., i, ...] = x[..., idx[..., i, ...], ...] along `axis`; out has idx's shape. */
export function gather(x: View, axis: number, idx: View, out: TypedArray): void {
  const { outer, inner } = around("gather", x.shape, idx.shape, axis);
  const ax = x.shape[axis];
  const ai = idx.shape[axis];
  assertOutSize("gather", out, outer * ai * inner);
  const X = contiguousData(x);
  const I = contiguousData(idx);
  checkIndices("gather", I, axis, ax);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < ai; a++) {
      for (let r = 0; r < inner; r++, k++) out[k] = X[(o * ax + I[k]) * inner + r];
    }
  }
}

/**
 * out[..., idx[..., i, ...], ...] += src[..., i, ...] along `axis`. out (outShape) is accumulated into, not
 * cleared (alloc returns zeros). Float sums accumulate in float64 and are rounded once; int32 wraps.
 */
export function scatterAdd(
  src: View,
  axis: number,
  idx: View,
  out: TypedArray,
  outShape: readonly number[],
): void {
  assertSameShape("scatterAdd", src.shape, idx.shape);
  const { outer, inner } = around("scatterAdd", outShape, idx.shape, axis);
  const ao = outShape[axis];
  const ai = idx.shape[axis];
  const size = outer * ao * inner;
  assertOutSize("scatterAdd", out, size);
  const S = contiguousData(src);
  const I = contiguousData(idx);
  checkIndices("scatterAdd", I, axis, ao);
  const acc = out instanceof Float32Array ? Float64Array.from(out.subarray(0, size)) : out;
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < ai; a++) {
      for (let r = 0; r < inner; r++, k++) acc[(o * ao + I[k]) * inner + r] += S[k];
    }
  }
  if (acc !== out) for (let i = 0; i < size; i++) out[i] = acc[i];
}
