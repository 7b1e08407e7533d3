/**
 * Loss modules (PyTorch's `nn.MSELoss`, `nn.CrossEntropyLoss`, ...): the functional losses of loss.ts with
 * their options fixed at construction. Called as `criterion.call(input, target)`. Weight tensors are buffers,
 * so they follow `to(dtype)` and appear in the state dict, as in PyTorch.
 */
import type { Tensor } from "../tensor/tensor.ts";
import {
  type BCEOpts,
  type BCEWithLogitsOpts,
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  type CrossEntropyOpts,
  crossEntropy,
  type HuberOpts,
  huberLoss,
  l1Loss,
  mseLoss,
  nllLoss,
  type Reduction,
  type ReductionOpts,
  type SmoothL1Opts,
  smoothL1Loss,
} from "./loss.ts";
import { Module } from "./module.ts";

/** Base of the loss modules: forward(input, target) -> loss. */
export abstract class Loss extends Module<[Tensor, Tensor], Tensor> {
  readonly reduction: Reduction;
  constructor(opts: ReductionOpts = {}) {
    super();
    this.reduction = opts.reduction ?? "mean";
  }
  override extraRepr(): string {
    return `reduction=${this.reduction}`;
  }
}

/**
 * Mean squared error.
 *
 * @example
 * ```ts
 * new MSELoss().call(pred, target);
 * ```
 */
export class MSELoss extends Loss {
  forward(input: Tensor, target: Tensor): Tensor {
    return mseLoss(input, target, { reduction: this.reduction });
  }
}

/**
 * Mean absolute error.
 *
 * @example
 * ```ts
 * new L1Loss({ reduction: "sum" }).call(pred, target);
 * ```
 */
export class L1Loss extends Loss {
  forward(input: Tensor, target: Tensor): Tensor {
    return l1Loss(input, target, { reduction: this.reduction });
  }
}

/**
 * Huber loss (quadratic below delta, linear above).
 *
 * @example
 * ```ts
 * new HuberLoss({ delta: 0.5 }).call(pred, target);
 * ```
 */
export class HuberLoss extends Loss {
  readonly delta: number;
  constructor(opts: HuberOpts = {}) {
    super(opts);
    this.delta = opts.delta ?? 1;
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return huberLoss(input, target, { reduction: this.reduction, delta: this.delta });
  }
}

/**
 * Smooth L1 loss (Huber divided by beta).
 *
 * @example
 * ```ts
 * new SmoothL1Loss({ beta: 0.1 }).call(pred, target);
 * ```
 */
export class SmoothL1Loss extends Loss {
  readonly beta: number;
  constructor(opts: SmoothL1Opts = {}) {
    super(opts);
    this.beta = opts.beta ?? 1;
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return smoothL1Loss(input, target, { reduction: this.reduction, beta: this.beta });
  }
}

/**
 * Binary cross-entropy on probabilities.
 *
 * @example
 * ```ts
 * new BCELoss().call(model.call(x).sigmoid(), y);
 * ```
 */
export class BCELoss extends Loss {
  weight: Tensor | null;
  constructor(opts: BCEOpts = {}) {
    super(opts);
    this.weight = this.registerBuffer("weight", opts.weight ?? null);
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return binaryCrossEntropy(input, target, { reduction: this.reduction, weight: this.weight ?? undefined });
  }
}

/**
 * Binary cross-entropy on logits (stable), with optional weight and posWeight.
 *
 * @example
 * ```ts
 * new BCEWithLogitsLoss({ posWeight: tensor([3]) }).call(logits, y);
 * ```
 */
export class BCEWithLogitsLoss extends Loss {
  weight: Tensor | null;
  posWeight: Tensor | null;
  constructor(opts: BCEWithLogitsOpts = {}) {
    super(opts);
    this.weight = this.registerBuffer("weight", opts.weight ?? null);
    this.posWeight = this.registerBuffer("posWeight", opts.posWeight ?? null);
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return binaryCrossEntropyWithLogits(input, target, {
      reduction: this.reduction,
      weight: this.weight ?? undefined,
      posWeight: this.posWeight ?? undefined,
    });
  }
}

/**
 * Cross-entropy from logits with class-index (int32) or class-probability (float) targets.
 *
 * @example
 * ```ts
 * const criterion = new CrossEntropyLoss({ labelSmoothing: 0.1 });
 * criterion.call(logits, labels); // logits [N, C], labels int32 [N]
 * ```
 */
export class CrossEntropyLoss extends Loss {
  weight: Tensor | null;
  readonly ignoreIndex: number;
  readonly labelSmoothing: number;
  constructor(opts: CrossEntropyOpts = {}) {
    super(opts);
    this.weight = this.registerBuffer("weight", opts.weight ?? null);
    this.ignoreIndex = opts.ignoreIndex ?? -100;
    this.labelSmoothing = opts.labelSmoothing ?? 0;
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return crossEntropy(input, target, {
      reduction: this.reduction,
      weight: this.weight ?? undefined,
      ignoreIndex: this.ignoreIndex,
      labelSmoothing: this.labelSmoothing,
    });
  }
  override extraRepr(): string {
    return `reduction=${this.reduction}, ignoreIndex=${this.ignoreIndex}, labelSmoothing=${this.labelSmoothing}`;
  }
}

/**
 * Negative log-likelihood of class indices given log-probabilities.
 *
 * @example
 * ```ts
 * new NLLLoss().call(logits.logSoftmax(1), labels);
 * ```
 */
export class NLLLoss extends Loss {
  weight: Tensor | null;
  readonly ignoreIndex: number;
  constructor(opts: Omit<CrossEntropyOpts, "labelSmoothing"> = {}) {
    super(opts);
    this.weight = this.registerBuffer("weight", opts.weight ?? null);
    this.ignoreIndex = opts.ignoreIndex ?? -100;
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return nllLoss(input, target, {
      reduction: this.reduction,
      weight: this.weight ?? undefined,
      ignoreIndex: this.ignoreIndex,
    });
  }
}
