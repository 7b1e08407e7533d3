/**
 * Bounded, crash-safe file access for the Node readers and writers of src/io.
 *
 * Reading: a path given by a user may name a character device (`/dev/zero` never ends), a FIFO (reading blocks
 * until a writer appears, possibly forever) or a directory. `readRegularFile` opens without blocking, refuses
 * anything but a regular file (fstat on the open descriptor, so the check and the read see the same file) and
 * reads exactly the size fstat reported, at most `maxBytes`. Safetensors files are read header first: the
 * 8-byte length, then that many header bytes, then (once the header is validated against the file size) the
 * body, so a bad header never causes a large read or allocation.
 *
 * Writing: `writeFileAtomic` writes a temporary file next to the target, fsyncs it, renames it over the target
 * and fsyncs the directory, so after a crash the target holds either the old or the new contents, never a
 * prefix; `removeStaleTemps` deletes temporary files a killed writer left behind.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { FormatError } from "../errors.ts";
import {
  type ParseSafetensorsOptions,
  parseSafetensorsHeaderPrefix,
  type SafetensorsHeader,
  safetensorsHeaderLength,
} from "./safetensors.ts";

/** Open flags: read-only, and never block on a FIFO (the fstat check below then refuses it). */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Run `f` on a descriptor of `path` after checking that it is a regular file; closes it in every case. */
export function withRegularFile<T>(op: string, path: string, f: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    throw new FormatError(`${op}: cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isDirectory()
        ? "a directory"
        : st.isFIFO()
          ? "a FIFO (named pipe)"
          : st.isCharacterDevice() || st.isBlockDevice()
            ? "a device"
            : st.isSocket()
              ? "a socket"
              : "not a regular file";
      throw new FormatError(`${op}: ${path} is ${kind}; expected a regular file`);
    }
    return f(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

/** Read exactly `length` bytes at `position` (a file that shrank while being read is an error). */
function readExactly(op: string, path: string, fd: number, length: number, position: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) {
      throw new FormatError(`${op}: ${path} ended after ${position + done} bytes while being read`);
    }
    done += n;
  }
  return out;
}

/**
 * Read a whole regular file (not a device, FIFO or directory) of at most `maxBytes` bytes.
 *
 * @example
 * const bytes = readRegularFile("readIdxFile", "train-labels-idx1-ubyte.gz");
 */
export function readRegularFile(op: string, path: string, maxBytes = 2 ** 31 - 1): Uint8Array {
  return withRegularFile(op, path, (fd, size) => {
    if (size > maxBytes) {
      throw new FormatError(`${op}: ${path} is ${size} bytes, more than the limit of ${maxBytes}`);
    }
    return readExactly(op, path, fd, size, 0);
  });
}

/** Prefix a FormatError's message with the file path (other errors pass through). */
export function namingFile<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof FormatError && !err.message.includes(path)) {
      throw new FormatError(`${path}: ${err.message}`);
    }
    throw err;
  }
}

/** A validated safetensors header, read from a file without reading its data. */
export interface SafetensorsFileHeader extends SafetensorsHeader {
  fileSize: number;
}

/**
 * Read and validate only the header of a .safetensors file: 8 bytes, then the announced header length
 * (capped), then nothing more. Offsets are checked against the file's size. Errors name the file.
 *
 * @example
 * readSafetensorsFileHeader("model.safetensors").entries.map((e) => e.shape);
 */
export function readSafetensorsFileHeader(
  path: string,
  opts: ParseSafetensorsOptions = {},
): SafetensorsFileHeader {
  return namingFile(path, () =>
    withRegularFile("parseSafetensors", path, (fd, size) => ({
      ...readHeader(path, fd, size, opts),
      fileSize: size,
    })),
  );
}

function readHeader(
  path: string,
  fd: number,
  size: number,
  opts: ParseSafetensorsOptions,
): SafetensorsHeader {
  const first8 = readExactly("parseSafetensors", path, fd, Math.min(8, size), 0);
  const headerLen = safetensorsHeaderLength(first8, size, opts);
  const prefix = new Uint8Array(8 + headerLen);
  prefix.set(first8);
  prefix.set(readExactly("parseSafetensors", path, fd, headerLen, 8), 8);
  return parseSafetensorsHeaderPrefix(prefix, size, opts);
}

/**
 * Read a .safetensors file's bytes header first: the header is validated (length cap, JSON, offsets covering
 * exactly the file's data) before the body is read, so the bytes returned are those of a well-formed file.
 *
 * @example
 * const bytes = readSafetensorsFileBytes("model.safetensors"); // then parseSafetensors(bytes)
 */
export function readSafetensorsFileBytes(path: string, opts: ParseSafetensorsOptions = {}): Uint8Array {
  return namingFile(path, () =>
    withRegularFile("parseSafetensors", path, (fd, size) => {
      readHeader(path, fd, size, opts);
      return readExactly("parseSafetensors", path, fd, size, 0);
    }),
  );
}

/** The suffix of the temporary files {@link writeFileAtomic} writes: `<target>.tmp-<pid>-<random>`. */
const TEMP_INFIX = ".tmp-";

/** fsync a directory so that a rename in it is durable (not possible on every platform: best effort). */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY);
    fsyncSync(fd);
  } catch {
    // Windows cannot open directories; the rename itself is still atomic there
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Write `bytes` to `path` atomically and durably: a temporary file in the same directory, written and fsynced,
 * renamed over `path`, then the directory fsynced. A crash leaves the old file or the new one, never a mix.
 *
 * @example
 * writeFileAtomic("runs/a/metrics.json", new TextEncoder().encode("{}"));
 */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}${TEMP_INFIX}${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const fd = openSync(tmp, "wx");
    try {
      const data = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

/**
 * Delete the temporary files that writers of `names` (file names in `dir`) left behind when they were killed
 * mid-write (`<name>.tmp-<pid>-<random>`). Only call this while holding the directory (no live writer).
 * Returns the paths removed.
 *
 * @example
 * removeStaleTemps("runs/a", ["checkpoint.safetensors", "model.safetensors", "metrics.json"]);
 */
export function removeStaleTemps(dir: string, names: readonly string[]): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed; // no directory yet: nothing to clean
  }
  for (const entry of entries) {
    const stale = names.some((n) => entry.startsWith(`${basename(n)}${TEMP_INFIX}`));
    if (stale) {
      const p = join(dir, entry);
      rmSync(p, { force: true });
      removed.push(p);
    }
  }
  return removed;
}
