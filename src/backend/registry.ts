/**
 * Which backend runs kernels. `js` (the reference) is always available; faster backends are registered by name
 * with a loader that either returns a backend or the reason it cannot run (so the library keeps working on the
 * others and can say why once). `CHAINRULE_BACKEND=js|native|wasm` or `setBackend(name)` choose explicitly.
 * A backend may implement only some kernels (a BackendImpl): loading or selecting it completes it once with
 * the js reference (complete.ts), so dispatch is a plain method call.
 */
import type { Backend, BackendImpl } from "./backend.ts";
import { completeBackend } from "./complete.ts";
import { jsBackend } from "./js/index.ts";
import { loadWasmBackend } from "./wasm/index.ts";
import { webgpuBackendIfReady } from "./webgpu/index.ts";

type Loader = () => BackendImpl | { error: string };

const loaders = new Map<string, Loader>([
  ["js", () => jsBackend],
  [
    "wasm",
    () => {
      const r = loadWasmBackend();
      return "error" in r ? r : r.backend;
    },
  ],
  [
    // optional, never the default: the device is requested asynchronously by `await init({ backend: "webgpu" })`
    "webgpu",
    () =>
      webgpuBackendIfReady() ?? {
        error: 'the webgpu backend needs `await init({ backend: "webgpu" })` first',
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
        const r = loader();
        b = "error" in r ? r : completeBackend(r);
      } catch (e) {
        b = { error: (e as Error).message };
      }
    }
    loaded.set(name, b);
  }
  return b;
}

/**
 * Select the backend by name or object (completed with js kernels where it omits some). Throws with the
 * reason if it cannot be loaded.
 */
export function setBackend(b: string | BackendImpl): Backend {
  if (typeof b !== "string") {
    current = completeBackend(b);
    return current;
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
