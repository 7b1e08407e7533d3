/**
 * The backends the kernel conformance suite checks against the js reference, each in every configuration
 * that runs different code: native on every instruction-set build this CPU runs (AVX-512, AVX2, baseline),
 * each with all threads and with one; wasm with its GEMM worker pool and with one thread.
 *
 * Which kernels a backend provides is read from the backend object, never from a list of test names: a kernel
 * it omits (a Partial backend completed by the registry) or takes straight from the js backend is reported by
 * the suite as "falls back to js" and still checked (exactly equal to js). The wasm backend also hands
 * individual calls to js (an op or dtype it has no wasm code for) and counts them (`fallbacks()`); where that
 * happens is declared below (`wasmRunsJs`), and the suite checks the counters against the declaration, so a
 * kernel that silently stops running in wasm fails.
 */
import {
  type Backend,
  KERNELS,
  type KernelName,
  type LayerNormAffineKernel,
} from "../../../src/backend/backend.ts";
import { jsBackend as J } from "../../../src/backend/js/index.ts";
import {
  loadNativeBackend,
  nativeInfo,
  setNativeIsa,
  setNumThreads,
} from "../../../src/backend/native/index.ts";
import { createWasmBackend, loadWasmBackend, type WasmBackend } from "../../../src/backend/wasm/index.ts";
import type { DType } from "../../../src/dtype.ts";

/** Every kernel of the Backend contract: the contract's own list (src/backend/backend.ts, checked complete there). */
export { KERNELS };
export type Kernel = KernelName | LayerNormAffineKernel;

/** One backend in one configuration. */
export interface Target {
  readonly label: string;
  readonly backend: Backend;
  /** Switch the backend into this configuration (instruction set, threads) before a call. */
  enter(): void;
  /** How many calls of `kernel` this backend has handed to js so far (wasm's counters), or null. */
  jsCalls(kernel: Kernel): number | null;
}

export const nativeLoad = loadNativeBackend();
const N = "backend" in nativeLoad ? nativeLoad.backend : undefined;
export const ISAS = N ? (["avx512", "avx2", "base"] as const).filter((i) => setNativeIsa(i)) : [];
const CORES = N ? nativeInfo().threads : 1;

const wasmLoad = loadWasmBackend();
if ("error" in wasmLoad) throw new Error(wasmLoad.error);
/** The wasm backend as the library loads it (a worker pool where the machine has several cores). */
const W: WasmBackend = wasmLoad.backend;
/** A second wasm instance without workers. */
const W1: WasmBackend = createWasmBackend({ threads: 1 });

function wasmTarget(b: WasmBackend): Target {
  return {
    label: `wasm, ${b.threads} thread${b.threads > 1 ? "s" : ""}`,
    backend: b,
    enter: () => {},
    jsCalls: (k) => b.fallbacks()[k] ?? 0,
  };
}

export const TARGETS: readonly Target[] = [
  ...ISAS.flatMap((isa) =>
    [...new Set([CORES, 1])].map(
      (threads): Target => ({
        label: `native ${isa}, ${threads} thread${threads > 1 ? "s" : ""}`,
        backend: N!,
        enter: () => {
          setNativeIsa(isa);
          setNumThreads(threads);
        },
        jsCalls: () => null,
      }),
    ),
  ),
  wasmTarget(W),
  wasmTarget(W1),
];

/** Put the native backend back into its default configuration (fastest ISA, all cores). */
export function restoreDefaults(): void {
  if (!N) return;
  setNumThreads(0);
  setNativeIsa(ISAS[0]);
}

/** An op list a backend implementation declares (BackendImpl's unaryOps ...), or undefined: every op. */
function opList(b: object, key: "unaryOps" | "binaryOps" | "reduceOps"): readonly string[] | undefined {
  const v: unknown = Reflect.get(b, key);
  return Array.isArray(v) ? v : undefined;
}

/**
 * Whether the target's backend has its own code for `kernel` (and for the op `variant` of a unary, binary or
 * reduce row): false when the kernel is absent or is the js kernel itself, or when the backend declares an op
 * list without `variant`. Read from the backend object, so a Partial backend is reported, not skipped.
 */
export function provides(t: Target, kernel: Kernel, variant = ""): boolean {
  const f = t.backend[kernel];
  if (f === undefined || f === J[kernel]) return false;
  const key =
    kernel === "unary"
      ? "unaryOps"
      : kernel === "binary"
        ? "binaryOps"
        : kernel === "reduce"
          ? "reduceOps"
          : null;
  const ops = key === null ? undefined : opList(t.backend, key);
  return ops === undefined || ops.includes(variant);
}

/**
 * Where the wasm backend hands a call to the js kernel inside one of its own kernels (no wasm code for that op
 * or dtype; counted by `fallbacks()`), by kernel, dtype and op. Everywhere this says false the call must run in
 * wasm: the suite fails if the counter moves, so a kernel that silently stops running in wasm is caught.
 * undefined: not counted (softmax: small inputs run one js pass by design) or not the backend's own kernel.
 */
export function wasmRunsJs(kernel: Kernel, dtype: DType, op: string | undefined): boolean | undefined {
  switch (kernel) {
    case "unary":
      if (dtype === "bool") return op !== "not";
      if (dtype === "int32") return !(op === "neg" || op === "abs" || op === "sign");
      return op === "not";
    case "binary":
      return dtype === "int32" && (op === "div" || op === "pow");
    case "dot":
      return dtype === "int32";
    case "conv2d":
    case "conv2dBackInput":
    case "conv2dBackWeight":
    case "maxPool2d":
    case "maxPool2dArgmax":
    case "maxPool2dBackward":
    case "avgPool2d":
    case "avgPool2dBackward":
      return dtype !== "float32";
    case "scatterAdd":
    case "reduce":
      return dtype === "bool";
    case "layerNorm":
    case "layerNormBackward":
    case "layerNormAffine":
    case "layerNormScaledBackward":
    case "layerNormAffineGrads":
      return dtype !== "float32";
    case "where":
    case "cast":
    case "copy":
    case "adamUpdate":
    case "attention":
    case "attentionBackward":
    case "lstmCell":
    case "lstmCellBackward":
    case "gruCell":
    case "gruCellBackward":
      return false;
    default:
      return undefined;
  }
}
