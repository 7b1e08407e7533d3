/**
 * Transform tests: nesting, perturbation confusion, pytrees, symbolic zeros, hvp/jacobians/hessians against
 * independent computations, checkpoint, custom rules, stopGradient, kink check, linearize, leaks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AutodiffError,
  checkKinks,
  checkpoint,
  customJvp,
  customVjp,
  grad,
  hessian,
  hvp,
  jacfwd,
  jacrev,
  jvp,
  linearize,
  manualSeed,
  noGrad,
  ones,
  rand,
  randn,
  stopGradient,
  type Tensor,
  tensor,
  valueAndGrad,
  vjp,
} from "../src/index.ts";
import type { TapeNode } from "../src/core/tape.ts";
import { Dropout } from "../src/nn/index.ts";

const f64 = { dtype: "float64" as const };
const close = (a: number, b: number, tol = 1e-9) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${a} vs ${b}`);
const closeArr = (a: Tensor, b: number[], tol = 1e-9) => {
  const d = Array.from(a.dataSync(), Number);
  assert.equal(d.length, b.length);
  for (const [i, v] of d.entries()) close(v, b[i], tol);
};

describe("nesting", () => {
  test("perturbation confusion: d/dx [x * d/dy (x + y)] = 1 at any x, y (reverse over reverse)", () => {
    for (const [x0, y0] of [
      [3, 1],
      [-2, 5],
    ]) {
      const f = (x: Tensor) => x.mul(grad((y: Tensor) => x.add(y))(tensor(y0, f64)));
      close(grad(f)(tensor(x0, f64)).item() as number, 1);
    }
  });

  test("perturbation confusion in forward over forward and forward over reverse", () => {
    const inner = (x: Tensor) => (y: Tensor) => jvp((z: Tensor) => x.add(z), [y], [tensor(1, f64)])[1];
    const f = (x: Tensor) => x.mul(inner(x)(tensor(2, f64)));
    close((jvp(f, [tensor(3, f64)], [tensor(1, f64)])[1] as Tensor).item() as number, 1);
    const g = (x: Tensor) => x.mul(grad((y: Tensor) => x.add(y))(tensor(2, f64)));
    close((jvp(g, [tensor(3, f64)], [tensor(1, f64)])[1] as Tensor).item() as number, 1);
  });

  test("grad nested three deep: d^3/dx^3 x^4 = 24x, and sin's derivatives cycle", () => {
    const d3 = grad(grad(grad((x: Tensor) => x.pow(4))));
    close(d3(tensor(2, f64)).item() as number, 48);
    const s4 = grad(grad(grad(grad((x: Tensor) => x.sin()))));
    close(s4(tensor(0.7, f64)).item() as number, Math.sin(0.7));
    const t3 = grad(grad(grad((x: Tensor) => x.tanh())));
    const t = Math.tanh(0.3);
    close(t3(tensor(0.3, f64)).item() as number, -2 * (1 - t * t) * (1 - 3 * t * t));
  });

  test("second derivatives of tanh, sigmoid and exp (TensorFlow.js's open bug)", () => {
    const x = 0.4;
    const s = 1 / (1 + Math.exp(-x));
    close(grad(grad((z: Tensor) => z.sigmoid()))(tensor(x, f64)).item() as number, s * (1 - s) * (1 - 2 * s));
    close(grad(grad((z: Tensor) => z.exp()))(tensor(x, f64)).item() as number, Math.exp(x));
    const t = Math.tanh(x);
    close(grad(grad((z: Tensor) => z.tanh()))(tensor(x, f64)).item() as number, -2 * t * (1 - t * t));
  });

  test("hvp equals finite differences of gradients", () => {
    const A = randn([4, 4], f64);
    const f = (x: Tensor) => x.matmul(A).mul(x).sum().add(x.sin().sum()).add(x.pow(4).sum());
    const x = randn([4], f64);
    const v = randn([4], f64);
    const eps = 1e-5;
    const g = grad(f);
    const fd = g(x.add(v.mul(eps)))
      .sub(g(x.sub(v.mul(eps))))
      .div(2 * eps);
    closeArr(hvp(f, x, v), Array.from(fd.dataSync()), 1e-6);
  });

  test("hessian of x^T A x is A + A^T, for a matrix input too", () => {
    const A = randn([3, 3], f64);
    const H = hessian((x: Tensor) => x.matmul(A).dot(x))(randn([3], f64));
    closeArr(H, Array.from(A.add(A.T).dataSync()));
    // a rank-2 input: f(X) = sum(X * X) has Hessian 2 I of shape [2,2,2,2]
    const H2 = hessian((X: Tensor) => X.mul(X).sum())(randn([2, 2], f64));
    assert.deepEqual(H2.shape, [2, 2, 2, 2]);
    const eye4 = Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 2 : 0));
    closeArr(H2, eye4);
  });

  test("jacobian of a linear map equals its matrix (jacfwd and jacrev, any rank)", () => {
    const M = randn([3, 4], f64);
    const f = (x: Tensor) => M.matmul(x);
    const x = randn([4], f64);
    closeArr(jacfwd(f)(x), Array.from(M.dataSync()));
    closeArr(jacrev(f)(x), Array.from(M.dataSync()));
    const g = (X: Tensor) => X.matmul(M); // [2,3] -> [2,4]
    const J = jacrev(g)(randn([2, 3], f64));
    assert.deepEqual(J.shape, [2, 4, 2, 3]);
    closeArr(J, Array.from(jacfwd(g)(randn([2, 3], f64)).dataSync()));
  });
});

describe("pytrees", () => {
  test("grad over objects and arrays, argnums, hasAux", () => {
    const params = { w: tensor([1, 2], f64), layers: [tensor(3, f64), { b: tensor([4], f64) }] };
    const f = (p: typeof params, x: Tensor) =>
      p.w
        .mul(x)
        .sum()
        .mul(p.layers[0] as Tensor)
        .add((p.layers[1] as { b: Tensor }).b.sum().square());
    const g = grad(f)(params, tensor([5, 6], f64)) as typeof params;
    closeArr(g.w, [15, 18]);
    closeArr(g.layers[0] as Tensor, [17]);
    closeArr((g.layers[1] as { b: Tensor }).b, [8]);
    const [gp, gx] = grad(f, { argnums: [0, 1] })(params, tensor([5, 6], f64)) as [typeof params, Tensor];
    closeArr(gx, [3, 6]);
    closeArr(gp.w, [15, 18]);
    const [v, gg, aux] = valueAndGrad((x: Tensor) => [x.square().sum(), { note: x.mul(2) }], {
      hasAux: true,
    })(tensor([1, 2], f64));
    close(v.item(), 5);
    closeArr(gg, [2, 4]);
    closeArr(aux.note, [2, 4]);
    // aux comes back as plain values (not tracers of the finished vjp): usable in further ops and transforms
    assert.equal(aux.note._trace, null);
    closeArr(aux.note.add(1), [3, 5]);
    const [, , aux2] = valueAndGrad((x: Tensor) => [x.sum(), { n: 3, t: [x.exp()] }], { hasAux: true })(
      tensor([0], f64),
    );
    assert.equal(aux2.n, 3);
    closeArr(grad((y: Tensor) => aux2.t[0].mul(y).sum())(tensor([2], f64)) as Tensor, [1]);
  });

  test("vjp and jvp with pytrees in and out; wrong tangent structure is an error", () => {
    const f = (a: { x: Tensor; y: Tensor }) => [a.x.mul(a.y), { s: a.x.add(a.y).sum() }];
    const p = { x: tensor([1, 2], f64), y: tensor([3, 4], f64) };
    const [out, back] = vjp(f, p);
    closeArr((out as [Tensor])[0], [3, 8]);
    const [ct] = back([tensor([1, 1], f64), { s: tensor(1, f64) }]) as [{ x: Tensor; y: Tensor }];
    closeArr(ct.x, [4, 5]);
    closeArr(ct.y, [2, 3]);
    const [, tout] = jvp(f, [p], [{ x: tensor([1, 0], f64), y: tensor([0, 1], f64) }]);
    closeArr((tout as [Tensor])[0], [3, 2]);
    // @ts-expect-error the tangent's structure differs from the primal's: rejected by the types and at run time
    assert.throws(() => jvp(f, [p], [{ x: tensor([1, 0], f64) }]), /structure/);
    assert.throws(() => jvp(f, [p], [{ x: tensor([1, 0, 0], f64), y: tensor([0, 1], f64) }]), /shape/);
    assert.throws(() => back([tensor([1, 1], f64)]), /structure/);
  });

  test("an unused input gets a zero cotangent without allocating its shape (symbolic zero)", () => {
    const big = randn([1000], f64);
    const [gx, gy] = grad((x: Tensor, _y: Tensor) => x.square().sum(), { argnums: [0, 1] })(
      tensor([3], f64),
      big,
    ) as Tensor[];
    closeArr(gx, [6]);
    assert.deepEqual(gy.shape, [1000]);
    assert.ok(Array.from(gy.dataSync()).every((v) => v === 0));
    // the materialised zero is a broadcast view of a single element
    assert.equal(gy._data!.length, 1);
    assert.equal(gy._strides[0], 0);
  });

  test("forward mode does not compute tangents of values independent of the input", () => {
    const c = randn([5], f64);
    const [, t] = jvp((x: Tensor) => x.mul(c.exp().sum()), [tensor(2, f64)], [tensor(1, f64)]);
    close(
      t.item() as number,
      Array.from(c.exp().dataSync()).reduce((a, b) => a + b, 0),
    );
  });
});

describe("checkpoint", () => {
  function countSaved(out: Tensor): { nodes: number; saved: number } {
    const seen = new Set<TapeNode>();
    let saved = 0;
    const stack = [out._node!];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      for (const s of n.saved ?? []) if (s !== null) saved += s.size;
      if (n.out !== null) saved += n.out.size;
      for (const p of n.parents) if (p !== null) stack.push(p);
    }
    return { nodes: seen.size, saved };
  }

  test("gives the same gradient and keeps fewer residuals", () => {
    const body = (x: Tensor) => x.tanh().mul(x).sin().exp().mul(x.cos()).square();
    const x0 = randn([50], f64);
    const plain = x0.clone().requiresGrad_();
    const ck = x0.clone().requiresGrad_();
    const yPlain = body(plain).sum();
    const yCk = checkpoint(body)(ck).sum();
    const a = countSaved(yPlain);
    const b = countSaved(yCk);
    assert.ok(b.saved < a.saved / 3, `checkpoint kept ${b.saved} values, plain ${a.saved}`);
    assert.ok(b.nodes < a.nodes);
    yPlain.backward();
    yCk.backward();
    closeArr(ck.grad!, Array.from(plain.grad!.dataSync()));
    // and under the functional transforms, including second order
    const g1 = grad((x: Tensor) => checkpoint(body)(x).sum())(x0);
    closeArr(g1, Array.from(plain.grad!.dataSync()));
    const h1 = hvp((x: Tensor) => checkpoint(body)(x).sum(), x0, x0);
    closeArr(h1, Array.from(hvp((x: Tensor) => body(x).sum(), x0, x0).dataSync()), 1e-8);
  });

  test("closed-over parameters receive gradients in eager mode", () => {
    const w = tensor([1, 2], { dtype: "float64", requiresGrad: true });
    checkpoint((t: Tensor) => t.mul(w).sin())(tensor([3, 4], f64))
      .sum()
      .backward();
    closeArr(w.grad!, [3 * Math.cos(3), 4 * Math.cos(8)]);
  });

  test("the recomputation draws the forward's random numbers (a Dropout mask) and leaves the generator as plain code", () => {
    const drop = new Dropout(0.5);
    const body = (t: Tensor) => drop.call(t).mul(t);
    const run = (wrap: (f: (t: Tensor) => Tensor) => (t: Tensor) => Tensor, mode: string): number[][] => {
      manualSeed(3);
      const x = ones([16], f64).requiresGrad_();
      let y: Tensor;
      let g: Tensor;
      if (mode === "grad") {
        y = wrap(body)(ones([16], f64));
        manualSeed(3);
        g = grad((t: Tensor) => wrap(body)(t).sum())(ones([16], f64));
      } else {
        y = wrap(body)(x);
        y.sum().backward(undefined, { createGraph: mode === "createGraph" });
        g = x.grad!;
      }
      return [y, g, rand([3])].map((t) => Array.from(t.dataSync(), Number));
    };
    for (const mode of ["backward", "createGraph", "grad"]) {
      const [y, g, next] = run((f) => checkpoint(f), mode);
      assert.deepEqual(
        [y, g, next],
        run((f) => f, mode),
        mode,
      );
      assert.deepEqual(
        g,
        y.map((v) => 2 * v),
        `${mode}: the gradient uses the forward's mask`,
      );
    }
  });

  test("backward with createGraph: gradients keep their history through the inputs and closed-over tensors", () => {
    // a gradient penalty |dL/da0|^2 + |dL/dw|^2 differentiated again; the input is a non-leaf, the body closes
    // over a parameter and a non-leaf computed from it: the checkpointed values must be the plain ones
    const run = (wrap: (f: (t: Tensor) => Tensor) => (t: Tensor) => Tensor): number[] => {
      const w = tensor([0.7, -1.1, 0.4], { dtype: "float64", requiresGrad: true });
      const a0 = tensor([0.3, 1.2, -0.8], { dtype: "float64", requiresGrad: true });
      const hidden = w.exp();
      const f = wrap((t: Tensor) => t.mul(w).sin().sum().mul(t.square().sum()).add(hidden.mul(t).sum()));
      f(a0.mul(1.5)).backward(undefined, { createGraph: true });
      const ga = a0.grad!;
      const gw = w.grad!;
      assert.ok(ga.requiresGrad && gw.requiresGrad, "the first gradients have a history");
      a0.grad = null;
      w.grad = null;
      ga.square().sum().add(gw.square().sum()).backward();
      return [ga, gw, a0.grad!, w.grad!].flatMap((t) => Array.from(t.dataSync(), Number));
    };
    const want = run((f) => f);
    const got = run((f) => checkpoint(f));
    for (const [i, v] of got.entries()) close(v, want[i], 1e-12);
  });
});

describe("custom rules", () => {
  test("customVjp: a straight-through estimator", () => {
    const ste = customVjp((x: Tensor) => x.round(), {
      fwd: (x: Tensor) => [x.round(), null],
      bwd: (_res, ct: Tensor) => [ct],
    });
    closeArr(ste(tensor([1.4, 2.6], f64)), [1, 3]);
    closeArr(grad((x: Tensor) => ste(x).sum())(tensor([1.4, 2.6], f64)), [1, 1]);
    // without the custom rule round has zero derivative
    closeArr(grad((x: Tensor) => x.round().sum())(tensor([1.4, 2.6], f64)), [0, 0]);
    assert.throws(() => jvp(ste, [tensor([1], f64)], [tensor([1], f64)]), AutodiffError);
  });

  test("customJvp works in forward and reverse mode", () => {
    // a clipped-gradient identity: forward x, derivative clip(dx, -1, 1) is not linear, so use a scaled one
    const f = customJvp(
      (x: Tensor) => x.exp(),
      ([x], [t]) => [x.exp(), t.mul(x.exp()).mul(0.5)],
    );
    closeArr(jvp(f, [tensor([0, 1], f64)], [tensor([1, 1], f64)])[1], [0.5, 0.5 * Math.E]);
    closeArr(grad((x: Tensor) => f(x).sum())(tensor([0, 1], f64)), [0.5, 0.5 * Math.E]);
  });
});

describe("stopGradient, noGrad, kinks, linearize, leaks", () => {
  test("stopGradient blocks every transform", () => {
    const f = (x: Tensor) => stopGradient(x.square()).mul(x);
    closeArr(grad(f)(tensor(3, f64)), [9]);
    closeArr(jvp(f, [tensor(3, f64)], [tensor(1, f64)])[1], [9]);
    const w = tensor([2], { dtype: "float64", requiresGrad: true });
    const y = w.detach().mul(w).sum();
    y.backward();
    closeArr(w.grad!, [2]);
    const z = noGrad(() => w.mul(w));
    assert.equal(z.requiresGrad, false);
  });

  test("kink check reports relu(x) - relu(-x) at 0, whose true derivative is 1 but autodiff gives 0", () => {
    const f = (x: Tensor) => x.relu().sub(x.neg().relu());
    const { result, kinks } = checkKinks(() => grad(f)(tensor(0, f64)));
    assert.equal(result.item(), 0);
    assert.ok(kinks.length >= 1);
    assert.equal(kinks[0].op, "relu");
    const away = checkKinks(() => grad(f)(tensor(0.5, f64)));
    assert.equal(away.kinks.length, 0);
    closeArr(away.result, [1]);
    // abs, max and clamp too
    assert.ok(checkKinks(() => grad((x: Tensor) => x.abs())(tensor(0, f64))).kinks.length > 0);
    assert.ok(
      checkKinks(() => grad((x: Tensor) => x.clamp(0, 1).sum())(tensor([1, 0.5], f64))).kinks.length > 0,
    );
    assert.ok(checkKinks(() => grad((x: Tensor) => x.max())(tensor([1, 1], f64))).kinks.length > 0);
    // off by default
    assert.equal(checkKinks(() => 1).kinks.length, 0);
  });

  test("linearize evaluates the linear map without re-running f", () => {
    let calls = 0;
    const f = (x: Tensor) => {
      calls++;
      return x.sin().mul(x);
    };
    const [y, fl] = linearize(f, tensor([1, 2], f64));
    closeArr(y, [Math.sin(1), 2 * Math.sin(2)]);
    const before = calls;
    closeArr(fl(tensor([1, 0], f64)), [Math.cos(1) + Math.sin(1), 0]);
    closeArr(fl(tensor([0, 1], f64)), [0, 2 * Math.cos(2) + Math.sin(2)]);
    assert.equal(calls, before);
  });

  test("a tracer leaking out of its transform is reported", () => {
    let leaked: Tensor | null = null;
    grad((x: Tensor) => {
      leaked = x;
      return x.square();
    })(tensor(1, f64));
    assert.throws(() => leaked!.add(1), /leaked|after that transform returned/);
  });
});
