/** The vmap op-table suites (test/vmap-suites.ts) on the wasm backend. */
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";
import { vmapSuites } from "../vmap-suites.ts";

vmapSuites("wasm", () => {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(`wasm backend unavailable: ${r.error}`);
  return r.backend;
});
