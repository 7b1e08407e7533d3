/**
 * The IDX format (LeCun's MNIST format, also used by Fashion-MNIST, KMNIST and EMNIST).
 *
 * Layout: 4 magic bytes 0x00 0x00 <type> <ndim>, then ndim big-endian u32 dimensions, then the elements,
 * big-endian, row-major. Type codes: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
 * 0x0D float32, 0x0E float64.
 *
 * `parseIdx` returns the values in their natural typed array (an MNIST image file stays a compact Uint8Array
 * of 0..255 rather than 4x larger int32 or float32); `idxToRaw` converts to a chainrule RawTensor when needed.
 * Files are usually gzipped: this module is pure and browser-compatible, so it only detects gzip and asks for
 * decompression; `readIdxFile` in idx-node.ts gunzips in Node.
 */
import { FormatError } from "../errors.ts";
import { fmtShape, sizeOf } from "../shape.ts";
import type { RawTensor } from "./raw.ts";

/** Element types of IDX files. */
export type IdxType = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";

/** An IDX array: the element type, the shape and the values in the matching typed array. */
export type IdxArray =
  | { type: "uint8"; shape: number[]; data: Uint8Array }
  | { type: "int8"; shape: number[]; data: Int8Array }
  | { type: "int16"; shape: number[]; data: Int16Array }
  | { type: "int32"; shape: number[]; data: Int32Array }
  | { type: "float32"; shape: number[]; data: Float32Array }
  | { type: "float64"; shape: number[]; data: Float64Array };

const TYPES: Record<number, { type: IdxType; size: number }> = {
  8: { type: "uint8", size: 1 },
  9: { type: "int8", size: 1 },
  11: { type: "int16", size: 2 },
  12: { type: "int32", size: 4 },
  13: { type: "float32", size: 4 },
  14: { type: "float64", size: 8 },
};

const CODE_OF: Record<IdxType, number> = {
  uint8: 0x08,
  int8: 0x09,
  int16: 0x0b,
  int32: 0x0c,
  float32: 0x0d,
  float64: 0x0e,
};

/**
 * True if `bytes` start with the gzip magic number 1f 8b.
 *
 * @example
 * isGzip(new Uint8Array([0x1f, 0x8b, 8])); // true
 */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parse an (uncompressed) IDX file. Throws a FormatError for a wrong magic number, an unknown type code, a
 * truncated header or data, or bytes after the data.
 *
 * @example
 * const labels = parseIdx(bytes); // { type: "uint8", shape: [60000], data: Uint8Array(60000) }
 */
export function parseIdx(bytes: Uint8Array): IdxArray {
  const op = "parseIdx";
  if (isGzip(bytes)) {
    throw new FormatError(
      `${op}: the data is gzip-compressed (starts with 1f 8b); decompress it first (readIdxFile does this in Node)`,
    );
  }
  if (bytes.length < 4) {
    throw new FormatError(`${op}: ${bytes.length} bytes is too short for the 4-byte IDX magic number`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new FormatError(
      `${op}: wrong magic number: an IDX file starts with 0x00 0x00, got 0x${hex(bytes[0])} 0x${hex(bytes[1])}`,
    );
  }
  const info = TYPES[bytes[2]];
  if (info === undefined) {
    throw new FormatError(
      `${op}: unknown type code 0x${hex(bytes[2])} (expected 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float or 0x0E double)`,
    );
  }
  const ndim = bytes[3];
  const dataStart = 4 + 4 * ndim;
  if (bytes.length < dataStart) {
    throw new FormatError(
      `${op}: truncated header: ${ndim} dimensions need ${dataStart} header bytes, the file has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const n = sizeOf(shape);
  const need = n * info.size;
  const have = bytes.length - dataStart;
  if (have < need) {
    throw new FormatError(
      `${op}: truncated data: shape ${fmtShape(shape)} of ${info.type} needs ${need} data bytes, the file has ${have}`,
    );
  }
  if (have > need) {
    throw new FormatError(
      `${op}: ${have - need} trailing bytes after the data of shape ${fmtShape(shape)} of ${info.type} (size mismatch)`,
    );
  }
  const p = dataStart;
  switch (info.type) {
    case "uint8":
      return { type: "uint8", shape, data: bytes.slice(p, p + n) };
    case "int8": {
      const data = new Int8Array(n);
      data.set(new Int8Array(bytes.buffer, bytes.byteOffset + p, n));
      return { type: "int8", shape, data };
    }
    case "int16": {
      const data = new Int16Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt16(p + 2 * i, false);
      return { type: "int16", shape, data };
    }
    case "int32": {
      const data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getInt32(p + 4 * i, false);
      return { type: "int32", shape, data };
    }
    case "float32": {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(p + 4 * i, false);
      return { type: "float32", shape, data };
    }
    case "float64": {
      const data = new Float64Array(n);
      for (let i = 0; i < n; i++) data[i] = view.getFloat64(p + 8 * i, false);
      return { type: "float64", shape, data };
    }
  }
}

/**
 * Write an IDX file (uncompressed). Dimensions must fit in u32 and there can be at most 255 of them.
 *
 * @example
 * const bytes = serializeIdx({ type: "uint8", shape: [2], data: new Uint8Array([3, 7]) });
 */
export function serializeIdx(arr: IdxArray): Uint8Array {
  const op = "serializeIdx";
  const { shape, data } = arr;
  const code = CODE_OF[arr.type];
  if (code === undefined) throw new FormatError(`${op}: unknown IDX element type '${String(arr.type)}'`);
  if (shape.length > 255)
    throw new FormatError(`${op}: IDX allows at most 255 dimensions, got ${shape.length}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new FormatError(
        `${op}: invalid dimension ${d} in shape ${fmtShape(shape)} (IDX stores u32 dims)`,
      );
    }
  }
  const n = sizeOf(shape);
  if (data.length !== n) {
    throw new FormatError(
      `${op}: shape ${fmtShape(shape)} has ${n} elements but the data holds ${data.length}`,
    );
  }
  const size = TYPES[code].size;
  const p = 4 + 4 * shape.length;
  const out = new Uint8Array(p + n * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  for (let i = 0; i < shape.length; i++) view.setUint32(4 + 4 * i, shape[i], false);
  switch (arr.type) {
    case "uint8":
      out.set(arr.data, p);
      break;
    case "int8":
      out.set(new Uint8Array(arr.data.buffer, arr.data.byteOffset, n), p);
      break;
    case "int16":
      for (let i = 0; i < n; i++) view.setInt16(p + 2 * i, arr.data[i], false);
      break;
    case "int32":
      for (let i = 0; i < n; i++) view.setInt32(p + 4 * i, arr.data[i], false);
      break;
    case "float32":
      for (let i = 0; i < n; i++) view.setFloat32(p + 4 * i, arr.data[i], false);
      break;
    case "float64":
      for (let i = 0; i < n; i++) view.setFloat64(p + 8 * i, arr.data[i], false);
      break;
  }
  return out;
}

/**
 * Convert an IDX array to a chainrule RawTensor: uint8, int8 and int16 widen to int32 (exact); int32, float32
 * and float64 keep their dtype (the data is shared, not copied).
 *
 * @example
 * idxToRaw(parseIdx(labelBytes)); // { dtype: "int32", shape: [60000], data: Int32Array }
 */
export function idxToRaw(arr: IdxArray): RawTensor {
  const shape = [...arr.shape];
  switch (arr.type) {
    case "uint8":
    case "int8":
    case "int16":
      return { dtype: "int32", shape, data: Int32Array.from(arr.data) };
    case "int32":
      return { dtype: "int32", shape, data: arr.data };
    case "float32":
      return { dtype: "float32", shape, data: arr.data };
    case "float64":
      return { dtype: "float64", shape, data: arr.data };
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, "0").toUpperCase();
}
