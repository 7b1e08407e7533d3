/**
 * Loading the wasm kernels: choose the module variant the runtime supports, create its memory, instantiate.
 *
 * Two variants are embedded (kernels.generated.ts): relaxed SIMD (fused multiply-add; Node 20 needs
 * --experimental-wasm-relaxed-simd, current browsers have it) and plain SIMD128, both importing a shared
 * memory. Relaxed SIMD is detected by WebAssembly.validate of the relaxed module itself; shared memory by
 * trying to create one (browsers without cross-origin isolation refuse), and without it, or with `threads: 1`
 * (no worker to share it with), the module's memory import is rewritten to non-shared (unshareMemoryImport).
 * Either memory starts at 1 MiB and grows on demand
 * (heap.ts) up to `maxMemoryMiB` (default 4 GiB, wasm32's limit; a shared memory takes less if the runtime
 * refuses to reserve that much). A non-shared memory may grow because no tensor lives in it (index.ts).
 * Synchronous compilation (`new WebAssembly.Module`) is fine in Node and workers; browsers refuse it for
 * modules over 4 KB on the main thread, where `instantiateKernelsAsync` must be used.
 */
import { MAX_PAGES, relaxed as relaxedB64, simd as simdB64 } from "./kernels.generated.ts";

/** Names of the kernel module's exported functions (see wasm/assembly/index.ts for their signatures). */
const KERNEL_NAMES = [
  "heapBase",
  "zero",
  "binary",
  "unary",
  "cast",
  "copy",
  "transpose32",
  "where",
  "reduceF32",
  "reduceF64",
  "reduceI32",
  "sgemm",
  "sgemmBufA",
  "sgemmBufB",
  "dgemm",
  "im2col",
  "col2im",
  "maxPool",
  "maxPoolBack",
  "avgPool",
  "avgPoolBack",
  "adamF32",
  "adamF64",
  "scatterAdd",
  "fused",
  "unaryF64",
  "unaryF32x4",
  "powF64",
  "attnFwd",
  "attnBwd",
  "attnWork",
  "lstmCell",
  "lstmCellBack",
  "gruCell",
  "gruCellBack",
  "layerNormF32",
] as const;

/** A kernel export: numbers (i32 values, pointers, byte strides) in, a number or nothing out. */
export type KernelFn = (...args: number[]) => number;

/** The exports of the kernel module. */
export type Kernels = Record<(typeof KERNEL_NAMES)[number], KernelFn>;

/** Type the exports, checking that every kernel is there. */
function bindExports(exports: WebAssembly.Exports): Kernels {
  const k: Partial<Kernels> = {};
  for (const name of KERNEL_NAMES) {
    const f = exports[name];
    if (typeof f !== "function") throw new Error(`wasm kernels: export '${name}' is missing`);
    k[name] = f as KernelFn;
  }
  return k as Kernels;
}

/** Options for creating the wasm memory. */
export interface WasmOptions {
  /**
   * Upper bound of the wasm memory (MiB, default 4096 = wasm32's limit): the scratch of one kernel call must
   * fit in it, or that call runs the js kernel.
   */
  maxMemoryMiB?: number;
  /**
   * Force a memory kind (tests): "shared" or "fixed" (non-shared; no GEMM worker threads). Default: shared
   * where the runtime has it, except with `threads: 1`, where a non-shared memory makes the copies in and out
   * of wasm memory faster.
   */
  memory?: "shared" | "fixed";
  /** Disable relaxed SIMD even where it validates (tests, benchmarks). */
  noRelaxed?: boolean;
  /**
   * Threads for float32 GEMM (and so conv), counting the calling thread: 1 disables the worker pool. Default:
   * the available cores, at most 4, where shared memory and worker_threads exist (Node); else 1.
   */
  threads?: number;
}

/** A chosen variant: its bytes, its memory and what it uses. */
export interface Prepared {
  bytes: Uint8Array<ArrayBuffer>;
  memory: WebAssembly.Memory;
  shared: boolean;
  relaxed: boolean;
  /** The memory's maximum size in 64 KiB pages. */
  maxPages: number;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  if (typeof atob === "function") {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  throw new Error("no base64 decoder (atob) in this runtime");
}

const PAGE_MIB = 16; // 64 KiB pages per MiB

function sharedMemory(opts: WasmOptions): [WebAssembly.Memory, number] | null {
  if (typeof SharedArrayBuffer === "undefined" || opts.memory === "fixed") return null;
  const top = Math.min(MAX_PAGES, Math.floor((opts.maxMemoryMiB ?? 4096) * PAGE_MIB));
  for (const maximum of [top, top >> 1, top >> 2, top >> 3]) {
    if (maximum < 16) break;
    try {
      const m = new WebAssembly.Memory({ initial: 16, maximum, shared: true });
      if (m.buffer instanceof SharedArrayBuffer) return [m, maximum];
    } catch {
      // refused (no cross-origin isolation) or too much address space: try smaller, then give up
    }
  }
  return null;
}

/**
 * The module bytes with its memory import made non-shared, for a fixed (non-shared) memory: the import
 * section (id 2) holds env.memory, whose limits flags byte is 0x03 (maximum present, shared), and functions;
 * 0x01 keeps the maximum and drops "shared". The modules use no atomics, so nothing else changes.
 */
export function unshareMemoryImport(src: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const b = src.slice();
  let p = 8; // magic + version
  const leb = () => {
    let r = 0;
    let shift = 0;
    for (;;) {
      const byte = b[p++];
      r += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return r;
    }
  };
  while (p < b.length) {
    const id = b[p++];
    const size = leb();
    const end = p + size;
    if (id === 2) {
      // the imports: env.memory (kind 2, limits) and functions (kind 0, a type index)
      const count = leb();
      for (let i = 0; i < count; i++) {
        const moduleLen = leb();
        p += moduleLen; // (not `p += leb()`: that adds to p as it was before leb moved it)
        const fieldLen = leb();
        p += fieldLen;
        const kind = b[p++];
        if (kind === 0) {
          leb();
          continue;
        }
        if (kind !== 2 || b[p] !== 0x03) {
          throw new Error(
            "unexpected imports in the kernel module (expected a shared env.memory and functions)",
          );
        }
        b[p] = 0x01;
        return b;
      }
    }
    p = end;
  }
  throw new Error("the kernel module imports no shared memory");
}

/** Pick the module variant and create its memory. */
export function prepare(opts: WasmOptions = {}): Prepared {
  if (typeof WebAssembly !== "object") throw new Error("WebAssembly is not available in this runtime");
  const relaxedBytes = opts.noRelaxed ? null : decode(relaxedB64);
  const relaxed = relaxedBytes !== null && WebAssembly.validate(relaxedBytes);
  const bytes = relaxed ? relaxedBytes! : decode(simdB64);
  // one thread asked for and no memory kind: non-shared (no worker needs it, and copies between typed
  // arrays and a non-shared memory run ~1.5x faster in V8 than into a SharedArrayBuffer)
  const oneThread = opts.memory === undefined && opts.threads !== undefined && opts.threads < 2;
  const mem = opts.memory === "fixed" || oneThread ? null : sharedMemory(opts);
  if (mem !== null) return { bytes, memory: mem[0], shared: true, relaxed, maxPages: mem[1] };
  if (opts.memory === "shared") throw new Error("shared WebAssembly memory is not available here");
  const top = Math.min(MAX_PAGES, Math.max(16, Math.floor((opts.maxMemoryMiB ?? 4096) * PAGE_MIB)));
  // a runtime short of address space may refuse a large maximum: try smaller ones
  for (const pages of [top, top >> 1, top >> 2, top >> 3, 16]) {
    if (pages < 16) continue;
    try {
      const memory = new WebAssembly.Memory({ initial: 16, maximum: pages });
      return { bytes: unshareMemoryImport(bytes), memory, shared: false, relaxed, maxPages: pages };
    } catch {
      // try the next size
    }
  }
  throw new Error("cannot create a WebAssembly memory");
}

function checkSimd(bytes: Uint8Array<ArrayBuffer>): void {
  if (!WebAssembly.validate(bytes)) throw new Error("this runtime does not support WebAssembly SIMD128");
}

/** An instantiated kernel module: its typed exports and the compiled module (for worker threads). */
export interface Instance {
  kernels: Kernels;
  module: WebAssembly.Module;
}

/**
 * What the kernel module imports: its memory, and the host's float64 sin, cos and tan (wasm/assembly/math.ts
 * says why: AssemblyScript's misread their table for some arguments). The GEMM workers pass the same.
 */
export function kernelImports(memory: WebAssembly.Memory): WebAssembly.Imports {
  return { env: { memory, sin: Math.sin, cos: Math.cos, tan: Math.tan } };
}

/** Compile and instantiate synchronously (Node, workers; not the browser main thread). */
export function instantiateKernels(p: Prepared): Instance {
  checkSimd(p.bytes);
  const module = new WebAssembly.Module(p.bytes);
  const inst = new WebAssembly.Instance(module, kernelImports(p.memory));
  return { kernels: bindExports(inst.exports), module };
}

/** Compile and instantiate asynchronously (any thread, any module size). */
export async function instantiateKernelsAsync(p: Prepared): Promise<Instance> {
  checkSimd(p.bytes);
  const module = await WebAssembly.compile(p.bytes);
  const inst = await WebAssembly.instantiate(module, kernelImports(p.memory));
  return { kernels: bindExports(inst.exports), module };
}
