/**
 * Shared helpers for the wasm backend tests: the backend under test, views of every layout (contiguous,
 * scrambled with gaps / negative strides / offset, transposed, broadcast with stride 0) in arrays made by the
 * backend or directly, and comparison of a wasm kernel's output with the js reference.
 */
import assert from "node:assert/strict";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend } from "../../src/backend/js/index.ts";
import { loadWasmBackend, type WasmBackend } from "../../src/backend/wasm/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import { contiguousStrides, sizeOf } from "../../src/shape.ts";
import { prng, scrambled } from "./js-helpers.ts";

const loaded = loadWasmBackend();
if ("error" in loaded) throw new Error(loaded.error);
/** The wasm backend under test. */
export const W: WasmBackend = loaded.backend;
export const J = jsBackend;

export { prng };

/** The odd sizes every elementwise kernel is tried at (tails of SIMD loops). */
export const ODD = [1, 3, 7, 15, 17, 33, 257];

/**
 * A typed array of `dtype` holding `values`, made by the backend's alloc (`heap`) or directly. Both are ordinary
 * arrays now that tensor storage is not in wasm memory; the flag keeps both producers covered.
 */
export function typed(values: ArrayLike<number>, dtype: DType, heap: boolean): TypedArray {
  const a = heap ? W.alloc(dtype, values.length) : allocTyped(dtype, values.length);
  for (let i = 0; i < values.length; i++) a[i] = values[i];
  return a;
}

/** Re-home a view's storage into `dtype` (heap or plain), keeping its strides and offset. */
export function rehome(v: View, dtype: DType, heap: boolean): View {
  return { data: typed(v.data, dtype, heap), shape: v.shape, strides: v.strides, offset: v.offset };
}

/** Random values for `dtype`: floats in [-2, 2), int32 in [-50, 50], bool 0/1. */
export function values(rng: () => number, n: number, dtype: DType): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    out[i] = dtype === "bool" ? (u < 0.5 ? 0 : 1) : dtype === "int32" ? Math.floor(u * 101) - 50 : u * 4 - 2;
  }
  return out;
}

export type Layout = "contiguous" | "scrambled" | "transposed" | "broadcast";
export const LAYOUTS: readonly Layout[] = ["contiguous", "scrambled", "transposed", "broadcast"];

/**
 * A view of logical shape `shape` holding row-major `vals` (for "broadcast", `vals` only fill the non-
 * broadcast part: the first axis of size > 1, or the only axis, gets stride 0 and repeats row 0).
 * Returns the view and the logical row-major values it holds.
 */
export function layout(
  vals: number[],
  shape: number[],
  how: Layout,
  dtype: DType,
  heap: boolean,
  rng: () => number,
): { view: View; logical: number[] } {
  const n = sizeOf(shape);
  if (how === "scrambled") {
    return { view: rehome(scrambled(vals, shape, rng), dtype, heap), logical: vals };
  }
  if (how === "transposed" && shape.length >= 2) {
    // storage is the reversed-axes array; the view permutes it back
    const rev = [...shape].reverse();
    const st = contiguousStrides(rev);
    const data = new Array<number>(n).fill(0);
    const idx = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < n; k++) {
      let off = 0;
      for (let i = 0; i < shape.length; i++) off += idx[i] * st[shape.length - 1 - i];
      data[off] = vals[k];
      for (let i = shape.length - 1; i >= 0; i--) {
        if (++idx[i] < shape[i]) break;
        idx[i] = 0;
      }
    }
    const strides = [...st].reverse();
    return { view: { data: typed(data, dtype, heap), shape, strides, offset: 0 }, logical: vals };
  }
  if (how === "broadcast" && n > 0) {
    const ax = Math.max(
      0,
      shape.findIndex((d) => d > 1),
    );
    const strides = contiguousStrides(shape).map((s, i) => (i === ax ? 0 : s));
    const inner = sizeOf(shape.slice(ax + 1));
    const logical = vals.map((_, k) => {
      const outerI = Math.floor(k / (inner * shape[ax]));
      return vals[outerI * inner * shape[ax] + (k % inner)];
    });
    // storage: every element reachable through the stride-0 axis reads row 0 of that axis
    const data = new Array<number>(Math.max(n, 1)).fill(0);
    for (let k = 0; k < n; k++) {
      let off = 0;
      let rem = k;
      for (let i = shape.length - 1; i >= 0; i--) {
        off += (rem % shape[i]) * strides[i];
        rem = Math.floor(rem / shape[i]);
      }
      data[off] = logical[k];
    }
    return { view: { data: typed(data, dtype, heap), shape, strides, offset: 0 }, logical };
  }
  return {
    view: { data: typed(vals, dtype, heap), shape, strides: contiguousStrides(shape), offset: 0 },
    logical: vals,
  };
}

/** Assert wasm output equals the js output: exactly, or within tol * max(1, |expected|) for floats. */
export function same(actual: TypedArray, expected: TypedArray, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}: element ${i}: expected NaN, got ${a}`);
    } else if (tol === 0) {
      assert.ok(Object.is(a, e) || (a === e && a !== 0), `${what}: element ${i}: ${a} vs expected ${e}`);
    } else {
      assert.ok(
        a === e || Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)),
        `${what}: element ${i}: ${a} vs expected ${e}`,
      );
    }
  }
}

/** |a - e| <= tol * bound[i] elementwise (bound: the same computation on absolute values). */
export function within(
  actual: TypedArray,
  expected: TypedArray,
  bound: TypedArray,
  tol: number,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    assert.ok(d <= tol * (bound[i] + 1e-30), `${what}: element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Run `f` and return true if the wasm backend ran `kernel` in wasm (no fallback to the js kernel). */
export function inWasm(kernel: string, f: () => void): boolean {
  const before = W.fallbacks()[kernel] ?? 0;
  f();
  return (W.fallbacks()[kernel] ?? 0) === before;
}

/** A plain output array and a wasm-heap output array of `dtype` with `n` elements. */
export function outputs(dtype: DType, n: number): [TypedArray, TypedArray] {
  return [allocTyped(dtype, n), W.alloc(dtype, n)];
}

/** The view with every element replaced by its absolute value (same layout, plain float64 storage). */
export function absView(v: View): View {
  return { data: Float64Array.from(v.data, Math.abs), shape: v.shape, strides: v.strides, offset: v.offset };
}
