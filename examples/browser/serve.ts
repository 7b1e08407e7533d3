/**
 * Serve the browser demo (`npm run demo:browser`, then open the printed address): index.html, main.ts bundled
 * for the browser by esbuild, and the 10,000 digits as gzipped IDX files, made once at start from the same
 * loader the CLI uses. `startDemo` is also used by the demo's screenshot test.
 *
 * Run: node --import tsx examples/browser/serve.ts [port]   (default 8080; 0 picks a free port)
 */
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { io } from "../../src/index.ts";
import { files } from "../../src/node.ts";
import { isMain, pageRoutes, portArg, type Route, type Running, serveRoutes } from "../serve-lib.ts";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/** The digits as the two gzipped IDX files the page fetches. */
function digitsFiles(): Record<string, Route> {
  const d = files.loadDigits();
  const bytes = Uint8Array.from(d.images, (v) => Math.round(v * 255));
  const idx = (a: io.IdxArray): Route => ({
    type: "application/octet-stream",
    body: gzipSync(io.serializeIdx(a)),
  });
  return {
    "/digits-images-idx3-ubyte.gz": idx({ type: "uint8", shape: [d.n, d.rows, d.cols], data: bytes }),
    "/digits-labels-idx1-ubyte.gz": idx({ type: "uint8", shape: [d.n], data: Uint8Array.from(d.labels) }),
  };
}

/** Start the demo server on `port` (0: any free port). Resolves to its address and a close function. */
export async function startDemo(port = 8080): Promise<Running> {
  return serveRoutes(await pageRoutes(here("./index.html"), here("./main.ts"), digitsFiles()), port);
}

if (isMain(import.meta.url)) {
  const { url } = await startDemo(portArg());
  console.log(`chainrule browser demo: open ${url} (Ctrl-C to stop)`);
}
