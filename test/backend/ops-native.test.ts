/**
 * The whole op table and its derivative suites on the native backend. Outputs the core asks for uninitialised
 * are filled with garbage (NaN, or 0x5a bytes for integers) first, so a kernel that leaves any element unwritten
 * fails here instead of passing by the luck of zeroed memory.
 */
import type { Backend } from "../../src/backend/backend.ts";
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { opSuites } from "../op-suites.ts";

opSuites("native", (): Backend => {
  const r = loadNativeBackend();
  if ("error" in r) throw new Error(`native backend unavailable: ${r.error}`);
  const b = r.backend;
  return {
    ...b,
    alloc(dtype, size, uninitialized) {
      const a = b.alloc(dtype, size, uninitialized);
      if (uninitialized) a.fill(dtype === "float32" || dtype === "float64" ? Number.NaN : 0x5a);
      return a;
    },
  };
});
