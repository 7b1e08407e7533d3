/**
 * Adversarial checks of jit as a JAX user would try it: cache keys, donation, closures, errors inside the traced
 * function, every composition order, control flow, training and edge shapes. Expected values come from the same
 * function run eagerly (in float64 where derivatives are involved) or from math, never from jit itself.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  arange,
  autocast,
  checkpoint,
  cond,
  evalJaxpr,
  foriLoop,
  full,
  grad,
  hessian,
  jit,
  jvp,
  manualSeed,
  noGrad,
  ones,
  randn,
  scan,
  switchCase,
  type Tensor,
  tensor,
  vjp,
  vmap,
  whileLoop,
  zeros,
} from "../src/index.ts";
import {
  BatchNorm1d,
  Dropout,
  drawDropoutMasks,
  dropoutRequests,
  functionalApply,
  functionalCall,
  Linear,
  Module,
  moduleState,
  ReLU,
  Sequential,
  Tanh,
} from "../src/nn/index.ts";
import { Adam, functional, makeTrainStep, SGD } from "../src/optim/index.ts";
import type { Backend } from "../src/backend/backend.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";

const f64 = { dtype: "float64" as const };

function assertClose(got: Tensor, want: Tensor, tol: number, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  const a = got.toArray() as unknown;
  const b = want.toArray() as unknown;
  const fa = [a].flat(Number.POSITIVE_INFINITY) as number[];
  const fb = [b].flat(Number.POSITIVE_INFINITY) as number[];
  for (let i = 0; i < fb.length; i++) {
    const d = Math.abs(fa[i] - fb[i]);
    assert.ok(
      d <= tol * (1 + Math.abs(fb[i])) || Object.is(fa[i], fb[i]),
      `${what}: element ${i}: got ${fa[i]}, expected ${fb[i]}`,
    );
  }
}

describe("cache keys", () => {
  test("same shapes, different dtypes: one trace each, each in its own dtype", () => {
    const f = (x: Tensor) => x.mul(0.1).exp().sum(0);
    const jf = jit(f);
    const v = [
      [1, 2],
      [3, 4],
    ];
    const r32 = jf(tensor(v));
    const r64 = jf(tensor(v, f64));
    assert.equal(jf.traceCount, 2);
    assertClose(r32, f(tensor(v)), 0, "float32");
    assertClose(r64, f(tensor(v, f64)), 0, "float64");
    // int32 and bool leaves are keys too
    const g = jit((x: Tensor) => x.add(x));
    assert.deepEqual(g(tensor([1, 2], { dtype: "int32" })).toArray(), [2, 4]);
    assert.equal(g(tensor([1, 2], { dtype: "int32" })).dtype, "int32");
    assert.equal(g(tensor([true, false])).dtype, promoteBoolAdd());
    assert.equal(g.traceCount, 2);
  });

  test("non-contiguous, offset and broadcast inputs give the eager values under one signature", () => {
    const f = (x: Tensor) => x.mul(2).add(x.sin()).cumsum(1);
    const jf = jit(f);
    const r = (n: number) => arange(n).to("float64");
    const inputs: [string, Tensor][] = [
      ["contiguous", r(12).reshape([3, 4])],
      ["transposed", r(12).reshape([4, 3]).permute([1, 0])],
      ["offset and strided", r(30).reshape([5, 6]).narrow(0, 1, 3).narrow(1, 2, 4)],
      ["broadcast (stride 0)", tensor([1, 2, 3, 4], f64).expand([3, 4])],
    ];
    for (const [what, x] of inputs) {
      assert.deepEqual(x.shape, [3, 4]);
      // eager on the same view, and on a contiguous copy of it
      assertClose(jf(x), f(x), 0, what);
      assertClose(jf(x), f(x.contiguous()), 0, `${what} (contiguous copy)`);
    }
    assert.equal(jf.traceCount, 1, "strides and offsets are not part of the signature");
  });

  test("pytrees: key order, null / undefined / number / string leaves, nested arrays", () => {
    const jf = jit((p: { a: Tensor; b: Tensor }) => p.a.sub(p.b));
    assert.deepEqual(jf({ a: tensor(3), b: tensor(1) }).toArray(), 2);
    assert.deepEqual(jf({ b: tensor(1), a: tensor(3) } as { a: Tensor; b: Tensor }).toArray(), 2);
    const g = jit((p: { t: [Tensor, [Tensor]]; n: number; s: string; z: null; u: undefined }) => ({
      sum: p.t[0].add(p.t[1][0]).mul(p.n),
      s: p.s,
      z: p.z,
      u: p.u,
    }));
    const r = g({ t: [tensor(1), [tensor(2)]], n: 2, s: "x", z: null, u: undefined });
    assert.equal(r.sum.item(), 6);
    assert.equal(r.s, "x");
    assert.equal(r.z, null);
    assert.equal(r.u, undefined);
    // a number nested in a pytree is part of the signature (by value)
    assert.equal(g({ t: [tensor(1), [tensor(2)]], n: 5, s: "x", z: null, u: undefined }).sum.item(), 15);
    assert.equal(g({ t: [tensor(1), [tensor(2)]], n: 2, s: "x", z: null, u: undefined }).sum.item(), 6);
    assert.equal(g.traceCount, 2);
  });

  test("staticArgnums: numbers, strings, arrays, functions, negative positions; a new value traces again", () => {
    const jf = jit(
      (x: Tensor, how: string, axes: number[], act: (t: Tensor) => Tensor) =>
        act(how === "sum" ? x.sum(axes) : x.square().sum(axes)),
      { staticArgnums: [1, -2, -1] },
    );
    const x = tensor([
      [1, -2],
      [3, -4],
    ]);
    const neg = (t: Tensor) => t.neg();
    assert.deepEqual(jf(x, "sum", [0], neg).toArray(), [-4, 6]);
    assert.deepEqual(jf(x, "sum", [0], neg).toArray(), [-4, 6]);
    assert.equal(jf.traceCount, 1);
    assert.deepEqual(jf(x, "sq", [0], neg).toArray(), [-10, -20]);
    assert.deepEqual(jf(x, "sum", [1], neg).toArray(), [1, 1]);
    assert.deepEqual(jf(x, "sum", [1], (t: Tensor) => t).toArray(), [-1, -1]);
    assert.equal(jf.traceCount, 4);
  });

  test("static -0 and 0 are different values; a cyclic static value is a clear error", () => {
    const jf = jit((x: Tensor, s: number) => x.div(s), { staticArgnums: 1 });
    assert.equal(jf(tensor(1), 0).item(), Number.POSITIVE_INFINITY);
    assert.equal(jf(tensor(1), -0).item(), Number.NEGATIVE_INFINITY);
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    assert.throws(
      () => jit((x: Tensor, _o: unknown) => x, { staticArgnums: 1 })(tensor(1), cyc),
      /jit: static argument 1 contains itself/,
    );
  });

  test("a class instance is static by identity: the same object hits the cache, another traces again", () => {
    class Cfg {
      constructor(readonly k: number) {}
    }
    const jf = jit((x: Tensor, c: Cfg) => x.mul(c.k), { staticArgnums: 1 });
    const c2 = new Cfg(2);
    assert.equal(jf(tensor(1), c2).item(), 2);
    assert.equal(jf(tensor(1), c2).item(), 2);
    assert.equal(jf(tensor(1), new Cfg(3)).item(), 3);
    assert.equal(jf.traceCount, 2);
  });

  test("bad argnums name jit and the option", () => {
    assert.throws(
      () => jit((x: Tensor) => x, { donateArgnums: 2 })(tensor(1)),
      /jit: donateArgnums entry 2 is out of range for a call with 1 arguments/,
    );
    assert.throws(
      () => jit((x: Tensor) => x, { staticArgnums: -2 })(tensor(1)),
      /jit: staticArgnums entry -2 is out of range/,
    );
    assert.throws(
      () => jit((x: Tensor) => x, { donateArgnums: [0.5] }),
      /jit: donateArgnums must be integers/,
    );
  });
});

describe("numbers as (non-static) arguments", () => {
  const i32 = { dtype: "int32" as const };
  const fs: [string, (x: Tensor, s: number) => Tensor][] = [
    ["x * s", (x, s) => x.mul(s)],
    ["x + s", (x, s) => x.add(s)],
    ["x / s", (x, s) => x.div(s)],
    ["x ** s", (x, s) => x.pow(s)],
    // what a user writes inside the traced function, where s is a tensor: 2 s and exp(s) as JS computes them
    ["x * (2 s)", (x, s) => x.mul(typeof s === "number" ? 2 * s : (s as Tensor).mul(2))],
    ["x * exp(s)", (x, s) => x.mul(typeof s === "number" ? Math.exp(s) : (s as Tensor).exp())],
  ];
  for (const [name, f] of fs) {
    test(`${name}: the eager dtype and value for float64, float32 and int32 x, integral and fractional s`, () => {
      const jf = jit(f);
      for (const x of [tensor([1, 2], f64), tensor([1, 2]), tensor([1, 2], i32)]) {
        for (const s of [0.1, 3, -2.75]) {
          const want = f(x, s);
          const got = jf(x, s);
          assert.equal(got.dtype, want.dtype, `${x.dtype}, s = ${s}: dtype`);
          assert.deepEqual(got.toArray(), want.toArray(), `${x.dtype}, s = ${s}`);
        }
      }
      // one trace per dtype of x and kind of number (integral or not), not per value
      assert.equal(jf.traceCount, 6);
    });
  }

  test("a number argument used as a dim or a size is an error pointing to staticArgnums", () => {
    const x = tensor([1, 2, 3, 4]);
    assert.throws(
      () => jit((a: Tensor, d: number) => a.sum(d))(x, 0),
      /sum: dim must be an integer.*staticArgnums/s,
    );
    assert.throws(
      () => jit((a: Tensor, n: number) => a.reshape([n, -1]))(x, 2),
      /reshape: invalid dimension .*staticArgnums/s,
    );
    assert.deepEqual(
      jit((a: Tensor, n: number) => a.reshape([n, -1]), { staticArgnums: 1 })(x, 2).shape,
      [2, 2],
    );
  });

  test("a new value does not retrace; float64 keeps the number's full precision; nested jit forwards it", () => {
    const jf = jit((x: Tensor, lr: number) => x.sub(x.square().mul(lr)));
    const x = tensor([0.3, 0.7], f64);
    for (const lr of [0.1, 0.01, 0.001])
      assert.deepEqual(jf(x, lr).toArray(), x.sub(x.square().mul(lr)).toArray());
    assert.equal(jf.traceCount, 1);
    const inner = jit((a: Tensor, s: number) => a.mul(s));
    const outer = jit((a: Tensor, s: number) => inner(a, s).add(s));
    const a = tensor([1, 2]);
    const got = outer(a, 0.1);
    assert.equal(got.dtype, "float32");
    assert.deepEqual(got.toArray(), a.mul(0.1).add(0.1).toArray());
    // documented limitation: a number's kind is that of the value given, not of what is computed from it (as a
    // weak type in JAX): 2 * 2.5 is integral in JS, so eager int32 * 5 stays int32, but under jit it is float32
    const twice = jit((b: Tensor, v: number) => b.mul((v as unknown as Tensor).mul(2)));
    assert.equal(twice(tensor([1], i32), 2.5).dtype, "float32");
    assert.equal(twice(tensor([1], i32), 2).dtype, "int32");
    // grad of a jitted function through a number it is given (not differentiated) and through x
    assertClose(
      grad(jit((b: Tensor, s: number) => b.mul(s).sum()))(x, 0.1) as Tensor,
      tensor([0.1, 0.1], f64),
      0,
      "d/dx",
    );
  });
});

/** The dtype eager `add` gives two bool tensors (jit must agree with it). */
function promoteBoolAdd(): string {
  return tensor([true]).add(tensor([true])).dtype;
}

describe("donateArgnums", () => {
  const f = (x: Tensor) => x.mul(2).add(1);

  test("the donated tensor is deleted (a clear error when used), the result is right", () => {
    const t = tensor([1, 2, 3]);
    const r = jit(f, { donateArgnums: 0 })(t);
    assert.deepEqual(r.toArray(), [3, 5, 7]);
    assert.throws(() => t.add(1), /this tensor was deleted: it was donated to a jitted function/);
    assert.throws(() => t.toArray(), /deleted/);
  });

  test("a donated tensor read through a view (a transposed weight, a train step's old state) is the same clear error", () => {
    const lin = jit((w: Tensor, x: Tensor) => x.matmul(w.transpose(0, 1)), { donateArgnums: 0 });
    const w = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const x = ones([4, 3]);
    assert.deepEqual((lin(w, x).toArray() as number[][])[0], [6, 15]);
    const deleted = /this tensor was deleted: it was donated to a jitted function/;
    assert.throws(() => lin(w, x), deleted);
    assert.throws(() => jit((a: Tensor) => a.transpose(0, 1).add(1))(w), deleted);
    assert.throws(() => w.transpose(0, 1), deleted);
    assert.throws(() => w.narrow(0, 0, 1), deleted);
    const m = new Linear(3, 2);
    const step = makeTrainStep(
      m,
      (o: Tensor, y: Tensor) => o.sub(y).square().mean(),
      functional.sgd({ lr: 0.1 }),
    );
    const s0 = step.init();
    step(s0, x, zeros([4, 2]));
    assert.throws(() => step(s0, x, zeros([4, 2])), deleted);
  });

  test("a donated argument that is also returned stays valid", () => {
    const t = tensor([1, 2]);
    const [same, twice] = jit((a: Tensor) => [a, a.mul(2)], { donateArgnums: 0 })(t) as Tensor[];
    assert.deepEqual(same.toArray(), [1, 2]);
    assert.deepEqual(twice.toArray(), [2, 4]);
    assert.deepEqual(t.toArray(), [1, 2]);
  });

  test("the same tensor passed twice, donated once: the other reads are not overwritten", () => {
    const g = (a: Tensor, b: Tensor) => a.add(1).mul(b).add(a.exp()).add(b.square());
    const t = tensor([1, 2, 3], f64);
    const want = g(t, t);
    const r = jit(g, { donateArgnums: 0 })(t, t);
    assertClose(r, want, 0, "f(t, t)");
  });

  test("donating a view never corrupts the tensor it views, nor a view of a donated base", () => {
    // a reshape covering the whole storage
    const base = tensor([1, 2, 3, 4]);
    const r = jit(f, { donateArgnums: 0 })(base.reshape([2, 2]));
    assert.deepEqual(r.toArray(), [
      [3, 5],
      [7, 9],
    ]);
    assert.deepEqual(base.toArray(), [1, 2, 3, 4], "the caller's base");
    // a slice, a broadcast
    const b2 = tensor([1, 2, 3, 4]);
    assert.deepEqual(jit(f, { donateArgnums: 0 })(b2.narrow(0, 1, 2)).toArray(), [5, 7]);
    assert.deepEqual(b2.toArray(), [1, 2, 3, 4]);
    const b3 = tensor([1, 2]);
    assert.deepEqual(jit(f, { donateArgnums: 0 })(b3.expand([2, 2])).toArray(), [
      [3, 5],
      [3, 5],
    ]);
    assert.deepEqual(b3.toArray(), [1, 2]);
    // the base donated while the caller keeps a view of it
    const b4 = tensor([1, 2, 3, 4]);
    const view = b4.reshape([2, 2]);
    assert.deepEqual(jit(f, { donateArgnums: 0 })(b4).toArray(), [3, 5, 7, 9]);
    assert.deepEqual(view.toArray(), [
      [1, 2],
      [3, 4],
    ]);
  });

  test("a donated input the function returns a view of: the view stays right across calls", () => {
    const jf = jit((a: Tensor) => [a.reshape([2, 2]).permute([1, 0]), a.exp().sum()], { donateArgnums: 0 });
    const r1 = jf(tensor([1, 2, 3, 4])) as Tensor[];
    const r2 = jf(tensor([5, 6, 7, 8])) as Tensor[];
    assert.deepEqual(r1[0].toArray(), [
      [1, 3],
      [2, 4],
    ]);
    assert.deepEqual(r2[0].toArray(), [
      [5, 7],
      [6, 8],
    ]);
  });

  test("with requiresGrad inputs (recorded for backward) donation is skipped, so backward works", () => {
    const x = tensor([1, 2, 3], { ...f64, requiresGrad: true });
    const y = jit((a: Tensor) => a.mul(a).sum(), { donateArgnums: 0 })(x);
    y.backward();
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    assert.deepEqual(x.detach().toArray(), [1, 2, 3]);
  });

  test("a call that fails when the program runs still invalidates its donated arguments", () => {
    const jf = jit((a: Tensor, i: Tensor) => a.mul(2).gather(0, i), { donateArgnums: 0 });
    const a = tensor([1, 2, 3]);
    assert.throws(() => jf(a, tensor([5], { dtype: "int32" })), /gather: index 5 is out of bounds/);
    assert.throws(() => a.toArray(), /this tensor was deleted: it was donated/);
    assert.deepEqual(jf(tensor([1, 2, 3]), tensor([1], { dtype: "int32" })).toArray(), [4]);
  });

  test("a donated update still reuses the storage when nothing else shares it", () => {
    const step = jit((w: Tensor, g: Tensor) => w.sub(g.mul(0.5)), { donateArgnums: 0 });
    let w = tensor([1, 2, 3]);
    const g = tensor([2, 2, 2]);
    w = step(w, g);
    const storage = w._data;
    w = step(w, g);
    assert.deepEqual(w.toArray(), [-1, 0, 1]);
    assert.equal(w._data, storage);
  });
});

describe("closures", () => {
  test("values computed from a closed-over tensor follow its in-place updates", () => {
    const w = tensor([1, 2], f64);
    const jf = jit((x: Tensor) => x.mul(w.exp()).add(w.square().sum()));
    const x = tensor([1, 1], f64);
    assertClose(jf(x), x.mul(w.exp()).add(w.square().sum()), 0, "before");
    w.mul_(2);
    assertClose(jf(x), x.mul(w.exp()).add(w.square().sum()), 0, "after w.mul_(2)");
    assert.equal(jf.traceCount, 1);
  });

  test("a closed-over scalar parameter is read at each call (not baked in as a literal, even when it is 1)", () => {
    const s = tensor(1, f64);
    const jf = jit((x: Tensor) => x.mul(s));
    const x = tensor([2, 3], f64);
    assert.deepEqual(jf(x).toArray(), [2, 3]);
    s.fill_(5);
    assert.deepEqual(jf(x).toArray(), [10, 15]);
  });

  test("a jitted eval of a BatchNorm model sees running statistics updated by later training", () => {
    const bn = new BatchNorm1d(2, f64);
    const x = tensor(
      [
        [1, 2],
        [3, 5],
      ],
      f64,
    );
    bn.eval();
    const evalFn = jit((a: Tensor) => bn.call(a));
    evalFn(x);
    bn.train();
    bn.call(
      tensor(
        [
          [10, 20],
          [30, 50],
        ],
        f64,
      ),
    );
    bn.eval();
    assertClose(evalFn(x), bn.call(x), 1e-15, "after a training step");
  });

  test("backward with createGraph through jit: the gradients keep their history (a gradient penalty)", () => {
    // the penalty |d loss / d x|^2 + |d loss / d w|^2, differentiated again: jit must give eager's values
    const x0 = tensor([0.3, -1.2, 0.8], f64);
    const w0 = tensor([1.5, 0.4, -0.7], f64);
    const run = (wrap: (f: (t: Tensor) => Tensor) => (t: Tensor) => Tensor) => {
      const w = w0.clone().requiresGrad_();
      const x = x0.clone().requiresGrad_();
      wrap((t: Tensor) => t.mul(w).sin().sum().mul(t.square().sum()))(x).backward(undefined, {
        createGraph: true,
      });
      const gx = x.grad!;
      const gw = w.grad!;
      assert.ok(gx.requiresGrad && gw.requiresGrad, "the first gradients have a history");
      x.grad = null;
      w.grad = null;
      gx.square().sum().add(gw.square().sum()).backward();
      return [x.grad!, w.grad!];
    };
    const want = run((f) => f);
    const got = run((f) => jit(f));
    assertClose(got[0], want[0], 1e-12, "x");
    assertClose(got[1], want[1], 1e-12, "w");
  });

  test("loss = jit(f)(x); loss.backward() reaches the closed-over parameters when x needs no grad", () => {
    manualSeed(5);
    const net = new Sequential(new Linear(3, 4, f64), new Tanh(), new Linear(4, 1, f64));
    manualSeed(5);
    const ref = new Sequential(new Linear(3, 4, f64), new Tanh(), new Linear(4, 1, f64));
    const lossJ = jit((a: Tensor, b: Tensor) => net.call(a).sub(b).square().mean());
    const opt = new SGD(net.parameters(), { lr: 0.1 });
    const optRef = new SGD(ref.parameters(), { lr: 0.1 });
    const x = randn([6, 3], f64);
    const y = randn([6, 1], f64);
    for (let i = 0; i < 3; i++) {
      opt.zeroGrad();
      optRef.zeroGrad();
      const l = lossJ(x, y);
      l.backward();
      ref.call(x).sub(y).square().mean().backward();
      for (const [[n, p], [, q]] of net
        .namedParameters()
        .map((e, k) => [e, ref.namedParameters()[k]] as const)) {
        assert.ok(p.grad !== null, `${n}: no gradient`);
        assertClose(p.grad!, q.grad!, 1e-14, `step ${i}: ${n}.grad`);
      }
      opt.step();
      optRef.step();
    }
    assert.equal(lossJ.traceCount, 1);
    // lower() still shows the parameters as constants: the program evaluates on the arguments alone
    assertClose(evalJaxpr(lossJ.lower(x, y), x, y) as Tensor, lossJ(x, y).detach(), 0, "evalJaxpr(lower)");
  });

  test("under autocast, jit and eager code in one region share no cast (no leaked tracer, no stale cast)", () => {
    const lin = new Linear(4, 3);
    const x = randn([2, 4]);
    const jf = jit((a: Tensor) => lin.call(a).sum());
    const [a, b] = autocast({ dtype: "bfloat16" }, () => [jf(x), lin.call(x).sum()]);
    assert.deepEqual(a.toArray(), b.toArray());
    noGrad(() => lin.weight.mul_(2));
    const [c, d] = autocast({ dtype: "bfloat16" }, () => [jf(x), lin.call(x).sum()]);
    assert.deepEqual(c.toArray(), d.toArray());
  });

  test("a jitted forward follows the parameters an eager optimizer updates", () => {
    const net = new Sequential(new Linear(3, 4, f64), new Tanh(), new Linear(4, 1, f64));
    const fwd = jit((a: Tensor) => net.call(a));
    const opt = new SGD(net.parameters(), { lr: 0.1, momentum: 0.9 });
    const x = randn([5, 3], f64);
    for (let i = 0; i < 3; i++) {
      assertClose(fwd(x), net.call(x).detach(), 1e-14, `step ${i}`);
      opt.zeroGrad();
      net.call(x).square().mean().backward();
      opt.step();
    }
    assert.equal(fwd.traceCount, 1);
  });

  test("a scan body and cond branches inside jit follow in-place updates of what they close over", () => {
    const w = tensor([0.5, -1], f64);
    const g = (xs: Tensor, p: Tensor) => {
      const [c] = scan(
        (h: Tensor, r: Tensor): [Tensor, null] => [h.mul(w.exp()).add(r), null],
        zeros([2], f64),
        xs,
      );
      return cond(
        p,
        (a: Tensor) => a.mul(w.square()),
        (a: Tensor) => a.sub(w),
        c,
      );
    };
    const jg = jit(g);
    const xs = randn([3, 2], f64);
    for (const p of [true, false]) assertClose(jg(xs, tensor(p)), g(xs, tensor(p)), 1e-15, `before, ${p}`);
    w.add_(1);
    for (const p of [true, false]) assertClose(jg(xs, tensor(p)), g(xs, tensor(p)), 1e-15, `after, ${p}`);
    assert.equal(jg.traceCount, 1);
  });

  test("a jitted function closing over a tracer of an enclosing grad, vmap or jvp (closure conversion)", () => {
    const w = tensor([2, 3], f64);
    const z = tensor([1, 1], f64);
    // sum(z * x * w): d/dx = z * w
    const f = (x: Tensor) => jit((y: Tensor) => y.mul(x.mul(w)).sum())(z);
    assertClose(grad(f)(tensor([1, 2], f64)) as Tensor, tensor([2, 3], f64), 0, "grad");
    assertClose(grad(f)(tensor([5, 7], f64)) as Tensor, tensor([2, 3], f64), 0, "grad, another call");
    const xs = tensor(
      [
        [1, 2],
        [3, 4],
      ],
      f64,
    );
    assertClose(vmap(f)(xs), tensor([8, 18], f64), 0, "vmap");
    const [, t] = jvp(f, [tensor([1, 2], f64)], [tensor([1, 0], f64)]);
    assertClose(t as Tensor, tensor(2, f64), 0, "jvp");
  });

  test("a training flag read while tracing is a guard: train() / eval() trace again, also through nested jit", () => {
    class Twice extends Module {
      forward(x: Tensor): Tensor {
        return this.training ? x.mul(2) : x;
      }
    }
    const m = new Twice();
    const x = tensor([1, 2]);
    const fwd = jit((a: Tensor) => m.call(a).add(1));
    const outer = jit((a: Tensor) => fwd(a).neg());
    m.eval();
    assert.deepEqual(fwd(x).toArray(), [2, 3]);
    assert.deepEqual(outer(x).toArray(), [-2, -3]);
    m.train();
    assert.deepEqual(fwd(x).toArray(), [3, 5]);
    assert.deepEqual(outer(x).toArray(), [-3, -5]);
    m.eval();
    assert.deepEqual(fwd(x).toArray(), [2, 3]);
    assert.deepEqual(outer(x).toArray(), [-2, -3]);
    assert.equal(fwd.traceCount, 2, "one program per mode, kept");
    assert.equal(outer.traceCount, 2);
  });

  test("a closed-over index tensor whose values an op checks while tracing still works", () => {
    const idx = tensor(
      [
        [0, 2],
        [1, 0],
      ],
      { dtype: "int32" },
    );
    const g = (x: Tensor, src: Tensor) => x.scatter(1, idx, src);
    const x = zeros([2, 3]);
    const src = tensor([
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(jit(g)(x, src).toArray(), g(x, src).toArray());
  });
});

describe("errors inside the traced function", () => {
  test("an exception keeps its message and does not poison the cache", () => {
    let fail = true;
    const jf = jit((x: Tensor) => {
      if (fail) throw new Error("user error 42");
      return x.add(1);
    });
    assert.throws(() => jf(tensor([1])), /user error 42/);
    fail = false;
    assert.deepEqual(jf(tensor([1])).toArray(), [2]);
    assert.equal(jf.traceCount, 1);
    // the same after a failing call of an already compiled signature's neighbour
    assert.throws(() => jit((x: Tensor) => x.matmul(x))(tensor([1, 2, 3]).reshape([1, 3])), /matmul/);
  });

  test("an error when the program runs (an index out of range) leaves the compiled function usable", () => {
    const jf = jit((a: Tensor, i: Tensor) => a.gather(0, i).mul(2));
    const i32 = { dtype: "int32" as const };
    assert.throws(() => jf(tensor([1, 2, 3]), tensor([5], i32)), /gather: index 5 is out of bounds/);
    assert.deepEqual(jf(tensor([1, 2, 3]), tensor([2], i32)).toArray(), [6]);
    const r1 = jf(tensor([1, 2, 3]), tensor([0], i32));
    jf(tensor([7, 8, 9]), tensor([0], i32));
    assert.deepEqual(r1.toArray(), [2], "an earlier result is not overwritten by the next call");
    assert.equal(jf.traceCount, 1);
  });

  test("writing into a closed-over tensor or a training-mode BatchNorm under plain jit is an error with the fix", () => {
    const w = tensor([1, 2]);
    assert.throws(
      () =>
        jit((x: Tensor) => {
          w.add_(1);
          return x;
        })(tensor([1])),
      /in-place write into a concrete tensor .*under jit a function must not write into tensors it closes over/s,
    );
    assert.deepEqual(w.toArray(), [1, 2], "nothing was written");
    const bn = new BatchNorm1d(3);
    assert.throws(
      () => jit((x: Tensor) => bn.call(x))(randn([4, 3])),
      /nn\.functionalApply or optim\.makeTrainStep/,
    );
  });

  test("a function returning no tensor is an error naming jit", () => {
    assert.throws(
      () =>
        jit((x: Tensor) => {
          x.add(1);
        })(tensor(1)),
      /jit: the jitted function must return a tensor or a pytree of tensors, got undefined/,
    );
  });

  test("reading a traced value (item, toArray) names jit and the fixes", () => {
    const jf = jit((x: Tensor) => (x.item() > 0 ? x : x.neg()));
    assert.throws(
      () => jf(tensor(1)),
      /item: needs the values .* jit is tracing .*cond or switchCase.*staticArgnums/s,
    );
    assert.throws(() => jit((x: Tensor) => tensor(x.toArray() as number[]))(tensor([1])), /toArray: .*jit/s);
    // the fix: cond, one program for both signs
    const fixed = jit((x: Tensor) =>
      cond(
        x.gt(0),
        (a: Tensor) => a,
        (a: Tensor) => a.neg(),
        x,
      ),
    );
    assert.equal(fixed(tensor(2)).item(), 2);
    assert.equal(fixed(tensor(-3)).item(), 3);
    assert.equal(fixed.traceCount, 1);
  });

  test("a traced tensor used as a JS number (x > 0, s * 2) is an error, never a silent NaN branch", () => {
    const branchy = jit((x: Tensor) => ((x as unknown as number) > 0 ? x : x.neg()));
    assert.throws(() => branchy(tensor(-1)), /traced tensor .* used as a JavaScript number/);
    const arith = jit((x: Tensor, s: number) => x.mul(s * 2));
    assert.throws(() => arith(tensor([1]), 3), /used as a JavaScript number/);
    // static: a plain JS number again
    const ok = jit((x: Tensor, s: number) => x.mul(s * 2), { staticArgnums: 1 });
    assert.deepEqual(ok(tensor([1]), 3).toArray(), [6]);
    // concrete tensors keep converting as objects do (their text)
    assert.match(`${tensor([1])}`, /1/);
  });
});

describe("composition in every order", () => {
  const f = (x: Tensor, y: Tensor) => x.sin().mul(y).add(x.square().mul(y.exp())).sum();
  const x = randn([4], f64);
  const y = randn([4], f64);

  test("grad and vjp with some arguments only; jit(grad) and grad(jit) agree with eager", () => {
    const want = grad(f, { argnums: 1 })(x, y) as Tensor;
    assertClose(grad(jit(f), { argnums: 1 })(x, y) as Tensor, want, 1e-14, "grad(jit) argnums 1");
    assertClose(jit(grad(f, { argnums: 1 }))(x, y) as Tensor, want, 1e-14, "jit(grad) argnums 1");
    const [out, pb] = vjp(
      jit((a: Tensor) => [a.sin(), a.cos()]),
      x,
    );
    const [ct] = pb([ones([4], f64), ones([4], f64)]) as Tensor[];
    assertClose((out as Tensor[])[0], x.sin(), 0, "vjp(jit) out");
    assertClose(ct, x.cos().sub(x.sin()), 1e-15, "vjp(jit) ct");
  });

  test("hessian(jit(f)), jit(hessian(f)), grad(grad(jit)) equal the math", () => {
    const g = (a: Tensor) => a.pow(3).sum().add(a.prod());
    const a = tensor([1, 2, 3], f64);
    // d2/da_i da_j: 6 a_i on the diagonal, prod / (a_i a_j) off it
    const want = tensor(
      [
        [6, 3, 2],
        [3, 12, 1],
        [2, 1, 18],
      ],
      f64,
    );
    assertClose(hessian(jit(g))(a) as Tensor, want, 1e-14, "hessian(jit)");
    assertClose(jit(hessian(g))(a) as Tensor, want, 1e-14, "jit(hessian)");
    const gg = jit((b: Tensor) => grad((c: Tensor) => (grad(jit(g))(c) as Tensor).sum())(b) as Tensor);
    assertClose(gg(a), want.sum(1), 1e-14, "jit(grad(grad(jit)))");
  });

  test("jvp(jit) with pytrees, jit(jvp), and jvp through a jitted grad", () => {
    const h = (p: { a: Tensor; b: Tensor }) => ({ o: p.a.mul(p.b), s: p.a.exp() });
    const p = { a: tensor([2], f64), b: tensor([3], f64) };
    const t = { a: tensor([1], f64), b: tensor([0.5], f64) };
    const [o1, t1] = jvp(jit(h), [p], [t]) as [{ o: Tensor; s: Tensor }, { o: Tensor; s: Tensor }];
    assertClose(o1.o, tensor([6], f64), 0, "primal");
    assertClose(t1.o, tensor([3 + 2 * 0.5], f64), 1e-15, "tangent o"); // b da + a db
    assertClose(t1.s, tensor([Math.exp(2)], f64), 1e-15, "tangent s");
    const inner = jit((a: Tensor, v: Tensor) => jvp((q: Tensor) => q.sin(), [a], [v])[1] as Tensor);
    assertClose(inner(x, y), x.cos().mul(y), 1e-15, "jit(jvp)");
    const [, hv] = jvp(jit(grad((q: Tensor) => q.pow(3).sum())), [x], [y]);
    assertClose(hv as Tensor, x.mul(6).mul(y), 1e-14, "jvp(jit(grad)): a Hessian-vector product");
  });

  test("vmap with inAxes / outAxes around and inside jit; per-example grads", () => {
    const g = (a: Tensor, w: Tensor) => a.mul(w).sum().tanh();
    const xs = randn([4, 3], f64);
    const w = randn([3], f64);
    const want = tensor(
      [0, 1, 2, 3].map((i) => g(xs.narrow(0, i, 1).reshape([3]), w).item()),
      f64,
    );
    assertClose(vmap(jit(g), { inAxes: [0, null] })(xs, w), want, 1e-15, "vmap(jit) inAxes [0, null]");
    assertClose(jit(vmap(g, { inAxes: [0, null] }))(xs, w), want, 1e-15, "jit(vmap)");
    assertClose(
      vmap(jit(g), { inAxes: [1, null] })(xs.permute([1, 0]).contiguous(), w),
      want,
      1e-15,
      "inAxes 1",
    );
    const m = (a: Tensor) => a.mul(2);
    assertClose(vmap(jit(m), { outAxes: 1 })(xs), xs.mul(2).permute([1, 0]), 0, "vmap(jit) outAxes 1");
    assertClose(jit(vmap(m, { outAxes: 1 }))(xs), xs.mul(2).permute([1, 0]), 0, "jit(vmap) outAxes 1");
    const perEx = jit(vmap(grad(jit(g), { argnums: 1 }), { inAxes: [0, null] }))(xs, w);
    for (let i = 0; i < 4; i++) {
      const xi = xs.narrow(0, i, 1).reshape([3]);
      assertClose(
        perEx.narrow(0, i, 1).reshape([3]),
        grad(g, { argnums: 1 })(xi, w) as Tensor,
        1e-14,
        `ex ${i}`,
      );
    }
  });

  test("checkpoint(jit(f)) and jit(checkpoint(f)) give the eager gradient; nested jit with statics", () => {
    const g = (a: Tensor) => a.sin().exp().mul(a).sum();
    const want = grad(g)(x) as Tensor;
    assertClose(grad(checkpoint(jit(g)))(x) as Tensor, want, 1e-14, "grad(checkpoint(jit))");
    assertClose(grad(jit(checkpoint(g)))(x) as Tensor, want, 1e-14, "grad(jit(checkpoint))");
    assertClose(jit(grad(checkpoint(jit(g))))(x) as Tensor, want, 1e-14, "jit(grad(checkpoint(jit)))");
    const pw = jit((a: Tensor, k: number) => a.pow(k), { staticArgnums: 1 });
    const mid = jit((a: Tensor, k: number) => pw(a, k).add(pw(a, k + 1)), { staticArgnums: 1 });
    const top = jit((a: Tensor) => mid(a, 2).sum());
    assertClose(top(x), x.pow(2).add(x.pow(3)).sum(), 1e-15, "three levels");
    assertClose(grad(top)(x) as Tensor, x.mul(2).add(x.square().mul(3)), 1e-14, "grad of three levels");
  });

  test("outputs: several, pytrees, inputs returned unchanged, constants, non-tensor leaves", () => {
    const jf = jit((a: Tensor, b: Tensor) => ({
      same: a,
      pair: [a.add(b), b],
      k: tensor([7, 8]),
      n: 3,
      s: "tag",
    }));
    const a = tensor([1, 2]);
    const b = tensor([3, 4]);
    const r = jf(a, b);
    assert.deepEqual(r.same.toArray(), [1, 2]);
    assert.deepEqual(r.pair[0].toArray(), [4, 6]);
    assert.deepEqual(r.pair[1].toArray(), [3, 4]);
    assert.deepEqual(r.k.toArray(), [7, 8]);
    assert.equal(r.n, 3);
    assert.equal(r.s, "tag");
    const r2 = jf(tensor([0, 0]), b);
    assert.deepEqual(r2.k.toArray(), [7, 8], "the constant is the same at every call");
    assert.deepEqual(r.same.toArray(), [1, 2], "an earlier result is not overwritten by a later call");
  });

  test("a returned constant (also through cond, or as a scan carry) written into by the caller changes no later call", () => {
    const direct = jit((x: Tensor) => [x.add(1), ones([2]), arange(0, 3)]);
    const r = direct(zeros([2])) as Tensor[];
    r[1].add_(5);
    r[2].mul_(0);
    const r2 = direct(zeros([2])) as Tensor[];
    assert.deepEqual(r2[1].toArray(), [1, 1]);
    assert.deepEqual(r2[2].toArray(), [0, 1, 2]);
    const branch = jit((x: Tensor) =>
      cond(
        x.sum().gt(0),
        () => ones([2]),
        () => zeros([2]),
      ),
    );
    branch(ones([1])).add_(7);
    assert.deepEqual(branch(ones([1])).toArray(), [1, 1]);
    // a carry reset to a constant: the caller's write must not reach the next call's carry or its ys
    const xs = ones([4, 2]);
    const reset = jit((v: Tensor) =>
      scan((c: Tensor, x: Tensor) => [full([2], 5), c.add(x).mul(2)], ones([2]), v),
    );
    const [c1] = reset(xs) as Tensor[];
    c1.add_(100);
    const [c2, ys] = reset(xs) as Tensor[];
    assert.deepEqual(c2.toArray(), [5, 5]);
    assert.deepEqual(ys.toArray(), [
      [4, 4],
      [12, 12],
      [12, 12],
      [12, 12],
    ]);
    // the same with a scalar literal as the carry
    const lit = jit((v: Tensor) => scan((c: Tensor, x: Tensor) => [tensor(7), c.add(x)], tensor(1), v));
    const [k1] = lit(ones([3])) as Tensor[];
    k1.add_(100);
    const [k2, ks] = lit(ones([3])) as Tensor[];
    assert.equal(k2.item(), 7);
    assert.deepEqual(ks.toArray(), [2, 8, 8]);
    // a constant returned twice is one tensor, as in eager code
    const twice = jit((x: Tensor) => {
      const k = full([2], 3);
      return [x, k, k];
    })(ones([2])) as Tensor[];
    assert.equal(twice[1], twice[2]);
  });
});

describe("control flow", () => {
  test("a scan + cond loss in every composition order equals its eager counterpart", () => {
    const W = randn([3, 3], f64).mul(0.5);
    const rnn = (xs: Tensor, h0: Tensor) =>
      scan(
        (h: Tensor, x: Tensor): [Tensor, Tensor] => {
          const n = h.matmul(W).add(x).tanh();
          return [n, n.sum()];
        },
        h0,
        xs,
      );
    const loss = (xs: Tensor, h0: Tensor) => {
      const [h, ys] = rnn(xs, h0);
      return cond(
        h.sum().gt(0),
        (a: Tensor) => a.square().sum(),
        (a: Tensor) => a.exp().sum(),
        h,
      ).add(ys.sum());
    };
    const batch = randn([4, 4, 2, 3], f64);
    const h0 = randn([2, 3], f64);
    const ex = (i: number) => batch.narrow(0, i, 1).reshape([4, 2, 3]);
    const values = tensor(
      [0, 1, 2, 3].map((i) => loss(ex(i), h0).item()),
      f64,
    );
    const gradOf = (i: number) => grad(loss, { argnums: 1 })(ex(i), h0) as Tensor;
    const gradSum = [0, 1, 2, 3].map(gradOf).reduce((a, b) => a.add(b));
    const tol = 1e-13;
    assertClose(vmap(jit(loss), { inAxes: [0, null] })(batch, h0), values, tol, "vmap(jit)");
    assertClose(jit(vmap(loss, { inAxes: [0, null] }))(batch, h0), values, tol, "jit(vmap)");
    assertClose(grad(jit(loss), { argnums: 1 })(ex(0), h0) as Tensor, gradOf(0), tol, "grad(jit)");
    assertClose(jit(grad(loss, { argnums: 1 }))(ex(0), h0) as Tensor, gradOf(0), tol, "jit(grad)");
    const perEx = jit(vmap(grad(jit(loss), { argnums: 1 }), { inAxes: [0, null] }))(batch, h0);
    assertClose(perEx.sum(0), gradSum, tol, "jit(vmap(grad(jit)))");
    const t = randn([2, 3], f64);
    const want = jvp((h: Tensor) => loss(ex(1), h), [h0], [t])[1] as Tensor;
    assertClose(jvp((h: Tensor) => jit(loss)(ex(1), h), [h0], [t])[1] as Tensor, want, tol, "jvp(jit)");
    const l2 = (h: Tensor) => loss(ex(2), h);
    const H = hessian(l2)(h0) as Tensor;
    assertClose(hessian(jit(l2))(h0) as Tensor, H, tol, "hessian(jit)");
    assertClose(jit(hessian(l2))(h0) as Tensor, H, tol, "jit(hessian)");
    assertClose(
      grad(checkpoint(jit(loss)), { argnums: 1 })(ex(0), h0) as Tensor,
      gradOf(0),
      tol,
      "checkpoint",
    );
  });

  test("scan with a pytree carry, forward and reverse, under jit and grad(jit)", () => {
    type C = { h: Tensor; acc: [Tensor, Tensor] };
    const body = (c: C, x: Tensor): [C, Tensor] => {
      const h = c.h.mul(x).add(x.sin());
      return [{ h, acc: [c.acc[0].add(h), c.acc[1].mul(x.cos())] }, h.square()];
    };
    const run = (xs: Tensor, h0: Tensor, reverse: boolean) => {
      const [c, ys] = scan(body, { h: h0, acc: [h0.mul(0), h0.mul(0).add(1)] }, xs, { reverse });
      return c.h.add(c.acc[0]).add(c.acc[1]).sum().add(ys.sum());
    };
    const xs = randn([5, 3], f64).mul(0.5);
    const h0 = randn([3], f64);
    for (const reverse of [false, true]) {
      const jr = jit((a: Tensor, b: Tensor) => run(a, b, reverse));
      assertClose(jr(xs, h0), run(xs, h0, reverse), 1e-14, `value reverse=${reverse}`);
      const want = grad((a: Tensor, b: Tensor) => run(a, b, reverse), { argnums: [0, 1] })(
        xs,
        h0,
      ) as Tensor[];
      const got = grad(jr, { argnums: [0, 1] })(xs, h0) as Tensor[];
      assertClose(got[0], want[0], 1e-13, `dxs reverse=${reverse}`);
      assertClose(got[1], want[1], 1e-13, `dh0 reverse=${reverse}`);
    }
  });

  test("scans of length 0 and 1 under jit and grad", () => {
    const loss = (xs: Tensor, c0: Tensor) =>
      scan((c: Tensor, r: Tensor): [Tensor, Tensor] => [c.mul(r), c], c0, xs)[0].sum();
    // length 0: the carry passes through; d/dc0 = 1, no rows of xs to differentiate
    const [g0x, g0c] = grad(jit(loss), { argnums: [0, 1] })(zeros([0, 3], f64), ones([3], f64)) as Tensor[];
    assert.deepEqual(g0x.shape, [0, 3]);
    assertClose(g0c, ones([3], f64), 0, "length 0: d/dc0");
    assert.deepEqual(
      jit((xs: Tensor) => scan((c: Tensor, r: Tensor) => [c.add(r), c], zeros([3]), xs)[1])(zeros([0, 3]))
        .shape,
      [0, 3],
    );
    // length 1: sum(c0 * r): d/dr = c0, d/dc0 = r
    const r = tensor([[2, 3, 4]], f64);
    const c0 = tensor([5, 6, 7], f64);
    const [g1x, g1c] = grad(jit(loss), { argnums: [0, 1] })(r, c0) as Tensor[];
    assertClose(g1x, c0.reshape([1, 3]), 0, "length 1: d/dxs");
    assertClose(g1c, r.reshape([3]), 0, "length 1: d/dc0");
  });

  test("cond / switchCase: branches of another structure are an error; a traced index picks at run time", () => {
    assert.throws(
      () =>
        jit((p: Tensor, x: Tensor) =>
          cond<Tensor | Tensor[]>(
            p,
            (a: Tensor) => [a],
            (a: Tensor) => a,
            x,
          ),
        )(tensor(true), tensor(1)),
      /cond: .*structure/,
    );
    const sw = jit((i: Tensor, x: Tensor) =>
      switchCase(i, [(a: Tensor) => a.add(1), (a: Tensor) => a.mul(10), (a: Tensor) => a.neg()], x),
    );
    const i32 = { dtype: "int32" as const };
    assert.equal(sw(tensor(0, i32), tensor(2)).item(), 3);
    assert.equal(sw(tensor(1, i32), tensor(2)).item(), 20);
    assert.equal(sw(tensor(7, i32), tensor(2)).item(), -2, "clamped like JAX");
    assert.equal(sw.traceCount, 1);
  });

  test("whileLoop: reverse mode through or inside jit is a clear error; forward mode works", () => {
    const loop = (x: Tensor) =>
      whileLoop(
        (v: Tensor) => v.lt(10),
        (v: Tensor) => v.mul(2),
        x,
      );
    assert.throws(
      () => grad(jit(loop))(tensor(1)),
      /whileLoop: reverse-mode differentiation .* not supported/s,
    );
    assert.throws(() => jit(grad(loop))(tensor(1)), /whileLoop: reverse-mode/);
    // 1.5 -> 3 -> 6 -> 12: three doublings, d/dx = 8
    const [v, t] = jvp(jit(loop), [tensor(1.5)], [tensor(1)]);
    assert.equal((v as Tensor).item(), 12);
    assert.equal((t as Tensor).item(), 8);
  });

  test("foriLoop: static bounds are reverse-differentiable through jit; a traced bound says what to do", () => {
    const pow = (x: Tensor, n: number) => foriLoop(0, n, (_i: Tensor, v: Tensor) => v.mul(x), ones([], f64));
    const x = tensor(1.5, f64);
    // d/dx x^4 = 4 x^3
    assertClose(grad(jit((a: Tensor) => pow(a, 4)))(x) as Tensor, tensor(4 * 1.5 ** 3, f64), 1e-14, "closed");
    const js = jit(
      grad((a: Tensor, n: number) => pow(a, n)),
      { staticArgnums: 1 },
    );
    assertClose(js(x, 3) as Tensor, tensor(3 * 1.5 ** 2, f64), 1e-14, "static n");
    assertClose(js(x, 5) as Tensor, tensor(5 * 1.5 ** 4, f64), 1e-14, "static n = 5");
    // an integral number argument as the bound: traced, so a whileLoop (forward values; reverse mode is its error)
    assertClose(jit(pow)(x, 3), tensor(1.5 ** 3, f64), 1e-15, "traced number bound");
    assertClose(jit(pow)(x, 4), tensor(1.5 ** 4, f64), 1e-15, "traced number bound, another value");
    assert.throws(
      () => grad((a: Tensor) => jit(pow)(a, 3))(x),
      /whileLoop: reverse-mode .*foriLoop with a static/s,
    );
    assert.throws(() => jit(pow)(x, 2.5), /foriLoop: upper must be an integer scalar.*staticArgnums/s);
    // the same bound as a traced int32 tensor: forward values work
    const ti = jit((a: Tensor, n: Tensor) =>
      foriLoop(0, n, (_i: Tensor, v: Tensor) => v.mul(a), ones([], f64)),
    );
    assertClose(ti(x, tensor(3, { dtype: "int32" })), tensor(1.5 ** 3, f64), 1e-15, "traced int32 bound");
  });

  test("vmap of cond and whileLoop with per-example predicates, through jit", () => {
    const c = (x: Tensor) =>
      cond(
        x.gt(0),
        (a: Tensor) => a.mul(2),
        (a: Tensor) => a.neg(),
        x,
      );
    assert.deepEqual(vmap(jit(c))(tensor([1, -3, 2])).toArray(), [2, 3, 4]);
    assert.deepEqual(jit(vmap(c))(tensor([1, -3, 2])).toArray(), [2, 3, 4]);
    const w = (x: Tensor) =>
      whileLoop(
        (v: Tensor) => v.lt(10),
        (v: Tensor) => v.mul(2),
        x,
      );
    // 1 -> 16, 3 -> 12, 20 stays
    assert.deepEqual(vmap(jit(w))(tensor([1, 3, 20])).toArray(), [16, 12, 20]);
    assert.deepEqual(jit(vmap(w))(tensor([1, 3, 20])).toArray(), [16, 12, 20]);
  });
});

describe("training", () => {
  const makeNet = () => {
    manualSeed(11);
    return new Sequential(new Linear(5, 7, f64), new ReLU(), new Linear(7, 2, f64));
  };
  const x = randn([9, 5], f64);
  const y = randn([9, 2], f64);

  for (const [name, fopt, stateful] of [
    ["Adam", () => functional.adam({ lr: 0.01 }), (p: Tensor[]) => new Adam(p, { lr: 0.01 })],
    [
      "SGD with momentum and Nesterov",
      () => functional.sgd({ lr: 0.05, momentum: 0.9, nesterov: true }),
      (p: Tensor[]) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true }),
    ],
  ] as const) {
    test(`jit(trainStep) with functional ${name} equals the eager stateful optimizer over 5 steps`, () => {
      const eagerNet = makeNet();
      const opt = stateful(eagerNet.parameters());
      const net = makeNet();
      const fo = fopt();
      const loss = (p: Record<string, Tensor>) => functionalCall(net, p, x).sub(y).square().mean();
      const step = jit(
        (p: Record<string, Tensor>, s: ReturnType<typeof fo.init>) => {
          const g = grad(loss)(p) as Record<string, Tensor>;
          const [np, ns] = fo.update(g, s, p);
          return [loss(p), np, ns] as const;
        },
        { donateArgnums: [0, 1] },
      );
      let p = moduleState(net).params;
      let s = fo.init(p);
      for (let i = 0; i < 5; i++) {
        opt.zeroGrad();
        const le = eagerNet.call(x).sub(y).square().mean();
        le.backward();
        opt.step();
        const [lj, np, ns] = step(p, s);
        assertClose(lj, le.detach(), 1e-13, `loss ${i}`);
        p = np as Record<string, Tensor>;
        s = ns;
      }
      for (const [n, w] of eagerNet.namedParameters()) assertClose(p[n], w.detach(), 1e-12, n);
      assert.equal(step.traceCount, 1);
    });
  }

  test("BatchNorm buffers through functionalApply under jit equal eager training-mode updates", () => {
    manualSeed(3);
    const net = new Sequential(new Linear(4, 3, f64), new BatchNorm1d(3, f64));
    manualSeed(3);
    const ref = new Sequential(new Linear(4, 3, f64), new BatchNorm1d(3, f64));
    const fwd = jit((st: ReturnType<typeof moduleState>, a: Tensor) => functionalApply(net, st, [a]));
    let st = moduleState(net);
    for (let i = 0; i < 3; i++) {
      const a = randn([6, 4], f64);
      const [out, buffers] = fwd(st, a);
      const want = ref.call(a);
      assertClose(out, want.detach(), 1e-14, `output ${i}`);
      st = { params: st.params, buffers };
    }
    for (const [n, b] of ref.namedBuffers()) {
      if (b.dtype === "float64") assertClose(st.buffers[n], b, 1e-14, n);
      else assert.deepEqual(st.buffers[n].toArray(), b.toArray(), n);
    }
  });

  test("Dropout under jit with explicitly drawn masks reproduces the eager forward of the same seed", () => {
    const net = new Sequential(new Linear(6, 6, f64), new Dropout(0.5), new Linear(6, 2, f64));
    const a = randn([4, 6], f64);
    const st = moduleState(net);
    const fwd = jit((s: typeof st, b: Tensor, masks: Tensor[]) => functionalApply(net, s, [b], { masks })[0]);
    const req = dropoutRequests(net, st, [a]);
    manualSeed(99);
    const want = net.call(a).detach();
    manualSeed(99);
    const got1 = fwd(st, a, drawDropoutMasks(req));
    assertClose(got1, want, 1e-15, "same seed, same numbers");
    manualSeed(99);
    assertClose(fwd(st, a, drawDropoutMasks(req)), got1, 0, "reproducible");
    assert.equal(fwd.traceCount, 1);
  });
});

describe("edge shapes and dtypes", () => {
  test("zero-size tensors: values and gradients", () => {
    const f = (a: Tensor) => a.exp().sum(0);
    assert.deepEqual(jit(f)(zeros([0, 3])).toArray(), [0, 0, 0]);
    const g = grad(jit((a: Tensor) => a.exp().sum()))(zeros([0, 3], f64)) as Tensor;
    assert.deepEqual(g.shape, [0, 3]);
    assert.deepEqual(jit((a: Tensor) => a.mul(2))(zeros([2, 0])).shape, [2, 0]);
  });

  test("rank 0 and rank 8 inputs", () => {
    assert.equal(jit((a: Tensor) => a.mul(a).add(1))(tensor(3)).item(), 10);
    const f = (a: Tensor) =>
      a
        .exp()
        .sum([1, 3, 5])
        .mul(a.sum(7).mean([0, 2, 4, 6]).sum());
    const a = randn([2, 1, 2, 1, 2, 1, 2, 3], f64);
    assertClose(jit(f)(a), f(a), 1e-14, "rank 8");
    assertClose(
      grad(jit((b: Tensor) => f(b).sum()))(a) as Tensor,
      grad((b: Tensor) => f(b).sum())(a) as Tensor,
      1e-13,
      "grad rank 8",
    );
  });

  test("one jitted function across backends (js, wasm, native): rank 12, permuted input, its gradient", () => {
    const f = (a: Tensor) => a.mul(2).exp().add(a.sin()).sum([0, 5, 11]).tanh();
    const jf = jit(f);
    const jg = jit(grad((x: Tensor) => f(x).sum()));
    const shape = [2, 1, 2, 1, 2, 3, 1, 2, 1, 2, 1, 2];
    const prev = getBackend();
    const backends: Backend[] = [prev];
    for (const r of [loadWasmBackend(), loadNativeBackend()]) if ("backend" in r) backends.push(r.backend);
    try {
      for (const b of backends) {
        setBackend(b);
        const a = randn(shape, f64);
        const p = randn(shape, f64).permute([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assertClose(jf(a), f(a), 0, `${b.name}: rank 12`);
        assertClose(jf(p), f(p), 0, `${b.name}: permuted`);
        assertClose(jg(a) as Tensor, grad((x: Tensor) => f(x).sum())(a) as Tensor, 0, `${b.name}: grad`);
      }
    } finally {
      setBackend(prev);
    }
  });

  test("int32 and bool inputs and outputs keep their dtypes", () => {
    const i32 = { dtype: "int32" as const };
    const f = (a: Tensor, m: Tensor) => [a.mul(3).add(1), m.logicalNot(), a.gt(1), a.sum()];
    const a = tensor([1, 2, 3], i32);
    const m = tensor([true, false, true]);
    const got = jit(f)(a, m) as Tensor[];
    const want = f(a, m);
    for (let i = 0; i < 4; i++) {
      assert.equal(got[i].dtype, want[i].dtype, `output ${i} dtype`);
      assert.deepEqual(got[i].toArray(), want[i].toArray(), `output ${i}`);
    }
  });
});
