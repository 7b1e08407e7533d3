/**
 * The js reference of the optional `argsort` kernel (see Backend.argsort): the stable sorting permutation of
 * every row along an axis, NaN above every number.
 */
import type { TypedArray } from "../../dtype.ts";
import type { View } from "../backend.ts";
import { assertOutSize, contiguousData, viewSize } from "./strided.ts";

/** Ascending order with NaN last; 0 for equal values (-0 and +0 included), so the sort stays stable. */
function ascending(a: number, b: number): number {
  if (a < b) return -1;
  if (a > b) return 1;
  if (a === b) return 0;
  const na = Number.isNaN(a);
  const nb = Number.isNaN(b);
  return na === nb ? 0 : na ? 1 : -1;
}

/** out (int32, x's shape) = the stable ascending (or descending) permutation of each row along `axis`. */
export function argsort(x: View, axis: number, descending: boolean, out: TypedArray): void {
  const n = viewSize(x);
  assertOutSize("argsort", out, n);
  if (n === 0) return;
  const src = contiguousData(x);
  const shape = x.shape;
  const len = shape.length === 0 ? 1 : shape[axis];
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d];
  const outer = n / (len * inner);
  const perm = new Array<number>(len);
  const vals = new Float64Array(len);
  // Array.prototype.sort is stable (ES2019); descending compares with the operands swapped
  const cmp = descending
    ? (i: number, j: number) => ascending(vals[j], vals[i])
    : (i: number, j: number) => ascending(vals[i], vals[j]);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < inner; k++) {
      const base = o * len * inner + k;
      for (let i = 0; i < len; i++) {
        perm[i] = i;
        vals[i] = src[base + i * inner];
      }
      perm.sort(cmp);
      for (let i = 0; i < len; i++) out[base + i * inner] = perm[i];
    }
  }
}
