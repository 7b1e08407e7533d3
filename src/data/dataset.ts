/**
 * Datasets: the indexable collections a DataLoader batches (PyTorch's map-style `Dataset`), plus the
 * standard containers: TensorDataset (rows of tensors that share a first dim), Subset (a view through a list
 * of indices) and randomSplit (a seeded, disjoint, covering partition into Subsets).
 *
 * A dataset may also offer `getBatch(indices)`, which returns a whole collated batch at once. TensorDataset
 * does (one indexSelect per tensor, instead of slicing B rows and stacking them), and Subset forwards it, so
 * a DataLoader over either gathers each batch with a handful of ops whatever the batch size.
 */
import { defaultGenerator, type Generator, randperm, tensor } from "../ops/creation.ts";
import { ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * A map-style dataset: `length` examples, the i-th returned by `get(i)` for 0 <= i < length.
 *
 * @example
 * const squares: Dataset<number> = { length: 10, get: (i) => i * i };
 */
export interface Dataset<T> {
  readonly length: number;
  get(i: number): T;
}

/**
 * A dataset that can also return a whole batch, already collated, for int32 `indices` (the DataLoader uses it
 * when no custom collate function is given). `getBatch(ix)` must equal the default collate of
 * `ix.map((i) => get(i))`.
 */
export interface BatchedDataset<T, B> extends Dataset<T> {
  getBatch(indices: Int32Array): B;
}

/**
 * True if `ds` implements {@link BatchedDataset.getBatch}.
 *
 * @example
 * hasGetBatch(new TensorDataset(x, y)); // true
 */
export function hasGetBatch<T>(ds: Dataset<T>): ds is BatchedDataset<T, unknown> {
  return typeof (ds as Partial<BatchedDataset<T, unknown>>).getBatch === "function";
}

/** Throw a RangeError unless `i` is an integer index into a dataset of `length` examples. */
function checkIndex(op: string, i: number, length: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw new RangeError(`${op}: index ${i} is out of range for a dataset of ${length} examples`);
  }
}

/**
 * Examples are the rows (first-dim slices) of several tensors that share their first dim: typically
 * `new TensorDataset(images, labels)`, whose example i is `[images[i], labels[i]]`.
 *
 * @example
 * const ds = new TensorDataset(randn([100, 3]), randint(0, 2, [100]));
 * const [x, y] = ds.get(0); // x: [3], y: [] (0-d)
 * ds.getBatch(new Int32Array([4, 2])); // [x rows 4 and 2 ([2, 3]), y of shape [2]]
 */
export class TensorDataset<T extends Tensor[] = Tensor[]> implements BatchedDataset<T, T> {
  readonly tensors: T;
  readonly length: number;

  /** Throws a ShapeError if no tensor is given, a tensor is 0-d, or the first dims differ. */
  constructor(...tensors: T) {
    if (tensors.length === 0) {
      throw new ShapeError("TensorDataset: expected at least one tensor");
    }
    tensors.forEach((t, k) => {
      if (t.ndim === 0) {
        throw new ShapeError(
          `TensorDataset: tensor ${k} is 0-d (shape []); every tensor needs a first dim to index examples by`,
        );
      }
    });
    const n = tensors[0].shape[0];
    tensors.forEach((t, k) => {
      if (t.shape[0] !== n) {
        throw new ShapeError(
          `TensorDataset: all tensors must share their first dim (the number of examples); tensor 0 has shape ${fmtShape(tensors[0].shape)} but tensor ${k} has shape ${fmtShape(t.shape)}`,
        );
      }
    });
    this.tensors = tensors;
    this.length = n;
  }

  /** Example i: row i of every tensor (views, no copy). */
  get(i: number): T {
    checkIndex("TensorDataset.get", i, this.length);
    return this.tensors.map((t) => t.index(i)) as T;
  }

  /** Rows `indices` of every tensor, gathered with one indexSelect per tensor. */
  getBatch(indices: Int32Array): T {
    for (const i of indices) checkIndex("TensorDataset.getBatch", i, this.length);
    const idx = tensor(indices, { dtype: "int32" });
    return this.tensors.map((t) => t.indexSelect(0, idx)) as T;
  }
}

/**
 * The examples of `dataset` at `indices`, in that order (PyTorch's `Subset`). Indices are checked and copied.
 *
 * @example
 * const firstTen = new Subset(ds, Array.from({ length: 10 }, (_, i) => i));
 */
export class Subset<T> implements Dataset<T> {
  readonly dataset: Dataset<T>;
  readonly indices: Int32Array;

  constructor(dataset: Dataset<T>, indices: ArrayLike<number>) {
    const ix = Int32Array.from(indices);
    for (let k = 0; k < indices.length; k++) {
      if (indices[k] !== ix[k]) {
        throw new RangeError(`Subset: index ${indices[k]} at position ${k} is not a 32-bit integer`);
      }
      checkIndex("Subset", ix[k], dataset.length);
    }
    this.dataset = dataset;
    this.indices = ix;
  }

  get length(): number {
    return this.indices.length;
  }

  get(i: number): T {
    checkIndex("Subset.get", i, this.indices.length);
    return this.dataset.get(this.indices[i]);
  }

  /**
   * The batch at `indices` of this subset, through the parent's getBatch. Only call it when
   * `hasGetBatch(subset.dataset)`; {@link hasGetBatch} on a Subset checks exactly that.
   */
  get getBatch(): ((indices: Int32Array) => unknown) | undefined {
    const parent = this.dataset;
    if (!hasGetBatch(parent)) return undefined;
    return (indices: Int32Array) => {
      const mapped = new Int32Array(indices.length);
      for (let k = 0; k < indices.length; k++) {
        checkIndex("Subset.getBatch", indices[k], this.indices.length);
        mapped[k] = this.indices[indices[k]];
      }
      return parent.getBatch(mapped);
    };
  }
}

/**
 * Turn split lengths or fractions into lengths summing to `n`. Fractions (all in [0, 1], summing to 1 within
 * 1e-6) get floor(f * n) each, and the remainder is handed out one by one, in order, as PyTorch does.
 */
export function splitLengths(n: number, lengths: readonly number[]): number[] {
  const op = "randomSplit";
  if (lengths.length === 0) throw new RangeError(`${op}: expected at least one length or fraction`);
  const total = lengths.reduce((a, b) => a + b, 0);
  const allInts = lengths.every((l) => Number.isInteger(l) && l >= 0);
  if (allInts && total === n) return [...lengths];
  const fractions = lengths.every((f) => f >= 0 && f <= 1) && Math.abs(total - 1) <= 1e-6;
  if (!fractions) {
    throw new RangeError(
      `${op}: lengths [${lengths.join(", ")}] must be non-negative integers summing to the dataset length ${n}, or fractions summing to 1`,
    );
  }
  const out = lengths.map((f) => Math.floor(f * n));
  let rest = n - out.reduce((a, b) => a + b, 0);
  for (let k = 0; rest > 0; k = (k + 1) % out.length, rest--) out[k]++;
  return out;
}

/**
 * Randomly partition `dataset` into disjoint Subsets that together cover it: `lengths` are sizes summing to
 * the dataset length, or fractions summing to 1 (e.g. [0.8, 0.2]). One permutation is drawn from
 * `generator` (the global one if omitted), so a seeded generator gives the same split every run.
 *
 * @example
 * const [train, val] = randomSplit(ds, [0.9, 0.1], new Generator(42));
 */
export function randomSplit<T>(
  dataset: Dataset<T>,
  lengths: readonly number[],
  generator: Generator = defaultGenerator,
): Subset<T>[] {
  const sizes = splitLengths(dataset.length, lengths);
  const perm = randperm(dataset.length, { generator }).dataSync() as Int32Array;
  const out: Subset<T>[] = [];
  let start = 0;
  for (const len of sizes) {
    out.push(new Subset(dataset, perm.subarray(start, start + len)));
    start += len;
  }
  return out;
}
