/**
 * The webgpu test's page (bundled by esbuild, run in Chromium with a WebGPU adapter by webgpu.test.ts).
 *
 * 1. Without an adapter it reports `{ skip: reason }` and stops.
 * 2. `await init({ backend: "webgpu" })`, then every WGSL kernel is called directly on random strided views
 *    (transposed, flipped, stepped, offset, broadcast), odd sizes and empty shapes, in float32 / int32 / bool,
 *    and compared with the js reference kernel on the same values. Inputs alternate between device arrays
 *    filled on the host (uploaded on first use) and ordinary typed arrays (uploaded per call).
 * 3. The sync-read error, `await t.data()` and the memory figure.
 * 4. The MLP scenario (webgpu-scenario.ts) on webgpu; the Node side compares it with js.
 */
import type {
  Activation,
  BinaryOp,
  Conv2dParams,
  Pool2dParams,
  ReduceOp,
  UnaryOp,
  View,
} from "../../src/backend/backend.ts";
import { syncToHost } from "../../src/backend/device.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { gpuStorage } from "../../src/backend/webgpu/gpu.ts";
import { setWebgpuHostFirst, webgpuInfo, webgpuMemory } from "../../src/backend/webgpu/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import * as cr from "../../src/index.ts";
import { OPS } from "../opinfo.ts";
import { type Nd, nd } from "../ref.ts";
import type { WebgpuReport } from "./webgpu-report.ts";
import { cnnStepsAsync, mlpStepsAsync } from "./webgpu-scenario.ts";
import { deviceErrorChecks } from "./webgpu-errors-checks.ts";
import { linalgKernelChecks } from "./webgpu-linalg-checks.ts";
import { wgslKernelChecks } from "./webgpu-wgsl-checks.ts";

/** mulberry32: a small seeded generator (values reproducible run to run). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rng = prng(20261206);
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

const SHAPES: readonly (readonly number[])[] = [
  [],
  [0],
  [3, 0],
  [1],
  [7],
  [17],
  [257],
  [3, 5],
  [4, 1, 9],
  [2, 3, 4, 5],
  [2, 17, 3],
  [33, 65],
];

type Gen = (r: () => number) => number;
const GENS: Record<string, Gen> = {
  any: (r) => (r() - 0.5) * 6,
  unit: (r) => (r() - 0.5) * 1.98, // (-0.99, 0.99): asin, acos, atanh
  pos: (r) => 0.05 + r() * 4, // log, sqrt, pow bases
  big: (r) => 1.01 + r() * 4, // acosh
  int: (r) => Math.floor((r() - 0.5) * 40),
  small: (r) => Math.floor(r() * 5), // int powers
  bool: (r) => (r() < 0.5 ? 1 : 0),
};

/** A pair of views with the same values: one for js (an ordinary array), one for webgpu (device or ordinary). */
interface Pair {
  js: View;
  gpu: View;
}

let flip = 0;
/**
 * A random strided view of `shape`: axes permuted, some stepped by 2, some flipped (negative stride), an
 * offset, and with `broadcast` some axes of stride 0.
 */
function randView(shape: readonly number[], dtype: DType, gen: Gen, broadcast = false): Pair {
  const r = shape.length;
  const order = shape.map((_, i) => i).sort(() => rng() - 0.5);
  const step = shape.map(() => (rng() < 0.3 ? 2 : 1));
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let k = r - 1; k >= 0; k--) {
    const d = order[k];
    strides[d] = s * step[d];
    s *= Math.max(1, shape[d] * step[d]);
  }
  let offset = rng() < 0.5 ? 3 : 0;
  const total = s + offset;
  for (let d = 0; d < r; d++) {
    if (rng() < 0.3 && shape[d] > 1) {
      offset += (shape[d] - 1) * strides[d];
      strides[d] = -strides[d];
    }
    if (broadcast && rng() < 0.2) strides[d] = 0;
  }
  const host = allocTyped(dtype, total);
  for (let i = 0; i < total; i++) host[i] = gen(rng);
  let dev: TypedArray = host;
  // every other float32 input, and every int32 / bool one, is a device array already uploaded (the others are
  // ordinary arrays, uploaded as temporaries); the checks run with hostFirst off (runWebgpuChecks)
  if (flip++ % 2 === 0 || dtype !== "float32") {
    dev = cr.getBackend().alloc(dtype, total);
    for (let i = 0; i < total; i++) dev[i] = host[i];
    if (dtype !== "float32") gpuStorage(dev)?.deviceBuffer();
  }
  return { js: { data: host, shape, strides, offset }, gpu: { data: dev, shape, strides, offset } };
}

interface Tol {
  rtol: number;
  atol: number;
}
const F32: Tol = { rtol: 2e-5, atol: 2e-5 };
const EXACT: Tol = { rtol: 0, atol: 0 };

const failures: string[] = [];
let checked = 0;

/** Run `call` on js and webgpu into fresh outputs of `outShape` and compare the values. */
async function check(
  label: string,
  outType: DType,
  outShape: readonly number[],
  tol: Tol,
  call: (b: cr.Backend, side: "js" | "gpu", out: TypedArray) => void,
): Promise<void> {
  checked++;
  const n = size(outShape);
  const want = allocTyped(outType, n);
  const got = cr.getBackend().alloc(outType, n, true);
  try {
    call(J, "js", want);
    call(cr.getBackend(), "gpu", got);
    await syncToHost(got);
  } catch (e) {
    failures.push(`${label}: threw ${e instanceof Error ? e.message : e}`);
    return;
  }
  for (let i = 0; i < n; i++) {
    const a = got[i];
    const b = want[i];
    if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
    if (!(Math.abs(a - b) <= tol.atol + tol.rtol * Math.abs(b))) {
      failures.push(`${label}: element ${i} of ${n}: got ${a}, expected ${b}`);
      return;
    }
  }
}

const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length];

const UNARY: [UnaryOp, string][] = [
  ["neg", "any"],
  ["abs", "any"],
  ["sign", "any"],
  ["exp", "any"],
  ["log", "pos"],
  ["log1p", "pos"],
  ["expm1", "any"],
  ["sqrt", "pos"],
  ["sin", "any"],
  ["cos", "any"],
  ["tan", "unit"],
  ["tanh", "any"],
  ["sigmoid", "any"],
  ["erf", "any"],
  ["relu", "any"],
  ["floor", "any"],
  ["ceil", "any"],
  ["round", "any"],
  ["asin", "unit"],
  ["acos", "unit"],
  ["atan", "any"],
  ["sinh", "any"],
  ["cosh", "any"],
  ["asinh", "any"],
  ["acosh", "big"],
  ["atanh", "unit"],
  ["log2", "pos"],
  ["log10", "pos"],
];
const BINARY_F: [BinaryOp, string, string][] = [
  ["add", "any", "any"],
  ["sub", "any", "any"],
  ["mul", "any", "any"],
  ["div", "any", "pos"],
  ["pow", "pos", "any"],
  ["maximum", "any", "any"],
  ["minimum", "any", "any"],
  ["eq", "small", "small"],
  ["ne", "small", "small"],
  ["lt", "any", "any"],
  ["le", "small", "small"],
  ["gt", "any", "any"],
  ["ge", "small", "small"],
  ["atan2", "any", "any"],
];
const BINARY_I: [BinaryOp, string, string][] = [
  ["add", "int", "int"],
  ["sub", "int", "int"],
  ["mul", "int", "int"],
  ["div", "int", "int"],
  ["pow", "int", "small"],
  ["maximum", "int", "int"],
  ["minimum", "int", "int"],
  ["eq", "small", "small"],
  ["lt", "int", "int"],
  ["ge", "small", "small"],
];

async function kernelChecks(): Promise<void> {
  let i = 0;
  for (const [op, gen] of UNARY) {
    for (const shape of [pick(SHAPES, i), pick(SHAPES, i + 5), [33, 65]]) {
      const x = randView(shape, "float32", GENS[gen], true);
      await check(`unary ${op} float32 [${shape}]`, "float32", shape, F32, (b, s, o) => b.unary(op, x[s], o));
      i++;
    }
  }
  for (const op of ["neg", "abs", "sign"] as const) {
    for (const shape of SHAPES) {
      const x = randView(shape, "int32", GENS.int, true);
      await check(`unary ${op} int32 [${shape}]`, "int32", shape, EXACT, (b, s, o) => b.unary(op, x[s], o));
    }
  }
  for (const shape of SHAPES) {
    const x = randView(shape, "bool", GENS.bool, true);
    await check(`unary not bool [${shape}]`, "bool", shape, EXACT, (b, s, o) => b.unary("not", x[s], o));
  }
  const binary = async (op: BinaryOp, dtype: DType, ga: string, gb: string, shape: readonly number[]) => {
    const a = randView(shape, dtype, GENS[ga], true);
    const c = randView(shape, dtype, GENS[gb], true);
    const cmp = ["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "xor"].includes(op);
    const tol = dtype === "float32" && !cmp ? F32 : EXACT;
    await check(`binary ${op} ${dtype} [${shape}]`, cmp ? "bool" : dtype, shape, tol, (b, s, o) =>
      b.binary(op, a[s], c[s], o),
    );
  };
  i = 0;
  for (const [op, ga, gb] of BINARY_F) {
    for (const k of [0, 4, 9]) await binary(op, "float32", ga, gb, pick(SHAPES, i + k));
    i++;
  }
  for (const [op, ga, gb] of BINARY_I) {
    for (const k of [0, 4, 9]) await binary(op, "int32", ga, gb, pick(SHAPES, i + k));
    i++;
  }
  for (const op of ["and", "or", "xor", "eq"] as const) {
    for (const k of [0, 6, 10]) await binary(op, "bool", "bool", "bool", pick(SHAPES, i + k));
    i++;
  }
  // fused bias + activation, activation gradient
  for (const act of ["relu", "tanh", "sigmoid"] as Activation[]) {
    for (const shape of [[7], [3, 5], [2, 17, 3], [0]]) {
      const x = randView(shape, "float32", GENS.any);
      const bias = randView(shape, "float32", GENS.any, true);
      await check(`biasAct ${act} [${shape}]`, "float32", shape, F32, (b, s, o) =>
        b.biasAct(act, x[s], bias[s], o),
      );
      await check(`biasAct ${act} no bias [${shape}]`, "float32", shape, F32, (b, s, o) =>
        b.biasAct(act, x[s], null, o),
      );
      const y = randView(shape, "float32", (r) => r());
      const ct = randView(shape, "float32", GENS.any, true);
      await check(`actGrad ${act} [${shape}]`, "float32", shape, F32, (b, s, o) =>
        b.actGrad(act, y[s], ct[s], o),
      );
    }
  }
  // where, cast, copy
  for (const dtype of ["float32", "int32", "bool"] as DType[]) {
    const g = dtype === "float32" ? GENS.any : dtype === "int32" ? GENS.int : GENS.bool;
    for (const shape of SHAPES) {
      const c = randView(shape, "bool", GENS.bool, true);
      const a = randView(shape, dtype, g, true);
      const d = randView(shape, dtype, g, true);
      await check(`where ${dtype} [${shape}]`, dtype, shape, EXACT, (b, s, o) =>
        b.where(c[s], a[s], d[s], o),
      );
      for (const to of ["float32", "int32", "bool"] as DType[]) {
        await check(`cast ${dtype}->${to} [${shape}]`, to, shape, EXACT, (b, s, o) => b.cast(a[s], o));
      }
      // copy into a strided destination: the destination's untouched elements must keep their values
      const src = randView(shape, dtype, g, true);
      const dst = randView(shape, dtype, g);
      const total = dst.js.data.length;
      await check(`copy ${dtype} [${shape}] into a strided view`, dtype, [total], EXACT, (b, s, o) => {
        for (let k = 0; k < total; k++) o[k] = dst.js.data[k];
        b.copy(src[s], { ...dst[s], data: o });
      });
    }
  }
  // reductions over random axis sets
  const REDS: ReduceOp[] = ["sum", "prod", "max", "min"];
  i = 0;
  for (const shape of [...SHAPES, [3, 200], [130, 2, 3]]) {
    for (const dtype of ["float32", "int32"] as DType[]) {
      const op = REDS[i++ % 4];
      const r = shape.length;
      const axes = shape.map((_, k) => k).filter(() => rng() < 0.5);
      if (axes.some((a) => shape[a] === 0) && (op === "max" || op === "min")) continue;
      const g = op === "prod" ? (x: () => number) => 0.5 + x() : dtype === "float32" ? GENS.any : GENS.small;
      const x = randView(shape, dtype, g, true);
      const outShape = shape.filter((_, k) => !axes.includes(k));
      const K = size(axes.map((a) => shape[a]));
      const tol = dtype === "int32" ? EXACT : { rtol: 1e-5, atol: 1e-6 * (K + 1) };
      await check(
        `reduce ${op} ${dtype} [${shape}] axes [${axes}] (rank ${r})`,
        dtype,
        outShape,
        tol,
        (b, s, o) => b.reduce(op, x[s], axes, o),
      );
    }
  }
  // argmax / argmin (ties: the first wins) and cumsum (both directions) along every axis
  for (const shape of [[7], [3, 5], [4, 1, 9], [2, 17, 3], [3, 70]]) {
    for (let axis = 0; axis < shape.length; axis++) {
      for (const dtype of ["float32", "int32"] as DType[]) {
        const x = randView(shape, dtype, GENS.small, true);
        const rest = shape.filter((_, k) => k !== axis);
        for (const op of ["argmax", "argmin"] as const) {
          await check(`argReduce ${op} ${dtype} [${shape}] axis ${axis}`, "int32", rest, EXACT, (b, s, o) =>
            b.argReduce(op, x[s], axis, o),
          );
        }
        const y = randView(shape, dtype, dtype === "float32" ? GENS.any : GENS.int, true);
        for (const reverse of [false, true]) {
          const tol = dtype === "float32" ? { rtol: 1e-5, atol: 1e-5 * shape[axis] } : EXACT;
          await check(
            `cumsum ${dtype} [${shape}] axis ${axis} reverse=${reverse}`,
            dtype,
            shape,
            tol,
            (b, s, o) => b.cumsum(y[s], axis, reverse, o),
          );
        }
      }
    }
  }
  // all axes of a large array (tree reduction with many strides per thread)
  {
    const x = randView([1000, 37], "float32", GENS.any);
    await check("reduce sum float32 [1000,37] all", "float32", [], { rtol: 1e-5, atol: 1e-3 }, (b, s, o) =>
      b.reduce("sum", x[s], [0, 1], o),
    );
  }
  // matrix products: batched, transposed views (the random layouts), odd sizes, K = 0
  const DOTS: [number[], number, number, number][] = [
    [[], 1, 1, 1],
    [[], 7, 5, 3],
    [[], 17, 33, 9],
    [[3], 4, 19, 21],
    [[2, 3], 5, 6, 7],
    [[], 64, 48, 40],
    [[], 3, 0, 4],
    [[2], 0, 3, 4],
  ];
  for (const dtype of ["float32", "int32"] as DType[]) {
    for (const [batch, M, K, N] of DOTS) {
      const a = randView([...batch, M, K], dtype, dtype === "float32" ? GENS.any : GENS.small, true);
      const c = randView([...batch, K, N], dtype, dtype === "float32" ? GENS.any : GENS.small, true);
      const tol = dtype === "int32" ? EXACT : { rtol: 1e-5, atol: 2e-6 * 9 * (K + 1) };
      await check(`dot ${dtype} [${batch}] ${M}x${K}x${N}`, dtype, [...batch, M, N], tol, (b, s, o) =>
        b.dot(a[s], c[s], o),
      );
    }
  }
  // softmax and its VJP along every axis
  for (const shape of [[], [7], [3, 5], [4, 1, 9], [2, 17, 3], [3, 200], [0, 4]]) {
    for (let axis = 0; axis < Math.max(1, shape.length); axis++) {
      for (const log of [false, true]) {
        const x = randView(shape, "float32", GENS.any);
        await check(`softmax log=${log} [${shape}] axis ${axis}`, "float32", shape, F32, (b, s, o) =>
          b.softmax(x[s], axis, log, o),
        );
        const yv = allocTyped("float32", size(shape));
        J.softmax(x.js, axis, log, yv);
        const st = shape.map((_, k) => shape.slice(k + 1).reduce((p, q) => p * q, 1));
        const y: View = { data: yv, shape, strides: st, offset: 0 };
        const ct = randView(shape, "float32", GENS.any, true);
        await check(`softmaxBackward log=${log} [${shape}] axis ${axis}`, "float32", shape, F32, (b, s, o) =>
          b.softmaxBackward(y, ct[s], axis, log, o),
        );
      }
    }
  }
  // layerNorm and its VJP along the last axis (odd rows, a row of one, longer than a workgroup, empty)
  for (const shape of [[7], [3, 5], [4, 1], [2, 17, 3], [3, 300], [0, 4]]) {
    for (const eps of [1e-5, 0.5]) {
      const x = randView(shape, "float32", GENS.any, true);
      await check(`layerNorm eps=${eps} [${shape}]`, "float32", shape, F32, (b, s, o) =>
        b.layerNorm(x[s], eps, o),
      );
      const g = randView(shape, "float32", GENS.any, true);
      await check(
        `layerNormBackward eps=${eps} [${shape}]`,
        "float32",
        shape,
        { rtol: 1e-5, atol: 1e-5 },
        (b, s, o) => b.layerNormBackward(x[s], g[s], eps, o),
      );
    }
  }
  // gather and scatterAdd along every axis
  for (const dtype of ["float32", "int32"] as DType[]) {
    const base = [4, 5, 6];
    for (let axis = 0; axis < 3; axis++) {
      for (const extent of [3, 7, 0]) {
        const iShape = [...base];
        iShape[axis] = extent;
        const g = dtype === "float32" ? GENS.any : GENS.int;
        const x = randView(base, dtype, g, true);
        const idx = randView(iShape, "int32", (r) => Math.floor(r() * base[axis]));
        await check(`gather ${dtype} axis ${axis} ${extent}`, dtype, iShape, EXACT, (b, s, o) =>
          b.gather(x[s], axis, idx[s], o),
        );
        const src = randView(iShape, dtype, g, true);
        const tol = dtype === "float32" ? F32 : EXACT;
        await check(`scatterAdd ${dtype} axis ${axis} ${extent}`, dtype, base, tol, (b, s, o) => {
          for (let k = 0; k < o.length; k++) o[k] = k % 3;
          b.scatterAdd(src[s], axis, idx[s], o, base);
        });
      }
    }
  }
  // convolutions (groups, stride, padding, dilation, bias and activation epilogue) and their two adjoints
  const CONVS: [number[], number, number[], Conv2dParams, Activation | null, boolean][] = [
    [[2, 3, 7, 6], 4, [3, 3], { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }, "relu", true],
    [[1, 4, 9, 8], 6, [3, 2], { stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2 }, null, false],
    [[2, 2, 5, 5], 2, [1, 1], { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 2 }, "tanh", true],
    [
      [1, 3, 6, 7],
      2,
      [2, 3],
      { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 },
      "sigmoid",
      false,
    ],
  ];
  for (const [xs, O, [KH, KW], p, act, withBias] of CONVS) {
    const [N, C, H, W] = xs;
    const OH = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (KH - 1) - 1) / p.stride[0]) + 1;
    const OW = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (KW - 1) - 1) / p.stride[1]) + 1;
    const ws = [O, C / p.groups, KH, KW];
    const ys = [N, O, OH, OW];
    const x = randView(xs, "float32", GENS.any);
    const w = randView(ws, "float32", GENS.any);
    const bias = withBias ? randView([O], "float32", GENS.any) : null;
    const dy = randView(ys, "float32", GENS.any);
    const terms = (C / p.groups) * KH * KW + 1;
    const tol = { rtol: 1e-5, atol: 2e-6 * 9 * terms };
    const label = `[${xs}] O=${O} k=${KH}x${KW} ${JSON.stringify(p)}`;
    await check(`conv2d ${label} ${act} bias=${withBias}`, "float32", ys, tol, (b, s, o) =>
      b.conv2d(x[s], w[s], o, ys, p, { bias: bias === null ? null : bias[s], act }),
    );
    await check(
      `conv2dBackInput ${label}`,
      "float32",
      xs,
      { rtol: 1e-5, atol: 2e-6 * 9 * O * KH * KW },
      (b, s, o) => b.conv2dBackInput(dy[s], w[s], o, xs, p),
    );
    await check(
      `conv2dBackWeight ${label}`,
      "float32",
      ws,
      { rtol: 1e-5, atol: 2e-6 * 9 * N * OH * OW },
      (b, s, o) => b.conv2dBackWeight(x[s], dy[s], o, ws, p),
    );
  }
  // pooling and its adjoints
  const POOLS: Pool2dParams[] = [
    { kernel: [2, 2], stride: [2, 2], padding: [0, 0] },
    { kernel: [3, 3], stride: [2, 2], padding: [1, 1] },
    { kernel: [3, 2], stride: [1, 1], padding: [1, 1] },
  ];
  for (const p of POOLS) {
    const xs = [2, 3, 7, 6];
    const OH = Math.floor((xs[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1;
    const OW = Math.floor((xs[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1;
    const ys = [2, 3, OH, OW];
    const x = randView(xs, "float32", GENS.small); // small integers: ties, the first maximum must win
    const dy = randView(ys, "float32", GENS.any);
    const label = JSON.stringify(p);
    await check(`maxPool2d ${label}`, "float32", ys, EXACT, (b, s, o) => b.maxPool2d(x[s], o, ys, p));
    await check(`maxPool2dArgmax ${label}`, "int32", ys, EXACT, (b, s, o) =>
      b.maxPool2dArgmax(x[s], o, ys, p),
    );
    await check(`avgPool2d ${label}`, "float32", ys, F32, (b, s, o) => b.avgPool2d(x[s], o, ys, p));
    await check(`maxPool2dBackward ${label}`, "float32", xs, F32, (b, s, o) =>
      b.maxPool2dBackward(x[s], dy[s], o, xs, p),
    );
    await check(`avgPool2dBackward ${label}`, "float32", xs, F32, (b, s, o) =>
      b.avgPool2dBackward(dy[s], o, xs, p),
    );
  }
  // Adam update in place (float32 on the GPU vs float64 arithmetic in js)
  for (const amsgrad of [false, true]) {
    for (const decoupled of [false, true]) {
      const n = 37;
      const gv = randView([n], "float32", GENS.any, true);
      const init = Array.from({ length: 4 * n }, () => rng());
      const h = {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weightDecay: 0.1,
        decoupled,
        maximize: amsgrad,
        bc1: 0.19,
        bc2Sqrt: Math.sqrt(0.0199),
      };
      await check(
        `adamUpdate amsgrad=${amsgrad} decoupled=${decoupled}`,
        "float32",
        [4 * n],
        F32,
        (b, s, o) => {
          const parts = [0, 1, 2, 3].map(() => b.alloc("float32", n));
          parts.forEach((p, k) => {
            for (let j = 0; j < n; j++) p[j] = init[k * n + j] + (k === 2 ? 0 : 0);
          });
          b.adamUpdate!(parts[0], gv[s], parts[1], parts[2], amsgrad ? parts[3] : null, h);
          // gather the four states into o with a copy kernel per part (device-to-device on webgpu)
          parts.forEach((p, k) => {
            b.copy(
              { data: p, shape: [n], strides: [1], offset: 0 },
              { data: o, shape: [n], strides: [1], offset: k * n },
            );
          });
        },
      );
    }
  }
}

/** The first element where `got` is not within atol + rtol |want| of `want`, or null if all are. */
function ndMismatch(got: Nd, want: Nd, rtol: number, atol: number): string | null {
  if (got.shape.join() !== want.shape.join()) return `shape [${got.shape}], expected [${want.shape}]`;
  for (let i = 0; i < want.data.length; i++) {
    const a = got.data[i];
    const b = want.data[i];
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) return `element ${i}: got ${a}, expected ${b}`;
  }
  return null;
}

/**
 * The op table's forward checks in float32 on webgpu against the float64 references (the tolerance of the
 * browser test, 2e-5): every sample's inputs are cast to float32, the op runs, its result is read with
 * `await data()`. Ops that need a synchronous read of a GPU-computed value inside (e.g. an index checked on
 * the host) throw DeviceReadError: they are listed apart, not counted as failures.
 */
async function opTableChecks(): Promise<{ checked: number; failures: string[]; syncOnly: string[] }> {
  const failures: string[] = [];
  const syncOnly = new Set<string>();
  let n = 0;
  for (const op of OPS) {
    const samples = op.samples();
    for (let k = 0; k < samples.length; k++) {
      try {
        const xs32 = samples[k].map((x) => x.to("float32"));
        const y = op.fn(...xs32);
        await y.data();
        const m = ndMismatch(nd(y), op.ref(...xs32.map(nd)), 2e-5, 2e-5);
        if (m !== null) failures.push(`${op.name} sample ${k}: ${m}`);
        n++;
      } catch (e) {
        if (e instanceof Error && e.name === "DeviceReadError") syncOnly.add(op.name);
        else failures.push(`${op.name} sample ${k}: threw ${e instanceof Error ? e.message : e}`);
      }
    }
  }
  return { checked: n, failures, syncOnly: [...syncOnly] };
}

/** A synchronous read of GPU-written values fails naming `await t.data()`; after it, reads work. */
async function syncReadChecks(): Promise<WebgpuReport["syncRead"]> {
  const t = cr.tensor([1, 2, 3, 4]).mul(2).sum();
  const err = (f: () => unknown) => {
    try {
      f();
      return "";
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  };
  const message = err(() => t.item());
  // float64 lives on the host: casting GPU-written values to it needs them there first
  const toFloat64 = err(() => cr.tensor([1, 2]).mul(2).to("float64"));
  // a call without a WGSL form (the fused LSTM cell into a host array) on GPU-written inputs: the error names it
  const gates = cr.ones([2, 4]).mul(1);
  const cell = cr.ones([2, 1]).mul(1);
  const view = (x: cr.Tensor): View => ({ data: x._data!, shape: x.shape, strides: x._strides, offset: 0 });
  const lstm = err(() => cr.getBackend().lstmCell(view(gates), view(cell), new Float32Array(4)));
  const sum = Array.from(await t.data());
  // a freshly created tensor has valid host values: synchronous reads work before any kernel ran on it
  const fresh = Array.from(cr.tensor([5, 6]).dataSync());
  return { message, afterData: t.item(), sum, toFloat64, fresh, lstm };
}

/** Bytes in use grow with live tensors; dropped tensors' buffers return to the pool after a collection. */
async function memoryChecks(): Promise<WebgpuReport["memory"]> {
  const before = webgpuMemory()!.bytesInUse;
  let keep: cr.Tensor[] | null = [];
  for (let k = 0; k < 8; k++) keep.push(cr.ones([256, 256]).mul(k));
  await keep[7].data();
  const held = webgpuMemory()!.bytesInUse;
  keep = null;
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let k = 0; k < 5 && gc; k++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  await cr.zeros([1]).add(1).data(); // a flush: freed buffers enter the pool
  const m = webgpuMemory()!;
  return { before, held, afterGc: m.bytesInUse, pool: m.bytesInPool };
}

/** A jitted function (memory planning and elementwise fusion) on webgpu, run twice. */
async function jitCheck(): Promise<number[]> {
  const f = cr.jit((a: cr.Tensor, b: cr.Tensor) => a.mul(b).add(1).relu().matmul(b.transpose(0, 1)).sum(1));
  const a = cr.tensor([
    [1, -2, 3],
    [0.5, 4, -1],
  ]);
  const b = cr.tensor([
    [2, 1, -1],
    [1, 1, 1],
  ]);
  const first = Array.from(await (f(a, b) as cr.Tensor).data());
  const second = Array.from(await (f(a, b) as cr.Tensor).data());
  return [...first, ...second];
}

/**
 * Everything above, in order (the page runs it; the Node test of the npm package `webgpu` calls it too).
 * `opTable: false` leaves out the op table's forward checks.
 */
export async function runWebgpuChecks(
  opts: { opTable?: boolean } = {},
): Promise<WebgpuReport | { skip: string }> {
  const init = await cr.init({ backend: "webgpu" });
  if (init.backend !== "webgpu") return { skip: init.fallback ?? `init chose ${init.backend}` };
  const t0 = performance.now();
  // the kernel checks test the WGSL: bool / int32 results of host-readable operands run it too (index.ts)
  const hostFirst = setWebgpuHostFirst(false);
  await kernelChecks();
  // the WGSL kernels of attention, the recurrent cells, argsort and jit's fusion (webgpu-wgsl-checks.ts)
  await wgslKernelChecks({
    check,
    randView,
    rng,
    note(failure) {
      checked++;
      if (failure !== null) failures.push(failure);
    },
  });
  // the linalg kernels: lu, triangularSolve, cholesky (webgpu-linalg-checks.ts)
  await linalgKernelChecks({
    check,
    randView,
    rng,
    note(failure) {
      checked++;
      if (failure !== null) failures.push(failure);
    },
  });
  setWebgpuHostFirst(hostFirst);
  const kernelsMs = performance.now() - t0;
  const syncRead = await syncReadChecks();
  const memory = await memoryChecks();
  const mlp = await mlpStepsAsync(3, 3);
  const cnn = await cnnStepsAsync(4);
  const opTable = opts.opTable === false ? null : await opTableChecks();
  const jit = await jitCheck();
  // LinAlgErrors of device-only values, NaN comparisons, a bool mask in float64 work (webgpu-errors-checks.ts)
  const deviceErrors = await deviceErrorChecks();
  return {
    deviceErrors,
    init,
    info: webgpuInfo()!,
    checked,
    failures,
    kernelsMs,
    syncRead,
    memory,
    mlp,
    cnn,
    opTable,
    jit,
  };
}

// the page (a browser); imported by a Node test, it only exports
if (typeof window !== "undefined") Object.assign(globalThis, { __result: runWebgpuChecks() });
