/**
 * `await init()`: pick the backend asynchronously, the way a browser page should start chainrule.
 *
 * Browsers refuse (or stall the page on) synchronous WebAssembly compilation on the main thread, so the wasm
 * backend cannot be loaded lazily on first use there the way Node loads it. `init` compiles it with
 * `WebAssembly.compile` and makes it the current backend; where WebAssembly (with SIMD) is unavailable it
 * falls back to the js reference backend and says why in the result. Until `init` resolves, kernels run on js.
 */
import { registerBackend, setBackend } from "./backend/registry.ts";
import { initWasmBackend } from "./backend/wasm/index.ts";
import { initWebgpuBackend, webgpuInfo } from "./backend/webgpu/index.ts";

/** Options of {@link init}. */
export interface InitOptions {
  /**
   * The backend to use: "wasm" (the default; fails if WebAssembly SIMD is unavailable instead of falling
   * back), "webgpu" (falls back to wasm, saying so on the console, when no WebGPU adapter is available), "js",
   * or any registered name ("native" under Node).
   */
  backend?: string;
}

/** What {@link init} chose: the backend's name and, if it fell back (webgpu to wasm, wasm to js), why. */
export interface InitResult {
  backend: string;
  fallback?: string;
  /** With webgpu: the adapter (vendor, architecture, device, description), e.g. to tell a software one. */
  adapter?: string;
}

/**
 * Load the wasm backend asynchronously and make it current (js if wasm is unavailable), or select the
 * backend named by `opts.backend`. Safe to call more than once.
 *
 * @example
 * ```ts
 * import * as cr from "chainrule";
 * const { backend } = await cr.init(); // "wasm" in any current browser
 * ```
 */
export async function init(opts: InitOptions = {}): Promise<InitResult> {
  const want = opts.backend;
  if (want === "webgpu") {
    try {
      const gpu = await initWebgpuBackend();
      registerBackend("webgpu", () => gpu);
      return { backend: setBackend(gpu).name, adapter: webgpuInfo()?.adapter };
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      console.warn(`chainrule: webgpu unavailable (${why}); falling back to wasm`);
      const r = await init();
      return {
        backend: r.backend,
        fallback: `webgpu unavailable: ${why}${r.fallback ? `; ${r.fallback}` : ""}`,
      };
    }
  }
  if (want !== undefined && want !== "wasm") {
    return { backend: setBackend(want).name };
  }
  try {
    const wasm = await initWasmBackend();
    // a synchronous load tried earlier may have recorded a failure (e.g. a browser's main thread): replace it
    registerBackend("wasm", () => wasm);
    setBackend(wasm);
    return { backend: wasm.name };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    if (want === "wasm") throw new Error(`init: the wasm backend is unavailable: ${why}`);
    return { backend: setBackend("js").name, fallback: `wasm unavailable: ${why}` };
  }
}
