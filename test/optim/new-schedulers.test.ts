/**
 * ConstantLR, PolynomialLR, CosineAnnealingWarmRestarts and CyclicLR against PyTorch 1.13: each group's lr (and
 * momentum, for CyclicLR) at every epoch, over enough epochs to cover restarts and cycles, for every option;
 * fractional and interleaved epochs of CosineAnnealingWarmRestarts; Adam's beta1 cycling; state dicts; errors.
 *
 * TORCH was produced by this script (torch 1.13.0, /usr/bin/python3), output pasted as is:
 *
 *   import torch, json, warnings
 *   warnings.filterwarnings("ignore")
 *   from torch.optim import lr_scheduler as L
 *   def sgd(lr=0.1, momentum=0.9, groups=1):
 *       ps = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr * (i + 1)} for i in range(groups)]
 *       return torch.optim.SGD(ps, lr=lr, momentum=momentum)
 *   def seq(opt, s, n, mom=False):  # lr (and momentum) of every group at epochs 0..n-1
 *       out = []
 *       for _ in range(n):
 *           out.append([g["lr"] for g in opt.param_groups] + ([g["momentum"] for g in opt.param_groups] if mom else []))
 *           opt.step(); s.step()
 *       return out
 *   def make(cls, n, mom=False, opt=None, **kw):
 *       opt = opt or sgd()
 *       return seq(opt, cls(opt, **kw), n, mom)
 *   def cawr_fractional():
 *       opt = sgd(); s = L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001); out = []
 *       for epoch in range(7):
 *           for i in range(4):
 *               s.step(epoch + i / 4); out.append(opt.param_groups[0]["lr"])
 *       return out
 *   def cawr_interleaved():
 *       opt = sgd(); s = L.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=1); out = [opt.param_groups[0]["lr"]]
 *       for _ in range(5):
 *           s.step(); out.append(opt.param_groups[0]["lr"])
 *       s.step(7.5); out.append(opt.param_groups[0]["lr"])
 *       for _ in range(4):
 *           s.step(); out.append(opt.param_groups[0]["lr"])
 *       return out
 *   adam = lambda: torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5)
 *   cases = {
 *     "constant": make(L.ConstantLR, 8, factor=0.5, total_iters=4),
 *     "constant default": make(L.ConstantLR, 8),
 *     "poly": make(L.PolynomialLR, 10, total_iters=6, power=2.0),
 *     "poly default": make(L.PolynomialLR, 8),
 *     "poly sqrt": make(L.PolynomialLR, 6, total_iters=4, power=0.5),
 *     "cawr mult2": make(L.CosineAnnealingWarmRestarts, 25, T_0=3, T_mult=2, eta_min=0.01),
 *     "cawr mult1": make(L.CosineAnnealingWarmRestarts, 12, T_0=4),
 *     "cawr fractional": cawr_fractional(),
 *     "cawr interleaved": cawr_interleaved(),
 *     "cyclic triangular": make(L.CyclicLR, 20, mom=True, base_lr=0.01, max_lr=0.1, step_size_up=4),
 *     "cyclic triangular2": make(L.CyclicLR, 24, mom=True, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5,
 *                                mode="triangular2", base_momentum=0.7, max_momentum=0.95),
 *     "cyclic exp_range": make(L.CyclicLR, 15, mom=True, base_lr=0.01, max_lr=0.1, step_size_up=2, mode="exp_range", gamma=0.9),
 *     "cyclic groups": make(L.CyclicLR, 12, mom=True, opt=sgd(groups=2), base_lr=[0.01, 0.02], max_lr=[0.1, 0.3],
 *                           step_size_up=3, base_momentum=[0.8, 0.85], max_momentum=0.9),
 *     "cyclic scale_fn": make(L.CyclicLR, 12, mom=True, base_lr=0.01, max_lr=0.1, step_size_up=2, step_size_down=1,
 *                             scale_fn=lambda x: 0.5 ** x, scale_mode="iterations"),
 *     "cyclic adam no momentum": make(L.CyclicLR, 10, opt=adam(), base_lr=0.001, max_lr=0.01, step_size_up=3,
 *                                     cycle_momentum=False),
 *   }
 *   print(json.dumps(cases))
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Adam } from "../../src/optim/adam.ts";
import {
  ConstantLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  type LRScheduler,
  PolynomialLR,
  SequentialLR,
} from "../../src/optim/scheduler.ts";
import { SGD } from "../../src/optim/sgd.ts";
import { assertClose, param } from "./helpers.ts";

const TORCH: Record<string, number[][] | number[]> = {
  constant: [[0.05], [0.05], [0.05], [0.05], [0.1], [0.1], [0.1], [0.1]],
  "constant default": [
    [0.03333333333333333],
    [0.03333333333333333],
    [0.03333333333333333],
    [0.03333333333333333],
    [0.03333333333333333],
    [0.1],
    [0.1],
    [0.1],
  ],
  poly: [
    [0.1],
    [0.06944444444444446],
    [0.04444444444444447],
    [0.02500000000000001],
    [0.011111111111111117],
    [0.0027777777777777775],
    [0.0],
    [0.0],
    [0.0],
    [0.0],
  ],
  "poly default": [
    [0.1],
    [0.08000000000000002],
    [0.060000000000000005],
    [0.04000000000000001],
    [0.02],
    [0.0],
    [0.0],
    [0.0],
  ],
  "poly sqrt": [[0.1], [0.08660254037844387], [0.07071067811865475], [0.05], [0.0], [0.0]],
  "cawr mult2": [
    [0.1],
    [0.0775],
    [0.032500000000000015],
    [0.1],
    [0.09397114317029975],
    [0.0775],
    [0.05500000000000001],
    [0.032500000000000015],
    [0.01602885682970026],
    [0.1],
    [0.09846666218300808],
    [0.09397114317029975],
    [0.08681980515339464],
    [0.0775],
    [0.06664685702961344],
    [0.05500000000000001],
    [0.04335314297038658],
    [0.032500000000000015],
    [0.023180194846605363],
    [0.01602885682970026],
    [0.011533337816991932],
    [0.1],
    [0.09961501876182148],
    [0.09846666218300808],
    [0.0965745789630079],
  ],
  "cawr mult1": [
    [0.1],
    [0.08535533905932738],
    [0.05],
    [0.014644660940672627],
    [0.1],
    [0.08535533905932738],
    [0.05],
    [0.014644660940672627],
    [0.1],
    [0.08535533905932738],
    [0.05],
    [0.014644660940672627],
  ],
  "cawr fractional": [
    0.1, 0.0962320368593087, 0.0855017856687341, 0.06944282990207196, 0.0505, 0.03155717009792806,
    0.0154982143312659, 0.004767963140691307, 0.1, 0.09904887137995991, 0.0962320368593087, 0.091657745808976,
    0.0855017856687341, 0.07800072653447031, 0.06944282990207196, 0.06015697093979836, 0.0505,
    0.04084302906020166, 0.03155717009792806, 0.022999273465529706, 0.0154982143312659, 0.009342254191024007,
    0.004767963140691307, 0.0019511286200400938, 0.1, 0.09976164397027375, 0.09904887137995991,
    0.09786854661874435,
  ],
  "cawr interleaved": [
    0.1, 0.07500000000000001, 0.025000000000000012, 0.1, 0.07500000000000001, 0.025000000000000012, 0.05,
    0.006698729810778065, 0.09330127018922195, 0.05, 0.006698729810778065,
  ],
  "cyclic triangular": [
    [0.01, 0.9],
    [0.0325, 0.875],
    [0.05500000000000001, 0.8500000000000001],
    [0.0775, 0.8250000000000001],
    [0.1, 0.8],
    [0.0775, 0.8250000000000001],
    [0.05500000000000001, 0.8500000000000001],
    [0.0325, 0.875],
    [0.01, 0.9],
    [0.0325, 0.875],
    [0.05500000000000001, 0.8500000000000001],
    [0.0775, 0.8250000000000001],
    [0.1, 0.8],
    [0.0775, 0.8250000000000001],
    [0.05500000000000001, 0.8500000000000001],
    [0.0325, 0.875],
    [0.01, 0.9],
    [0.0325, 0.875],
    [0.05500000000000001, 0.8500000000000001],
    [0.0775, 0.8250000000000001],
  ],
  "cyclic triangular2": [
    [0.01, 0.95],
    [0.04, 0.8666666666666666],
    [0.07, 0.7833333333333333],
    [0.1, 0.7],
    [0.082, 0.75],
    [0.064, 0.7999999999999999],
    [0.046000000000000006, 0.85],
    [0.028000000000000004, 0.8999999999999999],
    [0.01, 0.95],
    [0.025, 0.9083333333333333],
    [0.04, 0.8666666666666666],
    [0.05500000000000001, 0.825],
    [0.046000000000000006, 0.85],
    [0.037000000000000005, 0.875],
    [0.028000000000000004, 0.8999999999999999],
    [0.019000000000000003, 0.9249999999999999],
    [0.01, 0.95],
    [0.0175, 0.9291666666666666],
    [0.025, 0.9083333333333333],
    [0.0325, 0.8875],
    [0.028000000000000004, 0.8999999999999999],
    [0.0235, 0.9125],
    [0.019000000000000003, 0.9249999999999999],
    [0.0145, 0.9375],
  ],
  "cyclic exp_range": [
    [0.01, 0.9],
    [0.05050000000000001, 0.855],
    [0.0829, 0.8190000000000001],
    [0.04280500000000001, 0.86355],
    [0.01, 0.9],
    [0.03657205000000001, 0.8704755000000001],
    [0.05782969000000001, 0.8468559],
    [0.03152336050000001, 0.8760851550000001],
    [0.01, 0.9],
    [0.027433922005000007, 0.88062897555],
    [0.041381059609000015, 0.86513215599],
    [0.024121476824050005, 0.8843094701955],
    [0.01, 0.9],
    [0.021438396227480505, 0.887290670858355],
    [0.030589113209464912, 0.877123207545039],
  ],
  "cyclic groups": [
    [0.01, 0.02, 0.9, 0.9],
    [0.040000000000000015, 0.11333333333333337, 0.8666666666666667, 0.8833333333333333],
    [0.06999999999999999, 0.2066666666666666, 0.8333333333333334, 0.8666666666666667],
    [0.1, 0.3, 0.8, 0.85],
    [0.07000000000000003, 0.20666666666666672, 0.8333333333333334, 0.8666666666666667],
    [0.03999999999999998, 0.11333333333333324, 0.8666666666666667, 0.8833333333333333],
    [0.01, 0.02, 0.9, 0.9],
    [0.040000000000000056, 0.1133333333333335, 0.8666666666666666, 0.8833333333333333],
    [0.06999999999999995, 0.20666666666666647, 0.8333333333333335, 0.8666666666666667],
    [0.1, 0.3, 0.8, 0.85],
    [0.06999999999999995, 0.20666666666666647, 0.8333333333333335, 0.8666666666666667],
    [0.040000000000000056, 0.1133333333333335, 0.8666666666666666, 0.8833333333333333],
  ],
  "cyclic scale_fn": [
    [0.01, 0.9],
    [0.0325, 0.875],
    [0.0325, 0.875],
    [0.01, 0.9],
    [0.012812499999999998, 0.896875],
    [0.012812499999999998, 0.896875],
    [0.01, 0.9],
    [0.0103515625, 0.899609375],
    [0.0103515625, 0.899609375],
    [0.01, 0.9],
    [0.0100439453125, 0.8999511718750001],
    [0.0100439453125, 0.8999511718750001],
  ],
  "cyclic adam no momentum": [
    [0.001],
    [0.004000000000000002],
    [0.006999999999999999],
    [0.010000000000000002],
    [0.007000000000000004],
    [0.003999999999999998],
    [0.001],
    [0.004000000000000005],
    [0.006999999999999996],
    [0.010000000000000002],
  ],
};

/** SGD with `groups` groups, group i at lr * (i + 1), as the script's sgd(). */
function sgd(lr = 0.1, momentum = 0.9, groups = 1): SGD {
  return new SGD(
    Array.from({ length: groups }, (_, i) => ({ params: [param([0])], lr: lr * (i + 1) })),
    { lr, momentum },
  );
}

/** lr (and momentum) of every group at epochs 0..n-1, stepping the optimizer then the scheduler. */
function seq(opt: SGD | Adam, s: LRScheduler, n: number, mom = false): number[][] {
  const out: number[][] = [];
  for (let e = 0; e < n; e++) {
    const lrs = opt.paramGroups.map((g) => g.lr);
    assert.deepEqual(s.getLastLr(), lrs, "getLastLr is what the groups hold");
    out.push(mom ? [...lrs, ...opt.paramGroups.map((g) => g.momentum as number)] : lrs);
    opt.step();
    s.step();
  }
  return out;
}

function assertRows(got: number[][], want: number[][], what: string, tol = 1e-14): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((row, k) => {
    assertClose(row, want[k], tol, `${what} epoch ${k}`);
  });
}

const rows = (name: string) => TORCH[name] as number[][];

test("ConstantLR: factor until totalIters, then the base lr (PyTorch's values)", () => {
  let opt = sgd();
  assertRows(seq(opt, new ConstantLR(opt, { factor: 0.5, totalIters: 4 }), 8), rows("constant"), "constant");
  opt = sgd();
  assertRows(seq(opt, new ConstantLR(opt), 8), rows("constant default"), "constant default");
});

test("PolynomialLR: (1 - e / totalIters)^power, then zero (PyTorch's values)", () => {
  let opt = sgd();
  assertRows(seq(opt, new PolynomialLR(opt, { totalIters: 6, power: 2 }), 10), rows("poly"), "poly");
  opt = sgd();
  assertRows(seq(opt, new PolynomialLR(opt), 8), rows("poly default"), "poly default");
  opt = sgd();
  assertRows(
    seq(opt, new PolynomialLR(opt, { totalIters: 4, power: 0.5 }), 6),
    rows("poly sqrt"),
    "poly sqrt",
  );
});

test("CosineAnnealingWarmRestarts: periods 3, 6, 12 (tMult 2) and 4, 4, 4 (PyTorch's values)", () => {
  let opt = sgd();
  const s = new CosineAnnealingWarmRestarts(opt, { t0: 3, tMult: 2, etaMin: 0.01 });
  assertRows(seq(opt, s, 25), rows("cawr mult2"), "cawr mult2");
  assert.equal(s.tI, 24); // epoch 25 lies in the fourth period (21..44)
  // the closed form agrees with the stepped schedule, restarts included
  assertClose(
    [3, 8, 9, 20, 21].map((e) => s.lrAt(e)[0]),
    [3, 8, 9, 20, 21].map((e) => rows("cawr mult2")[e][0]),
    1e-14,
  );
  opt = sgd();
  assertRows(seq(opt, new CosineAnnealingWarmRestarts(opt, { t0: 4 }), 12), rows("cawr mult1"), "cawr mult1");
});

test("CosineAnnealingWarmRestarts: fractional epochs (step per batch) and interleaved step()/step(epoch)", () => {
  let opt = sgd();
  let s = new CosineAnnealingWarmRestarts(opt, { t0: 2, tMult: 2, etaMin: 0.001 });
  const frac: number[] = [];
  for (let epoch = 0; epoch < 7; epoch++) {
    for (let i = 0; i < 4; i++) {
      s.step(epoch + i / 4);
      frac.push(opt.paramGroups[0].lr);
    }
  }
  assertClose(frac, TORCH["cawr fractional"] as number[], 1e-14, "fractional");
  assert.equal(s.lastEpoch, 6);

  opt = sgd();
  s = new CosineAnnealingWarmRestarts(opt, { t0: 3 });
  const inter = [opt.paramGroups[0].lr];
  for (let k = 0; k < 5; k++) {
    s.step();
    inter.push(opt.paramGroups[0].lr);
  }
  s.step(7.5);
  inter.push(opt.paramGroups[0].lr);
  assert.equal(s.lastEpoch, 7);
  for (let k = 0; k < 4; k++) {
    s.step();
    inter.push(opt.paramGroups[0].lr);
  }
  assertClose(inter, TORCH["cawr interleaved"] as number[], 1e-14, "interleaved");
  assert.throws(() => s.step(-1), /CosineAnnealingWarmRestarts.step: invalid epoch -1/);
});

test("CyclicLR triangular / triangular2 / exp_range with momentum cycling (PyTorch's values)", () => {
  let opt = sgd();
  let s: LRScheduler = new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 4 });
  assertRows(seq(opt, s, 20, true), rows("cyclic triangular"), "triangular");
  opt = sgd();
  s = new CyclicLR(opt, {
    baseLr: 0.01,
    maxLr: 0.1,
    stepSizeUp: 3,
    stepSizeDown: 5,
    mode: "triangular2",
    baseMomentum: 0.7,
    maxMomentum: 0.95,
  });
  assertRows(seq(opt, s, 24, true), rows("cyclic triangular2"), "triangular2");
  opt = sgd();
  s = new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 2, mode: "exp_range", gamma: 0.9 });
  assertRows(seq(opt, s, 15, true), rows("cyclic exp_range"), "exp_range");
});

test("CyclicLR per-group boundaries, custom scaleFn over iterations, and no momentum cycling on Adam", () => {
  let opt = sgd(0.1, 0.9, 2);
  let s: LRScheduler = new CyclicLR(opt, {
    baseLr: [0.01, 0.02],
    maxLr: [0.1, 0.3],
    stepSizeUp: 3,
    baseMomentum: [0.8, 0.85],
    maxMomentum: 0.9,
  });
  assertRows(seq(opt, s, 12, true), rows("cyclic groups"), "groups");
  opt = sgd();
  s = new CyclicLR(opt, {
    baseLr: 0.01,
    maxLr: 0.1,
    stepSizeUp: 2,
    stepSizeDown: 1,
    scaleFn: (x) => 0.5 ** x,
    scaleMode: "iterations",
  });
  assertRows(seq(opt, s, 12, true), rows("cyclic scale_fn"), "scale_fn");
  const adam = new Adam([param([0])], { lr: 0.5 });
  s = new CyclicLR(adam, { baseLr: 0.001, maxLr: 0.01, stepSizeUp: 3, cycleMomentum: false });
  assertRows(seq(adam, s, 10), rows("cyclic adam no momentum"), "adam");
  assert.deepEqual(adam.paramGroups[0].betas, [0.9, 0.999]);
});

test("CyclicLR cycles Adam's beta1 like momentum (PyTorch 2 behaviour), keeping beta2", () => {
  const adam = new Adam([param([0])], { lr: 0.5, betas: [0.5, 0.99] });
  const s = new CyclicLR(adam, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 4 });
  const want = rows("cyclic triangular"); // same boundaries and momenta as the SGD run
  for (let e = 0; e < 12; e++) {
    assertClose([adam.paramGroups[0].lr, (adam.paramGroups[0].betas as number[])[0]], want[e], 1e-14);
    assert.equal((adam.paramGroups[0].betas as number[])[1], 0.99);
    s.step();
  }
});

test("state dicts: a restored scheduler continues the same sequence", () => {
  const makers: Array<(o: SGD) => LRScheduler> = [
    (o) => new CosineAnnealingWarmRestarts(o, { t0: 3, tMult: 2, etaMin: 0.01 }),
    (o) => new CyclicLR(o, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 3, mode: "triangular2" }),
    (o) => new PolynomialLR(o, { totalIters: 6, power: 2 }),
    (o) => new ConstantLR(o, { factor: 0.5, totalIters: 4 }),
  ];
  for (const make of makers) {
    const o1 = sgd();
    const s1 = make(o1);
    const full = seq(o1, s1, 14, true);
    const o2 = sgd();
    const s2 = make(o2);
    seq(o2, s2, 7, true);
    const saved = { opt: o2.stateDict(), sched: s2.stateDict() };
    const o3 = sgd();
    const s3 = make(o3);
    o3.loadStateDict(saved.opt);
    s3.loadStateDict(saved.sched);
    assertRows(seq(o3, s3, 7, true), full.slice(7), "resumed", 0);
  }
});

test("SequentialLR: ConstantLR warmup then CosineAnnealingWarmRestarts", () => {
  const opt = sgd();
  const warm = new ConstantLR(opt, { factor: 0.1, totalIters: 2 });
  const cos = new CosineAnnealingWarmRestarts(opt, { t0: 3 });
  const s = new SequentialLR(opt, { schedulers: [warm, cos], milestones: [2] });
  const got = seq(opt, s, 8).map((r) => r[0]);
  const c = (t: number) => (0.1 * (1 + Math.cos((Math.PI * t) / 3))) / 2;
  assertClose(got, [0.01, 0.01, c(0), c(1), c(2), c(0), c(1), c(2)], 1e-15);
});

test("bad options give clear errors", () => {
  const opt = sgd();
  assert.throws(
    () => new ConstantLR(opt, { factor: 1.5 }),
    /ConstantLR: invalid factor 1.5 \(expected a number in \[0, 1\]\)/,
  );
  assert.throws(() => new PolynomialLR(opt, { totalIters: 0 }), /PolynomialLR: invalid totalIters 0/);
  assert.throws(
    () => new CosineAnnealingWarmRestarts(opt, { t0: 2.5 }),
    /CosineAnnealingWarmRestarts: invalid t0 2.5 \(expected an integer > 0\)/,
  );
  assert.throws(
    () => new CosineAnnealingWarmRestarts(opt, { t0: 2, tMult: 0 }),
    /CosineAnnealingWarmRestarts: invalid tMult 0 \(expected an integer >= 1\)/,
  );
  assert.throws(
    () => new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, mode: "sawtooth" as "triangular" }),
    /CyclicLR: invalid mode "sawtooth"/,
  );
  assert.throws(
    () => new CyclicLR(sgd(0.1, 0.9, 2), { baseLr: [0.01], maxLr: 0.1 }),
    /CyclicLR: expected 2 values for baseLr \(one per group\), got 1/,
  );
  assert.throws(() => new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 0 }), /invalid stepSizeUp 0/);
  const noMomentum = { paramGroups: [{ lr: 0.1 }] };
  assert.throws(
    () => new CyclicLR(noMomentum, { baseLr: 0.01, maxLr: 0.1 }),
    /CyclicLR: cycleMomentum needs a "momentum" or "betas" hyper-parameter in group 0; pass cycleMomentum: false/,
  );
});
