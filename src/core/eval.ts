/**
 * Level 0: plain evaluation. Checks the arguments with the primitive's abstract rule, then runs its kernel on the
 * current backend. Higher-order calls simply run their function.
 */
import type { Tensor } from "../tensor/tensor.ts";
import type { Aval, Primitive } from "./primitive.ts";
import type { CallRule, Trace } from "./trace.ts";

export const evalTrace: Trace = {
  level: 0,
  alive: true,
  kind: "eval",
  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    const out: Aval = prim.abstract(args, params);
    return prim.impl(args, params, out);
  },
  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    return call.fn(args);
  },
};
