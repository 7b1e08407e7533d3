/**
 * The binders (the names follow JAX's `lax`): each binds one primitive with exact params, no broadcasting, no
 * promotion, no argument sugar. They are declared next to their primitives (as JAX keeps `sin_p` and `sin`
 * together); this module gathers them for the ops layer, which imports them as `X`.
 */
export { instantiate } from "./impl.ts";
export { actGrad, biasAct, castTo, where } from "./elementwise.ts";
export {
  avgPool2d,
  avgPool2dBackward,
  conv2d,
  conv2dBackInput,
  conv2dBackWeight,
  conv2dBiasAct,
  dot,
  maxPool2d,
  maxPool2dArgmax,
  maxPool2dBackward,
} from "./contract.ts";
export { broadcast, concat, flip, gather, permute, reshape, scatterAdd, slice, unslice } from "./movement.ts";
export { cumsumAxis, maxAxes, minAxes, prodAxes, softmaxAxis, softmaxBackward, sumAxes } from "./reduce.ts";
export {
  layerNorm,
  layerNormAffine,
  layerNormAffineGrads,
  layerNormBackward,
  layerNormScaledBackward,
} from "./norm.ts";
export { argsortAxis } from "./sort.ts";
export * as linalg from "./linalg.ts";
