import { check, close, done, expectThrow, f64, fdGrad, flat } from "./h.ts";
import {
  checkpoint,
  cond,
  customJvp,
  customVjp,
  foriLoop,
  getBackend,
  grad,
  hessian,
  jacfwd,
  jacrev,
  jit,
  jvp,
  linearize,
  manualSeed,
  ones,
  randn,
  scan,
  stack,
  switchCase,
  tensor,
  type Tensor,
  valueAndGrad,
  vjp,
  vmap,
  whileLoop,
  zeros,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
manualSeed(5);
const x = randn([3], f64),
  X = randn([4, 3], f64);
// jit inside scan body / cond branch
const inner = jit((h: Tensor, a: Tensor) => h.mul(a).sin().add(a));
const s1 = (h0: Tensor, xs: Tensor) =>
  scan(
    (h: Tensor, a: Tensor) => {
      const n = inner(h, a);
      return [n, n.sum()];
    },
    h0,
    xs,
  );
const s1m = (h0: Tensor, xs: Tensor) => {
  let h = h0;
  const ys: Tensor[] = [];
  for (let i = 0; i < xs.shape[0]; i++) {
    h = h
      .mul(xs.narrow(0, i, 1).reshape([3]))
      .sin()
      .add(xs.narrow(0, i, 1).reshape([3]));
    ys.push(h.sum());
  }
  return [h, stack(ys)];
};
check("jit inside scan body: value", () => {
  const [a, b] = s1(x, X) as Tensor[];
  const [c, d] = s1m(x, X) as Tensor[];
  close(a, c, 1e-14);
  close(b, d, 1e-14);
});
check("grad(jit inside scan) ", () =>
  close(
    grad((h: Tensor) => (s1(h, X)[1] as Tensor).sum())(x) as Tensor,
    grad((h: Tensor) => (s1m(h, X)[1] as Tensor).sum())(x) as Tensor,
    1e-12,
  ),
);
check("jit(grad(scan(jit)))", () =>
  close(
    jit(grad((h: Tensor) => (s1(h, X)[1] as Tensor).sum()))(x) as Tensor,
    grad((h: Tensor) => (s1m(h, X)[1] as Tensor).sum())(x) as Tensor,
    1e-12,
  ),
);
check("vmap(scan(jit))", () => {
  const H = randn([2, 3], f64);
  close(
    vmap((h: Tensor) => s1(h, X)[1])(H) as Tensor,
    stack([0, 1].map((i) => s1m(H.narrow(0, i, 1).reshape([3]), X)[1])),
    1e-13,
  );
});
check("jvp(scan(jit))", () => {
  const v = randn([3], f64);
  const [, t] = jvp((h: Tensor) => s1(h, X)[1], [x], [v]) as Tensor[];
  const [, t2] = jvp((h: Tensor) => s1m(h, X)[1], [x], [v]) as Tensor[];
  close(t, t2, 1e-13);
});
check("jit inside cond branch, grad", () => {
  const f = (a: Tensor) =>
    cond(
      a.sum().gt(0),
      (b: Tensor) => inner(b, b),
      (b: Tensor) => inner(b, b.neg()),
      a,
    ).sum();
  close(jit(grad(f))(x) as Tensor, fdGrad(f, x), 1e-6);
});
// closure over outer grad variable inside jit
check("grad of closed-over var through jit", () => {
  const f = (w: Tensor) => jit((a: Tensor) => a.mul(w).sin().sum())(x);
  close(grad(f)(X.narrow(0, 0, 1).reshape([3])) as Tensor, fdGrad(f, X.narrow(0, 0, 1).reshape([3])), 1e-6);
});
check("vmap over closed-over var through jit", () => {
  const f = (w: Tensor) => jit((a: Tensor) => a.mul(w).sin().sum())(x);
  close(vmap(f)(X) as Tensor, X.mul(x).sin().sum(1), 1e-14);
});
check("jvp closed-over var through jit inside scan", () => {
  const f = (w: Tensor) =>
    scan((c: Tensor, a: Tensor) => [jit((q: Tensor) => q.mul(w).add(a))(c), null], x, X)[0];
  const v = randn([3], f64);
  const [, t] = jvp(f, [x], [v]) as Tensor[];
  const fd = f(x.add(v.mul(1e-6)))
    .sub(f(x.sub(v.mul(1e-6))))
    .div(2e-6);
  close(t, fd, 1e-6);
});
// eager backward through jit, retainGraph, createGraph
check("eager backward through jit twice with retainGraph", () => {
  const a = x.clone().requiresGrad_();
  const jf = jit((t: Tensor) => t.sin().mul(t).sum());
  const l = jf(a);
  l.backward(undefined, { retainGraph: true });
  const g1 = flat(a.grad!);
  l.backward();
  const g2 = flat(a.grad!);
  const e = flat(grad((t: Tensor) => t.sin().mul(t).sum())(x) as Tensor);
  for (let i = 0; i < 3; i++)
    if (Math.abs(g1[i] - e[i]) > 1e-12 || Math.abs(g2[i] - 2 * e[i]) > 1e-12)
      throw new Error(`${g1} ${g2} ${e}`);
});
check("eager double backward (createGraph) through jit", () => {
  const a = x.clone().requiresGrad_();
  const jf = jit((t: Tensor) => t.pow(3).sum());
  const l = jf(a);
  l.backward(undefined, { createGraph: true });
  const g = a.grad!;
  const gs = g.sum();
  a.grad = null;
  gs.backward();
  close(a.grad!, x.mul(6), 1e-12);
});
check("eager backward through jit(scan)", () => {
  const a = x.clone().requiresGrad_();
  const l = jit((h: Tensor) => (s1m(h, X)[1] as Tensor).sum())(a);
  l.backward();
  close(a.grad!, grad((h: Tensor) => (s1m(h, X)[1] as Tensor).sum())(x) as Tensor, 1e-12);
});
check("eager backward through jit with customVjp", () => {
  const cv = customVjp((t: Tensor) => t.mul(2), {
    fwd: (t: Tensor) => [t.mul(2), null],
    bwd: (_r: null, ct: Tensor) => [ct.mul(10)],
  });
  const a = x.clone().requiresGrad_();
  jit((t: Tensor) => cv(t).sum())(a).backward();
  close(a.grad!, ones([3], f64).mul(10), 0);
});
// hessian of scan wrt xs; jacrev/jacfwd of jit(scan)
check("jacrev(jit(scan)) == jacfwd(scan)", () => {
  const f = (xs: Tensor) => s1m(x, xs)[1];
  const g = (xs: Tensor) => s1(x, xs)[1];
  close(jacrev(jit(g))(X) as Tensor, jacfwd(f)(X) as Tensor, 1e-12);
});
check("hessian(scan) wrt xs", () => {
  const f = (xs: Tensor) => (s1m(x, xs)[1] as Tensor).sum();
  const g = (xs: Tensor) => (s1(x, xs)[1] as Tensor).sum();
  close(hessian(jit(g))(X) as Tensor, hessian(f)(X) as Tensor, 1e-11);
});
// linearize scan
check("linearize(jit scan)", () => {
  const v = randn([4, 3], f64);
  const [, lin] = linearize((xs: Tensor) => s1(x, xs)[1], X) as [Tensor, (t: Tensor) => Tensor];
  const [, t] = jvp((xs: Tensor) => s1m(x, xs)[1], [X], [v]) as Tensor[];
  close(lin(v), t, 1e-13);
});
// vmap of scan with inAxes 1 over xs
check("vmap scan xs inAxes=1", () => {
  const XB = randn([4, 2, 3], f64);
  const r = vmap((xs: Tensor) => s1(x, xs)[1], { inAxes: 1 })(XB) as Tensor;
  const e = stack([0, 1].map((i) => s1m(x, XB.narrow(1, i, 1).reshape([4, 3]))[1]));
  close(r, e, 1e-13);
});
check("vmap scan outAxes=1", () => {
  const H = randn([2, 3], f64);
  const r = vmap((h: Tensor) => s1(h, X)[1], { outAxes: 1 })(H) as Tensor;
  const e = stack(
    [0, 1].map((i) => s1m(H.narrow(0, i, 1).reshape([3]), X)[1]),
    1,
  );
  close(r, e, 1e-13);
});
// while with batched carry but unbatched predicate (counter)
check("vmap while: unbatched counter, batched value", () => {
  const f = (v: Tensor) =>
    whileLoop(
      ([i, _a]: [Tensor, Tensor]) => i.lt(3),
      ([i, a]: [Tensor, Tensor]) => [i.add(1), a.mul(2)] as [Tensor, Tensor],
      [tensor(0, { dtype: "int32" }), v] as [Tensor, Tensor],
    )[1];
  close(jit(vmap(f))(X) as Tensor, X.mul(8), 0);
});
check("jvp(vmap(while per-example))", () => {
  const f = (v: Tensor) =>
    whileLoop(
      (a: Tensor) => a.abs().sum().lt(50),
      (a: Tensor) => a.mul(1.5).add(a.sin()),
      v,
    );
  const fm = (v: Tensor) => {
    let a = v;
    while (a.abs().sum().item() < 50) a = a.mul(1.5).add(a.sin());
    return a;
  };
  const V = randn([4, 3], f64);
  const [p, t] = jvp(vmap(f), [X], [V]) as Tensor[];
  const exp = stack(
    [0, 1, 2, 3].map(
      (i) => (jvp(fm, [X.narrow(0, i, 1).reshape([3])], [V.narrow(0, i, 1).reshape([3])]) as Tensor[])[1],
    ),
  );
  close(p, stack([0, 1, 2, 3].map((i) => fm(X.narrow(0, i, 1).reshape([3])))), 1e-13);
  close(t, exp, 1e-11);
});
// switch in vmap: batched operand, unbatched index
check("vmap switch unbatched index", () => {
  const f = (a: Tensor) =>
    switchCase(tensor(1, { dtype: "int32" }), [(b: Tensor) => b, (b: Tensor) => b.exp()], a);
  close(vmap(f)(X) as Tensor, X.exp(), 0);
  close(vmap(grad((a: Tensor) => f(a).sum()))(X) as Tensor, X.exp(), 1e-15);
});
// customVjp inside scan under grad; customJvp inside while under jvp
check("customVjp inside scan grad", () => {
  const cv = customVjp((t: Tensor) => t.sin(), {
    fwd: (t: Tensor) => [t.sin(), t],
    bwd: (r: Tensor, ct: Tensor) => [ct.mul(r.cos())],
  });
  const f = (h0: Tensor) => scan((h: Tensor, a: Tensor) => [cv(h.mul(a)), null], h0, X)[0].sum();
  const fm = (h0: Tensor) => scan((h: Tensor, a: Tensor) => [h.mul(a).sin(), null], h0, X)[0].sum();
  close(jit(grad(f))(x) as Tensor, grad(fm)(x) as Tensor, 1e-13);
  close(vmap(grad(f))(X) as Tensor, vmap(grad(fm))(X) as Tensor, 1e-13);
});
check("customJvp inside while jvp", () => {
  const cj = customJvp(
    (t: Tensor) => t.sin(),
    (p, t) => [p[0].sin(), t[0].mul(p[0].cos())],
  );
  const f = (v: Tensor) =>
    foriLoop(0, tensor(3, { dtype: "int32" }), (_i: Tensor, a: Tensor) => cj(a).add(a), v);
  const fm = (v: Tensor) => {
    let a = v;
    for (let i = 0; i < 3; i++) a = a.sin().add(a);
    return a;
  };
  const V = randn([3], f64);
  const [, t] = jvp(jit(f), [x], [V]) as Tensor[];
  const [, t2] = jvp(fm, [x], [V]) as Tensor[];
  close(t, t2, 1e-13);
});
check("checkpoint inside vmap inside jit(grad)", () => {
  const ck = checkpoint((a: Tensor) => a.sin().exp());
  const f = (a: Tensor) => (vmap(ck)(a) as Tensor).sum();
  close(jit(grad(f))(X) as Tensor, X.cos().mul(X.sin().exp()), 1e-14);
});
check("grad hasAux under jit", () => {
  const f = (a: Tensor) => [a.pow(2).sum(), { m: a.mean() }] as const;
  const [g, aux] = jit(grad(f, { hasAux: true }))(x) as unknown as [Tensor, { m: Tensor }];
  close(g, x.mul(2), 1e-15);
  close(aux.m, x.mean(), 1e-15);
});
check("valueAndGrad under vmap under jit", () => {
  const r = jit(vmap(valueAndGrad((a: Tensor) => a.pow(2).sum())))(X) as Tensor[];
  close(r[0], X.pow(2).sum(1), 1e-15);
  close(r[1], X.mul(2), 0);
});
// cond inside scan inside grad inside jit + vmap
check("cond in scan, vmap(jit(grad))", () => {
  const f = (h0: Tensor) =>
    scan(
      (h: Tensor, a: Tensor) => [
        cond(
          a.sum().gt(0),
          (q: Tensor) => q.mul(a).sin(),
          (q: Tensor) => q.add(a).cos(),
          h,
        ),
        null,
      ],
      h0,
      X,
    )[0].sum();
  const H = randn([3, 3], f64);
  const r = vmap(jit(grad(f)))(H) as Tensor;
  const e = stack([0, 1, 2].map((i) => fdGrad(f, H.narrow(0, i, 1).reshape([3]))));
  close(r, e, 1e-6);
});
// jit with many arguments and kwargs-like object with undefined fields
check("jit with undefined in pytree", () => {
  const f = (o: { a: Tensor; b?: Tensor }) => (o.b ? o.a.add(o.b) : o.a.mul(2));
  const jf = jit(f);
  close(jf({ a: x, b: undefined }) as Tensor, x.mul(2), 0);
  close(jf({ a: x, b: x }) as Tensor, x.mul(2), 0);
  close(jf({ a: x }) as Tensor, x.mul(2), 0);
  return `traces ${jf.traceCount}`;
});
// vjp of jit with cotangent of wrong shape
expectThrow(
  "vjp(jit) wrong cotangent shape",
  () => {
    const [, pb] = vjp(
      jit((a: Tensor) => a.sin()),
      x,
    ) as [Tensor, (c: Tensor) => Tensor[]];
    return pb(ones([4], f64));
  },
  /shape/i,
);
// scan with xs of different leading sizes -> error
expectThrow(
  "scan xs mismatched lengths",
  () => scan((c: Tensor, _xs: Tensor[]) => [c, null], zeros([]), [ones([3]), ones([4])]),
  /leading size/,
);
done();
