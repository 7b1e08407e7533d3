/**
 * The public transforms: `vjp`, `grad`, `valueAndGrad` (reverse mode), `jvp`, `linearize` (forward mode), and
 * `hvp` (`jacfwd`, `jacrev`, `hessian` are in jacobian.ts, built on these and vmap). Each accepts pytrees. Every
 * call pushes a new tagged trace (see trace.ts), so transforms nest to any depth without perturbation confusion.
 */
import { isFloat } from "../dtype.ts";
import { AutodiffError, DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { assertSameTree, treeFlatten, treeUnflatten, type TreeDef } from "../tree.ts";
import { onesLike, zerosLike } from "./helpers.ts";
import { JVPTrace } from "./jvp.ts";
import { runBackward, TapeTrace } from "./tape.ts";
import { popLevel, pushLevel } from "./trace.ts";

/** Convert number leaves to tensors so users may pass `grad(f)(3)`. */
export function toTensorLeaf(x: unknown): unknown {
  return typeof x === "number" ? Tensor._concrete(new Float32Array([x]), [], "float32", []) : x;
}

/*
 * Types of the transforms (compile time only; the implementations below are untyped over pytrees).
 * A gradient has the structure of its argument: tensor leaves stay tensors, other leaves come back as they
 * went in (treeUnflatten keeps "static" leaves), and a number passed as a whole argument becomes a scalar
 * Tensor (toTensorLeaf), so a parameter declared `number` has a Tensor gradient.
 */

/** The type of the gradient (or tangent, or cotangent) of an argument of type T. */
export type GradOf<T> = T extends number ? Tensor : T;

/** An argument the transforms accept for a parameter of type T: where a Tensor fits, a number does too. */
export type ArgOf<T> = Tensor extends T ? T | number : T;

/** The arguments the transforms accept for parameters P. */
export type ArgsOf<P extends readonly unknown[]> = { [K in keyof P]: ArgOf<P[K]> };

/** The gradients for each of parameters P, as the tuple vjp's pullback returns. */
export type GradsOf<P extends readonly unknown[]> = { [K in keyof P]: GradOf<P[K]> };

/** The `argnums` an options object selects (0 when absent). */
export type ArgnumsOf<O> = O extends { argnums: infer A extends number | readonly number[] } ? A : 0;

/** The gradient(s) grad returns for parameters P and argnums A: one, or a tuple when A is an array. */
export type GradAt<P extends readonly unknown[], A> = A extends number
  ? GradOf<P[A]>
  : A extends readonly number[]
    ? { -readonly [K in keyof A]: GradOf<P[A[K] & number]> }
    : never;

/** The aux value of a `hasAux` function (its result's second element). */
export type AuxOf<R> = R extends readonly [unknown, infer X] ? X : never;

/** Whether options turn `hasAux` on. */
export type HasAux<O> = O extends { hasAux: true } ? true : false;

/** A function grad/valueAndGrad accept: a scalar Tensor, or [Tensor, aux] with `hasAux`. */
export type ScalarFn = (...args: never[]) => Tensor | readonly [Tensor, unknown];

/** What `grad(f, opts)` returns. */
export type GradFn<F extends ScalarFn, O> = (
  ...args: ArgsOf<Parameters<F>>
) => HasAux<O> extends true
  ? [GradAt<Parameters<F>, ArgnumsOf<O>>, AuxOf<ReturnType<F>>]
  : GradAt<Parameters<F>, ArgnumsOf<O>>;

/** What `valueAndGrad(f, opts)` returns. */
export type ValueAndGradFn<F extends ScalarFn, O> = (
  ...args: ArgsOf<Parameters<F>>
) => HasAux<O> extends true
  ? [Tensor, GradAt<Parameters<F>, ArgnumsOf<O>>, AuxOf<ReturnType<F>>]
  : [Tensor, GradAt<Parameters<F>, ArgnumsOf<O>>];

/** Flat reverse mode: run f on tape tracers; returns primal outputs and a backward function. */
export function vjpFlat(
  f: (xs: Tensor[]) => Tensor[],
  primals: readonly Tensor[],
  opts: { retain?: boolean } = {},
): { outs: Tensor[]; backward: (cts: readonly Tensor[]) => Tensor[] } {
  const level = pushLevel();
  const trace = new TapeTrace(level);
  const inputs = primals.map((p) => trace.newInput(p));
  let traced: Tensor[];
  try {
    traced = f(inputs);
  } finally {
    trace.alive = false;
    popLevel(level);
  }
  const outs = traced.map((o) => (o._trace === trace ? o._primal! : o));
  const retain = opts.retain ?? true;
  let used = false;
  const backward = (cts: readonly Tensor[]): Tensor[] => {
    if (used && !retain)
      throw new AutodiffError("vjp: this backward function was already used and its residuals freed");
    used = true;
    const roots: { value: Tensor; ct: Tensor }[] = [];
    traced.forEach((o, i) => {
      if (o._trace === trace && cts[i] !== undefined) roots.push({ value: o, ct: cts[i] });
    });
    const leafCts = runBackward(roots, retain, "vjp");
    return inputs.map((x) => {
      const g = leafCts.get(x);
      return g === undefined ? zerosLike(x) : g;
    });
  };
  return { outs, backward };
}

/** Flat forward mode. */
export function jvpFlat(
  f: (xs: Tensor[]) => Tensor[],
  primals: readonly Tensor[],
  tangents: readonly Tensor[],
): [Tensor[], Tensor[]] {
  const level = pushLevel();
  const trace = new JVPTrace(level);
  let outs: Tensor[];
  try {
    outs = f(primals.map((p, i) => trace.lift(p, tangents[i])));
  } finally {
    trace.alive = false;
    popLevel(level);
  }
  const ps = outs.map((o) => (o._trace === trace ? o._primal! : o));
  const ts = outs.map((o) => (o._trace === trace ? (o._tangent as Tensor) : zerosLike(o)));
  return [ps, ts];
}

export function checkDifferentiable(op: string, leaves: readonly Tensor[]): void {
  leaves.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: input leaf ${i} is not a Tensor`);
    if (!isFloat(t.dtype)) {
      throw new DTypeError(
        `${op}: input leaf ${i} has dtype ${t.dtype}; only floating-point inputs can be differentiated (cast with .to("float32"))`,
      );
    }
  });
}

function outLeaves(op: string, out: unknown): [Tensor[], TreeDef] {
  const [leaves, def] = treeFlatten(out);
  leaves.forEach((t, i) => {
    if (!(t instanceof Tensor)) throw new TypeError(`${op}: output leaf ${i} is not a Tensor`);
  });
  return [leaves, def];
}

/**
 * Reverse mode: the outputs of f at `primals` and a function mapping output cotangents (same structure as the
 * outputs) to input cotangents (one per primal). The backward function may be called many times.
 *
 * @example
 * ```ts
 * const [y, back] = vjp((x) => x.sin(), tensor([0, 1]));
 * back(tensor([1, 1])); // [cos(0), cos(1)]
 * ```
 */
export function vjp<F extends (...args: never[]) => unknown>(
  f: F,
  ...primals: ArgsOf<Parameters<F>>
): [ReturnType<F>, (ct: ReturnType<F>) => GradsOf<Parameters<F>>];
export function vjp(f: (...args: any[]) => unknown, ...primals: unknown[]): [any, (ct: any) => any] {
  return vjpUntyped(f, ...primals);
}

function vjpUntyped<Out>(
  f: (...args: any[]) => Out,
  ...primals: unknown[]
): [Out, (ct: unknown) => unknown[]] {
  const args = primals.map(toTensorLeaf);
  const [inLeaves, inDef] = treeFlatten(args);
  checkDifferentiable("vjp", inLeaves);
  let outDef: TreeDef | null = null;
  const { outs, backward } = vjpFlat((xs) => {
    const [o, d] = outLeaves("vjp", f(...(treeUnflatten(inDef, xs) as unknown[])));
    outDef = d;
    return o;
  }, inLeaves);
  const back = (ct: unknown): unknown[] => {
    const [ctLeaves, ctDef] = treeFlatten(ct);
    assertSameTree("vjp", "the cotangent", outDef!, ctDef);
    ctLeaves.forEach((c, i) => {
      if (!shapesEqual(c.shape, outs[i].shape)) {
        throw new ShapeError(
          `vjp: cotangent ${i} has shape ${fmtShape(c.shape)}, expected ${fmtShape(outs[i].shape)}`,
        );
      }
    });
    return treeUnflatten(inDef, backward(ctLeaves)) as unknown[];
  };
  return [treeUnflatten(outDef!, outs) as Out, back];
}

export interface GradOpts {
  /** Which positional arguments to differentiate (default 0). An array gives a tuple of gradients. */
  argnums?: number | readonly number[];
  /** f returns [value, aux]; aux is returned alongside, not differentiated. */
  hasAux?: boolean;
}

/**
 * valueAndGrad(f)(...args) = [f(...args), gradient w.r.t. args[argnums]] for a scalar-valued f.
 *
 * @example
 * ```ts
 * const [v, g] = valueAndGrad((x: Tensor) => x.mul(x).sum())(tensor([1, 2])); // 5, [2, 4]
 * ```
 */
export function valueAndGrad<F extends ScalarFn, const O extends GradOpts = {}>(
  f: F,
  opts?: O,
): ValueAndGradFn<F, O>;
export function valueAndGrad(f: ScalarFn, opts?: GradOpts): (...args: any[]) => any {
  return valueAndGradUntyped(f, opts);
}

function valueAndGradUntyped(
  f: (...args: any[]) => unknown,
  opts: GradOpts = {},
): (...args: any[]) => [any, any, any?] {
  const argnums = opts.argnums ?? 0;
  const nums = typeof argnums === "number" ? [argnums] : [...argnums];
  return (...rawArgs: unknown[]) => {
    // only differentiated numbers become tensors: the others reach f as they were given (as in JAX), so a
    // static argument of a jitted f, a loop bound or a flag stays a number
    const args = rawArgs.map((a, i) => (nums.includes(i) ? toTensorLeaf(a) : a));
    for (const n of nums) {
      if (!Number.isInteger(n) || n < 0 || n >= args.length) {
        throw new RangeError(`grad: argnums ${n} is out of range for ${args.length} arguments`);
      }
    }
    const diffArgs = nums.map((n) => args[n]);
    const [leaves, def] = treeFlatten(diffArgs);
    checkDifferentiable("grad", leaves);
    // aux leaves leave the traced function as extra outputs (so they come back as values, not as tracers of the
    // finished trace), and are never seeded
    let auxDef: TreeDef | null = null;
    const { outs, backward } = vjpFlat(
      (xs) => {
        const sub = treeUnflatten(def, xs) as unknown[];
        const full = [...args];
        nums.forEach((n, i) => {
          full[n] = sub[i];
        });
        let out = f(...full);
        let auxLeaves: Tensor[] = [];
        if (opts.hasAux) {
          if (!Array.isArray(out) || out.length !== 2) {
            throw new TypeError("grad: with hasAux the function must return [value, aux]");
          }
          [auxLeaves, auxDef] = treeFlatten(out[1]);
          out = out[0];
        }
        if (!(out instanceof Tensor))
          throw new TypeError("grad: the function must return a Tensor (a scalar)");
        if (out.size !== 1) {
          throw new ShapeError(
            `grad: the function must return a scalar, got shape ${fmtShape(out.shape)}; use vjp or jacrev for non-scalar outputs`,
          );
        }
        if (!isFloat(out.dtype))
          throw new DTypeError(`grad: the output must be floating point, got ${out.dtype}`);
        return [out, ...auxLeaves];
      },
      leaves,
      { retain: false },
    );
    const g = treeUnflatten(def, backward([onesLike(outs[0])])) as unknown[];
    const grads = typeof argnums === "number" ? g[0] : g;
    return opts.hasAux ? [outs[0], grads, treeUnflatten(auxDef!, outs.slice(1))] : [outs[0], grads];
  };
}

/**
 * The gradient of a scalar-valued f with respect to args[argnums] (a pytree of the same structure).
 *
 * @example
 * ```ts
 * const df = grad((x: Tensor) => x.sin().sum());
 * df(tensor([0])); // [1]
 * grad(grad((x: Tensor) => x.pow(3)))(tensor(2)); // 12
 * ```
 */
export function grad<F extends ScalarFn, const O extends GradOpts = {}>(f: F, opts?: O): GradFn<F, O>;
export function grad(f: ScalarFn, opts?: GradOpts): (...args: any[]) => any {
  return gradUntyped(f, opts);
}

function gradUntyped(f: (...args: any[]) => unknown, opts: GradOpts = {}): (...args: any[]) => any {
  const vg = valueAndGradUntyped(f, opts);
  return (...args: unknown[]) => {
    const r = vg(...args);
    return opts.hasAux ? [r[1], r[2]] : r[1];
  };
}

/**
 * Forward mode: [f(primals), J(primals) tangents], primals and tangents as arrays of pytrees of equal structure.
 *
 * @example
 * ```ts
 * const [y, dy] = jvp((x: Tensor) => x.exp(), [tensor([0])], [tensor([1])]); // [1], [1]
 * ```
 */
export function jvp<F extends (...args: never[]) => unknown>(
  f: F,
  primals: ArgsOf<Parameters<F>>,
  tangents: ArgsOf<Parameters<F>>,
): [ReturnType<F>, ReturnType<F>];
export function jvp(
  f: (...args: any[]) => unknown,
  primals: readonly unknown[],
  tangents: readonly unknown[],
): [any, any] {
  return jvpUntyped(f, primals, tangents);
}

function jvpUntyped<Out>(
  f: (...args: any[]) => Out,
  primals: readonly unknown[],
  tangents: readonly unknown[],
): [Out, Out] {
  const [pl, pd] = treeFlatten(primals.map(toTensorLeaf));
  const [tl, td] = treeFlatten(tangents.map(toTensorLeaf));
  assertSameTree("jvp", "the tangents", pd, td);
  checkDifferentiable("jvp", pl);
  tl.forEach((t, i) => {
    if (!shapesEqual(t.shape, pl[i].shape)) {
      throw new ShapeError(
        `jvp: tangent ${i} has shape ${fmtShape(t.shape)}, the primal has ${fmtShape(pl[i].shape)}`,
      );
    }
  });
  let outDef: TreeDef | null = null;
  const [ps, ts] = jvpFlat(
    (xs) => {
      const [o, d] = outLeaves("jvp", f(...(treeUnflatten(pd, xs) as unknown[])));
      outDef = d;
      return o;
    },
    pl,
    tl.map((t, i) => (t.dtype === pl[i].dtype ? t : t.to(pl[i].dtype))),
  );
  return [treeUnflatten(outDef!, ps) as Out, treeUnflatten(outDef!, ts) as Out];
}

/**
 * Linearize f at primals: [f(primals), fJvp] where fJvp(...tangents) = J tangents. The linear map is recorded
 * once: fJvp transposes the recorded backward pass (the VJP of the VJP), so calling it never re-evaluates f.
 */
export function linearize<F extends (...args: never[]) => unknown>(
  f: F,
  ...primals: ArgsOf<Parameters<F>>
): [ReturnType<F>, (...tangents: ArgsOf<Parameters<F>>) => ReturnType<F>];
export function linearize<Out>(
  f: (...args: any[]) => Out,
  ...primals: unknown[]
): [Out, (...tangents: unknown[]) => Out] {
  const [out, back] = vjpUntyped(f, ...primals);
  const [outLeavesList, outDef] = treeFlatten(out);
  const zeroCts = treeUnflatten(
    outDef,
    outLeavesList.map((o) => zerosLike(o)),
  );
  const [, backOfBack] = vjpUntyped((ct: unknown) => back(ct), zeroCts);
  const fJvp = (...tangents: unknown[]): Out => backOfBack(tangents.map(toTensorLeaf))[0] as Out;
  return [out, fJvp];
}

/** Hessian-vector product of a scalar f (forward-over-reverse): H(x) v. */
export function hvp<T>(f: (x: T) => Tensor, x: ArgOf<T>, v: ArgOf<T>): GradOf<T>;
export function hvp(f: (x: any) => Tensor, x: unknown, v: unknown): any {
  return jvpUntyped((y: unknown) => gradUntyped(f)(y), [x], [v])[1];
}
