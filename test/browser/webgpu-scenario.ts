/**
 * The training scenario of the webgpu test, shared by the page (run on webgpu in Chromium) and the Node side
 * (run on the js reference): a 16-32-4 MLP with cross-entropy on 64 fixed random examples, a few plain SGD
 * steps and then a few Adam steps, reading every loss with `await loss.data()` (the only read that works on
 * a device backend). Browser-safe: imports only the library's browser entry.
 */
import * as cr from "../../src/index.ts";

export interface MlpResult {
  losses: number[];
  logits: number[];
  /** The first layer's weight gradient after the first backward pass (first 16 values). */
  grad0: number[];
}

export async function mlpStepsAsync(sgdSteps: number, adamSteps: number): Promise<MlpResult> {
  cr.manualSeed(7);
  const g = new cr.Generator(11);
  const x = cr.tensor(Array.from({ length: 64 * 16 }, () => g.normal())).reshape([64, 16]);
  const y = cr.tensor(
    Array.from({ length: 64 }, (_, i) => i % 4),
    { dtype: "int32" },
  );
  const model = new cr.nn.Sequential(new cr.nn.Linear(16, 32), new cr.nn.ReLU(), new cr.nn.Linear(32, 4));
  const losses: number[] = [];
  let grad0: number[] = [];
  const run = async (opt: { zeroGrad(): void; step(): void }, steps: number) => {
    for (let s = 0; s < steps; s++) {
      opt.zeroGrad();
      const loss = cr.nn.crossEntropy(model.call(x), y);
      losses.push((await loss.data())[0]);
      loss.backward();
      if (grad0.length === 0) {
        const w = model.parameters()[0].grad!;
        grad0 = Array.from((await w.data()).subarray(0, 16), Number);
      }
      opt.step();
    }
  };
  await run(new cr.optim.SGD(model.parameters(), { lr: 0.1 }), sgdSteps);
  await run(new cr.optim.Adam(model.parameters(), { lr: 0.01 }), adamSteps);
  const logits = cr.noGrad(() => model.call(x.narrow(0, 0, 2)));
  return { losses, logits: Array.from(await logits.data(), Number), grad0 };
}

/**
 * A small CNN (conv 3x3 with padding and the fused ReLU, max-pool 2, conv, avg-pool, linear) on 8 random
 * 1x8x8 images: the losses of `steps` SGD steps with momentum, read asynchronously.
 */
export async function cnnStepsAsync(steps: number): Promise<number[]> {
  cr.manualSeed(3);
  const g = new cr.Generator(5);
  const x = cr.tensor(Array.from({ length: 8 * 64 }, () => g.normal())).reshape([8, 1, 8, 8]);
  const y = cr.tensor(
    Array.from({ length: 8 }, (_, i) => i % 3),
    { dtype: "int32" },
  );
  const model = new cr.nn.Sequential(
    new cr.nn.Conv2d(1, 4, 3, { padding: 1 }),
    new cr.nn.ReLU(),
    new cr.nn.MaxPool2d(2),
    new cr.nn.Conv2d(4, 6, 3, { padding: 1 }),
    new cr.nn.AvgPool2d(2),
    new cr.nn.Flatten(),
    new cr.nn.Linear(24, 3),
  );
  const opt = new cr.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const loss = cr.nn.crossEntropy(model.call(x), y);
    losses.push((await loss.data())[0]);
    loss.backward();
    opt.step();
  }
  return losses;
}
