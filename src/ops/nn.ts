/**
 * Functional layers: convolution and pooling (NCHW), linear, and the fused bias + activation they can end in,
 * with PyTorch's argument conventions and checks that name the op, the shapes and what was expected.
 */
import { autocastDtype, castFloat32, castLow, castLowOpt, lowLinear, lowMatmulT } from "../amp.ts";
import { lowConv2d } from "../amp-conv.ts";
import { ACTIVATIONS, type Activation } from "../backend/backend.ts";
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import * as X from "../prims/lax.ts";
import { add, resultType } from "./math.ts";
import { matmul } from "./linalg.ts";
import { reshape, transpose } from "./shape.ts";

type Pair = number | readonly [number, number];

function pair(op: string, name: string, v: Pair, min: number): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new RangeError(`${op}: ${name} must be integers >= ${min}, got ${JSON.stringify(v)}`);
  }
  return p;
}

export type { Activation };

/**
 * act(x + bias), with bias a vector along axis `dim` of x (default the last), in one fused kernel: one pass
 * over memory and one temporary fewer than `x.add(bias).relu()`, and its backward is one kernel too. act is
 * "relu", "tanh" or "sigmoid"; bias may be null (the activation alone). The result is exactly the unfused one.
 *
 * @example
 * ```ts
 * biasActivation(tensor([[-1, 2]]), tensor([0.5, -3]), "relu"); // [[0, 0]]
 * ```
 */
export function biasActivation(x: Tensor, bias: Tensor | null, activation: Activation, dim = -1): Tensor {
  const op = "biasActivation";
  if (!ACTIVATIONS.includes(activation)) {
    throw new RangeError(
      `${op}: activation must be one of ${ACTIVATIONS.join(", ")}, got ${String(activation)}`,
    );
  }
  const d = resultType(bias === null ? [x] : [x, bias]);
  if (!isFloat(d)) {
    throw new DTypeError(
      `${op}: expected float tensors, got ${x.dtype}${bias === null ? "" : ` and ${bias.dtype}`}`,
    );
  }
  const xc = X.castTo(x, d);
  if (bias === null) return X.biasAct(activation, xc, null);
  const ax = dim < 0 ? dim + x.ndim : dim;
  if (!Number.isInteger(dim) || ax < 0 || ax >= x.ndim) {
    throw new RangeError(`${op}: dim ${dim} is out of range for input of shape ${fmtShape(x.shape)}`);
  }
  if (bias.ndim !== 1 || bias.shape[0] !== x.shape[ax]) {
    throw new ShapeError(
      `${op}: bias must have shape [${x.shape[ax]}] (input ${fmtShape(x.shape)} along dim ${dim}), got ${fmtShape(bias.shape)}`,
    );
  }
  const b = reshape(
    X.castTo(bias, d),
    x.shape.map((s, i) => (i === ax ? s : 1)),
  );
  return X.biasAct(activation, xc, X.broadcast(b, x.shape));
}

function checkActivation(op: string, a: Activation | undefined): void {
  if (a !== undefined && !ACTIVATIONS.includes(a)) {
    throw new RangeError(`${op}: activation must be one of ${ACTIVATIONS.join(", ")}, got ${String(a)}`);
  }
}

/** Options of `linear`. */
export interface LinearFnOpts {
  /** Apply an activation fused with the bias add. */
  activation?: Activation;
}

/**
 * y = x W^T + b over the last dim (PyTorch's F.linear): x [..., in], weight [out, in], bias [out] or null;
 * with `activation`, act(y) through the fused bias + activation kernel.
 *
 * @example
 * ```ts
 * linear(randn([32, 784]), randn([128, 784]), zeros([128]), { activation: "relu" }); // [32, 128]
 * ```
 */
/**
 * Throw a TypeError unless `v` is a tensor, null or undefined: `conv2d(x, w, { padding: 1 })` passes the options
 * where the bias goes (they come after it, as in PyTorch's signature) and would fail later with a message about
 * something else.
 */
export function checkOptionalTensor(op: string, name: string, v: unknown, call: string): void {
  if (v === null || v === undefined) return;
  const t = v as { shape?: unknown; dtype?: unknown };
  if (typeof v === "object" && Array.isArray(t.shape) && typeof t.dtype === "string") return;
  const got = typeof v === "object" ? `an object with keys ${Object.keys(v as object).join(", ")}` : typeof v;
  throw new TypeError(`${op}: ${name} must be a Tensor or null, got ${got}; options come after it: ${call}`);
}

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: LinearFnOpts = {}): Tensor {
  checkOptionalTensor("linear", "bias", bias, "linear(x, w, null, { activation })");
  checkActivation("linear", opts.activation);
  if (weight.ndim !== 2)
    throw new ShapeError(`linear: weight must be 2-d [out, in], got ${fmtShape(weight.shape)}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      `linear: expected input [..., ${weight.shape[1]}] for weight ${fmtShape(weight.shape)}, got ${fmtShape(x.shape)}`,
    );
  }
  // autocast: bfloat16 GEMM with the bias and relu fused, float32 master gradients (src/amp.ts)
  const low = autocastDtype();
  const lowW = low !== null && weight.dtype === "float32" && (x.dtype === "float32" || x.dtype === low);
  if (lowW && (bias == null || (bias.ndim === 1 && bias.shape[0] === weight.shape[0]))) {
    const fused = lowLinear(x, weight, bias ?? null, opts.activation);
    if (fused !== null) return fused;
  }
  const y = lowW ? lowMatmulT(x, weight) : matmul(x, transpose(weight, 0, 1));
  const b = castLowOpt(bias) ?? null; // autocast: the bias in the product's dtype, as PyTorch's linear
  if (b !== null && (b.ndim !== 1 || b.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`linear: bias must have shape [${weight.shape[0]}], got ${fmtShape(b.shape)}`);
  }
  if (opts.activation !== undefined) return biasActivation(y, b, opts.activation, -1);
  return b === null ? y : add(y, b);
}

/**
 * Layer normalisation over the trailing dims `normalizedShape` (PyTorch's F.layer_norm):
 * y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased variance over those dims of each sample;
 * weight and bias (shape normalizedShape) are optional. The normalisation is one fused kernel forward and one
 * backward (prims/norm.ts); integer inputs compute in float32, and so do half ones under autocast.
 *
 * @example
 * ```ts
 * layerNorm(randn([8, 10, 64]), [64], weight, bias); // each of the 80 vectors normalised, then scaled and shifted
 * ```
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const op = "layerNorm";
  const ns = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  if (!ns.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new RangeError(`${op}: normalizedShape must be integers >= 0, got ${fmtShape(ns)}`);
  }
  const k = ns.length;
  if (x.ndim < k || ns.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    throw new ShapeError(`${op}: expected input [..., ${ns.join(", ")}], got ${fmtShape(x.shape)}`);
  }
  for (const [name, t] of [
    ["weight", weight],
    ["bias", bias],
  ] as const) {
    if (t != null && (t.ndim !== k || t.shape.some((d, i) => d !== ns[i]))) {
      throw new ShapeError(`${op}: ${name} must have shape ${fmtShape(ns)}, got ${fmtShape(t.shape)}`);
    }
  }
  let xf = isFloat(x.dtype) ? castFloat32(x) : X.castTo(x, "float32");
  if (k > 0 && weight != null && bias != null && weight.dtype === xf.dtype && bias.dtype === xf.dtype) {
    // the affine form as one primitive: one kernel forward, two backward (prims/norm.ts)
    const n = ns.reduce((a, b) => a * b, 1);
    const rows = k > 1 ? reshape(xf, [...xf.shape.slice(0, xf.ndim - k), n]) : xf;
    const y = X.layerNormAffine(rows, reshape(weight, [n]), reshape(bias, [n]), eps);
    return k > 1 ? reshape(y, x.shape) : y;
  }
  let y: Tensor;
  if (k === 0) {
    // nothing to normalise over: each element is its own row of one, (x - x) / sqrt(0 + eps)
    y = xf.sub(xf).div(Math.sqrt(eps));
  } else {
    const lead = xf.shape.slice(0, xf.ndim - k);
    const n = ns.reduce((a, b) => a * b, 1);
    if (k > 1) xf = reshape(xf, [...lead, n]);
    y = X.layerNorm(xf, eps);
    if (k > 1) y = reshape(y, x.shape);
  }
  if (weight != null) y = y.mul(weight);
  if (bias != null) y = y.add(bias);
  return y;
}

export interface Conv2dOpts {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  /** Apply an activation fused with the bias add. */
  activation?: Activation;
}

/**
 * 2-d cross-correlation (PyTorch's conv2d). x: [N, C, H, W], weight: [O, C / groups, KH, KW], bias: [O].
 *
 * @example
 * ```ts
 * const y = conv2d(randn([1, 3, 8, 8]), randn([4, 3, 3, 3]), null, { padding: 1 }); // [1, 4, 8, 8]
 * ```
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOpts = {}): Tensor {
  checkOptionalTensor("conv2d", "bias", bias, "conv2d(x, w, null, { padding: 1 })");
  const stride = pair("conv2d", "stride", opts.stride ?? 1, 1);
  const padding = pair("conv2d", "padding", opts.padding ?? 0, 0);
  const dilation = pair("conv2d", "dilation", opts.dilation ?? 1, 1);
  const groups = opts.groups ?? 1;
  checkActivation("conv2d", opts.activation);
  // autocast: the bfloat16 im2col GEMM where it is faster (src/amp-conv.ts), else float32 operands in the
  // autocast dtype (src/amp.ts)
  if (autocastDtype() !== null) {
    const low = lowConv2d(x, weight, bias ?? null, opts.activation, stride, padding, dilation, groups);
    if (low !== null) return low;
  }
  x = castLow(x);
  weight = castLow(weight);
  bias = castLowOpt(bias);
  if (x.ndim !== 4) throw new ShapeError(`conv2d: input must be 4-d [N, C, H, W], got ${fmtShape(x.shape)}`);
  if (weight.ndim !== 4)
    throw new ShapeError(`conv2d: weight must be 4-d [O, C/groups, KH, KW], got ${fmtShape(weight.shape)}`);
  const [n, c, h, w] = x.shape;
  const [o, cg, kh, kw] = weight.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0 || o % groups !== 0) {
    throw new ShapeError(`conv2d: groups=${groups} must divide input channels ${c} and output channels ${o}`);
  }
  if (cg * groups !== c) {
    throw new ShapeError(
      `conv2d: weight ${fmtShape(weight.shape)} expects ${cg * groups} input channels (groups=${groups}), input ${fmtShape(x.shape)} has ${c}`,
    );
  }
  const oh = Math.floor((h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0]) + 1;
  const ow = Math.floor((w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1]) + 1;
  if (oh <= 0 || ow <= 0) {
    throw new ShapeError(
      `conv2d: kernel ${kh}x${kw} (dilation ${dilation}) is larger than the padded input ${h}x${w}`,
    );
  }
  const b = bias ?? null;
  if (b !== null && (b.ndim !== 1 || b.shape[0] !== o)) {
    throw new ShapeError(`conv2d: bias must have shape [${o}], got ${fmtShape(b.shape)}`);
  }
  const d = resultType(b === null ? [x, weight] : [x, weight, b]);
  if (!isFloat(d)) {
    throw new DTypeError(
      `conv2d: expected float tensors, got ${x.dtype} and ${weight.dtype}${b === null ? "" : ` (bias ${b.dtype})`}`,
    );
  }
  const params = { stride, padding, dilation, groups, outShape: [n, o, oh, ow] };
  const xc = X.castTo(x, d);
  const wc = X.castTo(weight, d);
  if (b === null && opts.activation === undefined) return X.conv2d(xc, wc, params);
  // bias and activation run in the convolution kernel's epilogue
  return X.conv2dBiasAct(xc, wc, b === null ? null : X.castTo(b, d), opts.activation ?? null, params);
}

export interface Pool2dOpts {
  stride?: Pair;
  padding?: Pair;
}

function poolParams(op: string, x: Tensor, kernel: Pair, opts: Pool2dOpts) {
  if (x.ndim !== 4) throw new ShapeError(`${op}: input must be 4-d [N, C, H, W], got ${fmtShape(x.shape)}`);
  const k = pair(op, "kernel size", kernel, 1);
  const stride = pair(op, "stride", opts.stride ?? k, 1);
  const padding = pair(op, "padding", opts.padding ?? 0, 0);
  if (padding[0] * 2 > k[0] || padding[1] * 2 > k[1]) {
    throw new RangeError(`${op}: padding ${padding} must be at most half the kernel size ${k}`);
  }
  const [n, c, h, w] = x.shape;
  const oh = Math.floor((h + 2 * padding[0] - k[0]) / stride[0]) + 1;
  const ow = Math.floor((w + 2 * padding[1] - k[1]) / stride[1]) + 1;
  if (oh <= 0 || ow <= 0)
    throw new ShapeError(`${op}: kernel ${k} is larger than the padded input ${h}x${w}`);
  return { kernel: k, stride, padding, outShape: [n, c, oh, ow] as const };
}

/** Max pooling over kh x kw windows (stride defaults to the kernel size). */
export function maxPool2d(x: Tensor, kernel: Pair, opts: Pool2dOpts = {}): Tensor {
  return X.maxPool2d(x, poolParams("maxPool2d", x, kernel, opts));
}

/** Average pooling (padding counted in the divisor, PyTorch's default). */
export function avgPool2d(x: Tensor, kernel: Pair, opts: Pool2dOpts = {}): Tensor {
  const t = x.dtype === "float32" || x.dtype === "float64" ? x : X.castTo(x, "float32");
  return X.avgPool2d(t, { ...poolParams("avgPool2d", x, kernel, opts), inShape: x.shape });
}
