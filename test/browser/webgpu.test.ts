/**
 * The webgpu backend in headless Chromium with a WebGPU adapter (Debian's chromium ships SwiftShader:
 * `--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader`). The page (webgpu-page.ts) checks every WGSL
 * kernel against the js reference on random strided views, the synchronous-read error, the memory figure and
 * an MLP's SGD and Adam steps; here the MLP's losses, first gradient and trained logits are compared with the
 * same scenario run on the js backend in Node. Skips, saying why, only when the browser has no adapter.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { setBackend } from "../../src/index.ts";
import { MODULE_PAGE, runPage } from "./chromium.ts";
import { cnnStepsAsync, type MlpResult, mlpStepsAsync } from "./webgpu-scenario.ts";

interface Report {
  skip?: string;
  init: { backend: string; fallback?: string };
  info: { adapter: string; submits: number; dispatches: number };
  checked: number;
  failures: string[];
  kernelsMs: number;
  syncRead: {
    message: string;
    afterData: number;
    sum: number[];
    toFloat64: string;
    fresh: number[];
    lstm: string;
  };
  memory: { before: number; held: number; afterGc: number; pool: number };
  mlp: MlpResult;
  cnn: number[];
  opTable: { checked: number; failures: string[]; syncOnly: string[] };
  jit: number[];
}

function close(got: readonly number[], want: readonly number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => {
    assert.ok(Math.abs(g - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

test("webgpu backend in Chromium: kernels vs js, sync-read error, memory, MLP and CNN training", async (t) => {
  const bundled = await build({
    entryPoints: [fileURLToPath(new URL("./webgpu-page.ts", import.meta.url))],
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
    {
      args: ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--js-flags=--expose-gc"],
      timeoutMs: 400_000, // SwiftShader on a shared CPU: the page takes 60 s, over 3 minutes under heavy load
    },
  );
  assert.deepEqual(errors, [], "page errors");
  assert.ok(
    result !== null && typeof result === "object" && "ok" in result,
    `the page failed: ${JSON.stringify(result)}`,
  );
  const r = result.ok as Report;
  if (r.skip !== undefined) {
    console.log(`# webgpu test skipped: ${r.skip}`);
    t.skip(r.skip);
    return;
  }
  console.log(
    `# adapter: ${r.info.adapter}; ${r.checked} kernel checks in ${Math.round(r.kernelsMs)} ms; ` +
      `${r.info.dispatches} dispatches in ${r.info.submits} submissions`,
  );
  assert.deepEqual(r.init, { backend: "webgpu" });
  assert.ok(r.checked > 500, `kernel checks ran: ${r.checked}`);
  assert.deepEqual(r.failures, [], "webgpu kernels vs js");
  assert.ok(r.info.submits < r.info.dispatches, "dispatches are batched into fewer submissions");

  // sync reads fail naming the async call; after it they work
  assert.match(r.syncRead.message, /^DeviceReadError: .*await t\.data\(\)/);
  assert.deepEqual(r.syncRead.sum, [20]);
  assert.equal(r.syncRead.afterData, 20);
  assert.match(r.syncRead.toFloat64, /^DeviceReadError: webgpu: kernel 'cast' .*await t\.data\(\)/);
  assert.deepEqual(r.syncRead.fresh, [5, 6]);
  assert.match(r.syncRead.lstm, /^DeviceReadError: webgpu: kernel 'lstmCell' has no WGSL implementation/);

  // eight 256x256 float32 tensors held: at least 2 MiB in use; dropped and collected: back in the pool
  const mib2 = 8 * 256 * 256 * 4;
  assert.ok(r.memory.held >= mib2, `in use: ${JSON.stringify(r.memory)}`);
  assert.ok(r.memory.afterGc <= r.memory.held - mib2 + 4096, `released: ${JSON.stringify(r.memory)}`);
  assert.ok(r.memory.pool >= mib2, `pooled: ${JSON.stringify(r.memory)}`);

  // the same MLP steps on the js reference backend in Node
  setBackend("js");
  const want = await mlpStepsAsync(3, 3);
  close(r.mlp.grad0, want.grad0, 1e-4, "first weight gradient on webgpu vs js");
  close(r.mlp.losses, want.losses, 1e-4, "MLP losses on webgpu vs js");
  close(r.mlp.logits, want.logits, 1e-4, "trained logits on webgpu vs js");
  assert.ok(r.mlp.losses[5] < r.mlp.losses[0] - 0.05, `the loss falls: ${r.mlp.losses}`);
  // the CNN (convolutions, pooling and their gradients on the GPU)
  close(r.cnn, await cnnStepsAsync(4), 1e-4, "CNN losses on webgpu vs js");
  assert.ok(r.cnn[3] < r.cnn[0], `the CNN loss falls: ${r.cnn}`);

  // jit on webgpu: relu(a * b + 1) = [[3, 0, 0], [1.5, 5, 0]]; times b^T, summed over rows:
  // row 0: [3*2, 3*1] -> 6 + 3 = 9; row 1: [1.5*2 + 5*1, 1.5 + 5] -> 8 + 6.5 = 14.5
  assert.deepEqual(r.jit, [9, 14.5, 9, 14.5], "jitted function on webgpu, twice");

  // the op table's float32 forward checks on webgpu (ops reading GPU values synchronously listed apart)
  console.log(
    `# op table on webgpu: ${r.opTable.checked} samples; needing a synchronous read: ${r.opTable.syncOnly.join(", ") || "none"}`,
  );
  assert.deepEqual(r.opTable.failures, [], "op table forward on webgpu (float32) vs the float64 references");
  assert.ok(r.opTable.checked > 300, `op table samples checked: ${r.opTable.checked}`);
});
