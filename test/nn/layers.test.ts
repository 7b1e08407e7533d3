/**
 * Tests of the layers: output shapes of every layer, values against hand computation (or PyTorch reference
 * numbers pasted as literals where noted), argument errors, Dropout scaling and edge cases, Embedding lookups
 * and padding rows, and the shapes of the ResNet and DenseNet blocks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  arange,
  Generator,
  manualSeed,
  noGrad,
  ones,
  randn,
  type Tensor,
  tensor,
  zeros,
} from "../../src/index.ts";
import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  BasicBlock,
  BatchNorm1d,
  BatchNorm2d,
  Conv2d,
  DenseBlock,
  Dropout,
  ELU,
  Embedding,
  Flatten,
  GELU,
  Identity,
  LayerNorm,
  LeakyReLU,
  Linear,
  LogSoftmax,
  MaxPool2d,
  ReLU,
  Sigmoid,
  SiLU,
  Softmax,
  Softplus,
  Tanh,
} from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };

function close(actual: unknown, expected: unknown, tol = 1e-6, path = "value"): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => {
      close((actual as unknown[])[i], e, tol, `${path}[${i}]`);
    });
    return;
  }
  const a = actual as number;
  const e = expected as number;
  assert.ok(Math.abs(a - e) <= tol * (1 + Math.abs(e)), `${path}: ${a} vs ${e}`);
}

function setParam(p: Tensor, values: Tensor): void {
  noGrad(() => p.copy_(values));
}

test("output shapes of every layer", () => {
  const x4 = randn([2, 3, 8, 8]);
  const cases: [string, Tensor, readonly number[]][] = [
    ["Linear", new Linear(5, 7).call(randn([4, 5])), [4, 7]],
    ["Linear batched", new Linear(5, 7).call(randn([2, 3, 5])), [2, 3, 7]],
    ["Linear 1-d", new Linear(5, 7).call(randn([5])), [7]],
    ["Conv2d", new Conv2d(3, 4, 3).call(x4), [2, 4, 6, 6]],
    ["Conv2d pad", new Conv2d(3, 4, 3, { padding: 1 }).call(x4), [2, 4, 8, 8]],
    ["Conv2d stride", new Conv2d(3, 4, 3, { stride: 2, padding: 1 }).call(x4), [2, 4, 4, 4]],
    ["Conv2d dilation", new Conv2d(3, 4, 3, { dilation: 2 }).call(x4), [2, 4, 4, 4]],
    ["Conv2d groups", new Conv2d(3, 6, [1, 3], { groups: 3 }).call(x4), [2, 6, 8, 6]],
    ["Conv2d same", new Conv2d(3, 2, 4, { padding: "same" }).call(x4), [2, 2, 8, 8]],
    ["Conv2d valid", new Conv2d(3, 2, 5, { padding: "valid" }).call(x4), [2, 2, 4, 4]],
    ["MaxPool2d", new MaxPool2d(2).call(x4), [2, 3, 4, 4]],
    ["MaxPool2d stride", new MaxPool2d(3, { stride: 2, padding: 1 }).call(x4), [2, 3, 4, 4]],
    ["AvgPool2d", new AvgPool2d([2, 4]).call(x4), [2, 3, 4, 2]],
    ["AdaptiveAvgPool2d 1", new AdaptiveAvgPool2d(1).call(x4), [2, 3, 1, 1]],
    ["AdaptiveAvgPool2d 3x5", new AdaptiveAvgPool2d([3, 5]).call(x4), [2, 3, 3, 5]],
    ["AdaptiveAvgPool2d null", new AdaptiveAvgPool2d([null, 2]).call(x4), [2, 3, 8, 2]],
    ["BatchNorm1d 2-d", new BatchNorm1d(5).call(randn([4, 5])), [4, 5]],
    ["BatchNorm1d 3-d", new BatchNorm1d(5).call(randn([4, 5, 3])), [4, 5, 3]],
    ["BatchNorm2d", new BatchNorm2d(3).call(x4), [2, 3, 8, 8]],
    ["LayerNorm", new LayerNorm([8, 8]).call(x4), [2, 3, 8, 8]],
    ["Dropout", new Dropout(0.2).call(x4), [2, 3, 8, 8]],
    ["Embedding", new Embedding(10, 4).call(tensor([[1, 2, 3]], { dtype: "int32" })), [1, 3, 4]],
    ["Embedding 0-d", new Embedding(10, 4).call(tensor(3, { dtype: "int32" })), [4]],
    ["Flatten", new Flatten().call(x4), [2, 192]],
    ["Flatten dims", new Flatten(2, 3).call(x4), [2, 3, 64]],
    ["Identity", new Identity().call(x4), [2, 3, 8, 8]],
    ["ReLU", new ReLU().call(x4), [2, 3, 8, 8]],
    ["Softmax", new Softmax(1).call(x4), [2, 3, 8, 8]],
    ["BasicBlock identity", new BasicBlock(3, 3).call(x4), [2, 3, 8, 8]],
    ["BasicBlock downsample", new BasicBlock(3, 8, 2).call(x4), [2, 8, 4, 4]],
    ["BasicBlock channels", new BasicBlock(3, 5, 1).call(x4), [2, 5, 8, 8]],
    ["DenseBlock", new DenseBlock(3, 3, 4).call(x4), [2, 15, 8, 8]],
  ];
  for (const [name, y, shape] of cases) assert.deepEqual(y.shape, shape, name);
});

test("Linear computes x W^T + b; errors name the shapes", () => {
  const lin = new Linear(3, 2);
  setParam(
    lin.weight,
    tensor([
      [1, 2, 3],
      [0, -1, 1],
    ]),
  );
  setParam(lin.bias!, tensor([10, 20]));
  const y = lin.call(
    tensor([
      [1, 1, 1],
      [2, 0, -1],
    ]),
  );
  assert.deepEqual(y.toArray(), [
    [16, 20],
    [9, 19],
  ]);
  const nb = new Linear(3, 2, { bias: false });
  assert.equal(nb.bias, null);
  assert.equal(nb.parameters().length, 1);
  assert.throws(() => lin.call(zeros([4, 5])), /Linear: expected input \[\.\.\., 3\], got \[4, 5\]/);
  assert.throws(() => new Linear(-1, 2), /inFeatures must be an integer/);
  assert.equal(new Linear(3, 2, f64).weight.dtype, "float64");
});

test("Conv2d: a 1x1 convolution is a matmul over channels; padding 'same' matches PyTorch", () => {
  const conv = new Conv2d(2, 3, 1);
  const x = randn([1, 2, 2, 2], f64);
  conv.to("float64");
  const y = conv.call(x);
  const w = conv.weight.reshape([3, 2]);
  const expected = w
    .matmul(x.reshape([2, 4]))
    .add(conv.bias!.reshape([3, 1]))
    .reshape([1, 3, 2, 2]);
  close(y.toArray(), expected.toArray(), 1e-12);

  // reference values from PyTorch 1.13: F.conv2d(x, w, padding="same") with x = arange(20).reshape(1,1,4,5)
  const same = new Conv2d(1, 1, 2, { padding: "same", bias: false, dtype: "float64" });
  setParam(
    same.weight,
    tensor(
      [
        [
          [
            [1, 2],
            [3, -1],
          ],
        ],
      ],
      f64,
    ),
  );
  const xs = arange(20, undefined, 1, f64).reshape([1, 1, 4, 5]);
  assert.deepEqual(same.call(xs).toArray(), [
    [
      [
        [11, 16, 21, 26, 31],
        [36, 41, 46, 51, 51],
        [61, 66, 71, 76, 71],
        [47, 50, 53, 56, 19],
      ],
    ],
  ]);
  const same3 = new Conv2d(1, 1, 3, { padding: "same", dilation: 2, bias: false, dtype: "float64" });
  setParam(
    same3.weight,
    tensor(
      [
        [
          [
            [1, 0, 2],
            [0, 1, 0],
            [-1, 0, 1],
          ],
        ],
      ],
      f64,
    ),
  );
  assert.deepEqual(same3.call(xs).toArray(), [
    [
      [
        [12, 14, 6, -8, -8],
        [22, 24, 11, -8, -8],
        [14, 17, 20, 14, 16],
        [29, 32, 40, 24, 26],
      ],
    ],
  ]);
  assert.throws(() => new Conv2d(3, 4, 3).call(zeros([1, 2, 5, 5])), /Conv2d: expected input \[N, 3, H, W\]/);
  assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /groups=2 must be a positive integer dividing/);
  assert.throws(() => new Conv2d(3, 4, 3, { padding: "same", stride: 2 }), /"same" needs stride 1/);
});

test("pooling values: max, average, adaptive (divisible and PyTorch's overlapping windows)", () => {
  const x = arange(16, undefined, 1, f64).reshape([1, 1, 4, 4]);
  assert.deepEqual(new MaxPool2d(2).call(x).toArray(), [
    [
      [
        [5, 7],
        [13, 15],
      ],
    ],
  ]);
  assert.deepEqual(new AvgPool2d(2).call(x).toArray(), [
    [
      [
        [2.5, 4.5],
        [10.5, 12.5],
      ],
    ],
  ]);
  assert.deepEqual(new AdaptiveAvgPool2d(1).call(x).toArray(), [[[[7.5]]]]);
  assert.deepEqual(new AdaptiveAvgPool2d([2, 1]).call(x).toArray(), [[[[3.5], [11.5]]]]);
  // reference values from PyTorch 1.13: F.adaptive_avg_pool2d(arange(35).reshape(1, 1, 5, 7), size)
  const y = arange(35, undefined, 1, f64).reshape([1, 1, 5, 7]);
  close(new AdaptiveAvgPool2d([2, 3]).call(y).toArray(), [
    [
      [
        [8, 10, 12],
        [22, 24, 26],
      ],
    ],
  ]);
  close(new AdaptiveAvgPool2d([3, 4]).call(y).toArray(), [
    [
      [
        [4, 5.5, 7.5, 9],
        [14.5, 16, 18, 19.5],
        [25, 26.5, 28.5, 30],
      ],
    ],
  ]);
  assert.throws(() => new AdaptiveAvgPool2d(0), /output size must be integers >= 1/);
  assert.throws(() => new AdaptiveAvgPool2d(2).call(zeros([2, 3])), /input must be 4-d/);
});

test("activation modules", () => {
  const x = tensor([-2, 0, 1.5], f64);
  const g = (m: { call(t: Tensor): Tensor }) => m.call(x).toArray() as number[];
  close(g(new ReLU()), [0, 0, 1.5]);
  close(g(new LeakyReLU(0.1)), [-0.2, 0, 1.5]);
  close(g(new ELU(2)), [2 * (Math.exp(-2) - 1), 0, 1.5]);
  close(g(new Sigmoid()), [1 / (1 + Math.exp(2)), 0.5, 1 / (1 + Math.exp(-1.5))]);
  close(g(new Tanh()), [Math.tanh(-2), 0, Math.tanh(1.5)]);
  close(g(new SiLU()), [-2 / (1 + Math.exp(2)), 0, 1.5 / (1 + Math.exp(-1.5))]);
  close(g(new Softplus()), [Math.log1p(Math.exp(-2)), Math.LN2, Math.log1p(Math.exp(1.5))]);
  // GELU(x) = x Phi(x): Phi(-2) = 0.022750131948179, Phi(1.5) = 0.933192798731142
  close(g(new GELU()), [-2 * 0.022750131948179, 0, 1.5 * 0.933192798731142], 1e-9);
  const lse = Math.log(Math.exp(-2) + 1 + Math.exp(1.5));
  close(g(new LogSoftmax()), [-2 - lse, -lse, 1.5 - lse]);
  close(g(new Softmax(0)), [Math.exp(-2 - lse), Math.exp(-lse), Math.exp(1.5 - lse)]);
});

test("Dropout: inverted scaling preserves the mean (fixed seed); eval, p = 0 and p = 1", () => {
  manualSeed(42);
  const n = 20000;
  const x = ones([n]);
  const drop = new Dropout(0.3);
  const y = drop.call(x).toArray() as number[];
  const kept = y.filter((v) => v !== 0);
  // survivors are exactly 1 / (1 - p) in float32
  assert.ok(kept.every((v) => v === Math.fround(1 / 0.7)));
  const keptFrac = kept.length / n;
  // binomial std of the kept fraction is sqrt(0.21 / 20000) = 0.0032; 5 sigma
  assert.ok(Math.abs(keptFrac - 0.7) < 0.017, `kept fraction ${keptFrac}`);
  const mean = y.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.abs(mean - 1) < 0.025, `mean ${mean}`);

  drop.eval();
  const e = randn([3, 4]);
  assert.equal(drop.call(e), e);
  drop.train();
  const p0 = new Dropout(0);
  assert.equal(p0.call(e), e);
  const p1 = new Dropout(1);
  const z = p1.call(e);
  assert.deepEqual(z.shape, [3, 4]);
  assert.ok(Array.from(z.dataSync()).every((v) => v === 0)); // x * 0, so -0 for negative x (as PyTorch)
  // gradient of dropout is the same mask
  const w = ones([8], { requiresGrad: true });
  const out = new Dropout(0.5, { generator: new Generator(3) }).call(w);
  out.sum().backward();
  assert.deepEqual(w.grad!.toArray(), out.toArray());
  assert.throws(() => new Dropout(1.5), /p must be in \[0, 1\]/);
});

test("Dropout with its own Generator is reproducible and leaves the global stream alone", () => {
  const a = new Dropout(0.5, { generator: new Generator(7) });
  const b = new Dropout(0.5, { generator: new Generator(7) });
  const x = ones([64]);
  manualSeed(5);
  const r1 = randn([2]).toArray();
  manualSeed(5);
  const ya = a.call(x).toArray();
  const r2 = randn([2]).toArray();
  assert.deepEqual(ya, b.call(x).toArray());
  assert.deepEqual(r1, r2);
  // the global generator drives a Dropout without its own
  manualSeed(9);
  const g1 = new Dropout(0.5).call(x).toArray();
  manualSeed(9);
  assert.deepEqual(new Dropout(0.5).call(x).toArray(), g1);
});

test("Embedding looks up rows for int32 indices of any shape; padding rows are zero with zero gradient", () => {
  const emb = new Embedding(5, 3);
  const w = emb.weight.toArray() as number[][];
  const idx = tensor(
    [
      [4, 0],
      [1, 4],
    ],
    { dtype: "int32" },
  );
  assert.deepEqual(emb.call(idx).toArray(), [
    [w[4], w[0]],
    [w[1], w[4]],
  ]);
  // gradient: row 4 is used twice
  emb.call(idx).sum().backward();
  assert.deepEqual(emb.weight.grad!.toArray(), [
    [1, 1, 1],
    [1, 1, 1],
    [0, 0, 0],
    [0, 0, 0],
    [2, 2, 2],
  ]);
  assert.throws(() => emb.call(tensor([1, 2])), /Embedding: indices must be int32, got float32/);
  assert.throws(
    () => emb.call(tensor([1, 5], { dtype: "int32" })),
    /index 5 is out of range for 5 embeddings/,
  );

  const pad = new Embedding(4, 2, { paddingIdx: -1 });
  assert.equal(pad.paddingIdx, 3);
  assert.deepEqual((pad.weight.toArray() as number[][])[3], [0, 0]);
  const out = pad.call(tensor([3, 1, 3], { dtype: "int32" }));
  assert.deepEqual((out.toArray() as number[][])[0], [0, 0]);
  out.square().sum().backward();
  assert.deepEqual((pad.weight.grad!.toArray() as number[][])[3], [0, 0]);
});

test("BasicBlock: identity shortcut only when shapes agree; DenseBlock grows channels layer by layer", () => {
  assert.equal(new BasicBlock(4, 4).downsample, null);
  const down = new BasicBlock(4, 8, 2);
  assert.notEqual(down.downsample, null);
  assert.deepEqual(
    down.namedParameters().map(([n, p]) => `${n} ${p.shape.join("x")}`),
    [
      "conv1.weight 8x4x3x3",
      "bn1.weight 8",
      "bn1.bias 8",
      "conv2.weight 8x8x3x3",
      "bn2.weight 8",
      "bn2.bias 8",
      "downsample.0.weight 8x4x1x1",
      "downsample.1.weight 8",
      "downsample.1.bias 8",
    ],
  );
  const dense = new DenseBlock(3, 4, 2);
  assert.deepEqual(
    dense
      .namedParameters()
      .filter(([n]) => n.endsWith("conv.weight"))
      .map(([n, p]) => `${n} ${p.shape.join("x")}`),
    ["layers.0.conv.weight 2x4x3x3", "layers.1.conv.weight 2x6x3x3", "layers.2.conv.weight 2x8x3x3"],
  );
  // the block's output starts with its input, unchanged (concatenation)
  const x = randn([1, 4, 5, 5]);
  const y = dense.call(x);
  assert.deepEqual(y.narrow(1, 0, 4).toArray(), x.toArray());
  // every output of a BasicBlock is a ReLU output
  assert.ok((down.call(randn([2, 4, 6, 6])).dataSync() as Float32Array).every((v) => v >= 0));
});
