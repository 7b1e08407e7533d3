/**
 * Child process of test/backend/wasm-vmath.test.ts, run with --experimental-wasm-relaxed-simd (Node 20 does not
 * validate relaxed SIMD without it): the float32 math ops (gelu and geluDeriv too) of the relaxed-SIMD build against the SIMD128 build
 * over every 1009th float32 bit pattern and a dense sweep of [-12, 12], unary and atan2. Prints
 * {relaxed, compared, mismatches: [first few]} as JSON on its last line.
 */
import type { UnaryOp, View } from "../../src/backend/backend.ts";
import { createWasmBackend } from "../../src/backend/wasm/index.ts";

const OPS: UnaryOp[] = ["log1p", "expm1", "sin", "cos", "tan", "erf", "asin", "acos", "atan", "sinh", "cosh"];
OPS.push("asinh", "acosh", "atanh", "log2", "log10", "gelu", "geluDeriv");
const relaxed = createWasmBackend({ threads: 1 });
const plain = createWasmBackend({ threads: 1, noRelaxed: true });
const bits = new Uint32Array(Math.ceil(2 ** 32 / 1009) + 48001);
for (let i = 0; i * 1009 < 2 ** 32; i++) bits[i] = i * 1009;
const xs = new Float32Array(bits.buffer);
for (let i = 0; i <= 48000; i++) xs[bits.length - 48001 + i] = (i - 24000) / 2000 + 0.000123;
const view = (d: Float32Array): View => ({ data: d, shape: [d.length], strides: [1], offset: 0 });
const ys = xs.slice().reverse();
let compared = 0;
const mismatches: string[] = [];
const check = (what: string, a: Float32Array, b: Float32Array) => {
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i]) && mismatches.length < 5)
      mismatches.push(`${what} at ${xs[i]}: ${a[i]} vs ${b[i]}`);
    compared++;
  }
};
for (const op of OPS) {
  const a = new Float32Array(xs.length);
  const b = new Float32Array(xs.length);
  relaxed.unary(op, view(xs), a);
  plain.unary(op, view(xs), b);
  check(op, a, b);
}
const a = new Float32Array(xs.length);
const b = new Float32Array(xs.length);
relaxed.binary("atan2", view(ys), view(xs), a);
plain.binary("atan2", view(ys), view(xs), b);
check("atan2", a, b);
console.log(
  JSON.stringify({
    relaxed: relaxed.relaxedSimd && !plain.relaxedSimd,
    compared,
    mismatches,
    fallbacks: relaxed.fallbacks(),
  }),
);
