/**
 * Shared helpers of the optim tests: float64 parameters, gradient replay and elementwise comparison.
 */
import assert from "node:assert/strict";
import { tensor } from "../../src/ops/creation.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

export const F64 = { dtype: "float64" as const };

/** A float64 leaf parameter. */
export function param(values: number[] | number[][]): Tensor {
  return tensor(values, { dtype: "float64", requiresGrad: true });
}

/** Flatten nested number arrays. */
export function flat(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flat) : [x as number];
}

/** Values of a tensor as a flat list of numbers. */
export function values(t: Tensor): number[] {
  return flat(t.toArray());
}

/** Assert elementwise |a - b| <= tol * max(1, |b|). */
export function assertClose(
  actual: readonly number[],
  expected: readonly number[],
  tol = 1e-12,
  what = "",
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const b = expected[i];
    const err = Math.abs(a - b);
    if (!(err <= tol * Math.max(1, Math.abs(b)))) {
      assert.fail(
        `${what}[${i}]: got ${a}, expected ${b} (|diff| ${err})\n  actual   ${actual}\n  expected ${expected}`,
      );
    }
  }
}

/** Set `p.grad` to each gradient in turn (same shape as p) and call `opt.step()`. */
export function replay(opt: Optimizer<{ lr: number }>, p: Tensor, grads: number[][]): void {
  for (const g of grads) {
    p.grad = tensor(g, F64).reshape(p.shape);
    opt.step();
  }
}
