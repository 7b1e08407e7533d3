/**
 * Reduction primitives over a set of axes (the output drops them; `keepdim` is a reshape in the ops layer),
 * argmax/argmin along one axis, and cumulative sum.
 */
import type { ReduceOp } from "../backend/backend.ts";
import type { Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { DTypeError } from "../errors.ts";
import * as M from "../ops/math.ts";
import * as X from "../ops/lax.ts";
import * as S from "../ops/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";
import { linear, rule, zeroDerivative } from "./rules.ts";

export interface AxesParams {
  /** Sorted, unique, non-negative axes. */
  readonly axes: readonly number[];
}

function reducedShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.filter((_, i) => !axes.includes(i));
}

/** The shape with reduced axes kept as size 1, for broadcasting a reduced value back. */
export function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Broadcast a reduced tensor back to the input shape. */
function expandBack(r: Tensor, inShape: readonly number[], axes: readonly number[]): Tensor {
  return S.broadcastTo(S.reshape(r, keptShape(inShape, axes)), inShape);
}

function reduction(
  op: ReduceOp,
  derivative: Primitive<AxesParams>["derivative"],
  atKink?: Primitive<AxesParams>["atKink"],
): Primitive<AxesParams> {
  return {
    name: op,
    abstract([x], p) {
      if (x.dtype === "bool") throw new DTypeError(`${op}: cannot reduce a bool tensor (cast it first)`);
      return { shape: reducedShape(x.shape, p.axes), dtype: x.dtype };
    },
    impl([x], p, out) {
      const o = allocOut(out);
      getBackend().reduce(op, viewOf(x), p.axes, o._data!);
      return o;
    },
    derivative,
    atKink,
  };
}

// d sum(x) = sum(dx); its transpose broadcasts the cotangent back.
export const sumP = reduction(
  "sum",
  linear<AxesParams>(
    ([t], p) => X.sumAxes(t as Tensor, p.axes),
    (ct, _x, _o, p, _n, avals) => [expandBack(ct, avals[0].shape, p.axes)],
  ),
);

/**
 * d prod(x) = sum_i (prod_{j != i} x_j) dx_i. The product of the others is out / x_i where x_i != 0; with one
 * zero in the reduced group it is the product of the non-zeros at that position (and 0 elsewhere); with two or
 * more zeros it is 0 everywhere.
 */
function prodOthers(x: Tensor, out: Tensor, axes: readonly number[]): Tensor {
  const isz = M.eq(x, 0);
  const nz = expandBack(X.sumAxes(M.cast(isz, "int32"), axes), x.shape, axes);
  const safe = M.where(isz, 1, x);
  const prodNz = expandBack(X.prodAxes(safe, axes), x.shape, axes);
  const outB = expandBack(out, x.shape, axes);
  return M.where(M.eq(nz, 0), M.div(outB, safe), M.where(M.logicalAnd(isz, M.eq(nz, 1)), prodNz, 0));
}
export const prodP = reduction(
  "prod",
  rule<AxesParams>(
    ([x], [t], out, p) => X.sumAxes(M.mul(t as Tensor, prodOthers(x, out, p.axes)), p.axes),
    (ct, [x], out, p) => [M.mul(expandBack(ct, x!.shape, p.axes), prodOthers(x!, out!, p.axes))],
    { saveOutput: true },
  ),
);

/**
 * d max(x) = the mean of dx over the positions attaining the max (ties share equally, as JAX); the kink check
 * reports ties.
 */
function argmaxWeights(x: Tensor, out: Tensor, axes: readonly number[]): Tensor {
  const mask = M.cast(M.eq(x, expandBack(out, x.shape, axes)), x.dtype);
  return M.div(mask, expandBack(X.sumAxes(mask, axes), x.shape, axes));
}
function extremum(op: "max" | "min"): Primitive<AxesParams> {
  return reduction(
    op,
    rule<AxesParams>(
      ([x], [t], out, p) => X.sumAxes(M.mul(t as Tensor, argmaxWeights(x, out, p.axes)), p.axes),
      (ct, [x], out, p) => [M.mul(expandBack(ct, x!.shape, p.axes), argmaxWeights(x!, out!, p.axes))],
      { saveOutput: true },
    ),
    ([x], out, p) =>
      (X.sumAxes(M.cast(M.eq(x, expandBack(out, x.shape, p.axes)), "int32"), p.axes)
        .max()
        .item() as number) > 1,
  );
}
export const maxP = extremum("max");
export const minP = extremum("min");

export interface ArgParams {
  readonly op: "argmax" | "argmin";
  readonly axis: number;
}

/** Index of the first max/min along one axis (int32, so a constant under differentiation). */
export const argReduceP: Primitive<ArgParams> = {
  name: "argReduce",
  abstract([x], p) {
    if (x.dtype === "bool") throw new DTypeError(`${p.op}: cannot reduce a bool tensor`);
    return { shape: reducedShape(x.shape, [p.axis]), dtype: "int32" };
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().argReduce(p.op, viewOf(x), p.axis, o._data!);
    return o;
  },
  derivative: zeroDerivative,
};

export interface CumsumParams {
  readonly axis: number;
  readonly reverse: boolean;
}

// cumsum is linear; its transpose is the cumulative sum in the opposite direction.
export const cumsumP: Primitive<CumsumParams> = {
  name: "cumsum",
  abstract([x], _p) {
    if (x.dtype === "bool") throw new DTypeError("cumsum: cannot sum a bool tensor");
    return x;
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().cumsum(viewOf(x), p.axis, p.reverse, o._data!);
    return o;
  },
  derivative: linear<CumsumParams>(
    ([t], p) => (isZero(t) ? t : X.cumsumAxis(t, p.axis, p.reverse)),
    (ct, _x, _o, p) => [X.cumsumAxis(ct, p.axis, !p.reverse)],
  ),
};

export { Zero };

export interface SoftmaxParams {
  /** The axis the rows run along (non-negative, < rank; the ops layer makes a 0-d input [1]). */
  readonly axis: number;
}

/** sum(v, axis) broadcast back over the axis (sum with keepdim, then expanded to v's shape). */
function rowSum(v: Tensor, axis: number): Tensor {
  return expandBack(X.sumAxes(v, [axis]), v.shape, [axis]);
}

function softmaxFamily(log: boolean): Primitive<SoftmaxParams> {
  const name = log ? "logSoftmax" : "softmax";
  return {
    name,
    abstract([x], p) {
      if (x.dtype !== "float32" && x.dtype !== "float64") {
        throw new DTypeError(`${name}: expected a float32 or float64 tensor, got ${x.dtype}`);
      }
      if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= x.shape.length) {
        throw new RangeError(`${name}: axis ${p.axis} is out of range for shape [${x.shape.join(", ")}]`);
      }
      return x;
    },
    impl([x], p, out) {
      const o = allocOut(out);
      getBackend().softmax(viewOf(x), p.axis, log, o._data!);
      return o;
    },
    // Both rules read only the output y and are written with ops, so they differentiate again to any order.
    derivative: log
      ? // y = x - logsumexp(x): dy = dx - sum(softmax(x) dx), softmax(x) = exp(y); the transpose is
        // ct - exp(y) sum(ct).
        rule<SoftmaxParams>(
          (_x, [t], y, p) => M.sub(t as Tensor, rowSum(M.mul(M.exp(y), t as Tensor), p.axis)),
          (ct, _x, y, p) => [M.sub(ct, M.mul(M.exp(y!), rowSum(ct, p.axis)))],
          { saveInputs: false, saveOutput: true },
        )
      : // s = softmax(x): ds = s (dx - sum(s dx)), a symmetric linear map, so the VJP has the same form.
        rule<SoftmaxParams>(
          (_x, [t], s, p) => M.mul(s, M.sub(t as Tensor, rowSum(M.mul(s, t as Tensor), p.axis))),
          (ct, _x, s, p) => [M.mul(s!, M.sub(ct, rowSum(M.mul(ct, s!), p.axis)))],
          { saveInputs: false, saveOutput: true },
        ),
  };
}

/** Fused log-softmax along one axis (one backend kernel: max, sum of exp, write). */
export const logSoftmaxP = softmaxFamily(true);
/** Fused softmax along one axis (the same kernel). */
export const softmaxP = softmaxFamily(false);
