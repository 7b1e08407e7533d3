/**
 * Control flow with JAX's semantics: `scan`, `cond`, `switchCase`, `whileLoop`, `foriLoop`.
 *
 * Each construct traces its body once, on abstract values of the carry (and of one row of xs), into a closed
 * program: the values the body closes over become explicit operands, so every transform sees them. It is then
 * one higher-order call (core/control-rules.ts) that every trace interprets: eagerly the body program runs in a
 * loop through a jit executor compiled once; under makeJaxpr/jit it is one equation with its bodies; under
 * jvp, grad/vjp and vmap it becomes the same construct over the transformed bodies (reverse mode of scan is a
 * reverse scan; whileLoop is forward-differentiable only). Carries, xs, ys and branch operands are pytrees.
 */
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import { Tensor, weakScalars } from "../tensor/tensor.ts";
import { type TreeDef, treeDescribe, treeFlatten, treeUnflatten } from "../tree.ts";
import { avalOf, closeOver } from "./control-programs.ts";
import { bindCond, bindScan, bindWhile } from "./control-rules.ts";
import { Program, Var } from "./jaxpr.ts";
import type { Aval } from "./primitive.ts";

export type { CondParams, ScanParams, WhileParams } from "./control-rules.ts";

/** The path of every leaf of a structure, e.g. `carry[1].h`, for error messages. */
function leafPaths(def: TreeDef, root: string): string[] {
  switch (def.kind) {
    case "leaf":
      return [root];
    case "array":
      return def.children.flatMap((c, i) => leafPaths(c, `${root}[${i}]`));
    case "object":
      return def.children.flatMap((c, i) => leafPaths(c, `${root}.${def.keys[i]}`));
    case "static":
      return [];
  }
}

/** Check that `got` (a body's output leaves) matches `want` (structure, shapes, dtypes), naming the leaf. */
function checkLeaves(
  op: string,
  what: string,
  wantDef: TreeDef,
  want: readonly Aval[],
  gotDef: TreeDef,
  got: readonly Aval[],
  path: string,
  expected: string,
  rule: string,
): void {
  const dw = treeDescribe(wantDef);
  const dg = treeDescribe(gotDef);
  if (dw !== dg) {
    throw new ShapeError(`${op}: ${what} has structure ${dg}, but ${expected} has structure ${dw}; ${rule}`);
  }
  const paths = leafPaths(wantDef, path);
  want.forEach((w, i) => {
    const g = got[i];
    if (!shapesEqual(w.shape, g.shape)) {
      throw new ShapeError(
        `${op}: ${what}: leaf ${paths[i]} has shape ${fmtShape(g.shape)}, but ${expected} has shape ` +
          `${fmtShape(w.shape)} (dtype ${w.dtype}); ${rule}`,
      );
    }
    if (w.dtype !== g.dtype) {
      throw new DTypeError(
        `${op}: ${what}: leaf ${paths[i]} has dtype ${g.dtype}, but ${expected} has dtype ${w.dtype} (shape ` +
          `${fmtShape(w.shape)}); ${rule}`,
      );
    }
  });
}

const CARRY_RULE =
  "a carry keeps its structure, shapes and dtypes at every step (cast with .to(dtype) if needed)";

export interface ScanOpts {
  /** The number of steps; required when there are no xs, else it must equal their leading size. */
  length?: number;
  /** Scan from the last row of xs to the first (ys stay aligned with xs). */
  reverse?: boolean;
}

/**
 * JAX's `lax.scan`: loop `f(carry, x) -> [carry, y]` over the leading axis of `xs`, returning the final carry
 * and the stacked ys. Carry, xs and y are pytrees of tensors; the carry must keep its structure, shapes and
 * dtypes. The body is traced once; its derivatives (jvp, grad: a reverse scan) and batching work like any op.
 *
 * @example
 * ```ts
 * // cumulative sum
 * const [total, partial] = scan((c: Tensor, x: Tensor) => { const s = c.add(x); return [s, s]; }, zeros([]), xs);
 * ```
 */
export function scan<C, X, Y>(
  f: (carry: C, x: X) => readonly [C, Y],
  init: C,
  xs?: X | null,
  opts: ScanOpts = {},
): [C, Y] {
  if (typeof f !== "function") throw new TypeError("scan: expected a function f(carry, x) => [carry, y]");
  const [initLeaves, carryDef] = treeFlatten(init);
  const [xsLeaves, xsDef] = treeFlatten(xs ?? null);
  let length = opts.length;
  if (length !== undefined && (!Number.isInteger(length) || length < 0)) {
    throw new RangeError(`scan: length must be a non-negative integer, got ${length}`);
  }
  const xPaths = leafPaths(xsDef, "xs");
  xsLeaves.forEach((x, i) => {
    if (x.ndim === 0) {
      throw new ShapeError(`scan: ${xPaths[i]} is a scalar; xs leaves are scanned over their leading axis`);
    }
    if (length === undefined) length = x.shape[0];
    else if (x.shape[0] !== length) {
      throw new ShapeError(
        `scan: ${xPaths[i]} has leading size ${x.shape[0]} (shape ${fmtShape(x.shape)}), but ` +
          `${opts.length !== undefined ? "length is" : `${xPaths[0]} has`} ${length}`,
      );
    }
  });
  if (length === undefined) throw new ShapeError("scan: no xs to scan over: pass opts.length");
  const nk = initLeaves.length;
  const carryAvals = initLeaves.map(avalOf);
  let yDef: TreeDef | null = null;
  const flat = (ins: readonly Tensor[]): Tensor[] => {
    const carry = treeUnflatten(carryDef, ins.slice(0, nk)) as C;
    const x = treeUnflatten(xsDef, ins.slice(nk)) as X;
    const r = f(carry, x) as unknown;
    if (!Array.isArray(r) || r.length !== 2) {
      throw new ShapeError("scan: the body must return a pair [carry, y] (y may be null)");
    }
    const [cl, cd] = treeFlatten(r[0]);
    checkLeaves(
      "scan",
      "the body's output carry",
      carryDef,
      carryAvals,
      cd,
      cl,
      "carry",
      "the input carry",
      CARRY_RULE,
    );
    const [yl, yd] = treeFlatten(r[1]);
    yDef = yd;
    return [...cl, ...yl];
  };
  const { prog, captured } = closeOver(flat, [
    ...carryAvals,
    ...xsLeaves.map((x) => ({ shape: x.shape.slice(1), dtype: x.dtype })),
  ]);
  const outs = bindScan(
    { length, reverse: opts.reverse === true, numConsts: captured.length, numCarry: nk, body: prog },
    [...captured, ...initLeaves, ...xsLeaves],
  );
  return [treeUnflatten(carryDef, outs.slice(0, nk)) as C, treeUnflatten(yDef!, outs.slice(nk)) as Y];
}

/** A scalar predicate or index as an int32 tensor. */
function toIndex(op: string, v: Tensor | number | boolean, isPred: boolean): Tensor {
  if (typeof v === "boolean") return Tensor._concrete(new Int32Array([v ? 1 : 0]), [], "int32", []);
  if (typeof v === "number") {
    if (isPred) return Tensor._concrete(new Int32Array([v !== 0 ? 1 : 0]), [], "int32", []);
    if (!Number.isInteger(v)) throw new TypeError(`${op}: the index must be an integer, got ${v}`);
    return Tensor._concrete(new Int32Array([v]), [], "int32", []);
  }
  if (!(v instanceof Tensor)) {
    throw new TypeError(
      `${op}: the ${isPred ? "predicate" : "index"} must be a tensor, a number or a boolean`,
    );
  }
  if (v.ndim !== 0) {
    throw new ShapeError(
      `${op}: the ${isPred ? "predicate" : "index"} must be a scalar (shape []), got shape ${fmtShape(v.shape)} ` +
        "(under vmap, a per-example scalar is fine)",
    );
  }
  if (isPred) return v.dtype === "bool" ? v.int() : v.ne(0).int();
  if (v.dtype === "int32") return v;
  if (v.dtype === "bool") return v.int();
  throw new DTypeError(`${op}: the index must be an int32 (or bool) scalar, got ${v.dtype}`);
}

/** Shared by cond and switchCase: trace every branch, check they agree, join their captured values. */
function branches(
  op: string,
  index: Tensor,
  fns: readonly ((...a: never[]) => unknown)[],
  operands: unknown[],
): unknown {
  if (!Array.isArray(fns) || fns.length === 0)
    throw new TypeError(`${op}: expected a non-empty array of branches`);
  fns.forEach((g, i) => {
    if (typeof g !== "function") throw new TypeError(`${op}: branch ${i} is not a function`);
  });
  const [opLeaves, opDef] = treeFlatten(operands);
  const opAvals = opLeaves.map(avalOf);
  const traced = fns.map((g) => {
    let outDef: TreeDef | null = null;
    const c = closeOver((ins) => {
      const [l, d] = treeFlatten(g(...(treeUnflatten(opDef, ins) as never[])));
      outDef = d;
      return l;
    }, opAvals);
    return { ...c, outDef: outDef! };
  });
  const names = fns.length === 2 && op === "cond" ? ["falseFn", "trueFn"] : fns.map((_, i) => `branch ${i}`);
  const first = traced[0];
  const firstAvals = first.prog.outs.map(avalOf);
  traced.slice(1).forEach((t, i) => {
    checkLeaves(
      op,
      `${names[i + 1]}'s output`,
      first.outDef,
      firstAvals,
      t.outDef,
      t.prog.outs.map(avalOf),
      "out",
      `${names[0]}'s output`,
      "every branch must return the same structure, shapes and dtypes",
    );
  });
  // every branch takes every branch's captured values (each reads its own), then the operands
  const all: Tensor[] = [];
  const slot = new Map<Tensor, number>();
  for (const t of traced) {
    for (const c of t.captured) {
      if (!slot.has(c)) {
        slot.set(c, all.length);
        all.push(c);
      }
    }
  }
  let fresh = -1;
  const progs = traced.map((t) => {
    const nCap = t.captured.length;
    const invars: Var[] = all.map((c) => new Var(fresh--, [...c.shape], c.dtype));
    t.captured.forEach((c, j) => {
      invars[slot.get(c)!] = t.prog.invars[j];
    });
    return new Program(
      [],
      [],
      [...invars, ...t.prog.invars.slice(nCap)],
      t.prog.eqns,
      t.prog.outs,
      null,
      null,
    );
  });
  const outs = bindCond({ branches: progs }, [index, ...all, ...opLeaves]);
  return treeUnflatten(first.outDef, outs);
}

/**
 * JAX's `lax.cond`: `trueFn(...operands)` if `pred` is true, else `falseFn(...operands)`. Both branches are
 * traced (they must return the same structure, shapes and dtypes); only the chosen one runs. Under jit or
 * makeJaxpr the predicate may be a traced value (the choice happens when the program runs); under vmap with a
 * per-example predicate both branches run and each example takes its own result. Derivatives are those of the
 * chosen branch.
 *
 * @example
 * ```ts
 * const y = cond(x.sum().gt(0), (v: Tensor) => v.mul(2), (v: Tensor) => v.neg(), x);
 * ```
 */
export function cond<R>(
  pred: Tensor | boolean | number,
  trueFn: (...operands: never[]) => R,
  falseFn: (...operands: never[]) => R,
  ...operands: unknown[]
): R {
  return branches("cond", toIndex("cond", pred, true), [falseFn, trueFn], operands) as R;
}

/**
 * JAX's `lax.switch` (named `switchCase` because `switch` is a reserved word in JavaScript): applies
 * `branches[index](...operands)`, with the index clamped to `[0, branches.length - 1]` as JAX does. Same tracing,
 * transforms and batching as `cond`.
 */
export function switchCase<R>(
  index: Tensor | number,
  fns: readonly ((...operands: never[]) => R)[],
  ...operands: unknown[]
): R {
  return branches("switchCase", toIndex("switchCase", index, false), fns, operands) as R;
}

/**
 * JAX's `lax.while_loop`: `while (condFn(v)) v = bodyFn(v)`, returning v. `v` is a pytree of tensors whose
 * structure, shapes and dtypes the body keeps; `condFn` returns a bool scalar tensor. Forward mode (jvp)
 * differentiates through it; reverse mode is an error (use `scan`, or `foriLoop` with static bounds). Under
 * vmap with a per-example condition it runs until every example is done, freezing finished examples.
 */
export function whileLoop<T>(condFn: (v: T) => Tensor, bodyFn: (v: T) => T, init: T): T {
  if (typeof condFn !== "function" || typeof bodyFn !== "function") {
    throw new TypeError("whileLoop: expected whileLoop(condFn, bodyFn, init)");
  }
  const [initLeaves, def] = treeFlatten(init);
  const avals = initLeaves.map(avalOf);
  const c = closeOver((ins) => {
    const p = condFn(treeUnflatten(def, ins) as T) as unknown;
    if (!(p instanceof Tensor) || p.ndim !== 0 || p.dtype !== "bool") {
      const got = p instanceof Tensor ? `${p.dtype} ${fmtShape(p.shape)}` : typeof p;
      throw new ShapeError(`whileLoop: condFn must return a bool scalar tensor (shape []), got ${got}`);
    }
    return [p];
  }, avals);
  const b = closeOver((ins) => {
    const [l, d] = treeFlatten(bodyFn(treeUnflatten(def, ins) as T));
    checkLeaves("whileLoop", "bodyFn's output", def, avals, d, l, "carry", "the input carry", CARRY_RULE);
    return l;
  }, avals);
  const outs = bindWhile(
    { condNumConsts: c.captured.length, bodyNumConsts: b.captured.length, cond: c.prog, body: b.prog },
    [...c.captured, ...b.captured, ...initLeaves],
  );
  return treeUnflatten(def, outs) as T;
}

/** A concrete bound's value, or null when it is traced. */
function staticBound(op: string, v: number | Tensor, what: string): number | null {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new TypeError(`${op}: ${what} must be an integer, got ${v}`);
    return v;
  }
  if (!(v instanceof Tensor) || v.ndim !== 0) {
    throw new ShapeError(`${op}: ${what} must be an integer or a scalar tensor`);
  }
  // an integral number a jitted function received (traced): a bound known when the program runs
  if (weakScalars.kinds.get(v) === "int") return null;
  if (isFloat(v.dtype)) {
    throw new DTypeError(
      `${op}: ${what} must be an integer scalar, got ${v.dtype} (a non-integral number passed to a jitted ` +
        "function is traced as a float64 scalar: make that argument static with staticArgnums, which also " +
        "keeps the bounds concrete so reverse mode works, or pass an int32 tensor)",
    );
  }
  if (v._trace !== null || v._data === null) return null;
  return v._data[v._offset];
}

/**
 * JAX's `lax.fori_loop`: `for (i = lower; i < upper; i++) v = body(i, v)`, with `i` an int32 scalar tensor.
 * With concrete bounds (numbers, or tensors with values) it is a `scan` of `upper - lower` steps, so reverse
 * mode works; with traced bounds (under jit, makeJaxpr or vmap) it is a `whileLoop` (forward mode only).
 */
export function foriLoop<T>(
  lower: number | Tensor,
  upper: number | Tensor,
  body: (i: Tensor, v: T) => T,
  init: T,
): T {
  if (typeof body !== "function")
    throw new TypeError("foriLoop: expected foriLoop(lower, upper, body, init)");
  const lo = staticBound("foriLoop", lower, "lower");
  const hi = staticBound("foriLoop", upper, "upper");
  const int = (v: number | Tensor) =>
    v instanceof Tensor
      ? v.dtype === "int32"
        ? v
        : v.int()
      : Tensor._concrete(new Int32Array([v]), [], "int32", []);
  if (lo !== null && hi !== null) {
    const [[, v]] = scan(
      ([i, v]: [Tensor, T]): [[Tensor, T], null] => [[i.add(1), body(i, v)], null],
      [int(lo), init] as [Tensor, T],
      null,
      { length: Math.max(0, hi - lo) },
    );
    return v;
  }
  const [, , v] = whileLoop(
    ([i, u]: [Tensor, Tensor, T]) => i.lt(u),
    ([i, u, v]: [Tensor, Tensor, T]) => [i.add(1), u, body(i, v)] as [Tensor, Tensor, T],
    [int(lower), int(upper), init] as [Tensor, Tensor, T],
  );
  return v;
}
