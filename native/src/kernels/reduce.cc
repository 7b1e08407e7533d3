// Reductions: reduce (sum / prod / max / min over axes), arg_reduce (first argmax / argmin) and cumsum.
//
// The axes of x split into kept axes (the output's) and reduced axes; each group is coalesced separately.
// Two loop orders cover the layouts:
//  - "inner": the reduced axes are the fast ones (or nothing is kept): each output element reduces a run of
//    memory with independent partial accumulators (which the compiler turns into SIMD lanes);
//  - "outer": a kept axis is the fast one: a row of outputs accumulates together while the reduced indices
//    advance, a vectorisable elementwise update.
// float32 and float64 sums and products accumulate in float64 (like the js backend, rounding once); int32
// wraps; max / min propagate NaN. Chunking depends on sizes only, never on the thread count, so results are
// reproducible for any setNumThreads.
#include <limits>

#include "map.h"
#include "scalar.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// Sum / product accumulators: float64 for floats, unsigned (wrapping) for integers.
template <class T>
struct SumAcc {
  using type = double;
};
template <>
struct SumAcc<int32_t> {
  using type = uint32_t;
};
template <>
struct SumAcc<uint8_t> {
  using type = uint8_t;
};

template <class T, int OP>
struct Red;

template <class T>
struct Red<T, R_SUM> {
  using A = typename SumAcc<T>::type;
  static CR_INLINE A init() { return A(0); }
  static CR_INLINE A step(A a, T x) { return a + (A)x; }
  static CR_INLINE A combine(A a, A b) { return a + b; }
  static CR_INLINE T fin(A a) { return (T)a; }
};
template <class T>
struct Red<T, R_PROD> {
  using A = typename SumAcc<T>::type;
  static CR_INLINE A init() { return A(1); }
  static CR_INLINE A step(A a, T x) { return a * (A)x; }
  static CR_INLINE A combine(A a, A b) { return a * b; }
  static CR_INLINE T fin(A a) { return (T)a; }
};
// max / min: the first NaN sticks (x != x takes a NaN; a NaN accumulator never compares greater).
template <class T>
struct Red<T, R_MAX> {
  using A = T;
  static CR_INLINE A init() {
    return std::is_floating_point<T>::value ? -(T)INFINITY : std::numeric_limits<T>::lowest();
  }
  static CR_INLINE A step(A a, T x) { return ((x > a) | (x != x)) ? x : a; }
  static CR_INLINE A combine(A a, A b) { return a != a ? a : step(a, b); }
  static CR_INLINE T fin(A a) { return a; }
};
template <class T>
struct Red<T, R_MIN> {
  using A = T;
  static CR_INLINE A init() {
    return std::is_floating_point<T>::value ? (T)INFINITY : std::numeric_limits<T>::max();
  }
  static CR_INLINE A step(A a, T x) { return ((x < a) | (x != x)) ? x : a; }
  static CR_INLINE A combine(A a, A b) { return a != a ? a : step(a, b); }
  static CR_INLINE T fin(A a) { return a; }
};

// Reduce a run of n elements at stride s. The contiguous case keeps L independent accumulators.
template <class R, class T>
CR_INLINE typename R::A reduce_run(const T* p, i64 n, i64 s, typename R::A a) {
  using A = typename R::A;
  if (s == 1 && n >= 32) {
    constexpr int L = 64 / sizeof(A) * 2;
    A acc[L];
    for (int l = 0; l < L; l++) acc[l] = R::init();
    i64 i = 0;
    for (; i + L <= n; i += L)
      for (int l = 0; l < L; l++) acc[l] = R::step(acc[l], p[i + l]);
    for (int l = 0; l < L; l++) a = R::combine(a, acc[l]);
    for (; i < n; i++) a = R::step(a, p[i]);
  } else {
    for (i64 i = 0; i < n; i++) a = R::step(a, p[i * s]);
  }
  return a;
}

// The split of x's axes into kept (with output strides) and reduced, both coalesced.
struct Split {
  Iter<2> kept;  // operand 0: x strides, operand 1: out strides
  Iter<1> red;
  i64 K, R;
};

// out_full: if given, the kept axes take their output strides from it (cumsum, whose output keeps the axis);
// otherwise the output is the contiguous array of the kept axes.
void split_axes(const View& x, const bool* reduced, Split& sp, const i64* out_full = nullptr) {
  i64 ks[kMaxDims], kx[kMaxDims], rs[kMaxDims], rx[kMaxDims];
  int nk = 0, nr = 0;
  for (int d = 0; d < x.ndim; d++) {
    if (reduced[d]) {
      rs[nr] = x.shape[d];
      rx[nr++] = x.strides[d];
    } else {
      ks[nk] = x.shape[d];
      kx[nk++] = x.strides[d];
    }
  }
  i64 ko[kMaxDims];
  if (out_full) {
    for (int d = 0, j = 0; d < x.ndim; d++)
      if (!reduced[d]) ko[j++] = out_full[d];
  } else {
    contiguous_strides(nk, ks, ko);
  }
  const i64* kst[2] = {kx, ko};
  sp.kept.init(nk, ks, kst);
  const i64* rst[1] = {rx};
  sp.red.init(nr, rs, rst);
  sp.K = sp.kept.size;
  sp.R = sp.red.size;
}

template <class T, int OP>
void reduce_typed(const View& x, const Split& sp, T* out) {
  using RD = Red<T, OP>;
  using A = typename RD::A;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64 K = sp.K, R = sp.R;
  const Iter<2>& kept = sp.kept;
  const Iter<1>& red = sp.red;
  const i64 rs = red.st[0][red.nd - 1];
  const i64 ks = kept.st[0][kept.nd - 1];
  const i64 kn = kept.shape[kept.nd - 1];
  const bool outer = K > 1 && R > 1 && kn >= 8 && (ks < 0 ? -ks : ks) < (rs < 0 ? -rs : rs);
  if (!outer && K < 4 * pool_threads() && R >= 65536 &&
      scratch(pool_tid(), 2, sizeof(A) * (size_t)(R / red.shape[red.nd - 1] + 1))) {
    // Few outputs, long reductions: split each reduction into fixed chunks of whole inner runs.
    const i64 runs = red.size / red.shape[red.nd - 1];
    const i64 per = imax<i64>(1, 16384 / red.shape[red.nd - 1]);
    const i64 nchunk = (runs + per - 1) / per;
    A* part = static_cast<A*>(scratch(pool_tid(), 2, sizeof(A) * nchunk));
    const i64 rlen = red.shape[red.nd - 1];
    kept.walk(0, K, [&](const i64* koff, i64 len) {
      for (i64 j = 0; j < len; j++) {
        const T* base = xp + koff[0] + j * ks;
        par_for(nchunk, 1, [&](i64 b, i64 e, int) {
          for (i64 c = b; c < e; c++) {
            A a = RD::init();
            red.walk(c * per * rlen, imin(runs, (c + 1) * per) * rlen,
                     [&](const i64* roff, i64 n) { a = reduce_run<RD>(base + roff[0], n, rs, a); });
            part[c] = a;
          }
        });
        A a = RD::init();
        for (i64 c = 0; c < nchunk; c++) a = RD::combine(a, part[c]);
        out[koff[1] + j] = RD::fin(a);
      }
    });
    return;
  }
  if (!outer) {
    par_for(K, imax<i64>(1, 32768 / imax<i64>(R, 1)), [&](i64 b, i64 e, int) {
      kept.walk(b, e, [&](const i64* koff, i64 len) {
        for (i64 j = 0; j < len; j++) {
          const T* base = xp + koff[0] + j * ks;
          A a = RD::init();
          red.walk(0, R, [&](const i64* roff, i64 n) { a = reduce_run<RD>(base + roff[0], n, rs, a); });
          out[koff[1] + j] = RD::fin(a);
        }
      });
    });
    return;
  }
  // Outer: blocks of up to 256 outputs along the fast kept axis accumulate together.
  constexpr i64 BLK = 256;
  par_for(K, imax<i64>(BLK, 65536 / imax<i64>(R, 1)), [&](i64 b, i64 e, int) {
    A acc[BLK];
    kept.walk(b, e, [&](const i64* koff, i64 len) {
      for (i64 j0 = 0; j0 < len; j0 += BLK) {
        const i64 m = imin(BLK, len - j0);
        for (i64 j = 0; j < m; j++) acc[j] = RD::init();
        const T* base = xp + koff[0] + j0 * ks;
        red.walk(0, R, [&](const i64* roff, i64 n) {
          for (i64 r = 0; r < n; r++) {
            const T* p = base + roff[0] + r * rs;
            if (ks == 1)
              for (i64 j = 0; j < m; j++) acc[j] = RD::step(acc[j], p[j]);
            else
              for (i64 j = 0; j < m; j++) acc[j] = RD::step(acc[j], p[j * ks]);
          }
        });
        T* o = out + koff[1] + j0;
        for (i64 j = 0; j < m; j++) o[j] = RD::fin(acc[j]);
      }
    });
  });
}

template <class T>
void reduce_op(int op, const View& x, const Split& sp, T* out) {
  switch (op) {
    case R_SUM: reduce_typed<T, R_SUM>(x, sp, out); break;
    case R_PROD: reduce_typed<T, R_PROD>(x, sp, out); break;
    case R_MAX: reduce_typed<T, R_MAX>(x, sp, out); break;
    default: reduce_typed<T, R_MIN>(x, sp, out); break;
  }
}

// ---------------------------------------------------------------------------------------------------------
// arg_reduce: index of the first max (min) along one axis; a NaN wins at once.
template <class T, bool MIN>
CR_INLINE bool better(T v, T best) {
  return MIN ? (v < best || v != v) : (v > best || v != v);
}

// Lane index type of the vector argmax: integers as wide as T (GCC vector extensions need equal widths).
template <class T>
struct LaneIndex {
  using type = int32_t;
};
template <>
struct LaneIndex<double> {
  using type = int64_t;
};

// First max (min) of a contiguous run of n >= 64 / sizeof(T) elements (float, double or int32). One 64-byte
// vector of lanes tracks, per lane, the first best of the indices congruent to it (GCC vector extensions:
// branch-free compares and selects, one zmm on AVX-512, several narrower registers on the other builds);
// the lanes are then merged (a NaN lane wins, then the best value, ties to the smaller index) and the tail
// is scanned in order.
template <class T, bool MIN>
int32_t arg_run(const T* p, i64 n) {
  using I = typename LaneIndex<T>::type;
  constexpr int L = 64 / sizeof(T);
  typedef T V __attribute__((vector_size(64)));
  typedef I VI __attribute__((vector_size(64)));
  V bv;
  std::memcpy(&bv, p, sizeof(V));
  VI bi, idx;
  for (int l = 0; l < L; l++) bi[l] = l;
  idx = bi;
  i64 r = L;
  for (; r + L <= n; r += L) {
    V v;
    std::memcpy(&v, p + r, sizeof(V));
    idx += (I)L;
    const VI take = (bv == bv) & (MIN ? ((v < bv) | (v != v)) : ((v > bv) | (v != v)));
    bv = take ? v : bv;
    bi = take ? idx : bi;
  }
  T best = bv[0];
  I at = bi[0];
  for (int l = 1; l < L; l++) {
    const T v = bv[l];
    bool take;
    if (best != best) take = v != v && bi[l] < at;
    else if (v != v) take = true;
    else take = (MIN ? v < best : v > best) || (v == best && bi[l] < at);
    if (take) {
      best = v;
      at = bi[l];
    }
  }
  for (; r < n && best == best; r++) {
    if (better<T, MIN>(p[r], best)) {
      best = p[r];
      at = (I)r;
    }
  }
  return (int32_t)at;
}

template <class T, bool MIN>
void arg_typed(const View& x, const Split& sp, int32_t* out) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64 K = sp.K, R = sp.R;
  const i64 rs = sp.red.st[0][sp.red.nd - 1];  // one reduced axis: nd == 1
  const Iter<2>& kept = sp.kept;
  const i64 ks = kept.st[0][kept.nd - 1];
  const i64 kn = kept.shape[kept.nd - 1];
  const bool outer = K > 1 && R > 1 && kn >= 8 && ks == 1 && rs != 1;
  constexpr i64 BLK = 256;
  par_for(K, imax<i64>(outer ? BLK : 1, 32768 / imax<i64>(R, 1)), [&](i64 b, i64 e, int) {
    kept.walk(b, e, [&](const i64* koff, i64 len) {
      if (!outer) {
        for (i64 j = 0; j < len; j++) {
          const T* p = xp + koff[0] + j * ks;
          if constexpr (sizeof(T) >= 4) {
            if (rs == 1 && R >= 64) {
              out[koff[1] + j] = arg_run<T, MIN>(p, R);
              continue;
            }
          }
          T best = p[0];
          int32_t bi = 0;
          if (best == best) {
            for (i64 r = 1; r < R; r++) {
              const T v = p[r * rs];
              if (better<T, MIN>(v, best)) {
                best = v;
                bi = (int32_t)r;
                if (v != v) break;
              }
            }
          }
          out[koff[1] + j] = bi;
        }
        return;
      }
      T best[BLK];
      int32_t bi[BLK];
      for (i64 j0 = 0; j0 < len; j0 += BLK) {
        const i64 m = imin(BLK, len - j0);
        const T* base = xp + koff[0] + j0;
        for (i64 j = 0; j < m; j++) {
          best[j] = base[j];
          bi[j] = 0;
        }
        for (i64 r = 1; r < R; r++) {
          const T* p = base + r * rs;
          for (i64 j = 0; j < m; j++) {
            const bool take = best[j] == best[j] && better<T, MIN>(p[j], best[j]);
            best[j] = take ? p[j] : best[j];
            bi[j] = take ? (int32_t)r : bi[j];
          }
        }
        int32_t* o = out + koff[1] + j0;
        for (i64 j = 0; j < m; j++) o[j] = bi[j];
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// cumsum along one axis. The running sum is float64 for float outputs (stored, rounded, at every step) and
// wraps for int32, like the js backend; any input dtype is read as a number.
// Input value as accumulator value: a float read into an int32 sum converts like ToInt32.
template <class A, class TI>
CR_INLINE A to_acc(TI v) {
  if (std::is_floating_point<TI>::value && !std::is_floating_point<A>::value) return (A)to_int32((double)v);
  return (A)v;
}

template <class TI, class TO>
void cumsum_typed(const View& x, const Split& sp, i64 out_axis_stride, bool reverse, TO* out) {
  using A = typename std::conditional<std::is_floating_point<TO>::value, double, uint32_t>::type;
  const TI* xp = static_cast<const TI*>(x.data) + x.offset;
  const i64 K = sp.K, R = sp.R;
  const i64 rs = sp.red.st[0][0];
  const i64 os = out_axis_stride;
  const Iter<2>& kept = sp.kept;
  const i64 ks = kept.st[0][kept.nd - 1];
  const i64 kn = kept.shape[kept.nd - 1];
  const i64 kso = kept.st[1][kept.nd - 1];
  const bool outer = K > 1 && R > 1 && kn >= 8 && ks == 1 && kso == 1;
  // In reverse, start at the last element and walk backwards.
  const i64 start = reverse ? R - 1 : 0;
  const i64 dir = reverse ? -1 : 1;
  constexpr i64 BLK = 256;
  par_for(K, imax<i64>(outer ? BLK : 1, 32768 / imax<i64>(R, 1)), [&](i64 b, i64 e, int) {
    kept.walk(b, e, [&](const i64* koff, i64 len) {
      // koff[1] is the output offset of the line's first element; kso the output stride along the run.
      if (!outer) {
        for (i64 j = 0; j < len; j++) {
          const TI* p = xp + koff[0] + j * ks;
          TO* o = out + koff[1] + j * kso;
          A a = 0;
          for (i64 t = 0, r = start; t < R; t++, r += dir) {
            a = a + to_acc<A>(p[r * rs]);
            o[r * os] = (TO)a;
          }
        }
        return;
      }
      A acc[BLK];
      for (i64 j0 = 0; j0 < len; j0 += BLK) {
        const i64 m = imin(BLK, len - j0);
        const TI* base = xp + koff[0] + j0;
        TO* ob = out + koff[1] + j0;  // kso == 1 here
        for (i64 j = 0; j < m; j++) acc[j] = 0;
        for (i64 t = 0, r = start; t < R; t++, r += dir) {
          const TI* p = base + r * rs;
          TO* o = ob + r * os;
          for (i64 j = 0; j < m; j++) {
            acc[j] = acc[j] + to_acc<A>(p[j]);
            o[j] = (TO)acc[j];
          }
        }
      }
    });
  });
}

template <class TI>
Err cumsum_from(const View& x, const Split& sp, i64 os, bool rev, const Out& out) {
  switch (out.dtype) {
    case F32: cumsum_typed<TI, float>(x, sp, os, rev, static_cast<float*>(out.data)); break;
    case F64: cumsum_typed<TI, double>(x, sp, os, rev, static_cast<double*>(out.data)); break;
    case I32: cumsum_typed<TI, int32_t>(x, sp, os, rev, static_cast<int32_t*>(out.data)); break;
    default: return "cumsum: bool output is not supported";
  }
  return nullptr;
}

}  // namespace

Err reduce(int op, const View& x, int naxes, const int64_t* axes, const Out& out) {
  if (op < R_SUM || op > R_MIN) return "reduce: unknown op";
  if (x.dtype != out.dtype) return "reduce: out must have the dtype of x";
  bool reduced[kMaxDims] = {false};
  const View v = naxes > 0 ? at_least_1d(x) : x;  // a scalar reduced over "its" axis 0 is itself
  for (int i = 0; i < naxes; i++) {
    if (axes[i] < 0 || axes[i] >= v.ndim || reduced[axes[i]]) return "reduce: invalid axes";
    reduced[axes[i]] = true;
  }
  Split sp;
  split_axes(v, reduced, sp);
  if (sp.K == 0) return nullptr;
  if (sp.R == 0 && (op == R_MAX || op == R_MIN) && (x.dtype == I32 || x.dtype == BOOL)) {
    // Never requested by the library; match the js backend (+-Infinity stored into an integer array is 0).
    std::memset(out.data, 0, (size_t)sp.K * (x.dtype == I32 ? 4 : 1));
    return nullptr;
  }
  switch (x.dtype) {
    case F32: reduce_op<float>(op, v, sp, static_cast<float*>(out.data)); break;
    case F64: reduce_op<double>(op, v, sp, static_cast<double*>(out.data)); break;
    case I32: reduce_op<int32_t>(op, v, sp, static_cast<int32_t*>(out.data)); break;
    default: reduce_op<uint8_t>(op, v, sp, static_cast<uint8_t*>(out.data)); break;
  }
  return nullptr;
}

Err arg_reduce(int is_min, const View& x, int axis, const Out& out) {
  if (out.dtype != I32) return "argReduce: out must be int32";
  const View v = at_least_1d(x);
  if (axis < 0 || axis >= v.ndim) return "argReduce: invalid axis";
  if (v.shape[axis] > INT32_MAX) return "argReduce: the axis has more than 2^31 - 1 elements (int32 indices)";
  bool reduced[kMaxDims] = {false};
  reduced[axis] = true;
  Split sp;
  split_axes(v, reduced, sp);
  if (sp.K == 0) return nullptr;
  int32_t* o = static_cast<int32_t*>(out.data);
  if (sp.R == 0) {
    for (i64 i = 0; i < sp.K; i++) o[i] = 0;
    return nullptr;
  }
  switch (x.dtype) {
    case F32: is_min ? arg_typed<float, true>(v, sp, o) : arg_typed<float, false>(v, sp, o); break;
    case F64: is_min ? arg_typed<double, true>(v, sp, o) : arg_typed<double, false>(v, sp, o); break;
    case I32: is_min ? arg_typed<int32_t, true>(v, sp, o) : arg_typed<int32_t, false>(v, sp, o); break;
    default: is_min ? arg_typed<uint8_t, true>(v, sp, o) : arg_typed<uint8_t, false>(v, sp, o); break;
  }
  return nullptr;
}

Err cumsum(const View& x, int axis, int reverse, const Out& out) {
  const View v = at_least_1d(x);
  if (axis < 0 || axis >= v.ndim) return "cumsum: invalid axis";
  bool reduced[kMaxDims] = {false};
  reduced[axis] = true;
  i64 full[kMaxDims];
  contiguous_strides(v.ndim, v.shape, full);
  Split sp;
  split_axes(v, reduced, sp, full);
  if (sp.K == 0 || sp.R == 0) return nullptr;
  const i64 os = full[axis];  // output stride of the axis
  if (sp.R == 1) sp.red.st[0][0] = 0;
  switch (x.dtype) {
    case F32: return cumsum_from<float>(v, sp, os, reverse, out);
    case F64: return cumsum_from<double>(v, sp, os, reverse, out);
    case I32: return cumsum_from<int32_t>(v, sp, os, reverse, out);
    default: return cumsum_from<uint8_t>(v, sp, os, reverse, out);
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
