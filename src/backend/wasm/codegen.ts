/**
 * Run-time code generation for jit's fused programs on the wasm backend: one small WebAssembly module per
 * program signature, written byte by byte here (no dependency), compiled with `new WebAssembly.Module`
 * (synchronous, fine for modules of a few hundred bytes) and cached by signature.
 *
 * The generated function `run(n, in_0 .. in_k-1, out_0 .. out_m-1, (phase, period) per periodic input,
 * const_0 ..)` evaluates the program over n contiguous elements of the shared wasm memory (the backend's arena,
 * imported as env.memory): each register is a local, so the chain makes one pass over memory with no tile
 * buffers. Inputs are contiguous arrays, fixed values (stride 0: read once, splat) or periodic rows (a bias
 * row broadcast down: element i reads row[(phase + i) mod period], the period a whole number of vectors);
 * the caller (fused.ts) makes any other layout contiguous first.
 *
 * Bit-identity with the unfused kernels (wasm/assembly/elementwise.ts) is kept by computing every element in
 * the form the unfused kernel uses for it:
 * - a SIMD loop over the first floor(n / L) * L elements (L = 4 lanes of float32, 2 of float64) and a scalar
 *   loop over the rest, which is where the unary kernel splits a contiguous row of n elements;
 * - + - * / max min: f32x4 / f64x2 ops and their scalar twins (exact IEEE, equal in both forms);
 * - float32 exp, log, tanh, sigmoid on the SIMD part: the same instruction sequences as math.ts (expF32x4,
 *   logF32x4, tanhF32x4, sigmoidF32x4) emitted inline; the other cheap unary ops as their SIMD instructions;
 * - the other float32 approximations of math.ts (log1p, expm1, sin, cos, tan, erf, ...) on the SIMD part: a call
 *   per vector of the kernel module's `unaryF32x4` export (imported as env.un4: a wasm-to-wasm call, v128 in and
 *   out), the very code the unary kernel runs, its scalar fallback for huge trigonometric arguments included;
 * - everything the unfused kernel computes in scalar float64 (the tails, pow, the unary ops without a SIMD form,
 *   a unary op reading a fixed value or a strided input): a call of the kernel module's own `unaryF64` /
 *   `powF64` exports, imported (the very code the unfused kernel runs), lane by lane;
 * - a unary op reading a fixed value (a const, a broadcast scalar) is computed once before the loops.
 *
 * Subnormals (`spec.flush`, set by fused.ts for the float32 Adam programs alone, as native runs its compiled Adam
 * patterns with FTZ and DAZ): WebAssembly has no such mode, and on Intel cores a multiply, divide or square root
 * with a subnormal operand or result takes a microcode assist (the jitted Adam update of 401,408 parameters took
 * 14 ms with g = 1e-20 against 0.6 with normal values); add and sub do not (measured on the Intel Xeon: full
 * speed with subnormal operands and results). So, following the eager kernel (wasm/assembly/optim.ts), no
 * multiply reads or makes a subnormal: lanes are zeroed by integer compares of their magnitude bits
 * (i32x4.lt_s, v128.andnot; the same on i32 in the scalar tail) before the multiplies alone:
 * - before a multiply by a fixed value c, the other operand's lanes below FLT_MIN / |c| (the bound computed once
 *   per call from c, with a 2^-20 margin upward as optim.ts flushBound, and at least FLT_MIN, so it also does the
 *   DAZ of an input read there), to a zero of their sign, so that the product is FTZ's (4 ops: the sign of that
 *   zero can reach the stored bits, m' = +-0 + +-0 or p - +-0). c = 0 zeroes every finite lane (x * 0 keeps its
 *   IEEE bits, NaN for an infinite x); a NaN or infinite c only the subnormal lanes;
 * - a square x * x: x below sqrt(FLT_MIN), or below sqrt(FLT_MIN / |c|) when the square is only multiplied by a
 *   fixed c (Adam's g^2 (1 - b2)), which then needs no flush of its own; to +0 (3 ops: a square's zero is +0
 *   whatever the operand's sign), x's magnitude shared with its other flush (g (1 - b1));
 * - fixed values once, before the loops; an input as loaded only when an op other than those multiplies, add and
 *   sub reads it (none in Adam: m, g, v are read by multiplies, p by the last sub).
 * add, sub and div results are not flushed: a subnormal there needs a near-cancellation (m') or an underflowing
 * quotient, rare, and the next step's flush before m * b1 catches a stored m' (Adam's v' = v b2 + g^2 (1 - b2)
 * never is one: both terms are 0 or at least FLT_MIN, so sqrt(v') never reads one either). The outputs are then those of
 * float32 op by op with each multiply's operand flushed so (test/backend/wasm-fused-flush.test.ts has the model),
 * and those of float32 with FTZ and DAZ wherever no add, sub or div result and no input read by add or sub is
 * subnormal (but a product within 2^-20 above FLT_MIN, flushed too); with no subnormal anywhere they are the
 * unfused kernels' bits. The SIMD loop, the scalar tail and the staged loops all flush (emitOp is shared). Adam
 * has 6 flushes per vector (5 with sqrt(v') + eps), 21 integer ops: 401,408 parameters, one thread of the Intel
 * Xeon, normal values 0.59-0.60 ms before flushing -> 0.75-0.77 (flushing after every op and every input too, as
 * first written: 1.2), g = 1e-20 14 -> 0.76 ms. The SIMD loop tests its condition at its end (after a check
 * before it), so that V8 hoists the splats of fixed values and bounds out of it (with the exit at its head they
 * were recomputed, or reloaded, in every iteration: Adam unflushed 0.59-0.60 -> 0.54-0.55 ms).
 */
import type { Kernels } from "./module.ts";

/** What a generated kernel is specialised on (its cache key is built from these). */
export interface GenSpec {
  readonly dtype: "float32" | "float64";
  /** The program's flat code (FusedProgram.code). */
  readonly code: Int32Array;
  readonly numInputs: number;
  readonly numConsts: number;
  /**
   * Per input: "c" a contiguous array, "x" one fixed value (every stride 0), "p" a periodic row (its length
   * a multiple of the vector's lanes).
   */
  readonly layout: readonly ("c" | "x" | "p")[];
  /** Per instruction: a unary op the unfused kernel computes in scalar at every element (strided operand). */
  readonly scalarOnly: readonly boolean[];
  /** The registers stored, in the order of the out pointers. */
  readonly outputs: readonly number[];
  /**
   * Flush subnormal values to zero (float32 only; fused.ts sets it for the Adam programs alone): see "Subnormals"
   * in the module comment. With it the results are no longer the unfused kernels' bits where a value is
   * subnormal.
   */
  readonly flush: boolean;
}

/**
 * A generated kernel: run(n, ...inputPointers, ...outputPointers, ...periodicPhasesAndPeriods, scratch,
 * ...consts); scratch: scratchBytes(spec) bytes.
 */
export type GenKernel = (...args: number[]) => void;

// ------------------------------------------------------------------------------------------- byte emitter

/** A growable byte buffer with the encodings of the binary format. */
class Bytes {
  readonly b: number[] = [];
  u8(...xs: number[]): this {
    for (const x of xs) this.b.push(x & 0xff);
    return this;
  }
  /** Unsigned LEB128. */
  uleb(x: number): this {
    do {
      let byte = x & 0x7f;
      x = Math.floor(x / 128);
      if (x !== 0) byte |= 0x80;
      this.b.push(byte);
    } while (x !== 0);
    return this;
  }
  /** Signed LEB128 (32-bit values). */
  sleb(x: number): this {
    x |= 0;
    for (;;) {
      const byte = x & 0x7f;
      x >>= 7;
      if ((x === 0 && (byte & 0x40) === 0) || (x === -1 && (byte & 0x40) !== 0)) {
        this.b.push(byte);
        return this;
      }
      this.b.push(byte | 0x80);
    }
  }
  f32(x: number): this {
    const v = new DataView(new ArrayBuffer(4));
    v.setFloat32(0, x, true);
    for (let i = 0; i < 4; i++) this.b.push(v.getUint8(i));
    return this;
  }
  f64(x: number): this {
    const v = new DataView(new ArrayBuffer(8));
    v.setFloat64(0, x, true);
    for (let i = 0; i < 8; i++) this.b.push(v.getUint8(i));
    return this;
  }
  str(s: string): this {
    this.uleb(s.length);
    for (let i = 0; i < s.length; i++) this.b.push(s.charCodeAt(i));
    return this;
  }
  append(o: Bytes): this {
    for (const x of o.b) this.b.push(x);
    return this;
  }
  /** A section: id, byte size, contents. */
  section(id: number, body: Bytes): this {
    return this.u8(id).uleb(body.b.length).append(body);
  }
}

/** Value types. */
const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;

/** Scalar opcodes. */
const OP = {
  block: 0x02,
  loop: 0x03,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  call: 0x10,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  f32Load: 0x2a,
  f64Load: 0x2b,
  f32Store: 0x38,
  f64Store: 0x39,
  i32Const: 0x41,
  f32Const: 0x43,
  f64Const: 0x44,
  select: 0x1b,
  i32LtS: 0x48,
  i32LtU: 0x49,
  i32GtS: 0x4a,
  i32GeU: 0x4f,
  f32Eq: 0x5b,
  f32Gt: 0x5e,
  f64Gt: 0x64,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32And: 0x71,
  i32Shl: 0x74,
  f32Abs: 0x8b,
  f64Sqrt: 0x9f,
  f32Add: 0x92,
  f32Sub: 0x93,
  f32Mul: 0x94,
  f32Div: 0x95,
  f32Min: 0x96,
  f32Max: 0x97,
  f64Add: 0xa0,
  f64Sub: 0xa1,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  f64Min: 0xa4,
  f64Max: 0xa5,
  f32DemoteF64: 0xb6,
  f64PromoteF32: 0xbb,
  i32ReinterpretF32: 0xbc,
  f32ReinterpretI32: 0xbe,
} as const;

/** SIMD opcodes (after the 0xfd prefix). */
const V = {
  load: 0,
  load32Splat: 9,
  load64Splat: 10,
  store: 11,
  const: 12,
  i32x4Splat: 17,
  f32x4Splat: 19,
  f64x2Splat: 20,
  f32x4Extract: 31,
  f32x4Replace: 32,
  f64x2Extract: 33,
  f64x2Replace: 34,
  f32x4Eq: 65,
  f32x4Ne: 66,
  f32x4Lt: 67,
  f32x4Gt: 68,
  i32x4LtS: 57,
  f64x2Gt: 74,
  and: 78,
  andnot: 79,
  or: 80,
  bitselect: 82,
  f32x4Ceil: 103,
  f32x4Floor: 104,
  f32x4Nearest: 106,
  f64x2Ceil: 116,
  f64x2Floor: 117,
  f64x2Nearest: 148,
  i32x4Shl: 171,
  i32x4ShrS: 172,
  i32x4Add: 174,
  i32x4Sub: 177,
  f32x4Abs: 224,
  f32x4Neg: 225,
  f32x4Sqrt: 227,
  f32x4Add: 228,
  f32x4Sub: 229,
  f32x4Mul: 230,
  f32x4Div: 231,
  f32x4Min: 232,
  f32x4Max: 233,
  f32x4Pmin: 234,
  f32x4Pmax: 235,
  f64x2Abs: 236,
  f64x2Neg: 237,
  f64x2Sqrt: 239,
  f64x2Add: 240,
  f64x2Sub: 241,
  f64x2Mul: 242,
  f64x2Div: 243,
  f64x2Min: 244,
  f64x2Max: 245,
  i32x4TruncSatF32x4S: 248,
  f32x4ConvertI32x4S: 250,
} as const;

/**
 * A vector expression: a local's index, an i32 constant (`{ i32 }`: a shift count), a v128 constant of four
 * float32 or int32 lanes, or an operation on sub-expressions (emitted operands first, then the opcode).
 */
type Expr = number | { i32: number } | { f32x4: number } | { i32x4: number } | { v: number; args: Expr[] };

/** The body of the one generated function: locals and code. */
class Func {
  readonly code = new Bytes();
  /** Code run first: the v128 constants, each set once into a local (hoisted out of the loops). */
  private readonly pre = new Bytes();
  private readonly consts = new Map<string, number>();
  private readonly localTypes: number[] = [];
  constructor(private readonly numParams: number) {}
  local(type: number): number {
    this.localTypes.push(type);
    return this.numParams + this.localTypes.length - 1;
  }
  op(...xs: number[]): this {
    this.code.u8(...xs);
    return this;
  }
  uleb(x: number): this {
    this.code.uleb(x);
    return this;
  }
  simd(v: number): this {
    this.code.u8(0xfd).uleb(v);
    return this;
  }
  get(l: number): this {
    this.code.u8(OP.localGet).uleb(l);
    return this;
  }
  set(l: number): this {
    this.code.u8(OP.localSet).uleb(l);
    return this;
  }
  i32(x: number): this {
    this.code.u8(OP.i32Const).sleb(x);
    return this;
  }
  /** memarg: alignment exponent, offset 0. */
  mem(align: number): this {
    this.code.uleb(align).uleb(0);
    return this;
  }
  /** Emit an expression (leaves its value on the stack). */
  emit(e: Expr): this {
    if (typeof e === "number") return this.get(e);
    if ("i32" in e) return this.i32(e.i32);
    if ("f32x4" in e || "i32x4" in e) return this.get(this.constant(e));
    for (const a of e.args) this.emit(a);
    return this.simd(e.v);
  }
  /** The local holding a v128 constant of four equal float32 or int32 lanes (set once, at the start). */
  constant(e: { f32x4: number } | { i32x4: number }): number {
    const v = new DataView(new ArrayBuffer(4));
    if ("f32x4" in e) v.setFloat32(0, e.f32x4, true);
    else v.setInt32(0, e.i32x4, true);
    const bits = v.getUint32(0, true);
    let l = this.consts.get(String(bits));
    if (l === undefined) {
      l = this.local(V128);
      this.consts.set(String(bits), l);
      this.pre.u8(0xfd).uleb(V.const);
      for (let lane = 0; lane < 4; lane++) for (let i = 0; i < 4; i++) this.pre.u8(v.getUint8(i));
      this.pre.u8(OP.localSet).uleb(l);
    }
    return l;
  }
  /** Emit `e` into a fresh v128 local and return it. */
  let(e: Expr): number {
    const l = this.local(V128);
    this.emit(e).set(l);
    return l;
  }
  /** The function body: local declarations (one entry per local), code, end. */
  body(): Bytes {
    const b = new Bytes().uleb(this.localTypes.length);
    for (const t of this.localTypes) b.uleb(1).u8(t);
    b.append(this.pre).append(this.code).u8(OP.end);
    return new Bytes().uleb(b.b.length).append(b);
  }
}

const x4 = (v: number, ...args: Expr[]): Expr => ({ v, args });
const c4 = (x: number): Expr => ({ f32x4: x });
const i4 = (x: number): Expr => ({ i32x4: x });

// ------------------------------------------------------------------ float32 SIMD math (as wasm/assembly/math.ts)

/** expF32x4: Cephes expf, the instruction sequence of math.ts. */
function expF32x4(f: Func, x0: Expr): number {
  const x = f.let(x4(V.f32x4Pmax, x4(V.f32x4Pmin, x0, c4(89)), c4(-104)));
  const n = f.let(x4(V.f32x4Nearest, x4(V.f32x4Mul, x, c4(Math.LOG2E))));
  let r = f.let(x4(V.f32x4Sub, x, x4(V.f32x4Mul, n, c4(0.693359375))));
  r = f.let(x4(V.f32x4Sub, r, x4(V.f32x4Mul, n, c4(-2.1219444e-4))));
  let p: Expr = c4(1.98756915e-4);
  for (const k of [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]) {
    p = f.let(x4(V.f32x4Add, x4(V.f32x4Mul, p, r), c4(k)));
  }
  const y = f.let(x4(V.f32x4Add, x4(V.f32x4Add, x4(V.f32x4Mul, x4(V.f32x4Mul, p, r), r), r), c4(1)));
  const ni = f.let(x4(V.i32x4TruncSatF32x4S, n));
  const h = f.let(x4(V.i32x4ShrS, ni, { i32: 1 }));
  const s1 = x4(V.i32x4Shl, x4(V.i32x4Add, h, i4(127)), { i32: 23 });
  const s2 = x4(V.i32x4Shl, x4(V.i32x4Add, x4(V.i32x4Sub, ni, h), i4(127)), { i32: 23 });
  return f.let(x4(V.f32x4Mul, x4(V.f32x4Mul, y, s1), s2));
}

/** sigmoidF32x4: 1 / (1 + exp(-x)). */
function sigmoidF32x4(f: Func, x: number): number {
  const e = expF32x4(f, x4(V.f32x4Neg, x));
  return f.let(x4(V.f32x4Div, c4(1), x4(V.f32x4Add, c4(1), e)));
}

/** tanhF32x4: Cephes tanhf, as math.ts. */
function tanhF32x4(f: Func, x: number): number {
  const ax = f.let(x4(V.f32x4Abs, x));
  const z = f.let(x4(V.f32x4Mul, x, x));
  let p: Expr = c4(-5.70498872745e-3);
  for (const k of [2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1]) {
    p = f.let(x4(V.f32x4Add, x4(V.f32x4Mul, p, z), c4(k)));
  }
  const small = f.let(x4(V.f32x4Add, x4(V.f32x4Mul, x4(V.f32x4Mul, p, z), x), x));
  const e = expF32x4(f, x4(V.f32x4Add, ax, ax));
  const bigAbs = x4(V.f32x4Sub, c4(1), x4(V.f32x4Div, c4(2), x4(V.f32x4Add, e, c4(1))));
  const big = x4(V.or, bigAbs, x4(V.and, x, i4(0x80000000 | 0)));
  return f.let(x4(V.bitselect, small, big, x4(V.f32x4Lt, ax, c4(0.625))));
}

/** logF32x4: Cephes logf, as math.ts. */
function logF32x4(f: Func, x0: number): number {
  const tiny = f.let(x4(V.f32x4Lt, x0, c4(1.17549435e-38)));
  const x = f.let(x4(V.bitselect, x4(V.f32x4Mul, x0, c4(8388608)), x0, tiny));
  let e = f.let(x4(V.i32x4Sub, x4(V.i32x4ShrS, x, { i32: 23 }), i4(126)));
  e = f.let(x4(V.bitselect, x4(V.i32x4Sub, e, i4(23)), e, tiny));
  let m = f.let(x4(V.or, x4(V.and, x, i4(0x807fffff | 0)), i4(0x3f000000)));
  const below = f.let(x4(V.f32x4Lt, m, c4(Math.SQRT1_2)));
  e = f.let(x4(V.i32x4Add, e, below));
  m = f.let(x4(V.f32x4Add, x4(V.f32x4Sub, m, c4(1)), x4(V.and, m, below)));
  const z = f.let(x4(V.f32x4Mul, m, m));
  let y: Expr = c4(7.0376836292e-2);
  for (const k of [
    -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
    -2.4999993993e-1, 3.3333331174e-1,
  ]) {
    y = f.let(x4(V.f32x4Add, x4(V.f32x4Mul, y, m), c4(k)));
  }
  y = f.let(x4(V.f32x4Mul, x4(V.f32x4Mul, y, m), z));
  const fe = f.let(x4(V.f32x4ConvertI32x4S, e));
  y = f.let(x4(V.f32x4Add, y, x4(V.f32x4Mul, fe, c4(-2.1219444e-4))));
  y = f.let(x4(V.f32x4Sub, y, x4(V.f32x4Mul, z, c4(0.5))));
  let r = f.let(x4(V.f32x4Add, x4(V.f32x4Add, m, y), x4(V.f32x4Mul, fe, c4(0.693359375))));
  r = f.let(x4(V.bitselect, x0, r, x4(V.f32x4Eq, x0, c4(Infinity))));
  r = f.let(x4(V.bitselect, x0, r, x4(V.f32x4Ne, x0, x0)));
  r = f.let(x4(V.bitselect, c4(-Infinity), r, x4(V.f32x4Eq, x0, c4(0))));
  return f.let(x4(V.bitselect, c4(Number.NaN), r, x4(V.f32x4Lt, x0, c4(0))));
}

// ------------------------------------------------------------------------------------------- op tables

/** Unary op codes (positions in UNARY_OPS, the wasm module's codes). */
const U = {
  neg: 0,
  abs: 1,
  sign: 2,
  exp: 3,
  log: 4,
  log1p: 5,
  expm1: 6,
  sqrt: 7,
  sin: 8,
  cos: 9,
  tan: 10,
  tanh: 11,
  sigmoid: 12,
  erf: 13,
  relu: 14,
  floor: 15,
  ceil: 16,
  round: 17,
  asin: 19,
  acos: 20,
  atan: 21,
  sinh: 22,
  cosh: 23,
  asinh: 24,
  acosh: 25,
  atanh: 26,
  log2: 27,
  log10: 28,
  gelu: 29,
  geluDeriv: 30,
} as const;
/** Binary op codes (positions in BINARY_OPS). */
const B = { add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6 } as const;
/**
 * A binary op code of the generator's own, outside BINARY_OPS (never in a FusedProgram): a > 0 ? b : 0, with
 * 0 for a NaN `a` (relu's gradient through its output, `actGrad`).
 */
export const RELU_GRAD = 64;

/** Binary ops with a vector form: [f32x4 op, f64x2 op, f32 op, f64 op]. */
const BIN: Record<number, readonly [number, number, number, number]> = {
  [B.add]: [V.f32x4Add, V.f64x2Add, OP.f32Add, OP.f64Add],
  [B.sub]: [V.f32x4Sub, V.f64x2Sub, OP.f32Sub, OP.f64Sub],
  [B.mul]: [V.f32x4Mul, V.f64x2Mul, OP.f32Mul, OP.f64Mul],
  [B.div]: [V.f32x4Div, V.f64x2Div, OP.f32Div, OP.f64Div],
  [B.maximum]: [V.f32x4Max, V.f64x2Max, OP.f32Max, OP.f64Max],
  [B.minimum]: [V.f32x4Min, V.f64x2Min, OP.f32Min, OP.f64Min],
};

/**
 * The float32 unary ops whose SIMD form (math.ts) the generated code calls from the kernel module (its export
 * unaryF32x4, imported as env.un4) rather than emitting it inline: a call per vector, the unary kernel's bits.
 */
const CALLED_F32 = new Set<number>([
  U.log1p,
  U.expm1,
  U.sin,
  U.cos,
  U.tan,
  U.erf,
  U.asin,
  U.acos,
  U.atan,
  U.sinh,
  U.cosh,
  U.asinh,
  U.acosh,
  U.atanh,
  U.log2,
  U.log10,
  U.gelu,
  U.geluDeriv,
]);

/** The unary ops the unfused kernel computes with SIMD on contiguous rows, per dtype (elementwise.ts). */
const VEC_UNARY_F32 = new Set<number>([
  U.neg,
  U.abs,
  U.sqrt,
  U.relu,
  U.floor,
  U.ceil,
  U.round,
  U.sign,
  U.exp,
  U.log,
  U.sigmoid,
  U.tanh,
  ...CALLED_F32,
]);
const VEC_UNARY_F64 = new Set<number>([U.neg, U.abs, U.sqrt, U.relu, U.floor, U.ceil, U.round]);

/** The float32 unary ops whose SIMD form differs from the scalar one (approximations). */
export const APPROX_F32 = new Set<number>([U.exp, U.log, U.sigmoid, U.tanh, ...CALLED_F32]);

// ------------------------------------------------------------------------------------------- generation

/** Import indices of the kernel module's scalar functions. */
const F_UNARY = 0;
const F_POW = 1;
const F_UNARY4 = 2;

/** Bits of float32's smallest normal value, FLT_MIN = 2^-126. */
const FLT_MIN_BITS = 0x00800000;
/** The magnitude and sign bits of a float32. */
const ABS_BITS = 0x7fffffff;
const SIGN_BITS = 0x80000000 | 0;
/**
 * The flush bound of a square x * x: sqrt(FLT_MIN) = 2^-63 with a margin of 2^-20 upward, so that |x| at or above
 * it gives x * x >= FLT_MIN.
 */
const SQUARE_BITS = new Int32Array(Float32Array.of(2 ** -63 * (1 + 2 ** -20)).buffer)[0];
/** The margin of a bound FLT_MIN / |c| (rounded to float32 afterwards, well within it). */
const BOUND_MARGIN = 1 + 2 ** -20;
/** preBound of a square (see generate). */
const SQUARE = -2;

/** Bytes of one scratch slot: a tile of a value that crosses stages (see stagePlan). */
const TILE_BYTES = 2048;

/** Ops that are long instruction sequences or calls: the float32 SIMD approximations, the lane-wise ops. */
function heavy(spec: GenSpec, i: number): boolean {
  const k = spec.code[4 * i];
  const op = spec.code[4 * i + 1];
  if (k === 3) return op === B.pow;
  if (k !== 2) return false;
  const f32 = spec.dtype === "float32";
  if (!(f32 ? VEC_UNARY_F32 : VEC_UNARY_F64).has(op) || spec.scalarOnly[i]) return true;
  return f32 && APPROX_F32.has(op);
}

/**
 * How the SIMD part is split into stages (loop fission): a program with several heavy ops (exp, log, tanh,
 * sigmoid, pow, calls) runs tile by tile, one loop per stage and at most one heavy op per stage, because one
 * loop holding all of them ran up to 1.4x slower than separate loops (register pressure: x64 V8 has 16 vector
 * registers). A value read in a later stage than its own is stored to a scratch slot of TILE_BYTES. Returns each
 * instruction's stage, each slot (-1: none), the counts.
 */
function stagePlan(spec: GenSpec): { stage: Int32Array; slot: Int32Array; stages: number; slots: number } {
  const code = spec.code;
  const m = code.length >> 2;
  const stage = new Int32Array(m);
  let st = 0;
  let hasHeavy = false;
  for (let i = 0; i < m; i++) {
    if (code[4 * i] < 2) continue;
    if (heavy(spec, i)) {
      if (hasHeavy) st++;
      hasHeavy = true;
    }
    stage[i] = st;
  }
  const slot = new Int32Array(m).fill(-1);
  let slots = 0;
  if (st > 0) {
    for (let i = 0; i < m; i++) {
      const k = code[4 * i];
      if (k < 2) continue;
      const later = (r: number) => r === i;
      for (let j = i + 1; j < m; j++) {
        if (code[4 * j] < 2 || stage[j] === stage[i]) continue;
        if (later(code[4 * j + 2]) || (code[4 * j] === 3 && later(code[4 * j + 3]))) {
          slot[i] = slots++;
          break;
        }
      }
    }
  }
  return { stage, slot, stages: st + 1, slots };
}

/** Bytes of scratch the generated kernel for `spec` needs (its scratch pointer; 0: none). */
export function scratchBytes(spec: GenSpec): number {
  return stagePlan(spec).slots * TILE_BYTES;
}

/** The cache key of a spec. */
export function specKey(s: GenSpec): string {
  let k = `${s.dtype}|${s.code.join(",")}|${s.numInputs}|${s.numConsts}|`;
  k += s.layout.join("");
  k += `|${s.scalarOnly.map((x) => (x ? 1 : 0)).join("")}|${s.outputs.join(",")}|${s.flush ? 1 : 0}`;
  return k;
}

/** The bytes of the module for `spec` (imports env.memory, env.un, env.pow, env.un4; exports run). */
export function generate(spec: GenSpec, sharedMemory: boolean): Uint8Array<ArrayBuffer> {
  const f32 = spec.dtype === "float32";
  const T = f32 ? F32 : F64;
  const es = f32 ? 4 : 8;
  const lanes = 16 / es;
  const code = spec.code;
  const m = code.length >> 2;
  const nIn = spec.numInputs;
  const nOut = spec.outputs.length;
  // params: n, input pointers, output pointers, consts
  const P_N = 0;
  const pIn = (k: number) => 1 + k;
  const pOut = (j: number) => 1 + nIn + j;
  const periodic = spec.layout.flatMap((l, k) => (l === "p" ? [k] : []));
  const pPhase = (k: number) => 1 + nIn + nOut + 2 * periodic.indexOf(k);
  const pScratch = 1 + nIn + nOut + 2 * periodic.length;
  const pConst = (c: number) => pScratch + 1 + c;
  const params = [
    I32,
    ...new Array<number>(nIn + nOut + 2 * periodic.length + 1).fill(I32),
    ...new Array<number>(spec.numConsts).fill(T),
  ];
  const f = new Func(params.length);
  const off = f.local(I32);
  const vend = f.local(I32);
  const end = f.local(I32);
  const kind = (i: number) => code[4 * i];
  const isFixed = (i: number) => (kind(i) === 0 && spec.layout[code[4 * i + 2]] === "x") || kind(i) === 1;
  const vSplat = f32 ? V.f32x4Splat : V.f64x2Splat;
  const load = f32 ? OP.f32Load : OP.f64Load;
  const align = f32 ? 2 : 3;

  // ---- subnormals (spec.flush, float32 only; see "Subnormals" in the module comment). No multiply reads or makes
  // a subnormal: an operand multiplied by a fixed value c is flushed below FLT_MIN / |c| before (a bound of at
  // least FLT_MIN, so it also stands for the DAZ of an input read there), x * x below sqrt(FLT_MIN), or below
  // sqrt(FLT_MIN / |c|) when the square is only multiplied by a fixed c (that product then needs no flush of its
  // own); fixed values are flushed once, an input as loaded only when an op other than those multiplies, add and
  // sub reads it. add and sub results are not flushed (nor div's, sqrt's is never subnormal).
  const flush = f32 && spec.flush;
  /** Per multiply: the operand flushed before it (-1: none) and its bound (a fixed register's, or SQUARE). */
  const preReg = new Int32Array(m).fill(-1);
  const preBound = new Int32Array(m).fill(-1);
  /** Per square: the fixed register c of the one multiply reading it (-1: none), whose bound it takes on. */
  const sqBy = new Int32Array(m).fill(-1);
  /** Per register: an input flushed below FLT_MIN as loaded (DAZ). */
  const post = new Uint8Array(m);
  if (flush) {
    for (let i = 0; i < m; i++) {
      if (kind(i) !== 3 || code[4 * i + 1] !== B.mul) continue;
      const a = code[4 * i + 2];
      const b = code[4 * i + 3];
      if (a === b && !isFixed(a)) {
        preReg[i] = a;
        preBound[i] = SQUARE;
      } else if (isFixed(a) !== isFixed(b)) {
        preReg[i] = isFixed(b) ? a : b;
        preBound[i] = isFixed(b) ? b : a;
      }
    }
    // a square read only by a multiply by a fixed value: flushed against both at once
    const readers = (r: number) => {
      let n = spec.outputs.includes(r) ? 2 : 0;
      for (let j = 0; j < m; j++) {
        if (kind(j) >= 2 && code[4 * j + 2] === r) n++;
        if (kind(j) === 3 && code[4 * j + 3] === r) n++;
      }
      return n;
    };
    for (let j = 0; j < m; j++) {
      const i = preReg[j];
      if (i < 0 || preBound[j] < 0 || preBound[i] !== SQUARE || readers(i) !== 1) continue;
      sqBy[i] = preBound[j];
      preReg[j] = -1;
      preBound[j] = -1;
    }
    // DAZ for an input some op reads unflushed, but add and sub: on the Intel Xeon they take subnormal operands
    // (and make subnormal results) at full speed, where mul, div and sqrt take a microcode assist
    for (let j = 0; j < m; j++) {
      const k = kind(j);
      if (k < 2) continue;
      const op = code[4 * j + 1];
      if (k === 3 && (op === B.add || op === B.sub)) continue;
      for (const r of k === 3 ? [code[4 * j + 2], code[4 * j + 3]] : [code[4 * j + 2]])
        if (kind(r) === 0 && !isFixed(r) && preReg[j] !== r) post[r] = 1;
    }
  }
  const bits = flush ? f.local(I32) : -1;
  /** The magnitude bits of each vector value flushed (by its local), computed once per value. */
  const mags = new Map<number, number>();
  const magOf = (x: number): number => {
    let r = mags.get(x);
    if (r === undefined) {
      r = f.let(x4(V.and, x, i4(ABS_BITS)));
      mags.set(x, r);
    }
    return r;
  };
  /**
   * Vector x with each lane whose magnitude is below `bound` (positive float32 bits) cleared: to a zero of its
   * sign (4 ops, the magnitude shared between flushes of x), or to +0 where the sign cannot matter (3 ops).
   */
  const flushV = (x: number, bound: Expr, keepSign = true): number => {
    const lt = x4(V.i32x4LtS, magOf(x), bound);
    return f.let(x4(V.andnot, x, keepSign ? x4(V.and, lt, i4(ABS_BITS)) : lt));
  };
  /** The scalar flushV (keeping the sign) into local `to`; `bound` emits the bound's bits (i32). */
  const flushS = (x: number, to: number, bound: () => void) => {
    f.get(x).op(OP.i32ReinterpretF32).set(bits);
    f.get(bits).i32(SIGN_BITS).op(OP.i32And).get(bits);
    f.get(bits).i32(ABS_BITS).op(OP.i32And);
    bound();
    f.op(OP.i32LtS, OP.select, OP.f32ReinterpretI32).set(to);
  };
  const daz = () => f.i32(FLT_MIN_BITS);

  // scalar value of fixed registers and of unary ops on them (computed once), splat into vectors
  const scal = new Int32Array(m).fill(-1); // scalar local of a register that is uniform (fixed)
  const vec = new Int32Array(m).fill(-1); // vector local holding a fixed register's splat
  const callUnary = (op: number, emitX: () => void) => {
    // un(op, x as f64) -> f64, rounded to T
    f.i32(op);
    emitX();
    if (f32) f.op(OP.f64PromoteF32);
    f.op(OP.call).uleb(F_UNARY);
    if (f32) f.op(OP.f32DemoteF64);
  };
  for (let i = 0; i < m; i++) {
    const k = kind(i);
    if (k === 0 && spec.layout[code[4 * i + 2]] === "x") {
      scal[i] = f.local(T);
      f.get(pIn(code[4 * i + 2]))
        .op(load)
        .mem(align)
        .set(scal[i]);
    } else if (k === 1) {
      scal[i] = f.local(T);
      f.get(pConst(code[4 * i + 2])).set(scal[i]);
    } else if (k === 2 && isFixed(code[4 * i + 2])) {
      // the unary kernel on a stride-0 operand: scalar at every element, all equal
      scal[i] = f.local(T);
      callUnary(code[4 * i + 1], () => f.get(scal[code[4 * i + 2]]));
      f.set(scal[i]);
    }
    if (scal[i] >= 0) {
      if (flush) flushS(scal[i], scal[i], daz);
      vec[i] = f.local(V128);
      f.get(scal[i]).simd(vSplat).set(vec[i]);
    }
  }
  // the bound of each fixed value c that multiplies a flushed operand: the bits of the float32 FLT_MIN / |c| (with
  // the margin), at least FLT_MIN's. c = 0 flushes every finite operand (keeping its sign, so x * 0 keeps its
  // IEEE bits), an infinite or NaN c only the subnormal ones (DAZ): inf and NaN operands are never flushed
  // (a square's bound by c: sqrt(FLT_MIN / |c|) with the margin, at least sqrt(FLT_MIN)'s; NaN c: sqrt(FLT_MIN)'s)
  const boundS = new Int32Array(m).fill(-1);
  const boundV = new Int32Array(m).fill(-1);
  const sqBoundS = new Int32Array(m).fill(-1);
  const sqBoundV = new Int32Array(m).fill(-1);
  for (let i = 0; i < m; i++) {
    for (const sq of [false, true]) {
      const c = sq ? sqBy[i] : preBound[i];
      const S = sq ? sqBoundS : boundS;
      if (c < 0 || S[c] >= 0) continue;
      const t = f.local(I32);
      S[c] = t;
      const floor = sq ? SQUARE_BITS : FLT_MIN_BITS;
      f.op(OP.f64Const).code.f64(2 ** -126);
      f.get(scal[c]).op(OP.f32Abs, OP.f64PromoteF32, OP.f64Div);
      if (sq) f.op(OP.f64Sqrt);
      f.op(OP.f64Const).code.f64(BOUND_MARGIN);
      f.op(OP.f64Mul, OP.f32DemoteF64, OP.i32ReinterpretF32).set(t);
      f.get(t)
        .i32(sq ? floor : 0)
        .get(scal[c])
        .get(scal[c])
        .op(OP.f32Eq, OP.select)
        .set(t);
      f.get(t).i32(floor).get(t).i32(floor).op(OP.i32GtS, OP.select).set(t);
      const tv = f.local(V128);
      f.get(t).simd(V.i32x4Splat).set(tv);
      (sq ? sqBoundV : boundV)[c] = tv;
    }
  }
  // vend = n rounded down to whole vectors, in bytes; end = n in bytes
  f.get(P_N).i32(-lanes).op(OP.i32And).i32(Math.log2(es)).op(OP.i32Shl).set(vend);
  f.get(P_N).i32(Math.log2(es)).op(OP.i32Shl).set(end);
  f.i32(0).set(off);

  // ---- the SIMD part
  const hasVecForm = (i: number) =>
    (f32 ? VEC_UNARY_F32 : VEC_UNARY_F64).has(code[4 * i + 1]) && !spec.scalarOnly[i];
  const plan = stagePlan(spec);
  const vr = new Int32Array(m).fill(-1);
  const addr = (p: number) => f.get(p).get(off).op(OP.i32Add);
  /** The address of input k's current element. */
  const inAddr = (k: number) =>
    spec.layout[k] === "p" ? f.get(pIn(k)).get(pPhase(k)).op(OP.i32Add) : addr(pIn(k));
  /** Advance every periodic input's phase by `step` bytes, wrapping at its period. */
  const advance = (step: number) => {
    for (const k of periodic) {
      const ph = pPhase(k);
      f.get(ph).i32(step).op(OP.i32Add).set(ph);
      f.get(ph)
        .get(ph + 1)
        .op(OP.i32Sub)
        .get(ph)
        .get(ph)
        .get(ph + 1)
        .op(OP.i32GeU, OP.select)
        .set(ph);
    }
  };
  /** Lane by lane through the scalar path: r[l] = g(a[l], b[l]) where g emits the scalar op. */
  const lanewise = (a: number, b: number, g: (ea: () => void, eb: () => void) => void): number => {
    const r = f.local(V128);
    const ext = f32 ? V.f32x4Extract : V.f64x2Extract;
    for (let l = 0; l < lanes; l++) {
      if (l > 0) f.get(r);
      g(
        () => f.get(a).simd(ext).op(l),
        () => f.get(b).simd(ext).op(l),
      );
      if (l === 0) f.simd(vSplat);
      else f.simd(f32 ? V.f32x4Replace : V.f64x2Replace).op(l);
      f.set(r);
    }
    return r;
  };
  /** Emit instruction i (an input load or an op) with operands from `get`; returns the local of its value. */
  const emitOp = (i: number, get: (r: number) => number): number => {
    const r = emitRaw(i, get);
    return post[i] ? flushV(r, i4(FLT_MIN_BITS)) : r;
  };
  const emitRaw = (i: number, get: (r: number) => number): number => {
    const k = kind(i);
    const op = code[4 * i + 1];
    if (k === 0) {
      const r = f.local(V128);
      inAddr(code[4 * i + 2])
        .simd(V.load)
        .mem(4)
        .set(r);
      return r;
    }
    let a = get(code[4 * i + 2]);
    if (k === 3) {
      let b = get(code[4 * i + 3]);
      if (preBound[i] === SQUARE) {
        // (the square's sign is + whatever the operand's: a flushed lane may be +0)
        a = b = flushV(a, sqBy[i] >= 0 ? sqBoundV[sqBy[i]] : i4(SQUARE_BITS), false);
      } else if (preReg[i] === code[4 * i + 2]) a = flushV(a, boundV[preBound[i]]);
      else if (preReg[i] >= 0) b = flushV(b, boundV[preBound[i]]);
      // b where a > 0, else +0 (the comparison's mask is all zeros for NaN)
      if (op === RELU_GRAD) return f.let(x4(V.and, b, x4(f32 ? V.f32x4Gt : V.f64x2Gt, a, c4(0))));
      const t = BIN[op];
      if (t !== undefined) return f.let(x4(f32 ? t[0] : t[1], a, b));
      // pow: scalar float64 at every element
      return lanewise(a, b, (ea, eb) => {
        ea();
        if (f32) f.op(OP.f64PromoteF32);
        eb();
        if (f32) f.op(OP.f64PromoteF32);
        f.op(OP.call).uleb(F_POW);
        if (f32) f.op(OP.f32DemoteF64);
      });
    }
    // unary
    if (!hasVecForm(i)) return lanewise(a, a, (ea) => callUnary(op, ea));
    if (f32 && CALLED_F32.has(op)) {
      const r = f.local(V128);
      f.i32(op).get(a).op(OP.call).uleb(F_UNARY4).set(r);
      return r;
    }
    switch (op) {
      case U.neg:
        return f.let(x4(f32 ? V.f32x4Neg : V.f64x2Neg, a));
      case U.abs:
        return f.let(x4(f32 ? V.f32x4Abs : V.f64x2Abs, a));
      case U.sqrt:
        return f.let(x4(f32 ? V.f32x4Sqrt : V.f64x2Sqrt, a));
      case U.relu:
        // (+0 in every lane, float32 or float64)
        return f.let(x4(f32 ? V.f32x4Max : V.f64x2Max, a, c4(0)));
      case U.floor:
        return f.let(x4(f32 ? V.f32x4Floor : V.f64x2Floor, a));
      case U.ceil:
        return f.let(x4(f32 ? V.f32x4Ceil : V.f64x2Ceil, a));
      case U.round:
        return f.let(x4(f32 ? V.f32x4Nearest : V.f64x2Nearest, a));
      case U.sign: {
        // float32 only: 1 where x > 0, -1 where x < 0, 0 at zero, NaN kept
        const r = x4(
          V.or,
          x4(V.and, x4(V.f32x4Gt, a, c4(0)), c4(1)),
          x4(V.and, x4(V.f32x4Lt, a, c4(0)), c4(-1)),
        );
        return f.let(x4(V.bitselect, a, r, x4(V.f32x4Ne, a, a)));
      }
      case U.exp:
        return expF32x4(f, a);
      case U.log:
        return logF32x4(f, a);
      case U.sigmoid:
        return sigmoidF32x4(f, a);
      default:
        return tanhF32x4(f, a);
    }
  };
  if (plan.stages === 1) {
    // one loop over the vectors, every register a local; its test at its end, so that V8 hoists the splats of
    // fixed values and flush bounds out of it (see the module comment)
    f.op(OP.block, 0x40);
    f.get(off).get(vend).op(OP.i32GeU, OP.brIf).uleb(0);
    f.op(OP.loop, 0x40);
    for (let i = 0; i < m; i++) vr[i] = vec[i] >= 0 ? vec[i] : emitOp(i, (r) => vr[r]);
    spec.outputs.forEach((r, j) => {
      addr(pOut(j));
      f.get(vr[r]).simd(V.store).mem(4);
    });
    f.get(off).i32(16).op(OP.i32Add).set(off);
    advance(16);
    f.get(off).get(vend).op(OP.i32LtU, OP.brIf).uleb(0);
    f.op(OP.end, OP.end);
  } else {
    // tiles of TILE_BYTES; per tile one loop per stage, values crossing stages through the scratch slots
    const t0 = f.local(I32);
    const t1 = f.local(I32);
    const saved = periodic.map(() => f.local(I32));
    const outsOf = new Map<number, number[]>();
    spec.outputs.forEach((r, j) => {
      outsOf.set(r, [...(outsOf.get(r) ?? []), j]);
    });
    f.i32(0).set(t0);
    f.op(OP.block, 0x40, OP.loop, 0x40);
    f.get(t0).get(vend).op(OP.i32GeU, OP.brIf).uleb(1);
    // t1 = min(t0 + TILE_BYTES, vend)
    f.get(t0).i32(TILE_BYTES).op(OP.i32Add).get(vend).get(t0).i32(TILE_BYTES).op(OP.i32Add).get(vend);
    f.op(OP.i32LtU, OP.select).set(t1);
    periodic.forEach((k, q) => {
      f.get(pPhase(k)).set(saved[q]);
    });
    const slotAddr = (r: number) =>
      f
        .get(pScratch)
        .i32(plan.slot[r] * TILE_BYTES)
        .op(OP.i32Add)
        .get(off)
        .op(OP.i32Add)
        .get(t0)
        .op(OP.i32Sub);
    for (let st = 0; st < plan.stages; st++) {
      f.get(t0).set(off);
      periodic.forEach((k, q) => {
        f.get(saved[q]).set(pPhase(k));
      });
      f.op(OP.block, 0x40, OP.loop, 0x40);
      f.get(off).get(t1).op(OP.i32GeU, OP.brIf).uleb(1);
      const cur = new Int32Array(m).fill(-1);
      const get = (r: number): number => {
        if (vec[r] >= 0) return vec[r];
        if (cur[r] < 0) {
          if (kind(r) === 0) cur[r] = emitOp(r, get);
          else {
            cur[r] = f.local(V128);
            slotAddr(r).simd(V.load).mem(4).set(cur[r]);
          }
        }
        return cur[r];
      };
      for (let i = 0; i < m; i++) {
        if (plan.stage[i] !== st) continue;
        cur[i] = emitOp(i, get);
        for (const j of outsOf.get(i) ?? []) {
          addr(pOut(j));
          f.get(cur[i]).simd(V.store).mem(4);
        }
        if (plan.slot[i] >= 0) {
          slotAddr(i);
          f.get(cur[i]).simd(V.store).mem(4);
        }
      }
      f.get(off).i32(16).op(OP.i32Add).set(off);
      advance(16);
      f.op(OP.br).uleb(0);
      f.op(OP.end, OP.end);
    }
    f.get(t1).set(t0);
    f.op(OP.br).uleb(0);
    f.op(OP.end, OP.end);
    f.get(vend).set(off);
  }

  // ---- the scalar tail
  const sr = new Int32Array(m).fill(-1);
  f.op(OP.block, 0x40, OP.loop, 0x40);
  f.get(off).get(end).op(OP.i32GeU, OP.brIf).uleb(1);
  for (let i = 0; i < m; i++) {
    const k = kind(i);
    const op = code[4 * i + 1];
    if (scal[i] >= 0) {
      sr[i] = scal[i];
      continue;
    }
    sr[i] = f.local(T);
    if (k === 0) {
      inAddr(code[4 * i + 2])
        .op(load)
        .mem(align);
    } else if (k === 3 && op === RELU_GRAD) {
      // b where a > 0, else +0 (NaN a: 0)
      f.get(sr[code[4 * i + 3]]);
      if (f32) f.op(OP.f32Const).code.f32(0);
      else f.op(OP.f64Const).code.f64(0);
      f.get(sr[code[4 * i + 2]]);
      if (f32) f.op(OP.f32Const).code.f32(0);
      else f.op(OP.f64Const).code.f64(0);
      f.op(f32 ? OP.f32Gt : OP.f64Gt, OP.select);
    } else if (k === 3) {
      const t = BIN[op];
      let a = sr[code[4 * i + 2]];
      let b = sr[code[4 * i + 3]];
      if (preReg[i] >= 0) {
        const x = f.local(T);
        const c = preBound[i];
        const sq = sqBy[i] >= 0 ? sqBoundS[sqBy[i]] : -1;
        flushS(preReg[i] === code[4 * i + 2] ? a : b, x, () =>
          c !== SQUARE ? f.get(boundS[c]) : sq >= 0 ? f.get(sq) : f.i32(SQUARE_BITS),
        );
        if (c === SQUARE) a = b = x;
        else if (preReg[i] === code[4 * i + 2]) a = x;
        else b = x;
      }
      f.get(a);
      if (f32 && t === undefined) f.op(OP.f64PromoteF32);
      f.get(b);
      if (t !== undefined) f.op(f32 ? t[2] : t[3]);
      else {
        if (f32) f.op(OP.f64PromoteF32);
        f.op(OP.call).uleb(F_POW);
        if (f32) f.op(OP.f32DemoteF64);
      }
    } else {
      callUnary(op, () => f.get(sr[code[4 * i + 2]]));
    }
    f.set(sr[i]);
    if (post[i]) flushS(sr[i], sr[i], daz);
  }
  spec.outputs.forEach((r, j) => {
    addr(pOut(j));
    f.get(sr[r])
      .op(f32 ? OP.f32Store : OP.f64Store)
      .mem(align);
  });
  f.get(off).i32(es).op(OP.i32Add).set(off);
  advance(es);
  f.op(OP.br).uleb(0);
  f.op(OP.end, OP.end);

  // ---- the module
  const mod = new Bytes().u8(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  const types = new Bytes().uleb(4);
  types
    .u8(0x60)
    .uleb(params.length)
    .u8(...params)
    .uleb(0); // run
  types.u8(0x60).uleb(2).u8(I32, F64).uleb(1).u8(F64); // un(op, x) -> f64
  types.u8(0x60).uleb(2).u8(F64, F64).uleb(1).u8(F64); // pow(a, b) -> f64
  types.u8(0x60).uleb(2).u8(I32, V128).uleb(1).u8(V128); // un4(op, x) -> v128
  mod.section(1, types);
  const imports = new Bytes().uleb(4);
  imports.str("env").str("un").u8(0x00).uleb(1);
  imports.str("env").str("pow").u8(0x00).uleb(2);
  imports.str("env").str("un4").u8(0x00).uleb(3);
  imports.str("env").str("memory").u8(0x02);
  if (sharedMemory) imports.u8(0x03).uleb(0).uleb(65536);
  else imports.u8(0x00).uleb(0);
  mod.section(2, imports);
  mod.section(3, new Bytes().uleb(1).uleb(0));
  mod.section(7, new Bytes().uleb(1).str("run").u8(0x00).uleb(3));
  mod.section(10, new Bytes().uleb(1).append(f.body()));
  return new Uint8Array(mod.b);
}

/** Compiled kernels per kernel module (a backend's instance) and spec key. */
const cache = new WeakMap<Kernels, Map<string, GenKernel>>();

/** Statistics of the generator (tests): modules compiled so far. */
export const codegenStats = { compiled: 0 };

/** The generated kernel for `spec` on the backend whose kernels are `k` (compiled once per signature). */
export function kernelFor(k: Kernels, memory: WebAssembly.Memory, shared: boolean, spec: GenSpec): GenKernel {
  let byKey = cache.get(k);
  if (byKey === undefined) cache.set(k, (byKey = new Map()));
  const key = specKey(spec);
  let run = byKey.get(key);
  if (run === undefined) {
    const module = new WebAssembly.Module(generate(spec, shared));
    const inst = new WebAssembly.Instance(module, {
      env: { memory, un: k.unaryF64, pow: k.powF64, un4: k.unaryF32x4 },
    });
    run = inst.exports.run as GenKernel;
    byKey.set(key, run);
    codegenStats.compiled++;
  }
  return run;
}
