/**
 * RMSProp (Hinton's lecture 6e), following torch.optim.RMSprop: divide the gradient by a running root mean
 * square of recent gradients; optionally centered (divide by an estimate of the standard deviation instead)
 * and with momentum on the normalised step.
 *
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   v <- alpha * v + (1 - alpha) * g^2
 *   if centered: m <- alpha * m + (1 - alpha) * g;  d = sqrt(v - m^2) + eps   else d = sqrt(v) + eps
 *   if momentum > 0: b <- momentum * b + g / d;  p <- p - lr * b
 *   else:            p <- p - lr * g / d
 */
import { zerosLike } from "../ops/creation.ts";
import { Tensor } from "../tensor/tensor.ts";
import {
  checkRange,
  Optimizer,
  type OptimState,
  type ParamGroup,
  type ParamsArg,
  type StateSpec,
  stepGrad,
} from "./optimizer.ts";

/** Hyper-parameters of RMSProp. */
export interface RMSpropOptions {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Smoothing constant of the running averages (default 0.99). */
  alpha: number;
  /** Added to the denominator for stability (default 1e-8). */
  eps: number;
  /** L2 penalty coefficient added to the gradient (default 0). */
  weightDecay: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Normalise by the estimated variance of the gradient instead of its second moment. */
  centered: boolean;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/**
 * RMSProp (torch.optim.RMSprop).
 *
 * @example
 * ```ts
 * const opt = new RMSprop([w], { lr: 1e-3, centered: true, momentum: 0.9 });
 * ```
 */
export class RMSprop extends Optimizer<RMSpropOptions> {
  constructor(params: ParamsArg<RMSpropOptions>, opts: Partial<RMSpropOptions> = {}) {
    super("RMSprop", params, {
      lr: 1e-2,
      alpha: 0.99,
      eps: 1e-8,
      weightDecay: 0,
      momentum: 0,
      centered: false,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<RMSpropOptions>): void {
    checkRange("RMSprop", "lr", h.lr, h.lr >= 0, "lr >= 0");
    checkRange("RMSprop", "alpha", h.alpha, h.alpha >= 0, "alpha >= 0");
    checkRange("RMSprop", "eps", h.eps, h.eps >= 0, "eps >= 0");
    checkRange("RMSprop", "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
    checkRange("RMSprop", "momentum", h.momentum, h.momentum >= 0, "momentum >= 0");
  }

  protected stateSpec(h: ParamGroup<RMSpropOptions>): StateSpec {
    const spec: StateSpec = { step: "number", squareAvg: "tensor" };
    if (h.momentum > 0) spec.momentumBuffer = "tensor?";
    if (h.centered) spec.gradAvg = "tensor?";
    return spec;
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<RMSpropOptions>): void {
    state.step = (state.step as number) + 1;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const v = (state.squareAvg as Tensor).mul(h.alpha).add(g.mul(g).mul(1 - h.alpha));
    state.squareAvg = v;
    let denom: Tensor;
    if (h.centered) {
      // a group switched to centered after the first step starts its mean at zero
      const prev = state.gradAvg instanceof Tensor ? state.gradAvg : zerosLike(p);
      const m = prev.mul(h.alpha).add(g.mul(1 - h.alpha));
      state.gradAvg = m;
      denom = v.sub(m.mul(m)).sqrt().add(h.eps);
    } else {
      denom = v.sqrt().add(h.eps);
    }
    if (h.momentum > 0) {
      const prev = state.momentumBuffer instanceof Tensor ? state.momentumBuffer : zerosLike(p);
      const buf = prev.mul(h.momentum).add(g.div(denom));
      state.momentumBuffer = buf;
      p.sub_(buf, h.lr);
    } else {
      p.sub_(g.div(denom), h.lr);
    }
  }
}
