/**
 * Reductions and pooling of the wasm backend.
 *
 * reduce: the input is made contiguous, its axes are grouped into maximal runs of kept and reduced axes
 * (size-1 axes dropped), and each reduced run is removed in turn, innermost first, by one pass of the wasm
 * kernel over [outer, r, inner] (see wasm/assembly/reduce.ts). One pass covers the common cases (last axis,
 * first axis, a middle block); a batch-norm style reduction over (0, 2, 3) of NCHW takes two.
 * Pooling (float32) runs the wasm kernels on contiguous NCHW planes, forward and both transposes (average,
 * and max at a point); other dtypes fall back to js.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import type { Pool2dParams, ReduceOp, View } from "../backend.ts";
import { maxPoolBackwardDims, type PoolDims, poolDims } from "../js/pool.ts";
import { assertOutSize } from "../js/strided.ts";
import {
  copyRaw,
  type Ctx,
  type Operand,
  type Scope,
  stageContiguous,
  stageIn,
  stageOut,
  withScope,
  writeInts,
} from "./context.ts";

const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, prod: 1, max: 2, min: 3 };

/** Reduce x over `axes` into out, in wasm (float32, float64, int32); false for other dtypes. */
export function reduce(c: Ctx, op: ReduceOp, x: View, axes: readonly number[], out: TypedArray): boolean {
  const dt = dtypeOfTyped(x.data);
  if (dt === "bool" || dtypeOfTyped(out) !== dt) return false;
  if (x.shape.length === 0 && axes.length > 0)
    x = { data: x.data, shape: [1], strides: [0], offset: x.offset };
  const nd = x.shape.length;
  const reduced = new Array<boolean>(nd).fill(false);
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= nd || reduced[a]) {
      throw internal(`reduce: axes [${axes.join(", ")}] invalid for rank ${nd}`);
    }
    reduced[a] = true;
  }
  let kept = 1;
  for (let i = 0; i < nd; i++) if (!reduced[i]) kept *= x.shape[i];
  assertOutSize(op, out, kept);
  if (kept === 0) return true;
  const n = sizeOf(x.shape);
  if (n === 0) {
    // reducing an empty axis: sum of nothing is 0, prod of nothing is 1 (max/min never get here)
    out.fill(op === "prod" ? 1 : 0, 0, kept);
    return true;
  }
  return withScope(c, (s) => {
    reduceStaged(c, s, op, dt as "float32" | "float64" | "int32", x.shape, stageIn(c, s, x), axes, out);
    return true;
  });
}

/**
 * The reduction of an operand already in wasm memory (`x`: pointer and element strides, not empty) over
 * `axes` of `shape` into `out` (kept elements, not 0): `reduce`'s passes, so the same bits. Used by `reduce`
 * and by the fused kernel's reduction terminal (fused.ts).
 */
export function reduceStaged(
  c: Ctx,
  s: Scope,
  op: ReduceOp,
  dt: "float32" | "float64" | "int32",
  shape: readonly number[],
  x: Operand,
  axes: readonly number[],
  out: TypedArray,
): void {
  const nd = shape.length;
  const reduced = new Array<boolean>(nd).fill(false);
  for (const a of axes) reduced[a] = true;
  let kept = 1;
  for (let i = 0; i < nd; i++) if (!reduced[i]) kept *= shape[i];
  // runs of kept / reduced axes, size-1 axes dropped
  const sizes: number[] = [];
  const red: boolean[] = [];
  for (let i = 0; i < nd; i++) {
    if (shape[i] === 1) continue;
    if (red.length > 0 && red[red.length - 1] === reduced[i]) sizes[sizes.length - 1] *= shape[i];
    else {
      sizes.push(shape[i]);
      red.push(reduced[i]);
    }
  }
  const es = out.BYTES_PER_ELEMENT;
  if (!red.includes(true)) {
    // nothing to reduce (no axes, or only size-1 axes): a copy into the contiguous out
    const O = stageOut(c, s, out, kept);
    copyRaw(c, es, shape, x, { ptr: O.ptr, strides: contiguousStrides(shape) });
    O.finish();
    return;
  }
  let cur = isContiguous(shape, x.strides) ? x.ptr : s.alloc(sizeOf(shape) * es);
  if (cur !== x.ptr) copyRaw(c, es, shape, x, { ptr: cur, strides: contiguousStrides(shape) });
  const O = stageOut(c, s, out, kept);
  let acc = 0;
  if (dt === "float32") {
    let maxInner = 1;
    for (let b = 0; b < sizes.length; b++) if (red[b]) maxInner = Math.max(maxInner, prod(sizes, b + 1));
    acc = s.alloc(maxInner * 8);
  }
  for (let b = sizes.length - 1; b >= 0; b--) {
    if (!red[b]) continue;
    const outer = prod(sizes, 0, b);
    const inner = prod(sizes, b + 1);
    const last = !red.slice(0, b).includes(true);
    const dst = last ? O.ptr : s.alloc(outer * inner * es);
    const code = REDUCE_CODE[op];
    if (dt === "float32") c.k.reduceF32(code, outer, sizes[b], inner, cur, dst, acc);
    else if (dt === "float64") c.k.reduceF64(code, outer, sizes[b], inner, cur, dst);
    else c.k.reduceI32(code, outer, sizes[b], inner, cur, dst);
    cur = dst;
    sizes.splice(b, 1);
    red.splice(b, 1);
  }
  O.finish();
}

function prod(a: readonly number[], from: number, to = a.length): number {
  let p = 1;
  for (let i = from; i < to; i++) p *= a[i];
  return p;
}

/** Pooling geometry descriptor [P, H, W, OH, OW, kh, kw, sh, sw, ph, pw] of checked sizes. */
function poolGeometry(d: PoolDims, p: Pool2dParams): number[] {
  return [d.planes, d.h, d.w, d.oh, d.ow, ...p.kernel, ...p.stride, ...p.padding];
}

/**
 * Forward pooling in wasm: max values (mode 0), max argmax indices (mode 1, int32 out) or averages (mode 2).
 * float32 input only.
 */
export function pool(
  c: Ctx,
  mode: 0 | 1 | 2,
  x: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): boolean {
  const outOk = mode === 1 ? out instanceof Int32Array : out instanceof Float32Array;
  if (!(x.data instanceof Float32Array) || !outOk) return false;
  const op = mode === 0 ? "maxPool2d" : mode === 1 ? "maxPool2dArgmax" : "avgPool2d";
  const geo = poolGeometry(poolDims(op, x.shape, outShape, p), p);
  const size = sizeOf(outShape);
  assertOutSize(op, out, size);
  if (size === 0) return true;
  return withScope(c, (s) => {
    const X = stageContiguous(c, s, x);
    const O = stageOut(c, s, out, size);
    if (mode === 2) c.k.avgPool(writeInts(c, geo), X, O.ptr);
    else c.k.maxPool(writeInts(c, geo), X, O.ptr, mode);
    O.finish();
    return true;
  });
}

/** Transpose of average pooling in wasm (float32 only). */
export function avgPoolBackward(
  c: Ctx,
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): boolean {
  if (!(dy.data instanceof Float32Array) || !(out instanceof Float32Array)) return false;
  const geo = poolGeometry(poolDims("avgPool2dBackward", outShape, dy.shape, p), p);
  const size = sizeOf(outShape);
  assertOutSize("avgPool2dBackward", out, size);
  if (size === 0) return true;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    if (sizeOf(dy.shape) === 0) {
      c.k.zero(O.ptr, size * 4);
    } else {
      const DY = stageContiguous(c, s, dy);
      const acc = s.alloc(size * 8);
      c.k.avgPoolBack(writeInts(c, geo), DY, O.ptr, acc);
    }
    O.finish();
    return true;
  });
}

/**
 * Transpose of max pooling at x in wasm (float32 only): dy [N, C, OH, OW] -> out [N, C, H, W] (x's shape).
 * The float64 accumulator (one plane) is needed only where windows overlap.
 */
export function maxPoolBackward(
  c: Ctx,
  x: View,
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): boolean {
  const f32 = (a: TypedArray) => a instanceof Float32Array;
  if (!f32(x.data) || !f32(dy.data) || !f32(out)) return false;
  const geo = poolGeometry(maxPoolBackwardDims(x, dy, outShape, p), p);
  const size = sizeOf(outShape);
  assertOutSize("maxPool2dBackward", out, size);
  if (size === 0) return true;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    if (sizeOf(dy.shape) === 0) {
      c.k.zero(O.ptr, size * 4); // no window: nothing reaches dx
    } else {
      const X = stageContiguous(c, s, x);
      const DY = stageContiguous(c, s, dy);
      const overlap = p.stride[0] < p.kernel[0] || p.stride[1] < p.kernel[1];
      const acc = overlap ? s.alloc(outShape[2] * outShape[3] * 8) : 0;
      c.k.maxPoolBack(writeInts(c, geo), X, DY, O.ptr, acc);
    }
    O.finish();
    return true;
  });
}
