/**
 * Collectives on tensors, torch.distributed style: `allReduce`, `broadcast`, `allGather`, `reduceScatter`,
 * `send`/`recv`, `barrier`. Each works in place on the tensors' storage (the MPI binding reads and writes the
 * typed arrays directly, at the tensor's offset); a non-contiguous tensor goes through a contiguous staging
 * copy that is written back when the operation completes. Every dtype is supported (bool reduces as logical
 * or / and); `mean` is for floating-point tensors.
 *
 * `{ async: true }` returns a {@link Work} handle at once: the operation runs on the binding's communication
 * thread while JavaScript goes on computing, and `wait()` (or `await work.promise()`) completes it.
 * Operations start in the order they are called, which must be the same on every rank (as in MPI).
 */
import { isFloat, isHalf, type TypedArray } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { copyInto, contiguousData } from "../ops/shape.ts";
import { contiguousStrides, fmtShape, isContiguous } from "../shape.ts";
import { noGrad } from "../core/trace.ts";
import { Tensor } from "../tensor/tensor.ts";
import { ELEM, type MpiWork, RED } from "./addon.ts";
import { abortJob, currentGroup, type Group } from "./process-group.ts";

/** A reduction of {@link allReduce} and {@link reduceScatter}. */
export type ReduceOp = "sum" | "mean" | "max" | "min";

/** `{ async: true }` returns a Work handle instead of waiting. */
export interface AsyncOpt {
  async?: boolean;
}

/**
 * A collective started with `{ async: true }`. `wait()` blocks until it completed and the results are in the
 * tensors (bounded by the process group's timeout, after which the job ends); it is idempotent.
 */
export class Work {
  #mpi: MpiWork | undefined;
  #finish: (() => void) | undefined;
  #done = false;
  readonly #op: string;

  /** @internal */
  constructor(op: string, mpi: MpiWork | undefined, finish?: () => void) {
    this.#op = op;
    this.#mpi = mpi;
    this.#finish = finish;
  }

  /** Whether the operation has completed (never blocks; `wait()` is still needed to write staged results back). */
  isCompleted(): boolean {
    return this.#done || this.#mpi === undefined || this.#mpi.test();
  }

  /** Block until the operation completed and its results are in place. */
  wait(): void {
    if (this.#done) return;
    if (this.#mpi !== undefined) guard(this.#op, () => this.#mpi!.wait());
    this.#complete();
  }

  /** A promise of completion (the wait happens off the JavaScript thread); results are in place when it resolves. */
  async promise(): Promise<void> {
    if (this.#done) return;
    if (this.#mpi !== undefined) {
      try {
        await this.#mpi.promise();
      } catch (e) {
        rethrowOrAbort(this.#op, e);
      }
    }
    this.#complete();
  }

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#mpi = undefined;
    const f = this.#finish;
    this.#finish = undefined;
    f?.();
  }
}

function rethrowOrAbort(op: string, e: unknown): never {
  if (e instanceof Error && (e as { code?: string }).code === "CHAINRULE_DIST_TIMEOUT") {
    abortJob(
      `${op}: ${e.message}; another rank has stopped, is stuck, or called a different collective ` +
        "(raise initProcessGroup's timeoutMs if the work between collectives is longer)",
    );
  }
  throw e;
}

function guard<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    rethrowOrAbort(op, e);
  }
}

/** The storage of a tensor a collective reads or writes: in place when contiguous, else a staging copy. */
interface Slab {
  data: TypedArray;
  off: number;
  n: number;
  /** Write the staging copy back into the tensor (non-contiguous tensors only). */
  writeBack: (() => void) | null;
}

function concreteTensor(t: unknown, op: string, what: string): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} must be a Tensor`);
  if (t._trace !== null || t._data === null) {
    throw new TypeError(
      `${op}: ${what} must be a concrete tensor; collectives cannot run inside a transform (grad, vmap, jit ...)`,
    );
  }
  return t;
}

function slabOf(t: Tensor, op: string, what: string, written: boolean): Slab {
  const data = t._data!;
  if (isContiguous(t.shape, t._strides) && !isHalf(t.dtype)) {
    return { data, off: t._offset, n: t.size, writeBack: null };
  }
  if (written && t.shape.some((d, i) => d > 1 && t._strides[i] === 0)) {
    throw new ShapeError(
      `${op}: ${what} (shape ${fmtShape(t.shape)}, strides [${t._strides.join(", ")}]) is a broadcast view whose ` +
        "elements share memory; the result cannot be written into it. Pass a contiguous tensor (clone())",
    );
  }
  // float16 / bfloat16 travel as float32 (contiguousData gives their values widened, exactly): MPI has no
  // 16-bit float type, so reductions run in float32 and the result is rounded once when it is written back
  const staged = contiguousData(t, op);
  const stagedDtype = isHalf(t.dtype) ? "float32" : t.dtype;
  const writeBack = written
    ? () => {
        const src = Tensor._concrete(staged, t.shape, stagedDtype, contiguousStrides(t.shape));
        noGrad(() => copyInto(t, src));
      }
    : null;
  return { data: staged, off: 0, n: staged.length, writeBack };
}

function elemOf(t: Tensor): number {
  return t.dtype === "bool" ? ELEM.bool : ELEM.plain;
}

function redOf(op: string, red: string, t: Tensor): number {
  const code = (RED as Record<string, number>)[red];
  if (code === undefined) {
    throw new TypeError(`${op}: unknown reduction '${red}'; expected one of sum, mean, max, min`);
  }
  if (red === "mean" && !isFloat(t.dtype)) {
    throw new DTypeError(`${op}: reduction 'mean' needs a floating-point tensor, got ${t.dtype}`);
  }
  return code;
}

/** Mark in-place writes: bump the version counter, as every in-place op does. */
function bump(t: Tensor): void {
  if (t._ver !== null) t._ver.v++;
}

/** Run `start` (sync, or async returning a Work), then `finish` when complete. */
function launch(
  op: string,
  async: boolean | undefined,
  start: (async: boolean) => MpiWork | undefined,
  finish: () => void,
): Work | undefined {
  if (!async) {
    guard(op, () => start(false));
    finish();
    return undefined;
  }
  const w = guard(op, () => start(true));
  return new Work(op, w, finish);
}

function mpiGroup(op: string): Group & { addon: NonNullable<Group["addon"]> } {
  const g = currentGroup(op);
  return g as Group & { addon: NonNullable<Group["addon"]> };
}

/**
 * Reduce `t` over all ranks, in place: afterwards every rank holds the sum (mean, max, min) of all ranks'
 * values. Returns `t`, or a {@link Work} with `{ async: true }`.
 *
 * @example
 * ```ts
 * const g = tensor([rank + 1]);
 * allReduce(g, "sum"); // [1 + 2 + ... + worldSize] on every rank
 * ```
 */
export function allReduce(t: Tensor, op?: ReduceOp, opts?: { async?: false }): Tensor;
export function allReduce(t: Tensor, op: ReduceOp, opts: { async: true }): Work;
export function allReduce(t: Tensor, op: ReduceOp = "sum", opts: AsyncOpt = {}): Tensor | Work {
  const name = "allReduce";
  const x = concreteTensor(t, name, "the tensor");
  const red = redOf(name, op, x);
  const g = mpiGroup(name);
  if (g.addon === null) return opts.async ? new Work(name, undefined) : x;
  const s = slabOf(x, name, "the tensor", true);
  const w = launch(
    name,
    opts.async,
    (a) => g.addon.allReduce(s.data, s.off, s.n, elemOf(x), red, a),
    () => {
      s.writeBack?.();
      bump(x);
    },
  );
  return w ?? x;
}

/** Copy rank `src`'s `t` into `t` on every rank (in place). Returns `t`, or a Work with `{ async: true }`. */
export function broadcast(t: Tensor, src?: number, opts?: { async?: false }): Tensor;
export function broadcast(t: Tensor, src: number, opts: { async: true }): Work;
export function broadcast(t: Tensor, src = 0, opts: AsyncOpt = {}): Tensor | Work {
  const name = "broadcast";
  const x = concreteTensor(t, name, "the tensor");
  const g = mpiGroup(name);
  checkRank(name, "src", src, g);
  if (g.addon === null) return opts.async ? new Work(name, undefined) : x;
  const s = slabOf(x, name, "the tensor", g.rank !== src);
  const w = launch(
    name,
    opts.async,
    (a) => g.addon.broadcast(s.data, s.off, s.n, src, a),
    () => {
      if (g.rank !== src) {
        s.writeBack?.();
        bump(x);
      }
    },
  );
  return w ?? x;
}

function checkRank(op: string, what: string, r: number, g: Group): void {
  if (!Number.isInteger(r) || r < 0 || r >= g.worldSize) {
    throw new RangeError(`${op}: ${what} must be a rank in [0, ${g.worldSize - 1}], got ${r}`);
  }
}

function checkSame(op: string, a: Tensor, b: Tensor, what: string): void {
  if (a.dtype !== b.dtype) {
    throw new DTypeError(`${op}: ${what} has dtype ${b.dtype}, the input ${a.dtype}; they must match`);
  }
}

/**
 * Gather every rank's `t` on every rank, in rank order: into `out`, a list of worldSize tensors of t's shape,
 * or one tensor of worldSize x t.size elements (e.g. shape [worldSize * n, ...] or [worldSize, ...t.shape]).
 */
export function allGather(out: Tensor | readonly Tensor[], t: Tensor, opts?: { async?: false }): void;
export function allGather(out: Tensor | readonly Tensor[], t: Tensor, opts: { async: true }): Work;
export function allGather(out: Tensor | readonly Tensor[], t: Tensor, opts: AsyncOpt = {}): Work | undefined {
  const name = "allGather";
  const x = concreteTensor(t, name, "the input");
  const g = mpiGroup(name);
  const n = x.size;
  let target: Slab;
  let finish: () => void;
  if (Array.isArray(out)) {
    const list = out.map((o, i) => concreteTensor(o, name, `output ${i}`));
    if (list.length !== g.worldSize) {
      throw new ShapeError(
        `${name}: expected a list of ${g.worldSize} output tensors (the world size), got ${list.length}`,
      );
    }
    list.forEach((o, i) => {
      checkSame(name, x, o, `output ${i}`);
      if (o.size !== n) {
        throw new ShapeError(
          `${name}: output ${i} has shape ${fmtShape(o.shape)}, the input ${fmtShape(x.shape)}; sizes must match`,
        );
      }
    });
    const staging = contiguousData(x, name).constructor as { new (n: number): TypedArray };
    const buf = new staging(n * g.worldSize);
    target = { data: buf, off: 0, n: buf.length, writeBack: null };
    finish = () => {
      list.forEach((o, i) => {
        const dt = isHalf(o.dtype) ? "float32" : o.dtype; // halves were staged as float32 (slabOf)
        const part = Tensor._concrete(buf, o.shape, dt, contiguousStrides(o.shape), i * n);
        noGrad(() => copyInto(o, part));
      });
    };
  } else {
    const o = concreteTensor(out as Tensor, name, "the output");
    checkSame(name, x, o, "the output");
    if (o.size !== n * g.worldSize) {
      throw new ShapeError(
        `${name}: the output has shape ${fmtShape(o.shape)} (${o.size} elements); expected worldSize ${g.worldSize} x ` +
          `the input's ${n} elements (input shape ${fmtShape(x.shape)})`,
      );
    }
    target = slabOf(o, name, "the output", true);
    finish = () => {
      target.writeBack?.();
      bump(o);
    };
  }
  if (g.addon === null) {
    // a world of one: the output is the input
    const src = slabOf(x, name, "the input", false);
    target.data.set(src.data.subarray(src.off, src.off + n), target.off);
    finish();
    return opts.async ? new Work(name, undefined) : undefined;
  }
  const src = slabOf(x, name, "the input", false);
  return launch(
    name,
    opts.async,
    (a) => g.addon.allGather(src.data, src.off, src.n, target.data, target.off, target.n, a),
    finish,
  );
}

/**
 * Reduce `input` over all ranks and scatter the result: rank r receives, in `out`, the reduction of block r
 * of every rank's input (input: a tensor of worldSize x out.size elements, or a list of worldSize tensors of
 * out's size).
 */
export function reduceScatter(
  out: Tensor,
  input: Tensor | readonly Tensor[],
  op?: ReduceOp,
  opts?: { async?: false },
): Tensor;
export function reduceScatter(
  out: Tensor,
  input: Tensor | readonly Tensor[],
  op: ReduceOp,
  opts: { async: true },
): Work;
export function reduceScatter(
  out: Tensor,
  input: Tensor | readonly Tensor[],
  op: ReduceOp = "sum",
  opts: AsyncOpt = {},
): Tensor | Work {
  const name = "reduceScatter";
  const o = concreteTensor(out, name, "the output");
  const red = redOf(name, op, o);
  const g = mpiGroup(name);
  const n = o.size;
  let src: Slab;
  if (Array.isArray(input)) {
    const list = input.map((t, i) => concreteTensor(t, name, `input ${i}`));
    if (list.length !== g.worldSize) {
      throw new ShapeError(
        `${name}: expected a list of ${g.worldSize} input tensors (the world size), got ${list.length}`,
      );
    }
    list.forEach((t, i) => {
      checkSame(name, o, t, `input ${i}`);
      if (t.size !== n) {
        throw new ShapeError(
          `${name}: input ${i} has shape ${fmtShape(t.shape)}, the output ${fmtShape(o.shape)}; sizes must match`,
        );
      }
    });
    const parts = list.map((t) => contiguousData(t, name));
    const Ctor = parts[0]?.constructor as { new (n: number): TypedArray } | undefined;
    const buf = Ctor === undefined ? new Float32Array(0) : new Ctor(n * g.worldSize);
    parts.forEach((p, i) => {
      buf.set(p, i * n);
    });
    src = { data: buf, off: 0, n: buf.length, writeBack: null };
  } else {
    const x = concreteTensor(input as Tensor, name, "the input");
    checkSame(name, o, x, "the input");
    if (x.size !== n * g.worldSize) {
      throw new ShapeError(
        `${name}: the input has shape ${fmtShape(x.shape)} (${x.size} elements); expected worldSize ${g.worldSize} x ` +
          `the output's ${n} elements (output shape ${fmtShape(o.shape)})`,
      );
    }
    src = slabOf(x, name, "the input", false);
  }
  const dst = slabOf(o, name, "the output", true);
  const finish = () => {
    dst.writeBack?.();
    bump(o);
  };
  if (g.addon === null) {
    dst.data.set(src.data.subarray(src.off, src.off + n), dst.off);
    finish();
    return opts.async ? new Work(name, undefined) : o;
  }
  const w = launch(
    name,
    opts.async,
    (a) => g.addon.reduceScatter(src.data, src.off, src.n, dst.data, dst.off, dst.n, elemOf(o), red, a),
    finish,
  );
  return w ?? o;
}

/** Options of {@link send} and {@link recv}: a message tag (0 ... 32767, default 0) and async. */
export interface P2POpts extends AsyncOpt {
  tag?: number;
}

/** Send `t` to rank `dst` (which must `recv` a tensor of the same size and dtype). */
export function send(t: Tensor, dst: number, opts?: P2POpts & { async?: false }): void;
export function send(t: Tensor, dst: number, opts: P2POpts & { async: true }): Work;
export function send(t: Tensor, dst: number, opts: P2POpts = {}): Work | undefined {
  const name = "send";
  const x = concreteTensor(t, name, "the tensor");
  const g = mpiGroup(name);
  checkRank(name, "dst", dst, g);
  if (dst === g.rank) throw new RangeError(`${name}: dst ${dst} is this rank; send to another rank`);
  const s = slabOf(x, name, "the tensor", false);
  return launch(
    name,
    opts.async,
    (a) => g.addon.send(s.data, s.off, s.n, dst, opts.tag ?? 0, a),
    () => {},
  );
}

/** Receive into `t` (in place) a tensor sent by rank `src` with the same tag. */
export function recv(t: Tensor, src: number, opts?: P2POpts & { async?: false }): Tensor;
export function recv(t: Tensor, src: number, opts: P2POpts & { async: true }): Work;
export function recv(t: Tensor, src: number, opts: P2POpts = {}): Tensor | Work {
  const name = "recv";
  const x = concreteTensor(t, name, "the tensor");
  const g = mpiGroup(name);
  checkRank(name, "src", src, g);
  if (src === g.rank) throw new RangeError(`${name}: src ${src} is this rank; receive from another rank`);
  const s = slabOf(x, name, "the tensor", true);
  const w = launch(
    name,
    opts.async,
    (a) => g.addon.recv(s.data, s.off, s.n, src, opts.tag ?? 0, a),
    () => {
      s.writeBack?.();
      bump(x);
    },
  );
  return w ?? x;
}

/** Wait until every rank has reached this barrier. */
export function barrier(opts?: { async?: false }): void;
export function barrier(opts: { async: true }): Work;
export function barrier(opts: AsyncOpt = {}): Work | undefined {
  const g = mpiGroup("barrier");
  if (g.addon === null) return opts.async ? new Work("barrier", undefined) : undefined;
  return launch(
    "barrier",
    opts.async,
    (a) => g.addon.barrier(a),
    () => {},
  );
}
