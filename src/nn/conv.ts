/**
 * Convolution layers with PyTorch's arguments, weight layouts and default initialisation: `Conv2d` (NCHW
 * cross-correlation; padding a number, a pair, "valid" (none) or "same" (stride 1; an odd total padding puts
 * the extra row/column after, as PyTorch)), `Conv1d` (NCL, over conv2d), and the transposed convolutions
 * `ConvTranspose2d` and `ConvTranspose1d` (over conv2d's input gradient). Zero padding only.
 */
import type { DType } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { type Activation, conv2d } from "../ops/nn.ts";
import { conv1d, convTranspose1d, convTranspose2d } from "../ops/conv.ts";
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

/** Options of Conv1d (PyTorch defaults: stride 1, padding 0, dilation 1, groups 1, bias true). */
export interface Conv1dLayerOpts {
  stride?: number;
  padding?: number | "valid" | "same";
  dilation?: number;
  groups?: number;
  bias?: boolean;
  dtype?: DType;
}

function checkChannels(op: string, inChannels: number, outChannels: number, groups: number): void {
  if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw new RangeError(
      `${op}: groups=${groups} must be a positive integer dividing inChannels=${inChannels} and outChannels=${outChannels}`,
    );
  }
}

function checkSizes(op: string, sizes: readonly number[]): void {
  if (!sizes.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new RangeError(
      `${op}: kernel size, stride and dilation must be integers >= 1, got ${sizes.join(", ")}`,
    );
  }
}

/** PyTorch's init of a convolution's parameters: kaiming_uniform(a = sqrt(5)) and U(-1/sqrt(fanIn), ..) bias. */
function convParams(shape: number[], biasSize: number, bias: boolean, dtype: DType): [Tensor, Tensor | null] {
  const weight = kaimingUniform(parameter(shape, dtype), { a: Math.sqrt(5) });
  if (!bias) return [weight, null];
  const { fanIn } = calculateFans(shape);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return [weight, uniform(parameter([biasSize], dtype), -bound, bound)];
}

/**
 * 1-d convolution layer: x [N, inChannels, L] (or unbatched [inChannels, L]) -> [N, outChannels, L'] with
 * L' = floor((L + 2 padding - dilation (k - 1) - 1) / stride) + 1. Weight [out, in / groups, k]; initialised
 * as PyTorch's. Runs as the conv2d primitive over an [N, C, 1, L] view (`conv1d`).
 *
 * @example
 * ```ts
 * const conv = new Conv1d(16, 32, 5, { padding: "same" });
 * conv.call(randn([8, 16, 100])); // [8, 32, 100]
 * ```
 */
export class Conv1d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly stride: number;
  readonly dilation: number;
  readonly groups: number;
  readonly padding: number | "same" | "valid";

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: Conv1dLayerOpts = {},
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    this.padding = opts.padding ?? 0;
    checkSizes("Conv1d", [kernelSize, this.stride, this.dilation]);
    if (this.padding === "same" && this.stride !== 1) {
      throw new RangeError(`Conv1d: padding "same" needs stride 1, got stride ${this.stride}`);
    }
    checkChannels("Conv1d", inChannels, outChannels, this.groups);
    [this.weight, this.bias] = convParams(
      [outChannels, inChannels / this.groups, kernelSize],
      outChannels,
      opts.bias ?? true,
      opts.dtype ?? "float32",
    );
  }

  forward(x: Tensor): Tensor {
    if ((x.ndim !== 3 && x.ndim !== 2) || x.shape[x.ndim - 2] !== this.inChannels) {
      throw new ShapeError(
        `Conv1d: expected input [N, ${this.inChannels}, L] or [${this.inChannels}, L], got ${fmtShape(x.shape)} (weight ${fmtShape(this.weight.shape)})`,
      );
    }
    const { stride, padding, dilation, groups } = this;
    return conv1d(x, this.weight, this.bias, { stride, padding, dilation, groups });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize}`];
    if (this.stride !== 1) parts.push(`stride=${this.stride}`);
    if (this.padding !== 0 && this.padding !== "valid") parts.push(`padding=${this.padding}`);
    if (this.dilation !== 1) parts.push(`dilation=${this.dilation}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (this.bias === null) parts.push("bias=false");
    return parts.join(", ");
  }
}

/** Options of ConvTranspose2d (PyTorch defaults: stride 1, padding 0, outputPadding 0, dilation 1, groups 1, bias). */
export interface ConvTranspose2dLayerOpts {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  dtype?: DType;
}

/** Options of ConvTranspose1d (PyTorch defaults: stride 1, padding 0, outputPadding 0, dilation 1, groups 1, bias). */
export interface ConvTranspose1dLayerOpts {
  stride?: number;
  padding?: number;
  outputPadding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
  dtype?: DType;
}

/**
 * The output padding that gives the requested output size (PyTorch's `output_size` argument of a transposed
 * convolution's forward), checked to lie in the range the other parameters allow.
 */
function outputPaddingFor(
  op: string,
  x: Tensor,
  outputSize: readonly number[],
  k: readonly number[],
  stride: readonly number[],
  padding: readonly number[],
  dilation: readonly number[],
): number[] {
  const nd = k.length;
  const want = outputSize.slice(-nd);
  if (want.length !== nd || (outputSize.length !== nd && outputSize.length !== x.ndim)) {
    throw new ShapeError(
      `${op}: outputSize must have ${nd} or ${x.ndim} entries, got ${fmtShape(outputSize)}`,
    );
  }
  const sp = x.shape.slice(x.ndim - nd);
  return want.map((v, i) => {
    const min = (sp[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k[i] - 1) + 1;
    const max = min + Math.max(stride[i], dilation[i]) - 1;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new ShapeError(
        `${op}: requested output size ${fmtShape(want)}, but valid sizes for input ${fmtShape(x.shape)} range from ${min} to ${max} in dim ${i}`,
      );
    }
    return v - min;
  });
}

/**
 * 2-d transposed convolution layer (PyTorch's ConvTranspose2d, the gradient of Conv2d with respect to its
 * input): x [N, inChannels, H, W] -> [N, outChannels, H', W'] with
 * H' = (H - 1) stride - 2 padding + dilation (k - 1) + outputPadding + 1. Weight [in, out / groups, kh, kw]
 * (PyTorch's layout), initialised as PyTorch's (fanIn = out / groups * kh * kw). `call(x, outputSize)` picks
 * the output padding that gives outputSize, as PyTorch's `output_size`.
 *
 * @example
 * ```ts
 * const up = new ConvTranspose2d(16, 8, 4, { stride: 2, padding: 1 });
 * up.call(randn([1, 16, 7, 7])); // [1, 8, 14, 14]
 * ```
 */
export class ConvTranspose2d extends Module<[Tensor, (readonly number[])?]> {
  weight: Tensor;
  bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly outputPadding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    opts: ConvTranspose2dLayerOpts = {},
  ) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.outputPadding = pair(opts.outputPadding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    checkSizes("ConvTranspose2d", [...this.kernelSize, ...this.stride, ...this.dilation]);
    checkChannels("ConvTranspose2d", inChannels, outChannels, this.groups);
    [this.weight, this.bias] = convParams(
      [inChannels, outChannels / this.groups, ...this.kernelSize],
      outChannels,
      opts.bias ?? true,
      opts.dtype ?? "float32",
    );
  }

  forward(x: Tensor, outputSize?: readonly number[]): Tensor {
    if ((x.ndim !== 4 && x.ndim !== 3) || x.shape[x.ndim - 3] !== this.inChannels) {
      throw new ShapeError(
        `ConvTranspose2d: expected input [N, ${this.inChannels}, H, W] or [${this.inChannels}, H, W], got ${fmtShape(x.shape)} (weight ${fmtShape(this.weight.shape)})`,
      );
    }
    const { stride, padding, dilation, groups } = this;
    const op =
      outputSize === undefined
        ? this.outputPadding
        : outputPaddingFor("ConvTranspose2d", x, outputSize, this.kernelSize, stride, padding, dilation);
    return convTranspose2d(x, this.weight, this.bias, {
      stride,
      padding,
      dilation,
      groups,
      outputPadding: [op[0], op[1]],
    });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize.join("x")}`];
    if (this.stride.some((s) => s !== 1)) parts.push(`stride=${this.stride.join("x")}`);
    if (this.padding.some((v) => v !== 0)) parts.push(`padding=${this.padding.join("x")}`);
    if (this.outputPadding.some((v) => v !== 0)) parts.push(`outputPadding=${this.outputPadding.join("x")}`);
    if (this.dilation.some((d) => d !== 1)) parts.push(`dilation=${this.dilation.join("x")}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (this.bias === null) parts.push("bias=false");
    return parts.join(", ");
  }
}

/**
 * 1-d transposed convolution layer (PyTorch's ConvTranspose1d): x [N, inChannels, L] -> [N, outChannels, L']
 * with L' = (L - 1) stride - 2 padding + dilation (k - 1) + outputPadding + 1; weight [in, out / groups, k].
 */
export class ConvTranspose1d extends Module<[Tensor, (readonly number[])?]> {
  weight: Tensor;
  bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;
  readonly outputPadding: number;
  readonly dilation: number;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: ConvTranspose1dLayerOpts = {},
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.outputPadding = opts.outputPadding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.groups = opts.groups ?? 1;
    checkSizes("ConvTranspose1d", [kernelSize, this.stride, this.dilation]);
    checkChannels("ConvTranspose1d", inChannels, outChannels, this.groups);
    [this.weight, this.bias] = convParams(
      [inChannels, outChannels / this.groups, kernelSize],
      outChannels,
      opts.bias ?? true,
      opts.dtype ?? "float32",
    );
  }

  forward(x: Tensor, outputSize?: readonly number[]): Tensor {
    if ((x.ndim !== 3 && x.ndim !== 2) || x.shape[x.ndim - 2] !== this.inChannels) {
      throw new ShapeError(
        `ConvTranspose1d: expected input [N, ${this.inChannels}, L] or [${this.inChannels}, L], got ${fmtShape(x.shape)} (weight ${fmtShape(this.weight.shape)})`,
      );
    }
    const { stride, padding, dilation, groups } = this;
    const op =
      outputSize === undefined
        ? this.outputPadding
        : outputPaddingFor(
            "ConvTranspose1d",
            x,
            outputSize,
            [this.kernelSize],
            [stride],
            [padding],
            [dilation],
          )[0];
    return convTranspose1d(x, this.weight, this.bias, {
      stride,
      padding,
      dilation,
      groups,
      outputPadding: op,
    });
  }

  override extraRepr(): string {
    const parts = [`${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize}`];
    if (this.stride !== 1) parts.push(`stride=${this.stride}`);
    if (this.padding !== 0) parts.push(`padding=${this.padding}`);
    if (this.outputPadding !== 0) parts.push(`outputPadding=${this.outputPadding}`);
    if (this.dilation !== 1) parts.push(`dilation=${this.dilation}`);
    if (this.groups !== 1) parts.push(`groups=${this.groups}`);
    if (this.bias === null) parts.push("bias=false");
    return parts.join(", ");
  }
}
