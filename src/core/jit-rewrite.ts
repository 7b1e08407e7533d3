/**
 * Rewrites of matrix products for jit's executor (part of `executionProgram`, core/jit-simplify.ts): shapes of
 * `dot` that the traced program gets from the ops layer and from dot's transpose rules, turned into products
 * the GEMM runs better, with the transposes left to its strided packing (free) instead of materialised.
 *
 * - Batch-summed products: `sum(dot(A, C), leading batch axes)`, where the product is read by nothing else, is
 *   one product over the batch folded into K: A [B..., K, M], C [B..., M, N] become [K, B M] @ [B M, N]. This
 *   is the weight gradient of a linear layer applied to [B, T, in] activations (dot's transpose against a
 *   weight broadcast over the batch sums over it): one GEMM with K = B T instead of B GEMMs with K = T written
 *   out as [B, K, N] and summed. The sum is then accumulated by the GEMM in the dtype (float32, as PyTorch's
 *   linear does) instead of in float64 across the batch, so the result differs by rounding.
 * - Transposed products: `permute(dot(a, b))` swapping the last two axes, the product read by nothing else, is
 *   `dot(b^T, a^T)` (views): the weight gradient computed directly in the weight's [out, in] layout, so the
 *   optimizer update reading it can become the product's epilogue (core/jit-fuse.ts). Both products are M x N
 *   GEMMs over the same K with each element's sum in the same order: the same values (not applied when M or N
 *   is 1, where the matrix-vector kernels would sum in another order).
 */
import { dotP } from "../prims/contract.ts";
import { addP, reluP } from "../prims/elementwise.ts";
import { permuteP, reshapeP } from "../prims/movement.ts";
import { type Atom, type Eqn, Literal, Program, Var } from "./jaxpr.ts";
import type { Primitive } from "./primitive.ts";

let fresh = -1_000_000;

function newVar(shape: readonly number[], like: Atom): Var {
  return new Var(fresh--, [...shape], like.dtype);
}

function eqn(prim: Primitive<unknown>, params: unknown, inputs: Atom[], out: Var, like: Eqn): Eqn {
  return { prim, name: prim.name, params, inputs, outputs: [out], sub: null, rule: null, scope: like.scope };
}

const isSwapLast = (perm: readonly number[]): boolean => {
  const n = perm.length;
  if (n < 2 || perm[n - 2] !== n - 1 || perm[n - 1] !== n - 2) return false;
  for (let i = 0; i < n - 2; i++) if (perm[i] !== i) return false;
  return true;
};

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** Each variable's producing equation, and how many times it is read (by equations and as an output). */
function producersAndReaders(p: Program): { producer: Map<Var, Eqn>; readers: Map<Var, number> } {
  const producer = new Map<Var, Eqn>();
  const readers = new Map<Var, number>();
  for (const e of p.eqns) {
    for (const o of e.outputs) producer.set(o, e);
    for (const a of e.inputs) if (!(a instanceof Literal)) readers.set(a, (readers.get(a) ?? 0) + 1);
  }
  for (const o of p.outs) if (!(o instanceof Literal)) readers.set(o, (readers.get(o) ?? 0) + 1);
  return { producer, readers };
}

/** The program with the products rewritten (see the module comment); `p` itself if nothing applies. */
export function rewriteProducts(p: Program, transposes = true): Program {
  const { producer, readers } = producersAndReaders(p);
  /** The dot producing `a`, read only once (by the equation being rewritten). */
  const soleDot = (a: Atom): Eqn | null => {
    if (a instanceof Literal || readers.get(a) !== 1) return null;
    const d = producer.get(a);
    if (d === undefined || d.name !== "dot" || d.prim === null) return null;
    const dt = a.dtype;
    return dt === "float32" || dt === "float64" ? d : null;
  };
  const replaced = new Map<Eqn, Eqn[]>();
  const dropped = new Set<Eqn>();
  let changed = false;
  for (const e of p.eqns) {
    if (e.prim === null) continue;
    if (e.name === "sum") {
      const d = soleDot(e.inputs[0]);
      if (d === null) continue;
      const [A, C] = d.inputs;
      const r = A.shape.length;
      const nb = r - 2;
      const axes = (e.params as { axes: readonly number[] }).axes;
      if (nb < 1 || axes.length !== nb || axes.some((x, i) => x !== i)) continue;
      if (e.outputs[0].shape.length !== 2) continue; // (keepdim-like params keep the batch axes)
      const B = prod(A.shape.slice(0, nb));
      const [K, M] = A.shape.slice(nb);
      const N = C.shape[r - 1];
      const out: Eqn[] = [];
      // A' [K, B M]: from x [B..., M, K] when A is its transpose (a view), else A's axes moved and merged
      let a2: Atom;
      const pa = A instanceof Literal ? undefined : producer.get(A);
      if (pa !== undefined && pa.name === "permute" && isSwapLast((pa.params as { perm: number[] }).perm)) {
        const x = pa.inputs[0];
        const xr = newVar([B * M, K], x);
        out.push(eqn(reshapeP as Primitive<unknown>, { shape: [B * M, K] }, [x], xr, e));
        a2 = newVar([K, B * M], x);
        out.push(eqn(permuteP as Primitive<unknown>, { perm: [1, 0] }, [xr], a2 as Var, e));
      } else {
        const perm = [nb, ...Array.from({ length: nb }, (_, i) => i), nb + 1];
        const moved = newVar([K, ...A.shape.slice(0, nb), M], A);
        out.push(eqn(permuteP as Primitive<unknown>, { perm }, [A], moved, e));
        a2 = newVar([K, B * M], A);
        out.push(eqn(reshapeP as Primitive<unknown>, { shape: [K, B * M] }, [moved], a2 as Var, e));
      }
      const c2 = newVar([B * M, N], C);
      out.push(eqn(reshapeP as Primitive<unknown>, { shape: [B * M, N] }, [C], c2, e));
      const res = e.outputs[0];
      const prodEqn = eqn(dotP as Primitive<unknown>, null, [a2, c2], res, e);
      out.push(prodEqn);
      // the new product may be transposed in turn (below): it is read where the sum was
      producer.set(res, prodEqn);
      replaced.set(e, out);
      dropped.add(d);
      changed = true;
      continue;
    }
    if (transposes && e.name === "permute" && isSwapLast((e.params as { perm: number[] }).perm)) {
      const d = soleDot(e.inputs[0]);
      if (d === null) continue;
      const [a, b] = d.inputs;
      const r = a.shape.length;
      const M = a.shape[r - 2];
      const N = b.shape[r - 1];
      if (M <= 1 || N <= 1) continue;
      const perm = [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
      const bt = newVar([...b.shape.slice(0, r - 2), N, b.shape[r - 2]], b);
      const at = newVar([...a.shape.slice(0, r - 2), a.shape[r - 1], M], a);
      const out = [
        eqn(permuteP as Primitive<unknown>, { perm }, [b], bt, e),
        eqn(permuteP as Primitive<unknown>, { perm }, [a], at, e),
        eqn(dotP as Primitive<unknown>, null, [bt, at], e.outputs[0], e),
      ];
      // the dot may itself be a rewritten sum (placed at the sum's position): the transpose goes after it
      const prev = replaced.get(producerEqnOf(d, replaced));
      if (prev !== undefined) {
        prev.pop(); // the product [K, N] is not needed: its transpose is computed directly
        prev.push(...out.slice(0, 2), out[2]);
        replaced.set(e, []);
      } else {
        replaced.set(e, out);
        dropped.add(d);
      }
      changed = true;
    }
  }
  if (!changed) return p;
  const eqns: Eqn[] = [];
  for (const e of p.eqns) {
    if (dropped.has(e)) continue;
    const r = replaced.get(e);
    if (r === undefined) eqns.push(e);
    else eqns.push(...r);
  }
  return new Program(p.constvars, p.consts, p.invars, eqns, p.outs, p.inTree, p.outTree);
}

/** The original equation a rewritten product stands in for (the sum it replaced), or the product itself. */
function producerEqnOf(d: Eqn, replaced: Map<Eqn, Eqn[]>): Eqn {
  for (const [orig, list] of replaced) if (list.includes(d)) return orig;
  return d;
}

let biasReluSplit = true;

/** @internal Whether `splitBiasRelu` applies (measurements); returns the previous setting. */
export function setBiasReluSplit(on: boolean): boolean {
  const prev = biasReluSplit;
  biasReluSplit = on;
  return prev;
}

/**
 * The program with every ReLU `biasAct(x, b)` whose x is a float product read by nothing else split into
 * `relu(add(x, b))`, for an executor with GEMM epilogues (core/jit-fuse.ts): the add and the relu then run on
 * each block of the product as the GEMM finishes it, instead of as a pass of their own over the stored product.
 * The same values: biasAct's ReLU rounds x + b to the dtype and applies max(., 0) with NaN kept, as the add and
 * relu kernels do. (Other activations stay fused as they are: their kernels agree with the unary ones only on
 * some instruction sets.) `p` itself if nothing applies.
 */
export function splitBiasRelu(p: Program): Program {
  if (!biasReluSplit) return p;
  const { producer, readers } = producersAndReaders(p);
  let changed = false;
  const eqns: Eqn[] = [];
  for (const e of p.eqns) {
    const [x, b] = e.inputs;
    const ok =
      e.name === "biasAct" &&
      e.prim !== null &&
      e.inputs.length === 2 &&
      (e.params as { act: string }).act === "relu" &&
      !(x instanceof Literal) &&
      (x.dtype === "float32" || x.dtype === "float64") &&
      readers.get(x) === 1 &&
      producer.get(x)?.name === "dot";
    if (!ok) {
      eqns.push(e);
      continue;
    }
    const sum = newVar(x.shape, x);
    eqns.push(eqn(addP as Primitive<unknown>, null, [x, b], sum, e));
    eqns.push(eqn(reluP as Primitive<unknown>, null, [sum], e.outputs[0], e));
    changed = true;
  }
  return changed ? new Program(p.constvars, p.consts, p.invars, eqns, p.outs, p.inTree, p.outTree) : p;
}
