/**
 * Contraction primitives: batched matrix product, 2-d convolution with its two transposes, and pooling.
 * dot and the convolutions are bilinear, and each transpose is again one of these primitives (never a
 * broadcast-multiply-reduce that would materialise a huge intermediate). *
 * Each primitive's binder (JAX's lax) is declared here too. Rules use only binders and Tensor methods; a method
 * delegates to src/ops, which binds these primitives: the Tensor-facade loop, closed at call time only (see
 * docs/architecture.md, "Layers").
 */
import { isFloat } from "../dtype.ts";
import type { Activation, Conv2dParams, Pool2dParams } from "../backend/backend.ts";
import { isZero, type Primitive, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { actGrad } from "./elementwise.ts";
import { allocOut, getBackend, viewOf } from "./impl.ts";
import { broadcast, gather, permute, reshape } from "./movement.ts";
import { sumAxes } from "./reduce.ts";
import { batchAll, batchFoldN, batchLoop, withN } from "./batching.ts";
import { bilinear, linear, linearIn, rule, unaryRule, zeroDerivative } from "./rules.ts";

/** Swap the last two axes (a view). */
function mT(x: Tensor): Tensor {
  const n = x.shape.length;
  const perm = x.shape.map((_, i) => (i === n - 2 ? n - 1 : i === n - 1 ? n - 2 : i));
  return permute(x, perm);
}

/**
 * dot's batching rule. With the right operand shared and no leading dims (x [n, M, K] against w [K, N], the
 * per-example matmul of a linear layer), the batch folds into the rows: one [n*M, K] @ [K, N] product, no
 * broadcast weight. Otherwise both operands are batched along axis 0 (the shared one broadcast) and dot's own
 * batch dims do the rest.
 */
function batchDot(
  args: readonly Tensor[],
  batched: readonly boolean[],
  p: null,
  n: number,
  self: Primitive<null>,
): Tensor {
  const [a, b] = args;
  if (batched[0] && !batched[1] && b.shape.length === 2) {
    const m = a.shape[1];
    const out = dot(reshape(a, [n * m, a.shape[2]]), b);
    return reshape(out, [n, m, b.shape[1]]);
  }
  return batchAll<null>()(args, batched, p, n, self);
}

/** a [...B, M, K] @ b [...B, K, N] -> [...B, M, N]; batch shapes equal (broadcast by the ops layer). */
export const dotP: Primitive<null> = {
  name: "dot",
  abstract([a, b]) {
    const n = a.shape.length;
    if (
      n < 2 ||
      b.shape.length !== n ||
      a.shape[n - 1] !== b.shape[n - 2] ||
      !shapesEqual(a.shape.slice(0, n - 2), b.shape.slice(0, n - 2))
    ) {
      throw new ShapeError(`internal: dot got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
    }
    if (a.dtype !== b.dtype || a.dtype === "bool")
      throw new DTypeError(`matmul: unsupported dtypes ${a.dtype}, ${b.dtype}`);
    return { shape: [...a.shape.slice(0, n - 1), b.shape[n - 1]], dtype: a.dtype };
  },
  impl([a, b], _p, out) {
    const o = allocOut(out);
    getBackend().dot(viewOf(a), viewOf(b), o._data!);
    return o;
  },
  // d(a b) = da b + a db; transposes: ct b^T and a^T ct
  // dot batches through its leading batch dims; a shared right operand folds the batch into the rows instead
  batch: batchDot,
  derivative: bilinear<null>(
    (ct, b) => dot(ct, mT(b)),
    // b a concrete transposed matrix (a Linear layer's weight^T): its gradient made as (ct^T a)^T, so that the
    // weight's own gradient (through permute's rule) is contiguous in the weight's layout, as PyTorch's is
    (ct, a, _p, _s, b) => (isTransposedMatrix(b) ? mT(dot(mT(ct), a)) : dot(mT(a), ct)),
  ),
};

/** A concrete 2-d tensor laid out as the transpose of a contiguous matrix (strides [1, rows]). */
function isTransposedMatrix(t: Tensor): boolean {
  const s = t._strides;
  return (
    t._data !== null &&
    t.shape.length === 2 &&
    t.shape[0] > 1 &&
    t.shape[1] > 1 &&
    s[0] === 1 &&
    s[1] === t.shape[0]
  );
}

export interface ConvParams extends Conv2dParams {
  /** Shape of the output (known for the transposes, which cannot infer it). */
  readonly outShape: readonly number[];
}

function convP(
  name: string,
  run: (a: Tensor, b: Tensor, out: Tensor, p: ConvParams) => void,
  derivative: Primitive<ConvParams>["derivative"],
  batch: Primitive<ConvParams>["batch"],
): Primitive<ConvParams> {
  return {
    name,
    abstract([a, b], p) {
      if (a.dtype !== b.dtype || a.dtype === "bool")
        throw new DTypeError(`${name}: unsupported dtypes ${a.dtype}, ${b.dtype}`);
      return { shape: p.outShape, dtype: a.dtype };
    },
    impl([a, b], p, out) {
      const o = allocOut(out);
      run(a, b, o, p);
      return o;
    },
    derivative,
    batch,
  };
}

// conv2d(x, w): bilinear; d/dx is conv2dBackInput, d/dw is conv2dBackWeight.
export const conv2dP: Primitive<ConvParams> = convP(
  "conv2d",
  (x, w, o, p) => getBackend().conv2d(viewOf(x), viewOf(w), o._data!, p.outShape, p),
  bilinear<ConvParams>(
    (ct, w, p, xShape) => conv2dBackInput(ct, w, p, xShape),
    (ct, x, p, wShape) => conv2dBackWeight(x, ct, p, wShape),
  ),
  // x alone batched: the batch folds into N; a batched weight takes the declared loop fallback
  batchFoldN<ConvParams>([0], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
);

export interface ConvBiasActParams extends ConvParams {
  readonly act: Activation | null;
}

/** Exactly the convolution params of `p` (no activation or extra fields), with the given output shape. */
function convOnly(p: Conv2dParams, outShape: readonly number[]): ConvParams {
  return { stride: p.stride, padding: p.padding, dilation: p.dilation, groups: p.groups, outShape };
}

/**
 * conv2d with its bias and activation fused into the kernel's epilogue: y = act(conv2d(x, w) + b[o]), inputs
 * [x, w] or [x, w, b] (b of shape [O]), act null for the bias alone. One kernel and one output instead of three;
 * the same values as the unfused ops. With z the pre-activation and g = act'(z) ct (actGrad through y), the
 * rules are those of conv2d and of the bias sum applied to g.
 */
export const conv2dBiasActP: Primitive<ConvBiasActParams> = {
  name: "conv2dBiasAct",
  abstract([x, w, b], p) {
    if (x.dtype !== w.dtype || !isFloat(x.dtype))
      throw new DTypeError(`conv2dBiasAct: unsupported dtypes ${x.dtype}, ${w.dtype}`);
    if (b !== undefined && (b.dtype !== x.dtype || b.shape.length !== 1 || b.shape[0] !== p.outShape[1])) {
      throw new ShapeError(
        `internal: conv2dBiasAct bias ${fmtShape(b.shape)} ${b.dtype} for output ${fmtShape(p.outShape)}`,
      );
    }
    return { shape: p.outShape, dtype: x.dtype };
  },
  impl([x, w, b], p, out) {
    const o = allocOut(out);
    getBackend().conv2d(viewOf(x), viewOf(w), o._data!, p.outShape, p, {
      bias: b === undefined ? null : viewOf(b),
      act: p.act,
    });
    return o;
  },
  batch: batchFoldN<ConvBiasActParams>([0], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
  derivative: rule<ConvBiasActParams>(
    ([x, w], [tx, tw, tb], out, p) => {
      const cp = convOnly(p, p.outShape);
      const parts: Tensor[] = [];
      if (!isZero(tx)) parts.push(conv2d(tx, w, cp));
      if (!isZero(tw)) parts.push(conv2d(x, tw, cp));
      if (tb !== undefined && !isZero(tb))
        parts.push(broadcast(reshape(tb, [1, tb.shape[0], 1, 1]), out.shape));
      if (parts.length === 0) return new Zero(out.shape, out.dtype);
      const tz = parts.reduce((a, t) => a.add(t));
      return p.act === null ? tz : actGrad(p.act, out, tz);
    },
    (ct, [x, w], out, p, needs, avals) => {
      const g = p.act === null ? ct : actGrad(p.act, out!, ct);
      const cp = convOnly(p, p.outShape);
      return avals.map((av, i) => {
        if (!needs[i]) return new Zero(av.shape, av.dtype);
        if (i === 0) return conv2dBackInput(g, w!, cp, av.shape);
        if (i === 1) return conv2dBackWeight(x!, g, cp, av.shape);
        return sumAxes(g, [0, 2, 3]);
      });
    },
    { saveInputs: true, saveOutput: true },
  ),
  // relu's kink: a pre-activation of exactly 0
  atKink: ([x, w, b], _out, p) => {
    if (p.act !== "relu") return false;
    const z = conv2d(x, w, convOnly(p, p.outShape));
    const zb = b === undefined ? z : z.add(reshape(b, [1, b.shape[0], 1, 1]));
    return zb.eq(0).any().item() !== 0;
  },
};

// backInput(dy, w) is the adjoint of x -> conv2d(x, w): <backInput(dy, w), c> = <dy, conv2d(c, w)>.
export const conv2dBackInputP: Primitive<ConvParams> = convP(
  "conv2dBackInput",
  (dy, w, o, p) => getBackend().conv2dBackInput(viewOf(dy), viewOf(w), o._data!, p.outShape, p),
  bilinear<ConvParams>(
    (ct, w, p, dyShape) => conv2d(ct, w, { ...p, outShape: dyShape }),
    (ct, dy, p, wShape) => conv2dBackWeight(ct, dy, p, wShape),
  ),
  batchFoldN<ConvParams>([0], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
);

// backWeight(x, dy) is the adjoint of w -> conv2d(x, w): <backWeight(x, dy), c> = <dy, conv2d(x, c)>.
export const conv2dBackWeightP: Primitive<ConvParams> = convP(
  "conv2dBackWeight",
  (x, dy, o, p) => getBackend().conv2dBackWeight(viewOf(x), viewOf(dy), o._data!, p.outShape, p),
  bilinear<ConvParams>(
    (ct, dy, p, xShape) => conv2dBackInput(dy, ct, p, xShape),
    (ct, x, p, dyShape) => conv2d(x, ct, { ...p, outShape: dyShape }),
  ),
  // the weight gradient sums over N, so the batch cannot fold into it: the declared loop fallback (one kernel
  // call per example; a grouped convolution would do it in one, left for later)
  batchLoop<ConvParams>(),
);

export interface PoolParams extends Pool2dParams {
  readonly outShape: readonly number[];
}

/** Indices of the max of each pooling window, flat within the input plane (int32: a constant). */
export const maxPool2dArgmaxP: Primitive<PoolParams> = {
  name: "maxPool2dArgmax",
  abstract([_x], p) {
    return { shape: p.outShape, dtype: "int32" };
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().maxPool2dArgmax(viewOf(x), o._data!, p.outShape, p);
    return o;
  },
  // pooling is per sample: the batch folds into N
  batch: batchFoldN<PoolParams>([0], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
  derivative: zeroDerivative,
};

/** Gather each window's max position from a [N, C, H, W] tensor using argmax indices. */
function gatherPlanes(t: Tensor, idx: Tensor): Tensor {
  const [n, c, h, w] = t.shape;
  const [, , oh, ow] = idx.shape;
  const flat = gather(reshape(t, [n, c, h * w]), reshape(idx, [n, c, oh * ow]), 2);
  return reshape(flat, idx.shape);
}

// d maxPool(x) = dx at each window's argmax. The transpose sends each cotangent back to its window's argmax:
// the maxPool2dBackward primitive below (one fused kernel, no int32 index tensor and no zero-filled scatter).
export const maxPool2dP: Primitive<PoolParams> = {
  name: "maxPool2d",
  abstract([x], p) {
    if (x.dtype === "bool") throw new DTypeError("maxPool2d: unsupported dtype bool");
    return { shape: p.outShape, dtype: x.dtype };
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().maxPool2d(viewOf(x), o._data!, p.outShape, p);
    return o;
  },
  batch: batchFoldN<PoolParams>([0], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
  derivative: unaryRule<PoolParams>(
    (x, t, _o, p) => gatherPlanes(t, maxPool2dArgmax(x, p)),
    // (a cotangent seeded in another float dtype is brought to x's: the fused kernel takes one dtype)
    (ct, [x], _o, p) => [maxPool2dBackward(x!, ct.dtype === x!.dtype ? ct : ct.to(x!.dtype), p)],
  ),
};

/**
 * maxPool2dBackward(x, dy) [N, C, H, W]: the VJP of maxPool2d at x applied to dy [N, C, OH, OW] (params: the
 * forward pooling, outShape = dy's shape). Linear in dy; x only chooses where each dy lands, a piecewise-constant
 * dependence whose derivative is zero almost everywhere (as for gather's indices). So the JVP is the same map
 * applied to dy's tangent, and the transpose gathers the cotangent at each window's argmax, which is
 * maxPool2d's JVP: second derivatives of max pooling stay exact.
 */
export const maxPool2dBackwardP: Primitive<PoolParams> = {
  name: "maxPool2dBackward",
  abstract([x, dy], p) {
    if (x.dtype !== dy.dtype || x.dtype === "bool") {
      throw new DTypeError(
        `maxPool2dBackward: x and dy must share one numeric dtype, got ${x.dtype} and ${dy.dtype}`,
      );
    }
    if (x.shape.length !== 4 || !shapesEqual(dy.shape, p.outShape)) {
      throw new ShapeError(
        `maxPool2dBackward: x ${fmtShape(x.shape)} must be [N, C, H, W] and dy ${fmtShape(dy.shape)} ` +
          `the pooled shape ${fmtShape(p.outShape)}`,
      );
    }
    return { shape: x.shape, dtype: dy.dtype };
  },
  impl([x, dy], p, out) {
    const o = allocOut(out);
    getBackend().maxPool2dBackward(viewOf(x), viewOf(dy), o._data!, x.shape, p);
    return o;
  },
  batch: batchFoldN<PoolParams>([0, 1], (p, bn) => ({ ...p, outShape: withN(p.outShape, bn) })),
  derivative: linearIn<PoolParams>(1, (ct, [x], p) => gatherPlanes(ct, maxPool2dArgmax(x!, p))),
};

export interface AvgPoolParams extends PoolParams {
  readonly inShape: readonly number[];
}

/** The batching rule of avgPool2d and its transpose: the batch folded into N of both shapes. */
const batchAvgPool = batchFoldN<AvgPoolParams>([0], (p, bn) => ({
  ...p,
  inShape: withN(p.inShape, bn),
  outShape: withN(p.outShape, bn),
}));

// avgPool is linear; its transpose spreads each cotangent evenly over its window.
export const avgPool2dP: Primitive<AvgPoolParams> = {
  name: "avgPool2d",
  abstract([x], p) {
    if (x.dtype === "bool" || x.dtype === "int32")
      throw new DTypeError(`avgPool2d: unsupported dtype ${x.dtype}`);
    return { shape: p.outShape, dtype: x.dtype };
  },
  impl([x], p, out) {
    const o = allocOut(out);
    getBackend().avgPool2d(viewOf(x), o._data!, p.outShape, p);
    return o;
  },
  batch: batchAvgPool,
  derivative: linear<AvgPoolParams>((ct, _x, _o, p) => [avgPool2dBackward(ct, p)]),
};

export const avgPool2dBackwardP: Primitive<AvgPoolParams> = {
  name: "avgPool2dBackward",
  abstract([dy], p) {
    return { shape: p.inShape, dtype: dy.dtype };
  },
  impl([dy], p, out) {
    const o = allocOut(out);
    getBackend().avgPool2dBackward(viewOf(dy), o._data!, p.inShape, p);
    return o;
  },
  batch: batchAvgPool,
  derivative: linear<AvgPoolParams>((ct, _x, _o, p) => [avgPool2d(ct, p)]),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
// biome-ignore format: rows read better than one entry per line
export const contractPrimitives = {
  dot: dotP, conv2d: conv2dP, conv2dBackInput: conv2dBackInputP, conv2dBackWeight: conv2dBackWeightP,
  conv2dBiasAct: conv2dBiasActP, maxPool2d: maxPool2dP, maxPool2dArgmax: maxPool2dArgmaxP,
  maxPool2dBackward: maxPool2dBackwardP, avgPool2d: avgPool2dP, avgPool2dBackward: avgPool2dBackwardP,
};

// Binders (JAX's lax): bind one primitive with exact params. Rules and the ops layer use these.
export function dot(a: Tensor, b: Tensor): Tensor {
  return bind(dotP, [a, b], null);
}
export function conv2d(x: Tensor, w: Tensor, p: ConvParams): Tensor {
  return bind(conv2dP, [x, w], p);
}
export function conv2dBiasAct(
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  act: Activation | null,
  p: ConvParams,
): Tensor {
  return bind(conv2dBiasActP, b === null ? [x, w] : [x, w, b], { ...p, act });
}
export function conv2dBackInput(dy: Tensor, w: Tensor, p: Conv2dParams, xShape: readonly number[]): Tensor {
  return bind(conv2dBackInputP, [dy, w], convOnly(p, xShape));
}
export function conv2dBackWeight(x: Tensor, dy: Tensor, p: Conv2dParams, wShape: readonly number[]): Tensor {
  return bind(conv2dBackWeightP, [x, dy], convOnly(p, wShape));
}
export function maxPool2d(x: Tensor, p: PoolParams): Tensor {
  return bind(maxPool2dP, [x], p);
}
export function maxPool2dArgmax(x: Tensor, p: Pool2dParams & { outShape: readonly number[] }): Tensor {
  return bind(maxPool2dArgmaxP, [x], p);
}
/** The VJP of maxPool2d at x applied to dy (dy's shape is p.outShape); the result has x's shape. */
export function maxPool2dBackward(x: Tensor, dy: Tensor, p: PoolParams): Tensor {
  return bind(maxPool2dBackwardP, [x, dy], poolOnly(p));
}
function poolOnly(p: PoolParams): PoolParams {
  return { kernel: p.kernel, stride: p.stride, padding: p.padding, outShape: p.outShape };
}
export function avgPool2d(x: Tensor, p: AvgPoolParams): Tensor {
  return bind(avgPool2dP, [x], p);
}
export function avgPool2dBackward(dy: Tensor, p: AvgPoolParams): Tensor {
  return bind(avgPool2dBackwardP, [dy], p);
}
