/**
 * autocast's conv2d in bfloat16 on the backend's bfloat16 GEMM (src/backend/half.ts: native with AVX512_BF16).
 *
 * Forward: the im2col matrix of the input, laid out [groups, Cg*KH*KW (+1), N, OH, OW] (a row per kernel tap and
 * input channel, the columns the output positions of the whole batch), is written once by the backend's strided
 * copy in the input's own dtype (float32, or the 16-bit storage copied as bytes; padding is a zeroed frame, no
 * padded copy of the input), then one batched bfloat16 GEMM per image and group multiplies the float32 weight
 * viewed [O, Cg*KH*KW] by it: float32 operands are rounded to bfloat16 while the GEMM packs them, the products
 * accumulate in float32, and the output is rounded to bfloat16 once, straight into the [N, O, OH, OW] layout
 * conv2d returns. The bias rides along as an extra row of ones in the matrix and an extra weight column (so it
 * is rounded to bfloat16, as the GEMM's bias epilogue would round it); relu is the GEMM's epilogue.
 *
 * Backward (from the cotangent dy, bfloat16 or float32): relu's derivative is applied to the widened dy, which is
 * then laid out [O, N, OH, OW] (one strided copy of the output's size); the weight's and the bias's float32
 * gradients are one bfloat16 GEMM of it against the forward's im2col matrix (kept for the backward) whose
 * float32 accumulators are the gradients (the ones row gives the bias's), not rounded to bfloat16; the input's
 * gradient is the float32 transposed convolution (conv2dBackInput) of the widened cotangent and the
 * bfloat16-rounded weight (a bfloat16 GEMM plus a col2im fold would need a fold kernel, which the native
 * backend does not expose), rounded to bfloat16 for a bfloat16 input. Under create_graph the backward runs
 * differentiable ops.
 *
 * `lowConv2d` declines (null: conv2d's usual autocast path of casts and the float32 convolution runs) outside
 * bfloat16 autocast, without the kernel, under any transform (jit, vmap, grad, forward mode), for activations
 * other than none and relu, and for the shapes where measurement found it slower (`preferLowConv`).
 */
import { autocastDtype } from "./amp.ts";
import type { View } from "./backend/backend.ts";
import { type HalfKernels, halfKernelsOf } from "./backend/half.ts";
import { bindCall, type CallRule, state } from "./core/trace.ts";
import { narrow, widen } from "./prims/half.ts";
import { allocOut, getBackend, viewOf } from "./prims/impl.ts";
import * as X from "./prims/lax.ts";
import type { Tensor } from "./tensor/tensor.ts";

/** The convolution's geometry, checked. */
export interface ConvGeo {
  n: number;
  c: number;
  h: number;
  w: number;
  o: number;
  cg: number;
  kh: number;
  kw: number;
  groups: number;
  og: number;
  oh: number;
  ow: number;
  stride: readonly [number, number];
  padding: readonly [number, number];
  dilation: readonly [number, number];
}

/**
 * @internal Which conv2d path autocast takes: "auto" (the rule of `preferLowConv`), "always" or "never" (tests
 * and the A/B measurement, bench/bf16-conv-ab.ts).
 */
export const lowConvStats = { calls: 0 };

/** @internal The route switch (see `lowConvRoute` below); `lowConvStats.calls` counts the GEMM path's calls (tests). */
export const lowConvRoute: { mode: "auto" | "always" | "never"; layout: "batched" | "2d" } = {
  mode: "auto",
  layout: "2d",
};

/**
 * Whether autocast takes the bfloat16 im2col GEMM for this shape. Measured against the widened float32
 * convolution (bench/bf16-conv-ab.ts, interleaved in one pinned process, docs/mixed-precision.md), it was not
 * faster for forward + backward on any shape tried (the bench CNN's two convolutions: 1.33x and 1.42x the CPU
 * time; 3x3 convolutions of 64-256 channels and a 1x1 one: 0.97-1.08x; few or grouped channels: 1.45-2.4x):
 * the bfloat16 GEMM, which packs its whole inner dimension per call, runs these K = Cg*KH*KW of hundreds at
 * about the float32 convolution's speed, and writing the im2col matrix comes on top. So it declines every shape
 * (autocast keeps the widened float32 convolution) until the GEMM blocks K; `lowConvRoute.mode = "always"`
 * forces it (tests, the measurement).
 */
export function preferLowConv(_g: ConvGeo): boolean {
  return false;
}

/** The bytes of 16-bit storage (the native copy moves them as a byte view with a trailing [2] axis). */
const byteViews = new WeakMap<Uint16Array, Uint8Array>();
function bytes(u: Uint16Array): Uint8Array {
  let b = byteViews.get(u);
  if (b === undefined) {
    b = new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
    byteViews.set(u, b);
  }
  return b;
}

/** A view of element storage: 16-bit storage becomes its bytes with a trailing [2] axis of stride 1. */
function elems(
  data: Float32Array | Uint16Array,
  offset: number,
  shape: readonly number[],
  strides: readonly number[],
): View {
  if (data instanceof Float32Array) return { data, offset, shape, strides };
  return {
    data: bytes(data),
    offset: 2 * offset,
    shape: [...shape, 2],
    strides: [...strides.map((s) => 2 * s), 1],
  };
}

/**
 * The im2col matrix of concrete x [N, C, H, W] (float32 or bfloat16, any strides) as contiguous storage of
 * x's dtype laid out [groups, kp, N, OH, OW], kp = Cg*KH*KW + (ones ? 1 : 0): row (c, i, j) of group g holds
 * x[n, g*Cg + c, oh*sh + i*dh - ph, ow*sw + j*dw - pw] (0 outside the input), the last row ones when `ones`.
 */
function im2col(x: Tensor, g: ConvGeo, ones: boolean): { cols: Float32Array | Uint16Array; key: string } {
  const { n, h, w, cg, kh, kw, groups, oh, ow } = g;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const kk = kh * kw;
  const kg = cg * kk;
  const kp = kg + (ones ? 1 : 0);
  const p = oh * ow;
  const np = n * p;
  /** The output rows [lo, hi) whose input index o * s + off lies in [0, len) (out: the output extent). */
  const range = (off: number, s: number, len: number, out: number): [number, number] => {
    const lo = Math.min(out, Math.max(0, Math.ceil(-off / s)));
    const hi = Math.max(lo, Math.min(out, Math.floor((len - 1 - off) / s) + 1));
    return [lo, hi];
  };
  const rows = Array.from({ length: kh }, (_, i) => range(i * dh - ph, sh, h, oh));
  const colsW = Array.from({ length: kw }, (_, j) => range(j * dw - pw, sw, w, ow));
  const framed = rows.some(([a, b]) => a > 0 || b < oh) || colsW.some(([a, b]) => a > 0 || b < ow);
  const key = `${x.dtype} ${n} ${g.c} ${h} ${w} ${g.o} ${cg} ${kh} ${kw} ${groups} ${g.stride} ${g.padding} ${g.dilation} ${ones}`;
  const pooled = colsPool.get(key);
  if (pooled !== undefined) colsPool.delete(key);
  // a tap whose window leaves the input somewhere reads zeros there: fresh storage starts zeroed, and a pooled
  // buffer of the same geometry has its zeros (and its ones row) where they were
  const cols =
    pooled ??
    (allocOut({ shape: [groups * kp * np], dtype: x.dtype }, framed)._data as Float32Array | Uint16Array);
  const xv = viewOf(x);
  const src = xv.data as Float32Array | Uint16Array;
  const [sN, sC, sH, sW] = xv.strides;
  const backend = getBackend();
  const dstStrides = [kp * np, kk * np, p, ow, 1];
  for (let i = 0; i < kh; i++) {
    const [r0, r1] = rows[i];
    for (let j = 0; j < kw; j++) {
      const [c0, c1] = colsW[j];
      if (r1 <= r0 || c1 <= c0) continue;
      const shape = [groups, cg, n, r1 - r0, c1 - c0];
      backend.copy(
        elems(src, xv.offset + (r0 * sh + i * dh - ph) * sH + (c0 * sw + j * dw - pw) * sW, shape, [
          cg * sC,
          sC,
          sN,
          sh * sH,
          sw * sW,
        ]),
        elems(cols, (i * kw + j) * np + r0 * ow + c0, shape, dstStrides),
      );
    }
  }
  if (ones && pooled === undefined) {
    const one = cols instanceof Float32Array ? 1 : 0x3f80;
    for (let q = 0; q < groups; q++) cols.fill(one, (q * kp + kg) * np, (q * kp + kp) * np);
  }
  return { cols, key };
}

/**
 * im2col matrices no longer needed (after the weight gradient, or after a forward without gradients), one per
 * geometry, the most recent few: the next forward of the same geometry (the next training step) reuses one
 * instead of allocating and faulting in tens of megabytes.
 */
const colsPool = new Map<string, Float32Array | Uint16Array>();
const POOL_KEYS = 8;
function release(key: string, cols: Float32Array | Uint16Array): void {
  colsPool.delete(key);
  colsPool.set(key, cols);
  if (colsPool.size > POOL_KEYS) colsPool.delete(colsPool.keys().next().value as string);
}

/** The float32 weight [O, Cg, KH, KW] (any strides) as a contiguous [O, kp] matrix, the bias its last column. */
function weightMatrix(weight: Tensor, bias: Tensor | null, kg: number): Float32Array {
  const o = weight.shape[0];
  const kp = kg + (bias === null ? 0 : 1);
  const m = allocOut({ shape: [o * kp], dtype: "float32" })._data as Float32Array;
  const [, , kh, kw] = weight.shape;
  const backend = getBackend();
  backend.copy(viewOf(weight), { data: m, offset: 0, shape: weight.shape, strides: [kp, kh * kw, kw, 1] });
  if (bias !== null) backend.copy(viewOf(bias), { data: m, offset: kg, shape: [o], strides: [kp] });
  return m;
}

/** The geometry of conv2d(x, weight) with these options, or null when a check fails (conv2d then reports it). */
export function convGeo(
  x: Tensor,
  weight: Tensor,
  stride: readonly [number, number],
  padding: readonly [number, number],
  dilation: readonly [number, number],
  groups: number,
): ConvGeo | null {
  if (x.ndim !== 4 || weight.ndim !== 4) return null;
  const [n, c, h, w] = x.shape;
  const [o, cg, kh, kw] = weight.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0 || o % groups !== 0 || cg * groups !== c)
    return null;
  const oh = Math.floor((h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0]) + 1;
  const ow = Math.floor((w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1]) + 1;
  if (!(oh > 0 && ow > 0 && n > 0 && o > 0 && cg > 0 && kh > 0 && kw > 0)) return null;
  return { n, c, h, w, o, cg, kh, kw, groups, og: o / groups, oh, ow, stride, padding, dilation };
}

/**
 * @internal autocast's conv2d act(conv(x, weight) + bias) in bfloat16 as one call on the bfloat16 GEMM (module
 * comment), for a float32 master `weight` [O, C/groups, KH, KW], an optional float32 `bias` [O], x [N, C, H, W]
 * float32 or bfloat16, activation none or relu; null when it does not apply (the caller runs the casts and the
 * widened float32 convolution).
 */
export function lowConv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  activation: string | undefined,
  stride: readonly [number, number],
  padding: readonly [number, number],
  dilation: readonly [number, number],
  groups: number,
): Tensor | null {
  if (autocastDtype() !== "bfloat16" || lowConvRoute.mode === "never") return null;
  if (activation !== undefined && activation !== "relu") return null;
  if (weight.dtype !== "float32" || (x.dtype !== "float32" && x.dtype !== "bfloat16")) return null;
  if (bias !== null && (bias.dtype !== "float32" || bias.ndim !== 1 || bias.shape[0] !== weight.shape[0]))
    return null;
  for (const t of [x, weight, bias]) if (t !== null && (t._trace !== null || t._data === null)) return null;
  const geo = convGeo(x, weight, stride, padding, dilation, groups);
  if (geo === null || (lowConvRoute.mode === "auto" && !preferLowConv(geo))) return null;
  const kern = halfKernelsOf(getBackend().name);
  if (kern?.gemmBF16 === undefined || kern.gemmBF16Ready?.() !== true) return null;
  return bindLowConv(kern.gemmBF16.bind(kern), x, weight, bias, activation === "relu", geo);
}

function bindLowConv(
  gemm: NonNullable<HalfKernels["gemmBF16"]>,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  relu: boolean,
  geo: ConvGeo,
): Tensor {
  const { n, o, cg, kh, kw, groups, og, oh, ow } = geo;
  lowConvStats.calls++;
  const kg = cg * kh * kw;
  const kp = kg + (bias === null ? 0 : 1);
  const p = oh * ow;
  const np = n * p;
  const cp = { stride: geo.stride, padding: geo.padding, dilation: geo.dilation, groups };
  const needX = x.requiresGrad;
  const split = (args: readonly Tensor[]) => ({
    xa: needX ? args[0] : x,
    w: args[needX ? 1 : 0],
    b: bias === null ? null : args[needX ? 2 : 1],
  });
  const forward = (xa: Tensor, w: Tensor, b: Tensor | null) => {
    const { cols, key } = im2col(xa, geo, b !== null);
    const wm = weightMatrix(w, b, kg);
    const y = allocOut({ shape: [n, o, oh, ow], dtype: "bfloat16" });
    let ok: boolean;
    if (lowConvRoute.layout === "2d") {
      // y_g (Og x N*P) = W_g (Og x kp) @ cols[g] (kp x N*P), then [O, N, P] -> [N, O, P]
      const t = allocOut({ shape: [o * np], dtype: "bfloat16" })._data as Uint16Array;
      ok = gemm(
        { data: wm, offset: 0, shape: [groups, og, kp], strides: [og * kp, kp, 1] },
        { data: cols, offset: 0, shape: [groups, kp, np], strides: [kp * np, np, 1] },
        t,
        { relu },
      );
      getBackend().copy(
        elems(t, 0, [n, o, p], [p, np, 1]),
        elems(y._data as Uint16Array, 0, [n, o, p], [o * p, p, 1]),
      );
    } else {
      // per image and group: y[n, g] (Og x P) = W_g (Og x kp) @ cols[g, :, n] (kp x P)
      ok = gemm(
        { data: wm, offset: 0, shape: [n, groups, og, kp], strides: [0, og * kp, kp, 1] },
        { data: cols, offset: 0, shape: [n, groups, kp, p], strides: [p, kp * np, np, 1] },
        y._data as Uint16Array,
        { relu },
      );
    }
    if (!ok) throw new Error("lowConv2d: the bfloat16 GEMM declined a call it had accepted");
    return { y, cols, key };
  };
  const rule: CallRule = {
    name: "autocastConv2d",
    fn: (args) => {
      const { xa, w, b } = split(args);
      const { y, cols, key } = forward(xa, w, b);
      release(key, cols);
      return [y];
    },
    vjp: (args) => {
      const { xa, w, b } = split(args);
      const fwd = forward(xa, w, b);
      const y = fwd.y;
      /** The im2col matrix, or null once the backward has handed it back to the pool. */
      let cols: Float32Array | Uint16Array | null = fwd.cols;
      return {
        outs: [y],
        backward: ([dy]) => {
          const plain = dy._trace === null && !(state.gradEnabled && dy.requiresGrad);
          if (!plain) {
            // differentiable ops (create_graph): the composition's derivatives
            const dz = relu ? dy.mul(y.gt(0).to(dy.dtype)) : dy;
            const dzb = dz.to("bfloat16");
            const out: Tensor[] = [];
            if (needX) out.push(X.conv2dBackInput(dzb, w.to("bfloat16"), cp, xa.shape).to(xa.dtype));
            out.push(X.conv2dBackWeight(xa.to("bfloat16"), dzb, cp, w.shape).to("float32"));
            if (b !== null) out.push(dz.to("float32").sum([0, 2, 3]));
            return out;
          }
          const dy32 = dy.dtype === "float32" ? dy : dy.dtype === "bfloat16" ? widen(dy) : dy.to("float32");
          const dz = relu ? dy32.mul(y.gt(0).to("float32")) : dy32;
          // dz laid out [O, N, OH, OW] = [groups, Og, N*P]
          const dzT = allocOut({ shape: [o * np], dtype: "float32" })._data as Float32Array;
          getBackend().copy(viewOf(dz), {
            data: dzT,
            offset: 0,
            shape: [n, o, oh, ow],
            strides: [p, np, ow, 1],
          });
          // [dW_g | db_g] (Og x kp) = dz_g (Og x N*P) @ cols[g]^T (N*P x kp), float32 accumulators
          // a second backward (retained graph) after the pool took the matrix back: build it again
          const m = cols ?? im2col(xa, geo, b !== null).cols;
          cols = null;
          const dwb = allocOut({ shape: [o, kp], dtype: "float32" });
          const ok = gemm(
            { data: dzT, offset: 0, shape: [groups, og, np], strides: [og * np, np, 1] },
            { data: m, offset: 0, shape: [groups, np, kp], strides: [kp * np, 1, np] },
            dwb._data as Float32Array,
          );
          if (!ok) throw new Error("lowConv2d: the bfloat16 GEMM declined the weight gradient");
          release(fwd.key, m);
          const out: Tensor[] = [];
          if (needX) {
            // the float32 transposed convolution of dz and the weight as the forward rounded it
            const wb = widen(narrow(w, "bfloat16"));
            const dx = X.conv2dBackInput(dz, wb, cp, xa.shape);
            out.push(xa.dtype === "bfloat16" ? dx.to("bfloat16") : dx);
          }
          const dw = allocOut({ shape: w.shape, dtype: "float32" });
          getBackend().copy(
            { data: dwb._data as Float32Array, offset: 0, shape: [o, kg], strides: [kp, 1] },
            { data: dw._data as Float32Array, offset: 0, shape: [o, kg], strides: [kg, 1] },
          );
          out.push(dw);
          if (b !== null) {
            const db = allocOut({ shape: [o], dtype: "float32" });
            getBackend().copy(
              { data: dwb._data as Float32Array, offset: kg, shape: [o], strides: [kp] },
              viewOf(db),
            );
            out.push(db);
          }
          return out;
        },
      };
    },
  };
  const args = [...(needX ? [x] : []), weight, ...(bias === null ? [] : [bias])];
  return bindCall(rule, args)[0];
}
