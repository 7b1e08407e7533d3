/**
 * Scalar math for the js reference backend: the functions JavaScript's `Math` lacks or gets subtly different
 * from C/NumPy (erf, a stable sigmoid, round-half-to-even, IEEE/C `pow` special cases, exact int32 power and
 * truncating int32 division). Every elementwise kernel is defined by one of these scalar functions, so they
 * are the specification other backends are tested against.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2 / sqrt(pi)
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1 / sqrt(pi)

/**
 * exp(-x^2) without the error of rounding x^2 first: x^2 = hi + lo exactly (Dekker's product via a Veltkamp
 * split of x), then exp(-hi - lo) = exp(-hi) * exp(-lo) ~= exp(-hi) * (1 - lo) since |lo| <= ulp(hi) / 2.
 * Rounding x^2 directly would cost a relative error of about x^2 ulps in the result. Valid for |x| < 1e150.
 */
function expNegSquare(x: number): number {
  const hi = x * x;
  const c = 134217729 * x; // 2^27 + 1
  const xh = c - (c - x);
  const xl = x - xh;
  const lo = xh * xh - hi + 2 * xh * xl + xl * xl;
  return Math.exp(-hi) * (1 - lo);
}

/**
 * erfc(x) for x >= 1 by the continued fraction
 *   erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + (2/2) / (x + (3/2) / (x + ...)))),
 * evaluated with the modified Lentz algorithm. It converges faster the larger x is (about 190 terms at x = 1,
 * 30 at x = 3).
 */
function erfcLarge(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const an = n / 2;
    d = x + an * d;
    if (d === 0) d = tiny;
    c = x + an / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 2.3e-16) break;
  }
  return (ONE_OVER_SQRT_PI * expNegSquare(x)) / f;
}

/**
 * The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, to about 1e-15 relative error.
 * For |x| < 1 the all-positive series
 *   erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_{n>=0} 2^n x^(2n+1) / (1 * 3 * ... * (2n+1))
 * (no cancellation, unlike the Taylor series); for |x| >= 1, erf = 1 - erfc with erfc from a continued
 * fraction (erfc(1) ~= 0.16, so the subtraction loses under an ulp); for |x| >= 6, erf = +-1 exactly in
 * float64. Measured against mpmath: at most 3 ulps (7e-16 relative) over [-7, 7].
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  let r: number;
  if (ax < 1) {
    const x2 = ax * ax;
    let term = ax;
    let sum = ax;
    for (let n = 0; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 3);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    r = TWO_OVER_SQRT_PI * expNegSquare(ax) * sum;
  } else if (ax < 6) {
    r = 1 - erfcLarge(ax);
  } else {
    r = 1;
  }
  return x < 0 ? -r : x === 0 ? x : r; // odd: erf(-0) = -0, as C's erf
}

const INV_SQRT_2PI = 0.3989422804014327; // 1 / sqrt(2 pi)

/**
 * The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2. Below x = -sqrt 2 it is erfc from the continued
 * fraction (relative precision kept far into the lower tail, where 1 + erf would cancel); above, (1 + erf) / 2.
 */
export function normalCdf(x: number): number {
  const z = -x * Math.SQRT1_2;
  if (z === Number.POSITIVE_INFINITY) return 0;
  return z >= 1 ? 0.5 * erfcLarge(z) : 0.5 * (1 + erf(-z));
}

/** The exact GELU x Phi(x) (NaN at -Infinity: -Infinity * 0, as the composition 0.5 x (1 + erf(x / sqrt 2))). */
export function gelu(x: number): number {
  return x * normalCdf(x);
}

/** The GELU's derivative Phi(x) + x phi(x), with x phi(x) taken as its limit 0 at +-Infinity. */
export function geluDeriv(x: number): number {
  const xphi = Math.abs(x) < Number.POSITIVE_INFINITY ? x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI : 0;
  return normalCdf(x) + xphi;
}

/** Logistic sigmoid 1 / (1 + exp(-x)), written so that exp never overflows: for x < 0 use e^x / (1 + e^x). */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/**
 * Round to nearest, ties to even (NumPy/PyTorch `round`); keeps the sign of zero (round(-0.4) = -0).
 * x - floor(x) is exact in float64, so the tie test is exact.
 */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f;
  let r: number;
  if (d < 0.5) r = f;
  else if (d > 0.5) r = f + 1;
  else r = f % 2 === 0 ? f : f + 1;
  return r === 0 ? x * 0 : r; // x * 0 is -0 for negative x
}

/** max(x, 0) with relu(NaN) = NaN. */
export function relu(x: number): number {
  return x > 0 ? x : Number.isNaN(x) ? x : 0;
}

/** sign(x) in {-1, 0, 1}; NaN stays NaN. */
export function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : x;
}

/**
 * Float power with the C99/IEEE 754 special cases where JavaScript differs: pow(1, y) = 1 for every y (even
 * NaN) and pow(-1, +-Infinity) = 1. JavaScript's Math.pow gives NaN for both; C, NumPy and PyTorch give 1.
 */
export function powFloat(a: number, b: number): number {
  if (a === 1) return 1;
  if (a === -1 && (b === Number.POSITIVE_INFINITY || b === Number.NEGATIVE_INFINITY)) return 1;
  return Math.pow(a, b);
}

/**
 * Exact int32 power with C-style wrap-around (binary exponentiation with Math.imul). Negative exponents give
 * the truncated integer result: 1 for base 1, +-1 for base -1, 0 otherwise (including 0 ** -n, where PyTorch
 * raises).
 */
export function powInt32(a: number, b: number): number {
  if (b < 0) return a === 1 ? 1 : a === -1 ? (b & 1 ? -1 : 1) : 0;
  let r = 1;
  let base = a | 0;
  let e = b | 0;
  while (e > 0) {
    if (e & 1) r = Math.imul(r, base);
    base = Math.imul(base, base);
    e >>>= 1;
  }
  return r;
}

/**
 * int32 division truncating toward zero, with division by zero giving 0 (an int32 has no Inf/NaN; C would
 * trap). a / b in float64 then truncation is exact for int32 operands; -2^31 / -1 wraps to -2^31 as in two's
 * complement.
 */
export function divInt32(a: number, b: number): number {
  return b === 0 ? 0 : (a / b) | 0;
}
