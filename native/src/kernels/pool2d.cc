// 2-D pooling (NCHW): max pooling, its argmax, average pooling and the transpose of average pooling.
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

// One window tap for n consecutive outputs: take the tap where it beats the best so far (or is a NaN).
template <class T, int STEP>
CR_INLINE void update_taps(const T* src, i64 step, i64 n, int32_t base_idx, int32_t sw, T* bv, int32_t* bi) {
  const i64 st = STEP > 0 ? STEP : step;
  for (i64 t = 0; t < n; t++) {
    const T v = src[t * st];
    const T b = bv[t];
    const bool take = (b == b) & ((v > b) | (v != v));
    bv[t] = take ? v : b;
    bi[t] = take ? base_idx + (int32_t)t * sw : bi[t];
  }
}

// Max pooling of output row oh of one plane: the value (out_v) or flat in-plane index (out_i, if given) of
// each window's first maximum; windows entirely in the padding give -Inf / -1.
template <class T>
void max_pool_row(const T* x, i64 s2, i64 s3, const PoolGeo& g, i64 oh, T* out_v, int32_t* out_i) {
  const i64 ih0 = oh * g.sh - g.ph;
  const i64 i_lo = imax<i64>(0, -ih0), i_hi = imin<i64>(g.kh, g.H - ih0);
  const T none = std::is_floating_point<T>::value ? (T)-INFINITY : T(0);  // ToInt32(-Infinity) = 0
  // Outputs whose window lies horizontally inside the image: ow*sw - pw >= 0 and ow*sw - pw + kw <= W.
  const i64 ow_a = imin<i64>(g.OW, (g.pw + g.sw - 1) / g.sw);
  const i64 ow_b = imax<i64>(ow_a, imin<i64>(g.OW, g.W + g.pw - g.kw >= 0 ? (g.W + g.pw - g.kw) / g.sw + 1 : 0));
  auto one = [&](i64 ow) {
    const i64 iw0 = ow * g.sw - g.pw;
    const i64 j_lo = imax<i64>(0, -iw0), j_hi = imin<i64>(g.kw, g.W - iw0);
    T v;
    int32_t idx;
    if (i_lo >= i_hi || j_lo >= j_hi) {
      v = none;
      idx = -1;
    } else {
      max_window<T>(x, s2, s3, g, i_lo, i_hi, j_lo, j_hi, ih0, iw0, &v, &idx);
    }
    if (out_i) out_i[ow] = idx;
    else out_v[ow] = v;
  };
  for (i64 ow = 0; ow < ow_a; ow++) one(ow);
  for (i64 ow = ow_b; ow < g.OW; ow++) one(ow);
  if (i_lo >= i_hi) {
    for (i64 ow = ow_a; ow < ow_b; ow++) one(ow);
    return;
  }
  // Interior: all outputs of a chunk advance tap by tap (row-major window order, so the first maximum
  // wins), a vectorisable select per output and tap.
  constexpr i64 CH = 128;
  T bv[CH];
  int32_t bi[CH];
  const i64 step = g.sw * s3;
  for (i64 c0 = ow_a; c0 < ow_b; c0 += CH) {
    const i64 n = imin(CH, ow_b - c0);
    const i64 iw_base = c0 * g.sw - g.pw;
    for (i64 i = i_lo; i < i_hi; i++) {
      const T* row = x + (ih0 + i) * s2;
      for (i64 j = 0; j < g.kw; j++) {
        const T* src = row + (iw_base + j) * s3;
        const int32_t base_idx = (int32_t)((ih0 + i) * g.W + iw_base + j);
        const int32_t sw = (int32_t)g.sw;
        if (i == i_lo && j == 0) {
          for (i64 t = 0; t < n; t++) {
            bv[t] = src[t * step];
            bi[t] = base_idx + (int32_t)t * sw;
          }
          continue;
        }
        // Constant strides for the common steps let the compiler vectorise the loads.
        if (step == 1) update_taps<T, 1>(src, 1, n, base_idx, sw, bv, bi);
        else if (step == 2) update_taps<T, 2>(src, 2, n, base_idx, sw, bv, bi);
        else update_taps<T, 0>(src, step, n, base_idx, sw, bv, bi);
      }
    }
    if (out_i) std::memcpy(out_i + c0, bi, n * sizeof(int32_t));
    else std::memcpy(out_v + c0, bv, n * sizeof(T));
  }
}

template <class T>
void pool_typed(int kind, const View& x, T* out_t, int32_t* out_i, const PoolGeo& g) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64 s0 = x.strides[0], s1 = x.strides[1], s2 = x.strides[2], s3 = x.strides[3];
  const i64 per_plane = kind == 3 ? g.H * g.W : g.OH * g.OW;
  const i64 cost = imax<i64>(1, g.OH * g.OW * g.kh * g.kw);
  const double div = (double)(g.kh * g.kw);
  par_for(g.planes, imax<i64>(1, 16384 / cost), [&](i64 b, i64 e, int tid) {
    for (i64 pl = b; pl < e; pl++) {
      const T* xpl = xp + (pl / g.C) * s0 + (pl % g.C) * s1;
      if (kind == 0 || kind == 1) {
        for (i64 oh = 0; oh < g.OH; oh++) {
          const i64 o = pl * per_plane + oh * g.OW;
          max_pool_row(xpl, s2, s3, g, oh, out_t + o, kind == 1 ? out_i + o : nullptr);
        }
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

Err pool_impl(int kind, const View& x, const Out& out, const int64_t* shape, const PoolParams& pp) {
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
  if (kind == 1 && out.dtype != I32) return "maxPool2dArgmax: out must be int32";
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

}  // namespace

Err pool2d(int kind, const View& x, const Out& out, const int64_t* shape, const PoolParams& pp) {
  return pool_impl(kind, x, out, shape, pp);
}

}  // namespace CR_ISA_NS
}  // namespace cr
