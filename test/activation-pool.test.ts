/**
 * Forward activations recycled across steps (`ActivationScope` in src/core/eager-pool.ts): an nn.Sequential of
 * built-in layers serves its intermediates from storage recycled by earlier steps and gives them back once a
 * backward pass has freed the graph that saved them. These tests train and evaluate with recycled storage
 * poisoned (NaN) against the same runs with recycling off: every loss, output, gradient and parameter must be
 * bit-identical, so nothing read an activation after it was given back. They also check that the steady state
 * makes no fresh activation storage, and that whatever can still reach an activation turns recycling off.
 */
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { buildModel, type ModelSpec } from "../src/cli/models.ts";
import { CharTransformer } from "../src/cli/text-model.ts";
import { isRecyclingRoot } from "../src/nn/recycle.ts";
import { clearStepPool, eagerPoolOpts, eagerPoolStats, stepPoolBytes } from "../src/core/eager-pool.ts";
import { setOutArena } from "../src/prims/impl.ts";
import {
  autocast,
  cachedMemory,
  checkpoint,
  emptyCache,
  getBackend,
  grad,
  jit,
  manualSeed,
  nn,
  noGrad,
  optim,
  randint,
  randn,
  setBackend,
  type Tensor,
} from "../src/index.ts";

afterEach(() => {
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = false;
  clearStepPool();
});

/** Exact copy of a tensor's values as a plain array. */
function values(t: Tensor): number[] {
  return Array.from(t.contiguous().dataSync() as ArrayLike<number>);
}

type Make = () => { model: nn.Module; x: Tensor; y: Tensor };

/** A pre-norm Transformer layer over embeddings (custom root: the layer's call recycles, its own code does not). */
class TinyLm extends nn.Module {
  emb = new nn.Embedding(13, 16);
  layer = new nn.TransformerEncoderLayer(16, 2, {
    dimFeedforward: 40,
    dropout: 0.1,
    activation: "gelu",
    batchFirst: true,
    normFirst: true,
  });
  head = new nn.Linear(16, 13);
  forward(x: Tensor): Tensor {
    const h = this.layer.call(this.emb.call(x), { isCausal: true });
    return this.head.call(h).reshape([-1, 13]);
  }
}

/** An LSTM whose last output feeds a Linear: the final states (h, c) are returned and never used. */
class RowLstm extends nn.Module {
  lstm = new nn.LSTM(9, 24, { batchFirst: true, numLayers: 2 });
  fc = new nn.Linear(24, 4);
  forward(x: Tensor): Tensor {
    const [out] = this.lstm.call(x);
    return this.fc.call(out.narrow(1, x.shape[1] - 1, 1).reshape([x.shape[0], 24]));
  }
}

/** Model families: every intermediate is at least 1 KiB (smaller storage is left to the collector). */
const MODELS: Record<string, Make> = {
  mlp: () => ({
    model: new nn.Sequential(
      new nn.Linear(37, 64, { dtype: "float64" }),
      new nn.ReLU(),
      new nn.Linear(64, 48, { dtype: "float64" }),
      new nn.Tanh(),
      new nn.Linear(48, 5, { dtype: "float64" }),
    ),
    x: randn([33, 37], { dtype: "float64" }),
    y: randint(0, 5, [33]),
  }),
  // conv -> relu -> pool (the reordered triple), batch norm, dropout, a nested Sequential, GELU, and a Flatten
  cnn: () => ({
    model: new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 1 }),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.BatchNorm2d(4),
      new nn.Sequential(new nn.Conv2d(4, 6, 3, { padding: 1 }), new nn.GELU()),
      new nn.Dropout(0.25),
      new nn.Flatten(),
      new nn.LayerNorm(6 * 5 * 5),
      new nn.Linear(6 * 5 * 5, 6),
    ),
    x: randn([7, 2, 10, 10]),
    y: randint(0, 6, [7]),
  }),
  // BatchNorm1d wide enough (300 channels, 1.2 KB) for its running statistics to be pool-sized: updated in place,
  // they must survive later steps
  batchnorm: () => ({
    model: new nn.Sequential(
      new nn.Linear(9, 300),
      new nn.BatchNorm1d(300),
      new nn.ReLU(),
      new nn.Linear(300, 4),
    ),
    x: randn([6, 9]),
    y: randint(0, 4, [6]),
  }),
  transformer: () => ({ model: new TinyLm(), x: randint(0, 13, [5, 11]), y: randint(0, 13, [55]) }),
  lstm: () => ({ model: new RowLstm(), x: randn([12, 7, 9]), y: randint(0, 4, [12]) }),
};

/** Losses, outputs, final parameters, gradients and buffers of `steps` Adam steps. */
function train(make: Make, steps: number, batches?: number[]) {
  manualSeed(11);
  const { model, x, y } = make();
  const opt = new optim.Adam(model.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  const outs: number[][] = [];
  for (let s = 0; s < steps; s++) {
    const n = batches?.[s % batches.length] ?? x.shape[0];
    opt.zeroGrad();
    const out = (batches === undefined ? model.call(x) : model.call(x.narrow(0, 0, n))) as Tensor;
    const loss = nn.crossEntropy(out, batches === undefined ? y : y.narrow(0, 0, n));
    loss.backward();
    opt.step();
    losses.push(loss.item() as number);
    outs.push(values(out));
  }
  return {
    losses,
    outs,
    params: model.parameters().map(values),
    grads: model.parameters().map((p) => values(p.grad!)),
    // BatchNorm's running statistics, replaced by every training forward (recycle.writesState)
    buffers: model.buffers().map(values),
  };
}

function onBackend<T>(backend: "js" | "native" | "wasm", fn: () => T): T {
  const prev = getBackend();
  if (backend !== "js") {
    const r = backend === "native" ? loadNativeBackend() : loadWasmBackend();
    if ("error" in r) throw new Error(r.error);
    setBackend(r.backend);
  } else setBackend("js");
  try {
    return fn();
  } finally {
    setBackend(prev);
  }
}

/**
 * Train `make`'s model `steps` steps without the pool, then with it (poisoned: a recycled buffer is filled with
 * NaN when taken back); the second run must reuse activations and give the same losses, outputs, gradients,
 * parameters and buffers.
 */
function assertRecyclesExactly(make: Make, steps: number): void {
  eagerPoolOpts.enabled = false;
  const ref = train(make, steps);
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = true;
  const reused = eagerPoolStats.reused;
  const got = train(make, steps);
  assert.ok(eagerPoolStats.reused > reused, "later steps reuse recycled activations");
  assert.deepEqual(got.losses, ref.losses);
  assert.deepEqual(got.outs, ref.outs, "the outputs survive later steps");
  assert.deepEqual(got.grads, ref.grads);
  assert.deepEqual(got.params, ref.params);
  assert.deepEqual(got.buffers, ref.buffers, "module state written by the forward survives");
  assert.ok(got.losses.every(Number.isFinite));
}

for (const backend of ["js", "native", "wasm"] as const) {
  for (const [name, make] of Object.entries(MODELS)) {
    test(`${backend}: ${name} training with recycled, poisoned activations is bit-identical`, () =>
      onBackend(backend, () => assertRecyclesExactly(make, 5)));
  }
}

test("a changing batch size (and a full pool) still gives the same training", () => {
  // (the models above whose targets are per row: the MLP)
  eagerPoolOpts.enabled = false;
  const ref = train(MODELS.mlp, 8, [33, 20, 33, 7]);
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = true;
  const got = train(MODELS.mlp, 8, [33, 20, 33, 7]);
  assert.deepEqual(got, ref);
});

test("steady state: a training step's forward makes no fresh storage but its output", () => {
  manualSeed(3);
  const { model, x, y } = MODELS.mlp();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
  const step = () => {
    opt.zeroGrad();
    const before = eagerPoolStats.fresh;
    const out = model.call(x);
    const fresh = eagerPoolStats.fresh - before;
    nn.crossEntropy(out, y).backward();
    opt.step();
    return fresh;
  };
  assert.ok(step() > 1, "the first step allocates every intermediate");
  step();
  assert.equal(step(), 1, "later steps take every intermediate from the pool; the output escapes");
  assert.ok(stepPoolBytes() >= 33 * (64 + 48) * 8, "the pool holds the intermediates between steps");
  const held = cachedMemory();
  assert.equal(held, stepPoolBytes());
  assert.equal(emptyCache(), held, "emptyCache releases what was cached");
  assert.equal(cachedMemory(), 0);
  assert.ok(step() > 1, "after emptyCache the next step allocates afresh");
});

test("inference under noGrad recycles at once, and earlier outputs stay intact", () => {
  manualSeed(4);
  eagerPoolOpts.poison = true;
  const { model, x } = MODELS.cnn();
  model.eval();
  const a = noGrad(() => model.call(x));
  const snap = values(a);
  assert.ok(snap.every(Number.isFinite));
  const reused = eagerPoolStats.reused;
  const b = noGrad(() => model.call(x.mul(2)));
  const c = noGrad(() => model.call(x));
  assert.ok(eagerPoolStats.reused > reused, "the second call reuses the first's intermediates");
  assert.deepEqual(values(a), snap);
  assert.deepEqual(values(c), snap);
  assert.notDeepEqual(values(b), snap);
});

test("an output that is a view of an intermediate is never recycled", () => {
  eagerPoolOpts.poison = true;
  manualSeed(5);
  // Flatten's output is a view of the pool's: the same storage as an intermediate
  const model = new nn.Sequential(new nn.Conv2d(1, 3, 3), new nn.Tanh(), new nn.Flatten());
  const x = randn([4, 1, 9, 9]);
  const y1 = model.call(x);
  const snap = values(y1);
  y1.square().sum().backward();
  for (let i = 0; i < 3; i++) model.call(x.mul(i)).sum().backward();
  assert.deepEqual(values(y1), snap);
});

test("a graph never differentiated leaves its activations to the collector", () => {
  eagerPoolOpts.poison = true;
  manualSeed(6);
  const { model, x, y } = MODELS.mlp();
  const kept = model.call(x); // grad mode, never backward: its intermediates stay with its graph
  const snap = values(kept);
  eagerPoolOpts.enabled = false;
  const ref = nn.crossEntropy(kept, y);
  eagerPoolOpts.enabled = true;
  for (let i = 0; i < 3; i++) nn.crossEntropy(model.call(x), y).backward();
  model.zeroGrad();
  ref.backward(); // the kept graph's saved activations were not recycled by the later passes
  const g = model.parameters().map((p) => values(p.grad!));
  model.zeroGrad();
  eagerPoolOpts.enabled = false;
  nn.crossEntropy(model.call(x), y).backward();
  assert.deepEqual(
    model.parameters().map((p) => values(p.grad!)),
    g,
  );
  assert.deepEqual(values(kept), snap);
});

test("retainGraph and createGraph passes do not recycle: repeated and second-order gradients agree", () => {
  const run = () => {
    manualSeed(7);
    const model = new nn.Sequential(
      new nn.Linear(30, 40, { dtype: "float64" }),
      new nn.Tanh(),
      new nn.Linear(40, 8, { dtype: "float64" }),
      new nn.Sigmoid(),
    );
    const x = randn([16, 30], { dtype: "float64" });
    const loss = model.call(x).square().sum();
    loss.backward(undefined, { retainGraph: true });
    const first = model.parameters().map((p) => values(p.grad!));
    model.zeroGrad();
    loss.backward(); // frees the graph: recycles now
    const second = model.parameters().map((p) => values(p.grad!));
    model.zeroGrad();
    // second order: the gradient norm's gradient, through createGraph
    const l2 = model.call(x).square().sum();
    l2.backward(undefined, { createGraph: true });
    const w = model.parameters()[0];
    const gnorm = w.grad!.square().sum();
    model.zeroGrad();
    gnorm.backward();
    for (let i = 0; i < 2; i++) model.call(x).sum().backward(); // later steps reuse whatever was recycled
    return { first, second, hess: values(w.grad!) };
  };
  eagerPoolOpts.enabled = false;
  const ref = run();
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = true;
  const got = run();
  assert.deepEqual(got.first, got.second);
  assert.deepEqual(got, ref);
});

test("two forwards through one model, one backward: both graphs recycle after it", () => {
  const run = () => {
    manualSeed(8);
    const { model, x, y } = MODELS.mlp();
    for (let i = 0; i < 3; i++) {
      const a = nn.crossEntropy(model.call(x), y);
      const b = nn.crossEntropy(model.call(x.mul(0.5)), y);
      a.add(b).backward();
    }
    return model.parameters().map((p) => values(p.grad!));
  };
  eagerPoolOpts.enabled = false;
  const ref = run();
  eagerPoolOpts.enabled = true;
  eagerPoolOpts.poison = true;
  assert.deepEqual(run(), ref);
});

test("hooks, a custom layer, transforms, jit and checkpoint turn recycling off or stay exact", () => {
  eagerPoolOpts.poison = true;
  manualSeed(9);
  const { model, x, y } = MODELS.mlp();
  const stepLoss = () => nn.crossEntropy(model.call(x), y);
  // a forward hook sees an intermediate (here: keeps the first Linear's output)
  const seen: Tensor[] = [];
  const h = (model as nn.Sequential).at(0).registerForwardHook((_m, _i, o) => seen.push(o as Tensor));
  const recycled = eagerPoolStats.recycled;
  stepLoss().backward();
  stepLoss().backward();
  assert.equal(eagerPoolStats.recycled, recycled, "no activation recycled while a hook is registered");
  const snap = values(seen[0]);
  h.remove();
  for (let i = 0; i < 2; i++) stepLoss().backward();
  assert.deepEqual(values(seen[0]), snap, "what the hook kept is intact");
  // a subclass of a built-in layer may keep what it computes
  class Keeping extends nn.Linear {
    last: Tensor | null = null;
    override forward(t: Tensor): Tensor {
      this.last = super.forward(t);
      return this.last;
    }
  }
  const keep = new Keeping(37, 64, { dtype: "float64" });
  const seq = new nn.Sequential(keep, new nn.ReLU(), new nn.Linear(64, 5, { dtype: "float64" }));
  const r2 = eagerPoolStats.recycled;
  nn.crossEntropy(seq.call(x), y).backward();
  assert.equal(eagerPoolStats.recycled, r2, "no activation recycled with a custom layer");
  // transforms and jit: the same gradients as eager with recycling off
  const f = (xx: Tensor) => nn.crossEntropy(model.call(xx), y);
  const gx = grad(f)(x.clone());
  const gj = jit(grad(f))(x.clone());
  const gc = (() => {
    const xx = x.clone().requiresGrad_();
    nn.crossEntropy(checkpoint((t: Tensor) => model.call(t))(xx), y).backward();
    return xx.grad!;
  })();
  eagerPoolOpts.enabled = false;
  const xr = x.clone().requiresGrad_();
  model.zeroGrad();
  f(xr).backward();
  const ref = values(xr.grad!);
  assert.deepEqual(values(gx), ref);
  assert.deepEqual(values(gc), ref);
  const gjv = values(gj);
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(gjv[i] - ref[i]) <= 1e-12 * (1 + Math.abs(ref[i])));
});

test("a call that throws leaves no recording behind", () => {
  eagerPoolOpts.poison = true;
  manualSeed(10);
  const { model, x, y } = MODELS.mlp();
  assert.throws(() => model.call(randn([4, 36], { dtype: "float64" })), /Linear|shape/i);
  const arena = setOutArena(null);
  assert.equal(arena, null, "no arena is left installed");
  eagerPoolOpts.enabled = false;
  const ref = nn.crossEntropy(model.call(x), y);
  ref.backward();
  const g = model.parameters().map((p) => values(p.grad!));
  model.zeroGrad();
  eagerPoolOpts.enabled = true;
  for (let i = 0; i < 3; i++) {
    model.zeroGrad();
    nn.crossEntropy(model.call(x), y).backward();
  }
  assert.deepEqual(
    model.parameters().map((p) => values(p.grad!)),
    g,
  );
});

test("the CLI's zoo models (Standardize first, RowLSTM) recycle and train exactly", () => {
  const spec = (name: "cnn" | "lstm"): ModelSpec => ({
    name,
    inputShape: [1, 12, 12],
    numClasses: 5,
    hidden: name === "lstm" ? [16] : [],
    dropout: 0,
    mean: 0.1,
    std: 0.3,
  });
  for (const name of ["cnn", "lstm"] as const) {
    const make = () => ({
      model: buildModel(spec(name)).net,
      x: randn([6, 1, 12, 12]),
      y: randint(0, 5, [6]),
    });
    assertRecyclesExactly(make, 4);
  }
});

test("the CLI's char Transformer recycles as a root, nested in a container with a custom layer, and trains exactly", () => {
  /** Logits [B, T, V] -> [B T, V]: a user's layer, which keeps the outer Sequential from recycling. */
  class Flat extends nn.Module {
    forward(x: Tensor): Tensor {
      return x.reshape([-1, x.shape[2]]);
    }
  }
  const vocab = [..."abcdefg"];
  const make = () => ({
    model: new nn.Sequential(
      new CharTransformer({
        name: "transformer",
        vocab,
        layers: 2,
        width: 16,
        heads: 2,
        context: 8,
        dropout: 0,
      }),
      new Flat(),
    ),
    x: randint(0, vocab.length, [3, 8], { dtype: "int32" }),
    y: randint(0, vocab.length, [3 * 8]),
  });
  // registered as a root: its own call opens the scope (embeddings and head included) though its parent does not
  assert.ok(isRecyclingRoot(make().model.children()[0]), "CharTransformer is a recycling root");
  assertRecyclesExactly(make, 4);
});

/**
 * A float32 CNN for autocast (which leaves float64 alone) whose second convolution's weight is large enough for
 * its bfloat16 cast (4.6 KB) to be pooled: convolutions cast their weights through autocast's cache.
 */
const cnn32: Make = () => ({
  model: new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.MaxPool2d(2),
    new nn.Conv2d(16, 16, 3, { padding: 1 }),
    new nn.ReLU(),
    new nn.Flatten(),
    new nn.Linear(16 * 4 * 4, 6),
  ),
  x: randn([5, 3, 8, 8]),
  y: randint(0, 6, [5]),
});

/** A float32 MLP (autocast leaves float64 alone). */
const mlp32: Make = () => ({
  model: new nn.Sequential(
    new nn.Linear(37, 64),
    new nn.ReLU(),
    new nn.Linear(64, 48),
    new nn.ReLU(),
    new nn.Linear(48, 5),
  ),
  x: randn([33, 37]),
  y: randint(0, 5, [33]),
});

/**
 * `steps` Adam steps of two forwards and two backward passes each, under bfloat16 autocast: each forward in a
 * region of its own ("step"), or the whole loop in one region ("loop"), where the second forward reuses
 * autocast's cached casts of the weights, which the second graph saves and still reads after the first pass has
 * freed the first graph and given back its activations.
 */
function trainAmp(make: Make, steps: number, region: "step" | "loop") {
  manualSeed(12);
  const { model, x, y } = make();
  const opt = new optim.Adam(model.parameters(), { lr: 1e-2 });
  const losses: number[] = [];
  const x2 = x.mul(0.5);
  const run = (perStep: boolean) => {
    for (let s = 0; s < steps; s++) {
      opt.zeroGrad();
      const forward = (input: Tensor) => {
        const f = () => nn.crossEntropy(model.call(input) as Tensor, y);
        return perStep ? autocast({ dtype: "bfloat16" }, f) : f();
      };
      const l1 = forward(x);
      const l2 = forward(x2);
      l1.backward();
      l2.backward();
      losses.push(l1.item() as number, l2.item() as number);
      opt.step();
    }
  };
  if (region === "step") run(true);
  else autocast({ dtype: "bfloat16" }, () => run(false));
  return {
    losses,
    params: model.parameters().map(values),
    grads: model.parameters().map((p) => values(p.grad!)),
  };
}

for (const backend of ["js", "native"] as const) {
  for (const [name, make] of [
    ["cnn", cnn32],
    ["mlp", mlp32],
  ] as const) {
    for (const region of ["step", "loop"] as const) {
      test(`${backend}: ${name} under bfloat16 autocast (one region per ${region}) recycles and stays bit-identical`, () =>
        onBackend(backend, () => {
          eagerPoolOpts.enabled = false;
          const ref = trainAmp(make, 4, region);
          eagerPoolOpts.enabled = true;
          eagerPoolOpts.poison = true;
          const reused = eagerPoolStats.reused;
          const got = trainAmp(make, 4, region);
          assert.ok(eagerPoolStats.reused > reused, "later steps reuse recycled storage");
          assert.deepEqual(got.losses, ref.losses);
          assert.deepEqual(got.grads, ref.grads);
          assert.deepEqual(got.params, ref.params);
          assert.ok(got.losses.every(Number.isFinite));
        }));
    }
  }
}
