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
export const lowConvRoute: { mode: "auto" | "always" | "never" } = { mode: "auto" };

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
  if (kern?.convBF16 === undefined || kern.gemmBF16Ready?.() !== true) return null;
  return bindLowConv(kern, x, weight, bias, activation === "relu", geo);
}

function bindLowConv(
  kern: HalfKernels,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  relu: boolean,
  geo: ConvGeo,
): Tensor {
  const { n, c, o, cg, kh, kw, groups, og, oh, ow } = geo;
  const [dlh, dlw] = geo.dilation;
  const [ph, pw] = geo.padding;
  lowConvStats.calls++;
  const cp = { stride: geo.stride, padding: geo.padding, dilation: geo.dilation, groups };
  const conv = kern.convBF16!.bind(kern);
  const needX = x.requiresGrad;
  const split = (args: readonly Tensor[]) => ({
    xa: needX ? args[0] : x,
    w: args[needX ? 1 : 0],
    b: bias === null ? null : args[needX ? 2 : 1],
  });
  const forward = (xa: Tensor, w: Tensor, b: Tensor | null) => {
    const y = allocOut({ shape: [n, o, oh, ow], dtype: "bfloat16" });
    const ok = conv("forward", viewOf(xa), viewOf(w), y._data as Uint16Array, y.shape, cp, {
      bias: b === null ? null : viewOf(b),
      relu,
    });
    if (!ok) throw new Error("lowConv2d: the bfloat16 convolution declined a call it had accepted");
    return y;
  };
  // the input gradient as a forward convolution (stride 1): dz padded by the kernel's reach less the padding,
  // against the weight with its channel axes swapped (per group) and its taps flipped
  const backInputAsConv =
    geo.stride[0] === 1 && geo.stride[1] === 1 && ph <= dlh * (kh - 1) && pw <= dlw * (kw - 1);
  const rule: CallRule = {
    name: "autocastConv2d",
    fn: (args) => {
      const { xa, w, b } = split(args);
      return [forward(xa, w, b)];
    },
    vjp: (args) => {
      const { xa, w, b } = split(args);
      const y = forward(xa, w, b);
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
          // dz = dy through relu's derivative: the kernels zero dy where the (bfloat16) output is not > 0
          const dz = dy.dtype === "float32" || dy.dtype === "bfloat16" ? dy : dy.to("float32");
          const mask = relu ? viewOf(y) : null;
          const out: Tensor[] = [];
          if (needX) {
            if (backInputAsConv) {
              const wt = w
                .reshape([groups, og, cg, kh, kw])
                .permute([0, 2, 1, 3, 4])
                .flip([3, 4])
                .reshape([c, og, kh, kw]);
              const dx = allocOut({
                shape: xa.shape,
                dtype: xa.dtype === "bfloat16" ? "bfloat16" : "float32",
              });
              const ok = conv(
                "forward",
                viewOf(dz),
                viewOf(wt),
                dx._data as Float32Array | Uint16Array,
                dx.shape,
                {
                  stride: [1, 1],
                  padding: [dlh * (kh - 1) - ph, dlw * (kw - 1) - pw],
                  dilation: geo.dilation,
                  groups,
                },
                { mask },
              );
              if (!ok) throw new Error("lowConv2d: the bfloat16 convolution declined the input gradient");
              out.push(dx);
            } else {
              // the float32 transposed convolution of dz and the weight as the forward rounded it
              const wb = widen(narrow(w, "bfloat16"));
              let dz32 = dz.dtype === "float32" ? dz : widen(dz);
              if (relu) dz32 = dz32.mul(widen(y).gt(0).to("float32"));
              const dx = X.conv2dBackInput(dz32, wb, cp, xa.shape);
              out.push(xa.dtype === "bfloat16" ? dx.to("bfloat16") : dx);
            }
          }
          // the weight's gradient and after it the bias's, float32 accumulators
          const kg = cg * kh * kw;
          const dwb = allocOut({ shape: [o * kg + (b === null ? 0 : o)], dtype: "float32" });
          const ok = conv("weight", viewOf(xa), viewOf(dz), dwb._data as Float32Array, w.shape, cp, {
            mask,
            biasGrad: b !== null,
          });
          if (!ok) throw new Error("lowConv2d: the bfloat16 convolution declined the weight gradient");
          out.push(b === null ? dwb.reshape(w.shape) : dwb.index([0, o * kg]).reshape(w.shape));
          if (b !== null) {
            const db = allocOut({ shape: [o], dtype: "float32" });
            (db._data as Float32Array).set((dwb._data as Float32Array).subarray(o * kg, o * kg + o));
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
