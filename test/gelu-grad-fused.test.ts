/**
 * gelu's derivative t * gelu'(x) evaluated concretely (the eager backward pass) runs as one fused kernel on the
 * backends that have `fused` (prims/elementwise.ts geluGrad): the same bits as the two ops it replaces, on js,
 * wasm and native, float32 and float64, special values included; and the transforms still differentiate it
 * (second order, createGraph).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { grad, type Tensor, tensor } from "../src/index.ts";
import { bind } from "../src/core/trace.ts";
import { geluDerivP } from "../src/prims/elementwise.ts";
import { getBackend } from "../src/prims/impl.ts";
import { onBackend } from "./backends.ts";

const backends: [string, Backend][] = [["js", jsBackend]];
const w = loadWasmBackend();
if ("backend" in w) backends.push(["wasm", w.backend]);
const n = loadNativeBackend();
if ("backend" in n) backends.push(["native", n.backend]);

const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 30, -30, 1e-40, -1e-3, 5.5];
function values(len: number, seed: number): number[] {
  return Array.from({ length: len }, (_, i) =>
    i < SPECIAL.length ? SPECIAL[i] : Math.sin(seed * 7.1 + i * 1.3) * 4,
  );
}

for (const [name, be] of backends) {
  test(`${name}: the eager gelu backward equals ct * geluDeriv(x) bit for bit, through the fused kernel`, () => {
    onBackend(be, () => {
      let fusedCalls = 0;
      for (const dtype of ["float32", "float64"] as const) {
        for (const len of [1, 7, 1031]) {
          const xs = values(len, 1);
          const cs = values(len, 2).reverse();
          const x = tensor(xs, { dtype, requiresGrad: true });
          const c = tensor(cs, { dtype });
          const before = countFused(getBackend());
          x.gelu().mul(c).sum().backward();
          fusedCalls += countFused(getBackend()) - before;
          const want = tensor(cs, { dtype }).mul(bind(geluDerivP, [tensor(xs, { dtype })], null));
          const got = x.grad!.dataSync();
          const exp = want.dataSync();
          for (let i = 0; i < len; i++) {
            assert.ok(
              Object.is(got[i], exp[i]),
              `${dtype} [${len}] element ${i} (x = ${xs[i]}, ct = ${cs[i]}): ${got[i]} vs ${exp[i]}`,
            );
          }
        }
      }
      if (be.fused !== undefined) assert.ok(fusedCalls >= 6, `the fused kernel ran (${fusedCalls} calls)`);
    });
  });
}

/** Calls of `be.fused` so far (counted through a wrapper installed once per backend). */
const counts = new WeakMap<Backend, { n: number }>();
function countFused(be: Backend): number {
  let c = counts.get(be);
  if (c === undefined) {
    c = { n: 0 };
    counts.set(be, c);
    const f = be.fused;
    if (f !== undefined) {
      const box = c;
      (be as { fused?: Backend["fused"] }).fused = function (this: Backend, ...args) {
        box.n++;
        return f.apply(this, args);
      };
    }
  }
  return c.n;
}

test("gelu's derivative through the transforms: second order and createGraph match the analytic gelu''", () => {
  const xs = [-2.5, -0.3, 0, 0.7, 3];
  const phi = (v: number) => Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
  const g2 = (t: Tensor) => grad((u: Tensor) => (grad((v: Tensor) => v.gelu().sum())(u) as Tensor).sum())(t);
  const h = (g2(tensor(xs, { dtype: "float64" })) as Tensor).dataSync();
  for (const [i, v] of xs.entries())
    assert.ok(Math.abs(h[i] - (2 - v * v) * phi(v)) < 1e-12, `gelu''(${v}): ${h[i]}`);
  // eager createGraph: the backward's own graph is recorded, then differentiated again
  const x = tensor(xs, { dtype: "float64", requiresGrad: true });
  const y = x.gelu().sum();
  y.backward(undefined, { createGraph: true });
  const first = x.grad!;
  x.grad = null;
  first.sum().backward();
  const h2 = x.grad!.dataSync();
  for (const [i, v] of xs.entries())
    assert.ok(Math.abs(h2[i] - (2 - v * v) * phi(v)) < 1e-12, `createGraph gelu''(${v}): ${h2[i]}`);
});
