/**
 * AdaGrad (Duchi, Hazan and Singer 2011), following torch.optim.Adagrad: each coordinate's step is divided by
 * the root of the sum of its squared gradients, so rarely-updated coordinates keep large steps.
 *
 *   t <- t + 1
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   clr = lr / (1 + (t - 1) * lrDecay)
 *   s <- s + g^2                       (s starts at initialAccumulatorValue)
 *   p <- p - clr * g / (sqrt(s) + eps)
 */
import { fullLike } from "../ops/creation.ts";
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

/** Hyper-parameters of AdaGrad. */
export interface AdagradOptions {
  /** Learning rate (default 1e-2). */
  lr: number;
  /** Learning-rate decay: the step t uses lr / (1 + (t - 1) * lrDecay) (default 0). */
  lrDecay: number;
  /** L2 penalty coefficient added to the gradient (default 0). */
  weightDecay: number;
  /** Starting value of the sum of squared gradients (default 0). */
  initialAccumulatorValue: number;
  /** Added to the denominator for stability (default 1e-10). */
  eps: number;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/**
 * AdaGrad (torch.optim.Adagrad).
 *
 * @example
 * ```ts
 * const opt = new Adagrad([w], { lr: 0.1 });
 * ```
 */
export class Adagrad extends Optimizer<AdagradOptions> {
  constructor(params: ParamsArg<AdagradOptions>, opts: Partial<AdagradOptions> = {}) {
    super("Adagrad", params, {
      lr: 1e-2,
      lrDecay: 0,
      weightDecay: 0,
      initialAccumulatorValue: 0,
      eps: 1e-10,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<AdagradOptions>): void {
    checkRange("Adagrad", "lr", h.lr, h.lr >= 0, "lr >= 0");
    checkRange("Adagrad", "lrDecay", h.lrDecay, h.lrDecay >= 0, "lrDecay >= 0");
    checkRange("Adagrad", "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
    checkRange(
      "Adagrad",
      "initialAccumulatorValue",
      h.initialAccumulatorValue,
      h.initialAccumulatorValue >= 0,
      "initialAccumulatorValue >= 0",
    );
    checkRange("Adagrad", "eps", h.eps, h.eps >= 0, "eps >= 0");
  }

  protected stateSpec(): StateSpec {
    return { step: "number", sum: "tensor" };
  }

  protected override initState(p: Tensor, h: ParamGroup<AdagradOptions>): OptimState {
    return { step: 0, sum: fullLike(p, h.initialAccumulatorValue) };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<AdagradOptions>): void {
    const t = (state.step as number) + 1;
    state.step = t;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const clr = h.lr / (1 + (t - 1) * h.lrDecay);
    const sum = (state.sum as Tensor).add(g.mul(g));
    state.sum = sum;
    p.sub_(g.div(sum.sqrt().add(h.eps)), clr);
  }
}
