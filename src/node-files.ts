/**
 * Node-only helpers that read and write files: image data sets, safetensors files and checkpoints, IDX files.
 */
export { loadDigits } from "./data/digits.ts";
export { loadImageDataset } from "./data/datasets.ts";
export { loadMnistLike, readIdxFile } from "./io/idx-node.ts";
export { loadSafetensorsFile, saveSafetensorsFile } from "./io/safetensors-node.ts";
export { loadCheckpoint, loadSafetensors, saveCheckpoint, saveSafetensors } from "./io/tensors-node.ts";
