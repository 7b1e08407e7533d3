/**
 * Strided-view helpers for the js reference backend: the one odometer that walks an arbitrary strided view,
 * and the small view algebra (permute, contiguous view) the kernels are built from.
 *
 * Design: every js kernel first obtains its inputs as flat row-major arrays with `contiguousData` (free when
 * the view is already contiguous: a `subarray`, no copy; otherwise one strided copy through the odometer),
 * and then runs a plain loop over `offset + i`. All stride handling (0 for broadcast axes, negative strides,
 * offsets) therefore lives in exactly one function, `copyStrided`, which is easy to get right and to test.
 * The cost is one temporary per non-contiguous input per kernel call, never an allocation per element.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";

/** Number of elements a view addresses. */
export function viewSize(v: View): number {
  return sizeOf(v.shape);
}

/** A zero-filled typed array of the same kind (dtype) as `like`, with `n` elements. */
export function allocLike(like: TypedArray, n: number): TypedArray {
  if (like instanceof Float64Array) return new Float64Array(n);
  if (like instanceof Float32Array) return new Float32Array(n);
  if (like instanceof Int32Array) return new Int32Array(n);
  // float16 / bfloat16 storage: the same subclass, so the format is kept
  if (like instanceof Uint16Array) return new (like.constructor as Uint16ArrayConstructor)(n);
  return new Uint8Array(n);
}

/** A contiguous row-major view of `data` (offset 0) with the given shape. */
export function contiguousView(data: TypedArray, shape: readonly number[]): View {
  return { data, shape, strides: contiguousStrides(shape), offset: 0 };
}

/** The view with its axes reordered: axis i of the result is axis perm[i] of `v` (no data moves). */
export function permuteView(v: View, perm: readonly number[]): View {
  return {
    data: v.data,
    shape: perm.map((p) => v.shape[p]),
    strides: perm.map((p) => v.strides[p]),
    offset: v.offset,
  };
}

/**
 * Copy every element of `src` into the (possibly strided) destination `dst`; both have the same shape and the
 * same kind of typed array. The odometer keeps one running offset per view: the innermost axis is a tight
 * loop, and advancing axis `ax` adds its stride, or on wrap-around subtracts stride * extent and carries to
 * `ax - 1`.
 */
export function copyStrided(src: View, dst: View): void {
  const shape = src.shape;
  const nd = shape.length;
  if (dst.shape.length !== nd) {
    throw internal(`copy: source rank ${nd} differs from destination rank ${dst.shape.length}`);
  }
  if (sizeOf(shape) === 0) return;
  const s = src.data;
  const d = dst.data;
  if (nd === 0) {
    d[dst.offset] = s[src.offset];
    return;
  }
  const sStr = src.strides;
  const dStr = dst.strides;
  const last = nd - 1;
  const len = shape[last];
  const ss = sStr[last];
  const ds = dStr[last];
  const idx = new Array<number>(nd).fill(0);
  let so = src.offset;
  let dOff = dst.offset;
  for (;;) {
    for (let j = 0, a = so, b = dOff; j < len; j++, a += ss, b += ds) d[b] = s[a];
    let ax = last - 1;
    for (; ax >= 0; ax--) {
      so += sStr[ax];
      dOff += dStr[ax];
      if (++idx[ax] < shape[ax]) break;
      idx[ax] = 0;
      so -= sStr[ax] * shape[ax];
      dOff -= dStr[ax] * shape[ax];
    }
    if (ax < 0) return;
  }
}

/**
 * The elements of `v` as a flat row-major array. A contiguous view is returned as a `subarray` (no copy: do
 * not write to the result); any other view is gathered into a fresh array of the same dtype.
 */
export function contiguousData(v: View): TypedArray {
  const n = viewSize(v);
  if (n === 0) return v.data.subarray(0, 0);
  if (isContiguous(v.shape, v.strides)) return v.data.subarray(v.offset, v.offset + n);
  const out = allocLike(v.data, n);
  copyStrided(v, contiguousView(out, v.shape));
  return out;
}

/** Throw an internal error unless two shapes are equal (kernels receive already-checked shapes). */
export function assertSameShape(op: string, a: readonly number[], b: readonly number[]): void {
  let ok = a.length === b.length;
  for (let i = 0; ok && i < a.length; i++) ok = a[i] === b[i];
  if (!ok) throw internal(`${op}: operand shapes [${a.join(", ")}] and [${b.join(", ")}] differ`);
}

/** Throw an internal error if `out` cannot hold `n` elements. */
export function assertOutSize(op: string, out: TypedArray, n: number): void {
  if (out.length < n) throw internal(`${op}: output buffer has ${out.length} elements, expected ${n}`);
}

/** An iteration space after coalescing: its extents and each operand's strides along them. */
export interface Coalesced {
  shape: number[];
  strides: number[][];
}

/**
 * Coalesce the axes of an iteration space shared by several operands (element strides): drop size-1 axes
 * and merge an axis into the next inner one when every operand steps over it contiguously
 * (stride[i] = stride[i + 1] * shape[i + 1]). A space of no axis longer than 1 gives no axes.
 */
export function coalesceAxes(shape: readonly number[], strides: readonly (readonly number[])[]): Coalesced {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i];
    if (d === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, k) => st[i] === outStrides[k][last] * outShape[last])) {
      outShape[last] *= d;
      continue;
    }
    outShape.push(d);
    for (let k = 0; k < strides.length; k++) outStrides[k].push(strides[k][i]);
  }
  outShape.reverse();
  for (const st of outStrides) st.reverse();
  return { shape: outShape, strides: outStrides };
}
