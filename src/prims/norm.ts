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
 *
 * LayerNorm's affine form y = xhat w + b (w, b: [N]) has three more primitives, so that eager training runs one
 * kernel per pass rather than the normalisation plus separate multiplies, adds and reductions, each over a
 * full-size temporary:
 *   A(x, w, b) = xhat w + b                                    (layerNormAffine)
 *   S(x, w, g) = B(x, g w)                                     (layerNormScaledBackward: A's VJP in x)
 *   G(x, g)    = [sum_rows g xhat, sum_rows g]  ([2, N])       (layerNormAffineGrads: A's VJP in w and b)
 * with the rules
 *   dA = B(x, tx) w + xhat tw + tb;   A^T u = (S(x, w, u), G(x, u)[0], G(x, u)[1]);
 *   S  = B(x, v) at v = g w: B's own rules at (x, v), with tv = tg w + g tw and, back, g <- dv w, w <- sum_rows dv g;
 *   dG = [sum_rows (tg xhat + g B(x, tx)), sum_rows tg];   G^T [uw, ub] = (S(x, uw, g), xhat uw + ub),
 * the x part because sum_rows g uw (J tx) = (J (g uw)) . tx with J symmetric. Backends without the fused kernels
 * (Backend.layerNormAffine ..., optional) run the same values through layerNorm, binary and reduce.
 */
import type { Aval, Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll, toBatched } from "./batching.ts";
import type { View } from "../backend/backend.ts";
import { allocData, allocOut, getBackend, instantiate, viewOf } from "./impl.ts";
import { concat, reshape } from "./movement.ts";
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

/** A [N] tensor (w, b) broadcast along the rows of `shape` (stride 0 on every axis but the last). */
function rowsView(v: Tensor, shape: readonly number[]): View {
  const w = viewOf(v);
  return { ...w, shape: [...shape], strides: [...shape.slice(0, -1).map(() => 0), w.strides[0]] };
}

/** A contiguous view of `data` with `shape`. */
function dense(data: View["data"], shape: readonly number[]): View {
  const strides = shape.map(() => 1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  return { data, shape: [...shape], strides, offset: 0 };
}

/** Checks of the [N] vector operands (w, b) of the affine primitives against x's rows. */
function checkVector(op: string, name: string, x: Aval, v: Aval): void {
  if (v.dtype !== x.dtype)
    throw new DTypeError(`${op}: ${name} dtype ${v.dtype} differs from the input's ${x.dtype}`);
  const n = x.shape[x.shape.length - 1];
  if (v.shape.length !== 1 || v.shape[0] !== n) {
    throw new ShapeError(
      `${op}: ${name} must have shape [${n}] (the input's last axis), got ${fmtShape(v.shape)}`,
    );
  }
}

function checkSameAs(op: string, x: Aval, g: Aval): void {
  if (g.dtype !== x.dtype)
    throw new DTypeError(`${op}: cotangent dtype ${g.dtype} differs from the input's ${x.dtype}`);
  if (g.shape.length !== x.shape.length || g.shape.some((d, i) => d !== x.shape[i])) {
    throw new ShapeError(
      `${op}: cotangent shape ${fmtShape(g.shape)} differs from the input's ${fmtShape(x.shape)}`,
    );
  }
}

/** The leading axes of a tensor of rank nd (all but the last): the rows' axes. */
const rowAxes = (nd: number) => Array.from({ length: nd - 1 }, (_, i) => i);

/** A [N] vector batched along axis 0 ([size, N]) reshaped to broadcast against a batched [size, ..., N] of rank nd. */
function batchedVector(v: Tensor, nd: number): Tensor {
  return reshape(v, [v.shape[0], ...Array<number>(nd - 2).fill(1), v.shape[1]]);
}

/** xhat w + b per row along the last axis (Backend.layerNormAffine, else layerNorm, mul and add). */
export const layerNormAffineP: Primitive<LayerNormParams> = {
  name: "layerNormAffine",
  abstract([x, w, b]) {
    checkInput("layerNormAffine", x);
    checkVector("layerNormAffine", "weight", x, w);
    checkVector("layerNormAffine", "bias", x, b);
    return x;
  },
  impl([x, w, b], p, out) {
    const o = allocOut(out);
    const be = getBackend();
    if (be.layerNormAffine !== undefined) {
      be.layerNormAffine(viewOf(x), viewOf(w), viewOf(b), p.eps, o._data!);
      return o;
    }
    const t = allocData(x.dtype, x.shape, true);
    be.layerNorm(viewOf(x), p.eps, t);
    const u = allocData(x.dtype, x.shape, true);
    be.binary("mul", dense(t, x.shape), rowsView(w, x.shape), u);
    be.binary("add", dense(u, x.shape), rowsView(b, x.shape), o._data!);
    return o;
  },
  batch(args, batched, p, size, self) {
    const [x, w, b] = args;
    if (!batched[1] && !batched[2]) return bind(self, [toBatched(x, batched[0], size), w, b], p);
    const nd = (batched[0] ? x.ndim : x.ndim + 1) as number;
    const xhat = layerNorm(x, p.eps);
    return xhat
      .mul(batched[1] ? batchedVector(w, nd) : w)
      .add(batched[2] ? batchedVector(b, nd) : b)
      .expand([size, ...(batched[0] ? x.shape.slice(1) : x.shape)]);
  },
  derivative: rule<LayerNormParams>(
    ([x, w], [tx, tw, tb], _out, p) => {
      let d: Tensor | null = null;
      const add = (v: Tensor) => {
        d = d === null ? v : d.add(v);
      };
      if (!isZero(tx)) add(layerNormBackward(x, tx, p.eps).mul(w));
      if (!isZero(tw)) add(layerNorm(x, p.eps).mul(tw));
      if (!isZero(tb)) add(d === null ? (tb as Tensor).expand(x.shape) : (tb as Tensor));
      return d ?? new Zero(x.shape, x.dtype);
    },
    (ct, [x, w], _out, p, needs, avals) => {
      const dx = needs[0]
        ? layerNormScaledBackward(x!, w!, ct, p.eps)
        : new Zero(avals[0].shape, avals[0].dtype);
      if (!needs[1] && !needs[2])
        return [dx, new Zero(avals[1].shape, avals[1].dtype), new Zero(avals[2].shape, avals[2].dtype)];
      const gr = layerNormAffineGrads(x!, ct, p.eps);
      const n = avals[1].shape[0];
      return [dx, reshape(gr.narrow(0, 0, 1), [n]), reshape(gr.narrow(0, 1, 1), [n])];
    },
  ),
};

/** B(x, g w): layerNorm's VJP at x applied to g scaled by w (Backend.layerNormScaledBackward). */
export const layerNormScaledBackwardP: Primitive<LayerNormParams> = {
  name: "layerNormScaledBackward",
  abstract([x, w, g]) {
    checkInput("layerNormScaledBackward", x);
    checkVector("layerNormScaledBackward", "weight", x, w);
    checkSameAs("layerNormScaledBackward", x, g);
    return x;
  },
  impl([x, w, g], p, out) {
    const o = allocOut(out);
    const be = getBackend();
    if (be.layerNormScaledBackward !== undefined) {
      be.layerNormScaledBackward(viewOf(x), viewOf(w), viewOf(g), p.eps, o._data!);
      return o;
    }
    const v = allocData(x.dtype, x.shape, true);
    be.binary("mul", viewOf(g), rowsView(w, x.shape), v);
    be.layerNormBackward(viewOf(x), dense(v, x.shape), p.eps, o._data!);
    return o;
  },
  batch(args, batched, p, size, self) {
    const [x, w, g] = args;
    const xb = toBatched(x, batched[0], size);
    const gb = toBatched(g, batched[2], size);
    if (!batched[1]) return bind(self, [xb, w, gb], p);
    return layerNormBackward(xb, gb.mul(batchedVector(w, xb.ndim)), p.eps);
  },
  derivative: rule<LayerNormParams>(
    ([x, w, g], [tx, tw, tg], _out, p) => {
      const v = g.mul(w);
      let tv: Tensor | Zero = new Zero(x.shape, x.dtype);
      if (!isZero(tg)) tv = (tg as Tensor).mul(w);
      if (!isZero(tw)) tv = isZero(tv) ? g.mul(tw) : (tv as Tensor).add(g.mul(tw));
      return layerNormBackwardP.derivative.kind === "rule"
        ? layerNormBackwardP.derivative.jvp([x, v], [tx, tv], v, p, layerNormBackwardP)
        : new Zero(x.shape, x.dtype);
    },
    (u, [x, w, g], _out, p, needs, avals) => {
      const d = layerNormBackwardP.derivative;
      if (d.kind !== "rule") throw new Error("layerNormScaledBackward: layerNormBackward has no rule");
      const v = g!.mul(w!);
      const [dx, dv] = d.vjp(u, [x, v], null, p, [needs[0], needs[1] || needs[2]], [avals[0], avals[2]]);
      const dw =
        needs[1] && !isZero(dv)
          ? (dv as Tensor).mul(g!).sum(rowAxes(x!.ndim))
          : new Zero(avals[1].shape, avals[1].dtype);
      const dg = needs[2] && !isZero(dv) ? (dv as Tensor).mul(w!) : new Zero(avals[2].shape, avals[2].dtype);
      return [dx, dw, dg];
    },
  ),
};

/** [sum_rows g xhat, sum_rows g] ([2, N]): the VJP of the affine form in w and b (Backend.layerNormAffineGrads). */
export const layerNormAffineGradsP: Primitive<LayerNormParams> = {
  name: "layerNormAffineGrads",
  abstract([x, g]) {
    checkInput("layerNormAffineGrads", x);
    checkSameAs("layerNormAffineGrads", x, g);
    return { shape: [2, x.shape[x.shape.length - 1]], dtype: x.dtype };
  },
  impl([x, g], p, out) {
    const o = allocOut(out);
    const be = getBackend();
    if (be.layerNormAffineGrads !== undefined) {
      be.layerNormAffineGrads(viewOf(x), viewOf(g), p.eps, o._data!);
      return o;
    }
    const n = x.shape[x.ndim - 1];
    const axes = rowAxes(x.ndim);
    const t = allocData(x.dtype, x.shape, true);
    be.layerNorm(viewOf(x), p.eps, t);
    const u = allocData(x.dtype, x.shape, true);
    be.binary("mul", viewOf(g), dense(t, x.shape), u);
    const sw = allocData(x.dtype, [n], true);
    const sb = allocData(x.dtype, [n], true);
    be.reduce("sum", dense(u, x.shape), axes, sw);
    be.reduce("sum", viewOf(g), axes, sb);
    const od = o._data!;
    be.copy(dense(sw, [n]), { data: od, shape: [n], strides: [1], offset: 0 });
    be.copy(dense(sb, [n]), { data: od, shape: [n], strides: [1], offset: n });
    return o;
  },
  batch(args, batched, p, size) {
    const x = toBatched(args[0], batched[0], size);
    const g = toBatched(args[1], batched[1], size);
    const axes = rowAxes(x.ndim).slice(1);
    const sw = g.mul(layerNorm(x, p.eps)).sum(axes, true);
    const sb = g.sum(axes, true);
    const n = x.shape[x.ndim - 1];
    return concat([reshape(sw, [size, 1, n]), reshape(sb, [size, 1, n])], 1);
  },
  derivative: rule<LayerNormParams>(
    ([x, g], [tx, tg], _out, p) => {
      const axes = rowAxes(x.ndim);
      const n = x.shape[x.ndim - 1];
      let rw: Tensor | null = null;
      if (!isZero(tg)) rw = (tg as Tensor).mul(layerNorm(x, p.eps));
      if (!isZero(tx)) {
        const t = g.mul(layerNormBackward(x, tx as Tensor, p.eps));
        rw = rw === null ? t : rw.add(t);
      }
      const sw = reshape((rw as unknown as Tensor).sum(axes, true), [1, n]);
      const sb = isZero(tg)
        ? instantiate(new Zero([1, n], x.dtype))
        : reshape((tg as Tensor).sum(axes, true), [1, n]);
      return concat([sw, sb], 0);
    },
    (u, [x, g], _out, p, needs, avals) => {
      const n = avals[0].shape[avals[0].shape.length - 1];
      const uw = reshape(u.narrow(0, 0, 1), [n]);
      const ub = reshape(u.narrow(0, 1, 1), [n]);
      const dx = needs[0]
        ? layerNormScaledBackward(x!, uw, g!, p.eps)
        : new Zero(avals[0].shape, avals[0].dtype);
      const dg = needs[1] ? layerNorm(x!, p.eps).mul(uw).add(ub) : new Zero(avals[1].shape, avals[1].dtype);
      return [dx, dg];
    },
  ),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
export const normPrimitives = {
  layerNorm: layerNormP,
  layerNormBackward: layerNormBackwardP,
  layerNormAffine: layerNormAffineP,
  layerNormScaledBackward: layerNormScaledBackwardP,
  layerNormAffineGrads: layerNormAffineGradsP,
};

// Binders (JAX's lax).
/** (x - mean) / sqrt(var + eps) along the last axis of a float tensor of rank >= 1. */
export function layerNorm(x: Tensor, eps: number): Tensor {
  return bind(layerNormP, [x], { eps });
}
/** The fused VJP of layerNorm at x applied to g (x's shape). */
export function layerNormBackward(x: Tensor, g: Tensor, eps: number): Tensor {
  return bind(layerNormBackwardP, [x, g], { eps });
}
/** layerNorm(x) w + b along the last axis (w, b: [N], x's dtype). */
export function layerNormAffine(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  return bind(layerNormAffineP, [x, w, b], { eps });
}
/** layerNormBackward(x, g w): the affine form's VJP in x. */
export function layerNormScaledBackward(x: Tensor, w: Tensor, g: Tensor, eps: number): Tensor {
  return bind(layerNormScaledBackwardP, [x, w, g], { eps });
}
/** [sum over rows of g layerNorm(x), sum over rows of g] ([2, N]): the affine form's VJP in w and b. */
export function layerNormAffineGrads(x: Tensor, g: Tensor, eps: number): Tensor {
  return bind(layerNormAffineGradsP, [x, g], { eps });
}
