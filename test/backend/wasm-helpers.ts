/**
 * Shared helpers of the wasm backend tests (wasm.test.ts; every kernel against js is in kernels.test.ts): the
 * backend under test, whether a call ran in wasm, and comparison of a wasm kernel's output with the js
 * reference.
 */
import assert from "node:assert/strict";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend } from "../../src/backend/js/index.ts";
import { loadWasmBackend, type WasmBackend } from "../../src/backend/wasm/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import { prng } from "./js-helpers.ts";

const loaded = loadWasmBackend();
if ("error" in loaded) throw new Error(loaded.error);
/** The wasm backend under test. */
export const W: WasmBackend = loaded.backend;
export const J = jsBackend;

export { prng };

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
