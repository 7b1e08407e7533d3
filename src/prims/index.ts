/**
 * The closed set of primitives: the table below is the registry. `PrimName` is derived from it and
 * `primitive(name)` looks one up (test/coverage.test.ts walks it and checks every key equals its entry's name and
 * every rule is exercised by the op table). Each entry's type requires a shape rule, a kernel and a derivative,
 * so a primitive without a rule does not compile. Everything else in chainrule is a composition of these.
 */
import type { Primitive } from "../core/primitive.ts";
import * as C from "./contract.ts";
import * as E from "./elementwise.ts";
import * as V from "./movement.ts";
import * as R from "./reduce.ts";

// biome-ignore format: one row per family reads better
export const primitives = {
  neg: E.negP, abs: E.absP, sign: E.signP, exp: E.expP, log: E.logP, log1p: E.log1pP, expm1: E.expm1P,
  sqrt: E.sqrtP, sin: E.sinP, cos: E.cosP, tan: E.tanP, tanh: E.tanhP, sigmoid: E.sigmoidP, erf: E.erfP,
  relu: E.reluP, biasAct: E.biasActP, actGrad: E.actGradP, floor: E.floorP, ceil: E.ceilP, round: E.roundP, not: E.notP,
  add: E.addP, sub: E.subP, mul: E.mulP, div: E.divP, pow: E.powP, maximum: E.maximumP, minimum: E.minimumP,
  eq: E.eqP, ne: E.neP, lt: E.ltP, le: E.leP, gt: E.gtP, ge: E.geP, and: E.andP, or: E.orP, xor: E.xorP,
  where: E.whereP, cast: E.castP,
  sum: R.sumP, prod: R.prodP, max: R.maxP, min: R.minP, argReduce: R.argReduceP, cumsum: R.cumsumP,
  softmax: R.softmaxP, logSoftmax: R.logSoftmaxP, softmaxBackward: R.softmaxBackwardP,
  logSoftmaxBackward: R.logSoftmaxBackwardP,
  reshape: V.reshapeP, permute: V.permuteP, broadcast: V.broadcastP, slice: V.sliceP, unslice: V.unsliceP,
  concat: V.concatP, flip: V.flipP, gather: V.gatherP, scatterAdd: V.scatterAddP,
  dot: C.dotP, conv2d: C.conv2dP, conv2dBackInput: C.conv2dBackInputP, conv2dBackWeight: C.conv2dBackWeightP,
  conv2dBiasAct: C.conv2dBiasActP,
  maxPool2d: C.maxPool2dP, maxPool2dArgmax: C.maxPool2dArgmaxP,
  maxPool2dBackward: C.maxPool2dBackwardP, avgPool2d: C.avgPool2dP,
  avgPool2dBackward: C.avgPool2dBackwardP,
} satisfies Record<string, Primitive<never>>;

/** A primitive's name: derived from the table, so there is no second list to keep in step. */
export type PrimName = keyof typeof primitives;

/** The primitive registered under `name` (the table is the registry: a name's entry has that name). */
export function primitive<N extends PrimName>(name: N): (typeof primitives)[N] {
  return primitives[name];
}
