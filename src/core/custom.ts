/**
 * Higher-order primitives: `checkpoint` (recompute the forward pass during backward instead of keeping its
 * intermediates), `customVjp` and `customJvp` (user-supplied derivative rules, e.g. a straight-through
 * estimator). Each is a `CallRule` bound through `bindCall`, so every trace decides what it means for it.
 */
import { AutodiffError } from "../errors.ts";
import { logRng, replayRng } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { treeFlatten, treeUnflatten, type TreeDef } from "../tree.ts";
import { isFloat } from "../dtype.ts";
import { jvpFlat, vjpFlat } from "./autodiff.ts";
import { closeOver } from "./control-programs.ts";
import { evalFlat } from "./jaxpr-eval.ts";
import { zerosLike } from "./helpers.ts";
import { bindCall, type CallRule, enableGrad, state } from "./trace.ts";

/** Wrap f (pytrees in and out) as a flat function of tensors, remembering the output structure. */
function flatten(f: (...args: any[]) => unknown, inDef: TreeDef) {
  const box: { outDef: TreeDef | null } = { outDef: null };
  const fn = (xs: readonly Tensor[]): Tensor[] => {
    const [outs, d] = treeFlatten(f(...(treeUnflatten(inDef, xs) as unknown[])));
    box.outDef = d;
    return outs;
  };
  return { fn, box };
}

/**
 * Reverse mode by recomputation (checkpoint, and jit on the eager tape): the outputs come from `forward`; the
 * backward pass differentiates `fn` again from the saved inputs. On the eager tape (`eager`) it records with grad
 * enabled and runs backward into the leaves `fn` closes over (module parameters), as PyTorch's checkpoint does.
 * A `createGraph` backward on the eager tape (grad mode on while it runs) differentiates `fn` again with what it
 * closes over as inputs (createGraphBackward), so the gradients keep their history.
 */
export function recomputingVjp(
  fn: (xs: readonly Tensor[]) => Tensor[],
  forward: (xs: readonly Tensor[]) => Tensor[],
  primals: readonly Tensor[],
  eager: boolean,
): { outs: Tensor[]; backward: (cts: readonly Tensor[]) => Tensor[] } {
  const outs = forward(primals);
  const backward = (cts: readonly Tensor[]): Tensor[] => {
    // state.gradEnabled is true in a backward pass only with createGraph
    if (eager && state.gradEnabled) return createGraphBackward(fn, primals, cts);
    if (eager) {
      return enableGrad(() => {
        const xs = primals.map((p) => {
          const d = p.detach();
          if (p.requiresGrad) d.requiresGrad = true;
          return d;
        });
        const ys = fn(xs);
        ys.forEach((y, i) => {
          if (y.requiresGrad) y.backward(cts[i], { retainGraph: true });
        });
        return xs.map((x) => x.grad ?? zerosLike(x));
      });
    }
    return vjpFlat(fn, primals, { retain: false }).backward(cts);
  };
  return { outs, backward };
}

/**
 * The eager recomputing backward under `createGraph`: `fn` traced with what it closes over (module parameters)
 * as explicit inputs, then differentiated functionally from the inputs themselves while grad mode is on, so every
 * cotangent carries its history (double backward). The cotangents of the closed-over tensors that take part in
 * the eager graph continue backward from them (into `.grad`, with their history); those of the call's inputs are
 * returned.
 */
function createGraphBackward(
  fn: (xs: readonly Tensor[]) => Tensor[],
  primals: readonly Tensor[],
  cts: readonly Tensor[],
): Tensor[] {
  // the program runs once, here: random numbers the body draws (replayed by checkpoint) are its constants
  const { prog, captured } = closeOver(
    fn,
    primals.map((p) => ({ shape: p.shape, dtype: p.dtype })),
    { randomAsConstants: true },
  );
  const g = vjpFlat((zs) => evalFlat(prog, zs), [...captured, ...primals], { retain: false }).backward(cts);
  captured.forEach((c, i) => {
    if (c._trace === null && c.requiresGrad && isFloat(c.dtype)) c.backward(g[i], { createGraph: true });
  });
  return g.slice(captured.length);
}

/**
 * Gradient checkpointing: `checkpoint(f)` computes like f, but reverse mode keeps only f's inputs and recomputes
 * f's intermediates during backward. In eager mode the recomputation records a fresh graph (so parameters that
 * f closes over receive gradients, as in PyTorch); inside `grad`/`vjp`, pass everything f differentiates as
 * arguments.
 *
 * @example
 * ```ts
 * const block = checkpoint((x: Tensor) => x.tanh().mul(x).sin());
 * grad((x: Tensor) => block(x).sum())(tensor([1, 2]));
 * ```
 */
export function checkpoint<F extends (...args: any[]) => any>(f: F): F {
  const wrapped = (...args: unknown[]) => {
    const [leaves, inDef] = treeFlatten(args);
    const { fn, box } = flatten(f, inDef);
    const rule: CallRule = {
      name: "checkpoint",
      ownsCreateGraph: true,
      fn,
      vjp: (primals, eager) => {
        // the recomputation draws the forward's random numbers again (a Dropout mask), as PyTorch's checkpoint
        let drawn: ReturnType<typeof logRng>[1] | null = null;
        const forward = (xs: readonly Tensor[]) => {
          const [outs, log] = logRng(() => fn(xs));
          drawn = log;
          return outs;
        };
        const again = (xs: readonly Tensor[]) => (drawn === null ? fn(xs) : replayRng(drawn, () => fn(xs)));
        return recomputingVjp(again, forward, primals, eager);
      },
    };
    const outs = bindCall(rule, leaves);
    return treeUnflatten(box.outDef!, outs);
  };
  return wrapped as F;
}

/**
 * A function with a custom reverse-mode rule. `fwd(...args)` returns `[output, residuals]`; `bwd(residuals, ct)`
 * returns one cotangent per argument. Forward mode (jvp) through it is an error; use customJvp for that.
 *
 * @example
 * ```ts
 * // straight-through estimator: round in the forward pass, identity gradient
 * const ste = customVjp((x: Tensor) => x.round(), {
 *   fwd: (x: Tensor) => [x.round(), null],
 *   bwd: (_res, ct: Tensor) => [ct],
 * });
 * ```
 */
export function customVjp<R>(
  f: (...args: Tensor[]) => Tensor,
  rules: { fwd: (...args: Tensor[]) => [Tensor, R]; bwd: (res: R, ct: Tensor) => Tensor[] },
): (...args: Tensor[]) => Tensor {
  return (...args: Tensor[]) => {
    const rule: CallRule = {
      name: "customVjp",
      fn: (xs) => [f(...xs)],
      jvp: () => {
        throw new AutodiffError(
          "customVjp: this function defines only a reverse-mode rule; forward mode (jvp) needs customJvp",
        );
      },
      vjp: (primals) => {
        const [out, res] = rules.fwd(...primals);
        return {
          outs: [out],
          backward: (cts) => {
            const g = rules.bwd(res, cts[0]);
            if (!Array.isArray(g) || g.length !== primals.length) {
              throw new AutodiffError(
                `customVjp: bwd must return ${primals.length} cotangents (one per argument)`,
              );
            }
            return g;
          },
        };
      },
    };
    return bindCall(rule, args)[0];
  };
}

/**
 * A function with a custom forward-mode rule: `jvpRule(primals, tangents)` returns `[output, tangentOut]`, linear
 * in the tangents. Reverse mode works too: the rule's tangent map is transposed by reverse-mode differentiation of
 * that linear map.
 */
export function customJvp(
  f: (...args: Tensor[]) => Tensor,
  jvpRule: (primals: Tensor[], tangents: Tensor[]) => [Tensor, Tensor],
): (...args: Tensor[]) => Tensor {
  return (...args: Tensor[]) => {
    const rule: CallRule = {
      name: "customJvp",
      fn: (xs) => [f(...xs)],
      jvp: (primals, tangents) => {
        const [o, t] = jvpRule([...primals], [...tangents]);
        return [[o], [t]];
      },
      vjp: (primals) => {
        const out = f(...primals);
        return {
          outs: [out],
          backward: (cts) => {
            const zeros = primals.map((p) => zerosLike(p));
            const { backward } = vjpFlat((ts) => [jvpRule([...primals], ts)[1]], zeros, { retain: false });
            return backward(cts);
          },
        };
      },
    };
    return bindCall(rule, args)[0];
  };
}

export { jvpFlat };
