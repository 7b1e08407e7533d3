/**
 * What `chainrule train --distributed` needs from the distributed layer, kept here so the CLI's training loop
 * changes by a few lines: join the process group, wrap the network in DistributedDataParallel, take this
 * rank's share of each global batch, and sum the step's metrics over the ranks.
 *
 * Every rank iterates the same global batches (the loader's shuffle is seeded identically everywhere) and
 * takes rows [floor(n r / W), floor(n (r + 1) / W)) of each. Its mean loss is weighted by (its rows x W / n)
 * before backward, so after DDP's average the gradient is exactly that of the global batch's mean loss, even
 * when n does not divide evenly: the run takes the steps a one-process run with the same batch size takes.
 */
import type { Module } from "../nn/module.ts";
import { Tensor } from "../tensor/tensor.ts";
import { allReduce } from "./collectives.ts";
import { DistributedDataParallel } from "./ddp.ts";
import { initProcessGroup } from "./process-group.ts";

/** A distributed training run from this rank's point of view. */
export interface DistributedRun {
  rank: number;
  worldSize: number;
  /** Rank 0: the one that prints and writes files. */
  isMain: boolean;
  /** The network wrapped for data-parallel training (parameters broadcast from rank 0). */
  wrap<M extends Module>(net: M): Module;
  /**
   * This rank's rows of a global batch, the weight of its mean loss, and how many of the rows count (0 when
   * the batch has fewer rows than ranks and none is this rank's: it then runs one row with weight 0, so that
   * backward still produces the (zero) gradients DDP averages).
   */
  shard(x: Tensor, y: Tensor): [Tensor, Tensor, number, number];
  /** Sum [loss x n, correct, n] of one step over the ranks. */
  reduceStep(lossSum: number, correct: number, n: number): [number, number, number];
}

/** Join the process group (launched by mpirun/srun; one process without a launcher). */
export function startDistributedRun(): DistributedRun {
  const { rank, worldSize } = initProcessGroup();
  return {
    rank,
    worldSize,
    isMain: rank === 0,
    wrap: (net) => new DistributedDataParallel(net as Module),
    shard(x, y) {
      const n = x.shape[0];
      const lo = Math.floor((n * rank) / worldSize);
      const hi = Math.floor((n * (rank + 1)) / worldSize);
      if (hi === lo) return [x.narrow(0, 0, 1), y.narrow(0, 0, 1), 0, 0];
      return [x.narrow(0, lo, hi - lo), y.narrow(0, lo, hi - lo), ((hi - lo) * worldSize) / n, hi - lo];
    },
    reduceStep(lossSum, correct, n) {
      if (worldSize === 1) return [lossSum, correct, n];
      const t = Tensor._concrete(new Float64Array([lossSum, correct, n]), [3], "float64", [1]);
      const s = allReduce(t, "sum").dataSync();
      return [s[0], s[1], s[2]];
    },
  };
}
