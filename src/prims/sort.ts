/**
 * Sorting: the `argsort` primitive (the stable sorting permutation along an axis, int32). Its output is
 * piecewise constant in x, so its derivative is zero; the ops layer takes sorted values (and topk's) as a gather
 * of x with this permutation, so their derivative is the gather's: the cotangent goes to the selected positions.
 */
import { argsort as jsArgsort } from "../backend/js/sort.ts";
import type { Primitive } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { ShapeError } from "../errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll } from "./batching.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";
import { zeroDerivative } from "./rules.ts";

export interface ArgsortParams {
  readonly axis: number;
  readonly descending: boolean;
}

export const argsortP: Primitive<ArgsortParams> = {
  name: "argsort",
  abstract([x], p) {
    if (x.shape.length > 0 && (p.axis < 0 || p.axis >= x.shape.length)) {
      throw new ShapeError(`internal: argsort axis ${p.axis} for rank ${x.shape.length}`);
    }
    return { shape: x.shape, dtype: "int32" };
  },
  impl([x], p, out) {
    const o = allocOut(out);
    const b = getBackend();
    (b.argsort ?? jsArgsort)(viewOf(x), p.axis, p.descending, o._data!);
    return o;
  },
  derivative: zeroDerivative,
  // rows along the axis are independent: the batch axis leads, the sorted axis moves one place
  batch: batchAll<ArgsortParams>((p) => ({ axis: p.axis + 1, descending: p.descending })),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
export const sortPrimitives = { argsort: argsortP };

/** The stable sorting permutation of x along `axis` (int32, x's shape). */
export function argsortAxis(x: Tensor, axis: number, descending: boolean): Tensor {
  return bind(argsortP, [x], { axis, descending });
}
