/**
 * Reduction primitives over a set of axes (the output drops them; `keepdim` is a reshape in the ops layer),
 * argmax/argmin along one axis, and cumulative sum. *
 * Each primitive's binder (JAX's lax) is declared here too. Rules use only binders and Tensor methods; a method
 * delegates to src/ops, which binds these primitives: the Tensor-facade loop, closed at call time only (see
 * docs/architecture.md, "Layers").
 */
import { isFloat } from "../dtype.ts";
import type { ReduceOp } from "../backend/backend.ts";
import type { Aval, Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll, shiftAxes } from "./batching.ts";
import { where } from "./elementwise.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";
import { broadcast, reshape } from "./movement.ts";
import { linear, rule, unaryRule, zeroDerivative } from "./rules.ts";

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
  return broadcast(reshape(r, keptShape(inShape, axes)), inShape);
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
    // reductions: axes shift past the batch axis
    batch: batchAll<AxesParams>((p) => ({ axes: shiftAxes(p.axes) })),
    derivative,
    atKink,
  };
}

// d sum(x) = sum(dx); its transpose broadcasts the cotangent back.
export const sumP = reduction(
  "sum",
  linear<AxesParams>((ct, _x, _o, p, _n, avals) => [expandBack(ct, avals[0].shape, p.axes)]),
);

/**
 * d prod(x) = sum_i (prod_{j != i} x_j) dx_i. The product of the others is out / x_i where x_i != 0; with one
 * zero in the reduced group it is the product of the non-zeros at that position (and 0 elsewhere); with two or
 * more zeros it is 0 everywhere.
 */
function prodOthers(x: Tensor, out: Tensor, axes: readonly number[]): Tensor {
  const isz = x.eq(0);
  const nz = expandBack(sumAxes(isz.to("int32"), axes), x.shape, axes);
  const safe = x.maskedFill(isz, 1);
  const prodNz = expandBack(prodAxes(safe, axes), x.shape, axes);
  const outB = expandBack(out, x.shape, axes);
  return where(nz.eq(0), outB.div(safe), prodNz.maskedFill(isz.logicalAnd(nz.eq(1)).logicalNot(), 0));
}
export const prodP = reduction(
  "prod",
  unaryRule<AxesParams>(
    (x, t, out, p) => sumAxes(t.mul(prodOthers(x, out, p.axes)), p.axes),
    (ct, [x], out, p) => [expandBack(ct, x!.shape, p.axes).mul(prodOthers(x!, out!, p.axes))],
    { saveOutput: true },
  ),
);

/**
 * d max(x) = the mean of dx over the positions attaining the max (ties share equally, as JAX); the kink check
 * reports ties.
 */
function argmaxWeights(x: Tensor, out: Tensor, axes: readonly number[]): Tensor {
  const mask = x.eq(expandBack(out, x.shape, axes)).to(x.dtype);
  return mask.div(expandBack(sumAxes(mask, axes), x.shape, axes));
}
function extremum(op: "max" | "min"): Primitive<AxesParams> {
  return reduction(
    op,
    unaryRule<AxesParams>(
      (x, t, out, p) => sumAxes(t.mul(argmaxWeights(x, out, p.axes)), p.axes),
      (ct, [x], out, p) => [expandBack(ct, x!.shape, p.axes).mul(argmaxWeights(x!, out!, p.axes))],
      { saveOutput: true },
    ),
    ([x], out, p) =>
      (sumAxes(x.eq(expandBack(out, x.shape, p.axes)).to("int32"), p.axes)
        .max()
        .item() as number) > 1,
  );
}
// at ties the rule above shares the gradient equally, so the kink report must say so (not "0")
const TIE_SHARE = "1/k to each of the k tied entries: at a tie the gradient is shared equally";
export const maxP: Primitive<AxesParams> = { ...extremum("max"), kinkDerivative: TIE_SHARE };
export const minP: Primitive<AxesParams> = { ...extremum("min"), kinkDerivative: TIE_SHARE };

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
  batch: batchAll<ArgParams>((p) => ({ op: p.op, axis: p.axis + 1 })),
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
  batch: batchAll<CumsumParams>((p) => ({ axis: p.axis + 1, reverse: p.reverse })),
  derivative: linear<CumsumParams>((ct, _x, _o, p) => [cumsumAxis(ct, p.axis, !p.reverse)]),
};

export { Zero };

export interface SoftmaxParams {
  /** The axis the rows run along (non-negative, < rank; the ops layer makes a 0-d input [1]). */
  readonly axis: number;
}

/** sum(v, axis) broadcast back over the axis (sum with keepdim, then expanded to v's shape). */
function rowSum(v: Tensor, axis: number): Tensor {
  return expandBack(sumAxes(v, [axis]), v.shape, [axis]);
}

function checkFloatAxis(name: string, x: Aval, p: SoftmaxParams): void {
  if (!isFloat(x.dtype)) {
    throw new DTypeError(`${name}: expected a float tensor, got ${x.dtype}`);
  }
  if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= x.shape.length) {
    throw new RangeError(`${name}: axis ${p.axis} is out of range for shape [${x.shape.join(", ")}]`);
  }
}

function softmaxFamily(log: boolean): Primitive<SoftmaxParams> {
  const name = log ? "logSoftmax" : "softmax";
  return {
    name,
    abstract([x], p) {
      checkFloatAxis(name, x, p);
      return x;
    },
    impl([x], p, out) {
      const o = allocOut(out);
      getBackend().softmax(viewOf(x), p.axis, log, o._data!);
      return o;
    },
    // Both rules read only the output y; the VJP is the fused backward primitive below, whose own rules are
    // ops again, so derivatives nest to any order.
    batch: batchAll<SoftmaxParams>((p) => ({ axis: p.axis + 1 })),
    derivative: log
      ? // y = x - logsumexp(x): dy = dx - sum(softmax(x) dx) with softmax(x) = exp(y); the transpose is
        // ct - exp(y) sum(ct).
        unaryRule<SoftmaxParams>(
          (_x, t, y, p) => t.sub(rowSum(y.exp().mul(t), p.axis)),
          (ct, _x, y, p) => [softmaxBackward(y!, ct, p.axis, true)],
          { saveInputs: false, saveOutput: true },
        )
      : // s = softmax(x): ds = s (dx - sum(s dx)), a symmetric linear map: the JVP and the VJP are the same
        // fused map.
        unaryRule<SoftmaxParams>(
          (_x, t, s, p) => softmaxBackward(s, t, p.axis, false),
          (ct, _x, s, p) => [softmaxBackward(s!, ct, p.axis, false)],
          { saveInputs: false, saveOutput: true },
        ),
  };
}

/** Fused log-softmax along one axis (one backend kernel: max, sum of exp, write). */
export const logSoftmaxP = softmaxFamily(true);
/** Fused softmax along one axis (the same kernel). */
export const softmaxP = softmaxFamily(false);

/**
 * The VJP maps of the two, fused (one kernel, Backend.softmaxBackward), as primitives of (y, c) with y the
 * forward output and c the cotangent; S(v) = sum(v, axis) broadcast back:
 *   log:      B(y, c) = c - e S(c),  e = exp(y)
 *   softmax:  B(s, c) = s (c - S(c s))
 * Both are linear in c, with B(y, tc) as the c-derivative. The y-derivatives and transposes (S is
 * self-adjoint: <u, S(v)> = <S(u), v>):
 *   log:      dB = B(y, tc) - e ty S(c);            VJP: y <- -e u S(c),  c <- u - S(e u)
 *   softmax:  dB = B(s, tc) + ts (c - S(c s)) - s S(c ts);
 *             VJP: s <- u (c - S(c s)) - c S(u s),  c <- B(s, u)  (the c-map is symmetric)
 */
function softmaxBackwardFamily(log: boolean): Primitive<SoftmaxParams> {
  const name = log ? "logSoftmaxBackward" : "softmaxBackward";
  const B = (y: Tensor, c: Tensor, axis: number) => softmaxBackward(y, c, axis, log);
  return {
    name,
    abstract([y, c], p) {
      checkFloatAxis(name, y, p);
      if (c.dtype !== y.dtype) {
        throw new DTypeError(`${name}: cotangent dtype ${c.dtype} differs from the output's ${y.dtype}`);
      }
      if (c.shape.length !== y.shape.length || c.shape.some((d, i) => d !== y.shape[i])) {
        throw new ShapeError(
          `${name}: cotangent shape [${c.shape.join(", ")}] differs from the output's [${y.shape.join(", ")}]`,
        );
      }
      return y;
    },
    impl([y, c], p, out) {
      const o = allocOut(out);
      getBackend().softmaxBackward(viewOf(y), viewOf(c), p.axis, log, o._data!);
      return o;
    },
    batch: batchAll<SoftmaxParams>((p) => ({ axis: p.axis + 1 })),
    derivative: rule<SoftmaxParams>(
      ([y, c], [ty, tc], _out, p) => {
        const a = p.axis;
        const parts: Tensor[] = [];
        if (!isZero(tc)) parts.push(B(y, tc, a));
        if (!isZero(ty)) {
          if (log) parts.push(y.exp().mul(ty).mul(rowSum(c, a)).neg());
          else {
            parts.push(ty.mul(c.sub(rowSum(c.mul(y), a))));
            parts.push(y.mul(rowSum(c.mul(ty), a)).neg());
          }
        }
        return parts.length === 0 ? new Zero(y.shape, y.dtype) : parts.reduce((u, v) => u.add(v));
      },
      (u, [y, c], _out, p, needs) => {
        const a = p.axis;
        let dy: Tensor | Zero = new Zero(y!.shape, y!.dtype);
        let dc: Tensor | Zero = new Zero(c!.shape, c!.dtype);
        if (log) {
          const e = y!.exp();
          if (needs[0]) dy = e.mul(u).mul(rowSum(c!, a)).neg();
          if (needs[1]) dc = u.sub(rowSum(e.mul(u), a));
        } else {
          if (needs[0]) dy = u.mul(c!.sub(rowSum(c!.mul(y!), a))).sub(c!.mul(rowSum(u.mul(y!), a)));
          if (needs[1]) dc = B(y!, u, a);
        }
        return [dy, dc];
      },
    ),
  };
}

export const logSoftmaxBackwardP = softmaxBackwardFamily(true);
export const softmaxBackwardP = softmaxBackwardFamily(false);

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
// biome-ignore format: rows read better than one entry per line
export const reducePrimitives = {
  sum: sumP, prod: prodP, max: maxP, min: minP, argReduce: argReduceP, cumsum: cumsumP, softmax: softmaxP,
  logSoftmax: logSoftmaxP, softmaxBackward: softmaxBackwardP, logSoftmaxBackward: logSoftmaxBackwardP,
};

// Binders (JAX's lax): bind one primitive with exact params. Rules and the ops layer use these.
export function sumAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(sumP, [x], { axes });
}
export function prodAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(prodP, [x], { axes });
}
export function maxAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(maxP, [x], { axes });
}
export function minAxes(x: Tensor, axes: readonly number[]): Tensor {
  return bind(minP, [x], { axes });
}
export function cumsumAxis(x: Tensor, axis: number, reverse: boolean): Tensor {
  return bind(cumsumP, [x], { axis, reverse });
}
/** Fused softmax (log = false) or log-softmax (log = true) of a float tensor along `axis` (rank >= 1). */
export function softmaxAxis(x: Tensor, axis: number, log: boolean): Tensor {
  return bind(log ? logSoftmaxP : softmaxP, [x], { axis });
}
/** The fused VJP of softmaxAxis: y its output, ct the cotangent (see Backend.softmaxBackward). */
export function softmaxBackward(y: Tensor, ct: Tensor, axis: number, log: boolean): Tensor {
  return bind(log ? logSoftmaxBackwardP : softmaxBackwardP, [y, ct], { axis });
}
