/**
 * 16-bit floating-point formats that model files use but chainrule does not compute in: IEEE 754 binary16
 * (F16, "half") and bfloat16 (BF16). Readers widen them to float32, which holds every value of both exactly.
 *
 * binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
 *   exponent 0       -> subnormal: (-1)^s * m * 2^-24
 *   exponent 1..30   -> normal:    (-1)^s * (1 + m / 1024) * 2^(e - 15)
 *   exponent 31      -> +-Infinity when m = 0, NaN otherwise
 * bfloat16 is the top half of a float32 (1 sign, 8 exponent, 7 mantissa bits), so widening is a 16-bit shift.
 */

let f16Table: Float32Array | undefined;

/** float32 value of every binary16 bit pattern (256 KiB, built on first use; a lookup beats the arithmetic). */
function f16ToF32Table(): Float32Array {
  if (f16Table !== undefined) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToNumber(h);
  f16Table = t;
  return t;
}

/**
 * Decode one binary16 bit pattern (0..65535) to a number (exact).
 *
 * @example
 * f16BitsToNumber(0x3c00); // 1
 * f16BitsToNumber(0x0001); // 2^-24, the smallest subnormal
 */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Encode a number as binary16 bits, rounding to nearest with ties to even (IEEE default); values of magnitude
 * 65520 or more become Infinity, NaN becomes the quiet NaN 0x7e00.
 *
 * @example
 * numberToF16Bits(1); // 0x3c00
 * numberToF16Bits(65504); // 0x7bff, the largest finite half
 */
export function numberToF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 is halfway between 65504 (largest finite) and 65536 (next power, not representable): ties to even
  // round it up, to Infinity.
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal range: the value is m * 2^-24 with an integer m (1024 means it rounded up to 2^-14, which the
    // same bit pattern 0x0400 encodes as the smallest normal).
    return sign | roundHalfEven(a * 2 ** 24);
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a)
    e--; // guard against log2 rounding
  else if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Widen `n` little-endian binary16 values starting at `bytes[offset]` to a fresh Float32Array.
 *
 * @example
 * decodeF16(new Uint8Array([0x00, 0x3c, 0x00, 0xc0]), 0, 2); // Float32Array [1, -2]
 */
export function decodeF16(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(n);
  for (let i = 0, p = offset; i < n; i++, p += 2) out[i] = table[bytes[p] | (bytes[p + 1] << 8)];
  return out;
}

/**
 * Widen `n` little-endian bfloat16 values starting at `bytes[offset]` to a fresh Float32Array (bit-exact:
 * each value becomes the float32 whose top 16 bits it is).
 *
 * @example
 * decodeBF16(new Uint8Array([0x80, 0x3f]), 0, 1); // Float32Array [1]
 */
export function decodeBF16(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0, p = offset; i < n; i++, p += 2) bits[i] = ((bytes[p] | (bytes[p + 1] << 8)) << 16) >>> 0;
  return out;
}
