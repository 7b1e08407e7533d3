// 2-D convolution (PyTorch's cross-correlation, NCHW, weight [O, C/groups, KH, KW]) and its two adjoints on
// top of the packed GEMM of gemm.h, with the loaders of conv_loaders.h building im2col panels on the fly.
//
// With g the group, Cg = C/groups, Og = O/groups, P = OH*OW, k = (c, kh, kw) flattened:
//   forward      y[:, g] (Og x N*P)  = W_g (Og x Cg*KH*KW) @ im2col(x[:, g]) (Cg*KH*KW x N*P): one GEMM for
//                                      the whole batch (each image's columns padded to a multiple of NR),
//                                      so the weights are packed once, not once per image
//   weight grad  dW_g (Og x CgKK)    = dy[:, g] (Og x N*P) @ im2col(x[:, g])^T, the batch folded into the
//                                      inner dimension; split into a fixed number of image chunks whose
//                                      partial sums are added in order (parallel and deterministic)
//   input grad   cols (CgKK x P)     = W_g^T (CgKK x Og) @ dy[n, g] (Og x P), then col2im adds each column
//                                      back into the input window it came from (exact work for any stride)
// int32 convolutions use direct loops with float64 sums, like the js backend.
#include <cstdlib>

#include "act.h"
#include "conv_direct.h"
#include "conv_loaders.h"
#include "map.h"
#include "scalar.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

CR_INLINE bool in_range(i64 v, i64 n) { return (uint64_t)v < (uint64_t)n; }

// Whether the few-taps kernels of conv_direct.h are used (the forward row tiles, the weight gradient vectorised
// over positions). CHAINRULE_CONV_SMALL=0 turns them off, read at every call,
// so a benchmark can compare both paths in one process. Set by conv2d before any kernel runs.
bool g_small = true;
// Whether the few-taps weight gradient prefetches the dy planes of its next tile (conv_direct.h
// small_wgrad_tile), and the direct passes and that weight gradient the next image's input (prefetch_planes).
// CHAINRULE_CONV_PREFETCH=0 turns them off, read at every call like CHAINRULE_CONV_SMALL.
bool g_prefetch = true;
// Whether unit-stride passes may run the channel tiles of conv_direct.h (direct_chan_tiles) where they waste
// fewer lanes than the position tiles. CHAINRULE_CONV_CHAN=0 turns them off, read at every call like
// CHAINRULE_CONV_SMALL.
bool g_chan = true;
// Whether strided passes run the direct tiles over phase planes (conv_direct.h) rather than the im2col GEMM.
// CHAINRULE_CONV_PHASE=0 turns them off, read at every call like CHAINRULE_CONV_SMALL.
bool g_phase = true;
// Whether pointwise passes on small planes run one product over all images (pointwise_forward_images and the two
// gradients' pointwise_back_*_images); CHAINRULE_CONV_IMAGES=0 turns them off, read at every call like
// CHAINRULE_CONV_SMALL.
bool g_images = true;
// Whether passes with one output channel and many taps run the row tiles of conv_direct.h (OneRows);
// CHAINRULE_CONV_ONEROWS=0 turns them off, read at every call like CHAINRULE_CONV_SMALL.
bool g_onerows = true;

// Whether a forward pass or weight gradient runs the direct tiles: unit stride, or strides the phase planes
// take, except for 1 x 1 filters (one phase, and the GEMM's larger register tile: the phase planes ran a
// [32, 256, 56, 56] -> 512 stride-2 1x1 forward pass at 0.70x and its weight gradient at 0.85x the im2col GEMM,
// where 3x3 and 7x7 stride-2 passes ran 1.04-1.5x faster and depthwise ones 1.7-2.8x; Intel Xeon, 1 thread).
CR_INLINE bool direct_ok(const Geo& g) {
  return (g.sh == 1 && g.sw == 1) || (g_phase && direct_strides(g.sh, g.sw) && (g.KH > 1 || g.KW > 1));
}

// The forward epilogue out = act(out + bias[o]): bias a contiguous copy of the O values (null: none), act an
// ActOp or -1.
template <class T>
struct Epilogue {
  const T* bias;
  int act;
  bool any() const { return bias || act >= 0; }
  void apply(T* row, i64 n, i64 o) const { bias_act_row<T>(row, n, bias ? bias[o] : T(0), act); }
};

// The weights as a matrix [O, Cg*KH*KW]: element (o, k) = p[o * rs + k * cs]. When the last three axes of w
// do not merge into one stride, w is first copied into contiguous scratch.
template <class T>
struct WeightMat {
  const T* p;
  i64 rs, cs;
};

template <class T>
WeightMat<T> weight_matrix(const View& w, const Geo& g, int slot) {
  const T* wp = static_cast<const T*>(w.data) + w.offset;
  const i64* s = w.strides;
  // Merge the (c, kh, kw) axes, skipping extent-1 ones: each must step over exactly the next one.
  const i64 ext[3] = {g.Cg, g.KH, g.KW};
  i64 cs = 1, span = 1;
  bool have = false, merged = true;
  for (int d = 2; d >= 0; d--) {
    if (ext[d] == 1) continue;
    if (!have) cs = s[d + 1], have = true;
    else if (s[d + 1] != cs * span) merged = false;
    span *= ext[d];
  }
  if (merged) return WeightMat<T>{wp, s[0], cs};
  T* tmp = static_cast<T*>(scratch(pool_tid(), slot, sizeof(T) * (size_t)(g.O * g.Cg * g.KH * g.KW)));
  if (!tmp) return WeightMat<T>{nullptr, 0, 0};
  i64 t = 0;
  for (i64 o = 0; o < g.O; o++)
    for (i64 c = 0; c < g.Cg; c++)
      for (i64 kh = 0; kh < g.KH; kh++)
        for (i64 kw = 0; kw < g.KW; kw++) tmp[t++] = wp[o * s[0] + c * s[1] + kh * s[2] + kw * s[3]];
  return WeightMat<T>{tmp, g.Cg * g.KH * g.KW, 1};
}

// Runs a unit-stride pass (forward, or the input gradient as a forward pass over dy) for every (image, group):
// packs the filter of each group with a(gi, o, k), then per task builds the image's padded copy and computes
// its output planes at out + (n * out_channels + gi * d.Cout) * OH * OW. Images are split over the pool when
// there are enough of them; otherwise each image's tiles are.
template <class T, class F>
bool direct_pass(const T* in, const i64* is, i64 N, i64 G, const DGeo& d, T* out, i64 out_channels, F a,
                 Epilogue<T> ep = Epilogue<T>{nullptr, -1}) {
  constexpr int NR = DirectBlocking<T>::NR, NRC = ChanBlocking<T>::NR;
  const int caller = pool_tid();
  // The tiles (conv_direct.h): flat over shifted planes for few taps, else row tiles when they waste fewer
  // lanes than the wide tiles save in copies, else wide; but channel tiles (vectorised over output channels)
  // instead of rows or wide tiles when they waste fewer lanes than both.
  const bool flat = g_small && d.K <= kSmallTaps && d.sh == 1 && d.sw == 1;  // (shifted planes: unit stride)
  const i64 P = d.OH * d.OW;
  // One output channel per group (a depthwise convolution and its input gradient, the input gradient of a
  // one-channel input): tiles of 1 x NV1 vectors, flat or wide, rather than MR-row panels of which one row is real.
  constexpr int NV1 = 4, NR1 = NV1 * Simd<T>::W;
  const bool one = g_small && d.Cout == 1;
  // ... and of those with many taps, row tiles that reuse each load over the filter's rows (OneRows)
  const int onev = OneRows<T>::nv(d);
  const bool one_rows = one && !flat && g_onerows && !ep.any() && OneRows<T>::fits(d, is[3]);
  bool rows = !flat && !one && g_small && row_tiles_pay(d, NR, kSmallTaps), chan = false;
  if (!flat && !one && g_small && g_chan) {
    constexpr int MR0 = DirectBlocking<T>::MR;
    const double row_lanes = (double)d.OW / (double)((d.OW + NR - 1) / NR * NR);
    const double wide_lanes = (double)P / (double)((d.OH * d.Wp + NR - 1) / NR * NR);
    const double panel_rows = (double)d.Cout / (double)((d.Cout + MR0 - 1) / MR0 * MR0);
    // (and their transposed output, one image's planes per thread, within 2^24 elements: 64 MiB of float)
    const i64 ldc = (d.Cout + NRC - 1) / NRC * NRC;
    chan = (__int128)P * ldc <= ((__int128)1 << 24) && chan_tiles_pay<T>(d, (rows ? row_lanes : wide_lanes) * panel_rows);
    if (chan) rows = false;
  }
  const int MR = chan ? NRC : one ? 1 : DirectBlocking<T>::MR;  // rows per filter panel
  const i64 fsz = filter_panels_size(d, MR);
  T* Ap = static_cast<T*>(scratch(caller, 2, sizeof(T) * (size_t)(fsz * G)));
  i64* off = static_cast<i64*>(scratch(caller, 7, sizeof(i64) * (size_t)d.K));
  if (!Ap || !off) return false;
  // the panels packed in parallel (with two threads, a serial packing of the flipped 64 x 800 filter of an
  // input gradient was a few percent of the pass)
  const i64 panels = (d.Cout + MR - 1) / MR;
  par_for(G * panels, imax<i64>(1, 16384 / imax<i64>(d.K * MR, 1)), [&](i64 b, i64 e, int) {
    for (i64 t = b; t < e; t++) {
      const i64 gi = t / panels, pa = t % panels;
      pack_filter_panel<T>(
          Ap + gi * fsz + pa * d.K * MR, d, pa * MR, [&](i64 o, i64 k) { return a(gi, o, k); }, MR);
    }
  });
  const bool inreg = ep.act < 0 || ep.act == A_RELU;
  if (flat) xshift_offsets(off, d);
  else tap_offsets(off, d);
  const i64 xsize = flat ? xshift_size(d) : xpad_size(d);
  const i64 ldc = panels * NRC;  // the channel tiles' transposed output: P rows of ldc
  const int NRt = one ? NR1 : NR;  // positions per tile
  const i64 ntiles = one_rows ? OneRows<T>::tasks(d, onev)
                     : flat   ? direct_flat_tasks(d, MR, NRt)
                     : rows ? direct_row_tasks(d, MR, NR)
                     : chan ? direct_chan_tasks(d, ChanBlocking<T>::chunks(d), NRC)
                            : direct_forward_tasks(d, MR, NRt);
  bool ok = true;
  // image t (n * G + gi) by thread tid; `next` the image this thread takes next (-1: none), prefetched
  auto image = [&](i64 t, int tid, bool par, i64 next) {
    const i64 n = t / G, gi = t % G;
    const T* xn = in + n * is[0] + gi * d.Cin * is[1];
    if (one_rows) {  // (reads the input in place: no padded copy)
      T* y = out + (n * out_channels + gi * d.Cout) * P;
      const T* ap = Ap + gi * fsz;
      if (par) {
        par_for(ntiles, 1, [&](i64 b0, i64 e, int) { one_rows_tiles<T>(xn, is[1], is[2], ap, d, onev, y, b0, e); });
      } else {
        one_rows_tiles<T>(xn, is[1], is[2], ap, d, onev, y, 0, ntiles);
      }
      return;
    }
    T* xpad = static_cast<T*>(scratch(tid, 4, sizeof(T) * (size_t)xsize));
    if (!xpad) {
      ok = false;
      return;
    }
    if (flat) build_xshift(xpad, xn, is[1], is[2], is[3], d);
    else build_xpad(xpad, xn, is[1], is[2], is[3], d);
    if (g_prefetch && next >= 0)
      prefetch_planes(in + next / G * is[0] + next % G * d.Cin * is[1], is[1], is[2], is[3], d);
    T* y = out + (n * out_channels + gi * d.Cout) * P;
    const T* ap = Ap + gi * fsz;
    auto post = [&](T* row, i64 n, i64 o) {
      if (ep.any()) ep.apply(row, n, gi * d.Cout + o);
    };
    if (chan) {  // into the transposed planes, then back, then the epilogue as a pass over the planes
      T* yT = static_cast<T*>(scratch(tid, 5, sizeof(T) * (size_t)(P * ldc)));
      if (!yT) {
        ok = false;
        return;
      }
      if (par) {
        par_for(ntiles, 1, [&](i64 b0, i64 e, int) { direct_chan_tiles<T>(xpad, ap, off, yT, ldc, d, b0, e); });
        par_for((P + 3) / 4, 16, [&](i64 b0, i64 e, int) {
          untranspose_planes<T>(yT, ldc, P, d.Cout, y, b0 * 4, imin(P, e * 4));
        });
      } else {
        direct_chan_tiles<T>(xpad, ap, off, yT, ldc, d, 0, ntiles);
        untranspose_planes<T>(yT, ldc, P, d.Cout, y, 0, P);
      }
      if (ep.any())
        for (i64 o = 0; o < d.Cout; o++) ep.apply(y + o * P, P, gi * d.Cout + o);
    } else if (flat || rows) {  // bias + relu (or nothing) in registers, other epilogues as a pass over the planes
      const T* b = ep.bias && inreg ? ep.bias + gi * d.Cout : nullptr;
      const bool relu = ep.act == A_RELU;
      auto run = [&](i64 b0, i64 e) {
        if (flat && one) direct_flat_tiles<T, 1, NV1>(xpad, ap, off, y, d, b0, e, b, relu);
        else if (flat) direct_flat_tiles<T>(xpad, ap, off, y, d, b0, e, b, relu);
        else direct_row_tiles<T>(xpad, ap, off, y, d, b0, e, b, relu);
      };
      if (par) par_for(ntiles, 1, [&](i64 b0, i64 e, int) { run(b0, e); });
      else run(0, ntiles);
      if (!inreg)
        for (i64 o = 0; o < d.Cout; o++) ep.apply(y + o * P, P, gi * d.Cout + o);
    } else {
      auto run = [&](i64 b0, i64 e) {
        if (one) direct_forward_tiles<T, 1, NV1>(xpad, ap, off, y, d, b0, e, post);
        else direct_forward_tiles<T>(xpad, ap, off, y, d, b0, e, post);
      };
      if (par) par_for(ntiles, 1, [&](i64 b0, i64 e, int) { run(b0, e); });
      else run(0, ntiles);
    }
  };
  const i64 tasks = N * G;
  if (tasks >= 2 * pool_threads()) {
    par_for(tasks, 1, [&](i64 b, i64 e, int tid) {
      for (i64 t = b; t < e; t++) image(t, tid, false, t + 1 < e ? t + 1 : -1);
    });
  } else {
    for (i64 t = 0; t < tasks; t++) image(t, caller, true, t + 1 < tasks ? t + 1 : -1);
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------------------
// Pointwise convolutions (1 x 1 filter, no padding, unit stride): every pass is a matrix product per image and
// group over the P = H * W positions as one axis, with nothing copied (the direct passes built a padded copy
// of every input image and ran 8-row panels over it; PyTorch's 1x1 passes ran 1.2-1.4x faster than those):
//   forward      y[n, g] (Og x P)  = W_g (Og x Cg) @ x[n, g] (Cg x P)
//   input grad   dx[n, g] (Cg x P) = W_g^T @ dy[n, g] (Og x P)
//   weight grad  dW_g (Og x Cg)    = sum_n dy[n, g] @ x[n, g]^T, in the fixed image chunks of conv_back_weight.
// Planes of under two column panels (7 x 7) run each pass as one product per group over all images instead
// (pointwise_*_images, CHAINRULE_CONV_IMAGES=0 turns them off).
// A view whose (h, w) axes do not merge into one stride takes the general paths.
CR_INLINE bool pointwise(const Geo& g) {
  return g.KH == 1 && g.KW == 1 && g.ph == 0 && g.pw == 0 && g.sh == 1 && g.sw == 1 && g.OH == g.H && g.OW == g.W;
}
// The positions stride of a [N, C, H, W] view's (h, w) axes merged, or 0 when they do not merge.
CR_INLINE i64 merged_stride(const i64* s, i64 H, i64 W) {
  if (W == 1) return H == 1 ? 1 : s[2];
  return H == 1 || s[2] == W * s[3] ? s[3] : 0;
}

// The forward epilogue on a finished block of y[n, g]: rows are channels gi * Og + i, columns positions.
template <class T>
struct PlaneEpilogue final : BlockEpilogue {
  const Epilogue<T>* ep;
  T* y;
  i64 ldy, o0;
  void block(i64 i0, i64 i1, i64 j0, i64 j1, int) const override {
    for (i64 i = i0; i < i1; i++) ep->apply(y + i * ldy + j0, j1 - j0, o0 + i);
  }
};

// Runs run(t, tid, par) for t < tasks: over the pool when there are enough tasks (each on one thread, tid its
// pool thread, par false), else one after the other on the calling thread, each split over the pool (par true).
template <class F>
void over_tasks(i64 tasks, F run) {
  if (tasks >= 2 * pool_threads()) {
    par_for(tasks, 1, [&](i64 b, i64 e, int tid) {
      for (i64 t = b; t < e; t++) run(t, tid, false);
    });
  } else {
    const int caller = pool_tid();
    for (i64 t = 0; t < tasks; t++) run(t, caller, true);
  }
}

// B of a product over all images at once: K x (N P), column j = (image j / P, position j % P), element (k, j) at
// p + (j / P) s0 + k s1 + (j % P) sp. For planes too small for a product per image (7 x 7: 49 columns, two
// column panels, the filter re-read per image): one product over N P columns keeps the filter's panels in use.
template <class T>
struct ImageColumns {
  const T* p;
  i64 s0, s1, sp, P;
  // A panel's columns are runs of consecutive positions of one image (two runs for a 32-column panel over 49-position
  // planes), copied run by run: a gather of one element per column weighed on products of small K (groups of 16
  // channels: the input gradient ran at 0.61x the products per image with the gather, 0.89-0.94x with runs).
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) {
      const int cols = (int)imin<i64>(NR, n - jp);
      const T* src[NR];
      int at[NR + 1], runs = 0;
      for (int c = 0; c < cols;) {
        const i64 j = j0 + jp + c, q = j % P;
        src[runs] = p + (j / P) * s0 + q * sp + k0 * s1;
        at[runs++] = c;
        c += (int)imin<i64>(cols - c, P - q);
      }
      at[runs] = cols;
      for (i64 k = 0; k < kc; k++) {
        T* d = dst + k * NR;
        const i64 o = k * s1;
        for (int r = 0; r < runs; r++) {
          const T* s = src[r] + o;
          T* dr = d + at[r];
          const int len = at[r + 1] - at[r];
          if (sp == 1)
            for (int c = 0; c < len; c++) dr[c] = s[c];
          else
            for (int c = 0; c < len; c++) dr[c] = s[c * sp];
        }
        for (int c = cols; c < NR; c++) d[c] = T(0);
      }
    }
  }
};

// The forward pass of a pointwise layer on small planes: per group one product W_g (Og x Cg) @ [x[0, g] .. x[N-1,
// g]] (Cg x N P) into a contiguous scratch [Og, N P], then copied into y's planes with the epilogue.
template <class T>
bool pointwise_forward_images(const T* xp, const i64* xs, i64 xps, const WeightMat<T>& wm, T* out, const Geo& g,
                              const Epilogue<T>& ep) {
  const i64 P = g.H * g.W, NP = g.N * P;
  T* tmp = static_cast<T*>(scratch(pool_tid(), 5, sizeof(T) * (size_t)(g.Og * NP)));
  if (!tmp) return false;
  for (i64 gi = 0; gi < g.G; gi++) {
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.rs, wm.cs};
    la.direct = true;
    ImageColumns<T> lb{xp + gi * g.Cg * xs[1], xs[0], xs[1], xps, P};
    if (!gemm<T>(g.Og, NP, g.Cg, la, lb, tmp, NP, true, false)) return false;
    par_for(g.N * g.Og, imax<i64>(1, 16384 / imax<i64>(P, 1)), [&](i64 b, i64 e, int) {
      for (i64 t = b; t < e; t++) {
        const i64 n = t / g.Og, o = t % g.Og;
        T* y = out + (n * g.O + gi * g.Og + o) * P;
        std::memcpy(y, tmp + o * NP + n * P, sizeof(T) * (size_t)P);
        if (ep.any()) ep.apply(y, P, gi * g.Og + o);
      }
    });
  }
  return true;
}

template <class T>
bool pointwise_forward(const T* xp, const i64* xs, i64 xps, const WeightMat<T>& wm, T* out, const Geo& g,
                       const Epilogue<T>& ep) {
  const i64 P = g.H * g.W;
  bool ok = true;
  over_tasks(g.N * g.G, [&](i64 t, int, bool par) {
    const i64 n = t / g.G, gi = t % g.G;
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.rs, wm.cs};
    la.direct = true;
    StridedMat<T> lb{xp + n * xs[0] + gi * g.Cg * xs[1], xs[1], xps};
    T* y = out + (n * g.O + gi * g.Og) * P;
    PlaneEpilogue<T> pe;
    pe.ep = &ep, pe.y = y, pe.ldy = P, pe.o0 = gi * g.Og;
    if (!gemm<T>(g.Og, P, g.Cg, la, lb, y, P, par, false, ep.any() ? &pe : nullptr)) ok = false;
  });
  return ok;
}

// The input gradient of a pointwise layer on small planes, as pointwise_forward_images: per group one product
// W_g^T (Cg x Og) @ [dy[0, g] .. dy[N-1, g]] (Og x N P) into a contiguous scratch [Cg, N P], then copied into dx's
// planes. A product per image packed the whole filter (W_g^T, a transposed copy) again for every 49 columns; on
// [32, 2048, 7, 7] dy into 512 channels this ran 138 against 87 GFLOP/s, into 2048 channels from 512 140 against
// 80 (alternated, Intel Xeon, 1 thread).
template <class T>
bool pointwise_back_input_images(const T* dp, const i64* ds, i64 dps, const WeightMat<T>& wm, T* out, const Geo& g) {
  const i64 P = g.H * g.W, NP = g.N * P;
  T* tmp = static_cast<T*>(scratch(pool_tid(), 5, sizeof(T) * (size_t)(g.Cg * NP)));
  if (!tmp) return false;
  for (i64 gi = 0; gi < g.G; gi++) {
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.cs, wm.rs};  // W_g^T: element (c, o) = w[g*Og + o, c]
    ImageColumns<T> lb{dp + gi * g.Og * ds[1], ds[0], ds[1], dps, P};
    if (!gemm<T>(g.Cg, NP, g.Og, la, lb, tmp, NP, true, false)) return false;
    par_for(g.N * g.Cg, imax<i64>(1, 16384 / imax<i64>(P, 1)), [&](i64 b, i64 e, int) {
      for (i64 t = b; t < e; t++) {
        const i64 n = t / g.Cg, c = t % g.Cg;
        std::memcpy(out + (n * g.C + gi * g.Cg + c) * P, tmp + c * NP + n * P, sizeof(T) * (size_t)P);
      }
    });
  }
  return true;
}

template <class T>
bool pointwise_back_input(const T* dp, const i64* ds, i64 dps, const WeightMat<T>& wm, T* out, const Geo& g) {
  const i64 P = g.H * g.W;
  bool ok = true;
  over_tasks(g.N * g.G, [&](i64 t, int, bool par) {
    const i64 n = t / g.G, gi = t % g.G;
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.cs, wm.rs};  // W_g^T: element (c, o) = w[g*Og + o, c]
    StridedMat<T> lb{dp + n * ds[0] + gi * g.Og * ds[1], ds[1], dps};
    if (!gemm<T>(g.Cg, P, g.Og, la, lb, out + (n * g.C + gi * g.Cg) * P, P, par, false)) ok = false;
  });
  return ok;
}

// A or B of a product whose inner dimension runs over all images: K = N P, k = (image k / P, position k % P), the
// other axis channels. Element (i, k) of A, or (k, j) of B with j for i, is at p + i s1 + (k / P) s0 + (k % P) sp.
// Each image's stretch of k is one run of positions, transposed into the panel (contiguous when sp = 1).
template <class T>
struct ImageDepth {
  const T* p;
  i64 s0, s1, sp, P;
  // R channels from c0 (n <= R real, the rest zeros) over k0 .. k0 + kc into one R-interleaved panel.
  template <int R>
  void panel(T* dst, i64 c0, int n, i64 k0, i64 kc) const {
    for (i64 k = k0; k < k0 + kc;) {
      const i64 img = k / P, q = k % P, len = imin(P - q, k0 + kc - k);
      const T* base = p + c0 * s1 + img * s0 + q * sp;
      T* d = dst + (k - k0) * R;
      if (sp == 1) {
        pack_interleaved<T, R>(d, base, s1, len, n);
      } else {
        for (i64 t = 0; t < len; t++) {
          int r = 0;
          for (; r < n; r++) d[t * R + r] = base[r * s1 + t * sp];
          for (; r < R; r++) d[t * R + r] = T(0);
        }
      }
      k += len;
    }
  }
  void pack_a(T* dst, i64 i0, i64 m, i64 k0, i64 kc) const {
    constexpr int MR = Blocking<T>::MR;
    for (i64 ip = 0; ip < m; ip += MR, dst += kc * MR) panel<MR>(dst, i0 + ip, (int)imin<i64>(MR, m - ip), k0, kc);
  }
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) panel<NR>(dst, j0 + jp, (int)imin<i64>(NR, n - jp), k0, kc);
  }
};

// The weight gradient of a pointwise layer on small planes: per group one product dy[:, g] (Og x N P) @ x[:, g]^T
// (N P x Cg) with the images in the inner dimension (ImageDepth), split over the pool inside the product. The
// fixed image chunks of pointwise_back_weight ran one product per image, each of depth P (49 for 7 x 7) reading
// and writing its chunk's whole dW_g (4 MB for 2048 x 512), and then summed the chunks' partials: 147 against
// 116-122 GFLOP/s for those two 7 x 7 layers (alternated, Intel Xeon, 1 thread). Here every element of dW is one
// sum over k in order (the product's K slices, then k within a slice), whatever the thread count.
template <class T>
bool pointwise_back_weight_images(const T* xp, const i64* xs, i64 xps, const T* dp, const i64* ds, i64 dps, T* out,
                                  const Geo& g) {
  const i64 P = g.H * g.W;
  for (i64 gi = 0; gi < g.G; gi++) {
    ImageDepth<T> la{dp + gi * g.Og * ds[1], ds[0], ds[1], dps, P};
    ImageDepth<T> lb{xp + gi * g.Cg * xs[1], xs[0], xs[1], xps, P};
    if (!gemm<T>(g.Og, g.Cg, g.N * P, la, lb, out + gi * g.Og * g.Cg, g.Cg, true, false)) return false;
  }
  return true;
}

template <class T>
bool pointwise_back_weight(const T* xp, const i64* xs, i64 xps, const T* dp, const i64* ds, i64 dps, T* out,
                           const Geo& g, i64 chunks, i64 per) {
  const i64 P = g.H * g.W, wsize = g.O * g.Cg;
  T* part = chunks > 1 ? static_cast<T*>(scratch(pool_tid(), 3, sizeof(T) * (size_t)(chunks * wsize))) : out;
  if (!part) return false;
  bool ok = true;
  over_tasks(chunks * g.G, [&](i64 t, int, bool par) {
    const i64 chunk = t / g.G, gi = t % g.G;
    T* c = part + chunk * wsize + gi * g.Og * g.Cg;
    const i64 n0 = chunk * per, n1 = imin(g.N, n0 + per);
    if (n1 <= n0 || P == 0) std::memset(c, 0, sizeof(T) * (size_t)(g.Og * g.Cg));
    for (i64 n = n0; n < n1 && P > 0; n++) {
      StridedMat<T> la{dp + n * ds[0] + gi * g.Og * ds[1], ds[1], dps};
      la.direct = true;
      StridedMat<T> lb{xp + n * xs[0] + gi * g.Cg * xs[1], xps, xs[1]};  // x[n, g]^T: element (p, c)
      if (!gemm<T>(g.Og, g.Cg, P, la, lb, c, g.Cg, par, n > n0)) ok = false;
    }
  });
  if (!ok || chunks == 1) return ok;
  // out = 0 + part_0 + part_1 + ... in chunk order (one sum from zero: -0 partials give +0)
  par_for(wsize, 8192, [&](i64 b, i64 e, int) {
    for (i64 i = b; i < e; i++) {
      T s = T(0);
      for (i64 c = 0; c < chunks; c++) s += part[c * wsize + i];
      out[i] = s;
    }
  });
  return true;
}

template <class T>
bool conv_forward(const View& x, const View& w, T* out, const Geo& g, const View* bias, int act) {
  constexpr int NR = Blocking<T>::NR;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const i64* xs = x.strides;
  const WeightMat<T> wm = weight_matrix<T>(w, g, 3);
  if (!wm.p) return false;
  Epilogue<T> ep{nullptr, act};
  if (bias) {  // a contiguous copy of the O bias values
    T* bc = static_cast<T*>(scratch(pool_tid(), 6, sizeof(T) * (size_t)imax<i64>(g.O, 1)));
    if (!bc) return false;
    const T* bp = static_cast<const T*>(bias->data) + bias->offset;
    for (i64 o = 0; o < g.O; o++) bc[o] = bp[o * bias->strides[0]];
    ep.bias = bc;
  }
  // (planes of under two column panels, e.g. 7 x 7, run faster as direct passes: a product per image then
  // re-reads the whole filter for a few columns; measured 34 against 31 ms for [32, 512, 7, 7] -> 2048 channels)
  if (pointwise(g)) {
    const i64 xps = merged_stride(xs, g.H, g.W);
    if (xps != 0 && g.H * g.W >= 2 * NR) return pointwise_forward<T>(xp, xs, xps, wm, out, g, ep);
    if (xps != 0 && g_images && g.N > 1 && (__int128)g.Og * g.N * g.H * g.W <= ((__int128)1 << 26))
      return pointwise_forward_images<T>(xp, xs, xps, wm, out, g, ep);
  }
  if (direct_ok(g)) {
    const DGeo d = dgeo<T>(g.Cg, g.H, g.W, g.Og, g.KH, g.KW, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW, g.sh, g.sw);
    return direct_pass<T>(
        xp, xs, g.N, g.G, d, out, g.O, [&](i64 gi, i64 o, i64 k) { return wm.p[(gi * g.Og + o) * wm.rs + k * wm.cs]; },
        ep);
  }
  const i64 P = g.OH * g.OW, Kd = g.Cg * g.KH * g.KW;
  const i64 Ppad = (P + NR - 1) / NR * NR;
  const ConvColumns cm{Ppad, P, g.O * P};
  bool ok = true;
  auto run = [&](i64 gi, bool par) {
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.rs, wm.cs};
    Im2colCols<T> lb{xp + gi * g.Cg * xs[1], xs[0], xs[1], xs[2], xs[3], Ppad, &g};
    if (!gemm_mapped<T>(g.Og, g.N * Ppad, Kd, la, lb, out + gi * g.Og * P, P, cm, par, false)) ok = false;
  };
  over_tasks(g.G, [&](i64 t, int, bool par) { run(t, par); });
  if (ok && ep.any()) {  // the epilogue as a pass over each (image, channel) plane
    par_for(g.N * g.O, imax<i64>(1, 32768 / imax<i64>(P, 1)), [&](i64 b, i64 e, int) {
      for (i64 t = b; t < e; t++) ep.apply(out + t * P, P, t % g.O);
    });
  }
  return ok;
}

// Unit-stride weight gradient (conv_direct.h). Same chunking as below: fixed chunks of images, each with its
// own partial sums (tap-major: part[k * LD + o]), summed in chunk order, so results do not depend on the
// thread count. With few chunks the tap tiles of each image are split over the pool instead, which keeps
// every element's summation order.
template <class T, int MR, int NV>
bool conv_back_weight_direct(const T* xp, const i64* xs, const T* dp, const i64* ds, T* out, const Geo& g,
                             i64 chunks, i64 per) {
  constexpr int NR = NV * Simd<T>::W;
  const DGeo d = dgeo<T>(g.Cg, g.H, g.W, g.Og, g.KH, g.KW, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW, g.sh, g.sw);
  const int caller = pool_tid();
  const i64 LD = (g.Og + NR - 1) / NR * NR, ktiles = (d.K + MR - 1) / MR, psize = ktiles * MR * LD;
  T* part = static_cast<T*>(scratch(caller, 3, sizeof(T) * (size_t)(chunks * g.G * psize)));
  i64* off = static_cast<i64*>(scratch(caller, 7, sizeof(i64) * (size_t)d.K));
  if (!part || !off) return false;
  tap_offsets(off, d);
  bool ok = true;
  auto task = [&](i64 t, int tid, bool par) {
    const i64 chunk = t / g.G, gi = t % g.G;
    T* acc = part + t * psize;
    std::memset(acc, 0, sizeof(T) * (size_t)psize);
    T* xpad = static_cast<T*>(scratch(tid, 4, sizeof(T) * (size_t)xpad_size(d)));
    T* dyT = static_cast<T*>(scratch(tid, 5, sizeof(T) * (size_t)imax<i64>(g.OH * g.OW * LD, 1)));
    if (!xpad || !dyT) {
      ok = false;
      return;
    }
    for (i64 n = chunk * per; n < imin(g.N, (chunk + 1) * per); n++) {
      build_xpad(xpad, xp + n * xs[0] + gi * g.Cg * xs[1], xs[1], xs[2], xs[3], d);
      transpose_dy(dyT, LD, dp + n * ds[0] + gi * g.Og * ds[1], ds[1], ds[2], ds[3], d);
      if (par)
        par_for(ktiles, 1, [&](i64 b, i64 e, int) { direct_wgrad_image<T, MR, NV>(xpad, off, dyT, LD, d, acc, b, e); });
      else
        direct_wgrad_image<T, MR, NV>(xpad, off, dyT, LD, d, acc, 0, ktiles);
    }
  };
  over_tasks(chunks * g.G, task);
  if (!ok) return false;
  // out[(gi * Og + o) * K + k] = sum over chunks of part[(chunk, gi)][k * LD + o], in two passes: the chunks'
  // partials summed into chunk 0's in chunk order (0 + p0 + p1 + ..., as one sum from zero: -0 partials give
  // +0), streaming and vectorised; then chunk 0's tap-major partials transposed into out. (One strided scalar
  // sum per element cost a tenth of a 32 -> 64 channel 5x5 weight gradient.)
  const i64 total = g.G * psize;  // chunk c's partials start at part + c * total
  par_for(total, 8192, [&](i64 b, i64 e, int) {
    for (i64 i = b; i < e; i++) part[i] = T(0) + part[i];
    for (i64 c = 1; c < chunks; c++) {
      const T* q = part + c * total;
      for (i64 i = b; i < e; i++) part[i] += q[i];
    }
  });
  par_for(g.O, imax<i64>(1, 8192 / imax<i64>(d.K, 1)), [&](i64 b, i64 e, int) {
    for (i64 oa = b; oa < e; oa++) {
      const T* src = part + (oa / g.Og) * psize + oa % g.Og;
      T* dst = out + oa * d.K;
      for (i64 k = 0; k < d.K; k++) dst[k] = src[k * LD];
    }
  });
  return true;
}

// Unit-stride weight gradient with few taps (conv_direct.h, small_wgrad_tile), dy's planes flat: per (image
// chunk, group) task, each image's shifted planes, then every (channel tile, tap tile) of it into the task's
// partial sums (a 16-byte block of lanes per dW element, overwritten by the first image), then their lane sums
// into the chunk's partial dW; partials summed in chunk order. With few tasks the tiles of each image are split over the pool
// (each tile's summation order is fixed, so results do not depend on the thread count).
template <class T, int MK>
bool conv_back_weight_small(const T* xp, const i64* xs, const T* dp, const i64* ds, T* out, const Geo& g,
                            i64 chunks, i64 per) {
  constexpr int MO = SmallWgrad<T>::MO;
  const DGeo d = dgeo<T>(g.Cg, g.H, g.W, g.Og, g.KH, g.KW, g.ph, g.pw, g.dh, g.dw, g.OH, g.OW);
  const int caller = pool_tid();
  const i64 ktiles = (d.K + MK - 1) / MK, ntiles = (g.Og + MO - 1) / MO * ktiles, wsize = g.Og * d.K;
  const i64 asz = ntiles * MO * MK * SmallWgrad<T>::BL;
  T* part = static_cast<T*>(scratch(caller, 3, sizeof(T) * (size_t)(chunks * g.G * wsize)));
  i64* off = static_cast<i64*>(scratch(caller, 7, sizeof(i64) * (size_t)d.K));
  if (!part || !off) return false;
  xshift_offsets(off, d);
  bool ok = true;
  auto task = [&](i64 t, int tid, bool par) {
    const i64 chunk = t / g.G, gi = t % g.G;
    const i64 n0 = chunk * per, n1 = imin(g.N, (chunk + 1) * per);
    if (n1 <= n0) {  // a chunk past the last image (N = 9: 8 chunks of 2)
      std::memset(part + t * wsize, 0, sizeof(T) * (size_t)wsize);
      return;
    }
    T* xsh = static_cast<T*>(scratch(tid, 4, sizeof(T) * (size_t)xshift_size(d)));
    T* acc = static_cast<T*>(scratch(tid, 5, sizeof(T) * (size_t)asz));
    if (!xsh || !acc) {
      ok = false;
      return;
    }
    for (i64 n = n0; n < n1; n++) {
      build_xshift(xsh, xp + n * xs[0] + gi * g.Cg * xs[1], xs[1], xs[2], xs[3], d);
      if (n + 1 < n1 && g_prefetch) prefetch_planes(xp + (n + 1) * xs[0] + gi * g.Cg * xs[1], xs[1], xs[2], xs[3], d);
      const T* dy = dp + n * ds[0] + gi * g.Og * ds[1];
      const T* next = n + 1 < n1 ? dy + ds[0] : nullptr;  // this task's next image
      if (par)
        par_for(ntiles, 1, [&](i64 b, i64 e, int) {
          small_wgrad_tiles<T, MK>(xsh, dy, off, ds[1], d, acc, b, e, n == n0, nullptr, g_prefetch);
        });
      else
        small_wgrad_tiles<T, MK>(xsh, dy, off, ds[1], d, acc, 0, ntiles, n == n0, next, g_prefetch);
    }
    small_wgrad_reduce<T, MK>(acc, d, part + t * wsize);
  };
  over_tasks(chunks * g.G, task);
  if (!ok) return false;
  // out[(gi * Og + o) * K + k] = sum over chunks of part[(chunk, gi)][o * K + k]
  par_for(g.O * d.K, 4096, [&](i64 b, i64 e, int) {
    for (i64 i = b; i < e; i++) {
      const i64 gi = i / wsize, r = i % wsize;
      T s = 0;
      for (i64 c = 0; c < chunks; c++) s += part[(c * g.G + gi) * wsize + r];
      out[i] = s;
    }
  });
  return true;
}

template <class T>
bool conv_back_weight(const View& x, const View& dy, T* out, const Geo& g) {
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const T* dp = static_cast<const T*>(dy.data) + dy.offset;
  const i64* xs = x.strides;
  const i64* ds = dy.strides;
  const i64 CKK = g.Cg * g.KH * g.KW, P = g.OH * g.OW;
  // Fixed chunks of images (independent of the thread count, so results are reproducible); each chunk
  // computes partial weight gradients for every group, and the partials are summed in chunk order.
  const i64 chunks = imin<i64>(g.N, 8);
  const i64 per = (g.N + chunks - 1) / chunks;
  if (pointwise(g) && chunks > 0) {
    const i64 xps = merged_stride(xs, g.H, g.W), dps = merged_stride(ds, g.H, g.W);
    // (planes under two column panels, as the forward pass: 14 x 14 planes ran 0.90-1.02x the chunked products).
    // It packs dy (Og x N P, a transpose) where the products per image read it in place, a copy amortised over
    // Cg columns: 32 -> 512 channels ran at 0.85x; with 64 and more it ran 0.96-1.5x, and with Og <= Cg in groups
    // of 16 x 16 channels, whose per-image products were tiny, 1.2-1.9x (1 thread, Intel Xeon, a loaded host).
    if (xps != 0 && dps != 0 && g.H * g.W < 2 * Blocking<T>::NR && g_images && g.N > 1 &&
        (g.Cg >= 64 || g.Og <= g.Cg))
      return pointwise_back_weight_images<T>(xp, xs, xps, dp, ds, dps, out, g);
    if (xps != 0 && dps != 0) return pointwise_back_weight<T>(xp, xs, xps, dp, ds, dps, out, g, chunks, per);
  }
  // dy's planes flat (element (oh, ow) at oh * OW + ow) for the few-taps kernel
  const bool flat = (g.OW == 1 || ds[3] == 1) && (g.OH == 1 || ds[2] == g.OW);
  if (g.sh == 1 && g.sw == 1 && g_small && CKK <= kSmallTaps && flat) {
    switch (SmallWgrad<T>::mk(CKK)) {
      case 3: return conv_back_weight_small<T, 3>(xp, xs, dp, ds, out, g, chunks, per);
      case 4: return conv_back_weight_small<T, 4>(xp, xs, dp, ds, out, g, chunks, per);
      case 5: return conv_back_weight_small<T, 5>(xp, xs, dp, ds, out, g, chunks, per);
      default: return conv_back_weight_small<T, 6>(xp, xs, dp, ds, out, g, chunks, per);
    }
  }
  if (direct_ok(g)) {
#if CR_ISA_LEVEL == 2
    if (g.Og >= 64) return conv_back_weight_direct<T, 6, 4>(xp, xs, dp, ds, out, g, chunks, per);
#endif
    return conv_back_weight_direct<T, DirectBlocking<T>::MR, 2>(xp, xs, dp, ds, out, g, chunks, per);
  }
  const i64 wsize = g.O * CKK;
  T* part = chunks > 1 ? static_cast<T*>(scratch(pool_tid(), 3, sizeof(T) * (size_t)(chunks * wsize))) : out;
  if (!part) return false;
  bool ok = true;
  auto run = [&](i64 chunk, i64 gi, bool par) {
    const i64 n0 = chunk * per, n1 = imin(g.N, n0 + per);
    if (n1 <= n0) {
      std::memset(part + chunk * wsize + gi * g.Og * CKK, 0, sizeof(T) * (size_t)(g.Og * CKK));
      return;
    }
    DyRows<T> la{dp + n0 * ds[0] + gi * g.Og * ds[1], ds[0], ds[1], ds[2], ds[3], &g};
    Im2colRows<T> lb{xp + n0 * xs[0] + gi * g.Cg * xs[1], xs[0], xs[1], xs[2], xs[3], &g};
    T* c = part + chunk * wsize + gi * g.Og * CKK;
    if (!gemm<T>(g.Og, CKK, (n1 - n0) * P, la, lb, c, CKK, par, false)) ok = false;
  };
  over_tasks(chunks * g.G, [&](i64 t, int, bool par) { run(t / g.G, t % g.G, par); });
  if (chunks > 1) {
    par_for(wsize, 4096, [&](i64 b, i64 e, int) {
      for (i64 i = b; i < e; i++) {
        T s = part[i];
        for (i64 c = 1; c < chunks; c++) s += part[c * wsize + i];
        out[i] = s;
      }
    });
  }
  return ok;
}

// dx[c, ih, iw] += cols[(c, kh, kw), (oh, ow)] over the window positions inside the image.
template <class T>
void col2im(const T* cols, T* dx, const Geo& g) {
  const i64 P = g.OH * g.OW;
  for (i64 c = 0; c < g.Cg; c++)
    for (i64 kh = 0; kh < g.KH; kh++)
      for (i64 kw = 0; kw < g.KW; kw++) {
        const T* row = cols + ((c * g.KH + kh) * g.KW + kw) * P;
        T* plane = dx + c * g.H * g.W;
        const i64 iw0 = kw * g.dw - g.pw;
        // ow range with 0 <= ow*sw + iw0 < W
        const i64 lo = iw0 >= 0 ? 0 : (-iw0 + g.sw - 1) / g.sw;
        const i64 hi = imin(g.OW, g.W - iw0 <= 0 ? 0 : (g.W - iw0 + g.sw - 1) / g.sw);
        for (i64 oh = 0; oh < g.OH; oh++) {
          const i64 ih = oh * g.sh - g.ph + kh * g.dh;
          if (!in_range(ih, g.H)) continue;
          T* drow = plane + ih * g.W + iw0;
          const T* srow = row + oh * g.OW;
          if (g.sw == 1)
            for (i64 ow = lo; ow < hi; ow++) drow[ow] += srow[ow];
          else
            for (i64 ow = lo; ow < hi; ow++) drow[ow * g.sw] += srow[ow];
        }
      }
}

// Whether every element of the 4-d view w is finite (a pass over the filter, small next to the convolution).
template <class T>
bool all_finite(const View& w) {
  const T* p = static_cast<const T*>(w.data) + w.offset;
  const i64* s = w.strides;
  T acc = 0;  // x * 0 is 0 for finite x and NaN for Inf / NaN
  for (i64 a = 0; a < w.shape[0]; a++)
    for (i64 b = 0; b < w.shape[1]; b++)
      for (i64 c = 0; c < w.shape[2]; c++) {
        const T* row = p + a * s[0] + b * s[1] + c * s[2];
        for (i64 d = 0; d < w.shape[3]; d++) acc += row[d * s[3]] * T(0);
      }
  return acc == acc;
}

template <class T>
bool conv_back_input(const View& dy, const View& w, T* out, const Geo& g) {
  const T* dp = static_cast<const T*>(dy.data) + dy.offset;
  const i64* ds = dy.strides;
  const WeightMat<T> wm = weight_matrix<T>(w, g, 3);
  if (!wm.p) return false;
  if (pointwise(g)) {
    const i64 dps = merged_stride(ds, g.H, g.W);
    // (the planes of conv_forward's one product over all images, under two column panels; on 14 x 14 planes it
    // ran 0.93-1.18x the product per image, within the host's noise, so those stay per image). Its result goes
    // through a scratch, a copy amortised over the Og-deep sums: with 16 output channels per group it ran at
    // 0.89-0.94x the products per image, with 32 at 0.98-1.02x, with 64 and more at 1.07-1.8x (1 thread, Intel
    // Xeon, a loaded host: once 0.89x for 64, in a run where passes with the same code in both builds gave 0.81x).
    if (dps != 0 && g.H * g.W < 2 * Blocking<T>::NR && g_images && g.N > 1 && g.Og >= 64 &&
        (__int128)g.Cg * g.N * g.H * g.W <= ((__int128)1 << 26))
      return pointwise_back_input_images<T>(dp, ds, dps, wm, out, g);
    if (dps != 0) return pointwise_back_input<T>(dp, ds, dps, wm, out, g);
  }
  // Unit stride: dx is a unit-stride convolution of dy, padded by d(K-1) - p, with the filter flipped in
  // space and its channel axes swapped: w'[c, o, kh, kw] = w[o, c, KH-1-kh, KW-1-kw].
  // That pass multiplies the filter by dy's padding zeros too, which turns an infinite or NaN weight into NaN
  // where PyTorch (and js) add nothing: the input gradient only sums taps that meet real dy positions. So
  // filters with a non-finite weight take the GEMM + col2im path below, which never touches padding.
  // The padded dy planes must also stay within the element limit (a dilated filter with a large padding
  // pads dy by up to 2^32 on each side even when dy and dx are small); otherwise the GEMM path runs.
  const i64 ph2 = g.dh * (g.KH - 1) - g.ph, pw2 = g.dw * (g.KW - 1) - g.pw;
  const bool fits = (__int128)(g.Og + 1) * ((__int128)g.OH + 2 * ph2 + 1) * ((__int128)g.OW + 2 * pw2 + 1) <=
                    ((__int128)1 << 48);
  if (g.sh == 1 && g.sw == 1 && ph2 >= 0 && pw2 >= 0 && fits && all_finite<T>(w)) {
    const DGeo d = dgeo<T>(g.Og, g.OH, g.OW, g.Cg, g.KH, g.KW, ph2, pw2, g.dh, g.dw, g.H, g.W);
    const i64 KK = g.KH * g.KW;
    return direct_pass<T>(dp, ds, g.N, g.G, d, out, g.C, [&](i64 gi, i64 c, i64 k) {
      const i64 o = k / KK, r = KK - 1 - k % KK;  // r = (KH-1-kh) * KW + (KW-1-kw)
      return wm.p[(gi * g.Og + o) * wm.rs + (c * KK + r) * wm.cs];
    });
  }
  const i64 CKK = g.Cg * g.KH * g.KW, P = g.OH * g.OW, HW = g.H * g.W;
  if ((__int128)CKK * P > ((__int128)1 << 48)) return false;  // its column buffer; reported as out of memory
  // dy[n, o] as a matrix row needs (oh, ow) to merge into one stride; otherwise go through a copy.
  const bool merged = g.OH == 1 || ds[2] == g.OW * ds[3];
  const i64 tasks = g.N * g.G;
  bool ok = true;
  auto run = [&](i64 t, bool par) {
    const i64 n = t / g.G, gi = t % g.G;
    const int tid = pool_tid();
    T* cols = static_cast<T*>(scratch(tid, 4, sizeof(T) * (size_t)imax<i64>(CKK * P, 1)));
    const T* dyn = dp + n * ds[0] + gi * g.Og * ds[1];
    i64 rs = ds[1], cs = ds[3];
    if (!merged) {
      T* tmp = static_cast<T*>(scratch(tid, 5, sizeof(T) * (size_t)imax<i64>(g.Og * P, 1)));
      if (!tmp) {
        ok = false;
        return;
      }
      for (i64 o = 0; o < g.Og; o++)
        for (i64 oh = 0; oh < g.OH; oh++)
          for (i64 ow = 0; ow < g.OW; ow++) tmp[(o * g.OH + oh) * g.OW + ow] = dyn[o * ds[1] + oh * ds[2] + ow * ds[3]];
      dyn = tmp;
      rs = P;
      cs = 1;
    }
    if (!cols) {
      ok = false;
      return;
    }
    // W_g^T: element (k, o) = w[g*Og + o, k]
    StridedMat<T> la{wm.p + gi * g.Og * wm.rs, wm.cs, wm.rs};
    StridedMat<T> lb{dyn, rs, cs};
    if (!gemm<T>(CKK, P, g.Og, la, lb, cols, P, par, false)) ok = false;
    T* dx = out + (n * g.C + gi * g.Cg) * HW;
    std::memset(dx, 0, sizeof(T) * (size_t)(g.Cg * HW));
    col2im(cols, dx, g);
  };
  over_tasks(tasks, [&](i64 t, int, bool par) { run(t, par); });
  return ok;
}

template <class T>
Err conv_float(int kind, const View& p, const View& q, T* out, const Geo& g, const View* bias, int act) {
  bool ok;
  if (kind == 0) ok = conv_forward<T>(p, q, out, g, bias, act);
  else if (kind == 1) ok = conv_back_input<T>(p, q, out, g);
  else ok = conv_back_weight<T>(p, q, out, g);
  return ok ? nullptr : "conv2d: out of memory";
}

// Direct loops for int32 (float64 sums stored with ToInt32, as the js backend). Element (n, o, oh, ow) of y
// pairs with x[n, g*Cg + c, ih, iw] and w[o, c, kh, kw]; each kind accumulates into its own operand.
void conv_int(int kind, const View& p, const View& q, int32_t* out, const Geo& g) {
  const int32_t* P = static_cast<const int32_t*>(p.data) + p.offset;
  const int32_t* Q = static_cast<const int32_t*>(q.data) + q.offset;
  const View& xv = kind == 1 ? q : p;  // unused for kind 1 except strides of w
  (void)xv;
  i64 size = kind == 0 ? g.N * g.O * g.OH * g.OW : kind == 1 ? g.N * g.C * g.H * g.W : g.O * g.Cg * g.KH * g.KW;
  double* acc = static_cast<double*>(scratch(pool_tid(), 3, sizeof(double) * (size_t)imax<i64>(size, 1)));
  if (!acc) return;  // reported by scratch_failed()
  for (i64 i = 0; i < size; i++) acc[i] = 0;
  for (i64 n = 0; n < g.N; n++)
    for (i64 o = 0; o < g.O; o++) {
      const i64 gi = o / g.Og;
      for (i64 c = 0; c < g.Cg; c++)
        for (i64 kh = 0; kh < g.KH; kh++)
          for (i64 kw = 0; kw < g.KW; kw++)
            for (i64 oh = 0; oh < g.OH; oh++) {
              const i64 ih = oh * g.sh - g.ph + kh * g.dh;
              if (!in_range(ih, g.H)) continue;
              for (i64 ow = 0; ow < g.OW; ow++) {
                const i64 iw = ow * g.sw - g.pw + kw * g.dw;
                if (!in_range(iw, g.W)) continue;
                const i64 ch = gi * g.Cg + c;
                if (kind == 0) {
                  const double xv2 = P[n * p.strides[0] + ch * p.strides[1] + ih * p.strides[2] + iw * p.strides[3]];
                  const double wv = Q[o * q.strides[0] + c * q.strides[1] + kh * q.strides[2] + kw * q.strides[3]];
                  acc[((n * g.O + o) * g.OH + oh) * g.OW + ow] += xv2 * wv;
                } else if (kind == 1) {
                  const double dyv = P[n * p.strides[0] + o * p.strides[1] + oh * p.strides[2] + ow * p.strides[3]];
                  const double wv = Q[o * q.strides[0] + c * q.strides[1] + kh * q.strides[2] + kw * q.strides[3]];
                  acc[((n * g.C + ch) * g.H + ih) * g.W + iw] += dyv * wv;
                } else {
                  const double xv2 = P[n * p.strides[0] + ch * p.strides[1] + ih * p.strides[2] + iw * p.strides[3]];
                  const double dyv = Q[n * q.strides[0] + o * q.strides[1] + oh * q.strides[2] + ow * q.strides[3]];
                  acc[((o * g.Cg + c) * g.KH + kh) * g.KW + kw] += xv2 * dyv;
                }
              }
            }
    }
  for (i64 i = 0; i < size; i++) out[i] = to_int32(acc[i]);
}

// The forward epilogue over an all-zero output: out[n, o] = act(bias[o]) (only called for the forward pass).
template <class T>
void conv_empty_epilogue(T* out, const Geo& g, const View* bias, int act) {
  if (!bias && act < 0) return;
  const T* bp = bias ? static_cast<const T*>(bias->data) + bias->offset : nullptr;
  const i64 P = g.OH * g.OW;
  for (i64 t = 0; t < g.N * g.O; t++) {
    const i64 o = t % g.O;
    bias_act_row<T>(out + t * P, P, bp ? bp[o * bias->strides[0]] : T(0), act);
  }
}

}  // namespace

Err conv2d(int kind, const View& p, const View& q, const Out& out, const int64_t* shape, const ConvParams& cp,
           const View* bias, int act) {
  if (p.ndim != 4 || q.ndim != 4) return "conv2d: operands must have rank 4";
  if (p.dtype != q.dtype || p.dtype != out.dtype) return "conv2d: operands and out must share a dtype";
  // Recover x, w and y shapes from (p, q, out shape) for each kind.
  const i64* xs = kind == 1 ? shape : p.shape;
  const i64* ws = kind == 2 ? shape : q.shape;
  const i64* ys = kind == 0 ? shape : kind == 1 ? p.shape : q.shape;
  Geo g;
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.O = ws[0], g.Cg = ws[1], g.KH = ws[2], g.KW = ws[3];
  g.OH = ys[2], g.OW = ys[3];
  g.G = cp.groups;
  g.sh = cp.sh, g.sw = cp.sw, g.ph = cp.ph, g.pw = cp.pw, g.dh = cp.dh, g.dw = cp.dw;
  if (g.G < 1 || (__int128)g.Cg * g.G != g.C || g.O % g.G != 0 || ys[0] != g.N || ys[1] != g.O || g.sh < 1 || g.sw < 1)
    return "conv2d: inconsistent shapes or parameters";
  g.Og = g.O / g.G;
  const char* small = std::getenv("CHAINRULE_CONV_SMALL");
  g_small = !(small && small[0] == '0');
  const char* pf = std::getenv("CHAINRULE_CONV_PREFETCH");
  g_prefetch = !(pf && pf[0] == '0');
  const char* images = std::getenv("CHAINRULE_CONV_IMAGES");
  g_images = !(images && images[0] == '0');
  const char* phase = std::getenv("CHAINRULE_CONV_PHASE");
  g_phase = !(phase && phase[0] == '0');
  const char* onerows = std::getenv("CHAINRULE_CONV_ONEROWS");
  g_onerows = !(onerows && onerows[0] == '0');
  const char* chan = std::getenv("CHAINRULE_CONV_CHAN");
  g_chan = !(chan && chan[0] == '0');
  if ((bias || act >= 0) && kind != 0) return "conv2d: only the forward pass takes a bias / activation epilogue";
  if (act >= A_COUNT) return "conv2d: unknown activation";
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.O || bias->dtype != out.dtype))
    return "conv2d: bias must be a 1-d view of O values of the output's dtype";
  if ((bias || act >= 0) && out.dtype != F32 && out.dtype != F64) return "conv2d: the epilogue needs float operands";
  if (g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0) return "conv2d: invalid dilation or padding";
  // The output extents must be those the input, kernel and parameters give (the kernels derive every input
  // position from them), and the padded input planes stay within the element limit. Computed in 128 bits:
  // extents reach 2^48 and parameters 2^31 (checked by the N-API layer).
  const __int128 eh = (__int128)g.H + 2 * (__int128)g.ph - (__int128)g.dh * (g.KH - 1) - 1;
  const __int128 ew = (__int128)g.W + 2 * (__int128)g.pw - (__int128)g.dw * (g.KW - 1) - 1;
  if ((__int128)g.OH != (eh >= 0 ? eh / g.sh + 1 : 0) || (__int128)g.OW != (ew >= 0 ? ew / g.sw + 1 : 0))
    return "conv2d: the output extents do not match the input, kernel, stride, padding and dilation";
  const __int128 padded = ((__int128)g.H + 2 * g.ph) * ((__int128)g.W + 2 * g.pw);
  if (kind != 1 && padded * (g.Cg > 0 ? g.Cg : 1) > ((__int128)1 << 48))  // the kernels pad a copy of x
    return "conv2d: the padded input has more than 2^48 elements";
  const i64 osize = shape[0] * shape[1] * shape[2] * shape[3];
  if (osize == 0) return nullptr;
  // Empty sums: no input channel or tap (forward), no output channel, tap or output position (input gradient),
  // no image or output position (weight gradient). The result is then zeros, plus the epilogue for the
  // forward pass, as in the js backend; the blocked kernels below divide by these extents (image chunks,
  // tiles) and must not see them. (An input plane with no element but padding is not empty: its padding
  // zeros still multiply the weights, so a NaN or infinite weight gives NaN, as in PyTorch and js.)
  const bool empty = kind == 0   ? g.Cg * g.KH * g.KW == 0
                     : kind == 1 ? g.Og * g.KH * g.KW == 0 || g.OH * g.OW == 0
                                 : g.N == 0 || g.OH * g.OW == 0;
  if (empty) {
    std::memset(out.data, 0, (size_t)osize * (out.dtype == F64 ? 8 : out.dtype == BOOL ? 1 : 4));
    if (out.dtype == F32) conv_empty_epilogue<float>(static_cast<float*>(out.data), g, bias, act);
    if (out.dtype == F64) conv_empty_epilogue<double>(static_cast<double*>(out.data), g, bias, act);
    return nullptr;
  }
  switch (out.dtype) {
    case F32: return conv_float<float>(kind, p, q, static_cast<float*>(out.data), g, bias, act);
    case F64: return conv_float<double>(kind, p, q, static_cast<double*>(out.data), g, bias, act);
    case I32: conv_int(kind, p, q, static_cast<int32_t*>(out.data), g); return nullptr;
    default: return "conv2d: bool operands are not supported";
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
