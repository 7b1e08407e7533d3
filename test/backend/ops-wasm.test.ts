/** The whole op table and its derivative suites on the wasm backend. */
import { loadWasmBackend } from "../../src/backend/wasm/index.ts";
import { opSuites } from "../op-suites.ts";

opSuites("wasm", () => {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(`wasm backend unavailable: ${r.error}`);
  return r.backend;
});
