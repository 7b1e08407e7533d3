/**
 * Node helpers for IDX files: read (and gunzip) one file, or load a whole MNIST-like dataset directory
 * (MNIST, Fashion-MNIST, KMNIST: four files train/t10k x images/labels, gzipped or not).
 *
 * Kept apart from idx.ts because it needs node:fs and node:zlib; the parser itself stays browser-compatible.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { FormatError } from "../errors.ts";
import { type IdxArray, isGzip, parseIdx } from "./idx.ts";

/**
 * Read an IDX file, gunzipping it when it starts with the gzip magic 1f 8b. Errors name the path.
 *
 * @example
 * const images = readIdxFile("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
 * images.shape; // [10000, 28, 28]
 */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array = readFileSync(path);
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new FormatError(`readIdxFile: ${path}: corrupt gzip data (${(err as Error).message})`);
    }
  }
  try {
    return parseIdx(bytes);
  } catch (err) {
    if (err instanceof FormatError) throw new FormatError(`readIdxFile: ${path}: ${err.message}`);
    throw err;
  }
}

/** One split of an MNIST-like dataset: `n` images of rows x cols bytes (0..255) and `n` integer labels. */
export interface MnistSplit {
  /** n * rows * cols pixels, row-major, 0 = background (divide by 255 for [0, 1]). */
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  rows: number;
  cols: number;
}

/** The train and test splits of an MNIST-like dataset. */
export interface MnistLike {
  train: MnistSplit;
  test: MnistSplit;
}

/** File name stems, in the spellings the common mirrors use ('-idx3-ubyte' and '.idx3-ubyte'). */
function findFile(dir: string, split: "train" | "t10k", kind: "images" | "labels"): string {
  const idx = kind === "images" ? "idx3-ubyte" : "idx1-ubyte";
  const tried: string[] = [];
  for (const stem of [`${split}-${kind}-${idx}`, `${split}-${kind}.${idx}`]) {
    for (const name of [`${stem}.gz`, stem]) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
      tried.push(name);
    }
  }
  throw new Error(`loadMnistLike: no ${split} ${kind} file in ${dir} (looked for ${tried.join(", ")})`);
}

function loadSplit(dir: string, split: "train" | "t10k"): MnistSplit {
  const imgPath = findFile(dir, split, "images");
  const lblPath = findFile(dir, split, "labels");
  const img = readIdxFile(imgPath);
  const lbl = readIdxFile(lblPath);
  if (img.type !== "uint8" || img.shape.length !== 3) {
    throw new FormatError(
      `loadMnistLike: ${imgPath}: expected uint8 images of shape [n, rows, cols], got ${img.type} of shape [${img.shape.join(", ")}]`,
    );
  }
  if (lbl.type !== "uint8" || lbl.shape.length !== 1) {
    throw new FormatError(
      `loadMnistLike: ${lblPath}: expected uint8 labels of shape [n], got ${lbl.type} of shape [${lbl.shape.join(", ")}]`,
    );
  }
  const [n, rows, cols] = img.shape;
  if (lbl.shape[0] !== n) {
    throw new FormatError(
      `loadMnistLike: ${split} split has ${n} images (${imgPath}) but ${lbl.shape[0]} labels (${lblPath})`,
    );
  }
  return { images: img.data, labels: Int32Array.from(lbl.data), n, rows, cols };
}

/**
 * Load an MNIST-like dataset directory: train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz),
 * t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz). Checks that each split has as many labels as
 * images and that both splits have the same image size. Order is the files' order (no shuffling).
 *
 * @example
 * const { train, test } = loadMnistLike("/usr/share/datasets/fashion-mnist");
 * train.n; // 60000
 */
export function loadMnistLike(dir: string): MnistLike {
  const train = loadSplit(dir, "train");
  const test = loadSplit(dir, "t10k");
  if (train.rows !== test.rows || train.cols !== test.cols) {
    throw new FormatError(
      `loadMnistLike: ${dir}: train images are ${train.rows}x${train.cols} but test images are ${test.rows}x${test.cols}`,
    );
  }
  return { train, test };
}
