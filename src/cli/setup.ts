/**
 * The pieces a training run is assembled from: the data (train/validation/test tensors and the pixel
 * statistics), the optimizer and learning-rate schedule named by the config, seed derivation, and batched
 * evaluation under noGrad in eval mode.
 *
 * Reproducibility without saving generator states: every random stream of a run is a Generator seeded by
 * `deriveSeed(seed, stream, index)`: the validation split (stream VAL), the shuffle of epoch e (stream SHUFFLE,
 * index e) and the Dropout masks of global step s (stream DROPOUT, index s; the generator is reseeded before
 * every step). A resumed run re-derives exactly the streams the uninterrupted run would have used.
 */
import { noGrad } from "../core/trace.ts";
import { loadImageDataset } from "../data/datasets.ts";
import { Generator, randperm } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Module } from "../nn/module.ts";
import { crossEntropy } from "../nn/loss.ts";
import { Adagrad } from "../optim/adagrad.ts";
import { Adam, AdamW } from "../optim/adam.ts";
import { OneCycleLR } from "../optim/one-cycle.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { RMSprop } from "../optim/rmsprop.ts";
import { CosineAnnealingLR, type LRScheduler, StepLR } from "../optim/scheduler.ts";
import { SGD } from "../optim/sgd.ts";
import { confusionMatrix } from "../viz/confusion.ts";
import type { TrainConfig } from "./args.ts";

/** Random streams of a run (see the module comment). */
export const STREAM = { VAL: 1, SHUFFLE: 2, DROPOUT: 3 } as const;

/** A 32-bit finaliser (murmur3's fmix32): spreads every input bit over the output. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The seed of stream `stream`, item `index`, of a run seeded with `seed`: distinct inputs give unrelated
 * seeds, so the streams never overlap in practice.
 *
 * @example
 * ```ts
 * const shuffle = new Generator(deriveSeed(0, STREAM.SHUFFLE, epoch));
 * ```
 */
export function deriveSeed(seed: number, stream: number, index = 0): number {
  return fmix(fmix(fmix(seed >>> 0) ^ Math.imul(stream, 0x9e3779b9)) ^ (index >>> 0));
}

/** Images [N, C, H, W] float32 in [0, 1] and int32 labels [N]. */
export interface Split {
  x: Tensor;
  y: Tensor;
}

/** The data of a run. */
export interface RunData {
  train: Split;
  val: Split | null;
  test: Split;
  classes: string[];
  /** [C, H, W] of one example. */
  inputShape: [number, number, number];
  /** Mean and standard deviation of the training pixels. */
  mean: number;
  std: number;
}

/**
 * Load the dataset named by the config, keep the first `limit` training examples, and hold out a seeded
 * random `valFraction` of them for validation.
 *
 * @example
 * ```ts
 * const d = prepareData(resolveConfig({ limit: 2000 })); // d.train.x: [1800, 1, 28, 28], d.val.x: [200, ...]
 * ```
 */
export function prepareData(config: TrainConfig): RunData {
  const ds = loadImageDataset(config.data, { maxTrain: config.limit ?? undefined });
  const n = ds.train.images.shape[0];
  const nVal = Math.round(config.valFraction * n);
  if (n - nVal < 1) {
    throw new Error(
      `the training set has ${n} examples; with --val-fraction ${config.valFraction} none is left to train on`,
    );
  }
  const [, c, h, w] = ds.train.images.shape;
  let train: Split = { x: ds.train.images, y: ds.train.labels };
  let val: Split | null = null;
  if (nVal > 0) {
    const perm = randperm(n, { generator: new Generator(deriveSeed(config.seed, STREAM.VAL)) });
    const valIx = perm.narrow(0, 0, nVal);
    const trainIx = perm.narrow(0, nVal, n - nVal);
    val = { x: train.x.indexSelect(0, valIx), y: train.y.indexSelect(0, valIx) };
    train = { x: train.x.indexSelect(0, trainIx), y: train.y.indexSelect(0, trainIx) };
  }
  const { mean, std } = pixelStats(train.x);
  return {
    train,
    val,
    test: { x: ds.test.images, y: ds.test.labels },
    classes: ds.classes,
    inputShape: [c, h, w],
    mean,
    std,
  };
}

/** Mean and (population) standard deviation of all values of `x`, accumulated in float64. */
function pixelStats(x: Tensor): { mean: number; std: number } {
  const d = x.dataSync();
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < d.length; i++) {
    s += d[i];
    s2 += d[i] * d[i];
  }
  const mean = s / d.length;
  const std = Math.sqrt(Math.max(s2 / d.length - mean * mean, 0));
  // a constant image set would divide by zero: keep the scale then
  return { mean, std: std > 1e-6 ? std : 1 };
}

/** The optimizer named by the config over `params` (weight decay as given; "momentum" is SGD + 0.9). */
export function makeOptimizer(config: TrainConfig, params: Tensor[]): Optimizer<{ lr: number }> {
  const { lr, weightDecay } = config;
  switch (config.optimizer) {
    case "sgd":
      return new SGD(params, { lr, weightDecay });
    case "momentum":
      return new SGD(params, { lr, momentum: 0.9, weightDecay });
    case "adam":
      return new Adam(params, { lr, weightDecay });
    case "adamw":
      return new AdamW(params, { lr, weightDecay });
    case "rmsprop":
      return new RMSprop(params, { lr, weightDecay });
    case "adagrad":
      return new Adagrad(params, { lr, weightDecay });
  }
}

/**
 * The learning-rate schedule named by the config, stepped once per batch over `totalSteps` batches:
 * - cosine: from lr down to 0 (CosineAnnealingLR with tMax = totalSteps);
 * - onecycle: warm up from lr / 25 to lr over 30% of the steps, then anneal to lr / 25e4; momentum (Adam's
 *   beta1) cycles 0.95 -> 0.85 -> 0.95 for the optimizers that have one (momentum, adam, adamw);
 * - step: lr times 0.1 every ceil(epochs / 3) epochs;
 * - none: constant (null).
 */
export function makeScheduler(
  config: TrainConfig,
  opt: Optimizer<{ lr: number }>,
  stepsPerEpoch: number,
): LRScheduler | null {
  const totalSteps = stepsPerEpoch * config.epochs;
  switch (config.schedule) {
    case "none":
      return null;
    case "cosine":
      return new CosineAnnealingLR(opt, { tMax: totalSteps });
    case "onecycle":
      return new OneCycleLR(opt, {
        maxLr: config.lr,
        totalSteps,
        cycleMomentum: ["momentum", "adam", "adamw"].includes(config.optimizer),
      });
    case "step":
      return new StepLR(opt, { stepSize: stepsPerEpoch * Math.ceil(config.epochs / 3), gamma: 0.1 });
  }
}

/**
 * Put the optimizer's hyper-parameters where the schedule has them at `step` (used when a resumed run
 * re-plans its schedule over a different number of epochs).
 */
export function applyScheduleAt(sched: LRScheduler, step: number): void {
  const lrs = sched.lrAt(step);
  sched.optimizer.paramGroups.forEach((g, i) => {
    g.lr = lrs[i];
  });
  if (sched instanceof OneCycleLR && sched.cycleMomentum) {
    const moms = sched.momentumAt(step);
    sched.optimizer.paramGroups.forEach((g, i) => {
      if (Array.isArray(g.betas)) g.betas = [moms[i], ...(g.betas as number[]).slice(1)];
      else g.momentum = moms[i];
    });
  }
}

/** Loss, accuracy and predictions of a model on a split. */
export interface EvalResult {
  loss: number;
  accuracy: number;
  predictions: Int32Array;
}

/**
 * Evaluate `net` on a split in batches, under noGrad and in eval mode (Dropout off, BatchNorm running
 * statistics); the module is left in eval mode.
 *
 * @example
 * ```ts
 * const { accuracy } = evaluate(net, data.test);
 * ```
 */
export function evaluate(net: Module, split: Split, batchSize = 500): EvalResult {
  net.eval();
  const n = split.x.shape[0];
  const predictions = new Int32Array(n);
  let lossSum = 0;
  let correct = 0;
  noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const len = Math.min(batchSize, n - s);
      const xb = split.x.narrow(0, s, len);
      const yb = split.y.narrow(0, s, len);
      const logits = net.call(xb);
      lossSum += crossEntropy(logits, yb, { reduction: "sum" }).item();
      const pred = logits.argmax(1).dataSync();
      const truth = yb.dataSync();
      for (let i = 0; i < len; i++) {
        predictions[s + i] = pred[i];
        if (pred[i] === truth[i]) correct++;
      }
    }
  });
  return { loss: n > 0 ? lossSum / n : Number.NaN, accuracy: n > 0 ? correct / n : Number.NaN, predictions };
}

/** The confusion matrix (rows true, columns predicted) of predictions against a split's labels. */
export function confusionOf(predictions: Int32Array, labels: Tensor, numClasses: number): number[][] {
  return confusionMatrix(predictions, labels.dataSync(), numClasses);
}
