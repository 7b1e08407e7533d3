/**
 * Time of the wasm backend's attention calls alone at the eager char Transformer's shape (q, k, v [32, 4, 128,
 * 32] float32 contiguous, causal, one thread): Backend.attentionBackward (and the forward for comparison) called
 * directly, the median over rounds of a few calls each.
 *
 * --packed: q, k and v are strided views into one [32, 128, 3 * 128] buffer, the heads split off as the model's
 * QKV projection leaves them (what the Transformer step passes); otherwise three contiguous arrays.
 *
 *   taskset -c 1 node --import tsx bench/attention-bwd-wasm.ts [--rounds 9] [--reps 5] [--causal 0|1] [--f64] [--packed]
 */
import { parseArgs } from "node:util";
import type { View } from "../src/backend/backend.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "9" },
    reps: { type: "string", default: "5" },
    causal: { type: "string", default: "1" },
    f64: { type: "boolean", default: false },
    packed: { type: "boolean", default: false },
  },
});
const W = createWasmBackend({ threads: 1 });
const [B, H, L, E] = [32, 4, 128, 32];
const causal = values.causal !== "0";
const Arr = values.f64 ? Float64Array : Float32Array;
let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
const view = (shape: number[], fill = true): View => {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Arr(n);
  if (fill) for (let i = 0; i < n; i++) data[i] = 2 * rnd() - 1;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return { data, shape, strides, offset: 0 };
};
let [q, k, v] = [0, 1, 2].map(() => view([B, H, L, E]));
if (values.packed) {
  const qkv = view([B, L, 3 * H * E]);
  [q, k, v] = [0, 1, 2].map((t) => ({
    data: qkv.data,
    shape: [B, H, L, E],
    strides: [L * 3 * H * E, E, 3 * H * E, 1],
    offset: t * H * E,
  }));
}
const g = view([B, H, L, E + 1]);
for (let i = E; i < g.data.length; i += E + 1) g.data[i] = 0; // no lse gradient, as in a training step
const o = view([B, H, L, E + 1], false);
const scale = 1 / Math.sqrt(E);
const d = new Arr(B * H * 3 * L * E);
const fwd = () => W.attention(q, k, v, null, causal, scale, o.data);
const bwd = () => W.attentionBackward(q, k, v, null, o, g, causal, scale, d);
fwd();
bwd();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const reps = Number(values.reps);
const tf: number[] = [];
const tb: number[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
  let t0 = performance.now();
  for (let i = 0; i < reps; i++) fwd();
  tf.push((performance.now() - t0) / reps);
  t0 = performance.now();
  for (let i = 0; i < reps; i++) bwd();
  tb.push((performance.now() - t0) / reps);
}
let sum = 0;
for (let i = 0; i < d.length; i++) sum += d[i] * ((i % 7) - 3);
console.log(
  `${values.f64 ? "float64" : "float32"}${values.packed ? " packed" : ""} [${B}, ${H}, ${L}, ${E}] ${causal ? "causal" : "no mask"}: forward ${median(tf).toFixed(2)} ms, backward ${median(tb).toFixed(2)} ms per call (checksum ${sum.toPrecision(8)}, fallbacks ${JSON.stringify(W.fallbacks())})`,
);
