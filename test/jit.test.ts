/**
 * jit: the compiled program equals the function it was traced from (bit for bit: the executor runs the same
 * kernels on the same values, and the simplifications only drop exact identities and repeats), it composes with
 * every transform in either order, it traces once per signature, and its memory plan reuses storage.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import {
  checkpoint,
  customVjp,
  grad,
  jit,
  jvp,
  makeJaxpr,
  noGrad,
  randn,
  type Tensor,
  tensor,
  vjp,
  vmap,
  zeros,
} from "../src/index.ts";
import {
  crossEntropy,
  Dropout,
  Embedding,
  functionalCall,
  Linear,
  ReLU,
  Sequential,
} from "../src/nn/index.ts";
import { mk, OPS } from "./opinfo.ts";

function assertSame(got: Tensor, want: Tensor, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  const a = got.dataSync();
  const b = want.dataSync();
  for (let i = 0; i < b.length; i++) {
    assert.ok(Object.is(a[i], b[i]), `${what}: element ${i}: got ${a[i]}, expected ${b[i]}`);
  }
}

function assertClose(got: Tensor, want: Tensor, tol: number, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const d = got.sub(want).abs().max().item();
  assert.ok(d <= tol, `${what}: max difference ${d} > ${tol}`);
}

/**
 * The op table under jit, with `backend` selected (js when omitted): with fusion on (js, wasm and native implement
 * `fused`), chains in the VJP programs run as fused kernels, which must give the unfused bits.
 */
function opTable(label: string, backend?: () => Backend): void {
  describe(`op table${label}: jit(op) equals the op, and jit of its VJP equals the VJP`, () => {
    let prev: Backend | null = null;
    before(() => {
      if (backend === undefined) return;
      prev = getBackend();
      setBackend(backend());
    });
    after(() => {
      if (prev !== null) setBackend(prev);
    });
    for (const op of OPS) {
      test(op.name, () => {
        const jf = jit((...xs: Tensor[]) => op.fn(...xs));
        op.samples().forEach((xs, k) => {
          const want = op.fn(...xs);
          assertSame(jf(...xs), want, `${op.name} sample ${k}`);
          assertSame(jf(...xs), want, `${op.name} sample ${k}, second call`);
        });
        if (!op.diff) return;
        const xs = op.samples()[0];
        const u = mk([...op.fn(...xs).shape]);
        const vjpMap = (...ys: Tensor[]) => vjp((...zs: Tensor[]) => op.fn(...zs), ...ys)[1](u) as Tensor[];
        const got = jit(vjpMap)(...xs) as Tensor[];
        const want = vjpMap(...xs);
        for (let i = 0; i < want.length; i++) assertSame(got[i], want[i], `${op.name} cotangent ${i}`);
      });
    }
  });
}

opTable("");
opTable(" on wasm", () => {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(r.error);
  return r.backend;
});
if ("backend" in loadNativeBackend()) {
  opTable(" on native", () => {
    const r = loadNativeBackend();
    if ("error" in r) throw new Error(r.error);
    return r.backend;
  });
}

const f = (x: Tensor, y: Tensor) => x.mul(y).add(x.sin()).sum();

describe("composition with the transforms", () => {
  const x = randn([5], { dtype: "float64" });
  const y = randn([5], { dtype: "float64" });
  // d/dx = y + cos x, d/dy = x
  const gx = y.add(x.cos());

  test("jit(grad(f)) and grad(jit(f))", () => {
    const [a, b] = jit(grad(f, { argnums: [0, 1] }))(x, y) as Tensor[];
    assertClose(a, gx, 1e-12, "jit(grad) dx");
    assertClose(b, x, 0, "jit(grad) dy");
    const [c, d] = grad(jit(f), { argnums: [0, 1] })(x, y) as Tensor[];
    assertClose(c, gx, 1e-12, "grad(jit) dx");
    assertClose(d, x, 0, "grad(jit) dy");
  });

  test("vmap(jit(f)), jit(vmap(f)), jvp(jit(f)), jit(jvp(f))", () => {
    const xs = randn([3, 5], { dtype: "float64" });
    const ys = randn([3, 5], { dtype: "float64" });
    const want = vmap(f)(xs, ys);
    assertClose(vmap(jit(f))(xs, ys), want, 1e-12, "vmap(jit)");
    assertClose(jit(vmap(f))(xs, ys), want, 1e-12, "jit(vmap)");
    const t = randn([5], { dtype: "float64" });
    const wantT = gx.mul(t).sum(); // directional derivative along (t, 0)
    const [, t1] = jvp((a: Tensor) => jit(f)(a, y), [x], [t]);
    assertClose(t1 as Tensor, wantT, 1e-12, "jvp(jit)");
    const t2 = jit((a: Tensor, v: Tensor) => jvp((b: Tensor) => f(b, y), [a], [v])[1] as Tensor)(x, t);
    assertClose(t2, wantT, 1e-12, "jit(jvp)");
  });

  test("second order: grad(grad(jit)) and jit(grad(grad))", () => {
    const h = (a: Tensor) => a.pow(3).sum();
    const g2 = (a: Tensor) => grad((b: Tensor) => (grad(h)(b) as Tensor).sum())(a) as Tensor;
    const want = x.mul(6);
    assertClose(g2(x), want, 1e-12, "reference");
    assertClose(jit(g2)(x), want, 1e-12, "jit(grad(grad))");
    const g2j = (a: Tensor) => grad((b: Tensor) => (grad(jit(h))(b) as Tensor).sum())(a) as Tensor;
    assertClose(g2j(x), want, 1e-12, "grad(grad(jit))");
  });

  test("jit of a jitted function inlines it; makeJaxpr(jit(f)) shows one jit call", () => {
    const inner = jit((a: Tensor) => a.exp());
    const outer = jit((a: Tensor) => inner(a).add(1));
    assertClose(outer(x), x.exp().add(1), 0, "jit(jit)");
    const p = outer.lower(x);
    assert.deepEqual(
      p.eqns.map((e) => e.name),
      ["exp", "add"],
    );
    const shown = makeJaxpr(jit(f))(x, y);
    assert.deepEqual(
      shown.eqns.map((e) => e.name),
      ["jit"],
    );
    assert.ok(String(shown).includes("sin"));
  });

  test("checkpoint and customVjp inside jit keep their meaning", () => {
    const ste = customVjp((a: Tensor) => a.round(), {
      fwd: (a: Tensor) => [a.round(), null],
      bwd: (_r, ct: Tensor) => [ct],
    });
    const g = jit(
      grad((a: Tensor) =>
        ste(a)
          .mul(checkpoint((b: Tensor) => b.sin())(a))
          .sum(),
      ),
    );
    // d/da [round(a) * sin(a)] with the straight-through rule: sin(a) + round(a) cos(a)
    const a = tensor([0.3, 1.7, -2.2], { dtype: "float64" });
    assertClose(g(a) as Tensor, a.sin().add(a.round().mul(a.cos())), 1e-12, "ste * checkpoint");
  });

  test("eager backward through jit reaches the inputs and the module parameters it closes over", () => {
    const lin = new Linear(4, 3, { dtype: "float64" });
    const loss = jit((a: Tensor) => lin.call(a).tanh().sum());
    const a = randn([2, 4], { dtype: "float64", requiresGrad: true });
    loss(a).backward();
    const lin2 = new Linear(4, 3, { dtype: "float64" });
    noGrad(() => {
      lin2.weight.copy_(lin.weight);
      lin2.bias!.copy_(lin.bias!);
    });
    const a2 = a.detach();
    a2.requiresGrad = true;
    lin2.call(a2).tanh().sum().backward();
    assertClose(a.grad!, a2.grad!, 1e-12, "input grad");
    assertClose(lin.weight.grad!, lin2.weight.grad!, 1e-12, "weight grad");
    assertClose(lin.bias!.grad!, lin2.bias!.grad!, 1e-12, "bias grad");
  });
});

describe("signatures and the cache", () => {
  test("traces once per shape/dtype/structure; numbers at the top level are traced, not static", () => {
    const jf = jit((a: Tensor, s: number) => a.mul(s));
    jf(tensor([1, 2]), 3);
    jf(tensor([5, 6]), 4);
    assert.equal(jf.traceCount, 1);
    assert.deepEqual(jf(tensor([1, 2]), 10).toArray(), [10, 20]);
    jf(tensor([1, 2, 3]), 1);
    jf(tensor([1, 2], { dtype: "float64" }), 1);
    assert.equal(jf.traceCount, 3);
  });

  test("staticArgnums: values are part of the signature, compared by value", () => {
    let calls = 0;
    const jf = jit(
      (a: Tensor, opts: { axis: number }) => {
        calls++;
        return a.sum(opts.axis);
      },
      { staticArgnums: 1 },
    );
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    assert.deepEqual(jf(a, { axis: 0 }).toArray(), [4, 6]);
    assert.deepEqual(jf(a, { axis: 0 }).toArray(), [4, 6]);
    assert.deepEqual(jf(a, { axis: 1 }).toArray(), [3, 7]);
    assert.equal(jf.traceCount, 2);
    assert.equal(calls, 2);
  });

  test("a closed-over tensor updated in place is read at every call", () => {
    const w = tensor([1, 2, 3]);
    const jf = jit((a: Tensor) => a.mul(w));
    assert.deepEqual(jf(tensor([1, 1, 1])).toArray(), [1, 2, 3]);
    w.mul_(2);
    assert.deepEqual(jf(tensor([1, 1, 1])).toArray(), [2, 4, 6]);
  });

  test("bad options and arguments give errors naming jit", () => {
    assert.throws(() => jit((a: Tensor) => a, { staticArgnums: 1.5 }), /jit: staticArgnums must be integers/);
    assert.throws(
      () => jit((a: Tensor) => a, { staticArgnums: 3 })(tensor(1)),
      /jit: staticArgnums entry 3 is out of range/,
    );
    assert.throws(
      () => jit((a: Tensor) => a, { staticArgnums: 0 })(tensor(1)),
      /jit: static argument 0 is a Tensor/,
    );
    assert.throws(
      () => jit((a: Tensor) => a, { staticArgnums: 0, donateArgnums: 0 })(tensor(1)),
      /jit: argument 0 is both static and donated/,
    );
    assert.throws(
      () => jit((a: Tensor) => a.add(randn([2])))(tensor([1, 2])),
      /randn: random numbers drawn while jit traces/,
    );
    const drop = new Dropout(0.5);
    assert.throws(() => jit((a: Tensor) => drop.call(a))(tensor([1, 2])), /Dropout: random numbers/);
    drop.eval();
    assert.deepEqual(jit((a: Tensor) => drop.call(a))(tensor([1, 2])).toArray(), [1, 2]);
    assert.throws(() => jit((a: Tensor) => a.item())(tensor(1)), /item: needs the values/);
  });
});

describe("value-reading argument checks under jit", () => {
  test("crossEntropy with class indices, gather and Embedding trace; bad indices fail when the program runs", () => {
    const logits = randn([4, 5], { dtype: "float64" });
    const y = tensor([0, 4, 2, 1], { dtype: "int32" });
    const ce = jit((l: Tensor, t: Tensor) => crossEntropy(l, t));
    assertClose(ce(logits, y), crossEntropy(logits, y), 1e-15, "crossEntropy");
    const yIgnored = tensor([0, -100, 2, 1], { dtype: "int32" });
    assertClose(ce(logits, yIgnored), crossEntropy(logits, yIgnored), 1e-15, "ignoreIndex");
    assert.throws(
      () => ce(logits, tensor([0, 7, 2, 1], { dtype: "int32" })),
      /gather: index 7 is out of bounds/,
    );
    const g = jit((a: Tensor, i: Tensor) => a.gather(1, i));
    assertSame(
      g(logits, tensor([[1], [0], [4], [2]], { dtype: "int32" })),
      logits.gather(1, tensor([[1], [0], [4], [2]], { dtype: "int32" })),
      "gather",
    );
    assert.throws(
      () => g(logits, tensor([[1], [0], [5], [2]], { dtype: "int32" })),
      /gather: index \d+ is out of bounds/,
    );
    const emb = new Embedding(6, 3);
    const je = jit((i: Tensor) => emb.call(i));
    assertSame(
      je(tensor([5, 0, 2], { dtype: "int32" })),
      emb.call(tensor([5, 0, 2], { dtype: "int32" })),
      "Embedding",
    );
    assert.throws(() => je(tensor([6, 0, 2], { dtype: "int32" })), /gather: index \d+ is out of bounds/);
  });
});

describe("simplification", () => {
  test("the gradient of x*y+z compiles to no equations at all", () => {
    const g = jit(grad((x: Tensor, y: Tensor, z: Tensor) => x.mul(y).add(z), { argnums: [0, 1, 2] }));
    const p = g.lower(tensor(2), tensor(3), tensor(4));
    assert.equal(p.eqns.length, 0, String(p));
    const [dx, dy, dz] = g(tensor(2), tensor(3), tensor(4)) as Tensor[];
    assert.deepEqual([dx.item(), dy.item(), dz.item()], [3, 2, 1]);
  });

  test("repeated subexpressions are computed once, unused ones not at all", () => {
    const jf = jit((a: Tensor) => {
      a.exp(); // unused
      return a.sin().mul(a.sin());
    });
    const a = tensor([0.5, 1]);
    assert.deepEqual(
      jf.lower(a).eqns.map((e) => e.name),
      ["sin", "mul"],
    );
    assertSame(jf(a), a.sin().mul(a.sin()), "sin^2");
  });

  test("chains of views collapse: a transpose transposed back is gone, a reshape of a reshape is one", () => {
    const f = (x: Tensor) => {
      const back = x.permute([2, 0, 1]).permute([1, 2, 0]); // the identity
      const moved = x.permute([1, 0, 2]).permute([0, 2, 1]); // one permute, [1, 2, 0]
      const flat = x.reshape([6, 4]).reshape([24]).reshape([2, 12]); // one reshape
      return [back.exp(), moved.exp(), flat.exp()];
    };
    const x = randn([2, 3, 4]);
    const p = jit(f).lower(x);
    const views = p.eqns.filter((e) => e.name === "permute" || e.name === "reshape");
    assert.deepEqual(
      views.map((e) => [e.name, e.params]),
      [
        ["permute", { perm: [1, 2, 0] }],
        ["reshape", { shape: [2, 12] }],
      ],
      String(p),
    );
    const want = f(x);
    const got = jit(f)(x) as Tensor[];
    for (let i = 0; i < 3; i++) assertSame(got[i], want[i], `output ${i}`);
  });
});

describe("memory planning", () => {
  test("after the first call, a call allocates only its outputs", () => {
    const a = randn([64, 64]);
    const jf = jit((x: Tensor) => x.matmul(x).tanh().add(x).exp().sum(0));
    const want = a.matmul(a).tanh().add(a).exp().sum(0);
    assertSame(jf(a), want, "first call");
    const after1 = jf.memoryStats().allocations;
    for (let i = 0; i < 5; i++) assertSame(jf(a), want, `call ${i + 2}`);
    assert.equal(jf.memoryStats().allocations - after1, 5, "one fresh buffer (the output) per call");
    assert.ok(jf.memoryStats().pooledBytes >= 64 * 64 * 4, "intermediates held for reuse");
  });

  test("a call equation returning a view of an intermediate keeps its storage alive", () => {
    // checkpoint's body returns a reshape of its (intermediate) input; the intermediate's slot dies at the call,
    // and the view must still read the right values after later steps have run
    const jf = jit((a: Tensor) => {
      const t = a.mul(2);
      const v = checkpoint((u: Tensor) => u.reshape([-1]))(t);
      const w = a.add(1).exp().sum().mul(0); // later steps that would take a recycled buffer
      return v.add(w);
    });
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    for (let i = 0; i < 3; i++) assert.deepEqual(jf(a).toArray(), [2, 4, 6, 8]);
  });

  test("donateArgnums: an update reuses the donated storage, and the donated tensor is deleted", () => {
    const step = jit((w: Tensor, g: Tensor) => w.sub(g.mul(0.5)), { donateArgnums: 0 });
    let w = tensor([1, 2, 3]);
    const g = tensor([2, 2, 2]);
    const first = w;
    const storage = w._data;
    w = step(w, g);
    assert.deepEqual(w.toArray(), [0, 1, 2]);
    assert.throws(() => first.toArray(), /this tensor was deleted: it was donated to a jitted function/);
    assert.throws(() => first.add(1), /this tensor was deleted/);
    const secondStorage = w._data;
    w = step(w, g);
    assert.deepEqual(w.toArray(), [-1, 0, 1]);
    assert.ok(storage !== null && secondStorage !== null);
    assert.equal(w._data, secondStorage, "the update is written over the donated storage");
    assert.deepEqual(g.toArray(), [2, 2, 2], "the other argument is untouched");
  });
});

describe("a functional training step", () => {
  test("jit(step) equals the eager step over several steps (params as a pytree)", () => {
    const net = new Sequential(
      new Linear(6, 8, { dtype: "float64" }),
      new ReLU(),
      new Linear(8, 2, { dtype: "float64" }),
    );
    const names = ["0.weight", "0.bias", "2.weight", "2.bias"];
    const init = Object.fromEntries(net.namedParameters().map(([n, p]) => [n, p.detach().clone()]));
    const x = randn([10, 6], { dtype: "float64" });
    const y = randn([10, 2], { dtype: "float64" });
    const loss = (p: Record<string, Tensor>) => functionalCall(net, p, x).sub(y).square().mean();
    const step = (p: Record<string, Tensor>) => {
      const g = grad(loss)(p) as Record<string, Tensor>;
      return Object.fromEntries(names.map((n) => [n, p[n].sub(g[n].mul(0.1))]));
    };
    const jstep = jit(step);
    let pe: Record<string, Tensor> = { ...init };
    let pj: Record<string, Tensor> = { ...init };
    for (let i = 0; i < 4; i++) {
      pe = step(pe);
      pj = jstep(pj);
    }
    for (const n of names) assertSame(pj[n], pe[n], n);
    assert.equal(jstep.traceCount, 1);
    assert.ok(loss(pj).item() < loss(init).item());
  });

  test("zero-size inputs", () => {
    const jf = jit((a: Tensor) => a.exp().sum(0));
    assert.deepEqual(jf(zeros([0, 3])).toArray(), [0, 0, 0]);
  });
});
