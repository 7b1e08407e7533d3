/**
 * DistributedDataParallel: data-parallel training of one model replicated on every rank, PyTorch style.
 *
 * At construction the parameters and buffers of rank 0 are broadcast, so every replica starts equal. Each rank
 * runs forward and backward on its own share of the global batch; gradients are averaged over the ranks during
 * backward: parameters are grouped into buckets (in reverse registration order, the order in which backward
 * usually produces their gradients, up to `bucketCapMb` per bucket), and as soon as every gradient of a bucket
 * has been accumulated (post-accumulate hooks, `Tensor.registerPostAccumulateGradHook`) the bucket's all-reduce
 * starts asynchronously on the MPI communication thread, overlapping the rest of the backward pass. When the
 * last gradient is ready, the reductions are waited for and the averaged gradients written to `.grad`, so the
 * optimizer step that follows sees the same gradients on every rank. Buckets are launched in index order on
 * every rank, which keeps the collectives matched across ranks.
 *
 * A parameter that gets no gradient in an iteration leaves its bucket incomplete; the next forward then fails
 * with an error naming it, unless `findUnusedParameters` is set (the graph is then searched after each forward,
 * and unused parameters count as zero gradients). BatchNorm statistics stay per process (use SyncBatchNorm to
 * share them); buffers are broadcast from rank 0 at each forward (`broadcastBuffers`).
 */
import { getBackend } from "../backend/registry.ts";
import { noGrad, state } from "../core/trace.ts";
import { allocTyped, type DType, type TypedArray } from "../dtype.ts";
import { Module } from "../nn/module.ts";
import { viewOf } from "../prims/impl.ts";
import { contiguousStrides, fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { TapeNode } from "../core/tape.ts";
import { allGather, allReduce, broadcast, type Work } from "./collectives.ts";
import { currentGroup } from "./process-group.ts";

/** Options of {@link DistributedDataParallel}. */
export interface DDPOptions {
  /** Largest gradient bucket, in MiB (default 25, as PyTorch). Smaller buckets start communicating sooner. */
  bucketCapMb?: number;
  /** Broadcast rank 0's buffers (BatchNorm running statistics) at every forward (default true). */
  broadcastBuffers?: boolean;
  /** Search the graph after each forward for parameters it does not use (default false: costs a graph walk). */
  findUnusedParameters?: boolean;
  /**
   * Make each `.grad` a view of its bucket's storage instead of a copy (default false). Saves a copy per
   * parameter; the view is overwritten by the next synchronised backward.
   */
  gradientAsBucketView?: boolean;
  /**
   * Average the gradients in a defined order instead of MPI's (default false). Each bucket is all-gathered and
   * every rank sums the ranks' gradients itself, in rank order as a pairwise tree (level by level: 0+1, 2+3, ...,
   * then the pairs' sums in the same way; an odd last element moves up a level unchanged), then divides by the
   * world size. MPI chooses its all-reduce algorithm by message size and world size, and a ring sums every
   * chunk of the buffer in another order; this mode makes the result a function of the ranks' gradients alone,
   * so a run can be reproduced bit for bit in one process (see docs/distributed.md, "Bit for bit"). It costs an
   * all-gather, (worldSize - 1) x the bucket's bytes received per rank instead of about 2 x, and worldSize x the
   * bucket's memory.
   */
  deterministic?: boolean;
}

interface Bucket {
  dtype: DType;
  data: TypedArray;
  params: Tensor[];
  offsets: number[];
  pending: number;
  work: Work | null;
  /** deterministic: the ranks' copies of the bucket, side by side (allocated at the first use). */
  gathered: TypedArray | null;
}

/**
 * Wrap `module` for data-parallel training over the process group (call `initProcessGroup` first). Train it
 * as the module itself: `ddp.call(x)`, `loss.backward()`, `optimizer.step()` on `ddp.parameters()`.
 *
 * @example
 * ```ts
 * distributed.initProcessGroup();
 * const model = new distributed.DistributedDataParallel(new nn.Linear(10, 1));
 * const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
 * for (const [x, y] of loader) {        // loader over a DistributedSampler: this rank's share
 *   opt.zeroGrad();
 *   nn.mseLoss(model.call(x), y).backward(); // gradients averaged over the ranks here
 *   opt.step();
 * }
 * ```
 */
export class DistributedDataParallel<In extends unknown[] = [Tensor], Out = Tensor> extends Module<In, Out> {
  /** The wrapped model (save `ddp.module.stateDict()` to get checkpoints that load without DDP). */
  readonly module: Module<In, Out>;
  readonly #buckets: Bucket[] = [];
  readonly #where = new Map<Tensor, { bucket: number; index: number }>();
  readonly #names = new Map<Tensor, string>();
  readonly #hooks: { remove(): void }[] = [];
  readonly #broadcastBuffers: boolean;
  readonly #findUnused: boolean;
  readonly #asView: boolean;
  readonly #deterministic: boolean;
  #sync = true;
  /** Whether the current iteration expects gradients to be reduced (set by a forward with grad on). */
  #prepared = false;
  #readyParams = new Set<Tensor>();
  #nextLaunch = 0;
  #worldSize: number;

  constructor(module: Module<In, Out>, opts: DDPOptions = {}) {
    super();
    const op = "DistributedDataParallel";
    const g = currentGroup(op);
    this.#worldSize = g.worldSize;
    if (!(module instanceof Module)) throw new TypeError(`${op}: expected an nn.Module to wrap`);
    this.module = module;
    const capMb = opts.bucketCapMb ?? 25;
    if (!(capMb > 0)) throw new RangeError(`${op}: bucketCapMb must be positive, got ${capMb}`);
    this.#broadcastBuffers = opts.broadcastBuffers ?? true;
    this.#findUnused = opts.findUnusedParameters ?? false;
    this.#asView = opts.gradientAsBucketView ?? false;
    this.#deterministic = opts.deterministic ?? false;
    const named = module.namedParameters().filter(([, p]) => p.requiresGrad);
    for (const [n, p] of named) this.#names.set(p, n);
    checkSameModel(op, module);
    // every replica starts from rank 0's parameters and buffers
    noGrad(() => {
      const works = [...module.parameters(), ...module.buffers()].map((t) =>
        broadcast(t, 0, { async: true }),
      );
      for (const w of works) w.wait();
    });
    // buckets: reverse registration order, one dtype per bucket, up to capMb each
    const cap = capMb * 1024 * 1024;
    const open = new Map<DType, { params: Tensor[]; bytes: number }>();
    const closed: { dtype: DType; params: Tensor[] }[] = [];
    for (const [, p] of [...named].reverse()) {
      let b = open.get(p.dtype);
      if (b === undefined) {
        b = { params: [], bytes: 0 };
        open.set(p.dtype, b);
      }
      b.params.push(p);
      b.bytes += p.size * (p.dtype === "float64" ? 8 : 4);
      if (b.bytes >= cap) {
        closed.push({ dtype: p.dtype, params: b.params });
        open.delete(p.dtype);
      }
    }
    for (const [dtype, b] of open) closed.push({ dtype, params: b.params });
    closed.forEach(({ dtype, params }, bi) => {
      const offsets: number[] = [];
      let n = 0;
      params.forEach((p, i) => {
        offsets.push(n);
        n += p.size;
        this.#where.set(p, { bucket: bi, index: i });
      });
      this.#buckets.push({
        dtype,
        data: allocTyped(dtype, n),
        params,
        offsets,
        pending: params.length,
        work: null,
        gathered: null,
      });
    });
    for (const [, p] of named) {
      this.#hooks.push(p.registerPostAccumulateGradHook((t) => this.#gradReady(t)));
    }
  }

  forward(...args: In): Out {
    if (this.#prepared && this.#readyParams.size > 0) {
      const missing = [...this.#where.keys()].filter((p) => !this.#readyParams.has(p));
      throw new Error(
        "DistributedDataParallel: the previous backward did not produce gradients for " +
          `${missing.length} parameter(s) (${missing
            .slice(0, 5)
            .map((p) => `${this.#names.get(p)} ${fmtShape(p.shape)}`)
            .join(
              ", ",
            )}${missing.length > 5 ? ", ..." : ""}), so their gradients were not averaged over the ranks; ` +
          "construct it with { findUnusedParameters: true } if some parameters are unused in forward",
      );
    }
    this.#reset();
    if (this.#broadcastBuffers && this.#worldSize > 1) {
      noGrad(() => {
        const works = this.module.buffers().map((b) => broadcast(b, 0, { async: true }));
        for (const w of works) w.wait();
      });
    }
    const out = this.module.call(...args);
    if (this.#sync && state.gradEnabled && this.#where.size > 0) {
      this.#prepared = true;
      if (this.#findUnused) this.#markUnused(out);
    }
    return out;
  }

  /**
   * Run `fn` without averaging gradients: backward passes inside only accumulate into `.grad` locally
   * (gradient accumulation over micro-batches; the first synchronised backward after it averages the sum).
   */
  noSync<R>(fn: () => R): R {
    const prev = this.#sync;
    this.#sync = false;
    try {
      return fn();
    } finally {
      this.#sync = prev;
    }
  }

  /** Unregister the gradient hooks (the wrapped module is left as it was). */
  dispose(): void {
    for (const h of this.#hooks) h.remove();
    this.#hooks.length = 0;
  }

  /** The number of gradient buckets and their sizes in elements (for tests and tuning). */
  bucketSizes(): number[] {
    return this.#buckets.map((b) => b.data.length);
  }

  /**
   * How many buckets' reductions are in flight: started during the current backward and not yet waited for.
   * Read inside a gradient hook, it shows communication overlapping the rest of backward (for tests and tuning).
   */
  bucketsInFlight(): number {
    return this.#buckets.filter((b) => b.work !== null).length;
  }

  #reset(): void {
    this.#prepared = false;
    this.#readyParams.clear();
    this.#nextLaunch = 0;
    for (const b of this.#buckets) {
      b.pending = b.params.length;
      b.work = null;
    }
  }

  #gradReady(p: Tensor): void {
    if (!this.#prepared || this.#readyParams.has(p)) return;
    const at = this.#where.get(p)!;
    const b = this.#buckets[at.bucket];
    const g = p.grad!;
    if (g._data === null) {
      throw new TypeError(
        "DistributedDataParallel: gradients must be concrete tensors (backward with createGraph is not supported)",
      );
    }
    getBackend().copy(viewOf(g), {
      data: b.data,
      shape: p.shape,
      strides: contiguousStrides(p.shape),
      offset: b.offsets[at.index],
    });
    this.#markReady(p, b);
  }

  #markReady(p: Tensor, b: Bucket): void {
    this.#readyParams.add(p);
    b.pending--;
    // launch in bucket order, so every rank issues the same sequence of all-reduces
    while (this.#nextLaunch < this.#buckets.length && this.#buckets[this.#nextLaunch].pending === 0) {
      const nb = this.#buckets[this.#nextLaunch++];
      const flat = Tensor._concrete(nb.data, [nb.data.length], nb.dtype, [1]);
      if (this.#worldSize <= 1) nb.work = null;
      else if (!this.#deterministic) nb.work = allReduce(flat, "mean", { async: true });
      else {
        nb.gathered ??= allocTyped(nb.dtype, nb.data.length * this.#worldSize);
        const all = Tensor._concrete(nb.gathered, [nb.gathered.length], nb.dtype, [1]);
        nb.work = allGather(all, flat, { async: true });
      }
    }
    if (this.#nextLaunch === this.#buckets.length) this.#finish();
  }

  #finish(): void {
    for (const b of this.#buckets) {
      b.work?.wait();
      b.work = null;
      if (this.#deterministic && this.#worldSize > 1) treeMean(b.gathered!, b.data, this.#worldSize);
      b.params.forEach((p, i) => {
        const off = b.offsets[i];
        const data = this.#asView ? b.data.subarray(off, off + p.size) : b.data.slice(off, off + p.size);
        p.grad = Tensor._concrete(data, p.shape, p.dtype, contiguousStrides(p.shape));
      });
    }
    this.#prepared = false;
    this.#readyParams.clear();
  }

  /** Parameters the graph of `out` does not reach count as ready with a zero gradient. */
  #markUnused(out: unknown): void {
    const reached = new Set<Tensor>();
    const seen = new Set<TapeNode>();
    const stack: TapeNode[] = [];
    const visit = (v: unknown): void => {
      if (v instanceof Tensor) {
        if (v._node !== null) stack.push(v._node);
        else reached.add(v);
      } else if (Array.isArray(v)) v.forEach(visit);
      else if (v !== null && typeof v === "object") Object.values(v).forEach(visit);
    };
    visit(out);
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (seen.has(node)) continue;
      seen.add(node);
      for (const l of node.leaves) if (l !== null) reached.add(l);
      for (const p of node.parents) if (p !== null && !seen.has(p)) stack.push(p);
    }
    for (const [p, at] of this.#where) {
      if (reached.has(p)) continue;
      const b = this.#buckets[at.bucket];
      b.data.fill(0, b.offsets[at.index], b.offsets[at.index] + p.size);
      this.#markReady(p, b);
    }
  }
}

/**
 * `out[i]` = the mean of the `w` blocks of `gathered` (block r = rank r's values), summed as a pairwise tree in
 * rank order, level by level ((g0 + g1) + (g2 + g3) for 4 ranks; an odd last block moves up unchanged), then
 * divided by `w`. Float32 sums are computed in double and rounded once to float32, which is the correctly rounded
 * float32 sum (a double holds more than twice float32's precision, so the double rounding is harmless).
 */
export function treeMean(gathered: TypedArray, out: TypedArray, w: number): void {
  const n = out.length;
  const level = new Float64Array(w);
  const f32 = out instanceof Float32Array;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < w; r++) level[r] = gathered[r * n + i] as number;
    let m = w;
    while (m > 1) {
      const half = m >> 1;
      for (let k = 0; k < half; k++) {
        const s = level[2 * k] + level[2 * k + 1];
        level[k] = f32 ? Math.fround(s) : s;
      }
      if (m & 1) level[half] = level[m - 1];
      m = half + (m & 1);
    }
    out[i] = level[0] / w;
  }
}

/** Fail on every rank, with the same message, if the replicas do not have the same parameter shapes. */
function checkSameModel(op: string, module: Module<never[], unknown>): void {
  const params = module.parameters();
  let hash = 0;
  for (const p of params) {
    for (const d of [...p.shape, -1]) hash = (hash * 31 + d + 7) % 1_000_003;
  }
  const sig = new Float64Array([params.length, params.reduce((a, p) => a + p.size, 0), hash]);
  const hi = Tensor._concrete(sig.slice(), [3], "float64", [1]);
  const lo = Tensor._concrete(sig.slice(), [3], "float64", [1]);
  allReduce(hi, "max");
  allReduce(lo, "min");
  const h = hi.dataSync();
  const l = lo.dataSync();
  if (h[0] !== l[0] || h[1] !== l[1] || h[2] !== l[2]) {
    throw new Error(
      `${op}: the ranks wrap different models (this rank: ${sig[0]} parameters, ${sig[1]} elements; the ranks ` +
        `range over ${l[0]}..${h[0]} parameters and ${l[1]}..${h[1]} elements); every rank must build the same model`,
    );
  }
}
