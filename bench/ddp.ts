/**
 * Data-parallel benchmark (issue 14): time per training step of an MLP (784-512-256-10, float32, global batch
 * 128, SGD) with chainrule on 1 process vs DistributedDataParallel on 2 processes (mpirun), against PyTorch 1 process
 * and PyTorch DDP with Gloo on 2 processes (bench/ddp_torch.py, /usr/bin/python3 with torch); and the
 * all-reduce latency/bandwidth of chainrule's binding against raw MPI_Allreduce (bench/ddp_allreduce.c, built
 * with mpicc). Each process gets cores / processes threads, so every configuration uses the whole machine.
 *
 * Usage: node --import tsx bench/ddp.ts [--steps 20] [--quick]
 * (the same file is the worker: `--worker step|allreduce`, started by the driver, under mpirun or alone)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { distributed, manualSeed, nn, optim, randint, randn, zeros } from "../src/node.ts";

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
};
const SIZES = [1024, 16384, 262144, 1048576, 4194304]; // float32 elements, as ddp_allreduce.c
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function workerStep(): void {
  const steps = Number(arg("--steps", "20"));
  const warmup = 3;
  const batch = 128;
  const { rank, worldSize } = distributed.initProcessGroup();
  manualSeed(0);
  const net = new nn.Sequential(
    new nn.Linear(784, 512),
    new nn.ReLU(),
    new nn.Linear(512, 256),
    new nn.ReLU(),
    new nn.Linear(256, 10),
  );
  const model = worldSize > 1 ? new distributed.DistributedDataParallel(net) : net;
  const opt = new optim.SGD(model.parameters(), { lr: 0.01 });
  const per = batch / worldSize;
  manualSeed(1);
  const x = randn([batch, 784])
    .narrow(0, rank * per, per)
    .contiguous();
  const y = randint(0, 10, [batch])
    .narrow(0, rank * per, per)
    .contiguous();
  const times: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    if (worldSize > 1) distributed.barrier();
    const t0 = performance.now();
    opt.zeroGrad();
    nn.crossEntropy(model.call(x), y).backward();
    opt.step();
    if (s >= warmup) times.push(performance.now() - t0);
  }
  if (rank === 0) console.log(JSON.stringify({ ms: median(times) }));
}

function workerAllReduce(): void {
  const { rank } = distributed.initProcessGroup();
  for (const n of SIZES) {
    const t = zeros([n]);
    const reps = n >= 1048576 ? 10 : 50;
    for (let w = 0; w < 3; w++) distributed.allReduce(t, "sum");
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      distributed.barrier();
      const t0 = performance.now();
      distributed.allReduce(t, "sum");
      times.push((performance.now() - t0) * 1000);
    }
    if (rank === 0) console.log(JSON.stringify({ bytes: n * 4, us: median(times) }));
  }
}

const mode = arg("--worker", "");
if (mode === "step") workerStep();
else if (mode === "allreduce") workerAllReduce();
else driver();

function driver(): void {
  const here = fileURLToPath(import.meta.url);
  const root = path.resolve(path.dirname(here), "..");
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const steps = argv.includes("--quick") ? "5" : arg("--steps", "20");
  const env = {
    ...process.env,
    OMPI_ALLOW_RUN_AS_ROOT: "1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
  };
  const json = (r: ReturnType<typeof spawnSync>, what: string): Record<string, number>[] => {
    if (r.status !== 0) {
      console.log(`${what}: failed (${r.status}): ${String(r.stderr).split("\n").slice(-5).join(" | ")}`);
      return [];
    }
    return String(r.stdout)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
  };
  const node = [process.execPath, "--import", "tsx", here];
  const run = (cmd: string[], threads: number, what: string) =>
    json(
      spawnSync(cmd[0], cmd.slice(1), {
        cwd: root,
        env: { ...env, CHAINRULE_NUM_THREADS: String(threads) },
        encoding: "utf8",
        timeout: 600_000,
      }),
      what,
    );
  const mpi = (np: number, cmd: string[]) => ["mpirun", "--oversubscribe", "-np", String(np), ...cmd];
  const half = Math.max(1, Math.floor(cores / 2));
  const rows: [string, number | undefined][] = [];
  rows.push([
    `chainrule, 1 process x ${cores} threads`,
    run([...node, "--worker", "step", "--steps", steps], cores, "c1")[0]?.ms,
  ]);
  rows.push([
    `chainrule DDP, 2 processes x ${half} threads (mpirun)`,
    run(mpi(2, [...node, "--worker", "step", "--steps", steps]), half, "c2")[0]?.ms,
  ]);
  const py = "/usr/bin/python3";
  const torchScript = path.join(root, "bench", "ddp_torch.py");
  const torch = (procs: number, threads: number) =>
    run(
      [py, torchScript, "--procs", String(procs), "--threads", String(threads), "--steps", steps],
      threads,
      `torch ${procs}`,
    )[0]?.ms;
  rows.push([`PyTorch, 1 process x ${cores} threads`, torch(1, cores)]);
  rows.push([`PyTorch DDP (Gloo), 2 processes x ${half} threads`, torch(2, half)]);
  console.log("\n| configuration (MLP 784-512-256-10, float32, global batch 128, SGD) | ms / step |");
  console.log("| --- | ---: |");
  for (const [name, ms] of rows) console.log(`| ${name} | ${ms === undefined ? "failed" : ms.toFixed(2)} |`);

  // all-reduce: chainrule's binding vs raw MPI
  const ours = run(mpi(2, [...node, "--worker", "allreduce"]), 1, "allreduce");
  const tmp = mkdtempSync(path.join(os.tmpdir(), "ddp-bench-"));
  const exe = path.join(tmp, "ddp_allreduce");
  const cc = spawnSync("mpicc", ["-O2", path.join(root, "bench", "ddp_allreduce.c"), "-o", exe], {
    encoding: "utf8",
  });
  const raw = cc.status === 0 && existsSync(exe) ? run(mpi(2, [exe]), 1, "raw MPI") : [];
  // ring all-reduce moves 2 (N-1)/N x the message per rank: the "bus bandwidth" comparable across N
  const busbw = (bytes: number, us: number, n = 2) => (((2 * (n - 1)) / n) * bytes) / (us * 1e-6) / 1e9;
  console.log(
    "\n| all-reduce, 2 processes, float32 sum | chainrule us | raw MPI us | chainrule GB/s | raw MPI GB/s |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: |");
  for (const o of ours) {
    const r = raw.find((x) => x.bytes === o.bytes);
    console.log(
      `| ${o.bytes} B | ${o.us.toFixed(1)} | ${r?.us.toFixed(1) ?? "-"} | ${busbw(o.bytes, o.us).toFixed(2)} | ${r === undefined ? "-" : busbw(r.bytes, r.us).toFixed(2)} |`,
    );
  }
}
