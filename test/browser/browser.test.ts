/**
 * The browser entry in a real browser: bundle test/browser/page.ts (the library's browser entry plus the op
 * table) with esbuild for the browser platform, and run it in headless Chromium. Checks that the bundle pulls
 * in no Node-only module, that `init()` makes wasm the backend, that the op table's forward checks pass on
 * wasm and js, that nested derivatives have their closed-form values, and that five MLP training steps on
 * wasm reproduce the losses and logits the js backend computes in Node from the same seeds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { setBackend } from "../../src/index.ts";
import { MODULE_PAGE, runPage } from "./chromium.ts";
import { mlpSteps, type nestedGrads } from "./scenario.ts";

interface OpReport {
  checked: number;
  failures: string[];
}
interface Report {
  before: string;
  init: { backend: string; fallback?: string };
  again: { backend: string };
  wasm: {
    backend: string;
    ops: OpReport;
    nested: ReturnType<typeof nestedGrads>;
    mlp: ReturnType<typeof mlpSteps>;
  };
  js: { backend: string; ops: OpReport; nested: ReturnType<typeof nestedGrads> };
}

function close(got: readonly number[], want: readonly number[], rtol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => {
    assert.ok(Math.abs(g - want[i]) <= rtol * (1 + Math.abs(want[i])), `${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

test("the browser entry runs in Chromium: init() -> wasm, op table, nested grad, MLP steps", async () => {
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL("./page.ts", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(bundled.metafile.inputs);
  const nodeOnly = inputs.filter((f) => /src\/(node|node-files|cli\/|backend\/native\/)|-node\.ts$/.test(f));
  assert.deepEqual(nodeOnly, [], "the browser bundle must not include Node-only modules");

  const { result, errors } = await runPage({
    "/": MODULE_PAGE,
    "/page.js": { type: "text/javascript", body: bundled.outputFiles[0].text },
  });
  assert.deepEqual(errors, [], "page errors");
  assert.ok(
    result !== null && typeof result === "object" && "ok" in result,
    `the page failed: ${JSON.stringify(result)}`,
  );
  const r = result.ok as Report;

  assert.equal(r.before, "js", "before init() the browser runs on js");
  assert.deepEqual(r.init, { backend: "wasm" }, "init() selects wasm without a fallback");
  assert.equal(r.wasm.backend, "wasm");
  assert.deepEqual(r.again, { backend: "wasm" });
  assert.equal(r.js.backend, "js");

  for (const side of [r.wasm, r.js]) {
    assert.ok(side.ops.checked > 600, `${side.backend}: op table ran ${side.ops.checked} comparisons`);
    assert.deepEqual(side.ops.failures, [], `${side.backend}: op table forward checks`);
    assert.equal(side.nested.third, 48, `${side.backend}: d3/dx3 x^4 at 2`);
    close([side.nested.secondSin], [-Math.sin(1)], 1e-12, `${side.backend}: d2/dx2 sin at 1`);
    assert.deepEqual(side.nested.hessian, [2, 5, 5, 8], `${side.backend}: Hessian of x^T A x`);
    assert.equal(side.nested.confusion, 1, `${side.backend}: perturbation confusion`);
  }

  // The same five steps in Node on the js reference backend.
  setBackend("js");
  const want = mlpSteps(5);
  close(r.wasm.mlp.losses, want.losses, 1e-4, "MLP losses on wasm vs js");
  close(r.wasm.mlp.logits, want.logits, 1e-4, "trained logits on wasm vs js");
  assert.ok(r.wasm.mlp.losses[4] < r.wasm.mlp.losses[0] - 0.1, `the loss falls: ${r.wasm.mlp.losses}`);
});
