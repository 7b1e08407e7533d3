/**
 * The js reference of the optional `linalg` kernels (see `LinalgKernels` in ../backend.ts): LU with partial
 * pivoting, triangular solve, Cholesky, Householder QR, the symmetric eigendecomposition by cyclic Jacobi
 * rotations, and the SVD by one-sided (Hestenes) Jacobi rotations. Every matrix is copied into a float64 work
 * array and the result rounded once into the output's dtype, so float32 inputs get float64 arithmetic.
 *
 * Why Jacobi: both Jacobi methods are short, need no tridiagonal/bidiagonal reduction and compute small
 * eigenvalues and singular values to high relative accuracy; they are slower than LAPACK's divide and conquer
 * (several O(n^3) sweeps), which is fine for a reference (and for the small matrices a differentiable model
 * uses). Eigenvector and singular-vector signs are fixed here by a rule (the largest-magnitude entry of a
 * column is positive) since LAPACK's signs are unspecified: results match PyTorch up to those signs. A matrix
 * with a non-finite entry has no eigen- or singular value decomposition: eigh and svd give NaN throughout it.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal, LinAlgError } from "../../errors.ts";
import type { LinalgKernels, View } from "../backend.ts";
import { assertOutSize, contiguousData } from "./strided.ts";

const EPS = 2.220446049250313e-16;

/** Number of matrices in a view of rank >= 2 (the product of its leading dimensions). */
function batchOf(v: View): number {
  const r = v.shape.length;
  if (r < 2) throw internal(`linalg kernel: expected a batch of matrices, got shape [${v.shape.join(", ")}]`);
  let b = 1;
  for (let i = 0; i < r - 2; i++) b *= v.shape[i];
  return b;
}

/** "(Batch element i): " when the operand has batch dimensions, as PyTorch prefixes its messages. */
function batchPrefix(v: View, b: number): string {
  return batchElement(v.shape.length > 2, b);
}

/**
 * PyTorch's message for a zero on U's diagonal (1-based `i`) in solve / inv (`op` names the function; inv
 * names the element, solve does not), after the batch prefix.
 */
export function singularMessage(op: string, prefix: string, i: number): string {
  const why = /\binv/.test(op)
    ? `The diagonal element ${i} is zero, the inversion could not be completed because the input matrix is singular.`
    : "The solver failed because the input matrix is singular.";
  return `${op}: ${prefix}${why}`;
}

/** PyTorch's message for a Cholesky factorization failing at the leading minor of (1-based) `order`. */
export function choleskyMessage(op: string, prefix: string, order: number): string {
  return (
    `${op}: ${prefix}The factorization could not be completed because the input is not positive-definite ` +
    `(the leading minor of order ${order} is not positive-definite).`
  );
}

/** "(Batch element b): " for batched operands (`batched`), as PyTorch prefixes its messages; else "". */
export function batchElement(batched: boolean, b: number): string {
  return batched ? `(Batch element ${b}): ` : "";
}

/** Matrix `b` (rows x cols) of the flat row-major `src` as a float64 copy. */
function load(src: TypedArray, b: number, rows: number, cols: number): Float64Array {
  const n = rows * cols;
  const w = new Float64Array(n);
  const o = b * n;
  for (let i = 0; i < n; i++) w[i] = src[o + i];
  return w;
}

/**
 * LU with partial pivoting, in place on the row-major n x n `w` (L below the diagonal, unit diagonal implied;
 * U on and above). perm[i] is the row of the original matrix that ends in row i. Returns the permutation's
 * sign. The first largest |pivot| is chosen (LAPACK's idamax); a zero pivot column is left unscaled.
 */
function luInPlace(w: Float64Array, n: number, perm: Int32Array): number {
  let sign = 1;
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let k = 0; k < n; k++) {
    let p = k;
    let best = Math.abs(w[k * n + k]);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(w[i * n + k]);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const t = w[k * n + j];
        w[k * n + j] = w[p * n + j];
        w[p * n + j] = t;
      }
      const t = perm[k];
      perm[k] = perm[p];
      perm[p] = t;
      sign = -sign;
    }
    const piv = w[k * n + k];
    if (piv === 0) continue;
    for (let i = k + 1; i < n; i++) {
      const l = w[i * n + k] / piv;
      w[i * n + k] = l;
      if (l === 0) continue;
      for (let j = k + 1; j < n; j++) w[i * n + j] -= l * w[k * n + j];
    }
  }
  return sign;
}

function lu(a: View, out: TypedArray): void {
  const n = a.shape[a.shape.length - 1];
  const batch = batchOf(a);
  assertOutSize("lu", out, batch * (n + 1) * n);
  const src = contiguousData(a);
  const perm = new Int32Array(n);
  for (let b = 0; b < batch; b++) {
    const w = load(src, b, n, n);
    luInPlace(w, n, perm);
    const o = b * (n + 1) * n;
    for (let i = 0; i < n * n; i++) out[o + i] = w[i];
    for (let i = 0; i < n; i++) out[o + n * n + i] = perm[i];
  }
}

function det(a: View, out: TypedArray): void {
  const n = a.shape[a.shape.length - 1];
  const batch = batchOf(a);
  assertOutSize("det", out, batch);
  const src = contiguousData(a);
  const perm = new Int32Array(n);
  for (let b = 0; b < batch; b++) {
    const w = load(src, b, n, n);
    let d = luInPlace(w, n, perm);
    for (let i = 0; i < n; i++) d *= w[i * n + i];
    out[b] = d;
  }
}

function triangularSolve(
  a: View,
  bv: View,
  lower: boolean,
  unitDiagonal: boolean,
  op: string | null,
  out: TypedArray,
): void {
  const n = a.shape[a.shape.length - 1];
  const k = bv.shape[bv.shape.length - 1];
  const batch = batchOf(a);
  if (batchOf(bv) !== batch || bv.shape[bv.shape.length - 2] !== n) {
    throw internal(`triangularSolve: operands [${a.shape.join(", ")}] and [${bv.shape.join(", ")}]`);
  }
  assertOutSize("triangularSolve", out, batch * n * k);
  const A = contiguousData(a);
  const B = contiguousData(bv);
  for (let b = 0; b < batch; b++) {
    const ao = b * n * n;
    if (op !== null && !unitDiagonal) {
      for (let i = 0; i < n; i++) {
        if (A[ao + i * n + i] === 0) throw new LinAlgError(singularMessage(op, batchPrefix(a, b), i + 1));
      }
    }
    const x = load(B, b, n, k);
    for (let s = 0; s < n; s++) {
      const i = lower ? s : n - 1 - s;
      const d = unitDiagonal ? 1 : A[ao + i * n + i];
      const j0 = lower ? 0 : i + 1;
      const j1 = lower ? i : n;
      for (let c = 0; c < k; c++) {
        let acc = x[i * k + c];
        for (let j = j0; j < j1; j++) acc -= A[ao + i * n + j] * x[j * k + c];
        x[i * k + c] = acc / d;
      }
    }
    const o = b * n * k;
    for (let i = 0; i < n * k; i++) out[o + i] = x[i];
  }
}

function cholesky(a: View, out: TypedArray, op: string | null = "linalg.cholesky"): void {
  const n = a.shape[a.shape.length - 1];
  const batch = batchOf(a);
  assertOutSize("cholesky", out, batch * n * n);
  const src = contiguousData(a);
  for (let b = 0; b < batch; b++) {
    const A = load(src, b, n, n);
    const L = new Float64Array(n * n);
    for (let j = 0; j < n; j++) {
      let s = A[j * n + j];
      for (let p = 0; p < j; p++) s -= L[j * n + p] * L[j * n + p];
      if (!(s > 0)) {
        if (op !== null) throw new LinAlgError(choleskyMessage(op, batchPrefix(a, b), j + 1));
        // no error: the columns from the failing one on are NaN (the first NaN diagonal names the minor)
        for (let c = j; c < n; c++) for (let i = c; i < n; i++) L[i * n + c] = Number.NaN;
        break;
      }
      const d = Math.sqrt(s);
      L[j * n + j] = d;
      for (let i = j + 1; i < n; i++) {
        let t = A[i * n + j];
        for (let p = 0; p < j; p++) t -= L[i * n + p] * L[j * n + p];
        L[i * n + j] = t / d;
      }
    }
    const o = b * n * n;
    for (let i = 0; i < n * n; i++) out[o + i] = L[i];
  }
}

function qr(a: View, complete: boolean, out: TypedArray): void {
  const m = a.shape[a.shape.length - 2];
  const n = a.shape[a.shape.length - 1];
  const k = Math.min(m, n);
  const c = complete ? m : k;
  const w = Math.max(c, n);
  const batch = batchOf(a);
  const per = (m + c) * w;
  assertOutSize("qr", out, batch * per);
  const src = contiguousData(a);
  const tau = new Float64Array(k);
  for (let b = 0; b < batch; b++) {
    const R = load(src, b, m, n);
    // Householder reflectors H_j = I - tau_j v_j v_j^T, v_j[j] = 1, stored below R's diagonal (LAPACK's geqrf)
    for (let j = 0; j < k; j++) {
      const alpha = R[j * n + j];
      let xnorm = 0;
      for (let i = j + 1; i < m; i++) xnorm = Math.hypot(xnorm, R[i * n + j]);
      if (xnorm === 0) {
        tau[j] = 0;
        continue;
      }
      const beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, xnorm);
      tau[j] = (beta - alpha) / beta;
      const scale = 1 / (alpha - beta);
      for (let i = j + 1; i < m; i++) R[i * n + j] *= scale;
      R[j * n + j] = beta;
      for (let col = j + 1; col < n; col++) {
        let s = R[j * n + col];
        for (let i = j + 1; i < m; i++) s += R[i * n + j] * R[i * n + col];
        s *= tau[j];
        R[j * n + col] -= s;
        for (let i = j + 1; i < m; i++) R[i * n + col] -= s * R[i * n + j];
      }
    }
    // Q = H_0 ... H_{k-1} applied to the first c columns of the identity, last reflector first
    const Q = new Float64Array(m * c);
    for (let i = 0; i < c; i++) Q[i * c + i] = 1;
    for (let j = k - 1; j >= 0; j--) {
      if (tau[j] === 0) continue;
      for (let col = 0; col < c; col++) {
        let s = Q[j * c + col];
        for (let i = j + 1; i < m; i++) s += R[i * n + j] * Q[i * c + col];
        s *= tau[j];
        Q[j * c + col] -= s;
        for (let i = j + 1; i < m; i++) Q[i * c + col] -= s * R[i * n + j];
      }
    }
    const o = b * per;
    out.fill(0, o, o + per);
    for (let i = 0; i < m; i++) for (let col = 0; col < c; col++) out[o + i * w + col] = Q[i * c + col];
    for (let i = 0; i < c; i++) {
      for (let col = i; col < n; col++) out[o + (m + i) * w + col] = i < m ? R[i * n + col] : 0;
    }
  }
}

/** Whether every entry of `w` is finite. */
function allFinite(w: Float64Array): boolean {
  for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) return false;
  return true;
}

/** Make the largest-magnitude entry of column j of the row-major r x cols `M` positive; returns -1 if flipped. */
function fixSign(M: Float64Array, r: number, cols: number, j: number): number {
  let best = 0;
  let at = 0;
  for (let i = 0; i < r; i++) {
    const v = Math.abs(M[i * cols + j]);
    if (v > best) {
      best = v;
      at = i;
    }
  }
  if (M[at * cols + j] >= 0) return 1;
  for (let i = 0; i < r; i++) M[i * cols + j] = -M[i * cols + j];
  return -1;
}

/** Columns of the row-major r x cols `M` reordered: new column j is old column order[j]. */
function reorderColumns(M: Float64Array, r: number, cols: number, order: readonly number[]): void {
  const row = new Float64Array(cols);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < cols; j++) row[j] = M[i * cols + order[j]];
    for (let j = 0; j < cols; j++) M[i * cols + j] = row[j];
  }
}

function eigh(a: View, lower: boolean, out: TypedArray): void {
  const n = a.shape[a.shape.length - 1];
  const batch = batchOf(a);
  const per = (n + 1) * n;
  assertOutSize("eigh", out, batch * per);
  const src = contiguousData(a);
  for (let b = 0; b < batch; b++) {
    const raw = load(src, b, n, n);
    const o = b * per;
    if (!allFinite(raw)) {
      out.fill(Number.NaN, o, o + per);
      continue;
    }
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const useLower = lower ? i >= j : i <= j;
        A[i * n + j] = useLower ? raw[i * n + j] : raw[j * n + i];
      }
    }
    const V = new Float64Array(n * n);
    for (let i = 0; i < n; i++) V[i * n + i] = 1;
    jacobiEigen(A, V, n);
    const w = Array.from({ length: n }, (_, i) => A[i * n + i]);
    const order = w.map((_, i) => i).sort((i, j) => w[i] - w[j] || i - j);
    reorderColumns(V, n, n, order);
    for (let j = 0; j < n; j++) fixSign(V, n, n, j);
    for (let j = 0; j < n; j++) out[o + j] = w[order[j]];
    for (let i = 0; i < n * n; i++) out[o + n + i] = V[i];
  }
}

/**
 * Cyclic Jacobi on the symmetric n x n `A` (both triangles, in place: A ends diagonal) accumulating the
 * rotations into V. Each rotation zeroes one off-diagonal pair; an entry negligible beside both diagonal
 * entries is set to zero instead of rotated, which ends the sweeps once every pair is negligible.
 */
function jacobiEigen(A: Float64Array, V: Float64Array, n: number): void {
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const app = A[p * n + p];
        const aqq = A[q * n + q];
        if (Math.abs(apq) <= EPS * 0.5 * Math.sqrt(Math.abs(app * aqq)) || !Number.isFinite(apq)) {
          A[p * n + q] = 0;
          A[q * n + p] = 0;
          continue;
        }
        rotated = true;
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p];
          const akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k];
          const aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        A[p * n + p] = app - t * apq;
        A[q * n + q] = aqq + t * apq;
        A[p * n + q] = 0;
        A[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p];
          const vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
    if (!rotated) return;
  }
}

/**
 * One-sided Jacobi SVD of the row-major m x n `W` with m >= n, in place: W's columns are rotated until mutually
 * orthogonal (within rounding), the rotations accumulate into V (n x n). Returns the column norms.
 */
function jacobiSvd(W: Float64Array, V: Float64Array, m: number, n: number): Float64Array {
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const wp = W[i * n + p];
          const wq = W[i * n + q];
          alpha += wp * wp;
          beta += wq * wq;
          gamma += wp * wq;
        }
        if (gamma === 0 || !(Math.abs(gamma) > EPS * Math.sqrt(alpha * beta))) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const wp = W[i * n + p];
          const wq = W[i * n + q];
          W[i * n + p] = c * wp - s * wq;
          W[i * n + q] = s * wp + c * wq;
        }
        for (let i = 0; i < n; i++) {
          const vp = V[i * n + p];
          const vq = V[i * n + q];
          V[i * n + p] = c * vp - s * vq;
          V[i * n + q] = s * vp + c * vq;
        }
      }
    }
    if (!rotated) break;
  }
  const s = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let i = 0; i < m; i++) acc = Math.hypot(acc, W[i * n + j]);
    s[j] = acc;
  }
  return s;
}

/**
 * Fill the columns of the row-major r x cols `M` not marked in `valid` with unit vectors orthogonal to every
 * other column (Gram-Schmidt, twice, on the standard basis vector that keeps the largest residual).
 */
function completeBasis(M: Float64Array, r: number, cols: number, valid: boolean[]): void {
  const cand = new Float64Array(r);
  const best = new Float64Array(r);
  for (let j = 0; j < cols; j++) {
    if (valid[j]) continue;
    let bestNorm = -1;
    for (let e = 0; e < r; e++) {
      cand.fill(0);
      cand[e] = 1;
      for (let pass = 0; pass < 2; pass++) {
        for (let q = 0; q < cols; q++) {
          if (!valid[q]) continue;
          let d = 0;
          for (let i = 0; i < r; i++) d += M[i * cols + q] * cand[i];
          for (let i = 0; i < r; i++) cand[i] -= d * M[i * cols + q];
        }
      }
      let nrm = 0;
      for (let i = 0; i < r; i++) nrm = Math.hypot(nrm, cand[i]);
      if (nrm > bestNorm) {
        bestNorm = nrm;
        for (let i = 0; i < r; i++) best[i] = cand[i] / nrm;
      }
      if (nrm > 0.7) break;
    }
    for (let i = 0; i < r; i++) M[i * cols + j] = best[i];
    valid[j] = true;
  }
}

/** Pad the row-major r x c `M` with zero columns to r x c2. */
function widen(M: Float64Array, r: number, c: number, c2: number): Float64Array {
  if (c2 === c) return M;
  const W = new Float64Array(r * c2);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) W[i * c2 + j] = M[i * c + j];
  return W;
}

function svd(a: View, full: boolean, out: TypedArray): void {
  const m = a.shape[a.shape.length - 2];
  const n = a.shape[a.shape.length - 1];
  const k = Math.min(m, n);
  const ku = full ? m : k;
  const kv = full ? n : k;
  const w = Math.max(ku, n);
  const batch = batchOf(a);
  const per = (m + 1 + kv) * w;
  assertOutSize("svd", out, batch * per);
  const src = contiguousData(a);
  for (let b = 0; b < batch; b++) {
    const A = load(src, b, m, n);
    const o = b * per;
    if (!allFinite(A)) {
      out.fill(Number.NaN, o, o + per);
      continue;
    }
    // tall: work on A (m x n); wide: on A^T (n x m), whose left vectors are A's right ones
    const tall = m >= n;
    const r = tall ? m : n;
    const W = tall ? A : new Float64Array(n * m);
    if (!tall) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) W[j * m + i] = A[i * n + j];
    const Vk = new Float64Array(k * k);
    for (let i = 0; i < k; i++) Vk[i * k + i] = 1;
    const s = jacobiSvd(W, Vk, r, k);
    const order = Array.from({ length: k }, (_, i) => i).sort((i, j) => s[j] - s[i] || i - j);
    reorderColumns(W, r, k, order);
    reorderColumns(Vk, k, k, order);
    const sv = order.map((i) => s[i]);
    // the long-side vectors: W's normalised columns, completed where a singular value is negligible
    const tol = (sv.length > 0 ? sv[0] : 0) * r * EPS;
    const valid = sv.map((x) => x > tol && x > 0);
    for (let j = 0; j < k; j++) {
      if (!valid[j]) continue;
      for (let i = 0; i < r; i++) W[i * k + j] /= sv[j];
    }
    const rc = tall ? ku : kv;
    const Long = widen(W, r, k, rc);
    completeBasis(Long, r, rc, [...valid, ...new Array<boolean>(rc - k).fill(false)]);
    const Short = Vk;
    // U: m x ku, V: n x kv
    let U: Float64Array;
    let V: Float64Array;
    if (tall) {
      U = Long;
      V = widen(Short, k, k, kv);
    } else {
      U = widen(Short, k, k, ku);
      V = Long;
    }
    if (full) {
      completeBasis(
        U,
        m,
        ku,
        Array.from({ length: ku }, (_, j) => j < k),
      );
      completeBasis(
        V,
        n,
        kv,
        Array.from({ length: kv }, (_, j) => j < k),
      );
    }
    for (let j = 0; j < k; j++) {
      if (fixSign(U, m, ku, j) < 0) for (let i = 0; i < n; i++) V[i * kv + j] = -V[i * kv + j];
    }
    out.fill(0, o, o + per);
    for (let i = 0; i < m; i++) for (let j = 0; j < ku; j++) out[o + i * w + j] = U[i * ku + j];
    for (let j = 0; j < k; j++) out[o + m * w + j] = sv[j];
    for (let i = 0; i < kv; i++) for (let j = 0; j < n; j++) out[o + (m + 1 + i) * w + j] = V[j * kv + i];
  }
}

/** The js reference linalg kernels (Backend.linalg). */
export const linalgKernels: LinalgKernels = { lu, det, triangularSolve, cholesky, qr, eigh, svd };
