// 2-D pooling (NCHW): max pooling, its argmax, the transpose of max pooling at a point (its VJP), average
// pooling and the transpose of average pooling.
//
// Window (oh, ow) covers input rows oh*sh - ph .. oh*sh - ph + kh - 1 (likewise columns). Max pooling treats
// padding as -Infinity (it never wins) and takes the first maximum in row-major window order, a NaN winning
// at once; average pooling counts padding as zeros in the divisor kh*kw. Planes (n, c) are independent and
// are spread over the thread pool; sums accumulate in float64 like the js backend.
#include "map.h"
#include "scalar.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

struct PoolGeo {
  i64 planes, C, H, W, OH, OW;
  i64 kh, kw, sh, sw, ph, pw;
};

CR_INLINE bool inside(i64 v, i64 n) { return (uint64_t)v < (uint64_t)n; }

// The first maximum of one window clipped to the image (rows i_lo..i_hi, columns j_lo..j_hi of the kernel),
// scanning rows then columns; a NaN wins at once. Branch-free selects: with random data "is this larger"
// is unpredictable.
template <class T>
CR_INLINE void max_window(const T* x, i64 s2, i64 s3, const PoolGeo& g, i64 i_lo, i64 i_hi, i64 j_lo, i64 j_hi,
                          i64 ih0, i64 iw0, T* value, int32_t* index) {
  T bv = x[(ih0 + i_lo) * s2 + (iw0 + j_lo) * s3];
  int32_t bi = (int32_t)((ih0 + i_lo) * g.W + iw0 + j_lo);
  for (i64 i = i_lo; i < i_hi; i++) {
    const T* row = x + (ih0 + i) * s2;
    for (i64 j = j_lo; j < j_hi; j++) {
      const T v = row[(iw0 + j) * s3];
      const bool take = (bv == bv) & ((v > bv) | (v != v));
      bv = take ? v : bv;
      bi = take ? (int32_t)((ih0 + i) * g.W + iw0 + j) : bi;
    }
  }
  *value = bv;
  *index = bi;
}

// The outputs whose windows lie entirely inside the image ("interior"), listed once per call: for each, the
// input offset of its window's top-left tap (from the plane start), that tap's flat in-plane index, and the
// output's position in its plane. Every plane then reuses the tables, and the tap loops below become
// gathers over any number of outputs (row-by-row loops were dominated by their short rows: 5x slower).
struct Interior {
  i64 count;
  int32_t* xoff;
  int32_t* base;
  int32_t* opos;
  i64 oh_a, oh_b, ow_a, ow_b;  // interior output rows [oh_a, oh_b), columns [ow_a, ow_b)
};

CR_INLINE void full_range(i64 n_out, i64 stride, i64 pad, i64 k, i64 n_in, i64* a, i64* b) {
  // o*stride - pad >= 0 and o*stride - pad + k <= n_in
  *a = imin<i64>(n_out, (pad + stride - 1) / stride);
  *b = imax<i64>(*a, imin<i64>(n_out, n_in + pad - k >= 0 ? (n_in + pad - k) / stride + 1 : 0));
}

bool interior_tables(const PoolGeo& g, i64 s2, i64 s3, Interior& in) {
  full_range(g.OH, g.sh, g.ph, g.kh, g.H, &in.oh_a, &in.oh_b);
  full_range(g.OW, g.sw, g.pw, g.kw, g.W, &in.ow_a, &in.ow_b);
  // int32 offsets (16 gather lanes on AVX-512 instead of 8); a plane spanning more than that has no
  // interior and goes through the per-window path.
  const i64 span = (g.H - 1) * (s2 < 0 ? -s2 : s2) + (g.W - 1) * (s3 < 0 ? -s3 : s3);
  if (span >= ((i64)1 << 31)) in.oh_b = in.oh_a;
  in.count = (in.oh_b - in.oh_a) * (in.ow_b - in.ow_a);
  const size_t n = (size_t)imax<i64>(in.count, 1);
  int32_t* mem = static_cast<int32_t*>(scratch(pool_tid(), 4, n * 3 * sizeof(int32_t)));
  if (!mem) return false;
  in.xoff = mem;
  in.base = mem + n;
  in.opos = mem + 2 * n;
  i64 t = 0;
  for (i64 oh = in.oh_a; oh < in.oh_b; oh++)
    for (i64 ow = in.ow_a; ow < in.ow_b; ow++, t++) {
      const i64 ih = oh * g.sh - g.ph, iw = ow * g.sw - g.pw;
      in.xoff[t] = (int32_t)(ih * s2 + iw * s3);
      in.base[t] = (int32_t)(ih * g.W + iw);
      in.opos[t] = (int32_t)(oh * g.OW + ow);
    }
  return true;
}

// Max pooling of one plane: the value (out_v) or flat in-plane index (out_i, if given) of each window's first
// maximum; windows entirely in the padding give -Inf / -1. Border windows are clipped one by one; interior
// windows advance together tap by tap in row-major window order (so the first maximum wins), a vectorisable
// (gathering) select per output and tap.
template <class T>
void max_pool_plane(const T* x, i64 s2, i64 s3, const PoolGeo& g, const Interior& in, T* out_v,
                    int32_t* out_i) {
  const T none = std::is_floating_point<T>::value ? (T)-INFINITY : T(0);  // ToInt32(-Infinity) = 0
  auto one = [&](i64 oh, i64 ow) {
    const i64 ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
    const i64 i_lo = imax<i64>(0, -ih0), i_hi = imin<i64>(g.kh, g.H - ih0);
    const i64 j_lo = imax<i64>(0, -iw0), j_hi = imin<i64>(g.kw, g.W - iw0);
    T v = none;
    int32_t idx = -1;
    if (i_lo < i_hi && j_lo < j_hi) max_window<T>(x, s2, s3, g, i_lo, i_hi, j_lo, j_hi, ih0, iw0, &v, &idx);
    if (out_i) out_i[oh * g.OW + ow] = idx;
    else out_v[oh * g.OW + ow] = v;
  };
  for (i64 oh = 0; oh < g.OH; oh++) {
    const bool row_inside = oh >= in.oh_a && oh < in.oh_b;
    for (i64 ow = 0; ow < g.OW; ow++) {
      if (row_inside && ow == in.ow_a) ow = in.ow_b;
      if (ow < g.OW) one(oh, ow);
    }
  }
  constexpr i64 CH = 256;
  T bv[CH];
  int32_t bi[CH];
  for (i64 c0 = 0; c0 < in.count; c0 += CH) {
    const i64 n = imin(CH, in.count - c0);
    const int32_t* xo = in.xoff + c0;
    const int32_t* bs = in.base + c0;
    for (i64 t = 0; t < n; t++) {
      bv[t] = x[xo[t]];
      bi[t] = bs[t];
    }
    for (i64 i = 0; i < g.kh; i++)
      for (i64 j = 0; j < g.kw; j++) {
        if (i == 0 && j == 0) continue;
        const T* src = x + i * s2 + j * s3;
        const int32_t tap = (int32_t)(i * g.W + j);
        for (i64 t = 0; t < n; t++) {
          const T v = src[xo[t]];
          const T b = bv[t];
          const bool take = (b == b) & ((v > b) | (v != v));
          bv[t] = take ? v : b;
          bi[t] = take ? bs[t] + tap : bi[t];
        }
      }
    const int32_t* op = in.opos + c0;
    if (out_i)
      for (i64 t = 0; t < n; t++) out_i[op[t]] = bi[t];
    else
      for (i64 t = 0; t < n; t++) out_v[op[t]] = bv[t];
  }
}

// The 2x2 stride-2 unpadded case on unit-stride rows has SIMD kernels (defined with the backward ones below).
CR_INLINE bool tiled_2x2(const PoolGeo& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
}
template <class T>
constexpr bool has_2x2_simd() {
  return CR_ISA_LEVEL >= 1 && (std::is_same<T, float>::value || std::is_same<T, double>::value);
}
template <class T>
void max_2x2_plane(const T* x, i64 s2, const PoolGeo& g, T* out);

template <class T>
void pool_typed(int kind, const View& x, T* out_t, int32_t* out_i, const PoolGeo& g) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64 s0 = x.strides[0], s1 = x.strides[1], s2 = x.strides[2], s3 = x.strides[3];
  const i64 per_plane = kind == 3 ? g.H * g.W : g.OH * g.OW;
  const i64 cost = imax<i64>(1, g.OH * g.OW * g.kh * g.kw);
  const double div = (double)(g.kh * g.kw);
  const bool fast2x2 = kind == 0 && has_2x2_simd<T>() && tiled_2x2(g) && s3 == 1;
  Interior in{};
  if ((kind == 0 || kind == 1) && !fast2x2 && !interior_tables(g, s2, s3, in)) return;  // see scratch_failed()
  par_for(g.planes, imax<i64>(1, 16384 / cost), [&](i64 b, i64 e, int tid) {
    for (i64 pl = b; pl < e; pl++) {
      const T* xpl = xp + (pl / g.C) * s0 + (pl % g.C) * s1;
      if (fast2x2) {
        max_2x2_plane(xpl, s2, g, out_t + pl * per_plane);
      } else if (kind == 0 || kind == 1) {
        const i64 o = pl * per_plane;
        max_pool_plane(xpl, s2, s3, g, in, out_t + o, kind == 1 ? out_i + o : nullptr);
      } else if (kind == 2) {
        for (i64 oh = 0; oh < g.OH; oh++)
          for (i64 ow = 0; ow < g.OW; ow++) {
            double acc = 0;
            const i64 ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
            for (i64 i = 0; i < g.kh; i++) {
              const i64 ih = ih0 + i;
              if (!inside(ih, g.H)) continue;
              const T* row = xpl + ih * s2;
              for (i64 j = 0; j < g.kw; j++) {
                const i64 iw = iw0 + j;
                if (inside(iw, g.W)) acc += (double)row[iw * s3];
              }
            }
            const double r = acc / div;
            T* o = out_t + pl * per_plane + oh * g.OW + ow;
            if (std::is_floating_point<T>::value) *o = (T)r;
            else *o = (T)to_int32(r);
          }
      } else {  // avg backward: x is dy [N, C, OH, OW]; out is [N, C, H, W]
        double* acc = static_cast<double*>(scratch(tid, 4, sizeof(double) * (size_t)imax<i64>(per_plane, 1)));
        if (!acc) return;  // reported by scratch_failed()
        for (i64 i = 0; i < per_plane; i++) acc[i] = 0;
        for (i64 oh = 0; oh < g.OH; oh++)
          for (i64 ow = 0; ow < g.OW; ow++) {
            const double gv = (double)xpl[oh * s2 + ow * s3] / div;
            const i64 ih0 = oh * g.sh - g.ph, iw0 = ow * g.sw - g.pw;
            for (i64 i = 0; i < g.kh; i++) {
              const i64 ih = ih0 + i;
              if (!inside(ih, g.H)) continue;
              double* row = acc + ih * g.W;
              for (i64 j = 0; j < g.kw; j++) {
                const i64 iw = iw0 + j;
                if (inside(iw, g.W)) row[iw] += gv;
              }
            }
          }
        T* o = out_t + pl * per_plane;
        if (std::is_floating_point<T>::value)
          for (i64 i = 0; i < per_plane; i++) o[i] = (T)acc[i];
        else
          for (i64 i = 0; i < per_plane; i++) o[i] = (T)to_int32(acc[i]);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Transpose of max pooling at x: dx[argmax of window (oh, ow)] += dy[oh, ow], every other position 0.
//
// Tiled windows (stride == kernel, no padding: the usual 2x2/2 CNN pool) touch every covered input exactly
// once, so one pass per output row finds each window's first maximum and writes all kh*kw of its dx
// entries (dy there, 0 elsewhere), then zeroes the uncovered right/bottom margins: dx is written once, with
// no index tensor and no zero-fill pass. Any other geometry finds the argmaxes of a plane with the forward
// kernel (max_pool_plane, into per-thread scratch) and scatters them into that plane while it is in cache:
// disjoint windows store (a position belongs to at most one window), overlapping windows accumulate in
// float64 in output order and round once, exactly like the js reference. `+ T(0)` turns a -0 into +0, as the
// reference's sum starting from +0 does.

// One row of 2x2 windows over contiguous rows x0, x1 into o0, o1 (ow windows): in the scan order a, b / c, d
// the first maximum (or first NaN) wins; the winner's position gets dy, the other three 0.
template <class T>
CR_INLINE void back_2x2_scalar(const T* x0, const T* x1, const T* dy, T* o0, T* o1, i64 w0, i64 w1) {
  for (i64 w = w0; w < w1; w++) {
    const T a = x0[2 * w], b = x0[2 * w + 1], c = x1[2 * w], d = x1[2 * w + 1];
    T bv = a;
    int k = 0;
    bool take = (bv == bv) & ((b > bv) | (b != b));
    bv = take ? b : bv;
    k = take ? 1 : k;
    take = (bv == bv) & ((c > bv) | (c != c));
    bv = take ? c : bv;
    k = take ? 2 : k;
    take = (bv == bv) & ((d > bv) | (d != d));
    k = take ? 3 : k;
    const T gv = dy[w] + T(0);
    o0[2 * w] = k == 0 ? gv : T(0);
    o0[2 * w + 1] = k == 1 ? gv : T(0);
    o1[2 * w] = k == 2 ? gv : T(0);
    o1[2 * w + 1] = k == 3 ? gv : T(0);
  }
}

#if CR_ISA_LEVEL >= 1
// The same select on AVX2 vectors of windows (8 float / 4 double). Splitting a row into its even and odd
// columns with in-lane shuffles leaves the windows in the order 0 1 4 5 2 3 6 7 (float) / 0 2 1 3 (double); dy
// is permuted the same way, and unpacklo/unpackhi of the even and odd results restore memory order exactly, so
// the data rows need no cross-lane shuffle. The running winner index is kept as a float (0..3, exact). A row
// shorter than a vector uses masked loads and buffered stores (Tail); longer rows end with an overlapping full
// vector (back_row_2x2_vec). A scalar remainder compiled to unpredictable branches and, with the common rows of
// 14 and 7 windows, cost more than the vector part.
#define CR_POOL_TAKE(cmp, andv, orv, bv, v) \
  andv(cmp(bv, bv, _CMP_ORD_Q), orv(cmp(v, bv, _CMP_GT_OQ), cmp(v, v, _CMP_UNORD_Q)))

template <bool Tail>
CR_INLINE void back_2x2_vec(const float* x0, const float* x1, const float* dy, float* o0, float* o1, int n) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1), two = _mm256_set1_ps(2),
               three = _mm256_set1_ps(3);
  __m256i lo = _mm256_setzero_si256(), hi = lo, md = lo;
  if (Tail) {  // lanes of the first / second half of the 2n row elements, and of the n dy elements
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n), iota);
    hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(2 * n - 8), iota);
    md = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), iota);
  }
  auto ld = [&](const float* p, __m256i m) { return Tail ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p); };
  // A tail's stores go through a buffer (count = elements to keep): AMD cores run vmaskmov stores in
  // microcode, several times slower than this.
  auto st = [&](float* p, int count, __m256 v) {
    if (Tail) {
      alignas(32) float buf[8];
      _mm256_store_ps(buf, v);
      for (int i = 0; i < count; i++) p[i] = buf[i];
    } else {
      _mm256_storeu_ps(p, v);
    }
  };
  const int c_lo = Tail ? imin(2 * n, 8) : 8, c_hi = Tail ? imax(2 * n - 8, 0) : 8;
  const __m256 r0a = ld(x0, lo), r0b = ld(x0 + 8, hi), r1a = ld(x1, lo), r1b = ld(x1 + 8, hi);
  const __m256 a = _mm256_shuffle_ps(r0a, r0b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 b = _mm256_shuffle_ps(r0a, r0b, _MM_SHUFFLE(3, 1, 3, 1));
  const __m256 c = _mm256_shuffle_ps(r1a, r1b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 d = _mm256_shuffle_ps(r1a, r1b, _MM_SHUFFLE(3, 1, 3, 1));
  __m256 bv = a, k = zero, t;
  t = CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, b);
  bv = _mm256_blendv_ps(bv, b, t);
  k = _mm256_blendv_ps(k, one, t);
  t = CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, c);
  bv = _mm256_blendv_ps(bv, c, t);
  k = _mm256_blendv_ps(k, two, t);
  t = CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, d);
  k = _mm256_blendv_ps(k, three, t);
  const __m256 g0 = _mm256_add_ps(ld(dy, md), zero);  // -0 -> +0
  const __m256 g = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(g0), _MM_SHUFFLE(3, 1, 2, 0)));
  const __m256 e0 = _mm256_and_ps(_mm256_cmp_ps(k, zero, _CMP_EQ_OQ), g);
  const __m256 d0 = _mm256_and_ps(_mm256_cmp_ps(k, one, _CMP_EQ_OQ), g);
  const __m256 e1 = _mm256_and_ps(_mm256_cmp_ps(k, two, _CMP_EQ_OQ), g);
  const __m256 d1 = _mm256_and_ps(_mm256_cmp_ps(k, three, _CMP_EQ_OQ), g);
  st(o0, c_lo, _mm256_unpacklo_ps(e0, d0));
  st(o0 + 8, c_hi, _mm256_unpackhi_ps(e0, d0));
  st(o1, c_lo, _mm256_unpacklo_ps(e1, d1));
  st(o1 + 8, c_hi, _mm256_unpackhi_ps(e1, d1));
}

template <bool Tail>
CR_INLINE void back_2x2_vec(const double* x0, const double* x1, const double* dy, double* o0, double* o1, int n) {
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1), two = _mm256_set1_pd(2),
                three = _mm256_set1_pd(3);
  __m256i lo = _mm256_setzero_si256(), hi = lo, md = lo;
  if (Tail) {
    const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
    lo = _mm256_cmpgt_epi64(_mm256_set1_epi64x(2 * n), iota);
    hi = _mm256_cmpgt_epi64(_mm256_set1_epi64x(2 * n - 4), iota);
    md = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), iota);
  }
  auto ld = [&](const double* p, __m256i m) { return Tail ? _mm256_maskload_pd(p, m) : _mm256_loadu_pd(p); };
  // A tail's stores go through a buffer (count = elements to keep): AMD cores run vmaskmov stores in
  // microcode, several times slower than this.
  auto st = [&](double* p, int count, __m256d v) {
    if (Tail) {
      alignas(32) double buf[4];
      _mm256_store_pd(buf, v);
      for (int i = 0; i < count; i++) p[i] = buf[i];
    } else {
      _mm256_storeu_pd(p, v);
    }
  };
  const int c_lo = Tail ? imin(2 * n, 4) : 4, c_hi = Tail ? imax(2 * n - 4, 0) : 4;
  const __m256d r0a = ld(x0, lo), r0b = ld(x0 + 4, hi), r1a = ld(x1, lo), r1b = ld(x1 + 4, hi);
  const __m256d a = _mm256_unpacklo_pd(r0a, r0b), b = _mm256_unpackhi_pd(r0a, r0b);
  const __m256d c = _mm256_unpacklo_pd(r1a, r1b), d = _mm256_unpackhi_pd(r1a, r1b);
  __m256d bv = a, k = zero, t;
  t = CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, b);
  bv = _mm256_blendv_pd(bv, b, t);
  k = _mm256_blendv_pd(k, one, t);
  t = CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, c);
  bv = _mm256_blendv_pd(bv, c, t);
  k = _mm256_blendv_pd(k, two, t);
  t = CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, d);
  k = _mm256_blendv_pd(k, three, t);
  const __m256d g = _mm256_permute4x64_pd(_mm256_add_pd(ld(dy, md), zero), _MM_SHUFFLE(3, 1, 2, 0));
  const __m256d e0 = _mm256_and_pd(_mm256_cmp_pd(k, zero, _CMP_EQ_OQ), g);
  const __m256d d0 = _mm256_and_pd(_mm256_cmp_pd(k, one, _CMP_EQ_OQ), g);
  const __m256d e1 = _mm256_and_pd(_mm256_cmp_pd(k, two, _CMP_EQ_OQ), g);
  const __m256d d1 = _mm256_and_pd(_mm256_cmp_pd(k, three, _CMP_EQ_OQ), g);
  st(o0, c_lo, _mm256_unpacklo_pd(e0, d0));
  st(o0 + 4, c_hi, _mm256_unpackhi_pd(e0, d0));
  st(o1, c_lo, _mm256_unpacklo_pd(e1, d1));
  st(o1 + 4, c_hi, _mm256_unpackhi_pd(e1, d1));
}

// Four float windows with 128-bit vectors (rows of 4..7 windows, e.g. 14-wide inputs): here the even/odd split
// keeps the windows in memory order, so dy needs no permutation.
CR_INLINE void back_2x2_sse(const float* x0, const float* x1, const float* dy, float* o0, float* o1) {
  const __m128 zero = _mm_setzero_ps(), one = _mm_set1_ps(1), two = _mm_set1_ps(2), three = _mm_set1_ps(3);
  const __m128 r0a = _mm_loadu_ps(x0), r0b = _mm_loadu_ps(x0 + 4), r1a = _mm_loadu_ps(x1), r1b = _mm_loadu_ps(x1 + 4);
  const __m128 a = _mm_shuffle_ps(r0a, r0b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 b = _mm_shuffle_ps(r0a, r0b, _MM_SHUFFLE(3, 1, 3, 1));
  const __m128 c = _mm_shuffle_ps(r1a, r1b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 d = _mm_shuffle_ps(r1a, r1b, _MM_SHUFFLE(3, 1, 3, 1));
  __m128 bv = a, k = zero, t;
  t = CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, b);
  bv = _mm_blendv_ps(bv, b, t);
  k = _mm_blendv_ps(k, one, t);
  t = CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, c);
  bv = _mm_blendv_ps(bv, c, t);
  k = _mm_blendv_ps(k, two, t);
  t = CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, d);
  k = _mm_blendv_ps(k, three, t);
  const __m128 g = _mm_add_ps(_mm_loadu_ps(dy), zero);
  const __m128 e0 = _mm_and_ps(_mm_cmp_ps(k, zero, _CMP_EQ_OQ), g);
  const __m128 d0 = _mm_and_ps(_mm_cmp_ps(k, one, _CMP_EQ_OQ), g);
  const __m128 e1 = _mm_and_ps(_mm_cmp_ps(k, two, _CMP_EQ_OQ), g);
  const __m128 d1 = _mm_and_ps(_mm_cmp_ps(k, three, _CMP_EQ_OQ), g);
  _mm_storeu_ps(o0, _mm_unpacklo_ps(e0, d0));
  _mm_storeu_ps(o0 + 4, _mm_unpackhi_ps(e0, d0));
  _mm_storeu_ps(o1, _mm_unpacklo_ps(e1, d1));
  _mm_storeu_ps(o1 + 4, _mm_unpackhi_ps(e1, d1));
}
// Forward 2x2 max pooling with the same selects: the running maximum is the output. The window order
// 0 1 4 5 2 3 6 7 (float) / 0 2 1 3 (double) is undone by the 64-bit permute (0 2 1 3), its own inverse.
CR_INLINE void fwd_2x2_vec(const float* x0, const float* x1, float* o) {
  const __m256 r0a = _mm256_loadu_ps(x0), r0b = _mm256_loadu_ps(x0 + 8);
  const __m256 r1a = _mm256_loadu_ps(x1), r1b = _mm256_loadu_ps(x1 + 8);
  const __m256 b = _mm256_shuffle_ps(r0a, r0b, _MM_SHUFFLE(3, 1, 3, 1));
  const __m256 c = _mm256_shuffle_ps(r1a, r1b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 d = _mm256_shuffle_ps(r1a, r1b, _MM_SHUFFLE(3, 1, 3, 1));
  __m256 bv = _mm256_shuffle_ps(r0a, r0b, _MM_SHUFFLE(2, 0, 2, 0));
  bv = _mm256_blendv_ps(bv, b, CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, b));
  bv = _mm256_blendv_ps(bv, c, CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, c));
  bv = _mm256_blendv_ps(bv, d, CR_POOL_TAKE(_mm256_cmp_ps, _mm256_and_ps, _mm256_or_ps, bv, d));
  _mm256_storeu_ps(o, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(bv), _MM_SHUFFLE(3, 1, 2, 0))));
}

CR_INLINE void fwd_2x2_vec(const double* x0, const double* x1, double* o) {
  const __m256d r0a = _mm256_loadu_pd(x0), r0b = _mm256_loadu_pd(x0 + 4);
  const __m256d r1a = _mm256_loadu_pd(x1), r1b = _mm256_loadu_pd(x1 + 4);
  const __m256d b = _mm256_unpackhi_pd(r0a, r0b), c = _mm256_unpacklo_pd(r1a, r1b),
                d = _mm256_unpackhi_pd(r1a, r1b);
  __m256d bv = _mm256_unpacklo_pd(r0a, r0b);
  bv = _mm256_blendv_pd(bv, b, CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, b));
  bv = _mm256_blendv_pd(bv, c, CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, c));
  bv = _mm256_blendv_pd(bv, d, CR_POOL_TAKE(_mm256_cmp_pd, _mm256_and_pd, _mm256_or_pd, bv, d));
  _mm256_storeu_pd(o, _mm256_permute4x64_pd(bv, _MM_SHUFFLE(3, 1, 2, 0)));
}

CR_INLINE void fwd_2x2_sse(const float* x0, const float* x1, float* o) {
  const __m128 r0a = _mm_loadu_ps(x0), r0b = _mm_loadu_ps(x0 + 4), r1a = _mm_loadu_ps(x1), r1b = _mm_loadu_ps(x1 + 4);
  const __m128 b = _mm_shuffle_ps(r0a, r0b, _MM_SHUFFLE(3, 1, 3, 1));
  const __m128 c = _mm_shuffle_ps(r1a, r1b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 d = _mm_shuffle_ps(r1a, r1b, _MM_SHUFFLE(3, 1, 3, 1));
  __m128 bv = _mm_shuffle_ps(r0a, r0b, _MM_SHUFFLE(2, 0, 2, 0));
  bv = _mm_blendv_ps(bv, b, CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, b));
  bv = _mm_blendv_ps(bv, c, CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, c));
  bv = _mm_blendv_ps(bv, d, CR_POOL_TAKE(_mm_cmp_ps, _mm_and_ps, _mm_or_ps, bv, d));
  _mm_storeu_ps(o, bv);
}
#undef CR_POOL_TAKE

// A row of windows: full vectors, then one last full vector ending at the row's end that overlaps the previous
// one (the overlapped windows are recomputed and rewritten with the same values), so only rows shorter than a
// vector take the masked path.
template <class T>
CR_INLINE void back_row_2x2_vec(const T* x0, const T* x1, const T* dy, T* o0, T* o1, i64 ow) {
  constexpr i64 V = 32 / sizeof(T);  // windows per 256-bit vector
  auto full = [&](i64 w) { back_2x2_vec<false>(x0 + 2 * w, x1 + 2 * w, dy + w, o0 + 2 * w, o1 + 2 * w, (int)V); };
  if (ow >= V) {
    i64 w = 0;
    for (; w + V <= ow; w += V) full(w);
    if (w < ow) full(ow - V);
  } else if (sizeof(T) == 4 && ow >= 4) {
    const float *f0 = reinterpret_cast<const float*>(x0), *f1 = reinterpret_cast<const float*>(x1),
                *fd = reinterpret_cast<const float*>(dy);
    float *p0 = reinterpret_cast<float*>(o0), *p1 = reinterpret_cast<float*>(o1);
    back_2x2_sse(f0, f1, fd, p0, p1);
    back_2x2_sse(f0 + 2 * (ow - 4), f1 + 2 * (ow - 4), fd + ow - 4, p0 + 2 * (ow - 4), p1 + 2 * (ow - 4));
  } else {
    back_2x2_vec<true>(x0, x1, dy, o0, o1, (int)ow);
  }
}

// A row of forward windows, vectorised like back_row_2x2_vec (overlapping last vector); rows of fewer than 4
// (float) / 4 (double) windows run the scalar select.
template <class T>
CR_INLINE void fwd_row_2x2(const T* x0, const T* x1, T* o, i64 ow) {
  constexpr i64 V = 32 / sizeof(T);
  i64 done = 0;
  if (ow >= V) {
    i64 w = 0;
    for (; w + V <= ow; w += V) fwd_2x2_vec(x0 + 2 * w, x1 + 2 * w, o + w);
    if (w < ow) fwd_2x2_vec(x0 + 2 * (ow - V), x1 + 2 * (ow - V), o + ow - V);
    done = ow;
  } else if (sizeof(T) == 4 && ow >= 4) {
    const float *f0 = reinterpret_cast<const float*>(x0), *f1 = reinterpret_cast<const float*>(x1);
    float* fo = reinterpret_cast<float*>(o);
    fwd_2x2_sse(f0, f1, fo);
    fwd_2x2_sse(f0 + 2 * (ow - 4), f1 + 2 * (ow - 4), fo + ow - 4);
    done = ow;
  }
  for (i64 w = done; w < ow; w++) {
    T bv = x0[2 * w];
    const T cand[3] = {x0[2 * w + 1], x1[2 * w], x1[2 * w + 1]};
    for (const T v : cand) bv = (bv == bv) & ((v > bv) | (v != v)) ? v : bv;
    o[w] = bv;
  }
}

CR_INLINE void back_row_2x2(const float* x0, const float* x1, const float* dy, float* o0, float* o1, i64 ow) {
  back_row_2x2_vec(x0, x1, dy, o0, o1, ow);
}
CR_INLINE void back_row_2x2(const double* x0, const double* x1, const double* dy, double* o0, double* o1,
                            i64 ow) {
  back_row_2x2_vec(x0, x1, dy, o0, o1, ow);
}
#endif

template <class T>
void max_2x2_plane(const T* x, i64 s2, const PoolGeo& g, T* out) {
#if CR_ISA_LEVEL >= 1
  if constexpr (has_2x2_simd<T>())
    for (i64 oh = 0; oh < g.OH; oh++) fwd_row_2x2(x + 2 * oh * s2, x + (2 * oh + 1) * s2, out + oh * g.OW, g.OW);
#endif
}

template <class T>
CR_INLINE void back_row_2x2(const T* x0, const T* x1, const T* dy, T* o0, T* o1, i64 ow) {
  back_2x2_scalar(x0, x1, dy, o0, o1, 0, ow);
}

template <class T>
void max_back_tiled_plane(const T* x, i64 s2, i64 s3, const T* dy, i64 d2, i64 d3, T* o, const PoolGeo& g) {
  const i64 kh = g.kh, kw = g.kw, W = g.W, covered_w = g.OW * kw;
  const bool fast2x2 = kh == 2 && kw == 2 && s3 == 1 && d3 == 1;
  for (i64 oh = 0; oh < g.OH; oh++) {
    const T* xr = x + oh * kh * s2;
    const T* dr = dy + oh * d2;
    T* orow = o + oh * kh * W;
    if (fast2x2) {
      back_row_2x2(xr, xr + s2, dr, orow, orow + W, g.OW);
    } else {
      for (i64 ow = 0; ow < g.OW; ow++) {
        const T* xw = xr + ow * kw * s3;
        T bv = xw[0];
        i64 best = 0;
        for (i64 i = 0; i < kh; i++)
          for (i64 j = 0; j < kw; j++) {
            const T v = xw[i * s2 + j * s3];
            const bool take = (bv == bv) & ((v > bv) | (v != v));
            bv = take ? v : bv;
            best = take ? i * kw + j : best;
          }
        const T gv = dr[ow * d3] + T(0);
        T* ow0 = orow + ow * kw;
        for (i64 i = 0; i < kh; i++)
          for (i64 j = 0; j < kw; j++) ow0[i * W + j] = i * kw + j == best ? gv : T(0);
      }
    }
    for (i64 i = 0; i < kh; i++)
      for (i64 w = covered_w; w < W; w++) orow[i * W + w] = T(0);
  }
  for (i64 i = g.OH * kh * W; i < g.H * W; i++) o[i] = T(0);
}

template <class T>
void max_back_general_plane(const T* x, i64 s2, i64 s3, const T* dy, i64 d2, i64 d3, T* o, const PoolGeo& g,
                            const Interior& in, int tid) {
  const i64 hw = g.H * g.W, n_out = g.OH * g.OW;
  int32_t* idx = static_cast<int32_t*>(scratch(tid, 5, sizeof(int32_t) * (size_t)imax<i64>(n_out, 1)));
  if (!idx) return;  // reported by scratch_failed()
  max_pool_plane<T>(x, s2, s3, g, in, nullptr, idx);
  if (g.sh >= g.kh && g.sw >= g.kw) {
    for (i64 i = 0; i < hw; i++) o[i] = T(0);
    for (i64 oh = 0, t = 0; oh < g.OH; oh++)
      for (i64 ow = 0; ow < g.OW; ow++, t++)
        if (idx[t] >= 0) o[idx[t]] = dy[oh * d2 + ow * d3] + T(0);
    return;
  }
  double* acc = static_cast<double*>(scratch(tid, 3, sizeof(double) * (size_t)hw));
  if (!acc) return;  // reported by scratch_failed()
  for (i64 i = 0; i < hw; i++) acc[i] = 0;
  for (i64 oh = 0, t = 0; oh < g.OH; oh++)
    for (i64 ow = 0; ow < g.OW; ow++, t++)
      if (idx[t] >= 0) acc[idx[t]] += (double)dy[oh * d2 + ow * d3];
  if (std::is_floating_point<T>::value)
    for (i64 i = 0; i < hw; i++) o[i] = (T)acc[i];
  else
    for (i64 i = 0; i < hw; i++) o[i] = (T)to_int32(acc[i]);
}

template <class T>
void max_back_typed(const View& x, const View& dy, T* out, const PoolGeo& g) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const T* dp = static_cast<const T*>(dy.data) + dy.offset;
  const i64 s2 = x.strides[2], s3 = x.strides[3], d2 = dy.strides[2], d3 = dy.strides[3];
  const bool tiled = g.sh == g.kh && g.sw == g.kw && g.ph == 0 && g.pw == 0;
  Interior in{};
  if (!tiled && !interior_tables(g, s2, s3, in)) return;  // reported by scratch_failed()
  const i64 hw = g.H * g.W;
  const i64 cost = imax<i64>(1, hw + g.OH * g.OW * g.kh * g.kw);
  par_for(g.planes, imax<i64>(1, 16384 / cost), [&](i64 b, i64 e, int tid) {
    for (i64 pl = b; pl < e; pl++) {
      const i64 n = pl / g.C, c = pl % g.C;
      const T* xpl = xp + n * x.strides[0] + c * x.strides[1];
      const T* dpl = dp + n * dy.strides[0] + c * dy.strides[1];
      if (tiled) max_back_tiled_plane(xpl, s2, s3, dpl, d2, d3, out + pl * hw, g);
      else max_back_general_plane(xpl, s2, s3, dpl, d2, d3, out + pl * hw, g, in, tid);
    }
  });
}

}  // namespace

Err pool2d(int kind, const View& x, const Out& out, const int64_t* shape, const PoolParams& pp) {
  if (x.ndim != 4) return "pool2d: input must have rank 4";
  if (kind < 0 || kind > 3) return "pool2d: unknown kind";
  // Input and output geometry: for the backward pass x is dy and `shape` is the input's.
  const i64* in = kind == 3 ? shape : x.shape;
  const i64* os = kind == 3 ? x.shape : shape;
  PoolGeo g;
  g.planes = in[0] * in[1];
  g.C = in[1];
  g.H = in[2], g.W = in[3], g.OH = os[2], g.OW = os[3];
  g.kh = pp.kh, g.kw = pp.kw, g.sh = pp.sh, g.sw = pp.sw, g.ph = pp.ph, g.pw = pp.pw;
  if (in[0] != os[0] || in[1] != os[1] || g.sh < 1 || g.sw < 1) return "pool2d: inconsistent shapes";
  if (g.kh < 1 || g.kw < 1 || g.ph < 0 || g.pw < 0) return "pool2d: invalid pooling parameters";
  // The output must be exactly the pooled shape of the input: the kernels derive window positions from it.
  // (Parameters are at most 2^31 and extents 2^53, so these sums cannot overflow.)
  const i64 eh = g.H + 2 * g.ph - g.kh, ew = g.W + 2 * g.pw - g.kw;
  if (g.OH != (eh >= 0 ? eh / g.sh + 1 : 0) || g.OW != (ew >= 0 ? ew / g.sw + 1 : 0))
    return "pool2d: the output is not the pooled shape of the input";
  if (kind == 1 && out.dtype != I32) return "maxPool2dArgmax: out must be int32";
  // In-plane indices (argmax outputs, the interior tables) are int32.
  if (kind <= 1 && g.H * g.W > INT32_MAX) return "maxPool2d: an input plane has more than 2^31 - 1 elements";
  if (kind != 1 && out.dtype != x.dtype) return "pool2d: out must have the dtype of x";
  if (g.planes == 0 || shape[2] * shape[3] == 0) return nullptr;
  int32_t* oi = static_cast<int32_t*>(out.data);
  switch (x.dtype) {
    case F32: pool_typed<float>(kind, x, static_cast<float*>(out.data), oi, g); break;
    case F64: pool_typed<double>(kind, x, static_cast<double*>(out.data), oi, g); break;
    case I32: pool_typed<int32_t>(kind, x, static_cast<int32_t*>(out.data), oi, g); break;
    default: pool_typed<uint8_t>(kind, x, static_cast<uint8_t*>(out.data), oi, g); break;
  }
  return nullptr;
}

Err max_pool2d_backward(const View& x, const View& dy, const Out& out, const PoolParams& pp) {
  if (x.ndim != 4 || dy.ndim != 4) return "maxPool2dBackward: x and dy must have rank 4";
  if (x.dtype != dy.dtype || out.dtype != x.dtype) return "maxPool2dBackward: x, dy and out must share a dtype";
  if (x.dtype == BOOL) return "maxPool2dBackward: bool is not supported";
  PoolGeo g;
  g.planes = x.shape[0] * x.shape[1];
  g.C = x.shape[1];
  g.H = x.shape[2], g.W = x.shape[3], g.OH = dy.shape[2], g.OW = dy.shape[3];
  g.kh = pp.kh, g.kw = pp.kw, g.sh = pp.sh, g.sw = pp.sw, g.ph = pp.ph, g.pw = pp.pw;
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.ph < 0 || g.pw < 0)
    return "maxPool2dBackward: invalid pooling parameters";
  // dy must be exactly the pooled shape: the kernels index x through the window geometry of dy's positions.
  const i64 oh = (g.H + 2 * g.ph - g.kh) >= 0 ? (g.H + 2 * g.ph - g.kh) / g.sh + 1 : 0;
  const i64 ow = (g.W + 2 * g.pw - g.kw) >= 0 ? (g.W + 2 * g.pw - g.kw) / g.sw + 1 : 0;
  if (dy.shape[0] != x.shape[0] || dy.shape[1] != x.shape[1] || g.OH != oh || g.OW != ow)
    return "maxPool2dBackward: dy is not the pooled shape of x";
  if (g.H * g.W > INT32_MAX) return "maxPool2dBackward: an input plane has more than 2^31 - 1 elements";
  const i64 size = g.planes * g.H * g.W;
  if (size == 0) return nullptr;
  if (g.OH * g.OW == 0) {  // no window: dx is all zeros
    std::memset(out.data, 0, (size_t)size * (x.dtype == F64 ? 8 : 4));
    return nullptr;
  }
  switch (x.dtype) {
    case F32: max_back_typed<float>(x, dy, static_cast<float*>(out.data), g); break;
    case F64: max_back_typed<double>(x, dy, static_cast<double*>(out.data), g); break;
    default: max_back_typed<int32_t>(x, dy, static_cast<int32_t*>(out.data), g); break;
  }
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
