/**
 * The vmap bench row of issue 11: per-example gradients of the 784-512-256-10 MLP (relu, softmax cross-entropy)
 * at batch 128 through `vmap(grad(loss))`, against one batched gradient of the mean loss (the cost of an ordinary
 * training step's backward) and against 128 separate grad calls. Prints the median ms of each and the ratios,
 * and a floor: the time to write 128 fresh copies of every parameter (the per-example gradients' size, 274 MB),
 * which bounds any transform that materialises them, whatever its arithmetic.
 * A standalone script (not part of `npm run bench`).
 *
 * Run: node --import tsx bench/vmap-grad.ts [js|native|wasm]   (native is the default)
 */
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { grad, randn, type Tensor, tensor, vmap, zeros } from "../src/index.ts";

const which = process.argv[2] ?? "native";
if (which !== "js") {
  const r = which === "wasm" ? loadWasmBackend() : loadNativeBackend();
  if ("error" in r) throw new Error(`${which} backend unavailable: ${r.error}`);
  setBackend(r.backend);
}

const LAYERS = [784, 512, 256, 10];
const B = 128;
type Params = { w: Tensor; b: Tensor }[];
const params: Params = LAYERS.slice(0, -1).map((n, i) => ({
  w: randn([n, LAYERS[i + 1]]).mul(Math.sqrt(2 / n)),
  b: randn([LAYERS[i + 1]]).mul(0.01),
}));
const xs = randn([B, 784]);
const labels = Array.from({ length: B }, (_, i) => (i * 7) % 10);
const ys = tensor(labels.map((l) => Array.from({ length: 10 }, (_, j) => (j === l ? 1 : 0))));

/** Cross-entropy of the MLP on x ([..., 784]) against one-hot y, averaged over the leading dims. */
function loss(p: Params, x: Tensor, y: Tensor): Tensor {
  let h = x;
  p.forEach((l, i) => {
    h = h.matmul(l.w).add(l.b);
    if (i < p.length - 1) h = h.relu();
  });
  return h.logSoftmax(-1).mul(y).sum(-1).neg().mean();
}

const perExample = vmap(grad(loss), { inAxes: [null, 0, 0] });
const batched = grad(loss);
const oneByOne = (p: Params) => {
  for (let i = 0; i < B; i++) grad(loss)(p, xs.narrow(0, i, 1).squeeze(0), ys.narrow(0, i, 1).squeeze(0));
};

function median(f: () => unknown, runs: number): number {
  for (let i = 0; i < 2; i++) f();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(runs / 2)];
}

// sanity: the mean of the per-example gradients is the batched gradient
const g1 = perExample(params, xs, ys) as Params;
const g2 = batched(params, xs, ys) as Params;
const err = g1[0].w.mean(0).sub(g2[0].w).abs().max().item();
const tVmap = median(() => perExample(params, xs, ys), 15);
const tBatch = median(() => batched(params, xs, ys), 15);
const tLoop = median(() => oneByOne(params), 3);
// a floor for any materialised per-example gradient: writing B fresh copies of every parameter's shape
const tFloor = median(
  () => params.map((l) => [zeros([B, ...l.w.shape]).add(1), zeros([B, ...l.b.shape]).add(1)]),
  15,
);
console.log(`backend ${which}; max |mean(per-example dW1) - batched dW1| = ${err.toExponential(2)}`);
console.log(`vmap(grad(loss)) per-example, batch ${B}: ${tVmap.toFixed(2)} ms`);
console.log(`grad(loss) batched (mean):        ${tBatch.toFixed(2)} ms`);
console.log(`${B} separate grad calls:         ${tLoop.toFixed(2)} ms`);
console.log(`floor: writing ${B} gradient copies: ${tFloor.toFixed(2)} ms`);
console.log(`ratio vmap/batched ${(tVmap / tBatch).toFixed(2)}x, loop/vmap ${(tLoop / tVmap).toFixed(2)}x`);
