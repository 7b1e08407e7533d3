// Packed-panel GEMM (C = A B, float32 / float64) in the style of BLIS/GotoBLAS, with a register-blocked
// micro-kernel per instruction set.
//
// C (M x N, row-major, leading dimension ldc) is computed in blocks: for each KC-deep slice of the K dimension
// and each (large) MC-tall row block, the slice of A is packed once into MR-tall panels (column k holds
// A[i..i+MR, k]); then for each NC-wide column block the slice of B is packed into NR-wide panels (row k of a
// panel holds B[k, j..j+NR), zero-padded), shared by all threads. Each MR-panel of A then stays in L1 while the
// B panels of the block stream past it from L2 (KC, NC, MC come from the CPU's cache sizes: cache_blocking).
// A small row-major B (a quarter of L2 at most) is not packed: the micro-kernel reads its rows in place; nor is a
// row-major A whose loader allows it (`dot`'s): the micro-kernel broadcasts from MR rows of A in place.
// The micro-kernel computes an MR x NR tile of C as KC rank-1 updates: per k it loads NR/W vectors of the
// B panel, broadcasts MR scalars of the A panel and issues MR * NR/W fused multiply-adds into accumulators that
// stay in registers for the whole slice (AVX-512 float32: a 12 x 32 tile = 24 zmm accumulators).
//
// A and B are not matrices here but *loaders*: objects with pack_a / pack_b methods that write panels. The
// strided-matrix loader below serves `dot` (any strides, so every transpose combination and negative strides);
// conv2d supplies loaders that build im2col panels on the fly, so no im2col matrix is ever materialised.
#pragma once

#include "isa.h"

#include <sched.h>

namespace cr {
namespace CR_ISA_NS {

// ---------------------------------------------------------------------------------------------------------
// SIMD traits for the micro-kernel: vector type, width, load/store, broadcast and multiply-add.
template <class T>
struct Simd;

// One specialisation per element type and instruction set, from the intrinsics' prefix P (_mm512, _mm256, _mm)
// and suffix S (ps, pd); MR rows of the micro-kernel tile (its MR x NV accumulators fill the register file).
#define CR_SIMD(T, VT, P, S, WIDTH, ROWS)                                          \
  template <>                                                                      \
  struct Simd<T> {                                                                 \
    using V = VT;                                                                  \
    static constexpr int W = WIDTH, MR = ROWS, NV = 2;                             \
    static CR_INLINE V zero() { return P##_setzero_##S(); }                        \
    static CR_INLINE V load(const T* p) { return P##_load_##S(p); }                \
    static CR_INLINE V loadu(const T* p) { return P##_loadu_##S(p); }              \
    static CR_INLINE void storeu(T* p, V v) { P##_storeu_##S(p, v); }              \
    static CR_INLINE V set1(T x) { return P##_set1_##S(x); }                       \
    static CR_INLINE V fma(V a, V b, V c) { return CR_SIMD_FMA(P, S, a, b, c); }   \
    static CR_INLINE V add(V a, V b) { return P##_add_##S(a, b); }                 \
  };
#if CR_ISA_LEVEL >= 1
#define CR_SIMD_FMA(P, S, a, b, c) P##_fmadd_##S(a, b, c)
#else
// Baseline x86-64 has SSE2 but no FMA: multiply then add (rounding differs from the FMA builds by an ulp).
#define CR_SIMD_FMA(P, S, a, b, c) P##_add_##S(P##_mul_##S(a, b), c)
#endif
#if CR_ISA_LEVEL == 2
CR_SIMD(float, __m512, _mm512, ps, 16, 12)
CR_SIMD(double, __m512d, _mm512, pd, 8, 12)
#elif CR_ISA_LEVEL == 1
CR_SIMD(float, __m256, _mm256, ps, 8, 6)
CR_SIMD(double, __m256d, _mm256, pd, 4, 6)
#else
CR_SIMD(float, __m128, _mm, ps, 4, 4)
CR_SIMD(double, __m128d, _mm, pd, 2, 4)
#endif
#undef CR_SIMD
#undef CR_SIMD_FMA

// Register blocking (compile-time: the micro-kernel's tile) and cache blocking (chosen at run time from the
// cache sizes of the CPU, see cache_blocking below).
template <class T>
struct Blocking {
  static constexpr int MR = Simd<T>::MR;
  static constexpr int NR = Simd<T>::NV * Simd<T>::W;
};

// Cache blocking of one GEMM: KC-deep slices of K, NC-wide column blocks of B, MC-tall row blocks of A.
// Loop order (see gemm_mapped): for each K slice and each MC row block, A is packed once; for each NC column
// block B is packed once (shared by all threads); then each MR-panel of A is held in L1 while the NR-panels of
// the B block (kept in L2) stream past it. So an A micro-panel (MR x KC) should take well under half of L1d and
// a packed B block (KC x NC) about half of L2. MC only bounds the packing buffer of A for very tall products.
struct CacheBlocking {
  i64 kc, nc, mc;
  i64 l2;  // bytes
  // The largest row-major B read in place rather than packed (see gemm_blocked): a quarter of L2, at most 256 KB.
  // A B read in place is read with its row stride, which the hardware prefetchers follow less well than a packed
  // panel's sequential stream; in a training loop it is often out of L2 (written a while before), and then the
  // product waits on L3. On the Intel Xeon (2 MB L2) the e2e step's weight gradient dY1^T h0 (B: 128 x 784, 401 KB)
  // ran 10-15% faster packed than read in place (the 1 MB L2 of Zen 5 never read it in place).
  i64 direct_b;
};

template <class T>
CacheBlocking cache_blocking() {
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  i64 l1 = cache_size(1), l2 = cache_size(2);
  if (l1 < 16384 || l1 > (1 << 20)) l1 = 32768;
  if (l2 < 131072 || l2 > (64 << 20)) l2 = 512 << 10;
  // A micro-panel within ~40% of L1d, rounded down to a multiple of 16 k-steps, in [128, 512] (deeper slices
  // re-read C less often; shallower ones keep the panel resident next to the B stream).
  i64 kc = (i64)(0.4 * (double)l1) / (MR * (i64)sizeof(T)) / 16 * 16;
  kc = imax<i64>(128, imin<i64>(kc, sizeof(T) == 4 ? 384 : 256));
  // the packed B block within ~45% of L2
  i64 nc = (i64)(0.45 * (double)l2) / (kc * (i64)sizeof(T)) / NR * NR;
  nc = imax<i64>(4 * NR, imin<i64>(nc, 4096));
  // packed A up to ~8 MB
  i64 mc = (i64)(8 << 20) / (kc * (i64)sizeof(T)) / MR * MR;
  return CacheBlocking{kc, nc, imax<i64>(mc, 16 * MR), l2, imin<i64>(l2 / 4, 256 << 10)};
}

// ---------------------------------------------------------------------------------------------------------
// The micro-kernel: C[0..mr, 0..nr) (+)= sum_k Ap[k][0..R) (outer) Bp[k][0..NR), over kc steps.
// Ap is an MR-interleaved A panel, or with DA the first of R rows of A read in place (lda apart, contiguous along
// k), Bp an NR-interleaved B panel (both 64-byte aligned, zero-padded) or rows of B ldb apart. R <= MR is
// the number of rows computed (a short last panel of A runs a shorter kernel), mr <= R the rows stored. NV <=
// Simd::NV is the number of vectors of each B row that are read: a B panel with at most W real columns (the last
// panel when N mod NR <= W, e.g. N = 10 for a classifier's output layer) runs on its first vector only, half
// the multiply-adds of the full tile.
template <class T, int R, int NV = Simd<T>::NV, bool DA = false>
__attribute__((noinline)) void micro_kernel(i64 kc, const T* __restrict Ap, i64 lda, const T* __restrict Bp, i64 ldb,
                                            T* C, i64 ldc, int mr, int nr, bool accumulate) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int MR = S::MR;
  constexpr int W = S::W;
  constexpr int NR = NV * W;  // columns computed
  V acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = S::zero();
#if defined(__SSE__)
  // The C tile is read (or written) right after the loop: start bringing it in now.
  for (int r = 0; r < mr; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + nr - 1), _MM_HINT_T0);
  }
#endif

  if constexpr (DA) {
    // A read in place: R rows lda apart, contiguous along k. Rows in groups of three from one pointer each
    // (row 3g + q at ag[g] + q * lda: one base and one index register per group), so the loop needs few
    // registers besides the accumulators.
    constexpr int G = (R + 2) / 3;
    const T* ag[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++) ag[g] = Ap + 3 * g * lda;
    for (i64 k = 0; k < kc; k++) {
      V b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) b[v] = S::loadu(Bp + v * W);
#pragma GCC unroll 32
      for (int r = 0; r < R; r++) {
        V a = S::set1(ag[r / 3][(r % 3) * lda]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, b[v], acc[r][v]);
      }
#pragma GCC unroll 8
      for (int g = 0; g < G; g++) ag[g]++;
      Bp += ldb;
    }
  } else {
    for (i64 k = 0; k < kc; k++) {
      V b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) b[v] = S::loadu(Bp + v * W);
#pragma GCC unroll 32
      for (int r = 0; r < R; r++) {
        V a = S::set1(Ap[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, b[v], acc[r][v]);
      }
      Ap += MR;
      Bp += ldb;
    }
  }

  if (nr == NR) {
#pragma GCC unroll 32
    for (int r = 0; r < R; r++) {
      if (r < mr) {
        T* c = C + r * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
          V x = accumulate ? S::add(S::loadu(c + v * W), acc[r][v]) : acc[r][v];
          S::storeu(c + v * W, x);
        }
      }
    }
  } else {
    alignas(64) T tile[R * NR];
#pragma GCC unroll 32
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) S::storeu(tile + r * NR + v * W, acc[r][v]);
    for (int r = 0; r < mr; r++) {
      T* c = C + r * ldc;
      if (accumulate)
        for (int j = 0; j < nr; j++) c[j] += tile[r * NR + j];
      else
        for (int j = 0; j < nr; j++) c[j] = tile[r * NR + j];
    }
  }
}

// The micro-kernel for a panel of mr <= MR real rows and nr <= NR real columns: the full tile, or two thirds, half
// or (when its 2 x MR / 3 accumulators still cover the FMA latency: at least 8) a third of its rows for a short
// last A panel (M = 128 ends in an 8-row panel on the 12-row AVX-512 tile, M = 256 in a 4-row one: the full tile
// would spend a third or two of that panel's multiply-adds on padding), or one vector of columns for a narrow last
// B panel. Every variant computes each element of C with the same sequence of operations, so the results do not
// depend on which one runs. With DA, A is read in place (rows lda apart, see micro_kernel): full panels only.
template <class T, bool DA = false, int NV>
CR_INLINE void run_rows(i64 kc, const T* Ap, i64 lda, const T* Bp, i64 ldb, T* C, i64 ldc, int mr, int nr, bool acc) {
  constexpr int MR = Blocking<T>::MR, HR = (MR + 1) / 2, TR = 2 * MR / 3, QR = MR / 3;
  if (DA || mr > TR) micro_kernel<T, MR, NV, DA>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
  else if (TR > HR && mr > HR) micro_kernel<T, (TR > HR ? TR : MR), NV>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
  else if (QR * NV >= 8 && mr <= QR)
    micro_kernel<T, (QR * NV >= 8 ? QR : MR), NV>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
  else micro_kernel<T, HR, NV>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
}
template <class T, bool DA = false>
CR_INLINE void run_micro_kernel(i64 kc, const T* Ap, i64 lda, const T* Bp, i64 ldb, T* C, i64 ldc, int mr, int nr,
                                bool acc) {
  if (nr <= Simd<T>::W && Simd<T>::NV > 1) run_rows<T, DA, 1>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
  else run_rows<T, DA, Simd<T>::NV>(kc, Ap, lda, Bp, ldb, C, ldc, mr, nr, acc);
}

// Loaders whose B operand can be read in place (direct_b): a row-major matrix needs no packing when it is small.
template <class L, class = void>
struct HasDirectB : std::false_type {};
template <class L>
struct HasDirectB<L, std::void_t<decltype(&L::direct_b)>> : std::true_type {};
// ... and those whose A operand can be (direct_a: a row-major A, read by the micro-kernel in place of a panel).
template <class L, class = void>
struct HasDirectA : std::false_type {};
template <class L>
struct HasDirectA<L, std::void_t<decltype(&L::direct_a)>> : std::true_type {};

// ---------------------------------------------------------------------------------------------------------
// Four float rows (row r at r0 + r * rs, n long) transposed into four columns: dst[k * ld + r] = row r's [k],
// for k < n, in 4 x 4 blocks in SSE registers (the GEMM's panel packing and conv's weight-gradient layout).
#if defined(__SSE__)
CR_INLINE void transpose_4_rows(const float* r0, i64 rs, i64 n, float* dst, i64 ld) {
  const float* r1 = r0 + rs;
  const float* r2 = r1 + rs;
  const float* r3 = r2 + rs;
  i64 k = 0;
  for (; k + 4 <= n; k += 4) {
    __m128 a = _mm_loadu_ps(r0 + k), b = _mm_loadu_ps(r1 + k), c = _mm_loadu_ps(r2 + k), d = _mm_loadu_ps(r3 + k);
    _MM_TRANSPOSE4_PS(a, b, c, d);
    float* o = dst + k * ld;
    _mm_storeu_ps(o, a);
    _mm_storeu_ps(o + ld, b);
    _mm_storeu_ps(o + 2 * ld, c);
    _mm_storeu_ps(o + 3 * ld, d);
  }
  for (; k < n; k++) {
    float* o = dst + k * ld;
    o[0] = r0[k], o[1] = r1[k], o[2] = r2[k], o[3] = r3[k];
  }
}
#endif

#if defined(__AVX__)
// An 8 x 8 block of floats transposed: o[c * ld + r] = p[r * rs + c] for r, c < 8. Rows r and r + 4 share a
// register (4 columns each, one per 128-bit lane), so a 4 x 4 transpose within the lanes leaves a whole column in
// each register: 16 in-lane shuffles and no lane-crossing permute (15-25% faster than whole-row loads with
// permutes across lanes, measured on Zen 5).
CR_INLINE void transpose_8x8(const float* p, i64 rs, float* o, i64 ld) {
#define CR_LD2(r, c)                                                                  \
  _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p + (r) * rs + (c))), \
                       _mm_loadu_ps(p + ((r) + 4) * rs + (c)), 1)
  const __m256 x0 = CR_LD2(0, 0), x1 = CR_LD2(1, 0), x2 = CR_LD2(2, 0), x3 = CR_LD2(3, 0);
  const __m256 y0 = CR_LD2(0, 4), y1 = CR_LD2(1, 4), y2 = CR_LD2(2, 4), y3 = CR_LD2(3, 4);
#undef CR_LD2
  const __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
  const __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
  const __m256 s0 = _mm256_unpacklo_ps(y0, y1), s1 = _mm256_unpackhi_ps(y0, y1);
  const __m256 s2 = _mm256_unpacklo_ps(y2, y3), s3 = _mm256_unpackhi_ps(y2, y3);
  _mm256_storeu_ps(o + 0 * ld, _mm256_shuffle_ps(t0, t2, 0x44));
  _mm256_storeu_ps(o + 1 * ld, _mm256_shuffle_ps(t0, t2, 0xEE));
  _mm256_storeu_ps(o + 2 * ld, _mm256_shuffle_ps(t1, t3, 0x44));
  _mm256_storeu_ps(o + 3 * ld, _mm256_shuffle_ps(t1, t3, 0xEE));
  _mm256_storeu_ps(o + 4 * ld, _mm256_shuffle_ps(s0, s2, 0x44));
  _mm256_storeu_ps(o + 5 * ld, _mm256_shuffle_ps(s0, s2, 0xEE));
  _mm256_storeu_ps(o + 6 * ld, _mm256_shuffle_ps(s1, s3, 0x44));
  _mm256_storeu_ps(o + 7 * ld, _mm256_shuffle_ps(s1, s3, 0xEE));
}
#endif

// ---------------------------------------------------------------------------------------------------------
// n <= W rows that are contiguous along k (row r at base + r * rs), interleaved into a panel: dst[k * W + r] =
// base[r * rs + k] for r < n, k < kc, and 0 for n <= r < W. A transpose, done in 8 x 8 blocks in AVX registers
// (transpose_8x8; 4 x 4 in SSE ones) for float: an A panel of a row-major A, or a B panel of a transposed B
// (x @ W^T of a linear layer). The scalar loop cost about as much as the GEMM itself for n <= 256.
template <class T, int W>
CR_INLINE void pack_interleaved(T* __restrict dst, const T* base, i64 rs, i64 kc, int n = W) {
  int r0 = 0;
#if defined(__AVX__)
  if constexpr (std::is_same<T, float>::value) {
    for (; r0 + 8 <= n; r0 += 8) {
      const float* p = base + r0 * rs;
      i64 k = 0;
      for (; k + 8 <= kc; k += 8) transpose_8x8(p + k, rs, dst + k * W + r0, W);
      for (; k < kc; k++)
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) dst[k * W + r0 + r] = p[r * rs + k];
    }
  }
#endif
#if defined(__SSE__)
  if constexpr (std::is_same<T, float>::value) {
    for (; r0 + 4 <= n; r0 += 4) transpose_4_rows(base + r0 * rs, rs, kc, dst + r0, W);
    // two rows left (the AVX2 build's 6-row A panels): pairs (row 0, row 1) of 4 columns at a time
    for (; r0 + 2 <= n; r0 += 2) {
      const float* p0 = base + r0 * rs;
      const float* p1 = p0 + rs;
      i64 k = 0;
      for (; k + 4 <= kc; k += 4) {
        const __m128 a = _mm_loadu_ps(p0 + k), b = _mm_loadu_ps(p1 + k);
        const __m128 lo = _mm_unpacklo_ps(a, b), hi = _mm_unpackhi_ps(a, b);
        float* o = dst + k * W + r0;
        _mm_storel_pi(reinterpret_cast<__m64*>(o), lo);
        _mm_storeh_pi(reinterpret_cast<__m64*>(o + W), lo);
        _mm_storel_pi(reinterpret_cast<__m64*>(o + 2 * W), hi);
        _mm_storeh_pi(reinterpret_cast<__m64*>(o + 3 * W), hi);
      }
      for (; k < kc; k++) dst[k * W + r0] = p0[k], dst[k * W + r0 + 1] = p1[k];
    }
  }
#endif
  for (int r = r0; r < n; r++) {
    const T* p = base + r * rs;
    for (i64 k = 0; k < kc; k++) dst[k * W + r] = p[k];
  }
  if (n < W)
    for (i64 k = 0; k < kc; k++)
      for (int r = n; r < W; r++) dst[k * W + r] = T(0);
}

// `full` panels of R consecutive elements per line from kc lines `stride` apart (line k at base + k * stride, panel
// q's part of it at + q R), written line by line across all the panels: each line is read as one sequential
// stretch. Panel q is kc x R at dst + q kc R.
template <class T, int R>
CR_INLINE void pack_across(T* __restrict dst, const T* base, i64 stride, i64 kc, i64 full) {
  for (i64 k = 0; k < kc; k++) {
    const T* s = base + k * stride;
    T* d = dst + k * R;
    for (i64 q = 0; q < full; q++) std::memcpy(d + q * kc * R, s + q * R, R * sizeof(T));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loader of a strided matrix: element (i, j) is p[i * rs + j * cs] (any strides, including 0 and negative).
template <class T>
struct StridedMat {
  const T* p;
  i64 rs, cs;
  // Whether a row-major A may be read in place rather than packed (direct_a): `dot` sets it.
  bool direct = false;

  // Element (i, k) of A in place, if the loader allows it and rows are contiguous, else null.
  const T* direct_a(i64 i, i64 k) const { return direct && cs == 1 ? p + i * rs + k : nullptr; }

  // A panels for rows [i0, i0 + m) and columns [k0, k0 + kc): ceil(m / MR) panels of kc x MR.
  void pack_a(T* dst, i64 i0, i64 m, i64 k0, i64 kc) const {
    constexpr int MR = Blocking<T>::MR;
    if (rs == 1 && cs != 1 && m >= MR) {
      // A transposed (column-major, e.g. x^T of a weight gradient): column k of A holds rows i0 .. i0 + m
      // contiguously. Its full panels are copied k by k across all of them, so the source is read as one
      // sequential stream (MR-row pieces of it, panel by panel, were strided reads that left the copy waiting on
      // memory: 28% of a 512 x 4096 @ 4096 x 128 product's time, on the Intel Xeon of session 28).
      const i64 full = m / MR;
      pack_across<T, MR>(dst, p + i0 + k0 * cs, cs, kc, full);
      dst += full * kc * MR;
      i0 += full * MR;
      m -= full * MR;
    }
    for (i64 ip = 0; ip < m; ip += MR, dst += kc * MR) {
      const int rows = (int)imin<i64>(MR, m - ip);
      const T* base = p + (i0 + ip) * rs + k0 * cs;
      if (cs == 1) {
        pack_interleaved<T, MR>(dst, base, rs, kc, rows);
      } else {
        for (i64 k = 0; k < kc; k++) {
          const T* s = base + k * cs;
          int r = 0;
          for (; r < rows; r++) dst[k * MR + r] = s[r * rs];
          for (; r < MR; r++) dst[k * MR + r] = T(0);
        }
      }
    }
  }

  // Element (k, j) of B in place, if rows are contiguous (then row k + 1 starts rs elements later), else null.
  const T* direct_b(i64 k, i64 j) const { return cs == 1 ? p + k * rs + j : nullptr; }

  // B panels for rows [k0, k0 + kc) and columns [j0, j0 + n): ceil(n / NR) panels of kc x NR.
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    if (cs == 1 && n >= 2 * NR) {
      // Row-major B: its full panels are copied row by row across all of them, so each row of B is read as one
      // sequential stream (see pack_a's transposed case).
      const i64 full = n / NR;
      pack_across<T, NR>(dst, p + k0 * rs + j0, rs, kc, full);
      dst += full * kc * NR;
      j0 += full * NR;
      n -= full * NR;
    }
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) {
      const int cols = (int)imin<i64>(NR, n - jp);
      const T* base = p + k0 * rs + (j0 + jp) * cs;
      if (cols == NR && cs == 1) {
        for (i64 k = 0; k < kc; k++) std::memcpy(dst + k * NR, base + k * rs, NR * sizeof(T));
      } else if (cols == NR && rs == 1) {
        pack_interleaved<T, NR>(dst, base, cs, kc);
      } else if (rs == 1) {
        pack_interleaved<T, NR>(dst, base, cs, kc, cols);  // a narrow last panel (e.g. N = 10)
      } else {
        for (i64 k = 0; k < kc; k++) {
          const T* s = base + k * rs;
          int c = 0;
          for (; c < cols; c++) dst[k * NR + c] = s[c * cs];
          for (; c < NR; c++) dst[k * NR + c] = T(0);
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------------------
// C[M x N] (leading dimension ldc) = A[M x K] B[K x N], or += when `accumulate`. With `parallel`, packing and
// the tiles are spread over the pool; otherwise everything runs on the calling thread (tid = pool_tid()), which
// is how batched or per-image GEMMs run one per thread. Returns false if scratch memory is unavailable.
// Where the columns of C live. The identity map is a plain matrix; conv2d uses a map whose column space is
// several images, each padded to a multiple of NR columns so that no tile straddles two images.
struct IdentityColumns {
  // Offset of column j (a multiple of NR) from the start of its row, and how many of the nr columns from j
  // are real.
  CR_INLINE i64 offset(i64 j) const { return j; }
  CR_INLINE int valid(i64, int nr) const { return nr; }
};

// An epilogue hook: called once per finished block of C (rows [i0, i1), columns [j0, j1)), by the thread that
// computed it, right after its last K slice, while the block is still in that core's cache (jit's GEMM
// epilogue fusion runs the elementwise chain that follows a matrix product there). Identity columns only.
struct BlockEpilogue {
  virtual void block(i64 i0, i64 i1, i64 j0, i64 j1, int tid) const = 0;
};

template <class T, class LA, class LB, class CM>
bool gemm_mapped(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, const CM& cm, bool parallel,
                 bool accumulate, const BlockEpilogue* ep = nullptr);

template <class T, class LA, class LB>
bool gemm(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, bool parallel, bool accumulate,
          const BlockEpilogue* ep = nullptr) {
  return gemm_mapped<T>(M, N, K, la, lb, C, ldc, IdentityColumns{}, parallel, accumulate, ep);
}

// Loader wrappers for the split below: rows from r0 of A, columns from j0 of B and of C's column map.
template <class T, class L>
struct RowsFrom {
  const L& l;
  i64 r0;
  void pack_a(T* dst, i64 i0, i64 m, i64 k0, i64 kc) const { l.pack_a(dst, r0 + i0, m, k0, kc); }
  CR_INLINE const T* direct_a(i64 i, i64 k) const {
    if constexpr (HasDirectA<L>::value) return l.direct_a(r0 + i, k);
    else return nullptr;
  }
};
template <class T, class L>
struct ColsFrom {
  const L& l;
  i64 j0;
  void pack_b(T* dst, i64 k0, i64 kc, i64 j, i64 n) const { l.pack_b(dst, k0, kc, j0 + j, n); }
  CR_INLINE const T* direct_b(i64 k, i64 j) const {
    if constexpr (HasDirectB<L>::value) return l.direct_b(k, j0 + j);
    else return nullptr;
  }
};
template <class CM>
struct ColsMapFrom {
  const CM& cm;
  i64 j0;
  CR_INLINE i64 offset(i64 j) const { return cm.offset(j0 + j); }
  CR_INLINE int valid(i64 j, int nr) const { return cm.valid(j0 + j, nr); }
};
struct OffsetEpilogue final : BlockEpilogue {
  const BlockEpilogue* ep;
  i64 di, dj;
  void block(i64 i0, i64 i1, i64 j0, i64 j1, int tid) const override { ep->block(i0 + di, i1 + di, j0 + dj, j1 + dj, tid); }
};

template <class T, class LA, class LB, class CM>
bool gemm_blocked(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, const CM& cm, bool parallel,
                  bool accumulate, const BlockEpilogue* ep);

template <class T, class LA, class LB, class CM>
bool gemm_mapped(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, const CM& cm, bool parallel,
                 bool accumulate, const BlockEpilogue* ep) {
  using B = Blocking<T>;
  constexpr int MR = B::MR;
  constexpr int NR = B::NR;
  // Below ~2 MFLOP (about 10 us on one core) more threads did not pay on the 2-core machine this was measured
  // on: with the split below, the products of an MLP's 10-wide output layer (0.65 MFLOP) ran 0.95-1.3x as fast
  // on 2 threads as on 1, n = 128 (4.2 MFLOP) 1.6x.
  const int nth = parallel && K > 0 && 2.0 * (double)M * (double)N * (double)K >= 2e6 ? pool_threads() : 1;
  // Up to 4 threads, few rows of A (under 8 panels per thread, e.g. the batch-128 products of an MLP) or a
  // product under 64 MFLOP: rather than share the packed panels, each thread computes its own part of C with its
  // own packing: a range of rows of A (B read in place, or packed by each thread when that copy is the smaller
  // one) or a range of columns of B (A packed by each). A panel packed by one core and read by another is
  // invalidated in the reader's cache when it is packed again: that made packing ~5x slower on 2 threads and left
  // 128-row products no faster than on 1, and square products on the shared panels reached only 1.36-1.6x one
  // thread at n = 512 / 1024 on this project's 2-core machine (AMD EPYC, Zen 5) against 1.94-1.98x with their own
  // panels (bench/gemm-native.ts, idle, December 2026). The copies each thread makes of the other operand cost
  // about 2 / (rows per thread) of its arithmetic, little with few threads; with many, sharing the packed panels
  // saves more (and a thread preempted halfway is waited for here, where the shared path balances its tasks).
  if (nth > 1 && (nth <= 4 || (M + MR - 1) / MR < 8 * nth || 2.0 * (double)M * (double)N * (double)K < 64e6)) {
    static const CacheBlocking cb = cache_blocking<T>();
    const i64 rows = (M + nth - 1) / nth;
    bool direct = false;
    if constexpr (HasDirectB<LB>::value)
      direct = lb.direct_b(0, 0) != nullptr && ((double)K * (double)N * sizeof(T) <= (double)cb.direct_b ||
                                                (rows <= 16 * MR && (double)K * (double)N * sizeof(T) <= (double)cb.l2));
    const i64 nb = (N + NR - 1) / NR;
    const bool by_rows = direct || nb < nth || N <= M;
    const i64 cols = (nb + nth - 1) / nth * NR;
    bool ok = true;
    par_for(nth, 1, [&](i64 b, i64 e, int) {
      for (i64 r = b; r < e; r++) {
        OffsetEpilogue oe;
        oe.ep = ep;
        bool done;
        if (by_rows) {
          const i64 i0 = r * rows, m = imin(rows, M - i0);
          if (m <= 0) continue;
          oe.di = i0, oe.dj = 0;
          done = gemm_blocked<T>(m, N, K, RowsFrom<T, LA>{la, i0}, lb, C + i0 * ldc, ldc, cm, false, accumulate,
                                 ep ? &oe : nullptr);
        } else {
          const i64 j0 = r * cols, n = imin(cols, N - j0);
          if (n <= 0) continue;
          oe.di = 0, oe.dj = j0;
          done = gemm_blocked<T>(M, n, K, la, ColsFrom<T, LB>{lb, j0}, C, ldc, ColsMapFrom<CM>{cm, j0}, false,
                                 accumulate, ep ? &oe : nullptr);
        }
        if (!done) __atomic_store_n(&ok, false, __ATOMIC_RELAXED);
      }
    });
    return ok;
  }
  return gemm_blocked<T>(M, N, K, la, lb, C, ldc, cm, nth > 1, accumulate, ep);
}

// Whether R rows `stride` bytes apart, read in place by the micro-kernel, fall on so few L1 sets that they evict
// one another. The L1 data caches of this project's CPUs index sets by address bits 6-11 (32 KB 8-way on Zen 4,
// 48 KB 12-way on Zen 5 and recent Intel cores: 64 sets of 64-byte lines either way), so rows whose stride is a
// multiple of 4 KB all map to one set: 12 rows of A at n = 1024 (4 KB apart) need 12 ways of an 8-way set on
// Zen 4, and each pass over the A panel missed L1 (sgemm n = 1024 at 69-75% of peak against 90-94% at n = 512).
// More than 6 rows on one set (n = 512's 2 KB stride puts 6 on each of two sets, and ran as fast in place as
// packed): pack A instead. With it, n = 1024 ran at 85-91% of peak on one Zen 4 core (77-81% in place) and at
// 201-206 GFLOP/s on two (176-180).
CR_INLINE bool direct_a_conflicts(i64 stride, int R) {
  constexpr int kMaxPerSet = 6;
  int count[64] = {0};
  int worst = 0;
  for (int r = 0; r < R; r++) {
    const int set = (int)((((uint64_t)(r * stride)) >> 6) & 63);
    worst = imax(worst, ++count[set]);
  }
  return worst > kMaxPerSet;
}

template <class T, class LA, class LB, class CM>
bool gemm_blocked(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, const CM& cm, bool parallel,
                  bool accumulate, const BlockEpilogue* ep) {
  using B = Blocking<T>;
  constexpr int MR = B::MR;
  constexpr int NR = B::NR;
  if (M <= 0 || N <= 0) return true;
  if (K <= 0) {
    if (!accumulate)
      for (i64 i = 0; i < M; i++)
        for (i64 j = 0; j < N; j += NR) {
          const int nr = cm.valid(j, (int)imin<i64>(NR, N - j));
          if (nr > 0) std::memset(C + i * ldc + cm.offset(j), 0, nr * sizeof(T));
        }
    if (ep) ep->block(0, M, 0, N, pool_tid());
    return true;
  }
  static const CacheBlocking cb = cache_blocking<T>();
  const int nth = parallel ? pool_threads() : 1;
  const int tid = pool_tid();
  // Equal slices rather than full ones and a remainder (K = 512 runs as 2 x 256, not 384 + 128); column and
  // row blocks are multiples of the register tile.
  auto split = [](i64 n, i64 cap, i64 mult) {
    const i64 parts = (n + cap - 1) / cap;
    const i64 size = (n + parts - 1) / parts;
    return (size + mult - 1) / mult * mult;
  };
  const i64 KCb = split(K, cb.kc, 8);
  const i64 NCb = split(N, cb.nc, NR);
  const i64 MCb = split(M, cb.mc, MR);
  T* Ap = static_cast<T*>(scratch(tid, 0, sizeof(T) * MCb * imin(K, KCb)));
  T* Bp = static_cast<T*>(scratch(tid, 1, sizeof(T) * NCb * imin(K, KCb)));
  if (!Ap || !Bp) return false;
  // A row-major B is read in place rather than packed when it is small (within cb.direct_b: the packing
  // cost as much as the arithmetic for n <= 256) or when few rows of A pass over it (at most 16 A panels: the
  // copy of B is then several percent of the product, e.g. the batch-128 products of an MLP) and B fits in L2.
  // Its full NR-wide panels go to the micro-kernel with the row stride of B. A B larger than L2 comes from
  // memory, and the micro-kernel's strided reads of it waited there: a Transformer's weight gradient
  // x^T dy, 128 x 4096 @ 4096 x 512, ran at 124 GFLOP/s reading B in place against 146 packed (Intel Xeon,
  // session 28).
  const T* Bd = nullptr;
  i64 ldbd = 0;
  if constexpr (HasDirectB<LB>::value) {
    const double bbytes = (double)K * (double)N * sizeof(T);
    if (bbytes <= (double)cb.direct_b || (M <= 16 * MR && bbytes <= (double)cb.l2)) {
      Bd = lb.direct_b(0, 0);
      ldbd = Bd && K > 1 ? lb.direct_b(1, 0) - Bd : 0;
    }
  }
  // A row-major A (when its loader allows it, see StridedMat::direct) is read in place by the micro-kernel: its
  // full MR-row panels are not packed (only a short last one is). Packing A was a transpose costing 3-8% of the
  // batch-128 products of an MLP (x W^T: 128 x 784 @ 784 x 512 and smaller).
  const T* Ad = nullptr;
  i64 ldad = 0;
  if constexpr (HasDirectA<LA>::value) {
    Ad = la.direct_a(0, 0);
    ldad = Ad && M > 1 ? la.direct_a(1, 0) - Ad : 0;
    if (Ad && M > 1 && direct_a_conflicts(ldad * (i64)sizeof(T), MR)) Ad = nullptr;
  }

  for (i64 pc = 0; pc < K; pc += KCb) {
    const i64 kc = imin(KCb, K - pc);
    const bool acc = accumulate || pc > 0;
    const bool final_slice = pc + kc >= K;
    for (i64 ic = 0; ic < M; ic += MCb) {
      const i64 mc = imin(MCb, M - ic);
      const i64 na = (mc + MR - 1) / MR;  // A panels of this row block
      for (i64 jc = 0; jc < N; jc += NCb) {
        const i64 nc = imin(NCb, N - jc);
        const i64 nb = (nc + NR - 1) / NR;  // B panels of this column block
        // Pack: items [0, nb) are the B panels of this block; with the first column block, items
        // [nb, nb + na) pack the row block of A, which then serves every column block.
        // A is packed GA panels per item: a loader may then read several panels' rows in one pass (a transposed
        // A's columns as one stream, see StridedMat::pack_a).
        const i64 GA = Ad ? 1 : 8;
        const i64 GB = Bd ? 1 : 4;
        const i64 nbi = (nb + GB - 1) / GB;  // B pack items
        const i64 npack = nbi + (jc == 0 ? (na + GA - 1) / GA : 0);
        auto pack = [&](i64 t) {
          if (t < nbi) {
            const i64 j = t * GB * NR;
            if (Bd && nc - j >= NR) return;  // read in place
            lb.pack_b(Bp + t * GB * kc * NR, pc, kc, jc + j, imin<i64>(GB * NR, nc - j));
          } else {
            t -= nbi;
            const i64 i = t * GA * MR;
            if (Ad && mc - i >= MR) return;  // read in place
            la.pack_a(Ap + t * GA * kc * MR, ic + i, imin<i64>(GA * MR, mc - i), pc, kc);
          }
        };
        // Compute: units of one A panel times a range of B panels (all of them, or a part when A has few
        // panels); each A panel stays in L1 while the unit's B panels stream past it from L2. One thread runs
        // every unit in one task. Several take tasks of consecutive units, guided: each task is 1 / (2 threads)
        // of the units left, so tasks start large (few hand-offs of the shared task counter) and end at single
        // units (no thread idles long at the end of the block; 4 equal tasks per thread left one idle for up
        // to 10% of the time at n = 256 and 512).
        i64 tb = 1;
        if (nth > 1 && na < 8 * nth) tb = imin(nb, (8 * nth + na - 1) / na);
        const i64 pb = (nb + tb - 1) / tb;
        tb = (nb + pb - 1) / pb;
        const i64 units = na * tb;
        constexpr int kMaxTasks = 256;
        i64 bound[kMaxTasks + 1];
        bound[0] = 0;
        int ntask = 0;
        for (i64 u = 0; u < units;) {
          i64 c = nth > 1 ? imax<i64>(1, (units - u) / (2 * nth)) : units - u;
          if (ntask == kMaxTasks - 1) c = units - u;
          u += c;
          bound[++ntask] = u;
        }
        auto compute = [&](i64 t, int ctid) {
          for (i64 u = bound[t]; u < bound[t + 1]; u++) {
            const i64 ib = u / tb;
            const i64 b0 = (u % tb) * pb, b1 = imin(nb, b0 + pb);
            const i64 i = ib * MR;
            const int mr = (int)imin<i64>(MR, mc - i);
            const bool da = Ad && mr == MR;
            const T* ap = da ? Ad + (ic + i) * ldad + pc : Ap + ib * kc * MR;
            T* ci = C + (ic + i) * ldc;
            for (i64 jb = b0; jb < b1; jb++) {
              const i64 j = jb * NR;
              const int nr = cm.valid(jc + j, (int)imin<i64>(NR, nc - j));
              if (nr <= 0) continue;
              const bool db = Bd && nc - j >= NR;
              const T* bp = db ? Bd + pc * ldbd + jc + j : Bp + jb * kc * NR;
              const i64 ldb = db ? ldbd : NR;
              T* c = ci + cm.offset(jc + j);
              if (da) run_micro_kernel<T, true>(kc, ap, ldad, bp, ldb, c, ldc, mr, nr, acc);
              else run_micro_kernel<T>(kc, ap, 0, bp, ldb, c, ldc, mr, nr, acc);
            }
            if (ep && final_slice && b0 < b1)
              ep->block(ic + i, ic + imin(mc, i + MR), jc + b0 * NR, jc + imin(nc, b1 * NR), ctid);
          }
        };
        if (nth > 1) {
          // One parallel region per block: the pack items first, then the compute tasks, which wait until
          // every pack item is done (a spin on a counter rather than a second region: it saves a wake-up and
          // a join per block). Items are handed out in order, so by the time a thread takes a compute task
          // every pack item has been taken by a thread that is running it: the wait always ends.
          i64 packed = 0;
          par_for(npack + ntask, 1, [&](i64 b, i64 e, int ctid) {
            for (i64 t = b; t < e; t++) {
              if (t < npack) {
                pack(t);
                __atomic_add_fetch(&packed, 1, __ATOMIC_RELEASE);
                continue;
              }
              for (int spins = 0; __atomic_load_n(&packed, __ATOMIC_ACQUIRE) < npack; spins++) {
#if defined(__SSE2__)
                _mm_pause();
#endif
                if ((spins & 1023) == 1023) sched_yield();  // the packing thread may share our CPU
              }
              compute(t - npack, ctid);
            }
          });
        } else {
          for (i64 t = 0; t < npack; t++) pack(t);
          compute(0, tid);
        }
      }
    }
  }
  return true;
}

}  // namespace CR_ISA_NS
}  // namespace cr
