/**
 * Conformance of the native backend with the js reference backend, part 2: the contraction and network
 * kernels (dot with every transpose and batch layout, conv2d and both adjoints, pooling, gather /
 * scatterAdd, the fused Adam update). See native.test.ts for the method and native-helpers.ts for the tools.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ACTIVATIONS, type Conv2dParams, type Pool2dParams, type View } from "../../src/backend/backend.ts";
import type { DType } from "../../src/dtype.ts";
import {
  check,
  DTYPES,
  EXACT,
  type Gen,
  LAYOUTS,
  type Layout,
  loaded,
  makeView,
  N,
  prng,
  size,
  tolFor,
} from "./native-helpers.ts";

test("the native addon loads (built by npm run build:native)", () => {
  assert.ok("backend" in loaded, "error" in loaded ? loaded.error : "");
});

// ---------------------------------------------------------------------------------------------------------
/** A [..batch, r, c] view whose matrix part is stored transposed when `t` (the a.mT of a stored matrix). */
function matrix(
  batch: number[],
  r: number,
  c: number,
  t: boolean,
  dtype: DType,
  rng: () => number,
  bcast = false,
): View {
  const stored = makeView(
    [...batch, t ? c : r, t ? r : c],
    dtype,
    "contiguous",
    rng,
    dtype === "int32" ? "normal" : "small",
  );
  const nd = stored.shape.length;
  const shape = [...batch, r, c];
  const strides = [...stored.strides];
  if (t) [strides[nd - 2], strides[nd - 1]] = [strides[nd - 1], strides[nd - 2]];
  if (bcast && batch.length > 0) strides[0] = 0;
  return { data: stored.data, shape, strides, offset: 0 };
}

test("dot: every transpose combination, odd sizes, batches with broadcast, float32/float64/int32", {
  skip: !N,
}, () => {
  const rng = prng(12);
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [7, 17, 33],
    [33, 65, 15],
    [13, 1, 40],
    [1, 300, 40],
    [300, 1, 70],
    [1, 1, 500],
    [64, 50, 0],
    [130, 70, 257],
    [97, 131, 413],
  ];
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const [m, n, k] of sizes) {
      for (const [ta, tb] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ]) {
        for (const batch of m * n * k > 1e6 ? [[]] : [[], [3], [2, 2]]) {
          const bcast = batch.length > 0 && rng() < 0.5;
          const a = matrix(batch, m, k, ta, dtype, rng, bcast);
          const b2 = matrix(batch, k, n, tb, dtype, rng);
          const tol = tolFor(
            dtype,
            { rtol: 1e-5, atol: 2e-6 * Math.max(k, 1) },
            { rtol: 1e-12, atol: 1e-13 * Math.max(k, 1) },
          );
          check(`dot ${dtype} ${m}x${k} @ ${k}x${n} ta=${ta} tb=${tb} batch [${batch}]`, tol, (b) => {
            const out = b.alloc(dtype, size(batch) * m * n);
            b.dot(a, b2, out);
            return out;
          });
        }
      }
    }
  }
});

test("dot: negative strides and a batch of many small matrices", { skip: !N }, () => {
  const rng = prng(13);
  const a = makeView([20, 9, 11], "float32", "reversed", rng, "small");
  const b2 = makeView([20, 11, 5], "float32", "gaps", rng, "small");
  check("dot reversed/gaps batch 20", { rtol: 1e-5, atol: 1e-5 }, (b) => {
    const out = b.alloc("float32", 20 * 9 * 5);
    b.dot(a, b2, out);
    return out;
  });
});

// ---------------------------------------------------------------------------------------------------------
interface ConvCase {
  x: number[];
  w: number[];
  p: Conv2dParams;
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 3, 9, 8], w: [4, 3, 3, 3], p: { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 } },
  { x: [2, 4, 10, 11], w: [6, 2, 3, 2], p: { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 } },
  { x: [1, 3, 7, 7], w: [3, 1, 3, 3], p: { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 3 } },
  { x: [3, 2, 5, 6], w: [2, 2, 5, 6], p: { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 } },
  { x: [2, 2, 6, 6], w: [5, 2, 1, 1], p: { stride: [3, 2], padding: [0, 1], dilation: [1, 1], groups: 1 } },
  {
    x: [1, 16, 20, 20],
    w: [32, 16, 3, 3],
    p: { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 },
  },
  { x: [5, 3, 12, 12], w: [8, 3, 5, 5], p: { stride: [1, 1], padding: [2, 2], dilation: [1, 1], groups: 1 } },
  { x: [2, 8, 6, 7], w: [8, 2, 3, 3], p: { stride: [1, 2], padding: [1, 1], dilation: [2, 1], groups: 4 } },
  // unit stride takes the direct kernels (conv_direct.h): channel counts that are not a multiple of the tile,
  // padding wider than the window reach (the input gradient then takes the im2col path), dilation with groups,
  // images that are narrower than a vector, and the benchmark's first layer
  { x: [9, 5, 7, 9], w: [10, 5, 3, 2], p: { stride: [1, 1], padding: [3, 2], dilation: [1, 1], groups: 1 } },
  { x: [4, 6, 9, 10], w: [34, 3, 3, 3], p: { stride: [1, 1], padding: [2, 1], dilation: [2, 3], groups: 2 } },
  { x: [3, 2, 3, 2], w: [5, 2, 2, 2], p: { stride: [1, 1], padding: [1, 0], dilation: [1, 1], groups: 1 } },
  // 64 and more channels per group: the wide weight-gradient tile (6 taps x 64 channels on AVX-512)
  { x: [2, 3, 6, 7], w: [70, 3, 3, 3], p: { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 } },
  { x: [5, 4, 5, 5], w: [128, 2, 3, 3], p: { stride: [1, 1], padding: [1, 2], dilation: [1, 1], groups: 2 } },
  {
    x: [3, 1, 28, 28],
    w: [32, 1, 5, 5],
    p: { stride: [1, 1], padding: [2, 2], dilation: [1, 1], groups: 1 },
  },
];

function convOut(c: ConvCase): number[] {
  const [n, , h, w] = c.x;
  const [o, , kh, kw] = c.w;
  const oh = Math.floor((h + 2 * c.p.padding[0] - c.p.dilation[0] * (kh - 1) - 1) / c.p.stride[0]) + 1;
  const ow = Math.floor((w + 2 * c.p.padding[1] - c.p.dilation[1] * (kw - 1) - 1) / c.p.stride[1]) + 1;
  return [n, o, oh, ow];
}

test("conv2d and both adjoints: stride, padding, dilation, groups, strided inputs", { skip: !N }, () => {
  const rng = prng(14);
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const c of CONV_CASES) {
      if (dtype === "int32" && size(c.x) * c.w[0] > 20000) continue;
      const y = convOut(c);
      const how = rng() < 0.5 ? "contiguous" : "transposed";
      const gen: Gen = dtype === "int32" ? "plain" : "small";
      const x = makeView(c.x, dtype, how, rng, gen);
      const w = makeView(c.w, dtype, rng() < 0.5 ? "contiguous" : "gaps", rng, gen);
      const dy = makeView(y, dtype, rng() < 0.5 ? "contiguous" : "reversed", rng, gen);
      const kdim = (c.w[1] * c.w[2] * c.w[3] + c.w[0] * c.w[2] * c.w[3]) * c.x[0];
      const tol = tolFor(dtype, { rtol: 1e-5, atol: 1e-6 * kdim }, { rtol: 1e-12, atol: 1e-13 * kdim });
      const name = `${dtype} x [${c.x}] w [${c.w}] ${JSON.stringify(c.p)}`;
      check(`conv2d ${name}`, tol, (b) => {
        const out = b.alloc(dtype, size(y));
        b.conv2d(x, w, out, y, c.p);
        return out;
      });
      if (dtype !== "int32") {
        // the forward epilogue: a bias per channel (a strided view) and each activation in turn
        const bias = makeView([c.w[0]], dtype, rng() < 0.5 ? "contiguous" : "reversed", rng, gen);
        for (const act of [null, ...ACTIVATIONS]) {
          check(`conv2d + bias + ${act} ${name}`, tol, (b) => {
            const out = b.alloc(dtype, size(y));
            b.conv2d(x, w, out, y, c.p, { bias, act });
            return out;
          });
        }
        check(`conv2d + relu, no bias ${name}`, tol, (b) => {
          const out = b.alloc(dtype, size(y));
          b.conv2d(x, w, out, y, c.p, { bias: null, act: "relu" });
          return out;
        });
      }
      check(`conv2dBackInput ${name}`, tol, (b) => {
        const out = b.alloc(dtype, size(c.x));
        b.conv2dBackInput(dy, w, out, c.x, c.p);
        return out;
      });
      check(`conv2dBackWeight ${name}`, tol, (b) => {
        const out = b.alloc(dtype, size(c.w));
        b.conv2dBackWeight(x, dy, out, c.w, c.p);
        return out;
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
test("pooling: max, argmax, avg and avg backward with stride and padding, NaN windows", { skip: !N }, () => {
  const rng = prng(15);
  const params: Pool2dParams[] = [
    { kernel: [2, 2], stride: [2, 2], padding: [0, 0] },
    { kernel: [3, 3], stride: [2, 2], padding: [1, 1] },
    { kernel: [3, 2], stride: [1, 2], padding: [1, 0] },
    { kernel: [1, 1], stride: [1, 1], padding: [0, 0] },
  ];
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const p of params) {
      for (const [shape, how] of [
        [2, 3, 9, 8],
        [1, 2, 5, 5],
        [2, 3, 14, 14], // rows of 7 windows (2x2): the 128-bit / overlapping-vector paths of the 2x2 kernel
        [1, 2, 6, 28],
        [1, 2, 3, 301],
      ].flatMap((s) => [
        [s, "contiguous"] as const,
        [s, LAYOUTS[Math.floor(rng() * LAYOUTS.length)]] as const,
      ])) {
        const oh = Math.floor((shape[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1;
        const ow = Math.floor((shape[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1;
        const y = [shape[0], shape[1], oh, ow];
        const x = makeView(shape, dtype, how, rng, "normal");
        const dy = makeView(y, dtype, "gaps", rng, "plain");
        const name = `${dtype} [${shape}] ${JSON.stringify(p)} ${how}`;
        const tol = tolFor(dtype, { rtol: 1e-6, atol: 1e-6 });
        check(`maxPool2d ${name}`, EXACT, (b) => {
          const out = b.alloc(dtype, size(y));
          b.maxPool2d(x, out, y, p);
          return out;
        });
        check(`maxPool2dArgmax ${name}`, EXACT, (b) => {
          const out = b.alloc("int32", size(y));
          b.maxPool2dArgmax(x, out, y, p);
          return out;
        });
        check(`avgPool2d ${name}`, tol, (b) => {
          const out = b.alloc(dtype, size(y));
          b.avgPool2d(x, out, y, p);
          return out;
        });
        check(`avgPool2dBackward ${name}`, tol, (b) => {
          const out = b.alloc(dtype, size(shape));
          b.avgPool2dBackward(dy, out, shape, p);
          return out;
        });
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
test("maxPool2dBackward: tiled, disjoint, overlapping and padded windows, ties/NaN, strided x and dy, empty", {
  skip: !N,
}, () => {
  const rng = prng(21);
  const params: Pool2dParams[] = [
    { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }, // tiled 2x2: the fused fast path
    { kernel: [3, 2], stride: [3, 2], padding: [0, 0] }, // tiled, other sizes
    { kernel: [2, 2], stride: [3, 3], padding: [0, 0] }, // disjoint with gaps
    { kernel: [2, 2], stride: [2, 2], padding: [1, 1] }, // disjoint, padded
    { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }, // overlapping
    { kernel: [3, 2], stride: [1, 2], padding: [1, 0] }, // overlapping rows only
    { kernel: [1, 1], stride: [1, 1], padding: [0, 0] },
  ];
  const shapes = [
    [2, 3, 9, 8],
    [1, 2, 5, 5],
    [3, 1, 7, 33],
    [2, 3, 14, 14], // 7 windows a row: 128-bit float vectors / a 256-bit double vector plus an overlapping one
    [1, 2, 6, 28], // 14 windows a row: a full and an overlapping 256-bit float vector
    [1, 2, 3, 301],
    [0, 3, 4, 4],
    [2, 0, 4, 4],
    [1, 2, 1, 1], // smaller than most kernels: no window at all, dx is all zeros
  ];
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const p of params) {
      for (const shape of shapes) {
        const oh = Math.floor((shape[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1;
        const ow = Math.floor((shape[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1;
        const y = [shape[0], shape[1], Math.max(oh, 0), Math.max(ow, 0)];
        for (const how of ["contiguous", LAYOUTS[Math.floor(rng() * LAYOUTS.length)]] as const) {
          // "normal" draws 10% special values: NaN, +-Inf, +-0 and repeated values, so ties and NaN windows occur
          const x = makeView(shape, dtype, how, rng, "normal");
          const dy = makeView(y, dtype, how === "contiguous" ? "contiguous" : "gaps", rng, "normal");
          // float64 accumulation in the same order on both sides: bit-identical results
          check(`maxPool2dBackward ${dtype} [${shape}] ${JSON.stringify(p)} ${how}`, EXACT, (b) => {
            const out = b.alloc(dtype, size(shape));
            out.fill(7); // the kernel must write every element, not rely on a zeroed buffer
            b.maxPool2dBackward(x, dy, out, shape, p);
            return out;
          });
        }
      }
    }
  }
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

// ---------------------------------------------------------------------------------------------------------
function indexView(shape: number[], extent: number, how: Layout, rng: () => number): View {
  const v = makeView(shape, "int32", how, rng, "plain");
  for (let i = 0; i < v.data.length; i++) v.data[i] = Math.floor(rng() * extent);
  return v;
}

test("gather and scatterAdd along every axis, strided operands, duplicate indices", { skip: !N }, () => {
  const rng = prng(16);
  const xShape = [4, 5, 6];
  for (const dtype of DTYPES) {
    for (let axis = 0; axis < 3; axis++) {
      for (const extent of [3, 7]) {
        const iShape = [...xShape];
        iShape[axis] = extent;
        const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const x = makeView(xShape, dtype, how, rng);
        const idx = indexView(iShape, xShape[axis], rng() < 0.5 ? "contiguous" : "transposed", rng);
        check(`gather ${dtype} axis ${axis} extent ${extent} ${how}`, EXACT, (b) => {
          const out = b.alloc(dtype, size(iShape));
          b.gather(x, axis, idx, out);
          return out;
        });
        if (dtype === "bool") continue;
        const src = makeView(iShape, dtype, how, rng, "plain");
        check(
          `scatterAdd ${dtype} axis ${axis} extent ${extent} ${how}`,
          tolFor(dtype, { rtol: 1e-6, atol: 1e-6 }),
          (b) => {
            const out = b.alloc(dtype, size(xShape));
            for (let i = 0; i < out.length; i++) out[i] = i % 3; // accumulates into existing contents
            b.scatterAdd(src, axis, idx, out, xShape);
            return out;
          },
        );
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
test("adamUpdate: Adam, AdamW, AMSGrad and maximize, float32 and float64, strided gradients", {
  skip: !N,
}, () => {
  const rng = prng(18);
  for (const dtype of ["float32", "float64"] as const) {
    for (const [decoupled, amsgrad, maximize, weightDecay] of [
      [false, false, false, 0],
      [false, true, false, 0.01],
      [true, false, true, 0.1],
      [true, true, false, 0.05],
    ] as const) {
      for (const [shape, how] of [
        [[1], "contiguous"],
        [[33], "reversed"],
        [[70, 401], "transposed"],
      ] as const) {
        const n = size(shape);
        const g = makeView(shape, dtype, how, rng, "small");
        const init = (gen: Gen) => makeView([n], dtype, "contiguous", rng, gen).data;
        const p0 = init("plain");
        const m0 = init("small");
        const v0 = init("positive");
        const x0 = init("positive");
        const h = {
          lr: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay,
          decoupled,
          maximize,
          bc1: 1 - 0.9 ** 3,
          bc2Sqrt: Math.sqrt(1 - 0.999 ** 3),
        };
        check(
          `adamUpdate ${dtype} [${shape}] ${how} ${JSON.stringify({ decoupled, amsgrad, maximize })}`,
          tolFor(dtype, { rtol: 1e-6, atol: 1e-7 }),
          (b) => {
            const [pp, m, v, x] = [p0.slice(), m0.slice(), v0.slice(), x0.slice()];
            b.adamUpdate!(pp, g, m, v, amsgrad ? x : null, h);
            const all = b.alloc(dtype, 4 * n);
            all.set(pp);
            all.set(m, n);
            all.set(v, 2 * n);
            all.set(x, 3 * n);
            return all;
          },
        );
      }
    }
  }
});
