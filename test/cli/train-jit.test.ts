/**
 * `chainrule train --jit`: each step is one jitted program over the model's parameters, buffers and optimizer
 * state. The run must match the eager run (same batches, same Dropout masks, same schedule) within float32
 * rounding: the loss is the same cross-entropy (through one-hot targets) and the update the same rule, so
 * per-epoch losses agree to ~1e-6 and accuracies exactly on these small runs. Interrupting and resuming a jit
 * run reproduces the uninterrupted one (the state is written back into the checkpoint), BatchNorm's running
 * statistics come out of the program into the saved model, and `train --help` lists the flag.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runTrain, type TrainResult } from "../../src/cli/train.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { run, tempDirs } from "./helpers.ts";

const tmp = tempDirs("cli-jit");
const silent = { log: () => {}, tty: false };
// the reference backend, as the other in-process CLI tests; dropout so the masks must match too
const base = { limit: 400, epochs: 2, seed: 0, dropout: 0.1, quiet: true, backend: "js" } as const;

function maxRelDiff(a: Record<string, Tensor>, b: Record<string, Tensor>): number {
  let worst = 0;
  for (const k of Object.keys(b)) {
    const x = a[k].dataSync();
    const y = b[k].dataSync();
    for (let i = 0; i < y.length; i++)
      worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(1, Math.abs(y[i])));
  }
  return worst;
}

function assertSameRun(j: TrainResult, e: TrainResult, lossTol: number, weightTol: number): void {
  assert.equal(j.metrics.epochs.length, e.metrics.epochs.length);
  j.metrics.epochs.forEach((m, i) => {
    const r = e.metrics.epochs[i];
    assert.ok(
      Math.abs(m.trainLoss - r.trainLoss) <= lossTol * Math.abs(r.trainLoss),
      `epoch ${i + 1} train loss: jit ${m.trainLoss}, eager ${r.trainLoss}`,
    );
    assert.equal(m.trainAcc, r.trainAcc, `epoch ${i + 1} train accuracy`);
    assert.equal(m.valAcc, r.valAcc, `epoch ${i + 1} validation accuracy`);
    assert.equal(m.lr, r.lr, `epoch ${i + 1} learning rate`);
  });
  assert.equal(j.metrics.test?.correct, e.metrics.test?.correct, "test accuracy");
  const sd = j.net.stateDict();
  const ref = e.net.stateDict();
  assert.deepEqual(Object.keys(sd), Object.keys(ref));
  const d = maxRelDiff(sd, ref);
  assert.ok(d <= weightTol, `weights: max relative difference ${d}`);
}

test("--jit trains the mlp as the eager path does (Adam, one-cycle, dropout)", async () => {
  const e = await runTrain({ ...base, out: tmp("eager") }, silent);
  const j = await runTrain({ ...base, jit: true, out: tmp("jit") }, silent);
  assert.equal(j.metrics.config.jit, true);
  assert.equal(e.metrics.config.jit, false);
  assertSameRun(j, e, 1e-5, 1e-4);
});

test("--jit with SGD momentum + cosine, and with BatchNorm (resnet): running statistics are saved", async () => {
  const sgd = { ...base, optimizer: "momentum", schedule: "cosine", weightDecay: 1e-3 } as const;
  assertSameRun(
    await runTrain({ ...sgd, jit: true, out: tmp("sgd-jit") }, silent),
    await runTrain({ ...sgd, out: tmp("sgd-eager") }, silent),
    1e-5,
    1e-4,
  );
  // convolutions on the js backend take minutes: the resnet runs on native (the default backend of Node)
  const rn = {
    ...base,
    model: "resnet",
    limit: 60,
    epochs: 1,
    batchSize: 16,
    dropout: 0,
    backend: "native",
  } as const;
  const j = await runTrain({ ...rn, jit: true, out: tmp("rn-jit") }, silent);
  const e = await runTrain({ ...rn, out: tmp("rn-eager") }, silent);
  assertSameRun(j, e, 1e-5, 1e-4);
  const tracked = j.net.stateDict()["2.numBatchesTracked"];
  assert.equal(tracked.item(), Math.ceil(54 / 16), "BatchNorm counted every step");
});

test("an interrupted --jit run resumes to the same result", async () => {
  const full = await runTrain({ ...base, jit: true, out: tmp("full") }, silent);
  const dir = tmp("resumed");
  const ctl = new AbortController();
  const first = await runTrain(
    { ...base, jit: true, out: dir },
    { ...silent, signal: ctl.signal, onStep: (s) => (s === 11 ? ctl.abort() : undefined) },
  );
  assert.equal(first.status, "interrupted");
  const rest = await runTrain({ epochs: base.epochs, jit: true }, { ...silent, resume: dir });
  assert.equal(rest.status, "completed");
  assertSameRun(rest, full, 1e-6, 1e-6);
});

test("train --help lists --jit", async () => {
  const r = await run(["train", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /--jit\s+run each training step as one compiled program/);
});
