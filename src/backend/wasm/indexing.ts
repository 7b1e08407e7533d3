/**
 * scatterAdd of the wasm backend (kernel: wasm/assembly/indexing.ts); gather stays the js kernel. gather is
 * pure data movement that often picks a few rows of a large array (a minibatch out of a dataset), and staging
 * that whole array into wasm memory would cost more than the js loop over the rows it reads. scatterAdd
 * touches all of its output (the maxPool2d gradient scatters into whole planes), so it stages well.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import { type Ctx, stageContiguous, withScope } from "./context.ts";
import { KIND } from "./elementwise.ts";
import { viewAt } from "./heap.ts";

/**
 * scatterAdd in wasm for float32 / float64 / int32; false (the js kernel runs and reports any error) for other
 * dtypes, inconsistent shapes or an index out of range.
 */
export function scatterAdd(
  c: Ctx,
  src: View,
  axis: number,
  idx: View,
  out: TypedArray,
  outShape: readonly number[],
): boolean {
  const dt = dtypeOfTyped(out);
  if (dt === "bool" || dtypeOfTyped(src.data) !== dt || !(idx.data instanceof Int32Array)) return false;
  const nd = outShape.length;
  if (src.shape.length !== nd || idx.shape.length !== nd || axis < 0 || axis >= nd) return false;
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < nd; i++) {
    if (src.shape[i] !== idx.shape[i]) return false;
    if (i === axis) continue;
    if (outShape[i] !== idx.shape[i]) return false;
    if (i < axis) outer *= outShape[i];
    else inner *= outShape[i];
  }
  const ao = outShape[axis];
  const ai = idx.shape[axis];
  const size = outer * ao * inner;
  if (out.length < size) return false;
  if (sizeOf(idx.shape) === 0 || size === 0) return true;
  return withScope(c, (s) => {
    const S = stageContiguous(c, s, src);
    const I = stageContiguous(c, s, idx);
    const O = s.copyIn(out, 0, size, false); // accumulated into: its current contents count
    const acc = dt === "float32" ? s.alloc(size * 8) : 0;
    if (c.k.scatterAdd(KIND[dt], outer, ai, inner, ao, S, I, O, acc) === 0) return false;
    out.set(viewAt(c.heap.buffer, dt, O, size));
    return true;
  });
}
