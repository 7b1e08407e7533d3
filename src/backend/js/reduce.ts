/**
 * Reductions of the js reference backend: reduce (sum/prod/max/min over axes), argReduce and cumsum.
 *
 * One idea serves all three: permute the view so that the kept axes come first and the reduced axes last (a
 * free view change), flatten it row-major, and the problem becomes "for each of K rows of length R". Output
 * element j is then row j, already in the row-major order of the kept axes. Accumulation happens in float64
 * numbers (float32 inputs are summed in double, rounded once on store); int32 sums and products wrap like C.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { ReduceOp, View } from "../backend.ts";
import {
  allocLike,
  assertOutSize,
  contiguousData,
  contiguousView,
  copyStrided,
  permuteView,
} from "./strided.ts";

/**
 * A 0-d view seen as shape [1] when an op names axis 0 of it (PyTorch accepts dim 0 or -1 on a scalar, and
 * shape.ts's normAxis does too): reducing, arg-reducing or scanning a scalar over "its" axis is the identity.
 */
function asAxisView(x: View, axes: readonly number[]): View {
  if (x.shape.length > 0 || axes.length === 0) return x;
  return { data: x.data, shape: [1], strides: [0], offset: x.offset };
}

/** The axes of a rank-`nd` view not in `axes` followed by `axes`, and the sizes K (kept) and R (reduced). */
function splitAxes(
  shape: readonly number[],
  axes: readonly number[],
): { perm: number[]; k: number; r: number } {
  const nd = shape.length;
  const reduced = new Array<boolean>(nd).fill(false);
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= nd || reduced[a]) {
      throw internal(`reduce: axes [${axes.join(", ")}] invalid for rank ${nd}`);
    }
    reduced[a] = true;
  }
  const perm: number[] = [];
  let k = 1;
  let r = 1;
  for (let i = 0; i < nd; i++) {
    if (!reduced[i]) {
      perm.push(i);
      k *= shape[i];
    }
  }
  for (let i = 0; i < nd; i++) {
    if (reduced[i]) {
      perm.push(i);
      r *= shape[i];
    }
  }
  return { perm, k, r };
}

/**
 * Reduce x over `axes` into contiguous out (x's shape without those axes). sum of nothing is 0, prod of
 * nothing is 1; max/min propagate NaN (the first NaN ends the row).
 */
export function reduce(op: ReduceOp, x: View, axes: readonly number[], out: TypedArray): void {
  x = asAxisView(x, axes);
  const { perm, k, r } = splitAxes(x.shape, axes);
  assertOutSize(op, out, k);
  const src = contiguousData(permuteView(x, perm));
  const isInt = x.data instanceof Int32Array;
  for (let j = 0, base = 0; j < k; j++, base += r) {
    let acc: number;
    switch (op) {
      case "sum":
        acc = 0;
        if (isInt) for (let i = 0; i < r; i++) acc = (acc + src[base + i]) | 0;
        else for (let i = 0; i < r; i++) acc += src[base + i];
        break;
      case "prod":
        acc = 1;
        if (isInt) for (let i = 0; i < r; i++) acc = Math.imul(acc, src[base + i]);
        else for (let i = 0; i < r; i++) acc *= src[base + i];
        break;
      case "max":
        acc = Number.NEGATIVE_INFINITY;
        for (let i = 0; i < r; i++) {
          const v = src[base + i];
          if (Number.isNaN(v)) {
            acc = v;
            break;
          }
          if (v > acc) acc = v;
        }
        break;
      case "min":
        acc = Number.POSITIVE_INFINITY;
        for (let i = 0; i < r; i++) {
          const v = src[base + i];
          if (Number.isNaN(v)) {
            acc = v;
            break;
          }
          if (v < acc) acc = v;
        }
        break;
    }
    out[j] = acc;
  }
}

/**
 * Index of the first maximum (argmax) or minimum (argmin) along `axis`, as int32; out is x's shape without
 * `axis`. A NaN beats every number, so the index of the first NaN wins (PyTorch's rule). An empty axis never
 * reaches a backend; should one arrive, the result is 0.
 */
export function argReduce(op: "argmax" | "argmin", x: View, axis: number, out: TypedArray): void {
  x = asAxisView(x, [axis]);
  const { perm, k, r } = splitAxes(x.shape, [axis]);
  assertOutSize(op, out, k);
  const src = contiguousData(permuteView(x, perm));
  const isMax = op === "argmax";
  for (let j = 0, base = 0; j < k; j++, base += r) {
    let best = 0;
    let bv = r > 0 ? src[base] : 0;
    if (!Number.isNaN(bv)) {
      for (let i = 1; i < r; i++) {
        const v = src[base + i];
        if (Number.isNaN(v)) {
          best = i;
          break;
        }
        if (isMax ? v > bv : v < bv) {
          bv = v;
          best = i;
        }
      }
    }
    out[j] = best;
  }
}

/**
 * Inclusive cumulative sum along `axis` (from the end when `reverse`); out has x's shape. The running sum is
 * a float64 number stored (and for float32 rounded) at each step; int32 wraps.
 */
export function cumsum(x: View, axis: number, reverse: boolean, out: TypedArray): void {
  x = asAxisView(x, [axis]);
  const { perm, k, r } = splitAxes(x.shape, [axis]);
  const n = k * r;
  assertOutSize("cumsum", out, n);
  const src = contiguousData(permuteView(x, perm));
  // Compute rows in the permuted (axis-last) layout, then scatter them back into out's row-major layout.
  const tmp = allocLike(out, n);
  const isInt = out instanceof Int32Array;
  for (let j = 0, base = 0; j < k; j++, base += r) {
    let acc = 0;
    for (let t = 0; t < r; t++) {
      const i = base + (reverse ? r - 1 - t : t);
      acc = isInt ? (acc + src[i]) | 0 : acc + src[i];
      tmp[i] = acc;
    }
  }
  const outView = contiguousView(out.subarray(0, n), x.shape);
  copyStrided(contiguousView(tmp, permuteView(outView, perm).shape), permuteView(outView, perm));
}
