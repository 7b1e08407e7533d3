/**
 * Sequential fuses a Linear or Conv2d followed by ReLU, Tanh or Sigmoid into one bias + activation kernel. The
 * fused model must give exactly the outputs and gradients of the same modules called one by one, use the fused
 * kernel forward and backward, and step aside when a hook would observe the intermediate tensor.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../../src/backend/backend.ts";
import { getBackend, setBackend } from "../../src/backend/registry.ts";
import { manualSeed, nn, randn, type Tensor } from "../../src/index.ts";

const { Conv2d, Flatten, Linear, ReLU, Sequential, Sigmoid, Tanh } = nn;

/**
 * Run f with the current backend wrapped to count calls of the fused kernels: biasAct, actGrad, and conv2d with
 * an activation in its epilogue (convAct).
 */
function counting<T>(f: () => T): { result: T; biasAct: number; actGrad: number; convAct: number } {
  const base = getBackend();
  const n = { biasAct: 0, actGrad: 0, convAct: 0 };
  const spy: Backend = {
    ...base,
    conv2d(x, w, out, shape, p, ep) {
      if (ep?.act) n.convAct++;
      base.conv2d(x, w, out, shape, p, ep);
    },
    biasAct(...a) {
      n.biasAct++;
      base.biasAct(...a);
    },
    actGrad(...a) {
      n.actGrad++;
      base.actGrad(...a);
    },
  };
  setBackend(spy);
  try {
    return { result: f(), ...n };
  } finally {
    setBackend(base);
  }
}

function build() {
  manualSeed(7);
  return new Sequential(
    new Conv2d(2, 3, 3, { padding: 1 }),
    new ReLU(),
    new Flatten(),
    new Linear(3 * 5 * 5, 6),
    new Tanh(),
    new Linear(6, 4),
    new Sigmoid(),
  );
}

/** Loss and parameter gradients, either through Sequential.call or calling each module in turn. */
function run(model: nn.Sequential, x: Tensor, fused: boolean): { y: number[]; grads: number[][] } {
  let y = x;
  if (fused) y = model.call(x);
  else for (const m of model) y = m.call(y);
  for (const p of model.parameters()) p.grad = null;
  y.square().sum().backward();
  return { y: [...y.dataSync()], grads: model.parameters().map((p) => [...p.grad!.dataSync()]) };
}

test("Sequential fuses layer + activation pairs: same outputs and gradients, fused kernels both ways", () => {
  const model = build();
  const x = randn([2, 2, 5, 5]);
  const plain = counting(() => run(model, x, false));
  const fused = counting(() => run(model, x, true));
  assert.equal(plain.biasAct + plain.convAct, 0);
  assert.equal(fused.convAct, 1, "the conv + relu pair runs in the convolution's epilogue");
  assert.equal(fused.biasAct, 2, "the two linear + activation pairs run as biasAct");
  assert.equal(fused.actGrad, 3, "each fused pair's backward is one actGrad kernel");
  assert.deepEqual(fused.result.y, plain.result.y);
  assert.deepEqual(fused.result.grads, plain.result.grads);
});

test("Sequential does not fuse past a hook, a subclass, or a layer without a following activation", () => {
  const model = build();
  const x = randn([2, 2, 5, 5]);
  const seen: number[][] = [];
  const h = model.at(1).registerForwardHook((_m, args) => seen.push([...(args[0] as Tensor).shape]));
  const hooked = counting(() => model.call(x));
  assert.equal(hooked.convAct, 0, "the hooked ReLU runs alone");
  assert.equal(hooked.biasAct, 2, "the other two pairs still fuse");
  assert.deepEqual(seen, [[2, 3, 5, 5]], "the hook saw the conv output");
  h.remove();

  class MyReLU extends ReLU {
    override forward(t: Tensor): Tensor {
      return t.relu().mul(2);
    }
  }
  const sub = new Sequential(new Linear(3, 2), new MyReLU());
  const y = counting(() => sub.call(randn([4, 3])));
  assert.equal(y.biasAct, 0, "a subclass of ReLU may compute something else: not fused");

  const tail = counting(() => new Sequential(new ReLU(), new Linear(3, 2)).call(randn([4, 3])));
  assert.equal(tail.biasAct, 0);
});

test("Sequential runs Conv2d, ReLU, unpadded MaxPool2d as relu(maxPool(conv)): same outputs and gradients", () => {
  manualSeed(11);
  const { MaxPool2d } = nn;
  const model = new Sequential(
    new Conv2d(2, 4, 3, { padding: 1, dtype: "float64" }),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(4, 3, 3, { dtype: "float64" }),
    new ReLU(),
    new MaxPool2d(2, { stride: 1 }), // overlapping windows
    new Conv2d(3, 2, 1, { dtype: "float64" }),
    new ReLU(),
    new MaxPool2d(2, { padding: 1 }), // padded: a window may hold only padding, so run as written
  );
  // shifted so that many windows are all negative (zero gradient) and many mix signs
  const x = randn([3, 2, 9, 9], { dtype: "float64" }).sub(0.3);
  const pooledInputs: number[] = [];
  const base = getBackend();
  setBackend({
    ...base,
    maxPool2d(v, out, shape, p) {
      pooledInputs.push(Math.min(...(v.data as Float64Array).subarray(v.offset, v.offset + shape[0] * 8)));
      base.maxPool2d(v, out, shape, p);
    },
  });
  let plain: { y: number[]; grads: number[][] };
  let fused: { y: number[]; grads: number[][] };
  try {
    plain = run(model, x, false);
    pooledInputs.length = 0;
    fused = run(model, x, true);
  } finally {
    setBackend(base);
  }
  assert.ok(pooledInputs[0] < 0 && pooledInputs[1] < 0, "the unpadded pools see the pre-activations");
  assert.ok(pooledInputs[2] >= 0, "the padded pool sees relu's output");
  assert.ok(plain.y.some((v) => v === 0) && plain.y.some((v) => v > 0));
  assert.deepEqual(fused.y, plain.y);
  assert.deepEqual(fused.grads, plain.grads);
  assert.ok(fused.grads[0].some((v) => v !== 0));
});

test("biasActivation and linear check their arguments", () => {
  const x = randn([2, 3]);
  assert.throws(() => nn.biasActivation(x, randn([2]), "relu"), /biasActivation: bias must have shape \[3\]/);
  assert.throws(
    () => nn.biasActivation(x, null, "gelu" as "relu"),
    /activation must be one of relu, tanh, sigmoid/,
  );
  assert.throws(() => nn.biasActivation(x, randn([3]), "relu", 2), /dim 2 is out of range/);
  assert.throws(() => nn.linear(x, randn([4, 2])), /linear: expected input \[\.\.\., 2\]/);
});
