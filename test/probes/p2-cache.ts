import { check, close, done, expectThrow, f64, flat } from "./h.ts";
import {
  getBackend,
  grad,
  jit,
  randn,
  tensor,
  type Tensor,
  zeros,
  ones,
  vmap,
  full,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
const f = (x: Tensor) => x.mul(2).add(1);
const jf = jit(f);
check("retrace on shape", () => {
  jf(ones([2]));
  jf(ones([2]));
  jf(ones([3]));
  if (jf.traceCount !== 2) throw new Error(`traceCount ${jf.traceCount}`);
});
check("retrace on dtype", () => {
  const r = jf(ones([2], f64));
  if (r.dtype !== "float64") throw new Error(r.dtype);
  if (jf.traceCount !== 3) throw new Error(`tc ${jf.traceCount}`);
});
check("int32 input", () => {
  const r = jf(tensor([1, 2], { dtype: "int32" }));
  if (r.dtype !== "int32") throw new Error(r.dtype);
  close(r, tensor([3, 5], { dtype: "int32" }), 0);
});
check("bool input", () => {
  const r = jit((b: Tensor) => b.logicalNot().logicalAnd(b.logicalNot()))(tensor([true, false]));
  return `${r.dtype} ${flat(r)}`;
});
check("bool add (promotion)", () => {
  const b = tensor([true, false]);
  const e = b.add(b);
  const r = jit((t: Tensor) => t.add(t))(b);
  close(r, e, 0);
  return `${r.dtype}`;
});
check("scalar tensor in", () => close(jf(tensor(3)), tensor(7), 0));
check("zero-size", () => {
  const r = jf(zeros([0, 3]));
  if (r.shape.join() !== "0,3") throw new Error(String(r.shape));
});
check("zero-size reductions", () => {
  const g = jit((x: Tensor) => [x.sum(), x.sum(0), x.max(1)]);
  const r = g(zeros([0, 3])) as Tensor[];
  return r.map((t) => `${t.shape}:${flat(t)}`).join(" ");
});
expectThrow(
  "zero-size max over empty axis",
  () => jit((x: Tensor) => x.max(0))(zeros([0, 3])),
  /empty|zero|size/i,
);
check("broadcasting inside jit", () => {
  const g = jit((a: Tensor, b: Tensor) => a.add(b).mul(a));
  const a = randn([3, 1]);
  const b = randn([4]);
  close(g(a, b), a.add(b).mul(a), 0);
});
// static args: strings/objects
check("static string", () => {
  let n = 0;
  const g = jit(
    (x: Tensor, mode: string) => {
      n++;
      return mode === "a" ? x.add(1) : x.sub(1);
    },
    { staticArgnums: [1] },
  );
  close(g(ones([2]), "a"), full([2], 2), 0);
  close(g(ones([2]), "b"), zeros([2]), 0);
  g(ones([2]), "a");
  if (n !== 2) throw new Error(`traced ${n}`);
});
check("static plain object by value", () => {
  let n = 0;
  const g = jit(
    (x: Tensor, o: { k: number }) => {
      n++;
      return x.mul(o.k);
    },
    { staticArgnums: 1 },
  );
  close(g(ones([2]), { k: 2 }), full([2], 2), 0);
  close(g(ones([2]), { k: 3 }), full([2], 3), 0);
  g(ones([2]), { k: 2 });
  return `traces ${n}`;
});
expectThrow(
  "tensor as static",
  () => jit((x: Tensor, y: Tensor) => x.add(y), { staticArgnums: 1 })(ones([2]), ones([2])),
  /static/i,
);
// pytree structure retrace
check("pytree structure retrace", () => {
  const g = jit((p: any) => (Array.isArray(p) ? p[0].add(p[1]) : p.a.mul(p.b)));
  close(g([ones([2]), ones([2])]), full([2], 2), 0);
  close(g({ a: full([2], 3), b: full([2], 2) }), full([2], 6), 0);
  return `traces ${g.traceCount}`;
});
// donation
check("donate then reuse -> clear error", () => {
  const g = jit((x: Tensor, y: Tensor) => x.add(y), { donateArgnums: 0 });
  const a = randn([4]);
  const b = randn([4]);
  const e = a.add(b);
  const r = g(a, b);
  close(r, e, 0);
  try {
    const z = a.add(1);
    return `NO ERROR: ${flat(z)}`;
  } catch (er) {
    return `err: ${(er as Error).message.slice(0, 150)}`;
  }
});
check("donate then reuse via jit again -> clear error", () => {
  const g = jit((x: Tensor) => x.mul(3), { donateArgnums: 0 });
  const a = randn([4]);
  g(a);
  try {
    g(a);
    return "NO ERROR";
  } catch (er) {
    return `err: ${(er as Error).message.slice(0, 150)}`;
  }
});
check("donate then toArray/item/print", () => {
  const g = jit((x: Tensor) => x.mul(3), { donateArgnums: 0 });
  const a = randn([4]);
  g(a);
  const out: string[] = [];
  for (const [n, fn] of [
    ["toArray", () => a.toArray()],
    ["dataSync", () => (a as any).dataSync()],
    ["toString", () => String(a)],
    ["shape", () => a.shape],
    ["grad", () => grad((t: Tensor) => t.sum())(a)],
    ["reshape", () => a.reshape([2, 2]).toArray()],
    ["eager pass to other jit", () => jit((t: Tensor) => t.add(1))(a)],
  ] as [string, () => unknown][]) {
    try {
      const r = fn();
      out.push(`${n}: NO ERROR ${JSON.stringify(r)?.slice(0, 60)}`);
    } catch (_er) {
      out.push(`${n}: err`);
    }
  }
  return out.join("; ");
});
check("donated and returned out", () => {
  const g = jit((x: Tensor) => [x, x.add(1)], { donateArgnums: 0 });
  const a = tensor([1, 2]);
  const [p, q] = g(a) as Tensor[];
  return `${flat(p)} ${flat(q)} a=${flat(a)}`;
});
check("donate under vmap", () => {
  const g = jit((x: Tensor) => x.mul(2), { donateArgnums: 0 });
  const a = randn([3, 2]);
  const e = a.mul(2);
  close(vmap(g)(a) as Tensor, e, 0);
  try {
    return `a after: ${flat(a).length}`;
  } catch (er) {
    return `a deleted: ${(er as Error).message.slice(0, 80)}`;
  }
});
check("donate under grad", () => {
  const g = jit((x: Tensor) => x.mul(x).sum(), { donateArgnums: 0 });
  const a = tensor([1, 2]);
  const gg = grad(g)(a) as Tensor;
  close(gg, tensor([2, 4]), 0);
  try {
    return `a after: ${flat(a)}`;
  } catch (er) {
    return `a deleted: ${(er as Error).message.slice(0, 80)}`;
  }
});
// closure over tensor that changes
check("closure updated in place", () => {
  const w = tensor([1, 2]);
  const g = jit((x: Tensor) => x.mul(w));
  close(g(ones([2])), tensor([1, 2]), 0);
  (w as any).copy_?.(tensor([5, 6])) ?? w.mul_?.(tensor([5, 3]));
  return `${flat(g(ones([2])))} w=${flat(w)}`;
});
check("closure rebinding (let) is trace-time", () => {
  let w = tensor([1, 2]);
  const g = jit((x: Tensor) => x.mul(w));
  g(ones([2]));
  w = tensor([7, 7]);
  return `after rebinding: ${flat(g(ones([2])))} (JAX: stays [1,2])`;
});
check("console.log runs at trace only", () => {
  let n = 0;
  const g = jit((x: Tensor) => {
    n++;
    return x.add(1);
  });
  g(ones([2]));
  g(ones([2]));
  g(ones([2]));
  if (n !== 1) throw new Error(`side effect ran ${n} times`);
});
// number args
check("number arg no retrace", () => {
  const g = jit((x: Tensor, s: number) => x.mul(s));
  g(ones([2]), 0.5);
  g(ones([2]), 0.25);
  close(g(ones([2]), 0.125), full([2], 0.125), 0);
  return `traces ${g.traceCount}`;
});
check("number arg int->frac retrace", () => {
  const g = jit((x: Tensor, s: number) => x.mul(s));
  g(tensor([1, 2], { dtype: "int32" }), 2);
  const r = g(tensor([1, 2], { dtype: "int32" }), 2.5);
  return `${r.dtype} ${flat(r)} traces ${g.traceCount}`;
});
// returning non-tensor / nothing
check("returns a number constant", () => {
  const r = jit((x: Tensor) => [x.add(1), 3, "s"])(ones([1])) as unknown[];
  return JSON.stringify(r.slice(1));
});
// grad of integer input
expectThrow(
  "grad(int32 input)",
  () => grad((x: Tensor) => x.mul(2).sum())(tensor([1, 2], { dtype: "int32" })),
  /int|float|differentiab/i,
);
expectThrow(
  "grad(jit) int32 input",
  () => grad(jit((x: Tensor) => x.mul(2).sum()))(tensor([1, 2], { dtype: "int32" })),
  /int|float|differentiab/i,
);
expectThrow(
  "jit(grad) int32 input",
  () => jit(grad((x: Tensor) => x.mul(2).sum()))(tensor([1, 2], { dtype: "int32" })),
  /int|float|differentiab/i,
);
expectThrow("grad nonscalar out under jit", () => jit(grad((x: Tensor) => x.mul(2)))(ones([2])), /scalar/i);
// jit of jit with statics, nested retrace
check("nested jit", () => {
  const inner = jit((x: Tensor, k: number) => x.mul(k), { staticArgnums: 1 });
  const outer = jit((x: Tensor) => inner(x, 3).add(inner(x, 4)));
  close(outer(ones([2])), full([2], 7), 0);
});
// float64 precision preserved
check("float64 precision", () => {
  const x = tensor([1e-10, 1 + 1e-12], f64);
  const g = (t: Tensor) => t.add(1).sub(1).mul(1e10).exp();
  close(jit(g)(x), g(x), 0);
});
// jit on a method with this (class)
check("same function jitted twice shares nothing", () => {
  const a = jit(f),
    b = jit(f);
  a(ones([2]));
  b(ones([2]));
  return `${a.traceCount} ${b.traceCount}`;
});
done();
