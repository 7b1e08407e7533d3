/**
 * Elementwise unary and binary kernels of the wasm backend (AssemblyScript, SIMD128).
 *
 * Each op is a tiny class whose inlined methods give the SIMD form `v` (on a v128 of lanes) and the scalar
 * form `s`; generic row functions instantiate them for the three layouts that matter after coalescing, all
 * contiguous (SIMD), one operand broadcast (stride 0: splat once, SIMD), and any other strides (scalar), and
 * `walk` drives the rows over the outer axes. Op codes are the positions of the ops in the contract's lists
 * (UNARY_OPS, BINARY_OPS in src/backend/backend.ts; src/backend/wasm/elementwise.ts says which prefix of them
 * the module implements). Float32 arithmetic is exact IEEE single precision, which equals the js backend's
 * "compute in float64, round once" for + - * / sqrt (float64 carries more than 2 * 24 + 2 bits). Transcendental
 * float32 ops run SIMD approximations (math.ts, within 4 ulp of float64 rounded once) on contiguous rows, and
 * evaluate in float64 and round once, like the js backend, on strided rows and row tails (fewer than 4
 * elements). The output is always contiguous.
 */
import {
  acosF32x4,
  acoshF32x4,
  asinF32x4,
  asinhF32x4,
  atan2F32x4,
  atanF32x4,
  atanhF32x4,
  coshF32x4,
  cos64,
  cosF32x4,
  erf64,
  erfF32x4,
  gelu64,
  geluDeriv64,
  geluF32x4,
  geluDerivF32x4,
  expF32x4,
  expm1F32x4,
  log10F32x4,
  log1pF32x4,
  log2F32x4,
  logF32x4,
  pow64,
  relu64,
  sigmoid64,
  sigmoidF32x4,
  sign64,
  sin64,
  sinF32x4,
  sinhF32x4,
  tan64,
  tanF32x4,
  tanhF32x4,
} from "./math";
import { walk } from "./walk";

// ------------------------------------------------------------------------------------------- binary ops

class AddF32 { @inline v(a: v128, b: v128): v128 { return f32x4.add(a, b); } @inline s(a: f32, b: f32): f32 { return a + b; } }
class SubF32 { @inline v(a: v128, b: v128): v128 { return f32x4.sub(a, b); } @inline s(a: f32, b: f32): f32 { return a - b; } }
class MulF32 { @inline v(a: v128, b: v128): v128 { return f32x4.mul(a, b); } @inline s(a: f32, b: f32): f32 { return a * b; } }
class DivF32 { @inline v(a: v128, b: v128): v128 { return f32x4.div(a, b); } @inline s(a: f32, b: f32): f32 { return a / b; } }
class MaxF32 { @inline v(a: v128, b: v128): v128 { return f32x4.max(a, b); } @inline s(a: f32, b: f32): f32 { return max<f32>(a, b); } }
class MinF32 { @inline v(a: v128, b: v128): v128 { return f32x4.min(a, b); } @inline s(a: f32, b: f32): f32 { return min<f32>(a, b); } }
class PowF32 { @inline v(a: v128, b: v128): v128 { return a; } @inline s(a: f32, b: f32): f32 { return <f32>pow64(<f64>a, <f64>b); } }
class Atan2F32 { @inline v(a: v128, b: v128): v128 { return atan2F32x4(a, b); } @inline s(a: f32, b: f32): f32 { return <f32>Math.atan2(<f64>a, <f64>b); } }

class AddF64 { @inline v(a: v128, b: v128): v128 { return f64x2.add(a, b); } @inline s(a: f64, b: f64): f64 { return a + b; } }
class SubF64 { @inline v(a: v128, b: v128): v128 { return f64x2.sub(a, b); } @inline s(a: f64, b: f64): f64 { return a - b; } }
class MulF64 { @inline v(a: v128, b: v128): v128 { return f64x2.mul(a, b); } @inline s(a: f64, b: f64): f64 { return a * b; } }
class DivF64 { @inline v(a: v128, b: v128): v128 { return f64x2.div(a, b); } @inline s(a: f64, b: f64): f64 { return a / b; } }
class MaxF64 { @inline v(a: v128, b: v128): v128 { return f64x2.max(a, b); } @inline s(a: f64, b: f64): f64 { return max<f64>(a, b); } }
class MinF64 { @inline v(a: v128, b: v128): v128 { return f64x2.min(a, b); } @inline s(a: f64, b: f64): f64 { return min<f64>(a, b); } }
class PowF64 { @inline v(a: v128, b: v128): v128 { return a; } @inline s(a: f64, b: f64): f64 { return pow64(a, b); } }
class Atan2F64 { @inline v(a: v128, b: v128): v128 { return a; } @inline s(a: f64, b: f64): f64 { return Math.atan2(a, b); } }

class AddI32 { @inline v(a: v128, b: v128): v128 { return i32x4.add(a, b); } @inline s(a: i32, b: i32): i32 { return a + b; } }
class SubI32 { @inline v(a: v128, b: v128): v128 { return i32x4.sub(a, b); } @inline s(a: i32, b: i32): i32 { return a - b; } }
class MulI32 { @inline v(a: v128, b: v128): v128 { return i32x4.mul(a, b); } @inline s(a: i32, b: i32): i32 { return a * b; } }
class MaxI32 { @inline v(a: v128, b: v128): v128 { return i32x4.max_s(a, b); } @inline s(a: i32, b: i32): i32 { return max<i32>(a, b); } }
class MinI32 { @inline v(a: v128, b: v128): v128 { return i32x4.min_s(a, b); } @inline s(a: i32, b: i32): i32 { return min<i32>(a, b); } }

// bool is stored as 0/1 bytes, so the logical ops are plain bitwise ops on bytes
class AndU8 { @inline v(a: v128, b: v128): v128 { return v128.and(a, b); } @inline s(a: u8, b: u8): u8 { return a & b; } }
class OrU8 { @inline v(a: v128, b: v128): v128 { return v128.or(a, b); } @inline s(a: u8, b: u8): u8 { return a | b; } }
class XorU8 { @inline v(a: v128, b: v128): v128 { return v128.xor(a, b); } @inline s(a: u8, b: u8): u8 { return a ^ b; } }

/** Binary op codes (the order of BINARY_OPS in src/backend/backend.ts). */
const ADD = 0, SUB = 1, MUL = 2, DIV = 3, POW = 4, MAXIMUM = 5, MINIMUM = 6;
const EQ = 7, NE = 8, LT = 9, LE = 10, GT = 11, GE = 12, AND = 13, OR = 14, XOR = 15, ATAN2 = 16;

/**
 * One row of out[i] = o(a[i], b[i]) with T elements: SIMD when both operands are contiguous or one of them is
 * broadcast (byte stride 0), scalar otherwise. `simd` is false for ops without a vector form (pow).
 */
@inline
function row2<T, O>(o: O, simd: bool, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  const es = <i32>sizeof<T>();
  const lanes = 16 / es;
  let i = 0;
  if (simd && sa == es && sb == es) {
    for (; i + lanes <= n; i += lanes) {
      const off = <usize>(i * es);
      v128.store(po + off, o.v(v128.load(pa + off), v128.load(pb + off)));
    }
  } else if (simd && sa == es && sb == 0) {
    const bv = v128.splat<T>(load<T>(pb));
    for (; i + lanes <= n; i += lanes) {
      const off = <usize>(i * es);
      v128.store(po + off, o.v(v128.load(pa + off), bv));
    }
  } else if (simd && sa == 0 && sb == es) {
    const av = v128.splat<T>(load<T>(pa));
    for (; i + lanes <= n; i += lanes) {
      const off = <usize>(i * es);
      v128.store(po + off, o.v(av, v128.load(pb + off)));
    }
  }
  let qa = pa + <usize>(i * sa);
  let qb = pb + <usize>(i * sb);
  for (; i < n; i++) {
    store<T>(po + <usize>(i * es), o.s(load<T>(qa), load<T>(qb)));
    qa += <usize>sa;
    qb += <usize>sb;
  }
}

/** One row of a comparison: out (bool bytes) = a op b, any T; scalar (NaN compares false except ne). */
@inline
function cmpRow<T>(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  let qa = pa;
  let qb = pb;
  for (let i = 0; i < n; i++) {
    const a = load<T>(qa);
    const b = load<T>(qb);
    let r: bool;
    switch (op) {
      case EQ: r = a == b; break;
      case NE: r = a != b; break;
      case LT: r = a < b; break;
      case LE: r = a <= b; break;
      case GT: r = a > b; break;
      default: r = a >= b; break;
    }
    store<u8>(po + <usize>i, <u8>r);
    qa += <usize>sa;
    qb += <usize>sb;
  }
}

/** Lane masks of a comparison on f32x4 (float: true) or i32x4 (float: false). */
@inline
function cmpVec(float: bool, op: i32, a: v128, b: v128): v128 {
  if (float) {
    switch (op) {
      case EQ: return f32x4.eq(a, b);
      case NE: return f32x4.ne(a, b);
      case LT: return f32x4.lt(a, b);
      case LE: return f32x4.le(a, b);
      case GT: return f32x4.gt(a, b);
      default: return f32x4.ge(a, b);
    }
  }
  switch (op) {
    case EQ: return i32x4.eq(a, b);
    case NE: return i32x4.ne(a, b);
    case LT: return i32x4.lt_s(a, b);
    case LE: return i32x4.le_s(a, b);
    case GT: return i32x4.gt_s(a, b);
    default: return i32x4.ge_s(a, b);
  }
}

/**
 * A comparison row on 4-byte elements (float32 or int32) writing bool bytes: 16 elements per step on
 * contiguous or broadcast operands (four lane masks narrowed to 16 bytes of 0 / -1, masked to 0 / 1), the
 * scalar cmpRow for the rest.
 */
@inline
function cmpRow4<T>(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  const float = isFloat<T>();
  let i = 0;
  if ((sa == 4 || sa == 0) && (sb == 4 || sb == 0)) {
    const ua = <usize>sa;
    const ub = <usize>sb;
    const one = i8x16.splat(1);
    for (; i + 16 <= n; i += 16) {
      const qa = pa + <usize>i * ua;
      const qb = pb + <usize>i * ub;
      const m0 = cmpVec(float, op, sa ? v128.load(qa) : v128.load32_splat(qa), sb ? v128.load(qb) : v128.load32_splat(qb));
      const m1 = cmpVec(float, op, sa ? v128.load(qa, 16) : v128.load32_splat(qa), sb ? v128.load(qb, 16) : v128.load32_splat(qb));
      const m2 = cmpVec(float, op, sa ? v128.load(qa, 32) : v128.load32_splat(qa), sb ? v128.load(qb, 32) : v128.load32_splat(qb));
      const m3 = cmpVec(float, op, sa ? v128.load(qa, 48) : v128.load32_splat(qa), sb ? v128.load(qb, 48) : v128.load32_splat(qb));
      const bytes = i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(m0, m1), i16x8.narrow_i32x4_s(m2, m3));
      v128.store(po + <usize>i, v128.and(bytes, one));
    }
  }
  cmpRow<T>(op, n - i, pa + <usize>(i * sa), sa, pb + <usize>(i * sb), sb, po + <usize>i);
}

export function binRowF32(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  switch (op) {
    case ADD: row2<f32, AddF32>(changetype<AddF32>(0), true, n, pa, sa, pb, sb, po); break;
    case SUB: row2<f32, SubF32>(changetype<SubF32>(0), true, n, pa, sa, pb, sb, po); break;
    case MUL: row2<f32, MulF32>(changetype<MulF32>(0), true, n, pa, sa, pb, sb, po); break;
    case DIV: row2<f32, DivF32>(changetype<DivF32>(0), true, n, pa, sa, pb, sb, po); break;
    case POW: row2<f32, PowF32>(changetype<PowF32>(0), false, n, pa, sa, pb, sb, po); break;
    case MAXIMUM: row2<f32, MaxF32>(changetype<MaxF32>(0), true, n, pa, sa, pb, sb, po); break;
    case MINIMUM: row2<f32, MinF32>(changetype<MinF32>(0), true, n, pa, sa, pb, sb, po); break;
    case ATAN2: row2<f32, Atan2F32>(changetype<Atan2F32>(0), true, n, pa, sa, pb, sb, po); break;
    default: cmpRow4<f32>(op, n, pa, sa, pb, sb, po);
  }
}

export function binRowF64(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  switch (op) {
    case ADD: row2<f64, AddF64>(changetype<AddF64>(0), true, n, pa, sa, pb, sb, po); break;
    case SUB: row2<f64, SubF64>(changetype<SubF64>(0), true, n, pa, sa, pb, sb, po); break;
    case MUL: row2<f64, MulF64>(changetype<MulF64>(0), true, n, pa, sa, pb, sb, po); break;
    case DIV: row2<f64, DivF64>(changetype<DivF64>(0), true, n, pa, sa, pb, sb, po); break;
    case POW: row2<f64, PowF64>(changetype<PowF64>(0), false, n, pa, sa, pb, sb, po); break;
    case MAXIMUM: row2<f64, MaxF64>(changetype<MaxF64>(0), true, n, pa, sa, pb, sb, po); break;
    case MINIMUM: row2<f64, MinF64>(changetype<MinF64>(0), true, n, pa, sa, pb, sb, po); break;
    case ATAN2: row2<f64, Atan2F64>(changetype<Atan2F64>(0), false, n, pa, sa, pb, sb, po); break;
    default: cmpRow<f64>(op, n, pa, sa, pb, sb, po);
  }
}

function binRowI32(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  switch (op) {
    case ADD: row2<i32, AddI32>(changetype<AddI32>(0), true, n, pa, sa, pb, sb, po); break;
    case SUB: row2<i32, SubI32>(changetype<SubI32>(0), true, n, pa, sa, pb, sb, po); break;
    case MUL: row2<i32, MulI32>(changetype<MulI32>(0), true, n, pa, sa, pb, sb, po); break;
    case MAXIMUM: row2<i32, MaxI32>(changetype<MaxI32>(0), true, n, pa, sa, pb, sb, po); break;
    case MINIMUM: row2<i32, MinI32>(changetype<MinI32>(0), true, n, pa, sa, pb, sb, po); break;
    default: cmpRow4<i32>(op, n, pa, sa, pb, sb, po);
  }
}

function binRowU8(op: i32, n: i32, pa: usize, sa: i32, pb: usize, sb: i32, po: usize): void {
  switch (op) {
    case AND: row2<u8, AndU8>(changetype<AndU8>(0), true, n, pa, sa, pb, sb, po); break;
    case OR: row2<u8, OrU8>(changetype<OrU8>(0), true, n, pa, sa, pb, sb, po); break;
    case XOR: row2<u8, XorU8>(changetype<XorU8>(0), true, n, pa, sa, pb, sb, po); break;
    default: cmpRow<u8>(op, n, pa, sa, pb, sb, po);
  }
}

class BinF32 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { binRowF32(op, n, p0, s0, p1, s1, p2); } }
class BinF64 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { binRowF64(op, n, p0, s0, p1, s1, p2); } }
class BinI32 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { binRowI32(op, n, p0, s0, p1, s1, p2); } }
class BinU8 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { binRowU8(op, n, p0, s0, p1, s1, p2); } }

/**
 * out = a op b for the element kind `kind` (0 f32, 1 f64, 2 i32, 3 bool bytes), over the coalesced iteration
 * space described at `args` (operands a, b, out: byte strides; out contiguous).
 */
export function binary(kind: i32, op: i32, nd: i32, args: usize, pa: usize, pb: usize, po: usize): void {
  switch (kind) {
    case 0: walk<BinF32>(changetype<BinF32>(0), op, nd, args, pa, pb, po, 0); break;
    case 1: walk<BinF64>(changetype<BinF64>(0), op, nd, args, pa, pb, po, 0); break;
    case 2: walk<BinI32>(changetype<BinI32>(0), op, nd, args, pa, pb, po, 0); break;
    default: walk<BinU8>(changetype<BinU8>(0), op, nd, args, pa, pb, po, 0); break;
  }
}

// ------------------------------------------------------------------------------------------- unary ops

/** Unary op codes (the order of UNARY_OPS in src/backend/backend.ts). */
const NEG = 0, ABS = 1, SIGN = 2, EXP = 3, LOG = 4, LOG1P = 5, EXPM1 = 6, SQRT = 7, SIN = 8, COS = 9;
const TAN = 10, TANH = 11, SIGMOID = 12, ERF = 13, RELU = 14, FLOOR = 15, CEIL = 16, ROUND = 17, NOT = 18;
const ASIN = 19, ACOS = 20, ATAN = 21, SINH = 22, COSH = 23, ASINH = 24, ACOSH = 25, ATANH = 26, LOG2 = 27;
const LOG10 = 28, GELU = 29, GELU_DERIV = 30;

/** The float64 scalar definition of every float unary op (float32 rounds the result once). */
@inline
export function unaryScalar(op: i32, x: f64): f64 {
  switch (op) {
    case NEG: return -x;
    case ABS: return Math.abs(x);
    case SIGN: return sign64(x);
    case EXP: return Math.exp(x);
    case LOG: return Math.log(x);
    case LOG1P: return Math.log1p(x);
    case EXPM1: return Math.expm1(x);
    case SQRT: return Math.sqrt(x);
    case SIN: return sin64(x);
    case COS: return cos64(x);
    case TAN: return tan64(x);
    case TANH: return Math.tanh(x);
    case SIGMOID: return sigmoid64(x);
    case ERF: return erf64(x);
    case RELU: return relu64(x);
    case FLOOR: return Math.floor(x);
    case CEIL: return Math.ceil(x);
    case ROUND: return nearest<f64>(x);
    case ASIN: return Math.asin(x);
    case ACOS: return Math.acos(x);
    case ATAN: return Math.atan(x);
    case SINH: return Math.sinh(x);
    case COSH: return Math.cosh(x);
    case ASINH: return Math.asinh(x);
    case ACOSH: return Math.acosh(x);
    case ATANH: return Math.atanh(x);
    case LOG2: return Math.log2(x);
    case LOG10: return Math.log10(x);
    case GELU: return gelu64(x);
    case GELU_DERIV: return geluDeriv64(x);
    default: return x;
  }
}

/** The SIMD form of the cheap float32 unary ops; returns false (and does nothing) for the others. */
@inline
function unaryVecF32(op: i32, x: v128): v128 {
  switch (op) {
    case NEG: return f32x4.neg(x);
    case ABS: return f32x4.abs(x);
    case SQRT: return f32x4.sqrt(x);
    case RELU: return f32x4.max(x, f32x4.splat(0)); // max propagates NaN and gives +0 for -0
    case FLOOR: return f32x4.floor(x);
    case CEIL: return f32x4.ceil(x);
    case ROUND: return f32x4.nearest(x); // ties to even, keeps the sign of zero
    case EXP: return expF32x4(x);
    case LOG: return logF32x4(x);
    case SIGMOID: return sigmoidF32x4(x);
    case TANH: return tanhF32x4(x);
    case LOG1P: return log1pF32x4(x);
    case EXPM1: return expm1F32x4(x);
    case SIN: return sinF32x4(x);
    case COS: return cosF32x4(x);
    case TAN: return tanF32x4(x);
    case ERF: return erfF32x4(x);
    case ASIN: return asinF32x4(x);
    case ACOS: return acosF32x4(x);
    case ATAN: return atanF32x4(x);
    case SINH: return sinhF32x4(x);
    case COSH: return coshF32x4(x);
    case ASINH: return asinhF32x4(x);
    case ACOSH: return acoshF32x4(x);
    case ATANH: return atanhF32x4(x);
    case LOG2: return log2F32x4(x);
    case LOG10: return log10F32x4(x);
    case GELU: return geluF32x4(x);
    case GELU_DERIV: return geluDerivF32x4(x);
    default: {
      // SIGN: 1 where x > 0, -1 where x < 0, 0 at zero, NaN kept
      const one = f32x4.splat(1);
      const r = v128.or(v128.and(f32x4.gt(x, f32x4.splat(0)), one), v128.and(f32x4.lt(x, f32x4.splat(0)), f32x4.neg(one)));
      return v128.bitselect(x, r, f32x4.ne(x, x));
    }
  }
}

@inline
function unaryVecF64(op: i32, x: v128): v128 {
  switch (op) {
    case NEG: return f64x2.neg(x);
    case ABS: return f64x2.abs(x);
    case SQRT: return f64x2.sqrt(x);
    case RELU: return f64x2.max(x, f64x2.splat(0));
    case FLOOR: return f64x2.floor(x);
    case CEIL: return f64x2.ceil(x);
    default: return f64x2.nearest(x);
  }
}

@inline
function hasVec(op: i32): bool {
  return op == NEG || op == ABS || op == SQRT || op == RELU || op == FLOOR || op == CEIL || op == ROUND || op == SIGN;
}

/**
 * float32 ops with a SIMD approximation (math.ts; a few ulp instead of the float64 route rounded once): every
 * float unary op but the exact ones without a vector form.
 */
@inline
function hasVecF32(op: i32): bool {
  return hasVec(op) || op == EXP || op == LOG || op == SIGMOID || op == TANH || op == LOG1P || op == EXPM1 ||
    op == SIN || op == COS || op == TAN || op == ERF || (op >= ASIN && op <= LOG10) || op == GELU || op == GELU_DERIV;
}

/**
 * The float32 SIMD form of unary op `op` (an op with hasVecF32), for the fused kernels generated at run time
 * (src/backend/wasm/codegen.ts imports it: the very code the unary kernel runs, for the approximations it does
 * not emit inline).
 */
export function unaryF32x4(op: i32, x: v128): v128 {
  return unaryVecF32(op, x);
}

export function unRowF32(op: i32, n: i32, pa: usize, sa: i32, po: usize): void {
  let i = 0;
  if (sa == 4 && hasVecF32(op)) {
    for (; i + 4 <= n; i += 4) {
      const off = <usize>i << 2;
      v128.store(po + off, unaryVecF32(op, v128.load(pa + off)));
    }
  }
  let q = pa + <usize>(i * sa);
  for (; i < n; i++) {
    store<f32>(po + (<usize>i << 2), <f32>unaryScalar(op, <f64>load<f32>(q)));
    q += <usize>sa;
  }
}

export function unRowF64(op: i32, n: i32, pa: usize, sa: i32, po: usize): void {
  let i = 0;
  if (sa == 8 && hasVec(op) && op != SIGN) {
    for (; i + 2 <= n; i += 2) {
      const off = <usize>i << 3;
      v128.store(po + off, unaryVecF64(op, v128.load(pa + off)));
    }
  }
  let q = pa + <usize>(i * sa);
  for (; i < n; i++) {
    store<f64>(po + (<usize>i << 3), unaryScalar(op, load<f64>(q)));
    q += <usize>sa;
  }
}

/** int32 unary ops: neg and abs wrap (abs(-2^31) = -2^31), sign; others are not routed here. */
function unRowI32(op: i32, n: i32, pa: usize, sa: i32, po: usize): void {
  let q = pa;
  for (let i = 0; i < n; i++) {
    const x = load<i32>(q);
    const r = op == NEG ? -x : op == ABS ? (x < 0 ? -x : x) : x > 0 ? 1 : x < 0 ? -1 : 0;
    store<i32>(po + (<usize>i << 2), r);
    q += <usize>sa;
  }
}

/** bool `not`: 1 - x on 0/1 bytes. */
function unRowU8(op: i32, n: i32, pa: usize, sa: i32, po: usize): void {
  let i = 0;
  if (sa == 1) {
    const one = i8x16.splat(1);
    for (; i + 16 <= n; i += 16) v128.store(po + <usize>i, v128.xor(v128.load(pa + <usize>i), one));
  }
  let q = pa + <usize>(i * sa);
  for (; i < n; i++) {
    store<u8>(po + <usize>i, load<u8>(q) ^ 1);
    q += <usize>sa;
  }
}

class UnF32 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { unRowF32(op, n, p0, s0, p1); } }
class UnF64 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { unRowF64(op, n, p0, s0, p1); } }
class UnI32 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { unRowI32(op, n, p0, s0, p1); } }
class UnU8 { @inline row(op: i32, n: i32, p0: usize, s0: i32, p1: usize, s1: i32, p2: usize, s2: i32, p3: usize, s3: i32): void { unRowU8(op, n, p0, s0, p1); } }

/** out = op(x) for the element kind `kind` (0 f32, 1 f64, 2 i32, 3 bool); operands x, out at `args`. */
export function unary(kind: i32, op: i32, nd: i32, args: usize, px: usize, po: usize): void {
  switch (kind) {
    case 0: walk<UnF32>(changetype<UnF32>(0), op, nd, args, px, po, 0, 0); break;
    case 1: walk<UnF64>(changetype<UnF64>(0), op, nd, args, px, po, 0, 0); break;
    case 2: walk<UnI32>(changetype<UnI32>(0), op, nd, args, px, po, 0, 0); break;
    default: walk<UnU8>(changetype<UnU8>(0), op, nd, args, px, po, 0, 0); break;
  }
}
