/** The vmap op-table suites (test/vmap-suites.ts) on the native backend. */
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { vmapSuites } from "../vmap-suites.ts";

vmapSuites("native", () => {
  const r = loadNativeBackend();
  if ("error" in r) throw new Error(`native backend unavailable: ${r.error}`);
  return r.backend;
});
