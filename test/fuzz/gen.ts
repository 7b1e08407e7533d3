/**
 * Building blocks of the differential fuzzer (differential.test.ts): a seeded generator, random shapes (with
 * empty and size-1 dims), random values (with NaN / Inf inserted on request), inputs described as data plus a
 * view recipe (contiguous, transposed, flipped, stepped slice, broadcast) that every backend rebuilds from the
 * same numbers, and the comparison of two results (shape, dtype, NaN positions, values within an ulp- and
 * magnitude-aware tolerance, error class).
 *
 * Inputs are plain descriptions, not tensors, so that each backend makes its own tensors with its own
 * allocator and views them through the public ops, exactly as a user would.
 */
import type { DType } from "../../src/dtype.ts";
import { type Tensor, tensor } from "../../src/index.ts";
import { prng } from "../prng.ts";

export { prng };

export type Rng = () => number;

export const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

/**
 * A dim size: 0 sometimes, 1 often, else 2..max, and now and then up to 4 * max + 3 (past SIMD widths and
 * micro-kernel tiles, so vector loops and their tails run, not only scalar paths).
 */
export function dim(rng: Rng, max = 5, zero = 0.08): number {
  const u = rng();
  if (u < zero) return 0;
  if (u < zero + 0.25) return 1;
  if (u > 0.95) return int(rng, max + 1, 4 * max + 3);
  return int(rng, 2, max);
}

export function shape(rng: Rng, minRank: number, maxRank: number, max = 5): number[] {
  return Array.from({ length: int(rng, minRank, maxRank) }, () => dim(rng, max));
}

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** How an input tensor is laid out in memory before the op sees it. */
export type ViewKind = "contiguous" | "transposed" | "flipped" | "sliced" | "broadcast";
export const VIEWS: readonly ViewKind[] = ["contiguous", "transposed", "flipped", "sliced", "broadcast"];

/** One input: the logical shape and dtype, the view recipe, and the base storage's values. */
export interface Input {
  shape: number[];
  dtype: DType;
  view: ViewKind;
  /** Base tensor shape (the storage the view is taken of) and its row-major values. */
  base: number[];
  values: number[];
  /** flipped: the axes flipped; broadcast: the axis of size 1 in the base. */
  axes: number[];
}

/**
 * Value kinds: plain floats in [-3, 3], floats with NaN / +-Inf sprinkled in, floats of any magnitude
 * (1e-40 .. 1e40: float32 underflow and overflow; for int32, half of them anywhere in the int32 range, so
 * sums and products wrap), positive floats, indices in [0, hi).
 */
export type Values = "plain" | "special" | "wide" | "positive" | "index";

function value(rng: Rng, dtype: DType, kind: Values, hi: number): number {
  if (dtype === "bool") return rng() < 0.5 ? 0 : 1;
  if (kind === "index") return int(rng, 0, Math.max(0, hi - 1));
  if (dtype === "int32" && kind === "wide" && rng() < 0.5) return int(rng, -(2 ** 31), 2 ** 31 - 1);
  if (dtype === "int32") return kind === "positive" ? int(rng, 1, 9) : int(rng, -9, 9);
  if (kind === "special" && rng() < 0.15) return pick(rng, [Number.NaN, Infinity, -Infinity, 0, -0]);
  if (kind === "wide") return (rng() < 0.5 ? -1 : 1) * 10 ** (rng() * 80 - 40);
  const u = rng();
  if (u < 0.05) return 0;
  if (u < 0.15) return int(rng, -3, 3) + (kind === "positive" ? 4 : 0);
  const x = rng() * 6 - 3;
  return kind === "positive" ? Math.abs(x) + 0.01 : x;
}

/** An input of logical `s` and `dtype` in a random (or the given) layout. `hi` bounds "index" values. */
export function input(rng: Rng, s: number[], dtype: DType, kind: Values, view?: ViewKind, hi = 1): Input {
  let v = view ?? pick(rng, VIEWS);
  const nd = s.length;
  if (nd === 0 && v !== "contiguous") v = "contiguous";
  let base = [...s];
  let axes: number[] = [];
  if (v === "transposed") base = [...s].reverse();
  else if (v === "sliced") base = s.map((n) => 2 * n + 1);
  else if (v === "flipped") axes = s.map((_, i) => i).filter(() => rng() < 0.6);
  else if (v === "broadcast") {
    const ds = s.map((n, i) => (n !== 1 ? i : -1)).filter((i) => i >= 0);
    if (ds.length === 0) v = "contiguous";
    else {
      axes = [pick(rng, ds)];
      base[axes[0]] = 1;
    }
  }
  const values = Array.from({ length: size(base) }, () => value(rng, dtype, kind, hi));
  return { shape: s, dtype, view: v, base, values, axes };
}

/** Build the input on the current backend: base storage (a leaf with gradient tracking if asked), then the view. */
export function build(inp: Input, requiresGrad = false): { leaf: Tensor; view: Tensor } {
  const leaf = tensor(inp.values.length === 0 ? [] : inp.values, { dtype: inp.dtype, requiresGrad });
  return { leaf, view: applyView(leaf, inp) };
}

/** The view recipe of `inp` applied through public ops to its flat base storage. */
export function applyView(flat: Tensor, inp: Input): Tensor {
  const t = flat.reshape(inp.base);
  const nd = inp.shape.length;
  switch (inp.view) {
    case "contiguous":
      return t;
    case "transposed":
      return t.permute(inp.base.map((_, i) => nd - 1 - i));
    case "flipped":
      return inp.axes.length === 0 ? t : t.flip(inp.axes);
    case "sliced":
      // every other element from offset 1: strides 2, offset past the first element of each axis
      return t.index(...inp.shape.map((n) => [1, 1 + 2 * n, 2] as const));
    case "broadcast":
      return t.expand(inp.shape);
  }
}

export function describeInput(inp: Input): string {
  return `${inp.dtype}[${inp.shape.join(",")}] ${inp.view}${inp.axes.length > 0 ? `(${inp.axes.join(",")})` : ""}`;
}

/** What a backend produced: a result (shape, dtype, values) or the class of the error it threw. */
export type Outcome =
  | { ok: true; shape: number[]; dtype: DType; values: number[] }
  | { ok: false; error: string; message: string };

export function outcome(f: () => Tensor | Tensor[]): Outcome {
  try {
    const r = f();
    const ts = Array.isArray(r) ? r : [r];
    const values: number[] = [];
    for (const t of ts) for (const v of t.dataSync()) values.push(Number(v));
    const first = ts[0];
    return {
      ok: true,
      shape: ts.length === 1 ? [...first.shape] : ts.flatMap((t) => [...t.shape, -1]),
      dtype: first.dtype,
      values,
    };
  } catch (e) {
    const err = e as Error;
    return { ok: false, error: err.constructor.name, message: err.message };
  }
}

/** Distance to the next float of |w| in `dtype` (the unit in the last place). */
function ulp(w: number, dtype: DType): number {
  const bits = dtype === "float32" ? 23 : 52;
  const minExp = dtype === "float32" ? -126 : -1022;
  const a = Math.abs(w);
  const e = a === 0 ? minExp : Math.max(minExp, Math.floor(Math.log2(a)));
  return 2 ** (e - bits);
}

export const EPS: Record<string, number> = { float32: 2 ** -23, float64: 2 ** -52 };

/**
 * Compare `got` with the reference `want`. Floats: NaN exactly where the reference has NaN, infinities equal,
 * finite values within `ulps` ulps of the reference plus `atol` (the caller's bound on accumulated rounding
 * error, from the magnitude of the terms summed). Integers and bools: exact. Errors: the same class.
 * Returns null when they agree, else what differs.
 */
export function compare(got: Outcome, want: Outcome, ulps: number, atol: number): string | null {
  if (!want.ok || !got.ok) {
    if (!want.ok && !got.ok)
      return got.error === want.error ? null : `error ${got.error} vs js ${want.error}`;
    if (!want.ok) return `no error, js throws ${want.error}: ${want.message}`;
    return got.ok ? null : `throws ${got.error}: ${got.message}; js gives a result`;
  }
  if (got.shape.join() !== want.shape.join()) return `shape [${got.shape}] vs js [${want.shape}]`;
  if (got.dtype !== want.dtype) return `dtype ${got.dtype} vs js ${want.dtype}`;
  const float = want.dtype === "float32" || want.dtype === "float64";
  for (let i = 0; i < want.values.length; i++) {
    const [g, w] = [got.values[i], want.values[i]];
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (Number.isNaN(w) && Number.isNaN(g)) continue;
    } else if (g === w) continue;
    else if (
      float &&
      Number.isFinite(w) &&
      Number.isFinite(g) &&
      Math.abs(g - w) <= atol + ulps * ulp(w, want.dtype)
    )
      continue;
    return `element ${i}: ${g} vs js ${w} (tolerance ${atol} + ${ulps} ulp)`;
  }
  return null;
}

/** Largest finite |value| among the inputs (at least 1): the scale of accumulated rounding error. */
export function magnitude(inputs: readonly Input[]): number {
  let m = 1;
  for (const inp of inputs) for (const v of inp.values) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}
