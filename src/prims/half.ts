/**
 * float16 / bfloat16 at the primitive layer: the one place that knows their storage.
 *
 * Kernels other than cast, copy and the movement/selection kernels never see 16-bit data. `runImpl` (called by
 * the evaluator and jit's executor for every primitive) passes a primitive with no half operand and no half
 * output straight to its `impl`; otherwise the primitives that only move or select elements (reshape, permute,
 * broadcast, slice, unslice, concat, flip, gather, where, cast) run on the 16-bit storage with the js kernels
 * (the other backends' kernels read only 32/64-bit and bool storage), and every other primitive runs its float32
 * kernel on operands widened to float32 (exact), its output rounded back to the half dtype once (to nearest,
 * ties to even), like PyTorch's CPU half ops computing in float. A bfloat16 matrix product uses the backend's
 * bfloat16 GEMM when it registered one (src/backend/half.ts: native with AVX512_BF16), which accumulates in
 * float32 exactly as the widened float32 GEMM would (products of bfloat16 values are exact in float32). sdpa and
 * sdpaBackward on 16-bit operands run the backend's 16-bit attention kernels when it registered them (native:
 * q, k, v read in place, any strides).
 */
import type { Backend, View } from "../backend/backend.ts";
import { halfKernelsOf } from "../backend/half.ts";
import { jsBackend } from "../backend/js/index.ts";
import type { Aval, Primitive } from "../core/primitive.ts";
import { type DType, isHalf, type TypedArray } from "../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { SdpaParams } from "./attention.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";

/** Primitives whose kernels only move, select or convert elements: they run on 16-bit storage directly. */
const ON_STORAGE = new Set([
  "reshape",
  "permute",
  "broadcast",
  "slice",
  "unslice",
  "concat",
  "flip",
  "gather",
  "where",
  "cast",
]);

/** The kernels that read storage of `dtype`: js for the 16-bit floats, else the current backend. */
export function backendFor(dtype: DType): Backend {
  return isHalf(dtype) ? jsBackend : getBackend();
}

/** out = cast(x) for any dtype pair; a pair involving a 16-bit float uses the backend's fast cast if it has one. */
export function castKernel(x: View, out: TypedArray): void {
  if (x.data instanceof Uint16Array || out instanceof Uint16Array) {
    const k = halfKernelsOf(getBackend().name);
    if (k?.castHalf !== undefined && (k.castHalf(x, out) || castStrided(k.castHalf, x, out))) return;
    jsBackend.cast(x, out);
    return;
  }
  getBackend().cast(x, out);
}

/** Below this many elements a strided cast stays in the js kernel. */
const STRIDED_MIN = 1024;

/**
 * A cast between float32 and a 16-bit float of a strided view (a transposed weight, a broadcast bias) through
 * the backend's contiguous cast and its strided copy, instead of the js kernel's per-element loop: float32 ->
 * 16-bit copies the view contiguous first; 16-bit -> float32 widens the storage range the view spans (when it
 * is at most twice the view's size: transposes, broadcasts, most slices) and copies the view out of it, else
 * copies the 16-bit view contiguous (js) and widens that. Returns false for what it does not handle.
 */
function castStrided(cast: (x: View, out: TypedArray) => boolean, x: View, out: TypedArray): boolean {
  const { shape, strides } = x;
  const n = sizeOf(shape);
  if (n < STRIDED_MIN) return false;
  if (castBlocks(cast, x, out)) return true;
  const dense = contiguousStrides(shape);
  const backend = getBackend();
  if (x.data instanceof Float32Array && out instanceof Uint16Array) {
    const tmp = new Float32Array(n);
    backend.copy(x, { data: tmp, shape, strides: dense, offset: 0 });
    return cast({ data: tmp, shape, strides: dense, offset: 0 }, out);
  }
  if (x.data instanceof Uint16Array && out instanceof Float32Array) {
    let lo = x.offset;
    let hi = x.offset;
    for (let i = 0; i < shape.length; i++) {
      const e = (shape[i] - 1) * strides[i];
      if (e < 0) lo += e;
      else hi += e;
    }
    const span = hi - lo + 1;
    if (span <= 2 * n) {
      const wide = new Float32Array(span);
      if (!cast({ data: x.data, shape: [span], strides: [1], offset: lo }, wide)) return false;
      backend.copy(
        { data: wide, shape, strides, offset: x.offset - lo },
        { data: out, shape, strides: dense, offset: 0 },
      );
      return true;
    }
    const Ctor = x.data.constructor as new (n: number) => Uint16Array;
    const packed = new Ctor(n);
    jsBackend.copy(x, { data: packed, shape, strides: dense, offset: 0 });
    return cast({ data: packed, shape, strides: dense, offset: 0 }, out);
  }
  return false;
}

/** The smallest contiguous block castBlocks casts with one call. */
const BLOCK_MIN = 4096;

/**
 * A cast of a view made of contiguous blocks (its trailing axes dense, e.g. one of the gradients sliced out of
 * sdpaBackward's packed output), one contiguous cast per block straight into `out`: no copy. Returns false when
 * the blocks are smaller than BLOCK_MIN elements (or the cast declines one).
 */
function castBlocks(cast: (x: View, out: TypedArray) => boolean, x: View, out: TypedArray): boolean {
  const { shape, strides } = x;
  const nd = shape.length;
  let a = nd;
  let block = 1;
  while (a > 0 && (shape[a - 1] === 1 || strides[a - 1] === block)) block *= shape[--a];
  if (block < BLOCK_MIN || a === 0) return false;
  const outer = sizeOf(shape.slice(0, a));
  const flat = [block];
  const unit = [1];
  for (let i = 0; i < outer; i++) {
    let off = x.offset;
    for (let j = a - 1, r = i; j >= 0; j--) {
      off += (r % shape[j]) * strides[j];
      r = Math.floor(r / shape[j]);
    }
    const dst = out.subarray(i * block, (i + 1) * block);
    if (!cast({ data: x.data, shape: flat, strides: unit, offset: off }, dst)) return false;
  }
  return true;
}

/**
 * A fresh float32 tensor holding the values of half `t` (exact). A strided view (a broadcast bias, a
 * transposed matrix) whose storage range is at most twice its size is widened over that range and returned
 * as the same view of the widened copy (the kernels take any strides), without a strided copy.
 */
export function widen(t: Tensor): Tensor {
  const k = halfKernelsOf(getBackend().name);
  if (k?.castHalf !== undefined && t._data !== null && !isContiguous(t.shape, t._strides)) {
    let lo = t._offset;
    let hi = t._offset;
    for (let i = 0; i < t.shape.length; i++) {
      const e = (t.shape[i] - 1) * t._strides[i];
      if (e < 0) lo += e;
      else hi += e;
    }
    const span = hi - lo + 1;
    const n = sizeOf(t.shape);
    if (n >= STRIDED_MIN && span <= 2 * n) {
      const wide = new Float32Array(span);
      if (k.castHalf({ data: t._data, shape: [span], strides: [1], offset: lo }, wide)) {
        return Tensor._concrete(wide, t.shape, "float32", t._strides, t._offset - lo);
      }
    }
  }
  const o = allocOut({ shape: t.shape, dtype: "float32" });
  castKernel(viewOf(t), o._data!);
  return o;
}

/** `t` (float32) rounded to the half dtype `dtype`, in a fresh tensor. */
export function narrow(t: Tensor, dtype: DType): Tensor {
  const o = allocOut({ shape: t.shape, dtype });
  castKernel(viewOf(t), o._data!);
  return o;
}

/**
 * The float32 product a @ b of two concrete bfloat16 matrices straight from the backend's bfloat16 GEMM (its
 * float32 accumulators, not rounded), or null when the backend has none or declines (the caller widens and
 * multiplies). Not differentiable: for values that need no further derivative (autocast's weight gradient).
 */
export function dotBF16Float32(a: Tensor, b: Tensor): Tensor | null {
  if (a.dtype !== "bfloat16" || b.dtype !== "bfloat16" || a._data === null || b._data === null) return null;
  if (a.ndim !== 2 || b.ndim !== 2 || a.shape[1] !== b.shape[0]) return null;
  const k = halfKernelsOf(getBackend().name);
  if (k?.dotBF16 === undefined) return null;
  const o = allocOut({ shape: [a.shape[0], b.shape[1]], dtype: "float32" });
  return k.dotBF16(viewOf(a), viewOf(b), o._data as Float32Array) ? o : null;
}

/** From this many multiply-adds a bfloat16 product runs the bfloat16 GEMM with a bfloat16 output. */
const DIRECT_MIN = 4096;

/** Whether any argument is a 16-bit float tensor. */
function anyHalf(args: readonly Tensor[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const d = args[i].dtype;
    if (d === "float16" || d === "bfloat16") return true;
  }
  return false;
}

/**
 * Run `prim`'s implementation on concrete `args` for the output aval `out`, widening 16-bit float operands as
 * the module comment says. Every evaluation of a primitive goes through here.
 */
export function runImpl<P>(prim: Primitive<P>, args: readonly Tensor[], params: P, out: Aval): Tensor {
  const od = out.dtype;
  if (od !== "float16" && od !== "bfloat16" && !anyHalf(args)) return prim.impl(args, params, out);
  if (ON_STORAGE.has(prim.name)) return prim.impl(args, params, out);
  if (prim.name === "dot" && od === "bfloat16" && args[0].dtype === od && args[1].dtype === od) {
    const k = halfKernelsOf(getBackend().name);
    const [a, b] = args;
    if (k?.gemmBF16 !== undefined && sizeOf(out.shape) * a.shape[a.ndim - 1] >= DIRECT_MIN) {
      // the GEMM rounds its float32 accumulators to bfloat16 as it stores them
      const o = allocOut(out);
      if (k.gemmBF16(viewOf(a), viewOf(b), o._data as Uint16Array)) return o;
    }
    if (k?.dotBF16 !== undefined) {
      const o = allocOut({ shape: out.shape, dtype: "float32" });
      if (k.dotBF16(viewOf(a), viewOf(b), o._data as Float32Array)) return narrow(o, od);
    }
  }
  if ((prim.name === "sdpa" || prim.name === "sdpaBackward") && isHalf(args[0].dtype)) {
    const r = sdpaHalf(prim.name === "sdpaBackward", args, params as SdpaParams, out);
    if (r !== null) return r;
  }
  const wide = args.map((a) => (isHalf(a.dtype) ? widen(a) : a));
  if (!isHalf(od)) return prim.impl(wide, params, out);
  const r = prim.impl(wide, params, { shape: out.shape, dtype: "float32" });
  return narrow(r, od);
}

/**
 * sdpa / sdpaBackward on 16-bit q, k, v (and mask) straight from the backend's 16-bit attention kernels (native:
 * they widen the operands, any strides, inside the kernel; the float32 output is the float32 kernel's on the
 * widened operands), or null when the backend has none or declines (the caller widens).
 */
function sdpaHalf(backward: boolean, args: readonly Tensor[], p: SdpaParams, out: Aval): Tensor | null {
  const k = halfKernelsOf(getBackend().name);
  const run = backward ? k?.attentionBackward : k?.attention;
  if (run === undefined || out.dtype !== "float32" || args.some((a) => a._data === null)) return null;
  const n = args.length;
  const o = allocOut(out);
  const vs = args.map(viewOf);
  const data = o._data as Float32Array;
  const withMask = n === (backward ? 6 : 4);
  const mask = withMask ? vs[3] : null;
  const done = backward
    ? k!.attentionBackward!(vs[0], vs[1], vs[2], mask, vs[n - 2], vs[n - 1], p.causal, p.scale, data)
    : k!.attention!(vs[0], vs[1], vs[2], mask, p.causal, p.scale, data);
  return done ? o : null;
}
