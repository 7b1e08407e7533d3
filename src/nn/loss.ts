/**
 * Loss functions (PyTorch's `torch.nn.functional` losses), with reduction "mean" (default), "sum" or "none".
 *
 * Everything is a composition of differentiable ops, so every loss works with `backward()`, `grad`, `vjp`,
 * `jvp` and their nestings. The numerically delicate ones are written in their stable forms:
 * - cross-entropy goes through logSoftmax (the fused primitive: (x - max) - log(sum(exp(x - max))) in one
 *   kernel, its backward in one more), never log(softmax(x));
 * - BCE with logits is softplus(x) - x y = max(x, 0) - x y + log1p(exp(-|x|)), finite for any |x|;
 * - BCE on probabilities clamps each log term at -100, as PyTorch, so p = 0 or 1 gives a finite loss.
 * Shapes and dtypes are checked up front; errors name the loss, the shapes and what was expected.
 */
import { castFloat32 } from "../amp.ts";
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { gt, log, where } from "../ops/math.ts";
import { contiguousData, hostValues } from "../ops/shape.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** How per-element losses are combined. */
export type Reduction = "mean" | "sum" | "none";

/** The reduction option shared by every loss. */
export interface ReductionOpts {
  reduction?: Reduction;
}

function reduce(op: string, loss: Tensor, reduction: Reduction | undefined): Tensor {
  switch (reduction ?? "mean") {
    case "mean":
      return loss.mean();
    case "sum":
      return loss.sum();
    case "none":
      return loss;
    default:
      throw new RangeError(`${op}: reduction must be "mean", "sum" or "none", got "${String(reduction)}"`);
  }
}

function checkFloat(op: string, what: string, t: Tensor): void {
  if (!isFloat(t.dtype)) {
    throw new DTypeError(
      `${op}: ${what} must be float32 or float64, got ${t.dtype} of shape ${fmtShape(t.shape)}`,
    );
  }
}

function checkPair(op: string, input: Tensor, target: Tensor): void {
  checkFloat(op, "input", input);
  if (!shapesEqual(input.shape, target.shape)) {
    throw new ShapeError(
      `${op}: input and target must have the same shape, got input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)}`,
    );
  }
  if (target.dtype === "bool") {
    throw new DTypeError(`${op}: target must be numeric, got bool (convert it with .float())`);
  }
}

function checkWeight(op: string, name: string, w: Tensor, shape: readonly number[]): void {
  checkFloat(op, name, w);
  if (w.ndim > shape.length || w.shape.some((d, i) => d !== 1 && d !== shape[shape.length - w.ndim + i])) {
    throw new ShapeError(
      `${op}: ${name} ${fmtShape(w.shape)} does not broadcast to the loss shape ${fmtShape(shape)}`,
    );
  }
}

/**
 * Mean squared error: (input - target)^2, reduced.
 *
 * @example
 * ```ts
 * mseLoss(tensor([1, 2]), tensor([1, 4])); // 2
 * ```
 */
export function mseLoss(input: Tensor, target: Tensor, opts: ReductionOpts = {}): Tensor {
  input = castFloat32(input); // autocast computes losses in float32 (src/amp.ts)
  target = castFloat32(target);
  checkPair("mseLoss", input, target);
  return reduce("mseLoss", input.sub(target).square(), opts.reduction);
}

/**
 * Mean absolute error: |input - target|, reduced (derivative 0 where they are equal, as PyTorch).
 *
 * @example
 * ```ts
 * l1Loss(tensor([1, 2]), tensor([1, 4])); // 1
 * ```
 */
export function l1Loss(input: Tensor, target: Tensor, opts: ReductionOpts = {}): Tensor {
  checkPair("l1Loss", input, target);
  return reduce("l1Loss", input.sub(target).abs(), opts.reduction);
}

/** Options of huberLoss. */
export interface HuberOpts extends ReductionOpts {
  /** Where the loss turns from quadratic to linear (default 1). */
  delta?: number;
}

/**
 * Huber loss: with d = input - target, 0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere.
 *
 * @example
 * ```ts
 * huberLoss(tensor([0, 0]), tensor([0.5, 3])); // mean(0.125, 2.5) = 1.3125
 * ```
 */
export function huberLoss(input: Tensor, target: Tensor, opts: HuberOpts = {}): Tensor {
  checkPair("huberLoss", input, target);
  const delta = opts.delta ?? 1;
  if (!(delta > 0)) throw new RangeError(`huberLoss: delta must be > 0, got ${delta}`);
  const d = input.sub(target);
  const a = d.abs();
  const loss = where(a.lt(delta), d.square().mul(0.5), a.sub(0.5 * delta).mul(delta));
  return reduce("huberLoss", loss, opts.reduction);
}

/** Options of smoothL1Loss. */
export interface SmoothL1Opts extends ReductionOpts {
  /** Width of the quadratic zone (default 1); 0 gives the L1 loss. */
  beta?: number;
}

/**
 * Smooth L1: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (huberLoss / beta with delta = beta).
 *
 * @example
 * ```ts
 * smoothL1Loss(tensor([0, 0]), tensor([0.5, 3])); // mean(0.125, 2.5) = 1.3125
 * ```
 */
export function smoothL1Loss(input: Tensor, target: Tensor, opts: SmoothL1Opts = {}): Tensor {
  checkPair("smoothL1Loss", input, target);
  const beta = opts.beta ?? 1;
  if (!(beta >= 0)) throw new RangeError(`smoothL1Loss: beta must be >= 0, got ${beta}`);
  const d = input.sub(target);
  const a = d.abs();
  if (beta === 0) return reduce("smoothL1Loss", a, opts.reduction);
  const loss = where(a.lt(beta), d.square().mul(0.5 / beta), a.sub(0.5 * beta));
  return reduce("smoothL1Loss", loss, opts.reduction);
}

/** Options of binaryCrossEntropy. */
export interface BCEOpts extends ReductionOpts {
  /** Per-element rescaling weight, broadcast to the input's shape. */
  weight?: Tensor;
}

/** max(log(p), -100), with a finite derivative (0) where p = 0 instead of 0 * inf. */
function clampedLog(p: Tensor): Tensor {
  const pos = gt(p, 0);
  return where(pos, log(where(pos, p, 1)), -100).maximum(-100);
}

function checkUnit(op: string, what: string, t: Tensor): void {
  const data = contiguousData(t, op);
  for (let i = 0; i < data.length; i++) {
    if (!(data[i] >= 0 && data[i] <= 1)) {
      throw new RangeError(
        `${op}: all elements of ${what} should be between 0 and 1, found ${data[i]} (use binaryCrossEntropyWithLogits on logits)`,
      );
    }
  }
}

/**
 * Binary cross-entropy on probabilities: -(y log p + (1 - y) log(1 - p)), each log clamped at -100 (PyTorch).
 * Prefer `binaryCrossEntropyWithLogits`, which is stable for logits of any size.
 *
 * @example
 * ```ts
 * binaryCrossEntropy(tensor([0.9, 0.2]), tensor([1, 0])); // -(log 0.9 + log 0.8) / 2
 * ```
 */
export function binaryCrossEntropy(input: Tensor, target: Tensor, opts: BCEOpts = {}): Tensor {
  const op = "binaryCrossEntropy";
  checkPair(op, input, target);
  checkUnit(op, "input", input);
  checkUnit(op, "target", target);
  let loss = target
    .mul(clampedLog(input))
    .add(
      target
        .neg()
        .add(1)
        .mul(clampedLog(input.neg().add(1))),
    )
    .neg();
  if (opts.weight !== undefined) {
    checkWeight(op, "weight", opts.weight, input.shape);
    loss = loss.mul(opts.weight);
  }
  return reduce(op, loss, opts.reduction);
}

/** Options of binaryCrossEntropyWithLogits. */
export interface BCEWithLogitsOpts extends BCEOpts {
  /** Weight of the positive examples, broadcast along the last (class) dim: > 1 raises recall. */
  posWeight?: Tensor;
}

/**
 * Binary cross-entropy on logits x with targets y in [0, 1], stably:
 * max(x, 0) - x y + log1p(exp(-|x|)) (= softplus(x) - x y); with posWeight w,
 * (1 - y) x + (1 + (w - 1) y) softplus(-x). Finite and exact at |x| = 100 and beyond.
 *
 * @example
 * ```ts
 * binaryCrossEntropyWithLogits(tensor([100, -100]), tensor([1, 0])); // ~ 0 (no overflow)
 * ```
 */
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  opts: BCEWithLogitsOpts = {},
): Tensor {
  const op = "binaryCrossEntropyWithLogits";
  checkPair(op, input, target);
  let loss: Tensor;
  if (opts.posWeight !== undefined) {
    checkWeight(op, "posWeight", opts.posWeight, input.shape);
    const logWeight = opts.posWeight.sub(1).mul(target).add(1);
    loss = target.neg().add(1).mul(input).add(logWeight.mul(input.neg().softplus()));
  } else {
    loss = input.softplus().sub(input.mul(target));
  }
  if (opts.weight !== undefined) {
    checkWeight(op, "weight", opts.weight, input.shape);
    loss = loss.mul(opts.weight);
  }
  return reduce(op, loss, opts.reduction);
}

/** Options of crossEntropy and nllLoss. */
export interface CrossEntropyOpts extends ReductionOpts {
  /** A rescaling weight per class, shape [C]. */
  weight?: Tensor;
  /** Class-index targets equal to this are ignored; "mean" averages over the rest (default -100). */
  ignoreIndex?: number;
  /** Mix the target with the uniform distribution: (1 - eps) target + eps / C (default 0). */
  labelSmoothing?: number;
}

/** Input [C] (unbatched), [N, C] or [N, C, d1, ...]: the class dim is 0 for 1-d input, 1 otherwise. */
function classDimOf(op: string, input: Tensor): number {
  checkFloat(op, "input", input);
  if (input.ndim === 0)
    throw new ShapeError(`${op}: input must be [C], [N, C] or [N, C, d1, ...], got a scalar`);
  return input.ndim === 1 ? 0 : 1;
}

/**
 * The class-index path shared by crossEntropy and nllLoss: logp holds log-probabilities.
 * nll_i = -w[t_i] logp[i, t_i] over non-ignored i; "mean" divides by sum_i w[t_i] (PyTorch's weighted mean).
 * Label smoothing eps adds eps / C times the smoothing term -sum_c w_c logp[i, c], with the same reduction.
 */
function nllFromLogProbs(op: string, logp: Tensor, target: Tensor, opts: CrossEntropyOpts): Tensor {
  const cd = logp.ndim === 1 ? 0 : 1;
  const c = logp.shape[cd];
  const expected = logp.shape.filter((_, i) => i !== cd);
  if (!shapesEqual(target.shape, expected)) {
    const probs = op === "crossEntropy" ? ` or ${fmtShape(logp.shape)} (class probabilities)` : "";
    throw new ShapeError(
      `${op}: input ${fmtShape(logp.shape)} expects target ${fmtShape(expected)} (class indices)${probs}, got ${fmtShape(target.shape)}`,
    );
  }
  const ignore = opts.ignoreIndex ?? -100;
  // traced targets (jit, makeJaxpr): which are ignored is unknown until the program runs, so the general path
  // below (which handles both) is taken, and the range is checked by the gather kernel at run time
  const data = hostValues(target, op);
  let ignored = data === null;
  for (let i = 0; data !== null && i < data.length; i++) {
    if (data[i] === ignore) ignored = true;
    else if (data[i] < 0 || data[i] >= c) {
      throw new RangeError(
        `${op}: target ${data[i]} is out of range for ${c} classes (ignoreIndex ${ignore})`,
      );
    }
  }
  const weight = opts.weight;
  if (weight !== undefined) {
    checkFloat(op, "weight", weight);
    if (weight.ndim !== 1 || weight.shape[0] !== c) {
      throw new ShapeError(
        `${op}: weight must have shape [${c}] (one per class), got ${fmtShape(weight.shape)}`,
      );
    }
  }
  const eps = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? "mean";
  if (!ignored && weight === undefined && eps === 0) {
    // The common case (every target counts, no weights, no smoothing): -logp[i, t_i] with a plain mean, in
    // a third of the kernels of the general path below (no mask, no per-sample weights). x / -n is -(x / n)
    // exactly, so this agrees with the general path to the last bit.
    const nll = logp.gather(cd, target.unsqueeze(cd)).squeeze(cd);
    if (reduction === "mean") return nll.sum().div(-nll.size);
    if (reduction === "sum") return nll.sum().neg();
    return reduce(op, nll.neg(), reduction);
  }
  const valid = target.ne(ignore);
  const safe = where(valid, target, 0);
  const picked = logp.gather(cd, safe.unsqueeze(cd)).squeeze(cd);
  let w = valid.to(logp.dtype);
  if (weight !== undefined) w = w.mul(weight.indexSelect(0, safe.reshape([safe.size])).reshape(safe.shape));
  const nll = picked.mul(w).neg();
  const red = (l: Tensor) => (reduction === "mean" ? l.sum().div(w.sum()) : reduce(op, l, reduction));
  if (eps === 0) return red(nll);
  const wc =
    weight === undefined ? logp : logp.mul(weight.reshape(logp.shape.map((s, i) => (i === cd ? s : 1))));
  const smooth = wc.sum(cd).neg().mul(valid.to(logp.dtype));
  return red(nll)
    .mul(1 - eps)
    .add(red(smooth).mul(eps / c));
}

function checkSmoothing(op: string, eps: number | undefined): void {
  if (eps !== undefined && !(eps >= 0 && eps <= 1)) {
    throw new RangeError(`${op}: labelSmoothing must be in [0, 1], got ${eps}`);
  }
}

/**
 * Cross-entropy from logits (unnormalised scores), computed through logSoftmax. input: [C], [N, C] or
 * [N, C, d1, ...] (class dim 1). target: int32 class indices of the input's shape without the class dim, or
 * float class probabilities of the input's shape. Options: per-class `weight`, `ignoreIndex` (indices only),
 * `labelSmoothing`, `reduction`.
 *
 * With indices and no options the loss of sample i is logsumexp(x_i) - x_i[t_i]; with label smoothing eps it is
 * (1 - eps) nll_i + eps / C * sum_c (logsumexp(x_i) - x_i[c]).
 *
 * @example
 * ```ts
 * const logits = tensor([[2, 1, 0], [0, 0, 3]]);
 * crossEntropy(logits, tensor([0, 2], { dtype: "int32" }));             // mean of the two -log softmax
 * crossEntropy(logits, tensor([0, -100], { dtype: "int32" }));          // second sample ignored
 * crossEntropy(logits, tensor([[1, 0, 0], [0, 0.5, 0.5]]));             // probability targets
 * ```
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOpts = {}): Tensor {
  const op = "crossEntropy";
  const cd = classDimOf(op, input);
  checkSmoothing(op, opts.labelSmoothing);
  const logp = input.logSoftmax(cd);
  if (target.dtype === "int32") return nllFromLogProbs(op, logp, target, opts);
  if (!isFloat(target.dtype)) {
    throw new DTypeError(
      `${op}: target must be int32 class indices or float class probabilities, got ${target.dtype} of shape ${fmtShape(target.shape)}`,
    );
  }
  if (!shapesEqual(target.shape, input.shape)) {
    throw new ShapeError(
      `${op}: float (class probability) target must have the input's shape ${fmtShape(input.shape)}, got ${fmtShape(target.shape)}; class indices must be int32`,
    );
  }
  const c = input.shape[cd];
  const eps = opts.labelSmoothing ?? 0;
  const y = eps === 0 ? target : target.mul(1 - eps).add(eps / c);
  let terms = logp.mul(y);
  if (opts.weight !== undefined) {
    const wt = opts.weight;
    checkFloat(op, "weight", wt);
    if (wt.ndim !== 1 || wt.shape[0] !== c) {
      throw new ShapeError(`${op}: weight must have shape [${c}] (one per class), got ${fmtShape(wt.shape)}`);
    }
    terms = terms.mul(wt.reshape(input.shape.map((s, i) => (i === cd ? s : 1))));
  }
  return reduce(op, terms.sum(cd).neg(), opts.reduction);
}

/**
 * Negative log-likelihood of int32 class indices given log-probabilities (e.g. the output of logSoftmax):
 * -input[i, t_i], with per-class `weight` and `ignoreIndex`. crossEntropy(x, t) = nllLoss(logSoftmax(x), t).
 *
 * @example
 * ```ts
 * nllLoss(logits.logSoftmax(1), tensor([0, 2], { dtype: "int32" }));
 * ```
 */
export function nllLoss(
  input: Tensor,
  target: Tensor,
  opts: Omit<CrossEntropyOpts, "labelSmoothing"> = {},
): Tensor {
  const op = "nllLoss";
  input = castFloat32(input); // autocast computes losses in float32 (src/amp.ts)
  classDimOf(op, input);
  if (target.dtype !== "int32") {
    throw new DTypeError(
      `${op}: target must be int32 class indices, got ${target.dtype} of shape ${fmtShape(target.shape)}`,
    );
  }
  return nllFromLogProbs(op, input, target, opts);
}
