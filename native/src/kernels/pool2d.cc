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

template <class T>
void pool_typed(int kind, const View& x, T* out_t, int32_t* out_i, const PoolGeo& g) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64 s0 = x.strides[0], s1 = x.strides[1], s2 = x.strides[2], s3 = x.strides[3];
  const i64 per_plane = kind == 3 ? g.H * g.W : g.OH * g.OW;
  const i64 cost = imax<i64>(1, g.OH * g.OW * g.kh * g.kw);
  const double div = (double)(g.kh * g.kw);
  Interior in{};
  if ((kind == 0 || kind == 1) && !interior_tables(g, s2, s3, in)) return;  // reported by scratch_failed()
  par_for(g.planes, imax<i64>(1, 16384 / cost), [&](i64 b, i64 e, int tid) {
    for (i64 pl = b; pl < e; pl++) {
      const T* xpl = xp + (pl / g.C) * s0 + (pl % g.C) * s1;
      if (kind == 0 || kind == 1) {
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
