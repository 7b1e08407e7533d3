/**
 * Recurrent layers with PyTorch 1.13's names, options, shapes and state-dict keys: `RNN` (tanh or relu),
 * `LSTM` (optionally with projections, `projSize`), `GRU`, and their single-step cells `RNNCell`, `LSTMCell`,
 * `GRUCell`. Weights from a PyTorch state dict load as they are (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
 * `bias_hh_l0`, `weight_hr_l0`, the `_reverse` ones of a bidirectional layer), and every weight starts as
 * PyTorch's: U(-1/sqrt(hiddenSize), 1/sqrt(hiddenSize)).
 *
 * The layers are compositions of existing ops: per layer and direction, one matmul projects the whole input
 * sequence (`x W_ih^T + b`), then a loop over time adds the hidden projection `h W_hh^T` and applies the gate
 * nonlinearities. For LSTM and GRU that elementwise part of a step (the gates' sigmoid/tanh and the state
 * update) is one fused primitive each (`lstmCell`, `gruCell` in src/prims/rnn.ts: one kernel forward, one for
 * the VJP, instead of ~10 elementwise ops and their temporaries; their float32 rows are vectorised). The loop
 * is a `scan` (core/control.ts): a traced program (jit, makeJaxpr, a jitted makeTrainStep) holds one scan per
 * layer and direction instead of T copies of the cell, and eagerly the scan body runs through a compiled
 * executor that reuses its buffers. An LSTM layer without projections is one differentiable call around that
 * scan (`lstmSequence`) whose reverse mode is shaped like cuDNN's: the forward keeps each step's gates; the
 * backward is a reverse scan of the fused cell VJP and `dgates W_hh`, the gradient of W_hh is one GEMM over
 * all steps (dgates [T B, 4H]^T h_prev [T B, H]) and that of the projected input is the stacked dgates, in
 * place of scan's generic reverse mode (a GEMM and an accumulation of dW_hh per step, the packed cell output
 * unsliced per step). Measured against the generic reverse mode with the scalar cell kernels (the bench's
 * LSTM step, 28 steps, hidden 128, batch 64, Adam, native, one thread; whole processes pinned to one core of a
 * shared 2-core machine, alternating, the CPU time of 60 steps less that of none): 54.2 ms per step before,
 * 20.0 ms after (2.7x; 1.8x interleaved in one unpinned process at load 6-19). The JavaScript loop
 * (`setRnnTimeLoop("unrolled")`, internal) and the plain scan ("plainScan") stay as the tests' references.
 * Under autocast the layers and cells compute in float32, as PyTorch 1.13's LSTM and GRU on CPU do.
 *
 * Equations (gate order in the weights as PyTorch's):
 * - RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.
 * - LSTM (i, f, g, o): c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c'), then h' W_hr^T with
 *   projections.
 * - GRU (r, z, n): r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r (h W_hn^T + b_hn)),
 *   h' = (1 - z) n + z h, the reset gate applied to the hidden projection including its bias, as PyTorch.
 */
import { autocast, autocastDtype } from "../amp.ts";
import { scan } from "../core/control.ts";
import { bindCall, type CallRule } from "../core/trace.ts";
import type { DType } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import type { Generator } from "../ops/creation.ts";
import { zeros } from "../ops/creation.ts";
import { linear } from "../ops/nn.ts";
import { cat, stack } from "../ops/shape.ts";
import { gruCell, lstmCell, lstmCellBackward } from "../prims/rnn.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Dropout } from "./dropout.ts";
import { uniform } from "./init.ts";
import { Module, parameter } from "./module.ts";

/** The cell computed at each step. */
type Mode = "RNN_TANH" | "RNN_RELU" | "LSTM" | "GRU";

const GATES: Record<Mode, number> = { RNN_TANH: 1, RNN_RELU: 1, LSTM: 4, GRU: 3 };

/** Options shared by RNN, LSTM and GRU (PyTorch's keyword arguments, camelCased). */
export interface RNNBaseOpts {
  /** Stacked layers (default 1); layer k > 0 reads the output sequence of layer k - 1. */
  numLayers?: number;
  /** Learn the biases b_ih and b_hh (default true); without them they are not parameters at all. */
  bias?: boolean;
  /** Input and output are [batch, seq, feature] instead of [seq, batch, feature] (default false). */
  batchFirst?: boolean;
  /** Dropout probability on the outputs of every layer but the last, in training mode only (default 0). */
  dropout?: number;
  /** Run a second set of layers from the end of the sequence to the start; outputs are concatenated. */
  bidirectional?: boolean;
  dtype?: DType;
  /** Random stream of the initialisation (default the global generator, `manualSeed`). */
  generator?: Generator;
}

/** Options of RNN. */
export interface RNNOpts extends RNNBaseOpts {
  /** The cell's nonlinearity (default "tanh"). */
  nonlinearity?: "tanh" | "relu";
}

/** Options of LSTM. */
export interface LSTMOpts extends RNNBaseOpts {
  /** Project each hidden state to this size with `weight_hr` (default 0: no projection). */
  projSize?: number;
}

/** Options of the cells. */
export interface RNNCellOpts {
  bias?: boolean;
  dtype?: DType;
  generator?: Generator;
}

/** The weights of one layer and direction (or of a cell). */
interface CellWeights {
  wIh: Tensor;
  wHh: Tensor;
  bIh: Tensor | null;
  bHh: Tensor | null;
  wHr: Tensor | null;
}

/** The carry of one step: h, and c for an LSTM. */
type Carry = { h: Tensor; c: Tensor | null };

/**
 * The input projection of a whole sequence, x [..., in] -> [..., gates * hidden]. For RNN and LSTM both
 * biases are added here (once, not at every step); GRU keeps b_hh for the step, where r multiplies it.
 */
function inputProjection(mode: Mode, x: Tensor, w: CellWeights): Tensor {
  let b = w.bIh;
  if (mode !== "GRU" && b !== null && w.bHh !== null) b = b.add(w.bHh);
  return linear(x, w.wIh, b);
}

/** One step from the projected input xp [B, G*H] and the carry. */
function cellStep(mode: Mode, xp: Tensor, s: Carry, w: CellWeights): Carry {
  switch (mode) {
    case "RNN_TANH":
      return { h: xp.add(s.h.matmul(w.wHh.transpose(0, 1))).tanh(), c: null };
    case "RNN_RELU":
      return { h: xp.add(s.h.matmul(w.wHh.transpose(0, 1))).relu(), c: null };
    case "LSTM": {
      // the gates' nonlinearities and the state update in one fused kernel (and one for its VJP)
      const gates = xp.add(s.h.matmul(w.wHh.transpose(0, 1)));
      const hc = lstmCell(gates, s.c!);
      const n = s.c!.shape[s.c!.ndim - 1];
      const c = hc.narrow(-1, n, n);
      let h = hc.narrow(-1, 0, n);
      if (w.wHr !== null) h = h.matmul(w.wHr.transpose(0, 1));
      return { h, c };
    }
    case "GRU":
      // r, z, n and (1 - z) n + z h in one fused kernel (and one for its VJP)
      return { h: gruCell(xp, linear(s.h, w.wHh, w.bHh), s.h), c: null };
  }
}

/** How the time loop runs: one `scan` (the default), or a JavaScript loop of eager ops. */
let rnnTimeLoop: "scan" | "plainScan" | "unrolled" = "scan";
/**
 * @internal Select the time loop (tests and the measurement): "scan" (an LSTM without projections runs as
 * `lstmSequence`, the others as a plain scan), "plainScan" (every layer a plain scan, differentiated by scan's
 * generic rules), "unrolled" (a JavaScript loop of eager ops).
 */
export function setRnnTimeLoop(v: "scan" | "plainScan" | "unrolled"): void {
  rnnTimeLoop = v;
}

/** The LSTM recursion over a sequence as one scan: xp [T, ...B, 4H] -> [ys [T, ...B, H], hN, cN]. */
function lstmScan(xp: Tensor, h0: Tensor, c0: Tensor, wHh: Tensor, reverse: boolean) {
  const n = h0.shape[h0.ndim - 1];
  const wT = wHh.transpose(0, 1);
  const [fin, ys] = scan(
    (carry: Tensor[], xt: Tensor) => {
      const gates = xt.add(carry[0].matmul(wT));
      const hc = lstmCell(gates, carry[1]);
      const next: Tensor[] = [hc.narrow(-1, 0, n), hc.narrow(-1, n, n)];
      return [next, [hc, gates]] as const;
    },
    [h0, c0],
    xp,
    { reverse },
  );
  return { hN: fin[0], cN: fin[1], hcs: ys[0], gates: ys[1] };
}

/**
 * The state before each step, stacked: [T, ...B, H] from the per-step states `all` (each step's new state) and
 * the initial one: step t's previous state is step t - 1's (t + 1's when reversed), the first step's is `first`.
 */
function previous(all: Tensor, first: Tensor, reverse: boolean): Tensor {
  const T = all.shape[0];
  const f = first.unsqueeze(0);
  if (T === 1) return f;
  return reverse ? cat([all.narrow(0, 1, T - 1), f], 0) : cat([f, all.narrow(0, 0, T - 1)], 0);
}

/**
 * One LSTM layer and direction without projections, as one differentiable call whose reverse mode is shaped
 * like cuDNN's: the forward scan keeps each step's gates (pre-activation) and states; the backward is a reverse
 * scan of the fused cell VJP and `dgates W_hh` (the recurrent GEMM a step cannot avoid), and the gradient of
 * W_hh is then one GEMM over all steps, dgates[T B, 4H]^T h_prev[T B, H], instead of a GEMM and an accumulation
 * per step. The cotangent of the projected input xp is the stacked dgates itself. Forward mode and vmap trace
 * the plain scan (`lstmScan`); the backward is made of differentiable ops (scan, the cell VJP primitive,
 * matmul), so higher orders work.
 */
function lstmSequence(xp: Tensor, h0: Tensor, c0: Tensor, wHh: Tensor, reverse: boolean): Tensor[] {
  const n = h0.shape[h0.ndim - 1];
  const plain = ([x, h, c, w]: readonly Tensor[]): Tensor[] => {
    const r = lstmScan(x, h, c, w, reverse);
    return [r.hcs.narrow(-1, 0, n), r.hN, r.cN];
  };
  const rule: CallRule = {
    name: "lstmSequence",
    // the backward's temporaries (previous states, the stacked gate cotangents once consumed) may recycle
    backwardKeepsNothing: true,
    fn: plain,
    vjp: ([x, h, c, w]) => {
      const r = lstmScan(x, h, c, w, reverse);
      const ys = r.hcs.narrow(-1, 0, n);
      return {
        outs: [ys, r.hN, r.cN],
        backward: ([dys, dhN, dcN]) => {
          const hPrev = previous(ys, h, reverse);
          const cPrev = previous(r.hcs.narrow(-1, n, n), c, reverse);
          const [dFin, dGates] = scan(
            (carry: Tensor[], [g, cp, dy]: Tensor[]) => {
              const d = lstmCellBackward(g, cp, cat([carry[0].add(dy), carry[1]], -1));
              const dg = d.narrow(-1, 0, 4 * n);
              const next: Tensor[] = [dg.matmul(w), d.narrow(-1, 4 * n, n)];
              return [next, dg] as const;
            },
            [dhN, dcN],
            [r.gates, cPrev, dys],
            { reverse: !reverse },
          );
          const dW = dGates
            .reshape([-1, 4 * n])
            .transpose(0, 1)
            .matmul(hPrev.reshape([-1, n]));
          return [dGates, dFin[0], dFin[1], dW];
        },
      };
    },
  };
  return bindCall(rule, [xp, h0, c0, wHh]);
}

/** One layer and direction over a whole sequence: xp [T, B, G*H] -> ys [T, B, H'] and the final carry. */
function runSequence(mode: Mode, xp: Tensor, s0: Carry, w: CellWeights, reverse: boolean): [Tensor, Carry] {
  const T = xp.shape[0];
  if (rnnTimeLoop === "scan" && mode === "LSTM" && w.wHr === null && T > 0) {
    const [ys, h, c] = lstmSequence(xp, s0.h, s0.c!, w.wHh, reverse);
    return [ys, { h, c }];
  }
  if (rnnTimeLoop !== "unrolled") {
    const init = s0.c === null ? [s0.h] : [s0.h, s0.c];
    const [fin, ys] = scan(
      (carry: Tensor[], xt: Tensor) => {
        const n = cellStep(mode, xt, { h: carry[0], c: carry[1] ?? null }, w);
        return [n.c === null ? [n.h] : [n.h, n.c], n.h] as const;
      },
      init,
      xp,
      { reverse },
    );
    return [ys, { h: fin[0], c: fin[1] ?? null }];
  }
  const ys: Tensor[] = new Array(T);
  let s = s0;
  for (let k = 0; k < T; k++) {
    const t = reverse ? T - 1 - k : k;
    s = cellStep(mode, xp.narrow(0, t, 1).squeeze(0), s, w);
    ys[t] = s.h;
  }
  return [stack(ys, 0), s];
}

/** The input must have the weights' dtype, as in PyTorch (a float32 input does not silently become float64). */
function checkDType(op: string, input: Tensor, weight: Tensor): void {
  if (input.dtype !== weight.dtype) {
    throw new DTypeError(
      `${op}: input is ${input.dtype} but the weights are ${weight.dtype} (convert the input with .to("${weight.dtype}") or the module with .to("${input.dtype}"))`,
    );
  }
}

function checkSize(op: string, name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min)
    throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${v}`);
}

/**
 * The multi-layer recurrent network behind RNN, LSTM and GRU. Parameters are own fields named as PyTorch's
 * state dict, created in PyTorch's order (per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh,
 * weight_hr), so `stateDict()` keys and order match `torch.nn.LSTM(...).state_dict()`.
 */
abstract class RNNBase<H> extends Module<[Tensor, H?], [Tensor, H]> {
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  readonly projSize: number;
  /**
   * The Dropout applied between layers, a child module (no parameters, so the state dict is PyTorch's) so that
   * train()/eval() reach it and functional training steps (`makeTrainStep`) find it and pass its masks; null
   * when `dropout` is 0.
   */
  readonly interLayerDropout: Dropout | null;
  readonly #mode: Mode;

  constructor(
    op: string,
    mode: Mode,
    readonly inputSize: number,
    readonly hiddenSize: number,
    opts: RNNBaseOpts & { projSize?: number },
  ) {
    super();
    this.#mode = mode;
    checkSize(op, "inputSize", inputSize, 0);
    checkSize(op, "hiddenSize", hiddenSize, 1);
    this.numLayers = opts.numLayers ?? 1;
    checkSize(op, "numLayers", this.numLayers, 1);
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    if (!(this.dropout >= 0 && this.dropout <= 1)) {
      throw new RangeError(`${op}: dropout must be a probability in [0, 1], got ${this.dropout}`);
    }
    this.bidirectional = opts.bidirectional ?? false;
    this.projSize = opts.projSize ?? 0;
    checkSize(op, "projSize", this.projSize, 0);
    if (this.projSize >= hiddenSize) {
      throw new RangeError(
        `${op}: projSize must be smaller than hiddenSize (${hiddenSize}), got ${this.projSize}`,
      );
    }
    this.interLayerDropout = this.dropout > 0 ? new Dropout(this.dropout) : null;
    const dtype = opts.dtype ?? "float32";
    const g = GATES[mode] * hiddenSize;
    const hOut = this.projSize > 0 ? this.projSize : hiddenSize;
    const dirs = this.bidirectional ? 2 : 1;
    const bound = 1 / Math.sqrt(hiddenSize);
    const make = (shape: number[]) =>
      uniform(parameter(shape, dtype), -bound, bound, { generator: opts.generator });
    for (let l = 0; l < this.numLayers; l++) {
      const inSize = l === 0 ? inputSize : hOut * dirs;
      for (let d = 0; d < dirs; d++) {
        const sfx = `_l${l}${d === 1 ? "_reverse" : ""}`;
        Reflect.set(this, `weight_ih${sfx}`, make([g, inSize]));
        Reflect.set(this, `weight_hh${sfx}`, make([g, hOut]));
        if (this.bias) {
          Reflect.set(this, `bias_ih${sfx}`, make([g]));
          Reflect.set(this, `bias_hh${sfx}`, make([g]));
        }
        if (this.projSize > 0) Reflect.set(this, `weight_hr${sfx}`, make([this.projSize, hiddenSize]));
      }
    }
  }

  /** The size of h: projSize with projections, else hiddenSize. */
  get #hOut(): number {
    return this.projSize > 0 ? this.projSize : this.hiddenSize;
  }

  /** The weights of layer l, direction d, read from the fields (so loadStateDict and functionalCall apply). */
  #weights(l: number, d: number): CellWeights {
    const sfx = `_l${l}${d === 1 ? "_reverse" : ""}`;
    const get = (n: string) => (Reflect.get(this, n + sfx) as Tensor | undefined) ?? null;
    return {
      wIh: get("weight_ih")!,
      wHh: get("weight_hh")!,
      bIh: get("bias_ih"),
      bHh: get("bias_hh"),
      wHr: get("weight_hr"),
    };
  }

  /** @internal Split the user's initial state into h0 (and c0 for an LSTM). */
  protected abstract _unpack(hx: H | undefined): [Tensor | null, Tensor | null];
  /** @internal Build the user's final state from hN (and cN). */
  protected abstract _pack(h: Tensor, c: Tensor | null): H;

  /** The name used in errors. */
  protected abstract get _op(): string;

  forward(input: Tensor, hx?: H): [Tensor, H] {
    // autocast: the recurrent layers compute in float32, as PyTorch 1.13's LSTM and GRU on CPU do
    if (autocastDtype() !== null) return autocast({ enabled: false }, () => this.forward(input, hx));
    const op = this._op;
    const mode = this.#mode;
    if (input.ndim !== 2 && input.ndim !== 3) {
      throw new ShapeError(
        `${op}: expected input of shape [seq, batch, ${this.inputSize}]${this.batchFirst ? " (batchFirst: [batch, seq, ...])" : ""} or unbatched [seq, ${this.inputSize}], got ${fmtShape(input.shape)}`,
      );
    }
    if (input.shape[input.ndim - 1] !== this.inputSize) {
      throw new ShapeError(
        `${op}: input has ${input.shape[input.ndim - 1]} features (shape ${fmtShape(input.shape)}), expected inputSize ${this.inputSize}`,
      );
    }
    checkDType(op, input, this.#weights(0, 0).wIh);
    const batched = input.ndim === 3;
    let x = !batched ? input.unsqueeze(1) : this.batchFirst ? input.transpose(0, 1) : input;
    const B = x.shape[1];
    const dirs = this.bidirectional ? 2 : 1;
    const hOut = this.#hOut;
    const [h0in, c0in] = this._unpack(hx);
    const state = (t: Tensor | null, what: string, size: number): Tensor => {
      const want = batched ? [this.numLayers * dirs, B, size] : [this.numLayers * dirs, size];
      if (t === null) return zeros([this.numLayers * dirs, B, size], { dtype: input.dtype });
      if (t.ndim !== want.length || t.shape.some((n, i) => n !== want[i])) {
        throw new ShapeError(
          `${op}: expected ${what} of shape ${fmtShape(want)} for input ${fmtShape(input.shape)}, got ${fmtShape(t.shape)}`,
        );
      }
      return batched ? t : t.unsqueeze(1);
    };
    const h0 = state(h0in, "h0", hOut);
    const c0 = mode === "LSTM" ? state(c0in, "c0", this.hiddenSize) : null;
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      const outs: Tensor[] = [];
      for (let d = 0; d < dirs; d++) {
        const k = l * dirs + d;
        const w = this.#weights(l, d);
        const xp = inputProjection(mode, x, w);
        const s0 = {
          h: h0.narrow(0, k, 1).squeeze(0),
          c: c0 === null ? null : c0.narrow(0, k, 1).squeeze(0),
        };
        const [ys, s] = runSequence(mode, xp, s0, w, d === 1);
        outs.push(ys);
        hs.push(s.h);
        if (s.c !== null) cs.push(s.c);
      }
      x = dirs === 1 ? outs[0] : cat(outs, -1);
      if (this.interLayerDropout !== null && this.training && l < this.numLayers - 1)
        x = this.interLayerDropout.call(x);
    }
    let out = !batched ? x.squeeze(1) : this.batchFirst ? x.transpose(0, 1) : x;
    if (!batched) out = out.contiguous();
    let hN = stack(hs, 0);
    let cN = cs.length > 0 ? stack(cs, 0) : null;
    if (!batched) {
      hN = hN.squeeze(1);
      cN = cN?.squeeze(1) ?? null;
    }
    return [out, this._pack(hN, cN)];
  }

  override extraRepr(): string {
    const parts = [`${this.inputSize}, ${this.hiddenSize}`];
    if (this.numLayers !== 1) parts.push(`numLayers=${this.numLayers}`);
    if (!this.bias) parts.push("bias=false");
    if (this.batchFirst) parts.push("batchFirst=true");
    if (this.dropout !== 0) parts.push(`dropout=${this.dropout}`);
    if (this.bidirectional) parts.push("bidirectional=true");
    if (this.projSize !== 0) parts.push(`projSize=${this.projSize}`);
    return parts.join(", ");
  }
}

/**
 * Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) with act tanh (default) or relu, stacked
 * `numLayers` deep, optionally bidirectional. `call(input, h0?)` returns [output, hN]:
 * input [T, B, inputSize] (or [B, T, inputSize] with batchFirst, or unbatched [T, inputSize]),
 * output [T, B, D * hiddenSize], h0 and hN [numLayers * D, B, hiddenSize] (D = 2 if bidirectional).
 *
 * @example
 * ```ts
 * const rnn = new RNN(10, 20, { numLayers: 2 });
 * const [out, hN] = rnn.call(randn([5, 3, 10])); // out [5, 3, 20], hN [2, 3, 20]
 * ```
 */
export class RNN extends RNNBase<Tensor> {
  readonly nonlinearity: "tanh" | "relu";

  constructor(inputSize: number, hiddenSize: number, opts: RNNOpts = {}) {
    const nl = opts.nonlinearity ?? "tanh";
    if (nl !== "tanh" && nl !== "relu") {
      throw new RangeError(`RNN: nonlinearity must be "tanh" or "relu", got "${String(nl)}"`);
    }
    super("RNN", nl === "tanh" ? "RNN_TANH" : "RNN_RELU", inputSize, hiddenSize, opts);
    this.nonlinearity = nl;
  }
  protected get _op(): string {
    return "RNN";
  }
  protected _unpack(hx: Tensor | undefined): [Tensor | null, Tensor | null] {
    return [hx ?? null, null];
  }
  protected _pack(h: Tensor): Tensor {
    return h;
  }
  override extraRepr(): string {
    return super.extraRepr() + (this.nonlinearity === "relu" ? ", nonlinearity=relu" : "");
  }
}

/**
 * Long short-term memory (Hochreiter and Schmidhuber, 1997), PyTorch's gates i, f, g, o, stacked and optionally
 * bidirectional, with optional projections (`projSize`, Sak et al., 2014). `call(input, [h0, c0]?)` returns
 * [output, [hN, cN]]: output [T, B, D * H'], h [numLayers * D, B, H'], c [numLayers * D, B, hiddenSize], where
 * H' is projSize if set, else hiddenSize.
 *
 * @example
 * ```ts
 * const lstm = new LSTM(28, 128, { batchFirst: true });
 * const [out, [hN, cN]] = lstm.call(images.reshape([-1, 28, 28])); // out [N, 28, 128], hN [1, N, 128]
 * ```
 */
export class LSTM extends RNNBase<[Tensor, Tensor]> {
  constructor(inputSize: number, hiddenSize: number, opts: LSTMOpts = {}) {
    super("LSTM", "LSTM", inputSize, hiddenSize, opts);
  }
  protected get _op(): string {
    return "LSTM";
  }
  protected _unpack(hx: [Tensor, Tensor] | undefined): [Tensor | null, Tensor | null] {
    if (hx === undefined) return [null, null];
    if (!Array.isArray(hx) || hx.length !== 2)
      throw new TypeError("LSTM: the initial state must be [h0, c0]");
    return [hx[0], hx[1]];
  }
  protected _pack(h: Tensor, c: Tensor | null): [Tensor, Tensor] {
    return [h, c!];
  }
}

/**
 * Gated recurrent unit (Cho et al., 2014) with PyTorch's equations (gates r, z, n; the reset gate multiplies
 * the hidden projection including its bias), stacked and optionally bidirectional. `call(input, h0?)` returns
 * [output, hN] with the shapes of RNN.
 *
 * @example
 * ```ts
 * const gru = new GRU(8, 16, { bidirectional: true });
 * const [out, hN] = gru.call(randn([7, 8])); // unbatched: out [7, 32], hN [2, 16]
 * ```
 */
export class GRU extends RNNBase<Tensor> {
  constructor(inputSize: number, hiddenSize: number, opts: RNNBaseOpts = {}) {
    super("GRU", "GRU", inputSize, hiddenSize, opts);
  }
  protected get _op(): string {
    return "GRU";
  }
  protected _unpack(hx: Tensor | undefined): [Tensor | null, Tensor | null] {
    return [hx ?? null, null];
  }
  protected _pack(h: Tensor): Tensor {
    return h;
  }
}

/** The single-step cells: parameters weight_ih, weight_hh, bias_ih, bias_hh as PyTorch's. */
abstract class CellBase<H> extends Module<[Tensor, H?], H> {
  weight_ih: Tensor;
  weight_hh: Tensor;
  bias_ih: Tensor | null;
  bias_hh: Tensor | null;

  constructor(
    op: string,
    protected readonly _mode: Mode,
    readonly inputSize: number,
    readonly hiddenSize: number,
    opts: RNNCellOpts,
  ) {
    super();
    checkSize(op, "inputSize", inputSize, 0);
    checkSize(op, "hiddenSize", hiddenSize, 1);
    const dtype = opts.dtype ?? "float32";
    const g = GATES[_mode] * hiddenSize;
    const bound = 1 / Math.sqrt(hiddenSize);
    const make = (shape: number[]) =>
      uniform(parameter(shape, dtype), -bound, bound, { generator: opts.generator });
    this.weight_ih = make([g, inputSize]);
    this.weight_hh = make([g, hiddenSize]);
    const bias = opts.bias ?? true;
    this.bias_ih = bias ? make([g]) : null;
    this.bias_hh = bias ? make([g]) : null;
  }

  protected abstract get _op(): string;

  /** One step on input [B, in] (or unbatched [in]) from h (and c) [B, H] (or [H]); zeros when not given. */
  protected _step(input: Tensor, h: Tensor | null, c: Tensor | null): Carry {
    if (autocastDtype() !== null) return autocast({ enabled: false }, () => this._step(input, h, c));
    const op = this._op;
    if ((input.ndim !== 1 && input.ndim !== 2) || input.shape[input.ndim - 1] !== this.inputSize) {
      throw new ShapeError(
        `${op}: expected input of shape [batch, ${this.inputSize}] or [${this.inputSize}], got ${fmtShape(input.shape)}`,
      );
    }
    checkDType(op, input, this.weight_ih);
    const batched = input.ndim === 2;
    const x = batched ? input : input.unsqueeze(0);
    const B = x.shape[0];
    const state = (t: Tensor | null, what: string): Tensor => {
      if (t === null) return zeros([B, this.hiddenSize], { dtype: input.dtype });
      const want = batched ? [B, this.hiddenSize] : [this.hiddenSize];
      if (t.ndim !== want.length || t.shape.some((n, i) => n !== want[i])) {
        throw new ShapeError(
          `${op}: expected ${what} of shape ${fmtShape(want)} for input ${fmtShape(input.shape)}, got ${fmtShape(t.shape)}`,
        );
      }
      return batched ? t : t.unsqueeze(0);
    };
    const w: CellWeights = {
      wIh: this.weight_ih,
      wHh: this.weight_hh,
      bIh: this.bias_ih,
      bHh: this.bias_hh,
      wHr: null,
    };
    const s = cellStep(
      this._mode,
      inputProjection(this._mode, x, w),
      { h: state(h, "hx"), c: this._mode === "LSTM" ? state(c, "cx") : null },
      w,
    );
    return batched ? s : { h: s.h.squeeze(0), c: s.c?.squeeze(0) ?? null };
  }

  override extraRepr(): string {
    return `${this.inputSize}, ${this.hiddenSize}${this.bias_ih === null ? ", bias=false" : ""}`;
  }
}

/**
 * One step of the Elman RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh). `call(input, h?)` returns h'.
 *
 * @example
 * ```ts
 * const cell = new RNNCell(10, 20);
 * let h = zeros([3, 20]);
 * for (const x of steps) h = cell.call(x, h);
 * ```
 */
export class RNNCell extends CellBase<Tensor> {
  readonly nonlinearity: "tanh" | "relu";
  constructor(
    inputSize: number,
    hiddenSize: number,
    opts: RNNCellOpts & { nonlinearity?: "tanh" | "relu" } = {},
  ) {
    const nl = opts.nonlinearity ?? "tanh";
    if (nl !== "tanh" && nl !== "relu") {
      throw new RangeError(`RNNCell: nonlinearity must be "tanh" or "relu", got "${String(nl)}"`);
    }
    super("RNNCell", nl === "tanh" ? "RNN_TANH" : "RNN_RELU", inputSize, hiddenSize, opts);
    this.nonlinearity = nl;
  }
  protected get _op(): string {
    return "RNNCell";
  }
  forward(input: Tensor, hx?: Tensor): Tensor {
    return this._step(input, hx ?? null, null).h;
  }
}

/**
 * One LSTM step. `call(input, [h, c]?)` returns [h', c'].
 *
 * @example
 * ```ts
 * const cell = new LSTMCell(10, 20);
 * const [h, c] = cell.call(randn([3, 10]));
 * ```
 */
export class LSTMCell extends CellBase<[Tensor, Tensor]> {
  constructor(inputSize: number, hiddenSize: number, opts: RNNCellOpts = {}) {
    super("LSTMCell", "LSTM", inputSize, hiddenSize, opts);
  }
  protected get _op(): string {
    return "LSTMCell";
  }
  forward(input: Tensor, hx?: [Tensor, Tensor]): [Tensor, Tensor] {
    if (hx !== undefined && (!Array.isArray(hx) || hx.length !== 2)) {
      throw new TypeError("LSTMCell: the state must be [h, c]");
    }
    const s = this._step(input, hx?.[0] ?? null, hx?.[1] ?? null);
    return [s.h, s.c!];
  }
}

/**
 * One GRU step with PyTorch's equations. `call(input, h?)` returns h'.
 *
 * @example
 * ```ts
 * const cell = new GRUCell(10, 20);
 * const h = cell.call(randn([3, 10]));
 * ```
 */
export class GRUCell extends CellBase<Tensor> {
  constructor(inputSize: number, hiddenSize: number, opts: RNNCellOpts = {}) {
    super("GRUCell", "GRU", inputSize, hiddenSize, opts);
  }
  protected get _op(): string {
    return "GRUCell";
  }
  forward(input: Tensor, hx?: Tensor): Tensor {
    return this._step(input, hx ?? null, null).h;
  }
}
