/**
 * The executor of compiled programs: a flat list of steps over numbered slots, run without tracing, dispatch,
 * argument checks or broadcasting (all settled when the program was traced), and with planned memory.
 *
 * Each step calls a primitive's `impl` directly with the equation's params and its output aval, or, for a group
 * of elementwise equations fused by core/jit-fuse.ts (`fuse` option), the backend's `fused` kernel once. Slots
 * are freed at their last use. Memory: while a step runs, `allocOut` (src/prims/impl.ts) takes its storage from the
 * executor's arena, which serves a buffer of exactly that dtype and length from a pool when one is free. A buffer
 * returns to the pool when no live slot refers to it any more (views count: a reshape of an intermediate keeps
 * its storage alive), so within one call storage is reused as soon as its last reader has run, and across calls
 * a steady-state call allocates only its outputs. Only storage the arena itself handed out (or a donated input's)
 * is ever recycled; inputs, constants and anything a call equation produced are never touched.
 */
import { BINARY_OPS, type FusedProgram, UNARY_OPS, type View } from "../backend/backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { AllocationError } from "../errors.ts";
import { runImpl } from "../prims/half.ts";
import { allocData, allocOut, getBackend, type OutArena, setOutArena, viewOf } from "../prims/impl.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { evalCall } from "./jaxpr-eval.ts";
import { type Atom, type Eqn, Literal, type Program, type Var } from "./jaxpr.ts";
import { type FusionGroup, planFusion } from "./jit-fuse.ts";
import type { Primitive } from "./primitive.ts";

/**
 * Primitives whose kernel reads element i of each operand and writes element i of the output, once: an operand
 * of the output's exact layout that dies at this step can lend its storage to the output (an in-place update).
 */
const POINTWISE = new Set<string>([...UNARY_OPS, ...BINARY_OPS, "where"]);

interface Step {
  /** The equation (for a fused step, the group's root). */
  readonly eqn: Eqn;
  readonly prim: Primitive<unknown> | null;
  /** A fused step's program (its inputs are `ins`), run by the backend's `fused` kernel; else null. */
  readonly fused: FusedProgram | null;
  /** A GEMM epilogue step (`fused` runs after the dot of its first two operands, by Backend.dotFused). */
  readonly dot: boolean;
  /** A fused step's views of its inputs (an epilogue's: after the dot's operands), refilled at every run. */
  readonly views: View[];
  readonly ins: readonly number[];
  readonly outs: readonly number[];
  /** Slots whose last reader is this step (freed after it runs); includes unused outputs. */
  readonly free: readonly number[];
  /** The argument array handed to `impl`, refilled at every run. */
  readonly args: Tensor[];
  /** Argument positions whose storage the output may take (pointwise, same aval, last read here). */
  readonly lend: readonly number[];
  /** The outputs' avals (the variables of `outs`). */
  readonly outAvals: readonly Var[];
  /** The tensors the step made, one per slot of `outs`, refilled at every run. */
  readonly results: Tensor[];
  /** A fused step's output storage, refilled at every run. */
  readonly outData: TypedArray[];
}

/** Storage served by the arena, keyed by dtype and length. */
class Pool {
  /** Free buffers by dtype, then length (no key string built per call). */
  private readonly free = new Map<DType, Map<number, TypedArray[]>>();
  /** Bytes currently held in the pool. */
  bytes = 0;
  /** Buffers allocated fresh by the arena over the executor's lifetime (a test's measure of reuse). */
  allocations = 0;
  take(dtype: DType, n: number): TypedArray | null {
    const list = this.free.get(dtype)?.get(n);
    const b = list?.pop();
    if (b === undefined) return null;
    this.bytes -= b.byteLength;
    return b;
  }
  put(dtype: DType, b: TypedArray): void {
    let byLen = this.free.get(dtype);
    if (byLen === undefined) {
      byLen = new Map();
      this.free.set(dtype, byLen);
    }
    let list = byLen.get(b.length);
    if (list === undefined) {
      list = [];
      byLen.set(b.length, list);
    }
    list.push(b);
    this.bytes += b.byteLength;
  }
}

/**
 * The storage a run owns (the arena handed it out, or a donated input's): per buffer its dtype and how many live
 * slots refer to it. A run of a small program owns a few buffers, found by a scan of two arrays; past
 * `Owned.LINEAR` a Map indexes them. Nothing is allocated per run: a Map cleared after every run would be (V8's
 * Map.clear allocates a fresh table, in the old generation for a long-lived Map, and on a heap that has grown
 * it took a scalar program's run from 1.7 to 3.5 us).
 */
class Owned {
  private static readonly LINEAR = 24;
  private bufs: TypedArray[] = [];
  private dtypes: DType[] = [];
  private counts: number[] = [];
  private n = 0;
  private index: Map<TypedArray, number> | null = null;

  get size(): number {
    return this.n;
  }
  private find(b: TypedArray): number {
    if (this.index !== null) return this.index.get(b) ?? -1;
    const bufs = this.bufs;
    for (let i = this.n - 1; i >= 0; i--) if (bufs[i] === b) return i;
    return -1;
  }
  has(b: TypedArray): boolean {
    return this.find(b) >= 0;
  }
  /** The dtype of owned storage `b` (undefined: not owned). */
  dtypeOf(b: TypedArray): DType | undefined {
    const i = this.find(b);
    return i < 0 ? undefined : this.dtypes[i];
  }
  /** Live slots referring to `b` (0 if none, or not owned). */
  refs(b: TypedArray): number {
    const i = this.find(b);
    return i < 0 ? 0 : this.counts[i];
  }
  /** Own `b` (again: a buffer back from the pool keeps its entry, with no references). */
  own(b: TypedArray, dtype: DType): void {
    const i = this.find(b);
    if (i >= 0) {
      this.dtypes[i] = dtype;
      return;
    }
    const k = this.n++;
    this.bufs[k] = b;
    this.dtypes[k] = dtype;
    this.counts[k] = 0;
    if (this.index !== null) this.index.set(b, k);
    else if (this.n > Owned.LINEAR) {
      this.index = new Map();
      for (let j = 0; j < this.n; j++) this.index.set(this.bufs[j], j);
    }
  }
  /** One more live slot refers to `b` (owned storage only). */
  retain(b: TypedArray): void {
    const i = this.find(b);
    if (i >= 0) this.counts[i]++;
  }
  /** A slot referring to `b` died: true if that was the last one (owned storage with references only). */
  release(b: TypedArray): boolean {
    const i = this.find(b);
    if (i < 0 || this.counts[i] === 0) return false;
    return --this.counts[i] === 0;
  }
  /** Stop owning `b` (its references dropped). */
  drop(b: TypedArray): void {
    const i = this.find(b);
    if (i < 0) return;
    const last = --this.n;
    if (i !== last) {
      this.bufs[i] = this.bufs[last];
      this.dtypes[i] = this.dtypes[last];
      this.counts[i] = this.counts[last];
      this.index?.set(this.bufs[i], i);
    }
    this.index?.delete(b);
    this.bufs[last] = undefined as unknown as TypedArray;
  }
  /** Own nothing (after a run). */
  clear(): void {
    const bufs = this.bufs;
    for (let i = 0; i < this.n; i++) bufs[i] = undefined as unknown as TypedArray;
    this.n = 0;
    this.index = null;
  }
}

/** What the arena handed out during one step, and the storage the run owns. */
class Arena implements OutArena {
  /** Every buffer handed out during this run (owned: may be recycled when its readers are gone), its refs. */
  readonly owned = new Owned();
  /** Buffers handed out during the current step. */
  stepBufs: TypedArray[] = [];
  constructor(private readonly pool: Pool) {}
  /** Storage operands dying at this step lend to its outputs; served first, each once, where it fits. */
  readonly lent: TypedArray[] = [];
  /** True while an output that must not take lent storage is allocated (a GEMM epilogue's first). */
  lendHeld = false;
  take(dtype: DType, shape: readonly number[], n: number, zeroed: boolean): TypedArray {
    const lent = this.lent;
    for (let i = 0; i < lent.length && !this.lendHeld; i++) {
      const l = lent[i];
      if (!zeroed && l.length === n && this.owned.dtypeOf(l) === dtype) {
        // (removed in place: no array per call, as splice returns)
        for (let j = i + 1; j < lent.length; j++) lent[j - 1] = lent[j];
        lent.length--;
        this.stepBufs.push(l);
        return l;
      }
    }
    let b = this.pool.take(dtype, n);
    if (b === null) {
      b = allocData(dtype, shape, !zeroed);
      this.pool.allocations++;
    } else if (zeroed) {
      b.fill(0);
    }
    this.owned.own(b, dtype);
    this.stepBufs.push(b);
    return b;
  }
}

/**
 * Exclusive time and count of executor steps, by kind (see `setJitProfile`). `best` holds, per step (of any
 * executor) of the kind, its shortest exclusive wall time over the recorded runs: on a shared machine the sum
 * of a kind's bests is its cost without the time other processes took from it (which lands on whatever step
 * is running, short ones included).
 */
export type JitProfile = Map<string, { n: number; ms: number; cpuMs: number; best: Map<object, number> }>;

let profile: JitProfile | null = null;
/** Milliseconds of step time (wall, process CPU) already attributed (nested executors' times are exclusive). */
let attributed = 0;
let attributedCpu = 0;

/** Process CPU time in milliseconds. */
function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Start (a map) or stop (null) recording the time every executor step takes, by kind: the primitive's name, or
 * `fused`, `fused-reduce`, `dot+epilogue` for fused steps, `call:NAME` for call equations (their nested
 * executors' steps are recorded separately, so the times are exclusive): wall time and process CPU time (Node
 * only). Returns the previous map.
 */
export function setJitProfile(p: JitProfile | null): JitProfile | null {
  const prev = profile;
  profile = p;
  return prev;
}

function stepKind(s: Step): string {
  if (s.fused !== null)
    return s.dot ? "dot+epilogue" : s.fused.reduce !== undefined ? "fused-reduce" : "fused";
  return s.prim !== null ? s.eqn.name : `call:${s.eqn.name}`;
}

/** Options of an executor. */
export interface ExecutorOpts {
  /**
   * Fuse chains of elementwise equations into one `Backend.fused` call each (core/jit-fuse.ts): only for a
   * backend that implements `fused` itself (the current backend when the executor runs must be that one).
   */
  readonly fuse?: boolean;
  /**
   * With `fuse`, also fuse the elementwise chains feeding a float sum / max / min into the reduction (a
   * reducing program, `FusedProgram.reduce`): only for a backend declaring `fusedReduce`.
   */
  readonly fuseReduce?: boolean;
  /**
   * With `fuse`, also run a float `dot` and the elementwise chain reading its product as one
   * `Backend.dotFused` call (GEMM epilogue fusion): only for a backend that provides `dotFused`.
   */
  readonly fuseEpilogue?: boolean;
}

/** A program compiled to steps; `run` may be called any number of times (not re-entrantly on one thread). */
export class Executor {
  private readonly steps: Step[] = [];
  private readonly inSlots: number[];
  private readonly outSlots: readonly (number | Tensor)[];
  /** Slots holding constants and literals, filled once per run. */
  private readonly fixed: [number, Tensor][] = [];
  readonly pool = new Pool();
  /** True while `run` runs (a re-entrant call, from a custom rule calling the same jitted function, evaluates). */
  busy = false;
  private readonly arena = new Arena(this.pool);
  private readonly slots: (Tensor | undefined)[];
  /** Per slot, the input it holds (its index) or -1. */
  private readonly inputOfSlot: Int32Array;
  /** Per input, 1 while a donated input's storage is owned by the current run (see run). */
  private readonly donatedLive: Uint8Array;

  /** The fusion groups the steps run as fused kernels (empty without fusion). */
  readonly fusion: readonly FusionGroup[];

  constructor(
    readonly program: Program,
    opts: ExecutorOpts = {},
  ) {
    const slotOf = new Map<Var, number>();
    let n = 0;
    const slot = (v: Var): number => {
      let s = slotOf.get(v);
      if (s === undefined) {
        s = n++;
        slotOf.set(v, s);
      }
      return s;
    };
    program.constvars.forEach((v, i) => {
      this.fixed.push([slot(v), program.consts[i]]);
    });
    this.inSlots = program.invars.map(slot);
    const lits = new Map<Literal, number>();
    const atomSlot = (a: Var | Literal): number => {
      if (!(a instanceof Literal)) return slot(a);
      let s = lits.get(a);
      if (s === undefined) {
        s = n++;
        lits.set(a, s);
        this.fixed.push([s, a.value]);
      }
      return s;
    };
    this.fusion =
      opts.fuse === true
        ? planFusion(program, { reduce: opts.fuseReduce === true, epilogue: opts.fuseEpilogue === true })
        : [];
    const groupAt = new Map<number, FusionGroup>();
    const inGroup = new Set<number>();
    for (const g of this.fusion) {
      for (const m of g.members) inGroup.add(m);
      groupAt.set(g.members[g.members.length - 1], g);
    }
    // one step per equation, but a fusion group is one step at its root's place (its members precede it)
    const raw: {
      eqn: Eqn;
      prim: Primitive<unknown> | null;
      fused: FusedProgram | null;
      dot: boolean;
      atoms: readonly Atom[];
      ins: number[];
      outVars: readonly Var[];
    }[] = [];
    program.eqns.forEach((e, i) => {
      const g = groupAt.get(i);
      if (g !== undefined) {
        // a GEMM epilogue reads the dot's operands in place of the product (its input 0)
        const atoms = g.dot === undefined ? g.inputs : [...g.dot.inputs, ...g.inputs.slice(1)];
        raw.push({
          eqn: e,
          prim: null,
          fused: g.program,
          dot: g.dot !== undefined,
          atoms,
          ins: atoms.map(atomSlot),
          outVars: g.outputs,
        });
      } else if (!inGroup.has(i)) {
        raw.push({
          eqn: e,
          prim: e.prim,
          fused: null,
          dot: false,
          atoms: e.inputs,
          ins: e.inputs.map(atomSlot),
          outVars: e.outputs,
        });
      }
    });
    this.outSlots = program.outs.map((o) => (o instanceof Literal ? o.value : slot(o)));
    this.slots = new Array(n);
    this.inputOfSlot = new Int32Array(n).fill(-1);
    this.inSlots.forEach((s, i) => {
      if (this.inputOfSlot[s] < 0) this.inputOfSlot[s] = i;
    });
    this.donatedLive = new Uint8Array(this.inSlots.length);
    // last use of every slot; outputs, inputs and fixed slots are never freed
    const keep = new Set<number>([...this.inSlots, ...this.fixed.map(([s]) => s)]);
    for (const o of this.outSlots) if (typeof o === "number") keep.add(o);
    const last = new Map<number, number>();
    const rawOuts = raw.map((r) => r.outVars.map(slot));
    raw.forEach((r, i) => {
      for (const s of r.ins) last.set(s, i);
      for (const s of rawOuts[i]) if (!last.has(s)) last.set(s, i); // unused outputs die at once
    });
    const freeAt: number[][] = raw.map(() => []);
    for (const [s, i] of last) if (!keep.has(s)) freeAt[i].push(s);
    raw.forEach((r, i) => {
      // (a fused step's outputs share one shape, but a reducing step's last: its first output decides)
      const out = r.outVars[0];
      const lend: number[] = [];
      // A GEMM epilogue lends only its chain's operands (the GEMM reads its own while the epilogue writes
      // finished blocks), and only to outputs after the first, which holds the product (see runFused).
      if (r.fused !== null || (r.prim !== null && POINTWISE.has(r.eqn.name))) {
        r.atoms.forEach((a, k) => {
          if (r.dot && (k < 2 || r.outVars.length < 2)) return;
          const s = r.ins[k];
          // dies here: an intermediate freed after this step, or an input (lends only if donated, see run)
          const dies = freeAt[i].includes(s) || (this.inSlots.includes(s) && last.get(s) === i);
          const once = r.ins.indexOf(s) === k && r.ins.lastIndexOf(s) === k;
          if (
            dies &&
            once &&
            !(a instanceof Literal) &&
            a.dtype === out.dtype &&
            sameShape(a.shape, out.shape)
          ) {
            lend.push(k);
          }
        });
      }
      this.steps.push({
        eqn: r.eqn,
        prim: r.prim,
        fused: r.fused,
        dot: r.dot,
        views: r.fused === null ? [] : new Array(r.ins.length - (r.dot ? 2 : 0)),
        ins: r.ins,
        outs: rawOuts[i],
        free: freeAt[i],
        args: new Array(r.ins.length),
        lend,
        outAvals: r.outVars,
        results: new Array(r.outVars.length),
        outData: new Array(r.fused === null ? 0 : r.outVars.length),
      });
    });
  }

  /**
   * Run on concrete inputs. Buffers of `donated` inputs may be reused for intermediates and outputs once their
   * last reader has run. `dest[j]`, when given, is a contiguous tensor of output j's aval that receives output
   * j and is returned in its place (a scan writes each step's ys into rows of the stacked result): the storage
   * the executor produced the output in is then recycled, unless another returned output refers to it.
   */
  run(
    inputs: readonly Tensor[],
    donated: ReadonlySet<number> | null = null,
    dest: readonly (Tensor | null)[] | null = null,
  ): Tensor[] {
    if (this.busy) throw new Error("internal: a jit executor was re-entered");
    this.busy = true;
    const slots = this.slots;
    for (let i = 0; i < this.fixed.length; i++) slots[this.fixed[i][0]] = this.fixed[i][1];
    for (let i = 0; i < this.inSlots.length; i++) slots[this.inSlots[i]] = inputs[i];
    const arena = this.arena;
    // (Map.clear allocates a fresh table in V8: the maps are cleared in `finally`, only when non-empty)
    const owned = arena.owned;
    // donated inputs whose storage is theirs alone become owned: one reference held by their input slot,
    // dropped after their last reader (below), so the buffer is recycled once nothing reads it any more
    // (live[i]: donated input i is owned in this run, released after step lastAt[i])
    const don = donated === null ? null : this.donatedLastUse(donated);
    const live = this.donatedLive;
    if (don !== null) {
      for (const i of don.inputs) {
        const t = inputs[i];
        live[i] = 0;
        if (t._data === null || t._offset !== 0 || t._data.length !== t.size || this.shared(inputs, i))
          continue;
        owned.own(t._data, t.dtype);
        this.retain(t);
        if (don.lastAt[i] === -1) this.release(t);
        else live[i] = 1;
      }
    }
    const prev = setOutArena(arena);
    try {
      for (let si = 0; si < this.steps.length; si++) {
        const step = this.steps[si];
        const prof = profile;
        const t0 = prof === null ? 0 : performance.now();
        const c0 = prof === null ? 0 : cpuNow();
        const a0 = attributed;
        const ac0 = attributedCpu;
        const ins = step.args;
        for (let k = 0; k < ins.length; k++) ins[k] = slots[step.ins[k]]!;
        if (step.prim !== null || step.fused !== null) {
          if (arena.stepBufs.length !== 0) arena.stepBufs.length = 0; // (reused; a length write is a runtime call)
          // in place: an operand that dies here, owned by nothing else, lends its storage to an output
          const results = step.results;
          for (const k of step.lend) {
            const t = ins[k];
            const d = t._data;
            // an input's storage is owned (so counted) only when it was donated and is dying here
            if (d !== null && owned.refs(d) === 1 && t._offset === 0 && d.length === t.size) {
              const inputIdx = this.inputOfSlot[step.ins[k]];
              if (inputIdx >= 0 && (don === null || live[inputIdx] !== 1 || don.lastAt[inputIdx] !== si))
                continue;
              if (!isContiguousLayout(t)) continue;
              // its one reference stays with the operand's slot, released after this step as usual
              arena.lent.push(d);
              if (arena.lent.length === results.length - (step.dot ? 1 : 0)) break;
            }
          }
          try {
            if (step.fused !== null) runFused(step, ins, arena);
            else results[0] = runImpl(step.prim!, ins, step.eqn.params, step.eqn.outputs[0]);
          } catch (e) {
            if (e instanceof AllocationError && e.op === undefined) {
              throw new AllocationError(e.message, step.eqn.name, { cause: e.cause });
            }
            throw e;
          }
          if (arena.lent.length !== 0) arena.lent.length = 0; // if not taken (the impl made no output of its own), the storage stays the operand's
          // temporaries the impl took but did not return are dead now
          for (const b of arena.stepBufs) {
            if (owned.refs(b) === 0 && !isResult(results, b)) this.pool.put(owned.dtypeOf(b)!, b);
          }
          for (let j = 0; j < results.length; j++) {
            slots[step.outs[j]] = results[j];
            this.retain(results[j]);
          }
        } else if (step.eqn.name === "scan" && step.eqn.rule?.staged !== undefined) {
          // a scan allocates its stacked ys (and nothing else it keeps) from this arena: pooled across calls
          if (arena.stepBufs.length !== 0) arena.stepBufs.length = 0; // (reused; a length write is a runtime call)
          const outs = evalCall(step.eqn, ins);
          for (const b of arena.stepBufs) {
            if (owned.refs(b) === 0 && !outs.some((o) => o._data === b)) this.pool.put(owned.dtypeOf(b)!, b);
          }
          for (let i = 0; i < outs.length; i++) {
            slots[step.outs[i]] = outs[i];
            this.retain(outs[i]);
          }
        } else {
          setOutArena(null);
          const outs = evalCall(step.eqn, ins);
          setOutArena(arena);
          for (let i = 0; i < outs.length; i++) {
            slots[step.outs[i]] = outs[i];
            // a call may return (a view of) an operand: its storage is then referred to by this slot too
            this.retain(outs[i]);
          }
        }
        for (const s of step.free) {
          this.release(slots[s]);
          slots[s] = undefined;
        }
        if (don !== null) {
          const rel = don.byStep[si];
          if (rel !== null)
            for (let j = 0; j < rel.length; j++) if (live[rel[j]] === 1) this.release(inputs[rel[j]]);
        }
        if (prof !== null) {
          const self = performance.now() - t0 - (attributed - a0);
          const selfCpu = cpuNow() - c0 - (attributedCpu - ac0);
          attributed += self;
          attributedCpu += selfCpu;
          const k = stepKind(step);
          const r = prof.get(k);
          if (r === undefined) prof.set(k, { n: 1, ms: self, cpuMs: selfCpu, best: new Map([[step, self]]) });
          else {
            r.n++;
            r.ms += self;
            r.cpuMs += selfCpu;
            const b = r.best.get(step);
            if (b === undefined || self < b) r.best.set(step, self);
          }
        }
      }
      const outs = this.outSlots.map((o) => (typeof o === "number" ? slots[o]! : o));
      if (dest !== null) this.deliver(outs, dest);
      return outs;
    } finally {
      setOutArena(prev);
      arena.lendHeld = false;
      for (let i = 0; i < slots.length; i++) slots[i] = undefined; // (a loop: fill is a runtime call)
      // (the references a run leaves in the steps' reused arrays are dropped: plain loops, no call per array)
      const steps = this.steps;
      for (let i = 0; i < steps.length; i++) {
        const st = steps[i];
        const { args, views, results, outData } = st;
        for (let k = 0; k < args.length; k++) args[k] = undefined as unknown as Tensor;
        for (let k = 0; k < views.length; k++) views[k] = undefined as unknown as View;
        for (let k = 0; k < results.length; k++) results[k] = undefined as unknown as Tensor;
        for (let k = 0; k < outData.length; k++) outData[k] = undefined as unknown as TypedArray;
      }
      owned.clear();
      this.busy = false;
    }
  }

  /**
   * Copy the outputs `dest` asks for into it. The other outputs that view part of a buffer of this run (a scan's
   * carry sliced from a step's packed result) are copied into buffers of their own, so that every buffer the
   * copies leave behind is recycled now and the next step can take its carries back as donations.
   */
  private deliver(outs: Tensor[], dest: readonly (Tensor | null)[]): void {
    const owned = this.arena.owned;
    const backend = getBackend();
    let left: TypedArray[] | null = null;
    for (let j = 0; j < outs.length; j++) {
      const d = dest[j];
      if (d === null || d === undefined) continue;
      const o = outs[j];
      backend.copy(viewOf(o), viewOf(d));
      if (o._data !== null && owned.has(o._data)) (left ??= []).push(o._data);
      outs[j] = d;
    }
    if (left === null) return;
    for (let j = 0; j < outs.length; j++) {
      const o = outs[j];
      const b = o._data;
      if (b === null || !owned.has(b) || (o._offset === 0 && b.length === o.size && isContiguousLayout(o))) {
        continue;
      }
      if (!left.includes(b)) continue;
      const c = allocOut(this.program.outs[j] as Var);
      backend.copy(viewOf(o), viewOf(c));
      outs[j] = c;
    }
    for (const b of left) {
      if (outs.some((o) => o._data === b) || !owned.has(b)) continue;
      this.pool.put(owned.dtypeOf(b)!, b);
      owned.drop(b); // (once, if two outputs shared it)
    }
  }

  /** Steps a run takes (a fusion group counts once). */
  get stepCount(): number {
    return this.steps.length;
  }

  /** One more live slot refers to `t`'s storage (counted only for storage the arena owns). */
  private retain(t: Tensor): void {
    const d = t._data;
    if (d !== null) this.arena.owned.retain(d);
  }

  /** A slot referring to `t`'s storage died: at the last one, owned storage returns to the pool. */
  private release(t: Tensor | undefined): void {
    const d = t?._data;
    if (d === null || d === undefined) return;
    const owned = this.arena.owned;
    if (owned.release(d)) this.pool.put(owned.dtypeOf(d)!, d);
  }

  /**
   * True if input i's storage is also another input's or a constant's, or views of it have been made (a tensor
   * the caller still holds may read it): then it is not the run's to reuse.
   */
  private shared(inputs: readonly Tensor[], i: number): boolean {
    if (inputs[i]._ver?.views === true) return true;
    const d = inputs[i]._data;
    for (let j = 0; j < inputs.length; j++) if (j !== i && inputs[j]._data === d) return true;
    const fixed = this.fixed;
    for (let j = 0; j < fixed.length; j++) if (fixed[j][1]._data === d) return true;
    return false;
  }

  /** donatedLastUse's answers, by the donated set first seen (jit passes the same one at every call) and by value. */
  private readonly lastUseBySet = new WeakMap<ReadonlySet<number>, DonationPlan>();
  private readonly lastUseMemo = new Map<string, DonationPlan>();

  /** Where each donated input (not returned as an output) is read last; see DonationPlan. */
  private donatedLastUse(donated: ReadonlySet<number>): DonationPlan {
    let m = this.lastUseBySet.get(donated);
    if (m !== undefined) return m;
    let key = "";
    for (const i of donated) key += `${i},`;
    m = this.lastUseMemo.get(key);
    if (m === undefined) {
      m = this.computeLastUse(donated);
      this.lastUseMemo.set(key, m);
      // (only the set that was new: a scan passes a fresh set per iteration, which would fill the WeakMap)
      this.lastUseBySet.set(donated, m);
    }
    return m;
  }

  private computeLastUse(donated: ReadonlySet<number>): DonationPlan {
    const outs = new Set(this.outSlots.filter((o): o is number => typeof o === "number"));
    const inputs: number[] = [];
    const lastAt = new Int32Array(this.inSlots.length).fill(-2);
    const byStep: (number[] | null)[] = this.steps.map(() => null);
    for (const i of donated) {
      const s = this.inSlots[i];
      if (s === undefined || outs.has(s)) continue; // returned as it is
      let at = -1;
      this.steps.forEach((st, k) => {
        if (st.ins.includes(s)) at = k;
      });
      inputs.push(i);
      lastAt[i] = at;
      if (at >= 0) (byStep[at] ??= []).push(i);
    }
    return { inputs, lastAt, byStep };
  }
}

/**
 * The donated inputs of a run and where each is read last: `inputs` (indices, those not returned as outputs),
 * `lastAt[i]` the step reading input i last (-1: none, -2: not among `inputs`), `byStep[k]` the inputs whose
 * last reader is step k (or null).
 */
interface DonationPlan {
  readonly inputs: readonly number[];
  readonly lastAt: Int32Array;
  readonly byStep: readonly (readonly number[] | null)[];
}

/**
 * A fused step: the outputs from the arena, the program run by the current backend's `fused` kernel. A GEMM
 * epilogue's first output holds the product while the chain runs over it, so it never takes lent storage (an
 * operand of the chain, read after the GEMM has written blocks of the product): it is allocated with the lent
 * buffers held back, which the later outputs may then take.
 */
function runFused(step: Step, ins: readonly Tensor[], arena: Arena): void {
  const { results, outData, views } = step;
  for (let j = 0; j < results.length; j++) {
    arena.lendHeld = j === 0 && step.dot;
    results[j] = allocOut(step.outAvals[j]);
    arena.lendHeld = false;
    outData[j] = results[j]._data!;
  }
  if (step.dot) {
    for (let k = 2; k < ins.length; k++) views[k - 2] = viewOf(ins[k]);
    getBackend().dotFused!(step.fused!, viewOf(ins[0]), viewOf(ins[1]), views, outData);
    return;
  }
  for (let k = 0; k < ins.length; k++) views[k] = viewOf(ins[k]);
  getBackend().fused!(step.fused!, views, outData);
}

/** True if `b` is the storage of one of `results`. */
function isResult(results: readonly Tensor[], b: TypedArray): boolean {
  for (let j = 0; j < results.length; j++) if (results[j]._data === b) return true;
  return false;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Row-major contiguous strides (size-1 dims may have any stride). */
function isContiguousLayout(t: Tensor): boolean {
  let expect = 1;
  for (let d = t.shape.length - 1; d >= 0; d--) {
    if (t.shape[d] !== 1 && t._strides[d] !== expect) return false;
    expect *= t.shape[d];
  }
  return true;
}
