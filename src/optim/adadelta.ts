/**
 * Adadelta (Zeiler 2012), following torch.optim.Adadelta: the step is the gradient scaled by the ratio of the
 * running RMS of past updates to the running RMS of gradients, so it needs no tuned learning rate (lr scales
 * the result, default 1):
 *
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   v <- rho * v + (1 - rho) * g^2
 *   delta = sqrt(a + eps) / sqrt(v + eps) * g
 *   a <- rho * a + (1 - rho) * delta^2
 *   p <- p - lr * delta
 */
import type { Tensor } from "../tensor/tensor.ts";
import {
  checkRange,
  Optimizer,
  type OptimState,
  type ParamGroup,
  type ParamsArg,
  type StateSpec,
  stepGrad,
} from "./optimizer.ts";

/** Hyper-parameters of Adadelta. */
export interface AdadeltaOptions {
  /** Scale of the computed step (default 1). */
  lr: number;
  /** Decay rate of the running averages (default 0.9). */
  rho: number;
  /** Added inside both square roots (default 1e-6). */
  eps: number;
  /** L2 penalty coefficient added to the gradient (default 0). */
  weightDecay: number;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/**
 * Adadelta (torch.optim.Adadelta).
 *
 * @example
 * ```ts
 * const opt = new Adadelta(model.parameters(), { rho: 0.95 });
 * ```
 */
export class Adadelta extends Optimizer<AdadeltaOptions> {
  constructor(params: ParamsArg<AdadeltaOptions>, opts: Partial<AdadeltaOptions> = {}) {
    super("Adadelta", params, { lr: 1, rho: 0.9, eps: 1e-6, weightDecay: 0, maximize: false, ...opts });
  }

  protected checkHyper(h: Readonly<AdadeltaOptions>): void {
    checkRange("Adadelta", "lr", h.lr, h.lr >= 0, "lr >= 0");
    checkRange("Adadelta", "rho", h.rho, h.rho >= 0 && h.rho <= 1, "rho in [0, 1]");
    checkRange("Adadelta", "eps", h.eps, h.eps >= 0, "eps >= 0");
    checkRange("Adadelta", "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
  }

  protected stateSpec(): StateSpec {
    return { step: "number", squareAvg: "tensor", accDelta: "tensor" };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<AdadeltaOptions>): void {
    state.step = (state.step as number) + 1;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const v = (state.squareAvg as Tensor).mul(h.rho).add(g.mul(g).mul(1 - h.rho));
    const std = v.add(h.eps).sqrt();
    const delta = (state.accDelta as Tensor).add(h.eps).sqrt().div(std).mul(g);
    state.squareAvg = v;
    state.accDelta = (state.accDelta as Tensor).mul(h.rho).add(delta.mul(delta).mul(1 - h.rho));
    p.sub_(delta, h.lr);
  }
}
