/**
 * setFlushDenormal (PyTorch's torch.set_flush_denormal) on the native backend: off by default (IEEE subnormals);
 * on, every kernel flushes subnormal results to zero (FTZ) and reads subnormal inputs as zero (DAZ), float32 and
 * float64, on every instruction set and on the pool's worker threads as well as the calling thread; JavaScript's
 * own arithmetic and typed-array stores keep their subnormals; off again restores IEEE results.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { nativeInfo, setFlushDenormal, setNativeIsa, setNumThreads } from "../../src/backend/native/index.ts";
import { DEFAULT_THREADS, ISAS, N } from "./native-helpers.ts";

const X86 = process.arch === "x64" || process.arch === "ia32";
after(() => {
  if (N) {
    setFlushDenormal(false);
    setNativeIsa(ISAS[0]);
    setNumThreads(DEFAULT_THREADS);
  }
});

const flat = (data: Float32Array | Float64Array): View => ({
  data,
  shape: [data.length],
  strides: [1],
  offset: 0,
});
/** a * b elementwise on the native backend. */
function mul(a: Float32Array | Float64Array, b: Float32Array | Float64Array) {
  const out = a instanceof Float32Array ? new Float32Array(a.length) : new Float64Array(a.length);
  N!.binary!("mul", flat(a), flat(b), out);
  return out;
}
function add(a: Float32Array | Float64Array, b: Float32Array | Float64Array) {
  const out = a instanceof Float32Array ? new Float32Array(a.length) : new Float64Array(a.length);
  N!.binary!("add", flat(a), flat(b), out);
  return out;
}
// 300,001 elements: split over both threads on 2 threads, with a scalar tail
const n = 300_001;
const cases = [
  // float32: 1e-20 * 1e-20 = 1e-40 (subnormal result); 1e-40 (a subnormal input) + 0
  { what: "float32", T: Float32Array, small: 1e-20, sub: 1e-40, min: 1.1754943508222875e-38 },
  // float64: 1e-160 * 1e-160 = 1e-320; 1e-310 + 0
  { what: "float64", T: Float64Array, small: 1e-160, sub: 1e-310, min: 2.2250738585072014e-308 },
] as const;
const isSub = (x: number, min: number) => x !== 0 && Math.abs(x) < min;

test("flush-denormal mode is off by default: kernels give IEEE subnormals", { skip: !N }, () => {
  assert.equal(nativeInfo().flushDenormal, false);
  for (const c of cases) {
    const p = mul(new c.T(n).fill(c.small), new c.T(n).fill(c.small));
    assert.ok(isSub(p[0], c.min) && isSub(p[n - 1], c.min), `${c.what}: ${c.small}^2 = ${p[0]} is subnormal`);
    const s = add(new c.T(n).fill(c.sub), new c.T(n));
    assert.ok(s[0] === s[n - 1] && isSub(s[0], c.min), `${c.what}: ${c.sub} + 0 = ${s[0]}`);
  }
});

test("setFlushDenormal(true): FTZ and DAZ on every ISA and thread count; JavaScript unaffected; off restores", {
  skip: !N,
}, () => {
  assert.equal(setFlushDenormal(true), X86, "the request takes effect on x86");
  if (!X86) return;
  assert.equal(nativeInfo().flushDenormal, true);
  for (const isa of ISAS) {
    assert.ok(setNativeIsa(isa));
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      for (const c of cases) {
        const what = `${isa}, ${threads} thread(s), ${c.what}`;
        const p = mul(new c.T(n).fill(c.small), new c.T(n).fill(c.small));
        assert.ok(
          p.every((x) => Object.is(x, 0)),
          `${what}: ${c.small}^2 flushed to +0 (FTZ) in every element`,
        );
        const s = add(new c.T(n).fill(c.sub), new c.T(n));
        assert.ok(
          s.every((x) => Object.is(x, 0)),
          `${what}: a subnormal input reads as 0 (DAZ)`,
        );
        // normal values are unaffected
        const q = mul(new c.T(n).fill(3), new c.T(n).fill(0.5));
        assert.ok(
          q.every((x) => x === 1.5),
          `${what}: 3 * 0.5`,
        );
      }
    }
  }
  // the JavaScript thread's floating-point mode is its own again after each call
  const tiny = [Number.MIN_VALUE, 1e-310];
  assert.equal(tiny[0] * 1, Number.MIN_VALUE, "JavaScript keeps double subnormals");
  assert.ok(tiny[1] / 10 > 0, "JavaScript divides into the subnormal range");
  assert.ok(Float32Array.of(1e-40)[0] > 0, "a float32 store keeps its subnormal");
  // off again: IEEE subnormals on every thread
  assert.equal(setFlushDenormal(false), true);
  assert.equal(nativeInfo().flushDenormal, false);
  setNumThreads(2);
  for (const c of cases) {
    const p = mul(new c.T(n).fill(c.small), new c.T(n).fill(c.small));
    assert.ok(
      p.every((x) => isSub(x, c.min)),
      `${c.what}: subnormal results again after setFlushDenormal(false), on both threads' parts`,
    );
  }
});

test("setFlushDenormal rejects a non-boolean", { skip: !N }, () => {
  assert.throws(() => setFlushDenormal("yes" as unknown as boolean), /setFlushDenormal: expected a boolean/);
  assert.equal(nativeInfo().flushDenormal, false);
});
