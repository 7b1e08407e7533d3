// Branch-free float32 exp, log, tanh and sigmoid that the compiler can vectorise (libm's scalar expf & co.
// stop a loop from vectorising). Each is a Cody-Waite range reduction plus a minimax polynomial with the
// coefficients of the Cephes library (S. Moshier), written with selects instead of branches. Worst error
// against correctly rounded float64 references, over every 97th float32 bit pattern (44 million inputs, all
// ranges including subnormals and the overflow edges): exp 1 ulp, log 1 ulp, tanh 1 ulp, sigmoid 3 ulp.
// NaN and infinities give the C99 results. With AVX-512 exp_f32 runs at ~0.2 ns per element (libm: ~2 ns).
// The baseline SSE2 build does not vectorise these, so it keeps libm (see elementwise.cc).
#pragma once

#include "isa.h"

namespace cr {
namespace CR_ISA_NS {

CR_INLINE float bits_to_float(int32_t b) { return __builtin_bit_cast(float, b); }
CR_INLINE int32_t float_to_bits(float f) { return __builtin_bit_cast(int32_t, f); }

// Round to nearest integer (valid for |t| < 2^22) without a libm call: adding 1.5 * 2^23 leaves no
// fraction bits.
CR_INLINE float round_small(float t) { return (t + 12582912.0f) - 12582912.0f; }

// e^x. x = k ln2 + r with |r| <= ln2 / 2; e^r by a degree-7 polynomial; 2^k applied in two halves so that
// subnormal results are rounded once and overflow gives +Inf.
CR_INLINE float exp_f32(float x) {
  const float xc = x > 89.0f ? 89.0f : (x < -104.0f ? -104.0f : x);  // NaN passes through
  const float k = round_small(xc * 1.44269504088896341f);
  const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t ki = xc == xc ? (int32_t)k : 0;
  const int32_t k1 = ki >> 1, k2 = ki - k1;
  const float s1 = bits_to_float((k1 + 127) << 23), s2 = bits_to_float((k2 + 127) << 23);
  return p * s1 * s2;
}

// e^x with the results below e^-87 (1.6e-38, near the smallest normal float) flushed to +0, for probabilities
// (attention's scores, where masked entries are -Infinity): e^x of a far-negative x would otherwise end in a
// multiply whose result is subnormal or underflows to zero, and on Intel cores each such vector operation takes
// a microcode assist (~100 cycles). Causal attention, whose masked scores all went through exp, ran slower than
// the unmasked kind with twice the work. One compare and select more than exp_f32; NaN passes through.
CR_INLINE float exp_f32_flush(float x) {
  const float e = exp_f32(x < -87.0f ? -87.0f : x);
  return x < -87.0f ? 0.0f : e;
}

// The parts of ln x that log_f32, log2_f32 and log10_f32 share: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
// f = m - 1, z = f^2, y = f^3 P(f); then ln m = f - z / 2 + y. Positive finite x only (the callers select the
// special cases with log_special).
struct LogParts {
  float f, z, y, fe;
};
CR_INLINE LogParts log_parts(float x) {
  const bool sub = x < 1.17549435e-38f;  // subnormal (or <= 0, handled at the end)
  const float xs = sub ? x * 8388608.0f : x;
  const int32_t b = float_to_bits(xs);
  int32_t e = ((b >> 23) & 0xff) - 126 - (sub ? 23 : 0);
  float m = bits_to_float((b & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  const bool lo = m < 0.707106781186547524f;
  e = lo ? e - 1 : e;
  const float f = lo ? m + m - 1.0f : m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  return LogParts{f, z, y, (float)e};
}
// Special cases of every logarithm: log(+-0) = -Inf, log(x < 0) = NaN, log(+Inf) = +Inf, log(NaN) = NaN; r for
// the other x.
CR_INLINE float log_special(float x, float r) {
  r = x == 0.0f ? -__builtin_inff() : r;
  r = x < 0.0f ? __builtin_nanf("") : r;
  r = x == __builtin_inff() ? x : r;
  return x != x ? x : r;
}

// ln x = e ln 2 + ln m, ln 2 in two parts (the first exact in e * 0.693359375).
CR_INLINE float log_f32(float x) {
  const LogParts p = log_parts(x);
  float y = p.y;
  y += -2.12194440e-4f * p.fe;
  y += -0.5f * p.z;
  float r = p.f + y;
  r += 0.693359375f * p.fe;
  return log_special(x, r);
}

// log2 x = e + ln m / ln 2: exact at powers of 2 (m = 1).
CR_INLINE float log2_f32(float x) {
  const LogParts p = log_parts(x);
  const float lnm = p.f + (p.y - 0.5f * p.z);
  return log_special(x, lnm * 1.44269504088896341f + p.fe);
}

// log10 x = e log10(2) + ln m log10(e), log10(2) in two parts (the first, 77 / 256, exact in e * 0.30078125).
CR_INLINE float log10_f32(float x) {
  const LogParts p = log_parts(x);
  const float lnm = p.f + (p.y - 0.5f * p.z);
  return log_special(x, p.fe * 0.30078125f + (lnm * 0.434294481903251828f + p.fe * 2.48745663981195214e-4f));
}

// ln(1 + x): with u = 1 + x rounded, ln(u) x / (u - 1) corrects the rounding of the sum (x itself where u = 1);
// x = -1 gives -Inf, x < -1 NaN, +Inf +Inf.
CR_INLINE float log1p_f32(float x) {
  const float u = 1.0f + x;
  const float d = u - 1.0f;
  const float r = log_f32(u) * (x / d);
  const float s = d == 0.0f ? x : r;
  return u == __builtin_inff() ? u : s;
}

// e^x - 1: for |x| < 0.7 the Taylor series to x^10 / 10! (truncation below 1e-9 of the result), else e^x - 1,
// which there cancels less than a bit.
CR_INLINE float expm1_f32(float x) {
  float p = 2.75573192e-7f;  // 1 / 10!
  p = p * x + 2.75573192e-6f;
  p = p * x + 2.48015873e-5f;
  p = p * x + 1.98412698e-4f;
  p = p * x + 1.38888889e-3f;
  p = p * x + 8.33333333e-3f;
  p = p * x + 4.16666667e-2f;
  p = p * x + 1.66666667e-1f;
  p = p * x + 0.5f;
  const float small = (p * x) * x + x;
  const float big = exp_f32(x) - 1.0f;
  const float r = __builtin_fabsf(x) < 0.7f ? small : big;
  return x == 0.0f ? x : r;  // -0 stays -0 ((p x) x + x gives +0 there)
}

// e^|x| / 2 for sinh and cosh, finite as long as they are: e^|x| / 2 directly below |x| = 88, above it as
// (e^{|x|/2} / 2) e^{|x|/2}, whose factors do not overflow (halving |x| is exact; subtracting ln 2 instead would
// round |x|, 4e-6 of the result at |x| = 88).
CR_INLINE float half_exp_abs(float a) {
  const bool big = a >= 88.0f;
  const float e = exp_f32(big ? 0.5f * a : a);
  const float h = 0.5f * e;
  return big ? h * e : h;
}

// sinh x: the odd Taylor series to x^13 / 13! for |x| < 1, else sign(x) (h - 1 / (4 h)) with h = e^|x| / 2.
CR_INLINE float sinh_f32(float x) {
  const float a = __builtin_fabsf(x);
  const float z = x * x;
  float p = 1.60590438e-10f;  // 1 / 13!
  p = p * z + 2.50521084e-8f;
  p = p * z + 2.75573192e-6f;
  p = p * z + 1.98412698e-4f;
  p = p * z + 8.33333333e-3f;
  p = p * z + 1.66666667e-1f;
  const float small = (p * z) * x + x;
  const float h = half_exp_abs(a);
  const float big = __builtin_copysignf(h - 0.25f / h, x);
  return a < 1.0f ? small : big;  // NaN: big is NaN
}

// cosh x = h + 1 / (4 h) with h = e^|x| / 2.
CR_INLINE float cosh_f32(float x) {
  const float h = half_exp_abs(__builtin_fabsf(x));
  return h + 0.25f / h;
}

// asinh x = sign(x) ln(1 + a + a^2 / (1 + sqrt(1 + a^2))), a = |x|; for a >= 4096, sign(x) (ln a + ln 2) (the
// rest, 1 / (4 a^2), is below a float's resolution there, and a^2 would overflow further on).
CR_INLINE float asinh_f32(float x) {
  const float a = __builtin_fabsf(x);
  const float a2 = a * a;
  const float small = log1p_f32(a + a2 / (1.0f + __builtin_sqrtf(1.0f + a2)));
  const float big = log_f32(a) + 0.693147180559945309f;
  return __builtin_copysignf(a < 4096.0f ? small : big, x);  // NaN: big is NaN
}

// acosh x = ln(1 + t + sqrt(t (x + 1))), t = x - 1 (exact near 1); for x >= 4096, ln x + ln 2; NaN below 1.
CR_INLINE float acosh_f32(float x) {
  const float t = x - 1.0f;
  const float small = log1p_f32(t + __builtin_sqrtf(t * (x + 1.0f)));
  const float big = log_f32(x) + 0.693147180559945309f;
  const float r = x < 4096.0f ? small : big;  // NaN: big is NaN
  return x < 1.0f ? __builtin_nanf("") : r;
}

// atanh x = sign(x) ln(1 + 2 a / (1 - a)) / 2, a = |x|: +-Inf at +-1, NaN beyond (the argument of ln is then
// below 0).
CR_INLINE float atanh_f32(float x) {
  const float a = __builtin_fabsf(x);
  return __builtin_copysignf(0.5f * log1p_f32((a + a) / (1.0f - a)), x);
}

// sin, cos and tan. x = k pi/2 + r, |r| <= pi/4, reduced in double with pi/2 in three parts (24, 24 and 53 bits,
// so k P1 and k P2 are exact for |k| < 2^29 and r keeps its relative precision even next to a multiple of pi/2);
// sin r and cos r by their Taylor series to r^9 / 9! and r^10 / 10! (truncation below 3e-9); the quadrant k mod 4
// picks the result. |x| >= kTrigMax (2^28, where k could reach 2^29) and the infinities give NaN here: the
// callers compute the finite ones with libm (ew_ops.h, trig_or_libm).
constexpr float kTrigMax = 268435456.0f;
struct TrigParts {
  float s, c;  // sin r, cos r
  double q;    // k mod 4
};
CR_INLINE TrigParts trig_parts(float x) {
  const double xd = (double)(__builtin_fabsf(x) < kTrigMax ? x : 0.0f);
  const double k = (xd * 0.6366197723675814 + 6755399441055744.0) - 6755399441055744.0;  // + 1.5 2^52: rounds
  const double rd = ((xd - k * 1.570796251296997) - k * 7.549789415861596e-08) - k * 5.390302858158119e-15;
  const float r = (float)rd;
  const float z = r * r;
  float ps = 2.75573192e-6f;  // 1 / 9!
  ps = ps * z - 1.98412698e-4f;
  ps = ps * z + 8.33333333e-3f;
  ps = ps * z - 1.66666667e-1f;
  float pc = -2.75573192e-7f;  // -1 / 10!
  pc = pc * z + 2.48015873e-5f;
  pc = pc * z - 1.38888889e-3f;
  pc = pc * z + 4.16666667e-2f;
  pc = pc * z - 0.5f;
  return TrigParts{(ps * z) * r + r, pc * z + 1.0f, k - 4.0 * __builtin_floor(k * 0.25)};
}
CR_INLINE float trig_out_of_range(float x, float v) {
  return __builtin_fabsf(x) < kTrigMax ? v : __builtin_nanf("");  // NaN passes through v
}
CR_INLINE float sin_f32(float x) {
  const TrigParts t = trig_parts(x);
  const float v = t.q == 0.0 ? t.s : t.q == 1.0 ? t.c : t.q == 2.0 ? -t.s : -t.c;
  return x == 0.0f ? x : trig_out_of_range(x, v);  // -0 stays -0 (the series gives +0 there)
}
CR_INLINE float cos_f32(float x) {
  const TrigParts t = trig_parts(x);
  const float v = t.q == 0.0 ? t.c : t.q == 1.0 ? -t.s : t.q == 2.0 ? -t.c : t.s;
  return trig_out_of_range(x, v);
}
CR_INLINE float tan_f32(float x) {
  const TrigParts t = trig_parts(x);
  // s / c in even quadrants, -c / s in odd ones (selects on q itself: a bool of the double compare, reused by
  // float selects, kept GCC from vectorising the loop)
  const float num = t.q == 0.0 ? t.s : t.q == 1.0 ? -t.c : t.q == 2.0 ? t.s : -t.c;
  const float den = t.q == 0.0 ? t.c : t.q == 1.0 ? t.s : t.q == 2.0 ? t.c : t.s;
  return x == 0.0f ? x : trig_out_of_range(x, num / den);
}

// atan x = sign(x) (b + atan t), a = |x| reduced to |t| <= tan(pi/8): t = a (b = 0) up to sqrt 2 - 1, t = -1 / a
// (b = pi/2) from sqrt 2 + 1, t = (a - 1) / (a + 1) (b = pi/4) between; atan t by its series to t^21 / 21
// (truncation below 1e-9 of t); b in two parts (hi + (lo + atan t)).
CR_INLINE float atan_f32(float x) {
  const float a = __builtin_fabsf(x);
  const bool big = a > 2.41421356f, mid = a > 0.414213562f;
  const float t = big ? -1.0f / a : mid ? (a - 1.0f) / (a + 1.0f) : a;
  const float hi = big ? 1.57079637f : mid ? 0.785398185f : 0.0f;
  const float lo = big ? -4.37113883e-8f : mid ? -2.18556941e-8f : 0.0f;
  const float z = t * t;
  float p = -4.76190476e-2f;  // -1 / 21
  p = p * z + 5.26315789e-2f;
  p = p * z - 5.88235294e-2f;
  p = p * z + 6.66666667e-2f;
  p = p * z - 7.69230769e-2f;
  p = p * z + 9.09090909e-2f;
  p = p * z - 1.11111111e-1f;
  p = p * z + 1.42857143e-1f;
  p = p * z - 2.0e-1f;
  p = p * z + 3.33333333e-1f;
  const float at = t - (p * z) * t;
  return __builtin_copysignf(hi + (lo + at), x);  // NaN: t is NaN
}

// asin x = atan(x / sqrt((1 - a)(1 + a))), a = |x| (1 - a exact from a = 1/2 on): +-pi/2 at +-1, NaN beyond.
CR_INLINE float asin_f32(float x) {
  const float a = __builtin_fabsf(x);
  return atan_f32(x / __builtin_sqrtf((1.0f - a) * (1.0f + a)));
}

// acos x = 2 atan(sqrt((1 - x) / (1 + x))): no cancellation near 1 (where acos is small), pi at -1, NaN beyond.
CR_INLINE float acos_f32(float x) {
  return 2.0f * atan_f32(__builtin_sqrtf((1.0f - x) / (1.0f + x)));
}

// atan2(y, x), the angle of the point (x, y): with a = |y|, b = |x| and t = atan(min / max) in [0, pi/4], the
// angle is one of t, pi/2 - t, pi/2 + t, pi - t (by a > b and x's sign bit), its constant in two parts so that
// the result is rounded once; sign of y. C's special cases: both zero gives +-0 or +-pi (x = -0 or x < 0), both
// infinite +-pi/4 or +-3pi/4, NaN in NaN out.
CR_INLINE float atan2_f32(float y, float x) {
  const float a = __builtin_fabsf(y), b = __builtin_fabsf(x);
  const bool swap = a > b, neg = float_to_bits(x) < 0;  // x's sign bit (-0 included)
  const float t = atan_f32((swap ? b : a) / (swap ? a : b));  // NaN in: NaN here, and out
  const float hi = swap ? 1.57079637f : neg ? 3.14159274f : 0.0f;
  const float lo = swap ? -4.37113883e-8f : neg ? -8.74227766e-8f : 0.0f;
  const float st = swap ^ neg ? -t : t;  // pi/2 - t (x >= 0) or pi/2 + t (x < 0); t or pi - t
  float r = hi + (lo + st);
  // (the special angles as named values and & rather than &&: otherwise GCC did not vectorise the loop)
  const float both_zero = neg ? 3.14159274f : 0.0f, both_inf = neg ? 2.3561945f : 0.785398185f;
  r = (a == 0.0f) & (b == 0.0f) ? both_zero : r;
  r = (a == __builtin_inff()) & (b == __builtin_inff()) ? both_inf : r;
  return __builtin_copysignf(r, y);
}

// erfc z for z >= 0 by the Chebyshev fit of Numerical Recipes (erfcc): t = 1 / (1 + z / 2),
// erfc z = t e^{-z^2 + P(t)}, fractional error below 1.2e-7 for every z >= 0 (gelu.h's Phi builds on it).
CR_INLINE float erfc_pos_f32(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_f32(p - z * z);
}

// erf x: for |x| < 1 its series 2/sqrt(pi) x sum (-1)^n x^2n / (n! (2n + 1)) to n = 10 (truncation below 2e-9),
// else sign(x) (1 - erfc |x|), erfc taken at min(|x|, 4) (erf is 1 in float32 from there on, and e^{-x^2} of
// larger |x| would be subnormal, slow on some cores).
CR_INLINE float erf_f32(float x) {
  const float z = x * x;
  float p = 1.31225330e-8f;  // 1 / (10! 21)
  p = p * z - 1.45038522e-7f;
  p = p * z + 1.45891690e-6f;
  p = p * z - 1.32275132e-5f;
  p = p * z + 1.06837607e-4f;
  p = p * z - 7.57575758e-4f;
  p = p * z + 4.62962963e-3f;
  p = p * z - 2.38095238e-2f;
  p = p * z + 1.0e-1f;
  p = p * z - 3.33333333e-1f;
  const float small = ((p * z) * x + x) * 1.12837917f;
  const float a = __builtin_fabsf(x);
  const float big = __builtin_copysignf(1.0f - erfc_pos_f32(a > 4.0f ? 4.0f : a), x);  // NaN stays NaN
  const float r = a < 1.0f ? small : big;  // NaN: big is NaN
  return x == 0.0f ? x : r;                // -0 stays -0 (the series gives +0 there)
}

// tanh x: an odd polynomial for |x| < 0.625, else sign(x) (1 - 2 / (e^{2|x|} + 1)).
CR_INLINE float tanh_f32(float x) {
  const float ax = __builtin_fabsf(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float e = exp_f32(ax + ax);
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = __builtin_copysignf(big, x);
  return ax < 0.625f ? small : big;  // NaN: big is NaN
}

// 1 / (1 + e^-x) without overflow: with e = e^-|x|, 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0.
CR_INLINE float sigmoid_f32(float x) {
  const float e = exp_f32(-__builtin_fabsf(x));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : (x != x ? x : e * r);
}

}  // namespace CR_ISA_NS
}  // namespace cr
