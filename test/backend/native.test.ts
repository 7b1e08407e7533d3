/**
 * Native backend behaviour beyond agreement with js (kernels.test.ts checks every kernel against the js
 * reference on every instruction set and thread count): an overlapping copy behaves as memmove, results do
 * not depend on the thread count bit for bit, and malformed views or a dy of the wrong shape are rejected
 * with an error naming the kernel instead of reading out of bounds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Conv2dParams, Pool2dParams } from "../../src/backend/backend.ts";
import { setNativeIsa, setNumThreads } from "../../src/backend/native/index.ts";
import { DEFAULT_THREADS, ISAS, makeView, N, prng } from "./native-helpers.ts";

test("copy: an overlapping source is read before the destination is written (memmove)", { skip: !N }, () => {
  // The interface leaves overlap undefined (the js backend copies element by element); the native backend
  // stages the source, so the result is as if the source had been copied out first.
  for (const isa of ISAS) {
    setNativeIsa(isa);
    const data = Float32Array.from({ length: 20 }, (_, i) => i);
    N!.copy({ data, shape: [10], strides: [1], offset: 0 }, { data, shape: [10], strides: [1], offset: 5 });
    assert.deepEqual(Array.from(data), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]);
    N!.copy({ data, shape: [4], strides: [-1], offset: 8 }, { data, shape: [4], strides: [1], offset: 6 });
    assert.deepEqual(Array.from(data.subarray(5, 11)), [0, 3, 2, 1, 0, 5]);
  }
  setNativeIsa(ISAS[0]);
});

test("results do not depend on the thread count (bitwise)", { skip: !N || DEFAULT_THREADS < 2 }, () => {
  const rng = prng(17);
  const a = makeView([300, 257], "float32", "contiguous", rng, "small");
  const b2 = makeView([257, 301], "float32", "transposed", rng, "small");
  const big = makeView([400000], "float32", "contiguous", rng, "small");
  const run = () => {
    const o1 = N!.alloc("float32", 300 * 301);
    N!.dot(a, b2, o1);
    const o2 = N!.alloc("float32", 1);
    N!.reduce("sum", big, [0], o2);
    return [o1, o2];
  };
  setNumThreads(1);
  const one = run();
  setNumThreads(DEFAULT_THREADS);
  const all = run();
  setNumThreads(0);
  assert.deepEqual(all, one);
});

test("pointwise convolutions on small planes: the same bits on one thread and all", {
  skip: !N || DEFAULT_THREADS < 2,
}, () => {
  // 7 x 7 planes, 200 output and 64 input channels per group: the forward pass and both gradients run one product
  // per group over all images, split over the pool inside the product (10 MFLOP each, above the 2 MFLOP from which
  // the GEMM uses more threads; the weight gradient's 392-deep sums in two K slices)
  const rng = prng(31);
  const p: Conv2dParams = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 2 };
  const x = makeView([8, 128, 7, 7], "float32", "contiguous", rng, "small");
  const w = makeView([400, 64, 1, 1], "float32", "contiguous", rng, "small");
  const dy = makeView([8, 400, 7, 7], "float32", "contiguous", rng, "small");
  const run = () => {
    const y = N!.alloc("float32", 8 * 400 * 49);
    N!.conv2d(x, w, y, [8, 400, 7, 7], p);
    const dx = N!.alloc("float32", 8 * 128 * 49);
    N!.conv2dBackInput(dy, w, dx, [8, 128, 7, 7], p);
    const dw = N!.alloc("float32", 400 * 64);
    N!.conv2dBackWeight(x, dy, dw, [400, 64, 1, 1], p);
    return [y, dx, dw];
  };
  setNumThreads(1);
  const one = run();
  setNumThreads(DEFAULT_THREADS);
  const all = run();
  setNumThreads(0);
  assert.deepEqual(all, one);
});

test("bad views are rejected with an error naming the kernel", { skip: !N }, () => {
  const data = new Float32Array(4);
  const out = new Float32Array(8);
  assert.throws(
    () => N!.unary("neg", { data, shape: [8], strides: [1], offset: 0 }, out),
    /native unary: view reaches outside its buffer/,
  );
  assert.throws(
    () => N!.unary("neg", { data, shape: [4], strides: [1], offset: 0 }, new Float32Array(2)),
    /too small/,
  );
});

test("maxPool2dBackward rejects a dy that is not the pooled shape of x", { skip: !N }, () => {
  const rng = prng(22);
  const x = makeView([1, 2, 6, 6], "float32", "contiguous", rng);
  const dy = makeView([1, 2, 2, 3], "float32", "contiguous", rng);
  const p: Pool2dParams = { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
  assert.throws(
    () => N!.maxPool2dBackward(x, dy, N!.alloc("float32", 72), [1, 2, 6, 6], p),
    /maxPool2dBackward: dy is not the pooled shape of x/,
  );
});
