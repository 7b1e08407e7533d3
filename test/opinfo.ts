/**
 * The op table (the idea of PyTorch's OpInfo): every public op with sample inputs (odd sizes, broadcasting, 0-d,
 * non-contiguous views), its input domain, a float64 reference, and whether it is differentiable. Generic suites
 * in ops.test.ts walk it.
 */
import * as cr from "../src/index.ts";
import { Generator, type Tensor, tensor } from "../src/index.ts";
import { sdpa } from "../src/prims/attention.ts";
import { gruCell, lstmCell } from "../src/prims/rnn.ts";
import * as lax from "../src/prims/lax.ts";
import {
  alongAxis,
  at,
  attentionNd,
  gruCellNd,
  lstmCellNd,
  choleskyRef,
  detRef,
  fromMatrices,
  gaussSolve,
  matricesOf,
  mgsQR,
  mulM,
  shiftM,
  symEig3,
  transposeM,
  avgPoolBackNd,
  conv1dNd,
  conv2dNd,
  convTranspose2dNd,
  erfRef,
  interpolateNd,
  layerNormNd,
  layerNormVjpNd,
  mapN,
  matmulNd,
  maxPoolBackNd,
  type Nd,
  type Pair2,
  poolNd,
  reduceNd,
  scatterAddNd,
  size,
  softmaxNd,
  sortNd,
  unravel,
} from "./ref.ts";

export type Domain = "real" | "positive" | "awayFromZero" | "unit" | "small" | "aboveOne";

export interface OpInfo {
  name: string;
  /** Sample argument lists (float64 tensors). */
  samples: () => Tensor[][];
  fn: (...xs: Tensor[]) => Tensor;
  ref: (...xs: Nd[]) => Nd;
  /** Differentiable with respect to every sample argument. */
  diff: boolean;
  /** Output dtype differs from input (comparisons, argmax): forward compares values only. */
  tol?: number;
  /** Options for gradCheck where the default finite-difference step does not suit the op. */
  gradCheck?: { eps: number; atol: number; rtol: number };
  /** Skip the second-order check (ops whose first derivative is piecewise constant is still fine to check). */
  noSecondOrder?: boolean;
}

const g = new Generator(20261122);

/** The keep pattern of the bool-mask attention row (every query row keeps at least one key). */
const ATTN_KEEP = [
  [1, 0, 1, 1, 0],
  [0, 0, 0, 0, 1],
  [1, 1, 1, 1, 1],
  [0, 1, 0, 1, 0],
];

function draw(d: Domain): number {
  const n = g.normal();
  switch (d) {
    case "real":
      return n;
    case "positive":
      return 0.2 + Math.abs(n);
    case "awayFromZero":
      return (n < 0 ? -1 : 1) * (0.2 + Math.abs(n));
    case "unit":
      return 0.9 * Math.tanh(n);
    case "small":
      return 0.5 * Math.tanh(n);
    case "aboveOne":
      return 1.2 + Math.abs(n);
  }
}

/** A float64 tensor of `shape`; `nc` gives a non-contiguous (transposed) view with the same shape. */
export function mk(shape: number[], d: Domain = "real", nc = false): Tensor {
  const s =
    nc && shape.length >= 2
      ? [...shape.slice(0, -2), shape[shape.length - 1], shape[shape.length - 2]]
      : shape;
  const data = new Float64Array(size(s));
  for (let i = 0; i < data.length; i++) data[i] = draw(d);
  const t = tensor(data, { dtype: "float64", shape: s });
  return nc && shape.length >= 2 ? t.transpose(-1, -2) : t;
}

const unaryShapes: [number[], boolean][] = [
  [[], false],
  [[7], false],
  [[3, 4], true],
  [[2, 3, 5], false],
];
const binaryShapes: [number[], number[], boolean][] = [
  [[3, 4], [4], false],
  [[2, 1, 3], [4, 1], false],
  [[], [5], false],
  [[3, 4], [3, 4], true],
];

function unary(
  name: string,
  fn: (x: Tensor) => Tensor,
  f: (v: number) => number,
  d: Domain = "real",
  diff = true,
): OpInfo {
  return {
    name,
    samples: () => unaryShapes.map(([s, nc]) => [mk(s, d, nc)]),
    fn,
    ref: (x) => mapN(f, x),
    diff,
  };
}

function binary(
  name: string,
  fn: (a: Tensor, b: Tensor) => Tensor,
  f: (a: number, b: number) => number,
  da: Domain = "real",
  db: Domain = "real",
  diff = true,
): OpInfo {
  return {
    name,
    samples: () => binaryShapes.map(([sa, sb, nc]) => [mk(sa, da, nc), mk(sb, db, nc)]),
    fn,
    ref: (a, b) => mapN(f, a, b),
    diff,
  };
}

/**
 * Rows of softmax samples far from 0: a spread of 5 around row offsets of 1e4, -1e4, 700 and -3000 (exp
 * overflows or underflows in float32 and float64 unless the row max is subtracted). Offsets vary along axis 0.
 */
function largeRows(shape: number[]): Tensor {
  const off = [1e4, -1e4, 700, -3000];
  const o = tensor(
    Array.from({ length: shape[0] }, (_, i) => off[i % 4]),
    { dtype: "float64" },
  ).reshape([shape[0], ...shape.slice(1).map(() => 1)]);
  return mk(shape).mul(5).add(o);
}

/** A [r, c] sample with -Infinity at fixed positions, every row keeping finite entries (column 0 never). */
function withNegInf(r: number, c: number): Tensor {
  const mask = Array.from({ length: r * c }, (_, i) => i % c !== 0 && (i * 7) % 3 === 0);
  return cr.where(tensor(mask, { dtype: "bool" }).reshape([r, c]), Number.NEGATIVE_INFINITY, mk([r, c]));
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const b2n = (b: boolean) => (b ? 1 : 0);
const sumArr = (v: number[]) => v.reduce((a, b) => a + b, 0);
const lse = (v: number[]) => {
  const m = Math.max(...v);
  return m + Math.log(sumArr(v.map((x) => Math.exp(x - m))));
};
const variance = (v: number[], c = 1) => {
  const mu = sumArr(v) / v.length;
  return sumArr(v.map((x) => (x - mu) ** 2)) / (v.length - c);
};

function reduction(
  name: string,
  fn: (x: Tensor, dim: number | number[] | undefined, keepdim: boolean) => Tensor,
  f: (v: number[]) => number,
  diff = true,
): OpInfo[] {
  const cases: [number[], number | number[] | undefined, boolean, boolean][] = [
    [[5], undefined, false, false],
    [[3, 4], 1, false, true],
    [[2, 3, 4], [0, 2], true, false],
    [[3, 4], -2, true, false],
  ];
  return cases.map(([shape, dim, keep, nc], k) => ({
    name: `${name}#${k}`,
    samples: () => [[mk(shape, "real", nc)]],
    fn: (x: Tensor) => fn(x, dim, keep),
    ref: (x: Nd) =>
      reduceNd(x, dim === undefined ? undefined : typeof dim === "number" ? [dim] : dim, keep, f),
    diff,
  }));
}

function shapeOp(
  name: string,
  shape: number[],
  fn: (x: Tensor) => Tensor,
  ref: (x: Nd) => Nd,
  nc = false,
): OpInfo {
  return { name, samples: () => [[mk(shape, "real", nc)]], fn, ref, diff: true };
}

/** Reference for any pure permutation/selection of elements: index map from output multi-index to input. */
function gatherRef(outShape: number[], pick: (idx: number[]) => number[]): (x: Nd) => Nd {
  return (x) => {
    const data: number[] = [];
    for (let i = 0; i < size(outShape); i++) data.push(at(x, pick(unravel(i, outShape))));
    return { shape: outShape, data };
  };
}

const idx = (v: number[][]) => tensor(v, { dtype: "int32" });
const SCATTER_IDX = [
  [3, 0, 1],
  [0, 0, 3],
  [3, 2, 1],
  [1, 2, 3],
  [3, 0, 2],
];

/** Exact pooling params (as the primitives take them) for input shape xs. */
function poolParams(xs: readonly number[], k: Pair2, s: Pair2, p: Pair2) {
  const two = (v: Pair2): [number, number] => (typeof v === "number" ? [v, v] : [v[0], v[1]]);
  const [kernel, stride, padding] = [two(k), two(s), two(p)];
  const oh = Math.floor((xs[2] + 2 * padding[0] - kernel[0]) / stride[0]) + 1;
  const ow = Math.floor((xs[3] + 2 * padding[1] - kernel[1]) / stride[1]) + 1;
  return { kernel, stride, padding, outShape: [xs[0], xs[1], oh, ow] };
}

/**
 * Pooling geometries shared by maxPool2d and its VJP primitive: [x shape, kernel, stride, padding, x (and dy)
 * non-contiguous].
 */
const POOLS: [number[], Pair2, Pair2, Pair2, boolean][] = [
  [[2, 3, 6, 7], 3, 2, 1, false], // overlapping, padded
  [[2, 3, 7, 5], 2, 2, 0, true], // tiled 2x2 (the fused kernel path), odd sizes
  [[1, 2, 7, 8], 2, 3, 0, false], // disjoint windows with gaps between them
  [[1, 2, 5, 6], [3, 2], [1, 2], [1, 0], true], // rectangular, overlapping rows only
  [[0, 2, 4, 4], 2, 2, 0, false], // empty
];

/** A fixed input full of ties (0 and -0 among them) and two NaNs: the first maximum / the NaN must win. */
const TIES_SHAPE = [1, 2, 5, 5];
const TIES = Array.from({ length: 50 }, (_, i) =>
  i === 7 || i === 31 ? Number.NaN : i % 11 === 0 ? -0 : [0, 2, 1, 2, 0][i % 5],
);

/** The values 0 .. n-1 laid along `shape` (a column [n, 1] or a row [n]), for index-dependent references. */
function iotaNd(shape: number[]): Nd {
  return { shape, data: Array.from({ length: size(shape) }, (_, i) => i) };
}

/** A 0/1 multiplier putting zeros into cumprod's input: column 0 one zero, column 1 two, column 2 none. */
const ZEROS_5x3 = tensor(
  [
    [1, 1, 1],
    [1, 0, 1],
    [0, 1, 1],
    [1, 0, 1],
    [1, 1, 1],
  ],
  { dtype: "float64" },
);

/** A fixed bool mask of 4 entries (true at 1 and 3). */
const MASK_4 = tensor([false, true, false, true], { dtype: "bool" });

/** a + 3I: a well-conditioned matrix from a standard normal draw (linalg rows). */
function well(a: Tensor): Tensor {
  const n = a.shape[a.ndim - 1];
  return a.add(cr.eye(n, n, { dtype: a.dtype }).mul(3));
}

/** a a^T + I: symmetric positive-definite. */
function spd(a: Tensor): Tensor {
  const n = a.shape[a.ndim - 1];
  return a.matmul(a.mT).add(cr.eye(n, n, { dtype: a.dtype }));
}

/** The broadcast of two batch shapes. */
function broadcastBatch(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => Math.max(a[a.length - n + i] ?? 1, b[b.length - n + i] ?? 1));
}

/** x broadcast to `shape` (materialised). */
function expandNd(x: Nd, shape: number[]): Nd {
  return mapN((v) => v, x, { shape, data: new Array<number>(size(shape)).fill(0) });
}

/** The transpose of the last two axes. */
function transposeNd(x: Nd): Nd {
  return fromMatrices(x.shape.slice(0, -2), matricesOf(x).map(transposeM));
}

export const OPS: OpInfo[] = [
  // ---- unary math
  unary(
    "neg",
    (x) => x.neg(),
    (v) => -v,
  ),
  unary("abs", (x) => x.abs(), Math.abs, "awayFromZero"),
  unary("sign", (x) => x.sign(), Math.sign, "awayFromZero", false),
  unary("exp", (x) => x.exp(), Math.exp),
  unary("log", (x) => x.log(), Math.log, "positive"),
  unary("log1p", (x) => x.log1p(), Math.log1p, "positive"),
  unary("expm1", (x) => x.expm1(), Math.expm1),
  unary("sqrt", (x) => x.sqrt(), Math.sqrt, "positive"),
  unary(
    "rsqrt",
    (x) => x.rsqrt(),
    (v) => 1 / Math.sqrt(v),
    "positive",
  ),
  unary(
    "square",
    (x) => x.square(),
    (v) => v * v,
  ),
  unary(
    "reciprocal",
    (x) => x.reciprocal(),
    (v) => 1 / v,
    "awayFromZero",
  ),
  unary("sin", (x) => x.sin(), Math.sin),
  unary("cos", (x) => x.cos(), Math.cos),
  unary("tan", (x) => x.tan(), Math.tan, "unit"),
  unary("tanh", (x) => x.tanh(), Math.tanh),
  unary("sigmoid", (x) => x.sigmoid(), sigmoid),
  unary(
    "relu",
    (x) => x.relu(),
    (v) => Math.max(v, 0),
    "awayFromZero",
  ),
  unary(
    "leakyRelu",
    (x) => x.leakyRelu(0.1),
    (v) => (v > 0 ? v : 0.1 * v),
    "awayFromZero",
  ),
  unary(
    "elu",
    (x) => x.elu(1.5),
    (v) => (v > 0 ? v : 1.5 * Math.expm1(v)),
    "awayFromZero",
  ),
  unary(
    "gelu",
    (x) => x.gelu(),
    (v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2)),
  ),
  unary(
    "geluTanh",
    (x) => x.gelu("tanh"),
    (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  ),
  unary(
    "softplus",
    (x) => x.softplus(),
    (v) => Math.log1p(Math.exp(v)),
  ),
  unary("erf", (x) => x.erf(), erfRef),
  // inverse trigonometric and hyperbolic functions (references: the JS Math functions, float64)
  unary("asin", (x) => x.asin(), Math.asin, "unit"),
  unary("acos", (x) => x.acos(), Math.acos, "unit"),
  unary("atan", (x) => x.atan(), Math.atan),
  unary("sinh", (x) => x.sinh(), Math.sinh),
  unary("cosh", (x) => x.cosh(), Math.cosh),
  unary("asinh", (x) => x.asinh(), Math.asinh),
  unary("acosh", (x) => x.acosh(), Math.acosh, "aboveOne"),
  unary("atanh", (x) => x.atanh(), Math.atanh, "unit"),
  unary("log2", (x) => x.log2(), Math.log2, "positive"),
  unary("log10", (x) => x.log10(), Math.log10, "positive"),
  unary(
    "atan2-method",
    (x) => x.atan2(0.5),
    (v) => Math.atan2(v, 0.5),
  ),
  unary(
    "detach",
    (x) => x.detach().mul(2),
    (v) => 2 * v,
    "real",
    false,
  ),
  unary(
    "stopGradient",
    (x) => cr.stopGradient(x).add(1),
    (v) => v + 1,
    "real",
    false,
  ),
  unary("floor", (x) => x.floor(), Math.floor, "real", false),
  unary("ceil", (x) => x.ceil(), Math.ceil, "real", false),
  unary(
    "round",
    (x) => x.mul(3).round(),
    (v) => roundHalfEven(3 * v),
    "real",
    false,
  ),
  unary(
    "clamp",
    (x) => x.clamp(-0.5, 0.7),
    (v) => Math.min(Math.max(v, -0.5), 0.7),
  ),
  unary(
    "pow-scalar",
    (x) => x.pow(3),
    (v) => v ** 3,
  ),
  unary(
    "scalar-div",
    (x) => cr.div(2, x),
    (v) => 2 / v,
    "awayFromZero",
  ),
  {
    ...unary(
      "to-float32-and-back",
      (x) => x.to("float32").to("float64"),
      (v) => Math.fround(v),
    ),
    // finite differences through float32 rounding need a step far above float32's resolution
    gradCheck: { eps: 1e-2, atol: 1e-4, rtol: 1e-4 },
  },
  // ---- binary
  binary(
    "add",
    (a, b) => a.add(b),
    (a, b) => a + b,
  ),
  binary(
    "sub",
    (a, b) => a.sub(b),
    (a, b) => a - b,
  ),
  binary(
    "mul",
    (a, b) => a.mul(b),
    (a, b) => a * b,
  ),
  binary(
    "div",
    (a, b) => a.div(b),
    (a, b) => a / b,
    "real",
    "awayFromZero",
  ),
  binary(
    "pow",
    (a, b) => a.pow(b),
    (a, b) => a ** b,
    "positive",
    "real",
  ),
  binary("maximum", (a, b) => a.maximum(b), Math.max),
  binary("minimum", (a, b) => a.minimum(b), Math.min),
  // y away from 0: central differences must not straddle the branch cut (y = 0, x < 0)
  binary("atan2", (y, x) => cr.atan2(y, x), Math.atan2, "awayFromZero", "real"),
  binary(
    "eq",
    (a, b) => a.eq(b.round()).to("float64"),
    (a, b) => b2n(a === roundHalfEven(b)),
    "real",
    "real",
    false,
  ),
  binary(
    "ne",
    (a, b) => a.ne(b).to("float64"),
    (a, b) => b2n(a !== b),
    "real",
    "real",
    false,
  ),
  binary(
    "lt",
    (a, b) => a.lt(b).to("float64"),
    (a, b) => b2n(a < b),
    "real",
    "real",
    false,
  ),
  binary(
    "le",
    (a, b) => a.le(b).to("float64"),
    (a, b) => b2n(a <= b),
    "real",
    "real",
    false,
  ),
  binary(
    "gt",
    (a, b) => a.gt(b).to("float64"),
    (a, b) => b2n(a > b),
    "real",
    "real",
    false,
  ),
  binary(
    "ge",
    (a, b) => a.ge(b).to("float64"),
    (a, b) => b2n(a >= b),
    "real",
    "real",
    false,
  ),
  binary(
    "logicalAnd",
    (a, b) => a.gt(0).logicalAnd(b.gt(0)).to("float64"),
    (a, b) => b2n(a > 0 && b > 0),
    "real",
    "real",
    false,
  ),
  binary(
    "logicalOr",
    (a, b) => a.gt(0).logicalOr(b.gt(0)).to("float64"),
    (a, b) => b2n(a > 0 || b > 0),
    "real",
    "real",
    false,
  ),
  binary(
    "logicalXor",
    (a, b) => a.gt(0).logicalXor(b.gt(0)).to("float64"),
    (a, b) => b2n(a > 0 !== b > 0),
    "real",
    "real",
    false,
  ),
  unary(
    "logicalNot",
    (x) => x.gt(0).logicalNot().to("float64"),
    (v) => b2n(!(v > 0)),
    "real",
    false,
  ),
  binary(
    "where",
    (a, b) => cr.where(a.gt(b), a, b.mul(2)),
    (a, b) => (a > b ? a : 2 * b),
  ),
  unary(
    "maskedFill",
    (x) => x.maskedFill(x.gt(0.3), 7),
    (a) => (a > 0.3 ? 7 : a),
    "awayFromZero",
  ),
  // ---- reductions
  ...reduction("sum", (x, d, k) => x.sum(d, k), sumArr),
  ...reduction(
    "mean",
    (x, d, k) => x.mean(d, k),
    (v) => sumArr(v) / v.length,
  ),
  ...reduction(
    "prod",
    (x, d, k) => x.prod(d, k),
    (v) => v.reduce((a, b) => a * b, 1),
  ),
  ...reduction(
    "max",
    (x, d, k) => x.max(d, k),
    (v) => Math.max(...v),
  ),
  ...reduction(
    "min",
    (x, d, k) => x.min(d, k),
    (v) => Math.min(...v),
  ),
  ...reduction(
    "var",
    (x, d, k) => x.var(d, k),
    (v) => variance(v),
  ),
  ...reduction(
    "std",
    (x, d, k) => x.std(d, k),
    (v) => Math.sqrt(variance(v)),
  ),
  ...reduction("logsumexp", (x, d, k) => x.logsumexp(d, k), lse),
  ...reduction(
    "norm2",
    (x, d, k) => x.norm(2, d, k),
    (v) => Math.sqrt(sumArr(v.map((a) => a * a))),
  ),
  ...reduction(
    "norm3",
    (x, d, k) => x.norm(3, d, k),
    (v) => sumArr(v.map((a) => Math.abs(a) ** 3)) ** (1 / 3),
  ),
  ...reduction(
    "normInf",
    (x, d, k) => x.norm(Number.POSITIVE_INFINITY, d, k),
    (v) => Math.max(...v.map(Math.abs)),
  ),
  ...reduction(
    "any",
    (x, d, k) => x.gt(0.5).any(d, k).to("float64"),
    (v) => b2n(v.some((a) => a > 0.5)),
    false,
  ),
  ...reduction(
    "all",
    (x, d, k) => x.gt(-1).all(d, k).to("float64"),
    (v) => b2n(v.every((a) => a > -1)),
    false,
  ),
  {
    name: "argmax",
    samples: () => [[mk([3, 5], "real", true)]],
    fn: (x) => x.argmax(1).to("float64"),
    ref: (x) => reduceNd(x, [1], false, (v) => v.indexOf(Math.max(...v))),
    diff: false,
  },
  {
    name: "argmin-flat",
    samples: () => [[mk([3, 5])]],
    fn: (x) => x.argmin().to("float64"),
    ref: (x) => reduceNd(x, undefined, false, (v) => v.indexOf(Math.min(...v))),
    diff: false,
  },
  {
    name: "softmax",
    samples: () => [[mk([3, 5], "real", true)], [mk([2, 3, 4])]],
    fn: (x) => x.softmax(1),
    ref: (x) =>
      alongAxis(x, 1, (v) => {
        const l = lse(v);
        return v.map((a) => Math.exp(a - l));
      }),
    diff: true,
  },
  {
    name: "logSoftmax",
    samples: () => [[mk([3, 5])], [mk([2, 3, 4], "real", true)]],
    fn: (x) => x.logSoftmax(-1),
    ref: (x) =>
      alongAxis(x, -1, (v) => {
        const l = lse(v);
        return v.map((a) => a - l);
      }),
    diff: true,
  },
  // layerNorm (the fused normalisation primitive plus the affine ops): odd rows, a row of one, 2 normalised
  // dims, non-contiguous input, no affine / weight only
  {
    name: "layerNorm",
    samples: () => [
      [mk([3, 5], "real", true), mk([5]), mk([5])],
      [mk([2, 3, 17]), mk([17]), mk([17])],
      [mk([7]), mk([7]), mk([7])],
      [mk([4, 1]), mk([1]), mk([1])],
    ],
    fn: (x, w, b) => cr.nn.layerNorm(x, x.shape[x.ndim - 1], w, b),
    ref: (x, w, b) => layerNormNd(x, 1, w, b, 1e-5),
    diff: true,
  },
  {
    name: "layerNorm 2 dims",
    samples: () => [
      [mk([2, 3, 4]), mk([3, 4]), mk([3, 4])],
      [mk([5, 2, 3], "real", true), mk([2, 3]), mk([2, 3])],
    ],
    fn: (x, w, b) => cr.nn.layerNorm(x, x.shape.slice(-2), w, b, 0.1),
    ref: (x, w, b) => layerNormNd(x, 2, w, b, 0.1),
    diff: true,
  },
  {
    name: "layerNorm no affine",
    samples: () => [[mk([4, 9], "real", true)], [mk([3, 33])], [mk([2, 2, 3])]],
    fn: (x) => cr.nn.layerNorm(x, [x.shape[x.ndim - 1]], null, null, 0.01),
    ref: (x) => layerNormNd(x, 1, null, null, 0.01),
    diff: true,
  },
  {
    name: "layerNormBackward",
    samples: () => [
      [mk([3, 5], "real", true), mk([3, 5])],
      [mk([2, 17]), mk([2, 17], "real", true)],
      [mk([6]), mk([6])],
    ],
    fn: (x, g) => lax.layerNormBackward(x, g, 0.05),
    ref: (x, g) => layerNormVjpNd(x, g, 0.05),
    diff: true,
  },
  // LayerNorm's affine form's backward primitives (prims/norm.ts): layerNormBackward(x, g w), and the sums over
  // the rows [g xhat, g]; odd rows, a row of one, a single row, strided inputs
  {
    name: "layerNormScaledBackward",
    samples: () => [
      [mk([3, 5], "real", true), mk([5]), mk([3, 5])],
      [mk([2, 3, 7]), mk([7], "real", true), mk([2, 3, 7], "real", true)],
      [mk([6]), mk([6]), mk([6])],
      [mk([4, 1]), mk([1]), mk([4, 1])],
    ],
    fn: (x, w, g) => lax.layerNormScaledBackward(x, w, g, 0.05),
    ref: (x, w, g) =>
      layerNormVjpNd(x, { shape: g.shape, data: g.data.map((v, i) => v * w.data[i % w.data.length]) }, 0.05),
    diff: true,
  },
  {
    name: "layerNormAffineGrads",
    samples: () => [
      [mk([3, 5], "real", true), mk([3, 5])],
      [mk([2, 3, 7]), mk([2, 3, 7], "real", true)],
      [mk([6]), mk([6])],
      [mk([4, 1]), mk([4, 1])],
    ],
    fn: (x, g) => lax.layerNormAffineGrads(x, g, 0.05),
    ref: (x, g) => {
      const n = x.shape[x.shape.length - 1];
      const xhat = layerNormNd(x, 1, null, null, 0.05);
      const data = new Array<number>(2 * n).fill(0);
      for (let i = 0; i < g.data.length; i++) {
        data[i % n] += g.data[i] * xhat.data[i];
        data[n + (i % n)] += g.data[i];
      }
      return { shape: [2, n], data };
    },
    diff: true,
  },
  // The fused softmax / log-softmax primitives: every axis position, odd sizes, strided views, 0-d, large
  // magnitudes and -Infinity entries (masking).
  {
    name: "logSoftmax dim 0",
    samples: () => [[mk([7, 3])], [mk([5, 3], "real", true)], [mk([3, 2, 5])]],
    fn: (x) => x.logSoftmax(0),
    ref: (x) => softmaxNd(x, 0, true),
    diff: true,
  },
  {
    name: "softmax dim 1 of 3-d",
    samples: () => [[mk([2, 5, 3], "real", true)], [mk([3, 33, 2])]],
    fn: (x) => x.softmax(1),
    ref: (x) => softmaxNd(x, 1, false),
    diff: true,
  },
  {
    name: "logSoftmax odd rows",
    samples: () => [[mk([4, 17], "real", true)], [mk([1, 33])], [mk([9])]],
    fn: (x) => x.logSoftmax(-1),
    ref: (x) => softmaxNd(x, -1, true),
    diff: true,
  },
  {
    name: "softmax dim 0 odd rows",
    samples: () => [[mk([17, 3], "real", true)], [mk([33])]],
    fn: (x) => x.softmax(0),
    ref: (x) => softmaxNd(x, 0, false),
    diff: true,
  },
  {
    name: "softmax 0-d and rows of one",
    samples: () => [[mk([])], [mk([1])], [mk([2, 1], "real", true)]],
    fn: (x) => x.softmax(-1).add(x.logSoftmax(-1)),
    ref: (x) => mapN((a, b) => a + b, softmaxNd(x, -1, false), softmaxNd(x, -1, true)),
    diff: true,
  },
  {
    name: "logSoftmax large magnitude",
    samples: () => [[largeRows([4, 6])], [largeRows([6, 4]).transpose(0, 1)]],
    fn: (x) => x.logSoftmax(-1),
    ref: (x) => softmaxNd(x, -1, true),
    diff: true,
  },
  {
    name: "softmax large magnitude",
    samples: () => [[largeRows([4, 6])], [largeRows([6, 4]).transpose(0, 1)]],
    fn: (x) => x.softmax(-1),
    ref: (x) => softmaxNd(x, -1, false),
    diff: true,
  },
  {
    name: "softmax -inf entries",
    samples: () => [[withNegInf(3, 5)], [withNegInf(5, 3).transpose(0, 1)]],
    fn: (x) => x.softmax(-1),
    ref: (x) => softmaxNd(x, -1, false),
    diff: true,
  },
  {
    // log-softmax is -Infinity at a -Infinity input: where() puts 0 there so that finite differences of the
    // output stay finite (its derivative there is routed to 0 and exp(-Infinity) = 0 in the rules).
    name: "logSoftmax -inf entries",
    samples: () => [[withNegInf(3, 5)], [withNegInf(5, 3).transpose(0, 1)]],
    fn: (x) => cr.where(x.gt(Number.NEGATIVE_INFINITY), x.logSoftmax(-1), 0),
    ref: (x) => {
      const y = softmaxNd(x, -1, true);
      return { shape: y.shape, data: y.data.map((v) => (v === Number.NEGATIVE_INFINITY ? 0 : v)) };
    },
    diff: true,
  },
  {
    name: "cumsum",
    samples: () => [[mk([4, 3], "real", true)], [mk([5])]],
    fn: (x) => x.cumsum(0),
    ref: (x) =>
      alongAxis(x, 0, (v) => {
        let s = 0;
        return v.map((a) => (s += a));
      }),
    diff: true,
  },
  // ---- shape and indexing
  shapeOp(
    "reshape",
    [3, 4],
    (x) => x.reshape([2, -1, 3]),
    (x) => ({ shape: [2, 2, 3], data: x.data }),
    true,
  ),
  shapeOp(
    "flatten",
    [2, 3, 4],
    (x) => x.flatten(1),
    (x) => ({ shape: [2, 12], data: x.data }),
  ),
  shapeOp(
    "squeeze",
    [3, 1, 4],
    (x) => x.squeeze(1),
    (x) => ({ shape: [3, 4], data: x.data }),
  ),
  shapeOp(
    "unsqueeze",
    [3, 4],
    (x) => x.unsqueeze(-1),
    (x) => ({ shape: [3, 4, 1], data: x.data }),
    true,
  ),
  shapeOp(
    "permute",
    [2, 3, 4],
    (x) => x.permute(2, 0, 1),
    gatherRef([4, 2, 3], ([a, b, c]) => [b, c, a]),
  ),
  shapeOp(
    "T",
    [3, 4],
    (x) => x.T,
    gatherRef([4, 3], ([a, b]) => [b, a]),
    true,
  ),
  shapeOp(
    "expand",
    [3, 1],
    (x) => x.expand(2, 3, 4),
    gatherRef([2, 3, 4], ([, b]) => [b, 0]),
  ),
  shapeOp(
    "index",
    [5, 6],
    (x) => x.index([1, null, 2], -2),
    gatherRef([2], ([a]) => [1 + 2 * a, 4]),
    true,
  ),
  shapeOp(
    "index-neg",
    [5, 6],
    (x) => x.index([-4, -1], [null, null, 3]),
    gatherRef([3, 2], ([a, b]) => [1 + a, 3 * b]),
  ),
  shapeOp(
    "index-newaxis",
    [5, 6],
    (x) => x.index(null, [1, null, 2], null, "...", null),
    gatherRef([1, 2, 1, 6, 1], ([, a, , b]) => [1 + 2 * a, b]),
    true,
  ),
  shapeOp(
    "index-newaxis-int",
    [4, 3],
    (x) => x.index(2, null),
    gatherRef([1, 3], ([, b]) => [2, b]),
  ),
  shapeOp(
    "narrow",
    [4, 5],
    (x) => x.narrow(1, 1, 3),
    gatherRef([4, 3], ([a, b]) => [a, b + 1]),
  ),
  shapeOp(
    "split",
    [7, 2],
    (x) => cr.cat(x.split(3).reverse()),
    gatherRef([7, 2], ([a, b]) => [a < 1 ? 6 : a < 4 ? a + 2 : a - 4, b]),
  ),
  shapeOp(
    "chunk",
    [2, 6],
    (x) => x.chunk(3, 1)[1],
    gatherRef([2, 2], ([a, b]) => [a, b + 2]),
  ),
  shapeOp(
    "flip",
    [3, 4],
    (x) => x.flip([0, 1]),
    gatherRef([3, 4], ([a, b]) => [2 - a, 3 - b]),
    true,
  ),
  shapeOp(
    "pad",
    [2, 3],
    (x) => x.pad([1, 2, 0, 1], 0.5),
    (x) => {
      const data: number[] = [];
      for (let a = 0; a < 3; a++)
        for (let b = 0; b < 6; b++) data.push(a < 2 && b >= 1 && b < 4 ? at(x, [a, b - 1]) : 0.5);
      return { shape: [3, 6], data };
    },
    true,
  ),
  shapeOp(
    "transpose",
    [2, 3, 4],
    (x) => cr.transpose(x, 0, 2),
    gatherRef([4, 3, 2], ([a, b, c]) => [c, b, a]),
    true,
  ),
  shapeOp(
    "broadcastTo",
    [3, 1],
    (x) => cr.broadcastTo(x, [2, 3, 5]),
    gatherRef([2, 3, 5], ([, b]) => [b, 0]),
  ),
  shapeOp(
    "view",
    [3, 4],
    (x) => x.view(4, 3),
    (x) => ({ shape: [4, 3], data: x.data }),
  ),
  shapeOp(
    "contiguous",
    [3, 4],
    (x) => x.contiguous(),
    (x) => x,
    true,
  ),
  shapeOp(
    "clone",
    [3, 4],
    (x) => x.clone(),
    (x) => x,
    true,
  ),
  {
    name: "cat",
    samples: () => [[mk([2, 3]), mk([2, 1], "real"), mk([2, 4], "real", true)]],
    fn: (a, b, c) => cr.cat([a, b, c], 1),
    ref: (a, b, c) => {
      const data: number[] = [];
      for (let i = 0; i < 2; i++)
        for (const t of [a, b, c]) for (let j = 0; j < t.shape[1]; j++) data.push(at(t, [i, j]));
      return { shape: [2, 8], data };
    },
    diff: true,
  },
  {
    name: "stack",
    samples: () => [[mk([2, 3]), mk([2, 3], "real", true)]],
    fn: (a, b) => cr.stack([a, b], 2),
    ref: (a, b) =>
      mapN((x) => x, {
        shape: [2, 3, 2],
        data: Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).data[Math.floor(i / 2)]),
      }),
    diff: true,
  },
  {
    name: "gather",
    samples: () => [[mk([3, 4], "real", true)]],
    fn: (x) =>
      x.gather(
        1,
        idx([
          [0, 3, 3],
          [2, 1, 0],
          [1, 1, 2],
        ]),
      ),
    ref: (x) =>
      gatherRef([3, 3], ([a, b]) => [
        a,
        [
          [0, 3, 3],
          [2, 1, 0],
          [1, 1, 2],
        ][a][b],
      ])(x),
    diff: true,
  },
  {
    name: "indexSelect",
    samples: () => [[mk([4, 3])]],
    fn: (x) => x.indexSelect(0, tensor([3, 0, 3, 1], { dtype: "int32" })),
    ref: (x) => gatherRef([4, 3], ([a, b]) => [[3, 0, 3, 1][a], b])(x),
    diff: true,
  },
  // ---- shape manipulations of issue 13 (compositions: tril/triu select, repeat/tile broadcast, roll concat)
  shapeOp(
    "tril",
    [2, 4, 5],
    (x) => x.tril(),
    (x) => mapN((v, i, j) => (j - i <= 0 ? v : 0), x, iotaNd([4, 1]), iotaNd([5])),
  ),
  shapeOp(
    "tril-diag1-nc",
    [5, 3],
    (x) => cr.tril(x, 1),
    (x) => mapN((v, i, j) => (j - i <= 1 ? v : 0), x, iotaNd([5, 1]), iotaNd([3])),
    true,
  ),
  shapeOp(
    "triu-diag-neg2",
    [3, 6, 4],
    (x) => x.triu(-2),
    (x) => mapN((v, i, j) => (j - i >= -2 ? v : 0), x, iotaNd([6, 1]), iotaNd([4])),
  ),
  shapeOp(
    "repeat",
    [2, 3],
    (x) => x.repeat(2, 1, 3),
    gatherRef([2, 2, 9], ([, b, c]) => [b, c % 3]),
    true,
  ),
  shapeOp(
    "tile",
    [3, 1, 2],
    (x) => x.tile(2, 3),
    gatherRef([3, 2, 6], ([a, b, c]) => [a, b % 1, c % 2]),
  ),
  shapeOp(
    "roll-dims",
    [3, 5],
    (x) => x.roll([1, -7], [0, 1]),
    gatherRef([3, 5], ([a, b]) => [(a + 2) % 3, (b + 7) % 5]),
    true,
  ),
  shapeOp(
    "roll-flat",
    [3, 4],
    (x) => cr.roll(x, 5),
    gatherRef([3, 4], ([a, b]) => {
      const k = (a * 4 + b + 12 - 5) % 12;
      return [Math.floor(k / 4), k % 4];
    }),
  ),
  {
    name: "meshgrid-ij",
    samples: () => [[mk([3]), mk([4]), mk([])]],
    fn: (a, b, c) => {
      const [p, q, r] = cr.meshgrid([a, b, c]);
      return p.mul(q.add(2)).add(r);
    },
    ref: (a, b, c) =>
      mapN(
        (p, q, r) => p * (q + 2) + r,
        { shape: [3, 1, 1], data: a.data },
        { shape: [4, 1], data: b.data },
        c,
      ),
    diff: true,
  },
  {
    name: "meshgrid-xy",
    samples: () => [[mk([3]), mk([4])]],
    fn: (a, b) => {
      const [p, q] = cr.meshgrid([a, b], { indexing: "xy" });
      return p.mul(3).sub(q);
    },
    ref: (a, b) => mapN((p, q) => 3 * p - q, a, { shape: [4, 1], data: b.data }),
    diff: true,
  },
  {
    name: "cumprod",
    samples: () => [[mk([4, 3], "awayFromZero", true)], [mk([5])], [mk([2, 3, 4])]],
    fn: (x) => x.cumprod(-1),
    ref: (x) =>
      alongAxis(x, x.shape.length - 1, (v) => {
        let p = 1;
        return v.map((a) => (p *= a));
      }),
    diff: true,
  },
  {
    name: "cumprod-with-zeros",
    samples: () => [[mk([5, 3])]],
    // zeros at fixed positions (one, two and none per column): the derivative is exact there, as torch's
    fn: (x) => x.mul(ZEROS_5x3.to(x.dtype)).cumprod(0),
    ref: (x) =>
      alongAxis(
        mapN((a, z) => a * z, x, { shape: [5, 3], data: (ZEROS_5x3.toArray() as number[][]).flat() }),
        0,
        (v) => {
          let p = 1;
          return v.map((a) => (p *= a));
        },
      ),
    diff: true,
  },
  // ---- sorting (values are a gather with the stable permutation; indices are constants)
  {
    name: "sort",
    samples: () => [[mk([4, 7], "real", true)], [mk([9])], [mk([2, 3, 5])], [mk([])]],
    fn: (x) => x.sort().values,
    ref: (x) => (x.shape.length === 0 ? x : sortNd(x, -1, false, x.shape[x.shape.length - 1], false)),
    diff: true,
  },
  {
    name: "sort-descending-dim0",
    samples: () => [[mk([5, 3], "real", true)], [mk([4, 2, 3])]],
    fn: (x) => cr.sort(x, 0, true)[0],
    ref: (x) => sortNd(x, 0, true, x.shape[0], false),
    diff: true,
  },
  {
    name: "sort-ties-indices",
    // rounding to halves makes ties; the indices as float64 (a constant output)
    samples: () => [[mk([3, 8], "real", true)], [mk([11])]],
    fn: (x) => x.mul(2).round().sort({ descending: true }).indices.to("float64"),
    ref: (x) =>
      sortNd(
        mapN((v) => roundHalfEven(2 * v), x),
        -1,
        true,
        x.shape[x.shape.length - 1],
        true,
      ),
    diff: false,
  },
  {
    name: "argsort-dim1",
    samples: () => [[mk([3, 6, 2])]],
    fn: (x) => x.mul(2).round().argsort(1).to("float64"),
    ref: (x) =>
      sortNd(
        mapN((v) => roundHalfEven(2 * v), x),
        1,
        false,
        6,
        true,
      ),
    diff: false,
  },
  {
    name: "topk",
    samples: () => [[mk([4, 7], "real", true)], [mk([3, 2, 5])]],
    fn: (x) => x.topk(3).values,
    ref: (x) => sortNd(x, -1, true, 3, false),
    diff: true,
  },
  {
    name: "topk-smallest-dim0",
    samples: () => [[mk([6, 3], "real", true)], [mk([5, 2, 2])]],
    fn: (x) => cr.topk(x, 2, { dim: 0, largest: false }).values,
    ref: (x) => sortNd(x, 0, false, 2, false),
    diff: true,
  },
  {
    name: "topk-indices",
    samples: () => [[mk([5, 6], "real", true)]],
    fn: (x) => x.mul(2).round().topk(4, 1).indices.to("float64"),
    ref: (x) =>
      sortNd(
        mapN((v) => roundHalfEven(2 * v), x),
        1,
        true,
        4,
        true,
      ),
    diff: false,
  },
  // ---- scatter and advanced indexing (index and mask tensors are constants)
  {
    name: "scatter",
    samples: () => [[mk([4, 5]), mk([3, 4], "real", true)]],
    fn: (x, src) =>
      x.scatter(
        1,
        idx([
          [0, 4, 2],
          [3, 1, 0],
        ]),
        src,
      ),
    ref: (x, src) => {
      const data = [...x.data];
      [
        [0, 4, 2],
        [3, 1, 0],
      ].forEach((row, i) => {
        row.forEach((c, j) => {
          data[i * 5 + c] = at(src, [i, j]);
        });
      });
      return { shape: [4, 5], data };
    },
    diff: true,
  },
  {
    name: "scatter-add",
    samples: () => [[mk([3, 4]), mk([5, 3])]],
    fn: (x, src) =>
      cr.scatter(x, 0, idx(SCATTER_IDX.map((r) => r.map((v) => v % 3))), src, { reduce: "add" }),
    ref: (x, src) =>
      mapN((a, b) => a + b, x, {
        shape: [3, 4],
        data: [
          ...scatterAddNd(
            src,
            SCATTER_IDX.flat().map((v) => v % 3),
            0,
            [3, 3],
          ).data.flatMap((v, i) => ((i + 1) % 3 === 0 ? [v, 0] : [v])),
        ],
      }),
    diff: true,
  },
  {
    name: "indexPut",
    samples: () => [
      [mk([4, 3, 2]), mk([3, 2])],
      [mk([4, 3, 2], "real"), mk([2])],
    ],
    fn: (x, v) =>
      x.indexPut([idx([[3], [0], [-2]] as number[][]).reshape(3), tensor([1, 0, 2], { dtype: "int32" })], v),
    ref: (x, v) => {
      const data = [...x.data];
      const vv = mapN((_a, b) => b, { shape: [3, 2], data: new Array(6).fill(0) }, v);
      [
        [3, 1],
        [0, 0],
        [2, 2],
      ].forEach(([a, b], r) => {
        for (let c = 0; c < 2; c++) data[a * 6 + b * 2 + c] = vv.data[r * 2 + c];
      });
      return { shape: [4, 3, 2], data };
    },
    diff: true,
  },
  {
    name: "indexPut-accumulate",
    samples: () => [[mk([5, 3]), mk([4, 3])]],
    fn: (x, v) => cr.indexPut(x, [tensor([1, 4, 1, 0], { dtype: "int32" })], v, { accumulate: true }),
    ref: (x, v) => {
      const data = [...x.data];
      [1, 4, 1, 0].forEach((a, r) => {
        for (let c = 0; c < 3; c++) data[a * 3 + c] += at(v, [r, c]);
      });
      return { shape: [5, 3], data };
    },
    diff: true,
  },
  {
    name: "maskedSelect",
    samples: () => [[mk([3, 4], "real", true)]],
    fn: (x) => x.maskedSelect(MASK_4),
    ref: (x) => ({ shape: [6], data: [0, 1, 2].flatMap((i) => [1, 3].map((j) => at(x, [i, j]))) }),
    diff: true,
  },
  {
    name: "index-bool-mask-ellipsis",
    samples: () => [[mk([2, 3, 4])]],
    fn: (x) => x.index("...", MASK_4),
    ref: (x) => ({
      shape: [2, 3, 2],
      data: [0, 1].flatMap((a) => [0, 1, 2].flatMap((b) => [1, 3].map((c) => at(x, [a, b, c])))),
    }),
    diff: true,
  },
  {
    name: "index-int-tensor",
    samples: () => [[mk([4, 5], "real", true)]],
    fn: (x) =>
      x
        .index(
          1,
          tensor(
            [
              [4, -1],
              [0, 2],
            ],
            { dtype: "int32" },
          ),
        )
        .reshape(4),
    ref: (x) => ({ shape: [4], data: [4, 4, 0, 2].map((c) => at(x, [1, c])) }),
    diff: true,
  },
  // ---- linear algebra
  {
    name: "matmul",
    samples: () => [
      [mk([3, 4]), mk([4, 5], "real", true)],
      [mk([2, 1, 3, 4], "real", true), mk([5, 4, 2])],
      [mk([4]), mk([4, 3])],
      [mk([2, 3, 4]), mk([4])],
      [mk([1, 1]), mk([1, 1])],
    ],
    fn: (a, b) => a.matmul(b),
    ref: matmulNd,
    diff: true,
  },
  {
    name: "dot",
    samples: () => [[mk([6]), mk([6])]],
    fn: (a, b) => a.dot(b),
    ref: (a, b) => ({ shape: [], data: [sumArr(a.data.map((v, i) => v * b.data[i]))] }),
    diff: true,
  },
  {
    name: "outer",
    samples: () => [[mk([3]), mk([4])]],
    fn: (a, b) => a.outer(b),
    ref: (a, b) => mapN((x, y) => x * y, { shape: [3, 1], data: a.data }, b),
    diff: true,
  },
  {
    name: "einsum-bij,bjk",
    samples: () => [[mk([2, 3, 4]), mk([2, 4, 5], "real", true)]],
    fn: (a, b) => cr.einsum("bij,bjk->bik", a, b),
    ref: matmulNd,
    diff: true,
  },
  {
    name: "einsum-ij,kj->ik-sum",
    samples: () => [[mk([3, 4]), mk([2, 4])]],
    fn: (a, b) => cr.einsum("ij,kj->ki", a, b),
    ref: (a, b) => {
      const r = matmulNd(a, { shape: [4, 2], data: gatherRef([4, 2], ([p, q]) => [q, p])(b).data });
      return gatherRef([2, 3], ([p, q]) => [q, p])(r);
    },
    diff: true,
  },
  {
    name: "einsum-trace-sum",
    samples: () => [[mk([3, 4])]],
    fn: (a) => cr.einsum("ij->j", a),
    ref: (a) => reduceNd(a, [0], false, sumArr),
    diff: true,
  },
  // ---- cr.linalg (float64 references in test/ref.ts: Gaussian elimination, Cholesky-Banachiewicz, modified
  // Gram-Schmidt, the trigonometric 3 x 3 eigenvalue formula). Inputs are made well-conditioned (a + 3I), symmetric
  // (a + a^T) or positive-definite (a a^T + I) where the op needs it; decompositions whose factors are defined only
  // up to signs enter through gauge-invariant wrappers (R's diagonal made positive, V diag(w^3) V^T, U diag(S^3) Vh).
  {
    name: "linalg.solve",
    samples: () => [
      [mk([3, 3]), mk([3, 2])],
      [mk([2, 4, 4], "real", true), mk([4])],
      [mk([2, 1, 3, 3]), mk([4, 3, 1], "real", true)],
      [mk([1, 1]), mk([1, 1])],
    ],
    fn: (a, b) => cr.linalg.solve(well(a), b),
    ref: (a, b) => {
      const vec = b.shape.length === 1;
      const bm = vec ? { shape: [b.shape[0], 1], data: b.data } : b;
      const batch = broadcastBatch(a.shape.slice(0, -2), bm.shape.slice(0, -2));
      const as = matricesOf(expandNd(a, [...batch, ...a.shape.slice(-2)]));
      const bs = matricesOf(expandNd(bm, [...batch, ...bm.shape.slice(-2)]));
      const r = fromMatrices(
        batch,
        as.map((m, i) => gaussSolve(shiftM(m, 3), bs[i])),
      );
      return vec ? { shape: r.shape.slice(0, -1), data: r.data } : r;
    },
    diff: true,
  },
  {
    name: "linalg.solve-left-false",
    samples: () => [[mk([3, 3], "real", true), mk([2, 3])]],
    fn: (a, b) => cr.linalg.solve(well(a), b, { left: false }),
    ref: (a, b) => {
      const [m] = matricesOf(a);
      const [r] = matricesOf(b);
      return fromMatrices([], [transposeM(gaussSolve(transposeM(shiftM(m, 3)), transposeM(r)))]);
    },
    diff: true,
  },
  {
    name: "linalg.inv",
    samples: () => [[mk([4, 4])], [mk([2, 3, 3], "real", true)], [mk([1, 1])]],
    fn: (a) => cr.linalg.inv(well(a)),
    ref: (a) =>
      fromMatrices(
        a.shape.slice(0, -2),
        matricesOf(a).map((m) =>
          gaussSolve(
            shiftM(m, 3),
            shiftM(m, 3).map((r, i) => r.map((_, j) => (i === j ? 1 : 0))),
          ),
        ),
      ),
    diff: true,
  },
  {
    name: "linalg.det",
    samples: () => [[mk([3, 3])], [mk([2, 4, 4], "real", true)], [mk([1, 1])]],
    fn: (a) => cr.linalg.det(a),
    ref: (a) => fromMatrices(a.shape.slice(0, -2), matricesOf(a).map(detRef)),
    diff: true,
  },
  {
    name: "linalg.slogdet-logabsdet",
    samples: () => [[mk([3, 3])], [mk([2, 4, 4], "real", true)]],
    fn: (a) => cr.linalg.slogdet(a).logabsdet,
    ref: (a) =>
      fromMatrices(
        a.shape.slice(0, -2),
        matricesOf(a).map((m) => Math.log(Math.abs(detRef(m)))),
      ),
    diff: true,
  },
  ...[false, true].map(
    (upper): OpInfo => ({
      name: `linalg.cholesky${upper ? "-upper" : ""}`,
      samples: () => [[mk([3, 3])], [mk([2, 4, 4], "real", true)], [mk([1, 1])]],
      fn: (a) => cr.linalg.cholesky(spd(a), { upper }),
      ref: (a) =>
        fromMatrices(
          a.shape.slice(0, -2),
          matricesOf(a).map((m) => {
            const l = choleskyRef(shiftM(mulM(m, transposeM(m)), 1));
            return upper ? transposeM(l) : l;
          }),
        ),
      diff: true,
    }),
  ),
  ...(["Q", "R"] as const).map(
    (part): OpInfo => ({
      name: `linalg.qr-${part}-positive-diagonal`,
      samples: () => [[mk([4, 3])], [mk([3, 5])], [mk([2, 4, 3], "real", true)], [mk([3, 3])]],
      fn: (a) => {
        const { Q, R } = cr.linalg.qr(a);
        const k = R.shape[R.ndim - 2];
        const s = R.narrow(-1, 0, k)
          .mul(cr.eye(k, k, { dtype: a.dtype }))
          .sum(-1)
          .sign();
        return part === "Q" ? Q.mul(s.unsqueeze(-2)) : R.mul(s.unsqueeze(-1));
      },
      ref: (a) =>
        fromMatrices(
          a.shape.slice(0, -2),
          matricesOf(a).map((m) => mgsQR(m)[part]),
        ),
      diff: true,
    }),
  ),
  ...(["L", "U"] as const).map(
    (uplo): OpInfo => ({
      name: `linalg.eigvalsh-${uplo}`,
      samples: () => [[mk([3, 3])], [mk([2, 3, 3], "real", true)]],
      fn: (a) => cr.linalg.eigvalsh(a.add(a.mT), uplo),
      ref: (a) =>
        fromMatrices(
          a.shape.slice(0, -2),
          matricesOf(a).map((m) => symEig3(m.map((r, i) => r.map((v, j) => v + m[j][i])))),
        ),
      diff: true,
    }),
  ),
  {
    name: "linalg.eigh-V-diag(w^3)-Vt",
    samples: () => [[mk([4, 4])], [mk([2, 3, 3], "real", true)]],
    fn: (a) => {
      const { eigenvalues: w, eigenvectors: v } = cr.linalg.eigh(a.add(a.mT));
      return v.mul(w.pow(3).unsqueeze(-2)).matmul(v.mT);
    },
    ref: (a) => {
      const s = mapN((x, y) => x + y, a, transposeNd(a));
      return matmulNd(matmulNd(s, s), s);
    },
    diff: true,
  },
  {
    name: "linalg.svdvals",
    samples: () => [[mk([5, 3])], [mk([2, 3, 4], "real", true)], [mk([3, 3])]],
    fn: (a) => cr.linalg.svdvals(a),
    ref: (a) =>
      fromMatrices(
        a.shape.slice(0, -2),
        matricesOf(a).map((m) => {
          const g = m.length >= m[0].length ? mulM(transposeM(m), m) : mulM(m, transposeM(m));
          return symEig3(g).reverse().map(Math.sqrt);
        }),
      ),
    diff: true,
  },
  ...[false, true].map(
    (full): OpInfo => ({
      name: `linalg.svd-U-diag(S^3)-Vh${full ? "-full-square" : ""}`,
      samples: () =>
        full
          ? [[mk([3, 3])], [mk([2, 4, 4], "real", true)]]
          : [[mk([4, 3])], [mk([3, 5])], [mk([2, 3, 3], "real", true)]],
      fn: (a) => {
        const { U, S, Vh } = cr.linalg.svd(a, { fullMatrices: full });
        return U.mul(S.pow(3).unsqueeze(-2)).matmul(Vh);
      },
      ref: (a) => matmulNd(matmulNd(a, transposeNd(a)), a),
      diff: true,
    }),
  ),
  // ---- convolution and pooling
  ...(
    [
      [[2, 3, 7, 6], [4, 3, 3, 3], 1, 1, 1, 1],
      [[1, 4, 8, 7], [6, 2, 3, 2], 2, 2, 1, 2],
      [[1, 2, 9, 9], [3, 2, 2, 3], 1, 0, 2, 1],
    ] as [number[], number[], number, number, number, number][]
  ).map(
    ([xs, ws, stride, padding, dilation, groups], k): OpInfo => ({
      name: `conv2d#${k}`,
      samples: () => [[mk(xs), mk(ws)]],
      fn: (x, w) => cr.conv2d(x, w, null, { stride, padding, dilation, groups }),
      ref: (x, w) => conv2dNd(x, w, stride, padding, dilation, groups),
      diff: true,
    }),
  ),
  {
    name: "conv2d-bias",
    samples: () => [[mk([1, 2, 5, 5]), mk([3, 2, 3, 3]), mk([3])]],
    fn: (x, w, b) => cr.conv2d(x, w, b),
    ref: (x, w, b) => mapN((v, c) => v + c, conv2dNd(x, w, 1, 0, 1, 1), { shape: [3, 1, 1], data: b.data }),
    diff: true,
  },
  // ---- conv1d (conv2d over [N, C, 1, L]) and the transposed convolutions (conv2dBackInput), issue 13
  ...(
    [
      [[2, 4, 9], [6, 2, 3], 2, 1, 2, 2],
      [[1, 3, 5], [2, 3, 2], 1, 0, 1, 1],
    ] as [number[], number[], number, number, number, number][]
  ).map(
    ([xs, ws, stride, padding, dilation, groups], k): OpInfo => ({
      name: `conv1d#${k}`,
      samples: () => [[mk(xs, "real", k === 1), mk(ws)]],
      fn: (x, w) => cr.conv1d(x, w, null, { stride, padding, dilation, groups }),
      ref: (x, w) => conv1dNd(x, w, stride, padding, dilation, groups),
      diff: true,
    }),
  ),
  {
    name: "conv1d-same-bias",
    samples: () => [[mk([2, 3, 7]), mk([4, 3, 4]), mk([4])]],
    fn: (x, w, b) => cr.conv1d(x, w, b, { padding: "same" }),
    // total padding 3: one before, two after
    ref: (x, w, b) =>
      mapN(
        (v, c) => v + c,
        conv1dNd(
          {
            shape: [2, 3, 8],
            data: gatherRef([2, 3, 8], ([p, q, r]) => [p, q, Math.min(r, 6)])(x).data.map((v, i) =>
              i % 8 === 7 ? 0 : v,
            ),
          },
          w,
          1,
          1,
          1,
          1,
        ),
        { shape: [4, 1], data: b.data },
      ),
    diff: true,
  },
  ...(
    [
      [[2, 3, 4, 3], [3, 2, 3, 2], [2, 3], [1, 0], [1, 2], [1, 1], 1],
      [[1, 4, 3, 4], [4, 1, 2, 3], [2, 2], [1, 1], [0, 0], [2, 1], 2],
      [[1, 2, 3, 3], [2, 2, 2, 2], [1, 1], [0, 2], [1, 1], [2, 2], 1],
    ] as [number[], number[], Pair2, Pair2, Pair2, Pair2, number][]
  ).map(
    ([xs, ws, stride, padding, outputPadding, dilation, groups], k): OpInfo => ({
      name: `convTranspose2d#${k}`,
      samples: () => [[mk(xs, "real", k === 0), mk(ws)]],
      fn: (x, w) => cr.convTranspose2d(x, w, null, { stride, padding, outputPadding, dilation, groups }),
      ref: (x, w) =>
        convTranspose2dNd(
          x,
          w,
          stride as [number, number],
          padding as [number, number],
          outputPadding as [number, number],
          dilation as [number, number],
          groups,
        ),
      diff: true,
    }),
  ),
  {
    name: "convTranspose1d-bias",
    samples: () => [[mk([2, 3, 4]), mk([3, 2, 4]), mk([2])]],
    fn: (x, w, b) => cr.convTranspose1d(x, w, b, { stride: 3, padding: 2, outputPadding: 1 }),
    ref: (x, w, b) => {
      const y = convTranspose2dNd(
        { shape: [2, 3, 1, 4], data: x.data },
        { shape: [3, 2, 1, 4], data: w.data },
        [1, 3],
        [0, 2],
        [0, 1],
        [1, 1],
        1,
      );
      return mapN((v, c) => v + c, { shape: [2, 2, 10], data: y.data }, { shape: [2, 1], data: b.data });
    },
    diff: true,
  },
  // ---- interpolate (separable gathers with constant weights), issue 13
  ...(
    [
      [[2, 3, 4, 3], [5, 7], "nearest", undefined, "nearest"],
      [[1, 2, 5], [3], "linear", undefined, "linear"],
      [[2, 2, 3, 4], [5, 3], "bilinear", undefined, "linear"],
      [[1, 2, 3, 4], [4, 7], "bilinear", true, "linear"],
      [[1, 1, 3, 4], [5, 6], "bicubic", undefined, "cubic"],
      [[1, 1, 4, 3], [6, 2], "bicubic", true, "cubic"],
      [[1, 1, 2, 3, 2], [3, 2, 4], "trilinear", undefined, "linear"],
    ] as [number[], number[], cr.InterpolateMode, boolean | undefined, "nearest" | "linear" | "cubic"][]
  ).map(
    ([xs, size, mode, alignCorners, kind], k): OpInfo => ({
      name: `interpolate-${mode}#${k}`,
      samples: () => [[mk(xs, "real", k === 2)]],
      fn: (x) => cr.interpolate(x, { size, mode, alignCorners }),
      ref: (x) => interpolateNd(x, size, kind, alignCorners),
      diff: true,
    }),
  ),
  // ---- fused bias + activation (bias draws below 0.1 in magnitude keep relu's inputs off its kink)
  {
    name: "biasActivation-relu",
    samples: () => [
      [mk([3, 4], "awayFromZero"), mk([4], "small").mul(0.2)],
      [mk([5, 3], "awayFromZero", true), mk([3], "small").mul(0.2)],
    ],
    fn: (x, b) => cr.nn.biasActivation(x, b, "relu"),
    ref: (x, b) => mapN((v, c) => Math.max(v + c, 0), x, b),
    diff: true,
  },
  {
    name: "biasActivation-tanh-dim1",
    samples: () => [[mk([2, 3, 5]), mk([3])]],
    fn: (x, b) => cr.nn.biasActivation(x, b, "tanh", 1),
    ref: (x, b) => mapN((v, c) => Math.tanh(v + c), x, { shape: [3, 1], data: b.data }),
    diff: true,
  },
  {
    name: "biasActivation-sigmoid-nobias",
    samples: () => [[mk([4, 3], "real", true)], [mk([])]],
    fn: (x) => cr.nn.biasActivation(x, null, "sigmoid"),
    ref: (x) => mapN(sigmoid, x),
    diff: true,
  },
  {
    name: "linear-sigmoid",
    samples: () => [[mk([3, 4]), mk([2, 4]), mk([2])]],
    fn: (x, w, b) => cr.nn.linear(x, w, b, { activation: "sigmoid" }),
    ref: (x, w, b) => {
      const wt = gatherRef([4, 2], ([p, q]) => [q, p])(w);
      return mapN((v, c) => sigmoid(v + c), matmulNd(x, wt), b);
    },
    diff: true,
  },
  {
    name: "conv2d-bias-tanh",
    samples: () => [[mk([2, 2, 5, 5]), mk([3, 2, 3, 3]), mk([3])]],
    fn: (x, w, b) => cr.conv2d(x, w, b, { padding: 1, activation: "tanh" }),
    ref: (x, w, b) =>
      mapN((v, c) => Math.tanh(v + c), conv2dNd(x, w, 1, 1, 1, 1), { shape: [3, 1, 1], data: b.data }),
    diff: true,
  },
  ...POOLS.map(
    ([xs, k, st, pad, nc], i): OpInfo => ({
      name: `maxPool2d#${i}`,
      samples: () => [[mk(xs, "real", nc)]],
      fn: (x) => cr.maxPool2d(x, k, { stride: st, padding: pad }),
      ref: (x) => poolNd(x, k, st, pad, "max"),
      diff: true,
    }),
  ),
  // The VJP of maxPool2d at x (a primitive linear in dy; x only selects positions): checked as an op in its own
  // right, so its JVP, transpose and second derivatives are tested too. Ties and NaN windows are covered by the
  // entries with a fixed x below (maxPool2d itself cannot be differentiated at a tie: central differences see
  // the kink).
  ...POOLS.map(([xs, k, st, pad, nc], i): OpInfo => {
    const p = poolParams(xs, k, st, pad);
    return {
      name: `maxPool2dBackward#${i}`,
      samples: () => [[mk(xs, "real", nc), mk(p.outShape, "real", nc)]],
      fn: (x, dy) => lax.maxPool2dBackward(x, dy, p),
      ref: (x, dy) => maxPoolBackNd(x, dy, k, st, pad),
      diff: true,
    };
  }),
  ...(
    [
      [3, 2, 1], // overlapping: several windows share a tied maximum and accumulate
      [2, 2, 0], // tiled
    ] as const
  ).map(([k, st, pad], i): OpInfo => {
    // x is fixed (a tie or NaN is a kink in x), so only dy is differentiated
    const p = poolParams(TIES_SHAPE, k, st, pad);
    const x = { shape: TIES_SHAPE, data: TIES };
    return {
      name: `maxPool2dBackward-ties-nan#${i}`,
      samples: () => [[mk(p.outShape)]],
      fn: (dy) =>
        lax.maxPool2dBackward(
          tensor(Float64Array.from(TIES), { dtype: "float64", shape: TIES_SHAPE }).to(dy.dtype),
          dy,
          p,
        ),
      ref: (dy) => maxPoolBackNd(x, dy, k, st, pad),
      diff: true,
    };
  }),
  {
    name: "avgPool2d",
    samples: () => [[mk([2, 2, 5, 6], "real", true)]],
    fn: (x) => cr.avgPool2d(x, 2),
    ref: (x) => poolNd(x, 2, 2, 0, "avg"),
    diff: true,
  },
  // avgPool2d's VJP primitive as an op of its own (avgPool2d is linear, so its second-order check never
  // differentiates the VJP): overlapping windows with padding
  (() => {
    const p = { ...poolParams([2, 2, 5, 6], 3, 2, 1), inShape: [2, 2, 5, 6] };
    return {
      name: "avgPool2dBackward",
      samples: () => [[mk(p.outShape, "real", true)]],
      fn: (dy: Tensor) => lax.avgPool2dBackward(dy, p),
      ref: (dy: Nd) => avgPoolBackNd(dy, p.inShape, 3, 2, 1),
      diff: true,
    };
  })(),
  // gather's transpose as an op of its own, with repeated indices accumulating (gather's second-order check
  // never differentiates it: gather is linear)
  {
    name: "scatterAdd",
    samples: () => [[mk([5, 3])]],
    fn: (src) => lax.scatterAdd(src, idx(SCATTER_IDX), 0, [4, 3]),
    ref: (src) => scatterAddNd(src, SCATTER_IDX.flat(), 0, [4, 3]),
    diff: true,
  },
  // Fused attention (the sdpa primitive; its VJP sdpaBackward is reached by the second-order checks): batch
  // broadcasting, L != S, E != Ev, odd sizes, strided views, causal, float masks (differentiable) and bool masks.
  {
    name: "scaledDotProductAttention",
    samples: () => [
      [mk([2, 5, 3]), mk([2, 7, 3]), mk([2, 7, 4])],
      [mk([2, 3, 4, 3], "real", true), mk([3, 7, 3]), mk([1, 7, 2], "real", true)],
      [mk([1, 1]), mk([1, 1]), mk([1, 1])],
    ],
    fn: (q, k, v) => cr.nn.scaledDotProductAttention(q, k, v),
    ref: (q, k, v) => attentionNd(q, k, v, null, false, 1 / Math.sqrt(q.shape[q.shape.length - 1])),
    diff: true,
  },
  {
    name: "scaledDotProductAttention causal, scale",
    samples: () => [
      [mk([2, 6, 3]), mk([2, 4, 3], "real", true), mk([2, 4, 5])],
      [mk([3, 5]), mk([7, 5]), mk([7, 2])],
    ],
    fn: (q, k, v) => cr.nn.scaledDotProductAttention(q, k, v, { isCausal: true, scale: 0.6 }),
    ref: (q, k, v) => attentionNd(q, k, v, null, true, 0.6),
    diff: true,
  },
  {
    name: "scaledDotProductAttention float mask",
    samples: () => [
      [mk([2, 4, 3]), mk([2, 5, 3]), mk([2, 5, 2]), mk([4, 5])],
      [mk([2, 3, 2]), mk([2, 6, 2]), mk([2, 6, 3], "real", true), mk([2, 1, 6])],
    ],
    fn: (q, k, v, m) => cr.nn.scaledDotProductAttention(q, k, v, { attnMask: m }),
    ref: (q, k, v, m) => attentionNd(q, k, v, m, false, 1 / Math.sqrt(q.shape[q.shape.length - 1])),
    diff: true,
  },
  {
    name: "scaledDotProductAttention bool mask",
    samples: () => [[mk([2, 4, 3]), mk([2, 5, 3], "real", true), mk([2, 5, 2])]],
    fn: (q, k, v) => cr.nn.scaledDotProductAttention(q, k, v, { attnMask: tensor(ATTN_KEEP).gt(0) }),
    ref: (q, k, v) =>
      attentionNd(q, k, v, { shape: [4, 5], data: ATTN_KEEP.flat() }, false, 1 / Math.sqrt(3), {
        boolMask: true,
      }),
    diff: true,
  },
  {
    name: "sdpa with its logsumexp column",
    samples: () => [
      [mk([2, 3, 4]), mk([2, 5, 4], "real", true), mk([2, 5, 2]), mk([2, 3, 5])],
      [mk([1, 7, 2]), mk([1, 6, 2]), mk([1, 6, 3]), mk([1, 7, 6], "real", true)],
    ],
    fn: (q, k, v, m) => sdpa(q, k, v, m, { scale: 0.8, causal: true }),
    ref: (q, k, v, m) => attentionNd(q, k, v, m, true, 0.8, { lse: true }),
    diff: true,
  },
  // Fused recurrent cells (their VJPs lstmCellBackward / gruCellBackward are reached by the second-order checks).
  {
    name: "lstmCell (fused LSTM step, [h', c'])",
    samples: () => [
      [mk([3, 8]), mk([3, 2])],
      [mk([2, 3, 12], "real", true), mk([2, 3, 3])],
      [mk([4]), mk([1])],
    ],
    fn: (g, c) => lstmCell(g, c),
    ref: (g, c) => lstmCellNd(g, c),
    diff: true,
  },
  {
    name: "gruCell (fused GRU step)",
    samples: () => [
      [mk([3, 6]), mk([3, 6]), mk([3, 2])],
      [mk([2, 9], "real", true), mk([2, 9]), mk([2, 3], "real", true)],
      [mk([3]), mk([3]), mk([1])],
    ],
    fn: (x, hp, h) => gruCell(x, hp, h),
    ref: (x, hp, h) => gruCellNd(x, hp, h),
    diff: true,
  },
];
