// Run under mpirun (or alone) by resume.test.ts: DDP training for STEPS steps with a checkpoint after each
// step (rank 0 writes); KILL_AT=k makes the last rank kill itself (SIGKILL) during step k. Started again, it
// resumes from the checkpoint, on any world size, and at the end checks its parameters against one process
// trained on the whole global batch for STEPS steps without interruption.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { data, distributed, manualSeed, nn, optim, randn } from "../../src/node.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

const STEPS = 6;
const GLOBAL = 8;
const ckpt = process.env.CKPT!;
const killAt = Number(process.env.KILL_AT ?? -1);
const { rank, worldSize } = distributed.initProcessGroup({ timeoutMs: 120_000 });

const makeModel = () =>
  new nn.Sequential(
    new nn.Linear(4, 6, { dtype: "float64" }),
    new nn.Tanh(),
    new nn.Linear(6, 2, { dtype: "float64" }),
  );
manualSeed(5);
const X = randn([STEPS * GLOBAL, 4], { dtype: "float64" });
const Y = randn([STEPS * GLOBAL, 2], { dtype: "float64" });
const ds = new data.TensorDataset(X, Y);
// global batch b is examples [b*GLOBAL, (b+1)*GLOBAL); this rank's share by DistributedSampler without shuffling
const batch = (b: number): [Tensor, Tensor] => {
  const sub = new data.Subset(
    ds,
    Array.from({ length: GLOBAL }, (_, i) => b * GLOBAL + i),
  );
  const sampler = new data.DistributedSampler(sub, { numReplicas: worldSize, rank, shuffle: false });
  const idx = [...sampler];
  const rows = idx.map((i) => b * GLOBAL + i);
  return [X.indexSelect(0, tensorIdx(rows)), Y.indexSelect(0, tensorIdx(rows))];
};
function tensorIdx(rows: number[]): Tensor {
  return data.defaultCollate(rows) as Tensor;
}

manualSeed(0);
const model = makeModel();
const ddp = new distributed.DistributedDataParallel(model);
const opt = new optim.SGD(ddp.parameters(), { lr: 0.2, momentum: 0.5 });
let start = 0;
if (existsSync(ckpt)) {
  const c = distributed.loadCheckpoint(ckpt);
  model.loadStateDict(c.model);
  opt.loadStateDict(c.optimizer!);
  start = c.extra!.step as number;
  distributed.log0(`resumed at step ${start} on ${worldSize} process(es)`);
}
for (let s = start; s < STEPS; s++) {
  if (s === killAt && rank === worldSize - 1) process.kill(process.pid, "SIGKILL");
  const [x, y] = batch(s);
  opt.zeroGrad();
  nn.mseLoss(ddp.call(x), y).backward();
  opt.step();
  distributed.saveCheckpoint(ckpt, {
    model: ddp.stateDict(),
    optimizer: opt.stateDict(),
    extra: { step: s + 1 },
  });
}

// the reference: one process, whole global batches, no interruption
manualSeed(0);
const ref = makeModel();
const refOpt = new optim.SGD(ref.parameters(), { lr: 0.2, momentum: 0.5 });
for (let s = 0; s < STEPS; s++) {
  refOpt.zeroGrad();
  nn.mseLoss(ref.call(X.narrow(0, s * GLOBAL, GLOBAL)), Y.narrow(0, s * GLOBAL, GLOBAL)).backward();
  refOpt.step();
}
const got = model.parameters();
ref.parameters().forEach((p, i) => {
  const a = got[i].dataSync();
  const b = p.dataSync();
  for (let k = 0; k < a.length; k++)
    assert.ok(Math.abs(a[k] - b[k]) <= 1e-12, `param ${i}[${k}]: ${a[k]} vs ${b[k]}`);
});
distributed.log0(`ok: resumed training matches ${STEPS} uninterrupted steps`);
