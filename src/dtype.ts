/**
 * dtypes: the element types chainrule supports, their typed-array storage, and PyTorch-style promotion.
 *
 * bool is stored as Uint8Array (0 or 1). float16 (IEEE binary16) and bfloat16 are stored as their 16-bit
 * patterns, in `Float16Bits` / `BFloat16Bits` (subclasses of Uint16Array, so the class tells the two formats
 * apart); only cast, copy and the movement kernels read that storage, every other op computes in float32 (see
 * docs/mixed-precision.md). Promotion follows PyTorch's category rule: bool < int32 < float, and within floats
 * the wider wins (float32 with float64 gives float64, a half with float32 gives float32); float16 with
 * bfloat16 gives float32, as in PyTorch.
 */

export type DType = "float32" | "float64" | "int32" | "bool" | "float16" | "bfloat16";

/** Storage of a float16 tensor: binary16 bit patterns (1 sign, 5 exponent, 10 mantissa bits). */
export class Float16Bits extends Uint16Array {}

/** Storage of a bfloat16 tensor: the top 16 bits of the float32 each value rounds to. */
export class BFloat16Bits extends Uint16Array {}

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

export const DTYPES: readonly DType[] = ["float32", "float64", "int32", "bool", "float16", "bfloat16"];

/** True for the 16-bit float dtypes (stored as bit patterns, computed in float32). */
export function isHalf(d: DType): d is "float16" | "bfloat16" {
  return d === "float16" || d === "bfloat16";
}

/** Allocate a zero-filled typed array for `dtype`. */
export function allocTyped(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(size);
    case "float64":
      return new Float64Array(size);
    case "int32":
      return new Int32Array(size);
    case "bool":
      return new Uint8Array(size);
    case "float16":
      return new Float16Bits(size);
    case "bfloat16":
      return new BFloat16Bits(size);
  }
}

/** A typed array of `size` elements of `dtype` over `buffer`, from byte `byteOffset`. */
export function typedOver(dtype: DType, buffer: ArrayBufferLike, size: number, byteOffset = 0): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(buffer, byteOffset, size);
    case "float64":
      return new Float64Array(buffer, byteOffset, size);
    case "int32":
      return new Int32Array(buffer, byteOffset, size);
    case "bool":
      return new Uint8Array(buffer, byteOffset, size);
    case "float16":
      return new Float16Bits(buffer as ArrayBuffer, byteOffset, size);
    case "bfloat16":
      return new BFloat16Bits(buffer as ArrayBuffer, byteOffset, size);
  }
}

/**
 * The dtype a typed array stores (Uint8Array is bool; a plain Uint16Array, which carries no format, is read as
 * float16, the IEEE format).
 */
export function dtypeOfTyped(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BFloat16Bits) return "bfloat16";
  if (a instanceof Uint16Array) return "float16";
  return "bool";
}

export function isFloat(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16" || d === "bfloat16";
}

export function bytesPerElement(d: DType): number {
  return d === "float64" ? 8 : d === "bool" ? 1 : d === "float16" || d === "bfloat16" ? 2 : 4;
}

const rank: Record<DType, number> = { bool: 0, int32: 1, float16: 2, bfloat16: 2, float32: 3, float64: 4 };

/** PyTorch-like promotion of two tensor dtypes (float16 with bfloat16 gives float32, as in PyTorch). */
export function promoteTypes(a: DType, b: DType): DType {
  if (a !== b && isHalf(a) && isHalf(b)) return "float32";
  return rank[a] >= rank[b] ? a : b;
}

/**
 * Promotion of a tensor dtype with a JS number (a "weak" scalar, as PyTorch treats Python scalars): the tensor's
 * dtype wins unless the scalar is a non-integer and the tensor is integral or bool, which gives float32.
 */
export function promoteWithScalar(d: DType, v: number | boolean): DType {
  if (typeof v === "boolean") return d;
  if (isFloat(d)) return d;
  if (!Number.isInteger(v)) return "float32";
  return d === "bool" ? "int32" : d;
}

/** Assert that `s` names a dtype. */
export function checkDType(s: string, op: string): DType {
  if ((DTYPES as readonly string[]).includes(s)) return s as DType;
  throw new TypeError(`${op}: unknown dtype '${s}', expected one of ${DTYPES.join(", ")}`);
}
