/**
 * Example: "unit visualization via backprop" from the lectures: what does a trained network look at?
 *
 * Backpropagation gives the derivative of anything with respect to anything, not only of the loss with
 * respect to the weights. Here we differentiate a class score (a logit, one output unit x_j^(L)) with respect
 * to the *input image* x^(0):
 *
 *   saliency_j(x) = d x_j^(L) / d x^(0)     (a 28x28 map: how each pixel would change the score of class j)
 *
 * Red pixels raise the score when brightened, blue ones lower it. For this MLP the map depends on the image
 * only through which hidden ReLUs are on, so the maps of one class look alike from image to image: they are
 * the class "templates" the network has learned (blue in the middle of a 0: ink there speaks against a 0). Then "activation maximisation": start from
 * a blank image and climb that gradient, x <- clamp(x + eta * d(x_j - lambda ||x||^2)/dx, 0, 1), to draw the
 * image the network finds most typical of class j (the L2 penalty and the clamp to valid pixel values are the
 * regulariser R(x) of the lectures; without them the ascent makes high-contrast noise).
 *
 * The model is the MLP of examples/mnist-mlp.ts, trained here for a few epochs, or loaded with
 * --load runs/examples/mnist-mlp/model.safetensors. Outputs (in --out, default runs/examples/unit-visualization/):
 *   saliency.png   top row: the mean training image of each class 0..9 (column labels); then one row per test
 *                  image: the image itself (grey, left) and d score_j / d image for j = 0..9
 *   attribution.png the same with gradient x input: which strokes of *this* image speak for or against class j
 *   maximize.png   one image per class 0..9 found by gradient ascent on the class score
 *
 * Run:  npx tsx examples/unit-visualization.ts [--epochs 3] [--limit 8000] [--images 4] [--ascent-steps 200]
 *                                              [--load model.safetensors] [--scale 4] [--out dir]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  data,
  files,
  Generator,
  grad,
  manualSeed,
  nn,
  noGrad,
  optim,
  type Tensor,
  valueAndGrad,
  viz,
  zeros,
} from "../src/node.ts";

// ---- options ------------------------------------------------------------------------------------------------
const { values: opts } = parseArgs({
  options: {
    epochs: { type: "string", default: "3" },
    limit: { type: "string", default: "8000" },
    images: { type: "string", default: "4" }, // test images in the saliency grid
    "ascent-steps": { type: "string", default: "200" }, // 0 skips activation maximisation
    lambda: { type: "string", default: "0.05" }, // weight of the L2 penalty in activation maximisation
    load: { type: "string" }, // weights saved by mnist-mlp.ts (skips training)
    scale: { type: "string", default: "4" }, // each pixel becomes scale x scale screen pixels
    seed: { type: "string", default: "0" },
    out: { type: "string", default: "runs/examples/unit-visualization" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v < 0)
    throw new RangeError(`unit-visualization: --${name} must be a number >= 0`);
  return v;
};
manualSeed(num("seed"));
mkdirSync(opts.out, { recursive: true });
const SIDE = 28; // images are 28 x 28
const scale = Math.max(1, Math.round(num("scale")));

// ---- a trained model ----------------------------------------------------------------------------------------
const { train, test } = files.loadImageDataset("digits", { maxTrain: Math.max(1, num("limit")) });
const model = new nn.Sequential(
  new nn.Flatten(),
  new nn.Linear(784, 128),
  new nn.ReLU(),
  new nn.Linear(128, 10),
);
if (opts.load !== undefined) {
  model.loadStateDict(files.loadSafetensors(opts.load).tensors);
  console.log(`loaded weights from ${opts.load}`);
} else {
  // The usual training loop (see examples/mnist-mlp.ts for the commented version).
  // A pixel that is black in every training image never gets a gradient, so its first-layer weights would keep
  // their random initial values and speckle the maps; a small L2 penalty (weightDecay) pulls them to 0.
  const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3, weightDecay: 1e-3 });
  const loader = new data.DataLoader(new data.TensorDataset(train.images, train.labels), {
    batchSize: 64,
    shuffle: true,
    generator: new Generator(num("seed")),
  });
  for (let epoch = 1; epoch <= num("epochs"); epoch++) {
    for (const [x, y] of loader) {
      const loss = nn.crossEntropy(model.call(x), y);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
    }
    console.log(`trained epoch ${epoch} on ${train.images.shape[0]} images`);
  }
}
model.eval();
const testAcc = noGrad(() => model.call(test.images).argmax(1).eq(test.labels).to("float32").mean().item());
console.log(`test accuracy ${(100 * testAcc).toFixed(1)}%`);

// ---- saliency maps ------------------------------------------------------------------------------------------
/** The score (logit) of class j for one image [1, 1, 28, 28]: a scalar function of the pixels. */
const classScore = (j: number) => (image: Tensor) => model.call(image).index(0, j);

/** d score_j / d image for j = 0..9, each a Float32Array of 784 values. */
function saliencyMaps(image: Tensor): Float32Array[] {
  return Array.from(
    { length: 10 },
    (_, j) => (grad(classScore(j))(image) as Tensor).dataSync() as Float32Array,
  );
}

// Pick test images of different classes (the first test image of class 0, of class 1, ...).
const labels = test.labels.dataSync();
const picks: number[] = [];
for (let c = 0; c < 10 && picks.length < num("images"); c++) {
  const i = labels.indexOf(c);
  if (i >= 0) picks.push(i);
}

// Column labels: the mean training image of each class, so the reader sees which class each column is.
const trainLabels = train.labels.dataSync();
const classMeans = Array.from({ length: 10 }, (_, c) => {
  const mask = train.labels.eq(c).to("float32").reshape([-1, 1, 1, 1]); // [N, 1, 1, 1]
  const count = Math.max(1, trainLabels.filter((l) => l === c).length);
  return train.images.mul(mask).sum(0).div(count).dataSync() as Float32Array;
});

/** One tile: a w x h RGB image. */
interface Tile {
  rgb: Uint8Array;
}
const blank: Tile = { rgb: new Uint8Array(SIDE * SIDE * 3).fill(255) };
const grey = (v: Float32Array): Tile => ({
  rgb: viz.heatmapToRgb(v, SIDE, SIDE, { colormap: "grey", min: 0, max: 1 }),
});
// Diverging map centred on 0 (white), scaled by the map's own largest |value|: red = raises the score.
const diverging = (v: Float32Array): Tile => ({ rgb: viz.heatmapToRgb(v, SIDE, SIDE, { diverging: true }) });

const header = [blank, ...classMeans.map(grey)];
const gradRows: Tile[][] = [header];
const attributionRows: Tile[][] = [header];
for (const i of picks) {
  const image = test.images.index([i, i + 1]); // [1, 1, 28, 28]
  const pixels = image.dataSync() as Float32Array;
  const maps = saliencyMaps(image);
  const pred = noGrad(() => model.call(image).argmax(1).item());
  console.log(`test image ${i}: label ${labels[i]}, predicted ${pred}`);
  gradRows.push([grey(pixels), ...maps.map(diverging)]);
  // gradient x input: the first-order share of each pixel that is actually lit in this image (zero on black
  // pixels), i.e. which strokes of this particular digit speak for (red) or against (blue) class j.
  attributionRows.push([grey(pixels), ...maps.map((m) => diverging(m.map((g, k) => g * pixels[k])))]);
}
writeFileSync(join(opts.out, "saliency.png"), gridPng(gradRows, 3));
writeFileSync(join(opts.out, "attribution.png"), gridPng(attributionRows, 3));

// ---- activation maximisation --------------------------------------------------------------------------------
const steps = Math.round(num("ascent-steps"));
if (steps > 0) {
  const lambda = num("lambda"); // weight of the L2 penalty lambda ||x||^2
  const eta = 0.1; // step size
  const images: Tile[] = [];
  for (let j = 0; j < 10; j++) {
    const objective = (x: Tensor) => classScore(j)(x).sub(x.square().sum().mul(lambda));
    let x = zeros([1, 1, SIDE, SIDE]).add(0.1); // a dim uniform grey start
    let value = 0;
    for (let s = 0; s < steps; s++) {
      const [v, g] = valueAndGrad(objective)(x) as [Tensor, Tensor];
      value = v.item();
      x = x.add(g.mul(eta)).clamp(0, 1); // ascent step, then project back to valid pixel values
    }
    const probs = noGrad(() => model.call(x).softmax(1).dataSync());
    console.log(
      `class ${j}: objective ${value.toFixed(2)} after ${steps} steps, softmax probability of class ${j}: ${probs[j].toFixed(3)}`,
    );
    images.push(grey(x.dataSync() as Float32Array));
  }
  writeFileSync(join(opts.out, "maximize.png"), gridPng([classMeans.map(grey), images], 3));
}
console.log(`wrote saliency.png, attribution.png${steps > 0 ? " and maximize.png" : ""} to ${opts.out}`);

/**
 * Lay out rows of 28x28 RGB tiles on a white background with `pad` pixels between them (before upscaling), and
 * encode the result, enlarged `scale` times, as a PNG.
 */
function gridPng(grid: Tile[][], pad: number): Uint8Array {
  const cols = Math.max(...grid.map((r) => r.length));
  const width = cols * SIDE + (cols + 1) * pad;
  const height = grid.length * SIDE + (grid.length + 1) * pad;
  const rgb = new Uint8Array(width * height * 3).fill(255);
  grid.forEach((row, r) => {
    row.forEach((tile, c) => {
      const x0 = pad + c * (SIDE + pad);
      const y0 = pad + r * (SIDE + pad);
      for (let y = 0; y < SIDE; y++) {
        rgb.set(tile.rgb.subarray(y * SIDE * 3, (y + 1) * SIDE * 3), ((y0 + y) * width + x0) * 3);
      }
    });
  });
  return viz.encodePng(width * scale, height * scale, viz.upscale(rgb, width, height, 3, scale), 3);
}
