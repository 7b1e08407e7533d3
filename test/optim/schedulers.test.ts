/**
 * Learning-rate schedules: each sequence of getLastLr() (from construction on, as PyTorch) against its closed
 * form, and OneCycleLR, SequentialLR, CosineAnnealingLR and ReduceLROnPlateau also against sequences produced
 * once by PyTorch 1.13 (torch.optim.lr_scheduler) and pasted as literals.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tensor } from "../../src/ops/creation.ts";
import { Adam } from "../../src/optim/adam.ts";
import { OneCycleLR } from "../../src/optim/one-cycle.ts";
import { ReduceLROnPlateau } from "../../src/optim/plateau.ts";
import {
  CosineAnnealingLR,
  ExponentialLR,
  LambdaLR,
  LinearLR,
  type LRScheduler,
  MultiStepLR,
  SequentialLR,
  StepLR,
  warmupCosine,
} from "../../src/optim/scheduler.ts";
import { SGD } from "../../src/optim/sgd.ts";
import { assertClose, param } from "./helpers.ts";

function sgd(lr = 0.1, momentum = 0.9): SGD {
  return new SGD([param([0])], { lr, momentum });
}

/** getLastLr()[group] at epochs 0..n-1, stepping the optimizer then the scheduler, as a training loop does. */
function sequence(
  opt: SGD | Adam,
  sched: { getLastLr(): number[]; step(): void },
  n: number,
  group = 0,
): number[] {
  const out: number[] = [];
  for (let e = 0; e < n; e++) {
    out.push(sched.getLastLr()[group]);
    assert.equal(opt.paramGroups[group].lr, sched.getLastLr()[group], "the group lr is the scheduler's");
    opt.step();
    sched.step();
  }
  return out;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test("StepLR: lr = base * gamma^floor(e / stepSize)", () => {
  const opt = sgd(0.5);
  const s = new StepLR(opt, { stepSize: 3, gamma: 0.5 });
  assertClose(
    sequence(opt, s, 10),
    range(10).map((e) => 0.5 * 0.5 ** Math.floor(e / 3)),
    1e-15,
  );
});

test("MultiStepLR: lr = base * gamma^(milestones passed)", () => {
  const opt = sgd(1);
  const s = new MultiStepLR(opt, { milestones: [5, 2, 7], gamma: 0.1 });
  const n = (e: number) => [2, 5, 7].filter((m) => m <= e).length;
  assertClose(
    sequence(opt, s, 10),
    range(10).map((e) => 0.1 ** n(e)),
    1e-15,
  );
});

test("ExponentialLR: lr = base * gamma^e", () => {
  const opt = sgd(0.2);
  const s = new ExponentialLR(opt, { gamma: 0.9 });
  assertClose(
    sequence(opt, s, 8),
    range(8).map((e) => 0.2 * 0.9 ** e),
    1e-15,
  );
});

test("CosineAnnealingLR: closed form and PyTorch's values", () => {
  const opt = sgd(0.1);
  const s = new CosineAnnealingLR(opt, { tMax: 6, etaMin: 0.001 });
  const got = sequence(opt, s, 10);
  assertClose(
    got,
    range(10).map((e) => 0.001 + (0.099 * (1 + Math.cos((Math.PI * e) / 6))) / 2),
    1e-15,
  );
  // torch 1.13 CosineAnnealingLR(T_max=6, eta_min=0.001) from lr 0.1 (recursive form, so within rounding)
  const torch = [
    0.1, 0.09336825748732973, 0.07525000000000001, 0.0505, 0.025750000000000012, 0.007631742512670284, 0.001,
    0.007631742512670284, 0.025750000000000002, 0.05050000000000004,
  ];
  assertClose(got, torch, 1e-14);
});

test("LinearLR (linear warmup): factor from startFactor to endFactor over totalIters, then constant", () => {
  const opt = sgd(0.1);
  const s = new LinearLR(opt, { startFactor: 0.25, totalIters: 4 });
  assertClose(sequence(opt, s, 7), [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1], 1e-15);
  const opt2 = sgd(1);
  const d = new LinearLR(opt2, { startFactor: 1, endFactor: 0.5, totalIters: 2 });
  assertClose(sequence(opt2, d, 4), [1, 0.75, 0.5, 0.5], 1e-15);
  const opt3 = sgd(0.3);
  const def = new LinearLR(opt3); // PyTorch defaults: 1/3 -> 1 over 5
  assertClose(
    sequence(opt3, def, 6),
    range(6).map((e) => 0.3 * (1 / 3 + ((2 / 3) * Math.min(e, 5)) / 5)),
    1e-15,
  );
});

test("LambdaLR with one function per group", () => {
  const opt = new SGD([
    { params: [param([0])], lr: 1 },
    { params: [param([0])], lr: 0.5 },
  ]);
  const s = new LambdaLR(opt, { lrLambda: [(e) => 1 / (1 + e), (e) => 0.5 ** e] });
  const g0: number[] = [];
  const g1: number[] = [];
  for (let e = 0; e < 5; e++) {
    g0.push(s.getLastLr()[0]);
    g1.push(opt.paramGroups[1].lr);
    s.step();
  }
  assertClose(g0, [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5], 1e-15);
  assertClose(g1, [0.5, 0.25, 0.125, 0.0625, 0.03125], 1e-15);
  assert.throws(() => new LambdaLR(opt, { lrLambda: [(e) => e] }), /1 lambdas for 2 parameter groups/);
});

test("schedulers apply to every group with its own base lr; lrAt gives the schedule without stepping", () => {
  const opt = new SGD([
    { params: [param([0])], lr: 1 },
    { params: [param([0])], lr: 0.01 },
  ]);
  const s = new StepLR(opt, { stepSize: 2, gamma: 0.1 });
  assertClose(s.lrAt(5), [0.01, 0.0001], 1e-15);
  assert.equal(s.lastEpoch, 0);
  s.step();
  s.step();
  assertClose(s.getLastLr(), [0.1, 0.001], 1e-15);
  assertClose(
    opt.paramGroups.map((g) => g.lr),
    [0.1, 0.001],
    1e-15,
  );
  assert.deepEqual(
    opt.paramGroups.map((g) => g.initialLr),
    [1, 0.01],
  );
});

test("SequentialLR: linear warmup then cosine, as PyTorch", () => {
  const opt = sgd(0.1);
  const warm = new LinearLR(opt, { startFactor: 0.1, totalIters: 3 });
  const cos = new CosineAnnealingLR(opt, { tMax: 5, etaMin: 0.01 });
  const s = new SequentialLR(opt, { schedulers: [warm, cos], milestones: [3] });
  const got = sequence(opt, s, 12);
  // torch 1.13 SequentialLR([LinearLR(0.1, 3), CosineAnnealingLR(5, 0.01)], milestones=[3]) from lr 0.1
  const torch = [
    0.010000000000000002, 0.04, 0.07, 0.1, 0.09140576474687263, 0.06890576474687263, 0.04109423525312736,
    0.018594235253127367, 0.01, 0.018594235253127367, 0.04109423525312739, 0.06890576474687267,
  ];
  assertClose(got, torch, 1e-14);
  assert.equal(cos.lastEpoch, 9); // 12 steps, the last 9 of them in the cosine phase
  assertClose(cos.getLastLr(), s.getLastLr(), 0);
  assert.throws(
    () => new SequentialLR(opt, { schedulers: [warm, cos], milestones: [] }),
    /one milestone fewer/,
  );
});

test("warmupCosine: warmup to the base lr, cosine down to etaMin at totalIters", () => {
  const opt = sgd(0.2);
  const s = warmupCosine(opt, { warmupIters: 4, totalIters: 12, startFactor: 0.25, etaMin: 0.02 });
  const got = sequence(opt, s, 13);
  const expected = range(13).map((e) =>
    e < 4 ? 0.2 * (0.25 + (0.75 * e) / 4) : 0.02 + (0.18 * (1 + Math.cos((Math.PI * (e - 4)) / 8))) / 2,
  );
  assertClose(got, expected, 1e-15);
  assertClose([got[4], got[12]], [0.2, 0.02], 1e-15);
});

test("OneCycleLR (cos, two phases) matches PyTorch, lr and momentum", () => {
  const opt = sgd(0.1, 0.9);
  const s = new OneCycleLR(opt, { maxLr: 1, totalSteps: 10 });
  const lrs: number[] = [];
  const moms: number[] = [];
  for (let e = 0; e < 10; e++) {
    lrs.push(s.getLastLr()[0]);
    moms.push(opt.paramGroups[0].momentum);
    opt.step();
    if (e < 9) s.step();
  }
  // torch 1.13 OneCycleLR(max_lr=1.0, total_steps=10) on SGD(momentum=0.9)
  const torchLr = [
    0.040000000000000036, 0.52, 1.0, 0.9504846320134737, 0.8117456539497631, 0.6112620219362893,
    0.38874197806371075, 0.18825834605023697, 0.049519367986526286, 4e-6,
  ];
  const torchMom = [
    0.95, 0.8999999999999999, 0.85, 0.854951556604879, 0.8688255099070633, 0.8888739533021842,
    0.9111260466978157, 0.9311744900929366, 0.945048443395121, 0.95,
  ];
  assertClose(lrs, torchLr, 1e-14);
  assertClose(moms, torchMom, 1e-14);
  // stepping exactly totalSteps times is allowed, once more is an error (as PyTorch)
  s.step();
  assert.throws(() => s.step(), /OneCycleLR: tried to step 11 times, the schedule has totalSteps = 10/);
});

test("OneCycleLR three phases with linear annealing matches PyTorch", () => {
  const opt = sgd(0.1, 0.9);
  const s = new OneCycleLR(opt, {
    maxLr: 1,
    totalSteps: 10,
    threePhase: true,
    annealStrategy: "linear",
    pctStart: 0.25,
  });
  const lrs: number[] = [];
  const moms: number[] = [];
  for (let e = 0; e < 10; e++) {
    lrs.push(s.getLastLr()[0]);
    moms.push(opt.paramGroups[0].momentum);
    s.step();
  }
  const torchLr = [
    0.04, 0.6799999999999999, 0.68, 0.040000000000000036, 0.033334, 0.026668, 0.020002, 0.013336,
    0.006669999999999995, 3.9999999999970615e-6,
  ];
  const torchMom = [0.95, 0.8833333333333333, 0.8833333333333333, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95];
  assertClose(lrs, torchLr, 1e-14);
  assertClose(moms, torchMom, 1e-14);
});

test("OneCycleLR on Adam cycles beta1 and keeps beta2", () => {
  const opt = new Adam([param([0])], { lr: 0.1 });
  const s = new OneCycleLR(opt, { maxLr: 0.5, epochs: 2, stepsPerEpoch: 4 });
  const lrs: number[] = [];
  const b1: number[] = [];
  for (let e = 0; e < 8; e++) {
    lrs.push(opt.paramGroups[0].lr);
    b1.push(opt.paramGroups[0].betas[0]);
    assert.equal(opt.paramGroups[0].betas[1], 0.999);
    s.step();
  }
  // torch 1.13 OneCycleLR(max_lr=0.5, total_steps=8) on Adam(lr=0.1)
  const torchLr = [
    0.020000000000000018, 0.409637552446096, 0.4859708886937616, 0.4058728269748815, 0.2779920070613508,
    0.14153049910434962, 0.0383207969171282, 2e-6,
  ];
  const torchB1 = [
    0.95, 0.8688255099070633, 0.8528058334845816, 0.8688255099070633, 0.8944017761948346, 0.9216941869558779,
    0.9423362099614142, 0.95,
  ];
  assertClose(lrs, torchLr, 1e-14);
  assertClose(b1, torchB1, 1e-14);
});

test("OneCycleLR without momentum cycling leaves momentum alone; options are checked", () => {
  const opt = sgd(0.1, 0.5);
  const s = new OneCycleLR(opt, {
    maxLr: [2],
    totalSteps: 4,
    cycleMomentum: false,
    divFactor: 10,
    finalDivFactor: 100,
  });
  assertClose(s.getLastLr(), [0.2], 1e-15);
  assert.equal(opt.paramGroups[0].momentum, 0.5);
  assertClose(s.lrAt(4 - 1), [0.002], 1e-15);
  assert.throws(() => new OneCycleLR(opt, { maxLr: 1 }), /give totalSteps, or epochs and stepsPerEpoch/);
  assert.throws(
    () => new OneCycleLR(opt, { maxLr: [1, 2], totalSteps: 5 }),
    /maxLr has 2 values for 1 parameter groups/,
  );
});

function plateauRun(sched: ReduceLROnPlateau, opt: SGD, metrics: number[]): number[] {
  return metrics.map((m) => {
    sched.step(m);
    return opt.paramGroups[0].lr;
  });
}

test("ReduceLROnPlateau: patience, relative threshold, cooldown and minLr as PyTorch", () => {
  const opt = new SGD([param([0])], { lr: 1 });
  const s = new ReduceLROnPlateau(opt, {
    mode: "min",
    factor: 0.5,
    patience: 2,
    cooldown: 1,
    threshold: 0.1,
    thresholdMode: "rel",
    minLr: 0.1,
  });
  const metrics = [10, 9, 8.5, 8.4, 8.3, 8.2, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5];
  const got = plateauRun(s, opt, metrics);
  // first 16 values from torch 1.13 ReduceLROnPlateau with the same options
  const torch = [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125];
  assert.deepEqual(got.slice(0, 16), torch);
  // then reductions continue every patience + 1 + cooldown = 4 epochs, never below minLr
  assert.deepEqual(got.slice(16), [0.125, 0.1, 0.1, 0.1, 0.1]);
  assert.equal(s.best, 5);
  assert.deepEqual(s.getLastLr(), [0.1]);
});

test("ReduceLROnPlateau: mode max with an absolute threshold, patience 0", () => {
  const opt = new SGD([param([0])], { lr: 1 });
  const s = new ReduceLROnPlateau(opt, {
    mode: "max",
    factor: 0.1,
    patience: 0,
    threshold: 0.5,
    thresholdMode: "abs",
  });
  const got = plateauRun(s, opt, [1, 2, 2.4, 2.6, 3.2, 3.0, 3.5]);
  // torch 1.13 with the same options
  assertClose(got, [1.0, 1.0, 0.1, 0.1, 0.1, 0.010000000000000002, 0.0010000000000000002], 1e-15);
  assert.throws(() => new ReduceLROnPlateau(opt, { factor: 1 }), /invalid factor 1/);
});

test("ReduceLROnPlateau accepts a scalar tensor metric and round-trips its counters", () => {
  const opt = new SGD([param([0])], { lr: 1 });
  const s = new ReduceLROnPlateau(opt, { patience: 1 });
  s.step(tensor(3));
  s.step(tensor(4));
  const sd = s.stateDict();
  assert.deepEqual(sd, { best: 3, numBadEpochs: 1, cooldownCounter: 0, lastEpoch: 2 });
  const s2 = new ReduceLROnPlateau(opt, { patience: 1 });
  s2.loadStateDict(sd);
  s2.step(5);
  assertClose([opt.paramGroups[0].lr], [0.1], 1e-15);
});

test("scheduler stateDict round trip resumes the schedule", () => {
  const opt = sgd(1);
  const s: LRScheduler = new ExponentialLR(opt, { gamma: 0.5 });
  s.step();
  s.step();
  const sd = JSON.parse(JSON.stringify(s.stateDict()));
  const opt2 = sgd(1);
  const s2 = new ExponentialLR(opt2, { gamma: 0.5 });
  s2.loadStateDict(sd);
  s2.step();
  assertClose(s2.getLastLr(), [0.125], 1e-15);
  assert.equal(s2.lastEpoch, 3);
});
