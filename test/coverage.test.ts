/**
 * Rule coverage: the op table (test/opinfo.ts, through the first- and second-order checks of test/op-suites.ts)
 * must invoke the JVP and the VJP rule of every primitive whose derivative is a rule, including the rules of the
 * backward primitives (softmaxBackward, maxPool2dBackward, conv2dBackInput/Weight, actGrad ...), which only
 * second-order rows reach. A primitive added without an op-table row that differentiates through it fails here,
 * by name. Also: the registry's keys are its entries' names, and the vmap op-table checks (test/vmap-suites.ts)
 * apply the batching rule of every primitive (the type makes a rule compulsory; this makes it tested).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setRuleRecorder } from "../src/core/primitive.ts";
import { primitive, primitives } from "../src/prims/index.ts";
import { checkFirstOrder, checkSecondOrder } from "./op-suites.ts";
import { OPS } from "./opinfo.ts";
import { checkBatchedGrad, checkBatching, checkShared } from "./vmap-suites.ts";

test("the registry's keys are its primitives' names, and primitive(name) finds each", () => {
  for (const [key, p] of Object.entries(primitives)) {
    assert.equal(p.name, key);
    assert.equal(primitive(key as keyof typeof primitives), p);
  }
});

test("the op table exercises the JVP and the VJP rule of every primitive with a rule", () => {
  const used = new Set<string>();
  setRuleRecorder((prim, which) => used.add(`${prim} ${which}`));
  try {
    for (const op of OPS.filter((o) => o.diff)) {
      checkFirstOrder(op);
      if (!op.noSecondOrder) checkSecondOrder(op);
    }
  } finally {
    setRuleRecorder(null);
  }
  const missing: string[] = [];
  for (const [name, p] of Object.entries(primitives)) {
    if (p.derivative.kind !== "rule") continue;
    for (const which of ["jvp", "vjp"]) if (!used.has(`${name} ${which}`)) missing.push(`${name} ${which}`);
  }
  assert.deepEqual(missing, [], `rules the op table never invokes: ${missing.join(", ")}`);
});

test("the vmap op-table checks apply the batching rule of every primitive", () => {
  const used = new Set<string>();
  setRuleRecorder((prim, which) => {
    if (which === "batch") used.add(prim);
  });
  try {
    for (const op of OPS) {
      checkBatching(op, 0);
      checkShared(op);
      if (op.diff) checkBatchedGrad(op);
    }
  } finally {
    setRuleRecorder(null);
  }
  const missing = Object.keys(primitives).filter((name) => !used.has(name));
  assert.deepEqual(missing, [], `batching rules the vmap op table never applies: ${missing.join(", ")}`);
});
