// Run under mpirun by ddp.test.ts: DistributedDataParallel training for a few steps equals training one
// replica, in this same process, on the whole global batch. Each rank computes that reference alone.
// Three configurations: float64 with one bucket, float32 with tiny buckets (several all-reduces in flight
// during backward), and a model with a parameter forward never uses (findUnusedParameters).
import assert from "node:assert/strict";
import { distributed, type DType, manualSeed, nn, noGrad, optim, randn } from "../../src/node.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

const { rank, worldSize } = distributed.initProcessGroup({ timeoutMs: 120_000 });

function run(dtype: DType, bucketCapMb: number, unused: boolean, bn = false): void {
  class Net extends nn.Module {
    fc1 = new nn.Linear(5, 16, { dtype });
    fc2 = new nn.Linear(16, 8, { dtype });
    fc3 = new nn.Linear(8, 3, { dtype });
    spare = new nn.Linear(3, 3, { dtype }); // used only when !unused
    norm: nn.Module | null = bn ? new nn.BatchNorm1d(16, { dtype }) : null;
    forward(x: Tensor): Tensor {
      const h = this.fc3.call(
        this.fc2.call((bn ? this.norm!.call(this.fc1.call(x)) : this.fc1.call(x)).tanh()).tanh(),
      );
      return unused ? h : this.spare.call(h);
    }
  }

  const GLOBAL = 8;
  const STEPS = 4;
  manualSeed(1);
  const xs = Array.from({ length: STEPS }, () => randn([GLOBAL, 5], { dtype }));
  const ys = Array.from({ length: STEPS }, () => randn([GLOBAL, 3], { dtype }));

  // reference: rank 0's initial model, one process, the whole batch
  manualSeed(0);
  const ref = new Net();
  const refOpt = new optim.SGD(ref.parameters(), { lr: 0.1, momentum: 0.9 });
  for (let s = 0; s < STEPS; s++) {
    refOpt.zeroGrad();
    nn.mseLoss(ref.call(xs[s]), ys[s]).backward();
    refOpt.step();
  }

  // DDP: other ranks start from a different model, which the construction replaces by rank 0's
  manualSeed(rank === 0 ? 0 : 100 + rank);
  // with bn: SyncBatchNorm over the ranks' shares equals BatchNorm over the global batch
  const local = bn ? nn.SyncBatchNorm.convertSyncBatchnorm(new Net()) : new Net();
  if (bn) assert.ok(local.norm instanceof nn.SyncBatchNorm);
  const ddp = new distributed.DistributedDataParallel(local, { bucketCapMb, findUnusedParameters: unused });
  if (bucketCapMb < 0.001) assert.ok(ddp.bucketSizes().length > 2, `several buckets: ${ddp.bucketSizes()}`);
  const opt = new optim.SGD(ddp.parameters(), { lr: 0.1, momentum: 0.9 });
  const per = GLOBAL / worldSize;
  for (let s = 0; s < STEPS; s++) {
    opt.zeroGrad();
    const x = xs[s].narrow(0, rank * per, per);
    const y = ys[s].narrow(0, rank * per, per);
    nn.mseLoss(ddp.call(x), y).backward();
    opt.step();
  }

  const tol = dtype === "float64" ? 1e-12 : 2e-6;
  let worst = 0;
  const refParams = ref.namedParameters();
  ddp.module.namedParameters().forEach(([name, p], i) => {
    const a = p.dataSync();
    const b = refParams[i][1].dataSync();
    assert.equal(refParams[i][0], name);
    for (let k = 0; k < a.length; k++) {
      const d = Math.abs(a[k] - b[k]) / Math.max(1, Math.abs(b[k]));
      worst = Math.max(worst, d);
      assert.ok(d <= tol, `${name}[${k}]: ddp ${a[k]} vs single process ${b[k]} (${dtype}, rank ${rank})`);
    }
  });
  if (bn) {
    const rb = ref.namedBuffers();
    ddp.module.namedBuffers().forEach(([name, b], i) => {
      const a = b.dataSync();
      const r = rb[i][1].dataSync();
      for (let k = 0; k < a.length; k++)
        assert.ok(
          Math.abs(a[k] - r[k]) <= tol * Math.max(1, Math.abs(r[k])),
          `buffer ${name}[${k}]: ${a[k]} vs ${r[k]}`,
        );
    });
  }
  // every replica holds the same parameters
  noGrad(() => {
    for (const p of ddp.parameters()) {
      const mx = p.clone();
      distributed.allReduce(mx, "max");
      assert.deepEqual(Array.from(mx.dataSync()), Array.from(p.dataSync()), "replicas differ");
    }
  });
  console.log(
    `ok ${rank} ${dtype} bucketCapMb=${bucketCapMb} unused=${unused} syncBatchNorm=${bn}: worst relative difference ${worst.toExponential(2)}`,
  );
  ddp.dispose();
}

run("float64", 25, false);
run("float32", 0.00005, false);
run("float64", 25, true);
run("float64", 25, false, true);
