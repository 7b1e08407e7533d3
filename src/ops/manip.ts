/**
 * Shape manipulations of PyTorch built from movement and select primitives (no rules of their own): tril/triu
 * (a select with a constant index mask), diagonal (a strided slice of the flattened matrices), diag (a select of
 * the padded vector with a diagonal mask, or diagonal), repeat/tile (a broadcast of interleaved size-1 dims, then a reshape),
 * roll (two slices and a concat per dim), meshgrid (broadcasts) and cumprod (a product over a masked expansion).
 */
import { allocTyped } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { constant, fromData } from "../prims/impl.ts";
import * as X from "../prims/lax.ts";
import { checkDims, fmtShape, normAxis } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { cast } from "./math.ts";
import { cat, flatten, index, narrow, pad, permute, reshape } from "./shape.ts";

function checkInt(op: string, what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new TypeError(`${op}: ${what} must be an integer, got ${String(v)}`);
  }
  return v;
}

/** A constant bool [n, m] mask with keep(i, j) at row i, column j. */
function indexMask(n: number, m: number, keep: (i: number, j: number) => boolean): Tensor {
  const d = allocTyped("bool", n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) d[i * m + j] = keep(i, j) ? 1 : 0;
  return fromData(d, [n, m], "bool");
}

function triangle(op: "tril" | "triu", x: Tensor, diagonal: number): Tensor {
  const k = checkInt(op, "diagonal", diagonal);
  if (x.ndim < 2) {
    throw new ShapeError(
      `${op}: expected a tensor of at least 2 dims (matrices in the last two), got shape ${fmtShape(x.shape)}`,
    );
  }
  const n = x.shape[x.ndim - 2];
  const m = x.shape[x.ndim - 1];
  const mask = indexMask(n, m, op === "tril" ? (i, j) => j - i <= k : (i, j) => j - i >= k);
  return X.where(X.broadcast(mask, x.shape), x, X.broadcast(constant(0, x.dtype), x.shape));
}

/**
 * The lower triangle of the matrices in the last two dims (PyTorch's `tril`): entries with j - i <= diagonal
 * kept, the others 0. `diagonal` > 0 keeps that many diagonals above the main one, < 0 removes some below.
 */
export function tril(x: Tensor, diagonal = 0): Tensor {
  return triangle("tril", x, diagonal);
}

/** The upper triangle (PyTorch's `triu`): entries with j - i >= diagonal kept, the others 0. */
export function triu(x: Tensor, diagonal = 0): Tensor {
  return triangle("triu", x, diagonal);
}

/**
 * The diagonal of the matrices in dims `dim1`, `dim2` (PyTorch's `torch.diagonal`): entries (i, i + offset),
 * offset > 0 above the main diagonal, < 0 below; those two dims are removed and the diagonal appended as the last
 * dim (empty when the offset passes the matrix). A copy (PyTorch returns a view): writing into it leaves x as it
 * was. Differentiable (the gradient scatters back onto the diagonal), and batched under vmap.
 */
export function diagonal(x: Tensor, offset = 0, dim1 = 0, dim2 = 1): Tensor {
  const op = "diagonal";
  const k = checkInt(op, "offset", offset);
  if (x.ndim < 2) {
    throw new ShapeError(`${op}: expected a tensor of at least 2 dims, got shape ${fmtShape(x.shape)}`);
  }
  const d1 = normAxis(op, dim1, x.ndim);
  const d2 = normAxis(op, dim2, x.ndim);
  if (d1 === d2) throw new ShapeError(`${op}: dim1 and dim2 must differ, both are ${d1}`);
  const rest = x.shape.map((_, i) => i).filter((i) => i !== d1 && i !== d2);
  const moved = permute(x, [...rest, d1, d2]);
  const n = x.shape[d1];
  const m = x.shape[d2];
  const len = Math.max(0, Math.min(n + Math.min(k, 0), m - Math.max(k, 0)));
  const flat = reshape(moved, [...rest.map((i) => x.shape[i]), n * m]);
  const start = k >= 0 ? k : -k * m;
  // entries start, start + (m + 1), ... (len of them) of each flattened matrix
  const stop = len === 0 ? start : start + (len - 1) * (m + 1) + 1;
  return index(flat, [...rest.map(() => ":" as const), [start, stop, m + 1] as [number, number, number]]);
}

/**
 * PyTorch's `torch.diag`: a 1-d x of length n becomes the [n + |diagonal|, n + |diagonal|] matrix with x on
 * that diagonal and zeros elsewhere; a 2-d x gives its `diagonal`-th diagonal as a 1-d tensor.
 */
export function diag(x: Tensor, diagonal_ = 0): Tensor {
  const op = "diag";
  const k = checkInt(op, "diagonal", diagonal_);
  if (x.ndim === 2) return diagonal(x, k);
  if (x.ndim !== 1)
    throw new ShapeError(`${op}: expected a 1-d or 2-d tensor, got shape ${fmtShape(x.shape)}`);
  const n = x.shape[0] + Math.abs(k);
  // x padded to n: entry (i, j) of the result is xp[i] (k >= 0: row i holds x[i] at column i + k) or xp[j]
  const xp = pad(x, [0, Math.abs(k)]);
  const along = k >= 0 ? X.broadcast(reshape(xp, [n, 1]), [n, n]) : X.broadcast(reshape(xp, [1, n]), [n, n]);
  const mask = indexMask(n, n, (i, j) => j - i === k);
  return X.where(mask, along, X.broadcast(constant(0, x.dtype), [n, n]));
}

/**
 * PyTorch's `repeat`: the tensor tiled `reps[i]` times along dim i. `reps` may be longer than the rank (the
 * tensor is then treated as having leading size-1 dims), not shorter. A broadcast and a reshape (one copy).
 */
export function repeat(x: Tensor, reps: readonly number[]): Tensor {
  if (reps.length < x.ndim) {
    throw new ShapeError(
      `repeat: got ${reps.length} repeats ${fmtShape(reps)} for a tensor of rank ${x.ndim} (shape ${fmtShape(x.shape)}); expected at least ${x.ndim}`,
    );
  }
  for (const r of reps) {
    if (!Number.isInteger(r) || r < 0) {
      throw new RangeError(`repeat: repeats must be non-negative integers, got ${fmtShape(reps)}`);
    }
  }
  const shape = [...new Array<number>(reps.length - x.ndim).fill(1), ...x.shape];
  const out = shape.map((d, i) => d * reps[i]);
  checkDims("repeat", out);
  // [1, d0, 1, d1, ...] broadcast to [r0, d0, r1, d1, ...], then merged pairwise
  const inter = shape.flatMap((d) => [1, d]);
  const wide = shape.flatMap((d, i) => [reps[i], d]);
  return X.reshape(X.broadcast(X.reshape(x, inter), wide), out);
}

/**
 * PyTorch's `tile`: like repeat, but `reps` shorter than the rank is padded with leading 1s.
 */
export function tile(x: Tensor, reps: readonly number[]): Tensor {
  const r = reps.length < x.ndim ? [...new Array<number>(x.ndim - reps.length).fill(1), ...reps] : reps;
  return repeat(x, r);
}

/**
 * PyTorch's `roll`: elements shifted by `shifts` along `dims` (cyclically: what leaves one end enters at the
 * other). Without dims the tensor is rolled as a flat array and reshaped back.
 */
export function roll(
  x: Tensor,
  shifts: number | readonly number[],
  dims?: number | readonly number[],
): Tensor {
  const sh = typeof shifts === "number" ? [shifts] : [...shifts];
  for (const s of sh) checkInt("roll", "shift", s);
  if (dims === undefined) {
    if (sh.length !== 1) {
      throw new ShapeError(`roll: without dims expected one shift, got ${sh.length} ${fmtShape(sh)}`);
    }
    return reshape(roll(flatten(x), sh[0], 0), x.shape);
  }
  const ds = typeof dims === "number" ? [dims] : [...dims];
  if (ds.length !== sh.length) {
    throw new ShapeError(
      `roll: got ${sh.length} shifts ${fmtShape(sh)} and ${ds.length} dims ${fmtShape(ds)}; expected as many of each`,
    );
  }
  let y = x;
  ds.forEach((dim, k) => {
    const d = normAxis("roll", dim, x.ndim);
    const n = x.shape[d] ?? 1;
    if (n === 0 || x.ndim === 0) return;
    const s = ((sh[k] % n) + n) % n;
    if (s === 0) return;
    y = cat([narrow(y, d, n - s, s), narrow(y, d, 0, n - s)], d);
  });
  return y;
}

/**
 * PyTorch's `meshgrid`: for N 1-d (or 0-d) tensors of sizes n0, n1, ..., N tensors of shape [n0, n1, ...]
 * (indexing "ij", the default) or [n1, n0, n2, ...] ("xy", Cartesian), tensor i varying along its own dim.
 * Views (broadcasts) of the inputs.
 */
export function meshgrid(tensors: readonly Tensor[], opts: { indexing?: "ij" | "xy" } = {}): Tensor[] {
  const indexing = opts.indexing ?? "ij";
  if (indexing !== "ij" && indexing !== "xy") {
    throw new TypeError(`meshgrid: indexing must be "ij" or "xy", got ${JSON.stringify(indexing)}`);
  }
  if (tensors.length === 0) throw new ShapeError("meshgrid: expected at least one tensor");
  for (const t of tensors) {
    if (t.ndim > 1)
      throw new ShapeError(`meshgrid: expected 0-d or 1-d tensors, got shape ${fmtShape(t.shape)}`);
    if (t.dtype !== tensors[0].dtype) {
      throw new TypeError(`meshgrid: expected tensors of one dtype, got ${tensors[0].dtype} and ${t.dtype}`);
    }
  }
  const sizes = tensors.map((t) => t.size);
  // the output dim each input varies along
  const where = tensors.map((_, i) => (indexing === "xy" && tensors.length >= 2 && i < 2 ? 1 - i : i));
  const shape = where.map((_, d) => sizes[where.indexOf(d)]);
  return tensors.map((t, i) => {
    const s = shape.map((n, d) => (d === where[i] ? n : 1));
    return X.broadcast(X.reshape(t, s), shape);
  });
}

/**
 * PyTorch's `cumprod`: inclusive running products along `dim` (bool and int32 as int32). Computed as the
 * product over the last axis of a masked [.., n, n] expansion (x[j] where j <= k, else 1), so its derivatives
 * are the product's, exact at zeros; this costs O(n^2) per row of length n.
 */
export function cumprod(x: Tensor, dim: number): Tensor {
  const axis = normAxis("cumprod", dim, x.ndim);
  const t = x.dtype === "bool" ? cast(x, "int32") : x;
  if (t.ndim === 0) return t;
  const n = t.shape[axis];
  // move the axis last, expand to [..., n (k), n (j)]
  const perm = [...t.shape.keys()].filter((i) => i !== axis).concat(axis);
  const moved = X.permute(t, perm);
  const lead = moved.shape.slice(0, -1);
  const big = [...lead, n, n];
  checkDims("cumprod", big);
  const xb = X.broadcast(X.reshape(moved, [...lead, 1, n]), big);
  const mask = X.broadcast(
    indexMask(n, n, (k, j) => j <= k),
    big,
  );
  const p = X.prodAxes(X.where(mask, xb, X.broadcast(constant(1, t.dtype), big)), [big.length - 1]);
  const inv = new Array<number>(perm.length);
  perm.forEach((d, i) => {
    inv[d] = i;
  });
  return X.permute(p, inv);
}
