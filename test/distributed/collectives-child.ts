// Run under mpirun by collectives.test.ts: every collective, op and dtype against a reference each rank
// computes alone from the formula that generated every rank's data. Prints "ok <rank>" at the end; an assertion
// failure is an uncaught exception, which ends the job with a non-zero status.
import assert from "node:assert/strict";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadMpiAddon } from "../../src/distributed/addon.ts";
import { distributed, type DType, randn, tensor, zeros } from "../../src/node.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

const { rank, worldSize: size } = distributed.initProcessGroup({ timeoutMs: 120_000 });
const DT: DType[] = ["float32", "float64", "int32", "bool", "float16", "bfloat16"];
const OPS = ["sum", "mean", "max", "min"] as const;

/** Element i of rank r's data (halves and integers: sums and means by 2 or 4 are exact in float32, and in
 * float16 / bfloat16: at most 7 significant bits). */
function v(dt: DType, r: number, i: number): number {
  if (dt === "bool") return (i + r) % 3 === 0 ? 1 : 0;
  if (dt === "int32") return (r + 1) * ((i % 7) - 3) + r;
  return (r + 1) * ((i % 7) - 3) + 0.5 * r;
}
function reduce(dt: DType, op: string, i: number): number {
  const xs = Array.from({ length: size }, (_, r) => v(dt, r, i));
  if (dt === "bool") return op === "min" ? Math.min(...xs) : Math.max(...xs); // and / or
  if (op === "sum") return xs.reduce((a, b) => a + b, 0);
  if (op === "mean") return xs.reduce((a, b) => a + b, 0) / size;
  return op === "max" ? Math.max(...xs) : Math.min(...xs);
}
function data(dt: DType, r: number, n: number, at = (i: number) => i): number[] {
  return Array.from({ length: n }, (_, i) => v(dt, r, at(i)));
}
function make(dt: DType, shape: number[], values: number[]): Tensor {
  return tensor(values, { dtype: dt }).reshape(shape);
}
const flat = (t: Tensor) => Array.from(t.dataSync(), Number);

for (const dt of DT) {
  for (const op of OPS) {
    const bad = op === "mean" && (dt === "int32" || dt === "bool");
    // contiguous [3, 5]
    const a = make(dt, [3, 5], data(dt, rank, 15));
    if (bad) {
      assert.throws(() => distributed.allReduce(a, op), /'mean' needs a floating-point tensor/);
      continue;
    }
    distributed.allReduce(a, op);
    assert.deepEqual(
      flat(a),
      Array.from({ length: 15 }, (_, i) => reduce(dt, op, i)),
      `${dt} ${op} contiguous`,
    );
    // non-contiguous: the transpose of a [3, 5] base; the result lands in the base's storage
    const base = make(dt, [3, 5], data(dt, rank, 15));
    const tr = base.transpose(0, 1);
    const ret = distributed.allReduce(tr, op);
    assert.equal(ret, tr);
    assert.deepEqual(
      flat(base),
      Array.from({ length: 15 }, (_, i) => reduce(dt, op, i)),
      `${dt} ${op} transposed`,
    );
    // a contiguous view at an offset: rows 1..2 of [4, 5]; rows 0 and 3 untouched
    const b4 = make(dt, [4, 5], data(dt, rank, 20));
    distributed.allReduce(b4.narrow(0, 1, 2), op);
    const want = Array.from({ length: 20 }, (_, i) =>
      i >= 5 && i < 15 ? reduce(dt, op, i) : v(dt, rank, i),
    );
    assert.deepEqual(flat(b4), want, `${dt} ${op} offset view`);
    // async, overlapping two operations
    const c1 = make(dt, [7], data(dt, rank, 7));
    const c2 = make(dt, [2, 3], data(dt, rank, 6)).transpose(0, 1);
    const w1 = distributed.allReduce(c1, op, { async: true });
    const w2 = distributed.allReduce(c2, op, { async: true });
    w2.wait();
    await w1.promise();
    w1.wait(); // idempotent
    assert.deepEqual(
      flat(c1),
      Array.from({ length: 7 }, (_, i) => reduce(dt, op, i)),
      `${dt} ${op} async`,
    );
    assert.deepEqual(
      flat(c2),
      [0, 3, 1, 4, 2, 5].map((i) => reduce(dt, op, i)),
      `${dt} ${op} async transposed`,
    );
    // empty
    const e = zeros([0, 4], { dtype: dt });
    distributed.allReduce(e, op);
    assert.deepEqual(e.shape, [0, 4]);
  }

  // broadcast from the last rank, contiguous and transposed, and async
  const src = size - 1;
  const bc = make(dt, [6], data(dt, rank, 6));
  distributed.broadcast(bc, src);
  assert.deepEqual(flat(bc), data(dt, src, 6), `${dt} broadcast`);
  const bbase = make(dt, [2, 3], data(dt, rank, 6));
  await distributed.broadcast(bbase.transpose(0, 1), 0, { async: true }).promise();
  assert.deepEqual(flat(bbase), data(dt, 0, 6), `${dt} broadcast transposed`);
  distributed.broadcast(zeros([0], { dtype: dt }), 0);

  // allGather: into a list and into one tensor; a transposed input
  const n = 6;
  const gin = make(dt, [2, 3], data(dt, rank, n));
  const list = Array.from({ length: size }, () => zeros([2, 3], { dtype: dt }));
  distributed.allGather(list, gin);
  list.forEach((t, r) => {
    assert.deepEqual(flat(t), data(dt, r, n), `${dt} allGather list ${r}`);
  });
  const all = zeros([size * 3, 2], { dtype: dt });
  distributed.allGather(all, make(dt, [2, 3], data(dt, rank, n)).transpose(0, 1), { async: true }).wait();
  const tIdx = [0, 3, 1, 4, 2, 5];
  assert.deepEqual(
    flat(all),
    Array.from({ length: size * n }, (_, k) => v(dt, Math.floor(k / n), tIdx[k % n])),
    `${dt} allGather tensor`,
  );
  const eAll = zeros([0], { dtype: dt });
  distributed.allGather(eAll, zeros([0], { dtype: dt }));
  assert.throws(() => distributed.allGather(zeros([size * n + 1], { dtype: dt }), gin), /expected worldSize/);

  // reduceScatter: rank r gets the reduction of block r of every rank's input
  for (const op of OPS) {
    if (op === "mean" && (dt === "int32" || dt === "bool")) continue;
    const m = 5;
    const input = make(dt, [size, m], data(dt, rank, size * m));
    const out = zeros([m], { dtype: dt });
    distributed.reduceScatter(out, input, op);
    assert.deepEqual(
      flat(out),
      Array.from({ length: m }, (_, j) => reduce(dt, op, rank * m + j)),
      `${dt} ${op} reduceScatter`,
    );
    const parts = Array.from({ length: size }, (_, b) =>
      make(
        dt,
        [m],
        data(dt, rank, m, (j) => b * m + j),
      ),
    );
    const out2 = zeros([1, m], { dtype: dt }).transpose(0, 1);
    distributed.reduceScatter(out2, parts, op, { async: true }).wait();
    assert.deepEqual(
      flat(out2),
      Array.from({ length: m }, (_, j) => reduce(dt, op, rank * m + j)),
    );
  }

  // send / recv in a ring (large enough to need MPI's rendezvous protocol), async send, sync recv
  const big = 300_000;
  const msg = make(dt, [big], data(dt, rank, big));
  const got = zeros([big], { dtype: dt });
  const sw = distributed.send(msg, (rank + 1) % size, { async: true, tag: 7 });
  distributed.recv(got, (rank - 1 + size) % size, { tag: 7 });
  sw.wait();
  assert.deepEqual(flat(got).slice(0, 50), data(dt, (rank - 1 + size) % size, 50), `${dt} recv`);
  assert.equal(flat(got)[big - 1], v(dt, (rank - 1 + size) % size, big - 1));
}

// argument checks
assert.throws(() => distributed.broadcast(zeros([2]), size), /src must be a rank in \[0, /);
assert.throws(() => distributed.allReduce(zeros([2]), "prod" as "sum"), /unknown reduction 'prod'/);
assert.throws(
  () => distributed.allReduce(zeros([2, 1]).broadcastTo([2, 3])),
  /broadcast view whose elements share memory/,
);
assert.throws(() => distributed.send(zeros([1]), rank), /is this rank/);
// the binding itself never trusts a size, an offset or a dtype from JavaScript (issue 8)
const loaded = loadMpiAddon();
assert.ok("addon" in loaded);
const raw = loaded.addon;
const f = new Float32Array(8);
assert.throws(
  () => raw.allReduce(f, 4, 5, 0, 0, false),
  /elements \[4, 9\) are outside its Float32Array of length 8/,
);
assert.throws(() => raw.allReduce(f, -1, 2, 0, 0, false), /the element offset must be an integer/);
assert.throws(() => raw.allReduce(f, 0, Number.NaN, 0, 0, false), /the element count must be an integer/);
assert.throws(() => raw.allReduce(f, 0, 1.5, 0, 0, false), /the element count must be an integer/);
assert.throws(() => raw.allReduce(f, 0, 8, 1, 0, false), /bool data must be a Uint8Array, got Float32Array/);
assert.throws(() => raw.allReduce(new Int32Array(2), 0, 2, 0, 1, false), /'mean' needs floating-point data/);
assert.throws(() => raw.allReduce(f, 0, 8, 0, 9, false), /the reduction must be an integer in \[0, 3\]/);
assert.throws(
  () => raw.allGather(f, 0, 2, new Float32Array(2 * size + 1), 0, 2 * size + 1, false),
  /expected world size/,
);
assert.throws(
  () => raw.allGather(f, 0, 2, new Float64Array(2 * size), 0, 2 * size, false),
  /the output is a Float64Array, the input a Float32Array/,
);
assert.throws(() => raw.broadcast(f, 0, 8, size, false), /the source rank must be an integer in \[0, /);
assert.throws(() => raw.send(f, 0, 8, 0, 40000, false), /the tag must be an integer in \[0, 32767\]/);
assert.throws(
  () => raw.allReduce([1, 2] as unknown as Float32Array, 0, 2, 0, 0, false),
  /must be a typed array/,
);

// Async overlaps compute, proved by ordering, not timing: rank 0 starts an async all-reduce that cannot complete
// before the other ranks join it, and they join only after a file rank 0 writes once the call has returned
// (a side channel outside MPI). Rank 0 then computes, polling isCompleted() between chunks without calling
// wait(): the collective must finish while it computes, driven by the binding's communication thread.
{
  const tag = tensor([rank === 0 ? Math.floor(Math.random() * 1e9) : 0], { dtype: "int32" });
  distributed.broadcast(tag, 0);
  const gate = path.join(os.tmpdir(), `chainrule-overlap-${tag.item()}`);
  const n = 100_000;
  const t = tensor(
    Array.from({ length: n }, (_, i) => (i % 5) + rank),
    { dtype: "float64" },
  );
  if (rank === 0) {
    const w = distributed.allReduce(t, "sum", { async: true });
    assert.equal(w.isCompleted(), false, "the all-reduce completed before the other ranks could join it");
    writeFileSync(gate, "go");
    const a = randn([96, 96], { dtype: "float64" });
    let chunks = 0;
    const t0 = Date.now();
    let done = false;
    while (!done && Date.now() - t0 < 60_000) {
      a.matmul(a).tanh().sum().item(); // compute on the JavaScript thread
      chunks++;
      done = w.isCompleted();
    }
    assert.ok(done, `the all-reduce did not complete in the background during ${chunks} compute chunks`);
    w.wait();
    console.log(`overlap: the all-reduce completed in the background after ${chunks} compute chunk(s)`);
  } else {
    const t0 = Date.now();
    while (!existsSync(gate)) {
      assert.ok(Date.now() - t0 < 60_000, "rank 0 never opened the gate");
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    distributed.allReduce(t, "sum");
  }
  const sumRanks = (size * (size - 1)) / 2;
  const got = t.dataSync();
  for (let i = 0; i < n; i += 997)
    assert.equal(got[i], size * (i % 5) + sumRanks, `overlap all-reduce [${i}]`);
  distributed.barrier();
  if (rank === 0) rmSync(gate, { force: true });
}

distributed.barrier();
await distributed.barrier({ async: true }).promise();
console.log(`ok ${rank}`);
