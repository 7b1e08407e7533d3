/**
 * DataLoader: batch shapes and contents, dropLast and the last partial batch, every example once per epoch,
 * seeded shuffling (same seed same batches, different seed different order, epochs differ), the default
 * collate on datasets without getBatch, and custom collate functions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DataLoader, defaultCollate } from "../../src/data/dataloader.ts";
import { randomSplit, TensorDataset } from "../../src/data/dataset.ts";
import { arange, Generator, manualSeed, tensor } from "../../src/index.ts";
import type { Tensor } from "../../src/index.ts";

const N = 10;
// row i of x is [i, 100 + i, 200 + i]; y[i] = i: batches can be checked against the labels
const x = arange(0, N, 1, { dtype: "float32" })
  .reshape([N, 1])
  .add(tensor([[0, 100, 200]]));
const y = arange(0, N, 1, { dtype: "int32" });
const ds = new TensorDataset(x, y);

function labelsOf(loader: Iterable<Tensor[]>): number[][] {
  return Array.from(loader, ([, yb]) => yb.toArray() as number[]);
}

test("sequential batches: shapes, contents, last partial batch, length", () => {
  const loader = new DataLoader(ds, { batchSize: 4 });
  assert.equal(loader.length, 3);
  const batches = Array.from(loader);
  assert.equal(batches.length, 3);
  assert.deepEqual(
    batches.map(([xb]) => xb.shape),
    [
      [4, 3],
      [4, 3],
      [2, 3],
    ],
  );
  assert.deepEqual(labelsOf(loader), [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9],
  ]);
  const [xb, yb] = batches[2];
  assert.deepEqual(xb.toArray(), [
    [8, 108, 208],
    [9, 109, 209],
  ]);
  assert.equal(yb.dtype, "int32");
  assert.equal(xb.dtype, "float32");
});

test("dropLast drops the partial batch; exact multiples keep every batch", () => {
  const loader = new DataLoader(ds, { batchSize: 4, dropLast: true });
  assert.equal(loader.length, 2);
  assert.deepEqual(labelsOf(loader), [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
  ]);
  const exact = new DataLoader(ds, { batchSize: 5, dropLast: true });
  assert.equal(exact.length, 2);
  assert.equal(Array.from(exact).length, 2);
  const big = new DataLoader(ds, { batchSize: 16, dropLast: true });
  assert.equal(big.length, 0);
  assert.equal(Array.from(big).length, 0);
  const bigKeep = new DataLoader(ds, { batchSize: 16 });
  assert.deepEqual(labelsOf(bigKeep), [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
});

test("shuffled epochs see every example exactly once, rows stay paired with labels", () => {
  const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, generator: new Generator(1) });
  for (let epoch = 0; epoch < 3; epoch++) {
    const seen: number[] = [];
    for (const [xb, yb] of loader) {
      const rows = xb.toArray() as number[][];
      const labels = yb.toArray() as number[];
      rows.forEach((r, k) => {
        assert.deepEqual(r, [labels[k], 100 + labels[k], 200 + labels[k]]);
      });
      seen.push(...labels);
    }
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: N }, (_, i) => i),
    );
  }
});

test("seeded shuffling: same seed same batches, different seed different order, epochs differ", () => {
  const run = (seed: number, epochs: number) => {
    const loader = new DataLoader(ds, { batchSize: 4, shuffle: true, generator: new Generator(seed) });
    return Array.from({ length: epochs }, () => labelsOf(loader).flat());
  };
  const a = run(7, 3);
  const b = run(7, 3);
  assert.deepEqual(a, b);
  const c = run(8, 3);
  assert.notDeepEqual(c[0], a[0]);
  assert.notDeepEqual(a[0], a[1]);
  assert.notDeepEqual(a[1], a[2]);
  // shuffling does change the order
  assert.notDeepEqual(
    a[0],
    Array.from({ length: N }, (_, i) => i),
  );
});

test("without a generator, shuffling follows the global seed", () => {
  const loader = new DataLoader(ds, { batchSize: 10, shuffle: true });
  manualSeed(3);
  const first = labelsOf(loader);
  manualSeed(3);
  assert.deepEqual(labelsOf(loader), first);
});

test("the getBatch path and the collate path give the same batches", () => {
  // a plain Dataset (no getBatch) over the same rows goes through defaultCollate
  const plain = { length: N, get: (i: number) => ds.get(i) };
  const viaCollate = new DataLoader(plain, { batchSize: 4, shuffle: true, generator: new Generator(2) });
  const viaGather = new DataLoader(ds, { batchSize: 4, shuffle: true, generator: new Generator(2) });
  const p = Array.from(viaCollate);
  const q = Array.from(viaGather);
  assert.equal(p.length, q.length);
  p.forEach(([xa, ya], k) => {
    assert.deepEqual(xa.shape, q[k][0].shape);
    assert.deepEqual(xa.toArray(), q[k][0].toArray());
    assert.deepEqual(ya.toArray(), q[k][1].toArray());
    assert.equal(ya.dtype, "int32");
  });
});

test("loader over a randomSplit subset batches through the parent's getBatch", () => {
  const [train, val] = randomSplit(ds, [0.7, 0.3], new Generator(0));
  const seen: number[] = [];
  for (const [xb, yb] of new DataLoader(train, { batchSize: 3 })) {
    assert.equal(xb.shape[1], 3);
    seen.push(...(yb.toArray() as number[]));
  }
  assert.deepEqual(seen, Array.from(train.indices));
  assert.equal(new DataLoader(val, { batchSize: 2 }).length, 2);
});

test("defaultCollate: tensors stacked, numbers to int32/float32, booleans, tuples and objects", () => {
  const batch = defaultCollate([
    { img: tensor([1, 2]), label: 3, w: 0.5, ok: true },
    { img: tensor([3, 4]), label: 1, w: 2, ok: false },
  ]);
  assert.deepEqual(batch.img.toArray(), [
    [1, 2],
    [3, 4],
  ]);
  assert.equal(batch.label.dtype, "int32");
  assert.deepEqual(batch.label.toArray(), [3, 1]);
  assert.equal(batch.w.dtype, "float32");
  assert.deepEqual(batch.w.toArray(), [0.5, 2]);
  assert.equal(batch.ok.dtype, "bool");
  assert.deepEqual(batch.ok.toArray(), [true, false]);
  const pairs = defaultCollate([
    [tensor([[1]]), 0],
    [tensor([[2]]), 1],
  ] as [Tensor, number][]);
  assert.deepEqual(pairs[0].shape, [2, 1, 1]);
  assert.deepEqual(pairs[1].toArray(), [0, 1]);
  assert.throws(() => defaultCollate([1, tensor(2)]), /example 0 is number but example 1 is tensor/);
  assert.throws(() => defaultCollate([tensor([1, 2]), tensor([1])]), /same shape/);
  assert.throws(() => defaultCollate(["a", "b"]), /cannot collate string/);
});

test("custom collate and options validation", () => {
  const squares = { length: 7, get: (i: number) => i * i };
  const loader = new DataLoader(squares, {
    batchSize: 3,
    collate: (xs: number[]) => xs.reduce((a, b) => a + b, 0),
  });
  assert.deepEqual(Array.from(loader), [0 + 1 + 4, 9 + 16 + 25, 36]);
  assert.throws(() => new DataLoader(squares, { batchSize: 0 }), /batchSize must be a positive integer/);
  assert.throws(() => new DataLoader(squares, { batchSize: 2.5 }), RangeError);
  // a custom collate on a TensorDataset receives the single examples
  const sizes = new DataLoader(ds, { batchSize: 4, collate: (ex: Tensor[][]) => ex.length });
  assert.deepEqual(Array.from(sizes), [4, 4, 2]);
});
