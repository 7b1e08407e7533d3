/**
 * Node helpers for IDX files: read (and gunzip) one file, or load a whole MNIST-like dataset directory
 * (MNIST, Fashion-MNIST, KMNIST: four files train/t10k x images/labels, gzipped or not).
 *
 * Kept apart from idx.ts because it needs node:fs and node:zlib; the parser itself stays browser-compatible.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { constants, gunzipSync } from "node:zlib";
import { FormatError } from "../errors.ts";
import { readRegularFile } from "./files-node.ts";
import { type IdxArray, isGzip, parseIdx } from "./idx.ts";

/** Options of {@link readIdxFile}. */
export interface ReadIdxOptions {
  /** Largest accepted IDX content (after decompression), in bytes (default 1 GiB; MNIST's largest is 47 MB). */
  maxBytes?: number;
}

const DEFAULT_MAX_IDX_BYTES = 2 ** 30;
/** Element sizes by IDX type code (the full table, with the error messages, is in idx.ts). */
const ITEM_SIZE: Record<number, number> = { 8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8 };

/**
 * The first `want` decompressed bytes of a gzip stream (fewer if the stream is shorter), inflating only a
 * bounded prefix of the input: a sync flush returns what a truncated stream decodes to instead of failing.
 */
function gunzipPrefix(bytes: Uint8Array, want: number): Uint8Array {
  // Deflate expands at most ~1032x, so `take` input bytes decode to at most ~1032 * take: growing the prefix
  // from 64 bytes finds the header while never inflating more than a few MB.
  for (let take = 64; ; take *= 4) {
    const part = bytes.subarray(0, Math.min(take, bytes.length));
    const out = gunzipSync(part, {
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: 1100 * take + 4096,
    });
    if (out.length >= want || part.length === bytes.length || take >= 2 ** 16) return out;
  }
}

/**
 * Decompress a gzipped IDX file without trusting it: read the IDX header from the first decompressed bytes,
 * compute the size the header promises, and inflate with that as the output cap, so a gzip bomb stops at the
 * promised size (and the promise itself is capped by `maxBytes`).
 */
function gunzipIdx(path: string, bytes: Uint8Array, maxBytes: number): Uint8Array {
  const head = gunzipPrefix(bytes, 4 + 4 * 255);
  if (head.length < 4) {
    throw new FormatError(
      `readIdxFile: ${path}: the gzip data holds ${head.length} bytes, too short for an IDX header`,
    );
  }
  const item = ITEM_SIZE[head[2]];
  const ndim = head[3];
  if (head[0] !== 0 || head[1] !== 0 || item === undefined || head.length < 4 + 4 * ndim) {
    return head; // not an IDX header: parseIdx names what is wrong with it
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let promised = 4 + 4 * ndim;
  let elements = 1;
  for (let i = 0; i < ndim; i++) elements *= view.getUint32(4 + 4 * i, false);
  promised += elements * item;
  if (promised > maxBytes) {
    throw new FormatError(
      `readIdxFile: ${path}: the IDX header promises ${promised} bytes of data, more than the limit of ${maxBytes} (raise opts.maxBytes if the file is trusted)`,
    );
  }
  try {
    // one byte over the promise: more output than that is an error, not a larger allocation
    return gunzipSync(bytes, { maxOutputLength: promised + 1 });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new FormatError(
        `readIdxFile: ${path}: the gzip data decompresses to more than the ${promised} bytes its IDX header promises`,
      );
    }
    throw err;
  }
}

/**
 * Read an IDX file, gunzipping it when it starts with the gzip magic 1f 8b. Only regular files are read, and
 * decompression stops at the size the IDX header promises (at most `opts.maxBytes`). Errors name the path.
 *
 * @example
 * const images = readIdxFile("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
 * images.shape; // [10000, 28, 28]
 */
export function readIdxFile(path: string, opts: ReadIdxOptions = {}): IdxArray {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_IDX_BYTES;
  let bytes: Uint8Array = readRegularFile("readIdxFile", path, maxBytes);
  if (isGzip(bytes)) {
    try {
      bytes = gunzipIdx(path, bytes, maxBytes);
    } catch (err) {
      if (err instanceof FormatError) throw err;
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
