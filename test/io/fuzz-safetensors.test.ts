/**
 * Seeded mutation fuzzers of the file readers (issue 8): thousands of mutated safetensors files (bit flips,
 * truncations, appended bytes, edited header lengths, header JSON edits of dtypes, shapes, offsets, duplicated
 * and overlapping ranges, huge numbers, deep nesting), plus smaller runs on IDX (raw and gzipped) and CSV.
 *
 * The property: every input is either read correctly or rejected with the library's FormatError, never another
 * exception type, never a result larger than the input justifies. "Read correctly" is checked against an
 * independent reading: each tensor whose header entry and bytes are unchanged from the original file must have
 * exactly the original values, and after a bit flip inside the data only the tensor holding the flipped byte
 * may change. Seeds are fixed, so a failure names a reproducible case (seed, iteration, mutation).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import { FormatError } from "../../src/errors.ts";
import { csvToNumbers, parseCsv } from "../../src/io/csv.ts";
import { numberToF16Bits } from "../../src/io/half.ts";
import { parseIdx, serializeIdx } from "../../src/io/idx.ts";
import { readIdxFile } from "../../src/io/idx-node.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { loadSafetensorsFileSync } from "../../src/io/safetensors-node.ts";
import { prng } from "../prng.ts";

/** Seeded draws for the fuzzer (test/prng.ts). */
function rng(seed: number): { next(): number; int(n: number): number; pick<T>(xs: readonly T[]): T } {
  const next = prng(seed);
  return { next, int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

interface Entry {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Build a safetensors file by hand (independent of the serializer): entries in the given order. */
function build(
  entries: Record<string, Entry>,
  meta: Record<string, string>,
): { file: Uint8Array; header: string } {
  const head: Record<string, unknown> = { __metadata__: meta };
  let off = 0;
  for (const [name, e] of Object.entries(entries)) {
    head[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    off += e.bytes.length;
  }
  const header = JSON.stringify(head);
  return {
    file: assemble(
      header,
      Object.values(entries).map((e) => e.bytes),
    ),
    header,
  };
}

function assemble(header: string, data: Uint8Array[], lengthOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(header);
  const total = data.reduce((n, d) => n + d.length, 0);
  const out = new Uint8Array(8 + h.length + total);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  let p = 8 + h.length;
  for (const d of data) {
    out.set(d, p);
    p += d.length;
  }
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}

/** The original file: every dtype the reader accepts, a zero-size tensor, and metadata. */
function original(): { entries: Record<string, Entry>; file: Uint8Array; header: string } {
  const f16 = new Uint16Array([1, -2.5, 65504, 0.000061].map(numberToF16Bits));
  const bf16 = new Uint16Array([0x3f80, 0xc020, 0x7f80, 0x0001]);
  const entries: Record<string, Entry> = {
    "a.f64": { dtype: "F64", shape: [2], bytes: bytesOf(new Float64Array([Math.PI, -1e300])) },
    "b.f32": {
      dtype: "F32",
      shape: [2, 3],
      bytes: bytesOf(new Float32Array([1, 2, 3, -4, 5.5, Number.NaN])),
    },
    "c.i32": { dtype: "I32", shape: [3], bytes: bytesOf(new Int32Array([7, -8, 2 ** 31 - 1])) },
    "d.i64": { dtype: "I64", shape: [2], bytes: bytesOf(new BigInt64Array([-5n, 123456789n])) },
    "e.f16": { dtype: "F16", shape: [2, 2], bytes: bytesOf(f16) },
    "f.bf16": { dtype: "BF16", shape: [4], bytes: bytesOf(bf16) },
    "g.u8": { dtype: "U8", shape: [3, 1], bytes: new Uint8Array([0, 128, 255]) },
    "h.bool": { dtype: "BOOL", shape: [3], bytes: new Uint8Array([1, 0, 1]) },
    "i.empty": { dtype: "F32", shape: [0, 4], bytes: new Uint8Array(0) },
  };
  return { entries, ...build(entries, { format: "pt", note: "fuzz" }) };
}

const HUGE = [2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1, 1.5, 2 ** 63, Number.MAX_SAFE_INTEGER];
const DTYPES = [
  "F32",
  "F64",
  "I32",
  "BOOL",
  "F16",
  "BF16",
  "U8",
  "I8",
  "I16",
  "U16",
  "U32",
  "I64",
  "U64",
  "F8_E4M3",
  "X",
  "",
];

/** One structural edit of the header JSON (as text, so duplicate keys and odd values can be written). */
function editHeader(r: ReturnType<typeof rng>, header: string): string {
  const obj = JSON.parse(header) as Record<string, Record<string, unknown>>;
  const names = Object.keys(obj).filter((k) => k !== "__metadata__");
  const name = r.pick(names);
  const e = obj[name];
  const other = obj[r.pick(names)];
  const anyValue = () =>
    r.pick<unknown>([
      null,
      true,
      "3",
      [],
      {},
      -1,
      1.5,
      r.pick(HUGE),
      [[1]],
      { a: 1 },
      "x".repeat(r.int(300)),
    ]);
  switch (r.int(14)) {
    case 0:
      e.dtype = r.pick<unknown>([...DTYPES, 5, null, ["F32"]]);
      break;
    case 1:
      e.shape = r.pick<unknown>([
        [],
        [0],
        [-1],
        [r.pick(HUGE)],
        [2 ** 31, 2 ** 31],
        [1.5],
        ["2"],
        [[2]],
        "2",
        null,
      ]);
      break;
    case 2: {
      const shape = [...(e.shape as number[])];
      if (shape.length > 0) shape[r.int(shape.length)] = r.int(8);
      else shape.push(r.int(4));
      e.shape = r.next() < 0.5 ? shape : [...shape, 1 + r.int(3)];
      break;
    }
    case 3: {
      const [b, en] = e.data_offsets as number[];
      e.data_offsets = r.pick<unknown>([
        [en, b],
        [b, en + 1],
        [b + 1, en],
        [b, r.pick(HUGE)],
        [r.pick(HUGE), r.pick(HUGE)],
        [b],
        [b, en, en],
        other.data_offsets,
        [b - 1, en - 1],
        "0,4",
        null,
      ]);
      break;
    }
    case 4:
      // overlap: take the other tensor's range and its shape and dtype
      e.data_offsets = other.data_offsets;
      e.shape = other.shape;
      e.dtype = other.dtype;
      break;
    case 5:
      delete e[r.pick(["dtype", "shape", "data_offsets"])];
      break;
    case 6:
      e[r.pick(["extra", "dtype", "shape"])] = anyValue();
      break;
    case 7:
      obj.__metadata__ = r.pick<Record<string, unknown>>([{ k: 1 }, { k: null }, { k: ["v"] }, []] as never);
      break;
    case 8:
      obj[name] = anyValue() as Record<string, unknown>;
      break;
    case 9: {
      // a duplicated entry (JSON.stringify cannot write duplicate keys: splice the text)
      const text = JSON.stringify(obj);
      return `${text.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(e)}}`;
    }
    case 10: {
      const depth = r.pick([63, 64, 65, 1000, 100_000]);
      e.extra = undefined;
      const text = JSON.stringify(obj);
      return `${text.slice(0, -1)},"deep":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    }
    case 11:
      return r.pick([
        "",
        "[]",
        "null",
        "{",
        '{"a":}',
        "\u0000{}",
        '{"__proto__":{"dtype":"F32"}}',
        header.slice(0, r.int(header.length)),
      ]);
    case 12:
      obj[`new${r.int(3)}`] = { dtype: r.pick(DTYPES), shape: [r.int(3)], data_offsets: [0, r.int(12)] };
      break;
    default: {
      // swap two tensors' offsets (types and shapes stay)
      const t = e.data_offsets;
      e.data_offsets = other.data_offsets;
      other.data_offsets = t;
    }
  }
  return JSON.stringify(obj);
}

type Mutation = { kind: string; file: Uint8Array; flipAt?: number };

function mutate(r: ReturnType<typeof rng>, orig: ReturnType<typeof original>): Mutation {
  const f = orig.file;
  const headerEnd = 8 + new TextEncoder().encode(orig.header).length;
  switch (r.int(6)) {
    case 0: {
      const file = f.slice();
      const at = r.int(file.length);
      file[at] ^= 1 << r.int(8);
      return { kind: `flip byte ${at}`, file, flipAt: at };
    }
    case 1: {
      const n = r.int(f.length);
      return { kind: `truncate to ${n}`, file: f.slice(0, n) };
    }
    case 2: {
      const extra = new Uint8Array(1 + r.int(16)).map(() => r.int(256));
      const file = new Uint8Array(f.length + extra.length);
      file.set(f);
      file.set(extra, f.length);
      return { kind: `append ${extra.length}`, file };
    }
    case 3: {
      const len = BigInt(headerEnd - 8);
      const v = r.pick([
        0n,
        1n,
        len - 1n,
        len + 1n,
        len + 8n,
        2n ** 32n,
        2n ** 53n,
        2n ** 64n - 1n,
        BigInt(r.int(2 ** 30)),
      ]);
      const file = f.slice();
      new DataView(file.buffer).setBigUint64(0, v, true);
      return { kind: `header length ${v}`, file };
    }
    default: {
      const header = editHeader(r, orig.header);
      const data = [f.subarray(headerEnd)];
      const override = r.next() < 0.1 ? BigInt(headerEnd - 8) : undefined; // sometimes keep the old length
      return {
        kind: `header edit ${header.length > 200 ? `${header.slice(0, 200)}...` : header}`,
        file: assemble(header, data, override),
      };
    }
  }
}

/** The original tensors, decoded by the reader from the unmutated file (checked separately below). */
function decodedOriginal(file: Uint8Array) {
  return parseSafetensors(file).tensors;
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

test("safetensors mutation fuzzer: every mutated file is read correctly or refused with a FormatError", (t) => {
  const orig = original();
  const ref = decodedOriginal(orig.file);
  // the unmutated file reads back with the values written (independently of the fuzzing below)
  assert.deepEqual(Array.from(ref["c.i32"].data), [7, -8, 2 ** 31 - 1]);
  assert.deepEqual(Array.from(ref["d.i64"].data), [-5, 123456789]);
  // F16 / BF16 read as their bit patterns (float16 / bfloat16 tensors)
  assert.deepEqual(Array.from(ref["e.f16"].data), [1, -2.5, 65504, 0.000061].map(numberToF16Bits));
  assert.deepEqual(Array.from(ref["f.bf16"].data).slice(0, 3), [0x3f80, 0xc020, 0x7f80]);
  assert.deepEqual(ref["i.empty"].shape, [0, 4]);
  const origHeader = JSON.parse(orig.header) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: number[] }
  >;
  const origStart = orig.file.length - Object.values(orig.entries).reduce((n, e) => n + e.bytes.length, 0);
  const fileDir = mkdtempSync(join(tmpdir(), "chainrule-fuzz-st-"));
  after(() => rmSync(fileDir, { recursive: true, force: true }));
  const counts = { loaded: 0, refused: 0 };
  const kinds = new Set<string>();
  for (const seed of [1, 2, 3]) {
    const r = rng(seed);
    for (let it = 0; it < 1500; it++) {
      const m = mutate(r, orig);
      const where = `seed ${seed}, iteration ${it}: ${m.kind}`;
      if (it % 25 === 0) {
        // through the file reader too (header first, bounded): same outcome, and errors name the file
        const p = join(fileDir, `m${seed}-${it}.safetensors`);
        writeFileSync(p, m.file);
        try {
          loadSafetensorsFileSync(p);
        } catch (e) {
          if (!(e instanceof FormatError) || !e.message.includes(p)) {
            assert.fail(`${where} (file): threw ${String(e)} instead of a FormatError naming the file`);
          }
        }
      }
      let parsed: ReturnType<typeof parseSafetensors>;
      try {
        parsed = parseSafetensors(m.file);
      } catch (e) {
        if (!(e instanceof FormatError)) assert.fail(`${where}: threw ${String(e)} instead of a FormatError`);
        counts.refused++;
        // the kind of check that refused it: the message without its numbers and names
        kinds.add(e.message.replace(/'[^']*'|"[^"]*"|\[[^\]]*\]|\d+/g, "_").slice(0, 70));
        continue;
      }
      counts.loaded++;
      // a result is never larger than the file justifies (U8 widens 4x to int32)
      let bytes = 0;
      for (const t of Object.values(parsed.tensors)) {
        assert.equal(
          t.data.length,
          t.shape.reduce((a, b) => a * b, 1),
          `${where}: data length vs shape`,
        );
        bytes += t.data.byteLength;
      }
      assert.ok(
        bytes <= 4 * m.file.length,
        `${where}: ${bytes} decoded bytes from a ${m.file.length}-byte file`,
      );
      // values: a tensor whose entry and bytes are unchanged reads exactly as the original
      const text = new TextDecoder().decode(
        m.file.subarray(8, 8 + Number(new DataView(m.file.buffer).getBigUint64(0, true))),
      );
      const header = JSON.parse(text) as typeof origHeader;
      const start = 8 + new TextEncoder().encode(text).length;
      for (const [name, t] of Object.entries(parsed.tensors)) {
        const o = origHeader[name];
        const h = header[name];
        if (o === undefined || JSON.stringify([h.dtype, h.shape]) !== JSON.stringify([o.dtype, o.shape]))
          continue;
        const nowBytes = m.file.subarray(start + h.data_offsets[0], start + h.data_offsets[1]);
        const wasBytes = orig.file.subarray(origStart + o.data_offsets[0], origStart + o.data_offsets[1]);
        const touched = nowBytes.length !== wasBytes.length || nowBytes.some((b, i) => b !== wasBytes[i]);
        if (!touched) assert.ok(sameValues(t.data, ref[name].data), `${where}: tensor ${name} changed`);
        else
          assert.ok(m.flipAt !== undefined || h.data_offsets[0] !== o.data_offsets[0], `${where}: ${name}`);
      }
    }
  }
  t.diagnostic(`loaded ${counts.loaded}, refused ${counts.refused}; error kinds: ${[...kinds].length}`);
  // the mutations exercise both outcomes and many distinct checks of the reader
  assert.ok(kinds.size > 25, [...kinds].join("\n"));
  assert.ok(counts.loaded > 200 && counts.refused > 2000, JSON.stringify(counts));
});

test("IDX mutation fuzzer: raw and gzipped files are parsed or refused with a FormatError", () => {
  const dir = mkdtempSync(join(tmpdir(), "chainrule-fuzz-idx-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = serializeIdx({
    type: "int16",
    shape: [3, 4],
    data: new Int16Array(12).map((_, i) => i * 300 - 1500),
  });
  const r = rng(11);
  let loaded = 0;
  for (let it = 0; it < 1500; it++) {
    const f = base.slice(0, r.next() < 0.2 ? r.int(base.length) : base.length);
    const kind = r.int(3);
    if (kind === 0 && f.length > 0) f[r.int(f.length)] ^= 1 << r.int(8);
    const dims = Math.min(f[3] ?? 0, Math.floor((f.length - 4) / 4)); // dimension fields present
    if (kind === 1 && dims > 0) {
      const value = r.pick([0, 1, 2 ** 32 - 1, r.int(2 ** 31)]);
      new DataView(f.buffer).setUint32(4 + 4 * r.int(dims), value, false);
    }
    const where = `iteration ${it}`;
    try {
      const a = parseIdx(f);
      assert.equal(
        a.data.length,
        a.shape.reduce((x, y) => x * y, 1),
        where,
      );
      assert.ok(a.data.byteLength <= f.length, where);
      loaded++;
    } catch (e) {
      if (!(e instanceof FormatError)) assert.fail(`${where}: threw ${String(e)} instead of a FormatError`);
    }
    if (it % 10 === 0) {
      // the same bytes gzipped (sometimes with the gzip stream itself damaged), through the file reader
      const gz = gzipSync(f);
      if (r.next() < 0.5) gz[10 + r.int(gz.length - 10)] ^= 1 << r.int(8);
      const p = join(dir, `f${it}.gz`);
      writeFileSync(p, gz);
      try {
        readIdxFile(p, { maxBytes: 2 ** 20 });
      } catch (e) {
        if (!(e instanceof FormatError))
          assert.fail(`${where} (gzip): threw ${String(e)} instead of a FormatError`);
      }
    }
  }
  assert.ok(loaded > 100, `loaded ${loaded}`);
});

test("CSV fuzzer: random bytes and mutated tables parse or fail with a FormatError", () => {
  const base = 'a,b,"c, quoted"\n1,2.5,-3\n4,"5",6e2\n\r\n7,8,9';
  const r = rng(21);
  const alphabet = [",", '"', "\n", "\r", " ", "1", "-", ".", "e", "x", "\u0000", "\uFEFF"];
  for (let it = 0; it < 1500; it++) {
    const chars = [...base];
    for (let k = 1 + r.int(4); k > 0; k--) {
      const at = r.int(chars.length + 1);
      if (r.next() < 0.5) chars.splice(at, 1);
      else chars.splice(at, 0, r.pick(alphabet));
    }
    const text = chars.join("");
    for (const f of [() => parseCsv(text), () => csvToNumbers(text)]) {
      try {
        f();
      } catch (e) {
        if (!(e instanceof FormatError))
          assert.fail(`iteration ${it} ${JSON.stringify(text)}: threw ${String(e)}`);
      }
    }
  }
});
