/**
 * 2-D convolution kernels of the js reference backend: conv2d and its two adjoints.
 *
 * conv2d is PyTorch's cross-correlation (no bias), NCHW layout, weight [O, C/groups, KH, KW]:
 *   y[n, o, oh, ow] = sum_{c < C/g, kh, kw} x[n, g*Cg + c, ih, iw] * w[o, c, kh, kw],
 *   ih = oh*sh - ph + kh*dh,  iw = ow*sw - pw + kw*dw,
 * with g = floor(o / (O/groups)) and out-of-range input positions read as 0 (zero padding).
 * conv2dBackInput and conv2dBackWeight are the transposes of this bilinear map in x and in w: they run the
 * very same loop nest and index arithmetic, only moving the accumulation, which makes them adjoint by
 * construction (the tests check <conv2d(x, w), dy> = <x, backInput(dy, w)> = <w, backWeight(x, dy)>).
 * Sums accumulate in the output's float dtype (float32 in float32, like PyTorch and the other backends'
 * GEMMs; see linalg.ts for why the reference does not accumulate float32 in float64).
 *
 * Padding is zeros that take part in the products, as in PyTorch: a non-finite weight whose tap lands on
 * padding makes that output NaN (0 * Inf, 0 * NaN), and a non-finite dy at an output where a tap lands on
 * padding makes that weight's gradient NaN. The row loop below skips padding (it is the fast path for finite
 * data), so `padTapsForward` / `padTapsBackWeight` put those NaNs in afterwards; the input gradient gets none
 * (padding has no gradient). Issue 8 item 12; values checked against PyTorch 1.13 (its im2col path; its oneDNN
 * and depthwise paths skip padding taps, an inconsistency we do not copy) in test/backend/js-nonfinite.test.ts.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import { contiguousStrides } from "../../shape.ts";
import type { Conv2dParams, ConvEpilogue, View } from "../backend.ts";
import { biasAct, binary } from "./elementwise.ts";
import { assertOutSize, contiguousData } from "./strided.ts";

/** All sizes of one convolution, from the x, w and y shapes (shared with the other backends). */
export interface ConvDims {
  n: number;
  c: number;
  h: number;
  w: number;
  o: number;
  cg: number; // input channels per group
  og: number; // output channels per group
  kh: number;
  kw: number;
  oh: number;
  ow: number;
  groups: number;
}

/** Check x, w and y shapes of a convolution against its params and return the geometry. */
export function convDims(
  op: string,
  xs: readonly number[],
  ws: readonly number[],
  ys: readonly number[],
  p: Conv2dParams,
) {
  const s = (a: readonly number[]) => `[${a.join(", ")}]`;
  if (xs.length !== 4 || ws.length !== 4 || ys.length !== 4) {
    throw internal(`${op}: expected rank-4 x, w, y, got ${s(xs)}, ${s(ws)}, ${s(ys)}`);
  }
  const [n, c, h, w] = xs;
  const [o, cg, kh, kw] = ws;
  const g = p.groups;
  const ohExpect = Math.floor((h + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
  const owExpect = Math.floor((w + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
  if (
    !(g >= 1) ||
    c !== cg * g ||
    o % g !== 0 ||
    ys[0] !== n ||
    ys[1] !== o ||
    ys[2] !== Math.max(ohExpect, 0) ||
    ys[3] !== Math.max(owExpect, 0)
  ) {
    throw internal(`${op}: inconsistent shapes x ${s(xs)}, w ${s(ws)}, y ${s(ys)} for groups ${g}`);
  }
  const d: ConvDims = { n, c, h, w, o, cg, og: o / g, kh, kw, oh: ys[2], ow: ys[3], groups: g };
  return d;
}

/**
 * The loop nest shared by all three kernels. For each (n, o, c, kh, kw, oh) it finds the range of ow whose
 * input column iw = ow*sw - pw + kw*dw lies inside the image, and calls `row(xi, wi, yi, count)`: the taps
 * are then x[xi + t*sw] * w[wi] -> y[yi + t] for t < count (flat row-major offsets). Rows skip padding, so no
 * tap reads outside the image. Visiting whole rows keeps the per-call overhead off the per-element path.
 */
function forEachRow(
  d: ConvDims,
  p: Conv2dParams,
  row: (xi: number, wi: number, yi: number, count: number) => void,
) {
  const [sh, sw] = p.stride;
  const [ph, pw] = p.padding;
  const [dh, dw] = p.dilation;
  for (let n = 0; n < d.n; n++) {
    for (let o = 0; o < d.o; o++) {
      const g = Math.floor(o / d.og);
      const yPlane = (n * d.o + o) * d.oh;
      for (let c = 0; c < d.cg; c++) {
        const xPlane = (n * d.c + g * d.cg + c) * d.h;
        const wPlane = (o * d.cg + c) * d.kh;
        for (let kh = 0; kh < d.kh; kh++) {
          for (let kw = 0; kw < d.kw; kw++) {
            const wi = (wPlane + kh) * d.kw + kw;
            const shift = kw * dw - pw; // iw = ow * sw + shift
            // 0 <= ow*sw + shift <= W - 1  <=>  ceil(-shift / sw) <= ow <= floor((W - 1 - shift) / sw)
            const lo = Math.max(0, Math.ceil(-shift / sw));
            const hi = Math.min(d.ow, Math.floor((d.w - 1 - shift) / sw) + 1);
            if (hi <= lo) continue;
            for (let oh = 0; oh < d.oh; oh++) {
              const ih = oh * sh - ph + kh * dh;
              if (ih < 0 || ih >= d.h) continue;
              row((xPlane + ih) * d.w + lo * sw + shift, wi, (yPlane + oh) * d.ow + lo, hi - lo);
            }
          }
        }
      }
    }
  }
}

/** A zeroed accumulator of `size` elements in out's float precision. */
function accumulator(out: TypedArray, size: number): Float32Array | Float64Array {
  return out instanceof Float32Array ? new Float32Array(size) : new Float64Array(size);
}

/** Copy an accumulator into out. */
function store(acc: Float32Array | Float64Array, out: TypedArray): void {
  for (let i = 0; i < acc.length; i++) out[i] = acc[i];
}

function hasNonFinite(a: TypedArray): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return true;
  return false;
}

/** True if tap (kh, kw) of output (oh, ow) reads padding (an input position outside the image). */
function tapInPadding(d: ConvDims, p: Conv2dParams, oh: number, ow: number, kh: number, kw: number): boolean {
  const ih = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
  const iw = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
  return ih < 0 || ih >= d.h || iw < 0 || iw >= d.w;
}

/** Forward: y[n, o, oh, ow] = NaN where a non-finite w[o, c, kh, kw] multiplies a padding zero. */
function padTapsForward(d: ConvDims, p: Conv2dParams, W: TypedArray, acc: Float32Array | Float64Array): void {
  if (p.padding[0] === 0 && p.padding[1] === 0) return;
  if (!hasNonFinite(W)) return;
  for (let o = 0; o < d.o; o++) {
    for (let i = 0; i < d.cg * d.kh * d.kw; i++) {
      if (Number.isFinite(W[o * d.cg * d.kh * d.kw + i])) continue;
      const kh = Math.floor(i / d.kw) % d.kh;
      const kw = i % d.kw;
      for (let n = 0; n < d.n; n++) {
        const yPlane = (n * d.o + o) * d.oh * d.ow;
        for (let oh = 0; oh < d.oh; oh++) {
          for (let ow = 0; ow < d.ow; ow++) {
            if (tapInPadding(d, p, oh, ow, kh, kw)) acc[yPlane + oh * d.ow + ow] = Number.NaN;
          }
        }
      }
    }
  }
}

/** Weight gradient: dw[o, c, kh, kw] = NaN where that tap multiplies a padding zero by a non-finite dy. */
function padTapsBackWeight(
  d: ConvDims,
  p: Conv2dParams,
  DY: TypedArray,
  acc: Float32Array | Float64Array,
): void {
  if (p.padding[0] === 0 && p.padding[1] === 0) return;
  if (!hasNonFinite(DY)) return;
  const plane = d.oh * d.ow;
  for (let i = 0; i < DY.length; i++) {
    if (Number.isFinite(DY[i])) continue;
    const o = Math.floor(i / plane) % d.o;
    const oh = Math.floor((i % plane) / d.ow);
    const ow = i % d.ow;
    for (let kh = 0; kh < d.kh; kh++) {
      for (let kw = 0; kw < d.kw; kw++) {
        if (!tapInPadding(d, p, oh, ow, kh, kw)) continue;
        for (let c = 0; c < d.cg; c++) acc[((o * d.cg + c) * d.kh + kh) * d.kw + kw] = Number.NaN;
      }
    }
  }
}

/**
 * out = act(out + bias[o]) in place over out [N, O, OH, OW] (contiguous): the conv2d epilogue, as the unfused add
 * and activation kernels compute it.
 */
export function convEpilogue(out: TypedArray, outShape: readonly number[], ep: ConvEpilogue): void {
  const view: View = { data: out, shape: outShape, strides: contiguousStrides(outShape), offset: 0 };
  const b: View | null =
    ep.bias === null
      ? null
      : {
          data: ep.bias.data,
          shape: outShape,
          strides: [0, ep.bias.strides[0], 0, 0],
          offset: ep.bias.offset,
        };
  if (ep.act !== null) biasAct(ep.act, view, b, out);
  else if (b !== null) binary("add", view, b, out);
}

/** y = conv2d(x, w): x [N, C, H, W], w [O, C/groups, KH, KW] -> out [N, O, OH, OW]; then the epilogue if any. */
export function conv2d(
  x: View,
  w: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
  epilogue?: ConvEpilogue,
): void {
  const d = convDims("conv2d", x.shape, w.shape, outShape, p);
  const size = d.n * d.o * d.oh * d.ow;
  assertOutSize("conv2d", out, size);
  const X = contiguousData(x);
  const W = contiguousData(w);
  const acc = accumulator(out, size);
  const sw = p.stride[1];
  forEachRow(d, p, (xi, wi, yi, count) => {
    const wv = W[wi];
    for (let t = 0; t < count; t++) acc[yi + t] += X[xi + t * sw] * wv;
  });
  padTapsForward(d, p, W, acc);
  store(acc, out);
  if (epilogue) convEpilogue(out, outShape, epilogue);
}

/** dx = conv2d transposed in x: dy [N, O, OH, OW], w [O, C/groups, KH, KW] -> out [N, C, H, W] (outShape). */
export function conv2dBackInput(
  dy: View,
  w: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
): void {
  const d = convDims("conv2dBackInput", outShape, w.shape, dy.shape, p);
  const size = d.n * d.c * d.h * d.w;
  assertOutSize("conv2dBackInput", out, size);
  const DY = contiguousData(dy);
  const W = contiguousData(w);
  const acc = accumulator(out, size);
  const sw = p.stride[1];
  forEachRow(d, p, (xi, wi, yi, count) => {
    const wv = W[wi];
    for (let t = 0; t < count; t++) acc[xi + t * sw] += DY[yi + t] * wv;
  });
  store(acc, out);
}

/** dw = conv2d transposed in w: x [N, C, H, W], dy [N, O, OH, OW] -> out [O, C/groups, KH, KW] (outShape). */
export function conv2dBackWeight(
  x: View,
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
): void {
  const d = convDims("conv2dBackWeight", x.shape, outShape, dy.shape, p);
  const size = d.o * d.cg * d.kh * d.kw;
  assertOutSize("conv2dBackWeight", out, size);
  const X = contiguousData(x);
  const DY = contiguousData(dy);
  const acc = accumulator(out, size);
  const sw = p.stride[1];
  const f32 = acc instanceof Float32Array;
  forEachRow(d, p, (xi, wi, yi, count) => {
    let sum = acc[wi];
    if (f32) for (let t = 0; t < count; t++) sum = Math.fround(sum + X[xi + t * sw] * DY[yi + t]);
    else for (let t = 0; t < count; t++) sum += X[xi + t * sw] * DY[yi + t];
    acc[wi] = sum;
  });
  padTapsBackWeight(d, p, DY, acc);
  store(acc, out);
}
