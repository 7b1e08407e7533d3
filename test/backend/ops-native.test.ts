/** The whole op table and its derivative suites on the native backend. */
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { opSuites } from "../op-suites.ts";

opSuites("native", () => {
  const r = loadNativeBackend();
  if ("error" in r) throw new Error(`native backend unavailable: ${r.error}`);
  return r.backend;
});
