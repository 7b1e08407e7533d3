/**
 * The wasm backend's fused kernels generated at run time (src/backend/wasm/codegen.ts): random programs over
 * every float op the wasm module has, every input layout, float32 and float64, sizes from empty to odd and
 * large, several outputs and outputs over their inputs' storage, give the bits of the unfused program on the
 * same backend (each instruction through wasm's own unary / binary kernels, then its reduce kernel) and of the
 * tile interpreter; reduction terminals too (`fusedReduce`). The modules are cached per program signature, and
 * jitted functions on wasm (fused reductions included) equal eager execution.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { Backend, FusedInstr, FusedReduce, UnaryOp, View } from "../src/backend/backend.ts";
import { fusedByOps, fusedProgram, reducedShape } from "../src/backend/fused.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { codegenStats, generate } from "../src/backend/wasm/codegen.ts";
import { setFusedCodegen } from "../src/backend/wasm/fused.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { jit, randn, type Tensor } from "../src/index.ts";
import { BINARY as ALL_BINARY, optimizerProgram, UNARY } from "./fuse-programs.ts";
import { prng } from "./prng.ts";

class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  choice<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }
}

function wasm(): Backend {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(r.error);
  return r.backend;
}

/** Every float binary op of the wasm module's fused kernels (atan2 has no wasm kernel). */
const BINARY = ALL_BINARY.filter((op) => op !== "atan2");
type Dtype = "float32" | "float64";
type Layout = "contiguous" | "broadcast" | "transposed" | "sliced" | "flipped" | "scalar";
const LAYOUTS: Layout[] = ["contiguous", "broadcast", "transposed", "sliced", "flipped", "scalar"];

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const typed = (dtype: Dtype, n: number) => (dtype === "float32" ? new Float32Array(n) : new Float64Array(n));

function contiguous(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

/** Equal bits, any NaN equal to any NaN (payloads are not specified). */
function assertSameBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)))) {
      assert.fail(`${what}: element ${i}: got ${a}, expected ${b}`);
    }
  }
}

/** A view of `shape` with `layout` over fresh data in [-3, 3] (some exact zeros, some special values). */
function makeView(rng: Rng, dtype: Dtype, shape: number[], layout: Layout): View {
  const nd = shape.length;
  const fill = (n: number) => {
    const d = typed(dtype, n);
    for (let i = 0; i < n; i++) {
      const u = rng.next();
      d[i] = u < 0.02 ? 0 : u < 0.03 ? -0 : u < 0.035 ? Number.POSITIVE_INFINITY : rng.next() * 6 - 3;
    }
    return d;
  };
  const n = size(shape);
  if (layout === "scalar" || n === 0 || nd === 0) {
    return { data: fill(3), shape, strides: shape.map(() => 0), offset: 1 };
  }
  if (layout === "broadcast") {
    const inner = shape.slice(1);
    return { data: fill(Math.max(1, size(inner))), shape, strides: [0, ...contiguous(inner)], offset: 0 };
  }
  if (layout === "transposed" && nd >= 2) {
    const sh = [...shape.slice(0, -2), shape[nd - 1], shape[nd - 2]];
    const st = contiguous(sh);
    return { data: fill(n), shape, strides: [...st.slice(0, -2), st[nd - 1], st[nd - 2]], offset: 0 };
  }
  if (layout === "sliced") {
    const sh = [...shape];
    sh[nd - 1] = 2 * shape[nd - 1] + 1;
    const st = contiguous(sh);
    return { data: fill(st[0] * sh[0] + 3), shape, strides: [...st.slice(0, -1), 2], offset: 3 };
  }
  if (layout === "flipped") {
    const st = contiguous(shape);
    return { data: fill(n), shape, strides: [...st.slice(0, -1), -1], offset: shape[nd - 1] - 1 };
  }
  return { data: fill(n + 2), shape, strides: contiguous(shape), offset: 2 };
}

/** A random program: inputs, a few consts, then ops over earlier registers (recent ones preferred). */
function randomInstrs(rng: Rng, nIn: number, nOps: number, unary = UNARY): FusedInstr[] {
  const instrs: FusedInstr[] = [];
  for (let k = 0; k < nIn; k++) instrs.push({ kind: "input", index: k });
  const nConst = rng.int(0, 3);
  for (let k = 0; k < nConst; k++)
    instrs.push({ kind: "const", value: rng.choice([0.5, -1.25, 2, 3, 0, 1e-3]) });
  for (let k = 0; k < nOps; k++) {
    const r = instrs.length;
    const pick = () => Math.max(0, r - 1 - rng.int(0, Math.min(r, 4)));
    if (rng.next() < 0.45) instrs.push({ kind: "unary", op: rng.choice(unary), a: pick() });
    else instrs.push({ kind: "binary", op: rng.choice(BINARY), a: pick(), b: rng.int(0, r) });
  }
  return instrs;
}

const SHAPES: number[][] = [
  [0],
  [1],
  [2],
  [3],
  [7],
  [3, 5],
  [4, 8],
  [6, 12],
  [1031],
  [4, 33, 9],
  [2, 1, 6],
  [],
];

describe("wasm fused kernels generated at run time", () => {
  const be = wasm();
  after(() => setFusedCodegen(true));

  test("the module for a program validates and compiles; one per signature, consts passed at run time", () => {
    const before = codegenStats.compiled;
    const instrs = (c: number): FusedInstr[] => [
      { kind: "input", index: 0 },
      { kind: "const", value: c },
      { kind: "binary", op: "mul", a: 0, b: 1 },
      { kind: "unary", op: "tanh", a: 2 },
    ];
    const x: View = {
      data: new Float32Array([-2, -0.5, 0, 0.25, 1, 3, 9]),
      shape: [7],
      strides: [1],
      offset: 0,
    };
    const out = new Float32Array(7);
    be.fused!(fusedProgram("float32", instrs(2)), [x], [out]);
    const once = codegenStats.compiled;
    assert.equal(once, before + 1);
    be.fused!(fusedProgram("float32", instrs(3)), [x], [out]);
    assert.equal(codegenStats.compiled, once, "a new const value reuses the module");
    // the last value: tanh(3 * 9) is within rounding of 1 (element 6 is in the scalar tail)
    assert.equal(out[6], 1);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(out[i] - Math.tanh(3 * x.data[i])) < 1e-6);
    const bytes = generate(
      {
        dtype: "float64",
        code: fusedProgram("float64", instrs(2)).code,
        numInputs: 1,
        numConsts: 1,
        layout: ["c"],
        scalarOnly: [false, false, false, false],
        outputs: [3],
        flush: false,
      },
      false,
    );
    assert.ok(WebAssembly.validate(bytes));
  });

  test("the float32 SIMD approximations are in use (the split between SIMD and scalar elements matters)", () => {
    // exp over 1031 contiguous elements: the first 1028 take the SIMD form, which differs from the float64
    // route rounded once (the js backend's) somewhere, the last 3 take the scalar form, which equals it
    const rng = new Rng(3);
    const x = makeView(rng, "float32", [1031], "contiguous");
    const prog = fusedProgram("float32", [
      { kind: "input", index: 0 },
      { kind: "unary", op: "exp", a: 0 },
    ]);
    const got = new Float32Array(1031);
    const ref = new Float32Array(1031);
    be.fused!(prog, [x], [got]);
    jsBackend.fused!(prog, [x], [ref]);
    let differ = 0;
    for (let i = 0; i < 1028; i++) if (!Object.is(got[i], ref[i])) differ++;
    assert.ok(differ > 0, "the SIMD exp should differ from the float64 route in some element");
    for (let i = 1028; i < 1031; i++) assert.ok(Object.is(got[i], ref[i]), `tail element ${i}`);
  });

  for (const dtype of ["float32", "float64"] as const) {
    test(`random programs equal the unfused program and the interpreter bit for bit, ${dtype}`, () => {
      const rng = new Rng(dtype === "float32" ? 101 : 102);
      const before = codegenStats.compiled;
      let cases = 0;
      for (const shape of SHAPES) {
        for (let trial = 0; trial < 12; trial++) {
          const nIn = rng.int(1, 4);
          const prog = fusedProgram(dtype, randomInstrs(rng, nIn, rng.int(1, 14)));
          const inputs = Array.from({ length: nIn }, (_, k) =>
            makeView(rng, dtype, shape, k === 0 && trial % 2 === 0 ? "contiguous" : rng.choice(LAYOUTS)),
          );
          const n = size(shape);
          const got = typed(dtype, n);
          const want = typed(dtype, n);
          const interp = typed(dtype, n);
          be.fused!(prog, inputs, [got]);
          fusedByOps(be, prog, inputs, [want]);
          setFusedCodegen(false);
          be.fused!(prog, inputs, [interp]);
          setFusedCodegen(true);
          assertSameBits(got, want, `${prog.key} on [${shape}]`);
          assertSameBits(got, interp, `${prog.key} on [${shape}] (interpreter)`);
          cases++;
        }
      }
      assert.ok(cases >= 120);
      assert.ok(codegenStats.compiled > before + 50, "the generated kernels ran");
    });
  }

  test("float32 exp, log, tanh, sigmoid reading inputs of every layout, fixed values and ops on them", () => {
    const rng = new Rng(5);
    for (const op of [
      "exp",
      "log",
      "tanh",
      "sigmoid",
      "sign",
      "sin",
      "tan",
      "erf",
      "expm1",
      "asin",
      "cosh",
      "log2",
    ] as UnaryOp[]) {
      for (const shape of [[7], [5, 6], [5, 8], [3, 9], [1031], [2, 4, 4]]) {
        for (const layout of LAYOUTS) {
          const prog = fusedProgram("float32", [
            { kind: "input", index: 0 },
            { kind: "unary", op, a: 0 },
            { kind: "const", value: 1.5 },
            { kind: "binary", op: "mul", a: 1, b: 2 },
            { kind: "unary", op, a: 3 },
            { kind: "unary", op, a: 2 }, // an op on a const: uniform, computed once
            { kind: "binary", op: "add", a: 2, b: 2 }, // two fixed operands: a contiguous intermediate
            { kind: "unary", op, a: 6 },
            { kind: "binary", op: "add", a: 4, b: 5 },
            { kind: "binary", op: "sub", a: 8, b: 7 },
          ]);
          const x = makeView(rng, "float32", shape, layout);
          const n = size(shape);
          const got = new Float32Array(n);
          const want = new Float32Array(n);
          be.fused!(prog, [x], [got]);
          fusedByOps(be, prog, [x], [want]);
          assertSameBits(got, want, `${op} on ${layout} [${shape}]`);
        }
      }
    }
  });

  test("several outputs, some over the storage of contiguous inputs (in place)", () => {
    const rng = new Rng(31);
    for (const dtype of ["float32", "float64"] as const) {
      for (const shape of [[0], [9], [1029], [40, 50], [3, 7, 5]]) {
        for (let trial = 0; trial < 6; trial++) {
          const nIn = rng.int(1, 4);
          const instrs = randomInstrs(rng, nIn, rng.int(2, 12));
          const ops = instrs.flatMap((ins, r) => (ins.kind === "unary" || ins.kind === "binary" ? [r] : []));
          const regs = new Set<number>([instrs.length - 1]);
          const k = Math.min(rng.int(1, 5), ops.length);
          while (regs.size < k) regs.add(rng.choice(ops));
          const outputs = [...regs].sort(() => rng.next() - 0.5);
          const prog = fusedProgram(dtype, instrs, outputs);
          const n = size(shape);
          const inputs = Array.from({ length: nIn }, () => makeView(rng, dtype, shape, rng.choice(LAYOUTS)));
          const outs = outputs.map(() => typed(dtype, n));
          for (let j = 0; j < Math.min(nIn, outs.length); j++) {
            if (rng.next() < 0.5) {
              const data = typed(dtype, n).map(() => rng.next() * 6 - 3);
              inputs[j] = { data, shape, strides: contiguous(shape), offset: 0 };
              outs[j] = data;
            }
          }
          const wants = outs.map(() => typed(dtype, n));
          fusedByOps(be, prog, inputs, wants);
          be.fused!(prog, inputs, outs);
          for (let j = 0; j < outs.length; j++) {
            assertSameBits(outs[j], wants[j], `${prog.key} out ${j} on [${shape}]`);
          }
        }
      }
    }
  });

  test("large sizes: streamed in several chunks, bias rows read periodically, outputs over inputs", () => {
    // chunks are a whole number of vectors; a broadcast row whose length divides into vectors is read with a
    // phase that continues across chunk boundaries
    const rng = new Rng(41);
    for (const dtype of ["float32", "float64"] as const) {
      for (const shape of [[70001], [200, 300], [64, 1024], [3, 5, 4099], [130, 70]]) {
        for (let trial = 0; trial < 3; trial++) {
          const nIn = rng.int(2, 5);
          const instrs = randomInstrs(rng, nIn, rng.int(4, 14));
          const ops = instrs.flatMap((ins, r) => (ins.kind === "unary" || ins.kind === "binary" ? [r] : []));
          const regs = new Set<number>([instrs.length - 1]);
          const k = Math.min(rng.int(1, 4), ops.length);
          while (regs.size < k) regs.add(rng.choice(ops));
          const outputs = [...regs];
          const prog = fusedProgram(dtype, instrs, outputs);
          const n = size(shape);
          const inputs = Array.from({ length: nIn }, (_, j) =>
            makeView(rng, dtype, shape, j === 1 ? "broadcast" : rng.choice(LAYOUTS)),
          );
          const outs = outputs.map(() => typed(dtype, n));
          if (trial > 0) {
            // input 0 contiguous, its storage also output 0
            const data = typed(dtype, n).map(() => rng.next() * 6 - 3);
            inputs[0] = { data, shape, strides: contiguous(shape), offset: 0 };
            outs[0] = data;
          }
          const wants = outs.map(() => typed(dtype, n));
          fusedByOps(be, prog, inputs, wants);
          be.fused!(prog, inputs, outs);
          for (let j = 0; j < outs.length; j++) {
            assertSameBits(outs[j], wants[j], `${prog.key} out ${j} on [${shape}]`);
          }
        }
      }
    }
  });

  test("reduction terminals (sum, max, min over any axes) equal the unfused program bit for bit", () => {
    const rng = new Rng(77);
    const red: [number[], number[]][] = [
      [[0], [0]],
      [[5], [0]],
      [[5], []],
      [[1031], [0]],
      [[3, 5], [1]],
      [[3, 5], [0]],
      [
        [3, 5],
        [0, 1],
      ],
      [[6, 0], [1]],
      [[128, 10], [1]],
      [[128, 10], [0]],
      [
        [4, 33, 9],
        [0, 2],
      ],
      [[4, 33, 9], [1]],
      [
        [2, 1, 6],
        [1, 2],
      ],
      [[7, 3, 8], [2]],
      [[], []],
    ];
    let cases = 0;
    for (const dtype of ["float32", "float64"] as const) {
      for (const [shape, axes] of red) {
        for (const op of ["sum", "max", "min"] as const) {
          if (op !== "sum" && size(shape) === 0) continue; // max / min of nothing never reaches a kernel
          for (let trial = 0; trial < 3; trial++) {
            const nIn = rng.int(1, 3);
            const instrs = randomInstrs(rng, nIn, rng.int(1, 8));
            const last = instrs.length - 1;
            const ops = instrs.flatMap((ins, r) =>
              ins.kind === "unary" || ins.kind === "binary" ? [r] : [],
            );
            const outputs = rng.next() < 0.5 ? [rng.choice(ops)] : [];
            const reduce: FusedReduce = { op, reg: last, axes };
            const prog = fusedProgram(dtype, instrs, outputs, reduce);
            const inputs = Array.from({ length: nIn }, () =>
              makeView(rng, dtype, shape, rng.choice(LAYOUTS)),
            );
            const n = size(shape);
            const kept = size(reducedShape(shape, axes));
            const outs = [...outputs.map(() => typed(dtype, n)), typed(dtype, kept).fill(7)];
            const wants = [...outputs.map(() => typed(dtype, n)), typed(dtype, kept)];
            be.fused!(prog, inputs, outs);
            fusedByOps(be, prog, inputs, wants);
            for (let j = 0; j < outs.length; j++) {
              assertSameBits(outs[j], wants[j], `${prog.key} out ${j} on [${shape}]`);
            }
            cases++;
          }
        }
      }
    }
    assert.ok(cases > 200);
  });

  test("the Adam programs (which flush subnormals) give the op-by-op bits with normal and special values", () => {
    // the float32 ones run flushing code (test/backend/wasm-fused-flush.test.ts): with no subnormal anywhere it
    // must not change a bit, signed zeros, NaN and infinities included; in place of m, v, p too (jit's donation)
    const rng = new Rng(57);
    const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 1e30, -1e-30, 1, -1];
    for (const dtype of ["float32", "float64"] as const) {
      for (const variant of ["adam", "adam-eps"] as const) {
        for (const scalarInputs of [false, true]) {
          for (const n of [1, 3, 4, 5, 8, 17, 1031, 70001]) {
            for (const [order, inPlace] of [
              [[0, 1, 2], false],
              [[1, 2, 0], true],
            ] as const) {
              const { prog, names } = optimizerProgram(dtype, variant, scalarInputs, [...order]);
              const inputs = names.map((name): View => {
                if (name === "a" || name === "c") {
                  const x = rng.next() < 0.8 ? rng.next() * 2 : rng.choice(SPECIAL);
                  return { data: typed(dtype, 1).fill(x), shape: [n], strides: [0], offset: 0 };
                }
                const d = typed(dtype, n).map(() => {
                  const u = rng.next();
                  if (u < 0.08) return rng.choice(SPECIAL);
                  return name === "v" ? rng.next() * 2 : rng.next() * 6 - 3;
                });
                return { data: d, shape: [n], strides: [1], offset: 0 };
              });
              const copies = inputs.map((v) => ({ ...v, data: v.data.slice() }));
              const wants = order.map(() => typed(dtype, n));
              fusedByOps(be, prog, copies, wants);
              // outputs m', v', p' (in `order`) over the storage of m, v, p
              const outs = order.map((o) =>
                inPlace ? inputs[names.indexOf(["m", "v", "p"][o])].data : typed(dtype, n),
              );
              be.fused!(prog, inputs, outs);
              for (let j = 0; j < outs.length; j++) {
                assertSameBits(
                  outs[j],
                  wants[j],
                  `${dtype} ${variant} scalars ${scalarInputs} n ${n} out ${j}`,
                );
              }
            }
          }
        }
      }
    }
  });

  test("biasAct runs the generated kernels: the unfused add then the unary kernel, bit for bit", () => {
    const rng = new Rng(91);
    for (const dtype of ["float32", "float64"] as const) {
      for (const act of ["relu", "tanh", "sigmoid"] as const) {
        for (const shape of [[0, 4], [7], [3, 5], [128, 512], [6, 12], [2, 3, 8], [33, 1031], []]) {
          const n = size(shape);
          const last = shape.length - 1;
          const rowLen = last >= 0 ? shape[last] : 1;
          const row = makeView(rng, dtype, [rowLen], "contiguous");
          const bias: View | null =
            shape.length === 0
              ? null
              : {
                  data: row.data,
                  shape,
                  strides: shape.map((_, d) => (d === last ? 1 : 0)),
                  offset: row.offset,
                };
          for (const layout of ["contiguous", "transposed", "sliced"] as const) {
            const x = makeView(rng, dtype, shape, layout);
            for (const b of [bias, null]) {
              const got = typed(dtype, n);
              be.biasAct(act, x, b, got);
              const sum = typed(dtype, n);
              const want = typed(dtype, n);
              if (b === null) be.unary(act, x, want);
              else {
                be.binary("add", x, b, sum);
                be.unary(act, { data: sum, shape, strides: contiguous(shape), offset: 0 }, want);
              }
              assertSameBits(got, want, `${dtype} ${act} ${layout} [${shape}] bias ${b !== null}`);
              // and within the SIMD approximations' few ulp of the js reference
              const ref = typed(dtype, n);
              jsBackend.biasAct(act, x, b, ref);
              for (let i = 0; i < n; i++) {
                if (Number.isNaN(ref[i])) assert.ok(Number.isNaN(got[i]));
                else if (got[i] === ref[i]) continue;
                else
                  assert.ok(
                    Math.abs(got[i] - ref[i]) <= 4e-7 * Math.abs(ref[i]) + 1e-30,
                    `js ${i}: ${got[i]} vs ${ref[i]} ${dtype} ${act}`,
                  );
              }
            }
          }
        }
      }
    }
  });

  test("actGrad runs the generated kernels: the js reference's bits (relu's select, rounded products)", () => {
    const rng = new Rng(93);
    for (const dtype of ["float32", "float64"] as const) {
      for (const act of ["relu", "tanh", "sigmoid"] as const) {
        for (const shape of [[0], [7], [3, 5], [128, 512], [4, 33, 9], []]) {
          for (const [ly, lc] of [
            ["contiguous", "contiguous"],
            ["transposed", "broadcast"],
            ["sliced", "flipped"],
            ["scalar", "contiguous"],
          ] as const) {
            const yv = makeView(rng, dtype, shape, ly);
            const data = yv.data.map((v) => (act === "relu" ? v : Math.tanh(v)));
            if (data.length > 2) {
              data[0] = Number.NaN;
              data[1] = -0;
            }
            const y = { ...yv, data };
            const ct = makeView(rng, dtype, shape, lc);
            const n = size(shape);
            const got = typed(dtype, n);
            const want = typed(dtype, n);
            be.actGrad(act, y, ct, got);
            jsBackend.actGrad(act, y, ct, want);
            assertSameBits(got, want, `${dtype} ${act} y ${ly} ct ${lc} [${shape}]`);
          }
        }
      }
    }
  });

  test("wasm declares fusedReduce; jitted reductions equal eager execution", () => {
    assert.equal(be.fusedReduce, true);
    const prev = getBackend();
    setBackend(be);
    try {
      const fns: [string, (x: Tensor, y: Tensor) => Tensor][] = [
        ["mse", (x, y) => x.sub(y).mul(x.sub(y)).mean()],
        ["log-sum-exp rows", (x) => x.sub(x.max(1, true)).exp().sum(1).log()],
        ["softmax", (x) => x.exp().div(x.exp().sum(-1, true))],
        ["tanh chain column sums", (x, y) => x.mul(y).tanh().add(x).sum(0)],
      ];
      for (const [name, f] of fns) {
        for (const shape of [
          [3, 5],
          [32, 100],
          [7, 1],
        ]) {
          const x = randn(shape);
          const y = randn(shape);
          const want = f(x, y).dataSync();
          const got = jit(f)(x, y).dataSync();
          assertSameBits(got, want, `${name} [${shape}]`);
        }
      }
    } finally {
      setBackend(prev);
    }
  });
});
