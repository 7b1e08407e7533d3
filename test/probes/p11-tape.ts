import { check, close, done, f64, flat } from "./h.ts";
import {
  getBackend,
  grad,
  jit,
  noGrad,
  randn,
  scan,
  cond,
  tensor,
  type Tensor,
  autocast,
} from "../../src/index.ts";
import * as nn from "../../src/nn/index.ts";
console.log("backend", getBackend().name);
const x = randn([3], f64);
check("noGrad around jit with requiresGrad input: no history", () => {
  const a = x.clone().requiresGrad_();
  const r = noGrad(() => jit((t: Tensor) => t.sin())(a));
  if (r.requiresGrad) throw new Error("has history");
});
check("jit with requiresGrad + donate: donation skipped, backward works", () => {
  const a = x.clone().requiresGrad_();
  const r = jit((t: Tensor) => t.sin().sum(), { donateArgnums: 0 })(a);
  r.backward();
  close(a.grad!, x.cos(), 1e-15);
  return `a alive ${flat(a).length}`;
});
check("eager tape through jit(scan+cond)", () => {
  const a = x.clone().requiresGrad_();
  const f = (t: Tensor) =>
    scan(
      (c: Tensor, e: Tensor) => [
        cond(
          e.gt(0),
          (q: Tensor) => q.mul(e),
          (q: Tensor) => q.sub(e),
          c,
        ),
        null,
      ],
      t,
      tensor([1, -2, 3], f64),
    )[0].sum();
  jit(f)(a).backward();
  close(a.grad!, grad(f)(x) as Tensor, 0);
});
check("model param grads through jit equal eager", () => {
  const m = new nn.Sequential(new nn.Linear(3, 4), new nn.Tanh(), new nn.Linear(4, 1));
  const xi = randn([5, 3]);
  const jf = jit((t: Tensor) => (m as any).call(t).square().mean());
  jf(xi).backward();
  const g1 = m.parameters().map((p: Tensor) => flat(p.grad!));
  for (const p of m.parameters()) (p as any).grad = null;
  (m as any).call(xi).square().mean().backward();
  const g2 = m.parameters().map((p: Tensor) => flat(p.grad!));
  for (let i = 0; i < g1.length; i++)
    for (let j = 0; j < g1[i].length; j++)
      if (Math.abs(g1[i][j] - g2[i][j]) > 1e-6) throw new Error(`${i},${j}: ${g1[i][j]} vs ${g2[i][j]}`);
});
check("jit under autocast", () => {
  const w = randn([4, 4]);
  const jf = jit((t: Tensor) => t.matmul(w).relu().sum(1));
  const xi = randn([3, 4]);
  const a = autocast({}, () => jf(xi));
  const b = autocast({}, () => xi.matmul(w).relu().sum(1));
  close(a, b, 0);
  return a.dtype;
});
check("jit called inside and outside autocast retraces", () => {
  const w = randn([4, 4]);
  const jf = jit((t: Tensor) => t.matmul(w));
  const xi = randn([3, 4]);
  const a = jf(xi);
  const b = autocast({}, () => jf(xi));
  const c = jf(xi);
  return `${a.dtype} ${b.dtype} ${c.dtype} traces ${jf.traceCount}`;
});
done();
