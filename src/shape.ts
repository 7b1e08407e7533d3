/**
 * Shape arithmetic shared by every layer: sizes, contiguous strides, NumPy broadcasting, axis normalisation,
 * the central size check (`checkDims`) and view strides for reshape (`viewStrides`).
 * Pure functions on plain number arrays; no tensors here.
 */
import { ShapeError } from "./errors.ts";

export type Shape = readonly number[];

/**
 * The largest element count (and the largest single dim) any shape may have: 2^48.
 *
 * Why a bound at all: a stride-0 view (`expand`) costs nothing to create whatever its shape, so without a bound
 * `tensor(1).expand(2 ** 32, 2 ** 32)` is a valid tensor whose element count (2^64) overflows a kernel's int64
 * loop counter (native returned 0 for its sum), and `expand(2 ** 62).sum()` loops for centuries. Why 2^48:
 * - it is far above anything that can be materialised (2^48 float32 values are 1 PiB), so no real tensor is
 *   refused; only views that could never be computed on anyway;
 * - counts, offsets and byte offsets (x8) stay below 2^53, so they are exact in JS doubles, and a kernel's
 *   int64 products of a count with a further factor below 2^15 (channels, taps) cannot overflow;
 * - a kernel asked to visit every element of the largest allowed view runs for hours, not forever, and such a
 *   view has to be requested deliberately.
 * Dims of size 0 make a shape empty, but the other dims are still bounded (their strides are computed).
 */
export const MAX_NUMEL = 2 ** 48;

/**
 * Check that every dim is a non-negative integer and that the product of the non-zero dims is at most
 * `MAX_NUMEL`; throws a ShapeError naming `op` and the shape. O(ndim), allocates nothing when the shape is valid.
 */
export function checkDims(op: string, shape: Shape): void {
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== "number" || !Number.isInteger(d) || d < 0) {
      throw new ShapeError(
        `${op}: invalid dimension ${String(d)} at index ${i} of shape ${fmtDims(shape)} (expected a non-negative integer)`,
      );
    }
    if (d > 0) n *= d;
    if (n > MAX_NUMEL) {
      throw new ShapeError(
        `${op}: shape ${fmtDims(shape)} has too many elements (more than 2^48 = ${MAX_NUMEL}, the limit for any tensor or view)`,
      );
    }
  }
}

/** Format a shape that may hold non-numbers (user input being rejected). */
function fmtDims(shape: Shape): string {
  return Array.isArray(shape) ? `[${shape.map((d) => String(d)).join(", ")}]` : String(shape);
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major (C order) strides for `shape`, in elements. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** True if (shape, strides) describe a row-major layout (size-1 axes may have any stride). */
export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function fmtShape(s: Shape): string {
  return `[${s.join(", ")}]`;
}

/** NumPy broadcasting of two shapes; throws a ShapeError naming `op` and both shapes. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together (dimension ${i} of the result: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  // both inputs are valid shapes, but their broadcast can be far larger ([n, 1] with [1, m])
  if (n > 1) checkDims(op, out);
  return out;
}

/**
 * What to add to the error for a dim or size given as an object: a tensor there is most often a number that a
 * jitted function received as an argument (traced as a scalar tensor), which shape arguments cannot be.
 */
function tracedNumberHint(v: unknown): string {
  return v !== null && typeof v === "object"
    ? " (a tensor: a number passed to a jitted function is traced as a scalar tensor, and dims and sizes must " +
        "be plain numbers; make that argument static with jit's staticArgnums)"
    : "";
}

/** Normalise a possibly negative axis for a tensor of rank `ndim`. */
export function normAxis(op: string, axis: number, ndim: number): number {
  if (typeof axis !== "number") {
    throw new TypeError(`${op}: dim must be an integer, got ${String(axis)}${tracedNumberHint(axis)}`);
  }
  if (!Number.isInteger(axis) || axis < -Math.max(ndim, 1) || axis >= Math.max(ndim, 1)) {
    throw new RangeError(
      `${op}: dim ${axis} is out of range for a tensor of rank ${ndim} (expected ${-Math.max(ndim, 1)} to ${Math.max(ndim, 1) - 1})`,
    );
  }
  return axis < 0 ? axis + Math.max(ndim, 1) : axis;
}

/** Normalise a list of axes (undefined = all), sorted and de-duplicated; throws on repeats. */
export function normAxes(op: string, axes: number | readonly number[] | undefined, ndim: number): number[] {
  if (axes === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof axes === "number" || !Array.isArray(axes) ? [axes as number] : axes;
  const out = list.map((a) => normAxis(op, a, ndim));
  const sorted = [...out].sort((x, y) => x - y);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new RangeError(`${op}: dim ${sorted[i]} appears more than once`);
  }
  return sorted;
}

/**
 * Validate a user-provided shape (non-negative integers, at most `MAX_NUMEL` elements), resolving a single -1
 * against `size` if given.
 */
export function checkShape(op: string, shape: readonly number[], size?: number): number[] {
  if (!Array.isArray(shape)) {
    throw new ShapeError(`${op}: expected a shape (an array of non-negative integers), got ${String(shape)}`);
  }
  let infer = -1;
  let known = 1;
  const out = [...shape];
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d === -1 && size !== undefined) {
      if (infer >= 0) throw new ShapeError(`${op}: only one dimension can be -1 in ${fmtShape(shape)}`);
      infer = i;
    } else if (typeof d !== "number" || !Number.isInteger(d) || d < 0) {
      throw new ShapeError(
        `${op}: invalid dimension ${String(d)} in shape ${fmtDims(shape)} (expected a non-negative integer${size !== undefined ? " or one -1" : ""})${tracedNumberHint(d)}`,
      );
    } else known *= d;
  }
  if (infer >= 0 && size !== undefined) {
    if (known === 0 || size % known !== 0) {
      throw new ShapeError(`${op}: cannot infer -1 in ${fmtShape(shape)} for ${size} elements`);
    }
    out[infer] = size / known;
  }
  checkDims(op, out);
  return out;
}

/**
 * Strides that let a tensor of (shape, strides) be read as `newShape` without copying, or null when the memory
 * layout does not allow it (PyTorch's rule for `view`): each run of old dims that merges into or splits from
 * new dims must be contiguous within itself. Size-1 dims are free, so dropping or adding them is always a view.
 */
export function viewStrides(shape: Shape, strides: readonly number[], newShape: Shape): number[] | null {
  const out = new Array<number>(newShape.length);
  if (sizeOf(shape) === 0 || shape.length === 0) {
    // empty or 0-d: any strides are valid; use contiguous ones
    return contiguousStrides(newShape);
  }
  let v = newShape.length - 1;
  let chunkBase = strides[shape.length - 1];
  let chunkNumel = 1;
  let viewNumel = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    chunkNumel *= shape[i];
    // a chunk ends at dim i when i is the first dim or dims i-1 and i are not contiguous with each other
    if (i === 0 || (shape[i - 1] !== 1 && strides[i - 1] !== chunkNumel * chunkBase)) {
      while (v >= 0 && (viewNumel < chunkNumel || newShape[v] === 1)) {
        out[v] = viewNumel * chunkBase;
        viewNumel *= newShape[v];
        v--;
      }
      if (viewNumel !== chunkNumel) return null;
      if (i > 0) {
        chunkBase = strides[i - 1];
        chunkNumel = 1;
        viewNumel = 1;
      }
    }
  }
  return v === -1 ? out : null;
}
