/**
 * Entry point of the wasm backend's kernels (AssemblyScript). The module imports its memory (env.memory) and
 * never allocates: the JS side (src/backend/wasm/heap.ts) owns the heap above `heapBase()` and passes
 * pointers. Built by wasm/build.mjs into src/backend/wasm/kernels.generated.ts.
 */
export { binary, unary, unaryF32x4 } from "./elementwise";
export { fused, powF64, unaryF64 } from "./fused";
export { cast, copy, transpose32, where } from "./misc";
export { reduceF32, reduceF64, reduceI32 } from "./reduce";
export { dgemm, sgemm, sgemmBufA, sgemmBufB } from "./gemm";
export { avgPool, avgPoolBack, col2im, im2col, maxPool, maxPoolBack } from "./conv";
export { adamF32, adamF64 } from "./optim";
export { scatterAdd } from "./indexing";
export { attnBwd, attnFwd, attnWork } from "./attention";
export { gruCell, gruCellBack, lstmCell, lstmCellBack } from "./rnn";
export { layerNormF32 } from "./norm";

/** Zero `bytes` bytes at `ptr` (bulk memory.fill: far faster than a JS fill on a shared buffer). */
export function zero(ptr: usize, bytes: usize): void {
  memory.fill(ptr, 0, bytes);
}

/** First byte above the module's static data: where the JS heap may start. */
export function heapBase(): usize {
  return __heap_base;
}
