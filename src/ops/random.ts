/**
 * Sampling from given weights (PyTorch's torch.multinomial), drawn from a seedable `Generator` (the global one
 * of `manualSeed` by default), so a seeded generator gives the same samples on every run and backend. The
 * samples are indices, so nothing here is differentiable.
 */
import { checkNotJitTracing } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fromData } from "../prims/impl.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { defaultGenerator, type Generator } from "./creation.ts";

export interface MultinomialOpts {
  /** Draw with replacement (default false: each category at most once per row). */
  replacement?: boolean;
  /** The generator to draw from (default: the global one). */
  generator?: Generator;
}

/**
 * `numSamples` category indices per row of `probs` (1-d [n] -> [numSamples], 2-d [r, n] -> [r, numSamples],
 * int32), category i drawn with probability probs[i] / sum(probs): the weights need not be normalised but must be
 * finite and non-negative, with a positive sum. Without replacement (the default, as PyTorch) the categories
 * of a row are distinct, drawn one after the other from the weights not yet drawn, so `numSamples` may not
 * exceed the number of categories with a non-zero weight. Not differentiable; not allowed under jit tracing.
 */
export function multinomial(probs: Tensor, numSamples: number, opts: MultinomialOpts = {}): Tensor {
  const op = "multinomial";
  const replacement = opts.replacement ?? false;
  if (probs.dtype === "int32" || probs.dtype === "bool") {
    throw new DTypeError(`${op}: expected a float tensor of weights, got ${probs.dtype}`);
  }
  if (probs.ndim !== 1 && probs.ndim !== 2) {
    throw new ShapeError(
      `${op}: prob_dist must be 1 or 2 dim (a distribution or a batch of them), got shape ${fmtShape(probs.shape)}`,
    );
  }
  if (!Number.isInteger(numSamples) || numSamples <= 0) {
    throw new RangeError(`${op}: cannot sample numSamples <= 0 samples (or a fraction), got ${numSamples}`);
  }
  const n = probs.shape[probs.ndim - 1];
  const rows = probs.ndim === 2 ? probs.shape[0] : 1;
  if (n === 0)
    throw new ShapeError(`${op}: the distribution has no categories (shape ${fmtShape(probs.shape)})`);
  if (!replacement && numSamples > n) {
    throw new RangeError(
      `${op}: cannot sample numSamples > prob_dist.size(-1) samples without replacement (${numSamples} > ${n})`,
    );
  }
  checkNotJitTracing(op);
  const w = Float64Array.from(probs.contiguous().dataSync() as ArrayLike<number>);
  const g = opts.generator ?? defaultGenerator;
  const out = new Int32Array(rows * numSamples);
  const cum = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const row = w.subarray(r * n, (r + 1) * n);
    let total = 0;
    let nonzero = 0;
    for (let i = 0; i < n; i++) {
      const v = row[i];
      if (!(v >= 0) || v === Number.POSITIVE_INFINITY) {
        throw new RangeError(
          `${op}: probability tensor contains either inf, nan or element < 0 (row ${r}: ${v})`,
        );
      }
      total += v;
      if (v > 0) nonzero++;
    }
    if (!(total > 0))
      throw new RangeError(`${op}: invalid multinomial distribution (sum of probabilities <= 0) in row ${r}`);
    if (!replacement && numSamples > nonzero) {
      throw new RangeError(
        `${op}: invalid multinomial distribution (with replacement=False, not enough non-negative category to ` +
          `sample): row ${r} has ${nonzero} categories with a non-zero weight, ${numSamples} samples asked for`,
      );
    }
    for (let s = 0; s < numSamples; s++) {
      // inverse CDF by bisection on the running sums (recomputed after each draw without replacement)
      if (s === 0 || !replacement) {
        let acc = 0;
        for (let i = 0; i < n; i++) {
          acc += row[i];
          cum[i] = acc;
        }
      }
      const u = g.uniform() * cum[n - 1];
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      // the first running sum above u: never a zero-weight category (its sum equals the one before it)
      out[r * numSamples + s] = lo;
      if (!replacement) row[lo] = 0;
    }
  }
  return fromData(out, probs.ndim === 2 ? [rows, numSamples] : [numSamples], "int32");
}
