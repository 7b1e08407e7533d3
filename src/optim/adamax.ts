/**
 * Adamax (Kingma and Ba 2015, section 7.1): Adam with the infinity norm in place of the second moment,
 * following torch.optim.Adamax (eps is added to |g| inside the maximum, as PyTorch does):
 *
 *   t <- t + 1
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   m <- beta1 * m + (1 - beta1) * g
 *   u <- max(beta2 * u, |g| + eps)
 *   p <- p - lr / (1 - beta1^t) * m / u
 */
import { maximum } from "../ops/math.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type AdamFamilyOptions, checkAdamFamily } from "./nadam.ts";
import {
  Optimizer,
  type OptimState,
  type ParamGroup,
  type ParamsArg,
  type StateSpec,
  stepGrad,
} from "./optimizer.ts";

/** Hyper-parameters of Adamax. */
export type AdamaxOptions = AdamFamilyOptions;

/**
 * Adamax (torch.optim.Adamax).
 *
 * @example
 * ```ts
 * const opt = new Adamax(model.parameters(), { lr: 2e-3 });
 * ```
 */
export class Adamax extends Optimizer<AdamaxOptions> {
  constructor(params: ParamsArg<AdamaxOptions>, opts: Partial<AdamaxOptions> = {}) {
    super("Adamax", params, {
      lr: 2e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<AdamaxOptions>): void {
    checkAdamFamily("Adamax", h);
  }

  protected stateSpec(): StateSpec {
    return { step: "number", expAvg: "tensor", expInf: "tensor" };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<AdamaxOptions>): void {
    const t = (state.step as number) + 1;
    state.step = t;
    const [beta1, beta2] = h.betas;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const m = (state.expAvg as Tensor).mul(beta1).add(g.mul(1 - beta1));
    const u = maximum((state.expInf as Tensor).mul(beta2), g.abs().add(h.eps));
    state.expAvg = m;
    state.expInf = u;
    p.sub_(m.div(u), h.lr / (1 - beta1 ** t));
  }
}
