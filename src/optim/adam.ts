/**
 * Adam (Kingma and Ba 2015) with the AMSGrad variant (Reddi et al. 2018), and AdamW (Loshchilov and Hutter
 * 2019, decoupled weight decay), following torch.optim.Adam / AdamW:
 *
 *   t <- t + 1
 *   AdamW: p <- p * (1 - lr * weightDecay)          (decoupled: the decay never enters the moments)
 *   g <- (maximize ? -grad : grad)  (+ weightDecay * p for Adam: coupled L2)
 *   m <- beta1 * m + (1 - beta1) * g
 *   v <- beta2 * v + (1 - beta2) * g^2
 *   amsgrad: vmax <- max(vmax, v), and vmax replaces v below
 *   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * The AMSGrad maximum is taken over the raw second moments, then divided by the current bias correction,
 * which is what PyTorch's implementation does (some versions of its documentation box write the max of the
 * bias-corrected moments; the implementation is the reference here).
 */
import { isHalf } from "../dtype.ts";
import { getBackend } from "../backend/registry.ts";
import { zerosLike } from "../ops/creation.ts";
import { viewOf } from "../prims/impl.ts";
import { isContiguous } from "../shape.ts";
import { maximum } from "../ops/math.ts";
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

/** Hyper-parameters of Adam and AdamW. */
export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Decay rates of the first and second moment estimates (default [0.9, 0.999]). */
  betas: [number, number];
  /** Added to the denominator for stability (default 1e-8). */
  eps: number;
  /** Adam: L2 penalty added to the gradient (default 0); AdamW: decoupled decay rate (default 1e-2). */
  weightDecay: number;
  /** Use the running maximum of the second moment (AMSGrad). */
  amsgrad: boolean;
  /** Maximize the objective instead of minimizing it. */
  maximize: boolean;
}

function checkAdam(name: string, h: Readonly<AdamOptions>): void {
  checkRange(name, "lr", h.lr, h.lr >= 0, "lr >= 0");
  checkRange(name, "eps", h.eps, h.eps >= 0, "eps >= 0");
  const b = h.betas;
  const okBetas =
    Array.isArray(b) && b.length === 2 && b.every((x) => typeof x === "number" && x >= 0 && x < 1);
  checkRange(name, "betas", b, okBetas, "two numbers in [0, 1)");
  checkRange(name, "weightDecay", h.weightDecay, h.weightDecay >= 0, "weightDecay >= 0");
}

/** The shared update; `decoupled` selects AdamW's decay. */
function adamUpdate(p: Tensor, grad: Tensor, state: OptimState, h: AdamOptions, decoupled: boolean): void {
  const t = (state.step as number) + 1;
  state.step = t;
  if (fusedAdam(p, grad, state, h, decoupled, t)) return;
  const [beta1, beta2] = h.betas;
  if (decoupled && h.weightDecay !== 0) p.mul_(1 - h.lr * h.weightDecay);
  const g = stepGrad(p, grad, h.maximize, decoupled ? 0 : h.weightDecay);
  const m = (state.expAvg as Tensor).mul(beta1).add(g.mul(1 - beta1));
  const v = (state.expAvgSq as Tensor).mul(beta2).add(g.mul(g).mul(1 - beta2));
  state.expAvg = m;
  state.expAvgSq = v;
  let second = v;
  if (h.amsgrad) {
    const prev = state.maxExpAvgSq instanceof Tensor ? state.maxExpAvgSq : zerosLike(p);
    second = maximum(prev, v);
    state.maxExpAvgSq = second;
  }
  const bc1 = 1 - beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
  const denom = second.sqrt().div(bc2Sqrt).add(h.eps);
  p.sub_(m.div(denom), h.lr / bc1);
}

/** Storage a fused kernel may update in place: a concrete, contiguous tensor owning all of its array. */
function ownsContiguous(t: unknown): t is Tensor {
  return (
    t instanceof Tensor &&
    t._data !== null &&
    t._offset === 0 &&
    t._data.length === t.size &&
    isContiguous(t.shape, t._strides)
  );
}

/**
 * The same step through the backend's fused kernel when it has one: one pass, in place, no temporaries.
 * Returns false (and changes nothing) when the kernel or the layouts it needs are not available.
 */
function fusedAdam(
  p: Tensor,
  g: Tensor,
  state: OptimState,
  h: AdamOptions,
  decoupled: boolean,
  t: number,
): boolean {
  const be = getBackend();
  const vmax = h.amsgrad ? (state.maxExpAvgSq ?? zerosLike(p)) : null;
  if (
    be.adamUpdate === undefined ||
    !ownsContiguous(p) ||
    !ownsContiguous(state.expAvg) ||
    !ownsContiguous(state.expAvgSq) ||
    (vmax !== null && !ownsContiguous(vmax)) ||
    g._data === null ||
    g.dtype !== p.dtype ||
    isHalf(p.dtype) // the fused kernels update float32/float64 storage; half parameters compose the ops
  ) {
    return false;
  }
  const [beta1, beta2] = h.betas;
  be.adamUpdate(
    p._data!,
    viewOf(g),
    state.expAvg._data!,
    state.expAvgSq._data!,
    vmax === null ? null : vmax._data!,
    {
      lr: h.lr,
      beta1,
      beta2,
      eps: h.eps,
      weightDecay: h.weightDecay,
      decoupled,
      maximize: h.maximize,
      bc1: 1 - beta1 ** t,
      bc2Sqrt: Math.sqrt(1 - beta2 ** t),
    },
  );
  if (vmax !== null) state.maxExpAvgSq = vmax;
  p._ver!.v++;
  state.expAvg._ver!.v++;
  state.expAvgSq._ver!.v++;
  return true;
}

const ADAM_DEFAULTS: AdamOptions = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0,
  amsgrad: false,
  maximize: false,
};

function adamSpec(h: AdamOptions): StateSpec {
  const spec: StateSpec = { step: "number", expAvg: "tensor", expAvgSq: "tensor" };
  if (h.amsgrad) spec.maxExpAvgSq = "tensor?";
  return spec;
}

/**
 * Adam with optional AMSGrad and coupled (L2) weight decay (torch.optim.Adam).
 *
 * @example
 * ```ts
 * const opt = new Adam(model.parameters(), { lr: 1e-3, betas: [0.9, 0.999], amsgrad: true });
 * ```
 */
export class Adam extends Optimizer<AdamOptions> {
  constructor(params: ParamsArg<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super("Adam", params, { ...ADAM_DEFAULTS, ...opts });
  }
  protected checkHyper(h: Readonly<AdamOptions>): void {
    checkAdam("Adam", h);
  }
  protected stateSpec(h: ParamGroup<AdamOptions>): StateSpec {
    return adamSpec(h);
  }
  protected update(p: Tensor, g: Tensor, state: OptimState, h: ParamGroup<AdamOptions>): void {
    adamUpdate(p, g, state, h, false);
  }
}

/**
 * AdamW: Adam with decoupled weight decay, p <- p * (1 - lr * weightDecay) before the Adam step
 * (torch.optim.AdamW; weightDecay defaults to 1e-2).
 *
 * @example
 * ```ts
 * const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.05 });
 * ```
 */
export class AdamW extends Optimizer<AdamOptions> {
  constructor(params: ParamsArg<AdamOptions>, opts: Partial<AdamOptions> = {}) {
    super("AdamW", params, { ...ADAM_DEFAULTS, weightDecay: 1e-2, ...opts });
  }
  protected checkHyper(h: Readonly<AdamOptions>): void {
    checkAdam("AdamW", h);
  }
  protected stateSpec(h: ParamGroup<AdamOptions>): StateSpec {
    return adamSpec(h);
  }
  protected update(p: Tensor, g: Tensor, state: OptimState, h: ParamGroup<AdamOptions>): void {
    adamUpdate(p, g, state, h, true);
  }
}
