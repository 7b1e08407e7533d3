/**
 * The shape of the compiled N-API addon (native/src/addon.cc) and the op-code tables shared with it.
 *
 * The addon takes typed arrays as arguments and computes on them in place; everything else (view offsets,
 * shapes, strides and small parameters) travels through one preallocated Float64Array, the "meta" buffer,
 * registered once with `init`. Kernel families, their `kind` codes and op codes are declared once, in
 * native/src/kernels.def; the addon reports them (`describe`) and backend.ts builds its tables from that.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { TypedArray } from "../../dtype.ts";

/**
 * The package root, relative to this file (src/backend/native or dist/backend/native): it holds prebuilds/
 * (the addon compiled at pack time, scripts/prebuild.mjs) and native/build/Release (a local compile).
 */
const PACKAGE_ROOT = new URL("../../../", import.meta.url);
const LOCAL_BUILD = "native/build/Release/chainrule_native.node";

/** Where the addon came from: a prebuild shipped in the package, a local compile, or $CHAINRULE_NATIVE_ADDON. */
export type AddonSource = "prebuild" | "local build" | "CHAINRULE_NATIVE_ADDON";

/**
 * Load the addon, trying in order: $CHAINRULE_NATIVE_ADDON (e.g. a sanitizer build in tests), the prebuild
 * for this platform in prebuilds/ (matched by node-gyp-build on platform, arch, libc and N-API), then the local
 * compile in native/build/Release. Returns the addon and its path, or one sentence saying why none loaded
 * (without advice: the caller knows the context and says what fixes it).
 */
export function loadAddon(): { addon: NativeAddon; path: string; source: AddonSource } | { error: string } {
  const require = createRequire(import.meta.url);
  const root = decodeURIComponent(PACKAGE_ROOT.pathname);
  const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n")[0];
  const override = typeof process !== "undefined" ? process.env.CHAINRULE_NATIVE_ADDON : undefined;
  if (override) {
    try {
      return { addon: require(override), path: override, source: "CHAINRULE_NATIVE_ADDON" };
    } catch (e) {
      return { error: `CHAINRULE_NATIVE_ADDON=${override} does not load: ${firstLine(e)}` };
    }
  }
  const failures: string[] = [];
  let prebuild: string | undefined;
  try {
    // node-gyp-build looks at <root>/build first (absent: our compile lives in native/build), then prebuilds/.
    const gypBuild: { path(dir: string): string } = require("node-gyp-build");
    prebuild = gypBuild.path(root);
  } catch {
    // node-gyp-build's message lists every tag it matched on; the platform is what a reader needs
    failures.push(`no prebuild for ${process.platform}-${process.arch} in prebuilds/`);
  }
  if (prebuild !== undefined) {
    try {
      return { addon: require(prebuild), path: prebuild, source: "prebuild" };
    } catch (e) {
      failures.push(`the prebuild ${prebuild} does not load (${firstLine(e)})`);
    }
  }
  const local = root + LOCAL_BUILD;
  if (!existsSync(local)) failures.push(`no local build (${LOCAL_BUILD})`);
  else {
    try {
      return { addon: require(local), path: local, source: "local build" };
    } catch (e) {
      failures.push(`the local build ${local} does not load (${firstLine(e)})`);
    }
  }
  return { error: failures.join("; ") };
}

/**
 * The functions the compiled addon exports: one per CR_KERNEL of native/src/kernels.def, called with `kind`
 * when its layout has one, then the typed arrays of its layout (the rest is in the meta buffer), and these.
 */
export interface NativeAddon {
  init(meta: Float64Array): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  isa(): string;
  setIsa(name: string): boolean;
  /** Whether the bfloat16 kernels use AMX tiles (absent from addons built before AMX support). */
  amx?(): boolean;
  /** Switch the AMX path of the bfloat16 kernels on or off; returns whether AMX is now used. */
  setAmx?(on: boolean): boolean;
  /** Whether flush-denormal mode is on (absent from addons built before it). */
  flushDenormal?(): boolean;
  /** Switch flush-denormal mode (FTZ / DAZ during kernel calls); false where the CPU has no such mode. */
  setFlushDenormal?(on: boolean): boolean;
  describe(): NativeDescription;
  /** Ask for huge pages on the malloc heap grown since the last call (after a large allocation). */
  adviseHeap(): void;
  unary(op: number, x: TypedArray, out: TypedArray): void;
  binary(op: number, a: TypedArray, b: TypedArray, out: TypedArray): void;
  where(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void;
  cast(x: TypedArray, out: TypedArray): void;
  copy(src: TypedArray, dst: TypedArray): void;
  reduce(op: number, x: TypedArray, out: TypedArray): void;
  argReduce(isMin: number, x: TypedArray, out: TypedArray): void;
  cumsum(x: TypedArray, out: TypedArray): void;
  dot(a: TypedArray, b: TypedArray, out: TypedArray): void;
  conv2d(kind: number, p: TypedArray, q: TypedArray, bias: TypedArray | null, out: TypedArray): void;
  pool2d(kind: number, x: TypedArray, out: TypedArray): void;
  maxPool2dBackward(x: TypedArray, dy: TypedArray, out: TypedArray): void;
  gather(x: TypedArray, idx: TypedArray, out: TypedArray): void;
  scatterAdd(src: TypedArray, idx: TypedArray, out: TypedArray): void;
  adamUpdate(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, vmax: TypedArray | null): void;
  activation(kind: number, x: TypedArray, b: TypedArray | null, out: TypedArray): void;
  softmax(log: number, x: TypedArray, out: TypedArray): void;
  softmaxBackward(log: number, y: TypedArray, ct: TypedArray, out: TypedArray): void;
  layerNorm(kind: number, x: TypedArray, g: TypedArray | null, out: TypedArray): void;
  layerNormAffine?(
    kind: number,
    x: TypedArray,
    a: TypedArray | null,
    g: TypedArray | null,
    out: TypedArray,
  ): void;
  /** Fused attention (kind: causal 0/1): q, k, v, mask or null, out. */
  attention(
    causal: number,
    q: TypedArray,
    k: TypedArray,
    v: TypedArray,
    mask: TypedArray | null,
    out: TypedArray,
  ): void;
  /** Its VJP (kind: causal 0/1): out, then the list q, k, v, [mask,] o, dout. */
  attentionBackward(causal: number, out: TypedArray, ...inputs: TypedArray[]): void;
  /** Fused recurrent cells (kind: lstmCell, lstmCellBackward, gruCell, gruCellBackward): out, then the operands. */
  rnnCell(kind: number, out: TypedArray, ...inputs: TypedArray[]): void;
  /** jit's fused elementwise program (absent from an addon built before it): code, consts, out, the inputs. */
  fused?(code: Int32Array, consts: Float64Array, out: TypedArray, ...inputs: TypedArray[]): void;
  /** jit's GEMM epilogue (absent from an addon built before it): a, b, code, consts, out, the list. */
  dotFused?(
    a: TypedArray,
    b: TypedArray,
    code: Int32Array,
    consts: Float64Array,
    out: TypedArray,
    ...views: TypedArray[]
  ): void;
  /** float16 / bfloat16 casts (native/src/kernels/half.cc; absent from an addon built before them). */
  halfCast?(kind: number, x: TypedArray, out: TypedArray): void;
  /**
   * The bfloat16 GEMM with float32 accumulation and an epilogue (throws when the CPU or ISA build lacks
   * AVX512_BF16): kind bit 0 relu, bit 1 / 2 the mask applies to a / b; bias and mask may be null.
   */
  dotBF16?(
    kind: number,
    a: TypedArray,
    b: TypedArray,
    bias: TypedArray | null,
    mask: TypedArray | null,
    out: TypedArray,
  ): void;
  /**
   * The bfloat16 convolution as an implicit GEMM (throws without AVX512_BF16): kind 0 forward (x, w, bias?), 1
   * weight gradient (x, dz); layout "kind shape[4] stride[2] padding[2] dilation[2] groups act view view view?
   * out:shape".
   */
  convBF16?(kind: number, p: TypedArray, q: TypedArray, bias: TypedArray | null, out: TypedArray): void;
}

/**
 * What native/src/kernels.def declares, as the addon reports it: op names in code order (a code is the
 * position), and each kernel family with the Backend methods it serves (space-separated, in `kind` order) and
 * its meta-buffer layout (see the comment at the top of kernels.def).
 */
export interface NativeDescription {
  readonly unary: readonly string[];
  readonly binary: readonly string[];
  readonly reduce: readonly string[];
  readonly activation: readonly string[];
  readonly families: readonly { readonly name: string; readonly serves: string; readonly meta: string }[];
}
