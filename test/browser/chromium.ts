/**
 * Run a page in headless Chromium for the browser tests: serve a few in-memory files on 127.0.0.1 and drive
 * Debian's /usr/bin/chromium with puppeteer-core (never a downloaded browser; .ci/run installs chromium with
 * apt when it is missing). The page reports through `window.__result` (a promise) and every page error and
 * console error is collected, so a failure says what the page said.
 */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import puppeteer, { type Page } from "puppeteer-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Extra flags for a WebGPU adapter in headless Chromium: Debian's chromium ships SwiftShader's. */
export const WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];

/** A file to serve: its content and MIME type. */
export interface Served {
  body: string | Uint8Array;
  type: string;
}

function serve(files: Record<string, Served>): Promise<Server> {
  const server = createServer((req, res) => {
    const f = files[new URL(req.url ?? "/", "http://x").pathname];
    if (f === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": f.type }).end(f.body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** The page at / of `files` in Chromium, after `window.__result` settles: its value, the page's errors. */
export async function runPage(
  files: Record<string, Served>,
  opts: { timeoutMs?: number; onPage?: (page: Page) => Promise<void>; args?: readonly string[] } = {},
): Promise<{ result: unknown; errors: string[] }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `browser test: no Chromium at ${CHROMIUM}; install it with \`apt-get install -y chromium\``,
    );
  }
  const server = await serve(files);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...(opts.args ?? [])],
    // page.evaluate awaits the page's result in one protocol call: let it last as long as the page may
    protocolTimeout: Math.max(180_000, opts.timeoutMs ?? 0),
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`pageerror: ${e instanceof Error ? e.message : e}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console.error: ${m.text()}`);
    });
    const { port } = server.address() as AddressInfo;
    await page.goto(`http://127.0.0.1:${port}/`);
    const timeout = opts.timeoutMs ?? 120_000;
    await page.waitForFunction("window.__result !== undefined", { timeout });
    const result = await page.evaluate(
      "window.__result.then((v) => ({ ok: v }), (e) => ({ error: String(e && e.stack || e) }))",
    );
    if (opts.onPage) await opts.onPage(page);
    return { result, errors };
  } finally {
    await browser.close();
    server.close();
  }
}

/** An HTML page that loads /page.js as a module. */
export const MODULE_PAGE: Served = {
  type: "text/html",
  body: '<!doctype html><meta charset="utf-8"><title>chainrule test</title><link rel="icon" href="data:,"><script type="module" src="/page.js"></script>',
};
