/**
 * Small tensor helpers the transforms need (zeros and ones for seeds and symbolic zeros, accumulation of
 * cotangents), built directly on primitives so the core does not depend on the public ops layer.
 */
import type { Tensor } from "../tensor/tensor.ts";
import { addP } from "../prims/elementwise.ts";
import { constant } from "../prims/impl.ts";
import { broadcastP } from "../prims/movement.ts";
import type { Aval } from "./primitive.ts";
import { bind } from "./trace.ts";

/**
 * A zero tensor of the aval's shape and dtype. It is a broadcast view of a single element, so a symbolic zero
 * materialised at an API boundary costs one element, not the whole shape.
 */
export function zerosLike(av: Aval): Tensor {
  return bind(broadcastP, [constant(0, av.dtype)], { shape: av.shape });
}

/** A ones tensor of the aval's shape and dtype (a broadcast view of one element). */
export function onesLike(av: Aval): Tensor {
  return bind(broadcastP, [constant(1, av.dtype)], { shape: av.shape });
}

/** a + b for two cotangents of the same shape. */
export function accumulate(a: Tensor, b: Tensor): Tensor {
  return bind(addP, [a, b], null);
}
