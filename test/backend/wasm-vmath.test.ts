/**
 * The float32 transcendental functions of the wasm backend's SIMD kernels (wasm/assembly/math.ts: log1p, expm1,
 * sin, cos, tan, erf, and asin, acos, atan, sinh, cosh, asinh, acosh, atanh, log2, log10), against the float64
 * Math function (the js backend's erf) rounded to float32: at most MAX_ULP units in the last place over a sweep
 * of every binade from the smallest subnormal to the largest float (both signs), a dense sweep of [-12, 12],
 * and the points where a formula switches branch or meets its domain's edge; the special values (NaN,
 * +-Infinity, +-0, poles, outside the domain) exactly as Math gives them; log2 exact at every power of 2. sin,
 * cos and tan reduce their argument in float64 lanes up to |x| = 2^28 and leave the larger (and non-finite)
 * lanes to the scalar float64 route: the sweep covers both sides, huge arguments (1e30, 3e38) are checked
 * alone, and the output over the input (in place) and the jit's fused kernels (generated code and the tile
 * interpreter) give the plain kernel's bits. atan2 (binary) over a grid of both operands, C's special cases
 * exact. The relaxed-SIMD and SIMD128 builds give the same bits (a child process with relaxed SIMD enabled,
 * wasm-vmath-child.ts). The float64 forms run AssemblyScript's Math (within 2 ulp of V8's). gelu and geluDeriv
 * against the js backend's float64 kernels, with bounds of their own (below).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { UnaryOp, View } from "../../src/backend/backend.ts";
import { fusedProgram } from "../../src/backend/fused.ts";
import {
  erf as erf64,
  gelu as geluRef,
  geluDeriv as geluDerivRef,
  normalCdf,
} from "../../src/backend/js/scalar.ts";
import { codegenStats } from "../../src/backend/wasm/codegen.ts";
import { setFusedCodegen } from "../../src/backend/wasm/fused.ts";
import { inWasm, prng, W } from "./wasm-helpers.ts";

const MAX_ULP = 4;

const REF: Partial<Record<UnaryOp, (x: number) => number>> = {
  log1p: Math.log1p,
  expm1: Math.expm1,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  erf: erf64,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  log2: Math.log2,
  log10: Math.log10,
};

/** The points where some formula of math.ts changes branch or its domain ends, and a little either side. */
const EDGES = [
  0.5,
  0.7, // expm1: series / exp
  1, // sinh, erf: series / exp; acosh, atanh, asin, acos: domain
  0.625,
  0.414213562, // atan: reduction intervals
  2.41421356,
  4, // erf: erfc clamped
  88, // sinh, cosh: e^(x/2) twice
  89,
  89.4,
  4096, // asinh, acosh: ln 2x
  1e-19,
  1e-20,
  1.17549435e-38,
  87.3,
  103,
  104,
  20,
  17.3,
  // sin, cos, tan: quadrant boundaries, floats next to multiples of pi / 2, and the scalar range from 2^28 on
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
  for (let i = -24000; i <= 24000; i++) xs.push(i / 2000 + 0.000123);
  for (const e of EDGES) {
    for (const d of [0, 1e-7, -1e-7, 1e-5, -1e-5, 1e-3, -1e-3]) xs.push(e * (1 + d), -e * (1 + d));
  }
  for (const d of [1e-7, 1e-6, 1e-4, 1e-2]) xs.push(-1 + d, 1 - d, 1 + d, -1 - d);
  xs.push(1, -1, 2, -2, 10, -10, 0.5, -0.5, 1e30, -1e30, 3e38, -3e38);
  // the float32 values nearest to multiples of pi / 2 up to 2^28 (r next to 0), and their neighbours
  for (let k = 1; k < 2 ** 28; k = Math.ceil(k * 1.37)) {
    const x = Math.fround((k * Math.PI) / 2);
    const up = new Float32Array([x]);
    const bits = new Int32Array(up.buffer);
    bits[0] += 1;
    xs.push(x, -x, up[0]);
    bits[0] -= 2;
    xs.push(up[0]);
  }
  return Float32Array.from(xs);
}

/** Every 1009th float32 bit pattern (4.3 million, every range and sign; NaN patterns included). */
function bitSweep(): Float32Array {
  const bits = new Uint32Array(Math.ceil(2 ** 32 / 1009));
  for (let i = 0; i < bits.length; i++) bits[i] = i * 1009;
  return new Float32Array(bits.buffer);
}

/** Inputs whose results (NaN, an infinity or a signed zero) must be exactly Math's. */
const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 1, -1, 2, -2, 1e30, -3e38];

/** SPECIAL, each value in lane `lane` of its own vector, the other lanes 0.3. */
function specialsInLane(lane: number): Float32Array {
  const sx = new Float32Array(4 * SPECIAL.length).fill(0.3);
  SPECIAL.forEach((x, i) => {
    sx[4 * i + lane] = x;
  });
  return sx;
}

/** Distance in float32 units in the last place between two finite floats (through zero if signs differ). */
function ulps(a: number, b: number): number {
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  const ord = (i: number) => (bits[i] < 0 ? -(bits[i] & 0x7fffffff) : bits[i]);
  return Math.abs(ord(0) - ord(1));
}

const view = (d: Float32Array | Float64Array): View => ({
  data: d,
  shape: [d.length],
  strides: [1],
  offset: 0,
});

function run(op: UnaryOp, xs: Float32Array): Float32Array {
  const out = new Float32Array(xs.length);
  assert.ok(
    inWasm("unary", () => W.unary(op, view(xs), out)),
    `${op} ran in wasm`,
  );
  return out;
}

/** Worst ulp error of `op` over `xs` (asserting the non-finite and zero results exact), and where. */
function worstError(op: UnaryOp, ref: (x: number) => number, xs: Float32Array, got: Float32Array) {
  let worst = 0;
  let at = 0;
  for (let i = 0; i < xs.length; i++) {
    const want = Math.fround(ref(xs[i]));
    const g = got[i];
    if (!Number.isFinite(want) || !Number.isFinite(g) || Object.is(want, -0) || Object.is(g, -0)) {
      // NaN, infinities and negative zeros as Math gives them
      assert.ok(Object.is(g, want), `${op}(${xs[i]}): got ${g}, Math gives ${want}`);
      continue;
    }
    const u = ulps(g, want);
    if (u > worst) {
      worst = u;
      at = xs[i];
    }
  }
  return { worst, at };
}

for (const [op, ref] of Object.entries(REF) as [UnaryOp, (x: number) => number][]) {
  test(`wasm float32 ${op}: within ${MAX_ULP} ulp of Math.${op} over every binade, specials exact`, (t) => {
    for (const [what, xs] of [
      ["binades, [-12, 12], edges", inputs()],
      ["every 1009th bit pattern", bitSweep()],
    ] as const) {
      const got = run(op, xs);
      const { worst, at } = worstError(op, ref, xs, got);
      t.diagnostic(`${op}: worst ${worst} ulp over ${what}, at x = ${at}`);
      assert.ok(
        worst <= MAX_ULP,
        `${op}: ${worst} ulp at x = ${at} (got ${run(op, Float32Array.of(at))[0]}, Math gives ${Math.fround(ref(at))})`,
      );
    }
    const xs = inputs();
    // the special values alone and in every lane position, each vector also holding ordinary values
    for (let lane = 0; lane < 4; lane++) {
      const sx = specialsInLane(lane);
      const sp = run(op, sx);
      for (let i = 0; i < sx.length; i++) {
        const want = Math.fround(ref(sx[i]));
        const exact = Object.is(sp[i], want);
        assert.ok(
          exact || ulps(sp[i], want) <= MAX_ULP,
          `${op}(${sx[i]}) lane ${lane}: got ${sp[i]}, Math gives ${want}`,
        );
        if (!Number.isFinite(want) || want === 0)
          assert.ok(exact, `${op}(${sx[i]}): got ${sp[i]}, Math gives ${want}`);
      }
    }
    // float64 runs the float64 scalar route (AssemblyScript's Math, whose last bits may differ from V8's, and
    // the js backend's erf algorithm): within 2 ulp of float64
    const xd = Float64Array.from(xs);
    const od = new Float64Array(xd.length);
    assert.ok(inWasm("unary", () => W.unary(op, view(xd), od)));
    for (let i = 0; i < xd.length; i++) {
      const want = ref(xd[i]);
      assert.ok(
        Object.is(od[i], want) || Math.abs(od[i] - want) <= 2 ** -51 * Math.abs(want),
        `float64 ${op}(${xd[i]}): ${od[i]}, Math gives ${want}`,
      );
    }
  });
}

const TRIG = ["sin", "cos", "tan"] as const;

test("wasm float32 sin, cos, tan at huge arguments (1e30, 3e38, beyond the vector reduction): Math's values", () => {
  const xs = Float32Array.from([1e30, -1e30, 3e38, -3e38, 2 ** 28, 3e9, 1e20, 123456789012, 0.5, 1, 2, 3]);
  for (const op of TRIG) {
    const got = run(op, xs);
    for (let i = 0; i < xs.length; i++) {
      const want = Math.fround(Math[op](xs[i]));
      assert.ok(ulps(got[i], want) <= 1, `${op}(${xs[i]}): got ${got[i]}, Math gives ${want}`);
    }
    // the huge lanes are the scalar route's, whatever their neighbours
    assert.equal(got[0], Math.fround(Math[op](xs[0])), `${op}(1e30)`);
    assert.equal(got[2], Math.fround(Math[op](xs[2])), `${op}(3e38)`);
  }
});

/** A one-op fused program on float32. */
const oneOp = (op: UnaryOp) =>
  fusedProgram("float32", [
    { kind: "input", index: 0 },
    { kind: "unary", op, a: 0 },
  ]);

test("wasm float32 math: in place (output over input) and fused (generated code and interpreter) give the plain bits", () => {
  const xs = inputs();
  const compiled = codegenStats.compiled;
  let compared = 0;
  for (const op of Object.keys(REF) as UnaryOp[]) {
    const want = run(op, xs);
    const a = xs.slice();
    W.unary(op, view(a), a);
    for (const codegen of [true, false]) {
      setFusedCodegen(codegen);
      const b = xs.slice();
      const c = new Float32Array(xs.length);
      try {
        W.fused!(oneOp(op), [view(b)], [b]);
        W.fused!(oneOp(op), [view(xs)], [c]);
      } finally {
        setFusedCodegen(true);
      }
      for (let i = 0; i < xs.length; i++) {
        const w = want[i];
        assert.ok(Object.is(a[i], w), `${op}(${xs[i]}) in place: ${a[i]}, not ${w}`);
        assert.ok(
          Object.is(b[i], w),
          `fused ${op}(${xs[i]}) in place [codegen ${codegen}]: ${b[i]}, not ${w}`,
        );
        assert.ok(Object.is(c[i], w), `fused ${op}(${xs[i]}) [codegen ${codegen}]: ${c[i]}, not ${w}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 1e5);
  assert.ok(codegenStats.compiled >= compiled + Object.keys(REF).length, "the generated kernels ran");
});

test("wasm float32 log2 is exact at every power of 2, log10 at powers of 10 within 1 ulp", () => {
  const pow2 = Float32Array.from({ length: 277 }, (_, i) => 2 ** (i - 149));
  const l2 = run("log2", pow2);
  for (let i = 0; i < pow2.length; i++) assert.equal(l2[i], i - 149, `log2(2^${i - 149})`);
  const pow10 = Float32Array.from({ length: 76 }, (_, i) => 10 ** (i - 37));
  const l10 = run("log10", pow10);
  for (let i = 0; i < pow10.length; i++) {
    const want = Math.fround(Math.log10(pow10[i]));
    assert.ok(ulps(l10[i], want) <= 1, `log10(${pow10[i]}): ${l10[i]}, Math gives ${want}`);
  }
});

test(`wasm float32 atan2: within ${MAX_ULP} ulp of Math.atan2 over a grid of both operands, C's special cases exact`, (t) => {
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
  ];
  vals.push(-0.5, 2, -2, 3.7, -3.7, 0.4142, -2.4142, 123.5, -0.001, 7e5, -7e5, 3e38, -3e38, 1e-45);
  for (let i = -40; i <= 40; i++) vals.push(i / 7 + 0.01);
  const rng = prng(29);
  for (let i = 0; i < 200; i++) vals.push((rng() - 0.5) * 2 ** Math.floor(rng() * 60 - 30));
  const ys: number[] = [];
  const xs: number[] = [];
  for (const y of vals) {
    for (const x of vals) {
      ys.push(y);
      xs.push(x);
    }
  }
  const yv = Float32Array.from(ys);
  const xv = Float32Array.from(xs);
  const out = new Float32Array(yv.length);
  assert.ok(
    inWasm("binary", () => W.binary("atan2", view(yv), view(xv), out)),
    "atan2 ran in wasm",
  );
  let worst = 0;
  for (let i = 0; i < yv.length; i++) {
    const want = Math.fround(Math.atan2(yv[i], xv[i]));
    const exact =
      Number.isNaN(want) ||
      want === 0 ||
      !Number.isFinite(yv[i]) ||
      !Number.isFinite(xv[i]) ||
      yv[i] === 0 ||
      xv[i] === 0;
    const what = `atan2(${yv[i]}, ${xv[i]}): got ${out[i]}, Math gives ${want}`;
    if (exact) assert.ok(Object.is(out[i], want), what);
    else {
      const u = ulps(out[i], want);
      worst = Math.max(worst, u);
      assert.ok(u <= MAX_ULP, what);
    }
  }
  t.diagnostic(`atan2: worst ${worst} ulp over ${yv.length} pairs`);
  // a broadcast operand (stride 0, the SIMD form with a splat), in place, and a fused program (run op by op)
  const y0 = new Float32Array(xv.length).fill(0.75);
  const bc = new Float32Array(xv.length);
  W.binary(
    "atan2",
    { data: Float32Array.of(0.75), shape: [xv.length], strides: [0], offset: 0 },
    view(xv),
    bc,
  );
  const full = new Float32Array(xv.length);
  W.binary("atan2", view(y0), view(xv), full);
  const inPlace = yv.slice();
  W.binary("atan2", view(inPlace), view(xv), inPlace);
  const fused = new Float32Array(yv.length);
  W.fused!(
    fusedProgram("float32", [
      { kind: "input", index: 0 },
      { kind: "input", index: 1 },
      { kind: "binary", op: "atan2", a: 0, b: 1 },
    ]),
    [view(yv), view(xv)],
    [fused],
  );
  for (let i = 0; i < xv.length; i++) {
    assert.ok(Object.is(bc[i], full[i]), `atan2(0.75, ${xv[i]}) broadcast: ${bc[i]}, not ${full[i]}`);
    assert.ok(
      Object.is(inPlace[i], out[i]),
      `atan2(${yv[i]}, ${xv[i]}) in place: ${inPlace[i]}, not ${out[i]}`,
    );
    assert.ok(Object.is(fused[i], out[i]), `fused atan2(${yv[i]}, ${xv[i]}): ${fused[i]}, not ${out[i]}`);
  }
  // float64: Math.atan2 (AssemblyScript's), within 2 ulp of V8's
  const od = new Float64Array(yv.length);
  assert.ok(
    inWasm("binary", () => W.binary("atan2", view(Float64Array.from(yv)), view(Float64Array.from(xv)), od)),
  );
  for (let i = 0; i < yv.length; i++) {
    const want = Math.atan2(yv[i], xv[i]);
    assert.ok(
      Object.is(od[i], want) || Math.abs(od[i] - want) <= 2 ** -51 * Math.abs(want),
      `float64 atan2(${yv[i]}, ${xv[i]}): ${od[i]}, Math gives ${want}`,
    );
  }
});

test("wasm float32 math: the relaxed-SIMD and SIMD128 builds give the same bits (no relaxed instructions)", () => {
  // a child process with relaxed SIMD enabled (Node 20 validates it only behind a flag)
  const child = fileURLToPath(new URL("./wasm-vmath-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", child], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    relaxed: boolean;
    compared: number;
    mismatches: string[];
    fallbacks: Record<string, number>;
  };
  assert.ok(report.relaxed, "the child loaded the relaxed-SIMD build and the SIMD128 one");
  assert.ok(report.compared > 7e7, `compared ${report.compared}`);
  assert.deepEqual(report.mismatches, []);
  assert.deepEqual(report.fallbacks, {}, "every call ran in wasm");
});

test("wasm sin, cos, tan where AssemblyScript's reduction misread its table (2^20 pi/2 <= |x| < 2^22): float64 and strided float32", () => {
  // 1855979.52 is the differential fuzzer's case; then a sweep of the range, both signs; float32 through a
  // stride-2 view (the scalar route, as row tails take it)
  const xs: number[] = [1855979.52, -1855979.52, 1647099.5, 4194303.9];
  for (let i = 0; i < 4000; i++) {
    const v = 1647099.5 + (4194303 - 1647099.5) * (i / 4000) + 0.37;
    xs.push(i % 2 === 0 ? v : -v);
  }
  const x64 = Float64Array.from(xs);
  const x32 = new Float32Array(2 * xs.length);
  xs.forEach((v, i) => {
    x32[2 * i + 1] = v;
  });
  for (const [op, f] of [
    ["sin", Math.sin],
    ["cos", Math.cos],
    ["tan", Math.tan],
  ] as const) {
    const o64 = new Float64Array(xs.length);
    W.unary(op, { data: x64, shape: [xs.length], strides: [1], offset: 0 }, o64);
    const o32 = new Float32Array(xs.length);
    W.unary(op, { data: x32, shape: [xs.length], strides: [2], offset: 1 }, o32);
    for (let i = 0; i < xs.length; i++) {
      const want = f(x64[i]);
      assert.ok(
        Math.abs(o64[i] - want) <= 1e-14 * Math.max(1, Math.abs(want)),
        `float64 ${op}(${x64[i]}): ${o64[i]}, Math gives ${want}`,
      );
      const x = x32[2 * i + 1];
      const w32 = Math.fround(f(x));
      assert.ok(ulps(o32[i], w32) <= 1, `float32 ${op}(${x}) strided: ${o32[i]}, Math gives ${w32}`);
    }
  }
});

/** ulp(v) of float32, for the GELU bounds: 2^-149 in the subnormal range. */
function ulpOf(v: number): number {
  const f = Math.abs(Math.fround(v));
  return f < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(f)) - 23);
}

test("wasm float32 gelu within 8 ulp and geluDeriv within 4 ulp + 2^-24 (|Phi| + |x phi|) of the js backend's float64, specials exact; in place and fused give the plain bits", (t) => {
  // geluDeriv = Phi(x) + x phi(x) has a zero near x = -0.7518, where the two terms cancel: its bound counts
  // units of ulp(result) + 2^-24 times the terms' magnitudes (what float32 arithmetic on them can promise);
  // gelu = x Phi(x) is a product, bounded in ulp of the result (Phi keeps its relative precision in the lower
  // tail, down to the subnormal range)
  const xs = Float32Array.from([...inputs(), ...bitSweep()]);
  for (const [op, ref, bound] of [
    ["gelu", geluRef, 8],
    ["geluDeriv", geluDerivRef, 4],
  ] as const) {
    const got = run(op, xs);
    let worst = 0;
    let at = 0;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      const want = Math.fround(ref(x));
      const g = got[i];
      if (!Number.isFinite(want) || !Number.isFinite(g)) {
        assert.ok(Object.is(g, want), `${op}(${x}): got ${g}, the js backend gives ${want}`);
        continue;
      }
      if (want === 0) {
        // a zero of either sign: far in the lower tail both terms underflow, and the js backend's sign of
        // zero there comes from its float64 e^(-x^2) split (gelu(-3e38) is +0 in js, -0 here and on native)
        assert.ok(g === 0, `${op}(${x}): got ${g}, the js backend gives ${want}`);
        continue;
      }
      const terms =
        op === "gelu"
          ? 0
          : Math.abs(normalCdf(x)) + Math.abs((x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
      const e = Math.abs(g - want) / (ulpOf(want) + 2 ** -24 * terms);
      if (e > worst) {
        worst = e;
        at = x;
      }
    }
    t.diagnostic(`${op}: worst ${worst.toFixed(2)} units at x = ${at}`);
    assert.ok(worst <= bound, `${op}: ${worst} units at x = ${at}`);
    // specials in every lane: NaN, gelu(-Inf) = NaN, gelu(+Inf) = +Inf, geluDeriv(-Inf) = 0, (+Inf) = 1, signed zeros
    for (let lane = 0; lane < 4; lane++) {
      const sx = specialsInLane(lane);
      const sp = run(op, sx);
      for (let i = 0; i < sx.length; i++) {
        const want = Math.fround(ref(sx[i]));
        if (!Number.isFinite(want))
          assert.ok(Object.is(sp[i], want), `${op}(${sx[i]}) lane ${lane}: got ${sp[i]}, want ${want}`);
        // signed zeros in, the sign of zero out (gelu(+-0) = +-0, geluDeriv(+-0) = 1/2); other zeros as above
        if (Object.is(sx[i], 0) || Object.is(sx[i], -0))
          assert.ok(Object.is(sp[i], want), `${op}(${sx[i]}): ${sp[i]}`);
        else if (want === 0) assert.ok(sp[i] === 0, `${op}(${sx[i]}) lane ${lane}: got ${sp[i]}`);
      }
    }
    // in place, and one-op fused programs (generated code and the tile interpreter): the plain kernel's bits
    const a = xs.slice();
    W.unary(op, view(a), a);
    for (const codegen of [true, false]) {
      setFusedCodegen(codegen);
      const c = new Float32Array(xs.length);
      try {
        W.fused!(oneOp(op), [view(xs)], [c]);
      } finally {
        setFusedCodegen(true);
      }
      for (let i = 0; i < xs.length; i += 7) {
        assert.ok(Object.is(a[i], got[i]), `${op}(${xs[i]}) in place: ${a[i]}, not ${got[i]}`);
        assert.ok(
          Object.is(c[i], got[i]),
          `fused ${op}(${xs[i]}) [codegen ${codegen}]: ${c[i]}, not ${got[i]}`,
        );
      }
    }
    // float64: the js backend's algorithm on AssemblyScript's Math (exp within 2 ulp of V8's; Phi = (1 + erf(-z)) / 2
    // for z < 1 magnifies erf's last bits up to 5x near z = 1)
    const xd = Float64Array.from(inputs());
    const od = new Float64Array(xd.length);
    assert.ok(inWasm("unary", () => W.unary(op, view(xd), od)));
    for (let i = 0; i < xd.length; i++) {
      const want = ref(xd[i]);
      const x = xd[i];
      const terms =
        op === "gelu"
          ? 0
          : Math.abs(normalCdf(x)) + Math.abs((x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
      assert.ok(
        Object.is(od[i], want) || Math.abs(od[i] - want) <= 2 ** -46 * (Math.abs(want) + terms + 1e-300),
        `float64 ${op}(${xd[i]}): ${od[i]}, the js backend gives ${want}`,
      );
    }
  }
});
