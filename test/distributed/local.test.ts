// A world of one process, started without mpirun: no MPI needed. Also DistributedSampler and SyncBatchNorm,
// which do not need a launcher to be checked.
import assert from "node:assert/strict";
import { test } from "node:test";
import { treeMean } from "../../src/distributed/ddp.ts";
import { data, distributed, manualSeed, nn, optim, randn, tensor, zeros } from "../../src/node.ts";

test("without a launcher the process group is one process and needs no MPI", () => {
  const saved = { ...process.env };
  for (const k of ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMIX_RANK"]) delete process.env[k];
  try {
    assert.throws(
      () => distributed.getRank(),
      /not initialised; call distributed.initProcessGroup\(\) first/,
    );
    assert.throws(
      () => distributed.initProcessGroup({ worldSize: 2 }),
      /a world of 2 processes was requested, but this process was not started by an MPI launcher.*apt-get install openmpi-bin libopenmpi-dev/,
    );
    const info = distributed.initProcessGroup({ backend: "mpi" });
    assert.deepEqual(
      { rank: info.rank, worldSize: info.worldSize, backend: info.backend },
      { rank: 0, worldSize: 1, backend: "local" },
    );
    assert.equal(distributed.getWorldSize(), 1);
    assert.throws(() => distributed.initProcessGroup(), /already initialised/);
    // collectives over one process: the identity (mean of one value is the value), gathers copy
    const t = tensor([1.5, -2, 3]);
    for (const op of ["sum", "mean", "max", "min"] as const) {
      assert.equal(distributed.allReduce(t, op), t);
      assert.deepEqual(t.toArray(), [1.5, -2, 3]);
    }
    assert.throws(
      () => distributed.allReduce(tensor([1], { dtype: "int32" }), "mean"),
      /'mean' needs a floating-point/,
    );
    distributed.allReduce(t, "sum", { async: true }).wait();
    const out = zeros([3]);
    distributed.allGather([out], t);
    assert.deepEqual(out.toArray(), [1.5, -2, 3]);
    const rs = zeros([3]);
    distributed.reduceScatter(rs, t.mul(2));
    assert.deepEqual(rs.toArray(), [3, -4, 6]);
    distributed.broadcast(t, 0);
    assert.throws(() => distributed.broadcast(t, 1), /src must be a rank in \[0, 0\]/);
    assert.throws(() => distributed.send(t, 0), /is this rank/);
    distributed.barrier();
    assert.equal(distributed.isMainProcess(), true);

    // DDP over one process trains exactly as the bare model
    manualSeed(3);
    const x = randn([6, 4], { dtype: "float64" });
    const y = randn([6, 1], { dtype: "float64" });
    const train = (wrap: boolean) => {
      manualSeed(0);
      const m = new nn.Linear(4, 1, { dtype: "float64" });
      const model = wrap ? new distributed.DistributedDataParallel(m) : m;
      const opt = new optim.SGD(model.parameters(), { lr: 0.1 });
      for (let s = 0; s < 3; s++) {
        opt.zeroGrad();
        nn.mseLoss(model.call(x), y).backward();
        opt.step();
      }
      return m.weight.toArray();
    };
    assert.deepEqual(train(true), train(false));
    distributed.destroyProcessGroup();
    assert.equal(distributed.isInitialized(), false);
  } finally {
    Object.assign(process.env, saved);
  }
});

test("DistributedSampler splits, pads and drops as PyTorch's", () => {
  const ds = { length: 10 };
  const shares = (opts: { dropLast?: boolean }) =>
    [0, 1, 2].map((rank) => [
      ...new data.DistributedSampler(ds, { numReplicas: 3, rank, shuffle: false, ...opts }),
    ]);
  // padded to 12 by repeating the first two indices; rank r takes r, r+3, ...
  assert.deepEqual(shares({}), [
    [0, 3, 6, 9],
    [1, 4, 7, 0],
    [2, 5, 8, 1],
  ]);
  // dropLast: 9 indices, the tail dropped
  assert.deepEqual(shares({ dropLast: true }), [
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
  ]);
  assert.equal(
    new data.DistributedSampler({ length: 2 }, { numReplicas: 5, rank: 4, shuffle: false }).length,
    1,
  );
  assert.deepEqual(
    [...new data.DistributedSampler({ length: 2 }, { numReplicas: 5, rank: 4, shuffle: false })],
    [0],
  );
  // shuffled: every rank draws the same permutation, so the shares partition the dataset; setEpoch reorders
  const epoch = (e: number) =>
    [0, 1].map((rank) => {
      const s = new data.DistributedSampler({ length: 8 }, { numReplicas: 2, rank, seed: 7 });
      s.setEpoch(e);
      return [...s];
    });
  const e0 = epoch(0);
  assert.deepEqual(
    [...e0[0], ...e0[1]].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.deepEqual(epoch(0), e0, "same seed and epoch, same order");
  assert.notDeepEqual(epoch(1), e0, "another epoch, another order");
  assert.throws(
    () => new data.DistributedSampler(ds, { numReplicas: 2, rank: 2 }),
    /rank must be an integer in \[0, 1\]/,
  );
  // in a DataLoader: this rank's share, in batches
  const td = new data.TensorDataset(tensor([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]));
  const sampler = new data.DistributedSampler(td, { numReplicas: 3, rank: 1, shuffle: false });
  const loader = new data.DataLoader(td, { batchSize: 3, sampler });
  assert.equal(loader.length, 2);
  assert.deepEqual(
    [...loader].map(([b]) => (b as ReturnType<typeof tensor>).toArray()),
    [[11, 14, 17], [10]],
  );
  assert.throws(
    () => new data.DataLoader(td, { sampler, shuffle: true }),
    /sampler and shuffle exclude each other/,
  );
});

test("SyncBatchNorm without a process group is BatchNorm; convertSyncBatchnorm keeps the tensors", () => {
  manualSeed(0);
  const net = new nn.Sequential(
    new nn.Linear(3, 4, { dtype: "float64" }),
    new nn.BatchNorm1d(4, { dtype: "float64" }),
  );
  manualSeed(0);
  const ref = new nn.Sequential(
    new nn.Linear(3, 4, { dtype: "float64" }),
    new nn.BatchNorm1d(4, { dtype: "float64" }),
  );
  const bnWeight = net.parameters()[2];
  const conv = nn.SyncBatchNorm.convertSyncBatchnorm(net);
  assert.equal(conv, net);
  assert.ok([...net.modules()].some((m) => m instanceof nn.SyncBatchNorm));
  assert.equal(net.parameters()[2], bnWeight, "the same parameter tensor");
  assert.deepEqual(Object.keys(net.stateDict()), Object.keys(ref.stateDict()));
  const x = randn([5, 3], { dtype: "float64" });
  const a = net.call(x);
  const b = ref.call(x);
  a.sum().backward();
  b.sum().backward();
  const close = (u: ArrayLike<number>, v: ArrayLike<number>) => {
    for (let i = 0; i < u.length; i++) assert.ok(Math.abs(u[i] - v[i]) < 1e-12, `${u[i]} vs ${v[i]}`);
  };
  close(a.dataSync(), b.dataSync());
  const rp = ref.parameters();
  const rb = ref.buffers();
  for (const [i, p] of net.parameters().entries()) close(p.grad!.dataSync(), rp[i].grad!.dataSync());
  for (const [i, t] of net.buffers().entries()) close(t.dataSync(), rb[i].dataSync());
});

test("the deterministic order: ranks' gradients summed pairwise in rank order, level by level, then / worldSize", () => {
  // 2^53 < 1e16: neighbouring doubles there are 2 apart, so 1e16 + 1 rounds (to even) back to 1e16 and the
  // order of the additions shows in the result
  const big = 1e16;
  const mean = (vals: number[]) => {
    const out = new Float64Array(1);
    treeMean(Float64Array.from(vals), out, vals.length);
    return out[0];
  };
  // 4 ranks: ((g0 + g1) + (g2 + g3)) / 4 = (1e16 + -1e16) / 4 = 0; a left-to-right sum would give 1 / 4
  assert.equal(mean([big, 1, -big, 1]), 0);
  // 3 ranks: (g0 + g1) + g2; 5 ranks: ((g0 + g1) + (g2 + g3)) + g4
  assert.equal(mean([1, big, -big]), 0); // (1 + 1e16) - 1e16 = 0, where 1 + (1e16 - 1e16) would give 1 / 3
  assert.equal(mean([1, 1, big, -big, 3]), (2 + 0 + 3) / 5);
  // 2 ranks: one addition; 1 rank: the value
  assert.equal(mean([0.1, 0.2]), (0.1 + 0.2) / 2);
  assert.equal(mean([0.7]), 0.7);
  // several elements, float32: block r of `gathered` is rank r's; each sum rounded to float32
  const out = new Float32Array(2);
  treeMean(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), out, 4);
  assert.deepEqual(Array.from(out), [(1 + 3 + 5 + 7) / 4, (2 + 4 + 6 + 8) / 4]);
  const f = Math.fround;
  const t32 = new Float32Array(1);
  treeMean(Float32Array.from([f(1e8), 3, f(-1e8), 3]), t32, 4);
  // float32 spacing at 1e8 is 8: 1e8 + 3 rounds to 1e8, so the tree gives 0 (a double sum would give 6 / 4)
  assert.equal(t32[0], 0);
});
