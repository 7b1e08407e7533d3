/// <reference types="@webgpu/types" />
/**
 * The optional `linalg` kernels of the webgpu backend (Backend.linalg; src/backend/js/decomp.ts is the
 * specification): LU with partial pivoting, the determinant (from LU), triangular solve, Cholesky,
 * Householder QR, the symmetric eigendecomposition (cyclic Jacobi) and the SVD (one-sided Jacobi) in WGSL,
 * float32 only. One workgroup per matrix of the batch works in place in the (contiguous) output buffer or a
 * scratch buffer: serial over the pivot / diagonal column or rotation, parallel over the rows and columns it
 * updates, with a storage barrier between the steps; the SVD rotates disjoint column pairs in parallel
 * (round-robin order) and finishes on one thread. The input
 * views may be strided (any batch shape and strides).
 *
 * Differences from the js reference, which computes in float64 and rounds once: the arithmetic is float32
 * (pivots are chosen on float32 values), and a value-dependent failure cannot throw from the device at once
 * (that would need a synchronous read of GPU values). cholesky and triangularSolve write an info word per
 * matrix (the failing minor, the zero on the diagonal); with an `op` to raise, it becomes a device check
 * (gpu.ts, DeviceCheck) that the output and everything computed from it carry, and reading such a value
 * (`await t.data()`) throws the LinAlgError of the contract. When the input's host copy is valid the check
 * also runs on the host first (the js kernel into a scratch array), so the error is thrown at once, as on the
 * other backends.
 * float64 operands and host outputs run the js reference (on the host copies) as every kernel here does.
 *
 * Parameters (int32 words): [batch, nb, batchShape[nb], rows, cols, flags, then per matrix operand
 * (offset, batchStrides[nb], rowStride, colStride)].
 */
import type { TypedArray } from "../../dtype.ts";
import type { LinalgKernels, View } from "../backend.ts";
import { LinAlgError } from "../../errors.ts";
import { batchElement, choleskyMessage, linalgKernels as jsLinalg, singularMessage } from "../js/decomp.ts";
import { type Gpu, gpuStorage } from "./gpu.ts";
import { groupMain, header, linearId, threadMain } from "./wgsl.ts";
import { onHost } from "./kernels.ts";

/** Threads per workgroup (one workgroup per matrix). */
const LA_GROUP = 64;
const MAX_GROUPS = 65535;

/** Offsets of a matrix operand's parameters and the batch-offset function. */
const OPERANDS = /* wgsl */ `
fn opq(k: i32) -> i32 { return 5 + P[1] + k * (P[1] + 3); }
fn opOff(q: i32, b: i32) -> i32 {
  let nb = P[1];
  var o = P[q];
  var r = b;
  for (var d = nb - 1; d >= 0; d--) {
    let s = P[2 + d];
    o += (r % s) * P[q + 1 + d];
    r = r / s;
  }
  return o;
}
fn rowStride(q: i32) -> i32 { return P[q + 1 + P[1]]; }
fn colStride(q: i32) -> i32 { return P[q + 2 + P[1]]; }`;

const ENTRY = `${groupMain(LA_GROUP)} {
  let b = i32(wid.x + wid.y * nwg.x);
  if (b >= P[0]) { return; }
  let t = i32(lid.x);
  let n = P[2 + P[1]];`;

/**
 * LU with partial pivoting: in0 a [..., n, n], out0 [..., n+1, n] (L and U in rows 0..n-1, the permutation as
 * numbers in row n). The pivot is the first largest |entry| of the column (a NaN diagonal keeps its row), as
 * the js reference's; a zero pivot leaves its column unscaled.
 */
export function luShader(): string {
  return `${header(["float32"], ["float32"])}
${OPERANDS}
var<workgroup> rv: array<f32, ${LA_GROUP}>;
var<workgroup> ri: array<i32, ${LA_GROUP}>;
${ENTRY}
  let qa = opq(0);
  let ao = opOff(qa, b);
  let rs = rowStride(qa);
  let cs = colStride(qa);
  let o = b * (n + 1) * n;
  for (var e = t; e < n * n; e += ${LA_GROUP}) { out0[o + e] = in0[ao + (e / n) * rs + (e % n) * cs]; }
  for (var e = t; e < n; e += ${LA_GROUP}) { out0[o + n * n + e] = f32(e); }
  storageBarrier();
  for (var k = 0; k < n; k++) {
    let dk = abs(out0[o + k * n + k]);
    var best = -1.0;
    var bi = -1;
    for (var i = k + t; i < n; i += ${LA_GROUP}) {
      let v = abs(out0[o + i * n + k]);
      if (v > best) { best = v; bi = i; }
    }
    rv[t] = best;
    ri[t] = bi;
    workgroupBarrier();
    for (var h = ${LA_GROUP / 2}; h > 0; h = h / 2) {
      if (t < h) {
        let v2 = rv[t + h];
        let i2 = ri[t + h];
        if (i2 >= 0 && (ri[t] < 0 || v2 > rv[t] || (v2 == rv[t] && i2 < ri[t]))) {
          rv[t] = v2;
          ri[t] = i2;
        }
      }
      workgroupBarrier();
    }
    var p = ri[0];
    if (f_isnan(dk) || p < 0) { p = k; }
    if (p != k) {
      for (var j = t; j < n; j += ${LA_GROUP}) {
        let x = out0[o + k * n + j];
        out0[o + k * n + j] = out0[o + p * n + j];
        out0[o + p * n + j] = x;
      }
      if (t == 0) {
        let x = out0[o + n * n + k];
        out0[o + n * n + k] = out0[o + n * n + p];
        out0[o + n * n + p] = x;
      }
    }
    storageBarrier();
    let piv = out0[o + k * n + k];
    if (piv != 0.0) {
      for (var i = k + 1 + t; i < n; i += ${LA_GROUP}) { out0[o + i * n + k] = out0[o + i * n + k] / piv; }
    }
    storageBarrier();
    let w = n - k - 1;
    if (piv != 0.0) {
      for (var e = t; e < w * w; e += ${LA_GROUP}) {
        let i = k + 1 + e / w;
        let l = out0[o + i * n + k];
        if (l != 0.0) {
          let j = k + 1 + e % w;
          out0[o + i * n + j] = out0[o + i * n + j] - l * out0[o + k * n + j];
        }
      }
    }
    storageBarrier();
  }
}`;
}

/**
 * x = a^-1 b: in0 a [..., n, n], in1 b [..., n, k], out0 [..., n, k]; flags bit 0 lower, bit 1 unit diagonal.
 * out1 [batch] (int32): the 1-based index of the first zero on the diagonal, 0 if none (or unit diagonal).
 * Column-oriented: once row i of x is final, it is divided by the diagonal and subtracted from the rows after
 * it (before it, upper), one (row, column) pair per thread.
 */
export function triangularSolveShader(): string {
  return `${header(["float32", "float32"], ["float32", "int32"])}
${OPERANDS}
${ENTRY}
  let k = P[3 + P[1]];
  let lower = (P[4 + P[1]] & 1) != 0;
  let unit = (P[4 + P[1]] & 2) != 0;
  let qa = opq(0);
  let ao = opOff(qa, b);
  let ars = rowStride(qa);
  let acs = colStride(qa);
  let qb = opq(1);
  let bo = opOff(qb, b);
  let brs = rowStride(qb);
  let bcs = colStride(qb);
  let o = b * n * k;
  if (t == 0) {
    var zero = 0;
    if (!unit) {
      for (var i = 0; i < n; i++) {
        if (in0[ao + i * ars + i * acs] == 0.0) { zero = i + 1; break; }
      }
    }
    out1[b] = zero;
  }
  for (var e = t; e < n * k; e += ${LA_GROUP}) { out0[o + e] = in1[bo + (e / k) * brs + (e % k) * bcs]; }
  storageBarrier();
  for (var s = 0; s < n; s++) {
    let i = select(n - 1 - s, s, lower);
    if (!unit) {
      let d = in0[ao + i * ars + i * acs];
      for (var c = t; c < k; c += ${LA_GROUP}) { out0[o + i * k + c] = out0[o + i * k + c] / d; }
    }
    storageBarrier();
    let r0 = select(0, i + 1, lower);
    let nr = select(i, n - 1 - i, lower);
    for (var e = t; e < nr * k; e += ${LA_GROUP}) {
      let r = r0 + e / k;
      let c = e % k;
      out0[o + r * k + c] = out0[o + r * k + c] - in0[ao + r * ars + i * acs] * out0[o + i * k + c];
    }
    storageBarrier();
  }
}`;
}

/**
 * Lower Cholesky factor: in0 a [..., n, n] (lower triangle read), out0 [..., n, n]. Right-looking: the column
 * is scaled by the root of its diagonal, then the trailing lower triangle updated. The first diagonal that is
 * not positive (or NaN), at column j, fails the matrix: out1 [batch] (int32) gets j + 1 (0 if none), and the
 * columns from j on are NaN (the js reference's contract without an error).
 */
export function choleskyShader(): string {
  return `${header(["float32"], ["float32", "int32"])}
${OPERANDS}
var<workgroup> bad: i32;
${ENTRY}
  let qa = opq(0);
  let ao = opOff(qa, b);
  let rs = rowStride(qa);
  let cs = colStride(qa);
  let o = b * n * n;
  for (var e = t; e < n * n; e += ${LA_GROUP}) {
    let i = e / n;
    let j = e % n;
    var v = 0.0;
    if (j <= i) { v = in0[ao + i * rs + j * cs]; }
    out0[o + e] = v;
  }
  storageBarrier();
  for (var j = 0; j < n; j++) {
    let d = out0[o + j * n + j];
    if (t == 0 && bad == 0 && !(d > 0.0)) { bad = j + 1; }
    let r = sqrt(d);
    storageBarrier();
    for (var i = j + t; i < n; i += ${LA_GROUP}) {
      if (i == j) { out0[o + j * n + j] = r; } else { out0[o + i * n + j] = out0[o + i * n + j] / r; }
    }
    storageBarrier();
    let w = n - j - 1;
    for (var e = t; e < w * w; e += ${LA_GROUP}) {
      let i = j + 1 + e / w;
      let c = j + 1 + e % w;
      if (c <= i) { out0[o + i * n + c] = out0[o + i * n + c] - out0[o + i * n + j] * out0[o + c * n + j]; }
    }
    storageBarrier();
  }
  let failed = workgroupUniformLoad(&bad);
  if (t == 0) { out1[b] = failed; }
  if (failed != 0) {
    for (var e = t; e < n * n; e += ${LA_GROUP}) {
      let c = e % n;
      if (c >= failed - 1 && c <= e / n) { out0[o + e] = f_nan(); }
    }
  }
}`;
}

/**
 * Householder QR (LAPACK's geqrf reflectors, R's diagonal signs as its): in0 a [..., m, n], out0 the packed
 * [..., m + c, max(c, n)] (Q, then R; zeros elsewhere), out1 scratch [batch, m * n + k] (the reflectors below
 * R's diagonal and tau). Flags bit 0: complete (c = m, else c = min(m, n)). Column norms are scaled by the
 * column's largest magnitude (as hypot), reduced in workgroup memory; one thread per column applies a
 * reflector.
 */
export function qrShader(): string {
  return `${header(["float32"], ["float32", "float32"])}
${OPERANDS}
var<workgroup> red: array<f32, ${LA_GROUP}>;
${ENTRY}
  let m = n;
  let nc = P[3 + P[1]];
  let kk = min(m, nc);
  let c = select(kk, m, (P[4 + P[1]] & 1) != 0);
  let w = max(c, nc);
  let qa = opq(0);
  let ao = opOff(qa, b);
  let rs = rowStride(qa);
  let cs = colStride(qa);
  let so = b * (m * nc + kk);
  let o = b * (m + c) * w;
  for (var e = t; e < m * nc; e += ${LA_GROUP}) { out1[so + e] = in0[ao + (e / nc) * rs + (e % nc) * cs]; }
  for (var e = t; e < (m + c) * w; e += ${LA_GROUP}) {
    let i = e / w;
    out0[o + e] = select(0.0, 1.0, i < m && i == e % w);
  }
  storageBarrier();
  for (var j = 0; j < kk; j++) {
    var mx = 0.0;
    for (var i = j + 1 + t; i < m; i += ${LA_GROUP}) { mx = max(mx, abs(out1[so + i * nc + j])); }
    red[t] = mx;
    workgroupBarrier();
    for (var h = ${LA_GROUP / 2}; h > 0; h = h / 2) {
      if (t < h) { red[t] = max(red[t], red[t + h]); }
      workgroupBarrier();
    }
    let top = red[0];
    workgroupBarrier();
    var ss = 0.0;
    if (top > 0.0) {
      for (var i = j + 1 + t; i < m; i += ${LA_GROUP}) {
        let x = out1[so + i * nc + j] / top;
        ss += x * x;
      }
    }
    red[t] = ss;
    workgroupBarrier();
    for (var h = ${LA_GROUP / 2}; h > 0; h = h / 2) {
      if (t < h) { red[t] = red[t] + red[t + h]; }
      workgroupBarrier();
    }
    let xnorm = top * sqrt(red[0]);
    let alpha = out1[so + j * nc + j];
    let hm = max(abs(alpha), xnorm);
    var beta = 0.0;
    var tau = 0.0;
    var scale = 0.0;
    if (xnorm != 0.0) {
      let ah = alpha / hm;
      let xh = xnorm / hm;
      beta = -select(-1.0, 1.0, alpha >= 0.0) * hm * sqrt(ah * ah + xh * xh);
      tau = (beta - alpha) / beta;
      scale = 1.0 / (alpha - beta);
    }
    storageBarrier();
    if (xnorm != 0.0) {
      for (var i = j + 1 + t; i < m; i += ${LA_GROUP}) { out1[so + i * nc + j] = out1[so + i * nc + j] * scale; }
      if (t == 0) { out1[so + j * nc + j] = beta; }
    }
    if (t == 0) { out1[so + m * nc + j] = tau; }
    storageBarrier();
    if (xnorm != 0.0) {
      for (var col = j + 1 + t; col < nc; col += ${LA_GROUP}) {
        var s = out1[so + j * nc + col];
        for (var i = j + 1; i < m; i++) { s += out1[so + i * nc + j] * out1[so + i * nc + col]; }
        s *= tau;
        out1[so + j * nc + col] = out1[so + j * nc + col] - s;
        for (var i = j + 1; i < m; i++) { out1[so + i * nc + col] = out1[so + i * nc + col] - s * out1[so + i * nc + j]; }
      }
    }
    storageBarrier();
  }
  for (var j = kk - 1; j >= 0; j--) {
    let tau = out1[so + m * nc + j];
    if (tau != 0.0) {
      for (var col = t; col < c; col += ${LA_GROUP}) {
        var s = out0[o + j * w + col];
        for (var i = j + 1; i < m; i++) { s += out1[so + i * nc + j] * out0[o + i * w + col]; }
        s *= tau;
        out0[o + j * w + col] = out0[o + j * w + col] - s;
        for (var i = j + 1; i < m; i++) { out0[o + i * w + col] = out0[o + i * w + col] - s * out1[so + i * nc + j]; }
      }
    }
    storageBarrier();
  }
  let rr = min(c, m);
  for (var e = t; e < rr * nc; e += ${LA_GROUP}) {
    let i = e / nc;
    let col = e % nc;
    if (col >= i) { out0[o + (m + i) * w + col] = out1[so + i * nc + col]; }
  }
}`;
}

/**
 * Determinants from LU factors: in0 the packed LU [batch, n+1, n] (luShader's output), out0 [batch]; one
 * thread per matrix: the product of U's diagonal, negated for an odd permutation (n minus its number of
 * cycles, each cycle counted at its smallest element). Parameters [batch, n].
 */
export function detShader(): string {
  return `${header(["float32"], ["float32"])}
${threadMain(LA_GROUP)} {
  ${linearId("b", LA_GROUP)}
  if (b >= P[0]) { return; }
  let n = P[1];
  let o = b * (n + 1) * n;
  var d = 1.0;
  for (var i = 0; i < n; i++) { d *= in0[o + i * n + i]; }
  var cycles = 0;
  for (var i = 0; i < n; i++) {
    var j = i32(in0[o + n * n + i]);
    var lead = true;
    while (j != i) {
      if (j < i) { lead = false; break; }
      j = i32(in0[o + n * n + j]);
    }
    if (lead) { cycles++; }
  }
  if (((n - cycles) & 1) != 0) { d = -d; }
  out0[b] = d;
}`;
}

/**
 * Symmetric eigendecomposition by cyclic Jacobi, as the js reference: in0 a [..., n, n] (flags bit 0: the lower
 * triangle is read, else the upper), out0 [..., n+1, n] (eigenvalues ascending, then the eigenvectors as
 * columns, each with its largest-magnitude entry positive), out1 scratch [batch, 2 n n] (A, then V). One
 * rotation at a time, its row, column and V updates parallel over k; an entry negligible beside both diagonal
 * entries (float32 eps) is set to zero instead of rotated, and the sweeps end when none rotates (at most 100).
 * A matrix with a non-finite entry gives NaN throughout.
 */
export function eighShader(): string {
  return `${header(["float32"], ["float32", "float32"])}
${OPERANDS}
var<workgroup> bad: u32;
var<workgroup> rotated: u32;
${ENTRY}
  let lower = (P[4 + P[1]] & 1) != 0;
  let qa = opq(0);
  let ao = opOff(qa, b);
  let rs = rowStride(qa);
  let cs = colStride(qa);
  let so = b * 2 * n * n;
  let vo = so + n * n;
  let o = b * (n + 1) * n;
  for (var e = t; e < n * n; e += ${LA_GROUP}) {
    let i = e / n;
    let j = e % n;
    var x = in0[ao + j * rs + i * cs];
    if (select(i <= j, i >= j, lower)) { x = in0[ao + i * rs + j * cs]; }
    if (f_isnan(x) || abs(x) == f_inf()) { bad = 1u; }
    out1[so + e] = x;
    out1[vo + e] = select(0.0, 1.0, i == j);
  }
  let failed = workgroupUniformLoad(&bad);
  storageBarrier();
  var sweeps = 100;
  if (failed != 0u) { sweeps = 0; }
  for (var sweep = 0; sweep < sweeps; sweep++) {
    for (var p = 0; p < n - 1; p++) {
      for (var q = p + 1; q < n; q++) {
        let apq = out1[so + p * n + q];
        let app = out1[so + p * n + p];
        let aqq = out1[so + q * n + q];
        let small = abs(apq) <= ${(2 ** -24).toExponential()} * sqrt(abs(app)) * sqrt(abs(aqq));
        let rot = apq != 0.0 && !small;
        var c = 1.0;
        var sn = 0.0;
        var tt = 0.0;
        if (rot) {
          let theta = (aqq - app) / (2.0 * apq);
          tt = select(-1.0, 1.0, theta >= 0.0) / (abs(theta) + sqrt(theta * theta + 1.0));
          c = 1.0 / sqrt(tt * tt + 1.0);
          sn = tt * c;
        }
        storageBarrier();
        if (rot) {
          for (var k = t; k < n; k += ${LA_GROUP}) {
            let akp = out1[so + k * n + p];
            let akq = out1[so + k * n + q];
            out1[so + k * n + p] = c * akp - sn * akq;
            out1[so + k * n + q] = sn * akp + c * akq;
            let vkp = out1[vo + k * n + p];
            let vkq = out1[vo + k * n + q];
            out1[vo + k * n + p] = c * vkp - sn * vkq;
            out1[vo + k * n + q] = sn * vkp + c * vkq;
          }
        }
        storageBarrier();
        if (rot) {
          for (var k = t; k < n; k += ${LA_GROUP}) {
            let apk = out1[so + p * n + k];
            let aqk = out1[so + q * n + k];
            out1[so + p * n + k] = c * apk - sn * aqk;
            out1[so + q * n + k] = sn * apk + c * aqk;
          }
        }
        storageBarrier();
        if (t == 0 && apq != 0.0) {
          if (rot) {
            out1[so + p * n + p] = app - tt * apq;
            out1[so + q * n + q] = aqq + tt * apq;
            rotated = 1u;
          }
          out1[so + p * n + q] = 0.0;
          out1[so + q * n + p] = 0.0;
        }
        storageBarrier();
      }
    }
    let more = workgroupUniformLoad(&rotated);
    if (more == 0u) { break; }
    workgroupBarrier();
    if (t == 0) { rotated = 0u; }
  }
  storageBarrier();
  for (var j = t; j < n; j += ${LA_GROUP}) {
    if (failed != 0u) {
      out0[o + j] = f_nan();
      for (var i = 0; i < n; i++) { out0[o + n + i * n + j] = f_nan(); }
      continue;
    }
    let wj = out1[so + j * n + j];
    var rank = 0;
    for (var i = 0; i < n; i++) {
      let wi = out1[so + i * n + i];
      if (wi < wj || (wi == wj && i < j)) { rank++; }
    }
    var best = 0.0;
    var at = 0;
    for (var i = 0; i < n; i++) {
      let v = abs(out1[vo + i * n + j]);
      if (v > best) { best = v; at = i; }
    }
    let sg = select(-1.0, 1.0, out1[vo + at * n + j] >= 0.0);
    out0[o + rank] = wj;
    for (var i = 0; i < n; i++) { out0[o + n + i * n + rank] = sg * out1[vo + i * n + j]; }
  }
}`;
}

/**
 * SVD by one-sided Jacobi, one workgroup per matrix: in0 a [..., m, n] (flags bit 0: full), out0 the packed
 * [..., m + 1 + kv, max(ku, n)], out1 scratch (P[5 + 2 nb + 3]: words per matrix) holding W (r x k: A, or A^T
 * when wide), Vk (k x k), s, the order, the validity flags, the long-side vectors (r x rc) and two candidate
 * vectors of the basis completion. Parameters as the others, then the scratch stride.
 *
 * The sweeps are parallel: each sweep is k' - 1 rounds (k' = k rounded up to even) of the round-robin
 * tournament (pair (rd, k'-1) and the pairs (rd + j, rd - j) mod k'-1), whose k'/2 column pairs are disjoint,
 * so the workgroup's threads rotate them at once (a pair per thread: its three dot products over the r rows,
 * then the rotation of its two columns of W and of Vk), a storage barrier between rounds. A pair is rotated
 * unless its columns are already orthogonal to float32 eps (as the js reference's cyclic order, which visits
 * the same pairs in another order); the sweeps end when none rotates (at most 80). The rest (norms, descending
 * order, the basis completion of the negligible and full-matrices columns, the sign rule, the packed output) is
 * the js reference's, on one thread.
 */
export function svdShader(): string {
  return `${header(["float32"], ["float32", "float32"])}
${OPERANDS}
var<workgroup> flags: array<u32, ${LA_GROUP}>;
var<workgroup> orFlag: u32;
fn anyThread(v: u32, t: i32) -> bool {
  flags[t] = v;
  workgroupBarrier();
  if (t == 0) {
    var f = 0u;
    for (var i = 0; i < ${LA_GROUP}; i++) { f = f | flags[i]; }
    orFlag = f;
  }
  return workgroupUniformLoad(&orFlag) != 0u;
}
${groupMain(LA_GROUP)} {
  let b = i32(wid.x + wid.y * nwg.x);
  if (b >= P[0]) { return; }
  let t = i32(lid.x);
  let m = P[2 + P[1]];
  let n = P[3 + P[1]];
  let full = (P[4 + P[1]] & 1) != 0;
  let qa = opq(0);
  let ao = opOff(qa, b);
  let rs = rowStride(qa);
  let cs = colStride(qa);
  let k = min(m, n);
  let ku = select(k, m, full);
  let kv = select(k, n, full);
  let w = max(ku, n);
  let per = (m + 1 + kv) * w;
  let o = b * per;
  let tall = m >= n;
  let r = max(m, n);
  let rc = select(kv, ku, tall);
  let W = b * P[opq(1)];
  let VK = W + r * k;
  let SV = VK + k * k;
  let ORD = SV + k;
  let VAL = ORD + k;
  let LG = VAL + rc;
  let CA = LG + r * rc;
  let BE = CA + r;
  var bad = 0u;
  for (var e = t; e < m * n; e += ${LA_GROUP}) {
    let i = e / n;
    let j = e % n;
    let x = in0[ao + i * rs + j * cs];
    if (f_isnan(x) || abs(x) == f_inf()) { bad = 1u; }
    if (tall) { out1[W + i * k + j] = x; } else { out1[W + j * k + i] = x; }
  }
  for (var e = t; e < k * k; e += ${LA_GROUP}) { out1[VK + e] = select(0.0, 1.0, e / k == e % k); }
  let finite = !anyThread(bad, t);
  for (var e = t; e < per; e += ${LA_GROUP}) { out0[o + e] = select(f_nan(), 0.0, finite); }
  storageBarrier();
  if (!finite) { return; }
  let kk = k + (k & 1);
  for (var sweep = 0; sweep < 80; sweep++) {
    var rot = 0u;
    for (var rd = 0; rd < kk - 1; rd++) {
      for (var j = t; j < kk / 2; j += ${LA_GROUP}) {
        var pa = kk - 1;
        var pb = rd;
        if (j > 0) {
          pa = (rd + j) % (kk - 1);
          pb = (rd - j + kk - 1) % (kk - 1);
        }
        let p = min(pa, pb);
        let q = max(pa, pb);
        if (q >= k) { continue; }
        var al = 0.0;
        var be = 0.0;
        var ga = 0.0;
        for (var i = 0; i < r; i++) {
          let wp = out1[W + i * k + p];
          let wq = out1[W + i * k + q];
          al += wp * wp;
          be += wq * wq;
          ga += wp * wq;
        }
        if (ga == 0.0 || !(abs(ga) > ${(2 ** -23).toExponential()} * sqrt(al) * sqrt(be))) { continue; }
        rot = 1u;
        let zeta = (be - al) / (2.0 * ga);
        let tn = select(-1.0, 1.0, zeta >= 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
        let c = 1.0 / sqrt(1.0 + tn * tn);
        let sn = c * tn;
        for (var i = 0; i < r; i++) {
          let wp = out1[W + i * k + p];
          let wq = out1[W + i * k + q];
          out1[W + i * k + p] = c * wp - sn * wq;
          out1[W + i * k + q] = sn * wp + c * wq;
        }
        for (var i = 0; i < k; i++) {
          let vp = out1[VK + i * k + p];
          let vq = out1[VK + i * k + q];
          out1[VK + i * k + p] = c * vp - sn * vq;
          out1[VK + i * k + q] = sn * vp + c * vq;
        }
      }
      storageBarrier();
    }
    if (!anyThread(rot, t)) { break; }
  }
  // the rest on one thread, as the js reference
  if (t != 0) { return; }
  for (var j = 0; j < k; j++) {
    var mx = 0.0;
    for (var i = 0; i < r; i++) { mx = max(mx, abs(out1[W + i * k + j])); }
    var acc = 0.0;
    if (mx > 0.0) {
      for (var i = 0; i < r; i++) {
        let x = out1[W + i * k + j] / mx;
        acc += x * x;
      }
    }
    out1[SV + j] = mx * sqrt(acc);
  }
  // descending order, ties by index: old column j goes to its rank
  for (var j = 0; j < k; j++) {
    let sj = out1[SV + j];
    var rank = 0;
    for (var i = 0; i < k; i++) {
      let si = out1[SV + i];
      if (si > sj || (si == sj && i < j)) { rank++; }
    }
    out1[ORD + rank] = f32(j);
  }
  var top = 0.0;
  if (k > 0) { top = out1[SV + i32(out1[ORD])]; }
  let tol = top * f32(r) * ${(2 ** -23).toExponential()};
  for (var j = 0; j < rc; j++) {
    var ok = false;
    var sj = 0.0;
    var src = 0;
    if (j < k) {
      src = i32(out1[ORD + j]);
      sj = out1[SV + src];
      ok = sj > tol && sj > 0.0;
    }
    out1[VAL + j] = select(0.0, 1.0, ok);
    for (var i = 0; i < r; i++) {
      var x = 0.0;
      if (j < k) {
        x = out1[W + i * k + src];
        if (ok) { x = x / sj; }
      }
      out1[LG + i * rc + j] = x;
    }
  }
  // the columns not valid: the unit vector with the largest residual after two Gram-Schmidt passes
  for (var j = 0; j < rc; j++) {
    if (out1[VAL + j] != 0.0) { continue; }
    var bestNorm = -1.0;
    for (var e = 0; e < r; e++) {
      for (var i = 0; i < r; i++) { out1[CA + i] = select(0.0, 1.0, i == e); }
      for (var gs = 0; gs < 2; gs++) {
        for (var q = 0; q < rc; q++) {
          if (out1[VAL + q] == 0.0) { continue; }
          var d = 0.0;
          for (var i = 0; i < r; i++) { d += out1[LG + i * rc + q] * out1[CA + i]; }
          for (var i = 0; i < r; i++) { out1[CA + i] = out1[CA + i] - d * out1[LG + i * rc + q]; }
        }
      }
      var nrm = 0.0;
      for (var i = 0; i < r; i++) { nrm += out1[CA + i] * out1[CA + i]; }
      nrm = sqrt(nrm);
      if (nrm > bestNorm) {
        bestNorm = nrm;
        for (var i = 0; i < r; i++) { out1[BE + i] = out1[CA + i] / nrm; }
      }
      if (nrm > 0.7) { break; }
    }
    for (var i = 0; i < r; i++) { out1[LG + i * rc + j] = out1[BE + i]; }
    out1[VAL + j] = 1.0;
  }
  // U (m x ku) and V (n x kv): tall, U the long vectors and V Vk reordered; wide, the other way round
  for (var j = 0; j < k; j++) {
    var best = 0.0;
    var at = 0;
    for (var i = 0; i < m; i++) {
      var u = 0.0;
      if (tall) { u = out1[LG + i * rc + j]; } else { u = out1[VK + i * k + i32(out1[ORD + j])]; }
      if (abs(u) > best) { best = abs(u); at = i; }
    }
    var ua = 0.0;
    if (tall) { ua = out1[LG + at * rc + j]; } else { ua = out1[VK + at * k + i32(out1[ORD + j])]; }
    out1[CA + j] = select(-1.0, 1.0, ua >= 0.0);
    out0[o + m * w + j] = out1[SV + i32(out1[ORD + j])];
  }
  for (var i = 0; i < m; i++) {
    for (var j = 0; j < ku; j++) {
      var u = 0.0;
      if (tall) { u = out1[LG + i * rc + j]; } else { u = out1[VK + i * k + i32(out1[ORD + j])]; }
      if (j < k) { u = u * out1[CA + j]; }
      out0[o + i * w + j] = u;
    }
  }
  for (var i = 0; i < kv; i++) {
    for (var j = 0; j < n; j++) {
      var v = 0.0;
      if (tall) { v = out1[VK + j * k + i32(out1[ORD + i])]; } else { v = out1[LG + j * rc + i]; }
      if (i < k) { v = v * out1[CA + i]; }
      out0[o + (m + 1 + i) * w + j] = v;
    }
  }
}`;
}

/** Workgroup counts for one workgroup per matrix. */
function grid(groups: number): [number, number, number] {
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

/** The batch shape (every dimension but the last two) and the number of matrices. */
function batchOf(v: View): { shape: number[]; count: number } {
  const shape = v.shape.slice(0, v.shape.length - 2);
  let count = 1;
  for (const s of shape) count *= s;
  return { shape, count };
}

/** The parameter words of a call (see the module comment). */
function params(views: readonly View[], rows: number, cols: number, flags: number): number[] {
  const { shape, count } = batchOf(views[0]);
  const p = [count, shape.length, ...shape, rows, cols, flags];
  for (const v of views) {
    const r = v.shape.length;
    p.push(v.offset, ...v.strides.slice(0, r - 2), v.strides[r - 2], v.strides[r - 1]);
  }
  return p;
}

/** The host copy of `a` is valid (an ordinary array, or a device array read back or written on the host). */
function hostReadable(a: TypedArray): boolean {
  const s = gpuStorage(a);
  return s === undefined || s.hostOk;
}

/**
 * The webgpu backend's linalg kernels on device `g`: WGSL for float32 device outputs, the js reference over
 * the host copies otherwise (float64).
 */
export function webgpuLinalg(g: Gpu): LinalgKernels {
  /** The output is a float32 device array (or empty) and every input float32: the WGSL path. */
  const onDevice = (out: TypedArray, ins: readonly View[]): boolean =>
    out instanceof Float32Array &&
    (out.length === 0 || gpuStorage(out) !== undefined) &&
    ins.every((v) => v.data instanceof Float32Array);

  /**
   * A buffer for `count` info words: with `fail`, a device check of the current kernel call (its outputs, and
   * everything computed from them, raise `fail`'s error when read while a word is not 0); without, scratch the
   * caller frees after the dispatch.
   */
  const infoWords = (count: number, fail: ((b: number, word: number) => Error) | null): GPUBuffer =>
    fail === null ? g.acquire(Math.max(1, count) * 4) : g.addCheck(count, fail).info;

  /** Record one dispatch over `ins` into `out`, one workgroup per matrix. */
  const run = (
    key: string,
    code: () => string,
    ins: readonly View[],
    out: TypedArray,
    p: number[],
    extra: readonly GPUBuffer[] = [],
  ): void => {
    if (p[0] === 0 || out.length === 0) return;
    g.reserve();
    const ob = gpuStorage(out)!.writeBuffer(false);
    const bufs = ins.map((v) => {
      const s = gpuStorage(v.data);
      const b = s === undefined ? g.temporary(v.data, "float32") : s.deviceBuffer();
      return b === ob ? g.snapshot(b) : b;
    });
    g.dispatch(g.pipeline(key, code), [...bufs, ob, ...extra], p, grid(p[0]));
  };

  return {
    lu(a: View, out: TypedArray): void {
      if (!onDevice(out, [a])) {
        onHost("lu", [a.data]);
        jsLinalg.lu(a, out);
        return;
      }
      const n = a.shape[a.shape.length - 1];
      run("la:lu", luShader, [a], out, params([a], n, n, 0));
    },
    triangularSolve(
      a: View,
      b: View,
      lower: boolean,
      unitDiagonal: boolean,
      op: string | null,
      out: TypedArray,
    ): void {
      if (!onDevice(out, [a, b])) {
        onHost("triangularSolve", [a.data, b.data]);
        jsLinalg.triangularSolve(a, b, lower, unitDiagonal, op, out);
        return;
      }
      const n = a.shape[a.shape.length - 1];
      const k = b.shape[b.shape.length - 1];
      if (op !== null && !unitDiagonal && hostReadable(a.data)) {
        // the zero-diagonal check of the contract, on the host copy (the js kernel over no columns of b)
        const none = {
          data: new Float32Array(0),
          shape: [...b.shape.slice(0, -1), 0],
          strides: b.strides,
          offset: 0,
        };
        jsLinalg.triangularSolve(a, none, lower, false, op, new Float32Array(0));
      }
      const flags = (lower ? 1 : 0) | (unitDiagonal ? 2 : 0);
      const p = params([a, b], n, k, flags);
      if (p[0] === 0 || out.length === 0) return;
      const batched = a.shape.length > 2;
      const info = infoWords(
        p[0],
        op === null || unitDiagonal
          ? null
          : (i, w) => new LinAlgError(singularMessage(op, batchElement(batched, i), w)),
      );
      run("la:trsv", triangularSolveShader, [a, b], out, p, [info]);
      if (op === null || unitDiagonal) g.free(info);
    },
    cholesky(a: View, out: TypedArray, op: string | null = "linalg.cholesky"): void {
      if (!onDevice(out, [a])) {
        onHost("cholesky", [a.data]);
        jsLinalg.cholesky(a, out, op);
        return;
      }
      // the LinAlgError of the contract at once where the values can be read (else a device check below)
      if (op !== null && hostReadable(a.data)) jsLinalg.cholesky(a, new Float64Array(out.length), op);
      const n = a.shape[a.shape.length - 1];
      const p = params([a], n, n, 0);
      if (p[0] === 0 || out.length === 0) return;
      const batched = a.shape.length > 2;
      const info = infoWords(
        p[0],
        op === null ? null : (i, w) => new LinAlgError(choleskyMessage(op, batchElement(batched, i), w)),
      );
      run("la:chol", choleskyShader, [a], out, p, [info]);
      if (op === null) g.free(info);
    },
    qr(a: View, complete: boolean, out: TypedArray): void {
      if (!onDevice(out, [a])) {
        onHost("qr", [a.data]);
        jsLinalg.qr(a, complete, out);
        return;
      }
      const m = a.shape[a.shape.length - 2];
      const n = a.shape[a.shape.length - 1];
      const p = params([a], m, n, complete ? 1 : 0);
      if (p[0] === 0 || out.length === 0) return;
      // the reflectors and tau of every matrix in a scratch buffer (at least one word: no empty bindings)
      const scratch = g.acquire(Math.max(1, p[0] * (m * n + Math.min(m, n))) * 4);
      run("la:qr", qrShader, [a], out, p, [scratch]);
      g.free(scratch);
    },
    eigh(a: View, lower: boolean, out: TypedArray): void {
      if (!onDevice(out, [a])) {
        onHost("eigh", [a.data]);
        jsLinalg.eigh(a, lower, out);
        return;
      }
      const n = a.shape[a.shape.length - 1];
      const p = params([a], n, n, lower ? 1 : 0);
      if (p[0] === 0 || out.length === 0) return;
      const scratch = g.acquire(p[0] * 2 * n * n * 4);
      run("la:eigh", eighShader, [a], out, p, [scratch]);
      g.free(scratch);
    },
    svd(a: View, full: boolean, out: TypedArray): void {
      if (!onDevice(out, [a])) {
        onHost("svd", [a.data]);
        jsLinalg.svd(a, full, out);
        return;
      }
      const m = a.shape[a.shape.length - 2];
      const n = a.shape[a.shape.length - 1];
      const k = Math.min(m, n);
      const r = Math.max(m, n);
      const rc = m >= n ? (full ? m : k) : full ? n : k;
      const stride = Math.max(1, r * k + k * k + 2 * k + rc + r * rc + 2 * r);
      const p = params([a], m, n, full ? 1 : 0);
      if (p[0] === 0 || out.length === 0) return;
      p.push(stride);
      const scratch = g.acquire(p[0] * stride * 4);
      g.reserve();
      const s = gpuStorage(a.data);
      const ab = s === undefined ? g.temporary(a.data, "float32") : s.deviceBuffer();
      const ob = gpuStorage(out)!.writeBuffer(false);
      g.dispatch(g.pipeline("la:svd", svdShader), [ab, ob, scratch], p, grid(p[0]));
      g.free(scratch);
    },
    det(a: View, out: TypedArray): void {
      if (!onDevice(out, [a])) {
        onHost("det", [a.data]);
        jsLinalg.det(a, out);
        return;
      }
      const n = a.shape[a.shape.length - 1];
      const p = params([a], n, n, 0);
      if (p[0] === 0) return;
      if (n === 0) {
        out.fill(1); // the empty product
        return;
      }
      // LU into a scratch buffer, then one thread per matrix
      const lu = g.acquire(p[0] * (n + 1) * n * 4);
      g.reserve();
      const s = gpuStorage(a.data);
      const ab = s === undefined ? g.temporary(a.data, "float32") : s.deviceBuffer();
      g.dispatch(g.pipeline("la:lu", luShader), [ab, lu], p, grid(p[0]));
      g.reserve();
      const ob = gpuStorage(out)!.writeBuffer(false);
      g.dispatch(g.pipeline("la:det", detShader), [lu, ob], [p[0], n], grid(Math.ceil(p[0] / LA_GROUP)));
      g.free(lu);
    },
  };
}
