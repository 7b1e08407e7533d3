/**
 * Node file helpers for safetensors (the format itself is in the browser-compatible safetensors.ts).
 *
 * Saving writes to a temporary file in the same directory and renames it over the target, so an interrupted
 * save (a crash mid-checkpoint) never leaves a truncated file where a good one was.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import type { RawTensor } from "./raw.ts";
import {
  type ParsedSafetensors,
  type ParseSafetensorsOptions,
  parseSafetensors,
  serializeSafetensors,
} from "./safetensors.ts";

function tempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

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
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = tempPath(path);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
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
  return parseSafetensors(await readFile(path), opts);
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
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = tempPath(path);
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Synchronous {@link loadSafetensorsFile}.
 *
 * @example
 * const { tensors } = loadSafetensorsFileSync("model.safetensors");
 */
export function loadSafetensorsFileSync(path: string, opts?: ParseSafetensorsOptions): ParsedSafetensors {
  return parseSafetensors(readFileSync(path), opts);
}
