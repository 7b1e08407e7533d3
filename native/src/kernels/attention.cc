// Fused scaled dot-product attention, flash-style (Backend.attention / attentionBackward; the js kernels in
// src/backend/js/attention.ts are the specification).
//
// Forward (FlashAttention): a task is one batch entry and one tile of BR query rows. It walks the keys in tiles
// of BC: the BR x BC score tile is formed in scratch (Q rows against a transposed K tile, so the inner loop is
// an axpy over the BC keys that vectorises without reassociation), each row's running max m, sum l and
// unnormalised output acc are rescaled by exp(m - m') when a tile raises the max, and the tile's exp(s - m')
// are accumulated into acc against the V tile. At the end out = acc / l and lse = m + log l. Memory per thread
// is O((BR + BC) (E + Ev) + BR BC): no [L, S] matrix exists, whatever the sequence length.
//
// Backward (FlashAttention-2): probabilities are recomputed tile by tile as p = exp(s - lse). Two passes keep
// every output owned by one task, so nothing is accumulated across threads and results do not depend on the
// thread count: pass 1, one task per (batch entry, key tile), accumulates dk and dv over all query rows; pass 2,
// one task per (batch entry, query tile), accumulates dq over all key tiles (recomputing the scores once more,
// about 1.4x the arithmetic of a single pass with atomics). D_i = dout_i . o_i - dlse_i is computed first.
//
// Operands are gathered tile by tile into contiguous scratch (any strides: the mask is typically a stride-0
// broadcast), at a cost of 1 / (2 BR) of the arithmetic. float32 runs in float32 (exp through vmath.h's exp_f32
// in the AVX builds) with float64 row sums; float64 in float64.
//
// Semantics of the special rows are the js kernel's: causal skips the keys j > i, no keys gives output 0 and
// lse -Infinity, a row of only -Infinity scores output NaN and lse -Infinity, NaN or +Infinity scores NaN.
#include "map.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

constexpr i64 BR = 32;  // query rows per tile
constexpr i64 BC = 64;  // keys per tile

CR_INLINE float exp_t(float v) { return CR_ISA_LEVEL >= 1 ? exp_f32(v) : std::exp(v); }
CR_INLINE double exp_t(double v) { return std::exp(v); }

// The checked sizes of one call: nb batch entries (the leading axes, the same in every view), L queries, S keys,
// E the q/k feature size, Ev the v feature size.
struct Dims {
  int nd;
  i64 nb, l, s, e, ev;
  const i64* lead;  // the batch shape (nd - 2 extents)
};

// Offset of batch entry b in view x (its leading nd - 2 axes, row-major over `lead`).
CR_INLINE i64 batch_offset(const View& x, const Dims& d, i64 b) {
  i64 off = x.offset;
  for (int a = d.nd - 3; a >= 0; a--) {
    const i64 n = d.lead[a];
    off += (b % n) * x.strides[a];
    b /= n;
  }
  return off;
}

// Check q [...B, L, E], k [...B, S, E], v [...B, S, Ev], mask [...B, L, S] and the output shape `shape` (nd
// extents: [...B, L, Ev + 1] for the forward, [...B, 1, L E + S E + S Ev] for the backward).
Err check_dims(const char* op, const View& q, const View& k, const View& v, const View* mask, int nd,
               const int64_t* shape, bool backward, Dims& d) {
  if (q.ndim < 2 || k.ndim != q.ndim || v.ndim != q.ndim || (mask && mask->ndim != q.ndim))
    return err_fmt("%s: q, k, v%s must have one rank >= 2, got %d, %d, %d", op, mask ? ", mask" : "", q.ndim, k.ndim,
                   v.ndim);
  if (nd != q.ndim) return err_fmt("%s: the output shape has %d dims, q has %d", op, nd, q.ndim);
  if (q.dtype != F32 && q.dtype != F64) return err_fmt("%s: float32 or float64 expected", op);
  if (k.dtype != q.dtype || v.dtype != q.dtype || (mask && mask->dtype != q.dtype))
    return err_fmt("%s: q, k, v%s must share a dtype", op, mask ? ", mask" : "");
  const int r = q.ndim;
  d.nd = r;
  d.lead = q.shape;
  d.nb = 1;
  for (int a = 0; a < r - 2; a++) {
    const i64 n = q.shape[a];
    if (k.shape[a] != n || v.shape[a] != n || (mask && mask->shape[a] != n) || shape[a] != n)
      return err_fmt("%s: batch dim %d differs between q, k, v%s and the output", op, a, mask ? ", mask" : "");
    d.nb *= n;  // a sub-product of q's checked extents
  }
  d.l = q.shape[r - 2];
  d.e = q.shape[r - 1];
  d.s = k.shape[r - 2];
  d.ev = v.shape[r - 1];
  if (k.shape[r - 1] != d.e) return err_fmt("%s: k's last dim is %lld, q's is %lld", op, (long long)k.shape[r - 1], (long long)d.e);
  if (v.shape[r - 2] != d.s) return err_fmt("%s: v has %lld rows, k has %lld", op, (long long)v.shape[r - 2], (long long)d.s);
  if (mask && (mask->shape[r - 2] != d.l || mask->shape[r - 1] != d.s))
    return err_fmt("%s: the mask must be [..., %lld, %lld]", op, (long long)d.l, (long long)d.s);
  if (!backward) {
    if (shape[r - 2] != d.l || shape[r - 1] != d.ev + 1)
      return err_fmt("%s: the output must be [..., %lld, %lld]", op, (long long)d.l, (long long)(d.ev + 1));
  } else {
    // each product is below 2^48 * 2^48 only as a product of checked extents; the views bound each to 2^48
    if (shape[r - 2] != 1 || shape[r - 1] != d.l * d.e + d.s * d.e + d.s * d.ev)
      return err_fmt("%s: the output must be [..., 1, L E + S E + S Ev]", op);
  }
  return nullptr;
}

// Rows [r0, r0 + n) of a [.., R, C] view (batch offset base) into a contiguous [n, C] tile (C = cols).
template <class T>
CR_INLINE void gather_rows(const View& x, i64 base, i64 r0, i64 n, i64 cols, T* __restrict dst) {
  const T* p = static_cast<const T*>(x.data) + base;
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  for (i64 i = 0; i < n; i++) {
    const T* row = p + (r0 + i) * sr;
    if (sc == 1) std::memcpy(dst + i * cols, row, sizeof(T) * (size_t)cols);
    else
      for (i64 c = 0; c < cols; c++) dst[i * cols + c] = row[c * sc];
  }
}

// Rows [r0, r0 + n) of a [.., R, C] view transposed into a contiguous [C, BC] tile (columns past n unused).
template <class T>
CR_INLINE void gather_cols(const View& x, i64 base, i64 r0, i64 n, i64 cols, T* __restrict dst) {
  const T* p = static_cast<const T*>(x.data) + base;
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  for (i64 j = 0; j < n; j++) {
    const T* row = p + (r0 + j) * sr;
    for (i64 c = 0; c < cols; c++) dst[c * BC + j] = row[c * sc];
  }
}

// The score tile S[i][j] = scale (q_i . k_j) + mask_ij for the tile's rows (qt [nr, E]) and keys (kt [E, BC],
// transposed), with -Infinity at the causal exclusions j > i; j in [0, BC) are computed, only j < nc used.
template <class T>
CR_INLINE void score_tile(const T* __restrict qt, const T* __restrict kt, i64 nr, i64 e, T scale, const View* mask,
                          i64 mbase, i64 i0, i64 j0, i64 nc, bool causal, T* __restrict st) {
  for (i64 i = 0; i < nr; i++) {
    T acc[BC];
    for (i64 j = 0; j < BC; j++) acc[j] = 0;
    const T* q = qt + i * e;
    for (i64 c = 0; c < e; c++) {
      const T a = q[c];
      const T* kr = kt + c * BC;
      for (i64 j = 0; j < BC; j++) acc[j] += a * kr[j];
    }
    T* srow = st + i * BC;
    for (i64 j = 0; j < BC; j++) srow[j] = scale * acc[j];
    if (mask) {
      const T* mp = static_cast<const T*>(mask->data) + mbase + (i0 + i) * mask->strides[mask->ndim - 2];
      const i64 ms = mask->strides[mask->ndim - 1];
      for (i64 j = 0; j < nc; j++) srow[j] += mp[(j0 + j) * ms];
    }
    if (causal)
      for (i64 j = imax<i64>(i0 + i - j0 + 1, 0); j < nc; j++) srow[j] = -(T)INFINITY;
  }
}

// Keys of the tile that row i of a causal tile may see: j < min(nc, i0 + i - j0 + 1).
CR_INLINE i64 row_end(bool causal, i64 i0, i64 i, i64 j0, i64 nc) {
  return causal ? imax<i64>(imin<i64>(nc, i0 + i - j0 + 1), 0) : nc;
}

template <class T>
void forward_typed(const Dims& d, const View& q, const View& k, const View& v, const View* mask, bool causal, T scale,
                   T* out) {
  const i64 tiles = (d.l + BR - 1) / BR;
  const i64 e = d.e, ev = d.ev, w = d.ev + 1;
  par_for(d.nb * tiles, 1, [&](i64 t0, i64 t1, int tid) {
    // one scratch block: qt [BR, E], kt [E, BC], vt [BC, Ev], st [BR, BC], acc [BR, Ev]
    const size_t n = (size_t)(BR * e + e * BC + BC * ev + BR * BC + BR * ev) + 16;
    T* qt = static_cast<T*>(scratch(tid, 0, sizeof(T) * n));
    double* ml = static_cast<double*>(scratch(tid, 1, sizeof(double) * 2 * BR + 64));
    if (!qt || !ml) return;  // out of memory: the N-API layer reports it
    T* kt = qt + BR * e;
    T* vt = kt + e * BC;
    T* st = vt + BC * ev;
    T* acc = st + BR * BC;
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / tiles, i0 = (task % tiles) * BR, nr = imin(BR, d.l - i0);
      const i64 qb = batch_offset(q, d, b), kb = batch_offset(k, d, b), vb = batch_offset(v, d, b);
      const i64 mb = mask ? batch_offset(*mask, d, b) : 0;
      gather_rows(q, qb, i0, nr, e, qt);
      T* m = reinterpret_cast<T*>(ml);  // running max per row (T), then l (double) after BR slots
      double* l = ml + BR;
      for (i64 i = 0; i < nr; i++) {
        m[i] = -(T)INFINITY;
        l[i] = 0;
      }
      for (i64 x = 0; x < nr * ev; x++) acc[x] = 0;
      const i64 send = causal ? imin(d.s, i0 + nr) : d.s;  // keys any row of the tile sees
      for (i64 j0 = 0; j0 < send; j0 += BC) {
        const i64 nc = imin(BC, send - j0);
        gather_cols(k, kb, j0, nc, e, kt);
        gather_rows(v, vb, j0, nc, ev, vt);
        score_tile(qt, kt, nr, e, scale, mask, mb, i0, j0, nc, causal, st);
        for (i64 i = 0; i < nr; i++) {
          T* srow = st + i * BC;
          const i64 je = row_end(causal, i0, i, j0, nc);
          T bm = -(T)INFINITY;
          for (i64 j = 0; j < je; j++) bm = (srow[j] > bm || srow[j] != srow[j]) ? srow[j] : bm;  // NaN sticks
          const T mo = m[i];
          const T mn = (bm > mo || bm != bm || mo != mo) ? (mo != mo ? mo : bm) : mo;
          if (mn == -(T)INFINITY) continue;  // every score so far masked: nothing to add yet
          const T alpha = exp_t((T)(mo - mn));
          double sum = 0;
          for (i64 j = 0; j < je; j++) {
            const T p = exp_t((T)(srow[j] - mn));
            srow[j] = p;
            sum += (double)p;
          }
          l[i] = l[i] * (double)alpha + sum;
          T* a = acc + i * ev;
          for (i64 c = 0; c < ev; c++) a[c] *= alpha;
          for (i64 j = 0; j < je; j++) {
            const T p = srow[j];
            const T* vr = vt + j * ev;
            for (i64 c = 0; c < ev; c++) a[c] += p * vr[c];
          }
          m[i] = mn;
        }
      }
      for (i64 i = 0; i < nr; i++) {
        T* o = out + (b * d.l + i0 + i) * w;
        const bool none = causal ? imin(d.s, i0 + i + 1) == 0 : d.s == 0;
        if (none) {
          for (i64 c = 0; c < ev; c++) o[c] = 0;
          o[ev] = -(T)INFINITY;
        } else if (l[i] == 0) {
          for (i64 c = 0; c < ev; c++) o[c] = (T)NAN;
          o[ev] = -(T)INFINITY;
        } else {
          const double inv = 1.0 / l[i];
          const T* a = acc + i * ev;
          for (i64 c = 0; c < ev; c++) o[c] = (T)((double)a[c] * inv);
          o[ev] = (T)((double)m[i] + std::log(l[i]));
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Backward.

// The per-tile state both passes share: P and dS of a BR x BC tile from gathered q rows, dout rows, lse and D.
template <class T>
struct BackTile {
  T *qt, *gt, *kt, *vt, *kr, *st, *dp;  // q [BR, E], dout [BR, Ev], k^T [E, BC], v^T [Ev, BC], k [BC, E], S/P/dS [BR, BC], dP
  T *lse, *dd;                          // [BR] each
};

// P (into st) and dS = scale P (dP - D) (into dp) for rows [0, nr) and keys [0, nc) (beyond a row's causal end:
// not used).
template <class T>
CR_INLINE void probs_and_ds(BackTile<T>& t, i64 nr, i64 e, i64 ev, T scale, const View* mask, i64 mb, i64 i0, i64 j0,
                            i64 nc, bool causal) {
  score_tile(t.qt, t.kt, nr, e, scale, mask, mb, i0, j0, nc, causal, t.st);
  for (i64 i = 0; i < nr; i++) {
    T* srow = t.st + i * BC;
    const T lse = t.lse[i];
    for (i64 j = 0; j < BC; j++) srow[j] = exp_t((T)(srow[j] - lse));
    // dP row: dout_i . v_j over Ev, as an axpy over the keys
    T dpr[BC];
    for (i64 j = 0; j < BC; j++) dpr[j] = 0;
    const T* g = t.gt + i * ev;
    for (i64 c = 0; c < ev; c++) {
      const T a = g[c];
      const T* vr = t.vt + c * BC;
      for (i64 j = 0; j < BC; j++) dpr[j] += a * vr[j];
    }
    const T dd = t.dd[i];
    T* dsr = t.dp + i * BC;
    for (i64 j = 0; j < BC; j++) dsr[j] = scale * srow[j] * (dpr[j] - dd);
  }
}

template <class T>
CR_INLINE BackTile<T> back_scratch(int tid, i64 e, i64 ev, bool& ok) {
  const size_t n = (size_t)(BR * e + BR * ev + e * BC + ev * BC + BC * e + 2 * BR * BC + 2 * BR) + 16;
  T* p = static_cast<T*>(scratch(tid, 0, sizeof(T) * n));
  BackTile<T> t{};
  ok = p != nullptr;
  if (!ok) return t;
  t.qt = p;
  t.gt = t.qt + BR * e;
  t.kt = t.gt + BR * ev;
  t.vt = t.kt + e * BC;
  t.kr = t.vt + ev * BC;
  t.st = t.kr + BC * e;
  t.dp = t.st + BR * BC;
  t.lse = t.dp + BR * BC;
  t.dd = t.lse + BR;
  return t;
}

template <class T>
void backward_typed(const Dims& d, const View& q, const View& k, const View& v, const View* mask, const View& o,
                    const View& g, bool causal, T scale, T* out) {
  const i64 e = d.e, ev = d.ev, L = d.l, S = d.s;
  const i64 per = L * e + S * e + S * ev;
  const i64 osr = o.strides[o.ndim - 2], osc = o.strides[o.ndim - 1];
  const i64 gsr = g.strides[g.ndim - 2], gsc = g.strides[g.ndim - 1];
  const T* op = static_cast<const T*>(o.data);
  const T* gp = static_cast<const T*>(g.data);
  // D_i = dout_i . o_i - dlse_i and lse_i for every row, in float64 sums (owned by the caller's slot 7)
  T* dl = static_cast<T*>(scratch(pool_tid(), 7, sizeof(T) * (size_t)(2 * d.nb * L) + 64));
  if (!dl) return;
  par_for(d.nb * L, 256, [&](i64 r0, i64 r1, int) {
    for (i64 r = r0; r < r1; r++) {
      const i64 b = r / L, i = r % L;
      const T* orow = op + batch_offset(o, d, b) + i * osr;
      const T* grow = gp + batch_offset(g, d, b) + i * gsr;
      double s = 0;
      for (i64 c = 0; c < ev; c++) s += (double)grow[c * gsc] * (double)orow[c * osc];
      dl[2 * r] = (T)(s - (double)grow[ev * gsc]);
      dl[2 * r + 1] = orow[ev * osc];
    }
  });
  const i64 qtiles = (L + BR - 1) / BR, ktiles = (S + BC - 1) / BC;
  // rows [i0, i0 + nr) of batch b into the tile's q, dout, lse, D
  auto load_rows = [&](BackTile<T>& t, i64 b, i64 i0, i64 nr) {
    gather_rows(q, batch_offset(q, d, b), i0, nr, e, t.qt);
    gather_rows(g, batch_offset(g, d, b), i0, nr, ev, t.gt);  // the first Ev columns of dout
    for (i64 i = 0; i < nr; i++) {
      t.dd[i] = dl[2 * (b * L + i0 + i)];
      t.lse[i] = dl[2 * (b * L + i0 + i) + 1];
    }
  };
  auto load_keys = [&](BackTile<T>& t, i64 b, i64 j0, i64 nc) {
    const i64 kb = batch_offset(k, d, b), vb = batch_offset(v, d, b);
    gather_cols(k, kb, j0, nc, e, t.kt);
    gather_cols(v, vb, j0, nc, ev, t.vt);
    gather_rows(k, kb, j0, nc, e, t.kr);
  };
  // pass 1: dk, dv per key tile, over every query row that sees it
  par_for(d.nb * ktiles, 1, [&](i64 t0, i64 t1, int tid) {
    bool ok;
    BackTile<T> t = back_scratch<T>(tid, e, ev, ok);
    T* acc = static_cast<T*>(scratch(tid, 1, sizeof(T) * (size_t)(BC * (e + ev)) + 64));
    if (!ok || !acc) return;
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / ktiles, j0 = (task % ktiles) * BC, nc = imin(BC, S - j0);
      const i64 mb = mask ? batch_offset(*mask, d, b) : 0;
      T* dk = acc;
      T* dv = acc + BC * e;
      for (i64 x = 0; x < BC * (e + ev); x++) acc[x] = 0;
      load_keys(t, b, j0, nc);
      for (i64 i0 = causal ? (j0 / BR) * BR : 0; i0 < L; i0 += BR) {
        const i64 nr = imin(BR, L - i0);
        load_rows(t, b, i0, nr);
        probs_and_ds(t, nr, e, ev, scale, mask, mb, i0, j0, nc, causal);
        for (i64 i = 0; i < nr; i++) {
          const i64 je = row_end(causal, i0, i, j0, nc);
          const T* pr = t.st + i * BC;
          const T* dsr = t.dp + i * BC;
          const T* gr = t.gt + i * ev;
          const T* qr = t.qt + i * e;
          for (i64 j = 0; j < je; j++) {
            const T p = pr[j], ds = dsr[j];
            T* dvr = dv + j * ev;
            for (i64 c = 0; c < ev; c++) dvr[c] += p * gr[c];
            T* dkr = dk + j * e;
            for (i64 c = 0; c < e; c++) dkr[c] += ds * qr[c];
          }
        }
      }
      T* ob = out + b * per;
      std::memcpy(ob + L * e + j0 * e, dk, sizeof(T) * (size_t)(nc * e));
      std::memcpy(ob + L * e + S * e + j0 * ev, dv, sizeof(T) * (size_t)(nc * ev));
    }
  });
  // pass 2: dq per query tile, over every key it sees
  par_for(d.nb * qtiles, 1, [&](i64 t0, i64 t1, int tid) {
    bool ok;
    BackTile<T> t = back_scratch<T>(tid, e, ev, ok);
    if (!ok) return;
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / qtiles, i0 = (task % qtiles) * BR, nr = imin(BR, L - i0);
      const i64 mb = mask ? batch_offset(*mask, d, b) : 0;
      T* dq = out + b * per + i0 * e;  // written in place: this task owns these rows
      for (i64 x = 0; x < nr * e; x++) dq[x] = 0;
      load_rows(t, b, i0, nr);
      const i64 send = causal ? imin(S, i0 + nr) : S;
      for (i64 j0 = 0; j0 < send; j0 += BC) {
        const i64 nc = imin(BC, send - j0);
        load_keys(t, b, j0, nc);
        probs_and_ds(t, nr, e, ev, scale, mask, mb, i0, j0, nc, causal);
        for (i64 i = 0; i < nr; i++) {
          const i64 je = row_end(causal, i0, i, j0, nc);
          const T* dsr = t.dp + i * BC;
          T* dqr = dq + i * e;
          for (i64 j = 0; j < je; j++) {
            const T ds = dsr[j];
            const T* kr = t.kr + j * e;
            for (i64 c = 0; c < e; c++) dqr[c] += ds * kr[c];
          }
        }
      }
    }
  });
}

}  // namespace

Err attention(int causal, const AttnParams& ap, int nd, const int64_t* shape, const View& q, const View& k,
              const View& v, const View* mask, const Out& out) {
  Dims d;
  if (Err err = check_dims("attention", q, k, v, mask, nd, shape, false, d)) return err;
  if (out.dtype != q.dtype) return "attention: out must have the dtype of q";
  if (d.nb == 0 || d.l == 0) return nullptr;
  if (q.dtype == F32) forward_typed<float>(d, q, k, v, mask, causal != 0, (float)ap.scale, static_cast<float*>(out.data));
  else forward_typed<double>(d, q, k, v, mask, causal != 0, ap.scale, static_cast<double*>(out.data));
  return nullptr;
}

Err attention_backward(int causal, const AttnParams& ap, int nd, const int64_t* shape, const Out& out,
                       const Views& in) {
  if (in.n != 5 && in.n != 6) return err_fmt("attentionBackward: expected 5 or 6 views (q, k, v, [mask,] o, dout), got %d", in.n);
  const View& q = in.v[0];
  const View& k = in.v[1];
  const View& v = in.v[2];
  const View* mask = in.n == 6 ? &in.v[3] : nullptr;
  const View& o = in.v[in.n - 2];
  const View& g = in.v[in.n - 1];
  Dims d;
  if (Err err = check_dims("attentionBackward", q, k, v, mask, nd, shape, true, d)) return err;
  if (out.dtype != q.dtype || o.dtype != q.dtype || g.dtype != q.dtype)
    return "attentionBackward: o, dout and out must have the dtype of q";
  const View* saved[2] = {&o, &g};
  for (const View* x : saved) {
    bool same = x->ndim == q.ndim && x->shape[q.ndim - 2] == d.l && x->shape[q.ndim - 1] == d.ev + 1;
    for (int a = 0; same && a < q.ndim - 2; a++) same = x->shape[a] == q.shape[a];
    if (!same) return "attentionBackward: o and dout must be [...B, L, Ev + 1]";
  }
  if (d.nb == 0) return nullptr;
  const i64 per = d.l * d.e + d.s * d.e + d.s * d.ev;
  if (per == 0) return nullptr;
  if (d.l == 0) {  // no query rows: dk and dv are zero
    std::memset(out.data, 0, (size_t)(d.nb * per) * (q.dtype == F32 ? 4 : 8));
    return nullptr;
  }
  if (q.dtype == F32)
    backward_typed<float>(d, q, k, v, mask, o, g, causal != 0, (float)ap.scale, static_cast<float*>(out.data));
  else backward_typed<double>(d, q, k, v, mask, o, g, causal != 0, ap.scale, static_cast<double*>(out.data));
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
