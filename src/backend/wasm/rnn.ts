/**
 * Fused recurrent cells of the wasm backend (Backend.lstmCell, lstmCellBackward, gruCell, gruCellBackward;
 * kernels in wasm/assembly/rnn.ts): each operand is staged row-major contiguous (the wasm copy kernel
 * rearranges a strided view), one kernel call runs every row, and the output is copied out. float32 (SIMD
 * sigmoid / tanh) and float64; other dtypes, or operands whose shapes or dtypes disagree, return false (the js
 * kernel then runs and reports the error).
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import type { View } from "../backend.ts";
import { assertOutSize } from "../js/strided.ts";
import { type Ctx, stageContiguous, stageOut, withScope } from "./context.ts";

/** Rows n and hidden size H of [...B, widths[k] H] operands of one float dtype, or null if they disagree. */
function rowsOf(
  vs: readonly View[],
  widths: readonly number[],
  out: TypedArray,
): { n: number; h: number } | null {
  const x = vs[0];
  const nd = x.shape.length;
  const dt = dtypeOfTyped(out);
  if ((dt !== "float32" && dt !== "float64") || nd < 1) return null;
  const h = x.shape[nd - 1] / widths[0];
  if (!Number.isInteger(h)) return null;
  let n = 1;
  for (let a = 0; a < nd - 1; a++) n *= x.shape[a];
  for (const [k, v] of vs.entries()) {
    if (dtypeOfTyped(v.data) !== dt || v.shape.length !== nd || v.shape[nd - 1] !== widths[k] * h)
      return null;
    for (let a = 0; a < nd - 1; a++) if (v.shape[a] !== x.shape[a]) return null;
  }
  return { n, h };
}

/** Run cell kernel `f` (element size, n, H, operand pointers..., output pointer) on rows of `vs`. */
function cell(
  c: Ctx,
  op: string,
  vs: readonly View[],
  widths: readonly number[],
  outWidth: number,
  out: TypedArray,
  f: (...a: number[]) => number,
): boolean {
  const d = rowsOf(vs, widths, out);
  if (d === null) return false;
  const size = d.n * d.h * outWidth;
  assertOutSize(op, out, size);
  if (size === 0) return true;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    const ptrs = vs.map((v) => stageContiguous(c, s, v));
    f(out.BYTES_PER_ELEMENT, d.n, d.h, ...ptrs, O.ptr);
    O.finish();
    return true;
  });
}

/** Backend.lstmCell in wasm. */
export function lstmCell(c: Ctx, gates: View, cv: View, out: TypedArray): boolean {
  return cell(c, "lstmCell", [gates, cv], [4, 1], 2, out, c.k.lstmCell);
}

/** Backend.lstmCellBackward in wasm. */
export function lstmCellBackward(c: Ctx, gates: View, cv: View, ct: View, out: TypedArray): boolean {
  return cell(c, "lstmCellBackward", [gates, cv, ct], [4, 1, 2], 5, out, c.k.lstmCellBack);
}

/** Backend.gruCell in wasm. */
export function gruCell(c: Ctx, xp: View, hp: View, h: View, out: TypedArray): boolean {
  return cell(c, "gruCell", [xp, hp, h], [3, 3, 1], 1, out, c.k.gruCell);
}

/** Backend.gruCellBackward in wasm. */
export function gruCellBackward(c: Ctx, xp: View, hp: View, h: View, ct: View, out: TypedArray): boolean {
  return cell(c, "gruCellBackward", [xp, hp, h, ct], [3, 3, 1, 1], 7, out, c.k.gruCellBack);
}
