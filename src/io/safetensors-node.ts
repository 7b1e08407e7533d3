/**
 * Node file helpers for safetensors (the format itself is in the browser-compatible safetensors.ts).
 *
 * Saving writes to a temporary file in the same directory, fsyncs it and renames it over the target, so an
 * interrupted save (a crash mid-checkpoint) never leaves a truncated file where a good one was. Loading reads
 * regular files only, header first (files-node.ts): a device, a FIFO or a huge announced header is refused
 * before any large read; every error names the file.
 */
import { namingFile, readSafetensorsFileBytes, writeFileAtomic } from "./files-node.ts";
import type { RawTensor } from "./raw.ts";
import {
  type ParsedSafetensors,
  type ParseSafetensorsOptions,
  parseSafetensors,
  serializeSafetensors,
} from "./safetensors.ts";

/**
 * Write tensors (and optional string metadata) to a .safetensors file, atomically.
 *
 * @example
 * await saveSafetensorsFile("model.safetensors", { w: { dtype: "float32", shape: [1], data: new Float32Array([2]) } });
 */
export async function saveSafetensorsFile(
  path: string,
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  // synchronous underneath: the write, its fsync and the rename must not interleave with other writes
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/**
 * Read a .safetensors file into tensors and metadata (see parseSafetensors for the validation done).
 *
 * @example
 * const { tensors, metadata } = await loadSafetensorsFile("model.safetensors");
 */
export async function loadSafetensorsFile(
  path: string,
  opts?: ParseSafetensorsOptions,
): Promise<ParsedSafetensors> {
  // header first, bounded, regular files only (see files-node.ts); errors name the file
  return loadSafetensorsFileSync(path, opts);
}

/**
 * Synchronous {@link saveSafetensorsFile}.
 *
 * @example
 * saveSafetensorsFileSync("model.safetensors", tensors, { epoch: "3" });
 */
export function saveSafetensorsFileSync(
  path: string,
  tensors: Record<string, RawTensor>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/**
 * Synchronous {@link loadSafetensorsFile}.
 *
 * @example
 * const { tensors } = loadSafetensorsFileSync("model.safetensors");
 */
export function loadSafetensorsFileSync(path: string, opts?: ParseSafetensorsOptions): ParsedSafetensors {
  const bytes = readSafetensorsFileBytes(path, opts);
  return namingFile(path, () => parseSafetensors(bytes, opts));
}
