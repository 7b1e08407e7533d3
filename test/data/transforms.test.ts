/**
 * Transforms: standardize (mean 0 / std 1 on the training data per feature, per channel and overall; stats
 * against a float64 hand computation; constant features; chunking), normalize, randomCrop and
 * randomHorizontalFlip (shapes, hand-checked values, replayed random draws), compose.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compose,
  normalize,
  randomCrop,
  randomHorizontalFlip,
  standardize,
} from "../../src/data/transforms.ts";
import { arange, Generator, randn, ShapeError, tensor } from "../../src/index.ts";
import type { Tensor } from "../../src/index.ts";

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
}

/** Per-column mean and population std of a row-major [n, f] array, in float64. */
function columnStats(data: ArrayLike<number>, n: number, f: number): { mean: number[]; std: number[] } {
  const mean = new Array(f).fill(0);
  const sq = new Array(f).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) mean[j] += data[i * f + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) sq[j] += (data[i * f + j] - mean[j]) ** 2 / n;
  return { mean, std: sq.map(Math.sqrt) };
}

test("standardize per feature: stats match a float64 computation, train becomes mean 0 / std 1", () => {
  const g = new Generator(0);
  const n = 500;
  // features with different offsets and scales
  const x = randn([n, 3], { generator: g })
    .mul(tensor([1, 10, 0.1]))
    .add(tensor([5, -3, 100]));
  const { transform, mean, std } = standardize(x);
  assert.deepEqual(mean.shape, [3]);
  assert.deepEqual(std.shape, [3]);
  const ref = columnStats(x.dataSync(), n, 3);
  (mean.toArray() as number[]).forEach((m, j) => {
    close(m, ref.mean[j], 1e-4 * Math.abs(ref.mean[j]) + 1e-5, "mean");
  });
  (std.toArray() as number[]).forEach((s, j) => {
    close(s, ref.std[j], 1e-4 * ref.std[j], "std");
  });
  const z = transform(x);
  const zs = columnStats(z.dataSync(), n, 3);
  zs.mean.forEach((m) => {
    close(m, 0, 1e-4, "standardized mean");
  });
  zs.std.forEach((s) => {
    close(s, 1, 1e-4, "standardized std");
  });
  // the same transform applies to a single example
  assert.deepEqual(transform(x.index(0)).shape, [3]);
});

test("standardize per channel on images: stats [C, 1, 1], every channel mean 0 / std 1", () => {
  const g = new Generator(1);
  const x = randn([20, 2, 4, 5], { generator: g })
    .mul(tensor([2, 0.5]).reshape([2, 1, 1]))
    .add(tensor([1, -7]).reshape([2, 1, 1]));
  const { transform, mean, std } = standardize(x);
  assert.deepEqual(mean.shape, [2, 1, 1]);
  const z = transform(x);
  for (let c = 0; c < 2; c++) {
    const ch = z.index(":", c).dataSync();
    const s = columnStats(ch, ch.length, 1);
    close(s.mean[0], 0, 1e-5, `channel ${c} mean`);
    close(s.std[0], 1, 1e-4, `channel ${c} std`);
  }
  close((mean.toArray() as number[][][])[1][0][0], -7, 0.2, "channel 1 mean near -7");
  close((std.toArray() as number[][][])[0][0][0], 2, 0.1, "channel 0 std near 2");
  // single image [C, H, W]
  assert.deepEqual(transform(x.index(3)).shape, [2, 4, 5]);
});

test("standardize overall, constant features map to 0, chunked sums agree", () => {
  const x = tensor([
    [1, 5],
    [3, 5],
    [5, 5],
    [7, 5],
  ]);
  const all = standardize(x, { per: "all" });
  assert.deepEqual(all.mean.shape, []);
  close(all.mean.item() as number, 4.5, 1e-6, "overall mean");
  const feat = standardize(x);
  // column 1 is constant: std replaced by 1, standardized values 0 (not NaN)
  assert.deepEqual(feat.std.toArray(), [Math.fround(Math.sqrt(5)), 1]);
  assert.deepEqual(
    (feat.transform(x).toArray() as number[][]).map((r) => r[1]),
    [0, 0, 0, 0],
  );
  const big = randn([37, 6], { generator: new Generator(4) });
  const one = standardize(big);
  const chunked = standardize(big, { chunkElements: 12 }); // 2 rows per chunk, 19 chunks
  (chunked.mean.toArray() as number[]).forEach((m, j) => {
    close(m, (one.mean.toArray() as number[])[j], 1e-6, "mean");
  });
  (chunked.std.toArray() as number[]).forEach((s, j) => {
    close(s, (one.std.toArray() as number[])[j], 1e-6, "std");
  });
  assert.throws(() => standardize(tensor([1, 2], { dtype: "int32" })), /float32 or float64/);
  assert.throws(() => standardize(tensor([1, 2]), { per: "channel" }), ShapeError);
});

test("normalize: scalar, per-channel arrays, errors", () => {
  const img = tensor([[[0, 1]], [[2, 4]]]); // [2, 1, 2]
  assert.deepEqual(normalize(1, 2)(img).toArray(), [[[-0.5, 0]], [[0.5, 1.5]]]);
  const perChannel = normalize([0, 2], [1, 2]);
  assert.deepEqual(perChannel(img).toArray(), [[[0, 1]], [[0, 1]]]);
  assert.deepEqual(perChannel(img.unsqueeze(0)).shape, [1, 2, 1, 2]);
  assert.throws(() => normalize(0, [1, 0]), /non-zero/);
  assert.throws(() => normalize([], 1), /empty/);
});

/** [n, c, h, w] with value n*1000 + c*100 + i*10 + j: every pixel says where it came from. */
function coded(n: number, c: number, h: number, w: number): Tensor {
  const data = new Float32Array(n * c * h * w);
  let k = 0;
  for (let a = 0; a < n; a++)
    for (let b = 0; b < c; b++)
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) data[k++] = a * 1000 + b * 100 + i * 10 + j;
  return tensor(data, { shape: [n, c, h, w] });
}

test("randomCrop: shapes, and each image cut at its own replayed offset (with zero padding)", () => {
  const x = coded(6, 2, 5, 5);
  const pad = 2;
  const out = randomCrop(4, pad, new Generator(9))(x);
  assert.deepEqual(out.shape, [6, 2, 4, 4]);
  const replay = new Generator(9);
  const got = out.toArray() as number[][][][];
  const offsets = new Set<string>();
  for (let a = 0; a < 6; a++) {
    const top = replay.int(0, 5 + 2 * pad - 4 + 1);
    const left = replay.int(0, 5 + 2 * pad - 4 + 1);
    offsets.add(`${top},${left}`);
    for (let b = 0; b < 2; b++)
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++) {
          const si = top + i - pad;
          const sj = left + j - pad;
          const inside = si >= 0 && si < 5 && sj >= 0 && sj < 5;
          const want = inside ? a * 1000 + b * 100 + si * 10 + sj : 0;
          assert.equal(got[a][b][i][j], want, `image ${a} channel ${b} at ${i},${j}`);
        }
  }
  assert.ok(offsets.size > 1, "images get different offsets");
  // rectangular crop of a single image, no padding
  const single = randomCrop([2, 3], 0, new Generator(1))(coded(1, 3, 4, 4).index(0));
  assert.deepEqual(single.shape, [3, 2, 3]);
  // full-size crop without padding is the identity
  assert.deepEqual(randomCrop(5)(x).toArray(), x.toArray());
  assert.throws(() => randomCrop(8, 1)(x), /larger than the padded image 7x7/);
  assert.throws(() => randomCrop(3)(tensor([1, 2])), /\[N, C, H, W\]/);
});

test("randomHorizontalFlip: hand-checked flip, p = 0 and 1, per-image draws replayed", () => {
  const img = tensor([
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
  ]); // [1, 2, 3]
  assert.deepEqual(randomHorizontalFlip(1)(img).toArray(), [
    [
      [3, 2, 1],
      [6, 5, 4],
    ],
  ]);
  assert.deepEqual(randomHorizontalFlip(0)(img).toArray(), img.toArray());
  const x = coded(8, 1, 2, 3);
  const out = randomHorizontalFlip(0.5, new Generator(3))(x).toArray() as number[][][][];
  const replay = new Generator(3);
  let flipped = 0;
  for (let a = 0; a < 8; a++) {
    const f = replay.uniform() < 0.5;
    if (f) flipped++;
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) assert.equal(out[a][0][i][j], a * 1000 + i * 10 + (f ? 2 - j : j));
  }
  assert.ok(flipped > 0 && flipped < 8, "a fair coin flips some images but not all");
  assert.throws(() => randomHorizontalFlip(1.5), /probability/);
});

test("compose applies left to right", () => {
  const x = arange(0, 3, 1, { dtype: "float32" }).reshape([1, 1, 1, 3]);
  const f = compose(randomHorizontalFlip(1), normalize(1, 2));
  assert.deepEqual(f(x).toArray(), [[[[0.5, 0, -0.5]]]]);
  assert.deepEqual(compose()(x).toArray(), x.toArray());
});
