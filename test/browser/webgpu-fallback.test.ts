/**
 * The webgpu backend where WebGPU is missing (Node has no navigator.gpu, and the npm package `webgpu` is
 * simulated missing, or present without an adapter): it is registered but never the default, selecting it by
 * name says to call init first, and `await init({ backend: "webgpu" })` falls back to wasm with one console
 * line naming what is missing. Also the device-storage bookkeeping that needs no GPU: ordinary typed arrays are
 * no device arrays, and `syncToHost` leaves them alone.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { deviceStorageOf, syncToHost } from "../../src/backend/device.ts";
import { sizeClass } from "../../src/backend/webgpu/gpu.ts";
import { setDawnLoader } from "../../src/backend/webgpu/index.ts";
import * as cr from "../../src/index.ts";

test("webgpu is registered, optional, and init falls back to wasm without an adapter", async () => {
  assert.ok(cr.listBackends().includes("webgpu"));
  assert.notEqual(cr.getBackend().name, "webgpu", "never the default");
  const r = cr.loadBackend("webgpu");
  assert.ok("error" in r && /await init\(\{ backend: "webgpu" \}\)/.test(r.error), JSON.stringify(r));

  const initWarned = async (): Promise<[cr.InitResult, string[]]> => {
    const warned: string[] = [];
    const warn = console.warn;
    console.warn = (...a: unknown[]) => warned.push(a.join(" "));
    try {
      return [await cr.init({ backend: "webgpu" }), warned];
    } finally {
      console.warn = warn;
    }
  };
  // the npm package `webgpu` missing: the line names it and how to install it
  const old = setDawnLoader(() => import("webgpu-not-installed-here" as string));
  try {
    const [res, warned] = await initWarned();
    assert.equal(res.backend, "wasm");
    assert.match(
      res.fallback ?? "",
      /^webgpu unavailable: no navigator\.gpu, and the npm package `webgpu` \(Dawn\) could not be loaded .*`npm install webgpu`$/,
    );
    assert.equal(warned.length, 1, "one console line");
    assert.match(warned[0], /webgpu unavailable .*falling back to wasm/);
    assert.equal(cr.getBackend().name, "wasm");
    // the package present but no adapter (no Vulkan driver): the line names the driver and its Debian package
    setDawnLoader(async () => ({ create: () => ({ requestAdapter: async () => null }) as unknown as GPU }));
    const [res2, warned2] = await initWarned();
    assert.equal(res2.backend, "wasm");
    assert.match(
      res2.fallback ?? "",
      /found no adapter: it needs a Vulkan driver: .*apt-get install mesa-vulkan-drivers/,
    );
    assert.equal(warned2.length, 1, "one console line");
  } finally {
    setDawnLoader(old);
  }
  // still works as usual, and data() is the synchronous values
  const t = cr.tensor([1, 2, 3]).mul(2);
  assert.deepEqual(Array.from(await t.data()), [2, 4, 6]);
  cr.setBackend("js");
});

test("ordinary typed arrays are not device arrays; pool size classes", async () => {
  const a = new Float32Array(3);
  assert.equal(deviceStorageOf(a), undefined);
  assert.equal(deviceStorageOf(null), undefined);
  await syncToHost(a);
  // powers of two and 1.5x powers of two, at least 16 bytes, never smaller than asked
  assert.deepEqual(
    [1, 16, 17, 24, 25, 33, 48, 49, 100, 4096, 4097].map(sizeClass),
    [16, 16, 24, 24, 32, 48, 48, 64, 128, 4096, 6144],
  );
});
