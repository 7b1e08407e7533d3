/**
 * Layer normalisation on the wasm backend (kernel: wasm/assembly/norm.ts): layerNorm, layerNormBackward and the
 * affine kernels on float32 rows, with float64 row sums and float64 per-element arithmetic rounded once (the js
 * reference's values up to the order of its sums). The operands are staged contiguous into the arena. float64 and
 * anything the js kernel would reject (a bad shape) decline, and the js kernel runs (and reports the error).
 */
import type { TypedArray } from "../../dtype.ts";
import { sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import { type Ctx, stageContiguous, stageOut, withScope } from "./context.ts";

/** The kernel's modes (wasm/assembly/norm.ts). */
export const LN_FORWARD = 0;
export const LN_AFFINE = 1;
export const LN_BACKWARD = 2;
export const LN_SCALED_BACKWARD = 3;
export const LN_AFFINE_GRADS = 4;

const isF32 = (v: View | null) => v === null || v.data instanceof Float32Array;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * One layerNorm-family call in wasm; false (the js kernel runs) for float64, for shapes the js kernel checks and
 * rejects, and for what does not fit the heap (OutOfHeap, handled by the caller).
 */
export function layerNormKernel(
  c: Ctx,
  mode: number,
  x: View,
  g: View | null,
  w: View | null,
  b: View | null,
  eps: number,
  out: TypedArray,
): boolean {
  if (x.shape.length === 0 || !(out instanceof Float32Array)) return false;
  if (!isF32(x) || !isF32(g) || !isF32(w) || !isF32(b)) return false;
  const n = sizeOf(x.shape);
  const r = x.shape[x.shape.length - 1];
  for (const v of [w, b]) if (v !== null && (v.shape.length !== 1 || v.shape[0] !== r)) return false;
  if (g !== null && !sameShape(g.shape, x.shape)) return false;
  const outLen = mode === LN_AFFINE_GRADS ? 2 * r : n;
  if (out.length !== outLen) return false;
  if (n === 0) {
    out.fill(0); // the gradients' sums over no rows (the other modes write nothing)
    return true;
  }
  return withScope(c, (s) => {
    const X = stageContiguous(c, s, x);
    const G = g === null ? 0 : stageContiguous(c, s, g);
    const W = w === null ? 0 : stageContiguous(c, s, w);
    const B = b === null ? 0 : stageContiguous(c, s, b);
    const acc = mode === LN_AFFINE_GRADS ? s.alloc(16 * r) : 0;
    const o = stageOut(c, s, out, outLen);
    c.k.layerNormF32(mode, n / r, r, X, G, W, B, o.ptr, eps, acc);
    o.finish();
    return true;
  });
}
