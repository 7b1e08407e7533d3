/**
 * cr.linalg against PyTorch 1.13 (float64 values and gradients computed by torch and pasted below; the script
 * is in the comment before them), reconstruction identities on batched, non-contiguous, float32 and float64
 * inputs, empty batches and 1 x 1 / 0 x 0 matrices, the degenerate-derivative conventions of docs/linalg.md,
 * vmap and jit, and the errors. JVP/VJP/second-order checks against central differences run through the op
 * table (test/opinfo.ts, rows "linalg.*").
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as cr from "../src/index.ts";
import {
  AutodiffError,
  DTypeError,
  grad,
  LinAlgError,
  ShapeError,
  type Tensor,
  tensor,
} from "../src/index.ts";

const la = cr.linalg;
const f64 = (v: unknown) => tensor(v as number[], { dtype: "float64" });

function vals(t: Tensor): number[] {
  return Array.from(t.dataSync(), Number);
}

function close(got: Tensor | number[], want: number[], tol = 1e-12, what = ""): void {
  const g = Array.isArray(got) ? got : vals(got);
  assert.equal(g.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(g[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])),
      `${what}[${i}]: got ${g[i]}, expected ${want[i]}`,
    );
  }
}

/** max |a - b| over all elements (same shape). */
function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = vals(a);
  const y = vals(b);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
}

function eyeLike(n: number, dtype: "float32" | "float64" = "float64"): Tensor {
  return cr.eye(n, n, { dtype });
}

/** Columns of `got` equal those of `want` up to one sign per column ([..., r, c], flat row-major). */
function closeUpToColumnSigns(got: Tensor, want: number[], cols: number, tol: number, what: string): void {
  const g = vals(got);
  const rows = g.length / cols;
  for (let j = 0; j < cols; j++) {
    const s = Math.sign(g[j] * want[j]) || 1;
    for (let i = 0; i < rows; i++) {
      const k = i * cols + j;
      assert.ok(
        Math.abs(s * g[k] - want[k]) <= tol,
        `${what}[${i}, ${j}]: got ${g[k]}, expected ${want[k]} (sign ${s})`,
      );
    }
  }
}

const gen = new cr.Generator(1313);
const randn = (shape: number[], dtype: "float32" | "float64" = "float64") =>
  cr.randn(shape, { dtype, generator: gen });

/*
 * Expected values: torch 1.13, float64,
 *   G = [[2, -1, 0.5], [1, 3, -2], [0, 1, 1]];  B = [[1, 2], [3, 4], [5, 6]]
 *   A = [[4, 1, 2], [1, 3, .5], [2, .5, 5]]      (symmetric positive-definite)
 *   M = [[1, 2, -1], [0.5, -3, 2], [2, 1, 4], [-1, 0, 1.5]]
 *   torch.linalg.solve(G, B), inv(G), det(G), slogdet(G), cholesky(A), qr(M), qr(M, mode="complete"), qr(M.T),
 *   eigh(A), eigh([[1, 100], [7, 2]], UPLO="U"), svd(M, full_matrices=False)
 * and gradients by .backward() of:
 *   det(G);  solve(G, B).sum();  slogdet(G).logabsdet;  cholesky(A).sum();
 *   Q, R = qr(M): Q.sum() + 0.5 * (R * R).sum() + R.sum();
 *   U, S, Vh = svd(M, full_matrices=False): (U.abs() * arange(3.)).sum() + (S ** 2).sum();
 *   w, V = eigh(A): (V ** 2 * arange(3.)).sum() + w.sum();
 *   eigh(I3).eigenvalues.pow(2).sum();  svdvals(I3).sum()
 */
const G = [
  [2, -1, 0.5],
  [1, 3, -2],
  [0, 1, 1],
];
const B = [
  [1, 2],
  [3, 4],
  [5, 6],
];
const A = [
  [4, 1, 2],
  [1, 3, 0.5],
  [2, 0.5, 5],
];
const M = [
  [1, 2, -1],
  [0.5, -3, 2],
  [2, 1, 4],
  [-1, 0, 1.5],
];
// biome-ignore format: torch's values, as printed
const T = {
  solve: [1.043478260869565, 1.652173913043478, 2.391304347826087, 2.869565217391305, 2.608695652173913, 3.130434782608696],
  inv: [0.434782608695652, 0.130434782608696, 0.043478260869565, -0.08695652173913, 0.173913043478261, 0.391304347826087, 0.08695652173913, -0.173913043478261, 0.608695652173913],
  det: 11.5,
  slogdet: [1.0, 2.442347035369204],
  chol: [2.0, 0.0, 0.0, 0.5, 1.6583123951777, 0.0, 1.0, 0.0, 2.0],
  qrQ: [-0.4, 0.443760156980184, 0.338691708259554, -0.2, -0.887520313960366, 0.039896015759897, -0.8, 0.055470019622523, -0.557695369239417, 0.4, 0.110940039245046, -0.75675102233933],
  qrR: [-2.5, -1.000000000000001, -2.600000000000001, 0.0, 3.60555127546399, -1.830510647543256, 0.0, 0.0, -3.624807687206422],
  qrQc: [-0.4, 0.443760156980184, 0.338691708259554, 0.72688709565733, -0.2, -0.887520313960366, 0.039896015759897, 0.413177928057851, -0.8, 0.055470019622523, -0.557695369239417, -0.214240407141108, 0.4, 0.110940039245046, -0.75675102233933, 0.504995245404039],
  qrRc: [-2.5, -1.000000000000001, -2.600000000000001, 0.0, 3.60555127546399, -1.830510647543256, 0.0, 0.0, -3.624807687206422, 0.0, 0.0, 0.0],
  qrQw: [-0.408248290463863, 0.889000889001334, -0.207390338946085, -0.816496580927726, -0.254000254000381, 0.518475847365213, 0.408248290463863, 0.381000381000571, 0.82956135578434],
  qrRw: [-2.449489742783178, 3.061862178478973, -0.0, 1.020620726159658, 0.0, 1.968501968502952, 3.048003048004573, -0.317500317500477, 0.0, 0.0, 3.421940592610403, 1.451732372622596],
  eighw: [2.096521617296719, 3.072223952005075, 6.831254430698205],
  eighV: [-0.716743066289342, -0.325767273302781, -0.616567158200162, 0.574872624824625, -0.776501881371953, -0.258004444638195, 0.394716153904801, 0.539370477381445, -0.743827026919507],
  eighwU: [-98.5012499921876, 101.5012499921876],
  svdS: [5.120404255385672, 3.803539117996223, 1.677662194633002],
  svdU: [-0.225738560890878, 0.546485954098248, -0.349328433235967, 0.535434473594408, -0.600814555025731, -0.426164046725828, 0.783736421597758, 0.581407608694177, -0.042702013555233, 0.219338204776859, -0.04837525188647, 0.833384898500986],
  svdVh: [0.271485071293512, -0.248817096741371, 0.929723565601062, 0.383135048872042, 0.914102122814376, 0.132758590652621, -0.882894892040142, 0.320167708295899, 0.343495630502016],
  gdet: [5.0, -1.0, 1.0, 1.5, 2.0, -2.0, 0.5, 4.5, 7.0],
  gsolveA: [-1.172022684310019, -2.287334593572779, -2.495274102079395, -0.351606805293006, -0.686200378071834, -0.748582230623819, -2.812854442344045, -5.489603024574669, -5.988657844990549],
  gsolveB: [0.434782608695652, 0.434782608695652, 0.130434782608696, 0.130434782608696, 1.043478260869565, 1.043478260869565],
  gslogdet: [0.434782608695652, -0.08695652173913, 0.08695652173913, 0.130434782608696, 0.173913043478261, -0.173913043478261, 0.043478260869565, 0.391304347826087, 0.608695652173913],
  gchol: [0.219222295180551, 0.023866491566677, 0.049622163855559, 0.023866491566677, 0.301511344577764, 0.301511344577764, 0.049622163855559, 0.301511344577764, 0.25],
  gqr: [-0.43478578906259, 1.956140281910071, -0.904472182497435, 2.391595484087126, -4.033497696671919, 0.789282032559452, 0.750143683532812, 0.592777621628094, 2.78234173813722, -1.488700679953405, 1.124946676830296, 1.054852310056731],
  gsvdmix: [2.24839458056004, 3.783994051999297, -2.223653329623182, 1.06983667767743, -6.055061903596438, 3.734147021501015, 3.827500065660115, 2.128968652406192, 8.120936291080307, -1.691640417341991, -0.100378788734456, 3.221474351865647],
  geighmix: [1.0, 0.0, 0.0, 0.0, 1.0, -0.0, 0.0, -0.0, 1.0],
  geighI: [2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0],
  gsvdI: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
};
const TOL = 1e-13;

describe("linalg forward values against PyTorch 1.13 (float64)", () => {
  test("solve, inv, det, slogdet", () => {
    close(la.solve(f64(G), f64(B)), T.solve, TOL, "solve");
    close(la.inv(f64(G)), T.inv, TOL, "inv");
    close([la.det(f64(G)).item() as number], [T.det], TOL, "det");
    const { sign, logabsdet } = la.slogdet(f64(G));
    close([sign.item() as number, logabsdet.item() as number], T.slogdet, TOL, "slogdet");
    const [s2, l2] = la.slogdet(f64(G).neg());
    close([s2.item() as number, l2.item() as number], [-1, T.slogdet[1]], TOL, "slogdet of -G");
  });
  test("cholesky, lower and upper", () => {
    close(la.cholesky(f64(A)), T.chol, TOL, "cholesky");
    const L = f64(T.chol).reshape(3, 3);
    close(la.cholesky(f64(A), { upper: true }), vals(L.mT.contiguous()), TOL, "cholesky upper");
  });
  test("qr reduced, complete, r and wide: Householder signs equal LAPACK's", () => {
    const { Q, R } = la.qr(f64(M));
    assert.deepEqual(
      [Q.shape, R.shape],
      [
        [4, 3],
        [3, 3],
      ],
    );
    close(Q, T.qrQ, TOL, "Q");
    close(R, T.qrR, TOL, "R");
    const c = la.qr(f64(M), { mode: "complete" });
    assert.deepEqual(
      [c.Q.shape, c.R.shape],
      [
        [4, 4],
        [4, 3],
      ],
    );
    close(c.Q, T.qrQc, TOL, "Q complete");
    close(c.R, T.qrRc, TOL, "R complete");
    const r = la.qr(f64(M), { mode: "r" });
    assert.deepEqual(r.Q.shape, [0]);
    close(r.R, T.qrR, TOL, "R of mode r");
    const [Qw, Rw] = la.qr(f64(M).mT);
    assert.deepEqual(
      [Qw.shape, Rw.shape],
      [
        [3, 3],
        [3, 4],
      ],
    );
    close(Qw, T.qrQw, TOL, "Q wide");
    close(Rw, T.qrRw, TOL, "R wide");
  });
  test("eigh: eigenvalues ascending, eigenvectors up to sign; UPLO", () => {
    const { eigenvalues, eigenvectors } = la.eigh(f64(A));
    close(eigenvalues, T.eighw, TOL, "w");
    closeUpToColumnSigns(eigenvectors, T.eighV, 3, 1e-13, "V");
    // our sign rule: the largest-magnitude entry of each column is positive
    const V = vals(eigenvectors);
    for (let j = 0; j < 3; j++) {
      const col = [V[j], V[3 + j], V[6 + j]];
      const big = col.reduce((b, v) => (Math.abs(v) > Math.abs(b) ? v : b), 0);
      assert.ok(big > 0, `column ${j}: ${col}`);
    }
    // UPLO "U" reads the upper triangle only (the lower 7 is ignored), as PyTorch
    close(
      la.eigvalsh(
        f64([
          [1, 100],
          [7, 2],
        ]),
        "U",
      ),
      T.eighwU,
      TOL,
      "eigvalsh U",
    );
    close(
      la.eigvalsh(
        f64([
          [1, 7],
          [100, 2],
        ]),
        "L",
      ),
      T.eighwU,
      TOL,
      "eigvalsh L",
    );
  });
  test("svd: S exactly, U and Vh up to paired signs; svdvals; fullMatrices default true", () => {
    const { U, S, Vh } = la.svd(f64(M), { fullMatrices: false });
    close(S, T.svdS, TOL, "S");
    closeUpToColumnSigns(U, T.svdU, 3, 1e-13, "U");
    closeUpToColumnSigns(Vh.mT.contiguous(), vals(f64(T.svdVh).reshape(3, 3).mT.contiguous()), 3, 1e-13, "V");
    // the sign flips pair up: U diag(S) Vh reconstructs M
    assert.ok(maxDiff(U.mul(S.unsqueeze(-2)).matmul(Vh), f64(M)) < 1e-13);
    close(la.svdvals(f64(M)), T.svdS, TOL, "svdvals");
    const full = la.svd(f64(M));
    assert.deepEqual([full.U.shape, full.S.shape, full.Vh.shape], [[4, 4], [3], [3, 3]]);
  });
});

describe("linalg gradients against PyTorch 1.13 (float64)", () => {
  test("det, solve, slogdet, cholesky, qr", () => {
    close(grad((g: Tensor) => la.det(g))(f64(G)), T.gdet, TOL, "det");
    const [gA, gB] = grad((a: Tensor, b: Tensor) => la.solve(a, b).sum(), { argnums: [0, 1] })(
      f64(G),
      f64(B),
    ) as Tensor[];
    close(gA, T.gsolveA, TOL, "solve dA");
    close(gB, T.gsolveB, TOL, "solve dB");
    close(grad((g: Tensor) => la.slogdet(g).logabsdet)(f64(G)), T.gslogdet, TOL, "slogdet");
    close(grad((a: Tensor) => la.cholesky(a).sum())(f64(A)), T.gchol, TOL, "cholesky (symmetric gradient)");
    const qrLoss = (m: Tensor) => {
      const { Q, R } = la.qr(m);
      return Q.sum().add(R.mul(R).sum().mul(0.5)).add(R.sum());
    };
    close(grad(qrLoss)(f64(M)), T.gqr, 1e-12, "qr");
  });
  test("svd and eigh with sign-invariant losses", () => {
    const w = tensor([0, 1, 2], { dtype: "float64" });
    const svdLoss = (m: Tensor) => {
      const { U, S } = la.svd(m, { fullMatrices: false });
      return U.abs().mul(w).sum().add(S.pow(2).sum());
    };
    close(grad(svdLoss)(f64(M)), T.gsvdmix, 1e-12, "svd");
    const eighLoss = (a: Tensor) => {
      const { eigenvalues, eigenvectors } = la.eigh(a);
      return eigenvectors.pow(2).mul(w).sum().add(eigenvalues.sum());
    };
    close(grad(eighLoss)(f64(A)), T.geighmix, 1e-12, "eigh");
  });
  test("wide qr and svd, eigh UPLO U, inv, cholesky upper, solve with a broadcast vector", () => {
    // torch 1.13, float64, with W = M.T (3 x 4), w = arange(1., 13.).reshape(3, 4), c9 = arange(9.).reshape(3, 3):
    //   Q, R = qr(W): Q.sum() + (R * w).sum();  U, S, Vh = svd(W, full_matrices=False): (Vh.abs() * w).sum() + S.sum()
    //   (eigh(A, UPLO="U").eigenvalues * [1, -2, 3]).sum();  (inv(G) * c9).sum();  (cholesky(A, upper=True) * c9).sum()
    //   (solve(stack([G, A]), b) * [[1, 2, 3], [4, 5, 6]]).sum() with b = [1, -1, 2] (gradients of both)
    // biome-ignore format: torch's values, as printed
    const want = {
      qrwide: [3.973752752662452, 3.888115338942384, 2.71696762321081, 2.990329882802197, -1.410497853675045, -1.583511150513007, 1.475742800231494, 0.9237218126686, 3.602246788095536, 5.620072523482722, 13.016922452023332, 14.635732479272107],
      svdwide: [1.023824555307173, -0.087269630990485, -0.240004092294813, 0.128654816769925, -0.551771936393234, -0.901577214717933, 0.966067015210583, -1.139880424622032, -1.345933049903618, -0.832708361631548, 1.096805945779195, 2.39672262215153],
      eighU: [1.441937172076661, -0.440722567359896, 1.44436638151019, -0.440722567359896, -0.675732928416423, 1.640287929304039, 1.444366381510189, 1.640287929304039, 1.233795756339761],
      inv: [-0.253308128544423, -0.540642722117202, -0.589792060491494, 0.289224952741021, 0.12476370510397, 0.136105860113422, -3.164461247637051, -3.306238185255198, -3.606805293005672],
      cholU: [0.639767016866645, -0.805289706022173, -0.876889180722205, -0.805289706022173, 1.206045378311055, 1.507556722888818, -0.876889180722205, 1.507556722888818, 2.0],
      solveA: [-0.204158790170132, -0.272211720226843, -0.771266540642722, 0.017013232514178, 0.022684310018904, 0.064272211720227, -1.037807183364839, -1.383742911153119, -3.920604914933837, -0.024018595041322, 0.06198347107438, -0.051136363636364, -0.256198347107438, 0.661157024793388, -0.545454545454545, -0.176136363636364, 0.454545454545455, -0.375],
      solveb: [0.658102766798419, 1.411067193675889, 3.652173913043478],
    };
    const W = f64(M).mT.contiguous();
    const w = cr.arange(1, 13, 1, { dtype: "float64" }).reshape(3, 4);
    const c9 = cr.arange(0, 9, 1, { dtype: "float64" }).reshape(3, 3);
    const qrLoss = (x: Tensor) => {
      const { Q, R } = la.qr(x);
      return Q.sum().add(R.mul(w).sum());
    };
    close(grad(qrLoss)(W), want.qrwide, 1e-12, "qr wide");
    const svdLoss = (x: Tensor) => {
      const { S, Vh } = la.svd(x, { fullMatrices: false });
      return Vh.abs().mul(w).sum().add(S.sum());
    };
    close(grad(svdLoss)(W), want.svdwide, 1e-12, "svd wide");
    const eighLoss = (x: Tensor) =>
      la
        .eigh(x, "U")
        .eigenvalues.mul(f64([1, -2, 3]))
        .sum();
    close(grad(eighLoss)(f64(A)), want.eighU, 1e-12, "eigh U");
    close(grad((x: Tensor) => la.inv(x).mul(c9).sum())(f64(G)), want.inv, 1e-12, "inv");
    close(
      grad((x: Tensor) => la.cholesky(x, { upper: true }).mul(c9).sum())(f64(A)),
      want.cholU,
      1e-12,
      "cholesky upper",
    );
    const [gA, gb] = grad(
      (a: Tensor, b: Tensor) =>
        la
          .solve(a, b)
          .mul(
            f64([
              [1, 2, 3],
              [4, 5, 6],
            ]),
          )
          .sum(),
      { argnums: [0, 1] },
    )(cr.stack([f64(G), f64(A)]), f64([1, -1, 2])) as Tensor[];
    close(gA, want.solveA, 1e-12, "solve batched A");
    close(gb, want.solveb, 1e-12, "solve broadcast b");
  });
  test("repeated eigenvalues / singular values: losses of the values alone stay finite (as PyTorch)", () => {
    close(grad((a: Tensor) => la.eigh(a).eigenvalues.pow(2).sum())(eyeLike(3)), T.geighI, TOL, "eigh at I");
    close(grad((a: Tensor) => la.svdvals(a).sum())(eyeLike(3)), T.gsvdI, TOL, "svdvals at I");
    // batched: the matrix with distinct values is unaffected by its repeated neighbour
    const both = cr.stack([eyeLike(3), f64(A)]);
    const g = grad((a: Tensor) => la.svdvals(a).sum())(both);
    close(g.narrow(0, 0, 1), T.gsvdI, TOL, "svdvals at I, batched");
    const { U, Vh } = la.svd(f64(A));
    close(g.narrow(0, 1, 1), vals(U.matmul(Vh)), 1e-13, "svdvals of A, batched: U Vh");
  });
  test("repeated values and a loss that uses the vectors: NaN, as PyTorch", () => {
    // U diag(S) Vh is gauge-invariant, but at a repeated singular value its vector terms are 0/0 (PyTorch 1.13
    // gives NaN for this loss at I too: python3 -c 'import torch; I = torch.eye(3, dtype=torch.float64,
    // requires_grad=True); U, S, Vh = torch.linalg.svd(I); ((U * S) @ Vh * torch.arange(1., 10.,
    // dtype=torch.float64).reshape(3, 3)).sum().backward(); print(I.grad)' prints a matrix of nan)
    const w = f64([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    const recon = (a: Tensor) => {
      const { U, S, Vh } = la.svd(a);
      return U.mul(S.unsqueeze(-2)).matmul(Vh).mul(w).sum();
    };
    assert.ok(vals(grad(recon)(eyeLike(3))).every(Number.isNaN));
    // away from the repeated values the same loss has its true gradient w
    close(grad(recon)(f64(A)), vals(w), 1e-12, "reconstruction at A");
  });
  test("repeated eigenvalues: a loss that depends on the choice of eigenvectors gets non-finite values", () => {
    // the eigenvectors of diag(1, 1, 2) inside the repeated space are arbitrary; weighting V's entries unevenly
    // makes the loss depend on that choice (PyTorch's gradient is NaN/inf here too)
    const a = f64([
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 2],
    ]);
    const weights = f64([
      [1, 2, 0],
      [3, 4, 0],
      [0, 0, 0],
    ]);
    const g = grad((x: Tensor) => la.eigh(x).eigenvectors.mul(weights).sum())(a);
    assert.ok(
      vals(g).some((v) => !Number.isFinite(v)),
      `expected inf/NaN, got ${vals(g)}`,
    );
  });
  test("det at singular matrices: the cofactor matrix (rank n-1), zeros (rank <= n-2), never NaN", () => {
    // rank 2 (row 2 = 2 x row 1): the cofactors, from the 2 x 2 minors by hand. (PyTorch 1.13 returns zeros
    // here, which is not the derivative: d det(S + t E) / dt at t = 0 is C : E.)
    const S = [
      [1, 2, 3],
      [2, 4, 6],
      [1, 0, 1],
    ];
    const minor = (i: number, j: number) => {
      const r = [0, 1, 2].filter((x) => x !== i);
      const c = [0, 1, 2].filter((x) => x !== j);
      return S[r[0]][c[0]] * S[r[1]][c[1]] - S[r[0]][c[1]] * S[r[1]][c[0]];
    };
    const cof = [0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => (-1) ** (i + j) * minor(i, j) + 0));
    assert.deepEqual(cof, [4, 4, -4, -2, -2, 2, 0, 0, 0]);
    close(grad((x: Tensor) => la.det(x))(f64(S)), cof, 1e-12, "det at rank n-1");
    // diag(0, 1): d det = dA[0][0] (PyTorch 1.13 gives zeros here too)
    close(
      grad((x: Tensor) => la.det(x))(
        f64([
          [0, 0],
          [0, 1],
        ]),
      ),
      [1, 0, 0, 0],
      1e-14,
      "diag(0, 1)",
    );
    // a rank-1 and a zero matrix: all cofactors vanish
    close(grad((x: Tensor) => la.det(x))(cr.ones([3, 3], { dtype: "float64" })), new Array(9).fill(0), 1e-12);
    close(grad((x: Tensor) => la.det(x))(cr.zeros([3, 3], { dtype: "float64" })), new Array(9).fill(0), 0);
    // batched: one singular, one invertible element
    const both = cr.stack([f64(S), f64(G)]);
    close(grad((x: Tensor) => la.det(x).sum())(both), [...cof, ...T.gdet], 1e-12, "batched");
    // and the rank n-1 gradient is the derivative: central differences along a few directions
    const r = cr.gradCheck((x: Tensor) => la.det(x), [f64(S)], { directions: 3 });
    assert.ok(r.ok, r.worst);
  });
});

describe("linalg reconstruction identities (batched, non-contiguous, float32 and float64)", () => {
  for (const dtype of ["float64", "float32"] as const) {
    const tol = dtype === "float64" ? 1e-12 : 2e-5;
    test(`qr: Q R = A, Q^T Q = I, R upper (${dtype})`, () => {
      for (const [shape, mode] of [
        [[2, 5, 3], "reduced"],
        [[3, 5], "reduced"],
        [[2, 4, 4], "complete"],
        [[5, 3], "complete"],
        [[2, 3, 6], "complete"],
      ] as [number[], "reduced" | "complete"][]) {
        const a = randn([...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]], dtype).mT;
        const { Q, R } = la.qr(a, { mode });
        assert.equal(Q.dtype, dtype);
        assert.ok(maxDiff(Q.matmul(R), a) < tol * 10, `${shape} ${mode}: QR`);
        const c = Q.shape[Q.ndim - 1];
        assert.ok(
          maxDiff(Q.mT.matmul(Q), eyeLike(c, dtype).expand(...Q.shape.slice(0, -2), c, c)) < tol * 10,
        );
        assert.ok(maxDiff(R, R.triu()) === 0, "R is upper triangular");
      }
    });
    test(`svd: U S Vh = A, orthonormal U and V, descending S (${dtype})`, () => {
      for (const [shape, full] of [
        [[2, 5, 3], false],
        [[3, 6], false],
        [[2, 5, 3], true],
        [[3, 6], true],
        [[4, 4], true],
      ] as [number[], boolean][]) {
        const a = randn([...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]], dtype).mT;
        const { U, S, Vh } = la.svd(a, { fullMatrices: full });
        const k = S.shape[S.ndim - 1];
        const Uk = U.narrow(-1, 0, k);
        const Vhk = Vh.narrow(-2, 0, k);
        assert.ok(maxDiff(Uk.mul(S.unsqueeze(-2)).matmul(Vhk), a) < tol * 10, `${shape}: USVh`);
        const cu = U.shape[U.ndim - 1];
        const rv = Vh.shape[Vh.ndim - 2];
        assert.ok(
          maxDiff(U.mT.matmul(U), eyeLike(cu, dtype).expand(...U.shape.slice(0, -2), cu, cu)) < tol * 10,
        );
        assert.ok(
          maxDiff(Vh.matmul(Vh.mT), eyeLike(rv, dtype).expand(...Vh.shape.slice(0, -2), rv, rv)) < tol * 10,
        );
        const s = vals(S);
        for (let i = 0; i + 1 < s.length; i++) if ((i + 1) % k !== 0) assert.ok(s[i] >= s[i + 1]);
      }
    });
    test(`eigh: A V = V diag(w), V^T V = I, ascending (${dtype})`, () => {
      const x = randn([3, 5, 5], dtype);
      const a = x.add(x.mT);
      const { eigenvalues: w, eigenvectors: V } = la.eigh(a);
      assert.ok(maxDiff(a.matmul(V), V.mul(w.unsqueeze(-2))) < tol * 20);
      assert.ok(maxDiff(V.mT.matmul(V), eyeLike(5, dtype).expand(3, 5, 5)) < tol * 10);
      const ws = vals(w);
      for (let i = 0; i < ws.length - 1; i++) if ((i + 1) % 5 !== 0) assert.ok(ws[i] <= ws[i + 1]);
    });
    test(`cholesky, solve, inv, det (${dtype})`, () => {
      const x = randn([2, 4, 4], dtype);
      const spd = x.matmul(x.mT).add(eyeLike(4, dtype));
      const L = la.cholesky(spd);
      assert.ok(maxDiff(L, L.tril()) === 0);
      assert.ok(maxDiff(L.matmul(L.mT), spd) < tol * 20);
      const a = randn([2, 4, 4], dtype).add(eyeLike(4, dtype).mul(4)).mT; // non-contiguous
      const b = randn([4, 3], dtype); // broadcast over the batch of a
      assert.ok(maxDiff(a.matmul(la.solve(a, b)), b.expand(2, 4, 3)) < tol * 10);
      assert.ok(maxDiff(la.inv(a).matmul(a), eyeLike(4, dtype).expand(2, 4, 4)) < tol * 10);
      const d = vals(la.det(a));
      const { sign, logabsdet } = la.slogdet(a);
      const sl = vals(sign.mul(logabsdet.exp()));
      for (const [i, v] of d.entries()) assert.ok(Math.abs(v - sl[i]) <= tol * 10 * Math.abs(v));
      // det = product of the eigenvalues for a symmetric matrix
      const e = vals(la.eigvalsh(spd));
      const ds = vals(la.det(spd));
      for (let i = 0; i < 2; i++) {
        const p = e.slice(4 * i, 4 * i + 4).reduce((u, v) => u * v, 1);
        assert.ok(Math.abs(p - ds[i]) <= tol * 10 * Math.abs(p));
      }
    });
  }
  test("rank-deficient SVD: the vectors of zero singular values are completed to an orthonormal basis", () => {
    const a = f64([
      [1, 2, 3, 4],
      [2, 4, 6, 8],
      [1, 0, 1, 0],
      [0, 0, 0, 0],
      [3, 4, 7, 8],
    ]);
    const { U, S, Vh } = la.svd(a);
    const s = vals(S);
    assert.ok(s[2] < 1e-14 && s[3] < 1e-14, `rank 2: ${s}`);
    assert.ok(maxDiff(U.mT.matmul(U), eyeLike(5)) < 1e-13);
    assert.ok(maxDiff(Vh.matmul(Vh.mT), eyeLike(4)) < 1e-13);
    assert.ok(maxDiff(U.narrow(-1, 0, 4).mul(S).matmul(Vh), a) < 1e-13);
  });
  test("a 30 x 30 matrix: solve and svd accurate to rounding", () => {
    const a = randn([30, 30]);
    const b = randn([30, 2]);
    assert.ok(maxDiff(a.matmul(la.solve(a, b)), b) < 1e-11);
    const { U, S, Vh } = la.svd(a);
    assert.ok(maxDiff(U.mul(S).matmul(Vh), a) < 1e-12);
    const x = a.add(a.mT);
    const { eigenvalues: w, eigenvectors: V } = la.eigh(x);
    assert.ok(maxDiff(x.matmul(V), V.mul(w)) < 1e-12);
  });
});

describe("linalg edge shapes", () => {
  test("empty batch", () => {
    const a = cr.zeros([0, 3, 3], { dtype: "float64" });
    assert.deepEqual(la.solve(a, cr.zeros([0, 3, 2], { dtype: "float64" })).shape, [0, 3, 2]);
    assert.deepEqual(la.inv(a).shape, [0, 3, 3]);
    assert.deepEqual(la.det(a).shape, [0]);
    assert.deepEqual(la.slogdet(a).logabsdet.shape, [0]);
    assert.deepEqual(la.cholesky(a).shape, [0, 3, 3]);
    const { Q, R } = la.qr(cr.zeros([0, 4, 3], { dtype: "float64" }));
    assert.deepEqual(
      [Q.shape, R.shape],
      [
        [0, 4, 3],
        [0, 3, 3],
      ],
    );
    const e = la.eigh(a);
    assert.deepEqual(
      [e.eigenvalues.shape, e.eigenvectors.shape],
      [
        [0, 3],
        [0, 3, 3],
      ],
    );
    const s = la.svd(cr.zeros([2, 0, 4, 3], { dtype: "float64" }));
    assert.deepEqual(
      [s.U.shape, s.S.shape, s.Vh.shape],
      [
        [2, 0, 4, 4],
        [2, 0, 3],
        [2, 0, 3, 3],
      ],
    );
    assert.deepEqual(grad((x: Tensor) => la.det(x).sum())(a).shape, [0, 3, 3]);
  });
  test("non-finite entries: NaN decompositions for eigh and svd (only the affected batch element)", () => {
    const a = cr.stack([
      f64([
        [Number.NaN, 1],
        [1, 1],
      ]),
      f64([
        [2, 0],
        [0, 3],
      ]),
    ]);
    const e = la.eigh(a);
    assert.ok(vals(e.eigenvalues.narrow(0, 0, 1)).every(Number.isNaN));
    assert.ok(vals(e.eigenvectors.narrow(0, 0, 1)).every(Number.isNaN));
    close(e.eigenvalues.narrow(0, 1, 1), [2, 3]);
    const s = la.svd(
      a.mul(
        f64([
          [
            [1, Number.POSITIVE_INFINITY],
            [1, 1],
          ],
          [
            [1, 1],
            [1, 1],
          ],
        ]),
      ),
    );
    assert.ok([s.U, s.S, s.Vh].every((t) => vals(t.narrow(0, 0, 1)).every(Number.isNaN)));
    close(s.S.narrow(0, 1, 1), [3, 2]);
  });
  test("1 x 1 and 0 x 0 matrices", () => {
    const a = f64([[[-2]], [[5]]]);
    close(la.inv(a), [-0.5, 0.2]);
    close(la.det(a), [-2, 5]);
    close(la.slogdet(a).sign, [-1, 1]);
    close(la.svdvals(a), [2, 5]);
    close(la.eigvalsh(a), [-2, 5]);
    close(la.cholesky(f64([[9]])), [3]);
    close(la.qr(f64([[-3]])).R, [-3]);
    close(grad((x: Tensor) => la.det(x).sum())(a), [1, 1]);
    // det of a 0 x 0 matrix is 1 (the empty product), as PyTorch
    close(la.det(cr.zeros([2, 0, 0], { dtype: "float64" })), [1, 1]);
    assert.deepEqual(la.inv(cr.zeros([0, 0], { dtype: "float64" })).shape, [0, 0]);
  });
});

describe("linalg under vmap and jit", () => {
  test("vmap over a middle axis equals the batched op", () => {
    const a = randn([4, 3, 5]); // vmap over axis 1: per-example [4, 5] matrices
    const got = cr.vmap((x: Tensor) => la.svdvals(x), { inAxes: 1 })(a);
    const want = la.svdvals(a.permute(1, 0, 2));
    assert.ok(maxDiff(got, want) < 1e-13);
    const sq = randn([3, 4, 4]);
    const g1 = cr.vmap(grad((x: Tensor) => la.det(x)))(sq);
    const g2 = grad((x: Tensor) => la.det(x).sum())(sq);
    assert.ok(maxDiff(g1, g2) < 1e-12);
  });
  test("jit(grad) equals grad, and hessians (forward over reverse) are symmetric and finite", () => {
    const a = randn([3, 3]);
    const I = eyeLike(3);
    const losses: [string, (x: Tensor) => Tensor][] = [
      ["det", (x) => la.det(x)],
      ["slogdet", (x) => la.slogdet(x).logabsdet],
      ["svdvals", (x) => la.svdvals(x).sum()],
      [
        "eigh",
        (x) =>
          la
            .eigh(x.add(x.mT))
            .eigenvectors.pow(2)
            .mul(f64([0, 1, 2]))
            .sum(),
      ],
      ["qr", (x) => la.qr(x).R.pow(2).sum()],
      ["cholesky", (x) => la.cholesky(x.matmul(x.mT).add(I)).sum()],
      ["inv", (x) => la.inv(x).sum()],
    ];
    for (const [name, f] of losses) {
      assert.equal(maxDiff(cr.jit(grad(f))(a), grad(f)(a)), 0, `${name}: jit(grad)`);
      const h = cr.hessian(f)(a) as Tensor;
      assert.deepEqual(h.shape, [3, 3, 3, 3]);
      const hm = h.reshape(9, 9);
      assert.ok(vals(hm).every(Number.isFinite), `${name}: finite`);
      assert.ok(maxDiff(hm, hm.mT) < 1e-10, `${name}: symmetric`);
    }
  });
  test("jit: solve compiles, and a singular matrix is still an error when the program runs", () => {
    const f = cr.jit((a: Tensor, b: Tensor) => la.solve(a, b));
    const a = f64(G);
    close(f(a, f64(B)), T.solve, TOL, "jitted solve");
    assert.throws(() => f(cr.zeros([3, 3], { dtype: "float64" }), f64(B)), LinAlgError);
    assert.ok(String(cr.makeJaxpr((x: Tensor) => la.det(x))(a)).includes("det"));
  });
});

describe("linalg errors", () => {
  test("non-square, too few dims, int dtype, mismatched shapes and dtypes", () => {
    assert.throws(
      () => la.inv(cr.ones([2, 3], { dtype: "float64" })),
      (e: Error) => {
        return (
          e instanceof ShapeError &&
          /linalg\.inv: A must be batches of square matrices, but they are 2 by 3/.test(e.message)
        );
      },
    );
    assert.throws(() => la.det(f64([1, 2])), /linalg\.det: A must have at least 2 dimensions.*\[2\]/);
    assert.throws(
      () => la.cholesky(cr.ones([3, 3], { dtype: "int32" })),
      (e: Error) => {
        return (
          e instanceof DTypeError &&
          /linalg\.cholesky: expected a float32 or float64 tensor as A, got int32/.test(e.message)
        );
      },
    );
    assert.throws(
      () => la.solve(cr.ones([2, 3, 3], { dtype: "float64" }), cr.ones([3, 3, 1], { dtype: "float64" })),
      ShapeError,
    );
    assert.throws(
      () => la.solve(f64(G), cr.ones([4, 1], { dtype: "float64" })),
      /linalg\.solve: incompatible shapes of A and B.*\[3, 3\] and \[4, 1\]/,
    );
    assert.throws(() => la.solve(f64(G), cr.ones([3, 1])), /same dtype.*float64.*float32/);
    assert.throws(() => la.eigh(f64(A), "X" as "L"), /UPLO must be "L" or "U"/);
    assert.throws(() => la.qr(f64(M), { mode: "full" as "r" }), /mode must be/);
  });
  test("singular matrices in solve and inv, naming the batch element (PyTorch's messages)", () => {
    const batch = cr.stack([eyeLike(3), cr.zeros([3, 3], { dtype: "float64" })]);
    assert.throws(
      () => la.inv(batch),
      (e: Error) =>
        e instanceof LinAlgError &&
        e.message ===
          "linalg.inv: (Batch element 1): The diagonal element 1 is zero, the inversion could not be completed because the input matrix is singular.",
    );
    assert.throws(
      () => la.solve(cr.zeros([3, 3], { dtype: "float64" }), f64([1, 1, 1])),
      (e: Error) =>
        e instanceof LinAlgError &&
        e.message === "linalg.solve: The solver failed because the input matrix is singular.",
    );
  });
  test("cholesky of a matrix that is not positive-definite (PyTorch's message)", () => {
    const batch = f64([
      [
        [1, 0],
        [0, 1],
      ],
      [
        [1, 2],
        [2, 1],
      ],
    ]);
    assert.throws(
      () => la.cholesky(batch),
      (e: Error) =>
        e instanceof LinAlgError &&
        e.message ===
          "linalg.cholesky: (Batch element 1): The factorization could not be completed because the input is not positive-definite (the leading minor of order 2 is not positive-definite).",
    );
  });
  test("qr mode complete with m > n and svd's forward mode with full matrices are not differentiable", () => {
    assert.throws(
      () => grad((x: Tensor) => la.qr(x, { mode: "complete" }).Q.sum())(randn([4, 2])),
      (e: Error) =>
        e instanceof AutodiffError &&
        /not differentiable when mode='complete' and nrows > ncols/.test(e.message),
    );
    // complete with m <= n is the reduced decomposition: differentiable
    const r = cr.gradCheck((x: Tensor) => la.qr(x, { mode: "complete" }).R, [randn([2, 4])]);
    assert.ok(r.ok, r.worst);
    assert.throws(
      () => cr.jvp((x: Tensor) => la.svd(x).S, [randn([4, 2])], [randn([4, 2])]),
      /fullMatrices: false/,
    );
    // reverse mode uses the first k columns, as PyTorch: the singular values' gradient is U_k V^T
    const a = randn([4, 2]);
    const g = grad((x: Tensor) => la.svd(x).S.sum())(a);
    const { U, Vh } = la.svd(a, { fullMatrices: false });
    assert.ok(maxDiff(g, U.matmul(Vh)) < 1e-13);
  });
});
