/**
 * dtypes: the four element types chainrule supports, their typed-array storage, and PyTorch-style promotion.
 *
 * bool is stored as Uint8Array (0 or 1). Promotion follows PyTorch's category rule: bool < int32 < float, and
 * within floats the wider wins (float32 with float64 gives float64).
 */

export type DType = "float32" | "float64" | "int32" | "bool";
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

export const DTYPES: readonly DType[] = ["float32", "float64", "int32", "bool"];

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
  }
}

/** The dtype a typed array stores (Uint8Array is bool). */
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
  }
}

export function dtypeOfTyped(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  return "bool";
}

export function isFloat(d: DType): boolean {
  return d === "float32" || d === "float64";
}

export function bytesPerElement(d: DType): number {
  return d === "float64" ? 8 : d === "bool" ? 1 : 4;
}

const rank: Record<DType, number> = { bool: 0, int32: 1, float32: 2, float64: 3 };

/** PyTorch-like promotion of two tensor dtypes. */
export function promoteTypes(a: DType, b: DType): DType {
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
