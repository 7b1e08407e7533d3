// float16 / bfloat16 kernels: the casts between float32 and the 16-bit formats (`half_cast`) and a bfloat16
// matrix product and convolution accumulating in float32 (`gemm_bf16`, `conv_bf16`: AVX512_BF16's vdpbf16ps, or
// Intel AMX tiles where the CPU and OS have them, see amx_matrix).
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

// Pack lines [0, X) of operand o (k in [0, K)) serially into `width`-wide blocks as pack_blocks does (block g:
// kp rows of `width` words, zero past X); tmp holds (kp + 16) words for the line-wise read.
CR_BF16 void pack_range(const Opnd& o, i64 X, i64 K, int width, uint32_t* dst, uint32_t* tmp) {
  const i64 kp = (K + 1) / 2, nblk = (X + width - 1) / width;
  const bool by_line = (o.sk < 0 ? -o.sk : o.sk) <= (o.sx < 0 ? -o.sx : o.sx);
  for (i64 g = 0; g < nblk; g++) {
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
}

// The epilogue of rows of 32 float32 results: masks for the valid columns (cols of 32), the bias vectors (float32
// of bfloat16 values, or zeros), relu, and the output format; epi32_row stores one row (v0: columns 0-15, v1:
// 16-31) at o, as float32 or rounded to bfloat16.
struct Epi32 {
  __mmask16 m0, m1;
  __m512 bv0, bv1;
  bool bias, relu, bf;
};
CR_BF16 inline Epi32 epi32(int cols, const float* bias, bool relu, bool bf) {
  Epi32 e;
  e.m0 = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
  e.m1 = cols >= 32 ? (__mmask16)0xffff : cols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (cols - 16)) - 1);
  e.bv0 = bias != nullptr ? _mm512_maskz_loadu_ps(e.m0, bias) : _mm512_setzero_ps();
  e.bv1 = bias != nullptr ? _mm512_maskz_loadu_ps(e.m1, bias + 16) : _mm512_setzero_ps();
  e.bias = bias != nullptr;
  e.relu = relu;
  e.bf = bf;
  return e;
}
CR_BF16 inline void epi32_row(const Epi32& e, __m512 v0, __m512 v1, uint8_t* o) {
  if (e.bias) {
    v0 = _mm512_add_ps(v0, e.bv0);
    v1 = _mm512_add_ps(v1, e.bv1);
  }
  if (e.relu) {  // max(0, v): NaN stays NaN
    v0 = _mm512_max_ps(_mm512_setzero_ps(), v0);
    v1 = _mm512_max_ps(_mm512_setzero_ps(), v1);
  }
  if (e.bf) {
    uint16_t* h = reinterpret_cast<uint16_t*>(o);
    _mm512_mask_cvtepi32_storeu_epi16(h, e.m0, rnd16(_mm512_castps_si512(v0)));
    _mm512_mask_cvtepi32_storeu_epi16(h + 16, e.m1, rnd16(_mm512_castps_si512(v1)));
  } else {
    float* f = reinterpret_cast<float*>(o);
    _mm512_mask_storeu_ps(f, e.m0, v0);
    _mm512_mask_storeu_ps(f + 16, e.m1, v1);
  }
}

// One micro-tile over kp pairs: acc[r][0..32) (+)= sum over pairs p of a[p][r] . b[p][0..32). The accumulators
// start at zero, or from the tile buffer cb (12 x 32 float32) when `load`. Unless `fin`, they go back to cb;
// when `fin`, the epilogue: + bias (float32 of bfloat16 values, or null), relu, stored as float32 or rounded to
// bfloat16, for r < rows, columns < cols. Resuming from cb continues each float32 sum in the same order, so a
// product split into K blocks equals the unsplit one bit for bit.
template <int MR>
CR_BF16 void micro_rows(i64 kp, const uint32_t* ap, const uint32_t* bp, float* cb, bool load, bool fin, uint8_t* c,
                        i64 ldc, int rows, int cols, const float* bias, bool relu, bool bf) {
  __m512 acc[MR][2];
  if (load) {
    for (int r = 0; r < MR; r++) {
      acc[r][0] = _mm512_load_ps(cb + r * kNR);
      acc[r][1] = _mm512_load_ps(cb + r * kNR + 16);
    }
  } else {
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  }
  for (i64 p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * kNR + 16);
    const uint32_t* a = ap + p * kMR;
    for (int r = 0; r < MR; r++) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  if (!fin) {
    for (int r = 0; r < MR; r++) {
      _mm512_store_ps(cb + r * kNR, acc[r][0]);
      _mm512_store_ps(cb + r * kNR + 16, acc[r][1]);
    }
    return;
  }
  const Epi32 e = epi32(cols, bias, relu, bf);
  for (int r = 0; r < rows; r++) epi32_row(e, acc[r][0], acc[r][1], c + r * ldc * (bf ? 2 : 4));
}

// The micro-tile for `rows` valid rows (the ones computed; the tile buffer keeps 12-row tiles): a 4-, 8- or
// 12-row kernel (the packed A keeps its 12-word stride), so a partial row block does not pay for 12 rows.
CR_BF16 void micro_bf16(i64 kp, const uint32_t* ap, const uint32_t* bp, float* cb, bool load, bool fin, uint8_t* c,
                        i64 ldc, int rows, int cols, const float* bias, bool relu, bool bf) {
  if (rows <= 4)
    micro_rows<4>(kp, ap, bp, cb, load, fin, c, ldc, rows, cols, bias, relu, bf);
  else if (rows <= 8)
    micro_rows<8>(kp, ap, bp, cb, load, fin, c, ldc, rows, cols, bias, relu, bf);
  else
    micro_rows<kMR>(kp, ap, bp, cb, load, fin, c, ldc, rows, cols, bias, relu, bf);
}

// Blocking of the product: K in blocks of at most kKC pairs (a B micro-panel of kKC x 32 words, 32 KB, stays in
// L1 while the row blocks pass over it), N in chunks of kNP micro-panels (a packed B chunk of at most 256 KB in
// L2; the A rows of one K block, M x kKC words, beside it).
constexpr i64 kKC = 256;
constexpr i64 kNP = 8;

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


// Whether the compiler knows AMX (GCC 11+, clang 12+ ship these headers): older ones build without the AMX path,
// and pool.cc's detection, compiled by the same compiler, then reports no AMX.
// (-DCR_AMX_BUILD=0 builds without it, to check that build.)
#if !defined(CR_AMX_BUILD) && defined(__has_include)
#if __has_include(<amxtileintrin.h>) && __has_include(<amxbf16intrin.h>)
#define CR_AMX_BUILD 1
#endif
#endif
#ifndef CR_AMX_BUILD
#define CR_AMX_BUILD 0
#endif

#if CR_AMX_BUILD
// ---------------------------------------------------------------------------------------------------------
// The AMX path (Intel Advanced Matrix Extensions, used when amx_enabled(): see pool.h). Eight tile registers,
// configured alike as 16 rows of 64 bytes: tmm0..3 hold a 32 x 32 float32 block of C (tile 2i + j: rows
// 16i.., columns 16j..), tmm4/5 the two 16-row halves of A (16 pairs of bfloat16 per row), tmm6/7 the two
// 16-column halves of a B panel (16 pair rows of 16 words, the packed B panel of 32 words per pair row read
// with a 128-byte stride). tdpbf16ps accumulates in float32 like vdpbf16ps, but flushes bfloat16 subnormal
// inputs and float32 subnormal results to zero and sums in its own order; the results stay within the
// float32 accumulation tolerance of the vdpbf16ps path. Tile state is per thread: each task loads the
// configuration (ldtilecfg) before its first tile instruction and releases the tiles (tilerelease) when it ends,
// so no thread keeps 8 KiB of tile state live between calls.
//
// Blocking: A is packed once per matrix as row-major pairs, rows padded to a multiple of 32 and K to a multiple
// of 16 pairs (zeros); K runs in blocks of kc pairs, a multiple of 16, so only the last block has a tail, which
// the packed B pads with zero pair rows (padding is zero in both operands, so it adds 0 * 0 and never
// 0 * inf). N runs in chunks of kNP panels of 32 columns, as on the vdpbf16ps path.

#define CR_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))

constexpr i64 kAMB = 32;   // rows of a C block
// The most pairs per K block: a B panel of up to 1024 x 32 words (128 KiB), a chunk of kNP of them (1 MiB, in
// L2). Larger K blocks measured faster than 256 or 512 pairs (n = 1024: 900 against 870 and 780 GFLOP/s; n = 2048:
// 1000 against 800): each extra K block stores and reloads the C blocks of the chunk.
constexpr i64 kAKC = 1024;

CR_INLINE i64 up16(i64 v) { return (v + 15) & ~(i64)15; }

// ldtilecfg's 64-byte operand, palette 1. Static and constant: the instruction reads all 64 bytes, which the
// intrinsic's asm does not tell the compiler, so no byte of it may be a store the compiler could drop.
struct alignas(64) TileConfig {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
const TileConfig kTileConfig = {1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

CR_AMX __attribute__((noinline)) void amx_begin() { _tile_loadconfig(&kTileConfig); }
CR_AMX __attribute__((noinline)) void amx_end() { _tile_release(); }

// The 32 x 32 float32 block (load ? cb : 0) + A . B over pcp pairs (a multiple of 16), stored at dst (rows ldd
// bytes apart: cb itself with ldd 128, or a float32 output): A's 32 rows of pairs at a, lda bytes apart; B a
// packed panel of pcp rows of 32 words.
CR_AMX __attribute__((noinline)) void amx_block(i64 pcp, const uint8_t* a, i64 lda, const uint32_t* b,
                                                const float* cb, bool load, float* dst, i64 ldd) {
  // the tile loads' asm names only their address registers: make the packed operands' stores visible first
  __asm__ volatile("" ::: "memory");
  if (load) {
    _tile_loadd(0, cb, 128);
    _tile_loadd(1, cb + 16, 128);
    _tile_loadd(2, cb + 16 * 32, 128);
    _tile_loadd(3, cb + 16 * 32 + 16, 128);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint8_t* a1 = a + 16 * lda;
  for (i64 p = 0; p < pcp; p += 16) {
    _tile_loadd(4, a + 4 * p, lda);
    _tile_loadd(6, b + p * kNR, 128);
    _tile_loadd(7, b + p * kNR + 16, 128);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a1 + 4 * p, lda);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  float* dst1 = dst + 16 * (ldd / 4);
  _tile_stored(0, dst, ldd);
  _tile_stored(1, dst + 16, ldd);
  _tile_stored(2, dst1, ldd);
  _tile_stored(3, dst1 + 16, ldd);
}

// dst row j (rows ds words apart) = column j of the 16 x 16 words at src (rows ss words apart), j < 16: 32-bit
// unpacks pair rows, 64-bit unpacks gather four rows of each column in every 128-bit lane, and two rounds of
// lane shuffles put a column's four lanes together.
CR_BF16 void transpose16(const uint32_t* src, i64 ss, uint32_t* dst, i64 ds) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + i * ss);
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // r[4 g + c], lane L: rows 4g .. 4g + 3 of column 4 L + c
  for (int g = 0; g < 4; g++) {
    r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i s0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44), s1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xee);
    const __m512i s2 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44);
    const __m512i s3 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xee);
    _mm512_storeu_si512(dst + c * ds, _mm512_shuffle_i32x4(s0, s2, 0x88));
    _mm512_storeu_si512(dst + (4 + c) * ds, _mm512_shuffle_i32x4(s0, s2, 0xdd));
    _mm512_storeu_si512(dst + (8 + c) * ds, _mm512_shuffle_i32x4(s1, s3, 0x88));
    _mm512_storeu_si512(dst + (12 + c) * ds, _mm512_shuffle_i32x4(s1, s3, 0xdd));
  }
}

// Pack the B panel of lines [0, cnt) (cnt <= 32) of operand o over k in [0, K): pair rows p < pc = ceil(K / 2) of
// 32 words (word t: the pair p of line t; zero past cnt), then zero rows up to pcp. Whole panels of bfloat16
// lines or float32 lines one element apart (row-major B, unmasked) interleave two k rows with vector permutes;
// lines along k (a transposed B, such as a Linear layer's weight) are read line by line into tmp (32 (pcp + 16)
// words) and transposed 16 x 16 words at a time; anything else goes through pack_range.
CR_BF16 void amx_pack_panel(const Opnd& o, int cnt, i64 K, i64 pcp, uint32_t* dst, uint32_t* tmp) {
  const i64 pc = (K + 1) / 2;
  if ((o.sk < 0 ? -o.sk : o.sk) <= (o.sx < 0 ? -o.sx : o.sx)) {
    const i64 ls = pcp + 16;  // tmp's line stride: not a multiple of 4 KiB
    for (int t = 0; t < 32; t++) {
      uint32_t* w = tmp + t * ls;
      i64 p = 0;
      if (t < cnt) {
        line_pairs(o, t, K, w);
        p = pc;
      }
      for (; p < pcp; p++) w[p] = 0;
    }
    for (i64 p = 0; p < pcp; p += 16) {
      transpose16(tmp + p, ls, dst + p * kNR, kNR);
      transpose16(tmp + 16 * ls + p, ls, dst + p * kNR + 16, kNR);
    }
    return;
  }
  if (cnt == 32 && o.mask == nullptr && o.sx == (o.f32 ? 4 : 2)) {
    // words 0..15: (r0[j], r1[j]) for j < 16, as 16-bit lanes 2j, 2j + 1; words 16..31: j + 16
    alignas(64) static const uint16_t lo_idx[32] = {0,  32, 1,  33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                    8,  40, 9,  41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
    alignas(64) static const uint16_t hi_idx[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                                    24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
    const __m512i il = _mm512_load_si512(lo_idx), ih = _mm512_load_si512(hi_idx);
    for (i64 p = 0; p < pc; p++) {
      const uint8_t* r0 = o.base + 2 * p * o.sk;
      const bool two = 2 * p + 1 < K;
      __m512i v0, v1;
      if (o.f32) {
        // float32 -> bfloat16 in the low halves of 32-bit lanes, then packed to 32 16-bit lanes
        const __m512i a0 = rnd16(_mm512_loadu_si512(r0)), a1 = rnd16(_mm512_loadu_si512(r0 + 64));
        v0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(a0)), _mm512_cvtepi32_epi16(a1), 1);
        if (two) {
          const __m512i b0 = rnd16(_mm512_loadu_si512(r0 + o.sk)), b1 = rnd16(_mm512_loadu_si512(r0 + o.sk + 64));
          v1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(b0)), _mm512_cvtepi32_epi16(b1), 1);
        } else {
          v1 = _mm512_setzero_si512();
        }
      } else {
        v0 = _mm512_loadu_si512(r0);
        v1 = two ? _mm512_loadu_si512(r0 + o.sk) : _mm512_setzero_si512();
      }
      _mm512_storeu_si512(dst + p * kNR, _mm512_permutex2var_epi16(v0, il, v1));
      _mm512_storeu_si512(dst + p * kNR + 16, _mm512_permutex2var_epi16(v0, ih, v1));
    }
  } else {
    pack_range(o, cnt, K, (int)kNR, dst, tmp);
  }
  std::memset(dst + pc * kNR, 0, (size_t)((pcp - pc) * kNR * 4));
}

// The epilogue of a 32 x 32 float32 block t: + bias (float32 of bfloat16 values, or null), relu, stored as
// float32 or rounded to bfloat16 into c (ldc elements per row), for r < rows, columns < cols.
CR_BF16 void amx_epilogue(const float* t, int rows, int cols, uint8_t* c, i64 ldc, const float* bias, bool relu,
                          bool bf) {
  const Epi32 e = epi32(cols, bias, relu, bf);
  for (int r = 0; r < rows; r++)
    epi32_row(e, _mm512_load_ps(t + r * 32), _mm512_load_ps(t + r * 32 + 16), c + r * ldc * (bf ? 2 : 4));
}

// Pack operand o (X lines along x, K along k) as row-major pairs: row x (x < xpad, a multiple of 16) at
// dst + x ld holds the pairs p < ceil(K / 2) of line x, then zeros up to kpad (<= ld); rows past X are zero.
CR_BF16 void amx_pack_rows(const Opnd& o, i64 X, i64 K, i64 xpad, i64 kpad, i64 ld, uint32_t* dst, bool serial) {
  const i64 kp = (K + 1) / 2;
  const bool by_line = (o.sk < 0 ? -o.sk : o.sk) <= (o.sx < 0 ? -o.sx : o.sx);
  const i64 grain = serial ? xpad / 16 : imax<i64>(1, 4096 / imax<i64>(1, 16 * kpad));
  par_for(xpad / 16, grain, [&](i64 lo, i64 hi, int tid) {
    alignas(64) uint32_t tmp[16 * 16];
    for (i64 g = lo; g < hi; g++) {
      const i64 x0 = g * 16, cnt = imax<i64>(0, imin<i64>(16, X - x0));
      if (!by_line) {
        // 16 pairs of the 16 lines at a time (pair rows, zero past kp and past X), transposed into the rows
        for (i64 p0 = 0; p0 < kpad; p0 += 16) {
          for (i64 p = p0; p < p0 + 16; p++) {
            uint32_t* w = tmp + (p - p0) * 16;
            for (int t = 0; t < 16; t++) w[t] = 0;
            if (p < kp && cnt > 0) cols_words(o, p, K, x0, (int)cnt, w);
          }
          transpose16(tmp, 16, dst + x0 * ld + p0, ld);
        }
        continue;
      }
      for (i64 t = 0; t < 16; t++) {
        uint32_t* row = dst + (x0 + t) * ld;
        if (t < cnt) {
          line_pairs(o, x0 + t, K, row);
          for (i64 p = kp; p < kpad; p++) row[p] = 0;
        } else {
          for (i64 p = 0; p < kpad; p++) row[p] = 0;
        }
      }
    }
  });
}

// The space the AMX path packs A into (bytes) for an M x K operand.
CR_INLINE double amx_abytes(i64 M, i64 K) { return (double)((M + kAMB - 1) / kAMB * kAMB) * up16((K + 1) / 2) * 4; }

// One matrix of gemm_bf16 on AMX: c (ldc = N elements of esz bytes) = epilogue(a . b).
void amx_matrix(const Opnd& oa, const Opnd& ob, i64 M, i64 N, i64 K, uint8_t* c, const float* bq, bool relu,
                bool outbf) {
  const i64 kp = (K + 1) / 2, kpad = up16(kp);
  const i64 nkb = imax<i64>(1, (kp + kAKC - 1) / kAKC), kc = up16((kp + nkb - 1) / nkb);
  const i64 np = kNP;
  const i64 mb = (M + kAMB - 1) / kAMB, nb = (N + kNR - 1) / kNR, nchunks = (nb + np - 1) / np;
  // products under 2^24 multiply-adds (n = 256) run on one thread: about 15 us on AMX, where splitting them (each
  // part packing its own B) measured no faster on two cores; n = 384 ran 1.7x faster on two
  const bool serial = (double)M * N * K < 0x1p24;
  const i64 threads = serial ? 1 : pool_threads();
  const i64 msplit = threads == 1 || nchunks >= 2 * threads ? 1 : imin<i64>(mb, (2 * threads + nchunks - 1) / nchunks);
  const i64 mper = (mb + msplit - 1) / msplit;
  const bool kblocks = kc < kp;  // more than one K block: the C blocks of a chunk wait in cb between blocks
  // A bfloat16 A with rows of whole 16-pair groups (K a multiple of 32, pairs contiguous) and whole 32-row blocks
  // is read in place, rows oa.sx bytes apart, when it spans at most 512 KiB (larger ones ran slower in place than
  // packed: 2 MiB at n = 1024, 700 against 870 GFLOP/s); anything else is packed.
  // (K itself a multiple of 32, not only kp of 16: an odd K's last pair would read the element past the row)
  const bool inplace = !oa.f32 && oa.mask == nullptr && oa.sk == 2 && K % 32 == 0 && M % kAMB == 0 && oa.sx > 0 &&
                       M * oa.sx <= (i64)1 << 19;
  const uint8_t* pa = oa.base;
  const i64 lda = inplace ? oa.sx : kpad * 4;
  if (!inplace) {
    uint32_t* pk = static_cast<uint32_t*>(scratch(0, 6, (size_t)(mb * kAMB * lda)));
    if (pk == nullptr) return;  // scratch_failed() reports it
    amx_pack_rows(oa, M, K, mb * kAMB, kpad, lda / 4, pk, serial);
    pa = reinterpret_cast<const uint8_t*>(pk);
  }
  const i64 esz = outbf ? 2 : 4;
  const size_t bcbytes = (size_t)(np * kc * kNR * 4);
  const size_t cbbytes = (size_t)((kblocks ? mper * np : 1) * kAMB * kNR * 4);
  par_for(nchunks * msplit, serial ? nchunks * msplit : 1, [&](i64 lo, i64 hi, int tid) {
    uint32_t* bc = static_cast<uint32_t*>(scratch(tid, 7, bcbytes));
    float* cb = static_cast<float*>(scratch(tid, 3, cbbytes));
    uint32_t* tmp = static_cast<uint32_t*>(scratch(tid, 5, (size_t)(kNR * (kc + 16)) * 4));
    if (bc == nullptr || cb == nullptr || tmp == nullptr) return;  // scratch_failed() reports it
    amx_begin();
    for (i64 w = lo; w < hi; w++) {
      const i64 chunk = w / msplit, r0 = (w % msplit) * mper, r1 = imin<i64>(mb, r0 + mper);
      if (r0 >= r1) continue;
      const i64 q0 = chunk * np, q1 = imin<i64>(nb, q0 + np);
      for (i64 p0 = 0; p0 < kp; p0 += kc) {
        const i64 pc = imin<i64>(kc, kp - p0), pcp = up16(pc);
        const bool fin = p0 + pc >= kp;
        // the chunk's panels: B's columns q * 32 .. over k in [2 p0, min(K, 2 (p0 + pc))), pcp pair rows each
        for (i64 q = q0; q < q1; q++) {
          const i64 x = q * kNR, cnt = imin<i64>(kNR, N - x);
          const i64 boff = 2 * p0 * ob.sk + x * ob.sx;
          const Opnd os{ob.base + boff, ob.mask != nullptr ? ob.mask + boff : nullptr, ob.sk, ob.sx, ob.f32};
          amx_pack_panel(os, (int)cnt, imin<i64>(K - 2 * p0, 2 * pc), pcp, bc + (q - q0) * pcp * kNR, tmp);
        }
        // row blocks outside: A's 32 x kc block (32 KiB) stays in L1 while the chunk's panels (in L2) pass
        for (i64 r = r0; r < r1; r++) {
          for (i64 q = q0; q < q1; q++) {
            const int cols = (int)imin<i64>(kNR, N - q * kNR);
            float* tile = kblocks ? cb + ((q - q0) * (r1 - r0) + (r - r0)) * kAMB * kNR : cb;
            const int rows = (int)imin<i64>(kAMB, M - r * kAMB);
            uint8_t* cq = c + (r * kAMB * N + q * kNR) * esz;
            // a whole block of a plain float32 result goes straight from the tiles to the output
            const bool direct = fin && rows == kAMB && cols == kNR && !outbf && bq == nullptr && !relu;
            amx_block(pcp, pa + r * kAMB * lda + p0 * 4, lda, bc + (q - q0) * pcp * kNR, tile, p0 > 0,
                      direct ? reinterpret_cast<float*>(cq) : tile, direct ? N * 4 : kNR * 4);
            if (fin && !direct)
              amx_epilogue(tile, rows, cols, cq, N, bq != nullptr ? bq + q * kNR : nullptr, relu, outbf);
          }
        }
      }
    }
    amx_end();
  });
}
#else
// no AMX in this compiler: amx_enabled() is false (pool.cc), so these never run
constexpr i64 kAMB = 32;
CR_INLINE i64 up16(i64 v) { return (v + 15) & ~(i64)15; }
CR_INLINE double amx_abytes(i64, i64) { return 0; }
inline void amx_matrix(const Opnd&, const Opnd&, i64, i64, i64, uint8_t*, const float*, bool, bool) {}
#endif  // CR_AMX_BUILD
}  // namespace
#endif

// out[b] = epilogue(a[b] @ b[b]) for a [..., M, K] and b [..., K, N], each float32 (rounded to bfloat16 while
// packed) or bfloat16 (byte views [..., R, C, 2]); products accumulate in float32 (vdpbf16ps, or AMX tiles when
// amx_enabled()). `shape` is out's
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
  // K blocks of kc pairs (balanced), N chunks of kNP panels; with fewer chunks than two per thread, the row
  // blocks of a chunk are split too (each split packs the chunk's B itself)
  const i64 nkb = imax<i64>(1, (kp + kKC - 1) / kKC), kc = imax<i64>(1, (kp + nkb - 1) / nkb);
  const i64 nchunks = (nb + kNP - 1) / kNP;
  const i64 threads = pool_threads();
  const i64 msplit = threads == 1 || nchunks >= 2 * threads ? 1 : imin<i64>(mb, (2 * threads + nchunks - 1) / nchunks);
  const i64 mper = (mb + msplit - 1) / imax<i64>(1, msplit);
  // packed A: mb blocks of kp x kMR words (the whole K); per thread: a packed B chunk of kc x kNP*kNR words, the
  // float32 tile buffers of a chunk's row blocks (only with more than one K block) and a line of pairs
  // AMX tiles where the CPU and OS have them (and they are not switched off), read once per call; that path packs
  // A its own way (amx_matrix)
  const bool amx = amx_enabled();
  const double abytes = amx ? amx_abytes(M, K) : (double)mb * kMR * kp * 4;
  if (abytes > 0x1p40) return "dotBF16: operands too large";
  const size_t bcbytes = (size_t)(kc * kNP * kNR * 4), cbbytes = (size_t)(mper * kMR * kNP * kNR * 4);
  uint32_t* pa = amx ? nullptr : static_cast<uint32_t*>(scratch(0, 6, (size_t)abytes));
  float* bq = bias != nullptr ? static_cast<float*>(scratch(0, 4, (size_t)(N + kNR) * 4)) : nullptr;
  if ((!amx && pa == nullptr) || (bias != nullptr && bq == nullptr)) return nullptr;  // scratch_failed()
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
    uint8_t* ct = c + t * M * N * esz;
    if (amx) {
      amx_matrix(oa, ob, M, N, K, ct, bq, relu, outbf);
      continue;
    }
    pack_blocks(oa, M, K, kMR, pa);
    par_for(nchunks * msplit, 1, [&](i64 lo, i64 hi, int tid) {
      uint32_t* bc = static_cast<uint32_t*>(scratch(tid, 7, bcbytes));
      float* cb = nkb > 1 ? static_cast<float*>(scratch(tid, 3, cbbytes)) : nullptr;
      uint32_t* tmp = static_cast<uint32_t*>(scratch(tid, 5, (size_t)(kc + 16) * 4));
      if (bc == nullptr || tmp == nullptr || (nkb > 1 && cb == nullptr)) return;  // scratch_failed() reports it
      for (i64 w = lo; w < hi; w++) {
        const i64 chunk = w / msplit, r0 = (w % msplit) * mper, r1 = imin<i64>(mb, r0 + mper);
        if (r0 >= r1) continue;
        const i64 q0 = chunk * kNP, q1 = imin<i64>(nb, q0 + kNP);
        const i64 x0 = q0 * kNR, xn = imin<i64>(N - x0, (q1 - q0) * kNR);
        for (i64 kb = 0; kb < nkb; kb++) {
          const i64 p0 = kb * kc, pc = imin<i64>(kc, kp - p0);
          const bool fin = p0 + pc >= kp;
          // B's lines x0 .. x0 + xn over k in [2 p0, min(K, 2 (p0 + pc)))
          const i64 boff = 2 * p0 * ob.sk + x0 * ob.sx;
          const Opnd os{ob.base + boff, ob.mask != nullptr ? ob.mask + boff : nullptr, ob.sk, ob.sx, ob.f32};
          pack_range(os, xn, imin<i64>(K - 2 * p0, 2 * pc), kNR, bc, tmp);
          for (i64 q = q0; q < q1; q++) {
            const int cols = (int)imin<i64>(kNR, N - q * kNR);
            for (i64 r = r0; r < r1; r++) {
              const int rows = (int)imin<i64>(kMR, M - r * kMR);
              float* tile = cb != nullptr ? cb + ((q - q0) * (r1 - r0) + (r - r0)) * kMR * kNR : nullptr;
              micro_bf16(pc, pa + r * kMR * kp + p0 * kMR, bc + (q - q0) * pc * kNR, tile, kb > 0, fin,
                         ct + (r * kMR * N + q * kNR) * esz, N, rows, cols, bq != nullptr ? bq + q * kNR : nullptr,
                         relu, outbf);
            }
          }
          if (fin) break;
        }
      }
    });
  }
  return nullptr;
#else
  (void)kind, (void)nd, (void)shape, (void)a, (void)b, (void)bias, (void)mask, (void)out;
  return "dotBF16: this build has no AVX512_BF16 kernel";
#endif
}


// ---------------------------------------------------------------------------------------------------------
// The bfloat16 convolution (conv_bf16) as an implicit GEMM on the micro-tile above: no im2col matrix. The input
// is copied once into a bfloat16 buffer with a zero frame of the padding (float32 input rounded there), and the
// GEMM's packed panels are gathered from it directly, a row segment (one output row's positions, stride 1 along
// the row: one vector load per 16 positions) at a time.
//   kind 0 (forward), per group g: y[n, g Og + o, p] = act(sum_k W[g Og + o, k] xp(k, n, p) + bias[o]), the GEMM
//     M = Og output channels, K = Cg KH KW taps, N = the batch's N OH OW output positions; output float32 or
//     bfloat16 (rounded once after bias and relu) in [N, O, OH, OW].
//   kind 1 (weight gradient), per group g: dW[g Og + o, k] = sum over positions (n, p) of dz[n, g Og + o, p] xp(k,
//     n, p): M = Og, K = N OH OW positions, N = Cg KH KW taps; float32 accumulators are the output.
#if CR_ISA_LEVEL == 2
namespace {

struct CGeo {
  i64 N, C, H, W, O, Cg, KH, KW, OH, OW, G, Og, sh, sw, ph, pw, dh, dw, Hp, Wp, P, Kg;
};

// Columns [t, t + len) of a run of positions lie on one output row: their first input element (channel 0, tap
// (0, 0)) is xp[off], the next ones every sw.
struct Seg {
  int32_t t, len;
  i64 off;
};

// The bfloat16 values of an operand element at byte address q (float32 rounded, or bfloat16).
CR_INLINE uint16_t val16(const uint8_t* q, bool f32) { return f32 ? (uint16_t)to_bf16(load32(q)) : load16(q); }

// A run of n values of a float32 / bfloat16 row (byte stride s) as bfloat16 into dst; with a mask row (bfloat16,
// byte stride ms, or null) the values whose mask is not > 0 become 0 (relu's derivative through its output).
CR_BF16 void row16(const uint8_t* src, i64 s, bool f32, i64 n, uint16_t* dst, const uint8_t* msk = nullptr,
                   i64 ms = 0) {
  i64 i = 0;
  if (msk == nullptr || ms == 2) {
    const __m256i one = _mm256_set1_epi16(1), lim = _mm256_set1_epi16(0x7f80);
    if (f32 && s == 4) {
      for (; i + 16 <= n; i += 16) {
        __m256i v = _mm512_cvtepi32_epi16(rnd16(_mm512_loadu_si512(src + 4 * i)));
        if (msk != nullptr) {
          const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(msk + 2 * i));
          v = _mm256_maskz_mov_epi16(_mm256_cmplt_epu16_mask(_mm256_sub_epi16(m, one), lim), v);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), v);
      }
    } else if (!f32 && s == 2) {
      if (msk == nullptr) {
        std::memcpy(dst, src, (size_t)n * 2);
        return;
      }
      for (; i + 16 <= n; i += 16) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
        const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(msk + 2 * i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                            _mm256_maskz_mov_epi16(_mm256_cmplt_epu16_mask(_mm256_sub_epi16(m, one), lim), v));
      }
    }
  }
  for (; i < n; i++) dst[i] = msk != nullptr && !pos16(load16(msk + i * ms)) ? 0 : val16(src + i * s, f32);
}

// xp[(n C + c) Hp Wp + (h + ph) Wp + w + pw] = bfloat16 of x[n, c, h, w], zero in the frame; 32 zeros follow
// (vector loads of a segment may read past the last plane).
CR_BF16 void pad_copy(const uint8_t* base, const i64* xs, bool f32, const uint8_t* mbase, const i64* mst,
                      const CGeo& g, uint16_t* xp) {
  const i64 plane = g.Hp * g.Wp;
  par_for(g.N * g.C, imax<i64>(1, 16384 / imax<i64>(1, plane)), [&](i64 lo, i64 hi, int) {
    for (i64 nc = lo; nc < hi; nc++) {
      const i64 n = nc / g.C, c = nc % g.C;
      uint16_t* dst = xp + nc * plane;
      const uint8_t* src = base + n * xs[0] + c * xs[1];
      std::memset(dst, 0, (size_t)(g.ph * g.Wp) * 2);
      std::memset(dst + (g.ph + g.H) * g.Wp, 0, (size_t)(g.ph * g.Wp) * 2);
      for (i64 h = 0; h < g.H; h++) {
        uint16_t* d = dst + (h + g.ph) * g.Wp;
        for (i64 w = 0; w < g.pw; w++) d[w] = d[g.pw + g.W + w] = 0;
        if (mbase == nullptr)
          row16(src + h * xs[2], xs[3], f32, g.W, d + g.pw);
        else
          row16(src + h * xs[2], xs[3], f32, g.W, d + g.pw, mbase + n * mst[0] + c * mst[1] + h * mst[2], mst[3]);
      }
    }
  });
  std::memset(xp + g.N * g.C * plane, 0, 64);
}

// The segments of the positions [q0, q0 + cnt) of the batch (n, oh, ow row-major); returns their number.
i64 build_segs(const CGeo& g, i64 q0, i64 cnt, Seg* s) {
  if (cnt <= 0) return 0;
  i64 n = q0 / g.P, p = q0 % g.P, oh = p / g.OW, ow = p % g.OW, t = 0, ns = 0;
  const i64 plane = g.Hp * g.Wp;
  while (t < cnt) {
    const i64 len = imin<i64>(g.OW - ow, cnt - t);
    s[ns++] = Seg{(int32_t)t, (int32_t)len, n * g.C * plane + oh * g.sh * g.Wp + ow * g.sw};
    t += len;
    ow = 0;
    if (++oh == g.OH) oh = 0, n++;
  }
  return ns;
}

// The element offset in xp of tap k = (c, i, j) of group gi, relative to a segment's offset.
CR_INLINE i64 tap_off(const CGeo& g, i64 gi, i64 k) {
  const i64 kk = g.KH * g.KW, c = k / kk, i = (k % kk) / g.KW, j = k % g.KW;
  return (gi * g.Cg + c) * g.Hp * g.Wp + i * g.dh * g.Wp + j * g.dw;
}

// row[t] = xp value of tap offset koff at the segments' positions (16 values past each segment may be written:
// the next segment or the caller overwrites them).
CR_BF16 void gather_row(const uint16_t* xp, i64 koff, const Seg* s, i64 ns, i64 sw, uint16_t* row) {
  if (sw == 1) {
    for (i64 e = 0; e < ns; e++) {
      const uint16_t* src = xp + s[e].off + koff;
      uint16_t* dst = row + s[e].t;
      for (int l = 0; l < s[e].len; l += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + l),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + l)));
    }
  } else {
    for (i64 e = 0; e < ns; e++) {
      const uint16_t* src = xp + s[e].off + koff;
      uint16_t* dst = row + s[e].t;
      for (int l = 0; l < s[e].len; l++) dst[l] = src[l * sw];
    }
  }
}

// Forward B panels: taps [2 p0, 2 (p0 + pc)) x positions of the segments (xn columns, zero up to a multiple of
// 32): bc[(t / 32) ps 32 + pl 32 + t % 32] = the pair (tap 2 (p0 + pl), the next) at column t (panels ps >= pc pair
// rows apart; rows pc .. ps are left alone).
CR_BF16 void pack_fwd(const CGeo& g, i64 gi, const uint16_t* xp, const Seg* s, i64 ns, i64 xn, i64 p0, i64 pc,
                      i64 ps, uint16_t* r0, uint16_t* r1, uint32_t* bc) {
  const i64 xpad = (xn + 31) / 32 * 32;
  if (g.sw == 1) {
    // the two taps' rows read and interleaved in one pass, segment by segment, into words at r0 (as uint32)
    uint32_t* wb = reinterpret_cast<uint32_t*>(r0);
    for (i64 pl = 0; pl < pc; pl++) {
      const i64 k = 2 * (p0 + pl);
      const i64 k0 = tap_off(g, gi, k);
      const bool two = k + 1 < g.Kg;
      const i64 k1 = two ? tap_off(g, gi, k + 1) : 0;
      for (i64 e = 0; e < ns; e++) {
        const uint16_t* s0 = xp + s[e].off + k0;
        const uint16_t* s1 = xp + s[e].off + k1;
        uint32_t* dst = wb + s[e].t;
        for (int l = 0; l < s[e].len; l += 16) {
          const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s0 + l)));
          const __m512i hi = two ? _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                         reinterpret_cast<const __m256i*>(s1 + l))),
                                                     16)
                                 : _mm512_setzero_si512();
          _mm512_storeu_si512(dst + l, _mm512_or_si512(lo, hi));
        }
      }
      for (i64 t = xn; t < xpad; t++) wb[t] = 0;
      for (i64 t = 0; t < xpad; t += 16)
        _mm512_storeu_si512(bc + (t / 32) * ps * 32 + pl * 32 + (t & 31), _mm512_loadu_si512(wb + t));
    }
    return;
  }
  for (i64 pl = 0; pl < pc; pl++) {
    const i64 k = 2 * (p0 + pl);
    gather_row(xp, tap_off(g, gi, k), s, ns, g.sw, r0);
    if (k + 1 < g.Kg)
      gather_row(xp, tap_off(g, gi, k + 1), s, ns, g.sw, r1);
    else
      std::memset(r1, 0, (size_t)xpad * 2);
    for (i64 t = xn; t < xpad; t++) r0[t] = r1[t] = 0;
    for (i64 t = 0; t < xpad; t += 16) {
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + t)));
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + t)));
      _mm512_storeu_si512(bc + (t / 32) * ps * 32 + pl * 32 + (t & 31), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// Weight-gradient B panels: positions [2 p0, 2 p0 + cnt) (the segments) x taps [x0, x0 + xn): line t (tap x0 + t)
// gathered at lines + t lw (u16, zero at cnt when cnt is odd), then bc[(t / 32) pc 32 + pl 32 + t % 32] = word pl
// of line t (zero for t >= xn); panels ps >= pc pair rows apart (rows pc .. ps left alone).
CR_BF16 void pack_wg(const CGeo& g, i64 gi, const uint16_t* xp, const Seg* s, i64 ns, i64 cnt, i64 x0, i64 xn,
                     i64 pc, i64 ps, i64 lw, uint16_t* lines, uint32_t* bc) {
  for (i64 t = 0; t < xn; t++) {
    uint16_t* ln = lines + t * lw;
    gather_row(xp, tap_off(g, gi, x0 + t), s, ns, g.sw, ln);
    ln[cnt] = 0;
  }
  const uint32_t* l32 = reinterpret_cast<const uint32_t*>(lines);
  const __m512i step = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32((int)(lw / 2)));
  for (i64 b = 0; b * 32 < xn; b++) {
    const i64 nb = imin<i64>(32, xn - b * 32);
    const __mmask16 k0 = nb >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nb) - 1);
    const __mmask16 k1 = nb >= 32 ? (__mmask16)0xffff : nb <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nb - 16)) - 1);
    const uint32_t* base0 = l32 + b * 32 * (lw / 2);
    const uint32_t* base1 = base0 + 16 * (lw / 2);
    uint32_t* dst = bc + b * ps * 32;
    for (i64 pl = 0; pl < pc; pl++) {
      const __m512i v0 = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k0, step, base0 + pl, 4);
      const __m512i v1 = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k1, step, base1 + pl, 4);
      _mm512_storeu_si512(dst + pl * 32, v0);
      _mm512_storeu_si512(dst + pl * 32 + 16, v1);
    }
  }
}

// The forward epilogue of one 12 x 32 float32 tile (columns: positions col0 .. col0 + cols of the batch, rows:
// output channels o0 .. o0 + rows): + bias[o], relu, stored as float32 or bfloat16 into y [N, O, OH, OW].
CR_BF16 void epi_scatter(const float* tile, const CGeo& g, i64 o0, int rows, i64 col0, int cols, const float* bias,
                         bool relu, bool bf, uint8_t* y) {
  const __m512 zero = _mm512_setzero_ps();
  int t = 0;
  while (t < cols) {
    const i64 q = col0 + t, n = q / g.P, p = q % g.P;
    const int len = (int)imin<i64>(cols - t, g.P - p);
    for (int r = 0; r < rows; r++) {
      const __m512 bv = bias != nullptr ? _mm512_set1_ps(bias[o0 + r]) : zero;
      const i64 at = (n * g.O + o0 + r) * g.P + p;
      for (int l = 0; l < len; l += 16) {
        const __mmask16 m = len - l >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (len - l)) - 1);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, tile + r * kNR + t + l), bv);
        if (relu) v = _mm512_max_ps(zero, v);
        if (bf)
          _mm512_mask_cvtepi32_storeu_epi16(reinterpret_cast<uint16_t*>(y) + at + l, m, rnd16(_mm512_castps_si512(v)));
        else
          _mm512_mask_storeu_ps(reinterpret_cast<float*>(y) + at + l, m, v);
      }
    }
    t += len;
  }
}

// A float32 [..4 dims] view or bfloat16 bytes [..4 dims, 2]: its base address and byte strides.
bool conv_operand(const View& v, const uint8_t** base, i64* bs, bool* f32) {
  if (v.dtype == F32 && v.ndim == 4) {
    for (int d = 0; d < 4; d++) bs[d] = 4 * v.strides[d];
    *base = static_cast<const uint8_t*>(v.data) + 4 * v.offset;
    *f32 = true;
    return true;
  }
  if (v.dtype == BOOL && v.ndim == 5 && v.shape[4] == 2 && v.strides[4] == 1) {
    for (int d = 0; d < 4; d++) bs[d] = v.strides[d];
    *base = static_cast<const uint8_t*>(v.data) + v.offset;
    *f32 = false;
    return true;
  }
  return false;
}

}  // namespace
#endif

// kind 0: out = act(conv2d(p = x, q = w) + bias), x [N, C, H, W] float32 or bfloat16 bytes [N, C, H, W, 2], w float32
// [O, C / groups, KH, KW], bias null or float32 [O] (rounded to bfloat16), act -1 or A_RELU; out float32 or
// bfloat16 bytes [N, O, OH, OW] (`shape`). kind 2: the same without bias and act, x's elements whose mask (the
// third view: bfloat16 bytes of x's shape, or null) is not > 0 taken as 0 (the input gradient as a convolution
// of dz through relu). kind 1: out = the weight gradient [O, C / groups, KH, KW] (`shape`, float32) of p = x and
// q = dz [N, O, OH, OW] (float32 or bfloat16 bytes), dz masked likewise by the third view (dz's shape, or null);
// act 1: out also holds the bias gradient (the sum of the masked dz over N, OH, OW per channel, float32) after
// the weight's O C/groups KH KW values. Any strides. Operands are rounded to bfloat16, products accumulate in
// float32 (vdpbf16ps, or AMX tiles when amx_enabled()). Needs AVX512_BF16.
Err conv_bf16(int kind, const View& p, const View& q, const Out& out, const int64_t* shape, const ConvParams& cp,
              const View* bias, int act) {
#if CR_ISA_LEVEL == 2
  if (!__builtin_cpu_supports("avx512bf16")) return "convBF16: this CPU lacks AVX512_BF16";
  if (kind < 0 || kind > 2) return "convBF16: kind must be 0 (forward), 1 (weight gradient) or 2 (masked forward)";
  const uint8_t *xb, *qb;
  i64 xs[4], qs[4];
  bool xf = false, qf = false;
  if (!conv_operand(p, &xb, xs, &xf)) return "convBF16: x must be float32 [N, C, H, W] or bfloat16 bytes [N, C, H, W, 2]";
  if (!conv_operand(q, &qb, qs, &qf)) return "convBF16: the second operand must be float32 or bfloat16 bytes of rank 4";
  if (kind != 1 && !qf) return "convBF16: the weight must be float32";
  const i64* ws = kind != 1 ? q.shape : shape;
  const i64* ys = kind != 1 ? shape : q.shape;
  CGeo g;
  g.N = p.shape[0], g.C = p.shape[1], g.H = p.shape[2], g.W = p.shape[3];
  g.O = ws[0], g.Cg = ws[1], g.KH = ws[2], g.KW = ws[3];
  g.OH = ys[2], g.OW = ys[3];
  g.G = cp.groups, g.sh = cp.sh, g.sw = cp.sw, g.ph = cp.ph, g.pw = cp.pw, g.dh = cp.dh, g.dw = cp.dw;
  if (g.G < 1 || (__int128)g.Cg * g.G != g.C || g.O % g.G != 0 || ys[0] != g.N || ys[1] != g.O)
    return "convBF16: inconsistent shapes or groups";
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0)
    return "convBF16: invalid stride, padding or dilation";
  if (g.KH < 1 || g.KW < 1) return "convBF16: the kernel must have positive extents";
  const __int128 eh = (__int128)g.H + 2 * (__int128)g.ph - (__int128)g.dh * (g.KH - 1) - 1;
  const __int128 ew = (__int128)g.W + 2 * (__int128)g.pw - (__int128)g.dw * (g.KW - 1) - 1;
  if ((__int128)g.OH != (eh >= 0 ? eh / g.sh + 1 : 0) || (__int128)g.OW != (ew >= 0 ? ew / g.sw + 1 : 0))
    return "convBF16: the output extents do not match the input, kernel, stride, padding and dilation";
  if (kind == 0 ? act >= 0 && act != A_RELU : kind == 1 ? act != -1 && act != 1 : act != -1)
    return "convBF16: act must be -1 or relu (forward), -1 or 1 (weight gradient), -1 (masked forward)";
  const bool dbias = kind == 1 && act == 1;
  if (kind == 0 && bias != nullptr && (bias->dtype != F32 || bias->ndim != 1 || bias->shape[0] != g.O))
    return "convBF16: bias must be float32 [O]";
  // the mask of x (kind 2) or dz (kind 1): bfloat16 bytes of that operand's shape
  const uint8_t* mk = nullptr;
  i64 mst[4] = {0, 0, 0, 0};
  if (kind != 0 && bias != nullptr) {
    const View& mv = *bias;
    const View& tgt = kind == 2 ? p : q;
    bool mf = true;
    if (!conv_operand(mv, &mk, mst, &mf) || mf) return "convBF16: the mask must be bfloat16 bytes of rank 4";
    for (int d = 0; d < 4; d++)
      if (mv.shape[d] != tgt.shape[d]) return "convBF16: the mask must have its operand's shape";
  }
  const bool outbf = out.dtype == BOOL;
  if (out.dtype != F32 && !(outbf && kind != 1))
    return "convBF16: the output must be float32 (or bfloat16 bytes, forward)";
  g.Og = g.O / g.G, g.Hp = g.H + 2 * g.ph, g.Wp = g.W + 2 * g.pw, g.P = g.OH * g.OW, g.Kg = g.Cg * g.KH * g.KW;
  const __int128 osize = (__int128)shape[0] * shape[1] * shape[2] * shape[3];
  const __int128 need = osize + (dbias ? g.O : 0);
  if (outbf ? (__int128)out.length / 2 < need : (__int128)out.length < need) return "convBF16: the output is too small";
  const __int128 padded = (__int128)g.N * g.C * g.Hp * g.Wp;
  if (padded > ((__int128)1 << 38) || (__int128)g.N * g.P > ((__int128)1 << 40) || g.Kg > (1 << 24))
    return "convBF16: operands too large";
  if (osize == 0) return nullptr;
  const View* bv = kind == 0 ? bias : nullptr;  // kinds 1 and 2 pass a mask there
  if (kind == 2) kind = 0;                      // the mask is applied by the padded copy of x
  const i64 NP = g.N * g.P;
  const i64 M = g.Og, K = kind == 0 ? g.Kg : NP, NC = kind == 0 ? NP : g.Kg;
  const i64 kp = (K + 1) / 2, nb = (NC + kNR - 1) / kNR, mb = (M + kMR - 1) / kMR;
  const i64 nkb = imax<i64>(1, (kp + kKC - 1) / kKC), kc = imax<i64>(1, (kp + nkb - 1) / nkb);
  const i64 nchunks = (nb + kNP - 1) / kNP;
  const i64 threads = pool_threads();
  const i64 work = g.G * nchunks;
  const i64 msplit = threads == 1 || work >= 2 * threads ? 1 : imin<i64>(mb, (2 * threads + work - 1) / work);
  const i64 mper = (mb + msplit - 1) / msplit;
#if CR_AMX_BUILD
  const bool amx = amx_enabled();  // AMX tiles (see amx_matrix), read once per call
#else
  const bool amx = false;
#endif
  // packed A words per group: mb blocks of kp x kMR words (vdpbf16ps), or amb blocks of 32 rows of kpad words
  // (AMX: row-major pairs, K padded to 16 pairs)
  const i64 kpad = up16(kp), amb = (M + kAMB - 1) / kAMB;
  const i64 ablk = amx ? amb * kAMB * kpad : mb * kMR * kp;
  const i64 rb = amx ? kAMB : kMR, nrb = amx ? amb : mb;  // rows per block, blocks per group
  uint16_t* xp = static_cast<uint16_t*>(scratch(0, 0, (size_t)padded * 2 + 64));
  uint32_t* pa = static_cast<uint32_t*>(scratch(0, 6, (size_t)(g.G * ablk) * 4 + 64));
  float* bq = bv != nullptr ? static_cast<float*>(scratch(0, 4, (size_t)g.O * 4)) : nullptr;
  if (xp == nullptr || pa == nullptr || (bv != nullptr && bq == nullptr)) return nullptr;  // scratch_failed()
  for (i64 o = 0; o < (bv != nullptr ? g.O : 0); o++)
    bq[o] = bits_f32((uint32_t)to_bf16(f32_bits(static_cast<const float*>(bv->data)[bv->offset + o * bv->strides[0]])) << 16);
  pad_copy(xb, xs, xf, kind == 0 ? mk : nullptr, mst, g, xp);
  // packed A: per group, nrb blocks of rb rows (rows past Og zero); the word of pair pp of row t of a block at
  // blk[pp ds + t] (ds = kMR) or, on AMX, at row t's blk[t kpad + pp] (ds = 1; zero from kp to kpad)
  par_for(g.G * nrb, 1, [&](i64 lo, i64 hi, int tid) {
    uint16_t* line = kind == 1 ? static_cast<uint16_t*>(scratch(tid, 5, (size_t)(NP + 32) * 2)) : nullptr;
    if (kind == 1 && line == nullptr) return;
    const i64 ds = amx ? 1 : kMR;
    for (i64 w = lo; w < hi; w++) {
      const i64 gi = w / nrb, r = w % nrb;
      uint32_t* blk = pa + gi * ablk + r * rb * (amx ? kpad : kp);
      for (int t = 0; t < rb; t++) {
        const i64 m = r * rb + t;
        uint32_t* dst = amx ? blk + t * kpad : blk + t;
        for (i64 pp = kp; pp < (amx ? kpad : 0); pp++) dst[pp] = 0;
        if (m >= M) {
          for (i64 pp = 0; pp < kp; pp++) dst[pp * ds] = 0;
          continue;
        }
        const i64 o = gi * g.Og + m;
        if (kind == 0) {
          const uint8_t* wo = qb + o * qs[0];
          const i64 kk = g.KH * g.KW;
          for (i64 pp = 0; pp < kp; pp++) {
            uint32_t word = 0;
            for (int h = 0; h < 2; h++) {
              const i64 k = 2 * pp + h;
              if (k >= K) break;
              const i64 c = k / kk, i = (k % kk) / g.KW, j = k % g.KW;
              word |= (uint32_t)val16(wo + c * qs[1] + i * qs[2] + j * qs[3], true) << (16 * h);
            }
            dst[pp * ds] = word;
          }
        } else {
          // dz[n, o, oh, ow] over the positions (n, oh, ow), as bfloat16
          for (i64 n = 0; n < g.N; n++)
            for (i64 oh = 0; oh < g.OH; oh++)
              row16(qb + n * qs[0] + o * qs[1] + oh * qs[2], qs[3], qf, g.OW, line + (n * g.OH + oh) * g.OW,
                    mk != nullptr ? mk + n * mst[0] + o * mst[1] + oh * mst[2] : nullptr, mst[3]);
          line[NP] = 0;
          if (dbias) {  // the bias gradient: the float32 sum of the line (16 lanes, then across them)
            __m512 acc = _mm512_setzero_ps();
            i64 e = 0;
            for (; e + 16 <= NP; e += 16)
              acc = _mm512_add_ps(acc, _mm512_castsi512_ps(_mm512_slli_epi32(
                                           _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                               reinterpret_cast<const __m256i*>(line + e))),
                                           16)));
            float sum = _mm512_reduce_add_ps(acc);
            for (; e < NP; e++) sum += bits_f32((uint32_t)line[e] << 16);
            reinterpret_cast<float*>(out.data)[g.O * g.Kg + o] = sum;
          }
          const uint32_t* l32 = reinterpret_cast<const uint32_t*>(line);
          if (amx)
            std::memcpy(dst, l32, (size_t)kp * 4);
          else
            for (i64 pp = 0; pp < kp; pp++) dst[pp * kMR] = l32[pp];
        }
      }
    }
  });
  const bool relu = act == A_RELU;
  uint8_t* y = static_cast<uint8_t*>(out.data);
#if CR_AMX_BUILD
  if (amx) {
    // AMX (see amx_matrix): the packed A in 32-row blocks of row-major pairs, K blocks of a multiple of 16 pairs
    // with the panels' tail rows zero, 32 x 32 C blocks through the tiles
    const i64 kc2 = up16(kc);
    const i64 msplit2 = threads == 1 || work >= 2 * threads ? 1 : imin<i64>(amb, (2 * threads + work - 1) / work);
    const i64 mper2 = (amb + msplit2 - 1) / msplit2;
    const i64 lw2 = 2 * kc2 + 32;  // u16 per line (kind 1)
    const i64 segmax2 = (kind == 0 ? kNP * kNR : 2 * kc2) + 2;
    par_for(work * msplit2, 1, [&](i64 lo, i64 hi, int tid) {
      uint32_t* bc = static_cast<uint32_t*>(scratch(tid, 7, (size_t)(kc2 * kNP * kNR) * 4));
      float* cb = static_cast<float*>(scratch(tid, 3, (size_t)(mper2 * kAMB * kNP * kNR) * 4));
      Seg* segs = static_cast<Seg*>(scratch(tid, 2, (size_t)segmax2 * sizeof(Seg)));
      uint16_t* rows = static_cast<uint16_t*>(
          scratch(tid, 1, kind == 0 ? (size_t)(4 * (kNP * kNR + 32)) * 2 : (size_t)(kNP * kNR * lw2) * 2));
      if (bc == nullptr || cb == nullptr || segs == nullptr || rows == nullptr) return;  // scratch_failed()
      amx_begin();
      for (i64 w = lo; w < hi; w++) {
        const i64 ms = w % msplit2, gc = w / msplit2, gi = gc / nchunks, chunk = gc % nchunks;
        const i64 r0 = ms * mper2, r1 = imin<i64>(amb, r0 + mper2);
        if (r0 >= r1) continue;
        const i64 q0 = chunk * kNP, q1 = imin<i64>(nb, q0 + kNP);
        const i64 x0 = q0 * kNR, xn = imin<i64>(NC - x0, (q1 - q0) * kNR);
        i64 ns = kind == 0 ? build_segs(g, x0, xn, segs) : 0;
        const uint32_t* pag = pa + gi * ablk;
        for (i64 p0 = 0; p0 < kp; p0 += kc2) {
          const i64 pc = imin<i64>(kc2, kp - p0), pcp = up16(pc);
          const bool fin = p0 + pc >= kp;
          if (kind == 0) {
            pack_fwd(g, gi, xp, segs, ns, xn, p0, pc, pcp, rows, rows + 2 * (kNP * kNR + 32), bc);
          } else {
            const i64 cnt = imin<i64>(2 * pc, K - 2 * p0);
            ns = build_segs(g, 2 * p0, cnt, segs);
            pack_wg(g, gi, xp, segs, ns, cnt, x0, xn, pc, pcp, lw2, rows, bc);
          }
          if (pcp > pc)
            for (i64 qq = q0; qq < q1; qq++)
              std::memset(bc + (qq - q0) * pcp * kNR + pc * kNR, 0, (size_t)((pcp - pc) * kNR * 4));
          for (i64 r = r0; r < r1; r++) {
            const int nrow = (int)imin<i64>(kAMB, M - r * kAMB);
            for (i64 qq = q0; qq < q1; qq++) {
              const int cols = (int)imin<i64>(kNR, NC - qq * kNR);
              float* tile = cb + ((qq - q0) * (r1 - r0) + (r - r0)) * kAMB * kNR;
              const uint8_t* ar = reinterpret_cast<const uint8_t*>(pag + r * kAMB * kpad + p0);
              const uint32_t* bp = bc + (qq - q0) * pcp * kNR;
              if (kind == 0) {
                amx_block(pcp, ar, kpad * 4, bp, tile, p0 > 0, tile, kNR * 4);
                if (fin) epi_scatter(tile, g, gi * g.Og + r * kAMB, nrow, qq * kNR, cols, bq, relu, outbf, y);
              } else {
                float* ct = reinterpret_cast<float*>(y) + (gi * g.Og + r * kAMB) * g.Kg + qq * kNR;
                const bool direct = fin && nrow == kAMB && cols == kNR;
                amx_block(pcp, ar, kpad * 4, bp, tile, p0 > 0, direct ? ct : tile, direct ? g.Kg * 4 : kNR * 4);
                if (fin && !direct)
                  amx_epilogue(tile, nrow, cols, reinterpret_cast<uint8_t*>(ct), g.Kg, nullptr, false, false);
              }
            }
          }
        }
      }
      amx_end();
    });
    return nullptr;
  }
#endif
  const i64 lw = 2 * kc + 32;  // u16 per line (kind 1)
  const i64 segmax = (kind == 0 ? kNP * kNR : 2 * kc) + 2;
  par_for(work * msplit, 1, [&](i64 lo, i64 hi, int tid) {
    uint32_t* bc = static_cast<uint32_t*>(scratch(tid, 7, (size_t)(kc * kNP * kNR) * 4));
    float* cb = static_cast<float*>(scratch(tid, 3, (size_t)(mper * kMR * kNP * kNR) * 4));
    Seg* segs = static_cast<Seg*>(scratch(tid, 2, (size_t)segmax * sizeof(Seg)));
    uint16_t* rows = static_cast<uint16_t*>(
        scratch(tid, 1, kind == 0 ? (size_t)(4 * (kNP * kNR + 32)) * 2 : (size_t)(kNP * kNR * lw) * 2));
    if (bc == nullptr || cb == nullptr || segs == nullptr || rows == nullptr) return;  // scratch_failed()
    for (i64 w = lo; w < hi; w++) {
      const i64 ms = w % msplit, gc = w / msplit, gi = gc / nchunks, chunk = gc % nchunks;
      const i64 r0 = ms * mper, r1 = imin<i64>(mb, r0 + mper);
      if (r0 >= r1) continue;
      const i64 q0 = chunk * kNP, q1 = imin<i64>(nb, q0 + kNP);
      const i64 x0 = q0 * kNR, xn = imin<i64>(NC - x0, (q1 - q0) * kNR);
      i64 ns = kind == 0 ? build_segs(g, x0, xn, segs) : 0;
      const uint32_t* pag = pa + gi * ablk;
      for (i64 kb = 0; kb < nkb; kb++) {
        const i64 p0 = kb * kc, pc = imin<i64>(kc, kp - p0);
        const bool fin = p0 + pc >= kp;
        if (kind == 0) {
          pack_fwd(g, gi, xp, segs, ns, xn, p0, pc, pc, rows, rows + 2 * (kNP * kNR + 32), bc);
        } else {
          const i64 cnt = imin<i64>(2 * pc, K - 2 * p0);
          ns = build_segs(g, 2 * p0, cnt, segs);
          pack_wg(g, gi, xp, segs, ns, cnt, x0, xn, pc, pc, lw, rows, bc);
        }
        for (i64 qq = q0; qq < q1; qq++) {
          const int cols = (int)imin<i64>(kNR, NC - qq * kNR);
          for (i64 r = r0; r < r1; r++) {
            const int nrow = (int)imin<i64>(kMR, M - r * kMR);
            float* tile = cb + ((qq - q0) * (r1 - r0) + (r - r0)) * kMR * kNR;
            if (kind == 0) {
              micro_bf16(pc, pag + r * kMR * kp + p0 * kMR, bc + (qq - q0) * pc * kNR, tile, kb > 0, false, nullptr,
                         0, nrow, cols, nullptr, false, false);
              if (fin)
                epi_scatter(tile, g, gi * g.Og + r * kMR, nrow, qq * kNR, cols, bq, relu, outbf, y);
            } else {
              uint8_t* ct = y + ((gi * g.Og + r * kMR) * g.Kg + qq * kNR) * 4;
              micro_bf16(pc, pag + r * kMR * kp + p0 * kMR, bc + (qq - q0) * pc * kNR, tile, kb > 0, fin, ct, g.Kg,
                         nrow, cols, nullptr, false, false);
            }
          }
        }
        if (fin) break;
      }
    }
  });
  return nullptr;
#else
  (void)kind, (void)p, (void)q, (void)out, (void)shape, (void)cp, (void)bias, (void)act;
  return "convBF16: this build has no AVX512_BF16 kernel";
#endif
}

}  // namespace CR_ISA_NS
}  // namespace cr
