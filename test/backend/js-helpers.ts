/**
 * Shared helpers for the js backend tests: a seeded PRNG, views built from plain arrays, "scrambled" views
 * (random gaps, negative strides, nonzero offset) built with an index loop independent of the backend's own
 * odometer, and float comparisons.
 */
import assert from "node:assert/strict";
import type { BinaryOp, UnaryOp, View } from "../../src/backend/backend.ts";
import { jsBackend as B } from "../../src/backend/js/index.ts";
import type { DType, TypedArray } from "../../src/dtype.ts";
import { contiguousStrides, sizeOf } from "../../src/shape.ts";
import { prng } from "../prng.ts";

export { prng };

/** A uniform integer in [lo, hi]. */
export const randInt = (rng: () => number, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

/** A contiguous view of `values` (a Float64Array unless a typed array is given). */
export function v(values: number[] | TypedArray, shape: number[]): View {
  const data = Array.isArray(values) ? Float64Array.from(values) : values;
  return { data, shape, strides: contiguousStrides(shape), offset: 0 };
}

/**
 * A view holding the same logical row-major `values` in a scrambled layout: every axis gets a random gap
 * between elements and a random direction (negative strides), at a nonzero offset. Written with its own index
 * loop, independent of the backend's odometer.
 */
export function scrambled(
  values: ArrayLike<number>,
  shape: number[],
  rng: () => number,
  int32 = false,
): View {
  const nd = shape.length;
  const strides = new Array<number>(nd);
  let extent = 1;
  for (let i = nd - 1; i >= 0; i--) {
    strides[i] = extent * randInt(rng, 1, 2);
    extent = strides[i] * Math.max(shape[i], 1);
  }
  let offset = 3;
  for (let i = 0; i < nd; i++) {
    if (rng() < 0.5 && shape[i] > 0) {
      offset += strides[i] * (shape[i] - 1);
      strides[i] = -strides[i];
    }
  }
  const data = int32 ? new Int32Array(extent + 6).fill(77) : new Float64Array(extent + 6).fill(Number.NaN);
  const idx = new Array<number>(nd).fill(0);
  for (let k = 0; k < values.length; k++) {
    let rem = k;
    for (let i = nd - 1; i >= 0; i--) {
      idx[i] = rem % shape[i];
      rem = Math.floor(rem / shape[i]);
    }
    let off = offset;
    for (let i = 0; i < nd; i++) off += idx[i] * strides[i];
    data[off] = values[k];
  }
  return { data, shape, strides, offset };
}

/** n uniform numbers in [-1, 1). */
export function randn(rng: () => number, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng() * 2 - 1;
  return a;
}

/** The dot product <a, b> of two flat arrays, in float64. */
export function inner(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Elementwise |actual - expected| <= tol * max(1, |expected|); NaN must match NaN, infinities exactly. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) assert.ok(Number.isNaN(a), `element ${i}: expected NaN, got ${a}`);
    else
      assert.ok(
        a === e || Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)),
        `element ${i}: ${a} vs expected ${e}`,
      );
  }
}

/** A typed array as a plain array, for deepEqual. */
export const arr = (a: TypedArray) => Array.from(a);

/** Run a unary kernel on x into a fresh output of `dtype`. */
export function un(op: UnaryOp, x: View, dtype: DType = "float64"): TypedArray {
  const out = B.alloc(dtype, sizeOf(x.shape));
  B.unary(op, x, out);
  return out;
}

/** Run a binary kernel on (a, b) into a fresh output of `dtype`. */
export function bin(op: BinaryOp, a: View, b: View, dtype: DType): TypedArray {
  const out = B.alloc(dtype, sizeOf(a.shape));
  B.binary(op, a, b, out);
  return out;
}
