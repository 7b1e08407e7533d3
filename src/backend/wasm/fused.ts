/**
 * The wasm backend's fused kernel (`Backend.fused`, reduction terminals included: `fusedReduce`). By default
 * it runs a WebAssembly function generated for the program at run time (codegen.ts; one module per program
 * signature, cached): inputs staged into the arena (strided ones made contiguous by the copy kernel), one pass
 * over the elements with every register in a local, outputs copied out. A reduction terminal's register is
 * computed into the arena in that pass and then folded by the reduce kernel's own passes (reduce.ts
 * reduceStaged), so reductions give `reduce`'s bits; what fusion saves there is the separate kernel launches,
 * the tensor of the register and its copies in and out of wasm memory, not the pass over the register.
 *
 * The previous path, a tile interpreter in wasm/assembly/fused.ts (register tile buffers assigned by
 * liveness, consts and broadcast scalars as stride-0 values, strided inputs gathered per tile), stays behind
 * `setFusedCodegen(false)` for A/B measurements and tests; it runs elementwise programs only.
 *
 * One exception to the unfused kernels' bits, by design: a float32 program that is exactly Adam as jit traces it,
 * native's compiled patterns PatAdam and PatAdamEps (m' = m b1 + g (1 - b1); v' = v b2 + (g g) (1 - b2);
 * p' = p - m' a / (sqrt(v') c + eps), or with sqrt(v') + eps), or the library's own functional Adam and AdamW,
 * PatAdamLib and PatAdamWLib (p' = p [d] - (m' / (sqrt(v') / c + eps)) a) (the scalars consts or broadcast
 * inputs, the outputs in any order), matched op for op and operand for operand against the same patterns written
 * as data here (`isAdam`), runs with the multiplies' subnormal operands and products flushed to zero (codegen.ts
 * "Subnormals"), as the eager wasm Adam (wasm/assembly/optim.ts) does and close to native's FTZ and DAZ: as a
 * model converges, g^2 and then v fall below FLT_MIN, and a multiply on a subnormal takes a microcode assist on
 * Intel cores. With normal values its results are the
 * op-by-op bits. Momentum, float64 and every other program (operands swapped, another output) keep IEEE
 * subnormals. (A one-element program reads a broadcast input as a fixed value, so a parameter of shape [1]
 * matches; with inputs of shape [] nothing tells the step's scalars from the arrays, and only the consts form
 * matches.)
 *
 * Returns false, and the backend runs the program op by op through its own kernels (fused.ts's fusedByOps,
 * the same bits), for what neither reproduces exactly: an op outside the module's lists, atan2,
 * and a float32 unary op with a SIMD approximation reading an input whose rows the unfused kernel would split
 * into SIMD and scalar parts differently from a contiguous array (contiguous rows whose length is not a
 * multiple of 4, as in a slice). */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import { type Activation, BINARY_OPS, type FusedProgram, UNARY_OPS, type View } from "../backend.ts";
import {
  checkFusedArgs,
  FUSED_BINARY,
  FUSED_CONST,
  FUSED_INPUT,
  FUSED_UNARY,
  fusedProgram,
  fusedShape,
  reducedShape,
} from "../fused.ts";
import { assertOutSize, assertSameShape } from "../js/strided.ts";
import { APPROX_F32, type GenSpec, kernelFor, RELU_GRAD, scratchBytes } from "./codegen.ts";
import { coalesce, copyRaw, type Ctx, type Scope, stageIn, stageOut, withScope } from "./context.ts";
import { WASM_BINARY_OPS, WASM_UNARY_OPS } from "./elementwise.ts";
import { viewAt } from "./heap.ts";
import { reduceStaged } from "./reduce.ts";

/** Instruction kinds of the interpreter's descriptor (wasm/assembly/fused.ts). */
const FLAT = 0;
const GATHER = 1;
const FIXED = 2;
const UNARY = 3;
const BINARY = 4;
const SCALAR_ONLY = 1;
/** flags: an output register, written at its buffer pointer + the tile's offset (its staged output). */
const OUT_DIRECT = 2;

/** Elements per tile (a multiple of 4): a few KiB per register buffer, so a program's tiles stay in L1. */
const TILE = 512;

/**
 * Unary op codes (positions in UNARY_OPS) with a SIMD form in the wasm unary kernel, per dtype
 * (wasm/assembly/elementwise.ts hasVecF32 / hasVec without sign): where these read an input directly, the
 * input's layout decides which elements take the SIMD form.
 */
const VEC_F32 = new Set(
  [
    "neg",
    "abs",
    "sqrt",
    "relu",
    "floor",
    "ceil",
    "round",
    "sign",
    "exp",
    "log",
    "sigmoid",
    "tanh",
    "log1p",
    "expm1",
    "sin",
    "cos",
    "tan",
    "erf",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "log2",
    "log10",
    "gelu",
    "geluDeriv",
  ].map((op) => WASM_UNARY_OPS.indexOf(op as (typeof WASM_UNARY_OPS)[number])),
);
const VEC_F64 = new Set(
  ["neg", "abs", "sqrt", "relu", "floor", "ceil", "round"].map((op) =>
    WASM_UNARY_OPS.indexOf(op as (typeof WASM_UNARY_OPS)[number]),
  ),
);

/**
 * Whether `fused` runs generated code (codegen.ts; the default) or the tile interpreter. A switch for A/B
 * measurements and tests; both give the same bits.
 */
export function setFusedCodegen(on: boolean): void {
  useCodegen = on;
}
let useCodegen = true;

/** Run `prog` in wasm (see the module comment); false if it must run op by op. */
export function fused(
  c: Ctx,
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
): boolean {
  checkFusedArgs(prog, inputs, outs);
  const code = prog.code;
  const m = code.length >> 2;
  for (let i = 0; i < m; i++) {
    const k = code[4 * i];
    // the module's op codes are the contract's positions up to the end of its lists
    if (k === FUSED_BINARY && code[4 * i + 1] >= WASM_BINARY_OPS.length) return false;
    // atan2 has no form in the generated kernels: op by op (the binary kernel's bits)
    if (k === FUSED_BINARY && code[4 * i + 1] === ATAN2) return false;
    if (k === FUSED_UNARY && code[4 * i + 1] >= WASM_UNARY_OPS.length) return false;
  }
  const shape = fusedShape(inputs, outs);
  const n = sizeOf(shape);
  const red = prog.reduce;
  if (n === 0) {
    // the sum of nothing is 0 (max / min of an empty axis never reaches a kernel)
    if (red !== undefined) outs[outs.length - 1].fill(0, 0, sizeOf(reducedShape(shape, red.axes)));
    return true;
  }
  if (useCodegen) return withScope(c, (s) => generated(c, s, prog, inputs, outs, shape, n));
  if (red !== undefined) return false;
  return interpreted(c, prog, inputs, outs, shape, n);
}

/** Bytes of arena one chunk of the streamed operands may take (they stay in the L2 cache). */
const CHUNK_BYTES = 192 * 1024;

/**
 * `fused` through a generated kernel (codegen.ts). Contiguous inputs and the outputs are streamed: copied in
 * and out one chunk at a time (a whole number of vectors, so the SIMD / scalar split stays the unfused
 * kernel's), each chunk run while its operands are in cache, which also keeps an output over an input's
 * storage right (chunk k is read before it is written, later chunks after). Other inputs are staged whole: fixed
 * values (stride 0) and bias rows broadcast down (periodic) as they are, anything else made contiguous by the
 * copy kernel. With a reduction terminal the reduced register is also stored whole in the arena and folded by
 * `reduce`'s passes (reduce.ts reduceStaged). False (run op by op) for a float32 unary op with a SIMD
 * approximation (exp, log, tanh, sigmoid, log1p, sin, ...: codegen.ts APPROX_F32) reading directly an input whose rows the unfused kernel would split into SIMD and scalar parts differently
 * from a contiguous array.
 */
function generated(
  c: Ctx,
  s: Scope,
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
  shape: readonly number[],
  n: number,
): boolean {
  const code = prog.code;
  const m = code.length >> 2;
  const f32 = prog.dtype === "float32";
  const es = f32 ? 4 : 8;
  const lanes = 16 / es;
  const cs = contiguousStrides(shape);
  const layout: ("c" | "x" | "p")[] = [];
  const split: number[] = []; // 0 as a contiguous array, 1 strided rows (scalar), 2 rows not a multiple of 4
  const inPtr: number[] = []; // the staged pointer (-1: streamed)
  const period: number[] = [];
  const streamed: number[] = [];
  for (let k = 0; k < inputs.length; k++) {
    const v = inputs[k];
    period.push(0);
    inPtr.push(-1);
    if (n === 1 && v.strides.length > 0 && v.strides.every((x) => x === 0)) {
      // one element broadcast (contiguous too, a shape of 1s): a fixed value, as when there are more, so that an
      // Adam program's step scalars stay fixed (the same bits: one element is computed in scalar either way)
      layout.push("x");
      split.push(0);
      inPtr[k] = stageIn(c, s, v).ptr;
      continue;
    }
    if (isContiguous(v.shape, v.strides)) {
      layout.push("c");
      split.push(0);
      streamed.push(k);
      continue;
    }
    const X = stageIn(c, s, v);
    const g = coalesce(shape, [X.strides, cs]);
    if (g === null) return false;
    const nd = g.shape.length;
    const st = g.strides[0];
    const L = g.shape[nd - 1];
    // (the unary kernel's rows: SIMD on contiguous ones only; a fixed input's ops are computed in scalar)
    split.push(nd === 0 ? 0 : st[nd - 1] !== 1 ? 1 : L % 4 !== 0 ? 2 : 0);
    if (nd === 0 || (nd === 1 && st[0] === 1)) {
      layout.push("c");
      inPtr[k] = X.ptr;
    } else if (st.every((x) => x === 0)) {
      layout.push("x");
      inPtr[k] = X.ptr;
    } else if (nd === 2 && st[0] === 0 && st[1] === 1 && L % lanes === 0) {
      layout.push("p");
      inPtr[k] = X.ptr;
      period[k] = L * es;
    } else {
      layout.push("c");
      const p = s.alloc(n * es);
      copyRaw(c, es, shape, X, { ptr: p, strides: cs });
      inPtr[k] = p;
    }
  }
  const scalarOnly = new Array<boolean>(m).fill(false);
  for (let i = 0; i < m; i++) {
    const a = code[4 * i + 2];
    if (!f32 || code[4 * i] !== FUSED_UNARY || code[4 * a] !== FUSED_INPUT) continue;
    if (!APPROX_F32.has(code[4 * i + 1])) continue;
    const l = split[code[4 * a + 2]];
    if (l === 2) return false;
    scalarOnly[i] = l === 1;
  }
  const red = prog.reduce;
  const nOut = prog.outputs.length;
  const outRegs = Array.from(prog.outputs);
  let redPtr = -1;
  if (red !== undefined) {
    redPtr = s.alloc(n * es);
    outRegs.push(red.reg);
  }
  // chunks: a whole number of 64-element blocks, the streamed operands of one chunk within CHUNK_BYTES
  const perElem = (streamed.length + nOut) * es;
  const chunk = perElem === 0 ? n : Math.max(1024, Math.floor(CHUNK_BYTES / perElem / 64) * 64);
  const len0 = Math.min(n, chunk);
  const inChunk = streamed.map(() => s.alloc(len0 * es));
  const outChunk = outs.slice(0, nOut).map(() => s.alloc(len0 * es));
  const spec: GenSpec = {
    dtype: prog.dtype,
    code,
    numInputs: prog.numInputs,
    numConsts: prog.consts.length,
    layout,
    scalarOnly,
    outputs: outRegs,
    flush: f32 && red === undefined && isAdam(code, prog.outputs, layout),
  };
  const sb = scratchBytes(spec);
  const scratch = sb > 0 ? s.alloc(sb) : 0;
  const run = kernelFor(c.k, c.heap.memory, c.heap.shared, spec);
  const buf = c.heap.buffer;
  const inViews = streamed.map((_, j) => viewAt(buf, prog.dtype, inChunk[j], len0));
  const outViews = outChunk.map((p) => viewAt(buf, prog.dtype, p, len0));
  const args: number[] = [0];
  for (let k = 0; k < inputs.length; k++) args.push(0);
  for (let j = 0; j < outRegs.length; j++) args.push(j < nOut ? outChunk[j] : redPtr);
  const phaseAt = args.length;
  for (let k = 0; k < inputs.length; k++) if (layout[k] === "p") args.push(0, period[k]);
  args.push(scratch);
  for (let i = 0; i < prog.consts.length; i++) args.push(prog.consts[i]);
  for (let start = 0; start < n; start += chunk) {
    const len = Math.min(chunk, n - start);
    args[0] = len;
    streamed.forEach((k, j) => {
      const v = inputs[k];
      inViews[j].set(v.data.subarray(v.offset + start, v.offset + start + len));
      args[1 + k] = inChunk[j];
    });
    let q = phaseAt;
    for (let k = 0; k < inputs.length; k++) {
      if (layout[k] === "p") {
        args[1 + k] = inPtr[k];
        args[q] = (start * es) % period[k];
        q += 2;
      } else if (inPtr[k] >= 0) args[1 + k] = layout[k] === "x" ? inPtr[k] : inPtr[k] + start * es;
    }
    if (red !== undefined) args[1 + inputs.length + nOut] = redPtr + start * es;
    run(...args);
    for (let j = 0; j < nOut; j++) outs[j].set(outViews[j].subarray(0, len), start);
  }
  if (red !== undefined) {
    reduceStaged(
      c,
      s,
      red.op,
      prog.dtype,
      shape,
      { ptr: redPtr, strides: cs },
      red.axes,
      outs[outs.length - 1],
    );
  }
  return true;
}

// ------------------------------------------------------------------------------------ the Adam patterns

/**
 * A node of a pattern (as native/src/kernels/fused.cc's PNode): a flat input (variable v: any input that is
 * not fixed), a fixed value (variable v: a const or a broadcast scalar input), an earlier output j of the
 * pattern, sqrt of node a, a binary op of nodes a and b.
 */
type PatNode =
  | { readonly k: "flat"; readonly v: number }
  | { readonly k: "fixed"; readonly v: number }
  | { readonly k: "out"; readonly j: number }
  | { readonly k: "sqrt"; readonly a: number }
  | { readonly k: "bin"; readonly op: "add" | "sub" | "mul" | "div"; readonly a: number; readonly b: number };

/** A pattern: its nodes and, per output, its root node. */
interface Pattern {
  readonly nodes: readonly PatNode[];
  readonly roots: readonly number[];
}

const pF = (v: number): PatNode => ({ k: "flat", v });
const pS = (v: number): PatNode => ({ k: "fixed", v });
const pO = (j: number): PatNode => ({ k: "out", j });
const pSqrt = (a: number): PatNode => ({ k: "sqrt", a });
const pB = (op: "add" | "sub" | "mul" | "div", a: number, b: number): PatNode => ({ k: "bin", op, a, b });

/**
 * Adam as jit traces it, native's PatAdam: m' = m b1 + g (1 - b1); v' = v b2 + (g g) (1 - b2);
 * p' = p - m' a / (sqrt(v') c + eps). Flat variables m, g, v, p; fixed b1, 1 - b1, b2, 1 - b2, a, c, eps.
 */
const ADAM: Pattern = {
  // biome-ignore format: rows read better than one node per line
  nodes: [
    pF(0), pS(0), pB("mul", 0, 1), pF(1), pS(1), pB("mul", 3, 4), pB("add", 2, 5), // 6: m'
    pF(2), pS(2), pB("mul", 7, 8), pB("mul", 3, 3), pS(3), pB("mul", 10, 11), pB("add", 9, 12), // 13: v'
    pF(3), pO(0), pS(4), pB("mul", 15, 16), pO(1), pSqrt(18), pS(5), pB("mul", 19, 20), pS(6),
    pB("add", 21, 22), pB("div", 17, 23), pB("sub", 14, 24), // 25: p'
  ],
  roots: [6, 13, 25],
};

/** The same with the usual denominator, native's PatAdamEps: p' = p - m' a / (sqrt(v') + eps). */
const ADAM_EPS: Pattern = {
  // biome-ignore format: rows read better than one node per line
  nodes: [
    pF(0), pS(0), pB("mul", 0, 1), pF(1), pS(1), pB("mul", 3, 4), pB("add", 2, 5), // 6: m'
    pF(2), pS(2), pB("mul", 7, 8), pB("mul", 3, 3), pS(3), pB("mul", 10, 11), pB("add", 9, 12), // 13: v'
    pF(3), pO(0), pS(4), pB("mul", 15, 16), pO(1), pSqrt(18), pS(5), pB("add", 19, 20), pB("div", 17, 21),
    pB("sub", 14, 22), // 23: p'
  ],
  roots: [6, 13, 23],
};

/**
 * Adam as the library writes it (optim/functional.ts; makeTrainStep, the CLI's --jit), native's PatAdamLib:
 * p' = p - (m' / (sqrt(v') / c + eps)) a. Flat m, g, v, p; fixed b1, 1 - b1, b2, 1 - b2, c, eps, a.
 */
const ADAM_LIB: Pattern = {
  // biome-ignore format: rows read better than one node per line
  nodes: [
    ...ADAM.nodes.slice(0, 14), // m' (6) and v' (13), as in ADAM
    pF(3), pO(0), pO(1), pSqrt(16), pS(4), pB("div", 17, 18), pS(5), pB("add", 19, 20), pB("div", 15, 21),
    pS(6), pB("mul", 22, 23), pB("sub", 14, 24), // 25: p'
  ],
  roots: [6, 13, 25],
};

/** The same for AdamW, native's PatAdamWLib: p' = p d - (m' / (sqrt(v') / c + eps)) a. */
const ADAMW_LIB: Pattern = {
  nodes: [...ADAM_LIB.nodes.slice(0, 25), pS(7), pB("mul", 14, 25), pB("sub", 26, 24)], // 27: p'
  roots: [6, 13, 27],
};

const ADAM_PATTERNS = [ADAM, ADAM_EPS, ADAM_LIB, ADAMW_LIB];

const SQRT = UNARY_OPS.indexOf("sqrt");
const ATAN2 = BINARY_OPS.indexOf("atan2");
const BIN_CODE = {
  add: BINARY_OPS.indexOf("add"),
  sub: BINARY_OPS.indexOf("sub"),
  mul: BINARY_OPS.indexOf("mul"),
  div: BINARY_OPS.indexOf("div"),
};

/** A match in progress: per flat variable its input, per fixed variable its register, per output its position. */
interface Binding {
  readonly x: number[];
  readonly s: number[];
  readonly out: number[];
}

/**
 * Is `code` with `outputs` exactly pattern `pat` (its outputs in any order; op for op and operand for operand,
 * commutative operands not swapped)? `layout`: the inputs' layouts ("x": fixed).
 */
function matches(pat: Pattern, code: Int32Array, outputs: Int32Array, layout: readonly string[]): boolean {
  if (outputs.length !== pat.roots.length) return false;
  const isInput = (r: number) => code[4 * r] === FUSED_INPUT;
  const node = (i: number, r: number, b: Binding): boolean => {
    const nd = pat.nodes[i];
    const k = code[4 * r];
    switch (nd.k) {
      case "flat": {
        if (!isInput(r) || layout[code[4 * r + 2]] === "x") return false;
        const x = code[4 * r + 2];
        if (b.x[nd.v] >= 0) return b.x[nd.v] === x;
        b.x[nd.v] = x;
        return true;
      }
      case "fixed":
        if (!(k === FUSED_CONST || (isInput(r) && layout[code[4 * r + 2]] === "x"))) return false;
        if (b.s[nd.v] >= 0) return b.s[nd.v] === r;
        b.s[nd.v] = r;
        return true;
      case "out":
        return r === outputs[b.out[nd.j]];
      case "sqrt":
        return k === FUSED_UNARY && code[4 * r + 1] === SQRT && node(nd.a, code[4 * r + 2], b);
      default:
        return (
          k === FUSED_BINARY &&
          code[4 * r + 1] === BIN_CODE[nd.op] &&
          node(nd.a, code[4 * r + 2], b) &&
          node(nd.b, code[4 * r + 3], b)
        );
    }
  };
  // pattern output j against each program output not yet taken (backtracking over the orders)
  const outs = (j: number, b: Binding): boolean => {
    if (j === pat.roots.length) return true;
    for (let q = 0; q < outputs.length; q++) {
      if (b.out.includes(q)) continue;
      const t: Binding = { x: [...b.x], s: [...b.s], out: [...b.out, q] };
      if (node(pat.roots[j], outputs[q], t) && outs(j + 1, t)) return true;
    }
    return false;
  };
  return outs(0, { x: new Array<number>(8).fill(-1), s: new Array<number>(8).fill(-1), out: [] });
}

/**
 * Is the program one of the Adam patterns (so its generated kernel flushes subnormals, see the module comment)?
 * Momentum and every other program keep IEEE subnormals.
 */
function isAdam(code: Int32Array, outputs: Int32Array, layout: readonly string[]): boolean {
  return ADAM_PATTERNS.some((pat) => matches(pat, code, outputs, layout));
}

/** The programs of `biasAct`: act(x + b) or act(x), per dtype and activation. */
const ACT_PROGRAMS = new Map<string, FusedProgram>();

/**
 * `Backend.biasAct` in wasm: the program act(x + b) (or act(x)) through the generated kernels, so the result
 * is this backend's unfused add followed by its unary kernel, bit for bit (relu exact; float32 tanh and
 * sigmoid the unary kernel's SIMD approximations where it uses them). The bias, a row broadcast by stride 0,
 * is read periodically. False (the js kernel runs) for dtypes other than float32 / float64 or a layout the
 * generated kernel declines.
 */
export function biasAct(c: Ctx, act: Activation, x: View, b: View | null, out: TypedArray): boolean {
  const dt = dtypeOfTyped(out);
  if (dt !== "float32" && dt !== "float64") return false;
  if (dtypeOfTyped(x.data) !== dt || (b !== null && dtypeOfTyped(b.data) !== dt)) return false;
  const n = sizeOf(x.shape);
  assertOutSize("biasAct", out, n);
  if (b !== null) assertSameShape("biasAct", x.shape, b.shape);
  if (n === 0) return true;
  const key = `${dt} ${act} ${b === null ? 0 : 1}`;
  let prog = ACT_PROGRAMS.get(key);
  if (prog === undefined) {
    prog =
      b === null
        ? fusedProgram(dt, [
            { kind: "input", index: 0 },
            { kind: "unary", op: act, a: 0 },
          ])
        : fusedProgram(dt, [
            { kind: "input", index: 0 },
            { kind: "input", index: 1 },
            { kind: "binary", op: "add", a: 0, b: 1 },
            { kind: "unary", op: act, a: 2 },
          ]);
    ACT_PROGRAMS.set(key, prog);
  }
  const p = prog;
  return withScope(c, (s) => generated(c, s, p, b === null ? [x] : [x, b], [out], x.shape, n));
}

/** The programs of `actGrad`, per dtype and activation. */
const GRAD_PROGRAMS = new Map<string, FusedProgram>();

/**
 * `Backend.actGrad` in wasm through the generated kernels: relu ct where y > 0 else 0 (the generator's own
 * RELU_GRAD op), tanh ct (1 - y y), sigmoid ct (y (1 - y)), each op rounded to the dtype: the js kernel's
 * roundings, so the same bits. False (the js kernel runs) for other dtypes or a layout the kernels decline.
 */
export function actGrad(c: Ctx, act: Activation, y: View, ct: View, out: TypedArray): boolean {
  const dt = dtypeOfTyped(out);
  if (dt !== "float32" && dt !== "float64") return false;
  if (dtypeOfTyped(y.data) !== dt || dtypeOfTyped(ct.data) !== dt) return false;
  assertSameShape("actGrad", y.shape, ct.shape);
  const n = sizeOf(y.shape);
  assertOutSize("actGrad", out, n);
  if (n === 0) return true;
  const key = `${dt} ${act}`;
  let prog = GRAD_PROGRAMS.get(key);
  if (prog === undefined) {
    const yIn = { kind: "input", index: 0 } as const;
    const ctIn = { kind: "input", index: 1 } as const;
    const one = { kind: "const", value: 1 } as const;
    if (act === "relu") {
      // [y, ct, relu_grad(y, ct)]: built by hand, the op is the generator's own
      prog = {
        dtype: dt,
        instrs: [yIn, ctIn],
        code: Int32Array.from([FUSED_INPUT, 0, 0, 0, FUSED_INPUT, 0, 1, 0, FUSED_BINARY, RELU_GRAD, 0, 1]),
        consts: new Float64Array(0),
        numInputs: 2,
        outputs: Int32Array.from([2]),
        key: `${dt};relu_grad`,
      };
    } else if (act === "tanh") {
      prog = fusedProgram(dt, [
        yIn,
        ctIn,
        { kind: "binary", op: "mul", a: 0, b: 0 },
        one,
        { kind: "binary", op: "sub", a: 3, b: 2 },
        { kind: "binary", op: "mul", a: 1, b: 4 },
      ]);
    } else {
      prog = fusedProgram(dt, [
        yIn,
        ctIn,
        one,
        { kind: "binary", op: "sub", a: 2, b: 0 },
        { kind: "binary", op: "mul", a: 0, b: 3 },
        { kind: "binary", op: "mul", a: 1, b: 4 },
      ]);
    }
    GRAD_PROGRAMS.set(key, prog);
  }
  const p = prog;
  return withScope(c, (s) => generated(c, s, p, [y, ct], [out], y.shape, n));
}

/** `fused` through the tile interpreter (wasm/assembly/fused.ts); elementwise programs only. */
function interpreted(
  c: Ctx,
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
  shape: readonly number[],
  n: number,
): boolean {
  const code = prog.code;
  const m = code.length >> 2;
  const outputs = prog.outputs;
  const f32 = prog.dtype === "float32";
  const es = f32 ? 4 : 8;
  const vec = f32 ? VEC_F32 : VEC_F64;
  const outStrides = contiguousStrides(shape);
  return withScope(c, (s) => {
    // inputs: staged, classified
    const inKind: number[] = [];
    const inPtr: number[] = [];
    const inAux: number[] = [];
    const inScalarOnly: boolean[] = [];
    const inMixed: boolean[] = [];
    for (const v of inputs) {
      const X = stageIn(c, s, v);
      const g = coalesce(shape, [X.strides, outStrides]);
      if (g === null) return false;
      const nd = g.shape.length;
      const st = g.strides[0];
      inPtr.push(X.ptr);
      inScalarOnly.push(false);
      inMixed.push(false);
      if (nd === 0 || (nd === 1 && st[0] === 1)) {
        inKind.push(FLAT);
        inAux.push(0);
      } else if (st.every((x) => x === 0)) {
        inKind.push(FIXED);
        inAux.push(0);
      } else {
        inKind.push(GATHER);
        // the unfused unary kernel on this layout: rows of g.shape[nd - 1] with inner stride st[nd - 1]
        const L = g.shape[nd - 1];
        if (st[nd - 1] !== 1) inScalarOnly[inScalarOnly.length - 1] = true;
        else if (L % 4 !== 0) inMixed[inMixed.length - 1] = true;
        const gd = coalesce(shape, [X.strides])!;
        const gnd = gd.shape.length;
        const p = s.alloc(4 * (1 + 3 * gnd));
        const a = c.heap.i32;
        let q = p >> 2;
        a[q++] = gnd;
        for (let i = 0; i < gnd; i++) a[q++] = gd.shape[i];
        for (let i = 0; i < gnd; i++) a[q++] = gd.strides[0][i] * es;
        inAux.push(p);
      }
    }
    // instructions: kinds, flags, tile buffers by liveness
    const lastUse = new Int32Array(m).fill(-1);
    for (let i = 0; i < m; i++) {
      const k = code[4 * i];
      if (k >= 2) lastUse[code[4 * i + 2]] = i;
      if (k === FUSED_BINARY) lastUse[code[4 * i + 3]] = i;
    }
    const kinds = new Int32Array(m);
    const flags = new Int32Array(m);
    const buf = new Int32Array(m).fill(-1);
    const ptr = new Int32Array(m);
    const aux = new Int32Array(m);
    const free: number[] = [];
    let nbuf = 0;
    const isOut = new Uint8Array(m);
    for (const r of outputs) isOut[r] = 1;
    const constAt = s.alloc(Math.max(1, prog.consts.length) * es);
    const constView = viewAt(c.heap.buffer, prog.dtype, constAt, prog.consts.length);
    constView.set(prog.consts);
    for (let i = 0; i < m; i++) {
      const k = code[4 * i];
      const a = code[4 * i + 2];
      if (k === FUSED_INPUT) {
        kinds[i] = inKind[a];
        ptr[i] = inPtr[a];
        aux[i] = inAux[a];
      } else if (k === FUSED_CONST) {
        kinds[i] = FIXED;
        ptr[i] = constAt + a * es;
      } else {
        kinds[i] = k === FUSED_BINARY ? BINARY : UNARY;
        if (k !== FUSED_BINARY && code[4 * a] === FUSED_INPUT && vec.has(code[4 * i + 1])) {
          const src = code[4 * a + 2];
          if (inMixed[src]) return false;
          if (inScalarOnly[src]) flags[i] = SCALAR_ONLY;
        }
      }
      // operands whose last reader this is give their buffer back first (an op may write over its operand)
      if (k >= 2) {
        for (const r of k === FUSED_BINARY ? [a, code[4 * i + 3]] : [a]) {
          if (lastUse[r] === i && buf[r] >= 0 && !free.includes(buf[r])) free.push(buf[r]);
        }
      }
      if (isOut[i]) flags[i] |= OUT_DIRECT;
      else if (kinds[i] === GATHER || kinds[i] >= UNARY) buf[i] = free.pop() ?? nbuf++;
    }
    const staged = outs.map((o) => stageOut(c, s, o, n));
    const outAt = new Int32Array(m);
    outputs.forEach((r, j) => {
      outAt[r] = staged[j].ptr;
    });
    const tile = Math.min(TILE, Math.ceil(n / 4) * 4);
    const bufBase = s.alloc(Math.max(1, nbuf) * tile * es);
    const desc = s.alloc(32 * m);
    const cur = s.alloc(4 * m);
    const d = c.heap.i32;
    for (let i = 0; i < m; i++) {
      let q = (desc >> 2) + 8 * i;
      d[q++] = kinds[i];
      d[q++] = code[4 * i + 1];
      d[q++] = code[4 * i + 2];
      d[q++] = code[4 * i + 3];
      d[q++] = flags[i];
      d[q++] = isOut[i] ? outAt[i] : buf[i] >= 0 ? bufBase + buf[i] * tile * es : 0;
      d[q++] = ptr[i];
      d[q++] = aux[i];
    }
    c.k.fused(f32 ? 0 : 1, m, desc, cur, n, tile);
    for (const o of staged) o.finish();
    return true;
  });
}
