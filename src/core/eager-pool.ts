/**
 * Storage recycling for eager backward passes.
 *
 * Eager tensors own plain typed arrays that the garbage collector frees, and V8 runs a young collection for
 * every ~16 MB of new array buffers: a Transformer step that allocates a gigabyte spent more time collecting
 * than computing. Most of that memory is backward's own: cotangents and the temporaries of VJP rules, which
 * are dead as soon as the node that consumes them has run. A backward pass knows exactly who refers to them
 * (the pending-cotangent table of `runBackward`), so it can give their storage back for reuse, the way jit's
 * executor does with its planned memory.
 *
 * The pass counts, per storage it allocated itself, the references held by pending cotangents; a storage whose
 * count drops to zero after its consumer ran (or that a VJP rule allocated and did not return) goes to a pool
 * keyed by dtype and length. Anything that leaves the pass (a leaf's `.grad`, a retained gradient, a value
 * handed to a hook) is never recycled. While the pass runs, kernel outputs (`allocOut`) are served from the pool.
 * The pass's pool holds at most `POOL_CAP_BYTES`; when the pass ends, what it holds moves to the step pool below,
 * which serves the next passes and the forward activations of built-in layers. Storage that has survived
 * collections (old generation) must only go to values the library takes back itself: handed to arbitrary
 * activations that then die unseen, it costs full mark-compact collections instead of cheap young ones (measured
 * before the step pool existed, with every forward output served from the pool: an MLP training loop went from 5
 * to 156 mark-compacts per 3,000 steps). Only top-level eager backward passes recycle (no transform or
 * jit trace in progress, no `createGraph`): then every value is concrete and every op evaluates directly, so
 * nothing else can hold a reference to a temporary. Recycling only typed-array storage of the CPU backends.
 */
import type { DType, TypedArray } from "../dtype.ts";
import { allocData, getBackend, type OutArena, setOutArena } from "../prims/impl.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { TapeNode } from "./tape.ts";

/** The most bytes the pool keeps; storage given back beyond it is left to the garbage collector. */
export const POOL_CAP_BYTES = 512 * 2 ** 20;
/** Storage smaller than this is not worth a pool entry (V8 allocates it cheaply). */
const MIN_BYTES = 1024;

/** Backends whose storage is an ordinary typed array owned by nothing else. */
const POOLED_BACKENDS = new Set(["native", "js", "wasm"]);

/**
 * Options. `minPassBytes`: a pass recycles only when its nodes' outputs add up to at least this many bytes; below
 * that it triggers no collection worth saving and the bookkeeping would only cost time (an MLP step on 128
 * digits was 3% slower with it). For tests: `enabled` false turns recycling off, `poison` fills recycled
 * storage with NaN (or 0x55 bytes) to expose any reuse.
 */
export const eagerPoolOpts = { enabled: true, poison: false, minPassBytes: 8 * 2 ** 20 };

/** Statistics of the pool (for tests and profiling). */
export const eagerPoolStats = { recycled: 0, reused: 0, fresh: 0 };

/** The allocations and references of one recycling backward pass. */
export class Recycler {
  /** Storage allocated by this pass (while tracking), with its dtype: the only storage it may recycle. */
  readonly owned = new Map<TypedArray, DType>();
  /** References to owned storage held by pending cotangents. */
  readonly refs = new Map<TypedArray, number>();
  /** Storage allocated since `begin`. */
  fresh: TypedArray[] = [];
  /** Whether allocations are recorded now. */
  tracking = false;

  /** Start recording allocations (a node's section of the pass). */
  begin(): void {
    this.fresh = [];
    this.tracking = true;
  }

  /** A pending cotangent now refers to `t`'s storage. */
  ref(t: Tensor): void {
    const d = t._data;
    if (d === null || !this.owned.has(d)) return;
    this.refs.set(d, (this.refs.get(d) ?? 0) + 1);
  }

  /** A pending cotangent referring to `t`'s storage was consumed or replaced. */
  unref(t: Tensor): void {
    const d = t._data;
    if (d === null) return;
    const n = this.refs.get(d);
    if (n === undefined) return;
    if (n > 1) this.refs.set(d, n - 1);
    else {
      this.refs.delete(d);
      this.fresh.push(d); // a candidate for the sweep
    }
  }

  /** `t`'s storage leaves the pass (a gradient, a hook's argument): never recycle it. */
  escape(t: Tensor): void {
    const d = t._data;
    if (d === null) return;
    this.owned.delete(d);
    this.refs.delete(d);
  }

  /** Give back every candidate storage that is owned and no longer referred to. */
  sweep(): void {
    this.tracking = false;
    const c = this.fresh;
    for (let i = 0; i < c.length; i++) {
      const d = c[i];
      const dtype = this.owned.get(d);
      if (dtype === undefined || this.refs.has(d)) continue;
      this.owned.delete(d);
      pool.put(dtype, d);
    }
    this.fresh = [];
  }
}

/** Dead storage by dtype and length, and the bytes it holds. */
class FreeLists {
  private lists = new Map<DType, Map<number, TypedArray[]>>();
  bytes = 0;

  /** A storage of exactly `n` elements of `dtype`, if one is held. */
  take(dtype: DType, n: number): TypedArray | undefined {
    if (this.bytes === 0) return undefined;
    const list = this.lists.get(dtype)?.get(n);
    if (list === undefined || list.length === 0) return undefined;
    const d = list.pop()!;
    this.bytes -= d.byteLength;
    eagerPoolStats.reused++;
    return d;
  }

  put(dtype: DType, d: TypedArray): void {
    let byLen = this.lists.get(dtype);
    if (byLen === undefined) {
      byLen = new Map();
      this.lists.set(dtype, byLen);
    }
    const list = byLen.get(d.length);
    if (list === undefined) byLen.set(d.length, [d]);
    else list.push(d);
    this.bytes += d.byteLength;
  }

  /** Empty the lists, handing each storage to `f` (or to the garbage collector). */
  drain(f?: (dtype: DType, d: TypedArray) => void): void {
    if (f !== undefined) {
      for (const [dtype, byLen] of this.lists)
        for (const list of byLen.values()) for (const d of list) f(dtype, d);
    }
    this.lists.clear();
    this.bytes = 0;
  }
}

/**
 * Storage kept from one step to the next (at most `POOL_CAP_BYTES`): forward activations of built-in layers
 * (`ActivationScope`) and what backward passes' pools held when they ended.
 */
const stepPool = new FreeLists();

/** Give `d` to the step pool; `moved` when it comes from a pass's pool (already poisoned and counted). */
function stepPut(dtype: DType, d: TypedArray, moved = false): void {
  // a full pool holds sizes the steps no longer use (the batch size changed): start over
  if (stepPool.bytes + d.byteLength > POOL_CAP_BYTES) stepPool.drain();
  if (!moved) {
    if (eagerPoolOpts.poison) poison(dtype, d);
    eagerPoolStats.recycled++;
  }
  stepPool.put(dtype, d);
}

/** The pool of dead storage of one backward pass, served to its kernel outputs (then from the step pool). */
class EagerPool implements OutArena {
  private free = new FreeLists();
  /** The recycling pass in progress, if any. */
  active: Recycler | null = null;

  take(dtype: DType, shape: readonly number[], n: number, zeroed: boolean): TypedArray {
    let d = this.free.take(dtype, n) ?? stepPool.take(dtype, n);
    if (d === undefined) {
      d = allocData(dtype, shape, !zeroed);
      eagerPoolStats.fresh++;
    } else if (zeroed) d.fill(0);
    const rc = this.active;
    // storage too small to pool is left to the garbage collector without bookkeeping
    if (rc?.tracking && d.byteLength >= MIN_BYTES) {
      rc.owned.set(d, dtype);
      rc.fresh.push(d);
    }
    return d;
  }

  put(dtype: DType, d: TypedArray): void {
    if (d.byteLength < MIN_BYTES || this.free.bytes + d.byteLength > POOL_CAP_BYTES) return;
    if (eagerPoolOpts.poison) poison(dtype, d);
    this.free.put(dtype, d);
    eagerPoolStats.recycled++;
  }

  /** Hand every pooled storage to the step pool, for the next steps. */
  clear(): void {
    this.free.drain((dtype, d) => stepPut(dtype, d, true));
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.free.bytes;
  }
}

const pool = new EagerPool();

/**
 * Start a recycling backward pass, or return null when this pass must not recycle (see the module comment:
 * the caller checks transforms and createGraph; this checks the backend, the options and nesting). Kernel
 * outputs are served from the pool until `stopRecycling`.
 */
export function startRecycling(): Recycler | null {
  if (!eagerPoolOpts.enabled || pool.active !== null) return null;
  if (!POOLED_BACKENDS.has(getBackend().name)) return null;
  const prev = setOutArena(pool);
  if (prev !== null) {
    // another arena (jit's executor) serves outputs now: leave it alone
    setOutArena(prev);
    return null;
  }
  const rc = new Recycler();
  pool.active = rc;
  return rc;
}

/** End the pass started by `startRecycling`: the pool's storage moves to the step pool, outputs are allocated fresh again. */
export function stopRecycling(rc: Recycler): void {
  rc.tracking = false;
  if (pool.active !== rc) return;
  pool.active = null;
  pool.clear();
  setOutArena(null);
}

/** Bytes of dead storage the per-pass pool holds now (zero outside a backward pass). */
export function eagerPoolBytes(): number {
  return pool.heldBytes;
}

/**
 * Forward activations recycled across steps.
 *
 * A container whose whole module tree is known to keep nothing it computes (`nn.Sequential` of built-in layers
 * without hooks) runs its forward pass inside an `ActivationScope`: kernel outputs are served from `stepPool`,
 * storage that survived earlier steps, and every storage handed out is recorded. When the forward returns, the
 * recorded storage minus the output's and the module state's is reachable only through the tape (saved values)
 * or not at all. It is attached to the output's tape node and given back to the pool when a backward pass frees
 * that node (every node reachable from it is freed by the same pass: `recycleFreed` in tape.ts); with no tape
 * node it is dead at once. A pass that retains the graph forfeits the recycling of the nodes it visits (a
 * `createGraph` pass may have saved the activations in a second graph).
 *
 * This is what the per-pass pool above must not do, turned around: storage from `stepPool` goes only to values
 * whose death the library proves, so it comes back instead of dying in the old generation. The steady state of
 * a training loop then makes no fresh activation storage at all, and V8's external-memory collections (one
 * young collection per ~32 MB of new array buffers, and the full collections that free activations promoted
 * while backward ran) go away with it.
 */
export class ActivationScope implements OutArena {
  /** Storage handed out in the scope, with its dtype. */
  readonly owned = new Map<TypedArray, DType>();
  /** Tape nodes recorded in the scope that saved a value (or hold a backward closure). */
  readonly nodes: TapeNode[] = [];

  take(dtype: DType, shape: readonly number[], n: number, zeroed: boolean): TypedArray {
    let d = stepPool.take(dtype, n);
    if (d === undefined) {
      d = allocData(dtype, shape, !zeroed);
      eagerPoolStats.fresh++;
    } else if (zeroed) d.fill(0);
    if (d.byteLength >= MIN_BYTES) this.owned.set(d, dtype);
    return d;
  }
}

/**
 * Start recording a container's forward pass (see `ActivationScope`), or return null when it must not: recycling
 * off, a backend whose storage is not a plain typed array, or another arena (jit's executor, a backward pass)
 * serving outputs. The caller checks the rest (top-level eager evaluation, no autocast, its module tree).
 */
export function beginActivations(): ActivationScope | null {
  if (recording !== null || !eagerPoolOpts.enabled || !POOLED_BACKENDS.has(getBackend().name)) return null;
  const scope = new ActivationScope();
  const prev = setOutArena(scope);
  if (prev !== null) {
    setOutArena(prev);
    return null;
  }
  recording = scope;
  return scope;
}

/** The recording in progress, if any. */
let recording: ActivationScope | null = null;

/** Whether a recording is in progress (a root nested in it just runs: the outer one records for it). */
export function recordingActivations(): boolean {
  return recording !== null;
}

/** The tape recorded `node`, which saved a value: the recording in progress must outlive it. */
export function noteSavingNode(node: TapeNode): void {
  if (recording !== null) recording.nodes.push(node);
}

/**
 * The activations of one recording, attached to the tape nodes it recorded that saved a value: given back once
 * backward passes have freed all `pending` of them, unless a pass that retained the graph visited one
 * (`forfeit`). Nothing else can reach them: the outputs' and the module state's storage is left out, the other
 * intermediates were local to the call, and nodes that saved nothing hold no tensor.
 */
export interface ActivationRecord {
  readonly owned: Map<TypedArray, DType>;
  pending: number;
  forfeit: boolean;
}

/**
 * End a recording started by `beginActivations`. `outs` are the tensors the call returns (null when it threw:
 * everything is then left to the garbage collector) and `state()` its module state (parameters and buffers):
 * their storage escapes (null when no module of the call replaces its state: then none of it is new storage). The rest is given back now when no node saved anything (no grad, or a linear graph),
 * or attached to the nodes that did (see `ActivationRecord`).
 */
export function endActivations(
  scope: ActivationScope,
  outs: readonly Tensor[] | null,
  state: (() => Iterable<Tensor>) | null,
): void {
  setOutArena(null);
  recording = null;
  const owned = scope.owned;
  if (outs === null || owned.size === 0) return;
  if (state !== null) for (const t of state()) if (t._data !== null) owned.delete(t._data);
  for (const o of outs) if (o._data !== null) owned.delete(o._data);
  const nodes = scope.nodes;
  if (nodes.length === 0) {
    giveBack(owned);
    return;
  }
  const rec: ActivationRecord = { owned, pending: nodes.length, forfeit: false };
  for (const n of nodes) n.recycle = rec;
}

/** Give recycled activation storage to the step pool. */
export function giveBack(owned: Map<TypedArray, DType>): void {
  for (const [d, dtype] of owned) stepPut(dtype, d);
}

/** Bytes the step pool holds now. */
export function stepPoolBytes(): number {
  return stepPool.bytes;
}

/** Drop the step pool's storage (the garbage collector frees it); returns the bytes it held. */
export function clearStepPool(): number {
  const bytes = stepPool.bytes;
  stepPool.drain();
  return bytes;
}

/** Fill recycled storage with NaN (or 0x55 bytes) to expose any use after recycling (tests). */
function poison(dtype: DType, d: TypedArray): void {
  if (dtype === "float32" || dtype === "float64") d.fill(Number.NaN);
  else new Uint8Array(d.buffer, d.byteOffset, d.byteLength).fill(0x55);
}

/**
 * Release the tensor storage the library keeps for reuse between training steps (the forward activations and
 * backward temporaries of built-in layers, see `ActivationScope`), like PyTorch's `torch.cuda.empty_cache()`.
 * Returns the bytes released; the garbage collector frees them. Later steps allocate afresh and refill it.
 *
 * @example
 * ```ts
 * for (const [x, y] of loader) trainStep(x, y);
 * emptyCache(); // training is over: give its cached activations back
 * ```
 */
export function emptyCache(): number {
  return clearStepPool();
}

/** Bytes of tensor storage kept for reuse between steps (what `emptyCache` would release). */
export function cachedMemory(): number {
  return stepPool.bytes;
}
