/**
 * DataLoader: iterate over a dataset in (optionally shuffled) mini-batches, PyTorch style:
 * `for (const [x, y] of loader) { ... }`. Each `for ... of` is one epoch.
 *
 * Shuffling draws one permutation per epoch from a Generator (the global one unless given), so a seeded
 * generator reproduces the whole sequence of epochs, and successive epochs see different orders because
 * the generator's stream moves on. Batches are built by the dataset's `getBatch` when it has one (a
 * TensorDataset gathers each batch with one indexSelect per tensor) and otherwise by collating the examples.
 */
import { defaultGenerator, type Generator, randperm, tensor } from "../ops/creation.ts";
import { stack } from "../ops/shape.ts";
import { ShapeError } from "../errors.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type Dataset, hasGetBatch } from "./dataset.ts";

/**
 * The type the default collate makes of a list of examples of type T: tensors and numbers become one tensor
 * with a new leading batch dim, arrays/tuples and plain objects are collated position by position.
 */
export type Collated<T> = T extends Tensor
  ? Tensor
  : T extends number | boolean
    ? Tensor
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: Collated<T[K]> }
      : T extends object
        ? { [K in keyof T]: Collated<T[K]> }
        : never;

/** Options of {@link DataLoader}. */
export interface DataLoaderOptions<T, B> {
  /** Examples per batch (default 1). */
  batchSize?: number;
  /** Visit the examples in a new random order each epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Source of the shuffling permutations (default: the global generator, seeded by manualSeed). */
  generator?: Generator;
  /** Turn a list of examples into a batch (default: {@link defaultCollate}). */
  collate?: (examples: T[]) => B;
  /**
   * The example indices of each epoch, drawn anew at each iteration (e.g. a {@link DistributedSampler}: this
   * rank's share); excludes `shuffle`.
   */
  sampler?: Sampler;
}

/** A source of example indices for a DataLoader: iterable once per epoch, with its length. */
export interface Sampler extends Iterable<number> {
  readonly length: number;
}

/**
 * Stack a list of examples into a batch: tensors are stacked along a new dim 0; numbers become a 1-d tensor
 * (int32 if all are integers in the int32 range, float32 otherwise); booleans a bool tensor; arrays and
 * plain objects are collated element by element (so [x, y] pairs give [X, Y]).
 *
 * @example
 * defaultCollate([[tensor([1, 2]), 0], [tensor([3, 4]), 1]]); // [tensor [2, 2], int32 tensor [0, 1]]
 */
export function defaultCollate<T>(examples: readonly T[]): Collated<T> {
  return collateAt(examples, "batch") as Collated<T>;
}

function collateAt(xs: readonly unknown[], where: string): unknown {
  if (xs.length === 0) throw new ShapeError("defaultCollate: cannot collate an empty list of examples");
  const first = xs[0];
  const kind = (x: unknown) =>
    x instanceof Tensor ? "tensor" : Array.isArray(x) ? "array" : x === null ? "null" : typeof x;
  const k0 = kind(first);
  xs.forEach((x, i) => {
    if (kind(x) !== k0) {
      throw new TypeError(
        `defaultCollate: at ${where}, example 0 is ${k0} but example ${i} is ${kind(x)}; examples must have one structure`,
      );
    }
  });
  if (first instanceof Tensor) return stack(xs as Tensor[], 0);
  if (typeof first === "number") {
    const nums = xs as number[];
    const ints = nums.every((v) => Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31);
    return tensor(nums, { dtype: ints ? "int32" : "float32" });
  }
  if (typeof first === "boolean") return tensor(xs as boolean[]);
  if (Array.isArray(first)) {
    const len = first.length;
    xs.forEach((x, i) => {
      if ((x as unknown[]).length !== len) {
        throw new ShapeError(
          `defaultCollate: at ${where}, example 0 has ${len} elements but example ${i} has ${(x as unknown[]).length}`,
        );
      }
    });
    return Array.from({ length: len }, (_, j) =>
      collateAt(
        xs.map((x) => (x as unknown[])[j]),
        `${where}[${j}]`,
      ),
    );
  }
  if (typeof first === "object" && first !== null && Object.getPrototypeOf(first) === Object.prototype) {
    const keys = Object.keys(first);
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      out[key] = collateAt(
        xs.map((x) => {
          const rec = x as Record<string, unknown>;
          if (!Object.hasOwn(rec, key)) {
            throw new TypeError(`defaultCollate: at ${where}, an example lacks the key '${key}'`);
          }
          return rec[key];
        }),
        `${where}.${key}`,
      );
    }
    return out;
  }
  throw new TypeError(
    `defaultCollate: at ${where}, cannot collate ${k0} values (expected tensors, numbers, booleans, arrays or plain objects); pass a collate function`,
  );
}

/**
 * Iterate over `dataset` in batches. Iterable (each iteration is an epoch); `length` is the number of
 * batches per epoch: ceil(n / batchSize), or floor(n / batchSize) with dropLast.
 *
 * @example
 * const loader = new DataLoader(new TensorDataset(images, labels), {
 *   batchSize: 64, shuffle: true, generator: new Generator(0),
 * });
 * for (let epoch = 0; epoch < 3; epoch++) {
 *   for (const [x, y] of loader) { ... } // x: [64, 1, 28, 28], y: [64]
 * }
 */
export class DataLoader<T, B = Collated<T>> implements Iterable<B> {
  readonly dataset: Dataset<T>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly generator: Generator | undefined;
  private readonly collate: ((examples: T[]) => B) | undefined;
  readonly sampler: Sampler | undefined;

  constructor(dataset: Dataset<T>, opts: DataLoaderOptions<T, B> = {}) {
    const batchSize = opts.batchSize ?? 1;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    }
    if (!Number.isInteger(dataset.length) || dataset.length < 0) {
      throw new RangeError(
        `DataLoader: dataset.length must be a non-negative integer, got ${dataset.length}`,
      );
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = opts.shuffle ?? false;
    this.dropLast = opts.dropLast ?? false;
    this.generator = opts.generator;
    this.collate = opts.collate;
    this.sampler = opts.sampler;
    if (this.sampler !== undefined && this.shuffle) {
      throw new TypeError(
        "DataLoader: sampler and shuffle exclude each other (the sampler decides the order)",
      );
    }
  }

  /** Number of batches in one epoch. */
  get length(): number {
    const n = this.sampler?.length ?? this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /**
   * The example order of the next epoch: 0..n-1, or a fresh permutation from the generator when shuffling.
   * Each call to the iterator calls this once.
   */
  private epochOrder(): Int32Array {
    const n = this.dataset.length;
    if (this.sampler !== undefined) {
      const order = Int32Array.from(this.sampler);
      for (const i of order) {
        if (!(i >= 0 && i < n))
          throw new RangeError(`DataLoader: the sampler gave index ${i}, outside [0, ${n})`);
      }
      return order;
    }
    if (this.shuffle) {
      return randperm(n, { generator: this.generator ?? defaultGenerator }).dataSync() as Int32Array;
    }
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return order;
  }

  /** One epoch of batches. The permutation is drawn when iteration starts. */
  *[Symbol.iterator](): Iterator<B> {
    const order = this.epochOrder();
    const batches = this.length;
    const ds = this.dataset;
    const useGetBatch = this.collate === undefined && hasGetBatch(ds);
    for (let b = 0; b < batches; b++) {
      const ix = order.subarray(b * this.batchSize, Math.min((b + 1) * this.batchSize, order.length));
      if (useGetBatch) {
        yield ds.getBatch(ix) as B;
      } else {
        const examples = Array.from(ix, (i) => ds.get(i));
        yield this.collate === undefined ? (defaultCollate(examples) as B) : this.collate(examples);
      }
    }
  }
}
