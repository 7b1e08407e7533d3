/**
 * wasm backend behaviour beyond agreement with js (kernels.test.ts checks every kernel against the js
 * reference, with the worker pool and with one thread, and checks which calls run js): the float32 SIMD exp,
 * log, sigmoid and tanh within about 2 ulp of js (tighter than the suite's tolerance), scatterAdd with an index
 * out of range leaving the work to js, the worker pool giving bit-identical results to one thread, and the
 * memory management (ordinary storage, the scratch arena, its growth, the fallback when it cannot grow; the
 * soak of a synchronous loop runs in a child process, wasm-gc-child.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Conv2dParams, View } from "../../src/backend/backend.ts";
import { createWasmBackend } from "../../src/backend/wasm/index.ts";
import { absView, inWasm, J, outputs, prng, same, W, within } from "./wasm-helpers.ts";
import { makeView } from "./conformance/views.ts";

const U32 = 6e-8; // unit roundoff of float32

test("unary: the float32 SIMD exp, log, sigmoid and tanh stay within about 2 ulp of js", () => {
  const n = 20011;
  const xs = Float32Array.from({ length: n }, (_, i) => -110 + (220 * i) / (n - 1));
  xs.set([88.72, 88.73, -87.3, -103.9, 0.6249, 0.6251, -0.625, 1e-20, -1e-7, 9.1], 0);
  const x: View = { data: W.alloc("float32", n), shape: [n], strides: [1], offset: 0 };
  x.data.set(xs);
  // log on positives from subnormal to huge, and its special values
  const pos = Float32Array.from({ length: n }, (_, i) => 2 ** (-140 + (268 * i) / (n - 1)));
  pos.set([0, -1, Infinity, Number.NaN, 1, 0.70710677, Math.SQRT1_2, 1 + 2 ** -23, 1 - 2 ** -24, 1e-45], 0);
  const lx: View = { data: W.alloc("float32", n), shape: [n], strides: [1], offset: 0 };
  lx.data.set(pos);
  const [le, lw] = outputs("float32", n);
  J.unary("log", lx, le);
  W.unary("log", lx, lw);
  same(lw.subarray(0, 4), le.subarray(0, 4), 0, "log special values");
  for (let i = 4; i < n; i++) {
    assert.ok(
      lw[i] === le[i] || Math.abs(lw[i] - le[i]) <= 2.5e-7 * Math.abs(le[i]) + 1e-45,
      `log(${pos[i]}) = ${lw[i]}, js ${le[i]}`,
    );
  }
  for (const op of ["exp", "sigmoid", "tanh"] as const) {
    const [e, w] = outputs("float32", n);
    J.unary(op, x, e);
    W.unary(op, x, w);
    for (let i = 0; i < n; i++) {
      const tol = 2.5e-7 * Math.abs(e[i]) + 1e-38; // ~2 ulp, or absolute in the subnormal range
      assert.ok(Math.abs(w[i] - e[i]) <= tol || w[i] === e[i], `${op}(${xs[i]}) = ${w[i]}, js ${e[i]}`);
    }
  }
});

test("scatterAdd: an index out of range is a RangeError on js and on wasm, with nothing written", () => {
  const src: View = { data: new Float32Array([1, 2, 3]), shape: [3], strides: [1], offset: 0 };
  const idx: View = { data: new Int32Array([0, 4, 1]), shape: [3], strides: [1], offset: 0 };
  const [e, w] = outputs("float32", 4);
  const bad = /scatterAdd: index 4 is out of bounds for axis 0 of size 4/;
  assert.throws(() => J.scatterAdd(src, 0, idx, e, [4]), bad);
  assert.throws(() => W.scatterAdd(src, 0, idx, w, [4]), bad);
  assert.deepEqual(Array.from(e), [0, 0, 0, 0]);
  assert.deepEqual(Array.from(w), [0, 0, 0, 0]);
});

test("dot and conv on a worker pool: bit-identical to one thread (column and row splits)", () => {
  const one = createWasmBackend({ threads: 1 });
  const pool = createWasmBackend({ threads: 3 });
  assert.equal(one.threads, 1);
  assert.equal(pool.threads, 3);
  const rng = prng(26);
  for (const [m, k, n] of [
    [61, 300, 1033],
    [1030, 129, 37],
  ]) {
    const a = makeView([m, k], "float32", "transposed", rng, "small");
    const b = makeView([k, n], "float32", "scrambled", rng, "small");
    const [e1, e2] = [one.alloc("float32", m * n), pool.alloc("float32", m * n)];
    one.dot(a, b, e1);
    pool.dot(a, b, e2);
    same(e2, e1, 0, `pool dot ${m}x${k}x${n}`);
    const [ref] = outputs("float32", m * n);
    J.dot(a, b, ref);
    const [bound] = outputs("float64", m * n);
    J.dot(absView(a), absView(b), bound);
    within(e2, ref, bound, 2 * U32 * (k + 2), `pool dot vs js ${m}x${k}x${n}`);
  }
  const p: Conv2dParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
  const x = makeView([2, 16, 20, 20], "float32", "contiguous", rng, "small");
  const w = makeView([32, 16, 3, 3], "float32", "contiguous", rng, "small");
  const y1 = one.alloc("float32", 2 * 32 * 400);
  const y2 = pool.alloc("float32", 2 * 32 * 400);
  one.conv2d(x, w, y1, [2, 32, 20, 20], p);
  pool.conv2d(x, w, y2, [2, 32, 20, 20], p);
  same(y2, y1, 0, "pool conv2d");
  pool.stopThreads();
  assert.equal(pool.threads, 1);
  const y3 = pool.alloc("float32", 2 * 32 * 400);
  pool.conv2d(x, w, y3, [2, 32, 20, 20], p);
  same(y3, y1, 0, "conv2d after stopThreads");
});

test("memory: alloc gives zero-filled ordinary arrays; kernels leave no scratch behind", () => {
  const wasmBuffer = (x: { buffer: ArrayBufferLike }) => x.buffer instanceof SharedArrayBuffer;
  for (const dt of ["float32", "float64", "int32", "bool"] as const) {
    const v = W.alloc(dt, 300);
    assert.equal(v.length, 300);
    assert.ok(
      v.every((x) => x === 0),
      "zero-filled",
    );
    assert.ok(!wasmBuffer(v), "tensor storage is not in wasm memory");
  }
  const rng = prng(19);
  const a = makeView([15, 20], "float32", "scrambled", rng, "small");
  const out = new Float32Array(300);
  W.unary("exp", a, out);
  W.reduce("sum", a, [0], new Float32Array(20));
  W.dot(
    { data: out, shape: [15, 20], strides: [20, 1], offset: 0 },
    { data: out, shape: [20, 15], strides: [1, 20], offset: 0 },
    new Float32Array(225),
  );
  assert.equal(W.heapStats().liveBytes, 0, "every call pops its scratch");
  assert.ok(W.backendBytes() > 0 && W.backendBytes() === W.heapStats().peakBytes);
});

test("memory: the arena grows for a large call, then serves later calls without growing", async () => {
  assert.equal(W.sharedMemory, true, "Node has shared WebAssembly memory");
  for (const kind of ["shared", "fixed"] as const) {
    const b = kind === "shared" ? W : createWasmBackend({ memory: kind, threads: 1 });
    assert.equal(b.sharedMemory, kind === "shared");
    const before = b.heapStats().memoryBytes;
    const fb = JSON.stringify(b.fallbacks());
    const n = (before + (16 << 20)) / 4; // input and output do not fit: the memory grows
    const x = new Float32Array(n).fill(-1.5);
    const v: View = { data: x, shape: [n], strides: [1], offset: 0 };
    const out = b.alloc("float32", n);
    b.unary("abs", v, out);
    const grown = b.heapStats().memoryBytes;
    assert.ok(grown > before, `${kind}: the memory grew`);
    assert.ok(
      out.every((y) => y === 1.5),
      `${kind}: results survive growth`,
    );
    for (let i = 0; i < 5; i++) b.binary("add", v, v, out);
    assert.equal(out[n - 1], -3);
    assert.equal(b.heapStats().memoryBytes, grown, `${kind}: same-sized calls reuse the arena`);
    assert.equal(JSON.stringify(b.fallbacks()), fb, `${kind}: everything ran in wasm`);
  }
  const { initWasmBackend } = await import("../../src/backend/wasm/index.ts");
  assert.equal(await initWasmBackend(), W);
});

test("memory: a call whose scratch cannot fit in the memory runs the js kernel", () => {
  // 1 MiB memory: a 2 MiB operand cannot be staged
  const small = createWasmBackend({ memory: "fixed", maxMemoryMiB: 1 });
  assert.equal(small.sharedMemory, false);
  const big = small.alloc("float32", 512 * 1024).fill(0.5);
  const view: View = { data: big, shape: [big.length], strides: [1], offset: 0 };
  const e = new Float32Array(big.length);
  J.unary("exp", view, e);
  const w = small.alloc("float32", big.length);
  const fb = small.fallbacks().unary ?? 0;
  small.unary("exp", view, w);
  assert.equal(small.fallbacks().unary, fb + 1);
  same(w, e, 0, "fallback exp");
  assert.equal(small.heapStats().liveBytes, 0, "the failed call popped what it took");
  // smaller calls still run in wasm
  const m: View = {
    data: small.alloc("float32", 64 * 64).fill(1),
    shape: [64, 64],
    strides: [64, 1],
    offset: 0,
  };
  const c = small.alloc("float32", 64 * 64);
  small.dot(m, m, c);
  assert.equal(c[0], 64);
  assert.equal(small.fallbacks().dot, undefined);
});

test("memory: a synchronous loop of kernel calls keeps wasm memory and RSS flat (child process)", () => {
  const child = fileURLToPath(new URL("./wasm-gc-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", child], { encoding: "utf8" });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
    allocatedMiB: number;
    memory: number[];
    rss: number[];
  };
  const msg = JSON.stringify(report);
  assert.ok(report.allocatedMiB > 1000, `the loop allocated well over 1 GB of outputs: ${msg}`);
  assert.ok(
    report.memory.every((m) => m === report.memory[0]),
    `wasm memory stops growing: ${msg}`,
  );
  const growth = report.rss[report.rss.length - 1] - report.rss[0];
  assert.ok(growth < 64 * 2 ** 20, `RSS stops growing: ${msg}`);
});
