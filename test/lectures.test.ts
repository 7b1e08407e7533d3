/**
 * The lectures' worked examples, as tests: each derivative the lectures compute by hand, computed here in every
 * mode chainrule has.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { grad, jvp, linspace, randn, type Tensor, tensor, vjp } from "../src/index.ts";

const f64 = { dtype: "float64" as const };
const close = (a: number, b: number, tol = 1e-10) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${a} vs ${b}`);
const num = (t: unknown) => (t as Tensor).item() as number;

describe("lecture examples", () => {
  test("f(x) = 10 log(1 + exp(-2x)): f'(x) = -20 exp(-2x) / (1 + exp(-2x)) in forward, reverse and eager mode", () => {
    const f = (x: Tensor) => x.mul(-2).exp().add(1).log().mul(10);
    for (const x of [-1.5, 0, 0.3, 2]) {
      const want = (-20 * Math.exp(-2 * x)) / (1 + Math.exp(-2 * x));
      close(num(grad(f)(tensor(x, f64))), want);
      close(num(jvp(f, [tensor(x, f64)], [tensor(1, f64)])[1]), want);
      const xt = tensor(x, { dtype: "float64", requiresGrad: true });
      f(xt).backward();
      close(num(xt.grad), want);
      close(num(f(tensor(x, f64))), 10 * Math.log(1 + Math.exp(-2 * x)));
    }
  });

  test("f(x, y) = x^2 + log y: df/dx = 2x, df/dy = 1/y, forward (dual numbers) and reverse", () => {
    const f = (x: Tensor, y: Tensor) => x.square().add(y.log());
    const [x, y] = [tensor(3, f64), tensor(2, f64)];
    const [v, dx] = jvp(f, [x, y], [tensor(1, f64), tensor(0, f64)]);
    close(num(v), 9 + Math.log(2));
    close(num(dx), 6);
    close(num(jvp(f, [x, y], [tensor(0, f64), tensor(1, f64)])[1]), 0.5);
    const [gx, gy] = grad(f, { argnums: [0, 1] })(x, y) as Tensor[];
    close(num(gx), 6);
    close(num(gy), 0.5);
  });

  test("l(x, y) = 3(xy + y): dl/dx = 3y, dl/dy = 3(x + 1)", () => {
    const l = (x: Tensor, y: Tensor) => x.mul(y).add(y).mul(3);
    for (const [x, y] of [
      [2, 5],
      [-1, 0.5],
    ]) {
      const [, back] = vjp(l, tensor(x, f64), tensor(y, f64));
      const [dx, dy] = back(tensor(1, f64)) as Tensor[];
      close(num(dx), 3 * y);
      close(num(dy), 3 * (x + 1));
    }
  });

  test("f(x1, x2) = sin(x1) + x1 x2 (Wikipedia's computation graph): grad = [cos x1 + x2, x1]", () => {
    const f = (x1: Tensor, x2: Tensor) => x1.sin().add(x1.mul(x2));
    const x1 = tensor(0.8, { dtype: "float64", requiresGrad: true });
    const x2 = tensor(-1.3, { dtype: "float64", requiresGrad: true });
    f(x1, x2).backward();
    close(num(x1.grad), Math.cos(0.8) - 1.3);
    close(num(x2.grad), 0.8);
    close(
      num(jvp(f, [tensor(0.8, f64), tensor(-1.3, f64)], [tensor(1, f64), tensor(0, f64)])[1]),
      Math.cos(0.8) - 1.3,
    );
  });

  test("sawtooth network f_l = 2 ReLU(f_{l-1}) + 2 ReLU(-f_{l-1}) - 2: linear pieces double with depth", () => {
    // on [-2, 2] the depth-l network has 2^l linear pieces (2^l - 1 kinks); count them from autodiff slopes
    const xs = linspace(-2 + 1e-7 * Math.PI, 2 - 1e-7 * Math.E, 20001, f64);
    for (let depth = 1; depth <= 6; depth++) {
      const net = (x: Tensor) => {
        let f = x;
        for (let l = 0; l < depth; l++) f = f.relu().mul(2).add(f.neg().relu().mul(2)).sub(2);
        return f;
      };
      const slopes = Array.from((grad((x: Tensor) => net(x).sum())(xs) as Tensor).dataSync());
      let pieces = 1;
      for (let i = 1; i < slopes.length; i++) if (slopes[i] !== slopes[i - 1]) pieces++;
      assert.equal(pieces, 2 ** depth, `depth ${depth}`);
      assert.ok(slopes.every((s) => Math.abs(s) === 2 ** depth));
    }
  });

  test("gradient descent from w = 0 on underdetermined least squares converges to the minimum-norm solution", () => {
    const n = 3;
    const d = 6;
    const A = randn([n, d], f64);
    const b = randn([n], f64);
    const loss = (w: Tensor) => A.matmul(w).sub(b).square().sum().mul(0.5);
    const g = grad(loss);
    let w = tensor(new Float64Array(d), f64);
    for (let it = 0; it < 3000; it++) w = w.sub(g(w).mul(0.05));
    // w* = A^T (A A^T)^{-1} b, with the 3x3 solve done by Gaussian elimination in plain numbers
    const a = A.toArray() as number[][];
    const M = a.map((r) => a.map((s) => r.reduce((acc, v, k) => acc + v * s[k], 0)));
    const rhs = Array.from(b.dataSync());
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const f = M[j][i] / M[i][i];
        for (let k = i; k < n; k++) M[j][k] -= f * M[i][k];
        rhs[j] -= f * rhs[i];
      }
    }
    const z = new Array(n).fill(0);
    for (let i = n - 1; i >= 0; i--) {
      let s = rhs[i];
      for (let k = i + 1; k < n; k++) s -= M[i][k] * z[k];
      z[i] = s / M[i][i];
    }
    const wStar = Array.from({ length: d }, (_, k) => a.reduce((acc, r, i) => acc + r[k] * z[i], 0));
    for (const [k, v] of Array.from(w.dataSync()).entries()) close(v, wStar[k], 1e-6);
    // a different interpolating solution has a larger norm
    close(num(loss(w)), 0, 1e-9);
  });
});
