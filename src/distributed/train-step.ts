/**
 * Data-parallel training with a jitted step: `makeDistributedTrainStep` is `makeTrainStep` (optim/functional-step.ts)
 * for DDP. A collective cannot run inside a traced program, and DistributedDataParallel's gradient hooks never
 * fire under `jit` (the program differentiates a pytree of parameters, not the module's tensors), so the step is
 * two compiled programs with the gradient average between them:
 *
 *   1. forward, loss (times a per-step weight) and backward: `[loss, grads, newBuffers, output]`;
 *   2. on the host: the gradients averaged over the ranks (`allReduceGradients`: one all-reduce per dtype over a
 *      flat buffer, or DDP's deterministic tree);
 *   3. the optimizer update, with the parameters and optimizer state donated.
 *
 * Every rank then holds the same parameters, as with DistributedDataParallel: `init()` takes rank 0's parameters
 * and buffers, and each step starts from rank 0's buffers (DDP's `broadcastBuffers`).
 */
import { vjpFlat } from "../core/autodiff.ts";
import { jit } from "../core/jit.ts";
import { allocTyped, type DType, type TypedArray } from "../dtype.ts";
import { onesLike, tensor } from "../ops/creation.ts";
import {
  dropoutRequests,
  drawDropoutMasks,
  functionalApply,
  type MaskRequest,
  moduleState,
  needsDropoutMasks,
} from "../nn/functional.ts";
import type { AnyModule, Module } from "../nn/module.ts";
import type { FunctionalOptimizer, FunctionalState, HyperValue } from "../optim/functional.ts";
import type { TrainState } from "../optim/functional-step.ts";
import { contiguousStrides } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { treeFlatten, treeUnflatten } from "../tree.ts";
import { allGather, allReduce, broadcast, type Work } from "./collectives.ts";
import { treeMean } from "./ddp.ts";
import { currentGroup } from "./process-group.ts";

/** Options of {@link makeDistributedTrainStep}. */
export interface DistributedTrainStepOpts {
  /** Average the gradients in DDP's defined order (see DDPOptions.deterministic; default false). */
  deterministic?: boolean;
}

/** A data-parallel training step: `[loss, newState, output] = step(state, x, y, hyper?, weight?)`. */
export interface DistributedTrainStep<X, Y, Out> {
  /**
   * One step on this rank's share `x`, `y`. The loss is multiplied by `weight` (default 1) before backward (the
   * CLI weights uneven shares); the returned loss is the unweighted local one.
   */
  (
    state: TrainState,
    x: X,
    y: Y,
    hyper?: Readonly<Record<string, HyperValue | undefined>>,
    weight?: number,
  ): [Tensor, TrainState, Out];
  /** Copies of the model's parameters and buffers as rank 0 holds them, and the optimizer's initial state. */
  init(): TrainState;
  /** How many times each program was traced (for tests: a changing weight or lr must not retrace). */
  readonly traceCount: { grad: number; update: number };
}

/**
 * Average `grads` over the ranks and return the averages as new tensors (the inputs are not modified). The
 * gradients are packed into one flat buffer per dtype, so there is one collective per dtype. With
 * `deterministic`, each buffer is all-gathered and summed in rank order as a pairwise tree (DDP's order).
 */
export function allReduceGradients(
  grads: readonly Tensor[],
  opts: { deterministic?: boolean } = {},
): Tensor[] {
  const g = currentGroup("allReduceGradients");
  if (g.worldSize === 1) return [...grads];
  const groups = new Map<DType, number[]>();
  grads.forEach((t, i) => {
    const list = groups.get(t.dtype) ?? [];
    list.push(i);
    groups.set(t.dtype, list);
  });
  const out: Tensor[] = new Array(grads.length);
  const pending: {
    dtype: DType;
    idx: number[];
    flat: TypedArray;
    gathered: TypedArray | null;
    work: Work;
  }[] = [];
  for (const [dtype, idx] of groups) {
    const n = idx.reduce((a, i) => a + grads[i].size, 0);
    const flat = allocTyped(dtype, n);
    let off = 0;
    for (const i of idx) {
      flat.set(grads[i].contiguous().dataSync() as never, off);
      off += grads[i].size;
    }
    const t = Tensor._concrete(flat, [n], dtype, [1]);
    if (opts.deterministic) {
      const gathered = allocTyped(dtype, n * g.worldSize);
      const all = Tensor._concrete(gathered, [gathered.length], dtype, [1]);
      pending.push({ dtype, idx, flat, gathered, work: allGather(all, t, { async: true }) });
    } else {
      pending.push({ dtype, idx, flat, gathered: null, work: allReduce(t, "mean", { async: true }) });
    }
  }
  for (const p of pending) {
    p.work.wait();
    if (p.gathered !== null) treeMean(p.gathered, p.flat, g.worldSize);
    let off = 0;
    for (const i of p.idx) {
      const shape = grads[i].shape;
      out[i] = Tensor._concrete(p.flat, shape, p.dtype, contiguousStrides(shape), off);
      off += grads[i].size;
    }
  }
  return out;
}

/** The training flags of every layer: part of the programs' signature (eval mode is another program). */
function modeKey(model: AnyModule): string {
  let k = "";
  for (const m of model.modules()) k += m.training ? "1" : "0";
  return k;
}

/**
 * Build a data-parallel training step of `model` (see the module comment): `makeTrainStep`'s contract, with the
 * gradients averaged over the ranks of the process group between backward and the optimizer update. The loss
 * must be traceable (one-hot targets for crossEntropy). Call `initProcessGroup` first.
 *
 * @example
 * ```ts
 * distributed.initProcessGroup();
 * const step = distributed.makeDistributedTrainStep(net, (o, y) => nn.mseLoss(o, y), functional.sgd({ lr: 0.1 }));
 * let state = step.init();                       // rank 0's parameters on every rank
 * for (const [x, y] of loader) [, state] = step(state, x, y); // x, y: this rank's share
 * nn.loadModuleState(net, state);
 * ```
 */
export function makeDistributedTrainStep<X, Y, Out>(
  model: Module<[X], Out>,
  loss: (output: Out, y: Y) => Tensor,
  opt: FunctionalOptimizer,
  opts: DistributedTrainStepOpts = {},
): DistributedTrainStep<X, Y, Out> {
  const op = "makeDistributedTrainStep";
  currentGroup(op);

  const gradCore = (
    params: Record<string, Tensor>,
    buffers: Record<string, Tensor>,
    x: X,
    y: Y,
    weight: Tensor,
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
        const [bl, bd] = treeFlatten(nb);
        const [ol, od] = treeFlatten(out);
        bufDef = bd;
        outDef = od;
        const l0 = l.reshape([]);
        return [l0.mul(weight.to(l0.dtype)), l0, ...bl, ...ol];
      },
      leaves,
      { retain: false },
    );
    const nBuf = treeFlatten(buffers)[0].length;
    const newBuffers = treeUnflatten(bufDef, outs.slice(2, 2 + nBuf)) as Record<string, Tensor>;
    const output = treeUnflatten(outDef, outs.slice(2 + nBuf)) as Out;
    const grads = backward([onesLike(outs[0])]);
    return [outs[1], grads, newBuffers, output];
  };
  const updateCore = (
    grads: Record<string, Tensor>,
    optState: FunctionalState,
    params: Record<string, Tensor>,
    hyper: Record<string, Tensor>,
  ): [Record<string, Tensor>, FunctionalState] =>
    opt.update(grads, optState, params, hyper) as [Record<string, Tensor>, FunctionalState];

  const gradStep = jit(gradCore, { staticArgnums: 6 });
  const updateStep = jit(updateCore, { donateArgnums: [0, 1, 2] });

  const requestCache = new Map<string, MaskRequest[]>();
  const masksFor = (state: TrainState, x: X, mode: string): Tensor[] => {
    if (!needsDropoutMasks(model)) return [];
    const [xs] = treeFlatten(x);
    const key = `${mode}|${xs.map((t) => `${t.dtype}[${t.shape.join(",")}]`).join(";")}`;
    let req = requestCache.get(key);
    if (req === undefined) {
      req = dropoutRequests(model, { params: state.params, buffers: state.buffers }, [x]);
      requestCache.set(key, req);
    }
    return drawDropoutMasks(req);
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
  const fromRank0 = (tree: Record<string, Tensor>): void => {
    const works = treeFlatten(tree)[0].map((t) => broadcast(t, 0, { async: true }));
    for (const w of works) w.wait();
  };

  const step = (
    state: TrainState,
    x: X,
    y: Y,
    hyper: Readonly<Record<string, HyperValue | undefined>> = {},
    weight = 1,
  ): [Tensor, TrainState, Out] => {
    const mode = modeKey(model);
    if (currentGroup(op).worldSize > 1) fromRank0(state.buffers);
    const w = tensor(weight, { dtype: "float64" });
    const [l, grads, buffers, out] = gradStep(
      state.params,
      state.buffers,
      x,
      y,
      w,
      masksFor(state, x, mode),
      mode,
    );
    const [leaves, def] = treeFlatten(state.params);
    if (grads.length !== leaves.length) throw new Error(`${op}: internal: gradient count mismatch`);
    const avg = treeUnflatten(def, allReduceGradients(grads, opts)) as Record<string, Tensor>;
    const [params, optState] = updateStep(avg, state.opt, state.params, hyperOf(hyper));
    return [l, { params, buffers, opt: optState }, out];
  };
  Object.defineProperty(step, "traceCount", {
    get: () => ({ grad: gradStep.traceCount, update: updateStep.traceCount }),
  });
  return Object.assign(step, {
    init: (): TrainState => {
      const s = moduleState(model);
      if (currentGroup(op).worldSize > 1) {
        fromRank0(s.params);
        fromRank0(s.buffers);
      }
      return { params: s.params, buffers: s.buffers, opt: opt.init(s.params) };
    },
  }) as DistributedTrainStep<X, Y, Out>;
}
