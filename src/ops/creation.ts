/**
 * Creating tensors: from nested arrays or typed arrays, constant fills, ranges, identity, and random values from
 * a seedable generator (`manualSeed`), so runs are reproducible.
 *
 * JS numbers carry no int/float distinction, so `tensor([1, 2])` is float32 (the library default, as in
 * TensorFlow.js and jax-js); pass `{dtype: "int32"}` or an Int32Array for integers. Booleans give bool.
 *
 * Every argument is checked before anything is allocated (as PyTorch does): shapes through `checkShape`
 * (non-negative integers, at most 2^48 elements), range bounds finite, counts integers, and any value written
 * into an int32 tensor finite and within int32 (PyTorch: "value cannot be converted to type int32_t without
 * overflow"); a typed array would otherwise wrap it silently. Fractional values given for an int32 tensor are
 * truncated toward zero, as PyTorch does; fractional arange bounds for an int32 range are refused.
 */
import {
  BFloat16Bits,
  checkDType,
  type DType,
  dtypeOfTyped,
  Float16Bits,
  isHalf,
  type TypedArray,
} from "../dtype.ts";
import { toBF16Bits, toF16Bits } from "../io/half.ts";
import { castKernel } from "../prims/half.ts";
import { contiguousStorage } from "./shape.ts";
import { checkNotJitTracing } from "../core/trace.ts";
import { ShapeError } from "../errors.ts";
import { allocData, fromData } from "../prims/impl.ts";
import { checkDims, checkShape, fmtShape, MAX_NUMEL, sizeOf } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";

export interface CreateOpts {
  dtype?: DType;
  requiresGrad?: boolean;
}

type Nested = number | boolean | readonly Nested[];

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** Whether `v` can be stored in an int32 tensor without wrapping (fractions truncate toward zero). */
function fitsInt32(v: number): boolean {
  return Number.isFinite(v) && Math.trunc(v) >= INT32_MIN && Math.trunc(v) <= INT32_MAX;
}

function int32Overflow(op: string, what: string, v: number): RangeError {
  return new RangeError(
    `${op}: ${what} ${v} cannot be converted to int32 without overflow (int32 holds ${INT32_MIN} to ${INT32_MAX}); use a float dtype`,
  );
}

/** A finite number, or a RangeError naming the op and the argument. */
function checkFinite(op: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new RangeError(`${op}: ${name} must be a finite number, got ${String(v)}`);
  }
  return v;
}

/** A non-negative integer count (a length), bounded like every dim. */
function checkCount(op: string, name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_NUMEL) {
    throw new RangeError(`${op}: ${name} must be a non-negative integer (at most 2^48), got ${String(v)}`);
  }
  return v;
}

/**
 * Storage to write the values of a new tensor of dtype `d` into as numbers: float32 for the 16-bit floats
 * (whose storage holds bit patterns), which `asStored` then rounds once into the dtype's storage.
 */
function valuesFor(d: DType, shape: readonly number[], op: string): TypedArray {
  return allocData(isHalf(d) ? "float32" : d, shape, false, op);
}

/** The storage of dtype `d` for values written by `valuesFor` (rounded to a 16-bit float when `d` is one). */
function asStored(data: TypedArray, d: DType, op: string): TypedArray {
  if (!isHalf(d)) return data;
  const out = allocData(d, [data.length], false, op);
  castKernel({ data, shape: [data.length], strides: [1], offset: 0 }, out);
  return out;
}

function finish(t: Tensor, opts?: CreateOpts): Tensor {
  if (opts?.requiresGrad) t.requiresGrad = true;
  return t;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

/**
 * A tensor from nested arrays, a typed array, or a scalar.
 *
 * @example
 * ```ts
 * const x = tensor([[1, 2], [3, 4]]);                 // float32 [2, 2]
 * const w = tensor([0.5, -1], { requiresGrad: true });
 * const i = tensor(new Int32Array([1, 2, 3]));         // int32 [3]
 * ```
 */
export function tensor(
  data: Nested | TypedArray | Tensor,
  opts?: CreateOpts & { shape?: readonly number[] },
): Tensor {
  const dtype = opts?.dtype === undefined ? undefined : checkDType(opts.dtype, "tensor");
  if (data instanceof Tensor) {
    const c = data
      .detach()
      .contiguous()
      .to(dtype ?? data.dtype);
    return finish(fromData(contiguousStorage(c, "tensor"), shapeFor(opts, c.shape, c.size), c.dtype), opts);
  }
  if (ArrayBuffer.isView(data)) {
    // a plain Uint16Array holds numbers (int32 by default); only Float16Bits / BFloat16Bits hold 16-bit floats
    const given = data as TypedArray;
    const plain16 =
      given instanceof Uint16Array && !(given instanceof Float16Bits || given instanceof BFloat16Bits);
    const src = plain16 ? Int32Array.from(given) : given;
    const shape = shapeFor(opts, [src.length], src.length);
    const d = dtype ?? dtypeOfTyped(src);
    if (d === "int32" && !(src instanceof Int32Array)) {
      for (let i = 0; i < src.length; i++) {
        if (!fitsInt32(src[i])) throw int32Overflow("tensor", `element ${i}`, src[i]);
      }
    }
    // every path below writes each element of `out`: no zero fill first
    if (src instanceof Uint16Array && dtypeOfTyped(src) === d) {
      // float16 / bfloat16 bit patterns of the same format: copied as they are
      const out = allocData(d, [src.length], true, "tensor");
      out.set(src);
      return finish(fromData(out, shape, d), opts);
    }
    if (src instanceof Uint16Array || isHalf(d)) {
      // a conversion to or from a 16-bit float: the cast kernel (through float32, rounding to nearest even)
      const out = allocData(d, [src.length], true, "tensor");
      castKernel({ data: src, shape: [src.length], strides: [1], offset: 0 }, out);
      return finish(fromData(out, shape, d), opts);
    }
    // TypedArray.prototype.set converts each element exactly as `out[i] = src[i]` does (a plain copy when the
    // element types agree), in one call: a 31 MB dataset no longer goes through a JavaScript loop
    const out = allocData(d, [src.length], true, "tensor");
    out.set(src);
    return finish(fromData(out, shape, d), opts);
  }
  const shape = inferShape(data as Nested);
  checkDims("tensor", shape);
  let sawBool = false;
  const flat: (number | boolean)[] = [];
  const walk = (v: Nested, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(v))
        throw new ShapeError(`tensor: ragged nested array at ${path} (expected a number)`);
      if (typeof v !== "number" && typeof v !== "boolean") {
        throw new TypeError(`tensor: expected numbers or booleans, got ${typeof v} at ${path}`);
      }
      if (typeof v === "boolean") sawBool = true;
      else if (dtype === "int32" && !fitsInt32(v)) throw int32Overflow("tensor", `value at ${path}`, v);
      flat.push(v as number | boolean);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new ShapeError(
        `tensor: ragged nested array at ${path}: expected length ${shape[depth]}, got ${Array.isArray(v) ? v.length : "a scalar"}`,
      );
    }
    (v as readonly Nested[]).forEach((e, i) => {
      walk(e, depth + 1, `${path}[${i}]`);
    });
  };
  walk(data as Nested, 0, "data");
  const d = dtype ?? (sawBool ? "bool" : "float32");
  const out = valuesFor(d, [flat.length], "tensor");
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    out[i] = typeof v === "boolean" ? (v ? 1 : 0) : d === "bool" ? (v !== 0 ? 1 : 0) : v;
  }
  return finish(fromData(asStored(out, d, "tensor"), shapeFor(opts, shape, flat.length), d), opts);
}

/** The shape `opts.shape` asks for (checked against the number of elements given), else the data's own. */
function shapeFor(
  opts: { shape?: readonly number[] } | undefined,
  own: readonly number[],
  n: number,
): number[] {
  if (opts?.shape === undefined) return [...own];
  const shape = checkShape("tensor", opts.shape);
  if (sizeOf(shape) !== n) {
    throw new ShapeError(
      `tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} elements, the data has ${n}`,
    );
  }
  return shape;
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number | boolean, opts?: CreateOpts): Tensor {
  return fillOp("full", shape, value, opts);
}

function fillOp(op: string, shape: readonly number[], value: number | boolean, opts?: CreateOpts): Tensor {
  const d =
    opts?.dtype === undefined
      ? typeof value === "boolean"
        ? "bool"
        : "float32"
      : checkDType(opts.dtype, op);
  const s = checkShape(op, shape);
  if (typeof value !== "number" && typeof value !== "boolean") {
    throw new TypeError(`${op}: fill value must be a number or boolean, got ${typeof value}`);
  }
  if (d === "int32" && typeof value === "number" && !fitsInt32(value))
    throw int32Overflow(op, "fill value", value);
  const data = allocData(d, s, false, op);
  const v = typeof value === "boolean" ? (value ? 1 : 0) : value;
  // a 16-bit float stores the bit pattern of the value rounded to it
  if (v !== 0 || Object.is(v, -0))
    data.fill(d === "float16" ? toF16Bits(v) : d === "bfloat16" ? toBF16Bits(v) : v);
  return finish(fromData(data, s, d), opts);
}

export function zeros(shape: readonly number[], opts?: CreateOpts): Tensor {
  return fillOp("zeros", shape, 0, opts);
}
export function ones(shape: readonly number[], opts?: CreateOpts): Tensor {
  return fillOp("ones", shape, 1, opts);
}
export function zerosLike(t: Tensor, opts?: CreateOpts): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, ...opts });
}
export function onesLike(t: Tensor, opts?: CreateOpts): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, ...opts });
}
export function fullLike(t: Tensor, value: number, opts?: CreateOpts): Tensor {
  return full(t.shape, value, { dtype: t.dtype, ...opts });
}

/**
 * [start, start + step, ...) up to `end` (exclusive); `arange(n)` is 0..n-1. int32 when all three are integers
 * (then every value must fit int32), float32 otherwise. As PyTorch: bounds and step finite, step non-zero and
 * pointing from start towards end (`arange(5, 0)` is an error, not an empty tensor).
 */
export function arange(start: number, end?: number, step = 1, opts?: CreateOpts): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  checkFinite("arange", "start", start);
  checkFinite("arange", "end", end);
  checkFinite("arange", "step", step);
  if (step === 0) throw new RangeError("arange: step must be non-zero");
  if ((end - start) * step < 0) {
    throw new RangeError(
      `arange: the range from ${start} to ${end} is inconsistent with the sign of step ${step} (it would never reach end)`,
    );
  }
  const count = Math.ceil((end - start) / step);
  const n = Math.max(0, count);
  if (!(n <= MAX_NUMEL)) {
    throw new RangeError(`arange: ${start} to ${end} by ${step} has ${count} values (more than 2^48)`);
  }
  const d =
    opts?.dtype === undefined
      ? [start, end, step].every(Number.isInteger)
        ? "int32"
        : "float32"
      : checkDType(opts.dtype, "arange");
  if (d === "int32" && ![start, end, step].every(Number.isInteger)) {
    // PyTorch casts the bounds to the integer type first (a step of 0.5 becomes 0, an error there); say plainly
    // that an integer range needs integer arguments instead of guessing
    throw new RangeError(
      `arange: an int32 range needs integer start, end and step, got ${start}, ${end}, ${step}; pass a float dtype`,
    );
  }
  if (d === "int32" && n > 0) {
    const last = start + (n - 1) * step;
    if (!fitsInt32(start)) throw int32Overflow("arange", "start", start);
    if (!fitsInt32(last)) throw int32Overflow("arange", "the last value", last);
  }
  const data = valuesFor(d, [n], "arange");
  for (let i = 0; i < n; i++) data[i] = start + i * step;
  return finish(fromData(asStored(data, d, "arange"), [n], d), opts);
}

/** `steps` evenly spaced values from start to end inclusive (start and end finite). */
export function linspace(start: number, end: number, steps: number, opts?: CreateOpts): Tensor {
  checkFinite("linspace", "start", start);
  checkFinite("linspace", "end", end);
  checkCount("linspace", "steps", steps);
  const d = opts?.dtype === undefined ? "float32" : checkDType(opts.dtype, "linspace");
  if (d === "int32" && steps > 0) {
    if (!fitsInt32(start)) throw int32Overflow("linspace", "start", start);
    if (!fitsInt32(end)) throw int32Overflow("linspace", "end", end);
  }
  const data = valuesFor(d, [steps], "linspace");
  for (let i = 0; i < steps; i++) data[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return finish(fromData(asStored(data, d, "linspace"), [steps], d), opts);
}

/** The n x m identity matrix. */
export function eye(n: number, m = n, opts?: CreateOpts): Tensor {
  const t = fillOp("eye", [n, m], 0, opts);
  const data = t._data!;
  const one = t.dtype === "float16" ? toF16Bits(1) : t.dtype === "bfloat16" ? toBF16Bits(1) : 1;
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = one;
  return t;
}

// ---- random numbers -------------------------------------------------------------------------------------------

/**
 * xoshiro128** (Blackman and Vigna), seeded through splitmix32: fast, 32-bit, good statistical quality, and
 * identical in every JS engine, so a seed reproduces a run anywhere.
 */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  constructor(seed = 0) {
    this.seed(seed);
  }
  /** @internal The state (to replay the numbers drawn after it, see `logRng`). */
  _state(): GeneratorState {
    return { s: this.s.slice(), spare: this.spare };
  }
  /** @internal */
  _setState(st: GeneratorState): void {
    this.s.set(st.s);
    this.spare = st.spare;
  }
  seed(seed: number): void {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.spare = null;
  }
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    if (rngLog !== null && !rngLog.has(this)) rngLog.set(this, this._state());
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (rngLog !== null && !rngLog.has(this)) rngLog.set(this, this._state());
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  /** Uniform integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }
}

/** @internal A generator's state. */
export interface GeneratorState {
  readonly s: Uint32Array;
  readonly spare: number | null;
}

/** The state of every generator before its first draw while a log is open (null: none open). */
let rngLog: Map<Generator, GeneratorState> | null = null;

/**
 * @internal Run `f`, returning its result and the state of every generator it drew from, taken before its first
 * draw, so that `replayRng` can draw the same numbers again (checkpoint's recomputation, as PyTorch's
 * preserve_rng_state). Nested logs: what an inner one saw is seen by the outer one too.
 */
export function logRng<T>(f: () => T): [T, Map<Generator, GeneratorState>] {
  const prev = rngLog;
  const log = new Map<Generator, GeneratorState>();
  rngLog = log;
  try {
    return [f(), log];
  } finally {
    rngLog = prev;
    if (prev !== null) for (const [g, st] of log) if (!prev.has(g)) prev.set(g, st);
  }
}

/** @internal Run `f` with the generators of `log` set back to its states, and their current states restored after. */
export function replayRng<T>(log: Map<Generator, GeneratorState>, f: () => T): T {
  if (log.size === 0) return f();
  const now = [...log.keys()].map((g) => [g, g._state()] as const);
  for (const [g, st] of log) g._setState(st);
  try {
    return f();
  } finally {
    for (const [g, st] of now) g._setState(st);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The global generator behind rand/randn/randint and nn initialisers. */
export const defaultGenerator = new Generator(0);

/** Seed the global generator (PyTorch's `torch.manual_seed`). */
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}

export interface RandOpts extends CreateOpts {
  generator?: Generator;
}

function randFill(
  op: string,
  shape: readonly number[],
  opts: RandOpts | undefined,
  f: (g: Generator) => number,
): Tensor {
  const d = opts?.dtype === undefined ? "float32" : checkDType(opts.dtype, op);
  const s = checkShape(op, shape);
  checkNotJitTracing(op);
  const g = opts?.generator ?? defaultGenerator;
  const data = valuesFor(d, s, op);
  for (let i = 0; i < data.length; i++) data[i] = f(g);
  return finish(fromData(asStored(data, d, op), s, d), opts);
}

/** Uniform [0, 1). */
export function rand(shape: readonly number[], opts?: RandOpts): Tensor {
  return randFill("rand", shape, opts, (g) => g.uniform());
}
/** Standard normal. */
export function randn(shape: readonly number[], opts?: RandOpts): Tensor {
  return randFill("randn", shape, opts, (g) => g.normal());
}
/**
 * Uniform integers in [low, high), int32 by default. low and high are integers; for an int32 result both ends
 * must fit int32 (PyTorch refuses `randint(0, 2**40, ..., dtype=torch.int32)` too), and for any dtype the
 * range must be at most 2^53 wide (the generator draws 53 random bits).
 */
export function randint(low: number, high: number, shape: readonly number[], opts?: RandOpts): Tensor {
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
    throw new RangeError(`randint: expected integers low < high, got ${low} and ${high}`);
  }
  if (!(high - low <= 2 ** 53)) {
    throw new RangeError(`randint: the range [${low}, ${high}) is wider than 2^53`);
  }
  const d = opts?.dtype === undefined ? "int32" : checkDType(opts.dtype, "randint");
  if (d === "int32" && (low < INT32_MIN || high - 1 > INT32_MAX)) {
    throw new RangeError(
      `randint: the range [${low}, ${high}) does not fit int32 (${INT32_MIN} to ${INT32_MAX}); pass {dtype: "float64"}`,
    );
  }
  return randFill("randint", shape, { ...opts, dtype: d }, (g) => g.int(low, high));
}
/** A uniformly random permutation of 0..n-1 (int32, so n is an integer from 0 to 2^31). */
export function randperm(n: number, opts?: RandOpts): Tensor {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 2 ** 31) {
    throw new RangeError(`randperm: n must be an integer from 0 to 2^31 (int32 values), got ${String(n)}`);
  }
  checkNotJitTracing("randperm");
  const g = opts?.generator ?? defaultGenerator;
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = g.int(0, i + 1);
    const t = data[i];
    data[i] = data[j];
    data[j] = t;
  }
  return fromData(data, [n], "int32");
}
