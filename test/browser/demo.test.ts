/**
 * The browser demo (examples/browser, `npm run demo:browser`) in headless Chromium: the page trains the digits
 * MLP for one epoch on wasm, draws the loss curve and 18 test predictions, and a screenshot is taken
 * (runs/browser-demo.png, for a look). Checks what the page reports (wasm, the loss falls, the accuracy is
 * that of a trained model), that the loss canvas has a curve drawn on it, that the drawn predictions are the
 * model's, and that the screenshot is a PNG of the page.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import puppeteer from "puppeteer-core";
import { startDemo } from "../../examples/browser/serve.ts";
import { CHROMIUM, FLAGS } from "./chromium.ts";

interface DemoResult {
  backend: string;
  steps: number;
  losses: number[];
  accuracy: number;
  preds: number[];
  truth: number[];
}

test("the browser demo trains the digits MLP on wasm and draws the loss curve and predictions", async () => {
  const demo = await startDemo(0);
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 640 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${demo.url}?epochs=1&limit=3000`);
    await page.waitForFunction("window.__result !== undefined");
    const r = (await page.evaluate("window.__result")) as DemoResult;
    assert.deepEqual(errors, []);
    assert.equal(r.backend, "wasm");
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
    writeFileSync("runs/browser-demo.png", png);
  } finally {
    await browser.close();
    demo.close();
  }
});
