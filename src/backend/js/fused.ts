/**
 * The js backend's fused elementwise kernel (`Backend.fused`): each distinct program is compiled once into a
 * JavaScript function (`new Function`) whose loop body evaluates every register of the program for one element,
 * so a chain of n ops is one pass over memory instead of n. Registers are float64 numbers; for float32 each
 * instruction's result goes through Math.fround, exactly the rounding the unfused kernels' Float32Array stores
 * do, and every op calls the very scalar function the unary / binary kernels use: results are bit for bit the
 * unfused ones.
 *
 * Two loops per program: a flat one when every input is contiguous in the output's order or a single value
 * broadcast everywhere (the common case: registers of broadcast inputs, consts and whatever depends only on them
 * are computed once, before the loop), and a strided one (an odometer over the coalesced axes, one running
 * offset per input) for anything else. A program with a reduction terminal runs the strided loop folding each
 * element of the reduced register into a float64 accumulator in the order of the js `reduce` kernel (row-major
 * over the reduced axes), so its result is that kernel's bit for bit. Where code generation is refused (a Content-Security-Policy without
 * 'unsafe-eval'), an interpreter runs the program one instruction at a time over whole arrays.
 */
import { allocTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import type { BinaryOp, FusedProgram, UnaryOp, View } from "../backend.ts";
import { checkFusedArgs, fusedShape, reducedShape } from "../fused.ts";
import { BINARY, UNARY } from "./elementwise.ts";
import { reduce as jsReduce } from "./reduce.ts";
import { type Coalesced, coalesceAxes, contiguousData } from "./strided.ts";

/** Expressions of the ops written inline (the same arithmetic, or the same Math function, as UNARY/BINARY). */
const INLINE_UNARY: Partial<Record<UnaryOp, (a: string) => string>> = {
  neg: (a) => `-${a}`,
  abs: (a) => `Math.abs(${a})`,
  exp: (a) => `Math.exp(${a})`,
  log: (a) => `Math.log(${a})`,
  log1p: (a) => `Math.log1p(${a})`,
  expm1: (a) => `Math.expm1(${a})`,
  sqrt: (a) => `Math.sqrt(${a})`,
  sin: (a) => `Math.sin(${a})`,
  cos: (a) => `Math.cos(${a})`,
  tan: (a) => `Math.tan(${a})`,
  tanh: (a) => `Math.tanh(${a})`,
  floor: (a) => `Math.floor(${a})`,
  ceil: (a) => `Math.ceil(${a})`,
  asin: (a) => `Math.asin(${a})`,
  acos: (a) => `Math.acos(${a})`,
  atan: (a) => `Math.atan(${a})`,
  sinh: (a) => `Math.sinh(${a})`,
  cosh: (a) => `Math.cosh(${a})`,
  asinh: (a) => `Math.asinh(${a})`,
  acosh: (a) => `Math.acosh(${a})`,
  atanh: (a) => `Math.atanh(${a})`,
  log2: (a) => `Math.log2(${a})`,
  log10: (a) => `Math.log10(${a})`,
};
const INLINE_BINARY: Partial<Record<BinaryOp, (a: string, b: string) => string>> = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `${a} / ${b}`,
  maximum: (a, b) => `Math.max(${a}, ${b})`,
  minimum: (a, b) => `Math.min(${a}, ${b})`,
  atan2: (a, b) => `Math.atan2(${a}, ${b})`,
};

/** A compiled flat loop: data and offset per input, consts, outs, n. */
type FlatFn = (d: TypedArray[], o: number[], c: Float64Array, outs: readonly TypedArray[], n: number) => void;
/** A compiled strided loop: data, offset and strides per input, the coalesced shape, consts, outs, n. */
type StridedFn = (
  d: TypedArray[],
  o: number[],
  st: number[][],
  shape: number[],
  c: Float64Array,
  outs: readonly TypedArray[],
  n: number,
) => void;

/** Per input: 'f' contiguous in the output's order, 's' one value broadcast everywhere. */
type Pattern = string;

const flatCache = new Map<string, FlatFn>();
const stridedCache = new Map<string, StridedFn>();
const CACHE_LIMIT = 2048;
/** flatCache's functions per program object and input pattern (base-3 digits, see fusedChecked). */
const flatByProgram = new WeakMap<FusedProgram, Map<number, FlatFn>>();
/** Set when `new Function` throws (a CSP forbids it): the interpreter runs from then on. */
let noCodegen = false;

/** The expression of instruction i (register names r0, r1, ...), unrounded. */
function expr(prog: FusedProgram, i: number): string {
  const ins = prog.instrs[i];
  if (ins.kind === "unary") {
    const f = INLINE_UNARY[ins.op];
    return f !== undefined ? f(`r${ins.a}`) : `U_${ins.op}(r${ins.a})`;
  }
  if (ins.kind === "binary") {
    const f = INLINE_BINARY[ins.op];
    return f !== undefined ? f(`r${ins.a}`, `r${ins.b}`) : `B_${ins.op}(r${ins.a}, r${ins.b})`;
  }
  throw new Error("internal: expr of an input or const");
}

/** Declarations of the scalar helpers the program calls (those not written inline). */
function helpers(prog: FusedProgram): string {
  const seen = new Set<string>();
  let s = "";
  for (const ins of prog.instrs) {
    if (ins.kind === "unary" && INLINE_UNARY[ins.op] === undefined && !seen.has(`U_${ins.op}`)) {
      seen.add(`U_${ins.op}`);
      s += `const U_${ins.op} = U.${ins.op};\n`;
    } else if (ins.kind === "binary" && INLINE_BINARY[ins.op] === undefined && !seen.has(`B_${ins.op}`)) {
      seen.add(`B_${ins.op}`);
      s += `const B_${ins.op} = B.${ins.op};\n`;
    }
  }
  return s;
}

/**
 * The statements computing registers: those that vary per element go into `body` (reading inputs through
 * `load(index)`), the invariant ones (consts, broadcast inputs and what depends only on them) into `pre`.
 */
function statements(
  prog: FusedProgram,
  varying: (inputIndex: number) => boolean,
  load: (inputIndex: number) => string,
): { pre: string; body: string } {
  const f32 = prog.dtype === "float32";
  const inv: boolean[] = [];
  let pre = "";
  let body = "";
  let ci = 0;
  prog.instrs.forEach((ins, i) => {
    let line: string;
    let invariant: boolean;
    if (ins.kind === "input") {
      invariant = !varying(ins.index);
      line = `const r${i} = ${load(ins.index)};\n`;
    } else if (ins.kind === "const") {
      invariant = true;
      line = `const r${i} = C[${ci++}];\n`;
    } else {
      invariant = inv[ins.a] && (ins.kind === "unary" || inv[ins.b]);
      const e = expr(prog, i);
      line = `const r${i} = ${f32 ? `fr(${e})` : e};\n`;
    }
    inv.push(invariant);
    if (invariant) pre += line;
    else body += line;
  });
  return { pre, body };
}

/** Declarations of the output arrays (w0, w1, ...) and the statement storing element `at` of each. */
function stores(prog: FusedProgram, at: string): { decl: string; store: string } {
  let decl = "";
  let store = "";
  prog.outputs.forEach((r, j) => {
    decl += `const w${j} = W[${j}];\n`;
    store += `w${j}[${at}] = r${r};\n`;
  });
  return { decl, store };
}

function compileFlat(prog: FusedProgram, pattern: Pattern): FlatFn {
  const { pre, body } = statements(
    prog,
    (k) => pattern[k] === "f",
    (k) => (pattern[k] === "f" ? `d${k}[o${k} + i]` : `d${k}[o${k}]`),
  );
  let head = "";
  for (let k = 0; k < prog.numInputs; k++) head += `const d${k} = D[${k}], o${k} = O[${k}];\n`;
  const { decl, store } = stores(prog, "i");
  const src =
    `"use strict";\nconst fr = Math.fround;\n${helpers(prog)}` +
    `return function fusedFlat(D, O, C, W, n) {\n${head}${decl}${pre}` +
    `for (let i = 0; i < n; i++) {\n${body}${store}}\n};`;
  return new Function("U", "B", src)(UNARY, BINARY) as FlatFn;
}

function compileStrided(prog: FusedProgram): StridedFn {
  const K = prog.numInputs;
  const { pre, body } = statements(
    prog,
    () => true,
    (k) => `d${k}[p${k} + j * s${k}]`,
  );
  let head = "const nd = shape.length, last = nd - 1, L = shape[last];\n";
  head += "const idx = new Array(nd).fill(0);\n";
  let step = "";
  let back = "";
  for (let k = 0; k < K; k++) {
    head += `const d${k} = D[${k}], t${k} = ST[${k}], s${k} = t${k}[last];\nlet p${k} = O[${k}];\n`;
    step += `p${k} += t${k}[ax]; `;
    back += `p${k} -= t${k}[ax] * (shape[ax] - 1); `;
  }
  const { decl, store } = stores(prog, "i");
  const src =
    `"use strict";\nconst fr = Math.fround;\n${helpers(prog)}` +
    `return function fusedStrided(D, O, ST, shape, C, W, n) {\n${head}${decl}${pre}` +
    "let i = 0;\nwhile (i < n) {\nfor (let j = 0; j < L; j++) {\n" +
    `${body}${store}i++;\n}\n` +
    "for (let ax = last - 1; ax >= 0; ax--) {\n" +
    `if (++idx[ax] < shape[ax]) { ${step}break; }\nidx[ax] = 0; ${back}\n}\n}\n};`;
  return new Function("U", "B", src)(UNARY, BINARY) as StridedFn;
}

/** A compiled reducing loop: the strided loop's arguments, then the accumulators and their strides. */
type ReduceFn = (
  d: TypedArray[],
  o: number[],
  st: number[][],
  shape: number[],
  c: Float64Array,
  outs: readonly TypedArray[],
  n: number,
  acc: Float64Array,
  accStrides: number[],
) => void;
const reduceCache = new Map<string, ReduceFn>();

/**
 * The loop of a program with a reduction terminal: the strided loop (output row-major order), where each
 * element's value of the reduced register is also folded into its accumulator (a float64 number; its index
 * advances by `accStrides`: the reduced output's contiguous strides, 0 along reduced axes). Elements reach an
 * accumulator in row-major order of the reduced axes, the order of the js `reduce` kernel; while the innermost
 * axis is reduced, the accumulator is a local. Elementwise outputs are stored as in the plain loops.
 */
function compileReduce(prog: FusedProgram): ReduceFn {
  const K = prog.numInputs;
  const red = prog.reduce!;
  const { pre, body } = statements(
    prog,
    () => true,
    (k) => `d${k}[p${k} + j * s${k}]`,
  );
  const v = `r${red.reg}`;
  const fold =
    red.op === "sum"
      ? (a: string) => `${a} + ${v}`
      : red.op === "max"
        ? (a: string) => `(${v} > ${a} || ${v} !== ${v}) ? ${v} : ${a}`
        : (a: string) => `(${v} < ${a} || ${v} !== ${v}) ? ${v} : ${a}`;
  let head = "const nd = shape.length, last = nd - 1, L = shape[last];\n";
  head += "const idx = new Array(nd).fill(0);\nconst sa = AS[last];\nlet pa = 0;\n";
  let step = "pa += AS[ax]; ";
  let back = "pa -= AS[ax] * (shape[ax] - 1); ";
  for (let k = 0; k < K; k++) {
    head += `const d${k} = D[${k}], t${k} = ST[${k}], s${k} = t${k}[last];\nlet p${k} = O[${k}];\n`;
    step += `p${k} += t${k}[ax]; `;
    back += `p${k} -= t${k}[ax] * (shape[ax] - 1); `;
  }
  const { decl, store } = stores(prog, "i");
  const src =
    `"use strict";\nconst fr = Math.fround;\n${helpers(prog)}` +
    `return function fusedReduce(D, O, ST, shape, C, W, n, A, AS) {\n${head}${decl}${pre}` +
    "let i = 0;\nwhile (i < n) {\n" +
    `if (sa === 0) {\nlet a = A[pa];\nfor (let j = 0; j < L; j++) {\n${body}${store}a = ${fold("a")};\ni++;\n}\nA[pa] = a;\n}` +
    ` else {\nfor (let j = 0; j < L; j++) {\n${body}${store}const q = pa + j * sa;\nA[q] = ${fold("A[q]")};\ni++;\n}\n}\n` +
    "for (let ax = last - 1; ax >= 0; ax--) {\n" +
    `if (++idx[ax] < shape[ax]) { ${step}break; }\nidx[ax] = 0; ${back}\n}\n}\n};`;
  return new Function("U", "B", src)(UNARY, BINARY) as ReduceFn;
}

/** The accumulators' start: sum 0, max -Infinity, min +Infinity. */
function reduceInit(op: "sum" | "max" | "min"): number {
  return op === "sum" ? 0 : op === "max" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
}

/** Run a reducing program (compiled): accumulate, then store the reduced output (rounding to its dtype). */
function runReduce(
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
  shape: readonly number[],
  n: number,
): void {
  const red = prog.reduce!;
  const out = outs[outs.length - 1];
  const kshape = reducedShape(shape, red.axes);
  const k = sizeOf(kshape);
  const acc = new Float64Array(k).fill(reduceInit(red.op));
  if (n > 0) {
    const kst = contiguousStrides(kshape);
    const accStrides = new Array<number>(shape.length);
    for (let d = 0, j = 0; d < shape.length; d++) accStrides[d] = red.axes.includes(d) ? 0 : kst[j++];
    const fn = cached(reduceCache, prog.key, () => compileReduce(prog));
    const g = coalesce(shape, [...inputs.map((v) => v.strides), accStrides]);
    const as = g.strides.pop()!;
    fn(
      inputs.map((v) => v.data),
      inputs.map((v) => v.offset),
      g.strides,
      g.shape,
      prog.consts,
      outs,
      n,
      acc,
      as,
    );
  }
  for (let j = 0; j < k; j++) out[j] = acc[j];
}

function cached<F>(cache: Map<string, F>, key: string, make: () => F): F {
  let f = cache.get(key);
  if (f === undefined) {
    f = make();
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, f);
  }
  return f;
}

/** True if every element of `v` is the one at its offset (every stride of an axis longer than 1 is 0). */
function isBroadcastScalar(v: View): boolean {
  for (let d = 0; d < v.shape.length; d++) if (v.shape[d] !== 1 && v.strides[d] !== 0) return false;
  return true;
}

/** The iteration space of the inputs (output row-major) coalesced, with at least one axis (0-d: [1]). */
function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): Coalesced {
  const g = coalesceAxes(shape, strides);
  if (g.shape.length === 0) {
    g.shape.push(1);
    for (const st of g.strides) st.push(0);
  }
  return g;
}

/**
 * The interpreter (no code generation): one instruction at a time over whole arrays of the dtype, so each
 * store rounds as the unfused kernels do; the outputs are copied out at the end (an out may be an input's
 * storage).
 */
function interpret(
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
  n: number,
): void {
  type Reg = TypedArray | number;
  const regs: Reg[] = [];
  let ci = 0;
  prog.instrs.forEach((ins) => {
    if (ins.kind === "input") {
      regs.push(contiguousData(inputs[ins.index]));
      return;
    }
    if (ins.kind === "const") {
      regs.push(prog.consts[ci++]);
      return;
    }
    const dst = allocTyped(prog.dtype, n);
    const a = regs[ins.a];
    if (ins.kind === "unary") {
      const f = UNARY[ins.op];
      if (typeof a === "number") dst.fill(f(a), 0, n);
      else for (let j = 0; j < n; j++) dst[j] = f(a[j]);
    } else {
      const f = BINARY[ins.op];
      const b = regs[ins.b];
      for (let j = 0; j < n; j++) {
        dst[j] = f(typeof a === "number" ? a : a[j], typeof b === "number" ? b : b[j]);
      }
    }
    regs.push(dst);
  });
  prog.outputs.forEach((k, j) => {
    const r = regs[k];
    if (typeof r === "number") outs[j].fill(r, 0, n);
    else outs[j].set(r.subarray(0, n));
  });
  const red = prog.reduce;
  if (red !== undefined) {
    let r = regs[red.reg];
    if (typeof r === "number") r = allocTyped(prog.dtype, n).fill(r);
    const shape = fusedShape(inputs, outs);
    const x: View = { data: r, shape, strides: contiguousStrides(shape), offset: 0 };
    jsReduce(red.op, x, red.axes, outs[outs.length - 1]);
  }
}

/** Backend.fused of the js backend (see the module comment); reducing programs included (`fusedReduce`). */
export function fused(prog: FusedProgram, inputs: readonly View[], outs: readonly TypedArray[]): void {
  checkFusedArgs(prog, inputs, outs);
  fusedChecked(prog, inputs, outs);
}

/** `fused` on arguments checkFusedArgs has already passed (another backend's small programs run here). */
export function fusedChecked(prog: FusedProgram, inputs: readonly View[], outs: readonly TypedArray[]): void {
  const shape = fusedShape(inputs, outs);
  const n = sizeOf(shape);
  if (prog.reduce !== undefined && !noCodegen) {
    try {
      runReduce(prog, inputs, outs, shape, n);
      return;
    } catch (e) {
      if (!(e instanceof EvalError)) throw e;
      noCodegen = true;
    }
  }
  if (n === 0) {
    if (prog.reduce !== undefined) runReduce(prog, inputs, outs, shape, 0);
    return;
  }
  if (noCodegen) {
    interpret(prog, inputs, outs, n);
    return;
  }
  const D = inputs.map((v) => v.data);
  const O = inputs.map((v) => v.offset);
  try {
    // the inputs' pattern as base-3 digits (0 s, 1 f, 2 g: a broadcast scalar, flat, gathered)
    let digits = 0;
    let gathered = false;
    for (let i = inputs.length - 1; i >= 0; i--) {
      const v = inputs[i];
      const d = isBroadcastScalar(v) ? 0 : isContiguous(v.shape, v.strides) ? 1 : 2;
      gathered ||= d === 2;
      digits = digits * 3 + d;
    }
    if (!gathered) {
      // per program, by pattern (no key string built per call; the structural cache shares compiled code
      // between equal programs)
      let byPattern = flatByProgram.get(prog);
      if (byPattern === undefined) {
        byPattern = new Map();
        flatByProgram.set(prog, byPattern);
      }
      const exact = inputs.length <= 30;
      let fn = exact ? byPattern.get(digits) : undefined;
      if (fn === undefined) {
        let pattern = "";
        for (const v of inputs) {
          pattern += isBroadcastScalar(v) ? "s" : isContiguous(v.shape, v.strides) ? "f" : "g";
        }
        fn = cached(flatCache, `${prog.key}|${pattern}`, () => compileFlat(prog, pattern));
        if (exact) byPattern.set(digits, fn);
      }
      fn(D, O, prog.consts, outs, n);
      return;
    }
    const fn = cached(stridedCache, prog.key, () => compileStrided(prog));
    const g = coalesce(
      shape,
      inputs.map((v) => v.strides),
    );
    fn(D, O, g.strides, g.shape, prog.consts, outs, n);
  } catch (e) {
    // code generation refused (EvalError under a CSP): interpret from now on
    if (!(e instanceof EvalError)) throw e;
    noCodegen = true;
    interpret(prog, inputs, outs, n);
  }
}

/** Switch code generation off (tests of the interpreter) or back on; returns the previous setting. */
export function setFusedCodegen(on: boolean): boolean {
  const prev = !noCodegen;
  noCodegen = !on;
  return prev;
}
