import { check, close, done, f64 } from "./h.ts";
import {
  eye,
  getBackend,
  grad,
  hessian,
  jit,
  jvp,
  ones,
  randn,
  type Tensor,
  vmap,
  foriLoop,
  jacrev,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
const x = randn([3], f64),
  X = randn([4, 3], f64);
const f = (a: Tensor, k: number, mode: string) => (mode === "sin" ? a.sin() : a.cos()).mul(k).sum();
const jf = jit(f, { staticArgnums: [1, 2] });
check("grad(jit static)", () => close(grad(jf)(x, 3, "sin") as Tensor, x.cos().mul(3), 1e-15));
check("jit(grad) static", () =>
  close(jit(grad(f), { staticArgnums: [1, 2] })(x, 3, "cos") as Tensor, x.sin().mul(-3), 1e-15),
);
check("vmap(jit static) inAxes null for statics", () =>
  close(vmap(jf, { inAxes: [0, null, null] })(X, 2, "sin") as Tensor, X.sin().mul(2).sum(1), 1e-14),
);
check("vmap(jit static) default inAxes (number/string args)", () =>
  close(vmap(jf)(X, 2, "sin") as Tensor, X.sin().mul(2).sum(1), 1e-14),
);
check("jvp(jit static)", () => {
  const [, t] = jvp((a: Tensor) => jf(a, 2, "sin"), [x], [ones([3], f64)]) as Tensor[];
  close(t, x.cos().mul(2).sum(), 1e-14);
});
check("hessian(jit static)", () => {
  const H = hessian((a: Tensor) => jf(a, 2, "sin"))(x) as Tensor;
  return `${H.shape}`;
});
check("jacrev(jit) with pytree in/out", () => {
  const g = jit((p: { a: Tensor; b: Tensor }) => ({ s: p.a.mul(p.b), t: p.a.sum() }));
  const J = jacrev(g)({ a: x, b: x.mul(2) }) as any;
  // d(a * b)/da is diagonal: b on it
  close(
    J.s.a,
    x
      .mul(2)
      .unsqueeze(1)
      .mul(eye(x.shape[0], undefined, { dtype: x.dtype })),
    1e-15,
  );
  return `${J.s.a.shape} ${J.t.b.shape}`;
});
check("grad wrt number arg of jit", () => {
  const h = jit((a: Tensor, s: number) => a.mul(s).sum());
  const g = grad(h, { argnums: 1 })(x, 2.5) as Tensor;
  close(g.to("float64"), x.sum(), 1e-6);
  return `${g.dtype}`;
});
check("vmap(jit) over number-free, jit inside vmap body with closure over batched", () => {
  const r = vmap((row: Tensor) => jit((a: Tensor) => a.mul(row).sum())(x))(X) as Tensor;
  close(r, X.mul(x).sum(1), 1e-14);
});
check("jit of vmap with inAxes pytree", () => {
  const g = jit(
    vmap((p: { a: Tensor; b: Tensor }) => p.a.mul(p.b).sum(), { inAxes: [{ a: 0, b: null }] } as never),
  );
  close(g({ a: X, b: x }) as Tensor, X.mul(x).sum(1), 1e-14);
});
check("vmap(jit) with outAxes pytree", () => {
  const g = vmap(
    jit((a: Tensor) => ({ u: a.mul(2), v: a.sum() })),
    { outAxes: { u: 1, v: 0 } } as never,
  );
  const r = g(X) as any;
  close(r.u, X.mul(2).transpose(0, 1), 0);
});
check("jit static kwarg object with function value", () => {
  const fnA = (t: Tensor) => t.exp();
  const g = jit((a: Tensor, o: { act: (t: Tensor) => Tensor }) => o.act(a), { staticArgnums: 1 });
  close(g(x, { act: fnA }), x.exp(), 0);
  const n0 = g.traceCount;
  g(x, { act: fnA });
  return `traces ${g.traceCount} (first ${n0})`;
});
check("jit retrace count under grad(jit) repeated", () => {
  const g = jit((a: Tensor) => a.sin().sum());
  for (let i = 0; i < 3; i++) grad(g)(x);
  for (let i = 0; i < 3; i++) g(x);
  for (let i = 0; i < 3; i++) vmap(g)(X);
  return `traces ${g.traceCount}`;
});
check("jit(foriLoop) with static bound in grad via closure", () => {
  const g = (a: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.sin(), a).sum();
  const jg = jit(g, { staticArgnums: 1 });
  let e = x;
  for (let i = 0; i < 4; i++) e = e.sin();
  close(jg(x, 4), e.sum(), 1e-15);
  const gg = grad((a: Tensor) => jg(a, 4))(x) as Tensor;
  return `${gg.shape}`;
});
done();
