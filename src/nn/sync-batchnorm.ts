/**
 * SyncBatchNorm: batch normalisation whose batch statistics are computed over the whole global batch of a
 * data-parallel job (every rank's share), not per process. Same parameters, buffers and state-dict names as
 * BatchNorm1d/2d, so checkpoints move between them; `SyncBatchNorm.convertSyncBatchnorm(model)` swaps every
 * BatchNorm of a model for one.
 *
 * Per channel, each rank sums x and x^2 over its batch and positions; one all-reduce (sum) of [sum, sum of
 * squares, count] gives the global mean and biased variance, var = E[x^2] - mean^2. The all-reduce is
 * differentiable (its adjoint is again an all-reduce sum of the cotangents), so the gradients are those of
 * BatchNorm on the global batch. This module holds no communication code: the distributed layer (Node
 * only) installs the all-reduce when it loads (`setSyncBatchNormReducer`); without a process group, or with
 * one process, the statistics are this process's, as BatchNorm's.
 */
import { noGrad } from "../core/trace.ts";
import { ShapeError } from "../errors.ts";
import { full, ones, tensor, zeros } from "../ops/creation.ts";
import { cat } from "../ops/shape.ts";
import { fmtShape, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type AnyModule, Module, parameter } from "./module.ts";
import { BatchNorm1d, BatchNorm2d, type BatchNormOpts } from "./norm.ts";

/** A differentiable all-reduce (sum) over the process group, or null when there is none to reduce over. */
export type SyncReducer = (t: Tensor) => Tensor | null;
let reducer: SyncReducer | null = null;

/** @internal Installed by the distributed layer (src/distributed). */
export function setSyncBatchNormReducer(r: SyncReducer | null): void {
  reducer = r;
}

/**
 * Batch normalisation over the global batch of all ranks: input [N, C, ...] normalised per channel C.
 *
 * @example
 * ```ts
 * const model = nn.SyncBatchNorm.convertSyncBatchnorm(net); // every BatchNorm1d/2d replaced
 * const ddp = new distributed.DistributedDataParallel(model);
 * ```
 */
export class SyncBatchNorm extends Module {
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
      throw new RangeError(`SyncBatchNorm: numFeatures must be an integer >= 1, got ${numFeatures}`);
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

  forward(x: Tensor): Tensor {
    const c = this.numFeatures;
    if (x.ndim < 2 || x.shape[1] !== c) {
      throw new ShapeError(
        `SyncBatchNorm: expected input [N, ${c}, ...] (channels in dim 1), got ${fmtShape(x.shape)}`,
      );
    }
    const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
    const bshape = x.shape.map((s, i) => (i === 1 ? s : 1));
    let mean: Tensor;
    let variance: Tensor;
    if (this.training || this.runningMean === null) {
      const nLocal = sizeOf(x.shape) / c;
      const stats = cat([x.sum(axes), x.square().sum(axes), tensor([nLocal], { dtype: x.dtype })], 0);
      const global = reducer?.(stats) ?? stats;
      const n = global.narrow(0, 2 * c, 1);
      mean = global.narrow(0, 0, c).div(n);
      variance = global.narrow(0, c, c).div(n).sub(mean.square());
      const count = n.item();
      if (this.training && count <= 1) {
        throw new ShapeError(
          `SyncBatchNorm: expected more than 1 value per channel over all ranks when training, got input ${fmtShape(x.shape)}`,
        );
      }
      if (this.training && this.runningMean !== null) this.updateRunning(mean, variance, count);
      mean = mean.reshape(bshape);
      variance = variance.reshape(bshape);
    } else {
      mean = this.runningMean.reshape(bshape);
      variance = this.runningVar!.reshape(bshape);
    }
    let scale = variance.add(this.eps).rsqrt();
    if (this.weight !== null) scale = scale.mul(this.weight.reshape(bshape));
    let y = x.sub(mean).mul(scale);
    if (this.bias !== null) y = y.add(this.bias.reshape(bshape));
    return y;
  }

  private updateRunning(mean: Tensor, variance: Tensor, n: number): void {
    noGrad(() => {
      const nbt = this.numBatchesTracked!;
      nbt.add_(1);
      const m = this.momentum ?? 1 / nbt.item();
      this.runningMean!.mul_(1 - m).add_(mean.detach(), m);
      this.runningVar!.mul_(1 - m).add_(variance.detach().mul(n / (n - 1)), m);
    });
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}, affine=${this.weight !== null}, trackRunningStats=${this.runningMean !== null}`;
  }

  /**
   * Turn every BatchNorm1d/BatchNorm2d in `module` (itself included) into a SyncBatchNorm, in place: each
   * such layer object becomes a SyncBatchNorm (its class changes; its parameters, buffers, options and every
   * reference to it stay), so layers held by any container, including Sequential's private list, are
   * converted. Returns `module`.
   */
  static convertSyncBatchnorm<M extends AnyModule>(module: M): M {
    for (const m of module.modules()) {
      if (m instanceof BatchNorm1d || m instanceof BatchNorm2d)
        Object.setPrototypeOf(m, SyncBatchNorm.prototype);
    }
    return module;
  }
}
