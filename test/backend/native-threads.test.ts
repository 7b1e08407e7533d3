/**
 * The native backend used from several JavaScript threads at once (issue 8, item 2).
 *
 * The addon is loaded once per process, and each worker_thread gets its own instance of the module, but the
 * kernels, the thread pool and its scratch buffers are process-global. Scratch buffers were keyed by pool
 * thread id, and every JavaScript caller is thread 0 of the pool, so concurrent calls from two JavaScript
 * threads shared (and reallocated under each other) the same packing and im2col buffers: 15-25% of matmul,
 * conv and cross-entropy results came out wrong. Here three workers and the main thread run the same
 * workloads (native-threads-worker.ts) concurrently; every result must be bit-identical to the one computed
 * before, single-threaded in JavaScript terms, and that one must match the js backend within float32 tolerance.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { jsBackend } from "../../src/backend/js/index.ts";
import { N } from "./native-helpers.ts";
import { type Results, workload } from "./native-threads-worker.ts";

const WORKERS = 3;
const SEEDS = [11, 12, 13, 14, 15, 16];
const ROUNDS = 4;

function assertIdentical(got: Results, want: Results, what: string): void {
  for (const k of Object.keys(want)) {
    assert.equal(got[k].length, want[k].length, `${what} ${k}: length`);
    for (let i = 0; i < want[k].length; i++) {
      if (!Object.is(got[k][i], want[k][i])) {
        assert.fail(`${what} ${k}[${i}] is ${got[k][i]}, the single-threaded native result is ${want[k][i]}`);
      }
    }
  }
}

test("native kernels from the main thread and 3 workers at once give the single-threaded results", {
  skip: !N,
}, async () => {
  // References: native alone (exact target), and js (the semantics).
  const ref = new Map<number, Results>();
  for (const seed of SEEDS) {
    const r = workload(N!, seed);
    const j = workload(jsBackend, seed);
    for (const k of Object.keys(j)) {
      for (let i = 0; i < j[k].length; i++) {
        const tol = 1e-4 + 1e-4 * Math.abs(j[k][i]);
        assert.ok(
          Math.abs(r[k][i] - j[k][i]) <= tol,
          `seed ${seed} ${k}[${i}]: native ${r[k][i]}, js ${j[k][i]}`,
        );
      }
    }
    ref.set(seed, r);
  }

  const done = new Int32Array(new SharedArrayBuffer(4));
  // Workers do not inherit the tsx loader: a small ES-module bootstrap (a data: URL) registers it, then
  // imports the TypeScript worker.
  const boot = `const { register } = await import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))});
register();
await import(${JSON.stringify(new URL("./native-threads-worker.ts", import.meta.url).href)});`;
  const url = new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
  const results = Array.from({ length: WORKERS }, (_, w) => {
    // each worker takes the seeds in another order, so different kernels overlap
    const seeds = SEEDS.map((_, i) => SEEDS[(i + 2 * w) % SEEDS.length]);
    const worker = new Worker(url, { workerData: { seeds, rounds: ROUNDS, done } });
    return new Promise<{ seed: number; results: Results }[]>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => {
        if (code !== 0) reject(new Error(`worker ${w} exited with code ${code}`));
      });
    });
  });

  // The main thread hammers too until every worker has finished (bounded, in case a worker dies early).
  let mainRuns = 0;
  for (let k = 0; Atomics.load(done, 0) < WORKERS && k < 400; k++) {
    const seed = SEEDS[k % SEEDS.length];
    assertIdentical(workload(N!, seed), ref.get(seed)!, `main thread, seed ${seed}, run ${k}`);
    mainRuns++;
  }
  const all = await Promise.all(results);
  all.forEach((list, w) => {
    assert.equal(list.length, SEEDS.length * ROUNDS);
    for (const { seed, results: r } of list) assertIdentical(r, ref.get(seed)!, `worker ${w}, seed ${seed}`);
  });
  assert.ok(mainRuns > 0);
});
