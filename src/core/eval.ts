/**
 * Level 0: plain evaluation. Checks the arguments with the primitive's abstract rule, then runs its kernel on the
 * current backend. Higher-order calls simply run their function.
 */
import { AllocationError } from "../errors.ts";
import { runImpl } from "../prims/half.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Aval, Primitive } from "./primitive.ts";
import type { CallRule, Trace } from "./trace.ts";

export const evalTrace: Trace = {
  level: 0,
  alive: true,
  kind: "eval",
  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    const out: Aval = prim.abstract(args, params);
    try {
      return runImpl(prim, args, params, out);
    } catch (e) {
      // allocOut reports a failed allocation without knowing the op; name it here (rarely taken, no cost otherwise)
      if (e instanceof AllocationError && e.op === undefined) {
        throw new AllocationError(e.message, prim.name, { cause: e.cause });
      }
      throw e;
    }
  },
  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    return call.fn(args);
  },
};
