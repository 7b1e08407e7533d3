/**
 * The GEMM paths of a linear layer's products (x @ W^T with few rows, W stored [out, in]) in native `dot`, on
 * every instruction-set build with all threads and with one, against the js backend's plain loops:
 * - a row-major A read in place by the micro-kernel (full panels of rows), its short last panel packed, with
 *   last panels of every height class (the 12-row AVX-512 tile ends in 7-8 rows: a two-thirds-height kernel; 1-6
 *   rows: half height, or a third for at most 4; the 6-row AVX2 tile ends in 4 rows: two thirds);
 * - x @ W^T with M small against N and K, computed as (W x^T)^T: W read in place, x^T packed, the product
 *   transposed from scratch; also with W's rows reversed (a negative row stride), in batches, and in float64;
 * - x @ W^T with a narrow W (N <= 12: a classifier's output layer) as dot products along k, two rows of x at a
 *   time on AVX-512 (odd M leaves one), K a multiple of the vector width or not; with x transposed, the GEMM's
 *   narrow last panel instead (a transposed B packed with its zero padding).
 * For N > 12 every element of C is the same sum in the same order whichever path runs, so x @ W^T must equal
 * x @ (W^T made contiguous) bit for bit on each build and thread count. A GEMM epilogue (jit's fusion of the
 * chain after a product) runs on the swapped and the narrow paths' output rows: `dotFused` must equal `dot`
 * then the chain, bit for bit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { FusedInstr, View } from "../../src/backend/backend.ts";
import { dotFusedByOps, fusedProgram } from "../../src/backend/fused.ts";
import { setNativeIsa, setNumThreads } from "../../src/backend/native/index.ts";
import {
  check,
  checkDotLayouts,
  DEFAULT_THREADS,
  gemmOperand,
  gemmTol,
  ISAS,
  N,
  prng,
} from "./native-helpers.ts";

for (const [dtype, m, k, n] of [
  ["float32", 128, 784, 512], // an MLP's first layer at batch 128: swapped, 3 K slices
  ["float32", 20, 70, 150], // 12 + 8 rows; swapped: 150 rows of W = 12 x 12 + 6
  ["float32", 31, 300, 200], // 24 + 7 rows (30 + 1 on AVX2)
  ["float32", 10, 90, 64], // 6 + 4 rows on AVX2, one short panel on AVX-512
  ["float32", 40, 150, 30], // 36 + 4 rows: a third-height last panel on AVX-512
  ["float32", 128, 256, 10], // a narrow transposed B (one panel of 10 real columns), not swapped
  ["float32", 45, 33, 7], // narrower than an SSE vector pair; short panels everywhere
  ["float32", 37, 131, 12], // narrow W: 18 pairs of rows and one; K = 8 x 16 + 3
  ["float32", 128, 128, 10], // the e2e MLP's output layer
  ["float32", 20, 64, 2], // narrow W of 2 rows, K exactly 4 AVX-512 vectors
  ["float64", 25, 77, 11], // narrow W in float64, K = 9 x 8 + 5
  ["float64", 21, 200, 97], // float64 swapped: 97 rows of W end in a 1-row panel
  ["float64", 32, 50, 40], // float64 with a two-thirds panel (12 + 12 + 8)
] as const) {
  test(`dot ${dtype} ${m}x${k} @ ${k}x${n}: row-major A in place, x W^T swapped`, { skip: !N }, () => {
    const rng = prng(m * 13 + k * 7 + n);
    checkDotLayouts(dtype, m, k, n, rng);
  });
}

/** Element (i, j) of a 2-d view. */
const at = (v: View, i: number, j: number) => v.data[v.offset + i * v.strides[0] + j * v.strides[1]];

/** The r x c matrix `v` copied into a view that stores its rows in reverse order (row stride -c). */
function rowsReversed(v: View, r: number, c: number): View {
  const data = new (v.data.constructor as typeof Float32Array)(r * c + 3);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[3 + (r - 1 - i) * c + j] = at(v, i, j);
  return { data, shape: [r, c], strides: [-c, 1], offset: 3 + (r - 1) * c };
}

test("dot x @ W^T with W's rows reversed (negative strides), and in batches", { skip: !N }, () => {
  for (const dtype of ["float32", "float64"] as const) {
    const rng = prng(dtype === "float32" ? 5 : 6);
    const [m, k, n] = [19, 130, 170];
    const x = gemmOperand(m, k, false, dtype, rng);
    const w = gemmOperand(n, k, false, dtype, rng);
    const wr = rowsReversed(w, n, k);
    // W^T of the reversed view: [k, n] with strides [1, -k]
    const wt: View = { ...wr, shape: [k, n], strides: [1, -k] };
    check(`dot ${dtype} x @ W^T, W rows reversed`, gemmTol(dtype, k), (be) => {
      const out = be.alloc(dtype, m * n);
      be.dot(x, wt, out);
      return out;
    });
    // a batch of 3 products, each with its own W (per-thread products) and one W shared by all (stride 0)
    const bx = gemmOperand(3 * m, k, false, dtype, rng);
    const xs: View = { ...bx, shape: [3, m, k], strides: [m * k, k, 1] };
    const bw = gemmOperand(3 * n, k, false, dtype, rng);
    const ws: View = { ...bw, shape: [3, k, n], strides: [n * k, 1, k] };
    const shared: View = { ...w, shape: [3, k, n], strides: [0, 1, k] };
    for (const [what, b] of [
      ["own W", ws],
      ["shared W", shared],
    ] as const) {
      check(`dot ${dtype} batched x @ W^T, ${what}`, gemmTol(dtype, k), (be) => {
        const out = be.alloc(dtype, 3 * m * n);
        be.dot(xs, b, out);
        return out;
      });
    }
  }
});

test("dot x @ W^T equals x @ contiguous(W^T) bit for bit on every build", { skip: !N }, () => {
  for (const [dtype, m, k, n] of [
    ["float32", 128, 784, 512],
    ["float32", 128, 512, 256],
    ["float32", 20, 70, 150],
    ["float64", 21, 200, 97],
  ] as const) {
    const rng = prng(m + k + n);
    const x = gemmOperand(m, k, false, dtype, rng);
    const wt = gemmOperand(k, n, true, dtype, rng); // W^T: W stored [n, k]
    const dense = N!.alloc(dtype, k * n);
    for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) dense[i * n + j] = at(wt, i, j);
    const wc: View = { data: dense, shape: [k, n], strides: [n, 1], offset: 0 };
    for (const isa of ISAS) {
      setNativeIsa(isa);
      for (const threads of DEFAULT_THREADS > 1 ? [DEFAULT_THREADS, 1] : [1]) {
        setNumThreads(threads);
        const got = N!.alloc(dtype, m * n);
        const want = N!.alloc(dtype, m * n);
        N!.dot(x, wt, got);
        N!.dot(x, wc, want);
        for (let i = 0; i < m * n; i++)
          if (!Object.is(got[i], want[i]))
            assert.fail(
              `${dtype} ${m}x${k}@${k}x${n} [${isa}, ${threads}T]: element ${i} ${got[i]} vs ${want[i]}`,
            );
      }
    }
    setNumThreads(0);
    setNativeIsa(ISAS[0]);
  }
});

test("dotFused (a bias-and-ReLU epilogue) on the swapped and narrow x @ W^T paths equals dot then the chain", {
  skip: !N,
}, () => {
  for (const dtype of ["float32", "float64"] as const) {
    // relu(product * 0.75 + bias)
    const instrs: FusedInstr[] = [
      { kind: "input", index: 0 },
      { kind: "input", index: 1 },
      { kind: "const", value: 0.75 },
      { kind: "binary", op: "mul", a: 0, b: 2 },
      { kind: "binary", op: "add", a: 3, b: 1 },
      { kind: "unary", op: "relu", a: 4 },
    ];
    const prog = fusedProgram(dtype, instrs);
    for (const [m, k, n] of [
      [128, 784, 512], // swapped, 4 chunks of 32 rows
      [37, 50, 1000], // swapped, a short last chunk
      [128, 256, 10], // narrow
      [31, 131, 12], // narrow, odd rows
    ] as const) {
      const rng = prng(m + 3 * n);
      const x = gemmOperand(m, k, false, dtype, rng);
      const wt = gemmOperand(k, n, true, dtype, rng);
      const bias = gemmOperand(1, n, false, dtype, rng);
      const biasRow: View = { ...bias, shape: [m, n], strides: [0, 1] };
      for (const isa of ISAS) {
        setNativeIsa(isa);
        for (const threads of DEFAULT_THREADS > 1 ? [DEFAULT_THREADS, 1] : [1]) {
          setNumThreads(threads);
          const got = [N!.alloc(dtype, m * n)];
          const want = [N!.alloc(dtype, m * n)];
          N!.dotFused!(prog, x, wt, [biasRow], got);
          dotFusedByOps(N!, prog, x, wt, [biasRow], want);
          for (let i = 0; i < m * n; i++)
            if (!Object.is(got[0][i], want[0][i]))
              assert.fail(
                `${dtype} ${m}x${k}@${k}x${n} [${isa}, ${threads}T]: element ${i} ${got[0][i]} vs ${want[0][i]}`,
              );
        }
      }
      setNumThreads(0);
      setNativeIsa(ISAS[0]);
    }
  }
});
