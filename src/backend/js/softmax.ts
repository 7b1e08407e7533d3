/**
 * Fused softmax / log-softmax of the js reference backend and their VJP: one kernel per call, each row (the
 * elements along `axis`) in three sweeps (max, sum of exp(x - max), write; the VJP: sum, write), in float64.
 *
 * The rows are obtained like the reductions do it (reduce.ts): permute `axis` last and flatten, so row j is
 * the contiguous run [j * r, (j + 1) * r). When the axis is already last in a contiguous input the rows are
 * written straight into out; otherwise they are computed in the permuted layout and copied back.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import {
  allocLike,
  assertOutSize,
  assertSameShape,
  contiguousData,
  contiguousView,
  copyStrided,
  permuteView,
} from "./strided.ts";

/**
 * out = softmax(x) or logSoftmax(x) along `axis` (see Backend.softmax for the exact semantics). Arithmetic is
 * float64 (JavaScript numbers); the store rounds into a float32 out.
 */
export function softmax(x: View, axis: number, log: boolean, out: TypedArray): void {
  if (x.shape.length === 0) x = { data: x.data, shape: [1], strides: [0], offset: x.offset };
  const nd = x.shape.length;
  if (!Number.isInteger(axis) || axis < 0 || axis >= nd) {
    throw internal(`softmax: axis ${axis} invalid for rank ${nd}`);
  }
  if (!(x.data instanceof Float32Array || x.data instanceof Float64Array)) {
    throw internal("softmax: float32 or float64 input expected");
  }
  const perm: number[] = [];
  for (let i = 0; i < nd; i++) if (i !== axis) perm.push(i);
  perm.push(axis);
  const r = x.shape[axis];
  let n = 1;
  for (const d of x.shape) n *= d;
  assertOutSize("softmax", out, n);
  if (n === 0) return;
  const src = contiguousData(permuteView(x, perm));
  // Axis last: the permuted layout is out's own layout, so rows go straight into out.
  const direct = axis === nd - 1;
  const dst = direct ? out : allocLike(out, n);
  const e = new Float64Array(r); // exp(x - m) of the current row, kept in float64 for the softmax write
  for (let base = 0; base < n; base += r) softmaxRow(src, dst, base, r, log, e);
  if (!direct) {
    const outView = contiguousView(out.subarray(0, n), x.shape);
    const permOut = permuteView(outView, perm);
    copyStrided(contiguousView(dst, permOut.shape), permOut);
  }
}

/** One row [base, base + r) of src into dst; `e` is scratch for r float64 values. */
function softmaxRow(
  src: TypedArray,
  dst: TypedArray,
  base: number,
  r: number,
  log: boolean,
  e: Float64Array,
): void {
  const end = base + r;
  let m = Number.NEGATIVE_INFINITY;
  for (let i = base; i < end; i++) {
    const v = src[i];
    if (Number.isNaN(v)) {
      m = v;
      break;
    }
    if (v > m) m = v;
  }
  // NaN anywhere, a +Infinity max, or only -Infinity: exp(x - m) is NaN (or 0 / 0) for the row; say so once.
  if (!(m > Number.NEGATIVE_INFINITY && m < Number.POSITIVE_INFINITY)) {
    for (let i = base; i < end; i++) dst[i] = Number.NaN;
    return;
  }
  let s = 0;
  for (let i = 0; i < r; i++) {
    e[i] = Math.exp(src[base + i] - m);
    s += e[i];
  }
  if (log) {
    const lse = Math.log(s);
    for (let i = base; i < end; i++) dst[i] = src[i] - m - lse;
  } else {
    for (let i = 0; i < r; i++) dst[base + i] = e[i] / s;
  }
}

/**
 * The VJP of softmax / log-softmax along `axis` (see Backend.softmaxBackward): y the forward output, ct the
 * cotangent, out = ct - exp(y) sum(ct) (log) or y (ct - sum(ct y)), per row, in float64.
 */
export function softmaxBackward(y: View, ct: View, axis: number, log: boolean, out: TypedArray): void {
  if (y.shape.length === 0) {
    y = { data: y.data, shape: [1], strides: [0], offset: y.offset };
    ct = { data: ct.data, shape: [1], strides: [0], offset: ct.offset };
  }
  assertSameShape("softmaxBackward", y.shape, ct.shape);
  const nd = y.shape.length;
  if (!Number.isInteger(axis) || axis < 0 || axis >= nd) {
    throw internal(`softmaxBackward: axis ${axis} invalid for rank ${nd}`);
  }
  const perm: number[] = [];
  for (let i = 0; i < nd; i++) if (i !== axis) perm.push(i);
  perm.push(axis);
  const r = y.shape[axis];
  let n = 1;
  for (const d of y.shape) n *= d;
  assertOutSize("softmaxBackward", out, n);
  if (n === 0) return;
  const ys = contiguousData(permuteView(y, perm));
  const cs = contiguousData(permuteView(ct, perm));
  const direct = axis === nd - 1;
  const dst = direct ? out : allocLike(out, n);
  for (let base = 0; base < n; base += r) {
    const end = base + r;
    let s = 0;
    if (log) {
      for (let i = base; i < end; i++) s += cs[i];
      for (let i = base; i < end; i++) dst[i] = cs[i] - Math.exp(ys[i]) * s;
    } else {
      for (let i = base; i < end; i++) s += cs[i] * ys[i];
      for (let i = base; i < end; i++) dst[i] = ys[i] * (cs[i] - s);
    }
  }
  if (!direct) {
    const outView = contiguousView(out.subarray(0, n), y.shape);
    const permOut = permuteView(outView, perm);
    copyStrided(contiguousView(dst, permOut.shape), permOut);
  }
}
