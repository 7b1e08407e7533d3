/**
 * L-BFGS (Liu and Nocedal 1989), following torch.optim.LBFGS (itself after minFunc): a quasi-Newton method
 * that keeps the last `historySize` pairs (s, y) of parameter and gradient changes and applies the implied
 * inverse-Hessian approximation to the gradient with the two-loop recursion. One `step(closure)` runs up to
 * `maxIter` iterations, re-evaluating the objective through the closure; with `lineSearchFn: "strong_wolfe"`
 * each step length is chosen by a line search satisfying the strong Wolfe conditions (cubic interpolation
 * with bracketing and zoom, c1 = 1e-4, c2 = 0.9, at most 25 evaluations), otherwise the step is lr.
 *
 * All parameters are treated as one flat vector (their concatenation, in the parameters' dtype); there is a
 * single parameter group, as in PyTorch. The per-iteration decisions, tolerances and the first step length
 * min(1, 1 / |g|_1) * lr are PyTorch's, so float64 runs give the same iterates. As in PyTorch, the line
 * search's own tolerance on the bracket width is its default 1e-9, not `toleranceChange`.
 */
import { enableGrad, noGrad } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { tensor, zeros } from "../ops/creation.ts";
import { cat, stack } from "../ops/shape.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import {
  checkRange,
  Optimizer,
  type OptimizerStateDict,
  type ParamGroupSpec,
  type ParamsArg,
  type StateSpec,
} from "./optimizer.ts";

/** Hyper-parameters of L-BFGS (PyTorch's names in camelCase). */
export interface LBFGSOptions {
  /** Step length (default 1); the first iteration's step is min(1, 1 / |g|_1) * lr. */
  lr: number;
  /** Most iterations per `step()` (default 20). */
  maxIter: number;
  /** Most objective evaluations per `step()` (default floor(maxIter * 5 / 4)). */
  maxEval: number;
  /** Stop when every |gradient| entry is at most this (default 1e-7). */
  toleranceGrad: number;
  /** Stop when the loss or every parameter moves by less than this (default 1e-9). */
  toleranceChange: number;
  /** Number of (s, y) pairs kept (default 100). */
  historySize: number;
  /** "strong_wolfe" for a line search, or null for fixed steps of lr (default null). */
  lineSearchFn: "strong_wolfe" | null;
}

/** The optimizer's global state (PyTorch keeps it under the first parameter). */
interface LbfgsState {
  funcEvals: number;
  nIter: number;
  d?: Tensor;
  t?: number;
  hDiag?: number;
  prevFlatGrad?: Tensor;
  prevLoss?: number;
  oldDirs: Tensor[];
  oldStps: Tensor[];
  ro: number[];
}

type Objective = (x: Tensor[], t: number, d: Tensor) => [number, Tensor];

/** A closure's loss as a number (a number, or a one-element tensor). */
function lossValue(v: unknown): number {
  if (typeof v === "number") return v;
  if (v instanceof Tensor) return v.item();
  throw new TypeError(
    `LBFGS.step: the closure must return the loss as a number or a one-element Tensor, got ${typeof v}`,
  );
}

const dotN = (a: Tensor, b: Tensor): number => a.dot(b).item();
const maxAbs = (a: Tensor): number => a.abs().max().item();

/**
 * Minimiser of the cubic interpolating (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (default the
 * interval between x1 and x2); the interval's midpoint when the cubic has no real minimiser.
 */
function cubicInterpolate(
  x1: number,
  f1: number,
  g1: number,
  x2: number,
  f2: number,
  g2: number,
  bounds?: [number, number],
): number {
  const [lo, hi] = bounds ?? (x1 <= x2 ? [x1, x2] : [x2, x1]);
  const d1 = g1 + g2 - (3 * (f1 - f2)) / (x1 - x2);
  const d2sq = d1 * d1 - g1 * g2;
  if (d2sq < 0) return (lo + hi) / 2;
  const d2 = Math.sqrt(d2sq);
  const m =
    x1 <= x2
      ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
      : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
  return Math.min(Math.max(m, lo), hi);
}

/**
 * Line search along `d` from `x` (loss f, gradient g, slope gtd = g.d < 0) for a step t satisfying the strong
 * Wolfe conditions: bracket an acceptable interval by extrapolation, then zoom into it by safeguarded cubic
 * interpolation. Returns the loss, gradient and step at the accepted (or best) point and the evaluations used.
 */
function strongWolfe(
  obj: Objective,
  x: Tensor[],
  t0: number,
  d: Tensor,
  f: number,
  g: Tensor,
  gtd: number,
  c1 = 1e-4,
  c2 = 0.9,
  toleranceChange = 1e-9,
  maxLs = 25,
): [number, Tensor, number, number] {
  let t = t0;
  const dNorm = maxAbs(d);
  let [fNew, gNew] = obj(x, t, d);
  let evals = 1;
  let gtdNew = dotN(gNew, d);
  let tPrev = 0;
  let fPrev = f;
  let gPrev = g;
  let gtdPrev = gtd;
  let done = false;
  let lsIter = 0;
  // the bracket: one point (already acceptable) or two, with losses, gradients and slopes
  let br: number[] = [];
  let brF: number[] = [];
  let brG: Tensor[] = [];
  let brGtd: number[] = [];
  while (lsIter < maxLs) {
    // sufficient decrease fails, or no lower than the previous point: a minimiser lies between the two
    const above = fNew > f + c1 * t * gtd || (lsIter > 1 && fNew >= fPrev);
    if (!above && Math.abs(gtdNew) <= -c2 * gtd) {
      br = [t];
      brF = [fNew];
      brG = [gNew];
      done = true;
      break;
    }
    if (above || gtdNew >= 0) {
      // (or the slope turned non-negative)
      br = [tPrev, t];
      brF = [fPrev, fNew];
      brG = [gPrev, gNew];
      brGtd = [gtdPrev, gtdNew];
      break;
    }
    // extrapolate: cubic step within [t + 0.01 (t - tPrev), 10 t]
    const tNext = cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, [t + 0.01 * (t - tPrev), t * 10]);
    tPrev = t;
    fPrev = fNew;
    gPrev = gNew;
    gtdPrev = gtdNew;
    t = tNext;
    [fNew, gNew] = obj(x, t, d);
    evals++;
    gtdNew = dotN(gNew, d);
    lsIter++;
  }
  if (lsIter === maxLs) {
    br = [0, t];
    brF = [f, fNew];
    brG = [g, gNew];
  }

  // zoom: shrink the bracket until a point satisfies the conditions
  let insufficientProgress = false;
  let [low, high] = brF[0] <= brF[brF.length - 1] ? [0, 1] : [1, 0];
  while (!done && lsIter < maxLs) {
    if (Math.abs(br[1] - br[0]) * dNorm < toleranceChange) break;
    t = cubicInterpolate(br[0], brF[0], brGtd[0], br[1], brF[1], brGtd[1]);
    // keep the trial point at least a tenth of the bracket away from its ends when progress stalls
    const bMax = Math.max(br[0], br[1]);
    const bMin = Math.min(br[0], br[1]);
    const eps = 0.1 * (bMax - bMin);
    if (Math.min(bMax - t, t - bMin) < eps) {
      if (insufficientProgress || t >= bMax || t <= bMin) {
        t = Math.abs(t - bMax) < Math.abs(t - bMin) ? bMax - eps : bMin + eps;
        insufficientProgress = false;
      } else {
        insufficientProgress = true;
      }
    } else {
      insufficientProgress = false;
    }
    [fNew, gNew] = obj(x, t, d);
    evals++;
    gtdNew = dotN(gNew, d);
    lsIter++;
    if (fNew > f + c1 * t * gtd || fNew >= brF[low]) {
      // no sufficient decrease, or not below the low end: the new point becomes the high end
      br[high] = t;
      brF[high] = fNew;
      brG[high] = gNew;
      brGtd[high] = gtdNew;
      [low, high] = brF[0] <= brF[1] ? [0, 1] : [1, 0];
    } else {
      if (Math.abs(gtdNew) <= -c2 * gtd) {
        done = true;
      } else if (gtdNew * (br[high] - br[low]) >= 0) {
        // the old low end becomes the high end
        br[high] = br[low];
        brF[high] = brF[low];
        brG[high] = brG[low];
        brGtd[high] = brGtd[low];
      }
      br[low] = t;
      brF[low] = fNew;
      brG[low] = gNew;
      brGtd[low] = gtdNew;
    }
  }
  return [brF[low], brG[low], br[low], evals];
}

/**
 * L-BFGS (torch.optim.LBFGS). `step` needs a closure that clears the gradients, computes the loss, calls
 * backward and returns the loss; it returns the loss of the closure's first evaluation.
 *
 * @example
 * ```ts
 * const opt = new LBFGS([w], { lr: 1, lineSearchFn: "strong_wolfe" });
 * for (let i = 0; i < 10; i++) {
 *   opt.step(() => {
 *     opt.zeroGrad();
 *     const loss = lossFn(w);
 *     loss.backward();
 *     return loss;
 *   });
 * }
 * ```
 */
export class LBFGS extends Optimizer<LBFGSOptions> {
  private lb: LbfgsState = { funcEvals: 0, nIter: 0, oldDirs: [], oldStps: [], ro: [] };

  constructor(params: ParamsArg<LBFGSOptions>, opts: Partial<LBFGSOptions> = {}) {
    const maxIter = opts.maxIter ?? 20;
    super("LBFGS", params, {
      lr: 1,
      maxIter,
      maxEval: Math.floor((maxIter * 5) / 4),
      toleranceGrad: 1e-7,
      toleranceChange: 1e-9,
      historySize: 100,
      lineSearchFn: null,
      ...opts,
    });
    const dtypes = new Set(this.params.map((p) => p.dtype));
    if (dtypes.size > 1) {
      throw new DTypeError(
        `LBFGS: all parameters must have one dtype (they form one flat vector), got ${[...dtypes].join(", ")}`,
      );
    }
  }

  /** LBFGS has one parameter group; a second one is refused. */
  override addParamGroup(spec: ParamGroupSpec<LBFGSOptions>): void {
    if (this.paramGroups.length > 0) {
      throw new Error(
        "LBFGS: doesn't support per-parameter options (parameter groups); pass one list of tensors",
      );
    }
    super.addParamGroup(spec);
  }

  private get params(): Tensor[] {
    return this.paramGroups[0].params;
  }

  protected checkHyper(h: Readonly<LBFGSOptions>): void {
    const int = (k: "maxIter" | "maxEval" | "historySize") =>
      checkRange("LBFGS", k, h[k], Number.isInteger(h[k]) && h[k] > 0, "an integer > 0");
    checkRange("LBFGS", "lr", h.lr, h.lr > 0, "lr > 0");
    int("maxIter");
    int("maxEval");
    int("historySize");
    checkRange("LBFGS", "toleranceGrad", h.toleranceGrad, h.toleranceGrad >= 0, "toleranceGrad >= 0");
    checkRange("LBFGS", "toleranceChange", h.toleranceChange, h.toleranceChange >= 0, "toleranceChange >= 0");
    checkRange(
      "LBFGS",
      "lineSearchFn",
      h.lineSearchFn,
      h.lineSearchFn === null || h.lineSearchFn === "strong_wolfe",
      '"strong_wolfe" or null',
    );
  }

  protected stateSpec(): StateSpec {
    return {};
  }
  protected update(): void {
    throw new Error("LBFGS: update one parameter at a time is not defined; call step(closure)");
  }

  /** The gradients of all parameters as one flat vector (zeros for a parameter without a gradient). */
  private gatherFlatGrad(): Tensor {
    const dtype = this.params[0].dtype;
    return cat(
      this.params.map((p) => {
        const g = p.grad;
        if (g === null) return zeros([p.size], { dtype });
        if (!shapesEqual(g.shape, p.shape)) {
          throw new ShapeError(
            `LBFGS.step: gradient of shape ${fmtShape(g.shape)} for a parameter of shape ${fmtShape(p.shape)}`,
          );
        }
        const d = g.detach();
        return (d.dtype === dtype ? d : d.to(dtype)).reshape([p.size]);
      }),
    );
  }

  /** p <- p + stepSize * (p's slice of the flat vector `update`), for every parameter. */
  private addFlat(stepSize: number, update: Tensor): void {
    let offset = 0;
    for (const p of this.params) {
      p.add_(update.narrow(0, offset, p.size).reshape(p.shape), stepSize);
      offset += p.size;
    }
  }

  private evaluate<L>(closure: () => L): [L, number] {
    const out = enableGrad(closure);
    return [out, lossValue(out)];
  }

  /**
   * Run up to maxIter L-BFGS iterations; `closure` re-evaluates the objective (zero grads, loss, backward,
   * return the loss). Returns the closure's first result.
   */
  override step<L = undefined>(closure?: () => L): L | undefined {
    if (typeof closure !== "function") {
      throw new TypeError(
        "LBFGS.step: needs a closure that zeroes the gradients, computes the loss, calls backward and returns the loss",
      );
    }
    return noGrad(() => this.run(closure));
  }

  private run<L>(closure: () => L): L {
    const group = this.paramGroups[0];
    this.checkHyper(group);
    const { lr, maxIter, maxEval, toleranceGrad, toleranceChange, historySize, lineSearchFn } = group;
    const s = this.lb;

    const [origLoss, firstLoss] = this.evaluate(closure);
    let loss = firstLoss;
    let currentEvals = 1;
    s.funcEvals += 1;
    let flatGrad = this.gatherFlatGrad();
    let optCond = maxAbs(flatGrad) <= toleranceGrad;
    if (optCond) {
      this.syncState();
      return origLoss;
    }

    let { d, t, hDiag, prevFlatGrad, prevLoss } = s;
    let { oldDirs, oldStps, ro } = s;
    let nIter = 0;
    while (nIter < maxIter) {
      nIter++;
      s.nIter++;
      // the descent direction
      if (s.nIter === 1) {
        d = flatGrad.neg();
        oldDirs = [];
        oldStps = [];
        ro = [];
        hDiag = 1;
      } else {
        const y = flatGrad.sub(prevFlatGrad!);
        const st = d!.mul(t!);
        const ys = dotN(y, st);
        if (ys > 1e-10) {
          if (oldDirs.length === historySize) {
            oldDirs.shift();
            oldStps.shift();
            ro.shift();
          }
          oldDirs.push(y);
          oldStps.push(st);
          ro.push(1 / ys);
          hDiag = ys / dotN(y, y);
        }
        // two-loop recursion: d = -H g
        const k = oldDirs.length;
        const al = new Array<number>(k);
        let q = flatGrad.neg();
        for (let i = k - 1; i >= 0; i--) {
          al[i] = dotN(oldStps[i], q) * ro[i];
          q = q.sub(oldDirs[i].mul(al[i]));
        }
        let r = q.mul(hDiag!);
        for (let i = 0; i < k; i++) {
          const be = dotN(oldDirs[i], r) * ro[i];
          r = r.add(oldStps[i].mul(al[i] - be));
        }
        d = r;
      }
      prevFlatGrad = flatGrad.clone();
      prevLoss = loss;

      // the step length
      t = s.nIter === 1 ? Math.min(1, 1 / flatGrad.abs().sum().item()) * lr : lr;
      const gtd = dotN(flatGrad, d);
      if (gtd > -toleranceChange) break; // not a descent direction (to tolerance)

      let lsEvals = 0;
      if (lineSearchFn === "strong_wolfe") {
        const x0 = this.params.map((p) => p.detach().clone());
        const obj: Objective = (x, tt, dd) => {
          this.addFlat(tt, dd);
          const [, f] = this.evaluate(closure);
          const g = this.gatherFlatGrad();
          this.params.forEach((p, i) => {
            p.copy_(x[i]);
          });
          return [f, g];
        };
        [loss, flatGrad, t, lsEvals] = strongWolfe(obj, x0, t, d, loss, flatGrad, gtd);
        this.addFlat(t, d);
        optCond = maxAbs(flatGrad) <= toleranceGrad;
      } else {
        this.addFlat(t, d);
        if (nIter !== maxIter) {
          // re-evaluate, except after the last iteration (its loss would not be used)
          [, loss] = this.evaluate(closure);
          flatGrad = this.gatherFlatGrad();
          optCond = maxAbs(flatGrad) <= toleranceGrad;
          lsEvals = 1;
        }
      }
      currentEvals += lsEvals;
      s.funcEvals += lsEvals;

      if (nIter === maxIter) break;
      if (currentEvals >= maxEval) break;
      if (optCond) break;
      if (maxAbs(d.mul(t)) <= toleranceChange) break; // the step is too small
      if (Math.abs(loss - prevLoss) < toleranceChange) break; // the loss stalls
    }
    Object.assign(s, { d, t, hDiag, prevFlatGrad, prevLoss, oldDirs, oldStps, ro });
    this.syncState();
    return origLoss;
  }

  /** Mirror the counters into `state` under the first parameter, where PyTorch keeps them. */
  private syncState(): void {
    this.state.set(this.params[0], { funcEvals: this.lb.funcEvals, nIter: this.lb.nIter });
  }

  /**
   * The hyper-parameters and the global state, under parameter 0: counters and scalars as numbers, the last
   * direction and gradient as flat tensors, the history as tensors of shape [k, n] (`oldDirs` y's, `oldStps`
   * s's) and [k] (`ro`), absent while empty.
   */
  override stateDict(): OptimizerStateDict {
    const sd = super.stateDict();
    const s = this.lb;
    if (s.funcEvals === 0) return sd;
    const rec: Record<string, Tensor | number> = { funcEvals: s.funcEvals, nIter: s.nIter };
    for (const k of ["t", "hDiag", "prevLoss"] as const) if (s[k] !== undefined) rec[k] = s[k];
    if (s.d !== undefined) rec.d = s.d.clone();
    if (s.prevFlatGrad !== undefined) rec.prevFlatGrad = s.prevFlatGrad.clone();
    if (s.oldDirs.length > 0) {
      rec.oldDirs = noGrad(() => stack(s.oldDirs));
      rec.oldStps = noGrad(() => stack(s.oldStps));
      rec.ro = tensor(s.ro, { dtype: "float64" }); // the doubles we compute with
    }
    sd.state = { "0": rec };
    return sd;
  }

  /** Restore a snapshot from `stateDict()` (of an LBFGS over parameters with the same total size). */
  override loadStateDict(sd: OptimizerStateDict): void {
    const op = "LBFGS.loadStateDict";
    const n = this.params.reduce((a, p) => a + p.size, 0);
    const dtype = this.params[0].dtype;
    const keys = Object.keys(sd.state ?? {});
    if (keys.some((k) => k !== "0")) {
      throw new Error(`${op}: LBFGS keeps its state under parameter 0, got entries ${JSON.stringify(keys)}`);
    }
    const next: LbfgsState = { funcEvals: 0, nIter: 0, oldDirs: [], oldStps: [], ro: [] };
    const rec = sd.state["0"];
    if (rec !== undefined) {
      const known = [
        "funcEvals",
        "nIter",
        "t",
        "hDiag",
        "prevLoss",
        "d",
        "prevFlatGrad",
        "oldDirs",
        "oldStps",
        "ro",
      ];
      for (const k of Object.keys(rec)) {
        if (!known.includes(k)) throw new Error(`${op}: state of parameter 0 has unknown entry "${k}"`);
      }
      const num = (k: string, required: boolean): number | undefined => {
        const v = rec[k];
        if (v === undefined && !required) return undefined;
        if (typeof v !== "number") throw new TypeError(`${op}: state 0.${k} must be a number`);
        return v;
      };
      const tens = (k: string, shape: number[]): Tensor | undefined => {
        const v = rec[k];
        if (v === undefined) return undefined;
        if (!(v instanceof Tensor)) throw new TypeError(`${op}: state 0.${k} must be a Tensor`);
        if (!shapesEqual(v.shape, shape)) {
          throw new ShapeError(
            `${op}: state 0.${k} has shape ${fmtShape(v.shape)}, expected ${fmtShape(shape)} (the parameters have ${n} elements in all)`,
          );
        }
        return noGrad(() => v.detach().to(dtype).clone());
      };
      next.funcEvals = num("funcEvals", true)!;
      next.nIter = num("nIter", true)!;
      next.t = num("t", false);
      next.hDiag = num("hDiag", false);
      next.prevLoss = num("prevLoss", false);
      next.d = tens("d", [n]);
      next.prevFlatGrad = tens("prevFlatGrad", [n]);
      const roT = rec.ro;
      const k = roT instanceof Tensor && roT.shape.length === 1 ? roT.shape[0] : 0;
      if (rec.ro !== undefined && k === 0) {
        throw new ShapeError(`${op}: state 0.ro must be a 1-D Tensor with one entry per history pair`);
      }
      const dirs = tens("oldDirs", [k, n]);
      const stps = tens("oldStps", [k, n]);
      if (
        (dirs === undefined) !== (rec.ro === undefined) ||
        (stps === undefined) !== (rec.ro === undefined)
      ) {
        throw new Error(`${op}: state 0 must have all of oldDirs, oldStps and ro, or none`);
      }
      if (dirs !== undefined && stps !== undefined) {
        for (let i = 0; i < k; i++) {
          next.oldDirs.push(dirs.narrow(0, i, 1).reshape([n]));
          next.oldStps.push(stps.narrow(0, i, 1).reshape([n]));
        }
        next.ro = noGrad(() => (roT as Tensor).to("float64").toArray() as number[]);
      }
    }
    super.loadStateDict({ state: {}, paramGroups: sd.paramGroups });
    this.lb = next;
    if (next.funcEvals > 0) this.syncState();
  }
}
