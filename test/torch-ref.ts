/**
 * For tests against values printed by PyTorch 1.13 scripts (the scripts are in the tests' doc comments): the
 * scripts' deterministic inputs, and the comparison with the pasted values.
 */
import assert from "node:assert/strict";
import { type Tensor, tensor } from "../src/index.ts";

/** The scripts' `seq(shape, a)`: sin(0.37 k + a) over the flat index k = 0, 1, ..., in float64. */
export function seq(shape: number[], a: number): Tensor {
  const n = shape.reduce((p, s) => p * s, 1);
  const data = Float64Array.from({ length: n }, (_, k) => Math.sin(k * 0.37 + a));
  return tensor(data, { dtype: "float64", shape });
}

/** `got` equals the printed `want` within `rtol` relative (absolute below 1), element by element. */
export function close(got: Tensor, want: number[], what: string, rtol = 1e-10): void {
  const g = Array.from(got.dataSync(), Number);
  assert.equal(g.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(g[i] - want[i]) <= rtol * Math.max(1, Math.abs(want[i])),
      `${what}[${i}]: got ${g[i]}, expected ${want[i]}`,
    );
  }
}
