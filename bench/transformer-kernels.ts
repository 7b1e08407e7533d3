/**
 * Backend time per call of the bench's eager char Transformer step (4 pre-norm GELU layers, width 128, 4 heads,
 * batch 32 x 128, Adam; the `transformer` workload), native backend, one thread: every backend method is wrapped
 * to add up its wall time per call name (products and attention by shape), after warm-up steps. Whatever the
 * kernels do not account for is JavaScript (ops, tape, allocation) and collection.
 *
 *   taskset -c 1 node --import tsx bench/transformer-kernels.ts [--steps 10] [--warm 3] [--backend wasm]
 *
 * `--backend wasm` times the wasm backend's calls instead (one thread).
 */
import { parseArgs } from "node:util";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { manualSeed, type Tensor } from "../src/index.ts";
import { crossEntropy } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { charBatch, charTransformer } from "./char-transformer.ts";
import { timeBackendCalls } from "./harness.ts";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "10" },
    warm: { type: "string", default: "3" },
    backend: { type: "string", default: "native" },
  },
});
const wasm = values.backend === "wasm";
const r = wasm ? loadWasmBackend({ threads: 1 }) : loadNativeBackend();
if ("error" in r) throw new Error(r.error);
const shapeOf = (a: unknown) =>
  a !== null && typeof a === "object" && "shape" in a ? (a as { shape: number[] }).shape.join("x") : "";
const stridesOf = (a: unknown) =>
  a !== null && typeof a === "object" && "strides" in a
    ? `[${(a as { strides: number[] }).strides.join(",")}]`
    : "";
const kernelMs = timeBackendCalls(r.backend, (k, args) =>
  k === "dot" || k.startsWith("attention")
    ? `${k} ${shapeOf(args[0])}@${shapeOf(args[1])}`
    : k === "unary" || k === "binary" || k === "reduce"
      ? `${k} ${String(args[0])} ${shapeOf(args[1])}${k === "binary" ? ` ${shapeOf(args[2])}` : ""} ${stridesOf(args[1])}`
      : `${k} ${shapeOf(args[0])}`,
);
setBackend(r.backend);
if (!wasm) setNumThreads(1);
manualSeed(1);

const model = charTransformer();
const { x, y } = charBatch();
const opt = new Adam(model.parameters(), { lr: 1e-3 });
const step = () => {
  opt.zeroGrad();
  const loss = crossEntropy(model.call(x) as Tensor, y);
  loss.backward();
  opt.step();
  return loss.item();
};
for (let i = 0; i < Number(values.warm); i++) step();
kernelMs.clear();
const steps = Number(values.steps);
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const wall = (performance.now() - t0) / steps;
const rows = [...kernelMs].sort((a, b) => b[1].ms - a[1].ms);
const total = rows.reduce((a, [, e]) => a + e.ms, 0) / steps;
console.log(
  `step ${wall.toFixed(2)} ms wall; backend calls ${total.toFixed(2)} ms; rest ${(wall - total).toFixed(2)} ms`,
);
for (const [k, e] of rows.slice(0, 40))
  console.log(
    `  ${(e.ms / steps).toFixed(3).padStart(8)} ms  ${(e.calls / steps).toFixed(0).padStart(4)} calls  ${k}`,
  );
