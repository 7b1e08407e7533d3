/**
 * Relative timings of the fused recurrent-cell kernels on the wasm backend against the js reference kernels
 * (what the wasm backend ran before it had its own), kernel calls on [64, k * 128] operands (batch 64, hidden
 * 128: the LSTM bench's sizes), float32 and float64, interleaved in one process; prints the median per-round
 * ratio js / wasm, meaningful on a loaded machine where absolute times are not.
 *
 * Run: node --import tsx bench/rnn-cell-wasm.ts
 */
import type { View } from "../src/backend/backend.ts";
import { jsBackend as J } from "../src/backend/js/index.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";

const W = createWasmBackend({ threads: 1 });
const [B, H] = [64, 128];

function view(w: number, dtype: "float32" | "float64"): View {
  const data = dtype === "float32" ? new Float32Array(B * w * H) : new Float64Array(B * w * H);
  for (let i = 0; i < data.length; i++) data[i] = 4 * Math.random() - 2;
  return { data, shape: [B, w * H], strides: [w * H, 1], offset: 0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

for (const dtype of ["float32", "float64"] as const) {
  const [g4, c1, t2, x3, h3, h1, t1] = [4, 1, 2, 3, 3, 1, 1].map((w) => view(w, dtype));
  const out = (w: number) =>
    dtype === "float32" ? new Float32Array(B * w * H) : new Float64Array(B * w * H);
  const cases: [string, (b: typeof J) => void][] = [
    ["lstmCell", (b) => b.lstmCell(g4, c1, out(2))],
    ["lstmCellBackward", (b) => b.lstmCellBackward(g4, c1, t2, out(5))],
    ["gruCell", (b) => b.gruCell(x3, h3, h1, out(1))],
    ["gruCellBackward", (b) => b.gruCellBackward(x3, h3, h1, t1, out(7))],
  ];
  for (const [name, f] of cases) {
    const time = (b: typeof J) => {
      const t0 = performance.now();
      for (let i = 0; i < 50; i++) f(b);
      return (performance.now() - t0) / 50;
    };
    time(J);
    time(W);
    const ratios: number[] = [];
    for (let r = 0; r < 15; r++) ratios.push(time(J) / time(W));
    console.log(`${dtype} ${name.padEnd(17)} js / wasm: ${median(ratios).toFixed(2)}`);
  }
}
