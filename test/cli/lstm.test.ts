/**
 * `chainrule train --model lstm`: the image read row by row by an LSTM. The state dict has PyTorch's LSTM
 * names and shapes (derived here from the LSTM equations, not from our code), a few steps on the digits lower
 * the loss, the --jit run (gradient clipping inside the program) matches the eager run step by step, the
 * traceable clipping scales gradients exactly as clip_grad_norm_ does, and bad --hidden values fail clearly.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveConfig, type TrainInput } from "../../src/cli/args.ts";
import { buildModel, specWeightShapes } from "../../src/cli/models.ts";
import { clippedOptimizer, runTrain } from "../../src/cli/train.ts";
import { manualSeed, tensor, zeros } from "../../src/ops/creation.ts";
import { sgd } from "../../src/optim/functional.ts";
import { run, tempDirs } from "./helpers.ts";

const tmp = tempDirs("cli-lstm");
const silent = { log: () => {}, tty: false };
const base: TrainInput = {
  model: "lstm",
  hidden: [32],
  limit: 320,
  schedule: "none",
  lr: 0.01,
  valFraction: 0,
  batchSize: 32,
  epochs: 2,
  seed: 0,
  quiet: true,
  plots: false,
  backend: "js",
};

test("lstm: PyTorch's state-dict names and shapes, [N, 10] logits from 28 rows", () => {
  manualSeed(0);
  const spec = {
    name: "lstm",
    inputShape: [1, 28, 28],
    numClasses: 10,
    hidden: [24, 24],
    dropout: 0,
    mean: 0.1,
    std: 0.3,
  } as const;
  const { net } = buildModel({ ...spec, inputShape: [1, 28, 28], hidden: [24, 24] });
  const got = Object.fromEntries(Object.entries(net.stateDict()).map(([k, t]) => [k, t.shape]));
  // LSTM(28, 24, num_layers=2): gates i, f, g, o stacked -> 4 * 24 rows; layer 1 reads layer 0's 24 outputs
  assert.deepEqual(got, {
    "1.lstm.weight_ih_l0": [96, 28],
    "1.lstm.weight_hh_l0": [96, 24],
    "1.lstm.bias_ih_l0": [96],
    "1.lstm.bias_hh_l0": [96],
    "1.lstm.weight_ih_l1": [96, 24],
    "1.lstm.weight_hh_l1": [96, 24],
    "1.lstm.bias_ih_l1": [96],
    "1.lstm.bias_hh_l1": [96],
    "2.weight": [10, 24],
    "2.bias": [10],
  });
  assert.deepEqual(
    Object.fromEntries(specWeightShapes({ ...spec, inputShape: [1, 28, 28], hidden: [24, 24] }) ?? []),
    got,
  );
  assert.deepEqual(net.call(zeros([3, 1, 28, 28])).shape, [3, 10]);
  assert.throws(() => resolveConfig({ model: "lstm", hidden: [32, 16] }), /all equal/);
  assert.deepEqual(resolveConfig({ model: "lstm" }).hidden, [128]);
  assert.equal(resolveConfig({ model: "lstm" }).clipGrad, 1);
});

test("lstm: a few steps on the digits lower the loss; --jit gives the same steps", async () => {
  const e = await runTrain({ ...base, out: tmp("eager") }, silent);
  const l = e.metrics.steps.loss;
  assert.equal(l.length, 20);
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(mean(l.slice(-4)) < mean(l.slice(0, 4)) - 0.1, `loss ${l.join(", ")}`);
  const j = await runTrain({ ...base, jit: true, out: tmp("jit") }, silent);
  j.metrics.steps.loss.forEach((v, i) => {
    assert.ok(Math.abs(v - l[i]) <= 1e-4 * l[i], `step ${i + 1}: jit ${v}, eager ${l[i]}`);
  });
});

test("clippedOptimizer: gradients scaled to the max norm as clip_grad_norm_, untouched below it", () => {
  const f = clippedOptimizer(sgd({ lr: 1 }), 1);
  const params = { a: tensor([1, 1], { dtype: "float64" }), b: tensor([2], { dtype: "float64" }) };
  const state = f.init(params);
  // joint norm of (3, 0, 4) is 5: scaled by 1 / (5 + 1e-6)
  const grads = { a: tensor([3, 0], { dtype: "float64" }), b: tensor([4], { dtype: "float64" }) };
  const [p] = f.update(grads, state, params);
  const s = 1 / (5 + 1e-6);
  const close = (got: ArrayLike<number>, want: number[]) => {
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) < 1e-12, `${Array.from(got)} vs ${want}`);
    }
  };
  close(p.a.dataSync(), [1 - 3 * s, 1]);
  close(p.b.dataSync(), [2 - 4 * s]);
  const small = { a: tensor([0.3, 0], { dtype: "float64" }), b: tensor([0.4], { dtype: "float64" }) };
  const [q] = clippedOptimizer(sgd({ lr: 1 }), 1).update(small, state, params);
  close(q.a.dataSync(), [0.7, 1]);
  close(q.b.dataSync(), [1.6]);
});

test("--clip-grad and --hidden for the lstm: clear errors", async () => {
  const c = await run(["train", "--model", "lstm", "--clip-grad", "-1"]);
  assert.equal(c.code, 1);
  assert.match(c.err, /--clip-grad/);
  const h = await run(["train", "--model", "lstm", "--hidden", "64,32", "--backend", "js"]);
  assert.equal(h.code, 1);
  assert.match(h.err, /--hidden: the lstm takes one hidden size per stacked layer, all equal/);
});
