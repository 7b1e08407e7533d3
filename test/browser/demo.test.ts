/**
 * The browser demo (examples/browser, `npm run demo:browser`) in headless Chromium: the page trains the digits
 * MLP for one epoch on wasm, draws the loss curve and 18 test predictions, and a screenshot is taken
 * (runs/browser-demo.png, for a look). Checks what the page reports (wasm, the loss falls, the accuracy is
 * that of a trained model), that the loss canvas has a curve drawn on it, that the drawn predictions are the
 * model's, and that the screenshot is a PNG of the page. Then the same with WebGPU chosen (`?backend=webgpu`,
 * what the page's backend menu sets), on Chromium's SwiftShader WebGPU adapter.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import puppeteer from "puppeteer-core";
import { startDemo } from "../../examples/browser/serve.ts";
import { CHROMIUM, FLAGS, WEBGPU_FLAGS } from "./chromium.ts";

interface DemoResult {
  backend: string;
  steps: number;
  losses: number[];
  accuracy: number;
  preds: number[];
  truth: number[];
}

/**
 * Open the demo with `query` in Chromium (extra `args`), wait for its result and check it: the page trained on
 * `backend`, the loss falls, the accuracy is that of a trained model, the curve and the predictions are drawn.
 * Returns the skip reason instead when WebGPU was asked for and the page fell back.
 */
async function checkDemo(
  query: string,
  backend: string,
  args: readonly string[] = [],
): Promise<string | null> {
  const demo = await startDemo(0);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...args],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 640 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${demo.url}?${query}`);
    await page.waitForFunction("window.__result !== undefined", { timeout: 120_000 });
    const r = (await page.evaluate("window.__result")) as DemoResult;
    assert.deepEqual(errors, []);
    if (backend === "webgpu" && r.backend !== "webgpu") {
      return `no WebGPU adapter in this Chromium: ${await page.$eval("#status", (e) => e.textContent)}`;
    }
    assert.equal(r.backend, backend);
    // the backend menu shows the backend in use, WebGPU offered where the browser has it
    const menu = await page.$eval("#backend", (e) => {
      const sel = e as HTMLSelectElement;
      return {
        value: sel.value,
        gpuOffered: !(sel.querySelector('option[value="webgpu"]') as HTMLOptionElement).disabled,
      };
    });
    assert.equal(menu.value, backend);
    if (backend === "webgpu") assert.ok(menu.gpuOffered, "WebGPU offered in the menu");
    assert.equal(r.steps, Math.ceil(3000 / 64));
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    assert.ok(mean(r.losses.slice(-10)) < 0.5 * mean(r.losses.slice(0, 5)), `the loss falls: ${r.losses}`);
    assert.ok(r.accuracy > 0.8, `test accuracy ${r.accuracy}`);

    // the curve: dark-blue running-mean pixels on the loss canvas
    const curvePixels = await page.evaluate(`(() => {
      const c = document.getElementById("loss");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > 150 && d[i] < 60) n++;
      return n;
    })()`);
    assert.ok(Number(curvePixels) > 200, `curve pixels drawn: ${curvePixels}`);
    const labels = (await page.$$eval(".pred", (els) => els.map((e) => e.textContent ?? ""))) as string[];
    assert.deepEqual(
      labels,
      r.preds.map((p, i) => (p === r.truth[i] ? `${p}` : `${p} (${r.truth[i]})`)),
    );

    const png = await page.screenshot({ type: "png", fullPage: true });
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
    mkdirSync("runs", { recursive: true });
    writeFileSync(`runs/browser-demo${backend === "wasm" ? "" : `-${backend}`}.png`, png);
    return null;
  } finally {
    await browser.close();
    demo.close();
  }
}

test("the browser demo trains the digits MLP on wasm and draws the loss curve and predictions", async () => {
  assert.equal(await checkDemo("epochs=1&limit=3000", "wasm"), null);
});

test("the browser demo with WebGPU chosen trains on webgpu (Chromium's SwiftShader adapter)", async (t) => {
  const skip = await checkDemo("epochs=1&limit=3000&backend=webgpu", "webgpu", WEBGPU_FLAGS);
  if (skip !== null) {
    console.log(`# webgpu demo test skipped: ${skip}`);
    t.skip(skip);
  }
});
