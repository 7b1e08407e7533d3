// The fused activations (enum ActOp) as scalar functions, shared by the elementwise kernels (biasAct) and the
// convolution epilogue, so that fused and unfused paths compute exactly the same values.
#pragma once

#include "scalar.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {

// float32 tanh / sigmoid through the vectorisable vmath.h versions (AVX2 and AVX-512 builds), as `unary` does.
constexpr bool kVecMath = CR_ISA_LEVEL >= 1;

template <class T>
CR_INLINE T act_apply(int act, T v) {
  if (act == A_RELU) {  // branch-free (a blend): relu(NaN) = NaN
    const T r = v > 0 ? v : T(0);
    return v != v ? v : r;
  }
  if (sizeof(T) == 4 && kVecMath) return act == A_TANH ? (T)tanh_f32((float)v) : (T)sigmoid_f32((float)v);
  if (act == A_TANH) return std::tanh(v);
  return sizeof(T) == 4 ? (T)sigmoid_f((float)v) : (T)sigmoid_d((double)v);
}

// row[i] = act(row[i] + b) for i < n; act < 0 means the bias alone. One loop per activation so each vectorises.
template <class T>
void bias_act_row(T* row, i64 n, T b, int act) {
  switch (act) {
    case A_RELU:
      for (i64 i = 0; i < n; i++) row[i] = act_apply<T>(A_RELU, T(row[i] + b));
      break;
    case A_TANH:
      for (i64 i = 0; i < n; i++) row[i] = act_apply<T>(A_TANH, T(row[i] + b));
      break;
    case A_SIGMOID:
      for (i64 i = 0; i < n; i++) row[i] = act_apply<T>(A_SIGMOID, T(row[i] + b));
      break;
    default:
      for (i64 i = 0; i < n; i++) row[i] += b;
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
