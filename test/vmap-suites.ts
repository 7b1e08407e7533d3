/**
 * The op table under vmap: for every op, `vmap(op)` on a batch of 3 examples equals stacking `op` on each
 * example, with the batch on axis 0 and on the last axis, with only the first argument batched (the others shared,
 * which exercises broadcasting of unbatched operands and the conv/pool folds), and under grad (per-example
 * gradients, which reaches the batching rules of the backward primitives). Run per backend by vmapSuites.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { getBackend } from "../src/backend/registry.ts";
import { isFloat } from "../src/dtype.ts";
import { grad, stack, type Tensor, vmap } from "../src/index.ts";
import { useBackend } from "./backends.ts";
import { mk, type OpInfo, OPS } from "./opinfo.ts";
import { nd } from "./ref.ts";

const N = 3;

function assertClose(got: Tensor, want: Tensor, what: string): void {
  const a = nd(got);
  const b = nd(want);
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  b.data.forEach((w, i) => {
    const v = a.data[i];
    if (Number.isNaN(v) && Number.isNaN(w)) return;
    assert.ok(Math.abs(v - w) <= 1e-9 * (1 + Math.abs(w)), `${what}: element ${i}: got ${v}, expected ${w}`);
  });
}

/** N independent draws of each sample of `op` (same shapes, fresh values). */
function draws(op: OpInfo): Tensor[][][] {
  const all = Array.from({ length: N }, () => op.samples());
  return all[0].map((_, s) => all.map((d) => d[s]));
}

/** vmap(op) against the stacked per-example results, batch on `axis` (0 or -1) of every argument. */
export function checkBatching(op: OpInfo, axis: 0 | -1): void {
  draws(op).forEach((exs, s) => {
    const batched = exs[0].map((_, j) =>
      stack(
        exs.map((e) => e[j]),
        axis,
      ),
    );
    const got = vmap(op.fn, { inAxes: axis, outAxes: axis })(...batched);
    const want = stack(
      exs.map((e) => op.fn(...e)),
      axis,
    );
    assertClose(got, want, `${op.name} sample ${s} axis ${axis}`);
  });
}

/** Only the first argument batched; the others shared by every example. */
export function checkShared(op: OpInfo): void {
  draws(op).forEach((exs, s) => {
    const shared = exs[0].slice(1);
    const xs = stack(exs.map((e) => e[0]));
    const got = vmap(op.fn, { inAxes: [0, ...shared.map(() => null)] })(xs, ...shared);
    const want = stack(exs.map((e) => op.fn(e[0], ...shared)));
    assertClose(got, want, `${op.name} sample ${s} (first argument batched)`);
  });
}

/** vmap(grad(loss)) with loss = sum(op(x) * u): per-example gradients against a loop of grad. */
export function checkBatchedGrad(op: OpInfo): void {
  const exs = draws(op)[0];
  const argnums = exs[0].map((x, i) => (isFloat(x.dtype) ? i : -1)).filter((i) => i >= 0);
  const u = mk([...op.fn(...exs[0]).shape]);
  const g = grad(
    (...zs: Tensor[]) =>
      op
        .fn(...zs)
        .mul(u)
        .sum(),
    { argnums },
  );
  const batched = exs[0].map((_, j) => stack(exs.map((e) => e[j])));
  const got = vmap(g)(...batched) as Tensor[];
  const per = exs.map((e) => g(...e) as Tensor[]);
  argnums.forEach((_, k) => {
    assertClose(got[k], stack(per.map((p) => p[k])), `${op.name} gradient ${k}`);
  });
}

/** Register the vmap suites over the op table, run with `backend` selected (the js reference when omitted). */
export function vmapSuites(label: string, backend?: () => Backend): void {
  describe(`${label}: vmap over the op table`, () => {
    useBackend(backend);
    test("runs on the selected backend", () => {
      assert.equal(getBackend().name, label);
    });
    for (const op of OPS) {
      test(`${op.name}: batch axis 0, last axis, first argument only`, () => {
        checkBatching(op, 0);
        checkBatching(op, -1);
        checkShared(op);
      });
    }
    for (const op of OPS.filter((o) => o.diff)) {
      test(`${op.name}: vmap(grad) = per-example gradients`, () => checkBatchedGrad(op));
    }
  });
}
