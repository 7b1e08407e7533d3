/**
 * Example: a small residual network (ResNet) built from the BasicBlocks of src/nn.
 *
 * A residual block computes out = ReLU(x + F(x)) with F = conv-BN-ReLU-conv-BN: the block only has to learn the
 * *change* F to its input, and the identity path x carries the signal (and, backwards, the gradient) through
 * unchanged, which is what lets ResNets be trained at depths where plain stacks of convolutions stall. When a
 * block halves the resolution and doubles the channels, the shortcut becomes a strided 1x1 conv + BN so the
 * two paths have the same shape.
 *
 * The network here is a miniature of ResNet-18 for 28x28 grey images (width w = --width, default 8):
 *
 *   stem: conv 3x3 stride 2, BN, ReLU       [N, 1, 28, 28] -> [N, w, 14, 14]
 *   BasicBlock(w, w)                        -> [N, w, 14, 14]
 *   BasicBlock(w, 2w, stride 2)             -> [N, 2w, 7, 7]
 *   BasicBlock(2w, 4w, stride 2)            -> [N, 4w, 4, 4]
 *   global average pool, linear             -> [N, 10]
 *
 * BatchNorm behaves differently in training (batch statistics) and evaluation (running averages), so the
 * loop switches with model.train() / model.eval(). Defaults are small so it runs in a couple of minutes on
 * the plain JavaScript backend.
 *
 * Outputs (in --out, default runs/examples/resnet/): curves.svg, model.safetensors.
 *
 * Run:  npx tsx examples/resnet.ts [--dataset digits|fashion-mnist] [--epochs 3] [--limit 3000] [--width 8]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { data, files, Generator, manualSeed, nn, noGrad, optim, type Tensor, viz } from "../src/node.ts";

// ---- options ------------------------------------------------------------------------------------------------
const { values: opts } = parseArgs({
  options: {
    dataset: { type: "string", default: "digits" }, // or "fashion-mnist"
    epochs: { type: "string", default: "3" },
    limit: { type: "string", default: "3000" }, // training images
    "test-limit": { type: "string", default: "1000" },
    width: { type: "string", default: "8" }, // channels of the first stage
    "batch-size": { type: "string", default: "32" },
    lr: { type: "string", default: "1e-2" }, // peak learning rate of the one-cycle schedule
    seed: { type: "string", default: "0" },
    out: { type: "string", default: "runs/examples/resnet" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`resnet: --${name} must be a number >= 0`);
  return v;
};
const epochs = num("epochs");
manualSeed(num("seed"));
mkdirSync(opts.out, { recursive: true });

// ---- the model ----------------------------------------------------------------------------------------------
/** A three-stage ResNet for [N, 1, 28, 28] images. Fields are discovered as submodules, as in PyTorch. */
class SmallResNet extends nn.Module {
  stem: nn.Sequential;
  stages: nn.Sequential;
  pool = new nn.AdaptiveAvgPool2d(1); // [N, C, H, W] -> [N, C, 1, 1]: one number per channel
  fc: nn.Linear;

  constructor(width: number, numClasses: number) {
    super();
    // Convolutions followed by BatchNorm need no bias: BN subtracts the mean anyway and has its own shift.
    this.stem = new nn.Sequential(
      new nn.Conv2d(1, width, 3, { stride: 2, padding: 1, bias: false }),
      new nn.BatchNorm2d(width),
      new nn.ReLU(),
    );
    this.stages = new nn.Sequential(
      new nn.BasicBlock(width, width), // identity shortcut
      new nn.BasicBlock(width, 2 * width, 2), // 1x1 conv shortcut: halves H and W, doubles channels
      new nn.BasicBlock(2 * width, 4 * width, 2),
    );
    this.fc = new nn.Linear(4 * width, numClasses);
  }

  forward(x: Tensor): Tensor {
    const features = this.pool.call(this.stages.call(this.stem.call(x)));
    return this.fc.call(features.flatten(1));
  }
}

// ---- data ---------------------------------------------------------------------------------------------------
const images = files.loadImageDataset(opts.dataset, { maxTrain: num("limit"), maxTest: num("test-limit") });
const { transform } = data.standardize(images.train.images);
const trainLoader = new data.DataLoader(
  new data.TensorDataset(transform(images.train.images), images.train.labels),
  {
    batchSize: num("batch-size"),
    shuffle: true,
    generator: new Generator(num("seed")),
  },
);
const testLoader = new data.DataLoader(
  new data.TensorDataset(transform(images.test.images), images.test.labels),
  {
    batchSize: 250,
  },
);
console.log(
  `${opts.dataset}: ${images.train.images.shape[0]} training and ${images.test.images.shape[0]} test images`,
);

const model = new SmallResNet(num("width"), images.classes.length);
console.log(`${model.toString()}\n${nn.countParameters(model)} parameters`);
const optimizer = new optim.Adam(model.parameters(), { lr: num("lr") });
// One-cycle schedule: warm the learning rate up, then anneal it to almost 0, stepped after every batch. It lets
// a short run use a large peak rate, which suits BatchNorm networks.
const scheduler = new optim.OneCycleLR(optimizer, {
  maxLr: num("lr"),
  totalSteps: Math.max(1, epochs * trainLoader.length),
});

/** Accuracy on a loader in eval mode (BatchNorm uses its running statistics). */
function accuracy(loader: Iterable<Tensor[]>): number {
  model.eval();
  let correct = 0;
  let n = 0;
  noGrad(() => {
    for (const [x, y] of loader) {
      correct += model.call(x).argmax(1).eq(y).sum().item();
      n += y.shape[0];
    }
  });
  model.train();
  return correct / n;
}

// ---- training loop ------------------------------------------------------------------------------------------
const stepLoss: number[] = [];
const stepX: number[] = [];
const testAcc: number[] = [accuracy(testLoader)]; // epoch 0: the untrained network, about 10%
for (let epoch = 1; epoch <= epochs; epoch++) {
  const t0 = performance.now();
  let b = 0;
  for (const [x, y] of trainLoader) {
    const loss = nn.crossEntropy(model.call(x), y);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    scheduler.step();
    stepLoss.push(loss.item());
    stepX.push(epoch - 1 + ++b / trainLoader.length);
    if (b % 25 === 0) console.log(`  step ${b}/${trainLoader.length}: loss ${loss.item().toFixed(4)}`);
  }
  testAcc.push(accuracy(testLoader));
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`epoch ${epoch}/${epochs}: test accuracy ${(100 * testAcc[epoch]).toFixed(2)}% (${secs} s)`);
}

// ---- results ------------------------------------------------------------------------------------------------
writeFileSync(
  join(opts.out, "curves.svg"),
  viz.linePlot({
    title: `Small ResNet on ${opts.dataset}`,
    xLabel: "epoch",
    yLabel: "training loss / test accuracy",
    series: [
      { name: "training loss (per step)", x: stepX, y: stepLoss },
      { name: "test accuracy", x: testAcc.map((_, i) => i), y: testAcc },
    ],
  }),
);
files.saveSafetensors(join(opts.out, "model.safetensors"), model.stateDict(), { example: "resnet" });
console.log(`wrote curves.svg and model.safetensors to ${opts.out}`);
