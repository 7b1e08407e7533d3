/**
 * `Embedding`: a lookup table of `numEmbeddings` learned vectors of size `embeddingDim`, indexed by int32
 * tensors of any shape (an indexSelect on the weight's rows, whose gradient is a scatter-add into them).
 */
import type { DType } from "../dtype.ts";
import { DTypeError } from "../errors.ts";
import { hostValues } from "../ops/shape.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { normal } from "./init.ts";
import { Module, parameter } from "./module.ts";

/** Options of Embedding. */
export interface EmbeddingOpts {
  /** Row whose vector is zero and receives no gradient (e.g. the padding token); negative counts from the end. */
  paddingIdx?: number;
  dtype?: DType;
}

/**
 * indices [...] (int32) -> vectors [..., embeddingDim]. Weight [numEmbeddings, embeddingDim] ~ N(0, 1) as
 * PyTorch, with the paddingIdx row zeroed.
 *
 * @example
 * ```ts
 * const emb = new Embedding(1000, 64);
 * emb.call(tensor([[1, 2, 3], [4, 5, 6]], { dtype: "int32" })); // [2, 3, 64]
 * ```
 */
export class Embedding extends Module {
  weight: Tensor;
  readonly paddingIdx: number | null;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: EmbeddingOpts = {},
  ) {
    super();
    if (
      !Number.isInteger(numEmbeddings) ||
      numEmbeddings < 1 ||
      !Number.isInteger(embeddingDim) ||
      embeddingDim < 1
    ) {
      throw new RangeError(
        `Embedding: numEmbeddings and embeddingDim must be integers >= 1, got ${numEmbeddings} and ${embeddingDim}`,
      );
    }
    this.weight = normal(parameter([numEmbeddings, embeddingDim], opts.dtype ?? "float32"));
    const p = opts.paddingIdx;
    if (p === undefined) this.paddingIdx = null;
    else {
      if (!Number.isInteger(p) || p < -numEmbeddings || p >= numEmbeddings) {
        throw new RangeError(`Embedding: paddingIdx ${p} is out of range for ${numEmbeddings} embeddings`);
      }
      this.paddingIdx = p < 0 ? p + numEmbeddings : p;
      const row = this.weight.detach().narrow(0, this.paddingIdx, 1);
      row.zero_();
    }
  }

  forward(indices: Tensor): Tensor {
    if (indices.dtype !== "int32") {
      throw new DTypeError(
        `Embedding: indices must be int32, got ${indices.dtype} of shape ${fmtShape(indices.shape)} (use .int())`,
      );
    }
    const data = hostValues(indices, "Embedding");
    for (let i = 0; data !== null && i < data.length; i++) {
      if (data[i] < 0 || data[i] >= this.numEmbeddings) {
        throw new RangeError(
          `Embedding: index ${data[i]} is out of range for ${this.numEmbeddings} embeddings (indices of shape ${fmtShape(indices.shape)})`,
        );
      }
    }
    const flat = indices.reshape([indices.size]);
    let rows = this.weight.indexSelect(0, flat);
    if (this.paddingIdx !== null) {
      // multiplying by the 0/1 mask zeroes the padding rows' output and, with it, their gradient
      rows = rows.mul(flat.ne(this.paddingIdx).unsqueeze(1).to(rows.dtype));
    }
    return rows.reshape([...indices.shape, this.embeddingDim]);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}${this.paddingIdx === null ? "" : `, paddingIdx=${this.paddingIdx}`}`;
  }
}
