/**
 * Learning-rate schedules with PyTorch's semantics (torch.optim.lr_scheduler): a scheduler wraps an optimizer,
 * sets each group's `lr` at construction (the "initial step", epoch 0) and again at every `step()`, and
 * `getLastLr()` returns what it set last. Call `scheduler.step()` after `optimizer.step()`, once per epoch
 * (or per batch for schedules counted in iterations, such as OneCycleLR).
 *
 * Every schedule here is written in closed form, lr(epoch) = f(baseLr, epoch), and exposes it as `lrAt(epoch)`
 * (handy for plotting a schedule without training). PyTorch mostly uses the equivalent recursive ("chainable")
 * forms; the values agree up to rounding as long as nothing else edits `lr` between steps. Base learning rates
 * are the groups' `initialLr` (set from `lr` by the first scheduler attached to the optimizer, PyTorch's
 * `initial_lr`), so several schedulers on one optimizer share the same base.
 */
import { checkRange } from "./optimizer.ts";

/** The part of a parameter group a scheduler touches. */
export interface SchedulableGroup {
  lr: number;
  [key: string]: unknown;
}

/** Anything with parameter groups (every Optimizer). */
export interface SchedulableOptimizer {
  readonly paramGroups: SchedulableGroup[];
}

/** A scheduler's serialisable state. */
export interface SchedulerStateDict {
  lastEpoch: number;
  lastLr: number[];
  [key: string]: unknown;
}

/** Index of the first milestone greater than `x` (Python's bisect_right over sorted milestones). */
export function bisectRight(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Base class of the closed-form schedules. Subclasses implement `lrAt` and call `this.initialStep()` at the end
 * of their constructor (TypeScript initialises subclass fields after `super()` returns).
 */
export abstract class LRScheduler {
  /** The optimizer whose groups' `lr` this scheduler sets. */
  readonly optimizer: SchedulableOptimizer;
  /** Learning rate of each group at epoch 0 of the schedule (from the groups' `initialLr`). */
  baseLrs: number[];
  /** The epoch of the last `step()` (0 after construction). */
  lastEpoch = -1;
  protected lastLr: number[] = [];
  protected readonly name: string;

  protected constructor(name: string, optimizer: SchedulableOptimizer) {
    this.name = name;
    if (optimizer === null || typeof optimizer !== "object" || !Array.isArray(optimizer.paramGroups)) {
      throw new TypeError(`${name}: expected an optimizer (an object with paramGroups)`);
    }
    this.optimizer = optimizer;
    this.baseLrs = optimizer.paramGroups.map((g, i) => {
      if (typeof g.initialLr !== "number") g.initialLr = g.lr;
      checkRange(
        name,
        `lr of group ${i}`,
        g.initialLr,
        typeof g.initialLr === "number" && g.initialLr >= 0,
        ">= 0",
      );
      return g.initialLr as number;
    });
  }

  /** The learning rate of each group at `epoch` of this schedule (closed form; does not change anything). */
  abstract lrAt(epoch: number): number[];

  /** Run the initial step (epoch 0); subclasses call it at the end of their constructor. */
  protected initialStep(): void {
    this.step();
  }

  /** Advance one epoch and write the new learning rates into the optimizer's groups. */
  step(): void {
    this.lastEpoch += 1;
    this.apply(this.lrAt(this.lastEpoch));
  }

  /** Write `lrs` into the groups and remember them. */
  protected apply(lrs: number[]): void {
    const groups = this.optimizer.paramGroups;
    if (lrs.length !== groups.length) {
      throw new Error(
        `${this.name}: the optimizer has ${groups.length} parameter groups, the scheduler was built for ${lrs.length}`,
      );
    }
    groups.forEach((g, i) => {
      g.lr = lrs[i];
    });
    this.lastLr = lrs.slice();
  }

  /** The learning rates set by the last step, one per group. */
  getLastLr(): number[] {
    return this.lastLr.slice();
  }

  /** The scheduler's position, to save with the optimizer's state dict. */
  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, lastLr: this.lastLr.slice(), baseLrs: this.baseLrs.slice() };
  }

  /** Restore a position saved by `stateDict()` (the optimizer's own state dict restores the groups' lr). */
  loadStateDict(sd: SchedulerStateDict): void {
    if (typeof sd.lastEpoch !== "number" || !Array.isArray(sd.lastLr)) {
      throw new TypeError(`${this.name}.loadStateDict: expected { lastEpoch: number, lastLr: number[] }`);
    }
    if (sd.lastLr.length !== this.optimizer.paramGroups.length) {
      throw new Error(
        `${this.name}.loadStateDict: the state has ${sd.lastLr.length} groups, the optimizer has ${this.optimizer.paramGroups.length}`,
      );
    }
    this.lastEpoch = sd.lastEpoch;
    this.lastLr = sd.lastLr.slice();
    if (Array.isArray(sd.baseLrs)) this.baseLrs = (sd.baseLrs as number[]).slice();
  }
}

/**
 * lr = baseLr * gamma^floor(epoch / stepSize) (torch StepLR).
 *
 * @example
 * ```ts
 * const sched = new StepLR(opt, { stepSize: 30, gamma: 0.1 });
 * for (let epoch = 0; epoch < 90; epoch++) { train(); sched.step(); }
 * ```
 */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, opts: { stepSize: number; gamma?: number }) {
    super("StepLR", optimizer);
    this.stepSize = opts.stepSize;
    this.gamma = opts.gamma ?? 0.1;
    checkRange(
      "StepLR",
      "stepSize",
      this.stepSize,
      Number.isInteger(this.stepSize) && this.stepSize > 0,
      "an integer > 0",
    );
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** Math.floor(epoch / this.stepSize));
  }
}

/**
 * lr = baseLr * gamma^(number of milestones <= epoch) (torch MultiStepLR).
 *
 * @example
 * ```ts
 * const sched = new MultiStepLR(opt, { milestones: [30, 80], gamma: 0.1 });
 * ```
 */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, opts: { milestones: readonly number[]; gamma?: number }) {
    super("MultiStepLR", optimizer);
    this.milestones = [...opts.milestones].sort((a, b) => a - b);
    this.gamma = opts.gamma ?? 0.1;
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** bisectRight(this.milestones, epoch));
  }
}

/**
 * lr = baseLr * gamma^epoch (torch ExponentialLR).
 *
 * @example
 * ```ts
 * const sched = new ExponentialLR(opt, { gamma: 0.95 });
 * ```
 */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: SchedulableOptimizer, opts: { gamma: number }) {
    super("ExponentialLR", optimizer);
    this.gamma = opts.gamma;
    checkRange("ExponentialLR", "gamma", this.gamma, this.gamma >= 0, ">= 0");
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** epoch);
  }
}

/**
 * Cosine annealing from baseLr down to etaMin over tMax epochs (SGDR without restarts; torch
 * CosineAnnealingLR, closed form): lr = etaMin + (baseLr - etaMin) * (1 + cos(pi * epoch / tMax)) / 2.
 * Past tMax the cosine keeps going (it rises again), as in PyTorch.
 *
 * @example
 * ```ts
 * const sched = new CosineAnnealingLR(opt, { tMax: 100, etaMin: 1e-5 });
 * ```
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: SchedulableOptimizer, opts: { tMax: number; etaMin?: number }) {
    super("CosineAnnealingLR", optimizer);
    this.tMax = opts.tMax;
    this.etaMin = opts.etaMin ?? 0;
    checkRange("CosineAnnealingLR", "tMax", this.tMax, this.tMax > 0, "> 0");
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    const c = (1 + Math.cos((Math.PI * epoch) / this.tMax)) / 2;
    return this.baseLrs.map((b) => this.etaMin + (b - this.etaMin) * c);
  }
}

/**
 * Linear change of the multiplicative factor from startFactor to endFactor over totalIters epochs, constant
 * afterwards (torch LinearLR): lr = baseLr * (s + (e - s) * min(epoch, totalIters) / totalIters).
 * With endFactor 1 this is the usual linear warmup.
 *
 * @example
 * ```ts
 * const warmup = new LinearLR(opt, { startFactor: 0.01, totalIters: 500 });
 * ```
 */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(
    optimizer: SchedulableOptimizer,
    opts: { startFactor?: number; endFactor?: number; totalIters?: number } = {},
  ) {
    super("LinearLR", optimizer);
    this.startFactor = opts.startFactor ?? 1 / 3;
    this.endFactor = opts.endFactor ?? 1;
    this.totalIters = opts.totalIters ?? 5;
    const s = this.startFactor;
    checkRange("LinearLR", "startFactor", s, s > 0 && s <= 1, "a number in (0, 1]");
    checkRange(
      "LinearLR",
      "endFactor",
      this.endFactor,
      this.endFactor >= 0 && this.endFactor <= 1,
      "in [0, 1]",
    );
    checkRange("LinearLR", "totalIters", this.totalIters, this.totalIters > 0, "> 0");
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    const f =
      this.startFactor +
      ((this.endFactor - this.startFactor) * Math.min(epoch, this.totalIters)) / this.totalIters;
    return this.baseLrs.map((b) => b * f);
  }
}

/**
 * lr = baseLr * lambda(epoch), one function for all groups or one per group (torch LambdaLR).
 *
 * @example
 * ```ts
 * const sched = new LambdaLR(opt, { lrLambda: (e) => 1 / (1 + 0.1 * e) });
 * ```
 */
export class LambdaLR extends LRScheduler {
  readonly lrLambdas: Array<(epoch: number) => number>;
  constructor(
    optimizer: SchedulableOptimizer,
    opts: { lrLambda: ((epoch: number) => number) | Array<(epoch: number) => number> },
  ) {
    super("LambdaLR", optimizer);
    const n = optimizer.paramGroups.length;
    const l = opts.lrLambda;
    if (Array.isArray(l) && l.length !== n) {
      throw new Error(`LambdaLR: got ${l.length} lambdas for ${n} parameter groups`);
    }
    this.lrLambdas = Array.isArray(l) ? l.slice() : Array.from({ length: n }, () => l);
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b, i) => b * this.lrLambdas[i](epoch));
  }
}

/**
 * Run schedules one after another: schedulers[i] is active from milestones[i - 1] (inclusive) and restarts at
 * its own epoch 0 there (torch SequentialLR). The usual use is linear warmup followed by cosine decay.
 *
 * @example
 * ```ts
 * const warm = new LinearLR(opt, { startFactor: 0.1, totalIters: 5 });
 * const cos = new CosineAnnealingLR(opt, { tMax: 95 });
 * const sched = new SequentialLR(opt, { schedulers: [warm, cos], milestones: [5] });
 * ```
 */
export class SequentialLR extends LRScheduler {
  readonly schedulers: LRScheduler[];
  readonly milestones: number[];
  constructor(
    optimizer: SchedulableOptimizer,
    opts: { schedulers: readonly LRScheduler[]; milestones: readonly number[] },
  ) {
    super("SequentialLR", optimizer);
    const { schedulers, milestones } = opts;
    if (schedulers.length < 1 || milestones.length !== schedulers.length - 1) {
      throw new Error(
        `SequentialLR: expected one milestone fewer than schedulers, got ${schedulers.length} schedulers and ${milestones.length} milestones`,
      );
    }
    schedulers.forEach((s, i) => {
      if (s.optimizer !== optimizer) {
        throw new Error(`SequentialLR: scheduler ${i} was built for a different optimizer`);
      }
    });
    for (let i = 1; i < milestones.length; i++) {
      if (!(milestones[i] > milestones[i - 1])) {
        throw new RangeError(`SequentialLR: milestones must increase, got [${milestones.join(", ")}]`);
      }
    }
    this.schedulers = schedulers.slice();
    this.milestones = milestones.slice();
    this.initialStep();
  }
  /** The active scheduler at `epoch` and the epoch within it. */
  private locate(epoch: number): [LRScheduler, number] {
    const i = bisectRight(this.milestones, epoch);
    return [this.schedulers[i], i === 0 ? epoch : epoch - this.milestones[i - 1]];
  }
  lrAt(epoch: number): number[] {
    const [s, local] = this.locate(epoch);
    return s.lrAt(local);
  }
  override step(): void {
    super.step();
    // keep the active child's counters in step, so its getLastLr() agrees
    const [s, local] = this.locate(this.lastEpoch);
    s.loadStateDict({ lastEpoch: local, lastLr: this.lastLr });
  }
}

/**
 * Linear warmup from startFactor * lr to lr over warmupIters steps, then cosine decay to etaMin at totalIters:
 * a SequentialLR of LinearLR and CosineAnnealingLR.
 *
 * @example
 * ```ts
 * const sched = warmupCosine(opt, { warmupIters: 100, totalIters: 10_000 });
 * ```
 */
export function warmupCosine(
  optimizer: SchedulableOptimizer,
  opts: { warmupIters: number; totalIters: number; startFactor?: number; etaMin?: number },
): SequentialLR {
  const { warmupIters, totalIters } = opts;
  checkRange(
    "warmupCosine",
    "warmupIters",
    warmupIters,
    Number.isInteger(warmupIters) && warmupIters > 0,
    "an integer > 0",
  );
  checkRange(
    "warmupCosine",
    "totalIters",
    totalIters,
    totalIters > warmupIters,
    `> warmupIters (${warmupIters})`,
  );
  const warm = new LinearLR(optimizer, { startFactor: opts.startFactor ?? 1e-3, totalIters: warmupIters });
  const cos = new CosineAnnealingLR(optimizer, { tMax: totalIters - warmupIters, etaMin: opts.etaMin ?? 0 });
  return new SequentialLR(optimizer, { schedulers: [warm, cos], milestones: [warmupIters] });
}

/**
 * Multiply the lr by `factor` for the first totalIters epochs, then use it as is (torch ConstantLR):
 * lr = baseLr * (epoch < totalIters ? factor : 1). A simple warmup.
 *
 * @example
 * ```ts
 * const sched = new ConstantLR(opt, { factor: 0.5, totalIters: 4 });
 * ```
 */
export class ConstantLR extends LRScheduler {
  readonly factor: number;
  readonly totalIters: number;
  constructor(optimizer: SchedulableOptimizer, opts: { factor?: number; totalIters?: number } = {}) {
    super("ConstantLR", optimizer);
    this.factor = opts.factor ?? 1 / 3;
    this.totalIters = opts.totalIters ?? 5;
    const f = this.factor;
    checkRange("ConstantLR", "factor", f, f >= 0 && f <= 1, "a number in [0, 1]");
    checkRange("ConstantLR", "totalIters", this.totalIters, this.totalIters >= 0, ">= 0");
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    return this.baseLrs.map((b) => b * (epoch >= this.totalIters ? 1 : this.factor));
  }
}

/**
 * Polynomial decay to zero over totalIters epochs, zero afterwards (torch PolynomialLR):
 * lr = baseLr * (1 - min(epoch, totalIters) / totalIters)^power.
 *
 * @example
 * ```ts
 * const sched = new PolynomialLR(opt, { totalIters: 100, power: 2 });
 * ```
 */
export class PolynomialLR extends LRScheduler {
  readonly totalIters: number;
  readonly power: number;
  constructor(optimizer: SchedulableOptimizer, opts: { totalIters?: number; power?: number } = {}) {
    super("PolynomialLR", optimizer);
    this.totalIters = opts.totalIters ?? 5;
    this.power = opts.power ?? 1;
    checkRange("PolynomialLR", "totalIters", this.totalIters, this.totalIters > 0, "> 0");
    checkRange("PolynomialLR", "power", this.power, Number.isFinite(this.power), "a finite number");
    this.initialStep();
  }
  lrAt(epoch: number): number[] {
    const f = (1 - Math.min(this.totalIters, epoch) / this.totalIters) ** this.power;
    return this.baseLrs.map((b) => b * f);
  }
}

/**
 * SGDR: cosine annealing with warm restarts (Loshchilov and Hutter 2017; torch CosineAnnealingWarmRestarts).
 * Within a period of tI epochs, lr = etaMin + (baseLr - etaMin) * (1 + cos(pi * tCur / tI)) / 2; the first
 * period has t0 epochs and each next one tMult times as many.
 *
 * `step()` advances one epoch; `step(epoch)` jumps to any epoch, fractional ones included, so it can be called
 * every batch with `epoch + i / itersPerEpoch`. Mixing the two follows PyTorch: a plain `step()` after
 * `step(7.5)` moves the position within the period to 8.5, while `lastEpoch` (7, then 8) counts whole epochs.
 *
 * @example
 * ```ts
 * const sched = new CosineAnnealingWarmRestarts(opt, { t0: 10, tMult: 2, etaMin: 1e-5 });
 * for (let epoch = 0; epoch < 70; epoch++) {
 *   for (let i = 0; i < iters; i++) { trainBatch(); sched.step(epoch + i / iters); }
 * }
 * ```
 */
export class CosineAnnealingWarmRestarts extends LRScheduler {
  readonly t0: number;
  readonly tMult: number;
  readonly etaMin: number;
  /** Length of the current period. */
  tI: number;
  /** Position within the current period (may be fractional). */
  tCur: number;
  constructor(optimizer: SchedulableOptimizer, opts: { t0: number; tMult?: number; etaMin?: number }) {
    super("CosineAnnealingWarmRestarts", optimizer);
    this.t0 = opts.t0;
    this.tMult = opts.tMult ?? 1;
    this.etaMin = opts.etaMin ?? 0;
    const name = "CosineAnnealingWarmRestarts";
    checkRange(name, "t0", this.t0, Number.isInteger(this.t0) && this.t0 > 0, "an integer > 0");
    checkRange(name, "tMult", this.tMult, Number.isInteger(this.tMult) && this.tMult >= 1, "an integer >= 1");
    checkRange(name, "etaMin", this.etaMin, Number.isFinite(this.etaMin), "a finite number");
    this.tI = this.t0;
    this.tCur = -1;
    this.initialStep();
  }

  /** The period length and the position within it at `epoch` (>= 0, may be fractional). */
  private locate(epoch: number): [tI: number, tCur: number] {
    if (epoch < this.t0) return [this.t0, epoch];
    if (this.tMult === 1) return [this.t0, epoch % this.t0];
    const m = this.tMult;
    const n = Math.trunc(Math.log((epoch / this.t0) * (m - 1) + 1) / Math.log(m));
    return [this.t0 * m ** n, epoch - (this.t0 * (m ** n - 1)) / (m - 1)];
  }

  private lrsFor(tCur: number, tI: number): number[] {
    const c = (1 + Math.cos((Math.PI * tCur) / tI)) / 2;
    return this.baseLrs.map((b) => this.etaMin + (b - this.etaMin) * c);
  }

  lrAt(epoch: number): number[] {
    const [tI, tCur] = this.locate(epoch);
    return this.lrsFor(tCur, tI);
  }

  /** Advance one epoch, or go to `epoch` (a non-negative number, fractional allowed). */
  override step(epoch?: number): void {
    let e = epoch;
    if (e === undefined && this.lastEpoch < 0) e = 0;
    if (e === undefined) {
      e = this.lastEpoch + 1;
      this.tCur += 1;
      if (this.tCur >= this.tI) {
        this.tCur -= this.tI;
        this.tI *= this.tMult;
      }
    } else {
      checkRange("CosineAnnealingWarmRestarts.step", "epoch", e, e >= 0, "a number >= 0");
      [this.tI, this.tCur] = this.locate(e);
    }
    this.lastEpoch = Math.floor(e);
    this.apply(this.lrsFor(this.tCur, this.tI));
  }

  override stateDict(): SchedulerStateDict {
    return { ...super.stateDict(), tI: this.tI, tCur: this.tCur };
  }

  override loadStateDict(sd: SchedulerStateDict): void {
    super.loadStateDict(sd);
    if (typeof sd.tI === "number" && typeof sd.tCur === "number") {
      this.tI = sd.tI;
      this.tCur = sd.tCur;
    } else {
      [this.tI, this.tCur] = this.locate(Math.max(0, sd.lastEpoch));
    }
  }
}

/** Options of CyclicLR (PyTorch's names in camelCase). */
export interface CyclicLROptions {
  /** Lower lr boundary, one for all groups or one per group; the groups' lr is set to it at construction. */
  baseLr: number | readonly number[];
  /** Upper lr boundary (one, or one per group). */
  maxLr: number | readonly number[];
  /** Iterations in the rising half of a cycle (default 2000). */
  stepSizeUp?: number;
  /** Iterations in the falling half (default stepSizeUp). */
  stepSizeDown?: number;
  /** Amplitude policy when no scaleFn is given (default "triangular"). */
  mode?: "triangular" | "triangular2" | "exp_range";
  /** exp_range's amplitude factor gamma^iteration (default 1). */
  gamma?: number;
  /** Custom amplitude scale, in [0, 1]; replaces `mode`. */
  scaleFn?: (x: number) => number;
  /** Whether scaleFn receives the cycle number (default) or the iteration. */
  scaleMode?: "cycle" | "iterations";
  /** Cycle momentum (or Adam's beta1) inversely to the lr (default true). */
  cycleMomentum?: boolean;
  /** Lower momentum boundary, reached at the lr peak (default 0.8; one, or one per group). */
  baseMomentum?: number | readonly number[];
  /** Upper momentum boundary, at the cycle's start (default 0.9; one, or one per group). */
  maxMomentum?: number | readonly number[];
}

/**
 * Cyclical learning rates (Smith 2017; torch CyclicLR): the lr goes from baseLr up to maxLr over stepSizeUp
 * iterations and back over stepSizeDown, with the amplitude scaled per cycle ("triangular": 1,
 * "triangular2": halved each cycle) or per iteration ("exp_range": gamma^iteration), or by a custom scaleFn.
 * Momentum moves the opposite way between maxMomentum and baseMomentum. Call `step()` after every batch.
 *
 * With cycleMomentum, a group without `momentum` but with `betas` (Adam) has its beta1 cycled, as PyTorch 2
 * does (1.13 refuses such optimizers).
 *
 * @example
 * ```ts
 * const opt = new SGD(params, { lr: 0.01, momentum: 0.9 });
 * const sched = new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 500, mode: "triangular2" });
 * ```
 */
export class CyclicLR extends LRScheduler {
  readonly maxLrs: number[];
  readonly totalSize: number;
  readonly stepRatio: number;
  readonly mode: "triangular" | "triangular2" | "exp_range";
  readonly gamma: number;
  readonly scaleMode: "cycle" | "iterations";
  readonly cycleMomentum: boolean;
  readonly baseMomentums: number[] = [];
  readonly maxMomentums: number[] = [];
  private readonly scale: (x: number) => number;
  private readonly useBeta1: boolean[] = [];

  constructor(optimizer: SchedulableOptimizer, opts: CyclicLROptions) {
    // as PyTorch: the groups start at baseLr, which also becomes their initialLr when they have none
    super("CyclicLR", CyclicLR.startAtBase(optimizer, opts));
    const name = "CyclicLR";
    const groups = optimizer.paramGroups;
    this.baseLrs = perGroup(name, "baseLr", opts.baseLr, groups.length);
    this.maxLrs = perGroup(name, "maxLr", opts.maxLr, groups.length);
    const up = opts.stepSizeUp ?? 2000;
    const down = opts.stepSizeDown ?? up;
    checkRange(name, "stepSizeUp", up, up > 0, "> 0");
    checkRange(name, "stepSizeDown", down, down > 0, "> 0");
    this.totalSize = up + down;
    this.stepRatio = up / this.totalSize;
    this.mode = opts.mode ?? "triangular";
    this.gamma = opts.gamma ?? 1;
    if (opts.scaleFn !== undefined) {
      if (typeof opts.scaleFn !== "function") throw new TypeError("CyclicLR: scaleFn must be a function");
      const mode = opts.scaleMode ?? "cycle";
      checkRange(
        name,
        "scaleMode",
        mode,
        mode === "cycle" || mode === "iterations",
        '"cycle" or "iterations"',
      );
      this.scale = opts.scaleFn;
      this.scaleMode = mode;
    } else {
      const mode = this.mode;
      checkRange(
        name,
        "mode",
        mode,
        mode === "triangular" || mode === "triangular2" || mode === "exp_range",
        '"triangular", "triangular2" or "exp_range" (or pass a scaleFn)',
      );
      if (mode === "triangular") this.scale = () => 1;
      else if (mode === "triangular2") this.scale = (x) => 1 / 2 ** (x - 1);
      else this.scale = (x) => this.gamma ** x;
      this.scaleMode = mode === "exp_range" ? "iterations" : "cycle";
    }
    this.cycleMomentum = opts.cycleMomentum ?? true;
    if (this.cycleMomentum) {
      const base = perGroup(name, "baseMomentum", opts.baseMomentum ?? 0.8, groups.length);
      this.maxMomentums = perGroup(name, "maxMomentum", opts.maxMomentum ?? 0.9, groups.length);
      groups.forEach((g, i) => {
        this.useBeta1.push(typeof g.momentum !== "number" && Array.isArray(g.betas));
        if (!this.useBeta1[i] && typeof g.momentum !== "number") {
          throw new Error(
            `CyclicLR: cycleMomentum needs a "momentum" or "betas" hyper-parameter in group ${i}; pass cycleMomentum: false`,
          );
        }
      });
      this.baseMomentums = base;
      this.setMomentums(base);
    }
    this.initialStep();
  }

  private static startAtBase(optimizer: SchedulableOptimizer, opts: CyclicLROptions): SchedulableOptimizer {
    if (optimizer === null || typeof optimizer !== "object" || !Array.isArray(optimizer.paramGroups)) {
      throw new TypeError("CyclicLR: expected an optimizer (an object with paramGroups)");
    }
    const base = perGroup("CyclicLR", "baseLr", opts?.baseLr, optimizer.paramGroups.length);
    optimizer.paramGroups.forEach((g, i) => {
      g.lr = base[i];
    });
    return optimizer;
  }

  /** Cycle number (from 1) and the fraction of the amplitude at `epoch`. */
  private position(epoch: number): [cycle: number, factor: number] {
    const cycle = Math.floor(1 + epoch / this.totalSize);
    const x = 1 + epoch / this.totalSize - cycle;
    const f = x <= this.stepRatio ? x / this.stepRatio : (x - 1) / (this.stepRatio - 1);
    return [cycle, f];
  }

  lrAt(epoch: number): number[] {
    const [cycle, f] = this.position(epoch);
    const s = this.scale(this.scaleMode === "cycle" ? cycle : epoch);
    return this.baseLrs.map((b, i) => b + (this.maxLrs[i] - b) * f * s);
  }

  /** The momentum (or beta1) of each group at `epoch` (the groups' values when cycleMomentum is off). */
  momentumAt(epoch: number): number[] {
    if (!this.cycleMomentum) return [];
    const [cycle, f] = this.position(epoch);
    const s = this.scale(this.scaleMode === "cycle" ? cycle : epoch);
    return this.maxMomentums.map((m, i) => m - (m - this.baseMomentums[i]) * f * s);
  }

  private setMomentums(moms: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      if (this.useBeta1[i]) {
        const betas = g.betas as number[];
        g.betas = [moms[i], ...betas.slice(1)];
      } else {
        g.momentum = moms[i];
      }
    });
  }

  override step(): void {
    super.step();
    if (this.cycleMomentum) this.setMomentums(this.momentumAt(this.lastEpoch));
  }
}

/** One value per group from a number or a list (whose length must match). */
function perGroup(opt: string, key: string, v: unknown, n: number): number[] {
  if (Array.isArray(v)) {
    if (v.length !== n)
      throw new RangeError(`${opt}: expected ${n} values for ${key} (one per group), got ${v.length}`);
    v.forEach((x, i) => {
      checkRange(opt, `${key}[${i}]`, x, typeof x === "number" && Number.isFinite(x), "a finite number");
    });
    return v.slice();
  }
  checkRange(opt, key, v, typeof v === "number" && Number.isFinite(v), "a finite number (or one per group)");
  return Array.from({ length: n }, () => v as number);
}
