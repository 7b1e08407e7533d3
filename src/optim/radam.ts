/**
 * RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond"), following
 * torch.optim.RAdam: Adam whose adaptive step is switched on only once the variance of the adaptive learning
 * rate is tractable, and rectified by a factor r_t until then it is plain SGD with momentum:
 *
 *   t <- t + 1
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
 *   mHat = m / (1 - beta1^t)
 *   rhoInf = 2 / (1 - beta2) - 1;   rho_t = rhoInf - 2 t beta2^t / (1 - beta2^t)
 *   if rho_t > 5:  r_t = sqrt((rho_t - 4)(rho_t - 2) rhoInf / ((rhoInf - 4)(rhoInf - 2) rho_t))
 *                  p <- p - lr * mHat * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)
 *   else:          p <- p - lr * mHat
 *
 * `maximize` is not in PyTorch 1.13's RAdam; it is PyTorch 2's option of the same name (the gradient is
 * negated first).
 */
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

/** Hyper-parameters of RAdam. */
export type RAdamOptions = AdamFamilyOptions;

/**
 * RAdam (torch.optim.RAdam).
 *
 * @example
 * ```ts
 * const opt = new RAdam(model.parameters(), { lr: 1e-3 });
 * ```
 */
export class RAdam extends Optimizer<RAdamOptions> {
  constructor(params: ParamsArg<RAdamOptions>, opts: Partial<RAdamOptions> = {}) {
    super("RAdam", params, {
      lr: 1e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<RAdamOptions>): void {
    checkAdamFamily("RAdam", h);
  }

  protected stateSpec(): StateSpec {
    return { step: "number", expAvg: "tensor", expAvgSq: "tensor" };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<RAdamOptions>): void {
    const t = (state.step as number) + 1;
    state.step = t;
    const [beta1, beta2] = h.betas;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const m = (state.expAvg as Tensor).mul(beta1).add(g.mul(1 - beta1));
    const v = (state.expAvgSq as Tensor).mul(beta2).add(g.mul(g).mul(1 - beta2));
    state.expAvg = m;
    state.expAvgSq = v;
    const bc1 = 1 - beta1 ** t;
    const bc2 = 1 - beta2 ** t;
    const mHat = m.div(bc1);
    const rhoInf = 2 / (1 - beta2) - 1;
    const rhoT = rhoInf - (2 * t * beta2 ** t) / bc2;
    if (rhoT > 5) {
      const rect = Math.sqrt(((rhoT - 4) * (rhoT - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rhoT));
      const denom = v.sqrt().add(h.eps);
      p.sub_(mHat.mul(Math.sqrt(bc2)).div(denom), h.lr * rect);
    } else {
      p.sub_(mHat, h.lr);
    }
  }
}
