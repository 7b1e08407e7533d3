import { check, close, done, expectThrow, f64, flat } from "./h.ts";
import {
  getBackend,
  grad,
  jit,
  jvp,
  ones,
  randn,
  scan,
  type Tensor,
  vmap,
  zeros,
  cond,
  makeJaxpr,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
const x = randn([3], f64),
  X = randn([4, 3], f64);
expectThrow(
  "leaked jit tracer used later",
  () => {
    let leaked: Tensor | null = null;
    jit((a: Tensor) => {
      leaked = a.mul(2);
      return a;
    })(ones([2]));
    return (leaked as unknown as Tensor).add(1).toArray();
  },
  /leak|tracer|traced|escaped|abstract/i,
);
expectThrow(
  "leaked scan-body tracer used later",
  () => {
    let leaked: Tensor | null = null;
    scan(
      (c: Tensor, e: Tensor) => {
        leaked = c;
        return [c.add(e), null];
      },
      zeros([]),
      ones([3]),
    );
    return (leaked as unknown as Tensor).add(1).toArray();
  },
  /leak|tracer|traced|escaped|abstract/i,
);
expectThrow(
  "leaked grad tracer",
  () => {
    let leaked: Tensor | null = null;
    grad((a: Tensor) => {
      leaked = a;
      return a.sum();
    })(x);
    return (leaked as unknown as Tensor).add(1).toArray();
  },
  /leak|tracer|escaped/i,
);
check("vmap(jit) inside scan body", () => {
  const g = jit((a: Tensor, b: Tensor) => a.mul(b));
  const r = scan((c: Tensor, e: Tensor) => [vmap(g, { inAxes: [0, null] })(c, e) as Tensor, null], X, X)[0];
  let e = X;
  for (let i = 0; i < 4; i++) e = e.mul(X.narrow(0, i, 1).reshape([3]));
  close(r, e, 1e-14);
});
check("jit(vmap(scan)) over batched xs", () => {
  const f = (xs: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e).add(1), c], ones([], f64), xs);
  const XB = randn([2, 5], f64);
  const [c, ys] = jit(vmap(f))(XB) as Tensor[];
  const [c0, y0] = f(XB.narrow(0, 0, 1).reshape([5])) as Tensor[];
  close(c.narrow(0, 0, 1).reshape([]), c0, 1e-15);
  close(ys.narrow(0, 0, 1).reshape([5]), y0, 1e-15);
});
check("clearCache then call", () => {
  const jf = jit((a: Tensor) => a.exp());
  jf(x);
  (jf as any).clearCache();
  close(jf(x), x.exp(), 0);
  return `traces ${jf.traceCount}`;
});
check("memoryStats exists", () => {
  const jf = jit((a: Tensor) => a.exp().mul(2).sin());
  jf(x);
  jf(x);
  return JSON.stringify((jf as any).memoryStats?.()).slice(0, 150);
});
check("float16 grad through jit", () => {
  const a = randn([4]).to("float16");
  const g = grad(jit((t: Tensor) => t.mul(t).sum()))(a) as Tensor;
  return `${g.dtype} ${flat(g)} vs ${flat(a.mul(2))}`;
});
check("bfloat16 jvp through jit", () => {
  const a = randn([4]).to("bfloat16");
  const [, t] = jvp(
    jit((q: Tensor) => q.exp()),
    [a],
    [ones([4]).to("bfloat16")],
  ) as Tensor[];
  return `${t.dtype}`;
});
check("cond pred from float tensor (nonzero)", () => {
  const r = jit((a: Tensor) =>
    cond(
      a.sum(),
      (q: Tensor) => q.add(1),
      (q: Tensor) => q.sub(1),
      a,
    ),
  )(ones([2]));
  return `${flat(r)}`;
});
check(
  "makeJaxpr(vmap(jit(grad(scan))))",
  () =>
    `${
      String(
        makeJaxpr(
          vmap(jit(grad((a: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e), null], a, X)[0].sum()))),
        )(X),
      ).split("\n").length
    } lines`,
);
check("jit of fn with default param", () => {
  const jf = jit((a: Tensor, k = 2) => a.mul(k));
  close(jf(x) as Tensor, x.mul(2), 0);
  close(jf(x, 3) as Tensor, x.mul(3), 0);
});
check("jit rest args", () => {
  const jf = jit((...ts: Tensor[]) => ts.reduce((a, b) => a.add(b)));
  close(jf(x, x, x) as Tensor, x.mul(3), 0);
  close(jf(x, x) as Tensor, x.mul(2), 0);
  return `traces ${jf.traceCount}`;
});
check("jit with Map arg", () => {
  try {
    const r = jit((m: Map<string, Tensor>) => m.get("a")!.add(1))(new Map([["a", x]]));
    return `ok ${flat(r as Tensor)}`;
  } catch (e) {
    return `err: ${(e as Error).message.slice(0, 160)}`;
  }
});
check("jit with class instance holding tensors", () => {
  class P {
    constructor(public w: Tensor) {}
  }
  const p = new P(x);
  const jf = jit((q: P, a: Tensor) => a.mul(q.w));
  const r1 = jf(p, ones([3], f64));
  p.w = x.mul(2);
  const r2 = jf(p, ones([3], f64));
  return `r1=${flat(r1 as Tensor).map((v) => v.toFixed(2))} r2=${flat(r2 as Tensor).map((v) => v.toFixed(2))} (class instance is static by identity: r2 stale?)`;
});
done();
