/**
 * `Dropout` (Srivastava et al., 2014), "inverted": in training each element is zeroed with probability p and
 * the survivors are scaled by 1 / (1 - p), so the expected output equals the input and eval mode is the
 * identity. The mask is drawn from the global generator (`manualSeed`) or the layer's own `Generator`.
 */
import { checkNotJitTracing } from "../core/trace.ts";
import { allocTyped } from "../dtype.ts";
import { defaultGenerator, type Generator, tensor, zerosLike } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/** Options of Dropout. */
export interface DropoutOpts {
  /** A private random stream; default the global generator. */
  generator?: Generator;
}

/**
 * Zero each element with probability p in training mode, scaling the rest by 1 / (1 - p).
 * p = 0 is the identity; p = 1 gives zeros. Eval mode is always the identity.
 *
 * @example
 * ```ts
 * const drop = new Dropout(0.5);
 * drop.call(ones([4]));        // e.g. [2, 0, 2, 2]
 * drop.eval().call(ones([4])); // [1, 1, 1, 1]
 * ```
 */
export class Dropout extends Module {
  readonly #generator: Generator | null;

  constructor(
    readonly p = 0.5,
    opts: DropoutOpts = {},
  ) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: probability p must be in [0, 1], got ${p}`);
    this.#generator = opts.generator ?? null;
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    if (this.p === 1) return x.mul(zerosLike(x, { dtype: x.dtype === "float64" ? "float64" : "float32" }));
    checkNotJitTracing("Dropout");
    const g = this.#generator ?? defaultGenerator;
    const keep = 1 - this.p;
    const scale = 1 / keep;
    const dtype = x.dtype === "float64" ? "float64" : "float32";
    // one multiply by a constant mask holding 0 or 1 / (1 - p): the gradient is that same mask
    const mask = allocTyped(dtype, x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = g.uniform() < keep ? scale : 0;
    return x.mul(tensor(mask, { shape: x.shape, dtype }));
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}
