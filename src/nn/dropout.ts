/**
 * `Dropout` (Srivastava et al., 2014), "inverted": in training each element is zeroed with probability p and
 * the survivors are scaled by 1 / (1 - p), so the expected output equals the input and eval mode is the
 * identity. The mask is drawn from the global generator (`manualSeed`) or the layer's own `Generator`.
 */
import { checkNotJitTracing } from "../core/trace.ts";
import { allocTyped } from "../dtype.ts";
import { defaultGenerator, type Generator, tensor, zerosLike } from "../ops/creation.ts";
import { ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { functionalContext } from "./functional-context.ts";
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
    const dtype = x.dtype === "float64" ? "float64" : "float32";
    const fn = functionalContext();
    if (fn !== null) {
      // functionalApply: the mask comes from the caller (drawn outside a jit trace), or is only recorded
      const i = fn.next++;
      if (fn.masks === null) {
        fn.requests.push({ layer: this, shape: [...x.shape], dtype });
        return x;
      }
      const mask = fn.masks[i];
      if (mask === undefined || !shapesEqual(mask.shape, x.shape) || mask.dtype !== dtype) {
        throw new ShapeError(
          `Dropout: functional call needs mask ${i} of shape ${fmtShape(x.shape)} and dtype ${dtype}, got ${mask === undefined ? "none" : `${fmtShape(mask.shape)} ${mask.dtype}`}`,
        );
      }
      return x.mul(mask);
    }
    checkNotJitTracing("Dropout");
    // one multiply by a constant mask holding 0 or 1 / (1 - p): the gradient is that same mask
    return x.mul(this._drawMask(x.shape, dtype));
  }

  /** @internal Draw a mask of 0 and 1 / (1 - p) from this layer's generator (what forward multiplies by). */
  _drawMask(shape: readonly number[], dtype: "float32" | "float64"): Tensor {
    const g = this.#generator ?? defaultGenerator;
    const keep = 1 - this.p;
    const scale = 1 / keep;
    const mask = allocTyped(dtype, sizeOf(shape));
    for (let i = 0; i < mask.length; i++) mask[i] = g.uniform() < keep ? scale : 0;
    return tensor(mask, { shape, dtype });
  }

  override extraRepr(): string {
    return `p=${this.p}`;
  }
}
