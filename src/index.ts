/**
 * chainrule: deep learning on automatic differentiation, in TypeScript. Public exports only.
 */
export type { Backend, BackendImpl, View } from "./backend/backend.ts";
export { getBackend, listBackends, loadBackend, registerBackend, setBackend } from "./backend/registry.ts";
export { grad, hvp, jvp, linearize, valueAndGrad, vjp } from "./core/autodiff.ts";
export type { GradOpts } from "./core/autodiff.ts";
export { hessian, jacfwd, jacrev } from "./core/jacobian.ts";
export type { JacOpts } from "./core/jacobian.ts";
export { init } from "./init.ts";
export type { InitOptions, InitResult } from "./init.ts";
export { checkKinks, gradCheck } from "./core/check.ts";
export type { GradCheckOpts, GradCheckReport } from "./core/check.ts";
export { checkpoint, customJvp, customVjp } from "./core/custom.ts";
export { cond, foriLoop, type ScanOpts, scan, switchCase, whileLoop } from "./core/control.ts";
export { evalJaxpr } from "./core/jaxpr-eval.ts";
export { makeJaxpr } from "./core/jaxpr-trace.ts";
export { type JitOpts, type Jitted, jit } from "./core/jit.ts";
export { simplifyProgram } from "./core/jit-simplify.ts";
export { type Atom, type Eqn, Literal, Program, Var } from "./core/jaxpr.ts";
export { enableGrad, noGrad } from "./core/trace.ts";
export { cachedMemory, emptyCache } from "./core/eager-pool.ts";
export { vmap } from "./core/vmap.ts";
export type { AxisSpec, VmapOpts } from "./core/vmap.ts";
export type { KinkReport } from "./core/trace.ts";
export { BFloat16Bits, DTYPES, Float16Bits, isHalf, promoteTypes } from "./dtype.ts";
export {
  type AutocastOpts,
  autocast,
  autocastDtype,
  GradScaler,
  type GradScalerOpts,
  type GradScalerState,
} from "./amp.ts";
export type { DType, TypedArray } from "./dtype.ts";
export {
  AllocationError,
  AutodiffError,
  DTypeError,
  FormatError,
  LinAlgError,
  ShapeError,
} from "./errors.ts";
export * from "./ops/creation.ts";
export { einsum, matmul, outer } from "./ops/linalg.ts";
export * as linalg from "./ops/decomp.ts";
export { type MultinomialOpts, multinomial } from "./ops/random.ts";
export * from "./ops/math.ts";
export { cumprod, diag, diagonal, meshgrid, repeat, roll, tile, tril, triu } from "./ops/manip.ts";
export { indexPut, maskedSelect, scatter } from "./ops/indexing.ts";
export { argsort, type SortOpts, sort, type TopkOpts, topk, type ValuesIndices } from "./ops/sort.ts";
export { avgPool2d, conv2d, maxPool2d } from "./ops/nn.ts";
export type { Conv2dOpts, Pool2dOpts } from "./ops/nn.ts";
export {
  type Conv1dOpts,
  type ConvTranspose1dOpts,
  type ConvTranspose2dOpts,
  conv1d,
  convTranspose1d,
  convTranspose2d,
} from "./ops/conv.ts";
export { type InterpolateMode, type InterpolateOpts, interpolate } from "./nn/upsample.ts";
export {
  all,
  any,
  argmax,
  argmin,
  cumsum,
  logSoftmax,
  logsumexp,
  max,
  mean,
  min,
  norm,
  prod,
  softmax,
  std,
  sum,
  variance,
} from "./ops/reduce.ts";
export {
  broadcastTo,
  cat,
  chunk,
  detach,
  expand,
  flatten,
  flip,
  gather,
  indexSelect,
  narrow,
  pad,
  permute,
  reshape,
  split,
  squeeze,
  stack,
  stopGradient,
  transpose,
  unsqueeze,
} from "./ops/shape.ts";
export type { IndexArg } from "./ops/shape.ts";
export { Tensor } from "./tensor/tensor.ts";
export { treeFlatten, treeMap, treeUnflatten } from "./tree.ts";
export * as data from "./data/index.ts";
export * as io from "./io/index.ts";
export * as nn from "./nn/index.ts";
export * as optim from "./optim/index.ts";
export * as viz from "./viz/index.ts";
export { Graph, type GraphOptions, graph } from "./viz/graph.ts";
