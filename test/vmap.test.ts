/**
 * vmap: JAX semantics over pytrees (inAxes/outAxes), error messages, nesting, and composition with grad, jvp,
 * vjp, checkpoint, customJvp and customVjp. Every expected value is computed independently: by running the
 * function on each example and stacking, never by another vmap.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  checkpoint,
  customJvp,
  customVjp,
  grad,
  makeJaxpr,
  jvp,
  randn,
  ShapeError,
  stack,
  type Tensor,
  tensor,
  vjp,
  vmap,
} from "../src/index.ts";
import { nd } from "./ref.ts";

function close(a: Tensor, b: Tensor, tol = 1e-5): void {
  const x = nd(a);
  const y = nd(b);
  assert.deepEqual(x.shape, y.shape);
  x.data.forEach((v, i) => {
    const w = y.data[i];
    assert.ok(Math.abs(v - w) <= tol * (1 + Math.abs(w)), `element ${i}: ${v} vs ${w}`);
  });
}

/** The reference: f applied to each example along axis 0, stacked. */
function loop(f: (...xs: Tensor[]) => Tensor, xs: Tensor[], mapped: boolean[]): Tensor {
  const n = xs.find((_, i) => mapped[i])!.shape[0];
  const outs: Tensor[] = [];
  for (let k = 0; k < n; k++)
    outs.push(f(...xs.map((x, i) => (mapped[i] ? x.narrow(0, k, 1).squeeze(0) : x))));
  return stack(outs, 0);
}

const mlp = (w: Tensor, x: Tensor) => x.matmul(w).tanh().sum();

test("vmap maps over axis 0 by default and equals the stacked per-example results", () => {
  const xs = randn([4, 3, 5]);
  const f = (x: Tensor) => x.sin().matmul(x.transpose(0, 1)).softmax(-1);
  close(vmap(f)(xs), loop(f, [xs], [true]));
});

test("inAxes per argument (null shares an argument), negative axes and outAxes", () => {
  const w = randn([5, 2]);
  const xs = randn([3, 5]);
  const f = (x: Tensor, w: Tensor) => x.matmul(w);
  close(vmap(f, { inAxes: [0, null] })(xs, w), loop(f, [xs, w], [true, false]));
  // the batch on the last axis of x, and written to the last axis of the output
  const xt = xs.transpose(0, 1);
  const out = vmap(f, { inAxes: [-1, null], outAxes: -1 })(xt, w);
  close(out, loop(f, [xs, w], [true, false]).transpose(0, 1));
});

test("pytree arguments with a matching inAxes pytree, and pytree outputs", () => {
  const params = { w: randn([4, 3]), b: randn([3]) };
  const xs = randn([6, 4]);
  const f = (p: { w: Tensor; b: Tensor }, x: Tensor) => ({ y: x.matmul(p.w).add(p.b), n: x.pow(2).sum() });
  const out = vmap(f, { inAxes: [{ w: null, b: null }, 0] })(params, xs);
  close(
    out.y,
    loop((x) => f(params, x).y, [xs], [true]),
  );
  close(
    out.n,
    loop((x) => f(params, x).n, [xs], [true]),
  );
  // an output that does not depend on the batch is broadcast, or returned as is with outAxes null
  const g = (p: { w: Tensor; b: Tensor }, x: Tensor) => [x.sum(), p.b.mul(2)];
  const [s, b2] = vmap(g, { inAxes: [null, 0], outAxes: [0, null] })(params, xs);
  close(s, xs.sum(1));
  close(b2, params.b.mul(2));
});

test("errors name vmap, the input and the sizes", () => {
  const f = (a: Tensor, b: Tensor) => a.add(b);
  assert.throws(
    () => vmap(f)(randn([3, 2]), randn([4, 2])),
    (e: Error) => e instanceof ShapeError && /vmap: inconsistent sizes.*size 3.*size 4/.test(e.message),
  );
  assert.throws(
    () => vmap(f, { inAxes: [2, 0] })(randn([3, 2]), randn([3, 2])),
    (e: Error) => e instanceof ShapeError && /vmap: input leaf 0 .*axis 2 is out of range/.test(e.message),
  );
  assert.throws(() => vmap(f, { inAxes: null })(randn([3]), randn([3])), /vmap: no input is mapped/);
  assert.throws(
    () => vmap(f, { inAxes: [0] })(randn([3]), randn([3])),
    /vmap: inAxes has 1 entries \(one per argument\) but the function got 2 arguments/,
  );
  assert.throws(
    () =>
      vmap((p: { a: Tensor; b: Tensor }) => p.a.add(p.b), { inAxes: [{ a: 0 }] })({
        a: randn([3]),
        b: randn([3]),
      }),
    /vmap: the axis spec of argument\[0\] has no entry for key "b"/,
  );
  assert.throws(
    () => vmap((x: Tensor) => x, { outAxes: null })(randn([3])),
    /vmap: output leaf 0 .*outAxes is null/,
  );
});

test("nested vmap equals a double loop", () => {
  const xs = randn([2, 3, 4]);
  const ys = randn([3, 4]);
  // outer over xs' axis 0 (ys shared), inner over axis 0 of both
  const f = (x: Tensor, y: Tensor) => x.mul(y).sum().exp();
  const got = vmap((x: Tensor, y: Tensor) => vmap(f)(x, y), { inAxes: [0, null] })(xs, ys);
  const want = stack([0, 1].map((i) => loop(f, [xs.narrow(0, i, 1).squeeze(0), ys], [true, true])));
  close(got, want);
});

test("vmap(grad(f)) gives per-example gradients; grad(vmap(f)) and jvp(vmap(f)) work", () => {
  const w = randn([5, 3]);
  const xs = randn([4, 5]);
  const g = grad(mlp);
  close(vmap(g, { inAxes: [null, 0] })(w, xs), loop(g, [w, xs], [false, true]));
  // grad of the summed batched function = the sum of per-example gradients
  const total = grad((w: Tensor) => vmap(mlp, { inAxes: [null, 0] })(w, xs).sum())(w);
  close(total, loop(g, [w, xs], [false, true]).sum(0), 1e-4);
  const t = randn([5, 3]);
  const [y, ty] = jvp((w: Tensor) => vmap(mlp, { inAxes: [null, 0] })(w, xs), [w], [t]);
  close(y, loop(mlp, [w, xs], [false, true]));
  const perTangent = loop((x) => jvp((w: Tensor) => mlp(w, x), [w], [t])[1], [xs], [true]);
  close(ty, perTangent, 1e-4);
  // vjp of vmap
  const [, back] = vjp((x: Tensor) => vmap((r: Tensor) => r.exp().sum())(x), xs);
  close(back(tensor([1, 2, 3, 4]))[0], xs.exp().mul(tensor([1, 2, 3, 4]).reshape([4, 1])));
});

test("checkpoint under vmap, and vmap inside grad of a checkpointed function", () => {
  const block = checkpoint((x: Tensor) => x.tanh().mul(x).sin());
  const xs = randn([3, 4]);
  close(vmap(block)(xs), block(xs));
  const g = grad((x: Tensor) => block(x).sum());
  close(vmap(g)(xs), loop(g, [xs], [true]));
  close(grad((x: Tensor) => vmap(block)(x).sum())(xs), g(xs));
});

test("customVjp and customJvp rules are used under vmap, inside and outside grad/jvp", () => {
  // a deliberately "wrong" rule (3x instead of the true 2x) proves the custom rule is the one applied
  const sq = customVjp((x: Tensor) => x.mul(x), {
    fwd: (x: Tensor) => [x.mul(x), x],
    bwd: (x: Tensor, ct: Tensor) => [ct.mul(x).mul(3)],
  });
  const xs = randn([3, 4]);
  close(vmap(sq)(xs), xs.mul(xs));
  const want = xs.mul(3);
  close(vmap(grad((x: Tensor) => sq(x).sum()))(xs), want);
  close(grad((x: Tensor) => vmap(sq)(x).sum())(xs), want);
  const cube = customJvp(
    (x: Tensor) => x.pow(3),
    ([x], [t]) => [x.pow(3), t.mul(x.mul(x)).mul(5)],
  );
  const t = randn([3, 4]);
  const [y, ty] = jvp((x: Tensor) => vmap(cube)(x), [xs], [t]);
  close(y, xs.pow(3));
  close(ty, t.mul(xs.mul(xs)).mul(5));
  close(vmap((x: Tensor, u: Tensor) => jvp(cube, [x], [u])[1])(xs, t), t.mul(xs.mul(xs)).mul(5));
});

test("data-dependent reads under vmap are an error naming the op; detach and view keep the batch", () => {
  const xs = randn([3, 4]);
  assert.throws(
    () => vmap((x: Tensor) => tensor(x.sum().item()))(xs),
    (e: Error) => /item.*under vmap it stands for a whole batch/.test(e.message),
  );
  // detach under vmap is the per-example value (a regression: it used to return the whole batch)
  close(vmap((x: Tensor) => x.detach().mul(x))(xs), xs.mul(xs));
  close(vmap(grad((x: Tensor) => x.detach().mul(x).sum()))(xs), xs);
  close(vmap((x: Tensor) => x.view([2, 2]))(xs), xs.reshape([3, 2, 2]));
});

test("the program of vmap(grad(f)) is batched: the shared weight is folded into the rows, never broadcast", () => {
  const f = (w: Tensor, x: Tensor) => x.matmul(w).tanh().sum();
  const text = String(makeJaxpr(vmap(grad(f), { inAxes: [null, 0] }))(randn([3, 2]), randn([4, 3])));
  // one [4,3] @ [3,2] product for the forward (the batch folded into the rows) and one batched outer product
  // [4,3,1] @ [4,1,2] for the per-example weight gradients
  assert.match(text, /f32\[4,2\] = dot \w+ a\n/);
  assert.match(text, /f32\[4,3,2\] = dot \w+ \w+\n/);
  assert.equal(text.match(/= dot /g)?.length, 2);
  assert.doesNotMatch(text, /broadcast/);
});
