/**
 * The bench's eager char Transformer step (4 pre-norm GELU layers, width 128, batch 32 x 128, Adam; the
 * `transformer` workload of bench/peers/chainrule.ts) on the native backend, one thread: variants alternated
 * call by call in one process, medians of wall and process CPU time per step and GCs per step.
 *
 *   taskset -c 1 node --import tsx bench/eager-transformer-ab.ts [--rounds 9] [--variants fused,composed]
 *   taskset -c 1 node --import tsx bench/eager-transformer-ab.ts --old PATH [--rounds 9]
 *
 * Variants: `fused` (the library as it is) and `composed` (the exact GELU and LayerNorm's forward swapped for the
 * compositions of elementwise ops and reductions they were before issue 13's fusion, for the step's duration).
 * With `--old PATH` (another native addon build, e.g. a copy of main's native/build/Release/chainrule_native.node)
 * the variants are instead `new` (this checkout's addon) and `old` (that build as the backend for the step's
 * duration), both under this checkout's TypeScript: compares kernels. Measured on the Intel Xeon of session 28,
 * this harness favours the variant it runs second ("old") by ~2% (the two builds swapped gave the same ratio):
 * smaller differences are not differences; alternate whole processes instead (bench/run.ts --only transformer).
 */
import { interleavedAB } from "./harness.ts";
import { createRequire } from "node:module";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { createNativeBackend } from "../src/backend/native/backend.ts";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { manualSeed, Tensor } from "../src/index.ts";
import { crossEntropy, LayerNorm } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { charBatch, charTransformer } from "./char-transformer.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const rounds = Number(opt("rounds", "9"));
const oldPath = opt("old", "");
const variants = oldPath ? ["new", "old"] : opt("variants", "fused,composed").split(",");

const r = loadNativeBackend();
if ("error" in r) throw new Error(r.error);
const mainBackend = r.backend;
setBackend(mainBackend);
setNumThreads(1);
const oldAddon = oldPath ? (createRequire(import.meta.url)(oldPath) as NativeAddon) : null;
oldAddon?.setNumThreads(1);
const oldBackend = oldAddon ? createNativeBackend(oldAddon) : null;
manualSeed(1);

const fusedGelu = Tensor.prototype.gelu;
const fusedLayerNorm = LayerNorm.prototype.forward;
/** The exact GELU as it was: 0.5 x (1 + erf(x / sqrt 2)). */
function composedGelu(this: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  if (approximate !== "none") return fusedGelu.call(this, approximate);
  return this.mul(0.5).mul(this.mul(Math.SQRT1_2).erf().add(1));
}
/** LayerNorm's forward as it was: mean, centre, variance, divide by sqrt(var + eps), affine. */
function composedLayerNorm(this: LayerNorm, x: Tensor): Tensor {
  const k = this.normalizedShape.length;
  const axes = this.normalizedShape.map((_, i) => x.ndim - k + i);
  const mean = x.mean(axes, true);
  const centered = x.sub(mean);
  const variance = centered.square().mean(axes, true);
  let y = centered.div(variance.add(this.eps).sqrt());
  if (this.weight !== null) y = y.mul(this.weight);
  if (this.bias !== null) y = y.add(this.bias);
  return y;
}
function setFused(on: boolean): void {
  Tensor.prototype.gelu = on ? fusedGelu : composedGelu;
  LayerNorm.prototype.forward = on ? fusedLayerNorm : composedLayerNorm;
}

const { x, y } = charBatch();

function stepFn(variant: string): () => number {
  const fused = variant !== "composed";
  manualSeed(1);
  const model = charTransformer();
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  return () => {
    setFused(fused);
    if (variant === "old") setBackend(oldBackend!);
    try {
      opt.zeroGrad();
      const loss = crossEntropy(model.call(x) as Tensor, y);
      loss.backward();
      opt.step();
      return loss.item();
    } finally {
      setFused(true);
      setBackend(mainBackend);
    }
  };
}

const fns: Record<string, () => number> = {};
for (const v of variants) fns[v] = stepFn(v);
const losses: Record<string, number[]> = {};
for (const v of variants) losses[v] = [fns[v](), fns[v]()];
console.log("first two losses:", JSON.stringify(losses));
console.log(await interleavedAB("transformer eager", fns, rounds, 1));
