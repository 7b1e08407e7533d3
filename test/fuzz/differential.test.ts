/**
 * Seeded differential fuzzer: random public-API ops (cases.ts) on random shapes (empty and size-1 dims),
 * layouts (contiguous, transposed, flipped, stepped slices, broadcast), dtypes (float32, float64, int32, bool)
 * and values (with and without NaN / Inf), run on the native and wasm backends and compared with the js
 * reference: same shape, dtype and NaN positions, values within an ulp- and magnitude-aware tolerance, the
 * same error class when the reference throws. Differentiable cases also compare the gradients of
 * sum(op(x) * u) with respect to every float input (through the view ops).
 *
 * The seeds are fixed, so a run is reproducible; a failure names the seed and case index. To rerun one case
 * and print its inputs: CHAINRULE_FUZZ_CASE=<seed>:<index> node --import tsx --test test/fuzz/differential.test.ts
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../../src/backend/backend.ts";
import { jsBackend } from "../../src/backend/js/index.ts";
import { loadBackend, setBackend, tensor } from "../../src/node.ts";
import { type Case, drawCase } from "./cases.ts";
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

const SEEDS = [11, 23, 37, 41, 59, 67];
const CASES_PER_SEED = 6000;

function backend(name: string): Backend {
  const b = loadBackend(name);
  if ("error" in b) throw new Error(`the ${name} backend does not load: ${b.error}`);
  return b;
}

/** Run the case's forward pass on backend `b`. */
function forward(b: Backend, c: Case): Outcome {
  setBackend(b);
  return outcome(() => c.run(c.inputs.map((i) => build(i).view)));
}

/** The seed cotangent u: multiples of 1/8 in [-2, 2] (exact in every float dtype; zeros included). */
function cotangent(seed: number, shape: readonly number[]): number[] {
  const rng = prng(seed);
  return Array.from({ length: size(shape) }, () => Math.round((rng() * 4 - 2) * 8) / 8);
}

/** Gradients of sum(op(x) * u) with respect to the base storage of every float input, on backend `b`. */
function backward(b: Backend, c: Case, seed: number, outShape: number[]): Outcome {
  setBackend(b);
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

interface Finding {
  where: string;
  what: string;
}

/** Run case `index` of `seed` on every backend; return what differs from js. */
function runCase(seed: number, index: number, others: Backend[]): Finding[] {
  const caseSeed = seed * 100003 + index;
  const c = drawCase(prng(caseSeed));
  const label = `seed ${seed} case ${index}: ${c.name} on ${c.inputs.map(describeInput).join(", ")}`;
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

const only = process.env.CHAINRULE_FUZZ_CASE;

/** Print one case's inputs, cotangent and every backend's outcome (non-finite numbers spelled out). */
function printCase(seed: number, index: number, others: Backend[]): void {
  const caseSeed = seed * 100003 + index;
  const c = drawCase(prng(caseSeed));
  const show = (x: unknown) =>
    JSON.stringify(x, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v));
  console.log(`${c.name}\ninputs ${show(c.inputs)}`);
  for (const b of [jsBackend, ...others]) {
    const f = forward(b, c);
    console.log(`${b.name} forward ${show(f)}`);
    if (c.grad && f.ok) console.log(`${b.name} gradient ${show(backward(b, c, caseSeed + 1, f.shape))}`);
  }
  const want = forward(jsBackend, c);
  if (want.ok) {
    console.log(`u ${show(cotangent(caseSeed + 1, want.shape))}`);
  }
}

for (const seed of SEEDS) {
  if (only !== undefined && Number(only.split(":")[0]) !== seed) continue;
  test(`differential fuzz: seed ${seed}, ${CASES_PER_SEED} cases, native and wasm against js`, () => {
    const others = [backend("native"), backend("wasm")];
    const prev = setBackend("js");
    const found: Finding[] = [];
    try {
      for (let i = 0; i < CASES_PER_SEED; i++) {
        if (only !== undefined && Number(only.split(":")[1]) !== i) continue;
        if (only !== undefined) printCase(seed, i, others);
        found.push(...runCase(seed, i, others));
      }
    } finally {
      setBackend(prev);
    }
    assert.equal(
      found.length,
      0,
      `${found.length} disagreement(s) with the js reference (rerun one with CHAINRULE_FUZZ_CASE=<seed>:<case>):\n` +
        found
          .slice(0, 30)
          .map((f) => `${f.where}\n    ${f.what}`)
          .join("\n"),
    );
  });
}

test("the fuzzer notices a wrong kernel: a 1e-5 relative error in exp, a NaN from max, and their gradients", () => {
  const wasm = backend("wasm");
  // the wasm backend with two planted bugs: exp off by 1e-5 relative (about 80 float32 ulps) and one max
  // result replaced by NaN; both reach gradients too (exp saves its output, max's VJP compares with it)
  const broken: Backend = {
    ...wasm,
    name: "broken",
    unary: (op, x, out) => {
      wasm.unary(op, x, out);
      if (op === "exp" && out.length > 2) out[2] *= 1 + 1e-5;
    },
    reduce: (op, x, axes, out) => {
      wasm.reduce(op, x, axes, out);
      if (op === "max" && out.length > 1) out[1] = Number.NaN;
    },
  };
  const prev = setBackend("js");
  const found: Finding[] = [];
  try {
    for (let i = 0; i < 800; i++) found.push(...runCase(11, i, [broken])); // a fixed seed: its cases include exp and max
  } finally {
    setBackend(prev);
  }
  const names = found.map((f) => f.where);
  assert.ok(
    names.some((n) => / exp /.test(n) || n.includes("logsumexp") || n.includes("softplus")),
    "exp bug missed",
  );
  assert.ok(
    names.some((n) => n.includes(": max(") && n.endsWith("[broken]")),
    "max bug missed",
  );
  assert.ok(
    names.some((n) => n.endsWith("[broken, gradient]")),
    "no gradient disagreement reported",
  );
});
