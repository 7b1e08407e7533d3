/**
 * loadImageDataset: the digits split (shapes, dtypes, label range, 8,000 / 2,000, stratified, disjoint and
 * covering, seeded), Fashion-MNIST from the Debian package, an IDX directory written here, and the errors for
 * a missing MNIST directory and an unknown name.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  loadImageDataset,
  stratifiedSplit,
} from "../../src/data/datasets.ts";
import { loadDigits } from "../../src/data/digits.ts";
import { serializeIdx } from "../../src/io/idx.ts";
import { Generator } from "../../src/index.ts";
import type { Tensor } from "../../src/index.ts";

const tmp = mkdtempSync(join(tmpdir(), "chainrule-datasets-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function counts(labels: Tensor, k: number): number[] {
  const c = new Array(k).fill(0);
  for (const l of labels.dataSync()) c[l]++;
  return c;
}

const digits = loadImageDataset("digits");

test("digits: 8,000 train / 2,000 test of [1, 28, 28] float32 in [0, 1], int32 labels 0..9", () => {
  const { train, test: testSplit, classes } = digits;
  assert.deepEqual(train.images.shape, [8000, 1, 28, 28]);
  assert.deepEqual(testSplit.images.shape, [2000, 1, 28, 28]);
  assert.deepEqual(train.labels.shape, [8000]);
  assert.deepEqual(testSplit.labels.shape, [2000]);
  assert.equal(train.images.dtype, "float32");
  assert.equal(train.labels.dtype, "int32");
  assert.deepEqual(classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  for (const split of [train, testSplit]) {
    const px = split.images.dataSync();
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of px) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.equal(lo, 0);
    assert.equal(hi, 1);
    for (const l of split.labels.dataSync()) assert.ok(l >= 0 && l <= 9);
  }
});

test("digits: the split is stratified (20% of each class to test) and shuffled", () => {
  // class sizes in the package: [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]; 20% rounded by
  // largest remainder: floors 200 225 198 206 196 172 202 214 188 195 (1996) + 1 for classes 6, 8, 5, 9
  const testCounts = [200, 225, 198, 206, 196, 173, 203, 214, 189, 196];
  assert.deepEqual(counts(digits.test.labels, 10), testCounts);
  const all = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
  assert.deepEqual(
    counts(digits.train.labels, 10),
    all.map((n, k) => n - testCounts[k]),
  );
  // not sorted by class any more
  const first = Array.from(digits.train.labels.dataSync().subarray(0, 20));
  assert.ok(new Set(first).size > 3, `first training labels ${first} look sorted`);
});

test("digits: train and test are disjoint and together are the whole package", () => {
  const key = (px: ArrayLike<number>, k: number) => {
    let s = "";
    for (let p = 0; p < 784; p++) s += String.fromCharCode(Math.round(px[k * 784 + p] * 255));
    return s;
  };
  const src = loadDigits();
  const pool = new Map<string, number>();
  for (let k = 0; k < src.n; k++) {
    const s = key(src.images, k) + src.labels[k];
    pool.set(s, (pool.get(s) ?? 0) + 1);
  }
  for (const split of [digits.train, digits.test]) {
    const px = split.images.dataSync();
    const lb = split.labels.dataSync();
    for (let k = 0; k < lb.length; k++) {
      const s = key(px, k) + lb[k];
      const left = pool.get(s) ?? 0;
      assert.ok(left > 0, `example ${k} is not in the package, or appears twice`);
      pool.set(s, left - 1);
    }
  }
  assert.ok([...pool.values()].every((v) => v === 0));
});

test("digits: the split is seeded (same seed same split, other seed other split), maxTrain/maxTest", () => {
  const again = loadImageDataset("digits", { maxTrain: 100, maxTest: 50 });
  assert.deepEqual(again.train.images.shape, [100, 1, 28, 28]);
  assert.deepEqual(again.test.labels.shape, [50]);
  assert.deepEqual(again.train.labels.dataSync(), digits.train.labels.dataSync().subarray(0, 100));
  assert.deepEqual(again.train.images.dataSync(), digits.train.images.dataSync().subarray(0, 100 * 784));
  const other = loadImageDataset("digits", { seed: 1, maxTrain: 100 });
  assert.notDeepEqual(other.train.labels.dataSync(), again.train.labels.dataSync());
  assert.throws(() => loadImageDataset("digits", { maxTrain: -1 }), /maxTrain/);
});

test("stratifiedSplit: exact quotas on a small label set", () => {
  const labels = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 2, 2]);
  const { train, test: te } = stratifiedSplit(labels, 0.3, new Generator(0));
  // exact 1.5, 0.9, 0.6 -> floors 1, 0, 0, 3 in total: +1 to class 1 (0.9) and class 2 (0.6)
  assert.equal(te.length, 3);
  assert.deepEqual(Array.from(te, (i) => labels[i]).sort(), [0, 1, 2]);
  assert.deepEqual(
    [...train, ...te].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
});

const hasFashion = existsSync(FASHION_MNIST_DIR);

test("fashion-mnist: 60,000 / 10,000 images with 6,000 / 1,000 per class and the class names", {
  skip: hasFashion
    ? false
    : `${FASHION_MNIST_DIR} is absent: install the Debian package dataset-fashion-mnist`,
}, () => {
  const ds = loadImageDataset("fashion-mnist");
  assert.deepEqual(ds.train.images.shape, [60000, 1, 28, 28]);
  assert.deepEqual(ds.test.images.shape, [10000, 1, 28, 28]);
  assert.equal(ds.train.labels.dtype, "int32");
  assert.deepEqual(ds.classes, [...FASHION_MNIST_CLASSES]);
  assert.equal(ds.classes[9], "Ankle boot");
  assert.deepEqual(counts(ds.train.labels, 10), new Array(10).fill(6000));
  assert.deepEqual(counts(ds.test.labels, 10), new Array(10).fill(1000));
  // the first training image of Fashion-MNIST is an ankle boot, the first test image too
  assert.equal(ds.train.labels.index(0).item(), 9);
  assert.equal(ds.test.labels.index(0).item(), 9);
  const px = ds.test.images.index([0, 100]).dataSync();
  let hi = 0;
  for (const v of px) {
    assert.ok(v >= 0 && v <= 1);
    hi = Math.max(hi, v);
  }
  assert.equal(hi, 1);
});

/** Write a tiny MNIST-like quadruple (gzipped train, plain test) into `dir`. */
function writeIdxDir(dir: string): void {
  const img = (n: number, seed: number) =>
    serializeIdx({
      type: "uint8",
      shape: [n, 2, 3],
      data: Uint8Array.from({ length: n * 6 }, (_, i) => (i * 37 + seed) % 256),
    });
  const lbl = (labels: number[]) =>
    serializeIdx({ type: "uint8", shape: [labels.length], data: Uint8Array.from(labels) });
  writeFileSync(join(dir, "train-images-idx3-ubyte.gz"), gzipSync(img(4, 1)));
  writeFileSync(join(dir, "train-labels-idx1-ubyte.gz"), gzipSync(lbl([0, 3, 1, 2])));
  writeFileSync(join(dir, "t10k-images-idx3-ubyte"), img(2, 5));
  writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), lbl([3, 0]));
}

test("a directory of IDX files: byte / 255 pixels, [N, 1, H, W], default and given class names", () => {
  writeIdxDir(tmp);
  const ds = loadImageDataset(tmp);
  assert.deepEqual(ds.train.images.shape, [4, 1, 2, 3]);
  assert.deepEqual(ds.test.images.shape, [2, 1, 2, 3]);
  assert.deepEqual(ds.classes, ["0", "1", "2", "3"]);
  assert.deepEqual(Array.from(ds.train.labels.dataSync()), [0, 3, 1, 2]);
  const px = ds.test.images.dataSync();
  for (let i = 0; i < px.length; i++) assert.equal(px[i], Math.fround(((i * 37 + 5) % 256) / 255));
  const named = loadImageDataset(tmp, { classes: ["a", "b", "c", "d"], maxTrain: 1 });
  assert.deepEqual(named.classes, ["a", "b", "c", "d"]);
  assert.deepEqual(named.train.images.shape, [1, 1, 2, 3]);
  assert.throws(() => loadImageDataset(tmp, { classes: ["a"] }), /labels up to 3 but only 1 class names/);
});

test("mnist: read from CHAINRULE_MNIST_DIR; a clear error when it is missing", () => {
  const saved = process.env.CHAINRULE_MNIST_DIR;
  try {
    process.env.CHAINRULE_MNIST_DIR = join(tmp, "nowhere");
    assert.throws(
      () => loadImageDataset("mnist"),
      (e: Error) =>
        e.message.includes(join(tmp, "nowhere")) &&
        e.message.includes("CHAINRULE_MNIST_DIR") &&
        e.message.includes("train-images-idx3-ubyte.gz"),
    );
    process.env.CHAINRULE_MNIST_DIR = tmp;
    const ds = loadImageDataset("mnist");
    assert.deepEqual(ds.train.labels.shape, [4]);
    assert.equal(ds.classes.length, 10);
  } finally {
    if (saved === undefined) delete process.env.CHAINRULE_MNIST_DIR;
    else process.env.CHAINRULE_MNIST_DIR = saved;
  }
});

test("an unknown name is an error listing the choices", () => {
  assert.throws(
    () => loadImageDataset("cifar-10"),
    /unknown dataset 'cifar-10'.*"digits", "fashion-mnist", "mnist"/,
  );
});
