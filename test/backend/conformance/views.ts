/**
 * Inputs of the kernel conformance suite: seeded random values (with NaN, infinities, signed zeros, ties and
 * int32 extremes mixed in) in every memory layout a Backend kernel must accept. A layout is built from the
 * logical shape by its own index arithmetic, independent of any backend's strided iterator, so a bug in the
 * shared odometer of the backends cannot hide in the test.
 */
import type { View } from "../../../src/backend/backend.ts";
import { allocTyped, type DType } from "../../../src/dtype.ts";
import { prng } from "../../prng.ts";

export { prng };

// ties of rounding, saturation of exp / tanh / sigmoid (+-40, 100), tiny and huge magnitudes
const FLOAT_SPECIAL = [
  Number.NaN,
  Infinity,
  -Infinity,
  0,
  -0,
  0.5,
  -0.5,
  1.5,
  2.5,
  -2.5,
  1e30,
  -1e30,
  1,
  -1,
  40,
  -40,
  100,
  1e-8,
  -1e-30,
];
const NONFINITE = [Number.NaN, Infinity, -Infinity, 0, -0];
const INT_SPECIAL = [0, 1, -1, 2147483647, -2147483648, 65536, 123456789, -7];

/**
 * How values are drawn. special: floats in [-3, 3) with 10% special values (NaN, +-Inf, +-0, ties, 1e30),
 * int32 in [-10, 10] with 10% extremes (wrap-around); plain: the same without specials; small: [-1, 1);
 * positive: [0.1, 3.1) (int32 [0, 5]); round: integers in [-3, 3] (ties everywhere) plus specials;
 * nonfinite: [-1, 1) with 5% NaN, +-Inf and +-0 (no huge finite values: a float32 sum of products of those
 * overflows or cancels depending on the order, which the contract leaves open).
 */
export type Gen = "special" | "plain" | "small" | "positive" | "round" | "nonfinite";

export function value(rng: () => number, dtype: DType, gen: Gen): number {
  const u = rng();
  if (dtype === "bool") return u < 0.5 ? 0 : 1;
  if (dtype === "int32") {
    if ((gen === "special" || gen === "round") && u < 0.1) {
      return INT_SPECIAL[Math.floor(rng() * INT_SPECIAL.length)];
    }
    if (gen === "positive") return Math.floor(u * 6);
    return Math.floor(u * 21) - 10;
  }
  if ((gen === "special" || gen === "round") && u < 0.1) {
    return FLOAT_SPECIAL[Math.floor(rng() * FLOAT_SPECIAL.length)];
  }
  if (gen === "nonfinite") return u < 0.05 ? NONFINITE[Math.floor(rng() * NONFINITE.length)] : 2 * rng() - 1;
  if (gen === "round") return Math.round(6 * u - 3);
  if (gen === "positive") return 0.1 + 3 * u;
  if (gen === "small") return 2 * u - 1;
  return 6 * u - 3;
}

/**
 * Memory layouts: contiguous; transposed (axes stored in reverse order); gaps (last axis every other
 * element); reversed (negative strides on the first and last axes); broadcast (the first axis longer than 1
 * has stride 0); offset (padding before the first element); scrambled (every axis a random gap and a random
 * direction, at an offset).
 */
export type Layout = "contiguous" | "transposed" | "gaps" | "reversed" | "broadcast" | "offset" | "scrambled";
export const LAYOUTS: readonly Layout[] = [
  "contiguous",
  "transposed",
  "gaps",
  "reversed",
  "broadcast",
  "offset",
  "scrambled",
];
/** Layouts a destination may have (a broadcast destination would write one element twice). */
export const DEST_LAYOUTS: readonly Layout[] = LAYOUTS.filter((l) => l !== "broadcast");

/** A view of logical shape `shape`, in layout `how`, over a buffer filled with values drawn by `gen`. */
export function makeView(
  shape: readonly number[],
  dtype: DType,
  how: Layout,
  rng: () => number,
  gen: Gen = "special",
): View {
  return layoutView(shape, dtype, how, rng, () => value(rng, dtype, gen));
}

/**
 * A view of logical shape `shape` in layout `how` (`rng` draws the scrambled layout's steps) over a buffer of
 * `dtype` whose every element, padding included, is `fill()`.
 */
export function layoutView(
  shape: readonly number[],
  dtype: DType,
  how: Layout,
  rng: () => number,
  fill: () => number,
): View {
  const nd = shape.length;
  const steps = shape.map(() => 1);
  let perm = shape.map((_, i) => i);
  let pad = 0;
  if (how === "transposed") perm = perm.reverse();
  if (how === "gaps" && nd > 0) steps[nd - 1] = 2;
  if (how === "reversed" && nd > 0) {
    steps[0] = -1;
    if (nd > 1) steps[nd - 1] = -2;
  }
  if (how === "broadcast") {
    const d = shape.findIndex((n) => n > 1);
    if (d >= 0) steps[d] = 0;
  }
  if (how === "offset") pad = 5;
  if (how === "scrambled") {
    pad = 3;
    for (let d = 0; d < nd; d++) steps[d] = (rng() < 0.5 ? -1 : 1) * (1 + Math.floor(rng() * 2));
  }
  const ext = shape.map((n, d) => (steps[d] === 0 || n === 0 ? 1 : (n - 1) * Math.abs(steps[d]) + 1));
  const base = new Array<number>(nd);
  let acc = 1;
  for (let i = nd - 1; i >= 0; i--) {
    base[perm[i]] = acc;
    acc *= ext[perm[i]];
  }
  const strides = shape.map((_, d) => base[d] * steps[d]);
  let offset = pad;
  for (let d = 0; d < nd; d++)
    if (steps[d] < 0 && shape[d] > 0) offset += (shape[d] - 1) * base[d] * -steps[d];
  const data = allocTyped(dtype, acc + 2 * pad);
  for (let i = 0; i < data.length; i++) data[i] = fill();
  return { data, shape, strides, offset };
}

/** The same view over a copy of its buffer with every element replaced by its absolute value (float64). */
export function absView(v: View): View {
  const data = new Float64Array(v.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.abs(v.data[i]);
  return { data, shape: v.shape, strides: v.strides, offset: v.offset };
}

/** A view of `shape` repeating `row` (a view of the last axis) along every other axis by stride 0. */
export function broadcastRow(row: View, shape: readonly number[]): View {
  const last = shape.length - 1;
  return { ...row, shape, strides: shape.map((_, d) => (d === last ? row.strides[0] : 0)) };
}

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The row-major multi-index of flat position i in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = shape[d] > 0 ? i % shape[d] : 0;
    i = shape[d] > 0 ? Math.floor(i / shape[d]) : 0;
  }
  return idx;
}
