/**
 * The io layer: tensor files (safetensors, with optimizer state and checkpoints), IDX (the MNIST format) and
 * CSV. Browser-compatible: these work on bytes and text. The Node file helpers (saveSafetensors,
 * loadSafetensors, saveCheckpoint, loadCheckpoint in tensors-node.ts; readIdxFile, loadMnistLike in
 * idx-node.ts; the RawTensor file helpers in safetensors-node.ts) import node:fs and are exported from the
 * Node entry point instead.
 */
export {
  type CsvMatrix,
  type CsvNumbersOptions,
  type CsvOptions,
  type CsvTable,
  csvToNumbers,
  parseCsv,
} from "./csv.ts";
export { type IdxArray, type IdxType, idxToRaw, isGzip, parseIdx, serializeIdx } from "./idx.ts";
export { checkRawTensor, type RawTensor } from "./raw.ts";
export {
  type ParsedSafetensors,
  type ParseSafetensorsOptions,
  parseSafetensors,
  parseSafetensorsHeader,
  type SafetensorsDtype,
  type SafetensorsEntry,
  type SafetensorsHeader,
  serializeSafetensors,
} from "./safetensors.ts";
export {
  CHECKPOINT_KEY,
  type Checkpoint,
  checkpointToSafetensors,
  decodeOptimizerState,
  encodeOptimizerState,
  type OptimizerStateDict,
  safetensorsToCheckpoint,
  safetensorsToTensors,
  type TensorsWithMetadata,
  tensorsToSafetensors,
} from "./tensors.ts";
