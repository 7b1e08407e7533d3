// Run under mpirun by ddp.test.ts: DistributedDataParallel training for a few steps equals training one
// replica, in this same process, on the whole global batch. Each rank computes that reference alone.
// Four configurations: float64 with one bucket, float32 with tiny buckets (several all-reduces in flight
// during backward), a model with a parameter forward never uses (findUnusedParameters), and SyncBatchNorm.
// Then `deterministic: true`, bit for bit against one process that computes each rank's share of the gradient
// and sums the shares in the documented order, (g0 + g1) + (g2 + g3), divided by the world size; and the
// distance in ulps between DDP and one backward over the whole global batch, which is not zero (the docs say why).
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
  // overlap: when the first layer's weight gradient (one of the last of backward) is accumulated, this hook runs
  // before DDP's own hook for it (hooks run in registration order); the later layers' buckets are then in flight
  const inFlight: number[] = [];
  local.fc1.weight.registerPostAccumulateGradHook(() => inFlight.push(ddp.bucketsInFlight()));
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
  assert.equal(inFlight.length, STEPS);
  if (bucketCapMb < 0.001) {
    // tiny buckets: at least fc3's and fc2's all-reduces were started while backward had fc1 still to do
    const lastLayers = ddp.bucketSizes().length - 2;
    for (const k of inFlight) assert.ok(k >= lastLayers, `buckets in flight during backward: ${inFlight}`);
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

/** Distance in units in the last place between two doubles of the same sign (0 when equal). */
function ulps(a: number, b: number): number {
  const v = new DataView(new ArrayBuffer(16));
  v.setFloat64(0, a);
  v.setFloat64(8, b);
  const ia = v.getBigInt64(0);
  const ib = v.getBigInt64(8);
  const key = (i: bigint) => (i < 0n ? -(i & 0x7fffffffffffffffn) : i); // monotone in the value
  const d = key(ia) - key(ib);
  return Number(d < 0n ? -d : d);
}

const bitwiseModel = (dtype: DType) =>
  class extends nn.Module {
    fc1 = new nn.Linear(5, 16, { dtype });
    fc2 = new nn.Linear(16, 3, { dtype });
    forward(x: Tensor): Tensor {
      return this.fc2.call(this.fc1.call(x).tanh());
    }
  };

function runBitwise(dtype: DType, bucketCapMb: number): void {
  const Net = bitwiseModel(dtype);
  const GLOBAL = 16;
  const STEPS = 5;
  manualSeed(2);
  const xs = Array.from({ length: STEPS }, () => randn([GLOBAL, 5], { dtype }));
  const ys = Array.from({ length: STEPS }, () => randn([GLOBAL, 3], { dtype }));
  const per = GLOBAL / worldSize;
  const shard = (t: Tensor, r: number) => t.narrow(0, r * per, per);

  // reference 1, in this process: each share's gradient (its own mean loss), summed pairwise in rank order,
  // divided by the world size -- written here with plain tensor ops, independently of DDP's code
  manualSeed(0);
  const tree = new Net();
  const treeOpt = new optim.SGD(tree.parameters(), { lr: 0.1, momentum: 0.9 });
  // reference 2: one backward over the whole global batch (what a one-process script does)
  manualSeed(0);
  const plain = new Net();
  const plainOpt = new optim.SGD(plain.parameters(), { lr: 0.1, momentum: 0.9 });
  for (let s = 0; s < STEPS; s++) {
    const shares: Tensor[][] = [];
    for (let r = 0; r < worldSize; r++) {
      treeOpt.zeroGrad();
      nn.mseLoss(tree.call(shard(xs[s], r)), shard(ys[s], r)).backward();
      shares.push(tree.parameters().map((p) => p.grad!.clone()));
    }
    noGrad(() => {
      tree.parameters().forEach((p, i) => {
        let level = shares.map((g) => g[i]);
        while (level.length > 1) {
          const next: Tensor[] = [];
          for (let k = 0; k + 1 < level.length; k += 2) next.push(level[k].add(level[k + 1]));
          if (level.length % 2 === 1) next.push(level[level.length - 1]);
          level = next;
        }
        p.grad = level[0].div(worldSize);
      });
    });
    treeOpt.step();
    plainOpt.zeroGrad();
    nn.mseLoss(plain.call(xs[s]), ys[s]).backward();
    plainOpt.step();
  }

  const train = (deterministic: boolean): Tensor[] => {
    manualSeed(rank === 0 ? 0 : 200 + rank);
    const ddp = new distributed.DistributedDataParallel(new Net(), { bucketCapMb, deterministic });
    const opt = new optim.SGD(ddp.parameters(), { lr: 0.1, momentum: 0.9 });
    for (let s = 0; s < STEPS; s++) {
      opt.zeroGrad();
      nn.mseLoss(ddp.call(shard(xs[s], rank)), shard(ys[s], rank)).backward();
      opt.step();
    }
    ddp.dispose();
    return ddp.module.parameters();
  };
  const det = train(true);
  const dflt = train(false);
  const want = tree.parameters();
  det.forEach((p, i) => {
    // bit for bit: the same doubles (or floats), element by element
    assert.deepEqual(
      Array.from(p.dataSync()),
      Array.from(want[i].dataSync()),
      `deterministic DDP differs from the tree-ordered reference (${dtype}, parameter ${i}, rank ${rank})`,
    );
  });
  // against one backward over the whole batch: close, not bitwise (the batch is summed in another order)
  let worstUlps = 0;
  let worstRel = 0;
  const other = plain.parameters();
  for (const [label, ps] of [
    ["deterministic", det],
    ["default", dflt],
  ] as const) {
    ps.forEach((p, i) => {
      const a = p.dataSync();
      const b = other[i].dataSync();
      for (let k = 0; k < a.length; k++) {
        const rel = Math.abs(a[k] - b[k]) / Math.max(1, Math.abs(b[k]));
        assert.ok(rel <= (dtype === "float64" ? 1e-12 : 2e-6), `${label} ${a[k]} vs ${b[k]}`);
        worstRel = Math.max(worstRel, rel);
        if (dtype === "float64") worstUlps = Math.max(worstUlps, ulps(a[k], b[k]));
      }
    });
  }
  console.log(
    `ok ${rank} ${dtype} deterministic bucketCapMb=${bucketCapMb}: bit for bit equal to the tree-ordered ` +
      `reference; against one backward over the global batch: ${worstRel.toExponential(2)} relative to max(1, |x|)` +
      (dtype === "float64" ? `, worst ${worstUlps} ulps of the element` : ""),
  );
}

run("float64", 25, false);
run("float32", 0.00005, false);
run("float64", 25, true);
run("float64", 25, false, true);
runBitwise("float64", 25);
runBitwise("float64", 0.0001);
runBitwise("float32", 0.0001);
