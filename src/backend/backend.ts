/**
 * The backend interface: a small, typed set of kernels that run on strided views of typed arrays.
 *
 * Backends are dumb executors. They know nothing about broadcasting (a broadcast axis arrives as stride 0),
 * dtype promotion, autodiff or user-facing shapes. Every kernel reads strided `View`s (any strides, including
 * 0 and negative, any offset) and writes a freshly allocated *contiguous* output `out` (row-major, offset 0)
 * whose dtype the caller chose. The only kernel that writes into a strided destination is `copy`.
 *
 * Storage is a plain typed array (bool = Uint8Array of 0/1), so CPU memory is managed by the garbage collector.
 * Callers never dispose anything. A backend whose kernels run in memory the collector cannot see stages data
 * through it per call instead of keeping tensors there (the wasm backend copies each call's operands into a
 * scratch arena: finalizers never run inside a synchronous training loop, so memory they free would pile up).
 *
 * The `js` backend is the specification: every other backend must agree with it (tests compare them).
 */
import type { DType, TypedArray } from "../dtype.ts";

/** A strided view of a buffer. Element i0..in-1 lives at data[offset + sum(i_k * strides[k])]. */
export interface View {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * Elementwise unary kernels, as a list (backends and tests iterate over it; a backend declares the subset it
 * implements, see `BackendImpl`). Input and output dtypes are equal unless noted.
 */
export const UNARY_OPS = [
  "neg",
  "abs",
  "sign", // -1, 0, 1 (NaN stays NaN)
  "exp",
  "log",
  "log1p",
  "expm1",
  "sqrt",
  "sin",
  "cos",
  "tan",
  "tanh",
  "sigmoid", // 1 / (1 + exp(-x)), computed without overflow for large |x|
  "erf", // error function, accurate to ~1e-15 relative in float64
  "relu", // max(x, 0); relu(NaN) = NaN
  "floor",
  "ceil",
  "round", // round half to even, as PyTorch and NumPy
  "not", // logical not on bool (1 -> 0, 0 -> 1)
  // inverse trigonometric and hyperbolic functions, base-2 and base-10 logarithms (float dtypes; C's domain
  // cases: NaN outside the domain, +-Infinity at the poles of atanh/log2/log10)
  "asin",
  "acos",
  "atan",
  "sinh",
  "cosh",
  "asinh",
  "acosh",
  "atanh",
  "log2",
  "log10",
  // the exact GELU x Phi(x) (Phi the standard normal CDF; NaN at -Infinity, as 0.5 x (1 + erf(x / sqrt 2))) and
  // its derivative Phi(x) + x phi(x) (phi the normal density; 0 at -Infinity, 1 at +Infinity); float dtypes.
  // Phi(x) keeps its relative precision in the lower tail (computed from erfc, not 1 + erf).
  "gelu",
  "geluDeriv",
] as const;

export type UnaryOp = (typeof UNARY_OPS)[number];

/** Activations with fused kernels (`biasAct`, `actGrad`); positions are the native codes (enum ActOp). */
export const ACTIVATIONS = ["relu", "tanh", "sigmoid"] as const;

export type Activation = (typeof ACTIVATIONS)[number];

/**
 * Elementwise binary kernels on two views of the same shape (broadcast already expressed as stride 0), as a
 * list like UNARY_OPS.
 * Arithmetic: inputs and output share one dtype. int32 arithmetic wraps like C int32 (add/sub/mul), `div` on
 * int32 truncates toward zero (callers promote true division to float), `pow` on int32 is exact integer power.
 * `maximum`/`minimum` propagate NaN. Comparisons (`eq` ... `ge`) write bool (Uint8Array 0/1) and read any dtype.
 * Logical ops (`and`, `or`, `xor`) read bool and write bool. `atan2(a, b)` is the angle of the point (x = b,
 * y = a) in [-pi, pi], float dtypes only, with C's signed-zero, infinity and NaN cases.
 */
export const BINARY_OPS = [
  "add",
  "sub",
  "mul",
  "div",
  "pow",
  "maximum",
  "minimum",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "and",
  "or",
  "xor",
  "atan2",
] as const;

export type BinaryOp = (typeof BINARY_OPS)[number];

/**
 * One instruction of a fused elementwise program (`Backend.fused`). Every instruction defines a new register
 * (its position in the list); operands `a`, `b` name earlier registers.
 */
export type FusedInstr =
  | { readonly kind: "input"; readonly index: number }
  | { readonly kind: "const"; readonly value: number }
  | { readonly kind: "unary"; readonly op: UnaryOp; readonly a: number }
  | { readonly kind: "binary"; readonly op: BinaryOp; readonly a: number; readonly b: number };

/**
 * A fused elementwise program: registers of one float dtype, some of them the results (`outputs`). Built once (by
 * `fusedProgram` in fused.ts) and then run any number of times, so it carries a flat form for kernels written
 * in other languages and a key to cache compiled code by.
 */
export interface FusedProgram {
  readonly dtype: "float32" | "float64";
  readonly instrs: readonly FusedInstr[];
  /**
   * The flat form: 4 int32 per instruction, [kind, op, a, b]. kind: 0 input (a = input index), 1 const
   * (a = index into `consts`), 2 unary (op = position in UNARY_OPS, a = register), 3 binary (op = position in
   * BINARY_OPS, a and b = registers). Unused fields are 0.
   */
  readonly code: Int32Array;
  /** The values of the const instructions, in order (already representable in `dtype`). */
  readonly consts: Float64Array;
  /** Number of input instructions' distinct indices: inputs are 0 .. numInputs - 1. */
  readonly numInputs: number;
  /**
   * The registers written out, in the order of the kernel's `outs` (by default the last register alone): a
   * group of jit's fusion may hand several values on, e.g. an optimizer's new moments and parameters.
   */
  readonly outputs: Int32Array;
  /**
   * Identifies the program's structure (dtype, instructions, outputs and reduction, not the const values):
   * equal keys, equal `code`. Backends cache compiled kernels by it and pass `consts` at run time.
   */
  readonly key: string;
  /**
   * A reduction terminal (jit's reduction fusion), or undefined for a purely elementwise program. With one,
   * the register `reduce.reg` is reduced over `reduce.axes` of the program's shape (the inputs' shape) into one
   * more output after those of `outputs` (which may then be empty): contiguous, of the shape without the axes.
   * Only backends declaring `fusedReduce` receive such programs.
   */
  readonly reduce?: FusedReduce;
}

/** The reduction a fused program ends in (`FusedProgram.reduce`). */
export interface FusedReduce {
  /** sum (accumulated in float64 for float32, as `reduce` does), max or min (NaN propagates). */
  readonly op: "sum" | "max" | "min";
  /** The register reduced: an op's result. */
  readonly reg: number;
  /** The reduced axes of the program's shape: sorted, unique, non-negative (may be empty: a copy). */
  readonly axes: readonly number[];
}

/** Reductions over a set of axes. sum/prod/max/min keep the input dtype (bool is never reduced). */
export const REDUCE_OPS = ["sum", "prod", "max", "min"] as const;

export type ReduceOp = (typeof REDUCE_OPS)[number];

/** What conv2d applies to its output: a bias per output channel ([O], any stride) and/or an activation. */
export interface ConvEpilogue {
  readonly bias: View | null;
  readonly act: Activation | null;
}

export interface Conv2dParams {
  /** [sh, sw] */
  readonly stride: readonly [number, number];
  /** [ph, pw], zero padding on both sides */
  readonly padding: readonly [number, number];
  /** [dh, dw] */
  readonly dilation: readonly [number, number];
  readonly groups: number;
}

export interface Pool2dParams {
  /** [kh, kw] */
  readonly kernel: readonly [number, number];
  /** [sh, sw] */
  readonly stride: readonly [number, number];
  /** [ph, pw]: max-pool pads with -Infinity, avg-pool with 0 (counted in the divisor, PyTorch's default) */
  readonly padding: readonly [number, number];
}

/** Hyper-parameters of one fused Adam/AdamW update (see `Backend.adamUpdate`). */
export interface AdamUpdateParams {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** AdamW: p <- p (1 - lr wd) first, instead of adding wd p to the gradient. */
  readonly decoupled: boolean;
  readonly maximize: boolean;
  /** 1 - beta1^t and sqrt(1 - beta2^t) for the step t being taken. */
  readonly bc1: number;
  readonly bc2Sqrt: number;
}

export interface Backend {
  readonly name: string;

  /**
   * A zero-filled contiguous buffer of `size` elements; with `uninitialized`, its contents are unspecified
   * (the caller overwrites every element: every kernel output except scatterAdd's), which lets a backend
   * skip zeroing large buffers.
   */
  alloc(dtype: DType, size: number, uninitialized?: boolean): TypedArray;

  /** out[i] = op(x[i]). x and out have the same shape; out is contiguous. */
  unary(op: UnaryOp, x: View, out: TypedArray): void;

  /** out[i] = op(a[i], b[i]). a, b, out have the same shape; out is contiguous. */
  binary(op: BinaryOp, a: View, b: View, out: TypedArray): void;

  /**
   * Fused bias and activation: out[i] = act(x[i] + b[i]), the sum rounded to the dtype first, so the result is
   * the unfused add followed by the unary kernel. b is null (act(x) alone) or a view of x's shape (a bias
   * broadcast by zero strides). Float dtypes, shared by x, b and out.
   */
  biasAct(act: Activation, x: View, b: View | null, out: TypedArray): void;

  /**
   * Activation gradient through the activation's output y: out[i] = ct[i] * act'(x[i]) with act' written in y:
   * relu: y > 0 ? ct : 0 (0 where y is NaN), tanh: ct * (1 - y * y), sigmoid: ct * (y * (1 - y)), each
   * product rounded to the dtype as the unfused rules round it. Float dtypes; y, ct, out share dtype and shape.
   */
  actGrad(act: Activation, y: View, ct: View, out: TypedArray): void;

  /** out[i] = cond[i] ? a[i] : b[i]. cond is bool; a, b, out share a dtype and one shape. */
  where(cond: View, a: View, b: View, out: TypedArray): void;

  /**
   * Dtype conversion into out (whose dtype is the target): float -> int32 truncates toward zero (NaN -> 0),
   * anything -> bool is (x != 0), bool -> number is 0/1, float64 -> float32 rounds.
   */
  cast(x: View, out: TypedArray): void;

  /** Strided copy from src into the strided destination dst (same shape, same dtype). */
  copy(src: View, dst: View): void;

  /**
   * Reduce `x` over `axes` (sorted, unique, may be empty = copy). out is contiguous with x's shape minus the
   * reduced axes. sum of nothing is 0, prod of nothing is 1; max/min of an empty axis never reaches a backend.
   * max/min propagate NaN.
   */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: TypedArray): void;

  /**
   * Index (int32) of the first maximum / minimum along `axis`; out has x's shape without `axis`.
   * A NaN counts as the maximum (and the minimum), as in PyTorch.
   */
  argReduce(op: "argmax" | "argmin", x: View, axis: number, out: TypedArray): void;

  /** Inclusive cumulative sum along `axis` (reverse = from the end). out has x's shape. */
  cumsum(x: View, axis: number, reverse: boolean, out: TypedArray): void;

  /**
   * Batched matrix product. a: [...batch, M, K], b: [...batch, K, N] (the same batch shape, already broadcast,
   * any strides, so transposed operands arrive as strided views), out: [...batch, M, N] contiguous.
   * Float dtypes; int32 is allowed and exact.
   */
  dot(a: View, b: View, out: TypedArray): void;

  /**
   * Cross-correlation (PyTorch's conv2d). x: [N, C, H, W], w: [O, C/groups, KH, KW], out: [N, O, OH, OW] with
   * OH = floor((H + 2ph - dh(KH-1) - 1) / sh) + 1 (likewise OW). With an epilogue, out = act(y + bias[o]) where
   * y is the convolution rounded to the dtype, and the sum is rounded before the activation: exactly the
   * unfused conv, add and activation kernels (float dtypes).
   */
  conv2d(
    x: View,
    w: View,
    out: TypedArray,
    outShape: readonly number[],
    p: Conv2dParams,
    epilogue?: ConvEpilogue,
  ): void;

  /** Gradient of conv2d with respect to x: dy [N, O, OH, OW], w [O, C/g, KH, KW] -> out [N, C, H, W]. */
  conv2dBackInput(dy: View, w: View, out: TypedArray, outShape: readonly number[], p: Conv2dParams): void;

  /** Gradient of conv2d with respect to w: x [N, C, H, W], dy [N, O, OH, OW] -> out [O, C/g, KH, KW]. */
  conv2dBackWeight(x: View, dy: View, out: TypedArray, outShape: readonly number[], p: Conv2dParams): void;

  /** Max pooling. x [N, C, H, W] -> out [N, C, OH, OW], OH = floor((H + 2ph - kh) / sh) + 1. */
  maxPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void;

  /**
   * For each output of maxPool2d, the flat index (int32) h * W + w into its input plane of the first maximum
   * in its window (padding never wins; NaN wins). out [N, C, OH, OW].
   */
  maxPool2dArgmax(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void;

  /**
   * Transpose of maxPool2d at x (its VJP), x [N, C, H, W], dy [N, C, OH, OW] (one float dtype; int32 is
   * allowed and wraps) -> out [N, C, H, W] (outShape = x's shape). Each dy[n, c, oh, ow] is added to the position
   * of its window's first maximum, by exactly maxPool2dArgmax's rule (padding never wins, NaN wins, ties go to
   * the first in row-major window order); positions that are no window's maximum are 0. Where windows overlap
   * (stride < kernel) the terms meeting at one position are summed in float64 in output order, starting
   * from +0, and rounded once. dy's values are never multiplied, so a NaN or Infinity in dy reaches only its
   * own argmax position.
   */
  maxPool2dBackward(x: View, dy: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void;

  /** Average pooling, padding counted in the divisor (kh * kw). x [N, C, H, W] -> out [N, C, OH, OW]. */
  avgPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void;

  /** Transpose of avgPool2d: dy [N, C, OH, OW] -> out [N, C, H, W] (out's shape given). */
  avgPool2dBackward(dy: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void;

  /**
   * Gather along `axis`: out[..., i, ...] = x[..., idx[..., i, ...], ...] where idx (int32) has the shape of out
   * and matches x on every axis but `axis`. Indices are checked by the caller (0 <= idx < x.shape[axis]).
   */
  gather(x: View, axis: number, idx: View, out: TypedArray): void;

  /**
   * Transpose of gather: out (shape given, zero-initialised by alloc) gets out[..., idx[..., i, ...], ...] += src[..., i, ...].
   * idx and src share a shape, which matches outShape on every axis but `axis`.
   */
  scatterAdd(src: View, axis: number, idx: View, out: TypedArray, outShape: readonly number[]): void;

  /**
   * Fused softmax (`log` false) or log-softmax (`log` true) of x (float32 or float64) along `axis`; out has x's
   * shape and dtype. A 0-d x is treated as shape [1] (axis 0). Each row (the elements along `axis` at fixed
   * other indices) is computed stably in one kernel: m = max(row), s = sum(exp(x - m)), then
   *   log-softmax: (x - m) - log(s)        softmax: exp(x - m) / s
   * Special rows: a row containing NaN, a row whose max is +Infinity and a row of only -Infinity are NaN
   * throughout (as PyTorch); in any other row a -Infinity entry gives -Infinity (log) or 0 (softmax). An empty
   * axis (or any empty x) writes nothing.
   * Precision: the js reference computes in float64 and rounds once into a float32 out. Other backends may
   * evaluate float32 rows with float32 exp (a few ulp) and a float64 sum: they agree with js to ~1e-6
   * relative (softmax) / absolute (log-softmax), the float32 tolerance of the backend tests, and may flush
   * float32 probabilities below e^-87 (1.6e-38) to 0 (native does: subnormal results cost a microcode assist
   * on Intel cores). float64 rows are computed in float64 everywhere.
   */
  softmax(x: View, axis: number, log: boolean, out: TypedArray): void;

  /**
   * The vector-Jacobian product of `softmax`, fused: y is the forward output (log-probabilities when `log`,
   * probabilities otherwise), ct the cotangent (any strides, e.g. a stride-0 broadcast); y, ct and out share a
   * shape and a float dtype. Per row along `axis`:
   *   log:  out = ct - exp(y) sum(ct)          softmax:  out = y (ct - sum(ct y))
   * No special rows: NaN and infinities propagate through the arithmetic. Precision as for `softmax` (js in
   * float64, others with float32 exp and float64 sums).
   */
  softmaxBackward(y: View, ct: View, axis: number, log: boolean, out: TypedArray): void;

  /**
   * Layer normalisation of x (float32 or float64, rank >= 1) over its last axis: out (x's shape and dtype,
   * contiguous) gets per row (the elements along the last axis at fixed other indices)
   *   out = (x - mean) * rstd,   rstd = 1 / sqrt(var + eps),
   * mean and the biased variance var of the row (the variance from the deviations, not E[x^2] - mean^2). NaN and
   * infinities propagate through the arithmetic (a row holding one is NaN throughout). An empty x writes nothing.
   * Precision: js computes in float64 and rounds once; other backends may take float32 rows in float32 with
   * float64 sums (agreeing with js to ~1e-6 relative, the float32 tolerance of the backend tests).
   */
  layerNorm(x: View, eps: number, out: TypedArray): void;

  /**
   * The VJP of `layerNorm` at x applied to g (g with x's shape, any strides, e.g. a stride-0 broadcast; the
   * Jacobian is symmetric, so this is the JVP too). Per row, with xhat and rstd of the forward pass (recomputed
   * from x):
   *   out = rstd (g - mean(g) - xhat mean(xhat g)).
   * Precision as for `layerNorm`.
   */
  layerNormBackward(x: View, g: View, eps: number, out: TypedArray): void;

  /**
   * Optional fused kernels of LayerNorm's affine form (prims/norm.ts falls back to `layerNorm`, `binary` and
   * `reduce` when a backend omits them; completion never fills them). w and b: [N] views (N the last axis of x,
   * any stride), x and g as for `layerNormBackward`, precision as for `layerNorm`:
   *   layerNormAffine:         out (x's shape) = layerNorm(x) * w + b
   *   layerNormScaledBackward: out (x's shape) = layerNormBackward(x, g * w), the VJP of the affine form in x
   *   layerNormAffineGrads:    out ([2, N]) = [sum of g * layerNorm(x), sum of g] over every row (the VJP in w
   *                            and b), float64 sums added row block by row block in an order that depends on the
   *                            shape alone
   */
  layerNormAffine?(x: View, w: View, b: View, eps: number, out: TypedArray): void;
  layerNormScaledBackward?(x: View, w: View, g: View, eps: number, out: TypedArray): void;
  layerNormAffineGrads?(x: View, g: View, eps: number, out: TypedArray): void;

  /**
   * Fused scaled dot-product attention, computed blockwise with an online softmax (no [L, S] score matrix).
   * q [...B, L, E], k [...B, S, E], v [...B, S, Ev], mask null or [...B, L, S] (additive, e.g. -Infinity to
   * drop a score; any strides, a broadcast mask has stride 0): the same batch shape B everywhere, one float
   * dtype. Scores s_ij = scale * (q_i . k_j) + mask_ij, over j <= i only when `causal` (top-left aligned).
   * out is contiguous [...B, L, Ev + 1]: out[..., i, :Ev] = sum_j softmax(s_i)_j v_j and out[..., i, Ev] =
   * lse_i = log sum_j exp(s_ij), the row's logsumexp, which attentionBackward reads.
   * Special rows: S = 0 (no keys) gives output 0 and lse -Infinity; a row whose every score is -Infinity
   * (fully masked) gives output NaN and lse -Infinity (PyTorch's composed softmax gives NaN there too); NaN
   * or +Infinity scores make the row NaN.
   * Precision: js computes in float64 and rounds once; other backends may run float32 inputs in float32
   * (products, exp and sums), agreeing with js to ~1e-5 relative.
   */
  attention(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    causal: boolean,
    scale: number,
    out: TypedArray,
  ): void;

  /**
   * The VJP of `attention`, FlashAttention-2 style: the probabilities are recomputed block by block from the
   * saved lse as p_ij = exp(s_ij - lse_i) (entries excluded by `causal` are skipped; -Infinity scores give 0,
   * a fully masked row NaN). q, k, v, mask, causal and scale as for attention; o its output [...B, L, Ev + 1]
   * (lse in the last column) and dout a cotangent of that shape (its last column the cotangent of lse). With
   * D_i = sum_e dout_ie o_ie - dout_i,Ev and ds_ij = p_ij (dout_i . v_j - D_i):
   *   dq_i = scale sum_j ds_ij k_j,   dk_j = scale sum_i ds_ij q_i,   dv_j = sum_i p_ij dout_i[:Ev].
   * out is contiguous [...B, L * E + S * E + S * Ev]: per batch element dq [L, E], dk [S, E], dv [S, Ev],
   * each row-major. Precision as for attention.
   */
  attentionBackward(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    o: View,
    dout: View,
    causal: boolean,
    scale: number,
    out: TypedArray,
  ): void;

  /**
   * The elementwise part of one LSTM step, fused: gates [...B, 4H] (the two matmuls' sum, in PyTorch's order
   * i, f, g, o), c [...B, H] (any strides); out contiguous [...B, 2H] = [h', c'] with
   *   c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c').
   * Float dtypes, shared. js computes in float64; others may compute float32 in float32 (~1e-6 relative).
   */
  lstmCell(gates: View, c: View, out: TypedArray): void;

  /**
   * The VJP of lstmCell: gates and c as there, ct [...B, 2H] the cotangent of [h', c']; out contiguous
   * [...B, 5H] = [d gates (i, f, g, o), dc]. With dc' = ct_c + ct_h sigmoid(o) (1 - tanh(c')^2):
   *   di = dc' tanh(g) i (1 - i), df = dc' c f (1 - f), dg = dc' i (1 - tanh(g)^2), do = ct_h tanh(c') o (1 - o),
   *   dc = dc' f   (i, f, o the sigmoids of their gates).
   */
  lstmCellBackward(gates: View, c: View, ct: View, out: TypedArray): void;

  /**
   * The elementwise part of one GRU step, fused: xp [...B, 3H] (x W_ih^T + b_ih) and hp [...B, 3H]
   * (h W_hh^T + b_hh), each in PyTorch's order r, z, n, and h [...B, H]; out contiguous [...B, H] with
   *   r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n),   h' = n + z (h - n).
   */
  gruCell(xp: View, hp: View, h: View, out: TypedArray): void;

  /**
   * The VJP of gruCell: ct [...B, H] the cotangent of h'; out contiguous [...B, 7H] = [dxp (3H), dhp (3H), dh]
   * with dn' = ct (1 - z) (1 - n^2), dz' = ct (h - n) z (1 - z), dr' = dn' h_n r (1 - r):
   *   dxp = [dr', dz', dn'],  dhp = [dr', dz', dn' r],  dh = ct z.
   */
  gruCellBackward(xp: View, hp: View, h: View, ct: View, out: TypedArray): void;

  /**
   * Optional fused kernel: one Adam/AdamW step in place, elementwise over contiguous arrays of one float dtype
   * (g may be any view of the same shape). With float64 arithmetic per element (float32 parameters may be
   * computed in float32 instead, as PyTorch does; native does, within a few ulp of the float64 result):
   *   decoupled: p *= 1 - lr wd;   g' = (maximize ? -g : g) (+ wd p unless decoupled)
   *   m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;  vmax = max(vmax, v) if vmax;
   *   p -= (lr / bc1) m / (sqrt(vmax or v) / bc2Sqrt + eps)
   * Callers fall back to composed ops when a backend does not provide it.
   */
  adamUpdate?(
    p: TypedArray,
    g: View,
    m: TypedArray,
    v: TypedArray,
    vmax: TypedArray | null,
    h: AdamUpdateParams,
  ): void;

  /**
   * Optional fused elementwise kernel (jit's fusion, src/core/jit-fuse.ts): outs[j] = the register
   * `prog.outputs[j]`, evaluated elementwise. `inputs[k]` is the view read by `{ kind: "input", index: k }`,
   * already broadcast to the outputs' shape (same rank; stride 0 on broadcast axes; any strides and offset) and
   * of `prog.dtype`; each of `outs` is contiguous with that shape. The result must be bit for bit what applying this backend's own
   * `unary` / `binary` kernels instruction by instruction gives (a float32 register is rounded to float32
   * after every instruction; a const register reads like a stride-0 view of the value). So a backend whose
   * kernels approximate (wasm's SIMD float32 exp) uses the same approximation at the same elements.
   * An out may be the storage of an input that has its contiguous layout (jit writes in place over a dying
   * operand): element i of every input is read before element i of any out is written, and no other element
   * of that input after.
   * Never filled in by completion (complete.ts): jit fuses only on backends that provide it.
   */
  fused?(prog: FusedProgram, inputs: readonly View[], outs: readonly TypedArray[]): void;

  /**
   * True if `fused` also runs programs with a reduction terminal (`FusedProgram.reduce`): outs then ends with
   * the reduced output (contiguous, the inputs' shape without the reduced axes), computed as this backend's
   * `reduce` kernel would from the materialised register, up to the summation order its docs state (jit fuses
   * reductions only on such backends). Never filled in by completion.
   */
  readonly fusedReduce?: boolean;

  /**
   * Optional GEMM epilogue kernel (jit's epilogue fusion): the matrix product of a and b (as `dot`, float32 /
   * float64, batched alike), then `prog` over it as `fused` runs it, with input 0 the product (`inputs[k]` is
   * read by input k + 1, already broadcast to the product's shape) and outs as for `fused` (outs[0] may hold
   * the product meanwhile). Results equal `dot` followed by `fused` bit for bit; the point is that each block of
   * the product is finished by the chain (bias, activation, scale, residual) while in cache, never stored and
   * read back. jit uses it only on backends that provide it; never filled in by completion.
   */
  dotFused?(prog: FusedProgram, a: View, b: View, inputs: readonly View[], outs: readonly TypedArray[]): void;

  /**
   * Optional kernel: the stable sorting permutation along `axis`. out (int32, x's shape, contiguous) gets, for
   * each row along `axis`, the positions of the row's elements in ascending order (descending with
   * `descending`); equal elements keep their order (-0 equals +0); NaN sorts above every number (last
   * ascending, first descending), as PyTorch's stable sort. Any dtype (bool as 0/1). A 0-d x is a row of one.
   * Callers run the js reference (src/backend/js/sort.ts) when a backend omits it; completion does not fill it,
   * so a backend that serves every kernel of KERNELS stays unwrapped.
   */
  argsort?(x: View, axis: number, descending: boolean, out: TypedArray): void;

  /**
   * Optional dense linear-algebra kernels behind `cr.linalg` (LU, triangular solve, Cholesky, QR, symmetric
   * eigendecomposition, SVD, determinant); each one's contract is on `LinalgKernels`. Callers run the js
   * reference (src/backend/js/decomp.ts) when a backend omits it; completion does not fill it.
   */
  linalg?: LinalgKernels;
}

/**
 * Dense linear-algebra kernels, batched over every leading dimension of their matrix operands (float32 or
 * float64; out has the input's dtype, contiguous). Packed outputs hold several results in one array (one
 * output per primitive); the layout is stated per kernel.
 */
export interface LinalgKernels {
  /**
   * LU with partial pivoting of a [..., n, n]: out [..., n+1, n], rows 0..n-1 the unit-lower L (below the
   * diagonal) and U (on and above), row n the row permutation p as numbers (L U = rows p[0], p[1], ... of a). A
   * zero pivot leaves its column unscaled (U gets a zero diagonal), as LAPACK's getrf.
   */
  lu(a: View, out: TypedArray): void;
  /**
   * x = a^-1 b for a triangular a [..., n, n] (only its `lower` or upper triangle is read; with `unitDiagonal`
   * the diagonal is taken as ones) and b [..., n, k] of the same batch shape: out [..., n, k]. With `op` set, a
   * zero on the diagonal throws a LinAlgError naming `op` (and the batch element); otherwise it gives inf/NaN.
   */
  triangularSolve(
    a: View,
    b: View,
    lower: boolean,
    unitDiagonal: boolean,
    op: string | null,
    out: TypedArray,
  ): void;
  /**
   * Lower Cholesky factor of a [..., n, n] (lower triangle read). A matrix that is not positive-definite is a
   * LinAlgError naming `op` (default "linalg.cholesky"), the batch element and the failing leading minor; with
   * `op` null it is no error: its columns from the failing one on are NaN (so the first NaN on the diagonal
   * names the minor; a factor that succeeds has none there).
   */
  cholesky(a: View, out: TypedArray, op?: string | null): void;
  /**
   * Householder QR of a [..., m, n] (R's diagonal signs as LAPACK's geqrf): Q [m, c] and R [c, n] with c =
   * min(m, n), or c = m with `complete`; packed as out [..., m + c, max(c, n)], Q in rows 0..m-1, columns
   * 0..c-1, R in rows m.., columns 0..n-1, zeros elsewhere.
   */
  qr(a: View, complete: boolean, out: TypedArray): void;
  /**
   * Symmetric eigendecomposition of a [..., n, n] (only its `lower` or upper triangle read): out [..., n+1, n],
   * row 0 the eigenvalues ascending, rows 1..n the eigenvectors as columns, each with its largest-magnitude
   * entry positive (the first one on ties). A matrix with a non-finite entry gives NaN throughout.
   */
  eigh(a: View, lower: boolean, out: TypedArray): void;
  /**
   * Singular value decomposition of a [..., m, n], k = min(m, n): U [m, ku], S [k] descending, Vh [kv, n] with
   * ku = kv = k, or ku = m, kv = n with `full`; packed as out [..., m + 1 + kv, max(ku, n)], U in rows 0..m-1,
   * S in row m, Vh in the rows after. The largest-magnitude entry of each of the first k columns of U is
   * positive (the first one on ties). A matrix with a non-finite entry gives NaN throughout.
   */
  svd(a: View, full: boolean, out: TypedArray): void;
  /** Determinant of a [..., n, n] (from LU with partial pivoting): out [...]. */
  det(a: View, out: TypedArray): void;
}

/**
 * The kernels of the contract: every member of Backend but its name, its allocator, the optional `fused`
 * (which completion never fills: a backend fuses only with a kernel of its own) and the optional `argsort` and
 * `linalg` (whose callers use the js reference when a backend omits them).
 */
export type KernelName = Exclude<
  keyof Backend,
  "name" | "alloc" | "fused" | "fusedReduce" | "dotFused" | "argsort" | "linalg" | LayerNormAffineKernel
>;

/** The optional fused kernels of LayerNorm's affine form (never filled in by completion). */
export type LayerNormAffineKernel = "layerNormAffine" | "layerNormScaledBackward" | "layerNormAffineGrads";

/** Every kernel name once (a Record, so the compiler rejects a missing or unknown one). */
const KERNEL_SET: Record<KernelName, true> = {
  unary: true,
  binary: true,
  biasAct: true,
  actGrad: true,
  where: true,
  cast: true,
  copy: true,
  reduce: true,
  argReduce: true,
  cumsum: true,
  dot: true,
  conv2d: true,
  conv2dBackInput: true,
  conv2dBackWeight: true,
  maxPool2d: true,
  maxPool2dArgmax: true,
  maxPool2dBackward: true,
  avgPool2d: true,
  avgPool2dBackward: true,
  gather: true,
  scatterAdd: true,
  softmax: true,
  softmaxBackward: true,
  layerNorm: true,
  layerNormBackward: true,
  attention: true,
  attentionBackward: true,
  lstmCell: true,
  lstmCellBackward: true,
  gruCell: true,
  gruCellBackward: true,
  adamUpdate: true,
};

/** The 32 kernel names, in the order of the interface. */
export const KERNELS = Object.keys(KERNEL_SET) as KernelName[];

/**
 * What a backend implementation provides: a name, an allocator and any subset of the kernels. The registry
 * (complete.ts, run once when a backend is loaded or selected) fills every omitted kernel with the js reference,
 * and, where `unaryOps` / `binaryOps` / `reduceOps` list only some op codes, sends calls with the other codes to
 * the js kernel. So a new op code or kernel needs only its js implementation; a backend gains it when it lists
 * it. Fallback for other reasons (a dtype the backend lacks, no scratch memory) stays inside the backend.
 */
export type BackendImpl = Pick<Backend, "name" | "alloc"> &
  Partial<
    Pick<
      Backend,
      KernelName | "fused" | "fusedReduce" | "dotFused" | "argsort" | "linalg" | LayerNormAffineKernel
    >
  > & {
    /** The unary op codes `unary` implements (default: all of UNARY_OPS). */
    readonly unaryOps?: readonly UnaryOp[];
    /** The binary op codes `binary` implements (default: all of BINARY_OPS). */
    readonly binaryOps?: readonly BinaryOp[];
    /** The reductions `reduce` implements (default: all of REDUCE_OPS). */
    readonly reduceOps?: readonly ReduceOp[];
  };
