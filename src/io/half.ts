/**
 * The 16-bit floating-point formats: IEEE 754 binary16 (F16, "half", chainrule's float16) and bfloat16 (BF16).
 * float32 holds every value of both exactly, so widening is exact; narrowing rounds to nearest, ties to even.
 * The tensor dtypes store these bit patterns (src/dtype.ts) and compute in float32; the bulk conversions here
 * are the js cast kernel's (src/backend/js/half.ts) and the safetensors reader's.
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

// One float32 seen as its bits: the scalar conversions below go through it.
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * Round the float32 with bit pattern `x` (an unsigned 32-bit integer) to binary16 bits, to nearest with ties to
 * even: magnitudes from 65520 up become Infinity, values below 2^-14 round to subnormals (or to zero), NaN
 * becomes the quiet NaN 0x7e00 with its sign kept (as PyTorch's c10::Half).
 *
 * @example
 * f32BitsToF16Bits(0x3f800000); // 0x3c00 (1.0)
 */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  // 65520 (0x477ff000) is halfway between 65504 and 2^16: ties to even round it up, to Infinity
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    // below 2^-14: a subnormal m * 2^-24 (m = 1024 rounds up to the smallest normal, the same bit pattern).
    // The shift keeps the implicit bit; round on the bits shifted out.
    if (a < 0x33000000) return sign; // below 2^-25: rounds to zero (2^-25 itself ties to the even zero)
    const e = a >>> 23; // 102..112
    const mant = (a & 0x7fffff) | 0x800000;
    const shift = 126 - e; // value = mant * 2^(e - 150) = (mant >> (126 - e)) * 2^-24
    const q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q);
  }
  // normal: rebias the exponent (127 -> 15), keep the top 10 mantissa bits, round on the 13 dropped ones (a
  // carry out of the mantissa steps the exponent, which is the right result)
  const h = (((a >>> 23) - 112) << 10) | ((a >>> 13) & 0x3ff);
  const rem = a & 0x1fff;
  return sign | (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1) ? h + 1 : h);
}

/**
 * Round the float32 with bit pattern `x` to bfloat16 bits, to nearest with ties to even (overflow goes to
 * Infinity by the carry); NaN becomes the quiet NaN 0x7fc0 with its sign kept.
 *
 * @example
 * f32BitsToBF16Bits(0x3f808000); // 0x3f80: the tie 1 + 2^-8 rounds to the even 1.0
 */
export function f32BitsToBF16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * A number rounded to binary16 bits through float32 first (as PyTorch converts a double: to float, then to
 * half). Differs from {@link numberToF16Bits} only for the rare doubles whose first rounding makes a tie.
 */
export function toF16Bits(v: number): number {
  f32Scratch[0] = v;
  return f32BitsToF16Bits(u32Scratch[0]);
}

/** A number rounded to bfloat16 bits through float32 first (as PyTorch converts a double). */
export function toBF16Bits(v: number): number {
  f32Scratch[0] = v;
  return f32BitsToBF16Bits(u32Scratch[0]);
}

/** The value of binary16 bits `h` as a number (exact; a table lookup). */
export function f16Value(h: number): number {
  return f16ToF32Table()[h & 0xffff];
}

/** The value of bfloat16 bits `h` as a number (exact). */
export function bf16Value(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** out[i] = the float32 value of the 16-bit pattern src[i] (bfloat16 when `bf`, else binary16), exactly. */
export function widenHalfInto(src: Uint16Array, out: Float32Array, n: number, bf: boolean): void {
  if (bf) {
    const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
  } else {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[src[i]];
  }
}

/** out[i] = src[i] rounded to the 16-bit format (bfloat16 when `bf`, else binary16), to nearest even. */
export function narrowHalfInto(src: Float32Array, out: Uint16Array, n: number, bf: boolean): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  if (bf) for (let i = 0; i < n; i++) out[i] = f32BitsToBF16Bits(bits[i]);
  else for (let i = 0; i < n; i++) out[i] = f32BitsToF16Bits(bits[i]);
}
