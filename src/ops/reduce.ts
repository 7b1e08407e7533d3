/**
 * Reductions with `dim` (one or several, negative allowed, default all) and `keepdim`; mean, var, std, norm,
 * logsumexp (numerically stable: the max is subtracted, as a constant, before exp); softmax and logSoftmax
 * (fused primitives); argmax/argmin; cumsum; any/all.
 */
import { castFloat32 } from "../amp.ts";
import { bind } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import * as R from "../prims/reduce.ts";
import { keptShape } from "../prims/reduce.ts";
import { fmtShape, normAxes, normAxis, sizeOf } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import * as X from "../prims/lax.ts";
import {
  abs,
  cast,
  div,
  eq,
  exp,
  log,
  logicalNot,
  logicalOr,
  mul,
  ne,
  pow,
  sqrt,
  square,
  sub,
  where,
} from "./math.ts";
import { detach } from "./shape.ts";

type Dims = number | readonly number[] | undefined;

function finish(r: Tensor, x: Tensor, axes: readonly number[], keepdim: boolean): Tensor {
  return keepdim ? X.reshape(r, keptShape(x.shape, axes)) : r;
}

function reduceWith(op: "sum" | "prod" | "max" | "min", x: Tensor, dim: Dims, keepdim: boolean): Tensor {
  const axes = normAxes(op, dim, x.ndim);
  let t = x.dtype === "bool" ? cast(x, "int32") : x;
  if ((op === "max" || op === "min") && axes.some((a) => x.shape[a] === 0)) {
    throw new ShapeError(`${op}: cannot reduce over an empty dim of shape ${fmtShape(x.shape)}`);
  }
  if (axes.length === 0) return t;
  const prim = op === "sum" ? R.sumP : op === "prod" ? R.prodP : op === "max" ? R.maxP : R.minP;
  t = bind(prim, [t], { axes });
  return finish(t, x, axes, keepdim);
}

/** Sum over `dim` (all dims by default). */
export function sum(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduceWith("sum", x, dim, keepdim);
}
/** Product over `dim`. */
export function prod(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduceWith("prod", x, dim, keepdim);
}
/** Maximum over `dim` (values only; use argmax for indices). */
export function max(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduceWith("max", x, dim, keepdim);
}
/** Minimum over `dim`. */
export function min(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  return reduceWith("min", x, dim, keepdim);
}

function countOf(x: Tensor, dim: Dims): number {
  return sizeOf(normAxes("mean", dim, x.ndim).map((a) => x.shape[a]));
}

/** Arithmetic mean over `dim` (integers give float32). */
export function mean(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const t = isFloat(x.dtype) ? x : cast(x, "float32");
  return div(sum(t, dim, keepdim), countOf(x, dim));
}

/** Variance with Bessel's `correction` (1 by default, as PyTorch). */
export function variance(x: Tensor, dim?: Dims, keepdim = false, correction = 1): Tensor {
  const t = isFloat(x.dtype) ? x : cast(x, "float32");
  const mu = mean(t, dim, true);
  const n = countOf(x, dim);
  return div(sum(square(sub(t, mu)), dim, keepdim), Math.max(0, n - correction));
}

/** Standard deviation. */
export function std(x: Tensor, dim?: Dims, keepdim = false, correction = 1): Tensor {
  return sqrt(variance(x, dim, keepdim, correction));
}

/** log(sum(exp(x))) over `dim`, stable: m + log(sum(exp(x - m))) with m = max(x) held constant. */
export function logsumexp(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  const axes = normAxes("logsumexp", dim, x.ndim);
  const t = isFloat(x.dtype) ? x : cast(x, "float32");
  const m = detach(max(t, axes, true));
  // an infinite or NaN max must not turn exp(x - m) into NaN; use 0 as the shift there
  const safeM = where(logicalOr(ne(m, m), eq(abs(m), Number.POSITIVE_INFINITY)), 0, m);
  const r = log(sum(exp(sub(t, safeM)), axes, true)).add(safeM);
  return keepdim
    ? r
    : X.reshape(
        r,
        x.shape.filter((_, i) => !axes.includes(i)),
      );
}

/** p-norm over `dim` (p = 2 default; Infinity gives the max-abs norm). */
export function norm(x: Tensor, p = 2, dim?: Dims, keepdim = false): Tensor {
  if (p === Number.POSITIVE_INFINITY) return max(abs(x), dim, keepdim);
  if (p === 1) return sum(abs(x), dim, keepdim);
  if (p === 2) return sqrt(sum(square(x), dim, keepdim));
  return pow(sum(pow(abs(x), p), dim, keepdim), 1 / p);
}

/**
 * The fused softmax / log-softmax primitive along `dim` (one backend kernel per call; see Backend.softmax for
 * NaN, infinite and empty rows). Integer and bool inputs compute in float32, like logsumexp; a 0-d tensor is a
 * row of one.
 */
function softmaxOp(op: string, x: Tensor, dim: number, log: boolean): Tensor {
  const d = normAxis(op, dim, x.ndim);
  // autocast runs softmax in float32 (src/amp.ts)
  const t = isFloat(x.dtype) ? castFloat32(x) : cast(x, "float32");
  if (t.ndim === 0) return X.reshape(X.softmaxAxis(X.reshape(t, [1]), 0, log), []);
  return X.softmaxAxis(t, d, log);
}

/** softmax along `dim`: exp(x - max) / sum(exp(x - max)), fused into one kernel. */
export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxOp("softmax", x, dim, false);
}

/** log(softmax(x)) along `dim`: (x - max) - log(sum(exp(x - max))), fused into one kernel. */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxOp("logSoftmax", x, dim, true);
}

function argReduce(op: "argmax" | "argmin", x: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  if (x.size === 0)
    throw new ShapeError(`${op}: cannot reduce an empty tensor of shape ${fmtShape(x.shape)}`);
  const t = x.dtype === "bool" ? cast(x, "int32") : x;
  if (dim === undefined) {
    const r = bind(R.argReduceP, [X.reshape(t, [x.size])], { op, axis: 0 });
    return keepdim
      ? X.reshape(
          r,
          x.shape.map(() => 1),
        )
      : r;
  }
  const axis = normAxis(op, dim, x.ndim);
  if (x.ndim === 0) return cast(mul(x, 0), "int32");
  const r = bind(R.argReduceP, [t], { op, axis });
  return finish(r, x, [axis], keepdim);
}
/** Index of the first maximum (flattened if no dim). */
export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argReduce("argmax", x, dim, keepdim);
}
/** Index of the first minimum. */
export function argmin(x: Tensor, dim?: number, keepdim = false): Tensor {
  return argReduce("argmin", x, dim, keepdim);
}

/** Inclusive cumulative sum along `dim`. */
export function cumsum(x: Tensor, dim: number): Tensor {
  const axis = normAxis("cumsum", dim, x.ndim);
  const t = x.dtype === "bool" ? cast(x, "int32") : x;
  return x.ndim === 0 ? t : X.cumsumAxis(t, axis, false);
}

/** True if any element is true (non-zero). */
export function any(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  if (x.size === 0) return cast(sum(cast(ne(x, 0), "int32"), dim, keepdim), "bool");
  return cast(max(cast(ne(x, 0), "int32"), dim, keepdim), "bool");
}
/** True if all elements are true (non-zero). */
export function all(x: Tensor, dim?: Dims, keepdim = false): Tensor {
  if (x.size === 0) return logicalNot(any(x, dim, keepdim));
  return cast(min(cast(ne(x, 0), "int32"), dim, keepdim), "bool");
}
