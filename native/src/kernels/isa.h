// Per-instruction-set prelude of the kernel translation units.
//
// Every file under kernels/ is compiled three times (binding.gyp targets kernels_avx512, kernels_avx2,
// kernels_base) with different -m flags and CR_ISA_LEVEL = 2, 1, 0. All code is placed in the namespace
// cr::CR_ISA_NS (avx512 / avx2 / base), so the three builds never share a symbol: an inline function or
// template instantiation compiled for AVX-512 can never be picked by the linker for a baseline caller. For the
// same reason kernel files avoid standard-library templates (std::min, std::sort ...) and use the helpers below.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../common.h"
#include "../pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#ifndef CR_ISA_LEVEL
#define CR_ISA_LEVEL 0
#endif

#if CR_ISA_LEVEL == 2
#define CR_ISA_NS avx512
#elif CR_ISA_LEVEL == 1
#define CR_ISA_NS avx2
#else
#define CR_ISA_NS base
#endif

#define CR_INLINE inline __attribute__((always_inline))

namespace cr {
namespace CR_ISA_NS {

using i64 = int64_t;

template <class T>
CR_INLINE T imin(T a, T b) {
  return a < b ? a : b;
}
template <class T>
CR_INLINE T imax(T a, T b) {
  return a > b ? a : b;
}

// ---------------------------------------------------------------------------------------------------------
// Parallel loop: f(begin, end, tid) over [0, n) in chunks of `grain`.
template <class F>
void par_for(i64 n, i64 grain, F&& f) {
  if (n <= 0) return;
  if (n <= grain || pool_threads() == 1) {
    f((i64)0, n, pool_tid());
    return;
  }
  using FD = typename std::remove_reference<F>::type;
  pool_run(
      n, grain, [](void* c, int64_t b, int64_t e, int tid) { (*static_cast<FD*>(c))(b, e, tid); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Grain for elementwise work: enough elements per chunk to amortise the scheduling, and at most ~4 chunks per
// thread so that the atomic counter balances uneven progress.
CR_INLINE i64 elem_grain(i64 n, i64 min_grain) {
  i64 t = pool_threads();
  i64 g = n / (4 * t) + 1;
  return imax(g, min_grain);
}

// ---------------------------------------------------------------------------------------------------------
// Multi-operand strided iteration over one shape. Size-1 axes are dropped and adjacent axes merged when every
// operand is linear across them, so a contiguous (or uniformly broadcast) operand collapses to one axis.
template <int K>
struct Iter {
  int nd;  // >= 1
  i64 shape[kMaxDims];
  i64 st[K][kMaxDims];
  i64 size;

  // shape: the common shape (ndim axes); strides[k]: operand k's strides.
  void init(int ndim, const i64* shp, const i64* const* strides) {
    size = 1;
    for (int d = 0; d < ndim; d++) size *= shp[d];
    nd = 0;
    for (int d = 0; d < ndim; d++) {
      if (shp[d] == 1) continue;
      if (nd > 0) {
        bool merge = true;
        for (int k = 0; k < K; k++)
          if (st[k][nd - 1] != strides[k][d] * shp[d]) merge = false;
        if (merge) {
          shape[nd - 1] *= shp[d];
          for (int k = 0; k < K; k++) st[k][nd - 1] = strides[k][d];
          continue;
        }
      }
      shape[nd] = shp[d];
      for (int k = 0; k < K; k++) st[k][nd] = strides[k][d];
      nd++;
    }
    if (nd == 0) {
      nd = 1;
      shape[0] = 1;
      for (int k = 0; k < K; k++) st[k][0] = 0;
    }
  }

  // Visit the linear index range [b, e) of the iteration space as runs along the innermost axis:
  // f(off[K], len), where operand k's run starts at off[k] and advances by st[k][nd - 1].
  template <class F>
  CR_INLINE void walk(i64 b, i64 e, F&& f) const {
    if (b >= e) return;  // also covers an empty space (an extent 0 would divide by zero below)
    i64 idx[kMaxDims];
    i64 off[K];
    for (int k = 0; k < K; k++) off[k] = 0;
    i64 r = b;
    for (int d = nd - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r /= shape[d];
      for (int k = 0; k < K; k++) off[k] += idx[d] * st[k][d];
    }
    const int last = nd - 1;
    while (b < e) {
      i64 len = imin(shape[last] - idx[last], e - b);
      f(off, len);
      b += len;
      if (b >= e) break;
      // the run ended at the end of the innermost axis: rewind it to 0, then carry into the outer axes
      for (int k = 0; k < K; k++) off[k] -= idx[last] * st[k][last];
      idx[last] = 0;
      int d = last - 1;
      while (d >= 0) {
        for (int k = 0; k < K; k++) off[k] += st[k][d];
        if (++idx[d] < shape[d]) break;
        for (int k = 0; k < K; k++) off[k] -= st[k][d] * shape[d];
        idx[d] = 0;
        d--;
      }
    }
  }
};

}  // namespace CR_ISA_NS
}  // namespace cr
