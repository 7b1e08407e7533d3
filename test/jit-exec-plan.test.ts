/**
 * jit's execution plan: the program the executor runs (`Jitted.executed`) has custom-rule calls inlined and
 * repeated work merged (constants the trace computed twice, a forward pass computed once through a custom-VJP
 * call and once by its VJP's forward half, equal scans), without changing values; scans write their stacked
 * ys into storage from the enclosing executor's pool; the step profile counts what runs.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { type JitProfile, setJitProfile } from "../src/core/jit-exec.ts";
import { setProductRewrites } from "../src/core/jit-simplify.ts";
import {
  arange,
  customVjp,
  grad,
  jit,
  noGrad,
  randn,
  scan,
  type Tensor,
  tensor,
  zeros,
} from "../src/index.ts";
import { functionalCall, LSTM } from "../src/nn/index.ts";

function assertClose(got: Tensor, want: Tensor, tol: number, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const d = got.sub(want).abs().max().item();
  assert.ok(d <= tol, `${what}: max difference ${d} > ${tol}`);
}

function count(p: { eqns: readonly { name: string }[] }, name: string): number {
  return p.eqns.filter((e) => e.name === name).length;
}

for (const which of ["js", "native"] as const) {
  describe(`jit execution plan (${which})`, () => {
    let prev: Backend | null = null;
    let skip = false;
    before(() => {
      prev = getBackend();
      if (which === "native") {
        const r = loadNativeBackend();
        if ("error" in r) skip = true;
        else setBackend(r.backend);
      } else setBackend("js");
    });
    after(() => {
      if (prev !== null) setBackend(prev);
    });

    test("constants the trace computed twice are merged; the forward runs once", (t) => {
      if (skip) return t.skip("native backend not built");
      const x = randn([4, 6]);
      // arange is computed at trace time, at each call of loss: two equal fresh constants
      const loss = (w: Tensor) => w.mul(arange(6).to("float32")).mul(x).tanh().sum();
      const f = jit((w: Tensor) => [loss(w), grad(loss)(w)] as const);
      const w = randn([4, 6]);
      const [l, g] = f(w);
      assertClose(l, loss(w), 1e-6, "loss");
      assertClose(g, grad(loss)(w) as Tensor, 1e-6, "gradient");
      const run = f.executed(w);
      assert.equal(run.consts.length, 2, "x and one arange");
      assert.equal(count(run, "tanh"), 1, "the forward's tanh is computed once");
    });

    test("distinct closed-over tensors with equal values stay distinct (in-place updates are seen)", (t) => {
      if (skip) return t.skip("native backend not built");
      const a = zeros([3]);
      const b = zeros([3]);
      // (b.add(1) would be computed once, at trace time: the tensors are read by the program itself)
      const f = jit((x: Tensor) => x.add(a).add(x.mul(b)));
      const x = tensor([1, 2, 3]);
      assert.deepEqual([...f(x).dataSync()], [1, 2, 3]);
      noGrad(() => a.copy_(tensor([10, 20, 30])));
      assert.deepEqual([...f(x).dataSync()], [11, 22, 33]);
      noGrad(() => b.copy_(tensor([1, 1, 1])));
      assert.deepEqual([...f(x).dataSync()], [12, 24, 36]);
    });

    test("a custom-VJP call's forward and its VJP's forward half are one computation", (t) => {
      if (skip) return t.skip("native backend not built");
      const g = customVjp((x: Tensor) => x.sin().mul(2), {
        fwd: (x: Tensor) => [x.sin().mul(2), x] as [Tensor, Tensor],
        bwd: (x: Tensor, ct: Tensor) => [ct.mul(x.cos()).mul(2)],
      });
      const loss = (x: Tensor) => g(x).sum();
      const f = jit((x: Tensor) => [loss(x), grad(loss)(x)] as const);
      const x = randn([5]);
      const [l, d] = f(x);
      assertClose(l, x.sin().mul(2).sum(), 1e-6, "value");
      assertClose(d, x.cos().mul(2), 1e-6, "gradient (the custom rule's)");
      assert.equal(count(f.lower(x), "customVjp"), 1, "lower keeps the call");
      const run = f.executed(x);
      assert.equal(count(run, "customVjp"), 0, "inlined");
      assert.equal(count(run, "sin"), 1, "sin once");
    });

    test("an LSTM's loss and gradient: one forward scan, one backward scan, values as eager", (t) => {
      if (skip) return t.skip("native backend not built");
      const lstm = new LSTM(3, 5, { batchFirst: true });
      const x = randn([2, 7, 3]);
      type P = Record<string, Tensor>;
      const loss = (p: P) => (functionalCall(lstm, p, x) as [Tensor, unknown])[0].square().sum();
      const f = jit((p: P) => [loss(p), grad(loss)(p)] as const);
      const p: P = Object.fromEntries(lstm.namedParameters().map(([n, w]) => [n, w.detach()]));
      const [l, gr] = f(p);
      assertClose(l, loss(p), 1e-5, "loss");
      const want = grad(loss)(p) as P;
      for (const k of Object.keys(p)) assertClose((gr as P)[k], want[k], 1e-5, `gradient of ${k}`);
      const run = f.executed(p);
      assert.equal(count(run, "scan"), 2, "forward and backward scans");
      assert.equal(count(run, "lstmSequence"), 0);
    });

    test("a jitted scan's stacked ys come from the pool in steady state; they equal the per-row loop's", (t) => {
      if (skip) return t.skip("native backend not built");
      const xs = randn([6, 3, 4]);
      const w = randn([4, 4]);
      const body = (c: Tensor, x: Tensor) => {
        const h = c.matmul(w).add(x).tanh();
        return [h, h.mul(2)] as const;
      };
      const f = jit((c0: Tensor) => scan(body, c0, xs));
      const c0 = randn([3, 4]);
      const [c, ys] = f(c0) as unknown as [Tensor, Tensor];
      // reference: the loop written out
      let h = c0;
      const rows: Tensor[] = [];
      for (let i = 0; i < 6; i++) {
        const [n, y] = body(h, xs.index(i));
        h = n;
        rows.push(y);
      }
      assertClose(c, h, 1e-6, "final carry");
      for (let i = 0; i < 6; i++) assertClose(ys.index(i), rows[i], 1e-6, `ys row ${i}`);
      // consumed inside the program, the stacked ys are recycled: a call allocates only its output
      const k = jit((c1: Tensor) => {
        const [cN, y] = scan(body, c1, xs);
        return y.sum(0).add(cN);
      });
      k(c0);
      k(c0);
      const before = k.memoryStats().allocations;
      k(c0);
      k(c0);
      assert.ok(k.memoryStats().allocations - before <= 2, "at most the output's buffer per call");
    });

    test("the step profile records each kind's calls", (t) => {
      if (skip) return t.skip("native backend not built");
      const f = jit((a: Tensor, b: Tensor) => a.matmul(b).sum(0));
      const a = randn([8, 8]);
      f(a, a);
      const prof: JitProfile = new Map();
      setJitProfile(prof);
      try {
        f(a, a);
        f(a, a);
      } finally {
        setJitProfile(null);
      }
      const total = [...prof.values()].reduce((s, r) => s + r.n, 0);
      assert.ok(total >= 2 && total % 2 === 0, `steps of two calls: ${total}`);
      for (const [k, r] of prof) assert.ok(r.ms >= 0 && r.cpuMs >= 0 && r.n > 0, k);
    });
  });
}

describe("matrix products in the execution program (native)", () => {
  let prev: Backend | null = null;
  let skip = false;
  before(() => {
    prev = getBackend();
    const r = loadNativeBackend();
    if ("error" in r) skip = true;
    else setBackend(r.backend);
  });
  after(() => {
    if (prev !== null) setBackend(prev);
  });

  test("a weight shared over the batch: one product, the values of one product per matrix", (t) => {
    if (skip) return t.skip("native backend not built");
    for (const [B, M, K, N] of [
      [3, 40, 24, 36],
      [2, 130, 70, 90],
      [4, 5, 3, 6],
    ]) {
      const x = randn([B, M, K]);
      const w = randn([K, N]);
      const y = x.matmul(w); // w broadcast over the batch (stride 0): folded into one [B M, K] product
      for (let b = 0; b < B; b++) {
        const want = x.index(b).contiguous().matmul(w);
        const got = y.index(b).contiguous();
        assert.deepEqual(
          [...got.dataSync()],
          [...want.dataSync()],
          `[${B},${M},${K}]x[${K},${N}] matrix ${b}`,
        );
      }
    }
  });

  test("weight gradients of a linear layer on [B, T, in]: one GEMM over B T", (t) => {
    if (skip) return t.skip("native backend not built");
    const x = randn([4, 33, 20]);
    const ct = randn([4, 33, 17]);
    const loss = (w: Tensor, xx: Tensor) => xx.matmul(w.mT).mul(ct).sum();
    const f = jit((w: Tensor, xx: Tensor) => grad(loss)(w, xx));
    const w = randn([17, 20]);
    const got = f(w, x) as Tensor;
    const want = grad(loss)(w, x) as Tensor;
    // float32 sums over B T = 132 terms in another association: rounding differences only
    assertClose(got, want, 2e-5 * 132, "dW");
    const run = f.executed(w, x);
    const dots = run.eqns.filter((e) => e.name === "dot");
    assert.equal(dots.length, 1);
    // one product, computed in the weight's [out, in] layout by the transposed-product rewrite (on by default)
    assert.deepEqual(dots[0].outputs[0].shape, [17, 20], "[out, in], one product");
    assert.equal(count(run, "sum"), 0, "no batch sum");
  });

  test("with the transposed-product rewrite on: same bits, no transpose step", (t) => {
    if (skip) return t.skip("native backend not built");
    const f = jit((a: Tensor, b: Tensor) => a.matmul(b).mT.mul(2));
    const a = randn([37, 19]);
    const b = randn([19, 23]);
    const prev = setProductRewrites("all"); // (the default)
    let got: Tensor;
    try {
      got = f(a, b) as Tensor; // (the executor is built at the first call)
    } finally {
      setProductRewrites(prev);
    }
    const want = a.matmul(b).mT.mul(2);
    assert.deepEqual([...got.dataSync()], [...want.contiguous().dataSync()]);
    assert.deepEqual([...(f(a, b) as Tensor).dataSync()], [...got.dataSync()], "the cached executor");
    setProductRewrites("all");
    try {
      const run = jit((x: Tensor, y: Tensor) => x.matmul(y).mT.mul(2)).executed(a, b);
      const dot = run.eqns.find((e) => e.name === "dot")!;
      assert.deepEqual(dot.outputs[0].shape, [23, 37]);
    } finally {
      setProductRewrites(prev);
    }
  });
});
