/// <reference types="@webgpu/types" />
/**
 * The webgpu backend: kernels in WGSL compute shaders on tensors that stay in GPU buffers (docs/webgpu.md).
 *
 * It is optional and never the default: `await init({ backend: "webgpu" })` requests an adapter and a device,
 * builds the backend and selects it (falling back to wasm, with one console line, when there is no adapter).
 * Browsers provide WebGPU as `navigator.gpu`; under Node it comes from the npm package `webgpu` (Dawn, with a
 * Vulkan driver), imported only then.
 * float32, int32 and bool live on the GPU; float64 (no WGSL type) stays in host memory and its kernels run on
 * the js reference. Values are read with `await t.data()`; synchronous reads of GPU-written values fail with a
 * DeviceReadError naming it.
 */
import { type Backend, type BackendImpl, KERNELS, type KernelName, type View } from "../backend.ts";
import { jsBackend as js } from "../js/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../dtype.ts";
import { Gpu, type GpuMemory, gpuStorage } from "./gpu.ts";
import { Kernels, onHost } from "./kernels.ts";
import { webgpuLinalg } from "./wgsl-linalg.ts";

export type { GpuMemory } from "./gpu.ts";

let gpu: Gpu | null = null;
let backend: BackendImpl | null = null;
/** Whether the adapter is a software one (set with the backend). */
let software = false;

/** The navigator.gpu of this environment, if any (browsers; Node with a WebGPU implementation installed). */
function navigatorGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

/** Under Node (where the npm package `webgpu` can provide WebGPU), not in a browser or a worker. */
function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

/** The part of the npm package `webgpu` (Dawn's Node binding) that is used: `create(dawnOptions)`. */
export interface DawnModule {
  create(options: string[]): GPU;
}

/** Dawn's GPU object under Node, kept alive with the backend. */
let dawnGpu: GPU | null = null;

/**
 * Imports the npm package `webgpu`. The specifier is computed so that bundlers leave it alone (a literal, even
 * one folded from a constant by a minifier, would make them resolve the package for the browser bundle).
 */
let loadDawn: () => Promise<DawnModule> = () => {
  const specifier = ["web", "gpu"].join("");
  return import(/* @vite-ignore */ specifier) as Promise<DawnModule>;
};

/**
 * Replace how the npm package `webgpu` is loaded (tests simulate a missing package or a missing driver with
 * it); returns the previous loader.
 * @internal
 */
export function setDawnLoader(loader: () => Promise<DawnModule>): () => Promise<DawnModule> {
  const old = loadDawn;
  loadDawn = loader;
  dawnGpu = null;
  return old;
}

/** What a Node user needs for an adapter (the message of the fallback line). */
export const NODE_NEEDS =
  "a Vulkan driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers` (Mesa's software lavapipe; " +
  "Debian 12's Mesa 22.3 is too old for Dawn, take it from bookworm-backports) or the GPU vendor's driver";

/**
 * The WebGPU entry point: `navigator.gpu` where the environment has one, else (under Node) the npm package
 * `webgpu`, imported lazily and only here, so the core has no dependency on it. Rejects saying what is missing.
 */
async function gpuApi(): Promise<{ api: GPU; dawn: boolean }> {
  const nav = navigatorGpu();
  if (nav !== undefined) return { api: nav, dawn: false };
  if (!isNode()) throw new Error("WebGPU is not available here (no navigator.gpu)");
  let mod: DawnModule;
  try {
    mod = await loadDawn();
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new Error(
      `no navigator.gpu, and the npm package \`webgpu\` (Dawn) could not be loaded (${why}): \`npm install webgpu\``,
    );
  }
  dawnGpu ??= mod.create([]);
  return { api: dawnGpu, dawn: true };
}

/**
 * A js kernel run on the host copies, failing with a message naming it when an input's values are on the GPU
 * only (for the kernels this backend has no WGSL for; completion would otherwise fill them with the bare js
 * kernel, whose failure would not name it).
 */
function hostKernel(name: KernelName): Backend[KernelName] {
  const f = js[name] as (...args: unknown[]) => void;
  return ((...args: unknown[]) => {
    const arrays: TypedArray[] = [];
    for (const a of args) {
      if (a !== null && typeof a === "object" && "data" in a && "strides" in a) arrays.push((a as View).data);
    }
    onHost(name, arrays);
    f(...args);
  }) as Backend[KernelName];
}

/** Whether `hostFirst` may run kernels on the host (tests of the WGSL kernels turn it off). */
let hostFirstOn = true;

/**
 * Let (true, the default) or forbid (false) the bool / int32 kernels of host-readable operands to run on the
 * host (`hostFirst`); returns the previous setting. For tests that call the kernels to check their WGSL.
 * @internal
 */
export function setWebgpuHostFirst(on: boolean): boolean {
  const old = hostFirstOn;
  hostFirstOn = on;
  return old;
}

/** A plain array, or a device array whose host copy is valid (fresh, written on the host, or read back). */
function hostValid(a: TypedArray): boolean {
  return gpuStorage(a)?.hostOk ?? true;
}

/**
 * Kernels with a bool / int32 result whose every operand the host can read (freshly created, computed on the
 * host, or read back; also float32 operands, e.g. a mask `tensor(keep).gt(0)`) run the js kernel on the host,
 * into the output's host copy, which is uploaded when a device kernel needs it. Such a result is then readable
 * by both sides: float64 (host) kernels consume it synchronously (a mask negated or combined inside float64
 * work), WGSL kernels after an upload. On the GPU it could only be read asynchronously, which a float64 kernel
 * cannot do (nor can scatter's check that no position is written twice, which reads scatterAdd's int32 counts
 * on the host). Float32 outputs, and operands only the GPU holds, keep the WGSL path.
 */
function hostFirst(
  name: "unary" | "binary" | "where" | "cast" | "copy" | "reduce" | "argReduce" | "cumsum" | "scatterAdd",
  impl: BackendImpl,
) {
  const f = js[name] as (...args: unknown[]) => void;
  const k = impl[name] as (...args: unknown[]) => void;
  return (...args: unknown[]) => {
    // the output: the typed-array argument (axes and shapes are plain arrays), or copy's destination view
    const last = args[args.length - 1] as View;
    const out = (args.find(
      (a) => a !== null && typeof a === "object" && !Array.isArray(a) && !("strides" in a),
    ) ?? last.data) as TypedArray;
    const onHost =
      hostFirstOn &&
      !(out instanceof Float32Array) &&
      hostValid(out) &&
      args.every(
        (a) =>
          a === null ||
          typeof a !== "object" ||
          !("data" in a && "strides" in a) ||
          hostValid((a as View).data),
      );
    if (onHost) f(...args);
    else k(...args);
  };
}

/**
 * `f` as one kernel call of device `g`: the device checks its inputs carry (and those it adds: the linalg
 * kernels' info words) pass to the storages it writes, so that reading any value computed from a failed
 * factorization raises its error (gpu.ts, DeviceCheck).
 */
function call<F extends (...args: never[]) => unknown>(g: Gpu, f: F): F {
  return ((...args: Parameters<F>) => {
    g.beginCall();
    try {
      return f(...args);
    } finally {
      g.endCall();
    }
  }) as F;
}

function build(g: Gpu): BackendImpl {
  const impl = gpuKernels(g);
  const host: Partial<Record<KernelName, unknown>> = {};
  for (const name of KERNELS) if (impl[name] === undefined) host[name] = hostKernel(name);
  for (const name of [
    "unary",
    "binary",
    "where",
    "cast",
    "copy",
    "reduce",
    "argReduce",
    "cumsum",
    "scatterAdd",
  ] as const)
    host[name] = hostFirst(name, impl);
  const all: Record<string, unknown> = { ...impl, ...host };
  for (const [name, f] of Object.entries(all)) {
    if (name !== "alloc" && typeof f === "function") all[name] = call(g, f as (...a: never[]) => unknown);
  }
  const la = impl.linalg!;
  all.linalg = Object.fromEntries(
    Object.entries(la).map(([name, f]) => [name, call(g, (f as (...a: never[]) => unknown).bind(la))]),
  );
  return all as unknown as BackendImpl;
}

function gpuKernels(g: Gpu): BackendImpl {
  const k = new Kernels(g);
  return {
    name: "webgpu",
    alloc(dtype: DType, size: number): TypedArray {
      // float64 has no WGSL type (and float16/bfloat16 no kernels here yet): such tensors live on the host and
      // run the js kernels; empty tensors need no buffer
      if ((dtype !== "float32" && dtype !== "int32" && dtype !== "bool") || size === 0) {
        return allocTyped(dtype, size);
      }
      return g.alloc(dtype, size);
    },
    unary: k.unary.bind(k),
    binary: k.binary.bind(k),
    biasAct: k.biasAct.bind(k),
    actGrad: k.actGrad.bind(k),
    where: k.where.bind(k),
    cast: k.cast.bind(k),
    copy: k.copy.bind(k),
    reduce: k.reduce.bind(k),
    dot: k.dot.bind(k),
    gather: k.gather.bind(k),
    scatterAdd: k.scatterAdd.bind(k),
    softmax: k.softmax.bind(k),
    softmaxBackward: k.softmaxBackward.bind(k),
    layerNorm: k.layerNorm.bind(k),
    layerNormBackward: k.layerNormBackward.bind(k),
    adamUpdate: k.adamUpdate.bind(k),
    argReduce: k.argReduce.bind(k),
    cumsum: k.cumsum.bind(k),
    conv2d: k.conv2d.bind(k),
    conv2dBackInput: k.conv2dBackInput.bind(k),
    conv2dBackWeight: k.conv2dBackWeight.bind(k),
    maxPool2d: k.maxPool2d.bind(k),
    maxPool2dArgmax: k.maxPool2dArgmax.bind(k),
    maxPool2dBackward: k.maxPool2dBackward.bind(k),
    avgPool2d: k.avgPool2d.bind(k),
    avgPool2dBackward: k.avgPool2dBackward.bind(k),
    // fused attention, recurrent cells (wgsl-attention.ts, wgsl-rnn.ts)
    attention: k.attention.bind(k),
    attentionBackward: k.attentionBackward.bind(k),
    lstmCell: k.lstmCell.bind(k),
    lstmCellBackward: k.lstmCellBackward.bind(k),
    gruCell: k.gruCell.bind(k),
    gruCellBackward: k.gruCellBackward.bind(k),
    // jit's elementwise fusion: one dispatch per fused group (wgsl-fused.ts)
    fused: k.fused.bind(k),
    // the optional argsort: sort, argsort and topk indices on the device (wgsl-sort.ts)
    argsort: k.argsort.bind(k),
    // the optional linalg kernels (wgsl-linalg.ts)
    linalg: webgpuLinalg(g),
  };
}

/**
 * Request a WebGPU adapter and device and build the backend (once). Rejects with the reason when WebGPU is
 * unavailable (no `navigator.gpu`, no adapter, or the device request fails).
 */
export async function initWebgpuBackend(): Promise<BackendImpl> {
  if (backend !== null) return backend;
  const { api, dawn } = await gpuApi();
  const adapter = await api.requestAdapter();
  if (adapter === null) {
    throw new Error(
      dawn
        ? `the npm package \`webgpu\` (Dawn) found no adapter: it needs ${NODE_NEEDS}`
        : "no WebGPU adapter is available",
    );
  }
  const device = await adapter.requestDevice();
  const info = (adapter as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info;
  const desc = info
    ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ")
    : "";
  // a CPU rasterizer (lavapipe/llvmpipe, SwiftShader, WARP): correct, but its speed is no GPU's
  software =
    info?.isFallbackAdapter === true ||
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    /software|swiftshader|llvmpipe|lavapipe|warp/i.test(desc);
  device.addEventListener("uncapturederror", (e) => {
    console.error(`chainrule webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  gpu = new Gpu(device, desc || "unknown adapter");
  backend = build(gpu);
  return backend;
}

/** The webgpu backend if `initWebgpuBackend` has built it (for the registry's synchronous loader). */
export function webgpuBackendIfReady(): BackendImpl | null {
  return backend;
}

/**
 * GPU memory of the webgpu backend: bytes held by live tensors and bytes kept in the buffer pool (null before
 * the backend is initialised). Buffers return to the pool when their tensors are garbage-collected, which
 * happens only between tasks: a loop that never awaits keeps its dead tensors' buffers until it does.
 */
export function webgpuMemory(): GpuMemory | null {
  return gpu === null ? null : gpu.memory();
}

/**
 * Information about the webgpu backend for tests and diagnostics: the adapter, whether it is a software one
 * (a CPU rasterizer such as lavapipe or SwiftShader: correct, but no measure of GPU speed), and how many
 * submissions and dispatches it has made (batching keeps the first well below the second). Null before
 * initialisation.
 */
export function webgpuInfo(): {
  adapter: string;
  software: boolean;
  submits: number;
  dispatches: number;
} | null {
  return gpu === null
    ? null
    : { adapter: gpu.adapterInfo, software, submits: gpu.submits, dispatches: gpu.dispatches };
}

/** Resolves when all recorded GPU work has run (submitting the pending batch first). */
export async function webgpuSync(): Promise<void> {
  if (gpu !== null) await gpu.sync();
}

/** Destroy the pooled (free) GPU buffers. */
export function webgpuEmptyPool(): void {
  gpu?.emptyPool();
}
