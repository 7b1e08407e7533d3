/**
 * tensor() from typed arrays: the copy (TypedArray.prototype.set into uninitialised storage) gives every element
 * the conversion of an element-by-element store, owns its storage, and fills all of it (backends' uninitialised
 * storage can hold old values: a 64 KB+ tensor is allocated after a garbage-filled one of the same size).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { tensor } from "../src/index.ts";

describe("tensor() from a typed array", () => {
  test("same element type: an independent copy of every value", () => {
    const src = Float32Array.from({ length: 100_003 }, (_, i) => Math.fround(Math.sin(i) * 1e3));
    const t = tensor(src, { shape: [100_003] });
    assert.equal(t.dtype, "float32");
    const before = t.dataSync();
    src.fill(7);
    const after = t.dataSync();
    for (let i = 0; i < before.length; i += 997) assert.equal(after[i], Math.fround(Math.sin(i) * 1e3));
    assert.deepEqual(after, before);
  });

  test("float64 values to float32 round to nearest, as Math.fround", () => {
    const vals = [0.1, 1 / 3, -2.5e-39, 3.4028235677973366e38, 1e39, -0, Number.NaN, 16777217];
    const t = tensor(new Float64Array(vals), { dtype: "float32" });
    const got = Array.from(t.dataSync());
    for (const [i, v] of vals.entries()) {
      assert.ok(Object.is(got[i], Math.fround(v)), `element ${i}: ${got[i]} vs ${v}`);
    }
  });

  test("float32 integers to int32, and int32 to float64, exactly", () => {
    const f = new Float32Array([0, -1, 2 ** 24, -(2 ** 31), 12345]);
    assert.deepEqual(Array.from(tensor(f, { dtype: "int32" }).dataSync()), [
      0,
      -1,
      2 ** 24,
      -(2 ** 31),
      12345,
    ]);
    const i = new Int32Array([2 ** 31 - 1, -(2 ** 31), 0, 7]);
    const t = tensor(i, { dtype: "float64" });
    assert.equal(t.dtype, "float64");
    assert.deepEqual(Array.from(t.dataSync()), [2 ** 31 - 1, -(2 ** 31), 0, 7]);
  });

  test("a large tensor after garbage of the same size holds exactly its data (no stale storage)", () => {
    const n = 1 << 16;
    for (let k = 0; k < 3; k++) tensor(new Float32Array(n).fill(-9), { shape: [n] });
    const src = Float32Array.from({ length: n }, (_, i) => i % 251);
    const got = tensor(src, { shape: [256, n / 256] }).dataSync();
    for (let i = 0; i < n; i++) if (got[i] !== i % 251) assert.fail(`element ${i}: ${got[i]}`);
  });
});
