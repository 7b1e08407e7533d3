/**
 * The learning-rate range test (Leslie Smith 2015, "Cyclical Learning Rates", popularised by fastai's lr_find):
 * the lectures' "babysitting" of the step size made systematic. Train for a few steps while the learning rate
 * grows exponentially from minLr to maxLr, record the loss, and read the good range off the curve: too small and
 * the loss barely moves, too large and it blows up; the best lr is where the loss falls fastest.
 *
 * The raw losses are noisy (each is one mini-batch), so the curve is smoothed with a bias-corrected exponential
 * moving average (avg <- beta * avg + (1 - beta) * loss; smoothed = avg / (1 - beta^k)). The test stops early
 * when the smoothed loss exceeds divergeFactor x the best smoothed loss (or is not finite).
 *
 * Suggestions: "steepest", the lr where d(smoothed loss)/d(log lr) is most negative (central differences, as
 * numpy.gradient), and "minOver10", a tenth of the lr at the lowest smoothed loss (the rule of thumb that the
 * minimum is already too large). The caller saves and restores the model and optimizer around the test.
 */
import { Tensor } from "../tensor/tensor.ts";
import { checkRange } from "./optimizer.ts";

/** Options of lrRangeTest. */
export interface LrRangeTestOptions {
  /** One training step at learning rate `lr` (set it in the optimizer's groups, step, return the loss). */
  step: (lr: number) => number | Tensor;
  /** First lr (default 1e-7). */
  minLr?: number;
  /** Last lr (default 10). */
  maxLr?: number;
  /** Number of steps, lrs spaced evenly in log scale from minLr to maxLr inclusive (default 100). */
  numSteps?: number;
  /** EMA coefficient of the smoothing, 0 for none (default 0.98; use smaller values for short tests). */
  beta?: number;
  /** Stop when the smoothed loss exceeds divergeFactor x its minimum (default 4). */
  divergeFactor?: number;
  /** Which rule gives `suggestion` (default "steepest"). */
  suggest?: "steepest" | "minOver10";
}

/** The curve and the suggested lr. */
export interface LrRangeTestResult {
  /** Learning rates tried, in order (up to and including the step that diverged). */
  lrs: number[];
  /** Smoothed loss at each lr. */
  losses: number[];
  /** Raw loss at each lr. */
  rawLosses: number[];
  /** The suggested learning rate (by the chosen rule). */
  suggestion: number;
  /** lr of the steepest descent of the smoothed curve. */
  steepest: number;
  /** A tenth of the lr of the lowest smoothed loss. */
  minOver10: number;
  /** Whether the test stopped early because the loss diverged. */
  diverged: boolean;
}

/** Index of the most negative slope of ys against xs (numpy.gradient: one-sided at the ends). */
function steepestIndex(xs: number[], ys: number[]): number {
  const n = ys.length;
  let best = 0;
  let bestSlope = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const lo = Math.max(0, i - 1);
    const hi = Math.min(n - 1, i + 1);
    const slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo]);
    if (slope < bestSlope) {
      bestSlope = slope;
      best = i;
    }
  }
  return best;
}

/**
 * Run the learning-rate range test.
 *
 * @example
 * ```ts
 * const snapshot = saveWeights(model);
 * const { suggestion, lrs, losses } = lrRangeTest({
 *   step: (lr) => {
 *     for (const g of opt.paramGroups) g.lr = lr;
 *     opt.zeroGrad();
 *     const loss = lossFn(model.forward(x), y);
 *     loss.backward();
 *     opt.step();
 *     return loss;
 *   },
 *   minLr: 1e-6, maxLr: 1, numSteps: 100,
 * });
 * restoreWeights(model, snapshot);
 * ```
 */
export function lrRangeTest(opts: LrRangeTestOptions): LrRangeTestResult {
  const minLr = opts.minLr ?? 1e-7;
  const maxLr = opts.maxLr ?? 10;
  const n = opts.numSteps ?? 100;
  const beta = opts.beta ?? 0.98;
  const divergeFactor = opts.divergeFactor ?? 4;
  const op = "lrRangeTest";
  if (typeof opts.step !== "function") throw new TypeError(`${op}: expected a step(lr) => loss function`);
  checkRange(op, "minLr", minLr, minLr > 0 && Number.isFinite(minLr), "a finite number > 0");
  checkRange(
    op,
    "maxLr",
    maxLr,
    maxLr > minLr && Number.isFinite(maxLr),
    `a finite number > minLr (${minLr})`,
  );
  checkRange(op, "numSteps", n, Number.isInteger(n) && n >= 2, "an integer >= 2");
  checkRange(op, "beta", beta, beta >= 0 && beta < 1, "a number in [0, 1)");
  checkRange(op, "divergeFactor", divergeFactor, divergeFactor > 1, "> 1");

  const lrs: number[] = [];
  const losses: number[] = [];
  const rawLosses: number[] = [];
  const ratio = maxLr / minLr;
  let avg = 0;
  let best = Number.POSITIVE_INFINITY;
  let diverged = false;
  for (let i = 0; i < n; i++) {
    // lr_i = minLr * (maxLr / minLr)^(i / (n - 1)): even spacing in log(lr)
    const lr = i === n - 1 ? maxLr : minLr * ratio ** (i / (n - 1));
    const out = opts.step(lr);
    const raw = out instanceof Tensor ? Number(out.item()) : out;
    avg = beta * avg + (1 - beta) * raw;
    const smoothed = avg / (1 - beta ** (i + 1));
    lrs.push(lr);
    rawLosses.push(raw);
    losses.push(smoothed);
    if (!Number.isFinite(smoothed) || (i > 0 && smoothed > divergeFactor * best)) {
      diverged = true;
      break;
    }
    if (smoothed < best) best = smoothed;
  }

  // suggestions from the part of the curve before divergence
  const m = diverged ? lrs.length - 1 : lrs.length;
  const logLrs = lrs.slice(0, m).map(Math.log10);
  const ys = losses.slice(0, m);
  let minIdx = 0;
  for (let i = 1; i < m; i++) if (ys[i] < ys[minIdx]) minIdx = i;
  const minOver10 = lrs[minIdx] / 10;
  const steepest = m >= 2 ? lrs[steepestIndex(logLrs, ys)] : minOver10;
  const rule = opts.suggest ?? "steepest";
  if (rule !== "steepest" && rule !== "minOver10") {
    throw new RangeError(`${op}: suggest must be "steepest" or "minOver10", got ${String(rule)}`);
  }
  return {
    lrs,
    losses,
    rawLosses,
    suggestion: rule === "steepest" ? steepest : minOver10,
    steepest,
    minOver10,
    diverged,
  };
}
