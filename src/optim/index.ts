/**
 * chainrule/optim: optimizers, learning-rate schedules, gradient clipping, penalties, early stopping and the
 * learning-rate range test. Everything works on plain `Tensor[]` (or parameter groups), so it needs no Module.
 */
export { Adadelta } from "./adadelta.ts";
export type { AdadeltaOptions } from "./adadelta.ts";
export { Adagrad } from "./adagrad.ts";
export type { AdagradOptions } from "./adagrad.ts";
export { Adam, AdamW } from "./adam.ts";
export type { AdamOptions } from "./adam.ts";
export { Adamax } from "./adamax.ts";
export type { AdamaxOptions } from "./adamax.ts";
export { clipGradNorm_, clipGradValue_ } from "./clip.ts";
export { EarlyStopping } from "./early-stopping.ts";
export * as functional from "./functional.ts";
export type { FunctionalOptimizer, FunctionalState, HyperValue } from "./functional.ts";
export { makeTrainStep } from "./functional-step.ts";
export type { GradHook, TrainState, TrainStep, TrainStepOpts } from "./functional-step.ts";
export type { EarlyStoppingOptions } from "./early-stopping.ts";
export { LBFGS } from "./lbfgs.ts";
export type { LBFGSOptions } from "./lbfgs.ts";
export { lrRangeTest } from "./lr-finder.ts";
export type { LrRangeTestOptions, LrRangeTestResult } from "./lr-finder.ts";
export { NAdam } from "./nadam.ts";
export type { NAdamOptions } from "./nadam.ts";
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
export { RAdam } from "./radam.ts";
export type { RAdamOptions } from "./radam.ts";
export { ReduceLROnPlateau } from "./plateau.ts";
export type { PlateauOptions } from "./plateau.ts";
export { RMSprop } from "./rmsprop.ts";
export type { RMSpropOptions } from "./rmsprop.ts";
export {
  ConstantLR,
  CosineAnnealingLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  ExponentialLR,
  LambdaLR,
  LinearLR,
  LRScheduler,
  MultiStepLR,
  PolynomialLR,
  SequentialLR,
  StepLR,
  warmupCosine,
} from "./scheduler.ts";
export type {
  CyclicLROptions,
  SchedulableGroup,
  SchedulableOptimizer,
  SchedulerStateDict,
} from "./scheduler.ts";
export { SGD } from "./sgd.ts";
export type { SGDOptions } from "./sgd.ts";
