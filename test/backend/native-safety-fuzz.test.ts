/**
 * Seeded mutation fuzzer of the native backend object's memory safety (issue 8, item 3).
 *
 * The backend object is public, so no call may read or write outside the typed arrays it is given. Each round
 * builds a valid call of one kernel (small random shapes, every kernel of the Backend interface), then
 * corrupts one number of it: a dimension, stride or offset of a view, an axis, a convolution / pooling
 * parameter, an output shape entry or an output buffer's length, replaced by a neighbour (v - 1, v + 1, 2v + 1)
 * or an extreme (0, -1, 2^31, 2^32, 2^53, 2^62, NaN, Infinity, 0.5), or (one round in five) gives every output
 * another dtype than its operands', or (one in ten) one input view an array of another type. The call must then either succeed or throw
 * an Error (never crash the process), and every array a kernel writes is a window into a larger buffer whose
 * guard elements on both sides must keep their sentinel values. At the end the backend must still compute a
 * known result (no heap corruption left behind).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { BFloat16Bits, type DType, Float16Bits, type TypedArray } from "../../src/dtype.ts";
import { N, prng } from "./native-helpers.ts";

const GUARD = 64;
const CTORS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
  float16: Float16Bits,
  bfloat16: BFloat16Bits,
} as const;

/** Output windows handed out in the current round, to check their guards afterwards. */
let guarded: { buf: TypedArray; n: number }[] = [];

function sentinel(buf: TypedArray): number {
  return buf instanceof Uint8Array
    ? 0xa5
    : buf instanceof Uint16Array
      ? 0xa5a5
      : buf instanceof Int32Array
        ? -0x5a5a5a5b
        : -12345.5;
}

/** When set, every output of the call gets this dtype instead (a dtype mismatch between operands). */
let outDType: DType | null = null;

/** A writable array of n elements of dtype, in the middle of a larger buffer with guard elements. */
function out(requested: DType, n: number): TypedArray {
  const dtype = outDType ?? requested;
  const len = Number.isInteger(n) && n >= 0 && n <= 1 << 20 ? n : 4;
  const buf = new CTORS[dtype](len + 2 * GUARD);
  buf.fill(sentinel(buf));
  guarded.push({ buf, n: len });
  return buf.subarray(GUARD, GUARD + len);
}

function checkGuards(what: string): void {
  for (const { buf, n } of guarded) {
    const s = sentinel(buf);
    for (let i = 0; i < GUARD; i++) {
      if (!Object.is(buf[i], s) || !Object.is(buf[GUARD + n + i], s)) {
        assert.fail(`${what}: a kernel wrote outside its output (guard element ${i})`);
      }
    }
  }
  guarded = [];
}

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A contiguous view of random values over a fresh array (inputs are read only). */
function input(shape: number[], dtype: DType, rng: () => number, idxBound = 0): View {
  const n = sizeOf(shape);
  const data = new CTORS[dtype](n + 3);
  for (let i = 0; i < data.length; i++) {
    data[i] =
      idxBound > 0 ? Math.floor(rng() * idxBound) : dtype === "bool" ? (rng() < 0.5 ? 1 : 0) : 4 * rng() - 2;
  }
  const strides = shape.map((_, d) => sizeOf(shape.slice(d + 1)));
  return { data, shape, strides, offset: 1 };
}

/** One valid call: numbers to corrupt (args), and how to run it on a backend. */
interface Call {
  name: string;
  args: Record<string, unknown>;
  run(b: Backend, a: Record<string, unknown>): void;
}

const shapeOf = (rng: () => number, nd: number) =>
  Array.from({ length: nd }, () => 1 + Math.floor(rng() * 4));
const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const fl = (rng: () => number): DType => pick(rng, ["float32", "float64"] as const);

type A = Record<string, unknown>;
const V = (a: A, k: string) => a[k] as View;
const n = (a: A, k: string) => a[k] as number;
const s = (a: A, k: string) => a[k] as number[];

// biome-ignore format: a table
const MAKERS: ((rng: () => number) => Call)[] = [
  (r) => { const d = fl(r), sh = shapeOf(r, 3);
    return { name: "unary", args: { x: input(sh, d, r), len: sizeOf(sh) }, run: (b, a) => b.unary("exp", V(a, "x"), out(d, n(a, "len"))) }; },
  (r) => { const d = pick(r, ["float32", "int32"] as const), sh = shapeOf(r, 3);
    return { name: "binary", args: { x: input(sh, d, r), y: input(sh, d, r), len: sizeOf(sh) }, run: (b, a) => b.binary("mul", V(a, "x"), V(a, "y"), out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 2);
    return { name: "where", args: { c: input(sh, "bool", r), x: input(sh, d, r), y: input(sh, d, r), len: sizeOf(sh) }, run: (b, a) => b.where(V(a, "c"), V(a, "x"), V(a, "y"), out(d, n(a, "len"))) }; },
  (r) => { const sh = shapeOf(r, 3);
    return { name: "cast", args: { x: input(sh, "float64", r), len: sizeOf(sh) }, run: (b, a) => b.cast(V(a, "x"), out("int32", n(a, "len"))) }; },
  (r) => { const d = pick(r, ["float64", "bool"] as const), sh = shapeOf(r, 3);
    return { name: "copy", args: { x: input(sh, d, r), dshape: [...sh], dstrides: sh.map((_, i) => sizeOf(sh.slice(i + 1))), doff: 0, len: sizeOf(sh) },
      run: (b, a) => b.copy(V(a, "x"), { data: out(d, n(a, "len")), shape: s(a, "dshape"), strides: s(a, "dstrides"), offset: n(a, "doff") }) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 3);
    return { name: "reduce", args: { x: input(sh, d, r), axes: [0, 2], len: sh[1] }, run: (b, a) => b.reduce("max", V(a, "x"), s(a, "axes"), out(d, n(a, "len"))) }; },
  (r) => { const sh = shapeOf(r, 3);
    return { name: "argReduce", args: { x: input(sh, "float32", r), axis: 1, len: sh[0] * sh[2] }, run: (b, a) => b.argReduce("argmax", V(a, "x"), n(a, "axis"), out("int32", n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 3);
    return { name: "cumsum", args: { x: input(sh, d, r), axis: 2, len: sizeOf(sh) }, run: (b, a) => b.cumsum(V(a, "x"), n(a, "axis"), true, out(d, n(a, "len"))) }; },
  (r) => { const d = pick(r, ["float32", "float64", "int32"] as const), [bt, m, k, nn] = shapeOf(r, 4).map((v) => v * 3);
    return { name: "dot", args: { x: input([bt, m, k], d, r), y: input([bt, k, nn], d, r), len: bt * m * nn }, run: (b, a) => b.dot(V(a, "x"), V(a, "y"), out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 3);
    return { name: "softmax", args: { x: input(sh, d, r), axis: 1, len: sizeOf(sh) }, run: (b, a) => b.softmax(V(a, "x"), n(a, "axis"), true, out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 3);
    return { name: "softmaxBackward", args: { y: input(sh, d, r), c: input(sh, d, r), axis: 2, len: sizeOf(sh) }, run: (b, a) => b.softmaxBackward(V(a, "y"), V(a, "c"), n(a, "axis"), false, out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), [nb, l, sk, e] = shapeOf(r, 4);
    return { name: "attention", args: { q: input([nb, l, e], d, r), k: input([nb, sk, e], d, r), v: input([nb, sk, 3], d, r), m: input([nb, l, sk], d, r), len: nb * l * 4 }, run: (b, a) => b.attention(V(a, "q"), V(a, "k"), V(a, "v"), V(a, "m"), true, 0.5, out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), [nb, l, sk, e] = shapeOf(r, 4);
    return { name: "attentionBackward", args: { q: input([nb, l, e], d, r), k: input([nb, sk, e], d, r), v: input([nb, sk, 3], d, r), o: input([nb, l, 4], d, r), g: input([nb, l, 4], d, r), len: nb * (l * e + sk * e + sk * 3) }, run: (b, a) => b.attentionBackward(V(a, "q"), V(a, "k"), V(a, "v"), null, V(a, "o"), V(a, "g"), false, 0.5, out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), [nb, h] = shapeOf(r, 2);
    return { name: "lstmCellBackward", args: { g: input([nb, 4 * h], d, r), c: input([nb, h], d, r), ct: input([nb, 2 * h], d, r), len: nb * 5 * h }, run: (b, a) => b.lstmCellBackward(V(a, "g"), V(a, "c"), V(a, "ct"), out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), [nb, h] = shapeOf(r, 2);
    return { name: "gruCell", args: { x: input([nb, 3 * h], d, r), hp: input([nb, 3 * h], d, r), h: input([nb, h], d, r), len: nb * h }, run: (b, a) => b.gruCell(V(a, "x"), V(a, "hp"), V(a, "h"), out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 2);
    return { name: "biasAct", args: { x: input(sh, d, r), bias: input(sh, d, r), len: sizeOf(sh) }, run: (b, a) => b.biasAct("tanh", V(a, "x"), V(a, "bias"), out(d, n(a, "len"))) }; },
  (r) => { const d = fl(r), sh = shapeOf(r, 2);
    return { name: "actGrad", args: { y: input(sh, d, r), c: input(sh, d, r), len: sizeOf(sh) }, run: (b, a) => b.actGrad("sigmoid", V(a, "y"), V(a, "c"), out(d, n(a, "len"))) }; },
  (r) => { const d = pick(r, ["float32", "float64", "int32", "bool"] as const), sh = shapeOf(r, 3);
    return { name: "gather", args: { x: input(sh, d, r), idx: input(sh, "int32", r, sh[1]), axis: 1, len: sizeOf(sh) }, run: (b, a) => b.gather(V(a, "x"), n(a, "axis"), V(a, "idx"), out(d, n(a, "len"))) }; },
  (r) => { const d = pick(r, ["float32", "float64", "int32"] as const), sh = shapeOf(r, 3), os = [sh[0], 5, sh[2]];
    return { name: "scatterAdd", args: { src: input(sh, d, r), idx: input(sh, "int32", r, 5), axis: 1, os, len: sizeOf(os) }, run: (b, a) => b.scatterAdd(V(a, "src"), n(a, "axis"), V(a, "idx"), out(d, n(a, "len")), s(a, "os")) }; },
  (r) => { const d = fl(r), len = 1 + Math.floor(r() * 40);
    return { name: "adamUpdate", args: { g: input([len], d, r), lp: len, lm: len, lv: len },
      run: (b, a) => b.adamUpdate!(out(d, n(a, "lp")), V(a, "g"), out(d, n(a, "lm")), out(d, n(a, "lv")), null, { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, decoupled: true, maximize: false, bc1: 0.1, bc2Sqrt: 0.1 }) }; },
  ...([0, 1, 2] as const).map((kind) => (r: () => number): Call => {
    const d = pick(r, ["float32", "float64", "int32"] as const);
    const g = pick(r, [1, 2]), nb = 1 + Math.floor(r() * 2), c = 2 * g, o = 2 * g, h = 5 + Math.floor(r() * 4), w = 4 + Math.floor(r() * 4);
    const st = pick(r, [1, 2]), pd = pick(r, [0, 1]);
    const oh = Math.floor((h + 2 * pd - 3) / st) + 1, ow = Math.floor((w + 2 * pd - 2) / st) + 1;
    const xs = [nb, c, h, w], ws = [o, c / g, 3, 2], ys = [nb, o, oh, ow];
    const p = { stride: [st, st], padding: [pd, pd], dilation: [1, 1], groups: g };
    const args = kind === 0 ? { p: input(xs, d, r), q: input(ws, d, r), os: ys, p2: p }
      : kind === 1 ? { p: input(ys, d, r), q: input(ws, d, r), os: xs, p2: p } : { p: input(xs, d, r), q: input(ys, d, r), os: ws, p2: p };
    return { name: `conv2d kind ${kind}`, args: { ...args, len: sizeOf(args.os) }, run: (b, a) => {
      const prm = a.p2 as Parameters<Backend["conv2d"]>[4], o2 = out(d, n(a, "len"));
      if (kind === 0) b.conv2d(V(a, "p"), V(a, "q"), o2, s(a, "os"), prm);
      else if (kind === 1) b.conv2dBackInput(V(a, "p"), V(a, "q"), o2, s(a, "os"), prm);
      else b.conv2dBackWeight(V(a, "p"), V(a, "q"), o2, s(a, "os"), prm);
    } };
  }),
  ...([0, 1, 2, 3, 4] as const).map((kind) => (r: () => number): Call => {
    const d = kind === 1 ? "float32" : fl(r);
    const xs = [1 + Math.floor(r() * 2), 2, 4 + Math.floor(r() * 4), 4 + Math.floor(r() * 4)];
    const k = pick(r, [2, 3]), st = pick(r, [1, 2]), pd = pick(r, [0, 1]);
    const ys = [xs[0], xs[1], Math.floor((xs[2] + 2 * pd - k) / st) + 1, Math.floor((xs[3] + 2 * pd - k) / st) + 1];
    const p = { kernel: [k, k], stride: [st, st], padding: [pd, pd] };
    return { name: `pool kind ${kind}`, args: { x: input(xs, d, r), dy: input(ys, d, r), xs, ys, p2: p, lx: sizeOf(xs), ly: sizeOf(ys) }, run: (b, a) => {
      const prm = a.p2 as Parameters<Backend["maxPool2d"]>[3];
      if (kind === 0) b.maxPool2d(V(a, "x"), out(d, n(a, "ly")), s(a, "ys"), prm);
      else if (kind === 1) b.maxPool2dArgmax(V(a, "x"), out("int32", n(a, "ly")), s(a, "ys"), prm);
      else if (kind === 2) b.maxPool2dBackward(V(a, "x"), V(a, "dy"), out(d, n(a, "lx")), s(a, "xs"), prm);
      else if (kind === 3) b.avgPool2d(V(a, "x"), out(d, n(a, "ly")), s(a, "ys"), prm);
      else b.avgPool2dBackward(V(a, "dy"), out(d, n(a, "lx")), s(a, "xs"), prm);
    } };
  }),
];

/** Paths of every number in args (views' shapes, strides and offsets, axes, parameters, lengths). */
function numberPaths(v: unknown, path: (string | number)[] = [], acc: (string | number)[][] = []) {
  if (typeof v === "number") acc.push(path);
  else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) numberPaths(v[i], [...path, i], acc);
  } else if (v !== null && typeof v === "object" && !ArrayBuffer.isView(v)) {
    for (const [k, x] of Object.entries(v)) numberPaths(x, [...path, k], acc);
  }
  return acc;
}

/** A deep copy of args with the number at `path` replaced (typed arrays shared). */
function mutate(v: unknown, path: (string | number)[], value: number): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(v)) return v.map((x, i) => (i === head ? mutate(x, rest, value) : x));
  const o = v as Record<string, unknown>;
  return { ...o, [head]: mutate(o[head], rest, value) };
}

test("mutated calls of every native kernel throw or succeed, never write outside their outputs", {
  skip: !N,
}, () => {
  const rng = prng(20261206);
  const B = N!;
  let threw = 0;
  let ran = 0;
  for (let round = 0; round < 4000; round++) {
    const call = MAKERS[Math.floor(rng() * MAKERS.length)](rng);
    // the unmutated call is valid and runs
    call.run(B, call.args);
    checkGuards(`${call.name} (valid call)`);
    const paths = numberPaths(call.args);
    const path = paths[Math.floor(rng() * paths.length)];
    const old = path.reduce<unknown>(
      (o, k) => (o as Record<string | number, unknown>)[k],
      call.args,
    ) as number;
    const value = pick(rng, [
      old - 1,
      old + 1,
      2 * old + 1,
      0,
      -1,
      2 ** 31,
      2 ** 32,
      2 ** 53,
      2 ** 62,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      0.5,
    ]);
    // one round in five keeps the numbers and gives the outputs another dtype instead
    const mode = rng();
    const retype = mode < 0.2;
    let args = retype ? call.args : (mutate(call.args, path, value) as Record<string, unknown>);
    outDType = retype ? pick(rng, ["float32", "float64", "int32", "bool"] as const) : null;
    let what = retype
      ? `round ${round}: ${call.name} with ${outDType} outputs`
      : `round ${round}: ${call.name} with ${path.join(".")} = ${value} (was ${old})`;
    if (mode >= 0.2 && mode < 0.3) {
      // or one input view's array of another type (same element count)
      const keys = Object.keys(call.args).filter((k) =>
        ArrayBuffer.isView((call.args[k] as View | null)?.data),
      );
      const k = pick(rng, keys);
      const dt = pick(rng, ["float32", "float64", "int32", "bool"] as const);
      const v = call.args[k] as View;
      args = { ...call.args, [k]: { ...v, data: new CTORS[dt](v.data.length) } };
      what = `round ${round}: ${call.name} with ${k} as ${dt}`;
    }
    try {
      call.run(B, args);
      ran++;
    } catch (e) {
      assert.ok(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
      threw++;
    } finally {
      outDType = null;
    }
    checkGuards(what);
  }
  // Both outcomes occur (many corruptions are harmless, e.g. a larger output buffer), and the backend still
  // computes correctly afterwards.
  assert.ok(threw > 1000 && ran > 200, `threw ${threw}, ran ${ran}`);
  const a = {
    data: Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)),
    shape: [1, 64, 64],
    strides: [0, 64, 1],
    offset: 0,
  };
  const want = new Float32Array(64 * 64);
  const got = new Float32Array(64 * 64);
  J.dot(a, a, want);
  B.dot(a, a, got);
  for (let i = 0; i < got.length; i++)
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-3 * (1 + Math.abs(want[i])));
});
