/**
 * 2-D pooling kernels of the js reference backend (NCHW): max pooling, its argmax, the transpose of max pooling
 * at a point, average pooling and the transpose of average pooling.
 *
 * Window (oh, ow) covers input rows oh*sh - ph .. oh*sh - ph + kh - 1 (likewise columns). Positions outside
 * the image are padding: for max pooling they hold -Infinity (so they never win), for average pooling they
 * hold 0 and still count in the divisor kh * kw (PyTorch's count_include_pad=True default).
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import { fmtShape } from "../../shape.ts";
import type { Pool2dParams, View } from "../backend.ts";
import { assertOutSize, contiguousData } from "./strided.ts";

export interface PoolDims {
  planes: number; // N * C
  h: number;
  w: number;
  oh: number;
  ow: number;
}

/** The sizes of a pooling of input shape xs into output shape ys, checked (the backends share the check). */
export function poolDims(
  op: string,
  xs: readonly number[],
  ys: readonly number[],
  p: Pool2dParams,
): PoolDims {
  if (xs.length !== 4 || ys.length !== 4 || xs[0] !== ys[0] || xs[1] !== ys[1]) {
    throw internal(`${op}: inconsistent input ${fmtShape(xs)} and output ${fmtShape(ys)}`);
  }
  const ohExpect = Math.floor((xs[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1;
  const owExpect = Math.floor((xs[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1;
  if (ys[2] !== Math.max(ohExpect, 0) || ys[3] !== Math.max(owExpect, 0)) {
    throw internal(
      `${op}: output ${fmtShape(ys)} does not match input ${fmtShape(xs)} with kernel ${fmtShape(p.kernel)}`,
    );
  }
  return { planes: xs[0] * xs[1], h: xs[2], w: xs[3], oh: ys[2], ow: ys[3] };
}

/** poolDims of maxPool2dBackward (x -> dy), whose output must have x's shape. */
export function maxPoolBackwardDims(
  x: View,
  dy: View,
  outShape: readonly number[],
  p: Pool2dParams,
): PoolDims {
  const d = poolDims("maxPool2dBackward", x.shape, dy.shape, p);
  if (outShape.length !== 4 || outShape.some((v, i) => v !== x.shape[i])) {
    throw internal(
      `maxPool2dBackward: output ${fmtShape(outShape)} is not the input's shape ${fmtShape(x.shape)}`,
    );
  }
  return d;
}

/**
 * For every output position, the flat in-plane index (h * W + w) of the first maximum of its window, scanning
 * rows then columns; a NaN wins at once. -1 if the window lies entirely in the padding (impossible when
 * padding <= kernel / 2, which callers enforce as PyTorch does).
 */
function windowArgmax(X: TypedArray, d: PoolDims, p: Pool2dParams, out: TypedArray): void {
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.stride;
  const [ph, pw] = p.padding;
  let o = 0;
  for (let pl = 0; pl < d.planes; pl++) {
    const base = pl * d.h * d.w;
    for (let oh = 0; oh < d.oh; oh++) {
      for (let ow = 0; ow < d.ow; ow++, o++) {
        let best = -1;
        let bv = Number.NEGATIVE_INFINITY;
        search: for (let i = 0; i < kh; i++) {
          const ih = oh * sh - ph + i;
          if (ih < 0 || ih >= d.h) continue;
          for (let j = 0; j < kw; j++) {
            const iw = ow * sw - pw + j;
            if (iw < 0 || iw >= d.w) continue;
            const v = X[base + ih * d.w + iw];
            if (Number.isNaN(v)) {
              best = ih * d.w + iw;
              break search;
            }
            if (best < 0 || v > bv) {
              best = ih * d.w + iw;
              bv = v;
            }
          }
        }
        out[o] = best;
      }
    }
  }
}

/** Max pooling: x [N, C, H, W] -> out [N, C, OH, OW]; NaN propagates; padding is -Infinity. */
export function maxPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
  const d = poolDims("maxPool2d", x.shape, outShape, p);
  const size = d.planes * d.oh * d.ow;
  assertOutSize("maxPool2d", out, size);
  const X = contiguousData(x);
  const idx = new Int32Array(size);
  windowArgmax(X, d, p, idx);
  const plane = d.oh * d.ow;
  for (let o = 0; o < size; o++) {
    const i = idx[o];
    out[o] = i < 0 ? Number.NEGATIVE_INFINITY : X[Math.floor(o / plane) * d.h * d.w + i];
  }
}

/** Flat in-plane index (int32) of the first maximum of each max-pooling window; out [N, C, OH, OW]. */
export function maxPool2dArgmax(
  x: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): void {
  const d = poolDims("maxPool2dArgmax", x.shape, outShape, p);
  assertOutSize("maxPool2dArgmax", out, d.planes * d.oh * d.ow);
  windowArgmax(contiguousData(x), d, p, out);
}

/**
 * Transpose of max pooling at x (its VJP): dy [N, C, OH, OW] -> out [N, C, H, W] (outShape, x's shape). Each
 * dy[oh, ow] goes to the position of its window's first maximum (windowArgmax: padding never wins, a NaN wins);
 * every other position is 0. Where windows overlap (stride < kernel) a position can collect several terms: they
 * are summed in float64 in output order (oh, then ow), starting from +0, and rounded once into out.
 */
export function maxPool2dBackward(
  x: View,
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): void {
  const d = maxPoolBackwardDims(x, dy, outShape, p);
  const size = d.planes * d.h * d.w;
  assertOutSize("maxPool2dBackward", out, size);
  const nOut = d.planes * d.oh * d.ow;
  const idx = new Int32Array(nOut);
  windowArgmax(contiguousData(x), d, p, idx);
  const DY = contiguousData(dy);
  const acc = new Float64Array(size);
  const plane = d.oh * d.ow;
  for (let o = 0; o < nOut; o++) {
    const i = idx[o];
    if (i >= 0) acc[Math.floor(o / plane) * d.h * d.w + i] += DY[o];
  }
  for (let i = 0; i < size; i++) out[i] = acc[i];
}

/** Average pooling: out = (sum of the window's in-image elements) / (kh * kw). */
export function avgPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
  const d = poolDims("avgPool2d", x.shape, outShape, p);
  assertOutSize("avgPool2d", out, d.planes * d.oh * d.ow);
  const X = contiguousData(x);
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.stride;
  const [ph, pw] = p.padding;
  const div = kh * kw;
  let o = 0;
  for (let pl = 0; pl < d.planes; pl++) {
    const base = pl * d.h * d.w;
    for (let oh = 0; oh < d.oh; oh++) {
      for (let ow = 0; ow < d.ow; ow++, o++) {
        let acc = 0;
        for (let i = 0; i < kh; i++) {
          const ih = oh * sh - ph + i;
          if (ih < 0 || ih >= d.h) continue;
          for (let j = 0; j < kw; j++) {
            const iw = ow * sw - pw + j;
            if (iw >= 0 && iw < d.w) acc += X[base + ih * d.w + iw];
          }
        }
        out[o] = acc / div;
      }
    }
  }
}

/**
 * Transpose of avgPool2d: each dy[oh, ow] / (kh * kw) is added to every in-image input of its window.
 * dy [N, C, OH, OW] -> out [N, C, H, W] (outShape).
 */
export function avgPool2dBackward(
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Pool2dParams,
): void {
  const d = poolDims("avgPool2dBackward", outShape, dy.shape, p);
  const size = d.planes * d.h * d.w;
  assertOutSize("avgPool2dBackward", out, size);
  const DY = contiguousData(dy);
  const [kh, kw] = p.kernel;
  const [sh, sw] = p.stride;
  const [ph, pw] = p.padding;
  const div = kh * kw;
  const acc = new Float64Array(size);
  let o = 0;
  for (let pl = 0; pl < d.planes; pl++) {
    const base = pl * d.h * d.w;
    for (let oh = 0; oh < d.oh; oh++) {
      for (let ow = 0; ow < d.ow; ow++, o++) {
        const g = DY[o] / div;
        for (let i = 0; i < kh; i++) {
          const ih = oh * sh - ph + i;
          if (ih < 0 || ih >= d.h) continue;
          for (let j = 0; j < kw; j++) {
            const iw = ow * sw - pw + j;
            if (iw >= 0 && iw < d.w) acc[base + ih * d.w + iw] += g;
          }
        }
      }
    }
  }
  for (let i = 0; i < size; i++) out[i] = acc[i];
}
