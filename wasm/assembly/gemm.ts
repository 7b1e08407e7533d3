/**
 * Matrix products of the wasm backend (AssemblyScript, SIMD128).
 *
 * sgemm is a packed, blocked float32 GEMM in the style of BLIS / GotoBLAS: C (+)= A B with A [m, k] and B
 * [k, n] read through arbitrary byte strides (so transposed, broadcast or negatively strided operands need no
 * copy: packing reads them), C row-major with row stride ldc bytes.
 *   for each NC-wide column block of B, each KC-deep slice:   pack B[KC, NC] into NR-wide panels
 *     for each MC-tall row block of A:                         pack A[MC, KC] into MR-tall panels
 *       for each NR panel, each MR panel:                      micro-kernel: MR x NR tile, KC rank-1 updates
 * The micro-kernel keeps the 4 x 8 tile in eight v128 registers (two per row) and per k broadcasts one A value
 * per row against two B vectors: 8 multiply-adds per 6 loads, fused in the relaxed-SIMD build. Panels are
 * zero-padded to full MR / NR, and edge tiles are computed into a small buffer and then copied, so the
 * micro-kernel has no edge cases; padding only feeds outputs that are thrown away, so 0 * Inf never leaks.
 * Summation is in float32 (the js backend sums in float64: expect ~1e-6 relative differences).
 *
 * dgemm (float64) is the simpler i-k-j loop with f64x2 along rows of B (which the caller makes contiguous).
 */
import { fmaF32, fmaF64 } from "./math";

const MR = 4;
const NR = 8;
const KC = 256;
const MC = 128;
const NC = 1024;

/** Bytes of the packed-A buffer sgemm needs for an [m, k] A. */
export function sgemmBufA(m: i32, k: i32): i32 {
  const mc = min(m, MC);
  return ((mc + MR - 1) / MR) * MR * min(k, KC) * 4;
}

/** Bytes of the packed-B panel for a [k, n] B. */
@inline
function packedB(n: i32, k: i32): i32 {
  return ((min(n, NC) + NR - 1) / NR) * NR * min(k, KC) * 4;
}

/**
 * Bytes of the B buffer sgemm needs for a [k, n] B: the packed panel, then the MR x NR edge tile (per call,
 * not static, so that threads sharing the memory can run sgemm at once).
 */
export function sgemmBufB(n: i32, k: i32): i32 {
  return packedB(n, k) + MR * NR * 4;
}

/** Pack A[mc, kc] (byte strides rsa, csa) into MR-row panels: panel-major, then k, then the MR rows. */
function packA(mc: i32, kc: i32, a: usize, rsa: i32, csa: i32, dst: usize): void {
  let d = dst;
  for (let i0 = 0; i0 < mc; i0 += MR) {
    const rows = min(MR, mc - i0);
    const base = a + <usize>(i0 * rsa);
    if (rows == MR) {
      const r1 = base + <usize>rsa;
      const r2 = r1 + <usize>rsa;
      const r3 = r2 + <usize>rsa;
      for (let p = 0; p < kc; p++) {
        const o = <usize>(p * csa);
        store<f32>(d, load<f32>(base + o));
        store<f32>(d, load<f32>(r1 + o), 4);
        store<f32>(d, load<f32>(r2 + o), 8);
        store<f32>(d, load<f32>(r3 + o), 12);
        d += MR * 4;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const o = <usize>(p * csa);
        for (let i = 0; i < MR; i++) {
          store<f32>(d + (<usize>i << 2), i < rows ? load<f32>(base + <usize>(i * rsa) + o) : 0);
        }
        d += MR * 4;
      }
    }
  }
}

/** Pack B[kc, nc] (byte strides rsb, csb) into NR-column panels: panel-major, then k, then the NR columns. */
function packB(kc: i32, nc: i32, b: usize, rsb: i32, csb: i32, dst: usize): void {
  let d = dst;
  for (let j0 = 0; j0 < nc; j0 += NR) {
    const cols = min(NR, nc - j0);
    const base = b + <usize>(j0 * csb);
    if (cols == NR && csb == 4) {
      for (let p = 0; p < kc; p++) {
        const s = base + <usize>(p * rsb);
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        d += NR * 4;
      }
    } else if (cols == NR && rsb == 4) {
      // B transposed (each column contiguous along k: x W^T, conv weight gradients): 4 k-steps of the 8
      // columns at a time, two 4x4 transposes in registers instead of 32 scalar strided loads
      let p = 0;
      const c1 = <usize>csb;
      for (; p + 4 <= kc; p += 4) {
        const s = base + <usize>(p * 4);
        const v0 = v128.load(s);
        const v1 = v128.load(s + c1);
        const v2 = v128.load(s + 2 * c1);
        const v3 = v128.load(s + 3 * c1);
        const v4 = v128.load(s + 4 * c1);
        const v5 = v128.load(s + 5 * c1);
        const v6 = v128.load(s + 6 * c1);
        const v7 = v128.load(s + 7 * c1);
        const a0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5);
        const a1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
        const a2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
        const a3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
        const b0 = v128.shuffle<f32>(v4, v5, 0, 4, 1, 5);
        const b1 = v128.shuffle<f32>(v4, v5, 2, 6, 3, 7);
        const b2 = v128.shuffle<f32>(v6, v7, 0, 4, 1, 5);
        const b3 = v128.shuffle<f32>(v6, v7, 2, 6, 3, 7);
        v128.store(d, v128.shuffle<f32>(a0, a2, 0, 1, 4, 5));
        v128.store(d, v128.shuffle<f32>(b0, b2, 0, 1, 4, 5), 16);
        v128.store(d, v128.shuffle<f32>(a0, a2, 2, 3, 6, 7), 32);
        v128.store(d, v128.shuffle<f32>(b0, b2, 2, 3, 6, 7), 48);
        v128.store(d, v128.shuffle<f32>(a1, a3, 0, 1, 4, 5), 64);
        v128.store(d, v128.shuffle<f32>(b1, b3, 0, 1, 4, 5), 80);
        v128.store(d, v128.shuffle<f32>(a1, a3, 2, 3, 6, 7), 96);
        v128.store(d, v128.shuffle<f32>(b1, b3, 2, 3, 6, 7), 112);
        d += 4 * NR * 4;
      }
      for (; p < kc; p++) {
        const s = base + <usize>(p * 4);
        for (let j = 0; j < NR; j++) store<f32>(d + (<usize>j << 2), load<f32>(s + <usize>(j * csb)));
        d += NR * 4;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const s = base + <usize>(p * rsb);
        for (let j = 0; j < NR; j++) {
          store<f32>(d + (<usize>j << 2), j < cols ? load<f32>(s + <usize>(j * csb)) : 0);
        }
        d += NR * 4;
      }
    }
  }
}

/**
 * The MR x NR micro-kernel: C[4, 8] (+)= Apanel[kc, 4]^T Bpanel[kc, 8]; ldc in bytes. Inlined: V8 runs the
 * loop ~20% faster inside sgemm's body than behind a call (measured on the MLP's products, plain SIMD128).
 */
@inline
function micro(kc: i32, pa: usize, pb: usize, c: usize, ldc: usize, beta: bool): void {
  let c0a = f32x4.splat(0);
  let c0b = c0a;
  let c1a = c0a;
  let c1b = c0a;
  let c2a = c0a;
  let c2b = c0a;
  let c3a = c0a;
  let c3b = c0a;
  let a = pa;
  let b = pb;
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    let av = v128.load32_splat(a);
    c0a = fmaF32(av, b0, c0a);
    c0b = fmaF32(av, b1, c0b);
    av = v128.load32_splat(a, 4);
    c1a = fmaF32(av, b0, c1a);
    c1b = fmaF32(av, b1, c1b);
    av = v128.load32_splat(a, 8);
    c2a = fmaF32(av, b0, c2a);
    c2b = fmaF32(av, b1, c2b);
    av = v128.load32_splat(a, 12);
    c3a = fmaF32(av, b0, c3a);
    c3b = fmaF32(av, b1, c3b);
    a += MR * 4;
    b += NR * 4;
  }
  const r1 = c + ldc;
  const r2 = r1 + ldc;
  const r3 = r2 + ldc;
  if (beta) {
    c0a = f32x4.add(c0a, v128.load(c));
    c0b = f32x4.add(c0b, v128.load(c, 16));
    c1a = f32x4.add(c1a, v128.load(r1));
    c1b = f32x4.add(c1b, v128.load(r1, 16));
    c2a = f32x4.add(c2a, v128.load(r2));
    c2b = f32x4.add(c2b, v128.load(r2, 16));
    c3a = f32x4.add(c3a, v128.load(r3));
    c3b = f32x4.add(c3b, v128.load(r3, 16));
  }
  v128.store(c, c0a);
  v128.store(c, c0b, 16);
  v128.store(r1, c1a);
  v128.store(r1, c1b, 16);
  v128.store(r2, c2a);
  v128.store(r2, c2b, 16);
  v128.store(r3, c3a);
  v128.store(r3, c3b, 16);
}

/**
 * C (+)= A B in float32. A [m, k] at `pa` with byte strides (rsa, csa); B [k, n] at `pb` with (rsb, csb);
 * C [m, n] at `pc` with row stride ldc bytes (columns contiguous). accumulate != 0 adds to C, else C is
 * overwritten. bufA / bufB: scratch of sgemmBufA(m, k) and sgemmBufB(n, k) bytes (16-byte aligned). Touches no
 * other memory, so threads sharing the memory may run it at once on disjoint parts of C.
 */
export function sgemm(
  m: i32,
  n: i32,
  k: i32,
  pa: usize,
  rsa: i32,
  csa: i32,
  pb: usize,
  rsb: i32,
  csb: i32,
  pc: usize,
  ldc: i32,
  accumulate: i32,
  bufA: usize,
  bufB: usize,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (accumulate == 0) for (let i = 0; i < m; i++) memory.fill(pc + <usize>(i * ldc), 0, <usize>n * 4);
    return;
  }
  const ldcu = <usize>ldc;
  const TILE = bufB + <usize>packedB(n, k);
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    // k in equal slices of at most KC (784 = 4 x 196 rather than 3 x 256 + 16)
    const slices = (k + KC - 1) / KC;
    const kstep = (k + slices - 1) / slices;
    for (let p0 = 0; p0 < k; p0 += kstep) {
      const kc = min(kstep, k - p0);
      packB(kc, nc, pb + <usize>(p0 * rsb) + <usize>(jc * csb), rsb, csb, bufB);
      const beta = accumulate != 0 || p0 > 0;
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(mc, kc, pa + <usize>(ic * rsa) + <usize>(p0 * csa), rsa, csa, bufA);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const bp = bufB + <usize>(jr * kc * 4);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = min(MR, mc - ir);
            const ap = bufA + <usize>(ir * kc * 4);
            const c = pc + <usize>(ic + ir) * ldcu + <usize>(jc + jr) * 4;
            if (mr == MR && nr == NR) {
              micro(kc, ap, bp, c, ldcu, beta);
            } else {
              micro(kc, ap, bp, TILE, NR * 4, false);
              for (let i = 0; i < mr; i++) {
                for (let j = 0; j < nr; j++) {
                  const q = c + <usize>i * ldcu + (<usize>j << 2);
                  const t = load<f32>(TILE + <usize>((i * NR + j) * 4));
                  store<f32>(q, beta ? load<f32>(q) + t : t);
                }
              }
            }
          }
        }
      }
    }
  }
}

/**
 * C (+)= A B in float64 by the i-k-j loop: A [m, k] with byte strides (rsa, csa), B [k, n] with row stride
 * rsb bytes and contiguous rows, C [m, n] with row stride ldc bytes.
 */
export function dgemm(
  m: i32,
  n: i32,
  k: i32,
  pa: usize,
  rsa: i32,
  csa: i32,
  pb: usize,
  rsb: i32,
  pc: usize,
  ldc: i32,
  accumulate: i32,
): void {
  for (let i = 0; i < m; i++) {
    const crow = pc + <usize>(i * ldc);
    if (accumulate == 0) memory.fill(crow, 0, <usize>n * 8);
    const arow = pa + <usize>(i * rsa);
    for (let p = 0; p < k; p++) {
      const a = load<f64>(arow + <usize>(p * csa));
      const av = f64x2.splat(a);
      const brow = pb + <usize>(p * rsb);
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const q = crow + (<usize>j << 3);
        const s = brow + (<usize>j << 3);
        v128.store(q, fmaF64(av, v128.load(s), v128.load(q)));
        v128.store(q, fmaF64(av, v128.load(s, 16), v128.load(q, 16)), 16);
      }
      for (; j < n; j++) {
        const q = crow + (<usize>j << 3);
        store<f64>(q, load<f64>(q) + a * load<f64>(brow + (<usize>j << 3)));
      }
    }
  }
}
