/**
 * Tests of nn.Module: discovery of parameters, buffers and children with dotted names; train/eval; apply;
 * zeroGrad; freezing; to(dtype); stateDict round trip and every loadStateDict error; functionalCall; hooks;
 * toString and summary (layer names, shapes, the 235,146 parameters of a 784-256-128-10 MLP).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { grad, manualSeed, noGrad, randn, ShapeError, type Tensor, tensor, zeros } from "../../src/index.ts";
import {
  BatchNorm1d,
  BatchNorm2d,
  Conv2d,
  countParameters,
  Dropout,
  functionalCall,
  Linear,
  Module,
  ModuleList,
  ReLU,
  Sequential,
} from "../../src/nn/index.ts";

class TwoLayer extends Module {
  fc1 = new Linear(4, 3);
  act = new ReLU();
  fc2 = new Linear(3, 2);
  forward(x: Tensor): Tensor {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

class WithLists extends Module {
  scale = tensor([1, 2], { requiresGrad: true });
  constant = tensor([5, 6]); // a plain constant: neither parameter nor buffer
  layers = new ModuleList([new Linear(2, 2), new Linear(2, 2, { bias: false })]);
  heads = [new Linear(2, 1), new BatchNorm1d(1)];
  extras = [tensor([0.5], { requiresGrad: true })];
  stats: Tensor;
  constructor() {
    super();
    this.stats = this.registerBuffer("stats", zeros([3]));
  }
  forward(x: Tensor): Tensor {
    let y = x.mul(this.scale);
    for (const l of this.layers) y = l.call(y);
    return y;
  }
}

const mlp = () =>
  new Sequential(new Linear(784, 256), new ReLU(), new Linear(256, 128), new ReLU(), new Linear(128, 10));

test("discovery: parameters, buffers and children in declaration order with dotted names", () => {
  const m = new WithLists();
  assert.deepEqual(
    m.namedParameters().map(([n]) => n),
    [
      "scale",
      "extras.0",
      "layers.0.weight",
      "layers.0.bias",
      "layers.1.weight",
      "heads.0.weight",
      "heads.0.bias",
      "heads.1.weight",
      "heads.1.bias",
    ],
  );
  assert.deepEqual(
    m.namedBuffers().map(([n]) => n),
    ["stats", "heads.1.runningMean", "heads.1.runningVar", "heads.1.numBatchesTracked"],
  );
  assert.deepEqual(
    m.namedChildren().map(([n]) => n),
    ["layers", "heads.0", "heads.1"],
  );
  assert.deepEqual(
    m.namedModules().map(([n]) => n),
    ["", "layers", "layers.0", "layers.1", "heads.0", "heads.1"],
  );
  assert.equal(m.parameters()[0], m.scale);
  assert.equal(m.modules().length, 6);
  assert.equal(m.children().length, 3);
  assert.equal(m.buffers()[0], m.stats);
  // Sequential children are named by position
  assert.deepEqual(
    new TwoLayer().namedParameters().map(([n]) => n),
    ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
  );
  assert.deepEqual(
    mlp()
      .namedParameters()
      .map(([n]) => n),
    ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"],
  );
});

test("a parameter shared by two modules is listed once; the state dict names both places", () => {
  const a = new Linear(2, 2);
  const b = new Linear(2, 2);
  b.weight = a.weight;
  const s = new Sequential(a, b);
  assert.equal(s.parameters().length, 3);
  assert.deepEqual(Object.keys(s.stateDict()), ["0.weight", "0.bias", "1.weight", "1.bias"]);
});

test("train/eval are recursive; apply visits children first", () => {
  const m = new Sequential(new Linear(2, 2), new Sequential(new Dropout(0.5), new BatchNorm1d(2)));
  assert.ok(m.modules().every((x) => x.training));
  m.eval();
  assert.ok(m.modules().every((x) => !x.training));
  m.train();
  assert.ok(m.modules().every((x) => x.training));
  const order: string[] = [];
  m.apply((x) => order.push(x.constructor.name));
  assert.deepEqual(order, ["Linear", "Dropout", "BatchNorm1d", "Sequential", "Sequential"]);
});

test("zeroGrad sets grads to null; freezing keeps parameters listed", () => {
  const m = new TwoLayer();
  m.call(randn([5, 4]))
    .sum()
    .backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  // frozen straight after construction, before any discovery: still a parameter (PyTorch semantics)
  const lin = new Linear(3, 2);
  lin.weight.requiresGrad = false;
  assert.deepEqual(
    lin.namedParameters().map(([n]) => n),
    ["weight", "bias"],
  );
  m.requiresGrad_(false);
  assert.equal(m.parameters().length, 4);
  assert.ok(m.parameters().every((p) => !p.requiresGrad));
  assert.equal(countParameters(m, { trainableOnly: true }), 0);
  assert.equal(countParameters(m), 4 * 3 + 3 + 3 * 2 + 2);
});

test("to(dtype) converts float parameters and buffers, keeps integer buffers", () => {
  const m = new Sequential(new Linear(3, 2), new BatchNorm1d(2));
  const before = m.parameters().map((p) => p.toArray());
  m.to("float64");
  assert.ok(m.parameters().every((p) => p.dtype === "float64" && p.requiresGrad));
  assert.deepEqual(
    m.parameters().map((p) => p.toArray()),
    before,
  );
  const bn = m.at(1) as BatchNorm1d;
  assert.equal(bn.runningMean!.dtype, "float64");
  assert.equal(bn.numBatchesTracked!.dtype, "int32");
  assert.equal(m.call(randn([4, 3], { dtype: "float64" })).dtype, "float64");
  assert.throws(() => m.to("int32"), /expected float32 or float64/);
});

test("stateDict round trip copies values in place and keeps the parameter objects", () => {
  manualSeed(1);
  const a = new TwoLayer();
  const b = new TwoLayer();
  const paramsB = b.parameters();
  assert.notDeepEqual(a.fc1.weight.toArray(), b.fc1.weight.toArray());
  const res = b.loadStateDict(a.stateDict());
  assert.deepEqual(res, { missingKeys: [], unexpectedKeys: [] });
  const sdA = a.stateDict();
  const sdB = b.stateDict();
  assert.deepEqual(Object.keys(sdA), Object.keys(sdB));
  for (const k of Object.keys(sdA)) assert.deepEqual(sdA[k].toArray(), sdB[k].toArray());
  // same objects (optimizers keep working), and a copy, not an alias
  b.parameters().forEach((p, i) => {
    assert.equal(p, paramsB[i]);
  });
  noGrad(() => a.fc1.weight.fill_(7));
  assert.ok((b.fc1.weight.toArray() as number[][]).flat().every((v) => v !== 7));
  // buffers too
  const bn1 = new BatchNorm2d(2);
  bn1.call(randn([2, 2, 3, 3]));
  const bn2 = new BatchNorm2d(2);
  bn2.loadStateDict(bn1.stateDict());
  assert.deepEqual(bn2.runningVar!.toArray(), bn1.runningVar!.toArray());
  assert.equal(bn2.numBatchesTracked!.item(), 1);
  // state dict values are detached
  assert.ok(Object.values(a.stateDict()).every((t) => !t.requiresGrad));
});

test("loadStateDict errors: missing keys, unexpected keys, shapes; non-strict loads the rest", () => {
  const m = new TwoLayer();
  const sd = new TwoLayer().stateDict();
  const w0 = m.fc1.weight.toArray();

  const missing = { ...sd };
  delete missing["fc2.bias"];
  assert.throws(() => m.loadStateDict(missing), /missing keys: "fc2\.bias"/);

  const extra = { ...sd, "fc3.weight": zeros([1]) };
  assert.throws(() => m.loadStateDict(extra), /unexpected keys: "fc3\.weight"/);

  const both = { ...missing, extra: zeros([1]) };
  assert.throws(() => m.loadStateDict(both), /missing keys: "fc2\.bias"; unexpected keys: "extra"/);

  const badShape = { ...sd, "fc1.weight": zeros([4, 3]) };
  assert.throws(
    () => m.loadStateDict(badShape),
    (e: Error) =>
      e instanceof ShapeError &&
      /"fc1\.weight"/.test(e.message) &&
      /checkpoint shape \[4, 3\]/.test(e.message) &&
      /module shape \[3, 4\]/.test(e.message),
  );
  // shape mismatches are errors even when not strict
  assert.throws(() => m.loadStateDict(badShape, { strict: false }), ShapeError);
  assert.throws(() => m.loadStateDict({ ...sd, "fc1.bias": [1, 2, 3] as unknown as Tensor }), /not a Tensor/);
  // nothing was written by the failed loads
  assert.deepEqual(m.fc1.weight.toArray(), w0);

  const res = m.loadStateDict(both, { strict: false });
  assert.deepEqual(res, { missingKeys: ["fc2.bias"], unexpectedKeys: ["extra"] });
  assert.deepEqual(m.fc1.weight.toArray(), sd["fc1.weight"].toArray());
});

test("non-persistent buffers are excluded from the state dict; buffers cannot require grad", () => {
  class M extends Module {
    cache = this.registerBuffer("cache", zeros([2]), { persistent: false });
    kept = this.registerBuffer("kept", zeros([1]));
    forward(x: Tensor) {
      return x;
    }
  }
  const m = new M();
  assert.deepEqual(Object.keys(m.stateDict()), ["kept"]);
  assert.deepEqual(
    m.namedBuffers().map(([n]) => n),
    ["cache", "kept"],
  );
  assert.throws(() => m.registerBuffer("w", zeros([1], { requiresGrad: true })), /requires grad/);
});

test("functionalCall runs with replaced parameters and restores them; works under grad", () => {
  const lin = new Linear(3, 2, { dtype: "float64" });
  const x = randn([4, 3], { dtype: "float64" });
  const w = zeros([2, 3], { dtype: "float64" });
  const b = tensor([1, 2], { dtype: "float64" });
  const y = functionalCall(lin, { weight: w, bias: b }, x);
  assert.deepEqual(y.toArray(), [
    [1, 2],
    [1, 2],
    [1, 2],
    [1, 2],
  ]);
  assert.notEqual(lin.weight, w);
  assert.ok(lin.weight.requiresGrad);
  // d/dW sum(x W^T) = column sums of x, for each output row
  const g = grad((wt: Tensor) => functionalCall(lin, { weight: wt }, x).sum())(lin.weight);
  const colSums = x.sum(0).toArray() as number[];
  (g.toArray() as number[][]).forEach((row) => {
    row.forEach((v, j) => {
      assert.ok(Math.abs(v - colSums[j]) < 1e-12);
    });
  });
  assert.throws(() => functionalCall(lin, { wieght: w }, x), /no parameter or buffer "wieght"/);
  assert.throws(() => functionalCall(lin, { weight: zeros([3, 2]) }, x), /has shape \[2, 3\]/);
});

test("forward hooks run around call and can be removed", () => {
  const lin = new Linear(2, 3);
  const seen: string[] = [];
  const h1 = lin.registerForwardPreHook((m, inputs) =>
    seen.push(`pre ${m.constructor.name} ${inputs.length}`),
  );
  const h2 = lin.registerForwardHook((_m, _i, out) => seen.push(`post ${(out as Tensor).shape}`));
  lin.call(zeros([1, 2]));
  h1.remove();
  h2.remove();
  lin.call(zeros([1, 2]));
  lin.forward(zeros([1, 2]));
  assert.deepEqual(seen, ["pre Linear 1", "post 1,3"]);
});

test("toString prints the module tree", () => {
  const s = new Sequential(
    new Conv2d(1, 4, 3, { padding: 1 }),
    new ReLU(),
    new Linear(4, 2, { bias: false }),
  );
  assert.equal(
    s.toString(),
    [
      "Sequential(",
      "  (0): Conv2d(1, 4, kernel=3x3, padding=1x1)",
      "  (1): ReLU()",
      "  (2): Linear(in=4, out=2, bias=false)",
      ")",
    ].join("\n"),
  );
});

test("summary: layer names, output shapes, per-layer and total parameter counts", () => {
  const model = mlp();
  const s = model.summary([1, 784]);
  for (const name of ["Sequential", "0 (Linear)", "1 (ReLU)", "2 (Linear)", "4 (Linear)"]) {
    assert.ok(s.includes(name), `summary lacks ${name}:\n${s}`);
  }
  assert.match(s, /0 \(Linear\)\s+\[1, 256\]\s+200,960/);
  assert.match(s, /2 \(Linear\)\s+\[1, 128\]\s+32,896/);
  assert.match(s, /4 \(Linear\)\s+\[1, 10\]\s+1,290/);
  assert.match(s, /Total params: 235,146/);
  assert.match(s, /Trainable params: 235,146/);
  assert.match(s, /Non-trainable params: 0/);
  assert.equal(countParameters(model), 235146);
});

test("summary runs in eval mode without side effects and restores the training flags", () => {
  const bn = new BatchNorm1d(3);
  const model = new Sequential(new Linear(2, 3), bn, new Dropout(0.5));
  model.at(2).eval(); // a mixed state to restore
  const s = model.summary([1, 2]); // batch 1 would be an error in training mode
  assert.match(s, /1 \(BatchNorm1d\)\s+\[1, 3\]\s+6/);
  assert.deepEqual(bn.runningMean!.toArray(), [0, 0, 0]);
  assert.equal(bn.numBatchesTracked!.item(), 0);
  assert.deepEqual(
    model.modules().map((m) => m.training),
    [true, true, true, false],
  );
  assert.throws(
    () => model.summary([1, 5]),
    /summary: the forward pass of Sequential on zeros of shape \[1, 5\]/,
  );
  assert.ok(model.training);
});

test("ModuleList has no forward; Sequential indexing", () => {
  const l = new ModuleList([new ReLU()]);
  assert.throws(() => l.forward(zeros([1])), /ModuleList: has no forward/);
  assert.equal(l.length, 1);
  const s = new Sequential(new ReLU()).append(new Linear(2, 2));
  assert.equal(s.length, 2);
  assert.ok(s.at(-1) instanceof Linear);
  assert.throws(() => s.at(5), /out of range/);
  assert.deepEqual(
    [...s].map((m) => m.constructor.name),
    ["ReLU", "Linear"],
  );
});
