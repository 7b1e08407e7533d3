/**
 * autocast's conv2d in bfloat16 on the backend's bfloat16 convolution (src/backend/half.ts `convBF16`: native with
 * AVX512_BF16, native/src/kernels/half.cc conv_bf16), an implicit GEMM with no im2col matrix.
 *
 * Forward: the kernel copies the input once into bfloat16 with a zero frame of the padding (a float32 input is
 * rounded there), then per group multiplies the float32 weight [Og, Cg*KH*KW] (rounded to bfloat16 while packed)
 * by panels of the patch matrix gathered straight from that copy (a tap's values along an output row are
 * contiguous there), accumulating in float32 (vdpbf16ps); bias (rounded to bfloat16) and relu are the epilogue,
 * and the output is rounded to bfloat16 once, into the [N, O, OH, OW] layout conv2d returns.
 *
 * Backward (from the cotangent dy, bfloat16 or float32), relu's derivative through the output applied by the
 * kernels as they read dy (the output as a mask): the weight's and the bias's float32 gradients are one call
 * (float32 accumulators, not rounded to bfloat16: dz against the input's patches, and dz summed per channel);
 * the input's gradient, for stride 1 with padding within the kernel's reach, is the same forward convolution of
 * the masked dz with the weight's channel axes swapped (per group) and its taps flipped, padded by the kernel's
 * reach less the padding (rounded once to x's dtype); otherwise the float32 transposed convolution
 * (conv2dBackInput) of the widened, masked dz and the bfloat16-rounded weight. Under create_graph the backward
 * runs differentiable ops.
 *
 * `lowConv2d` declines (null: conv2d's usual autocast path of casts and the float32 convolution runs) outside
 * bfloat16 autocast, without the kernel, under any transform (jit, vmap, grad, forward mode), for activations
 * other than none and relu, for an empty batch, and for the shapes `preferLowConv` rejects (none, measured).
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
 * Whether autocast takes the bfloat16 convolution for this shape: every shape. Measured against the widened
 * float32 convolution (bench/bf16-conv-ab.ts, interleaved in one pinned process, process CPU time,
 * docs/mixed-precision.md), forward + backward took 0.46-0.92x its time on every shape tried (the bench CNN's
 * conv1 0.46x and conv2 0.80x; 3x3 convolutions of 64-256 channels 0.54-0.62x, 1x1 0.74x, 7x7 stride 2 0.56x,
 * few or grouped channels 0.70-0.92x); the forward alone 0.51-1.11x (parity on few or grouped channels, within
 * the noise of the measurement). `lowConvRoute.mode = "never"` keeps the widened path (the measurement's other
 * side).
 */
export function preferLowConv(_g: ConvGeo): boolean {
  return true;
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
