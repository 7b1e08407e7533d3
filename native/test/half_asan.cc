// AddressSanitizer / UBSan harness for the bfloat16 kernels of native/src/kernels/half.cc (the AVX-512 build):
// gemm_bf16 (edge sizes, float32 or bfloat16 operands, transposed or not, bias, relu, masks, float32 or bfloat16
// out) and conv_bf16 (forward with bias and relu, weight gradient with the bias gradient) on exact-size heap
// buffers, each with AMX on and off (where the CPU has it), the two paths compared. Two pool threads. Not part of
// the addon build; run from native/src:
//
//   g++ -std=gnu++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-math-errno \
//     -fno-trapping-math -I. -Ikernels -DCR_ISA_LEVEL=2 -mavx512f -mavx512dq -mavx2 -mfma \
//     kernels/half.cc pool.cc ../test/half_asan.cc -o /tmp/half_asan -lpthread && ASAN_OPTIONS=detect_leaks=0 /tmp/half_asan
//
// (ASan does not see the tile loads and stores, which are inline assembly: the AMX path's in-place reads of A
// stay within the rows of the view by construction, see amx_matrix.)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "common.h"
#include "pool.h"
namespace cr { namespace avx512 {
Err gemm_bf16(int kind, int nd, const int64_t* shape, const View& a, const View& b, const View* bias, const View* mask, const Out& out);
Err conv_bf16(int kind, const View& p, const View& q, const Out& out, const int64_t* shape, const ConvParams& cp, const View* bias, int act);
}}
using namespace cr;
static uint32_t rs = 12345;
static float rnd() { rs = rs * 1664525u + 1013904223u; return ((rs >> 8) / 16777216.0f) * 2 - 1; }
struct Buf { void* p; size_t n; Buf(size_t bytes) { n = bytes; p = malloc(bytes ? bytes : 1); } ~Buf() { free(p); } };
// a 2-D operand R x C: f32 view or bf16 bytes, transposed storage or not
static View mk(Buf& b, int64_t R, int64_t C, bool bf, bool tr) {
  View v; memset(&v, 0, sizeof v);
  v.data = b.p; v.offset = 0;
  int64_t n = R * C;
  if (bf) { uint16_t* d = (uint16_t*)b.p; for (int64_t i = 0; i < n; i++) { float f = rnd(); uint32_t u; memcpy(&u, &f, 4); d[i] = u >> 16; } }
  else { float* d = (float*)b.p; for (int64_t i = 0; i < n; i++) d[i] = rnd(); }
  int64_t s0 = tr ? 1 : C, s1 = tr ? R : 1;
  if (bf) { v.dtype = BOOL; v.ndim = 3; v.shape[0] = R; v.shape[1] = C; v.shape[2] = 2; v.strides[0] = 2 * s0; v.strides[1] = 2 * s1; v.strides[2] = 1; }
  else { v.dtype = F32; v.ndim = 2; v.shape[0] = R; v.shape[1] = C; v.strides[0] = s0; v.strides[1] = s1; }
  return v;
}
int main() {
  int fails = 0;
  pool_set_threads(2);
  printf("amx available %d\n", (int)amx_available());
  const int64_t Ms[] = {1, 17, 32, 33, 64, 96}, Ns[] = {1, 31, 32, 33, 300}, Ks[] = {1, 3, 32, 33, 64, 2100};
  int c = 0;
  for (int64_t M : Ms) for (int64_t N : Ns) for (int64_t K : Ks) {
    c++;
    bool abf = c % 2, bbf = (c / 2) % 2, atr = (c / 3) % 2, btr = (c / 5) % 2, outbf = (c % 7) == 0;
    Buf ab(M * K * (abf ? 2 : 4)), bb(K * N * (bbf ? 2 : 4)), bias(N * 4);
    View a = mk(ab, M, K, abf, atr), b = mk(bb, K, N, bbf, btr);
    View bv; memset(&bv, 0, sizeof bv); bv.data = bias.p; bv.dtype = F32; bv.ndim = 1; bv.shape[0] = N; bv.strides[0] = 1;
    for (int64_t j = 0; j < N; j++) ((float*)bias.p)[j] = rnd();
    int64_t shape[2] = {M, N};
    std::vector<float> res[2];
    // a mask over a bfloat16 operand: same shape and byte strides, own exact-size storage
    const bool ma = abf && c % 5 == 0, mb = !ma && bbf && c % 3 == 1;
    Buf mbuf(ma ? M * K * 2 : mb ? K * N * 2 : 0);
    View mv = ma ? a : b;
    mv.data = mbuf.p;
    for (size_t i = 0; i < mbuf.n / 2; i++) { float f = rnd(); uint32_t u; memcpy(&u, &f, 4); ((uint16_t*)mbuf.p)[i] = u >> 16; }
    for (int amx = 1; amx >= 0; amx--) {
      amx_set_enabled(amx);
      Buf ob(M * N * (outbf ? 2 : 4));
      Out o{ob.p, outbf ? BOOL : F32, outbf ? 2 * M * N : M * N};
      const int kind = (c % 3 == 0 ? 1 : 0) | (ma ? 2 : 0) | (mb ? 4 : 0);
      Err e = avx512::gemm_bf16(kind, 2, shape, a, b, c % 4 == 0 ? &bv : nullptr, ma || mb ? &mv : nullptr, o);
      if (e) { printf("err %s\n", e); fails++; continue; }
      res[amx].resize(M * N);
      for (int64_t i = 0; i < M * N; i++) {
        if (outbf) { uint32_t u = (uint32_t)((uint16_t*)ob.p)[i] << 16; float f; memcpy(&f, &u, 4); res[amx][i] = f; }
        else res[amx][i] = ((float*)ob.p)[i];
      }
    }
    double md = 0, mx = 0;
    for (int64_t i = 0; i < M * N; i++) { md = fmax(md, fabs(res[0][i] - res[1][i])); mx = fmax(mx, fabs(res[0][i])); }
    if (!(md <= 1e-2 * (mx + 1))) { printf("mismatch M %ld N %ld K %ld: %g (max %g)\n", M, N, K, md, mx); fails++; }
  }
  // conv: forward (kind 0, bias relu, bf16 out) and weight gradient (kind 1), AMX on and off
  struct CC { int64_t n, ci, h, w, o, kh, kw, pad; } ccs[] = {{2, 3, 9, 7, 5, 3, 3, 1}, {1, 36, 8, 8, 40, 3, 3, 1}, {2, 22, 13, 12, 7, 5, 5, 2}};
  for (auto& q : ccs) {
    int64_t OH = q.h + 2 * q.pad - q.kh + 1, OW = q.w + 2 * q.pad - q.kw + 1;
    Buf xb(q.n * q.ci * q.h * q.w * 4), wb(q.o * q.ci * q.kh * q.kw * 4), dzb(q.n * q.o * OH * OW * 4), biasb(q.o * 4);
    auto v4 = [](Buf& b, int64_t a0, int64_t a1, int64_t a2, int64_t a3) {
      View v; memset(&v, 0, sizeof v); v.data = b.p; v.dtype = F32; v.ndim = 4;
      int64_t s[4] = {a0, a1, a2, a3}; int64_t st = 1;
      for (int d = 3; d >= 0; d--) { v.shape[d] = s[d]; v.strides[d] = st; st *= s[d]; }
      for (int64_t i = 0; i < st; i++) ((float*)b.p)[i] = rnd();
      return v;
    };
    View x = v4(xb, q.n, q.ci, q.h, q.w), w = v4(wb, q.o, q.ci, q.kh, q.kw), dz = v4(dzb, q.n, q.o, OH, OW);
    View bv; memset(&bv, 0, sizeof bv); bv.data = biasb.p; bv.dtype = F32; bv.ndim = 1; bv.shape[0] = q.o; bv.strides[0] = 1;
    ConvParams cp{1, 1, q.pad, q.pad, 1, 1, 1};
    for (int kind = 0; kind <= 1; kind++) {
      int64_t osh[4] = {q.n, q.o, OH, OW}, wsh[4] = {q.o, q.ci, q.kh, q.kw};
      int64_t on = kind == 0 ? q.n * q.o * OH * OW : q.o * q.ci * q.kh * q.kw + q.o;
      std::vector<float> res[2];
      for (int amx = 1; amx >= 0; amx--) {
        amx_set_enabled(amx);
        Buf ob(on * 4);
        Out o{ob.p, F32, on};
        Err e = kind == 0 ? avx512::conv_bf16(0, x, w, o, osh, cp, &bv, A_RELU) : avx512::conv_bf16(1, x, dz, o, wsh, cp, nullptr, 1);
        if (e) { printf("conv err %s\n", e); fails++; continue; }
        res[amx].assign((float*)ob.p, (float*)ob.p + on);
      }
      double md = 0, mx = 0;
      for (int64_t i = 0; i < on; i++) { md = fmax(md, fabs(res[0][i] - res[1][i])); mx = fmax(mx, fabs(res[0][i])); }
      if (!(md <= 1e-2 * (mx + 1))) { printf("conv mismatch kind %d: %g (max %g)\n", kind, md, mx); fails++; }
    }
  }
  printf("cases %d, failures %d\n", c, fails);
  return fails != 0;
}
