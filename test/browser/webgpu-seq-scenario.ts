/**
 * Sequence-model training scenarios of the webgpu ops test, shared by the page (webgpu in Chromium) and the
 * Node side (the js reference): a one-layer LSTM classifier and a TransformerEncoderLayer classifier (dropout
 * 0, so both backends draw nothing at random after initialisation), a few Adam steps each, every loss read
 * with `await loss.data()`. Browser-safe: imports only the library's browser entry.
 */
import * as cr from "../../src/index.ts";

/** Fixed random sequences [4, 6, 8] and their labels (4 examples, 3 classes). */
function sequences(seed: number): { x: cr.Tensor; y: cr.Tensor } {
  const g = new cr.Generator(seed);
  const x = cr.tensor(Array.from({ length: 4 * 6 * 8 }, () => g.normal())).reshape([4, 6, 8]);
  const y = cr.tensor([0, 2, 1, 2], { dtype: "int32" });
  return { x, y };
}

async function train(
  params: cr.Tensor[],
  loss: () => cr.Tensor,
  steps: number,
): Promise<{ losses: number[]; grad0: number[] }> {
  const opt = new cr.optim.Adam(params, { lr: 0.02 });
  const losses: number[] = [];
  let grad0: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const l = loss();
    losses.push((await l.data())[0]);
    l.backward();
    if (s === 0) grad0 = Array.from((await params[0].grad!.data()).subarray(0, 16), Number);
    opt.step();
  }
  return { losses, grad0 };
}

/** LSTM(8 -> 12, batch first) over 6 steps, the last hidden state through Linear(12, 3), cross-entropy. */
export async function lstmStepsAsync(steps: number): Promise<{ losses: number[]; grad0: number[] }> {
  cr.manualSeed(21);
  const { x, y } = sequences(22);
  const lstm = new cr.nn.LSTM(8, 12, { batchFirst: true });
  const head = new cr.nn.Linear(12, 3);
  return train(
    [...lstm.parameters(), ...head.parameters()],
    () => {
      const [out] = lstm.call(x);
      return cr.nn.crossEntropy(head.call(out.narrow(1, 5, 1).reshape([4, 12])), y);
    },
    steps,
  );
}

/** TransformerEncoderLayer(8, 2 heads, feed-forward 16, dropout 0, batch first), mean over the sequence, Linear(8, 3). */
export async function transformerStepsAsync(steps: number): Promise<{ losses: number[]; grad0: number[] }> {
  cr.manualSeed(23);
  const { x, y } = sequences(24);
  const layer = new cr.nn.TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0, batchFirst: true });
  const head = new cr.nn.Linear(8, 3);
  return train(
    [...layer.parameters(), ...head.parameters()],
    () => cr.nn.crossEntropy(head.call(layer.call(x).mean(1)), y),
    steps,
  );
}
