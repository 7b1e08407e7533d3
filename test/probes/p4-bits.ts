import { check, done, f64, flat } from "./h.ts";
import {
  getBackend,
  grad,
  jit,
  randn,
  tensor,
  type Tensor,
  zeros,
  manualSeed,
  where,
  softmax,
  logSoftmax,
  logsumexp,
  scan,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
manualSeed(3);
function same(a: Tensor, b: Tensor, what = "") {
  if (a.shape.join() !== b.shape.join() || a.dtype !== b.dtype)
    throw new Error(`${what} meta ${a.shape}/${a.dtype} vs ${b.shape}/${b.dtype}`);
  const x = flat(a),
    y = flat(b);
  for (let i = 0; i < y.length; i++)
    if (!Object.is(x[i], y[i])) throw new Error(`${what} elem ${i}: jit ${x[i]} eager ${y[i]}`);
}
const fns: [string, (...a: Tensor[]) => Tensor | Tensor[]][] = [
  ["chain10", (x) => x.mul(1.5).add(0.3).tanh().exp().sub(1).sigmoid().mul(x).sin().abs().sqrt()],
  [
    "softmax written",
    (x) => {
      const m = x.max(-1, true);
      const e = x.sub(m).exp();
      return e.div(e.sum(-1, true));
    },
  ],
  ["lse", (x) => logsumexp(x, -1)],
  ["softmax prim", (x) => softmax(x, -1)],
  ["logsoftmax", (x) => logSoftmax(x, -1)],
  [
    "multi-out",
    (x) => {
      const a = x.exp();
      const b = a.mul(2);
      return [a, b.add(1), b.sum(0), a.max(1)];
    },
  ],
  ["reduce non-inner axes", (x) => x.mul(x).sum(0)],
  ["mean/var", (x) => [x.mean(), x.var(1)]],
  ["min with neg", (x) => x.neg().exp().min(1)],
  ["where", (x) => where(x.gt(0), x.log(), x.mul(0.1))],
  ["relu nan", (x) => x.relu().add(x.clamp(-0.5, 0.5))],
  ["pow", (x) => x.abs().pow(2.5).add(x.pow(2))],
  ["transposed input", (x) => x.transpose(0, 1).mul(2).exp().sum(1)],
  ["broadcast row", (x) => x.add(x.sum(0, true)).mul(x.mean(1, true))],
  [
    "in-place reuse hazard",
    (x) => {
      const a = x.exp();
      const b = a.add(1);
      const c = a.mul(b);
      return [c, a];
    },
  ],
  ["matmul epilogue", (x) => x.matmul(x.transpose(0, 1)).add(1).relu().mul(0.5)],
  ["matmul+sum", (x) => x.matmul(x.transpose(0, 1)).tanh().sum(1)],
  [
    "grad of mlp",
    (x) =>
      grad((w: Tensor) => x.matmul(w).tanh().matmul(w.transpose(0, 1)).pow(2).mean())(
        x.narrow(0, 0, 7).transpose(0, 1).contiguous?.() ?? x.narrow(0, 0, 7).transpose(0, 1),
      ) as Tensor,
  ],
];
for (const shape of [
  [7, 33],
  [64, 300],
  [1, 1],
  [3, 1025],
]) {
  for (const [name, fn] of fns) {
    if (name === "grad of mlp" && shape[0] < 7) continue;
    for (const dt of ["float32", "float64"] as const) {
      check(`${name} ${shape} ${dt} jit==eager bitwise`, () => {
        const x = randn(shape, { dtype: dt });
        if (name === "relu nan") (x as any)._data && 0;
        const jf = jit(fn);
        const r1 = jf(x);
        const e = fn(x);
        const ra = Array.isArray(r1) ? r1 : [r1],
          ea = Array.isArray(e) ? e : [e];
        ra.forEach((t, i) => same(t, ea[i], `out${i}`));
        // second call with other input: earlier results must survive
        const y = randn(shape, { dtype: dt });
        const r2 = jf(y);
        const e2 = fn(y);
        const r2a = Array.isArray(r2) ? r2 : [r2],
          e2a = Array.isArray(e2) ? e2 : [e2];
        r2a.forEach((t, i) => same(t, e2a[i], `call2 out${i}`));
        ra.forEach((t, i) => same(t, ea[i], `call1 out${i} after call2`));
      });
    }
  }
}
// special values
check("nan/inf through fused max/min/sum", () => {
  const x = tensor([
    [NaN, 1, 2],
    [-Infinity, -Infinity, -Infinity],
    [Infinity, -Infinity, 0],
    [1, NaN, -Infinity],
  ]);
  const fn = (t: Tensor) => [
    t.mul(1).max(1),
    t.add(0.5).min(1),
    t.exp().sum(1),
    t.relu(),
    t.abs().sqrt().max(0),
  ];
  const r = jit(fn)(x) as Tensor[];
  const e = fn(x);
  r.forEach((t, i) => same(t, e[i], `out${i}`));
});
check("integer ops bitwise", () => {
  const a = tensor([-7, -3, 0, 5, 9, 2147483647], { dtype: "int32" });
  const b = tensor([2, -2, 3, -4, 5, 2], { dtype: "int32" });
  const fn = (p: Tensor, q: Tensor) => [
    p.add(q).mul(q),
    p.div(q),
    p.neg().abs(),
    p.maximum(q),
    p.mul(3).add(1),
  ];
  const r = jit(fn)(a, b) as Tensor[];
  const e = fn(a, b);
  r.forEach((t, i) => same(t, e[i], `out${i}`));
});
check("held view outputs across calls", () => {
  const fn = (x: Tensor) => {
    const a = x.exp();
    return [a.reshape([-1]), a.transpose(0, 1), a.narrow(1, 1, 2)];
  };
  const jf = jit(fn);
  const x = randn([3, 4]);
  const r = jf(x) as Tensor[];
  const e = fn(x);
  jf(randn([3, 4]));
  jf(randn([3, 4]));
  r.forEach((t, i) => same(t, e[i], `view out${i}`));
});
check("output aliases input", () => {
  const jf = jit((x: Tensor) => [x, x.reshape([-1]), x.mul(2)]);
  const x = randn([2, 2]);
  const r = jf(x) as Tensor[];
  const snap = flat(x);
  jf(randn([2, 2]));
  same(r[0], tensor(snap).reshape([2, 2]));
});
check("scan ys held across calls", () => {
  const jf = jit((x: Tensor) => scan((c: Tensor, e: Tensor) => [c.add(e), c.mul(e)], zeros([3]), x));
  const x = randn([4, 3]);
  const [c1, y1] = jf(x) as Tensor[];
  const s1 = flat(y1),
    sc = flat(c1);
  jf(randn([4, 3]));
  jf(randn([4, 3]));
  if (JSON.stringify(flat(y1)) !== JSON.stringify(s1) || JSON.stringify(flat(c1)) !== JSON.stringify(sc))
    throw new Error("overwritten");
});
check("half dtypes", () => {
  const x = randn([5, 7]).to("bfloat16");
  const fn = (t: Tensor) => t.mul(2).exp().sum(1);
  same(jit(fn)(x), fn(x));
  const y = randn([5, 7]).to("float16");
  same(jit(fn)(y), fn(y));
});
check("mixed dtype promotion", () => {
  const fn = (a: Tensor, b: Tensor, c: Tensor) => a.add(b).mul(c);
  const a = randn([3]),
    b = randn([3], f64),
    c = tensor([1, 2, 3], { dtype: "int32" });
  same(jit(fn)(a, b, c), fn(a, b, c));
});
check("large 1M chain", () => {
  const x = randn([1 << 20]);
  const fn = fns[0][1];
  same(jit(fn)(x) as Tensor, fn(x) as Tensor);
});
done();
