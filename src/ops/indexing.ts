/**
 * Scatter and advanced indexing of PyTorch, built from gather/scatterAdd/where (no rules of their own):
 * `scatter` (reduce none/add), `indexPut` (with accumulate), `maskedSelect` and selection by a bool mask.
 * Index values are read (they decide shapes and are range-checked), so index and mask tensors must be concrete
 * (constants under jit, makeJaxpr and vmap); the data may be traced.
 */
import { DTypeError, ShapeError } from "../errors.ts";
import { constant, fromData } from "../prims/impl.ts";
import * as X from "../prims/lax.ts";
import { broadcastShapes, fmtShape, normAxis, shapesEqual, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { asTensor, cast } from "./math.ts";
import { contiguousData, detach, index } from "./shape.ts";

/** Index values (int32), checked to lie in [-n, n) and wrapped as PyTorch's negative indices. */
function indexValues(op: string, idx: Tensor, n: number, what: string): Int32Array {
  if (idx.dtype !== "int32") throw new DTypeError(`${op}: ${what} must be int32, got ${idx.dtype}`);
  const d = contiguousData(idx, op);
  const out = new Int32Array(d.length);
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v < -n || v >= n) {
      throw new RangeError(
        `${op}: ${what} value ${v} is out of range for a dim of size ${n} (expected -${n} to ${n - 1})`,
      );
    }
    out[i] = v < 0 ? v + n : v;
  }
  return out;
}

/** Positions written more than once by flat targets (for the non-accumulating writes). */
function checkUnique(op: string, flat: Int32Array | number[], hint: string): void {
  const seen = new Set<number>();
  for (const v of flat) {
    if (seen.has(v)) {
      throw new RangeError(
        `${op}: position ${v} is written more than once (${hint}); which write wins would be unspecified, as in PyTorch`,
      );
    }
    seen.add(v);
  }
}

/**
 * PyTorch's `scatter`: a copy of x with src's entries written at `index` along `dim`
 * (out[i][index[i][j]] = src[i][j] for dim 1), or added with `reduce: "add"` (scatter_add). index has x's rank
 * and no dim larger than src's (or x's off `dim`); src may be a number. Without reduce, index must not write
 * a position twice (an error: PyTorch leaves the winner unspecified). Gradients: x's is zero where written
 * (without reduce), src's is a gather at index.
 */
export function scatter(
  x: Tensor,
  dim: number,
  idx: Tensor,
  src: Tensor | number,
  opts: { reduce?: "add" | "none" } = {},
): Tensor {
  const d = normAxis("scatter", dim, x.ndim);
  const reduce = opts.reduce ?? "none";
  if (reduce !== "none" && reduce !== "add") {
    throw new TypeError(`scatter: reduce must be "none" or "add", got ${JSON.stringify(reduce)}`);
  }
  if (idx.ndim !== x.ndim) {
    throw new ShapeError(
      `scatter: index of shape ${fmtShape(idx.shape)} must have the rank of the input ${fmtShape(x.shape)}`,
    );
  }
  const s = typeof src === "number" ? X.broadcast(asTensor(src, x.dtype), idx.shape) : cast(src, x.dtype);
  if (s.ndim !== x.ndim) {
    throw new ShapeError(
      `scatter: src of shape ${fmtShape(s.shape)} must have the rank of the input ${fmtShape(x.shape)}`,
    );
  }
  for (let i = 0; i < x.ndim; i++) {
    if (idx.shape[i] > s.shape[i] || (i !== d && idx.shape[i] > x.shape[i])) {
      throw new ShapeError(
        `scatter: index shape ${fmtShape(idx.shape)} exceeds src ${fmtShape(s.shape)} or input ${fmtShape(x.shape)} at dim ${i}`,
      );
    }
  }
  const vals = indexValues("scatter", idx, x.shape[d], "index");
  const ix = fromData(vals, idx.shape, "int32");
  const part = shapesEqual(s.shape, idx.shape)
    ? s
    : index(
        s,
        idx.shape.map((n) => [0, n] as [number, number]),
      );
  // scatter into the block of x that index covers off `dim`, then place the block in x's shape
  const block = x.shape.map((n, i) => (i === d ? n : idx.shape[i]));
  const place = (t: Tensor) =>
    shapesEqual(block, x.shape)
      ? t
      : X.unslice(
          t,
          x.shape,
          x.shape.map(() => 0),
          x.shape.map(() => 1),
        );
  const added = place(X.scatterAdd(part, ix, d, block));
  if (reduce === "add") return X.broadcast(x, x.shape).add(added);
  const hits = X.scatterAdd(X.broadcast(constant(1, "int32"), idx.shape), ix, d, block);
  const hitData = contiguousData(hits, "scatter");
  for (let i = 0; i < hitData.length; i++) {
    if (hitData[i] > 1) {
      throw new RangeError(
        `scatter: index writes a position twice along dim ${d} (shape ${fmtShape(idx.shape)}); which write wins would be unspecified, as in PyTorch (use reduce: "add" to sum)`,
      );
    }
  }
  return X.where(place(X.castTo(hits, "bool")), added, x);
}

/** Flat positions (int32) of the true entries of a concrete bool mask, in row-major order. */
function nonzeroFlat(op: string, mask: Tensor): Int32Array {
  const m = contiguousData(mask, op);
  let k = 0;
  for (let i = 0; i < m.length; i++) if (m[i] !== 0) k++;
  const out = new Int32Array(k);
  k = 0;
  for (let i = 0; i < m.length; i++) if (m[i] !== 0) out[k++] = i;
  return out;
}

/**
 * PyTorch's `masked_select`: the entries of x where mask is true, as a 1-d tensor (x and mask broadcast
 * together; row-major order). Differentiable in x (the gradient is scattered back).
 */
export function maskedSelect(x: Tensor, mask: Tensor): Tensor {
  if (mask.dtype !== "bool") throw new DTypeError(`maskedSelect: mask must be bool, got ${mask.dtype}`);
  const shape = broadcastShapes("maskedSelect", x.shape, mask.shape);
  const pos = nonzeroFlat("maskedSelect", X.broadcast(mask, shape));
  const flat = X.reshape(X.broadcast(x, shape), [sizeOf(shape)]);
  return X.gather(flat, fromData(pos, [pos.length], "int32"), 0);
}

/**
 * x selected by a bool mask over its leading dims (x[mask] in PyTorch): mask's shape must equal the first
 * mask.ndim dims of x; the result is [number of true entries, ...remaining dims].
 */
export function selectByMask(x: Tensor, mask: Tensor, at = 0): Tensor {
  const k = mask.ndim;
  const lead = x.shape.slice(at, at + k);
  if (mask.dtype !== "bool") throw new DTypeError(`index: mask must be bool, got ${mask.dtype}`);
  if (at + k > x.ndim || !shapesEqual(lead, mask.shape)) {
    throw new ShapeError(
      `index: the mask of shape ${fmtShape(mask.shape)} does not match the dims ${at} .. ${at + k - 1} of the indexed tensor of shape ${fmtShape(x.shape)}`,
    );
  }
  const pos = nonzeroFlat("index", mask);
  const before = x.shape.slice(0, at);
  const rest = x.shape.slice(at + k);
  const flat = X.reshape(x, [...before, sizeOf(lead), ...rest]);
  const ixShape = [...before, pos.length, ...rest];
  const idxShape = ixShape.map((n, i) => (i === at ? n : 1));
  const ix = X.broadcast(X.reshape(fromData(pos, [pos.length], "int32"), idxShape), ixShape);
  return X.gather(flat, ix, at);
}

/**
 * PyTorch's `index_put`: a copy of x with `values` written at the positions picked by `indices` (one int32
 * tensor per leading dim, broadcast together; or one bool mask over the leading dims), added with
 * `accumulate`. values broadcast to [index shape, ...remaining dims]. Without accumulate a position must not be
 * written twice (an error; PyTorch leaves the winner unspecified). Indices out of range are errors.
 */
export function indexPut(
  x: Tensor,
  indices: readonly Tensor[],
  values: Tensor | number,
  opts: { accumulate?: boolean } = {},
): Tensor {
  if (indices.length === 0) throw new ShapeError("indexPut: expected at least one index tensor");
  let idx = indices;
  if (indices.length === 1 && indices[0].dtype === "bool") {
    const mask = indices[0];
    if (mask.ndim > x.ndim || !shapesEqual(mask.shape, x.shape.slice(0, mask.ndim))) {
      throw new ShapeError(
        `indexPut: the mask of shape ${fmtShape(mask.shape)} does not match the leading dims of the input ${fmtShape(x.shape)}`,
      );
    }
    // the true positions as one index tensor per masked dim
    const pos = nonzeroFlat("indexPut", mask);
    idx = mask.shape.map((_, d) => {
      const stride = sizeOf(mask.shape.slice(d + 1));
      return fromData(
        Int32Array.from(pos, (p) => Math.floor(p / stride) % mask.shape[d]),
        [pos.length],
        "int32",
      );
    });
  }
  if (idx.length > x.ndim) {
    throw new ShapeError(
      `indexPut: ${idx.length} index tensors for an input of rank ${x.ndim} (shape ${fmtShape(x.shape)})`,
    );
  }
  let bshape: readonly number[] = [];
  for (const t of idx) bshape = broadcastShapes("indexPut", bshape, t.shape);
  const k = idx.length;
  const lead = x.shape.slice(0, k);
  const rest = x.shape.slice(k);
  const p = sizeOf(bshape);
  const flat = new Int32Array(p);
  idx.forEach((t, d) => {
    const v = indexValues("indexPut", X.broadcast(detach(t), bshape), lead[d], `index ${d}`);
    const stride = sizeOf(lead.slice(d + 1));
    for (let i = 0; i < p; i++) flat[i] += v[i] * stride;
  });
  const m = sizeOf(lead);
  const x2 = X.reshape(x, [m, ...rest]);
  const vshape = [p, ...rest];
  const v = typeof values === "number" ? asTensor(values, x.dtype) : cast(values, x.dtype);
  const vb = X.reshape(X.broadcast(v, [...bshape, ...rest]), vshape);
  const ix = X.broadcast(X.reshape(fromData(flat, [p], "int32"), [p, ...rest.map(() => 1)]), vshape);
  const added = X.scatterAdd(vb, ix, 0, [m, ...rest]);
  if (opts.accumulate === true) return X.reshape(x2.add(added), x.shape);
  checkUnique("indexPut", flat, "use accumulate: true to sum");
  const hit = new Uint8Array(m);
  for (const f of flat) hit[f] = 1;
  const mask = X.broadcast(X.reshape(fromData(hit, [m], "bool"), [m, ...rest.map(() => 1)]), [m, ...rest]);
  return X.reshape(X.where(mask, added, x2), x.shape);
}
