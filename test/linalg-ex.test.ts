/**
 * The `*Ex` variants of cr.linalg (torch.linalg.cholesky_ex, inv_ex, solve_ex): the result and LAPACK's `info`
 * per matrix instead of a LinAlgError, on every CPU backend (the decompositions run the js kernels there, the
 * info computation the backend's own). Expected values are PyTorch 1.13's:
 *
 *   A = torch.tensor([[[4.,2],[2,3]],[[1.,2],[2,1]],[[9.,3],[3,5]]]);  torch.linalg.cholesky_ex(A)
 *     L = [[[2,0],[1,1.4142]], [[1,0],[2,-3]], [[3,0],[1,2]]], info = [0, 2, 0]  (LAPACK's partial values in
 *     the failing column; here NaN from that column on)
 *   B = torch.tensor([[[1.,2],[2,4]],[[1.,0],[0,1]]]);  torch.linalg.inv_ex(B)
 *     inverse = [[[-inf, inf], [inf, -inf]], [[1, 0], [0, 1]]], info = [2, 0]
 *   torch.linalg.solve_ex(B, torch.ones(2,2,1)): result = [[[-inf], [inf]], [[1], [1]]], info = [2, 0]
 *   torch.linalg.inv_ex(torch.zeros(3,3)): all NaN, info = 1;  solve_ex(zeros(3,3), ones(3)): NaN, info = 1
 *   torch.linalg.cholesky_ex(torch.diag(torch.tensor([1.,-1,1]))).info = 2
 *   with check_errors=True: "(Batch element 1): The factorization could not be completed because the input is
 *   not positive-definite (the leading minor of order 2 is not positive-definite).", "(Batch element 0): The
 *   diagonal element 2 is zero, the inversion could not be completed because the input matrix is singular.",
 *   "(Batch element 0): The solver failed because the input matrix is singular." (after the function's name)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import * as cr from "../src/index.ts";
import { LinAlgError, type Tensor } from "../src/index.ts";

const la = cr.linalg;
const loaded = loadNativeBackend();
const wasm = loadWasmBackend();
const BACKENDS: Backend[] = [
  jsBackend,
  ...("backend" in loaded ? [loaded.backend] : []),
  ...("backend" in wasm ? [wasm.backend] : []),
];

const A = [
  [
    [4, 2],
    [2, 3],
  ],
  [
    [1, 2],
    [2, 1],
  ],
  [
    [9, 3],
    [3, 5],
  ],
];
const B = [
  [
    [1, 2],
    [2, 4],
  ],
  [
    [1, 0],
    [0, 1],
  ],
];

function vals(t: Tensor): number[] {
  return Array.from(t.dataSync(), Number);
}

/** Equal up to `tol` relative, NaN and infinities matching exactly. */
function close(got: Tensor, want: number[], tol: number, what: string): void {
  const g = vals(got);
  assert.equal(g.length, want.length, `${what}: length`);
  want.forEach((w, i) => {
    if (Number.isNaN(w) || !Number.isFinite(w))
      assert.ok(Object.is(g[i], w), `${what}[${i}]: ${g[i]} vs ${w}`);
    else assert.ok(Math.abs(g[i] - w) <= tol * Math.max(1, Math.abs(w)), `${what}[${i}]: ${g[i]} vs ${w}`);
  });
}

function throwsLinAlg(f: () => unknown, message: string): void {
  assert.throws(f, (e: unknown) => e instanceof LinAlgError && e.message === message);
}

for (const backend of BACKENDS) {
  for (const dtype of ["float32", "float64"] as const) {
    const tol = dtype === "float32" ? 1e-6 : 1e-14;
    const t = (x: unknown) => cr.tensor(x as number[], { dtype });
    test(`linalg *Ex: values and info as PyTorch's, no error (${backend.name}, ${dtype})`, () => {
      const prev = getBackend();
      setBackend(backend);
      try {
        const c = la.choleskyEx(t(A));
        assert.equal(c.info.dtype, "int32");
        assert.deepEqual(c.info.shape, [3]);
        assert.deepEqual(vals(c.info), [0, 2, 0]);
        close(c.L, [2, 0, 1, Math.SQRT2, 1, 0, 2, Number.NaN, 3, 0, 1, 2], tol, "choleskyEx L");
        // the good matrices' factors are cholesky's
        assert.deepEqual(vals(c.L.narrow(0, 2, 1)), vals(la.cholesky(t(A).narrow(0, 2, 1))));
        const [U, info] = la.choleskyEx(t(A), { upper: true });
        assert.deepEqual(vals(U), vals(c.L.mT));
        assert.deepEqual(vals(info), [0, 2, 0]);
        const d = la.choleskyEx(
          t([
            [1, 0, 0],
            [0, -1, 0],
            [0, 0, 1],
          ]),
        );
        assert.deepEqual(d.info.shape, []);
        assert.deepEqual(vals(d.info), [2]);

        const inv = la.invEx(t(B));
        assert.deepEqual(vals(inv.info), [2, 0]);
        close(inv.inverse, [-Infinity, Infinity, Infinity, -Infinity, 1, 0, 0, 1], tol, "invEx");
        const s = la.solveEx(t(B), cr.ones([2, 2, 1], { dtype }));
        assert.deepEqual(vals(s.info), [2, 0]);
        close(s.result, [-Infinity, Infinity, 1, 1], tol, "solveEx");
        const z = la.invEx(cr.zeros([3, 3], { dtype }));
        assert.deepEqual(vals(z.info), [1]);
        // PyTorch's LAPACK gives NaN throughout; the triangular solves here give inf and NaN
        assert.ok(vals(z.inverse).every((v) => !Number.isFinite(v)));
        const zs = la.solveEx(cr.zeros([3, 3], { dtype }), cr.ones([3], { dtype }));
        assert.deepEqual(vals(zs.info), [1]);
        assert.deepEqual(zs.result.shape, [3]);
        // X A = B, broadcast batch: as solve, info over the broadcast batch
        const a = t([
          [3, 1],
          [1, 2],
        ]);
        const b = t([[[1, 2]], [[3, 4]]]);
        const r = la.solveEx(a, b, { left: false });
        assert.deepEqual(vals(r.result), vals(la.solve(a, b, { left: false })));
        assert.deepEqual(vals(r.info), [0, 0]);
        // empty batches and 0 x 0 matrices
        assert.deepEqual(la.invEx(cr.zeros([0, 3, 3], { dtype })).info.shape, [0]);
        assert.deepEqual(vals(la.choleskyEx(cr.zeros([2, 0, 0], { dtype })).info), [0, 0]);
      } finally {
        setBackend(prev);
      }
    });

    test(`linalg *Ex with checkErrors: PyTorch's messages naming the function (${backend.name}, ${dtype})`, () => {
      const prev = getBackend();
      setBackend(backend);
      try {
        throwsLinAlg(
          () => la.choleskyEx(t(A), { checkErrors: true }),
          "linalg.choleskyEx: (Batch element 1): The factorization could not be completed because the input is not positive-definite (the leading minor of order 2 is not positive-definite).",
        );
        throwsLinAlg(
          () => la.invEx(t(B), { checkErrors: true }),
          "linalg.invEx: (Batch element 0): The diagonal element 2 is zero, the inversion could not be completed because the input matrix is singular.",
        );
        throwsLinAlg(
          () => la.solveEx(t(B), cr.ones([2, 2, 1], { dtype }), { checkErrors: true }),
          "linalg.solveEx: (Batch element 0): The solver failed because the input matrix is singular.",
        );
        // the plain functions keep their names
        throwsLinAlg(
          () => la.cholesky(t(A)),
          "linalg.cholesky: (Batch element 1): The factorization could not be completed because the input is not positive-definite (the leading minor of order 2 is not positive-definite).",
        );
        // good inputs: no error, info 0
        assert.deepEqual(vals(la.invEx(t(A[0]), { checkErrors: true }).info), [0]);
      } finally {
        setBackend(prev);
      }
    });
  }
}

test("choleskyEx and invEx differentiate as cholesky and inv (float64), and run under jit and vmap", () => {
  const x = cr.tensor(A[2], { dtype: "float64" });
  const w = cr.tensor(
    [
      [1, -2],
      [0.5, 3],
    ],
    { dtype: "float64" },
  );
  const g1 = cr.grad((a: Tensor) => la.choleskyEx(a).L.mul(w).sum())(x);
  const g2 = cr.grad((a: Tensor) => la.cholesky(a).mul(w).sum())(x);
  assert.deepEqual(vals(g1), vals(g2));
  const h1 = cr.grad((a: Tensor) => la.invEx(a).inverse.mul(w).sum())(x);
  const h2 = cr.grad((a: Tensor) => la.inv(a).mul(w).sum())(x);
  assert.deepEqual(vals(h1), vals(h2));
  const f = cr.jit((a: Tensor) => la.choleskyEx(a).info);
  assert.deepEqual(vals(f(cr.tensor(A)) as Tensor), [0, 2, 0]);
  assert.deepEqual(vals(f(cr.tensor(B)) as Tensor), [2, 0]); // B[0] is singular: its minor of order 2 is 0
  const v = cr.vmap((a: Tensor) => la.invEx(a).info)(cr.tensor(B));
  assert.deepEqual(vals(v), [2, 0]);
});
