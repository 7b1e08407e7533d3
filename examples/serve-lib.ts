/**
 * What the browser examples' servers share (examples/browser, examples/playground): bundle a page's TypeScript
 * entry for the browser with esbuild, serve a fixed set of in-memory files on 127.0.0.1, and tell whether a module
 * is the program being run (so that `serve.ts` both starts a server from the command line and exports its start
 * function for the screenshot tests).
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** A file to serve: its MIME type and content. */
export interface Route {
  type: string;
  body: string | Uint8Array;
}

/** A running server: its address (ending in "/") and how to stop it. */
export interface Running {
  url: string;
  close: () => void;
}

/** The entry module bundled (with everything it imports) into one ES module for browsers. */
export async function bundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "warning",
  });
  return out.outputFiles[0].text;
}

/** A page's routes: `/` is the HTML file, `/main.js` the bundled entry; `extra` adds more. */
export async function pageRoutes(
  html: string,
  entry: string,
  extra: Record<string, Route> = {},
): Promise<Record<string, Route>> {
  return {
    "/": { type: "text/html", body: readFileSync(html, "utf8") },
    "/main.js": { type: "text/javascript", body: await bundle(entry) },
    ...extra,
  };
}

/** Serve `routes` on 127.0.0.1:`port` (0: any free port); anything else is a 404. */
export async function serveRoutes(routes: Record<string, Route>, port: number): Promise<Running> {
  const server = createServer((req, res) => {
    const r = routes[new URL(req.url ?? "/", "http://x").pathname];
    if (r === undefined) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": r.type }).end(r.body);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: actual } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${actual}/`, close: () => server.close() };
}

/** True when the module at `moduleUrl` (its `import.meta.url`) is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(moduleUrl) === process.argv[1];
}

/** The port given on the command line (`serve.ts 9000`), or `fallback`. */
export function portArg(fallback = 8080): number {
  const p = Number(process.argv[2] ?? fallback);
  if (!(Number.isInteger(p) && p >= 0 && p < 65536)) {
    throw new RangeError(`serve: the port must be an integer in [0, 65535], got "${process.argv[2]}"`);
  }
  return p;
}
