// The matrix product with an epilogue (jit's GEMM epilogue fusion, kernels/fused.cc's dot_fused): `dot` calling
// a hook on each finished block of its output, by the thread that computed it.
#pragma once

#include "map.h"

namespace cr {
namespace CR_ISA_NS {

// Rows [i0, i1), columns [j0, j1) of matrix `mat` (row-major batch index) of the product are final.
struct DotEpilogue {
  virtual void rows(i64 mat, i64 i0, i64 i1, i64 j0, i64 j1, int tid) const = 0;
};

// dot (float32 / float64) with `ep` called on every block of the output once it is final: blocks of the packed
// GEMM as they finish, whole matrices after the small and matrix-vector paths. Same values as `dot`.
Err dot_ep(const View& a, const View& b, const Out& out, const DotEpilogue* ep);

}  // namespace CR_ISA_NS
}  // namespace cr
