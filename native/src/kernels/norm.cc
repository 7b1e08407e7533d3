// Layer normalisation over the last axis (Backend.layerNorm) and its VJP (Backend.layerNormBackward), one kernel
// call each instead of the ~10 (forward) and ~20 (backward) elementwise kernels and reductions of the composition,
// each of which walked a full-size temporary. Per row, with the row in cache:
//   forward:   mean, then var = mean((x - mean)^2) (two sweeps, no cancellation), rstd = 1 / sqrt(var + eps),
//              out = (x - mean) rstd;
//   backward:  mean and rstd again from x (cheaper than saving them: the row is in L1), xhat = (x - mean) rstd,
//              out = rstd (g - mean(g) - xhat mean(xhat g)).
// Sums are float64 in 16 independent lanes (the order depends on the row length alone, so results do not depend
// on the thread count); the elementwise writes are in T with the row statistics rounded to T. Rows at unit
// stride run straight; others are gathered into contiguous scratch rows. Rows are split over the thread pool.
#include <memory>
#include <new>

#include "map.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// Mean and rstd of a unit-stride row.
template <class T>
CR_INLINE void row_stats(const T* __restrict x, i64 r, double eps, double& mean, double& rstd) {
  mean = lanes_sum(r, [&](i64 i) { return (double)x[i]; }) / (double)r;
  const double m = mean;
  const double q = lanes_sum(r, [&](i64 i) {
    const double d = (double)x[i] - m;
    return d * d;
  });
  rstd = 1.0 / std::sqrt(q / (double)r + eps);
}

template <class T>
void row_forward(const T* __restrict x, const T* /*g*/, T* __restrict o, i64 r, double eps) {
  double mean, rstd;
  row_stats(x, r, eps, mean, rstd);
  const T m = (T)mean, s = (T)rstd;
  for (i64 i = 0; i < r; i++) o[i] = (x[i] - m) * s;
}

template <class T>
void row_backward(const T* __restrict x, const T* __restrict g, T* __restrict o, i64 r, double eps) {
  double mean, rstd;
  row_stats(x, r, eps, mean, rstd);
  const T m = (T)mean, s = (T)rstd;
  // xhat into o first (a plain map), then the two sums while the row is in L1, then the result over it
  for (i64 i = 0; i < r; i++) o[i] = (x[i] - m) * s;
  const double sg = lanes_sum(r, [&](i64 i) { return (double)g[i]; });
  const double sgx = lanes_sum(r, [&](i64 i) { return (double)g[i] * (double)o[i]; });
  const T mg = (T)(sg / (double)r), mgx = (T)(sgx / (double)r);
  for (i64 i = 0; i < r; i++) o[i] = s * (g[i] - mg - o[i] * mgx);
}

// Every row of x (and of g, x's shape, when HAS_G) with its output row: row(x_row, g_row, out_row), the rows at
// unit stride (gathered into scratch slot 3 first when they are not), split over the pool.
template <class T, bool HAS_G, class F>
void for_each_row(const View& x, const View* g, T* out, F row) {
  const int axis = x.ndim - 1;
  i64 ofull[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ofull);
  i64 ks[kMaxDims], kx[kMaxDims], kg[kMaxDims], ko[kMaxDims];
  int nk = 0;
  for (int d = 0; d < axis; d++) {
    ks[nk] = x.shape[d];
    kx[nk] = x.strides[d];
    kg[nk] = HAS_G ? g->strides[d] : 0;
    ko[nk++] = ofull[d];
  }
  Iter<3> kept;
  const i64* kst[3] = {kx, kg, ko};
  kept.init(nk, ks, kst);
  const i64 K = kept.size, R = x.shape[axis];
  if (K == 0 || R == 0) return;
  const i64 xs = x.strides[axis], gs = HAS_G ? g->strides[axis] : 1;
  const i64 kxs = kept.st[0][kept.nd - 1], kgs = kept.st[1][kept.nd - 1], kos = kept.st[2][kept.nd - 1];
  const bool unit = xs == 1 && gs == 1;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const T* gp = HAS_G ? static_cast<const T*>(g->data) + g->offset : nullptr;
  par_for(K, imax<i64>(1, 16384 / imax<i64>(R, 1)), [&](i64 b, i64 e, int tid) {
    T* tmp = unit ? nullptr : static_cast<T*>(scratch(tid, 3, sizeof(T) * 2 * (size_t)R));
    if (!unit && !tmp) return;  // out of memory: the N-API layer reports it
    kept.walk(b, e, [&](const i64* off, i64 len) {
      for (i64 j = 0; j < len; j++) {
        const T* xr = xp + off[0] + j * kxs;
        const T* gr = HAS_G ? gp + off[1] + j * kgs : nullptr;
        T* orow = out + off[2] + j * kos;
        if (!unit) {
          for (i64 i = 0; i < R; i++) tmp[i] = xr[i * xs];
          xr = tmp;
          if (HAS_G) {
            for (i64 i = 0; i < R; i++) tmp[R + i] = gr[i * gs];
            gr = tmp + R;
          }
        }
        row(xr, gr, orow);
      }
    });
  });
}

template <class T, bool BACK>
void layer_norm_typed(const View& x, const View* g, double eps, T* out) {
  const i64 R = x.shape[x.ndim - 1];
  for_each_row<T, BACK>(x, g, out, [&](const T* xr, const T* gr, T* orow) {
    if (BACK) row_backward<T>(xr, gr, orow, R, eps);
    else row_forward<T>(xr, gr, orow, R, eps);
  });
}

// Affine forward of a unit-stride row: out = xhat w + b (w, b unit stride).
template <class T>
void row_affine(const T* __restrict x, const T* __restrict w, const T* __restrict b, T* __restrict o, i64 r,
                double eps) {
  double mean, rstd;
  row_stats(x, r, eps, mean, rstd);
  const T m = (T)mean, s = (T)rstd;
  for (i64 i = 0; i < r; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
}

// layerNormBackward(x, g w) of a unit-stride row: as row_backward with g w for g (w unit stride). The products
// g w are stored (rounded to T) before anything reads them: computed inside the sums and the final expression,
// GCC's contraction into fused multiply-adds left their rounding error there (a row of one gave ~1e-5, not 0).
template <class T>
void row_scaled_backward(const T* __restrict x, const T* __restrict w, const T* __restrict g, T* __restrict o, i64 r,
                         double eps) {
  double mean, rstd;
  row_stats(x, r, eps, mean, rstd);
  const T m = (T)mean, s = (T)rstd;
  for (i64 i = 0; i < r; i++) o[i] = g[i] * w[i];
  const double sg = lanes_sum(r, [&](i64 i) { return (double)o[i]; });
  const double sgx = lanes_sum(r, [&](i64 i) { return (double)o[i] * (double)((x[i] - m) * s); });
  const T mg = (T)(sg / (double)r), mgx = (T)(sgx / (double)r);
  for (i64 i = 0; i < r; i++) o[i] = s * (o[i] - mg - ((x[i] - m) * s) * mgx);
}

// The affine form's row-wise kernels (KIND 0: xhat w + b with a = [w; b]; KIND 1: layerNormBackward(x, g w) with
// a = w), rows as in layer_norm_typed.
template <class T, int KIND>
void layer_norm_affine_rows(const View& x, const T* a, const View* g, double eps, T* out) {
  const i64 R = x.shape[x.ndim - 1];
  for_each_row<T, KIND == 1>(x, g, out, [&](const T* xr, const T* gr, T* orow) {
    if (KIND == 0) row_affine<T>(xr, a, a + R, orow, R, eps);
    else row_scaled_backward<T>(xr, a, gr, orow, R, eps);
  });
}

// out [2, R] = [sum_rows g xhat, sum_rows g] in float64: the rows split into C chunks of consecutive rows (C from
// the shape alone: at most 64, and at most 32 MB of partial sums), each chunk's rows added in order into its own
// partial sums, the chunks' partials then added in chunk order. Returns false when the partials cannot be
// allocated.
template <class T>
bool layer_norm_affine_grads(const View& x, const View& g, double eps, T* out) {
  const int axis = x.ndim - 1;
  const i64 R = x.shape[axis];
  i64 K = 1;
  for (int d = 0; d < axis; d++) K *= x.shape[d];
  if (R == 0) return true;
  if (K == 0) {
    for (i64 i = 0; i < 2 * R; i++) out[i] = T(0);
    return true;
  }
  const i64 C = imax<i64>(1, imin<i64>(imin<i64>(64, K), (i64)(32 << 20) / (16 * R)));
  std::unique_ptr<double[]> part(new (std::nothrow) double[(size_t)(C * 2 * R)]);
  if (!part) return false;
  // the row index space as in layer_norm_typed (x's and g's strides off the last axis)
  i64 ks[kMaxDims], kx[kMaxDims], kg[kMaxDims];
  int nk = 0;
  for (int d = 0; d < axis; d++) {
    ks[nk] = x.shape[d];
    kx[nk] = x.strides[d];
    kg[nk++] = g.strides[d];
  }
  Iter<2> kept;
  const i64* kst[2] = {kx, kg};
  kept.init(nk, ks, kst);
  const i64 xs = x.strides[axis], gs = g.strides[axis];
  const i64 kxs = kept.st[0][kept.nd - 1], kgs = kept.st[1][kept.nd - 1];
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const T* gp = static_cast<const T*>(g.data) + g.offset;
  bool ok = true;
  par_for(C, 1, [&](i64 cb, i64 ce, int tid) {
    double* h = static_cast<double*>(scratch(tid, 3, sizeof(double) * (size_t)R));
    if (!h) {
      __atomic_store_n(&ok, false, __ATOMIC_RELAXED);
      return;
    }
    for (i64 c = cb; c < ce; c++) {
      double* sw = part.get() + c * 2 * R;
      double* sb = sw + R;
      for (i64 i = 0; i < 2 * R; i++) sw[i] = 0.0;
      kept.walk(c * K / C, (c + 1) * K / C, [&](const i64* off, i64 len) {
        for (i64 j = 0; j < len; j++) {
          const T* xr = xp + off[0] + j * kxs;
          const T* gr = gp + off[1] + j * kgs;
          double mean = 0.0, q = 0.0;
          for (i64 i = 0; i < R; i++) h[i] = (double)xr[i * xs];
          mean = lanes_sum(R, [&](i64 i) { return h[i]; }) / (double)R;
          q = lanes_sum(R, [&](i64 i) { return (h[i] - mean) * (h[i] - mean); });
          const double rstd = 1.0 / std::sqrt(q / (double)R + eps);
          if (gs == 1) {
            for (i64 i = 0; i < R; i++) {
              const double gv = (double)gr[i];
              sw[i] += gv * ((h[i] - mean) * rstd);
              sb[i] += gv;
            }
          } else {
            for (i64 i = 0; i < R; i++) {
              const double gv = (double)gr[i * gs];
              sw[i] += gv * ((h[i] - mean) * rstd);
              sb[i] += gv;
            }
          }
        }
      });
    }
  });
  if (!ok) return false;
  for (i64 i = 0; i < 2 * R; i++) {
    double acc = 0.0;
    for (i64 c = 0; c < C; c++) acc += part[c * 2 * R + i];
    out[i] = (T)acc;
  }
  return true;
}

}  // namespace

Err layer_norm_affine(int kind, const NormParams& np, int nd, const int64_t* shape, const View& x, const View* a,
                      const View* g, const Out& out) {
  if (kind < 0 || kind > 2) return "layerNormAffine: unknown kind";
  if (x.ndim < 1) return "layerNormAffine: rank >= 1 expected";
  if (x.dtype != out.dtype) return "layerNormAffine: out must have the dtype of x";
  if (x.dtype != F32 && x.dtype != F64) return "layerNormAffine: float32 or float64 expected";
  const i64 R = x.shape[x.ndim - 1];
  // the output's shape: x's (kinds 0, 1) or [2, R] (kind 2)
  if (kind == 2) {
    if (nd != 2 || shape[0] != 2 || shape[1] != R) return "layerNormAffineGrads: out shape must be [2, N]";
  } else {
    if (nd != x.ndim) return "layerNormAffine: out shape must be x's";
    for (int d = 0; d < nd; d++)
      if (shape[d] != x.shape[d]) return "layerNormAffine: out shape must be x's";
  }
  if (kind != 2) {
    // a: [w; b] ([2, R]) or w ([R]), contiguous, x's dtype
    if (a == nullptr) return "layerNormAffine: weight missing";
    if (a->dtype != x.dtype) return "layerNormAffine: weight must have the dtype of x";
    const int want = kind == 0 ? 2 : 1;
    if (a->ndim != want) return "layerNormAffine: weight of the wrong rank";
    if (a->shape[a->ndim - 1] != R || a->strides[a->ndim - 1] != 1 || (want == 2 && (a->shape[0] != 2 || a->strides[0] != R)))
      return "layerNormAffine: weight must be contiguous with the input's last axis";
  }
  if (kind != 0) {
    if (g == nullptr) return "layerNormAffine: cotangent missing";
    if (g->dtype != x.dtype) return "layerNormAffine: x and g must share a dtype";
    if (g->ndim != x.ndim) return "layerNormAffine: x and g ranks differ";
    for (int d = 0; d < x.ndim; d++)
      if (g->shape[d] != x.shape[d]) return "layerNormAffine: x and g shapes differ";
  }
  if (x.dtype == F32) {
    float* o = static_cast<float*>(out.data);
    const float* w = a ? static_cast<const float*>(a->data) + a->offset : nullptr;
    if (kind == 0) layer_norm_affine_rows<float, 0>(x, w, g, np.eps, o);
    else if (kind == 1) layer_norm_affine_rows<float, 1>(x, w, g, np.eps, o);
    else if (!layer_norm_affine_grads<float>(x, *g, np.eps, o)) return "layerNormAffineGrads: out of memory";
  } else {
    double* o = static_cast<double*>(out.data);
    const double* w = a ? static_cast<const double*>(a->data) + a->offset : nullptr;
    if (kind == 0) layer_norm_affine_rows<double, 0>(x, w, g, np.eps, o);
    else if (kind == 1) layer_norm_affine_rows<double, 1>(x, w, g, np.eps, o);
    else if (!layer_norm_affine_grads<double>(x, *g, np.eps, o)) return "layerNormAffineGrads: out of memory";
  }
  return nullptr;
}

Err layer_norm(int kind, const NormParams& np, const View& x, const View* g, const Out& out) {
  const bool back = kind == 1;
  if (kind != 0 && kind != 1) return "layerNorm: unknown kind";
  if (x.ndim < 1) return "layerNorm: rank >= 1 expected";
  if (x.dtype != out.dtype) return "layerNorm: out must have the dtype of x";
  if (back) {
    if (g == nullptr) return "layerNormBackward: g missing";
    if (g->dtype != x.dtype) return "layerNormBackward: x and g must share a dtype";
    if (g->ndim != x.ndim) return "layerNormBackward: x and g ranks differ";
    for (int d = 0; d < x.ndim; d++)
      if (g->shape[d] != x.shape[d]) return "layerNormBackward: x and g shapes differ";
  }
  if (x.dtype == F32) {
    float* o = static_cast<float*>(out.data);
    back ? layer_norm_typed<float, true>(x, g, np.eps, o) : layer_norm_typed<float, false>(x, g, np.eps, o);
  } else if (x.dtype == F64) {
    double* o = static_cast<double*>(out.data);
    back ? layer_norm_typed<double, true>(x, g, np.eps, o) : layer_norm_typed<double, false>(x, g, np.eps, o);
  } else {
    return "layerNorm: float32 or float64 expected";
  }
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
