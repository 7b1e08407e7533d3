import { check, close, done, expectThrow, f64, fdGrad, flat } from "./h.ts";
import {
  cond,
  foriLoop,
  getBackend,
  grad,
  hessian,
  jacfwd,
  jacrev,
  jit,
  jvp,
  ones,
  randn,
  scan,
  switchCase,
  tensor,
  type Tensor,
  vmap,
  whileLoop,
  zeros,
  checkpoint,
  manualSeed,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
manualSeed(9);
const x = randn([3], f64),
  X = randn([4, 3], f64);
const wl = (a: Tensor) =>
  whileLoop(
    ([i, _v]: [Tensor, Tensor]) => i.lt(3),
    ([i, v]: [Tensor, Tensor]) => [i.add(1), v.sin().mul(v)] as [Tensor, Tensor],
    [tensor(0, { dtype: "int32" }), a] as [Tensor, Tensor],
  )[1];
const wm = (a: Tensor) => {
  let v = a;
  for (let i = 0; i < 3; i++) v = v.sin().mul(v);
  return v;
};
check("jacfwd(jacfwd(while)) == hessian of unrolled", () => {
  const H = jacfwd(jacfwd((a: Tensor) => wl(a).sum()))(x) as Tensor;
  close(H, hessian((a: Tensor) => wm(a).sum())(x) as Tensor, 1e-12);
});
check("jit(jacfwd(while))", () => close(jit(jacfwd(wl))(x) as Tensor, jacfwd(wm)(x) as Tensor, 1e-13));
expectThrow("jacrev(while) error", () => jacrev(wl)(x), /whileLoop.*scan/s);
expectThrow("hessian(while) error", () => hessian((a: Tensor) => wl(a).sum())(x), /whileLoop.*scan/s);
check("while closing over batched value under vmap", () => {
  const f = (lim: Tensor) =>
    whileLoop(
      (v: Tensor) => v.sum().lt(lim),
      (v: Tensor) => v.mul(2),
      ones([2], f64),
    );
  const r = vmap(jit(f))(tensor([1, 5, 40], f64)) as Tensor;
  close(
    r,
    tensor(
      [
        [1, 1],
        [4, 4],
        [32, 32],
      ],
      f64,
    ),
    0,
  );
});
check("cond with int operand under grad", () => {
  const f = (a: Tensor) =>
    cond(
      a.sum().gt(0),
      (v: Tensor, n: Tensor) => v.mul(n.to("float64")),
      (v: Tensor, n: Tensor) => v.div(n.to("float64")),
      a,
      tensor(3, { dtype: "int32" }),
    ).sum();
  close(jit(grad(f))(x) as Tensor, fdGrad(f, x), 1e-6);
});
check("switch single branch", () =>
  close(
    jit((a: Tensor) => switchCase(tensor(5, { dtype: "int32" }), [(v: Tensor) => v.exp()], a))(x),
    x.exp(),
    0,
  ),
);
expectThrow("switch zero branches", () => switchCase(tensor(0, { dtype: "int32" }), [], x), /branch/i);
check("cond bool python pred under jit retraces? ", () => {
  const g = jit((a: Tensor, b: boolean) =>
    cond(
      b,
      (v: Tensor) => v.exp(),
      (v: Tensor) => v.sin(),
      a,
    ),
  );
  close(g(x, true), x.exp(), 0);
  close(g(x, false), x.sin(), 0);
  return `traces ${g.traceCount}`;
});
check("scan over a pytree of xs with length 0 under vmap(grad)", () => {
  const f = (a: Tensor) =>
    scan((c: Tensor, e: { p: Tensor }) => [c.mul(e.p), null], a, { p: zeros([0, 3], f64) })[0].sum();
  close(vmap(grad(f))(X) as Tensor, ones([4, 3], f64), 0);
});
check("scan reverse ys alignment", () => {
  const [, ys] = jit((a: Tensor) =>
    scan((c: Tensor, e: Tensor) => [c.add(e), c.add(e)], zeros([], f64), a, { reverse: true }),
  )(tensor([1, 2, 3], f64)) as Tensor[];
  close(ys, tensor([6, 5, 3], f64), 0);
});
check("scan with int xs and float carry, grad wrt carry", () => {
  const f = (a: Tensor) =>
    scan(
      (c: Tensor, i: Tensor) => [c.mul(i.to("float64").add(1)), null],
      a,
      tensor([1, 2, 3], { dtype: "int32" }),
    )[0].sum();
  close(grad(jit(f))(x) as Tensor, ones([3], f64).mul(24), 0);
});
check("scan where ys is an int tensor", () => {
  const [, ys] = jit((a: Tensor) => scan((c: Tensor, e: Tensor) => [c.add(e), c.gt(1)], zeros([], f64), a))(
    tensor([1, 2, 3], f64),
  ) as Tensor[];
  return `${ys.dtype} ${flat(ys)}`;
});
check("grad through scan with ys of int and float", () => {
  const f = (a: Tensor) => {
    const [c, ys] = scan((c: Tensor, e: Tensor) => [c.mul(e), { f: c.sin(), b: c.gt(0) }], ones([], f64), a);
    return c.add(ys.f.sum());
  };
  close(grad(jit(f))(x) as Tensor, fdGrad(f, x), 1e-6);
});
check("checkpoint with pytree args under jit(grad)", () => {
  const ck = checkpoint((p: { a: Tensor; b: Tensor }) => p.a.mul(p.b).sin());
  const f = (a: Tensor) => ck({ a, b: a.mul(2) }).sum();
  close(jit(grad(f))(x) as Tensor, fdGrad(f, x), 1e-6);
});
check("nested jit(checkpoint(jit(scan))) grad", () => {
  const f = (a: Tensor) =>
    checkpoint(jit((b: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e).sin(), null], b, X)[0]))(a).sum();
  close(jit(grad(f))(x) as Tensor, fdGrad(f, x), 1e-6);
});
check("vmap of foriLoop with batched upper bound", () => {
  const f = (n: Tensor, a: Tensor) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.mul(2), a);
  const r = vmap(f)(tensor([0, 1, 3], { dtype: "int32" }), ones([3, 2], f64)) as Tensor;
  close(
    r,
    tensor(
      [
        [1, 1],
        [2, 2],
        [8, 8],
      ],
      f64,
    ),
    0,
  );
});
check("jvp of foriLoop with traced bound under jit", () => {
  const f = jit((a: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.sin(), a));
  const [, t] = jvp((a: Tensor) => f(a, 3), [x], [ones([3], f64)]) as Tensor[];
  const [, t2] = jvp((a: Tensor) => a.sin().sin().sin(), [x], [ones([3], f64)]) as Tensor[];
  close(t, t2, 1e-14);
});
done();
