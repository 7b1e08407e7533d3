/**
 * Which backend runs kernels. `js` (the reference) is always available; faster backends are registered by name
 * with a loader that either returns a backend or the reason it cannot run (so the library keeps working on the
 * others and can say why once). `CHAINRULE_BACKEND=js|native|wasm` or `setBackend(name)` choose explicitly.
 */
import type { Backend } from "./backend.ts";
import { jsBackend } from "./js/index.ts";
import { loadWasmBackend } from "./wasm/index.ts";

type Loader = () => Backend | { error: string };

const loaders = new Map<string, Loader>([
  ["js", () => jsBackend],
  [
    "wasm",
    () => {
      const r = loadWasmBackend();
      return "error" in r ? r : r.backend;
    },
  ],
]);
const loaded = new Map<string, Backend | { error: string }>();
let current: Backend = jsBackend;

/** The backend kernels currently run on. */
export function getBackend(): Backend {
  return current;
}

/** Make a backend available under `name`; the loader runs on first use. */
export function registerBackend(name: string, loader: Loader): void {
  loaders.set(name, loader);
  loaded.delete(name);
}

/** Load a registered backend without selecting it: the backend, or why it is unavailable. */
export function loadBackend(name: string): Backend | { error: string } {
  let b = loaded.get(name);
  if (b === undefined) {
    const loader = loaders.get(name);
    if (loader === undefined) {
      b = { error: `unknown backend '${name}' (registered: ${[...loaders.keys()].join(", ")})` };
    } else {
      try {
        b = loader();
      } catch (e) {
        b = { error: (e as Error).message };
      }
    }
    loaded.set(name, b);
  }
  return b;
}

/** Select the backend by name or object. Throws with the reason if it cannot be loaded. */
export function setBackend(b: string | Backend): Backend {
  if (typeof b !== "string") {
    current = b;
    return b;
  }
  const r = loadBackend(b);
  if ("error" in r) throw new Error(`setBackend('${b}'): ${r.error}`);
  current = r;
  return r;
}

/** Names of the registered backends. */
export function listBackends(): string[] {
  return [...loaders.keys()];
}
