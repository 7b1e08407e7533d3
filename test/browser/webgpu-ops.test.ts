/**
 * The op table's float32 derivatives on the webgpu backend in headless Chromium with SwiftShader's adapter (the
 * flags of webgpu.test.ts), the float32 forwards of the rows whose bool / int32 result the table casts to
 * float64 (read with `await t.data()`, converted on the host), and an LSTM and a TransformerEncoderLayer trained
 * a few Adam steps on webgpu, compared with the same scenarios on js in Node. See webgpu-ops-page.ts for the
 * checks and their tolerances. Skips, saying why, only when the browser has no adapter.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { setBackend } from "../../src/index.ts";
import { MODULE_PAGE, runPage } from "./chromium.ts";
import { lstmStepsAsync, transformerStepsAsync } from "./webgpu-seq-scenario.ts";

type Steps = { losses: number[]; grad0: number[]; error?: undefined } | { error: string };

interface Report {
  skip?: string;
  init: { backend: string };
  forwards: { checked: number; rows: string[]; failures: string[]; hostOnly: Record<string, string> };
  forwardsMs: number;
  derivs: {
    counts: Record<string, number>;
    failures: string[];
    hostOnly: Record<string, string>;
    excluded: Record<string, string>;
    ms: number;
  };
  float64: { passed: number; failures: string[] };
  float64Ms: number;
  lstm: Steps;
  transformer: Steps;
  trainMs: number;
}

/**
 * The rows allowed to stop at a synchronous read (printed, not counted): none. Every kernel, the optional
 * linalg ones included, has WGSL, so any row failing so is a regression.
 */
function mayStayOnHost(_what: string, _why: string): boolean {
  return false;
}

function close(got: readonly number[], want: readonly number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => {
    assert.ok(Math.abs(g - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

test("webgpu in Chromium: op-table derivatives in float32, cast-at-the-end forwards, LSTM and Transformer training", async (t) => {
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL("./webgpu-ops-page.ts", import.meta.url))],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const { result, errors } = await runPage(
    {
      "/": MODULE_PAGE,
      "/page.js": { type: "text/javascript", body: bundled.outputFiles[0].text },
    },
    { args: ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"], timeoutMs: 240_000 },
  );
  assert.deepEqual(errors, [], "page errors");
  assert.ok(
    result !== null && typeof result === "object" && "ok" in result,
    `the page failed: ${JSON.stringify(result)}`,
  );
  const r = result.ok as Report;
  if (r.skip !== undefined) {
    console.log(`# webgpu ops test skipped: ${r.skip}`);
    t.skip(r.skip);
    return;
  }
  assert.equal(r.init.backend, "webgpu");

  const d = r.derivs;
  console.log(
    `# float32 derivatives on webgpu in ${Math.round(d.ms)} ms, samples passed per check: ${JSON.stringify(d.counts)}`,
  );
  for (const [what, why] of Object.entries(d.hostOnly)) console.log(`# not on the device: ${what}: ${why}`);
  assert.deepEqual(
    Object.entries(d.hostOnly)
      .filter(([what, why]) => !mayStayOnHost(what, why))
      .map(([what]) => what),
    [],
    "rows that fell back to a host read where the device should serve them",
  );
  for (const [what, why] of Object.entries(d.excluded)) console.log(`# excluded: ${what}: ${why}`);
  assert.deepEqual(d.failures, [], "float32 derivatives on webgpu");
  for (const kind of ["jvp-fd", "jvp-host", "vjp-dot", "vjp-host"]) {
    assert.ok((d.counts[kind] ?? 0) > 250, `first-order ${kind} samples: ${d.counts[kind]}`);
    assert.ok(
      (d.counts[`2nd ${kind}`] ?? 0) > 80,
      `second-order ${kind} samples: ${d.counts[`2nd ${kind}`]}`,
    );
  }

  // float64 (host kernels) on webgpu: the float64 gradient checks run with webgpu selected
  console.log(
    `# float64 gradCheck with webgpu selected: ${r.float64.passed} rows in ${Math.round(r.float64Ms)} ms`,
  );
  assert.deepEqual(r.float64.failures, [], "float64 gradCheck with webgpu selected");
  assert.ok(r.float64.passed > 150, `float64 rows checked: ${r.float64.passed}`);

  const f = r.forwards;
  console.log(
    `# cast-at-the-end forwards on webgpu: ${f.checked} samples in ${Math.round(r.forwardsMs)} ms (${f.rows.join(", ")})`,
  );
  for (const [what, why] of Object.entries(f.hostOnly))
    console.log(`# forward not on the device: ${what}: ${why}`);
  assert.deepEqual(
    Object.entries(f.hostOnly)
      .filter(([what, why]) => !mayStayOnHost(what, why))
      .map(([what]) => what),
    [],
    "cast-at-the-end rows that fell back to a host read where the device should serve them",
  );
  assert.deepEqual(f.failures, [], "cast-at-the-end forwards on webgpu");
  assert.ok(f.checked >= 40, `cast-at-the-end samples checked: ${f.checked}`);

  console.log(`# LSTM and Transformer training on webgpu: ${Math.round(r.trainMs)} ms`);
  setBackend("js");
  const scenarios: [string, Steps, () => Promise<{ losses: number[]; grad0: number[] }>][] = [
    ["LSTM", r.lstm, () => lstmStepsAsync(4)],
    ["Transformer", r.transformer, () => transformerStepsAsync(4)],
  ];
  for (const [name, got, js] of scenarios) {
    await t.test(`${name} training on webgpu vs js`, async () => {
      assert.equal(got.error, undefined, `${name} on webgpu threw`);
      const g = got as { losses: number[]; grad0: number[] };
      const want = await js();
      close(g.grad0, want.grad0, 1e-4, `${name} first gradient on webgpu vs js`);
      close(g.losses, want.losses, 1e-4, `${name} losses on webgpu vs js`);
      assert.ok(g.losses[3] < g.losses[0], `the ${name} loss falls: ${g.losses}`);
    });
  }
});
