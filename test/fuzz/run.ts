/**
 * Running one fuzz case on several backends against the js reference (test/fuzz/differential.test.ts and
 * conv-wide.test.ts): the forward outcome, and the gradients of sum(op(x) * u) for a seeded cotangent u.
 */
import type { Backend } from "../../src/backend/backend.ts";
import { jsBackend } from "../../src/backend/js/index.ts";
import { setBackend, tensor } from "../../src/node.ts";
import type { Case } from "./cases.ts";
import {
  build,
  compare,
  describeInput,
  EPS,
  type Input,
  magnitude,
  type Outcome,
  outcome,
  prng,
  size,
} from "./gen.ts";

/** A backend in one configuration: `enter` switches it there (instruction set, threads) before each use. */
export interface FuzzTarget {
  name: string;
  backend: Backend;
  enter?: () => void;
}

/** Use target `t` (a bare backend is its own target). */
function use(t: Backend | FuzzTarget): void {
  if ("backend" in t) {
    t.enter?.();
    setBackend(t.backend);
  } else {
    setBackend(t);
  }
}

/** Run the case's forward pass on backend `b`. */
export function forward(b: Backend | FuzzTarget, c: Case): Outcome {
  use(b);
  return outcome(() => c.run(c.inputs.map((i) => build(i).view)));
}

/** The seed cotangent u: multiples of 1/8 in [-2, 2] (exact in every float dtype; zeros included). */
export function cotangent(seed: number, shape: readonly number[]): number[] {
  const rng = prng(seed);
  return Array.from({ length: size(shape) }, () => Math.round((rng() * 4 - 2) * 8) / 8);
}

/** Gradients of sum(op(x) * u) with respect to the base storage of every float input, on backend `b`. */
export function backward(b: Backend | FuzzTarget, c: Case, seed: number, outShape: number[]): Outcome {
  use(b);
  const u = cotangent(seed, outShape);
  return outcome(() => {
    const float = (i: Input) => i.dtype === "float32" || i.dtype === "float64";
    const built = c.inputs.map((i) => build(i, float(i)));
    const y = c.run(built.map((b) => b.view));
    y.mul(tensor(u.length === 0 ? [] : u, { dtype: y.dtype }).reshape(outShape))
      .sum()
      .backward();
    // an input left without a gradient on one backend only is a difference too: a marker no gradient equals
    return built.filter((_, i) => float(c.inputs[i])).map((b) => b.leaf.grad ?? tensor([Number.NaN, -1, -2]));
  });
}

export interface Finding {
  where: string;
  what: string;
}

/** Run case `c` (drawn from `caseSeed`) on every target; return what differs from js. */
export function runCase(
  c: Case,
  caseSeed: number,
  where: string,
  others: readonly (Backend | FuzzTarget)[],
): Finding[] {
  const label = `${where}: ${c.name} on ${c.inputs.map(describeInput).join(", ")}`;
  const found: Finding[] = [];
  const want = forward(jsBackend, c);
  const atol = (dt: string) => 8 * (EPS[dt] ?? 0) * c.scale;
  for (const b of others) {
    const got = forward(b, c);
    const d = compare(got, want, c.ulps, want.ok ? atol(want.dtype) : 0);
    if (d !== null) found.push({ where: `${label} [${b.name}]`, what: d });
  }
  if (c.grad && want.ok) {
    const gWant = backward(jsBackend, c, caseSeed + 1, want.shape);
    const m = magnitude(c.inputs);
    // a gradient sums up to (terms of the forward) x (cotangent <= 2) products per element
    const gAtol = (dt: string) => 64 * (EPS[dt] ?? 0) * (c.scale + m) * Math.max(1, m);
    for (const b of others) {
      const got = backward(b, c, caseSeed + 1, want.shape);
      const d = compare(got, gWant, 4 * c.ulps + 8, gWant.ok ? gAtol(gWant.dtype) : 0);
      if (d !== null) found.push({ where: `${label} [${b.name}, gradient]`, what: d });
    }
  }
  return found;
}
