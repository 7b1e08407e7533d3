/**
 * Creating tensors: from nested arrays or typed arrays, constant fills, ranges, identity, and random values from
 * a seedable generator (`manualSeed`), so runs are reproducible.
 *
 * JS numbers carry no int/float distinction, so `tensor([1, 2])` is float32 (the library default, as in
 * TensorFlow.js and jax-js); pass `{dtype: "int32"}` or an Int32Array for integers. Booleans give bool.
 */
import { getBackend } from "../backend/registry.ts";
import { checkDType, type DType, dtypeOfTyped, type TypedArray } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { fromData } from "../prims/impl.ts";
import { checkShape, fmtShape, sizeOf } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";

export interface CreateOpts {
  dtype?: DType;
  requiresGrad?: boolean;
}

type Nested = number | boolean | readonly Nested[];

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
    return finish(fromData(c.dataSync(), c.shape, c.dtype), opts);
  }
  if (ArrayBuffer.isView(data)) {
    const src = data as TypedArray;
    const shape = opts?.shape ? checkShape("tensor", opts.shape) : [src.length];
    if (sizeOf(shape) !== src.length) {
      throw new ShapeError(
        `tensor: shape ${fmtShape(shape)} needs ${sizeOf(shape)} elements, the array has ${src.length}`,
      );
    }
    const d = dtype ?? dtypeOfTyped(src);
    const out = getBackend().alloc(d, src.length);
    for (let i = 0; i < src.length; i++) out[i] = src[i];
    return finish(fromData(out, shape, d), opts);
  }
  const shape = inferShape(data as Nested);
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
  const out = getBackend().alloc(d, flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    out[i] = typeof v === "boolean" ? (v ? 1 : 0) : d === "bool" ? (v !== 0 ? 1 : 0) : v;
  }
  return finish(fromData(out, shape, d), opts);
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number | boolean, opts?: CreateOpts): Tensor {
  const d = opts?.dtype ?? (typeof value === "boolean" ? "bool" : "float32");
  const s = checkShape("full", shape);
  const data = getBackend().alloc(d, sizeOf(s));
  const v = typeof value === "boolean" ? (value ? 1 : 0) : value;
  if (v !== 0) data.fill(v);
  return finish(fromData(data, s, d), opts);
}

export function zeros(shape: readonly number[], opts?: CreateOpts): Tensor {
  return full(shape, 0, opts);
}
export function ones(shape: readonly number[], opts?: CreateOpts): Tensor {
  return full(shape, 1, opts);
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

/** [start, start + step, ...) up to `end` (exclusive); `arange(n)` is 0..n-1. float32 unless all are integers. */
export function arange(start: number, end?: number, step = 1, opts?: CreateOpts): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0 || !Number.isFinite(step))
    throw new RangeError(`arange: step must be finite and non-zero, got ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  const d = opts?.dtype ?? ([start, end, step].every(Number.isInteger) ? "int32" : "float32");
  const data = getBackend().alloc(d, n);
  for (let i = 0; i < n; i++) data[i] = start + i * step;
  return finish(fromData(data, [n], d), opts);
}

/** `steps` evenly spaced values from start to end inclusive. */
export function linspace(start: number, end: number, steps: number, opts?: CreateOpts): Tensor {
  if (!Number.isInteger(steps) || steps < 0)
    throw new RangeError(`linspace: steps must be a non-negative integer, got ${steps}`);
  const d = opts?.dtype ?? "float32";
  const data = getBackend().alloc(d, steps);
  for (let i = 0; i < steps; i++) data[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return finish(fromData(data, [steps], d), opts);
}

/** The n x m identity matrix. */
export function eye(n: number, m = n, opts?: CreateOpts): Tensor {
  const t = zeros([n, m], opts);
  const data = t._data!;
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = 1;
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

function randFill(shape: readonly number[], opts: RandOpts | undefined, f: (g: Generator) => number): Tensor {
  const d = opts?.dtype ?? "float32";
  const s = checkShape("rand", shape);
  const g = opts?.generator ?? defaultGenerator;
  const data = getBackend().alloc(d, sizeOf(s));
  for (let i = 0; i < data.length; i++) data[i] = f(g);
  return finish(fromData(data, s, d), opts);
}

/** Uniform [0, 1). */
export function rand(shape: readonly number[], opts?: RandOpts): Tensor {
  return randFill(shape, opts, (g) => g.uniform());
}
/** Standard normal. */
export function randn(shape: readonly number[], opts?: RandOpts): Tensor {
  return randFill(shape, opts, (g) => g.normal());
}
/** Uniform integers in [low, high), int32 by default. */
export function randint(low: number, high: number, shape: readonly number[], opts?: RandOpts): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new RangeError(`randint: expected integers low < high, got ${low} and ${high}`);
  }
  return randFill(shape, { dtype: "int32", ...opts }, (g) => g.int(low, high));
}
/** A uniformly random permutation of 0..n-1 (int32). */
export function randperm(n: number, opts?: RandOpts): Tensor {
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
