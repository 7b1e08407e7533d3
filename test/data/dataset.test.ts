/**
 * Datasets: TensorDataset indexing, batching and shape errors; Subset; randomSplit sizes, disjointness,
 * coverage and seeding.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hasGetBatch, randomSplit, Subset, splitLengths, TensorDataset } from "../../src/data/dataset.ts";
import { arange, Generator, ShapeError, tensor } from "../../src/index.ts";

const x = arange(0, 20, 1, { dtype: "float32" }).reshape([10, 2]); // row i = [2i, 2i + 1]
const y = arange(0, 10, 1, { dtype: "int32" });

test("TensorDataset: length, get returns row i of each tensor", () => {
  const ds = new TensorDataset(x, y);
  assert.equal(ds.length, 10);
  const [xi, yi] = ds.get(3);
  assert.deepEqual(xi.shape, [2]);
  assert.deepEqual(xi.toArray(), [6, 7]);
  assert.deepEqual(yi.shape, []);
  assert.equal(yi.item(), 3);
  assert.equal(yi.dtype, "int32");
  assert.throws(() => ds.get(10), RangeError);
  assert.throws(() => ds.get(-1), RangeError);
  assert.throws(() => ds.get(1.5), RangeError);
});

test("TensorDataset: getBatch gathers rows in the given order", () => {
  const ds = new TensorDataset(x, y);
  assert.ok(hasGetBatch(ds));
  const [xb, yb] = ds.getBatch(new Int32Array([4, 0, 9]));
  assert.deepEqual(xb.shape, [3, 2]);
  assert.deepEqual(xb.toArray(), [
    [8, 9],
    [0, 1],
    [18, 19],
  ]);
  assert.deepEqual(yb.toArray(), [4, 0, 9]);
  assert.throws(() => ds.getBatch(new Int32Array([10])), /out of range/);
});

test("TensorDataset: clear errors for mismatched first dims, 0-d tensors and no tensors", () => {
  assert.throws(
    () => new TensorDataset(x, arange(0, 9, 1, { dtype: "int32" })),
    (e: Error) =>
      e instanceof ShapeError &&
      /share their first dim/.test(e.message) &&
      e.message.includes("[10, 2]") &&
      e.message.includes("[9]"),
  );
  assert.throws(
    () => new TensorDataset(tensor(3)),
    (e: Error) => e instanceof ShapeError && /0-d/.test(e.message),
  );
  assert.throws(() => new TensorDataset(), ShapeError);
});

test("Subset: maps indices, validates them, forwards getBatch", () => {
  const ds = new TensorDataset(x, y);
  const sub = new Subset(ds, [7, 2, 5]);
  assert.equal(sub.length, 3);
  assert.equal(sub.get(0)[1].item(), 7);
  assert.equal(sub.get(2)[1].item(), 5);
  assert.ok(hasGetBatch(sub));
  const [xb, yb] = sub.getBatch!(new Int32Array([2, 0])) as ReturnType<typeof ds.getBatch>;
  assert.deepEqual(yb.toArray(), [5, 7]);
  assert.deepEqual(xb.toArray(), [
    [10, 11],
    [14, 15],
  ]);
  assert.throws(() => new Subset(ds, [10]), RangeError);
  assert.throws(() => sub.get(3), RangeError);
  // a dataset without getBatch: the Subset has none either
  const plain = new Subset({ length: 5, get: (i: number) => i * i }, [1, 3]);
  assert.equal(hasGetBatch(plain), false);
  assert.equal(plain.get(1), 9);
});

test("splitLengths: exact lengths, fractions with remainder handed out in order, errors", () => {
  assert.deepEqual(splitLengths(10, [7, 3]), [7, 3]);
  assert.deepEqual(splitLengths(10, [0.8, 0.2]), [8, 2]);
  // floor(3.33) * 3 = 9, the remaining 1 goes to the first split
  assert.deepEqual(splitLengths(10, [1 / 3, 1 / 3, 1 / 3]), [4, 3, 3]);
  assert.deepEqual(splitLengths(11, [0.5, 0.5]), [6, 5]);
  assert.throws(() => splitLengths(10, [5, 4]), /summing to the dataset length 10/);
  assert.throws(() => splitLengths(10, [0.5, 0.6]), RangeError);
  assert.throws(() => splitLengths(10, []), RangeError);
});

test("randomSplit: sizes, disjoint, covering, seeded", () => {
  const n = 103;
  const ds = { length: n, get: (i: number) => i };
  const parts = randomSplit(ds, [0.7, 0.2, 0.1], new Generator(5));
  assert.deepEqual(
    parts.map((p) => p.length),
    [73, 20, 10],
  );
  const seen = new Set<number>();
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      const v = p.get(i);
      assert.ok(!seen.has(v), `example ${v} appears in two splits`);
      seen.add(v);
    }
  }
  assert.equal(seen.size, n);
  const again = randomSplit(ds, [0.7, 0.2, 0.1], new Generator(5));
  assert.deepEqual(again[0].indices, parts[0].indices);
  const other = randomSplit(ds, [0.7, 0.2, 0.1], new Generator(6));
  assert.notDeepEqual(other[0].indices, parts[0].indices);
  // not the identity order
  assert.notDeepEqual(
    Array.from(parts[0].indices),
    Array.from({ length: 73 }, (_, i) => i),
  );
  const [a, b] = randomSplit(ds, [100, 3], new Generator(1));
  assert.equal(a.length, 100);
  assert.equal(b.length, 3);
});
