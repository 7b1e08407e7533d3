/**
 * Mixed precision: `autocast` (PyTorch's `torch.autocast` for CPU) and `GradScaler` (`torch.cuda.amp.GradScaler`).
 *
 * Under `autocast({ dtype: "bfloat16" }, fn)` the ops that profit from lower precision (matmul and linear,
 * conv2d, scaledDotProductAttention) cast their float32 operands to the autocast dtype and compute in it: a
 * half matrix product widens its operands to float32, accumulates in float32 (on native with AVX512_BF16,
 * bfloat16 x bfloat16 products go through vdpbf16ps) and rounds its output once to the autocast dtype. The ops
 * that need range or precision (softmax, logSoftmax, layerNorm and the losses) cast half operands to float32;
 * every other op runs in the dtype it is given. Parameters stay float32 ("master weights"): the casts are
 * ordinary differentiable ops, so gradients reaching the parameters are float32. float64 operands are never
 * cast. The setting is read when an op runs (or is traced: a jitted function keeps the casts it was traced
 * with).
 *
 * float16's narrow range makes small gradients underflow; `GradScaler` multiplies the loss by a large factor
 * before backward, divides the gradients by it before the optimizer step, skips steps whose gradients hold an
 * Infinity or NaN, and adapts the factor (halved after such a step, doubled after `growthInterval` good ones).
 */
import { type DType, isHalf } from "./dtype.ts";
import type { Optimizer } from "./optim/optimizer.ts";
import type { View } from "./backend/backend.ts";
import { type HalfKernels, halfKernelsOf } from "./backend/half.ts";
import { allocOut, getBackend, setOutArena, viewOf } from "./prims/impl.ts";
import { dotBF16Float32 } from "./prims/half.ts";
import { isContiguous } from "./shape.ts";
import type { Tensor } from "./tensor/tensor.ts";
import { bindCall, type CallRule, noGrad, state } from "./core/trace.ts";

/** The lower-precision dtype autocast casts to, or null when autocast is off (the fast path: one load). */
const amp: { dtype: "bfloat16" | "float16" | null } = { dtype: null };

/** A cached cast of a leaf: the version of the leaf's storage it was made from, and the cast. */
interface CachedCast {
  ver: number;
  cast: Tensor;
}
/**
 * The casts of float32 leaves that require gradients (parameters), made in the outermost autocast region in
 * progress (null outside one): PyTorch's autocast cache. A weight used several times in a region (an
 * unrolled recurrence, tied embeddings) is cast once; an in-place write to it (an optimizer step) bumps its
 * version, and the next use casts again. The cache is dropped when the outermost region exits.
 */
let castCache: { bfloat16: WeakMap<Tensor, CachedCast>; float16: WeakMap<Tensor, CachedCast> } | null = null;

export interface AutocastOpts {
  /** The lower-precision dtype (default bfloat16, PyTorch's CPU default). */
  dtype?: "bfloat16" | "float16";
  /** Whether autocast is on inside `fn` (default true); `enabled: false` turns an enclosing autocast off. */
  enabled?: boolean;
}

/**
 * Run `fn` with autocast set as `opts` says, and return its result; the previous setting is restored after
 * (also when `fn` throws). Nesting works as in PyTorch: the innermost call decides.
 *
 * @example
 * ```ts
 * const loss = autocast({ dtype: "bfloat16" }, () => nn.crossEntropy(model.forward(x), y));
 * loss.backward(); // parameters' gradients are float32
 * ```
 */
export function autocast<T>(opts: AutocastOpts, fn: () => T): T {
  const dtype = opts.dtype ?? "bfloat16";
  if (dtype !== "bfloat16" && dtype !== "float16") {
    throw new TypeError(`autocast: dtype must be "bfloat16" or "float16", got ${String(dtype)}`);
  }
  const prev = amp.dtype;
  const outer = castCache === null;
  amp.dtype = opts.enabled === false ? null : dtype;
  if (outer) castCache = { bfloat16: new WeakMap(), float16: new WeakMap() };
  try {
    return fn();
  } finally {
    amp.dtype = prev;
    if (outer) castCache = null;
  }
}

/** The autocast dtype in effect, or null (PyTorch's `torch.is_autocast_enabled` plus its dtype). */
export function autocastDtype(): DType | null {
  return amp.dtype;
}

/** @internal An operand of a lower-precision op: float32 becomes the autocast dtype while autocast is on. */
export function castLow(x: Tensor): Tensor {
  const d = amp.dtype;
  if (d === null || x.dtype !== "float32") return x;
  // cache the casts of concrete leaves that require gradients (recorded on the eager tape: grad mode on)
  const cache = castCache?.[d];
  // (not while jit traces: the cast is recorded there, read from the parameter at each call)
  if (
    cache === undefined ||
    !x.requiresGrad ||
    x._node !== null ||
    x._ver === null ||
    !state.gradEnabled ||
    state.jitStage !== null
  ) {
    return x.to(d);
  }
  const hit = cache.get(x);
  if (hit !== undefined && hit.ver === x._ver.v && hit.cast._node?.freed !== true) {
    return hit.cast;
  }
  // from the allocator itself, never from a recycling arena (a module call's ActivationScope): the cache
  // outlives the call, so the scope must not take the cast's storage back
  const arena = setOutArena(null);
  let cast: Tensor;
  try {
    cast = x.to(d);
  } finally {
    setOutArena(arena);
  }
  cache.set(x, { ver: x._ver.v, cast });
  return cast;
}

/**
 * @internal The product `x weight^T` of a linear layer under autocast, for a float32 `weight` [out, in] (a
 * master weight) and x [..., in] (float32 or the autocast dtype): the forward is the composition (both cast
 * to the autocast dtype, the low-precision GEMM, its output in the autocast dtype), and its reverse mode gives
 * the weight its float32 gradient straight from one float32-accumulated GEMM in the weight's own layout,
 * dp^T x, of the widened cotangent and input (products of 16-bit values are exact in float32), instead of a
 * 16-bit GEMM output of the transposed shape that is rounded, transposed and widened again. (PyTorch rounds
 * that gradient to the 16-bit dtype before widening it; this one is not rounded.) The input's cotangent is
 * the low-precision product dp weight, as in the composition. Forward mode and vmap trace the composition;
 * the backward is made of differentiable ops.
 */
export function lowMatmulT(x: Tensor, weight: Tensor): Tensor {
  const d = amp.dtype;
  if (d === null) throw new Error("lowMatmulT: autocast is off");
  const low = (t: Tensor) => (t.dtype === "float32" ? t.to(d) : t);
  // an input that needs no gradient (the data) is a constant of the call, so its cotangent is never computed
  const needX = x._trace !== null || x.requiresGrad;
  const split = (args: readonly Tensor[]): [Tensor, Tensor] => (needX ? [args[0], args[1]] : [x, args[0]]);
  const rule: CallRule = {
    name: "autocastLinear",
    fn: (args) => {
      const [xa, w] = split(args);
      return [low(xa).matmul(low(w).transpose(0, 1))];
    },
    vjp: (args) => {
      const [xa, w] = split(args);
      const xl = low(xa);
      const wl = low(w);
      return {
        outs: [xl.matmul(wl.transpose(0, 1))],
        backward: ([dp]) => {
          const n = w.shape[0];
          const k = w.shape[1];
          const p2 = dp.reshape([-1, n]);
          const x2 = xl.reshape([-1, k]);
          // values that need no further derivative: the bfloat16 GEMM's float32 accumulators directly
          const plain =
            dp._trace === null &&
            xl._trace === null &&
            !(state.gradEnabled && (dp.requiresGrad || xl.requiresGrad));
          const dw =
            (plain ? dotBF16Float32(p2.transpose(0, 1), x2) : null) ??
            p2.to("float32").transpose(0, 1).matmul(x2.to("float32"));
          return needX ? [dp.matmul(wl), dw] : [dw];
        },
      };
    },
  };
  return bindCall(rule, needX ? [x, weight] : [weight])[0];
}

/** bfloat16 ones [n] (the left operand of the bias gradient's GEMM), one per length. */
const onesBF16 = new Map<number, Tensor>();
function ones16(n: number): Tensor {
  let t = onesBF16.get(n);
  if (t === undefined) {
    // from the allocator itself, never from a recycling arena: the cache outlives the pass
    const arena = setOutArena(null);
    try {
      t = allocOut({ shape: [1, n], dtype: "bfloat16" });
    } finally {
      setOutArena(arena);
    }
    (t._data as Uint16Array).fill(0x3f80);
    onesBF16.set(n, t);
  }
  return t;
}

/** The view of 2-d `t` transposed (no copy). */
function viewT(t: Tensor): View {
  const v = viewOf(t);
  return {
    data: v.data,
    shape: [v.shape[1], v.shape[0]],
    strides: [v.strides[1], v.strides[0]],
    offset: v.offset,
  };
}

/** `t` as a 2-d [-1, k] tensor, contiguous (a copy only when it is not). */
function rows2(t: Tensor, k: number): Tensor {
  const c = isContiguous(t.shape, t._strides) ? t : t.contiguous();
  return c.ndim === 2 ? c : c.reshape([-1, k]);
}

/**
 * @internal autocast's linear layer act(x weight^T + bias) in bfloat16 as one fused call, for a float32 master
 * `weight` [out, in], an optional float32 `bias` [out], x [..., in] (float32 or bfloat16) and activation none or
 * relu, when the backend has the bfloat16 GEMM with an epilogue (native with AVX512_BF16) and every operand is
 * concrete outside any transform; null otherwise (the caller composes casts, matmul and the bias add).
 *
 * Forward: one GEMM that rounds x and the weight to bfloat16 while packing them (no bfloat16 copies), accumulates
 * in float32 and adds the bias (rounded to bfloat16) and relu before rounding the output to bfloat16 once
 * (PyTorch's addmm rounds once too). Backward, from the bfloat16 cotangent dy: relu's derivative is applied by
 * the GEMMs as they pack dy (a mask from the output), the weight's and bias's float32 gradients come straight
 * from float32 accumulators (dy^T x and a ones-row GEMM: not rounded, where PyTorch rounds them to bfloat16
 * before widening), and x's gradient dy weight is rounded to bfloat16 for a bfloat16 x and left in float32 for
 * a float32 one. Under create_graph the backward runs differentiable ops.
 */
export function lowLinear(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  activation: string | undefined,
): Tensor | null {
  if (amp.dtype !== "bfloat16" || (activation !== undefined && activation !== "relu")) return null;
  const gemm = halfKernelsOf(getBackend().name);
  if (gemm?.gemmBF16 === undefined || gemm.gemmBF16Ready?.() !== true) return null;
  if (weight.dtype !== "float32" || (x.dtype !== "float32" && x.dtype !== "bfloat16")) return null;
  if (bias !== null && bias.dtype !== "float32") return null;
  for (const t of [x, weight, bias]) if (t !== null && (t._trace !== null || t._data === null)) return null;
  const kern = gemm.gemmBF16;
  const relu = activation === "relu";
  const n = weight.shape[0];
  const k = weight.shape[1];
  const outShape = [...x.shape.slice(0, -1), n];
  const needX = x.requiresGrad;
  const forward = (args: readonly Tensor[]): Tensor => {
    const xa = needX ? args[0] : x;
    const w = args[needX ? 1 : 0];
    const b = bias === null ? null : args[needX ? 2 : 1];
    const x2 = rows2(xa, k);
    const y = allocOut({ shape: [x2.shape[0], n], dtype: "bfloat16" });
    const ok = kern(viewOf(x2), viewT(w), y._data as Uint16Array, {
      bias: b === null ? null : viewOf(b),
      relu,
    });
    if (!ok) throw new Error("lowLinear: the bfloat16 GEMM declined a call it had accepted");
    return y;
  };
  const rule: CallRule = {
    name: "autocastLinear",
    fn: (args) => [forward(args).reshape(outShape)],
    vjp: (args) => {
      const xa = needX ? args[0] : x;
      const w = args[needX ? 1 : 0];
      const y = forward(args);
      return {
        outs: [y.reshape(outShape)],
        backward: ([dy]) => {
          const x2 = rows2(xa, k);
          const dy2 = rows2(dy, n);
          const plain = dy._trace === null && !(state.gradEnabled && dy.requiresGrad);
          const grads = plain ? fusedGrads(kern, dy2, y, x2, w, relu, needX, bias !== null) : null;
          if (grads !== null) {
            if (grads[0] !== null) grads[0] = grads[0].reshape(xa.shape);
            return grads.filter((g): g is Tensor => g !== null);
          }
          // differentiable ops (create_graph)
          const dz = relu ? dy2.mul(y.gt(0).to(dy2.dtype)) : dy2;
          const dz32 = dz.to("float32");
          const out: Tensor[] = [];
          if (needX) out.push(dz.matmul(w.to("bfloat16")).to(xa.dtype).reshape(xa.shape));
          out.push(dz32.transpose(0, 1).matmul(x2.to("bfloat16").to("float32")));
          if (bias !== null) out.push(dz32.sum(0));
          return out;
        },
      };
    },
  };
  const args = [...(needX ? [x] : []), weight, ...(bias === null ? [] : [bias])];
  return bindCall(rule, args)[0];
}

/**
 * The gradients [dx or null, dweight, dbias?] of lowLinear from concrete 2-d dy, y (the forward's bfloat16
 * output), x, weight through the bfloat16 GEMM; null if it declines.
 */
function fusedGrads(
  kern: NonNullable<HalfKernels["gemmBF16"]>,
  dy: Tensor,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  relu: boolean,
  needX: boolean,
  hasBias: boolean,
): (Tensor | null)[] | null {
  if (dy.dtype !== "bfloat16") dy = dy.to("bfloat16");
  const [m, n] = dy.shape;
  const k = w.shape[1];
  const dyT = viewT(dy);
  const yT = relu ? viewT(y) : null;
  const dw = allocOut({ shape: [n, k], dtype: "float32" });
  if (!kern(dyT, viewOf(x), dw._data as Float32Array, { maskA: yT })) return null;
  const out: (Tensor | null)[] = [null, dw];
  if (hasBias) {
    const db = allocOut({ shape: [1, n], dtype: "float32" });
    if (!kern(viewOf(ones16(m)), viewOf(dy), db._data as Float32Array, { maskB: relu ? viewOf(y) : null }))
      return null;
    out.push(db.reshape([n]));
  }
  if (needX) {
    const dx = allocOut({ shape: [m, k], dtype: x.dtype });
    if (
      !kern(viewOf(dy), viewOf(w), dx._data as Float32Array | Uint16Array, { maskA: relu ? viewOf(y) : null })
    )
      return null;
    out[0] = dx;
  }
  return out;
}

/** @internal `castLow` for an optional operand (a bias). */
export function castLowOpt(x: Tensor | null | undefined): Tensor | null | undefined {
  return x === null || x === undefined ? x : castLow(x);
}

/** @internal An operand of a float32 op (softmax, norms, losses): a half becomes float32 while autocast is on. */
export function castFloat32(x: Tensor): Tensor {
  return amp.dtype === null || !isHalf(x.dtype) ? x : x.to("float32");
}

export interface GradScalerOpts {
  /** The first scale factor (default 2^16). */
  initScale?: number;
  /** Factor the scale is multiplied by after `growthInterval` steps without Infinity/NaN (default 2). */
  growthFactor?: number;
  /** Factor the scale is multiplied by after a step with Infinity/NaN gradients (default 0.5). */
  backoffFactor?: number;
  /** Good steps before the scale grows (default 2000). */
  growthInterval?: number;
  /** When false every method passes through: scale returns the loss, step just steps (default true). */
  enabled?: boolean;
}

/** `GradScaler`'s state, as `stateDict` returns it (PyTorch's keys, camel-cased). */
export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  growthTracker: number;
}

/**
 * Dynamic loss scaling for float16 training (PyTorch's GradScaler):
 *
 * ```ts
 * const scaler = new GradScaler();
 * for (const [x, y] of batches) {
 *   opt.zeroGrad();
 *   const loss = autocast({ dtype: "float16" }, () => nn.crossEntropy(model.forward(x), y));
 *   scaler.scale(loss).backward();
 *   scaler.step(opt);   // unscales the gradients; skipped if any is Infinity or NaN
 *   scaler.update();    // adapts the scale
 * }
 * ```
 */
export class GradScaler {
  private scaleValue: number;
  private readonly growthFactor: number;
  private readonly backoffFactor: number;
  private readonly growthInterval: number;
  private growthTracker = 0;
  readonly enabled: boolean;
  /** Optimizers unscaled in this iteration, with whether their gradients held Infinity or NaN. */
  private readonly unscaled = new Map<Optimizer, boolean>();

  constructor(opts: GradScalerOpts = {}) {
    this.scaleValue = opts.initScale ?? 2 ** 16;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    this.enabled = opts.enabled ?? true;
    const pos = (name: string, v: number) => {
      if (!(Number.isFinite(v) && v > 0))
        throw new RangeError(`GradScaler: ${name} must be a positive number, got ${v}`);
    };
    pos("initScale", this.scaleValue);
    pos("growthFactor", this.growthFactor);
    pos("backoffFactor", this.backoffFactor);
    if (this.growthFactor <= 1)
      throw new RangeError(`GradScaler: growthFactor must be > 1, got ${this.growthFactor}`);
    if (this.backoffFactor >= 1)
      throw new RangeError(`GradScaler: backoffFactor must be < 1, got ${this.backoffFactor}`);
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) {
      throw new RangeError(
        `GradScaler: growthInterval must be a positive integer, got ${this.growthInterval}`,
      );
    }
  }

  /** The current scale factor. */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /** The loss (or any output) multiplied by the scale factor, in its own dtype. */
  scale(loss: Tensor): Tensor {
    return this.enabled ? loss.mul(this.scaleValue) : loss;
  }

  /**
   * Divide the gradients of `optimizer`'s parameters by the scale (in float32 or wider, then in the gradient's
   * dtype) and record whether any is Infinity or NaN. Call it before clipping gradients; `step` calls it when
   * it has not been called for this optimizer since the last `update`.
   */
  unscale_(optimizer: Optimizer): void {
    if (!this.enabled) return;
    if (this.unscaled.has(optimizer)) {
      throw new Error("GradScaler.unscale_: already called for this optimizer since the last update()");
    }
    const inv = 1 / this.scaleValue;
    let found = false;
    noGrad(() => {
      for (const g of optimizer.paramGroups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (grad === null) continue;
          const wide = isHalf(grad.dtype) ? grad.to("float32") : grad;
          const u = wide.mul(inv);
          // x * 0 is NaN exactly where x is Infinity or NaN
          if (Number.isNaN(u.mul(0).sum().item())) found = true;
          p.grad = u.dtype === grad.dtype ? u : u.to(grad.dtype);
        }
      }
    });
    this.unscaled.set(optimizer, found);
  }

  /**
   * Unscale (if not done yet) and take `optimizer.step()` unless a gradient holds Infinity or NaN; returns
   * whether the step was taken.
   */
  step(optimizer: Optimizer): boolean {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (!this.unscaled.has(optimizer)) this.unscale_(optimizer);
    if (this.unscaled.get(optimizer)) return false;
    optimizer.step();
    return true;
  }

  /**
   * Adapt the scale after an iteration's steps: multiplied by `backoffFactor` if any unscaled optimizer found
   * Infinity/NaN, else by `growthFactor` every `growthInterval` iterations; or set to `newScale` if given.
   */
  update(newScale?: number): void {
    if (!this.enabled) return;
    if (newScale !== undefined) {
      if (!(Number.isFinite(newScale) && newScale > 0))
        throw new RangeError(`GradScaler.update: newScale must be a positive number, got ${newScale}`);
      this.scaleValue = newScale;
    } else if ([...this.unscaled.values()].some((f) => f)) {
      this.scaleValue *= this.backoffFactor;
      this.growthTracker = 0;
    } else if (this.unscaled.size > 0) {
      this.growthTracker++;
      if (this.growthTracker === this.growthInterval) {
        this.scaleValue *= this.growthFactor;
        this.growthTracker = 0;
      }
    }
    this.unscaled.clear();
  }

  /** The scale and growth state (to checkpoint). */
  stateDict(): GradScalerState {
    return {
      scale: this.scaleValue,
      growthFactor: this.growthFactor,
      backoffFactor: this.backoffFactor,
      growthInterval: this.growthInterval,
      growthTracker: this.growthTracker,
    };
  }

  /** Restore the scale and growth tracker saved by `stateDict`. */
  loadStateDict(s: Pick<GradScalerState, "scale" | "growthTracker">): void {
    if (!(Number.isFinite(s.scale) && s.scale > 0))
      throw new RangeError(`GradScaler.loadStateDict: scale must be a positive number, got ${s.scale}`);
    this.scaleValue = s.scale;
    this.growthTracker = s.growthTracker;
  }
}
