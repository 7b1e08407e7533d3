/**
 * Multi-threaded float32 GEMM for the wasm backend: worker threads that share the backend's wasm memory.
 *
 * Each worker instantiates the same compiled kernel module over the same shared WebAssembly.Memory, so it
 * reads the operands staged in the arena and writes its block of C there. A product C = A B is split into
 * disjoint column blocks of C (or row blocks when C is tall and narrow), the main thread computes one block
 * and each worker another, each with its own packing buffers (sgemm touches nothing else). Hand-off is
 * through a small shared Int32Array per worker and Atomics.wait / notify: no messages, no event loop, so a
 * synchronous kernel call can use it.
 *   control[0]  job sequence number (main increments it to start a job; -1 asks the worker to exit)
 *   control[1]  sequence number of the last finished job (worker sets it)
 *   control[2..16)  the 14 sgemm arguments     control[16] ready flag     control[17] error flag
 *   control[18]  the job's kernel: 0 sgemm (arguments above), else CALLS[kind - 1] with the float64 arguments
 *   at byte CALL_ARGS of the same buffer (up to MAX_CALL_ARGS; pointers and sizes are exact in float64).
 * Besides sgemm, the pool runs the attention kernels, whose batch entries are split over the threads.
 * The workers run gemm-worker.mjs (a module file, see WORKER_URL).
 * Available where blocking waits are allowed on the calling thread and workers exist: Node's worker_threads
 * (found with process.getBuiltinModule, so browsers never load it). Browsers run single-threaded.
 */
import type { Kernels } from "./module.ts";

const ARGS = 2;
const READY = 16;
const ERROR = 17;
const KIND = 18;
const SLOTS = 20;
/** Byte offset of the float64 arguments of a non-sgemm job in the control buffer. */
const CALL_ARGS = SLOTS * 4;
const MAX_CALL_ARGS = 32;
/** Kernel exports a worker may run besides sgemm (kind = index + 1); the same list is in gemm-worker.mjs. */
export const CALLS = ["attnFwd", "attnBwd"] as const;
/** Products smaller than this many multiply-adds run on one thread (a hand-off costs ~10-50 us). */
const MIN_WORK = 1 << 21;

/**
 * The worker's module file, gemm-worker.mjs beside this module (in src/ and, copied by tsc, in dist/). A file
 * rather than `eval: true` source, which inherits `--input-type=module` from the parent and then cannot run
 * CommonJS.
 */
const WORKER_URL = "./gemm-worker.mjs";

/**
 * The parent's Node flags minus --input-type, which a worker inherits (from the command line and from
 * NODE_OPTIONS) and which Node rejects for a worker started from a file (ERR_INPUT_TYPE_NOT_ALLOWED).
 */
function withoutInputType(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--input-type") i++;
    else if (!argv[i].startsWith("--input-type=")) out.push(argv[i]);
  }
  return out;
}

/** The worker's environment: the parent's, with --input-type taken out of NODE_OPTIONS. */
function workerEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const opts = env.NODE_OPTIONS;
  if (opts === undefined || !opts.includes("--input-type")) return env;
  return { ...env, NODE_OPTIONS: withoutInputType(opts.split(/\s+/).filter((a) => a !== "")).join(" ") };
}

interface WorkerLike {
  unref(): void;
  terminate(): unknown;
  on(event: "error", listener: (e: unknown) => void): unknown;
}
interface WorkerThreadsModule {
  Worker: new (
    url: URL,
    opts: { workerData: unknown; execArgv: string[]; env: Record<string, string | undefined> },
  ) => WorkerLike;
}
interface FsModule {
  existsSync(path: URL): boolean;
}

/** Worker count by default: one per further core (at most 3), none where workers do not exist. */
export function defaultWorkers(): number {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.("node:os") as { availableParallelism?: () => number } | undefined;
  const cores = os?.availableParallelism?.() ?? 1;
  return Math.max(0, Math.min(cores, 4) - 1);
}

/** One sgemm job: the 14 arguments of the wasm export. */
export type SgemmArgs = [
  m: number,
  n: number,
  k: number,
  pa: number,
  rsa: number,
  csa: number,
  pb: number,
  rsb: number,
  csb: number,
  pc: number,
  ldc: number,
  accumulate: number,
  bufA: number,
  bufB: number,
];

/** A pool of GEMM worker threads sharing the wasm memory. */
export class GemmPool {
  private seq = 0;
  private constructor(
    private readonly workers: WorkerLike[],
    private readonly controls: Int32Array[],
    private readonly callArgs: Float64Array[],
  ) {}

  /** Number of threads a product may use (the workers and the calling thread). */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Start `count` workers over `memory` (shared) running `module`; null where threads are unavailable or
   * the workers fail to start within a few seconds.
   */
  static start(module: WebAssembly.Module, memory: WebAssembly.Memory, count: number): GemmPool | null {
    if (count < 1 || !(memory.buffer instanceof SharedArrayBuffer)) return null;
    const proc = (
      globalThis as {
        process?: {
          getBuiltinModule?: (id: string) => unknown;
          execArgv?: string[];
          env?: Record<string, string | undefined>;
        };
      }
    ).process;
    const wt = proc?.getBuiltinModule?.("node:worker_threads") as WorkerThreadsModule | undefined;
    if (wt === undefined) return null;
    const url = new URL(WORKER_URL, import.meta.url);
    const execArgv = withoutInputType(proc?.execArgv ?? []);
    const env = workerEnv(proc?.env ?? {});
    // a bundle that dropped the worker file runs single-threaded (instead of waiting for workers that fail)
    const fs = proc?.getBuiltinModule?.("node:fs") as FsModule | undefined;
    if (url.protocol !== "file:" || fs?.existsSync(url) !== true) return null;
    const workers: WorkerLike[] = [];
    const controls: Int32Array[] = [];
    const callArgs: Float64Array[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const control = new SharedArrayBuffer(CALL_ARGS + MAX_CALL_ARGS * 8);
        callArgs.push(new Float64Array(control, CALL_ARGS, MAX_CALL_ARGS));
        const w = new wt.Worker(url, { workerData: { module, memory, control }, execArgv, env });
        // an unhandled worker error would kill the process; a worker that never gets ready is caught below,
        // and one failing later sets its error flag
        w.on("error", () => {});
        w.unref();
        workers.push(w);
        controls.push(new Int32Array(control, 0, SLOTS));
      }
      for (const c of controls) {
        if (Atomics.wait(c, READY, 0, 10000) === "timed-out" || c[ERROR] !== 0) throw new Error("worker");
      }
    } catch {
      for (const w of workers) w.terminate();
      return null;
    }
    return new GemmPool(workers, controls, callArgs);
  }

  /**
   * Run sgemm jobs: jobs[0] on the calling thread, jobs[i] on worker i - 1, all at once; returns when all are
   * done. At most `threads` jobs.
   */
  run(k: Kernels, jobs: SgemmArgs[]): void {
    const seq = ++this.seq;
    for (let i = 1; i < jobs.length; i++) {
      const c = this.controls[i - 1];
      c.set(jobs[i], ARGS);
      c[KIND] = 0;
      Atomics.store(c, 0, seq);
      Atomics.notify(c, 0);
    }
    k.sgemm(...jobs[0]);
    this.join(jobs.length, seq);
  }

  /**
   * Run calls of kernel `name` (one of CALLS): jobs[0] on the calling thread, jobs[i] on worker i - 1, all at
   * once; returns when all are done. At most `threads` jobs, each at most MAX_CALL_ARGS arguments; the jobs
   * must touch disjoint memory (their own outputs and scratch).
   */
  call(k: Kernels, name: (typeof CALLS)[number], jobs: number[][]): void {
    const seq = ++this.seq;
    const kind = CALLS.indexOf(name) + 1;
    for (let i = 1; i < jobs.length; i++) {
      const c = this.controls[i - 1];
      if (jobs[i].length > MAX_CALL_ARGS)
        throw new Error(`wasm pool: ${name} has more than ${MAX_CALL_ARGS} arguments`);
      this.callArgs[i - 1].set(jobs[i]);
      c[ARGS] = jobs[i].length;
      c[KIND] = kind;
      Atomics.store(c, 0, seq);
      Atomics.notify(c, 0);
    }
    k[name](...jobs[0]);
    this.join(jobs.length, seq);
  }

  /** Wait for workers 0 .. n - 2 to finish job `seq`. */
  private join(n: number, seq: number): void {
    for (let i = 1; i < n; i++) {
      const c = this.controls[i - 1];
      for (let d = Atomics.load(c, 1); d !== seq; d = Atomics.load(c, 1)) {
        if (Atomics.wait(c, 1, d, 60000) === "timed-out") throw new Error("wasm GEMM worker did not answer");
      }
      if (c[ERROR] !== 0) throw new Error("wasm GEMM worker failed");
    }
  }

  /** Stop the workers. */
  close(): void {
    for (const c of this.controls) {
      Atomics.store(c, 0, -1);
      Atomics.notify(c, 0);
    }
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
    this.controls.length = 0;
  }
}

/**
 * Split one product over the pool: disjoint column blocks of C (multiples of 8 columns, the micro-tile
 * width) when C is at least as wide as tall, else row blocks (multiples of 4 rows). `buffers(i)` gives the
 * packing buffers of part i. Small products run whole on the calling thread.
 */
export function splitGemm(
  threads: number,
  a: SgemmArgs,
  es: number,
  buffers: (i: number) => [number, number],
): SgemmArgs[] {
  const [m, n, k, pa, rsa, csa, pb, rsb, csb, pc, ldc, acc] = a;
  const parts: SgemmArgs[] = [];
  if (threads <= 1 || m * n * k < MIN_WORK || (n < 16 && m < 8)) {
    const [bA, bB] = buffers(0);
    return [[m, n, k, pa, rsa, csa, pb, rsb, csb, pc, ldc, acc, bA, bB]];
  }
  const byCols = n >= m;
  const total = byCols ? n : m;
  const unit = byCols ? 8 : 4;
  const chunk = Math.ceil(Math.ceil(total / threads) / unit) * unit;
  for (let start = 0, i = 0; start < total; start += chunk, i++) {
    const len = Math.min(chunk, total - start);
    const [bA, bB] = buffers(i);
    if (byCols)
      parts.push([m, len, k, pa, rsa, csa, pb + start * csb, rsb, csb, pc + start * es, ldc, acc, bA, bB]);
    else
      parts.push([len, n, k, pa + start * rsa, rsa, csa, pb, rsb, csb, pc + start * ldc, ldc, acc, bA, bB]);
  }
  return parts;
}
