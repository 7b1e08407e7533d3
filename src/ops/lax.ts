/**
 * Thin wrappers that bind one primitive with exact params: no broadcasting, no promotion, no argument sugar.
 * Derivative rules and the public ops are written with these (the names follow JAX's `lax`).
 */
import type { Activation, Conv2dParams, Pool2dParams } from "../backend/backend.ts";
import { bind } from "../core/trace.ts";
import type { DType } from "../dtype.ts";
import { isZero, type MaybeZero } from "../core/primitive.ts";
import { zeros } from "./creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { shapesEqual } from "../shape.ts";
import * as C from "../prims/contract.ts";
import * as E from "../prims/elementwise.ts";
import * as V from "../prims/movement.ts";
import * as R from "../prims/reduce.ts";

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(V.reshapeP, [x], { shape });
}
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  return bind(V.permuteP, [x], { perm });
}
export function broadcast(x: Tensor, shape: readonly number[]): Tensor {
  return shapesEqual(x.shape, shape) ? x : bind(V.broadcastP, [x], { shape });
}
export function slice(
  x: Tensor,
  starts: readonly number[],
  steps: readonly number[],
  shape: readonly number[],
): Tensor {
  return bind(V.sliceP, [x], { starts, steps, shape });
}
export function unslice(
  x: Tensor,
  inShape: readonly number[],
  starts: readonly number[],
  steps: readonly number[],
): Tensor {
  return bind(V.unsliceP, [x], { inShape, starts, steps });
}
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  return bind(V.concatP, xs, { axis });
}
export function flip(x: Tensor, axes: readonly number[]): Tensor {
  return bind(V.flipP, [x], { axes });
}
export function gather(x: Tensor, idx: Tensor, axis: number): Tensor {
  return bind(V.gatherP, [x, idx], { axis });
}
export function scatterAdd(src: Tensor, idx: Tensor, axis: number, shape: readonly number[]): Tensor {
  return bind(V.scatterAddP, [src, idx], { axis, shape });
}
export function sumAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(R.sumP, [x], { axes });
}
export function prodAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(R.prodP, [x], { axes });
}
export function maxAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(R.maxP, [x], { axes });
}
export function minAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(R.minP, [x], { axes });
}
export function cumsumAxis(x: Tensor, axis: number, reverse: boolean): Tensor {
  return bind(R.cumsumP, [x], { axis, reverse });
}
export function biasAct(act: Activation, x: Tensor, b: Tensor | null): Tensor {
  return bind(E.biasActP, b === null ? [x] : [x, b], { act });
}
export function actGrad(act: Activation, y: Tensor, ct: Tensor): Tensor {
  return bind(E.actGradP, [y, ct], { act });
}
/** Fused softmax (log = false) or log-softmax (log = true) of a float tensor along `axis` (rank >= 1). */
export function softmaxAxis(x: Tensor, axis: number, log: boolean): Tensor {
  return bind(log ? R.logSoftmaxP : R.softmaxP, [x], { axis });
}
/** The fused VJP of softmaxAxis: y its output, ct the cotangent (see Backend.softmaxBackward). */
export function softmaxBackward(y: Tensor, ct: Tensor, axis: number, log: boolean): Tensor {
  return bind(log ? R.logSoftmaxBackwardP : R.softmaxBackwardP, [y, ct], { axis });
}
export function castTo(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? x : bind(E.castP, [x], { dtype });
}
export function dot(a: Tensor, b: Tensor): Tensor {
  return bind(C.dotP, [a, b], null);
}
export function conv2d(x: Tensor, w: Tensor, p: C.ConvParams): Tensor {
  return bind(C.conv2dP, [x, w], p);
}
export function conv2dBiasAct(
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  act: Activation | null,
  p: C.ConvParams,
): Tensor {
  return bind(C.conv2dBiasActP, b === null ? [x, w] : [x, w, b], { ...p, act });
}
export function conv2dBackInput(dy: Tensor, w: Tensor, p: Conv2dParams, xShape: readonly number[]): Tensor {
  return bind(C.conv2dBackInputP, [dy, w], { ...convOnly(p), outShape: xShape });
}
export function conv2dBackWeight(x: Tensor, dy: Tensor, p: Conv2dParams, wShape: readonly number[]): Tensor {
  return bind(C.conv2dBackWeightP, [x, dy], { ...convOnly(p), outShape: wShape });
}
function convOnly(p: Conv2dParams): Conv2dParams {
  return { stride: p.stride, padding: p.padding, dilation: p.dilation, groups: p.groups };
}
export function maxPool2d(x: Tensor, p: C.PoolParams): Tensor {
  return bind(C.maxPool2dP, [x], p);
}
export function maxPool2dArgmax(x: Tensor, p: Pool2dParams & { outShape: readonly number[] }): Tensor {
  return bind(C.maxPool2dArgmaxP, [x], p);
}
/** The VJP of maxPool2d at x applied to dy (dy's shape is p.outShape); the result has x's shape. */
export function maxPool2dBackward(x: Tensor, dy: Tensor, p: C.PoolParams): Tensor {
  return bind(C.maxPool2dBackwardP, [x, dy], poolOnly(p));
}
function poolOnly(p: C.PoolParams): C.PoolParams {
  return { kernel: p.kernel, stride: p.stride, padding: p.padding, outShape: p.outShape };
}
export function avgPool2d(x: Tensor, p: C.AvgPoolParams): Tensor {
  return bind(C.avgPool2dP, [x], p);
}
export function avgPool2dBackward(dy: Tensor, p: C.AvgPoolParams): Tensor {
  return bind(C.avgPool2dBackwardP, [dy], p);
}

/** A tangent as a tensor, instantiating a symbolic zero. */
export function instantiate(t: MaybeZero): Tensor {
  return isZero(t) ? zeros(t.shape, { dtype: t.dtype }) : t;
}
