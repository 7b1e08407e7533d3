/**
 * The wasm backend's heap: the WebAssembly.Memory the kernels run on, a size-class allocator over it, and the
 * typed-array views it hands out as tensor storage.
 *
 * Why this shape:
 * - Tensor storage must be plain typed arrays (the backend contract), yet live in wasm memory so kernels read
 *   it in place. `allocView` returns `new Float32Array(memory.buffer, ptr, n)`-style views; the garbage
 *   collector cannot see the block behind a view, so a FinalizationRegistry returns it to the allocator when
 *   the view is collected, and `releaseView` frees it at once (an optional fast path; unregisters the view).
 * - Growing a non-shared memory detaches its ArrayBuffer and would empty every live view. A shared memory
 *   (SharedArrayBuffer) never detaches: growth makes a new, longer buffer object over the same bytes, and old
 *   views stay valid. So the heap uses shared memory where the runtime allows it (Node; browsers with
 *   cross-origin isolation) and otherwise a fixed memory that never grows (when it is full, `allocView`
 *   returns null and the backend falls back to ordinary typed arrays, which kernels copy in and out).
 * - Allocator: blocks are rounded up to size classes (multiples of 16 bytes up to 64, then four classes per
 *   power of two, so at most 25% waste), each class keeps a LIFO free list, new blocks come from a bump
 *   pointer. No coalescing: a training loop reallocates the same shapes every step, which this serves in O(1).
 *   Memory is never returned to the system (wasm memory cannot shrink).
 * - FinalizationRegistry callbacks run only between tasks (and no API can run them sooner): a long
 *   synchronous loop keeps its garbage blocks until it yields (await) or frees them explicitly. So tensor
 *   storage may only fill the heap up to `viewLimit` (default 2 GiB of a shared memory, 3/4 of a fixed
 *   one); past it `allocView` returns null, the backend hands out ordinary (garbage-collected) typed arrays,
 *   and kernels copy those in and out of scratch, which keeps memory bounded at some cost in speed.
 */
import type { DType, TypedArray } from "../../dtype.ts";

/** Bytes per element of each dtype. */
export function elemSize(dtype: DType): number {
  return dtype === "float64" ? 8 : dtype === "bool" ? 1 : 4;
}

/** The size class (block size in bytes) for a request of `bytes` > 0. */
export function sizeClass(bytes: number): number {
  if (bytes <= 64) return bytes <= 16 ? 16 : (bytes + 15) & ~15;
  // step = 2^(floor(log2(bytes - 1)) - 2): four classes per power of two
  const step =
    bytes - 1 < 2 ** 31 ? 2 ** (29 - Math.clz32(bytes - 1)) : 2 ** (Math.floor(Math.log2(bytes - 1)) - 2);
  return Math.ceil(bytes / step) * step;
}

const PAGE = 65536;

/** A typed-array view of `n` elements of `dtype` at byte `ptr` of `buffer`. */
export function viewAt(buffer: ArrayBufferLike, dtype: DType, ptr: number, n: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, ptr, n);
    case "float64":
      return new Float64Array(buffer, ptr, n);
    case "int32":
      return new Int32Array(buffer, ptr, n);
    case "bool":
      return new Uint8Array(buffer, ptr, n);
  }
}

/** Allocation statistics of a heap. */
export interface HeapStats {
  /** Bytes in blocks currently handed out (views and kernel scratch), counted at their size class. */
  liveBytes: number;
  /** Number of such blocks. */
  liveBlocks: number;
  /** Bytes of wasm memory in use by the allocator (bump pointer), live or on free lists. */
  reservedBytes: number;
  /** Current size of the wasm memory in bytes. */
  memoryBytes: number;
  /** True if the memory is shared (growable without detaching views). */
  shared: boolean;
}

/** The allocator over one WebAssembly.Memory. */
export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  /** Every ArrayBuffer object this memory has exposed (a shared memory gets a new one per growth). */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private buf: ArrayBufferLike;
  private top: number;
  private readonly freeLists = new Map<number, number[]>();
  /** Live blocks: pointer -> class size. */
  private readonly live = new Map<number, number>();
  private liveBytes = 0;
  private readonly registry: FinalizationRegistry<number>;
  private i32View: Int32Array;

  /**
   * @param base first usable byte (above the module's static data)
   * @param zero clears a byte range (the kernel module's memory.fill: a JS fill of a Uint8Array over a
   *   SharedArrayBuffer is some 25 times slower)
   * @param viewLimit the bump pointer never passes this for tensor storage (allocView), so that kernel scratch
   *   always has room above it; past it allocView reuses freed blocks or returns null
   */
  constructor(
    memory: WebAssembly.Memory,
    shared: boolean,
    base: number,
    private readonly zero: (ptr: number, bytes: number) => void,
    private readonly viewLimit: number,
  ) {
    this.memory = memory;
    this.shared = shared;
    this.buf = memory.buffer;
    this.buffers.add(this.buf);
    this.i32View = new Int32Array(this.buf);
    this.top = Math.ceil(base / 64) * 64;
    this.registry = new FinalizationRegistry((ptr: number) => this.free(ptr));
  }

  /** The current ArrayBuffer of the memory (only this heap grows it, so it changes only in `grow`). */
  get buffer(): ArrayBufferLike {
    return this.buf;
  }

  /** An Int32Array over the whole memory (for writing kernel descriptors). */
  get i32(): Int32Array {
    return this.i32View;
  }

  /** Take the memory's current buffer after growth. */
  private refresh(): void {
    const b = this.memory.buffer;
    if (b !== this.buf) {
      this.buf = b;
      this.buffers.add(b);
      this.i32View = new Int32Array(b);
    }
  }

  /** True if `a` is a view into this heap's memory. */
  owns(a: TypedArray): boolean {
    return this.buffers.has(a.buffer);
  }

  /**
   * A block of at least `bytes` bytes (16-byte aligned), or -1 if the memory is full. A new block (none of
   * its class free) must end below `limit`.
   */
  malloc(bytes: number, limit = Number.POSITIVE_INFINITY): number {
    const cls = sizeClass(Math.max(bytes, 1));
    const list = this.freeLists.get(cls);
    let ptr = list !== undefined && list.length > 0 ? list.pop()! : -1;
    if (ptr < 0) {
      const end = this.top + cls;
      if (end > limit) return -1;
      if (end > this.buffer.byteLength && !this.grow(end)) return -1;
      ptr = this.top;
      this.top = end;
    }
    this.live.set(ptr, cls);
    this.liveBytes += cls;
    return ptr;
  }

  /** Return a block to its free list (ignores pointers that are not live blocks). */
  free(ptr: number): void {
    const cls = this.live.get(ptr);
    if (cls === undefined) return;
    this.live.delete(ptr);
    this.liveBytes -= cls;
    let list = this.freeLists.get(cls);
    if (list === undefined) this.freeLists.set(cls, (list = []));
    list.push(ptr);
  }

  /** Grow a shared memory to hold at least `end` bytes (doubling, within the maximum); false if impossible. */
  private grow(end: number): boolean {
    if (!this.shared) return false;
    const have = this.buffer.byteLength;
    const want = Math.max(Math.ceil(end / PAGE), Math.min(2 * (have / PAGE), have / PAGE + 16384));
    for (const pages of [want, Math.ceil(end / PAGE)]) {
      try {
        this.memory.grow(pages - have / PAGE);
        this.refresh();
        return true;
      } catch {
        // over the maximum or out of address space: try the exact size, then give up
      }
    }
    return false;
  }

  /**
   * A zero-filled view of `n` elements of `dtype` in this heap, freed when collected (or by releaseView);
   * null if the memory is full.
   */
  allocView(dtype: DType, n: number): TypedArray | null {
    const bytes = n * elemSize(dtype);
    const fresh = this.top;
    const ptr = this.malloc(bytes, this.viewLimit);
    if (ptr < 0) return null;
    const v = viewAt(this.buffer, dtype, ptr, n);
    if (ptr < fresh) this.zero(ptr, bytes); // reused block: clear it
    this.registry.register(v, ptr, v);
    return v;
  }

  /**
   * Free the block behind a view returned by allocView now, instead of at garbage collection. The view must
   * not be used afterwards. Returns false (and does nothing) for any other array, or a view already released.
   */
  releaseView(v: TypedArray): boolean {
    if (!this.owns(v) || !this.registry.unregister(v)) return false;
    this.free(v.byteOffset);
    return true;
  }

  /** Allocation statistics. */
  stats(): HeapStats {
    return {
      liveBytes: this.liveBytes,
      liveBlocks: this.live.size,
      reservedBytes: this.top,
      memoryBytes: this.buf.byteLength,
      shared: this.shared,
    };
  }
}
