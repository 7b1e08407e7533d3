/**
 * The benchmark's workloads: which cases exist, their units, and the inputs every framework receives.
 *
 * All inputs (matrices, batches, initial weights, the digits and the epoch permutations) are generated once by
 * the parent process from a fixed seed and written to one file in the safetensors layout (8-byte little-endian
 * header length, a JSON header of {dtype, shape, data_offsets}, then the raw little-endian arrays), which the
 * Node children and bench/torch_bench.py both read. So every framework starts from the same weights and sees
 * the same batches in the same order, and the `check` column (initial loss, a checksum) must agree across
 * frameworks: a mismatch means an adapter computes something else.
 *
 * Weights use PyTorch's layouts (Linear [out, in], Conv2d [out, in, kh, kw]) and PyTorch's default init
 * range U(-1/sqrt(fanIn), 1/sqrt(fanIn)); adapters transpose to their framework's preferred layout.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { prng } from "./harness.ts";

/** Figure units; `higher` says which direction is better. */
export type Unit = "GFLOP/s" | "ms" | "us" | "s";

/** One row group of the report: one measured quantity. */
export interface CaseSpec {
  id: string;
  workload: Workload;
  title: string;
  unit: Unit;
  higherIsBetter: boolean;
}

/** Workload names accepted by `--only`. */
export type Workload =
  | "sgemm"
  | "mlp"
  | "cnn"
  | "transformer"
  | "lstm"
  | "dispatch"
  | "vmap"
  | "attn"
  | "e2e"
  | "bf16";
export const WORKLOADS: readonly Workload[] = [
  "sgemm",
  "mlp",
  "cnn",
  "transformer",
  "lstm",
  "dispatch",
  "vmap",
  "attn",
  "e2e",
  "bf16",
];

export const SGEMM_SIZES = [128, 256, 512, 1024] as const;
/** Sizes of the bfloat16 GEMM rows (their operands are the sgemm inputs of that size, rounded to bfloat16). */
export const BF16_GEMM_SIZES = [256, 1024] as const;
export const MLP_LAYERS = [784, 512, 256, 10] as const;
export const MLP_BATCH = 128;
export const CNN_BATCH = 64;
export const E2E_LAYERS = [784, 256, 128, 10] as const;
export const E2E_BATCH = 128;
export const E2E_EPOCHS = 5;
export const LR = 1e-3;
/**
 * The character-level Transformer of `chainrule train --model transformer` (its default size): a decoder-only
 * stack of pre-norm GELU layers over a synthetic vocabulary, batch 32 windows of 128 characters.
 */
export const TRANSFORMER = { vocab: 96, width: 128, layers: 4, heads: 4, context: 128, batch: 32 } as const;
/** The row-by-row LSTM of `chainrule train --model lstm`: 28 steps of 28 pixels, hidden 128, batch 64. */
export const LSTM_BENCH = { batch: 64, hidden: 128, steps: 28, input: 28, classes: 10 } as const;

/** The attention row: batch, heads, sequence length (L = S) and head size. */
export const ATTN = { batch: 8, heads: 8, len: 512, dim: 64 } as const;
/**
 * The long attention rows (issue 13): L = S = 1024, the row's inputs repeated along L. Their check column is the
 * step's peak memory above the resident set before it (MiB, /proc/self/status VmHWM after a GC and a reset).
 */
export const ATTN_LONG = 1024;
/** Inner iterations per sample of the dispatch cases (per-op figures are sample time / K). */
export const DISPATCH_K = { add: 1000, grad: 200, jvp: 200 } as const;

/** Every case, in report order. */
export const CASES: readonly CaseSpec[] = [
  ...SGEMM_SIZES.map(
    (n): CaseSpec => ({
      id: `sgemm.${n}`,
      workload: "sgemm",
      title: `sgemm ${n}x${n} float32 (GFLOP/s = 2 n^3 / t)`,
      unit: "GFLOP/s",
      higherIsBetter: true,
    }),
  ),
  {
    id: "mlp.step",
    workload: "mlp",
    title: "MLP 784-512-256-10 training step, batch 128, Adam (ms per step)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "cnn.step",
    workload: "cnn",
    title: "CNN training step (conv5x5x32-pool-conv5x5x64-pool-fc128-fc10), batch 64, Adam (ms per step)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "transformer.step",
    workload: "transformer",
    title: `char Transformer training step (${TRANSFORMER.layers} pre-norm layers, width ${TRANSFORMER.width}, ${TRANSFORMER.heads} heads, causal), batch ${TRANSFORMER.batch} x ${TRANSFORMER.context}, Adam (ms per step)`,
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "lstm.step",
    workload: "lstm",
    title: `LSTM training step (28 rows of 28 pixels, hidden ${LSTM_BENCH.hidden}, last state -> Linear 10), batch ${LSTM_BENCH.batch}, Adam (ms per step)`,
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "dispatch.add",
    workload: "dispatch",
    title: `eager add of one-element tensors, chain of ${DISPATCH_K.add} (us per op)`,
    unit: "us",
    higherIsBetter: false,
  },
  {
    id: "dispatch.grad",
    workload: "dispatch",
    title: "x*y+z forward + backward on scalars (us per iteration)",
    unit: "us",
    higherIsBetter: false,
  },
  {
    id: "dispatch.jvp",
    workload: "dispatch",
    title: "x*y+z forward mode (jvp) on scalars (us per iteration)",
    unit: "us",
    higherIsBetter: false,
  },
  {
    id: "vmap.perexample",
    workload: "vmap",
    title:
      "per-example gradients of the MLP 784-512-256-10 (cross-entropy), batch 128, through vmap(grad(loss)) (ms)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "vmap.batched",
    workload: "vmap",
    title:
      "the same MLP's batched gradient of the mean loss, grad(loss), batch 128: the per-example row's yardstick (ms)",
    unit: "ms",
    higherIsBetter: false,
  },
  ...BF16_GEMM_SIZES.map(
    (n): CaseSpec => ({
      id: `bf16.gemm${n}`,
      workload: "bf16",
      title: `bf16 gemm ${n}x${n}, bfloat16 operands, float32 accumulation, bfloat16 out (GFLOP/s = 2 n^3 / t)`,
      unit: "GFLOP/s",
      higherIsBetter: true,
    }),
  ),
  {
    id: "bf16.mlp",
    workload: "bf16",
    title:
      "MLP 784-512-256-10 training step as mlp.step under bfloat16 autocast, float32 master weights (ms per step)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "bf16.cnn",
    workload: "bf16",
    title: "CNN training step as cnn.step under bfloat16 autocast, float32 master weights (ms per step)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "attn.fused",
    workload: "attn",
    title: `attention forward + backward, batch ${ATTN.batch}, ${ATTN.heads} heads, L = S = ${ATTN.len}, E = ${ATTN.dim}, float32: fused kernel (ms)`,
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "attn.composed",
    workload: "attn",
    title: "the same attention composed (softmax(q k^T / sqrt(E)) v, the [L, S] scores materialised) (ms)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "attn.bf16",
    workload: "attn",
    title:
      "the same attention under bfloat16 autocast (float32 q, k, v cast, gradients back to float32): fused kernel (ms)",
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "attn.fused1024",
    workload: "attn",
    title: `the fused attention at L = S = ${ATTN_LONG} (ms, including a forced GC; check column: the step's peak memory above the resident set before it, MiB)`,
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "attn.composed1024",
    workload: "attn",
    title: `the composed attention at L = S = ${ATTN_LONG} (ms, including a forced GC; check column: the step's peak memory above the resident set before it, MiB)`,
    unit: "ms",
    higherIsBetter: false,
  },
  {
    id: "e2e.mlp",
    workload: "e2e",
    title:
      "end-to-end: MLP 784-256-128-10 on the 10,000 digits, batch 128, Adam 1e-3 (s wall, training accuracy)",
    unit: "s",
    higherIsBetter: false,
  },
];

/** The attention row's inputs: q, k, v and the cotangent w, each [batch, heads, len, dim] float32. */
export interface AttnData {
  batch: number;
  heads: number;
  len: number;
  dim: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  w: Float32Array;
}

/** A Linear layer's initial weights, PyTorch layout: w [out, in], b [out]. */
export interface LinearInit {
  w: Float32Array;
  b: Float32Array;
  out: number;
  in: number;
}

/** A Conv2d layer's initial weights, PyTorch layout: w [out, in, k, k], b [out]. */
export interface ConvInit {
  w: Float32Array;
  b: Float32Array;
  out: number;
  in: number;
  k: number;
}

/** MLP step inputs: a batch and the layers' initial weights. */
export interface MlpData {
  x: Float32Array;
  y: Int32Array;
  batch: number;
  layers: LinearInit[];
}

/** CNN step inputs: x [batch, 1, 28, 28], labels, two convs (padding 2) and two Linear layers. */
export interface CnnData {
  x: Float32Array;
  y: Int32Array;
  batch: number;
  c1: ConvInit;
  c2: ConvInit;
  f1: LinearInit;
  f2: LinearInit;
}

/** A model's initial weights by PyTorch state-dict name (flat arrays in that tensor's row-major order). */
export type StateInit = { name: string; shape: number[]; data: Float32Array }[];

/** Transformer step inputs: token windows x [batch, context], next tokens y, initial weights. */
export interface TransformerData {
  x: Int32Array;
  y: Int32Array;
  params: StateInit;
}

/** LSTM step inputs: images x [batch, 28, 28] read row by row, labels, initial weights. */
export interface LstmData {
  x: Float32Array;
  y: Int32Array;
  params: StateInit;
}

/**
 * The Transformer's parameters, PyTorch names and shapes: tok (Embedding), pos (learned positions), blocks
 * (nn.TransformerEncoder of nn.TransformerEncoderLayer, with a final LayerNorm), head (Linear), with the init
 * of each: "n" = N(0, 0.02) (GPT-2), "0" zeros, "1" ones.
 */
export function transformerParamShapes(): [string, number[], "n" | "0" | "1"][] {
  const { vocab: v, width: e, layers, context } = TRANSFORMER;
  const out: [string, number[], "n" | "0" | "1"][] = [
    ["tok.weight", [v, e], "n"],
    ["pos.weight", [context, e], "n"],
  ];
  for (let l = 0; l < layers; l++) {
    const p = `blocks.layers.${l}.`;
    out.push(
      [`${p}self_attn.in_proj_weight`, [3 * e, e], "n"],
      [`${p}self_attn.in_proj_bias`, [3 * e], "0"],
      [`${p}self_attn.out_proj.weight`, [e, e], "n"],
      [`${p}self_attn.out_proj.bias`, [e], "0"],
      [`${p}linear1.weight`, [4 * e, e], "n"],
      [`${p}linear1.bias`, [4 * e], "0"],
      [`${p}linear2.weight`, [e, 4 * e], "n"],
      [`${p}linear2.bias`, [e], "0"],
      [`${p}norm1.weight`, [e], "1"],
      [`${p}norm1.bias`, [e], "0"],
      [`${p}norm2.weight`, [e], "1"],
      [`${p}norm2.bias`, [e], "0"],
    );
  }
  out.push(
    ["blocks.norm.weight", [e], "1"],
    ["blocks.norm.bias", [e], "0"],
    ["head.weight", [v, e], "n"],
    ["head.bias", [v], "0"],
  );
  return out;
}

/** The LSTM classifier's parameters (PyTorch names lstm.* of nn.LSTM and fc.* of nn.Linear) and init bounds. */
export function lstmParamShapes(): [string, number[], number][] {
  const { hidden: h, input, classes } = LSTM_BENCH;
  const b = 1 / Math.sqrt(h);
  return [
    ["lstm.weight_ih_l0", [4 * h, input], b],
    ["lstm.weight_hh_l0", [4 * h, h], b],
    ["lstm.bias_ih_l0", [4 * h], b],
    ["lstm.bias_hh_l0", [4 * h], b],
    ["fc.weight", [classes, h], b],
    ["fc.bias", [classes], b],
  ];
}

/** End-to-end inputs: the digits, one permutation per epoch, initial weights. Last partial batch dropped. */
export interface E2EData {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  /** epochs * n indices: epoch e visits perm[e*n .. e*n + n). */
  perm: Int32Array;
  epochs: number;
  batch: number;
  lr: number;
  layers: LinearInit[];
}

/** What every adapter reports for the end-to-end run. */
export interface E2EResult {
  seconds: number;
  /** Accuracy of the trained model on the 10,000 training digits. */
  accuracy: number;
  /** The loss of the last step. */
  finalLoss: number;
  /** Process CPU time / wall time (filled in by the runner). */
  cpu?: number;
}

type Arr = Float32Array | Int32Array;
type Store = Map<string, Arr>;

function uniform(rand: () => number, n: number, bound: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (2 * rand() - 1) * bound;
  return a;
}

function linearInit(rand: () => number, inF: number, outF: number): LinearInit {
  const bound = 1 / Math.sqrt(inF);
  return { w: uniform(rand, outF * inF, bound), b: uniform(rand, outF, bound), out: outF, in: inF };
}

function convInit(rand: () => number, inC: number, outC: number, k: number): ConvInit {
  const bound = 1 / Math.sqrt(inC * k * k);
  return {
    w: uniform(rand, outC * inC * k * k, bound),
    b: uniform(rand, outC, bound),
    out: outC,
    in: inC,
    k,
  };
}

function putLinear(s: Store, name: string, l: LinearInit): void {
  s.set(`${name}.w`, l.w);
  s.set(`${name}.b`, l.b);
}

function labels(rand: () => number, n: number): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor(rand() * 10));
}

/** Fisher-Yates with the bench PRNG. */
function permutation(rand: () => number, n: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Generate every input from the fixed seed. `digits` is the embedded dataset (chainrule's loadDigits). */
export function generateInputs(
  digits: { images: Float32Array; labels: Int32Array; n: number },
  epochs: number,
): Store {
  const rand = prng(20240611);
  const s: Store = new Map();
  for (const n of SGEMM_SIZES) {
    s.set(`sgemm.a.${n}`, uniform(rand, n * n, 1));
    s.set(`sgemm.b.${n}`, uniform(rand, n * n, 1));
  }
  s.set(
    "mlp.x",
    Float32Array.from({ length: MLP_BATCH * 784 }, () => rand()),
  );
  s.set("mlp.y", labels(rand, MLP_BATCH));
  for (let i = 0; i < 3; i++) putLinear(s, `mlp.l${i}`, linearInit(rand, MLP_LAYERS[i], MLP_LAYERS[i + 1]));
  s.set(
    "cnn.x",
    Float32Array.from({ length: CNN_BATCH * 784 }, () => rand()),
  );
  s.set("cnn.y", labels(rand, CNN_BATCH));
  for (const [name, c] of [
    ["cnn.c1", convInit(rand, 1, 32, 5)],
    ["cnn.c2", convInit(rand, 32, 64, 5)],
  ] as const) {
    s.set(`${name}.w`, c.w);
    s.set(`${name}.b`, c.b);
  }
  putLinear(s, "cnn.f1", linearInit(rand, 64 * 7 * 7, 128));
  putLinear(s, "cnn.f2", linearInit(rand, 128, 10));
  const an = ATTN.batch * ATTN.heads * ATTN.len * ATTN.dim;
  for (const name of ["q", "k", "v", "w"]) s.set(`attn.${name}`, uniform(rand, an, 1));
  s.set("e2e.images", digits.images);
  s.set("e2e.labels", digits.labels);
  const perm = new Int32Array(epochs * digits.n);
  for (let e = 0; e < epochs; e++) perm.set(permutation(rand, digits.n), e * digits.n);
  s.set("e2e.perm", perm);
  for (let i = 0; i < 3; i++) putLinear(s, `e2e.l${i}`, linearInit(rand, E2E_LAYERS[i], E2E_LAYERS[i + 1]));
  // drawn after everything above, so the earlier inputs are the same as before these rows existed
  const { vocab, context, batch } = TRANSFORMER;
  const text = Int32Array.from({ length: batch * (context + 1) }, () => Math.floor(rand() * vocab));
  const x = new Int32Array(batch * context);
  const y = new Int32Array(batch * context);
  for (let i = 0; i < batch; i++) {
    x.set(text.subarray(i * (context + 1), i * (context + 1) + context), i * context);
    y.set(text.subarray(i * (context + 1) + 1, (i + 1) * (context + 1)), i * context);
  }
  s.set("tfm.x", x);
  s.set("tfm.y", y);
  for (const [name, shape, init] of transformerParamShapes()) {
    const n = shape.reduce((a, b) => a * b, 1);
    s.set(
      `tfm.${name}`,
      init === "n" ? gaussian(rand, n, 0.02) : new Float32Array(n).fill(init === "1" ? 1 : 0),
    );
  }
  s.set(
    "lstm.x",
    Float32Array.from({ length: LSTM_BENCH.batch * 784 }, () => rand()),
  );
  s.set("lstm.y", labels(rand, LSTM_BENCH.batch));
  for (const [name, shape, bound] of lstmParamShapes()) {
    s.set(
      `lstm.${name}`,
      uniform(
        rand,
        shape.reduce((a, b) => a * b, 1),
        bound,
      ),
    );
  }
  return s;
}

/** N(0, std^2) values (Box-Muller on the bench PRNG). */
function gaussian(rand: () => number, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rand(); // (0, 1]
    a[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return a;
}

/** Write the inputs in the safetensors layout (see the module comment). */
export function writeInputs(path: string, s: Store, meta: Record<string, string>): void {
  const header: Record<string, unknown> = { __metadata__: meta };
  let off = 0;
  for (const [k, a] of s) {
    header[k] = {
      dtype: a instanceof Float32Array ? "F32" : "I32",
      shape: [a.length],
      data_offsets: [off, off + a.byteLength],
    };
    off += a.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.from(json, "utf8");
  const buf = Buffer.alloc(8 + head.length + off);
  buf.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(buf, 8);
  let pos = 8 + head.length;
  for (const a of s.values()) {
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).copy(buf, pos);
    pos += a.byteLength;
  }
  writeFileSync(path, buf);
}

/** Read what writeInputs wrote. */
export function readInputs(path: string): { store: Store; meta: Record<string, string> } {
  const buf = readFileSync(path);
  const hlen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + hlen).toString("utf8")) as Record<string, unknown>;
  const base = 8 + hlen;
  const store: Store = new Map();
  let meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === "__metadata__") {
      meta = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype: string; data_offsets: [number, number] };
    const bytes = buf.subarray(base + e.data_offsets[0], base + e.data_offsets[1]);
    const copy = new Uint8Array(bytes); // aligned copy
    store.set(k, e.dtype === "F32" ? new Float32Array(copy.buffer) : new Int32Array(copy.buffer));
  }
  return { store, meta };
}

function get<T extends Arr>(s: Store, k: string, ctor: new (...a: never[]) => T): T {
  const a = s.get(k);
  if (!(a instanceof ctor)) throw new Error(`bench inputs: '${k}' is missing or has the wrong dtype`);
  return a;
}

function getLinear(s: Store, name: string, inF: number, outF: number): LinearInit {
  return { w: get(s, `${name}.w`, Float32Array), b: get(s, `${name}.b`, Float32Array), in: inF, out: outF };
}

/** The sgemm operands of size n. */
export function sgemmInputs(s: Store, n: number): { a: Float32Array; b: Float32Array } {
  return { a: get(s, `sgemm.a.${n}`, Float32Array), b: get(s, `sgemm.b.${n}`, Float32Array) };
}

/** The MLP step inputs. */
export function mlpInputs(s: Store): MlpData {
  const layers = [0, 1, 2].map((i) => getLinear(s, `mlp.l${i}`, MLP_LAYERS[i], MLP_LAYERS[i + 1]));
  return { x: get(s, "mlp.x", Float32Array), y: get(s, "mlp.y", Int32Array), batch: MLP_BATCH, layers };
}

/** The CNN step inputs. */
export function cnnInputs(s: Store): CnnData {
  const conv = (name: string, inC: number, outC: number): ConvInit => ({
    w: get(s, `${name}.w`, Float32Array),
    b: get(s, `${name}.b`, Float32Array),
    in: inC,
    out: outC,
    k: 5,
  });
  return {
    x: get(s, "cnn.x", Float32Array),
    y: get(s, "cnn.y", Int32Array),
    batch: CNN_BATCH,
    c1: conv("cnn.c1", 1, 32),
    c2: conv("cnn.c2", 32, 64),
    f1: getLinear(s, "cnn.f1", 64 * 7 * 7, 128),
    f2: getLinear(s, "cnn.f2", 128, 10),
  };
}

/** The end-to-end inputs. */
/** The attention row's inputs; with len > ATTN.len (a multiple of it) each head's rows repeated to len rows. */
export function attnInputs(s: Store, len: number = ATTN.len): AttnData {
  const { batch, heads, dim } = ATTN;
  const rows = ATTN.len * dim;
  const get = (name: string) => {
    const a = s.get(`attn.${name}`) as Float32Array;
    if (len === ATTN.len) return a;
    const out = new Float32Array(batch * heads * len * dim);
    for (let h = 0; h < batch * heads; h++)
      for (let r = 0; r < len / ATTN.len; r++)
        out.set(a.subarray(h * rows, (h + 1) * rows), (h * len + r * ATTN.len) * dim);
    return out;
  };
  return { ...ATTN, len, q: get("q"), k: get("k"), v: get("v"), w: get("w") };
}

export function e2eInputs(s: Store): E2EData {
  const labelsArr = get(s, "e2e.labels", Int32Array);
  const n = labelsArr.length;
  const perm = get(s, "e2e.perm", Int32Array);
  const layers = [0, 1, 2].map((i) => getLinear(s, `e2e.l${i}`, E2E_LAYERS[i], E2E_LAYERS[i + 1]));
  return {
    images: get(s, "e2e.images", Float32Array),
    labels: labelsArr,
    n,
    perm,
    epochs: perm.length / n,
    batch: E2E_BATCH,
    lr: LR,
    layers,
  };
}

/** The Transformer step inputs. */
export function transformerInputs(s: Store): TransformerData {
  return {
    x: get(s, "tfm.x", Int32Array),
    y: get(s, "tfm.y", Int32Array),
    params: transformerParamShapes().map(([name, shape]) => ({
      name,
      shape,
      data: get(s, `tfm.${name}`, Float32Array),
    })),
  };
}

/** The LSTM step inputs. */
export function lstmInputs(s: Store): LstmData {
  return {
    x: get(s, "lstm.x", Float32Array),
    y: get(s, "lstm.y", Int32Array),
    params: lstmParamShapes().map(([name, shape]) => ({
      name,
      shape,
      data: get(s, `lstm.${name}`, Float32Array),
    })),
  };
}

/** Transpose a row-major [rows, cols] matrix (PyTorch [out, in] -> [in, out] for x @ W frameworks). */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

/** Conv weight [out, in, kh, kw] -> TF.js filter [kh, kw, in, out]. */
export function convToHWIO(c: ConvInit): Float32Array {
  const { out, in: inC, k } = c;
  const t = new Float32Array(c.w.length);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inC; i++)
      for (let y = 0; y < k; y++)
        for (let x = 0; x < k; x++)
          t[((y * k + x) * inC + i) * out + o] = c.w[((o * inC + i) * k + y) * k + x];
  return t;
}
