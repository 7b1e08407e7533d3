// Fused recurrent cells (Backend.lstmCell, lstmCellBackward, gruCell, gruCellBackward; the js kernels in
// src/backend/js/rnn-cell.ts are the specification): the elementwise part of one LSTM or GRU step, after the
// two matmuls, in one pass over the hidden units, and its VJP in one more. Each row (the leading axes, any
// strides) is split over the thread pool; the hidden axis may have any stride.
//
// float32 runs through vmath.h's tanh_f32 / sigmoid_f32 in the AVX builds (libm's in the baseline build) with
// float32 products; float64 in float64 with libm.
#include "map.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

CR_INLINE float sig(float x) {
  if (CR_ISA_LEVEL >= 1) return sigmoid_f32(x);
  const float e = std::exp(-std::fabs(x));
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : (x != x ? x : e * r);
}
CR_INLINE double sig(double x) {
  const double e = std::exp(-std::fabs(x));
  const double r = 1.0 / (1.0 + e);
  return x >= 0.0 ? r : (x != x ? x : e * r);
}
CR_INLINE float th(float x) { return CR_ISA_LEVEL >= 1 ? tanh_f32(x) : std::tanh(x); }
CR_INLINE double th(double x) { return std::tanh(x); }

// A row-wise accessor of a [...B, W] view: element (r, j) of the flattened rows.
template <class T>
struct Rows {
  const T* p;
  const View* v;
  i64 sj;
  CR_INLINE const T* row(i64 r) const {
    i64 off = v->offset;
    for (int a = v->ndim - 2; a >= 0; a--) {
      const i64 n = v->shape[a];
      off += (r % n) * v->strides[a];
      r /= n;
    }
    return p + off;
  }
};

template <class T>
CR_INLINE Rows<T> rows_of(const View& v) {
  return Rows<T>{static_cast<const T*>(v.data), &v, v.strides[v.ndim - 1]};
}

// kind: 0 lstmCell (gates, c), 1 lstmCellBackward (gates, c, ct), 2 gruCell (xp, hp, h), 3 gruCellBackward
// (xp, hp, h, ct); the hidden size H and the width of each operand and of out.
constexpr int kViews[4] = {2, 3, 3, 4};
constexpr int kWidth[4][4] = {{4, 1, 0, 0}, {4, 1, 2, 0}, {3, 3, 1, 0}, {3, 3, 1, 1}};
constexpr int kOut[4] = {2, 5, 1, 7};

// One row with unit strides on the hidden axis: straight loops over restrict pointers that the compiler
// vectorises (vmath.h's tanh/sigmoid are branch-free), with no per-element kind tests.
template <class T, int KIND>
void row_unit(const T* __restrict x, const T* __restrict y, const T* __restrict z, const T* __restrict w,
              T* __restrict o, i64 H) {
  if (KIND <= 1) {  // x = gates (i, f, g, o), y = c, z = ct (h', c')
    const T* __restrict xi = x;
    const T* __restrict xf = x + H;
    const T* __restrict xg = x + 2 * H;
    const T* __restrict xo = x + 3 * H;
    for (i64 j = 0; j < H; j++) {
      const T gi = sig(xi[j]), gf = sig(xf[j]), gg = th(xg[j]), go = sig(xo[j]);
      const T cp = gf * y[j] + gi * gg;
      const T tc = th(cp);
      if (KIND == 0) {
        o[j] = go * tc;
        o[H + j] = cp;
      } else {
        const T dh = z[j], dc2 = z[H + j];
        const T dcp = dc2 + dh * go * ((T)1 - tc * tc);
        o[j] = dcp * gg * (gi * ((T)1 - gi));
        o[H + j] = dcp * y[j] * (gf * ((T)1 - gf));
        o[2 * H + j] = dcp * gi * ((T)1 - gg * gg);
        o[3 * H + j] = dh * tc * (go * ((T)1 - go));
        o[4 * H + j] = dcp * gf;
      }
    }
  } else {  // x = xp (r, z, n), y = hp, z = h, w = ct
    for (i64 j = 0; j < H; j++) {
      const T hn = y[2 * H + j];
      const T gr = sig(x[j] + y[j]), gz = sig(x[H + j] + y[H + j]);
      const T n = th(x[2 * H + j] + gr * hn);
      const T h = z[j];
      if (KIND == 2) {
        o[j] = n + gz * (h - n);
      } else {
        const T ct = w[j];
        const T dnp = ct * ((T)1 - gz) * ((T)1 - n * n);
        const T dzp = ct * (h - n) * (gz * ((T)1 - gz));
        const T drp = dnp * hn * (gr * ((T)1 - gr));
        o[j] = drp;
        o[H + j] = dzp;
        o[2 * H + j] = dnp;
        o[3 * H + j] = drp;
        o[4 * H + j] = dzp;
        o[5 * H + j] = dnp * gr;
        o[6 * H + j] = ct * gz;
      }
    }
  }
}

template <class T>
void run(int kind, i64 nrows, i64 H, const View* in, T* out) {
  const Rows<T> a = rows_of<T>(in[0]), b = rows_of<T>(in[1]);
  const Rows<T> c = kind >= 1 ? rows_of<T>(in[2]) : a;
  const Rows<T> d = kind == 3 ? rows_of<T>(in[3]) : a;
  const i64 ow = kOut[kind] * H;
  par_for(nrows, imax<i64>(1, 4096 / imax<i64>(H, 1)), [&](i64 r0, i64 r1, int) {
    for (i64 r = r0; r < r1; r++) {
      const T* x = a.row(r);
      const T* y = b.row(r);
      const T* z = c.row(r);
      const T* w = d.row(r);
      const i64 sx = a.sj, sy = b.sj, sz = c.sj, sw = d.sj;
      T* o = out + r * ow;
      if (sx == 1 && sy == 1 && sz == 1 && sw == 1) {
        switch (kind) {
          case 0: row_unit<T, 0>(x, y, z, w, o, H); break;
          case 1: row_unit<T, 1>(x, y, z, w, o, H); break;
          case 2: row_unit<T, 2>(x, y, z, w, o, H); break;
          default: row_unit<T, 3>(x, y, z, w, o, H); break;
        }
        continue;
      }
      for (i64 j = 0; j < H; j++) {
        if (kind <= 1) {  // x = gates (i, f, g, o), y = c, z = ct (h', c')
          const T gi = sig(x[j * sx]), gf = sig(x[(H + j) * sx]), gg = th(x[(2 * H + j) * sx]),
                  go = sig(x[(3 * H + j) * sx]);
          const T cp = gf * y[j * sy] + gi * gg;
          const T tc = th(cp);
          if (kind == 0) {
            o[j] = go * tc;
            o[H + j] = cp;
            continue;
          }
          const T dh = z[j * sz], dc2 = z[(H + j) * sz];
          const T dcp = dc2 + dh * go * ((T)1 - tc * tc);
          o[j] = dcp * gg * (gi * ((T)1 - gi));
          o[H + j] = dcp * y[j * sy] * (gf * ((T)1 - gf));
          o[2 * H + j] = dcp * gi * ((T)1 - gg * gg);
          o[3 * H + j] = dh * tc * (go * ((T)1 - go));
          o[4 * H + j] = dcp * gf;
        } else {  // x = xp (r, z, n), y = hp, z = h, w = ct
          const T hn = y[(2 * H + j) * sy];
          const T gr = sig(x[j * sx] + y[j * sy]), gz = sig(x[(H + j) * sx] + y[(H + j) * sy]);
          const T n = th(x[(2 * H + j) * sx] + gr * hn);
          const T h = z[j * sz];
          if (kind == 2) {
            o[j] = n + gz * (h - n);
            continue;
          }
          const T ct = w[j * sw];
          const T dnp = ct * ((T)1 - gz) * ((T)1 - n * n);
          const T dzp = ct * (h - n) * (gz * ((T)1 - gz));
          const T drp = dnp * hn * (gr * ((T)1 - gr));
          o[j] = drp;
          o[H + j] = dzp;
          o[2 * H + j] = dnp;
          o[3 * H + j] = drp;
          o[4 * H + j] = dzp;
          o[5 * H + j] = dnp * gr;
          o[6 * H + j] = ct * gz;
        }
      }
    }
  });
}

}  // namespace

Err rnn_cell(int kind, int nd, const int64_t* shape, const Out& out, const Views& in) {
  if (kind < 0 || kind > 3) return "rnnCell: invalid kind";
  if (in.n != kViews[kind]) return err_fmt("rnnCell: kind %d takes %d views, got %d", kind, kViews[kind], in.n);
  const View& x = in.v[0];
  if (x.ndim < 1 || nd != x.ndim) return "rnnCell: the output must have the rank of the operands (>= 1)";
  if (x.dtype != F32 && x.dtype != F64) return "rnnCell: float32 or float64 expected";
  const i64 w0 = x.shape[x.ndim - 1];
  if (w0 % kWidth[kind][0] != 0) return "rnnCell: the first operand's last dim is not a multiple of the gates";
  const i64 H = w0 / kWidth[kind][0];
  i64 nrows = 1;
  for (int a = 0; a < x.ndim - 1; a++) {
    if (shape[a] != x.shape[a]) return "rnnCell: the output's leading dims differ from the operands'";
    nrows *= x.shape[a];
  }
  if (shape[x.ndim - 1] != kOut[kind] * H) return err_fmt("rnnCell: the output's last dim must be %d H", kOut[kind]);
  for (int k = 0; k < in.n; k++) {
    const View& v = in.v[k];
    if (v.dtype != x.dtype) return "rnnCell: the operands must share a dtype";
    if (v.ndim != x.ndim || v.shape[v.ndim - 1] != kWidth[kind][k] * H)
      return err_fmt("rnnCell: operand %d must be [..., %d H] with H = %lld", k, kWidth[kind][k], (long long)H);
    for (int a = 0; a < x.ndim - 1; a++)
      if (v.shape[a] != x.shape[a]) return "rnnCell: the operands' leading dims differ";
  }
  if (out.dtype != x.dtype) return "rnnCell: out must have the operands' dtype";
  if (nrows == 0 || H == 0) return nullptr;
  if (x.dtype == F32) run<float>(kind, nrows, H, in.v, static_cast<float*>(out.data));
  else run<double>(kind, nrows, H, in.v, static_cast<double*>(out.data));
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
