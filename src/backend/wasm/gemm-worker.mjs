/**
 * The GEMM worker thread of the wasm backend (started by threads.ts from this file's URL).
 *
 * It instantiates the kernel module over the shared wasm memory and runs sgemm jobs (and the other kernels of
 * threads.ts CALLS) handed over through the control block (layout in threads.ts): no messages, only
 * Atomics.wait / notify, so the calling thread may block on the result inside a synchronous kernel call.
 *
 * Why a plain .mjs file: `eval: true` source inherits the parent's `--input-type=module` flag, under which its
 * CommonJS failed (`require is not defined`) and the unhandled worker error killed the process; a module file
 * has a fixed module type. It is JavaScript, not TypeScript, because Node 20 does not apply tsx's loader
 * hooks inside worker threads, so a .ts worker would not start from src/ under tsx; tsconfig.build.json
 * (allowJs) copies it into dist/ beside the compiled threads.js, where the same relative URL finds it.
 */
import { workerData } from "node:worker_threads";

/** Control block slots (the same constants as in threads.ts). */
const ARGS = 2;
const READY = 16;
const ERROR = 17;
const KIND = 18;
const SLOTS = 20;
const MAX_CALL_ARGS = 32;
/** Kernels besides sgemm a job may name (kind = index + 1): threads.ts CALLS. */
const CALLS = ["attnFwd", "attnBwd"];

const c = new Int32Array(workerData.control, 0, SLOTS);
const callArgs = new Float64Array(workerData.control, SLOTS * 4, MAX_CALL_ARGS);
let sgemm;
let calls = [];
try {
  // the kernel module's imports (module.ts kernelImports: its memory and the host's float64 sin, cos, tan)
  const env = { memory: workerData.memory, sin: Math.sin, cos: Math.cos, tan: Math.tan };
  const inst = new WebAssembly.Instance(workerData.module, { env });
  sgemm = inst.exports.sgemm;
  calls = CALLS.map((name) => inst.exports[name]);
} catch {
  Atomics.store(c, ERROR, 1);
}
if (typeof sgemm !== "function") {
  sgemm = undefined;
  Atomics.store(c, ERROR, 1);
}
Atomics.store(c, READY, 1);
Atomics.notify(c, READY);
let seen = 0;
while (sgemm !== undefined) {
  Atomics.wait(c, 0, seen);
  const seq = Atomics.load(c, 0);
  if (seq === seen) continue;
  if (seq < 0) break;
  seen = seq;
  const a = ARGS;
  try {
    const kind = c[KIND];
    if (kind !== 0) {
      calls[kind - 1](...callArgs.subarray(0, c[ARGS]));
    } else {
      sgemm(
        c[a],
        c[a + 1],
        c[a + 2],
        c[a + 3],
        c[a + 4],
        c[a + 5],
        c[a + 6],
        c[a + 7],
        c[a + 8],
        c[a + 9],
        c[a + 10],
        c[a + 11],
        c[a + 12],
        c[a + 13],
      );
    }
  } catch {
    Atomics.store(c, ERROR, 1);
  }
  Atomics.store(c, 1, seq);
  Atomics.notify(c, 1);
}
