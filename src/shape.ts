/**
 * Shape arithmetic shared by every layer: sizes, contiguous strides, NumPy broadcasting, axis normalisation.
 * Pure functions on plain number arrays; no tensors here.
 */
import { ShapeError } from "./errors.ts";

export type Shape = readonly number[];

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
  return out;
}

/** Normalise a possibly negative axis for a tensor of rank `ndim`. */
export function normAxis(op: string, axis: number, ndim: number): number {
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
  const list = typeof axes === "number" ? [axes] : axes;
  const out = list.map((a) => normAxis(op, a, ndim));
  const sorted = [...out].sort((x, y) => x - y);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new RangeError(`${op}: dim ${sorted[i]} appears more than once`);
  }
  return sorted;
}

/** Validate a user-provided shape (non-negative integers), resolving a single -1 against `size` if given. */
export function checkShape(op: string, shape: readonly number[], size?: number): number[] {
  let infer = -1;
  let known = 1;
  const out = [...shape];
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d === -1 && size !== undefined) {
      if (infer >= 0) throw new ShapeError(`${op}: only one dimension can be -1 in ${fmtShape(shape)}`);
      infer = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${op}: invalid dimension ${d} in shape ${fmtShape(shape)}`);
    } else known *= d;
  }
  if (infer >= 0 && size !== undefined) {
    if (known === 0 || size % known !== 0) {
      throw new ShapeError(`${op}: cannot infer -1 in ${fmtShape(shape)} for ${size} elements`);
    }
    out[infer] = size / known;
  }
  return out;
}
