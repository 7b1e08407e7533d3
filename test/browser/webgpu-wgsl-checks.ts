/**
 * Browser-page checks of the WGSL kernels added for issue 15's second round (fused attention, recurrent
 * cells, argsort, jit's fused kernel): each against the js kernel on random shapes, odd sizes, empty tensors
 * and strided views. Called by webgpu-page.ts with its checking kit (its `check`, `randView`, generators).
 */
import type {
  Activation,
  BinaryOp,
  Conv2dParams,
  FusedInstr,
  UnaryOp,
  View,
} from "../../src/backend/backend.ts";
import { syncToHost } from "../../src/backend/device.ts";
import { fusedByOps, fusedProgram } from "../../src/backend/fused.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { webgpuInfo } from "../../src/backend/webgpu/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import * as cr from "../../src/index.ts";

type Gen = (r: () => number) => number;
interface Pair {
  js: View;
  gpu: View;
}
interface Tol {
  rtol: number;
  atol: number;
}

/** What webgpu-page.ts lends: its comparison of one kernel call on js and webgpu, and its random views. */
export interface CheckKit {
  check(
    label: string,
    outType: DType,
    outShape: readonly number[],
    tol: Tol,
    call: (b: cr.Backend, side: "js" | "gpu", out: TypedArray) => void,
  ): Promise<void>;
  randView(shape: readonly number[], dtype: DType, gen: Gen, broadcast?: boolean): Pair;
  /** Count one check, failed with `failure` unless it is null. */
  note(failure: string | null): void;
  rng(): number;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const unit: Gen = (r) => (r() - 0.5) * 2;
const any: Gen = (r) => (r() - 0.5) * 6;

/** A pair over given host values: js reads them, webgpu reads a device array holding them (or them). */
function pairOf(data: TypedArray, shape: readonly number[], device: boolean): Pair {
  const strides = shape.map((_, k) => size(shape.slice(k + 1)));
  let dev = data;
  if (device) {
    dev = cr.getBackend().alloc("float32", data.length);
    for (let i = 0; i < data.length; i++) dev[i] = data[i];
  }
  return { js: { data, shape, strides, offset: 0 }, gpu: { data: dev, shape, strides, offset: 0 } };
}

/** [lead, L, S, E, Ev, causal, mask]: mask "none", "rand" (finite), "pad" (-Infinity on some keys), "all" (-Infinity). */
type AttCase = [number[], number, number, number, number, boolean, "none" | "rand" | "pad" | "all"];
const ATTENTION: AttCase[] = [
  [[], 1, 1, 1, 1, false, "none"],
  [[2], 5, 7, 3, 4, false, "none"],
  [[2], 5, 7, 3, 4, true, "rand"],
  [[2, 3], 17, 33, 8, 5, true, "none"],
  [[1], 40, 20, 40, 70, false, "pad"],
  [[3], 20, 40, 33, 9, true, "pad"],
  [[2], 16, 16, 16, 16, true, "rand"],
  [[2], 3, 5, 4, 2, false, "all"],
  [[2], 0, 5, 3, 3, false, "none"],
  [[2], 4, 0, 3, 3, false, "rand"],
  [[0], 3, 3, 3, 3, true, "none"],
  [[1], 9, 9, 0, 4, false, "none"],
  [[1], 9, 9, 4, 0, true, "rand"],
  [[], 40, 35, 24, 40, true, "none"],
];

async function attentionChecks(kit: CheckKit): Promise<void> {
  let alt = 0;
  for (const [lead, L, S, E, Ev, causal, maskKind] of ATTENTION) {
    const q = kit.randView([...lead, L, E], "float32", unit, true);
    const k = kit.randView([...lead, S, E], "float32", unit, true);
    const v = kit.randView([...lead, S, Ev], "float32", any, true);
    const maskGen: Gen =
      maskKind === "all"
        ? () => -Infinity
        : maskKind === "pad"
          ? (r) => (r() < 0.25 ? -Infinity : unit(r))
          : unit;
    const mask = maskKind === "none" ? null : kit.randView([...lead, L, S], "float32", maskGen, true);
    const scale = 1 / Math.sqrt(Math.max(1, E));
    const label = `[${lead}] L=${L} S=${S} E=${E} Ev=${Ev} causal=${causal} mask=${maskKind}`;
    const outShape = [...lead, L, Ev + 1];
    const tol = { rtol: 1e-4, atol: 2e-5 * (1 + Math.sqrt(Math.max(E, Ev))) };
    await kit.check(`attention ${label}`, "float32", outShape, tol, (b, s, o) =>
      b.attention(q[s], k[s], v[s], mask === null ? null : mask[s], causal, scale, o),
    );
    // the backward pass reads the forward output (lse in its last column) and a cotangent of its shape
    const o = allocTyped("float32", size(outShape));
    J.attention(q.js, k.js, v.js, mask === null ? null : mask.js, causal, scale, o);
    const ov = pairOf(o, outShape, alt++ % 2 === 0);
    const dout = kit.randView(outShape, "float32", any, true);
    const per = L * E + S * E + S * Ev;
    const btol = { rtol: 1e-4, atol: 1e-4 * (1 + Math.sqrt(Math.max(L, S) * Math.max(E, Ev))) };
    await kit.check(`attentionBackward ${label}`, "float32", [...lead, per], btol, (b, s, out) =>
      b.attentionBackward(
        q[s],
        k[s],
        v[s],
        mask === null ? null : mask[s],
        ov[s],
        dout[s],
        causal,
        scale,
        out,
      ),
    );
  }
}

async function cellChecks(kit: CheckKit): Promise<void> {
  const F32 = { rtol: 2e-5, atol: 2e-5 };
  for (const lead of [[], [3], [2, 5], [0], [1]]) {
    for (const H of [1, 7, 33]) {
      const label = `[${lead}] H=${H}`;
      const gates = kit.randView([...lead, 4 * H], "float32", any, true);
      const c = kit.randView([...lead, H], "float32", any, true);
      const ct2 = kit.randView([...lead, 2 * H], "float32", any, true);
      await kit.check(`lstmCell ${label}`, "float32", [...lead, 2 * H], F32, (b, s, o) =>
        b.lstmCell(gates[s], c[s], o),
      );
      await kit.check(`lstmCellBackward ${label}`, "float32", [...lead, 5 * H], F32, (b, s, o) =>
        b.lstmCellBackward(gates[s], c[s], ct2[s], o),
      );
      const xp = kit.randView([...lead, 3 * H], "float32", any, true);
      const hp = kit.randView([...lead, 3 * H], "float32", any, true);
      const h = kit.randView([...lead, H], "float32", any, true);
      const ct = kit.randView([...lead, H], "float32", any, true);
      await kit.check(`gruCell ${label}`, "float32", [...lead, H], F32, (b, s, o) =>
        b.gruCell(xp[s], hp[s], h[s], o),
      );
      await kit.check(`gruCellBackward ${label}`, "float32", [...lead, 7 * H], F32, (b, s, o) =>
        b.gruCellBackward(xp[s], hp[s], h[s], ct[s], o),
      );
    }
  }
}

const F_UNARY: UnaryOp[] = ["neg", "abs", "exp", "tanh", "sigmoid", "sin", "cos", "relu", "erf", "floor"];
const F_BINARY: BinaryOp[] = ["add", "sub", "mul", "maximum", "minimum", "div"];

/**
 * A random program over `k` inputs with `len` ops (and a const or two); its last register and, with `multi`,
 * one or two earlier op registers are written out. Divisions divide by 1.5 + |x| and exp reads tanh(x), so
 * values stay finite.
 */
function randProgram(rng: () => number, k: number, len: number, multi: boolean) {
  const instrs: FusedInstr[] = [];
  for (let j = 0; j < k; j++) instrs.push({ kind: "input", index: j });
  instrs.push({ kind: "const", value: 1.5 + rng() });
  const ops: number[] = [];
  const pick = () => Math.floor(rng() * instrs.length);
  const push = (ins: FusedInstr) => {
    instrs.push(ins);
    ops.push(instrs.length - 1);
    return instrs.length - 1;
  };
  for (let t = 0; t < len; t++) {
    if (rng() < 0.5) {
      const op = F_UNARY[Math.floor(rng() * F_UNARY.length)];
      const a = pick();
      push(
        op === "exp"
          ? { kind: "unary", op, a: push({ kind: "unary", op: "tanh", a }) }
          : { kind: "unary", op, a },
      );
    } else {
      const op = F_BINARY[Math.floor(rng() * F_BINARY.length)];
      const a = pick();
      let b = pick();
      if (op === "div") {
        const abs = push({ kind: "unary", op: "abs", a: b });
        b = push({ kind: "binary", op: "add", a: abs, b: k });
      }
      push({ kind: "binary", op, a, b });
    }
  }
  const outputs = [instrs.length - 1];
  if (multi) {
    for (const r of ops.slice(0, -1)) if (rng() < 0.3 && outputs.length < 3) outputs.unshift(r);
  }
  return fusedProgram("float32", instrs, outputs);
}

/**
 * The fused kernel: against js's fused kernel (tolerance) and against this backend's own kernels run op by op
 * (fusedByOps on webgpu: the contract asks for the same bits), on random programs, strided and broadcast
 * inputs, empty shapes, several outputs, an output over an input's storage, and more operands than a shader
 * binds (the op-by-op path).
 */
async function fusedChecks(kit: CheckKit): Promise<void> {
  const shapes = [[], [0], [1], [7], [3, 5], [2, 17, 3], [4, 1, 9], [33, 65]];
  const gpu = cr.getBackend();
  let t = 0;
  for (const k of [1, 2, 3, 7]) {
    for (const multi of [false, true]) {
      const shape = shapes[t++ % shapes.length];
      const prog = randProgram(() => kit.rng(), k, 3 + (t % 5), multi);
      const ins = Array.from({ length: k }, () => kit.randView(shape, "float32", any, true));
      const n = size(shape);
      const label = `fused k=${k} outs=${prog.outputs.length} [${shape}] ${prog.key}`;
      const js = Array.from(prog.outputs, () => allocTyped("float32", n));
      J.fused!(
        prog,
        ins.map((p) => p.js),
        js,
      );
      const got = Array.from(prog.outputs, () => gpu.alloc("float32", n));
      const ref = Array.from(prog.outputs, () => gpu.alloc("float32", n));
      let failure: string | null = null;
      try {
        gpu.fused!(
          prog,
          ins.map((p) => p.gpu),
          got,
        );
        fusedByOps(
          gpu,
          prog,
          ins.map((p) => p.gpu),
          ref,
        );
        for (const a of [...got, ...ref]) await syncToHost(a);
        for (let j = 0; j < got.length && failure === null; j++) {
          for (let i = 0; i < n; i++) {
            const [g, r, w] = [got[j][i], ref[j][i], js[j][i]];
            if (!Object.is(g, r) && !(Number.isNaN(g) && Number.isNaN(r))) {
              failure = `${label}: out ${j} element ${i}: fused ${g}, op by op ${r}`;
              break;
            }
            if (!(Math.abs(g - w) <= 2e-5 + 2e-5 * Math.abs(w))) {
              failure = `${label}: out ${j} element ${i}: got ${g}, js ${w}`;
              break;
            }
          }
        }
      } catch (e) {
        failure = `${label}: threw ${e instanceof Error ? e.message : e}`;
      }
      kit.note(failure);
    }
  }
  // in place: the output is the storage of a contiguous input (x * 2 + tanh(x) written over x)
  {
    const prog = fusedProgram("float32", [
      { kind: "input", index: 0 },
      { kind: "const", value: 2 },
      { kind: "binary", op: "mul", a: 0, b: 1 },
      { kind: "unary", op: "tanh", a: 0 },
      { kind: "binary", op: "add", a: 2, b: 3 },
    ]);
    const n = 37;
    const x0 = Array.from({ length: n }, () => any(() => kit.rng()));
    const x = gpu.alloc("float32", n);
    for (let i = 0; i < n; i++) x[i] = x0[i];
    const v: View = { data: x, shape: [n], strides: [1], offset: 0 };
    let failure: string | null = null;
    gpu.fused!(prog, [v], [x]);
    await syncToHost(x);
    for (let i = 0; i < n && failure === null; i++) {
      const want = Math.fround(
        Math.fround(2 * Math.fround(x0[i])) + Math.fround(Math.tanh(Math.fround(x0[i]))),
      );
      if (!(Math.abs(x[i] - want) <= 2e-6 * (1 + Math.abs(want))))
        failure = `fused in place: element ${i}: got ${x[i]}, expected ${want}`;
    }
    kit.note(failure);
  }
}

/** A program without inputs (consts only) fills its output: 2 * 3 - exp(0.5) everywhere, computed in float32. */
async function fusedConstChecks(kit: CheckKit): Promise<void> {
  const prog = fusedProgram("float32", [
    { kind: "const", value: 2 },
    { kind: "const", value: 3 },
    { kind: "binary", op: "mul", a: 0, b: 1 },
    { kind: "const", value: 0.5 },
    { kind: "unary", op: "exp", a: 3 },
    { kind: "binary", op: "sub", a: 2, b: 4 },
  ]);
  const out = cr.getBackend().alloc("float32", 300);
  cr.getBackend().fused!(prog, [], [out]);
  await syncToHost(out);
  const want = Math.fround(6 - Math.fround(Math.exp(0.5)));
  let failure: string | null = null;
  for (let i = 0; i < 300 && failure === null; i++) {
    if (!(Math.abs(out[i] - want) <= 1e-6))
      failure = `fused consts only: element ${i}: got ${out[i]}, expected ${want}`;
  }
  kit.note(failure);
}

/** jit on webgpu fuses: a chain of five elementwise ops runs as one dispatch, with the values of js. */
async function jitFusionCheck(kit: CheckKit): Promise<void> {
  const f = cr.jit((x: cr.Tensor, y: cr.Tensor) => x.mul(2).add(y).tanh().mul(x).sub(1));
  const xv = [0.5, -1, 2, 0.25, -3, 1.5];
  const yv = [1, 2, -0.5, 0, 0.75, -2];
  const x = cr.tensor(xv).reshape([2, 3]);
  const y = cr.tensor(yv).reshape([2, 3]);
  await (f(x, y) as cr.Tensor).data(); // traced and planned
  const before = webgpuInfo()!.dispatches;
  const out = f(x, y) as cr.Tensor;
  const got = Array.from(await out.data());
  const dispatches = webgpuInfo()!.dispatches - before;
  let failure: string | null = dispatches === 1 ? null : `jit fusion: ${dispatches} dispatches, expected 1`;
  got.forEach((g, i) => {
    const want = Math.tanh(xv[i] * 2 + yv[i]) * xv[i] - 1;
    if (failure === null && !(Math.abs(g - want) <= 1e-6 * (1 + Math.abs(want))))
      failure = `jit fusion: element ${i}: got ${g}, expected ${want}`;
  });
  kit.note(failure);
}

/** Float values with many ties, both zeros, infinities and NaN. */
const SPECIAL = [Number.NaN, -0, 0, Infinity, -Infinity, 1.5, -2.25, 3, -1e-30, 1e30];
const sortGen: Record<string, Gen> = {
  float32: (r) => (r() < 0.3 ? SPECIAL[Math.floor(r() * SPECIAL.length)] : Math.floor((r() - 0.5) * 12) / 2),
  int32: (r) => Math.floor((r() - 0.5) * 20) * (r() < 0.1 ? 100000000 : 1),
  bool: (r) => (r() < 0.5 ? 1 : 0),
};

/** argsort (stable, NaN last ascending / first descending) against js: workgroup rows and long rows. */
async function argsortChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number][] = [
    [[], 0],
    [[0], 0],
    [[3, 0], 1],
    [[1], 0],
    [[7], 0],
    [[3, 5], 0],
    [[3, 5], 1],
    [[2, 17, 3], 1],
    [[4, 1, 9], 2],
    [[1024], 0],
    [[2, 1025], 1],
    [[1500, 3], 0],
    [[3000], 0],
  ];
  let t = 0;
  for (const [shape, axis] of cases) {
    for (const dtype of ["float32", "int32", "bool"] as DType[]) {
      if (dtype === "bool" && t++ % 2 === 1) continue;
      // long rows (one dispatch per network stage): float32 both ways, int32 ascending
      const long = shape[axis] > 1024;
      if (long && dtype === "bool") continue;
      const x = kit.randView(shape, dtype, sortGen[dtype], true);
      for (const descending of long && dtype === "int32" ? [false] : [false, true]) {
        await kit.check(
          `argsort ${dtype} [${shape}] axis ${axis} descending=${descending}`,
          "int32",
          shape,
          { rtol: 0, atol: 0 },
          (b, s, o) => b.argsort!(x[s], axis, descending, o),
        );
      }
    }
  }
}

/**
 * The register-blocked matrix product (M and N above 16): batched, transposed and stepped random views, sizes
 * not multiples of the 64 x 64 block or of the 16-deep k tile, float32 and int32.
 */
async function blockedDotChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number, number, number][] = [
    [[], 17, 1, 17],
    [[], 64, 16, 64],
    [[], 65, 33, 129],
    [[], 130, 70, 97],
    [[3], 40, 19, 70],
    [[2, 2], 33, 64, 20],
    [[], 200, 0, 31],
  ];
  for (const dtype of ["float32", "int32"] as DType[]) {
    const g: Gen = dtype === "float32" ? any : (r) => Math.floor(r() * 5);
    for (const [batch, M, K, N] of cases) {
      const a = kit.randView([...batch, M, K], dtype, g, true);
      const c = kit.randView([...batch, K, N], dtype, g, true);
      const tol = dtype === "int32" ? { rtol: 0, atol: 0 } : { rtol: 1e-5, atol: 2e-6 * 9 * (K + 1) };
      await kit.check(
        `dot (blocked) ${dtype} [${batch}] ${M}x${K}x${N}`,
        dtype,
        [...batch, M, N],
        tol,
        (b, s, o) => b.dot(a[s], c[s], o),
      );
    }
  }
}

/**
 * An LSTM, a GRU and causal self-attention (the fused kernels' forward and backward passes through autograd):
 * the loss and some parameter gradients, read asynchronously, on the current backend.
 */
async function sequenceModel(): Promise<number[]> {
  cr.manualSeed(5);
  const g = new cr.Generator(9);
  const x = cr.tensor(Array.from({ length: 2 * 7 * 8 }, () => g.normal())).reshape([2, 7, 8]);
  const lstm = new cr.nn.LSTM(8, 12, { batchFirst: true });
  const gru = new cr.nn.GRU(12, 12, { batchFirst: true });
  const [h] = lstm.call(x);
  const [h2] = gru.call(h);
  const q = h2.reshape([2, 7, 2, 6]).transpose(1, 2);
  const att = cr.nn.scaledDotProductAttention(q, q.mul(0.5), q, { isCausal: true });
  const loss = att.mul(att).mean();
  loss.backward();
  const out = [(await loss.data())[0]];
  for (const p of [...lstm.parameters(), ...gru.parameters()]) {
    out.push(...Array.from((await p.grad!.data()).subarray(0, 5), Number));
  }
  return out;
}

/** The sequence model on webgpu and on js (switched to in the page) agree. */
async function sequenceModelCheck(kit: CheckKit): Promise<void> {
  let failure: string | null = null;
  try {
    const before = webgpuInfo()!.dispatches;
    const got = await sequenceModel();
    const dispatches = webgpuInfo()!.dispatches - before;
    cr.setBackend("js");
    const want = await sequenceModel();
    cr.setBackend("webgpu");
    if (dispatches < 100) failure = `sequence model: only ${dispatches} dispatches`;
    got.forEach((v, i) => {
      if (failure === null && !(Math.abs(v - want[i]) <= 1e-4 * (1 + Math.abs(want[i]))))
        failure = `sequence model: value ${i} (0 the loss, then 5 gradient values per parameter): got ${v}, js ${want[i]}`;
    });
  } catch (e) {
    failure = `sequence model: threw ${e instanceof Error ? e.message : e}`;
    cr.setBackend("webgpu");
  }
  kit.note(failure);
}

/**
 * The convolutions as implicit GEMMs (more than 16 output channels per group for conv2d and its weight
 * gradient, more than 16 input channels per group for the input gradient; smaller ones here take the direct
 * kernels): groups, strides, padding, dilation, bias and activation epilogues, more than 64 channels.
 */
async function convGemmChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number, [number, number], Conv2dParams, Activation | null, boolean][] = [
    [
      [2, 3, 9, 8],
      20,
      [3, 3],
      { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 },
      "relu",
      true,
    ],
    [[1, 4, 7, 7], 34, [3, 2], { stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2 }, null, false],
    [
      [3, 2, 5, 6],
      70,
      [1, 1],
      { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 },
      "sigmoid",
      true,
    ],
    [
      [1, 3, 12, 11],
      18,
      [2, 3],
      { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 },
      "tanh",
      false,
    ],
    [[2, 20, 6, 5], 18, [3, 3], { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }, null, true],
    [
      [1, 36, 5, 7],
      34,
      [2, 3],
      { stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2 },
      "relu",
      false,
    ],
  ];
  for (const [xs, O, [KH, KW], p, act, withBias] of cases) {
    const [N, C, H, W] = xs;
    const OH = Math.floor((H + 2 * p.padding[0] - p.dilation[0] * (KH - 1) - 1) / p.stride[0]) + 1;
    const OW = Math.floor((W + 2 * p.padding[1] - p.dilation[1] * (KW - 1) - 1) / p.stride[1]) + 1;
    const ys = [N, O, OH, OW];
    const x = kit.randView(xs, "float32", any);
    const w = kit.randView([O, C / p.groups, KH, KW], "float32", any);
    const bias = withBias ? kit.randView([O], "float32", any) : null;
    const terms = (C / p.groups) * KH * KW + 1;
    await kit.check(
      `conv2d (implicit GEMM) [${xs}] O=${O} k=${KH}x${KW} ${JSON.stringify(p)} ${act} bias=${withBias}`,
      "float32",
      ys,
      { rtol: 1e-5, atol: 2e-6 * 9 * terms },
      (b, s, o) => b.conv2d(x[s], w[s], o, ys, p, { bias: bias === null ? null : bias[s], act }),
    );
    const ws = [O, C / p.groups, KH, KW];
    const dy = kit.randView(ys, "float32", any);
    const label = `[${xs}] O=${O} k=${KH}x${KW} ${JSON.stringify(p)}`;
    await kit.check(
      `conv2dBackInput (implicit GEMM) ${label}`,
      "float32",
      xs,
      { rtol: 1e-5, atol: 2e-6 * 9 * O * KH * KW },
      (b, s, o) => b.conv2dBackInput(dy[s], w[s], o, xs, p),
    );
    await kit.check(
      `conv2dBackWeight (implicit GEMM) ${label}`,
      "float32",
      ws,
      { rtol: 1e-5, atol: 2e-6 * 9 * N * OH * OW },
      (b, s, o) => b.conv2dBackWeight(x[s], dy[s], o, ws, p),
    );
  }
}

/** Every check of this file. */
export async function wgslKernelChecks(kit: CheckKit): Promise<void> {
  await attentionChecks(kit);
  await cellChecks(kit);
  await argsortChecks(kit);
  await blockedDotChecks(kit);
  await convGemmChecks(kit);
  await fusedChecks(kit);
  await fusedConstChecks(kit);
  await jitFusionCheck(kit);
  await sequenceModelCheck(kit);
}
