/**
 * The wasm backend's float32 Adam flushes subnormals to zero (wasm/assembly/optim.ts: WebAssembly has no FTZ mode,
 * so the kernel zeroes the operands whose products would be subnormal): gradients small enough that g^2 is
 * subnormal leave v at 0, a moment decaying under a zero gradient reaches 0 instead of passing through the
 * subnormal range, NaN and infinities pass through, and with normal values the update still agrees with the js
 * reference (which computes in float64 and keeps subnormals).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AdamUpdateParams, View } from "../../src/backend/backend.ts";
import { J, prng, same, W } from "./wasm-helpers.ts";

const FLT_MIN = 1.1754943508222875e-38;
const H: AdamUpdateParams = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: false,
  maximize: false,
  bc1: 0.1,
  bc2Sqrt: Math.sqrt(1 - 0.999),
};
const flat = (data: Float32Array): View => ({ data, shape: [data.length], strides: [1], offset: 0 });
/** Neither zero nor normal: a float32 subnormal. */
const subnormal = (x: number) => x !== 0 && Math.abs(x) < FLT_MIN;

test("wasm Adam: g^2 below the normal range leaves v at zero (the js reference keeps a subnormal v)", () => {
  // 1031 elements: the vector body and a scalar tail
  for (const gval of [1e-20, -3e-19, 2e-21]) {
    const n = 1031;
    const run = (b: typeof W | typeof J) => {
      const p = new Float32Array(n).fill(0.5);
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const g = new Float32Array(n).fill(gval);
      b.adamUpdate!(p, flat(g), m, v, null, H);
      return { p, m, v };
    };
    const w = run(W);
    const j = run(J);
    assert.ok(subnormal(j.v[0]), `js reference: v = ${j.v[0]} is subnormal for g = ${gval}`);
    assert.ok(
      w.v.every((x) => Object.is(x, 0)),
      `g = ${gval}: v flushed to +0`,
    );
    same(w.m, j.m, 1e-6, `g = ${gval}: m = (1 - b1) g, normal`);
    assert.ok(
      w.p.every((x) => x === 0.5),
      `g = ${gval}: p unchanged at float32 precision`,
    );
  }
});

test("wasm Adam: a moment decaying under zero gradients reaches zero without subnormal values", () => {
  const n = 37;
  const p = new Float32Array(n).fill(0.25);
  const m = new Float32Array(n).fill(1e-30);
  const v = new Float32Array(n).fill(1e-36);
  const g = new Float32Array(n);
  let sawZeroM = false;
  let sawZeroV = false;
  for (let t = 0; t < 200; t++) {
    W.adamUpdate!(p, flat(g), m, v, null, H);
    for (let i = 0; i < n; i++) {
      assert.ok(
        !subnormal(m[i]) && !subnormal(v[i]),
        `step ${t}: m = ${m[i]}, v = ${v[i]}: no subnormal stored`,
      );
    }
    sawZeroM ||= m[0] === 0;
    sawZeroV ||= v[0] === 0;
  }
  // m: 1e-30 * 0.9^t falls below FLT_MIN / step = 1.2e-35 after ~110 steps; v: 1e-36 * 0.999^t stays normal
  assert.ok(sawZeroM, `m reached 0 (now ${m[0]})`);
  assert.ok(!sawZeroV && v[0] > FLT_MIN, `v still normal after 200 steps (${v[0]})`);
});

test("wasm Adam: NaN and infinite gradients pass through the flush", () => {
  const g = Float32Array.of(Number.NaN, Infinity, -Infinity, 1e-20, 0.5);
  const p = new Float32Array(5).fill(1);
  const m = new Float32Array(5);
  const v = new Float32Array(5);
  W.adamUpdate!(p, flat(g), m, v, null, H);
  assert.ok(Number.isNaN(m[0]) && Number.isNaN(v[0]) && Number.isNaN(p[0]), "NaN gradient: NaN state");
  assert.equal(m[1], Infinity);
  assert.equal(v[1], Infinity);
  assert.equal(m[2], -Infinity);
  assert.equal(v[2], Infinity);
  assert.equal(v[3], 0);
  assert.ok(v[4] > 0 && m[4] > 0 && p[4] < 1, "a normal gradient updates as usual");
});

test("wasm Adam with normal values agrees with the js reference (AdamW, AMSGrad, several steps)", () => {
  const rng = prng(77);
  const n = 4099;
  for (const decoupled of [false, true]) {
    for (const amsgrad of [false, true]) {
      const init = () => {
        const p = Float32Array.from({ length: n }, () => rng() * 2 - 1);
        const m = Float32Array.from({ length: n }, () => (rng() * 2 - 1) * 0.1);
        const v = Float32Array.from({ length: n }, () => rng() * 0.01);
        return { p, m, v, vmax: amsgrad ? v.slice() : null };
      };
      const w = init();
      const j = { p: w.p.slice(), m: w.m.slice(), v: w.v.slice(), vmax: w.vmax?.slice() ?? null };
      for (let t = 1; t <= 3; t++) {
        // gradients from 1e-4 to 1 in magnitude, some exactly zero
        const g = Float32Array.from({ length: n }, () =>
          rng() < 0.1 ? 0 : (rng() * 2 - 1) * 10 ** (-4 * rng()),
        );
        const h = {
          ...H,
          weightDecay: 0.01,
          decoupled,
          bc1: 1 - 0.9 ** t,
          bc2Sqrt: Math.sqrt(1 - 0.999 ** t),
        };
        W.adamUpdate!(w.p, flat(g), w.m, w.v, w.vmax, h);
        J.adamUpdate!(j.p, flat(g), j.m, j.v, j.vmax, h);
      }
      const what = `decoupled ${decoupled} amsgrad ${amsgrad}`;
      same(w.p, j.p, 2e-6, `${what}: p`);
      same(w.m, j.m, 2e-6, `${what}: m`);
      same(w.v, j.v, 2e-6, `${what}: v`);
      if (w.vmax !== null) same(w.vmax, j.vmax!, 2e-6, `${what}: vmax`);
    }
  }
});
