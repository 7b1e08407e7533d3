import { check, close, done, f64 } from "./h.ts";
import {
  cond,
  customVjp,
  foriLoop,
  getBackend,
  grad,
  jit,
  jvp,
  randn,
  scan,
  tensor,
  type Tensor,
  vmap,
  whileLoop,
  stack,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
const X = randn([4, 3], f64),
  x = randn([3], f64);
const wsc = (a: Tensor) =>
  whileLoop(
    ([i, _v]: [Tensor, Tensor]) => i.lt(2),
    ([i, v]: [Tensor, Tensor]) =>
      [
        i.add(1),
        scan(
          (c: Tensor, e: Tensor) => [
            cond(
              e.sum().gt(0),
              (q: Tensor) => q.mul(e).sin(),
              (q: Tensor) => q.add(e).cos(),
              c,
            ),
            null,
          ],
          v,
          X,
        )[0],
      ] as [Tensor, Tensor],
    [tensor(0, { dtype: "int32" }), a] as [Tensor, Tensor],
  )[1];
const wscM = (a: Tensor) => {
  let v = a;
  for (let k = 0; k < 2; k++)
    for (let i = 0; i < 4; i++) {
      const e = X.narrow(0, i, 1).reshape([3]);
      v = e.sum().item() > 0 ? v.mul(e).sin() : v.add(e).cos();
    }
  return v;
};
check("while(scan(cond)) value jit", () => close(jit(wsc)(x), wscM(x), 1e-14));
check("jvp(jit(while(scan(cond))))", () => {
  const v = randn([3], f64);
  const [, t] = jvp(jit(wsc), [x], [v]) as Tensor[];
  const [, t2] = jvp(wscM, [x], [v]) as Tensor[];
  close(t, t2, 1e-13);
});
check("vmap(jit(while(scan(cond))))", () =>
  close(
    vmap(jit(wsc))(X) as Tensor,
    stack([0, 1, 2, 3].map((i) => wscM(X.narrow(0, i, 1).reshape([3])))),
    1e-14,
  ),
);
check("jvp(vmap(while(scan)))", () => {
  const V = randn([4, 3], f64);
  const [, t] = jvp(vmap(wsc), [X], [V]) as Tensor[];
  const e = stack(
    [0, 1, 2, 3].map(
      (i) => (jvp(wscM, [X.narrow(0, i, 1).reshape([3])], [V.narrow(0, i, 1).reshape([3])]) as Tensor[])[1],
    ),
  );
  close(t, e, 1e-13);
});
const cv = customVjp((a: Tensor, b: Tensor) => a.mul(b).sin(), {
  fwd: (a: Tensor, b: Tensor) => [a.mul(b).sin(), { a, b, c: a.mul(b).cos() }],
  bwd: (r: { a: Tensor; b: Tensor; c: Tensor }, ct: Tensor) => [ct.mul(r.c).mul(r.b), ct.mul(r.c).mul(r.a)],
});
check("customVjp pytree residuals, vmap(grad(jit)) both args", () => {
  const f = (a: Tensor, b: Tensor) => cv(a, b).sum();
  const r = vmap(jit(grad(f, { argnums: [0, 1] })))(X, X.mul(2)) as Tensor[];
  const e = vmap(grad((a: Tensor, b: Tensor) => a.mul(b).sin().sum(), { argnums: [0, 1] }))(
    X,
    X.mul(2),
  ) as Tensor[];
  close(r[0], e[0], 1e-14);
  close(r[1], e[1], 1e-14);
});
check("customVjp inside scan, vmap over xs, grad", () => {
  const f = (xs: Tensor) => scan((c: Tensor, e: Tensor) => [cv(c, e), null], x, xs)[0].sum();
  const Y = randn([2, 4, 3], f64);
  const r = vmap(grad(jit(f)))(Y) as Tensor;
  const fm = (xs: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e).sin(), null], x, xs)[0].sum();
  close(r, vmap(grad(fm))(Y) as Tensor, 1e-13);
});
check("foriLoop with traced bound inside vmap(jit)", () => {
  const f = jit((a: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.mul(1.5), a));
  const r = vmap((a: Tensor) => f(a, 3))(X) as Tensor;
  close(r, X.mul(3.375), 1e-14);
});
done();
