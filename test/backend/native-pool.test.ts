/**
 * The native thread pool's placement of its workers: each worker is pinned to a CPU other than the one the
 * calling (JavaScript) thread runs on, and when the scheduler moves the caller onto a worker's CPU, the next
 * parallel kernel moves that worker to the CPU the caller left (native/src/pool.cc, follow_caller). Observed
 * from outside through /proc (the workers are named cr-pool-N) and `taskset -p`, which moves the main thread.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { setNumThreads } from "../../src/backend/native/index.ts";
import { setBackend, tensor } from "../../src/index.ts";
import { DEFAULT_THREADS, N } from "./native-helpers.ts";

/** The CPUs a thread of this process may run on (its Cpus_allowed_list), by thread id. */
function allowed(tid: string): number[] {
  const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8");
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? "";
  return list.split(",").flatMap((part) => {
    const [a, b] = part.split("-").map(Number);
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/** Thread ids of the pool's workers (named cr-pool-N by pool.cc). */
function workers(): string[] {
  return readdirSync("/proc/self/task").filter((t) => {
    try {
      return readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim().startsWith("cr-pool-");
    } catch {
      return false;
    }
  });
}

function taskset(cpus: string): void {
  const r = spawnSync("taskset", ["-p", "-c", cpus, String(process.pid)], { encoding: "utf8" });
  assert.equal(r.status, 0, `taskset -p -c ${cpus} failed: ${r.stderr}`);
}

const mainCpus = (() => {
  try {
    return allowed(String(process.pid));
  } catch {
    return [];
  }
})();
const hasTaskset = spawnSync("taskset", ["-V"], { encoding: "utf8" }).status === 0;
const why = !N
  ? "native backend not built"
  : mainCpus.length < 2
    ? "needs at least 2 CPUs"
    : !hasTaskset
      ? "needs taskset (util-linux)"
      : false;

/** A 2-thread product (above the pool's 2 MFLOP threshold) checked against a float64 reference. */
function product(): void {
  const n = 160;
  const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 37) % 101) / 50 - 1);
  const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 53) % 97) / 48 - 1);
  const c = tensor(a, { shape: [n, n] })
    .matmul(tensor(b, { shape: [n, n] }))
    .toArray() as number[][];
  for (const [i, j] of [
    [0, 0],
    [n - 1, n - 1],
    [77, 3],
    [150, 131],
  ]) {
    let s = 0;
    for (let k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
    assert.ok(Math.abs(c[i][j] - s) < 1e-3 * (1 + Math.abs(s)), `C[${i},${j}] = ${c[i][j]}, expected ${s}`);
  }
}

test("pool: a worker leaves the CPU the caller moves onto", { skip: why }, () => {
  setBackend(N!);
  const restore = mainCpus.join(",");
  try {
    setNumThreads(1);
    setNumThreads(2);
    product();
    const [w] = workers();
    assert.ok(w !== undefined, "no thread named cr-pool-1");
    const first = allowed(w);
    assert.equal(first.length, 1, `worker allowed on CPUs ${first}, expected one`);
    // Move the caller onto the worker's CPU: the next parallel kernel moves the worker to the CPU it left.
    taskset(String(first[0]));
    product();
    const second = allowed(w);
    assert.equal(second.length, 1, `worker allowed on CPUs ${second}, expected one`);
    assert.notEqual(second[0], first[0], "the worker stayed on the caller's CPU");
    // And again, onto the worker's new CPU: it moves back to the first one.
    taskset(String(second[0]));
    product();
    assert.deepEqual(allowed(w), first);
  } finally {
    taskset(restore);
    setNumThreads(DEFAULT_THREADS);
  }
});
