/**
 * Softmax / log-softmax and their VJP on the wasm backend.
 *
 * There is no wasm kernel for them. Tensors are garbage-collected arrays that every wasm kernel call copies
 * into and out of its scratch memory, so a composition of five or six wasm kernels (reduce max, sub, exp,
 * reduce sum, log / div) pays for as many round trips; the js reference kernel reads the arrays in place, one
 * pass per row, but pays ~11 ns per element for Math.exp. Measured (float32 log-softmax rows, one thread):
 * [128, 10] js 18 us, composed 36 us; [128, 100] 145 vs 97 us; [128, 1000] 1.5 vs 0.74 ms; [4096, 1000] 47 vs
 * 16 ms. So small inputs (a classifier's logits) run js and large ones the composition. The composition
 * meets the Backend.softmax contract by itself: a NaN or +Infinity max, or an all -Infinity row, makes x - max
 * or the sum NaN for the whole row; -Infinity entries give exp = 0. Its precision is that of the wasm exp / log
 * kernels (about 2 float32 ulp), within the backend tests' float32 tolerance of the js reference. A one-call
 * AssemblyScript row kernel would do better on large inputs still; it is left for when they matter in wasm.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, sizeOf } from "../../shape.ts";
import type { Backend, View } from "../backend.ts";
import { jsBackend as js } from "../js/index.ts";

/** From this many elements on, the composition of wasm kernels is used (measured crossover: see above). */
export const COMPOSE_MIN_ELEMENTS = 8192;

function full(data: TypedArray, shape: readonly number[]): View {
  return { data, shape, strides: contiguousStrides(shape), offset: 0 };
}

/** A contiguous array of the kept axes (axis of size 1) seen with x's shape: stride 0 along `axis`. */
function spread(data: TypedArray, shape: readonly number[], axis: number): View {
  const kept = shape.map((d, i) => (i === axis ? 1 : d));
  const strides = contiguousStrides(kept);
  strides[axis] = 0;
  return { data, shape, strides, offset: 0 };
}

/** Rank-0 views are rows of one (as in the js kernel); returns the view with rank >= 1. */
function atLeast1d(v: View): View {
  return v.shape.length > 0 ? v : { data: v.data, shape: [1], strides: [0], offset: v.offset };
}

export function softmax(b: Backend, x: View, axis: number, log: boolean, out: TypedArray): void {
  const n = sizeOf(x.shape);
  if (n < COMPOSE_MIN_ELEMENTS || !(x.data instanceof Float32Array || x.data instanceof Float64Array)) {
    js.softmax(x, axis, log, out);
    return;
  }
  // the composition of the backend's (b's) reduce / binary / unary kernels
  x = atLeast1d(x);
  const shape = x.shape;
  const dt = dtypeOfTyped(out);
  const k = n / shape[axis];
  const tmp = (size: number) => b.alloc(dt, size, true); // every temporary is overwritten whole
  const m = tmp(k);
  b.reduce("max", x, [axis], m);
  const d = tmp(n);
  b.binary("sub", x, spread(m, shape, axis), d);
  const e = tmp(n);
  b.unary("exp", full(d, shape), e);
  const s = tmp(k);
  b.reduce("sum", full(e, shape), [axis], s);
  if (log) {
    const ls = tmp(k);
    b.unary("log", full(s, [k]), ls);
    b.binary("sub", full(d, shape), spread(ls, shape, axis), out);
  } else {
    b.binary("div", full(e, shape), spread(s, shape, axis), out);
  }
}

export function softmaxBackward(
  b: Backend,
  y: View,
  ct: View,
  axis: number,
  log: boolean,
  out: TypedArray,
): void {
  const n = sizeOf(y.shape);
  if (n < COMPOSE_MIN_ELEMENTS || !(y.data instanceof Float32Array || y.data instanceof Float64Array)) {
    js.softmaxBackward(y, ct, axis, log, out);
    return;
  }
  // the composition of the backend's (b's) reduce / binary / unary kernels
  y = atLeast1d(y);
  ct = atLeast1d(ct);
  const shape = y.shape;
  const dt = dtypeOfTyped(out);
  const k = n / shape[axis];
  const tmp = (size: number) => b.alloc(dt, size, true); // every temporary is overwritten whole
  const s = tmp(k);
  const p = tmp(n);
  if (log) {
    // ct - exp(y) sum(ct)
    b.reduce("sum", ct, [axis], s);
    b.unary("exp", y, p);
    const q = tmp(n);
    b.binary("mul", full(p, shape), spread(s, shape, axis), q);
    b.binary("sub", ct, full(q, shape), out);
  } else {
    // y (ct - sum(ct y))
    b.binary("mul", ct, y, p);
    b.reduce("sum", full(p, shape), [axis], s);
    const q = tmp(n);
    b.binary("sub", ct, spread(s, shape, axis), q);
    b.binary("mul", y, full(q, shape), out);
  }
}
