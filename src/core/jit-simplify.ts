/**
 * Program simplification for `jit`: passes over a traced `Program` that return an equivalent, smaller one.
 *
 * - Inlining: a nested `jit` call equation (jit of a function that calls a jitted function) is replaced by its
 *   sub-program, so the executor sees one flat list.
 * - Algebra: equations that are the identity on one input (`x * 1`, `x + 0`, `x - 0`, `x / 1`, a reshape or
 *   broadcast to the same shape, a cast to the same dtype, `neg(neg x)`) are dropped and their output replaced
 *   by that input. The adjoint program of `grad` is full of these (the seed 1 multiplied through).
 * - Common subexpressions: two equations applying the same primitive with the same params to the same atoms
 *   compute the same value (primitives are pure); the second is dropped.
 * - Dead code: equations none of whose outputs reach the program's outputs are dropped.
 *
 * Constant folding needs no pass: while tracing, operations on values that do not depend on the inputs run
 * eagerly and enter the program as constants.
 */
import { Tensor } from "../tensor/tensor.ts";
import { type Atom, type Eqn, Literal, Program, type Var } from "./jaxpr.ts";

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
    case "neg": {
      const p = a instanceof Literal ? undefined : producer.get(a);
      cand = p !== undefined && p.name === "neg" ? p.inputs[0] : null;
      break;
    }
  }
  // the output must be exactly the candidate: same shape (no broadcasting happened) and dtype (no promotion)
  return cand !== null && sameAval(cand, out) ? cand : null;
}

/** A key for a params value, or null when it cannot be compared structurally (then no CSE for that equation). */
function paramsKey(p: unknown, ids: Map<object, number>): string | null {
  if (p === null || p === undefined) return String(p);
  const t = typeof p;
  if (t === "number" || t === "boolean") return String(p);
  if (t === "string") return JSON.stringify(p);
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

/** Replace a call equation named `jit` by its sub-program's equations (recursively), renaming its variables. */
function inlineJitCalls(p: Program): Eqn[] {
  const out: Eqn[] = [];
  for (const e of p.eqns) {
    if (e.prim !== null || e.name !== "jit" || e.sub === null) {
      out.push(e);
      continue;
    }
    const sub = e.sub;
    const rename = new Map<Var, Atom>();
    sub.invars.forEach((v, i) => {
      rename.set(v, e.inputs[i]);
    });
    const mapAtom = (a: Atom): Atom => (a instanceof Literal ? a : (rename.get(a) ?? a));
    for (const se of inlineJitCalls(sub)) out.push({ ...se, inputs: se.inputs.map(mapAtom) });
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

/** Simplify `p` (see the module comment). The result computes the same outputs from the same inputs. */
export function simplifyProgram(p: Program): Program {
  const subst = new Map<Var, Atom>();
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
  for (const e0 of inlineJitCalls(p)) {
    const e: Eqn = { ...e0, inputs: e0.inputs.map(resolve) };
    if (e.name === "alias" && e.prim === null) {
      subst.set(e.outputs[0], e.inputs[0]);
      continue;
    }
    const id = identityOf(e, producer);
    if (id !== null) {
      subst.set(e.outputs[0], id);
      continue;
    }
    if (e.prim !== null) {
      const pk = paramsKey(e.params, ids);
      if (pk !== null) {
        const key = `${e.name}|${pk}|${e.inputs.map(atomKey).join(",")}`;
        const prev = seen.get(key);
        if (prev !== undefined && sameAval(prev.outputs[0], e.outputs[0])) {
          subst.set(e.outputs[0], prev.outputs[0]);
          continue;
        }
        seen.set(key, e);
      }
      producer.set(e.outputs[0], e);
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
