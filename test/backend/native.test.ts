/**
 * Conformance of the native backend (C++ N-API addon) with the js reference backend.
 *
 * Every kernel runs on random inputs in both backends and the outputs are compared: float32 with a tolerance
 * (the native kernels round in float32 where the js backend accumulates in float64), float64 tightly,
 * int32 and bool exactly. Inputs come in every layout a backend must accept: contiguous, transposed,
 * sliced with gaps, negative strides, offsets and broadcast (stride 0), at odd sizes that exercise the
 * SIMD loop tails, empty tensors, and all dtypes. Each case is checked against every instruction-set build
 * this CPU can run (AVX-512, AVX2, baseline) and with 1 and all threads.
 *
 * This file covers the elementwise kernels, copies and reductions; native-linalg.test.ts covers dot, conv,
 * pooling, indexing and the fused Adam update. The addon is built by `npm run build:native` (also run by
 * `npm ci`); this file fails if it is missing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ACTIVATIONS, type BinaryOp, UNARY_OPS, type UnaryOp, type View } from "../../src/backend/backend.ts";
import { setNativeIsa, setNumThreads } from "../../src/backend/native/index.ts";
import type { DType } from "../../src/dtype.ts";
import {
  check,
  DEFAULT_THREADS,
  DTYPES,
  EMPTY,
  EXACT,
  ISAS,
  LAYOUTS,
  type Layout,
  loaded,
  makeView,
  N,
  prng,
  SHAPES,
  size,
  tolFor,
} from "./native-helpers.ts";

test("the native addon loads (built by npm run build:native)", () => {
  assert.ok("backend" in loaded, "error" in loaded ? loaded.error : "");
});

// ---------------------------------------------------------------------------------------------------------
const UNARY: readonly UnaryOp[] = UNARY_OPS;

test("unary: every op, dtype and layout", { skip: !N }, () => {
  const rng = prng(1);
  for (const dtype of DTYPES) {
    for (const op of UNARY) {
      for (const shape of [...SHAPES, ...EMPTY]) {
        const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const x = makeView(shape, dtype, how, rng);
        check(`unary ${op} ${dtype} [${shape}] ${how}`, tolFor(dtype, { rtol: 2e-6, atol: 1e-6 }), (b) => {
          const out = b.alloc(dtype, size(shape));
          b.unary(op, x, out);
          return out;
        });
      }
    }
  }
});

test("unary: large contiguous and strided inputs (parallel chunks)", { skip: !N }, () => {
  const rng = prng(2);
  for (const op of ["exp", "relu", "neg", "tanh"] as const) {
    for (const how of ["contiguous", "transposed"] as const) {
      const x = makeView([300, 401], "float32", how, rng, "plain");
      check(`unary ${op} [300, 401] ${how}`, { rtol: 2e-6, atol: 1e-6 }, (b) => {
        const out = b.alloc("float32", 300 * 401);
        b.unary(op, x, out);
        return out;
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
test("biasAct and actGrad: every activation, float dtypes, broadcast bias, strided operands", {
  skip: !N,
}, () => {
  const rng = prng(21);
  const shapes = [...SHAPES, ...EMPTY, [64, 33, 7]];
  for (const dtype of ["float32", "float64"] as const) {
    const tol = tolFor(dtype, { rtol: 4e-6, atol: 2e-6 }, { rtol: 1e-14, atol: 1e-15 });
    for (const act of ACTIVATIONS) {
      for (const shape of shapes) {
        const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const x = makeView(shape, dtype, how, rng);
        // the bias: one value per position of the last axis, broadcast over the others (stride 0)
        const last = shape.length - 1;
        const row = makeView(last >= 0 ? [shape[last]] : [], dtype, "contiguous", rng);
        const b: View = { ...row, shape, strides: shape.map((_, d) => (d === last ? row.strides[0] : 0)) };
        const what = `${act} ${dtype} [${shape}] ${how}`;
        for (const bias of [b, null]) {
          check(`biasAct ${what}${bias ? "" : " no bias"}`, tol, (be) => {
            const out = be.alloc(dtype, size(shape));
            be.biasAct(act, x, bias, out);
            return out;
          });
        }
        // y as the activation's own output (relu with exact zeros, tanh/sigmoid in range), ct any layout
        const yv = makeView(shape, dtype, "contiguous", rng);
        const y = { ...yv, data: yv.data.map((v) => (act === "relu" ? Math.max(v, 0) : Math.tanh(v))) };
        const ct = makeView(shape, dtype, LAYOUTS[Math.floor(rng() * LAYOUTS.length)], rng);
        check(`actGrad ${what}`, tol, (be) => {
          const out = be.alloc(dtype, size(shape));
          be.actGrad(act, y, ct, out);
          return out;
        });
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
const ARITH: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"];
const COMPARE: readonly BinaryOp[] = ["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "xor"];

test("binary: every op and dtype, broadcast and strided operands", { skip: !N }, () => {
  const rng = prng(3);
  for (const dtype of DTYPES) {
    for (const op of [...ARITH, ...COMPARE]) {
      const outType: DType = COMPARE.includes(op) ? "bool" : dtype;
      for (const shape of [...SHAPES, ...EMPTY]) {
        const ha = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const hb = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const a = makeView(shape, dtype, ha, rng);
        const b2 = makeView(shape, dtype, hb, rng, op === "pow" && dtype === "int32" ? "index" : "normal");
        check(
          `binary ${op} ${dtype} [${shape}] ${ha}/${hb}`,
          tolFor(outType, { rtol: 1e-6, atol: 0 }),
          (b) => {
            const out = b.alloc(outType, size(shape));
            b.binary(op, a, b2, out);
            return out;
          },
        );
      }
    }
  }
});

test("binary: scalar operands (stride 0 everywhere) and large broadcasts", { skip: !N }, () => {
  const rng = prng(4);
  const full = makeView([250, 300], "float32", "contiguous", rng, "plain");
  const row = makeView([300], "float32", "contiguous", rng, "plain");
  const rowB: View = { data: row.data, shape: [250, 300], strides: [0, 1], offset: 0 };
  const col = makeView([250], "float32", "contiguous", rng, "plain");
  const colB: View = { data: col.data, shape: [250, 300], strides: [1, 0], offset: 0 };
  const scalar: View = { data: new Float32Array([2.5]), shape: [250, 300], strides: [0, 0], offset: 0 };
  for (const [name, other] of [
    ["row", rowB],
    ["col", colB],
    ["scalar", scalar],
  ] as const) {
    for (const op of ["add", "mul", "maximum", "lt"] as const) {
      const outType: DType = op === "lt" ? "bool" : "float32";
      check(`binary ${op} full x ${name}`, { rtol: 1e-6, atol: 0 }, (b) => {
        // both operand orders; the second writes through a subarray (a typed array with a byte offset)
        const out = b.alloc(outType, 2 * 250 * 300);
        b.binary(op, full, other, out);
        b.binary(op, other, full, out.subarray(250 * 300));
        return out;
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
test("where: every dtype, broadcast condition", { skip: !N }, () => {
  const rng = prng(5);
  for (const dtype of DTYPES) {
    for (const shape of [...SHAPES, ...EMPTY]) {
      const c = makeView(shape, "bool", LAYOUTS[Math.floor(rng() * LAYOUTS.length)], rng);
      const a = makeView(shape, dtype, LAYOUTS[Math.floor(rng() * LAYOUTS.length)], rng);
      const b2 = makeView(shape, dtype, LAYOUTS[Math.floor(rng() * LAYOUTS.length)], rng);
      check(`where ${dtype} [${shape}]`, EXACT, (b) => {
        const out = b.alloc(dtype, size(shape));
        b.where(c, a, b2, out);
        return out;
      });
    }
  }
});

test("cast: every pair of dtypes, including NaN, infinities and out-of-range floats", { skip: !N }, () => {
  const rng = prng(6);
  const wide: View = {
    data: new Float64Array([
      Number.NaN,
      Infinity,
      -Infinity,
      3e9,
      -3e9,
      2 ** 32 + 5,
      -(2 ** 40) - 3.7,
      2.9,
      -2.9,
      1e300,
    ]),
    shape: [10],
    strides: [1],
    offset: 0,
  };
  for (const to of DTYPES) {
    check(`cast float64 specials -> ${to}`, EXACT, (b) => {
      const out = b.alloc(to, 10);
      b.cast(wide, out);
      return out;
    });
    for (const from of DTYPES) {
      for (const shape of [...SHAPES, ...EMPTY]) {
        const x = makeView(shape, from, LAYOUTS[Math.floor(rng() * LAYOUTS.length)], rng);
        check(`cast ${from} -> ${to} [${shape}]`, EXACT, (b) => {
          const out = b.alloc(to, size(shape));
          b.cast(x, out);
          return out;
        });
      }
    }
  }
});

test("copy: strided source into strided destination", { skip: !N }, () => {
  const rng = prng(7);
  for (const dtype of DTYPES) {
    for (const shape of [[5, 7], [3, 4, 6], [33], [2, 0, 3]] as const) {
      for (const hs of LAYOUTS) {
        for (const hd of ["contiguous", "transposed", "gaps", "reversed", "offset"] as const) {
          const src = makeView(shape, dtype, hs, rng);
          const dstTemplate = makeView(shape, dtype, hd, rng);
          check(`copy ${dtype} [${shape}] ${hs} -> ${hd}`, EXACT, (b) => {
            const dst = { ...dstTemplate, data: dstTemplate.data.slice() };
            b.copy(src, dst);
            return dst.data;
          });
        }
      }
    }
  }
});

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

// ---------------------------------------------------------------------------------------------------------
function axisSubsets(nd: number): number[][] {
  const out: number[][] = [];
  for (let m = 0; m < 1 << nd; m++) out.push([...Array(nd).keys()].filter((i) => m & (1 << i)));
  return out;
}

test("reduce: sum / prod / max / min over every subset of axes, every layout", { skip: !N }, () => {
  const rng = prng(8);
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const op of ["sum", "prod", "max", "min"] as const) {
      for (const shape of [[5, 6, 7], [2, 33, 17], [17], [3, 1, 4, 2]]) {
        for (const axes of axisSubsets(shape.length)) {
          const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
          const x = makeView(shape, dtype, how, rng, op === "prod" ? "small" : "normal");
          const outSize = size(shape.filter((_, i) => !axes.includes(i)));
          check(
            `reduce ${op} ${dtype} [${shape}] axes [${axes}] ${how}`,
            tolFor(dtype, { rtol: 1e-6, atol: 1e-6 }),
            (b) => {
              const out = b.alloc(dtype, outSize);
              b.reduce(op, x, axes, out);
              return out;
            },
          );
        }
      }
    }
  }
});

test("reduce: empty axes, empty tensors and long reductions (chunked and column paths)", { skip: !N }, () => {
  const rng = prng(9);
  const cases: [readonly number[], number[], Layout][] = [
    [[4, 0, 3], [1], "contiguous"],
    [[4, 0, 3], [0, 2], "contiguous"],
    [[0], [0], "contiguous"],
    [[200000], [0], "contiguous"],
    [[3, 70000], [1], "contiguous"],
    [[70000, 3], [0], "contiguous"],
    [[500, 300], [0], "gaps"],
    [[300, 500], [1], "transposed"],
    [[2, 40000], [1], "reversed"],
  ];
  for (const dtype of ["float32", "float64", "int32"] as const) {
    for (const op of ["sum", "max", "min"] as const) {
      for (const [shape, axes, how] of cases) {
        const x = makeView(shape, dtype, how, rng, "plain");
        const outSize = size(shape.filter((_, i) => !axes.includes(i)));
        check(
          `reduce ${op} ${dtype} [${shape}] axes [${axes}] ${how}`,
          tolFor(dtype, { rtol: 1e-5, atol: 1e-3 }),
          (b) => {
            const out = b.alloc(dtype, outSize);
            b.reduce(op, x, axes, out);
            return out;
          },
        );
      }
    }
  }
});

test("argReduce: first max / min, NaN wins, every axis and layout", { skip: !N }, () => {
  const rng = prng(10);
  for (const dtype of ["float32", "float64", "int32", "bool"] as const) {
    for (const op of ["argmax", "argmin"] as const) {
      for (const [shape, gen] of [
        [[5, 6, 7], "normal"],
        [[40, 33], "normal"],
        [[300], "normal"],
        [[9, 1], "normal"],
        [[4, 1000], "plain"],
        [[3, 517], "normal"],
      ] as const) {
        for (let axis = 0; axis < shape.length; axis++) {
          const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
          // few distinct values, so ties are frequent; "normal" adds NaNs and infinities
          const x = makeView(shape, dtype, how, rng, gen);
          if (dtype !== "bool") for (let i = 0; i < x.data.length; i++) x.data[i] = Math.round(x.data[i]);
          const outSize = size(shape) / shape[axis];
          check(`${op} ${dtype} [${shape}] axis ${axis} ${how}`, EXACT, (b) => {
            const out = b.alloc("int32", outSize);
            b.argReduce(op, x, axis, out);
            return out;
          });
        }
      }
    }
  }
});

test("cumsum: every axis, both directions, int32 and bool into int32", { skip: !N }, () => {
  const rng = prng(11);
  const pairs: [DType, DType][] = [
    ["float32", "float32"],
    ["float64", "float64"],
    ["int32", "int32"],
    ["bool", "int32"],
  ];
  for (const [from, to] of pairs) {
    for (const shape of [[5, 6, 7], [40, 33], [257], [9, 1], [3, 0]]) {
      for (let axis = 0; axis < shape.length; axis++) {
        for (const reverse of [false, true]) {
          const how = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
          const x = makeView(shape, from, how, rng, "plain");
          check(
            `cumsum ${from} [${shape}] axis ${axis} ${reverse ? "reverse" : ""} ${how}`,
            tolFor(to, { rtol: 1e-6, atol: 1e-5 }),
            (b) => {
              const out = b.alloc(to, size(shape));
              b.cumsum(x, axis, reverse, out);
              return out;
            },
          );
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
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
