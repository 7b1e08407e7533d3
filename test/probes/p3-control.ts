import { check, close, done, expectThrow, f64, fdGrad, flat } from "./h.ts";
import {
  cond,
  foriLoop,
  getBackend,
  grad,
  jit,
  jvp,
  randn,
  scan,
  switchCase,
  tensor,
  type Tensor,
  vmap,
  whileLoop,
  zeros,
  ones,
  manualSeed,
  hessian,
  checkpoint,
  stack,
  vjp,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
manualSeed(2);
// pytree scan
const body = (
  c: { h: Tensor; n: [Tensor] },
  x: { a: Tensor; b: Tensor },
): [{ h: Tensor; n: [Tensor] }, { y: Tensor }] => {
  const h = c.h.mul(x.a).add(x.b.sin()).tanh();
  return [{ h, n: [c.n[0].add(h.sum())] }, { y: h.mul(2) }];
};
const run = (h0: Tensor, A: Tensor, B: Tensor, reverse = false) => {
  const [c, ys] = scan(body, { h: h0, n: [zeros([], f64)] }, { a: A, b: B }, { reverse });
  return c.n[0].add(ys.y.pow(2).sum()).add(c.h.sum());
};
const manual = (h0: Tensor, A: Tensor, B: Tensor, reverse = false) => {
  let h = h0;
  let n = zeros([], f64);
  const ys: Tensor[] = [];
  const T = A.shape[0];
  for (let k = 0; k < T; k++) {
    const t = reverse ? T - 1 - k : k;
    h = h
      .mul(A.narrow(0, t, 1).reshape([3]))
      .add(B.narrow(0, t, 1).reshape([3]).sin())
      .tanh();
    n = n.add(h.sum());
    ys.push(h.mul(2));
  }
  return n.add(ys.length ? stack(ys).pow(2).sum() : zeros([], f64)).add(h.sum());
};
const h0 = randn([3], f64),
  A = randn([5, 3], f64),
  B = randn([5, 3], f64);
for (const rev of [false, true]) {
  check(`scan pytree value rev=${rev}`, () => close(run(h0, A, B, rev), manual(h0, A, B, rev), 1e-13));
  check(`jit scan value rev=${rev}`, () =>
    close(
      jit((a: Tensor, b: Tensor, c: Tensor) => run(a, b, c, rev))(h0, A, B),
      manual(h0, A, B, rev),
      1e-13,
    ),
  );
  const gm = grad((a: Tensor, b: Tensor, c: Tensor) => manual(a, b, c, rev), { argnums: [0, 1, 2] })(
    h0,
    A,
    B,
  ) as Tensor[];
  check(`grad scan vs unrolled rev=${rev}`, () => {
    const g = grad((a: Tensor, b: Tensor, c: Tensor) => run(a, b, c, rev), { argnums: [0, 1, 2] })(
      h0,
      A,
      B,
    ) as Tensor[];
    g.forEach((t, i) => close(t, gm[i], 1e-12, `arg${i}`));
  });
  check(`jit(grad scan) rev=${rev}`, () => {
    const g = jit(grad((a: Tensor, b: Tensor, c: Tensor) => run(a, b, c, rev), { argnums: [0, 1, 2] }))(
      h0,
      A,
      B,
    ) as Tensor[];
    g.forEach((t, i) => close(t, gm[i], 1e-12, `arg${i}`));
  });
  check(`grad(jit scan) rev=${rev}`, () => {
    const g = grad(
      jit((a: Tensor, b: Tensor, c: Tensor) => run(a, b, c, rev)),
      { argnums: [0, 1, 2] },
    )(h0, A, B) as Tensor[];
    g.forEach((t, i) => close(t, gm[i], 1e-12, `arg${i}`));
  });
  check(`grad scan FD (A) rev=${rev}`, () =>
    close(
      gm[1],
      fdGrad((a: Tensor) => manual(h0, a, B, rev), A),
      1e-6,
    ),
  );
  check(`jvp(jit scan) rev=${rev}`, () => {
    const v = randn([5, 3], f64);
    const [, t] = jvp(
      jit((a: Tensor) => run(h0, a, B, rev)),
      [A],
      [v],
    ) as Tensor[];
    close(t, gm[1].mul(v).sum(), 1e-12);
  });
  check(`vmap(jit scan) over h0 rev=${rev}`, () => {
    const H = randn([4, 3], f64);
    const r = vmap(jit((h: Tensor) => run(h, A, B, rev)))(H) as Tensor;
    const e = stack([0, 1, 2, 3].map((i) => manual(H.narrow(0, i, 1).reshape([3]), A, B, rev)));
    close(r, e, 1e-13);
  });
  check(`vmap over xs batched, carry unbatched, rev=${rev}`, () => {
    const AB = randn([4, 5, 3], f64);
    const r = vmap((a: Tensor) => run(h0, a, B, rev))(AB) as Tensor;
    const e = stack([0, 1, 2, 3].map((i) => manual(h0, AB.narrow(0, i, 1).reshape([5, 3]), B, rev)));
    close(r, e, 1e-13);
  });
  check(`vmap(grad(jit scan)) rev=${rev}`, () => {
    const AB = randn([2, 5, 3], f64);
    const r = vmap(grad(jit((a: Tensor) => run(h0, a, B, rev))))(AB) as Tensor;
    const e = stack(
      [0, 1].map(
        (i) => grad((a: Tensor) => manual(h0, a, B, rev))(AB.narrow(0, i, 1).reshape([5, 3])) as Tensor,
      ),
    );
    close(r, e, 1e-12);
  });
  check(`hessian(jit scan) wrt h0 rev=${rev}`, () => {
    const Hs = hessian(jit((h: Tensor) => run(h, A, B, rev)))(h0) as Tensor;
    const He = hessian((h: Tensor) => manual(h, A, B, rev))(h0) as Tensor;
    close(Hs, He, 1e-11);
  });
}
// lengths 0 and 1
for (const T of [0, 1]) {
  check(`scan length ${T} value+grad under jit`, () => {
    const a = randn([T, 3], f64),
      b = randn([T, 3], f64);
    close(jit(run)(h0, a, b), manual(h0, a, b), 1e-14);
    const g = jit(grad(run, { argnums: [0, 1] }))(h0, a, b) as Tensor[];
    const e = grad(manual, { argnums: [0, 1] })(h0, a, b) as Tensor[];
    close(g[0], e[0], 1e-13);
    close(g[1], e[1], 1e-13);
  });
  check(`scan length ${T} vmap`, () => {
    const a = randn([2, T, 3], f64);
    const r = vmap((x: Tensor) => run(h0, x, zeros([T, 3], f64)))(a) as Tensor;
    return `${r.shape}`;
  });
}
check("scan no xs with length", () => {
  const [c, ys] = jit((x: Tensor) => scan((c: Tensor, _: null) => [c.mul(2), c], x, null, { length: 4 }))(
    ones([2]),
  ) as [Tensor, Tensor];
  close(c, tensor([16, 16]), 0);
  return `ys ${ys.shape}`;
});
check("scan ys null", () => {
  const [c, ys] = scan((c: Tensor, x: Tensor) => [c.add(x), null], zeros([]), tensor([1, 2, 3]));
  return `${flat(c)} ${ys}`;
});
// nested scans + grad
const nested = (W: Tensor) =>
  scan(
    (c: Tensor, row: Tensor) => {
      const [ci] = scan((d: Tensor, e: Tensor) => [d.mul(e.cos()).add(e), null], c, row);
      return [ci, ci];
    },
    ones([], f64),
    W,
  )[1].sum();
const nestedM = (W: Tensor) => {
  let c = ones([], f64);
  let s = zeros([], f64);
  for (const r of flat(W.reshape([-1])).length ? [0, 1, 2] : []) {
    for (let j = 0; j < 4; j++) {
      const e = W.narrow(0, r, 1).narrow(1, j, 1).reshape([]);
      c = c.mul(e.cos()).add(e);
    }
    s = s.add(c);
  }
  return s;
};
const W = randn([3, 4], f64);
check("nested scan value jit", () => close(jit(nested)(W), nestedM(W), 1e-13));
check("nested scan grad jit", () => close(jit(grad(nested))(W) as Tensor, grad(nestedM)(W) as Tensor, 1e-12));
check("nested scan grad of grad (hessian)", () =>
  close(hessian(nested)(W) as Tensor, hessian(nestedM)(W) as Tensor, 1e-10),
);
check("nested scan vmap jit", () => {
  const Ws = randn([2, 3, 4], f64);
  close(
    vmap(jit(nested))(Ws) as Tensor,
    stack([nestedM(Ws.narrow(0, 0, 1).reshape([3, 4])), nestedM(Ws.narrow(0, 1, 1).reshape([3, 4]))]),
    1e-13,
  );
});
// cond
const cf = (p: Tensor, x: Tensor) =>
  cond(
    p.sum().gt(0),
    (a: Tensor) => a.sin().mul(a),
    (a: Tensor) => a.exp(),
    x,
  );
const xc = randn([3], f64);
for (const s of [1, -1]) {
  const p = tensor([s], f64);
  const e = s > 0 ? xc.sin().mul(xc) : xc.exp();
  check(`cond jit ${s}`, () => close(jit(cf)(p, xc), e, 0));
  check(`cond grad(jit) ${s}`, () =>
    close(
      grad((a: Tensor) => jit(cf)(p, a).sum())(xc) as Tensor,
      fdGrad((a: Tensor) => cf(p, a).sum(), xc),
      1e-6,
    ),
  );
  check(`cond jvp(jit) ${s}`, () => {
    const [, t] = jvp((a: Tensor) => jit(cf)(p, a), [xc], [ones([3], f64)]) as Tensor[];
    close(t, s > 0 ? xc.cos().mul(xc).add(xc.sin()) : xc.exp(), 1e-14);
  });
}
check("vmap cond per-example pred + grad", () => {
  const P = tensor([[1], [-1]], f64);
  const X = randn([2, 3], f64);
  const r = vmap(grad((p: Tensor, a: Tensor) => cf(p, a).sum(), { argnums: 1 }))(P, X) as Tensor;
  const x0 = X.narrow(0, 0, 1).reshape([3]),
    x1 = X.narrow(0, 1, 1).reshape([3]);
  close(r, stack([x0.cos().mul(x0).add(x0.sin()), x1.exp()]), 1e-14);
});
check("jit(vmap(cond)) per-example", () => {
  const P = tensor([[1], [-1]], f64);
  const X = randn([2, 3], f64);
  close(jit(vmap(cf))(P, X) as Tensor, vmap(cf)(P, X) as Tensor, 0);
});
expectThrow(
  "cond branches diff shapes",
  () =>
    jit((x: Tensor) =>
      cond(
        x.sum().gt(0),
        (a: Tensor) => a,
        (a: Tensor) => a.sum(),
        x,
      ),
    )(ones([3])),
  /shape|structure/i,
);
expectThrow(
  "cond branches diff dtypes",
  () =>
    cond(
      tensor(true),
      (a: Tensor) => a,
      (a: Tensor) => a.to("float64"),
      ones([3]),
    ),
  /dtype/i,
);
expectThrow(
  "cond non-scalar pred",
  () =>
    jit((x: Tensor) =>
      cond(
        x.gt(0),
        (a: Tensor) => a,
        (a: Tensor) => a.neg(),
        x,
      ),
    )(ones([3])),
  /scalar|shape/i,
);
check("cond concrete boolean pred", () =>
  close(
    cond(
      true,
      (a: Tensor) => a.add(1),
      (a: Tensor) => a,
      ones([2]),
    ),
    tensor([2, 2]),
    0,
  ),
);
check("cond pytree operands", () => {
  const r = jit((x: Tensor) =>
    cond(
      x.sum().gt(0),
      (o: { a: Tensor; b: Tensor[] }) => ({ s: o.a.add(o.b[0]) }),
      (o: { a: Tensor; b: Tensor[] }) => ({ s: o.a.sub(o.b[0]) }),
      { a: x, b: [x.mul(2)] },
    ),
  )(ones([2])) as { s: Tensor };
  close(r.s, tensor([3, 3]), 0);
});
// switch
const sw = (i: Tensor, x: Tensor) =>
  switchCase(i, [(a: Tensor) => a.mul(1), (a: Tensor) => a.mul(2), (a: Tensor) => a.pow(2)], x);
for (const i of [-5, 0, 1, 2, 7])
  check(`switch jit idx ${i} (clamped)`, () => {
    const k = Math.min(2, Math.max(0, i));
    const x = tensor([3], f64);
    const ev = [x, x.mul(2), x.pow(2)][k];
    close(jit(sw)(tensor(i, { dtype: "int32" }), x), ev, 0);
    const g = grad((a: Tensor) => jit(sw)(tensor(i, { dtype: "int32" }), a).sum())(x) as Tensor;
    close(g, tensor([[1, 2, 6][k]], f64), 1e-15);
  });
check("vmap switch batched index + grad", () => {
  const I = tensor([0, 1, 2, 5], { dtype: "int32" });
  const X = tensor([[3], [3], [3], [3]], f64);
  const g = vmap(grad((i: Tensor, a: Tensor) => sw(i, a).sum(), { argnums: 1 }))(I, X) as Tensor;
  close(g, tensor([[1], [2], [6], [6]], f64), 1e-15);
});
expectThrow("switch float index", () => jit(sw)(tensor(1.5), ones([1])), /int/i);
// whileLoop
const wl = (x: Tensor) =>
  whileLoop(
    (c: [Tensor, Tensor]) => c[0].lt(5),
    (c: [Tensor, Tensor]) => [c[0].add(1), c[1].mul(c[1].cos()).add(0.1)] as [Tensor, Tensor],
    [tensor(0, { dtype: "int32" }), x],
  )[1];
const wlM = (x: Tensor) => {
  let v = x;
  for (let i = 0; i < 5; i++) v = v.mul(v.cos()).add(0.1);
  return v;
};
const xw = randn([3], f64);
check("while jit value", () => close(jit(wl)(xw), wlM(xw), 1e-14));
expectThrow("grad(while)", () => grad((x: Tensor) => wl(x).sum())(xw), /whileLoop.*(scan|foriLoop)/is);
expectThrow(
  "grad(jit while)",
  () => grad((x: Tensor) => jit(wl)(x).sum())(xw),
  /whileLoop.*(scan|foriLoop)/is,
);
expectThrow(
  "jit(grad while)",
  () => jit(grad((x: Tensor) => wl(x).sum()))(xw),
  /whileLoop.*(scan|foriLoop)/is,
);
expectThrow(
  "vjp(while) ",
  () => {
    const [, pb] = vjp(wl, xw) as [Tensor, (c: Tensor) => Tensor[]];
    return pb(ones([3], f64));
  },
  /whileLoop.*(scan|foriLoop)/is,
);
expectThrow(
  "eager backward(while)",
  () => {
    const a = xw.clone().requiresGrad_();
    wl(a).sum().backward();
    return a.grad;
  },
  /whileLoop.*(scan|foriLoop)/is,
);
check("jvp(jit while) vs unrolled", () => {
  const v = randn([3], f64);
  const [, t] = jvp(jit(wl), [xw], [v]) as Tensor[];
  const [, t2] = jvp(wlM, [xw], [v]) as Tensor[];
  close(t, t2, 1e-13);
});
check("jacfwd-like: vmap(jvp(while))", () => {
  const V = randn([2, 3], f64);
  const r = vmap((v: Tensor) => (jvp(wl, [xw], [v]) as Tensor[])[1])(V) as Tensor;
  const e = vmap((v: Tensor) => (jvp(wlM, [xw], [v]) as Tensor[])[1])(V) as Tensor;
  close(r, e, 1e-13);
});
check("vmap while per-example trip count", () => {
  const wl2 = (x: Tensor) =>
    whileLoop(
      (v: Tensor) => v.lt(10),
      (v: Tensor) => v.mul(2),
      x,
    );
  const X = tensor([1, 3, 20], f64);
  close(jit(vmap(wl2))(X) as Tensor, tensor([16, 12, 20], f64), 0);
});
check("while zero iterations", () =>
  close(
    jit((x: Tensor) =>
      whileLoop(
        (v: Tensor) => v.sum().lt(-1),
        (v: Tensor) => v.add(1),
        x,
      ),
    )(ones([2])),
    ones([2]),
    0,
  ),
);
// foriLoop
const fl = (x: Tensor) => foriLoop(0, 4, (i: Tensor, v: Tensor) => v.mul(v.sin()).add(i.to("float64")), x);
const flM = (x: Tensor) => {
  let v = x;
  for (let i = 0; i < 4; i++) v = v.mul(v.sin()).add(i);
  return v;
};
check("fori jit", () => close(jit(fl)(xw), flM(xw), 1e-14));
check("fori grad(jit) FD", () =>
  close(
    grad((x: Tensor) => jit(fl)(x).sum())(xw) as Tensor,
    fdGrad((x: Tensor) => flM(x).sum(), xw),
    1e-6,
  ),
);
check("fori vmap(grad)", () => {
  const X = randn([2, 3], f64);
  close(
    vmap(grad((x: Tensor) => fl(x).sum()))(X) as Tensor,
    vmap(grad((x: Tensor) => flM(x).sum()))(X) as Tensor,
    1e-12,
  );
});
check("fori static upper", () => {
  const g = jit((x: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.add(1), x), {
    staticArgnums: 1,
  });
  close(grad((x: Tensor) => g(x, 3).sum())(ones([2])) as Tensor, ones([2]), 0);
  return `${flat(g(ones([2]), 5))}`;
});
check("fori lower>upper -> no iterations", () =>
  close(jit((x: Tensor) => foriLoop(5, 2, (_i: Tensor, v: Tensor) => v.add(1), x))(ones([2])), ones([2]), 0),
);
check("fori traced bound integral number", () => {
  const g = jit((x: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.add(1), x));
  return `${flat(g(ones([2]), 3))} ${flat(g(ones([2]), 5))} traces ${g.traceCount}`;
});
expectThrow(
  "fori traced bound, grad",
  () => {
    const g = jit((x: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.mul(2), x));
    return grad((x: Tensor) => g(x, 3).sum())(ones([2]));
  },
  /whileLoop|static/i,
);
// scan carry dtype change error
expectThrow(
  "scan carry dtype change",
  () => scan((c: Tensor, x: Tensor) => [c.add(x).to("float64"), null], zeros([]), ones([3])),
  /dtype/,
);
expectThrow(
  "scan carry shape change",
  () => jit((x: Tensor) => scan((c: Tensor, y: Tensor) => [c.add(y), null], zeros([]), x))(ones([3, 2])),
  /shape/,
);
// scan with int carry and grad on float part
check("scan int counter + float carry grad", () => {
  const f2 = (x: Tensor) =>
    scan(
      ([k, v]: [Tensor, Tensor], e: Tensor) =>
        [[k.add(1), v.mul(e).add(k.to("float64"))] as [Tensor, Tensor], null] as const,
      [tensor(0, { dtype: "int32" }), x],
      tensor([2, 3], f64),
    )[0][1];
  close(grad((x: Tensor) => jit(f2)(x).sum())(ones([2], f64)) as Tensor, tensor([6, 6], f64), 0);
});
// checkpoint inside scan body under jit grad
check("checkpoint in scan body, jit(grad)", () => {
  const blk = checkpoint((h: Tensor, a: Tensor) => h.mul(a).tanh());
  const r = (a: Tensor) => scan((h: Tensor, ai: Tensor) => [blk(h, ai), null], ones([3], f64), a)[0].sum();
  const rm = (a: Tensor) => {
    let h = ones([3], f64);
    for (let i = 0; i < 5; i++) h = h.mul(a.narrow(0, i, 1).reshape([3])).tanh();
    return h.sum();
  };
  close(jit(grad(r))(A) as Tensor, grad(rm)(A) as Tensor, 1e-13);
});
done();
