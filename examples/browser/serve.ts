/**
 * Serve the browser demo (`npm run demo:browser`, then open the printed address): index.html, main.ts bundled
 * for the browser by esbuild, and the 10,000 digits as gzipped IDX files, made once at start from the same
 * loader the CLI uses. `startDemo` is also used by the demo's screenshot test.
 *
 * Run: node --import tsx examples/browser/serve.ts [port]   (default 8080; 0 picks a free port)
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { io } from "../../src/index.ts";
import { files } from "../../src/node.ts";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/** The digits as the two gzipped IDX files the page fetches. */
function digitsFiles(): Record<string, Uint8Array> {
  const d = files.loadDigits();
  const bytes = Uint8Array.from(d.images, (v) => Math.round(v * 255));
  return {
    "/digits-images-idx3-ubyte.gz": gzipSync(
      io.serializeIdx({ type: "uint8", shape: [d.n, d.rows, d.cols], data: bytes }),
    ),
    "/digits-labels-idx1-ubyte.gz": gzipSync(
      io.serializeIdx({ type: "uint8", shape: [d.n], data: Uint8Array.from(d.labels) }),
    ),
  };
}

/** Start the demo server on `port` (0: any free port). Resolves to its address and a close function. */
export async function startDemo(port = 8080): Promise<{ url: string; close: () => void }> {
  const bundled = await build({
    entryPoints: [here("./main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "warning",
  });
  const routes: Record<string, { type: string; body: string | Uint8Array }> = {
    "/": { type: "text/html", body: readFileSync(here("./index.html"), "utf8") },
    "/main.js": { type: "text/javascript", body: bundled.outputFiles[0].text },
  };
  for (const [path, body] of Object.entries(digitsFiles())) {
    routes[path] = { type: "application/octet-stream", body };
  }
  const server = createServer((req, res) => {
    const r = routes[new URL(req.url ?? "/", "http://x").pathname];
    if (r === undefined) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": r.type }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: actual } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${actual}/`, close: () => server.close() };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { url } = await startDemo(Number(process.argv[2] ?? 8080));
  console.log(`chainrule browser demo: open ${url} (Ctrl-C to stop)`);
}
