/**
 * Normalisation layers: `BatchNorm1d`, `BatchNorm2d` (Ioffe and Szegedy, 2015) and `LayerNorm` (Ba et al.,
 * 2016), with PyTorch's semantics.
 *
 * BatchNorm normalises each channel c over the batch and spatial positions:
 *   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c,
 * with the biased batch variance in training mode. It keeps running estimates for eval mode, updated in
 * training as running = (1 - momentum) * running + momentum * batch_stat, where the variance fed to the
 * running estimate is the unbiased one (n / (n - 1) times the biased), n = elements per channel. With
 * momentum null the running stats are a cumulative average (factor 1 / numBatchesTracked).
 */
import { noGrad } from "../core/trace.ts";
import type { DType } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { full, ones, tensor, zeros } from "../ops/creation.ts";
import { layerNorm } from "../ops/nn.ts";
import { fmtShape, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { functionalContext } from "./functional-context.ts";
import { Module, parameter } from "./module.ts";

/** Options of BatchNorm1d/2d. */
export interface BatchNormOpts {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Weight of the newest batch in the running statistics (default 0.1); null for a cumulative average. */
  momentum?: number | null;
  /** Learn a per-channel scale (weight) and shift (bias) (default true). */
  affine?: boolean;
  /** Keep running statistics for eval mode (default true); if false, batch statistics are always used. */
  trackRunningStats?: boolean;
  dtype?: DType;
}

/** Shared implementation of BatchNorm1d and BatchNorm2d (they differ only in the accepted input ranks). */
abstract class BatchNormBase extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(
    readonly numFeatures: number,
    opts: BatchNormOpts = {},
  ) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures < 1) {
      throw new RangeError(
        `${this.constructor.name}: numFeatures must be an integer >= 1, got ${numFeatures}`,
      );
    }
    const dtype = opts.dtype ?? "float32";
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    const affine = opts.affine ?? true;
    this.weight = affine ? parameter([numFeatures], dtype) : null;
    this.bias = affine ? parameter([numFeatures], dtype) : null;
    if (this.weight !== null) noGrad(() => this.weight!.fill_(1));
    const track = opts.trackRunningStats ?? true;
    this.runningMean = this.registerBuffer("runningMean", track ? zeros([numFeatures], { dtype }) : null);
    this.runningVar = this.registerBuffer("runningVar", track ? ones([numFeatures], { dtype }) : null);
    this.numBatchesTracked = this.registerBuffer(
      "numBatchesTracked",
      track ? full([], 0, { dtype: "int32" }) : null,
    );
  }

  /** Input ranks this layer accepts, and the shape text for error messages. */
  protected abstract checkInput(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    const c = this.numFeatures;
    if (x.shape[1] !== c) {
      throw new ShapeError(
        `${this.constructor.name}: expected ${c} channels (dim 1), got input ${fmtShape(x.shape)}`,
      );
    }
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    const bshape = x.shape.map((s, i) => (i === 1 ? s : 1)); // [1, C, 1, ...] broadcasts over the rest
    const useBatch = this.training || this.runningMean === null;
    let centered: Tensor;
    let variance: Tensor;
    if (useBatch) {
      const n = sizeOf(x.shape) / c;
      if (this.training && n <= 1) {
        throw new ShapeError(
          `${this.constructor.name}: expected more than 1 value per channel when training, got input ${fmtShape(x.shape)}`,
        );
      }
      const mean = x.mean(axes, true);
      centered = x.sub(mean);
      variance = centered.square().mean(axes, true); // biased, used to normalise
      if (this.training && this.runningMean !== null) this.updateRunning(mean, variance, n);
    } else {
      centered = x.sub(this.runningMean!.reshape(bshape));
      variance = this.runningVar!.reshape(bshape);
    }
    // fold the affine scale into the per-channel factor: one full-size multiply instead of a divide and a multiply
    let scale = variance.add(this.eps).rsqrt();
    if (this.weight !== null) scale = scale.mul(this.weight.reshape(bshape));
    let y = centered.mul(scale);
    if (this.bias !== null) y = y.add(this.bias.reshape(bshape));
    return y;
  }

  private updateRunning(mean: Tensor, variance: Tensor, n: number): void {
    if (functionalContext() !== null) {
      // functionalApply: new buffers replace the old ones (returned to the caller), nothing is written in
      // place, so the update can be traced; the same operations as below
      const nbt = this.numBatchesTracked!.add(1);
      const m = this.momentum ?? tensor(1, { dtype: "float64" }).div(nbt.to("float64"));
      const keep = typeof m === "number" ? 1 - m : tensor(1, { dtype: "float64" }).sub(m);
      const rm = this.runningMean!;
      const rv = this.runningVar!;
      const cast = (v: number | Tensor, t: Tensor) => (typeof v === "number" ? v : v.to(t.dtype));
      const c = this.numFeatures;
      const unbiased = variance.detach().mul(n / (n - 1));
      this.numBatchesTracked = nbt;
      this.runningMean = rm.mul(cast(keep, rm)).add(mean.detach().reshape([c]).mul(cast(m, rm)));
      this.runningVar = rv.mul(cast(keep, rv)).add(unbiased.reshape([c]).mul(cast(m, rv)));
      return;
    }
    noGrad(() => {
      const nbt = this.numBatchesTracked!;
      nbt.add_(1);
      const m = this.momentum ?? 1 / (nbt.item() as number);
      const c = this.numFeatures;
      const unbiased = variance.detach().mul(n / (n - 1));
      this.runningMean!.mul_(1 - m).add_(mean.detach().reshape([c]), m);
      this.runningVar!.mul_(1 - m).add_(unbiased.reshape([c]), m);
    });
  }

  /** Reset the running statistics (mean 0, variance 1, count 0). */
  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.weight !== null}, trackRunningStats=${this.runningMean !== null}`;
  }
}

/**
 * Batch normalisation of [N, C] or [N, C, L] input over N (and L).
 *
 * @example
 * ```ts
 * const bn = new BatchNorm1d(16);
 * bn.call(randn([32, 16]));  // training: batch statistics, running stats updated
 * bn.eval().call(randn([4, 16])); // eval: running statistics
 * ```
 */
export class BatchNorm1d extends BatchNormBase {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) {
      throw new ShapeError(
        `BatchNorm1d: expected 2-d [N, C] or 3-d [N, C, L] input, got ${fmtShape(x.shape)}`,
      );
    }
  }
}

/**
 * Batch normalisation of [N, C, H, W] input over N, H and W.
 *
 * @example
 * ```ts
 * new BatchNorm2d(16).call(randn([8, 16, 5, 5])); // [8, 16, 5, 5]
 * ```
 */
export class BatchNorm2d extends BatchNormBase {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 4) {
      throw new ShapeError(`BatchNorm2d: expected 4-d [N, C, H, W] input, got ${fmtShape(x.shape)}`);
    }
  }
}

/** Options of LayerNorm. */
export interface LayerNormOpts {
  eps?: number;
  /** Learn a scale and a shift of shape normalizedShape (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, also learn the shift (default true). */
  bias?: boolean;
  dtype?: DType;
}

/**
 * Layer normalisation over the trailing dims `normalizedShape`:
 * y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased var over those dims of each sample.
 *
 * @example
 * ```ts
 * const ln = new LayerNorm(64);
 * ln.call(randn([8, 10, 64])); // each of the 80 vectors normalised to mean 0, variance 1
 * ```
 */
export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: readonly number[];
  readonly eps: number;

  constructor(normalizedShape: number | readonly number[], opts: LayerNormOpts = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (!this.normalizedShape.every((d) => Number.isInteger(d) && d >= 1)) {
      throw new RangeError(
        `LayerNorm: normalizedShape must be integers >= 1, got ${fmtShape(this.normalizedShape)}`,
      );
    }
    this.eps = opts.eps ?? 1e-5;
    const dtype = opts.dtype ?? "float32";
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? parameter(this.normalizedShape, dtype) : null;
    this.bias = affine && (opts.bias ?? true) ? parameter(this.normalizedShape, dtype) : null;
    if (this.weight !== null) noGrad(() => this.weight!.fill_(1));
  }

  forward(x: Tensor): Tensor {
    const k = this.normalizedShape.length;
    const tail = x.shape.slice(x.ndim - k);
    if (x.ndim < k || tail.some((d, i) => d !== this.normalizedShape[i])) {
      throw new ShapeError(
        `LayerNorm: expected input [..., ${this.normalizedShape.join(", ")}], got ${fmtShape(x.shape)}`,
      );
    }
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `${fmtShape(this.normalizedShape)}, eps=${this.eps}, elementwiseAffine=${this.weight !== null}`;
  }
}
