/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay, following
 * torch.optim.SGD exactly (the implementation, which negates the gradient for `maximize` before weight decay):
 *
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   if momentum != 0:
 *     b <- (first step) ? g : momentum * b + (1 - dampening) * g
 *     g <- nesterov ? g + momentum * b : b
 *   p <- p - lr * g
 */
import {
  checkRange,
  Optimizer,
  type OptimState,
  type ParamGroup,
  type ParamsArg,
  type StateSpec,
  stepGrad,
} from "./optimizer.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Hyper-parameters of SGD (PyTorch's names in camelCase). */
export interface SGDOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Dampening of the gradient added to the momentum buffer (default 0). */
  dampening: number;
  /** L2 penalty coefficient added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). */
  nesterov: boolean;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/**
 * SGD with optional momentum (torch.optim.SGD).
 *
 * @example
 * ```ts
 * const opt = new SGD([w, b], { lr: 0.1, momentum: 0.9, nesterov: true });
 * loss.backward(); opt.step(); opt.zeroGrad();
 * ```
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsArg<SGDOptions>, opts: Partial<SGDOptions> = {}) {
    super("SGD", params, {
      lr: 1e-3,
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<SGDOptions>): void {
    checkRange("SGD", "lr", h.lr, h.lr >= 0, "lr >= 0");
    checkRange("SGD", "momentum", h.momentum, h.momentum >= 0, "momentum >= 0");
    checkRange("SGD", "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
    checkRange("SGD", "dampening", h.dampening, Number.isFinite(h.dampening), "a finite number");
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new RangeError(
        `SGD: nesterov momentum requires momentum > 0 and dampening 0, got momentum ${h.momentum}, dampening ${h.dampening}`,
      );
    }
  }

  protected stateSpec(): StateSpec {
    return { momentumBuffer: "tensor?" };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<SGDOptions>): void {
    let g = stepGrad(p, grad, h.maximize, h.weightDecay);
    if (h.momentum !== 0) {
      const prev = state.momentumBuffer;
      // the first buffer is the gradient itself (no dampening), as PyTorch
      const buf =
        prev === undefined || typeof prev === "number"
          ? g.clone()
          : prev.mul(h.momentum).add(g.mul(1 - h.dampening));
      state.momentumBuffer = buf;
      g = h.nesterov ? g.add(buf.mul(h.momentum)) : buf;
    }
    p.sub_(g, h.lr);
  }
}
