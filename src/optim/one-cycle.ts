/**
 * The one-cycle policy (Smith and Topin 2018, "Super-Convergence"), following torch OneCycleLR: the learning
 * rate rises from maxLr / divFactor to maxLr over the first pctStart of the steps, then anneals to
 * initialLr / finalDivFactor; momentum (or Adam's beta1) moves the opposite way, maxMomentum -> baseMomentum
 * -> maxMomentum. It is stepped once per batch. With threePhase, the lr comes back down to the initial value
 * symmetrically before the final annealing (fastai's original schedule).
 *
 * Phase boundaries as PyTorch: phase 1 ends at step pctStart * total - 1, phase 2 (two-phase) at total - 1;
 * within a phase pct = (step - start) / (end - start) and
 *   cos:    value = end + (start - end) / 2 * (1 + cos(pi * pct))
 *   linear: value = start + (end - start) * pct
 */
import { checkRange } from "./optimizer.ts";
import { LRScheduler, type SchedulableGroup, type SchedulableOptimizer } from "./scheduler.ts";

/** Options of OneCycleLR (PyTorch's names in camelCase). */
export interface OneCycleOptions {
  /** Peak learning rate, one for all groups or one per group. */
  maxLr: number | readonly number[];
  /** Total number of steps; or give epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  /** Fraction of the steps spent increasing the lr (default 0.3). */
  pctStart?: number;
  /** "cos" (default) or "linear" annealing. */
  annealStrategy?: "cos" | "linear";
  /** Cycle momentum inversely to the lr (default true, as PyTorch; needs `momentum` or `betas` in the groups). */
  cycleMomentum?: boolean;
  /** Lowest momentum, reached at the lr peak (default 0.85). */
  baseMomentum?: number | readonly number[];
  /** Highest momentum, at the start and the end (default 0.95). */
  maxMomentum?: number | readonly number[];
  /** initialLr = maxLr / divFactor (default 25). */
  divFactor?: number;
  /** minLr = initialLr / finalDivFactor (default 1e4). */
  finalDivFactor?: number;
  /** Use three phases: up, symmetrically down to initialLr, then down to minLr (default false). */
  threePhase?: boolean;
}

interface Phase {
  endStep: number;
  lr: [keyof GroupBounds, keyof GroupBounds];
  mom: ["max" | "base", "max" | "base"];
}

interface GroupBounds {
  initialLr: number;
  maxLr: number;
  minLr: number;
}

function perGroup(name: string, v: number | readonly number[], n: number): number[] {
  if (typeof v === "number") return Array.from({ length: n }, () => v);
  if (v.length !== n) throw new Error(`OneCycleLR: ${name} has ${v.length} values for ${n} parameter groups`);
  return v.slice();
}

/**
 * One-cycle learning-rate (and momentum) policy; call `step()` after every batch.
 *
 * @example
 * ```ts
 * const sched = new OneCycleLR(opt, { maxLr: 0.1, epochs: 10, stepsPerEpoch: batches.length });
 * for (...) { loss.backward(); opt.step(); sched.step(); }
 * ```
 */
export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly bounds: GroupBounds[];
  readonly annealStrategy: "cos" | "linear";
  readonly cycleMomentum: boolean;
  private readonly baseMomentum: number[];
  private readonly maxMomentum: number[];
  private readonly phases: Phase[];
  /** Whether each group's momentum is Adam's betas[0] (true) or SGD/RMSprop's momentum (false). */
  private readonly useBeta1: boolean[];

  constructor(optimizer: SchedulableOptimizer, opts: OneCycleOptions) {
    super("OneCycleLR", optimizer);
    const groups = optimizer.paramGroups;
    const n = groups.length;
    if (opts.totalSteps !== undefined) {
      this.totalSteps = opts.totalSteps;
    } else if (opts.epochs !== undefined && opts.stepsPerEpoch !== undefined) {
      checkRange(
        "OneCycleLR",
        "epochs",
        opts.epochs,
        Number.isInteger(opts.epochs) && opts.epochs > 0,
        "an integer > 0",
      );
      checkRange(
        "OneCycleLR",
        "stepsPerEpoch",
        opts.stepsPerEpoch,
        Number.isInteger(opts.stepsPerEpoch) && opts.stepsPerEpoch > 0,
        "an integer > 0",
      );
      this.totalSteps = opts.epochs * opts.stepsPerEpoch;
    } else {
      throw new Error("OneCycleLR: give totalSteps, or epochs and stepsPerEpoch");
    }
    const total = this.totalSteps;
    checkRange("OneCycleLR", "totalSteps", total, Number.isInteger(total) && total > 0, "an integer > 0");
    const pct = opts.pctStart ?? 0.3;
    checkRange("OneCycleLR", "pctStart", pct, pct >= 0 && pct <= 1, "a number in [0, 1]");
    this.annealStrategy = opts.annealStrategy ?? "cos";
    if (this.annealStrategy !== "cos" && this.annealStrategy !== "linear") {
      throw new RangeError(
        `OneCycleLR: annealStrategy must be "cos" or "linear", got ${String(this.annealStrategy)}`,
      );
    }
    const divFactor = opts.divFactor ?? 25;
    const finalDiv = opts.finalDivFactor ?? 1e4;
    this.phases = opts.threePhase
      ? [
          { endStep: pct * total - 1, lr: ["initialLr", "maxLr"], mom: ["max", "base"] },
          { endStep: 2 * pct * total - 2, lr: ["maxLr", "initialLr"], mom: ["base", "max"] },
          { endStep: total - 1, lr: ["initialLr", "minLr"], mom: ["max", "max"] },
        ]
      : [
          { endStep: pct * total - 1, lr: ["initialLr", "maxLr"], mom: ["max", "base"] },
          { endStep: total - 1, lr: ["maxLr", "minLr"], mom: ["base", "max"] },
        ];
    // the schedule's own initial lr replaces the groups' (PyTorch writes initial_lr, max_lr, min_lr)
    this.bounds = perGroup("maxLr", opts.maxLr, n).map((maxLr, i) => {
      checkRange("OneCycleLR", `maxLr of group ${i}`, maxLr, maxLr >= 0, ">= 0");
      const initialLr = maxLr / divFactor;
      groups[i].initialLr = initialLr;
      return { initialLr, maxLr, minLr: initialLr / finalDiv };
    });
    this.baseLrs = this.bounds.map((b) => b.initialLr);
    this.cycleMomentum = opts.cycleMomentum ?? true;
    this.baseMomentum = perGroup("baseMomentum", opts.baseMomentum ?? 0.85, n);
    this.maxMomentum = perGroup("maxMomentum", opts.maxMomentum ?? 0.95, n);
    this.useBeta1 = groups.map((g) => Array.isArray(g.betas));
    if (this.cycleMomentum) {
      groups.forEach((g, i) => {
        if (!this.useBeta1[i] && typeof g.momentum !== "number") {
          throw new Error(
            `OneCycleLR: cycleMomentum needs a "momentum" or "betas" hyper-parameter in group ${i}; pass cycleMomentum: false`,
          );
        }
      });
    }
    this.initialStep();
  }

  private anneal(start: number, end: number, pct: number): number {
    if (this.annealStrategy === "linear") return (end - start) * pct + start;
    return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
  }

  /** The phase containing `step` and the fraction of it done. */
  private locate(step: number): [Phase, number] {
    if (step > this.totalSteps) {
      throw new RangeError(
        `OneCycleLR: tried to step ${step} times, the schedule has totalSteps = ${this.totalSteps}`,
      );
    }
    let start = 0;
    for (let i = 0; i < this.phases.length; i++) {
      const ph = this.phases[i];
      if (step <= ph.endStep || i === this.phases.length - 1)
        return [ph, (step - start) / (ph.endStep - start)];
      start = ph.endStep;
    }
    throw new Error("internal: OneCycleLR has no phases");
  }

  lrAt(step: number): number[] {
    const [ph, pct] = this.locate(step);
    return this.bounds.map((b) => this.anneal(b[ph.lr[0]], b[ph.lr[1]], pct));
  }

  /** The momentum (or beta1) of each group at `step`. */
  momentumAt(step: number): number[] {
    const [ph, pct] = this.locate(step);
    const pick = (which: "max" | "base", i: number) =>
      which === "max" ? this.maxMomentum[i] : this.baseMomentum[i];
    return this.bounds.map((_, i) => this.anneal(pick(ph.mom[0], i), pick(ph.mom[1], i), pct));
  }

  override step(): void {
    super.step();
    if (!this.cycleMomentum) return;
    const moms = this.momentumAt(this.lastEpoch);
    this.optimizer.paramGroups.forEach((g: SchedulableGroup, i) => {
      if (this.useBeta1[i]) {
        const betas = g.betas as number[];
        g.betas = [moms[i], ...betas.slice(1)];
      } else {
        g.momentum = moms[i];
      }
    });
  }
}
