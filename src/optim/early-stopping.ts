/**
 * Early stopping: end training when a validation metric has not improved for `patience` epochs, and remember
 * the best epoch so the caller can restore its weights (through the `onImprove` callback, which is the place to
 * snapshot them). This is the standard regulariser of the lectures: train long, keep the best validation point.
 *
 * An epoch improves when (mode min) metric < best - minDelta, or (mode max) metric > best + minDelta.
 * NaN never improves.
 */
import { Tensor } from "../tensor/tensor.ts";
import { checkRange } from "./optimizer.ts";

/** Options of EarlyStopping. */
export interface EarlyStoppingOptions {
  /** Epochs without improvement after which `step` returns true (default 10). */
  patience?: number;
  /** Smallest change that counts as an improvement (default 0). */
  minDelta?: number;
  /** "min" (default) for losses, "max" for accuracies. */
  mode?: "min" | "max";
  /** Called with (metric, epoch) at every improvement: snapshot the model here. */
  onImprove?: (metric: number, epoch: number) => void;
}

/**
 * Track a validation metric and say when to stop.
 *
 * @example
 * ```ts
 * let best: OptimizerStateDict | null = null;
 * const stopper = new EarlyStopping({ patience: 5, onImprove: () => { best = snapshot(model); } });
 * for (let epoch = 0; epoch < 100; epoch++) {
 *   train();
 *   if (stopper.step(validationLoss())) break;
 * }
 * console.log(`best epoch ${stopper.bestEpoch}: ${stopper.bestValue}`);
 * ```
 */
export class EarlyStopping {
  readonly patience: number;
  readonly minDelta: number;
  readonly mode: "min" | "max";
  private readonly onImprove?: (metric: number, epoch: number) => void;
  /** Best metric seen so far (Infinity / -Infinity before the first step). */
  bestValue: number;
  /** Epoch (0-based count of `step` calls) of the best metric, -1 before the first step. */
  bestEpoch = -1;
  /** Number of `step` calls so far. */
  epoch = 0;
  /** Consecutive epochs without improvement. */
  badEpochs = 0;
  /** Whether `step` has returned true. */
  stopped = false;

  constructor(opts: EarlyStoppingOptions = {}) {
    this.patience = opts.patience ?? 10;
    this.minDelta = opts.minDelta ?? 0;
    this.mode = opts.mode ?? "min";
    this.onImprove = opts.onImprove;
    checkRange(
      "EarlyStopping",
      "patience",
      this.patience,
      Number.isInteger(this.patience) && this.patience >= 0,
      "an integer >= 0",
    );
    checkRange("EarlyStopping", "minDelta", this.minDelta, this.minDelta >= 0, ">= 0");
    if (this.mode !== "min" && this.mode !== "max") {
      throw new RangeError(`EarlyStopping: mode must be "min" or "max", got ${String(this.mode)}`);
    }
    this.bestValue = this.mode === "min" ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }

  /** Whether `metric` improves on the best value by more than minDelta. */
  isImprovement(metric: number): boolean {
    return this.mode === "min"
      ? metric < this.bestValue - this.minDelta
      : metric > this.bestValue + this.minDelta;
  }

  /** Record one epoch's metric; returns true when training should stop. */
  step(metric: number | Tensor): boolean {
    const m = metric instanceof Tensor ? Number(metric.item()) : metric;
    const epoch = this.epoch++;
    if (this.isImprovement(m)) {
      this.bestValue = m;
      this.bestEpoch = epoch;
      this.badEpochs = 0;
      this.onImprove?.(m, epoch);
    } else {
      this.badEpochs += 1;
    }
    if (this.badEpochs >= this.patience && this.bestEpoch !== epoch) this.stopped = true;
    return this.stopped;
  }

  /** Start over (best value, counters). */
  reset(): void {
    this.bestValue = this.mode === "min" ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    this.bestEpoch = -1;
    this.epoch = 0;
    this.badEpochs = 0;
    this.stopped = false;
  }
}
