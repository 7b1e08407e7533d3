/**
 * Program-level tools for control flow (core/control.ts): closure conversion of a user's body into a closed
 * program, the programs of its JVP, VJP and batched forms, the split of a VJP program into a forward part that
 * saves residuals and a backward part that consumes them (partial evaluation), and running a program on concrete
 * values through a cached jit executor.
 *
 * Every derived program is traced once per source program (memoized), so a jitted function calling scan under
 * grad derives the body's VJP once, not once per call.
 */
import type { Backend } from "../backend/backend.ts";
import { getBackend } from "../backend/registry.ts";
import { isFloat } from "../dtype.ts";
import { internal } from "../errors.ts";
import { broadcast, materialize } from "../prims/movement.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { jvpFlat, vjpFlat } from "./autodiff.ts";
import { zerosLike } from "./helpers.ts";
import { evalFlat } from "./jaxpr-eval.ts";
import { type Atom, type Eqn, Literal, Program, Var } from "./jaxpr.ts";
import { traceFlat } from "./jaxpr-trace.ts";
import { Executor } from "./jit-exec.ts";
import { executionProgram, simplifyProgram } from "./jit-simplify.ts";
import type { Aval } from "./primitive.ts";
import { popLevel, pushLevel, state } from "./trace.ts";
import { BatchTrace } from "./vmap.ts";

/** A plain shape/dtype pair (what tracing needs of a value). */
export function avalOf(a: Aval): Aval {
  return { shape: [...a.shape], dtype: a.dtype };
}

/** A body traced into a closed program: the values it closed over are its leading inputs, `captured`. */
export interface Closed {
  readonly prog: Program;
  readonly captured: Tensor[];
}

let liftedId = -1;

/**
 * Trace a user's flat function once, on abstract values of `avals`, into a closed program. Values it closes over
 * (concrete tensors, or tracers of enclosing transforms: a `grad` input, a `vmap` batch, a value of an outer
 * `makeJaxpr`) become explicit leading inputs, so every transform sees them as operands of the control-flow
 * call. Random numbers drawn while tracing are an error (they would be frozen into every iteration).
 */
export function closeOver(
  fn: (xs: readonly Tensor[]) => Tensor[],
  avals: readonly Aval[],
  opts: { randomAsConstants?: boolean } = {},
): Closed {
  // randomAsConstants: numbers drawn while tracing become constants of a program that runs once (checkpoint)
  const counts = opts.randomAsConstants !== true;
  if (counts) state.jitTracing++;
  let p: Program;
  try {
    p = traceFlat(fn, avals, null, null);
  } finally {
    if (counts) state.jitTracing--;
  }
  const captured = [...p.consts];
  const constIn = [...p.constvars];
  // a concrete scalar becomes a literal; one that requires grad (eager tape) must stay an operand instead
  const lifted = new Map<Tensor, Var>();
  const lift = (a: Atom): Atom => {
    if (!(a instanceof Literal) || !a.value.requiresGrad || !state.gradEnabled) return a;
    let v = lifted.get(a.value);
    if (v === undefined) {
      v = new Var(liftedId--, [...a.shape], a.dtype);
      lifted.set(a.value, v);
      captured.push(a.value);
      constIn.push(v);
    }
    return v;
  };
  const eqns = p.eqns.map((e) =>
    e.inputs.some((a) => a instanceof Literal) ? { ...e, inputs: e.inputs.map(lift) } : e,
  );
  const outs = p.outs.map(lift);
  return { prog: new Program([], [], [...constIn, ...p.invars], eqns, outs, null, null), captured };
}

/** Trace a derived program (its function closes over nothing but concrete constants). */
export function traceProgram(fn: (xs: readonly Tensor[]) => Tensor[], avals: readonly Aval[]): Program {
  const p = traceFlat(fn, avals, null, null);
  for (const c of p.consts) {
    if (c._trace !== null) throw internal("a derived control-flow program captured a tracer");
  }
  return simplifyProgram(p);
}

const memos = new WeakMap<object, Map<string, unknown>>();

/** `make()` once per (program or params object, key). */
export function memo<T>(p: object, key: string, make: () => T): T {
  let m = memos.get(p);
  if (m === undefined) {
    m = new Map();
    memos.set(p, m);
  }
  if (m.has(key)) return m.get(key) as T;
  const v = make();
  m.set(key, v);
  return v;
}

const executors = new WeakMap<Program, Map<Backend, Executor>>();

/** Whether every tensor is a plain concrete value (no tracer, no deleted storage). */
export function allConcrete(xs: readonly Tensor[]): boolean {
  for (const x of xs) if (x._trace !== null || x._data === null) return false;
  return true;
}

/**
 * Run a program: on concrete values through its jit executor (compiled once per program and backend, reused at
 * every iteration: no tracing, dispatch or argument checks, intermediates from the executor's pool, elementwise
 * chains fused where the backend can), else through the
 * evaluator (each equation bound, so enclosing traces see it). `dest` as in `Executor.run` (only on the executor
 * path: the caller copies otherwise).
 */
export function runProgram(
  p: Program,
  args: readonly Tensor[],
  donated: ReadonlySet<number> | null = null,
  dest: readonly (Tensor | null)[] | null = null,
): Tensor[] {
  if (!allConcrete(args)) return evalFlat(p, args);
  let byBackend = executors.get(p);
  if (byBackend === undefined) {
    byBackend = new Map();
    executors.set(p, byBackend);
  }
  // one per backend, as jit does: elementwise chains are fused when the backend has a fused kernel
  const b = getBackend();
  let ex = byBackend.get(b);
  if (ex === undefined) {
    ex = new Executor(byBackend.values().next().value?.program ?? executionProgram(p), {
      fuse: b.fused !== undefined,
      fuseReduce: b.fusedReduce === true,
      fuseEpilogue: b.dotFused !== undefined,
    });
    byBackend.set(b, ex);
  }
  if (ex.busy) return copyConstOuts(p, evalFlat(p, args), null);
  return copyConstOuts(p, ex.run(args, donated, dest), dest);
}

const constOutsOf = new WeakMap<Program, number[]>();

/**
 * A body's outputs that are its constants (values its trace made: a carry reset to `zeros`, a branch returning
 * `ones`) copied: the program is cached and runs again, and the caller may write into what it returns (a scan's
 * final carry, a cond's result), which must not change the constant.
 */
function copyConstOuts(p: Program, outs: Tensor[], dest: readonly (Tensor | null)[] | null): Tensor[] {
  let idx = constOutsOf.get(p);
  if (idx === undefined) {
    idx = [];
    for (let i = 0; i < p.outs.length; i++) {
      const a = p.outs[i];
      if (a instanceof Literal || (a instanceof Var && p.constvars.includes(a))) idx.push(i);
    }
    constOutsOf.set(p, idx);
  }
  const orig = idx.length > 1 ? outs.slice() : outs;
  for (const i of idx) {
    const o = orig[i];
    if ((dest === null || dest[i] === null) && o._trace === null && o._data !== null) {
      const j = orig.indexOf(o); // a constant returned twice: one copy
      outs[i] = j < i && outs[j] !== o ? outs[j] : materialize(o);
    }
  }
  return outs;
}

/** Split `xs` into consecutive groups of the given sizes. */
export function groups<T>(xs: readonly T[], sizes: readonly number[]): T[][] {
  const out: T[][] = [];
  let k = 0;
  for (const n of sizes) {
    out.push(xs.slice(k, k + n));
    k += n;
  }
  if (k !== xs.length) throw internal(`groups: ${xs.length} values for sizes ${sizes.join("+")}`);
  return out;
}

const floatAval = (a: Aval) => isFloat(a.dtype);

/**
 * The JVP of `p` as a program. Inputs and outputs come in groups (sizes `inSizes`, `outSizes`); each group is
 * laid out as its primal values followed by the tangents of its floating-point members, e.g. for scan
 * `[consts, tconsts, carry, tcarry, x, tx] -> [carry', tcarry', y, ty]`.
 */
export function jvpProgram(p: Program, inSizes: readonly number[], outSizes: readonly number[]): Program {
  return memo(p, `jvp:${inSizes.join(",")}:${outSizes.join(",")}`, () => {
    const inGroups = groups(p.invars, inSizes);
    const avals: Aval[] = [];
    for (const g of inGroups) avals.push(...g.map(avalOf), ...g.filter(floatAval).map(avalOf));
    return traceProgram((ins) => {
      const prim: Tensor[] = [];
      const tan: Tensor[] = [];
      let k = 0;
      for (const g of inGroups) {
        const ps = ins.slice(k, k + g.length);
        k += g.length;
        prim.push(...ps);
        for (const x of ps) tan.push(isFloat(x.dtype) ? ins[k++] : zerosLike(x));
      }
      const [outs, touts] = jvpFlat((xs) => evalFlat(p, xs), prim, tan);
      const res: Tensor[] = [];
      let j = 0;
      for (const n of outSizes) {
        const os = outs.slice(j, j + n);
        res.push(...os);
        os.forEach((o, i) => {
          if (isFloat(o.dtype)) res.push(touts[j + i]);
        });
        j += n;
      }
      return res;
    }, avals);
  });
}

/**
 * The VJP of `p` as one program: inputs `[p's inputs, cotangents of its floating-point outputs]`, outputs
 * `[p's outputs, cotangents of its floating-point inputs]` (forward sweep and adjoint equations).
 */
export function vjpProgram(p: Program): Program {
  return memo(p, "vjp", () => {
    const n = p.invars.length;
    const avals = [...p.invars.map(avalOf), ...p.outs.filter(floatAval).map(avalOf)];
    return traceFlatVjp(p, n, avals);
  });
}

function traceFlatVjp(p: Program, n: number, avals: Aval[]): Program {
  // not simplified as a whole: partialEval classifies the raw equations, then simplifies each half
  const raw = traceFlat(
    (ins) => {
      const prim = ins.slice(0, n);
      const { outs, backward } = vjpFlat((xs) => evalFlat(p, xs), prim, { retain: false });
      let k = n;
      const cts = outs.map((o) => (isFloat(o.dtype) ? ins[k++] : undefined)) as Tensor[];
      const g = backward(cts);
      return [...outs, ...g.filter((_, i) => isFloat(prim[i].dtype))];
    },
    avals,
    null,
    null,
  );
  for (const c of raw.consts) {
    if (c._trace !== null) throw internal("a derived control-flow program captured a tracer");
  }
  return raw;
}

/** Primitives that only re-view their input (no arithmetic, no copy): recomputed rather than saved. */
const VIEWS = new Set(["reshape", "permute", "broadcast", "slice", "flip"]);

/** How an input of a VJP program is known: C (constant over the loop), K (known per step), U (a cotangent). */
export type Known = "C" | "K" | "U";

export interface Split {
  /** Known inputs (C and K, in order) -> primal outputs, then the residuals. */
  readonly fwd: Program;
  /** [C inputs, the bypassed K inputs it reads (`bypassUsed`), residuals, U inputs] -> the cotangent outputs. */
  readonly bwd: Program;
  readonly numRes: number;
  /** Indices (among the VJP program's inputs) of bypassed K inputs the backward part reads directly. */
  readonly bypassUsed: number[];
}

/**
 * Partial evaluation of a VJP program: equations that depend on no cotangent form the forward part (run in the
 * forward pass); the others form the backward part. Known values the backward part reads are residuals, output
 * by the forward part, except values that depend only on C inputs (recomputed in the backward part instead of
 * being saved per step: a weight's transpose), `bypass`ed K inputs (passed to the backward part directly,
 * e.g. scan's xs instead of a stacked copy) and views of those (a reshape or transpose of a row of xs).
 */
export function partialEval(
  p: Program,
  cls: readonly Known[],
  numPrimalOuts: number,
  bypass: readonly boolean[],
): Split {
  const known = new Map<Var, Known>();
  for (const v of p.constvars) known.set(v, "C");
  p.invars.forEach((v, i) => {
    known.set(v, cls[i]);
  });
  const rank = { C: 0, K: 1, U: 2 } as const;
  const of = (a: Atom): Known => (a instanceof Literal ? "C" : (known.get(a) ?? "C"));
  const eqnCls: Known[] = p.eqns.map((e) => {
    let c: Known = "C";
    for (const a of e.inputs) {
      const k = of(a);
      if (rank[k] > rank[c]) c = k;
    }
    for (const o of e.outputs) known.set(o, c);
    return c;
  });
  const primalOuts = p.outs.slice(0, numPrimalOuts);
  const ctOuts = p.outs.slice(numPrimalOuts);
  for (const o of primalOuts) if (of(o) === "U") throw internal("a primal output depends on a cotangent");
  const invarIndex = new Map<Var, number>();
  p.invars.forEach((v, i) => {
    invarIndex.set(v, i);
  });
  const bypassed = (a: Atom) => {
    const i = a instanceof Literal ? undefined : invarIndex.get(a);
    return i !== undefined && bypass[i];
  };
  // known views (reshape, permute...) of bypassed inputs and constants cost nothing to recompute: not residuals
  const views = new Set<Var>();
  p.eqns.forEach((e, i) => {
    if (
      eqnCls[i] === "K" &&
      e.prim !== null &&
      VIEWS.has(e.name) &&
      e.inputs.every((a) => of(a) === "C" || bypassed(a) || views.has(a as Var))
    ) {
      views.add(e.outputs[0]);
    }
  });
  const viewEqn = new Map<Var, Eqn>();
  for (const e of p.eqns) if (views.has(e.outputs[0])) viewEqn.set(e.outputs[0], e);
  const res: Var[] = [];
  const bypassUsed: number[] = [];
  const seen = new Set<Var>();
  const need = (a: Atom) => {
    if (a instanceof Literal || of(a) !== "K" || seen.has(a)) return;
    seen.add(a);
    const i = invarIndex.get(a);
    const v = viewEqn.get(a);
    if (i !== undefined && bypass[i]) bypassUsed.push(i);
    else if (v !== undefined) for (const b of v.inputs) need(b);
    else res.push(a);
  };
  p.eqns.forEach((e, i) => {
    if (eqnCls[i] === "U") for (const a of e.inputs) need(a);
  });
  for (const o of ctOuts) need(o);
  bypassUsed.sort((a, b) => a - b);
  const fwdEqns: Eqn[] = [];
  const bwdEqns: Eqn[] = [];
  p.eqns.forEach((e, i) => {
    if (eqnCls[i] !== "U") fwdEqns.push(e);
    if (eqnCls[i] !== "K" || views.has(e.outputs[0])) bwdEqns.push(e);
  });
  const inOf = (c: Known) => p.invars.filter((_, i) => cls[i] === c);
  const fwd = new Program(
    p.constvars,
    p.consts,
    p.invars.filter((_, i) => cls[i] !== "U"),
    fwdEqns,
    [...primalOuts, ...res],
    null,
    null,
  );
  const bwd = new Program(
    p.constvars,
    p.consts,
    [...inOf("C"), ...bypassUsed.map((i) => p.invars[i]), ...res, ...inOf("U")],
    bwdEqns,
    ctOuts,
    null,
    null,
  );
  return { fwd: simplifyProgram(fwd), bwd: simplifyProgram(bwd), numRes: res.length, bypassUsed };
}

/**
 * `p` under vmap as a program: inputs flagged in `inBatched` get a leading batch axis of `size`; returns the
 * batched program and which outputs are batched. Outputs flagged in `force` are broadcast when they came out
 * unbatched (a carry must keep one layout across iterations).
 */
export function batchProgram(
  p: Program,
  inBatched: readonly boolean[],
  size: number,
  force: readonly boolean[] | null = null,
): { prog: Program; outBatched: boolean[] } {
  const key = `batch:${size}:${inBatched.map(Number).join("")}:${force === null ? "" : force.map(Number).join("")}`;
  return memo(p, key, () => {
    const avals = p.invars.map((v, i) =>
      inBatched[i] ? { shape: [size, ...v.shape], dtype: v.dtype } : avalOf(v),
    );
    let outBatched: boolean[] = [];
    const prog = traceProgram((ins) => {
      const level = pushLevel();
      const trace = new BatchTrace(level, size);
      let outs: Tensor[];
      try {
        outs = evalFlat(
          p,
          ins.map((x, i) => (inBatched[i] ? trace.lift(x) : x)),
        );
      } finally {
        trace.alive = false;
        popLevel(level);
      }
      outBatched = outs.map((o, i) => o._trace === trace || force?.[i] === true);
      return outs.map((o, i) => {
        if (o._trace === trace) return o._primal!;
        return outBatched[i] ? broadcast(o, [size, ...o.shape]) : o;
      });
    }, avals);
    return { prog, outBatched };
  });
}
