/**
 * The Node entry point (`import ... from "chainrule"` under Node): everything in the browser-safe entry, plus
 * the file-system helpers (data sets, safetensors files, IDX files) and the native backend, which becomes the
 * default when it loads; without it, wasm (set CHAINRULE_BACKEND=js|native|wasm to choose).
 */
import { loadNativeBackend } from "./backend/native/index.ts";
import { getBackend, loadBackend, registerBackend, setBackend } from "./backend/registry.ts";
import { type InitOptions, type InitResult, init as initBackend } from "./init.ts";

export * from "./index.ts";
export * as files from "./node-files.ts";
export * as distributed from "./distributed/index.ts";
export { type GraphHtmlOptions, graphHtml } from "./viz/graph-html.ts";

export { nativeInfo, setFlushDenormal, setNumThreads } from "./backend/native/index.ts";

registerBackend("native", () => {
  const r = loadNativeBackend();
  return "error" in r ? r : r.backend;
});

let warned = false;

/**
 * The one command that makes the native backend load: in an installed package, `npm rebuild chainrule` runs
 * the install script, which compiles the addon (npm 12 skips install scripts until they are approved); in a
 * checkout of chainrule itself, `npm run build:native`.
 */
function nativeFix(): string {
  const installed = new URL("../", import.meta.url).pathname.includes("/node_modules/");
  return installed
    ? "`npm rebuild chainrule` compiles it (needs g++, make, python3; with npm 12 first `npm install-scripts approve chainrule`)"
    : "`npm run build:native` compiles it (needs g++, make, python3)";
}

/**
 * Choose the backend as the Node entry does at load: $CHAINRULE_BACKEND if set, else the native backend if it
 * loads, else wasm (about 10x faster than js on training), else js. When it is not native, it says so once, on
 * one line: which backend runs, why native did not load, and what fixes it.
 */
export function selectDefaultBackend(): void {
  const requested = process.env.CHAINRULE_BACKEND;
  if (requested !== undefined && requested !== "") {
    setBackend(requested);
    return;
  }
  const native = loadBackend("native");
  if (!("error" in native)) {
    setBackend(native);
    return;
  }
  const wasm = loadBackend("wasm");
  const chosen = "error" in wasm ? "js" : "wasm";
  setBackend(chosen);
  if (!warned) {
    warned = true;
    const wasmWhy = "error" in wasm ? ` (wasm: ${wasm.error})` : "";
    console.warn(
      `chainrule: using the ${chosen} backend${wasmWhy}; the native addon did not load: ${native.error}. ${nativeFix()}.`,
    );
  }
}

/**
 * Under Node the backend is chosen at import (native, else wasm, else js), so `init()` without options keeps
 * that choice; with `{ backend }` it selects that backend (wasm compiled asynchronously). Exists so code shared
 * with a browser page can `await init()` everywhere.
 *
 * @example
 * ```ts
 * await init(); // { backend: "native" } where the addon loads
 * ```
 */
export async function init(opts: InitOptions = {}): Promise<InitResult> {
  if (opts.backend === undefined) return { backend: getBackend().name };
  return initBackend(opts);
}

selectDefaultBackend();
