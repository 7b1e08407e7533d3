// Multi-process tests under mpirun (2 and 4 local processes, --oversubscribe): collectives against a reference
// for every op and dtype, DDP against single-process training, faults ending the job promptly, and resuming
// from a checkpoint after a rank was killed, on another world size. Skipped, with the reason printed, only
// where mpirun is not installed (`.ci/run` installs Open MPI).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { files } from "../../src/node.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const probe = spawnSync("mpirun", ["--version"], { encoding: "utf8" });
const skip =
  probe.error !== undefined || probe.status !== 0
    ? "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev); the multi-process tests need it"
    : false;
if (skip) console.log(`# skipping test/distributed/mpi.test.ts: ${skip}`);
const built = existsSync(path.join(root, "native/build/Release/chainrule_mpi.node"));

const env = {
  ...process.env,
  // containers often run tests as root, which Open MPI refuses without these
  OMPI_ALLOW_RUN_AS_ROOT: "1",
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
  // more ranks than cores: yield instead of spinning while waiting
  OMPI_MCA_mpi_yield_when_idle: "1",
  CHAINRULE_NUM_THREADS: "1",
};

/** What a finished child process left: its status, signal and output. */
interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion without blocking the event loop (so tests can run side by side). */
function runAsync(cmd: string, args: string[], extra: Record<string, string>, timeout: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...env, ...extra } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

function mpirun(
  np: number,
  script: string,
  extra: Record<string, string> = {},
  timeout = 240_000,
): Promise<Ran> {
  const args = [
    "--oversubscribe",
    "-np",
    String(np),
    process.execPath,
    "--import",
    "tsx",
    path.join(here, script),
  ];
  return runAsync("mpirun", args, extra, timeout);
}

function expectOk(r: Ran, np: number, what: string): void {
  assert.equal(
    r.status,
    0,
    `${what} failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`,
  );
  for (let k = 0; k < np; k++)
    assert.match(r.stdout, new RegExp(`^ok ${k}\\b`, "m"), `${what}: rank ${k} did not finish`);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "chainrule-dist-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// The jobs are mostly process start-up and waiting: two at a time halves the wall time on 2 cores.
describe("under mpirun", { concurrency: 2 }, () => {
  test("the MPI binding was built where MPI is installed", { skip }, async () => {
    assert.ok(built, "native/build/Release/chainrule_mpi.node is missing: run `npm run build:native`");
    // the kernel addon stays free of libmpi: users without MPI load it as before
    const ldd = spawnSync("ldd", [path.join(root, "native/build/Release/chainrule_native.node")], {
      encoding: "utf8",
    });
    if (ldd.status === 0) assert.doesNotMatch(ldd.stdout, /libmpi/);
  });

  for (const np of [2, 4]) {
    test(`collectives on ${np} processes: every op and dtype, empty and non-contiguous tensors, async`, {
      skip,
    }, async () => {
      const r = await mpirun(np, "collectives-child.ts");
      expectOk(r, np, "collectives-child");
      assert.match(r.stdout, /overlap: the all-reduce completed in the background/);
    });
    test(`DistributedDataParallel on ${np} processes equals one process on the global batch`, {
      skip,
    }, async () => {
      const r = await mpirun(np, "ddp-child.ts");
      expectOk(r, np, "ddp-child");
      assert.equal(r.stdout.match(/^ok /gm)?.length, 7 * np, r.stdout);
      assert.equal(r.stdout.match(/bit for bit equal/g)?.length, 3 * np, r.stdout);
    });
    test(`a jitted data-parallel step on ${np} processes equals eager DistributedDataParallel`, {
      skip,
    }, async () => {
      expectOk(await mpirun(np, "jit-child.ts"), np, "jit-child");
    });
  }

  for (const [fault, message] of [
    [
      "throw",
      /rank 1 of 2: failed with an (uncaught exception|unhandled promise rejection):\nError: injected failure on rank 1/,
    ],
    ["exit", /rank 1 of 2 is exiting with code 3; ending the job/],
    ["timeout", /allReduce did not complete within 1500 ms; another rank has stopped/],
  ] as const) {
    test(`a fault on one rank (${fault}) ends the whole job promptly, with a clear message`, {
      skip,
    }, async () => {
      const t0 = Date.now();
      const r = await mpirun(2, "fault-child.ts", { FAULT: fault }, 60_000);
      const secs = (Date.now() - t0) / 1000;
      assert.notEqual(r.status, 0, `the job should fail:\n${r.stdout}\n${r.stderr}`);
      assert.equal(r.signal, null, `mpirun hung and was killed after ${secs} s`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stdout, /should not happen/);
    });
  }

  test("a checkpoint written before a rank is killed on 2 processes resumes on 4 and on 1", {
    skip,
  }, async () => {
    const ckpt = path.join(tmp, "ckpt.safetensors");
    const killed = await mpirun(2, "resume-child.ts", { CKPT: ckpt, KILL_AT: "3" });
    assert.notEqual(killed.status, 0, "the killed job must fail");
    assert.ok(existsSync(ckpt), "rank 0 wrote checkpoints before the kill");
    const copy = path.join(tmp, "ckpt-1.safetensors");
    copyFileSync(ckpt, copy);
    const r4 = await mpirun(4, "resume-child.ts", { CKPT: ckpt });
    assert.equal(r4.status, 0, `${r4.stdout}\n${r4.stderr}`);
    assert.match(r4.stdout, /resumed at step 3 on 4 process\(es\)/);
    assert.match(r4.stdout, /ok: resumed training matches 6 uninterrupted steps/);
    // one process, no launcher, no MPI
    const r1 = await runAsync(
      process.execPath,
      ["--import", "tsx", path.join(here, "resume-child.ts")],
      { CKPT: copy },
      60_000,
    );
    assert.equal(r1.status, 0, `${r1.stdout}\n${r1.stderr}`);
    assert.match(r1.stdout, /resumed at step 3 on 1 process\(es\)/);
    assert.match(r1.stdout, /ok: resumed training matches/);
  });

  test("a checkpoint written before a rank is killed on 4 processes resumes on 2", { skip }, async () => {
    const ckpt = path.join(tmp, "ckpt-4to2.safetensors");
    const killed = await mpirun(4, "resume-child.ts", { CKPT: ckpt, KILL_AT: "3" });
    assert.notEqual(killed.status, 0, "the killed job must fail");
    assert.ok(existsSync(ckpt), "rank 0 wrote checkpoints before the kill");
    const r2 = await mpirun(2, "resume-child.ts", { CKPT: ckpt });
    assert.equal(r2.status, 0, `${r2.stdout}\n${r2.stderr}`);
    assert.match(r2.stdout, /resumed at step 3 on 2 process\(es\)/);
    assert.match(r2.stdout, /ok: resumed training matches 6 uninterrupted steps/);
  });

  test("under mpirun without the MPI binding, initProcessGroup says what to install", { skip }, async () => {
    const r = await mpirun(
      1,
      "fault-child.ts",
      { CHAINRULE_MPI_ADDON: path.join(tmp, "missing.node") },
      60_000,
    );
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /started by mpirun \(Open MPI\) \(world size 1\) but the MPI binding is not available/,
    );
    assert.match(r.stderr, /apt-get install openmpi-bin libopenmpi-dev/);
  });

  test("chainrule train --distributed on 2 processes takes the steps of a one-process run; rank 0 alone prints", {
    skip,
  }, async () => {
    const args = ["train", "--limit", "200", "--epochs", "1", "--batch-size", "50", "--no-plots"];
    const bin = path.join(root, "bin", "chainrule.mjs");
    const one = await runAsync(process.execPath, [bin, ...args, "--out", path.join(tmp, "one")], {}, 240_000);
    assert.equal(one.status, 0, `${one.stdout}\n${one.stderr}`);
    const mpiArgs = ["--oversubscribe", "-np", "2", process.execPath, bin, ...args, "--distributed"];
    const two = await runAsync("mpirun", [...mpiArgs, "--out", path.join(tmp, "two")], {}, 240_000);
    assert.equal(two.status, 0, `${two.stdout}\n${two.stderr}`);
    assert.equal(two.stdout.match(/^training mlp/gm)?.length, 1, "one header, from rank 0");
    assert.equal(two.stdout.match(/^test accuracy/gm)?.length, 1, "one result line, from rank 0");
    const read = (d: string) =>
      JSON.parse(readFileSync(path.join(tmp, d, "metrics.json"), "utf8")) as {
        test: { loss: number; correct: number };
        epochs: { trainLoss: number }[];
      };
    const a = read("one");
    const b = read("two");
    // float32: the same global batches, gradients summed in another order
    assert.ok(Math.abs(a.test.loss - b.test.loss) <= 1e-5 * a.test.loss, `${a.test.loss} vs ${b.test.loss}`);
    assert.ok(Math.abs(a.epochs[0].trainLoss - b.epochs[0].trainLoss) <= 1e-5 * a.epochs[0].trainLoss);
    assert.ok(
      Math.abs(a.test.correct - b.test.correct) <= 2,
      `${a.test.correct} vs ${b.test.correct} correct`,
    );
  });

  test("chainrule train --distributed --jit on 2 processes takes the steps of the eager distributed run", {
    skip,
  }, async () => {
    // batch 45: the ranks' shares are 22 and 23 rows (weighted losses), the last batch 20
    const args = [
      "train",
      "--limit",
      "200",
      "--epochs",
      "1",
      "--batch-size",
      "45",
      "--no-plots",
      "--distributed",
    ];
    const bin = path.join(root, "bin", "chainrule.mjs");
    const mpiArgs = ["--oversubscribe", "-np", "2", process.execPath, bin, ...args];
    const [eager, jitted] = [path.join(tmp, "ddp-eager"), path.join(tmp, "ddp-jit")];
    const a = await runAsync("mpirun", [...mpiArgs, "--out", eager], {}, 240_000);
    assert.equal(a.status, 0, `${a.stdout}\n${a.stderr}`);
    const b = await runAsync("mpirun", [...mpiArgs, "--jit", "--out", jitted], {}, 240_000);
    assert.equal(b.status, 0, `${b.stdout}\n${b.stderr}`);
    assert.equal(b.stdout.match(/^test accuracy/gm)?.length, 1, "one result line, from rank 0");
    const pa = files.loadSafetensors(path.join(eager, "model.safetensors")).tensors;
    const pb = files.loadSafetensors(path.join(jitted, "model.safetensors")).tensors;
    assert.deepEqual(Object.keys(pb).sort(), Object.keys(pa).sort());
    let worst = 0;
    for (const k of Object.keys(pa)) {
      const x = pa[k].dataSync();
      const y = pb[k].dataSync();
      for (let i = 0; i < x.length; i++) {
        worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(1, Math.abs(x[i])));
      }
    }
    // float32: the compiled program may evaluate in another order (fusion); 5 steps apart by ~1e-7
    assert.ok(worst <= 1e-5, `parameters of the jitted run differ by ${worst} relative`);
    const metrics = (d: string) =>
      JSON.parse(readFileSync(path.join(d, "metrics.json"), "utf8")) as {
        config: { jit: boolean };
        test: { loss: number };
      };
    const ma = metrics(eager);
    const mb = metrics(jitted);
    assert.equal(ma.config.jit, false);
    assert.equal(mb.config.jit, true, "the second run took the jitted path");
    assert.ok(
      Math.abs(ma.test.loss - mb.test.loss) <= 1e-5 * ma.test.loss,
      `${ma.test.loss} vs ${mb.test.loss}`,
    );
  });
});
