/**
 * Differentiable collectives: functions of tensors that autodiff sees through (the eager tape, grad, vjp).
 * `allReduceSum(x)` returns a new tensor (x is left alone); its adjoint is the all-reduce sum of the
 * cotangents, since every rank's output depends on every rank's input. SyncBatchNorm uses it (installed here,
 * so src/nn holds no communication code).
 */
import { customVjp } from "../core/custom.ts";
import { setSyncBatchNormReducer } from "../nn/sync-batchnorm.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { allReduce } from "./collectives.ts";
import { getWorldSize, isInitialized } from "./process-group.ts";

function reducedCopy(x: Tensor): Tensor {
  return allReduce(x.detach().clone(), "sum");
}

/**
 * The sum of `x` over all ranks, as a new tensor, differentiable: d/dx_r of sum_q x_q sends every rank's
 * cotangent back summed over the ranks.
 */
export const allReduceSum: (x: Tensor) => Tensor = customVjp((x: Tensor) => reducedCopy(x), {
  fwd: (x: Tensor) => [reducedCopy(x), null],
  bwd: (_res: null, ct: Tensor) => [reducedCopy(ct)],
});

setSyncBatchNormReducer((t) => (isInitialized() && getWorldSize() > 1 ? allReduceSum(t) : null));
