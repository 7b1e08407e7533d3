import { check, close, done, expectThrow, flat } from "./h.ts";
import {
  arange,
  getBackend,
  grad,
  jit,
  ones,
  randn,
  scan,
  tensor,
  type Tensor,
  vmap,
  zeros,
  full,
  cond,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
check("mutating a returned trace-time constant does not change the next call", () => {
  const jf = jit((x: Tensor) => [x.add(1), ones([2]), arange(0, 3)]);
  const r = jf(zeros([2])) as Tensor[];
  (r[1] as any).add_(5);
  (r[2] as any).mul_(0);
  const r2 = jf(zeros([2])) as Tensor[];
  return `ones->${flat(r2[1])} arange->${flat(r2[2])}`;
});
check("mutating a returned output does not change next call", () => {
  const jf = jit((x: Tensor) => x.mul(2));
  const r = jf(ones([3]));
  (r as any).add_(5);
  const r2 = jf(ones([3]));
  close(r2, full([3], 2), 0);
});
check("mutating output of scan does not poison", () => {
  const jf = jit((x: Tensor) => scan((c: Tensor, e: Tensor) => [c.add(e), c], zeros([2]), x));
  const [c, ys] = jf(ones([3, 2])) as Tensor[];
  (c as any).add_(100);
  (ys as any).add_(100);
  const [c2, ys2] = jf(ones([3, 2])) as Tensor[];
  return `${flat(c2)} | ${flat(ys2)}`;
});
check("constant output of cond", () => {
  const jf = jit((x: Tensor) =>
    cond(
      x.sum().gt(0),
      () => ones([2]),
      () => zeros([2]),
    ),
  );
  const r = jf(ones([1]));
  (r as any).add_(7);
  return `${flat(jf(ones([1])))}`;
});
check("same output twice is one tensor or two", () => {
  const jf = jit((x: Tensor) => {
    const y = x.exp();
    return [y, y];
  });
  const [a, b] = jf(ones([2])) as Tensor[];
  (a as any).add_(1);
  return `a===b ${a === b}; b=${flat(b)}`;
});
check("eager: same output twice", () => {
  const f = (x: Tensor) => {
    const y = x.exp();
    return [y, y];
  };
  const [a, b] = f(ones([2]));
  return `a===b ${a === b}`;
});
check("returning closed-over tensor", () => {
  const w = tensor([1, 2]);
  const jf = jit((x: Tensor) => [x.add(w), w]);
  const [, ww] = jf(ones([2])) as Tensor[];
  return `is w: ${ww === w}; ${flat(ww)}`;
});
check("returning closed-over tensor reshaped, then w mutated", () => {
  const w = tensor([1, 2, 3, 4]);
  const jf = jit((x: Tensor) => [x, w.reshape([2, 2])]);
  const [, ww] = jf(ones([2])) as Tensor[];
  (w as any).add_(10);
  const [, w2] = jf(ones([2])) as Tensor[];
  return `held ${flat(ww)} new ${flat(w2)}`;
});
check("returned trace-time constant derived from closed-over: after mutation", () => {
  const w = tensor([1, 2]);
  const jf = jit((x: Tensor) => [x, w.mul(2)]);
  jf(ones([1]));
  (w as any).add_(1);
  const [, r] = jf(ones([1])) as Tensor[];
  close(r, tensor([4, 6]), 0);
});
check("vmap(jit) batch size 0", () => {
  const r = vmap(jit((x: Tensor) => x.sin().sum()))(zeros([0, 3])) as Tensor;
  return `${r.shape}`;
});
check("vmap(jit) batch size 1", () => {
  const x = randn([1, 3]);
  close(vmap(jit((a: Tensor) => a.sin().sum()))(x) as Tensor, x.sin().sum(1), 0);
});
check("grad(jit) batch 0 sum", () => {
  const r = grad(jit((x: Tensor) => x.sin().sum()))(zeros([0, 3])) as Tensor;
  return `${r.shape}`;
});
check("same tensor as two args both donated", () => {
  const jf = jit((a: Tensor, b: Tensor) => a.add(b).mul(a), { donateArgnums: [0, 1] });
  const t = tensor([1, 2]);
  close(jf(t, t), tensor([2, 8]), 0);
});
check("donated arg used twice in pytree", () => {
  const jf = jit((p: Tensor[]) => p[0].mul(3).add(p[1].exp()), { donateArgnums: 0 });
  const t = tensor([1, 2]);
  const e = t.mul(3).add(t.exp());
  close(jf([t, t]), e, 0);
});
expectThrow(
  "in-place op on intermediate inside jit",
  () =>
    jit((x: Tensor) => {
      const y = x.mul(1);
      (y as any).add_(1);
      return y;
    })(ones([2])),
  /in-place/,
);
expectThrow(
  "in-place op on input inside jit",
  () =>
    jit((x: Tensor) => {
      (x as any).add_(1);
      return x;
    })(ones([2])),
  /in place|in-place|jit/i,
);
done();
