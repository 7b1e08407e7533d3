/**
 * The native gather's whole-row path (indexSelect's layout: the index broadcast, stride 0, over trailing axes
 * that are contiguous in x, so each index copies one row): agrees with the js reference for every dtype,
 * several ranks and axes, strided / reversed / offset outer axes of x, strided and broadcast indices,
 * duplicates, and sizes that split over the thread pool; bad indices raise the usual RangeError and write
 * nothing, indices in shared memory included.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import type { DType, TypedArray } from "../../src/dtype.ts";
import { allocTyped } from "../../src/dtype.ts";
import { loadDigits } from "../../src/data/digits.ts";
import { getBackend, setBackend } from "../../src/backend/registry.ts";
import { tensor } from "../../src/index.ts";
import { check, EXACT, N, prng } from "./native-helpers.ts";

const contiguous = (shape: readonly number[]) =>
  shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));

function filled(dtype: DType, n: number, rng: () => number): TypedArray {
  const a = allocTyped(dtype, n);
  for (let i = 0; i < n; i++)
    a[i] =
      dtype === "bool"
        ? rng() < 0.5
          ? 0
          : 1
        : dtype === "int32"
          ? Math.floor(rng() * 2e9 - 1e9)
          : rng() * 6 - 3;
  return a;
}

/** x of `shape` inside a larger buffer: outer axes (up to `axis`) padded and, if `reversed`, walked backwards. */
function xView(
  dtype: DType,
  shape: number[],
  axis: number,
  rng: () => number,
  reversed: boolean,
  pad: number,
): View {
  // the trailing axes after `axis` stay contiguous; the outer ones get a row pitch `pad` elements wider
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const strides = contiguous(shape);
  let pitch = inner + pad;
  for (let d = axis; d >= 0; d--) {
    strides[d] = pitch;
    pitch *= shape[d];
  }
  const total = pitch + 7;
  const data = filled(dtype, total, rng);
  if (!reversed) return { data, shape, strides, offset: 3 };
  // axis `axis` walked backwards from its last row
  const offset = 3 + (shape[axis] - 1) * strides[axis];
  const st = [...strides];
  st[axis] = -strides[axis];
  return { data, shape, strides: st, offset };
}

/** indexSelect's index view: `k` indices along `axis`, broadcast over every other axis of `full`. */
function idxView(idx: Int32Array, full: number[], axis: number, step = 1): View {
  return {
    data: idx,
    shape: full,
    strides: full.map((_, d) => (d === axis ? step : 0)),
    offset: 0,
  };
}

const DTYPES: DType[] = ["float32", "float64", "int32", "bool"];

test("row gathers agree with js: dtypes, ranks, axes, strided / reversed / offset x, strided indices", {
  skip: !N,
}, () => {
  const rng = prng(1207);
  const cases: [number[], number, number][] = [
    // [x shape, axis, number of indices]
    [[50, 784], 0, 128],
    [[3, 7, 5, 4], 1, 9], // 20 elements a row, outer axis before the indexed one
    [[6, 16], 0, 1],
    [[2, 3, 40], 1, 5],
    [[1000, 64], 0, 700], // splits over the thread pool
  ];
  for (const dtype of DTYPES) {
    for (const [shape, axis, k] of cases) {
      for (const [reversed, pad] of [
        [false, 0],
        [false, 5],
        [true, 3],
      ] as const) {
        const x = xView(dtype, shape, axis, rng, reversed, pad);
        const n = shape[axis];
        // duplicates and both ends of the range
        const raw = Int32Array.from({ length: 2 * k }, (_, i) =>
          i === 0 ? n - 1 : i === 2 ? 0 : Math.floor(rng() * n),
        );
        const full = shape.map((s, d) => (d === axis ? k : s));
        const outN = full.reduce((a, b) => a * b, 1);
        for (const step of [1, 2]) {
          const idx = idxView(raw, full, axis, step);
          check(
            `gather rows ${dtype} [${shape}] axis ${axis} k ${k} rev ${reversed} pad ${pad} step ${step}`,
            EXACT,
            (b) => {
              const out = allocTyped(dtype, outN);
              b.gather(x, axis, idx, out);
              return out;
            },
          );
        }
      }
    }
  }
});

test("row gathers: a broadcast outer axis of the index, and short rows (the element path)", {
  skip: !N,
}, () => {
  const rng = prng(88);
  // x [4, 6, 32]; the index varies only along axis 1 and is broadcast along axis 0 too
  const x: View = {
    data: filled("float32", 4 * 6 * 32, rng),
    shape: [4, 6, 32],
    strides: [192, 32, 1],
    offset: 0,
  };
  const raw = Int32Array.from([5, 0, 3, 3, 1]);
  const idx: View = { data: raw, shape: [4, 5, 32], strides: [0, 1, 0], offset: 0 };
  check("gather rows, index broadcast on axis 0", EXACT, (b) => {
    const out = new Float32Array(4 * 5 * 32);
    b.gather(x, 1, idx, out);
    return out;
  });
  // rows of 3 elements take the elementwise path; a transposed x (trailing axis not contiguous) too
  const xs: View = { data: filled("float32", 10 * 3, rng), shape: [10, 3], strides: [3, 1], offset: 0 };
  const xt: View = { data: filled("float32", 40 * 20, rng), shape: [20, 40], strides: [1, 20], offset: 0 };
  const i3 = Int32Array.from([9, 0, 4, 4]);
  check("gather short rows", EXACT, (b) => {
    const out = new Float32Array(12);
    b.gather(xs, 0, idxView(i3, [4, 3], 0), out);
    return out;
  });
  check("gather rows of a transposed x", EXACT, (b) => {
    const out = new Float32Array(4 * 40);
    b.gather(xt, 0, idxView(Int32Array.from([19, 0, 7, 7]), [4, 40], 0), out);
    return out;
  });
});

test("row gathers reject bad indices with the index and the bound, writing nothing", { skip: !N }, () => {
  const B = N!;
  const rng = prng(5);
  const x: View = { data: filled("float32", 30 * 20, rng), shape: [30, 20], strides: [20, 1], offset: 0 };
  for (const bad of [30, -1, 2147483647, -2147483648]) {
    const raw = Int32Array.from({ length: 100 }, (_, i) => i % 30);
    raw[97] = bad; // near the end: the last chunk of a parallel copy
    const out = new Float32Array(100 * 20).fill(42);
    assert.throws(
      () => B.gather(x, 0, idxView(raw, [100, 20], 0), out),
      (e: Error) =>
        e instanceof RangeError &&
        new RegExp(`index ${bad} is out of bounds for axis 0 of size 30`).test(e.message),
    );
    assert.ok(
      out.every((v) => v === 42),
      "nothing written",
    );
  }
  // indices in a SharedArrayBuffer are checked as they are used: valid ones agree with js, a bad one throws
  const sab = new Int32Array(new SharedArrayBuffer(4 * 6));
  sab.set([29, 0, 3, 3, 17, 8]);
  const got = new Float32Array(6 * 20);
  const want = new Float32Array(6 * 20);
  B.gather(x, 0, idxView(sab, [6, 20], 0), got);
  J.gather(x, 0, idxView(sab, [6, 20], 0), want);
  assert.deepEqual(got, want);
  sab[4] = 30;
  assert.throws(
    () => B.gather(x, 0, idxView(sab, [6, 20], 0), got),
    /index 30 is out of bounds for axis 0 of size 30/,
  );
  // an empty axis: every index is bad
  const empty: View = { data: new Float32Array(0), shape: [0, 20], strides: [20, 1], offset: 0 };
  assert.throws(
    () => B.gather(empty, 0, idxView(Int32Array.from([0]), [1, 20], 0), new Float32Array(20)),
    /index 0/,
  );
  // no indices: nothing to do
  B.gather(x, 0, idxView(new Int32Array(0), [0, 20], 0), new Float32Array(0));
});

test("indexSelect of dataset rows on native equals the rows themselves", { skip: !N }, () => {
  const prev = getBackend();
  setBackend(N!);
  try {
    const d = loadDigits();
    const X = tensor(d.images, { shape: [d.n, 784] });
    const pick = Int32Array.from({ length: 128 }, (_, i) => (i * 7919) % d.n);
    const got = X.indexSelect(0, tensor(pick)).dataSync();
    for (let i = 0; i < pick.length; i++)
      assert.deepEqual(
        got.subarray(i * 784, (i + 1) * 784),
        d.images.subarray(pick[i] * 784, (pick[i] + 1) * 784),
      );
  } finally {
    setBackend(prev);
  }
});
