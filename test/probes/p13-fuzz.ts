import { flat } from "./h.ts";
import { getBackend, jit, randn, type Tensor, grad, where } from "../../src/index.ts";
console.log("backend", getBackend().name);
let seed = Number(process.env.SEED ?? 1);
const rnd = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
const un: ((t: Tensor) => Tensor)[] = [
  (t) => t.exp(),
  (t) => t.tanh(),
  (t) => t.sin(),
  (t) => t.neg(),
  (t) => t.abs().sqrt(),
  (t) => t.sigmoid(),
  (t) => t.relu(),
  (t) => t.mul(1.7),
  (t) => t.add(0.3),
  (t) => t.square(),
  (t) => t.abs().add(1).log(),
];
const bin: ((a: Tensor, b: Tensor) => Tensor)[] = [
  (a, b) => a.add(b),
  (a, b) => a.mul(b),
  (a, b) => a.sub(b),
  (a, b) => a.div(b.abs().add(1)),
  (a, b) => a.maximum?.(b) ?? a.add(b),
  (a, b) => where(a.gt(b), a, b),
];
const red: ((t: Tensor) => Tensor)[] = [
  (t) => t.sum(-1, true),
  (t) => t.max(-1, true),
  (t) => t.mean(0, true),
  (t) => t.sum(0, true),
  (t) => t.min(-1, true),
];
function gen(nops: number) {
  const steps: ((env: Tensor[]) => Tensor)[] = [];
  for (let i = 0; i < nops; i++) {
    const r = rnd();
    const ia = Math.floor(rnd() * (i + 2)),
      ib = Math.floor(rnd() * (i + 2));
    if (r < 0.45) {
      const u = pick(un);
      steps.push((e) => u(e[ia]));
    } else if (r < 0.8) {
      const b = pick(bin);
      steps.push((e) => b(e[ia], e[ib]));
    } else if (r < 0.9) {
      const rd = pick(red);
      steps.push((e) => rd(e[ia]).add(e[ib]));
    } else {
      steps.push((e) => e[ia].transpose(0, 1).contiguous?.().transpose(0, 1) ?? e[ia]);
    }
  }
  const nout = 1 + Math.floor(rnd() * 3);
  const outIdx = Array.from({ length: nout }, () => Math.floor(rnd() * (nops + 2)));
  return (a: Tensor, b: Tensor) => {
    const env = [a, b];
    for (const s of steps) env.push(s(env));
    return outIdx.map((i) => env[i]);
  };
}
const N = Number(process.env.N ?? 150);
let bad = 0;
for (let k = 0; k < N; k++) {
  const f = gen(3 + Math.floor(rnd() * 10));
  const shape = pick([
    [5, 7],
    [33, 65],
    [1, 9],
    [64, 256],
  ]);
  const dt = pick(["float32", "float64"] as const);
  const a = randn(shape, { dtype: dt }),
    b = randn(shape, { dtype: dt });
  const view = rnd() < 0.3;
  const A = view ? randn([shape[1], shape[0]], { dtype: dt }).transpose(0, 1) : a;
  try {
    const e = f(A, b);
    const jf = jit(f);
    const j = jf(A, b) as Tensor[];
    const j2 = jf(A, b) as Tensor[];
    const donate = jit(f, { donateArgnums: 1 });
    const bc = b.clone();
    const jd = donate(A, bc) as Tensor[];
    for (let i = 0; i < e.length; i++) {
      for (const [nm, got] of [
        ["jit", j[i]],
        ["jit2", j2[i]],
        ["donate", jd[i]],
      ] as [string, Tensor][]) {
        const x = flat(got),
          y = flat(e[i]);
        if (got.shape.join() !== e[i].shape.join()) throw new Error(`${nm} shape`);
        for (let q = 0; q < y.length; q++)
          if (!Object.is(x[q], y[q])) throw new Error(`${nm} out${i} elem ${q}: ${x[q]} vs ${y[q]}`);
      }
    }
    const g = grad((p: Tensor, q: Tensor) => f(p, q).reduce((s, t) => s.add(t.sum()), p.sum().mul(0)), {
      argnums: [0, 1],
    });
    const ge = g(A, b) as Tensor[];
    const gj = jit(g)(A, b) as Tensor[];
    for (let i = 0; i < 2; i++) {
      const x = flat(gj[i]),
        y = flat(ge[i]);
      for (let q = 0; q < y.length; q++)
        if (!Object.is(x[q], y[q]) && Math.abs(x[q] - y[q]) > 1e-5 * (1 + Math.abs(y[q])))
          throw new Error(`grad${i} elem ${q}: ${x[q]} vs ${y[q]}`);
    }
  } catch (err) {
    bad++;
    console.log(`FAIL case ${k} shape ${shape} ${dt} view=${view}: ${(err as Error).message.slice(0, 200)}`);
  }
}
console.log(`== fuzz ${N} cases, ${bad} failures on ${getBackend().name}`);
if (bad > 0) process.exitCode = 1;
