/**
 * Child process of the wasm memory soak (run with node --expose-gc): a synchronous loop, never yielding to
 * the event loop, of kernel calls whose outputs are dropped at once, as a training loop does. Tensor storage
 * is garbage-collected typed arrays and each call pops its wasm scratch, so neither the wasm memory nor the
 * process RSS may keep growing. (Storage freed by a FinalizationRegistry would not be: its callbacks only run
 * between tasks.) Prints {allocatedMiB, memory, rss} (samples after a warm-up) as JSON on its last line.
 */
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";
import type { TypedArray } from "../../src/dtype.ts";

const r = loadWasmBackend({ threads: 1 });
if ("error" in r) throw new Error(r.error);
const B = r.backend;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

const n = 256 * 1024; // 1 MiB of float32 per output
const x = new Float32Array(n).fill(0.25);
const view = (data: TypedArray) => ({ data, shape: [512, 512], strides: [512, 1], offset: 0 });
const memory: number[] = [];
const rss: number[] = [];
let keep = 0;
let allocated = 0;
for (let step = 0; step < 1500; step++) {
  const a = B.alloc("float32", n);
  B.binary("mul", view(x), view(x), a);
  const t = B.alloc("float32", n);
  B.copy({ data: a, shape: [512, 512], strides: [1, 512], offset: 0 }, view(t)); // a transpose
  const s = B.alloc("float32", 512);
  B.reduce("sum", view(t), [0], s);
  keep += s[step % 512];
  allocated += 2 * n * 4 + 512 * 4;
  if (step >= 300 && step % 300 === 0) {
    gc();
    memory.push(B.heapStats().memoryBytes);
    rss.push(process.memoryUsage().rss);
  }
}
console.log(JSON.stringify({ allocatedMiB: allocated / 2 ** 20, memory, rss, keep }));
