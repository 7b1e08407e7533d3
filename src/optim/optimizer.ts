/**
 * The optimizer base class: parameter groups, per-parameter state, `step`/`zeroGrad`, and state dicts.
 *
 * Shaped after torch.optim.Optimizer so PyTorch code ports line by line. An optimizer only needs `Tensor[]`
 * (or parameter groups), never a Module. Each group is a plain mutable object holding its tensors and its
 * hyper-parameters (`lr`, `weightDecay`, ...): schedulers change `group.lr` between steps, exactly as in
 * PyTorch. Per-parameter state (moments, step counts) lives in `state`, keyed by the parameter tensor.
 *
 * Updates run under `noGrad`: the new value is computed with ordinary tensor ops (so every backend works) and
 * written into the parameter's storage in place (`copy_`), so no graph is recorded and references to the
 * parameter held by a model stay valid. State tensors are replaced by fresh tensors at each step rather than
 * written in place, so a state dict taken earlier is a stable snapshot.
 *
 * State dicts follow PyTorch's layout: state keyed by the index of the parameter in group order, and one record of
 * hyper-parameters per group with `params` listing the indices. Values are tensors and numbers (plus JSON data
 * for hyper-parameters such as `betas`), so io's `encodeOptimizerState` / `checkpointToSafetensors` store it as
 * safetensors tensors + JSON metadata.
 */
import { enableGrad, noGrad } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { AutodiffError, DTypeError, ShapeError } from "../errors.ts";
import { zerosLike } from "../ops/creation.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";

/** Per-parameter optimizer state: moment tensors and counters. */
export type OptimState = Record<string, Tensor | number>;

/**
 * A parameter group: its tensors, the optimizer's hyper-parameters `H`, and any extra keys (as in PyTorch,
 * where schedulers add `initialLr` and users may add a name).
 */
export type ParamGroup<H> = H & { params: Tensor[]; [key: string]: unknown };

/** A parameter group as given to a constructor: hyper-parameters left out take the optimizer's defaults. */
export type ParamGroupSpec<H> = Partial<H> & { params: Iterable<Tensor>; [key: string]: unknown };

/** What an optimizer is built from: tensors, or parameter groups. */
export type ParamsArg<H> = Iterable<Tensor> | Iterable<ParamGroupSpec<H>>;

/** A serialisable snapshot of an optimizer: state by parameter index, hyper-parameters by group. */
export interface OptimizerStateDict {
  state: Record<string, Record<string, Tensor | number>>;
  paramGroups: Array<Record<string, unknown>>;
}

/** How `loadStateDict` checks one state entry: a tensor shaped like the parameter, or a number. */
export type StateSpec = Record<string, "tensor" | "number" | "tensor?">;

/** Hyper-parameters every optimizer has. */
export interface BaseHyper {
  lr: number;
}

/** Copy JSON-like data (arrays and plain objects are copied, other values kept). */
function copyValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyValue);
  if (v !== null && typeof v === "object" && !(v instanceof Tensor)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = copyValue(x);
    return o;
  }
  return v;
}

/**
 * Base class of all optimizers. Subclasses supply defaults, a hyper-parameter check, the initial state of a
 * parameter and the update of one parameter from its gradient.
 *
 * @example
 * ```ts
 * const opt = new Adam(model.parameters(), { lr: 1e-3 });
 * for (const [x, y] of batches) {
 *   opt.zeroGrad();
 *   lossFn(model.forward(x), y).backward();
 *   opt.step();
 * }
 * ```
 */
export abstract class Optimizer<H extends BaseHyper = BaseHyper> {
  /** Hyper-parameters used for keys a group does not set. */
  readonly defaults: Readonly<H>;
  /** The parameter groups; their hyper-parameters may be changed between steps (schedulers change `lr`). */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created lazily at the first step that parameter has a gradient. */
  state: Map<Tensor, OptimState> = new Map();
  /** The optimizer's name in error messages. */
  protected readonly name: string;

  protected constructor(name: string, params: ParamsArg<H>, defaults: H) {
    this.name = name;
    this.defaults = Object.freeze({ ...defaults });
    this.checkHyper(this.defaults);
    const items: unknown[] = Array.from(params as Iterable<unknown>);
    if (items.length === 0) throw new Error(`${name}: got an empty parameter list`);
    if (items.every((x) => x instanceof Tensor)) {
      this.addGroup(items as Tensor[], {});
    } else {
      for (const g of items) {
        if (g instanceof Tensor || g === null || typeof g !== "object" || !("params" in g)) {
          throw new TypeError(
            `${name}: expected an array of tensors or an array of parameter groups { params, ... }, not a mix`,
          );
        }
        this.addParamGroup(g as ParamGroupSpec<H>);
      }
    }
  }

  /** Validate hyper-parameters; throw a RangeError naming the optimizer, the key and the value. */
  protected abstract checkHyper(h: Readonly<H>): void;
  /** Which state entries a parameter of this group has (for `loadStateDict` checks). */
  protected abstract stateSpec(group: ParamGroup<H>): StateSpec;
  /**
   * The state of parameter `p` before its first update: by default 0 for each number of the group's state spec
   * and zeros shaped like `p` for each tensor (optional tensors, "tensor?", are left to the update to create).
   */
  protected initState(p: Tensor, group: ParamGroup<H>): OptimState {
    const st: OptimState = {};
    for (const [k, kind] of Object.entries(this.stateSpec(group))) {
      if (kind === "number") st[k] = 0;
      else if (kind === "tensor") st[k] = zerosLike(p);
    }
    return st;
  }
  /**
   * One update of `p` (in place) from gradient `g` (detached, same dtype and shape as `p`), under noGrad.
   * Mutates `state`.
   */
  protected abstract update(p: Tensor, g: Tensor, state: OptimState, group: ParamGroup<H>): void;

  /** Add a group of parameters with its own hyper-parameters (others from `defaults`). */
  addParamGroup(spec: ParamGroupSpec<H>): void {
    const { params, ...hyper } = spec;
    if (params === undefined || params === null || typeof params[Symbol.iterator] !== "function") {
      throw new TypeError(`${this.name}: a parameter group needs an array of tensors in "params"`);
    }
    this.addGroup(Array.from(params), hyper);
  }

  private addGroup(params: Tensor[], hyper: Record<string, unknown>): void {
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    params.forEach((p, i) => {
      if (!(p instanceof Tensor)) {
        throw new TypeError(`${this.name}: parameter ${i} of a group is not a Tensor (got ${typeof p})`);
      }
      if (!isFloat(p.dtype)) {
        throw new DTypeError(
          `${this.name}: can only optimize floating-point tensors, parameter ${i} is ${p.dtype}`,
        );
      }
      if (p._trace !== null || !p.isLeaf) {
        throw new AutodiffError(
          `${this.name}: can't optimize a non-leaf tensor (parameter ${i}, shape ${fmtShape(p.shape)}); ` +
            "pass the leaf tensors created with requiresGrad",
        );
      }
      if (seen.has(p)) {
        throw new Error(
          `${this.name}: a parameter (shape ${fmtShape(p.shape)}) appears in more than one group`,
        );
      }
      seen.add(p);
    });
    const group: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.defaults)) group[k] = copyValue(v);
    for (const [k, v] of Object.entries(hyper)) if (v !== undefined) group[k] = copyValue(v);
    group.params = params;
    const g = group as ParamGroup<H>;
    this.checkHyper(g);
    this.paramGroups.push(g);
  }

  /**
   * Update every parameter that has a gradient (parameters whose `grad` is null are skipped). With a
   * `closure`, it is called first with gradients enabled (it should zero the grads, compute the loss, call
   * backward and return the loss), and its result is returned.
   */
  step<L = undefined>(closure?: () => L): L | undefined {
    const loss = closure === undefined ? undefined : enableGrad(closure);
    noGrad(() => {
      for (const group of this.paramGroups) {
        this.checkHyper(group);
        for (const p of group.params) {
          if (p.grad === null) continue;
          const g = this.gradOf(p);
          let st = this.state.get(p);
          if (st === undefined) {
            st = this.initState(p, group);
            this.state.set(p, st);
          }
          this.update(p, g, st, group);
        }
      }
    });
    return loss;
  }

  /** The gradient of `p`, detached and in p's dtype, after checking its shape. */
  private gradOf(p: Tensor): Tensor {
    const g = p.grad!;
    if (!shapesEqual(g.shape, p.shape)) {
      throw new ShapeError(
        `${this.name}.step: gradient of shape ${fmtShape(g.shape)} for a parameter of shape ${fmtShape(p.shape)}`,
      );
    }
    // a gradient without history (the usual case) is passed as it is: detach would only make a view of it
    const d = g._node === null && !g._requiresGrad && g._trace === null ? g : g.detach();
    return d.dtype === p.dtype ? d : d.to(p.dtype);
  }

  /** Clear the gradients: set them to null (default, as PyTorch 2), or fill them with zeros in place. */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        if (p.grad === null) continue;
        if (setToNone) p.grad = null;
        else {
          const g = p.grad;
          noGrad(() => g.zero_());
        }
      }
    }
  }

  /**
   * A snapshot of the optimizer: state by parameter index (in group order), and each group's
   * hyper-parameters with `params` replaced by the list of indices. State tensors are copied, since fused
   * updates write into the optimizer's own state in place.
   */
  stateDict(): OptimizerStateDict {
    const state: Record<string, Record<string, Tensor | number>> = {};
    const paramGroups: Array<Record<string, unknown>> = [];
    let index = 0;
    for (const group of this.paramGroups) {
      const ids: number[] = [];
      for (const p of group.params) {
        const st = this.state.get(p);
        if (st !== undefined) {
          const snap: Record<string, Tensor | number> = {};
          for (const [k, v] of Object.entries(st)) snap[k] = v instanceof Tensor ? v.detach().clone() : v;
          state[String(index)] = snap;
        }
        ids.push(index++);
      }
      const rec: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(group)) if (k !== "params") rec[k] = copyValue(v);
      rec.params = ids;
      paramGroups.push(rec);
    }
    return { state, paramGroups };
  }

  /**
   * Restore a snapshot from `stateDict()` (of an optimizer of the same kind over parameters of the same
   * shapes, grouped the same way). Tensors are copied and cast to each parameter's dtype.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.name}.loadStateDict`;
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `${op}: the state dict has ${sd.paramGroups.length} parameter groups, the optimizer has ${this.paramGroups.length}`,
      );
    }
    const byIndex: Tensor[] = [];
    const groupOf: ParamGroup<H>[] = [];
    const newGroups: ParamGroup<H>[] = [];
    sd.paramGroups.forEach((saved, gi) => {
      const group = this.paramGroups[gi];
      const ids = saved.params;
      if (!Array.isArray(ids) || ids.length !== group.params.length) {
        throw new Error(
          `${op}: group ${gi} of the state dict has ${Array.isArray(ids) ? ids.length : "no"} parameters, ` +
            `the optimizer's group ${gi} has ${group.params.length}`,
        );
      }
      const merged: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(saved)) if (k !== "params") merged[k] = copyValue(v);
      merged.params = group.params;
      const ng = merged as ParamGroup<H>;
      for (const k of Object.keys(this.defaults)) {
        if (!(k in merged))
          throw new Error(`${op}: group ${gi} of the state dict has no hyper-parameter "${k}"`);
      }
      this.checkHyper(ng);
      newGroups.push(ng);
      ids.forEach((id, j) => {
        if (typeof id !== "number" || byIndex[id] !== undefined) {
          throw new Error(`${op}: group ${gi} lists an invalid or repeated parameter index ${String(id)}`);
        }
        byIndex[id] = group.params[j];
        groupOf[id] = ng;
      });
    });
    const newState = new Map<Tensor, OptimState>();
    for (const [key, saved] of Object.entries(sd.state)) {
      const p = byIndex[Number(key)];
      if (p === undefined || String(Number(key)) !== key) {
        throw new Error(
          `${op}: state entry "${key}" does not name a parameter (expected 0..${byIndex.length - 1})`,
        );
      }
      newState.set(p, this.loadEntry(op, key, p, saved, this.stateSpec(groupOf[Number(key)])));
    }
    // commit only after everything was checked, so a failed load leaves the optimizer unchanged
    newGroups.forEach((ng, gi) => {
      const g = this.paramGroups[gi];
      for (const k of Object.keys(g)) delete g[k];
      Object.assign(g, ng);
    });
    this.state = newState;
  }

  private loadEntry(
    op: string,
    key: string,
    p: Tensor,
    saved: Record<string, Tensor | number>,
    spec: StateSpec,
  ): OptimState {
    const out: OptimState = {};
    for (const [name, kind] of Object.entries(spec)) {
      const v = saved[name];
      if (v === undefined) {
        if (kind === "tensor?") continue;
        throw new Error(`${op}: state of parameter ${key} has no "${name}" (${this.name} needs it)`);
      }
      if (kind === "number") {
        if (typeof v !== "number") throw new TypeError(`${op}: state ${key}.${name} must be a number`);
        out[name] = v;
        continue;
      }
      if (!(v instanceof Tensor)) throw new TypeError(`${op}: state ${key}.${name} must be a Tensor`);
      if (!shapesEqual(v.shape, p.shape)) {
        throw new ShapeError(
          `${op}: state ${key}.${name} has shape ${fmtShape(v.shape)}, its parameter has shape ${fmtShape(p.shape)}`,
        );
      }
      out[name] = noGrad(() => v.detach().to(p.dtype).clone());
    }
    for (const name of Object.keys(saved)) {
      if (!(name in spec)) throw new Error(`${op}: state of parameter ${key} has unknown entry "${name}"`);
    }
    return out;
  }
}

/**
 * The gradient an update step uses: negated for `maximize`, plus the L2 penalty weightDecay * p (coupled weight
 * decay, as every PyTorch optimizer but AdamW applies it).
 */
export function stepGrad(p: Tensor, grad: Tensor, maximize: boolean, weightDecay: number): Tensor {
  const g = maximize ? grad.neg() : grad;
  return weightDecay !== 0 ? g.add(p.mul(weightDecay)) : g;
}

/**
 * Internal helper of the optim modules: throw a RangeError unless `ok` (NaN always fails), worded
 * `${opt}: invalid ${key} ${value} (expected ${what})`.
 */
export function checkRange(opt: string, key: string, value: unknown, ok: boolean, what: string): void {
  if (!ok || (typeof value === "number" && Number.isNaN(value))) {
    const shown = typeof value === "number" ? String(value) : JSON.stringify(value);
    throw new RangeError(`${opt}: invalid ${key} ${shown} (expected ${what})`);
  }
}
