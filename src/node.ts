/**
 * The Node entry point (`import ... from "chainrule"` under Node): everything in the browser-safe entry, plus
 * the file-system helpers (data sets, safetensors files, IDX files) and the native backend, which becomes the
 * default when it loads (set CHAINRULE_BACKEND=js|native|wasm to choose).
 */
import { loadBackend, setBackend } from "./backend/registry.ts";

export * from "./index.ts";
export * as files from "./node-files.ts";

const requested = process.env.CHAINRULE_BACKEND;
if (requested !== undefined && requested !== "") {
  setBackend(requested);
} else {
  const native = loadBackend("native");
  if (!("error" in native)) setBackend(native);
}
