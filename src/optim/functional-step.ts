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
 *
 * With a `gradHook` the step is two programs, forward and backward, then the update, with the hook called on the
 * host between them (distributed.makeDistributedTrainStep averages the gradients over the ranks there).
 */
import { vjpFlat } from "../core/autodiff.ts";
import { type JitOpts, jit, type Jitted } from "../core/jit.ts";
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
  /**
   * Called on the host with the gradients between backward and the optimizer update; the update uses the
   * gradients it returns (the same keys, shapes and dtypes), e.g. averaged over processes. With a hook the
   * jitted step is two programs: forward and backward (nothing donated, so the old buffers stay valid), then
   * the update (the parameters, the optimizer state and the gradients donated); `lower` is not available.
   */
  gradHook?: GradHook;
}

/** A gradient hook of `makeTrainStep`: the gradients by parameter name in, the gradients the update uses out. */
export type GradHook = (grads: Record<string, Tensor>) => Record<string, Tensor>;

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
  /** How many times the step was traced (0 for the eager twin; with a gradHook, its two programs' traces added). */
  readonly traceCount: number;
  /** The compiled program for these arguments (jit only, without a gradHook). */
  lower(state: TrainState, x: X, y: Y): Program;
}

/**
 * @internal What `makeTrainStep` and `distributed.makeDistributedTrainStep` build a step from: the options, the
 * public function's name (for errors) and whether the step takes a loss weight.
 */
export interface TrainStepConfig extends TrainStepOpts {
  op: string;
  /**
   * The step takes a weight (a traced float64 scalar, default 1) multiplying the loss before backward; the loss
   * it returns is the unweighted one. Only with a gradHook.
   */
  weighted?: boolean;
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
 * override the optimizer's; they are traced scalars, so changing them does not retrace. A `gradHook` sees the
 * gradients between backward and the update (see TrainStepOpts).
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
  const parts = buildTrainStep(model, loss, opt, { ...opts, op: "makeTrainStep" });
  const step = (
    state: TrainState,
    x: X,
    y: Y,
    hyper: Readonly<Record<string, HyperValue | undefined>> = {},
  ): [Tensor, TrainState, Out] => parts.run(state, x, y, hyper);
  Object.defineProperty(step, "traceCount", { get: () => parts.traces().reduce((a, b) => a + b, 0) });
  return Object.assign(step, { init: parts.init, lower: parts.lower }) as TrainStep<X, Y, Out>;
}

/**
 * @internal The step of `makeTrainStep` (see there and TrainStepConfig): one program, or with a gradHook a
 * forward-and-backward program, the hook, and an update program.
 */
export function buildTrainStep<X, Y, Out>(
  model: Module<[X], Out>,
  loss: (output: Out, y: Y) => Tensor,
  opt: FunctionalOptimizer,
  config: TrainStepConfig,
) {
  const { op, gradHook } = config;
  const useJit = config.jit ?? true;
  const donate = useJit && (config.donate ?? true);
  if (config.weighted && gradHook === undefined) {
    throw new Error(`${op}: internal: a loss weight needs a gradHook`);
  }

  /**
   * Forward, loss and backward: the loss, the gradients (flat, in the order of `params`' leaves), the new
   * buffers and the output. With a weight, the weighted loss is differentiated and the plain one returned.
   * `_mode` (the layers' training flags) only keys the compiled program.
   */
  const forwardBackward = (
    params: Record<string, Tensor>,
    buffers: Record<string, Tensor>,
    x: X,
    y: Y,
    weight: Tensor | null,
    masks: Tensor[],
    _mode: string,
  ): [Tensor, Tensor[], Record<string, Tensor>, Out] => {
    const [leaves, def] = treeFlatten(params);
    let bufDef = treeFlatten({})[1];
    let outDef = bufDef;
    const { outs, backward } = vjpFlat(
      (ps) => {
        const p = treeUnflatten(def, ps) as Record<string, Tensor>;
        const [out, nb] = functionalApply(model, { params: p, buffers }, [x], { masks });
        const l = loss(out, y);
        if (!(l instanceof Tensor) || l.size !== 1) {
          throw new TypeError(`${op}: the loss function must return a scalar Tensor`);
        }
        // the output and the buffers ride along as extra outputs of the vjp (no cotangent is seeded for them)
        const [bl, bd] = treeFlatten(nb);
        const [ol, od] = treeFlatten(out);
        bufDef = bd;
        outDef = od;
        const l0 = l.reshape([]);
        return weight === null ? [l0, ...bl, ...ol] : [l0.mul(weight.to(l0.dtype)), l0, ...bl, ...ol];
      },
      leaves,
      { retain: false },
    );
    const k = weight === null ? 1 : 2; // where the buffers start among the outputs
    const nBuf = treeFlatten(buffers)[0].length;
    const newBuffers = treeUnflatten(bufDef, outs.slice(k, k + nBuf)) as Record<string, Tensor>;
    const output = treeUnflatten(outDef, outs.slice(k + nBuf)) as Out;
    const grads = backward([onesLike(outs[0])]);
    return [outs[k - 1], grads, newBuffers, output];
  };

  // the whole step as one program
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
    const [l, g, newBuffers, output] = forwardBackward(params, buffers, x, y, null, masks, _mode);
    const grads = treeUnflatten(treeFlatten(params)[1], g) as Record<string, Tensor>;
    const [newParams, newOpt] = opt.update(grads, optState, params, hyper);
    return [l, { params: newParams, buffers: newBuffers, opt: newOpt }, output];
  };
  // with a gradHook: forwardBackward, then (after the hook) the update
  const updateCore = (
    grads: Record<string, Tensor>,
    optState: FunctionalState,
    params: Record<string, Tensor>,
    hyper: Record<string, Tensor>,
  ): [Record<string, Tensor>, FunctionalState] =>
    opt.update(grads, optState, params, hyper) as [Record<string, Tensor>, FunctionalState];

  // the eager twin has the jitted type without its extras (no traceCount, no lower)
  const maybeJit = <F extends (...a: never[]) => unknown>(f: F, o: JitOpts): F & Partial<Jitted<F>> =>
    useJit ? jit(f, o) : (f as F & Partial<Jitted<F>>);
  const donated = donate ? [0, 1, 2] : [];
  const compiled =
    gradHook === undefined ? maybeJit(core, { staticArgnums: 7, donateArgnums: donated }) : null;
  const split =
    gradHook === undefined
      ? null
      : {
          hook: gradHook,
          grad: maybeJit(forwardBackward, { staticArgnums: 6 }),
          update: maybeJit(updateCore, { donateArgnums: donated }),
        };

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
          `${op}: "${k}" is not a per-step hyper-parameter of ${opt.name} (those are ${opt.dynamic.join(", ")})`,
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

  const run = (
    state: TrainState,
    x: X,
    y: Y,
    hyper: Readonly<Record<string, HyperValue | undefined>> = {},
    weight = 1,
  ): [Tensor, TrainState, Out] => {
    const mode = modeKey(model);
    if (compiled !== null) {
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
    }
    if (split === null) throw new Error(`${op}: internal: neither one program nor two`);
    const h = hyperOf(hyper);
    const w = config.weighted ? tensor(weight, { dtype: "float64" }) : null;
    const [l, g, buffers, out] = split.grad(
      state.params,
      state.buffers,
      x,
      y,
      w,
      masksFor(state, x, mode),
      mode,
    );
    const def = treeFlatten(state.params)[1];
    const grads = split.hook(treeUnflatten(def, g) as Record<string, Tensor>);
    const n = treeFlatten(grads)[0].length;
    if (n !== g.length) {
      throw new TypeError(`${op}: the gradHook returned ${n} gradients for ${g.length} parameters`);
    }
    const [params, optState] = split.update(grads, state.opt, state.params, h);
    return [l, { params, buffers, opt: optState }, out];
  };

  return {
    run,
    init: (): TrainState => {
      const s = moduleState(model);
      return { params: s.params, buffers: s.buffers, opt: opt.init(s.params) };
    },
    lower: (state: TrainState, x: X, y: Y): Program => {
      if (compiled?.lower === undefined) {
        throw new Error(
          `${op}: lower needs { jit: true }${gradHook === undefined ? "" : " and no gradHook"}`,
        );
      }
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
    traces: (): number[] =>
      split === null
        ? [compiled?.traceCount ?? 0]
        : [split.grad.traceCount ?? 0, split.update.traceCount ?? 0],
  };
}
