/**
 * The model zoo of the `chainrule` command: image classifiers for [N, C, H, W] inputs, built from a small JSON
 * description (`ModelSpec`) that is stored in the metadata of every saved model.safetensors, so `chainrule
 * eval` (or any program) can rebuild the architecture before loading the weights.
 *
 * - `mlp`: Flatten, then Linear-ReLU for each hidden size (784-256-128-10 by default), optional Dropout before
 *   the output layer.
 * - `cnn`: the CNN of the benchmark, conv5x5x32-ReLU-maxpool2-conv5x5x64-ReLU-maxpool2-fc128-ReLU-fc10 (padding 2
 *   keeps 28x28 -> 28 -> 14 -> 14 -> 7, so the first Linear sees 64 * 7 * 7 = 3136 features).
 * - `resnet`: a small ResNet for 28x28 inputs: a 3x3 stem of 16 channels with BatchNorm, three stages of one
 *   BasicBlock each (16, 32 and 64 channels, the last two halving the resolution: 28 -> 14 -> 7), global average
 *   pooling and a Linear classifier (about 78k parameters).
 * - `lstm`: sequence classification: the image read row by row (28 steps of 28 pixels for a 28x28 image) by an
 *   LSTM (one layer per hidden size; all sizes equal, 128 by default), its last output (the final hidden state
 *   of the top layer) into a Linear classifier.
 *
 * The character-level `transformer` of `chainrule train --model transformer` is not an image classifier: it
 * lives in text-model.ts.
 *
 * Every model starts with a fixed `Standardize` layer, (x - mean) / std with the training set's pixel mean and
 * standard deviation, so the saved model takes raw [0, 1] pixels like the dataset loaders produce.
 */
import { FormatError } from "../errors.ts";
import type { Generator } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { ReLU } from "../nn/activation.ts";
import { BasicBlock } from "../nn/blocks.ts";
import { Sequential, type TensorModule } from "../nn/container.ts";
import { Conv2d } from "../nn/conv.ts";
import { Dropout } from "../nn/dropout.ts";
import { Flatten, Linear } from "../nn/linear.ts";
import { Module } from "../nn/module.ts";
import { BatchNorm2d } from "../nn/norm.ts";
import { AdaptiveAvgPool2d, MaxPool2d } from "../nn/pool.ts";
import { LSTM } from "../nn/rnn.ts";
import { recycle } from "../nn/recycle.ts";
// the built-in layers' recycling registry (nn/index.ts loads it too; the CLI may not load nn/index.ts)
import "../nn/recycle-classes.ts";
import { ShapeError } from "../errors.ts";

/** The image classifiers of the zoo (what a {@link ModelSpec} describes). */
export const IMAGE_MODEL_NAMES = ["mlp", "cnn", "resnet", "lstm"] as const;
/** One of {@link IMAGE_MODEL_NAMES}. */
export type ImageModelName = (typeof IMAGE_MODEL_NAMES)[number];
/** Every architecture `chainrule train --model` accepts: the image classifiers and the character-level LM. */
export const MODEL_NAMES = [...IMAGE_MODEL_NAMES, "transformer"] as const;
/** One of {@link MODEL_NAMES}. */
export type ModelName = (typeof MODEL_NAMES)[number];

/** Everything needed to rebuild a model (stored as JSON in model.safetensors metadata). */
export interface ModelSpec {
  name: ImageModelName;
  /** Input shape of one example, [C, H, W]. */
  inputShape: [number, number, number];
  numClasses: number;
  /** Hidden layer sizes of the MLP, or the LSTM's hidden size per layer (ignored by the other models). */
  hidden: number[];
  /** Dropout probability before the output layer (mlp, cnn, lstm); 0 for none. */
  dropout: number;
  /** Pixel statistics of the training set: the model computes (x - mean) / std first. */
  mean: number;
  std: number;
}

/** The model's input normalisation as a layer: y = (x - mean) / std, with constants (nothing to train). */
export class Standardize extends Module {
  constructor(
    readonly mean: number,
    readonly std: number,
  ) {
    super();
    if (!(std > 0)) throw new RangeError(`Standardize: std must be > 0, got ${std}`);
  }

  forward(x: Tensor): Tensor {
    return x.sub(this.mean).div(this.std);
  }

  override extraRepr(): string {
    return `mean=${this.mean.toFixed(4)}, std=${this.std.toFixed(4)}`;
  }
}

/**
 * An image [N, C, H, W] read as a sequence of its H rows ([N, H, C * W]: each step sees one row of every
 * channel) by an LSTM; the output is the LSTM's last output [N, hidden] (the top layer's final hidden state).
 * Parameters `lstm.weight_ih_l0`, ... as PyTorch names an LSTM attribute.
 */
export class RowLSTM extends Module {
  lstm: LSTM;

  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    readonly numLayers = 1,
  ) {
    super();
    this.lstm = new LSTM(inputSize, hiddenSize, { numLayers, batchFirst: true });
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] * x.shape[3] !== this.inputSize) {
      throw new ShapeError(
        `RowLSTM: expected images [N, C, H, W] with C * W = ${this.inputSize}, got [${x.shape.join(", ")}]`,
      );
    }
    const [n, c, h, w] = x.shape;
    const rows = c === 1 ? x.reshape([n, h, w]) : x.permute([0, 2, 1, 3]).reshape([n, h, c * w]);
    const [out] = this.lstm.call(rows);
    return out.narrow(1, h - 1, 1).reshape([n, this.hiddenSize]);
  }

  override extraRepr(): string {
    return `rows of ${this.inputSize} -> ${this.hiddenSize}${this.numLayers > 1 ? `, numLayers=${this.numLayers}` : ""}`;
  }
}

// Both keep nothing they compute: the zoo's Sequentials recycle their activations (nn/recycle.ts)
recycle.keepsNothing(Standardize, RowLSTM);

/** The LSTM's hidden size and layer count from spec.hidden (all sizes equal; [] means the default 128). */
function lstmSize(spec: ModelSpec): { hidden: number; layers: number } {
  const hs = spec.hidden.length === 0 ? [128] : spec.hidden;
  return { hidden: hs[0], layers: hs.length };
}

function lstm(spec: ModelSpec, opts: BuildModelOptions): TensorModule[] {
  const [c, , w] = spec.inputShape;
  const { hidden, layers } = lstmSize(spec);
  const out: TensorModule[] = [new RowLSTM(c * w, hidden, layers)];
  if (spec.dropout > 0) out.push(new Dropout(spec.dropout, { generator: opts.dropoutGenerator }));
  out.push(new Linear(hidden, spec.numClasses));
  return out;
}

/** A model of the zoo: a Sequential plus the spec it was built from. */
export interface ZooModel {
  spec: ModelSpec;
  net: Sequential;
}

/** Options of {@link buildModel}. */
export interface BuildModelOptions {
  /** Generator of the Dropout masks (default: the global generator). */
  dropoutGenerator?: Generator;
}

function mlp(spec: ModelSpec, opts: BuildModelOptions): TensorModule[] {
  const [c, h, w] = spec.inputShape;
  const layers: TensorModule[] = [new Flatten()];
  let width = c * h * w;
  for (const size of spec.hidden) {
    layers.push(new Linear(width, size), new ReLU());
    width = size;
  }
  if (spec.dropout > 0) layers.push(new Dropout(spec.dropout, { generator: opts.dropoutGenerator }));
  layers.push(new Linear(width, spec.numClasses));
  return layers;
}

function cnn(spec: ModelSpec, opts: BuildModelOptions): TensorModule[] {
  const [c, h, w] = spec.inputShape;
  // two 2x2 max-pools (floor division each time); padding 2 keeps the 5x5 convolutions size-preserving
  const features = 64 * Math.floor(Math.floor(h / 2) / 2) * Math.floor(Math.floor(w / 2) / 2);
  const layers: TensorModule[] = [
    new Conv2d(c, 32, 5, { padding: 2 }),
    new ReLU(),
    new MaxPool2d(2),
    new Conv2d(32, 64, 5, { padding: 2 }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(features, 128),
    new ReLU(),
  ];
  if (spec.dropout > 0) layers.push(new Dropout(spec.dropout, { generator: opts.dropoutGenerator }));
  layers.push(new Linear(128, spec.numClasses));
  return layers;
}

function resnet(spec: ModelSpec): TensorModule[] {
  const [c] = spec.inputShape;
  return [
    new Conv2d(c, 16, 3, { padding: 1, bias: false }),
    new BatchNorm2d(16),
    new ReLU(),
    new BasicBlock(16, 16),
    new BasicBlock(16, 32, 2),
    new BasicBlock(32, 64, 2),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(64, spec.numClasses),
  ];
}

/**
 * Build a fresh model (weights drawn from the global generator, so call `manualSeed` first for a reproducible
 * initialisation) from its spec. The network is `Sequential(Standardize, ...layers)`; its parameters are named
 * "1.weight", "1.bias", ... as PyTorch names a Sequential's.
 *
 * @example
 * ```ts
 * manualSeed(0);
 * const { net } = buildModel({ name: "mlp", inputShape: [1, 28, 28], numClasses: 10, hidden: [256, 128],
 *   dropout: 0, mean: 0.13, std: 0.31 });
 * net.call(zeros([8, 1, 28, 28])).shape; // [8, 10]
 * ```
 */
export function buildModel(spec: ModelSpec, opts: BuildModelOptions = {}): ZooModel {
  checkSpec(spec);
  const body =
    spec.name === "mlp"
      ? mlp(spec, opts)
      : spec.name === "cnn"
        ? cnn(spec, opts)
        : spec.name === "lstm"
          ? lstm(spec, opts)
          : resnet(spec);
  return { spec, net: new Sequential(new Standardize(spec.mean, spec.std), ...body) };
}

/**
 * Bounds of a model spec. A spec read from a file is untrusted: without bounds, 0.9 MB of metadata asking for
 * `hidden: [3000000]` allocates gigabytes of weights before any tensor is compared with it. The bounds are far
 * above anything this CLI trains in reasonable time (the largest allowed model is 2^27 = 134M parameters,
 * 512 MB of float32).
 */
export const SPEC_LIMITS = {
  hiddenLayers: 16,
  width: 65_536,
  channels: 64,
  side: 1024,
  classes: 100_000,
  elements: 2 ** 27,
} as const;

/**
 * The state-dict shapes an mlp, cnn or lstm spec implies ("2.weight" -> [256, 784], ...), computed from the spec
 * alone, so a file's tensors can be compared with its spec before any layer is allocated. Null for the resnet,
 * whose widths are fixed (its size depends only on the bounded channel and class counts).
 */
export function specWeightShapes(spec: ModelSpec): Map<string, number[]> | null {
  const shapes = new Map<string, number[]>();
  const linear = (index: number, inF: number, outF: number) => {
    shapes.set(`${index}.weight`, [outF, inF]);
    shapes.set(`${index}.bias`, [outF]);
  };
  const [c, h, w] = spec.inputShape;
  const dropout = spec.dropout > 0 ? 1 : 0;
  if (spec.name === "mlp") {
    // 0 Standardize, 1 Flatten, then Linear + ReLU per hidden size, [Dropout], Linear
    let width = c * h * w;
    let index = 2;
    for (const size of spec.hidden) {
      linear(index, width, size);
      width = size;
      index += 2;
    }
    linear(index + dropout, width, spec.numClasses);
    return shapes;
  }
  if (spec.name === "cnn") {
    // 0 Standardize, 1 Conv, 2 ReLU, 3 MaxPool, 4 Conv, 5 ReLU, 6 MaxPool, 7 Flatten, 8 Linear, 9 ReLU, ...
    const features = 64 * Math.floor(Math.floor(h / 2) / 2) * Math.floor(Math.floor(w / 2) / 2);
    shapes.set("1.weight", [32, c, 5, 5]);
    shapes.set("1.bias", [32]);
    shapes.set("4.weight", [64, 32, 5, 5]);
    shapes.set("4.bias", [64]);
    linear(8, features, 128);
    linear(10 + dropout, 128, spec.numClasses);
    return shapes;
  }
  if (spec.name === "lstm") {
    // 0 Standardize, 1 RowLSTM, [Dropout], Linear
    const [c, , w] = spec.inputShape;
    const { hidden, layers } = lstmSize(spec);
    for (let l = 0; l < layers; l++) {
      shapes.set(`1.lstm.weight_ih_l${l}`, [4 * hidden, l === 0 ? c * w : hidden]);
      shapes.set(`1.lstm.weight_hh_l${l}`, [4 * hidden, hidden]);
      shapes.set(`1.lstm.bias_ih_l${l}`, [4 * hidden]);
      shapes.set(`1.lstm.bias_hh_l${l}`, [4 * hidden]);
    }
    linear(2 + dropout, hidden, spec.numClasses);
    return shapes;
  }
  return null;
}

/**
 * Validate a spec (for specs read back from files): its fields, their types and the bounds of
 * {@link SPEC_LIMITS}, including the total parameter count. Throws a FormatError naming `where` (for example
 * `model.safetensors: metadata "chainrule.model"`), the bad field and what was expected.
 */
export function checkSpec(spec: ModelSpec, where = "model spec"): void {
  const bad = (what: string): never => {
    const got = JSON.stringify(spec);
    throw new FormatError(`${where}: ${what} (got ${got.length > 300 ? `${got.slice(0, 300)}...` : got})`);
  };
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) bad("expected an object");
  if (!(IMAGE_MODEL_NAMES as readonly string[]).includes(spec.name)) {
    bad(`"name" must be one of ${IMAGE_MODEL_NAMES.join(", ")}`);
  }
  const intIn = (v: unknown, lo: number, hi: number) =>
    typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
  const { channels, side, classes, hiddenLayers, width, elements } = SPEC_LIMITS;
  if (
    !Array.isArray(spec.inputShape) ||
    spec.inputShape.length !== 3 ||
    !intIn(spec.inputShape[0], 1, channels) ||
    !intIn(spec.inputShape[1], 1, side) ||
    !intIn(spec.inputShape[2], 1, side)
  ) {
    bad(`"inputShape" must be [C, H, W] of integers with 1 <= C <= ${channels} and 1 <= H, W <= ${side}`);
  }
  if (!intIn(spec.numClasses, 2, classes)) bad(`"numClasses" must be an integer in [2, ${classes}]`);
  if (
    !Array.isArray(spec.hidden) ||
    spec.hidden.length > hiddenLayers ||
    !spec.hidden.every((v) => intIn(v, 1, width))
  ) {
    bad(`"hidden" must be at most ${hiddenLayers} integers in [1, ${width}]`);
  }
  if (typeof spec.dropout !== "number" || !(spec.dropout >= 0 && spec.dropout < 1)) {
    bad(`"dropout" must be a number in [0, 1)`);
  }
  if (typeof spec.mean !== "number" || !Number.isFinite(spec.mean)) bad(`"mean" must be a finite number`);
  if (typeof spec.std !== "number" || !(spec.std > 0 && Number.isFinite(spec.std))) {
    bad(`"std" must be a finite number > 0`);
  }
  const [, h, w] = spec.inputShape;
  if (spec.name === "cnn" && (h < 4 || w < 4)) bad("the cnn needs inputs of at least 4x4");
  if (spec.name === "lstm" && spec.hidden.some((v) => v !== spec.hidden[0])) {
    bad(`"hidden" of the lstm must be equal sizes (one per stacked layer)`);
  }
  let total = 0;
  for (const shape of specWeightShapes(spec)?.values() ?? []) total += shape.reduce((a, b) => a * b, 1);
  if (total > elements) {
    bad(`the model would have ${total} parameters, more than the limit of ${elements}`);
  }
}

/**
 * Compare a file's tensors (name and shape, from its header: nothing decoded yet) with the shapes its spec
 * implies, before any layer is built. `prefix` is stripped from tensor names ("model." in checkpoints).
 */
export function checkTensorsMatchSpec(
  spec: ModelSpec,
  entries: readonly { name: string; shape: readonly number[] }[],
  where: string,
  prefix = "",
): void {
  const expected = specWeightShapes(spec);
  if (expected === null) return; // resnet: fixed widths, bounded by checkSpec; loadStateDict checks shapes
  const found = new Map<string, readonly number[]>();
  for (const e of entries) if (e.name.startsWith(prefix)) found.set(e.name.slice(prefix.length), e.shape);
  for (const [name, shape] of expected) {
    const got = found.get(name);
    if (got === undefined) {
      throw new FormatError(
        `${where}: tensor "${prefix}${name}" of shape [${shape.join(", ")}] that the model spec implies is missing`,
      );
    }
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new FormatError(
        `${where}: tensor "${prefix}${name}" has shape [${got.join(", ")}] but the model spec implies [${shape.join(", ")}]`,
      );
    }
  }
  for (const name of found.keys()) {
    if (!expected.has(name)) {
      throw new FormatError(
        `${where}: tensor "${prefix}${name}" is not part of the model its spec describes`,
      );
    }
  }
}

/** Number of parameter elements of a module. */
export function countParameters(m: Module): number {
  return m.parameters().reduce((n, p) => n + p.size, 0);
}
