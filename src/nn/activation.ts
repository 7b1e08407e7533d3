/**
 * Activation layers: module wrappers of the elementwise functions (and softmax/logSoftmax along a dim), so
 * they can sit in a Sequential. None has parameters.
 */
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/**
 * max(x, 0).
 *
 * @example
 * ```ts
 * new ReLU().call(tensor([-1, 2])); // [0, 2]
 * ```
 */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/**
 * x for x > 0, negativeSlope * x otherwise.
 *
 * @example
 * ```ts
 * new LeakyReLU(0.1).call(tensor([-1, 2])); // [-0.1, 2]
 * ```
 */
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
  override extraRepr(): string {
    return `negativeSlope=${this.negativeSlope}`;
  }
}

/**
 * x for x > 0, alpha (exp(x) - 1) otherwise.
 *
 * @example
 * ```ts
 * new ELU().call(tensor([-1, 2])); // [-0.632, 2]
 * ```
 */
export class ELU extends Module {
  constructor(readonly alpha = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.elu(this.alpha);
  }
  override extraRepr(): string {
    return `alpha=${this.alpha}`;
  }
}

/**
 * x Phi(x) (exact, with erf) or its tanh approximation.
 *
 * @example
 * ```ts
 * new GELU().call(tensor([1])); // [0.8413]
 * ```
 */
export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
  override extraRepr(): string {
    return `approximate=${this.approximate}`;
  }
}

/**
 * 1 / (1 + exp(-x)).
 *
 * @example
 * ```ts
 * new Sigmoid().call(tensor([0])); // [0.5]
 * ```
 */
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

/**
 * tanh(x).
 *
 * @example
 * ```ts
 * new Tanh().call(tensor([0])); // [0]
 * ```
 */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

/**
 * x sigmoid(x) (also called swish).
 *
 * @example
 * ```ts
 * new SiLU().call(tensor([1])); // [0.7311]
 * ```
 */
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.mul(x.sigmoid());
  }
}

/**
 * log(1 + exp(x)), computed stably.
 *
 * @example
 * ```ts
 * new Softplus().call(tensor([0])); // [0.6931]
 * ```
 */
export class Softplus extends Module {
  forward(x: Tensor): Tensor {
    return x.softplus();
  }
}

/**
 * softmax along `dim` (default the last).
 *
 * @example
 * ```ts
 * new Softmax(1).call(tensor([[0, 0]])); // [[0.5, 0.5]]
 * ```
 */
export class Softmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.softmax(this.dim);
  }
  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}

/**
 * log(softmax(x)) along `dim`, computed stably (x - logsumexp(x)).
 *
 * @example
 * ```ts
 * new LogSoftmax(1).call(tensor([[0, 0]])); // [[-0.6931, -0.6931]]
 * ```
 */
export class LogSoftmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.logSoftmax(this.dim);
  }
  override extraRepr(): string {
    return `dim=${this.dim}`;
  }
}
