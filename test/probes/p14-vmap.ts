import { check, close, done, expectThrow, f64 } from "./h.ts";
import {
  getBackend,
  grad,
  jit,
  jvp,
  ones,
  randn,
  scan,
  tensor,
  type Tensor,
  vmap,
  zeros,
  cond,
  whileLoop,
  switchCase,
} from "../../src/index.ts";
console.log("backend", getBackend().name);
const X = randn([4, 3], f64),
  x = randn([3], f64);
check("vmap(jit) output independent of batch is broadcast", () => {
  const r = vmap(jit((a: Tensor) => [a.sum(), ones([2])]))(X) as Tensor[];
  return `${r[0].shape} ${r[1].shape}`;
});
check("vmap output closed-over unbatched", () => {
  const r = vmap((_a: Tensor) => x)(X) as Tensor;
  return `${r.shape}`;
});
expectThrow(
  "vmap all inAxes null",
  () => vmap((a: Tensor) => a.sum(), { inAxes: null } as never)(X),
  /batch|axis|size/i,
);
check("vmap negative inAxes", () =>
  close(vmap((a: Tensor) => a.sum(), { inAxes: -1 } as never)(X.transpose(0, 1)) as Tensor, X.sum(1), 1e-15),
);
expectThrow(
  "vmap mismatched batch sizes",
  () => vmap((a: Tensor, b: Tensor) => a.add(b))(X, randn([5, 3], f64)),
  /size|batch/i,
);
check("vmap(jit) with int batch", () => {
  const r = vmap(jit((i: Tensor, a: Tensor) => a.mul(i.to("float64"))))(
    tensor([1, 2, 3, 4], { dtype: "int32" }),
    X,
  ) as Tensor;
  close(r, X.mul(tensor([[1], [2], [3], [4]], f64)), 0);
});
check("vmap scan with batched carry but unbatched xs, grad wrt carry", () => {
  const f = (c0: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e).sin(), c.sum()], c0, X)[1].sum();
  const r = vmap(grad(f))(X) as Tensor;
  const e = vmap(
    grad((c0: Tensor) => {
      let c = c0;
      let s = zeros([], f64);
      for (let i = 0; i < 4; i++) {
        s = s.add(c.sum());
        c = c.mul(X.narrow(0, i, 1).reshape([3])).sin();
      }
      return s;
    }),
  )(X) as Tensor;
  close(r, e, 1e-13);
});
check("vmap cond with batched operand only", () => {
  const r = vmap((a: Tensor) =>
    cond(
      tensor(true),
      (q: Tensor) => q.exp(),
      (q: Tensor) => q,
      a,
    ),
  )(X) as Tensor;
  close(r, X.exp(), 0);
});
check("vmap switch with batched index, pytree out", () => {
  const r = vmap((i: Tensor, a: Tensor) =>
    switchCase(i, [(q: Tensor) => ({ u: q, v: q.sum() }), (q: Tensor) => ({ u: q.neg(), v: q.prod() })], a),
  )(tensor([0, 1, 0, 1], { dtype: "int32" }), X) as any;
  return `${r.u.shape} ${r.v.shape}`;
});
check("nested vmap of jit(grad(scan))", () => {
  const f = (a: Tensor) => scan((c: Tensor, e: Tensor) => [c.mul(e), null], a, X)[0].sum();
  const Y = randn([2, 4, 3], f64);
  const r = vmap(vmap(jit(grad(f))))(Y) as Tensor;
  const P = X.prod(0);
  close(r, P.reshape([1, 1, 3]).expand([2, 4, 3]), 1e-14);
});
check("jvp(vmap(whileLoop batched pred))", () => {
  const f = (a: Tensor) =>
    whileLoop(
      (v: Tensor) => v.sum().lt(10),
      (v: Tensor) => v.mul(2),
      a,
    );
  const A = tensor(
    [
      [1, 1],
      [3, 3],
      [20, 0],
    ],
    f64,
  );
  const [p, t] = jvp(vmap(f), [A], [ones([3, 2], f64)]) as Tensor[];
  close(
    p,
    tensor(
      [
        [8, 8],
        [6, 6],
        [20, 0],
      ],
      f64,
    ),
    0,
  );
  close(
    t,
    tensor(
      [
        [8, 8],
        [2, 2],
        [1, 1],
      ],
      f64,
    ),
    0,
  );
});
done();
