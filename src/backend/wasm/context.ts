/**
 * Plumbing between backend calls and wasm kernels: the per-backend context (kernels, arena, descriptor block),
 * per-call scratch scopes, staging of operands into wasm memory and of results out of it, and axis coalescing.
 *
 * Tensor storage is ordinary typed arrays, outside wasm memory. A kernel call copies each operand into the
 * arena (heap.ts): the span of storage the view addresses when that is compact (keeping its strides, so a
 * transposed or broadcast operand costs nothing extra and a stride-0 broadcast stays small), else its elements
 * in row-major order. Outputs are computed in the arena and copied out by `finish`. A call's scratch lives in
 * a `Scope` popped when the call ends; if the arena cannot grow enough, `OutOfHeap` is thrown and the backend
 * runs the js kernel instead.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import { type Coalesced, coalesceAxes, copyStrided } from "../js/strided.ts";
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

/** A copy of elements [lo, lo + len) of `data` at `ptr` in the arena. */
interface Staged {
  data: TypedArray;
  lo: number;
  len: number;
  ptr: number;
}

/**
 * The scratch of one kernel call: blocks taken from the arena's stack, all popped by `release`. Remembers
 * what it staged, so an operand used twice in one call (x * x, x^T x) is copied in once.
 */
export class Scope {
  private readonly mark: number;
  private readonly staged: Staged[] = [];
  constructor(private readonly heap: Heap) {
    this.mark = heap.mark();
  }

  /** A scratch block of `bytes` bytes (contents undefined). */
  alloc(bytes: number): number {
    const p = this.heap.alloc(bytes);
    if (p < 0) throw new OutOfHeap(`wasm heap: cannot allocate ${bytes} bytes of scratch`);
    return p;
  }

  /**
   * Pointer of a copy of elements [lo, lo + len) of `data` (len > 0). `shared`: the copy is only read, so
   * one made earlier in this call for an enclosing range may serve (inputs; never a block written back).
   */
  copyIn(data: TypedArray, lo: number, len: number, shared = true): number {
    const es = data.BYTES_PER_ELEMENT;
    if (shared) {
      for (const st of this.staged) {
        if (st.data === data && st.lo <= lo && lo + len <= st.lo + st.len) return st.ptr + (lo - st.lo) * es;
      }
    }
    const p = this.alloc(len * es);
    viewAt(this.heap.buffer, dtypeOfTyped(data), p, len).set(data.subarray(lo, lo + len));
    if (shared) this.staged.push({ data, lo, len, ptr: p });
    return p;
  }

  /** Pop every block of this scope. */
  release(): void {
    this.heap.reset(this.mark);
  }
}

/** An operand in wasm memory: pointer of element [0, ..., 0] and element strides. */
export interface Operand {
  readonly ptr: number;
  readonly strides: readonly number[];
}

/** The extent [lo, hi] (element indices into data) that a view addresses. */
export function span(v: View): [number, number] {
  let lo = v.offset;
  let hi = v.offset;
  for (let i = 0; i < v.shape.length; i++) {
    const d = (v.shape[i] - 1) * v.strides[i];
    if (d < 0) lo += d;
    else hi += d;
  }
  return [lo, hi];
}

/**
 * True if copying a view's whole span beats gathering its elements: a memcpy runs at 10-30 GB/s, a strided
 * gather in JS at well under 1, so a span several times the element count is still the cheaper copy.
 */
export function compact(len: number, n: number): boolean {
  return len <= 8 * n + 4096;
}

/** Copy the elements of `v` in row-major order to `p` (contiguous), one contiguous inner run at a time. */
function gatherInto(c: Ctx, v: View, p: number, n: number): void {
  const dt = dtypeOfTyped(v.data);
  const dst = viewAt(c.heap.buffer, dt, p, n);
  const g = coalesce(v.shape, [v.strides]);
  const inner = g === null ? 0 : g.shape[g.shape.length - 1];
  if (g === null || g.strides[0][g.shape.length - 1] !== 1 || inner < 8) {
    copyStrided(v, { data: dst, shape: v.shape, strides: contiguousStrides(v.shape), offset: 0 });
    return;
  }
  const shape = g.shape;
  const st = g.strides[0];
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let src = v.offset;
  for (let d = 0; d < n; d += inner) {
    dst.set(v.data.subarray(src, src + inner), d);
    for (let i = nd - 2; i >= 0; i--) {
      src += st[i];
      if (++idx[i] < shape[i]) break;
      src -= st[i] * shape[i];
      idx[i] = 0;
    }
  }
}

/** Make `v` readable by kernels (see the header). `v` must not be empty. */
export function stageIn(c: Ctx, s: Scope, v: View): Operand {
  const es = v.data.BYTES_PER_ELEMENT;
  const n = sizeOf(v.shape);
  const [lo, hi] = span(v);
  const len = hi - lo + 1;
  if (compact(len, n)) return { ptr: s.copyIn(v.data, lo, len) + (v.offset - lo) * es, strides: v.strides };
  const p = s.alloc(n * es);
  gatherInto(c, v, p, n);
  return { ptr: p, strides: contiguousStrides(v.shape) };
}

/** Like stageIn, but the result is row-major contiguous (rearranged by the wasm copy kernel if needed). */
export function stageContiguous(c: Ctx, s: Scope, v: View): number {
  const es = v.data.BYTES_PER_ELEMENT;
  const n = sizeOf(v.shape);
  if (isContiguous(v.shape, v.strides)) return s.copyIn(v.data, v.offset, n);
  const src = stageIn(c, s, v);
  if (isContiguous(v.shape, src.strides)) return src.ptr;
  const p = s.alloc(n * es);
  copyRaw(c, es, v.shape, src, { ptr: p, strides: contiguousStrides(v.shape) });
  return p;
}

/** Strided copy between two operands in wasm memory (elements of `es` bytes). */
export function copyRaw(c: Ctx, es: number, shape: readonly number[], src: Operand, dst: Operand): void {
  const g = coalesce(shape, [src.strides, dst.strides]);
  if (g === null) throw new OutOfHeap(`copy: rank ${shape.length} exceeds ${MAX_DIMS}`);
  if (es === 4 && g.shape.length === 2) {
    // a 2-D transpose of contiguous storage into contiguous storage: the blocked SIMD kernel
    const [R, C] = [g.shape[1], g.shape[0]];
    const [ss, ds] = g.strides;
    if (ss[0] === 1 && ss[1] === C && ds[0] === R && ds[1] === 1) {
      c.k.transpose32(R, C, src.ptr, dst.ptr);
      return;
    }
  }
  writeArgs(c, g.shape, g.strides, [es, es]);
  c.k.copy(es, g.shape.length, c.args, src.ptr, dst.ptr);
}

/** Where a kernel writes its output in the arena; `finish` copies it out to the output array. */
export interface Output {
  readonly ptr: number;
  finish(): void;
}

/** The output operand for the first `n` elements of `out` (computed in scratch, copied out by `finish`). */
export function stageOut(c: Ctx, s: Scope, out: TypedArray, n: number): Output {
  const dtype = dtypeOfTyped(out);
  const p = s.alloc(n * elemSize(dtype));
  return {
    ptr: p,
    finish() {
      out.set(viewAt(c.heap.buffer, dtype, p, n));
    },
  };
}

/** coalesceAxes (js/strided.ts), or null if the result still has more than MAX_DIMS axes. */
export function coalesce(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): Coalesced | null {
  const g = coalesceAxes(shape, strides);
  return g.shape.length > MAX_DIMS ? null : g;
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

/** Run `body` with a fresh scratch scope, popped when it returns or throws. */
export function withScope<T>(c: Ctx, body: (s: Scope) => T): T {
  const s = new Scope(c.heap);
  try {
    return body(s);
  } finally {
    s.release();
  }
}
