/**
 * The safetensors format (Hugging Face): the standard way to exchange model weights without pickle.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header, then the byte buffer.
 *   header = {"__metadata__": {"k": "v", ...}?, "name": {"dtype": "F32", "shape": [2, 3],
 *             "data_offsets": [begin, end]}, ...}
 * Offsets are relative to the start of the byte buffer; the tensors cover it exactly, without holes or
 * overlap; data is little-endian, row-major. Writers pad the header with spaces to a multiple of 8 bytes.
 *
 * Writing matches the reference implementation byte for byte: tensors ordered by decreasing dtype alignment
 * (F64, F32, I32, BF16, F16, BOOL: the reference's dtype enum, descending) then by name (code-point order, as Rust compares UTF-8 bytes), compact JSON with
 * "__metadata__" first, so that with the 8-aligned header every tensor starts at a multiple of its item size
 * in the file (a memory-mapping reader can use it without copying).
 *
 * Reading never trusts the header: its size is capped, the JSON is parsed strictly (duplicate keys are
 * errors), every entry, shape and offset is validated, and the data is copied into fresh aligned typed arrays
 * (a tensor inside a file buffer may start at an odd address, which Float32Array views cannot). chainrule's
 * F32/F64/I32/BOOL/F16/BF16 are read as such (F16 and BF16 as float16 / bfloat16 tensors holding the file's
 * bit patterns); readers also accept I8/U8/I16/U16 (to int32) and I64/U64/U32 (to int32 when every element
 * fits, else an error).
 *
 * This module is browser-compatible (DataView/TextEncoder, no Buffer); file helpers are in safetensors-node.ts.
 */
import { BFloat16Bits, type DType, Float16Bits } from "../dtype.ts";
import { FormatError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import { isJsonObject, type JsonValue, parseJsonStrict } from "./json-strict.ts";
import { checkRawTensor, HOST_LITTLE_ENDIAN, type RawTensor, setEntry } from "./raw.ts";

/** dtype names this module reads (the spec has also F8 variants, which are rejected as unsupported). */
export type SafetensorsDtype =
  | "BOOL"
  | "U8"
  | "I8"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

const ITEM_SIZE: Record<SafetensorsDtype, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The file dtype each chainrule dtype is written as. */
const FILE_DTYPE: Record<DType, SafetensorsDtype> = {
  float32: "F32",
  float64: "F64",
  int32: "I32",
  bool: "BOOL",
  float16: "F16",
  bfloat16: "BF16",
};

/** Position in the reference implementation's dtype enum (increasing alignment); writers sort by it, descending. */
const ENUM_RANK: Record<DType, number> = {
  bool: 0,
  float16: 7,
  bfloat16: 8,
  int32: 9,
  float32: 11,
  float64: 12,
};

/** The reference implementation's header cap; larger headers are refused before anything is decoded. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

/** Options for {@link parseSafetensors}. */
export interface ParseSafetensorsOptions {
  /** Largest accepted header, in bytes (default 100 MB, as the reference implementation). */
  maxHeaderBytes?: number;
}

/** One tensor entry of a validated header. `begin`/`end` are offsets into the byte buffer. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: entries in header order, metadata, and where the byte buffer starts in the file. */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataStart: number;
}

/** The result of {@link parseSafetensors}. `fileDtypes` records each tensor's dtype in the file. */
export interface ParsedSafetensors {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
  fileDtypes: Record<string, SafetensorsDtype>;
}

const WRITE_OP = "serializeSafetensors";
const READ_OP = "parseSafetensors";

/**
 * Serialize named tensors (and optional string metadata) to safetensors bytes.
 *
 * @example
 * const bytes = serializeSafetensors(
 *   { w: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } },
 *   { format: "pt" },
 * );
 * parseSafetensors(bytes).tensors.w.data; // Float32Array [1, 2]
 */
export function serializeSafetensors(
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === "__metadata__") {
      throw new FormatError(
        `${WRITE_OP}: '__metadata__' is reserved for the metadata and cannot name a tensor`,
      );
    }
    checkWellFormed(`tensor name ${JSON.stringify(name)}`, name);
    checkRawTensor(WRITE_OP, name, t);
  }
  entries.sort(([na, a], [nb, b]) => ENUM_RANK[b.dtype] - ENUM_RANK[a.dtype] || compareCodePoints(na, nb));

  const parts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      throw new FormatError(`${WRITE_OP}: metadata must be an object of strings`);
    }
    const kv: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new FormatError(`${WRITE_OP}: metadata value for key '${k}' must be a string, got ${typeof v}`);
      }
      checkWellFormed(`metadata key ${JSON.stringify(k)}`, k);
      checkWellFormed(`metadata value for key '${k}'`, v);
      kv.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${kv.join(",")}}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const n = t.data.length * ITEM_SIZE[FILE_DTYPE[t.dtype]];
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${FILE_DTYPE[t.dtype]}","shape":[${t.shape.join(",")}],` +
        `"data_offsets":[${offset},${offset + n}]}`,
    );
    offset += n;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLen = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLen % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen); // space padding

  let pos = 8 + headerLen;
  for (const [, t] of entries) {
    writeLE(out, view, pos, t);
    pos += t.data.byteLength;
  }
  return out;
}

/** Copy a tensor's elements into `out` at `pos`, little-endian; bool is normalized to 0/1. */
function writeLE(out: Uint8Array, view: DataView, pos: number, t: RawTensor): void {
  const d = t.data;
  if (t.dtype === "bool") {
    for (let i = 0; i < d.length; i++) out[pos + i] = d[i] ? 1 : 0;
  } else if (HOST_LITTLE_ENDIAN) {
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
  } else if (t.dtype === "float32") {
    for (let i = 0; i < d.length; i++) view.setFloat32(pos + 4 * i, d[i], true);
  } else if (t.dtype === "float64") {
    for (let i = 0; i < d.length; i++) view.setFloat64(pos + 8 * i, d[i], true);
  } else if (t.dtype === "float16" || t.dtype === "bfloat16") {
    for (let i = 0; i < d.length; i++) view.setUint16(pos + 2 * i, d[i], true);
  } else {
    for (let i = 0; i < d.length; i++) view.setInt32(pos + 4 * i, d[i], true);
  }
}

/**
 * Parse safetensors bytes into tensors (fresh, aligned typed arrays) and metadata. Throws a FormatError naming
 * the tensor and the problem for any malformed or inconsistent input.
 *
 * @example
 * const { tensors, metadata } = parseSafetensors(bytes);
 * tensors["fc.weight"].shape; // e.g. [10, 784]
 */
export function parseSafetensors(bytes: Uint8Array, opts: ParseSafetensorsOptions = {}): ParsedSafetensors {
  const header = parseSafetensorsHeader(bytes, opts);
  const tensors: Record<string, RawTensor> = {};
  const fileDtypes: Record<string, SafetensorsDtype> = {};
  for (const e of header.entries) {
    setEntry(tensors, e.name, decodeEntry(bytes, header.dataStart, e));
    setEntry(fileDtypes, e.name, e.dtype);
  }
  return { tensors, metadata: header.metadata, fileDtypes };
}

/**
 * Read and validate only the header of safetensors bytes (no tensor data is decoded): useful to inspect a
 * model file. `bytes` must still be the whole file, since validation checks the offsets against its length.
 *
 * @example
 * parseSafetensorsHeader(bytes).entries.map((e) => `${e.name} ${e.dtype} [${e.shape}]`);
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  opts: ParseSafetensorsOptions = {},
): SafetensorsHeader {
  if (!(bytes instanceof Uint8Array)) {
    throw new FormatError(`${READ_OP}: expected a Uint8Array of file bytes, got ${describe(bytes)}`);
  }
  return parseHeaderPrefix(bytes, bytes.length, opts);
}

/**
 * The header length a safetensors file announces in its first 8 bytes, checked against the header cap and
 * the file size, before anything else is read: a file reader calls this on the first 8 bytes, then reads
 * exactly that many header bytes (never an unbounded amount).
 *
 * @example
 * const n = safetensorsHeaderLength(first8Bytes, fileSize); // then read bytes [8, 8 + n)
 */
export function safetensorsHeaderLength(
  first8: Uint8Array,
  fileSize: number,
  opts: ParseSafetensorsOptions = {},
): number {
  const maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (fileSize < 8 || first8.length < 8) {
    throw new FormatError(
      `${READ_OP}: the file is ${fileSize} bytes, too short for the 8-byte header length that starts a safetensors file`,
    );
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLen > maxHeader) {
    throw new FormatError(
      `${READ_OP}: header length ${headerLen} exceeds the limit of ${maxHeader} bytes (raise opts.maxHeaderBytes if the file is trusted)`,
    );
  }
  if (8 + headerLen > fileSize) {
    throw new FormatError(
      `${READ_OP}: header length ${headerLen} runs past the end of the file (${fileSize} bytes); the file is truncated or not safetensors`,
    );
  }
  return headerLen;
}

/**
 * Parse and validate the header of a safetensors file of `fileSize` bytes from its first bytes (`prefix` must
 * hold at least the 8-byte length and the header; the data buffer need not be there). Offsets are checked
 * against `fileSize`, so a file reader can validate everything before it reads, or allocates for, the data.
 *
 * @example
 * const header = parseSafetensorsHeaderPrefix(first8PlusHeader, fileSize);
 */
export function parseSafetensorsHeaderPrefix(
  prefix: Uint8Array,
  fileSize: number,
  opts: ParseSafetensorsOptions = {},
): SafetensorsHeader {
  if (!(prefix instanceof Uint8Array)) {
    throw new FormatError(`${READ_OP}: expected a Uint8Array of file bytes, got ${describe(prefix)}`);
  }
  if (!Number.isSafeInteger(fileSize) || fileSize < prefix.length) {
    throw new FormatError(
      `${READ_OP}: file size ${fileSize} is smaller than the ${prefix.length} bytes given`,
    );
  }
  return parseHeaderPrefix(prefix, fileSize, opts);
}

function parseHeaderPrefix(
  bytes: Uint8Array,
  fileSize: number,
  opts: ParseSafetensorsOptions,
): SafetensorsHeader {
  const headerLen = safetensorsHeaderLength(bytes, fileSize, opts);
  if (8 + headerLen > bytes.length) {
    throw new FormatError(`${READ_OP}: only ${bytes.length} bytes given, the header needs ${8 + headerLen}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerLen),
    );
  } catch {
    throw new FormatError(`${READ_OP}: the header is not valid UTF-8`);
  }
  if (!text.startsWith("{")) {
    throw new FormatError(`${READ_OP}: the header must be a JSON object starting with '{'`);
  }
  const json = parseJsonStrict(text, `${READ_OP}: header`);
  if (!isJsonObject(json)) throw new FormatError(`${READ_OP}: the header must be a JSON object`);

  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of json) {
    if (name === "__metadata__") readMetadata(v, metadata);
    else entries.push(readEntry(name, v, dataLen));
  }
  checkCoverage(entries, dataLen);
  return { entries, metadata, dataStart };
}

function readMetadata(v: JsonValue, out: Record<string, string>): void {
  if (v === null) return; // the reference implementation reads null as "no metadata"
  if (!isJsonObject(v)) {
    throw new FormatError(`${READ_OP}: '__metadata__' must be an object of strings, got ${jsonKind(v)}`);
  }
  for (const [k, s] of v) {
    if (typeof s !== "string") {
      throw new FormatError(`${READ_OP}: metadata value for key '${k}' must be a string, got ${jsonKind(s)}`);
    }
    setEntry(out, k, s);
  }
}

function readEntry(name: string, v: JsonValue, dataLen: number): SafetensorsEntry {
  const where = `${READ_OP}: tensor '${name}'`;
  if (!isJsonObject(v)) {
    throw new FormatError(
      `${where}: entry must be an object {dtype, shape, data_offsets}, got ${jsonKind(v)}`,
    );
  }
  const dtype = v.get("dtype");
  if (typeof dtype !== "string" || !Object.hasOwn(ITEM_SIZE, dtype)) {
    throw new FormatError(
      `${where}: unknown or unsupported dtype ${dtype === undefined ? "(missing)" : JSON.stringify(dtype)} (supported: ${Object.keys(ITEM_SIZE).join(", ")})`,
    );
  }
  const shape = v.get("shape");
  if (!Array.isArray(shape)) {
    throw new FormatError(`${where}: 'shape' must be an array of dimensions, got ${jsonKind(shape)}`);
  }
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new FormatError(
        `${where}: shape ${JSON.stringify(shape)} has an invalid dimension ${JSON.stringify(d)} (expected non-negative integers)`,
      );
    }
  }
  const offs = v.get("data_offsets");
  if (
    !Array.isArray(offs) ||
    offs.length !== 2 ||
    !offs.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new FormatError(
      `${where}: 'data_offsets' must be [begin, end] with non-negative integers, got ${offs === undefined ? "(missing)" : JSON.stringify(offs)}`,
    );
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) throw new FormatError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLen) {
    throw new FormatError(
      `${where}: data_offsets [${begin}, ${end}] run past the end of the file (the data buffer holds ${dataLen} bytes)`,
    );
  }
  const dims = shape as number[];
  const t = dtype as SafetensorsDtype;
  let elements = 1;
  for (const d of dims) elements *= d;
  const need = elements * ITEM_SIZE[t];
  if (end - begin !== need) {
    throw new FormatError(
      `${where}: data_offsets [${begin}, ${end}] cover ${end - begin} bytes but dtype ${t} with shape ${fmtShape(dims)} needs ${need} bytes`,
    );
  }
  return { name, dtype: t, shape: dims, begin, end };
}

/** The tensors must tile the byte buffer [0, dataLen) exactly: no hole, no overlap, nothing left over. */
function checkCoverage(entries: SafetensorsEntry[], dataLen: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: SafetensorsEntry | undefined;
  for (const e of sorted) {
    if (e.begin < cursor) {
      throw new FormatError(
        `${READ_OP}: tensor '${e.name}' data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev?.name}' [${prev?.begin}, ${prev?.end}]`,
      );
    }
    if (e.begin > cursor) {
      throw new FormatError(
        `${READ_OP}: tensor '${e.name}' begins at byte ${e.begin} of the data buffer, leaving a hole of ${e.begin - cursor} unused bytes before it`,
      );
    }
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLen) {
    throw new FormatError(
      `${READ_OP}: the tensors cover ${cursor} bytes of the data buffer but it holds ${dataLen} bytes (${dataLen - cursor} trailing bytes belong to no tensor)`,
    );
  }
}

/** Decode one validated entry into a fresh RawTensor. */
function decodeEntry(bytes: Uint8Array, dataStart: number, e: SafetensorsEntry): RawTensor {
  const off = dataStart + e.begin;
  const n = (e.end - e.begin) / ITEM_SIZE[e.dtype];
  const shape = [...e.shape];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (e.dtype) {
    case "F32": {
      const out = new Float32Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(off, off + 4 * n));
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(off + 4 * i, true);
      return { dtype: "float32", shape, data: out };
    }
    case "F64": {
      const out = new Float64Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(off, off + 8 * n));
      else for (let i = 0; i < n; i++) out[i] = view.getFloat64(off + 8 * i, true);
      return { dtype: "float64", shape, data: out };
    }
    case "I32": {
      const out = new Int32Array(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(off, off + 4 * n));
      else for (let i = 0; i < n; i++) out[i] = view.getInt32(off + 4 * i, true);
      return { dtype: "int32", shape, data: out };
    }
    case "BOOL": {
      const out = bytes.slice(off, off + n);
      for (let i = 0; i < n; i++) {
        if (out[i] > 1) {
          throw new FormatError(
            `${READ_OP}: tensor '${e.name}': BOOL element ${i} has byte value ${out[i]} (expected 0 or 1)`,
          );
        }
      }
      return { dtype: "bool", shape, data: out };
    }
    case "F16":
    case "BF16": {
      // the bit patterns as they are: a float16 / bfloat16 tensor (widen with .to("float32"), exactly)
      const out = e.dtype === "F16" ? new Float16Bits(n) : new BFloat16Bits(n);
      if (HOST_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(off, off + 2 * n));
      else for (let i = 0; i < n; i++) out[i] = view.getUint16(off + 2 * i, true);
      return { dtype: e.dtype === "F16" ? "float16" : "bfloat16", shape, data: out };
    }
    default:
      return { dtype: "int32", shape, data: decodeIntToInt32(view, off, n, e) };
  }
}

/** Widen or narrow a non-int32 integer dtype to int32, refusing values outside [-2^31, 2^31). */
function decodeIntToInt32(view: DataView, off: number, n: number, e: SafetensorsEntry): Int32Array {
  const out = new Int32Array(n);
  const tooBig = (i: number, value: string): never => {
    throw new FormatError(
      `${READ_OP}: tensor '${e.name}': ${e.dtype} element ${i} has value ${value}, which does not fit in int32 (chainrule's integer dtype)`,
    );
  };
  switch (e.dtype) {
    case "U8":
      for (let i = 0; i < n; i++) out[i] = view.getUint8(off + i);
      break;
    case "I8":
      for (let i = 0; i < n; i++) out[i] = view.getInt8(off + i);
      break;
    case "I16":
      for (let i = 0; i < n; i++) out[i] = view.getInt16(off + 2 * i, true);
      break;
    case "U16":
      for (let i = 0; i < n; i++) out[i] = view.getUint16(off + 2 * i, true);
      break;
    case "U32":
      for (let i = 0; i < n; i++) {
        const v = view.getUint32(off + 4 * i, true);
        if (v > 0x7fffffff) tooBig(i, String(v));
        out[i] = v;
      }
      break;
    case "I64":
    case "U64":
      for (let i = 0; i < n; i++) {
        const lo = view.getInt32(off + 8 * i, true);
        const hi = view.getInt32(off + 8 * i + 4, true);
        // A 64-bit integer fits in int32 iff its high word is the sign extension of the low word (for U64
        // the value must also be non-negative, i.e. hi = 0 and lo >= 0).
        if (hi !== lo >> 31 || (e.dtype === "U64" && hi !== 0)) {
          const big =
            e.dtype === "I64" ? view.getBigInt64(off + 8 * i, true) : view.getBigUint64(off + 8 * i, true);
          tooBig(i, big.toString());
        }
        out[i] = lo;
      }
      break;
    default:
      throw new Error(`internal: ${READ_OP}: no integer decoder for ${e.dtype}`);
  }
  return out;
}

/** Order strings by Unicode code point (= UTF-8 byte order, which the reference implementation sorts by). */
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return a.length - i - (b.length - j);
}

/** Reject strings with unpaired UTF-16 surrogates: they have no UTF-8 encoding (TextEncoder would alter them). */
function checkWellFormed(what: string, s: string): void {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)) {
    throw new FormatError(
      `${WRITE_OP}: ${what} contains an unpaired UTF-16 surrogate, which UTF-8 cannot encode`,
    );
  }
}

function jsonKind(v: JsonValue | undefined): string {
  if (v === undefined) return "(missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (isJsonObject(v)) return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "object";
  return typeof x;
}
