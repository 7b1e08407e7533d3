import { check, close, done, expectThrow, f64, fdGrad } from "./h.ts";
import {
  checkpoint,
  eye,
  customJvp,
  customVjp,
  getBackend,
  grad,
  hessian,
  jacfwd,
  jacrev,
  jit,
  jvp,
  randn,
  tensor,
  type Tensor,
  valueAndGrad,
  vjp,
  vmap,
  manualSeed,
  hvp,
  linearize,
  makeJaxpr,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
manualSeed(1);
const f = (x: Tensor) => x.sin().mul(x.exp()).sum().add(x.pow(3).mean());
const x = randn([5], f64);
const g = grad(f)(x) as Tensor;
check("grad eager vs FD", () => close(g, fdGrad(f, x), 1e-6));
check("jit(grad(f)) == grad(f)", () => close(jit(grad(f))(x) as Tensor, g, 1e-12));
check("grad(jit(f)) == grad(f)", () => close(grad(jit(f))(x) as Tensor, g, 1e-12));
check("jit(grad(jit(f)))", () => close(jit(grad(jit(f)))(x) as Tensor, g, 1e-12));
const H = hessian(f)(x) as Tensor;
check("hessian(jit f) vs hessian f", () => close(hessian(jit(f))(x) as Tensor, H, 1e-12));
check("jit(hessian f)", () => close(jit(hessian(f))(x) as Tensor, H, 1e-12));
check("hessian FD", () => {
  for (let i = 0; i < 5; i++) {
    const gi = (y: Tensor) => (grad(f)(y) as Tensor).narrow(0, i, 1).sum();
    close(H.narrow(0, i, 1).reshape([5]), fdGrad(gi, x), 1e-5);
  }
});
check("jacfwd(jit(grad f)) == H", () => close(jacfwd(jit(grad(f)))(x) as Tensor, H, 1e-12));
check("jacrev(jit(grad f)) == H", () => close(jacrev(jit(grad(f)))(x) as Tensor, H, 1e-12));
// jvp
const v = randn([5], f64);
const fv = (x: Tensor) => x.sin().mul(x);
const [p0, t0] = jvp(fv, [x], [v]) as [Tensor, Tensor];
check("jvp(jit f)", () => {
  const [p, t] = jvp(jit(fv), [x], [v]) as [Tensor, Tensor];
  close(p, p0, 0);
  close(t, t0, 1e-14);
});
check("jit(jvp)", () => {
  const jj = jit((a: Tensor, b: Tensor) => jvp(fv, [a], [b]));
  const [p, t] = jj(a0(x), v) as [Tensor, Tensor];
  close(p, p0, 0);
  close(t, t0, 1e-14);
});
function a0(t: Tensor) {
  return t;
}
check("jvp FD", () => {
  const h = 1e-6;
  const fd = fv(x.add(v.mul(h)))
    .sub(fv(x.sub(v.mul(h))))
    .div(2 * h);
  close(t0, fd, 1e-6);
});
check("hvp(jit f)", () => close(hvp(jit(f), x, v) as Tensor, H.matmul(v), 1e-12));
check("linearize(jit f)", () => {
  const [y, lin] = linearize(jit(fv), x) as [Tensor, (t: Tensor) => Tensor];
  close(y, p0, 0);
  close(lin(v), t0, 1e-13);
});
// vmap
const xb = randn([4, 5], f64);
const per = (r: Tensor) => f(r);
check("vmap(jit f)", () => close(vmap(jit(per))(xb) as Tensor, vmap(per)(xb) as Tensor, 1e-14));
check("jit(vmap f)", () => close(jit(vmap(per))(xb) as Tensor, vmap(per)(xb) as Tensor, 1e-14));
check("vmap(grad(jit f))", () => close(vmap(grad(jit(f)))(xb) as Tensor, vmap(grad(f))(xb) as Tensor, 1e-13));
check("jit(vmap(grad f))", () => close(jit(vmap(grad(f)))(xb) as Tensor, vmap(grad(f))(xb) as Tensor, 1e-13));
check("grad(vmap(jit f) sum)", () =>
  close(
    grad((b: Tensor) => (vmap(jit(per))(b) as Tensor).sum())(xb) as Tensor,
    vmap(grad(f))(xb) as Tensor,
    1e-13,
  ),
);
check("vmap(jit) inAxes 1", () =>
  close(vmap(jit(per), { inAxes: 1 })(xb.transpose(0, 1)) as Tensor, vmap(per)(xb) as Tensor, 1e-14),
);
check("vmap(vmap(jit))", () => {
  const x3 = randn([2, 3, 5], f64);
  close(vmap(vmap(jit(per)))(x3) as Tensor, vmap(vmap(per))(x3) as Tensor, 1e-14);
});
check("vmap(jit) with unbatched second arg", () => {
  const w = randn([5], f64);
  const h2 = (a: Tensor, b: Tensor) => a.mul(b).sum();
  close(vmap(jit(h2), { inAxes: [0, null] })(xb, w) as Tensor, xb.matmul(w), 1e-13);
});
check("jvp(vmap(jit))", () => {
  const [p, t] = jvp(vmap(jit(per)), [xb], [xb]) as [Tensor, Tensor];
  const [p2, t2] = jvp(vmap(per), [xb], [xb]) as [Tensor, Tensor];
  close(p, p2, 1e-14);
  close(t, t2, 1e-13);
});
// checkpoint
check("jit(grad(checkpoint f))", () => close(jit(grad(checkpoint(f)))(x) as Tensor, g, 1e-12));
check("grad(checkpoint(jit f))", () => close(grad(checkpoint(jit(f)))(x) as Tensor, g, 1e-12));
check("checkpoint(jit) in vmap", () =>
  close(vmap(grad(checkpoint(jit(f))))(xb) as Tensor, vmap(grad(f))(xb) as Tensor, 1e-13),
);
check("jvp(checkpoint(jit))", () => {
  const [, t] = jvp(checkpoint(jit(fv)), [x], [v]) as [Tensor, Tensor];
  close(t, t0, 1e-13);
});
// custom rules
const clipGrad = customVjp((a: Tensor) => a.mul(2), {
  fwd: (a: Tensor) => [a.mul(2), a],
  bwd: (_res: Tensor, ct: Tensor) => [ct.mul(2).clamp(-1, 1)],
});
const cx = tensor([0.1, 0.9, -2], f64);
const cg = grad((a: Tensor) =>
  clipGrad(a)
    .mul(a.pow(0))
    .mul(tensor([0.2, 1, 3], f64))
    .sum(),
)(cx) as Tensor;
check("customVjp eager", () => close(cg, tensor([0.4, 1, 1], f64), 1e-15));
check("jit(grad(customVjp))", () =>
  close(
    jit(
      grad((a: Tensor) =>
        clipGrad(a)
          .mul(tensor([0.2, 1, 3], f64))
          .sum(),
      ),
    )(cx) as Tensor,
    cg,
    0,
  ),
);
check("grad(jit(customVjp))", () =>
  close(
    grad(
      jit((a: Tensor) =>
        clipGrad(a)
          .mul(tensor([0.2, 1, 3], f64))
          .sum(),
      ),
    )(cx) as Tensor,
    cg,
    0,
  ),
);
check("vmap(grad(jit(customVjp)))", () => {
  const xs = tensor(
    [
      [0.1, 0.9, -2],
      [1, 2, 3],
    ],
    f64,
  );
  const r = vmap(
    grad(
      jit((a: Tensor) =>
        clipGrad(a)
          .mul(tensor([0.2, 1, 3], f64))
          .sum(),
      ),
    ),
  )(xs) as Tensor;
  close(
    r,
    tensor(
      [
        [0.4, 1, 1],
        [0.4, 1, 1],
      ],
      f64,
    ),
    0,
  );
});
expectThrow("jvp(jit(customVjp)) error", () => jvp(jit(clipGrad), [cx], [cx]), /customJvp|forward mode/);
// customJvp: safe log1pexp style
const soft = customJvp(
  (a: Tensor) => a.exp().log1p(),
  (p, t) => [p[0].exp().log1p(), t[0].mul(p[0].sigmoid())],
);
check("jit(grad(customJvp))", () =>
  close(jit(grad((a: Tensor) => soft(a).sum()))(cx) as Tensor, cx.sigmoid(), 1e-15),
);
check("grad(jit(customJvp))", () =>
  close(grad(jit((a: Tensor) => soft(a).sum()))(cx) as Tensor, cx.sigmoid(), 1e-15),
);
check("jvp(jit(customJvp))", () => {
  const [, t] = jvp(jit(soft), [cx], [cx]) as [Tensor, Tensor];
  close(t, cx.mul(cx.sigmoid()), 1e-15);
});
check("vmap(jit(customJvp))", () => {
  const xs = tensor(
    [
      [0.1, 0.9, -2],
      [1, 2, 3],
    ],
    f64,
  );
  close(vmap(jit(soft))(xs) as Tensor, soft(xs), 1e-15);
});
check("jit(vmap(grad(customJvp)))", () => {
  const xs = tensor(
    [
      [0.1, 0.9, -2],
      [1, 2, 3],
    ],
    f64,
  );
  close(jit(vmap(grad((a: Tensor) => soft(a).sum())))(xs) as Tensor, xs.sigmoid(), 1e-15);
});
check("hessian(jit(customJvp))", () => {
  const hh = hessian(jit((a: Tensor) => soft(a).sum()))(cx) as Tensor;
  const s = cx.sigmoid();
  // the Hessian of sum(sigmoid(a)) is diagonal: s (1 - s) on it
  close(
    hh,
    s
      .mul(s.neg().add(1))
      .unsqueeze(1)
      .mul(eye(s.shape[0], undefined, { dtype: s.dtype })),
    1e-12,
  );
});
// valueAndGrad with hasAux in jit
check("jit(valueAndGrad hasAux)", () => {
  const vg = jit(valueAndGrad((a: Tensor) => [f(a), a.sum()] as [Tensor, Tensor], { hasAux: true } as never));
  const r = vg(x) as unknown;
  return JSON.stringify(r, (_k, v) => (v?.shape ? `T${v.shape}` : v)).slice(0, 200);
});
// vjp through jit with pytree output
check("vjp(jit) pytree out", () => {
  const ff = (a: Tensor) => ({ s: a.sin(), c: [a.cos()] });
  const [o, pb] = vjp(jit(ff), x) as [any, any];
  const [gg] = pb({ s: v, c: [v] });
  close(gg, x.cos().mul(v).sub(x.sin().mul(v)), 1e-14);
  close(o.s, x.sin(), 0);
});
// grad with argnums and pytrees under jit
check("jit(grad argnums pytree)", () => {
  const ff = (p: { w: Tensor; b: Tensor }, a: Tensor) => p.w.mul(a).add(p.b).pow(2).sum();
  const p = { w: randn([5], f64), b: randn([5], f64) };
  const r = jit(grad(ff))(p, x) as any;
  const e = grad(ff)(p, x) as any;
  close(r.w, e.w, 1e-14);
  close(r.b, e.b, 1e-14);
});
check("makeJaxpr(jit(grad))", () => `${String(makeJaxpr(jit(grad(f)))(x)).split("\n").length} lines`);
done();
