/**
 * Node file helpers for tensors: save/load a .safetensors file of named tensors, and save/load a training
 * checkpoint (model weights, optimizer state, extras) as one .safetensors file. The byte encoding lives in
 * the browser-compatible tensors.ts; writes are atomic and durable (temporary file, fsync, rename, see
 * files-node.ts), so a crash mid-save never leaves a truncated checkpoint behind; reads accept regular files
 * only, header first, and every error names the file.
 */
import { namingFile, readSafetensorsFileBytes, writeFileAtomic } from "./files-node.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  type Checkpoint,
  checkpointToSafetensors,
  safetensorsToCheckpoint,
  safetensorsToTensors,
  type TensorsWithMetadata,
  tensorsToSafetensors,
} from "./tensors.ts";

/** Write `bytes` to `path`: temporary file, fsync, rename, fsync of the directory (see files-node.ts). */
const writeAtomic = writeFileAtomic;

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
  const bytes = readSafetensorsFileBytes(path);
  return namingFile(path, () => safetensorsToTensors(bytes));
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
  const bytes = readSafetensorsFileBytes(path);
  return namingFile(path, () => safetensorsToCheckpoint(bytes));
}
