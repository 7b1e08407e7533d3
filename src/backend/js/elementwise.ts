/**
 * Elementwise kernels of the js reference backend: unary, binary, where and cast.
 *
 * Each op is one scalar function in a table typed `Record<Op, ...>`, so a new op without an implementation
 * does not compile. Inputs are flattened to row-major arrays (see strided.ts), the scalar function runs in
 * float64 JavaScript numbers, and storing into the output typed array does the final conversion: rounding to
 * nearest for Float32Array, and for Int32Array the ToInt32 wrap-around, which is exactly C's int32 overflow
 * behaviour for add/sub (whose float64 result is exact). int32 mul/div/pow need their own scalar functions
 * (Math.imul, truncating division, exact power): their float64 result is not exact or not the integer one.
 */
import { castHalf } from "./half.ts";
import type { TypedArray } from "../../dtype.ts";
import type { Activation, BinaryOp, UnaryOp, View } from "../backend.ts";
import {
  divInt32,
  erf,
  gelu,
  geluDeriv,
  powFloat,
  powInt32,
  relu,
  roundHalfEven,
  sigmoid,
  sign,
} from "./scalar.ts";
import { assertOutSize, assertSameShape, contiguousData, viewSize } from "./strided.ts";

type Fn1 = (x: number) => number;
type Fn2 = (a: number, b: number) => number;

/** The scalar definition of every unary op (inputs and outputs as float64 numbers). */
export const UNARY: Record<UnaryOp, Fn1> = {
  neg: (x) => -x,
  abs: Math.abs,
  sign,
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  expm1: Math.expm1,
  sqrt: Math.sqrt,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  tanh: Math.tanh,
  sigmoid,
  erf,
  relu,
  floor: Math.floor,
  ceil: Math.ceil,
  round: roundHalfEven,
  not: (x) => (x === 0 ? 1 : 0),
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  log2: Math.log2,
  log10: Math.log10,
  gelu,
  geluDeriv,
};

/** The scalar definition of every binary op (float, bool, and int32 unless overridden below). */
export const BINARY: Record<BinaryOp, Fn2> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: powFloat,
  maximum: Math.max, // propagates NaN; orders -0 < +0
  minimum: Math.min,
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  and: (a, b) => (a !== 0 && b !== 0 ? 1 : 0),
  or: (a, b) => (a !== 0 || b !== 0 ? 1 : 0),
  xor: (a, b) => ((a !== 0) !== (b !== 0) ? 1 : 0),
  atan2: Math.atan2,
};

/**
 * int32 overrides: products wrap modulo 2^32 (Math.imul: a float64 product of two int32 can exceed 2^53 and
 * lose low bits), division truncates toward zero (x / 0 = 0), power is exact integer power. add/sub need no
 * override: their float64 result is exact and the Int32Array store wraps it.
 */
const BINARY_INT32: Partial<Record<BinaryOp, Fn2>> = {
  mul: Math.imul,
  div: divInt32,
  pow: powInt32,
};

/** out[i] = op(x[i]); out is contiguous with x's shape. */
export function unary(op: UnaryOp, x: View, out: TypedArray): void {
  const f = UNARY[op];
  const n = viewSize(x);
  assertOutSize(op, out, n);
  const src = contiguousData(x);
  for (let i = 0; i < n; i++) out[i] = f(src[i]);
}

/** out[i] = op(a[i], b[i]); a and b have one shape (broadcast arrives as stride 0); out is contiguous. */
export function binary(op: BinaryOp, a: View, b: View, out: TypedArray): void {
  assertSameShape(op, a.shape, b.shape);
  const f = (a.data instanceof Int32Array && BINARY_INT32[op]) || BINARY[op];
  const n = viewSize(a);
  assertOutSize(op, out, n);
  const x = contiguousData(a);
  const y = contiguousData(b);
  for (let i = 0; i < n; i++) out[i] = f(x[i], y[i]);
}

/** out[i] = act(x[i] + b[i]) with the sum rounded to out's dtype; b null means act(x[i]). */
export function biasAct(act: Activation, x: View, b: View | null, out: TypedArray): void {
  const f = UNARY[act];
  const n = viewSize(x);
  assertOutSize("biasAct", out, n);
  const src = contiguousData(x);
  if (b === null) {
    for (let i = 0; i < n; i++) out[i] = f(src[i]);
    return;
  }
  assertSameShape("biasAct", x.shape, b.shape);
  const bias = contiguousData(b);
  const round = out instanceof Float32Array ? Math.fround : (v: number) => v;
  for (let i = 0; i < n; i++) out[i] = f(round(src[i] + bias[i]));
}

/** out[i] = ct[i] * act'(x[i]) written through y = act(x), rounding each product as the unfused rules do. */
export function actGrad(act: Activation, y: View, ct: View, out: TypedArray): void {
  assertSameShape("actGrad", y.shape, ct.shape);
  const n = viewSize(y);
  assertOutSize("actGrad", out, n);
  const ys = contiguousData(y);
  const g = contiguousData(ct);
  const r = out instanceof Float32Array ? Math.fround : (v: number) => v;
  if (act === "relu") for (let i = 0; i < n; i++) out[i] = ys[i] > 0 ? g[i] : 0;
  else if (act === "tanh") for (let i = 0; i < n; i++) out[i] = g[i] * r(1 - r(ys[i] * ys[i]));
  else for (let i = 0; i < n; i++) out[i] = g[i] * r(ys[i] * r(1 - ys[i]));
}

/** out[i] = cond[i] ? a[i] : b[i]; cond is bool (nonzero counts as true). */
export function where(cond: View, a: View, b: View, out: TypedArray): void {
  assertSameShape("where", cond.shape, a.shape);
  assertSameShape("where", cond.shape, b.shape);
  const n = viewSize(cond);
  assertOutSize("where", out, n);
  const c = contiguousData(cond);
  const x = contiguousData(a);
  const y = contiguousData(b);
  for (let i = 0; i < n; i++) out[i] = c[i] !== 0 ? x[i] : y[i];
}

/**
 * Dtype conversion into out (whose typed-array kind is the target dtype). The typed-array store already does
 * the conversions the interface specifies: float -> int32 truncates toward zero with NaN -> 0 (ToInt32;
 * values outside the int32 range wrap modulo 2^32, which C leaves undefined), float64 -> float32 rounds to
 * nearest, bool -> number gives 0/1. Only -> bool needs care: x != 0, so NaN -> true (as PyTorch and NumPy).
 */
export function cast(x: View, out: TypedArray): void {
  const n = viewSize(x);
  assertOutSize("cast", out, n);
  const src = contiguousData(x);
  if (src instanceof Uint16Array || out instanceof Uint16Array) {
    castHalf(src, out, n); // float16 / bfloat16 storage: through float32, rounding to nearest even
  } else if (out instanceof Uint8Array) {
    for (let i = 0; i < n; i++) out[i] = src[i] !== 0 ? 1 : 0;
  } else {
    for (let i = 0; i < n; i++) out[i] = src[i];
  }
}
