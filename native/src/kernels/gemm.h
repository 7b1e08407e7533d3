// Packed-panel GEMM (C = A B, float32 / float64) in the style of BLIS/GotoBLAS, with a register-blocked
// micro-kernel per instruction set.
//
// C (M x N, row-major, leading dimension ldc) is computed in blocks: for each NC-wide column block and each
// KC-deep slice of the K dimension, the slice of B is packed into NR-wide panels (row k of a panel holds the NR
// values B[k, j..j+NR), zero-padded) and the slice of A into MR-tall panels (column k holds A[i..i+MR, k]).
// The micro-kernel then computes an MR x NR tile of C as KC rank-1 updates: per k it loads NR/W vectors of the
// B panel, broadcasts MR scalars of the A panel and issues MR * NR/W fused multiply-adds into accumulators that
// stay in registers for the whole slice (AVX-512 float32: a 12 x 32 tile = 24 zmm accumulators).
//
// A and B are not matrices here but *loaders*: objects with pack_a / pack_b methods that write panels. The
// strided-matrix loader below serves `dot` (any strides, so every transpose combination and negative strides);
// conv2d supplies loaders that build im2col panels on the fly, so no im2col matrix is ever materialised.
#pragma once

#include "isa.h"

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

// Blocking: KC deep slices (an A panel of MR x KC stays in L1 next to a B panel), NC wide B blocks (a packed
// B block of KC x NC fits in L2).
template <class T>
struct Blocking {
  static constexpr int MR = Simd<T>::MR;
  static constexpr int NR = Simd<T>::NV * Simd<T>::W;
  static constexpr i64 KC = sizeof(T) == 4 ? 384 : 256;
  static constexpr i64 NC = sizeof(T) == 4 ? 768 : 512;
};

// ---------------------------------------------------------------------------------------------------------
// The micro-kernel: C[0..mr, 0..nr) (+)= sum_k Ap[k][0..MR) (outer) Bp[k][0..NR), over kc steps.
// Ap is an MR-interleaved A panel, Bp an NR-interleaved B panel (both 64-byte aligned, zero-padded).
template <class T>
__attribute__((noinline)) void micro_kernel(i64 kc, const T* __restrict Ap, const T* __restrict Bp, T* C,
                                            i64 ldc, int mr, int nr, bool accumulate) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int MR = S::MR;
  constexpr int NV = S::NV;
  constexpr int W = S::W;
  constexpr int NR = NV * W;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = S::zero();

  for (i64 k = 0; k < kc; k++) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = S::load(Bp + v * W);
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      V a = S::set1(Ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = S::fma(a, b[v], acc[r][v]);
    }
    Ap += MR;
    Bp += NR;
  }

  if (nr == NR) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
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
    alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++)
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

// ---------------------------------------------------------------------------------------------------------
// Loader of a strided matrix: element (i, j) is p[i * rs + j * cs] (any strides, including 0 and negative).
template <class T>
struct StridedMat {
  const T* p;
  i64 rs, cs;

  // A panels for rows [i0, i0 + m) and columns [k0, k0 + kc): ceil(m / MR) panels of kc x MR.
  void pack_a(T* dst, i64 i0, i64 m, i64 k0, i64 kc) const {
    constexpr int MR = Blocking<T>::MR;
    for (i64 ip = 0; ip < m; ip += MR, dst += kc * MR) {
      const int rows = (int)imin<i64>(MR, m - ip);
      const T* base = p + (i0 + ip) * rs + k0 * cs;
      if (rows == MR && cs == 1) {
        const T* rp[MR];
        for (int r = 0; r < MR; r++) rp[r] = base + r * rs;
        for (i64 k = 0; k < kc; k++)
#pragma GCC unroll 16
          for (int r = 0; r < MR; r++) dst[k * MR + r] = rp[r][k];
      } else if (rows == MR && rs == 1) {
        for (i64 k = 0; k < kc; k++) {
          const T* s = base + k * cs;
#pragma GCC unroll 16
          for (int r = 0; r < MR; r++) dst[k * MR + r] = s[r];
        }
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

  // B panels for rows [k0, k0 + kc) and columns [j0, j0 + n): ceil(n / NR) panels of kc x NR.
  void pack_b(T* dst, i64 k0, i64 kc, i64 j0, i64 n) const {
    constexpr int NR = Blocking<T>::NR;
    for (i64 jp = 0; jp < n; jp += NR, dst += kc * NR) {
      const int cols = (int)imin<i64>(NR, n - jp);
      const T* base = p + k0 * rs + (j0 + jp) * cs;
      if (cols == NR && cs == 1) {
        for (i64 k = 0; k < kc; k++) std::memcpy(dst + k * NR, base + k * rs, NR * sizeof(T));
      } else if (rs == 1) {
        int c = 0;
        for (; c < cols; c++) {
          const T* s = base + c * cs;
          for (i64 k = 0; k < kc; k++) dst[k * NR + c] = s[k];
        }
        for (; c < NR; c++)
          for (i64 k = 0; k < kc; k++) dst[k * NR + c] = T(0);
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

template <class T, class LA, class LB, class CM>
bool gemm_mapped(i64 M, i64 N, i64 K, const LA& la, const LB& lb, T* C, i64 ldc, const CM& cm, bool parallel,
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
  const int nth = parallel ? pool_threads() : 1;
  const int tid = pool_tid();
  const i64 kc_max = imin(K, B::KC);
  const i64 nc_max = imin(N, B::NC);
  const i64 mpad = (M + MR - 1) / MR * MR;
  const i64 npad = (nc_max + NR - 1) / NR * NR;
  T* Ap = static_cast<T*>(scratch(tid, 0, sizeof(T) * mpad * kc_max));
  T* Bp = static_cast<T*>(scratch(tid, 1, sizeof(T) * npad * kc_max));
  if (!Ap || !Bp) return false;
  const i64 na = mpad / MR;  // A panels

  for (i64 jc = 0; jc < N; jc += B::NC) {
    const i64 nc = imin(B::NC, N - jc);
    const i64 nb = (nc + NR - 1) / NR;  // B panels in this block
    for (i64 pc = 0; pc < K; pc += B::KC) {
      const i64 kc = imin(B::KC, K - pc);
      const bool acc = accumulate || pc > 0;
      // Pack: tasks [0, nb) are B panels, [nb, nb + na) are A panels (re-packed per column block: A is the
      // smaller operand in every use here, and this keeps the packed slice of A next to the work).
      auto pack = [&](i64 b, i64 e, int) {
        for (i64 t = b; t < e; t++) {
          if (t < nb) {
            const i64 j = t * NR;
            lb.pack_b(Bp + t * kc * NR, pc, kc, jc + j, imin<i64>(NR, nc - j));
          } else {
            const i64 i = (t - nb) * MR;
            la.pack_a(Ap + (t - nb) * kc * MR, i, imin<i64>(MR, M - i), pc, kc);
          }
        }
      };
      // Compute: a grid of tasks, each a block of MR-panels of A times a block of NR-panels of B. With one
      // thread it is a single task; with several, about 4 tasks per thread for dynamic balance.
      i64 ta = 1, tb = 1;
      if (nth > 1) {
        const i64 want = 4 * nth;
        ta = imin(na, want);
        tb = imin(nb, (want + ta - 1) / ta);
      }
      const i64 pa = (na + ta - 1) / ta, pb = (nb + tb - 1) / tb;
      ta = (na + pa - 1) / pa;
      tb = (nb + pb - 1) / pb;
      const bool final_slice = pc + kc >= K;
      auto compute = [&](i64 b, i64 e, int ctid) {
        for (i64 t = b; t < e; t++) {
          const i64 a0 = (t / tb) * pa, a1 = imin(na, a0 + pa);
          const i64 b0 = (t % tb) * pb, b1 = imin(nb, b0 + pb);
          for (i64 jb = b0; jb < b1; jb++) {
            const i64 j = jb * NR;
            const int nr = cm.valid(jc + j, (int)imin<i64>(NR, nc - j));
            if (nr <= 0) continue;
            const T* bp = Bp + jb * kc * NR;
            T* cj = C + cm.offset(jc + j);
            for (i64 ib = a0; ib < a1; ib++) {
              const i64 i = ib * MR;
              const int mr = (int)imin<i64>(MR, M - i);
              micro_kernel<T>(kc, Ap + ib * kc * MR, bp, cj + i * ldc, ldc, mr, nr, acc);
            }
          }
          if (ep && final_slice && a0 < a1 && b0 < b1)
            ep->block(a0 * MR, imin(M, a1 * MR), jc + b0 * NR, jc + imin(nc, b1 * NR), ctid);
        }
      };
      if (nth > 1) {
        par_for(nb + na, 1, pack);
        par_for(ta * tb, 1, compute);
      } else {
        pack(0, nb + na, tid);
        compute(0, ta * tb, tid);
      }
    }
  }
  return true;
}

}  // namespace CR_ISA_NS
}  // namespace cr
