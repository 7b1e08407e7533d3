// The float unary and binary ops of the elementwise kernels as scalar functions, written once: `unary` and
// `binary` (elementwise.cc) map them over strided views, `fused` (fused.cc) over the register tiles of a jit
// program, so a fused chain computes every element with exactly the code of the unfused kernels.
//
// with_float_unary<T>(op, g) calls g(f, grain) with the function of op (T -> T) and the parallel grain its map
// uses; with_float_binary<T>(op, g) likewise with f: (T, T) -> T for the arithmetic codes (B_ADD .. B_ATAN2).
// Both return false for an op they do not have. float32 exp, log, tanh and sigmoid use the branch-free
// vmath.h versions in the AVX2 / AVX-512 builds (they vectorise; libm does not): each element's result is the
// same whether a loop runs it in a vector lane or alone, so any split of a row gives the same bits.
#pragma once

#include "act.h"
#include "gelu.h"
#include "map.h"

namespace cr {
namespace CR_ISA_NS {

template <class T, class G>
CR_INLINE bool with_float_unary(int op, G&& g) {
  constexpr i64 C = kGrainCheap, E = kGrainCostly;
  if (sizeof(T) == 4 && kVecMath) {
    switch (op) {
      case U_EXP: g([](T v) { return (T)exp_f32((float)v); }, C); return true;
      case U_LOG: g([](T v) { return (T)log_f32((float)v); }, C); return true;
      case U_TANH: g([](T v) { return (T)tanh_f32((float)v); }, C); return true;
      case U_SIGMOID: g([](T v) { return (T)sigmoid_f32((float)v); }, C); return true;
      case U_GELU: g([](T v) { return (T)gelu_f32((float)v); }, C); return true;
      case U_GELU_DERIV: g([](T v) { return (T)gelu_deriv_f32((float)v); }, C); return true;
      case U_LOG1P: g([](T v) { return (T)log1p_f32((float)v); }, C); return true;
      case U_EXPM1: g([](T v) { return (T)expm1_f32((float)v); }, C); return true;
      case U_SINH: g([](T v) { return (T)sinh_f32((float)v); }, C); return true;
      case U_COSH: g([](T v) { return (T)cosh_f32((float)v); }, C); return true;
      case U_ASINH: g([](T v) { return (T)asinh_f32((float)v); }, C); return true;
      case U_ACOSH: g([](T v) { return (T)acosh_f32((float)v); }, C); return true;
      case U_ATANH: g([](T v) { return (T)atanh_f32((float)v); }, C); return true;
      case U_LOG2: g([](T v) { return (T)log2_f32((float)v); }, C); return true;
      case U_LOG10: g([](T v) { return (T)log10_f32((float)v); }, C); return true;
      case U_ERF: g([](T v) { return (T)erf_f32((float)v); }, C); return true;
      case U_ATAN: g([](T v) { return (T)atan_f32((float)v); }, C); return true;
      case U_ASIN: g([](T v) { return (T)asin_f32((float)v); }, C); return true;
      case U_ACOS: g([](T v) { return (T)acos_f32((float)v); }, C); return true;
      // NaN at the finite |x| >= kTrigMax: their callers use trig_or_libm where an input has such values
      case U_SIN: g([](T v) { return (T)sin_f32((float)v); }, C); return true;
      case U_COS: g([](T v) { return (T)cos_f32((float)v); }, C); return true;
      case U_TAN: g([](T v) { return (T)tan_f32((float)v); }, C); return true;
      default: break;
    }
  }
  switch (op) {
    case U_NEG: g([](T v) { return -v; }, C); break;
    case U_ABS: g([](T v) { return std::fabs(v); }, C); break;
    case U_SIGN: g([](T v) { return v > 0 ? T(1) : v < 0 ? T(-1) : v == 0 ? T(0) : v; }, C); break;
    case U_EXP: g([](T v) { return std::exp(v); }, E); break;
    case U_LOG: g([](T v) { return std::log(v); }, E); break;
    case U_LOG1P: g([](T v) { return std::log1p(v); }, E); break;
    case U_EXPM1: g([](T v) { return std::expm1(v); }, E); break;
    case U_SQRT: g([](T v) { return std::sqrt(v); }, C); break;
    case U_SIN: g([](T v) { return std::sin(v); }, E); break;
    case U_COS: g([](T v) { return std::cos(v); }, E); break;
    case U_TAN: g([](T v) { return std::tan(v); }, E); break;
    case U_TANH: g([](T v) { return std::tanh(v); }, E); break;
    case U_SIGMOID:
      if (sizeof(T) == 4)
        g([](T v) { return (T)sigmoid_f((float)v); }, E);
      else
        g([](T v) { return (T)sigmoid_d((double)v); }, E);
      break;
    case U_ERF: g([](T v) { return std::erf(v); }, E); break;
    case U_RELU:  // branch-free (a blend), so it vectorises and random signs cost no mispredictions
      g(
          [](T v) {
            const T r = v > 0 ? v : T(0);
            return v != v ? v : r;
          },
          C);
      break;
    case U_FLOOR: g([](T v) { return std::floor(v); }, C); break;
    case U_CEIL: g([](T v) { return std::ceil(v); }, C); break;
    case U_ROUND: g([](T v) { return std::rint(v); }, C); break;  // ties to even
    case U_NOT: g([](T v) { return v == 0 ? T(1) : T(0); }, C); break;
    case U_GELU: g([](T v) { return (T)gelu_d((double)v); }, E); break;
    case U_GELU_DERIV: g([](T v) { return (T)gelu_deriv_d((double)v); }, E); break;
    case U_ASIN: g([](T v) { return std::asin(v); }, E); break;
    case U_ACOS: g([](T v) { return std::acos(v); }, E); break;
    case U_ATAN: g([](T v) { return std::atan(v); }, E); break;
    case U_SINH: g([](T v) { return std::sinh(v); }, E); break;
    case U_COSH: g([](T v) { return std::cosh(v); }, E); break;
    case U_ASINH: g([](T v) { return std::asinh(v); }, E); break;
    case U_ACOSH: g([](T v) { return std::acosh(v); }, E); break;
    case U_ATANH: g([](T v) { return std::atanh(v); }, E); break;
    case U_LOG2: g([](T v) { return std::log2(v); }, E); break;
    case U_LOG10: g([](T v) { return std::log10(v); }, E); break;
    default: return false;
  }
  return true;
}

// with_float_unary's vectorised float32 sin, cos and tan leave NaN at the finite |x| >= kTrigMax (vmath.h). Their
// callers look for such x first (trig_libm_needed over the input) and, where there are any, map with trig_or_libm
// instead: libm's result there, the vector function's elsewhere, each element from its own input in one pass
// (an output may be its input's storage: jit's memory planning reuses dead inputs).
template <class T>
CR_INLINE constexpr bool trig_op(int op) {
  return sizeof(T) == 4 && kVecMath && (op == U_SIN || op == U_COS || op == U_TAN);
}
template <class T>
CR_INLINE bool trig_libm_needed(T v) {
  return (__builtin_fabs((double)v) >= (double)kTrigMax) & (bool)__builtin_isfinite(v);
}
// Whether any of n contiguous floats is one of those (finite, |x| >= kTrigMax): an OR over their bit patterns
// that GCC vectorises (the element-wise test above, with its double compare, ran scalar: a third of sin's time).
CR_INLINE bool trig_libm_any(const float* x, i64 n) {
  constexpr uint32_t lo = 0x4d800000u, inf = 0x7f800000u;  // the bits of 2^28 = kTrigMax, of infinity
  static_assert(kTrigMax == 268435456.0f, "lo is the bit pattern of kTrigMax");
  uint32_t any = 0;
  for (i64 j = 0; j < n; j++) {
    uint32_t u;
    std::memcpy(&u, x + j, 4);
    any |= (uint32_t)((u & 0x7fffffffu) - lo < inf - lo);
  }
  return any != 0;
}
template <class T, class F>
CR_INLINE T trig_or_libm(int op, T v, F f) {
  if (!trig_libm_needed(v)) return f(v);
  return op == U_SIN ? std::sin(v) : op == U_COS ? std::cos(v) : std::tan(v);
}

template <class T, class G>
CR_INLINE bool with_float_binary(int op, G&& g) {
  constexpr i64 C = kGrainCheap, E = kGrainCostly;
  if (sizeof(T) == 4 && kVecMath && op == B_ATAN2) {
    g([](T y, T x) { return (T)atan2_f32((float)y, (float)x); }, C);
    return true;
  }
  switch (op) {
    case B_ADD: g([](T x, T y) { return x + y; }, C); return true;
    case B_SUB: g([](T x, T y) { return x - y; }, C); return true;
    case B_MUL: g([](T x, T y) { return x * y; }, C); return true;
    case B_DIV: g([](T x, T y) { return x / y; }, C); return true;
    case B_POW: g([](T x, T y) { return std::pow(x, y); }, E); return true;
    case B_MAX: g([](T x, T y) { return fmax_js(x, y); }, C); return true;
    case B_MIN: g([](T x, T y) { return fmin_js(x, y); }, C); return true;
    case B_ATAN2: g([](T y, T x) { return std::atan2(y, x); }, E); return true;
    default: return false;
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
