/**
 * The op catalogue of the differential fuzzer: each generator draws one random case (inputs described by
 * gen.ts, the public-API call to make, a bound on accumulated rounding error, whether to differentiate it).
 * Ops: elementwise unary and binary (with broadcasting and dtype promotion), comparisons and where, casts
 * between all dtypes (including NaN, Inf and out-of-range values into int32), reductions (including over
 * empty axes), matmul in every rank combination (sizes 0 and 1 included), conv2d (stride, padding, dilation,
 * groups, bias), max / avg pooling, softmax / logSoftmax, gather / indexSelect (with out-of-range indices,
 * which must be rejected the same way), cumsum, Tensor.index views, cat / stack and pad.
 */
import type { DType } from "../../src/dtype.ts";
import * as C from "../../src/index.ts";
import type { IndexArg, Tensor } from "../../src/index.ts";
import { dim, type Input, input, int, magnitude, pick, type Rng, shape, size, type Values } from "./gen.ts";

export interface Case {
  name: string;
  inputs: Input[];
  run: (xs: Tensor[]) => Tensor;
  /** Bound on the magnitude of the terms accumulated into one output (0 for elementwise ops). */
  scale: number;
  /** Tolerance in ulps of the reference value. */
  ulps: number;
  /** Differentiate: the backward pass is compared too. */
  grad: boolean;
}

const FLOATS: readonly DType[] = ["float32", "float64"];
const floatKind = (rng: Rng): Values => {
  const u = rng();
  return u < 0.35 ? "special" : u < 0.45 ? "wide" : "plain";
};

const UNARY: Record<string, (x: Tensor) => Tensor> = {
  exp: C.exp,
  log: C.log,
  log1p: C.log1p,
  expm1: C.expm1,
  sqrt: C.sqrt,
  sin: C.sin,
  cos: C.cos,
  tan: C.tan,
  tanh: C.tanh,
  sigmoid: C.sigmoid,
  erf: C.erf,
  relu: C.relu,
  floor: C.floor,
  ceil: C.ceil,
  round: C.round,
  abs: C.abs,
  neg: C.neg,
  sign: C.sign,
  rsqrt: C.rsqrt,
  square: C.square,
  reciprocal: C.reciprocal,
  softplus: C.softplus,
  gelu: (x) => C.gelu(x),
  geluTanh: (x) => C.gelu(x, "tanh"),
  elu: (x) => C.elu(x),
  leakyRelu: (x) => C.leakyRelu(x, 0.1),
  clamp: (x) => C.clamp(x, -1, 1.5),
};
/** Compositions of several kernels: their rounding errors scale with the inputs, not the result. */
const COMPOSITE = new Set(["softplus", "gelu", "geluTanh", "elu", "rsqrt"]);
const INT_OK = new Set(["abs", "neg", "sign", "relu", "square", "clamp"]);

function unary(rng: Rng): Case {
  const name = pick(rng, Object.keys(UNARY));
  const dtype = INT_OK.has(name) && rng() < 0.3 ? "int32" : pick(rng, FLOATS);
  const inputs = [input(rng, shape(rng, 0, 3), dtype, floatKind(rng))];
  const f = UNARY[name];
  return {
    name,
    inputs,
    run: ([x]) => f(x),
    scale: COMPOSITE.has(name) ? magnitude(inputs) : 0,
    ulps: 8,
    grad: dtype !== "int32" && !["floor", "ceil", "round", "sign"].includes(name),
  };
}

/** Shapes broadcasting to `out`: some dims set to 1, some leading dims dropped. */
function broadcastShape(rng: Rng, out: number[]): number[] {
  const s = out.map((n) => (rng() < 0.3 ? 1 : n));
  return s.slice(rng() < 0.3 ? int(rng, 0, s.length) : 0);
}

const BINARY: Record<string, (a: Tensor, b: Tensor | number) => Tensor> = {
  add: C.add,
  sub: C.sub,
  mul: C.mul,
  div: C.div,
  pow: C.pow,
  maximum: C.maximum,
  minimum: C.minimum,
  eq: C.eq,
  lt: C.lt,
  ge: C.ge,
  ne: C.ne,
  logicalAnd: C.logicalAnd,
};
const DTYPES: readonly DType[] = ["float32", "float64", "int32", "bool"];

function binary(rng: Rng): Case {
  const name = pick(rng, Object.keys(BINARY));
  const out = shape(rng, 0, 3);
  const da = rng() < 0.6 ? pick(rng, FLOATS) : pick(rng, DTYPES);
  const db = rng() < 0.6 ? da : pick(rng, DTYPES);
  const kind = floatKind(rng);
  const inputs = [
    input(rng, broadcastShape(rng, out), da, kind),
    input(rng, broadcastShape(rng, out), db, kind),
  ];
  const scalar = rng() < 0.15 ? pick(rng, [2, -1.5, 0, 0.5, 3]) : null;
  if (scalar !== null) inputs.pop();
  const f = BINARY[name];
  const differentiable = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"].includes(name);
  return {
    name: scalar === null ? name : `${name}(x, ${scalar})`,
    inputs,
    run: (xs) => f(xs[0], scalar ?? xs[1]),
    scale: name === "pow" ? magnitude(inputs) : 0,
    ulps: 8,
    grad: differentiable && inputs.every((i) => i.dtype === "float32" || i.dtype === "float64"),
  };
}

function where(rng: Rng): Case {
  const out = shape(rng, 0, 3);
  const dt = pick(rng, FLOATS);
  const inputs = [
    input(rng, broadcastShape(rng, out), "bool", "plain"),
    input(rng, broadcastShape(rng, out), dt, floatKind(rng)),
    input(rng, broadcastShape(rng, out), rng() < 0.7 ? dt : pick(rng, DTYPES), floatKind(rng)),
  ];
  return {
    name: "where",
    inputs,
    run: ([c, a, b]) => C.where(c, a, b),
    scale: 0,
    ulps: 0,
    grad: inputs.slice(1).every((i) => i.dtype !== "int32" && i.dtype !== "bool"),
  };
}

/** Casts from values that stress the conversion: NaN, +-Inf, halves, out of int32 range. */
function cast(rng: Rng): Case {
  const from = pick(rng, DTYPES);
  const to = pick(rng, DTYPES);
  const inp = input(rng, shape(rng, 0, 3), from, "special");
  if (from === "float32" || from === "float64") {
    const odd = [
      Number.NaN,
      Infinity,
      -Infinity,
      2.5,
      -2.5,
      0.5,
      -0.7,
      3e9,
      -3e9,
      2 ** 31,
      -(2 ** 31) - 1,
      1e20,
      -0,
    ];
    inp.values = inp.values.map((v) => (rng() < 0.4 ? pick(rng, odd) : v));
  }
  return {
    name: `cast ${from}->${to}`,
    inputs: [inp],
    run: ([x]) => C.cast(x, to),
    scale: 0,
    ulps: 0,
    grad: false,
  };
}

const REDUCE: Record<string, (x: Tensor, d: number | number[] | undefined, k: boolean) => Tensor> = {
  sum: C.sum,
  mean: C.mean,
  max: C.max,
  min: C.min,
  prod: C.prod,
  logsumexp: C.logsumexp,
  variance: (x, d, k) => C.variance(x, d, k),
  any: C.any,
  all: C.all,
  argmax: (x, d, k) => C.argmax(x, Array.isArray(d) ? d[0] : d, k),
  argmin: (x, d, k) => C.argmin(x, Array.isArray(d) ? d[0] : d, k),
};

function reduce(rng: Rng): Case {
  const name = pick(rng, Object.keys(REDUCE));
  const s = shape(rng, 0, 3);
  const dtype = rng() < 0.75 ? pick(rng, FLOATS) : pick(rng, ["int32", "bool"] as const);
  // prod of wide magnitudes: whether a partial product underflows to 0 (or overflows) depends on the order of
  // the multiplications, which differs between backends (js and native in index order, wasm in SIMD lanes):
  // the product of 25 values around 1e-254 is 0 in one order and -1.1e-254 in another. Neither is wrong, so
  // prod gets the kinds whose partial products stay in range.
  let kind = floatKind(rng);
  if (name === "prod" && kind === "wide") kind = "special";
  const inputs = [input(rng, s, dtype, kind)];
  const nd = s.length;
  let dims: number | number[] | undefined;
  const u = rng();
  if (nd === 0 || u < 0.25) dims = undefined;
  else if (u < 0.7 || name.startsWith("arg")) dims = int(rng, -nd, nd - 1);
  else dims = s.map((_, i) => i).filter(() => rng() < 0.5);
  if (Array.isArray(dims) && dims.length === 0) dims = undefined;
  const keep = rng() < 0.4;
  const f = REDUCE[name];
  const count = dims === undefined ? size(s) : [dims].flat().reduce((a, d) => a * s[(d + nd) % nd], 1);
  const m = magnitude(inputs);
  return {
    name: `${name}(dim ${JSON.stringify(dims)}, keepdim ${keep})`,
    inputs,
    run: ([x]) => f(x, dims, keep),
    scale: name === "variance" ? count * m * m : name === "prod" ? 0 : count * m,
    ulps: name === "prod" ? 8 * Math.max(1, count) : 8,
    grad:
      (dtype === "float32" || dtype === "float64") &&
      ["sum", "mean", "max", "logsumexp", "variance"].includes(name),
  };
}

/**
 * Keep float32 operands of a multiply-accumulate below 1e19 in magnitude, so that no single product overflows.
 * An overflowing product is where a fused multiply-add (js, native, PyTorch on FMA hardware) and an unfused
 * one (wasm where relaxed SIMD is unavailable, as in Node 20) legitimately part: fma(-3e38 + 2e19 * 2e19) is
 * 1e38, mul-then-add gives Inf. Partial sums may still overflow (3e38 + 3e38), and every backend sums in the
 * same order there, so that case is compared (issue 8 item 12).
 */
function noProductOverflow(inputs: Input[]): Input[] {
  for (const inp of inputs) {
    if (inp.dtype !== "float32") continue;
    inp.values = inp.values.map((v) => (Math.abs(v) > 1e19 && Number.isFinite(v) ? Math.sign(v) * 1e19 : v));
  }
  return inputs;
}

function matmul(rng: Rng): Case {
  const [m, k, n] = [dim(rng, 6, 0.12), dim(rng, 6, 0.12), dim(rng, 6, 0.12)];
  const batch = rng() < 0.4 ? [dim(rng, 3, 0.1)] : [];
  const form = pick(rng, ["mm", "bmm", "bcast", "vv", "mv", "vm"] as const);
  let sa: number[];
  let sb: number[];
  if (form === "vv") [sa, sb] = [[k], [k]];
  else if (form === "mv") [sa, sb] = [[...batch, m, k], [k]];
  else if (form === "vm") [sa, sb] = [[k], [...batch, k, n]];
  else if (form === "bcast")
    [sa, sb] = [
      [...batch, m, k],
      [k, n],
    ];
  else if (form === "bmm")
    [sa, sb] = [
      [...batch, m, k],
      [...batch, k, n],
    ];
  else
    [sa, sb] = [
      [m, k],
      [k, n],
    ];
  const dt = rng() < 0.15 ? "int32" : pick(rng, FLOATS);
  const kind = floatKind(rng);
  const inputs = noProductOverflow([
    input(rng, sa, dt, kind),
    input(rng, sb, rng() < 0.8 ? dt : pick(rng, DTYPES), kind),
  ]);
  const mg = magnitude(inputs);
  return {
    name: `matmul ${form}`,
    inputs,
    run: ([a, b]) => C.matmul(a, b),
    scale: Math.max(1, k) * mg * mg,
    ulps: 8,
    grad: inputs.every((i) => i.dtype === "float32" || i.dtype === "float64"),
  };
}

function conv(rng: Rng): Case {
  const groups = rng() < 0.3 ? 2 : 1;
  const cg = dim(rng, 3, 0.05);
  const og = int(rng, 1, 3);
  const [kh, kw] = [int(rng, 1, 3), int(rng, 1, 3)];
  const stride = [int(rng, 1, 2), int(rng, 1, 2)];
  const dilation = [int(rng, 1, 2), int(rng, 1, 2)];
  const padding = [int(rng, 0, 2), int(rng, 0, 2)];
  // at least the dilated kernel's extent, so the output is not empty
  const h = Math.max(0, dilation[0] * (kh - 1) + 1 - 2 * padding[0]) + int(rng, 0, 4);
  const w = Math.max(0, dilation[1] * (kw - 1) + 1 - 2 * padding[1]) + int(rng, 0, 4);
  const n = dim(rng, 2, 0.1);
  const dt = pick(rng, FLOATS);
  const kind = floatKind(rng);
  const inputs = [
    input(rng, [n, cg * groups, h, w], dt, kind),
    input(rng, [og * groups, cg, kh, kw], dt, kind),
  ];
  if (rng() < 0.3) inputs.push(input(rng, [og * groups], dt, kind));
  noProductOverflow(inputs);
  const act = rng() < 0.2 ? pick(rng, ["relu", "tanh", "sigmoid"] as const) : undefined;
  return convCase(`conv2d groups ${groups}`, inputs, { stride, padding, dilation, groups, act });
}

/** The layer of a conv2d case: strides, padding and dilation per axis, groups, a fused activation. */
export interface ConvLayer {
  stride: number[];
  padding: number[];
  dilation: number[];
  groups: number;
  act?: "relu" | "tanh" | "sigmoid";
}

/** A conv2d case on inputs [x, w] or [x, w, b] (shared with conv-wide.test.ts). */
export function convCase(label: string, inputs: Input[], l: ConvLayer): Case {
  const [, cg, kh, kw] = inputs[1].shape;
  const mg = magnitude(inputs);
  const { stride, padding, dilation } = l;
  return {
    name: `${label} stride ${stride} padding ${padding} dilation ${dilation}${l.act ? ` ${l.act}` : ""}`,
    inputs,
    run: ([x, wt, b]) =>
      C.conv2d(x, wt, b ?? null, {
        stride: [stride[0], stride[1]],
        padding: [padding[0], padding[1]],
        dilation: [dilation[0], dilation[1]],
        groups: l.groups,
        activation: l.act,
      }),
    scale: (cg * kh * kw + 1) * mg * mg,
    ulps: 8,
    grad: true,
  };
}

function pool(rng: Rng): Case {
  const max = rng() < 0.5;
  const [kh, kw] = [int(rng, 1, 3), int(rng, 1, 3)];
  const stride = [int(rng, 1, 2), int(rng, 1, 2)];
  const padding = [int(rng, 0, Math.floor(kh / 2)), int(rng, 0, Math.floor(kw / 2))];
  const s = [dim(rng, 2, 0.1), dim(rng, 3, 0.1), kh + int(rng, 0, 4), kw + int(rng, 0, 4)];
  const inputs = [input(rng, s, pick(rng, FLOATS), floatKind(rng))];
  const opts = {
    stride: [stride[0], stride[1]] as [number, number],
    padding: [padding[0], padding[1]] as [number, number],
  };
  return {
    name: `${max ? "max" : "avg"}Pool2d k ${kh}x${kw} stride ${stride} padding ${padding}`,
    inputs,
    run: ([x]) => (max ? C.maxPool2d(x, [kh, kw], opts) : C.avgPool2d(x, [kh, kw], opts)),
    scale: max ? 0 : kh * kw * magnitude(inputs),
    ulps: 8,
    grad: true,
  };
}

function softmax(rng: Rng): Case {
  const log = rng() < 0.5;
  const s = shape(rng, 1, 3);
  const d = int(rng, -s.length, s.length - 1);
  const inputs = [input(rng, s, pick(rng, FLOATS), floatKind(rng))];
  return {
    name: `${log ? "logSoftmax" : "softmax"}(dim ${d})`,
    inputs,
    run: ([x]) => (log ? C.logSoftmax(x, d) : C.softmax(x, d)),
    scale: 4 * magnitude(inputs) * Math.max(1, s[(d + s.length) % s.length]),
    ulps: 8,
    grad: true,
  };
}

function indexing(rng: Rng): Case {
  const s = shape(rng, 1, 3);
  const d = int(rng, 0, s.length - 1);
  const gatherOp = rng() < 0.5;
  const dt = rng() < 0.8 ? pick(rng, FLOATS) : "int32";
  const bad = rng() < 0.1;
  const idxShape = gatherOp ? s.map((n, i) => (i === d ? dim(rng, 4) : int(rng, 0, n))) : [dim(rng, 4)];
  const idx = input(rng, idxShape, "int32", "index", undefined, s[d]);
  if (bad && idx.values.length > 0)
    idx.values[int(rng, 0, idx.values.length - 1)] = pick(rng, [s[d], -1 - s[d], 1000]);
  const inputs = [input(rng, s, dt, floatKind(rng)), idx];
  return {
    name: `${gatherOp ? "gather" : "indexSelect"}(dim ${d})${bad ? " out of range" : ""}`,
    inputs,
    run: ([x, i]) => (gatherOp ? C.gather(x, d, i) : C.indexSelect(x, d, i)),
    scale: 0,
    ulps: 0,
    grad: dt !== "int32",
  };
}

function cumsum(rng: Rng): Case {
  const s = shape(rng, 1, 3);
  const d = int(rng, -s.length, s.length - 1);
  const dt = rng() < 0.8 ? pick(rng, FLOATS) : pick(rng, ["int32", "bool"] as const);
  const inputs = [input(rng, s, dt, floatKind(rng))];
  return {
    name: `cumsum(dim ${d})`,
    inputs,
    run: ([x]) => C.cumsum(x, d),
    scale: Math.max(1, s[(d + s.length) % s.length]) * magnitude(inputs),
    ulps: 8,
    grad: dt === "float32" || dt === "float64",
  };
}

/** Tensor.index with integers (some negative, some out of range), ":", stepped slices (bounds past the ends) and null (new axes). */
function indexView(rng: Rng): Case {
  const s = shape(rng, 1, 3);
  const args: IndexArg[] = [];
  for (const n of s) {
    const u = rng();
    if (u < 0.25) args.push(n === 0 || rng() < 0.05 ? n + int(rng, 0, 2) : int(rng, -n, n - 1));
    else if (u < 0.4) args.push(":");
    else if (rng() < 0.7) {
      const start = int(rng, 0, Math.max(0, n - 1));
      args.push([start, int(rng, start, n), int(rng, 1, 3)]);
    } else args.push([int(rng, -n - 1, n + 1), int(rng, -n - 1, n + 2), int(rng, 1, 3)]); // clamped bounds
    if (rng() < 0.1) args.push(null);
  }
  if (rng() < 0.3) args.pop();
  const dt = pick(rng, DTYPES);
  return {
    name: `index(${JSON.stringify(args)})`,
    inputs: [input(rng, s, dt, floatKind(rng))],
    run: ([x]) => x.index(...args).mul(2),
    scale: 0,
    ulps: 0,
    grad: dt === "float32" || dt === "float64",
  };
}

/** cat / stack of two or three inputs in different layouts (and dtypes), and constant padding. */
function join(rng: Rng): Case {
  const op = pick(rng, ["cat", "stack", "pad"] as const);
  const s = shape(rng, 1, 3);
  const d = int(rng, 0, s.length - 1);
  const dt = pick(rng, FLOATS);
  if (op === "pad") {
    const pads = Array.from({ length: 2 * int(rng, 1, s.length) }, () => int(rng, 0, 2));
    const value = pick(rng, [0, -1.5, Number.NaN, Infinity]);
    return {
      name: `pad(${pads}, ${value})`,
      inputs: [input(rng, s, dt, floatKind(rng))],
      run: ([x]) => C.pad(x, pads, value),
      scale: 0,
      ulps: 0,
      grad: true,
    };
  }
  const n = int(rng, 2, 3);
  const inputs = Array.from({ length: n }, () =>
    input(
      rng,
      op === "cat" ? s.map((k, i) => (i === d ? dim(rng, 4) : k)) : s,
      rng() < 0.8 ? dt : pick(rng, DTYPES),
      floatKind(rng),
    ),
  );
  return {
    name: `${op}(dim ${d})`,
    inputs,
    run: (xs) => (op === "cat" ? C.cat(xs, d) : C.stack(xs, d)),
    scale: 0,
    ulps: 0,
    grad: inputs.every((i) => i.dtype === "float32" || i.dtype === "float64"),
  };
}

/**
 * A few large cases, big enough for the native thread pool, the wasm GEMM workers and full-width vector loops
 * (the small shapes elsewhere mostly run tails and scalar paths).
 */
function large(rng: Rng): Case {
  const op = pick(rng, ["add", "exp", "sum", "max", "softmax", "matmul", "conv2d"] as const);
  const dt = pick(rng, FLOATS);
  const kind = floatKind(rng);
  const big = [int(rng, 100, 300), int(rng, 100, 300)];
  if (op === "matmul") {
    const [m, k, n] = [int(rng, 60, 160), int(rng, 60, 300), int(rng, 60, 160)];
    const inputs = noProductOverflow([input(rng, [m, k], dt, kind), input(rng, [k, n], dt, kind)]);
    const mg = magnitude(inputs);
    return {
      name: `large matmul ${m}x${k}x${n}`,
      inputs,
      run: ([a, b]) => C.matmul(a, b),
      scale: k * mg * mg,
      ulps: 8,
      grad: rng() < 0.3,
    };
  }
  if (op === "conv2d") {
    const inputs = noProductOverflow([
      input(rng, [2, 8, 20, 20], dt, kind),
      input(rng, [16, 8, 3, 3], dt, kind),
    ]);
    const mg = magnitude(inputs);
    return {
      name: "large conv2d groups 1 stride 1,1 padding 1,1 dilation 1,1",
      inputs,
      run: ([x, w]) => C.conv2d(x, w, null, { padding: 1 }),
      scale: 73 * mg * mg,
      ulps: 8,
      grad: rng() < 0.3,
    };
  }
  const inputs = [input(rng, big, dt, kind)];
  if (op === "add") inputs.push(input(rng, [big[1]], dt, kind));
  const m = magnitude(inputs);
  const run: Record<typeof op, (xs: Tensor[]) => Tensor> = {
    add: ([a, b]) => C.add(a, b),
    exp: ([a]) => C.exp(a),
    sum: ([a]) => C.sum(a, 1),
    max: ([a]) => C.max(a, 0),
    softmax: ([a]) => C.softmax(a, -1),
  };
  return {
    name: `large ${op}`,
    inputs,
    run: run[op],
    scale: op === "sum" || op === "softmax" ? big[1] * m : 0,
    ulps: 8,
    grad: false,
  };
}

/** Generators with their weights (how often each is drawn). */
export const GENERATORS: readonly [(rng: Rng) => Case, number][] = [
  [unary, 4],
  [binary, 4],
  [where, 1],
  [cast, 2],
  [reduce, 4],
  [matmul, 3],
  [conv, 3],
  [pool, 2],
  [softmax, 2],
  [indexing, 2],
  [cumsum, 1],
  [indexView, 2],
  [join, 1],
  [large, 0.1],
];

export function drawCase(rng: Rng): Case {
  const total = GENERATORS.reduce((a, [, w]) => a + w, 0);
  let u = rng() * total;
  for (const [g, w] of GENERATORS) {
    u -= w;
    if (u < 0) return g(rng);
  }
  return GENERATORS[0][0](rng);
}
