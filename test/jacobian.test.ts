/**
 * jacfwd / jacrev / hessian (src/core/jacobian.ts): values against closed forms and central finite differences
 * computed here, the JAX result structure for argnums, pytrees and hasAux (written out per case), composition
 * with vmap, grad and nn modules, a batched pass rather than one pass per element, and the errors.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { isFloat } from "../src/dtype.ts";
import {
  avgPool2d,
  checkpoint,
  conv2d,
  customJvp,
  customVjp,
  DTypeError,
  eye,
  getBackend,
  grad,
  hessian,
  hvp,
  jacfwd,
  jacrev,
  manualSeed,
  maxPool2d,
  nn,
  randn,
  setBackend,
  type Tensor,
  tensor,
  treeFlatten,
  vjp,
  vmap,
  where,
  zeros,
} from "../src/index.ts";
import { mk, OPS } from "./opinfo.ts";

const f64 = { dtype: "float64" as const };
const vals = (t: Tensor): number[] => Array.from(t.dataSync(), Number);

function closeTo(a: Tensor, b: readonly number[], tol = 1e-9, what = ""): void {
  const d = vals(a);
  assert.equal(d.length, b.length, `${what}: ${d.length} values, expected ${b.length}`);
  for (let i = 0; i < d.length; i++) {
    assert.ok(Math.abs(d[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${d[i]} vs ${b[i]}`);
  }
}

function closeT(a: Tensor, b: Tensor, tol = 1e-9, what = ""): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  closeTo(a, vals(b), tol, what);
}

/** diag(v) as a flat row-major array. */
function diag(v: readonly number[]): number[] {
  const n = v.length;
  const out = new Array<number>(n * n).fill(0);
  v.forEach((x, i) => {
    out[i * n + i] = x;
  });
  return out;
}

/**
 * The full Jacobian matrix of `f` (flat output leaves, concatenated) with respect to the flat concatenation of
 * `xs`'s leaves, by central differences on plain eager evaluation (no transform involved): [rows, cols].
 */
function fdMatrix(f: (leaves: Tensor[]) => Tensor[], xs: readonly Tensor[], eps = 1e-6): number[][] {
  const base = xs.map((x) => vals(x));
  const evalAt = (li: number, k: number, h: number): number[] => {
    const leaves = base.map((b, i) => {
      const d = Float64Array.from(b);
      if (i === li) d[k] += h;
      return tensor(Array.from(d), f64).reshape(xs[i].shape);
    });
    return f(leaves).flatMap((o) => vals(o));
  };
  const cols: number[][] = [];
  base.forEach((b, li) => {
    for (let k = 0; k < b.length; k++) {
      const p = evalAt(li, k, eps);
      const m = evalAt(li, k, -eps);
      cols.push(p.map((v, r) => (v - m[r]) / (2 * eps)));
    }
  });
  const nRows = f(xs.map((x) => x)).reduce((a, o) => a + o.size, 0);
  return Array.from({ length: nRows }, (_, r) => cols.map((c) => c[r]));
}

/** Block (out leaf j, in leaf i) of a full matrix, flat row-major. */
function block(
  m: number[][],
  outs: readonly Tensor[],
  ins: readonly Tensor[],
  j: number,
  i: number,
): number[] {
  const r0 = outs.slice(0, j).reduce((a, o) => a + o.size, 0);
  const c0 = ins.slice(0, i).reduce((a, x) => a + x.size, 0);
  const rows: number[] = [];
  for (let r = 0; r < outs[j].size; r++) {
    for (let c = 0; c < ins[i].size; c++) rows.push(m[r0 + r][c0 + c]);
  }
  return rows;
}

describe("closed forms", () => {
  test("jacobian of A @ x is A, by both modes; of X @ M (rank 2) is I (x) M^T", () => {
    const A = randn([3, 4], f64);
    const x = randn([4], f64);
    for (const jac of [jacrev, jacfwd]) {
      const J = jac((v: Tensor) => A.matmul(v))(x);
      assert.deepEqual(J.shape, [3, 4]);
      closeT(J, A);
    }
    const M = randn([3, 4], f64);
    const X = randn([2, 3], f64);
    const m = vals(M);
    // d(X M)[i,k] / dX[a,b] = [i = a] M[b,k]
    const expected: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let k = 0; k < 4; k++)
        for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) expected.push(i === a ? m[b * 4 + k] : 0);
    for (const jac of [jacrev, jacfwd]) {
      const J = jac((v: Tensor) => v.matmul(M))(X);
      assert.deepEqual(J.shape, [2, 4, 2, 3]);
      closeTo(J, expected);
    }
  });

  test("jacobian of sin is diag(cos x); hessian of sum(sin x) is diag(-sin x); of x^T A x is A + A^T", () => {
    const x = randn([5], f64);
    const xs = vals(x);
    for (const jac of [jacrev, jacfwd]) closeTo(jac((v: Tensor) => v.sin())(x), diag(xs.map(Math.cos)));
    closeTo(hessian((v: Tensor) => v.sin().sum())(x), diag(xs.map((v) => -Math.sin(v))));
    const A = randn([5, 5], f64);
    closeT(hessian((v: Tensor) => v.matmul(A).dot(v))(x), A.add(A.T));
  });

  test("identity, an output repeated, an output that is a non-differentiated argument, a linear function's hessian", () => {
    const x = randn([2], f64);
    const y = randn([3], f64);
    for (const jac of [jacrev, jacfwd]) {
      closeTo(jac((v: Tensor) => v)(x), diag([1, 1]));
      const [a, b] = jac((v: Tensor) => [v, v] as const)(x);
      closeTo(a, diag([1, 1]));
      closeTo(b, diag([1, 1]));
      const [c, d] = jac((v: Tensor, w: Tensor) => [w, v.mul(2)] as const)(x, y);
      assert.deepEqual(c.shape, [3, 2]);
      closeTo(c, new Array(6).fill(0));
      closeTo(d, diag([2, 2]));
    }
    closeTo(hessian((v: Tensor) => v.sum())(x), [0, 0, 0, 0]);
  });

  test("the single-tensor form: shape out.shape + x.shape; a number argument is a float32 scalar", () => {
    const x = randn([2, 3], f64);
    const J = jacfwd((v: Tensor) => v.sum(1))(x); // [2] <- [2, 3]
    assert.deepEqual(J.shape, [2, 2, 3]);
    closeTo(J, [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    const d = jacrev((v: Tensor) => v.mul(v).mul(v))(3); // 3 x^2 at 3
    assert.deepEqual(d.shape, []);
    assert.equal(d.dtype, "float32");
    assert.equal(d.item(), 27);
    assert.equal(jacfwd((v: Tensor) => v.mul(v).mul(v))(3).item(), 27);
    assert.equal(hessian((v: Tensor) => v.mul(v).mul(v))(3).item(), 18);
    // a scalar function of a matrix: the hessian has shape x.shape + x.shape
    const H = hessian((X: Tensor) => X.mul(X).sum())(randn([2, 2], f64));
    assert.deepEqual(H.shape, [2, 2, 2, 2]);
    closeTo(H, diag([2, 2, 2, 2]));
  });
});

describe("argnums, pytrees, hasAux: the JAX structure", () => {
  const a = tensor([1, 2, 3], f64);
  const b = tensor([4, 5, 6], f64);
  const f = (u: Tensor, v: Tensor) => u.mul(v);

  test("argnums as a number picks one argument; as an array gives an array over the argnums, in order", () => {
    for (const jac of [jacrev, jacfwd]) {
      // jax.jacrev(f, argnums=1)(a, b): one array, d(a*b)/db = diag(a)
      closeTo(jac(f, { argnums: 1 })(a, b), diag([1, 2, 3]));
      // jax.jacrev(f, argnums=(0, 1))(a, b): (diag(b), diag(a))
      const both = jac(f, { argnums: [0, 1] })(a, b);
      assert.ok(Array.isArray(both) && both.length === 2);
      closeTo(both[0], diag([4, 5, 6]));
      closeTo(both[1], diag([1, 2, 3]));
      // argnums=(1, 0): (diag(a), diag(b))
      const swapped = jac(f, { argnums: [1, 0] })(a, b);
      closeTo(swapped[0], diag([1, 2, 3]));
      closeTo(swapped[1], diag([4, 5, 6]));
      // argnums=(1,): a one-element tuple
      const one = jac(f, { argnums: [1] })(a, b);
      assert.ok(Array.isArray(one) && one.length === 1);
      closeTo(one[0], diag([1, 2, 3]));
    }
  });

  test("pytree input (object) and pytree output (object of arrays): output outside, input inside", () => {
    const p = { w: randn([2, 3], f64), b: randn([2], f64) };
    const x = randn([3], f64);
    const g = (q: typeof p, v: Tensor) => {
      const y = q.w.matmul(v).add(q.b);
      return { y: y.tanh(), stats: [y.sum(), v.mul(q.b.sum())] as [Tensor, Tensor] };
    };
    const flatG = (ls: Tensor[]) => {
      const o = g({ w: ls[0], b: ls[1] }, ls[2]);
      return [o.y, o.stats[0], o.stats[1]];
    };
    const outs = flatG([p.w, p.b, x]);
    const ins = [p.w, p.b, x];
    const ref = fdMatrix(flatG, ins);
    for (const jac of [jacrev, jacfwd]) {
      // jax.jacrev(g)(p, x) == {"y": {"w": (2,2,3), "b": (2,2)},
      //                         "stats": [{"w": (2,3), "b": (2,)}, {"w": (3,2,3), "b": (3,2)}]}
      const J = jac(g)(p, x);
      assert.deepEqual(Object.keys(J), ["y", "stats"]);
      assert.deepEqual(Object.keys(J.y), ["w", "b"]);
      assert.deepEqual(J.y.w.shape, [2, 2, 3]);
      assert.deepEqual(J.y.b.shape, [2, 2]);
      assert.ok(Array.isArray(J.stats) && J.stats.length === 2);
      assert.deepEqual(J.stats[0].w.shape, [2, 3]);
      assert.deepEqual(J.stats[0].b.shape, [2]);
      assert.deepEqual(J.stats[1].w.shape, [3, 2, 3]);
      assert.deepEqual(J.stats[1].b.shape, [3, 2]);
      closeTo(J.y.w, block(ref, outs, ins, 0, 0), 1e-6);
      closeTo(J.y.b, block(ref, outs, ins, 0, 1), 1e-6);
      closeTo(J.stats[0].w, block(ref, outs, ins, 1, 0), 1e-6);
      closeTo(J.stats[0].b, block(ref, outs, ins, 1, 1), 1e-6);
      closeTo(J.stats[1].w, block(ref, outs, ins, 2, 0), 1e-6);
      closeTo(J.stats[1].b, block(ref, outs, ins, 2, 1), 1e-6);

      // jax.jacrev(g, argnums=(0, 1))(p, x) == {"y": ({"w", "b"}, (2,3)), "stats": [({"w","b"}, (3,)), ...]}
      const K = jac(g, { argnums: [0, 1] })(p, x);
      assert.ok(Array.isArray(K.y) && K.y.length === 2);
      assert.deepEqual(Object.keys(K.y[0]), ["w", "b"]);
      assert.deepEqual(K.y[1].shape, [2, 3]);
      assert.deepEqual(K.stats[0][1].shape, [3]);
      assert.deepEqual(K.stats[1][1].shape, [3, 3]);
      closeTo(K.y[0].w, block(ref, outs, ins, 0, 0), 1e-6);
      closeTo(K.y[1], block(ref, outs, ins, 0, 2), 1e-6);
      closeTo(K.stats[0][1], block(ref, outs, ins, 1, 2), 1e-6);
      closeTo(K.stats[1][0].b, block(ref, outs, ins, 2, 1), 1e-6);
      closeTo(K.stats[1][1], block(ref, outs, ins, 2, 2), 1e-6);
    }
  });

  test("pytree input as an array, output as a bare array; non-tensor leaves stay as they are", () => {
    const xs = [randn([2], f64), randn([3], f64)] as [Tensor, Tensor];
    const g = (pair: [Tensor, Tensor]) => [pair[0].exp(), pair[1].sum().mul(pair[0]), 7] as const;
    // jax.jacfwd(g)(xs) == [[(2,2), (2,3)], [(2,2), (2,3)], 7]  (7: a non-array leaf, as our pytrees keep it)
    const flatG = (ls: Tensor[]) => {
      const o = g([ls[0], ls[1]]);
      return [o[0], o[1]];
    };
    const ref = fdMatrix(flatG, xs);
    const outs = flatG(xs);
    for (const jac of [jacrev, jacfwd]) {
      const J = jac(g)(xs);
      assert.equal(J.length, 3);
      assert.equal(J[2], 7);
      assert.deepEqual(J[0][0].shape, [2, 2]);
      assert.deepEqual(J[0][1].shape, [2, 3]);
      const rows = [J[0], J[1]];
      for (let j = 0; j < 2; j++)
        for (let i = 0; i < 2; i++) closeTo(rows[j][i], block(ref, outs, xs, j, i), 1e-6);
    }
  });

  test("hasAux: [jacobian, aux], aux a plain value (not differentiated, not a tracer), for all three", () => {
    const x = randn([3], f64);
    const g = (v: Tensor) => [v.sin(), { twice: v.mul(2), note: "n" }] as const;
    for (const jac of [jacrev, jacfwd]) {
      const [J, aux] = jac(g, { hasAux: true })(x);
      closeTo(J, diag(vals(x).map(Math.cos)));
      assert.equal(aux.note, "n");
      assert.equal(aux.twice._trace ?? null, null);
      closeTo(
        aux.twice,
        vals(x).map((v) => 2 * v),
      );
    }
    const s = (v: Tensor) => [v.sin().sum(), v.sum()] as const;
    const [H, aux] = hessian(s, { hasAux: true })(x);
    closeTo(H, diag(vals(x).map((v) => -Math.sin(v))));
    closeTo(aux, [vals(x).reduce((p, q) => p + q, 0)]);
    assert.equal(aux._trace ?? null, null);
  });

  test("hessian of a function of two args with argnums [0, 1]: the 2 x 2 block structure", () => {
    // f(a, b) = a^T M b + sum(a^3) + sum(b)^2: Haa = diag(6a), Hab = M, Hba = M^T, Hbb = 2 (all ones)
    const M = randn([2, 3], f64);
    const av = randn([2], f64);
    const bv = randn([3], f64);
    const g = (u: Tensor, v: Tensor) => u.matmul(M).dot(v).add(u.pow(3).sum()).add(v.sum().square());
    // jax.hessian(g, argnums=(0, 1))(a, b) == ((Haa (2,2), Hab (2,3)), (Hba (3,2), Hbb (3,3)))
    const H = hessian(g, { argnums: [0, 1] })(av, bv);
    assert.equal(H.length, 2);
    assert.equal(H[0].length, 2);
    assert.deepEqual(H[0][1].shape, [2, 3]);
    assert.deepEqual(H[1][0].shape, [3, 2]);
    closeTo(H[0][0], diag(vals(av).map((v) => 6 * v)));
    closeT(H[0][1], M);
    closeT(H[1][0], M.T);
    closeTo(H[1][1], new Array(9).fill(2));
    // a single argnum of the two: jax.hessian(g, argnums=1)(a, b) == Hbb
    closeTo(hessian(g, { argnums: 1 })(av, bv), new Array(9).fill(2));
  });
});

describe("jacfwd equals jacrev", () => {
  test("on functions of several shapes, outputs and argnums", () => {
    const cases: [string, (...a: Tensor[]) => unknown, Tensor[], number | number[]][] = [
      ["elementwise chain", (x) => x.exp().mul(x.cos()).tanh(), [randn([4], f64)], 0],
      ["softmax of a matrix", (x) => x.softmax(-1), [randn([2, 3], f64)], 0],
      [
        "two args",
        (x, y) => x.matmul(y).relu().add(1).log(),
        [randn([2, 3], f64), randn([3, 2], f64)],
        [0, 1],
      ],
      ["to a scalar", (x) => x.square().mean(), [randn([3, 2], f64)], 0],
      [
        "a pytree output",
        (x, y) => ({ s: x.sum(), p: [x.mul(y), y.sigmoid()] }),
        [randn([3], f64), randn([3], f64)],
        1,
      ],
    ];
    for (const [name, g, args, argnums] of cases) {
      const r = treeFlatten(jacrev(g, { argnums })(...args))[0];
      const fw = treeFlatten(jacfwd(g, { argnums })(...args))[0];
      assert.equal(r.length, fw.length, name);
      for (const [i, t] of r.entries()) closeT(fw[i], t, 1e-9, `${name} leaf ${i}`);
    }
  });
});

describe("every kind of op, through the batching rules", () => {
  manualSeed(3);
  const scale = customVjp((x: Tensor) => x.mul(3), {
    fwd: (x: Tensor) => [x.mul(3), null],
    bwd: (_r, ct: Tensor) => [ct.mul(3)],
  });
  const cube = customJvp(
    (x: Tensor) => x.pow(3),
    ([x], [t]) => [x.pow(3), t.mul(x.square()).mul(3)],
  );
  const block = checkpoint((x: Tensor) => x.tanh().mul(x).sin());
  const w = randn([3, 2, 3, 3], f64);
  const idx = tensor([2, 0, 1, 1], { dtype: "int32" });

  /** x: [1, 2, 5, 5] -> a vector of 8 numbers through conv, pools, gather, where, reductions and custom rules. */
  const g = (x: Tensor) => {
    const c = conv2d(x, w, null, { padding: 1 }); // [1, 3, 5, 5]
    const p = maxPool2d(c, 2).add(avgPool2d(c, 2)); // [1, 3, 2, 2]
    const flat = p.reshape([3, 4]);
    const sm = flat.softmax(-1).mul(flat.logSoftmax(0)); // [3, 4]
    const picked = sm.indexSelect(1, idx).gather(0, tensor([[0, 1, 2, 0]], { dtype: "int32" })); // [1, 4]
    const masked = where(flat.gt(0), flat, flat.mul(0.1)); // [3, 4]
    const red = tensor([0], f64)
      .add(masked.max(0).sum())
      .add(masked.logsumexp(1).mean())
      .add(masked.cumsum(1).prod(0).sum().mul(1e-3))
      .add(masked.index(1, [1, null, 2]).sum());
    const cust = scale(cube(block(picked.reshape([4]))));
    return cat2(
      cust,
      red
        .mul(flat.norm())
        .add(x.std())
        .reshape([1])
        .expand([4])
        .mul(tensor([1, 2, 3, 4], f64)),
    );
  };
  const cat2 = (u: Tensor, v: Tensor) =>
    u
      .reshape([1, 4])
      .expand([2, 4])
      .mul(tensor([[1], [0]], f64))
      .add(
        v
          .reshape([1, 4])
          .expand([2, 4])
          .mul(tensor([[0], [1]], f64)),
      )
      .reshape([8]);

  test("jacrev and jacfwd match central differences (matmul, conv2d, pools, softmax, gather, where, custom rules, checkpoint)", () => {
    const x = randn([1, 2, 5, 5], f64);
    const ref = fdMatrix((ls) => [g(ls[0])], [x], 1e-6).flat();
    const Jr = jacrev(g)(x);
    assert.deepEqual(Jr.shape, [8, 1, 2, 5, 5]);
    closeTo(Jr, ref, 1e-5, "jacrev");
    // customVjp has no forward-mode rule (jvp through it is an error), so jacfwd runs on the rest
    const gFwd = (v: Tensor) =>
      cube(block(v.reshape([50]).softmax(0)))
        .sum()
        .add(g2(v));
    const g2 = (v: Tensor) => conv2d(v, w, null, { padding: 1 }).logsumexp(3).max(2).sum();
    const refF = fdMatrix((ls) => [gFwd(ls[0])], [x], 1e-6).flat();
    closeTo(jacfwd(gFwd)(x), refF, 1e-5, "jacfwd");
    closeTo(jacrev(gFwd)(x), refF, 1e-5, "jacrev of the forward-mode function");
  });

  test("custom rules are the ones used under the batched pass (rules that differ from the true derivative)", () => {
    // straight-through estimator: round forward, identity backward (the true derivative is 0)
    const ste = customVjp((x: Tensor) => x.round(), {
      fwd: (x: Tensor) => [x.round(), null],
      bwd: (_r, ct: Tensor) => [ct],
    });
    const x = tensor([0.2, 1.7, -2.4], f64);
    closeTo(jacrev((v: Tensor) => ste(v).mul(v))(x), diag([0.2 + 0, 1.7 + 2, -2.4 - 2]));
    assert.throws(() => jacfwd((v: Tensor) => ste(v))(x), /customVjp: .*forward mode/);
    // a JVP rule that doubles the true derivative of sin, in both modes and per example
    const sin2 = customJvp(
      (v: Tensor) => v.sin(),
      ([v], [t]) => [v.sin(), t.mul(v.cos()).mul(2)],
    );
    const expected = diag(vals(x).map((v) => 2 * Math.cos(v)));
    closeTo(jacfwd(sin2)(x), expected);
    closeTo(jacrev(sin2)(x), expected);
    const xs = randn([2, 3], f64);
    closeTo(
      vmap(jacrev(sin2))(xs),
      [0, 1].flatMap((n) =>
        diag(
          vals(xs)
            .slice(3 * n, 3 * n + 3)
            .map((v) => 2 * Math.cos(v)),
        ),
      ),
    );
    // checkpoint recomputes its forward inside the batched pullback: same values as without it
    const inner = (v: Tensor) => v.tanh().mul(v).sin();
    closeT(jacrev(checkpoint(inner))(x), jacrev(inner)(x), 1e-12);
    closeT(vmap(jacrev(checkpoint(inner)))(xs), vmap(jacrev(inner))(xs), 1e-12);
  });

  test("hessian through conv2d, softmax and a custom JVP rule equals central differences of grad", () => {
    const x = randn([1, 2, 3, 3], f64);
    const s = (v: Tensor) =>
      cube(conv2d(v, w.narrow(0, 0, 1), null, { padding: 1 }).tanh())
        .softmax(-1)
        .square()
        .sum();
    const H = hessian(s)(x);
    assert.deepEqual(H.shape, [1, 2, 3, 3, 1, 2, 3, 3]);
    const gs = grad(s);
    const ref = fdMatrix((ls) => [gs(ls[0])], [x], 1e-5).flat();
    closeTo(H, ref, 1e-5);
  });
});

describe("the op table: jacrev and jacfwd equal a jacobian stacked from one vjp per output element", () => {
  /**
   * The reference, independent of vmap: J[r] = the pullback of the r-th basis cotangent, one vjp call per output
   * element, for each differentiable argument: [out.size, arg.size] as flat numbers.
   */
  function stackedVjp(fn: (...xs: Tensor[]) => Tensor, args: Tensor[], argnums: number[]): number[][][] {
    const [out, back] = vjp(fn, ...args);
    const rows: number[][][] = argnums.map(() => []);
    for (let r = 0; r < out.size; r++) {
      const e = new Float64Array(out.size);
      e[r] = 1;
      const cts = back(tensor(e, { dtype: out.dtype as "float64", shape: [...out.shape] }));
      argnums.forEach((n, k) => {
        rows[k].push(vals(cts[n]));
      });
    }
    return rows;
  }

  for (const op of OPS.filter((o) => o.diff)) {
    test(op.name, () => {
      op.samples().forEach((args, s) => {
        const argnums = args.map((x, i) => (isFloat(x.dtype) ? i : -1)).filter((i) => i >= 0);
        const ref = stackedVjp(op.fn, args, argnums);
        const out = op.fn(...args);
        for (const [name, jac] of [
          ["jacrev", jacrev],
          ["jacfwd", jacfwd],
        ] as const) {
          const J = jac(op.fn, { argnums })(...args) as Tensor[];
          argnums.forEach((n, k) => {
            const what = `${op.name} sample ${s} ${name} wrt argument ${n}`;
            assert.deepEqual(J[k].shape, [...out.shape, ...args[n].shape], what);
            closeTo(J[k], ref[k].flat(), 1e-9, what);
          });
        }
      });
    });
  }
});

describe("the op table: hessian equals one hvp per input element (second order through the batching rules)", () => {
  for (const op of OPS.filter((o) => o.diff && !o.noSecondOrder)) {
    test(op.name, () => {
      const args = op.samples()[0];
      const u = mk([...op.fn(...args).shape]);
      const rest = args.slice(1);
      const loss = (x: Tensor) =>
        op
          .fn(x, ...rest)
          .mul(u)
          .sum();
      const x = args[0];
      const H = hessian(loss)(x);
      assert.deepEqual(H.shape, [...x.shape, ...x.shape]);
      // column k of H is H e_k (hvp: forward over reverse, no vmap); H is symmetric, so it is row k too
      const rows: number[] = [];
      for (let k = 0; k < x.size; k++) {
        const e = new Float64Array(x.size);
        e[k] = 1;
        rows.push(...vals(hvp(loss, x, tensor(e, { dtype: "float64", shape: [...x.shape] }))));
      }
      closeTo(H, rows, 1e-8, op.name);
    });
  }
});

describe("composition", () => {
  test("jacrev(jacfwd(f)) and jacfwd(jacfwd(f)) equal hessian(f)", () => {
    const A = randn([3, 3], f64);
    const s = (v: Tensor) => v.matmul(A).tanh().dot(v.exp());
    const x = randn([3], f64);
    const H = hessian(s)(x);
    closeT(jacrev(jacfwd(s))(x), H, 1e-9);
    closeT(jacfwd(jacfwd(s))(x), H, 1e-9);
    closeT(jacrev(jacrev(s))(x), H, 1e-9);
    // symmetric, and equal to central differences of the gradient
    closeT(H.T, H, 1e-9);
    closeTo(H, fdMatrix((ls) => [grad(s)(ls[0])], [x], 1e-6).flat(), 1e-6);
  });

  test("vmap(jacrev(f)): per-example jacobians W diag(1 - tanh^2 x_n)", () => {
    const W = randn([2, 3], f64);
    const f = (v: Tensor) => W.matmul(v.tanh());
    const xs = randn([4, 3], f64);
    for (const jac of [jacrev, jacfwd]) {
      const J = vmap(jac(f))(xs);
      assert.deepEqual(J.shape, [4, 2, 3]);
      const wv = vals(W);
      const expected: number[] = [];
      for (let n = 0; n < 4; n++) {
        const row = vals(xs).slice(n * 3, n * 3 + 3);
        for (let i = 0; i < 2; i++)
          for (let j = 0; j < 3; j++) expected.push(wv[i * 3 + j] * (1 - Math.tanh(row[j]) ** 2));
      }
      closeTo(J, expected);
    }
    // per-example hessians of sum(sin x): diag(-sin x_n)
    const Hs = vmap(hessian((v: Tensor) => v.sin().sum()))(xs);
    assert.deepEqual(Hs.shape, [4, 3, 3]);
    const xv = vals(xs);
    closeTo(
      Hs,
      [0, 1, 2, 3].flatMap((n) => diag(xv.slice(n * 3, n * 3 + 3).map((v) => -Math.sin(v)))),
    );
  });

  test("vmap of a jacobian with hasAux batches the aux too; unused arguments and constant outputs give zeros", () => {
    const xs = randn([3, 2], f64);
    for (const jac of [jacrev, jacfwd]) {
      const [J, aux] = vmap(jac((v: Tensor) => [v.exp(), v.sum()] as const, { hasAux: true }))(xs);
      assert.deepEqual(J.shape, [3, 2, 2]);
      const xv = vals(xs);
      closeTo(
        J,
        [0, 1, 2].flatMap((n) => diag(xv.slice(2 * n, 2 * n + 2).map(Math.exp))),
      );
      closeTo(
        aux,
        [0, 1, 2].map((n) => xv[2 * n] + xv[2 * n + 1]),
      );
      const c = tensor([1, 2, 3], f64);
      const [Ju, Jc] = jac((u: Tensor, _v: Tensor) => [u.sin(), c] as const, { argnums: 1 })(xs, c);
      assert.deepEqual(Ju.shape, [3, 2, 3]);
      closeTo(Ju, new Array(18).fill(0));
      assert.deepEqual(Jc.shape, [3, 3]);
      closeTo(Jc, new Array(9).fill(0));
    }
  });

  test("grad of a function of a jacobian (reverse over vmap of reverse)", () => {
    // sum of squares of the jacobian of x -> x * x (diag(2x)) is 4 |x|^2; its gradient is 8x
    const x = randn([3], f64);
    const g = grad((v: Tensor) =>
      jacrev((u: Tensor) => u.mul(u))(v)
        .square()
        .sum(),
    )(x);
    closeTo(
      g,
      vals(x).map((v) => 8 * v),
    );
  });

  test("jacrev of an nn module's output with respect to its parameters (functionalCall)", () => {
    const lin = new nn.Linear(3, 2, { dtype: "float64" });
    const x = randn([3], f64);
    const out = (q: { weight: Tensor; bias: Tensor }) => nn.functionalCall(lin, q, x).tanh();
    const params = { weight: lin.weight.detach(), bias: lin.bias!.detach() };
    // y = tanh(W x + b): dy_i/dW_kl = [i = k] (1 - y_i^2) x_l, dy_i/db_k = [i = k] (1 - y_i^2)
    const y = vals(out(params));
    const xv = vals(x);
    const dW: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let k = 0; k < 2; k++) for (let l = 0; l < 3; l++) dW.push(i === k ? (1 - y[i] ** 2) * xv[l] : 0);
    for (const jac of [jacrev, jacfwd]) {
      const J = jac(out)(params);
      assert.deepEqual(J.weight.shape, [2, 2, 3]);
      closeTo(J.weight, dW);
      closeTo(J.bias, diag(y.map((v) => 1 - v * v)));
    }
    // and a Sequential of two layers against central differences, per example with vmap
    const net = new nn.Sequential(
      new nn.Linear(3, 4, { dtype: "float64" }),
      new nn.Tanh(),
      new nn.Linear(4, 2, { dtype: "float64" }),
    );
    const names = ["0.weight", "0.bias", "2.weight", "2.bias"];
    const ps = Object.fromEntries(net.namedParameters().map(([n, p]) => [n, p.detach()]));
    assert.deepEqual(Object.keys(ps), names);
    const fnet = (q: Record<string, Tensor>, v: Tensor) => nn.functionalCall(net, q, v);
    const J = jacrev(fnet)(ps, x);
    const flat = (ls: Tensor[]) => [fnet(Object.fromEntries(names.map((n, i) => [n, ls[i]])), x)];
    const leaves = names.map((n) => ps[n]);
    const ref = fdMatrix(flat, leaves);
    const outs = flat(leaves);
    for (const [i, n] of names.entries()) closeTo(J[n], block(ref, outs, leaves, 0, i), 1e-6, n);
  });
});

describe("a small CNN: fused Conv2d+ReLU, MaxPool2d, LayerNorm, Linear, cross-entropy", () => {
  test("jacrev and jacfwd with respect to the input and the parameters equal central differences", () => {
    manualSeed(11);
    const o = { dtype: "float64" as const };
    const net = new nn.Sequential(
      new nn.Conv2d(2, 3, 3, { padding: 1, ...o }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Flatten(),
      new nn.LayerNorm(12, o),
      new nn.Linear(12, 3, o),
      new nn.Tanh(),
    );
    const x = randn([2, 2, 4, 4], f64);
    const target = tensor([2, 0], { dtype: "int32" });
    const names = net.namedParameters().map(([n]) => n);
    const ps = Object.fromEntries(net.namedParameters().map(([n, p]) => [n, p.detach()]));
    // per-example losses (a vector output) and the logits, as a pytree output
    const f = (q: Record<string, Tensor>, v: Tensor) => {
      const logits = nn.functionalCall(net, q, v);
      return { loss: nn.crossEntropy(logits, target, { reduction: "none" }), logits };
    };
    const leaves = [...names.map((n) => ps[n]), x];
    const flat = (ls: Tensor[]) => {
      const r = f(Object.fromEntries(names.map((n, i) => [n, ls[i]])), ls[ls.length - 1]);
      return [r.loss, r.logits];
    };
    const ref = fdMatrix(flat, leaves);
    const outs = flat(leaves);
    for (const jac of [jacrev, jacfwd]) {
      // jax.jacrev(f, argnums=(0, 1))(ps, x) == {"loss": ({name: (2, *p.shape)}, (2, 2, 2, 4, 4)),
      //                                        "logits": ({name: (2, 3, *p.shape)}, (2, 3, 2, 2, 4, 4))}
      const J = jac(f, { argnums: [0, 1] })(ps, x);
      assert.deepEqual(Object.keys(J), ["loss", "logits"]);
      (["loss", "logits"] as const).forEach((k, j) => {
        assert.deepEqual(J[k][1].shape, [...outs[j].shape, 2, 2, 4, 4]);
        closeTo(J[k][1], block(ref, outs, leaves, j, names.length), 1e-6, `${k} wrt x`);
        names.forEach((n, i) => {
          assert.deepEqual(J[k][0][n].shape, [...outs[j].shape, ...ps[n].shape]);
          closeTo(J[k][0][n], block(ref, outs, leaves, j, i), 1e-6, `${k} wrt ${n}`);
        });
      });
    }
  });
});

describe("one batched pass", () => {
  /** Run `fn` with every backend kernel call counted. */
  function countKernels<T>(fn: () => T): { result: T; calls: number } {
    const base = getBackend();
    let calls = 0;
    const spy: Record<string, unknown> = { ...base, name: "counting" };
    for (const [k, v] of Object.entries(base)) {
      if (typeof v === "function" && k !== "alloc") {
        spy[k] = (...a: unknown[]) => {
          calls++;
          return (v as (...b: unknown[]) => unknown).apply(base, a);
        };
      }
    }
    setBackend(spy as unknown as Backend);
    try {
      return { result: fn(), calls };
    } finally {
      setBackend(base);
    }
  }

  test("f runs once, and the kernel count does not grow with the number of elements", () => {
    const W = (n: number) => eye(n, n, f64).mul(2).add(0.5);
    for (const [name, jac] of [
      ["jacrev", jacrev],
      ["jacfwd", jacfwd],
    ] as const) {
      const counts: number[] = [];
      for (const n of [3, 24]) {
        let fCalls = 0;
        const M = W(n);
        const f = (v: Tensor) => {
          fCalls++;
          return M.matmul(v.sin()).softmax(0).mul(v);
        };
        const x = randn([n], f64);
        const { result, calls } = countKernels(() => jac(f)(x));
        assert.deepEqual(result.shape, [n, n]);
        assert.equal(fCalls, 1, `${name}: f is traced once for n = ${n}`);
        counts.push(calls);
        // still right: against central differences
        closeTo(result, fdMatrix((ls) => [f(ls[0])], [x]).flat(), 1e-6, `${name} n = ${n}`);
      }
      assert.ok(counts[0] > 0);
      assert.equal(counts[1], counts[0], `${name}: kernel calls for n = 3 and n = 24`);
    }
  });

  test("hessian calls f once", () => {
    let fCalls = 0;
    const s = (v: Tensor) => {
      fCalls++;
      return v.exp().sum().mul(v.sum());
    };
    hessian(s)(randn([10], f64));
    assert.equal(fCalls, 1);
  });
});

describe("zero-size inputs and outputs", () => {
  test("shapes out + in, filled with nothing or zeros", () => {
    for (const jac of [jacrev, jacfwd]) {
      const e = zeros([0], f64);
      assert.deepEqual(jac((v: Tensor) => v.sin())(e).shape, [0, 0]);
      const s = jac((v: Tensor) => v.sum())(e);
      assert.deepEqual(s.shape, [0]);
      const x = randn([3], f64);
      assert.deepEqual(jac((v: Tensor) => v.narrow(0, 1, 0))(x).shape, [0, 3]);
      // a zero-size argument next to a normal one: its blocks are empty, the other's are right
      const [Ja, Jb] = jac((u: Tensor, v: Tensor) => u.mul(2).add(v.sum()), { argnums: [0, 1] })(
        x,
        zeros([2, 0], f64),
      );
      closeTo(Ja, diag([2, 2, 2]));
      assert.deepEqual(Jb.shape, [3, 2, 0]);
      // an output of zero size next to a normal one: zeros of shape out + in
      const J = jac((v: Tensor) => [v.exp(), zeros([0, 2], f64).add(v.sum())])(x);
      assert.deepEqual(J[1].shape, [0, 2, 3]);
      closeTo(J[0], diag(vals(x).map(Math.exp)));
    }
    assert.deepEqual(hessian((v: Tensor) => v.square().sum())(zeros([0], f64)).shape, [0, 0]);
  });
});

describe("errors", () => {
  const f = (u: Tensor, v: Tensor) => u.mul(v);
  const a = randn([2], f64);

  test("bad argnums: out of range, not an integer, repeated", () => {
    for (const [name, jac] of [
      ["jacrev", jacrev],
      ["jacfwd", jacfwd],
      ["hessian", hessian],
    ] as const) {
      assert.throws(
        () => jac(f, { argnums: 2 })(a, a),
        (e: Error) =>
          e instanceof RangeError &&
          e.message.startsWith(`${name}: argnums 2 is out of range for 2 arguments`),
      );
      assert.throws(() => jac(f, { argnums: [0, 5] })(a, a), RangeError);
      assert.throws(
        () => jac(f, { argnums: 0.5 }),
        (e: Error) => e instanceof TypeError && /non-negative integers, got 0.5/.test(e.message),
      );
      assert.throws(() => jac(f, { argnums: -1 }), TypeError);
      assert.throws(() => jac(f, { argnums: [1, 1] }), /repeats an argument/);
    }
  });

  test("hasAux where f does not return a pair", () => {
    for (const jac of [jacrev, jacfwd, hessian]) {
      assert.throws(
        () => jac((v: Tensor) => v.sin(), { hasAux: true })(a),
        /with hasAux the function must return \[output, aux\]/,
      );
      assert.throws(() => jac((v: Tensor) => [v, v, v], { hasAux: true })(a), TypeError);
    }
  });

  test("non-float inputs and outputs, a non-tensor result", () => {
    const i = tensor([1, 2], { dtype: "int32" });
    for (const [name, jac] of [
      ["jacrev", jacrev],
      ["jacfwd", jacfwd],
    ] as const) {
      assert.throws(
        () => jac((v: Tensor) => v.mul(2))(i),
        (e: Error) =>
          e instanceof DTypeError && e.message.startsWith(`${name}: input leaf 0 has dtype int32`),
      );
      assert.throws(
        () => jac((v: Tensor) => v.gt(0))(a),
        (e: Error) => e instanceof DTypeError && /output leaf 0 .* has dtype bool/.test(e.message),
      );
      assert.throws(() => jac((_v: Tensor) => 3)(a), /must return a Tensor or a pytree of Tensors/);
    }
    // a non-differentiated integer argument is fine
    closeTo(jacrev((v: Tensor, k: Tensor) => v.mul(k.to("float64")), { argnums: 0 })(a, i), diag([1, 2]));
  });

  test("vjp of a jacobian matches a jacobian of vjp (structure sanity)", () => {
    const x = randn([3], f64);
    const [J, back] = vjp((v: Tensor) => jacrev((u: Tensor) => u.square())(v), x);
    closeTo(J, diag(vals(x).map((v) => 2 * v)));
    closeTo(back(eye(3, 3, f64))[0], [2, 2, 2]);
  });
});
