/**
 * Jacobians with JAX's semantics: `jacrev`, `jacfwd`, `hessian`, built on `vmap` so a whole Jacobian is one
 * batched pass, never a JavaScript loop of one vjp/jvp per element.
 *
 * - jacrev: one `vjp` of f (the forward pass runs once), then the pullback vmapped over the standard basis of
 *   output cotangents: row r of the batch is the cotangent with a one at flat output element r.
 * - jacfwd: the `jvp` of f vmapped over the standard basis of input tangents (f runs once, on batched tangents).
 * - hessian: jacfwd(jacrev(f)) with the same argnums, so its structure nests as in JAX.
 *
 * Inputs and outputs are pytrees. For an output pytree O and the differentiated input pytree I, the Jacobian
 * has O's structure with each output leaf replaced by I's structure (with an array `argnums`, by an array over
 * the argnums of each argument's structure), and each leaf has shape `outLeaf.shape + inLeaf.shape`.
 */
import { allocTyped, type DType, isFloat } from "../dtype.ts";
import { DTypeError } from "../errors.ts";
import { contiguousStrides, fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type TreeDef, treeFlatten, treeUnflatten } from "../tree.ts";
import {
  type ArgnumsOf,
  type ArgsOf,
  type AuxOf,
  checkDifferentiable,
  type GradAt,
  type HasAux,
  jvpFlat,
  toTensorLeaf,
  vjpFlat,
} from "./autodiff.ts";
import { batchFlat } from "./vmap.ts";

export interface JacOpts {
  /** Which positional arguments to differentiate (default 0). An array gives, per output leaf, an array over them. */
  argnums?: number | readonly number[];
  /** f returns [output, aux]; the Jacobian function returns [jacobian, aux], aux not differentiated. */
  hasAux?: boolean;
}

/** A pytree of type O with each Tensor leaf replaced by J (the structure of a Jacobian of an output O). */
export type JacOut<O, J> = O extends Tensor
  ? J
  : O extends readonly unknown[]
    ? { -readonly [K in keyof O]: JacOut<O[K], J> }
    : O extends object
      ? { -readonly [K in keyof O]: JacOut<O[K], J> }
      : O;

/** The differentiated output of a function returning R (its first element with hasAux). */
type OutOf<R, O> = HasAux<O> extends true ? (R extends readonly [infer Y, unknown] ? Y : never) : R;

/** The structure of a Jacobian of F at argnums: per output leaf, the structure of the argument(s). */
type JacAt<F extends (...args: never[]) => unknown, O> = JacOut<
  OutOf<ReturnType<F>, O>,
  GradAt<Parameters<F>, ArgnumsOf<O>>
>;

/** What `jacrev(f, opts)` and `jacfwd(f, opts)` return. */
export type JacFn<F extends (...args: never[]) => unknown, O> = (
  ...args: ArgsOf<Parameters<F>>
) => HasAux<O> extends true ? [JacAt<F, O>, AuxOf<ReturnType<F>>] : JacAt<F, O>;

/** What `hessian(f, opts)` returns: the Jacobian of the Jacobian, nested as in JAX. */
export type HessianFn<F extends (...args: never[]) => unknown, O> = (
  ...args: ArgsOf<Parameters<F>>
) => HasAux<O> extends true
  ? [JacOut<JacAt<F, O>, GradAt<Parameters<F>, ArgnumsOf<O>>>, AuxOf<ReturnType<F>>]
  : JacOut<JacAt<F, O>, GradAt<Parameters<F>, ArgnumsOf<O>>>;

type AnyFn = (...args: never[]) => unknown;

/** The argnums list of `opts`, checked for type and duplicates (the range is checked per call). */
function parseArgnums(op: string, argnums: JacOpts["argnums"]): { nums: number[]; single: boolean } {
  const a = argnums ?? 0;
  const single = typeof a === "number";
  if (!single && !Array.isArray(a)) {
    throw new TypeError(`${op}: argnums must be a number or an array of numbers, got ${typeof a}`);
  }
  const nums = single ? [a] : [...a];
  for (const n of nums) {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
      throw new TypeError(`${op}: argnums must be non-negative integers, got ${String(n)}`);
    }
  }
  if (new Set(nums).size !== nums.length)
    throw new TypeError(`${op}: argnums [${nums.join(", ")}] repeats an argument`);
  return { nums, single };
}

/**
 * A function's call set up for differentiation: the differentiated input leaves and their structure (an array
 * over argnums, or one argument's structure), and f of those leaves returning its flat output leaves followed
 * by the flat aux leaves.
 */
interface Prepared {
  inLeaves: Tensor[];
  inDef: TreeDef;
  flat: (xs: Tensor[]) => Tensor[];
  /** Set by each call of `flat`. */
  meta: { outDef: TreeDef; nOut: number; auxDef: TreeDef | null };
}

function prepare(
  op: string,
  f: AnyFn,
  opts: JacOpts,
  argnums: { nums: number[]; single: boolean },
  rawArgs: unknown[],
): Prepared {
  const { nums, single } = argnums;
  // only differentiated numbers become tensors (see grad)
  const args = rawArgs.map((a, i) => (nums.includes(i) ? toTensorLeaf(a) : a));
  for (const n of nums) {
    if (n >= args.length)
      throw new RangeError(`${op}: argnums ${n} is out of range for ${args.length} arguments`);
  }
  const [inLeaves, inDef] = treeFlatten(single ? args[nums[0]] : nums.map((n) => args[n]));
  checkDifferentiable(op, inLeaves);
  const meta: Prepared["meta"] = { outDef: { kind: "leaf" }, nOut: 0, auxDef: null };
  const flat = (xs: Tensor[]): Tensor[] => {
    const sub = treeUnflatten(inDef, xs);
    const full = [...args];
    if (single) full[nums[0]] = sub;
    else {
      for (const [i, n] of nums.entries()) full[n] = (sub as unknown[])[i];
    }
    let out = (f as (...a: unknown[]) => unknown)(...full);
    let auxLeaves: Tensor[] = [];
    if (opts.hasAux) {
      if (!Array.isArray(out) || out.length !== 2) {
        throw new TypeError(`${op}: with hasAux the function must return [output, aux]`);
      }
      const [al, ad] = treeFlatten(out[1]);
      auxLeaves = al;
      meta.auxDef = ad;
      out = out[0];
    }
    const [outs, outDef] = treeFlatten(out);
    outs.forEach((o, i) => {
      if (!isFloat(o.dtype)) {
        throw new DTypeError(
          `${op}: output leaf ${i} (shape ${fmtShape(o.shape)}) has dtype ${o.dtype}; only floating-point outputs have a Jacobian`,
        );
      }
    });
    if (outDef.kind === "static") {
      throw new TypeError(
        `${op}: the function must return a Tensor or a pytree of Tensors, got ${out === null ? "null" : typeof out}`,
      );
    }
    meta.outDef = outDef;
    meta.nOut = outs.length;
    return [...outs, ...auxLeaves];
  };
  return { inLeaves, inDef, flat, meta };
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Block `[offset, offset + size)` of the columns of the n x n identity, shaped [n, ...shape]: the part of the
 * standard basis of an n-element flat vector that falls on one leaf of shape `shape` (size elements).
 */
function basisBlock(n: number, offset: number, shape: readonly number[], dtype: DType): Tensor {
  const size = sizeOf(shape);
  const data = allocTyped(dtype, n * size);
  for (let k = 0; k < size; k++) data[(offset + k) * size + k] = 1;
  const full = [n, ...shape];
  return Tensor._concrete(data, full, dtype, contiguousStrides(full));
}

/** The standard basis of the flat concatenation of `leaves`, one [n, ...leaf.shape] block per leaf. */
function basisOf(leaves: readonly Tensor[]): { n: number; offsets: number[]; blocks: Tensor[] } {
  const offsets: number[] = [];
  let n = 0;
  for (const l of leaves) {
    offsets.push(n);
    n += l.size;
  }
  return { n, offsets, blocks: leaves.map((l, i) => basisBlock(n, offsets[i], l.shape, l.dtype)) };
}

/** Assemble the Jacobian pytree: output structure outside, input structure inside. */
function assemble(
  outDef: TreeDef,
  outs: readonly Tensor[],
  inDef: TreeDef,
  ins: readonly Tensor[],
  block: (j: number, i: number) => Tensor,
): unknown {
  return treeUnflatten(
    outDef,
    outs.map((_, j) =>
      treeUnflatten(
        inDef,
        ins.map((_, i) => block(j, i)),
      ),
    ),
  );
}

function jacrevUntyped(f: AnyFn, opts: JacOpts = {}, op = "jacrev"): (...args: unknown[]) => unknown {
  const argnums = parseArgnums(op, opts.argnums);
  return (...rawArgs: unknown[]) => {
    const p = prepare(op, f, opts, argnums, rawArgs);
    const { outs, backward } = vjpFlat(p.flat, p.inLeaves, { retain: false });
    const { outDef, nOut, auxDef } = p.meta;
    const ys = outs.slice(0, nOut);
    const { n, offsets, blocks } = basisOf(ys);
    // rows[i]: [n, ...x_i.shape], row r = the cotangent of x_i for the basis cotangent r (one batched pullback)
    const rows =
      n === 0
        ? []
        : batchFlat(
            (cts) => backward(cts),
            blocks,
            blocks.map(() => true),
            n,
          );
    const jac = assemble(outDef, ys, p.inDef, p.inLeaves, (j, i) => {
      const y = ys[j];
      const x = p.inLeaves[i];
      if (y.size === 0 || x.size === 0) return zerosOf([...y.shape, ...x.shape], x.dtype);
      return rows[i].narrow(0, offsets[j], y.size).reshape([...y.shape, ...x.shape]);
    });
    return opts.hasAux ? [jac, treeUnflatten(auxDef!, outs.slice(nOut))] : jac;
  };
}

function jacfwdUntyped(f: AnyFn, opts: JacOpts = {}, op = "jacfwd"): (...args: unknown[]) => unknown {
  const argnums = parseArgnums(op, opts.argnums);
  return (...rawArgs: unknown[]) => {
    const p = prepare(op, f, opts, argnums, rawArgs);
    const { n, offsets, blocks } = basisOf(p.inLeaves);
    let all: Tensor[];
    let tangents: Tensor[];
    if (n === 0) {
      all = p.flat(p.inLeaves); // nothing to differentiate: f's value gives the shapes
      tangents = [];
    } else {
      // one batched jvp: tangents[j] is [n, ...y_j.shape], row r = the tangent of y_j along basis tangent r
      let primals: Tensor[] = [];
      tangents = batchFlat(
        (ts) => {
          const [ps, touts] = jvpFlat(p.flat, p.inLeaves, ts);
          primals = ps;
          return touts.slice(0, p.meta.nOut);
        },
        blocks,
        blocks.map(() => true),
        n,
      );
      all = primals;
    }
    const { outDef, nOut, auxDef } = p.meta;
    const ys = all.slice(0, nOut);
    const jac = assemble(outDef, ys, p.inDef, p.inLeaves, (j, i) => {
      const y = ys[j];
      const x = p.inLeaves[i];
      if (y.size === 0 || x.size === 0) return zerosOf([...y.shape, ...x.shape], y.dtype);
      return tangents[j]
        .reshape([n, y.size])
        .narrow(0, offsets[i], x.size)
        .transpose(0, 1)
        .reshape([...y.shape, ...x.shape]);
    });
    return opts.hasAux ? [jac, treeUnflatten(auxDef!, all.slice(nOut))] : jac;
  };
}

function zerosOf(shape: readonly number[], dtype: DType): Tensor {
  return Tensor._concrete(allocTyped(dtype, sizeOf(shape)), shape, dtype, contiguousStrides(shape));
}

/**
 * The Jacobian of f by reverse mode: f runs once under `vjp`, then its pullback runs once, vmapped over the
 * standard basis of the output cotangents. Best when outputs are fewer than inputs.
 *
 * `argnums` (default 0) selects the argument(s); inputs and outputs are pytrees. The result has f's output
 * structure, each output leaf replaced by the argument's structure (by an array over the arguments when
 * `argnums` is an array), each leaf of shape `out.shape + in.shape`. With `hasAux`, f returns [output, aux]
 * and the result is [jacobian, aux].
 *
 * @example
 * ```ts
 * jacrev((x: Tensor) => x.sin())(tensor([0, 1])); // diag(cos x), shape [2, 2]
 * const [dA, dx] = jacrev((A: Tensor, x: Tensor) => A.matmul(x), { argnums: [0, 1] })(A, x);
 * ```
 */
export function jacrev<
  F extends (...args: never[]) => unknown,
  const O extends JacOpts = Record<never, never>,
>(f: F, opts?: O): JacFn<F, O>;
export function jacrev(f: AnyFn, opts?: JacOpts): (...args: never[]) => unknown {
  return jacrevUntyped(f, opts);
}

/**
 * The Jacobian of f by forward mode: f's `jvp` runs once, vmapped over the standard basis of the input
 * tangents. Best when inputs are fewer than outputs. Options and result structure as `jacrev`.
 *
 * @example
 * ```ts
 * jacfwd((x: Tensor) => M.matmul(x))(x); // M
 * ```
 */
export function jacfwd<
  F extends (...args: never[]) => unknown,
  const O extends JacOpts = Record<never, never>,
>(f: F, opts?: O): JacFn<F, O>;
export function jacfwd(f: AnyFn, opts?: JacOpts): (...args: never[]) => unknown {
  return jacfwdUntyped(f, opts);
}

/**
 * The Hessian: jacfwd(jacrev(f)) with the same `argnums` (and `hasAux`), so its structure nests as in JAX:
 * for a scalar f of one tensor x, shape x.shape + x.shape; with `argnums: [0, 1]`, the 2 x 2 blocks
 * `[[H00, H01], [H10, H11]]`, block (a, b) of shape args[a].shape + args[b].shape.
 *
 * @example
 * ```ts
 * hessian((x: Tensor) => x.matmul(A).dot(x))(x); // A + A^T
 * ```
 */
export function hessian<
  F extends (...args: never[]) => unknown,
  const O extends JacOpts = Record<never, never>,
>(f: F, opts?: O): HessianFn<F, O>;
export function hessian(f: AnyFn, opts: JacOpts = {}): (...args: never[]) => unknown {
  return jacfwdUntyped(jacrevUntyped(f, opts, "hessian"), opts, "hessian");
}
