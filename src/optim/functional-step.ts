/**
 * `makeTrainStep`: a whole training step (forward, loss, backward, optimizer update) as one pure function of
 * a state pytree, compiled by `jit` so that a step runs as one program with its parameters, buffers and
 * optimizer state donated (updated over their own storage), and its eager twin for comparison.
 *
 *   const step = makeTrainStep(model, (out, y) => nn.crossEntropy(out, oneHot(y)), functional.adam({ lr }));
 *   let state = step.init();                        // params, buffers, optimizer state (copies)
 *   for (const [x, y] of loader) [loss, state] = step(state, x, y, { lr: sched(i) });
 *   nn.loadModuleState(model, state);               // the trained values back into the model
 *
 * What a step's program depends on, and what makes it trace again: the shapes and dtypes of the state and
 * the batch, and the training flags of the model's layers. The learning rate and the other dynamic
 * hyper-parameters (see functional.ts) are scalar tensor arguments, and the step count is in the state, so
 * a schedule never retraces. Dropout masks are drawn outside the program by the layers' generators (in the
 * order eager code draws them) and passed in; BatchNorm's running statistics are state, returned updated.
 */
import { vjpFlat } from "../core/autodiff.ts";
import { jit, type Jitted } from "../core/jit.ts";
import type { Program } from "../core/jaxpr.ts";
import { ones, onesLike, tensor } from "../ops/creation.ts";
import { Tensor } from "../tensor/tensor.ts";
import { treeFlatten, treeUnflatten } from "../tree.ts";
import {
  dropoutRequests,
  drawDropoutMasks,
  functionalApply,
  type MaskRequest,
  moduleState,
  needsDropoutMasks,
} from "../nn/functional.ts";
import type { AnyModule, Module } from "../nn/module.ts";
import type { FunctionalOptimizer, FunctionalState, HyperValue } from "./functional.ts";

/** Everything a training step changes: the model's trainable parameters and buffers, the optimizer's state. */
export interface TrainState {
  params: Record<string, Tensor>;
  buffers: Record<string, Tensor>;
  opt: FunctionalState;
}

/** Options of `makeTrainStep`. */
export interface TrainStepOpts {
  /** Compile the step with `jit` (default true); false gives the eager twin (the same function, not traced). */
  jit?: boolean;
  /**
   * Donate the state to the compiled step (default true with jit): its storage is reused for the new state,
   * and the old state's tensors are deleted after the call (using one is an error).
   */
  donate?: boolean;
}

/** A training step: `[loss, newState, output] = step(state, x, y, hyper?)`. */
export interface TrainStep<X, Y, Out> {
  (
    state: TrainState,
    x: X,
    y: Y,
    hyper?: Readonly<Record<string, HyperValue | undefined>>,
  ): [Tensor, TrainState, Out];
  /** A fresh state: copies of the model's trainable parameters and buffers, and the optimizer's initial state. */
  init(): TrainState;
  /** How many times the step was traced (0 for the eager twin). */
  readonly traceCount: number;
  /** The compiled program for these arguments (jit only). */
  lower(state: TrainState, x: X, y: Y): Program;
}

/** The training flags of every layer: part of the step's signature (eval mode is another program). */
function modeKey(model: AnyModule): string {
  let k = "";
  for (const m of model.modules()) k += m.training ? "1" : "0";
  return k;
}

/**
 * Build a training step of `model` (called as `model.call(x)`) minimising `loss(output, y)` with the
 * functional optimizer `opt`. With `jit` (default) the step is one compiled program per signature; state
 * arguments are donated unless `donate: false`. Hyper-parameters given per call (`{ lr }`, `{ beta1 }`, ...)
 * override the optimizer's; they are traced scalars, so changing them does not retrace.
 *
 * The loss must be traceable: it must not read tensor values on the host. `crossEntropy` with int32 class
 * indices checks their range on the host, so give it one-hot (float) targets inside a jitted step.
 *
 * @example
 * ```ts
 * const step = makeTrainStep(net, (out, y: Tensor) => nn.mseLoss(out, y), functional.sgd({ lr: 0.1 }));
 * let state = step.init();
 * let loss: Tensor;
 * for (let i = 0; i < 100; i++) [loss, state] = step(state, x, y);
 * nn.loadModuleState(net, state);
 * ```
 */
export function makeTrainStep<X, Y, Out>(
  model: Module<[X], Out>,
  loss: (output: Out, y: Y) => Tensor,
  opt: FunctionalOptimizer,
  opts: TrainStepOpts = {},
): TrainStep<X, Y, Out> {
  const useJit = opts.jit ?? true;
  const donate = useJit && (opts.donate ?? true);

  const core = (
    params: Record<string, Tensor>,
    buffers: Record<string, Tensor>,
    optState: FunctionalState,
    x: X,
    y: Y,
    hyper: Record<string, Tensor>,
    masks: Tensor[],
    _mode: string,
  ): [Tensor, TrainState, Out] => {
    const [leaves, def] = treeFlatten(params);
    let bufDef = treeFlatten({})[1];
    let outDef = bufDef;
    const { outs, backward } = vjpFlat(
      (ps) => {
        const p = treeUnflatten(def, ps) as Record<string, Tensor>;
        const [out, nb] = functionalApply(model, { params: p, buffers }, [x], { masks });
        const l = loss(out, y);
        if (!(l instanceof Tensor) || l.size !== 1) {
          throw new TypeError("makeTrainStep: the loss function must return a scalar Tensor");
        }
        // the output and the buffers ride along as extra outputs of the vjp (no cotangent is seeded for them)
        const [bl, bd] = treeFlatten(nb);
        const [ol, od] = treeFlatten(out);
        bufDef = bd;
        outDef = od;
        return [l.reshape([]), ...bl, ...ol];
      },
      leaves,
      { retain: false },
    );
    const nBuf = treeFlatten(buffers)[0].length;
    const newBuffers = treeUnflatten(bufDef, outs.slice(1, 1 + nBuf)) as Record<string, Tensor>;
    const output = treeUnflatten(outDef, outs.slice(1 + nBuf)) as Out;
    const grads = treeUnflatten(def, backward([onesLike(outs[0])])) as Record<string, Tensor>;
    const [newParams, newOpt] = opt.update(grads, optState, params, hyper);
    return [outs[0], { params: newParams, buffers: newBuffers, opt: newOpt }, output];
  };

  const compiled: ((...a: Parameters<typeof core>) => ReturnType<typeof core>) &
    Partial<Jitted<typeof core>> = useJit
    ? jit(core, { staticArgnums: 7, donateArgnums: donate ? [0, 1, 2] : [] })
    : core;

  // the Dropout masks' shapes per input signature (found once by a shape-only trace)
  const requestCache = new Map<string, MaskRequest[]>();
  const masksFor = (state: TrainState, x: X, mode: string, draw = true): Tensor[] => {
    if (!needsDropoutMasks(model)) return [];
    const [xs] = treeFlatten(x);
    const key = `${mode}|${xs.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(";")}`;
    let req = requestCache.get(key);
    if (req === undefined) {
      req = dropoutRequests(model, { params: state.params, buffers: state.buffers }, [x]);
      requestCache.set(key, req);
    }
    // lower() only needs the shapes: it must not advance the generators
    return draw ? drawDropoutMasks(req) : req.map((r) => ones(r.shape, { dtype: r.dtype }));
  };

  const hyperOf = (given: Readonly<Record<string, HyperValue | undefined>>): Record<string, Tensor> => {
    for (const k of Object.keys(given)) {
      if (!opt.dynamic.includes(k)) {
        throw new TypeError(
          `makeTrainStep: "${k}" is not a per-step hyper-parameter of ${opt.name} (those are ${opt.dynamic.join(", ")})`,
        );
      }
    }
    const h: Record<string, Tensor> = {};
    for (const k of opt.dynamic) {
      const v = given[k] ?? (opt.options[k] as number);
      h[k] = v instanceof Tensor ? v.reshape([]).to("float64") : tensor(v, { dtype: "float64" });
    }
    return h;
  };

  const step = (
    state: TrainState,
    x: X,
    y: Y,
    hyper: Readonly<Record<string, HyperValue | undefined>> = {},
  ): [Tensor, TrainState, Out] => {
    const mode = modeKey(model);
    return compiled(
      state.params,
      state.buffers,
      state.opt,
      x,
      y,
      hyperOf(hyper),
      masksFor(state, x, mode),
      mode,
    );
  };
  Object.defineProperty(step, "traceCount", { get: () => compiled.traceCount ?? 0 });
  return Object.assign(step, {
    init: (): TrainState => {
      const s = moduleState(model);
      return { params: s.params, buffers: s.buffers, opt: opt.init(s.params) };
    },
    lower: (state: TrainState, x: X, y: Y): Program => {
      if (compiled.lower === undefined) throw new Error("makeTrainStep: lower needs { jit: true }");
      const mode = modeKey(model);
      return compiled.lower(
        state.params,
        state.buffers,
        state.opt,
        x,
        y,
        hyperOf({}),
        masksFor(state, x, mode, false),
        mode,
      );
    },
  }) as TrainStep<X, Y, Out>;
}
