/**
 * Data-parallel training with a jitted step: `makeDistributedTrainStep` is `makeTrainStep` (optim/functional-step.ts)
 * for DDP. A collective cannot run inside a traced program, and DistributedDataParallel's gradient hooks never
 * fire under `jit` (the program differentiates a pytree of parameters, not the module's tensors), so the step is
 * makeTrainStep's two-program form, with the gradient average as its gradient hook:
 *
 *   1. forward, loss (times a per-step weight) and backward: `[loss, grads, newBuffers, output]`;
 *   2. on the host: the gradients averaged over the ranks (`allReduceGradients`: one all-reduce per dtype over a
 *      flat buffer, or DDP's deterministic tree);
 *   3. the optimizer update, with the parameters, the optimizer state and the averaged gradients donated.
 *
 * Every rank then holds the same parameters, as with DistributedDataParallel: `init()` takes rank 0's parameters
 * and buffers, and each step starts from rank 0's buffers (DDP's `broadcastBuffers`).
 */
import { allocTyped, type DType, type TypedArray } from "../dtype.ts";
import type { Module } from "../nn/module.ts";
import type { FunctionalOptimizer, HyperValue } from "../optim/functional.ts";
import { buildTrainStep, type TrainState } from "../optim/functional-step.ts";
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
  const parts = buildTrainStep(model, loss, opt, {
    op,
    weighted: true,
    gradHook: (grads) => {
      const [leaves, def] = treeFlatten(grads);
      return treeUnflatten(def, allReduceGradients(leaves, opts)) as Record<string, Tensor>;
    },
  });
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
    if (currentGroup(op).worldSize > 1) fromRank0(state.buffers);
    return parts.run(state, x, y, hyper, weight);
  };
  Object.defineProperty(step, "traceCount", {
    get: () => {
      const [grad, update] = parts.traces();
      return { grad, update };
    },
  });
  return Object.assign(step, {
    init: (): TrainState => {
      const s = parts.init();
      if (currentGroup(op).worldSize > 1) {
        fromRank0(s.params);
        fromRank0(s.buffers);
      }
      return s;
    },
  }) as DistributedTrainStep<X, Y, Out>;
}
