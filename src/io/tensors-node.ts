/**
 * Node file helpers for tensors: save/load a .safetensors file of named tensors, and save/load a training
 * checkpoint (model weights, optimizer state, extras) as one .safetensors file. The byte encoding lives in
 * the browser-compatible tensors.ts; writes are atomic (temporary file + rename, see safetensors-node.ts), so
 * a crash mid-save never leaves a truncated checkpoint behind.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { Tensor } from "../tensor/tensor.ts";
import {
  type Checkpoint,
  checkpointToSafetensors,
  safetensorsToCheckpoint,
  safetensorsToTensors,
  type TensorsWithMetadata,
  tensorsToSafetensors,
} from "./tensors.ts";

/** Write `bytes` to `path` through a temporary file in the same directory and a rename. */
function writeAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Save named tensors (and optional string metadata) to a .safetensors file, atomically.
 *
 * @example
 * saveSafetensors("model.safetensors", model.stateDict(), { epoch: "10" });
 */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  writeAtomic(path, tensorsToSafetensors(tensors, metadata));
}

/**
 * Load a .safetensors file (from chainrule or any other writer) into tensors and metadata.
 *
 * @example
 * const { tensors } = loadSafetensors("model.safetensors");
 * model.loadStateDict(tensors);
 */
export function loadSafetensors(path: string): TensorsWithMetadata {
  return safetensorsToTensors(readFileSync(path));
}

/**
 * Save a training checkpoint as one .safetensors file: model tensors under "model.*", optimizer tensors under
 * "optim.*" (structure, numbers and param groups as JSON metadata) and extras (JSON, tensors under
 * "extra.*"). The file opens in any safetensors reader.
 *
 * @example
 * saveCheckpoint("ckpt.safetensors", { model: model.stateDict(), optimizer: opt.stateDict(), extra: { epoch } });
 */
export function saveCheckpoint(path: string, ckpt: Checkpoint): void {
  writeAtomic(path, checkpointToSafetensors(ckpt));
}

/**
 * Load a checkpoint written by {@link saveCheckpoint}; `metadata` holds the file's raw metadata.
 *
 * @example
 * const { model, optimizer, extra } = loadCheckpoint("ckpt.safetensors");
 * net.loadStateDict(model);
 * if (optimizer) opt.loadStateDict(optimizer);
 */
export function loadCheckpoint(path: string): Checkpoint & { metadata: Record<string, string> } {
  return safetensorsToCheckpoint(readFileSync(path));
}
