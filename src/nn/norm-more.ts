/**
 * More normalisation layers: `RMSNorm` (Zhang & Sennrich, 2019; PyTorch 2.4's nn.RMSNorm) and `GroupNorm`
 * (Wu & He, 2018; PyTorch's nn.GroupNorm), compositions of reductions and elementwise ops.
 */
import type { DType } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { noGrad } from "../core/trace.ts";
import { layerNorm } from "../ops/nn.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module, parameter } from "./module.ts";

/** Options of RMSNorm. */
export interface RMSNormOpts {
  /** Added to the mean square; default (null) the machine epsilon of the input's dtype, as PyTorch 2.4. */
  eps?: number | null;
  /** Learn a scale of shape normalizedShape, initialised to ones (default true). */
  elementwiseAffine?: boolean;
  dtype?: DType;
}

/**
 * Root-mean-square normalisation over the trailing dims `normalizedShape`:
 * y = x / sqrt(mean(x^2) + eps) * weight (no centring, no shift).
 *
 * @example
 * ```ts
 * new nn.RMSNorm(64).call(randn([8, 10, 64])); // each 64-vector scaled to root mean square 1
 * ```
 */
export class RMSNorm extends Module {
  weight: Tensor | null;
  readonly normalizedShape: readonly number[];
  readonly eps: number | null;

  constructor(normalizedShape: number | readonly number[], opts: RMSNormOpts = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (!this.normalizedShape.every((d) => Number.isInteger(d) && d >= 1)) {
      throw new RangeError(
        `RMSNorm: normalizedShape must be integers >= 1, got ${fmtShape(this.normalizedShape)}`,
      );
    }
    this.eps = opts.eps ?? null;
    this.weight = (opts.elementwiseAffine ?? true) ? parameter(this.normalizedShape, opts.dtype) : null;
    if (this.weight !== null) noGrad(() => this.weight!.fill_(1));
  }

  forward(x: Tensor): Tensor {
    const k = this.normalizedShape.length;
    const tail = x.shape.slice(x.ndim - k);
    if (x.ndim < k || tail.some((d, i) => d !== this.normalizedShape[i])) {
      throw new ShapeError(
        `RMSNorm: expected input [..., ${this.normalizedShape.join(", ")}], got ${fmtShape(x.shape)}`,
      );
    }
    const eps = this.eps ?? (x.dtype === "float64" ? 2.220446049250313e-16 : 1.1920928955078125e-7);
    const axes = this.normalizedShape.map((_, i) => x.ndim - k + i);
    const y = x.mul(x.square().mean(axes, true).add(eps).rsqrt());
    return this.weight === null ? y : y.mul(this.weight);
  }

  override extraRepr(): string {
    return `${fmtShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}

/** Options of GroupNorm. */
export interface GroupNormOpts {
  eps?: number;
  /** Learn a per-channel scale (ones) and shift (zeros) (default true). */
  affine?: boolean;
  dtype?: DType;
}

/**
 * Group normalisation of [N, C, *] input: the C channels are split into numGroups groups and each group of
 * each sample is normalised by its own mean and biased variance (over its channels and the spatial dims),
 * then scaled and shifted per channel. Independent of the batch, so train and eval agree.
 *
 * @example
 * ```ts
 * new nn.GroupNorm(4, 32).call(randn([8, 32, 16, 16])); // [8, 32, 16, 16]
 * ```
 */
export class GroupNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly eps: number;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    opts: GroupNormOpts = {},
  ) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || numChannels % numGroups !== 0) {
      throw new RangeError(
        `GroupNorm: numGroups must be an integer >= 1 dividing numChannels ${numChannels}, got ${numGroups}`,
      );
    }
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? parameter([numChannels], opts.dtype) : null;
    this.bias = affine ? parameter([numChannels], opts.dtype) : null;
    if (this.weight !== null) noGrad(() => this.weight!.fill_(1));
  }

  forward(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels) {
      throw new ShapeError(`GroupNorm: expected input [N, ${this.numChannels}, *], got ${fmtShape(x.shape)}`);
    }
    const n = x.shape[0];
    const g = x.reshape([n, this.numGroups, -1]);
    // each group's values are one row of the fused layer normalisation
    let y = layerNorm(g, [g.shape[2]], null, null, this.eps).reshape(x.shape);
    const bshape = [this.numChannels, ...x.shape.slice(2).map(() => 1)];
    if (this.weight !== null) y = y.mul(this.weight.reshape(bshape));
    if (this.bias !== null) y = y.add(this.bias.reshape(bshape));
    return y;
  }

  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${this.eps}, affine=${this.weight !== null}`;
  }
}
