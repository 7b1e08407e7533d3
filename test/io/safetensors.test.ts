/**
 * safetensors: round trips of every dtype (0-d and empty tensors included), byte-exact layout against files
 * built by hand (and the reference implementation's published test vectors), the extra read dtypes, and
 * every malformed-header rejection.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FormatError } from "../../src/errors.ts";
import { decodeBF16, decodeF16, f16BitsToNumber, numberToF16Bits } from "../../src/io/half.ts";
import type { RawTensor } from "../../src/io/raw.ts";
import { parseSafetensors, parseSafetensorsHeader, serializeSafetensors } from "../../src/io/safetensors.ts";
import {
  loadSafetensorsFile,
  loadSafetensorsFileSync,
  saveSafetensorsFile,
  saveSafetensorsFileSync,
} from "../../src/io/safetensors-node.ts";

/** Build a safetensors file by hand: u64 LE header length, header text (unpadded unless given), data. */
function file(header: string | object, data: ArrayLike<number> = []): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function le(
  ctor: Float32ArrayConstructor | Int32ArrayConstructor | Float64ArrayConstructor,
  values: number[],
) {
  return new Uint8Array(new ctor(values).buffer);
}

function rejects(bytes: Uint8Array, pattern: RegExp, opts?: { maxHeaderBytes?: number }): void {
  assert.throws(
    () => parseSafetensors(bytes, opts),
    (err: unknown) => {
      assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

const sample: Record<string, RawTensor> = {
  "layer.weight": {
    dtype: "float32",
    shape: [2, 3],
    data: new Float32Array([1, -2.5, 3e-8, Infinity, -0, NaN]),
  },
  "layer.bias": { dtype: "float64", shape: [3], data: new Float64Array([Math.PI, -1e300, 5e-324]) },
  steps: { dtype: "int32", shape: [], data: new Int32Array([-2147483648]) },
  ids: { dtype: "int32", shape: [2, 2], data: new Int32Array([0, 2147483647, -1, 7]) },
  mask: { dtype: "bool", shape: [5], data: new Uint8Array([1, 0, 0, 1, 1]) },
  empty: { dtype: "float32", shape: [0], data: new Float32Array(0) },
  empty2: { dtype: "float64", shape: [2, 0, 3], data: new Float64Array(0) },
  emptyBool: { dtype: "bool", shape: [0, 4], data: new Uint8Array(0) },
  scalar: { dtype: "float64", shape: [], data: new Float64Array([-7.25]) },
};

test("round trip of every dtype, 0-d and empty tensors, and metadata", () => {
  const bytes = serializeSafetensors(sample, { format: "chainrule", note: 'quotes " and ünïcödé ✓ 🎉' });
  const { tensors, metadata, fileDtypes } = parseSafetensors(bytes);
  assert.deepEqual(metadata, { format: "chainrule", note: 'quotes " and ünïcödé ✓ 🎉' });
  assert.deepEqual(Object.keys(tensors).sort(), Object.keys(sample).sort());
  for (const [name, t] of Object.entries(sample)) {
    const got = tensors[name];
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.equal(got.data.constructor, t.data.constructor, name);
    // Compare bit patterns so -0 and NaN are checked exactly.
    assert.deepEqual(
      new Uint8Array(got.data.buffer, got.data.byteOffset, got.data.byteLength),
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      name,
    );
  }
  assert.equal(fileDtypes["layer.weight"], "F32");
  assert.equal(fileDtypes["layer.bias"], "F64");
  assert.equal(fileDtypes.steps, "I32");
  assert.equal(fileDtypes.mask, "BOOL");
  assert.ok(Object.is(tensors["layer.weight"].data[4], -0));
});

test("no tensors and no metadata round trips to empty records", () => {
  const { tensors, metadata } = parseSafetensors(serializeSafetensors({}));
  assert.deepEqual(tensors, {});
  assert.deepEqual(metadata, {});
});

test("writer orders tensors by alignment then name, pads the header to 8, and aligns every tensor", () => {
  const bytes = serializeSafetensors(sample);
  const header = parseSafetensorsHeader(bytes);
  assert.equal(header.dataStart % 8, 0);
  const byOffset = [...header.entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  assert.deepEqual(
    byOffset.map((e) => e.name),
    ["empty2", "layer.bias", "scalar", "empty", "layer.weight", "ids", "steps", "emptyBool", "mask"],
  );
  const size = { F64: 8, F32: 4, I32: 4, BOOL: 1 } as Record<string, number>;
  for (const e of header.entries) assert.equal((header.dataStart + e.begin) % size[e.dtype], 0, e.name);
  // The header is followed by spaces only up to the data.
  const text = new TextDecoder().decode(bytes.subarray(8, header.dataStart));
  assert.match(text, /^\{.*\} *$/);
  assert.ok(text.length - text.trimEnd().length < 8);
});

test("byte-exact layout: one F32 tensor (the reference implementation's test vector)", () => {
  const bytes = serializeSafetensors({
    "attn.0": { dtype: "float32", shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
  });
  // prettier-ignore
  const expected = [
    64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34,
    58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100,
    97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0,
    0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
  ];
  assert.deepEqual([...bytes], expected);
});

test("byte-exact layout: padding, empty file, metadata only", () => {
  const padded = serializeSafetensors({
    attn0: { dtype: "float32", shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) },
  });
  const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}'; // 65 bytes -> pad 7
  assert.equal(header.length, 65);
  assert.deepEqual([...padded], [...file(`${header}       `, le(Float32Array, [0, 1, 2, 3, 4, 5]))]);
  assert.equal(new DataView(padded.buffer).getUint32(0, true), 72);

  assert.deepEqual([...serializeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(
    [...serializeSafetensors({}, { framework: "pt" })],
    [...file('{"__metadata__":{"framework":"pt"}}     ')],
  );
});

test("byte-exact layout: several dtypes, metadata first, names escaped", () => {
  const bytes = serializeSafetensors(
    {
      b: { dtype: "bool", shape: [3], data: new Uint8Array([1, 0, 1]) },
      'q"x': { dtype: "int32", shape: [2], data: new Int32Array([-1, 258]) },
      a: { dtype: "float64", shape: [], data: new Float64Array([0.5]) },
    },
    { k: "v" },
  );
  const header =
    '{"__metadata__":{"k":"v"},"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},' +
    '"q\\"x":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"BOOL","shape":[3],"data_offsets":[16,19]}}';
  const pad = " ".repeat((8 - (header.length % 8)) % 8);
  const data = [...le(Float64Array, [0.5]), ...le(Int32Array, [-1, 258]), 1, 0, 1];
  assert.deepEqual([...bytes], [...file(header + pad, data)]);
});

test("writer normalizes bool bytes to 0/1 and sorts names by code point", () => {
  const bytes = serializeSafetensors({
    "\u{1F600}": { dtype: "bool", shape: [2], data: new Uint8Array([0, 7]) },
    "\uFF01": { dtype: "bool", shape: [1], data: new Uint8Array([1]) },
  });
  const h = parseSafetensorsHeader(bytes);
  // U+FF01 < U+1F600 by code point, although its UTF-16 code unit 0xFF01 > 0xD83D.
  assert.deepEqual(
    h.entries.map((e) => [e.name, e.begin]),
    [
      ["\uFF01", 0],
      ["\u{1F600}", 1],
    ],
  );
  assert.deepEqual([...parseSafetensors(bytes).tensors["\u{1F600}"].data], [0, 1]);
});

test("reader accepts other writers' layouts: unsorted offsets, whitespace, null metadata, unknown fields", () => {
  const header = `{ "b" : {"shape": [1], "dtype": "I32", "data_offsets": [0, 4], "extra": true},
    "__metadata__": null,
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]} }\n\t `;
  const bytes = file(header, [...le(Int32Array, [9]), ...le(Float32Array, [1.5, -2])]);
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual(metadata, {});
  assert.deepEqual([...tensors.a.data], [1.5, -2]);
  assert.deepEqual([...tensors.b.data], [9]);
  assert.deepEqual(Object.keys(tensors), ["b", "a"]);
});

test("reader copies unaligned data into fresh aligned arrays (and accepts a Node Buffer)", () => {
  const bytes = serializeSafetensors({
    x: { dtype: "float64", shape: [2], data: new Float64Array([1.25, -3]) },
  });
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  const view = shifted.subarray(3);
  const { tensors } = parseSafetensors(view);
  assert.deepEqual([...tensors.x.data], [1.25, -3]);
  assert.equal(tensors.x.data.byteOffset, 0);
  assert.notEqual(tensors.x.data.buffer, shifted.buffer);
  shifted.fill(0); // the result does not alias the input
  assert.deepEqual([...tensors.x.data], [1.25, -3]);
  assert.deepEqual([...parseSafetensors(Buffer.from(bytes)).tensors.x.data], [1.25, -3]);
});

test("a tensor named __proto__ is an ordinary entry", () => {
  const bytes = serializeSafetensors(
    JSON.parse('{"__proto__": {"dtype": "int32", "shape": [1], "data": null}}', (k, v) =>
      k === "data" ? new Int32Array([4]) : v,
    ),
  );
  const { tensors } = parseSafetensors(bytes);
  assert.ok(Object.hasOwn(tensors, "__proto__"));
  assert.equal(Object.getPrototypeOf(tensors), Object.prototype);
  assert.deepEqual([...Object.getOwnPropertyDescriptor(tensors, "__proto__")!.value.data], [4]);
});

test("F16 reads as float16 bit patterns, which widen to float32 exactly, for all 65536 patterns", () => {
  const bits = new Uint16Array(65536);
  for (let h = 0; h < 65536; h++) bits[h] = h;
  const bytes = file(
    { h: { dtype: "F16", shape: [65536], data_offsets: [0, 131072] } },
    new Uint8Array(bits.buffer),
  );
  const { tensors, fileDtypes } = parseSafetensors(bytes);
  assert.equal(fileDtypes.h, "F16");
  assert.equal(tensors.h.dtype, "float16");
  assert.deepEqual([...tensors.h.data], [...bits]);
  const t = { data: decodeF16(new Uint8Array(tensors.h.data.buffer), 0, 65536) };
  let nans = 0;
  for (let h = 0; h < 65536; h++) {
    const v = t.data[h];
    if (Number.isNaN(v)) {
      nans++;
      assert.ok(((h >> 10) & 0x1f) === 31 && (h & 0x3ff) !== 0, `pattern ${h} is NaN`);
      continue;
    }
    assert.ok(Object.is(v, f16BitsToNumber(h)), `pattern ${h}`);
    assert.equal(numberToF16Bits(v), h, `re-encode ${h}`);
  }
  assert.equal(nans, 2 * 1023);
  assert.equal(t.data[0x3c00], 1);
  assert.equal(t.data[0xc000], -2);
  assert.equal(t.data[0x7bff], 65504);
  assert.equal(t.data[0x0001], 2 ** -24);
  assert.equal(t.data[0x03ff], 1023 * 2 ** -24);
  assert.equal(t.data[0x0400], 2 ** -14);
  assert.equal(t.data[0x3555], 0.333251953125);
  assert.equal(t.data[0x7c00], Infinity);
  assert.equal(t.data[0xfc00], -Infinity);
  assert.ok(Object.is(t.data[0x8000], -0));
});

test("numberToF16Bits rounds to nearest, ties to even, and overflows to Infinity", () => {
  assert.equal(numberToF16Bits(1 + 2 ** -11), 0x3c00); // tie, 1.0 has the even mantissa
  assert.equal(numberToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie, rounds up to the even mantissa 2
  assert.equal(numberToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
  assert.equal(numberToF16Bits(65519), 0x7bff);
  assert.equal(numberToF16Bits(65520), 0x7c00);
  assert.equal(numberToF16Bits(-1e9), 0xfc00);
  assert.equal(numberToF16Bits(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal
  assert.equal(numberToF16Bits(3 * 2 ** -25), 0x0002);
  assert.equal(numberToF16Bits(2 ** -14 - 2 ** -26), 0x0400); // rounds up into the normal range
  assert.equal(numberToF16Bits(Number.NaN), 0x7e00);
  assert.equal(numberToF16Bits(-0), 0x8000);
});

test("BF16 reads as bfloat16 bit patterns, which widen bit-exactly to float32", () => {
  // 1.0 = 0x3F80, -2.5 = 0xC020, 3.140625 = 0x4049, +Inf = 0x7F80, smallest subnormal 0x0001.
  const data = [0x80, 0x3f, 0x20, 0xc0, 0x49, 0x40, 0x80, 0x7f, 0x01, 0x00];
  const { tensors } = parseSafetensors(
    file({ b: { dtype: "BF16", shape: [5], data_offsets: [0, 10] } }, data),
  );
  assert.equal(tensors.b.dtype, "bfloat16");
  assert.deepEqual([...tensors.b.data], [0x3f80, 0xc020, 0x4049, 0x7f80, 0x0001]);
  const wide = decodeBF16(new Uint8Array(tensors.b.data.buffer), 0, 5);
  assert.deepEqual([...wide], [1, -2.5, 3.140625, Infinity, 2 ** -133]);
});

test("small integer dtypes widen to int32", () => {
  const data = [0, 255, 0x80, 0x7f, 0x00, 0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
  const header = {
    u8: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
    i8: { dtype: "I8", shape: [2], data_offsets: [2, 4] },
    i16: { dtype: "I16", shape: [2], data_offsets: [4, 8] },
    u16: { dtype: "U16", shape: [1], data_offsets: [8, 10] },
    u32: { dtype: "U32", shape: [1], data_offsets: [10, 14] },
  };
  const { tensors } = parseSafetensors(file(header, data));
  for (const t of Object.values(tensors)) assert.equal(t.dtype, "int32");
  assert.deepEqual([...tensors.u8.data], [0, 255]);
  assert.deepEqual([...tensors.i8.data], [-128, 127]);
  assert.deepEqual([...tensors.i16.data], [-32768, 32767]);
  assert.deepEqual([...tensors.u16.data], [65535]);
  assert.deepEqual([...tensors.u32.data], [2147483647]);
});

function i64Bytes(values: bigint[], signed = true): Uint8Array {
  const out = new Uint8Array(8 * values.length);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    if (signed) v.setBigInt64(8 * i, x, true);
    else v.setBigUint64(8 * i, x, true);
  });
  return out;
}

test("I64 narrows to int32 when every value fits, otherwise names the tensor and element", () => {
  const ok = [0n, -1n, 2147483647n, -2147483648n, 12345n];
  const { tensors } = parseSafetensors(
    file({ idx: { dtype: "I64", shape: [5], data_offsets: [0, 40] } }, i64Bytes(ok)),
  );
  assert.equal(tensors.idx.dtype, "int32");
  assert.deepEqual([...tensors.idx.data], [0, -1, 2147483647, -2147483648, 12345]);

  rejects(
    file({ idx: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, i64Bytes([1n, 2147483648n])),
    /tensor 'idx': I64 element 1 has value 2147483648, which does not fit in int32/,
  );
  rejects(
    file({ idx: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, i64Bytes([-2147483649n])),
    /tensor 'idx': I64 element 0 has value -2147483649/,
  );
  rejects(
    file({ u: { dtype: "U64", shape: [1], data_offsets: [0, 8] } }, i64Bytes([2n ** 63n], false)),
    /tensor 'u': U64 element 0 has value 9223372036854775808/,
  );
  rejects(
    file({ u: { dtype: "U32", shape: [1], data_offsets: [0, 4] } }, [0, 0, 0, 0x80]),
    /tensor 'u': U32 element 0 has value 2147483648/,
  );
  const { tensors: u } = parseSafetensors(
    file({ u: { dtype: "U64", shape: [1], data_offsets: [0, 8] } }, i64Bytes([7n], false)),
  );
  assert.deepEqual([...u.u.data], [7]);
});

test("rejects files too short, oversized or truncated headers", () => {
  rejects(new Uint8Array(5), /5 bytes, too short/);
  const big = new Uint8Array(16);
  new DataView(big.buffer).setUint32(4, 256, true); // N = 2^40
  rejects(big, /header length 1099511627776 exceeds the limit of 100000000 bytes/);
  rejects(
    file({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, [0, 0, 0, 0]),
    /exceeds the limit of 10 bytes/,
    {
      maxHeaderBytes: 10,
    },
  );
  const trunc = new Uint8Array(20);
  new DataView(trunc.buffer).setUint32(0, 100, true);
  rejects(trunc, /header length 100 runs past the end of the file \(20 bytes\)/);
});

test("rejects headers that are not UTF-8, not JSON or not an object", () => {
  const bad = file('{"a":1}');
  bad[10] = 0xff;
  rejects(bad, /not valid UTF-8/);
  rejects(file('{"a": {"dtype": "F32",'), /invalid JSON at character \d+: unexpected end of input/);
  rejects(file("[1, 2]"), /must be a JSON object starting with '\{'/);
  rejects(file(' {"a": 1}'), /starting with '\{'/);
  rejects(file("\uFEFF{}"), /starting with '\{'/);
  rejects(file("{} x"), /unexpected text after the JSON value/);
  rejects(file('{"a": 1,}'), /expected a string key/);
  rejects(file('{"a\u0001": 1}'), /unescaped control character/);
  rejects(file('{"\\ud800": 1}'), /lone high surrogate/);
  rejects(file(`{"__metadata__": ${"[".repeat(5000)}${"]".repeat(5000)}}`), /nesting deeper than 64 levels/);
});

test("rejects duplicate keys", () => {
  const e = { dtype: "F32", shape: [1], data_offsets: [0, 4] };
  rejects(file(`{"w": ${JSON.stringify(e)}, "w": ${JSON.stringify(e)}}`, [0, 0, 0, 0]), /duplicate key "w"/);
  rejects(
    file(`{"w": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}`, [0, 0, 0, 0]),
    /duplicate key "dtype"/,
  );
  rejects(file('{"__metadata__": {"k": "a", "k": "b"}}'), /duplicate key "k"/);
});

test("rejects bad metadata", () => {
  rejects(
    file('{"__metadata__": {"epoch": 3}}'),
    /metadata value for key 'epoch' must be a string, got number 3/,
  );
  rejects(file('{"__metadata__": {"k": null}}'), /metadata value for key 'k' must be a string, got null/);
  rejects(file('{"__metadata__": "x"}'), /'__metadata__' must be an object of strings, got string "x"/);
  rejects(file('{"__metadata__": ["x"]}'), /must be an object of strings, got an array/);
});

test("rejects entries that are not objects or have a bad dtype", () => {
  rejects(
    file('{"w": 5}'),
    /tensor 'w': entry must be an object \{dtype, shape, data_offsets\}, got number 5/,
  );
  rejects(file('{"w": [1, 2]}'), /tensor 'w': entry must be an object.*got an array/);
  rejects(file('{"w": null}'), /tensor 'w': entry must be an object.*got null/);
  const entry = (dtype: unknown) => ({ w: { dtype, shape: [1], data_offsets: [0, 1] } });
  rejects(file(entry("F8_E4M3"), [0]), /tensor 'w': unknown or unsupported dtype "F8_E4M3"/);
  rejects(file(entry("f32"), [0]), /tensor 'w': unknown or unsupported dtype "f32"/);
  rejects(file(entry(4), [0]), /tensor 'w': unknown or unsupported dtype 4/);
  rejects(
    file('{"w": {"shape": [1], "data_offsets": [0, 1]}}', [0]),
    /tensor 'w': unknown .* dtype \(missing\)/,
  );
  rejects(file(entry("constructor"), [0]), /unknown or unsupported dtype "constructor"/);
});

test("rejects bad shapes", () => {
  const entry = (shape: unknown) => ({ w: { dtype: "U8", shape, data_offsets: [0, 2] } });
  rejects(file(entry([-2]), [0, 0]), /tensor 'w': shape \[-2\] has an invalid dimension -2/);
  rejects(file(entry([2.5]), [0, 0]), /tensor 'w': shape \[2.5\] has an invalid dimension 2.5/);
  rejects(file(entry(["2"]), [0, 0]), /invalid dimension "2"/);
  rejects(file(entry([1e20]), [0, 0]), /invalid dimension 100000000000000000000/);
  rejects(file(entry(2), [0, 0]), /tensor 'w': 'shape' must be an array of dimensions, got number 2/);
  rejects(
    file('{"w": {"dtype": "U8", "data_offsets": [0, 2]}}', [0, 0]),
    /'shape' must be an array.*\(missing\)/,
  );
});

test("rejects bad or inconsistent data_offsets", () => {
  const entry = (offs: unknown, shape = [2]) => ({ w: { dtype: "F32", shape, data_offsets: offs } });
  const eight = new Uint8Array(8);
  rejects(file(entry([0]), eight), /tensor 'w': 'data_offsets' must be \[begin, end\].*got \[0\]/);
  rejects(file(entry([0, 8, 8]), eight), /'data_offsets' must be \[begin, end\]/);
  rejects(file(entry([-8, 0]), eight), /'data_offsets' must be \[begin, end\] with non-negative integers/);
  rejects(file(entry([0, 7.5]), eight), /'data_offsets' must be/);
  rejects(file(entry("0,8"), eight), /'data_offsets' must be/);
  rejects(file('{"w": {"dtype": "F32", "shape": [2]}}', eight), /'data_offsets' must be .*\(missing\)/);
  rejects(file(entry([8, 0]), eight), /tensor 'w': data_offsets \[8, 0\] end before they begin/);
  rejects(file(entry([0, 16]), eight), /tensor 'w': data_offsets \[0, 16\] run past the end of the file/);
  rejects(
    file(entry([0, 8], [3]), eight),
    /tensor 'w': data_offsets \[0, 8\] cover 8 bytes but dtype F32 with shape \[3\] needs 12 bytes/,
  );
  rejects(
    file(entry([0, 8], [2, 0]), eight),
    /cover 8 bytes but dtype F32 with shape \[2, 0\] needs 0 bytes/,
  );
});

test("rejects overlaps, holes and trailing bytes", () => {
  const t = (begin: number, end: number) => ({
    dtype: "U8",
    shape: [end - begin],
    data_offsets: [begin, end],
  });
  const bytes = (n: number) => new Uint8Array(n);
  rejects(
    file({ a: t(0, 4), b: t(2, 6) }, bytes(6)),
    /tensor 'b' data_offsets \[2, 6\] overlap tensor 'a' \[0, 4\]/,
  );
  rejects(file({ a: t(0, 4), b: t(0, 4) }, bytes(4)), /overlap/);
  rejects(
    file({ a: t(0, 4), e: t(2, 2) }, bytes(4)),
    /tensor 'e' data_offsets \[2, 2\] overlap tensor 'a' \[0, 4\]/,
  );
  rejects(
    file({ a: t(0, 2), b: t(3, 4) }, bytes(4)),
    /tensor 'b' begins at byte 3 .* hole of 1 unused bytes/,
  );
  rejects(file({ b: t(2, 4) }, bytes(4)), /tensor 'b' begins at byte 2 .* hole of 2 unused bytes/);
  rejects(file({ a: t(0, 2) }, bytes(5)), /the tensors cover 2 bytes .* holds 5 bytes \(3 trailing bytes/);
  rejects(file({}, bytes(1)), /cover 0 bytes of the data buffer but it holds 1 bytes/);
  // Empty tensors may sit at any tensor boundary.
  const ok = parseSafetensors(file({ a: t(0, 2), e: t(2, 2), z: t(0, 0), b: t(2, 3) }, [5, 6, 7]));
  assert.deepEqual([...ok.tensors.a.data, ...ok.tensors.b.data], [5, 6, 7]);
  assert.equal(ok.tensors.e.data.length, 0);
});

test("rejects BOOL bytes other than 0 and 1", () => {
  rejects(
    file({ m: { dtype: "BOOL", shape: [3], data_offsets: [0, 3] } }, [1, 0, 2]),
    /tensor 'm': BOOL element 2 has byte value 2 \(expected 0 or 1\)/,
  );
});

test("serialize validates its input", () => {
  const w = (t: object) => () => serializeSafetensors({ w: t as RawTensor });
  assert.throws(
    w({ dtype: "float8", shape: [1], data: new Float32Array(1) }),
    /tensor 'w' has unknown dtype 'float8'/,
  );
  assert.throws(
    w({ dtype: "float16", shape: [1], data: new Float32Array(1) }),
    /tensor 'w' of dtype float16 must store its data in a Float16Bits, got Float32Array/,
  );
  assert.throws(
    w({ dtype: "float32", shape: [3], data: new Float32Array(2) }),
    /shape \[3\] \(3 elements\) but its data holds 2/,
  );
  assert.throws(
    w({ dtype: "float32", shape: [2], data: new Float64Array(2) }),
    /must store its data in a Float32Array, got Float64Array/,
  );
  assert.throws(w({ dtype: "int32", shape: [-1], data: new Int32Array(1) }), /invalid shape \[-1\]/);
  assert.throws(w({ dtype: "int32", shape: [1.5], data: new Int32Array(1) }), FormatError);
  assert.throws(
    w({ dtype: "bool", shape: [1], data: [1] }),
    /must store its data in a Uint8Array, got object/,
  );
  assert.throws(
    () => serializeSafetensors({ __metadata__: { dtype: "int32", shape: [], data: new Int32Array(1) } }),
    /'__metadata__' is reserved/,
  );
  assert.throws(
    () => serializeSafetensors({}, { epoch: 3 } as unknown as Record<string, string>),
    /metadata value for key 'epoch' must be a string, got number/,
  );
  assert.throws(
    () => serializeSafetensors({ "bad\uD800": { dtype: "int32", shape: [], data: new Int32Array(1) } }),
    /unpaired UTF-16 surrogate/,
  );
  assert.throws(
    () => parseSafetensors([1, 2, 3] as unknown as Uint8Array),
    /expected a Uint8Array of file bytes, got Array/,
  );
});

test("file helpers save atomically and load, async and sync", async () => {
  const dir = mkdtempSync(join(tmpdir(), "chainrule-st-"));
  try {
    const path = join(dir, "model.safetensors");
    await saveSafetensorsFile(path, sample, { epoch: "3" });
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]); // no temporary file left behind
    const loaded = await loadSafetensorsFile(path);
    assert.deepEqual(loaded.metadata, { epoch: "3" });
    assert.deepEqual([...loaded.tensors.ids.data], [0, 2147483647, -1, 7]);
    assert.deepEqual(new Uint8Array(readFileSync(path)), serializeSafetensors(sample, { epoch: "3" }));

    const path2 = join(dir, "b.safetensors");
    saveSafetensorsFileSync(path2, { s: sample.scalar });
    assert.deepEqual([...loadSafetensorsFileSync(path2).tensors.s.data], [-7.25]);

    // A failing save (invalid tensor) leaves no file at all.
    const path3 = join(dir, "c.safetensors");
    await assert.rejects(
      saveSafetensorsFile(path3, { x: { dtype: "int32", shape: [2], data: new Int32Array(1) } }),
      FormatError,
    );
    assert.equal(existsSync(path3), false);
    await assert.rejects(loadSafetensorsFile(join(dir, "missing.safetensors")), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
