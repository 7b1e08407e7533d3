/**
 * Minimal PNG output for looking at tensors as pictures (weights, activations, saliency maps, image grids):
 *
 * - `encodePng` writes a valid 8-bit PNG (grey, RGB or RGBA) with no dependencies: the zlib stream uses
 *   stored (uncompressed) deflate blocks, so there is no compressor to port and it runs in any JS engine.
 *   Files are about as large as the raw pixels, which is fine for the small images this is meant for.
 * - `heatmapToRgb` maps numbers to colours: a sequential map (viridis, or grey) for images and activations,
 *   or a diverging blue-white-red map centred on 0 for signed data such as gradients.
 * - `tileImages` lays many small images out on a grid; `upscale` enlarges pixels (nearest neighbour) so a
 *   28x28 map is visible on screen.
 *
 * PNG layout (RFC 2083 / ISO 15948): 8-byte signature, then chunks of [length u32 BE][type 4 bytes][data]
 * [CRC-32 of type+data, u32 BE]: IHDR, IDAT (zlib stream of the filtered scanlines), IEND.
 */
import { ShapeError } from "../errors.ts";

/** CRC-32 lookup table for the reflected polynomial 0xEDB88320 (the CRC used by PNG, zip and gzip). */
const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 (PNG/zlib flavour) of `bytes[start, end)`, continuing from `crc` (pass the previous result to chain).
 *
 * @example crc32(new TextEncoder().encode("123456789")) // 0xcbf43926
 */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Adler-32 checksum (the zlib trailer): A = 1 + sum of bytes, B = sum of the running A values, both mod 65521.
 * Sums are reduced every 5552 bytes (zlib's NMAX: the longest run after which B still fits in 32 bits), so
 * all arithmetic stays in exact small integers.
 *
 * @example adler32(new TextEncoder().encode("Wikipedia")) // 0x11e60398
 */
export function adler32(bytes: Uint8Array): number {
  const MOD = 65521;
  let a = 1;
  let b = 0;
  let i = 0;
  while (i < bytes.length) {
    const end = Math.min(bytes.length, i + 5552);
    for (; i < end; i++) {
      a += bytes[i]!;
      b += a;
    }
    a %= MOD;
    b %= MOD;
  }
  return ((b << 16) | a) >>> 0;
}

/** Largest payload of one stored deflate block (LEN is a 16-bit field). */
const MAX_STORED = 65535;

/**
 * Wrap `data` in a zlib stream (RFC 1950) made of stored deflate blocks (RFC 1951 section 3.2.4):
 * header 0x78 0x01 (deflate, 32 KiB window, no dictionary; 0x7801 is a multiple of 31 as required), then per
 * block one byte BFINAL|BTYPE=00 (the 3 header bits padded to the byte boundary), LEN and ~LEN (16-bit LE),
 * the raw bytes; finally the Adler-32 of the uncompressed data, big-endian.
 */
export function zlibStored(data: Uint8Array): Uint8Array {
  const nBlocks = Math.max(1, Math.ceil(data.length / MAX_STORED));
  const out = new Uint8Array(2 + nBlocks * 5 + data.length + 4);
  out[0] = 0x78;
  out[1] = 0x01;
  let o = 2;
  for (let b = 0; b < nBlocks; b++) {
    const start = b * MAX_STORED;
    const len = Math.min(MAX_STORED, data.length - start);
    out[o++] = b === nBlocks - 1 ? 1 : 0;
    out[o++] = len & 0xff;
    out[o++] = len >>> 8;
    out[o++] = ~len & 0xff;
    out[o++] = (~len >>> 8) & 0xff;
    out.set(data.subarray(start, start + len), o);
    o += len;
  }
  writeU32(out, o, adler32(data));
  return out;
}

function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

/** One chunk: length, type, data, CRC-32 over type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  writeU32(out, 0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  writeU32(out, 8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Encode 8-bit pixels (row-major, interleaved channels) as a PNG file. channels: 1 = grey, 3 = RGB, 4 = RGBA.
 *
 * @example
 * const png = encodePng(2, 1, new Uint8Array([255, 0, 0, 0, 0, 255]), 3); // a red and a blue pixel
 * // writeFileSync("out.png", png)  or  new Blob([png], { type: "image/png" }) in a browser
 */
export function encodePng(
  width: number,
  height: number,
  pixels: Uint8Array | Uint8ClampedArray,
  channels: 1 | 3 | 4,
): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 1 && height >= 1)) {
    throw new RangeError(`encodePng: width and height must be positive integers, got ${width} x ${height}`);
  }
  if (width > 0x7fffffff || height > 0x7fffffff) {
    throw new RangeError(`encodePng: ${width} x ${height} exceeds the PNG limit of 2^31 - 1 per side`);
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new RangeError(`encodePng: channels must be 1, 3 or 4, got ${channels}`);
  }
  const rowBytes = width * channels;
  if (pixels.length !== rowBytes * height) {
    throw new ShapeError(
      `encodePng: pixels has length ${pixels.length}; expected width * height * channels = ` +
        `${width} * ${height} * ${channels} = ${rowBytes * height}`,
    );
  }
  const ihdr = new Uint8Array(13);
  writeU32(ihdr, 0, width);
  writeU32(ihdr, 4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : channels === 3 ? 2 : 6; // colour type: grey, truecolour, truecolour + alpha
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  // Each scanline is prefixed by its filter type; 0 (None), since stored blocks would not benefit from others.
  const raw = new Uint8Array((rowBytes + 1) * height);
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  }
  const parts = [
    Uint8Array.from(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibStored(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

type RGB = readonly [number, number, number];

/** Viridis (matplotlib's default sequential map), sampled at 9 evenly spaced stops; linear in between. */
const VIRIDIS: readonly RGB[] = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 73, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [253, 231, 37],
];

/** Blue -> white -> red (ColorBrewer RdBu-like), stops at -1, -0.5, 0, 0.5, 1. */
const DIVERGING: readonly RGB[] = [
  [33, 102, 172],
  [103, 169, 207],
  [247, 247, 247],
  [239, 138, 98],
  [178, 24, 43],
];

const GREY: readonly RGB[] = [
  [0, 0, 0],
  [255, 255, 255],
];

/** Colour for missing (NaN) values: magenta, which none of the maps contain. */
const NAN_COLOR: RGB = [255, 0, 255];

/** Piecewise-linear colour ramp; t in [0, 1]. */
function ramp(stops: readonly RGB[], t: number, out: Uint8Array, at: number): void {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i]!;
  const b = stops[i + 1]!;
  out[at] = Math.round(a[0] + f * (b[0] - a[0]));
  out[at + 1] = Math.round(a[1] + f * (b[1] - a[1]));
  out[at + 2] = Math.round(a[2] + f * (b[2] - a[2]));
}

/** Options of {@link heatmapToRgb}. */
export interface HeatmapOptions {
  /** Blue-white-red centred on 0, scaled by the largest |value| (or by `max`). For gradients, saliency. */
  diverging?: boolean;
  /** Sequential colour map (default "viridis"; "grey" for black-to-white images). Ignored if diverging. */
  colormap?: "viridis" | "grey";
  /** Value mapped to the low end (default: the smallest finite value). Sequential maps only. */
  min?: number;
  /** Value mapped to the high end (default: the largest finite value; for diverging, the largest |value|). */
  max?: number;
}

/**
 * Map a w x h grid of numbers to RGB bytes (row-major, 3 per pixel), ready for {@link encodePng}.
 * Sequential maps stretch [min, max] over the colour map (a constant image maps to the low end); the
 * diverging map puts 0 at white and +-max at saturated red / blue. NaN shows as magenta; +-Infinity clamps.
 *
 * @example
 * const rgb = heatmapToRgb(saliency, 28, 28, { diverging: true });
 * const png = encodePng(28 * 8, 28 * 8, upscale(rgb, 28, 28, 3, 8), 3);
 */
export function heatmapToRgb(
  values: ArrayLike<number>,
  w: number,
  h: number,
  opts: HeatmapOptions = {},
): Uint8Array {
  if (!(Number.isInteger(w) && Number.isInteger(h) && w >= 0 && h >= 0) || values.length !== w * h) {
    throw new ShapeError(
      `heatmapToRgb: ${values.length} values for a ${w} x ${h} map; expected w * h = ${w * h}`,
    );
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Uint8Array(w * h * 3);
  if (opts.diverging) {
    const scale = opts.max ?? Math.max(Math.abs(lo), Math.abs(hi));
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (Number.isNaN(v)) out.set(NAN_COLOR, 3 * i);
      // t = 0.5 + v / (2 * scale): -scale -> 0 (blue), 0 -> 0.5 (white), +scale -> 1 (red).
      else
        ramp(
          DIVERGING,
          scale > 0 && Number.isFinite(scale) ? 0.5 + v / (2 * scale) : 0.5 + Math.sign(v) / 2,
          out,
          3 * i,
        );
    }
    return out;
  }
  const stops = opts.colormap === "grey" ? GREY : VIRIDIS;
  const a = opts.min ?? lo;
  const b = opts.max ?? hi;
  const range = b - a;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) out.set(NAN_COLOR, 3 * i);
    else ramp(stops, range > 0 && Number.isFinite(range) ? (v - a) / range : v > a ? 1 : 0, out, 3 * i);
  }
  return out;
}

/** Options of {@link tileImages}. */
export interface TileOptions {
  /** Pixels of padding between tiles and around the grid (default 1). */
  pad?: number;
  /** Value of the padding pixels (default 0: white on a diverging map, black on grey for [0, 1] images). */
  padValue?: number;
}

/**
 * Lay out equally sized single-channel images (each w x h, row-major) on a grid with `cols` columns, left to
 * right then top to bottom, separated by `pad` pixels of `padValue`. Empty trailing cells are `padValue`.
 *
 * @example
 * const { data, width, height } = tileImages(firstLayerFilters, 28, 28, 8);
 * writeFileSync("filters.png", encodePng(width, height, heatmapToRgb(data, width, height, { diverging: true }), 3));
 */
export function tileImages(
  images: ArrayLike<number>[],
  w: number,
  h: number,
  cols: number,
  opts: TileOptions = {},
): { data: Float32Array; width: number; height: number } {
  const pad = opts.pad ?? 1;
  const padValue = opts.padValue ?? 0;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w >= 1 && h >= 1)) {
    throw new RangeError(`tileImages: tile size must be positive integers, got ${w} x ${h}`);
  }
  if (!(Number.isInteger(cols) && cols >= 1) || !(Number.isInteger(pad) && pad >= 0)) {
    throw new RangeError(
      `tileImages: cols must be a positive integer and pad a non-negative one, got ${cols}, ${pad}`,
    );
  }
  images.forEach((img, i) => {
    if (img.length !== w * h) {
      throw new ShapeError(
        `tileImages: image ${i} has ${img.length} values; expected w * h = ${w} * ${h} = ${w * h}`,
      );
    }
  });
  const nCols = Math.min(cols, Math.max(1, images.length));
  const rows = Math.max(1, Math.ceil(images.length / cols));
  const width = nCols * w + (nCols + 1) * pad;
  const height = rows * h + (rows + 1) * pad;
  const data = new Float32Array(width * height).fill(padValue);
  images.forEach((img, n) => {
    const x0 = pad + (n % cols) * (w + pad);
    const y0 = pad + Math.floor(n / cols) * (h + pad);
    for (let y = 0; y < h; y++) {
      const row = (y0 + y) * width + x0;
      for (let x = 0; x < w; x++) data[row + x] = img[y * w + x]!;
    }
  });
  return { data, width, height };
}

/**
 * Enlarge an image by an integer `factor` with nearest-neighbour sampling (each pixel becomes a
 * factor x factor block), keeping pixels crisp. Works for any channel count.
 *
 * @example upscale(new Uint8Array([0, 255]), 2, 1, 1, 2) // [0, 0, 255, 255, 0, 0, 255, 255]
 */
export function upscale(
  pixels: Uint8Array | Uint8ClampedArray,
  w: number,
  h: number,
  channels: number,
  factor: number,
): Uint8Array {
  if (!(Number.isInteger(factor) && factor >= 1)) {
    throw new RangeError(`upscale: factor must be a positive integer, got ${factor}`);
  }
  if (!(Number.isInteger(channels) && channels >= 1) || pixels.length !== w * h * channels) {
    throw new ShapeError(
      `upscale: pixels has length ${pixels.length}; expected w * h * channels = ${w} * ${h} * ${channels}`,
    );
  }
  const W = w * factor;
  const out = new Uint8Array(W * h * factor * channels);
  const outRow = W * channels;
  for (let y = 0; y < h; y++) {
    // Build one enlarged row, then copy it factor - 1 more times.
    const base = y * factor * outRow;
    for (let x = 0; x < w; x++) {
      const src = (y * w + x) * channels;
      for (let r = 0; r < factor; r++) {
        const dst = base + (x * factor + r) * channels;
        for (let c = 0; c < channels; c++) out[dst + c] = pixels[src + c]!;
      }
    }
    for (let r = 1; r < factor; r++) out.copyWithin(base + r * outRow, base, base + outRow);
  }
  return out;
}

/**
 * One-call convenience: values -> colour map -> upscaled PNG bytes.
 *
 * @example writeFileSync("grad.png", heatmapPng(grad, 28, 28, { diverging: true, scale: 8 }));
 */
export function heatmapPng(
  values: ArrayLike<number>,
  w: number,
  h: number,
  opts: HeatmapOptions & { scale?: number } = {},
): Uint8Array {
  const factor = opts.scale ?? 1;
  const rgb = heatmapToRgb(values, w, h, opts);
  return encodePng(w * factor, h * factor, factor === 1 ? rgb : upscale(rgb, w, h, 3, factor), 3);
}
