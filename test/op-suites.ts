/**
 * Generic suites over the op table: forward against the float64 reference (float64 and float32), first-order
 * derivatives (JVP against central differences, VJP by the dot-product identity), second order (the same checks on
 * the VJP map), eager backward agreeing with functional grad, and zero derivatives of non-differentiable ops.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { getBackend } from "../src/backend/registry.ts";
import { grad, gradCheck, type Tensor, tensor, vjp } from "../src/index.ts";
import { useBackend } from "./backends.ts";
import { mk, type OpInfo, OPS } from "./opinfo.ts";
import { type Nd, nd } from "./ref.ts";

function assertClose(got: Nd, want: Nd, rtol: number, atol: number, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  for (let i = 0; i < want.data.length; i++) {
    const a = got.data[i];
    const b = want.data[i];
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    assert.ok(Math.abs(a - b) <= atol + rtol * Math.abs(b), `${what}: element ${i}: got ${a}, expected ${b}`);
  }
}

function roundTo32(t: Tensor): Tensor {
  return t.to("float32");
}

/** JVP against central differences and VJP by the dot-product identity, on every sample of `op`. */
export function checkFirstOrder(op: OpInfo): void {
  for (const xs of op.samples()) {
    const r = gradCheck(op.fn, xs, { directions: 2, ...op.gradCheck });
    assert.ok(r.ok, r.worst);
  }
}

/** The same checks on the VJP map of `op` (forward over reverse and reverse over reverse). */
export function checkSecondOrder(op: OpInfo): void {
  const xs = op.samples()[0];
  const out = op.fn(...xs);
  const u = mk([...out.shape]);
  const vjpMap = (...ys: Tensor[]) => vjp((...zs: Tensor[]) => op.fn(...zs), ...ys)[1](u) as Tensor[];
  const r = gradCheck(vjpMap, xs, { directions: 2, ...op.gradCheck });
  assert.ok(r.ok, r.worst);
}

/**
 * Register the op-table suites, run with `backend` selected (the js reference when omitted). Backend test files
 * call this with their backend, so the full op table and derivative suites run on every backend.
 */
export function opSuites(label: string, backend?: () => Backend): void {
  useBackend(backend);
  describe(`${label}: forward against the float64 reference`, () => {
    test("runs on the selected backend", () => {
      assert.equal(getBackend().name, label);
    });
    for (const op of OPS) {
      test(op.name, () => {
        op.samples().forEach((xs, k) => {
          const out = op.fn(...xs);
          assertClose(
            nd(out),
            op.ref(...xs.map(nd)),
            op.tol ?? 1e-10,
            1e-12,
            `${op.name} sample ${k} float64`,
          );
          const xs32 = xs.map(roundTo32);
          const out32 = op.fn(...xs32);
          assert.ok(
            out32.dtype === "float32" || out32.dtype === "float64",
            `${op.name}: dtype ${out32.dtype}`,
          );
          assertClose(nd(out32), op.ref(...xs32.map(nd)), 2e-5, 2e-5, `${op.name} sample ${k} float32`);
        });
      });
    }
  });

  describe(`${label}: first-order derivatives in float64 (jvp vs central differences, vjp dot-product identity)`, () => {
    for (const op of OPS.filter((o) => o.diff)) {
      test(op.name, () => checkFirstOrder(op));
    }
  });

  describe(`${label}: second-order derivatives in float64 (checks on the vjp map)`, () => {
    for (const op of OPS.filter((o) => o.diff && !o.noSecondOrder)) {
      test(op.name, () => checkSecondOrder(op));
    }
  });

  describe(`${label}: eager backward agrees with functional grad`, () => {
    for (const op of OPS.filter((o) => o.diff)) {
      test(op.name, () => {
        const xs = op.samples()[0];
        const u = mk([...op.fn(...xs).shape]);
        const loss = (...zs: Tensor[]) =>
          op
            .fn(...zs)
            .mul(u)
            .sum();
        const fg = grad(loss, { argnums: xs.map((_, i) => i) })(...xs) as Tensor[];
        const leaves = xs.map((x) => tensor(x, { requiresGrad: true }));
        loss(...leaves).backward();
        leaves.forEach((l, i) => {
          assert.ok(l.grad !== null, `${op.name}: input ${i} has no grad`);
          assertClose(nd(l.grad!), nd(fg[i]), 1e-12, 1e-12, `${op.name} input ${i}`);
        });
      });
    }
  });

  describe(`${label}: non-differentiable ops have zero derivative`, () => {
    for (const op of OPS.filter((o) => !o.diff)) {
      test(op.name, () => {
        const xs = op.samples()[0];
        const g = grad((...zs: Tensor[]) => op.fn(...zs).sum(), { argnums: xs.map((_, i) => i) })(
          ...xs,
        ) as Tensor[];
        for (const t of g) assert.ok(t.toArray() !== null && Array.from(t.dataSync()).every((v) => v === 0));
      });
    }
  });
}
