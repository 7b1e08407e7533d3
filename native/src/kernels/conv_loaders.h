// GEMM operand loaders for 2-D convolution: they pack im2col panels straight from the strided NCHW tensors,
// so the im2col matrix is never materialised.
//
// Packing is the cost that competes with the arithmetic here (every im2col element is packed once and used
// M times, M being a channel count that may be small), so the loaders avoid per-element divisions and
// bounds tests: a panel's columns (or rows) are first split into "runs", stretches that share an image and
// an output row (n, oh) and advance along ow, and each run is then copied as one clipped strided (or, for
// unit stride, contiguous) segment, with zeros where the window reaches into the padding.
#pragma once

#include "gemm.h"

namespace cr {
namespace CR_ISA_NS {

struct Geo {
  i64 N, C, H, W, O, Cg, Og, KH, KW, OH, OW, G;
  i64 sh, sw, ph, pw, dh, dw;
};

// A stretch of consecutive output positions (n, oh, ow0 .. ow0 + len) placed at index `at` of a panel.
struct Run {
  i64 n, oh, ow0, len, at;
};

// Split output positions q0 .. q0 + count (q = n * P + oh * OW + ow, P = OH * OW) into runs.
CR_INLINE int make_runs(const Geo& g, i64 q0, i64 count, Run* runs) {
  const i64 P = g.OH * g.OW;
  i64 n = q0 / P, p = q0 % P;
  i64 oh = p / g.OW, ow = p % g.OW;
  int nr = 0;
  for (i64 at = 0; at < count;) {
    const i64 len = imin(g.OW - ow, count - at);
    runs[nr++] = Run{n, oh, ow, len, at};
    at += len;
    ow = 0;
    if (++oh == g.OH) {
      oh = 0;
      n++;
    }
  }
  return nr;
}

// dst[t * ds] = row[iw(t) * xs3] for t < len, iw(t) = iw0 + t * sw, and 0 where iw(t) is outside [0, W).
template <class T>
CR_INLINE void clipped_copy(T* dst, i64 ds, const T* row, i64 xs3, i64 iw0, i64 sw, i64 len, i64 W) {
  // first and last t with 0 <= iw0 + t*sw < W
  // (unit stride, the common case, needs no integer division: this runs once per short run of a panel)
  i64 a, b;
  if (sw == 1) {
    a = iw0 >= 0 ? 0 : -iw0;
    b = W - iw0 <= 0 ? 0 : W - iw0;
  } else {
    a = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
    b = W - iw0 <= 0 ? 0 : (W - iw0 + sw - 1) / sw;
  }
  a = imin(a, len);
  b = imax(a, imin(b, len));
  for (i64 t = 0; t < a; t++) dst[t * ds] = T(0);
  if (ds == 1 && sw == 1 && xs3 == 1) {
    const T* src = row + iw0;
    for (i64 t = a; t < b; t++) dst[t] = src[t];
  } else {
    const T* src = row + (iw0 + a * sw) * xs3;
    const i64 step = sw * xs3;
    for (i64 t = a; t < b; t++) dst[t * ds] = src[(t - a) * step];
  }
  for (i64 t = b; t < len; t++) dst[t * ds] = T(0);
}

// Forward B: rows k = (c, kh, kw) of group g, columns the output positions of all images, each image padded
// to Ppad columns (a multiple of NR, so a panel never spans two images; see ConvColumns).
template <class T>
struct Im2colCols {
  const T* x;  // at x[0, g*Cg, 0, 0]
  i64 xs0, xs1, xs2, xs3, Ppad;
  const Geo* g;
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    const Geo& q = *g;
    const i64 P = q.OH * q.OW;
    Run runs[NR + 1];
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) {
      const i64 j = j0 + jp;
      const i64 img = j / Ppad, p0 = j % Ppad;
      const int valid = (int)imax<i64>(0, imin<i64>(imin<i64>(NR, n - jp), P - p0));
      const int nruns = make_runs(q, img * P + p0, valid, runs);
      i64 c = k0 / (q.KH * q.KW), r = k0 % (q.KH * q.KW);
      i64 kh = r / q.KW, kw = r % q.KW;
      for (i64 k = 0; k < kc; k++) {
        T* d = dst + k * NR;
        const T* xc = x + img * xs0 + c * xs1;
        for (int u = 0; u < nruns; u++) {
          const Run& ru = runs[u];
          const i64 ih = ru.oh * q.sh - q.ph + kh * q.dh;
          if ((uint64_t)ih >= (uint64_t)q.H) {
            for (i64 t = 0; t < ru.len; t++) d[ru.at + t] = T(0);
          } else {
            clipped_copy(d + ru.at, 1, xc + ih * xs2, xs3, ru.ow0 * q.sw - q.pw + kw * q.dw, q.sw, ru.len, q.W);
          }
        }
        for (int t = valid; t < NR; t++) d[t] = T(0);
        if (++kw == q.KW) {
          kw = 0;
          if (++kh == q.KH) {
            kh = 0;
            c++;
          }
        }
      }
    }
  }
};

// Column map of the forward output: column j of image img = j / Ppad is y[img, o, p], p = j % Ppad < P.
struct ConvColumns {
  i64 Ppad, P, image_stride;  // image_stride = O * P
  CR_INLINE i64 offset(i64 j) const { return (j / Ppad) * image_stride + j % Ppad; }
  CR_INLINE int valid(i64 j, int nr) const { return (int)imin<i64>(nr, P - j % Ppad); }
};

// Weight-gradient B: rows (n, oh, ow) over all images, columns (c, kh, kw) of group g. Filled column by
// column, so each run is a contiguous stretch of an input row.
template <class T>
struct Im2colRows {
  const T* x;  // at x[0, g*Cg, 0, 0]
  i64 xs0, xs1, xs2, xs3;
  const Geo* g;
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    const Geo& q = *g;
    Run* runs = static_cast<Run*>(scratch(pool_tid(), 6, sizeof(Run) * (size_t)(kc + 2)));
    if (!runs) return;  // reported by scratch_failed()
    const int nruns = make_runs(q, k0, kc, runs);
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) {
      const int cols = (int)imin<i64>(NR, n - jp);
      for (int cc = 0; cc < NR; cc++) {
        T* d = dst + cc;
        if (cc >= cols) {
          for (i64 k = 0; k < kc; k++) d[k * NR] = T(0);
          continue;
        }
        const i64 j = j0 + jp + cc;
        const i64 c = j / (q.KH * q.KW), r = j % (q.KH * q.KW);
        const i64 dih = (r / q.KW) * q.dh - q.ph, diw = (r % q.KW) * q.dw - q.pw;
        const T* xc = x + c * xs1;
        for (int u = 0; u < nruns; u++) {
          const Run& ru = runs[u];
          const i64 ih = ru.oh * q.sh + dih;
          T* dd = d + ru.at * NR;
          if ((uint64_t)ih >= (uint64_t)q.H) {
            for (i64 t = 0; t < ru.len; t++) dd[t * NR] = T(0);
          } else {
            clipped_copy(dd, NR, xc + ru.n * xs0 + ih * xs2, xs3, ru.ow0 * q.sw + diw, q.sw, ru.len, q.W);
          }
        }
      }
    }
  }
};

// Weight-gradient A: rows o of group g, columns (n, oh, ow) over all images, read from dy.
template <class T>
struct DyRows {
  const T* dy;  // at dy[0, g*Og, 0, 0]
  i64 s0, s1, s2, s3;
  const Geo* g;
  void pack_a(T* dst, i64 i0, i64 m, i64 k0, i64 kc) const {
    constexpr int MR = Blocking<T>::MR;
    Run* runs = static_cast<Run*>(scratch(pool_tid(), 7, sizeof(Run) * (size_t)(kc + 2)));
    if (!runs) return;  // reported by scratch_failed()
    const int nruns = make_runs(*g, k0, kc, runs);
    for (i64 ip = 0; ip < m; ip += MR, dst += kc * MR) {
      const int rows = (int)imin<i64>(MR, m - ip);
      for (int r = 0; r < MR; r++) {
        T* d = dst + r;
        if (r >= rows) {
          for (i64 k = 0; k < kc; k++) d[k * MR] = T(0);
          continue;
        }
        const T* src = dy + (i0 + ip + r) * s1;
        for (int u = 0; u < nruns; u++) {
          const Run& ru = runs[u];
          const T* s = src + ru.n * s0 + ru.oh * s2 + ru.ow0 * s3;
          T* dd = d + ru.at * MR;
          for (i64 t = 0; t < ru.len; t++) dd[t * MR] = s[t * s3];
        }
      }
    }
  }
};

}  // namespace CR_ISA_NS
}  // namespace cr
