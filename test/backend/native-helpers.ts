/**
 * Helpers of the native backend tests (safety, zero-size, fuzz, threads): the backend under test, random inputs
 * in every memory layout (contiguous, transposed, gaps, negative strides, broadcast, offset), tolerant
 * comparison, and `check`, which runs a kernel on the js reference and on every native instruction-set build
 * with all threads and with one.
 */
import assert from "node:assert/strict";
import type { Backend, View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import {
  loadNativeBackend,
  nativeInfo,
  setNativeIsa,
  setNumThreads,
} from "../../src/backend/native/index.ts";
import type { DType, TypedArray } from "../../src/dtype.ts";
import { prng } from "../prng.ts";
import { layoutView } from "./conformance/views.ts";

export { prng };

/** The load result: the backend or why it is unavailable (kernels.test.ts asserts that it loaded). */
export const loaded = loadNativeBackend();
export const N: Backend | undefined = "backend" in loaded ? loaded.backend : undefined;
export const ISAS = N ? (["avx512", "avx2", "base"] as const).filter((i) => setNativeIsa(i)) : [];
export const DEFAULT_THREADS = N ? nativeInfo().threads : 1;

// ---------------------------------------------------------------------------------------------------------
// Random inputs and views.

const FLOAT_SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e30, -1e30, 1, -1];
const INT_SPECIAL = [0, 1, -1, 2147483647, -2147483648, 65536, 123456789, -7];

export type Gen = "normal" | "plain" | "small" | "positive" | "index";

/** A random value of `dtype`: floats in [-3, 3) with 10% special values (NaN, +-Inf, +-0, ties ...). */
function value(rng: () => number, dtype: DType, gen: Gen): number {
  const u = rng();
  if (dtype === "bool") return u < 0.5 ? 0 : 1;
  if (dtype === "int32") {
    if (gen === "normal" && u < 0.1) return INT_SPECIAL[Math.floor(rng() * INT_SPECIAL.length)];
    if (gen === "positive") return Math.floor(u * 6);
    return Math.floor(u * 21) - 10;
  }
  if (gen === "normal" && u < 0.1) return FLOAT_SPECIAL[Math.floor(rng() * FLOAT_SPECIAL.length)];
  if (gen === "positive") return 0.1 + 3 * u;
  if (gen === "small") return 2 * u - 1;
  return 6 * u - 3;
}

/**
 * Memory layouts. A layout gives, per axis, a step (1 contiguous, 2 gaps, -1 reversed, 0 broadcast) and an
 * order of the axes in memory (transposed = reversed order), plus padding before the first element.
 */
export type Layout = "contiguous" | "transposed" | "gaps" | "reversed" | "broadcast" | "offset";
export const LAYOUTS: readonly Layout[] = [
  "contiguous",
  "transposed",
  "gaps",
  "reversed",
  "broadcast",
  "offset",
];

export function makeView(
  shape: readonly number[],
  dtype: DType,
  how: Layout,
  rng: () => number,
  gen: Gen = "normal",
): View {
  return layoutView(shape, dtype, how, rng, () => value(rng, dtype, gen));
}

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** An m x n matrix of random values, stored transposed (an [n, m] buffer read with swapped strides) or not. */
export function gemmOperand(m: number, n: number, transposed: boolean, dtype: DType, rng: () => number) {
  const v = makeView(transposed ? [n, m] : [m, n], dtype, "contiguous", rng, "small");
  return transposed ? { ...v, shape: [m, n], strides: [v.strides[1], v.strides[0]] } : v;
}

/** Whether A and B of a product are stored transposed: all four combinations. */
export const TRANSPOSE_PAIRS = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

// ---------------------------------------------------------------------------------------------------------
// Comparison.

export interface Tol {
  rtol: number;
  atol: number;
}
export const EXACT: Tol = { rtol: 0, atol: 0 };

export function tolFor(dtype: DType, f32: Tol, f64: Tol = { rtol: 1e-12, atol: 1e-12 }): Tol {
  return dtype === "float32" ? f32 : dtype === "float64" ? f64 : EXACT;
}

export function assertClose(got: TypedArray, want: TypedArray, tol: Tol, what: string): void {
  assert.equal(got.constructor, want.constructor, `${what}: dtype`);
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) || Number.isNaN(g)) {
      if (Number.isNaN(w) && Number.isNaN(g)) continue;
    } else if (g === w || Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w)) {
      continue;
    }
    assert.fail(`${what}: element ${i} is ${g}, the js backend gives ${w} (of ${got.length})`);
  }
}

/**
 * Run `run(backend)` (which allocates and returns its output) on the js backend and on every native ISA
 * build, with all threads and with one, and compare each native result with the js one.
 */
export function check(what: string, tol: Tol, run: (b: Backend) => TypedArray): void {
  const want = run(J);
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const threads of DEFAULT_THREADS > 1 ? [DEFAULT_THREADS, 1] : [1]) {
      setNumThreads(threads);
      const got = run(N!);
      assertClose(got, want, tol, `${what} [${isa}, ${threads} thread${threads > 1 ? "s" : ""}]`);
    }
  }
  setNumThreads(0);
  setNativeIsa(ISAS[0]);
}

/** The tolerance of a k-deep product of values below 1: |error| <= k eps sum |a||b|, absolute near 0. */
export function gemmTol(dtype: DType, k: number): Tol {
  return tolFor(dtype, { rtol: 1e-4, atol: k * 1.2e-7 }, { rtol: 1e-12, atol: k * 2.3e-16 });
}

/** `dot` of random m x k and k x n operands, each stored transposed or not (all four pairs), checked by `check`. */
export function checkDotLayouts(dtype: DType, m: number, k: number, n: number, rng: () => number): void {
  for (const [ta, tb] of TRANSPOSE_PAIRS) {
    const a = gemmOperand(m, k, ta, dtype, rng);
    const b = gemmOperand(k, n, tb, dtype, rng);
    check(`dot ta=${ta} tb=${tb}`, gemmTol(dtype, k), (be) => {
      const out = be.alloc(dtype, m * n);
      be.dot(a, b, out);
      return out;
    });
  }
}
