/**
 * The wasm backend: the Backend interface on WebAssembly SIMD128 kernels (compiled from AssemblyScript in
 * wasm/assembly), for browsers and as the portable fallback in Node.
 *
 * Tensor storage is ordinary garbage-collected typed arrays (`alloc` is the js backend's), not wasm memory.
 * Each kernel call copies the byte span of each input view into a scratch arena in wasm memory, runs there,
 * and copies its output out (context.ts, heap.ts); the arena is a stack popped at the end of every call, so
 * the wasm memory settles at the largest footprint of one call and never grows after that.
 *
 * Why not keep tensors in wasm memory (the previous design): the garbage collector cannot see a block of wasm
 * memory behind a typed-array view, so blocks were returned by a FinalizationRegistry, whose callbacks run
 * only between tasks. WeakRefs do not help either: a target stays alive until the end of the job that
 * created or dereferenced it. In a synchronous training loop nothing was ever freed: a 784-512-256-10 MLP step
 * (batch 128, Adam) leaked 4.3 MiB, a small CNN step 65 MiB, until the heap reached its bound (then every
 * tensor became a plain array staged in and out anyway), and each step's fresh pages were faulted in anew.
 * Reusing blocks sooner needs a signal that a tensor is dead, which the library does not have (no dispose by
 * design). The copies cost little: a memcpy runs at 10-30 GB/s, a matmul's is O(n^2) against O(n^3)
 * arithmetic, and elementwise kernels run on small, cache-resident activations. Measured on the MLP step
 * (one thread, CPU time): 15-16 ms in wasm memory (while the heap still had room) against 9-10 ms now, with
 * the wasm memory flat at a few MiB instead of growing to 2 GiB. It also lets a non-shared memory grow
 * (nothing outlives a call to be detached), and js kernels that run as fallbacks get ordinary arrays.
 *
 * The kernels that training spends its time in run in wasm: float32 GEMM (packed, blocked, SIMD) and float64
 * matmul, conv2d and both adjoints (im2col + GEMM), elementwise unary / binary (SIMD on contiguous and
 * broadcast rows, strided fallback), where, cast, copy, reductions, pooling, scatterAdd, the fused Adam
 * update, flash-style attention and its VJP (attention.ts), the fused LSTM / GRU cells (rnn.ts), layerNorm, its VJP
 * and the affine LayerNorm kernels on float32 (norm.ts); softmax and its VJP are one js pass on small inputs and a composition of those wasm kernels on
 * large ones (softmax.ts); jit's fused programs, biasAct and actGrad run WebAssembly generated at run time per
 * program (fused.ts, codegen.ts). The kernels it omits (gather, see indexing.ts; argReduce, cumsum)
 * are filled with the js reference by ../complete.ts; every (op, dtype) pair not implemented in wasm runs the
 * js kernel on the same arrays, as does any call whose scratch does not fit in the memory.
 * Results agree with the js backend exactly for exact operations (+ - * / sqrt, comparisons, casts, max/min,
 * pooling, scatterAdd), within float32 summation error for GEMM / conv (they accumulate in float32; the
 * reference in float64), within about 2 ulp for the float32 SIMD exp, log, sigmoid and tanh, within 4 ulp for
 * the other float32 SIMD math (log1p, expm1, sin, cos, tan, erf, the inverse trigonometric and hyperbolic
 * functions, log2, log10, atan2: test/backend/wasm-vmath.test.ts) and within a few ulp for float32 Adam
 * (computed in float32; the reference in float64); float64 transcendental ops evaluate in float64 (AssemblyScript's
 * Math, within an ulp or two of V8's), as do float32 ones on strided rows and row tails, rounded once. Large float32 GEMMs (and so convolutions) and the heads of large attention
 * calls are split over worker threads sharing the memory (threads.ts) where Node's worker_threads exist.
 *
 * @example
 * ```ts
 * const r = loadWasmBackend();
 * if ("error" in r) console.warn(r.error);
 * else setBackend(r.backend); // from ../registry.ts
 * ```
 */
import { allocTyped } from "../../dtype.ts";
import type { Backend, BackendImpl, KernelName, LayerNormAffineKernel } from "../backend.ts";
import { completeBackend } from "../complete.ts";
import { fusedByOps } from "../fused.ts";
import { convEpilogue } from "../js/conv.ts";
import { jsBackend as js } from "../js/index.ts";
import * as A from "./attention.ts";
import { type Ctx, MAX_DIMS, OutOfHeap } from "./context.ts";
import * as E from "./elementwise.ts";
import * as F from "./fused.ts";
import { Heap, type HeapStats } from "./heap.ts";
import * as X from "./indexing.ts";
import * as L from "./linalg.ts";
import * as O from "./optim.ts";
import {
  type Instance,
  instantiateKernels,
  instantiateKernelsAsync,
  type Prepared,
  prepare,
  type WasmOptions,
} from "./module.ts";
import * as R from "./reduce.ts";
import * as C from "./rnn.ts";
import * as N from "./norm.ts";
import * as S from "./softmax.ts";
import { defaultWorkers, GemmPool } from "./threads.ts";

export type { HeapStats } from "./heap.ts";

/** A kernel of the Backend interface by name (the optional ones included). */
type Kernel<K extends KernelName | "fused" | LayerNormAffineKernel> = NonNullable<Backend[K]>;
export type { WasmOptions } from "./module.ts";

/** The wasm backend object, with its memory statistics. */
export interface WasmBackend extends Backend {
  /**
   * Bytes of wasm memory the backend holds: the scratch arena's high-water mark (the largest footprint of one
   * kernel call so far). Tensor storage is not counted: it is ordinary typed arrays, in the JS heap.
   */
  backendBytes(): number;
  /** Detailed statistics of the wasm memory. */
  heapStats(): HeapStats;
  /**
   * How many calls of each kernel ran the js reference kernel instead of wasm (a dtype or op wasm does not
   * implement, or no scratch memory). Kernels and op codes wasm does not declare (gather, argReduce, cumsum,
   * ops outside WASM_UNARY_OPS / WASM_BINARY_OPS) run js and are not counted, nor are small softmax /
   * softmaxBackward calls (see softmax.ts) or biasAct / actGrad calls on layouts the generated kernels decline.
   */
  fallbacks(): Record<string, number>;
  /** True if the module uses relaxed SIMD (fused multiply-add). */
  readonly relaxedSimd: boolean;
  /** True if the wasm memory is shared (needed for the GEMM worker threads). */
  readonly sharedMemory: boolean;
  /** Threads float32 GEMM runs on (1: no worker pool). */
  readonly threads: number;
  /** Stop the GEMM worker threads (later products run on the calling thread). */
  stopThreads(): void;
}

function makeBackend(p: Prepared, inst: Instance, opts: WasmOptions = {}): WasmBackend {
  const k = inst.kernels;
  const heap = new Heap(p.memory, p.shared, k.heapBase(), p.maxPages * 65536);
  const args = heap.alloc(5 * MAX_DIMS * 4); // permanent: below every scope's mark
  if (args < 0) throw new Error("wasm heap: no room for the kernel descriptor block");
  const baseBytes = heap.stats().liveBytes; // the descriptor block, not counted as scratch
  const workers = opts.threads === undefined ? defaultWorkers() : Math.max(0, Math.floor(opts.threads) - 1);
  const pool = p.shared ? GemmPool.start(inst.module, p.memory, workers) : null;
  let c: Ctx = { k, heap, args, pool };
  const fallbacks = new Map<string, number>();
  /**
   * Kernel `name` running `fast` (wasm); if it declines (false) or the heap is out of scratch, the call is
   * counted and `slow` runs (by default the js kernel of the same name).
   */
  function kernel<K extends KernelName | "fused" | LayerNormAffineKernel>(
    name: K,
    fast: (...a: Parameters<Kernel<K>>) => boolean,
    slow = js[name] as Kernel<K>,
  ): Kernel<K> {
    return ((...a: Parameters<Kernel<K>>) => {
      try {
        if (fast(...a)) return;
      } catch (e) {
        if (!(e instanceof OutOfHeap)) throw e;
      }
      fallbacks.set(name, (fallbacks.get(name) ?? 0) + 1);
      (slow as (...a: Parameters<Kernel<K>>) => void)(...a);
    }) as Kernel<K>;
  }
  const conv2d = kernel("conv2d", (x, w, out, outShape, p) => L.conv2d(c, x, w, out, outShape, p));
  // The kernels wasm implements; the registry's completeBackend adds the js kernels for the rest (gather,
  // argReduce, cumsum) and for op codes outside the module's lists.
  const impl: BackendImpl = {
    name: "wasm",
    // ordinary garbage-collected storage (see the module comment)
    alloc: allocTyped,
    unaryOps: E.WASM_UNARY_OPS,
    binaryOps: E.WASM_BINARY_OPS,
    unary: kernel("unary", (op, x, out) => E.unary(c, op, x, out)),
    binary: kernel("binary", (op, a, b, out) => E.binary(c, op, a, b, out)),
    where: kernel("where", (cond, a, b, out) => E.where(c, cond, a, b, out)),
    cast: kernel("cast", (x, out) => E.cast(c, x, out)),
    copy: kernel("copy", (src, dst) => E.copy(c, src, dst)),
    reduce: kernel("reduce", (op, x, axes, out) => R.reduce(c, op, x, axes, out)),
    dot: kernel("dot", (a, b, out) => L.dot(c, a, b, out)),
    conv2d: (x, w, out, outShape, p, epilogue) => {
      conv2d(x, w, out, outShape, p);
      // the bias + activation epilogue runs the js kernels in place (storage is plain typed arrays)
      if (epilogue) convEpilogue(out, outShape, epilogue);
    },
    conv2dBackInput: kernel("conv2dBackInput", (dy, w, out, s, p) => L.conv2dBackInput(c, dy, w, out, s, p)),
    conv2dBackWeight: kernel("conv2dBackWeight", (x, dy, out, s, p) =>
      L.conv2dBackWeight(c, x, dy, out, s, p),
    ),
    maxPool2d: kernel("maxPool2d", (x, out, outShape, p) => R.pool(c, 0, x, out, outShape, p)),
    maxPool2dArgmax: kernel("maxPool2dArgmax", (x, out, outShape, p) => R.pool(c, 1, x, out, outShape, p)),
    maxPool2dBackward: kernel("maxPool2dBackward", (x, dy, out, s, p) =>
      R.maxPoolBackward(c, x, dy, out, s, p),
    ),
    avgPool2d: kernel("avgPool2d", (x, out, outShape, p) => R.pool(c, 2, x, out, outShape, p)),
    avgPool2dBackward: kernel("avgPool2dBackward", (dy, out, s, p) => R.avgPoolBackward(c, dy, out, s, p)),
    scatterAdd: kernel("scatterAdd", (src, axis, idx, out, s) => X.scatterAdd(c, src, axis, idx, out, s)),
    // jit's fused chains (with a reduction terminal too): a kernel generated at run time per program
    // (codegen.ts); programs it declines run op by op through this backend's own kernels (the same bits), not
    // counted as fallbacks unless scratch ran out
    fusedReduce: true,
    fused: kernel(
      "fused",
      (prog, inputs, outs) => {
        if (!F.fused(c, prog, inputs, outs)) fusedByOps(backend, prog, inputs, outs);
        return true;
      },
      (prog, inputs, outs) => fusedByOps(backend, prog, inputs, outs),
    ),
    // act(x + b) through the generated fused kernels; a layout they decline runs the js kernel (not counted)
    biasAct: (act, x, b, out) => {
      try {
        if (F.biasAct(c, act, x, b, out)) return;
      } catch (e) {
        if (!(e instanceof OutOfHeap)) throw e;
        fallbacks.set("biasAct", (fallbacks.get("biasAct") ?? 0) + 1);
      }
      js.biasAct(act, x, b, out);
    },
    actGrad: (act, y, ct, out) => {
      try {
        if (F.actGrad(c, act, y, ct, out)) return;
      } catch (e) {
        if (!(e instanceof OutOfHeap)) throw e;
        fallbacks.set("actGrad", (fallbacks.get("actGrad") ?? 0) + 1);
      }
      js.actGrad(act, y, ct, out);
    },
    softmax: (x, axis, log, out) => S.softmax(backend, x, axis, log, out),
    softmaxBackward: (y, ct, axis, log, out) => S.softmaxBackward(backend, y, ct, axis, log, out),
    adamUpdate: kernel("adamUpdate", (p, g, m, v, vmax, h) => O.adamUpdate(c, p, g, m, v, vmax, h)),
    layerNorm: kernel("layerNorm", (x, eps, out) =>
      N.layerNormKernel(c, N.LN_FORWARD, x, null, null, null, eps, out),
    ),
    layerNormBackward: kernel("layerNormBackward", (x, g, eps, out) =>
      N.layerNormKernel(c, N.LN_BACKWARD, x, g, null, null, eps, out),
    ),
    layerNormAffine: kernel("layerNormAffine", (x, w, b, eps, out) =>
      N.layerNormKernel(c, N.LN_AFFINE, x, null, w, b, eps, out),
    ),
    layerNormScaledBackward: kernel("layerNormScaledBackward", (x, w, g, eps, out) =>
      N.layerNormKernel(c, N.LN_SCALED_BACKWARD, x, g, w, null, eps, out),
    ),
    layerNormAffineGrads: kernel("layerNormAffineGrads", (x, g, eps, out) =>
      N.layerNormKernel(c, N.LN_AFFINE_GRADS, x, g, null, null, eps, out),
    ),
    attention: kernel("attention", (q, k, v, mask, causal, scale, out) =>
      A.attention(c, q, k, v, mask, causal, scale, out),
    ),
    attentionBackward: kernel("attentionBackward", (q, k, v, mask, o, dout, causal, scale, out) =>
      A.attentionBackward(c, q, k, v, mask, o, dout, causal, scale, out),
    ),
    lstmCell: kernel("lstmCell", (g, cv, out) => C.lstmCell(c, g, cv, out)),
    lstmCellBackward: kernel("lstmCellBackward", (g, cv, ct, out) => C.lstmCellBackward(c, g, cv, ct, out)),
    gruCell: kernel("gruCell", (xp, hp, h, out) => C.gruCell(c, xp, hp, h, out)),
    gruCellBackward: kernel("gruCellBackward", (xp, hp, h, ct, out) =>
      C.gruCellBackward(c, xp, hp, h, ct, out),
    ),
  };
  const backend: WasmBackend = {
    ...completeBackend(impl),
    relaxedSimd: p.relaxed,
    get threads() {
      return c.pool?.threads ?? 1;
    },
    stopThreads() {
      c.pool?.close();
      c = { ...c, pool: null };
    },
    sharedMemory: heap.shared,
    backendBytes: () => heap.stats().peakBytes - baseBytes,
    heapStats: () => {
      const st = heap.stats();
      return { ...st, liveBytes: st.liveBytes - baseBytes, peakBytes: st.peakBytes - baseBytes };
    },
    fallbacks: () => Object.fromEntries(fallbacks),
  };
  return backend;
}

let cached: WasmBackend | null = null;

/**
 * Load the wasm backend synchronously (Node, workers). In a browser's main thread synchronous compilation of
 * a module over 4 KB is refused: call `initWasmBackend()` there first, after which this returns the same
 * backend. Returns the reason instead of throwing when WebAssembly SIMD is unavailable. Options apply to
 * the first successful load only.
 *
 * @example
 * ```ts
 * const r = loadWasmBackend();
 * const backend = "error" in r ? jsBackend : r.backend;
 * ```
 */
export function loadWasmBackend(opts?: WasmOptions): { backend: WasmBackend } | { error: string } {
  if (cached !== null) return { backend: cached };
  try {
    const p = prepare(opts);
    cached = makeBackend(p, instantiateKernels(p), opts);
    return { backend: cached };
  } catch (e) {
    return { error: `wasm backend unavailable: ${(e as Error).message}` };
  }
}

/**
 * Load the wasm backend asynchronously (works on a browser's main thread). Rejects with the reason if
 * WebAssembly SIMD is unavailable.
 *
 * @example
 * ```ts
 * const backend = await initWasmBackend();
 * setBackend(backend);
 * ```
 */
export async function initWasmBackend(opts?: WasmOptions): Promise<WasmBackend> {
  if (cached !== null) return cached;
  const p = prepare(opts);
  const inst = await instantiateKernelsAsync(p);
  cached ??= makeBackend(p, inst, opts);
  return cached;
}

/**
 * A fresh, uncached wasm backend with its own memory (tests and benchmarks that compare module variants).
 *
 * @example
 * ```ts
 * const small = createWasmBackend({ memory: "fixed", maxMemoryMiB: 64 });
 * ```
 */
export function createWasmBackend(opts?: WasmOptions): WasmBackend {
  const p = prepare(opts);
  return makeBackend(p, instantiateKernels(p), opts);
}

/** Bytes of wasm memory the loaded wasm backend holds for scratch (0 if it is not loaded); see WasmBackend. */
export function backendBytes(): number {
  return cached === null ? 0 : cached.backendBytes();
}
