/**
 * Transformer layers (Vaswani et al., 2017) with PyTorch 1.13's names, options, defaults and parameter names:
 * `TransformerEncoderLayer`, `TransformerDecoderLayer`, and the stacks `TransformerEncoder` and
 * `TransformerDecoder` (deep copies of one layer, as PyTorch). Post-norm by default, pre-norm with
 * `normFirst`. Compositions of MultiheadAttention, Linear, LayerNorm and Dropout.
 */
import type { DType } from "../dtype.ts";
import type { Generator } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { MultiheadAttention } from "./attention.ts";
import { ModuleList } from "./container.ts";
import { Dropout } from "./dropout.ts";
import { Linear } from "./linear.ts";
import { type AnyModule, Module } from "./module.ts";
import { LayerNorm } from "./norm.ts";

/** Options of the Transformer layers (PyTorch 1.13's defaults). */
export interface TransformerLayerOpts {
  /** Width of the feed-forward block (default 2048). */
  dimFeedforward?: number;
  /** Dropout probability everywhere: attention weights, after attention, inside and after the FF block (0.1). */
  dropout?: number;
  /** The feed-forward activation (default "relu"; "gelu" is the exact erf form). */
  activation?: "relu" | "gelu" | ((x: Tensor) => Tensor);
  /** LayerNorm epsilon (default 1e-5). */
  layerNormEps?: number;
  /** Inputs [N, L, E] instead of [L, N, E] (default false). */
  batchFirst?: boolean;
  /** Pre-norm: x + f(norm(x)) instead of post-norm norm(x + f(x)) (default false). */
  normFirst?: boolean;
  /** Generator of the dropout masks; default the global one. */
  generator?: Generator;
  dtype?: DType;
}

/** Mask options of TransformerEncoderLayer / TransformerEncoder calls (MultiheadAttention's conventions). */
export interface EncoderCallOpts {
  /** [L, L] or [N * nhead, L, L]: bool true = not allowed to attend; float: added to the scores. */
  srcMask?: Tensor | null;
  /** [N, L]: bool true = padding (ignored as a key); float: added. */
  srcKeyPaddingMask?: Tensor | null;
  /** Causal self-attention when srcMask is not given. */
  isCausal?: boolean;
}

/** Mask options of TransformerDecoderLayer / TransformerDecoder calls. */
export interface DecoderCallOpts {
  tgtMask?: Tensor | null;
  memoryMask?: Tensor | null;
  tgtKeyPaddingMask?: Tensor | null;
  memoryKeyPaddingMask?: Tensor | null;
  /** Causal self-attention when tgtMask is not given. */
  tgtIsCausal?: boolean;
}

function activationFn(op: string, a: TransformerLayerOpts["activation"]): (x: Tensor) => Tensor {
  if (a === undefined || a === "relu") return (x) => x.relu();
  if (a === "gelu") return (x) => x.gelu();
  if (typeof a === "function") return a;
  throw new RangeError(`${op}: activation must be "relu", "gelu" or a function, got ${String(a)}`);
}

/** A fresh module from `make` with `src`'s parameters, buffers and training flags (a deep copy). */
function copyOf<M extends AnyModule>(src: M, make: () => M): M {
  const m = make();
  m.loadStateDict(src.stateDict());
  const from = src.modules();
  m.modules().forEach((c, i) => {
    c.training = from[i].training;
  });
  return m;
}

/**
 * Self-attention then a feed-forward block, each with a residual connection, dropout and LayerNorm
 * (PyTorch 1.13's nn.TransformerEncoderLayer; parameters self_attn.*, linear1.*, linear2.*, norm1.*, norm2.*).
 *
 * @example
 * ```ts
 * const layer = new nn.TransformerEncoderLayer(64, 4, { dimFeedforward: 256, batchFirst: true });
 * layer.call(randn([8, 20, 64]));                                  // [8, 20, 64]
 * layer.call(x, { srcKeyPaddingMask: pad, isCausal: true });
 * ```
 */
export class TransformerEncoderLayer extends Module<[Tensor, EncoderCallOpts?], Tensor> {
  self_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  readonly normFirst: boolean;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  readonly #act: (x: Tensor) => Tensor;
  readonly #opts: TransformerLayerOpts;

  constructor(
    readonly dModel: number,
    readonly nhead: number,
    opts: TransformerLayerOpts = {},
  ) {
    super();
    this.#opts = { ...opts };
    const p = opts.dropout ?? 0.1;
    const { dtype, generator } = opts;
    const ff = opts.dimFeedforward ?? 2048;
    const eps = opts.layerNormEps ?? 1e-5;
    this.self_attn = new MultiheadAttention(dModel, nhead, {
      dropout: p,
      batchFirst: opts.batchFirst,
      generator,
      dtype,
    });
    this.linear1 = new Linear(dModel, ff, { dtype });
    this.dropout = new Dropout(p, { generator });
    this.linear2 = new Linear(ff, dModel, { dtype });
    this.normFirst = opts.normFirst ?? false;
    this.norm1 = new LayerNorm(dModel, { eps, dtype });
    this.norm2 = new LayerNorm(dModel, { eps, dtype });
    this.dropout1 = new Dropout(p, { generator });
    this.dropout2 = new Dropout(p, { generator });
    this.#act = activationFn("TransformerEncoderLayer", opts.activation);
  }

  forward(src: Tensor, opts: EncoderCallOpts = {}): Tensor {
    const sa = (x: Tensor) =>
      this.dropout1.call(
        this.self_attn.call(x, x, x, {
          attnMask: opts.srcMask,
          keyPaddingMask: opts.srcKeyPaddingMask,
          isCausal: opts.isCausal,
          needWeights: false,
        })[0],
      );
    const ff = (x: Tensor) =>
      this.dropout2.call(this.linear2.call(this.dropout.call(this.#act(this.linear1.call(x)))));
    let x = src;
    if (this.normFirst) {
      x = x.add(sa(this.norm1.call(x)));
      x = x.add(ff(this.norm2.call(x)));
    } else {
      x = this.norm1.call(x.add(sa(x)));
      x = this.norm2.call(x.add(ff(x)));
    }
    return x;
  }

  /** A deep copy: same options, parameters copied, training flags kept. */
  clone(): TransformerEncoderLayer {
    return copyOf(this, () => new TransformerEncoderLayer(this.dModel, this.nhead, this.#opts));
  }

  override extraRepr(): string {
    return `dModel=${this.dModel}, nhead=${this.nhead}, normFirst=${this.normFirst}`;
  }
}

/**
 * Self-attention, cross-attention over `memory`, then a feed-forward block, each with a residual connection,
 * dropout and LayerNorm (PyTorch 1.13's nn.TransformerDecoderLayer; parameters self_attn.*, multihead_attn.*,
 * linear1.*, linear2.*, norm1.*, norm2.*, norm3.*).
 *
 * @example
 * ```ts
 * const layer = new nn.TransformerDecoderLayer(64, 4, { batchFirst: true });
 * layer.call(tgt, memory, { tgtIsCausal: true }); // tgt [N, T, 64], memory [N, S, 64] -> [N, T, 64]
 * ```
 */
export class TransformerDecoderLayer extends Module<[Tensor, Tensor, DecoderCallOpts?], Tensor> {
  self_attn: MultiheadAttention;
  multihead_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  readonly normFirst: boolean;
  norm1: LayerNorm;
  norm2: LayerNorm;
  norm3: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  dropout3: Dropout;
  readonly #act: (x: Tensor) => Tensor;
  readonly #opts: TransformerLayerOpts;

  constructor(
    readonly dModel: number,
    readonly nhead: number,
    opts: TransformerLayerOpts = {},
  ) {
    super();
    this.#opts = { ...opts };
    const p = opts.dropout ?? 0.1;
    const { dtype, generator } = opts;
    const ff = opts.dimFeedforward ?? 2048;
    const eps = opts.layerNormEps ?? 1e-5;
    const mha = () =>
      new MultiheadAttention(dModel, nhead, { dropout: p, batchFirst: opts.batchFirst, generator, dtype });
    this.self_attn = mha();
    this.multihead_attn = mha();
    this.linear1 = new Linear(dModel, ff, { dtype });
    this.dropout = new Dropout(p, { generator });
    this.linear2 = new Linear(ff, dModel, { dtype });
    this.normFirst = opts.normFirst ?? false;
    this.norm1 = new LayerNorm(dModel, { eps, dtype });
    this.norm2 = new LayerNorm(dModel, { eps, dtype });
    this.norm3 = new LayerNorm(dModel, { eps, dtype });
    this.dropout1 = new Dropout(p, { generator });
    this.dropout2 = new Dropout(p, { generator });
    this.dropout3 = new Dropout(p, { generator });
    this.#act = activationFn("TransformerDecoderLayer", opts.activation);
  }

  forward(tgt: Tensor, memory: Tensor, opts: DecoderCallOpts = {}): Tensor {
    const sa = (x: Tensor) =>
      this.dropout1.call(
        this.self_attn.call(x, x, x, {
          attnMask: opts.tgtMask,
          keyPaddingMask: opts.tgtKeyPaddingMask,
          isCausal: opts.tgtIsCausal,
          needWeights: false,
        })[0],
      );
    const mha = (x: Tensor) =>
      this.dropout2.call(
        this.multihead_attn.call(x, memory, memory, {
          attnMask: opts.memoryMask,
          keyPaddingMask: opts.memoryKeyPaddingMask,
          needWeights: false,
        })[0],
      );
    const ff = (x: Tensor) =>
      this.dropout3.call(this.linear2.call(this.dropout.call(this.#act(this.linear1.call(x)))));
    let x = tgt;
    if (this.normFirst) {
      x = x.add(sa(this.norm1.call(x)));
      x = x.add(mha(this.norm2.call(x)));
      x = x.add(ff(this.norm3.call(x)));
    } else {
      x = this.norm1.call(x.add(sa(x)));
      x = this.norm2.call(x.add(mha(x)));
      x = this.norm3.call(x.add(ff(x)));
    }
    return x;
  }

  /** A deep copy: same options, parameters copied, training flags kept. */
  clone(): TransformerDecoderLayer {
    return copyOf(this, () => new TransformerDecoderLayer(this.dModel, this.nhead, this.#opts));
  }

  override extraRepr(): string {
    return `dModel=${this.dModel}, nhead=${this.nhead}, normFirst=${this.normFirst}`;
  }
}

function checkLayers(op: string, numLayers: number): void {
  if (!Number.isInteger(numLayers) || numLayers < 1) {
    throw new RangeError(`${op}: numLayers must be an integer >= 1, got ${numLayers}`);
  }
}

/**
 * `numLayers` deep copies of an encoder layer applied in order, then an optional final norm (PyTorch 1.13's
 * nn.TransformerEncoder; parameters layers.0.*, layers.1.*, ..., norm.*). The copies start equal to `layer`
 * and are trained independently; `layer` itself is not part of the stack.
 *
 * @example
 * ```ts
 * const enc = new nn.TransformerEncoder(new nn.TransformerEncoderLayer(64, 4), 6, { norm: new nn.LayerNorm(64) });
 * ```
 */
export class TransformerEncoder extends Module<[Tensor, EncoderCallOpts?], Tensor> {
  layers: ModuleList<TransformerEncoderLayer>;
  norm: Module | null;

  constructor(
    layer: TransformerEncoderLayer,
    readonly numLayers: number,
    opts: { norm?: Module | null } = {},
  ) {
    super();
    checkLayers("TransformerEncoder", numLayers);
    this.layers = new ModuleList(Array.from({ length: numLayers }, () => layer.clone()));
    this.norm = opts.norm ?? null;
  }

  forward(src: Tensor, opts: EncoderCallOpts = {}): Tensor {
    let x = src;
    for (const l of this.layers) x = l.call(x, opts);
    return this.norm === null ? x : this.norm.call(x);
  }
}

/**
 * `numLayers` deep copies of a decoder layer applied in order to (tgt, memory), then an optional final norm
 * (PyTorch 1.13's nn.TransformerDecoder).
 *
 * @example
 * ```ts
 * const dec = new nn.TransformerDecoder(new nn.TransformerDecoderLayer(64, 4), 2);
 * dec.call(tgt, memory, { tgtIsCausal: true });
 * ```
 */
export class TransformerDecoder extends Module<[Tensor, Tensor, DecoderCallOpts?], Tensor> {
  layers: ModuleList<TransformerDecoderLayer>;
  norm: Module | null;

  constructor(
    layer: TransformerDecoderLayer,
    readonly numLayers: number,
    opts: { norm?: Module | null } = {},
  ) {
    super();
    checkLayers("TransformerDecoder", numLayers);
    this.layers = new ModuleList(Array.from({ length: numLayers }, () => layer.clone()));
    this.norm = opts.norm ?? null;
  }

  forward(tgt: Tensor, memory: Tensor, opts: DecoderCallOpts = {}): Tensor {
    let x = tgt;
    for (const l of this.layers) x = l.call(x, memory, opts);
    return this.norm === null ? x : this.norm.call(x);
  }
}
