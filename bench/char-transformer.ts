/**
 * The char Transformer of the bench's eager Transformer probes (bench/transformer-kernels.ts,
 * bench/eager-transformer-ab.ts, bench/jit-profile.ts): the `transformer` workload's model (4 pre-norm GELU
 * layers, width 128, 4 heads, context 128, the 96 printable ASCII characters) with its logits [B, T, V] reshaped
 * to [B T, V], and the fixed batch 32 x 128 the probes train on.
 */
import { CharTransformer } from "../src/cli/text-model.ts";
import { type Tensor, tensor } from "../src/index.ts";
import { Module, Sequential } from "../src/nn/index.ts";

export const CHAR_VOCAB = 96;

/** Logits [B, T, V] -> [B * T, V]. */
export class Positions extends Module {
  forward(x: Tensor): Tensor {
    return x.reshape([-1, x.shape[2]]);
  }
}

/** A fresh model (seed the generator first for the same weights). */
export function charTransformer(): Sequential {
  const chars = Array.from({ length: CHAR_VOCAB }, (_, i) => String.fromCharCode(32 + i));
  return new Sequential(
    new CharTransformer({
      name: "transformer",
      vocab: chars,
      layers: 4,
      width: 128,
      heads: 4,
      context: 128,
      dropout: 0,
    }),
    new Positions(),
  );
}

/** The fixed batch: tokens x [32, 128] (int32) and targets y [32 * 128] (int32). */
export function charBatch(): { x: Tensor; y: Tensor } {
  const x = tensor(
    Int32Array.from({ length: 32 * 128 }, (_, i) => (i * 13) % CHAR_VOCAB),
    { dtype: "int32", shape: [32, 128] },
  );
  const y = tensor(
    Int32Array.from({ length: 32 * 128 }, (_, i) => (i * 7 + 3) % CHAR_VOCAB),
    { dtype: "int32" },
  );
  return { x, y };
}
