// Run under mpirun by mpi.test.ts: a jitted data-parallel step (makeDistributedTrainStep: forward and backward
// compiled, the gradients averaged over the ranks on the host, the update compiled) gives the parameters of
// eager DistributedDataParallel, and of one process on the global batch, in float64; a changing learning rate
// and loss weight do not retrace; the replicas stay equal.
import assert from "node:assert/strict";
import { distributed, manualSeed, nn, noGrad, optim, randn } from "../../src/node.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

const { rank, worldSize } = distributed.initProcessGroup({ timeoutMs: 120_000 });
const dtype = "float64";

class Net extends nn.Module {
  fc1 = new nn.Linear(5, 16, { dtype });
  fc2 = new nn.Linear(16, 3, { dtype });
  forward(x: Tensor): Tensor {
    return this.fc2.call(this.fc1.call(x).tanh());
  }
}

const GLOBAL = 8;
const STEPS = 5;
const lrAt = (s: number) => 0.1 / (1 + s); // a schedule: the jitted update must not retrace for it
manualSeed(3);
const xs = Array.from({ length: STEPS }, () => randn([GLOBAL, 5], { dtype }));
const ys = Array.from({ length: STEPS }, () => randn([GLOBAL, 3], { dtype }));
const per = GLOBAL / worldSize;
const shard = (t: Tensor) => t.narrow(0, rank * per, per);

// one process on the global batch
manualSeed(0);
const ref = new Net();
const refOpt = new optim.SGD(ref.parameters(), { lr: 0.1, momentum: 0.9 });
for (let s = 0; s < STEPS; s++) {
  refOpt.paramGroups[0].lr = lrAt(s);
  refOpt.zeroGrad();
  nn.mseLoss(ref.call(xs[s]), ys[s]).backward();
  refOpt.step();
}

// eager DDP
manualSeed(rank === 0 ? 0 : 300 + rank);
const ddp = new distributed.DistributedDataParallel(new Net());
const opt = new optim.SGD(ddp.parameters(), { lr: 0.1, momentum: 0.9 });
for (let s = 0; s < STEPS; s++) {
  opt.paramGroups[0].lr = lrAt(s);
  opt.zeroGrad();
  nn.mseLoss(ddp.call(shard(xs[s])), shard(ys[s])).backward();
  opt.step();
}
ddp.dispose();

// jitted DDP step; the other ranks start from another model, which init() replaces by rank 0's
manualSeed(rank === 0 ? 0 : 400 + rank);
const net = new Net();
const step = distributed.makeDistributedTrainStep(
  net,
  (o: Tensor, y: Tensor) => nn.mseLoss(o, y),
  optim.functional.sgd({ lr: 0.1, momentum: 0.9 }),
);
let state = step.init();
for (let s = 0; s < STEPS; s++) {
  [, state] = step(state, shard(xs[s]), shard(ys[s]), { lr: lrAt(s) });
}
nn.loadModuleState(net, state);

let worstDdp = 0;
let worstRef = 0;
const eager = ddp.module.namedParameters();
const single = ref.namedParameters();
net.namedParameters().forEach(([name, p], i) => {
  const a = p.dataSync();
  const b = eager[i][1].dataSync();
  const c = single[i][1].dataSync();
  assert.equal(eager[i][0], name);
  for (let k = 0; k < a.length; k++) {
    const d1 = Math.abs(a[k] - b[k]) / Math.max(1, Math.abs(b[k]));
    const d2 = Math.abs(a[k] - c[k]) / Math.max(1, Math.abs(c[k]));
    assert.ok(d1 <= 1e-12, `${name}[${k}]: jitted DDP ${a[k]} vs eager DDP ${b[k]} (rank ${rank})`);
    assert.ok(d2 <= 1e-12, `${name}[${k}]: jitted DDP ${a[k]} vs one process ${c[k]} (rank ${rank})`);
    worstDdp = Math.max(worstDdp, d1);
    worstRef = Math.max(worstRef, d2);
  }
});
// a weight scales the averaged gradient: weight 0 leaves SGD without momentum history unchanged
const frozen = step.init();
const before = frozen.params["fc1.weight"].dataSync().slice();
const [, after] = step(frozen, shard(xs[0]), shard(ys[0]), { lr: 0.5 }, 0);
assert.deepEqual(Array.from(after.params["fc1.weight"].dataSync()), Array.from(before), "weight 0: no step");
// the learning rate and the weight are arguments of the programs, not constants: one trace of each
assert.deepEqual(step.traceCount, { grad: 1, update: 1 }, "one trace of each program");
// the replicas hold the same parameters
noGrad(() => {
  for (const p of net.parameters()) {
    const mx = p.clone();
    distributed.allReduce(mx, "max");
    assert.deepEqual(Array.from(mx.dataSync()), Array.from(p.dataSync()), "replicas differ");
  }
});
console.log(
  `ok ${rank} jitted DDP step: vs eager DDP ${worstDdp.toExponential(2)}, vs one process ${worstRef.toExponential(2)} relative`,
);
