/**
 * Mixed precision: autocast (which ops run in the lower precision, master weights and gradients in float32, a
 * small MLP trained under bfloat16 and float16 autocast against float32 training) and GradScaler (scaling,
 * unscaling, skipped steps on Infinity/NaN, growth and backoff of the scale as torch.cuda.amp.GradScaler).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  autocast,
  autocastDtype,
  conv2d,
  GradScaler,
  getBackend,
  manualSeed,
  nn,
  optim,
  randn,
  type Tensor,
  tensor,
} from "../src/node.ts";
import { castLow } from "../src/amp.ts";
import { halfKernelsOf } from "../src/backend/half.ts";

describe("autocast", () => {
  test("matmul, linear, conv2d and attention run in the autocast dtype; softmax and losses in float32", () => {
    const a = randn([4, 8]);
    const w = randn([5, 8]);
    const b = randn([5]);
    assert.equal(autocastDtype(), null);
    autocast({ dtype: "bfloat16" }, () => {
      assert.equal(autocastDtype(), "bfloat16");
      assert.equal(a.matmul(w.T).dtype, "bfloat16");
      assert.equal(nn.linear(a, w, b).dtype, "bfloat16");
      assert.equal(conv2d(randn([1, 2, 5, 5]), randn([3, 2, 3, 3]), randn([3])).dtype, "bfloat16");
      const q = randn([2, 3, 4]);
      assert.equal(nn.scaledDotProductAttention(q, q, q).dtype, "bfloat16");
      const logits = nn.linear(a, w, b);
      assert.equal(logits.softmax(-1).dtype, "float32");
      assert.equal(nn.crossEntropy(logits, tensor([0, 1, 2, 3], { dtype: "int32" })).dtype, "float32");
      assert.equal(nn.mseLoss(logits, randn([4, 5])).dtype, "float32");
      // other ops keep their operands' dtype; float64 is never cast
      assert.equal(logits.relu().dtype, "bfloat16");
      assert.equal(a.add(1).dtype, "float32");
      assert.equal(a.to("float64").matmul(w.T.to("float64")).dtype, "float64");
      autocast({ enabled: false }, () => assert.equal(a.matmul(w.T).dtype, "float32"));
      autocast({ dtype: "float16" }, () => assert.equal(a.matmul(w.T).dtype, "float16"));
      assert.equal(autocastDtype(), "bfloat16");
    });
    assert.equal(autocastDtype(), null);
    assert.throws(() => autocast({ dtype: "float32" as never }, () => 0), /autocast: dtype must be/);
  });

  test("the product is the float32 product of the rounded operands, rounded once", () => {
    const a = randn([6, 7]);
    const w = randn([7, 3]);
    const got = autocast({ dtype: "bfloat16" }, () => a.matmul(w));
    const want = a.to("bfloat16").to("float32").matmul(w.to("bfloat16").to("float32")).to("bfloat16");
    assert.deepEqual(Array.from(got.storageSync()), Array.from(want.storageSync()));
  });

  test("master weights stay float32 and their gradients are float32", () => {
    const lin = new nn.Linear(8, 4);
    const x = randn([3, 8]);
    const loss = autocast({ dtype: "bfloat16" }, () => nn.mseLoss(lin.call(x) as Tensor, randn([3, 4])));
    loss.backward();
    assert.equal(lin.weight.dtype, "float32");
    assert.equal(lin.weight.grad!.dtype, "float32");
    assert.equal(lin.bias!.grad!.dtype, "float32");
  });

  /** Train a 2-layer MLP on a fixed regression-free classification problem; returns the loss curve. */
  function train(dtype: "bfloat16" | "float16" | null, scaler?: GradScaler): number[] {
    manualSeed(7);
    const x = randn([64, 10]);
    const wTrue = randn([10, 3]);
    const y = x.matmul(wTrue).argmax(1);
    const model = new nn.Sequential(new nn.Linear(10, 32), new nn.ReLU(), new nn.Linear(32, 3));
    const opt = new optim.SGD(model.parameters(), { lr: 0.2 });
    const losses: number[] = [];
    for (let step = 0; step < 60; step++) {
      opt.zeroGrad();
      const run = () => nn.crossEntropy(model.call(x) as Tensor, y);
      const loss = dtype === null ? run() : autocast({ dtype }, run);
      losses.push(loss.item());
      if (scaler !== undefined) {
        scaler.scale(loss).backward();
        scaler.step(opt);
        scaler.update();
      } else {
        loss.backward();
        opt.step();
      }
    }
    for (const p of model.parameters()) assert.equal(p.dtype, "float32");
    return losses;
  }

  /** |got - want| <= rel |want| + (K + 2) 2^-24 mag (float32 accumulation of K terms), elementwise. */
  function assertNear(
    got: ArrayLike<number>,
    want: ArrayLike<number>,
    mag: ArrayLike<number>,
    K: number,
    rel: number,
    what: string,
  ) {
    assert.equal(got.length, want.length, what);
    for (let i = 0; i < want.length; i++) {
      const tol = rel * Math.abs(want[i]) + (K + 2) * 2 ** -24 * mag[i] + 1e-30;
      assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what} [${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
    }
  }

  // small and large; with and without relu (native with AVX512_BF16 runs the fused bfloat16 GEMM, elsewhere
  // the composition of casts, the bfloat16 product and the bias add)
  for (const [B, T, K, N, act] of [
    [2, 3, 24, 17, undefined],
    [3, 50, 64, 41, undefined],
    [3, 50, 64, 41, "relu"],
    [1, 130, 100, 70, "relu"],
  ] as const)
    test(`linear under autocast [${B}, ${T}, ${K}] x [${N}, ${K}]${act ? ` + ${act}` : ""}: the rounded operands' product rounded once; float32 gradients`, () => {
      manualSeed(4);
      const x = randn([B, T, K]).requiresGrad_();
      const w = randn([N, K]).requiresGrad_();
      const b = randn([N]).requiresGrad_();
      const ct = randn([B, T, N]);
      const y = autocast({ dtype: "bfloat16" }, () => nn.linear(x, w, b, { activation: act }));
      assert.equal(y.dtype, "bfloat16");
      // forward against float64 of the rounded operands: within one bfloat16 rounding of the float32 result
      // (2^-8 relative; the composition rounds the product and the sum, so twice) plus accumulation error
      const x64 = x
        .detach()
        .to("bfloat16")
        .to("float64")
        .reshape([B * T, K]);
      const w64 = w.detach().to("bfloat16").to("float64");
      const b64 = b.detach().to("bfloat16").to("float64");
      const pre = x64.matmul(w64.T).add(b64);
      const mag = x64.abs().matmul(w64.abs().T).add(b64.abs()).dataSync();
      const y64 = act === "relu" ? pre.relu() : pre;
      // the fused layer (native with AVX512_BF16) rounds once: within 2^-8 of the result; the composition rounds
      // the product, then the sum: within 2^-8 of each
      const fused = getBackend().name === "native" && halfKernelsOf("native")?.gemmBF16Ready?.() === true;
      const want = y64.dataSync();
      const got = y.to("float32").dataSync();
      for (let i = 0; i < want.length; i++) {
        const tol =
          2 ** -8 * (Math.abs(want[i]) + (fused ? 0 : mag[i])) + (K + 2) * 2 ** -24 * mag[i] + 1e-30;
        assert.ok(Math.abs(got[i] - want[i]) <= tol, `forward [${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
      }
      y.to("float32").mul(ct).sum().backward();
      assert.deepEqual([x.grad!.dtype, w.grad!.dtype, b.grad!.dtype], ["float32", "float32", "float32"]);
      // the cotangent through relu (where the bfloat16 output is > 0), in float64
      const yv = y.to("float64").reshape([B * T, N]);
      let dz = ct
        .to("bfloat16")
        .to("float64")
        .reshape([B * T, N]);
      if (act === "relu") dz = dz.mul(yv.gt(0).to("float64"));
      // dw = dz^T x_b: within float32 accumulation error, not rounded to bfloat16
      const refW = dz.T.matmul(x64).dataSync();
      const magW = dz.abs().T.matmul(x64.abs()).dataSync();
      const gotW = w.grad!.dataSync();
      assertNear(gotW, refW, magW, B * T, 0, "dw");
      // db = column sums of dz, not rounded by the fused layer (the composition's sum is rounded to bfloat16)
      const relB = fused ? 0 : 2 ** -8;
      assertNear(b.grad!.dataSync(), dz.sum(0).dataSync(), dz.abs().sum(0).dataSync(), B * T, relB, "db");
      // dx = dz w_b (float32 x: within one bfloat16 rounding)
      const refX = dz.matmul(w64).dataSync();
      const magX = dz.abs().matmul(w64.abs()).dataSync();
      assertNear(x.grad!.dataSync(), refX, magX, N, 2 ** -8, "dx");
      // a data input that needs no gradient: the same weight gradient
      const w2 = w.detach().clone().requiresGrad_();
      autocast({ dtype: "bfloat16" }, () => nn.linear(x.detach(), w2, b.detach(), { activation: act }))
        .to("float32")
        .mul(ct)
        .sum()
        .backward();
      assert.deepEqual(Array.from(w2.grad!.dataSync()), Array.from(gotW));
    });

  test("linear under autocast: second-order gradients through the fused layer (create_graph)", () => {
    manualSeed(5);
    const x = randn([6, 9]).requiresGrad_();
    const w = randn([5, 9]).requiresGrad_();
    const b = randn([5]).requiresGrad_();
    const f = () =>
      autocast({ dtype: "bfloat16" }, () => nn.linear(x, w, b, { activation: "relu" })).to("float32");
    f().square().sum().backward();
    const first = [x.grad!.dataSync().slice(), w.grad!.dataSync().slice(), b.grad!.dataSync().slice()];
    for (const p of [x, w, b]) p.grad = null;
    // with createGraph the backward runs differentiable ops: the same first-order gradients (within bfloat16
    // rounding of x's), themselves differentiable
    f().square().sum().backward(undefined, { createGraph: true });
    const again = [x.grad!, w.grad!, b.grad!];
    again.forEach((g, i) => {
      assert.equal(g.dtype, "float32");
      const got = g.dataSync();
      for (let j = 0; j < got.length; j++)
        assert.ok(Math.abs(got[j] - first[i][j]) <= 2 ** -7 * (1 + Math.abs(first[i][j])), `${i} [${j}]`);
    });
    assert.equal(x.grad!.requiresGrad, true);
    const gx = x.grad!;
    w.grad = null;
    gx.sum().backward();
    assert.equal(w.grad!.dtype, "float32");
    assert.ok(Number.isFinite(w.grad!.sum().item()));
  });

  test("casts of parameters are cached within a region, recast after an in-place update, dropped on exit", () => {
    manualSeed(3);
    const w = randn([8, 5]).requiresGrad_();
    const x = randn([3, 8]);
    let first: Tensor | null = null;
    autocast({ dtype: "bfloat16" }, () => {
      first = castLow(w);
      assert.equal(castLow(w), first, "the second use of the weight reuses its cast");
      assert.equal(first.dtype, "bfloat16");
      assert.notEqual(castLow(x), castLow(x), "a tensor that does not require gradients is not cached");
      assert.equal(castLow(w.mul(1)).dtype, "bfloat16");
      // two uses of the cached cast: the gradient has both contributions, d/dw sum(3 x w^T) = 3 colsum(x)
      const y = x.matmul(w).sum().add(x.matmul(w).mul(2).sum());
      y.backward();
      const colsum = x.sum(0).dataSync();
      const g = w.grad!.dataSync();
      assert.equal(w.grad!.dtype, "float32");
      for (let j = 0; j < 8; j++)
        for (let i = 0; i < 5; i++)
          assert.ok(Math.abs(g[j * 5 + i] - 3 * colsum[j]) <= 0.02 * (1 + Math.abs(3 * colsum[j])));
      // that backward freed the cast's graph: the next use casts again and can be differentiated
      const again = castLow(w);
      assert.notEqual(again, first);
      w.grad = null;
      x.matmul(w).sum().backward();
      assert.ok(w.grad !== null);
      // an optimizer step writes the weight in place (its version changes): the next use sees the new values
      const before = castLow(w);
      assert.equal(castLow(w), before);
      new optim.SGD([w], { lr: 0.5 }).step();
      const after = castLow(w);
      assert.notEqual(after, before);
      assert.deepEqual(Array.from(after.storageSync()), Array.from(w.detach().to("bfloat16").storageSync()));
      // float16 in a nested region is cached separately
      autocast({ dtype: "float16" }, () => assert.equal(castLow(w).dtype, "float16"));
      assert.equal(castLow(w), after);
    });
    autocast({ dtype: "bfloat16" }, () => assert.notEqual(castLow(w), first, "a new region casts afresh"));
  });

  test("recurrent layers run in float32 under autocast, as PyTorch 1.13's LSTM and GRU on CPU", () => {
    const x = randn([4, 2, 3]);
    autocast({ dtype: "bfloat16" }, () => {
      const [o, [h, c]] = new nn.LSTM(3, 5).call(x);
      assert.deepEqual([o.dtype, h.dtype, c.dtype], ["float32", "float32", "float32"]);
      assert.equal(new nn.GRU(3, 5).call(x)[0].dtype, "float32");
      assert.equal(new nn.LSTMCell(3, 5).call(x.index(0))[0].dtype, "float32");
      // and the enclosing region is still on afterwards
      assert.equal(autocastDtype(), "bfloat16");
    });
  });

  test("an MLP trained under bfloat16 / float16 autocast follows float32 training", () => {
    const f32 = train(null);
    const bf16 = train("bfloat16");
    const f16 = train("float16", new GradScaler({ initScale: 1024 }));
    assert.ok(f32[59] < 0.5 * f32[0], `float32 training converges: ${f32[0]} -> ${f32[59]}`);
    for (const [name, l] of [
      ["bfloat16", bf16],
      ["float16", f16],
    ] as const) {
      assert.ok(l[59] < 0.5 * l[0], `${name}: the loss decreases (${l[0]} -> ${l[59]})`);
      // the same curve within the lower precision's rounding (bfloat16 keeps 8 bits, float16 11)
      const tol = name === "bfloat16" ? 0.05 : 0.01;
      for (let i = 0; i < l.length; i++) {
        assert.ok(
          Math.abs(l[i] - f32[i]) <= tol * Math.max(1, f32[i]),
          `${name} step ${i}: ${l[i]} vs ${f32[i]}`,
        );
      }
    }
  });
});

describe("GradScaler", () => {
  test("scales the loss, unscales the gradients and steps", () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.5 });
    const s = new GradScaler({ initScale: 8 });
    const loss = p.mul(p).sum(); // grad 2p = [2, 4]
    const scaled = s.scale(loss);
    assert.equal(scaled.item(), 8 * 5);
    scaled.backward();
    assert.deepEqual(p.grad!.toArray(), [16, 32]);
    assert.equal(s.step(opt), true);
    assert.deepEqual(p.grad!.toArray(), [2, 4]);
    assert.deepEqual(p.toArray(), [0, 0]);
    s.update();
    assert.equal(s.getScale(), 8);
  });

  test("skips the step on Infinity or NaN gradients and backs off; grows after growthInterval good steps", () => {
    const p = tensor([1, 2], { requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.1 });
    const s = new GradScaler({ initScale: 2 ** 10, growthInterval: 2, growthFactor: 4, backoffFactor: 0.25 });
    const iteration = (bad: number) => {
      opt.zeroGrad();
      s.scale(p.mul(tensor([1, bad])).sum()).backward();
      const took = s.step(opt);
      s.update();
      return took;
    };
    assert.equal(iteration(Number.POSITIVE_INFINITY), false);
    assert.deepEqual(p.toArray(), [1, 2], "skipped: parameters unchanged");
    assert.equal(s.getScale(), 2 ** 8);
    assert.equal(iteration(Number.NaN), false);
    assert.equal(s.getScale(), 2 ** 6);
    assert.equal(iteration(1), true);
    assert.equal(s.getScale(), 2 ** 6);
    assert.equal(iteration(1), true);
    assert.equal(s.getScale(), 2 ** 8, "grown after 2 good steps");
    // two float32 steps p - fround(0.1 * 1)
    const two = (v: number) => Math.fround(Math.fround(v - Math.fround(0.1)) - Math.fround(0.1));
    assert.deepEqual(p.toArray(), [two(1), two(2)]);
    assert.deepEqual(s.stateDict(), {
      scale: 2 ** 8,
      growthFactor: 4,
      backoffFactor: 0.25,
      growthInterval: 2,
      growthTracker: 0,
    });
  });

  test("a float16 overflow in the scaled backward is caught", () => {
    // float16 holds at most 65504: a scaled float16 loss of 1e5 is Infinity, so its gradients are too
    const p = tensor([300, 400], { dtype: "float16", requiresGrad: true });
    const opt = new optim.SGD([p], { lr: 0.1 });
    const s = new GradScaler({ initScale: 2 ** 16 });
    s.scale(p.mul(p).sum()).backward();
    assert.equal(s.step(opt), false);
    s.update();
    assert.equal(s.getScale(), 2 ** 15);
    assert.deepEqual(p.toArray(), [300, 400]);
  });

  test("disabled scaler passes through; bad options are refused", () => {
    const s = new GradScaler({ enabled: false });
    const l = tensor(3);
    assert.equal(s.scale(l), l);
    assert.equal(s.getScale(), 1);
    assert.throws(() => new GradScaler({ initScale: 0 }), /initScale must be a positive number/);
    assert.throws(() => new GradScaler({ growthInterval: 1.5 }), /growthInterval must be a positive integer/);
  });
});
