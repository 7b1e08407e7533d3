/*
 * The measured FMA peak of one core, for the benchmark's "fraction of peak" column: independent chains of
 * fused multiply-adds (enough to cover the FMA latency on any current x86-64 core), timed for about 0.2 s per
 * instruction width. Prints one line per width the CPU supports: "<width> <GFLOP/s float32>".
 * Built and run by bench/run.ts (cc -O2, pinned with taskset); not part of the library. With FMA_PEAK_CLOCK=cpu in
 * the environment it times with the process CPU clock instead of the wall clock (bench/gemm-native.ts and
 * bench/conv-native.ts: a figure that other processes sharing the core barely change).
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#include <stdlib.h>
#include <string.h>

static double now(void) {
  static int cpu = -1;
  if (cpu < 0) {
    const char* c = getenv("FMA_PEAK_CLOCK");
    cpu = c && strcmp(c, "cpu") == 0;
  }
  struct timespec t;
  clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS 16
/* one step of every chain, written out so the accumulators stay in registers at any optimisation level */
#define STEP(F)                                                                                            \
  F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15)
/* AVX2 has 16 registers: 12 chains leave room for the two constants */
#define CHAINS256 12
#define STEP256(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)

__attribute__((target("avx512f"))) static double peak512(long iters) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  double t0 = now();
#define FMA512(i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  for (long k = 0; k < iters; k++) {
    STEP(FMA512)
  }
  double t = now() - t0;
  float sink = 0;
  for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(acc[i]);
  if (sink == 12345.f) printf("#\n");
  return 2.0 * 16 * CHAINS * (double)iters / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak256(long iters) {
  __m256 acc[CHAINS256];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < CHAINS256; i++) acc[i] = _mm256_set1_ps((float)i);
  double t0 = now();
#define FMA256(i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  for (long k = 0; k < iters; k++) {
    STEP256(FMA256)
  }
  double t = now() - t0;
  float buf[8], sink = 0;
  for (int i = 0; i < CHAINS256; i++) {
    _mm256_storeu_ps(buf, acc[i]);
    for (int j = 0; j < 8; j++) sink += buf[j];
  }
  if (sink == 12345.f) printf("#\n");
  return 2.0 * 8 * CHAINS256 * (double)iters / t / 1e9;
}

int main(void) {
  __builtin_cpu_init();
  const long iters = 4000000;
  if (__builtin_cpu_supports("avx512f")) {
    double best = 0;
    for (int r = 0; r < 3; r++) {
      double g = peak512(iters);
      if (g > best) best = g;
    }
    printf("avx512 %.1f\n", best);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    double best = 0;
    for (int r = 0; r < 3; r++) {
      double g = peak256(iters);
      if (g > best) best = g;
    }
    printf("avx2 %.1f\n", best);
  }
  return 0;
}
