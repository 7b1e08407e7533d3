/**
 * Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_), the standard guard against
 * exploding gradients in RNNs and early training. Both act in place on `p.grad` and skip null gradients.
 */
import { noGrad } from "../core/trace.ts";
import { Tensor } from "../tensor/tensor.ts";

function gradsOf(op: string, params: Iterable<Tensor>): Tensor[] {
  const out: Tensor[] = [];
  for (const p of params) {
    if (!(p instanceof Tensor)) throw new TypeError(`${op}: expected tensors, got ${typeof p}`);
    if (p.grad !== null) out.push(p.grad);
  }
  return out;
}

/**
 * Rescale the gradients of `params` so that their joint norm (the `normType`-norm of the concatenation of all
 * gradients; Infinity for the max-abs norm) is at most `maxNorm`: when the total norm exceeds it, every gradient
 * is multiplied by maxNorm / (total + 1e-6). Returns the total norm before clipping, as PyTorch.
 * With `errorIfNonfinite`, a NaN or infinite total norm throws instead of poisoning the gradients.
 *
 * @example
 * ```ts
 * loss.backward();
 * const norm = clipGradNorm_(params, 1.0);
 * opt.step();
 * ```
 */
export function clipGradNorm_(
  params: Iterable<Tensor>,
  maxNorm: number,
  normType = 2,
  errorIfNonfinite = false,
): number {
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm_: maxNorm must be >= 0, got ${maxNorm}`);
  if (!(normType > 0))
    throw new RangeError(`clipGradNorm_: normType must be > 0 or Infinity, got ${normType}`);
  const grads = gradsOf("clipGradNorm_", params);
  if (grads.length === 0) return 0;
  // total = || (||g_1||, ..., ||g_k||) ||_p, which equals the p-norm of all entries together
  const norms = noGrad(() => grads.map((g) => g.detach().norm(normType).item() as number));
  let total: number;
  if (normType === Number.POSITIVE_INFINITY) total = Math.max(...norms);
  else if (normType === 2) total = Math.sqrt(norms.reduce((s, n) => s + n * n, 0));
  else total = norms.reduce((s, n) => s + n ** normType, 0) ** (1 / normType);
  if (errorIfNonfinite && !Number.isFinite(total)) {
    throw new RangeError(
      `clipGradNorm_: the total norm of order ${normType} of the gradients is ${total}; ` +
        "the gradients cannot be clipped (pass errorIfNonfinite = false to scale them anyway)",
    );
  }
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1 || Number.isNaN(coef)) {
    noGrad(() => {
      for (const g of grads) g.mul_(coef);
    });
  }
  return total;
}

/**
 * Clamp every gradient entry of `params` into [-clipValue, clipValue], in place.
 *
 * @example
 * ```ts
 * loss.backward();
 * clipGradValue_(params, 0.5);
 * ```
 */
export function clipGradValue_(params: Iterable<Tensor>, clipValue: number): void {
  if (!(clipValue >= 0)) throw new RangeError(`clipGradValue_: clipValue must be >= 0, got ${clipValue}`);
  const grads = gradsOf("clipGradValue_", params);
  noGrad(() => {
    for (const g of grads) g.copy_(g.detach().clamp(-clipValue, clipValue));
  });
}
