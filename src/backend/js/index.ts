/**
 * The js backend: chainrule's reference implementation of the Backend interface, in plain TypeScript.
 *
 * It is the specification of every kernel. Each kernel is written for clarity first: inputs are flattened to
 * row-major arrays (strided.ts holds the single odometer that understands strides), arithmetic runs on
 * float64 JavaScript numbers, and the store into the output typed array does the final rounding or int32
 * wrap. Every other backend is tested against this one on the same inputs. Memory is plain typed arrays owned
 * by the garbage collector.
 */
import { allocTyped } from "../../dtype.ts";
import type { Backend } from "../backend.ts";
import { attention, attentionBackward } from "./attention.ts";
import { gruCell, gruCellBackward, lstmCell, lstmCellBackward } from "./rnn-cell.ts";
import { conv2d, conv2dBackInput, conv2dBackWeight } from "./conv.ts";
import { actGrad, biasAct, binary, cast, unary, where } from "./elementwise.ts";
import { fused } from "./fused.ts";
import { gather, scatterAdd } from "./indexing.ts";
import { dot } from "./linalg.ts";
import {
  layerNorm,
  layerNormAffine,
  layerNormAffineGrads,
  layerNormBackward,
  layerNormScaledBackward,
} from "./norm.ts";
import { adamUpdate } from "./optim.ts";
import { avgPool2d, avgPool2dBackward, maxPool2d, maxPool2dArgmax, maxPool2dBackward } from "./pool.ts";
import { argReduce, cumsum, reduce } from "./reduce.ts";
import { softmax, softmaxBackward } from "./softmax.ts";
import { argsort } from "./sort.ts";
import { assertSameShape, copyStrided } from "./strided.ts";

/**
 * The reference backend.
 *
 * @example
 * ```ts
 * const a = { data: new Float64Array([1, 2, 3]), shape: [3], strides: [1], offset: 0 };
 * const out = jsBackend.alloc("float64", 3);
 * jsBackend.unary("exp", a, out); // out = [e, e^2, e^3]
 * ```
 */
export const jsBackend: Backend = {
  name: "js",
  alloc: allocTyped,
  unary,
  binary,
  where,
  biasAct,
  actGrad,
  cast,
  copy(src, dst) {
    assertSameShape("copy", src.shape, dst.shape);
    copyStrided(src, dst);
  },
  reduce,
  argReduce,
  cumsum,
  argsort,
  dot,
  conv2d,
  conv2dBackInput,
  conv2dBackWeight,
  maxPool2d,
  maxPool2dArgmax,
  maxPool2dBackward,
  avgPool2d,
  avgPool2dBackward,
  gather,
  scatterAdd,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  layerNormAffine,
  layerNormScaledBackward,
  layerNormAffineGrads,
  attention,
  attentionBackward,
  lstmCell,
  lstmCellBackward,
  gruCell,
  gruCellBackward,
  adamUpdate,
  fused,
  fusedReduce: true,
};
