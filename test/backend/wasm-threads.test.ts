/**
 * The wasm backend's GEMM worker pool in a process started with `node --input-type=module -e` (issue 8,
 * item 20). Its workers used to run `eval: true` CommonJS source, which inherited the flag, failed with
 * "require is not defined", and the unhandled worker error killed the process. They now start from a module
 * file (src/backend/wasm/gemm-worker.mjs) with --input-type removed from their flags and NODE_OPTIONS. Before
 * that, the first child died and the second silently ran single-threaded after a 10 s wait.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The child: a 2-thread wasm backend, a product large enough to be split, compared with 1 thread and js. */
const CHILD = `
import { jsBackend } from "${root}src/backend/js/index.ts";
import { createWasmBackend } from "${root}src/backend/wasm/index.ts";
import { manualSeed, matmul, randn, setBackend } from "${root}src/index.ts";
manualSeed(1);
const a = randn([150, 140]);
const b = randn([140, 160]);
const pool = createWasmBackend({ threads: 2 });
const one = createWasmBackend({ threads: 1 });
const run = (be) => { setBackend(be); return matmul(a, b).dataSync(); };
const [p, o, j] = [run(pool), run(one), run(jsBackend)];
let identical = true;
let maxErr = 0;
for (let i = 0; i < p.length; i++) {
  if (p[i] !== o[i]) identical = false;
  maxErr = Math.max(maxErr, Math.abs(p[i] - j[i]));
}
console.log(JSON.stringify({ threads: pool.threads, n: p.length, identical, maxErr }));
pool.stopThreads();
`;

/** Run CHILD with the flag on the command line or in NODE_OPTIONS (which workers also inherit). */
function runChild(how: "argv" | "NODE_OPTIONS") {
  const args = ["--import", "tsx", ...(how === "argv" ? ["--input-type=module"] : []), "-e", CHILD];
  const env = how === "argv" ? process.env : { ...process.env, NODE_OPTIONS: "--input-type=module" };
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", timeout: 60000, env });
  assert.equal(r.status, 0, `child failed (signal ${r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "");
}

for (const how of ["argv", "NODE_OPTIONS"] as const) {
  test(`wasm worker pool with --input-type=module (${how}): starts, and the threaded matmul is right`, () => {
    const out = runChild(how);
    assert.equal(out.threads, 2, "the pool started its worker");
    assert.equal(out.n, 150 * 160);
    assert.equal(out.identical, true, "2 threads give the 1-thread result bit for bit");
    // float32 sums of 140 products of N(0,1) values: |error| far below 1e-3 (the js reference sums in float32 too)
    assert.ok(out.maxErr < 1e-3, `max |wasm - js| = ${out.maxErr}`);
  });
}
