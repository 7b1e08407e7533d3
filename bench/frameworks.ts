/**
 * The framework variants the benchmark compares, in report order, and how a child process creates each one.
 * Every variant runs in its own process (bench/child.ts, or bench/torch_bench.py for PyTorch), so backends,
 * thread pools and garbage do not leak from one framework's figures into another's.
 */
import { cpus } from "node:os";
import type { AdapterOpts, Created } from "./peers/types.ts";

/** One variant: which adapter, which backend or thread count. */
export interface FrameworkSpec {
  id: string;
  /** Label shown until (or if) the child reports its own. */
  label: string;
  kind: "chainrule" | "tfjs" | "jax" | "torch";
  variant: string;
  /** Runs on one core (the "cr 1T" ratio compares against the best of these). */
  singleThread: boolean;
  /** PyTorch thread count. */
  threads?: number;
  /** Runs on a GPU (no CPU-peak percentage; not a reference of the chainrule ratio columns). */
  gpu?: boolean;
}

const ALL = cpus().length;

/** Every variant, in report order. */
export const FRAMEWORKS: readonly FrameworkSpec[] = [
  {
    id: "cr-native-1t",
    label: "chainrule native 1 thread",
    kind: "chainrule",
    variant: "native-1t",
    singleThread: true,
  },
  {
    id: "cr-native-jit-1t",
    label: "chainrule native jit 1 thread",
    kind: "chainrule",
    variant: "native-1t-jit",
    singleThread: true,
  },
  {
    id: "cr-native-all",
    label: `chainrule native ${ALL} threads`,
    kind: "chainrule",
    variant: "native-all",
    singleThread: false,
  },
  {
    id: "cr-native-jit-all",
    label: `chainrule native jit ${ALL} threads`,
    kind: "chainrule",
    variant: "native-all-jit",
    singleThread: false,
  },
  {
    id: "cr-wasm-1t",
    label: "chainrule wasm 1 thread",
    kind: "chainrule",
    variant: "wasm-1t",
    singleThread: true,
  },
  {
    id: "cr-wasm-jit-1t",
    label: "chainrule wasm jit 1 thread",
    kind: "chainrule",
    variant: "wasm-1t-jit",
    singleThread: true,
  },
  {
    id: "cr-wasm-all",
    label: `chainrule wasm ${ALL} threads`,
    kind: "chainrule",
    variant: "wasm-all",
    singleThread: false,
  },
  { id: "cr-js", label: "chainrule js (reference)", kind: "chainrule", variant: "js", singleThread: true },
  // the sgemm, MLP and CNN rows on a WebGPU adapter (in Node through the npm package `webgpu`, Dawn);
  // unavailable, saying why, without one
  {
    id: "cr-webgpu",
    label: "chainrule webgpu",
    kind: "chainrule",
    variant: "webgpu",
    singleThread: false,
    gpu: true,
  },
  { id: "torch-1t", label: "PyTorch 1 thread", kind: "torch", variant: "1", singleThread: true, threads: 1 },
  {
    id: "torch-all",
    label: `PyTorch ${ALL} threads`,
    kind: "torch",
    variant: "all",
    singleThread: false,
    threads: ALL,
  },
  { id: "tfjs-wasm", label: "TF.js wasm", kind: "tfjs", variant: "wasm", singleThread: true },
  { id: "tfjs-cpu", label: "TF.js cpu", kind: "tfjs", variant: "cpu", singleThread: true },
  { id: "jax-jit", label: "jax-js wasm jit", kind: "jax", variant: "jit", singleThread: true },
  { id: "jax-eager", label: "jax-js wasm eager", kind: "jax", variant: "eager", singleThread: true },
];

/** Create the adapter of a Node-side variant (imported lazily so one broken peer cannot stop the others). */
export async function createFramework(spec: FrameworkSpec, opts: AdapterOpts): Promise<Created> {
  switch (spec.kind) {
    case "chainrule": {
      const m = await import("./peers/chainrule.ts");
      return m.create(spec.variant as import("./peers/chainrule.ts").ChainruleVariant, opts);
    }
    case "tfjs": {
      const m = await import("./peers/tfjs.ts");
      return m.create(spec.variant as import("./peers/tfjs.ts").TfjsVariant, opts);
    }
    case "jax": {
      const m = await import("./peers/jaxjs.ts");
      return m.create(spec.variant as import("./peers/jaxjs.ts").JaxVariant, opts);
    }
    default:
      return { unavailable: `${spec.kind} does not run in a Node child` };
  }
}
