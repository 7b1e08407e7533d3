/**
 * Regression tests of issue 8's file-reading items: readers refuse devices, FIFOs and directories instead of
 * reading forever or blocking; safetensors files are read header first (an announced header beyond the cap or
 * the file is refused from the first 8 bytes); gzipped IDX files inflate no further than the size their
 * header promises (a gzip bomb is an error, not gigabytes of memory); atomic writes leave no temporary file.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import { FormatError } from "../../src/errors.ts";
import {
  readRegularFile,
  readSafetensorsFileHeader,
  removeStaleTemps,
  writeFileAtomic,
} from "../../src/io/files-node.ts";
import { serializeIdx } from "../../src/io/idx.ts";
import { readIdxFile } from "../../src/io/idx-node.ts";
import { serializeSafetensors } from "../../src/io/safetensors.ts";
import { loadSafetensorsFile, loadSafetensorsFileSync } from "../../src/io/safetensors-node.ts";
import { loadCheckpoint, loadSafetensors } from "../../src/io/tensors-node.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "chainrule-files-"));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function formatError(re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, re);
    return true;
  };
}

test("every reader refuses /dev/zero, a FIFO and a directory without reading or blocking", async () => {
  const fifo = join(tmp(), "pipe");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  const dir = tmp();
  const readers: [string, (p: string) => unknown][] = [
    ["loadSafetensors", loadSafetensors],
    ["loadCheckpoint", loadCheckpoint],
    ["loadSafetensorsFileSync", (p) => loadSafetensorsFileSync(p)],
    ["readSafetensorsFileHeader", (p) => readSafetensorsFileHeader(p)],
    ["readIdxFile", (p) => readIdxFile(p)],
  ];
  for (const [name, read] of readers) {
    assert.throws(
      () => read("/dev/zero"),
      formatError(/\/dev\/zero is a device; expected a regular file/),
      name,
    );
    assert.throws(() => read(fifo), formatError(/is a FIFO \(named pipe\); expected a regular file/), name);
    assert.throws(() => read(dir), formatError(/is a directory; expected a regular file/), name);
  }
  await assert.rejects(loadSafetensorsFile("/dev/zero"), formatError(/is a device/));
  assert.throws(() => readRegularFile("t", "/dev/zero"), formatError(/is a device/));
});

test("safetensors files are read header first: a bad header length fails from the first 8 bytes", () => {
  const d = tmp();
  const file = (name: string, bytes: Uint8Array) => {
    const p = join(d, name);
    writeFileSync(p, bytes);
    return p;
  };
  const len = (n: bigint, extra = 0) => {
    const b = Buffer.alloc(8 + extra, 0x20);
    b.writeBigUInt64LE(n, 0);
    return b;
  };
  assert.throws(
    () => loadSafetensors(file("huge.st", len(2n ** 40n, 16))),
    formatError(/huge\.st: .*header length 1099511627776 exceeds the limit/),
  );
  assert.throws(
    () => loadSafetensors(file("past.st", len(1000n, 16))),
    formatError(/past\.st: .*runs past the end of the file \(24 bytes\)/),
  );
  assert.throws(
    () => loadSafetensors(file("short.st", new Uint8Array(3))),
    formatError(/short\.st: .*too short/),
  );
  // a valid file: the header alone describes it, with the size of the file
  const ok = serializeSafetensors(
    { w: { dtype: "float32", shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) } },
    { note: "x" },
  );
  const p = file("ok.st", ok);
  const h = readSafetensorsFileHeader(p);
  assert.equal(h.fileSize, ok.length);
  assert.deepEqual(
    h.entries.map((e) => [e.name, e.dtype, e.shape]),
    [["w", "F32", [2, 3]]],
  );
  assert.deepEqual(h.metadata, { note: "x" });
  assert.deepEqual(Array.from(loadSafetensors(p).tensors.w.dataSync()), [1, 2, 3, 4, 5, 6]);
  // a file cut inside its data: the header's offsets are checked against the file size before the data is read
  const cut = file("cut.st", ok.subarray(0, ok.length - 4));
  assert.throws(() => readSafetensorsFileHeader(cut), formatError(/cut\.st: .*run past the end of the file/));
});

test("a gzipped IDX file inflates no further than its header promises (gzip bomb)", () => {
  const d = tmp();
  // header: uint8, 1 dimension of 10 elements (18 bytes in all), followed by 64 MB of zeros
  const header = serializeIdx({ type: "uint8", shape: [10], data: new Uint8Array(10) });
  const bomb = Buffer.concat([Buffer.from(header), Buffer.alloc(64 * 2 ** 20)]);
  const bombPath = join(d, "bomb-idx1-ubyte.gz");
  writeFileSync(bombPath, gzipSync(bomb, { level: 9 }));
  assert.throws(
    () => readIdxFile(bombPath),
    formatError(
      /bomb-idx1-ubyte\.gz: the gzip data decompresses to more than the 18 bytes its IDX header promises/,
    ),
  );
  // a header promising more than the limit is refused before inflating
  const big = new Uint8Array(12);
  big.set([0, 0, 0x08, 2]);
  new DataView(big.buffer).setUint32(4, 65536, false);
  new DataView(big.buffer).setUint32(8, 65536, false);
  const bigPath = join(d, "big.gz");
  writeFileSync(bigPath, gzipSync(big));
  assert.throws(
    () => readIdxFile(bigPath, { maxBytes: 2 ** 30 }),
    formatError(/promises 4294967308 bytes of data, more than the limit of 1073741824/),
  );
  // honest files still read, gzipped or not, and a short gzip stream is reported as truncated data
  const good = serializeIdx({ type: "int16", shape: [3, 2], data: new Int16Array([1, -2, 3, -4, 5, -6]) });
  const goodPath = join(d, "good.gz");
  writeFileSync(goodPath, gzipSync(good));
  assert.deepEqual(Array.from(readIdxFile(goodPath).data), [1, -2, 3, -4, 5, -6]);
  const shortPath = join(d, "short.gz");
  writeFileSync(shortPath, gzipSync(good.subarray(0, good.length - 2)));
  assert.throws(() => readIdxFile(shortPath), formatError(/truncated data/));
  const junk = join(d, "junk.gz");
  writeFileSync(junk, gzipSync(new TextEncoder().encode("hello, not idx")));
  assert.throws(() => readIdxFile(junk), formatError(/junk\.gz: .*wrong magic number/));
});

test("atomic writes leave only the target; stale temporary files of the named outputs are removed", () => {
  const d = tmp();
  const target = join(d, "metrics.json");
  writeFileAtomic(target, "{}\n");
  writeFileAtomic(target, '{"a":1}\n');
  assert.deepEqual(readdirSync(d), ["metrics.json"]);
  writeFileSync(join(d, "metrics.json.tmp-1-aa"), "x");
  writeFileSync(join(d, "other.json.tmp-1-aa"), "x");
  const removed = removeStaleTemps(d, ["metrics.json", "model.safetensors"]);
  assert.deepEqual(removed, [join(d, "metrics.json.tmp-1-aa")]);
  assert.deepEqual(readdirSync(d).sort(), ["metrics.json", "other.json.tmp-1-aa"]);
});
