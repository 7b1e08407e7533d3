/**
 * Building blocks of two classic convolutional networks:
 * - `BasicBlock`, the residual block of ResNet-18/34 (He et al., 2016): conv3x3-BN-ReLU-conv3x3-BN plus a
 *   shortcut (the identity, or a 1x1 conv + BN when the stride or the channel count changes), then ReLU;
 * - `DenseBlock` of DenseNet (Huang et al., 2017): each `DenseLayer` (BN-ReLU-conv3x3) sees the concatenation
 *   of the block input and every earlier layer's output, and adds `growthRate` channels to it.
 */
import type { DType } from "../dtype.ts";
import { cat } from "../ops/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Conv2d } from "./conv.ts";
import { Sequential } from "./container.ts";
import { Module } from "./module.ts";
import { BatchNorm2d } from "./norm.ts";

/** Options shared by the blocks. */
export interface BlockOpts {
  dtype?: DType;
}

/**
 * ResNet basic block: [N, inPlanes, H, W] -> [N, planes, H / stride, W / stride].
 * out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); convolutions have no bias (BN follows them).
 * `downsample` (torchvision's name) is null when the shortcut is the identity.
 *
 * @example
 * ```ts
 * new BasicBlock(64, 128, 2).call(randn([1, 64, 8, 8])); // [1, 128, 4, 4]
 * ```
 */
export class BasicBlock extends Module {
  /** Output channels per input channel count (1 for the basic block; 4 for the bottleneck). */
  static readonly expansion = 1;
  conv1: Conv2d;
  bn1: BatchNorm2d;
  conv2: Conv2d;
  bn2: BatchNorm2d;
  downsample: Sequential | null;

  constructor(inPlanes: number, planes: number, stride = 1, opts: BlockOpts = {}) {
    super();
    const dtype = opts.dtype;
    this.conv1 = new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false, dtype });
    this.bn1 = new BatchNorm2d(planes, { dtype });
    this.conv2 = new Conv2d(planes, planes, 3, { padding: 1, bias: false, dtype });
    this.bn2 = new BatchNorm2d(planes, { dtype });
    this.downsample =
      stride !== 1 || inPlanes !== planes
        ? new Sequential(
            new Conv2d(inPlanes, planes, 1, { stride, bias: false, dtype }),
            new BatchNorm2d(planes, { dtype }),
          )
        : null;
  }

  forward(x: Tensor): Tensor {
    const out = this.bn2.call(this.conv2.call(this.bn1.call(this.conv1.call(x)).relu()));
    const shortcut = this.downsample === null ? x : this.downsample.call(x);
    return out.add(shortcut).relu();
  }
}

/**
 * One DenseNet layer: BN-ReLU-conv3x3 (padding 1, no bias) from inChannels to growthRate channels.
 *
 * @example
 * ```ts
 * new DenseLayer(16, 12).call(randn([1, 16, 8, 8])); // [1, 12, 8, 8]
 * ```
 */
export class DenseLayer extends Module {
  norm: BatchNorm2d;
  conv: Conv2d;

  constructor(inChannels: number, growthRate: number, opts: BlockOpts = {}) {
    super();
    this.norm = new BatchNorm2d(inChannels, { dtype: opts.dtype });
    this.conv = new Conv2d(inChannels, growthRate, 3, { padding: 1, bias: false, dtype: opts.dtype });
  }

  forward(x: Tensor): Tensor {
    return this.conv.call(this.norm.call(x).relu());
  }
}

/**
 * DenseNet block: [N, inChannels, H, W] -> [N, inChannels + numLayers * growthRate, H, W]. Layer i takes the
 * running concatenation (inChannels + i * growthRate channels) and its output is concatenated to it along the
 * channel dim.
 *
 * @example
 * ```ts
 * new DenseBlock(3, 16, 12).call(randn([1, 16, 8, 8])); // [1, 52, 8, 8]
 * ```
 */
export class DenseBlock extends Module {
  layers: DenseLayer[];

  constructor(
    readonly numLayers: number,
    readonly inChannels: number,
    readonly growthRate: number,
    opts: BlockOpts = {},
  ) {
    super();
    if (!Number.isInteger(numLayers) || numLayers < 1) {
      throw new RangeError(`DenseBlock: numLayers must be an integer >= 1, got ${numLayers}`);
    }
    this.layers = Array.from(
      { length: numLayers },
      (_, i) => new DenseLayer(inChannels + i * growthRate, growthRate, opts),
    );
  }

  forward(x: Tensor): Tensor {
    let features = x;
    for (const layer of this.layers) features = cat([features, layer.call(features)], 1);
    return features;
  }

  override extraRepr(): string {
    return `numLayers=${this.numLayers}, inChannels=${this.inChannels}, growthRate=${this.growthRate}`;
  }
}
