// Fused softmax / log-softmax along one axis: per row (the elements along the axis at fixed other indices)
// three sweeps in one kernel call, with the row in cache: m = max, s = sum exp(x - m), then write
// (x - m) - log s (log-softmax) or exp(x - m) / s (softmax). This replaces the ~8 kernels of the composed
// x - logsumexp(x), each of which allocated and walked a full-size temporary.
//
// Numerics (the Backend.softmax contract): float32 rows take exp in float32 (vmath.h's exp_f32_flush in the AVX
// builds: probabilities below e^-87 = 1.6e-38 come out 0; libm's expf in the baseline build) and sum it in float64; the log-softmax write is done in float64
// and rounded once. float64 rows are float64 throughout. NaN needs no special case, so the max may skip NaN
// (a plain compare-and-select, which vectorises): a NaN entry makes s NaN, a +Inf max makes x - m NaN at the
// +Inf entries, an all -Inf row gives -Inf - -Inf = NaN, and every output of such a row then reads the NaN s
// or m, so the row comes out NaN throughout, as in the js reference.
//
// Layouts: rows at unit stride in x and out (axis last, contiguous) run the vector loops of row_unit; when a
// kept axis of at least 32 is the fast one in out (the axis is not last: softmax over dim 1 of [N, C, d]),
// blocks of up to 64 neighbouring rows advance together along the axis, vectorised across the rows; any other
// row is gathered into a contiguous scratch row, computed there and scattered back (narrow blocks are slower
// than that). Rows are split over the thread pool; results do not depend on the thread count.
#include "map.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

constexpr bool kVecMath = CR_ISA_LEVEL >= 1;

// (probabilities below e^-87 flushed to 0 in the AVX builds: masked -Infinity entries and far-underflowing ones
// would otherwise take a subnormal assist per vector on Intel cores, see vmath.h exp_f32_flush)
CR_INLINE float exp_of(float v) { return kVecMath ? exp_f32_flush(v) : std::exp(v); }
CR_INLINE double exp_of(double v) { return std::exp(v); }

// Max of a unit-stride row, NaN skipped (see the top): one 64-byte vector of lanes with GCC vector extensions
// (a compare and a select per vector; the plain loop's reduction does not vectorise without -ffast-math).
template <class T>
CR_INLINE T row_max(const T* x, i64 r) {
  constexpr int L = 64 / sizeof(T);
  typedef T V __attribute__((vector_size(64)));
  T m = -(T)INFINITY;
  i64 i = 0;
  if (r >= L) {
    V mv;
    for (int l = 0; l < L; l++) mv[l] = -(T)INFINITY;
    for (; i + L <= r; i += L) {
      V v;
      std::memcpy(&v, x + i, sizeof(V));
      mv = v > mv ? v : mv;
    }
    for (int l = 0; l < L; l++) m = mv[l] > m ? mv[l] : m;
  }
  for (; i < r; i++) m = x[i] > m ? x[i] : m;
  return m;
}

// float64 sum of a unit-stride row.
template <class T>
CR_INLINE double row_sum(const T* __restrict x, i64 r) {
  return lanes_sum(r, [&](i64 i) { return (double)x[i]; });
}

// One row at unit stride in x and out. exp(x - m) goes to out first (a plain map the compiler vectorises),
// is summed from there while the row is in L1, and is then overwritten by the result.
template <class T, bool LOG>
void row_unit(const T* __restrict x, T* __restrict o, i64 r) {
  const T m = row_max(x, r);
  for (i64 i = 0; i < r; i++) o[i] = exp_of((T)(x[i] - m));
  const double s = row_sum(o, r);
  if (LOG) {
    const double dm = (double)m, lse = std::log(s);
    for (i64 i = 0; i < r; i++) o[i] = (T)(((double)x[i] - dm) - lse);
  } else {
    const double inv = 1.0 / s;
    for (i64 i = 0; i < r; i++) o[i] = (T)((double)o[i] * inv);
  }
}

// n <= BLK neighbouring rows, unit stride across rows in out (stride kxs in x; UNIT: kxs == 1), advancing
// along the axis by xs in x and os in out. The same arithmetic as row_unit, one row per lane.
constexpr i64 BLK = 64;
template <class T, bool LOG, bool UNIT>
void rows_block(const T* x, i64 kxs, i64 xs, T* o, i64 os, i64 r, i64 n) {
  T m[BLK];
  double s[BLK];
  for (i64 j = 0; j < n; j++) {
    m[j] = -(T)INFINITY;
    s[j] = 0;
  }
  for (i64 k = 0; k < r; k++) {
    const T* __restrict p = x + k * xs;
    for (i64 j = 0; j < n; j++) {
      const T v = p[UNIT ? j : j * kxs];
      m[j] = v > m[j] ? v : m[j];
    }
  }
  for (i64 k = 0; k < r; k++) {
    const T* __restrict p = x + k * xs;
    T* __restrict q = o + k * os;
    for (i64 j = 0; j < n; j++) {
      const T e = exp_of((T)(p[UNIT ? j : j * kxs] - m[j]));
      q[j] = e;
      s[j] += (double)e;
    }
  }
  if (LOG) {
    double dm[BLK];
    for (i64 j = 0; j < n; j++) {
      dm[j] = (double)m[j];
      s[j] = std::log(s[j]);
    }
    for (i64 k = 0; k < r; k++) {
      const T* __restrict p = x + k * xs;
      T* __restrict q = o + k * os;
      for (i64 j = 0; j < n; j++) q[j] = (T)(((double)p[UNIT ? j : j * kxs] - dm[j]) - s[j]);
    }
  } else {
    for (i64 j = 0; j < n; j++) s[j] = 1.0 / s[j];
    for (i64 k = 0; k < r; k++) {
      T* __restrict q = o + k * os;
      for (i64 j = 0; j < n; j++) q[j] = (T)((double)q[j] * s[j]);
    }
  }
}

template <class T, bool LOG>
void softmax_typed(const View& x, int axis, T* out) {
  // Kept axes (every axis but `axis`) with x's strides and out's (contiguous, full-shape) strides.
  i64 ofull[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ofull);
  i64 ks[kMaxDims], kx[kMaxDims], ko[kMaxDims];
  int nk = 0;
  for (int d = 0; d < x.ndim; d++) {
    if (d == axis) continue;
    ks[nk] = x.shape[d];
    kx[nk] = x.strides[d];
    ko[nk++] = ofull[d];
  }
  Iter<2> kept;
  const i64* kst[2] = {kx, ko};
  kept.init(nk, ks, kst);
  const i64 K = kept.size, R = x.shape[axis];
  if (K == 0 || R == 0) return;
  const i64 xs = x.strides[axis], os = ofull[axis];
  const i64 kxs = kept.st[0][kept.nd - 1], kos = kept.st[1][kept.nd - 1];
  const i64 kn = kept.shape[kept.nd - 1];
  const bool unit = xs == 1 && os == 1;
  const bool block = !unit && kos == 1 && kn >= 32;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  par_for(K, imax<i64>(block ? BLK : 1, 16384 / imax<i64>(R, 1)), [&](i64 b, i64 e, int tid) {
    // the gathered path's two contiguous rows (input, result)
    T* tmp = unit || block ? nullptr : static_cast<T*>(scratch(tid, 3, sizeof(T) * 2 * (size_t)R));
    if (!unit && !block && !tmp) return;  // out of memory: the N-API layer reports it
    kept.walk(b, e, [&](const i64* off, i64 len) {
      if (block) {
        for (i64 j = 0; j < len; j += BLK) {
          const T* px = xp + off[0] + j * kxs;
          T* po = out + off[1] + j;
          const i64 n = imin(BLK, len - j);
          if (kxs == 1) rows_block<T, LOG, true>(px, 1, xs, po, os, R, n);
          else rows_block<T, LOG, false>(px, kxs, xs, po, os, R, n);
        }
        return;
      }
      for (i64 j = 0; j < len; j++) {
        const T* row = xp + off[0] + j * kxs;
        T* orow = out + off[1] + j * kos;
        if (unit) {
          row_unit<T, LOG>(row, orow, R);
          continue;
        }
        for (i64 i = 0; i < R; i++) tmp[i] = row[i * xs];
        if (os == 1) {
          row_unit<T, LOG>(tmp, orow, R);
        } else {
          row_unit<T, LOG>(tmp, tmp + R, R);
          for (i64 i = 0; i < R; i++) orow[i * os] = tmp[R + i];
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// The VJP, out = c - exp(y) S(c) (log) or y (c - S(c y)) per row, S the row sum (float64). Rows at unit
// stride in y, c and out run vector loops; others are gathered into contiguous scratch rows (c is often a
// stride-0 broadcast, the gradient of a sum).

// float64 sum of c[i] * y[i].
template <class T>
CR_INLINE double row_dot(const T* __restrict c, const T* __restrict y, i64 r) {
  return lanes_sum(r, [&](i64 i) { return (double)c[i] * (double)y[i]; });
}

template <class T, bool LOG>
void row_backward_unit(const T* __restrict y, const T* __restrict c, T* __restrict o, i64 r) {
  if (LOG) {
    const double s = row_sum(c, r);
    for (i64 i = 0; i < r; i++) o[i] = (T)((double)c[i] - (double)exp_of(y[i]) * s);
  } else {
    const double s = row_dot(c, y, r);
    for (i64 i = 0; i < r; i++) o[i] = (T)((double)y[i] * ((double)c[i] - s));
  }
}

template <class T, bool LOG>
void softmax_backward_typed(const View& y, const View& c, int axis, T* out) {
  i64 ofull[kMaxDims];
  contiguous_strides(y.ndim, y.shape, ofull);
  i64 ks[kMaxDims], ky[kMaxDims], kc[kMaxDims], ko[kMaxDims];
  int nk = 0;
  for (int d = 0; d < y.ndim; d++) {
    if (d == axis) continue;
    ks[nk] = y.shape[d];
    ky[nk] = y.strides[d];
    kc[nk] = c.strides[d];
    ko[nk++] = ofull[d];
  }
  Iter<3> kept;
  const i64* kst[3] = {ky, kc, ko};
  kept.init(nk, ks, kst);
  const i64 K = kept.size, R = y.shape[axis];
  if (K == 0 || R == 0) return;
  const i64 ys = y.strides[axis], cs = c.strides[axis], os = ofull[axis];
  const i64 kys = kept.st[0][kept.nd - 1], kcs = kept.st[1][kept.nd - 1], kos = kept.st[2][kept.nd - 1];
  const bool unit = ys == 1 && cs == 1 && os == 1;
  const T* yp = static_cast<const T*>(y.data) + y.offset;
  const T* cp = static_cast<const T*>(c.data) + c.offset;
  par_for(K, imax<i64>(1, 16384 / imax<i64>(R, 1)), [&](i64 b, i64 e, int tid) {
    T* tmp = unit ? nullptr : static_cast<T*>(scratch(tid, 3, sizeof(T) * 3 * (size_t)R));
    if (!unit && !tmp) return;  // out of memory: the N-API layer reports it
    kept.walk(b, e, [&](const i64* off, i64 len) {
      for (i64 j = 0; j < len; j++) {
        const T* yr = yp + off[0] + j * kys;
        const T* cr = cp + off[1] + j * kcs;
        T* orow = out + off[2] + j * kos;
        if (unit) {
          row_backward_unit<T, LOG>(yr, cr, orow, R);
          continue;
        }
        for (i64 i = 0; i < R; i++) tmp[i] = yr[i * ys];
        for (i64 i = 0; i < R; i++) tmp[R + i] = cr[i * cs];
        if (os == 1) {
          row_backward_unit<T, LOG>(tmp, tmp + R, orow, R);
        } else {
          row_backward_unit<T, LOG>(tmp, tmp + R, tmp + 2 * R, R);
          for (i64 i = 0; i < R; i++) orow[i * os] = tmp[2 * R + i];
        }
      }
    });
  });
}

}  // namespace

Err softmax(int log, const View& x, int axis, const Out& out) {
  if (x.dtype != out.dtype) return "softmax: out must have the dtype of x";
  const View v = at_least_1d(x);  // a scalar is a row of one along "its" axis 0
  if (axis < 0 || axis >= v.ndim) return "softmax: invalid axis";
  if (v.dtype == F32) {
    float* o = static_cast<float*>(out.data);
    log ? softmax_typed<float, true>(v, axis, o) : softmax_typed<float, false>(v, axis, o);
  } else if (v.dtype == F64) {
    double* o = static_cast<double*>(out.data);
    log ? softmax_typed<double, true>(v, axis, o) : softmax_typed<double, false>(v, axis, o);
  } else {
    return "softmax: float32 or float64 expected";
  }
  return nullptr;
}

Err softmax_backward(int log, const View& y, const View& c, int axis, const Out& out) {
  if (y.dtype != out.dtype || c.dtype != out.dtype) return "softmaxBackward: y, ct and out must share a dtype";
  if (c.ndim != y.ndim) return "softmaxBackward: y and ct ranks differ";
  for (int d = 0; d < y.ndim; d++)
    if (c.shape[d] != y.shape[d]) return "softmaxBackward: y and ct shapes differ";
  const View vy = at_least_1d(y), vc = at_least_1d(c);
  if (axis < 0 || axis >= vy.ndim) return "softmaxBackward: invalid axis";
  if (vy.dtype == F32) {
    float* o = static_cast<float*>(out.data);
    log ? softmax_backward_typed<float, true>(vy, vc, axis, o) : softmax_backward_typed<float, false>(vy, vc, axis, o);
  } else if (vy.dtype == F64) {
    double* o = static_cast<double*>(out.data);
    log ? softmax_backward_typed<double, true>(vy, vc, axis, o)
        : softmax_backward_typed<double, false>(vy, vc, axis, o);
  } else {
    return "softmaxBackward: float32 or float64 expected";
  }
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
