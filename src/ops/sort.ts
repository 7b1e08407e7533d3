/**
 * Sorting ops (PyTorch's sort, argsort, topk): the permutation comes from the `argsort` primitive (stable,
 * NaN above every number), the values are a gather of x with it, so gradients go to the selected positions
 * (at ties: to the element the stable order selected) and the indices are int32 constants.
 */
import { ShapeError } from "../errors.ts";
import * as X from "../prims/lax.ts";
import { fmtShape, normAxis } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Values and indices (int32), readable as a pair `[values, indices]` or by name, as PyTorch's namedtuple. */
export type ValuesIndices = [Tensor, Tensor] & { readonly values: Tensor; readonly indices: Tensor };

function pair(values: Tensor, indices: Tensor): ValuesIndices {
  return Object.assign([values, indices] as [Tensor, Tensor], { values, indices });
}

/** The permutation along `dim` (any rank; a 0-d tensor is a row of one). */
function permutation(op: string, x: Tensor, dim: number, descending: boolean): [Tensor, number] {
  const axis = normAxis(op, dim, x.ndim);
  if (x.ndim === 0) return [X.argsortAxis(X.reshape(x, [1]), 0, descending), 0];
  return [X.argsortAxis(x, axis, descending), axis];
}

export interface SortOpts {
  /** Sort along this dim (default -1). */
  dim?: number;
  /** Largest first (default false). */
  descending?: boolean;
  /** Accepted for PyTorch compatibility: the sort is always stable. */
  stable?: boolean;
}

/**
 * Sorted values along `dim` and the positions they came from (PyTorch's `sort`, always stable: equal elements
 * keep their order, also descending; NaN counts as the largest). `sort(x, dim, descending)` also works.
 */
export function sort(x: Tensor, opts: SortOpts | number = {}, descending?: boolean): ValuesIndices {
  const o = typeof opts === "number" ? { dim: opts, descending } : opts;
  const [idx, axis] = permutation("sort", x, o.dim ?? -1, o.descending ?? false);
  if (x.ndim === 0) return pair(x, X.reshape(idx, []));
  return pair(X.gather(x, idx, axis), idx);
}

/** The positions that sort `x` along `dim` (int32; stable). */
export function argsort(x: Tensor, opts: SortOpts | number = {}, descending?: boolean): Tensor {
  const o = typeof opts === "number" ? { dim: opts, descending } : opts;
  const [idx] = permutation("argsort", x, o.dim ?? -1, o.descending ?? false);
  return x.ndim === 0 ? X.reshape(idx, []) : idx;
}

export interface TopkOpts {
  /** Along this dim (default -1). */
  dim?: number;
  /** The k largest (default true) or the k smallest. */
  largest?: boolean;
  /** Accepted for PyTorch compatibility: the results are always sorted (largest first, or smallest first). */
  sorted?: boolean;
}

/**
 * The k largest (or smallest) elements along `dim` and their positions (PyTorch's `topk`), in sorted order;
 * among equal elements the earlier position comes first. k must be in [0, size of dim].
 */
export function topk(
  x: Tensor,
  k: number,
  options: TopkOpts | number = {},
  largest?: boolean,
): ValuesIndices {
  const opts = typeof options === "number" ? { dim: options, largest } : options;
  const dim = opts.dim ?? -1;
  const axis = normAxis("topk", dim, x.ndim);
  const n = x.ndim === 0 ? 1 : x.shape[axis];
  if (!Number.isInteger(k) || k < 0 || k > n) {
    throw new RangeError(
      `topk: k = ${k} is out of range for dim ${dim} of size ${n} (shape ${fmtShape(x.shape)}); expected an integer in [0, ${n}]`,
    );
  }
  const [idx] = permutation("topk", x, dim, opts.largest ?? true);
  if (x.ndim === 0) {
    if (k === 0) throw new ShapeError("topk: k = 0 of a 0-d tensor has no result shape");
    return pair(x, X.reshape(idx, []));
  }
  const shape = x.shape.map((d, i) => (i === axis ? k : d));
  const first =
    k === n
      ? idx
      : X.slice(
          idx,
          x.shape.map(() => 0),
          x.shape.map(() => 1),
          shape,
        );
  return pair(X.gather(x, first, axis), first);
}
