/**
 * The shape of the compiled N-API addon (native/src/addon.cc) and the op-code tables shared with it.
 *
 * The addon takes typed arrays as arguments and computes on them in place; everything else (view offsets,
 * shapes, strides and small parameters) travels through one preallocated Float64Array, the "meta" buffer,
 * registered once with `init`. Op codes are indices into the C++ enums of native/src/common.h, in the order
 * of the unions in backend.ts.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { TypedArray } from "../../dtype.ts";
import type { BinaryOp, ReduceOp, UnaryOp } from "../backend.ts";

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

/** The functions the compiled addon exports. Kernel arguments are described in native/src/addon.cc. */
export interface NativeAddon {
  init(meta: Float64Array): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  isa(): string;
  setIsa(name: string): boolean;
  unary(op: number, x: TypedArray, out: TypedArray): void;
  binary(op: number, a: TypedArray, b: TypedArray, out: TypedArray): void;
  where(cond: TypedArray, a: TypedArray, b: TypedArray, out: TypedArray): void;
  cast(x: TypedArray, out: TypedArray): void;
  copy(src: TypedArray, dst: TypedArray): void;
  reduce(op: number, x: TypedArray, out: TypedArray): void;
  argReduce(isMin: number, x: TypedArray, out: TypedArray): void;
  cumsum(x: TypedArray, out: TypedArray): void;
  dot(a: TypedArray, b: TypedArray, out: TypedArray): void;
  conv2d(kind: number, p: TypedArray, q: TypedArray, out: TypedArray, bias?: TypedArray | null): void;
  pool2d(kind: number, x: TypedArray, out: TypedArray): void;
  maxPool2dBackward(x: TypedArray, dy: TypedArray, out: TypedArray): void;
  gather(x: TypedArray, idx: TypedArray, out: TypedArray): void;
  scatterAdd(src: TypedArray, idx: TypedArray, out: TypedArray): void;
  adamUpdate(p: TypedArray, g: TypedArray, m: TypedArray, v: TypedArray, vmax: TypedArray | null): void;
  activation(kind: number, act: number, x: TypedArray, b: TypedArray | null, out: TypedArray): void;
  softmax(log: number, x: TypedArray, out: TypedArray): void;
  softmaxBackward(log: number, y: TypedArray, ct: TypedArray, out: TypedArray): void;
}

/** UnaryOp -> native code (enum UnaryOp in common.h). */
export const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0,
  abs: 1,
  sign: 2,
  exp: 3,
  log: 4,
  log1p: 5,
  expm1: 6,
  sqrt: 7,
  sin: 8,
  cos: 9,
  tan: 10,
  tanh: 11,
  sigmoid: 12,
  erf: 13,
  relu: 14,
  floor: 15,
  ceil: 16,
  round: 17,
  not: 18,
};

/** BinaryOp -> native code (enum BinaryOp in common.h). */
export const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  pow: 4,
  maximum: 5,
  minimum: 6,
  eq: 7,
  ne: 8,
  lt: 9,
  le: 10,
  gt: 11,
  ge: 12,
  and: 13,
  or: 14,
  xor: 15,
};

/** ReduceOp -> native code (enum ReduceOp in common.h). */
export const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, prod: 1, max: 2, min: 3 };

/** conv2d kinds and pool2d kinds of the addon. */
export const CONV_FORWARD = 0;
export const CONV_BACK_INPUT = 1;
export const CONV_BACK_WEIGHT = 2;
export const POOL_MAX = 0;
export const POOL_MAX_ARGMAX = 1;
export const POOL_AVG = 2;
export const POOL_AVG_BACKWARD = 3;
