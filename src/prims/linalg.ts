/**
 * Dense linear-algebra primitives (the matrix decompositions behind `cr.linalg`): `lu` (partial pivoting),
 * `triangularSolve`, `cholesky`, `qr` (Householder), `eigh` (symmetric), `svd` and `det`. Everything else
 * (solve, inv, slogdet, svdvals, ...) is composed from them in src/ops/decomp.ts.
 *
 * A primitive has one output, so a decomposition with several results packs them into one array (the layouts
 * are on `LinalgKernels` in src/backend/backend.ts) and the ops layer cuts them out with views: the cotangent of
 * the packed output is then the cotangents of the pieces side by side (zeros for unused pieces), and a rule
 * cuts it the same way. Every primitive works on the last two axes and batches over the leading ones, so
 * vmap's rule is `batchAll`. Kernels: the backend's optional `linalg` family, else the js reference.
 *
 * Derivatives follow PyTorch's (FunctionsManual.cpp) and JAX's (lax/linalg.py) formulas, written with binders
 * and Tensor methods so they differentiate again:
 * - cholesky, eigh: the input is taken as symmetric (only one triangle is read); the rules use the symmetric
 *   part of a tangent and return symmetric gradients, as PyTorch's.
 * - eigh, svd: the rules divide by eigenvalue gaps w_j - w_i (singular-value gaps s_j^2 - s_i^2, and by
 *   the singular values for a non-square input). With a repeated value the derivative of the vectors does not
 *   exist, and as in PyTorch a loss that uses the vectors gets inf/NaN there (also a gauge-invariant one such
 *   as U diag(S) Vh, whose terms are 0/0 at that point); a loss of the values alone keeps its finite gradient
 *   (`safeGaps`: PyTorch skips the vector terms when the vectors get no gradient, we see that their cotangent
 *   is zero). Forward mode divides by the gaps as they are.
 * - qr: differentiable for m >= n in "reduced" mode and for m <= n in any mode; mode "complete" with m > n
 *   is an error (Q's extra columns are not determined by A), as in PyTorch.
 * - svd with full matrices and m != n: the reverse rule uses the first min(m, n) columns only (PyTorch does the
 *   same); forward mode is an error there.
 * - det: the gradient is the cofactor matrix, det(A) A^-T for an invertible A and, where det(A) = 0, the
 *   cofactors from the SVD (U adj(S) V^T times det(U) det(V)), as PyTorch 1.13, so a singular matrix of rank
 *   n-1 gets its true (non-zero) gradient. Second derivatives at a singular matrix are NaN.
 */
import { linalgKernels as jsLinalg } from "../backend/js/decomp.ts";
import type { LinalgKernels } from "../backend/backend.ts";
import { type Aval, isZero, type MaybeZero, type Primitive, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import type { DType } from "../dtype.ts";
import { AutodiffError, DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll } from "./batching.ts";
import { castTo, where } from "./elementwise.ts";
import { allocOut, fromData, getBackend, viewOf } from "./impl.ts";
import { permute, unslice } from "./movement.ts";
import { rule } from "./rules.ts";

function kernels(): LinalgKernels {
  return getBackend().linalg ?? jsLinalg;
}

// ---- small helpers on batched matrices (Tensor methods and binders only) --------------------------------------

/** Swap the last two axes (a view). */
export function mT(x: Tensor): Tensor {
  const n = x.shape.length;
  return permute(
    x,
    x.shape.map((_, i) => (i === n - 2 ? n - 1 : i === n - 1 ? n - 2 : i)),
  );
}

/** The n x n identity as a constant of `dtype`. */
export function eyeOf(n: number, dtype: DType): Tensor {
  const d = dtype === "float32" ? new Float32Array(n * n) : new Float64Array(n * n);
  for (let i = 0; i < n; i++) d[i * n + i] = 1;
  return fromData(d, [n, n], dtype);
}

/** The diagonal of [..., n, n] as a row [..., 1, n]. */
function diagRow(x: Tensor): Tensor {
  const n = x.shape[x.shape.length - 1];
  return x.mul(eyeOf(n, x.dtype)).sum(-2, true);
}

/** [..., 1, n] row -> the diagonal matrix [..., n, n]. */
function diagEmbed(row: Tensor): Tensor {
  const n = row.shape[row.shape.length - 1];
  return row.mul(eyeOf(n, row.dtype));
}

/** x without its diagonal. */
function offDiag(x: Tensor): Tensor {
  const n = x.shape[x.shape.length - 1];
  return x.sub(x.mul(eyeOf(n, x.dtype)));
}

/**
 * The denominators of the eigenvector / singular-vector terms: the gaps E (w_j - w_i, or s_j^2 - s_i^2) with
 * ones on the diagonal (whose numerators are zero), and, in the matrices of the batch whose vectors get no
 * cotangent at all (`unused`, [..., 1, 1] bool: a loss of the eigenvalues or singular values alone), ones
 * wherever a gap is zero. Elsewhere a zero gap stays zero, so a loss that uses the vectors at a repeated value
 * gets inf/NaN, as in PyTorch (which skips the vector terms when the vectors get no gradient, and divides by
 * the gaps otherwise). Selected with `where` on the denominator only, so no NaN enters a derivative through an
 * unused side.
 */
function safeGaps(E: Tensor, unused: Tensor | null): Tensor {
  const n = E.shape[E.shape.length - 1];
  const diag = castTo(eyeOf(n, "float64"), "bool").expand(E.shape);
  const one = diag.logicalOr(unused === null ? diag : unused.expand(E.shape).logicalAnd(E.eq(0)));
  return where(one, onesLike(E), E);
}

/** Singular values as denominators: zeros replaced by ones in matrices whose vectors get no cotangent. */
function safeS(S: Tensor, unused: Tensor): Tensor {
  return where(unused.expand(S.shape).logicalAnd(S.eq(0)), onesLike(S), S);
}

/** [..., 1, 1] bool: every entry of every given [..., r, c] tensor is zero (a test: nothing to differentiate). */
function allZero(...xs: Tensor[]): Tensor {
  return xs
    .map((x) => x.detach().abs().sum([-2, -1], true))
    .reduce((a, b) => a.add(b))
    .eq(0);
}

/** Ones of x's shape and dtype (a broadcast constant). */
function onesLike(x: Aval): Tensor {
  const d = x.dtype === "float32" ? new Float32Array(1) : new Float64Array(1);
  d[0] = 1;
  return fromData(d, [], x.dtype).expand(x.shape);
}

/** `piece` written at rows r0.., columns 0.. of a zero array of `shape` (its last two axes). */
function placeAt(piece: Tensor, shape: readonly number[], r0: number): Tensor {
  const starts = shape.map((_, i) => (i === shape.length - 2 ? r0 : 0));
  return unslice(
    piece,
    shape,
    starts,
    shape.map(() => 1),
  );
}

/** rows [r0, r0 + r) and columns [0, c) of the last two axes. */
function block(x: Tensor, r0: number, r: number, c: number): Tensor {
  return x.narrow(-2, r0, r).narrow(-1, 0, c);
}

/** The permutation matrix P[i, j] = (perm[i] == j) ([..., n, n], the row's dtype) of a perm row [..., 1, n]. */
function permMatrix(permRow: Tensor): Tensor {
  const n = permRow.shape[permRow.shape.length - 1];
  const idx = new Float64Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const cols = castTo(fromData(idx, [n], "float64"), permRow.dtype);
  return castTo(mT(permRow).eq(cols), permRow.dtype);
}

function checkFloatMatrix(op: string, a: Aval, square: boolean): void {
  const r = a.shape.length;
  if (a.dtype !== "float32" && a.dtype !== "float64") {
    throw new DTypeError(`internal: ${op} expects float32 or float64, got ${a.dtype}`);
  }
  if (r < 2 || (square && a.shape[r - 1] !== a.shape[r - 2])) {
    throw new ShapeError(`internal: ${op} got shape ${fmtShape(a.shape)}`);
  }
}

// ---- lu --------------------------------------------------------------------------------------------------------

/** The factors of a packed lu output: L (unit lower), U, and the permutation matrix P with P A = L U. */
export function luUnpack(packed: Tensor): { L: Tensor; U: Tensor; P: Tensor } {
  const n = packed.shape[packed.shape.length - 1];
  const lu = packed.narrow(-2, 0, n);
  return {
    L: lu.tril(-1).add(eyeOf(n, packed.dtype)),
    U: lu.triu(),
    P: permMatrix(packed.narrow(-2, n, 1)),
  };
}

/**
 * LU with partial pivoting: [..., n, n] -> packed [..., n+1, n] (L and U in rows 0..n-1, the row permutation
 * in row n). With P A = L U and M = L^-1 P dA U^-1: dL = L tril(M, -1), dU = triu(M) U; reverse,
 * dA-bar = P^T L^-T (tril(L^T gL, -1) + triu(gU U^T)) U^-T. The permutation row is piecewise constant.
 */
export const luP: Primitive<null> = {
  name: "lu",
  abstract([a]) {
    checkFloatMatrix("lu", a, true);
    const n = a.shape[a.shape.length - 1];
    return { shape: [...a.shape.slice(0, -2), n + 1, n], dtype: a.dtype };
  },
  impl([a], _p, out) {
    const o = allocOut(out);
    kernels().lu(viewOf(a), o._data!);
    return o;
  },
  derivative: rule<null>(
    (_xs, [ta], out) => {
      const { L, U, P } = luUnpack(out);
      const Y = triangularSolve(L, P.matmul(ta as Tensor), true, true);
      const M = solveRight(Y, U, false);
      const dLU = L.matmul(M.tril(-1)).add(M.triu().matmul(U));
      return placeAt(dLU, out.shape, 0);
    },
    (ct, _xs, out) => {
      const { L, U, P } = luUnpack(out!);
      const n = L.shape[L.shape.length - 1];
      const g = ct.narrow(-2, 0, n);
      const G = mT(L)
        .matmul(g.tril(-1))
        .tril(-1)
        .add(g.triu().matmul(mT(U)).triu());
      const Z = triangularSolve(mT(L), G, false, true);
      return [mT(P).matmul(solveRight(Z, mT(U), true))];
    },
    { saveInputs: false, saveOutput: true },
  ),
  batch: batchAll<null>(),
};

// ---- triangular solve ------------------------------------------------------------------------------------------

export interface TriangularSolveParams {
  /** a is lower (else upper) triangular; only that triangle is read. */
  readonly lower: boolean;
  /** a's diagonal is taken as ones (not read). */
  readonly unitDiagonal: boolean;
  /** With an op name, a zero on the diagonal is a LinAlgError naming it (solve and inv); else inf/NaN. */
  readonly op: string | null;
}

/** The triangle of x the solve reads (strictly, with a unit diagonal). */
function triPart(x: Tensor, p: TriangularSolveParams): Tensor {
  const k = p.unitDiagonal ? 1 : 0;
  return p.lower ? x.tril(-k) : x.triu(k);
}

/**
 * x = a^-1 b for triangular a [..., n, n] and b [..., n, k] (equal batch shapes). dx = a^-1 (db - tri(da) x);
 * reverse: b-bar = a^-T x-bar (the transposed triangle), a-bar = -tri(b-bar x^T).
 */
export const triangularSolveP: Primitive<TriangularSolveParams> = {
  name: "triangularSolve",
  abstract([a, b]) {
    checkFloatMatrix("triangularSolve", a, true);
    const r = a.shape.length;
    if (
      b.dtype !== a.dtype ||
      b.shape.length !== r ||
      b.shape[r - 2] !== a.shape[r - 1] ||
      !shapesEqual(a.shape.slice(0, -2), b.shape.slice(0, -2))
    ) {
      throw new ShapeError(
        `internal: triangularSolve got ${fmtShape(a.shape)} ${a.dtype} and ${fmtShape(b.shape)} ${b.dtype}`,
      );
    }
    return b;
  },
  impl([a, b], p, out) {
    const o = allocOut(out);
    kernels().triangularSolve(viewOf(a), viewOf(b), p.lower, p.unitDiagonal, p.op, o._data!);
    return o;
  },
  derivative: rule<TriangularSolveParams>(
    ([a], [ta, tb], x, p) => {
      let rhs: Tensor | null = isZero(tb) ? null : tb;
      if (!isZero(ta)) {
        const t = triPart(ta, p).matmul(x);
        rhs = rhs === null ? t.neg() : rhs.sub(t);
      }
      return triangularSolve(a, rhs!, p.lower, p.unitDiagonal);
    },
    (ct, [a], x, p, needs) => {
      const gb = triangularSolve(mT(a!), ct, !p.lower, p.unitDiagonal);
      const ga: MaybeZero = needs[0] ? triPart(gb.matmul(mT(x!)), p).neg() : new Zero(a!.shape, a!.dtype);
      return [ga, gb];
    },
    { saveInputs: true, saveOutput: true },
  ),
  batch: batchAll<TriangularSolveParams>(),
};

/** a^-1 b for triangular a (no singularity check: inf/NaN). */
export function triangularSolve(
  a: Tensor,
  b: Tensor,
  lower: boolean,
  unitDiagonal = false,
  op: string | null = null,
): Tensor {
  return bind(triangularSolveP, [a, b], { lower, unitDiagonal, op });
}

/** x = b a^-1 for triangular a: a^T x^T = b^T. */
export function solveRight(b: Tensor, a: Tensor, lower: boolean, unitDiagonal = false): Tensor {
  return mT(triangularSolve(mT(a), mT(b), !lower, unitDiagonal));
}

/** a^-1 b through the LU factors (a [..., n, n], b [..., n, k], equal batch shapes); `op` checks singularity. */
export function luSolve(a: Tensor, b: Tensor, op: string | null = null): Tensor {
  const { L, U, P } = luUnpack(lu(a));
  return triangularSolve(U, triangularSolve(L, P.matmul(b), true, true), false, false, op);
}

// ---- cholesky --------------------------------------------------------------------------------------------------

/** tril(x) with the diagonal halved. */
function phi(x: Tensor): Tensor {
  const n = x.shape[x.shape.length - 1];
  return x.tril().sub(x.mul(eyeOf(n, x.dtype)).mul(0.5));
}

function sym(x: Tensor): Tensor {
  return x.add(mT(x)).mul(0.5);
}

export interface CholeskyParams {
  /** The op a matrix that is not positive-definite is a LinAlgError of; null: no error, NaN columns instead. */
  readonly op: string | null;
}

/**
 * Lower Cholesky factor (the lower triangle of a is read; a LinAlgError naming `op` if it is not
 * positive-definite, or with `op` null NaN columns from the failing one on).
 * With sym(dA) the symmetric part of the tangent: dL = L phi(L^-1 sym(dA) L^-T), phi = tril with the diagonal
 * halved; reverse: dA-bar = sym(L^-T phi(L^T gL) L^-1) (PyTorch's cholesky_backward).
 */
export const choleskyP: Primitive<CholeskyParams> = {
  name: "cholesky",
  abstract([a]) {
    checkFloatMatrix("cholesky", a, true);
    return a;
  },
  impl([a], p, out) {
    const o = allocOut(out);
    kernels().cholesky(viewOf(a), o._data!, p.op);
    return o;
  },
  derivative: rule<CholeskyParams>(
    (_xs, [ta], L) => {
      const Y = triangularSolve(L, sym(ta as Tensor), true);
      const M = solveRight(Y, mT(L), false);
      return L.matmul(phi(M));
    },
    (ct, _xs, L) => {
      const K = phi(mT(L!).matmul(ct));
      const Z = triangularSolve(mT(L!), K, false);
      return [sym(solveRight(Z, L!, true))];
    },
    { saveInputs: false, saveOutput: true },
  ),
  batch: batchAll<CholeskyParams>(),
};

// ---- qr --------------------------------------------------------------------------------------------------------

export interface QrParams {
  /** Q is m x m and R m x n (else Q m x k, R k x n, k = min(m, n)). */
  readonly complete: boolean;
}

function qrDims(shape: readonly number[], complete: boolean): { m: number; n: number; c: number } {
  const m = shape[shape.length - 2];
  const n = shape[shape.length - 1];
  return { m, n, c: complete ? m : Math.min(m, n) };
}

/** Q and R from a packed qr output. */
export function qrUnpack(packed: Tensor, m: number, n: number, c: number): { Q: Tensor; R: Tensor } {
  return { Q: block(packed, 0, m, c), R: block(packed, m, c, n) };
}

/** The tangents of Q and R for a = Q R with m >= n (R square, invertible). */
function qrTallJvp(Q: Tensor, R: Tensor, dA: Tensor): [Tensor, Tensor] {
  const dAR = solveRight(dA, R, false); // dA R^-1
  const X = mT(Q).matmul(dAR); // Q^T dA R^-1
  const low = X.tril(-1);
  const XC = X.sub(low.sub(mT(low))); // X - C, C = skew part copied from X's strict lower triangle
  return [dAR.sub(Q.matmul(XC)), XC.matmul(R)];
}

/** dA-bar for a = Q R with m >= n: (gQ + Q N) R^-T, N = copy of triu(M) to the lower triangle, M = gR R^T - Q^T gQ. */
function qrTallVjp(Q: Tensor, R: Tensor, gQ: Tensor, gR: Tensor): Tensor {
  const M = gR.matmul(mT(R)).sub(mT(Q).matmul(gQ));
  const N = M.triu().add(mT(M.triu(1)));
  return solveRight(gQ.add(Q.matmul(N)), mT(R), true);
}

/**
 * Householder QR: [..., m, n] -> packed Q and R (layout on LinalgKernels.qr). For m >= n (JAX's qr_jvp_rule,
 * PyTorch's linalg_qr_backward): X = Q^T dA R^-1, C = tril(X, -1) - tril(X, -1)^T, dR = (X - C) R,
 * dQ = dA R^-1 - Q (X - C). For m < n, a = [X | Y] with X square: X's rules, and for V = Q^T Y,
 * dV = dQ^T Y + Q^T dY (reverse: Q-bar gains Y V-bar^T, Y-bar = Q V-bar).
 */
export const qrP: Primitive<QrParams> = {
  name: "qr",
  abstract([a], p) {
    checkFloatMatrix("qr", a, false);
    const { m, n, c } = qrDims(a.shape, p.complete);
    return { shape: [...a.shape.slice(0, -2), m + c, Math.max(c, n)], dtype: a.dtype };
  },
  impl([a], p, out) {
    const o = allocOut(out);
    kernels().qr(viewOf(a), p.complete, o._data!);
    return o;
  },
  derivative: rule<QrParams>(
    ([a], [ta], out, p) => {
      const { m, n, c } = qrDims(a.shape, p.complete);
      qrDifferentiable(m, n, p);
      const { Q, R } = qrUnpack(out, m, n, c);
      const dA = ta as Tensor;
      let dQ: Tensor;
      let dR: Tensor;
      if (m >= n) [dQ, dR] = qrTallJvp(Q, R, dA);
      else {
        const [dQx, dU] = qrTallJvp(Q, R.narrow(-1, 0, m), dA.narrow(-1, 0, m));
        const Y = a.narrow(-1, m, n - m);
        const dV = mT(dQx)
          .matmul(Y)
          .add(mT(Q).matmul(dA.narrow(-1, m, n - m)));
        dQ = dQx;
        dR = dU.pad([0, n - m]).add(dV.pad([m, 0]));
      }
      return placeAt(dQ, out.shape, 0).add(placeAt(dR, out.shape, m));
    },
    (ct, [a], out, p, _needs, avals) => {
      const { m, n, c } = qrDims(avals[0].shape, p.complete);
      qrDifferentiable(m, n, p);
      const { Q, R } = qrUnpack(out!, m, n, c);
      const { Q: gQ, R: gR } = qrUnpack(ct, m, n, c);
      if (m >= n) return [qrTallVjp(Q, R, gQ, gR)];
      const Y = a!.narrow(-1, m, n - m);
      const gV = gR.narrow(-1, m, n - m);
      const gX = qrTallVjp(Q, R.narrow(-1, 0, m), gQ.add(Y.matmul(mT(gV))), gR.narrow(-1, 0, m));
      return [gX.pad([0, n - m]).add(Q.matmul(gV).pad([m, 0]))];
    },
    { saveInputs: true, saveOutput: true },
  ),
  batch: batchAll<QrParams>(),
};

function qrDifferentiable(m: number, n: number, p: QrParams): void {
  if (p.complete && m > n) {
    throw new AutodiffError(
      `linalg.qr: the QR decomposition is not differentiable when mode='complete' and nrows > ncols ` +
        `(got ${m} x ${n}): Q's last ${m - n} columns are not determined by the input; use mode='reduced'`,
    );
  }
}

// ---- eigh ------------------------------------------------------------------------------------------------------

export interface EighParams {
  /** Read the lower triangle (UPLO "L"), else the upper. */
  readonly lower: boolean;
}

/**
 * Symmetric eigendecomposition: [..., n, n] -> packed [..., n+1, n] (eigenvalues ascending in row 0,
 * eigenvectors as the columns of rows 1..n). With P = V^T sym(dA) V and E[i, j] = w_j - w_i: dw = diag(P),
 * dV = V (offdiag(P) / E); reverse: dA-bar = V (diag(w-bar) + skew(V^T V-bar) / E) V^T with
 * skew(K) = (K - K^T) / 2 (PyTorch's linalg_eig_backward for Hermitian input). Zero gaps: `safeGaps`.
 */
export const eighP: Primitive<EighParams> = {
  name: "eigh",
  abstract([a]) {
    checkFloatMatrix("eigh", a, true);
    const n = a.shape[a.shape.length - 1];
    return { shape: [...a.shape.slice(0, -2), n + 1, n], dtype: a.dtype };
  },
  impl([a], p, out) {
    const o = allocOut(out);
    kernels().eigh(viewOf(a), p.lower, o._data!);
    return o;
  },
  derivative: rule<EighParams>(
    (_xs, [ta], out) => {
      const n = out.shape[out.shape.length - 1];
      const w = out.narrow(-2, 0, 1);
      const V = out.narrow(-2, 1, n);
      const E = w.sub(mT(w));
      const P = mT(V)
        .matmul(sym(ta as Tensor))
        .matmul(V);
      const dV = V.matmul(offDiag(P).div(safeGaps(E, null)));
      return placeAt(diagRow(P), out.shape, 0).add(placeAt(dV, out.shape, 1));
    },
    (ct, _xs, out) => {
      const n = out!.shape[out!.shape.length - 1];
      const w = out!.narrow(-2, 0, 1);
      const V = out!.narrow(-2, 1, n);
      const E = w.sub(mT(w));
      const K = mT(V).matmul(ct.narrow(-2, 1, n));
      const gaps = safeGaps(E, allZero(K));
      const inner = K.sub(mT(K))
        .mul(0.5)
        .div(gaps)
        .add(diagEmbed(ct.narrow(-2, 0, 1)));
      return [V.matmul(inner).matmul(mT(V))];
    },
    { saveInputs: false, saveOutput: true },
  ),
  batch: batchAll<EighParams>(),
};

// ---- svd -------------------------------------------------------------------------------------------------------

export interface SvdParams {
  /** U is m x m and Vh n x n (else m x k and k x n, k = min(m, n)). */
  readonly full: boolean;
}

function svdDims(shape: readonly number[], full: boolean) {
  const m = shape[shape.length - 2];
  const n = shape[shape.length - 1];
  const k = Math.min(m, n);
  return { m, n, k, ku: full ? m : k, kv: full ? n : k };
}

/** U, S (as a row [..., 1, k]) and Vh from a packed svd output. */
export function svdUnpack(
  packed: Tensor,
  m: number,
  n: number,
  full: boolean,
): { U: Tensor; S: Tensor; Vh: Tensor } {
  const { k, ku, kv } = svdDims([m, n], full);
  return { U: block(packed, 0, m, ku), S: block(packed, m, 1, k), Vh: block(packed, m + 1, kv, n) };
}

/**
 * SVD: [..., m, n] -> packed U, S, Vh (layout on LinalgKernels.svd). With k = min(m, n), U and V the first k
 * singular vectors, P = U^T dA V and E[i, j] = s_j^2 - s_i^2 (JAX's svd_jvp_rule, PyTorch's svd_backward):
 * dS = diag(P), dU = U (offdiag(P S + S P^T) / E) + (I - U U^T) dA V S^-1 (m > k),
 * dV = V (offdiag(S P + P^T S) / E) + (I - V V^T) dA^T U S^-1 (n > k); reverse:
 * dA-bar = U (((J - J^T) S + S (K - K^T)) / E + diag(S-bar)) V^T + (I - U U^T) U-bar S^-1 V^T (m > k)
 * + U S^-1 V-bar^T (I - V V^T) (n > k), J = U^T U-bar, K = V^T V-bar. Zero gaps: `safeGaps`.
 */
export const svdP: Primitive<SvdParams> = {
  name: "svd",
  abstract([a], p) {
    checkFloatMatrix("svd", a, false);
    const { m, n, ku, kv } = svdDims(a.shape, p.full);
    return { shape: [...a.shape.slice(0, -2), m + 1 + kv, Math.max(ku, n)], dtype: a.dtype };
  },
  impl([a], p, out) {
    const o = allocOut(out);
    kernels().svd(viewOf(a), p.full, o._data!);
    return o;
  },
  derivative: rule<SvdParams>(
    ([a], [ta], out, p) => {
      const { m, n, k } = svdDims(a.shape, p.full);
      if (p.full && m !== n) {
        throw new AutodiffError(
          `linalg.svd: forward-mode derivative with fullMatrices and a ${m} x ${n} input is not defined (the ` +
            `extra singular vectors are not determined by the input); use fullMatrices: false`,
        );
      }
      const { U: Uf, S, Vh: Vhf } = svdUnpack(out, m, n, p.full);
      const U = Uf.narrow(-1, 0, k);
      const V = mT(Vhf.narrow(-2, 0, k));
      const dA = ta as Tensor;
      const St = mT(S);
      const S2 = S.mul(S);
      const E = S2.sub(mT(S2));
      const P = mT(U).matmul(dA).matmul(V);
      const gaps = safeGaps(E, null);
      let dU = U.matmul(offDiag(P.mul(S).add(St.mul(mT(P)))).div(gaps));
      let dV = V.matmul(offDiag(St.mul(P).add(mT(P).mul(S))).div(gaps));
      if (m > k) {
        const dAV = dA.matmul(V);
        dU = dU.add(dAV.sub(U.matmul(mT(U).matmul(dAV))).div(S));
      }
      if (n > k) {
        const dAU = mT(dA).matmul(U);
        dV = dV.add(dAU.sub(V.matmul(mT(V).matmul(dAU))).div(S));
      }
      return placeAt(dU, out.shape, 0)
        .add(placeAt(diagRow(P), out.shape, m))
        .add(placeAt(mT(dV), out.shape, m + 1));
    },
    (ct, _xs, out, p, _needs, avals) => {
      const { m, n, k } = svdDims(avals[0].shape, p.full);
      const { U: Uf, S, Vh: Vhf } = svdUnpack(out!, m, n, p.full);
      const { U: gUf, S: gS, Vh: gVhf } = svdUnpack(ct, m, n, p.full);
      const U = Uf.narrow(-1, 0, k);
      const V = mT(Vhf.narrow(-2, 0, k));
      const gU = gUf.narrow(-1, 0, k);
      const gV = mT(gVhf.narrow(-2, 0, k));
      const St = mT(S);
      const S2 = S.mul(S);
      const E = S2.sub(mT(S2));
      const J = mT(U).matmul(gU);
      const K = mT(V).matmul(gV);
      const unused = allZero(J, K);
      const inner = J.sub(mT(J))
        .mul(S)
        .add(St.mul(K.sub(mT(K))))
        .div(safeGaps(E, unused))
        .add(diagEmbed(gS));
      let gA = U.matmul(inner).matmul(mT(V));
      if (m > k) gA = gA.add(gU.sub(U.matmul(J)).div(safeS(S, unused)).matmul(mT(V)));
      if (n > k) gA = gA.add(U.matmul(mT(gV.sub(V.matmul(K))).div(mT(safeS(S, unused)))));
      return [gA];
    },
    { saveInputs: false, saveOutput: true },
  ),
  batch: batchAll<SvdParams>(),
};

// ---- det -------------------------------------------------------------------------------------------------------

/**
 * The cofactor matrix of a (d det = <cof, dA>): det(a) a^-T where det(a) != 0, else from the SVD,
 * det(U) det(V) U diag(prod_{j != i} s_j) V^T (det(U) det(V) = +-1 is taken as a constant).
 */
function cofactor(a: Tensor, d: Tensor): Tensor {
  const n = a.shape[a.shape.length - 1];
  const dm = d.unsqueeze(-1).unsqueeze(-1);
  const byInverse = dm.mul(mT(luSolve(a, eyeOf(n, a.dtype).expand(a.shape))));
  const { U, S, Vh } = svdUnpack(svd(a, false), n, n, false);
  const I = eyeOf(n, a.dtype);
  // row i of M holds s_j off the diagonal and 1 on it, so its product is prod_{j != i} s_j
  const M = S.expand(a.shape).mul(I.neg().add(1)).add(I);
  const adjS = M.prod(-1).unsqueeze(-2);
  const sgn = det(U.detach()).mul(det(Vh.detach())).unsqueeze(-1).unsqueeze(-1);
  const bySvd = U.mul(adjS).matmul(Vh).mul(sgn);
  return where(dm.ne(0).expand(a.shape), byInverse, bySvd);
}

/** Determinant of [..., n, n] (from LU with partial pivoting): [...]. Derivative: the cofactor matrix. */
export const detP: Primitive<null> = {
  name: "det",
  abstract([a]) {
    checkFloatMatrix("det", a, true);
    return { shape: a.shape.slice(0, -2), dtype: a.dtype };
  },
  impl([a], _p, out) {
    const o = allocOut(out);
    kernels().det(viewOf(a), o._data!);
    return o;
  },
  derivative: rule<null>(
    ([a], [ta], d) =>
      cofactor(a, d)
        .mul(ta as Tensor)
        .sum([-2, -1]),
    (ct, [a], d) => [cofactor(a!, d!).mul(ct.unsqueeze(-1).unsqueeze(-1))],
    { saveInputs: true, saveOutput: true },
  ),
  batch: batchAll<null>(),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
// biome-ignore format: rows read better than one entry per line
export const linalgPrimitives = {
  lu: luP, triangularSolve: triangularSolveP, cholesky: choleskyP, qr: qrP, eigh: eighP, svd: svdP, det: detP,
};

// Binders.
export function lu(a: Tensor): Tensor {
  return bind(luP, [a], null);
}
export function cholesky(a: Tensor, op: string | null = "linalg.cholesky"): Tensor {
  return bind(choleskyP, [a], { op });
}
export function qr(a: Tensor, complete: boolean): Tensor {
  return bind(qrP, [a], { complete });
}
export function eigh(a: Tensor, lower: boolean): Tensor {
  return bind(eighP, [a], { lower });
}
export function svd(a: Tensor, full: boolean): Tensor {
  return bind(svdP, [a], { full });
}
export function det(a: Tensor): Tensor {
  return bind(detP, [a], null);
}
