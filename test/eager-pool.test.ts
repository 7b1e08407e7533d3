/**
 * Storage recycling of eager backward passes (src/core/eager-pool.ts): cotangents and VJP temporaries go back
 * to a pool once their consumer has run, and later kernel outputs reuse them. These tests run training steps
 * with recycling on and recycled storage poisoned (NaN, or 0x55 bytes), against the same steps with recycling
 * off: every loss, gradient and parameter must be bit-identical, so nothing read a recycled buffer after it was
 * given back. Values that leave a backward pass (leaf `.grad`, retained gradients, tensors a hook kept) must
 * survive later passes that reuse the pool.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { eagerPoolBytes, eagerPoolOpts, eagerPoolStats } from "../src/core/eager-pool.ts";
import {
  autocast,
  getBackend,
  grad,
  manualSeed,
  nn,
  optim,
  randint,
  randn,
  setBackend,
  type Tensor,
} from "../src/index.ts";

// these graphs are small: recycle every pass, whatever its size
const MIN_PASS_BYTES = eagerPoolOpts.minPassBytes;
beforeEach(() => {
  eagerPoolOpts.minPassBytes = 0;
});
afterEach(() => {
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = false;
  eagerPoolOpts.minPassBytes = MIN_PASS_BYTES;
});

/** Exact copy of a tensor's values as a plain array. */
function values(t: Tensor): number[] {
  return Array.from(t.contiguous().dataSync() as ArrayLike<number>);
}

/** Losses, final parameters and last gradients of `steps` Adam steps of the model `make` builds. */
function train(make: () => { model: nn.Module; x: Tensor; y: Tensor }, steps: number) {
  manualSeed(11);
  const { model, x, y } = make();
  const opt = new optim.Adam(model.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const out = model.call(x) as Tensor;
    const loss = nn.crossEntropy(out.reshape([-1, out.shape[out.ndim - 1]]), y);
    loss.backward();
    opt.step();
    losses.push(loss.item() as number);
  }
  return {
    losses,
    params: model.parameters().map(values),
    grads: model.parameters().map((p) => values(p.grad!)),
  };
}

/** A pre-norm GELU Transformer layer over token embeddings, causal: the bench Transformer in small. */
class TinyLm extends nn.Module {
  emb = new nn.Embedding(13, 16);
  layer = new nn.TransformerEncoderLayer(16, 2, {
    dimFeedforward: 40,
    dropout: 0,
    activation: "gelu",
    batchFirst: true,
    normFirst: true,
  });
  norm = new nn.LayerNorm(16);
  head = new nn.Linear(16, 13);
  forward(x: Tensor): Tensor {
    const h = this.layer.call(this.emb.call(x), { isCausal: true });
    return this.head.call(this.norm.call(h));
  }
}

/** A 2-layer LSTM (bidirectional or not) whose last output feeds a Linear: the lstmSequence call's backward. */
class RowLstm extends nn.Module {
  lstm: nn.LSTM;
  fc: nn.Linear;
  constructor(bidirectional: boolean) {
    super();
    this.lstm = new nn.LSTM(9, 24, { batchFirst: true, numLayers: 2, bidirectional });
    this.fc = new nn.Linear(bidirectional ? 48 : 24, 4);
  }
  forward(x: Tensor): Tensor {
    const [out] = this.lstm.call(x);
    return this.fc.call(out.narrow(1, x.shape[1] - 1, 1).reshape([x.shape[0], -1]));
  }
}

/** A CNN whose forward runs under bfloat16 autocast (16-bit activations, float32 master weights). */
class AmpCnn extends nn.Module {
  net = new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(16, 16, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.Flatten(),
    new nn.Linear(16 * 4 * 4, 6),
  );
  forward(x: Tensor): Tensor {
    return autocast({ dtype: "bfloat16" }, () => this.net.call(x) as Tensor);
  }
}

const MODELS: Record<string, () => { model: nn.Module; x: Tensor; y: Tensor }> = {
  lstm: () => ({ model: new RowLstm(false), x: randn([6, 5, 9]), y: randint(0, 4, [6]) }),
  lstmBidirectional: () => ({ model: new RowLstm(true), x: randn([6, 5, 9]), y: randint(0, 4, [6]) }),
  cnnAutocast: () => ({ model: new AmpCnn(), x: randn([5, 3, 8, 8]), y: randint(0, 6, [5]) }),
  mlp: () => ({
    model: new nn.Sequential(
      new nn.Linear(37, 64),
      new nn.ReLU(),
      new nn.Linear(64, 29),
      new nn.Tanh(),
      new nn.Linear(29, 5),
    ),
    x: randn([33, 37]),
    y: randint(0, 5, [33]),
  }),
  transformer: () => ({ model: new TinyLm(), x: randint(0, 13, [3, 11]), y: randint(0, 13, [33]) }),
  cnn: () => ({
    model: new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 1 }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Flatten(),
      new nn.Linear(4 * 5 * 5, 6),
    ),
    x: randn([7, 2, 10, 10]),
    y: randint(0, 6, [7]),
  }),
};

for (const backend of ["js", "native"] as const) {
  for (const [name, make] of Object.entries(MODELS)) {
    test(`${backend}: ${name} training with poisoned recycling is bit-identical to no recycling`, () => {
      const prev = getBackend();
      if (backend === "native") {
        const r = loadNativeBackend();
        if ("error" in r) throw new Error(r.error);
        setBackend(r.backend);
      } else setBackend("js");
      try {
        eagerPoolOpts.enabled = false;
        const ref = train(make, 4);
        eagerPoolOpts.enabled = true;
        eagerPoolOpts.poison = true;
        const before = eagerPoolStats.recycled;
        const reusedBefore = eagerPoolStats.reused;
        const got = train(make, 4);
        assert.ok(eagerPoolStats.recycled > before, "backward gave storage back");
        // the Transformer's backward makes many outputs of one size: later ones reuse earlier storage
        if (name === "transformer")
          assert.ok(eagerPoolStats.reused > reusedBefore, "later kernels reused it");
        assert.equal(eagerPoolBytes(), 0, "the pool is emptied when the pass ends");
        assert.deepEqual(got.losses, ref.losses);
        assert.deepEqual(got.grads, ref.grads);
        assert.deepEqual(got.params, ref.params);
        assert.ok(got.losses.every(Number.isFinite));
      } finally {
        setBackend(prev);
      }
    });
  }
}

test("values that leave backward survive later passes that reuse the pool", () => {
  eagerPoolOpts.poison = true;
  manualSeed(5);
  const w = randn([24, 24]).requiresGrad_();
  const b = randn([24]).requiresGrad_();
  const x = randn([16, 24]);
  const hooked: Tensor[] = [];
  const h = b.registerPostAccumulateGradHook((t) => hooked.push(t.grad!));
  const run = () => {
    const z = x.matmul(w).add(b); // add passes its cotangent straight through to both sides
    z.retainGrad();
    const v = z.tanh().reshape([4, 96]).permute([1, 0]); // views in the chain
    const loss = v.mul(v).sum().add(z.sum()); // z used twice (fan-out)
    loss.backward();
    return z;
  };
  const z1 = run();
  const snapZ = values(z1.grad!);
  const snapW = values(w.grad!);
  const snapB = values(b.grad!);
  const snapHook = values(hooked[0]);
  // a second pass accumulates into .grad; a third, after clearing, must give the first gradients again
  const z2 = run();
  assert.deepEqual(values(z1.grad!), snapZ, "a retained gradient is not recycled");
  assert.deepEqual(values(hooked[0]), snapHook, "what a hook kept is not recycled");
  assert.deepEqual(
    values(w.grad!),
    snapW.map((g) => Math.fround(g + g)),
    "gradients accumulate over passes",
  );
  assert.deepEqual(values(z2.grad!), snapZ);
  w.grad = null;
  b.grad = null;
  for (let i = 0; i < 3; i++) run();
  w.grad = null;
  b.grad = null;
  run();
  assert.deepEqual(values(w.grad!), snapW);
  assert.deepEqual(values(b.grad!), snapB);
  h.remove();
  // the same gradients from the functional transform, which does not recycle
  const [gw, gb] = grad(
    (a: Tensor, c: Tensor) => {
      const z = x.matmul(a).add(c);
      const v = z.tanh().reshape([4, 96]).permute([1, 0]);
      return v.mul(v).sum().add(z.sum());
    },
    { argnums: [0, 1] },
  )(w.detach(), b.detach()) as Tensor[];
  assert.deepEqual(values(gw), snapW);
  assert.deepEqual(values(gb), snapB);
});

test("retainGraph: a second backward over the same graph gives the same gradients", () => {
  eagerPoolOpts.poison = true;
  manualSeed(6);
  const w = randn([20, 30]).requiresGrad_();
  const x = randn([10, 20]);
  const loss = x.matmul(w).gelu().square().mean();
  loss.backward(undefined, { retainGraph: true });
  const g1 = values(w.grad!);
  w.grad = null;
  loss.backward();
  assert.deepEqual(values(w.grad!), g1);
});

test("createGraph: second-order gradients are unaffected (that pass does not recycle)", () => {
  eagerPoolOpts.poison = true;
  manualSeed(7);
  const x = randn([50]).requiresGrad_();
  const y = x.tanh().mul(x).sum();
  y.backward(undefined, { createGraph: true });
  const g = x.grad!;
  x.grad = null;
  g.sum().backward();
  // d2/dx2 of x tanh(x) = 2 sech^2(x) - 2 x tanh(x) sech^2(x)
  const xv = values(x.detach());
  const got = values(x.grad!);
  xv.forEach((v, i) => {
    const s2 = 1 - Math.tanh(v) ** 2;
    assert.ok(Math.abs(got[i] - (2 * s2 - 2 * v * Math.tanh(v) * s2)) < 1e-5);
  });
});

test("only passes that make at least minPassBytes of outputs recycle", () => {
  eagerPoolOpts.minPassBytes = MIN_PASS_BYTES;
  manualSeed(8);
  const w = randn([64, 64]).requiresGrad_();
  const before = eagerPoolStats.recycled;
  randn([32, 64]).matmul(w).tanh().matmul(w).sum().backward(); // ~50 KB of outputs
  assert.equal(eagerPoolStats.recycled, before, "a small pass keeps no books");
  const big = randn([MIN_PASS_BYTES / 4 / 64 / 2, 64]); // two [rows, 64] outputs: the threshold exactly
  w.grad = null;
  big.matmul(w).tanh().sum().backward();
  assert.ok(eagerPoolStats.recycled > before, "a large pass recycles");
});
