/**
 * Matrix product and 2-D convolution of the wasm backend.
 *
 * dot: one sgemm (float32, packed SIMD GEMM) or dgemm (float64) call per batch element; sgemm reads A and B
 * through their strides, so transposed and broadcast operands cost nothing extra.
 * conv2d and its adjoints (float32) are im2col + sgemm, per image and group (Cg = C / groups, Og = O /
 * groups, K = Cg * KH * KW, P = OH * OW):
 *   forward     y[n, g]  = W_g [Og, K]      @ col(x[n, g]) [K, P]
 *   backInput   dx[n, g] = col2im( W_g^T [K, Og] @ dy[n, g] [Og, P] )
 *   backWeight  dW_g     = sum_n dy[n, g] [Og, P] @ col(x[n, g])^T [P, K]   (the transpose is a stride swap)
 * A 1x1 convolution with stride 1 and no padding needs no im2col (col is the image).
 * float64 and int32 return false (the js kernels run).
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import { contiguousStrides, fmtShape, sizeOf } from "../../shape.ts";
import type { Conv2dParams, View } from "../backend.ts";
import { type ConvDims, convDims } from "../js/conv.ts";
import { assertOutSize } from "../js/strided.ts";
import { type Ctx, type Scope, stageContiguous, stageIn, stageOut, withScope, writeInts } from "./context.ts";
import { splitGemm } from "./threads.ts";

/** sgemm without its buffer arguments: (m, n, k, pa, rsa, csa, pb, rsb, csb, pc, ldc, accumulate). */
type Gemm = (
  ...a: [number, number, number, number, number, number, number, number, number, number, number, number]
) => void;

/**
 * A float32 GEMM runner for products up to [m, k] x [k, n] within one kernel call: packing buffers come from
 * the call's scope (one pair per thread, made on first use), and large products are split over the worker
 * pool (threads.ts).
 */
function gemmRunner(c: Ctx, s: Scope, m: number, n: number, k: number): Gemm {
  const threads = c.pool?.threads ?? 1;
  const bufs: [number, number][] = [];
  const buffers = (i: number): [number, number] =>
    (bufs[i] ??= [s.alloc(c.k.sgemmBufA(m, k)), s.alloc(c.k.sgemmBufB(n, k))]);
  return (...a) => {
    const jobs = splitGemm(threads, [...a, 0, 0], 4, buffers);
    if (jobs.length === 1) c.k.sgemm(...jobs[0]);
    else c.pool!.run(c.k, jobs);
  };
}

/** Batched matmul in wasm for float32 / float64; false for other dtypes. */
export function dot(c: Ctx, a: View, b: View, out: TypedArray): boolean {
  const dt = dtypeOfTyped(out);
  if ((dt !== "float32" && dt !== "float64") || dtypeOfTyped(a.data) !== dt || dtypeOfTyped(b.data) !== dt) {
    return false;
  }
  const ra = a.shape.length;
  if (ra < 2 || b.shape.length !== ra) {
    throw internal(`dot: operand shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)}: rank < 2 or unequal`);
  }
  const batchShape = a.shape.slice(0, ra - 2);
  for (let i = 0; i < ra - 2; i++) {
    if (a.shape[i] !== b.shape[i]) {
      throw internal(`dot: batch dimensions of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ`);
    }
  }
  const [m, k] = a.shape.slice(ra - 2);
  const n = b.shape[ra - 1];
  if (b.shape[ra - 2] !== k) {
    throw internal(
      `dot: inner dimensions of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} differ (${k} vs ${b.shape[ra - 2]})`,
    );
  }
  const batch = sizeOf(batchShape);
  assertOutSize("dot", out, batch * m * n);
  if (batch * m * n === 0) return true;
  return withScope(c, (s) => {
    const es = out.BYTES_PER_ELEMENT;
    const O = stageOut(c, s, out, batch * m * n);
    let A = { ptr: 0, strides: a.strides as readonly number[] };
    let B = { ptr: 0, strides: b.strides as readonly number[] };
    if (k > 0) {
      A = stageIn(c, s, a);
      if (dt === "float64" && b.strides[ra - 1] !== 1 && n > 1) {
        // dgemm wants contiguous rows of B: a row-major copy
        B = { ptr: stageContiguous(c, s, b), strides: contiguousStrides(b.shape) };
      } else {
        B = stageIn(c, s, b);
      }
    }
    const [rsa, csa] = A.strides.slice(ra - 2).map((x) => x * es);
    const [rsb, csb] = B.strides.slice(ra - 2).map((x) => x * es);
    const gemm = gemmRunner(c, s, m, n, k);
    const idx = new Array<number>(ra - 2).fill(0);
    for (let t = 0; t < batch; t++) {
      let offA = 0;
      let offB = 0;
      for (let i = 0; i < ra - 2; i++) {
        offA += idx[i] * A.strides[i];
        offB += idx[i] * B.strides[i];
      }
      const pa = A.ptr + offA * es;
      const pb = B.ptr + offB * es;
      const pc = O.ptr + t * m * n * es;
      if (dt === "float32") gemm(m, n, k, pa, rsa, csa, pb, rsb, csb, pc, n * es, 0);
      else c.k.dgemm(m, n, k, pa, rsa, csa, pb, rsb, pc, n * es, 0);
      for (let i = ra - 3; i >= 0; i--) {
        if (++idx[i] < batchShape[i]) break;
        idx[i] = 0;
      }
    }
    O.finish();
    return true;
  });
}

/** The im2col geometry descriptor [Cg, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw]. */
function geometry(d: ConvDims, p: Conv2dParams): number[] {
  return [d.cg, d.h, d.w, d.kh, d.kw, d.oh, d.ow, ...p.stride, ...p.padding, ...p.dilation];
}

/** True if col(x) is x itself: 1x1 kernel, stride 1, no padding. */
function isPointwise(d: ConvDims, p: Conv2dParams): boolean {
  return (
    d.kh === 1 &&
    d.kw === 1 &&
    p.stride[0] === 1 &&
    p.stride[1] === 1 &&
    p.padding[0] === 0 &&
    p.padding[1] === 0
  );
}

function allFloat32(...arrays: TypedArray[]): boolean {
  return arrays.every((a) => a instanceof Float32Array);
}

/** conv2d forward in wasm (float32 only). */
export function conv2d(
  c: Ctx,
  x: View,
  w: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
): boolean {
  if (!allFloat32(x.data, w.data, out)) return false;
  const d = convDims("conv2d", x.shape, w.shape, outShape, p);
  const size = d.n * d.o * d.oh * d.ow;
  assertOutSize("conv2d", out, size);
  if (size === 0) return true;
  const K = d.cg * d.kh * d.kw;
  const P = d.oh * d.ow;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    if (K === 0) {
      c.k.zero(O.ptr, size * 4);
    } else {
      const X = stageContiguous(c, s, x);
      const W = stageContiguous(c, s, w);
      const direct = isPointwise(d, p);
      const col = direct ? 0 : s.alloc(K * P * 4);
      const gemm = gemmRunner(c, s, d.og, P, K);
      const geo = geometry(d, p);
      for (let n = 0; n < d.n; n++) {
        for (let g = 0; g < d.groups; g++) {
          const px = X + (n * d.c + g * d.cg) * d.h * d.w * 4;
          if (!direct) c.k.im2col(writeInts(c, geo), px, col);
          const pw = W + g * d.og * K * 4;
          const py = O.ptr + (n * d.o + g * d.og) * P * 4;
          gemm(d.og, P, K, pw, K * 4, 4, direct ? px : col, P * 4, 4, py, P * 4, 0);
        }
      }
    }
    O.finish();
    return true;
  });
}

/** Gradient of conv2d with respect to x, in wasm (float32 only). */
export function conv2dBackInput(
  c: Ctx,
  dy: View,
  w: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
): boolean {
  if (!allFloat32(dy.data, w.data, out)) return false;
  const d = convDims("conv2dBackInput", outShape, w.shape, dy.shape, p);
  const size = d.n * d.c * d.h * d.w;
  assertOutSize("conv2dBackInput", out, size);
  if (size === 0) return true;
  const K = d.cg * d.kh * d.kw;
  const P = d.oh * d.ow;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    const direct = isPointwise(d, p);
    const work = K > 0 && P > 0 && d.og > 0;
    // col2im accumulates, and with no taps nothing is written: start from zeros
    if (!direct || !work) c.k.zero(O.ptr, size * 4);
    if (work) {
      const DY = stageContiguous(c, s, dy);
      const W = stageContiguous(c, s, w);
      const col = direct ? 0 : s.alloc(K * P * 4);
      const gemm = gemmRunner(c, s, K, P, d.og);
      const geo = geometry(d, p);
      for (let n = 0; n < d.n; n++) {
        for (let g = 0; g < d.groups; g++) {
          const pdy = DY + (n * d.o + g * d.og) * P * 4;
          const pw = W + g * d.og * K * 4;
          const px = O.ptr + (n * d.c + g * d.cg) * d.h * d.w * 4;
          // W_g^T: element (k, o) of the transpose is at o * K + k
          gemm(K, P, d.og, pw, 4, K * 4, pdy, P * 4, 4, direct ? px : col, P * 4, 0);
          if (!direct) c.k.col2im(writeInts(c, geo), col, px);
        }
      }
    }
    O.finish();
    return true;
  });
}

/** Gradient of conv2d with respect to w, in wasm (float32 only). */
export function conv2dBackWeight(
  c: Ctx,
  x: View,
  dy: View,
  out: TypedArray,
  outShape: readonly number[],
  p: Conv2dParams,
): boolean {
  if (!allFloat32(x.data, dy.data, out)) return false;
  const d = convDims("conv2dBackWeight", x.shape, outShape, dy.shape, p);
  const K = d.cg * d.kh * d.kw;
  const size = d.o * K;
  assertOutSize("conv2dBackWeight", out, size);
  if (size === 0) return true;
  const P = d.oh * d.ow;
  return withScope(c, (s) => {
    const O = stageOut(c, s, out, size);
    if (d.n === 0 || P === 0) {
      c.k.zero(O.ptr, size * 4);
    } else {
      const X = stageContiguous(c, s, x);
      const DY = stageContiguous(c, s, dy);
      const direct = isPointwise(d, p);
      const col = direct ? 0 : s.alloc(K * P * 4);
      const gemm = gemmRunner(c, s, d.og, K, P);
      const geo = geometry(d, p);
      for (let g = 0; g < d.groups; g++) {
        for (let n = 0; n < d.n; n++) {
          const px = X + (n * d.c + g * d.cg) * d.h * d.w * 4;
          if (!direct) c.k.im2col(writeInts(c, geo), px, col);
          const pdy = DY + (n * d.o + g * d.og) * P * 4;
          const pdw = O.ptr + g * d.og * K * 4;
          // B = col^T [P, K]: read through transposed strides (sgemm packs it with in-register transposes)
          gemm(d.og, K, P, pdy, P * 4, 4, direct ? px : col, 4, P * 4, pdw, K * 4, n > 0 ? 1 : 0);
        }
      }
    }
    O.finish();
    return true;
  });
}
