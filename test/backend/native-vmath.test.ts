/**
 * The float32 transcendental functions of the native backend's AVX2 / AVX-512 builds (kernels/vmath.h: log1p,
 * expm1, sinh, cosh, asinh, acosh, atanh, log2, log10, sin, cos, tan, atan, asin, acos, erf, atan2, and log and
 * exp they build on), against the float64 Math function (the js backend's erf) rounded to float32, on every instruction-set build: at most MAX_ULP units in the last place over
 * a sweep of every binade from the smallest subnormal to the largest float, a dense sweep of [-12, 12], and the
 * points where each formula switches branch or meets its domain's edge; the special values (NaN, +-Infinity,
 * +-0, poles, outside the domain) exactly as Math gives them; log2 exact at every power of 2. The baseline build
 * runs libm's functions and is held to the same bounds. sin, cos and tan reduce their argument in double up to
 * |x| = 2^28 and leave larger ones to libm: the sweep covers both sides, and the jit's fused kernels (which
 * evaluate the same functions on register tiles) are checked against the plain kernel bit for bit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { UnaryOp } from "../../src/backend/backend.ts";
import { erf as erf64 } from "../../src/backend/js/scalar.ts";
import { fusedProgram } from "../../src/backend/fused.ts";
import { setNativeIsa } from "../../src/backend/native/index.ts";
import { ISAS, N } from "./native-helpers.ts";

const MAX_ULP = 4;

const REF: Partial<Record<UnaryOp, (x: number) => number>> = {
  exp: Math.exp,
  log: Math.log,
  log1p: Math.log1p,
  expm1: Math.expm1,
  sinh: Math.sinh,
  cosh: Math.cosh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  log2: Math.log2,
  log10: Math.log10,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  atan: Math.atan,
  asin: Math.asin,
  acos: Math.acos,
  erf: erf64,
};

/** The points where some formula of vmath.h changes branch or its domain ends, and a little either side. */
const EDGES = [
  0.5,
  0.7,
  1,
  2,
  88,
  89,
  89.4,
  4096,
  1e-19,
  1e-20,
  1.17549435e-38,
  87.3,
  103,
  104,
  20,
  17.3,
  // sin, cos, tan: quadrant boundaries, floats next to multiples of pi / 2, and the libm range from 2^28 on
  Math.PI / 4,
  Math.PI / 2,
  Math.PI,
  (3 * Math.PI) / 2,
  2 * Math.PI,
  100 * Math.PI,
  1e4 * Math.PI,
  2 ** 28,
  2 ** 27,
  1e5,
  1e7,
  16367173,
  71476,
  2.5e8,
  3e9,
];

function inputs(): Float32Array {
  const xs: number[] = [];
  // every binade: 1.4e-45 (2^-149) .. 3.4e38, both signs, a few mantissas each
  for (let e = -149; e <= 127; e++) {
    for (const m of [1, 1.1, 1.37, 1.5, 1.73, 1.999]) xs.push(m * 2 ** e, -m * 2 ** e);
  }
  for (let i = -2400; i <= 2400; i++) xs.push(i / 200 + 0.00123);
  for (const e of EDGES) {
    for (const d of [0, 1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3]) xs.push(e * (1 + d), -e * (1 + d));
  }
  for (const d of [1e-7, 1e-6, 1e-4, 1e-2]) xs.push(-1 + d, 1 - d, 1 + d, -1 - d);
  xs.push(1, -1, 2, -2, 10, -10, 0.5, -0.5);
  return Float32Array.from(xs);
}

/** Inputs whose results (NaN, an infinity or a signed zero) must be exactly Math's. */
const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0];

/** Distance in float32 units in the last place between two finite floats (through zero if signs differ). */
function ulps(a: number, b: number): number {
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  const ord = (i: number) => (bits[i] < 0 ? -(bits[i] & 0x7fffffff) : bits[i]);
  return Math.abs(ord(0) - ord(1));
}

function run(op: UnaryOp, xs: Float32Array): Float32Array {
  const out = N!.alloc("float32", xs.length) as Float32Array;
  N!.unary(op, { data: xs, shape: [xs.length], strides: [1], offset: 0 }, out);
  return out;
}

for (const [op, ref] of Object.entries(REF) as [UnaryOp, (x: number) => number][]) {
  test(`native float32 ${op}: within ${MAX_ULP} ulp of Math.${op} over every binade, specials exact`, {
    skip: !N,
  }, () => {
    const xs = inputs();
    for (const isa of ISAS) {
      setNativeIsa(isa);
      const got = run(op, xs);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < xs.length; i++) {
        const want = Math.fround(ref(xs[i]));
        const g = got[i];
        if (!Number.isFinite(want) || !Number.isFinite(g) || want === 0 || g === 0) {
          // NaN, infinities and zeros (and results that underflow) as Math gives them, sign included
          if (Number.isNaN(want) || Number.isNaN(g) || !Number.isFinite(want) || !Number.isFinite(g)) {
            assert.ok(Object.is(g, want), `${op}(${xs[i]}) [${isa}]: got ${g}, Math gives ${want}`);
            continue;
          }
        }
        const u = ulps(g, want);
        if (u > worst) {
          worst = u;
          at = xs[i];
        }
      }
      assert.ok(
        worst <= MAX_ULP,
        `${op} [${isa}]: ${worst} ulp at x = ${at} (got ${run(op, Float32Array.of(at))[0]}, Math gives ${Math.fround(ref(at))})`,
      );
      const sp = run(op, Float32Array.from(SPECIAL));
      SPECIAL.forEach((x, i) => {
        const want = Math.fround(ref(x));
        assert.ok(Object.is(sp[i], want), `${op}(${x}) [${isa}]: got ${sp[i]}, Math gives ${want}`);
      });
    }
    setNativeIsa(ISAS[0]);
  });
}

test("native float32 log2 is exact at every power of 2, log10 at powers of 10 within 1 ulp", {
  skip: !N,
}, () => {
  const pow2 = Float32Array.from({ length: 277 }, (_, i) => 2 ** (i - 149));
  const pow10 = Float32Array.from({ length: 76 }, (_, i) => 10 ** (i - 37));
  for (const isa of ISAS) {
    setNativeIsa(isa);
    const l2 = run("log2", pow2);
    for (let i = 0; i < pow2.length; i++) assert.equal(l2[i], i - 149, `log2(2^${i - 149}) [${isa}]`);
    const l10 = run("log10", pow10);
    for (let i = 0; i < pow10.length; i++) {
      const want = Math.fround(Math.log10(pow10[i]));
      assert.ok(ulps(l10[i], want) <= 1, `log10(${pow10[i]}) [${isa}]: ${l10[i]}`);
    }
  }
  setNativeIsa(ISAS[0]);
});

test("native float32 sin, cos, tan: the fused kernel gives the plain kernel's bits, huge arguments included", {
  skip: !N,
}, () => {
  const xs = inputs();
  const view = { data: xs, shape: [xs.length], strides: [1], offset: 0 };
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const op of ["sin", "cos", "tan"] as const) {
      const plain = run(op, xs);
      const prog = fusedProgram("float32", [
        { kind: "input", index: 0 },
        { kind: "unary", op, a: 0 },
      ]);
      const fused = N!.alloc("float32", xs.length) as Float32Array;
      N!.fused!(prog, [view], [fused]);
      for (let i = 0; i < xs.length; i++) {
        assert.ok(
          Object.is(fused[i], plain[i]),
          `${op}(${xs[i]}) [${isa}]: fused ${fused[i]}, plain ${plain[i]}`,
        );
      }
    }
  }
  setNativeIsa(ISAS[0]);
});

test(`native float32 atan2: within ${MAX_ULP} ulp of Math.atan2 over a grid of both operands, C's special cases exact`, {
  skip: !N,
}, () => {
  const vals = [
    0,
    -0,
    Infinity,
    -Infinity,
    Number.NaN,
    1,
    -1,
    1e-30,
    -1e-30,
    1e30,
    -1e30,
    1e-40,
    -1e-40,
    0.5,
    -0.5,
    2,
    -2,
    3.7,
    -3.7,
    0.4142,
    -2.4142,
    123.5,
    -0.001,
    7e5,
    -7e5,
  ];
  for (let i = -40; i <= 40; i++) vals.push(i / 7 + 0.01);
  const ys: number[] = [];
  const xs: number[] = [];
  for (const y of vals) for (const x of vals) ys.push(y), xs.push(x);
  const yv = Float32Array.from(ys);
  const xv = Float32Array.from(xs);
  const view = (d: Float32Array) => ({ data: d, shape: [d.length], strides: [1], offset: 0 });
  for (const isa of ISAS) {
    setNativeIsa(isa);
    const out = N!.alloc("float32", yv.length) as Float32Array;
    N!.binary("atan2", view(yv), view(xv), out);
    for (let i = 0; i < yv.length; i++) {
      const want = Math.fround(Math.atan2(yv[i], xv[i]));
      const exact =
        Number.isNaN(want) ||
        want === 0 ||
        !Number.isFinite(yv[i]) ||
        !Number.isFinite(xv[i]) ||
        yv[i] === 0 ||
        xv[i] === 0;
      const what = `atan2(${yv[i]}, ${xv[i]}) [${isa}]: got ${out[i]}, Math gives ${want}`;
      if (exact) assert.ok(Object.is(out[i], want), what);
      else assert.ok(ulps(out[i], want) <= MAX_ULP, what);
    }
  }
  setNativeIsa(ISAS[0]);
});

test("native float32 sin, cos, tan in place (the output over the input, as jit's planning may give): huge arguments too", {
  skip: !N,
}, () => {
  const xs = inputs();
  const view = (d: Float32Array) => ({ data: d, shape: [d.length], strides: [1], offset: 0 });
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const op of ["sin", "cos", "tan"] as const) {
      const want = run(op, xs);
      const a = xs.slice();
      N!.unary(op, view(a), a);
      const b = xs.slice();
      N!.fused!(
        fusedProgram("float32", [
          { kind: "input", index: 0 },
          { kind: "unary", op, a: 0 },
        ]),
        [view(b)],
        [b],
      );
      for (let i = 0; i < xs.length; i++) {
        assert.ok(Object.is(a[i], want[i]), `${op}(${xs[i]}) in place [${isa}]: ${a[i]}, not ${want[i]}`);
        assert.ok(
          Object.is(b[i], want[i]),
          `fused ${op}(${xs[i]}) in place [${isa}]: ${b[i]}, not ${want[i]}`,
        );
      }
    }
  }
  setNativeIsa(ISAS[0]);
});

test("native float32 sin, cos, tan: the scan for arguments beyond the vector range, on strided and contiguous views", {
  skip: !N,
}, () => {
  // One argument needing libm among small ones, at every position of a 37-element run (the scan's vector body
  // and its tail), on a contiguous view and on a stride-2 view with an offset; the boundary 2^28 and the floats
  // next to it, and non-finite values (which the scan must not count).
  const near = [
    2 ** 28,
    2 ** 28 * (1 - 2 ** -24),
    2 ** 28 * (1 + 2 ** -23),
    3e38,
    -1e30,
    Infinity,
    Number.NaN,
  ];
  for (const isa of ISAS) {
    setNativeIsa(isa);
    for (const op of ["sin", "cos", "tan"] as const) {
      const ref = op === "sin" ? Math.sin : op === "cos" ? Math.cos : Math.tan;
      for (const v of near) {
        for (let at = 0; at < 37; at++) {
          const xs = new Float32Array(37).map((_, i) => (i === at ? v : 0.25 * i - 3));
          const strided = new Float32Array(75);
          for (let i = 0; i < 37; i++) strided[1 + 2 * i] = xs[i];
          for (const view of [
            { data: xs, shape: [37], strides: [1], offset: 0 },
            { data: strided, shape: [37], strides: [2], offset: 1 },
          ]) {
            const out = N!.alloc("float32", 37) as Float32Array;
            N!.unary(op, view, out);
            for (let i = 0; i < 37; i++) {
              const want = Math.fround(ref(xs[i]));
              const ok = Number.isNaN(want) ? Number.isNaN(out[i]) : ulps(out[i], want) <= MAX_ULP;
              assert.ok(
                ok,
                `${op}(${xs[i]}) at ${i} (stride ${view.strides[0]}) [${isa}]: ${out[i]}, not ${want}`,
              );
            }
          }
        }
      }
    }
  }
  setNativeIsa(ISAS[0]);
});
