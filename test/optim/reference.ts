/**
 * Plain-number reference implementations of the update rules, written out from the algorithm boxes of the
 * torch.optim documentation (with the gradient negated first for `maximize`, as PyTorch's implementation does),
 * independently of src/optim. Each takes the initial parameter values and the gradient sequence and returns
 * the parameter values after every step. Every optimizer is elementwise, so each coordinate is run alone.
 */

type Traj = number[][];

/** Run an elementwise rule `make()` (fresh per coordinate) over all coordinates and steps. */
function elementwise(
  p0: number[],
  grads: number[][],
  make: () => (p: number, g: number, t: number) => number,
): Traj {
  const out: Traj = grads.map(() => new Array<number>(p0.length));
  for (let i = 0; i < p0.length; i++) {
    const rule = make();
    let p = p0[i];
    grads.forEach((g, k) => {
      p = rule(p, g[i], k + 1);
      out[k][i] = p;
    });
  }
  return out;
}

export interface SgdRef {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  maximize?: boolean;
}

export function refSGD(p0: number[], grads: number[][], h: SgdRef): Traj {
  const mu = h.momentum ?? 0;
  const tau = h.dampening ?? 0;
  const wd = h.weightDecay ?? 0;
  return elementwise(p0, grads, () => {
    let b = 0;
    return (p, grad, t) => {
      let g = h.maximize ? -grad : grad;
      g = g + wd * p;
      if (mu !== 0) {
        b = t === 1 ? g : mu * b + (1 - tau) * g;
        g = h.nesterov ? g + mu * b : b;
      }
      return p - h.lr * g;
    };
  });
}

export interface AdagradRef {
  lr: number;
  lrDecay?: number;
  weightDecay?: number;
  initialAccumulatorValue?: number;
  eps?: number;
  maximize?: boolean;
}

export function refAdagrad(p0: number[], grads: number[][], h: AdagradRef): Traj {
  const eps = h.eps ?? 1e-10;
  return elementwise(p0, grads, () => {
    let sum = h.initialAccumulatorValue ?? 0;
    return (p, grad, t) => {
      let g = h.maximize ? -grad : grad;
      g = g + (h.weightDecay ?? 0) * p;
      const clr = h.lr / (1 + (t - 1) * (h.lrDecay ?? 0));
      sum = sum + g * g;
      return p - (clr * g) / (Math.sqrt(sum) + eps);
    };
  });
}

export interface RmspropRef {
  lr: number;
  alpha?: number;
  eps?: number;
  weightDecay?: number;
  momentum?: number;
  centered?: boolean;
  maximize?: boolean;
}

export function refRMSprop(p0: number[], grads: number[][], h: RmspropRef): Traj {
  const alpha = h.alpha ?? 0.99;
  const eps = h.eps ?? 1e-8;
  const mu = h.momentum ?? 0;
  return elementwise(p0, grads, () => {
    let v = 0;
    let gAvg = 0;
    let b = 0;
    return (p, grad) => {
      let g = h.maximize ? -grad : grad;
      g = g + (h.weightDecay ?? 0) * p;
      v = alpha * v + (1 - alpha) * g * g;
      let denom: number;
      if (h.centered) {
        gAvg = alpha * gAvg + (1 - alpha) * g;
        denom = Math.sqrt(v - gAvg * gAvg) + eps;
      } else {
        denom = Math.sqrt(v) + eps;
      }
      if (mu > 0) {
        b = mu * b + g / denom;
        return p - h.lr * b;
      }
      return p - (h.lr * g) / denom;
    };
  });
}

export interface AdamRef {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
  maximize?: boolean;
  /** AdamW's decoupled decay instead of Adam's L2 term. */
  decoupled?: boolean;
}

export function refAdam(p0: number[], grads: number[][], h: AdamRef): Traj {
  const [b1, b2] = h.betas ?? [0.9, 0.999];
  const eps = h.eps ?? 1e-8;
  const wd = h.weightDecay ?? 0;
  return elementwise(p0, grads, () => {
    let m = 0;
    let v = 0;
    let vMax = 0;
    return (p, grad, t) => {
      if (h.decoupled) p = p * (1 - h.lr * wd);
      let g = h.maximize ? -grad : grad;
      if (!h.decoupled) g = g + wd * p;
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      const mHat = m / (1 - b1 ** t);
      vMax = Math.max(vMax, v);
      const vHat = (h.amsgrad ? vMax : v) / (1 - b2 ** t);
      return p - (h.lr * mHat) / (Math.sqrt(vHat) + eps);
    };
  });
}
