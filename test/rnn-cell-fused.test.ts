/**
 * The fused recurrent cells (lstmCell, gruCell and their backward primitives, src/prims/rnn.ts) inside nn.LSTM,
 * nn.GRU and the single-step cells, on the native and wasm backends against the js reference: outputs and the gradients
 * of the input and of every parameter (eager backward), float64 (to 1e-12) and float32, multi-layer,
 * bidirectional, with projections, hidden sizes off the vector width. The cells' values against PyTorch 1.13 are
 * in test/nn/rnn.test.ts (on the js kernels, which this file ties native and wasm to); their derivatives (JVP, VJP,
 * second order, vmap) are op-table rows (test/opinfo.ts); kernel conformance on every ISA and thread count is in
 * test/backend/conformance/rows-attention.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { manualSeed, randn, type Tensor, tensor } from "../src/index.ts";
import { GRU, GRUCell, LSTM, LSTMCell, type Module } from "../src/nn/index.ts";
import { onBackend } from "./backends.ts";

const loaded = loadNativeBackend();
const wasm = loadWasmBackend();

for (const [label, load] of [
  ["native", loaded],
  ["wasm", wasm],
] as const) {
  test(`${label} fused cells equal the js reference in nn.LSTM, nn.GRU, LSTMCell and GRUCell`, {
    skip: !("backend" in load),
  }, () => {
    if (!("backend" in load)) return;
    tiesToJs(label, load.backend);
  });
}

function tiesToJs(label: string, native: Backend): void {
  for (const dtype of ["float64", "float32"] as const) {
    const tol = dtype === "float64" ? 1e-12 : 5e-5;
    manualSeed(3);
    const lstm = new LSTM(5, 7, { numLayers: 2, bidirectional: true, projSize: 3, dtype, batchFirst: true });
    const gru = new GRU(5, 33, { numLayers: 2, dtype });
    const lc = new LSTMCell(5, 9, { dtype });
    const gc = new GRUCell(5, 9, { dtype });
    const cases: [string, Module<never, unknown>, Tensor, (x: Tensor) => Tensor][] = [
      [
        "LSTM 2 layers, bidirectional, projections",
        lstm as never,
        randn([4, 6, 5], { dtype }),
        (x) => lstm.call(x)[0],
      ],
      ["GRU 2 layers, hidden 33", gru as never, randn([6, 4, 5], { dtype }), (x) => gru.call(x)[0]],
      ["LSTMCell (c')", lc as never, randn([3, 5], { dtype }), (x) => lc.call(x)[1]],
      ["GRUCell unbatched", gc as never, randn([5], { dtype }), (x) => gc.call(x)],
    ];
    for (const [name, m, x0, f] of cases) {
      const w = randn(f(x0).shape, { dtype });
      const run = (b: Backend): number[][] =>
        onBackend(b, () => {
          const x = tensor(x0, { requiresGrad: true });
          for (const p of m.parameters()) p.grad = null;
          const out = f(x);
          out.mul(w).sum().backward();
          return [out, x.grad!, ...m.parameters().map((p) => p.grad!)].map((t) =>
            Array.from(t.to("float64").dataSync()),
          );
        });
      const js = run(jsBackend);
      const nat = run(native);
      assert.equal(nat.length, js.length);
      for (const [i, a] of js.entries()) {
        for (const [j, v] of a.entries()) {
          const g = nat[i][j];
          assert.ok(
            Math.abs(g - v) <= tol * (1 + Math.abs(v)),
            `${dtype} ${name} result ${i}[${j}]: ${label} ${g}, js ${v}`,
          );
        }
      }
    }
  }
}
