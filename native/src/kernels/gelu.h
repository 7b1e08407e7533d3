// The exact GELU and its derivative (unary codes U_GELU, U_GELU_DERIV), with Phi the standard normal CDF and
// phi its density:
//   gelu(x) = x Phi(x),   gelu'(x) = Phi(x) + x phi(x),   Phi(x) = erfc(-x / sqrt 2) / 2.
// float64 (and the baseline float32 build) go through libm's erfc (gelu_d, gelu_deriv_d in scalar.h); float32 in the AVX2 / AVX-512 builds uses a
// branch-free form that vectorises: erfc(z) for z = |x| / sqrt 2 by the Chebyshev fit of Numerical Recipes
// (erfcc: t = 1 / (1 + z / 2), erfc(z) = t exp(-z^2 + P(t)), fractional error < 1.2e-7 for every z >= 0), so
// Phi(-|x|) keeps its relative precision far into the tail, and Phi(x) = 1 - Phi(-|x|) for x >= 0.
// At x = -Infinity gelu is NaN (-Infinity * 0, as the composition 0.5 x (1 + erf(x / sqrt 2))); gelu' is 0 at
// -Infinity and 1 at +Infinity (the limits: the x phi(x) term is taken as 0 there); NaN propagates.
#pragma once

#include "scalar.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {

// Phi(x) in float32, branch-free (selects only).
CR_INLINE float normal_cdf_f32(float x) {
  const float h = 0.5f * erfc_pos_f32(std::fabs(x) * 0.70710678118654752f);  // Phi(-|x|)
  return x < 0.0f ? h : 1.0f - h;
}
CR_INLINE float gelu_f32(float x) { return x * normal_cdf_f32(x); }
CR_INLINE float gelu_deriv_f32(float x) {
  const float e = exp_f32(-0.5f * x * x) * 0.39894228040143268f;
  const float xphi = std::fabs(x) < INFINITY ? x * e : 0.0f;
  return normal_cdf_f32(x) + xphi;
}

}  // namespace CR_ISA_NS
}  // namespace cr
