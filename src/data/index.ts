/**
 * The data layer: datasets (TensorDataset, Subset, randomSplit), the DataLoader, and tensor transforms
 * (standardize, normalize, randomCrop, randomHorizontalFlip, compose). Browser-compatible: the Node-only
 * dataset loaders (loadImageDataset in datasets.ts, loadDigits in digits.ts) read files and are exported from
 * the Node entry point instead.
 */
export {
  type Collated,
  DataLoader,
  type DataLoaderOptions,
  defaultCollate,
  type Sampler,
} from "./dataloader.ts";
export { DistributedSampler, type DistributedSamplerOptions } from "./distributed-sampler.ts";
export {
  type BatchedDataset,
  type Dataset,
  hasGetBatch,
  randomSplit,
  Subset,
  splitLengths,
  TensorDataset,
} from "./dataset.ts";
export {
  compose,
  normalize,
  randomCrop,
  randomHorizontalFlip,
  type StandardizeOptions,
  type Standardizer,
  standardize,
  type Transform,
} from "./transforms.ts";
