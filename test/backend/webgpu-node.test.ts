/**
 * The webgpu backend under Node through the npm package `webgpu` (Dawn) on a Vulkan driver: in CI Mesa's
 * software rasterizer lavapipe, which .ci/run installs. It runs the browser test's checks (webgpu-page.ts:
 * every WGSL kernel against the js reference on random strided views, the synchronous-read errors, the memory
 * figure, the MLP and CNN training steps, a jitted function, the op table's float32 forward checks) and asserts
 * them the same way (webgpu-report.ts), the training compared with the same scenario on the js backend.
 *
 * Skips, printing why, when there is no adapter (the package or a Vulkan driver missing), except under CI
 * (`CI` set), where a missing adapter is a failure: .ci/run installs both.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { runWebgpuChecks } from "../browser/webgpu-page.ts";
import { assertWebgpuReport } from "../browser/webgpu-report.ts";

test("webgpu backend in Node (npm webgpu, Dawn): kernels vs js, sync reads, memory, MLP and CNN training", async (t) => {
  // the memory check collects garbage between tasks, as the page does with --expose-gc
  v8.setFlagsFromString("--expose-gc");
  const g = globalThis as { gc?: () => void };
  g.gc ??= vm.runInNewContext("gc") as () => void;
  const r = await runWebgpuChecks();
  if ("skip" in r) {
    if (process.env.CI) assert.fail(`CI has no WebGPU adapter under Node (.ci/run installs one): ${r.skip}`);
    console.log(`# webgpu Node test skipped: ${r.skip}`);
    t.skip(r.skip);
    return;
  }
  await assertWebgpuReport(r, { memory: true, opTable: true });
});
