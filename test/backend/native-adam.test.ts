/**
 * The native fused Adam update with a transposed gradient (a Linear weight's gradient as backward leaves it:
 * the transposed view of x^T dy), which the kernel reads in tiles: agrees with the js reference for sizes
 * around the tile (32 rows x 128 columns), float32 (computed in float32: a few ulp) and float64 (within 1e-12),
 * Adam and AdamW, over several steps; and subnormal moments flushed to zero (the kernel's FTZ/DAZ).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AdamUpdateParams, View } from "../../src/backend/backend.ts";
import { setNativeIsa, setNumThreads } from "../../src/backend/native/index.ts";
import type { DType, TypedArray } from "../../src/dtype.ts";
import { allocTyped } from "../../src/dtype.ts";
import { check, DEFAULT_THREADS, ISAS, N, prng } from "./native-helpers.ts";

function randomArray(dtype: DType, n: number, rng: () => number, scale = 1): TypedArray {
  const a = allocTyped(dtype, n);
  for (let i = 0; i < n; i++) a[i] = (rng() * 2 - 1) * scale;
  return a;
}

test("Adam with a transposed gradient agrees with js (tile edges, several steps)", { skip: !N }, () => {
  const rng = prng(4242);
  const shapes: [number, number][] = [
    [32, 128],
    [33, 129],
    [31, 257],
    [300, 37],
    [33, 513],
    [256, 784],
    [2, 1000],
  ];
  for (const dtype of ["float32", "float64"] as DType[]) {
    const tol = dtype === "float32" ? { rtol: 1e-6, atol: 1e-7 } : { rtol: 1e-12, atol: 1e-14 };
    for (const [rows, cols] of shapes) {
      for (const decoupled of [false, true]) {
        const n = rows * cols;
        const p0 = randomArray(dtype, n, rng);
        const m0 = randomArray(dtype, n, rng, 0.1);
        const v0 = allocTyped(dtype, n);
        for (let i = 0; i < n; i++) v0[i] = rng() * 0.01;
        // three gradients, each stored as its transpose [cols, rows], seen through a transposed view
        const gs = [0, 1, 2].map(() => randomArray(dtype, n, rng));
        check(`adam ${dtype} [${rows}, ${cols}] g transposed decoupled ${decoupled}`, tol, (b) => {
          const out = allocTyped(dtype, 3 * n);
          const p = out.subarray(0, n);
          const m = out.subarray(n, 2 * n);
          const v = out.subarray(2 * n);
          p.set(p0);
          m.set(m0);
          v.set(v0);
          for (let t = 1; t <= 3; t++) {
            const g: View = { data: gs[t - 1], shape: [rows, cols], strides: [1, rows], offset: 0 };
            const h: AdamUpdateParams = {
              lr: 1e-2,
              beta1: 0.9,
              beta2: 0.999,
              eps: 1e-8,
              weightDecay: decoupled ? 0.05 : 0.01,
              decoupled,
              maximize: false,
              bc1: 1 - 0.9 ** t,
              bc2Sqrt: Math.sqrt(1 - 0.999 ** t),
            };
            b.adamUpdate!(p, g, m, v, null, h);
          }
          return out;
        });
      }
    }
  }
});

test("Adam flushes subnormal moments to zero (FTZ/DAZ in the kernel) and leaves the caller's MXCSR as it was", {
  skip: !N,
}, () => {
  const b = N!;
  // gradients of 1e-20: g^2 = 1e-40 is subnormal in float32, so v would be; m = 0.1 g is normal
  const n = 70_000; // above the kernel's parallel grain: both threads run a part on 2 threads
  const h: AdamUpdateParams = {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    decoupled: false,
    maximize: false,
    bc1: 0.1,
    bc2Sqrt: Math.sqrt(1 - 0.999),
  };
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const threads of [1, DEFAULT_THREADS]) {
      setNumThreads(threads);
      for (const strided of [false, true]) {
        const p = new Float32Array(n).fill(0.5);
        const m = new Float32Array(n);
        const v = new Float32Array(n);
        const g = new Float32Array(n).fill(1e-20);
        const view: View = strided
          ? { data: g, shape: [350, 200], strides: [1, 350], offset: 0 }
          : { data: g, shape: [n], strides: [1], offset: 0 };
        b.adamUpdate!(p, view, m, v, null, h);
        const what = `${isa}, ${threads} thread(s), ${strided ? "transposed" : "contiguous"} gradient`;
        assert.ok(
          v.every((x) => x === 0),
          `${what}: v flushed to zero`,
        );
        assert.ok(
          m.every((x) => Math.abs(x - Math.fround(0.1 * 1e-20)) <= 1e-27),
          `${what}: m = (1 - b1) g`,
        );
        // p -= (lr / bc1) m / (sqrt(0) / bc2 + eps) = 0.01 * 1e-21 / 1e-8 = 1e-15: below an ulp of 0.5
        assert.ok(
          p.every((x) => x === 0.5),
          `${what}: p unchanged at float32 precision`,
        );
      }
    }
  }
  setNativeIsa(ISAS[0]);
  setNumThreads(DEFAULT_THREADS);
  // the calling thread's floating-point mode is restored: a subnormal product still comes out subnormal
  const x = new Float32Array([1e-20]);
  const out = new Float32Array(1);
  b.binary!(
    "mul",
    { data: x, shape: [1], strides: [1], offset: 0 },
    { data: x, shape: [1], strides: [1], offset: 0 },
    out,
  );
  assert.ok(
    out[0] > 0 && out[0] < 1.2e-38,
    `1e-20 * 1e-20 after the update: ${out[0]} (subnormal, not flushed)`,
  );
});
