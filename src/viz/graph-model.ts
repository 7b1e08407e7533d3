/**
 * The computation graph of a model's training step: `trainingStepGraph(net, x, y, opts)` draws the forward pass
 * and the loss of `input` against the targets `target` (a constant of the program) (and with `backward: true` the adjoint equations of `valueAndGrad` with respect to the
 * parameters), with the parameters as named inputs (`params.1.weight`) and each module call as a labelled
 * cluster, folded into one box below `depth`.
 *
 * While tracing, every module gets a no-op forward hook (so containers do not fuse a layer with its activation and
 * every module's call, hence its scope, is visible; the arithmetic is the same) and BatchNorm's running
 * statistics are set aside, so the step uses batch statistics as in training without its side effect (a running
 * statistic update is not part of a program). Both are restored afterwards.
 */
import { valueAndGrad } from "../core/autodiff.ts";
import { crossEntropy } from "../nn/loss.ts";
import { type AnyModule, functionalCall, type HookHandle } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type Graph, type GraphOptions, graph } from "./graph.ts";

/** Options of {@link trainingStepGraph}. */
export interface TrainingStepGraphOptions
  extends Omit<GraphOptions, "modules" | "inputNames" | "constNames" | "tangents"> {
  /** Draw the backward pass too: the program of valueAndGrad(loss) with respect to the parameters. */
  backward?: boolean;
  /** The loss of the logits and the targets (default cross-entropy). */
  loss?: (output: Tensor, target: Tensor) => Tensor;
}

/**
 * Draw `net`'s training step on a batch `input` with targets `target` (small batches suffice: the structure does
 * not depend on the batch size).
 *
 * @example
 * ```ts
 * const g = trainingStepGraph(net, randn([2, 1, 28, 28]), tensor([3, 7], { dtype: "int32" }), { depth: 1 });
 * writeFileSync("step.svg", await g.svg());
 * ```
 */
export function trainingStepGraph(
  net: AnyModule,
  input: Tensor,
  target: Tensor,
  opts: TrainingStepGraphOptions = {},
): Graph {
  const loss = opts.loss ?? ((out: Tensor, t: Tensor) => crossEntropy(out, t));
  const params: Record<string, Tensor> = Object.fromEntries(net.namedParameters());
  // the targets are closed over: a loss reads their values (class indices), so they are a constant of the program
  const step = (p: Record<string, Tensor>, x: Tensor): Tensor =>
    loss(functionalCall(net, p, x) as Tensor, target);
  const f = opts.backward === true ? valueAndGrad(step) : step;
  const handles: HookHandle[] = [];
  const stats: [AnyModule, string, unknown][] = [];
  try {
    for (const m of net.modules()) {
      handles.push(m.registerForwardPreHook(() => {}));
      const r = m as unknown as Record<string, unknown>;
      for (const k of ["runningMean", "runningVar", "numBatchesTracked"]) {
        if (r[k] !== undefined && r[k] !== null) {
          stats.push([m, k, r[k]]);
          r[k] = null;
        }
      }
    }
    const { backward: _b, loss: _l, ...graphOpts } = opts;
    return graph(f, {
      ...graphOpts,
      modules: net,
      inputNames: ["params", "x"],
      constNames: new Map([[target, "y"]]),
    })(params, input);
  } finally {
    for (const h of handles) h.remove();
    for (const [m, k, v] of stats) (m as unknown as Record<string, unknown>)[k] = v;
  }
}
