/**
 * Child process of the wasm memory test (run with node --expose-gc): allocates and drops many heap views
 * through kernels, then forces garbage collection, lets the FinalizationRegistry callbacks run (they only run
 * between tasks), and prints {start, peak, end} backendBytes as JSON on its last line.
 */
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";

const r = loadWasmBackend();
if ("error" in r) throw new Error(r.error);
const B = r.backend;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

async function main() {
  await tick();
  const start = B.backendBytes();
  let peak = start;
  let keep = 0;
  for (let step = 0; step < 200; step++) {
    const n = 1000 + (step % 7) * 100;
    const a = B.alloc("float32", n);
    a.fill(step);
    const b = B.alloc("float32", n);
    B.binary(
      "mul",
      { data: a, shape: [n], strides: [1], offset: 0 },
      { data: a, shape: [n], strides: [1], offset: 0 },
      b,
    );
    keep += b[0];
    peak = Math.max(peak, B.backendBytes());
  }
  for (let i = 0; i < 10 && B.backendBytes() > start; i++) {
    gc!();
    await tick();
  }
  console.log(JSON.stringify({ start, peak, end: B.backendBytes(), keep }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
