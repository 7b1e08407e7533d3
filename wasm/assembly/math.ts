/**
 * Scalar math of the wasm backend (AssemblyScript, float64): the functions WebAssembly lacks, written to give
 * the same values as the js reference backend's scalar.ts (erf by series / continued fraction, a sigmoid that
 * never overflows, the truncating-and-wrapping float -> int32 conversion of JavaScript's ToInt32), plus the
 * SIMD helpers the GEMM and reductions share (fused multiply-add where relaxed SIMD exists).
 */

const TWO_OVER_SQRT_PI: f64 = 1.1283791670955126;
const ONE_OVER_SQRT_PI: f64 = 0.5641895835477563;

/** exp(-x^2) with x^2 split exactly into hi + lo (Dekker's product), as in the js backend. */
function expNegSquare(x: f64): f64 {
  const hi = x * x;
  const c = 134217729.0 * x;
  const xh = c - (c - x);
  const xl = x - xh;
  const lo = xh * xh - hi + 2 * xh * xl + xl * xl;
  return Math.exp(-hi) * (1 - lo);
}

/** erfc(x) for x >= 1 by its continued fraction, evaluated with the modified Lentz algorithm. */
function erfcLarge(x: f64): f64 {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d: f64 = 0;
  for (let n = 1; n < 500; n++) {
    const an = <f64>n / 2;
    d = x + an * d;
    if (d == 0) d = tiny;
    c = x + an / c;
    if (c == 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 2.3e-16) break;
  }
  return (ONE_OVER_SQRT_PI * expNegSquare(x)) / f;
}

/** The error function to ~1e-15 relative error (same algorithm as the js backend's scalar.ts). */
export function erf64(x: f64): f64 {
  if (isNaN(x)) return x;
  const ax = Math.abs(x);
  let r: f64;
  if (ax < 1) {
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 0; n < 200; n++) {
      term *= (2 * x2) / <f64>(2 * n + 3);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    r = TWO_OVER_SQRT_PI * expNegSquare(ax) * sum;
  } else if (ax < 6) {
    r = 1 - erfcLarge(ax);
  } else {
    r = 1;
  }
  return x < 0 ? -r : r;
}

/** 1 / (1 + exp(-x)) without overflow: e^x / (1 + e^x) for negative x. */
@inline
export function sigmoid64(x: f64): f64 {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Float power with the C99 special cases the js backend uses: pow(1, y) = 1 for every y (even NaN) and
 * pow(-1, +-Infinity) = 1.
 */
@inline
export function pow64(a: f64, b: f64): f64 {
  if (a == 1) return 1;
  if (a == -1 && !isFinite(b) && !isNaN(b)) return 1;
  return Math.pow(a, b);
}

/** sign(x) in {-1, 0, 1}, NaN stays NaN. */
@inline
export function sign64(x: f64): f64 {
  return x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x;
}

/** max(x, 0) with NaN kept. */
@inline
export function relu64(x: f64): f64 {
  return x > 0 ? x : isNaN(x) ? x : 0;
}

/**
 * JavaScript's ToInt32 of a float: truncate toward zero, then wrap modulo 2^32 (NaN and infinities give 0).
 * For |t| >= 2^31, t - floor(t / 2^32) * 2^32 is exact (t is an integer, the scaling is by a power of two)
 * and lies in [0, 2^32).
 */
@inline
export function toInt32(x: f64): i32 {
  if (x > -2147483649.0 && x < 2147483648.0) return <i32>x;
  if (!isFinite(x)) return 0;
  const t = Math.trunc(x);
  const r = t - Math.floor(t / 4294967296.0) * 4294967296.0;
  return <i32>(<u32>r);
}

/** a * b + c on f32x4: fused (relaxed_madd) in the relaxed-SIMD build, mul then add otherwise. */
@inline
export function fmaF32(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

/** a * b + c on f64x2 (fused in the relaxed-SIMD build). */
@inline
export function fmaF64(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f64x2.relaxed_madd(a, b, c);
  } else {
    return f64x2.add(f64x2.mul(a, b), c);
  }
}

/**
 * exp on f32x4 (Cephes expf): n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for exactness),
 * exp(r) by a degree-6 polynomial on |r| <= ln(2) / 2, then scaled by 2^n as two factors 2^(n/2) 2^(n - n/2)
 * so that results overflow to Infinity and underflow through the subnormals correctly. x is first clamped to
 * [-104, 89] (beyond which the float32 result is 0 or Infinity); pmin/pmax keep NaN. About 1-2 ulp.
 */
@inline
export function expF32x4(x0: v128): v128 {
  const x = f32x4.pmax(f32x4.pmin(x0, f32x4.splat(89)), f32x4.splat(-104));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  const y = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const h = i32x4.shr_s(ni, 1);
  const bias = i32x4.splat(127);
  const s1 = i32x4.shl(i32x4.add(h, bias), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, h), bias), 23);
  return f32x4.mul(f32x4.mul(y, s1), s2);
}

/**
 * expF32x4 with the lanes below e^-87 (1.6e-38, near the smallest normal float) flushed to +0, for probabilities
 * (attention's scores, where masked entries are -Infinity): the exp of a far-negative lane would end in a
 * multiply whose result is subnormal or underflows, and on Intel cores each such operation takes a microcode
 * assist (WebAssembly has no flush mode). Causal attention, whose masked scores all went through exp, ran 1.8x
 * slower than the unmasked kind with the same products. NaN passes through.
 */
@inline
export function expFlushF32x4(x: v128): v128 {
  const lo = f32x4.splat(-87);
  const e = expF32x4(f32x4.pmax(x, lo)); // (pmax keeps a NaN x: it returns x unless lo > x)
  return v128.andnot(e, f32x4.lt(x, lo));
}

/** sigmoid on f32x4: 1 / (1 + exp(-x)); exp(-x) = Infinity gives exactly 0, NaN stays NaN. */
@inline
export function sigmoidF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, expF32x4(f32x4.neg(x))));
}

/**
 * tanh on f32x4 (Cephes tanhf): an odd polynomial x + x^3 P(x^2) for |x| < 0.625, else
 * 1 - 2 / (exp(2|x|) + 1) (which saturates to 1 when exp overflows), with the sign of x restored.
 */
@inline
export function tanhF32x4(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.splat(-5.70498872745e-3);
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(2.06390887954e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-5.37397155531e-2));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(1.33314422036e-1));
  p = f32x4.add(f32x4.mul(p, z), f32x4.splat(-3.33332819422e-1));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const one = f32x4.splat(1);
  const e = expF32x4(f32x4.add(ax, ax));
  const bigAbs = f32x4.sub(one, f32x4.div(f32x4.splat(2), f32x4.add(e, one)));
  const signBit = v128.and(x, i32x4.splat(0x80000000));
  const big = v128.or(bigAbs, signBit);
  return v128.bitselect(small, big, f32x4.lt(ax, f32x4.splat(0.625)));
}

/**
 * Natural log on f32x4 (Cephes logf): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a degree-9
 * polynomial in m - 1, plus e ln 2 (split in two). Subnormal inputs are scaled by 2^23 first; log(0) = -Inf,
 * log(x < 0) = NaN, log(Inf) = Inf, NaN stays NaN. About 1 ulp.
 */
@inline
export function logF32x4(x0: v128): v128 {
  const tiny = f32x4.lt(x0, f32x4.splat(1.17549435e-38)); // subnormal (or <= 0, fixed up below)
  const x = v128.bitselect(f32x4.mul(x0, f32x4.splat(8388608)), x0, tiny);
  let e = i32x4.sub(i32x4.shr_s(x, 23), i32x4.splat(126));
  e = v128.bitselect(i32x4.sub(e, i32x4.splat(23)), e, tiny);
  let m = v128.or(v128.and(x, i32x4.splat(0x807fffff)), i32x4.splat(0x3f000000)); // in [0.5, 1)
  const below = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, below); // the mask is -1 where m < sqrt(1/2)
  m = f32x4.add(f32x4.sub(m, f32x4.splat(1)), v128.and(m, below));
  const z = f32x4.mul(m, m);
  let y = f32x4.splat(7.0376836292e-2);
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-1.1514610310e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(1.1676998740e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-1.2420140846e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(1.4249322787e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-1.6668057665e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(2.0000714765e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(-2.4999993993e-1));
  y = f32x4.add(f32x4.mul(y, m), f32x4.splat(3.3333331174e-1));
  y = f32x4.mul(f32x4.mul(y, m), z);
  const fe = f32x4.convert_i32x4_s(e);
  y = f32x4.add(y, f32x4.mul(fe, f32x4.splat(-2.12194440e-4)));
  y = f32x4.sub(y, f32x4.mul(z, f32x4.splat(0.5)));
  let r = f32x4.add(f32x4.add(m, y), f32x4.mul(fe, f32x4.splat(0.693359375)));
  // special values: +Inf and NaN pass through, 0 gives -Inf, negatives give NaN
  r = v128.bitselect(x0, r, f32x4.eq(x0, f32x4.splat(Infinity)));
  r = v128.bitselect(x0, r, f32x4.ne(x0, x0));
  r = v128.bitselect(f32x4.splat(-Infinity), r, f32x4.eq(x0, f32x4.splat(0)));
  return v128.bitselect(f32x4.splat(NaN), r, f32x4.lt(x0, f32x4.splat(0)));
}

// ----------------------------------------------------------------------------------------------------------
// float32 transcendental functions on f32x4 (session 29): Cody-Waite argument reductions and short polynomials,
// branch-free (lane selects) except where a lane leaves the reduced range (sin, cos, tan beyond 2^28 and their
// non-finite arguments: those lanes alone are recomputed by the scalar float64 route). Plain multiplies and adds
// throughout (no relaxed_madd), so that the relaxed-SIMD and SIMD128 builds give the same bits. Worst errors
// against float64 Math rounded to float32 are in test/backend/wasm-vmath.test.ts (at most 4 ulp).

/** Lanes of a where mask is set, else b. */
@inline
function sel(mask: v128, a: v128, b: v128): v128 {
  return v128.bitselect(a, b, mask);
}

/** |a| with the sign bit of s. */
@inline
function copySignF32x4(a: v128, s: v128): v128 {
  return v128.or(v128.and(a, i32x4.splat(0x7fffffff)), v128.and(s, i32x4.splat(0x80000000)));
}

/** Horner step p * x + c. */
@inline
function hf(p: v128, x: v128, c: f32): v128 {
  return f32x4.add(f32x4.mul(p, x), f32x4.splat(c));
}

/**
 * The logarithm in base e (base 0; logF32x4's bits), 2 (base 1) or 10 (base 2), sharing logF32x4's reduction:
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)), f = m - 1, ln m = f - f^2 / 2 + f^3 P(f). log2 = e + ln m / ln 2
 * (exact at powers of 2: f = 0); log10 = e log10(2) + ln m log10(e), log10(2) in two parts (the first, 77 / 256,
 * exact in e * 0.30078125). Special values as logF32x4.
 */
@inline
function logBaseF32x4(x0: v128, base: i32): v128 {
  if (base == 0) return logF32x4(x0);
  const tiny = f32x4.lt(x0, f32x4.splat(1.17549435e-38));
  const x = sel(tiny, f32x4.mul(x0, f32x4.splat(8388608)), x0);
  let e = i32x4.sub(i32x4.shr_s(x, 23), i32x4.splat(126));
  e = sel(tiny, i32x4.sub(e, i32x4.splat(23)), e);
  let m = v128.or(v128.and(x, i32x4.splat(0x807fffff)), i32x4.splat(0x3f000000));
  const below = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, below);
  m = f32x4.add(f32x4.sub(m, f32x4.splat(1)), v128.and(m, below));
  const z = f32x4.mul(m, m);
  let y = f32x4.splat(7.0376836292e-2);
  y = hf(y, m, -1.1514610310e-1);
  y = hf(y, m, 1.1676998740e-1);
  y = hf(y, m, -1.2420140846e-1);
  y = hf(y, m, 1.4249322787e-1);
  y = hf(y, m, -1.6668057665e-1);
  y = hf(y, m, 2.0000714765e-1);
  y = hf(y, m, -2.4999993993e-1);
  y = hf(y, m, 3.3333331174e-1);
  y = f32x4.mul(f32x4.mul(y, m), z);
  const fe = f32x4.convert_i32x4_s(e);
  const lnm = f32x4.add(m, f32x4.sub(y, f32x4.mul(z, f32x4.splat(0.5))));
  let r: v128;
  if (base == 1) {
    r = f32x4.add(f32x4.mul(lnm, f32x4.splat(1.44269504088896341)), fe);
  } else {
    const t = f32x4.add(f32x4.mul(lnm, f32x4.splat(0.434294481903251828)), f32x4.mul(fe, f32x4.splat(2.48745663981195214e-4)));
    r = f32x4.add(f32x4.mul(fe, f32x4.splat(0.30078125)), t);
  }
  r = sel(f32x4.eq(x0, f32x4.splat(Infinity)), x0, r);
  r = sel(f32x4.ne(x0, x0), x0, r);
  r = sel(f32x4.eq(x0, f32x4.splat(0)), f32x4.splat(-Infinity), r);
  return sel(f32x4.lt(x0, f32x4.splat(0)), f32x4.splat(NaN), r);
}

@inline
export function log2F32x4(x: v128): v128 {
  return logBaseF32x4(x, 1);
}

@inline
export function log10F32x4(x: v128): v128 {
  return logBaseF32x4(x, 2);
}

/**
 * ln(1 + x): with u = 1 + x rounded, ln(u) x / (u - 1) corrects the rounding of the sum (x itself where
 * u - 1 = 0, which keeps -0); -1 gives -Infinity, x < -1 NaN, +Infinity +Infinity.
 */
@inline
export function log1pF32x4(x: v128): v128 {
  const u = f32x4.add(f32x4.splat(1), x);
  const d = f32x4.sub(u, f32x4.splat(1));
  const r = f32x4.mul(logF32x4(u), f32x4.div(x, d));
  const s = sel(f32x4.eq(d, f32x4.splat(0)), x, r);
  return sel(f32x4.eq(u, f32x4.splat(Infinity)), u, s);
}

/**
 * e^x - 1: for |x| < 0.7 the Taylor series to x^10 / 10! (the rest below 1e-9 of the result), else e^x - 1,
 * which cancels less than a bit there. Zeros keep their sign.
 */
@inline
export function expm1F32x4(x: v128): v128 {
  let p = f32x4.splat(2.75573192e-7);
  p = hf(p, x, 2.75573192e-6);
  p = hf(p, x, 2.48015873e-5);
  p = hf(p, x, 1.98412698e-4);
  p = hf(p, x, 1.38888889e-3);
  p = hf(p, x, 8.33333333e-3);
  p = hf(p, x, 4.16666667e-2);
  p = hf(p, x, 1.66666667e-1);
  p = hf(p, x, 0.5);
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, x), x), x);
  const big = f32x4.sub(expF32x4(x), f32x4.splat(1));
  const r = sel(f32x4.lt(f32x4.abs(x), f32x4.splat(0.7)), small, big);
  return sel(f32x4.eq(x, f32x4.splat(0)), x, r);
}

/**
 * e^a / 2 for a = |x| >= 0 (sinh, cosh), finite as long as they are: directly below 88, above as
 * (e^(a/2) / 2) e^(a/2) (halving is exact).
 */
@inline
function halfExpAbs(a: v128): v128 {
  const big = f32x4.ge(a, f32x4.splat(88));
  const e = expF32x4(sel(big, f32x4.mul(a, f32x4.splat(0.5)), a));
  const h = f32x4.mul(e, f32x4.splat(0.5));
  return sel(big, f32x4.mul(h, e), h);
}

/** sinh: the odd Taylor series to x^13 / 13! for |x| < 1, else sign(x) (h - 1 / (4 h)), h = e^|x| / 2. */
@inline
export function sinhF32x4(x: v128): v128 {
  const a = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = f32x4.splat(1.60590438e-10);
  p = hf(p, z, 2.50521084e-8);
  p = hf(p, z, 2.75573192e-6);
  p = hf(p, z, 1.98412698e-4);
  p = hf(p, z, 8.33333333e-3);
  p = hf(p, z, 1.66666667e-1);
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x);
  const h = halfExpAbs(a);
  const big = copySignF32x4(f32x4.sub(h, f32x4.div(f32x4.splat(0.25), h)), x);
  return sel(f32x4.lt(a, f32x4.splat(1)), small, big); // NaN: big is NaN
}

/** cosh = h + 1 / (4 h), h = e^|x| / 2. */
@inline
export function coshF32x4(x: v128): v128 {
  const h = halfExpAbs(f32x4.abs(x));
  return f32x4.add(h, f32x4.div(f32x4.splat(0.25), h));
}

/**
 * asinh = sign(x) ln(1 + a + a^2 / (1 + sqrt(1 + a^2))), a = |x|; from a = 4096 on, sign(x) (ln a + ln 2) (the
 * rest is below float32's resolution there, and a^2 would overflow further on).
 */
@inline
export function asinhF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  const a = f32x4.abs(x);
  const a2 = f32x4.mul(a, a);
  const small = log1pF32x4(f32x4.add(a, f32x4.div(a2, f32x4.add(one, f32x4.sqrt(f32x4.add(one, a2))))));
  const big = f32x4.add(logF32x4(a), f32x4.splat(0.693147180559945309));
  return copySignF32x4(sel(f32x4.lt(a, f32x4.splat(4096)), small, big), x);
}

/** acosh = ln(1 + t + sqrt(t (x + 1))), t = x - 1 (exact near 1); from 4096 on ln x + ln 2; NaN below 1. */
@inline
export function acoshF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  const t = f32x4.sub(x, one);
  const small = log1pF32x4(f32x4.add(t, f32x4.sqrt(f32x4.mul(t, f32x4.add(x, one)))));
  const big = f32x4.add(logF32x4(x), f32x4.splat(0.693147180559945309));
  const r = sel(f32x4.lt(x, f32x4.splat(4096)), small, big); // NaN: big is NaN
  return sel(f32x4.lt(x, one), f32x4.splat(NaN), r);
}

/** atanh = sign(x) ln(1 + 2 a / (1 - a)) / 2, a = |x|: +-Infinity at +-1, NaN beyond. */
@inline
export function atanhF32x4(x: v128): v128 {
  const a = f32x4.abs(x);
  const q = f32x4.div(f32x4.add(a, a), f32x4.sub(f32x4.splat(1), a));
  return copySignF32x4(f32x4.mul(f32x4.splat(0.5), log1pF32x4(q)), x);
}

/**
 * atan = sign(x) (b + atan t), a = |x| reduced to |t| <= tan(pi/8): t = a (b = 0) up to sqrt 2 - 1, t = -1 / a
 * (b = pi/2) above sqrt 2 + 1, t = (a - 1) / (a + 1) (b = pi/4) between; atan t by its series to t^21 / 21; b in
 * two parts, added as hi + (lo + atan t).
 */
@inline
export function atanF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  const a = f32x4.abs(x);
  const big = f32x4.gt(a, f32x4.splat(2.41421356));
  const mid = f32x4.gt(a, f32x4.splat(0.414213562));
  const t = sel(big, f32x4.div(f32x4.splat(-1), a), sel(mid, f32x4.div(f32x4.sub(a, one), f32x4.add(a, one)), a));
  const hi = sel(big, f32x4.splat(1.57079637), v128.and(mid, f32x4.splat(0.785398185)));
  const lo = sel(big, f32x4.splat(-4.37113883e-8), v128.and(mid, f32x4.splat(-2.18556941e-8)));
  const z = f32x4.mul(t, t);
  let p = f32x4.splat(-4.76190476e-2);
  p = hf(p, z, 5.26315789e-2);
  p = hf(p, z, -5.88235294e-2);
  p = hf(p, z, 6.66666667e-2);
  p = hf(p, z, -7.69230769e-2);
  p = hf(p, z, 9.09090909e-2);
  p = hf(p, z, -1.11111111e-1);
  p = hf(p, z, 1.42857143e-1);
  p = hf(p, z, -2.0e-1);
  p = hf(p, z, 3.33333333e-1);
  const at = f32x4.sub(t, f32x4.mul(f32x4.mul(p, z), t));
  return copySignF32x4(f32x4.add(hi, f32x4.add(lo, at)), x); // NaN: t is NaN
}

/** asin = atan(x / sqrt((1 - a)(1 + a))), a = |x|: +-pi/2 at +-1, NaN beyond. */
@inline
export function asinF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  const a = f32x4.abs(x);
  return atanF32x4(f32x4.div(x, f32x4.sqrt(f32x4.mul(f32x4.sub(one, a), f32x4.add(one, a)))));
}

/** acos = 2 atan(sqrt((1 - x) / (1 + x))): no cancellation near 1, pi at -1, NaN beyond. */
@inline
export function acosF32x4(x: v128): v128 {
  const one = f32x4.splat(1);
  const s = f32x4.sqrt(f32x4.div(f32x4.sub(one, x), f32x4.add(one, x)));
  return f32x4.mul(f32x4.splat(2), atanF32x4(s));
}

/**
 * erfc z for z >= 0 by the Chebyshev fit of Numerical Recipes (erfcc): t = 1 / (1 + z / 2),
 * erfc z = t e^(-z^2 + P(t)), fractional error below 1.2e-7.
 */
@inline
function erfcPosF32x4(z: v128): v128 {
  const t = erfcT(z);
  return f32x4.mul(t, expF32x4(f32x4.sub(erfcPoly(t), f32x4.mul(z, z))));
}

/** The fit's t = 1 / (1 + z / 2). */
@inline
function erfcT(z: v128): v128 {
  return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), f32x4.mul(f32x4.splat(0.5), z)));
}

/** The fit's P(t). */
@inline
function erfcPoly(t: v128): v128 {
  let p = f32x4.splat(0.17087277);
  p = hf(p, t, -0.82215223);
  p = hf(p, t, 1.48851587);
  p = hf(p, t, -1.13520398);
  p = hf(p, t, 0.27886807);
  p = hf(p, t, -0.18628806);
  p = hf(p, t, 0.09678418);
  p = hf(p, t, 0.37409196);
  p = hf(p, t, 1.00002368);
  p = hf(p, t, -1.26551223);
  return p;
}

/**
 * erf: for |x| < 1 the series 2/sqrt(pi) x sum (-1)^n x^2n / (n! (2n + 1)) to n = 10, else sign(x) (1 - erfc |x|)
 * with erfc at min(|x|, 4) (erf rounds to 1 from there on, and e^(-x^2) would go subnormal). Zeros keep their
 * sign.
 */
@inline
export function erfF32x4(x: v128): v128 {
  const small = erfSeriesF32x4(x);
  const a = f32x4.abs(x);
  const big = copySignF32x4(f32x4.sub(f32x4.splat(1), erfcPosF32x4(f32x4.pmin(a, f32x4.splat(4)))), x);
  const r = sel(f32x4.lt(a, f32x4.splat(1)), small, big); // NaN: pmin keeps it, big is NaN
  return sel(f32x4.eq(x, f32x4.splat(0)), x, r);
}

/** erfF32x4's series for |x| < 1 (2/sqrt(pi) x sum (-1)^n x^2n / (n! (2n + 1)) to n = 10). */
@inline
function erfSeriesF32x4(x: v128): v128 {
  const z = f32x4.mul(x, x);
  let p = f32x4.splat(1.31225330e-8);
  p = hf(p, z, -1.45038522e-7);
  p = hf(p, z, 1.45891690e-6);
  p = hf(p, z, -1.32275132e-5);
  p = hf(p, z, 1.06837607e-4);
  p = hf(p, z, -7.57575758e-4);
  p = hf(p, z, 4.62962963e-3);
  p = hf(p, z, -2.38095238e-2);
  p = hf(p, z, 1.0e-1);
  p = hf(p, z, -3.33333333e-1);
  return f32x4.mul(f32x4.add(f32x4.mul(f32x4.mul(p, z), x), x), f32x4.splat(1.12837917));
}

/** 1 / sqrt(2 pi), as the js backend's scalar.ts writes it. */
const INV_SQRT_2PI: f64 = 0.3989422804014327;

/** The standard normal CDF Phi(x) in float64, the js backend's normalCdf: erfc(-x / sqrt 2) / 2. */
function normalCdf64(x: f64): f64 {
  const z = -x * Math.SQRT1_2;
  if (z == Infinity) return 0;
  return z >= 1 ? 0.5 * erfcLarge(z) : 0.5 * (1 + erf64(-z));
}

/** The exact GELU x Phi(x) in float64 (NaN at -Infinity, as the js backend's gelu). */
export function gelu64(x: f64): f64 {
  return x * normalCdf64(x);
}

/** The GELU's derivative Phi(x) + x phi(x) in float64, x phi(x) taken as 0 at +-Infinity (the js backend's). */
export function geluDeriv64(x: f64): f64 {
  const xphi = Math.abs(x) < Infinity ? x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI : 0;
  return normalCdf64(x) + xphi;
}

/**
 * e^(-x^2 / 2) for the GELU, as two factors: x is split as a = ah + al with ah holding the top 12 bits of its
 * significand, so that hi = ah^2 / 2 is exact in float32, and e^(-x^2/2 + c) = e^(-hi) e^(c - lo) with
 * lo = al (ah + al / 2). Rounding -x^2 / 2 + c to float32 first would leave an error of about x^2 2^-24 in the
 * exponent: 80 ulp of Phi at x = -13. Returns e^(-hi); `lo` the correction.
 */
@inline
function halfSquareSplit(a: v128): v128 {
  const ah = v128.and(a, i32x4.splat(0xfffff000));
  return f32x4.mul(f32x4.mul(ah, ah), f32x4.splat(0.5));
}
@inline
function halfSquareLo(a: v128): v128 {
  const ah = v128.and(a, i32x4.splat(0xfffff000));
  const al = f32x4.sub(a, ah);
  return f32x4.mul(al, f32x4.add(ah, f32x4.mul(al, f32x4.splat(0.5))));
}

/**
 * Phi(-|x|) / e^(-hi) = t e^(P(t) - lo) / 2: erfcPosF32x4's fit of erfc(z) / 2 at z = |x| / sqrt 2 with
 * z^2 = x^2 / 2 split as above (the caller multiplies e^(-hi) in last, so that a result in the subnormal range
 * is rounded there once). Phi(-|x|) keeps its relative precision into the lower tail.
 */
@inline
function lowerCdfScaled(a: v128, lo: v128): v128 {
  const t = erfcT(f32x4.mul(a, f32x4.splat(0.70710678118654752)));
  return f32x4.mul(f32x4.mul(f32x4.splat(0.5), t), expF32x4(f32x4.sub(erfcPoly(t), lo)));
}

/**
 * The pieces of the GELU and its derivative at x (|x| clamped to 20: Phi(-20) is below float32's range, and
 * infinities stay finite in the split; pmin keeps NaN):
 *   - near 0 (|x| < 1 / sqrt 2) Phi(x) = (1 + erf(x / sqrt 2)) / 2 by erfF32x4's series, free of the fit's
 *     rounding there (|erf| < 0.52, so no cancellation either side);
 *   - elsewhere Phi(-|x|) = hs e^(-hi) (lowerCdfScaled), and Phi(x) = 1 - Phi(-|x|) for x > 0;
 *   - e^(-x^2 / 2) = e^(-hi) e^(-lo) (geluDeriv's density).
 */
// geluParts' results (module globals rather than an object: a kernel allocates nothing)
let gTail: v128 = i32x4.splat(0); // lanes x <= -1 / sqrt 2, where e^(-hi) is factored out
let gPhi: v128 = i32x4.splat(0); // Phi(x) where not gTail
let gHs: v128 = i32x4.splat(0); // Phi(-|x|) / e^(-hi)
let gEh: v128 = i32x4.splat(0); // e^(-hi)
let gLo: v128 = i32x4.splat(0); // lo

@inline
function geluParts(x: v128): void {
  const a = f32x4.pmin(f32x4.abs(x), f32x4.splat(20));
  const small = f32x4.lt(a, f32x4.splat(0.70710678118654752));
  const lo = halfSquareLo(a);
  gLo = lo;
  gEh = expF32x4(f32x4.neg(halfSquareSplit(a)));
  gHs = lowerCdfScaled(a, lo);
  // (the series at a clamped argument: lanes beyond it take `far`; NaN stays NaN)
  const zs = f32x4.pmin(f32x4.pmax(f32x4.mul(x, f32x4.splat(0.70710678118654752)), f32x4.splat(-1)), f32x4.splat(1));
  const near = f32x4.mul(f32x4.splat(0.5), f32x4.add(f32x4.splat(1), erfSeriesF32x4(zs)));
  const far = f32x4.sub(f32x4.splat(1), f32x4.mul(gHs, gEh));
  gPhi = sel(small, near, far);
  gTail = v128.andnot(f32x4.lt(x, f32x4.splat(0)), small);
}

/** The exact GELU x Phi(x) on f32x4 (NaN at -Infinity: -Infinity * 0, as the js backend's). */
@inline
export function geluF32x4(x: v128): v128 {
  geluParts(x);
  // lower tail: (x hs) e^(-hi), the tiny factor last
  return sel(gTail, f32x4.mul(f32x4.mul(x, gHs), gEh), f32x4.mul(x, gPhi));
}

/**
 * The GELU's derivative Phi(x) + x phi(x) on f32x4, phi(x) = e^(-x^2 / 2) / sqrt(2 pi); the x phi(x) term is 0 at
 * +-Infinity (so 0 at -Infinity, 1 at +Infinity), NaN propagates. In the lower tail both terms carry e^(-hi),
 * multiplied in once at the end.
 */
@inline
export function geluDerivF32x4(x: v128): v128 {
  geluParts(x);
  const finite = f32x4.lt(f32x4.abs(x), f32x4.splat(Infinity));
  const elo = expF32x4(f32x4.neg(gLo));
  const xe = sel(finite, f32x4.mul(f32x4.mul(x, elo), f32x4.splat(0.3989422804014327)), f32x4.splat(0));
  const tail = f32x4.mul(f32x4.add(gHs, xe), gEh);
  return sel(gTail, tail, f32x4.add(gPhi, f32x4.mul(xe, gEh)));
}

/** sin, cos, tan: where the vector reduction holds (|x| below it; its k stays below 2^29). */
const TRIG_MAX: f32 = 268435456.0;

/** The scalar float64 route of sin (which 0), cos (1), tan (2), rounded to float32. */
function trigScalar(which: i32, x: f32): f32 {
  const d = <f64>x;
  return <f32>(which == 0 ? sin64(d) : which == 1 ? cos64(d) : tan64(d));
}

/**
 * sin, cos and tan of a float64: the host's Math functions (imported as env.sin, env.cos, env.tan; V8's in Node
 * and Chromium, so the js backend's values exactly). AssemblyScript's own reduction of 2^20 pi / 2 <= |x| < 2^22
 * (exponents 20 and 21 of its "large" path) indexes its 2/pi bit table at a negative offset and reads the 8
 * bytes the module's layout puts before it: in this module they are not zero, and its cos and sin of 1855979.52
 * came out with the wrong sign (found by the differential fuzzer; a module of those functions alone gave the
 * right value). Reducing by a multiple of 2 pi in float64 first left up to 60 ulp next to tan's poles.
 */
@external("env", "sin")
declare function hostSin(x: f64): f64;
@external("env", "cos")
declare function hostCos(x: f64): f64;
@external("env", "tan")
declare function hostTan(x: f64): f64;
export function sin64(x: f64): f64 {
  return hostSin(x);
}
export function cos64(x: f64): f64 {
  return hostCos(x);
}
export function tan64(x: f64): f64 {
  return hostTan(x);
}

/** r with the lanes whose `ok` is clear recomputed by trigScalar (the huge and non-finite arguments). */
function trigLanes(which: i32, x: v128, r: v128, ok: v128): v128 {
  if (!i32x4.extract_lane(ok, 0)) r = f32x4.replace_lane(r, 0, trigScalar(which, f32x4.extract_lane(x, 0)));
  if (!i32x4.extract_lane(ok, 1)) r = f32x4.replace_lane(r, 1, trigScalar(which, f32x4.extract_lane(x, 1)));
  if (!i32x4.extract_lane(ok, 2)) r = f32x4.replace_lane(r, 2, trigScalar(which, f32x4.extract_lane(x, 2)));
  if (!i32x4.extract_lane(ok, 3)) r = f32x4.replace_lane(r, 3, trigScalar(which, f32x4.extract_lane(x, 3)));
  return r;
}

/** x - k pi/2 in float64 for the two float32 lanes promoted in xd (pi/2 in three parts: 24, 24, 53 bits). */
@inline
function reduceF64x2(xd: v128, k: v128): v128 {
  let r = f64x2.sub(xd, f64x2.mul(k, f64x2.splat(1.570796251296997)));
  r = f64x2.sub(r, f64x2.mul(k, f64x2.splat(7.549789415861596e-8)));
  return f64x2.sub(r, f64x2.mul(k, f64x2.splat(5.390302858158119e-15)));
}

/**
 * sin (which 0), cos (1), tan (2) on f32x4. x = k pi/2 + r, |r| <= pi/4, reduced in float64 (f64x2, two lanes at
 * a time): k P1 and k P2 are exact for |k| < 2^29, so r keeps its relative precision even next to a multiple of
 * pi/2; sin r and cos r by their Taylor series to r^9 / 9! and r^10 / 10! in float32; the quadrant k mod 4
 * picks +-sin r, +-cos r (tan: their quotient). Lanes with |x| >= 2^28, infinite or NaN are recomputed by the
 * scalar float64 route (trigLanes); zeros keep their sign (sin, tan).
 */
@inline
function trigF32x4(x: v128, which: i32): v128 {
  const ok = f32x4.lt(f32x4.abs(x), f32x4.splat(TRIG_MAX));
  const xs = v128.and(x, ok); // out-of-range lanes reduced as 0, replaced below
  const twoOverPi = f64x2.splat(0.6366197723675814);
  const xlo = f64x2.promote_low_f32x4(xs);
  const xhi = f64x2.promote_low_f32x4(v128.shuffle<i64>(xs, xs, 1, 1));
  const klo = f64x2.nearest(f64x2.mul(xlo, twoOverPi));
  const khi = f64x2.nearest(f64x2.mul(xhi, twoOverPi));
  const rlo = f32x4.demote_f64x2_zero(reduceF64x2(xlo, klo));
  const rhi = f32x4.demote_f64x2_zero(reduceF64x2(xhi, khi));
  const r = v128.shuffle<i64>(rlo, rhi, 0, 2);
  const q = v128.shuffle<i64>(i32x4.trunc_sat_f64x2_s_zero(klo), i32x4.trunc_sat_f64x2_s_zero(khi), 0, 2);
  const z = f32x4.mul(r, r);
  let ps = f32x4.splat(2.75573192e-6);
  ps = hf(ps, z, -1.98412698e-4);
  ps = hf(ps, z, 8.33333333e-3);
  ps = hf(ps, z, -1.66666667e-1);
  let pc = f32x4.splat(-2.75573192e-7);
  pc = hf(pc, z, 2.48015873e-5);
  pc = hf(pc, z, -1.38888889e-3);
  pc = hf(pc, z, 4.16666667e-2);
  pc = hf(pc, z, -0.5);
  const s = f32x4.add(f32x4.mul(f32x4.mul(ps, z), r), r);
  const c = f32x4.add(f32x4.mul(pc, z), f32x4.splat(1));
  // odd quadrant: the roles of sin r and cos r swap
  const odd = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(1));
  let v: v128;
  if (which == 2) {
    // s / c in even quadrants, -c / s in odd ones
    v = f32x4.div(sel(odd, f32x4.neg(c), s), sel(odd, s, c));
  } else {
    // sin: q = 0 s, 1 c, 2 -s, 3 -c; cos is sin of quadrant q + 1
    const qq = which == 1 ? i32x4.add(q, i32x4.splat(1)) : q;
    const oddq = which == 1 ? v128.not(odd) : odd;
    v = v128.xor(sel(oddq, c, s), i32x4.shl(v128.and(qq, i32x4.splat(2)), 30));
  }
  if (which != 1) v = sel(f32x4.eq(x, f32x4.splat(0)), x, v);
  if (i32x4.all_true(ok)) return v;
  return trigLanes(which, x, v, ok);
}

@inline
export function sinF32x4(x: v128): v128 {
  return trigF32x4(x, 0);
}

@inline
export function cosF32x4(x: v128): v128 {
  return trigF32x4(x, 1);
}

@inline
export function tanF32x4(x: v128): v128 {
  return trigF32x4(x, 2);
}

/**
 * atan2(y, x) on f32x4, the angle of the point (x, y): with a = |y|, b = |x| and t = atan(min / max) in
 * [0, pi/4], the angle is t, pi/2 - t, pi/2 + t or pi - t (by a > b and the sign bit of x), its constant in two
 * parts so that the sum is rounded once; the sign of y. C's special cases: both zero +-0 or +-pi (x = -0 or
 * x < 0), both infinite +-pi/4 or +-3pi/4; NaN in, NaN out.
 */
@inline
export function atan2F32x4(y: v128, x: v128): v128 {
  const a = f32x4.abs(y);
  const b = f32x4.abs(x);
  const swap = f32x4.gt(a, b);
  const neg = i32x4.lt_s(x, i32x4.splat(0)); // x's sign bit, -0 included
  const t = atanF32x4(f32x4.div(sel(swap, b, a), sel(swap, a, b))); // NaN in: NaN here and out
  const hi = sel(swap, f32x4.splat(1.57079637), v128.and(neg, f32x4.splat(3.14159274)));
  const lo = sel(swap, f32x4.splat(-4.37113883e-8), v128.and(neg, f32x4.splat(-8.74227766e-8)));
  const st = v128.xor(t, v128.and(v128.xor(swap, neg), i32x4.splat(0x80000000))); // -t where swap != neg
  let r = f32x4.add(hi, f32x4.add(lo, st));
  const zero = f32x4.splat(0);
  const inf = f32x4.splat(Infinity);
  const bothZero = v128.and(f32x4.eq(a, zero), f32x4.eq(b, zero));
  const bothInf = v128.and(f32x4.eq(a, inf), f32x4.eq(b, inf));
  r = sel(bothZero, v128.and(neg, f32x4.splat(3.14159274)), r);
  r = sel(bothInf, sel(neg, f32x4.splat(2.3561945), f32x4.splat(0.785398185)), r);
  return copySignF32x4(r, y);
}
