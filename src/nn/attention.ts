/**
 * Attention (Vaswani et al., 2017): `scaledDotProductAttention` (PyTorch 2.x's F.scaled_dot_product_attention),
 * `MultiheadAttention` (PyTorch 1.13's nn.MultiheadAttention, same parameter names so a PyTorch state dict
 * loads), and position encodings: `sinusoidalPositionEncoding` and rotary embeddings (`rotaryCosSin`,
 * `applyRotary`, GPT-NeoX/LLaMA half-split convention).
 *
 * Without dropout, attention runs the fused `sdpa` primitive (src/prims/attention.ts): one flash-style kernel
 * forward and one backward (Backend.attention / attentionBackward), which never materialise the [..., L, S]
 * score matrix (the native kernel tiles queries against keys with an online softmax; memory O(L E)). Masks are
 * passed to the kernel as additive masks broadcast by stride-0 views, so an [L, S] or [N, 1, 1, S] mask stays
 * its own size. With dropout (dropoutP > 0, a dropoutMask, or MultiheadAttention training with dropout) the
 * attention weights themselves are needed, and the composition `_attention` runs instead (softmax of masked
 * matmuls, materialising [..., L, S]); MultiheadAttention also composes when it returns its weights
 * (needWeights, the default). `_attention` stays the reference the fused path is tested against.
 *
 * Under autocast (src/amp.ts) q, k, v are cast to the autocast dtype (castLow, as for a matmul) and the fused
 * primitive runs on them as well: float32 scores, softmax and accumulation inside, the output rounded once to
 * the autocast dtype (src/prims/attention.ts), gradients flowing back through the casts to float32 leaves. A
 * float32 additive mask is cast with them (PyTorch's autocast casts every floating argument of such an op).
 * The composition, under autocast, runs two 16-bit matmuls around a float32 softmax.
 */
import { autocastDtype, castLow } from "../amp.ts";
import { checkNotJitTracing } from "../core/trace.ts";
import { type DType, isHalf } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { type Generator, ones, tensor, zeros } from "../ops/creation.ts";
import { linear } from "../ops/nn.ts";
import { cat } from "../ops/shape.ts";
import { sdpa } from "../prims/attention.ts";
import { broadcastShapes, fmtShape, shapesEqual } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { Dropout } from "./dropout.ts";
import { constant, xavierUniform } from "./init.ts";
import { Linear } from "./linear.ts";
import { Module, parameter } from "./module.ts";

/** Options of scaledDotProductAttention. */
export interface SDPAOpts {
  /**
   * Bool: attend where true (PyTorch 2.x SDPA convention; the opposite of MultiheadAttention's). Float: added
   * to the scores. Broadcast against [..., L, S].
   */
  attnMask?: Tensor | null;
  /** Probability of zeroing an attention weight (survivors scaled by 1 / (1 - p)); default 0. */
  dropoutP?: number;
  /** Attend only to keys j <= i (a top-left aligned lower-triangular mask); not together with attnMask. */
  isCausal?: boolean;
  /** Score scale; default 1 / sqrt(E), E the last dim of q. */
  scale?: number;
  /** Generator of the dropout mask; default the global one (`manualSeed`). */
  generator?: Generator;
  /**
   * The dropout mask itself ([..., L, S], 0 or 1 / (1 - p)), instead of drawing one: required under `jit`,
   * which cannot draw random numbers inside a trace.
   */
  dropoutMask?: Tensor;
}

function checkFloatMask(op: string, m: Tensor, dtype: DType): void {
  if (m.dtype !== "bool" && m.dtype !== dtype) {
    throw new DTypeError(`${op}: a mask must be bool or ${dtype} (the dtype of the scores), got ${m.dtype}`);
  }
}

/**
 * Apply a mask to scores: bool `keep` masks set the other scores to -inf, float masks are added.
 * @internal
 */
export function _applyMask(scores: Tensor, mask: Tensor, boolMeans: "keep" | "drop"): Tensor {
  if (mask.dtype === "bool")
    return scores.maskedFill(boolMeans === "keep" ? mask.logicalNot() : mask, -Infinity);
  return scores.add(mask);
}

/**
 * softmax(q k^T * scale + mask) v over the last two dims, batch dims broadcast: q [..., L, E], k [..., S, E],
 * v [..., S, Ev] -> [..., L, Ev]. Semantics of PyTorch 2.x's F.scaled_dot_product_attention: a bool attnMask
 * keeps the scores where it is true, a float one is added; isCausal keeps j <= i; dropout applies to the
 * attention weights. A row whose every score is masked gives NaN, as in PyTorch.
 *
 * @example
 * ```ts
 * const q = randn([2, 4, 10, 16]), k = randn([2, 4, 12, 16]), v = randn([2, 4, 12, 8]);
 * nn.scaledDotProductAttention(q, k, v);                    // [2, 4, 10, 8]
 * nn.scaledDotProductAttention(q, q, q, { isCausal: true }); // decoder self-attention
 * ```
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SDPAOpts = {}): Tensor {
  const op = "scaledDotProductAttention";
  // autocast: float32 q, k, v and float mask in the autocast dtype (src/amp.ts)
  q = castLow(q);
  k = castLow(k);
  v = castLow(v);
  if (opts.attnMask != null && opts.attnMask.dtype === "float32" && autocastDtype() !== null) {
    opts = { ...opts, attnMask: castLow(opts.attnMask) };
  }
  if ((opts.dropoutP ?? 0) === 0 && opts.dropoutMask === undefined && fusable(q, k, v)) {
    checkQKV(op, q, k, v);
    if (opts.isCausal && opts.attnMask != null) {
      throw new Error(`${op}: pass either attnMask or isCausal, not both (as PyTorch)`);
    }
    const mask = opts.attnMask == null ? null : _additiveMask(op, opts.attnMask, q.dtype, "keep");
    const scale = opts.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1]);
    return _fusedAttention(q, k, v, mask, opts.isCausal ?? false, scale);
  }
  return _attention(op, q, k, v, opts, "keep")[0];
}

/**
 * The fused primitive serves q, k, v of one float dtype (the composition promotes mixed dtypes): float32,
 * float64, or a 16-bit one (autocast's, after castLow; float32 inside the kernels, the output rounded once).
 */
function fusable(q: Tensor, k: Tensor, v: Tensor): boolean {
  return (
    (q.dtype === "float32" || q.dtype === "float64" || isHalf(q.dtype)) &&
    k.dtype === q.dtype &&
    v.dtype === q.dtype
  );
}

function checkQKV(op: string, q: Tensor, k: Tensor, v: Tensor): void {
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) {
    throw new ShapeError(
      `${op}: q, k, v must have at least 2 dims [..., L, E], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
  const e = q.shape[q.ndim - 1];
  const s = k.shape[k.ndim - 2];
  if (k.shape[k.ndim - 1] !== e || v.shape[v.ndim - 2] !== s) {
    throw new ShapeError(
      `${op}: expected q [..., L, E], k [..., S, E], v [..., S, Ev], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
}

/**
 * A mask as the additive mask the fused kernel reads, at the mask's own size: a float mask as it is (it must
 * have the scores' dtype), a bool one as 0 / -Infinity (`keep`: true attends; `drop`: true is masked out).
 * @internal
 */
export function _additiveMask(op: string, mask: Tensor, dtype: DType, boolMeans: "keep" | "drop"): Tensor {
  checkFloatMask(op, mask, dtype);
  if (mask.dtype !== "bool") return mask;
  return zeros(mask.shape, { dtype }).maskedFill(boolMeans === "keep" ? mask.logicalNot() : mask, -Infinity);
}

/**
 * Fused attention through the `sdpa` primitive: q [..., L, E], k [..., S, E], v [..., S, Ev], an additive mask
 * broadcastable to [..., L, S] (or null), batch dims broadcast (stride-0 views, nothing copied). Returns
 * [..., L, Ev]. Arguments are checked by the caller.
 * @internal
 */
export function _fusedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  causal: boolean,
  scale: number,
): Tensor {
  const op = "scaledDotProductAttention";
  const lead = (t: Tensor, keep: number) => t.shape.slice(0, Math.max(0, t.ndim - keep));
  let batch = broadcastShapes(op, lead(q, 2), lead(k, 2));
  batch = broadcastShapes(op, batch, lead(v, 2));
  const l = q.shape[q.ndim - 2];
  const s = k.shape[k.ndim - 2];
  if (mask !== null) {
    const full = broadcastShapes(op, [...batch, l, s], mask.shape);
    batch = full.slice(0, -2);
  }
  const to = (t: Tensor, rows: number, cols: number) => t.broadcastTo([...batch, rows, cols]);
  const ev = v.shape[v.ndim - 1];
  const out = sdpa(
    to(q, l, q.shape[q.ndim - 1]),
    to(k, s, k.shape[k.ndim - 1]),
    to(v, s, ev),
    mask === null ? null : to(mask, l, s),
    { scale, causal },
  );
  // 16-bit operands: the float32 output rounded once to their dtype
  return out.narrow(-1, 0, ev).to(q.dtype);
}

/** @internal SDPA returning [output, attention weights after dropout]. */
export function _attention(
  op: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: SDPAOpts & { dropout?: (w: Tensor) => Tensor },
  boolMeans: "keep" | "drop",
): [Tensor, Tensor] {
  // autocast: float32 q, k, v and float mask in the autocast dtype (src/amp.ts)
  q = castLow(q);
  k = castLow(k);
  v = castLow(v);
  if (opts.attnMask != null && opts.attnMask.dtype === "float32" && autocastDtype() !== null) {
    opts = { ...opts, attnMask: castLow(opts.attnMask) };
  }
  if (q.ndim < 2 || k.ndim < 2 || v.ndim < 2) {
    throw new ShapeError(
      `${op}: q, k, v must have at least 2 dims [..., L, E], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
  const e = q.shape[q.ndim - 1];
  const s = k.shape[k.ndim - 2];
  if (k.shape[k.ndim - 1] !== e || v.shape[v.ndim - 2] !== s) {
    throw new ShapeError(
      `${op}: expected q [..., L, E], k [..., S, E], v [..., S, Ev], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`,
    );
  }
  const p = opts.dropoutP ?? 0;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${op}: dropoutP must be in [0, 1], got ${p}`);
  if (opts.isCausal && opts.attnMask != null) {
    throw new Error(`${op}: pass either attnMask or isCausal, not both (as PyTorch)`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(e);
  let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
  const l = q.shape[q.ndim - 2];
  if (opts.attnMask != null) {
    checkFloatMask(op, opts.attnMask, scores.dtype);
    scores = _applyMask(scores, opts.attnMask, boolMeans);
  }
  if (opts.isCausal) scores = _applyMask(scores, causalMask(l, s), "keep");
  let w = scores.softmax(-1);
  if (opts.dropout !== undefined) w = opts.dropout(w);
  else if (opts.dropoutMask !== undefined) {
    if (!shapesEqual(opts.dropoutMask.shape, w.shape)) {
      throw new ShapeError(
        `${op}: dropoutMask must have the weights' shape ${fmtShape(w.shape)}, got ${fmtShape(opts.dropoutMask.shape)}`,
      );
    }
    w = w.mul(opts.dropoutMask);
  } else if (p > 0) {
    checkNotJitTracing(`${op} (dropoutP > 0; pass opts.dropoutMask under jit)`);
    const dtype = w.dtype === "float64" ? "float64" : "float32";
    w = w.mul(new Dropout(p, { generator: opts.generator })._drawMask(w.shape, dtype));
  }
  return [w.matmul(v), w];
}

/** The [L, S] bool mask true where j <= i (PyTorch's torch.ones(L, S).tril()). */
export function causalMask(l: number, s: number): Tensor {
  return ones([l, s]).tril().gt(0);
}

/** Options of MultiheadAttention. */
export interface MultiheadAttentionOpts {
  /** Dropout probability on the attention weights (training mode only); default 0. */
  dropout?: number;
  /** Biases of the input and output projections (default true). */
  bias?: boolean;
  /** Feature size of the keys (default embedDim). */
  kdim?: number;
  /** Feature size of the values (default embedDim). */
  vdim?: number;
  /** Inputs and output are [N, L, E] instead of [L, N, E] (default false, as PyTorch). */
  batchFirst?: boolean;
  /** Generator of the dropout masks; default the global one. */
  generator?: Generator;
  dtype?: DType;
}

/** Options of MultiheadAttention's call. */
export interface MultiheadAttentionCallOpts {
  /** [N, S] (or [S] unbatched): bool, true = ignore that key; float: added to the scores. */
  keyPaddingMask?: Tensor | null;
  /** Return the attention weights (default true). */
  needWeights?: boolean;
  /**
   * [L, S] or [N * numHeads, L, S]: bool, true = not allowed to attend (PyTorch 1.13's MHA convention, the
   * opposite of scaledDotProductAttention's); float: added to the scores.
   */
  attnMask?: Tensor | null;
  /** Average the returned weights over the heads (default true): [N, L, S], else [N, numHeads, L, S]. */
  averageAttnWeights?: boolean;
  /** Use a causal mask (j <= i) when no attnMask is given (PyTorch 2.x's hint; 1.13 has no such argument). */
  isCausal?: boolean;
}

/**
 * Multi-head attention, PyTorch 1.13's nn.MultiheadAttention: out_proj(concat_h softmax(q_h k_h^T / sqrt(d) +
 * mask) v_h) with q, k, v the input projections of query, key and value. Inputs [L, N, E] (or [N, L, E] with
 * batchFirst, or unbatched [L, E]); `call` returns [output, weights or null].
 *
 * Parameters as PyTorch's state dict, so its checkpoints load: `in_proj_weight` [3E, E] when kdim = vdim = E,
 * else `q_proj_weight`, `k_proj_weight`, `v_proj_weight`; `in_proj_bias` [3E]; `out_proj.weight`,
 * `out_proj.bias`. Initialised as PyTorch: xavier_uniform projections, zero biases. The attention dropout is
 * a child `Dropout` named `attnDropout` (no parameters; it makes the layer work with `functionalApply` and
 * jit's mask passing like any Dropout).
 *
 * @example
 * ```ts
 * const mha = new nn.MultiheadAttention(64, 8, { batchFirst: true });
 * const [y, w] = mha.call(x, x, x);        // x [N, L, 64] -> y [N, L, 64], w [N, L, L]
 * ```
 */
export class MultiheadAttention extends Module<
  [Tensor, Tensor, Tensor, MultiheadAttentionCallOpts?],
  [Tensor, Tensor | null]
> {
  readonly kdim: number;
  readonly vdim: number;
  readonly headDim: number;
  readonly batchFirst: boolean;
  readonly dropout: number;
  in_proj_weight: Tensor | null;
  q_proj_weight: Tensor | null;
  k_proj_weight: Tensor | null;
  v_proj_weight: Tensor | null;
  in_proj_bias: Tensor | null;
  out_proj: Linear;
  attnDropout: Dropout;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    opts: MultiheadAttentionOpts = {},
  ) {
    super();
    const op = "MultiheadAttention";
    if (!Number.isInteger(embedDim) || embedDim < 1)
      throw new RangeError(`${op}: embedDim must be an integer >= 1, got ${embedDim}`);
    if (!Number.isInteger(numHeads) || numHeads < 1 || embedDim % numHeads !== 0) {
      throw new RangeError(`${op}: numHeads must divide embedDim ${embedDim}, got ${numHeads}`);
    }
    const dtype = opts.dtype ?? "float32";
    this.kdim = opts.kdim ?? embedDim;
    this.vdim = opts.vdim ?? embedDim;
    this.headDim = embedDim / numHeads;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    const packed = this.kdim === embedDim && this.vdim === embedDim;
    const x = (shape: number[]) => xavierUniform(parameter(shape, dtype));
    this.in_proj_weight = packed ? x([3 * embedDim, embedDim]) : null;
    this.q_proj_weight = packed ? null : x([embedDim, embedDim]);
    this.k_proj_weight = packed ? null : x([embedDim, this.kdim]);
    this.v_proj_weight = packed ? null : x([embedDim, this.vdim]);
    const bias = opts.bias ?? true;
    this.in_proj_bias = bias ? constant(parameter([3 * embedDim], dtype), 0) : null;
    this.out_proj = new Linear(embedDim, embedDim, { bias, dtype });
    if (this.out_proj.bias !== null) constant(this.out_proj.bias, 0);
    this.attnDropout = new Dropout(this.dropout, { generator: opts.generator });
  }

  /** The projection weights of q, k and v ([E, E], [E, kdim], [E, vdim]) and their biases. */
  #projections(): [Tensor, Tensor | null][] {
    const e = this.embedDim;
    const b = this.in_proj_bias;
    const bs = b === null ? [null, null, null] : [0, 1, 2].map((i) => b.narrow(0, i * e, e));
    const w = this.in_proj_weight;
    const ws =
      w === null
        ? [this.q_proj_weight!, this.k_proj_weight!, this.v_proj_weight!]
        : [0, 1, 2].map((i) => w.narrow(0, i * e, e));
    return ws.map((wi, i) => [wi, bs[i]]);
  }

  forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    opts: MultiheadAttentionCallOpts = {},
  ): [Tensor, Tensor | null] {
    const op = "MultiheadAttention";
    const batched = query.ndim === 3;
    if (
      (query.ndim !== 2 && query.ndim !== 3) ||
      key.ndim !== query.ndim ||
      value.ndim !== query.ndim ||
      query.shape[query.ndim - 1] !== this.embedDim ||
      key.shape[key.ndim - 1] !== this.kdim ||
      value.shape[value.ndim - 1] !== this.vdim
    ) {
      const lay = this.batchFirst ? "[N, L, E]" : "[L, N, E]";
      throw new ShapeError(
        `${op}: expected query ${lay} or [L, E] with E = ${this.embedDim}, key and value of the same rank with last dims ${this.kdim} and ${this.vdim}, got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)}`,
      );
    }
    // to [N, L, E]
    const toNLE = (t: Tensor) => (!batched ? t.unsqueeze(0) : this.batchFirst ? t : t.transpose(0, 1));
    const [qIn, kIn, vIn] = [query, key, value].map(toNLE);
    const n = qIn.shape[0];
    const l = qIn.shape[1];
    const s = kIn.shape[1];
    if (kIn.shape[0] !== n || vIn.shape[0] !== n || vIn.shape[1] !== s) {
      throw new ShapeError(
        `${op}: query, key and value must share the batch size and key and value the length, got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)}`,
      );
    }
    const h = this.numHeads;
    const d = this.headDim;
    const proj = this.#projections();
    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (query === key && key === value && this.in_proj_weight !== null) {
      [q, k, v] = linear(qIn, this.in_proj_weight, this.in_proj_bias).chunk(3, -1);
    } else {
      [q, k, v] = [qIn, kIn, vIn].map((t, i) => linear(t, proj[i][0], proj[i][1]));
    }
    // [N, len, E] -> [N, H, len, d]
    const heads = (t: Tensor, len: number) => t.reshape([n, len, h, d]).permute([0, 2, 1, 3]);
    const dtype = q.dtype;
    let mask: Tensor | null = null; // additive or bool "drop", broadcast against [N, H, L, S]
    // autocast: a float32 mask in the autocast dtype, as q, k, v (the projections' outputs)
    const am = opts.attnMask == null ? null : castLow(opts.attnMask);
    if (am !== null) {
      checkFloatMask(op, am, dtype);
      if (am.ndim === 2 && am.shape[0] === l && am.shape[1] === s) mask = am;
      else if (am.ndim === 3 && am.shape[0] === n * h && am.shape[1] === l && am.shape[2] === s)
        mask = am.reshape([n, h, l, s]);
      else {
        throw new ShapeError(
          `${op}: attnMask must be [L, S] = [${l}, ${s}] or [N * numHeads, L, S] = [${n * h}, ${l}, ${s}], got ${fmtShape(am.shape)}`,
        );
      }
    }
    const causal = am === null && (opts.isCausal ?? false);
    const kpm = opts.keyPaddingMask == null ? null : castLow(opts.keyPaddingMask);
    if (kpm !== null) {
      checkFloatMask(op, kpm, dtype);
      const want = batched ? [n, s] : [s];
      if (!shapesEqual(kpm.shape, want)) {
        throw new ShapeError(`${op}: keyPaddingMask must be ${fmtShape(want)}, got ${fmtShape(kpm.shape)}`);
      }
    }
    const needWeights = opts.needWeights ?? true;
    if (!needWeights && !(this.training && this.dropout > 0) && fusable(q, k, v)) {
      // the fused kernel: masks as additive masks of their own size, the causal mask as the kernel's flag
      let m = mask === null ? null : _additiveMask(op, mask, dtype, "drop");
      if (kpm !== null) {
        const km = _additiveMask(op, kpm.reshape([n, 1, 1, s]), dtype, "drop");
        m = m === null ? km : m.add(km);
      }
      const o = _fusedAttention(heads(q, l), heads(k, s), heads(v, s), m, causal, 1 / Math.sqrt(d));
      const out = this.out_proj.call(o.permute([0, 2, 1, 3]).reshape([n, l, this.embedDim]));
      return [!batched ? out.squeeze(0) : this.batchFirst ? out : out.transpose(0, 1), null];
    }
    if (causal) mask = causalMask(l, s).logicalNot();
    const scores0 = heads(q, l)
      .matmul(heads(k, s).transpose(-2, -1))
      .mul(1 / Math.sqrt(d));
    let scores = mask === null ? scores0 : _applyMask(scores0, mask, "drop");
    if (kpm !== null) scores = _applyMask(scores, kpm.reshape([n, 1, 1, s]), "drop");
    let w = scores.softmax(-1);
    if (this.training && this.dropout > 0) w = this.attnDropout.call(w);
    const o = w.matmul(heads(v, s)).permute([0, 2, 1, 3]).reshape([n, l, this.embedDim]);
    let out = this.out_proj.call(o);
    out = !batched ? out.squeeze(0) : this.batchFirst ? out : out.transpose(0, 1);
    if (!needWeights) return [out, null];
    let weights = (opts.averageAttnWeights ?? true) ? w.mean(1) : w;
    if (!batched) weights = weights.squeeze(0);
    return [out, weights];
  }

  override extraRepr(): string {
    return `embedDim=${this.embedDim}, numHeads=${this.numHeads}, dropout=${this.dropout}, batchFirst=${this.batchFirst}`;
  }
}

/**
 * The sinusoidal position encoding of "Attention is all you need": [seqLen, dim] with
 * pe[p, 2i] = sin(p / 10000^(2i / dim)) and pe[p, 2i + 1] = cos(p / 10000^(2i / dim)) (interleaved, as the
 * PyTorch tutorial's PositionalEncoding). Computed in float64, returned in `dtype` (default float32).
 *
 * @example
 * ```ts
 * const x = tokens.add(nn.sinusoidalPositionEncoding(128, 64)); // tokens [N, 128, 64]
 * ```
 */
export function sinusoidalPositionEncoding(
  seqLen: number,
  dim: number,
  opts: { base?: number; dtype?: DType } = {},
): Tensor {
  if (!Number.isInteger(seqLen) || seqLen < 0 || !Number.isInteger(dim) || dim < 1) {
    throw new RangeError(
      `sinusoidalPositionEncoding: seqLen must be an integer >= 0 and dim >= 1, got ${seqLen}, ${dim}`,
    );
  }
  const base = opts.base ?? 10000;
  const data = new Float64Array(seqLen * dim);
  for (let p = 0; p < seqLen; p++) {
    for (let j = 0; j < dim; j++) {
      const angle = p / base ** ((2 * Math.floor(j / 2)) / dim);
      data[p * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return tensor(data, { shape: [seqLen, dim], dtype: "float64" }).to(opts.dtype ?? "float32");
}

/**
 * The cos and sin tables of rotary position embeddings (Su et al., 2021) for `positions` (a length, or the
 * positions themselves), each [P, dim]: angle[p, j] = positions[p] * base^(-2 (j mod dim/2) / dim), the
 * frequencies repeated over the two halves (the GPT-NeoX / LLaMA layout that `applyRotary` expects).
 */
export function rotaryCosSin(
  positions: number | readonly number[] | Tensor,
  dim: number,
  opts: { base?: number; dtype?: DType } = {},
): { cos: Tensor; sin: Tensor } {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) {
    throw new RangeError(`rotaryCosSin: dim must be an even integer >= 2, got ${dim}`);
  }
  const pos: number[] =
    typeof positions === "number"
      ? Array.from({ length: positions }, (_, i) => i)
      : positions instanceof Tensor
        ? Array.from(positions.to("float64").dataSync())
        : [...positions];
  const base = opts.base ?? 10000;
  const half = dim / 2;
  const c = new Float64Array(pos.length * dim);
  const s = new Float64Array(pos.length * dim);
  pos.forEach((p, r) => {
    for (let j = 0; j < dim; j++) {
      const a = p * base ** (-(2 * (j % half)) / dim);
      c[r * dim + j] = Math.cos(a);
      s[r * dim + j] = Math.sin(a);
    }
  });
  const dtype = opts.dtype ?? "float32";
  const shape = [pos.length, dim];
  return {
    cos: tensor(c, { shape, dtype: "float64" }).to(dtype),
    sin: tensor(s, { shape, dtype: "float64" }).to(dtype),
  };
}

/**
 * Rotary position embedding of x [..., P, dim] (dim even), GPT-NeoX / LLaMA convention ("half-split"): the
 * pairs rotated are (x[j], x[j + dim/2]), i.e. x * cos + rotateHalf(x) * sin with rotateHalf(x) =
 * cat(-x2, x1). (GPT-J and the original RoFormer rotate adjacent pairs (x[2i], x[2i + 1]) instead; weights
 * trained with one convention need a permutation to be used with the other.) `pos` is the positions (default
 * 0..P-1) or precomputed tables from `rotaryCosSin` (broadcast against x).
 *
 * @example
 * ```ts
 * const q = nn.applyRotary(randn([2, 8, 16, 64]));                 // positions 0..15
 * const k = nn.applyRotary(kNew, [16]);                           // one new token at position 16
 * ```
 */
export function applyRotary(
  x: Tensor,
  pos?: number[] | Tensor | { cos: Tensor; sin: Tensor },
  opts: { base?: number } = {},
): Tensor {
  const dim = x.shape[x.ndim - 1];
  if (x.ndim < 2 || dim % 2 !== 0) {
    throw new ShapeError(`applyRotary: expected x [..., P, dim] with dim even, got ${fmtShape(x.shape)}`);
  }
  const p = x.shape[x.ndim - 2];
  const tables =
    pos !== undefined && !Array.isArray(pos) && !(pos instanceof Tensor)
      ? pos
      : rotaryCosSin(pos ?? p, dim, { base: opts.base, dtype: x.dtype });
  const half = dim / 2;
  const x1 = x.narrow(-1, 0, half);
  const x2 = x.narrow(-1, half, half);
  const rotated = cat([x2.neg(), x1], -1);
  return x.mul(tables.cos).add(rotated.mul(tables.sin));
}
