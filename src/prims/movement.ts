/**
 * Movement primitives: reshape, permute, broadcast, slice (and its transpose, unslice), concat, flip, gather and
 * scatter-add. Reshape (whenever the strides allow, as PyTorch's), permute, broadcast, slice and flip are views:
 * they return a tensor sharing the input's storage with new strides. All are linear, so their derivatives are
 * transposes. Broadcast and reshape check their target shape (`checkDims`: at most 2^48 elements), the one place
 * every expanded view passes. *
 * Each primitive's binder (JAX's lax) is declared here too. Rules use only binders and Tensor methods; a method
 * delegates to src/ops, which binds these primitives: the Tensor-facade loop, closed at call time only (see
 * docs/architecture.md, "Layers").
 */
import type { Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { ShapeError } from "../errors.ts";
import { checkDims, fmtShape, shapesEqual, sizeOf, viewStrides } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { backendFor } from "./half.ts";
import { allocOut, getBackend, instantiate, viewOf, viewTensor } from "./impl.ts";
import { batchAll, shiftAxes } from "./batching.ts";
import { linear, linearIn } from "./rules.ts";

/** A contiguous copy of any concrete tensor. */
export function materialize(x: Tensor): Tensor {
  const o = allocOut(x);
  backendFor(x.dtype).copy(viewOf(x), viewOf(o));
  return o;
}

export interface ShapeParams {
  readonly shape: readonly number[];
}

export const reshapeP: Primitive<ShapeParams> = {
  name: "reshape",
  abstract([x], p) {
    checkDims("reshape", p.shape);
    if (sizeOf(x.shape) !== sizeOf(p.shape)) {
      throw new ShapeError(
        `reshape: cannot reshape ${fmtShape(x.shape)} (${sizeOf(x.shape)} elements) to ${fmtShape(p.shape)}`,
      );
    }
    return { shape: p.shape, dtype: x.dtype };
  },
  impl([x], p) {
    // A view whenever the layout allows (as PyTorch's reshape): dropping an indexed dim of a strided slice, or
    // splitting/merging contiguous runs of dims, shares storage; only a layout no strides can express copies.
    const strides = viewStrides(x.shape, x._strides, p.shape);
    if (strides !== null) return viewTensor(x, p.shape, strides, x._offset);
    const src = materialize(x);
    return viewTensor(src, p.shape, viewStrides(src.shape, src._strides, p.shape)!, src._offset);
  },
  // movement ops: the batch axis leads, so params gain it
  batch: batchAll<ShapeParams>((p, n) => ({ shape: [n, ...p.shape] })),
  derivative: linear<ShapeParams>((ct, _x, _o, _p, _n, avals) => [reshape(ct, avals[0].shape)]),
};

export interface PermParams {
  readonly perm: readonly number[];
}

export const permuteP: Primitive<PermParams> = {
  name: "permute",
  abstract([x], p) {
    return { shape: p.perm.map((i) => x.shape[i]), dtype: x.dtype };
  },
  impl([x], p, out) {
    return viewTensor(
      x,
      out.shape,
      p.perm.map((i) => x._strides[i]),
      x._offset,
    );
  },
  batch: batchAll<PermParams>((p) => ({ perm: [0, ...shiftAxes(p.perm)] })),
  derivative: linear<PermParams>((ct, _x, _o, p) => {
    const inv = new Array<number>(p.perm.length);
    p.perm.forEach((d, i) => {
      inv[d] = i;
    });
    return [permute(ct, inv)];
  }),
};

/** Broadcast to `shape` (NumPy alignment from the right); a stride-0 view. */
export const broadcastP: Primitive<ShapeParams> = {
  name: "broadcast",
  abstract([x], p) {
    // every expand/broadcast passes here: the one place a huge stride-0 view could be created
    checkDims("broadcastTo", p.shape);
    const lead = p.shape.length - x.shape.length;
    const ok = lead >= 0 && x.shape.every((d, i) => d === 1 || d === p.shape[lead + i]);
    if (!ok)
      throw new ShapeError(`broadcastTo: cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(p.shape)}`);
    return { shape: p.shape, dtype: x.dtype };
  },
  impl([x], p) {
    const lead = p.shape.length - x.shape.length;
    const strides = p.shape.map((d, i) =>
      i < lead || (x.shape[i - lead] === 1 && d !== 1) ? 0 : x._strides[i - lead],
    );
    return viewTensor(x, p.shape, strides, x._offset);
  },
  // transpose of broadcasting: sum over the broadcast axes
  // x [n, ...xs] to [n, ...shape]: x's dims first aligned right under the batch axis (size-1 dims inserted)
  batch([x], _b, p, n) {
    const lead = p.shape.length - (x.shape.length - 1);
    const aligned = reshape(x, [n, ...new Array<number>(lead).fill(1), ...x.shape.slice(1)]);
    return broadcast(aligned, [n, ...p.shape]);
  },
  derivative: linear<ShapeParams>((ct, _x, _o, _p, _n, avals) => [unbroadcast(ct, avals[0].shape)]),
};

/** Sum `ct` down to `shape` (the transpose of broadcasting `shape` to ct's shape). */
export function unbroadcast(ct: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(ct.shape, shape)) return ct;
  const lead = ct.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < ct.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && ct.shape[i] !== 1)) axes.push(i);
  }
  const s = axes.length > 0 ? ct.sum(axes) : ct;
  return shapesEqual(s.shape, shape) ? s : reshape(s, shape);
}

export interface SliceParams {
  readonly starts: readonly number[];
  readonly steps: readonly number[];
  /** Output shape. */
  readonly shape: readonly number[];
}

/** Strided slice (steps >= 1): a view. */
export const sliceP: Primitive<SliceParams> = {
  name: "slice",
  abstract([x], p) {
    return { shape: p.shape, dtype: x.dtype };
  },
  impl([x], p) {
    let off = x._offset;
    const strides = x._strides.map((s, i) => {
      off += p.starts[i] * s;
      // the stride of a dim with at most one entry is never used to step: keep it small and exact
      return p.shape[i] <= 1 ? s : s * p.steps[i];
    });
    return viewTensor(x, p.shape, strides, off);
  },
  batch: batchAll<SliceParams>((p, n) => ({
    starts: [0, ...p.starts],
    steps: [1, ...p.steps],
    shape: [n, ...p.shape],
  })),
  derivative: linear<SliceParams>((ct, _x, _o, p, _n, avals) => [
    unslice(ct, avals[0].shape, p.starts, p.steps),
  ]),
};

export interface UnsliceParams {
  readonly inShape: readonly number[];
  readonly starts: readonly number[];
  readonly steps: readonly number[];
}

/** Zeros of `inShape` with x written at the strided positions of a slice: the transpose of slice. */
export const unsliceP: Primitive<UnsliceParams> = {
  name: "unslice",
  abstract([x], p) {
    return { shape: p.inShape, dtype: x.dtype };
  },
  impl([x], p, out) {
    const o = allocOut(out, true);
    let off = 0;
    const strides = o._strides.map((s, i) => {
      off += p.starts[i] * s;
      return s * p.steps[i];
    });
    backendFor(x.dtype).copy(viewOf(x), { data: o._data!, shape: x.shape, strides, offset: off });
    return o;
  },
  batch: batchAll<UnsliceParams>((p, n) => ({
    inShape: [n, ...p.inShape],
    starts: [0, ...p.starts],
    steps: [1, ...p.steps],
  })),
  derivative: linear<UnsliceParams>((ct, _x, _o, p, _n, avals) => [
    slice(ct, p.starts, p.steps, avals[0].shape),
  ]),
};

export interface AxisParams {
  readonly axis: number;
}

/** Concatenate along `axis` (shapes checked by the ops layer). */
export const concatP: Primitive<AxisParams> = {
  name: "concat",
  abstract(xs, p) {
    const shape = [...xs[0].shape];
    shape[p.axis] = xs.reduce((a, x) => a + x.shape[p.axis], 0);
    return { shape, dtype: xs[0].dtype };
  },
  impl(xs, p, out) {
    const o = allocOut(out);
    let off = 0;
    const step = o._strides[p.axis] ?? 0;
    for (const x of xs) {
      backendFor(x.dtype).copy(viewOf(x), {
        data: o._data!,
        shape: x.shape,
        strides: o._strides,
        offset: off,
      });
      off += x.shape[p.axis] * step;
    }
    return o;
  },
  // d concat(xs) = concat(dxs); the transpose slices the cotangent back into pieces
  batch: batchAll<AxisParams>((p) => ({ axis: p.axis + 1 })),
  derivative: linear<AxisParams>((ct, _x, _o, p, _n, avals) => {
    let start = 0;
    return avals.map((av) => {
      const starts = ct.shape.map((_, i) => (i === p.axis ? start : 0));
      start += av.shape[p.axis];
      return slice(
        ct,
        starts,
        ct.shape.map(() => 1),
        av.shape,
      );
    });
  }),
};

export interface AxesListParams {
  readonly axes: readonly number[];
}

/** Reverse the order along `axes`: a view with negative strides. */
export const flipP: Primitive<AxesListParams> = {
  name: "flip",
  abstract([x]) {
    return x;
  },
  impl([x], p) {
    let off = x._offset;
    const strides = x._strides.map((s, i) => {
      if (!p.axes.includes(i) || x.shape[i] === 0) return s;
      off += (x.shape[i] - 1) * s;
      return -s;
    });
    return viewTensor(x, x.shape, strides, off);
  },
  batch: batchAll<AxesListParams>((p) => ({ axes: shiftAxes(p.axes) })),
  derivative: linear<AxesListParams>((ct, _x, _o, p) => [flip(ct, p.axes)]),
};

/** out = x gathered along axis by int32 idx (same rank, equal to x off the axis; range checked by ops). */
export const gatherP: Primitive<AxisParams> = {
  name: "gather",
  abstract([x, idx], _p) {
    return { shape: idx.shape, dtype: x.dtype };
  },
  impl([x, idx], p, out) {
    const o = allocOut(out);
    backendFor(x.dtype).gather(viewOf(x), p.axis, viewOf(idx), o._data!);
    return o;
  },
  // linear in x; transpose: scatter-add the cotangent back to the gathered positions
  batch: batchAll<AxisParams>((p) => ({ axis: p.axis + 1 })),
  derivative: linearIn<AxisParams>(0, (ct, [, idx], p, avals) =>
    scatterAdd(ct, idx!, p.axis, avals[0].shape),
  ),
};

export interface ScatterParams {
  readonly axis: number;
  readonly shape: readonly number[];
}

/** Zeros of `shape` with src added at idx along axis: the transpose of gather. */
export const scatterAddP: Primitive<ScatterParams> = {
  name: "scatterAdd",
  abstract([src], p) {
    return { shape: p.shape, dtype: src.dtype };
  },
  impl([src, idx], p, out) {
    const o = allocOut(out, true);
    getBackend().scatterAdd(viewOf(src), p.axis, viewOf(idx), o._data!, p.shape);
    return o;
  },
  // linear in src; transpose: gather the cotangent at the scattered positions
  batch: batchAll<ScatterParams>((p, n) => ({ axis: p.axis + 1, shape: [n, ...p.shape] })),
  derivative: linearIn<ScatterParams>(0, (ct, [, idx], p) => gather(ct, idx!, p.axis)),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
// biome-ignore format: rows read better than one entry per line
export const movementPrimitives = {
  reshape: reshapeP, permute: permuteP, broadcast: broadcastP, slice: sliceP, unslice: unsliceP, concat: concatP,
  flip: flipP, gather: gatherP, scatterAdd: scatterAddP,
};

// Binders (JAX's lax): bind one primitive with exact params, no broadcasting, promotion or argument sugar. Rules
// and the ops layer use these.
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(reshapeP, [x], { shape });
}
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  return bind(permuteP, [x], { perm });
}
export function broadcast(x: Tensor, shape: readonly number[]): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(broadcastP, [x], { shape });
}
export function slice(
  x: Tensor,
  starts: readonly number[],
  steps: readonly number[],
  shape: readonly number[],
): Tensor {
  return bind(sliceP, [x], { starts, steps, shape });
}
export function unslice(
  x: Tensor,
  inShape: readonly number[],
  starts: readonly number[],
  steps: readonly number[],
): Tensor {
  return bind(unsliceP, [x], { inShape, starts, steps });
}
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  return bind(concatP, xs, { axis });
}
export function flip(x: Tensor, axes: readonly number[]): Tensor {
  return bind(flipP, [x], { axes });
}
export function gather(x: Tensor, idx: Tensor, axis: number): Tensor {
  return bind(gatherP, [x, idx], { axis });
}
export function scatterAdd(src: Tensor, idx: Tensor, axis: number, shape: readonly number[]): Tensor {
  return bind(scatterAddP, [src, idx], { axis, shape });
}
