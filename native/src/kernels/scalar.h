// Scalar definitions shared by the elementwise, reduction and indexing kernels: typed load/store with the
// conversions JavaScript typed arrays perform (the js reference backend stores float64 results into the
// output array), int32 helpers with C wrap-around, and the float ops whose NaN / signed-zero rules matter.
#pragma once

#include "isa.h"

namespace cr {
namespace CR_ISA_NS {

// ToInt32 (ECMAScript): NaN and +-Infinity -> 0, otherwise truncate toward zero and wrap modulo 2^32.
CR_INLINE int32_t to_int32(double x) {
  if (x > -2147483649.0 && x < 2147483648.0) return (int32_t)x;  // NaN fails both tests
  if (!(x - x == 0)) return 0;                                     // NaN or infinite
  double m = std::fmod(std::trunc(x), 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}

// ToUint8 (the store into a Uint8Array, i.e. a bool buffer written by an arithmetic op).
CR_INLINE uint8_t to_uint8(double x) { return (uint8_t)(uint32_t)to_int32(x); }

CR_INLINE double load_as_double(const void* p, int dtype, i64 i) {
  switch (dtype) {
    case F32: return (double)static_cast<const float*>(p)[i];
    case F64: return static_cast<const double*>(p)[i];
    case I32: return (double)static_cast<const int32_t*>(p)[i];
    default: return (double)static_cast<const uint8_t*>(p)[i];
  }
}

// Store a float64 value into a typed array of `dtype` exactly as the JS typed-array store does.
CR_INLINE void store_double(void* p, int dtype, i64 i, double v) {
  switch (dtype) {
    case F32: static_cast<float*>(p)[i] = (float)v; break;
    case F64: static_cast<double*>(p)[i] = v; break;
    case I32: static_cast<int32_t*>(p)[i] = to_int32(v); break;
    default: static_cast<uint8_t*>(p)[i] = to_uint8(v); break;
  }
}

// int32 arithmetic with two's-complement wrap-around (through uint32, which is defined behaviour in C++).
CR_INLINE int32_t wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
CR_INLINE int32_t wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
CR_INLINE int32_t wrap_mul(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }
CR_INLINE int32_t wrap_neg(int32_t a) { return (int32_t)(0u - (uint32_t)a); }

// Truncating division; x / 0 = 0 and INT_MIN / -1 wraps to INT_MIN (C would trap on both).
CR_INLINE int32_t div_int32(int32_t a, int32_t b) {
  if (b == 0) return 0;
  if (b == -1) return wrap_neg(a);
  return a / b;
}

// Exact power with wrap-around; negative exponents truncate 1/a^n: 1 for a = 1, +-1 for a = -1, else 0.
CR_INLINE int32_t pow_int32(int32_t a, int32_t b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint32_t r = 1, base = (uint32_t)a;
  uint32_t e = (uint32_t)b;
  while (e) {
    if (e & 1) r *= base;
    base *= base;
    e >>= 1;
  }
  return (int32_t)r;
}

// maximum / minimum as JavaScript's Math.max / Math.min: NaN propagates and -0 < +0.
template <class T>
CR_INLINE T fmax_js(T a, T b) {
  if (a > b) return a;
  if (b > a) return b;
  if (a != a) return a;
  if (b != b) return b;
  return std::signbit(a) ? b : a;  // equal: only +-0 can differ
}
template <class T>
CR_INLINE T fmin_js(T a, T b) {
  if (a < b) return a;
  if (b < a) return b;
  if (a != a) return a;
  if (b != b) return b;
  return std::signbit(a) ? a : b;
}

// Logistic sigmoid without overflow: for x < 0, e^x / (1 + e^x).
CR_INLINE float sigmoid_f(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  float e = std::exp(x);
  return e / (1.0f + e);
}
CR_INLINE double sigmoid_d(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

CR_INLINE double sign_d(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? 0.0 : x; }
CR_INLINE double relu_d(double x) { return x > 0 ? x : x != x ? x : 0.0; }

// The exact GELU x Phi(x) and its derivative Phi(x) + x phi(x) in float64 (see gelu.h).
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)

CR_INLINE double normal_cdf_d(double x) { return 0.5 * std::erfc(-x * 0.7071067811865476); }
CR_INLINE double gelu_d(double x) { return x * normal_cdf_d(x); }
CR_INLINE double gelu_deriv_d(double x) {
  const double xphi = std::fabs(x) < INFINITY ? x * std::exp(-0.5 * x * x) * kInvSqrt2Pi : 0.0;
  return normal_cdf_d(x) + xphi;
}

// The scalar definition of every unary op in float64 (the js backend's table).
CR_INLINE double unary_ref(int op, double x) {
  switch (op) {
    case U_NEG: return -x;
    case U_ABS: return std::fabs(x);
    case U_SIGN: return sign_d(x);
    case U_EXP: return std::exp(x);
    case U_LOG: return std::log(x);
    case U_LOG1P: return std::log1p(x);
    case U_EXPM1: return std::expm1(x);
    case U_SQRT: return std::sqrt(x);
    case U_SIN: return std::sin(x);
    case U_COS: return std::cos(x);
    case U_TAN: return std::tan(x);
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return sigmoid_d(x);
    case U_ERF: return std::erf(x);
    case U_RELU: return relu_d(x);
    case U_FLOOR: return std::floor(x);
    case U_CEIL: return std::ceil(x);
    case U_ROUND: return std::nearbyint(x);  // default rounding mode: ties to even, keeps -0
    case U_GELU: return gelu_d(x);
    case U_GELU_DERIV: return gelu_deriv_d(x);
    case U_ASIN: return std::asin(x);
    case U_ACOS: return std::acos(x);
    case U_ATAN: return std::atan(x);
    case U_SINH: return std::sinh(x);
    case U_COSH: return std::cosh(x);
    case U_ASINH: return std::asinh(x);
    case U_ACOSH: return std::acosh(x);
    case U_ATANH: return std::atanh(x);
    case U_LOG2: return std::log2(x);
    case U_LOG10: return std::log10(x);
    default: return x == 0 ? 1.0 : 0.0;      // U_NOT
  }
}

// The scalar definition of every binary op in float64; `int32` selects the int32 overrides (mul, div, pow).
CR_INLINE double binary_ref(int op, double a, double b, bool int32) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return int32 ? (double)wrap_mul((int32_t)a, (int32_t)b) : a * b;
    case B_DIV: return int32 ? (double)div_int32((int32_t)a, (int32_t)b) : a / b;
    case B_POW: return int32 ? (double)pow_int32((int32_t)a, (int32_t)b) : std::pow(a, b);
    case B_MAX: return fmax_js(a, b);
    case B_MIN: return fmin_js(a, b);
    case B_ATAN2: return std::atan2(a, b);
    case B_EQ: return a == b;
    case B_NE: return a != b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    case B_AND: return a != 0 && b != 0;
    case B_OR: return a != 0 || b != 0;
    default: return (a != 0) != (b != 0);  // B_XOR
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
