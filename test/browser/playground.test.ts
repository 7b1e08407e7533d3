/**
 * The lecture playground (examples/playground, `npm run playground`) in headless Chromium, driven through its DOM:
 * type an expression and check the numbers on the three graphs against calculus, break the expression and check
 * the error points at the mistake, move the sawtooth depth and check the counted pieces are 2^depth, train the
 * MLP for a while and check the loss fell; then a screenshot (runs/playground.png, for a look). Then the same
 * page with WebGPU chosen (Chromium's SwiftShader adapter): the MLP trains on the GPU. The expression parser is
 * also checked on its own, in Node.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import puppeteer, { type Page } from "puppeteer-core";
import { ExprError, parse, show } from "../../examples/playground/expr.ts";
import { startPlayground } from "../../examples/playground/serve.ts";
import { CHROMIUM, FLAGS, WEBGPU_FLAGS } from "./chromium.ts";

test("the expression parser: precedence, implicit products, constants, errors with their position", () => {
  const read = (s: string) => show(parse(s));
  assert.equal(read("sin(x) + x*y"), "(sin(x) + (x * y))");
  assert.equal(read("1 - x - y"), "((1 - x) - y)");
  assert.equal(read("x / y / 2"), "((x / y) / 2)");
  assert.equal(read("-x^2"), "(-(x ^ 2))");
  assert.equal(read("x^y^2"), "(x ^ (y ^ 2))");
  assert.equal(read("2^-x"), "(2 ^ (-x))");
  assert.equal(read("x**2"), "(x ^ 2)");
  assert.equal(read("2x(y+1)"), "((2 * x) * (y + 1))");
  assert.equal(read("1.5e-3 * .5"), "(0.0015 * 0.5)");
  assert.equal(read("pi"), String(Math.PI));
  const fails = (src: string, pos: number, words: RegExp) => {
    assert.throws(
      () => parse(src),
      (e: unknown) => e instanceof ExprError && e.pos === pos && words.test(e.message),
      src,
    );
  };
  fails("sin(x", 5, /expected "\)" to close the "\(" at 4/);
  fails("x + ", 4, /expected a number/);
  fails("x + z", 4, /unknown name "z"/);
  fails("sin x", 4, /sin needs parentheses/);
  fails("x $ y", 2, /unexpected character "\$"/);
  fails("x)", 1, /unexpected "\)"/);
});

/** The page's test hook, evaluated in the page. */
function hook<T>(page: Page, body: string): Promise<T> {
  return page.evaluate(`((p) => (${body}))(window.playground)`) as Promise<T>;
}

/** Wait until `cond` (an expression in the page's test hook `p`) holds. */
async function until(page: Page, cond: string, timeout = 20_000): Promise<void> {
  await page.waitForFunction(`((p) => (${cond}))(window.playground)`, { timeout });
}

/** Replace the expression input's text, as typed. */
async function typeExpr(page: Page, text: string): Promise<void> {
  await page.click("#expr", { count: 3 });
  await page.keyboard.press("Backspace");
  await page.type("#expr", text);
}

/**
 * Open the playground (with the URL `query`, Chromium's extra `args`) in a 1400 x 900 page, wait until it has
 * started, run `body` on the page and its collected errors, and close everything.
 */
async function withPlayground(
  query: string,
  args: readonly string[],
  body: (page: Page, errors: string[]) => Promise<void>,
): Promise<void> {
  const server = await startPlayground(0);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...args],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String((e as Error).stack ?? e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console.error: ${m.text()}`);
    });
    await page.goto(`${server.url}${query}`);
    await page.waitForFunction("window.playground !== undefined || window.playgroundError !== undefined");
    assert.equal(await page.evaluate("window.playgroundError"), undefined);
    await body(page, errors);
  } finally {
    await browser.close();
    server.close();
  }
}

/** The MLP panel: its step graph is drawn, it trains 150 steps and the loss falls. */
async function checkMlpTrains(page: Page, timeout: number): Promise<void> {
  const text = (id: string) => page.$eval(id, (e) => e.textContent ?? "");
  await until(page, "p.mlp.stepGraphs > 0", timeout);
  const stepGraph = await text("#step-graph");
  for (const box of ["Linear(2\u219216)", "Tanh()", "Linear(16\u21922)", "(adjoint)"]) {
    assert.ok(stepGraph.includes(box), `step graph shows "${box}"`);
  }
  await page.evaluate(`document.getElementById("speed").value = "20"`);
  await page.click("#train");
  await until(page, "p.mlp.trainer.losses.length >= 150", timeout);
  await page.click("#train"); // pause
  const losses = await hook<number[]>(page, "p.mlp.trainer.losses");
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  assert.ok(losses[0] > 0.5, `the first loss is that of guessing (ln 2 = 0.69): ${losses[0]}`);
  assert.ok(
    mean(losses.slice(-10)) < 0.3 * mean(losses.slice(0, 10)),
    `the loss falls: ${losses.join(", ")}`,
  );
  await until(
    page,
    `document.getElementById("mlp-status").textContent.startsWith("step " + p.mlp.trainer.losses.length + ", loss ")`,
    timeout,
  );
  assert.match(await text("#loss-plot"), /training loss/);
}

test("the playground: graphs with values, adjoints and tangents, sawtooth pieces, a live MLP, on wasm", async () => {
  await withPlayground("", [], async (page, errors) => {
    assert.equal(await hook(page, "p.backend"), "wasm");
    assert.equal(await page.$eval("#backend", (e) => e.textContent), "backend: wasm");
    assert.equal(await page.$eval("#backend-choice", (e) => (e as HTMLSelectElement).value), "wasm");

    // ---- 1. three sweeps of an expression typed in --------------------------------------------------------
    await typeExpr(page, "sin(x) + x*y");
    await page.evaluate(`(() => {
      const set = (id, v) => { const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event("input")); };
      set("x", "2"); set("y", "5");
    })()`);
    await until(
      page,
      `p.graphs.drawn.expr === "sin(x) + x*y" && p.graphs.drawn.x === 2 && p.graphs.drawn.y === 5`,
    );
    const d = await hook<{ value: number; dfdx: number; dfdy: number; tangent: number }>(
      page,
      "p.graphs.drawn",
    );
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
    close(d.value, Math.sin(2) + 10, "f(2, 5)");
    close(d.dfdx, Math.cos(2) + 5, "∂f/∂x");
    close(d.dfdy, 2, "∂f/∂y");
    close(d.tangent, Math.cos(2) + 5, "tangent along x");
    const four = (v: number) => String(Number(v.toPrecision(4)));
    const text = (id: string) => page.$eval(id, (e) => e.textContent ?? "");
    const svgCount = await page.$$eval(".graphs .graph svg", (els) => els.length);
    assert.equal(svgCount, 3, "three graph pictures");
    const fwd = await text("#graph-forward");
    for (const node of [
      "sin",
      "mul",
      "add",
      `= ${four(Math.sin(2))}`,
      "= 10",
      `= ${four(Math.sin(2) + 10)}`,
    ]) {
      assert.ok(fwd.includes(node), `forward graph shows "${node}": ${fwd}`);
    }
    const rev = await text("#graph-reverse");
    // adjoints ā of x, b̄ of y (ā: the letter with a combining overline)
    for (const node of [`a\u0304 = ${four(Math.cos(2) + 5)}`, "b\u0304 = 2", `${four(Math.cos(2))}`]) {
      assert.ok(rev.includes(node), `reverse graph shows "${node}": ${rev}`);
    }
    const tan = await text("#graph-tangent");
    for (const node of [
      "a\u0307 = 1",
      "b\u0307 = 0",
      `= ${four(Math.cos(2))}`,
      `= ${four(Math.cos(2) + 5)}`,
    ]) {
      assert.ok(tan.includes(node), `tangent graph shows "${node}": ${tan}`);
    }
    // the other seed: the dual numbers carry ∂f/∂y = x = 2
    await page.click("#seed-y");
    await until(page, `p.graphs.drawn.seed === "y"`);
    close(await hook<number>(page, "p.graphs.drawn.tangent"), 2, "tangent along y");

    // a mistake: the error says where, and the last good pictures stay
    await typeExpr(page, "x * (y + ");
    await page.waitForSelector("#expr-error:not([hidden])", { timeout: 20_000 });
    const err = await text("#expr-error");
    assert.match(err, /expected a number, x, y, a function or "\(", found the end/);
    assert.equal(err.split("\n")[1], `${" ".repeat("x * (y + ".length)}^`, "the caret under the end");
    await typeExpr(page, "x * (y + 1)");
    await page.waitForSelector("#expr-error[hidden]", { timeout: 20_000 });
    await until(page, `p.graphs.drawn.expr === "x * (y + 1)"`);
    const d2 = await hook<{ value: number; dfdx: number; dfdy: number; tangent: number }>(
      page,
      "p.graphs.drawn",
    );
    assert.deepEqual(
      [d2.value, d2.dfdx, d2.dfdy, d2.tangent],
      [12, 6, 2, 2],
      "x(y+1) at (2, 5): y+1, x, and x again",
    );

    // ---- 2. sawtooth: pieces double with depth --------------------------------------------------------------
    for (const depth of [1, 4, 6]) {
      await page.evaluate(`(() => {
        const e = document.getElementById("depth"); e.value = "${depth}"; e.dispatchEvent(new Event("input"));
      })()`);
      assert.equal(Number(await text("#piece-count")), 2 ** depth, `pieces at depth ${depth}`);
      assert.deepEqual(
        await hook<number[]>(page, `p.sawtooth.counts.slice(0, ${depth + 1})`),
        Array.from({ length: depth + 1 }, (_, l) => 2 ** l),
      );
    }
    assert.match(await text("#sawtooth-plot"), /f_6\(x\): 64 linear pieces/);
    // the network's graph at x = 0.3, depth 2: f_1 = 2x - 2 < 0 there, so f_2 = -2 f_1 - 2 and f_2' = -2 * 2 = -4
    const drawnGraphs = await hook<number>(page, "p.sawtooth.graphs");
    await page.evaluate(`(() => {
      const e = document.getElementById("depth"); e.value = "2"; e.dispatchEvent(new Event("input"));
    })()`);
    await until(page, `p.sawtooth.graphs > ${drawnGraphs}`);
    const sawGraph = await text("#sawtooth-graph");
    assert.ok(sawGraph.includes("a\u0304 = -4") && sawGraph.includes("relu"), sawGraph);

    // ---- 3. the MLP trains: the loss falls -------------------------------------------------------------------
    await checkMlpTrains(page, 30_000);
    assert.deepEqual(errors, []);

    await page.evaluate("window.scrollTo(0, 0)");
    const png = await page.screenshot({ type: "png", fullPage: true });
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
    // the IHDR chunk: width and height, big-endian, at bytes 16 and 20
    const ihdr = new DataView(png.buffer, png.byteOffset, png.byteLength);
    const [width, height] = [ihdr.getUint32(16), ihdr.getUint32(20)];
    assert.ok(width === 1400 && height > 900, `full-page size ${width} x ${height}`);
    assert.ok(png.length > 50_000, `a page with pictures, not a blank one: ${png.length} bytes`);
    mkdirSync("runs", { recursive: true });
    writeFileSync("runs/playground.png", png);
  });
});

test("the playground with WebGPU chosen: the MLP trains on webgpu, the float64 panels run on the host", async (t) => {
  await withPlayground("?backend=webgpu", WEBGPU_FLAGS, async (page, errors) => {
    const backend = await hook<string>(page, "p.backend");
    if (backend !== "webgpu") {
      const why = await page.$eval("#backend", (e) => (e as HTMLElement).title);
      console.log(`# webgpu playground test skipped: no WebGPU adapter in this Chromium (${why})`);
      t.skip(why);
      return;
    }
    assert.equal(await page.$eval("#backend", (e) => e.textContent), "backend: webgpu");
    const menu = await page.$eval("#backend-choice", (e) => {
      const sel = e as HTMLSelectElement;
      return [sel.value, (sel.querySelector('option[value="webgpu"]') as HTMLOptionElement).disabled];
    });
    assert.deepEqual(menu, ["webgpu", false], "the menu shows WebGPU, offered");
    // panel 1 (float64 scalars, on the host): the default x^2 + log(y) at (3, 2)
    await until(page, `p.graphs.drawn.expr === "x^2 + log(y)"`);
    const d = await hook<{ value: number; dfdx: number; dfdy: number }>(page, "p.graphs.drawn");
    assert.ok(Math.abs(d.value - (9 + Math.log(2))) < 1e-12, `f(3, 2) = ${d.value}`);
    assert.deepEqual([d.dfdx, d.dfdy], [6, 0.5], "∂f/∂x = 2x, ∂f/∂y = 1/y");
    // panel 2: the sawtooth's pieces at the default depth 3
    assert.equal(await hook<number>(page, "p.sawtooth.pieces"), 8);
    // panel 3 on the GPU
    await checkMlpTrains(page, 120_000);
    assert.deepEqual(errors, []);
  });
});
