/**
 * Functional optimizers and the functional training step:
 * - each functional optimizer against its stateful twin, several steps in float64, with the learning rate (and
 *   the momentum a one-cycle schedule cycles) changed between steps: the same update rules, so agreement to
 *   ~1e-12 (the stateful classes are themselves checked against the equations and PyTorch in
 *   optimizers.test.ts);
 * - the bridges to a stateful optimizer (its state in and out, mid-run);
 * - makeTrainStep: the jitted step against its eager twin and against ordinary eager training (module,
 *   backward, stateful optimizer) on an MLP, a CNN, a model with BatchNorm and one with Dropout; one trace
 *   across steps and learning-rate changes; donation deletes the old state.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { jit } from "../../src/core/jit.ts";
import { manualSeed, ones, randn, tensor, zeros } from "../../src/ops/creation.ts";
import {
  BatchNorm1d,
  BatchNorm2d,
  Conv2d,
  Dropout,
  Flatten,
  functionalApply,
  Linear,
  loadModuleState,
  MaxPool2d,
  mseLoss,
  moduleState,
  ReLU,
  Sequential,
} from "../../src/nn/index.ts";
import type { Module } from "../../src/nn/module.ts";
import { Adagrad, Adam, AdamW, functional, makeTrainStep, RMSprop, SGD } from "../../src/optim/index.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, values } from "./helpers.ts";

type Stateful = Optimizer<{ lr: number }>;

interface Case {
  name: string;
  stateful: (ps: Tensor[]) => Stateful;
  fn: () => functional.FunctionalOptimizer;
  /** Also cycle this dynamic hyper-parameter between steps (set on the group as a schedule would). */
  cycle?: "momentum" | "beta1";
}

const CASES: Case[] = [
  { name: "SGD", stateful: (p) => new SGD(p, { lr: 0.1 }), fn: () => functional.sgd({ lr: 0.1 }) },
  {
    name: "SGD momentum + weight decay",
    stateful: (p) => new SGD(p, { lr: 0.05, momentum: 0.9, weightDecay: 0.01 }),
    fn: () => functional.sgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.01 }),
    cycle: "momentum",
  },
  {
    name: "SGD Nesterov, maximize",
    stateful: (p) => new SGD(p, { lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }),
    fn: () => functional.sgd({ lr: 0.05, momentum: 0.8, nesterov: true, maximize: true }),
  },
  {
    name: "SGD dampening (first buffer undamped)",
    stateful: (p) => new SGD(p, { lr: 0.05, momentum: 0.9, dampening: 0.3 }),
    fn: () => functional.sgd({ lr: 0.05, momentum: 0.9, dampening: 0.3 }),
  },
  {
    name: "Adam",
    stateful: (p) => new Adam(p, { lr: 0.01 }),
    fn: () => functional.adam({ lr: 0.01 }),
    cycle: "beta1",
  },
  {
    name: "Adam AMSGrad + L2",
    stateful: (p) => new Adam(p, { lr: 0.01, amsgrad: true, weightDecay: 0.1, betas: [0.8, 0.99] }),
    fn: () => functional.adam({ lr: 0.01, amsgrad: true, weightDecay: 0.1, betas: [0.8, 0.99] }),
  },
  {
    name: "AdamW",
    stateful: (p) => new AdamW(p, { lr: 0.01, weightDecay: 0.05 }),
    fn: () => functional.adamw({ lr: 0.01, weightDecay: 0.05 }),
    cycle: "beta1",
  },
  {
    name: "AdamW AMSGrad, maximize",
    stateful: (p) => new AdamW(p, { lr: 0.01, amsgrad: true, maximize: true }),
    fn: () => functional.adamw({ lr: 0.01, amsgrad: true, maximize: true }),
  },
  {
    name: "RMSprop",
    stateful: (p) => new RMSprop(p, { lr: 0.01 }),
    fn: () => functional.rmsprop({ lr: 0.01 }),
  },
  {
    name: "RMSprop centered + momentum + L2",
    stateful: (p) =>
      new RMSprop(p, { lr: 0.01, centered: true, momentum: 0.5, weightDecay: 0.1, alpha: 0.9 }),
    fn: () => functional.rmsprop({ lr: 0.01, centered: true, momentum: 0.5, weightDecay: 0.1, alpha: 0.9 }),
    cycle: "momentum",
  },
  {
    name: "Adagrad lrDecay + L2 + initial accumulator",
    stateful: (p) =>
      new Adagrad(p, { lr: 0.1, lrDecay: 0.05, weightDecay: 0.02, initialAccumulatorValue: 0.1 }),
    fn: () => functional.adagrad({ lr: 0.1, lrDecay: 0.05, weightDecay: 0.02, initialAccumulatorValue: 0.1 }),
  },
];

const STEPS = 6;
const F64 = { dtype: "float64" as const };

/** Gradients per step for parameters of shapes [3, 2] and [4] (seeded, so both sides see the same). */
function gradSequence(): Tensor[][] {
  manualSeed(11);
  return Array.from({ length: STEPS }, () => [randn([3, 2], F64), randn([4], F64)]);
}

/** The schedule of a case at step i: the lr, and the cycled value if any. */
function hyperAt(c: Case, i: number): Record<string, number> {
  const h: Record<string, number> = { lr: 0.01 * (1 + (i % 3)) };
  if (c.cycle !== undefined) h[c.cycle] = 0.85 + 0.02 * i;
  return h;
}

function setGroup(opt: Stateful, h: Record<string, number>): void {
  const g = opt.paramGroups[0] as unknown as Record<string, unknown>;
  g.lr = h.lr;
  if (h.momentum !== undefined) g.momentum = h.momentum;
  if (h.beta1 !== undefined) g.betas = [h.beta1, (g.betas as number[])[1]];
}

function initial(): Tensor[] {
  manualSeed(5);
  return [randn([3, 2], F64), randn([4], F64)];
}

describe("functional optimizers equal the stateful ones (float64)", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const grads = gradSequence();
      const ps = initial().map((t) => t.clone());
      for (const p of ps) p.requiresGrad = true;
      const opt = c.stateful(ps);
      const f = c.fn();
      let fp: Record<string, Tensor> = { a: initial()[0], b: initial()[1] };
      let st = f.init(fp);
      for (let i = 0; i < STEPS; i++) {
        const h = hyperAt(c, i);
        setGroup(opt, h);
        ps[0].grad = grads[i][0];
        ps[1].grad = grads[i][1];
        opt.step();
        [fp, st] = f.update({ a: grads[i][0], b: grads[i][1] }, st, fp, h);
        assertClose(values(fp.a), values(ps[0]), 1e-12, `${c.name} step ${i + 1} a`);
        assertClose(values(fp.b), values(ps[1]), 1e-12, `${c.name} step ${i + 1} b`);
      }
      assert.equal(st.step.item(), STEPS);
      // the moments too, through the bridge
      const mirror = functional.stateFromOptimizer(f, opt, { a: ps[0], b: ps[1] });
      for (const m of f.moments) {
        for (const k of ["a", "b"]) {
          const want = (mirror[m] as Record<string, Tensor>)[k];
          assertClose(values((st[m] as Record<string, Tensor>)[k]), values(want), 1e-12, `${m}.${k}`);
        }
      }
    });
  }

  test("jit(update) equals update, traces once across learning rates and betas", () => {
    const f = functional.adam({ lr: 0.01, amsgrad: true });
    const grads = gradSequence();
    const ju = jit(
      (g: Tensor[], s: functional.FunctionalState, p: Tensor[], lr: Tensor, beta1: Tensor) =>
        f.update(g, s, p, { lr, beta1 }),
      { donateArgnums: [1, 2] },
    );
    let pe = initial();
    let pj = initial();
    let se = f.init(pe);
    let sj = f.init(pj);
    for (let i = 0; i < STEPS; i++) {
      const lr = 0.001 * (i + 1);
      const b1 = 0.9 - 0.01 * i;
      [pe, se] = f.update(grads[i], se, pe, { lr, beta1: b1 });
      [pj, sj] = ju(grads[i], sj, pj, tensor(lr, F64), tensor(b1, F64));
    }
    assert.equal(ju.traceCount, 1);
    for (let k = 0; k < 2; k++) assertClose(values(pj[k]), values(pe[k]), 1e-14, `param ${k}`);
    assert.equal(sj.step.item(), STEPS);
  });

  test("stateful -> functional -> stateful mid-run continues the same trajectory", () => {
    const grads = gradSequence();
    const run = (switchAt: number) => {
      const ps = initial().map((t) => t.clone());
      for (const p of ps) p.requiresGrad = true;
      const opt = new Adam(ps, { lr: 0.02, amsgrad: true });
      const named = { a: ps[0], b: ps[1] };
      const f = functional.fromOptimizer(opt);
      for (let i = 0; i < switchAt; i++) {
        ps[0].grad = grads[i][0];
        ps[1].grad = grads[i][1];
        opt.step();
      }
      let st = functional.stateFromOptimizer(f, opt, named);
      let fp: Record<string, Tensor> = { a: ps[0].detach().clone(), b: ps[1].detach().clone() };
      for (let i = switchAt; i < 4; i++) [fp, st] = f.update({ a: grads[i][0], b: grads[i][1] }, st, fp);
      functional.stateToOptimizer(f, st, opt, named);
      ps[0].detach().copy_(fp.a);
      ps[1].detach().copy_(fp.b);
      for (let i = 4; i < STEPS; i++) {
        ps[0].grad = grads[i][0];
        ps[1].grad = grads[i][1];
        opt.step();
      }
      return ps;
    };
    const eager = run(4);
    for (const k of [0, 2]) {
      const mixed = run(k);
      assertClose(values(mixed[0]), values(eager[0]), 1e-12, `switch at ${k}: a`);
      assertClose(values(mixed[1]), values(eager[1]), 1e-12, `switch at ${k}: b`);
    }
  });

  test("errors name the optimizer and the hyper-parameter", () => {
    assert.throws(() => functional.adam({ lr: -1 }), /Adam: invalid lr -1/);
    const f = functional.sgd({ lr: 0.1 });
    const p = { w: zeros([2]) };
    assert.throws(
      () => f.update({ w: zeros([2]) }, f.init(p), p, { eps: 1 }),
      /SGD.update: "eps" cannot change/,
    );
    assert.throws(() => f.update({ w: zeros([3]) }, f.init(p), p), /gradient of shape \[3\]/);
    assert.throws(
      () => functional.fromOptimizer(new SGD([{ params: [ones([1])] }, { params: [ones([1])] }])),
      /2 parameter groups/,
    );
  });
});

// ---- the training step ------------------------------------------------------------------------------------

/** Ordinary eager training: module call, backward, stateful optimizer. */
function eagerTrain(
  model: Module<[Tensor], Tensor>,
  opt: Stateful,
  batches: [Tensor, Tensor][],
  lrs: number[],
): number[] {
  const losses: number[] = [];
  batches.forEach(([x, y], i) => {
    opt.paramGroups[0].lr = lrs[i];
    opt.zeroGrad();
    const l = mseLoss(model.call(x), y);
    losses.push(l.item());
    l.backward();
    opt.step();
  });
  return losses;
}

interface ModelCase {
  name: string;
  build: () => Module<[Tensor], Tensor>;
  batch: () => [Tensor, Tensor];
}

const MODELS: ModelCase[] = [
  {
    name: "MLP",
    build: () => new Sequential(new Linear(6, 16, F64), new ReLU(), new Linear(16, 3, F64)),
    batch: () => [randn([8, 6], F64), randn([8, 3], F64)],
  },
  {
    name: "CNN",
    build: () =>
      new Sequential(
        new Conv2d(1, 4, 3, { padding: 1, dtype: "float64" }),
        new ReLU(),
        new MaxPool2d(2),
        new Flatten(),
        new Linear(4 * 4 * 4, 3, F64),
      ),
    batch: () => [randn([5, 1, 8, 8], F64), randn([5, 3], F64)],
  },
  {
    name: "BatchNorm (running statistics as state)",
    build: () =>
      new Sequential(
        new Conv2d(1, 3, 3, { padding: 1, dtype: "float64" }),
        new BatchNorm2d(3, F64),
        new ReLU(),
        new Flatten(),
        new Linear(3 * 4 * 4, 4, F64),
        new BatchNorm1d(4, { momentum: null, dtype: "float64" }),
        new Linear(4, 2, F64),
      ),
    batch: () => [randn([6, 1, 4, 4], F64), randn([6, 2], F64)],
  },
  {
    name: "Dropout (masks drawn outside the program)",
    build: () => new Sequential(new Linear(6, 16, F64), new ReLU(), new Dropout(0.3), new Linear(16, 3, F64)),
    batch: () => [randn([8, 6], F64), randn([8, 3], F64)],
  },
];

describe("makeTrainStep: jit(step) = eager step = eager training", () => {
  for (const mc of MODELS) {
    test(mc.name, () => {
      manualSeed(3);
      const batches = Array.from({ length: 5 }, () => mc.batch());
      const lrs = [0.01, 0.02, 0.005, 0.01, 0.015];
      const loss = (out: Tensor, y: Tensor) => mseLoss(out, y);
      // three copies of one initialisation
      manualSeed(7);
      const m1 = mc.build();
      const init = Object.fromEntries(Object.entries(m1.stateDict()).map(([k, v]) => [k, v.clone()]));
      const copy = () => {
        const m = mc.build();
        m.loadStateDict(init);
        return m;
      };
      const m2 = copy();
      const m3 = copy();
      // the same dropout stream for all three
      manualSeed(99);
      const ref = eagerTrain(m1, new Adam(m1.parameters(), { lr: 0.01, weightDecay: 0.01 }), batches, lrs);
      const f = functional.adam({ lr: 0.01, weightDecay: 0.01 });
      const stepE = makeTrainStep(m2, loss, f, { jit: false });
      const stepJ = makeTrainStep(m3, loss, f);
      let se = stepE.init();
      let sj = stepJ.init();
      const le: number[] = [];
      const lj: number[] = [];
      manualSeed(99);
      batches.forEach(([x, y], i) => {
        const [l, s] = stepE(se, x, y, { lr: lrs[i] });
        le.push(l.item());
        se = s;
      });
      manualSeed(99);
      batches.forEach(([x, y], i) => {
        const [l, s] = stepJ(sj, x, y, { lr: lrs[i] });
        lj.push(l.item());
        sj = s;
      });
      assert.equal(stepJ.traceCount, 1, "one trace across steps and learning rates");
      assertClose(le, ref, 1e-12, "eager twin losses vs eager training");
      assertClose(lj, le, 1e-12, "jit losses vs eager twin");
      loadModuleState(m3, sj);
      const want = m1.stateDict();
      const got = m3.stateDict();
      assert.deepEqual(Object.keys(got), Object.keys(want));
      for (const k of Object.keys(want)) assertClose(values(got[k]), values(want[k]), 1e-11, k);
      // the modules the steps ran on were not touched (the state is a copy)
      for (const [k, v] of Object.entries(m2.stateDict())) assertClose(values(v), values(init[k]), 0, k);
    });
  }

  test("donation: the old state is deleted; without donation it stays", () => {
    manualSeed(1);
    const net = new Sequential(new Linear(4, 3, F64), new BatchNorm1d(3, F64));
    const f = functional.sgd({ lr: 0.1, momentum: 0.9 });
    const step = makeTrainStep(net, mseLoss, f);
    const s0 = step.init();
    const x = randn([5, 4], F64);
    const y = randn([5, 3], F64);
    const [, s1] = step(s0, x, y);
    for (const t of [s0.params["0.weight"], s0.buffers["1.runningMean"], s0.opt.step]) {
      assert.throws(() => t.add(1), /donated/);
    }
    assert.ok(Number.isFinite(s1.params["0.weight"].sum().item()));
    const keep = makeTrainStep(net, mseLoss, f, { donate: false });
    const k0 = keep.init();
    keep(k0, x, y);
    assert.ok(Number.isFinite(k0.params["0.weight"].sum().item()));
  });

  test("eval mode is another program; lower shows one program for the whole step", () => {
    manualSeed(2);
    const net = new Sequential(new Linear(4, 3, F64), new Dropout(0.5), new BatchNorm1d(3, F64));
    const step = makeTrainStep(net, mseLoss, functional.adam({ lr: 0.01 }));
    let s = step.init();
    const x = randn([5, 4], F64);
    const y = randn([5, 3], F64);
    [, s] = step(s, x, y);
    [, s] = step(s, x, y, { lr: 0.5 });
    assert.equal(step.traceCount, 1);
    net.eval();
    const rm = values(s.buffers["2.runningMean"]);
    [, s] = step(s, x, y);
    assert.equal(step.traceCount, 2);
    // eval mode: BatchNorm uses and keeps its running statistics
    assertClose(values(s.buffers["2.runningMean"]), rm, 0, "running mean in eval mode");
    const prog = String(step.lower(s, x, y));
    assert.match(prog, /dot_general|matmul|dot/);
    assert.match(prog, /sqrt/);
  });

  test("functionalApply: a buffer update with no place to go is an error", () => {
    const net = new Sequential(new Linear(2, 2), new BatchNorm1d(2));
    const st = moduleState(net);
    assert.throws(() => functionalApply(net, { params: st.params }, [randn([4, 2])]), /not in state.buffers/);
    const [, nb] = functionalApply(net, st, [randn([4, 2])]);
    assert.equal(nb["1.numBatchesTracked"].item(), 1);
    // the module's own buffers are untouched
    assert.equal((net.children()[1] as BatchNorm1d).numBatchesTracked?.item(), 0);
    assert.throws(() => functionalApply(new Sequential(new Dropout(0.5)), {}, [ones([3])]), /mask 0/);
  });

  test("gradHook: called between backward and the update; doubled gradients equal a doubled learning rate", () => {
    const x = randn([6, 4], F64);
    const y = randn([6, 3], F64);
    for (const jit of [true, false]) {
      manualSeed(4);
      const net = new Sequential(new Linear(4, 3, F64), new BatchNorm1d(3, F64));
      const seen: string[][] = [];
      const hooked = makeTrainStep(net, mseLoss, functional.sgd({ lr: 0.05 }), {
        jit,
        gradHook: (g) => {
          seen.push(Object.keys(g));
          return Object.fromEntries(Object.entries(g).map(([k, t]) => [k, t.mul(2)]));
        },
      });
      const plain = makeTrainStep(net, mseLoss, functional.sgd({ lr: 0.1 }), { jit });
      let a = hooked.init();
      let b = plain.init();
      let la: Tensor | undefined;
      let lb: Tensor | undefined;
      for (let i = 0; i < 3; i++) {
        [la, a] = hooked(a, x, y);
        [lb, b] = plain(b, x, y);
        // the loss is computed before the update: both steps start from the same state
        assertClose(values(la), values(lb), 0, `loss at step ${i}`);
      }
      assert.deepEqual(
        seen,
        [0, 1, 2].map(() => ["0.weight", "0.bias", "1.weight", "1.bias"]),
      );
      for (const k of Object.keys(b.params)) assertClose(values(a.params[k]), values(b.params[k]), 0, k);
      for (const k of Object.keys(b.buffers)) assertClose(values(a.buffers[k]), values(b.buffers[k]), 0, k);
      // two programs, each traced once; no single program to lower
      assert.equal(hooked.traceCount, jit ? 2 : 0);
      assert.throws(() => hooked.lower(a, x, y), /lower needs \{ jit: true \} and no gradHook/);
      const bad = makeTrainStep(net, mseLoss, functional.sgd({ lr: 0.1 }), { jit, gradHook: () => ({}) });
      assert.throws(() => bad(bad.init(), x, y), /gradHook returned 0 gradients for 4 parameters/);
    }
  });

  test("makeTrainStep rejects unknown per-step hyper-parameters", () => {
    const net = new Linear(2, 1);
    const step = makeTrainStep(net, mseLoss, functional.adagrad());
    assert.throws(() => step(step.init(), ones([1, 2]), ones([1, 1]), { beta1: 0.9 }), /not a per-step/);
  });
});
