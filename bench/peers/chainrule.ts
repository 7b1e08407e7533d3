/**
 * chainrule in the benchmark, on one backend: `js` (the reference, plain TypeScript), `wasm`, or `native` (the
 * C++ N-API addon) with one thread or all cores. The fast backends are being written alongside this harness,
 * so loading one may fail; `create` then reports the reason and the runner prints "unavailable: <reason>".
 *
 * The training steps use chainrule's own nn (Sequential, Linear, Conv2d, MaxPool2d, crossEntropy) and
 * optim.Adam with eager autograd (`loss.backward()`), the way a user would write them.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Backend } from "../../src/backend/backend.ts";
import { listBackends, loadBackend, setBackend } from "../../src/backend/registry.ts";
import { webgpuInfo } from "../../src/backend/webgpu/index.ts";
import {
  arange,
  autocast,
  grad,
  init,
  jit,
  jvp,
  noGrad,
  type Tensor,
  tensor,
  vmap,
} from "../../src/index.ts";
import {
  Conv2d,
  crossEntropy,
  Flatten,
  functionalCall,
  Linear,
  LSTM,
  loadModuleState,
  MaxPool2d,
  Module,
  ReLU,
  Sequential,
  scaledDotProductAttention,
} from "../../src/nn/index.ts";
import { CharTransformer } from "../../src/cli/text-model.ts";
import { _attention } from "../../src/nn/attention.ts";
import { Adam, functional as optFunctional, makeTrainStep } from "../../src/optim/index.ts";
import type { Step } from "../harness.ts";
import {
  type AttnData,
  type CnnData,
  type E2EData,
  type E2EResult,
  type LinearInit,
  LSTM_BENCH,
  type LstmData,
  type MlpData,
  type StateInit,
  TRANSFORMER,
  type TransformerData,
} from "../workloads.ts";
import type { AdapterOpts, Created, Peer, Skip } from "./types.ts";

type Loaded = { backend: Backend } | { error: string };

/** A full garbage collection (V8's gc(), exposed at run time for the peak-memory rows). */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

/** The backend variants this adapter runs. */
export type ChainruleVariant =
  | "js"
  | "wasm-1t"
  | "wasm-1t-jit"
  | "wasm-all"
  | "native-1t"
  | "native-all"
  | "native-1t-jit"
  | "native-all-jit"
  | "webgpu";

async function importBackendModule(kind: "native" | "wasm"): Promise<Record<string, unknown> | string> {
  const url = new URL(`../../src/backend/${kind}/index.ts`, import.meta.url);
  if (!existsSync(fileURLToPath(url))) return `src/backend/${kind}/index.ts does not exist yet`;
  try {
    return (await import(url.href)) as Record<string, unknown>;
  } catch (e) {
    return `importing src/backend/${kind}/index.ts failed: ${(e as Error).message.split("\n")[0]}`;
  }
}

async function loadKind(
  kind: "native" | "wasm",
  loadOpts?: Record<string, unknown>,
): Promise<{ loaded: Loaded; mod?: Record<string, unknown> }> {
  const fnName = kind === "native" ? "loadNativeBackend" : "loadWasmBackend";
  const mod = await importBackendModule(kind);
  const fn = typeof mod === "string" ? undefined : mod[fnName];
  if (typeof mod !== "string" && typeof fn === "function") {
    try {
      return {
        loaded: await (fn as (o?: Record<string, unknown>) => Loaded | Promise<Loaded>)(loadOpts),
        mod,
      };
    } catch (e) {
      return { loaded: { error: `${fnName}() threw: ${(e as Error).message.split("\n")[0]}` } };
    }
  }
  if (listBackends().includes(kind)) {
    const r = loadBackend(kind);
    return { loaded: "error" in r ? r : { backend: r }, mod: typeof mod === "string" ? undefined : mod };
  }
  return {
    loaded: { error: typeof mod === "string" ? mod : `src/backend/${kind} does not export ${fnName}()` },
  };
}

function linear(l: LinearInit): Linear {
  const m = new Linear(l.in, l.out);
  noGrad(() => {
    m.weight.copy_(tensor(l.w, { shape: [l.out, l.in] }));
    m.bias?.copy_(tensor(l.b));
  });
  return m;
}

function mlp(layers: LinearInit[]): Sequential {
  return new Sequential(linear(layers[0]), new ReLU(), linear(layers[1]), new ReLU(), linear(layers[2]));
}

/** The bench CNN (conv5x5x32-pool-conv5x5x64-pool-fc128-fc10) with the shared initial weights. */
function cnn(d: CnnData): Sequential {
  const c1 = new Conv2d(1, 32, 5, { padding: 2 });
  const c2 = new Conv2d(32, 64, 5, { padding: 2 });
  noGrad(() => {
    c1.weight.copy_(tensor(d.c1.w, { shape: [32, 1, 5, 5] }));
    c1.bias?.copy_(tensor(d.c1.b));
    c2.weight.copy_(tensor(d.c2.w, { shape: [64, 32, 5, 5] }));
    c2.bias?.copy_(tensor(d.c2.b));
  });
  return new Sequential(
    c1,
    new ReLU(),
    new MaxPool2d(2),
    c2,
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    linear(d.f1),
    new ReLU(),
    linear(d.f2),
  );
}

function trainStep(model: Sequential, opt: Adam, x: Tensor, y: Tensor, bf16 = false): Tensor {
  opt.zeroGrad();
  const loss = bf16
    ? autocast({ dtype: "bfloat16" }, () => crossEntropy(model.call(x), y))
    : crossEntropy(model.call(x), y);
  loss.backward();
  opt.step();
  return loss;
}

/** Logits [B, T, V] -> [B * T, V], so the per-position loss is the step's ordinary cross-entropy. */
class Positions extends Module {
  forward(x: Tensor): Tensor {
    return x.reshape([-1, x.shape[2]]);
  }
}

/** The row-by-row LSTM classifier: LSTM over [B, 28, 28], its last output -> Linear. */
class RowLstm extends Module {
  lstm = new LSTM(LSTM_BENCH.input, LSTM_BENCH.hidden, { batchFirst: true });
  fc = new Linear(LSTM_BENCH.hidden, LSTM_BENCH.classes);
  forward(x: Tensor): Tensor {
    const [out] = this.lstm.call(x);
    return this.fc.call(out.narrow(1, x.shape[1] - 1, 1).reshape([x.shape[0], LSTM_BENCH.hidden]));
  }
}

function load(m: Module, init: StateInit): void {
  m.loadStateDict(Object.fromEntries(init.map((p) => [p.name, tensor(p.data, { shape: p.shape })])));
}

type MlpParams = { w: Tensor; b: Tensor }[];

/**
 * The functional MLP loss of the vmap cases: cross-entropy of relu layers (weights in PyTorch's [out, in]
 * layout, used through a transposed view) against one-hot targets, summed over the leading axes and divided by
 * `n` (1 per example, the batch size for the batched mean).
 */
function mlpLoss(p: MlpParams, x: Tensor, y1h: Tensor, n: number): Tensor {
  let h = x;
  p.forEach((l, i) => {
    h = h.matmul(l.w.mT).add(l.b);
    if (i < p.length - 1) h = h.relu();
  });
  return h.logSoftmax(-1).mul(y1h).sum().neg().div(n);
}

/** The labels as one-hot float32 rows [batch, 10]. */
function oneHot10(d: MlpData): Tensor {
  return tensor(d.y, { dtype: "int32" })
    .unsqueeze(1)
    .eq(arange(10, undefined, 1, { dtype: "int32" }))
    .to("float32");
}

function mlpParams(d: MlpData): MlpParams {
  return d.layers.map((l) => ({ w: tensor(l.w, { shape: [l.out, l.in] }), b: tensor(l.b) }));
}

type Dict = Record<string, Tensor>;

/**
 * A jitted functional training step of `model` with Adam in PyTorch's form, whose parameters and moments are
 * pytrees passed in and returned (donated, so the update is written over them): one compiled program for the
 * forward pass, cross-entropy (against one-hot targets, the same mean loss as crossEntropy), the backward pass and
 * the update. `a` = lr / (1 - b1^t) and `c` = 1 / sqrt(1 - b2^t) are arguments, so the step traces once.
 */
function jitAdamStep(model: Sequential, x: Tensor, y: Int32Array, classes: number): () => number {
  const y1h = tensor(y, { dtype: "int32" })
    .unsqueeze(1)
    .eq(arange(classes, undefined, 1, { dtype: "int32" }))
    .to("float32");
  const loss = (p: Dict) => functionalCall(model, p, x).logSoftmax(-1).mul(y1h).sum().neg().div(y.length);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const step = jit(
    (p: Dict, m: Dict, v: Dict, a: Tensor, c: Tensor) => {
      const l = loss(p);
      const g = grad(loss)(p) as Dict;
      const p2: Dict = {};
      const m2: Dict = {};
      const v2: Dict = {};
      for (const k of Object.keys(p)) {
        m2[k] = m[k].mul(b1).add(g[k].mul(1 - b1));
        v2[k] = v[k].mul(b2).add(g[k].square().mul(1 - b2));
        p2[k] = p[k].sub(m2[k].mul(a).div(v2[k].sqrt().mul(c).add(eps)));
      }
      return [l, p2, m2, v2] as const;
    },
    { donateArgnums: [0, 1, 2] },
  );
  let p: Dict = Object.fromEntries(model.namedParameters().map(([n, t]) => [n, t.detach().clone()]));
  let m: Dict = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.mul(0)]));
  let v: Dict = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.mul(0)]));
  let t = 0;
  return () => {
    t++;
    const r = step(p, m, v, tensor(1e-3 / (1 - b1 ** t)), tensor(1 / Math.sqrt(1 - b2 ** t)));
    [, p, m, v] = r;
    return r[0].item();
  };
}

/**
 * A one-element tensor's value: `item()`, or on webgpu (values on the device) an asynchronous read of a
 * one-element copy (reading a view would copy its whole storage back).
 */
function readOne(t: Tensor, onDevice: boolean): number | Promise<number> {
  return onDevice ? readOneAsync(t) : t.item();
}

async function readOneAsync(t: Tensor): Promise<number> {
  return Number((await t.clone().data())[0]);
}

/** The webgpu variant runs the sgemm, MLP and CNN rows; the other methods say so. */
function webgpuRowsOnly(p: Peer): Peer {
  const skip = { skip: "webgpu: only the sgemm, MLP and CNN rows run on this backend" };
  const out: Peer = { sgemm: p.sgemm, mlpStep: p.mlpStep, cnnStep: p.cnnStep, e2e: async () => skip };
  for (const k of Object.keys(p) as (keyof Peer)[]) {
    if (!(k in out)) (out as Record<string, unknown>)[k] = () => skip;
  }
  return out;
}

function makePeer(variant: ChainruleVariant, opts: AdapterOpts): Peer {
  const peer = cpuPeer(variant, opts);
  return variant === "webgpu" ? webgpuRowsOnly(peer) : peer;
}

function cpuPeer(variant: ChainruleVariant, opts: AdapterOpts): Peer {
  const isJs = variant === "js";
  const useJit = variant.endsWith("-jit");
  const dev = variant === "webgpu";
  return {
    sgemm(n: number, a: Float32Array, b: Float32Array): Step | Skip {
      if (isJs && n >= 1024 && !opts.full)
        return { skip: "js reference: skipped at n=1024 (seconds per product)" };
      const ta = tensor(a, { shape: [n, n] });
      const tb = tensor(b, { shape: [n, n] });
      if (useJit) {
        // the jit variants time the product as a jitted function (the program's dispatch and its output buffer)
        const mm = jit((x: Tensor, y: Tensor) => x.matmul(y));
        return () => readOne((mm(ta, tb) as Tensor).index(0, 0), dev);
      }
      return () => readOne(ta.matmul(tb).index(0, 0), dev);
    },
    bf16Gemm(n: number, a: Float32Array, b: Float32Array): Step | Skip {
      if (isJs && n >= 1024 && !opts.full)
        return { skip: "js reference: skipped at n=1024 (seconds per product)" };
      const ta = tensor(a, { shape: [n, n] }).to("bfloat16");
      const tb = tensor(b, { shape: [n, n] }).to("bfloat16");
      if (useJit) {
        const mm = jit((x: Tensor, y: Tensor) => x.matmul(y));
        return () => (mm(ta, tb) as Tensor).index(0, 0).item();
      }
      return () => ta.matmul(tb).index(0, 0).item();
    },
    bf16MlpStep(d: MlpData): Step | Skip {
      if (useJit) return { skip: "the bf16 row runs eagerly (autocast under jit is traced like any op)" };
      const model = mlp(d.layers);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const x = tensor(d.x, { shape: [d.batch, 784] });
      const y = tensor(d.y, { dtype: "int32" });
      return () => trainStep(model, opt, x, y, true).item();
    },
    mlpStep(d: MlpData): Step {
      const model = mlp(d.layers);
      if (useJit) return jitAdamStep(model, tensor(d.x, { shape: [d.batch, 784] }), d.y, 10);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const x = tensor(d.x, { shape: [d.batch, 784] });
      const y = tensor(d.y, { dtype: "int32" });
      return () => readOne(trainStep(model, opt, x, y), dev);
    },
    bf16CnnStep(d: CnnData): Step | Skip {
      if (useJit) return { skip: "the bf16 row runs eagerly (autocast under jit is traced like any op)" };
      const model = cnn(d);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const x = tensor(d.x, { shape: [d.batch, 1, 28, 28] });
      const y = tensor(d.y, { dtype: "int32" });
      return () => trainStep(model, opt, x, y, true).item();
    },
    cnnStep(d: CnnData): Step {
      const model = cnn(d);
      if (useJit) return jitAdamStep(model, tensor(d.x, { shape: [d.batch, 1, 28, 28] }), d.y, 10);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const x = tensor(d.x, { shape: [d.batch, 1, 28, 28] });
      const y = tensor(d.y, { dtype: "int32" });
      return () => readOne(trainStep(model, opt, x, y), dev);
    },
    transformerStep(d: TransformerData): Step {
      const { vocab, layers, width, heads, context, batch } = TRANSFORMER;
      const chars = Array.from({ length: vocab }, (_, i) => String.fromCharCode(32 + i));
      const lm = new CharTransformer({
        name: "transformer",
        vocab: chars,
        layers,
        width,
        heads,
        context,
        dropout: 0,
      });
      load(lm, d.params);
      const model = new Sequential(lm, new Positions());
      const x = tensor(d.x, { dtype: "int32", shape: [batch, context] });
      if (useJit) return jitAdamStep(model, x, d.y, vocab);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const y = tensor(d.y, { dtype: "int32" });
      return () => trainStep(model, opt, x, y).item();
    },
    lstmStep(d: LstmData): Step {
      const net = new RowLstm();
      load(net, d.params);
      const model = new Sequential(net);
      const x = tensor(d.x, { shape: [LSTM_BENCH.batch, LSTM_BENCH.steps, LSTM_BENCH.input] });
      if (useJit) return jitAdamStep(model, x, d.y, LSTM_BENCH.classes);
      const opt = new Adam(model.parameters(), { lr: 1e-3 });
      const y = tensor(d.y, { dtype: "int32" });
      return () => trainStep(model, opt, x, y).item();
    },
    perExampleGrads(d: MlpData): Step {
      const p = mlpParams(d);
      const x = tensor(d.x, { shape: [d.batch, 784] });
      const y1h = oneHot10(d);
      const perEx0 = vmap(
        grad((q: MlpParams, xi: Tensor, yi: Tensor) => mlpLoss(q, xi, yi, 1)),
        {
          inAxes: [null, 0, 0],
        },
      );
      const perEx = useJit ? jit(perEx0) : perEx0;
      return () => (perEx(p, x, y1h) as MlpParams)[2].b.index(5, 3).item();
    },
    batchedGrad(d: MlpData): Step {
      const p = mlpParams(d);
      const x = tensor(d.x, { shape: [d.batch, 784] });
      const y1h = oneHot10(d);
      const g0 = grad((q: MlpParams) => mlpLoss(q, x, y1h, d.batch));
      const g = useJit ? jit(g0) : g0;
      return () => (g(p) as MlpParams)[2].b.index(3).item();
    },
    attention(d: AttnData, fused: boolean, peakMemory = false, low?: "bfloat16"): Step {
      const shape = [d.batch, d.heads, d.len, d.dim];
      const [q, k, v, w] = [d.q, d.k, d.v, d.w].map((a) => tensor(a, { shape }));
      const attn0 = fused
        ? (a: Tensor, b: Tensor, c: Tensor) => scaledDotProductAttention(a, b, c)
        : (a: Tensor, b: Tensor, c: Tensor) => _attention("attention", a, b, c, {}, "keep")[0];
      const attn =
        low === undefined
          ? attn0
          : (a: Tensor, b: Tensor, c: Tensor) => autocast({ dtype: low }, () => attn0(a, b, c));
      const g0 = grad((a: Tensor, b: Tensor, c: Tensor) => attn(a, b, c).mul(w).sum(), {
        argnums: [0, 1, 2],
      });
      const g = useJit ? jit(g0) : g0;
      const step = () => (g(q, k, v) as Tensor[])[0].index(0, 0, 0, 0).item();
      if (!peakMemory) return step;
      return () => {
        // the previous step's buffers go first (a GC frees them), then the kernel's high-water mark is reset
        collectGarbage();
        writeFileSync("/proc/self/clear_refs", "5");
        const before = process.memoryUsage().rss;
        step();
        const hwm = Number(
          /VmHWM:\s*(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? Number.NaN,
        );
        return (hwm * 1024 - before) / 2 ** 20;
      };
    },
    dispatchAdd(k: number): Step | Skip {
      if (useJit) return { skip: "the eager dispatch row (the jitted x*y+z row below times jit's dispatch)" };
      const zero = tensor([0]);
      const one = tensor([1]);
      return () => {
        let acc = zero;
        for (let i = 0; i < k; i++) acc = acc.add(one);
        return acc.item();
      };
    },
    dispatchGrad(k: number): Step {
      if (useJit) {
        const g = jit(grad((a: Tensor, b: Tensor, c: Tensor) => a.mul(b).add(c), { argnums: [0, 1, 2] }));
        const [a, b, c] = [tensor(2), tensor(3), tensor(1)];
        return () => {
          let r: Tensor[] = [];
          for (let i = 0; i < k; i++) r = g(a, b, c) as Tensor[];
          return r[0].item();
        };
      }
      const x = tensor(2, { requiresGrad: true });
      const y = tensor(3, { requiresGrad: true });
      const z = tensor(1, { requiresGrad: true });
      return () => {
        for (let i = 0; i < k; i++) {
          x.grad = null;
          y.grad = null;
          z.grad = null;
          x.mul(y).add(z).backward();
        }
        return (x.grad as Tensor | null)?.item() ?? Number.NaN;
      };
    },
    dispatchJvp(k: number): Step {
      const p: [Tensor, Tensor, Tensor] = [tensor(2), tensor(3), tensor(1)];
      const t: [Tensor, Tensor, Tensor] = [tensor(1), tensor(1), tensor(1)];
      const f = (x: Tensor, y: Tensor, z: Tensor) => x.mul(y).add(z);
      const fj = jit((x: Tensor, y: Tensor, z: Tensor, tx: Tensor, ty: Tensor, tz: Tensor) =>
        jvp(f, [x, y, z], [tx, ty, tz]),
      );
      const once = useJit
        ? () => fj(p[0], p[1], p[2], t[0], t[1], t[2]) as [Tensor, Tensor]
        : () => jvp(f, p, t);
      return () => {
        let r: [Tensor, Tensor] | null = null;
        for (let i = 0; i < k; i++) r = once();
        return r === null ? Number.NaN : r[1].item();
      };
    },
    async e2e(d: E2EData): Promise<E2EResult | Skip> {
      if (isJs && !opts.full) return { skip: "js reference: skipped (minutes; --full runs it)" };
      const X = tensor(d.images, { shape: [d.n, 784] });
      const Y = tensor(d.labels, { dtype: "int32" });
      const model = mlp(d.layers);
      const steps = Math.floor(d.n / d.batch);
      let loss: Tensor | null = null;
      const t0 = performance.now();
      if (useJit) {
        // the library's jitted functional step (forward, backward and Adam in one program; state donated), the
        // targets one-hot (a traced loss cannot check int32 class indices on the host)
        const Y1h = Y.unsqueeze(1)
          .eq(arange(10, undefined, 1, { dtype: "int32" }))
          .to("float32");
        const step = makeTrainStep(
          model,
          (out: Tensor, y1h: Tensor) => out.logSoftmax(-1).mul(y1h).sum().neg().div(d.batch),
          optFunctional.adam({ lr: d.lr }),
        );
        let state = step.init();
        for (let e = 0; e < d.epochs; e++) {
          for (let s = 0; s < steps; s++) {
            const start = e * d.n + s * d.batch;
            const idx = tensor(d.perm.subarray(start, start + d.batch));
            [loss, state] = step(state, X.indexSelect(0, idx), Y1h.indexSelect(0, idx));
          }
        }
        loadModuleState(model, state);
      } else {
        const opt = new Adam(model.parameters(), { lr: d.lr });
        for (let e = 0; e < d.epochs; e++) {
          for (let s = 0; s < steps; s++) {
            const start = e * d.n + s * d.batch;
            const idx = tensor(d.perm.subarray(start, start + d.batch));
            loss = trainStep(model, opt, X.indexSelect(0, idx), Y.indexSelect(0, idx));
          }
        }
      }
      const finalLoss = loss === null ? Number.NaN : loss.item();
      const seconds = (performance.now() - t0) / 1000;
      const pred = noGrad(() => model.call(X).argmax(1)).dataSync();
      let correct = 0;
      for (let i = 0; i < d.n; i++) if (pred[i] === d.labels[i]) correct++;
      return { seconds, accuracy: correct / d.n, finalLoss };
    },
  };
}

function useJitVariant(v: ChainruleVariant): boolean {
  return v.endsWith("-jit");
}

/** Select the backend for `variant` (in this process, once) and return the chainrule peer. */
export async function create(variant: ChainruleVariant, opts: AdapterOpts): Promise<Created> {
  const notes: string[] = [];
  let label = `chainrule ${variant}`;
  if (variant === "webgpu") {
    const r = await init({ backend: "webgpu" });
    if (r.backend !== "webgpu") return { unavailable: r.fallback ?? `init chose ${r.backend}` };
    const info = webgpuInfo()!;
    label = "chainrule webgpu";
    notes.push(`adapter: ${info.adapter}`);
    if (info.software) {
      label = "chainrule webgpu (software adapter)";
      notes.push(
        "a software adapter (a CPU rasterizer): these rows check correctness (the check column agrees with the " +
          "other rows), they do not measure GPU speed",
      );
    }
  } else if (variant !== "js") {
    const kind = variant.startsWith("wasm") ? "wasm" : "native";
    const want = variant.includes("-1t") ? 1 : cpus().length;
    const { loaded, mod } = await loadKind(kind, kind === "wasm" ? { threads: want } : undefined);
    if ("error" in loaded) return { unavailable: loaded.error };
    setBackend(loaded.backend);
    if (kind === "wasm") {
      const t = (loaded.backend as Backend & { threads?: number }).threads ?? 1;
      label = `chainrule wasm${useJitVariant(variant) ? " jit" : ""} ${t === 1 ? "1 thread" : `${t} threads`}`;
      if (t !== want) notes.push(`asked for ${want} thread(s), the wasm backend runs ${t}`);
    } else {
      const setN = mod?.setNumThreads;
      if (typeof setN === "function") {
        (setN as (n: number) => void)(want);
        label = `chainrule native${useJitVariant(variant) ? " jit" : ""} ${want === 1 ? "1 thread" : `${want} threads`}`;
        const info = mod?.nativeInfo;
        if (typeof info === "function") {
          const { threads, isa } = (info as () => { threads: number; isa: string })();
          notes.push(`nativeInfo: ${threads} thread(s), ${isa} kernels`);
        }
      } else {
        notes.push("setNumThreads() not found: the addon's default thread count is used");
      }
    }
  } else {
    setBackend("js");
    label = "chainrule js (reference)";
  }
  return { peer: makePeer(variant, opts), label, version: "workspace", notes };
}
