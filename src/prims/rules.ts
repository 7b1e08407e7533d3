/**
 * Derivative-rule combinators. Each takes one mathematical statement of a derivative and gives both the JVP
 * (forward) and the VJP (reverse) rule, so a primitive's derivative is still written once. The JVP rules receive
 * the primitive itself, so a linear or bilinear primitive states only its transposes: its JVP is the primitive
 * bound on the tangents.
 *
 * Primitive declarations call these while their modules load; the rules they build run later, with binders and
 * Tensor methods (see docs/architecture.md, "Layers").
 */
import type { Aval, Derivative, JvpRule, MaybeZero, VjpRule } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { instantiate } from "./impl.ts";

// (declared in the leaf core/primitive.ts: a prims module may load while this one is still loading)
export { zeroDerivative } from "../core/primitive.ts";

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
 * A rule pair for a unary primitive. Its JVP receives the tangent as a Tensor: a rule runs only when some
 * tangent is non-zero, and a unary primitive has one.
 */
export function unaryRule<P>(
  jvp: (x: Tensor, t: Tensor, out: Tensor, params: P) => MaybeZero,
  vjp: VjpRule<P>,
  opts: { saveInputs?: boolean; saveOutput?: boolean } = {},
): Derivative<P> {
  return rule<P>((xs, ts, out, params) => jvp(xs[0], ts[0] as Tensor, out, params), vjp, opts);
}

/**
 * Elementwise unary with derivative df(x, out): jvp = t * df, vjp = ct * df. `uses` says which of x and out
 * df reads, so reverse mode saves only those.
 */
export function elementwise(
  df: (x: Tensor, out: Tensor) => Tensor,
  uses: "x" | "out" | "both",
): Derivative<null> {
  return unaryRule<null>(
    (x, t, out) => t.mul(df(x, out)),
    (ct, [x], out) => [ct.mul(df(x!, out!))],
    { saveInputs: uses !== "out", saveOutput: uses !== "x" },
  );
}

/**
 * A primitive linear in all its inputs: the JVP is the primitive bound on the tangents (symbolic zeros
 * instantiated), the VJP is `transpose`. No values are saved.
 */
export function linear<P>(transpose: VjpRule<P>): Derivative<P> {
  return rule<P>((_, ts, _out, params, self) => bind(self, ts.map(instantiate), params), transpose, {
    saveInputs: false,
  });
}

/**
 * A primitive linear in input k, whose other inputs only select (indices, or a piecewise-constant argmax
 * position: their derivative is zero): the JVP is the primitive with input k replaced by its tangent, the VJP
 * `transpose` for input k and zeros for the others (instantiated when asked for, as PyTorch's zeros_like, so an
 * eager leaf reaching the loss only through here still gets a .grad).
 */
export function linearIn<P>(
  k: number,
  transpose: (ct: Tensor, primals: readonly (Tensor | null)[], params: P, avals: readonly Aval[]) => Tensor,
): Derivative<P> {
  return rule<P>(
    (xs, ts, out, params, self) => {
      const tk = ts[k];
      if (isZero(tk)) return new Zero(out.shape, out.dtype);
      const args = xs.slice();
      args[k] = tk;
      return bind(self, args, params);
    },
    (ct, xs, _out, params, needs, avals) =>
      avals.map((av, i) =>
        !needs[i]
          ? new Zero(av.shape, av.dtype)
          : i === k
            ? transpose(ct, xs, params, avals)
            : instantiate(new Zero(av.shape, av.dtype)),
      ),
  );
}

/**
 * A bilinear primitive f(a, b): the JVP is f(ta, b) + f(a, tb) (the primitive bound twice), the VJP the
 * transposes with respect to each argument (each uses the other primal; the argument's own primal is passed
 * last, for a rule that picks the cotangent's layout from it).
 */
export function bilinear<P>(
  transposeA: (ct: Tensor, b: Tensor, params: P, aShape: readonly number[], a: Tensor) => Tensor,
  transposeB: (ct: Tensor, a: Tensor, params: P, bShape: readonly number[], b: Tensor) => Tensor,
): Derivative<P> {
  return rule<P>(
    ([a, b], [ta, tb], out, params, self) => {
      const l = isZero(ta) ? null : bind(self, [ta, b], params);
      const r = isZero(tb) ? null : bind(self, [a, tb], params);
      return l === null ? (r ?? new Zero(out.shape, out.dtype)) : r === null ? l : l.add(r);
    },
    (ct, [a, b], _out, params, needs, avals) => [
      needs[0] ? transposeA(ct, b!, params, avals[0].shape, a!) : new Zero(avals[0].shape, avals[0].dtype),
      needs[1] ? transposeB(ct, a!, params, avals[1].shape, b!) : new Zero(avals[1].shape, avals[1].dtype),
    ],
  );
}
