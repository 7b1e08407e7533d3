// Batched matrix product (the `dot` kernel): out[b] = a[b] @ b[b] for float32, float64 and int32.
//
// Float matrices go through the packed GEMM of gemm.h, reading a and b through their strides, so transposed
// operands (a.mT arrives as strides [1, M]) cost nothing extra: the packing routines read them in whichever
// order is contiguous (a row-major a is read in place; x @ W^T with few rows is computed as (W x^T)^T, see
// swap_transposed_b). Many small matrices are spread one per thread; a few large ones use all threads each.
// Tiny products skip packing. int32 is exact with wrap-around (i-k-j loops in uint32).
#include "dot_ep.h"
#include "gemm.h"
#include "map.h"
#include "scalar.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// Small products: direct i-k-j loops, accumulating in T like the micro-kernel (no packing cost).
template <class T>
void small_gemm(i64 M, i64 N, i64 K, const T* a, i64 as0, i64 as1, const T* b, i64 bs0, i64 bs1, T* c) {
  for (i64 i = 0; i < M; i++) {
    T* ci = c + i * N;
    for (i64 j = 0; j < N; j++) ci[j] = T(0);
    for (i64 k = 0; k < K; k++) {
      const T av = a[i * as0 + k * as1];
      const T* bk = b + k * bs0;
      if (bs1 == 1)
        for (i64 j = 0; j < N; j++) ci[j] += av * bk[j];
      else
        for (i64 j = 0; j < N; j++) ci[j] += av * bk[j * bs1];
    }
  }
}

// sum_k x[k*sx] * y[k*sy], with 64 bytes of independent partial sums when both runs are contiguous.
template <class T>
CR_INLINE T dot_run(const T* x, i64 sx, const T* y, i64 sy, i64 K) {
  if (sx == 1 && sy == 1 && K >= 64) {
    constexpr int L = 64 / sizeof(T);
    T acc[L];
    for (int l = 0; l < L; l++) acc[l] = T(0);
    i64 k = 0;
    for (; k + L <= K; k += L)
      for (int l = 0; l < L; l++) acc[l] += x[k + l] * y[k + l];
    T s = T(0);
    for (int l = 0; l < L; l++) s += acc[l];
    for (; k < K; k++) s += x[k] * y[k];
    return s;
  }
  T s = T(0);
  for (i64 k = 0; k < K; k++) s += x[k * sx] * y[k * sy];
  return s;
}

// Matrix-vector shapes (M == 1 or N == 1), where packing for the GEMM micro-kernel would cost as much as the
// product itself: dot products along K when the operands are contiguous along K, else row updates
// (c += a_k * b[k, :]) along a contiguous row of b. Parallel over output chunks when `parallel`.
template <class T>
void matvec(i64 M, i64 N, i64 K, const T* a, i64 as0, i64 as1, const T* b, i64 bs0, i64 bs1, T* c,
            bool parallel) {
  const i64 grain = imax<i64>(1, 32768 / imax<i64>(K, 1));
  auto run = [&](i64 n, auto&& body) {
    if (parallel) par_for(n, grain, body);
    else body((i64)0, n, 0);
  };
  if (N == 1 && as0 == 1 && as1 != 1) {  // columns of a contiguous: c[i] += a[i, k] * b[k] over row chunks
    run(M, [&](i64 lo, i64 hi, int) {
      for (i64 i = lo; i < hi; i++) c[i] = T(0);
      for (i64 k = 0; k < K; k++) {
        const T bv = b[k * bs0];
        const T* ak = a + k * as1;
        for (i64 i = lo; i < hi; i++) c[i] += ak[i] * bv;
      }
    });
  } else if (N == 1) {  // c[i] = a[i, :] . b[:, 0]
    run(M, [&](i64 lo, i64 hi, int) {
      for (i64 i = lo; i < hi; i++) c[i] = dot_run(a + i * as0, as1, b, bs0, K);
    });
  } else if (bs1 == 1) {  // M == 1, rows of b contiguous: c[j] += a[k] * b[k, j] over column chunks
    run(N, [&](i64 lo, i64 hi, int) {
      for (i64 j = lo; j < hi; j++) c[j] = T(0);
      for (i64 k = 0; k < K; k++) {
        const T av = a[k * as1];
        const T* bk = b + k * bs0;
        for (i64 j = lo; j < hi; j++) c[j] += av * bk[j];
      }
    });
  } else {  // M == 1: c[j] = a[0, :] . b[:, j]
    run(N, [&](i64 lo, i64 hi, int) {
      for (i64 j = lo; j < hi; j++) c[j] = dot_run(a, as1, b + j * bs1, bs0, K);
    });
  }
}

void int_gemm(i64 M, i64 N, i64 K, const int32_t* a, i64 as0, i64 as1, const int32_t* b, i64 bs0, i64 bs1,
              int32_t* c) {
  uint32_t* cu = reinterpret_cast<uint32_t*>(c);
  for (i64 i = 0; i < M; i++) {
    uint32_t* ci = cu + i * N;
    for (i64 j = 0; j < N; j++) ci[j] = 0;
    for (i64 k = 0; k < K; k++) {
      const uint32_t av = (uint32_t)a[i * as0 + k * as1];
      const int32_t* bk = b + k * bs0;
      if (bs1 == 1)
        for (i64 j = 0; j < N; j++) ci[j] += av * (uint32_t)bk[j];
      else
        for (i64 j = 0; j < N; j++) ci[j] += av * (uint32_t)bk[j * bs1];
    }
  }
}

// dst[i * ldd + j] = src[j * lds + i] for i < m, j < n (dst m x n, src n x m): in 8 x 8 blocks in AVX registers
// for float (transpose_8x8), element by element otherwise and at the edges.
template <class T>
void transpose_into(T* __restrict dst, i64 ldd, const T* __restrict src, i64 lds, i64 m, i64 n) {
  i64 i0 = 0;
#if defined(__AVX__)
  if constexpr (std::is_same<T, float>::value) {
    for (; i0 + 8 <= m; i0 += 8) {
      i64 j = 0;
      for (; j + 8 <= n; j += 8) {
        transpose_8x8(src + j * lds + i0, lds, dst + i0 * ldd + j, ldd);
      }
      for (; j < n; j++)
        for (i64 i = i0; i < i0 + 8; i++) dst[i * ldd + j] = src[j * lds + i];
    }
  }
#endif
  for (i64 i = i0; i < m; i++)
    for (i64 j = 0; j < n; j++) dst[i * ldd + j] = src[j * lds + i];
}

// Horizontal sums of vectors (the narrow product below).
CR_INLINE float hsum(__m128 v) {
  const __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
CR_INLINE double hsum(__m128d v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
#if CR_ISA_LEVEL >= 1
CR_INLINE float hsum(__m256 v) { return hsum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }
CR_INLINE double hsum(__m256d v) {
  return hsum(_mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1)));
}
#endif
#if CR_ISA_LEVEL == 2
CR_INLINE float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
CR_INLINE double hsum(__m512d v) { return _mm512_reduce_add_pd(v); }
#endif

// x @ W^T with a narrow W (N <= kNarrowN rows, e.g. a classifier's 10 outputs): both operands are contiguous
// along k, so C[i, j] = A[i, :] . W[j, :] is computed as dot products vectorised along k, RA rows of A by all N
// rows of W at a time (RA x N accumulators, each reduced to its sum at the end), with no packing. The GEMM would
// transpose W into a panel and run its one-vector kernel, at most N / W of whose lanes are real (10 of 16): the
// batch-128 10-wide products (K = 128, 256, 784) ran at 26-27% of the FMA peak that way, at 55-67% this way (one
// Zen 5 core, AVX-512; AVX2 39% -> 70%). The sums are in another order than the GEMM's.
constexpr int kNarrowN = 12;
template <class T, int RA, int NB>
__attribute__((noinline)) void narrow_bt_tile(i64 K, const T* a, i64 lda, const T* bt, i64 ldb, T* c, i64 ldc) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W;
  V acc[RA][NB];
#pragma GCC unroll 16
  for (int r = 0; r < RA; r++)
#pragma GCC unroll 16
    for (int j = 0; j < NB; j++) acc[r][j] = S::zero();
  i64 k = 0;
  for (; k + W <= K; k += W) {
    V av[RA];
#pragma GCC unroll 16
    for (int r = 0; r < RA; r++) av[r] = S::loadu(a + r * lda + k);
#pragma GCC unroll 16
    for (int j = 0; j < NB; j++) {
      V bv = S::loadu(bt + j * ldb + k);
      // Held in a register for the RA multiply-adds: GCC otherwise folds the load into each of them, and the
      // doubled 64-byte loads ran the loop at 60% of this speed (Zen 5).
      if constexpr (RA > 1) asm("" : "+v"(bv));
#pragma GCC unroll 16
      for (int r = 0; r < RA; r++) acc[r][j] = S::fma(av[r], bv, acc[r][j]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RA; r++)
#pragma GCC unroll 16
    for (int j = 0; j < NB; j++) c[r * ldc + j] = hsum(acc[r][j]);
  if (k < K)
    for (int r = 0; r < RA; r++)
      for (int j = 0; j < NB; j++) {
        T s = c[r * ldc + j];
        for (i64 q = k; q < K; q++) s += a[r * lda + q] * bt[j * ldb + q];
        c[r * ldc + j] = s;
      }
}

// Rows [i0, i1) of the narrow product (N <= kNarrowN; C row-major with N columns).
template <class T>
void narrow_bt(i64 N, i64 K, const T* a, i64 lda, const T* bt, i64 ldb, T* c, i64 i0, i64 i1) {
  // two rows of A at a time where 32 vector registers hold 2 x 12 accumulators (AVX-512), else one
  constexpr int RA = CR_ISA_LEVEL == 2 ? 2 : 1;
  auto tile = [&](auto ra, i64 i) {
    constexpr int R = decltype(ra)::value;
    const T* ai = a + i * lda;
    T* ci = c + i * N;
    switch (N) {
#define CR_NARROW(n) \
  case n: narrow_bt_tile<T, R, n>(K, ai, lda, bt, ldb, ci, N); break;
      CR_NARROW(1) CR_NARROW(2) CR_NARROW(3) CR_NARROW(4) CR_NARROW(5) CR_NARROW(6)
      CR_NARROW(7) CR_NARROW(8) CR_NARROW(9) CR_NARROW(10) CR_NARROW(11) CR_NARROW(12)
#undef CR_NARROW
      default: break;
    }
  };
  i64 i = i0;
  for (; i + RA <= i1; i += RA) tile(std::integral_constant<int, RA>{}, i);
  for (; i < i1; i++) tile(std::integral_constant<int, 1>{}, i);
}

// Whether C = A B with a row-major A (M x K) and a transposed B (B^T row-major: x @ W^T of a linear layer) is
// better computed as C^T = B^T A^T, then transposed. The GEMM reads a row-major A operand in place but packs its
// B operand into panels of columns, a transpose of a transposed B: computed directly, the N x K elements of B are
// transposed; swapped, the M x K elements of A and the M x N of the product. With M (the batch of a linear layer)
// small against N and K, the swap transposes up to 2-3x fewer elements: on one Zen 5 core (AVX-512) x W^T at
// 128 x 784 @ 784 x 512 went from ~86% to ~90% of the FMA peak, 128 x 512 @ 512 x 256 gained 1-3%, while
// 128 x 256 @ 256 x 128 (ratio 1.5) lost 5% swapped: hence the margin below break-even. The product's transpose
// needs an M x N scratch buffer, at most 4M elements.
CR_INLINE bool swap_transposed_b(i64 M, i64 N, i64 K, i64 as1, i64 bs0) {
  return as1 == 1 && bs0 == 1 && (double)M * (double)N <= (double)(1 << 22) &&
         (double)M * (double)(K + N) < 0.85 * (double)N * (double)K;
}

struct DotShape {
  i64 M, N, K, batch;
  Iter<2> bit;  // batch axes: operand 0 = a, 1 = b
};

// The GEMM's block hook for matrix `mat` of a batch, forwarding to a DotEpilogue.
struct MatEpilogue final : BlockEpilogue {
  const DotEpilogue* ep;
  i64 mat;
  void block(i64 i0, i64 i1, i64 j0, i64 j1, int tid) const override { ep->rows(mat, i0, i1, j0, j1, tid); }
};

template <class T>
Err dot_float(const View& a, const View& b, T* out, const DotShape& s, const DotEpilogue* ep) {
  const i64 M = s.M, N = s.N, K = s.K;
  const int nd = a.ndim;
  const i64 as0 = a.strides[nd - 2], as1 = a.strides[nd - 1];
  const i64 bs0 = b.strides[nd - 2], bs1 = b.strides[nd - 1];
  const T* ap = static_cast<const T*>(a.data) + a.offset;
  const T* bp = static_cast<const T*>(b.data) + b.offset;
  const double flops = (double)M * N * K;
  const bool tiny = flops <= 4096.0 || K == 0;
  const bool vec = M == 1 || N == 1;
  bool ok = true;
  auto one = [&](i64 ao, i64 bo, i64 mat, bool parallel, int tid) {
    T* c = out + mat * M * N;
    if (tiny) {
      small_gemm<T>(M, N, K, ap + ao, as0, as1, bp + bo, bs0, bs1, c);
      if (ep) ep->rows(mat, 0, M, 0, N, tid);
    } else if (vec) {
      matvec<T>(M, N, K, ap + ao, as0, as1, bp + bo, bs0, bs1, c, parallel);
      if (ep) ep->rows(mat, 0, M, 0, N, tid);
    } else if (N <= kNarrowN && as1 == 1 && bs0 == 1 && K >= 4 * Simd<T>::W) {
      const T* a0 = ap + ao;
      const T* b0 = bp + bo;
      auto rows = [&](i64 lo, i64 hi, int ctid) {
        narrow_bt<T>(N, K, a0, as0, b0, bs1, c, lo, hi);
        if (ep) ep->rows(mat, lo, hi, 0, N, ctid);
      };
      if (parallel && flops >= 1e6) par_for(M, imax<i64>(8, (i64)(65536.0 / (double)(N * K))), rows);
      else rows(0, M, tid);
    } else if (swap_transposed_b(M, N, K, as1, bs0)) {
      // C^T (N x M) = B^T A^T into scratch, then transposed into C: B^T row-major is read in place as the
      // GEMM's A operand, A^T packed as its B; every element is the same sum in the same order as unswapped.
      T* ct = static_cast<T*>(scratch(tid, 2, sizeof(T) * (size_t)(M * N)));
      StridedMat<T> la{bp + bo, bs1, bs0, true}, lb{ap + ao, as1, as0};
      if (!ct || !gemm<T>(N, M, K, la, lb, ct, M, parallel, false)) {
        ok = false;
        return;
      }
      // Transposed 32 rows at a time, each chunk followed by the epilogue on its rows while they are in cache
      // (spread over the threads with the chunks, as the GEMM spreads its blocks).
      auto finish = [&](i64 lo, i64 hi, int ctid) {
        for (i64 q = lo; q < hi; q++) {
          const i64 i0 = q * 32, i1 = imin(M, i0 + 32);
          transpose_into<T>(c + i0 * N, N, ct + i0, M, i1 - i0, N);
          if (ep) ep->rows(mat, i0, i1, 0, N, ctid);
        }
      };
      const i64 chunks = (M + 31) / 32;
      if (parallel) par_for(chunks, imax<i64>(1, 8192 / imax<i64>(32 * N, 1)), finish);
      else finish(0, chunks, tid);
    } else {
      StridedMat<T> la{ap + ao, as0, as1, true}, lb{bp + bo, bs0, bs1};
      MatEpilogue me;
      me.ep = ep, me.mat = mat;
      if (!gemm<T>(M, N, K, la, lb, c, N, parallel, false, ep ? &me : nullptr)) ok = false;
    }
  };
  const Iter<2>& bit = s.bit;
  const i64 sa = bit.st[0][bit.nd - 1], sb = bit.st[1][bit.nd - 1];
  const bool per_thread = s.batch > 1 && (flops < 2e6 || s.batch >= 4 * pool_threads());
  if (per_thread || tiny) {
    // One matrix per task (each thread packs into its own scratch).
    par_for(s.batch, imax<i64>(1, (i64)(65536.0 / (flops + 1))), [&](i64 lo, i64 hi, int tid) {
      i64 idx = lo;
      bit.walk(lo, hi, [&](const i64* off, i64 len) {
        for (i64 t = 0; t < len; t++, idx++) one(off[0] + t * sa, off[1] + t * sb, idx, false, tid);
      });
    });
  } else {
    i64 idx = 0;
    bit.walk(0, s.batch, [&](const i64* off, i64 len) {
      for (i64 t = 0; t < len; t++, idx++) one(off[0] + t * sa, off[1] + t * sb, idx, true, pool_tid());
    });
  }
  return ok ? nullptr : "dot: out of memory";
}

Err dot_int(const View& a, const View& b, int32_t* out, const DotShape& s) {
  const i64 M = s.M, N = s.N, K = s.K;
  const int nd = a.ndim;
  const i64 as0 = a.strides[nd - 2], as1 = a.strides[nd - 1];
  const i64 bs0 = b.strides[nd - 2], bs1 = b.strides[nd - 1];
  const int32_t* ap = static_cast<const int32_t*>(a.data) + a.offset;
  const int32_t* bp = static_cast<const int32_t*>(b.data) + b.offset;
  const Iter<2>& bit = s.bit;
  const i64 sa = bit.st[0][bit.nd - 1], sb = bit.st[1][bit.nd - 1];
  // Parallel over (batch, row) pairs: row i of matrix t is independent of every other row.
  const i64 rows = s.batch * M;
  par_for(rows, imax<i64>(1, 65536 / (N * K + 1)), [&](i64 lo, i64 hi, int) {
    for (i64 r = lo; r < hi; r++) {
      const i64 t = r / M, i = r % M;
      i64 ao = 0, bo = 0;
      bit.walk(t, t + 1, [&](const i64* off, i64) {
        ao = off[0];
        bo = off[1];
      });
      (void)sa;
      (void)sb;
      int_gemm(1, N, K, ap + ao + i * as0, as0, as1, bp + bo, bs0, bs1, out + r * N);
    }
  });
  return nullptr;
}

}  // namespace

Err dot(const View& a, const View& b, const Out& out) { return dot_ep(a, b, out, nullptr); }

Err dot_ep(const View& a, const View& b, const Out& out, const DotEpilogue* ep) {
  const int nd = a.ndim;
  if (nd < 2 || b.ndim != nd) return "dot: operands must have equal rank >= 2";
  if (a.dtype != b.dtype || a.dtype != out.dtype) return "dot: a, b and out must share a dtype";
  DotShape s;
  s.M = a.shape[nd - 2];
  s.K = a.shape[nd - 1];
  s.N = b.shape[nd - 1];
  if (b.shape[nd - 2] != s.K) return "dot: inner dimensions differ";
  for (int d = 0; d < nd - 2; d++)
    if (a.shape[d] != b.shape[d]) return "dot: batch dimensions differ";
  const i64* st[2] = {a.strides, b.strides};
  s.bit.init(nd - 2, a.shape, st);
  s.batch = s.bit.size;
  if (s.batch == 0 || s.M == 0 || s.N == 0) return nullptr;
  // A right operand shared by every matrix of the batch (stride 0 along the batch axes: a linear layer's
  // weight applied to [B, T, K] activations) and a left operand whose batch axes continue its rows: one
  // [batch M, K] @ [K, N] product instead of `batch` products that pack the same b again and again. The output
  // is contiguous, so its rows are the batch's rows in order (an epilogue sees matrix 0 with batch M rows).
  if (nd > 2 && s.batch > 1 && a.dtype != I32) {
    bool shared = true, rows = a.strides[nd - 2] != 0 && s.M > 1;
    i64 expect = s.M * a.strides[nd - 2];
    for (int d = nd - 3; d >= 0; d--) {
      if (a.shape[d] == 1) continue;
      shared = shared && b.strides[d] == 0;
      rows = rows && a.strides[d] == expect;
      expect *= a.shape[d];
    }
    if (shared && rows) {
      View a2 = a, b2 = b;
      a2.ndim = b2.ndim = 2;
      a2.shape[0] = s.batch * s.M, a2.shape[1] = s.K;
      a2.strides[0] = a.strides[nd - 2], a2.strides[1] = a.strides[nd - 1];
      b2.shape[0] = s.K, b2.shape[1] = s.N;
      b2.strides[0] = b.strides[nd - 2], b2.strides[1] = b.strides[nd - 1];
      return dot_ep(a2, b2, out, ep);
    }
  }
  switch (a.dtype) {
    case F32: return dot_float<float>(a, b, static_cast<float*>(out.data), s, ep);
    case F64: return dot_float<double>(a, b, static_cast<double*>(out.data), s, ep);
    case I32:
      if (ep) return "dot: an epilogue needs float operands";
      return dot_int(a, b, static_cast<int32_t*>(out.data), s);
    default: return "dot: bool operands are not supported";
  }
}

}  // namespace CR_ISA_NS
}  // namespace cr
