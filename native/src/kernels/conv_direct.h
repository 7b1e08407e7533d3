// Direct convolution for unit stride, used by conv.cc for the forward pass, the input gradient (a forward pass
// over the padded cotangent with the flipped, transposed filter) and the weight gradient.
//
// Why not im2col: the packed GEMM of gemm.h must copy every im2col element into a panel, and that copy costs
// as much as the arithmetic when the channel count is small (a 5x5 filter over 32 channels makes 800 im2col
// rows per output position, each used only O times). Here nothing is packed but the filter and one padded copy
// of each input image: the GEMM's B operand is read straight from that copy.
//
// The "wide row" layout: each input plane is copied into `xpad` with row pitch Wp >= W + pw, zeros at the
// left of every row (pw columns), ph zero rows above, ph + 1 below. Output position (oh, ow) is given the wide
// index q = oh * Wp + ow, and then input tap (c, kh, kw) of that output is xpad[off(c, kh, kw) + q] with
// off = c * PS + kh * dh * Wp + kw * dw: one constant offset per tap. So for NR consecutive wide positions the
// NR inputs of a tap are consecutive in memory, one unaligned vector load, and the forward pass is a GEMM
//   y[o, q] = sum_k A[o, k] * xpad[off[k] + q]
// with the packed filter A. A window that runs past the right edge of a row wraps into the next row's left
// padding, which is zero, as the padded image requires (this is why Wp = W + pw suffices, not W + 2 pw).
// Wide positions with ow >= OW are computed and dropped: (Wp - OW) / Wp of the work (2/16 for a 5x5 "same"
// convolution of a 14x14 image, against the 32/224 of padding each image to a multiple of NR in gemm.h).
//
// The weight gradient is the same sum with the roles turned: dW[o, k] = sum over images and *valid* positions
// of dy[o, p] * xpad[off[k] + q(p)], vectorised over o (dy transposed per image) with MR taps per micro-tile;
// it never reads a dropped position.
#pragma once

#include "gemm.h"

namespace cr {
namespace CR_ISA_NS {

template <class T>
struct DirectBlocking {
  static constexpr int W = Simd<T>::W;
#if CR_ISA_LEVEL == 2
  static constexpr int NV = 3;
#else
  static constexpr int NV = 2;
#endif
  static constexpr int NR = NV * W;
  // Rows per micro-tile: MR x NV accumulators plus NV + 1 operands must fit the register file (32 zmm, 16 ymm
  // or xmm). 8 rows waste nothing on the usual 8k channel counts.
#if CR_ISA_LEVEL == 2
  static constexpr int MR = 8;
#elif CR_ISA_LEVEL == 1
  static constexpr int MR = 6;
#else
  static constexpr int MR = 4;
#endif
};

// One convolution pass of one group: Cin input planes H x W -> Cout output planes OH x OW.
//
// Strides (sh, sw > 1) use "phase planes": the padded image split by the residues of its rows mod sh and columns
// mod sw. Phase (a, b) of channel c holds xpadded[c, i * sh + a, j * sw + b] at (i, j) (xpadded: x with ph zero
// rows above and pw zero columns at the left). Tap (c, kh, kw) of output (oh, ow) reads xpadded[c, oh * sh +
// kh * dh, ow * sw + kw * dw], which is phase ((kh * dh) mod sh, (kw * dw) mod sw) at (oh + (kh * dh) div sh,
// ow + (kw * dw) div sw): again one constant offset per tap from the wide index q = oh * Wp + ow, so every unit-
// stride tile below serves strided passes unchanged, with no tap wasted. Only the phases some tap reads are
// built (a 1 x 1 stride-2 filter reads one of four). Phase planes have Wp = OW + (KW - 1) dw div sw columns and
// OH + (KH - 1) dh div sh rows, zero where they fall outside x: a valid output never reads past its row.
constexpr int kMaxPhase = 8;  // strides up to this take the phase planes (larger ones: conv.cc's im2col GEMM)

struct DGeo {
  i64 Cin, H, W, Cout, KH, KW, ph, pw, dh, dw, OH, OW;
  i64 Wp, Hp, PS, K;  // row pitch, padded rows, plane stride of xpad, taps per output (Cin * KH * KW)
  i64 sh = 1, sw = 1;
  // phases read: na row residues ua[0 .. na), nb column residues ub[0 .. nb); amap / bmap: residue -> index
  int na = 1, nb = 1;
  int ua[kMaxPhase] = {0}, ub[kMaxPhase] = {0}, amap[kMaxPhase] = {0}, bmap[kMaxPhase] = {0};
  i64 planes() const { return (i64)na * nb; }  // xpad planes per input channel
};

// Whether a pass with these strides can run the direct tiles (phase planes).
CR_INLINE bool direct_strides(i64 sh, i64 sw) { return sh >= 1 && sw >= 1 && sh <= kMaxPhase && sw <= kMaxPhase; }

template <class T>
DGeo dgeo(i64 Cin, i64 H, i64 W, i64 Cout, i64 KH, i64 KW, i64 ph, i64 pw, i64 dh, i64 dw, i64 OH, i64 OW,
          i64 sh = 1, i64 sw = 1) {
  DGeo d{Cin, H, W, Cout, KH, KW, ph, pw, dh, dw, OH, OW, 0, 0, 0, Cin * KH * KW};
  if (sh == 1 && sw == 1) {
    d.Wp = imax(W + pw, OW);
    d.Hp = H + 2 * ph;
    d.PS = (d.Hp + 1) * d.Wp + DirectBlocking<T>::NR;
    return d;
  }
  d.sh = sh, d.sw = sw;
  // the residues some tap reads, in increasing order
  auto residues = [](i64 K, i64 dil, i64 st, int* list, int* map) {
    bool used[kMaxPhase] = {false};
    for (i64 k = 0; k < K; k++) used[(k * dil) % st] = true;
    int n = 0;
    for (int r = 0; r < st; r++) {
      map[r] = used[r] ? n : -1;
      if (used[r]) list[n++] = r;
    }
    return n;
  };
  d.na = residues(KH, dh, sh, d.ua, d.amap);
  d.nb = residues(KW, dw, sw, d.ub, d.bmap);
  d.Wp = OW + (KW - 1) * dw / sw;
  d.Hp = OH + (KH - 1) * dh / sh;
  d.PS = (d.Hp + 1) * d.Wp + 64;  // 64: the widest tile's over-read past a plane
  return d;
}

// Elements of one image's xpad: Cin planes (Cin x phases when strided) and one plane of zeros that over-reads
// of the last plane land in.
CR_INLINE i64 xpad_size(const DGeo& d) { return (d.Cin * d.planes() + 1) * d.PS; }

template <class T>
CR_INLINE void copy_n(T* __restrict dst, const T* __restrict src, i64 n);

// Copy image planes x[c, ih, iw] = xn[c * s1 + ih * s2 + iw * s3] into the wide-row layout. Contiguous rows are
// copied in whole vectors (copy_n: a library memcpy per short row cost a few percent of a 32-channel pass); a
// row's last vector spills zeros past it, into its right padding and then only into zeros or rows written
// after it (the last row's into the zero rows below).
template <class T>
void build_xpad(T* xp, const T* xn, i64 s1, i64 s2, i64 s3, const DGeo& d) {
  std::memset(xp, 0, sizeof(T) * (size_t)xpad_size(d));
  if (d.sh != 1 || d.sw != 1) {  // phase planes
    const i64 NP = d.planes();
    for (i64 c = 0; c < d.Cin; c++)
      for (int ia = 0; ia < d.na; ia++)
        for (i64 i = 0; i < d.Hp; i++) {
          const i64 r = i * d.sh + d.ua[ia] - d.ph;
          if (r < 0 || r >= d.H) continue;
          const T* src = xn + c * s1 + r * s2;
          for (int ib = 0; ib < d.nb; ib++) {
            // columns j with 0 <= j * sw + b - pw < W, j < Wp
            const i64 b = d.ub[ib], lo = d.pw - b;
            const i64 j0 = lo > 0 ? (lo + d.sw - 1) / d.sw : 0;
            const i64 j1 = imin<i64>(d.Wp, (d.W - 1 + lo) >= 0 ? (d.W - 1 + lo) / d.sw + 1 : 0);
            T* dst = xp + ((c * NP + ia * d.nb + ib) * d.PS) + i * d.Wp;
            const T* s0 = src + (j0 * d.sw - lo) * s3;
            const i64 step = d.sw * s3;
            for (i64 j = j0; j < j1; j++) dst[j] = s0[(j - j0) * step];
          }
        }
    return;
  }
  for (i64 c = 0; c < d.Cin; c++)
    for (i64 ih = 0; ih < d.H; ih++) {
      T* dst = xp + c * d.PS + (ih + d.ph) * d.Wp + d.pw;
      const T* src = xn + c * s1 + ih * s2;
      if (s3 == 1)
        copy_n(dst, src, d.W);
      else
        for (i64 iw = 0; iw < d.W; iw++) dst[iw] = src[iw * s3];
    }
}

// Prefetch the Cin x H x W planes at xn (strides s1, s2, s3) into the cache, row by row, up to 64 KiB: the next
// image's input, requested before the current image's tiles so that its copy (build_xpad / build_xshift) does not
// wait on memory (for conv1's weight gradient that wait was most of the copy's time). Rows with a non-unit stride
// are left to the copy.
template <class T>
void prefetch_planes(const T* xn, i64 s1, i64 s2, i64 s3, const DGeo& d) {
  if (s3 != 1 && d.W > 1) return;
  const i64 row = d.W * (i64)sizeof(T);
  i64 budget = 16384;
  for (i64 c = 0; c < d.Cin; c++)
    for (i64 ih = 0; ih < d.H; ih++) {
      const uintptr_t a = (uintptr_t)(xn + c * s1 + ih * s2);
      for (uintptr_t l = a - a % 64; l < a + (uintptr_t)row; l += 64) __builtin_prefetch((const void*)l, 0, 3);
      if ((budget -= row) <= 0) return;
    }
}

// Tap offsets off[k], k = (c, kh, kw) row-major.
CR_INLINE void tap_offsets(i64* off, const DGeo& d) {
  i64 k = 0;
  const i64 NP = d.planes();
  for (i64 c = 0; c < d.Cin; c++)
    for (i64 kh = 0; kh < d.KH; kh++)
      for (i64 kw = 0; kw < d.KW; kw++) {
        const i64 a = kh * d.dh % d.sh, b = kw * d.dw % d.sw;
        off[k++] = (c * NP + d.amap[a] * d.nb + d.bmap[b]) * d.PS + kh * d.dh / d.sh * d.Wp + kw * d.dw / d.sw;
      }
}

// The packed filter of one group is ceil(Cout / MR) panels, panel p holding A[p*MR + r, k] at [k * MR + r] (zero
// rows past Cout). This packs the panel of rows o0 .. o0 + MR into dst; a(o, k) gives the element.
// (The channel tiles below use the same layout with panels ChanBlocking<T>::NR rows tall: mr.)
template <class T, class F>
void pack_filter_panel(T* dst, const DGeo& d, i64 o0, F a, int mr = DirectBlocking<T>::MR) {
  for (i64 k = 0; k < d.K; k++)
    for (int r = 0; r < mr; r++) dst[k * mr + r] = o0 + r < d.Cout ? a(o0 + r, k) : T(0);
}

CR_INLINE i64 filter_panels_size(const DGeo& d, int mr) { return (d.Cout + mr - 1) / mr * mr * d.K; }

// The single-row sum of direct_tile / direct_row_tile (MR = 1): acc[v] = sum_k Ap[k] * xb[off[k] + v * W ..], in two
// chains (even and odd taps, added at the end), so that 2 NV independent multiply-adds cover the FMA latency.
template <class T, int NV>
CR_INLINE void one_row_sum(i64 K, const T* __restrict Ap, const T* __restrict xb, const i64* __restrict off,
                           typename Simd<T>::V* acc) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  V a0[NV], a1[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) a0[v] = S::zero(), a1[v] = S::zero();
  i64 k = 0;
  for (; k + 2 <= K; k += 2) {
    const T* b0 = xb + off[k];
    const T* b1 = xb + off[k + 1];
    const V w0 = S::set1(Ap[k]), w1 = S::set1(Ap[k + 1]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      a0[v] = S::fma(w0, S::loadu(b0 + v * W), a0[v]);
      a1[v] = S::fma(w1, S::loadu(b1 + v * W), a1[v]);
    }
  }
  if (k < K) {
    const T* b0 = xb + off[k];
    const V w0 = S::set1(Ap[k]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) a0[v] = S::fma(w0, S::loadu(b0 + v * W), a0[v]);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; v++) acc[v] = S::add(a0[v], a1[v]);
}

// tile[r][0..NR) = sum_k Ap[k][r] * xb[off[k] + 0..NR). MR rows (output channels) by NV vectors (positions):
// the full tile, or (a single output channel: a depthwise convolution, conv1's input gradient) 1 x 4.
template <class T, int MR = DirectBlocking<T>::MR, int NV = DirectBlocking<T>::NV>
__attribute__((noinline)) void direct_tile(i64 K, const T* __restrict Ap, const T* __restrict xb,
                                           const i64* __restrict off, T* __restrict tile) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W, NR = NV * W;
  V acc[MR][NV];
  if constexpr (MR == 1) {
    one_row_sum<T, NV>(K, Ap, xb, off, acc[0]);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = S::zero();
    for (i64 k = 0; k < K; k++) {
      const T* b = xb + off[k];
      V bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) bv[v] = S::loadu(b + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < MR; r++) {
        const V a = S::set1(Ap[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, bv[v], acc[r][v]);
      }
      Ap += MR;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) S::storeu(tile + r * NR + v * W, acc[r][v]);
}

// The output stretches of wide positions q0 .. q0 + NR: lane t, output index p = oh * OW + ow, length.
struct Seg {
  int t, len;
  i64 p;
};

CR_INLINE int tile_segments(const DGeo& d, i64 q0, int nr, Seg* segs) {
  int n = 0;
  i64 oh = q0 / d.Wp, ow = q0 - oh * d.Wp;
  for (int t = 0; t < nr && oh < d.OH;) {
    const int len = (int)imin<i64>(nr - t, d.Wp - ow);
    const int valid = ow < d.OW ? (int)imin<i64>(len, d.OW - ow) : 0;
    if (valid > 0) segs[n++] = Seg{t, valid, oh * d.OW + ow};
    t += len;
    ow = 0;
    oh++;
  }
  return n;
}

// Output planes of one image from its xpad: out[o * OH * OW + p] for the (panel, tile) grid flattened as
// t = panel * ntiles + tile over [t0, t1). post(row, NR, o) may rewrite a tile row of channel o before it is
// stored (the bias + activation epilogue).
template <class T, int MR = DirectBlocking<T>::MR, int NV = DirectBlocking<T>::NV, class F>
void direct_forward_tiles(const T* xp, const T* Ap, const i64* off, T* out, const DGeo& d, i64 t0, i64 t1, F post) {
  constexpr int NR = NV * Simd<T>::W;
  const i64 ntiles = (d.OH * d.Wp + NR - 1) / NR, P = d.OH * d.OW;
  alignas(64) T tile[MR * NR];
  Seg segs[NR];
  for (i64 t = t0; t < t1; t++) {
    const i64 pa = t / ntiles, jt = t % ntiles;
    const i64 q0 = jt * NR, o0 = pa * MR;
    direct_tile<T, MR, NV>(d.K, Ap + pa * d.K * MR, xp + q0, off, tile);
    const int ns = tile_segments(d, q0, NR, segs);
    const int rows = (int)imin<i64>(MR, d.Cout - o0);
    for (int r = 0; r < rows; r++) {
      T* dst = out + (o0 + r) * P;
      T* src = tile + r * NR;
      post(src, NR, o0 + r);
      for (int s = 0; s < ns; s++) std::memcpy(dst + segs[s].p, src + segs[s].t, sizeof(T) * (size_t)segs[s].len);
    }
  }
}

CR_INLINE i64 direct_forward_tasks(const DGeo& d, int mr, int nr) {
  return (d.Cout + mr - 1) / mr * ((d.OH * d.Wp + nr - 1) / nr);
}


// ---------------------------------------------------------------------------------------------------------
// "Few taps": Cin * KH * KW up to this many. The forward pass then runs flat tiles over shifted planes and the
// weight gradient small_wgrad_tile (both below); row tiles need a smaller lane advantage to be chosen.
constexpr i64 kSmallTaps = 100;

// Partial vectors: the first n lanes, for the end of an output row or plane.
template <class T>
struct Part {
  using S = Simd<T>;
  using V = typename S::V;
  static constexpr int W = S::W;
  // dst[0 .. n) = the first n lanes of v (0 < n < W); writes nothing past dst + n.
  static CR_INLINE void store(T* dst, V v, int n) {
#if CR_ISA_LEVEL == 2
    if constexpr (std::is_same<T, float>::value) _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n) - 1u), v);
    else _mm512_mask_storeu_pd(dst, (__mmask8)((1u << n) - 1u), v);
#else
    alignas(64) T tmp[W];
    S::storeu(tmp, v);
    for (int i = 0; i < n; i++) dst[i] = tmp[i];
#endif
  }
  // The first n lanes of p (0 < n < W), zeros in the others; reads nothing past p + n.
  static CR_INLINE V load(const T* p, int n) {
#if CR_ISA_LEVEL == 2
    if constexpr (std::is_same<T, float>::value) return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
    else return _mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1u), p);
#elif CR_ISA_LEVEL == 1
    alignas(32) static const int64_t iota[4] = {0, 1, 2, 3};
    if constexpr (std::is_same<T, float>::value) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      return _mm256_maskload_ps(p, m);
    } else {
      const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_load_si256((const __m256i*)iota));
      return _mm256_maskload_pd(p, m);
    }
#else
    alignas(16) T tmp[W] = {};
    for (int i = 0; i < n; i++) tmp[i] = p[i];
    return S::loadu(tmp);
#endif
  }
  // Lanes a .. b of the vector at address `at` (0 <= a < b <= W), zeros in the others; reads nothing outside
  // at + a .. at + b. `at` is an address, not a pointer, because the vector may start before its array.
  static CR_INLINE V load_range(uintptr_t at, int a, int b) {
#if CR_ISA_LEVEL == 2
    const unsigned m = ((1u << b) - 1u) & ~((1u << a) - 1u);
    if constexpr (std::is_same<T, float>::value) return _mm512_maskz_loadu_ps((__mmask16)m, (const void*)at);
    else return _mm512_maskz_loadu_pd((__mmask8)m, (const void*)at);
#elif CR_ISA_LEVEL == 1
    if constexpr (std::is_same<T, float>::value) {
      const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(a), iota),
                                            _mm256_cmpgt_epi32(_mm256_set1_epi32(b), iota));
      return _mm256_maskload_ps((const float*)at, m);
    } else {
      const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
      const __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(a), iota),
                                            _mm256_cmpgt_epi64(_mm256_set1_epi64x(b), iota));
      return _mm256_maskload_pd((const double*)at, m);
    }
#else
    alignas(16) T tmp[W] = {};
    for (int i = a; i < b; i++) tmp[i] = ((const T*)at)[i];
    return S::loadu(tmp);
#endif
  }
};

// ---------------------------------------------------------------------------------------------------------
// One output channel over many taps, unit stride and vertical dilation 1 (conv1's input gradient: dy's 32
// channels through the flipped 5 x 5 filter into one dx plane), with AVX-512's masked loads. The wide tiles
// above (direct_tile<T, 1, NV>) load one vector per multiply-add, most of them split over two cache lines,
// after copying each image into its padded planes: they ran that pass at 23% of the FMA peak. Here a tile is
// R output rows x NV vectors of one column range (an output row's positions from ow0): for each input channel
// c and filter column kw, the R + KH - 1 input rows the tile reads are loaded once, straight from the input,
// and each serves the KH taps (kh) that read it for R different output rows: (R + KH - 1) NV loads per
// R KH NV multiply-adds. A load's lanes outside the input (its padding: rows above and below, columns left
// and right) are masked off, so nothing is copied and nothing outside the input is read. Each output sums its
// taps in (c, kw, kh) order.
template <class T>
struct OneRows {
  static constexpr int R = 10;  // R x NV accumulators + KH weights + NV loads: at most 20 + 7 + 2 of 32 zmm
  static constexpr int maxKH = 7;
  // Whether pass d, over an input whose rows are contiguous (s3 == 1), may run these tiles.
  static bool fits(const DGeo& d, i64 s3) {
    return CR_ISA_LEVEL == 2 && s3 == 1 && d.Cout == 1 && d.sh == 1 && d.sw == 1 && d.dh == 1 && d.KH >= 2 &&
           d.KH <= maxKH && d.OH >= R;
  }
  // Vectors per tile row: one for output rows of at most one vector, else two.
  static int nv(const DGeo& d) { return d.OW <= Simd<T>::W ? 1 : 2; }
  static i64 tasks(const DGeo& d, int nv) {
    const i64 cols = (d.OW + nv * Simd<T>::W - 1) / (nv * Simd<T>::W);
    return (d.OH + R - 1) / R * cols;
  }
};

#if CR_ISA_LEVEL == 2
// The lanes x of a vector whose input column b + x lies in [0, W): a load mask.
CR_INLINE unsigned col_mask(i64 b, i64 W, int lanes) {
  const i64 lo = imax<i64>(0, -b), hi = imin<i64>(lanes, W - b);
  return hi <= lo ? 0u : ((hi >= 32 ? ~0u : (1u << hi) - 1u) & ~((1u << lo) - 1u));
}

template <class T>
CR_INLINE typename Simd<T>::V masked_load(uintptr_t at, unsigned m) {
  if constexpr (std::is_same<T, float>::value) return _mm512_maskz_loadu_ps((__mmask16)m, (const void*)at);
  else return _mm512_maskz_loadu_pd((__mmask8)m, (const void*)at);
}

// One tile: output rows oh0 .. oh0 + R, columns ow0 .. ow0 + NV W (those < OW stored) of the plane y, from the
// input xn (channel stride s1, row stride s2, unit column stride) and the packed filter Ap[k], k = (c, kh, kw).
template <class T, int KH, int NV>
__attribute__((noinline)) void one_rows_tile(const T* xn, i64 s1, i64 s2, const T* __restrict Ap, const DGeo& d,
                                             T* __restrict y, i64 oh0, i64 ow0) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W, R = OneRows<T>::R;
  alignas(64) static const T zeros[NV * W] = {};
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[r][v] = S::zero();
  const i64 KW = d.KW;
  // input rows ir = oh0 - ph + j, j < R + KH - 1: those inside the input, [j0, j1)
  const i64 ir0 = oh0 - d.ph;
  const int j0 = (int)imax<i64>(0, -ir0), j1 = (int)imin<i64>(R + KH - 1, d.H - ir0);
  for (i64 c = 0; c < d.Cin; c++) {
    const uintptr_t xc = (uintptr_t)(xn + c * s1);
    const T* ac = Ap + c * KH * KW;
    for (i64 kw = 0; kw < KW; kw++) {
      V wk[KH];
#pragma GCC unroll 8
      for (int kh = 0; kh < KH; kh++) wk[kh] = S::set1(ac[kh * KW + kw]);
      const i64 b = ow0 + kw * d.dw - d.pw;  // the input column of lane 0 of vector 0
      unsigned m[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) m[v] = col_mask(b + v * W, d.W, W);
      const uintptr_t col = xc + (uintptr_t)(b * (i64)sizeof(T));
      // rows outside the input read a vector of zeros instead (a select, not a branch or a mask per row)
      const uintptr_t zrow = (uintptr_t)zeros - (uintptr_t)(b * 0);
#pragma GCC unroll 16
      for (int j = 0; j < R + KH - 1; j++) {
        const bool in = j >= j0 && j < j1;
        const uintptr_t row = in ? col + (uintptr_t)((ir0 + j) * s2 * (i64)sizeof(T)) : zrow;
        V l[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) l[v] = masked_load<T>(row + (uintptr_t)(v * W * (i64)sizeof(T)), m[v]);
#pragma GCC unroll 8
        for (int kh = 0; kh < KH; kh++) {
          const int r = j - kh;
          if (r >= 0 && r < R) {
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) acc[r][v] = S::fma(wk[kh], l[v], acc[r][v]);
          }
        }
      }
    }
  }
  const i64 n = imin<i64>(NV * W, d.OW - ow0);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
    T* dst = y + (oh0 + r) * d.OW + ow0;
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      const i64 rem = n - v * W;
      if (rem >= W) S::storeu(dst + v * W, acc[r][v]);
      else if (rem > 0) Part<T>::store(dst + v * W, acc[r][v], (int)rem);
    }
  }
}

// Tiles t0 .. t1 of one image's output plane y (t = row tile * column tiles + column tile). The last row tile is
// moved up to end at row OH (its rows overlap the previous tile's, recomputed with the same bits).
template <class T, int KH, int NV>
void one_rows_tiles_kh(const T* xn, i64 s1, i64 s2, const T* Ap, const DGeo& d, T* y, i64 t0, i64 t1) {
  constexpr int R = OneRows<T>::R, NR = NV * Simd<T>::W;
  const i64 cols = (d.OW + NR - 1) / NR;
  for (i64 t = t0; t < t1; t++) {
    const i64 rt = t / cols, ct = t % cols;
    one_rows_tile<T, KH, NV>(xn, s1, s2, Ap, d, y, imin<i64>(rt * R, d.OH - R), ct * NR);
  }
}
#endif

template <class T>
void one_rows_tiles(const T* xn, i64 s1, i64 s2, const T* Ap, const DGeo& d, int nv, T* y, i64 t0, i64 t1) {
#if CR_ISA_LEVEL == 2
#define CR_ONE_ROWS(KH)                                                     \
  case KH:                                                                  \
    if (nv == 1) one_rows_tiles_kh<T, KH, 1>(xn, s1, s2, Ap, d, y, t0, t1); \
    else one_rows_tiles_kh<T, KH, 2>(xn, s1, s2, Ap, d, y, t0, t1);         \
    return;
  switch (d.KH) {
    CR_ONE_ROWS(2)
    CR_ONE_ROWS(3)
    CR_ONE_ROWS(4)
    CR_ONE_ROWS(5)
    CR_ONE_ROWS(6)
    CR_ONE_ROWS(7)
    default:
      return;
  }
#undef CR_ONE_ROWS
#else
  (void)xn, (void)s1, (void)s2, (void)Ap, (void)d, (void)nv, (void)y, (void)t0, (void)t1;
#endif
}

// dst[0 .. n) = 0 and dst[0 .. n) = src[0 .. n) in whole vectors: the short rows of the shifted planes (28
// elements for a 28-wide "same" convolution), where the library calls and the compiler's scalar remainders cost
// more than the copy. Both may write up to W - 1 elements past dst + n (zeros, for copy_n: src is read with a
// partial load, nothing past src + n): the caller writes rows in ascending order, so what spills into the
// next row or segment is overwritten, and a plane's last row spills into its slack.
template <class T>
CR_INLINE void zero_n(T* dst, i64 n) {
  using S = Simd<T>;
  for (i64 i = 0; i < n; i += S::W) S::storeu(dst + i, S::zero());
}

template <class T>
CR_INLINE void copy_n(T* __restrict dst, const T* __restrict src, i64 n) {
  using S = Simd<T>;
  i64 i = 0;
  for (; i + S::W <= n; i += S::W) S::storeu(dst + i, S::loadu(src + i));
  if (i < n) S::storeu(dst + i, Part<T>::load(src + i, (int)(n - i)));
}

// The forward epilogue applied in registers: v + bias, then relu if act is A_RELU (the values of act_apply:
// relu(NaN) = NaN, relu(-0) = +0). The caller applies other activations after the tiles.
template <class T>
CR_INLINE typename Simd<T>::V bias_relu(typename Simd<T>::V v, T b, bool add, bool relu) {
  using S = Simd<T>;
  if (add) v = S::add(v, S::set1(b));
  if (!relu) return v;
#if CR_ISA_LEVEL == 2
  // keep v where v > 0 or v is NaN (not less-or-equal, unordered), else +0
  if constexpr (std::is_same<T, float>::value)
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, S::zero(), _CMP_NLE_UQ), v);
  else
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(v, S::zero(), _CMP_NLE_UQ), v);
#elif CR_ISA_LEVEL == 1
  if constexpr (std::is_same<T, float>::value) return _mm256_and_ps(_mm256_cmp_ps(v, S::zero(), _CMP_NLE_UQ), v);
  else return _mm256_and_pd(_mm256_cmp_pd(v, S::zero(), _CMP_NLE_UQ), v);
#else
  if constexpr (std::is_same<T, float>::value) return _mm_and_ps(_mm_cmpnle_ps(v, S::zero()), v);
  else return _mm_and_pd(_mm_cmpnle_pd(v, S::zero()), v);
#endif
}

// Row tiles: the forward pass with tiles that start at the beginning of an output row instead of running along
// the wide positions. A tile covers ow0 .. ow0 + NR of one row oh (lanes past OW computed and dropped), so its
// vectors go straight into the output with plain stores and one partial store at the row's end, the same for
// every tile of a column: no tile buffer, no per-row copies, no branches that vary from tile to tile. With few
// taps per output (K = Cin * KH * KW small) those copies cost as much as the arithmetic of the wide tiles;
// row tiles waste the lanes past OW instead (4 of 32 for a 28-wide row), so conv.cc picks them by comparing
// the two fractions of useful lanes (row_tiles_pay).
//
// Tile (panel pa, row oh, column jt): out[(o0 + r) * P + oh * OW + ow0 + i] for r < rows, i < valid, plus
// bias[r] (bias may be null) and relu if `relu`; other activations are applied by the caller afterwards.
// MR x NV as in direct_tile.
template <class T, int MR = DirectBlocking<T>::MR, int NV = DirectBlocking<T>::NV>
__attribute__((noinline)) void direct_row_tile(i64 K, const T* __restrict Ap, const T* __restrict xb,
                                               const i64* __restrict off, T* __restrict out, i64 P, int rows,
                                               int valid, const T* bias, bool relu) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  V acc[MR][NV];
  if constexpr (MR == 1) {
    one_row_sum<T, NV>(K, Ap, xb, off, acc[0]);
  } else {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = S::zero();
    for (i64 k = 0; k < K; k++) {
      const T* b = xb + off[k];
      V bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) bv[v] = S::loadu(b + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < MR; r++) {
        const V a = S::set1(Ap[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, bv[v], acc[r][v]);
      }
      Ap += MR;
    }
  }
  const int full = valid / W, tail = valid % W;
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) {
    if (r >= rows) break;
    T* row = out + r * P;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      const V y = bias_relu<T>(acc[r][v], bias ? bias[r] : T(0), bias != nullptr, relu);
      if (v < full) S::storeu(row + v * W, y);
      else if (v == full && tail) Part<T>::store(row + v * W, y, tail);
    }
  }
}

// Row tiles t0 .. t1 of one image, t = (panel * OH + oh) * cols + jt with cols = ceil(OW / NR).
template <class T, int MR = DirectBlocking<T>::MR, int NV = DirectBlocking<T>::NV>
void direct_row_tiles(const T* xp, const T* Ap, const i64* off, T* out, const DGeo& d, i64 t0, i64 t1,
                      const T* bias, bool relu) {
  constexpr int NR = NV * Simd<T>::W;
  const i64 cols = (d.OW + NR - 1) / NR, P = d.OH * d.OW;
  for (i64 t = t0; t < t1; t++) {
    const i64 jt = t % cols, oh = t / cols % d.OH, pa = t / cols / d.OH;
    const i64 o0 = pa * MR, ow0 = jt * NR;
    const int rows = (int)imin<i64>(MR, d.Cout - o0), valid = (int)imin<i64>(NR, d.OW - ow0);
    direct_row_tile<T, MR, NV>(d.K, Ap + pa * d.K * MR, xp + oh * d.Wp + ow0, off, out + o0 * P + oh * d.OW + ow0, P,
                       rows, valid, bias ? bias + o0 : nullptr, relu);
  }
}

CR_INLINE i64 direct_row_tasks(const DGeo& d, int mr, int nr) {
  return (d.Cout + mr - 1) / mr * d.OH * ((d.OW + nr - 1) / nr);
}

// ---------------------------------------------------------------------------------------------------------
// Shifted planes, for few taps: the layout that makes output positions flat. Each input plane c is copied KW
// times, copy kw shifted left by kw * dw and cut to OW columns, with the padding rows and columns as zeros:
//   xs[(c * KW + kw) * SP + ih * OW + ow] = x[c, ih - ph, ow + kw * dw - pw]   (ih < Hp, ow < OW)
// Then input tap (c, kh, kw) of output p = oh * OW + ow is xs[soff(c, kh, kw) + p] with
// soff = (c * KW + kw) * SP + kh * dh * OW: consecutive outputs read consecutive inputs across row ends too, so
// tiles run over the flat output plane (P = OH * OW lanes, padded only once at the plane's end) and store into
// it with plain stores, and the weight gradient reads dy's planes as they are. The copies cost
// Cin * KW * Hp * OW writes per image against Cout * K * P multiply-adds: nothing when K is small (the only
// case that uses them, so KW copies of the input stay small).
// 64 >= NR: slack for the last tile (and for the whole-vector stores of build_xshift's last row)
CR_INLINE i64 xshift_plane(const DGeo& d) { return d.Hp * d.OW + 64; }
CR_INLINE i64 xshift_size(const DGeo& d) { return d.Cin * d.KW * xshift_plane(d); }

// dst[ow] = the element at address src + ow * sizeof(T) for lo <= ow < hi, 0 for the other ow < OW, in whole
// vectors: one (masked) load and one store per vector, no library call (GCC turned the copy loop of copy_n into
// a memcpy call per row, which with its zero stretches cost a tenth of conv1's weight gradient). Reads nothing
// outside the lo .. hi stretch; writes up to W - 1 elements past dst + OW.
template <class T>
CR_INLINE void shift_row(T* __restrict dst, uintptr_t src, i64 lo, i64 hi, i64 OW) {
  using S = Simd<T>;
  constexpr int W = S::W;
  for (i64 ow = 0; ow < OW; ow += W) {
    const i64 a = imax<i64>(lo - ow, 0), b = imin<i64>(hi - ow, W);
    typename S::V v;
    if (a >= b) v = S::zero();
    else if (a == 0 && b == W) v = S::loadu((const T*)(src + (uintptr_t)ow * sizeof(T)));
    else v = Part<T>::load_range(src + (uintptr_t)ow * sizeof(T), (int)a, (int)b);
    S::storeu(dst + ow, v);
  }
}

// The lane masks of shift_row for one (lo, hi, OW), computed once per shifted plane: then each row is one masked
// load and one store per vector with no branch (the masks: all lanes, none, or the row's ends). Rows of up to
// kMaxV vectors on AVX-512 and AVX2; init returns false for longer rows and on the baseline build.
template <class T>
struct RowMasks {
  using S = Simd<T>;
  static constexpr int W = S::W, kMaxV = 16;
#if CR_ISA_LEVEL == 2
  unsigned m[kMaxV];
#elif CR_ISA_LEVEL == 1
  __m256i m[kMaxV];
#endif
  int nv = 0;
  bool init(i64 lo, i64 hi, i64 OW) {
#if CR_ISA_LEVEL >= 1
    if (OW > kMaxV * W) return false;
    nv = (int)((OW + W - 1) / W);
    for (int v = 0; v < nv; v++) {
      const int a = (int)imin<i64>(imax<i64>(lo - v * W, 0), W), b = (int)imax<i64>(imin<i64>(hi - v * W, W), a);
#if CR_ISA_LEVEL == 2
      m[v] = ((1u << b) - 1u) & ~((1u << a) - 1u);
#else
      if constexpr (std::is_same<T, float>::value) {
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        m[v] = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(a), iota),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32(b), iota));
      } else {
        const __m256i iota = _mm256_setr_epi64x(0, 1, 2, 3);
        m[v] = _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(a), iota),
                                   _mm256_cmpgt_epi64(_mm256_set1_epi64x(b), iota));
      }
#endif
    }
    return true;
#else
    (void)lo, (void)hi, (void)OW;
    return false;
#endif
  }
  // shift_row(dst, src, lo, hi, OW) with the masks of init
  CR_INLINE void row(T* __restrict dst, uintptr_t src) const {
#if CR_ISA_LEVEL >= 1
    for (int v = 0; v < nv; v++) {
      const uintptr_t at = src + (uintptr_t)(v * W) * sizeof(T);
#if CR_ISA_LEVEL == 2
      if constexpr (std::is_same<T, float>::value)
        S::storeu(dst + v * W, _mm512_maskz_loadu_ps((__mmask16)m[v], (const void*)at));
      else
        S::storeu(dst + v * W, _mm512_maskz_loadu_pd((__mmask8)m[v], (const void*)at));
#else
      if constexpr (std::is_same<T, float>::value) S::storeu(dst + v * W, _mm256_maskload_ps((const float*)at, m[v]));
      else S::storeu(dst + v * W, _mm256_maskload_pd((const double*)at, m[v]));
#endif
    }
#else
    (void)dst, (void)src;
#endif
  }
};

// build_xshift for rows of up to 32 float (W <= 32, OW <= 32) with unit column stride on AVX-512: each input
// row is loaded once (two masked loads) and each of its KW shifted copies made from those two registers with
// one zero-masked two-table permute per vector, where the general copy below loads every row KW times (its
// loads waited on the input: 7% of conv1's weight gradient). Returns false (nothing done) for other shapes.
template <class T>
bool build_xshift_rows32(T* xs, const T* xn, i64 s1, i64 s2, const DGeo& d) {
#if CR_ISA_LEVEL == 2
  if constexpr (std::is_same<T, float>::value) {
    constexpr int kMaxKW = 8;
    if (d.W > 32 || d.OW > 32 || d.KW > kMaxKW || d.W < 1) return false;
    const i64 SP = xshift_plane(d), OW = d.OW, nv = (OW + 15) / 16;
    // per kw and output vector: lane l (ow = v * 16 + l) takes input column ow + sh, zero outside [0, W) or ow >= OW
    __m512i idx[kMaxKW][2];
    __mmask16 msk[kMaxKW][2];
    for (i64 kw = 0; kw < d.KW; kw++) {
      const i64 sh = kw * d.dw - d.pw;
      for (int v = 0; v < 2; v++) {
        alignas(64) int32_t ix[16];
        unsigned m = 0;
        for (int l = 0; l < 16; l++) {
          const i64 ow = v * 16 + l, src = ow + sh;
          const bool ok = ow < OW && src >= 0 && src < d.W;
          ix[l] = ok ? (int32_t)src : 0;
          if (ok) m |= 1u << l;
        }
        idx[kw][v] = _mm512_load_si512(ix);
        msk[kw][v] = (__mmask16)m;
      }
    }
    const __mmask16 lm0 = (__mmask16)(d.W >= 16 ? 0xFFFFu : (1u << d.W) - 1u);
    const __mmask16 lm1 = (__mmask16)(d.W > 16 ? (1u << (d.W - 16)) - 1u : 0u);
    for (i64 c = 0; c < d.Cin; c++) {
      T* plane = xs + c * d.KW * SP;
      // rows in ascending order in every plane: each row's last vector spills zeros (masked lanes) into the next
      // row, which is written after it, and the last row's into the plane's slack, zeroed below
      for (i64 ihp = 0; ihp < d.Hp; ihp++) {
        const i64 ih = ihp - d.ph;
        if (ih < 0 || ih >= d.H) {
          for (i64 kw = 0; kw < d.KW; kw++)
            for (i64 v = 0; v < nv; v++) _mm512_storeu_ps(plane + kw * SP + ihp * OW + v * 16, _mm512_setzero_ps());
          continue;
        }
        const float* src = xn + c * s1 + ih * s2;
        const __m512 r0 = _mm512_maskz_loadu_ps(lm0, src);
        const __m512 r1 = d.W > 16 ? _mm512_maskz_loadu_ps(lm1, src + 16) : _mm512_setzero_ps();
        for (i64 kw = 0; kw < d.KW; kw++) {
          float* dst = plane + kw * SP + ihp * OW;
          _mm512_storeu_ps(dst, _mm512_maskz_permutex2var_ps(msk[kw][0], r0, idx[kw][0], r1));
          if (nv > 1) _mm512_storeu_ps(dst + 16, _mm512_maskz_permutex2var_ps(msk[kw][1], r0, idx[kw][1], r1));
        }
      }
      for (i64 kw = 0; kw < d.KW; kw++) zero_n(plane + kw * SP + d.Hp * OW, SP - d.Hp * OW);
    }
    return true;
  }
#endif
  (void)xs, (void)xn, (void)s1, (void)s2, (void)d;
  return false;
}

template <class T>
void build_xshift(T* xs, const T* xn, i64 s1, i64 s2, i64 s3, const DGeo& d) {
  if (s3 == 1 && build_xshift_rows32(xs, xn, s1, s2, d)) return;
  // row by row (zeros, the copied stretch, zeros) in whole vectors, each segment overwriting what the one
  // before spilled into it: this runs once per image, and with few taps its scalar version cost a tenth of the
  // weight gradient's arithmetic (masked stores at the row ends, half of that)
  const i64 SP = xshift_plane(d), OW = d.OW;
  for (i64 c = 0; c < d.Cin; c++)
    for (i64 kw = 0; kw < d.KW; kw++) {
      // ow range with 0 <= ow + sh < W
      const i64 sh = kw * d.dw - d.pw;
      const i64 lo = imin(OW, imax<i64>(0, -sh)), hi = imax(lo, imin(OW, d.W - sh));
      T* dst = xs + (c * d.KW + kw) * SP;
      RowMasks<T> rm;
      const bool masks = s3 == 1 && rm.init(lo, hi, OW);
      for (i64 ihp = 0; ihp < d.Hp; ihp++, dst += OW) {
        const i64 ih = ihp - d.ph;
        if (ih < 0 || ih >= d.H) {  // (through shift_row: GCC makes zero_n's loop a memset call)
          shift_row(dst, 0, 0, 0, OW);
          continue;
        }
        const T* src = xn + c * s1 + ih * s2;  // x[c, ih, ow + sh] = src[(ow + sh) * s3]
        if (s3 == 1) {
          const uintptr_t at = (uintptr_t)src + (uintptr_t)(sh * (i64)sizeof(T));
          if (masks) rm.row(dst, at);
          else shift_row(dst, at, lo, hi, OW);
          continue;
        }
        if (lo > 0) zero_n(dst, lo);
        for (i64 ow = lo; ow < hi; ow++) dst[ow] = src[(ow + sh) * s3];
        if (hi < OW) zero_n(dst + hi, OW - hi);
      }
      zero_n(xs + (c * d.KW + kw) * SP + d.Hp * OW, SP - d.Hp * OW);
    }
}

// Tap offsets into the shifted planes, k = (c, kh, kw) row-major.
CR_INLINE void xshift_offsets(i64* off, const DGeo& d) {
  const i64 SP = xshift_plane(d);
  i64 k = 0;
  for (i64 c = 0; c < d.Cin; c++)
    for (i64 kh = 0; kh < d.KH; kh++)
      for (i64 kw = 0; kw < d.KW; kw++) off[k++] = (c * d.KW + kw) * SP + kh * d.dh * d.OW;
}

// Flat tiles t0 .. t1 of one image over its shifted planes, t = panel * cols + jt, cols = ceil(P / NR): the
// row tile kernel with the whole output plane as one row.
template <class T, int MR = DirectBlocking<T>::MR, int NV = DirectBlocking<T>::NV>
void direct_flat_tiles(const T* xs, const T* Ap, const i64* off, T* out, const DGeo& d, i64 t0, i64 t1,
                       const T* bias, bool relu) {
  constexpr int NR = NV * Simd<T>::W;
  const i64 P = d.OH * d.OW, cols = (P + NR - 1) / NR;
  for (i64 t = t0; t < t1; t++) {
    const i64 o0 = t / cols * MR, p0 = t % cols * NR;
    const int rows = (int)imin<i64>(MR, d.Cout - o0), valid = (int)imin<i64>(NR, P - p0);
    direct_row_tile<T, MR, NV>(d.K, Ap + t / cols * d.K * MR, xs + p0, off, out + o0 * P + p0, P, rows, valid,
                       bias ? bias + o0 : nullptr, relu);
  }
}

CR_INLINE i64 direct_flat_tasks(const DGeo& d, int mr, int nr) {
  return (d.Cout + mr - 1) / mr * ((d.OH * d.OW + nr - 1) / nr);
}

// ---------------------------------------------------------------------------------------------------------
// Channel tiles: the forward pass vectorised over output channels instead of positions (the structure of the
// weight gradient below, turned around). A tile is MP consecutive outputs of one row (oh, ow0 .. ow0 + MP) by
// NR = NV * W output channels o0 .. o0 + NR; per tap k it loads the NV filter vectors of the packed panel
// (NR rows tall) and broadcasts the MP inputs xpad[off[k] + oh * Wp + ow0 + i]:
//   acc[i][v] += xpad[off[k] + q0 + i] * A[o0 + v * W .., k]
// NV + MP loads per NV * MP multiply-adds (AVX-512: 16 per 28, against 10 per 16 for the wide tiles), and no
// lane holds a position that is dropped: the wide tiles compute Wp - OW of every Wp positions for nothing (2 of
// 16 for a 5x5 "same" convolution of 14 x 14 planes, the bench CNN's second convolution and its input
// gradient), row tiles the lanes past OW. The lanes wasted are channels past Cout instead, none for the usual
// multiples of 32 (conv.cc picks the tiles that waste fewer: chan_tiles_pay). Results come out transposed,
// yT[p * ld + o] for the image's P positions, and are transposed back into its planes (untranspose_planes).
template <class T>
struct ChanBlocking {
  static constexpr int NV = 2, NR = NV * Simd<T>::W;
#if CR_ISA_LEVEL == 2
  static constexpr int MP = 14;  // 28 accumulators + 2 filter vectors + 1 broadcast of 32 zmm
#else
  static constexpr int MP = 6;  // 12 + 2 + 1 of 16 ymm / xmm
#endif
  // Output rows are split into chunks of at most MP positions, as even as possible; chunk j of a row covers
  // ow in [j * OW / chunks, (j + 1) * OW / chunks).
  static i64 chunks(const DGeo& d) { return (d.OW + MP - 1) / MP; }
};

// One tile: dst[i * ld + v * W ..] = sum over k of xb[off[k] + i] * Ap[k * NR + v * W ..], i < MP, v < NV.
template <class T, int MP, int NV>
__attribute__((noinline)) void chan_tile(i64 K, const T* __restrict Ap, const T* __restrict xb,
                                         const i64* __restrict off, T* __restrict dst, i64 ld) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W, NR = NV * W;
  V acc[MP][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MP; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = S::zero();
  for (i64 k = 0; k < K; k++) {
    const T* b = xb + off[k];
    V w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) w[v] = S::loadu(Ap + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MP; i++) {
      const V a = S::set1(b[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] = S::fma(a, w[v], acc[i][v]);
    }
    Ap += NR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MP; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) S::storeu(dst + i * ld + v * W, acc[i][v]);
}

// chan_tile<T, m, NV> for a run-time m in 1 .. M
template <class T, int NV, int M>
CR_INLINE void chan_tile_m(int m, i64 K, const T* Ap, const T* xb, const i64* off, T* dst, i64 ld) {
  if constexpr (M >= 1) {
    if (m == M) chan_tile<T, M, NV>(K, Ap, xb, off, dst, ld);
    else chan_tile_m<T, NV, M - 1>(m, K, Ap, xb, off, dst, ld);
  }
}

// Channel tiles [t0, t1) of one image from its xpad into yT (P rows of ld >= Cout rounded up to NR),
// t = (panel * OH + oh) * chunks + j: each panel's filter (K x NR) streams past the image's rows.
template <class T>
void direct_chan_tiles(const T* xp, const T* Ap, const i64* off, T* yT, i64 ld, const DGeo& d, i64 t0, i64 t1) {
  using B = ChanBlocking<T>;
  const i64 chunks = B::chunks(d);
  for (i64 t = t0; t < t1; t++) {
    const i64 j = t % chunks, oh = t / chunks % d.OH, pa = t / chunks / d.OH;
    const i64 ow0 = j * d.OW / chunks, ow1 = (j + 1) * d.OW / chunks;
    chan_tile_m<T, B::NV, B::MP>((int)(ow1 - ow0), d.K, Ap + pa * d.K * B::NR, xp + oh * d.Wp + ow0, off,
                                 yT + (oh * d.OW + ow0) * ld + pa * B::NR, ld);
  }
}

CR_INLINE i64 direct_chan_tasks(const DGeo& d, i64 chunks, int nr) { return (d.Cout + nr - 1) / nr * d.OH * chunks; }

// out[o * P + p] = yT[p * ld + o] for o < Cout, p in [p0, p1) (4 x 4 blocks in SSE registers for float).
template <class T>
void untranspose_planes(const T* yT, i64 ld, i64 P, i64 Cout, T* out, i64 p0, i64 p1) {
  i64 p = p0;
#if defined(__SSE__)
  if constexpr (std::is_same<T, float>::value)
    for (; p + 4 <= p1; p += 4) transpose_4_rows(yT + p * ld, ld, Cout, out + p, P);
#endif
  for (; p < p1; p++)
    for (i64 o = 0; o < Cout; o++) out[o * P + p] = yT[p * ld + o];
}

// Whether channel tiles beat the position tiles (wide or row tiles, whichever direct_pass would run, with
// `pos` their fraction of useful lanes times that of their MR-row panels): the channel tiles' fraction of
// useful channel lanes, if their shortest chunk keeps enough accumulators in flight to cover the FMA latency
// (NV * MP >= 8), with a margin for the transposes.
template <class T>
bool chan_tiles_pay(const DGeo& d, double pos) {
  using B = ChanBlocking<T>;
  const i64 chunks = B::chunks(d);
  if (d.OW / chunks * B::NV < 8) return false;
  const double chan = (double)d.Cout / (double)((d.Cout + B::NR - 1) / B::NR * B::NR);
  return chan >= pos + 0.04;
}

// Whether row tiles beat the wide tiles: their fraction of useful lanes, with a margin for the copies they save
// when the taps are few (those cost little next to a long K loop).
CR_INLINE bool row_tiles_pay(const DGeo& d, int nr, i64 small_taps) {
  const double rows = (double)d.OW / (double)((d.OW + nr - 1) / nr * nr);
  const double wide = (double)(d.OH * d.OW) / (double)((d.OH * d.Wp + nr - 1) / nr * nr);
  return rows >= wide - (d.K <= small_taps ? 0.1 : 0.0);
}

// ---------------------------------------------------------------------------------------------------------
// Weight gradient with few taps (Cin * KH * KW up to kSmallTaps): vectorised over the flat output plane (dy's
// planes read in place, no transpose) against the shifted planes, with an MO x MK register tile of
// accumulators [output channel, tap]:
//   acc[i][j] += dy[o0 + i, p .. p + W) * xs[soff[k0 + j] + p .. + W)
// MO + MK loads per MO * MK multiply-adds. The tile starts from zeros for each image and at its end folds each
// accumulator's W lanes to one 16-byte block (4 float / 2 double lanes) and adds it into the task's partial
// sums in memory: a quarter of the memory traffic of keeping all W lanes on AVX-512 (whose 51 KB per image for
// conv1 did not stay in L1: loading and storing them took a fifth of the kernel's time), and the tile's first
// multiply-adds wait on no load. The blocks' lanes are summed once per image chunk (small_wgrad_reduce). The
// plane ends in a partial vector with both operands zero past P.
template <class T>
struct SmallWgrad {
#if CR_ISA_LEVEL == 2
  static constexpr int MO = 4;  // 4 x MK accumulators (MK <= 6) + 4 dy vectors + 1 input vector of 32 zmm
#else
  static constexpr int MO = 2;  // 2 x MK + 2 + 1 of 16 ymm / xmm
#endif
  // lanes of a 16-byte block, and blocks per vector
  static constexpr int BL = 16 / (int)sizeof(T), R = Simd<T>::W / BL;
  // Taps per tile: the MK in 3..6 that wastes the fewest (ties: the larger).
  static int mk(i64 K) {
    int best = 6;
    i64 waste = (6 - K % 6) % 6;
    for (int m = 5; m >= 3; m--) {
      const i64 w = (m - K % m) % m;
      if (w < waste) best = m, waste = w;
    }
    return best;
  }
};

// R accumulators v[0 .. R) folded to one vector whose block r holds the sum of v[r]'s blocks (halves added
// pairwise, in a fixed order).
template <class T>
CR_INLINE typename Simd<T>::V fold_blocks(const typename Simd<T>::V* v) {
#if CR_ISA_LEVEL == 2
  // v[0] = [a0 a1 a2 a3] (blocks) .. v[3]: u = [a0+a2, a1+a3, b0+b2, b1+b3], then [a, b, c, d]
  if constexpr (std::is_same<T, float>::value) {
    const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x44), _mm512_shuffle_f32x4(v[0], v[1], 0xEE));
    const __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x44), _mm512_shuffle_f32x4(v[2], v[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u, w, 0x88), _mm512_shuffle_f32x4(u, w, 0xDD));
  } else {
    const __m512d u = _mm512_add_pd(_mm512_shuffle_f64x2(v[0], v[1], 0x44), _mm512_shuffle_f64x2(v[0], v[1], 0xEE));
    const __m512d w = _mm512_add_pd(_mm512_shuffle_f64x2(v[2], v[3], 0x44), _mm512_shuffle_f64x2(v[2], v[3], 0xEE));
    return _mm512_add_pd(_mm512_shuffle_f64x2(u, w, 0x88), _mm512_shuffle_f64x2(u, w, 0xDD));
  }
#elif CR_ISA_LEVEL == 1
  if constexpr (std::is_same<T, float>::value)
    return _mm256_add_ps(_mm256_permute2f128_ps(v[0], v[1], 0x20), _mm256_permute2f128_ps(v[0], v[1], 0x31));
  else
    return _mm256_add_pd(_mm256_permute2f128_pd(v[0], v[1], 0x20), _mm256_permute2f128_pd(v[0], v[1], 0x31));
#else
  return v[0];
#endif
}

// One tile of one image: xs its shifted planes, dy the dy plane of the tile's first channel (channel i at
// dy + ooff[i]), koff the MK tap offsets. accm: MO * MK blocks of BL lanes, element (i, j) at block i * MK + j,
// overwritten if `first`, else added to. pf (null: none): np dy planes pf_s bytes apart that the next tile
// reads for the first time; this tile prefetches their bytes c0 .. c1, all planes at the same offset per step,
// in the order the next tile reads them (a CNN's first dy is megabytes, read from memory; the tap tiles of a
// channel tile reuse it from L1, so without this the first tap tile of every channel tile waits on it).
template <class T, int MO, int MK>
__attribute__((noinline)) void small_wgrad_tile(const T* __restrict xs, const T* __restrict dy, const i64* ooff,
                                                const i64* koff, i64 P, T* __restrict accm, bool first,
                                                const char* pf, i64 pf_s, int np, i64 c0, i64 c1) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W, BL = SmallWgrad<T>::BL, R = SmallWgrad<T>::R, E = MO * MK;
  static_assert(E % R == 0, "the tile's accumulators fold R to a vector");
  V acc[E];
#pragma GCC unroll 32
  for (int e = 0; e < E; e++) acc[e] = S::zero();
  const T* dr[MO];
  const T* xr[MK];
#pragma GCC unroll 8
  for (int i = 0; i < MO; i++) dr[i] = dy + ooff[i];
#pragma GCC unroll 8
  for (int j = 0; j < MK; j++) xr[j] = xs + koff[j];
  const i64 full = P / W * W;
  // the prefetch offset advances by `adv` bytes per step (at least a line; more only for planes that end in a
  // partial vector, which a tile's steps do not cover: those are left to the next tile's loads)
  const i64 steps = full / W;
  const i64 adv = pf && steps > 0 ? imax<i64>(64, (c1 - c0 + steps - 1) / steps) : 0;
  if (adv > 64) c1 = c0;
  pf += c0;
  // one step: MO dy vectors times MK input vectors at plane offset p
  auto step = [&](i64 p) __attribute__((always_inline)) {
    V dv[MO];
#pragma GCC unroll 8
    for (int i = 0; i < MO; i++) dv[i] = S::loadu(dr[i] + p);
#pragma GCC unroll 8
    for (int j = 0; j < MK; j++) {
      V xv = S::loadu(xr[j] + p);
      // one load into a register: GCC otherwise folds it into each of the MO multiply-adds as a memory operand
      // (AVX2: MO loads of it per step, the kernel at 60% of peak instead of 90%)
      asm("" : "+x"(xv));
#pragma GCC unroll 8
      for (int i = 0; i < MO; i++) acc[i * MK + j] = S::fma(dv[i], xv, acc[i * MK + j]);
    }
  };
  // the steps that prefetch, then the others, unrolled by 2 (a test per step of whether to prefetch cost a few
  // percent of conv1's weight gradient)
  const i64 pfull = c0 < c1 && adv > 0 ? imin<i64>(full, (c1 - c0 + adv - 1) / adv * W) : 0;
  for (i64 p = 0; p < pfull; p += W) {
    for (int i = 0; i < np; i++) __builtin_prefetch(pf + i * pf_s, 0, 3);
    pf += adv;
    step(p);
  }
#pragma GCC unroll 2
  for (i64 p = pfull; p < full; p += W) step(p);
  if (const int tail = (int)(P - full)) {
    V dv[MO];
#pragma GCC unroll 8
    for (int i = 0; i < MO; i++) dv[i] = Part<T>::load(dr[i] + full, tail);
#pragma GCC unroll 8
    for (int j = 0; j < MK; j++) {
      const V xv = Part<T>::load(xr[j] + full, tail);
#pragma GCC unroll 8
      for (int i = 0; i < MO; i++) acc[i * MK + j] = S::fma(dv[i], xv, acc[i * MK + j]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < E / R; q++) {
    V f = fold_blocks<T>(acc + q * R);
    T* at = accm + q * R * BL;
    if (!first) f = S::add(S::loadu(at), f);
    S::storeu(at, f);
  }
}

// The tiles [t0, t1) of one image, tile t = (channel tile, tap tile) with tap tiles fastest (they share the
// channel tile's dy planes, which stay in L1); acc holds MO * MK blocks per tile, overwritten if `first`. dy is
// the image's plane of the group's channel 0, s1 the channel stride; dy_next (null: none) the same for the image
// that comes next. Channel tile ct holds the channels ct + i * CT (i < MO, CT = the number of channel tiles), so
// that with contiguous planes each of the MO dy streams runs on from one channel tile into the next (which the
// hardware prefetchers follow). With `prefetch`, the last tap tile of each channel tile prefetches the dy planes
// of the next one (the last channel tile: of dy_next's first).
template <class T, int MK>
void small_wgrad_tiles(const T* xs, const T* dy, const i64* off, i64 s1, const DGeo& d, T* acc, i64 t0, i64 t1,
                       bool first, const T* dy_next, bool prefetch = true) {
  constexpr int MO = SmallWgrad<T>::MO, E = MO * MK, BL = SmallWgrad<T>::BL;
  const i64 ktiles = (d.K + MK - 1) / MK, ctiles = (d.Cout + MO - 1) / MO, P = d.OH * d.OW;
  i64 koffs[kSmallTaps + 8];  // tap tile kt's offsets at koffs + kt * MK; past K: tap K - 1, dropped
  for (i64 j = 0; j < ktiles * MK; j++) koffs[j] = off[imin<i64>(j, d.K - 1)];
  for (i64 t = t0; t < t1;) {
    const i64 ct = t / ktiles;
    i64 ooff[MO];
    for (int i = 0; i < MO; i++) ooff[i] = (imin<i64>(ct + i * ctiles, d.Cout - 1) - ct) * s1;  // past Cout: dropped
    // the dy planes read next for the first time: the next channel tile's, or the next image's first
    const i64 o1 = ct + 1 < ctiles ? ct + 1 : 0;
    const T* next = !prefetch ? nullptr : ct + 1 < ctiles ? dy + o1 * s1 : dy_next;
    int planes = 0;
    while (next && planes < MO && o1 + planes * ctiles < d.Cout) planes++;
    for (i64 kt = t % ktiles; kt < ktiles && t < t1; kt++, t++) {
      const bool pf = next && kt == ktiles - 1;
      small_wgrad_tile<T, MO, MK>(xs, dy + ct * s1, ooff, koffs + kt * MK, P, acc + t * (E * BL), first,
                                  pf ? (const char*)next : nullptr, ctiles * s1 * (i64)sizeof(T), planes, 0,
                                  pf ? P * (i64)sizeof(T) : 0);
    }
  }
}

// dW[o * K + k] (o < Cout, k < K): the lane sums of the tiles' blocks (in a fixed order, plus +0: an all -0 sum
// gives +0, as the other kernels' sums from zero do).
template <class T, int MK>
void small_wgrad_reduce(const T* acc, const DGeo& d, T* dw) {
  constexpr int MO = SmallWgrad<T>::MO, BL = SmallWgrad<T>::BL;
  const i64 ctiles = (d.Cout + MO - 1) / MO;  // channel i of tile ct: ct + i * ctiles
  for (i64 ct = 0; ct < ctiles; ct++)
    for (i64 k0 = 0; k0 < d.K; k0 += MK, acc += MO * MK * BL) {
      const int nj = (int)imin<i64>(MK, d.K - k0);
      for (int i = 0; i < MO && ct + i * ctiles < d.Cout; i++)
        for (int j = 0; j < nj; j++) {
          const T* b = acc + (i * MK + j) * BL;
          T s;
          if constexpr (BL == 4) s = (b[0] + b[2]) + (b[1] + b[3]);
          else s = b[0] + b[1];
          dw[(ct + i * ctiles) * d.K + k0 + j] = T(0) + s;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Weight gradient. dyT holds one image's cotangent for the group transposed, dyT[p * LD + o] (LD = Cout rounded
// up to the tile width NV * W, zero columns past Cout). acc (MR x LD, row-major) += the image's contribution to
// the taps k0 .. k0 + MR (rows past K read tap K - 1 and are dropped by the caller). MR x NV: 8 x 2 by default;
// 6 x 4 on AVX-512 when there are 64 or more channels (10 loads per 24 multiply-adds instead of per 16).
template <class T, int MR, int NV>
__attribute__((noinline)) void direct_wgrad_tile(const T* __restrict xp, const i64* __restrict koff,
                                                 const T* __restrict dyT, i64 LD, i64 o0, const DGeo& d,
                                                 T* __restrict acc_mem) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = S::loadu(acc_mem + r * LD + o0 + v * W);
  const T* dp = dyT + o0;
  for (i64 oh = 0; oh < d.OH; oh++) {
    const T* xr = xp + oh * d.Wp;
    for (i64 ow = 0; ow < d.OW; ow++, dp += LD) {
      V bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) bv[v] = S::loadu(dp + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < MR; r++) {
        const V a = S::set1(xr[koff[r] + ow]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, bv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) S::storeu(acc_mem + r * LD + o0 + v * W, acc[r][v]);
}

// dyT[p * LD + o] = dyn[o * s1 + oh * s2 + ow * s3], zero for o >= Cout.
template <class T>
void transpose_dy(T* dyT, i64 LD, const T* dyn, i64 s1, i64 s2, i64 s3, const DGeo& d) {
  const i64 P = d.OH * d.OW;
  for (i64 p = 0; p < P; p++)
    for (i64 o = d.Cout; o < LD; o++) dyT[p * LD + o] = T(0);
  i64 o_done = 0;
#if defined(__SSE__)
  // Contiguous planes of float: 4 x 4 blocks transposed in SSE registers (with few taps the scalar copy below
  // cost as much as the weight gradient's arithmetic).
  if constexpr (std::is_same<T, float>::value) {
    const float* src = dyn;
    float* dst = dyT;
    const bool contiguous = s3 == 1 && (d.OH == 1 || s2 == d.OW);
    for (; contiguous && o_done + 4 <= d.Cout; o_done += 4)
      transpose_4_rows(src + o_done * s1, s1, P, dst + o_done, LD);
  }
#endif
  // Blocks of 8 channels: 8 sequential read streams, one 8-element run written per position (a channel at a
  // time would write one element per cache line; this runs once per image, with few taps it is not small).
  constexpr int B = 8;
  for (i64 o0 = o_done; o0 < d.Cout; o0 += B) {
    const int nb = (int)imin<i64>(B, d.Cout - o0);
    const T* src[B];
    for (int r = 0; r < B; r++) src[r] = dyn + (o0 + imin(r, nb - 1)) * s1;
    i64 p = 0;
    for (i64 oh = 0; oh < d.OH; oh++)
      for (i64 ow = 0; ow < d.OW; ow++, p++) {
        const i64 at = oh * s2 + ow * s3;
        T* dst = dyT + p * LD + o0;
        if (nb == B) {
#pragma GCC unroll 8
          for (int r = 0; r < B; r++) dst[r] = src[r][at];
        } else {
          for (int r = 0; r < nb; r++) dst[r] = src[r][at];
        }
      }
  }
}

// acc (K rounded up to MR rows, LD columns) += one image's weight gradient for tap tiles [kt0, kt1).
template <class T, int MR, int NV>
void direct_wgrad_image(const T* xp, const i64* off, const T* dyT, i64 LD, const DGeo& d, T* acc, i64 kt0,
                        i64 kt1) {
  constexpr int NR = NV * Simd<T>::W;
  for (i64 kt = kt0; kt < kt1; kt++) {
    i64 koff[MR];
    for (int r = 0; r < MR; r++) koff[r] = off[imin<i64>(kt * MR + r, d.K - 1)];
    for (i64 o0 = 0; o0 < LD; o0 += NR)
      direct_wgrad_tile<T, MR, NV>(xp, koff, dyT, LD, o0, d, acc + kt * MR * LD);
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
