/**
 * Elementwise math, comparisons and logic: the public API. Arguments may be tensors or JS numbers; they are
 * promoted to a common dtype (PyTorch rules, numbers are "weak") and broadcast (NumPy rules) before the
 * primitive is bound. Composite activations (gelu, elu, softplus, ...) are built here from primitives, so they
 * need no derivative rules of their own.
 */
import type { Primitive } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { type DType, isFloat, promoteTypes, promoteWithScalar } from "../dtype.ts";
import { DTypeError } from "../errors.ts";
import * as E from "../prims/elementwise.ts";
import { constant } from "../prims/impl.ts";
import { broadcastShapes, shapesEqual } from "../shape.ts";
import { Tensor, weakScalars } from "../tensor/tensor.ts";
import * as X from "../prims/lax.ts";

export type TensorLike = Tensor | number | boolean;

function checkTensor(op: string, x: unknown): void {
  if (!(x instanceof Tensor) && typeof x !== "number" && typeof x !== "boolean") {
    throw new TypeError(`${op}: expected a Tensor or a number, got ${x === null ? "null" : typeof x}`);
  }
}

/** The common dtype of a mix of tensors and scalars. */
export function resultType(args: readonly TensorLike[]): DType {
  if (weakScalars.active > 0) return resultTypeWeak(args);
  let d: DType | null = null;
  for (const a of args) if (a instanceof Tensor) d = d === null ? a.dtype : promoteTypes(d, a.dtype);
  if (d === null) {
    d = args.some((a) => typeof a === "number" && !Number.isInteger(a))
      ? "float32"
      : args.some((a) => typeof a === "number")
        ? "int32"
        : "bool";
    return d;
  }
  for (const a of args) if (!(a instanceof Tensor)) d = promoteWithScalar(d, a);
  return d;
}

/**
 * resultType when weakly typed scalars exist (see `weakScalars`): such a tensor promotes as a JS number of its
 * kind does; weak scalars and numbers alone compute in float64, as JS numbers do.
 */
function resultTypeWeak(args: readonly TensorLike[]): DType {
  const kinds = weakScalars.kinds;
  let d: DType | null = null;
  let weak = false;
  for (const a of args) {
    if (!(a instanceof Tensor)) continue;
    if (kinds.has(a)) weak = true;
    else d = d === null ? a.dtype : promoteTypes(d, a.dtype);
  }
  if (d === null) {
    if (weak) return "float64";
    return resultType(args.filter((a) => !(a instanceof Tensor)));
  }
  for (const a of args) {
    if (!(a instanceof Tensor)) d = promoteWithScalar(d, a);
    else if (weak && kinds.has(a)) d = promoteWithScalar(d, kinds.get(a) === "int" ? 1 : 0.5);
  }
  return d;
}

/**
 * The result of an op on weak scalars and numbers alone is weak too (of kind "int" when `intOk` and every operand
 * is integral), so `x.mul(s.mul(2))` promotes as `x.mul(2 * s)` would.
 */
function markWeak(out: Tensor, args: readonly TensorLike[], intOk: boolean): Tensor {
  const kinds = weakScalars.kinds;
  let weak = false;
  let int = intOk;
  for (const a of args) {
    if (a instanceof Tensor) {
      const k = kinds.get(a);
      if (k === undefined) return out;
      weak = true;
      if (k === "float") int = false;
    } else if (typeof a === "number" && !Number.isInteger(a)) int = false;
  }
  if (weak) kinds.set(out, int ? "int" : "float");
  return out;
}

/** Convert to a tensor of `dtype` (numbers become 0-d constants). */
export function asTensor(x: TensorLike, dtype: DType): Tensor {
  if (x instanceof Tensor) return X.castTo(x, dtype);
  return constant(typeof x === "boolean" ? (x ? 1 : 0) : x, dtype);
}

/** Promote and broadcast args to one dtype and shape. */
export function prepare(op: string, args: readonly TensorLike[], dtype?: DType): Tensor[] {
  for (const a of args) checkTensor(op, a);
  const d = dtype ?? resultType(args);
  let shape: readonly number[] = [];
  for (const a of args) if (a instanceof Tensor) shape = broadcastShapes(op, shape, a.shape);
  return args.map((a) => {
    const t = asTensor(a, d);
    return shapesEqual(t.shape, shape) ? t : X.broadcast(t, shape);
  });
}

function arith(prim: Primitive<null>, op: string, a: TensorLike, b: TensorLike, floatOnly = false): Tensor {
  // fast path: the common case of two tensors of one dtype and shape needs no promotion or broadcasting
  if (
    a instanceof Tensor &&
    b instanceof Tensor &&
    a.dtype === b.dtype &&
    (floatOnly ? isFloat(a.dtype) : a.dtype !== "bool") &&
    shapesEqual(a.shape, b.shape) &&
    weakScalars.active === 0
  ) {
    return bind(prim, [a, b], null);
  }
  let d = resultType([a, b]);
  if (d === "bool") d = "int32";
  if (floatOnly && !isFloat(d)) d = "float32";
  const [x, y] = prepare(op, [a, b], d);
  const out = bind(prim, [x, y], null);
  return weakScalars.active > 0 ? markWeak(out, [a, b], !floatOnly && prim !== E.powP) : out;
}

/** a + b, broadcasting. */
export function add(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.addP, "add", a, b);
}
/** a - b, broadcasting. */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.subP, "sub", a, b);
}
/** a * b, broadcasting. */
export function mul(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.mulP, "mul", a, b);
}
/** True division a / b (integers divide as float32, as PyTorch). */
export function div(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.divP, "div", a, b, true);
}
/** a ** b. */
export function pow(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === "number" && a instanceof Tensor) {
    if (b === 1) return a;
    if (b === 2) return mul(a, a);
  }
  return arith(E.powP, "pow", a, b);
}
/** Elementwise maximum (NaN propagates; ties split the gradient equally). */
export function maximum(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.maximumP, "maximum", a, b);
}
/** Elementwise minimum. */
export function minimum(a: TensorLike, b: TensorLike): Tensor {
  return arith(E.minimumP, "minimum", a, b);
}

/** atan2(y, x): the angle of the point (x, y) in [-pi, pi], broadcasting (integers as float32, as PyTorch). */
export function atan2(y: TensorLike, x: TensorLike): Tensor {
  return arith(E.atan2P, "atan2", y, x, true);
}

function unaryOp(prim: Primitive<null>, op: string, x: TensorLike, float: boolean): Tensor {
  checkTensor(op, x);
  let t = x instanceof Tensor ? x : asTensor(x, resultType([x]));
  if (float && !isFloat(t.dtype)) t = X.castTo(t, "float32");
  if (!float && t.dtype === "bool" && op !== "not") t = X.castTo(t, "int32");
  const out = bind(prim, [t], null);
  return weakScalars.active > 0 ? markWeak(out, [x], op === "neg" || op === "abs") : out;
}

export const neg = (x: TensorLike) => unaryOp(E.negP, "neg", x, false);
export const abs = (x: TensorLike) => unaryOp(E.absP, "abs", x, false);
export const sign = (x: TensorLike) => unaryOp(E.signP, "sign", x, false);
export const exp = (x: TensorLike) => unaryOp(E.expP, "exp", x, true);
export const log = (x: TensorLike) => unaryOp(E.logP, "log", x, true);
export const log1p = (x: TensorLike) => unaryOp(E.log1pP, "log1p", x, true);
export const expm1 = (x: TensorLike) => unaryOp(E.expm1P, "expm1", x, true);
export const sqrt = (x: TensorLike) => unaryOp(E.sqrtP, "sqrt", x, true);
export const sin = (x: TensorLike) => unaryOp(E.sinP, "sin", x, true);
export const cos = (x: TensorLike) => unaryOp(E.cosP, "cos", x, true);
export const tan = (x: TensorLike) => unaryOp(E.tanP, "tan", x, true);
export const tanh = (x: TensorLike) => unaryOp(E.tanhP, "tanh", x, true);
export const sigmoid = (x: TensorLike) => unaryOp(E.sigmoidP, "sigmoid", x, true);
export const erf = (x: TensorLike) => unaryOp(E.erfP, "erf", x, true);
export const relu = (x: TensorLike) => unaryOp(E.reluP, "relu", x, false);
export const floor = (x: TensorLike) => unaryOp(E.floorP, "floor", x, true);
export const ceil = (x: TensorLike) => unaryOp(E.ceilP, "ceil", x, true);
export const round = (x: TensorLike) => unaryOp(E.roundP, "round", x, true);
/** Inverse sine (NaN outside [-1, 1]); integers are computed as float32, as PyTorch. */
export const asin = (x: TensorLike) => unaryOp(E.asinP, "asin", x, true);
/** Inverse cosine (NaN outside [-1, 1]). */
export const acos = (x: TensorLike) => unaryOp(E.acosP, "acos", x, true);
/** Inverse tangent. */
export const atan = (x: TensorLike) => unaryOp(E.atanP, "atan", x, true);
/** Hyperbolic sine. */
export const sinh = (x: TensorLike) => unaryOp(E.sinhP, "sinh", x, true);
/** Hyperbolic cosine. */
export const cosh = (x: TensorLike) => unaryOp(E.coshP, "cosh", x, true);
/** Inverse hyperbolic sine. */
export const asinh = (x: TensorLike) => unaryOp(E.asinhP, "asinh", x, true);
/** Inverse hyperbolic cosine (NaN below 1). */
export const acosh = (x: TensorLike) => unaryOp(E.acoshP, "acosh", x, true);
/** Inverse hyperbolic tangent (NaN outside [-1, 1], +-Infinity at +-1). */
export const atanh = (x: TensorLike) => unaryOp(E.atanhP, "atanh", x, true);
/** Base-2 logarithm (its own kernel, not log(x) / ln 2: exact at powers of two). */
export const log2 = (x: TensorLike) => unaryOp(E.log2P, "log2", x, true);
/** Base-10 logarithm (its own kernel: exact at powers of ten). */
export const log10 = (x: TensorLike) => unaryOp(E.log10P, "log10", x, true);

/** 1 / sqrt(x). */
export const rsqrt = (x: TensorLike) => div(1, sqrt(x));
/** x * x. */
export const square = (x: TensorLike) => {
  const t = x instanceof Tensor ? x : asTensor(x, resultType([x]));
  return mul(t, t);
};
/** 1 / x. */
export const reciprocal = (x: TensorLike) => div(1, x);

/** max(x, 0) + slope * min(x, 0). */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return where(gt(x, 0), x, mul(x, slope));
}
/** x for x > 0, alpha (exp(x) - 1) otherwise. */
export function elu(x: Tensor, alpha = 1): Tensor {
  return where(gt(x, 0), x, mul(expm1(minimum(x, 0)), alpha));
}
/**
 * Gaussian error linear unit: x Phi(x) exact (one fused primitive: the forward pass and the derivative
 * Phi(x) + x phi(x) are one kernel each; integers as float32), or the tanh approximation.
 */
export function gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  if (approximate === "tanh") {
    const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  if (approximate !== "none") {
    throw new RangeError(`gelu: approximate must be "none" or "tanh", got ${String(approximate)}`);
  }
  return unaryOp(E.geluP, "gelu", x, true);
}
/**
 * log(1 + exp(x)), computed stably as max(x, 0) + log1p(exp(-|x|)). Both pieces are written with one `where`
 * so that at the kink x = 0 they take the same (x <= 0) side and the derivative is sigmoid(0) = 0.5; relu and
 * abs separately would each report 0 there.
 */
export function softplus(x: Tensor): Tensor {
  const pos = gt(x, 0);
  return add(where(pos, x, 0), log1p(exp(where(pos, neg(x), x))));
}
/** Clamp into [min, max] (either may be omitted). */
export function clamp(x: Tensor, min?: number | null, max?: number | null): Tensor {
  let y = x;
  if (min !== undefined && min !== null) y = maximum(y, min);
  if (max !== undefined && max !== null) y = minimum(y, max);
  return y;
}

function compare(prim: Primitive<null>, op: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = prepare(op, [a, b]);
  return bind(prim, [x, y], null);
}
export const eq = (a: TensorLike, b: TensorLike) => compare(E.eqP, "eq", a, b);
export const ne = (a: TensorLike, b: TensorLike) => compare(E.neP, "ne", a, b);
export const lt = (a: TensorLike, b: TensorLike) => compare(E.ltP, "lt", a, b);
export const le = (a: TensorLike, b: TensorLike) => compare(E.leP, "le", a, b);
export const gt = (a: TensorLike, b: TensorLike) => compare(E.gtP, "gt", a, b);
export const ge = (a: TensorLike, b: TensorLike) => compare(E.geP, "ge", a, b);

function logical(prim: Primitive<null>, op: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = prepare(op, [a, b]).map((t) => (t.dtype === "bool" ? t : ne(t, 0)));
  return bind(prim, [x, y], null);
}
export const logicalAnd = (a: TensorLike, b: TensorLike) => logical(E.andP, "logicalAnd", a, b);
export const logicalOr = (a: TensorLike, b: TensorLike) => logical(E.orP, "logicalOr", a, b);
export const logicalXor = (a: TensorLike, b: TensorLike) => logical(E.xorP, "logicalXor", a, b);
export function logicalNot(x: TensorLike): Tensor {
  const t = x instanceof Tensor ? x : asTensor(x, "bool");
  return bind(E.notP, [t.dtype === "bool" ? t : ne(t, 0)], null);
}

/** cond ? a : b elementwise, broadcasting all three. */
export function where(cond: TensorLike, a: TensorLike, b: TensorLike): Tensor {
  checkTensor("where", cond);
  if (cond instanceof Tensor && cond.dtype !== "bool") {
    throw new DTypeError(`where: condition must be a bool tensor, got ${cond.dtype}`);
  }
  const d = resultType([a, b]);
  let shape: readonly number[] = [];
  for (const t of [cond, a, b]) if (t instanceof Tensor) shape = broadcastShapes("where", shape, t.shape);
  const c = X.broadcast(asTensor(cond, "bool"), shape);
  const x = X.broadcast(asTensor(a, d), shape);
  const y = X.broadcast(asTensor(b, d), shape);
  return bind(E.whereP, [c, x, y], null);
}

/** x with the positions where mask is true set to value. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (mask.dtype !== "bool") throw new DTypeError(`maskedFill: mask must be bool, got ${mask.dtype}`);
  broadcastShapes("maskedFill", x.shape, mask.shape);
  const r = where(mask, asTensor(value, x.dtype), x);
  return shapesEqual(r.shape, x.shape) ? r : X.reshape(r, x.shape);
}

/** Convert dtype (differentiable between float dtypes). */
export function cast(x: Tensor, dtype: DType): Tensor {
  return X.castTo(x, dtype);
}
