/**
 * Batching-rule combinators (vmap). A batching rule says how to apply a primitive to a whole batch at once: it
 * receives the primitive's arguments one level down, each either batched (its batch dimension is axis 0, the
 * canonical place src/core/vmap.ts keeps it) or unbatched (the same value for every example), and returns the
 * output batched along axis 0. Most primitives need one of a few shapes of rule, built here once:
 * - `batchAll(shift)`: broadcast unbatched operands over the batch (a stride-0 view, no copy) and bind the
 *   primitive once with params whose axes/shapes are shifted by the new leading axis (elementwise ops, where,
 *   reductions, movement ops, dot, gather/scatter, softmax, ...);
 * - `batchFoldN(perSample)`: for NCHW ops (conv, pooling), fold the batch into N: [B, N, ...] -> [B*N, ...];
 * - `batchLoop`: the declared fallback, one application per example then stacked. Only rules that say so use
 *   it, and docs/adding-a-primitive.md lists them.
 * Like the derivative rules, these run later than the module loads, through binders (see rules.ts).
 */
import type { BatchRule } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { broadcast, concat, reshape, slice } from "./movement.ts";

export type { BatchRule } from "../core/primitive.ts";

/** `x` batched along axis 0: as is if already batched, else broadcast over the batch (a view). */
export function toBatched(x: Tensor, batched: boolean, size: number): Tensor {
  return batched ? x : broadcast(x, [size, ...x.shape]);
}

/**
 * Bind the primitive once on all operands batched along axis 0; `shift` maps the per-example params to the
 * batched ones (identity for elementwise primitives).
 */
export function batchAll<P>(shift?: (p: P, size: number) => P): BatchRule<P> {
  return (args, batched, p, size, self) =>
    bind(
      self,
      args.map((a, i) => toBatched(a, batched[i], size)),
      shift === undefined ? p : shift(p, size),
    );
}

/** Axes shifted past the new leading batch axis. */
export const shiftAxes = (axes: readonly number[]): number[] => axes.map((a) => a + 1);

/**
 * For NCHW primitives whose arguments at `perSample` carry the sample axis N first and whose other arguments
 * (weights, bias) are shared: fold the batch into N, bind once, unfold. `mapParams` rewrites params for the
 * folded N (output shapes). If a shared argument is batched (a per-example weight), falls back to `batchLoop`:
 * that fallback is declared here and listed in docs/adding-a-primitive.md.
 */
export function batchFoldN<P>(
  perSample: readonly number[],
  mapParams: (p: P, bn: number) => P,
): BatchRule<P> {
  return (args, batched, p, size, self) => {
    if (args.some((_, i) => batched[i] && !perSample.includes(i)))
      return batchLoop<P>()(args, batched, p, size, self);
    const n = args[perSample[0]].shape[batched[perSample[0]] ? 1 : 0];
    const folded = args.map((a, i) => {
      if (!perSample.includes(i)) return a;
      const b = toBatched(a, batched[i], size);
      return reshape(b, [size * n, ...b.shape.slice(2)]);
    });
    const out = bind(self, folded, mapParams(p, size * n));
    return reshape(out, [size, n, ...out.shape.slice(1)]);
  };
}

/** Replace the leading (N) entry of a shape. */
export const withN = (shape: readonly number[], n: number): number[] => [n, ...shape.slice(1)];

/** Example i of a batched value (axis 0 dropped). */
function example(x: Tensor, i: number): Tensor {
  const rest = x.shape.slice(1);
  const s = slice(
    x,
    x.shape.map((_, d) => (d === 0 ? i : 0)),
    x.shape.map(() => 1),
    [1, ...rest],
  );
  return reshape(s, rest);
}

/**
 * The loop fallback: apply the primitive to each example and stack the results. Correct for any primitive and
 * differentiable (it is built from slices and a concat), but `size` applications instead of one.
 */
export function batchLoop<P>(): BatchRule<P> {
  return (args, batched, p, size, self) => {
    const outs: Tensor[] = [];
    for (let i = 0; i < size; i++) {
      const o = bind(
        self,
        args.map((a, j) => (batched[j] ? example(a, i) : a)),
        p,
      );
      outs.push(reshape(o, [1, ...o.shape]));
    }
    return outs.length === 1 ? outs[0] : concat(outs, 0);
  };
}
