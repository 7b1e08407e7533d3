/**
 * DistributedSampler: the share of a dataset one rank of a data-parallel job visits each epoch, as PyTorch's.
 *
 * Every rank draws the same permutation (seeded by `seed + epoch`, so call `setEpoch` at each epoch for a new
 * order) and takes every numReplicas-th index starting at its rank. Without `dropLast` the list is padded by
 * repeating its beginning, so every rank gets ceil(n / numReplicas) indices; with it the tail is dropped
 * and each rank gets floor(n / numReplicas). Browser-safe: the rank and replica count are plain numbers
 * (`distributed.getRank()` / `getWorldSize()` under Node).
 */
import { Generator, randperm } from "../ops/creation.ts";
import type { Sampler } from "./dataloader.ts";

/** Options of {@link DistributedSampler}. */
export interface DistributedSamplerOptions {
  /** Number of ranks sharing the dataset (the world size). */
  numReplicas: number;
  /** This rank, 0 ... numReplicas - 1. */
  rank: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Seed of the shuffle, the same on every rank (default 0). */
  seed?: number;
  /** Drop the tail that does not divide evenly instead of padding (default false). */
  dropLast?: boolean;
}

/**
 * @example
 * ```ts
 * const sampler = new data.DistributedSampler(ds, { numReplicas: distributed.getWorldSize(), rank: distributed.getRank() });
 * const loader = new data.DataLoader(ds, { batchSize: 32, sampler });
 * for (let epoch = 0; epoch < 10; epoch++) {
 *   sampler.setEpoch(epoch);
 *   for (const [x, y] of loader) { ... }
 * }
 * ```
 */
export class DistributedSampler implements Sampler {
  readonly numReplicas: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** Indices per rank and epoch. */
  readonly length: number;
  /** numReplicas x length: the padded (or cut) dataset length. */
  readonly totalSize: number;
  #epoch = 0;

  constructor(
    readonly dataset: { readonly length: number },
    opts: DistributedSamplerOptions,
  ) {
    const { numReplicas, rank } = opts;
    if (!Number.isInteger(numReplicas) || numReplicas < 1) {
      throw new RangeError(`DistributedSampler: numReplicas must be a positive integer, got ${numReplicas}`);
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= numReplicas) {
      throw new RangeError(
        `DistributedSampler: rank must be an integer in [0, ${numReplicas - 1}], got ${rank}`,
      );
    }
    this.numReplicas = numReplicas;
    this.rank = rank;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? false;
    const n = dataset.length;
    this.length =
      this.dropLast && n % numReplicas !== 0
        ? Math.ceil((n - numReplicas) / numReplicas)
        : Math.ceil(n / numReplicas);
    if (this.length < 0) this.length = 0;
    this.totalSize = this.length * numReplicas;
  }

  /** The epoch whose order the next iteration draws (shuffle seed = seed + epoch). */
  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch < 0) {
      throw new RangeError(`DistributedSampler.setEpoch: expected a non-negative integer, got ${epoch}`);
    }
    this.#epoch = epoch;
  }

  get epoch(): number {
    return this.#epoch;
  }

  *[Symbol.iterator](): Iterator<number> {
    const n = this.dataset.length;
    let order: number[];
    if (this.shuffle) {
      order = Array.from(randperm(n, { generator: new Generator(this.seed + this.#epoch) }).dataSync());
    } else {
      order = Array.from({ length: n }, (_, i) => i);
    }
    if (!this.dropLast) {
      // pad by repeating the beginning (several times over if the dataset is smaller than the padding)
      const padding = this.totalSize - n;
      for (let i = 0; i < padding && n > 0; i++) order.push(order[i % n]);
    } else {
      order = order.slice(0, this.totalSize);
    }
    for (let i = this.rank; i < this.totalSize; i += this.numReplicas) yield order[i];
  }
}
