/**
 * chainrule/optim: optimizers, learning-rate schedules, gradient clipping, penalties, early stopping and the
 * learning-rate range test. Everything works on plain `Tensor[]` (or parameter groups), so it needs no Module.
 */
export { Adagrad } from "./adagrad.ts";
export type { AdagradOptions } from "./adagrad.ts";
export { Adam, AdamW } from "./adam.ts";
export type { AdamOptions } from "./adam.ts";
export { clipGradNorm_, clipGradValue_ } from "./clip.ts";
export { EarlyStopping } from "./early-stopping.ts";
export * as functional from "./functional.ts";
export type { FunctionalOptimizer, FunctionalState, HyperValue } from "./functional.ts";
export { makeTrainStep } from "./functional-step.ts";
export type { TrainState, TrainStep, TrainStepOpts } from "./functional-step.ts";
export type { EarlyStoppingOptions } from "./early-stopping.ts";
export { lrRangeTest } from "./lr-finder.ts";
export type { LrRangeTestOptions, LrRangeTestResult } from "./lr-finder.ts";
export { OneCycleLR } from "./one-cycle.ts";
export type { OneCycleOptions } from "./one-cycle.ts";
export { Optimizer } from "./optimizer.ts";
export type {
  BaseHyper,
  OptimizerStateDict,
  OptimState,
  ParamGroup,
  ParamGroupSpec,
  ParamsArg,
  StateSpec,
} from "./optimizer.ts";
export { l1Penalty, l2Penalty } from "./penalties.ts";
export { ReduceLROnPlateau } from "./plateau.ts";
export type { PlateauOptions } from "./plateau.ts";
export { RMSprop } from "./rmsprop.ts";
export type { RMSpropOptions } from "./rmsprop.ts";
export {
  CosineAnnealingLR,
  ExponentialLR,
  LambdaLR,
  LinearLR,
  LRScheduler,
  MultiStepLR,
  SequentialLR,
  StepLR,
  warmupCosine,
} from "./scheduler.ts";
export type { SchedulableGroup, SchedulableOptimizer, SchedulerStateDict } from "./scheduler.ts";
export { SGD } from "./sgd.ts";
export type { SGDOptions } from "./sgd.ts";
