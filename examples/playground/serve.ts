/**
 * Serve the playground (`npm run playground [-- port]`, then open the printed address): index.html, style.css
 * and main.ts bundled for the browser by esbuild. `startPlayground` is also used by its browser test.
 *
 * Run: node --import tsx examples/playground/serve.ts [port]   (default 8080; 0 picks a free port)
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isMain, pageRoutes, portArg, type Running, serveRoutes } from "../serve-lib.ts";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/** Start the playground's server on `port` (0: any free port). Resolves to its address and a close function. */
export async function startPlayground(port = 8080): Promise<Running> {
  const css = { type: "text/css", body: readFileSync(here("./style.css"), "utf8") };
  return serveRoutes(await pageRoutes(here("./index.html"), here("./main.ts"), { "/style.css": css }), port);
}

if (isMain(import.meta.url)) {
  const { url } = await startPlayground(portArg());
  console.log(`chainrule playground: open ${url} (Ctrl-C to stop)`);
}
