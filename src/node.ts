/**
 * The Node entry point (`import ... from "chainrule"` under Node): everything in the browser-safe entry, plus
 * the file-system helpers (data sets, safetensors files, IDX files) and the native backend, which becomes the
 * default when it loads (set CHAINRULE_BACKEND=js|native|wasm to choose).
 */
import { loadNativeBackend } from "./backend/native/index.ts";
import { loadBackend, registerBackend, setBackend } from "./backend/registry.ts";

export * from "./index.ts";
export * as files from "./node-files.ts";

export { nativeInfo, setNumThreads } from "./backend/native/index.ts";

registerBackend("native", () => {
  const r = loadNativeBackend();
  return "error" in r ? r : r.backend;
});

let warned = false;

/**
 * Choose the backend as the Node entry does at load: $CHAINRULE_BACKEND if set, else the native backend if it
 * loads (saying once why not, if not), else the current one.
 */
export function selectDefaultBackend(): void {
  const requested = process.env.CHAINRULE_BACKEND;
  if (requested !== undefined && requested !== "") {
    setBackend(requested);
    return;
  }
  const native = loadBackend("native");
  if (!("error" in native)) setBackend(native);
  else if (!warned) {
    warned = true;
    // the library keeps working on the js reference backend
    console.warn(`chainrule: native backend unavailable (${native.error}); using the js backend`);
  }
}

selectDefaultBackend();
