/**
 * Loader of the native CPU backend (Node only): a C++ N-API addon built by node-gyp from native/ (see
 * native/build.mjs), with AVX-512 / AVX2 / baseline kernels chosen at run time and a thread pool over all
 * cores. If the addon is missing or fails to load, `loadNativeBackend` returns the reason instead of
 * throwing, and the library keeps running on the other backends.
 */
import type { Backend } from "../backend.ts";
import { type AddonSource, loadAddon, type NativeAddon } from "./addon.ts";
import { createNativeBackend, flushDenormalChanged } from "./backend.ts";

let cached:
  | { backend: Backend; addon: NativeAddon; source: AddonSource; path: string }
  | { error: string }
  | undefined;

function load():
  | { backend: Backend; addon: NativeAddon; source: AddonSource; path: string }
  | { error: string } {
  if (cached !== undefined) return cached;
  const r = loadAddon();
  if ("error" in r) cached = r;
  else {
    try {
      cached = { backend: createNativeBackend(r.addon), addon: r.addon, source: r.source, path: r.path };
    } catch (e) {
      cached = { error: `${r.path} loaded but failed to initialise (${e instanceof Error ? e.message : e})` };
    }
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
 * Set the number of threads the native kernels use (n >= 1, at most 256; 0 restores the number of cores).
 * The count at load is $CHAINRULE_NUM_THREADS when set (a positive integer, clamped to 256; a malformed value
 * is reported on stderr, naming the variable, and the number of cores is used), else the number of cores.
 * The native backend may be used from several threads (worker_threads): its kernel calls run one at a time.
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
 * The native backend's thread count, the instruction set its kernels run ("avx512", "avx2" or "base"),
 * whether its bfloat16 products run on Intel AMX tiles (`amx`: the CPU has AMX-BF16, the OS granted the tile
 * state, and neither `CHAINRULE_NATIVE_AMX=0` nor {@link setNativeAmx} switched it off), whether flush-denormal
 * mode is on ({@link setFlushDenormal}), and which addon
 * file loaded (the package's prebuild, a local compile, or $CHAINRULE_NATIVE_ADDON).
 *
 * @example
 * ```ts
 * nativeInfo(); // { threads: 2, isa: "avx512", amx: false, flushDenormal: false, source: "prebuild", path: ".../prebuilds/linux-x64/node.napi.glibc.node" }
 * ```
 */
export function nativeInfo(): {
  threads: number;
  isa: string;
  amx: boolean;
  flushDenormal: boolean;
  source: AddonSource;
  path: string;
} {
  const r = load();
  if ("error" in r) throw new Error(`nativeInfo: ${r.error}`);
  const amx = typeof r.addon.amx === "function" ? r.addon.amx() : false;
  const flushDenormal = typeof r.addon.flushDenormal === "function" ? r.addon.flushDenormal() : false;
  return {
    threads: r.addon.getNumThreads(),
    isa: r.addon.isa(),
    amx,
    flushDenormal,
    source: r.source,
    path: r.path,
  };
}

/**
 * Flush-denormal mode of the native backend, as PyTorch's `torch.set_flush_denormal`: while on, its kernels read
 * subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) as zero and flush subnormal results to zero
 * (the x86 DAZ and FTZ modes, set on the kernel threads for each call; JavaScript's own arithmetic is not
 * affected). On Intel cores every operation on a subnormal takes a microcode assist, so a converging model whose
 * gradients, optimizer state or activations drift into that range can slow down several times (an elementwise
 * product of 1M float32 values whose results are subnormal: 2.6 ms, flushed 0.45 ms, on one core of an Intel
 * Xeon). Off by default: results are then IEEE. Returns whether
 * the request took effect (`true` on x86-64; `false` for `on` elsewhere). The native fused Adam flushes its own
 * subnormals either way. The wasm and js backends keep IEEE subnormals (WebAssembly has no such mode); their
 * Adam flushes as the native one does.
 *
 * @example
 * ```ts
 * setFlushDenormal(true); // torch.set_flush_denormal(True)
 * ```
 */
export function setFlushDenormal(on: boolean): boolean {
  if (typeof on !== "boolean") throw new TypeError(`setFlushDenormal: expected a boolean, got ${typeof on}`);
  const a = addon("setFlushDenormal");
  if (typeof a.setFlushDenormal !== "function") return !on;
  const took = a.setFlushDenormal(on);
  flushDenormalChanged(a, typeof a.flushDenormal === "function" ? a.flushDenormal() : took && on);
  return took;
}

/**
 * Switch the AMX path of the native bfloat16 GEMM on or off (the AVX512_BF16 vdpbf16ps path runs when it is
 * off); returns whether AMX is used afterwards, false where the CPU or OS lacks it. Meant for tests and A/B
 * measurements, which run both paths; `CHAINRULE_NATIVE_AMX=0` switches it off for a whole process.
 *
 * @example
 * ```ts
 * setNativeAmx(false); // vdpbf16ps even on an AMX machine
 * ```
 */
export function setNativeAmx(on: boolean): boolean {
  const a = addon("setNativeAmx");
  return typeof a.setAmx === "function" ? a.setAmx(on) : false;
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
