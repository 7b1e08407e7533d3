// Fused scaled dot-product attention, FlashAttention-2 style (Backend.attention / attentionBackward; the js
// kernels in src/backend/js/attention.ts are the specification).
//
// The tiled kernels (fast_forward, fast_backward, below the exact loops): per batch entry, blocks of FBR = 64
// queries (32 when L <= 32) against blocks of FBC = 64 keys. Every product of a block pair is a small GEMM on a
// register-blocked SIMD micro-kernel (fl_kernel: 8 x 32 float32 / 8 x 16 float64 accumulators with AVX-512,
// 4 x 2 vectors with AVX2 and SSE2). The score tile is kept transposed, St [keys][queries], so that SIMD lanes
// run over queries: the online softmax's per-query max, sum, lse and D are vectors, and P^T, dS^T come out in
// the layouts the next products read without repacking.
//   forward:  St = K Qt; per query m' = max(m, column max), alpha = exp(m - m'), P^T = exp(St - m'),
//             l = alpha l + column sums, acc = alpha acc + P V; at the end out = acc / l, lse = m + log l.
//   backward: P^T = exp(K Qt - lse), dS^T = scale P^T (V dOt - D) with D_i = dout_i . o_i - dlse_i, then
//             dV += P^T dO, dK += dS^T Q, dQ += dS K.
// The backward runs one task per batch entry (key blocks outer, query blocks inner; dk, dv of a key block and
// dq of the entry accumulate in per-thread scratch), or, with fewer than 2 entries per thread, two passes
// (dk, dv per key-block chunk, then dq per query-block chunk). Either way each output has one owner and its
// products are accumulated in the same order, so results do not depend on the thread count. Causal attention
// skips the blocks above the diagonal and writes exact zeros (P, dS) for the keys j > i inside diagonal blocks.
// The operands of a batch entry are repacked once per task (K and V as MR-row panels, K, q and dout as padded
// rows, q and dout blocks transposed): O((L + S)(E + Ev)) scratch per thread, never an [L, S] matrix.
// float32 runs in float32 (exp through vmath.h's exp_f32_flush in the AVX builds: probabilities below e^-87 are
// 0, so that masked and far-underflowing scores take no subnormal assists) with float64 row sums l; float64 in
// float64.
//
// The exact loops (exact_forward, exact_backward; the previous kernels, 32 x 64 tiles of scalar-vectorised
// loops) run only for causal attention over non-finite q, k, v or dout: the spec skips the keys j > i, whereas
// the tiled products multiply them by an exact 0, which differs only there (0 x Inf = NaN).
//
// Semantics of the special rows are the js kernel's: causal skips the keys j > i, no keys gives output 0 and
// lse -Infinity, a row of only -Infinity scores output NaN and lse -Infinity, NaN or +Infinity scores NaN.
#include <cstdlib>
#include <memory>
#include <new>

#include "gemm.h"
#include "map.h"
#include "vmath.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

constexpr i64 BR = 32;  // query rows per tile of the exact loops
constexpr i64 BC = 64;  // keys per tile of the exact loops

// (probabilities below e^-87 flushed to 0 in the AVX builds: see exp_f32_flush)
CR_INLINE float exp_t(float v) { return CR_ISA_LEVEL >= 1 ? exp_f32_flush(v) : std::exp(v); }
CR_INLINE double exp_t(double v) { return std::exp(v); }

CR_INLINE float bf16_f32(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

CR_INLINE float f16_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t ex = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t u;
  if (ex == 0) {
    const float v = (float)m * 5.9604644775390625e-8f;  // m 2^-24, exact
    return sign ? -v : v;
  }
  if (ex == 31) u = sign | 0x7f800000u | (m << 13);
  else u = sign | ((ex + 112) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Element idx of a view as T: idx in T elements (H 0), or the byte offset of a 16-bit value (H 1 float16, 2
// bfloat16; both of its bytes inside the checked view).
template <class T, int H>
CR_INLINE T ld(const void* data, i64 idx) {
  if constexpr (H == 0) {
    return static_cast<const T*>(data)[idx];
  } else {
    const uint8_t* p = static_cast<const uint8_t*>(data) + idx;
    const uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    return (T)(H == 2 ? bf16_f32(h) : f16_f32(h));
  }
}


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
               const int64_t* shape, bool backward, Dims& d, bool half = false) {
  if (q.ndim < 2 || k.ndim != q.ndim || v.ndim != q.ndim || (mask && mask->ndim != q.ndim))
    return err_fmt("%s: q, k, v%s must have one rank >= 2, got %d, %d, %d", op, mask ? ", mask" : "", q.ndim, k.ndim,
                   v.ndim);
  if (nd != q.ndim) return err_fmt("%s: the output shape has %d dims, q has %d", op, nd, q.ndim);
  if (half) {  // 16-bit q, k, v (byte views without their trailing [2]), a widened float32 mask
    if (q.dtype != BOOL || k.dtype != BOOL || v.dtype != BOOL || (mask && mask->dtype != F32))
      return err_fmt("%s: expected 16-bit q, k, v", op);
  } else {
    if (q.dtype != F32 && q.dtype != F64) return err_fmt("%s: float32 or float64 expected", op);
    if (k.dtype != q.dtype || v.dtype != q.dtype || (mask && mask->dtype != q.dtype))
      return err_fmt("%s: q, k, v%s must share a dtype", op, mask ? ", mask" : "");
  }
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
void exact_forward(const Dims& d, const View& q, const View& k, const View& v, const View* mask, bool causal, T scale,
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

// D_i = dout_i . o_i - dlse_i and lse_i for every row b * L + i (at 2 r and 2 r + 1), in float64 sums, in the
// calling thread's scratch slot 7 (worker tasks use slots 0..2). nullptr if memory is exhausted.
template <class T>
T* d_and_lse(const Dims& d, const View& o, const View& g) {
  const i64 ev = d.ev, L = d.l;
  const i64 osr = o.strides[o.ndim - 2], osc = o.strides[o.ndim - 1];
  const i64 gsr = g.strides[g.ndim - 2], gsc = g.strides[g.ndim - 1];
  const T* op = static_cast<const T*>(o.data);
  const T* gp = static_cast<const T*>(g.data);
  T* dl = static_cast<T*>(scratch(pool_tid(), 7, sizeof(T) * (size_t)(2 * d.nb * L) + 64));
  if (!dl) return nullptr;
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
  return dl;
}

template <class T>
void exact_backward(const Dims& d, const View& q, const View& k, const View& v, const View* mask, const View& o,
                    const View& g, bool causal, T scale, T* out) {
  const i64 e = d.e, ev = d.ev, L = d.l, S = d.s;
  const i64 per = L * e + S * e + S * ev;
  const T* dl = d_and_lse<T>(d, o, g);
  if (!dl) return;
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

// ---------------------------------------------------------------------------------------------------------
// The fast kernels (FlashAttention-2 with register-blocked SIMD tiles).
//
// Blocks of FBR = 64 queries by FBC = 64 keys. Score tiles are kept transposed, St [keys][queries], so that the
// SIMD lanes run over the queries: the online softmax's per-query state (running max m, sum l, lse, D) is one
// vector per lane group, the max over keys is an elementwise max of rows, and P^T and dS^T come out in the
// layouts the next products read directly (no per-tile packing). Every product is one small GEMM,
//   forward:  St = K Qt (depth E),  O += P V (depth keys)
//   backward: St = K Qt, dPt = V dOt (depth Ev), dV += Pt dO, dK += dSt Q (depth queries), dQ += dS K (depth keys)
// computed by fl_kernel, an MR x NR register tile (AVX-512: 8 rows x 2 vectors, 16 accumulators) whose A operand
// is read through compile-time strides (a packed panel, a row or a column of a score tile) and whose B operand
// is a row-major, NR-padded matrix. The operands of one batch entry are repacked once per task into these
// layouts (K and V as MR-row panels, K, q and dout as padded rows, q and dout blocks transposed): O(L E + S E)
// per thread, never an [L, S] matrix.
template <class T>
struct Fl {
  using S = Simd<T>;
  using V = typename S::V;
  static constexpr int W = S::W;
  static constexpr int MR = CR_ISA_LEVEL == 2 ? 8 : 4;  // rows of the register tile
  static constexpr int NV = 2;                           // vectors per row
  static constexpr int NR = NV * W;                      // columns of the register tile
};
// Queries per block, FBR: 64, or 32 when L <= 32 (a template parameter; both are multiples of every NR and MR).
constexpr i64 FBC = 64;  // keys per block (a multiple of every MR)

CR_INLINE i64 rup(i64 x, i64 m) { return (x + m - 1) / m * m; }

// C[MR][NR] (+)= sum_{k < kc} A(r, k) B[k][0..NR), A(r, k) = a[r ARS + k AKS], B row k at b + k ldb.
template <class T, int ARS, int AKS>
__attribute__((noinline)) void fl_kernel(i64 kc, const T* __restrict a, const T* __restrict b, i64 ldb,
                                         T* __restrict c, i64 ldc, bool accumulate) {
  using F = Fl<T>;
  using S = typename F::S;
  using V = typename F::V;
  constexpr int MR = F::MR, NV = F::NV, W = F::W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int x = 0; x < NV; x++) acc[r][x] = S::zero();
  for (i64 k = 0; k < kc; k++) {
    V bv[NV];
#pragma GCC unroll 4
    for (int x = 0; x < NV; x++) bv[x] = S::loadu(b + x * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const V av = S::set1(a[r * ARS]);
#pragma GCC unroll 4
      for (int x = 0; x < NV; x++) acc[r][x] = S::fma(av, bv[x], acc[r][x]);
    }
    a += AKS;
    b += ldb;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) {
    T* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int x = 0; x < NV; x++) S::storeu(cr + x * W, accumulate ? S::add(S::loadu(cr + x * W), acc[r][x]) : acc[r][x]);
  }
}

// C (mp row panels of MR, np column panels of NR; leading dimension ldc) (+)= A B, row panel p of A at a + p aps.
template <class T, int ARS, int AKS>
CR_INLINE void fl_mm(i64 mp, i64 np, i64 kc, const T* a, i64 aps, const T* b, i64 ldb, T* c, i64 ldc,
                     bool accumulate) {
  constexpr int MR = Fl<T>::MR, NR = Fl<T>::NR;
  for (i64 x = 0; x < np; x++)
    for (i64 p = 0; p < mp; p++)
      fl_kernel<T, ARS, AKS>(kc, a + p * aps, b + x * NR, ldb, c + p * MR * ldc + x * NR, ldc, accumulate);
}

// Rows [r0, r1) of a [.., R, C] view (batch offset base) as MR-row panels: dst[((r - r0) / MR * cols + c) MR +
// (r - r0) % MR] = x[r][c] for r < n (the view's rows), zero after; r0 a multiple of MR, r1 of MR too.
// (H: the 16-bit format of x's elements, see ld; every packer widens them exactly as it packs.)
template <class T, int H = 0>
void fl_pack_panels(const View& x, i64 base, i64 r0, i64 r1, i64 n, i64 cols, T* __restrict dst) {
  constexpr int MR = Fl<T>::MR;
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  for (i64 r = r0; r < r1; r++) {
    T* d = dst + ((r - r0) / MR) * cols * MR + (r - r0) % MR;
    if (r < n) {
      const i64 row = base + r * sr;
      for (i64 c = 0; c < cols; c++) d[c * MR] = ld<T, H>(x.data, row + c * sc);
    } else {
      for (i64 c = 0; c < cols; c++) d[c * MR] = 0;
    }
  }
}

// Rows [r0, r1) as padded rows: dst[(r - r0) ld + c] = x[r][c] for r < n and c < cols, zero elsewhere (c < ld).
template <class T, int H = 0>
void fl_pack_rows(const View& x, i64 base, i64 r0, i64 r1, i64 n, i64 cols, i64 ldd, T* __restrict dst) {
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  for (i64 r = r0; r < r1; r++) {
    T* d = dst + (r - r0) * ldd;
    i64 c = 0;
    if (r < n) {
      const i64 row = base + r * sr;
      if (H == 0 && sc == 1) {
        std::memcpy(d, static_cast<const T*>(x.data) + row, sizeof(T) * (size_t)cols);
        c = cols;
      } else {
        for (; c < cols; c++) d[c] = ld<T, H>(x.data, row + c * sc);
      }
    }
    for (; c < ldd; c++) d[c] = 0;
  }
}

// The query block [i0, i0 + FBR) transposed: dst[c FBR + i] = x[i0 + i][c] (zero for rows past n).
template <class T, i64 FBR, int H = 0>
void fl_pack_lanes(const View& x, i64 base, i64 i0, i64 n, i64 cols, T* __restrict dst) {
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  const i64 nr = imin(FBR, n - i0);
  for (i64 i = 0; i < nr; i++) {
    const i64 row = base + (i0 + i) * sr;
    for (i64 c = 0; c < cols; c++) dst[c * FBR + i] = ld<T, H>(x.data, row + c * sc);
  }
  for (i64 c = 0; c < cols; c++)
    for (i64 i = nr; i < FBR; i++) dst[c * FBR + i] = 0;
}

// Whether every element of x's first `cols` columns (all batch entries and rows) is finite. Rows at unit stride
// (float32 / float64) test the exponent bits with integer operations, which vectorise: the causal kernels scan
// q, k (and dout) with it before every call, and the element-by-element loop took ~0.8 ns per element, more
// than a causal block's masking saved (B64 H4 L64 D32 on an Intel Xeon: causal backward 5.3 ms against 3.9
// unmasked).
template <class T, int H = 0>
bool fl_finite(const View& x, const Dims& d, i64 rows, i64 cols) {
  const i64 sr = x.strides[x.ndim - 2], sc = x.strides[x.ndim - 1];
  if constexpr (H == 0) {
    if (sc == 1) {
      using U0 = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
      typedef U0 __attribute__((may_alias)) U;  // the float storage read as its bits
      constexpr U E = sizeof(T) == 4 ? (U)0x7f800000u : (U)0x7ff0000000000000ull;  // exponent all ones: Inf, NaN
      for (i64 b = 0; b < d.nb; b++) {
        const i64 pb = batch_offset(x, d, b);
        U bad = 0;
        for (i64 r = 0; r < rows; r++) {
          const U* p = reinterpret_cast<const U*>(static_cast<const T*>(x.data) + pb + r * sr);
          for (i64 c = 0; c < cols; c++) bad |= (U)((p[c] & E) == E);
        }
        if (bad) return false;
      }
      return true;
    }
  }
  for (i64 b = 0; b < d.nb; b++) {
    const i64 pb = batch_offset(x, d, b);
    for (i64 r = 0; r < rows; r++) {
      bool ok = true;
      for (i64 c = 0; c < cols; c++) {
        const T y = ld<T, H>(x.data, pb + r * sr + c * sc);
        ok &= y - y == 0;  // false for NaN and +-Infinity
      }
      if (!ok) return false;
    }
  }
  return true;
}

// Scale, mask and causal exclusion of score row jj (key) of a transposed tile: s[i] for the queries i0 + i,
// i < FBR; padded lanes (i >= nr) and keys a query may not see (jj > i0 + i) get -Infinity.
template <class T, i64 FBR>
CR_INLINE void fl_score_row(T* __restrict s, T scale, const T* mrow, i64 msr, i64 i0, i64 nr, i64 jj,
                            bool causal) {
  for (i64 i = 0; i < FBR; i++) s[i] *= scale;
  if (mrow) {
    if (msr == 0) {
      const T mv = mrow[0];
      for (i64 i = 0; i < FBR; i++) s[i] += mv;
    } else {
      for (i64 i = 0; i < nr; i++) s[i] += mrow[i * msr];
    }
  }
  for (i64 i = nr; i < FBR; i++) s[i] = -(T)INFINITY;
  if (causal)
    for (i64 i = 0, ce = imin(FBR, jj - i0); i < ce; i++) s[i] = -(T)INFINITY;
}

template <class T, i64 FBR, int H = 0>
void fast_forward(const Dims& d, const View& q, const View& k, const View& v, const View* mask, bool causal, T scale,
                  T* out) {
  using F = Fl<T>;
  constexpr int MR = F::MR, NR = F::NR;
  const i64 e = d.e, ev = d.ev, w = d.ev + 1, L = d.l, S = d.s;
  const i64 evp = rup(ev, NR), spad = rup(S, FBC);
  const i64 qblocks = (L + FBR - 1) / FBR;
  // Tasks: a batch entry's query blocks, split in up to 4 x threads pieces when there are few entries (each
  // task packs its entry's keys once; the split does not change any result)
  const i64 split = imin(qblocks, imax<i64>(1, (4 * pool_threads() + d.nb - 1) / d.nb));
  const i64 per = (qblocks + split - 1) / split;
  const T* mdata = mask ? static_cast<const T*>(mask->data) : nullptr;
  const i64 msr = mask ? mask->strides[mask->ndim - 2] : 0, msc = mask ? mask->strides[mask->ndim - 1] : 0;
  par_for(d.nb * split, 1, [&](i64 t0, i64 t1, int tid) {
    // slot 0: ka [spad][E] as panels, vr [spad][evp]; slot 1: qt [E][FBR], st [FBC][FBR], acc [FBR][evp], state
    T* ka = static_cast<T*>(scratch(tid, 0, sizeof(T) * (size_t)(spad * (e + evp)) + 64));
    const size_t n1 = (size_t)(e * FBR + FBC * FBR + FBR * evp + 4 * FBR);
    T* qt = static_cast<T*>(scratch(tid, 1, sizeof(T) * n1 + sizeof(double) * FBR + 128));
    if (!ka || !qt) return;  // out of memory: the N-API layer reports it
    T* vr = ka + spad * e;
    T* st = qt + e * FBR;
    T* acc = st + FBC * FBR;
    T* m = acc + FBR * evp;  // running max per query
    T* bm = m + FBR;         // the block's max
    T* ms = bm + FBR;        // the max used as the exponent's offset (0 while every score is -Infinity)
    T* cs = ms + FBR;        // alpha, then the block's column sums
    alignas(64) double l[FBR];
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / split, qb0 = (task % split) * per, qb1 = imin(qblocks, qb0 + per);
      if (qb0 >= qb1) continue;
      const i64 qo = batch_offset(q, d, b);
      const T* mb = mask ? mdata + batch_offset(*mask, d, b) : nullptr;
      const i64 kend = rup(causal ? imin(S, qb1 * FBR) : S, MR);  // keys any query of the task sees (whole panels)
      fl_pack_panels<T, H>(k, batch_offset(k, d, b), 0, kend, S, e, ka);
      fl_pack_rows<T, H>(v, batch_offset(v, d, b), 0, kend, S, ev, evp, vr);
      for (i64 qb = qb0; qb < qb1; qb++) {
        const i64 i0 = qb * FBR, nr = imin(FBR, L - i0);
        fl_pack_lanes<T, FBR, H>(q, qo, i0, L, e, qt);
        for (i64 i = 0; i < FBR; i++) {
          m[i] = -(T)INFINITY;
          l[i] = 0;
        }
        for (i64 x = 0; x < FBR * evp; x++) acc[x] = 0;
        const i64 send = causal ? imin(S, i0 + nr) : S;
        for (i64 j0 = 0; j0 < send; j0 += FBC) {
          const i64 nc = imin(FBC, send - j0);
          fl_mm<T, 1, MR>((nc + MR - 1) / MR, FBR / NR, e, ka + j0 * e, MR * e, qt, FBR, st, FBR, false);
          const bool cz = causal && j0 + nc - 1 > i0;  // the block crosses the diagonal
          for (i64 i = 0; i < FBR; i++) bm[i] = -(T)INFINITY;
          for (i64 j = 0; j < nc; j++) {
            T* s = st + j * FBR;
            fl_score_row<T, FBR>(s, scale, mb ? mb + (j0 + j) * msc + i0 * msr : nullptr, msr, i0, nr, j0 + j, cz);
            for (i64 i = 0; i < FBR; i++) bm[i] = (s[i] > bm[i] || s[i] != s[i]) ? s[i] : bm[i];  // NaN sticks
          }
          for (i64 i = 0; i < FBR; i++) {
            const T mo = m[i], bb = bm[i];
            const T mn = (bb > mo || bb != bb || mo != mo) ? (mo != mo ? mo : bb) : mo;
            const T off = mn == -(T)INFINITY ? (T)0 : mn;
            cs[i] = exp_t((T)(mo - off));  // alpha: 0 while the row had nothing, NaN once it has a NaN
            m[i] = mn;
            ms[i] = off;
          }
          for (i64 i = 0; i < FBR; i++) {
            const T al = cs[i];
            l[i] *= (double)al;
            T* a = acc + i * evp;
            for (i64 c = 0; c < evp; c++) a[c] *= al;
          }
          for (i64 i = 0; i < FBR; i++) cs[i] = 0;
          for (i64 j = 0; j < nc; j++) {
            T* s = st + j * FBR;
            for (i64 i = 0; i < FBR; i++) {
              const T p = exp_t((T)(s[i] - ms[i]));
              s[i] = p;
              cs[i] += p;
            }
          }
          for (i64 i = 0; i < FBR; i++) l[i] += (double)cs[i];
          // acc += P V: A(query, key) = st[key][query]
          fl_mm<T, 1, FBR>(FBR / MR, evp / NR, nc, st, MR, vr + j0 * evp, evp, acc, evp, true);
        }
        for (i64 i = 0; i < nr; i++) {
          T* o = out + (b * L + i0 + i) * w;
          if (S == 0) {  // no keys (causal rows always see key 0)
            for (i64 c = 0; c < ev; c++) o[c] = 0;
            o[ev] = -(T)INFINITY;
          } else if (l[i] == 0) {
            for (i64 c = 0; c < ev; c++) o[c] = (T)NAN;
            o[ev] = -(T)INFINITY;
          } else {
            const double inv = 1.0 / l[i];
            const T* a = acc + i * evp;
            for (i64 c = 0; c < ev; c++) o[c] = (T)((double)a[c] * inv);
            o[ev] = (T)((double)m[i] + std::log(l[i]));
          }
        }
      }
    }
  });
}

#if CR_ISA_LEVEL == 2
// ---------------------------------------------------------------------------------------------------------
// The bfloat16 forward (AVX512_BF16): fast_forward's blocks and online softmax, with both products on
// vdpbf16ps, which multiplies pairs of bfloat16 values (exact in float32) and adds both products to a float32
// lane. Operands are packed as pairs along the products' depth: K as MR-row panels of (k[j][2c], k[j][2c+1]),
// q blocks transposed as (q[i][2c], q[i][2c+1]) per query lane, V as rows of (v[2j][c], v[2j + 1][c]), and P,
// after the float32 softmax, rounded to bfloat16 (to nearest even) as (p[i][2j], p[i][2j + 1]) per query lane,
// as PyTorch's bfloat16 flash attention rounds P before its P V product. The row sums l are the float32 P's.
// Padding (an odd E, keys past the block) is zero pairs.
#define CR_ATTN_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

constexpr int BMR = 8;   // rows of the bfloat16 register tile
constexpr int BNR = 32;  // columns (two vectors of 16 float32 lanes)

CR_INLINE uint32_t bits16(const void* data, i64 idx) {
  const uint8_t* p = static_cast<const uint8_t*>(data) + idx;
  return (uint32_t)(p[0] | (p[1] << 8));
}

// float32 bits -> bfloat16 bits, to nearest even (NaN quiet, sign kept).
CR_INLINE uint32_t round16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return ((x >> 16) & 0x8000u) | 0x7fc0u;
  return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

// C[BMR][BNR] (+)= sum_{k < kc} A(r, k) . B[k][0..BNR) over pairs: A(r, k) = a[r ARS + k AKS] and B row k at
// b + k ldb hold bfloat16 pairs (uint32).
template <int ARS, int AKS>
CR_ATTN_BF16 __attribute__((noinline)) void bf_kernel(i64 kc, const uint32_t* __restrict a, const uint32_t* __restrict b,
                                                      i64 ldb, float* __restrict c, i64 ldc, bool accumulate) {
  __m512 acc[BMR][2];
#pragma GCC unroll 8
  for (int r = 0; r < BMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (i64 k = 0; k < kc; k++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 8
    for (int r = 0; r < BMR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * ARS]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
    a += AKS;
    b += ldb;
  }
#pragma GCC unroll 8
  for (int r = 0; r < BMR; r++) {
    float* cr = c + r * ldc;
    for (int x = 0; x < 2; x++)
      _mm512_storeu_ps(cr + 16 * x, accumulate ? _mm512_add_ps(_mm512_loadu_ps(cr + 16 * x), acc[r][x]) : acc[r][x]);
  }
}

template <int ARS, int AKS>
CR_INLINE void bf_mm(i64 mp, i64 np, i64 kc, const uint32_t* a, i64 aps, const uint32_t* b, i64 ldb, float* c, i64 ldc,
                     bool accumulate) {
  for (i64 x = 0; x < np; x++)
    for (i64 p = 0; p < mp; p++)
      bf_kernel<ARS, AKS>(kc, a + p * aps, b + x * BNR, ldb, c + p * BMR * ldc + x * BNR, ldc, accumulate);
}

// The bfloat16 pair (x[r][c], x[r][c + 1]) of a 16-bit view (byte offsets; 0 past cols).
CR_INLINE uint32_t pair_row(const View& x, i64 row, i64 c, i64 cols, i64 sc) {
  const uint32_t lo = bits16(x.data, row + c * sc);
  return c + 1 < cols ? lo | (bits16(x.data, row + (c + 1) * sc) << 16) : lo;
}

// The forward on bfloat16 q, k, v (views of byte offsets, see view16); out float32 as fast_forward's.
template <i64 FBR>
void bf16_forward(const Dims& d, const View& q, const View& k, const View& v, const View* mask, bool causal,
                  float scale, float* out) {
  const i64 e = d.e, ev = d.ev, w = d.ev + 1, L = d.l, S = d.s;
  const i64 e2 = (e + 1) / 2, evp = rup(ev, BNR), spad = rup(S, FBC);
  const i64 qblocks = (L + FBR - 1) / FBR;
  const i64 split = imin(qblocks, imax<i64>(1, (4 * pool_threads() + d.nb - 1) / d.nb));
  const i64 per = (qblocks + split - 1) / split;
  const float* mdata = mask ? static_cast<const float*>(mask->data) : nullptr;
  const i64 msr = mask ? mask->strides[mask->ndim - 2] : 0, msc = mask ? mask->strides[mask->ndim - 1] : 0;
  const i64 ksr = k.strides[k.ndim - 2], ksc = k.strides[k.ndim - 1];
  const i64 vsr = v.strides[v.ndim - 2], vsc = v.strides[v.ndim - 1];
  const i64 qsr = q.strides[q.ndim - 2], qsc = q.strides[q.ndim - 1];
  par_for(d.nb * split, 1, [&](i64 t0, i64 t1, int tid) {
    // slot 0: ka [spad / BMR][e2][BMR] pairs, vr [spad / 2][evp] pairs; slot 1: qt [e2][FBR] pairs, pt [FBC / 2][FBR]
    // pairs, st [FBC][FBR], acc [FBR][evp], state
    uint32_t* ka = static_cast<uint32_t*>(scratch(tid, 0, 4 * (size_t)(spad * e2 + spad / 2 * evp) + 64));
    const size_t n1 = (size_t)(e2 * FBR + FBC / 2 * FBR + FBC * FBR + FBR * evp + 4 * FBR);
    uint32_t* qt = static_cast<uint32_t*>(scratch(tid, 1, 4 * n1 + sizeof(double) * FBR + 128));
    if (!ka || !qt) return;  // out of memory: the N-API layer reports it
    uint32_t* vr = ka + spad * e2;
    uint32_t* pt = qt + e2 * FBR;
    float* st = reinterpret_cast<float*>(pt + FBC / 2 * FBR);
    float* acc = st + FBC * FBR;
    float* m = acc + FBR * evp;
    float* bm = m + FBR;
    float* ms = bm + FBR;
    float* cs = ms + FBR;
    alignas(64) double l[FBR];
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / split, qb0 = (task % split) * per, qb1 = imin(qblocks, qb0 + per);
      if (qb0 >= qb1) continue;
      const i64 qo = batch_offset(q, d, b), ko = batch_offset(k, d, b), vo = batch_offset(v, d, b);
      const float* mb = mask ? mdata + batch_offset(*mask, d, b) : nullptr;
      const i64 kend = rup(causal ? imin(S, qb1 * FBR) : S, 2 * BMR);  // keys any query of the task sees
      for (i64 r = 0; r < kend; r++) {
        uint32_t* dst = ka + (r / BMR) * e2 * BMR + r % BMR;
        const i64 row = ko + r * ksr;
        for (i64 c2 = 0; c2 < e2; c2++) dst[c2 * BMR] = r < S ? pair_row(k, row, 2 * c2, e, ksc) : 0u;
      }
      for (i64 r2 = 0; r2 < kend / 2; r2++) {
        uint32_t* dst = vr + r2 * evp;
        const i64 j = 2 * r2;
        for (i64 c = 0; c < evp; c++) {
          const uint32_t lo = j < S && c < ev ? bits16(v.data, vo + j * vsr + c * vsc) : 0u;
          const uint32_t hi = j + 1 < S && c < ev ? bits16(v.data, vo + (j + 1) * vsr + c * vsc) : 0u;
          dst[c] = lo | (hi << 16);
        }
      }
      for (i64 qb = qb0; qb < qb1; qb++) {
        const i64 i0 = qb * FBR, nr = imin(FBR, L - i0);
        for (i64 i = 0; i < FBR; i++) {
          const i64 row = qo + (i0 + i) * qsr;
          for (i64 c2 = 0; c2 < e2; c2++) qt[c2 * FBR + i] = i < nr ? pair_row(q, row, 2 * c2, e, qsc) : 0u;
        }
        for (i64 i = 0; i < FBR; i++) {
          m[i] = -INFINITY;
          l[i] = 0;
        }
        for (i64 x = 0; x < FBR * evp; x++) acc[x] = 0;
        const i64 send = causal ? imin(S, i0 + nr) : S;
        for (i64 j0 = 0; j0 < send; j0 += FBC) {
          const i64 nc = imin(FBC, send - j0);
          bf_mm<1, BMR>((nc + BMR - 1) / BMR, FBR / BNR, e2, ka + j0 * e2, BMR * e2, qt, FBR, st, FBR, false);
          const bool cz = causal && j0 + nc - 1 > i0;
          for (i64 i = 0; i < FBR; i++) bm[i] = -INFINITY;
          for (i64 j = 0; j < nc; j++) {
            float* sr = st + j * FBR;
            fl_score_row<float, FBR>(sr, scale, mb ? mb + (j0 + j) * msc + i0 * msr : nullptr, msr, i0, nr, j0 + j, cz);
            for (i64 i = 0; i < FBR; i++) bm[i] = (sr[i] > bm[i] || sr[i] != sr[i]) ? sr[i] : bm[i];
          }
          for (i64 i = 0; i < FBR; i++) {
            const float mo = m[i], bb = bm[i];
            const float mn = (bb > mo || bb != bb || mo != mo) ? (mo != mo ? mo : bb) : mo;
            const float off = mn == -INFINITY ? 0.f : mn;
            cs[i] = exp_t((float)(mo - off));
            m[i] = mn;
            ms[i] = off;
          }
          for (i64 i = 0; i < FBR; i++) {
            const float al = cs[i];
            l[i] *= (double)al;
            float* a = acc + i * evp;
            for (i64 c = 0; c < evp; c++) a[c] *= al;
          }
          for (i64 i = 0; i < FBR; i++) cs[i] = 0;
          for (i64 j = 0; j < nc; j++) {
            float* sr = st + j * FBR;
            for (i64 i = 0; i < FBR; i++) {
              const float p = exp_t((float)(sr[i] - ms[i]));
              sr[i] = p;
              cs[i] += p;
            }
          }
          for (i64 i = 0; i < FBR; i++) l[i] += (double)cs[i];
          // P rounded to bfloat16, as pairs of keys per query lane (0 past the block's keys)
          const i64 nc2 = (nc + 1) / 2;
          for (i64 j2 = 0; j2 < nc2; j2++) {
            const float* s0 = st + 2 * j2 * FBR;
            const float* s1 = s0 + FBR;
            uint32_t* pr = pt + j2 * FBR;
            const bool two = 2 * j2 + 1 < nc;
            for (i64 i = 0; i < FBR; i++) pr[i] = round16(s0[i]) | (two ? round16(s1[i]) << 16 : 0u);
          }
          // acc += P V: A(query, key pair) = pt[pair][query]
          bf_mm<1, FBR>(FBR / BMR, evp / BNR, nc2, pt, BMR, vr + (j0 / 2) * evp, evp, acc, evp, true);
        }
        for (i64 i = 0; i < nr; i++) {
          float* o = out + (b * L + i0 + i) * w;
          if (S == 0) {
            for (i64 c = 0; c < ev; c++) o[c] = 0;
            o[ev] = -INFINITY;
          } else if (l[i] == 0) {
            for (i64 c = 0; c < ev; c++) o[c] = NAN;
            o[ev] = -INFINITY;
          } else {
            const double inv = 1.0 / l[i];
            const float* a = acc + i * evp;
            for (i64 c = 0; c < ev; c++) o[c] = (float)((double)a[c] * inv);
            o[ev] = (float)((double)m[i] + std::log(l[i]));
          }
        }
      }
    }
  });
}

// Whether the bfloat16 products run: the CPU has vdpbf16ps and CHAINRULE_ATTN_BF16 is not 0 (checked once).
bool use_dot16() {
  static const bool yes = __builtin_cpu_supports("avx512bf16") &&
                          !(std::getenv("CHAINRULE_ATTN_BF16") && std::getenv("CHAINRULE_ATTN_BF16")[0] == '0');
  return yes;
}
#endif

// One batch entry's operands in the backward's layouts (per thread; a range of blocks is filled per task).
template <class T>
struct FlBack {
  T *qt, *qr, *gt, *gr;  // q and dout blocks transposed [qblocks][E or Ev][FBR]; q, dout rows [lpad][ep / evp]
  T *lse, *dd;           // [lpad] (padding: +Infinity, 0)
  T *ka, *va, *kr;       // k, v as MR-row panels [spad][E or Ev]; k rows [spad][ep]
  // bfloat16 q, k, v on vdpbf16ps (bf16_backward): k, v as pair panels [spad][E2 or Ev2], q and dout blocks
  // transposed as pairs [qblocks][E2 or Ev2][FBR]; g16: the packed dout values are all bfloat16 (exact pairs)
  uint32_t *ka2 = nullptr, *va2 = nullptr, *qt2 = nullptr, *gt2 = nullptr;
  bool g16 = false;
};

template <class T, i64 FBR, int H = 0>
void fast_backward(const Dims& d, const View& q, const View& k, const View& v, const View* mask, const View& g,
                   const T* dl, bool causal, T scale, T* out) {
  using F = Fl<T>;
  constexpr int MR = F::MR, NR = F::NR;
  const i64 e = d.e, ev = d.ev, L = d.l, S = d.s;
  const i64 per = L * e + S * e + S * ev;
  const i64 ep = rup(e, NR), evp = rup(ev, NR);
  const i64 qblocks = (L + FBR - 1) / FBR, kblocks = (S + FBC - 1) / FBC;
  const i64 lpad = qblocks * FBR, spad = kblocks * FBC;
  const T* mdata = mask ? static_cast<const T*>(mask->data) : nullptr;
  const i64 msr = mask ? mask->strides[mask->ndim - 2] : 0, msc = mask ? mask->strides[mask->ndim - 1] : 0;
  const int nth = pool_threads();
  const size_t npack = (size_t)(lpad * (e + ev + ep + evp + 2) + spad * (e + ev + ep));
  // bfloat16 operands on vdpbf16ps: the two products of depth E and Ev (St = K Qt, dPt = V dOt, the latter
  // only when dout's values are bfloat16, as under autocast, so that no rounding is added) on pairs
#if CR_ISA_LEVEL == 2
  const bool bfk = H == 2 && std::is_same<T, float>::value && MR == BMR && use_dot16();
#else
  const bool bfk = false;
#endif
  const i64 e2 = (e + 1) / 2, ev2 = (ev + 1) / 2;

  auto setup = [&](int tid, FlBack<T>& P) -> bool {
    T* p = static_cast<T*>(scratch(tid, 0, sizeof(T) * npack + 64));
    if (!p) return false;
    if (bfk) {
      uint32_t* u = static_cast<uint32_t*>(scratch(tid, 3, 4 * (size_t)((spad + lpad) * (e2 + ev2)) + 64));
      if (!u) return false;
      P.ka2 = u;
      P.va2 = P.ka2 + spad * e2;
      P.qt2 = P.va2 + spad * ev2;
      P.gt2 = P.qt2 + lpad * e2;
    }
    P.qt = p;
    P.gt = P.qt + lpad * e;
    P.qr = P.gt + lpad * ev;
    P.gr = P.qr + lpad * ep;
    P.lse = P.gr + lpad * evp;
    P.dd = P.lse + lpad;
    P.ka = P.dd + lpad;
    P.va = P.ka + spad * e;
    P.kr = P.va + spad * ev;
    return true;
  };
  // query blocks [qb0, qb1) and key blocks [kb0, kb1) of batch entry b
  auto pack_queries = [&](FlBack<T>& P, i64 b, i64 qb0, i64 qb1) {
    const i64 qo = batch_offset(q, d, b), go = batch_offset(g, d, b);
    for (i64 qb = qb0; qb < qb1; qb++) {
      fl_pack_lanes<T, FBR, H>(q, qo, qb * FBR, L, e, P.qt + qb * FBR * e);
      fl_pack_lanes<T, FBR>(g, go, qb * FBR, L, ev, P.gt + qb * FBR * ev);
    }
    // rows past L are never read (the products' depth is the block's real queries)
    const i64 r1 = imin(qb1 * FBR, L);
    fl_pack_rows<T, H>(q, qo, qb0 * FBR, r1, L, e, ep, P.qr + qb0 * FBR * ep);
    fl_pack_rows(g, go, qb0 * FBR, r1, L, ev, evp, P.gr + qb0 * FBR * evp);
    for (i64 i = qb0 * FBR; i < qb1 * FBR; i++) {
      P.dd[i] = i < L ? dl[2 * (b * L + i)] : (T)0;
      P.lse[i] = i < L ? dl[2 * (b * L + i) + 1] : (T)INFINITY;
    }
#if CR_ISA_LEVEL == 2
    if (bfk) {
      // q pairs from its bfloat16 bits; dout pairs from the float32 lanes just packed (exact when bfloat16)
      const i64 qsr = q.strides[q.ndim - 2], qsc = q.strides[q.ndim - 1];
      bool exact = true;
      for (i64 qb = qb0; qb < qb1; qb++) {
        uint32_t* qd = P.qt2 + qb * FBR * e2;
        for (i64 i = 0; i < FBR; i++) {
          const i64 row = qo + (qb * FBR + i) * qsr;
          const bool in = qb * FBR + i < L;
          for (i64 c2 = 0; c2 < e2; c2++) qd[c2 * FBR + i] = in ? pair_row(q, row, 2 * c2, e, qsc) : 0u;
        }
        const T* gl = P.gt + qb * FBR * ev;  // [Ev][FBR], zero past L
        uint32_t* gd = P.gt2 + qb * FBR * ev2;
        for (i64 c2 = 0; c2 < ev2; c2++)
          for (i64 i = 0; i < FBR; i++) {
            uint32_t lo, hi = 0;
            std::memcpy(&lo, gl + 2 * c2 * FBR + i, 4);
            if (2 * c2 + 1 < ev) std::memcpy(&hi, gl + (2 * c2 + 1) * FBR + i, 4);
            exact &= ((lo | hi) & 0xffffu) == 0;
            gd[c2 * FBR + i] = (lo >> 16) | (hi & 0xffff0000u);
          }
      }
      P.g16 = exact;
    }
#endif
  };
  auto pack_keys = [&](FlBack<T>& P, i64 b, i64 kb0, i64 kb1) {
    const i64 ko = batch_offset(k, d, b), vo = batch_offset(v, d, b);
    // up to the last whole panel of keys (the products read ceil(nc / MR) panels, nc rows)
    const i64 r1 = imin(kb1 * FBC, rup(S, MR));
    fl_pack_panels<T, H>(k, ko, kb0 * FBC, r1, S, e, P.ka + kb0 * FBC * e);
    fl_pack_panels<T, H>(v, vo, kb0 * FBC, r1, S, ev, P.va + kb0 * FBC * ev);
    fl_pack_rows<T, H>(k, ko, kb0 * FBC, r1, S, e, ep, P.kr + kb0 * FBC * ep);
#if CR_ISA_LEVEL == 2
    if (bfk) {
      const i64 ksr = k.strides[k.ndim - 2], ksc = k.strides[k.ndim - 1];
      const i64 vsr = v.strides[v.ndim - 2], vsc = v.strides[v.ndim - 1];
      for (i64 r = kb0 * FBC; r < r1; r++) {
        uint32_t* kd = P.ka2 + (r / BMR) * e2 * BMR + r % BMR;
        uint32_t* vd = P.va2 + (r / BMR) * ev2 * BMR + r % BMR;
        for (i64 c2 = 0; c2 < e2; c2++) kd[c2 * BMR] = r < S ? pair_row(k, ko + r * ksr, 2 * c2, e, ksc) : 0u;
        for (i64 c2 = 0; c2 < ev2; c2++) vd[c2 * BMR] = r < S ? pair_row(v, vo + r * vsr, 2 * c2, ev, vsc) : 0u;
      }
    }
#endif
  };
  // One (query block, key block) pair: P^T into st, scale dS^T into dpt, then dk, dv (rows of the key block,
  // when given) and dq (rows of the query block, when given) accumulate.
  auto pair = [&](const FlBack<T>& P, T* st, T* dpt, const T* mb, i64 qb, i64 kb, T* dk, T* dv, T* dq) {
    const i64 i0 = qb * FBR, j0 = kb * FBC, nr = imin(FBR, L - i0), nc = imin(FBC, S - j0);
    const i64 mpk = (nc + MR - 1) / MR;
    bool st16 = false, dp16 = false;
#if CR_ISA_LEVEL == 2
    if constexpr (std::is_same<T, float>::value) {
      if (bfk) {
        bf_mm<1, BMR>(mpk, FBR / BNR, e2, P.ka2 + j0 * e2, BMR * e2, P.qt2 + qb * FBR * e2, FBR, st, FBR, false);
        st16 = true;
        if (P.g16) {
          bf_mm<1, BMR>(mpk, FBR / BNR, ev2, P.va2 + j0 * ev2, BMR * ev2, P.gt2 + qb * FBR * ev2, FBR, dpt, FBR, false);
          dp16 = true;
        }
      }
    }
#endif
    if (!st16) fl_mm<T, 1, MR>(mpk, FBR / NR, e, P.ka + j0 * e, MR * e, P.qt + qb * FBR * e, FBR, st, FBR, false);
    if (!dp16)
      fl_mm<T, 1, MR>(mpk, FBR / NR, ev, P.va + j0 * ev, MR * ev, P.gt + qb * FBR * ev, FBR, dpt, FBR, false);
    const bool cz = causal && j0 + nc - 1 > i0;
    const T* ls = P.lse + i0;
    const T* dd = P.dd + i0;
    for (i64 j = 0; j < nc; j++) {
      T* s = st + j * FBR;
      T* dp = dpt + j * FBR;
      fl_score_row<T, FBR>(s, scale, mb ? mb + (j0 + j) * msc + i0 * msr : nullptr, msr, i0, nr, j0 + j, false);
      for (i64 i = 0; i < FBR; i++) {
        const T p = exp_t((T)(s[i] - ls[i]));
        s[i] = p;
        dp[i] = scale * p * (dp[i] - dd[i]);
      }
      // keys a query may not see and padded queries contribute exactly nothing
      for (i64 i = nr; i < FBR; i++) s[i] = dp[i] = 0;
      if (cz)
        for (i64 i = 0, ce = imin(FBR, j0 + j - i0); i < ce; i++) s[i] = dp[i] = 0;
    }
    if (dv) {
      // dv += P^T dout, dk += dS^T q: A(key, query) = st[key][query], depth the nr queries
      fl_mm<T, FBR, 1>(mpk, evp / NR, nr, st, MR * FBR, P.gr + i0 * evp, evp, dv, evp, true);
      fl_mm<T, FBR, 1>(mpk, ep / NR, nr, dpt, MR * FBR, P.qr + i0 * ep, ep, dk, ep, true);
    }
    // dq += dS k: A(query, key) = dpt[key][query], depth the nc keys
    if (dq) fl_mm<T, 1, FBR>((nr + MR - 1) / MR, ep / NR, nc, dpt, MR, P.kr + j0 * ep, ep, dq, ep, true);
  };
  // tile scratch (slot 1): st, dpt [FBC][FBR], dk [FBC][ep], dv [FBC][evp]
  auto tiles = [&](int tid) -> T* {
    return static_cast<T*>(scratch(tid, 1, sizeof(T) * (size_t)(2 * FBC * FBR + FBC * (ep + evp)) + 64));
  };
  auto store_kv = [&](i64 b, i64 kb, const T* dk, const T* dv) {
    const i64 j0 = kb * FBC, nc = imin(FBC, S - j0);
    T* ok = out + b * per + L * e + j0 * e;
    T* ov = out + b * per + L * e + S * e + j0 * ev;
    for (i64 j = 0; j < nc; j++) {
      for (i64 c = 0; c < e; c++) ok[j * e + c] = dk[j * ep + c];
      for (i64 c = 0; c < ev; c++) ov[j * ev + c] = dv[j * evp + c];
    }
  };
  // rows [0, whole panels of the key block) of the dk, dv accumulators
  auto zero_kv = [&](i64 kb, T* dk, T* dv) {
    const i64 rows = rup(imin(FBC, S - kb * FBC), MR);
    for (i64 x = 0; x < rows * ep; x++) dk[x] = 0;
    for (i64 x = 0; x < rows * evp; x++) dv[x] = 0;
  };
  auto first_qb = [&](i64 kb) { return causal ? (kb * FBC) / FBR : (i64)0; };
  auto end_kb = [&](i64 qb) { return causal ? (imin(S, qb * FBR + FBR) + FBC - 1) / FBC : kblocks; };

  if (d.nb >= 2 * nth || nth == 1) {
    // One pass per batch entry: key blocks outer, query blocks inner; dk, dv of a key block in registers'
    // reach, dq of the whole entry in scratch (slot 2). The task owns every output of its entry.
    par_for(d.nb, 1, [&](i64 t0, i64 t1, int tid) {
      FlBack<T> P;
      T* tl = tiles(tid);
      T* dqa = static_cast<T*>(scratch(tid, 2, sizeof(T) * (size_t)(lpad * ep) + 64));
      if (!setup(tid, P) || !tl || !dqa) return;
      T* st = tl;
      T* dpt = st + FBC * FBR;
      T* dk = dpt + FBC * FBR;
      T* dv = dk + FBC * ep;
      for (i64 b = t0; b < t1; b++) {
        const T* mb = mask ? mdata + batch_offset(*mask, d, b) : nullptr;
        pack_queries(P, b, 0, qblocks);
        pack_keys(P, b, 0, kblocks);
        for (i64 x = 0; x < lpad * ep; x++) dqa[x] = 0;
        for (i64 kb = 0; kb < kblocks; kb++) {
          zero_kv(kb, dk, dv);
          for (i64 qb = first_qb(kb); qb < qblocks; qb++) pair(P, st, dpt, mb, qb, kb, dk, dv, dqa + qb * FBR * ep);
          store_kv(b, kb, dk, dv);
        }
        T* oq = out + b * per;
        for (i64 i = 0; i < L; i++)
          for (i64 c = 0; c < e; c++) oq[i * e + c] = dqa[i * ep + c];
      }
    });
    return;
  }
  // Few batch entries: two passes so that every output still has one owner, pass 1 over key blocks (dk, dv),
  // pass 2 over query blocks (dq), each split in chunks for up to 4 x threads tasks. The products and their
  // order of accumulation are those of the one-pass loop, so the bits do not depend on the thread count.
  const i64 ksplit = imax<i64>(1, imin(kblocks, (4 * nth + d.nb - 1) / d.nb));  // S = 0: one empty task
  const i64 kper = (kblocks + ksplit - 1) / ksplit;
  par_for(d.nb * ksplit, 1, [&](i64 t0, i64 t1, int tid) {
    FlBack<T> P;
    T* tl = tiles(tid);
    if (!setup(tid, P) || !tl) return;
    T* st = tl;
    T* dpt = st + FBC * FBR;
    T* dk = dpt + FBC * FBR;
    T* dv = dk + FBC * ep;
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / ksplit, kb0 = (task % ksplit) * kper, kb1 = imin(kblocks, kb0 + kper);
      if (kb0 >= kb1) continue;
      const T* mb = mask ? mdata + batch_offset(*mask, d, b) : nullptr;
      pack_keys(P, b, kb0, kb1);
      pack_queries(P, b, first_qb(kb0), qblocks);
      for (i64 kb = kb0; kb < kb1; kb++) {
        zero_kv(kb, dk, dv);
        for (i64 qb = first_qb(kb); qb < qblocks; qb++) pair(P, st, dpt, mb, qb, kb, dk, dv, nullptr);
        store_kv(b, kb, dk, dv);
      }
    }
  });
  const i64 qsplit = imin(qblocks, imax<i64>(1, (4 * nth + d.nb - 1) / d.nb));
  const i64 qper = (qblocks + qsplit - 1) / qsplit;
  par_for(d.nb * qsplit, 1, [&](i64 t0, i64 t1, int tid) {
    FlBack<T> P;
    T* tl = tiles(tid);
    T* dqa = static_cast<T*>(scratch(tid, 2, sizeof(T) * (size_t)(FBR * ep) + 64));
    if (!setup(tid, P) || !tl || !dqa) return;
    T* st = tl;
    T* dpt = st + FBC * FBR;
    for (i64 task = t0; task < t1; task++) {
      const i64 b = task / qsplit, qb0 = (task % qsplit) * qper, qb1 = imin(qblocks, qb0 + qper);
      if (qb0 >= qb1) continue;
      const T* mb = mask ? mdata + batch_offset(*mask, d, b) : nullptr;
      pack_queries(P, b, qb0, qb1);
      pack_keys(P, b, 0, end_kb(qb1 - 1));
      for (i64 qb = qb0; qb < qb1; qb++) {
        for (i64 x = 0; x < FBR * ep; x++) dqa[x] = 0;
        for (i64 kb = 0; kb < end_kb(qb); kb++) pair(P, st, dpt, mb, qb, kb, nullptr, nullptr, dqa);
        const i64 i0 = qb * FBR, nr = imin(FBR, L - i0);
        T* oq = out + b * per + i0 * e;
        for (i64 i = 0; i < nr; i++)
          for (i64 c = 0; c < e; c++) oq[i * e + c] = dqa[i * ep + c];
      }
    }
  });
}

// The exact loops for causal attention over non-finite q, k or dout (see attention()), else the tiled kernels.
// (H: q, k, v 16-bit, see ld; the tiled kernels only, the caller having checked that the exact loops are not
// needed.)
template <class T, int H = 0>
void backward_dispatch(const Dims& d, const View& q, const View& k, const View& v, const View* mask, const View& o,
                       const View& g, bool causal, T scale, T* out) {
  if (H == 0 && causal && (!fl_finite<T>(q, d, d.l, d.e) || !fl_finite<T>(k, d, d.s, d.e) || !fl_finite<T>(g, d, d.l, d.ev))) {
    exact_backward<T>(d, q, k, v, mask, o, g, true, scale, out);
    return;
  }
  const T* dl = d_and_lse<T>(d, o, g);
  if (dl) {
    if (d.l <= 32) fast_backward<T, 32, H>(d, q, k, v, mask, g, dl, causal, scale, out);
    else fast_backward<T, 64, H>(d, q, k, v, mask, g, dl, causal, scale, out);
  }
}

// ---------------------------------------------------------------------------------------------------------
// 16-bit operands (autocast's attention: float16 or bfloat16 q, k, v and mask, kind bit 1 or 2). The addon has
// no 16-bit dtype code, so such a view arrives as bytes (BOOL) of shape [..., 2] with last stride 1 (the byte
// offset and strides of each value; the addon checked every byte against the array). Each is widened here,
// exactly, into a contiguous float32 copy (any strides: a permuted or sliced projection output reads in place),
// and the float32 kernels run on the copies: the same bits as the widened operands the primitive layer used to
// pass, without its js strided copies and short-lived float32 tensors.

// dst[c] = the value of the 16-bit element at byte src + c sc, c < n.
void widen_row(const uint8_t* src, i64 sc, i64 n, bool bf, float* __restrict dst) {
  i64 c = 0;
#if CR_ISA_LEVEL == 2
  if (sc == 2) {
    for (; c + 16 <= n; c += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * c));
      if (bf) _mm512_storeu_si512(dst + c, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      else _mm512_storeu_ps(dst + c, _mm512_cvtph_ps(h));
    }
  }
#endif
  for (; c < n; c++) {
    const uint8_t* p = src + c * sc;
    const uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    dst[c] = bf ? bf16_f32(h) : f16_f32(h);
  }
}

// A 16-bit byte view x [...X, 2] widened into buf (allocated here) as the float32 view w [...X]: contiguous,
// except that an axis x broadcasts (stride 0: a mask shared by the batch) stays a stride-0 axis of one copy.
Err widen_view(const char* op, const char* name, const View& x, bool bf, std::unique_ptr<float[]>& buf, View& w) {
  const int r = x.ndim - 1;
  if (x.dtype != BOOL || r < 1 || x.shape[r] != 2 || x.strides[r] != 1)
    return err_fmt("%s: %s must be a 16-bit byte view [..., 2] with last stride 1", op, name);
  i64 cs[kMaxDims];  // the copy's extents: 1 along broadcast axes
  i64 n = 1;
  for (int a = 0; a < r; a++) {
    cs[a] = x.strides[a] == 0 ? 1 : x.shape[a];
    n *= cs[a];  // a sub-product of the view's extents: bounded by the addon's checks
  }
  buf.reset(new (std::nothrow) float[(size_t)imax<i64>(n, 1)]);
  if (!buf) return err_fmt("%s: out of memory widening %s (%lld values)", op, name, (long long)n);
  w.data = buf.get();
  w.dtype = F32;
  w.ndim = r;
  w.offset = 0;
  i64 st = 1;
  for (int a = r - 1; a >= 0; a--) {
    w.shape[a] = x.shape[a];
    w.strides[a] = cs[a] == 1 ? 0 : st;
    st *= cs[a];
  }
  const i64 cols = cs[r - 1], rows = cols == 0 ? 0 : n / cols;
  const uint8_t* base = static_cast<const uint8_t*>(x.data) + x.offset;
  float* dst = buf.get();
  par_for(rows, imax<i64>(1, elem_grain(n, 16384) / imax<i64>(cols, 1)), [&](i64 lo, i64 hi, int) {
    for (i64 row = lo; row < hi; row++) {
      i64 off = 0, t = row;
      for (int a = r - 2; a >= 0; a--) {
        off += (t % cs[a]) * x.strides[a];
        t /= cs[a];
      }
      widen_row(base + off, x.strides[r - 1], cols, bf, dst + row * cols);
    }
  });
  return nullptr;
}

// A 16-bit byte view x [...X, 2] as the view [...X] of the byte offsets of its values (dtype still BOOL): what
// the packers read with H > 0.
Err view16(const char* op, const char* name, const View& x, View& w) {
  const int r = x.ndim - 1;
  if (x.dtype != BOOL || r < 1 || x.shape[r] != 2 || x.strides[r] != 1)
    return err_fmt("%s: %s must be a 16-bit byte view [..., 2] with last stride 1", op, name);
  w = x;
  w.ndim = r;
  return nullptr;
}

// The 16-bit format of kind's bits 1-2: 0 none (float32 / float64 views), 1 float16, 2 bfloat16.
CR_INLINE int half_kind(int kind) { return (kind >> 1) & 3; }

}  // namespace

Err attention(int causal, const AttnParams& ap, int nd, const int64_t* shape, const View& q, const View& k,
              const View& v, const View* mask, const Out& out) {
  if (causal < 0 || causal > 5 || half_kind(causal) == 3) return "attention: kind must be 0..5";
  if (const int hk = half_kind(causal)) {
    // 16-bit q, k, v (and mask), out float32: the tiled kernels widen q, k, v as they pack them (a 16-bit mask
    // is widened first); causal attention over a non-finite v runs the exact loops on widened copies
    if (out.dtype != F32) return "attention: out must be float32 for 16-bit q, k, v";
    const View* in[4] = {&q, &k, &v, mask};
    const char* names[4] = {"q", "k", "v", "mask"};
    View h[3], w[4];
    std::unique_ptr<float[]> b[4];
    for (int i = 0; i < 3; i++)
      if (Err err = view16("attention", names[i], *in[i], h[i])) return err;
    if (mask)
      if (Err err = widen_view("attention", "mask", *mask, hk == 2, b[3], w[3])) return err;
    Dims d;
    if (Err err = check_dims("attention", h[0], h[1], h[2], mask ? &w[3] : nullptr, nd, shape, false, d, true))
      return err;
    if (d.nb == 0 || d.l == 0) return nullptr;
    const bool exact =
        (causal & 1) && (hk == 2 ? !fl_finite<float, 2>(h[2], d, d.s, d.ev) : !fl_finite<float, 1>(h[2], d, d.s, d.ev));
    if (exact) {
      for (int i = 0; i < 3; i++)
        if (Err err = widen_view("attention", names[i], *in[i], hk == 2, b[i], w[i])) return err;
      return attention(causal & 1, ap, nd, shape, w[0], w[1], w[2], mask ? &w[3] : nullptr, out);
    }
    float* o = static_cast<float*>(out.data);
    const View* m = mask ? &w[3] : nullptr;
    const float sc = (float)ap.scale;
    const bool c = (causal & 1) != 0;
#if CR_ISA_LEVEL == 2
    // bfloat16 on vdpbf16ps (P rounded to bfloat16 for P V), unless CHAINRULE_ATTN_BF16=0
    if (hk == 2 && use_dot16()) {
      if (d.l <= 32) bf16_forward<32>(d, h[0], h[1], h[2], m, c, sc, o);
      else bf16_forward<64>(d, h[0], h[1], h[2], m, c, sc, o);
      return nullptr;
    }
#endif
    if (hk == 2) {
      if (d.l <= 32) fast_forward<float, 32, 2>(d, h[0], h[1], h[2], m, c, sc, o);
      else fast_forward<float, 64, 2>(d, h[0], h[1], h[2], m, c, sc, o);
    } else {
      if (d.l <= 32) fast_forward<float, 32, 1>(d, h[0], h[1], h[2], m, c, sc, o);
      else fast_forward<float, 64, 1>(d, h[0], h[1], h[2], m, c, sc, o);
    }
    return nullptr;
  }
  Dims d;
  if (Err err = check_dims("attention", q, k, v, mask, nd, shape, false, d)) return err;
  if (out.dtype != q.dtype) return "attention: out must have the dtype of q";
  if (d.nb == 0 || d.l == 0) return nullptr;
  // Causal attention skips the keys j > i outright, whereas the tiled products multiply them by an exact 0: the
  // same unless a value there is NaN or infinite (0 x Inf), so such inputs take the exact loops.
  if (q.dtype == F32) {
    float* o = static_cast<float*>(out.data);
    if (causal && !fl_finite<float>(v, d, d.s, d.ev)) exact_forward<float>(d, q, k, v, mask, true, (float)ap.scale, o);
    else if (d.l <= 32) fast_forward<float, 32>(d, q, k, v, mask, causal != 0, (float)ap.scale, o);
    else fast_forward<float, 64>(d, q, k, v, mask, causal != 0, (float)ap.scale, o);
  } else {
    double* o = static_cast<double*>(out.data);
    if (causal && !fl_finite<double>(v, d, d.s, d.ev)) exact_forward<double>(d, q, k, v, mask, true, ap.scale, o);
    else if (d.l <= 32) fast_forward<double, 32>(d, q, k, v, mask, causal != 0, ap.scale, o);
    else fast_forward<double, 64>(d, q, k, v, mask, causal != 0, ap.scale, o);
  }
  return nullptr;
}

Err attention_backward(int causal, const AttnParams& ap, int nd, const int64_t* shape, const Out& out,
                       const Views& in) {
  if (in.n != 5 && in.n != 6) return err_fmt("attentionBackward: expected 5 or 6 views (q, k, v, [mask,] o, dout), got %d", in.n);
  if (causal < 0 || causal > 5 || half_kind(causal) == 3) return "attentionBackward: kind must be 0..5";
  if (const int hk = half_kind(causal)) {
    // 16-bit q, k, v (and mask), float32 o and dout: the tiled kernels widen q, k, v as they pack them (a 16-bit
    // mask is widened first); causal attention over non-finite values runs the exact loops on widened copies
    const char* op = "attentionBackward";
    const char* names[4] = {"q", "k", "v", "mask"};
    const View& o = in.v[in.n - 2];
    const View& g = in.v[in.n - 1];
    if (o.dtype != F32 || g.dtype != F32 || out.dtype != F32)
      return "attentionBackward: o, dout and out must be float32 for 16-bit q, k, v";
    View h[3], w[6];
    std::unique_ptr<float[]> b[4];
    for (int i = 0; i < 3; i++)
      if (Err err = view16(op, names[i], in.v[i], h[i])) return err;
    const bool withMask = in.n == 6;
    if (withMask)
      if (Err err = widen_view(op, "mask", in.v[3], hk == 2, b[3], w[3])) return err;
    const View* m = withMask ? &w[3] : nullptr;
    Dims d;
    if (Err err = check_dims(op, h[0], h[1], h[2], m, nd, shape, true, d, true)) return err;
    const View* saved[2] = {&o, &g};
    for (const View* x : saved) {
      bool same = x->ndim == d.nd && x->shape[d.nd - 2] == d.l && x->shape[d.nd - 1] == d.ev + 1;
      for (int a = 0; same && a < d.nd - 2; a++) same = x->shape[a] == d.lead[a];
      if (!same) return "attentionBackward: o and dout must be [...B, L, Ev + 1]";
    }
    const i64 per = d.l * d.e + d.s * d.e + d.s * d.ev;
    if (d.nb == 0 || per == 0) return nullptr;
    if (d.l == 0) {  // no query rows: dk and dv are zero
      std::memset(out.data, 0, (size_t)(d.nb * per) * 4);
      return nullptr;
    }
    auto finite = [&](const View& x, i64 rows, i64 cols) {
      return hk == 2 ? fl_finite<float, 2>(x, d, rows, cols) : fl_finite<float, 1>(x, d, rows, cols);
    };
    if ((causal & 1) && (!finite(h[0], d.l, d.e) || !finite(h[1], d.s, d.e) || !fl_finite<float>(g, d, d.l, d.ev))) {
      for (int i = 0; i < 3; i++)
        if (Err err = widen_view(op, names[i], in.v[i], hk == 2, b[i], w[i])) return err;
      w[in.n - 2] = o;
      w[in.n - 1] = g;
      const Views wv{in.n, w};
      return attention_backward(causal & 1, ap, nd, shape, out, wv);
    }
    float* po = static_cast<float*>(out.data);
    const float sc = (float)ap.scale;
    const bool c = (causal & 1) != 0;
    if (hk == 2) backward_dispatch<float, 2>(d, h[0], h[1], h[2], m, o, g, c, sc, po);
    else backward_dispatch<float, 1>(d, h[0], h[1], h[2], m, o, g, c, sc, po);
    return nullptr;
  }
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
  if (q.dtype == F32) backward_dispatch<float>(d, q, k, v, mask, o, g, causal != 0, (float)ap.scale, static_cast<float*>(out.data));
  else backward_dispatch<double>(d, q, k, v, mask, o, g, causal != 0, ap.scale, static_cast<double*>(out.data));
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
