/**
 * ReduceLROnPlateau (torch.optim.lr_scheduler.ReduceLROnPlateau): multiply the learning rate by `factor` when a
 * monitored metric has stopped improving for more than `patience` epochs, then wait `cooldown` epochs before
 * counting again. Unlike the closed-form schedules it reads and edits the groups' current lr.
 *
 * "Improving" (mode min; max mirrors it):
 *   thresholdMode "rel": metric < best * (1 - threshold);   "abs": metric < best - threshold
 * and a reduction new = max(old * factor, minLr) is applied only if old - new > eps.
 */
import { Tensor } from "../tensor/tensor.ts";
import { checkRange } from "./optimizer.ts";
import type { SchedulableOptimizer } from "./scheduler.ts";

/** Options of ReduceLROnPlateau (PyTorch's defaults). */
export interface PlateauOptions {
  /** "min" (default): lower is better (a loss); "max": higher is better (an accuracy). */
  mode?: "min" | "max";
  /** Multiplier of the lr at a reduction, < 1 (default 0.1). */
  factor?: number;
  /** Number of epochs without improvement tolerated before reducing (default 10). */
  patience?: number;
  /** Minimum significant improvement (default 1e-4). */
  threshold?: number;
  /** Whether threshold is relative to the best value ("rel", default) or absolute ("abs"). */
  thresholdMode?: "rel" | "abs";
  /** Epochs to wait after a reduction before counting bad epochs again (default 0). */
  cooldown?: number;
  /** Lower bound of the lr, one for all groups or one per group (default 0). */
  minLr?: number | readonly number[];
  /** Reductions smaller than this are skipped (default 1e-8). */
  eps?: number;
}

/**
 * Reduce the learning rate when a metric plateaus; call `step(metric)` once per epoch.
 *
 * @example
 * ```ts
 * const sched = new ReduceLROnPlateau(opt, { mode: "min", factor: 0.5, patience: 3 });
 * for (let epoch = 0; epoch < 50; epoch++) { train(); sched.step(validationLoss()); }
 * ```
 */
export class ReduceLROnPlateau {
  readonly optimizer: SchedulableOptimizer;
  readonly mode: "min" | "max";
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: "rel" | "abs";
  readonly cooldown: number;
  readonly minLrs: number[];
  readonly eps: number;
  /** Best metric seen so far. */
  best: number;
  /** Consecutive epochs without improvement (reset by a reduction and during cooldown). */
  numBadEpochs = 0;
  /** Epochs of cooldown left. */
  cooldownCounter = 0;
  /** Number of `step` calls so far. */
  lastEpoch = 0;
  private lastLr: number[];

  constructor(optimizer: SchedulableOptimizer, opts: PlateauOptions = {}) {
    this.optimizer = optimizer;
    this.mode = opts.mode ?? "min";
    this.factor = opts.factor ?? 0.1;
    this.patience = opts.patience ?? 10;
    this.threshold = opts.threshold ?? 1e-4;
    this.thresholdMode = opts.thresholdMode ?? "rel";
    this.cooldown = opts.cooldown ?? 0;
    this.eps = opts.eps ?? 1e-8;
    const name = "ReduceLROnPlateau";
    if (this.mode !== "min" && this.mode !== "max")
      throw new RangeError(`${name}: mode must be "min" or "max", got ${String(this.mode)}`);
    if (this.thresholdMode !== "rel" && this.thresholdMode !== "abs") {
      throw new RangeError(
        `${name}: thresholdMode must be "rel" or "abs", got ${String(this.thresholdMode)}`,
      );
    }
    checkRange(name, "factor", this.factor, this.factor >= 0 && this.factor < 1, "a number in [0, 1)");
    checkRange(
      name,
      "patience",
      this.patience,
      Number.isInteger(this.patience) && this.patience >= 0,
      "an integer >= 0",
    );
    checkRange(
      name,
      "cooldown",
      this.cooldown,
      Number.isInteger(this.cooldown) && this.cooldown >= 0,
      "an integer >= 0",
    );
    checkRange(name, "threshold", this.threshold, this.threshold >= 0, ">= 0");
    const n = optimizer.paramGroups.length;
    const m = opts.minLr ?? 0;
    if (typeof m !== "number" && m.length !== n) {
      throw new Error(`${name}: minLr has ${m.length} values for ${n} parameter groups`);
    }
    this.minLrs = typeof m === "number" ? Array.from({ length: n }, () => m) : m.slice();
    this.best = this.mode === "min" ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    this.lastLr = optimizer.paramGroups.map((g) => g.lr);
  }

  /** Whether `a` improves on the best value by more than the threshold. */
  isBetter(a: number, best: number = this.best): boolean {
    const rel = this.thresholdMode === "rel";
    if (this.mode === "min") return rel ? a < best * (1 - this.threshold) : a < best - this.threshold;
    return rel ? a > best * (1 + this.threshold) : a > best + this.threshold;
  }

  /** Whether a cooldown after a reduction is running. */
  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  /** Record this epoch's metric and reduce the lr if it has plateaued. */
  step(metric: number | Tensor): void {
    const current = metric instanceof Tensor ? Number(metric.item()) : metric;
    this.lastEpoch += 1;
    if (this.isBetter(current)) {
      this.best = current;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.inCooldown) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0; // bad epochs during cooldown do not count
    }
    if (this.numBadEpochs > this.patience) {
      this.reduce();
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  private reduce(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const old = g.lr;
      const next = Math.max(old * this.factor, this.minLrs[i]);
      if (old - next > this.eps) g.lr = next;
    });
  }

  /** The groups' learning rates after the last step. */
  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  /** The scheduler's counters, to save with the optimizer's state dict. */
  stateDict(): { best: number; numBadEpochs: number; cooldownCounter: number; lastEpoch: number } {
    return {
      best: this.best,
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastEpoch: this.lastEpoch,
    };
  }

  /** Restore counters saved by `stateDict()`. */
  loadStateDict(sd: {
    best: number;
    numBadEpochs: number;
    cooldownCounter: number;
    lastEpoch: number;
  }): void {
    for (const k of ["best", "numBadEpochs", "cooldownCounter", "lastEpoch"] as const) {
      if (typeof sd[k] !== "number")
        throw new TypeError(`ReduceLROnPlateau.loadStateDict: "${k}" must be a number`);
    }
    this.best = sd.best;
    this.numBadEpochs = sd.numBadEpochs;
    this.cooldownCounter = sd.cooldownCounter;
    this.lastEpoch = sd.lastEpoch;
  }
}
