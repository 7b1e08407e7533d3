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
 * float32 exactly as the widened float32 GEMM would (products of bfloat16 values are exact in float32).
 */
import type { Backend, View } from "../backend/backend.ts";
import { halfKernelsOf } from "../backend/half.ts";
import { jsBackend } from "../backend/js/index.ts";
import type { Aval, Primitive } from "../core/primitive.ts";
import { type DType, isHalf, type TypedArray } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
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
    if (k?.castHalf?.(x, out)) return;
    jsBackend.cast(x, out);
    return;
  }
  getBackend().cast(x, out);
}

/** A fresh float32 tensor holding the values of half `t` (exact). */
export function widen(t: Tensor): Tensor {
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
    if (k?.dotBF16 !== undefined) {
      const o = allocOut({ shape: out.shape, dtype: "float32" });
      if (k.dotBF16(viewOf(args[0]), viewOf(args[1]), o._data as Float32Array)) return narrow(o, od);
    }
  }
  const wide = args.map((a) => (isHalf(a.dtype) ? widen(a) : a));
  if (!isHalf(od)) return prim.impl(wide, params, out);
  const r = prim.impl(wide, params, { shape: out.shape, dtype: "float32" });
  return narrow(r, od);
}
