/**
 * Tests of the js reference backend, part 2: conv2d, pooling, gather/scatterAdd. Hand-computed cases, and
 * property tests that the backward kernels are the adjoints of the forward ones: the dot-product identity
 * <f(x), dy> = <x, f^T(dy)> in float64 on seeded random sizes, parameters and strided views.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Conv2dParams, Pool2dParams } from "../../src/backend/backend.ts";
import { jsBackend as B } from "../../src/backend/js/index.ts";
import { sizeOf } from "../../src/shape.ts";
import { arr, close, inner, prng, randInt, randn, scrambled, v } from "./js-helpers.ts";

// ---------------------------------------------------------------------------------------------- conv2d

const conv = (s: number, p: number, d: number, g = 1): Conv2dParams => ({
  stride: [s, s],
  padding: [p, p],
  dilation: [d, d],
  groups: g,
});

test("conv2d: hand-computed cases (padding, dilation, stride, groups)", () => {
  const x = v([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  const diag = v([1, 0, 0, 1], [1, 1, 2, 2]);
  const o1 = new Float64Array(4);
  B.conv2d(x, diag, o1, [1, 1, 2, 2], conv(1, 0, 1));
  assert.deepEqual(arr(o1), [6, 8, 12, 14]);
  const o2 = new Float64Array(16);
  B.conv2d(x, diag, o2, [1, 1, 4, 4], conv(1, 1, 1));
  assert.deepEqual(arr(o2), [1, 2, 3, 0, 4, 6, 8, 3, 7, 12, 14, 6, 0, 7, 8, 9]);
  const o3 = new Float64Array(1);
  B.conv2d(x, v([1, 2, 3, 4], [1, 1, 2, 2]), o3, [1, 1, 1, 1], conv(1, 0, 2));
  assert.deepEqual(arr(o3), [1 + 2 * 3 + 3 * 7 + 4 * 9]);
  const o4 = new Float64Array(4);
  B.conv2d(x, v([1], [1, 1, 1, 1]), o4, [1, 1, 2, 2], conv(2, 0, 1));
  assert.deepEqual(arr(o4), [1, 3, 7, 9]);
  // groups = 2: channel c of the output sees only channel c of the input
  const x2 = v([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
  const o5 = new Float64Array(8);
  B.conv2d(x2, v([2, 3], [2, 1, 1, 1]), o5, [1, 2, 2, 2], conv(1, 0, 1, 2));
  assert.deepEqual(arr(o5), [2, 4, 6, 8, 30, 60, 90, 120]);
  // 2 input channels summed into 1 output channel
  const o6 = new Float64Array(4);
  B.conv2d(x2, v([1, -1], [1, 2, 1, 1]), o6, [1, 1, 2, 2], conv(1, 0, 1));
  assert.deepEqual(arr(o6), [-9, -18, -27, -36]);
});

/** conv2d straight from its definition, one output at a time, as an independent reference. */
function naiveConv2d(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  ws: number[],
  ys: number[],
  p: Conv2dParams,
) {
  const [N, C, H, W] = xs;
  const [O, Cg, KH, KW] = ws;
  const [, , OH, OW] = ys;
  const Og = O / p.groups;
  const y = new Float64Array(N * O * OH * OW);
  let k = 0;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++, k++) {
          for (let c = 0; c < Cg; c++)
            for (let i = 0; i < KH; i++)
              for (let j = 0; j < KW; j++) {
                const ih = oh * p.stride[0] - p.padding[0] + i * p.dilation[0];
                const iw = ow * p.stride[1] - p.padding[1] + j * p.dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const ci = Math.floor(o / Og) * Cg + c;
                y[k] += x[((n * C + ci) * H + ih) * W + iw] * w[((o * Cg + c) * KH + i) * KW + j];
              }
        }
  return y;
}

test("conv2d matches its definition; conv2dBackInput/BackWeight are its adjoints (random, strided)", () => {
  const rng = prng(2024);
  let ran = 0;
  for (let trial = 0; trial < 60; trial++) {
    const g = randInt(rng, 1, 3);
    const params: Conv2dParams = {
      stride: [randInt(rng, 1, 3), randInt(rng, 1, 3)],
      padding: [randInt(rng, 0, 2), randInt(rng, 0, 2)],
      dilation: [randInt(rng, 1, 2), randInt(rng, 1, 2)],
      groups: g,
    };
    const [n, cg, og, h, w, kh, kw] = [1, 1, 1, 1, 1, 1, 1].map((_, i) =>
      randInt(rng, 1, i < 3 ? 3 : i < 5 ? 7 : 3),
    );
    const oh =
      Math.floor((h + 2 * params.padding[0] - params.dilation[0] * (kh - 1) - 1) / params.stride[0]) + 1;
    const ow =
      Math.floor((w + 2 * params.padding[1] - params.dilation[1] * (kw - 1) - 1) / params.stride[1]) + 1;
    if (oh < 1 || ow < 1) continue;
    const xs = [n, cg * g, h, w];
    const ws = [og * g, cg, kh, kw];
    const ys = [n, og * g, oh, ow];
    const x = randn(rng, sizeOf(xs));
    const wt = randn(rng, sizeOf(ws));
    const dy = randn(rng, sizeOf(ys));
    const y = new Float64Array(sizeOf(ys));
    B.conv2d(scrambled(x, xs, rng), scrambled(wt, ws, rng), y, ys, params);
    const dx = new Float64Array(sizeOf(xs));
    B.conv2dBackInput(scrambled(dy, ys, rng), v(wt, ws), dx, xs, params);
    const dw = new Float64Array(sizeOf(ws));
    B.conv2dBackWeight(v(x, xs), scrambled(dy, ys, rng), dw, ws, params);
    close(y, naiveConv2d(x, xs, wt, ws, ys, params), 1e-14);
    const lhs = inner(y, dy);
    const tol = 1e-12 * (1 + Math.abs(lhs));
    assert.ok(Math.abs(lhs - inner(x, dx)) < tol, `trial ${trial}: <conv(x,w),dy> != <x,backInput>`);
    assert.ok(Math.abs(lhs - inner(wt, dw)) < tol, `trial ${trial}: <conv(x,w),dy> != <w,backWeight>`);
    ran++;
  }
  assert.ok(ran >= 30, `only ${ran} trials ran`);
});

// ---------------------------------------------------------------------------------------------- pooling

const pool = (k: number, s: number, p: number): Pool2dParams => ({
  kernel: [k, k],
  stride: [s, s],
  padding: [p, p],
});

test("maxPool2d / argmax / avgPool2d: 2x2 stride 2, and padding 1 on 3x3", () => {
  const x4 = v([1, 5, 2, 0, 3, 4, 8, 8, -1, -2, -3, -4, -5, -6, -7, -8], [1, 1, 4, 4]);
  const m = new Float64Array(4);
  B.maxPool2d(x4, m, [1, 1, 2, 2], pool(2, 2, 0));
  assert.deepEqual(arr(m), [5, 8, -1, -3]);
  const am = new Int32Array(4);
  B.maxPool2dArgmax(x4, am, [1, 1, 2, 2], pool(2, 2, 0));
  assert.deepEqual(arr(am), [1, 6, 8, 10]);
  const a = new Float64Array(4);
  B.avgPool2d(x4, a, [1, 1, 2, 2], pool(2, 2, 0));
  assert.deepEqual(arr(a), [13 / 4, 18 / 4, -14 / 4, -22 / 4]);

  // padding 1: windows {x00}, {x01, x02}, {x10, x20}, {x11, x12, x21, x22}; padding never wins a max
  const neg = v([-1, -2, -3, -4, -5, -6, -7, -8, -9], [1, 1, 3, 3]);
  B.maxPool2d(neg, m, [1, 1, 2, 2], pool(2, 2, 1));
  assert.deepEqual(arr(m), [-1, -2, -4, -5]);
  B.maxPool2dArgmax(neg, am, [1, 1, 2, 2], pool(2, 2, 1));
  assert.deepEqual(arr(am), [0, 1, 3, 4]);
  const pos = v([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  B.avgPool2d(pos, a, [1, 1, 2, 2], pool(2, 2, 1));
  assert.deepEqual(arr(a), [1 / 4, 5 / 4, 11 / 4, 7]);
});

test("maxPool2d: NaN wins, ties go to the first, multiple planes and strided input", () => {
  const x = v([1, Number.NaN, 2, 2, 7, 7, 7, 7], [2, 1, 2, 2]);
  const m = new Float64Array(2);
  const am = new Int32Array(2);
  B.maxPool2d(x, m, [2, 1, 1, 1], pool(2, 2, 0));
  B.maxPool2dArgmax(x, am, [2, 1, 1, 1], pool(2, 2, 0));
  assert.ok(Number.isNaN(m[0]));
  assert.equal(m[1], 7);
  assert.deepEqual(arr(am), [1, 0]);
  const rng = prng(5);
  const vals = randn(rng, 2 * 3 * 5 * 4);
  const shape = [2, 3, 5, 4];
  const p = pool(3, 2, 1);
  const o1 = new Float64Array(2 * 3 * 3 * 2);
  const o2 = new Float64Array(o1.length);
  B.maxPool2d(v(vals, shape), o1, [2, 3, 3, 2], p);
  B.maxPool2d(scrambled(vals, shape, rng), o2, [2, 3, 3, 2], p);
  assert.deepEqual(arr(o2), arr(o1));
  // the value at the argmax is the max
  const idx = new Int32Array(o1.length);
  B.maxPool2dArgmax(v(vals, shape), idx, [2, 3, 3, 2], p);
  for (let i = 0; i < idx.length; i++) assert.equal(vals[Math.floor(i / 6) * 20 + idx[i]], o1[i]);
});

test("maxPool2dBackward: hand-computed tiled, padded, overlapping, tie and NaN cases", () => {
  const back = (x: number[], xs: number[], dy: number[], ys: number[], p: Pool2dParams) => {
    const out = new Float64Array(sizeOf(xs)).fill(99); // every element must be written
    B.maxPool2dBackward(v(x, xs), v(dy, ys), out, xs, p);
    return arr(out);
  };
  // 2x2 stride 2: argmaxes 1, 6, 8, 10 (see the forward test above)
  const x4 = [1, 5, 2, 0, 3, 4, 8, 8, -1, -2, -3, -4, -5, -6, -7, -8];
  assert.deepEqual(
    back(x4, [1, 1, 4, 4], [10, 20, 30, 40], [1, 1, 2, 2], pool(2, 2, 0)),
    [0, 10, 0, 0, 0, 0, 20, 0, 30, 0, 40, 0, 0, 0, 0, 0],
  );
  // padding 1 on 3x3: argmaxes 0, 1, 3, 4; the last row and column belong to no window's max
  const neg = [-1, -2, -3, -4, -5, -6, -7, -8, -9];
  assert.deepEqual(
    back(neg, [1, 1, 3, 3], [1, 2, 3, 4], [1, 1, 2, 2], pool(2, 2, 1)),
    [1, 2, 0, 3, 4, 0, 0, 0, 0],
  );
  // overlapping (2x2 stride 1): the centre is the max of all four windows and collects all four terms
  const peak = [1, 2, 1, 2, 9, 2, 1, 2, 1];
  assert.deepEqual(
    back(peak, [1, 1, 3, 3], [1, 2, 3, 4], [1, 1, 2, 2], pool(2, 1, 0)),
    [0, 0, 0, 0, 10, 0, 0, 0, 0],
  );
  // ties go to the first in row-major window order, a NaN wins at once; stride 3 leaves the 9s outside every window
  const ties = [7, 7, 9, 0, 7, 9, 9, 9, 9, 1, Number.NaN, 9, 7, 8, 9, 9, 9, 9];
  assert.deepEqual(
    back(ties, [2, 1, 3, 3], [1, 2], [2, 1, 1, 1], pool(2, 3, 0)),
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
  );
  // a NaN or infinite cotangent reaches only its own argmax position
  assert.deepEqual(back(x4, [1, 1, 4, 4], [Number.NaN, Infinity, 1, 1], [1, 1, 2, 2], pool(2, 2, 0)), [
    0,
    Number.NaN,
    0,
    0,
    0,
    0,
    Infinity,
    0,
    1,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
  ]);
  // float32 output with overlap: terms are summed in float64 and rounded once
  const o32 = new Float32Array(9);
  B.maxPool2dBackward(
    v(peak, [1, 1, 3, 3]),
    v([1, 2 ** -30, 2 ** -30, 0], [1, 1, 2, 2]),
    o32,
    [1, 1, 3, 3],
    pool(2, 1, 0),
  );
  assert.equal(o32[4], Math.fround(1 + 2 ** -29));
});

/** A random pooling geometry (kernel 1-3, stride 1-3, padding up to half the kernel), or null if no window fits. */
function randomPool(rng: () => number): { p: Pool2dParams; xs: number[]; ys: number[] } | null {
  const kh = randInt(rng, 1, 3);
  const kw = randInt(rng, 1, 3);
  const p: Pool2dParams = {
    kernel: [kh, kw],
    stride: [randInt(rng, 1, 3), randInt(rng, 1, 3)],
    padding: [randInt(rng, 0, kh >> 1), randInt(rng, 0, kw >> 1)],
  };
  const xs = [randInt(rng, 1, 2), randInt(rng, 1, 3), randInt(rng, 1, 7), randInt(rng, 1, 7)];
  const oh = Math.floor((xs[2] + 2 * p.padding[0] - kh) / p.stride[0]) + 1;
  const ow = Math.floor((xs[3] + 2 * p.padding[1] - kw) / p.stride[1]) + 1;
  return oh < 1 || ow < 1 ? null : { p, xs, ys: [xs[0], xs[1], oh, ow] };
}

test("maxPool2dBackward is the adjoint of gathering at the argmax (random sizes, strided views)", () => {
  const rng = prng(12);
  let ran = 0;
  for (let trial = 0; trial < 40; trial++) {
    const g = randomPool(rng);
    if (g === null) continue;
    const { p, xs, ys } = g;
    const x = randn(rng, sizeOf(xs));
    const dy = randn(rng, sizeOf(ys));
    const u = randn(rng, sizeOf(xs));
    const dx = new Float64Array(sizeOf(xs));
    B.maxPool2dBackward(scrambled(x, xs, rng), scrambled(dy, ys, rng), dx, xs, p);
    const idx = new Int32Array(sizeOf(ys));
    B.maxPool2dArgmax(v(x, xs), idx, ys, p);
    const plane = ys[2] * ys[3];
    const picked = Float64Array.from(idx, (i, o) => u[Math.floor(o / plane) * xs[2] * xs[3] + i]);
    assert.ok(Math.abs(inner(dx, u) - inner(dy, picked)) < 1e-12, `trial ${trial}`);
    ran++;
  }
  assert.ok(ran >= 20, `only ${ran} trials ran`);
});

test("avgPool2dBackward is the adjoint of avgPool2d (random sizes)", () => {
  const rng = prng(11);
  let ran = 0;
  for (let trial = 0; trial < 40; trial++) {
    const g = randomPool(rng);
    if (g === null) continue;
    const { p, xs, ys } = g;
    const x = randn(rng, sizeOf(xs));
    const dy = randn(rng, sizeOf(ys));
    const y = new Float64Array(sizeOf(ys));
    B.avgPool2d(scrambled(x, xs, rng), y, ys, p);
    const dx = new Float64Array(sizeOf(xs));
    B.avgPool2dBackward(scrambled(dy, ys, rng), dx, xs, p);
    assert.ok(Math.abs(inner(y, dy) - inner(x, dx)) < 1e-12, `trial ${trial}`);
    ran++;
  }
  assert.ok(ran >= 20, `only ${ran} trials ran`);
});

// ---------------------------------------------------------------------------------------------- gather

test("gather and scatterAdd along axis 0 and 1 by hand, duplicates accumulate", () => {
  const x = v([1, 2, 3, 4, 5, 6], [2, 3]);
  const g1 = new Float64Array(4);
  B.gather(x, 1, v(Int32Array.from([2, 0, 1, 1]), [2, 2]), g1);
  assert.deepEqual(arr(g1), [3, 1, 5, 5]);
  const g0 = new Float64Array(3);
  B.gather(x, 0, v(Int32Array.from([1, 0, 1]), [1, 3]), g0);
  assert.deepEqual(arr(g0), [4, 2, 6]);
  const s = new Float64Array(6);
  B.scatterAdd(v([10, 20, 30, 40], [2, 2]), 1, v(Int32Array.from([2, 0, 1, 1]), [2, 2]), s, [2, 3]);
  assert.deepEqual(arr(s), [20, 0, 10, 0, 70, 0]);
  const s0 = new Float64Array(6);
  B.scatterAdd(v([1, 2, 3], [1, 3]), 0, v(Int32Array.from([1, 0, 1]), [1, 3]), s0, [2, 3]);
  assert.deepEqual(arr(s0), [0, 2, 0, 1, 0, 3]);
  const si = new Int32Array(2);
  B.scatterAdd(v(Int32Array.from([2147483647, 1]), [2]), 0, v(Int32Array.from([0, 0]), [2]), si, [2]);
  assert.deepEqual(arr(si), [-2147483648, 0]);
});

test("scatterAdd is the adjoint of gather along any axis (random, strided)", () => {
  const rng = prng(99);
  let ran = 0;
  for (let trial = 0; trial < 40; trial++) {
    const nd = randInt(rng, 1, 4);
    const xs = Array.from({ length: nd }, () => randInt(rng, 1, 4));
    const axis = randInt(rng, 0, nd - 1);
    const is = [...xs];
    is[axis] = randInt(rng, 0, 5);
    const x = randn(rng, sizeOf(xs));
    const idx = Int32Array.from({ length: sizeOf(is) }, () => randInt(rng, 0, xs[axis] - 1));
    const s = randn(rng, sizeOf(is));
    const gx = new Float64Array(sizeOf(is));
    B.gather(scrambled(x, xs, rng), axis, scrambled(idx, is, rng, true), gx);
    const st = new Float64Array(sizeOf(xs));
    B.scatterAdd(scrambled(s, is, rng), axis, scrambled(idx, is, rng, true), st, xs);
    assert.ok(Math.abs(inner(gx, s) - inner(x, st)) < 1e-12, `trial ${trial}`);
    ran++;
  }
  assert.ok(ran >= 40, `only ${ran} trials ran`);
});
