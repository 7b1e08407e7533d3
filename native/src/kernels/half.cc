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

#define CR_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

constexpr int kMR = 12;  // rows of a micro-tile (24 accumulators)
constexpr int kNR = 32;  // columns of a micro-tile (two zmm of 16 float32)

// One GEMM operand as the packers see it: element (k, x) at base + k * sk + x * sx bytes, where k runs along
// the reduction and x along M (operand a) or N (operand b); float32 elements (rounded to bfloat16 while
// packing) or bfloat16 ones. `mask` (bfloat16 bytes with the same byte strides, or null) zeroes the elements
// whose mask value is not > 0: the derivative of relu through its output.
struct Opnd {
  const uint8_t* base;
  const uint8_t* mask;
  i64 sk, sx;
  bool f32;
};

// Whether a bfloat16 value is > 0 (NaN and -0 are not): bits in [0x0001, 0x7f80].
CR_INLINE bool pos16(uint16_t y) { return (uint16_t)(y - 1u) < 0x7f80u; }

// The bfloat16 bits of element (k, x) (0 outside k < K is the caller's business).
CR_INLINE uint32_t elem16(const Opnd& o, i64 k, i64 x) {
  const i64 off = k * o.sk + x * o.sx;
  if (o.f32) return to_bf16(load32(o.base + off));
  const uint16_t h = load16(o.base + off);
  return o.mask != nullptr && !pos16(load16(o.mask + off)) ? 0u : h;
}

// 32-bit lanes of float32 bits -> the bfloat16 bits (round to nearest even, NaN -> quiet with the sign kept) in
// the low 16 bits of each lane (the upper 16 are zero).
CR_BF16 inline __m512i rnd16(__m512i x) {
  const __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)),
                       _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1))),
      16);
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i qn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)),
                                     _mm512_set1_epi32(0x7fc0));
  return _mm512_mask_blend_epi32(nan, r, qn);
}

// 32 bfloat16 values (a zmm of 16-bit lanes) with those whose mask lane is not > 0 zeroed.
CR_BF16 inline __m512i mask16(__m512i v, __m512i m) {
  const __mmask32 keep =
      _mm512_cmplt_epu16_mask(_mm512_sub_epi16(m, _mm512_set1_epi16(1)), _mm512_set1_epi16(0x7f80));
  return _mm512_maskz_mov_epi16(keep, v);
}

// w[p] = the pair (2p, 2p + 1) along k of line x (the high half 0 past K), p < ceil(K / 2).
CR_BF16 void line_pairs(const Opnd& o, i64 x, i64 K, uint32_t* w) {
  const i64 kp = (K + 1) / 2;
  const uint8_t* src = o.base + x * o.sx;
  i64 p = 0;
  if (o.f32 && o.sk == 4) {
    for (; 2 * p + 32 <= K; p += 16) {
      const __m512i h0 = rnd16(_mm512_loadu_si512(src + 8 * p));
      const __m512i h1 = rnd16(_mm512_loadu_si512(src + 8 * p + 64));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + p), _mm512_cvtepi32_epi16(h0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + p + 8), _mm512_cvtepi32_epi16(h1));
    }
  } else if (!o.f32 && o.sk == 2) {
    if (o.mask == nullptr) {
      for (; 2 * p + 2 <= K; p++) w[p] = load32(src + 4 * p);
    } else {
      const uint8_t* msk = o.mask + x * o.sx;
      for (; 2 * p + 32 <= K; p += 16)
        _mm512_storeu_si512(w + p, mask16(_mm512_loadu_si512(src + 4 * p), _mm512_loadu_si512(msk + 4 * p)));
    }
  }
  for (; p < kp; p++) {
    const uint32_t lo = elem16(o, 2 * p, x);
    w[p] = lo | (2 * p + 1 < K ? elem16(o, 2 * p + 1, x) << 16 : 0u);
  }
}

// w[j] = the pair (2p, 2p + 1) along k of line x0 + j, for j < cnt (the high half 0 past K).
CR_BF16 void cols_words(const Opnd& o, i64 p, i64 K, i64 x0, int cnt, uint32_t* w) {
  const bool two = 2 * p + 1 < K;
  const uint8_t* r0 = o.base + 2 * p * o.sk + x0 * o.sx;
  const uint8_t* r1 = r0 + o.sk;
  int j = 0;
  if (o.f32 && o.sx == 4) {
    for (; j < cnt; j += 16) {
      const __mmask16 m = cnt - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cnt - j)) - 1);
      const __m512i lo = rnd16(_mm512_maskz_loadu_epi32(m, r0 + 4 * j));
      const __m512i hi = two ? _mm512_slli_epi32(rnd16(_mm512_maskz_loadu_epi32(m, r1 + 4 * j)), 16)
                             : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(w + j, m, _mm512_or_si512(lo, hi));
    }
    return;
  }
  if (!o.f32 && o.sx == 2) {
    const uint8_t* m0 = o.mask != nullptr ? o.mask + 2 * p * o.sk + x0 * o.sx : nullptr;
    for (; j < cnt; j += 16) {
      const __mmask16 m = cnt - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cnt - j)) - 1);
      __m256i lo = _mm256_maskz_loadu_epi16(m, r0 + 2 * j);
      __m256i hi = two ? _mm256_maskz_loadu_epi16(m, r1 + 2 * j) : _mm256_setzero_si256();
      if (m0 != nullptr) {
        const __m256i one = _mm256_set1_epi16(1), lim = _mm256_set1_epi16(0x7f80);
        const __m256i y0 = _mm256_maskz_loadu_epi16(m, m0 + 2 * j);
        lo = _mm256_maskz_mov_epi16(_mm256_cmplt_epu16_mask(_mm256_sub_epi16(y0, one), lim), lo);
        if (two) {
          const __m256i y1 = _mm256_maskz_loadu_epi16(m, m0 + o.sk + 2 * j);
          hi = _mm256_maskz_mov_epi16(_mm256_cmplt_epu16_mask(_mm256_sub_epi16(y1, one), lim), hi);
        }
      }
      const __m512i v =
          _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
      _mm512_mask_storeu_epi32(w + j, m, v);
    }
    return;
  }
  for (; j < cnt; j++) {
    const uint32_t lo = elem16(o, 2 * p, x0 + j);
    w[j] = lo | (two ? elem16(o, 2 * p + 1, x0 + j) << 16 : 0u);
  }
}

// Pack `width`-wide blocks of operand o (X lines along x, K along k): block g holds kp rows of `width` words,
// word (p, t) = the pair p of line g * width + t (0 past X). Lines along k are read whole when k is the
// operand's fast axis, else pairs across lines.
CR_BF16 void pack_blocks(const Opnd& o, i64 X, i64 K, int width, uint32_t* dst) {
  const i64 kp = (K + 1) / 2, nblk = (X + width - 1) / width;
  const bool by_line = (o.sk < 0 ? -o.sk : o.sk) <= (o.sx < 0 ? -o.sx : o.sx);
  par_for(nblk, imax<i64>(1, 16384 / imax<i64>(1, kp * width)), [&](i64 lo, i64 hi, int tid) {
    uint32_t* tmp = by_line ? static_cast<uint32_t*>(scratch(tid, 5, (size_t)(kp + 16) * 4)) : nullptr;
    if (by_line && tmp == nullptr) return;  // scratch_failed() reports it
    for (i64 g = lo; g < hi; g++) {
      uint32_t* blk = dst + g * kp * width;
      const int cnt = (int)imin<i64>(width, X - g * width);
      if (by_line) {
        for (int t = 0; t < cnt; t++) {
          line_pairs(o, g * width + t, K, tmp);
          for (i64 p = 0; p < kp; p++) blk[p * width + t] = tmp[p];
        }
        if (cnt < width)
          for (i64 p = 0; p < kp; p++)
            for (int t = cnt; t < width; t++) blk[p * width + t] = 0;
      } else {
        for (i64 p = 0; p < kp; p++) {
          cols_words(o, p, K, g * width, cnt, blk + p * width);
          for (int t = cnt; t < width; t++) blk[p * width + t] = 0;
        }
      }
    }
  });
}

// One micro-tile: acc[r][0..32) = sum over pairs p of a[p][r] . b[p][0..32), then the epilogue: + bias (float32
// of bfloat16 values, or null), relu, stored as float32 or rounded to bfloat16, for r < rows, columns < cols.
CR_BF16 void micro_bf16(i64 kp, const uint32_t* ap, const uint32_t* bp, uint8_t* c, i64 ldc, int rows, int cols,
                        const float* bias, bool relu, bool bf) {
  __m512 acc[kMR][2];
  for (int r = 0; r < kMR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (i64 p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * kNR + 16);
    const uint32_t* a = ap + p * kMR;
    for (int r = 0; r < kMR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  const __mmask16 m0 = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
  const __mmask16 m1 =
      cols >= 32 ? (__mmask16)0xffff : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1);
  const __m512 zero = _mm512_setzero_ps();
  const __m512 bv0 = bias != nullptr ? _mm512_maskz_loadu_ps(m0, bias) : zero;
  const __m512 bv1 = bias != nullptr ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
  for (int r = 0; r < rows; r++) {
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (bias != nullptr) {
      v0 = _mm512_add_ps(v0, bv0);
      v1 = _mm512_add_ps(v1, bv1);
    }
    if (relu) {  // max(0, v): NaN stays NaN
      v0 = _mm512_max_ps(zero, v0);
      v1 = _mm512_max_ps(zero, v1);
    }
    if (bf) {
      uint16_t* o = reinterpret_cast<uint16_t*>(c) + r * ldc;
      _mm512_mask_cvtepi32_storeu_epi16(o, m0, rnd16(_mm512_castps_si512(v0)));
      _mm512_mask_cvtepi32_storeu_epi16(o + 16, m1, rnd16(_mm512_castps_si512(v1)));
    } else {
      float* o = reinterpret_cast<float*>(c) + r * ldc;
      _mm512_mask_storeu_ps(o, m0, v0);
      _mm512_mask_storeu_ps(o + 16, m1, v1);
    }
  }
}

// The checks and strides of one operand view: float32 of rank nd, or bfloat16 bytes of rank nd + 1 with a
// trailing [2] of stride 1. Byte strides go to `bs` (nd of them).
const char* operand_strides(const View& v, int nd, i64* bs, bool* f32) {
  if (v.dtype == F32 && v.ndim == nd) {
    for (int d = 0; d < nd; d++) bs[d] = 4 * v.strides[d];
    *f32 = true;
    return nullptr;
  }
  if (v.dtype == BOOL && v.ndim == nd + 1 && v.shape[nd] == 2 && v.strides[nd] == 1) {
    for (int d = 0; d < nd; d++) bs[d] = v.strides[d];
    *f32 = false;
    return nullptr;
  }
  return "dotBF16: an operand must be a float32 view [..., R, C] or bfloat16 bytes [..., R, C, 2] (last stride 1)";
}

}  // namespace
#endif

// out[b] = epilogue(a[b] @ b[b]) for a [..., M, K] and b [..., K, N], each float32 (rounded to bfloat16 while
// packed) or bfloat16 (byte views [..., R, C, 2]); products accumulate in float32 (vdpbf16ps). `shape` is out's
// shape [..., M, N]. kind: bit 0 relu after the bias; bit 1 / bit 2: `mask` (bfloat16 bytes shaped and strided
// like a / b, which must then be bfloat16) zeroes the elements of a / b whose mask value is not > 0. bias: null
// or a float32 / bfloat16 vector [N] (rounded to bfloat16), added to every row. out: float32, or bfloat16 bytes
// (each value rounded once, after bias and relu). Needs AVX512_BF16 (an error otherwise: the caller widens to
// float32 and runs the float32 GEMM).
Err gemm_bf16(int kind, int nd, const int64_t* shape, const View& a, const View& b, const View* bias,
              const View* mask, const Out& out) {
#if CR_ISA_LEVEL == 2
  if (!__builtin_cpu_supports("avx512bf16")) return "dotBF16: this CPU lacks AVX512_BF16";
  if (kind < 0 || kind > 7 || (kind & 6) == 6) return "dotBF16: kind must be 0..7 with at most one mask bit";
  if (nd < 2 || nd + 1 > kMaxDims) return "dotBF16: the output must have rank >= 2";
  i64 as[kMaxDims], bs[kMaxDims], ms[kMaxDims];
  bool af = false, bf32 = false, mf = false;
  if (const char* e = operand_strides(a, nd, as, &af)) return e;
  if (const char* e = operand_strides(b, nd, bs, &bf32)) return e;
  const bool outbf = out.dtype == BOOL;
  if (out.dtype != F32 && !outbf) return "dotBF16: the output must be float32 or bfloat16 bytes";
  const i64 M = shape[nd - 2], N = shape[nd - 1], K = a.shape[nd - 1];
  if (a.shape[nd - 2] != M || b.shape[nd - 1] != N || b.shape[nd - 2] != K)
    return "dotBF16: operand shapes do not match the output's";
  i64 batch = 1;
  for (int d = 0; d < nd - 2; d++) {
    if (a.shape[d] != shape[d] || b.shape[d] != shape[d]) return "dotBF16: batch shapes differ";
    batch *= shape[d];
  }
  if (outbf && out.length / 2 < batch * M * N) return "dotBF16: the bfloat16 output must hold 2 bytes per value";
  const View* mv = (kind & 6) != 0 ? mask : nullptr;
  if ((kind & 6) != 0) {
    const View& tgt = (kind & 2) ? a : b;
    const bool tf = (kind & 2) ? af : bf32;
    if (mask == nullptr || tf) return "dotBF16: a mask needs a bfloat16 operand and a mask view";
    if (const char* e = operand_strides(*mask, nd, ms, &mf)) return e;
    if (mf) return "dotBF16: the mask must be bfloat16";
    const i64* ts = (kind & 2) ? as : bs;
    for (int d = 0; d < nd; d++)
      if (mask->shape[d] != tgt.shape[d] || ms[d] != ts[d])
        return "dotBF16: the mask must have its operand's shape and strides";
  }
  if (bias != nullptr) {
    const bool ok = (bias->dtype == F32 && bias->ndim == 1 && bias->shape[0] == N) ||
                    (bias->dtype == BOOL && bias->ndim == 2 && bias->shape[0] == N && bias->shape[1] == 2 &&
                     bias->strides[1] == 1);
    if (!ok) return "dotBF16: bias must be float32 [N] or bfloat16 bytes [N, 2]";
  }
  if (batch == 0 || M == 0 || N == 0) return nullptr;
  const i64 kp = (K + 1) / 2;
  const i64 nb = (N + kNR - 1) / kNR, mb = (M + kMR - 1) / kMR;
  // packed A: mb blocks of kp x kMR words; packed B: nb panels of kp x kNR words (zero-padded)
  const double abytes = (double)mb * kMR * kp * 4, bbytes = (double)nb * kp * kNR * 4;
  if (abytes > 0x1p40 || bbytes > 0x1p40) return "dotBF16: operands too large";
  uint32_t* pa = static_cast<uint32_t*>(scratch(0, 6, (size_t)abytes));
  uint32_t* pb = static_cast<uint32_t*>(scratch(0, 7, (size_t)bbytes));
  float* bq = bias != nullptr ? static_cast<float*>(scratch(0, 4, (size_t)(N + kNR) * 4)) : nullptr;
  if (pa == nullptr || pb == nullptr || (bias != nullptr && bq == nullptr)) return nullptr;  // scratch_failed()
  if (bias != nullptr) {
    const uint8_t* bb = static_cast<const uint8_t*>(bias->data);
    for (i64 j = 0; j < N; j++) {
      const uint32_t h = bias->dtype == F32 ? to_bf16(f32_bits(static_cast<const float*>(bias->data)[bias->offset + j * bias->strides[0]]))
                                            : load16(bb + bias->offset + j * bias->strides[0]);
      bq[j] = bits_f32(h << 16);
    }
  }
  const uint8_t* A = static_cast<const uint8_t*>(a.data) + (af ? 4 : 1) * a.offset;
  const uint8_t* B = static_cast<const uint8_t*>(b.data) + (bf32 ? 4 : 1) * b.offset;
  const uint8_t* Mk = mv != nullptr ? static_cast<const uint8_t*>(mv->data) + mv->offset : nullptr;
  const bool relu = (kind & 1) != 0;
  const i64 esz = outbf ? 2 : 4;
  uint8_t* c = static_cast<uint8_t*>(out.data);
  for (i64 t = 0; t < batch; t++) {
    // byte offsets of matrix t in a and b (row-major over the batch dims)
    i64 ao = 0, bo = 0, mo = 0, rest = t;
    for (int d = nd - 3; d >= 0; d--) {
      const i64 i = rest % shape[d];
      rest /= shape[d];
      ao += i * as[d];
      bo += i * bs[d];
      if (mv != nullptr) mo += i * ms[d];
    }
    const Opnd oa{A + ao, (kind & 2) ? Mk + mo : nullptr, as[nd - 1], as[nd - 2], af};
    const Opnd ob{B + bo, (kind & 4) ? Mk + mo : nullptr, bs[nd - 2], bs[nd - 1], bf32};
    pack_blocks(oa, M, K, kMR, pa);
    pack_blocks(ob, N, K, kNR, pb);
    uint8_t* ct = c + t * M * N * esz;
    // tiles: column panel outer (a panel stays in cache while a thread walks the row blocks)
    par_for(nb * mb, imax<i64>(1, mb / 2), [&](i64 lo, i64 hi, int) {
      for (i64 w = lo; w < hi; w++) {
        const i64 q = w / mb, r = w % mb;
        const int rows = (int)imin<i64>(kMR, M - r * kMR), cols = (int)imin<i64>(kNR, N - q * kNR);
        micro_bf16(kp, pa + r * kMR * kp, pb + q * kp * kNR, ct + (r * kMR * N + q * kNR) * esz, N, rows, cols,
                   bq != nullptr ? bq + q * kNR : nullptr, relu, outbf);
      }
    });
  }
  return nullptr;
#else
  (void)kind, (void)nd, (void)shape, (void)a, (void)b, (void)bias, (void)mask, (void)out;
  return "dotBF16: this build has no AVX512_BF16 kernel";
#endif
}

}  // namespace CR_ISA_NS
}  // namespace cr
