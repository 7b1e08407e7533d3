/**
 * multinomial (torch.multinomial): the sampled frequencies follow the weights (chi-square statistics at fixed
 * seeds, with generous bounds), draws without replacement are distinct and skip zero weights, a seeded Generator
 * repeats its draws, and the errors PyTorch raises.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as cr from "../src/index.ts";
import { AutodiffError, type Tensor } from "../src/index.ts";

function ints(t: Tensor): number[] {
  return Array.from(t.dataSync(), Number);
}

/** Pearson's chi-square statistic of observed counts against expected probabilities (n draws). */
function chiSquare(counts: number[], probs: number[], n: number): number {
  return counts.reduce((s, c, i) => s + (c - n * probs[i]) ** 2 / (n * probs[i]), 0);
}

function countsOf(xs: number[], k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const x of xs) c[x]++;
  return c;
}

// The 99.99th percentile of chi-square with d degrees of freedom is about 18.5 (d = 3), 21.1 (d = 4); the bounds
// below (30) fail by chance with probability below 1e-5 at any seed, while a wrong distribution (one weight off
// by 10%) gives statistics in the hundreds at these sample sizes.
const BOUND = 30;

describe("multinomial", () => {
  test("with replacement: frequencies follow unnormalised weights (chi-square)", () => {
    const w = [1, 2, 3, 4];
    const n = 40000;
    const g = new cr.Generator(7);
    const s = cr.multinomial(cr.tensor(w), n, { replacement: true, generator: g });
    assert.equal(s.dtype, "int32");
    assert.deepEqual(s.shape, [n]);
    const p = w.map((v) => v / 10);
    const chi = chiSquare(countsOf(ints(s), 4), p, n);
    assert.ok(chi < BOUND, `chi-square ${chi}`);
    // and the test has power: against weights off by 10% the statistic is far above the bound
    const off = [0.1, 0.2, 0.33, 0.37];
    assert.ok(chiSquare(countsOf(ints(s), 4), off, n) > 5 * BOUND);
  });

  test("2-d: each row follows its own weights; zero weights are never drawn", () => {
    const w = [
      [0, 5, 0, 5, 10],
      [1, 1, 1, 1, 0],
    ];
    const n = 20000;
    const s = cr.multinomial(cr.tensor(w, { dtype: "float64" }), n, {
      replacement: true,
      generator: new cr.Generator(11),
    });
    assert.deepEqual(s.shape, [2, n]);
    const v = ints(s);
    const r0 = countsOf(v.slice(0, n), 5);
    const r1 = countsOf(v.slice(n), 5);
    assert.equal(r0[0] + r0[2], 0);
    assert.equal(r1[4], 0);
    assert.ok(chiSquare([r0[1], r0[3], r0[4]], [0.25, 0.25, 0.5], n) < BOUND);
    assert.ok(chiSquare(r1.slice(0, 4), [0.25, 0.25, 0.25, 0.25], n) < BOUND);
  });

  test("without replacement: distinct categories, never a zero weight, first and second draws' laws", () => {
    const w = [0.5, 0, 0.3, 0.2];
    const rows = 20000;
    const probs = cr.tensor(w, { dtype: "float64" }).unsqueeze(0).expand(rows, 4).contiguous();
    const s = ints(cr.multinomial(probs, 3, { generator: new cr.Generator(3) }));
    const first: number[] = [];
    const second: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = s.slice(3 * r, 3 * r + 3);
      assert.equal(new Set(row).size, 3, `row ${r}: ${row}`);
      assert.ok(!row.includes(1), `row ${r} drew the zero-weight category: ${row}`);
      first.push(row[0]);
      second.push(row[1]);
    }
    // the first draw follows the weights; the second the weights renormalised without the first:
    // P(second = j) = sum_{i != j} p_i p_j / (1 - p_i)
    const p = [0.5, 0.3, 0.2];
    const f = countsOf(first, 4);
    assert.ok(chiSquare([f[0], f[2], f[3]], p, rows) < BOUND);
    const p2 = p.map((pj, j) => p.reduce((acc, pi, i) => (i === j ? acc : acc + (pi * pj) / (1 - pi)), 0));
    const sc = countsOf(second, 4);
    assert.ok(chiSquare([sc[0], sc[2], sc[3]], p2, rows) < BOUND, `second draw ${sc} vs ${p2}`);
  });

  test("as many samples as non-zero categories: a permutation of them", () => {
    const s = ints(cr.multinomial(cr.tensor([0, 3, 1, 0, 2]), 3, { generator: new cr.Generator(5) }));
    assert.deepEqual([...s].sort(), [1, 2, 4]);
  });

  test("a seeded Generator repeats its draws; the global generator follows manualSeed", () => {
    const w = cr.tensor([[1, 2, 3, 4, 5, 6]]);
    const a = ints(cr.multinomial(w, 4, { generator: new cr.Generator(42) }));
    const b = ints(cr.multinomial(w, 4, { generator: new cr.Generator(42) }));
    assert.deepEqual(a, b);
    const g = new cr.Generator(42);
    cr.multinomial(w, 4, { generator: g });
    const many = (gen: cr.Generator) => ints(cr.multinomial(w, 50, { replacement: true, generator: gen }));
    assert.notDeepEqual(many(g), many(new cr.Generator(42)));
    cr.manualSeed(9);
    const c = ints(cr.multinomial(w, 50, { replacement: true }));
    cr.manualSeed(9);
    assert.deepEqual(ints(cr.multinomial(w, 50, { replacement: true })), c);
  });

  test("errors as PyTorch's", () => {
    const ok = cr.tensor([1, 2, 3]);
    assert.throws(() => cr.multinomial(cr.ones([2, 2, 2]), 1), /prob_dist must be 1 or 2 dim/);
    assert.throws(() => cr.multinomial(cr.tensor([1, -1, 2]), 1), /inf, nan or element < 0/);
    assert.throws(() => cr.multinomial(cr.tensor([1, Number.NaN]), 1), /inf, nan or element < 0/);
    assert.throws(
      () => cr.multinomial(cr.tensor([1, Number.POSITIVE_INFINITY]), 1),
      /inf, nan or element < 0/,
    );
    assert.throws(
      () =>
        cr.multinomial(
          cr.tensor([
            [1, 1],
            [0, 0],
          ]),
          1,
        ),
      /sum of probabilities <= 0\) in row 1/,
    );
    assert.throws(
      () => cr.multinomial(ok, 4),
      /cannot sample numSamples > prob_dist.size\(-1\) samples without replacement/,
    );
    assert.throws(
      () => cr.multinomial(cr.tensor([1, 0, 2]), 3),
      /not enough non-negative category to sample/,
    );
    assert.throws(() => cr.multinomial(ok, 0), /numSamples <= 0/);
    assert.throws(() => cr.multinomial(cr.tensor([1, 2], { dtype: "int32" }), 1), /expected a float tensor/);
    // with replacement, more samples than categories is fine
    assert.deepEqual(cr.multinomial(ok, 10, { replacement: true }).shape, [10]);
    // drawing while jit traces would freeze the samples into the program
    const f = cr.jit((p: Tensor) => cr.multinomial(p, 1).to("float32"));
    assert.throws(() => f(ok), AutodiffError);
  });

  test("not differentiable: the samples are int32 indices outside the gradient graph", () => {
    const p = cr.tensor([1, 2, 3], { requiresGrad: true });
    const s = cr.multinomial(p, 2);
    assert.equal(s.dtype, "int32");
    assert.equal(s.requiresGrad, false);
  });
});
