/**
 * Program simplification for `jit`: passes over a traced `Program` that return an equivalent, smaller one.
 *
 * - Inlining: a nested `jit` call equation (jit of a function that calls a jitted function) is replaced by its
 *   sub-program, so the executor sees one flat list.
 * - Algebra: equations that are the identity on one input (`x * 1`, `x + 0`, `x - 0`, `x / 1`, a reshape or
 *   broadcast to the same shape, a permute that keeps the axes, a cast to the same dtype, `neg(neg x)`) are
 *   dropped and their output replaced by that input. The adjoint program of `grad` is full of these (the seed 1
 *   multiplied through). A reshape of a reshape and a permute of a permute become one view of the first one's
 *   input (so a transpose transposed back is the identity).
 * - Common subexpressions: two equations applying the same primitive with the same params to the same atoms
 *   compute the same value (primitives are pure); the second is dropped.
 * - Dead code: equations none of whose outputs reach the program's outputs are dropped.
 * - Duplicate constants: two constants that are the same view of the same storage are one; two constants whose
 *   storage the trace itself allocated (`SimplifyOpts.fresh`: values computed at trace time, which no caller
 *   holds or updates) are one when their views and contents are equal. A function called twice while tracing
 *   (a loss evaluated, then differentiated) computes its trace-time values twice; merged, the equations reading
 *   them become common subexpressions.
 *
 * Constant folding needs no pass: while tracing, operations on values that do not depend on the inputs run
 * eagerly and enter the program as constants.
 */
import type { TypedArray } from "../dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type Atom, type Eqn, Literal, Program, type Var } from "./jaxpr.ts";
import { rewriteProducts } from "./jit-rewrite.ts";

/** The value of a literal (one distinct element). */
function literalValue(l: Literal): number {
  const c = l.value;
  return c._data![c._offset];
}

function isLit(a: Atom, v: number): boolean {
  return a instanceof Literal && literalValue(a) === v;
}

function sameAval(a: Atom, b: Var): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length) return false;
  for (let i = 0; i < b.shape.length; i++) if (a.shape[i] !== b.shape[i]) return false;
  return true;
}

/** If `e` is the identity on one of its inputs, that input. */
function identityOf(e: Eqn, producer: Map<Var, Eqn>): Atom | null {
  if (e.prim === null || e.outputs.length !== 1) return null;
  const out = e.outputs[0];
  const [a, b] = e.inputs;
  let cand: Atom | null = null;
  switch (e.name) {
    case "mul":
      cand = isLit(b, 1) ? a : isLit(a, 1) ? b : null;
      break;
    case "add":
      cand = isLit(b, 0) ? a : isLit(a, 0) ? b : null;
      break;
    case "sub":
    case "div":
      cand = isLit(b, e.name === "sub" ? 0 : 1) ? a : null;
      break;
    case "reshape":
    case "broadcast":
    case "cast":
      cand = a;
      break;
    case "permute": {
      const perm = (e.params as { perm: readonly number[] }).perm;
      cand = perm.every((d, i) => d === i) ? a : null;
      break;
    }
    case "neg": {
      const p = a instanceof Literal ? undefined : producer.get(a);
      cand = p !== undefined && p.name === "neg" ? p.inputs[0] : null;
      break;
    }
  }
  // the output must be exactly the candidate: same shape (no broadcasting happened) and dtype (no promotion)
  return cand !== null && sameAval(cand, out) ? cand : null;
}

/**
 * A reshape of a reshape, or a permute of a permute, as one view of the first one's input (the same elements in
 * the same order): the product rewrites (core/jit-rewrite.ts) and the bias gradients' unbroadcast leave such
 * chains (a transpose transposed back, [256] -> [1, 256] -> [256]); collapsed, a chain that comes back to its
 * input becomes an identity and is dropped, and the executor runs one view step or none instead of two.
 */
function collapseViews(e: Eqn, producer: Map<Var, Eqn>): Eqn {
  if (e.prim === null || (e.name !== "reshape" && e.name !== "permute")) return e;
  const x = e.inputs[0];
  const p = x instanceof Literal ? undefined : producer.get(x);
  if (p === undefined || p.prim !== e.prim || p.inputs[0] instanceof Literal) return e;
  if (e.name === "reshape") return { ...e, inputs: [p.inputs[0]] };
  const inner = (p.params as { perm: readonly number[] }).perm;
  const outer = (e.params as { perm: readonly number[] }).perm;
  return { ...e, inputs: [p.inputs[0]], params: { perm: outer.map((d) => inner[d]) } };
}

/** A key for a params value, or null when it cannot be compared structurally (then no CSE for that equation). */
function paramsKey(p: unknown, ids: Map<object, number>): string | null {
  if (p === null || p === undefined) return String(p);
  const t = typeof p;
  if (t === "number" || t === "boolean") return String(p);
  if (t === "string") return JSON.stringify(p);
  if (p instanceof Program) return programKey(p, ids);
  if (p instanceof Tensor || t === "function") {
    let id = ids.get(p as object);
    if (id === undefined) {
      id = ids.size;
      ids.set(p as object, id);
    }
    return `#${id}`;
  }
  if (Array.isArray(p)) {
    const parts: string[] = [];
    for (const x of p) {
      const k = paramsKey(x, ids);
      if (k === null) return null;
      parts.push(k);
    }
    return `[${parts.join(",")}]`;
  }
  if (t === "object") {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(p as object)) {
      const s = paramsKey(x, ids);
      if (s === null) return null;
      parts.push(`${k}:${s}`);
    }
    return `{${parts.join(",")}}`;
  }
  return null;
}

/**
 * A structural key of a program (a control-flow body held in params): two programs with equal keys compute the
 * same function. Variables are numbered by first appearance, constants and call rules compared by identity.
 */
function programKey(p: Program, ids: Map<object, number>): string | null {
  const num = new Map<Var, number>();
  const v = (x: Var) => {
    let n = num.get(x);
    if (n === undefined) {
      n = num.size;
      num.set(x, n);
    }
    return n;
  };
  const aval = (a: Atom) => `${a.dtype}[${a.shape.join(",")}]`;
  const atom = (a: Atom): string => (a instanceof Literal ? `L${aval(a)}:${literalValue(a)}` : `v${v(a)}`);
  const parts: string[] = [];
  parts.push(p.constvars.map((c, i) => `${v(c)}=${paramsKey(p.consts[i], ids)}`).join(","));
  parts.push(p.invars.map((x) => `${v(x)}:${aval(x)}`).join(","));
  for (const e of p.eqns) {
    const pk = paramsKey(e.params, ids);
    if (pk === null) return null;
    let head = `${e.name}|${pk}`;
    if (e.prim === null) {
      if (e.sub !== null) {
        const sk = programKey(e.sub, ids);
        if (sk === null) return null;
        head += `|${sk}`;
      }
      if (e.rule !== null && e.rule.staged === undefined) head += `|${paramsKey(e.rule, ids) ?? "?"}`;
    }
    parts.push(
      `${head}(${e.inputs.map(atom).join(",")})->${e.outputs.map((o) => `${v(o)}:${aval(o)}`).join(",")}`,
    );
  }
  parts.push(p.outs.map(atom).join(","));
  return `P{${parts.join(";")}}`;
}

/**
 * Replace call equations by their sub-program's equations (recursively), renaming their variables: those named
 * `jit`, or with `all`, every call that has a sub-program (checkpoint, customJvp, customVjp and other custom
 * rules, whose evaluation is their sub-program's).
 */
function inlineCalls(p: Program, all: boolean): Eqn[] {
  const out: Eqn[] = [];
  for (const e of p.eqns) {
    if (e.prim !== null || (!all && e.name !== "jit") || e.sub === null) {
      out.push(e);
      continue;
    }
    const sub = e.sub;
    const rename = new Map<Var, Atom>();
    sub.invars.forEach((v, i) => {
      rename.set(v, e.inputs[i]);
    });
    const mapAtom = (a: Atom): Atom => (a instanceof Literal ? a : (rename.get(a) ?? a));
    for (const se of inlineCalls(sub, all)) out.push({ ...se, inputs: se.inputs.map(mapAtom) });
    // the call's outputs are the sub-program's outputs: alias them through an identity the next pass removes
    sub.outs.forEach((o, i) => {
      const target = e.outputs[i];
      const src = mapAtom(o);
      out.push({
        prim: null,
        name: "alias",
        params: null,
        inputs: [src],
        outputs: [target],
        sub: null,
        rule: null,
        scope: e.scope,
      });
    });
  }
  return out;
}

/** Options of `simplifyProgram`. */
export interface SimplifyOpts {
  /** Storage allocated by the trace itself: constants over it are merged by value (see the module comment). */
  readonly fresh?: WeakSet<TypedArray> | null;
  /** Inline every call with a sub-program, not only nested jit calls (`executionProgram`). */
  readonly inlineAll?: boolean;
}

/** The view of a constant as a key: dtype, shape, strides, offset (its storage compared separately). */
function viewKey(t: Tensor): string {
  return `${t.dtype}|${t.shape.join(",")}|${t._strides.join(",")}|${t._offset}|${t._data!.length}`;
}

/** A hash of a typed array's bytes (FNV-1a over 32-bit words, then the tail bytes). */
function hashBytes(d: TypedArray): number {
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const words = Math.floor(d.byteLength / 4);
  const w = d.byteOffset % 4 === 0 ? new Uint32Array(d.buffer, d.byteOffset, words) : null;
  let h = 0x811c9dc5;
  if (w !== null) {
    for (let i = 0; i < words; i++) h = Math.imul(h ^ w[i], 16777619);
  }
  for (let i = w === null ? 0 : words * 4; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 16777619);
  return h >>> 0;
}

function sameBytes(a: TypedArray, b: TypedArray): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** For each constant variable equal to an earlier one (see the module comment), that earlier one. */
function duplicateConsts(p: Program, fresh: WeakSet<TypedArray> | null): Map<Var, Var> {
  const out = new Map<Var, Var>();
  const byView = new Map<string, { v: Var; t: Tensor }[]>();
  p.constvars.forEach((v, i) => {
    const t = p.consts[i];
    const d = t._data;
    if (d === null) return;
    const isFresh = fresh?.has(d) === true;
    const key = isFresh ? `${viewKey(t)}#${hashBytes(d)}` : viewKey(t);
    let list = byView.get(key);
    if (list === undefined) byView.set(key, (list = []));
    for (const c of list) {
      const cd = c.t._data!;
      if (cd === d || (isFresh && fresh!.has(cd) && sameBytes(cd, d))) {
        out.set(v, c.v);
        return;
      }
    }
    list.push({ v, t });
  });
  return out;
}

// (all: the transposed products too, measured faster once optimizer updates stopped becoming GEMM epilogues
// (core/jit-fuse.ts): see docs/jit.md)
let productRewrites: "all" | "sums" | "none" = "all";

/**
 * @internal Which product rewrites `executionProgram` applies (measurements): all, the batch sums only, none.
 * Returns the previous setting.
 */
export function setProductRewrites(on: "all" | "sums" | "none"): "all" | "sums" | "none" {
  const prev = productRewrites;
  productRewrites = on;
  return prev;
}

/**
 * The program an executor runs for `p` (simplified): `p` with every call that has a sub-program inlined too, so
 * that equations inside custom-rule calls (whose rules matter only to transforms, not to evaluation) take part
 * in common subexpressions and fusion with the rest: a forward pass computed once through a custom-VJP call
 * and once by its VJP's forward half is computed once. Matrix products are then rewritten into the shapes
 * the GEMM runs best (core/jit-rewrite.ts).
 */
export function executionProgram(p: Program): Program {
  const q = simplifyProgram(p, { inlineAll: true });
  if (productRewrites === "none") return q;
  const r = rewriteProducts(q, productRewrites === "all");
  return r === q ? q : simplifyProgram(r);
}

/** Simplify `p` (see the module comment). The result computes the same outputs from the same inputs. */
export function simplifyProgram(p: Program, opts: SimplifyOpts = {}): Program {
  const subst = new Map<Var, Atom>(duplicateConsts(p, opts.fresh ?? null));
  const resolve = (a: Atom): Atom => {
    let x = a;
    while (!(x instanceof Literal)) {
      const s = subst.get(x);
      if (s === undefined) break;
      x = s;
    }
    return x;
  };
  const producer = new Map<Var, Eqn>();
  const seen = new Map<string, Eqn>();
  const ids = new Map<object, number>();
  const atomKey = (a: Atom): string | null => {
    if (a instanceof Literal) {
      return `L${a.dtype}:${a.shape.join("x")}:${literalValue(a)}`;
    }
    let id = ids.get(a);
    if (id === undefined) {
      id = ids.size;
      ids.set(a, id);
    }
    return `v${id}`;
  };
  const kept: Eqn[] = [];
  for (const e0 of inlineCalls(p, opts.inlineAll === true)) {
    let e: Eqn = { ...e0, inputs: e0.inputs.map(resolve) };
    if (e.name === "alias" && e.prim === null) {
      subst.set(e.outputs[0], e.inputs[0]);
      continue;
    }
    const e2 = collapseViews(e, producer);
    if (e2 !== e) e = e2;
    const id = identityOf(e, producer);
    if (id !== null) {
      subst.set(e.outputs[0], id);
      continue;
    }
    // primitives, and control-flow calls (whose rule is made from their params alone)
    if (e.prim !== null || (e.sub === null && e.rule?.staged !== undefined)) {
      const pk = paramsKey(e.params, ids);
      if (pk !== null) {
        const key = `${e.prim === null ? "call:" : ""}${e.name}|${pk}|${e.inputs.map(atomKey).join(",")}`;
        const prev = seen.get(key);
        if (
          prev !== undefined &&
          prev.outputs.length === e.outputs.length &&
          e.outputs.every((o, i) => sameAval(prev.outputs[i], o))
        ) {
          e.outputs.forEach((o, i) => {
            subst.set(o, prev.outputs[i]);
          });
          continue;
        }
        seen.set(key, e);
      }
      if (e.prim !== null) producer.set(e.outputs[0], e);
    }
    kept.push(e);
  }
  const outs = p.outs.map(resolve);
  // dead code: walk backwards from the outputs
  const live = new Set<Var>();
  for (const o of outs) if (!(o instanceof Literal)) live.add(o);
  const alive: Eqn[] = [];
  for (let i = kept.length - 1; i >= 0; i--) {
    const e = kept[i];
    if (!e.outputs.some((v) => live.has(v))) continue;
    alive.push(e);
    for (const a of e.inputs) if (!(a instanceof Literal)) live.add(a);
  }
  alive.reverse();
  const constIdx = p.constvars.map((_, i) => i).filter((i) => live.has(p.constvars[i]));
  return new Program(
    constIdx.map((i) => p.constvars[i]),
    constIdx.map((i) => p.consts[i]),
    p.invars,
    alive,
    outs,
    p.inTree,
    p.outTree,
  );
}
