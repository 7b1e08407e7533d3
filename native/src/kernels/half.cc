// float16 / bfloat16 kernels: the casts between float32 and the 16-bit formats (`half_cast`) and a bfloat16
// matrix product accumulating in float32 (`gemm_bf16`, with AVX512_BF16's vdpbf16ps).
//
// The addon's dtype codes have no 16-bit type, so 16-bit data arrives as bytes (code BOOL): the TypeScript side
// (src/backend/native/half.ts) passes a Uint8Array over the 16-bit storage, and a view of n 16-bit values as a
// byte view of shape [..., 2] whose last stride is 1. The addon then checks every byte the kernel reads against
// the array (both bytes of each value are elements of the view); the kernels check the dtype codes, the
// trailing [2] with stride 1, and every shape against the others before reading anything (never trusting a
// size). Values are little-endian (x86).
//
// Rounding matches src/io/half.ts bit for bit: float32 -> bfloat16 rounds to nearest even in integer
// arithmetic (not vcvtneps2bf16, which flushes float32 subnormals to zero), NaN -> 0x7fc0 with the sign kept;
// float32 -> float16 uses vcvtps2ph (IEEE round to nearest even, subnormals kept) on AVX-512 and the same
// arithmetic as half.ts elsewhere. (A NaN with a payload keeps some payload bits in vcvtps2ph and vcvtph2ps;
// it is a NaN either way.)
#include "isa.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

CR_INLINE uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
CR_INLINE float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

CR_INLINE uint16_t to_bf16(uint32_t x) {
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((x >> 16) & 0x8000u) | 0x7fc0u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

CR_INLINE uint16_t to_f16(uint32_t x) {
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (a < 0x38800000u) {
    if (a < 0x33000000u) return (uint16_t)sign;
    const uint32_t e = a >> 23;
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;
    const uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    return (uint16_t)(sign | ((rem > half || (rem == half && (q & 1))) ? q + 1 : q));
  }
  const uint32_t h = (((a >> 23) - 112) << 10) | ((a >> 13) & 0x3ffu);
  const uint32_t rem = a & 0x1fffu;
  return (uint16_t)(sign | ((rem > 0x1000u || (rem == 0x1000u && (h & 1))) ? h + 1 : h));
}

CR_INLINE float from_f16(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = (float)m * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

CR_INLINE uint16_t load16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
// Two consecutive 16-bit values (both bytes of each inside the checked view), the first in the low half.
CR_INLINE uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// dst[i] = f32 -> 16-bit of src[i * s] for i in [lo, hi)
void narrow_run(const float* src, i64 s, uint8_t* dst, i64 lo, i64 hi, bool bf) {
  i64 i = lo;
#if CR_ISA_LEVEL == 2
  if (s == 1) {
    if (bf) {
      const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
      const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
      for (; i + 16 <= hi; i += 16) {
        const __m512i x = _mm512_loadu_si512(src + i);
        const __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(x, bias), _mm512_and_si512(_mm512_srli_epi32(x, 16), one)), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, absmask), inf);
        const __m512i qn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)),
                                           _mm512_set1_epi32(0x7fc0));
        const __m512i v = _mm512_mask_blend_epi32(nan, r, qn);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i), _mm512_cvtepi32_epi16(v));
      }
    } else {
      for (; i + 16 <= hi; i += 16) {
        const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * i), h);
      }
    }
  }
#endif
  for (; i < hi; i++) {
    const uint16_t h = bf ? to_bf16(f32_bits(src[i * s])) : to_f16(f32_bits(src[i * s]));
    dst[2 * i] = (uint8_t)h;
    dst[2 * i + 1] = (uint8_t)(h >> 8);
  }
}

// dst[i] = the float32 value of the 16-bit value at byte src + i * s, for i in [lo, hi)
void widen_run(const uint8_t* src, i64 s, float* dst, i64 lo, i64 hi, bool bf) {
  i64 i = lo;
#if CR_ISA_LEVEL == 2
  if (s == 2) {
    for (; i + 16 <= hi; i += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
      if (bf) {
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      } else {
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
      }
    }
  }
#endif
  for (; i < hi; i++) {
    const uint16_t h = load16(src + i * s);
    dst[i] = bf ? bits_f32((uint32_t)h << 16) : from_f16(h);
  }
}

}  // namespace

// kind 0: float32 -> float16, 1: float32 -> bfloat16 (x a float32 view of shape [n], out bytes holding 2n);
// kind 2: float16 -> float32, 3: bfloat16 -> float32 (x a byte view [n, 2] with strides [s, 1], out float32).
Err half_cast(int kind, int nd, const int64_t* shape, const View& x, const Out& out) {
  if (kind < 0 || kind > 3) return "castHalf: kind must be 0..3";
  if (nd != 1) return "castHalf: shape must have one dimension";
  const i64 n = shape[0];
  if (kind <= 1) {
    if (x.dtype != F32 || x.ndim != 1 || x.shape[0] != n) return "castHalf: expected a float32 view of shape [n]";
    if (out.dtype != BOOL || out.length / 2 < n) return "castHalf: the 16-bit output must hold 2n bytes";
    const float* src = static_cast<const float*>(x.data) + x.offset;
    const i64 s = x.strides[0];
    uint8_t* dst = static_cast<uint8_t*>(out.data);
    const bool bf = kind == 1;
    par_for(n, elem_grain(n, 16384), [&](i64 lo, i64 hi, int) { narrow_run(src, s, dst, lo, hi, bf); });
  } else {
    if (x.dtype != BOOL || x.ndim != 2 || x.shape[0] != n || x.shape[1] != 2 || x.strides[1] != 1)
      return "castHalf: expected a byte view of shape [n, 2] with last stride 1";
    if (out.dtype != F32) return "castHalf: the output must be float32";
    const uint8_t* src = static_cast<const uint8_t*>(x.data) + x.offset;
    const i64 s = x.strides[0];
    float* dst = static_cast<float*>(out.data);
    const bool bf = kind == 3;
    par_for(n, elem_grain(n, 16384), [&](i64 lo, i64 hi, int) { widen_run(src, s, dst, lo, hi, bf); });
  }
  return nullptr;
}

#if CR_ISA_LEVEL == 2
namespace {

constexpr int kMR = 6;   // rows of a micro-tile
constexpr int kNR = 32;  // columns of a micro-tile (two zmm of 16 float32)

// c[r][0..32) (+)= sum over pairs p of a_pairs[r][p] . b_pairs[p][0..32), for r < rows (a zero-padded kMR rows).
__attribute__((target("avx512f,avx512bf16"))) void micro_bf16(i64 kp, const uint32_t* ap, i64 astride,
                                                                 const uint32_t* bp, float* c, i64 ldc, int rows,
                                                                 int cols) {
  __m512 acc[kMR][2];
  for (int r = 0; r < kMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (i64 p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * kNR + 16);
    for (int r = 0; r < kMR; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[r * astride + p]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
  const __mmask16 m0 = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? (__mmask16)0xffff : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1);
  for (int r = 0; r < rows; r++) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);
  }
}

}  // namespace
#endif

// out[b] = a[b] @ b[b] (float32) for bfloat16 a [..., M, K] and b [..., K, N] passed as byte views [..., M, K, 2]
// and [..., K, N, 2]; `shape` is out's shape [..., M, N]. Needs AVX512_BF16 (an error otherwise: the caller
// widens to float32 and runs the float32 GEMM).
Err gemm_bf16(int nd, const int64_t* shape, const View& a, const View& b, const Out& out) {
#if CR_ISA_LEVEL == 2
  if (!__builtin_cpu_supports("avx512bf16")) return "dotBF16: this CPU lacks AVX512_BF16";
  if (nd < 2 || a.ndim != nd + 1 || b.ndim != nd + 1) return "dotBF16: operands must be [..., M, K, 2] and [..., K, N, 2]";
  if (a.dtype != BOOL || b.dtype != BOOL || out.dtype != F32) return "dotBF16: expected byte views and a float32 out";
  if (a.shape[nd] != 2 || a.strides[nd] != 1 || b.shape[nd] != 2 || b.strides[nd] != 1)
    return "dotBF16: the last axis must be the two bytes of each value (extent 2, stride 1)";
  const i64 M = shape[nd - 2], N = shape[nd - 1], K = a.shape[nd - 1];
  if (a.shape[nd - 2] != M || b.shape[nd - 1] != N || b.shape[nd - 2] != K)
    return "dotBF16: operand shapes do not match the output's";
  i64 batch = 1;
  for (int d = 0; d < nd - 2; d++) {
    if (a.shape[d] != shape[d] || b.shape[d] != shape[d]) return "dotBF16: batch shapes differ";
    batch *= shape[d];
  }
  if (batch == 0 || M == 0 || N == 0) return nullptr;
  float* c = static_cast<float*>(out.data);
  if (K == 0) {
    std::memset(c, 0, (size_t)(batch * M * N) * sizeof(float));
    return nullptr;
  }
  const i64 kp = (K + 1) / 2;
  const i64 nb = (N + kNR - 1) / kNR, mb = (M + kMR - 1) / kMR;
  // packed A: mb * kMR rows of kp pairs; packed B: nb panels of kp pairs x kNR columns (zero-padded)
  const double abytes = (double)mb * kMR * kp * 4, bbytes = (double)nb * kp * kNR * 4;
  if (abytes > 0x1p40 || bbytes > 0x1p40) return "dotBF16: operands too large";
  uint32_t* pa = static_cast<uint32_t*>(scratch(0, 6, (size_t)abytes));
  uint32_t* pb = static_cast<uint32_t*>(scratch(0, 7, (size_t)bbytes));
  if (pa == nullptr || pb == nullptr) return nullptr;  // scratch_failed() makes the addon throw
  const uint8_t* A = static_cast<const uint8_t*>(a.data) + a.offset;
  const uint8_t* B = static_cast<const uint8_t*>(b.data) + b.offset;
  const i64 am = a.strides[nd - 2], ak = a.strides[nd - 1], bk = b.strides[nd - 2], bn = b.strides[nd - 1];
  for (i64 t = 0; t < batch; t++) {
    // byte offsets of matrix t in a and b (row-major over the batch dims)
    i64 ao = 0, bo = 0, rest = t;
    for (int d = nd - 3; d >= 0; d--) {
      const i64 i = rest % shape[d];
      rest /= shape[d];
      ao += i * a.strides[d];
      bo += i * b.strides[d];
    }
    const uint8_t* At = A + ao;
    const uint8_t* Bt = B + bo;
    // pack A: pair p of row i = a[i][2p] (low half) | a[i][2p+1] (high half); padding rows and pairs are 0
    par_for(mb * kMR, imax<i64>(1, 8192 / kp), [&](i64 lo, i64 hi, int) {
      for (i64 i = lo; i < hi; i++) {
        uint32_t* row = pa + i * kp;
        if (i >= M) {
          for (i64 p = 0; p < kp; p++) row[p] = 0;
          continue;
        }
        const uint8_t* ai = At + i * am;
        if (ak == 2) {  // a row is contiguous: its pairs are its 32-bit words
          for (i64 p = 0; p < K / 2; p++) row[p] = load32(ai + 4 * p);
          if (K % 2) row[kp - 1] = load16(ai + 2 * (K - 1));
          continue;
        }
        for (i64 p = 0; p < kp; p++) {
          const uint32_t lo16 = load16(ai + 2 * p * ak);
          const uint32_t hi16 = 2 * p + 1 < K ? load16(ai + (2 * p + 1) * ak) : 0;
          row[p] = lo16 | (hi16 << 16);
        }
      }
    });
    // pack B: panel q, pair p, column j = b[2p][q*kNR + j] | b[2p+1][q*kNR + j] << 16
    par_for(nb, 1, [&](i64 lo, i64 hi, int) {
      for (i64 q = lo; q < hi; q++) {
        uint32_t* panel = pb + q * kp * kNR;
        if (bk == 2) {  // b's columns are contiguous (a transposed weight): a pair is one 32-bit word
          for (int j = 0; j < kNR; j++) {
            const i64 col = q * kNR + j;
            const uint8_t* bc = Bt + col * bn;
            for (i64 p = 0; p < kp; p++) {
              uint32_t v = 0;
              if (col < N) v = 2 * p + 1 < K ? load32(bc + 4 * p) : load16(bc + 4 * p);
              panel[p * kNR + j] = v;
            }
          }
          continue;
        }
        for (i64 p = 0; p < kp; p++) {
          const uint8_t* r0 = Bt + 2 * p * bk;
          const uint8_t* r1 = Bt + (2 * p + 1) * bk;
          const bool odd = 2 * p + 1 < K;
          for (int j = 0; j < kNR; j++) {
            const i64 col = q * kNR + j;
            uint32_t v = 0;
            if (col < N) v = load16(r0 + col * bn) | (odd ? (uint32_t)load16(r1 + col * bn) << 16 : 0u);
            panel[p * kNR + j] = v;
          }
        }
      }
    });
    float* ct = c + t * M * N;
    // tiles: column panel outer (a panel stays in cache while a thread walks the row blocks)
    par_for(nb * mb, imax<i64>(1, mb / 2), [&](i64 lo, i64 hi, int) {
      for (i64 w = lo; w < hi; w++) {
        const i64 q = w / mb, r = w % mb;
        const int rows = (int)imin<i64>(kMR, M - r * kMR), cols = (int)imin<i64>(kNR, N - q * kNR);
        micro_bf16(kp, pa + r * kMR * kp, kp, pb + q * kp * kNR, ct + r * kMR * N + q * kNR, N, rows, cols);
      }
    });
  }
  return nullptr;
#else
  return "dotBF16: this build has no AVX512_BF16 kernel";
#endif
}

}  // namespace CR_ISA_NS
}  // namespace cr
