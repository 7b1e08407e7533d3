// Elementwise iteration helpers: apply a scalar function over strided views into a contiguous output, split
// over the thread pool. The innermost run of each operand is a plain loop with a constant stride; the cases
// "every input contiguous" and "an input broadcast (stride 0)" get their own loops so the compiler
// vectorises them.
#pragma once

#include "isa.h"

namespace cr {
namespace CR_ISA_NS {

// Row-major strides of a shape.
CR_INLINE void contiguous_strides(int nd, const i64* shape, i64* st) {
  i64 acc = 1;
  for (int d = nd - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d];
  }
}

// A rank-0 view as a row of one along "its" axis 0 (extent 1, stride 0); any other view as it is.
CR_INLINE View at_least_1d(const View& x) {
  View v = x;
  if (v.ndim == 0) {
    v.ndim = 1;
    v.shape[0] = 1;
    v.strides[0] = 0;
  }
  return v;
}

CR_INLINE i64 shape_size(int nd, const i64* shape) {
  i64 n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  return n;
}

// float64 sum of term(i) over a row of r in 16 independent lanes (the order depends on the row length alone).
template <class F>
CR_INLINE double lanes_sum(i64 r, F term) {
  constexpr int L = 16;
  double sv[L];
  for (int l = 0; l < L; l++) sv[l] = 0;
  i64 i = 0;
  for (; i + L <= r; i += L)
    for (int l = 0; l < L; l++) sv[l] += term(i + l);
  // the lanes added pairwise (8 + 8, 4 + 4, ...: a few vector adds; one after the other they were a chain of 16
  // dependent adds, as long as the whole loop for a row of 128)
  for (int w = L / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; l++) sv[l] += sv[l + w];
  double s = sv[0];
  for (; i < r; i++) s += term(i);
  return s;
}

// Minimum number of elements per parallel chunk: cheap ops need large chunks to beat the scheduling cost.
constexpr i64 kGrainCheap = 32768;
constexpr i64 kGrainCostly = 2048;

// out[i] = f(x[i]) with x of type TI and out of type TO.
template <class TI, class TO, class F>
void map1(const View& x, void* out_data, i64 grain, F f) {
  i64 ost[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ost);
  const i64* st[2] = {x.strides, ost};
  Iter<2> it;
  it.init(x.ndim, x.shape, st);
  if (it.size == 0) return;
  const TI* xp = static_cast<const TI*>(x.data) + x.offset;
  TO* op = static_cast<TO*>(out_data);
  const i64 sx = it.st[0][it.nd - 1];
  par_for(it.size, elem_grain(it.size, grain), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      const TI* __restrict s = xp + off[0];
      TO* __restrict o = op + off[1];
      if (sx == 1) {
        for (i64 i = 0; i < len; i++) o[i] = f(s[i]);
      } else if (sx == 0) {
        const TO v = f(s[0]);
        for (i64 i = 0; i < len; i++) o[i] = v;
      } else {
        for (i64 i = 0; i < len; i++) o[i] = f(s[i * sx]);
      }
    });
  });
}

// out[i] = f(a[i], b[i]).
template <class TA, class TB, class TO, class F>
void map2(const View& a, const View& b, void* out_data, i64 grain, F f) {
  i64 ost[kMaxDims];
  contiguous_strides(a.ndim, a.shape, ost);
  const i64* st[3] = {a.strides, b.strides, ost};
  Iter<3> it;
  it.init(a.ndim, a.shape, st);
  if (it.size == 0) return;
  const TA* ap = static_cast<const TA*>(a.data) + a.offset;
  const TB* bp = static_cast<const TB*>(b.data) + b.offset;
  TO* op = static_cast<TO*>(out_data);
  const i64 sa = it.st[0][it.nd - 1], sb = it.st[1][it.nd - 1];
  par_for(it.size, elem_grain(it.size, grain), [&](i64 lo, i64 hi, int) {
    it.walk(lo, hi, [&](const i64* off, i64 len) {
      const TA* __restrict x = ap + off[0];
      const TB* __restrict y = bp + off[1];
      TO* __restrict o = op + off[2];
      if (sa == 1 && sb == 1) {
        for (i64 i = 0; i < len; i++) o[i] = f(x[i], y[i]);
      } else if (sa == 1 && sb == 0) {
        const TB v = y[0];
        for (i64 i = 0; i < len; i++) o[i] = f(x[i], v);
      } else if (sa == 0 && sb == 1) {
        const TA v = x[0];
        for (i64 i = 0; i < len; i++) o[i] = f(v, y[i]);
      } else {
        for (i64 i = 0; i < len; i++) o[i] = f(x[i * sa], y[i * sb]);
      }
    });
  });
}

// out[i] = f(c[i], a[i], b[i]).
template <class TC, class T, class F>
void map3(const View& c, const View& a, const View& b, void* out_data, i64 grain, F f) {
  i64 ost[kMaxDims];
  contiguous_strides(c.ndim, c.shape, ost);
  const i64* st[4] = {c.strides, a.strides, b.strides, ost};
  Iter<4> it;
  it.init(c.ndim, c.shape, st);
  if (it.size == 0) return;
  const TC* cp = static_cast<const TC*>(c.data) + c.offset;
  const T* ap = static_cast<const T*>(a.data) + a.offset;
  const T* bp = static_cast<const T*>(b.data) + b.offset;
  T* op = static_cast<T*>(out_data);
  const i64 sc = it.st[0][it.nd - 1], sa = it.st[1][it.nd - 1], sb = it.st[2][it.nd - 1];
  par_for(it.size, elem_grain(it.size, grain), [&](i64 lo, i64 hi, int) {
    it.walk(lo, hi, [&](const i64* off, i64 len) {
      const TC* __restrict z = cp + off[0];
      const T* __restrict x = ap + off[1];
      const T* __restrict y = bp + off[2];
      T* __restrict o = op + off[3];
      if (sc == 1 && sa == 1 && sb == 1) {
        for (i64 i = 0; i < len; i++) o[i] = f(z[i], x[i], y[i]);
      } else if (sc == 1 && sa == 1 && sb == 0) {  // where(c, a, scalar): the relu and mask gradients
        const T v = y[0];
        for (i64 i = 0; i < len; i++) o[i] = f(z[i], x[i], v);
      } else if (sc == 1 && sa == 0 && sb == 1) {
        const T v = x[0];
        for (i64 i = 0; i < len; i++) o[i] = f(z[i], v, y[i]);
      } else {
        for (i64 i = 0; i < len; i++) o[i] = f(z[i * sc], x[i * sa], y[i * sb]);
      }
    });
  });
}

// Generic fallback over element indices: f(i_x, i_out) where i_x indexes x.data (offset included) and i_out
// the contiguous output. Used for the rare dtype combinations (through load_as_double / store_double).
template <class F>
void map1_index(const View& x, i64 grain, F f) {
  i64 ost[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ost);
  const i64* st[2] = {x.strides, ost};
  Iter<2> it;
  it.init(x.ndim, x.shape, st);
  if (it.size == 0) return;
  const i64 sx = it.st[0][it.nd - 1];
  par_for(it.size, elem_grain(it.size, grain), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      for (i64 i = 0; i < len; i++) f(x.offset + off[0] + i * sx, off[1] + i);
    });
  });
}

template <class F>
void map2_index(const View& a, const View& b, i64 grain, F f) {
  i64 ost[kMaxDims];
  contiguous_strides(a.ndim, a.shape, ost);
  const i64* st[3] = {a.strides, b.strides, ost};
  Iter<3> it;
  it.init(a.ndim, a.shape, st);
  if (it.size == 0) return;
  const i64 sa = it.st[0][it.nd - 1], sb = it.st[1][it.nd - 1];
  par_for(it.size, elem_grain(it.size, grain), [&](i64 lo, i64 hi, int) {
    it.walk(lo, hi, [&](const i64* off, i64 len) {
      for (i64 i = 0; i < len; i++) f(a.offset + off[0] + i * sa, b.offset + off[1] + i * sb, off[2] + i);
    });
  });
}

// Flush subnormal results and inputs to zero on this thread while in scope (FTZ and DAZ in MXCSR), restoring the
// caller's mode after: the optimizer updates (optim.cc, and jit's compiled Adam in fused.cc) run under it, since
// on Intel cores each operation on a subnormal takes a microcode assist (see optim.cc).
struct FlushSubnormals {
#if defined(__SSE__)
  unsigned saved;
  FlushSubnormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }  // FTZ (bit 15) and DAZ (bit 6)
  ~FlushSubnormals() { _mm_setcsr(saved); }
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;
#endif
};

}  // namespace CR_ISA_NS
}  // namespace cr
