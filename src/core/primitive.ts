/**
 * What a primitive is: one typed object holding everything chainrule knows about an operation.
 *
 * A primitive declares its abstract evaluation (output shape and dtype, with argument checks), its
 * implementation on a backend, and its derivative: a JVP rule (forward mode) and a VJP rule (reverse mode).
 * Rule combinators in `src/prims/rules.ts` build both from one mathematical statement (for example
 * `elementwise(df)` gives jvp = t * df and vjp = ct * df), so a rule is still written once; the VJP is stated
 * directly rather than derived by transposing a recorded linear program because that keeps reverse mode free of
 * per-op recording overhead. Rules are written with chainrule's own differentiable ops, which is what makes
 * every nesting (grad of grad, forward over reverse) work.
 */
import type { DType } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** The abstract value of a tensor: what shape and dtype rules see. */
export interface Aval {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/**
 * A tangent or cotangent known to be zero, never allocated. Rules propagate it symbolically; it is
 * materialised only at a public API boundary (as a broadcast view of one zero element).
 */
export class Zero implements Aval {
  /** Brand: keeps a Tensor (which also has shape and dtype) from being mistaken for a Zero by the type checker. */
  readonly symbolicZero = true;
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}
}

export type MaybeZero = Tensor | Zero;

export function isZero(t: unknown): t is Zero {
  return t instanceof Zero;
}

/**
 * Forward-mode rule: the tangent of the output given primal inputs, their tangents (some symbolic zeros, never
 * all of them: so a unary primitive's one tangent is always a Tensor), the primal output, params, and the
 * primitive itself (a linear primitive's JVP is the primitive bound on the tangents).
 */
export type JvpRule<P> = (
  primals: readonly Tensor[],
  tangents: readonly MaybeZero[],
  out: Tensor,
  params: P,
  self: Primitive<P>,
) => MaybeZero;

/**
 * Reverse-mode rule: cotangents of the inputs given the output cotangent. `primals` holds the saved inputs
 * (entries are null when the primitive declared `saveInputs: false`), `out` the saved output (null unless
 * `saveOutput`), `avals` the input shapes/dtypes, `needs[i]` whether input i wants a cotangent (return Zero or
 * anything for the others; it is ignored).
 */
export type VjpRule<P> = (
  ct: Tensor,
  primals: readonly (Tensor | null)[],
  out: Tensor | null,
  params: P,
  needs: readonly boolean[],
  avals: readonly Aval[],
) => readonly MaybeZero[];

/** How a primitive behaves under differentiation. */
export type Derivative<P> =
  | {
      readonly kind: "rule";
      /** A JvpRule<P> (method syntax: `self` makes P invariant otherwise, and the registry widens P to never). */
      jvp(...args: Parameters<JvpRule<P>>): MaybeZero;
      readonly vjp: VjpRule<P>;
      /** Reverse mode needs the primal inputs (default true); linear primitives need only avals. */
      readonly saveInputs: boolean;
      /** Reverse mode needs the primal output (exp, tanh, sigmoid, sqrt ...). */
      readonly saveOutput: boolean;
    }
  /** Piecewise constant or discrete output (floor, sign, comparisons, argmax): the derivative is zero. */
  | { readonly kind: "zero" }
  /** No derivative exists; differentiating through it is an error naming the op. */
  | { readonly kind: "none"; readonly why: string };

/** Zero derivative: the output is piecewise constant or discrete. */
export const zeroDerivative = { kind: "zero" } as const;

/**
 * Batching rule (vmap): apply the primitive to a whole batch. `args` are the arguments one level down, each
 * batched along axis 0 (`batched[i]`) or shared by every example; the result is batched along axis 0 with
 * `size` examples. Combinators in src/prims/batching.ts build the usual ones.
 */
export type BatchRule<P> = (
  args: readonly Tensor[],
  batched: readonly boolean[],
  params: P,
  size: number,
  self: Primitive<P>,
) => Tensor;

/** One primitive operation: name, typed params, shape/dtype rule, kernel, derivative and batching rule, in one place. */
export interface Primitive<P = unknown> {
  readonly name: string;
  /** Abstract evaluation: validates arguments (throwing errors that name the op) and returns the output aval. */
  readonly abstract: (args: readonly Aval[], params: P) => Aval;
  /** Concrete evaluation on the current backend; args are concrete tensors. May return a view of an input. */
  readonly impl: (args: readonly Tensor[], params: P, out: Aval) => Tensor;
  readonly derivative: Derivative<P>;
  /** A BatchRule<P> (method syntax for the same reason as `jvp`); required, so every primitive batches. */
  batch(...args: Parameters<BatchRule<P>>): Tensor;
  /**
   * Kink check (opt-in, see `checkKinks`): true if the rule was applied exactly at a point where the primitive is
   * not differentiable (relu at 0, abs at 0, max at ties, ...).
   */
  readonly atKink?: (primals: readonly Tensor[], out: Tensor, params: P) => boolean;
  /**
   * What the derivative rule uses at the kink, for the kink report (default "0"): e.g. maximum splits the
   * gradient equally at ties, so its value there is 0.5 to each operand, not 0.
   */
  readonly kinkDerivative?: string;
}

/** The kink report's message for `prim`: where it was evaluated and the derivative value its rule used there. */
export function kinkMessage(prim: { readonly name: string; readonly kinkDerivative?: string }): string {
  return (
    `${prim.name} was evaluated exactly at a point where it is not differentiable; the derivative used there is ` +
    `the convention (${prim.kinkDerivative ?? "0"}), not a true derivative`
  );
}

/**
 * Test-only usage recorder: when set, the transforms report each derivative rule they invoke (by primitive name
 * and direction), so the coverage test can check the op table reaches every rule. Null in normal use: the
 * check is one comparison on the rule path only (never on plain evaluation).
 */
export let ruleRecorder: ((prim: string, which: RuleKind) => void) | null = null;

/** Which rule of a primitive the recorder saw applied. */
export type RuleKind = "jvp" | "vjp" | "batch";

/** Install (or, with null, remove) the rule recorder. */
export function setRuleRecorder(f: ((prim: string, which: RuleKind) => void) | null): void {
  ruleRecorder = f;
}
