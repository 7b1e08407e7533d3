import { check, close, done, f64 } from "./h.ts";
import { checkpoint, cond, customJvp, getBackend, jit, randn, scan, type Tensor } from "../../src/index.ts";
import * as nn from "../../src/nn/index.ts";
console.log("backend", getBackend().name);
const x0 = randn([3], f64),
  w0 = randn([3], f64),
  X = randn([4, 3], f64);
const soft = customJvp(
  (a: Tensor) => a.exp().log1p(),
  (p, t) => [p[0].exp().log1p(), t[0].mul(p[0].sigmoid())],
);
const bodies: [string, (w: Tensor) => (t: Tensor) => Tensor][] = [
  ["scan", (w) => (t) => scan((c: Tensor, e: Tensor) => [c.mul(e).add(w).sin(), null], t, X)[0].sum()],
  [
    "cond",
    (w) => (t) =>
      cond(
        t.sum().gt(-100),
        (q: Tensor) => q.mul(w).tanh(),
        (q: Tensor) => q,
        t,
      ).sum(),
  ],
  ["customJvp", (w) => (t) => soft(t.mul(w)).sum()],
  [
    "nested jit",
    (w) => (t) =>
      jit((q: Tensor) => q.mul(w).cos())(t)
        .pow(2)
        .sum(),
  ],
];
const wraps: [string, (f: (t: Tensor) => Tensor) => (t: Tensor) => Tensor][] = [
  ["jit", (f) => jit(f)],
  ["checkpoint", (f) => checkpoint(f)],
  ["jit(checkpoint)", (f) => jit(checkpoint(f))],
  ["checkpoint(jit)", (f) => checkpoint(jit(f))],
];
const run = (
  body: (w: Tensor) => (t: Tensor) => Tensor,
  wrap: (f: (t: Tensor) => Tensor) => (t: Tensor) => Tensor,
) => {
  const w = w0.clone().requiresGrad_();
  const a = x0.clone().requiresGrad_();
  wrap(body(w))(a.mul(1.3)).backward(undefined, { createGraph: true });
  const ga = a.grad!,
    gw = w.grad!;
  a.grad = null;
  w.grad = null;
  ga.square().sum().add(gw.square().sum()).backward();
  return [ga, gw, a.grad!, w.grad!];
};
for (const [bn, b] of bodies) {
  const want = run(b, (f) => f);
  for (const [wn, wr] of wraps)
    check(`${bn} / ${wn}: double backward == eager`, () => {
      const got = run(b, wr);
      got.forEach((t, i) => close(t, want[i], 1e-11, `part ${i}`));
    });
}
check("module inside checkpoint, createGraph, param grads have history", () => {
  const m = new nn.Sequential(
    new nn.Linear(3, 4, { dtype: "float64" } as never),
    new nn.Tanh(),
    new nn.Linear(4, 1, { dtype: "float64" } as never),
  );
  const xin = randn([5, 3], f64).requiresGrad_();
  const res: number[][] = [];
  for (const wrap of [(f: any) => f, checkpoint, jit]) {
    for (const p of m.parameters()) (p as any).grad = null;
    xin.grad = null;
    wrap((t: Tensor) => (m as any).call(t).sum())(xin).backward(undefined, { createGraph: true });
    const pen = m
      .parameters()
      .reduce((s: Tensor, p: Tensor) => s.add(p.grad!.square().sum()), xin.grad!.square().sum());
    for (const p of m.parameters()) (p as any).grad = null;
    xin.grad = null;
    pen.backward();
    res.push([
      ...Array.from(xin.grad!.dataSync(), Number),
      ...m
        .parameters()
        .flatMap((p: Tensor) =>
          p.grad === null ? new Array(p.size).fill(0) : Array.from(p.grad.dataSync(), Number),
        ),
    ]);
  }
  for (const r of res.slice(1))
    for (let i = 0; i < r.length; i++)
      if (Math.abs(r[i] - res[0][i]) > 1e-10 * (1 + Math.abs(res[0][i])))
        throw new Error(`${i}: ${r[i]} vs ${res[0][i]}`);
});
done();
