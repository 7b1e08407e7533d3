/**
 * `Linear` (a fully connected layer, y = x W^T + b, with PyTorch's default initialisation), and the two
 * parameter-free shape layers that usually sit next to it: `Flatten` and `Identity`.
 */
import type { DType } from "../dtype.ts";
import { type Activation, linear } from "../ops/nn.ts";
import { ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { calculateFans, kaimingUniform, uniform } from "./init.ts";
import { Module, parameter } from "./module.ts";

/** Options of Linear. */
export interface LinearOpts {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  dtype?: DType;
}

/**
 * y = x W^T + b over the last dim: x [..., inFeatures] -> [..., outFeatures]. W is [out, in].
 *
 * Initialisation as PyTorch: W ~ kaiming_uniform(a = sqrt(5)), which is U(-1/sqrt(in), 1/sqrt(in)), and
 * b ~ U(-1/sqrt(in), 1/sqrt(in)).
 *
 * @example
 * ```ts
 * const fc = new Linear(784, 10);
 * fc.call(randn([32, 784])); // [32, 10]
 * ```
 */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOpts = {},
  ) {
    super();
    for (const [n, v] of [
      ["inFeatures", inFeatures],
      ["outFeatures", outFeatures],
    ] as const) {
      if (!Number.isInteger(v) || v < 0)
        throw new RangeError(`Linear: ${n} must be an integer >= 0, got ${v}`);
    }
    const dtype = opts.dtype ?? "float32";
    this.weight = kaimingUniform(parameter([outFeatures, inFeatures], dtype), { a: Math.sqrt(5) });
    if (opts.bias ?? true) {
      const { fanIn } = calculateFans(this.weight.shape);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      this.bias = uniform(parameter([outFeatures], dtype), -bound, bound);
    } else {
      this.bias = null;
    }
  }

  forward(x: Tensor): Tensor {
    return this._forwardActivated(x);
  }

  /** @internal act(forward(x)), the activation fused into the bias add (Sequential uses it). */
  _forwardActivated(x: Tensor, activation?: Activation): Tensor {
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new ShapeError(
        `Linear: expected input [..., ${this.inFeatures}], got ${fmtShape(x.shape)} (weight ${fmtShape(this.weight.shape)})`,
      );
    }
    return linear(x, this.weight, this.bias, { activation });
  }

  override extraRepr(): string {
    return `in=${this.inFeatures}, out=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/**
 * Returns its input unchanged (a placeholder, e.g. for an optional shortcut).
 *
 * @example
 * ```ts
 * new Identity().call(x) === x; // true
 * ```
 */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/**
 * Flattens dims startDim..endDim into one (defaults keep the batch dim: [N, C, H, W] -> [N, C*H*W]).
 *
 * @example
 * ```ts
 * new Flatten().call(zeros([8, 16, 4, 4])); // [8, 256]
 * ```
 */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }

  override extraRepr(): string {
    return `startDim=${this.startDim}, endDim=${this.endDim}`;
  }
}
