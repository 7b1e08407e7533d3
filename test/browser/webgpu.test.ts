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
import { MODULE_PAGE, runPage } from "./chromium.ts";
import { assertWebgpuReport, type WebgpuReport } from "./webgpu-report.ts";

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
  const r = result.ok as WebgpuReport;
  if (r.skip !== undefined) {
    console.log(`# webgpu test skipped: ${r.skip}`);
    t.skip(r.skip);
    return;
  }
  await assertWebgpuReport(r, { memory: true, opTable: true });
});
