/**
 * Tests of the js reference backend, part 1: copy, elementwise, where/cast, reductions and dot. Hand-checked
 * small cases, strided / broadcast / negative-stride / offset views, empty and 0-d tensors, dtype behaviour.
 * Part 2 (conv, pooling, indexing and the adjoint property tests) is js-nn.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend as B } from "../../src/backend/js/index.ts";
import { arr, bin, close, prng, randn, scrambled, un, v } from "./js-helpers.ts";

// ---------------------------------------------------------------------------------------------- copy, views

test("copy: strided, broadcast, negative-stride and offset views", () => {
  const data = Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // [[9, 7, 5], [8, 6, 4]]: offset 9, strides [-1, -2]
  const src: View = { data, shape: [2, 3], strides: [-1, -2], offset: 9 };
  const out = new Float64Array(6);
  B.copy(src, v(out, [2, 3]));
  assert.deepEqual(arr(out), [9, 7, 5, 8, 6, 4]);
  // broadcast a row with stride 0 into the transposed (column-major) destination
  const dst = new Float64Array(6);
  B.copy(
    { data, shape: [2, 3], strides: [0, 1], offset: 4 },
    { data: dst, shape: [2, 3], strides: [1, 2], offset: 0 },
  );
  assert.deepEqual(arr(dst), [4, 4, 5, 5, 6, 6]);
  // 0-d and empty
  const d0 = new Float64Array(2);
  B.copy({ data, shape: [], strides: [], offset: 7 }, { data: d0, shape: [], strides: [], offset: 1 });
  assert.deepEqual(arr(d0), [0, 7]);
  B.copy({ data, shape: [0, 3], strides: [3, 1], offset: 0 }, v(new Float64Array(0), [0, 3]));
});

test("unary: strided input gives the same values as contiguous", () => {
  const rng = prng(1);
  const shape = [3, 1, 4, 2];
  const x = randn(rng, 24);
  for (const op of ["exp", "neg", "tanh", "erf", "sigmoid", "abs"] as const) {
    assert.deepEqual(arr(un(op, scrambled(x, shape, rng))), arr(un(op, v(x, shape))), op);
  }
});

// ---------------------------------------------------------------------------------------------- unary

test("unary: values of every op", () => {
  const x = v([-1.5, 0, 2], [3]);
  close(un("neg", x), [1.5, -0, -2]);
  close(un("abs", x), [1.5, 0, 2]);
  close(un("exp", x), [Math.exp(-1.5), 1, Math.exp(2)]);
  close(un("log", v([1, Math.E, 0, -1], [4])), [0, 1, Number.NEGATIVE_INFINITY, Number.NaN]);
  close(un("log1p", v([1e-20, 1], [2])), [1e-20, Math.LN2], 1e-15);
  close(un("expm1", v([1e-20, 1], [2])), [1e-20, Math.E - 1], 1e-15);
  close(un("sqrt", v([4, 2, -1], [3])), [2, Math.SQRT2, Number.NaN]);
  close(un("sin", x), [Math.sin(-1.5), 0, Math.sin(2)]);
  close(un("cos", x), [Math.cos(-1.5), 1, Math.cos(2)]);
  close(un("tan", x), [Math.tan(-1.5), 0, Math.tan(2)]);
  close(un("tanh", x), [Math.tanh(-1.5), 0, Math.tanh(2)]);
  close(un("relu", v([-1, 0, 3, Number.NaN], [4])), [0, 0, 3, Number.NaN]);
  close(un("sign", v([-4, 0, 0.1, Number.NaN], [4])), [-1, 0, 1, Number.NaN]);
  close(un("floor", v([-1.5, 1.5, 2], [3])), [-2, 1, 2]);
  close(un("ceil", v([-1.5, 1.5, 2], [3])), [-1, 2, 2]);
  assert.deepEqual(arr(un("not", v(Uint8Array.from([0, 1, 1]), [3]), "bool")), [1, 0, 0]);
});

test("unary: round is half to even and keeps the sign of zero", () => {
  const r = un(
    "round",
    v([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, -0.4, 4503599627370497, Infinity], [11]),
  );
  assert.deepEqual(arr(r), [0, 2, 2, -0, -2, -2, 2, 3, -0, 4503599627370497, Infinity]);
  assert.ok(Object.is(r[3], -0) && Object.is(r[8], -0) && Object.is(r[0], 0));
});

test("unary: sigmoid is stable for large |x|", () => {
  const s = un("sigmoid", v([0, 1000, -1000, 40, -40, 2], [6]));
  close(
    s,
    [0.5, 1, 0, 1 / (1 + Math.exp(-40)), Math.exp(-40) / (1 + Math.exp(-40)), 1 / (1 + Math.exp(-2))],
    1e-15,
  );
  assert.ok(s[4] > 0, "sigmoid(-40) must not underflow to 0");
});

test("unary: erf matches high-precision values to 1e-15", () => {
  const cases: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-3, -0.9999779095030014],
    [0.1, 0.1124629160182849],
    [1e-5, 0.000011283791670579],
    [3.5, 0.9999992569016276],
    [-0.75, -0.7111556336535151],
    [5, 0.9999999999984625],
    [0, 0],
    [30, 1],
    [-Infinity, -1],
  ];
  const out = un(
    "erf",
    v(
      cases.map((c) => c[0]),
      [cases.length],
    ),
  );
  cases.forEach(([x, e], i) => {
    assert.ok(
      Math.abs(out[i] - e) <= 1e-15 * Math.max(Math.abs(e), 1e-300),
      `erf(${x}) = ${out[i]}, want ${e}`,
    );
  });
  assert.ok(Number.isNaN(un("erf", v([Number.NaN], [1]))[0]));
});

test("unary: float32 output is the rounded float64 result; int32 neg wraps", () => {
  const out = un("exp", v(Float32Array.from([1, 0.1]), [2]), "float32");
  assert.deepEqual(arr(out), [Math.fround(Math.E), Math.fround(Math.exp(Math.fround(0.1)))]);
  const n = un("neg", v(Int32Array.from([5, -2147483648]), [2]), "int32");
  assert.deepEqual(arr(n), [-5, -2147483648]);
});

// ---------------------------------------------------------------------------------------------- binary

test("binary: broadcast (stride 0), negative stride and offset", () => {
  const a = v([1, 2, 3, 4, 5, 6], [2, 3]);
  const row: View = { data: Float64Array.from([99, 10, 20, 30]), shape: [2, 3], strides: [0, 1], offset: 1 };
  assert.deepEqual(arr(bin("add", a, row, "float64")), [11, 22, 33, 14, 25, 36]);
  const rev: View = { data: Float64Array.from([1, 2, 3]), shape: [2, 3], strides: [0, -1], offset: 2 };
  assert.deepEqual(arr(bin("sub", a, rev, "float64")), [-2, 0, 2, 1, 3, 5]);
  const col: View = { data: Float64Array.from([2, 10]), shape: [2, 3], strides: [1, 0], offset: 0 };
  assert.deepEqual(arr(bin("mul", a, col, "float64")), [2, 4, 6, 40, 50, 60]);
});

test("binary: float arithmetic, pow special cases, NaN-propagating maximum/minimum", () => {
  const a = v([6, -3, 1, -1, 2, Number.NaN], [6]);
  const b = v([4, 2, Number.NaN, Infinity, -1, 1], [6]);
  close(bin("div", a, b, "float64"), [1.5, -1.5, Number.NaN, -0, -2, Number.NaN]);
  close(bin("pow", a, b, "float64"), [1296, 9, 1, 1, 0.5, Number.NaN]);
  close(bin("maximum", a, b, "float64"), [6, 2, Number.NaN, Infinity, 2, Number.NaN]);
  close(bin("minimum", a, b, "float64"), [4, -3, Number.NaN, -1, -1, Number.NaN]);
  close(bin("pow", v([0, -8, 4], [3]), v([0, 1 / 3, 0.5], [3]), "float64"), [1, Number.NaN, 2]);
});

test("binary: float32 arithmetic rounds once to float32", () => {
  const a = v(Float32Array.from([0.1, 1e30]), [2]);
  const b = v(Float32Array.from([0.2, 1e30]), [2]);
  const s = bin("add", a, b, "float32");
  assert.deepEqual(arr(s), [
    Math.fround(Math.fround(0.1) + Math.fround(0.2)),
    Math.fround(2 * Math.fround(1e30)),
  ]);
  assert.deepEqual(arr(bin("mul", a, b, "float32")), [
    Math.fround(Math.fround(0.1) * Math.fround(0.2)),
    Infinity,
  ]);
});

test("binary: int32 wraps, divides toward zero, x / 0 = 0, exact integer pow", () => {
  const i32 = (xs: number[]) => v(Int32Array.from(xs), [xs.length]);
  const max = 2147483647;
  const min = -2147483648;
  assert.deepEqual(arr(bin("add", i32([max, min, 5]), i32([1, -1, -7]), "int32")), [min, max, -2]);
  assert.deepEqual(arr(bin("sub", i32([min, 0]), i32([1, min]), "int32")), [max, min]);
  assert.deepEqual(
    arr(bin("mul", i32([65536, 46341, 123456789, -3]), i32([65536, 46341, 987654321, 7]), "int32")),
    [0, (46341 * 46341) | 0, Number(BigInt.asIntN(32, 123456789n * 987654321n)), -21],
  );
  assert.deepEqual(arr(bin("div", i32([7, -7, 7, -7, 5, min, 0]), i32([2, 2, -2, -2, 0, -1, 3]), "int32")), [
    3,
    -3,
    -3,
    3,
    0,
    min,
    0,
  ]);
  assert.deepEqual(
    arr(bin("pow", i32([3, 2, -2, 0, 1, -1, -1, 2, 7]), i32([20, 31, 3, 0, -5, -3, -4, -1, 0]), "int32")),
    [Number(BigInt.asIntN(32, 3n ** 20n)), min, -8, 1, 1, -1, 1, 0, 1],
  );
  assert.deepEqual(arr(bin("maximum", i32([3, -5]), i32([-1, 2]), "int32")), [3, 2]);
});

test("binary: comparisons write bool, NaN compares unequal; logical ops on bool", () => {
  const a = v([1, 2, Number.NaN, 3], [4]);
  const b = v([1, 3, Number.NaN, 2], [4]);
  const cmp = (op: "eq" | "ne" | "lt" | "le" | "gt" | "ge") => {
    const out = bin(op, a, b, "bool");
    assert.ok(out instanceof Uint8Array);
    return arr(out);
  };
  assert.deepEqual(cmp("eq"), [1, 0, 0, 0]);
  assert.deepEqual(cmp("ne"), [0, 1, 1, 1]);
  assert.deepEqual(cmp("lt"), [0, 1, 0, 0]);
  assert.deepEqual(cmp("le"), [1, 1, 0, 0]);
  assert.deepEqual(cmp("gt"), [0, 0, 0, 1]);
  assert.deepEqual(cmp("ge"), [1, 0, 0, 1]);
  const ints = bin("lt", v(Int32Array.from([-5, 5]), [2]), v(Int32Array.from([0, 0]), [2]), "bool");
  assert.deepEqual(arr(ints), [1, 0]);
  const p = v(Uint8Array.from([0, 0, 1, 1]), [4]);
  const q = v(Uint8Array.from([0, 1, 0, 1]), [4]);
  assert.deepEqual(arr(bin("and", p, q, "bool")), [0, 0, 0, 1]);
  assert.deepEqual(arr(bin("or", p, q, "bool")), [0, 1, 1, 1]);
  assert.deepEqual(arr(bin("xor", p, q, "bool")), [0, 1, 1, 0]);
});

// ---------------------------------------------------------------------------------------------- where, cast

test("where selects per element, with a broadcast condition", () => {
  const cond: View = { data: Uint8Array.from([1, 0]), shape: [2, 2], strides: [0, 1], offset: 0 };
  const out = new Int32Array(4);
  B.where(cond, v(Int32Array.from([1, 2, 3, 4]), [2, 2]), v(Int32Array.from([-1, -2, -3, -4]), [2, 2]), out);
  assert.deepEqual(arr(out), [1, -2, 3, -4]);
});

test("cast: truncation toward zero, NaN -> 0, bool is x != 0, float32 rounding", () => {
  const x = v([-1.7, 2.9, Number.NaN, -0, 0.5, 3], [6]);
  const i = new Int32Array(6);
  B.cast(x, i);
  assert.deepEqual(arr(i), [-1, 2, 0, 0, 0, 3]);
  const b = new Uint8Array(6);
  B.cast(x, b);
  assert.deepEqual(arr(b), [1, 1, 1, 0, 1, 1]);
  const f = new Float32Array(2);
  B.cast(v([0.1, 1e300], [2]), f);
  assert.deepEqual(arr(f), [Math.fround(0.1), Infinity]);
  const fromBool = new Float64Array(3);
  B.cast(v(Uint8Array.from([1, 0, 1]), [3]), fromBool);
  assert.deepEqual(arr(fromBool), [1, 0, 1]);
  const fromInt = new Uint8Array(3);
  B.cast(v(Int32Array.from([0, -3, 7]), [3]), fromInt);
  assert.deepEqual(arr(fromInt), [0, 1, 1]);
});

// ---------------------------------------------------------------------------------------------- 0-d, empty

test("0-d tensors: unary, binary, reduce, cast, argmax, cumsum", () => {
  const s: View = { data: Float64Array.from([9, -2]), shape: [], strides: [], offset: 1 };
  assert.deepEqual(arr(un("abs", s)), [2]);
  assert.deepEqual(arr(bin("mul", s, s, "float64")), [4]);
  const r = new Float64Array(1);
  B.reduce("sum", s, [], r);
  assert.deepEqual(arr(r), [-2]);
  const c = new Int32Array(1);
  B.cast(s, c);
  assert.deepEqual(arr(c), [-2]);
  // axis 0 of a scalar (PyTorch accepts dim=0 on a 0-d tensor): the identity / index 0
  B.reduce("max", s, [0], r);
  assert.deepEqual(arr(r), [-2]);
  const cs = new Float64Array(1);
  B.cumsum(s, 0, true, cs);
  assert.deepEqual(arr(cs), [-2]);
  const am = new Int32Array(1).fill(9);
  B.argReduce("argmax", s, 0, am);
  assert.deepEqual(arr(am), [0]);
});

test("empty tensors: elementwise is a no-op, sum of nothing is 0, prod is 1", () => {
  const e: View = { data: new Float64Array(0), shape: [0, 3], strides: [3, 1], offset: 0 };
  assert.equal(un("exp", e).length, 0);
  assert.equal(bin("add", e, e, "float64").length, 0);
  const s = new Float64Array(3).fill(7);
  B.reduce("sum", e, [0], s);
  assert.deepEqual(arr(s), [0, 0, 0]);
  const p = new Float64Array(3);
  B.reduce("prod", e, [0], p);
  assert.deepEqual(arr(p), [1, 1, 1]);
  const none = new Float64Array(0);
  B.reduce("sum", e, [1], none);
  B.cumsum(e, 0, false, none);
  const all = new Float64Array(1).fill(5);
  B.reduce("sum", e, [0, 1], all);
  assert.deepEqual(arr(all), [0]);
});

// ---------------------------------------------------------------------------------------------- reductions

test("reduce: sum/prod/max/min over axis sets, on strided views", () => {
  const rng = prng(7);
  const shape = [2, 3, 4];
  const x = Float64Array.from({ length: 24 }, (_, i) => ((i * 7) % 11) - 5);
  const at = (i: number, j: number, k: number) => x[(i * 3 + j) * 4 + k];
  const sumAx1 = new Float64Array(8);
  B.reduce("sum", scrambled(x, shape, rng), [1], sumAx1);
  const want: number[] = [];
  for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) want.push(at(i, 0, k) + at(i, 1, k) + at(i, 2, k));
  assert.deepEqual(arr(sumAx1), want);
  const maxAx02 = new Float64Array(3);
  B.reduce("max", scrambled(x, shape, rng), [0, 2], maxAx02);
  for (let j = 0; j < 3; j++) {
    let m = -Infinity;
    for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) m = Math.max(m, at(i, j, k));
    assert.equal(maxAx02[j], m);
  }
  const minAll = new Float64Array(1);
  B.reduce("min", v(x, shape), [0, 1, 2], minAll);
  assert.equal(minAll[0], -5);
  const prod = new Float64Array(2);
  B.reduce("prod", v([1, 2, 3, 4, 5, 6], [2, 3]), [1], prod);
  assert.deepEqual(arr(prod), [6, 120]);
  const copy = new Float64Array(24);
  B.reduce("sum", scrambled(x, shape, rng), [], copy);
  assert.deepEqual(arr(copy), arr(x));
});

test("reduce: max/min propagate NaN; int32 sum wraps; float32 sums in double", () => {
  const m = new Float64Array(2);
  B.reduce("max", v([1, Number.NaN, 3, 1, 2, 3], [2, 3]), [1], m);
  assert.ok(Number.isNaN(m[0]));
  assert.equal(m[1], 3);
  B.reduce("min", v([Number.NaN, 1, 2, 0], [2, 2]), [1], m);
  assert.ok(Number.isNaN(m[0]));
  assert.equal(m[1], 0);
  const s = new Int32Array(1);
  B.reduce("sum", v(Int32Array.from([2147483647, 1, 5]), [3]), [0], s);
  assert.equal(s[0], -2147483643);
  const f = new Float32Array(1);
  B.reduce("sum", v(Float32Array.from([1, 1e-8, 1e-8, -1]), [4]), [0], f);
  assert.equal(f[0], Math.fround(Math.fround(1e-8) * 2));
});

test("argReduce: first extremum, NaN wins, any axis", () => {
  const x = v([3, 1, 3, 0, 5, Number.NaN, 5, 2, -1, 7, -1, 7], [3, 4]);
  const am = new Int32Array(3);
  B.argReduce("argmax", x, 1, am);
  assert.deepEqual(arr(am), [0, 1, 1]);
  B.argReduce("argmin", x, 1, am);
  assert.deepEqual(arr(am), [3, 1, 0]);
  const ax0 = new Int32Array(4);
  B.argReduce("argmax", x, 0, ax0);
  assert.deepEqual(arr(ax0), [1, 1, 1, 2]);
  B.argReduce("argmin", x, 0, ax0);
  assert.deepEqual(arr(ax0), [2, 1, 2, 0]);
  const first = new Int32Array(1);
  B.argReduce("argmax", v([Number.NaN, Number.NaN, 1], [3]), 0, first);
  assert.equal(first[0], 0);
});

test("cumsum: forward and reverse along each axis of a transposed view", () => {
  // logical [[1, 2, 3], [4, 5, 6]] stored transposed
  const x: View = { data: Float64Array.from([1, 4, 2, 5, 3, 6]), shape: [2, 3], strides: [1, 2], offset: 0 };
  const out = new Float64Array(6);
  B.cumsum(x, 1, false, out);
  assert.deepEqual(arr(out), [1, 3, 6, 4, 9, 15]);
  B.cumsum(x, 1, true, out);
  assert.deepEqual(arr(out), [6, 5, 3, 15, 11, 6]);
  B.cumsum(x, 0, false, out);
  assert.deepEqual(arr(out), [1, 2, 3, 5, 7, 9]);
  B.cumsum(x, 0, true, out);
  assert.deepEqual(arr(out), [5, 7, 9, 4, 5, 6]);
  const i = new Int32Array(2);
  B.cumsum(v(Int32Array.from([2147483647, 1]), [2]), 0, false, i);
  assert.deepEqual(arr(i), [2147483647, -2147483648]);
});

// ---------------------------------------------------------------------------------------------- dot

test("dot: 2x3 by 3x2 by hand, transposed operand, batch, int32, K = 0, NaN", () => {
  const a = v([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = v([7, 8, 9, 10, 11, 12], [3, 2]);
  const out = new Float64Array(4);
  B.dot(a, b, out);
  assert.deepEqual(arr(out), [58, 64, 139, 154]);
  // b given as the transpose of a [2, 3] buffer: bt[k, j] = data[j * 3 + k]
  const bt: View = {
    data: Float64Array.from([7, 9, 11, 8, 10, 12]),
    shape: [3, 2],
    strides: [1, 3],
    offset: 0,
  };
  B.dot(a, bt, out);
  assert.deepEqual(arr(out), [58, 64, 139, 154]);
  // batch of 2 with the second operand broadcast (batch stride 0)
  const bb: View = { data: Float64Array.from([1, 0, 0, 1]), shape: [2, 2, 2], strides: [0, 2, 1], offset: 0 };
  const batched = new Float64Array(8);
  B.dot(v([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), bb, batched);
  assert.deepEqual(arr(batched), [1, 2, 3, 4, 5, 6, 7, 8]);
  const iout = new Int32Array(1);
  B.dot(v(Int32Array.from([65536, 3]), [1, 2]), v(Int32Array.from([65536, 4]), [2, 1]), iout);
  assert.equal(iout[0], 12);
  const z = new Float64Array(4).fill(3);
  B.dot(v([], [2, 0]), v([], [0, 2]), z);
  assert.deepEqual(arr(z), [0, 0, 0, 0]);
  const nan = new Float64Array(1);
  B.dot(v([0, 1], [1, 2]), v([Infinity, 2], [2, 1]), nan);
  assert.ok(Number.isNaN(nan[0]));
});

test("dot: float32 result is the rounded float64 dot product", () => {
  const rng = prng(3);
  const a = Float32Array.from(randn(rng, 12));
  const b = Float32Array.from(randn(rng, 12));
  const out = new Float32Array(9);
  B.dot(v(a, [3, 4]), v(b, [4, 3]), out);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[i * 4 + k] * b[k * 3 + j];
      assert.equal(out[i * 3 + j], Math.fround(s));
    }
  }
});
