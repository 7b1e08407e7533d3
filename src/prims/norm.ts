/**
 * Layer normalisation over the last axis as two fused primitives (one backend kernel each, Backend.layerNorm /
 * layerNormBackward), replacing the ~10 forward and ~20 backward kernels of the composition
 * (x - mean) / sqrt(var + eps). The affine part (weight, bias) stays ops in src/ops/nn.ts `layerNorm`.
 *
 * Per row along the last axis, with N its length, mean(v) the row mean broadcast back, and
 *   xhat = N(x) = (x - mean(x)) r,   r = (mean((x - mean(x))^2) + eps)^(-1/2):
 * the Jacobian J = r (I - 1 1^T / N - xhat xhat^T / N) is symmetric, so the JVP and the VJP are one map,
 *   B(x, g) = J g = r (g - mean(g) - xhat mean(xhat g))    (layerNormBackward).
 * B is linear in g; its x-derivative, with ty = B(x, tx), m = mean(xhat g) and dr = -r^2 mean(xhat tx):
 *   dB = -r mean(xhat tx) B(x, g) - r (ty m + xhat mean(ty g)),
 * and its transpose applied to u (J symmetric moves J onto u and g):
 *   x <- -r mean(u B(x, g)) xhat - r m B(x, u) - r mean(u xhat) B(x, g),   g <- B(x, u).
 * Those rules are ops again (r as a composition, xhat and B as these primitives), so derivatives nest to any order.
 */
import type { Aval, Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll } from "./batching.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";
import { rule, unaryRule } from "./rules.ts";

export interface LayerNormParams {
  /** Added to the variance before the square root (> 0 keeps a constant row finite). */
  readonly eps: number;
}

function checkInput(name: string, x: Aval): void {
  if (!isFloat(x.dtype)) throw new DTypeError(`${name}: expected a float tensor, got ${x.dtype}`);
  if (x.shape.length === 0)
    throw new ShapeError(`${name}: expected rank >= 1 (rows along the last axis), got a 0-d tensor`);
}

/** r = (var + eps)^(-1/2) of each row of x, kept as a trailing axis of 1 (a composition: differentiable). */
function rstdOf(x: Tensor, eps: number): Tensor {
  return x.sub(x.mean(-1, true)).square().mean(-1, true).add(eps).rsqrt();
}

const rowMean = (v: Tensor) => v.mean(-1, true);

/** (x - mean) / sqrt(var + eps) per row along the last axis (Backend.layerNorm). */
export const layerNormP: Primitive<LayerNormParams> = {
  name: "layerNorm",
  abstract([x]) {
    checkInput("layerNorm", x);
    return x;
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().layerNorm(viewOf(x), p.eps, o._data!);
    return o;
  },
  batch: batchAll<LayerNormParams>(),
  // J symmetric: the JVP and the VJP are both B(x, .)
  derivative: unaryRule<LayerNormParams>(
    (x, t, _y, p) => layerNormBackward(x, t, p.eps),
    (ct, [x], _y, p) => [layerNormBackward(x!, ct, p.eps)],
    { saveInputs: true, saveOutput: false },
  ),
};

/** B(x, g) = r (g - mean(g) - xhat mean(xhat g)), the VJP (and JVP) of layerNorm (Backend.layerNormBackward). */
export const layerNormBackwardP: Primitive<LayerNormParams> = {
  name: "layerNormBackward",
  abstract([x, g]) {
    checkInput("layerNormBackward", x);
    if (g.dtype !== x.dtype) {
      throw new DTypeError(
        `layerNormBackward: cotangent dtype ${g.dtype} differs from the input's ${x.dtype}`,
      );
    }
    if (g.shape.length !== x.shape.length || g.shape.some((d, i) => d !== x.shape[i])) {
      throw new ShapeError(
        `layerNormBackward: cotangent shape ${fmtShape(g.shape)} differs from the input's ${fmtShape(x.shape)}`,
      );
    }
    return x;
  },
  impl([x, g], p, out) {
    const o = allocOut(out);
    getBackend().layerNormBackward(viewOf(x), viewOf(g), p.eps, o._data!);
    return o;
  },
  batch: batchAll<LayerNormParams>(),
  derivative: rule<LayerNormParams>(
    ([x, g], [tx, tg], _out, p) => {
      const parts: Tensor[] = [];
      if (!isZero(tg)) parts.push(layerNormBackward(x, tg, p.eps));
      if (!isZero(tx)) {
        const r = rstdOf(x, p.eps);
        const xhat = layerNorm(x, p.eps);
        const ty = layerNormBackward(x, tx, p.eps);
        const b = layerNormBackward(x, g, p.eps);
        const m = rowMean(xhat.mul(g));
        parts.push(
          r
            .mul(rowMean(xhat.mul(tx)))
            .mul(b)
            .add(r.mul(ty.mul(m).add(xhat.mul(rowMean(ty.mul(g))))))
            .neg(),
        );
      }
      return parts.length === 0 ? new Zero(x.shape, x.dtype) : parts.reduce((u, v) => u.add(v));
    },
    (u, [x, g], _out, p, needs, avals) => {
      let dx: Tensor | Zero = new Zero(avals[0].shape, avals[0].dtype);
      let dg: Tensor | Zero = new Zero(avals[1].shape, avals[1].dtype);
      if (needs[0]) {
        const r = rstdOf(x!, p.eps);
        const xhat = layerNorm(x!, p.eps);
        const b = layerNormBackward(x!, g!, p.eps);
        const m = rowMean(xhat.mul(g!));
        dx = xhat
          .mul(rowMean(u.mul(b)))
          .add(layerNormBackward(x!, u, p.eps).mul(m))
          .add(b.mul(rowMean(u.mul(xhat))))
          .mul(r)
          .neg();
      }
      if (needs[1]) dg = layerNormBackward(x!, u, p.eps);
      return [dx, dg];
    },
  ),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
export const normPrimitives = { layerNorm: layerNormP, layerNormBackward: layerNormBackwardP };

// Binders (JAX's lax).
/** (x - mean) / sqrt(var + eps) along the last axis of a float tensor of rank >= 1. */
export function layerNorm(x: Tensor, eps: number): Tensor {
  return bind(layerNormP, [x], { eps });
}
/** The fused VJP of layerNorm at x applied to g (x's shape). */
export function layerNormBackward(x: Tensor, g: Tensor, eps: number): Tensor {
  return bind(layerNormBackwardP, [x, g], { eps });
}
