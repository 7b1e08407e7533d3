/**
 * The character-level language model of `chainrule train --model transformer`: a small decoder-only
 * Transformer (GPT-style: token and learned position embeddings, pre-norm TransformerEncoderLayers with causal
 * self-attention and GELU, a final LayerNorm, a Linear head over the vocabulary), described by a JSON
 * `TextModelSpec` stored in model.safetensors so `chainrule sample` can rebuild it. The vocabulary (the
 * characters of the corpus, in code-point order) is part of the spec.
 */
import { FormatError } from "../errors.ts";
import { arange, type Generator } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Embedding } from "../nn/embedding.ts";
import { normal } from "../nn/init.ts";
import { Linear } from "../nn/linear.ts";
import { Module } from "../nn/module.ts";
import { LayerNorm } from "../nn/norm.ts";
import { recycle } from "../nn/recycle.ts";
import "../nn/recycle-classes.ts";
import { TransformerEncoder, TransformerEncoderLayer } from "../nn/transformer.ts";

/** Metadata key of a text model's spec in model.safetensors (an image model uses "chainrule.model"). */
export const TEXT_MODEL_META = "chainrule.textmodel";

/** Everything needed to rebuild a character-level Transformer. */
export interface TextModelSpec {
  name: "transformer";
  /** The characters the model reads and writes; token k is vocab[k] (one Unicode code point each). */
  vocab: string[];
  layers: number;
  width: number;
  heads: number;
  /** Longest input the model takes (its position embeddings). */
  context: number;
  /** Dropout probability inside the layers (training mode only). */
  dropout: number;
}

/** Bounds of a spec read from a file (far beyond anything trained here; 2^27 parameters at most). */
export const TEXT_SPEC_LIMITS = {
  vocab: 65_536,
  layers: 64,
  width: 8192,
  heads: 256,
  context: 65_536,
  parameters: 2 ** 27,
} as const;

/**
 * Decoder-only Transformer over character indices: [B, T] int32 (T <= context) -> logits [B, T, vocab].
 * Parameters: tok.weight, pos.weight, blocks.layers.k.* (PyTorch's TransformerEncoderLayer names),
 * blocks.norm.*, head.*. Embeddings and Linear weights start as N(0, 0.02) (GPT-2's initialisation).
 *
 * @example
 * ```ts
 * const lm = new CharTransformer({ name: "transformer", vocab: [..."ab\n"], layers: 2, width: 32, heads: 4,
 *   context: 16, dropout: 0 });
 * lm.call(tensor([[0, 1, 2]], { dtype: "int32" })).shape; // [1, 3, 3]
 * ```
 */
export class CharTransformer extends Module {
  tok: Embedding;
  pos: Embedding;
  blocks: TransformerEncoder;
  head: Linear;

  constructor(
    readonly spec: TextModelSpec,
    opts: { generator?: Generator } = {},
  ) {
    super();
    const { width, heads, layers, context, dropout } = spec;
    const v = spec.vocab.length;
    this.tok = new Embedding(v, width);
    this.pos = new Embedding(context, width);
    const layer = new TransformerEncoderLayer(width, heads, {
      dimFeedforward: 4 * width,
      dropout,
      activation: "gelu",
      batchFirst: true,
      normFirst: true,
      generator: opts.generator,
    });
    this.blocks = new TransformerEncoder(layer, layers, { norm: new LayerNorm(width) });
    this.head = new Linear(width, v);
    for (const [name, p] of this.namedParameters()) {
      // GPT-2's N(0, 0.02) for the embeddings and the weight matrices; biases stay 0, LayerNorms at 1 and 0
      if (name.endsWith("weight") && p.ndim === 2) normal(p, 0, 0.02);
      else if (name.endsWith("bias") && !name.includes("norm")) p.detach().zero_();
    }
  }

  forward(idx: Tensor): Tensor {
    if (idx.ndim !== 2 || idx.shape[1] < 1 || idx.shape[1] > this.spec.context) {
      throw new RangeError(
        `CharTransformer: expected indices [B, T] with 1 <= T <= ${this.spec.context} (the context), got [${idx.shape.join(", ")}]`,
      );
    }
    const t = idx.shape[1];
    const x = this.tok.call(idx).add(this.pos.call(arange(t, undefined, 1, { dtype: "int32" })));
    return this.head.call(this.blocks.call(x, { isCausal: true }));
  }

  override extraRepr(): string {
    const s = this.spec;
    return `vocab=${s.vocab.length}, layers=${s.layers}, width=${s.width}, heads=${s.heads}, context=${s.context}`;
  }
}

// Its forward keeps nothing it computes (embeddings, the encoder stack, the head, all built-in): a call recycles
// its activations (nn/recycle.ts), the embeddings' and the head's included, where the stack alone did before.
recycle.roots(CharTransformer);

/** Parameter count a spec implies (embeddings, per-layer attention and feed-forward blocks, norms, head). */
export function textModelParameters(s: TextModelSpec): number {
  const v = s.vocab.length;
  const e = s.width;
  const layer = 3 * e * e + 3 * e + e * e + e + 4 * e * e + 4 * e + 4 * e * e + e + 4 * e;
  return v * e + s.context * e + s.layers * layer + 2 * e + e * v + v;
}

/**
 * Check a spec read from a file (untrusted JSON): every field, its type and the bounds of TEXT_SPEC_LIMITS.
 * Throws a FormatError naming `where`.
 */
export function checkTextSpec(spec: unknown, where = "text model spec"): TextModelSpec {
  const bad = (what: string): never => {
    throw new FormatError(`${where}: ${what}`);
  };
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) bad("expected an object");
  const s = spec as Record<string, unknown>;
  if (s.name !== "transformer") bad(`"name" must be "transformer"`);
  const L = TEXT_SPEC_LIMITS;
  const intIn = (k: string, lo: number, hi: number) => {
    const v = s[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
      bad(`"${k}" must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
    }
  };
  intIn("layers", 1, L.layers);
  intIn("width", 1, L.width);
  intIn("heads", 1, L.heads);
  intIn("context", 1, L.context);
  if ((s.width as number) % (s.heads as number) !== 0) bad(`"heads" must divide "width"`);
  if (typeof s.dropout !== "number" || !(s.dropout >= 0 && s.dropout < 1)) {
    bad(`"dropout" must be a number in [0, 1)`);
  }
  const vocab = s.vocab;
  if (
    !Array.isArray(vocab) ||
    vocab.length < 1 ||
    vocab.length > L.vocab ||
    !vocab.every((c) => typeof c === "string" && [...c].length === 1)
  ) {
    bad(`"vocab" must be an array of 1 to ${L.vocab} single characters`);
  }
  if (new Set(vocab as string[]).size !== (vocab as string[]).length) bad(`"vocab" has a repeated character`);
  const spec2 = s as unknown as TextModelSpec;
  const n = textModelParameters(spec2);
  if (n > L.parameters) bad(`the model would have ${n} parameters, more than the limit of ${L.parameters}`);
  return spec2;
}

/** Character <-> index maps of a vocabulary. */
export class Vocab {
  readonly #index = new Map<string, number>();

  constructor(readonly chars: readonly string[]) {
    chars.forEach((c, i) => {
      this.#index.set(c, i);
    });
  }

  /** The vocabulary of a text: its distinct characters (code points) in code-point order. */
  static of(text: string): Vocab {
    const set = new Set(text);
    return new Vocab([...set].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!));
  }

  get size(): number {
    return this.chars.length;
  }

  has(c: string): boolean {
    return this.#index.has(c);
  }

  /** The indices of a text's characters; throws a RangeError naming the characters not in the vocabulary. */
  encode(text: string, what = "text"): Int32Array {
    const chars = [...text];
    const out = new Int32Array(chars.length);
    const missing = new Set<string>();
    chars.forEach((c, i) => {
      const k = this.#index.get(c);
      if (k === undefined) missing.add(c);
      else out[i] = k;
    });
    if (missing.size > 0) {
      const list = [...missing].slice(0, 10).map((c) => JSON.stringify(c));
      throw new RangeError(
        `${what} has ${missing.size} character(s) not in the model's vocabulary of ${this.size}: ${list.join(", ")}${missing.size > 10 ? ", ..." : ""}`,
      );
    }
    return out;
  }

  decode(indices: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < indices.length; i++) s += this.chars[indices[i]];
    return s;
  }
}
