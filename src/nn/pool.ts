/**
 * Pooling layers over NCHW input: `MaxPool2d`, `AvgPool2d` and `AdaptiveAvgPool2d` (a fixed output size
 * whatever the input size, as at the end of a ResNet).
 */
import { ShapeError } from "../errors.ts";
import { avgPool2d, maxPool2d } from "../ops/nn.ts";
import { cat } from "../ops/shape.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

type Pair = number | readonly [number, number];

/** Options of the pooling layers: stride defaults to the kernel size, padding to 0. */
export interface PoolOpts {
  stride?: Pair;
  padding?: Pair;
}

function fmtPair(v: Pair): string {
  return typeof v === "number" ? String(v) : v.join("x");
}

/**
 * Max over kh x kw windows (padding counts as -infinity).
 *
 * @example
 * ```ts
 * new MaxPool2d(2).call(randn([1, 3, 8, 8])); // [1, 3, 4, 4]
 * ```
 */
export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly opts: PoolOpts = {},
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, this.opts);
  }

  override extraRepr(): string {
    return `kernel=${fmtPair(this.kernelSize)}, stride=${fmtPair(this.opts.stride ?? this.kernelSize)}`;
  }
}

/**
 * Mean over kh x kw windows (zero padding counted in the divisor, PyTorch's default).
 *
 * @example
 * ```ts
 * new AvgPool2d(3, { stride: 2, padding: 1 }).call(randn([1, 3, 8, 8])); // [1, 3, 4, 4]
 * ```
 */
export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly opts: PoolOpts = {},
  ) {
    super();
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, this.kernelSize, this.opts);
  }

  override extraRepr(): string {
    return `kernel=${fmtPair(this.kernelSize)}, stride=${fmtPair(this.opts.stride ?? this.kernelSize)}`;
  }
}

/**
 * Mean over adaptive windows along one axis: output i averages input [floor(i n / m), ceil((i + 1) n / m)),
 * PyTorch's rule (windows may overlap and differ in size by one when m does not divide n).
 */
function adaptiveMeanAxis(x: Tensor, axis: number, m: number): Tensor {
  const n = x.shape[axis];
  if (m === n) return x;
  const parts: Tensor[] = [];
  for (let i = 0; i < m; i++) {
    const s = Math.floor((i * n) / m);
    const e = Math.ceil(((i + 1) * n) / m);
    parts.push(x.narrow(axis, s, e - s).mean(axis, true));
  }
  return cat(parts, axis);
}

/**
 * Average pooling to a fixed output size [oh, ow] (`null` keeps that input size). When the output size divides
 * the input size the windows tile the input and this is one avgPool2d; otherwise it follows PyTorch's
 * overlapping windows (separable: a rectangle mean is a mean of row means).
 *
 * @example
 * ```ts
 * new AdaptiveAvgPool2d(1).call(randn([8, 512, 7, 7])); // [8, 512, 1, 1]
 * new AdaptiveAvgPool2d([2, 3]).call(randn([1, 1, 5, 7])); // [1, 1, 2, 3]
 * ```
 */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: readonly [number | null, number | null];

  constructor(outputSize: number | readonly [number | null, number | null]) {
    super();
    this.outputSize = typeof outputSize === "number" ? [outputSize, outputSize] : outputSize;
    for (const v of this.outputSize) {
      if (v !== null && (!Number.isInteger(v) || v < 1)) {
        throw new RangeError(
          `AdaptiveAvgPool2d: output size must be integers >= 1 (or null), got ${JSON.stringify(outputSize)}`,
        );
      }
    }
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) {
      throw new ShapeError(`AdaptiveAvgPool2d: input must be 4-d [N, C, H, W], got ${fmtShape(x.shape)}`);
    }
    const [, , h, w] = x.shape;
    const oh = this.outputSize[0] ?? h;
    const ow = this.outputSize[1] ?? w;
    if (h === 0 || w === 0) {
      throw new ShapeError(`AdaptiveAvgPool2d: input ${fmtShape(x.shape)} has an empty spatial dim`);
    }
    if (h % oh === 0 && w % ow === 0) {
      if (oh === h && ow === w) return x;
      return avgPool2d(x, [h / oh, w / ow]);
    }
    return adaptiveMeanAxis(adaptiveMeanAxis(x, 2, oh), 3, ow);
  }

  override extraRepr(): string {
    return `outputSize=${this.outputSize.map((v) => v ?? "None").join("x")}`;
  }
}
