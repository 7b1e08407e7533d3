/**
 * `nn`: modules, layers, initialisers and losses (PyTorch's `torch.nn`). Public exports only; the top-level
 * index re-exports this as the `nn` namespace.
 */
// registers the built-in layers whose calls recycle forward activations (recycle.ts)
import "./recycle-classes.ts";

export {
  ELU,
  GELU,
  LeakyReLU,
  LogSoftmax,
  ReLU,
  Sigmoid,
  SiLU,
  Softmax,
  Softplus,
  Tanh,
} from "./activation.ts";
export {
  applyRotary,
  causalMask,
  MultiheadAttention,
  type MultiheadAttentionCallOpts,
  type MultiheadAttentionOpts,
  rotaryCosSin,
  type SDPAOpts,
  scaledDotProductAttention,
  sinusoidalPositionEncoding,
} from "./attention.ts";
export { BasicBlock, type BlockOpts, DenseBlock, DenseLayer } from "./blocks.ts";
export { ModuleDict, ModuleList, ParameterList, Sequential, type TensorModule } from "./container.ts";
export {
  Conv1d,
  type Conv1dLayerOpts,
  Conv2d,
  type Conv2dLayerOpts,
  ConvTranspose1d,
  type ConvTranspose1dLayerOpts,
  ConvTranspose2d,
  type ConvTranspose2dLayerOpts,
} from "./conv.ts";
export {
  type Conv1dOpts,
  type ConvTranspose1dOpts,
  type ConvTranspose2dOpts,
  conv1d,
  convTranspose1d,
  convTranspose2d,
} from "../ops/conv.ts";
export { Dropout, type DropoutOpts } from "./dropout.ts";
export { Embedding, type EmbeddingOpts } from "./embedding.ts";
export {
  dropoutRequests,
  drawDropoutMasks,
  type FunctionalApplyOpts,
  functionalApply,
  loadModuleState,
  type MaskRequest,
  type ModuleState,
  moduleState,
  needsDropoutMasks,
} from "./functional.ts";
export * as init from "./init.ts";
export { type Activation, biasActivation, layerNorm, type LinearFnOpts, linear } from "../ops/nn.ts";
export { Flatten, Identity, Linear, type LinearOpts } from "./linear.ts";
export {
  type BCEOpts,
  type BCEWithLogitsOpts,
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  type CrossEntropyOpts,
  crossEntropy,
  type HuberOpts,
  huberLoss,
  l1Loss,
  mseLoss,
  nllLoss,
  type Reduction,
  type ReductionOpts,
  type SmoothL1Opts,
  smoothL1Loss,
} from "./loss.ts";
export {
  BCELoss,
  BCEWithLogitsLoss,
  CrossEntropyLoss,
  HuberLoss,
  L1Loss,
  Loss,
  MSELoss,
  NLLLoss,
  SmoothL1Loss,
} from "./loss-modules.ts";
export {
  type AnyModule,
  type ForwardHook,
  type ForwardPreHook,
  functionalCall,
  type HookHandle,
  type LoadStateDictOpts,
  type LoadStateDictResult,
  Module,
  parameter,
} from "./module.ts";
export { BatchNorm1d, BatchNorm2d, type BatchNormOpts, LayerNorm, type LayerNormOpts } from "./norm.ts";
export { GroupNorm, type GroupNormOpts, RMSNorm, type RMSNormOpts } from "./norm-more.ts";
export { SyncBatchNorm } from "./sync-batchnorm.ts";
export { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, type PoolOpts } from "./pool.ts";
export {
  GRU,
  GRUCell,
  LSTM,
  LSTMCell,
  type LSTMOpts,
  RNN,
  type RNNBaseOpts,
  RNNCell,
  type RNNCellOpts,
  type RNNOpts,
} from "./rnn.ts";
export { countParameters, formatCount } from "./summary.ts";
export {
  type InterpolateMode,
  type InterpolateOpts,
  interpolate,
  Upsample,
  type UpsampleOpts,
  UpsamplingBilinear2d,
  UpsamplingNearest2d,
} from "./upsample.ts";
export {
  type DecoderCallOpts,
  type EncoderCallOpts,
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
  type TransformerLayerOpts,
} from "./transformer.ts";
