/**
 * The Tensor: an n-d array with PyTorch-style methods, and the single value type every transform traces.
 *
 * One class serves three roles, told apart by fields rather than subclasses (so the hot dispatch path stays
 * monomorphic and there is no class-initialisation cycle between the facade and the core):
 * - a concrete tensor: `_data` is a typed array read through `_strides` and `_offset` (views share `_data`);
 * - an eager-autograd tensor: concrete, plus `requiresGrad` and, for results, `_node` (PyTorch's grad_fn);
 * - a tracer of a transform: `_trace` is set, `_primal` holds the value one level down, and `_tangent`
 *   (forward mode) or `_node` (reverse mode) carries the derivative information.
 * Methods are one-line delegations to the functions in `src/ops/`, which are the real implementation.
 */
import { syncToHost } from "../backend/device.ts";
import { getBackend } from "../backend/registry.ts";
import type { MaybeZero } from "../core/primitive.ts";
import { backwardEager, registerPostAccumulateGradHook, retainGradOf, type TapeNode } from "../core/tape.ts";
import type { Trace } from "../core/trace.ts";
import { type DType, isFloat, type TypedArray } from "../dtype.ts";
import { AutodiffError, DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import * as I from "../ops/indexing.ts";
import * as L from "../ops/linalg.ts";
import * as P from "../ops/manip.ts";
import * as M from "../ops/math.ts";
import * as R from "../ops/reduce.ts";
import * as S from "../ops/shape.ts";
import * as So from "../ops/sort.ts";
import { formatTensor } from "./format.ts";

type T = Tensor | number;
type Dims = number | readonly number[];

/** Options of reductions: which dims and whether to keep them as size 1. */
export interface ReduceOpts {
  dim?: Dims;
  keepdim?: boolean;
}

/**
 * @internal Tensors whose storage is gone (donated to a jitted function), with the reason. A side table rather
 * than a field, so that the eager path's tensors stay as small and as fast to create as before.
 */
export const deletedTensors = new WeakMap<Tensor, string>();

/**
 * @internal Values known at trace time of jit tracers computed from closed-over tensors alone: jit records such
 * computations (the program reads the tensors' current values at each call) and also computes them now, so that
 * an op that must read values while tracing (an index check, `item`) still can (see `state.jitStage`).
 */
export const stagedValues = new WeakMap<Tensor, Tensor>();

/**
 * @internal Weakly typed scalars: the numbers a jitted function receives as arguments, traced as float64 scalars
 * that promote like JS numbers (`x.mul(s)` keeps x's dtype, an integral s keeps an int32 x int32), with the
 * kind of number ("int" or "float") that the signature holds. `active` counts the jit traces in progress that
 * have such arguments: promotion looks them up only then (they exist only as a trace's inputs and values).
 */
export const weakScalars = { kinds: new WeakMap<Tensor, "int" | "float">(), active: 0 };

let creationLog: WeakSet<TypedArray> | null = null;

/**
 * @internal Record (a set) or stop recording (null) the storage of every concrete tensor created (not views),
 * with the buffers `allocData` hands out (prims/impl.ts `setAllocLog` sets both): jit's trace-time values.
 */
export function setCreationLog(s: WeakSet<TypedArray> | null): void {
  creationLog = s;
}

/** Options of `Tensor.backward`: keep the graph for another backward pass; record the gradients' own history. */
export interface BackwardOpts {
  retainGraph?: boolean;
  createGraph?: boolean;
}

export class Tensor {
  /** @internal Typed array storage (concrete tensors only). */
  _data: TypedArray | null = null;
  /** @internal Strides in elements, one per dim. */
  _strides: readonly number[] = [];
  /** @internal Offset of element [0, ..., 0] in `_data`. */
  _offset = 0;
  /**
   * @internal Version counter shared by all views of one storage; bumped by in-place writes. `views` is set once
   * a view of the storage has been made (jit then never reuses it for a donated argument: another tensor may
   * still read it).
   */
  _ver: { v: number; views?: boolean } | null = null;
  /** @internal The trace this tensor is a tracer of (null for concrete tensors). */
  _trace: Trace | null = null;
  /** @internal The value one level down (tracers only). */
  _primal: Tensor | null = null;
  /** @internal Forward-mode tangent (JVP tracers only). */
  _tangent: MaybeZero | null = null;
  /** @internal The tape node that produced this value (reverse mode), null for leaves. */
  _node: TapeNode | null = null;
  /** @internal Which output of `_node` this is. */
  _outIndex = 0;
  /** @internal */
  _requiresGrad = false;
  /** @internal Keep `.grad` on a non-leaf after backward (retainGrad). */
  _retainGrad = false;
  /** Accumulated gradient after `backward()` (leaves with requiresGrad, or non-leaves with retainGrad). */
  grad: Tensor | null = null;

  /** @internal Use the creation functions (`tensor`, `zeros`, ...) instead. */
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}

  /** @internal A concrete tensor over `data` (a view if strides/offset say so). */
  static _concrete(
    data: TypedArray,
    shape: readonly number[],
    dtype: DType,
    strides: readonly number[],
    offset = 0,
    ver: { v: number; views?: boolean } | null = null,
  ): Tensor {
    const t = new Tensor(shape, dtype);
    t._data = data;
    t._strides = strides;
    t._offset = offset;
    if (ver === null) {
      t._ver = { v: 0, views: false };
      if (creationLog !== null) creationLog.add(data);
    } else t._ver = ver;
    return t;
  }

  /** @internal A tracer of `trace` whose value one level down is `primal`. */
  static _tracer(trace: Trace, primal: Tensor): Tensor {
    const t = new Tensor(primal.shape, primal.dtype);
    t._trace = trace;
    t._primal = primal;
    return t;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Total number of elements. */
  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** Whether gradients are recorded for this tensor in eager mode (float dtypes only). */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(v: boolean) {
    if (v && !isFloat(this.dtype)) {
      throw new DTypeError(
        `requiresGrad: only floating-point tensors can require gradients, got dtype ${this.dtype}`,
      );
    }
    if (!v && this._node !== null) {
      throw new AutodiffError(
        "requiresGrad: cannot turn off requiresGrad on a non-leaf tensor; use detach()",
      );
    }
    this._requiresGrad = v;
  }

  /** Set requiresGrad in place and return this tensor (PyTorch's `requires_grad_()`). */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }

  /** True for tensors created by the user rather than by an op that recorded a gradient. */
  get isLeaf(): boolean {
    return this._node === null;
  }

  /**
   * Keep `.grad` for this non-leaf tensor: later backward passes accumulate its gradient into `.grad`, as for a
   * leaf (PyTorch's `retain_grad()`; with `createGraph` the gradient is differentiable). Does nothing on a leaf.
   */
  retainGrad(): this {
    retainGradOf(this);
    this._retainGrad = true;
    return this;
  }

  /**
   * Call `fn(this)` each time an eager backward pass has accumulated this leaf's gradient into `.grad`, as soon
   * as it is final within the pass (PyTorch's `register_post_accumulate_grad_hook`). Returns a handle with
   * `remove()`.
   */
  registerPostAccumulateGradHook(fn: (t: Tensor) => void): { remove(): void } {
    return registerPostAccumulateGradHook(this, fn);
  }

  /** Whether backward keeps `.grad` for this non-leaf (it called `retainGrad()`). */
  get retainsGrad(): boolean {
    return this._retainGrad && this._node !== null;
  }

  /** The backend this tensor's storage is used with. */
  get backendName(): string {
    return getBackend().name;
  }

  // ---- conversion -----------------------------------------------------------------------------------------
  /** A contiguous copy of the values as a typed array (bool as Uint8Array, float16/bfloat16 as Float32Array). */
  dataSync(): TypedArray {
    return S.contiguousData(this);
  }
  /**
   * A contiguous copy of the storage: as `dataSync`, except that float16 / bfloat16 give their 16-bit patterns
   * (a `Float16Bits` / `BFloat16Bits`) where `dataSync` gives their values as a Float32Array.
   */
  storageSync(): TypedArray {
    return S.contiguousStorage(this);
  }
  /**
   * The values as a typed array. On a device backend (webgpu) this reads the device copy back first, which is
   * why it is async; on the CPU backends it is `dataSync()`.
   */
  async data(): Promise<TypedArray> {
    await syncToHost(S.concreteOf(this)._data);
    return this.dataSync();
  }
  /** The values as nested arrays (numbers; bool as booleans). */
  toArray(): unknown {
    return S.toNested(this);
  }
  /** The single value of a one-element tensor, as a number (bool gives 1 or 0). */
  item(): number {
    return S.item(this);
  }
  /** PyTorch-like display: values, shape and dtype. */
  toString(): string {
    return formatTensor(this);
  }
  /**
   * JavaScript's conversion of an object to a primitive. A tracer (a value under jit, grad, vmap, ...) used as a
   * number (`x > 0`, `x * 2`, `Math.exp(x)`) is an error: JavaScript would compare or compute with NaN and
   * silently take one branch. Concrete tensors convert as any object does (their text).
   */
  [Symbol.toPrimitive](hint: "number" | "string" | "default"): string {
    if (hint === "number" && this._trace !== null) {
      throw new TypeError(
        `a traced tensor of shape ${fmtShape(this.shape)} and dtype ${this.dtype} was used as a JavaScript number ` +
          "(a comparison or arithmetic such as x > 0 or x * 2, which JavaScript cannot do on an object: it " +
          "would compute with NaN); use tensor ops (x.gt(0), x.mul(2)); to branch on a value under jit use " +
          "cond or switchCase, or make the argument static (staticArgnums)",
      );
    }
    return this.toString();
  }
  /** Convert to another dtype (differentiable between float dtypes). */
  to(dtype: DType): Tensor {
    return M.cast(this, dtype);
  }
  float(): Tensor {
    return M.cast(this, "float32");
  }
  double(): Tensor {
    return M.cast(this, "float64");
  }
  int(): Tensor {
    return M.cast(this, "int32");
  }
  bool(): Tensor {
    return M.cast(this, "bool");
  }
  /** A tensor sharing storage but cut from the gradient graph. */
  detach(): Tensor {
    return S.detach(this);
  }
  /** A contiguous copy (or this tensor if already contiguous). */
  contiguous(): Tensor {
    return S.contiguous(this);
  }
  clone(): Tensor {
    return S.clone(this);
  }

  // ---- autodiff --------------------------------------------------------------------------------------------
  /**
   * Accumulate d(this)/d(leaf) into `leaf.grad` for every leaf that requires grad. A non-scalar tensor needs an
   * explicit seed cotangent of its shape. The graph is freed afterwards unless `retainGraph`; `createGraph`
   * records the backward computation so that gradients can be differentiated again.
   */
  backward(opts?: BackwardOpts): void;
  backward(seed?: Tensor | null, opts?: BackwardOpts): void;
  backward(seed?: Tensor | BackwardOpts | null, opts?: BackwardOpts): void {
    // backward({ retainGraph: true }) on a scalar: the options alone (PyTorch's keyword arguments)
    if (seed !== undefined && seed !== null && !(seed instanceof Tensor)) {
      if (typeof seed !== "object" || Array.isArray(seed) || opts !== undefined) {
        throw new TypeError(
          `backward: the first argument is the seed cotangent (a Tensor of the output's shape) or the options, got ${Array.isArray(seed) ? "an array" : typeof seed}${opts !== undefined ? " and options" : ""}`,
        );
      }
      backwardEager(this, undefined, seed);
      return;
    }
    backwardEager(this, seed ?? undefined, opts);
  }

  // ---- elementwise math -------------------------------------------------------------------------------------
  add(o: T): Tensor {
    return M.add(this, o);
  }
  sub(o: T): Tensor {
    return M.sub(this, o);
  }
  mul(o: T): Tensor {
    return M.mul(this, o);
  }
  div(o: T): Tensor {
    return M.div(this, o);
  }
  pow(o: T): Tensor {
    return M.pow(this, o);
  }
  neg(): Tensor {
    return M.neg(this);
  }
  abs(): Tensor {
    return M.abs(this);
  }
  sign(): Tensor {
    return M.sign(this);
  }
  exp(): Tensor {
    return M.exp(this);
  }
  log(): Tensor {
    return M.log(this);
  }
  log1p(): Tensor {
    return M.log1p(this);
  }
  expm1(): Tensor {
    return M.expm1(this);
  }
  sqrt(): Tensor {
    return M.sqrt(this);
  }
  rsqrt(): Tensor {
    return M.rsqrt(this);
  }
  square(): Tensor {
    return M.square(this);
  }
  reciprocal(): Tensor {
    return M.reciprocal(this);
  }
  sin(): Tensor {
    return M.sin(this);
  }
  cos(): Tensor {
    return M.cos(this);
  }
  tan(): Tensor {
    return M.tan(this);
  }
  tanh(): Tensor {
    return M.tanh(this);
  }
  sigmoid(): Tensor {
    return M.sigmoid(this);
  }
  relu(): Tensor {
    return M.relu(this);
  }
  leakyRelu(slope = 0.01): Tensor {
    return M.leakyRelu(this, slope);
  }
  elu(alpha = 1): Tensor {
    return M.elu(this, alpha);
  }
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return M.gelu(this, approximate);
  }
  softplus(): Tensor {
    return M.softplus(this);
  }
  erf(): Tensor {
    return M.erf(this);
  }
  floor(): Tensor {
    return M.floor(this);
  }
  ceil(): Tensor {
    return M.ceil(this);
  }
  round(): Tensor {
    return M.round(this);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return M.clamp(this, min, max);
  }
  minimum(o: T): Tensor {
    return M.minimum(this, o);
  }
  maximum(o: T): Tensor {
    return M.maximum(this, o);
  }
  eq(o: T): Tensor {
    return M.eq(this, o);
  }
  ne(o: T): Tensor {
    return M.ne(this, o);
  }
  lt(o: T): Tensor {
    return M.lt(this, o);
  }
  le(o: T): Tensor {
    return M.le(this, o);
  }
  gt(o: T): Tensor {
    return M.gt(this, o);
  }
  ge(o: T): Tensor {
    return M.ge(this, o);
  }
  logicalAnd(o: T): Tensor {
    return M.logicalAnd(this, o);
  }
  logicalOr(o: T): Tensor {
    return M.logicalOr(this, o);
  }
  logicalXor(o: T): Tensor {
    return M.logicalXor(this, o);
  }
  logicalNot(): Tensor {
    return M.logicalNot(this);
  }
  /** Elements where `mask` is true are replaced by `value`. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return M.maskedFill(this, mask, value);
  }

  // ---- reductions ---------------------------------------------------------------------------------------------
  sum(dim?: Dims, keepdim = false): Tensor {
    return R.sum(this, dim, keepdim);
  }
  mean(dim?: Dims, keepdim = false): Tensor {
    return R.mean(this, dim, keepdim);
  }
  prod(dim?: Dims, keepdim = false): Tensor {
    return R.prod(this, dim, keepdim);
  }
  max(dim?: Dims, keepdim = false): Tensor {
    return R.max(this, dim, keepdim);
  }
  min(dim?: Dims, keepdim = false): Tensor {
    return R.min(this, dim, keepdim);
  }
  /** True where any element along dim is non-zero. */
  any(dim?: Dims, keepdim = false): Tensor {
    return R.any(this, dim, keepdim);
  }
  /** True where all elements along dim are non-zero. */
  all(dim?: Dims, keepdim = false): Tensor {
    return R.all(this, dim, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return R.argmax(this, dim, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return R.argmin(this, dim, keepdim);
  }
  var(dim?: Dims, keepdim = false, correction = 1): Tensor {
    return R.variance(this, dim, keepdim, correction);
  }
  std(dim?: Dims, keepdim = false, correction = 1): Tensor {
    return R.std(this, dim, keepdim, correction);
  }
  logsumexp(dim?: Dims, keepdim = false): Tensor {
    return R.logsumexp(this, dim, keepdim);
  }
  norm(p: number = 2, dim?: Dims, keepdim = false): Tensor {
    return R.norm(this, p, dim, keepdim);
  }
  softmax(dim = -1): Tensor {
    return R.softmax(this, dim);
  }
  logSoftmax(dim = -1): Tensor {
    return R.logSoftmax(this, dim);
  }
  cumsum(dim: number): Tensor {
    return R.cumsum(this, dim);
  }

  // ---- shape --------------------------------------------------------------------------------------------------
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return S.reshape(this, S.shapeArg(shape));
  }
  view(...shape: number[] | [readonly number[]]): Tensor {
    return S.view(this, S.shapeArg(shape));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return S.flatten(this, startDim, endDim);
  }
  squeeze(dim?: Dims): Tensor {
    return S.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return S.unsqueeze(this, dim);
  }
  permute(...dims: number[] | [readonly number[]]): Tensor {
    return S.permute(this, S.shapeArg(dims));
  }
  transpose(dim0 = -2, dim1 = -1): Tensor {
    return S.transpose(this, dim0, dim1);
  }
  /** The transpose of a matrix (all dims reversed, as PyTorch's `.T`). */
  get T(): Tensor {
    return S.permute(
      this,
      this.shape.map((_, i) => this.shape.length - 1 - i),
    );
  }
  /** The transpose of the last two dims, a batch of matrices transposed (PyTorch's `.mT`); a view. */
  get mT(): Tensor {
    if (this.ndim < 2)
      throw new ShapeError(`mT: expected a tensor with at least 2 dims, got shape ${fmtShape(this.shape)}`);
    return S.transpose(this, -2, -1);
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return S.expand(this, S.shapeArg(shape));
  }
  broadcastTo(shape: readonly number[]): Tensor {
    return S.broadcastTo(this, shape);
  }
  expandAs(o: Tensor): Tensor {
    return S.broadcastTo(this, o.shape);
  }
  /**
   * NumPy-style indexing: one entry per dim, a number (removes the dim), a slice `[start, stop, step]`
   * (`null` for defaults, negatives count from the end) or `":"` for the whole dim; `null` inserts a new axis
   * of size 1 (PyTorch's `None`) and `"..."` stands for the dims the other entries leave. `x.index(":", null)`
   * is PyTorch's `x[:, None]`.
   */
  index(...idx: (S.IndexArg | "..." | Tensor)[]): Tensor {
    return S.index(this, idx);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return S.narrow(this, dim, start, length);
  }
  split(sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
    return S.split(this, sizeOrSections, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return S.chunk(this, chunks, dim);
  }
  pad(pads: readonly number[], value = 0): Tensor {
    return S.pad(this, pads, value);
  }
  flip(dims: Dims): Tensor {
    return S.flip(this, dims);
  }
  gather(dim: number, index: Tensor): Tensor {
    return S.gather(this, dim, index);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return S.indexSelect(this, dim, index);
  }

  // ---- linear algebra -------------------------------------------------------------------------------------------
  matmul(o: Tensor): Tensor {
    return L.matmul(this, o);
  }
  dot(o: Tensor): Tensor {
    return L.dot(this, o);
  }
  outer(o: Tensor): Tensor {
    return L.outer(this, o);
  }

  // ---- in place (eager, outside recorded graphs) ----------------------------------------------------------------
  /** Copy `src` (broadcast to this shape) into this tensor's storage. Bumps the version counter. */
  copy_(src: Tensor | number): this {
    S.copyInto(this, src);
    return this;
  }
  /** this += alpha * o, in place. */
  add_(o: Tensor | number, alpha = 1): this {
    S.copyInto(this, alpha === 1 ? M.add(this.detach(), o) : M.add(this.detach(), M.mul(o, alpha)));
    return this;
  }
  /** this -= alpha * o, in place. */
  sub_(o: Tensor | number, alpha = 1): this {
    return this.add_(o, -alpha);
  }
  /** this *= o, in place. */
  mul_(o: Tensor | number): this {
    S.copyInto(this, M.mul(this.detach(), o));
    return this;
  }
  /** Fill with zeros, in place. */
  zero_(): this {
    S.copyInto(this, 0);
    return this;
  }
  /** Fill with `v`, in place. */
  fill_(v: number): this {
    S.copyInto(this, v);
    return this;
  }

  // ---- inverse trigonometric and hyperbolic functions, logarithms in base 2 and 10 (issue 13)
  asin(): Tensor {
    return M.asin(this);
  }
  acos(): Tensor {
    return M.acos(this);
  }
  atan(): Tensor {
    return M.atan(this);
  }
  /** atan2(this, x): the angle of the point (x, this). */
  atan2(x: T): Tensor {
    return M.atan2(this, x);
  }
  sinh(): Tensor {
    return M.sinh(this);
  }
  cosh(): Tensor {
    return M.cosh(this);
  }
  asinh(): Tensor {
    return M.asinh(this);
  }
  acosh(): Tensor {
    return M.acosh(this);
  }
  atanh(): Tensor {
    return M.atanh(this);
  }
  log2(): Tensor {
    return M.log2(this);
  }
  log10(): Tensor {
    return M.log10(this);
  }

  // ---- shape manipulations (issue 13)
  /** The lower triangle of the matrices in the last two dims (entries with j - i <= diagonal). */
  tril(diagonal = 0): Tensor {
    return P.tril(this, diagonal);
  }
  /** The upper triangle of the matrices in the last two dims (entries with j - i >= diagonal). */
  triu(diagonal = 0): Tensor {
    return P.triu(this, diagonal);
  }
  /** The diagonal of the matrices in dims dim1, dim2 as the last dim (PyTorch's `diagonal`; a copy). */
  diagonal(offset = 0, dim1 = 0, dim2 = 1): Tensor {
    return P.diagonal(this, offset, dim1, dim2);
  }
  /** A 1-d tensor as a diagonal matrix, or a 2-d tensor's diagonal (PyTorch's `diag`). */
  diag(diagonal = 0): Tensor {
    return P.diag(this, diagonal);
  }
  /** Tiled `reps[i]` times along dim i (PyTorch's `repeat`: at least one count per dim). */
  repeat(...reps: number[] | [readonly number[]]): Tensor {
    return P.repeat(this, S.shapeArg(reps));
  }
  /** Tiled along dims (PyTorch's `tile`: fewer counts than dims are padded with leading 1s). */
  tile(...reps: number[] | [readonly number[]]): Tensor {
    return P.tile(this, S.shapeArg(reps));
  }
  /** Rolled cyclically by `shifts` along `dims` (flat without dims). */
  roll(shifts: number | readonly number[], dims?: number | readonly number[]): Tensor {
    return P.roll(this, shifts, dims);
  }
  /** Running products along `dim`. */
  cumprod(dim: number): Tensor {
    return P.cumprod(this, dim);
  }

  // ---- sorting (issue 13)
  /** Sorted values and their positions along `dim` (stable; `x.sort()` or `x.sort({ dim, descending })`). */
  sort(opts: So.SortOpts | number = {}, descending?: boolean): So.ValuesIndices {
    return So.sort(this, opts, descending);
  }
  /** The positions that sort this tensor along `dim` (int32, stable). */
  argsort(opts: So.SortOpts | number = {}, descending?: boolean): Tensor {
    return So.argsort(this, opts, descending);
  }
  /** The k largest (or smallest) values and their positions along `dim`, sorted. */
  topk(k: number, opts: So.TopkOpts | number = {}, largest?: boolean): So.ValuesIndices {
    return So.topk(this, k, opts, largest);
  }

  // ---- scatter and advanced indexing (issue 13)
  /** A copy with src written (or added, reduce "add") at `index` along `dim` (PyTorch's `scatter`). */
  scatter(dim: number, index: Tensor, src: Tensor | number, opts: { reduce?: "add" | "none" } = {}): Tensor {
    return I.scatter(this, dim, index, src, opts);
  }
  /** A copy with values written (or added, accumulate) at the positions of `indices` (PyTorch's `index_put`). */
  indexPut(indices: readonly Tensor[], values: Tensor | number, opts: { accumulate?: boolean } = {}): Tensor {
    return I.indexPut(this, indices, values, opts);
  }
  /** The entries where mask is true, as a 1-d tensor (PyTorch's `masked_select`). */
  maskedSelect(mask: Tensor): Tensor {
    return I.maskedSelect(this, mask);
  }
}
