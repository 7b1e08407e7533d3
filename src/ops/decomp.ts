/**
 * `cr.linalg`: PyTorch 1.13's torch.linalg names and semantics for solve, inv, det, slogdet, cholesky, qr,
 * eigh, eigvalsh, svd and svdvals. Every op works on the last two axes and batches over the leading ones
 * (solve broadcasts the batch shapes of its operands), on float32 and float64 tensors. Built on the primitives
 * of src/prims/linalg.ts (lu, triangularSolve, cholesky, qr, eigh, svd, det); solve and inv are LU followed by
 * two triangular solves, slogdet reads the LU factors. See docs/linalg.md for the derivative conventions.
 */
import { DTypeError, ShapeError } from "../errors.ts";
import * as X from "../prims/lax.ts";
import { broadcastShapes, fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { eye, zeros } from "./creation.ts";
import { where } from "./math.ts";

const L = X.linalg;

/** Check a float32/float64 tensor of at least 2 dims (square ones with `square`), naming the op. */
function checkMatrix(op: string, a: Tensor, square: boolean, what = "A"): void {
  if (a.dtype !== "float32" && a.dtype !== "float64") {
    throw new DTypeError(
      `${op}: expected a float32 or float64 tensor as ${what}, got ${a.dtype} (shape ${fmtShape(a.shape)})`,
    );
  }
  if (a.ndim < 2) {
    throw new ShapeError(
      `${op}: ${what} must have at least 2 dimensions (a matrix or a batch of matrices), got shape ${fmtShape(a.shape)}`,
    );
  }
  const m = a.shape[a.ndim - 2];
  const n = a.shape[a.ndim - 1];
  if (square && m !== n) {
    throw new ShapeError(
      `${op}: ${what} must be batches of square matrices, but they are ${m} by ${n} matrices (shape ${fmtShape(a.shape)})`,
    );
  }
}

/** A pair readable as `[a, b]` or by name (PyTorch's namedtuples). */
function named<K1 extends string, K2 extends string>(
  k1: K1,
  a: Tensor,
  k2: K2,
  b: Tensor,
): [Tensor, Tensor] & { readonly [k in K1 | K2]: Tensor } {
  return Object.assign([a, b] as [Tensor, Tensor], { [k1]: a, [k2]: b } as { [k in K1 | K2]: Tensor });
}

export interface SolveOpts {
  /** Solve A X = B (default); false solves X A = B. */
  left?: boolean;
}

/** A and B as the batched matrices luSolve takes (solve's shape rules), and how to shape its result back. */
function solveOperands(
  op: string,
  A: Tensor,
  B: Tensor,
  left: boolean,
): [Tensor, Tensor, (x: Tensor) => Tensor] {
  checkMatrix(op, A, true);
  if (B.dtype !== A.dtype) {
    throw new DTypeError(
      `${op}: expected A and B to have the same dtype, but found A of type ${A.dtype} and B of type ${B.dtype}`,
    );
  }
  const n = A.shape[A.ndim - 1];
  const vector = B.ndim === 1 || (B.ndim === A.ndim - 1 && shapesEqual(B.shape, A.shape.slice(0, -1)));
  let b = vector ? B.unsqueeze(-1) : B;
  if (b.ndim < 2) {
    throw new ShapeError(`${op}: B must have at least 1 dimension, got shape ${fmtShape(B.shape)}`);
  }
  let a = A;
  if (!left) {
    a = L.mT(A);
    if (!vector) b = L.mT(b);
  }
  if (b.shape[b.ndim - 2] !== n) {
    throw new ShapeError(
      `${op}: incompatible shapes of A and B for the equation ${left ? "AX = B" : "XA = B"} ` +
        `(${fmtShape(A.shape)} and ${fmtShape(B.shape)})`,
    );
  }
  const batch = broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
  const ab = X.broadcast(a, [...batch, n, n]);
  const bb = X.broadcast(b, [...batch, ...b.shape.slice(-2)]);
  const back = (x: Tensor) => (vector ? x.squeeze(-1) : left ? x : L.mT(x));
  return [ab, bb, back];
}

/**
 * The solution X of A X = B (torch.linalg.solve): A [*, n, n], B [*, n, k] or a vector [*, n] (B 1-d, or B's
 * shape is A's without its last dim), batch shapes broadcast; A and B of one float dtype. LU with partial
 * pivoting and two triangular solves; an exactly singular A (a zero pivot) is a LinAlgError naming the batch
 * element, as PyTorch's. `left: false` solves X A = B.
 */
export function solve(A: Tensor, B: Tensor, opts: SolveOpts = {}): Tensor {
  const op = "linalg.solve";
  const [a, b, back] = solveOperands(op, A, B, opts.left ?? true);
  return back(L.luSolve(a, b, op));
}

/** The inverse of a square matrix (torch.linalg.inv); a LinAlgError if it is singular. */
export function inv(A: Tensor): Tensor {
  const op = "linalg.inv";
  checkMatrix(op, A, true);
  const n = A.shape[A.ndim - 1];
  return L.luSolve(A, L.eyeOf(n, A.dtype).expand(A.shape), op);
}

// ---- the *Ex variants: an info tensor instead of an error ------------------------------------------------------

/** A result with LAPACK's info per matrix, readable as `[result, info]` or by name. */
export type WithInfo<K extends string> = [Tensor, Tensor] & { readonly [k in K | "info"]: Tensor };

export interface ExOpts {
  /**
   * Raise the LinAlgError of the plain function (naming this one) where info is not zero, as PyTorch's
   * `check_errors=True` (default false: never an error). On the webgpu backend, where the values stay on the
   * device, the error is raised when a value computed from the result is read (docs/linalg.md).
   */
  checkErrors?: boolean;
}

/** The diagonals of [*, n, n] as [*, n] (exact: other entries are dropped, not multiplied by zero). */
function diagonalOf(x: Tensor): Tensor {
  const n = x.shape[x.ndim - 1];
  return where(eye(n, n, { dtype: "bool" }), x, zeros([], { dtype: x.dtype })).sum(-1);
}

/** LAPACK's info along the last axis of a bool mask: 1 + the index of the first true entry, 0 where none is (int32). */
function firstTrue(mask: Tensor): Tensor {
  const m = mask.to("int32");
  if (m.size === 0) return zeros(m.shape.slice(0, -1), { dtype: "int32" });
  return m.argmax(-1).add(1).mul(m.max(-1));
}

/** x from LU and two triangular solves (a LinAlgError of `op` where a pivot is zero) and info (its index). */
function luSolveEx(a: Tensor, b: Tensor, op: string | null): [Tensor, Tensor] {
  const { L: lower, U, P } = L.luUnpack(L.lu(a));
  const x = L.triangularSolve(U, L.triangularSolve(lower, P.matmul(b), true, true), false, false, op);
  return [x, firstTrue(diagonalOf(U).eq(0))];
}

/**
 * torch.linalg.solve_ex: solve's result and `info` (int32 [*]): 0, or the 1-based index of the first zero
 * pivot of A's LU factorization (A singular: the result then holds inf/NaN). No error unless `checkErrors`.
 */
export function solveEx(A: Tensor, B: Tensor, opts: SolveOpts & ExOpts = {}): WithInfo<"result"> {
  const op = "linalg.solveEx";
  const [a, b, back] = solveOperands(op, A, B, opts.left ?? true);
  const [x, info] = luSolveEx(a, b, opts.checkErrors ? op : null);
  return named("result", back(x), "info", info) as WithInfo<"result">;
}

/**
 * torch.linalg.inv_ex: inv's result and `info` (int32 [*]): 0, or the 1-based index of the first zero pivot
 * of A's LU factorization (A singular: the inverse then holds inf/NaN). No error unless `checkErrors`.
 */
export function invEx(A: Tensor, opts: ExOpts = {}): WithInfo<"inverse"> {
  const op = "linalg.invEx";
  checkMatrix(op, A, true);
  const n = A.shape[A.ndim - 1];
  const [x, info] = luSolveEx(A, L.eyeOf(n, A.dtype).expand(A.shape), opts.checkErrors ? op : null);
  return named("inverse", x, "info", info) as WithInfo<"inverse">;
}

/**
 * torch.linalg.cholesky_ex: the Cholesky factor and `info` (int32 [*]): 0, or the order of the first leading
 * minor that is not positive-definite; such a matrix's factor is NaN from that column on (PyTorch leaves
 * LAPACK's partial values there). No error unless `checkErrors`. As `cholesky` here, a NaN input fails (info
 * > 0; PyTorch's LAPACK reports 0 and returns NaN).
 */
export function choleskyEx(A: Tensor, opts: CholeskyOpts & ExOpts = {}): WithInfo<"L"> {
  const op = "linalg.choleskyEx";
  checkMatrix(op, A, true);
  const l = L.cholesky(A, opts.checkErrors ? op : null);
  const d = diagonalOf(l);
  const info = firstTrue(d.ne(d));
  return named("L", opts.upper ? L.mT(l) : l, "info", info) as WithInfo<"L">;
}

/**
 * The determinant (torch.linalg.det): [*, n, n] -> [*]. Its gradient is the cofactor matrix, also at a singular
 * matrix (rank n-1 gets its non-zero gradient), as PyTorch 1.13.
 */
export function det(A: Tensor): Tensor {
  checkMatrix("linalg.det", A, true);
  return L.det(A);
}

/** Sign and log of the absolute value of the determinant, readable as `[sign, logabsdet]` or by name. */
export type SignLogAbsDet = [Tensor, Tensor] & { readonly sign: Tensor; readonly logabsdet: Tensor };

/**
 * sign(det A) and log|det A| (torch.linalg.slogdet), from the LU factors: the sign is the permutation's times
 * those of U's diagonal (0 for a singular matrix, with logabsdet -inf), logabsdet the sum of log|U_ii|, so it
 * neither overflows nor underflows where det would.
 */
export function slogdet(A: Tensor): SignLogAbsDet {
  checkMatrix("linalg.slogdet", A, true);
  const { U, P } = L.luUnpack(L.lu(A));
  const n = A.shape[A.ndim - 1];
  const diag = U.mul(L.eyeOf(n, A.dtype)).sum(-1);
  const sign = L.det(P).mul(diag.sign().prod(-1));
  const logabsdet = diag.abs().log().sum(-1);
  return named("sign", sign.detach(), "logabsdet", logabsdet) as SignLogAbsDet;
}

export interface CholeskyOpts {
  /** Return the upper factor U = L^T (A = U^T U) instead of L. */
  upper?: boolean;
}

/**
 * The Cholesky factor of a symmetric positive-definite matrix (torch.linalg.cholesky): lower L with A = L L^T
 * (only A's lower triangle is read), or upper U = L^T with `upper`. A matrix that is not positive-definite is a
 * LinAlgError naming the order of the failing leading minor (and the batch element). Gradients are symmetric
 * (the input is taken as symmetric), as PyTorch's.
 */
export function cholesky(A: Tensor, opts: CholeskyOpts = {}): Tensor {
  checkMatrix("linalg.cholesky", A, true);
  const l = L.cholesky(A, "linalg.cholesky");
  return opts.upper ? L.mT(l) : l;
}

/** Q and R, readable as `[Q, R]` or by name. */
export type QR = [Tensor, Tensor] & { readonly Q: Tensor; readonly R: Tensor };

export interface QrOpts {
  /**
   * "reduced" (default): Q [*, m, k], R [*, k, n], k = min(m, n); "complete": Q [*, m, m], R [*, m, n]; "r": R
   * only (Q is an empty tensor), as PyTorch.
   */
  mode?: "reduced" | "complete" | "r";
}

/**
 * QR decomposition by Householder reflections (torch.linalg.qr): A = Q R with Q's columns orthonormal and R
 * upper triangular, R's diagonal signs as LAPACK's (so Q and R equal PyTorch's). Differentiable except in mode
 * "complete" with m > n (an error, as PyTorch); mode "r" is differentiable here too.
 */
export function qr(A: Tensor, opts: QrOpts = {}): QR {
  const op = "linalg.qr";
  const mode = opts.mode ?? "reduced";
  if (mode !== "reduced" && mode !== "complete" && mode !== "r") {
    throw new RangeError(`${op}: mode must be "reduced", "complete" or "r", got ${String(mode)}`);
  }
  checkMatrix(op, A, false);
  const m = A.shape[A.ndim - 2];
  const n = A.shape[A.ndim - 1];
  const complete = mode === "complete";
  const c = complete ? m : Math.min(m, n);
  const { Q, R } = L.qrUnpack(L.qr(A, complete), m, n, c);
  const q = mode === "r" ? zeros([0], { dtype: A.dtype }) : Q;
  return named("Q", q, "R", R) as QR;
}

/** Eigenvalues and eigenvectors, readable as `[eigenvalues, eigenvectors]` or by name. */
export type Eigh = [Tensor, Tensor] & { readonly eigenvalues: Tensor; readonly eigenvectors: Tensor };

function checkUplo(op: string, uplo: string): boolean {
  if (uplo !== "L" && uplo !== "U" && uplo !== "l" && uplo !== "u") {
    throw new RangeError(`${op}: UPLO must be "L" or "U", got ${String(uplo)}`);
  }
  return uplo === "L" || uplo === "l";
}

/**
 * Eigendecomposition of a symmetric matrix (torch.linalg.eigh): eigenvalues ascending [*, n] and orthonormal
 * eigenvectors as the columns of [*, n, n], with A = V diag(w) V^T. Only the triangle named by UPLO ("L",
 * the default, or "U") is read. Each eigenvector's sign is fixed by making its largest-magnitude entry positive
 * (LAPACK's sign, hence PyTorch's, is unspecified). Gradients: see docs/linalg.md (repeated eigenvalues).
 */
export function eigh(A: Tensor, UPLO: "L" | "U" = "L"): Eigh {
  const op = "linalg.eigh";
  const lower = checkUplo(op, UPLO);
  checkMatrix(op, A, true);
  const n = A.shape[A.ndim - 1];
  const packed = L.eigh(A, lower);
  const w = packed.narrow(-2, 0, 1).squeeze(-2);
  return named("eigenvalues", w, "eigenvectors", packed.narrow(-2, 1, n)) as Eigh;
}

/** The eigenvalues of a symmetric matrix, ascending (torch.linalg.eigvalsh). */
export function eigvalsh(A: Tensor, UPLO: "L" | "U" = "L"): Tensor {
  return eigh(A, UPLO).eigenvalues;
}

/** U, S and Vh, readable as `[U, S, Vh]` or by name. */
export type SVD = [Tensor, Tensor, Tensor] & { readonly U: Tensor; readonly S: Tensor; readonly Vh: Tensor };

export interface SvdOpts {
  /** U [*, m, m] and Vh [*, n, n] (default true, as PyTorch); false: U [*, m, k], Vh [*, k, n], k = min(m, n). */
  fullMatrices?: boolean;
}

/**
 * Singular value decomposition (torch.linalg.svd): A = U diag(S) Vh with S [*, k] descending. The first k
 * columns of U are signed so that their largest-magnitude entry is positive (and Vh's rows to match); singular
 * vectors are determined only up to such signs (and within repeated singular values), so compare results with
 * gauge-invariant quantities. Gradients: see docs/linalg.md.
 */
export function svd(A: Tensor, opts: SvdOpts = {}): SVD {
  checkMatrix("linalg.svd", A, false);
  const full = opts.fullMatrices ?? true;
  const m = A.shape[A.ndim - 2];
  const n = A.shape[A.ndim - 1];
  const { U, S, Vh } = L.svdUnpack(L.svd(A, full), m, n, full);
  const s = S.squeeze(-2);
  return Object.assign([U, s, Vh] as [Tensor, Tensor, Tensor], { U, S: s, Vh });
}

/** The singular values, descending (torch.linalg.svdvals): [*, min(m, n)]. */
export function svdvals(A: Tensor): Tensor {
  checkMatrix("linalg.svdvals", A, false);
  return svd(A, { fullMatrices: false }).S;
}
