/**
 * Loader of the native CPU backend (Node only): a C++ N-API addon built by node-gyp from native/ (see
 * native/build.mjs), with AVX-512 / AVX2 / baseline kernels chosen at run time and a thread pool over all
 * cores. If the addon is missing or fails to load, `loadNativeBackend` returns the reason instead of
 * throwing, and the library keeps running on the other backends.
 */
import { createRequire } from "node:module";
import type { Backend } from "../backend.ts";
import type { NativeAddon } from "./addon.ts";
import { createNativeBackend } from "./backend.ts";

/** Where node-gyp puts the addon, relative to this file (src/backend/native or dist/backend/native). */
const ADDON_PATH = "../../../native/build/Release/chainrule_native.node";

let cached: { backend: Backend; addon: NativeAddon } | { error: string } | undefined;

function load(): { backend: Backend; addon: NativeAddon } | { error: string } {
  if (cached !== undefined) return cached;
  try {
    const require = createRequire(import.meta.url);
    // CHAINRULE_NATIVE_ADDON: load another build of the addon (e.g. a sanitizer build in tests).
    const path = (typeof process !== "undefined" && process.env.CHAINRULE_NATIVE_ADDON) || ADDON_PATH;
    const addon = require(path) as NativeAddon;
    cached = { backend: createNativeBackend(addon), addon };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    cached = {
      error: `native backend unavailable (${msg}); build it with \`npm run build:native\` (needs g++, make, python3)`,
    };
  }
  return cached;
}

/**
 * Load the native backend, or say why it cannot run. Never throws.
 *
 * @example
 * ```ts
 * const r = loadNativeBackend();
 * if ("backend" in r) setBackend(r.backend);
 * else console.warn(r.error);
 * ```
 */
export function loadNativeBackend(): { backend: Backend } | { error: string } {
  const r = load();
  return "error" in r ? { error: r.error } : { backend: r.backend };
}

function addon(op: string): NativeAddon {
  const r = load();
  if ("error" in r) throw new Error(`${op}: ${r.error}`);
  return r.addon;
}

/**
 * Set the number of threads the native kernels use (n >= 1; 0 restores the default, the number of cores).
 *
 * @example
 * ```ts
 * setNumThreads(1); // single-threaded, e.g. for benchmarks
 * ```
 */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`setNumThreads: expected a non-negative integer, got ${n}`);
  }
  addon("setNumThreads").setNumThreads(n);
}

/**
 * The native backend's thread count and the instruction set its kernels were compiled for
 * ("avx512", "avx2" or "base").
 *
 * @example
 * ```ts
 * nativeInfo(); // { threads: 2, isa: "avx512" }
 * ```
 */
export function nativeInfo(): { threads: number; isa: string } {
  const a = addon("nativeInfo");
  return { threads: a.getNumThreads(), isa: a.isa() };
}

/**
 * Switch the native kernels to another instruction-set build ("avx512", "avx2" or "base"); returns false
 * if this CPU cannot run it. Meant for tests, which check every build against the js backend.
 *
 * @example
 * ```ts
 * setNativeIsa("base"); // the baseline x86-64 kernels
 * ```
 */
export function setNativeIsa(isa: "avx512" | "avx2" | "base"): boolean {
  return addon("setNativeIsa").setIsa(isa);
}
