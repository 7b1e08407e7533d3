"""PyTorch DistributedDataParallel (Gloo) side of bench/ddp.ts: the same MLP, global batch and steps, on
`--procs` processes of one machine (torch.multiprocessing), each with `--threads` intra-op threads. Prints one
JSON line from rank 0: {"ms": median ms per step}.

Usage: python3 bench/ddp_torch.py --procs 2 --threads 1 --batch 128 --steps 20 --warmup 3
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, a):
    torch.set_num_threads(a.threads)
    if a.procs > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        dist.init_process_group("gloo", rank=rank, world_size=a.procs)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    )
    if a.procs > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    per = a.batch // a.procs
    g = torch.Generator().manual_seed(1)
    x = torch.randn(a.batch, 784, generator=g)[rank * per : (rank + 1) * per]
    y = torch.randint(0, 10, (a.batch,), generator=g)[rank * per : (rank + 1) * per]
    times = []
    for s in range(a.warmup + a.steps):
        if a.procs > 1:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if s >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    if rank == 0:
        print(json.dumps({"ms": statistics.median(times)}), flush=True)
    if a.procs > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    if args.procs == 1:
        worker(0, args)
    else:
        mp.spawn(worker, args=(args,), nprocs=args.procs)
