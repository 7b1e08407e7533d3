/**
 * `Conv2d`: 2-d convolution (cross-correlation, as every framework) over NCHW input, with PyTorch's arguments
 * and default initialisation. Padding may be a number, a pair, "valid" (none) or "same" (stride 1; an odd
 * total padding puts the extra row/column after, as PyTorch).
 */
import type { DType } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { type Activation, conv2d } from "../ops/nn.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { calculateFans, kaimingUniform, uniform } from "./init.ts";
import { Module, parameter } from "./module.ts";

type Pair = number | readonly [number, number];

/** Options of Conv2d (PyTorch defaults: stride 1, padding 0, dilation 1, groups 1, bias true). */
export interface Conv2dLayerOpts {
  stride?: Pair;
  padding?: Pair | "valid" | "same";
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  dtype?: DType;
}

function pair(v: Pair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/**
 * 2-d convolution layer: x [N, inChannels, H, W] -> [N, outChannels, H', W'] with
 * H' = floor((H + 2 pad - dilation (k - 1) - 1) / stride) + 1. Weight [out, in / groups, kh, kw].
 *
 * Initialisation as PyTorch: weight ~ kaiming_uniform(a = sqrt(5)) and bias ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn))
 * with fanIn = in / groups * kh * kw.
 *
 * @example
 * ```ts
 * const conv = new Conv2d(3, 16, 3, { padding: 1 });
 * conv.call(randn([8, 3, 32, 32])); // [8, 16, 32, 32]
 * ```
 */
export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  readonly padding: [number, number] | "same";

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    opts: Conv2dLayerOpts = {},
  ) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    const p = opts.padding ?? 0;
    this.padding = p === "valid" ? [0, 0] : p === "same" ? "same" : pair(p);
    if (p === "same" && (this.stride[0] !== 1 || this.stride[1] !== 1)) {
      throw new RangeError(`Conv2d: padding "same" needs stride 1, got stride ${this.stride}`);
    }
    const g = this.groups;
    if (!Number.isInteger(g) || g < 1 || inChannels % g !== 0 || outChannels % g !== 0) {
      throw new RangeError(
        `Conv2d: groups=${g} must be a positive integer dividing inChannels=${inChannels} and outChannels=${outChannels}`,
      );
    }
    if (![...this.kernelSize, ...this.stride, ...this.dilation].every((v) => Number.isInteger(v) && v >= 1)) {
      throw new RangeError(
        `Conv2d: kernel size, stride and dilation must be integers >= 1, got ${this.kernelSize}, ${this.stride}, ${this.dilation}`,
      );
    }
    const dtype = opts.dtype ?? "float32";
    const shape = [outChannels, inChannels / g, ...this.kernelSize];
    this.weight = kaimingUniform(parameter(shape, dtype), { a: Math.sqrt(5) });
    if (opts.bias ?? true) {
      const { fanIn } = calculateFans(shape);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      this.bias = uniform(parameter([outChannels], dtype), -bound, bound);
    } else {
      this.bias = null;
    }
  }

  forward(x: Tensor): Tensor {
    return this._forwardActivated(x);
  }

  /** @internal act(forward(x)), the activation fused into the bias add (Sequential uses it). */
  _forwardActivated(x: Tensor, activation?: Activation): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(
        `Conv2d: expected input [N, ${this.inChannels}, H, W], got ${fmtShape(x.shape)} (weight ${fmtShape(this.weight.shape)})`,
      );
    }
    const opts = { stride: this.stride, dilation: this.dilation, groups: this.groups, activation };
    if (this.padding !== "same") return conv2d(x, this.weight, this.bias, { ...opts, padding: this.padding });
    // "same": total padding dilation (k - 1) per axis; an odd total puts the extra one after
    const total = this.kernelSize.map((k, i) => this.dilation[i] * (k - 1));
    const before = total.map((t) => Math.floor(t / 2));
    const xp = total[0] % 2 === 0 && total[1] % 2 === 0 ? x : x.pad([0, total[1] % 2, 0, total[0] % 2]); // the asymmetric remainder, as explicit zero padding
    return conv2d(xp, this.weight, this.bias, { ...opts, padding: [before[0], before[1]] });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize.join("x")}`];
    if (this.stride.some((s) => s !== 1)) parts.push(`stride=${this.stride.join("x")}`);
    const p = this.padding;
    if (p === "same") parts.push(`padding=same`);
    else if (p.some((v) => v !== 0)) parts.push(`padding=${p.join("x")}`);
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=${this.dilation.join("x")}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (this.bias === null) parts.push("bias=false");
    return parts.join(", ");
  }
}
