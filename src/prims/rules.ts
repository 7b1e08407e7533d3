/**
 * Derivative-rule combinators. Each takes one mathematical statement of a derivative and gives both the JVP
 * (forward) and the VJP (reverse) rule, so a primitive's derivative is still written once.
 *
 * Primitive declarations call these while their modules load; the rules they build run later, with binders and
 * Tensor methods (see docs/architecture.md, "Layers").
 */
import type { Derivative, JvpRule, MaybeZero, VjpRule } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Zero derivative: the output is piecewise constant or discrete. */
export const zeroDerivative = { kind: "zero" } as const;

/** No derivative: differentiating through it is an error with this reason. */
export function noDerivative(why: string): { readonly kind: "none"; readonly why: string } {
  return { kind: "none", why };
}

/** A general rule pair. */
export function rule<P>(
  jvp: JvpRule<P>,
  vjp: VjpRule<P>,
  opts: { saveInputs?: boolean; saveOutput?: boolean } = {},
): Derivative<P> {
  return {
    kind: "rule",
    jvp,
    vjp,
    saveInputs: opts.saveInputs ?? true,
    saveOutput: opts.saveOutput ?? false,
  };
}

/**
 * Elementwise unary with derivative df(x, out): jvp = t * df, vjp = ct * df. `uses` says which of x and out
 * df reads, so reverse mode saves only those.
 */
export function elementwise(
  df: (x: Tensor, out: Tensor) => Tensor,
  uses: "x" | "out" | "both",
): Derivative<null> {
  return rule<null>(
    ([x], [t], out) => (t as Tensor).mul(df(x, out)),
    (ct, [x], out) => [ct.mul(df(x!, out!))],
    { saveInputs: uses !== "out", saveOutput: uses !== "x" },
  );
}

/**
 * A primitive linear in all its inputs: jvp applies the same primitive to the tangents (zeros instantiated by
 * `apply`), vjp is the transpose. No values are saved.
 */
export function linear<P>(
  apply: (tangents: readonly MaybeZero[], params: P) => MaybeZero,
  transpose: VjpRule<P>,
): Derivative<P> {
  return rule<P>((_, tangents, _out, params) => apply(tangents, params), transpose, { saveInputs: false });
}

/**
 * A bilinear primitive f(a, b): jvp = f(ta, b) + f(a, tb); vjp: the transposes with respect to each argument
 * (each uses the other primal). `f` is the primitive itself applied through ops.
 */
export function bilinear<P>(
  f: (a: Tensor, b: Tensor, params: P) => Tensor,
  transposeA: (ct: Tensor, b: Tensor, params: P, aShape: readonly number[]) => Tensor,
  transposeB: (ct: Tensor, a: Tensor, params: P, bShape: readonly number[]) => Tensor,
): Derivative<P> {
  return rule<P>(
    ([a, b], [ta, tb], _out, params) => {
      const l = isZero(ta) ? null : f(ta, b, params);
      const r = isZero(tb) ? null : f(a, tb, params);
      return l === null ? (r ?? new Zero(_out.shape, _out.dtype)) : r === null ? l : l.add(r);
    },
    (ct, [a, b], _out, params, needs, avals) => [
      needs[0] ? transposeA(ct, b!, params, avals[0].shape) : new Zero(avals[0].shape, avals[0].dtype),
      needs[1] ? transposeB(ct, a!, params, avals[1].shape) : new Zero(avals[1].shape, avals[1].dtype),
    ],
  );
}
