/**
 * Plumbing between backend calls and wasm kernels: the per-backend context (kernels, heap, descriptor block),
 * per-call scratch scopes, staging of operands into wasm memory, and axis coalescing.
 *
 * Kernels read operands by pointer and byte stride. An operand whose storage is a view into the heap is read
 * in place (pointer = byteOffset + offset * elementSize, strides as given, including 0 and negative). Any
 * other typed array (made by JS code, e.g. `tensor([...])`) is first copied into scratch: the span of
 * storage it addresses when that is compact (keeping its strides, so a broadcast stays small), else its
 * elements in row-major order. Outputs not in the heap are computed in scratch and copied back. Scratch lives
 * for one call (`Scope`); if the heap cannot supply it, `OutOfHeap` is thrown and the backend runs the js
 * kernel instead.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import { copyStrided } from "../js/strided.ts";
import { elemSize, type Heap, viewAt } from "./heap.ts";
import type { Kernels } from "./module.ts";
import type { GemmPool } from "./threads.ts";

/** Largest rank the kernels' odometer accepts after coalescing (wasm/assembly/walk.ts MAX_DIMS). */
export const MAX_DIMS = 64;

/** Everything a kernel wrapper needs. */
export interface Ctx {
  readonly k: Kernels;
  readonly heap: Heap;
  /** A permanent block of 5 * MAX_DIMS i32 for kernel descriptors. */
  readonly args: number;
  /** Worker threads for large float32 GEMMs, if any. */
  readonly pool: GemmPool | null;
}

/** Thrown when scratch memory cannot be had; the backend then falls back to the js kernel. */
export class OutOfHeap extends Error {}

/** Scratch blocks held for the duration of one kernel call. */
export class Scope {
  private readonly ptrs: number[] = [];
  constructor(private readonly heap: Heap) {}

  /** A scratch block of `bytes` bytes (contents undefined). */
  alloc(bytes: number): number {
    const p = this.heap.malloc(bytes);
    if (p < 0) throw new OutOfHeap(`wasm heap: cannot allocate ${bytes} bytes of scratch`);
    this.ptrs.push(p);
    return p;
  }

  /** Free every block of this scope. */
  release(): void {
    for (const p of this.ptrs) this.heap.free(p);
    this.ptrs.length = 0;
  }
}

/** An operand in wasm memory: pointer of element [0, ..., 0] and element strides. */
export interface Operand {
  readonly ptr: number;
  readonly strides: readonly number[];
}

/** The extent [lo, hi] (element indices into data) that a view addresses. */
function span(v: View): [number, number] {
  let lo = v.offset;
  let hi = v.offset;
  for (let i = 0; i < v.shape.length; i++) {
    const d = (v.shape[i] - 1) * v.strides[i];
    if (d < 0) lo += d;
    else hi += d;
  }
  return [lo, hi];
}

/** Make `v` readable by kernels (see the header). `v` must not be empty. */
export function stageIn(c: Ctx, s: Scope, v: View): Operand {
  const es = v.data.BYTES_PER_ELEMENT;
  if (c.heap.owns(v.data)) return { ptr: v.data.byteOffset + v.offset * es, strides: v.strides };
  const n = sizeOf(v.shape);
  const [lo, hi] = span(v);
  const len = hi - lo + 1;
  if (len <= 2 * n + 16) {
    const p = s.alloc(len * es);
    const src = new Uint8Array(v.data.buffer, v.data.byteOffset + lo * es, len * es);
    new Uint8Array(c.heap.buffer, p, len * es).set(src);
    return { ptr: p + (v.offset - lo) * es, strides: v.strides };
  }
  const p = s.alloc(n * es);
  const dst = viewAt(c.heap.buffer, dtypeOfTyped(v.data), p, n);
  copyStrided(v, { data: dst, shape: v.shape, strides: contiguousStrides(v.shape), offset: 0 });
  return { ptr: p, strides: contiguousStrides(v.shape) };
}

/** Like stageIn, but the result is row-major contiguous (copied by the wasm copy kernel if needed). */
export function stageContiguous(c: Ctx, s: Scope, v: View): number {
  const es = v.data.BYTES_PER_ELEMENT;
  if (isContiguous(v.shape, v.strides)) {
    if (c.heap.owns(v.data)) return v.data.byteOffset + v.offset * es;
    const n = sizeOf(v.shape);
    const p = s.alloc(n * es);
    new Uint8Array(c.heap.buffer, p, n * es).set(
      new Uint8Array(v.data.buffer, v.data.byteOffset + v.offset * es, n * es),
    );
    return p;
  }
  const src = stageIn(c, s, v);
  const n = sizeOf(v.shape);
  const p = s.alloc(n * es);
  copyRaw(c, es, v.shape, src, { ptr: p, strides: contiguousStrides(v.shape) });
  return p;
}

/** Strided copy between two operands in wasm memory (elements of `es` bytes). */
export function copyRaw(c: Ctx, es: number, shape: readonly number[], src: Operand, dst: Operand): void {
  const g = coalesce(shape, [src.strides, dst.strides]);
  if (g === null) throw new OutOfHeap(`copy: rank ${shape.length} exceeds ${MAX_DIMS}`);
  writeArgs(c, g.shape, g.strides, [es, es]);
  c.k.copy(es, g.shape.length, c.args, src.ptr, dst.ptr);
}

/** Where a kernel writes `out`: in place if it is a heap view, else in scratch copied back by `finish`. */
export interface Output {
  readonly ptr: number;
  finish(): void;
}

/** The output operand for `n` elements of `out`. */
export function stageOut(c: Ctx, s: Scope, out: TypedArray, n: number): Output {
  if (c.heap.owns(out)) return { ptr: out.byteOffset, finish() {} };
  const dtype = dtypeOfTyped(out);
  const p = s.alloc(n * elemSize(dtype));
  return {
    ptr: p,
    finish() {
      out.set(viewAt(c.heap.buffer, dtype, p, n));
    },
  };
}

/**
 * Coalesce the axes of an iteration space shared by several operands (element strides): drop size-1 axes
 * and merge an axis into the next inner one when every operand steps over it contiguously
 * (stride[i] = stride[i + 1] * shape[i + 1]). Null if the result still has more than MAX_DIMS axes.
 */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): { shape: number[]; strides: number[][] } | null {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i];
    if (d === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((st, k) => st[i] === outStrides[k][last] * outShape[last])) {
      outShape[last] *= d;
      continue;
    }
    outShape.push(d);
    for (let k = 0; k < strides.length; k++) outStrides[k].push(strides[k][i]);
  }
  if (outShape.length > MAX_DIMS) return null;
  outShape.reverse();
  for (const st of outStrides) st.reverse();
  return { shape: outShape, strides: outStrides };
}

/** Write a walk descriptor: shape, then each operand's strides scaled to bytes (up to four operands). */
export function writeArgs(
  c: Ctx,
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  elemBytes: readonly number[],
): void {
  const a = c.heap.i32;
  const nd = shape.length;
  let p = c.args >> 2;
  for (let i = 0; i < nd; i++) a[p++] = shape[i];
  for (let k = 0; k < 4; k++) {
    const st = strides[k];
    for (let i = 0; i < nd; i++) a[p++] = st === undefined ? 0 : st[i] * elemBytes[k];
  }
}

/** Write an i32 descriptor (conv / pool geometry) into the descriptor block. */
export function writeInts(c: Ctx, values: readonly number[]): number {
  c.heap.i32.set(values, c.args >> 2);
  return c.args;
}
