/**
 * Pure optimizers (optax's GradientTransformation, with the update applied): the state is a pytree of tensors
 * passed in and returned, never held, so a whole training step (forward, backward and update) can be traced by
 * `jit` and its state donated.
 *
 *   const opt = functional.adam({ lr: 1e-3 });
 *   let state = opt.init(params);
 *   [params, state] = opt.update(grads, state, params, { lr: 5e-4 });
 *
 * Each optimizer has exactly the numerics of its stateful twin (`SGD`, `Adam`, `AdamW`, `RMSprop`, `Adagrad`;
 * the update rules are written out in those files): the same operations in the same order, the scalar
 * coefficients (lr / (1 - beta1^t), 1 - lr * weightDecay, ...) computed in float64 and rounded once to the
 * parameter's dtype, as the stateful classes compute them in JavaScript numbers.
 *
 * What may change between steps without retracing a jitted step:
 * - the step count is a tensor in the state (`state.step`, int32, one for the whole pytree);
 * - the hyper-parameters listed in `dynamic` (the learning rate, and the momentum a one-cycle schedule cycles:
 *   `momentum` of SGD and RMSprop, `beta1` of Adam/AdamW) may be given to `update` as numbers or scalar
 *   tensors. Pass them as tensor arguments of the jitted function (a number closed over by a traced function
 *   is frozen into the program). Whether a branch exists at all (momentum 0 or not, amsgrad, weight decay 0
 *   or not) is fixed when the optimizer is made.
 * Everything else is a constant of the optimizer.
 *
 * Differences from the stateful classes: one hyper-parameter set for the whole pytree (no parameter groups),
 * and every leaf is updated at every step (a stateful optimizer skips a parameter whose `grad` is null; here a
 * leaf that does not influence the loss gets a zero gradient, so weight decay and momentum still move it).
 */
import { noGrad } from "../core/trace.ts";
import type { DType } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { full, fullLike, tensor, zerosLike } from "../ops/creation.ts";
import { maximum, where } from "../ops/math.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type TreeDef, treeFlatten, treeUnflatten } from "../tree.ts";
import { Adagrad, type AdagradOptions } from "./adagrad.ts";
import { Adam, type AdamOptions, AdamW } from "./adam.ts";
import { type BaseHyper, checkRange, type Optimizer, type OptimState, stepGrad } from "./optimizer.ts";
import { RMSprop, type RMSpropOptions } from "./rmsprop.ts";
import { SGD, type SGDOptions } from "./sgd.ts";

/** A hyper-parameter given to `update`: a number, or a scalar tensor (traced under jit). */
export type HyperValue = number | Tensor;

/**
 * A functional optimizer's state: the step count and one pytree per moment, each shaped like the parameters
 * (the names are those of the stateful optimizers' state: `expAvg`, `momentumBuffer`, `squareAvg`, ...).
 */
export interface FunctionalState {
  /** Updates done so far (int32 scalar). */
  step: Tensor;
  [moment: string]: unknown;
}

/** A pure optimizer: `init` makes the state of a parameter pytree, `update` returns new parameters and state. */
export interface FunctionalOptimizer {
  /** The stateful class it mirrors: "SGD", "Adam", "AdamW", "RMSprop" or "Adagrad". */
  readonly name: string;
  /** Its hyper-parameters (the stateful class's options, defaults filled in). */
  readonly options: Readonly<Record<string, unknown>>;
  /** The hyper-parameters `update` accepts per call (as numbers or scalar tensors). */
  readonly dynamic: readonly string[];
  /** The names of the moment pytrees in the state (besides `step`). */
  readonly moments: readonly string[];
  /** The state before the first update: step 0 and each moment at its initial value. */
  init<P>(params: P): FunctionalState;
  /**
   * One update: the new parameters (same structure as `params`) and the new state. `hyper` overrides the
   * dynamic hyper-parameters for this step (e.g. `{ lr }` from a schedule).
   */
  update<P>(
    grads: P,
    state: FunctionalState,
    params: P,
    hyper?: Readonly<Record<string, HyperValue | undefined>>,
  ): [P, FunctionalState];
}

/** Per-update scalars: float64 0-d tensors, cast to a leaf's dtype on demand (once per dtype). */
class Coefs {
  readonly #cast = new Map<string, Tensor>();
  constructor(readonly values: Record<string, Tensor>) {}
  /** The coefficient `name` in `dtype`. */
  get(name: string, dtype: DType): Tensor {
    const key = `${name}:${dtype}`;
    let t = this.#cast.get(key);
    if (t === undefined) {
      t = this.values[name].to(dtype);
      this.#cast.set(key, t);
    }
    return t;
  }
}

/** A hyper-parameter as a float64 scalar tensor. */
function scalar(op: string, name: string, v: HyperValue): Tensor {
  if (v instanceof Tensor) {
    if (v.size !== 1) {
      throw new ShapeError(
        `${op}.update: hyper-parameter ${name} must be a scalar, got shape ${fmtShape(v.shape)}`,
      );
    }
    return v.reshape([]).to("float64");
  }
  if (typeof v !== "number" || Number.isNaN(v)) {
    throw new TypeError(
      `${op}.update: hyper-parameter ${name} must be a number or a scalar tensor, got ${String(v)}`,
    );
  }
  return tensor(v, { dtype: "float64" });
}

/** One leaf's update: its parameter, gradient and moments in, the new parameter and moments out. */
type LeafUpdate = (
  p: Tensor,
  g: Tensor,
  m: Record<string, Tensor>,
  c: Coefs,
) => [Tensor, Record<string, Tensor>];

interface Spec {
  name: string;
  options: Record<string, unknown>;
  dynamic: string[];
  /** Moment names and how each starts. */
  moments: Record<string, (p: Tensor) => Tensor>;
  /** The float64 scalars of this step from the hyper-parameters (dynamic ones as tensors) and t = step + 1. */
  coefs: (h: Record<string, Tensor>, t: Tensor, step: Tensor) => Record<string, Tensor>;
  leaf: LeafUpdate;
}

function flatOf(op: string, what: string, tree: unknown, def: TreeDef | null, n: number): Tensor[] {
  const [leaves, d] = treeFlatten(tree);
  if (leaves.length !== n || (def !== null && JSON.stringify(d) !== JSON.stringify(def))) {
    throw new ShapeError(
      `${op}.update: ${what} must have the structure of the parameters (${n} tensors), got ${leaves.length}`,
    );
  }
  return leaves;
}

function makeFunctional(spec: Spec): FunctionalOptimizer {
  const op = spec.name;
  const momentNames = Object.keys(spec.moments);
  return Object.freeze({
    name: spec.name,
    options: Object.freeze({ ...spec.options }),
    dynamic: Object.freeze([...spec.dynamic]),
    moments: Object.freeze([...momentNames]),
    init<P>(params: P): FunctionalState {
      const [leaves, def] = treeFlatten(params);
      const st: FunctionalState = { step: full([], 0, { dtype: "int32" }) };
      noGrad(() => {
        for (const k of momentNames) {
          st[k] = treeUnflatten(
            def,
            leaves.map((p) => spec.moments[k](p.detach())),
          );
        }
      });
      return st;
    },
    update<P>(
      grads: P,
      state: FunctionalState,
      params: P,
      hyper: Readonly<Record<string, HyperValue | undefined>> = {},
    ): [P, FunctionalState] {
      const [ps, def] = treeFlatten(params);
      const gs = flatOf(op, "the gradients", grads, def, ps.length);
      if (!(state?.step instanceof Tensor)) {
        throw new TypeError(`${op}.update: the state has no step tensor; make it with init(params)`);
      }
      const ms = momentNames.map((k) => flatOf(op, `state.${k}`, state[k], def, ps.length));
      for (const k of Object.keys(hyper)) {
        if (!spec.dynamic.includes(k)) {
          throw new TypeError(
            `${op}.update: "${k}" cannot change per step (dynamic hyper-parameters: ${spec.dynamic.join(", ")}); make a new optimizer for it`,
          );
        }
      }
      const h: Record<string, Tensor> = {};
      for (const k of spec.dynamic) {
        const given = hyper[k];
        h[k] = scalar(op, k, given === undefined ? (spec.options[k] as number) : given);
      }
      const step = state.step.add(1);
      const t = step.to("float64");
      const c = new Coefs(spec.coefs(h, t, state.step));
      const newP: Tensor[] = [];
      const newM: Tensor[][] = momentNames.map(() => []);
      ps.forEach((p, i) => {
        const g = gs[i];
        if (!shapesEqual(g.shape, p.shape)) {
          throw new ShapeError(
            `${op}.update: gradient of shape ${fmtShape(g.shape)} for a parameter of shape ${fmtShape(p.shape)}`,
          );
        }
        const m: Record<string, Tensor> = {};
        momentNames.forEach((k, j) => {
          m[k] = ms[j][i];
        });
        const [p2, m2] = spec.leaf(p, g.dtype === p.dtype ? g : g.to(p.dtype), m, c);
        newP.push(p2);
        for (let j = 0; j < momentNames.length; j++) newM[j].push(m2[momentNames[j]]);
      });
      const st: FunctionalState = { step };
      momentNames.forEach((k, j) => {
        st[k] = treeUnflatten(def, newM[j]);
      });
      return [treeUnflatten(def, newP) as P, st];
    },
  });
}

const ONE = () => tensor(1, { dtype: "float64" });

/** `opts` completed with the defaults of the stateful twin `Opt`, and checked by it (with its messages). */
function optionsOf<H extends BaseHyper>(
  Opt: new (params: Tensor[], opts: Partial<H>) => Optimizer<H>,
  opts: Partial<H>,
): H {
  return { ...new Opt([zerosLike(tensor(0))], opts).defaults };
}

/**
 * SGD (torch.optim.SGD's rule, see sgd.ts). Dynamic: `lr`, `momentum` (its value; whether there is momentum
 * at all is fixed by the option). State: `momentumBuffer` when momentum > 0.
 *
 * @example
 * ```ts
 * const opt = functional.sgd({ lr: 0.1, momentum: 0.9, nesterov: true });
 * ```
 */
export function sgd(opts: Partial<SGDOptions> = {}): FunctionalOptimizer {
  const o = optionsOf(SGD, opts);
  const withMomentum = o.momentum !== 0;
  return makeFunctional({
    name: "SGD",
    options: { ...o },
    dynamic: ["lr", "momentum"],
    moments: withMomentum ? { momentumBuffer: zerosLike } : {},
    coefs: (h, _t, step) => ({ lr: h.lr, momentum: h.momentum, first: step.eq(0) }),
    leaf: (p, grad, m, c) => {
      let g = stepGrad(p, grad, o.maximize, o.weightDecay);
      const out: Record<string, Tensor> = {};
      if (withMomentum) {
        const mom = c.get("momentum", p.dtype);
        const prev = m.momentumBuffer;
        // the first buffer is the gradient itself; with dampening 0, mom * 0 + g is that already
        let buf = prev.mul(mom).add(g.mul(1 - o.dampening));
        if (o.dampening !== 0) buf = where(c.values.first, g, buf);
        out.momentumBuffer = buf;
        g = o.nesterov ? g.add(buf.mul(mom)) : buf;
      }
      return [p.sub(g.mul(c.get("lr", p.dtype))), out];
    },
  });
}

function adamLike(name: "Adam" | "AdamW", o: AdamOptions): FunctionalOptimizer {
  const decoupled = name === "AdamW";
  const beta2 = o.betas[1];
  const moments: Record<string, (p: Tensor) => Tensor> = { expAvg: zerosLike, expAvgSq: zerosLike };
  if (o.amsgrad) moments.maxExpAvgSq = zerosLike;
  return makeFunctional({
    name,
    options: { ...o, betas: [...o.betas], beta1: o.betas[0] },
    dynamic: ["lr", "beta1"],
    moments,
    coefs: (h, t) => {
      const one = ONE();
      return {
        beta1: h.beta1,
        oneMinusBeta1: one.sub(h.beta1),
        stepSize: h.lr.div(one.sub(h.beta1.pow(t))),
        bc2Sqrt: one.sub(tensor(beta2, { dtype: "float64" }).pow(t)).sqrt(),
        decay: one.sub(h.lr.mul(o.weightDecay)),
      };
    },
    leaf: (p0, grad, m, c) => {
      const dt = p0.dtype;
      const p = decoupled && o.weightDecay !== 0 ? p0.mul(c.get("decay", dt)) : p0;
      const g = stepGrad(p, grad, o.maximize, decoupled ? 0 : o.weightDecay);
      const expAvg = m.expAvg.mul(c.get("beta1", dt)).add(g.mul(c.get("oneMinusBeta1", dt)));
      const expAvgSq = m.expAvgSq.mul(beta2).add(g.mul(g).mul(1 - beta2));
      const out: Record<string, Tensor> = { expAvg, expAvgSq };
      let second = expAvgSq;
      if (o.amsgrad) {
        second = maximum(m.maxExpAvgSq, expAvgSq);
        out.maxExpAvgSq = second;
      }
      const denom = second.sqrt().div(c.get("bc2Sqrt", dt)).add(o.eps);
      return [p.sub(expAvg.div(denom).mul(c.get("stepSize", dt))), out];
    },
  });
}

/**
 * Adam with optional AMSGrad and coupled L2 weight decay (torch.optim.Adam's rule, see adam.ts). Dynamic:
 * `lr`, `beta1`. State: `expAvg`, `expAvgSq` (and `maxExpAvgSq` with amsgrad).
 *
 * @example
 * ```ts
 * const opt = functional.adam({ lr: 1e-3, amsgrad: true });
 * ```
 */
export function adam(opts: Partial<AdamOptions> = {}): FunctionalOptimizer {
  return adamLike("Adam", optionsOf(Adam, opts));
}

/**
 * AdamW: Adam with decoupled weight decay (default 1e-2), torch.optim.AdamW's rule. Dynamic: `lr`, `beta1`.
 *
 * @example
 * ```ts
 * const opt = functional.adamw({ lr: 1e-3, weightDecay: 0.05 });
 * ```
 */
export function adamw(opts: Partial<AdamOptions> = {}): FunctionalOptimizer {
  return adamLike("AdamW", optionsOf(AdamW, opts));
}

/**
 * RMSprop with optional momentum and centering (torch.optim.RMSprop's rule, see rmsprop.ts). Dynamic: `lr`,
 * `momentum`. State: `squareAvg`, `momentumBuffer` (momentum > 0), `gradAvg` (centered).
 *
 * @example
 * ```ts
 * const opt = functional.rmsprop({ lr: 1e-3, centered: true });
 * ```
 */
export function rmsprop(opts: Partial<RMSpropOptions> = {}): FunctionalOptimizer {
  const o = optionsOf(RMSprop, opts);
  const moments: Record<string, (p: Tensor) => Tensor> = { squareAvg: zerosLike };
  if (o.momentum > 0) moments.momentumBuffer = zerosLike;
  if (o.centered) moments.gradAvg = zerosLike;
  return makeFunctional({
    name: "RMSprop",
    options: { ...o },
    dynamic: ["lr", "momentum"],
    moments,
    coefs: (h) => ({ lr: h.lr, momentum: h.momentum }),
    leaf: (p, grad, m, c) => {
      const g = stepGrad(p, grad, o.maximize, o.weightDecay);
      const squareAvg = m.squareAvg.mul(o.alpha).add(g.mul(g).mul(1 - o.alpha));
      const out: Record<string, Tensor> = { squareAvg };
      let denom: Tensor;
      if (o.centered) {
        const gradAvg = m.gradAvg.mul(o.alpha).add(g.mul(1 - o.alpha));
        out.gradAvg = gradAvg;
        denom = squareAvg.sub(gradAvg.mul(gradAvg)).sqrt().add(o.eps);
      } else {
        denom = squareAvg.sqrt().add(o.eps);
      }
      const lr = c.get("lr", p.dtype);
      if (o.momentum > 0) {
        const buf = m.momentumBuffer.mul(c.get("momentum", p.dtype)).add(g.div(denom));
        out.momentumBuffer = buf;
        return [p.sub(buf.mul(lr)), out];
      }
      return [p.sub(g.div(denom).mul(lr)), out];
    },
  });
}

/**
 * Adagrad with learning-rate decay (torch.optim.Adagrad's rule, see adagrad.ts). Dynamic: `lr`. State: `sum`.
 *
 * @example
 * ```ts
 * const opt = functional.adagrad({ lr: 0.01, lrDecay: 1e-4 });
 * ```
 */
export function adagrad(opts: Partial<AdagradOptions> = {}): FunctionalOptimizer {
  const o = optionsOf(Adagrad, opts);
  return makeFunctional({
    name: "Adagrad",
    options: { ...o },
    dynamic: ["lr"],
    moments: { sum: (p) => fullLike(p, o.initialAccumulatorValue) },
    coefs: (h, t) => ({ clr: h.lr.div(t.sub(1).mul(o.lrDecay).add(1)) }),
    leaf: (p, grad, m, c) => {
      const g = stepGrad(p, grad, o.maximize, o.weightDecay);
      const sum = m.sum.add(g.mul(g));
      return [p.sub(g.div(sum.sqrt().add(o.eps)).mul(c.get("clr", p.dtype))), { sum }];
    },
  });
}

// ---- bridges to the stateful optimizers -------------------------------------------------------------------

/** The single parameter group of a stateful optimizer (a functional optimizer has one hyper-parameter set). */
function onlyGroup(op: string, opt: Optimizer<{ lr: number }>): Record<string, unknown> {
  if (opt.paramGroups.length !== 1) {
    throw new Error(
      `${op}: the optimizer has ${opt.paramGroups.length} parameter groups; a functional optimizer has one hyper-parameter set`,
    );
  }
  return opt.paramGroups[0] as unknown as Record<string, unknown>;
}

/**
 * The functional twin of a stateful optimizer (one of SGD, Adam, AdamW, RMSprop, Adagrad, with one parameter
 * group), with the group's current hyper-parameters.
 *
 * @example
 * ```ts
 * const f = functional.fromOptimizer(new Adam(model.parameters(), { lr: 1e-3 }));
 * ```
 */
export function fromOptimizer(opt: Optimizer<{ lr: number }>): FunctionalOptimizer {
  const g = onlyGroup("functional.fromOptimizer", opt);
  // the optimizer's own hyper-parameters only (schedulers add keys such as initialLr to a group)
  const h: Record<string, unknown> = {};
  for (const k of Object.keys(opt.defaults)) h[k] = g[k];
  if (opt instanceof AdamW) return adamw(h as Partial<AdamOptions>);
  if (opt instanceof Adam) return adam(h as Partial<AdamOptions>);
  if (opt instanceof SGD) return sgd(h as Partial<SGDOptions>);
  if (opt instanceof RMSprop) return rmsprop(h as Partial<RMSpropOptions>);
  if (opt instanceof Adagrad) return adagrad(h as Partial<AdagradOptions>);
  throw new TypeError(
    `functional.fromOptimizer: no functional twin for ${opt.constructor.name} (SGD, Adam, AdamW, RMSprop, Adagrad have one)`,
  );
}

/**
 * The dynamic hyper-parameters of `f` as a stateful optimizer's group holds them now (`beta1` is
 * `betas[0]`): what a learning-rate scheduler driving that optimizer has set for the next step.
 */
export function hyperOf(f: FunctionalOptimizer, opt: Optimizer<{ lr: number }>): Record<string, number> {
  const g = onlyGroup("functional.hyperOf", opt);
  const out: Record<string, number> = {};
  for (const k of f.dynamic) {
    const v = k === "beta1" ? (g.betas as number[])[0] : g[k];
    checkRange(`functional.hyperOf(${f.name})`, k, v, typeof v === "number", "a number");
    out[k] = v as number;
  }
  return out;
}

/** The parameter tensors of `opt` by name, checked against `named` (the names of a functional pytree). */
function paramsByName(op: string, opt: Optimizer<{ lr: number }>, named: Record<string, Tensor>): void {
  const own = new Set(onlyGroup(op, opt).params as Tensor[]);
  for (const [n, p] of Object.entries(named)) {
    if (!own.has(p)) throw new Error(`${op}: parameter "${n}" is not one of the optimizer's parameters`);
  }
}

/**
 * The functional state equivalent to a stateful optimizer's state (copies), for the parameters `named`
 * (name -> the optimizer's parameter tensor; the state's pytrees are keyed by these names). Parameters the
 * optimizer has no state for yet start from `f.init`; all must have made the same number of steps.
 */
export function stateFromOptimizer(
  f: FunctionalOptimizer,
  opt: Optimizer<{ lr: number }>,
  named: Record<string, Tensor>,
): FunctionalState {
  const op = "functional.stateFromOptimizer";
  paramsByName(op, opt, named);
  const st = f.init(named);
  let step: number | null = null;
  for (const [n, p] of Object.entries(named)) {
    const s = opt.state.get(p);
    if (s === undefined) continue;
    // SGD keeps no count: a momentum buffer means at least one step was taken
    const k = typeof s.step === "number" ? s.step : s.momentumBuffer instanceof Tensor ? 1 : 0;
    if (step !== null && k !== step) {
      throw new Error(`${op}: parameters have made different numbers of steps (${step} and ${k})`);
    }
    step = k;
    for (const m of f.moments) {
      const v = s[m];
      if (v instanceof Tensor) {
        (st[m] as Record<string, Tensor>)[n] = noGrad(() => v.detach().to(p.dtype).clone());
      }
    }
  }
  st.step = full([], step ?? 0, { dtype: "int32" });
  return st;
}

/**
 * Write a functional state back into a stateful optimizer (copies), so that its `stateDict()` (a checkpoint)
 * or further eager steps continue from it. `named` maps the state's keys to the optimizer's parameters.
 */
export function stateToOptimizer(
  f: FunctionalOptimizer,
  state: FunctionalState,
  opt: Optimizer<{ lr: number }>,
  named: Record<string, Tensor>,
): void {
  const op = "functional.stateToOptimizer";
  paramsByName(op, opt, named);
  const step = state.step.item() as number;
  for (const [n, p] of Object.entries(named)) {
    if (step === 0) {
      opt.state.delete(p);
      continue;
    }
    const s: OptimState = f.name === "SGD" ? {} : { step };
    for (const m of f.moments) {
      const v = (state[m] as Record<string, Tensor>)[n];
      s[m] = noGrad(() => v.detach().clone());
    }
    opt.state.set(p, s);
  }
}
