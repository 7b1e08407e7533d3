/**
 * The wasm backend's generated fused kernels flush subnormals to zero for the float32 Adam programs as jit traces
 * them (src/backend/wasm/fused.ts isAdam, codegen.ts "Subnormals"), as native's compiled Adam patterns and the
 * eager wasm Adam do: WebAssembly has no FTZ mode, so the generated code clears, by integer compares of the
 * magnitude bits, the operands of a multiply whose product would be subnormal (and the step's scalars), not the
 * results of add, sub or div. The Adam variants (the g = 1e-20 case also the library's functional Adam and
 * AdamW, alone and jitted), the step's scalars as consts or broadcast inputs, sizes with
 * and without a SIMD part and a scalar tail: with g = 1e-20, v' is +0 where the op-by-op program stores a
 * subnormal, m' and p' keep its bits; around FLT_MIN the results are those of a model in JavaScript (float32 op
 * by op, the multiplies' operands flushed), in which no multiply reads or makes a subnormal, and where neither p
 * nor an add, sub or div result is subnormal those of a float32 machine with FTZ and DAZ; NaN and infinities
 * propagate as op by op;
 * momentum, near misses and float64 keep IEEE subnormals; a jitted Adam step on wasm leaves v at 0.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { fusedByOps } from "../../src/backend/fused.ts";
import { jit, tensor } from "../../src/index.ts";
import { onBackend } from "../backends.ts";
import {
  adamUpdateOps,
  assertSameBits,
  checkFunctionalAdamFlush,
  type OptimizerVariant,
  optimizerProgram,
  Rng,
  type TensorDict,
  wasm,
} from "../fuse-programs.ts";

const be = wasm();
const FLT_MIN = 2 ** -126;
/** Neither zero nor normal: a float32 subnormal (or, with `min`, a float64 one). */
const subnormal = (x: number, min = FLT_MIN) => x !== 0 && Math.abs(x) < min;
/** x for a message, -0 as such. */
const show = (x: number) => (Object.is(x, -0) ? "-0" : String(x));
/** Sizes: no SIMD part (1, 3), one vector (4), a vector and a tail (5), many vectors and a tail (1031). */
const SIZES = [1, 3, 4, 5, 1031];
const ADAMS = ["adam", "adam-eps"] as const;

type Scalars = { a: number; c: number };

/**
 * Run `variant` over n elements fused (wasm's generated kernel) and op by op (wasm's own kernels), the inputs
 * filled by `fill(name, i)`, the scalars a and c (broadcast inputs) from `scalars`, the consts (b1, 1 - b1, b2,
 * 1 - b2, [a, [c,]] eps: float32 values) from `consts` if given. Returns the outputs by name
 * (m' or momentum's b' as "m", "v", "p", and "q" for the extra output).
 */
function run(
  dtype: "float32" | "float64",
  variant: OptimizerVariant,
  scalarInputs: boolean,
  order: number[],
  n: number,
  fill: (name: string, i: number) => number,
  scalars: Scalars = { a: 0.0123, c: 1.7 },
  consts?: readonly number[],
): { got: Record<string, Float32Array | Float64Array>; want: Record<string, Float32Array | Float64Array> } {
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const built = optimizerProgram(dtype, variant, scalarInputs, order);
  const names = built.names;
  // other const values: the same program (its key and generated kernel), the consts passed at run time
  const prog =
    consts === undefined ? built.prog : { ...built.prog, consts: Float64Array.from(consts, Math.fround) };
  const inputs = names.map((name): View => {
    if (name === "a" || name === "c")
      return { data: T.of(scalars[name]), shape: [n], strides: [0], offset: 0 };
    const data = new T(n);
    for (let i = 0; i < n; i++) data[i] = fill(name, i);
    return { data, shape: [n], strides: [1], offset: 0 };
  });
  const wantArr = Array.from(prog.outputs, () => new T(n));
  fusedByOps(be, prog, inputs, wantArr);
  const gotArr = Array.from(prog.outputs, () => new T(n));
  be.fused!(prog, inputs, gotArr);
  const outNames = variant === "momentum" ? ["m", "p"] : ["m", "v", "p", "q"];
  const got: Record<string, Float32Array | Float64Array> = {};
  const want: Record<string, Float32Array | Float64Array> = {};
  order.forEach((o, j) => {
    got[outNames[o]] = gotArr[j];
    want[outNames[o]] = wantArr[j];
  });
  return { got, want };
}

/** Output orders: the program's and a rotated one (the pattern matches the outputs in any order). */
const ORDERS = [
  [0, 1, 2],
  [2, 0, 1],
];

describe("wasm fused Adam flushes subnormals to zero", () => {
  test("g = 1e-20: v' is +0 where op by op it is subnormal, m' and p' are the op-by-op bits", () => {
    const rng = new Rng(5);
    // (the library's functional Adam and AdamW, "adam-lib" / "adamw-lib", flush by the same rules)
    for (const variant of [...ADAMS, "adam-lib", "adamw-lib"] as const) {
      for (const scalarInputs of [false, true]) {
        for (const n of SIZES) {
          for (const order of ORDERS) {
            const what = `${variant} scalars ${scalarInputs ? "inputs" : "consts"} n ${n} order ${order}`;
            // v: 0 at even elements (v' = 1e-43 op by op), a normal value at odd ones
            const { got, want } = run("float32", variant, scalarInputs, order, n, (name, i) =>
              name === "g"
                ? i % 3 === 1
                  ? -1e-20
                  : 1e-20
                : name === "v"
                  ? i % 2 === 0
                    ? 0
                    : rng.next() * 2 + 1e-3
                  : rng.next() * 6 - 3,
            );
            let flushed = 0;
            for (let i = 0; i < n; i++) {
              if (subnormal(want.v[i])) {
                assert.ok(Object.is(got.v[i], 0), `${what}: v'[${i}] = ${got.v[i]}, op by op ${want.v[i]}`);
                flushed++;
              } else
                assert.ok(Object.is(got.v[i], want.v[i]), `${what}: v'[${i}] ${got.v[i]} != ${want.v[i]}`);
            }
            assert.equal(
              flushed,
              Math.ceil(n / 2),
              `${what}: op by op v' is subnormal at every even element`,
            );
            assertSameBits(got.m, want.m, `${what}: m'`);
            assertSameBits(got.p, want.p, `${what}: p'`);
          }
        }
      }
    }
  });

  test("around FLT_MIN, subnormal inputs, scalars and consts at their edges: no multiply reads or makes a subnormal", () => {
    // What the flush guarantees, as a model: float32 op by op (IEEE: add, sub, div and sqrt keep subnormals),
    // but the step's scalars and consts are flushed once below FLT_MIN (to a zero of their sign), the operand x
    // of each multiply by a fixed c below B(c) = max(FLT_MIN, FLT_MIN / |c| (1 + 2^-20)) (a zero of x's sign),
    // and g in g g (1 - b2) below max(sqrt(FLT_MIN / |1 - b2|) (1 + 2^-20), 2^-63 (1 + 2^-20)) (+0). So no
    // multiply has a subnormal operand or result (checked on the model), and where neither p nor an add, sub or
    // div result is subnormal the outputs are those of a float32 machine with FTZ and DAZ (checked too).
    const f = Math.fround;
    const zero = (x: number) => (x < 0 || Object.is(x, -0) ? -0 : 0);
    const flushBelow = (x: number, bound: number) => (Math.abs(x) < bound ? zero(x) : x);
    const fixed = (x: number) => flushBelow(f(x), FLT_MIN);
    const bound = (c: number, sq: boolean) => {
      const floor = sq ? f(2 ** -63 * (1 + 2 ** -20)) : FLT_MIN;
      if (Number.isNaN(c)) return floor;
      const q = FLT_MIN / Math.abs(c);
      return Math.max(floor, f((sq ? Math.sqrt(q) : q) * (1 + 2 ** -20)));
    };
    let multiplies = 0;
    /** x * c, x flushed below `b` to `z(x)` first; neither its operands nor its result subnormal. */
    const mulc = (x: number, c: number, b: number, z: (x: number) => number) => {
      const y = Math.abs(x) < b ? z(x) : x;
      const r = f(y * c);
      assert.ok(!subnormal(y) && !subnormal(c) && !subnormal(r), `multiply ${y} * ${c} = ${r}`);
      multiplies++;
      return r;
    };
    /** g g, g flushed below `b` to +0 first (the sign of a square's zero is +). */
    const square = (g: number, b: number) => {
      const y = Math.abs(g) < b ? 0 : g;
      const r = f(y * y);
      assert.ok(!subnormal(y) && !subnormal(r), `square of ${y} = ${r}`);
      return r;
    };
    // float32 with FTZ and DAZ: every operand and every result below FLT_MIN is a zero of its sign
    const ftz = (x: number) => flushBelow(x, FLT_MIN);
    const op = (g: (x: number, y: number) => number) => (x: number, y: number) => ftz(f(g(ftz(x), ftz(y))));
    const fAdd = op((x, y) => x + y);
    const fSub = op((x, y) => x - y);
    const fMul = op((x, y) => x * y);
    const fDiv = op((x, y) => x / y);
    const fSqrt = (x: number) => ftz(f(Math.sqrt(ftz(x))));
    const rng = new Rng(9);
    // magnitudes 2^-136 .. 2^-116 (subnormal to a little above FLT_MIN), then a few normal values and zeros
    const tiny = () => {
      const u = rng.next();
      if (u < 0.1) return rng.choice([0, -0, 1, -0.5]);
      return (rng.next() < 0.5 ? -1 : 1) * 2 ** (-136 + 20 * rng.next());
    };
    const scalarCases: Scalars[] = [
      { a: 0.0123, c: 1.7 },
      { a: 1e-39, c: 1.7 }, // a subnormal scalar: 0 (DAZ)
      { a: 0.5, c: 3e-38 }, // c close to FLT_MIN: sqrt(v') c is often subnormal
      { a: 1e30, c: 2e-30 },
    ];
    // b1, 1 - b1, b2, 1 - b2 (then a, c for "adam" with consts), eps: the defaults, then values at the edges
    // of the bounds (0, -0, NaN, infinities, negative, subnormal, huge, near FLT_MIN)
    const constCases: number[][] = [
      [0.9, 0.1, 0.999, 0.001, 0.0123, 1.7, 1e-8],
      [0.9, 0.1, 0.999, 0, 0.0123, 0, 0],
      [0.9, -0, 0.999, Infinity, 3e-38, -0, -0],
      [-0.5, 0.1, 1e-39, Number.NaN, 0.0123, 1.7, -1e-30],
      [Number.NaN, 1e30, -Infinity, 1e30, -2, Infinity, 1e-8],
      [0.9, 3e-38, 0.999, 3e-38, 0.0123, Number.NaN, 1e-8],
      [0.9, 0.1, 0.999, -0.001, Infinity, 1.7, 1e-8],
    ];
    let ftzChecked = 0;
    for (const variant of ADAMS) {
      for (const scalarInputs of [false, true]) {
        for (const n of SIZES) {
          const cases = scalarInputs
            ? scalarCases.map((sc) => [sc, constCases[0]] as const)
            : constCases.map((cc) => [scalarCases[0], cc] as const);
          for (const [scalars, cc] of cases) {
            // the program's consts: a and c only for consts, c only in "adam"
            const consts = [
              ...cc.slice(0, 4),
              ...(scalarInputs ? [] : cc.slice(4, variant === "adam" ? 6 : 5)),
              cc[6],
            ];
            const what = `${variant} scalars ${scalarInputs ? `a ${scalars.a} c ${scalars.c}` : "consts"} [${consts}] n ${n}`;
            const data: Record<string, number[]> = { m: [], g: [], v: [], p: [] };
            const fill = (name: string, i: number) => {
              const x = name === "v" ? Math.abs(tiny()) : name === "g" && i % 4 === 0 ? 1e-20 : tiny();
              data[name][i] = f(x);
              return x;
            };
            const { got, want } = run("float32", variant, scalarInputs, [0, 1, 2], n, fill, scalars, consts);
            const [b1, c1, b2, c2] = cc.map(fixed);
            const a = fixed(scalarInputs ? scalars.a : cc[4]);
            const c = fixed(scalarInputs ? scalars.c : cc[5]);
            const eps = fixed(cc[6]);
            const [B1, C1, B2, A, C] = [b1, c1, b2, a, c].map((x) => bound(x, false));
            const G2 = bound(c2, true);
            let differs = 0;
            for (let i = 0; i < n; i++) {
              const [m, g, v, p] = [data.m[i], data.g[i], data.v[i], data.p[i]];
              const m2 = f(mulc(m, b1, B1, zero) + mulc(g, c1, C1, zero));
              const v2 = f(mulc(v, b2, B2, zero) + mulc(square(g, G2), c2, 0, zero));
              const r = f(Math.sqrt(v2));
              const den = variant === "adam" ? f(mulc(r, c, C, zero) + eps) : f(r + eps);
              const q = f(mulc(m2, a, A, zero) / den);
              const p2 = f(p - q);
              const model = { m: m2, v: v2, p: p2 };
              for (const name of ["m", "v", "p"] as const) {
                assert.ok(
                  Object.is(got[name][i], model[name]),
                  `${what}: ${name}'[${i}] = ${show(got[name][i])}, model ${show(model[name])}`,
                );
                if (!Object.is(want[name][i], model[name])) differs++;
              }
              // FTZ and DAZ: the same where p and the add, sub and div results are not subnormal
              if ([p, m2, v2, den, q, p2].some(subnormal)) continue;
              const fm2 = fAdd(fMul(m, b1), fMul(g, c1));
              const fv2 = fAdd(fMul(v, b2), fMul(fMul(g, g), c2));
              const fr = fSqrt(fv2);
              const fden = variant === "adam" ? fAdd(fMul(fr, c), eps) : fAdd(fr, eps);
              const fp2 = fSub(p, fDiv(fMul(fm2, a), fden));
              const ftzModel = { m: fm2, v: fv2, p: fp2 };
              for (const name of ["m", "v", "p"] as const)
                assert.ok(
                  Object.is(got[name][i], ftzModel[name]),
                  `${what}: ${name}'[${i}] = ${show(got[name][i])}, FTZ and DAZ ${show(ftzModel[name])}`,
                );
              ftzChecked++;
            }
            if (n === 1031) assert.ok(differs > 0, `${what}: op by op differs from the model somewhere`);
          }
        }
      }
    }
    // not vacuous: many multiplies checked, and many elements against FTZ and DAZ
    assert.ok(
      multiplies > 10000 && ftzChecked > 1000,
      `${multiplies} multiplies, ${ftzChecked} FTZ elements`,
    );
  });

  test("NaN and infinities (in the arrays and as the step's scalars) propagate as op by op", () => {
    const rng = new Rng(13);
    const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 1e30, -1e-30, 1, -1];
    const scalarCases: Scalars[] = [
      { a: 0.0123, c: 1.7 },
      { a: Number.NaN, c: 1.7 },
      { a: 0.0123, c: Number.NaN },
      { a: Infinity, c: 0 },
      { a: -0, c: Infinity },
      { a: 0, c: -Infinity },
    ];
    for (const variant of ADAMS) {
      for (const scalarInputs of [false, true]) {
        for (const n of SIZES) {
          for (const scalars of scalarInputs ? scalarCases : scalarCases.slice(0, 1)) {
            const what = `${variant} scalars ${scalarInputs ? `a ${scalars.a} c ${scalars.c}` : "consts"} n ${n}`;
            const { got, want } = run(
              "float32",
              variant,
              scalarInputs,
              [1, 2, 0],
              n,
              (name) => {
                const u = rng.next();
                if (u < 0.3) return rng.choice(SPECIAL);
                return name === "v" ? rng.next() * 2 : rng.next() * 6 - 3;
              },
              scalars,
            );
            for (const name of ["m", "v", "p"]) assertSameBits(got[name], want[name], `${what}: ${name}'`);
          }
        }
      }
    }
    // not vacuous: NaN and infinities came out
    const { got } = run("float32", "adam", true, [0, 1, 2], 64, (_, i) =>
      i % 2 === 0 ? Number.NaN : i % 3 === 0 ? Infinity : 1,
    );
    assert.ok(got.p.some(Number.isNaN) && got.m.some((x) => x === Infinity));
  });

  test("momentum, near misses and float64 keep IEEE subnormals (the op-by-op bits)", () => {
    const cases: [OptimizerVariant, number[]][] = [
      ["momentum", [0, 1]],
      ["swapped", [0, 1, 2]],
      ["extra-output", [0, 1, 2, 3]],
    ];
    for (const n of SIZES) {
      for (const [variant, order] of cases) {
        for (const scalarInputs of variant === "momentum" ? [false] : [false, true]) {
          const what = `${variant} scalars ${scalarInputs ? "inputs" : "consts"} n ${n}`;
          // momentum: b' = 0.9 b + g with g = 1e-40 (subnormal); the others: v' = 1e-43
          const { got, want } = run("float32", variant, scalarInputs, order, n, (name) =>
            name === "g" ? (variant === "momentum" ? 1e-40 : 1e-20) : name === "p" ? 0.5 : 0,
          );
          const sub = variant === "momentum" ? want.m : want.v;
          assert.ok(
            sub.every((x) => subnormal(x)),
            `${what}: op by op the moment is subnormal`,
          );
          for (const name of Object.keys(want)) assertSameBits(got[name], want[name], `${what}: ${name}'`);
        }
      }
      // float64 Adam: g = 1e-160, so g^2 (1 - b2) = 1e-323 is a float64 subnormal, kept
      for (const variant of ADAMS) {
        const { got, want } = run("float64", variant, true, [0, 1, 2], n, (name) =>
          name === "g" ? 1e-160 : name === "p" ? 0.5 : 0,
        );
        assert.ok(
          want.v.every((x) => subnormal(x, 2 ** -1022)),
          `float64 ${variant} n ${n}: v' is subnormal`,
        );
        for (const name of ["m", "v", "p"])
          assertSameBits(got[name], want[name], `float64 ${variant} n ${n}`);
      }
    }
  });

  for (const name of ["adam", "adamw"] as const) {
    test(`a jitted functional ${name} step on wasm flushes its subnormal moments; p and m are the op-by-op bits`, () =>
      checkFunctionalAdamFlush(be, name));
  }

  test("a jitted Adam step on wasm with g = 1e-20 leaves v at 0; p and m are the eager bits", () => {
    onBackend(be, () => {
      const [b1, b2] = [0.9, 0.999];
      type D = TensorDict;
      const update = adamUpdateOps;
      const step = jit(update, { donateArgnums: [0, 2, 3] });
      const rng = new Rng(3);
      const shapes: Record<string, number[]> = { w: [37, 29], b: [29], s: [1] };
      const make = (shape: number[], f: () => number) =>
        tensor(Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, f), { shape });
      let p: D = {};
      let m: D = {};
      let v: D = {};
      const g: D = {};
      for (const [k, s] of Object.entries(shapes)) {
        p[k] = make(s, () => rng.next() * 2 - 1);
        m[k] = make(s, () => 0);
        v[k] = make(s, () => 0);
        g[k] = make(s, () => (rng.next() < 0.5 ? -1e-20 : 1e-20));
      }
      let pe = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.clone()]));
      let me = Object.fromEntries(Object.entries(m).map(([k, t]) => [k, t.clone()]));
      let ve = Object.fromEntries(Object.entries(v).map(([k, t]) => [k, t.clone()]));
      for (let t = 1; t <= 3; t++) {
        const a = tensor(1e-3 / (1 - b1 ** t));
        const c = tensor(1 / Math.sqrt(1 - b2 ** t));
        [pe, me, ve] = update(pe, g, me, ve, a, c);
        [p, m, v] = step(p, g, m, v, a, c);
        for (const k of Object.keys(shapes)) {
          const vj = v[k].dataSync();
          const veager = ve[k].dataSync();
          assert.ok(
            veager.every((x) => subnormal(x)),
            `step ${t} v.${k}: eager ops leave a subnormal v`,
          );
          assert.ok(
            vj.every((x) => Object.is(x, 0)),
            `step ${t} v.${k}: jitted v is +0 (${vj.find((x) => !Object.is(x, 0))})`,
          );
          assertSameBits(p[k].dataSync(), pe[k].dataSync(), `step ${t} p.${k}`);
          assertSameBits(m[k].dataSync(), me[k].dataSync(), `step ${t} m.${k}`);
        }
      }
    });
  });
});
