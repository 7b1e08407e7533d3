/**
 * L1 and L2 penalties as differentiable loss terms. Adding them to the loss is the optimizer-independent way
 * to regularise (the "weightDecay" of SGD/Adam is the same L2 term folded into the gradient, and AdamW's is a
 * different, decoupled decay). L1 pushes weights to exactly zero (sparsity); L2 shrinks them proportionally.
 */
import { full } from "../ops/creation.ts";
import { Tensor } from "../tensor/tensor.ts";

function checkArgs(op: string, params: Iterable<Tensor>, lambda: number): Tensor[] {
  if (!Number.isFinite(lambda) || lambda < 0)
    throw new RangeError(`${op}: lambda must be finite and >= 0, got ${lambda}`);
  const ps = Array.from(params);
  ps.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new TypeError(`${op}: parameter ${i} is not a Tensor`);
  });
  return ps;
}

/** The sum of scalar terms (a float32 zero when there are none). */
function sumTerms(terms: Tensor[]): Tensor {
  if (terms.length === 0) return full([], 0, { dtype: "float32" });
  let s = terms[0];
  for (let i = 1; i < terms.length; i++) s = s.add(terms[i]);
  return s;
}

/**
 * lambda * sum_i |p_i|, summed over every entry of every parameter: a scalar to add to the loss.
 * Its (sub)gradient is lambda * sign(p) (0 at 0, the library's kink convention).
 *
 * @example
 * ```ts
 * const loss = mse(model(x), y).add(l1Penalty(model.parameters(), 1e-4));
 * ```
 */
export function l1Penalty(params: Iterable<Tensor>, lambda: number): Tensor {
  const ps = checkArgs("l1Penalty", params, lambda);
  return sumTerms(ps.map((p) => p.abs().sum().mul(lambda)));
}

/**
 * (lambda / 2) * sum_i p_i^2 over every entry of every parameter: a scalar to add to the loss. The factor 1/2
 * makes its gradient lambda * p, so it matches `weightDecay: lambda` of SGD and Adam exactly.
 *
 * @example
 * ```ts
 * const loss = crossEntropy(logits, y).add(l2Penalty(model.parameters(), 5e-4));
 * ```
 */
export function l2Penalty(params: Iterable<Tensor>, lambda: number): Tensor {
  const ps = checkArgs("l2Penalty", params, lambda);
  return sumTerms(
    ps.map((p) =>
      p
        .square()
        .sum()
        .mul(lambda / 2),
    ),
  );
}
