/**
 * Tests of BatchNorm1d/2d and LayerNorm values against hand computation: training normalises with the biased
 * batch variance and updates the running statistics with momentum and the unbiased variance; eval mode uses the
 * running statistics; momentum null is a cumulative average; LayerNorm normalises the trailing dims.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { noGrad, tensor, zeros } from "../../src/index.ts";
import { BatchNorm1d, BatchNorm2d, LayerNorm } from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };
const EPS = 1e-5;

function close(actual: readonly number[], expected: readonly number[], tol = 1e-9, what = "value"): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  expected.forEach((e, i) => {
    assert.ok(Math.abs(actual[i] - e) <= tol * (1 + Math.abs(e)), `${what}[${i}]: ${actual[i]} vs ${e}`);
  });
}

/** Per-column mean, biased and unbiased variance of a row-major [n, c] table. */
function columnStats(rows: number[][]): { mean: number[]; biased: number[]; unbiased: number[] } {
  const n = rows.length;
  const c = rows[0].length;
  const mean = Array.from({ length: c }, (_, j) => rows.reduce((s, r) => s + r[j], 0) / n);
  const ss = Array.from({ length: c }, (_, j) => rows.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0));
  return { mean, biased: ss.map((v) => v / n), unbiased: ss.map((v) => v / (n - 1)) };
}

test("BatchNorm1d training: batch statistics, running stats with momentum 0.1 and unbiased variance", () => {
  const bn = new BatchNorm1d(2, f64);
  const b1 = [
    [1, 10],
    [2, 20],
    [4, 0],
    [5, -10],
  ];
  const b2 = [
    [0, 1],
    [3, 2],
    [3, 4],
  ];
  const y1 = bn.call(tensor(b1, f64)).toArray() as number[][];
  const s1 = columnStats(b1);
  const expected = b1.map((r) => r.map((v, j) => (v - s1.mean[j]) / Math.sqrt(s1.biased[j] + EPS)));
  close(y1.flat(), expected.flat(), 1e-12, "output");
  // running = 0.9 * running + 0.1 * stat, from mean 0 and variance 1
  let rm = s1.mean.map((m) => 0.1 * m);
  let rv = s1.unbiased.map((v) => 0.9 + 0.1 * v);
  close(bn.runningMean!.toArray() as number[], rm, 1e-12, "runningMean");
  close(bn.runningVar!.toArray() as number[], rv, 1e-12, "runningVar");
  bn.call(tensor(b2, f64));
  const s2 = columnStats(b2);
  rm = rm.map((m, j) => 0.9 * m + 0.1 * s2.mean[j]);
  rv = rv.map((v, j) => 0.9 * v + 0.1 * s2.unbiased[j]);
  close(bn.runningMean!.toArray() as number[], rm, 1e-12, "runningMean after 2");
  close(bn.runningVar!.toArray() as number[], rv, 1e-12, "runningVar after 2");
  assert.equal(bn.numBatchesTracked!.item(), 2);

  // eval: the running statistics, and they no longer change
  bn.eval();
  const xe = [
    [1, 1],
    [-1, 3],
  ];
  const ye = bn.call(tensor(xe, f64)).toArray() as number[][];
  close(
    ye.flat(),
    xe.flatMap((r) => r.map((v, j) => (v - rm[j]) / Math.sqrt(rv[j] + EPS))),
    1e-12,
    "eval output",
  );
  close(bn.runningMean!.toArray() as number[], rm, 1e-12, "runningMean unchanged in eval");
  assert.equal(bn.numBatchesTracked!.item(), 2);
});

test("BatchNorm affine parameters scale and shift; 3-d input reduces over N and L", () => {
  const bn = new BatchNorm1d(2, f64);
  noGrad(() => {
    bn.weight!.copy_(tensor([2, 3], f64));
    bn.bias!.copy_(tensor([-1, 1], f64));
  });
  // [N=2, C=2, L=2]: channel 0 values 1, 3, 5, 7; channel 1 values 0, 0, 4, 4
  const x = tensor(
    [
      [
        [1, 3],
        [0, 0],
      ],
      [
        [5, 7],
        [4, 4],
      ],
    ],
    f64,
  );
  const y = bn.call(x).toArray() as number[][][];
  const n0 = (v: number) => (2 * (v - 4)) / Math.sqrt(5 + EPS) - 1; // mean 4, biased var 5
  const n1 = (v: number) => (3 * (v - 2)) / Math.sqrt(4 + EPS) + 1; // mean 2, biased var 4
  close(y.flat(2), [n0(1), n0(3), n1(0), n1(0), n0(5), n0(7), n1(4), n1(4)], 1e-12);
  close(bn.runningVar!.toArray() as number[], [0.9 + (0.1 * 20) / 3, 0.9 + (0.1 * 16) / 3], 1e-12);
});

test("BatchNorm2d statistics over N, H, W per channel", () => {
  const bn = new BatchNorm2d(2, { ...f64, momentum: 0.5 });
  // channel 0: 0..7, channel 1: all 3
  const data: number[][][][] = [
    [
      [
        [0, 1],
        [2, 3],
      ],
      [
        [3, 3],
        [3, 3],
      ],
    ],
    [
      [
        [4, 5],
        [6, 7],
      ],
      [
        [3, 3],
        [3, 3],
      ],
    ],
  ];
  const y = bn.call(tensor(data, f64)).toArray() as number[][][][];
  const sd0 = Math.sqrt(5.25 + EPS); // biased variance of 0..7 is 5.25
  close([y[0][0][0][0], y[1][0][1][1]], [-3.5 / sd0, 3.5 / sd0], 1e-12);
  close(y[0][1].flat(), [0, 0, 0, 0], 1e-12); // constant channel normalises to 0
  close(bn.runningMean!.toArray() as number[], [0.5 * 3.5, 0.5 * 3], 1e-12);
  close(bn.runningVar!.toArray() as number[], [0.5 + 0.5 * 6, 0.5], 1e-12); // unbiased var of 0..7 is 6
});

test("BatchNorm momentum null is a cumulative average; trackRunningStats false always uses the batch", () => {
  const bn = new BatchNorm1d(1, { ...f64, momentum: null });
  bn.call(tensor([[1], [3]], f64)); // mean 2, unbiased var 2
  bn.call(tensor([[10], [10], [16]], f64)); // mean 12, unbiased var 12
  close(bn.runningMean!.toArray() as number[], [7], 1e-12);
  close(bn.runningVar!.toArray() as number[], [7], 1e-12);

  const nt = new BatchNorm1d(1, { ...f64, trackRunningStats: false });
  assert.equal(nt.runningMean, null);
  assert.deepEqual(Object.keys(nt.stateDict()), ["weight", "bias"]);
  nt.eval();
  close((nt.call(tensor([[1], [3]], f64)).toArray() as number[][]).flat(), [
    -1 / Math.sqrt(1 + EPS),
    1 / Math.sqrt(1 + EPS),
  ]);

  const na = new BatchNorm2d(3, { affine: false });
  assert.equal(na.parameters().length, 0);
  bn.resetRunningStats();
  assert.deepEqual(bn.runningVar!.toArray(), [1]);
  assert.equal(bn.numBatchesTracked!.item(), 0);
});

test("BatchNorm errors: channels, rank, a single value per channel in training", () => {
  assert.throws(
    () => new BatchNorm1d(3).call(zeros([4, 2])),
    /BatchNorm1d: expected 3 channels \(dim 1\), got input \[4, 2\]/,
  );
  assert.throws(
    () => new BatchNorm2d(3).call(zeros([4, 3])),
    /BatchNorm2d: expected 4-d \[N, C, H, W\] input, got \[4, 3\]/,
  );
  assert.throws(() => new BatchNorm1d(3).call(zeros([1, 3])), /more than 1 value per channel when training/);
  // fine in eval mode
  assert.deepEqual(new BatchNorm1d(3).eval().call(zeros([1, 3])).shape, [1, 3]);
});

test("LayerNorm normalises the trailing dims with the biased variance, then scales and shifts", () => {
  const ln = new LayerNorm(4, f64);
  const y = ln.call(tensor([[1, 2, 3, 4]], f64)).toArray() as number[][];
  const sd = Math.sqrt(1.25 + EPS); // mean 2.5, biased variance 1.25
  close(y[0], [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd], 1e-12);

  const ln2 = new LayerNorm([2, 2], { ...f64, eps: 0 });
  noGrad(() => {
    ln2.weight!.copy_(
      tensor(
        [
          [1, 2],
          [3, 4],
        ],
        f64,
      ),
    );
    ln2.bias!.copy_(
      tensor(
        [
          [0, 0],
          [1, 1],
        ],
        f64,
      ),
    );
  });
  // each 2x2 sample: [[0, 2], [4, 6]]: mean 3, biased variance 5
  const x = tensor(
    [
      [
        [0, 2],
        [4, 6],
      ],
      [
        [1, 1],
        [1, 3],
      ],
    ],
    f64,
  );
  const out = ln2.call(x).toArray() as number[][][];
  const s = Math.sqrt(5);
  close(out[0].flat(), [(-3 / s) * 1, (-1 / s) * 2, (1 / s) * 3 + 1, (3 / s) * 4 + 1], 1e-12);
  // second sample: mean 1.5, biased variance 0.75
  const t = Math.sqrt(0.75);
  close(out[1].flat(), [(-0.5 / t) * 1, (-0.5 / t) * 2, (-0.5 / t) * 3 + 1, (1.5 / t) * 4 + 1], 1e-12);

  const plain = new LayerNorm(3, { elementwiseAffine: false });
  assert.equal(plain.parameters().length, 0);
  assert.equal(new LayerNorm(3, { bias: false }).parameters().length, 1);
  assert.throws(() => ln.call(zeros([2, 3])), /LayerNorm: expected input \[\.\.\., 4\], got \[2, 3\]/);
});
