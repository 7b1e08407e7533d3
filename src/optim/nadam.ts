/**
 * NAdam (Dozat 2016): Adam with Nesterov momentum, following torch.optim.NAdam, including its momentum
 * schedule (the "momentum cache" mu_t that decays with `momentumDecay`):
 *
 *   t <- t + 1
 *   g <- (maximize ? -grad : grad) + weightDecay * p
 *   mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentumDecay)),  mu_{t+1} likewise with t + 1
 *   P <- P * mu_t                                  (the product of all mu so far, starts at 1)
 *   m <- beta1 * m + (1 - beta1) * g
 *   v <- beta2 * v + (1 - beta2) * g^2
 *   d = sqrt(v / (1 - beta2^t)) + eps
 *   p <- p - lr * (1 - mu_t) / (1 - P) * g / d - lr * mu_{t+1} / (1 - P * mu_{t+1}) * m / d
 *
 * This is PyTorch 2's rule. PyTorch 1.13 multiplies mu_t into the second product once more
 * (1 - P * mu_t * mu_{t+1}), a bug fixed in PyTorch 2.0 (pytorch/pytorch#92699); runs differ from 1.13's by
 * about 1% of the momentum term's step. The product P is kept as a double (PyTorch keeps it in a scalar
 * tensor of the default dtype, float32 unless set otherwise). `maximize` is not in PyTorch 1.13's NAdam; it is
 * PyTorch 2's option of the same name (the gradient is negated first).
 */
import { zerosLike } from "../ops/creation.ts";
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

/** Hyper-parameters shared by the Adam family (RAdam, Adamax, NAdam). */
export interface AdamFamilyOptions {
  /** Learning rate (default 1e-3; 2e-3 for Adamax and NAdam). */
  lr: number;
  /** Decay rates of the first moment and of the second moment (Adamax: of the infinity norm); default [0.9, 0.999]. */
  betas: [number, number];
  /** Added to the denominator for stability (Adamax: to |g| in the infinity norm); default 1e-8. */
  eps: number;
  /** L2 penalty coefficient added to the gradient (default 0). */
  weightDecay: number;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

/** Hyper-parameters of NAdam. */
export interface NAdamOptions extends AdamFamilyOptions {
  /** How fast the momentum schedule mu_t approaches beta1 (default 4e-3). */
  momentumDecay: number;
}

/**
 * Internal helper of the Adam-family optimizers: lr, eps, betas and weightDecay ranges as PyTorch checks them.
 */
export function checkAdamFamily(
  name: string,
  h: Readonly<{ lr: number; eps: number; betas: [number, number]; weightDecay: number }>,
): void {
  checkRange(name, "lr", h.lr, h.lr >= 0, "lr >= 0");
  checkRange(name, "eps", h.eps, h.eps >= 0, "eps >= 0");
  const b = h.betas;
  const okBetas =
    Array.isArray(b) && b.length === 2 && b.every((x) => typeof x === "number" && x >= 0 && x < 1);
  checkRange(name, "betas", b, okBetas, "two numbers in [0, 1)");
  checkRange(name, "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
}

/**
 * NAdam (torch.optim.NAdam).
 *
 * @example
 * ```ts
 * const opt = new NAdam(model.parameters(), { lr: 2e-3, momentumDecay: 4e-3 });
 * ```
 */
export class NAdam extends Optimizer<NAdamOptions> {
  constructor(params: ParamsArg<NAdamOptions>, opts: Partial<NAdamOptions> = {}) {
    super("NAdam", params, {
      lr: 2e-3,
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      momentumDecay: 4e-3,
      maximize: false,
      ...opts,
    });
  }

  protected checkHyper(h: Readonly<NAdamOptions>): void {
    checkAdamFamily("NAdam", h);
    checkRange("NAdam", "momentumDecay", h.momentumDecay, h.momentumDecay >= 0, "momentumDecay >= 0");
  }

  protected stateSpec(): StateSpec {
    return { step: "number", muProduct: "number", expAvg: "tensor", expAvgSq: "tensor" };
  }

  protected override initState(p: Tensor): OptimState {
    return { step: 0, muProduct: 1, expAvg: zerosLike(p), expAvgSq: zerosLike(p) };
  }

  protected update(p: Tensor, grad: Tensor, state: OptimState, h: ParamGroup<NAdamOptions>): void {
    const t = (state.step as number) + 1;
    state.step = t;
    const [beta1, beta2] = h.betas;
    const g = stepGrad(p, grad, h.maximize, h.weightDecay);
    const mu = beta1 * (1 - 0.5 * 0.96 ** (t * h.momentumDecay));
    const muNext = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * h.momentumDecay));
    const muProduct = (state.muProduct as number) * mu;
    state.muProduct = muProduct;
    const muProductNext = muProduct * muNext;
    const m = (state.expAvg as Tensor).mul(beta1).add(g.mul(1 - beta1));
    const v = (state.expAvgSq as Tensor).mul(beta2).add(g.mul(g).mul(1 - beta2));
    state.expAvg = m;
    state.expAvgSq = v;
    const denom = v
      .div(1 - beta2 ** t)
      .sqrt()
      .add(h.eps);
    p.sub_(g.div(denom), (h.lr * (1 - mu)) / (1 - muProduct));
    p.sub_(m.div(denom), (h.lr * muNext) / (1 - muProductNext));
  }
}
