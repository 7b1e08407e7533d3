/**
 * The op table through the IR: for every op-table entry, the traced program evaluated on the sample inputs equals
 * running the op directly (bit for bit: evaluation binds the same primitives with the same params), and for the
 * differentiable entries the traced program of the op's VJP evaluated equals the VJP. This checks that every
 * primitive's abstract rule agrees with its kernel and that every derivative rule traces with abstract values.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { evalJaxpr, makeJaxpr, type Tensor, vjp } from "../src/index.ts";
import { mk, OPS } from "./opinfo.ts";

function assertSame(got: Tensor, want: Tensor, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  const a = got.dataSync();
  const b = want.dataSync();
  for (let i = 0; i < b.length; i++) {
    assert.ok(Object.is(a[i], b[i]), `${what}: element ${i}: got ${a[i]}, expected ${b[i]}`);
  }
}

describe("op table: evalJaxpr(makeJaxpr(op)) equals the op", () => {
  for (const op of OPS) {
    test(op.name, () => {
      op.samples().forEach((xs, k) => {
        const prog = makeJaxpr(op.fn)(...xs);
        assert.equal(prog.invars.length, xs.length, `${op.name}: one input variable per argument`);
        assert.ok(prog.eqns.length > 0, `${op.name}: staged as equations, not evaluated eagerly`);
        assertSame(evalJaxpr(prog, ...xs), op.fn(...xs), `${op.name} sample ${k}`);
      });
    });
  }
});

describe("op table: the traced VJP program evaluated equals the VJP", () => {
  for (const op of OPS.filter((o) => o.diff)) {
    test(op.name, () => {
      const xs = op.samples()[0];
      const u = mk([...op.fn(...xs).shape]);
      const vjpMap = (...ys: Tensor[]) => vjp((...zs: Tensor[]) => op.fn(...zs), ...ys)[1](u) as Tensor[];
      const prog = makeJaxpr(vjpMap)(...xs);
      const got = evalJaxpr(prog, ...xs) as Tensor[];
      const want = vjpMap(...xs);
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) assertSame(got[i], want[i], `${op.name} cotangent ${i}`);
    });
  }
});
