/**
 * Transforms: functions Tensor -> Tensor applied to inputs before a model sees them. Feature scaling
 * (standardize, normalize) and data augmentation for images (randomCrop, randomHorizontalFlip), combined
 * with compose. They act on whole batches [N, C, H, W] (one random draw per image, done with a few tensor
 * ops per batch rather than a loop of per-image ops) or on single images [C, H, W].
 *
 * Typical use: fit the statistics on the training set once, then apply the same function to every split:
 *   const { transform } = standardize(train.images);
 *   const aug = compose(randomCrop(28, 2, g), randomHorizontalFlip(0.5, g), transform);
 *   for (const [x, y] of loader) { const out = model.forward(aug(x)); ... }
 */
import { defaultGenerator, type Generator, tensor } from "../ops/creation.ts";
import { noGrad } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { sqrt, where } from "../ops/math.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** A transform: a function from a tensor to a tensor. */
export type Transform = (x: Tensor) => Tensor;

/** Options of {@link standardize}. */
export interface StandardizeOptions {
  /**
   * Which statistics to compute over the training tensor:
   * - "feature": one mean/std per feature, reducing over dim 0 (stats have shape x.shape.slice(1));
   * - "channel": one per channel of images [N, C, ...], reducing over every dim but 1 (stats [C, 1, ...]);
   * - "all": one scalar mean/std.
   * Default: "channel" for 4-d input (image batches), "feature" otherwise.
   */
  per?: "feature" | "channel" | "all";
  /**
   * A std below `eps` is replaced by 1, so constant features (e.g. always-black border pixels) map to 0
   * instead of NaN, as scikit-learn's StandardScaler does. Default 1e-8.
   */
  eps?: number;
  /** Elements per chunk of rows when accumulating the statistics (default 2^22), bounding temporaries. */
  chunkElements?: number;
}

/** The result of {@link standardize}: the transform and the statistics it uses. */
export interface Standardizer {
  /** x => (x - mean) / std, broadcasting the stats (works on batches and on single examples). */
  transform: Transform;
  mean: Tensor;
  /** Population standard deviation (divisor n), with values below eps replaced by 1. */
  std: Tensor;
}

/**
 * Fit a standardizing transform on a training tensor: mean and population std (divisor n) per feature, per
 * channel or overall, so that `transform(train)` has mean 0 and std 1 in each group. Statistics are computed
 * without recording gradients, in chunks of rows (the sums accumulate in double precision in the backend).
 *
 * @example
 * const { transform, mean, std } = standardize(xTrain);            // xTrain: [N, F], stats: [F]
 * const xTestStd = transform(xTest);
 * standardize(images, { per: "channel" }).mean.shape;               // [C, 1, 1] for images [N, C, H, W]
 */
export function standardize(train: Tensor, opts: StandardizeOptions = {}): Standardizer {
  const op = "standardize";
  const per = opts.per ?? (train.ndim === 4 ? "channel" : "feature");
  const eps = opts.eps ?? 1e-8;
  if (train.dtype !== "float32" && train.dtype !== "float64") {
    throw new DTypeError(`${op}: expected a float32 or float64 tensor, got ${train.dtype}`);
  }
  if (train.ndim === 0 || train.shape[0] === 0) {
    throw new ShapeError(
      `${op}: expected a non-empty tensor with a batch dim, got shape ${fmtShape(train.shape)}`,
    );
  }
  if (per === "channel" && train.ndim < 2) {
    throw new ShapeError(
      `${op}: per-channel statistics need [N, C, ...] input, got shape ${fmtShape(train.shape)}`,
    );
  }
  // dims reduced over, and the count of elements each statistic averages
  const dims =
    per === "all"
      ? train.shape.map((_, i) => i)
      : per === "feature"
        ? [0]
        : train.shape.map((_, i) => i).filter((i) => i !== 1);
  const count = dims.reduce((c, d) => c * train.shape[d], 1);
  const n = train.shape[0];
  const rowSize = train.size / n;
  const rowsPerChunk = Math.max(1, Math.floor((opts.chunkElements ?? 1 << 22) / Math.max(1, rowSize)));
  const { mean, std } = noGrad(() => {
    const x = train.detach();
    // sum over chunks of rows: first the mean, then the squared deviations from it (two passes: stable)
    const chunkedSum = (f: (c: Tensor) => Tensor): Tensor => {
      let acc: Tensor | null = null;
      for (let s = 0; s < n; s += rowsPerChunk) {
        const part = f(x.narrow(0, s, Math.min(rowsPerChunk, n - s))).sum(dims, true);
        acc = acc === null ? part : acc.add(part);
      }
      return acc!;
    };
    const m = chunkedSum((c) => c).div(count);
    const v = chunkedSum((c) => c.sub(m).square()).div(count);
    const sd = sqrt(v);
    return { mean: m, std: where(sd.lt(eps), 1, sd) };
  });
  // keep the stats broadcastable against single examples too: drop the leading batch dim of size 1
  const squeezeBatch = (t: Tensor) => (per === "all" ? t.reshape([]) : t.squeeze(0));
  const m = squeezeBatch(mean);
  const s = squeezeBatch(std);
  return { transform: (x: Tensor) => x.sub(m).div(s), mean: m, std: s };
}

/**
 * Fixed normalization x => (x - mean) / std. Numbers apply to every element; arrays of numbers are per
 * channel (shape [C, 1, 1], so they broadcast against [N, C, H, W] and [C, H, W], as torchvision's
 * Normalize); tensors are used as given (broadcast against x).
 *
 * @example
 * const norm = normalize([0.1307], [0.3081]); // the classic MNIST statistics
 * norm(images).shape;                         // unchanged
 */
export function normalize(
  mean: number | readonly number[] | Tensor,
  std: number | readonly number[] | Tensor,
): Transform {
  const asStat = (v: number | readonly number[] | Tensor, what: string): Tensor | number => {
    if (typeof v === "number") return v;
    if (!Array.isArray(v)) return v as Tensor;
    const arr = v as readonly number[];
    if (arr.length === 0) throw new ShapeError(`normalize: ${what} must not be an empty array`);
    return tensor([...arr]).reshape([arr.length, 1, 1]);
  };
  const m = asStat(mean, "mean");
  const s = asStat(std, "std");
  const zeroStd = typeof s === "number" ? s === 0 : s.eq(0).any().item() !== 0;
  if (zeroStd) throw new RangeError("normalize: std must be non-zero");
  return (x: Tensor) => x.sub(m).div(s);
}

/** Run `f` on a batch view of x ([C, H, W] is treated as a batch of one) and restore x's rank. */
function onBatch(op: string, x: Tensor, f: (b: Tensor) => Tensor): Tensor {
  if (x.ndim === 4) return f(x);
  if (x.ndim === 3) return f(x.unsqueeze(0)).squeeze(0);
  throw new ShapeError(
    `${op}: expected an image batch [N, C, H, W] or an image [C, H, W], got shape ${fmtShape(x.shape)}`,
  );
}

/**
 * Random crop of `size` (a number for square, or [height, width]) after zero-padding each side by
 * `padding`, with an independent position per image drawn from `generator` (the global one if omitted).
 * Implemented as one pad and one gather per batch.
 *
 * @example
 * const crop = randomCrop(28, 4, new Generator(0)); // the classic "pad 4, crop back" augmentation
 * crop(batch).shape; // [N, C, 28, 28]
 */
export function randomCrop(
  size: number | readonly [number, number],
  padding = 0,
  generator: Generator = defaultGenerator,
): Transform {
  const op = "randomCrop";
  const [h, w] = typeof size === "number" ? [size, size] : size;
  if (![h, w].every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(`${op}: size must be positive integers, got ${JSON.stringify(size)}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`${op}: padding must be a non-negative integer, got ${padding}`);
  }
  return (x: Tensor) =>
    onBatch(op, x, (b) => {
      const [n, c, H, W] = b.shape;
      const hp = H + 2 * padding;
      const wp = W + 2 * padding;
      if (h > hp || w > wp) {
        throw new ShapeError(
          `${op}: crop ${h}x${w} is larger than the padded image ${hp}x${wp} (input shape ${fmtShape(x.shape)}, padding ${padding})`,
        );
      }
      const padded = padding > 0 ? b.pad([padding, padding, padding, padding]) : b;
      // out[n, c, i, j] = padded[n, c, top_n + i, left_n + j], as a gather over the flattened plane
      const plane = h * w;
      const idx = new Int32Array(n * c * plane);
      for (let k = 0; k < n; k++) {
        const top = generator.int(0, hp - h + 1);
        const left = generator.int(0, wp - w + 1);
        const base = k * c * plane;
        for (let i = 0; i < h; i++) {
          const row = (top + i) * wp + left;
          for (let j = 0; j < w; j++) idx[base + i * w + j] = row + j;
        }
        for (let ch = 1; ch < c; ch++) idx.copyWithin(base + ch * plane, base, base + plane);
      }
      const index = tensor(idx, { dtype: "int32", shape: [n, c, plane] });
      return padded
        .reshape([n, c, hp * wp])
        .gather(2, index)
        .reshape([n, c, h, w]);
    });
}

/**
 * Mirror each image left-right with probability `p` (one draw per image from `generator`, the global one if
 * omitted).
 *
 * @example
 * const flip = randomHorizontalFlip(0.5, new Generator(1));
 * flip(batch); // about half of the images mirrored
 */
export function randomHorizontalFlip(p = 0.5, generator: Generator = defaultGenerator): Transform {
  const op = "randomHorizontalFlip";
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${op}: p must be a probability in [0, 1], got ${p}`);
  return (x: Tensor) =>
    onBatch(op, x, (b) => {
      const n = b.shape[0];
      const mask = new Uint8Array(n);
      let any = false;
      for (let k = 0; k < n; k++) {
        mask[k] = generator.uniform() < p ? 1 : 0;
        any ||= mask[k] === 1;
      }
      if (!any) return b;
      return where(tensor(mask, { dtype: "bool", shape: [n, 1, 1, 1] }), b.flip(3), b);
    });
}

/**
 * Chain transforms, applied left to right: compose(f, g)(x) = g(f(x)).
 *
 * @example
 * const aug = compose(randomCrop(28, 2), randomHorizontalFlip(0.5), normalize(0.5, 0.5));
 */
export function compose(...transforms: Transform[]): Transform {
  return (x: Tensor) => transforms.reduce((acc, f) => f(acc), x);
}
