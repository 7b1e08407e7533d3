/**
 * The fused exact GELU (unary kernels gelu / geluDeriv) and layer normalisation (layerNorm / layerNormBackward)
 * beyond the op table's random samples: the GELU's lower tail to full relative precision, its values and
 * derivative at the infinities, the native float32 kernels on a dense grid against the float64 js reference,
 * jit's fused programs holding gelu equal to eager bit for bit, LayerNorm equal to the composition it replaced
 * (also on rows far from 0, where E[x^2] - mean^2 would cancel), and a constant row.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend } from "../../src/backend/backend.ts";
import { jsBackend } from "../../src/backend/js/index.ts";
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { grad, jit, type Tensor, tensor } from "../../src/index.ts";
import { LayerNorm, layerNorm } from "../../src/nn/index.ts";
import { onBackend } from "../backends.ts";
import { erfRef } from "../ref.ts";

const f64 = { dtype: "float64" as const };
const native = loadNativeBackend();
const nativeOrSkip = "backend" in native ? false : `native backend unavailable: ${native.error}`;
const nb = (): Backend => (native as { backend: Backend }).backend;

const values = (t: Tensor) => Array.from(t.dataSync() as ArrayLike<number>, Number);

/** Phi(x) for x >= -6 from the Taylor series of erf (test/ref.ts): an independent computation. */
const phiRef = (x: number) => 0.5 * (1 + erfRef(x / Math.SQRT2));

describe("gelu", () => {
  test("float64 values and derivatives match x Phi(x) and Phi(x) + x phi(x) (erf by its Taylor series)", () => {
    const xs = [-3, -1.25, -0.5, -1e-3, 0, 0.3, 1, 2.75];
    const y = values(tensor(xs, f64).gelu());
    const d = values(grad((x: Tensor) => x.gelu().sum())(tensor(xs, f64)) as Tensor);
    xs.forEach((x, i) => {
      const want = x * phiRef(x);
      assert.ok(
        Math.abs(y[i] - want) <= 1e-12 * Math.abs(want) + 1e-16,
        `gelu(${x}) = ${y[i]}, want ${want}`,
      );
      const dwant = phiRef(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
      assert.ok(Math.abs(d[i] - dwant) <= 1e-13, `gelu'(${x}) = ${d[i]}, want ${dwant}`);
    });
  });

  test("the lower tail keeps its relative precision (Phi from erfc, not 1 + erf)", () => {
    // Phi(-10) = 7.6198530241605260659733432515993e-24 and Phi(-20) = 2.7536241186062336951e-89 (tables)
    const [g10, g20] = values(tensor([-10, -20], f64).gelu());
    assert.ok(Math.abs(g10 / (-10 * 7.61985302416053e-24) - 1) < 1e-13, `gelu(-10) = ${g10}`);
    assert.ok(Math.abs(g20 / (-20 * 2.75362411860623e-89) - 1) < 1e-12, `gelu(-20) = ${g20}`);
  });

  test("infinities and NaN: gelu(+inf) = inf, gelu(-inf) = NaN (as the composition); gelu' has the limits 1 and 0", () => {
    const x = tensor([Infinity, -Infinity, Number.NaN], f64);
    const [a, b, c] = values(x.gelu());
    assert.equal(a, Infinity);
    assert.ok(Number.isNaN(b) && Number.isNaN(c));
    const [da, db, dc] = values(grad((t: Tensor) => t.gelu().sum())(x) as Tensor);
    assert.equal(da, 1);
    assert.equal(db, 0);
    assert.ok(Number.isNaN(dc));
  });

  // float32: 2e-6 relative down to x = -5; below, the rounding of x^2 / 2 in the float32 exponent grows the
  // relative error towards ~1e-5 at x = -12 (values ~1e-32; the composition 1 + erf loses all digits there)
  test("native float32 kernels on a dense grid: within 2e-6 relative of the float64 reference (3e-5 below -5)", {
    skip: nativeOrSkip,
  }, () => {
    const n = 24001;
    const grid = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
    for (const op of ["gelu", "geluDeriv"] as const) {
      const got = new Float32Array(n);
      const want = new Float64Array(n);
      const view = { data: grid, shape: [n], strides: [1], offset: 0 };
      nb().unary(op, view, got);
      jsBackend.unary(op, { ...view, data: Float64Array.from(grid) }, want);
      let [worst, worstTail] = [0, 0];
      for (let i = 0; i < n; i++) {
        if (Math.abs(want[i]) < 1e-35) continue; // float32 underflow
        // geluDeriv has a root near -0.75, where its two terms (~0.2 each) cancel: there the error is measured
        // against 0.05 (1e-7 absolute, a few float32 ulps of the terms)
        const err = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), op === "geluDeriv" ? 0.05 : 0);
        if (grid[i] >= -5) worst = Math.max(worst, err);
        else worstTail = Math.max(worstTail, err);
      }
      assert.ok(worst < 2e-6, `${op}: worst relative error ${worst} on [-5, 12]`);
      assert.ok(worstTail < 3e-5, `${op}: worst relative error ${worstTail} on [-12, -5)`);
    }
  });

  test("jit fuses gelu into elementwise programs with the bits of the eager kernels (native)", {
    skip: nativeOrSkip,
  }, () => {
    onBackend(nb(), () => {
      const x = tensor(
        Float32Array.from({ length: 999 }, (_, i) => Math.sin(i * 0.37) * 6),
        { shape: [27, 37] },
      );
      const f = (t: Tensor) => t.mul(1.5).add(0.25).gelu().mul(t);
      const df = grad((t: Tensor) => f(t).sum());
      assert.deepEqual(values(jit(f)(x)), values(f(x)));
      assert.deepEqual(values(jit(df)(x) as Tensor), values(df(x) as Tensor));
    });
  });
});

/** LayerNorm as it was before the fused primitive: mean, centre, biased variance, divide, affine. */
function composed(x: Tensor, k: number, w: Tensor | null, b: Tensor | null, eps: number): Tensor {
  const axes = Array.from({ length: k }, (_, i) => x.ndim - k + i);
  const c = x.sub(x.mean(axes, true));
  let y = c.div(c.square().mean(axes, true).add(eps).sqrt());
  if (w !== null) y = y.mul(w);
  if (b !== null) y = y.add(b);
  return y;
}

describe("layerNorm", () => {
  const data = Array.from({ length: 2 * 3 * 8 }, (_, i) => Math.cos(i * 1.3) * 2 + (i % 5));
  for (const [name, b] of [
    ["js", () => jsBackend],
    ["native", nb],
  ] as const) {
    test(`${name}: LayerNorm (1 and 2 normalised dims, with and without affine) equals the composition, values and gradients`, {
      skip: name === "native" ? nativeOrSkip : false,
    }, () => {
      onBackend(b(), () => {
        for (const [ns, affine] of [
          [[8], true],
          [[3, 8], true],
          [[8], false],
        ] as const) {
          const ln = new LayerNorm(ns, { elementwiseAffine: affine, dtype: "float64", eps: 1e-3 });
          const m = ns.reduce((a, d) => a * d, 1);
          const shape = [...ns];
          if (ln.weight !== null)
            ln.weight = tensor(
              Float64Array.from({ length: m }, (_, i) => 1 + i * 0.1),
              { shape },
            );
          if (ln.bias !== null)
            ln.bias = tensor(
              Float64Array.from({ length: m }, (_, i) => i * 0.05 - 1),
              { shape },
            );
          const x = tensor(Float64Array.from(data), { shape: [2, 3, 8] });
          const c = tensor(
            Float64Array.from(data, (v) => Math.sin(v)),
            { shape: [2, 3, 8] },
          );
          const got = ln.call(x);
          const want = composed(x, ns.length, ln.weight, ln.bias, 1e-3);
          const [vg, vw] = [values(got), values(want)];
          for (let i = 0; i < vw.length; i++) assert.ok(Math.abs(vg[i] - vw[i]) < 1e-12, `${ns} value ${i}`);
          const gGot = grad((t: Tensor) => ln.call(t).mul(c).sum().square())(x) as Tensor;
          const gWant = grad((t: Tensor) =>
            composed(t, ns.length, ln.weight, ln.bias, 1e-3).mul(c).sum().square(),
          )(x) as Tensor;
          const [gg, gw] = [values(gGot), values(gWant)];
          for (let i = 0; i < gw.length; i++) assert.ok(Math.abs(gg[i] - gw[i]) < 1e-10, `${ns} grad ${i}`);
        }
      });
    });

    test(`${name}: float32 rows far from 0 (1e4 + a spread of 1) and a constant row`, {
      skip: name === "native" ? nativeOrSkip : false,
    }, () => {
      onBackend(b(), () => {
        const row = Array.from({ length: 37 }, (_, i) => 1e4 + Math.sin(i));
        const x = tensor(Float32Array.from([...row, ...new Array(37).fill(3)]), { shape: [2, 37] });
        const y = values(layerNorm(x, 37));
        const want = values(
          composed(tensor(Float64Array.from(values(x)), { shape: [2, 37] }), 1, null, null, 1e-5),
        );
        for (let i = 0; i < 37; i++)
          assert.ok(Math.abs(y[i] - want[i]) < 2e-3, `row far from 0, ${i}: ${y[i]} vs ${want[i]}`);
        for (let i = 37; i < 74; i++) assert.equal(y[i], 0, "constant row");
        const g = values(grad((t: Tensor) => layerNorm(t, 37).mul(t).sum())(x) as Tensor);
        assert.ok(g.every(Number.isFinite), "finite gradient on the constant row");
      });
    });
  }

  test("errors name the op, the shapes and what was expected", () => {
    const x = tensor([[1, 2, 3]]);
    assert.throws(() => layerNorm(x, 4), /layerNorm: expected input \[\.\.\., 4\], got \[1, 3\]/);
    assert.throws(
      () => layerNorm(x, 3, tensor([1, 2])),
      /layerNorm: weight must have shape \[3\], got \[2\]/,
    );
  });
});
