/**
 * Data-parallel training across processes and machines, on MPI (Node only): the process group, collectives
 * on tensors, DistributedDataParallel, SyncBatchNorm's communication, and rank-0 checkpoints. See
 * docs/distributed.md.
 */
export { MPI_PACKAGES } from "./addon.ts";
export {
  type AsyncOpt,
  allGather,
  allReduce,
  barrier,
  broadcast,
  type P2POpts,
  type ReduceOp,
  recv,
  reduceScatter,
  send,
  Work,
} from "./collectives.ts";
export {
  abortJob,
  destroyProcessGroup,
  getRank,
  getWorldSize,
  type InitProcessGroupOptions,
  initProcessGroup,
  isInitialized,
  isMpiAvailable,
  type ProcessGroupInfo,
} from "./process-group.ts";
export { type DDPOptions, DistributedDataParallel } from "./ddp.ts";
export {
  allReduceGradients,
  type DistributedTrainStep,
  type DistributedTrainStepOpts,
  makeDistributedTrainStep,
} from "./train-step.ts";
export { isMainProcess, loadCheckpoint, log0, saveCheckpoint, stripModulePrefix } from "./checkpoint.ts";
export { allReduceSum } from "./functional.ts";
export { SyncBatchNorm } from "../nn/sync-batchnorm.ts";
