/**
 * Conformance of the wasm backend with the js reference backend, part 2: batched GEMM (every transpose
 * combination, broadcast batch, odd sizes, sizes that cross the GEMM's cache blocks, empty inner dimension),
 * conv2d and its two adjoints (stride, padding, dilation, groups, 1x1), pooling, and the fused Adam update.
 * float32 results are compared with the float64-accumulating reference within the classic dot-product error
 * bound |c - c_ref| <= gamma * sum |a| |b| (computed by the reference on absolute values).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Conv2dParams, Pool2dParams, View } from "../../src/backend/backend.ts";
import type { DType } from "../../src/dtype.ts";
import { sizeOf } from "../../src/shape.ts";
import { createWasmBackend } from "../../src/backend/wasm/index.ts";
import {
  absView,
  inWasm,
  J,
  type Layout,
  layout,
  outputs,
  prng,
  same,
  values,
  W,
  within,
} from "./wasm-helpers.ts";

const U32 = 6e-8; // unit roundoff of float32
const U64 = 1.2e-16;

/** A matrix operand [..., r, c] in the given layout (heap or plain storage). */
function operand(rng: () => number, shape: number[], how: Layout, dt: DType) {
  return layout(values(rng, sizeOf(shape), dt), shape, how, dt, rng() < 0.6, rng).view;
}

function checkDot(
  rng: () => number,
  dt: DType,
  batch: number[],
  m: number,
  k: number,
  n: number,
  la: Layout,
  lb: Layout,
) {
  const a = operand(rng, [...batch, m, k], la, dt);
  const b = operand(rng, [...batch, k, n], lb, dt);
  const size = sizeOf(batch) * m * n;
  const [e, w] = outputs(dt, size);
  J.dot(a, b, e);
  const wasm = inWasm("dot", () => W.dot(a, b, w));
  assert.equal(wasm, dt !== "int32", `dot ${dt} runs in wasm`);
  const what = `dot ${dt} batch [${batch}] ${m}x${k}x${n} ${la}/${lb}`;
  if (dt === "int32") return same(w, e, 0, what);
  const [bound] = outputs("float64", size);
  J.dot(absView(a), absView(b), bound);
  within(w, e, bound, 2 * (dt === "float32" ? U32 : U64) * (k + 2), what);
}

test("dot: every transpose combination, odd sizes, float32 / float64 / int32", () => {
  const rng = prng(21);
  const sizes = [1, 3, 7, 17, 33];
  const layouts: Layout[] = ["contiguous", "transposed", "scrambled"];
  for (const dt of ["float32", "float64", "int32"] as const) {
    for (const m of sizes) {
      for (const la of layouts) {
        for (const lb of layouts) {
          const k = sizes[Math.floor(rng() * sizes.length)];
          const n = sizes[Math.floor(rng() * sizes.length)];
          checkDot(rng, dt, [], m, k, n, la, lb);
        }
      }
    }
  }
});

test("dot: sizes crossing the GEMM blocks (m > 128, k > 256, n > 1024) and 257", () => {
  const rng = prng(22);
  checkDot(rng, "float32", [], 129, 257, 1030, "contiguous", "contiguous");
  checkDot(rng, "float32", [], 257, 33, 257, "transposed", "transposed");
  checkDot(rng, "float32", [], 15, 300, 17, "scrambled", "transposed");
  checkDot(rng, "float64", [], 65, 257, 67, "transposed", "scrambled");
});

test("dot: batched, with a broadcast (stride 0) batch axis, empty k and empty batch", () => {
  const rng = prng(23);
  for (const dt of ["float32", "float64"] as const) {
    checkDot(rng, dt, [2, 3], 5, 7, 9, "contiguous", "transposed");
    checkDot(rng, dt, [3, 2], 4, 17, 3, "broadcast", "scrambled");
    checkDot(rng, dt, [4], 3, 5, 6, "transposed", "broadcast");
    // k = 0: the product is all zeros, even into a dirty output
    const a: View = { data: W.alloc(dt, 0), shape: [2, 3, 0], strides: [0, 0, 1], offset: 0 };
    const b: View = { data: W.alloc(dt, 0), shape: [2, 0, 4], strides: [0, 4, 1], offset: 0 };
    const out = W.alloc(dt, 24).fill(7);
    assert.ok(inWasm("dot", () => W.dot(a, b, out)));
    assert.ok(out.every((x) => x === 0));
    checkDot(rng, dt, [0], 3, 4, 5, "contiguous", "contiguous");
  }
  // 0 * Inf and 0 * NaN are not skipped
  const z: View = { data: W.alloc("float32", 4), shape: [2, 2], strides: [2, 1], offset: 0 };
  const inf: View = {
    data: Float32Array.from([Infinity, 1, Number.NaN, 2]),
    shape: [2, 2],
    strides: [2, 1],
    offset: 0,
  };
  const out = W.alloc("float32", 4);
  W.dot(z, inf, out);
  same(out, Float32Array.from([Number.NaN, 0, Number.NaN, 0]), 0, "0 * Inf and 0 * NaN give NaN");
});

test("dot and conv on a worker pool: bit-identical to one thread (column and row splits)", () => {
  const one = createWasmBackend({ threads: 1 });
  const pool = createWasmBackend({ threads: 3 });
  assert.equal(one.threads, 1);
  assert.equal(pool.threads, 3);
  const rng = prng(26);
  for (const [m, k, n] of [
    [61, 300, 1033],
    [1030, 129, 37],
  ]) {
    const a = operand(rng, [m, k], "transposed", "float32");
    const b = operand(rng, [k, n], "scrambled", "float32");
    const [e1, e2] = [one.alloc("float32", m * n), pool.alloc("float32", m * n)];
    one.dot(a, b, e1);
    pool.dot(a, b, e2);
    same(e2, e1, 0, `pool dot ${m}x${k}x${n}`);
    const [ref] = outputs("float32", m * n);
    J.dot(a, b, ref);
    const [bound] = outputs("float64", m * n);
    J.dot(absView(a), absView(b), bound);
    within(e2, ref, bound, 2 * U32 * (k + 2), `pool dot vs js ${m}x${k}x${n}`);
  }
  const p: Conv2dParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
  const x = operand(rng, [2, 16, 20, 20], "contiguous", "float32");
  const w = operand(rng, [32, 16, 3, 3], "contiguous", "float32");
  const y1 = one.alloc("float32", 2 * 32 * 400);
  const y2 = pool.alloc("float32", 2 * 32 * 400);
  one.conv2d(x, w, y1, [2, 32, 20, 20], p);
  pool.conv2d(x, w, y2, [2, 32, 20, 20], p);
  same(y2, y1, 0, "pool conv2d");
  pool.stopThreads();
  assert.equal(pool.threads, 1);
  const y3 = pool.alloc("float32", 2 * 32 * 400);
  pool.conv2d(x, w, y3, [2, 32, 20, 20], p);
  same(y3, y1, 0, "conv2d after stopThreads");
});

interface ConvCase {
  x: [number, number, number, number];
  o: number;
  k: [number, number];
  p: Conv2dParams;
}

const conv = (
  x: ConvCase["x"],
  o: number,
  k: [number, number],
  stride: [number, number],
  padding: [number, number],
  dilation: [number, number],
  groups: number,
): ConvCase => ({ x, o, k, p: { stride, padding, dilation, groups } });

const CONVS: ConvCase[] = [
  conv([2, 3, 7, 9], 4, [3, 3], [1, 1], [1, 1], [1, 1], 1),
  conv([1, 4, 8, 8], 6, [3, 2], [2, 1], [0, 2], [1, 2], 2),
  conv([2, 6, 5, 6], 3, [1, 1], [1, 1], [0, 0], [1, 1], 3),
  conv([1, 2, 9, 7], 2, [2, 3], [3, 2], [2, 1], [2, 1], 1),
  conv([3, 1, 28, 28], 8, [5, 5], [1, 1], [2, 2], [1, 1], 1),
  conv([1, 2, 3, 3], 2, [3, 3], [1, 1], [0, 0], [1, 1], 1),
  conv([2, 4, 7, 7], 4, [1, 1], [2, 2], [0, 0], [1, 1], 4),
  conv([1, 3, 1, 17], 5, [1, 3], [1, 2], [0, 1], [1, 3], 1),
];

function outSize(c: ConvCase): number[] {
  const [n, , h, w] = c.x;
  const oh = Math.floor((h + 2 * c.p.padding[0] - c.p.dilation[0] * (c.k[0] - 1) - 1) / c.p.stride[0]) + 1;
  const ow = Math.floor((w + 2 * c.p.padding[1] - c.p.dilation[1] * (c.k[1] - 1) - 1) / c.p.stride[1]) + 1;
  return [n, c.o, oh, ow];
}

test("conv2d, conv2dBackInput, conv2dBackWeight: stride, padding, dilation, groups, 1x1, strided inputs", () => {
  const rng = prng(24);
  for (const dt of ["float32", "float64"] as const) {
    for (const c of CONVS) {
      for (const how of ["contiguous", "scrambled"] as const) {
        const wShape = [c.o, c.x[1] / c.p.groups, ...c.k];
        const yShape = outSize(c);
        const x = operand(rng, c.x, how, dt);
        const w = operand(rng, wShape, how === "scrambled" ? "contiguous" : "transposed", dt);
        const dy = operand(rng, yShape, how, dt);
        const what = `${dt} x [${c.x}] w [${wShape}] ${JSON.stringify(c.p)} ${how}`;
        const isF32 = dt === "float32";
        const u = isF32 ? U32 : U64;
        const runs: [string, number[], number, (b: typeof J, o: Float64Array | Float32Array) => void][] = [
          ["conv2d", yShape, sizeOf(wShape.slice(1)), (b, o) => b.conv2d(x, w, o, yShape, c.p)],
          ["conv2dBackInput", c.x, c.o * c.k[0] * c.k[1], (b, o) => b.conv2dBackInput(dy, w, o, c.x, c.p)],
          [
            "conv2dBackWeight",
            wShape,
            c.x[0] * sizeOf(yShape.slice(2)),
            (b, o) => b.conv2dBackWeight(x, dy, o, wShape, c.p),
          ],
        ];
        for (const [name, shape, terms, f] of runs) {
          const [e, got] = outputs(dt, sizeOf(shape));
          got.fill(3); // a dirty output must be overwritten
          f(J, e as Float32Array);
          assert.equal(
            inWasm(name, () => f(W, got as Float32Array)),
            isF32,
            `${name} ${dt} runs in wasm`,
          );
          const bound = new Float64Array(sizeOf(shape));
          const ax = absView(x);
          const aw = absView(w);
          const ady = absView(dy);
          if (name === "conv2d") J.conv2d(ax, aw, bound, yShape, c.p);
          else if (name === "conv2dBackInput") J.conv2dBackInput(ady, aw, bound, c.x, c.p);
          else J.conv2dBackWeight(ax, ady, bound, wShape, c.p);
          within(got, e, bound, 2 * u * (terms + 2) + (isF32 ? 0 : 1e-300), `${name} ${what}`);
        }
      }
    }
  }
});

test("pooling: max, argmax, average and its transpose; padding, stride, NaN, strided input, float64", () => {
  const rng = prng(25);
  const cases: [number[], Pool2dParams][] = [
    [[2, 3, 8, 8], { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }],
    [[1, 2, 7, 5], { kernel: [3, 3], stride: [2, 1], padding: [1, 1] }],
    [[3, 1, 5, 9], { kernel: [2, 3], stride: [1, 3], padding: [1, 1] }],
    [[1, 1, 1, 1], { kernel: [1, 1], stride: [1, 1], padding: [0, 0] }],
    [[2, 2, 0, 4], { kernel: [1, 1], stride: [1, 1], padding: [0, 0] }],
    [[2, 1, 7, 8], { kernel: [2, 2], stride: [3, 3], padding: [0, 0] }], // disjoint windows with gaps
    [[1, 2, 9, 6], { kernel: [3, 3], stride: [3, 3], padding: [1, 0] }], // disjoint, padded rows
    [[1, 2, 2, 6], { kernel: [3, 3], stride: [2, 2], padding: [0, 0] }], // no window: dx all zeros
    // wide enough for the four-window SIMD path: stride 1, 2 (with padding) and 3
    [[2, 2, 9, 13], { kernel: [3, 3], stride: [2, 1], padding: [1, 1] }],
    [[1, 2, 6, 18], { kernel: [2, 2], stride: [2, 2], padding: [1, 1] }],
    [[1, 3, 6, 20], { kernel: [2, 3], stride: [1, 3], padding: [0, 1] }],
  ];
  for (const dt of ["float32", "float64"] as const) {
    for (const [xs, p] of cases) {
      for (const how of ["contiguous", "scrambled"] as const) {
        const vals = values(rng, sizeOf(xs), dt);
        for (let i = 0; i < vals.length; i += 5) vals[i] = vals[i + 1] ?? 0; // ties: the first wins
        if (vals.length > 20) vals[13] = Number.NaN;
        if (vals.length > 200) vals[101] = vals[150] = vals[151] = Number.NaN;
        const x = layout(vals, xs, how, dt, rng() < 0.5, rng).view;
        const oh = Math.max(0, Math.floor((xs[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1);
        const ow = Math.max(0, Math.floor((xs[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1);
        const ys = [xs[0], xs[1], oh, ow];
        const what = `${dt} [${xs}] ${JSON.stringify(p)} ${how}`;
        const wasm = dt === "float32";
        let [e, w] = outputs(dt, sizeOf(ys));
        J.maxPool2d(x, e, ys, p);
        assert.equal(
          inWasm("maxPool2d", () => W.maxPool2d(x, w, ys, p)),
          wasm,
        );
        same(w, e, 0, `maxPool2d ${what}`);
        [e, w] = outputs("int32", sizeOf(ys));
        J.maxPool2dArgmax(x, e, ys, p);
        assert.equal(
          inWasm("maxPool2dArgmax", () => W.maxPool2dArgmax(x, w, ys, p)),
          wasm,
        );
        same(w, e, 0, `maxPool2dArgmax ${what}`);
        [e, w] = outputs(dt, sizeOf(ys));
        J.avgPool2d(x, e, ys, p);
        assert.equal(
          inWasm("avgPool2d", () => W.avgPool2d(x, w, ys, p)),
          wasm,
        );
        same(w, e, 0, `avgPool2d ${what}`);
        const dy = layout(values(rng, sizeOf(ys), dt), ys, how, dt, rng() < 0.5, rng).view;
        [e, w] = outputs(dt, sizeOf(xs));
        J.avgPool2dBackward(dy, e, xs, p);
        assert.equal(
          inWasm("avgPool2dBackward", () => W.avgPool2dBackward(dy, w, xs, p)),
          wasm,
        );
        same(w, e, 0, `avgPool2dBackward ${what}`);
        [e, w] = outputs(dt, sizeOf(xs));
        w.fill(5); // every element must be written
        J.maxPool2dBackward(x, dy, e, xs, p);
        assert.equal(
          inWasm("maxPool2dBackward", () => W.maxPool2dBackward(x, dy, w, xs, p)),
          wasm,
        );
        same(w, e, 0, `maxPool2dBackward ${what}`);
      }
    }
  }
});

test("adamUpdate: Adam, AdamW, AMSGrad and maximize, float32 and float64, strided gradients, SIMD tails", () => {
  const rng = prng(18);
  for (const dt of ["float32", "float64"] as const) {
    for (const [decoupled, amsgrad, maximize, weightDecay] of [
      [false, false, false, 0],
      [false, true, false, 0.01],
      [true, false, true, 0.1],
      [true, true, false, 0.05],
    ] as const) {
      for (const [shape, how] of [
        [[1], "contiguous"],
        [[37], "scrambled"],
        [[70, 41], "transposed"],
        [[5, 9], "broadcast"],
      ] as const) {
        const n = sizeOf(shape);
        const g = layout(values(rng, n, dt), [...shape], how, dt, false, rng).view;
        const init = (lo: number) => Float64Array.from(values(rng, n, dt), (x) => Math.abs(x) + lo);
        const [p0, m0, v0, x0] = [values(rng, n, dt), values(rng, n, dt), init(0), init(0.5)];
        const h = {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay,
          decoupled,
          maximize,
          bc1: 1 - 0.9 ** 3,
          bc2Sqrt: Math.sqrt(1 - 0.999 ** 3),
        };
        const run = (b: typeof W | typeof J) => {
          const arrs = [p0, m0, v0, x0].map((a) => {
            const t = b.alloc(dt, n);
            t.set(a);
            return t;
          });
          const ran = inWasm("adamUpdate", () =>
            b.adamUpdate!(arrs[0], g, arrs[1], arrs[2], amsgrad ? arrs[3] : null, h),
          );
          return { arrs, ran };
        };
        const e = run(J).arrs;
        const { arrs: w, ran } = run(W);
        const what = `adamUpdate ${dt} [${shape}] ${how} ${JSON.stringify({ decoupled, amsgrad, maximize })}`;
        assert.ok(ran, `${what} runs in wasm`);
        // float64 follows the reference's operations exactly; float32 computes in float32 (a few ulp)
        for (let i = 0; i < 4; i++) same(w[i], e[i], dt === "float64" ? 0 : 1e-6, `${what} array ${i}`);
      }
    }
  }
});
