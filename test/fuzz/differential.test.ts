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
import { loadBackend, setBackend } from "../../src/node.ts";
import { drawCase } from "./cases.ts";
import { prng } from "./gen.ts";
import { backward, cotangent, type Finding, forward, runCase } from "./run.ts";

const SEEDS = [11, 23, 37, 41, 59, 67];
const CASES_PER_SEED = 6000;

function backend(name: string): Backend {
  const b = loadBackend(name);
  if ("error" in b) throw new Error(`the ${name} backend does not load: ${b.error}`);
  return b;
}

/** Case `index` of `seed`, run on every backend against js. */
function caseAt(seed: number, index: number, others: Backend[]): Finding[] {
  const caseSeed = seed * 100003 + index;
  return runCase(drawCase(prng(caseSeed)), caseSeed, `seed ${seed} case ${index}`, others);
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
        found.push(...caseAt(seed, i, others));
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
    for (let i = 0; i < 800; i++) found.push(...caseAt(11, i, [broken])); // a fixed seed: its cases include exp and max
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
