/**
 * Rank-aware checkpoints and output: rank 0 writes, every rank can resume.
 *
 * Under data parallelism the model and optimizer state are the same on every rank, so one copy is saved, by
 * rank 0 (written atomically, see io/tensors-node.ts), and the others wait at a barrier until it is on disk.
 * Every rank loads the same file on resume (a file system all ranks see; for machines without one, copy the
 * file to each), whatever the world size: nothing in the checkpoint depends on it. DistributedDataParallel's
 * own state dict prefixes names with "module."; `saveCheckpoint` stores the wrapped model's names, so a
 * checkpoint loads into the bare model as well (one process, no MPI) and back into DDP.
 */
import { loadCheckpoint as loadFile, saveCheckpoint as saveFile } from "../io/tensors-node.ts";
import type { Checkpoint } from "../io/tensors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { barrier } from "./collectives.ts";
import { isInitialized, getRank } from "./process-group.ts";

/** Whether this process is rank 0 (also true when no process group was initialised). */
export function isMainProcess(): boolean {
  return !isInitialized() || getRank() === 0;
}

/** `console.log` on rank 0 only (progress, metrics). */
export function log0(...args: unknown[]): void {
  if (isMainProcess()) console.log(...args);
}

/** A state dict's names without DistributedDataParallel's "module." prefix (others unchanged). */
export function stripModulePrefix(sd: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(sd)) out[k.startsWith("module.") ? k.slice(7) : k] = v;
  return out;
}

/**
 * Save a checkpoint from rank 0 (atomically), then wait until it is written on every rank (a barrier), so a
 * rank that fails right after cannot leave the job with a checkpoint half announced. Model names lose
 * DistributedDataParallel's "module." prefix.
 *
 * @example
 * ```ts
 * distributed.saveCheckpoint("ckpt.safetensors", { model: ddp.stateDict(), optimizer: opt.stateDict(), extra: { step } });
 * ```
 */
export function saveCheckpoint(path: string, ckpt: Checkpoint): void {
  if (isMainProcess()) saveFile(path, { ...ckpt, model: stripModulePrefix(ckpt.model) });
  if (isInitialized()) barrier();
}

/** Load a checkpoint on every rank (any world size); `model` names are the bare model's. */
export function loadCheckpoint(path: string): Checkpoint & { metadata: Record<string, string> } {
  return loadFile(path);
}
