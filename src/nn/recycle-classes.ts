/**
 * The built-in classes whose calls may recycle their forward activations (see recycle.ts): layers that keep
 * nothing they compute in a forward pass (each one's forward only reads its parameters and buffers, writes
 * running statistics in place or replaces a buffer, and returns its result), and among them the roots, whose
 * calls open a recycling scope. A class belongs here only after reading its forward pass: one that stashes an
 * input, an output or a derived tensor on the module, or in a cache that outlives the call, must not.
 */
import {
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
import { MultiheadAttention } from "./attention.ts";
import { BasicBlock, DenseBlock, DenseLayer } from "./blocks.ts";
import { ModuleList, Sequential } from "./container.ts";
import { Conv1d, Conv2d } from "./conv.ts";
import { Dropout } from "./dropout.ts";
import { Embedding } from "./embedding.ts";
import { Flatten, Identity, Linear } from "./linear.ts";
import { BatchNorm1d, BatchNorm2d, LayerNorm } from "./norm.ts";
import { GroupNorm, RMSNorm } from "./norm-more.ts";
import { AdaptiveAvgPool2d, AvgPool2d, MaxPool2d } from "./pool.ts";
import { recycle } from "./recycle.ts";
import { GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell } from "./rnn.ts";
import {
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from "./transformer.ts";

recycle.keepsNothing(
  Linear,
  Identity,
  Flatten,
  Conv1d,
  Conv2d,
  MaxPool2d,
  AvgPool2d,
  AdaptiveAvgPool2d,
  Dropout,
  BatchNorm1d,
  BatchNorm2d,
  LayerNorm,
  GroupNorm,
  RMSNorm,
  Embedding,
  ModuleList,
  ReLU,
  LeakyReLU,
  ELU,
  GELU,
  Sigmoid,
  Tanh,
  SiLU,
  Softplus,
  Softmax,
  LogSoftmax,
  RNNCell,
  LSTMCell,
  GRUCell,
);
recycle.roots(
  Sequential,
  BasicBlock,
  DenseLayer,
  DenseBlock,
  MultiheadAttention,
  TransformerEncoderLayer,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerDecoder,
  RNN,
  LSTM,
  GRU,
);
// BatchNorm's forward replaces its running statistics with tensors it computes under functionalCall (where nothing
// recycles; eagerly it updates them in place): marked anyway, the only registered class with such a path
recycle.writesState(BatchNorm1d, BatchNorm2d);
