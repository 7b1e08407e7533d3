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
