/**
 * Optimizer state dicts: continuing after save/load gives exactly the same parameters as uninterrupted training,
 * for every optimizer; the dict is plain records of tensors and numbers that survive a safetensors-style split
 * file's bytes (io's encodeOptimizerState); mismatched groups, parameter counts, shapes and keys are rejected clearly.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ShapeError } from "../../src/errors.ts";
import { tensor } from "../../src/ops/creation.ts";
import { Adagrad } from "../../src/optim/adagrad.ts";
import { Adam, AdamW } from "../../src/optim/adam.ts";
import {
  decodeOptimizerState,
  encodeOptimizerState,
  safetensorsToTensors,
  tensorsToSafetensors,
} from "../../src/io/tensors.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { RMSprop } from "../../src/optim/rmsprop.ts";
import { SGD } from "../../src/optim/sgd.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { F64, param, values } from "./helpers.ts";

const GRADS_A = [
  [0.1, -0.2, 0.3],
  [0.4, 0.0, -0.5],
  [-0.3, 0.25, 0.6],
  [0.05, -0.7, 0.2],
  [0.3, 0.1, -0.1],
  [-0.2, 0.6, 0.4],
];
const GRADS_B = [
  [1, -2, 0.5, 0.1],
  [0.3, -0.1, -0.4, 0.2],
  [-0.6, 0.7, 0.05, -0.3],
  [0.2, 0.2, 0.2, 0.2],
  [-1.5, 0.4, 0.9, -0.05],
  [0.1, 0.1, -0.1, 0.3],
];

type Make = (a: Tensor, b: Tensor) => Optimizer<{ lr: number }>;

const makers: Array<[string, Make]> = [
  [
    "SGD nesterov",
    (a, b) =>
      new SGD([{ params: [a] }, { params: [b], lr: 0.05 }], { lr: 0.1, momentum: 0.9, nesterov: true }),
  ],
  ["Adagrad", (a, b) => new Adagrad([{ params: [a] }, { params: [b], lrDecay: 0.1 }], { lr: 0.1 })],
  ["RMSprop centered", (a, b) => new RMSprop([a, b], { lr: 0.01, momentum: 0.5, centered: true })],
  [
    "Adam amsgrad",
    (a, b) => new Adam([{ params: [a] }, { params: [b], betas: [0.5, 0.6] }], { lr: 0.1, amsgrad: true }),
  ],
  ["AdamW", (a, b) => new AdamW([a, b], { lr: 0.1, weightDecay: 0.2 })],
];

function stepWith(opt: Optimizer<{ lr: number }>, a: Tensor, b: Tensor, k: number): void {
  a.grad = tensor(GRADS_A[k], F64);
  // the second parameter has no gradient at step 0, so its state starts later
  b.grad = k === 0 ? null : tensor(GRADS_B[k], F64).reshape([2, 2]);
  opt.step();
}

for (const [name, make] of makers) {
  test(`${name}: save after 3 steps, load into a fresh optimizer, continue = uninterrupted`, () => {
    const a1 = param([0.5, -1, 2]);
    const b1 = param([
      [1, 2],
      [3, 4],
    ]);
    const o1 = make(a1, b1);
    for (let k = 0; k < 6; k++) stepWith(o1, a1, b1, k);

    const a2 = param([0.5, -1, 2]);
    const b2 = param([
      [1, 2],
      [3, 4],
    ]);
    const o2 = make(a2, b2);
    for (let k = 0; k < 3; k++) stepWith(o2, a2, b2, k);
    // save the optimizer state as safetensors bytes (tensors + JSON metadata) and read it back
    const enc = encodeOptimizerState(o2.stateDict());
    const bytes = tensorsToSafetensors(enc.tensors, enc.metadata);
    const savedA = values(a2);
    const savedB = b2.toArray() as number[][];

    const a3 = param(savedA);
    const b3 = param(savedB);
    const o3 = make(a3, b3);
    o3.paramGroups[0].lr = 999; // must be overwritten by the load
    o3.loadStateDict(decodeOptimizerState(safetensorsToTensors(bytes)));
    assert.deepEqual(
      o3.paramGroups.map((g) => g.lr),
      o1.paramGroups.map((g) => g.lr),
    );
    for (let k = 3; k < 6; k++) stepWith(o3, a3, b3, k);
    assert.deepEqual(values(a3), values(a1), `${name}: first parameter`);
    assert.deepEqual(values(b3), values(b1), `${name}: second parameter`);
  });
}

test("stateDict layout: state by parameter index, groups with hyper-parameters and indices", () => {
  const a = param([1, 2, 3]);
  const b = param([4]);
  const c = param([5, 6]);
  const opt = new Adam([{ params: [a, b] }, { params: [c], lr: 0.5 }], { lr: 0.1 });
  a.grad = tensor([1, 1, 1], F64);
  c.grad = tensor([1, 1], F64);
  opt.step();
  const sd = opt.stateDict();
  assert.deepEqual(Object.keys(sd.state).sort(), ["0", "2"]);
  assert.equal(sd.state["0"].step, 1);
  assert.ok(sd.state["2"].expAvg instanceof Tensor);
  assert.deepEqual((sd.state["2"].expAvg as Tensor).shape, [2]);
  assert.deepEqual(sd.paramGroups[0], {
    lr: 0.1,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
    amsgrad: false,
    maximize: false,
    params: [0, 1],
  });
  assert.deepEqual(sd.paramGroups[1].params, [2]);
  assert.equal(sd.paramGroups[1].lr, 0.5);
  // the snapshot is not affected by later steps
  const before = values(sd.state["0"].expAvg as Tensor);
  opt.step();
  assert.deepEqual(values(sd.state["0"].expAvg as Tensor), before);
  // and mutating the returned hyper-parameters does not touch the optimizer
  (sd.paramGroups[0].betas as number[])[0] = 0;
  assert.deepEqual(opt.paramGroups[0].betas, [0.9, 0.999]);
});

test("loading state casts to the parameter dtype and copies (no aliasing with the source)", () => {
  const a = param([1, 2]);
  const o1 = new SGD([a], { lr: 0.1, momentum: 0.9 });
  a.grad = tensor([1, 1], F64);
  o1.step();
  const sd = o1.stateDict();
  const b = tensor([1, 2], { requiresGrad: true });
  const o2 = new SGD([b], { lr: 0.1, momentum: 0.9 });
  o2.loadStateDict(sd);
  const buf = o2.state.get(b)!.momentumBuffer as Tensor;
  assert.equal(buf.dtype, "float32");
  assert.notEqual(buf, sd.state["0"].momentumBuffer);
});

test("loadStateDict rejects mismatches with clear errors and leaves the optimizer unchanged", () => {
  const make = () => {
    const a = param([1, 2, 3]);
    const b = param([4, 5]);
    const o = new Adam([{ params: [a] }, { params: [b] }], { lr: 0.1 });
    a.grad = tensor([1, 1, 1], F64);
    b.grad = tensor([1, 1], F64);
    o.step();
    return o;
  };
  const sd = make().stateDict();

  const one = new Adam([param([1, 2, 3]), param([4, 5])], { lr: 0.1 });
  assert.throws(
    () => one.loadStateDict(sd),
    /Adam.loadStateDict: the state dict has 2 parameter groups, the optimizer has 1/,
  );

  const three = new Adam([{ params: [param([1, 2, 3]), param([0])] }, { params: [param([4, 5])] }]);
  assert.throws(
    () => three.loadStateDict(sd),
    /group 0 of the state dict has 1 parameters, the optimizer's group 0 has 2/,
  );

  const shapes = new Adam([{ params: [param([1, 2, 3])] }, { params: [param([4, 5, 6])] }]);
  assert.throws(
    () => shapes.loadStateDict(sd),
    (e: unknown) =>
      e instanceof ShapeError &&
      /state 1.expAvg has shape \[2\], its parameter has shape \[3\]/.test(e.message),
  );
  assert.equal(shapes.state.size, 0);
  assert.equal(shapes.paramGroups[0].lr, 1e-3);

  const sgd = new SGD([{ params: [param([1, 2, 3])] }, { params: [param([4, 5])] }]);
  assert.throws(() => sgd.loadStateDict(sd), /unknown entry "step"|has no hyper-parameter/);

  const missing = make();
  const bad = missing.stateDict();
  delete bad.state["0"].expAvgSq;
  assert.throws(() => missing.loadStateDict(bad), /state of parameter 0 has no "expAvgSq"/);
  const badIndex = make().stateDict();
  badIndex.state["7"] = badIndex.state["0"];
  assert.throws(() => make().loadStateDict(badIndex), /state entry "7" does not name a parameter/);
});
