/**
 * Integration: fit y = 3x + 2 with a linear model made of two tensors with requiresGrad (full-batch, seeded,
 * float32), with every optimizer, and with SGD under a OneCycleLR schedule and gradient clipping; the loss must
 * fall below a threshold and the parameters must approach (3, 2).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { manualSeed, randn, tensor } from "../../src/ops/creation.ts";
import { Adagrad } from "../../src/optim/adagrad.ts";
import { Adam, AdamW } from "../../src/optim/adam.ts";
import { clipGradNorm_ } from "../../src/optim/clip.ts";
import { OneCycleLR } from "../../src/optim/one-cycle.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { RMSprop } from "../../src/optim/rmsprop.ts";
import { SGD } from "../../src/optim/sgd.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

type Make = (params: Tensor[]) => Optimizer<{ lr: number }>;

interface Hooks {
  /** Between backward and the optimizer step (clipping). */
  beforeStep?: (params: Tensor[]) => void;
  /** After the optimizer step (schedulers). */
  afterStep?: () => void;
}

function fit(make: Make, steps = 300, hooks: Hooks = {}): { loss: number; w: number; b: number } {
  manualSeed(0);
  const x = randn([64, 1]);
  const y = x.mul(3).add(2);
  const w = randn([1, 1]).requiresGrad_();
  const b = tensor([0], { requiresGrad: true });
  const opt = make([w, b]);
  let loss = Number.POSITIVE_INFINITY;
  for (let i = 0; i < steps; i++) {
    opt.zeroGrad();
    const l = x.matmul(w).add(b).sub(y).square().mean();
    l.backward();
    hooks.beforeStep?.([w, b]);
    opt.step();
    hooks.afterStep?.();
    loss = l.item() as number;
  }
  return { loss, w: w.item() as number, b: b.item() as number };
}

const cases: Array<[string, Make, number]> = [
  ["SGD", (p) => new SGD(p, { lr: 0.1 }), 1e-6],
  ["SGD nesterov", (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true }), 1e-6],
  ["Adagrad", (p) => new Adagrad(p, { lr: 0.5 }), 1e-6],
  ["RMSprop", (p) => new RMSprop(p, { lr: 0.05 }), 1e-3],
  ["RMSprop centered momentum", (p) => new RMSprop(p, { lr: 0.01, centered: true, momentum: 0.5 }), 1e-6],
  ["Adam", (p) => new Adam(p, { lr: 0.05 }), 1e-6],
  ["Adam amsgrad", (p) => new Adam(p, { lr: 0.05, amsgrad: true }), 1e-6],
  ["AdamW", (p) => new AdamW(p, { lr: 0.05, weightDecay: 1e-3 }), 1e-4],
];

for (const [name, make, threshold] of cases) {
  test(`${name} fits y = 3x + 2`, () => {
    const r = fit(make);
    assert.ok(r.loss < threshold, `${name}: final loss ${r.loss} >= ${threshold}`);
    assert.ok(Math.abs(r.w - 3) < 0.05 && Math.abs(r.b - 2) < 0.05, `${name}: w ${r.w}, b ${r.b}`);
  });
}

test("SGD with momentum under OneCycleLR and gradient clipping fits y = 3x + 2", () => {
  let sched: OneCycleLR | null = null;
  const norms: number[] = [];
  const r = fit(
    (p) => {
      const opt = new SGD(p, { lr: 0.1, momentum: 0.9 });
      sched = new OneCycleLR(opt, { maxLr: 0.2, totalSteps: 200 });
      return opt;
    },
    200,
    {
      beforeStep: (params) => {
        norms.push(clipGradNorm_(params, 1));
      },
      afterStep: () => sched!.step(),
    },
  );
  assert.ok(r.loss < 1e-6, `final loss ${r.loss}`);
  assert.ok(norms[0] > 1, "the first gradients are large enough to be clipped");
  assert.equal(sched!.lastEpoch, 200);
});
