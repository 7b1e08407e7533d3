/**
 * Parameter initialisers (PyTorch's `torch.nn.init`): each fills a tensor in place (under noGrad, so it works
 * on parameters that require grad), draws from the global generator (`manualSeed`) or an optional `Generator`,
 * and returns the tensor. Names without and with PyTorch's trailing underscore are both exported.
 *
 * Fans follow PyTorch: for a weight of shape [out, in, k1, k2, ...], fanIn = in * k1 * k2 * ... and
 * fanOut = out * k1 * k2 * ...; Kaiming (He et al., 2015) keeps the variance of activations (fanIn) or of
 * gradients (fanOut) constant through a layer with std = gain / sqrt(fan); Xavier (Glorot and Bengio, 2010)
 * uses std = gain * sqrt(2 / (fanIn + fanOut)). A uniform(-b, b) has std b / sqrt(3).
 */
import { noGrad } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { getBackend } from "../backend/registry.ts";
import { defaultGenerator, type Generator } from "../ops/creation.ts";
import { fromData } from "../prims/impl.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Nonlinearities known to `calculateGain` (PyTorch spellings; "leakyRelu" is accepted too). */
export type Nonlinearity =
  | "linear"
  | "identity"
  | "conv1d"
  | "conv2d"
  | "conv3d"
  | "conv_transpose1d"
  | "conv_transpose2d"
  | "conv_transpose3d"
  | "sigmoid"
  | "tanh"
  | "relu"
  | "leaky_relu"
  | "leakyRelu"
  | "selu";

/** Whether a Kaiming initialiser preserves the forward (fanIn) or backward (fanOut) variance. */
export type FanMode = "fanIn" | "fanOut";

/** Options shared by the random initialisers. */
export interface InitOpts {
  generator?: Generator;
}

/**
 * The recommended gain for a nonlinearity (PyTorch's `calculate_gain`): 1 for linear, conv and sigmoid, 5/3
 * for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky relu (slope `param`, default 0.01), 3/4 for
 * selu.
 *
 * @example
 * ```ts
 * calculateGain("relu");                    // 1.4142135623730951
 * calculateGain("leaky_relu", Math.sqrt(5)); // sqrt(1/3)
 * ```
 */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear":
    case "identity":
    case "conv1d":
    case "conv2d":
    case "conv3d":
    case "conv_transpose1d":
    case "conv_transpose2d":
    case "conv_transpose3d":
    case "sigmoid":
      return 1;
    case "tanh":
      return 5 / 3;
    case "relu":
      return Math.SQRT2;
    case "leaky_relu":
    case "leakyRelu": {
      const slope = param ?? 0.01;
      if (!Number.isFinite(slope))
        throw new RangeError(`calculateGain: negative slope ${slope} is not finite`);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case "selu":
      return 3 / 4;
    default:
      throw new RangeError(`calculateGain: unsupported nonlinearity "${String(nonlinearity)}"`);
  }
}

/**
 * fanIn and fanOut of a weight shape [out, in, ...receptive field] (at least 2-d), as PyTorch.
 *
 * @example
 * ```ts
 * calculateFans([16, 3, 5, 5]); // { fanIn: 75, fanOut: 400 }
 * ```
 */
export function calculateFans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new ShapeError(
      `calculateFans: fan in and fan out need a tensor of at least 2 dims, got shape ${fmtShape(shape)}`,
    );
  }
  let receptive = 1;
  for (let i = 2; i < shape.length; i++) receptive *= shape[i];
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

function checkFloat(op: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new DTypeError(`${op}: expected a float tensor, got ${t.dtype}`);
}

/**
 * Fill t with values from f, staged in a buffer of t's own dtype (each value computed in float64 and rounded
 * once, as a float64 buffer cast afterwards would). Staging in float64 and then converting cost 3x the
 * weights on top of the weights themselves; this stages exactly one copy (2x peak), which copy_ needs so that
 * the write bumps the version counter and respects views.
 */
function fillWith(t: Tensor, f: (i: number) => number): Tensor {
  const vals = getBackend().alloc(t.dtype, t.size);
  for (let i = 0; i < vals.length; i++) vals[i] = f(i);
  const src = fromData(vals, t.shape, t.dtype);
  noGrad(() => t.copy_(src));
  return t;
}

/**
 * Fill with U(a, b), in place.
 *
 * @example
 * ```ts
 * uniform(zeros([3, 3]), -0.1, 0.1);
 * ```
 */
export function uniform(t: Tensor, a = 0, b = 1, opts: InitOpts = {}): Tensor {
  checkFloat("init.uniform", t);
  if (!(a <= b)) throw new RangeError(`init.uniform: expected a <= b, got a=${a}, b=${b}`);
  const g = opts.generator ?? defaultGenerator;
  return fillWith(t, () => a + (b - a) * g.uniform());
}

/**
 * Fill with N(mean, std^2), in place.
 *
 * @example
 * ```ts
 * normal(zeros([10, 4]), 0, 0.02);
 * ```
 */
export function normal(t: Tensor, mean = 0, std = 1, opts: InitOpts = {}): Tensor {
  checkFloat("init.normal", t);
  if (!(std >= 0)) throw new RangeError(`init.normal: std must be >= 0, got ${std}`);
  const g = opts.generator ?? defaultGenerator;
  return fillWith(t, () => mean + std * g.normal());
}

/** Fill with `value`, in place. */
export function constant(t: Tensor, value: number): Tensor {
  noGrad(() => t.fill_(value));
  return t;
}

/** Fill with zeros, in place. */
export function zeros_(t: Tensor): Tensor {
  return constant(t, 0);
}

/** Fill with ones, in place. */
export function ones_(t: Tensor): Tensor {
  return constant(t, 1);
}

/** Options of the Kaiming initialisers (PyTorch defaults: a = 0, fanIn, leaky_relu). */
export interface KaimingOpts extends InitOpts {
  /** Negative slope of the leaky relu that follows (only used with leaky_relu). */
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(op: string, t: Tensor, o: KaimingOpts): number {
  checkFloat(op, t);
  const { fanIn, fanOut } = calculateFans(t.shape);
  const fan = (o.mode ?? "fanIn") === "fanIn" ? fanIn : fanOut;
  if (o.mode !== undefined && o.mode !== "fanIn" && o.mode !== "fanOut") {
    throw new RangeError(`${op}: mode must be "fanIn" or "fanOut", got "${o.mode}"`);
  }
  return calculateGain(o.nonlinearity ?? "leaky_relu", o.a ?? 0) / Math.sqrt(fan);
}

/**
 * He uniform: U(-b, b) with b = gain * sqrt(3 / fan), in place.
 *
 * @example
 * ```ts
 * kaimingUniform(w, { nonlinearity: "relu" });           // b = sqrt(6 / fanIn)
 * kaimingUniform(w, { a: Math.sqrt(5) });                 // PyTorch's Linear/Conv default, b = 1 / sqrt(fanIn)
 * ```
 */
export function kaimingUniform(t: Tensor, opts: KaimingOpts = {}): Tensor {
  if (t.size === 0) return t;
  const bound = Math.sqrt(3) * kaimingStd("init.kaimingUniform", t, opts);
  return uniform(t, -bound, bound, opts);
}

/**
 * He normal: N(0, std^2) with std = gain / sqrt(fan), in place.
 *
 * @example
 * ```ts
 * kaimingNormal(w, { mode: "fanOut", nonlinearity: "relu" }); // torchvision's ResNet conv init
 * ```
 */
export function kaimingNormal(t: Tensor, opts: KaimingOpts = {}): Tensor {
  if (t.size === 0) return t;
  return normal(t, 0, kaimingStd("init.kaimingNormal", t, opts), opts);
}

/** Options of the Xavier initialisers. */
export interface XavierOpts extends InitOpts {
  gain?: number;
}

/**
 * Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fanIn + fanOut)), in place.
 *
 * @example
 * ```ts
 * xavierUniform(w, { gain: calculateGain("tanh") });
 * ```
 */
export function xavierUniform(t: Tensor, opts: XavierOpts = {}): Tensor {
  checkFloat("init.xavierUniform", t);
  const { fanIn, fanOut } = calculateFans(t.shape);
  const bound = (opts.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(t, -bound, bound, opts);
}

/**
 * Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fanIn + fanOut)), in place.
 *
 * @example
 * ```ts
 * xavierNormal(w);
 * ```
 */
export function xavierNormal(t: Tensor, opts: XavierOpts = {}): Tensor {
  checkFloat("init.xavierNormal", t);
  const { fanIn, fanOut } = calculateFans(t.shape);
  return normal(t, 0, (opts.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), opts);
}

/**
 * A (semi-)orthogonal matrix (Saxe et al., 2013), in place: t viewed as [rows, cols] with rows = shape[0]
 * gets orthonormal rows (rows <= cols) or columns (rows > cols), times `gain`.
 *
 * Method: the QR decomposition of a Gaussian matrix, in float64, by modified Gram-Schmidt with one
 * re-orthogonalisation pass ("twice is enough"). Gram-Schmidt gives R a positive diagonal, which is exactly
 * PyTorch's sign correction q * sign(diag(r)) and makes Q Haar-distributed.
 *
 * @example
 * ```ts
 * const w = orthogonal(zeros([4, 4]));  // w.T.matmul(w) is the identity
 * ```
 */
export function orthogonal(t: Tensor, opts: XavierOpts = {}): Tensor {
  checkFloat("init.orthogonal", t);
  if (t.ndim < 2) {
    throw new ShapeError(
      `init.orthogonal: needs a tensor of at least 2 dims, got shape ${fmtShape(t.shape)}`,
    );
  }
  if (t.size === 0) return t;
  const rows = t.shape[0];
  const cols = t.size / rows;
  const g = opts.generator ?? defaultGenerator;
  const gain = opts.gain ?? 1;
  // work on the tall orientation: m x n with m >= n, orthonormalise the n columns
  const m = Math.max(rows, cols);
  const n = Math.min(rows, cols);
  const a = new Float64Array(rows * cols); // row-major rows x cols Gaussian
  for (let i = 0; i < a.length; i++) a[i] = g.normal();
  // q[j] holds column j (length m) of the tall matrix
  const at = (i: number, j: number) => (rows >= cols ? a[i * cols + j] : a[j * cols + i]);
  const q: Float64Array[] = [];
  for (let j = 0; j < n; j++) {
    const v = new Float64Array(m);
    for (let i = 0; i < m; i++) v[i] = at(i, j);
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        const qk = q[k];
        let d = 0;
        for (let i = 0; i < m; i++) d += qk[i] * v[i];
        for (let i = 0; i < m; i++) v[i] -= d * qk[i];
      }
    }
    let nrm = 0;
    for (let i = 0; i < m; i++) nrm += v[i] * v[i];
    nrm = Math.sqrt(nrm);
    for (let i = 0; i < m; i++) v[i] /= nrm;
    q.push(v);
  }
  // element (r, c) of the rows x cols result
  return fillWith(t, (idx) => {
    const r = Math.floor(idx / cols);
    const c = idx % cols;
    return gain * (rows >= cols ? q[c][r] : q[r][c]);
  });
}

/** Alias of `uniform` with PyTorch's in-place spelling. */
export const uniform_ = uniform;
/** Alias of `normal` with PyTorch's in-place spelling. */
export const normal_ = normal;
/** Alias of `constant` with PyTorch's in-place spelling. */
export const constant_ = constant;
/** Alias of `kaimingUniform` with PyTorch's in-place spelling. */
export const kaimingUniform_ = kaimingUniform;
/** Alias of `kaimingNormal` with PyTorch's in-place spelling. */
export const kaimingNormal_ = kaimingNormal;
/** Alias of `xavierUniform` with PyTorch's in-place spelling. */
export const xavierUniform_ = xavierUniform;
/** Alias of `xavierNormal` with PyTorch's in-place spelling. */
export const xavierNormal_ = xavierNormal;
/** Alias of `orthogonal` with PyTorch's in-place spelling. */
export const orthogonal_ = orthogonal;
/** Alias of `zeros_` (the brief's spelling). */
export const zeros = zeros_;
/** Alias of `ones_`. */
export const ones = ones_;
