/**
 * The TypeScript side of the native backend checked against native/src/kernels.def, the one declaration list
 * of the native kernels (see its header): the def is parsed here, independently of the addon.
 *
 * - Every Backend kernel is served by exactly one native family, and every op name in the def is a TypeScript
 *   op (so the codes the addon reports mean what the TS side thinks).
 * - The compiled addon reports exactly the def (a stale build is caught) and exports every family.
 * - The meta buffer: the native backend is built over a recording fake addon that reports the parsed def, each
 *   Backend method is called once, and what it wrote into the meta buffer is walked token by token along the
 *   family's `meta` layout (views, outputs' dtype codes, named numbers, in that order and nothing after), and
 *   the `kind` it passed is the method's position in the family's `serves`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  ACTIVATIONS,
  BINARY_OPS,
  type Backend,
  KERNELS,
  REDUCE_OPS,
  UNARY_OPS,
  type View,
} from "../../src/backend/backend.ts";
import { fusedProgram } from "../../src/backend/fused.ts";
import { loadAddon, type NativeAddon, type NativeDescription } from "../../src/backend/native/addon.ts";
import { createNativeBackend } from "../../src/backend/native/backend.ts";
import { bytesOf } from "../../src/backend/native/half.ts";
import { halfKernelsOf } from "../../src/backend/half.ts";
import { BFloat16Bits, Float16Bits, type TypedArray } from "../../src/dtype.ts";

const DEF = new URL("../../native/src/kernels.def", import.meta.url);

/** Parse kernels.def the way the C preprocessor expands it: code lines only, comments dropped. */
function parseDef(): NativeDescription {
  const lines = readFileSync(DEF, "utf8").split("\n");
  // drop comments and preprocessor lines (the defaults at the top), join continuation lines
  const code = lines
    .filter((l) => !l.trimStart().startsWith("#"))
    .map((l) => l.replace(/\/\/.*$/, ""))
    .join(" ");
  const families: { name: string; serves: string; meta: string }[] = [];
  // CR_KERNEL(name, js, (params...), "serves", "meta")
  for (const m of code.matchAll(
    /CR_KERNEL\(\s*(\w+)\s*,\s*(\w+)\s*,\s*\(([^()]*)\)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)/g,
  )) {
    families.push({ name: m[2], serves: m[4], meta: m[5] });
  }
  const names = (macro: string) =>
    [...code.matchAll(new RegExp(`${macro}\\(\\s*\\w+\\s*,\\s*(\\w+)\\s*\\)`, "g"))].map((m) => m[1]);
  const kernelCount = [...code.matchAll(/CR_KERNEL\(/g)].length;
  assert.equal(families.length, kernelCount, "every CR_KERNEL line of kernels.def parses");
  return {
    unary: names("CR_UNARY"),
    binary: names("CR_BINARY"),
    reduce: names("CR_REDUCE"),
    activation: names("CR_ACT"),
    families,
  };
}

const def = parseDef();

/**
 * The methods native serves: every Backend kernel, the optional `fused` and `dotFused` (jit's fused programs
 * and GEMM epilogues) and LayerNorm's affine kernels, and the
 * float16 / bfloat16 kernels registered beside the Backend (src/backend/half.ts).
 */
const HALF = ["castHalf", "dotBF16", "convBF16"];
const LN_AFFINE = ["layerNormAffine", "layerNormScaledBackward", "layerNormAffineGrads"];
const SERVED = [...KERNELS, "fused", "dotFused", ...LN_AFFINE, ...HALF];

test("kernels.def: every Backend kernel is served by exactly one family, and nothing else", () => {
  const served = def.families.flatMap((f) => f.serves.split(" "));
  assert.deepEqual([...served].sort(), [...SERVED].sort());
  assert.equal(new Set(def.families.map((f) => f.name)).size, def.families.length, "family names are unique");
});

test("kernels.def: op names are TypeScript op names, each once; activations match ACTIVATIONS in order", () => {
  const subset = (what: string, declared: readonly string[], ts: readonly string[]) => {
    assert.equal(new Set(declared).size, declared.length, `${what}: duplicate op in kernels.def`);
    for (const op of declared)
      assert.ok(ts.includes(op), `${what}: kernels.def declares '${op}', unknown to TS`);
  };
  subset("unary", def.unary, UNARY_OPS);
  subset("binary", def.binary, BINARY_OPS);
  subset("reduce", def.reduce, REDUCE_OPS);
  // biasAct / actGrad / conv2d's epilogue have no per-activation fallback: native must know every one
  assert.deepEqual(def.activation, [...ACTIVATIONS]);
});

test("kernels.def: the compiled addon reports exactly the def and exports every family", (t) => {
  const r = loadAddon();
  if ("error" in r) {
    t.skip(`native addon not built: ${r.error}`);
    return;
  }
  assert.deepEqual(r.addon.describe(), def, "the addon is stale: run npm run build:native");
  for (const f of def.families) assert.equal(typeof Reflect.get(r.addon, f.name), "function", f.name);
});

// ---------------------------------------------------------------------------------------------------------
// The meta layout, through a recording fake addon.

interface Call {
  fn: string;
  args: unknown[];
  meta: number[];
}

/** A fake addon reporting `d`, recording every kernel call with a copy of the meta buffer. */
function fakeAddon(d: NativeDescription): { addon: NativeAddon; calls: Call[]; reset(): void } {
  const calls: Call[] = [];
  let meta: Float64Array = new Float64Array(0);
  const rec =
    (fn: string) =>
    (...args: unknown[]) => {
      calls.push({ fn, args, meta: Array.from(meta) });
    };
  const addon: NativeAddon = {
    init(m) {
      meta = m;
    },
    setNumThreads() {},
    adviseHeap() {},
    getNumThreads: () => 1,
    isa: () => "fake",
    setIsa: () => false,
    describe: () => d,
    unary: rec("unary"),
    binary: rec("binary"),
    where: rec("where"),
    cast: rec("cast"),
    copy: rec("copy"),
    reduce: rec("reduce"),
    argReduce: rec("argReduce"),
    cumsum: rec("cumsum"),
    dot: rec("dot"),
    conv2d: rec("conv2d"),
    pool2d: rec("pool2d"),
    maxPool2dBackward: rec("maxPool2dBackward"),
    gather: rec("gather"),
    scatterAdd: rec("scatterAdd"),
    adamUpdate: rec("adamUpdate"),
    activation: rec("activation"),
    softmax: rec("softmax"),
    softmaxBackward: rec("softmaxBackward"),
    layerNorm: rec("layerNorm"),
    layerNormAffine: rec("layerNormAffine"),
    attention: rec("attention"),
    attentionBackward: rec("attentionBackward"),
    rnnCell: rec("rnnCell"),
    fused: rec("fused"),
    dotFused: rec("dotFused"),
    halfCast: rec("halfCast"),
    dotBF16: rec("dotBF16"),
    convBF16: rec("convBF16"),
  };
  // NaN marks the unwritten tail, so the test sees how much each call wrote
  return { addon, calls, reset: () => meta.fill(Number.NaN) };
}

const view = (data: TypedArray, shape: number[], strides: number[], offset: number): View => ({
  data,
  shape,
  strides,
  offset,
});
const x = view(new Float32Array(12), [2, 3], [3, 1], 1);
const y = view(new Float32Array(12), [2, 3], [1, 2], 0);
const mask = view(new Uint8Array(6), [2, 3], [3, 1], 0);
const idx = view(new Int32Array(6), [2, 3], [0, 1], 2);
const x4 = view(new Float64Array(16), [1, 1, 4, 4], [16, 16, 4, 1], 0);
const w4 = view(new Float64Array(9), [1, 1, 3, 3], [9, 9, 3, 1], 0);
const bias = view(new Float64Array(1), [1], [1], 0);
// attention operands: q = k = x [2, 3], v = y [2, 3], a mask [2, 2] and an output [2, 4]
const x4b = view(new Float32Array(4), [2, 2], [2, 1], 0);
const xo = view(new Float32Array(8), [2, 4], [4, 1], 0);
// recurrent cells with H = 1: gates [2, 4], states [2, 1], a cotangent [2, 2]
const xg = view(new Float32Array(8), [2, 4], [4, 1], 0);
const xh = view(new Float32Array(2), [2, 1], [1, 1], 0);
const xh2 = view(new Float32Array(4), [2, 2], [1, 2], 0);
const out = new Float32Array(6);
const out64 = new Float64Array(16);
const conv = { stride: [1, 2], padding: [0, 1], dilation: [1, 1], groups: 1 } as const;
const pool = { kernel: [2, 2], stride: [2, 1], padding: [1, 0] } as const;
const adamH = {
  lr: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  weightDecay: 0.01,
  decoupled: true,
  maximize: false,
  bc1: 0.5,
  bc2Sqrt: 0.25,
};

/** One call per Backend method: the views and outputs it must code (null: an absent optional), its numbers. */
interface Sample {
  call(b: Backend): void;
  views: (View | null)[];
  outs: (TypedArray | null)[];
  values: Record<string, number | readonly number[]>;
  /** The views of a `views[#]` list. */
  list?: View[];
  /** Views passed as a copy (the program code, translated to the addon's op codes): compared by contents. */
  byValue?: number[];
}

const convVals = { stride: [1, 2], padding: [0, 1], dilation: [1, 1], groups: 1 };
const poolVals = { shape: [1, 1, 2, 3], kernel: [2, 2], stride: [2, 1], padding: [1, 0] };
const prog = fusedProgram("float32", [
  { kind: "input", index: 0 },
  { kind: "input", index: 1 },
  { kind: "const", value: 2 },
  { kind: "binary", op: "atan2", a: 0, b: 2 },
  { kind: "unary", op: "tanh", a: 3 },
  { kind: "binary", op: "mul", a: 4, b: 1 },
]);
// relu(a @ b + bias): the product is input 0
const dotProg = fusedProgram("float32", [
  { kind: "input", index: 0 },
  { kind: "input", index: 1 },
  { kind: "binary", op: "add", a: 0, b: 1 },
  { kind: "unary", op: "relu", a: 2 },
]);
const y32 = view(new Float32Array(12), [3, 2], [2, 1], 0);
const w3 = view(Float32Array.from([1, 2, 3]), [3], [1], 0);
const b3 = view(Float32Array.from([4, 5, 6]), [3], [1], 0);
const w3s = view(Float32Array.from([1, 2, 3, 4, 5]), [3], [2], 0);
const bias22 = view(new Float32Array(2), [2, 2], [0, 1], 0);
// float16 / bfloat16: 16-bit storage travels as its bytes with a trailing [2] axis (src/backend/native/half.ts)
const h32 = view(new Float32Array(80), [70], [1], 5);
const hOut = new Float16Bits(70);
const bIn = new BFloat16Bits(80);
const bOut = new Float32Array(70);
const gA = new BFloat16Bits(1200);
const gB = new BFloat16Bits(602);
const gOut = new Float32Array(800);
const half = (b: Backend) => halfKernelsOf(b.name)!;
const cX = new BFloat16Bits(20);
const cW = view(new Float32Array(9), [1, 1, 3, 3], [9, 9, 3, 1], 0);
const cB = view(new Float32Array(1), [1], [1], 0);
const cOut = new BFloat16Bits(6);
const cDz = view(new Float32Array(6), [1, 1, 2, 3], [6, 6, 3, 1], 0);
const cGw = new Float32Array(9);

const SAMPLES: Record<string, Sample[]> = {
  castHalf: [
    {
      call: (b) => half(b).castHalf!(h32, hOut),
      views: [h32],
      outs: [bytesOf(hOut)],
      values: { shape: [70] },
    },
    {
      call: (b) => half(b).castHalf!(view(bIn, [70], [1], 3), bOut),
      views: [view(bytesOf(bIn), [70, 2], [2, 1], 6)],
      outs: [bOut],
      values: { shape: [70] },
    },
  ],
  dotBF16: [
    {
      call: (b) => half(b).dotBF16!(view(gA, [40, 30], [30, 1], 0), view(gB, [30, 20], [1, 30], 2), gOut),
      views: [
        view(bytesOf(gA), [40, 30, 2], [60, 2, 1], 0),
        view(bytesOf(gB), [30, 20, 2], [2, 60, 1], 4),
        null, // no bias
        null, // no mask
      ],
      outs: [gOut],
      values: { shape: [40, 20] },
    },
  ],
  convBF16: [
    {
      call: (b) =>
        half(b).convBF16!(
          "forward",
          view(cX, [1, 1, 4, 4], [16, 16, 4, 1], 2),
          cW,
          cOut,
          [1, 1, 2, 3],
          conv,
          {
            bias: cB,
            relu: true,
          },
        ),
      views: [view(bytesOf(cX), [1, 1, 4, 4, 2], [32, 32, 8, 2, 1], 4), cW, cB],
      outs: [bytesOf(cOut)],
      values: { shape: [1, 1, 2, 3], ...convVals, act: def.activation.indexOf("relu") },
    },
    {
      call: (b) =>
        half(b).convBF16!("weight", view(cX, [1, 1, 4, 4], [16, 16, 4, 1], 2), cDz, cGw, [1, 1, 3, 3], conv),
      views: [view(bytesOf(cX), [1, 1, 4, 4, 2], [32, 32, 8, 2, 1], 4), cDz, null],
      outs: [cGw],
      values: { shape: [1, 1, 3, 3], ...convVals, act: -1 },
    },
  ],
  fused: [
    {
      call: (b) => b.fused?.(prog, [x, y], [out]),
      views: [
        // the program's code, with the op codes the (fake) addon reports, and a store per output
        view(
          Int32Array.from([
            ...[0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0],
            ...[3, def.binary.indexOf("atan2"), 0, 2],
            ...[2, def.unary.indexOf("tanh"), 3, 0],
            ...[3, def.binary.indexOf("mul"), 4, 1],
            ...[4, 0, 5, 0], // the store of the output
          ]),
          [28],
          [1],
          0,
        ),
        view(prog.consts, [1], [1], 0),
      ],
      byValue: [0],
      list: [x, y],
      outs: [out],
      values: { shape: [2, 3] },
    },
  ],
  dotFused: [
    {
      call: (b) => b.dotFused?.(dotProg, x, y32, [bias22], [out]),
      views: [
        x,
        y32,
        view(
          Int32Array.from([
            ...[0, 0, 0, 0, 0, 0, 1, 0],
            ...[3, def.binary.indexOf("add"), 0, 1],
            ...[2, def.unary.indexOf("relu"), 2, 0],
            ...[4, 0, 3, 0], // the store of the output
          ]),
          [20],
          [1],
          0,
        ),
        view(dotProg.consts, [0], [1], 0),
      ],
      byValue: [2],
      list: [bias22],
      outs: [out],
      values: {},
    },
  ],
  unary: [{ call: (b) => b.unary("exp", x, out), views: [x], outs: [out], values: {} }],
  binary: [{ call: (b) => b.binary("sub", x, y, out), views: [x, y], outs: [out], values: {} }],
  biasAct: [
    { call: (b) => b.biasAct("tanh", x, y, out), views: [x, y], outs: [out], values: { act: 1 } },
    { call: (b) => b.biasAct("relu", x, null, out), views: [x, null], outs: [out], values: { act: 0 } },
  ],
  actGrad: [{ call: (b) => b.actGrad("sigmoid", x, y, out), views: [x, y], outs: [out], values: { act: 2 } }],
  where: [{ call: (b) => b.where(mask, x, y, out), views: [mask, x, y], outs: [out], values: {} }],
  cast: [{ call: (b) => b.cast(x, out64), views: [x], outs: [out64], values: {} }],
  copy: [{ call: (b) => b.copy(x, y), views: [x, y], outs: [], values: {} }],
  reduce: [
    { call: (b) => b.reduce("max", x, [0, 1], out), views: [x], outs: [out], values: { axes: [0, 1] } },
  ],
  argReduce: [
    { call: (b) => b.argReduce("argmin", x, 1, out), views: [x], outs: [out], values: { axis: 1 } },
  ],
  cumsum: [
    { call: (b) => b.cumsum(x, 0, true, out), views: [x], outs: [out], values: { axis: 0, reverse: 1 } },
  ],
  dot: [{ call: (b) => b.dot(x, y, out), views: [x, y], outs: [out], values: {} }],
  conv2d: [
    {
      call: (b) => b.conv2d(x4, w4, out64, [1, 1, 2, 3], conv, { bias, act: "sigmoid" }),
      views: [x4, w4, bias],
      outs: [out64],
      values: { shape: [1, 1, 2, 3], ...convVals, act: 2 },
    },
    {
      call: (b) => b.conv2d(x4, w4, out64, [1, 1, 2, 3], conv),
      views: [x4, w4, null],
      outs: [out64],
      values: { shape: [1, 1, 2, 3], ...convVals, act: -1 },
    },
  ],
  conv2dBackInput: [
    {
      call: (b) => b.conv2dBackInput(x4, w4, out64, [1, 1, 4, 4], conv),
      views: [x4, w4, null],
      outs: [out64],
      values: { shape: [1, 1, 4, 4], ...convVals, act: -1 },
    },
  ],
  conv2dBackWeight: [
    {
      call: (b) => b.conv2dBackWeight(x4, x4, out64, [1, 1, 3, 3], conv),
      views: [x4, x4, null],
      outs: [out64],
      values: { shape: [1, 1, 3, 3], ...convVals, act: -1 },
    },
  ],
  maxPool2d: [
    { call: (b) => b.maxPool2d(x4, out64, [1, 1, 2, 3], pool), views: [x4], outs: [out64], values: poolVals },
  ],
  maxPool2dArgmax: [
    {
      call: (b) => b.maxPool2dArgmax(x4, out, [1, 1, 2, 3], pool),
      views: [x4],
      outs: [out],
      values: poolVals,
    },
  ],
  avgPool2d: [
    { call: (b) => b.avgPool2d(x4, out64, [1, 1, 2, 3], pool), views: [x4], outs: [out64], values: poolVals },
  ],
  avgPool2dBackward: [
    {
      call: (b) => b.avgPool2dBackward(x4, out64, [1, 1, 4, 4], pool),
      views: [x4],
      outs: [out64],
      values: { ...poolVals, shape: [1, 1, 4, 4] },
    },
  ],
  maxPool2dBackward: [
    {
      call: (b) => b.maxPool2dBackward(x4, w4, out64, [1, 1, 4, 4], pool),
      views: [x4, w4],
      outs: [out64],
      values: poolVals,
    },
  ],
  gather: [{ call: (b) => b.gather(x, 1, idx, out), views: [x, idx], outs: [out], values: { axis: 1 } }],
  scatterAdd: [
    {
      call: (b) => b.scatterAdd(x, 1, idx, out, [2, 5]),
      views: [x, idx],
      outs: [out],
      values: { axis: 1, shape: [2, 5] },
    },
  ],
  softmax: [{ call: (b) => b.softmax(x, 1, true, out), views: [x], outs: [out], values: { axis: 1 } }],
  softmaxBackward: [
    { call: (b) => b.softmaxBackward(x, y, 0, false, out), views: [x, y], outs: [out], values: { axis: 0 } },
  ],
  layerNorm: [
    { call: (b) => b.layerNorm(x, 1e-5, out), views: [x, null], outs: [out], values: { eps: 1e-5 } },
  ],
  layerNormBackward: [
    { call: (b) => b.layerNormBackward(x, y, 0.25, out), views: [x, y], outs: [out], values: { eps: 0.25 } },
  ],
  // w and b travel as one contiguous [2, N] copy; a unit-stride w as it is, a strided one as a copy
  layerNormAffine: [
    {
      call: (b) => b.layerNormAffine?.(x, w3, b3, 0.5, out),
      views: [x, view(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], [3, 1], 0), null],
      outs: [out],
      values: { eps: 0.5, shape: [2, 3] },
      byValue: [1],
    },
  ],
  layerNormScaledBackward: [
    {
      call: (b) => b.layerNormScaledBackward?.(x, w3, y, 0.5, out),
      views: [x, w3, y],
      outs: [out],
      values: { eps: 0.5, shape: [2, 3] },
    },
    {
      call: (b) => b.layerNormScaledBackward?.(x, w3s, y, 0.5, out),
      views: [x, view(Float32Array.from([1, 3, 5]), [3], [1], 0), y],
      outs: [out],
      values: { eps: 0.5, shape: [2, 3] },
      byValue: [1],
    },
  ],
  layerNormAffineGrads: [
    {
      call: (b) => b.layerNormAffineGrads?.(x, y, 0.5, out),
      views: [x, null, y],
      outs: [out],
      values: { eps: 0.5, shape: [2, 3] },
    },
  ],
  attention: [
    {
      call: (b) => b.attention(x, x, y, null, true, 0.25, out),
      views: [x, x, y, null],
      outs: [out],
      values: { scale: 0.25, shape: [2, 4] },
    },
    {
      call: (b) => b.attention(x, x, y, x4b, false, 0.5, out),
      views: [x, x, y, x4b],
      outs: [out],
      values: { scale: 0.5, shape: [2, 4] },
    },
  ],
  lstmCell: [
    {
      call: (b) => b.lstmCell(xg, xh, out),
      views: [],
      list: [xg, xh],
      outs: [out],
      values: { shape: [2, 2] },
    },
  ],
  lstmCellBackward: [
    {
      call: (b) => b.lstmCellBackward(xg, xh, xh2, out),
      views: [],
      list: [xg, xh, xh2],
      outs: [out],
      values: { shape: [2, 5] },
    },
  ],
  gruCell: [
    {
      call: (b) => b.gruCell(x, y, xh, out),
      views: [],
      list: [x, y, xh],
      outs: [out],
      values: { shape: [2, 1] },
    },
  ],
  gruCellBackward: [
    {
      call: (b) => b.gruCellBackward(x, y, xh, xh, out),
      views: [],
      list: [x, y, xh, xh],
      outs: [out],
      values: { shape: [2, 7] },
    },
  ],
  attentionBackward: [
    {
      call: (b) => b.attentionBackward(x, x, y, null, xo, xo, true, 0.25, out),
      views: [],
      list: [x, x, y, xo, xo],
      outs: [out],
      values: { scale: 0.25, shape: [1, 2 * 3 + 2 * 3 + 2 * 3] },
    },
    {
      call: (b) => b.attentionBackward(x, x, y, x4b, xo, xo, false, 0.5, out),
      views: [],
      list: [x, x, y, x4b, xo, xo],
      outs: [out],
      values: { scale: 0.5, shape: [1, 18] },
    },
  ],
  adamUpdate: [
    {
      call: (b) => b.adamUpdate?.(out, x, out, out, out64, adamH),
      views: [x],
      outs: [out, out, out, out64],
      values: { ...adamH, decoupled: 1, maximize: 0 },
    },
    {
      call: (b) => b.adamUpdate?.(out, x, out, out, null, { ...adamH, decoupled: false, maximize: true }),
      views: [x],
      outs: [out, out, out, null],
      values: { ...adamH, decoupled: 0, maximize: 1 },
    },
  ],
};

/** dtype code of enum DType (common.h). */
function dtypeCode(a: TypedArray): number {
  return a instanceof Float32Array ? 0 : a instanceof Float64Array ? 1 : a instanceof Int32Array ? 2 : 3;
}

/**
 * Walk `meta` along the layout tokens, checking each field against the sample and that the typed arrays passed
 * (after `kind`, if the layout has one) are the sample's, in the layout's order; returns the count of meta numbers read.
 */
function walk(layout: string, meta: number[], args: unknown[], s: Sample, where: string): number {
  let pos = 0;
  let v = 0;
  let o = 0;
  let arg = layout.startsWith("kind") ? 1 : 0;
  const next = (what: string) => {
    assert.ok(
      pos < meta.length && !Number.isNaN(meta[pos]),
      `${where}: meta ends before ${what} (at ${pos})`,
    );
    return meta[pos++];
  };
  const checkView = (want: View, which: number | string, byValue: boolean) => {
    const a = args[arg++] as TypedArray;
    if (byValue) assert.deepEqual(a, want.data, `${where}: view ${which}'s contents (argument ${arg - 1})`);
    else assert.equal(a, want.data, `${where}: view ${which}'s array is argument ${arg - 1}`);
    const got = [next("dtype"), next("offset"), next("rank")];
    assert.deepEqual(got, [dtypeCode(want.data), want.offset, want.shape.length], `${where}: view ${which}`);
    const dims = Array.from({ length: 2 * want.shape.length }, () => next("shape/strides"));
    assert.deepEqual(dims, [...want.shape, ...want.strides], `${where}: view ${which} shape and strides`);
  };
  for (const tok of layout.split(" ")) {
    if (tok === "kind") continue; // the first argument, checked by the caller
    if (tok === "view" || tok === "view?" || tok === "idx") {
      const want = s.views[v++];
      assert.ok(want !== undefined, `${where}: the layout has more views than the call`);
      if (want === null) {
        assert.equal(tok, "view?", `${where}: a required view is absent`);
        assert.equal(args[arg++], null, `${where}: an absent view is passed as null`);
        continue;
      }
      checkView(want, v - 1, s.byValue?.includes(v - 1) ?? false);
    } else if (tok === "views[#]") {
      const list = s.list ?? [];
      assert.equal(next("the list's length"), list.length, `${where}: the list's length`);
      for (const [i, want] of list.entries()) checkView(want, `list ${i}`, false);
    } else if (/^out\??:(v0|v1|shape|kept|dot)$/.test(tok)) {
      const want = s.outs[o++];
      assert.ok(want !== undefined, `${where}: the layout has more outputs than the call`);
      assert.equal(args[arg++], want, `${where}: output ${o} is argument ${arg - 1}`);
      if (want === null) {
        assert.ok(tok.startsWith("out?"), `${where}: a required output is absent`);
        continue;
      }
      assert.equal(next("an output code"), dtypeCode(want), `${where}: output ${o} dtype code`);
    } else {
      assert.equal(v + o, 0, `${where}: numbers come before the arrays`);
      const m = /^(\w+)(?:\[(\d+|rank|#)\])?$/.exec(tok);
      assert.ok(m, `${where}: bad layout token '${tok}'`);
      const want = s.values[m[1]];
      assert.ok(want !== undefined, `${where}: the sample gives no value for '${m[1]}'`);
      if (m[2] === undefined) {
        assert.equal(next(m[1]), want, `${where}: ${m[1]}`);
        continue;
      }
      const list = typeof want === "number" ? [want] : want;
      const n = /^\d+$/.test(m[2]) ? Number(m[2]) : next(`${m[1]} count`);
      if (m[2] === "rank")
        assert.equal(n, s.views[0]?.shape.length, `${where}: ${m[1]} has one per dimension`);
      assert.equal(n, list.length, `${where}: ${m[1]} count`);
      assert.deepEqual(
        Array.from({ length: n }, () => next(m[1])),
        [...list],
        `${where}: ${m[1]}`,
      );
    }
  }
  assert.equal(v, s.views.length, `${where}: the call coded views the layout does not have`);
  assert.equal(o, s.outs.length, `${where}: the call coded outputs the layout does not have`);
  assert.equal(args.length, arg, `${where}: no arguments beyond the layout's arrays`);
  return pos;
}

test("native backend.ts packs the meta buffer in the order kernels.def's `meta` layouts give", () => {
  const fake = fakeAddon(def);
  const backend = createNativeBackend(fake.addon);
  assert.deepEqual(Object.keys(SAMPLES).sort(), [...SERVED].sort(), "a sample for every kernel");
  for (const f of def.families) {
    const serves = f.serves.split(" ");
    serves.forEach((method, kind) => {
      for (const [i, s] of (SAMPLES[method] ?? []).entries()) {
        const where = `${method} (sample ${i}, family ${f.name})`;
        fake.reset();
        fake.calls.length = 0;
        s.call(backend);
        assert.equal(fake.calls.length, 1, `${where}: one addon call`);
        const c = fake.calls[0];
        assert.equal(c.fn, f.name, `${where}: calls its family`);
        const read = walk(f.meta, c.meta, c.args, s, where);
        assert.ok(Number.isNaN(c.meta[read]), `${where}: wrote more meta than the layout has`);
        if (f.meta.startsWith("kind")) assert.equal(typeof c.args[0], "number", `${where}: kind first`);
        if (serves.length > 1) assert.equal(c.args[0], kind, `${where}: kind`);
      }
    });
  }
});

test("op codes and kinds come from the addon's description, not from a copy in TypeScript", () => {
  // reversed op lists and families: the backend must pass the reported positions
  const d: NativeDescription = { ...def, binary: [...def.binary].reverse(), unary: [...def.unary].reverse() };
  const fake = fakeAddon(d);
  const backend = createNativeBackend(fake.addon);
  backend.binary("sub", x, y, out);
  backend.unary("exp", x, out);
  assert.equal(fake.calls[0].args[0], d.binary.indexOf("sub"));
  assert.equal(fake.calls[1].args[0], d.unary.indexOf("exp"));
});
