/**
 * Shape and indexing ops: reshape/view, squeeze/unsqueeze, permute/transpose, expand, slicing, narrow,
 * split/chunk, cat/stack, pad, flip, gather/indexSelect; reading values out; detach; in-place copies.
 * Most are views (no copy) through the movement primitives.
 */
import { bindCall, type CallRule, noGrad, state } from "../core/trace.ts";
import { allocTyped, isHalf, type TypedArray } from "../dtype.ts";
import { AutodiffError, DTypeError, ShapeError } from "../errors.ts";
import { backendFor, castKernel } from "../prims/half.ts";
import { viewOf, viewTensor } from "../prims/impl.ts";
import { materialize } from "../prims/movement.ts";
import {
  checkDims,
  checkShape,
  contiguousStrides,
  fmtShape,
  isContiguous,
  normAxes,
  normAxis,
  shapesEqual,
  sizeOf,
  viewStrides,
} from "../shape.ts";
import { deletedTensors, stagedValues, Tensor } from "../tensor/tensor.ts";
import * as X from "../prims/lax.ts";
import { selectByMask } from "./indexing.ts";
import { add, asTensor, cast, lt, where } from "./math.ts";

/** Accept `f(2, 3)` or `f([2, 3])`. */
export function shapeArg(args: readonly (number | readonly number[])[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return [...(args[0] as readonly number[])];
  return args as number[];
}

/**
 * The concrete tensor under any number of tracer levels (values are the same at every level). Under makeJaxpr
 * the lowest level is an abstract tracer (no `_primal`, no data): that is returned, and readers of values check.
 */
export function concreteOf(t: Tensor): Tensor {
  let c = t;
  // a vmap tracer's value one level down is the whole batch, not the same value: the walk stops there
  while (c._trace !== null && c._primal !== null && c._trace.kind !== "vmap") c = c._primal;
  return c;
}

/**
 * A contiguous copy of the values (float16 / bfloat16 as a Float32Array, exactly; with `wantStorage` their bit
 * patterns); `op` names the caller in the error for an abstract value (makeJaxpr).
 */
export function contiguousData(t: Tensor, op = "dataSync", wantStorage = false): TypedArray {
  let c = concreteOf(t);
  // a value jit computed at trace time from closed-over tensors alone (it also records the computation)
  if (c._data === null) c = stagedValues.get(c) ?? c;
  if (c._trace !== null && c._trace.kind === "vmap") {
    throw new AutodiffError(
      `${op}: needs the values of a tensor of shape ${fmtShape(t.shape)}, but under vmap it stands for a whole ` +
        "batch of values; keep data-dependent logic outside the function being vmapped",
    );
  }
  if (c._data === null) {
    const gone = deletedTensors.get(c);
    if (gone !== undefined) throw new AutodiffError(`${op}: this tensor was deleted: ${gone}`);
    if (state.jitTracing > 0) {
      throw new AutodiffError(
        `${op}: needs the values of a tensor of shape ${fmtShape(t.shape)} and dtype ${t.dtype}, but jit is ` +
          "tracing the function (or a scan, cond or whileLoop body) from shapes and dtypes only, once per input " +
          "signature, so the values are not known yet; branch on a traced value with cond or switchCase, loop " +
          "with whileLoop or foriLoop, or make the argument static (jit's staticArgnums: a new value traces again)",
      );
    }
    throw new AutodiffError(
      `${op}: needs the values of a tensor of shape ${fmtShape(t.shape)} and dtype ${t.dtype}, but the value is ` +
        "abstract under makeJaxpr (a program is being traced from shapes and dtypes only); keep data-dependent " +
        "logic outside the traced function or pass the value in as a constant",
    );
  }
  const out = allocTyped(c.dtype, c.size);
  backendFor(c.dtype).copy(viewOf(c), {
    data: out,
    shape: c.shape,
    strides: contiguousStrides(c.shape),
    offset: 0,
  });
  if (!wantStorage && isHalf(c.dtype)) {
    // float16 / bfloat16: the values (exact in float32), not the bit patterns
    const f = new Float32Array(c.size);
    castKernel({ data: out, shape: [c.size], strides: [1], offset: 0 }, f);
    return f;
  }
  return out;
}

/**
 * A contiguous copy of `t`'s storage: as `contiguousData`, but float16 / bfloat16 give their 16-bit patterns
 * (a `Float16Bits` / `BFloat16Bits`) instead of float32 values (what file writers need).
 */
export function contiguousStorage(t: Tensor, op = "storage"): TypedArray {
  return contiguousData(t, op, true);
}

/**
 * The values of `t` where the host can know them, for argument checks that read values (index ranges): a
 * concrete tensor's, or under jvp/grad tracing the primal's, or under vmap the whole batch's. Null for a value
 * that is abstract because makeJaxpr or jit is tracing it: its values exist only when the program runs, so such a
 * check is left to the kernels (which validate indices) or skipped.
 */
export function hostValues(t: Tensor, op: string): TypedArray | null {
  let c = concreteOf(t);
  while (c._trace !== null && c._trace.kind === "vmap" && c._primal !== null) c = concreteOf(c._primal);
  if (c._data === null && !deletedTensors.has(c) && c._trace !== null) return null;
  return contiguousData(c, op);
}

/** Values as nested JS arrays. */
export function toNested(t: Tensor): unknown {
  const data = contiguousData(t, "toArray");
  const isBool = t.dtype === "bool";
  const shape = t.shape;
  let pos = 0;
  const build = (d: number): unknown => {
    if (d === shape.length) {
      const v = data[pos++];
      return isBool ? v !== 0 : v;
    }
    const a: unknown[] = [];
    for (let i = 0; i < shape[d]; i++) a.push(build(d + 1));
    return a;
  };
  return build(0);
}

/** The value of a one-element tensor as a number (a bool tensor gives 1 or 0). */
export function item(t: Tensor): number {
  if (t.size !== 1)
    throw new ShapeError(`item: expected a tensor with one element, got shape ${fmtShape(t.shape)}`);
  return contiguousData(t, "item")[0];
}

/** Cut from every gradient computation: the concrete value, sharing storage. */
export function detach(t: Tensor): Tensor {
  const c = concreteOf(t);
  if (c._trace !== null && c._primal !== null) {
    // under vmap: the same batch tracer over the detached batch
    const d = new Tensor(c.shape, c.dtype);
    d._trace = c._trace;
    d._primal = detach(c._primal);
    return d;
  }
  // an abstract value (makeJaxpr) carries no derivative information of its own: it is already detached
  if (c._data === null) return c;
  return viewTensor(c, c.shape, c._strides, c._offset);
}

/** JAX's `stopGradient`: the value, treated as a constant by every transform. */
export const stopGradient = detach;

export function contiguous(t: Tensor): Tensor {
  if (t._trace === null && isContiguous(t.shape, t._strides)) return t;
  return clone(t);
}

/** A copy with its own storage (differentiable). */
export function clone(t: Tensor): Tensor {
  // multiplying by one would change -0; reshape of a fresh copy keeps values exact
  if (t._trace === null && !t._requiresGrad) return materialize(t);
  return X.unslice(
    t,
    t.shape,
    t.shape.map(() => 0),
    t.shape.map(() => 1),
  );
}

export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  return X.reshape(t, checkShape("reshape", shape, t.size));
}

/** Like reshape, but an error (rather than a copy) if the layout cannot be viewed as `shape`, as PyTorch's view. */
export function view(t: Tensor, shape: readonly number[]): Tensor {
  const c = concreteOf(t);
  const s = checkShape("view", shape, t.size);
  // (a vmap tracer has no layout of its own to check: its batch is laid out one level down)
  if (c._trace?.kind !== "vmap" && viewStrides(c.shape, c._strides, s) === null) {
    throw new ShapeError(
      `view: the tensor of shape ${fmtShape(t.shape)} and strides ${fmtShape(c._strides)} cannot be viewed as ${fmtShape(s)} without a copy; use reshape() (which copies) or contiguous() first`,
    );
  }
  return X.reshape(t, s);
}

export function flatten(t: Tensor, startDim = 0, endDim = -1): Tensor {
  if (t.ndim === 0) return reshape(t, [1]);
  const s = normAxis("flatten", startDim, t.ndim);
  const e = normAxis("flatten", endDim, t.ndim);
  if (s > e) throw new RangeError(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const shape = [...t.shape.slice(0, s), sizeOf(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)];
  return X.reshape(t, shape);
}

export function squeeze(t: Tensor, dim?: number | readonly number[]): Tensor {
  const axes =
    dim === undefined
      ? t.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)
      : normAxes("squeeze", dim, t.ndim);
  return X.reshape(
    t,
    t.shape.filter((d, i) => !(axes.includes(i) && d === 1)),
  );
}

export function unsqueeze(t: Tensor, dim: number): Tensor {
  const d = normAxis("unsqueeze", dim, t.ndim + 1);
  const shape = [...t.shape];
  shape.splice(d, 0, 1);
  return X.reshape(t, shape);
}

export function permute(t: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== t.ndim) {
    throw new ShapeError(`permute: got ${dims.length} dims ${fmtShape(dims)} for a tensor of rank ${t.ndim}`);
  }
  const perm = dims.map((d) => normAxis("permute", d, t.ndim));
  if (new Set(perm).size !== perm.length) throw new RangeError(`permute: repeated dim in ${fmtShape(dims)}`);
  return perm.every((p, i) => p === i) ? t : X.permute(t, perm);
}

export function transpose(t: Tensor, dim0 = -2, dim1 = -1): Tensor {
  if (t.ndim < 2 && dim0 === -2 && dim1 === -1) return t;
  const a = normAxis("transpose", dim0, t.ndim);
  const b = normAxis("transpose", dim1, t.ndim);
  const perm = t.shape.map((_, i) => (i === a ? b : i === b ? a : i));
  return permute(t, perm);
}

/** Expand size-1 dims (-1 keeps a dim); a view. */
export function expand(t: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - t.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? t.shape[i - lead] : d));
  return X.broadcast(t, checkShape("expand", target));
}

export function broadcastTo(t: Tensor, shape: readonly number[]): Tensor {
  return X.broadcast(t, checkShape("broadcastTo", shape));
}

/**
 * An index entry: a number (picks one entry and drops the dim), a `[start, stop, step]` slice (nulls inside
 * for the defaults), `":"` (the whole dim), or `null`, a new axis of size 1 (PyTorch's `None`, NumPy's
 * `np.newaxis`; it consumes no dim of the input).
 */
export type IndexArg = number | null | ":" | readonly [number | null, (number | null)?, (number | null)?];

/** Describe an index argument being rejected (it may be anything a caller passed). */
function fmtIndexArg(a: unknown): string {
  if (Array.isArray(a)) return `[${a.map((v) => fmtIndexArg(v)).join(", ")}]`;
  return typeof a === "string" ? JSON.stringify(a) : String(a);
}

/** A slice bound: null/undefined (the default) or an integer, clamped into [0, n] as Python and PyTorch do. */
function sliceBound(i: number, a: readonly unknown[], k: number, n: number, dflt: number): number {
  const v = a[k];
  if (v === null || v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new TypeError(
      `index: slice ${fmtIndexArg(a)} for dim ${i}: ${k === 0 ? "start" : "stop"} must be an integer or null, got ${fmtIndexArg(v)}`,
    );
  }
  return Math.min(Math.max(v < 0 ? v + n : v, 0), n);
}

/**
 * NumPy-style basic indexing, always a view sharing storage (as PyTorch): integers pick one entry and drop the
 * dim, `[start, stop, step]` slices and `":"` keep it, `null` inserts a new axis of size 1 (PyTorch's `None`),
 * and one `"..."` stands for as many `":"` as the other entries leave dims. Integers must be in range; slice
 * bounds are clamped into the dim (as Python and PyTorch do); steps must be positive integers (negative steps:
 * use flip, as in PyTorch). Anything else (fractional, NaN, strings, slices of the wrong length) is an error,
 * never an empty result. Dims past the last entry are kept whole.
 */
export function index(t: Tensor, idxIn: readonly (IndexArg | "..." | Tensor)[]): Tensor {
  if (!Array.isArray(idxIn))
    throw new TypeError(`index: expected an array of indices, got ${fmtIndexArg(idxIn)}`);
  // an ellipsis stands for as many full slices as the other entries leave dims (PyTorch's `...`)
  const ell = idxIn.indexOf("...");
  let expanded: readonly (IndexArg | "..." | Tensor)[] = idxIn;
  if (ell >= 0) {
    if (idxIn.indexOf("...", ell + 1) >= 0)
      throw new TypeError('index: at most one ellipsis ("...") is allowed');
    const used = idxIn.reduce<number>(
      // a new axis (null) consumes no dim of t
      (a, v, i) => a + (i === ell || v === null ? 0 : v instanceof Tensor ? Math.max(v.ndim, 1) : 1),
      0,
    );
    const fill = new Array<IndexArg>(Math.max(0, t.ndim - used)).fill(":");
    expanded = [...idxIn.slice(0, ell), ...fill, ...idxIn.slice(ell + 1)];
  }
  // one index tensor (a bool mask over its dims, or int32 positions along one dim): basic indexing first, then
  // a gather at the place that dim lands
  const ti = expanded.findIndex((v) => v instanceof Tensor);
  if (ti >= 0) {
    const it = expanded[ti] as Tensor;
    if (expanded.findIndex((v, i) => i > ti && v instanceof Tensor) >= 0) {
      throw new TypeError("index: at most one index tensor is supported (use indexPut or gather for more)");
    }
    const span = it.dtype === "bool" ? it.ndim : 1;
    const basic: IndexArg[] = [
      ...(expanded.slice(0, ti) as IndexArg[]),
      ...new Array<IndexArg>(span).fill(":"),
      ...(expanded.slice(ti + 1) as IndexArg[]),
    ];
    const r = index(t, basic);
    const at = (expanded.slice(0, ti) as IndexArg[]).filter((v) => typeof v !== "number").length;
    if (it.dtype === "bool") return selectByMask(r, it, at);
    if (it.dtype !== "int32")
      throw new DTypeError(`index: an index tensor must be int32 or bool, got ${it.dtype}`);
    const flat = indexSelect(
      r,
      at,
      reshape(it.dtype === "int32" ? wrapNegative(it, r.shape[at]) : it, [it.size]),
    );
    return reshape(flat, [...r.shape.slice(0, at), ...it.shape, ...r.shape.slice(at + 1)]);
  }
  // new axes (null) are set aside: the other entries index t's dims in order, and each null puts a size-1 dim
  // in the output where it stands
  const entries = expanded as readonly IndexArg[];
  const idx: IndexArg[] = [];
  const newAxes: number[] = []; // output positions of the new axes, counted among the dims kept so far
  let kept = 0;
  for (const a of entries) {
    if (a === null) newAxes.push(kept + newAxes.length);
    else {
      idx.push(a);
      if (typeof a !== "number") kept++;
    }
  }
  if (idx.length > t.ndim) {
    throw new RangeError(`index: too many indices (${idx.length}) for a tensor of rank ${t.ndim}`);
  }
  const starts: number[] = [];
  const steps: number[] = [];
  const shape: number[] = [];
  const keep: number[] = [];
  for (let i = 0; i < t.ndim; i++) {
    const n = t.shape[i];
    const a: unknown = i < idx.length ? idx[i] : ":";
    if (typeof a === "number") {
      if (!Number.isInteger(a)) {
        throw new TypeError(`index: index ${a} for dim ${i} is not an integer`);
      }
      if (a < -n || a >= n) {
        throw new RangeError(`index: index ${a} is out of range for dim ${i} of size ${n}`);
      }
      starts.push(a < 0 ? a + n : a);
      steps.push(1);
      shape.push(1);
    } else if (a === ":" || a === undefined) {
      starts.push(0);
      steps.push(1);
      shape.push(n);
      keep.push(i);
    } else if (Array.isArray(a) && a.length >= 1 && a.length <= 3) {
      const st: unknown = a[2] ?? 1;
      if (typeof st !== "number" || !Number.isInteger(st)) {
        throw new TypeError(
          `index: slice ${fmtIndexArg(a)} for dim ${i}: step must be an integer, got ${fmtIndexArg(st)}`,
        );
      }
      if (st <= 0) {
        throw new RangeError(
          `index: slice ${fmtIndexArg(a)} for dim ${i}: step must be positive, got ${st} (use flip for reversal)`,
        );
      }
      const start = sliceBound(i, a, 0, n, 0);
      const stop = sliceBound(i, a, 1, n, n);
      starts.push(start);
      // a step of n or more picks at most one entry: clamp it so the view's stride stays small (a step of 2^62
      // would give a stride no double can add exactly)
      steps.push(Math.min(st, Math.max(n, 1)));
      shape.push(stop > start ? Math.ceil((stop - start) / st) : 0);
      keep.push(i);
    } else {
      throw new TypeError(
        `index: invalid index ${fmtIndexArg(a)} for dim ${i} (expected an integer, ":", a [start, stop, step] slice, null for a new axis, or "...")`,
      );
    }
  }
  const sliced =
    shape.every((d, i) => d === t.shape[i]) && steps.every((s) => s === 1)
      ? t
      : X.slice(t, starts, steps, shape);
  const outShape = keep.map((i) => shape[i]);
  for (const p of newAxes) outShape.splice(p, 0, 1);
  // dropping the size-1 dims of integer indices and adding new ones is always a view (reshape keeps views when
  // strides allow)
  return shapesEqual(outShape, shape) ? sliced : X.reshape(sliced, outShape);
}

export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normAxis("narrow", dim, t.ndim);
  const n = t.shape[d];
  const s = start < 0 ? start + n : start;
  if (!Number.isInteger(s) || s < 0 || !Number.isInteger(length) || length < 0 || s + length > n) {
    throw new RangeError(`narrow: start ${start} and length ${length} do not fit dim ${d} of size ${n}`);
  }
  const idx: IndexArg[] = t.shape.map((_, i) => (i === d ? [s, s + length] : ":"));
  return index(t, idx);
}

export function split(t: Tensor, sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
  const d = normAxis("split", dim, t.ndim);
  const n = t.shape[d];
  let sizes: number[];
  if (typeof sizeOrSections === "number") {
    if (!Number.isInteger(sizeOrSections) || sizeOrSections <= 0) {
      throw new RangeError(`split: split size must be a positive integer, got ${sizeOrSections}`);
    }
    sizes = [];
    for (let s = 0; s < n; s += sizeOrSections) sizes.push(Math.min(sizeOrSections, n - s));
  } else {
    sizes = [...sizeOrSections];
    for (const sz of sizes) {
      if (!Number.isInteger(sz) || sz < 0) {
        throw new RangeError(`split: section sizes must be non-negative integers, got ${fmtShape(sizes)}`);
      }
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== n)
      throw new ShapeError(`split: sections ${fmtShape(sizes)} sum to ${total}, but dim ${d} has size ${n}`);
  }
  const pieces = (x: Tensor): Tensor[] => {
    let start = 0;
    return sizes.map((len) => {
      const r = narrow(x, d, start, len);
      start += len;
      return r;
    });
  };
  if (sizes.length < 2) return pieces(t);
  // One call whose reverse mode concatenates the pieces' cotangents (zeros for unused pieces) in one kernel, as
  // PyTorch's SplitBackward does: as separate slices, each cotangent was padded to t's shape and the pads added
  // (an attention layer's q, k, v from one projection: 3 pads and 2 adds of the whole [B, T, 3E] per step).
  const rule: CallRule = {
    name: "split",
    savesNothing: true,
    backwardKeepsNothing: true,
    fn: ([x]) => pieces(x),
    vjp: ([x]) => ({ outs: pieces(x), backward: (cts) => [X.concat(cts, d)] }),
  };
  return bindCall(rule, [t]);
}

export function chunk(t: Tensor, chunks: number, dim = 0): Tensor[] {
  const d = normAxis("chunk", dim, t.ndim);
  if (!Number.isInteger(chunks) || chunks <= 0)
    throw new RangeError(`chunk: chunks must be a positive integer, got ${chunks}`);
  return split(t, Math.max(1, Math.ceil(t.shape[d] / chunks)), d);
}

/** Concatenate along an existing dim. */
export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError("cat: expected a non-empty list of tensors");
  const d = normAxis("cat", dim, ts[0].ndim);
  for (const t of ts) {
    if (t.ndim !== ts[0].ndim || t.shape.some((s, i) => i !== d && s !== ts[0].shape[i])) {
      throw new ShapeError(
        `cat: shapes ${fmtShape(ts[0].shape)} and ${fmtShape(t.shape)} differ outside dim ${d}`,
      );
    }
  }
  const dtype = ts.slice(1).reduce((a, t) => (a === t.dtype ? a : cast(t, a).dtype), ts[0].dtype);
  const parts = ts.map((t) => cast(t, dtype));
  return parts.length === 1 ? parts[0] : X.concat(parts, d);
}

/** Stack along a new dim. */
export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError("stack: expected a non-empty list of tensors");
  for (const t of ts) {
    if (!shapesEqual(t.shape, ts[0].shape)) {
      throw new ShapeError(
        `stack: all tensors must have the same shape, got ${fmtShape(ts[0].shape)} and ${fmtShape(t.shape)}`,
      );
    }
  }
  const d = normAxis("stack", dim, ts[0].ndim + 1);
  return cat(
    ts.map((t) => unsqueeze(t, d)),
    d,
  );
}

/**
 * Constant padding, PyTorch order: pads = [lastBefore, lastAfter, secondLastBefore, ...]. Negative pads crop.
 */
export function pad(t: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > t.ndim) {
    throw new ShapeError(
      `pad: expected an even number of pads for at most ${t.ndim} dims, got ${pads.length}`,
    );
  }
  for (const p of pads) {
    if (!Number.isInteger(p)) throw new RangeError(`pad: pads must be integers, got ${fmtShape(pads)}`);
  }
  const before = t.shape.map(() => 0);
  const after = t.shape.map(() => 0);
  for (let k = 0; k < pads.length / 2; k++) {
    before[t.ndim - 1 - k] = pads[2 * k];
    after[t.ndim - 1 - k] = pads[2 * k + 1];
  }
  // crop first (negative pads), then pad
  const cropIdx: IndexArg[] = t.shape.map((n, i) => [Math.max(0, -before[i]), n - Math.max(0, -after[i])]);
  const x = before.some((b) => b < 0) || after.some((a) => a < 0) ? index(t, cropIdx) : t;
  const b = before.map((v) => Math.max(0, v));
  const outShape = x.shape.map((n, i) => n + b[i] + Math.max(0, after[i]));
  checkDims("pad", outShape);
  const steps = x.shape.map(() => 1);
  if (shapesEqual(outShape, x.shape)) return x;
  const placed = X.unslice(x, outShape, b, steps);
  if (value === 0) return placed;
  const mask = X.unslice(asTensor(true, "bool").broadcastTo(x.shape), outShape, b, steps);
  return where(mask, placed, value);
}

export function flip(t: Tensor, dims: number | readonly number[]): Tensor {
  return X.flip(t, normAxes("flip", dims, t.ndim));
}

function checkIndex(op: string, idx: Tensor, n: number): void {
  if (idx.dtype !== "int32") throw new DTypeError(`${op}: index must be int32, got ${idx.dtype}`);
  // a concrete contiguous index in host memory is read in place (a training loop's batch indices: no copy)
  const c = concreteOf(idx);
  const d = c._data;
  if (c._trace === null && d instanceof Int32Array && isContiguous(c.shape, c._strides)) {
    const end = c._offset + c.size;
    for (let i = c._offset; i < end; i++) {
      if (d[i] < 0 || d[i] >= n) throw new RangeError(`${op}: index ${d[i]} is out of range for size ${n}`);
    }
    return;
  }
  const data = hostValues(idx, op);
  if (data === null) return; // traced: the gather/scatter kernels check every index when the program runs
  for (let i = 0; i < data.length; i++) {
    if (data[i] < 0 || data[i] >= n)
      throw new RangeError(`${op}: index ${data[i]} is out of range for size ${n}`);
  }
}

/** out[i][j] = t[i][index[i][j]] along `dim` (index has t's rank; other dims must not exceed t's). */
export function gather(t: Tensor, dim: number, idx: Tensor): Tensor {
  const d = normAxis("gather", dim, t.ndim);
  if (idx.ndim !== t.ndim)
    throw new ShapeError(`gather: index rank ${idx.ndim} differs from input rank ${t.ndim}`);
  for (let i = 0; i < t.ndim; i++) {
    if (i !== d && idx.shape[i] > t.shape[i]) {
      throw new ShapeError(
        `gather: index shape ${fmtShape(idx.shape)} exceeds input shape ${fmtShape(t.shape)} at dim ${i}`,
      );
    }
  }
  checkIndex("gather", idx, t.shape[d]);
  const src = idx.shape.every((s, i) => i === d || s === t.shape[i])
    ? t
    : index(
        t,
        idx.shape.map((s, i) => (i === d ? ":" : [0, s])),
      );
  return X.gather(src, detach(idx), d);
}

/** Select entries along `dim` by a 1-d int32 index. */
export function indexSelect(t: Tensor, dim: number, idx: Tensor): Tensor {
  const d = normAxis("indexSelect", dim, t.ndim);
  if (idx.ndim !== 1)
    throw new ShapeError(`indexSelect: index must be 1-d, got shape ${fmtShape(idx.shape)}`);
  checkIndex("indexSelect", idx, t.shape[d]);
  const idxShape = t.shape.map((_s, i) => (i === d ? idx.shape[0] : 1));
  const full = t.shape.map((s, i) => (i === d ? idx.shape[0] : s));
  const ib = X.broadcast(X.reshape(detach(idx), idxShape), full);
  return X.gather(t, ib, d);
}

/** Write src (broadcast and cast) into dst's storage; bumps dst's version counter. */
export function copyInto(dst: Tensor, src: Tensor | number): void {
  if (dst._trace !== null)
    throw new AutodiffError("in-place operation on a traced tensor inside a transform; use functional ops");
  if (state.gradEnabled && dst._requiresGrad) {
    throw new AutodiffError(
      `in-place operation on a tensor that requires grad (shape ${fmtShape(dst.shape)}); do it inside noGrad(), or on detach()`,
    );
  }
  const value = src instanceof Tensor ? detach(src) : asTensor(src, dst.dtype);
  if (value._trace !== null) {
    // e.g. a running-statistics update inside makeJaxpr: the written value exists only as a traced one
    const jitHint =
      state.jitTracing > 0
        ? "; under jit a function must not write into tensors it closes over (it would happen once, at trace " +
          "time): return the new value instead; a module updating its buffers (BatchNorm in training mode) runs " +
          "under jit through nn.functionalApply or optim.makeTrainStep, or in eval mode"
        : "";
    throw new AutodiffError(
      `in-place write into a concrete tensor of shape ${fmtShape(dst.shape)}: the value written is a traced value ` +
        `of a ${value._trace.kind} transform (abstract under makeJaxpr, a whole batch under vmap), not concrete ` +
        `values${jitHint}`,
    );
  }
  noGrad(() => {
    const s = X.broadcast(X.castTo(value, dst.dtype), dst.shape);
    const tmp = s._data === dst._data ? materialize(s) : s;
    backendFor(dst.dtype).copy(viewOf(tmp), viewOf(dst));
  });
  dst._ver!.v++;
}

/** PyTorch's negative positions (-1 is the last) made non-negative, for an int32 index into a dim of size n. */
function wrapNegative(idx: Tensor, n: number): Tensor {
  return where(lt(idx, 0), add(idx, n), idx);
}
