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

template <class T, bool BACK>
void layer_norm_typed(const View& x, const View* g, double eps, T* out) {
  const int axis = x.ndim - 1;
  i64 ofull[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ofull);
  i64 ks[kMaxDims], kx[kMaxDims], kg[kMaxDims], ko[kMaxDims];
  int nk = 0;
  for (int d = 0; d < axis; d++) {
    ks[nk] = x.shape[d];
    kx[nk] = x.strides[d];
    kg[nk] = BACK ? g->strides[d] : 0;
    ko[nk++] = ofull[d];
  }
  Iter<3> kept;
  const i64* kst[3] = {kx, kg, ko};
  kept.init(nk, ks, kst);
  const i64 K = kept.size, R = x.shape[axis];
  if (K == 0 || R == 0) return;
  const i64 xs = x.strides[axis], gs = BACK ? g->strides[axis] : 1;
  const i64 kxs = kept.st[0][kept.nd - 1], kgs = kept.st[1][kept.nd - 1], kos = kept.st[2][kept.nd - 1];
  const bool unit = xs == 1 && gs == 1;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const T* gp = BACK ? static_cast<const T*>(g->data) + g->offset : nullptr;
  par_for(K, imax<i64>(1, 16384 / imax<i64>(R, 1)), [&](i64 b, i64 e, int tid) {
    T* tmp = unit ? nullptr : static_cast<T*>(scratch(tid, 3, sizeof(T) * 2 * (size_t)R));
    if (!unit && !tmp) return;  // out of memory: the N-API layer reports it
    kept.walk(b, e, [&](const i64* off, i64 len) {
      for (i64 j = 0; j < len; j++) {
        const T* xr = xp + off[0] + j * kxs;
        const T* gr = BACK ? gp + off[1] + j * kgs : nullptr;
        T* orow = out + off[2] + j * kos;
        if (!unit) {
          for (i64 i = 0; i < R; i++) tmp[i] = xr[i * xs];
          xr = tmp;
          if (BACK) {
            for (i64 i = 0; i < R; i++) tmp[R + i] = gr[i * gs];
            gr = tmp + R;
          }
        }
        if (BACK) row_backward<T>(xr, gr, orow, R, eps);
        else row_forward<T>(xr, gr, orow, R, eps);
      }
    });
  });
}

}  // namespace

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
