/**
 * `jit`: trace a function once per input signature into a program, simplify it, and run it through a compiled
 * executor (core/jit-exec.ts) with planned memory.
 *
 * A jitted function is a higher-order call (a `CallRule` named "jit"), so every transform composes with it the
 * way it does with checkpoint: on concrete inputs the executor runs; under vmap, jvp or makeJaxpr the call is
 * traced through the simplified program (`vmap(jit(f))`, `makeJaxpr(jit(f))` show its equations); under grad/vjp
 * the program is differentiated (its forward kept for the backward pass); on the eager tape (inputs with
 * `requiresGrad`) the compiled forward runs and backward recomputes it with recording on, so closed-over
 * parameters get their `.grad` as in eager code. `jit(grad(f))` compiles the whole gradient program.
 *
 * Semantics follow JAX: the function must be pure. Values it closes over are constants of the program: a closed
 * over tensor is read from its storage at every call (so in-place updates of a parameter are seen), and so is
 * anything computed from it (the computation is recorded, not done at trace time); random numbers drawn while
 * tracing would be frozen into the program, so drawing them is an error. Arguments are pytrees of tensors;
 * numbers at the top level are traced as weakly typed float64 scalars (they promote like JS numbers; the
 * signature holds whether they are integral), numbers nested in a pytree and `staticArgnums` arguments are part
 * of the signature (a new value traces again). See docs/jit.md, "Semantics and limitations".
 */
import type { Backend } from "../backend/backend.ts";
import { getBackend } from "../backend/registry.ts";
import type { TypedArray } from "../dtype.ts";
import { setAllocLog } from "../prims/impl.ts";
import { materialize } from "../prims/movement.ts";
import { deletedTensors, Tensor, weakScalars } from "../tensor/tensor.ts";
import { type TreeDef, treeUnflatten } from "../tree.ts";
import { vjpFlat } from "./autodiff.ts";
import { recomputingVjp } from "./custom.ts";
import { evalFlat } from "./jaxpr-eval.ts";
import { Literal, Program, type Var } from "./jaxpr.ts";
import { stagedJaxpr } from "./jaxpr-trace.ts";
import { Executor } from "./jit-exec.ts";
import { splitBiasRelu } from "./jit-rewrite.ts";
import { executionProgram, simplifyProgram } from "./jit-simplify.ts";
import { bindCall, type CallRule, state } from "./trace.ts";

export interface JitOpts {
  /**
   * Arguments (by position, negative from the end) that are not traced: their value is part of the signature,
   * compared by value for numbers, strings, booleans, null and plain arrays/objects of those, by identity for
   * anything else (a module, a function). Tensors cannot be static.
   */
  staticArgnums?: number | readonly number[];
  /**
   * Arguments whose tensors' storage the call may reuse for its intermediates and outputs (JAX's
   * donate_argnums). After the call, donated tensors are deleted: using one is an error.
   */
  donateArgnums?: number | readonly number[];
}

/** A jitted function: call it like f; `lower` shows the compiled program for a signature. */
export type Jitted<F extends (...args: any[]) => any> = F & {
  /**
   * The simplified program for these arguments (traced now if not cached): what transforms of the jitted
   * function (grad, vmap, jvp) see, with calls such as custom-VJP functions kept as calls.
   */
  lower(...args: Parameters<F>): Program;
  /**
   * The program the executor runs for these arguments: `lower`'s with every call that has a sub-program inlined
   * and simplified again (see core/jit-simplify.ts `executionProgram`).
   */
  executed(...args: Parameters<F>): Program;
  /** How many signatures have been traced (each trace is one cache entry). */
  readonly traceCount: number;
  /** Drop every compiled signature. */
  clearCache(): void;
  /** Fresh buffers the executors allocated so far, and bytes held in their pools (memory planning at work). */
  memoryStats(): { allocations: number; pooledBytes: number };
};

interface Entry {
  readonly program: Program;
  /** `program` as executors run it (built on first use; `lifted` constants aside, see there). */
  runnable(): Program;
  /**
   * The executors built so far, one per backend (fusion depends on whether the backend has a `fused` kernel,
   * so `setBackend` switches to another executor).
   */
  readonly execs: Map<Backend, Executor>;
  /** Indices, among the flat input leaves, of the tensors of donated arguments. */
  readonly donatedLeaves: ReadonlySet<number> | null;
  readonly rule: CallRule;
  /**
   * Constants passed as inputs of the call, ahead of the arguments' leaves (closure conversion): tracers of
   * enclosing transforms the function closes over (`grad((x) => jit((y) => y.mul(x))(z))`), so the enclosing
   * transform sees them, and tensors that require grad (a module's parameters), so an eager `backward()` of the
   * result reaches them. An entry with tracers belongs to one call and is not cached.
   */
  readonly lifted: readonly Tensor[];
  /** The modules whose training flag the trace read, with the values read: the entry holds only for those. */
  readonly guards: readonly (readonly [{ readonly training: boolean }, boolean])[];
}

/** True if every training flag the entry's trace read still has the value it read. */
function guardsHold(e: Entry): boolean {
  const g = e.guards;
  for (let i = 0; i < g.length; i++) if (g[i][0].training !== g[i][1]) return false;
  return true;
}

function argnums(what: string, v: number | readonly number[] | undefined): number[] {
  if (v === undefined) return [];
  const list = typeof v === "number" ? [v] : [...v];
  for (const i of list) {
    if (!Number.isInteger(i)) throw new TypeError(`jit: ${what} must be integers, got ${String(i)}`);
  }
  return list;
}

/** Resolve negative positions against the call's argument count. */
function resolve(what: string, list: readonly number[], n: number): Set<number> {
  const out = new Set<number>();
  for (const i of list) {
    const k = i < 0 ? i + n : i;
    if (k < 0 || k >= n) {
      throw new RangeError(`jit: ${what} entry ${i} is out of range for a call with ${n} arguments`);
    }
    out.add(k);
  }
  return out;
}

const objectIds = new WeakMap<object, number>();
let nextObjectId = 0;

/**
 * The signature key of a static argument's value. `open` holds the arrays and plain objects being keyed (a value
 * containing itself has no key by value).
 */
function staticKey(v: unknown, pos: number, open: unknown[] = []): string {
  if (v instanceof Tensor) {
    throw new TypeError(
      `jit: static argument ${pos} is a Tensor; tensors cannot be static (their values are not part of a ` +
        "signature): pass it as an ordinary argument (grad, vjp, jvp and hessian turn number arguments into " +
        "scalar tensors: to keep a static number, close over it, as in grad((x) => jitted(x, n)))",
    );
  }
  if (v === null || v === undefined) return String(v);
  const t = typeof v;
  if (t === "number" && Object.is(v, -0)) return "number:-0"; // 1 / x tells -0 from 0
  if (t === "number" || t === "boolean" || t === "bigint") return `${t}:${String(v)}`;
  if (t === "string") return JSON.stringify(v);
  const plain = t === "object" && Object.getPrototypeOf(v) === Object.prototype;
  if (Array.isArray(v) || plain) {
    if (open.includes(v)) {
      throw new TypeError(
        `jit: static argument ${pos} contains itself (a cyclic array or object), so it cannot be compared by ` +
          "value; pass an instance of a class (compared by identity) or make the value acyclic",
      );
    }
    open.push(v);
    const key = Array.isArray(v)
      ? `[${v.map((x) => staticKey(x, pos, open)).join(",")}]`
      : `{${Object.entries(v as object)
          .map(([k, x]) => `${JSON.stringify(k)}:${staticKey(x, pos, open)}`)
          .join(",")}}`;
    open.pop();
    return key;
  }
  let id = objectIds.get(v as object);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(v as object, id);
  }
  return `@${id}`;
}

/**
 * A number passed as a whole argument: a float64 scalar tensor, weakly typed (see `weakScalars`), so the traced
 * function computes with it as with the JS number (`x.mul(s)` keeps x's dtype and s's float64 value).
 */
function weakScalar(v: number): Tensor {
  const t = Tensor._concrete(new Float64Array([v]), [], "float64", []);
  weakScalars.kinds.set(t, Number.isInteger(v) ? "int" : "float");
  return t;
}

/** Flatten a dynamic argument into `leaves` (as treeFlatten does) and return its signature: structure, avals. */
function signature(x: unknown, leaves: Tensor[]): string {
  if (x instanceof Tensor) {
    leaves.push(x);
    const weak = weakScalars.kinds.get(x);
    if (weak !== undefined) return `weak ${weak}`;
    return x.shape.length === 0 ? x.dtype : `${x.dtype}[${x.shape.join(",")}]`;
  }
  if (Array.isArray(x)) {
    let s = "[";
    for (const e of x) s += `${signature(e, leaves)},`;
    return `${s}]`;
  }
  if (x !== null && typeof x === "object") {
    const proto = Object.getPrototypeOf(x);
    if (proto === Object.prototype || proto === null) {
      let s = "{";
      for (const k of Object.keys(x))
        s += `${JSON.stringify(k)}:${signature((x as Record<string, unknown>)[k], leaves)},`;
      return `${s}}`;
    }
  }
  return staticKey(x, -1);
}

/**
 * A fresh copy of a returned constant: a small one in host memory copied here (a backend call cost more than the
 * rest of a jitted scalar function: jit(grad(x * y + z)) returns the constant 1), others by the backend.
 */
function copyOf(o: Tensor): Tensor {
  const d = o._data;
  if (ArrayBuffer.isView(d) && o._offset === 0 && d.length === o.size && d.length <= 64) {
    return Tensor._concrete((d as TypedArray).slice(), o.shape, o.dtype, o._strides);
  }
  return materialize(o);
}

/**
 * Compile `f`: the first call with a new signature (the structure, shapes and dtypes of the arguments, and the
 * values of static ones) traces f into a program, simplifies it (nested jit inlined, identities, common
 * subexpressions and dead code removed) and builds its executor; later calls with that signature run the
 * executor directly: no per-op dispatch, and intermediate storage reused from a pool.
 *
 * @example
 * ```ts
 * const step = jit((p: Params, x: Tensor, y: Tensor) => {
 *   const g = grad(loss)(p, x, y);
 *   return p.map((w, i) => w.sub(g[i].mul(0.1)));
 * }, { donateArgnums: 0 });
 * params = step(params, x, y);
 * ```
 */
export function jit<F extends (...args: any[]) => any>(f: F, opts: JitOpts = {}): Jitted<F> {
  if (typeof f !== "function") throw new TypeError("jit: expected a function");
  const statics = argnums("staticArgnums", opts.staticArgnums);
  const donates = argnums("donateArgnums", opts.donateArgnums);
  // per signature, the entries traced for it (more than one when a training flag the trace read changed)
  const cache = new Map<string, Entry[]>();
  let traces = 0;
  let allocationsOfCleared = 0;

  // the argument positions of the last call's arity, resolved once per arity
  let lastArity = -1;
  let st = new Set<number>();
  let dn = new Set<number>();
  // the same as flags by position: the per-call loop reads these (no Set lookups on the hot path)
  let isStatic: boolean[] = [];
  let isDonated: boolean[] = [];

  /** Split a call's arguments: the signature key, the dynamic arguments (statics replaced by null), leaves. */
  const prepare = (args: unknown[]) => {
    const n = args.length;
    if (n !== lastArity) {
      st = resolve("staticArgnums", statics, n);
      dn = resolve("donateArgnums", donates, n);
      for (const i of dn) {
        if (st.has(i)) throw new TypeError(`jit: argument ${i} is both static and donated`);
      }
      isStatic = Array.from({ length: n }, (_, i) => st.has(i));
      isDonated = Array.from({ length: n }, (_, i) => dn.has(i));
      lastArity = n;
    }
    const dyn: unknown[] = new Array(n);
    const leaves: Tensor[] = [];
    let key = `${n}`;
    let donatedLeaves: Set<number> | null = null;
    for (let i = 0; i < n; i++) {
      const a = args[i];
      if (isStatic[i]) {
        dyn[i] = null;
        key += `|s${staticKey(a, i)}`;
        continue;
      }
      const d = typeof a === "number" ? weakScalar(a) : a;
      dyn[i] = d;
      const first = leaves.length;
      key += `|${signature(d, leaves)}`;
      if (isDonated[i]) {
        donatedLeaves ??= new Set();
        for (let j = first; j < leaves.length; j++) donatedLeaves.add(j);
      }
    }
    return { st, dyn, leaves, key, donatedLeaves };
  };

  const compile = (args: unknown[], p: ReturnType<typeof prepare>): Entry => {
    const { st, dyn } = p;
    const call = (...dynArgs: unknown[]) => f(...args.map((a, i) => (st.has(i) ? a : dynArgs[i])));
    state.jitTracing++;
    // buffers the trace allocates hold values computed at trace time: equal ones may be merged
    const fresh = new WeakSet<TypedArray>();
    const prevLog = setAllocLog(fresh);
    // numbers among the arguments promote as numbers while the trace runs
    const weak = p.leaves.some((t) => weakScalars.kinds.has(t)) ? 1 : 0;
    weakScalars.active += weak;
    // the training flags the function reads become the entry's guards
    const prevReads = state.modeReads;
    const reads = new Map<{ readonly training: boolean }, boolean>();
    state.modeReads = reads;
    let raw: Program;
    try {
      raw = stagedJaxpr(call, fresh)(...dyn);
    } finally {
      state.modeReads = prevReads;
      weakScalars.active -= weak;
      setAllocLog(prevLog);
      state.jitTracing--;
    }
    const guards = [...reads];
    traces++;
    // `program` is what lower() shows (closed-over values as constants); the call runs `called`, whose leading
    // inputs are the lifted constants (see Entry.lifted)
    const program = simplifyProgram(raw, { fresh });
    const [called, lifted] = liftConsts(program);
    const execs = new Map<Backend, Executor>();
    let runnableProgram: Program | null = null;
    const runnable = () => {
      runnableProgram ??= executionProgram(called);
      return runnableProgram;
    };
    let shownProgram: Program | null = null;
    const shown = () => {
      shownProgram ??= called === program ? runnable() : executionProgram(program);
      return shownProgram;
    };
    const execFor = (b: Backend): Executor => {
      let x = execs.get(b);
      if (x === undefined) {
        // with GEMM epilogues, a ReLU layer's bias and activation become its product's epilogue
        const prog = b.dotFused !== undefined ? splitBiasRelu(runnable()) : runnable();
        x = new Executor(prog, {
          fuse: b.fused !== undefined,
          fuseReduce: b.fusedReduce === true,
          fuseEpilogue: b.dotFused !== undefined,
        });
        execs.set(b, x);
      }
      return x;
    };
    // an output whose storage is a value the trace made (a returned `ones`, also through a cond or as a scan's
    // carry, a literal): a fresh copy at each call, as eager code returns, so that a caller writing into it
    // changes neither the program's constant nor later results
    const constData = new Set<TypedArray>();
    for (const c of called.consts) if (c._data !== null && fresh.has(c._data)) constData.add(c._data);
    for (const a of called.outs)
      if (a instanceof Literal && a.value._data !== null) constData.add(a.value._data);
    const copyConsts = (outs: Tensor[]): Tensor[] => {
      if (constData.size === 0) return outs;
      let copies: Map<Tensor, Tensor> | null = null; // one copy of a constant returned twice, as eager returns
      for (let i = 0; i < outs.length; i++) {
        const o = outs[i];
        if (o._trace === null && o._data !== null && constData.has(o._data)) {
          copies ??= new Map();
          let c = copies.get(o);
          if (c === undefined) {
            c = copyOf(o);
            copies.set(o, c);
          }
          outs[i] = c;
        }
      }
      return outs;
    };
    const flat = (xs: readonly Tensor[]) => copyConsts(evalFlat(called, xs));
    const donatedLeaves =
      p.donatedLeaves === null || lifted.length === 0
        ? p.donatedLeaves
        : new Set([...p.donatedLeaves].map((i) => i + lifted.length));
    const rule: CallRule = {
      name: "jit",
      fn: (xs) => {
        const exec = execFor(getBackend());
        if (exec.busy) return flat(xs);
        for (const x of xs) if (x._trace !== null || x._data === null) return flat(xs);
        return copyConsts(exec.run(xs, donatedLeaves));
      },
      vjp: (primals, eager) => {
        if (eager) {
          const run = (xs: readonly Tensor[]) => {
            const exec = execFor(getBackend());
            return exec.busy ? flat(xs) : copyConsts(exec.run(xs, null));
          };
          return recomputingVjp(flat, run, primals, true);
        }
        return vjpFlat(flat, primals);
      },
    };
    return { program, runnable: shown, execs, donatedLeaves: p.donatedLeaves, rule, lifted, guards };
  };

  // The last signature of tensor arguments only (no statics, no pytrees, no numbers), and its entry: a call
  // with the same dtypes, shapes and weak kinds takes it without building the signature string (the common
  // case of a loop calling with the same shapes; a scalar program's whole call costs about a microsecond).
  let fast: {
    e: Entry;
    key: string;
    dtypes: string[];
    shapes: number[][];
    weak: (string | undefined)[];
  } | null = null;
  const fastHit = (args: unknown[]): boolean => {
    const f = fast!;
    const n = args.length;
    if (n !== f.dtypes.length || !guardsHold(f.e)) return false;
    for (let i = 0; i < n; i++) {
      const a = args[i];
      if (!(a instanceof Tensor) || a.dtype !== f.dtypes[i]) return false;
      const sh = a.shape;
      const fs = f.shapes[i];
      if (sh.length !== fs.length) return false;
      for (let d = 0; d < sh.length; d++) if (sh[d] !== fs[d]) return false;
      if (weakScalars.kinds.get(a) !== f.weak[i]) return false;
    }
    return true;
  };

  const entryFor = (args: unknown[]) => {
    const { e, p } =
      fast !== null && fastHit(args)
        ? {
            e: fast.e,
            p: {
              st,
              dyn: args,
              leaves: args as Tensor[],
              key: fast.key,
              donatedLeaves: fast.e.donatedLeaves,
            },
          }
        : lookup(args);
    // inside an enclosing jit trace, this program's guards are the enclosing program's too
    const reads = state.modeReads;
    if (reads !== null) for (const [m, v] of e.guards) if (!reads.has(m)) reads.set(m, v);
    return { e, p };
  };

  /** The cache entry for a call's signature (traced now on a miss), and the call split by `prepare`. */
  const lookup = (args: unknown[]) => {
    const p = prepare(args);
    const list = cache.get(p.key);
    let e: Entry | undefined;
    if (list !== undefined) {
      for (let i = 0; i < list.length; i++) {
        if (guardsHold(list[i])) {
          e = list[i];
          break;
        }
      }
    }
    if (e === undefined) {
      e = compile(args, p);
      if (!e.lifted.some((t) => t._trace !== null)) {
        if (list === undefined) cache.set(p.key, [e]);
        else list.push(e);
      }
    }
    if (
      !e.lifted.some((t) => t._trace !== null) &&
      args.every((a, i) => a instanceof Tensor && !isStatic[i])
    ) {
      const ts = args as Tensor[];
      fast = {
        e,
        key: p.key,
        dtypes: ts.map((t) => t.dtype),
        shapes: ts.map((t) => [...t.shape]),
        weak: ts.map((t) => weakScalars.kinds.get(t)),
      };
    } else {
      fast = null;
    }
    return { e, p };
  };

  const jitted = (...args: unknown[]) => {
    const { e, p } = entryFor(args);
    const ins = e.lifted.length === 0 ? p.leaves : [...e.lifted, ...p.leaves];
    let outs: Tensor[];
    try {
      outs = bindCall(e.rule, ins);
    } catch (err) {
      // a run that failed part way may have written over donated storage: those tensors are gone too (unless
      // the call was being recorded for backward, which donates nothing)
      if (e.donatedLeaves !== null && !(state.gradEnabled && ins.some((t) => t.requiresGrad))) {
        deleteDonated(p.leaves, e.donatedLeaves, []);
      }
      throw err;
    }
    if (e.donatedLeaves !== null) deleteDonated(p.leaves, e.donatedLeaves, outs);
    return treeUnflatten(e.program.outTree as TreeDef, outs);
  };
  Object.defineProperty(jitted, "traceCount", { get: () => traces });
  Object.defineProperty(jitted, "name", { value: `jit(${f.name || "anonymous"})` });
  return Object.assign(jitted, {
    lower: (...args: unknown[]) => entryFor(args).e.program,
    executed: (...args: unknown[]) => entryFor(args).e.runnable(),
    clearCache: () => {
      for (const list of cache.values())
        for (const e of list) for (const x of e.execs.values()) allocationsOfCleared += x.pool.allocations;
      cache.clear();
      fast = null;
    },
    memoryStats: () => {
      let allocations = allocationsOfCleared;
      let pooledBytes = 0;
      for (const list of cache.values()) {
        for (const e of list) {
          for (const x of e.execs.values()) {
            allocations += x.pool.allocations;
            pooledBytes += x.pool.bytes;
          }
        }
      }
      return { allocations, pooledBytes };
    },
  }) as unknown as Jitted<F>;
}

/** A constant the call must pass as an input (see Entry.lifted). */
function mustLift(c: Tensor): boolean {
  return c._trace !== null || c._requiresGrad || c._node !== null;
}

/**
 * Closure conversion: the constants of `p` that are tracers of an enclosing transform or require grad become its
 * leading inputs (returned in order), so the call passes them and the enclosing transform (or the eager tape)
 * differentiates or batches through them; other constants stay constants.
 */
function liftConsts(p: Program): [Program, Tensor[]] {
  if (!p.consts.some(mustLift)) return [p, []];
  const constvars: Var[] = [];
  const consts: Tensor[] = [];
  const liftedVars: Var[] = [];
  const lifted: Tensor[] = [];
  p.consts.forEach((c, i) => {
    if (mustLift(c)) {
      liftedVars.push(p.constvars[i]);
      lifted.push(c);
    } else {
      constvars.push(p.constvars[i]);
      consts.push(c);
    }
  });
  const q = new Program(constvars, consts, [...liftedVars, ...p.invars], p.eqns, p.outs, p.inTree, p.outTree);
  return [q, lifted];
}

/**
 * Delete the donated input tensors after a call (their storage may now hold results), except any returned. A
 * call recorded on the eager tape (an input requires grad) donated nothing: its backward recomputes the forward
 * from the inputs, so they stay.
 */
function deleteDonated(
  leaves: readonly Tensor[],
  donated: ReadonlySet<number>,
  outs: readonly Tensor[],
): void {
  for (const o of outs) if (o._node !== null) return;
  const returned = new Set(outs);
  for (const i of donated) {
    const t = leaves[i];
    if (returned.has(t) || t._trace !== null || t._data === null) continue;
    deletedTensors.set(
      t,
      "it was donated to a jitted function (donateArgnums), whose call may have reused its storage",
    );
    t._data = null;
  }
}
