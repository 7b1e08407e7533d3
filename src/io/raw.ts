/**
 * RawTensor: the plain record the file formats read and write (dtype, shape, contiguous row-major data).
 *
 * The io layer works on these records instead of on the Tensor class so that parsers stay pure, testable
 * without a backend, and usable from a worker or a build script. The tensor layer wraps a RawTensor into a
 * Tensor (and a Tensor's contiguous storage is exactly a RawTensor).
 */
import { allocTyped, DTYPES, type DType, type TypedArray } from "../dtype.ts";
import { FormatError } from "../errors.ts";
import { fmtShape, sizeOf } from "../shape.ts";

/**
 * A dense row-major tensor held in a typed array of the dtype's storage type
 * (float32 -> Float32Array, float64 -> Float64Array, int32 -> Int32Array, bool -> Uint8Array of 0/1,
 * float16 -> Float16Bits, bfloat16 -> BFloat16Bits: bit patterns, see src/dtype.ts).
 *
 * @example
 * const t: RawTensor = { dtype: "float32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) };
 */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/**
 * Check that `t` is a well-formed RawTensor: a known dtype, a shape of non-negative safe integers, a typed
 * array of the dtype's storage type, and exactly product(shape) elements. Throws a FormatError naming `op`
 * and `name`.
 *
 * @example
 * checkRawTensor("saveSafetensors", "w", { dtype: "int32", shape: [3], data: new Int32Array(3) }); // ok
 */
export function checkRawTensor(op: string, name: string, t: RawTensor): void {
  if (t === null || typeof t !== "object") {
    throw new FormatError(`${op}: tensor '${name}' is not a {dtype, shape, data} record`);
  }
  const { dtype, shape, data } = t;
  if (!(DTYPES as readonly string[]).includes(dtype)) {
    throw new FormatError(
      `${op}: tensor '${name}' has unknown dtype '${String(dtype)}' (expected one of ${DTYPES.join(", ")})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(
      `${op}: tensor '${name}' has invalid shape ${JSON.stringify(shape)} (expected non-negative integers)`,
    );
  }
  const storage = allocTyped(dtype, 0).constructor as new (n: number) => TypedArray;
  if (!(data instanceof storage)) {
    const got = ArrayBuffer.isView(data) ? data.constructor.name : typeof data;
    throw new FormatError(
      `${op}: tensor '${name}' of dtype ${dtype} must store its data in a ${storage.name}, got ${got}`,
    );
  }
  if (data.length !== sizeOf(shape)) {
    throw new FormatError(
      `${op}: tensor '${name}' has shape ${fmtShape(shape)} (${sizeOf(shape)} elements) but its data holds ${data.length} elements`,
    );
  }
}

/** True if this machine stores multi-byte numbers little-endian (every current CPU Node and browsers run on). */
export const HOST_LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Define `obj[key] = value` as an own enumerable property, safe for any key (a plain assignment with the key
 * "__proto__" would change the object's prototype instead of adding an entry).
 *
 * @example
 * const r: Record<string, number> = {};
 * setEntry(r, "__proto__", 1); // Object.keys(r) is ["__proto__"]
 */
export function setEntry<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
