/**
 * IDX (MNIST format): parsing of hand-built files of every element type, round trips through serializeIdx,
 * every rejection, gzip handling in readIdxFile, loadMnistLike on generated directories, and (when the Debian
 * package dataset-fashion-mnist is installed) the real Fashion-MNIST files.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { FormatError } from "../../src/errors.ts";
import { type IdxArray, idxToRaw, parseIdx, serializeIdx } from "../../src/io/idx.ts";
import { loadMnistLike, readIdxFile } from "../../src/io/idx-node.ts";

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseIdx(bytes),
    (err: unknown) => {
      assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

test("parses a hand-built ubyte file: magic, big-endian dims, data", () => {
  // 0x00 0x00 0x08 0x02 | dims 2, 3 (big-endian u32) | 6 bytes
  const bytes = new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 127, 128, 254, 255]);
  const a = parseIdx(bytes);
  assert.equal(a.type, "uint8");
  assert.deepEqual(a.shape, [2, 3]);
  assert.ok(a.data instanceof Uint8Array);
  assert.deepEqual([...a.data], [0, 1, 127, 128, 254, 255]);
  bytes[12] = 99; // the result is a copy
  assert.equal(a.data[0], 0);
});

test("parses big-endian multi-byte element types", () => {
  const dims = [0, 0, 0, 2];
  const i16 = parseIdx(new Uint8Array([0, 0, 0x0b, 1, ...dims, 0x80, 0x00, 0x01, 0x02]));
  assert.equal(i16.type, "int16");
  assert.deepEqual([...i16.data], [-32768, 258]);
  const i32 = parseIdx(
    new Uint8Array([0, 0, 0x0c, 1, ...dims, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x01, 0x00, 0x00]),
  );
  assert.equal(i32.type, "int32");
  assert.deepEqual([...i32.data], [-2, 65536]);
  const f32 = parseIdx(new Uint8Array([0, 0, 0x0d, 1, ...dims, 0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0]));
  assert.equal(f32.type, "float32");
  assert.deepEqual([...f32.data], [1, -2.5]);
  const f64 = parseIdx(
    new Uint8Array([0, 0, 0x0e, 1, 0, 0, 0, 1, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]),
  );
  assert.equal(f64.type, "float64");
  assert.deepEqual([...f64.data], [Math.PI]);
  const i8 = parseIdx(new Uint8Array([0, 0, 0x09, 1, ...dims, 0xff, 0x7f]));
  assert.equal(i8.type, "int8");
  assert.deepEqual([...i8.data], [-1, 127]);
});

test("0-d and empty arrays", () => {
  const scalar = parseIdx(new Uint8Array([0, 0, 8, 0, 42]));
  assert.deepEqual(scalar.shape, []);
  assert.deepEqual([...scalar.data], [42]);
  const empty = parseIdx(new Uint8Array([0, 0, 0x0d, 2, 0, 0, 0, 0, 0, 0, 0, 5]));
  assert.deepEqual(empty.shape, [0, 5]);
  assert.equal(empty.data.length, 0);
});

test("serializeIdx round trips every type and matches the hand-built layout", () => {
  const arrays: IdxArray[] = [
    { type: "uint8", shape: [2, 2], data: new Uint8Array([0, 9, 200, 255]) },
    { type: "int8", shape: [3], data: new Int8Array([-128, 0, 127]) },
    { type: "int16", shape: [1, 2], data: new Int16Array([-300, 300]) },
    { type: "int32", shape: [2], data: new Int32Array([-2147483648, 2147483647]) },
    { type: "float32", shape: [2, 1, 1], data: new Float32Array([0.1, -Infinity]) },
    { type: "float64", shape: [], data: new Float64Array([-1e-300]) },
  ];
  for (const a of arrays) {
    const back = parseIdx(serializeIdx(a));
    assert.equal(back.type, a.type);
    assert.deepEqual(back.shape, a.shape);
    assert.deepEqual([...back.data], [...a.data]);
  }
  assert.deepEqual(
    [...serializeIdx({ type: "int16", shape: [2], data: new Int16Array([-32768, 258]) })],
    [0, 0, 0x0b, 1, 0, 0, 0, 2, 0x80, 0x00, 0x01, 0x02],
  );
  assert.throws(
    () => serializeIdx({ type: "uint8", shape: [3], data: new Uint8Array(2) }),
    /3 elements but the data holds 2/,
  );
  assert.throws(
    () => serializeIdx({ type: "uint8", shape: [-1], data: new Uint8Array(0) }),
    /invalid dimension -1/,
  );
});

test("idxToRaw widens small integers to int32 and keeps int32/float dtypes", () => {
  const u8 = idxToRaw({ type: "uint8", shape: [2], data: new Uint8Array([3, 255]) });
  assert.equal(u8.dtype, "int32");
  assert.deepEqual([...u8.data], [3, 255]);
  const i8 = idxToRaw({ type: "int8", shape: [1], data: new Int8Array([-5]) });
  assert.deepEqual([i8.dtype, [...i8.data]], ["int32", [-5]]);
  const f64 = idxToRaw({ type: "float64", shape: [1], data: new Float64Array([0.5]) });
  assert.deepEqual([f64.dtype, [...f64.data]], ["float64", [0.5]]);
  const f32 = idxToRaw({ type: "float32", shape: [1], data: new Float32Array([0.5]) });
  assert.equal(f32.dtype, "float32");
});

test("rejects wrong magic, unknown types, truncation, trailing bytes and gzip", () => {
  rejects(new Uint8Array([0, 0, 8]), /3 bytes is too short for the 4-byte IDX magic/);
  rejects(new Uint8Array([0, 1, 8, 1, 0, 0, 0, 1, 5]), /wrong magic number: .* got 0x00 0x01/);
  rejects(new Uint8Array([0x50, 0x4b, 3, 4]), /wrong magic number: .* got 0x50 0x4B/);
  rejects(new Uint8Array([0, 0, 0x0a, 1, 0, 0, 0, 1, 5]), /unknown type code 0x0A/);
  rejects(
    new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0]),
    /truncated header: 3 dimensions need 16 header bytes, the file has 10/,
  );
  rejects(
    new Uint8Array([0, 0, 0x0c, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0]),
    /truncated data: shape \[2\] of int32 needs 8 data bytes, the file has 6/,
  );
  rejects(
    new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]),
    /1 trailing bytes after the data of shape \[2\]/,
  );
  rejects(
    new Uint8Array([0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
    /truncated data: shape \[4294967295, 4294967295\]/,
  );
  rejects(gzipSync(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 7])), /gzip-compressed .* decompress it first/);
});

/** Write a small MNIST-like dataset into `dir` (train gzipped, test raw, as mirrors mix them). */
function writeDataset(dir: string, nTrain: number, nTest: number, nTrainLabels = nTrain): void {
  const images = (n: number, seed: number): IdxArray => ({
    type: "uint8",
    shape: [n, 4, 3],
    data: Uint8Array.from({ length: n * 12 }, (_, i) => (i * 37 + seed) % 256),
  });
  const labels = (n: number): IdxArray => ({
    type: "uint8",
    shape: [n],
    data: Uint8Array.from({ length: n }, (_, i) => i % 10),
  });
  writeFileSync(join(dir, "train-images-idx3-ubyte.gz"), gzipSync(serializeIdx(images(nTrain, 1))));
  writeFileSync(join(dir, "train-labels-idx1-ubyte.gz"), gzipSync(serializeIdx(labels(nTrainLabels))));
  writeFileSync(join(dir, "t10k-images-idx3-ubyte"), serializeIdx(images(nTest, 2)));
  writeFileSync(join(dir, "t10k-labels.idx1-ubyte"), serializeIdx(labels(nTest)));
}

test("readIdxFile reads raw and gzipped files and names the path in errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "chainrule-idx-"));
  try {
    const arr: IdxArray = { type: "float32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4.5]) };
    writeFileSync(join(dir, "a.idx"), serializeIdx(arr));
    writeFileSync(join(dir, "a.idx.gz"), gzipSync(serializeIdx(arr)));
    for (const name of ["a.idx", "a.idx.gz"]) {
      const back = readIdxFile(join(dir, name));
      assert.deepEqual(back.shape, [2, 2]);
      assert.deepEqual([...back.data], [1, 2, 3, 4.5]);
    }
    writeFileSync(join(dir, "bad.gz"), new Uint8Array([0x1f, 0x8b, 1, 2, 3]));
    assert.throws(() => readIdxFile(join(dir, "bad.gz")), /readIdxFile: .*bad\.gz: corrupt gzip data/);
    writeFileSync(join(dir, "trunc.gz"), gzipSync(new Uint8Array([0, 0, 8, 1, 0, 0, 0, 9, 1])));
    assert.throws(
      () => readIdxFile(join(dir, "trunc.gz")),
      /readIdxFile: .*trunc\.gz: parseIdx: truncated data/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loadMnistLike finds the four files, gzipped or not, and checks counts", () => {
  const dir = mkdtempSync(join(tmpdir(), "chainrule-mnist-"));
  try {
    writeDataset(dir, 25, 7);
    const { train, test: t } = loadMnistLike(dir);
    assert.deepEqual([train.n, train.rows, train.cols, t.n, t.rows, t.cols], [25, 4, 3, 7, 4, 3]);
    assert.equal(train.images.length, 25 * 12);
    assert.equal(train.images[5], (5 * 37 + 1) % 256);
    assert.equal(t.images[5], (5 * 37 + 2) % 256);
    assert.ok(train.labels instanceof Int32Array);
    assert.deepEqual([...t.labels], [0, 1, 2, 3, 4, 5, 6]);

    writeDataset(dir, 25, 7, 24);
    assert.throws(() => loadMnistLike(dir), /train split has 25 images .* but 24 labels/);
    writeDataset(dir, 25, 7);
    rmSync(join(dir, "t10k-labels.idx1-ubyte"));
    assert.throws(
      () => loadMnistLike(dir),
      /no t10k labels file in .* \(looked for t10k-labels-idx1-ubyte\.gz/,
    );
    writeFileSync(
      join(dir, "t10k-labels-idx1-ubyte"),
      serializeIdx({ type: "int32", shape: [7], data: new Int32Array(7) }),
    );
    assert.throws(() => loadMnistLike(dir), /expected uint8 labels of shape \[n\], got int32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const FASHION = "/usr/share/datasets/fashion-mnist";
test("reads the installed Fashion-MNIST (Debian package dataset-fashion-mnist)", {
  skip: existsSync(join(FASHION, "t10k-labels-idx1-ubyte.gz")) ? false : `${FASHION} is not installed`,
}, () => {
  const { train, test: t } = loadMnistLike(FASHION);
  assert.deepEqual([train.n, train.rows, train.cols], [60000, 28, 28]);
  assert.deepEqual([t.n, t.rows, t.cols], [10000, 28, 28]);
  for (const [split, perClass] of [
    [train, 6000],
    [t, 1000],
  ] as const) {
    const counts = new Array(10).fill(0);
    for (const l of split.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(perClass));
  }
  let max = 0;
  for (const v of t.images) max = Math.max(max, v);
  assert.equal(max, 255);
  // The first test image is an ankle boot (class 9) in the published dataset.
  assert.equal(t.labels[0], 9);
});
