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
