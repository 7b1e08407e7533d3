import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import { ShapeError } from "../../src/errors.ts";
import {
  adler32,
  crc32,
  encodePng,
  heatmapPng,
  heatmapToRgb,
  tileImages,
  upscale,
  zlibStored,
} from "../../src/viz/png.ts";

/** Bit-by-bit CRC-32 (no table), independent of the implementation under test. */
function slowCrc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Adler-32 reduced at every byte, independent of the implementation under test. */
function slowAdler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const x of bytes) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return b * 65536 + a;
}

const u32 = (buf: Uint8Array, at: number) =>
  ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;

interface Decoded {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
  chunkTypes: string[];
  zlib: Uint8Array;
}

/** Decode a PNG written by encodePng: verify the signature, every CRC, IHDR, and inflate/unfilter IDAT. */
function decodePng(png: Uint8Array): Decoded {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  let o = 8;
  const chunkTypes: string[] = [];
  const idat: Uint8Array[] = [];
  let ihdr: Uint8Array | undefined;
  while (o < png.length) {
    const len = u32(png, o);
    const type = String.fromCharCode(...png.subarray(o + 4, o + 8));
    const data = png.subarray(o + 8, o + 8 + len);
    assert.equal(u32(png, o + 8 + len), slowCrc32(png.subarray(o + 4, o + 8 + len)), `CRC of ${type}`);
    chunkTypes.push(type);
    if (type === "IHDR") ihdr = data;
    if (type === "IDAT") idat.push(data);
    o += 12 + len;
  }
  assert.equal(o, png.length, "chunks end exactly at the end of the file");
  assert.ok(ihdr && ihdr.length === 13);
  const width = u32(ihdr, 0);
  const height = u32(ihdr, 4);
  assert.equal(ihdr[8], 8, "bit depth");
  const channels = { 0: 1, 2: 3, 6: 4 }[ihdr[9]!]!;
  assert.deepEqual([...ihdr.subarray(10)], [0, 0, 0]);
  const zlib = Buffer.concat(idat);
  const raw = inflateSync(zlib); // also checks the Adler-32 trailer
  const rowBytes = width * channels;
  assert.equal(raw.length, (rowBytes + 1) * height);
  const pixels = new Uint8Array(rowBytes * height);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (rowBytes + 1)], 0, "filter type None");
    pixels.set(raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1)), y * rowBytes);
  }
  return { width, height, channels, pixels, chunkTypes, zlib: new Uint8Array(zlib) };
}

/** Walk the stored deflate blocks of a zlib stream; return their lengths (checking LEN/NLEN and BFINAL). */
function storedBlockLengths(z: Uint8Array): number[] {
  assert.equal(((z[0]! << 8) | z[1]!) % 31, 0, "zlib header check bits");
  assert.equal(z[0]! & 0x0f, 8, "deflate method");
  let o = 2;
  const lens: number[] = [];
  for (;;) {
    const hdr = z[o]!;
    assert.equal((hdr >> 1) & 3, 0, "BTYPE stored");
    const len = z[o + 1]! | (z[o + 2]! << 8);
    const nlen = z[o + 3]! | (z[o + 4]! << 8);
    assert.equal(len ^ 0xffff, nlen, "NLEN is the complement of LEN");
    lens.push(len);
    o += 5 + len;
    if (hdr & 1) break;
  }
  assert.equal(o + 4, z.length, "Adler-32 trailer follows the final block");
  return lens;
}

test("crc32 and adler32 match published check values and the slow reference implementations", () => {
  const enc = new TextEncoder();
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926);
  assert.equal(adler32(enc.encode("Wikipedia")), 0x11e60398);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(adler32(new Uint8Array(0)), 1);
  const big = new Uint8Array(200_000).map((_, i) => (i * 7919 + (i >> 3)) & 0xff);
  assert.equal(crc32(big), slowCrc32(big));
  assert.equal(adler32(big), slowAdler32(big));
  const ff = new Uint8Array(100_000).fill(255); // worst case for the deferred modulo
  assert.equal(adler32(ff), slowAdler32(ff));
  // Chaining: crc of a whole equals crc of the second half continued from the first half.
  assert.equal(crc32(big, 1000, big.length, crc32(big, 0, 1000)), crc32(big));
});

test("zlibStored: inflates back to the input, blocks of at most 65535 bytes", () => {
  for (const n of [0, 1, 65535, 65536, 200_000]) {
    const data = new Uint8Array(n).map((_, i) => (i * 31) & 0xff);
    const z = zlibStored(data);
    assert.deepEqual(new Uint8Array(inflateSync(z)), data, `n = ${n}`);
    const lens = storedBlockLengths(z);
    assert.equal(
      lens.reduce((a, b) => a + b, 0),
      n,
    );
    assert.ok(lens.every((l) => l <= 65535));
    assert.equal(lens.length, Math.max(1, Math.ceil(n / 65535)));
    assert.equal(u32(z, z.length - 4), slowAdler32(data));
  }
});

test("encodePng: a 1x1 image in each colour type decodes to the same pixels", () => {
  for (const [channels, px] of [
    [1, [200]],
    [3, [10, 20, 30]],
    [4, [255, 0, 128, 64]],
  ] as const) {
    const png = encodePng(1, 1, new Uint8Array(px), channels);
    const d = decodePng(png);
    assert.deepEqual(d.chunkTypes, ["IHDR", "IDAT", "IEND"]);
    assert.deepEqual([d.width, d.height, d.channels], [1, 1, channels]);
    assert.deepEqual([...d.pixels], [...px]);
  }
});

test("encodePng: a 300x300 RGB image spans several stored blocks and round-trips exactly", () => {
  const w = 300;
  const h = 300;
  const pixels = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = 3 * (y * w + x);
      pixels[i] = x & 0xff;
      pixels[i + 1] = y & 0xff;
      pixels[i + 2] = (x ^ y) & 0xff;
    }
  }
  const d = decodePng(encodePng(w, h, pixels, 3));
  assert.deepEqual([d.width, d.height, d.channels], [300, 300, 3]);
  assert.deepEqual(d.pixels, pixels);
  const lens = storedBlockLengths(d.zlib);
  assert.equal(lens.length, Math.ceil((300 * 901) / 65535)); // 270300 filtered bytes -> 5 blocks
  assert.deepEqual(lens.slice(0, -1), [65535, 65535, 65535, 65535]);
});

test("encodePng accepts Uint8ClampedArray (canvas ImageData) and rejects bad arguments", () => {
  const d = decodePng(encodePng(2, 1, new Uint8ClampedArray([1, 2, 3, 4, 5, 6, 7, 8]), 4));
  assert.deepEqual([...d.pixels], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.throws(
    () => encodePng(2, 2, new Uint8Array(11), 3),
    (e: unknown) => e instanceof ShapeError && /pixels has length 11; expected .* = 12/.test(e.message),
  );
  assert.throws(() => encodePng(0, 1, new Uint8Array(0), 1), /positive integers, got 0 x 1/);
  // @ts-expect-error channels must be 1, 3 or 4
  assert.throws(() => encodePng(1, 1, new Uint8Array(2), 2), /channels must be 1, 3 or 4, got 2/);
});

test("heatmapToRgb: diverging map is white at 0, red at +max, blue at -max; NaN is magenta", () => {
  const rgb = heatmapToRgb([0, 2, -2, 1, Number.NaN, Number.POSITIVE_INFINITY], 3, 2, { diverging: true });
  const px = (i: number) => [...rgb.subarray(3 * i, 3 * i + 3)];
  assert.deepEqual(px(0), [247, 247, 247]);
  assert.deepEqual(px(1), [178, 24, 43]);
  assert.deepEqual(px(2), [33, 102, 172]);
  assert.deepEqual(px(3), [239, 138, 98]); // half way to red
  assert.deepEqual(px(4), [255, 0, 255]);
  assert.deepEqual(px(5), [178, 24, 43]); // +Infinity clamps to the red end
  // An explicit max fixes the scale (so several maps can share one).
  const fixed = heatmapToRgb([1], 1, 1, { diverging: true, max: 2 });
  assert.deepEqual([...fixed], [239, 138, 98]);
  // All zeros is all white, not NaN.
  assert.deepEqual([...heatmapToRgb([0, 0], 2, 1, { diverging: true })], [247, 247, 247, 247, 247, 247]);
});

test("heatmapToRgb: sequential maps stretch [min, max]; constant input maps to the low end", () => {
  const grey = heatmapToRgb([2, 3, 4], 3, 1, { colormap: "grey" });
  assert.deepEqual([...grey], [0, 0, 0, 128, 128, 128, 255, 255, 255]);
  const vir = heatmapToRgb([0, 1], 2, 1);
  assert.deepEqual([...vir], [68, 1, 84, 253, 231, 37]);
  assert.deepEqual([...heatmapToRgb([5, 5], 2, 1, { colormap: "grey" })], [0, 0, 0, 0, 0, 0]);
  const clamped = heatmapToRgb([-1, 0.5, 9], 3, 1, { colormap: "grey", min: 0, max: 1 });
  assert.deepEqual([...clamped], [0, 0, 0, 128, 128, 128, 255, 255, 255]);
  assert.throws(() => heatmapToRgb([1, 2, 3], 2, 2), /3 values for a 2 x 2 map; expected w \* h = 4/);
});

test("tileImages lays images out row by row with padding, empty cells filled", () => {
  const a = new Float32Array([1, 2, 3, 4]);
  const b = new Float32Array([5, 6, 7, 8]);
  const c = new Float32Array([9, 10, 11, 12]);
  const t = tileImages([a, b, c], 2, 2, 2, { padValue: -1 });
  assert.deepEqual([t.width, t.height], [7, 7]);
  const _ = -1;
  // biome-ignore format: the grid reads better as a picture
  assert.deepEqual([...t.data], [
    _, _, _, _, _, _, _,
    _, 1, 2, _, 5, 6, _,
    _, 3, 4, _, 7, 8, _,
    _, _, _, _, _, _, _,
    _, 9, 10, _, _, _, _,
    _, 11, 12, _, _, _, _,
    _, _, _, _, _, _, _,
  ]);
  const noPad = tileImages([a, b], 2, 2, 5, { pad: 0 });
  assert.deepEqual([noPad.width, noPad.height], [4, 2]); // only as many columns as images
  assert.deepEqual([...noPad.data], [1, 2, 5, 6, 3, 4, 7, 8]);
  assert.throws(
    () => tileImages([a, new Float32Array(3)], 2, 2, 2),
    /image 1 has 3 values; expected w \* h = 2 \* 2 = 4/,
  );
});

test("upscale repeats each pixel into a factor x factor block, for any channel count", () => {
  assert.deepEqual([...upscale(new Uint8Array([0, 255]), 2, 1, 1, 2)], [0, 0, 255, 255, 0, 0, 255, 255]);
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6]); // 1 x 2 image (w = 1, h = 2)
  const up = upscale(rgb, 1, 2, 3, 3);
  assert.equal(up.length, 3 * 6 * 3);
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 3; x++) {
      const src = y < 3 ? [1, 2, 3] : [4, 5, 6];
      assert.deepEqual([...up.subarray(3 * (y * 3 + x), 3 * (y * 3 + x) + 3)], src);
    }
  }
  assert.deepEqual(upscale(rgb, 1, 2, 3, 1), rgb);
  assert.throws(() => upscale(rgb, 1, 2, 3, 0), /factor must be a positive integer, got 0/);
  assert.throws(() => upscale(rgb, 2, 2, 3, 2), ShapeError);
});

test("heatmapPng produces a decodable, upscaled RGB PNG", () => {
  const values = new Float32Array(28 * 28).map((_, i) => (i % 28) - 14);
  const d = decodePng(heatmapPng(values, 28, 28, { diverging: true, scale: 4 }));
  assert.deepEqual([d.width, d.height, d.channels], [112, 112, 3]);
  // Column 14 has value 0 -> white; column 0 has value -14 = -max -> blue.
  assert.deepEqual([...d.pixels.subarray(3 * 56, 3 * 56 + 3)], [247, 247, 247]);
  assert.deepEqual([...d.pixels.subarray(0, 3)], [33, 102, 172]);
});
