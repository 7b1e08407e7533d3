/**
 * The wasm backend's scratch arena: the WebAssembly.Memory the kernels run on and a stack allocator over it.
 * Tensor storage does NOT live here; it is ordinary garbage-collected typed arrays (see index.ts on why).
 *
 * - A kernel call stages its operands into the arena (context.ts), runs, copies its output out, and pops
 *   everything it took: `mark()` before, `reset(mark)` after. Between calls the arena is empty, so its size is
 *   the largest footprint of a single call (operands + packing / im2col buffers), reached once and reused
 *   by every later call (warm in cache, no page faults).
 * - The memory grows (doubling) when one call needs more, and never shrinks (wasm memory cannot). Growth of a
 *   non-shared memory detaches its old ArrayBuffer; that is harmless here because no typed-array view of
 *   this memory outlives the kernel call that made it (views are made after the allocations of a call). So
 *   both kinds of memory grow: shared (SharedArrayBuffer, needed by the GEMM worker threads) and non-shared
 *   (browsers without cross-origin isolation). When the memory cannot grow any more, `alloc` returns -1 and
 *   the backend runs the js kernel for that call.
 */
import { type DType, type TypedArray, typedOver } from "../../dtype.ts";

/** Bytes per element of each dtype. */
export function elemSize(dtype: DType): number {
  return dtype === "float64" ? 8 : dtype === "bool" ? 1 : 4;
}

const PAGE = 65536;
/** Blocks start on cache-line boundaries (SIMD loads, and no false sharing between GEMM threads). */
const ALIGN = 64;

/** A typed-array view of `n` elements of `dtype` at byte `ptr` of `buffer`. */
export function viewAt(buffer: ArrayBufferLike, dtype: DType, ptr: number, n: number): TypedArray {
  return typedOver(dtype, buffer, n, ptr);
}

/** Statistics of the arena. */
export interface HeapStats {
  /** Bytes of scratch currently taken (0 between kernel calls). */
  liveBytes: number;
  /** The most scratch any call has taken (bytes above the module's static data). */
  peakBytes: number;
  /** Current size of the wasm memory in bytes. */
  memoryBytes: number;
  /** True if the memory is shared (a SharedArrayBuffer, usable by the GEMM worker threads). */
  shared: boolean;
}

/** The stack allocator over one WebAssembly.Memory. */
export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  private buf: ArrayBufferLike;
  private readonly base: number;
  private top: number;
  private peak: number;
  private i32View: Int32Array;

  /**
   * @param base first usable byte (above the module's static data)
   * @param limit the arena never grows the memory past this many bytes
   */
  constructor(
    memory: WebAssembly.Memory,
    shared: boolean,
    base: number,
    private readonly limit: number,
  ) {
    this.memory = memory;
    this.shared = shared;
    this.buf = memory.buffer;
    this.i32View = new Int32Array(this.buf);
    this.base = Math.ceil(base / ALIGN) * ALIGN;
    this.top = this.base;
    this.peak = this.base;
  }

  /** The current ArrayBuffer of the memory (re-read after any `alloc`: growth replaces it). */
  get buffer(): ArrayBufferLike {
    return this.buf;
  }

  /** An Int32Array over the whole memory (for writing kernel descriptors). */
  get i32(): Int32Array {
    return this.i32View;
  }

  /** The current top of the stack, for `reset`. */
  mark(): number {
    return this.top;
  }

  /** Pop every block taken since `mark` was returned. */
  reset(mark: number): void {
    this.top = mark;
  }

  /** A block of at least `bytes` bytes (64-byte aligned, contents undefined), or -1 if the memory is full. */
  alloc(bytes: number): number {
    const ptr = this.top;
    const end = ptr + Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
    if (end > this.buf.byteLength && !this.grow(end)) return -1;
    this.top = end;
    if (end > this.peak) this.peak = end;
    return ptr;
  }

  /** Grow the memory to hold at least `end` bytes (doubling, within the limit); false if impossible. */
  private grow(end: number): boolean {
    if (end > this.limit) return false;
    const have = this.buf.byteLength / PAGE;
    const need = Math.ceil(end / PAGE);
    const cap = Math.floor(this.limit / PAGE);
    for (const pages of [Math.min(cap, Math.max(need, 2 * have)), need]) {
      try {
        this.memory.grow(pages - have);
        this.buf = this.memory.buffer;
        this.i32View = new Int32Array(this.buf);
        return true;
      } catch {
        // over the maximum or out of address space: try the exact size, then give up
      }
    }
    return false;
  }

  /** Arena statistics. */
  stats(): HeapStats {
    return {
      liveBytes: this.top - this.base,
      peakBytes: this.peak - this.base,
      memoryBytes: this.buf.byteLength,
      shared: this.shared,
    };
  }
}
