/**
 * Conformance of the wasm backend with the js reference backend, part 1: elementwise kernels (unary, binary,
 * where, cast, copy), reductions and the kernels delegated to js, on every dtype, at odd sizes, empty and 0-d
 * shapes, and on every layout (contiguous, scrambled with negative strides and offsets, transposed,
 * broadcast with stride 0); then the memory management (ordinary storage, the scratch arena, its growth, the
 * fallback when it cannot grow). Part 2 (GEMM, conv, pooling, Adam) is wasm-nn.test.ts; the soak of a
 * synchronous loop runs in a child process (wasm-gc-child.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type BinaryOp,
  type ReduceOp,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "../../src/backend/backend.ts";
import { createWasmBackend } from "../../src/backend/wasm/index.ts";
import { allocTyped, type DType } from "../../src/dtype.ts";
import { contiguousStrides, sizeOf } from "../../src/shape.ts";
import { inWasm, J, LAYOUTS, layout, ODD, outputs, prng, same, typed, values, W } from "./wasm-helpers.ts";

const SHAPES: number[][] = [
  [],
  [0],
  [2, 0, 3],
  ...ODD.map((n) => [n]),
  [3, 5],
  [2, 3, 4],
  [4, 1, 5],
  [2, 17, 3],
];
const UNARY: readonly UnaryOp[] = UNARY_OPS.filter((op) => op !== "not");
const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 0.5, 1.5, -2.5, 40, -40, 1e-8, 100, -1e-30];

/** Tolerance of a float unary op: 0 for the exact ones. */
function unaryTol(op: UnaryOp, dt: DType): number {
  const exact = ["neg", "abs", "sign", "relu", "floor", "ceil", "round", "sqrt"].includes(op);
  return exact ? 0 : dt === "float32" ? 1e-6 : 1e-13;
}

test("unary: every op and dtype on every layout and size, heap and plain inputs", () => {
  const rng = prng(11);
  let checked = 0;
  for (const dt of ["float32", "float64", "int32", "bool"] as const) {
    const ops: UnaryOp[] = dt === "bool" ? ["not"] : dt === "int32" ? ["neg", "abs", "sign"] : [...UNARY];
    for (const shape of SHAPES) {
      for (const how of LAYOUTS) {
        const heap = rng() < 0.5;
        const vals = values(rng, sizeOf(shape), dt);
        if (dt.startsWith("float") && shape.length === 1 && shape[0] >= 15) {
          SPECIAL.forEach((s, i) => {
            vals[i] = s;
          });
        }
        if (dt === "int32" && vals.length > 2) vals[1] = -2147483648;
        const { view } = layout(vals, shape, how, dt, heap, rng);
        for (const op of ops) {
          const [e, a] = outputs(dt, sizeOf(shape));
          J.unary(op, view, e);
          assert.ok(
            inWasm("unary", () => W.unary(op, view, a)),
            `${op} ${dt} ran in wasm`,
          );
          same(a, e, unaryTol(op, dt), `${op} ${dt} [${shape}] ${how}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 900);
});

test("unary: the float32 SIMD exp, log, sigmoid and tanh stay within about 2 ulp of js", () => {
  const n = 20011;
  const xs = Float32Array.from({ length: n }, (_, i) => -110 + (220 * i) / (n - 1));
  xs.set([88.72, 88.73, -87.3, -103.9, 0.6249, 0.6251, -0.625, 1e-20, -1e-7, 9.1], 0);
  const x: View = { data: W.alloc("float32", n), shape: [n], strides: [1], offset: 0 };
  x.data.set(xs);
  // log on positives from subnormal to huge, and its special values
  const pos = Float32Array.from({ length: n }, (_, i) => 2 ** (-140 + (268 * i) / (n - 1)));
  pos.set([0, -1, Infinity, Number.NaN, 1, 0.70710677, Math.SQRT1_2, 1 + 2 ** -23, 1 - 2 ** -24, 1e-45], 0);
  const lx: View = { data: W.alloc("float32", n), shape: [n], strides: [1], offset: 0 };
  lx.data.set(pos);
  const [le, lw] = outputs("float32", n);
  J.unary("log", lx, le);
  W.unary("log", lx, lw);
  same(lw.subarray(0, 4), le.subarray(0, 4), 0, "log special values");
  for (let i = 4; i < n; i++) {
    assert.ok(
      lw[i] === le[i] || Math.abs(lw[i] - le[i]) <= 2.5e-7 * Math.abs(le[i]) + 1e-45,
      `log(${pos[i]}) = ${lw[i]}, js ${le[i]}`,
    );
  }
  for (const op of ["exp", "sigmoid", "tanh"] as const) {
    const [e, w] = outputs("float32", n);
    J.unary(op, x, e);
    W.unary(op, x, w);
    for (let i = 0; i < n; i++) {
      const tol = 2.5e-7 * Math.abs(e[i]) + 1e-38; // ~2 ulp, or absolute in the subnormal range
      assert.ok(Math.abs(w[i] - e[i]) <= tol || w[i] === e[i], `${op}(${xs[i]}) = ${w[i]}, js ${e[i]}`);
    }
  }
});

/** The elements of a view in row-major order (through the js copy). */
function contiguous(v: View, dt: DType) {
  const out = allocTyped(dt, sizeOf(v.shape));
  J.copy(v, { data: out, shape: v.shape, strides: contiguousStrides(v.shape), offset: 0 });
  return out;
}

const FLOAT_BINARY: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"];
const COMPARE: readonly BinaryOp[] = ["eq", "ne", "lt", "le", "gt", "ge"];

function binaryOps(dt: DType): BinaryOp[] {
  if (dt === "bool") return ["and", "or", "xor", ...COMPARE];
  return [...FLOAT_BINARY, ...COMPARE];
}

test("binary: every op and dtype, mixed layouts (broadcast, transposed, scrambled), odd and empty sizes", () => {
  const rng = prng(12);
  for (const dt of ["float32", "float64", "int32", "bool"] as const) {
    for (const shape of SHAPES) {
      for (const ha of LAYOUTS) {
        const hb = LAYOUTS[Math.floor(rng() * LAYOUTS.length)];
        const n = sizeOf(shape);
        const va = values(rng, n, dt);
        const vb = values(rng, n, dt);
        if (dt === "int32") {
          // small exponents for pow, a few wrap-arounds for mul, zero divisors
          for (let i = 0; i < n; i++) if (rng() < 0.1) vb[i] = Math.floor(rng() * 5);
          if (n > 3) [va[0], vb[0], va[1], vb[1], vb[2]] = [2147483647, 3, -2147483648, -1, 0];
        }
        if (dt.startsWith("float") && n > 6) {
          [va[0], vb[0], va[1], vb[1], va[2], vb[2], va[3], vb[3]] = [
            Number.NaN,
            1,
            1,
            Number.NaN,
            -0,
            0,
            1,
            0,
          ];
        }
        if (n > 4) vb[4] = va[4]; // an equal pair for the comparisons
        const a = layout(va, shape, ha, dt, rng() < 0.5, rng).view;
        const b = layout(vb, shape, hb, dt, rng() < 0.5, rng).view;
        for (const op of binaryOps(dt)) {
          const outType: DType = COMPARE.includes(op) || dt === "bool" ? "bool" : dt;
          const [e, w] = outputs(outType, n);
          J.binary(op, a, b, e);
          const wasm = inWasm("binary", () => W.binary(op, a, b, w));
          assert.equal(wasm, !(dt === "int32" && (op === "div" || op === "pow")), `${op} ${dt} in wasm`);
          same(w, e, op === "pow" && dt !== "int32" ? 1e-13 : 0, `${op} ${dt} [${shape}] ${ha}/${hb}`);
        }
      }
    }
  }
});

test("binary: a scalar broadcast over a large contiguous operand (both sides), 0-d operands", () => {
  const rng = prng(13);
  const n = 1031;
  for (const dt of ["float32", "float64", "int32"] as const) {
    const x: View = { data: typed(values(rng, n, dt), dt, true), shape: [n], strides: [1], offset: 0 };
    const s: View = { data: typed([3], dt, false), shape: [n], strides: [0], offset: 0 };
    for (const op of ["add", "sub", "mul", "maximum", "lt"] as const) {
      for (const [a, b] of [
        [x, s],
        [s, x],
      ]) {
        const [e, w] = outputs(op === "lt" ? "bool" : dt, n);
        J.binary(op, a, b, e);
        W.binary(op, a, b, w);
        same(w, e, 0, `${op} ${dt} scalar`);
      }
    }
    const z: View = { data: typed([5, 7], dt, true), shape: [], strides: [], offset: 1 };
    const [e, w] = outputs(dt, 1);
    J.binary("mul", z, z, e);
    W.binary("mul", z, z, w);
    same(w, e, 0, `0-d ${dt}`);
  }
});

test("where, cast (every dtype pair, int32 wrap-around, NaN) and strided copy", () => {
  const rng = prng(14);
  const dts = ["float32", "float64", "int32", "bool"] as const;
  for (const shape of [[0], [1], [17], [3, 5], [2, 3, 4], [257]]) {
    const n = sizeOf(shape);
    for (const dt of dts) {
      const cond = layout(values(rng, n, "bool"), shape, "scrambled", "bool", rng() < 0.5, rng).view;
      const a = layout(values(rng, n, dt), shape, "broadcast", dt, true, rng).view;
      const b = layout(values(rng, n, dt), shape, "transposed", dt, false, rng).view;
      const [e, w] = outputs(dt, n);
      J.where(cond, a, b, e);
      assert.ok(inWasm("where", () => W.where(cond, a, b, w)));
      same(w, e, 0, `where ${dt} [${shape}]`);
      const vals = values(rng, n, dt);
      if (dt.startsWith("float") && n > 8) {
        vals.splice(0, 8, Number.NaN, Infinity, -2.5, 2.7, 3e9, -3e9, 1e20, -0);
      }
      const x = layout(vals, shape, "scrambled", dt, rng() < 0.5, rng).view;
      for (const to of dts) {
        const [ce, cw] = outputs(to, n);
        J.cast(x, ce);
        assert.ok(inWasm("cast", () => W.cast(x, cw)));
        same(cw, ce, 0, `cast ${dt} -> ${to} [${shape}]`);
      }
      // strided copy into a transposed heap destination
      const dstData = W.alloc(dt, n);
      const dst: View = { data: dstData, shape: [...shape].reverse(), strides: [], offset: 0 };
      const src = layout(values(rng, n, dt), shape, "scrambled", dt, true, rng).view;
      const dstStrides = contiguousStrides([...shape].reverse()).reverse();
      const expected = allocTyped(dt, n);
      J.copy(src, { data: expected, shape, strides: dstStrides, offset: 0 });
      assert.ok(inWasm("copy", () => W.copy(src, { ...dst, shape, strides: dstStrides })));
      same(dstData, expected, 0, `copy ${dt} [${shape}]`);
      // plain source into the heap, heap source into a plain contiguous destination (at an offset)
      const plainSrc = layout(values(rng, n, dt), shape, "scrambled", dt, false, rng).view;
      const back = allocTyped(dt, n);
      J.copy(plainSrc, { data: back, shape, strides: dstStrides, offset: 0 });
      assert.ok(inWasm("copy", () => W.copy(plainSrc, { ...dst, shape, strides: dstStrides })));
      same(dstData, back, 0, `copy plain -> heap ${dt} [${shape}]`);
      const plainDst = allocTyped(dt, n + 2);
      const heapSrc: View = { data: dstData, shape, strides: dstStrides, offset: 0 };
      assert.ok(
        inWasm("copy", () =>
          W.copy(heapSrc, { data: plainDst, shape, strides: contiguousStrides(shape), offset: 2 }),
        ),
      );
      same(plainDst.subarray(2), contiguous(plainSrc, dt), 0, "heap -> plain");
    }
  }
});

test("reduce: every op, dtype and axis subset, strided inputs, empty axes, 0-d", () => {
  const rng = prng(15);
  const ops: readonly ReduceOp[] = ["sum", "prod", "max", "min"];
  const cases: [number[], number[][]][] = [
    [[], [[], [0]]],
    [[257], [[0], []]],
    [
      [3, 0, 2],
      [[1], [0, 2], [0]],
    ],
    [
      [2, 3, 4, 5],
      [[0], [3], [1, 2], [0, 2, 3], [0, 1, 2, 3], [1, 3], []],
    ],
    [
      [7, 1, 33],
      [[0, 2], [1], [2]],
    ],
    [
      [17, 15],
      [[0], [1], [0, 1]],
    ],
  ];
  for (const dt of ["float32", "float64", "int32"] as const) {
    for (const [shape, axesList] of cases) {
      for (const how of LAYOUTS) {
        const n = sizeOf(shape);
        const vals = values(rng, n, dt).map((v) => (dt === "int32" ? v : v * 0.9 + 0.1 * Math.sign(v)));
        if (dt !== "int32" && n > 40 && how === "contiguous") vals[37] = Number.NaN;
        const x = layout(vals, shape, how, dt, rng() < 0.5, rng).view;
        for (const axes of axesList) {
          if (sizeOf(shape) === 0 && axes.length > 0) {
            const kept = shape.filter((_, i) => !axes.includes(i));
            if (sizeOf(kept) > 0 && axes.some((a) => shape[a] === 0)) {
              // max/min of an empty axis never reaches a backend
              for (const op of ["sum", "prod"] as const) check(op, x, axes, shape);
              continue;
            }
          }
          for (const op of ops) check(op, x, axes, shape);
        }
      }
    }
    function check(op: ReduceOp, x: View, axes: number[], shape: number[]) {
      const k = sizeOf(shape.filter((_, i) => !axes.includes(i)));
      const [e, w] = outputs(dt, x.shape.length === 0 ? 1 : k);
      J.reduce(op, x, axes, e);
      assert.ok(
        inWasm("reduce", () => W.reduce(op, x, axes, w)),
        `${op} ${dt} reduce in wasm`,
      );
      const tol = dt === "int32" ? 0 : dt === "float32" ? 1e-5 : 1e-12;
      same(w, e, op === "max" || op === "min" ? 0 : tol, `${op} ${dt} [${shape}] axes [${axes}]`);
    }
  }
});

test("delegated kernels (argReduce, cumsum, gather) and scatterAdd agree with js", () => {
  const rng = prng(16);
  const x = layout(values(rng, 60, "float32"), [3, 4, 5], "scrambled", "float32", true, rng).view;
  for (const axis of [0, 1, 2]) {
    for (const op of ["argmax", "argmin"] as const) {
      const [e, w] = outputs("int32", 60 / x.shape[axis]);
      J.argReduce(op, x, axis, e);
      W.argReduce(op, x, axis, w);
      same(w, e, 0, `${op} axis ${axis}`);
    }
    const [e, w] = outputs("float32", 60);
    J.cumsum(x, axis, axis === 1, e);
    W.cumsum(x, axis, axis === 1, w);
    same(w, e, 0, `cumsum axis ${axis}`);
  }
  const idx: View = {
    data: typed([0, 2, 1, 2, 2, 0], "int32", true),
    shape: [3, 2, 1],
    strides: [2, 1, 1],
    offset: 0,
  };
  const src: View = { data: W.alloc("float32", 5), shape: [3, 1, 5], strides: [5, 0, 1], offset: 0 };
  src.data.set([1, 2, 3, 4, 5]);
  const xs: View = { ...x, shape: [3, 4, 1], strides: [x.strides[0], x.strides[1], 0] };
  const [ge, gw] = outputs("float32", 6);
  J.gather(xs, 1, idx, ge);
  W.gather(xs, 1, idx, gw);
  same(gw, ge, 0, "gather");
  const [se, sw] = outputs("float32", 12);
  const s2: View = { ...src, shape: [3, 2, 1], strides: [1, 0, 0] };
  J.scatterAdd(s2, 1, idx, se, [3, 4, 1]);
  W.scatterAdd(s2, 1, idx, sw, [3, 4, 1]);
  same(sw, se, 0, "scatterAdd");
});

test("scatterAdd: float32 / float64 / int32 on every axis, duplicates, strided sources, accumulating out", () => {
  const rng = prng(21);
  for (const dt of ["float32", "float64", "int32"] as const) {
    for (const axis of [0, 1, 2]) {
      const outShape = [3, 5, 4];
      const shape = [...outShape];
      shape[axis] = 7; // more sources than slots: duplicates accumulate
      const n = sizeOf(shape);
      const src = layout(
        values(rng, n, dt),
        shape,
        rng() < 0.5 ? "transposed" : "scrambled",
        dt,
        false,
        rng,
      ).view;
      const idxVals = Array.from({ length: n }, () => Math.floor(rng() * outShape[axis]));
      const idx = layout(idxVals, shape, "contiguous", "int32", false, rng).view;
      const init = values(rng, sizeOf(outShape), dt);
      const [e, w] = outputs(dt, sizeOf(outShape));
      e.set(init);
      w.set(init);
      J.scatterAdd(src, axis, idx, e, outShape);
      assert.ok(
        inWasm("scatterAdd", () => W.scatterAdd(src, axis, idx, w, outShape)),
        `scatterAdd ${dt} axis ${axis} in wasm`,
      );
      // the same additions in the same order (float32 through a float64 accumulator): exactly equal
      same(w, e, 0, `scatterAdd ${dt} axis ${axis}`);
    }
  }
  // an index out of range: wasm writes nothing and the reference runs
  const src: View = { data: new Float32Array([1, 2, 3]), shape: [3], strides: [1], offset: 0 };
  const idx: View = { data: new Int32Array([0, 4, 1]), shape: [3], strides: [1], offset: 0 };
  const [e, w] = outputs("float32", 4);
  J.scatterAdd(src, 0, idx, e, [4]);
  assert.equal(
    inWasm("scatterAdd", () => W.scatterAdd(src, 0, idx, w, [4])),
    false,
  );
  same(w, e, 0, "scatterAdd with an index out of range");
});

test("copy: 2-D transposes (the blocked SIMD kernel) at block multiples and ragged edges", () => {
  const rng = prng(24);
  for (const dt of ["float32", "int32", "float64"] as const) {
    for (const [r, c] of [
      [4, 4],
      [8, 12],
      [13, 7],
      [33, 17],
      [1, 9],
      [70, 41],
    ]) {
      // storage [r, c]; the view is its transpose [c, r]
      const vals = values(rng, r * c, dt);
      const src: View = { data: typed(vals, dt, false), shape: [c, r], strides: [1, c], offset: 0 };
      const [e, w] = outputs(dt, r * c);
      const dst = (data: typeof e): View => ({ data, shape: [c, r], strides: [r, 1], offset: 0 });
      J.copy(src, dst(e));
      assert.ok(inWasm("copy", () => W.copy(src, dst(w))));
      same(w, e, 0, `transpose ${dt} [${r}, ${c}]`);
    }
  }
});

test("sparse views of large arrays (span far beyond the element count) are gathered, not copied whole", () => {
  const rng = prng(23);
  const big = new Float32Array(200_000).map(() => rng() * 4 - 2);
  const views: View[] = [
    { data: big, shape: [50, 20], strides: [2000, 1], offset: 7 }, // contiguous runs of 20
    { data: big, shape: [40, 3, 10], strides: [-4000, 1000, 1], offset: 170_000 }, // runs, negative stride
    { data: big, shape: [300], strides: [97], offset: 3 }, // no contiguous run
    { data: big, shape: [20, 15], strides: [5, 9000], offset: 11 }, // transposed and sparse
  ];
  for (const v of views) {
    const n = sizeOf(v.shape);
    const [e, w] = outputs("float32", n);
    J.unary("exp", v, e);
    assert.ok(inWasm("unary", () => W.unary("exp", v, w)));
    same(w, e, 1e-6, `exp of a sparse view [${v.shape}] strides [${v.strides}]`);
    const [e2, w2] = outputs("float32", n);
    const dense: View = { data: e, shape: v.shape, strides: contiguousStrides(v.shape), offset: 0 };
    J.binary("sub", v, dense, e2);
    assert.ok(inWasm("binary", () => W.binary("sub", v, dense, w2)));
    same(w2, e2, 0, `sub with a sparse view [${v.shape}]`);
  }
  // a sparse matrix operand of a product
  const a = views[0];
  const b: View = { data: big, shape: [20, 30], strides: [1, 3000], offset: 5 };
  const [e, w] = outputs("float32", 50 * 30);
  J.dot(a, b, e);
  assert.ok(inWasm("dot", () => W.dot(a, b, w)));
  same(w, e, 1e-5, "dot of sparse views");
});

test("memory: alloc gives zero-filled ordinary arrays; kernels leave no scratch behind", () => {
  const wasmBuffer = (x: { buffer: ArrayBufferLike }) => x.buffer instanceof SharedArrayBuffer;
  for (const dt of ["float32", "float64", "int32", "bool"] as const) {
    const v = W.alloc(dt, 300);
    assert.equal(v.length, 300);
    assert.ok(
      v.every((x) => x === 0),
      "zero-filled",
    );
    assert.ok(!wasmBuffer(v), "tensor storage is not in wasm memory");
  }
  const rng = prng(19);
  const a = layout(values(rng, 300, "float32"), [15, 20], "scrambled", "float32", false, rng).view;
  const out = new Float32Array(300);
  W.unary("exp", a, out);
  W.reduce("sum", a, [0], new Float32Array(20));
  W.dot(
    { data: out, shape: [15, 20], strides: [20, 1], offset: 0 },
    { data: out, shape: [20, 15], strides: [1, 20], offset: 0 },
    new Float32Array(225),
  );
  assert.equal(W.heapStats().liveBytes, 0, "every call pops its scratch");
  assert.ok(W.backendBytes() > 0 && W.backendBytes() === W.heapStats().peakBytes);
});

test("memory: the arena grows for a large call, then serves later calls without growing", async () => {
  assert.equal(W.sharedMemory, true, "Node has shared WebAssembly memory");
  for (const kind of ["shared", "fixed"] as const) {
    const b = kind === "shared" ? W : createWasmBackend({ memory: kind, threads: 1 });
    assert.equal(b.sharedMemory, kind === "shared");
    const before = b.heapStats().memoryBytes;
    const fb = JSON.stringify(b.fallbacks());
    const n = (before + (16 << 20)) / 4; // input and output do not fit: the memory grows
    const x = new Float32Array(n).fill(-1.5);
    const v: View = { data: x, shape: [n], strides: [1], offset: 0 };
    const out = b.alloc("float32", n);
    b.unary("abs", v, out);
    const grown = b.heapStats().memoryBytes;
    assert.ok(grown > before, `${kind}: the memory grew`);
    assert.ok(
      out.every((y) => y === 1.5),
      `${kind}: results survive growth`,
    );
    for (let i = 0; i < 5; i++) b.binary("add", v, v, out);
    assert.equal(out[n - 1], -3);
    assert.equal(b.heapStats().memoryBytes, grown, `${kind}: same-sized calls reuse the arena`);
    assert.equal(JSON.stringify(b.fallbacks()), fb, `${kind}: everything ran in wasm`);
  }
  const { initWasmBackend } = await import("../../src/backend/wasm/index.ts");
  assert.equal(await initWasmBackend(), W);
});

test("memory: a call whose scratch cannot fit in the memory runs the js kernel", () => {
  // 1 MiB memory: a 2 MiB operand cannot be staged
  const small = createWasmBackend({ memory: "fixed", maxMemoryMiB: 1 });
  assert.equal(small.sharedMemory, false);
  const big = small.alloc("float32", 512 * 1024).fill(0.5);
  const view: View = { data: big, shape: [big.length], strides: [1], offset: 0 };
  const e = new Float32Array(big.length);
  J.unary("exp", view, e);
  const w = small.alloc("float32", big.length);
  const fb = small.fallbacks().unary ?? 0;
  small.unary("exp", view, w);
  assert.equal(small.fallbacks().unary, fb + 1);
  same(w, e, 0, "fallback exp");
  assert.equal(small.heapStats().liveBytes, 0, "the failed call popped what it took");
  // smaller calls still run in wasm
  const m: View = {
    data: small.alloc("float32", 64 * 64).fill(1),
    shape: [64, 64],
    strides: [64, 1],
    offset: 0,
  };
  const c = small.alloc("float32", 64 * 64);
  small.dot(m, m, c);
  assert.equal(c[0], 64);
  assert.equal(small.fallbacks().dot, undefined);
});

test("memory: a synchronous loop of kernel calls keeps wasm memory and RSS flat (child process)", () => {
  const child = fileURLToPath(new URL("./wasm-gc-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", child], { encoding: "utf8" });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    allocatedMiB: number;
    memory: number[];
    rss: number[];
  };
  const msg = JSON.stringify(report);
  assert.ok(report.allocatedMiB > 1000, `the loop allocated well over 1 GB of outputs: ${msg}`);
  assert.ok(
    report.memory.every((m) => m === report.memory[0]),
    `wasm memory stops growing: ${msg}`,
  );
  const growth = report.rss[report.rss.length - 1] - report.rss[0];
  assert.ok(growth < 64 * 2 ** 20, `RSS stops growing: ${msg}`);
});
