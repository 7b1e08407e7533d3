/**
 * split / chunk as one call whose reverse mode concatenates the pieces' cotangents (ops/shape.ts, as PyTorch's
 * SplitBackward): gradients of used and unused pieces, uneven sections and empty ones, against the slices' own
 * derivatives; JVP and VJP against central differences in float64, second order (hessian), a second backward
 * pass without retainGraph (the call saves nothing), and jit and vmap compositions against eager.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { grad, gradCheck, hessian, jit, type Tensor, tensor, vmap } from "../src/index.ts";

const F64 = { dtype: "float64" as const };
const close = (a: Tensor, b: Tensor, tol: number, what: string) => {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  for (let i = 0; i < x.length; i++)
    assert.ok(Math.abs(x[i] - y[i]) <= tol, `${what}[${i}]: ${x[i]} vs ${y[i]}`);
};
const x0 = () =>
  tensor(
    Float64Array.from({ length: 3 * 7 }, (_, i) => Math.sin(i + 1)),
    { ...F64, shape: [3, 7] },
  );

// f uses pieces 0 and 2 of an uneven split along dim 1 (sizes 3, 3, 1) nonlinearly; piece 1 unused
const f = (x: Tensor) => {
  const [a, , c] = x.split(3, 1);
  return a.mul(a).sum().add(c.exp().sum());
};
// the same through narrow, the slices' own rules
const fNarrow = (x: Tensor) => {
  const a = x.narrow(1, 0, 3);
  const c = x.narrow(1, 6, 1);
  return a.mul(a).sum().add(c.exp().sum());
};

test("split: the gradient equals the slices' (zeros for the unused piece), first and second order", () => {
  const x = x0();
  const g = grad(f)(x) as Tensor;
  close(g, grad(fNarrow)(x) as Tensor, 1e-14, "grad");
  const gd = g.dataSync();
  for (let r = 0; r < 3; r++) for (let c = 3; c < 6; c++) assert.equal(gd[r * 7 + c], 0, "unused piece");
  close(hessian(f)(x) as Tensor, hessian(fNarrow)(x) as Tensor, 1e-13, "hessian");
  gradCheck(f, [x]);
  // chunk into 4 along dim 0 of a [7, 3]: sections 2, 2, 2, 1; every piece used with a different weight
  const y = x.reshape([7, 3]);
  const h = (t: Tensor) =>
    t
      .chunk(4, 0)
      .map((p, i) =>
        p
          .mul(i + 1)
          .tanh()
          .sum(),
      )
      .reduce((a, b) => a.add(b));
  gradCheck(h, [y]);
  // sections with an empty one
  const e = (t: Tensor) => {
    const [p, q, r] = t.split([2, 0, 5], 1);
    return p.sin().sum().add(r.square().sum()).add(q.sum());
  };
  gradCheck(e, [x]);
});

test("split: eager backward, a second pass without retainGraph, and leaves of the pieces' consumers", () => {
  const x = x0();
  x.requiresGrad = true;
  const [a, b] = x.split([4, 3], 1);
  a.square().sum().backward();
  const g1 = x.grad!.clone();
  // the split node saved nothing: a second backward through it (and through b this time) works, as in PyTorch
  b.mul(3).sum().backward();
  const want = (
    grad((t: Tensor) =>
      t
        .narrow(1, 0, 4)
        .square()
        .sum()
        .add(t.narrow(1, 4, 3).mul(3).sum()),
    )(x0()) as Tensor
  ).dataSync();
  const got = x.grad!.dataSync();
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) < 1e-14, `accumulated grad[${i}]`);
  assert.notDeepEqual(Array.from(g1.dataSync()), Array.from(got));
});

test("split under jit and vmap equals eager", () => {
  const x = x0();
  const gJit = jit(grad(f))(x) as Tensor;
  close(gJit, grad(f)(x) as Tensor, 1e-14, "jit(grad)");
  const gOfJit = grad(jit(f))(x) as Tensor;
  close(gOfJit, grad(f)(x) as Tensor, 1e-14, "grad(jit)");
  // per-row gradients: vmap over dim 0 of a function of one row [7] split into 3, 3, 1
  const row = (r: Tensor) => {
    const [a, , c] = r.split(3, 0);
    return a.mul(a).sum().add(c.exp().sum());
  };
  const perRow = vmap(grad(row))(x) as Tensor;
  for (let i = 0; i < 3; i++)
    close(
      perRow.narrow(0, i, 1).reshape([7]),
      grad(row)(x.narrow(0, i, 1).reshape([7])) as Tensor,
      1e-14,
      `vmap row ${i}`,
    );
});
