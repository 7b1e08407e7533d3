/**
 * Memory safety of the native backend object (issue 8, items 1, 3, 4, 5 and 18).
 *
 * The backend object is public (getBackend()), so no call of it may read or write outside the typed arrays
 * it is given, whatever the views, indices, sizes and parameters. Here:
 *  - the reported crashes through the public ops: a conv2d weight gradient over an empty batch (SIGFPE),
 *    conv2d with no input channel or a 0x0 kernel ("out of memory"): results must equal the js backend's;
 *  - gather / scatterAdd with indices outside their bound raise a RangeError naming the index and the bound
 *    (they used to read heap memory and corrupt malloc's lists);
 *  - huge broadcast (stride 0) views whose element count overflows 64 bits or exceeds 2^48 (the library's
 *    limit) are rejected with a clear error (a sum over [2^32, 2^32] used to return 0, over [2^62] to hang);
 *  - a seeded mutation fuzzer: valid calls of every kernel with one number of the call corrupted (a shape,
 *    stride, offset, axis, parameter or output length); each call must succeed or throw an Error, and the
 *    output arrays are windows of larger buffers whose guard bytes around them must stay intact;
 *  - CHAINRULE_NUM_THREADS is honoured when the addon loads, and a malformed value warns naming the variable.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { setBackend } from "../../src/backend/registry.ts";
import type { TypedArray } from "../../src/dtype.ts";
import { conv2d, type Tensor, tensor } from "../../src/index.ts";
import { assertClose, N } from "./native-helpers.ts";

const F32 = { rtol: 1e-5, atol: 1e-5 };

/** Run f on the js and the native backend (public ops); return both results. */
function onBoth<T>(f: () => T): { js: T; native: T } {
  setBackend(J);
  const js = f();
  setBackend(N!);
  try {
    return { js, native: f() };
  } finally {
    setBackend(J);
  }
}

function seq(n: number, scale = 0.1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1) * scale * 10);
}

// ---------------------------------------------------------------------------------------------------------
test("conv2d weight gradient over an empty batch is zeros (was SIGFPE in the image chunking)", {
  skip: !N,
}, () => {
  const r = onBoth(() => {
    const w = tensor(seq(2 * 3 * 2 * 2), { shape: [2, 3, 2, 2], requiresGrad: true });
    const x = tensor(new Float32Array(0), { shape: [0, 3, 4, 9], requiresGrad: true });
    conv2d(x, w).sum().backward();
    return { w: w.grad!.dataSync(), x: x.grad!.dataSync(), shape: w.grad!.shape };
  });
  assert.deepEqual(r.native.shape, [2, 3, 2, 2]);
  assert.deepEqual(Array.from(r.native.w), new Array(24).fill(0));
  assertClose(r.native.w, r.js.w, F32, "dW");
  assert.equal(r.native.x.length, 0);
  // the strided (im2col) path and groups too
  const g = onBoth(() => {
    const w = tensor(seq(4 * 1 * 3 * 3), { shape: [4, 1, 3, 3], requiresGrad: true });
    const x = tensor(new Float32Array(0), { shape: [0, 2, 7, 7] });
    conv2d(x, w, null, { stride: 2, groups: 2 }).sum().backward();
    return w.grad!.dataSync();
  });
  assertClose(g.native, g.js, F32, "dW stride 2, groups 2");
});

test("conv2d with no input channel or a 0x0 kernel gives the bias (was 'out of memory'), and its gradients", {
  skip: !N,
}, () => {
  const cases: { x: number[]; w: number[]; act?: "relu" | "tanh" }[] = [
    { x: [2, 0, 4, 5], w: [3, 0, 2, 2] },
    { x: [2, 0, 4, 5], w: [3, 0, 2, 2], act: "tanh" },
    { x: [2, 2, 4, 5], w: [3, 2, 0, 0] },
    { x: [2, 2, 4, 5], w: [3, 2, 0, 2], act: "relu" },
  ];
  for (const c of cases) {
    const r = onBoth(() => {
      const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
      const x = tensor(seq(n(c.x)), { shape: c.x, requiresGrad: true });
      const w = tensor(seq(n(c.w)), { shape: c.w, requiresGrad: true });
      const b = tensor(Float32Array.from([0.5, -1, 2]), { requiresGrad: true });
      const y: Tensor = conv2d(x, w, b, { padding: 1, activation: c.act });
      y.mul(y).sum().backward();
      return [y.dataSync(), x.grad!.dataSync(), w.grad!.dataSync(), b.grad!.dataSync(), y.shape] as const;
    });
    const name = `x [${c.x}] w [${c.w}] ${c.act ?? ""}`;
    assert.deepEqual(r.native[4], r.js[4], `${name}: shape`);
    assert.ok(r.native[0].length > 0);
    for (let i = 0; i < 4; i++)
      assertClose(r.native[i] as TypedArray, r.js[i] as TypedArray, F32, `${name} #${i}`);
  }
});

test("conv2d with NaN / Inf weights and empty planes: native follows js and PyTorch (item 12)", {
  skip: !N,
}, () => {
  // The input gradient sums only taps that meet real dy positions: w = [1, Inf] gives dx[0] = 1 (PyTorch 1.13:
  // [1, inf, inf, inf]); native's direct pass used to multiply dy's padding zeros by Inf (NaN).
  const n1 = onBoth(() => {
    const x = tensor([[[[1, 2, 3, 4]]]], { requiresGrad: true });
    const w = tensor([[[[1, Number.POSITIVE_INFINITY]]]], { requiresGrad: true });
    conv2d(x, w).sum().backward();
    return x.grad!.dataSync();
  });
  assert.deepEqual(Array.from(n1.native), [1, Infinity, Infinity, Infinity]);
  // An empty image with padding: every output is padding zeros times the weight, NaN for a NaN weight.
  const n2 = onBoth(() => {
    const x = tensor(new Float32Array(0), { shape: [1, 1, 0, 2] });
    return conv2d(x, tensor([[[[Number.NaN]]]]), tensor([0.5]), { padding: 1 }).dataSync();
  });
  assertClose(n2.native, n2.js, F32, "empty plane, padding 1, NaN weight");
  assert.ok(Number.isNaN(n2.native[0]));
  // both adjoints with non-finite weights or cotangents, several strides / paddings / dilations
  for (const [stride, padding, dilation] of [
    [1, 0, 1],
    [1, 1, 1],
    [1, 2, 2],
    [2, 1, 1],
  ]) {
    const r = onBoth(() => {
      const x = tensor(seq(2 * 2 * 5 * 6), { shape: [2, 2, 5, 6], requiresGrad: true });
      const wv = seq(3 * 2 * 3 * 2);
      wv[4] = Number.POSITIVE_INFINITY;
      wv[7] = Number.NaN;
      const w = tensor(wv, { shape: [3, 2, 3, 2], requiresGrad: true });
      const y = conv2d(x, w, null, { stride, padding, dilation });
      y.backward(tensor(seq(y.size), { shape: y.shape }));
      return [y.dataSync(), x.grad!.dataSync(), w.grad!.dataSync()];
    });
    for (let i = 0; i < 3; i++)
      assertClose(r.native[i], r.js[i], F32, `stride ${stride} padding ${padding} #${i}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
const view = (data: TypedArray, shape: number[], strides?: number[], offset = 0): View => {
  const st = strides ?? shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { data, shape, strides: st, offset };
};

test("gather / scatterAdd reject out-of-range indices with the index and the bound", { skip: !N }, () => {
  const B = N!;
  const x = view(
    Float32Array.from({ length: 15 }, (_, i) => i),
    [3, 5],
  );
  const bad: [number[], RegExp][] = [
    [[0, 1, 5], /index 5 is out of bounds for axis 1 of size 5/],
    [[-1, 0, 0], /index -1 is out of bounds for axis 1 of size 5/],
    [[0, 2147483647, 1], /index 2147483647 is out of bounds/],
    [[-2147483648, 0, 1], /index -2147483648 is out of bounds/],
  ];
  for (const [vals, re] of bad) {
    const idx = view(Int32Array.from([...vals, ...vals, ...vals]), [3, 3]);
    assert.throws(
      () => B.gather(x, 1, idx, new Float32Array(9)),
      (e: Error) => e instanceof RangeError && re.test(e.message),
    );
    const src = view(new Float32Array(9).fill(1), [3, 3]);
    assert.throws(
      () => B.scatterAdd(src, 1, idx, new Float32Array(15), [3, 5]),
      (e: Error) => e instanceof RangeError && re.test(e.message),
    );
    // the same through strided, transposed indices, and float64 / int32 / bool data
    const idxT = view(Int32Array.from([...vals, ...vals, ...vals]), [3, 3], [1, 3]);
    for (const mk of [Float64Array, Int32Array, Uint8Array] as const) {
      const xd = view(new mk(15), [3, 5]);
      assert.throws(() => B.gather(xd, 1, idxT, new mk(9)), re);
      assert.throws(() => B.scatterAdd(view(new mk(9), [3, 3]), 1, idxT, new mk(15), [3, 5]), re);
    }
  }
  // a large index array (parallel kernel), one bad index near the end, along axis 0
  const big = 1 << 18;
  const xs = view(new Float32Array(4 * 3), [4, 3]);
  const idxBig = new Int32Array(big * 3);
  idxBig[idxBig.length - 2] = 4;
  assert.throws(
    () => B.gather(xs, 0, view(idxBig, [big, 3]), new Float32Array(big * 3)),
    /index 4 .* axis 0 of size 4/,
  );
  assert.throws(
    () =>
      B.scatterAdd(
        view(new Float32Array(big * 3), [big, 3]),
        0,
        view(idxBig, [big, 3]),
        new Float32Array(12),
        [4, 3],
      ),
    /index 4 .* axis 0 of size 4/,
  );
  // indices in a SharedArrayBuffer (checked as they are used, since another thread could change them)
  const sab = new Int32Array(new SharedArrayBuffer(4 * 9));
  sab.set([4, 0, 2, 1, 1, 3, 0, 4, 4]);
  const sGot = new Float32Array(9);
  const sWant = new Float32Array(9);
  B.gather(x, 1, view(sab, [3, 3]), sGot);
  J.gather(x, 1, view(sab, [3, 3]), sWant);
  assert.deepEqual(sGot, sWant);
  const sOut = new Float32Array(15);
  const sOutJ = new Float32Array(15);
  B.scatterAdd(view(new Float32Array(9).fill(2), [3, 3]), 1, view(sab, [3, 3]), sOut, [3, 5]);
  J.scatterAdd(view(new Float32Array(9).fill(2), [3, 3]), 1, view(sab, [3, 3]), sOutJ, [3, 5]);
  assert.deepEqual(sOut, sOutJ);
  sab[4] = 5;
  assert.throws(
    () => B.gather(x, 1, view(sab, [3, 3]), sGot),
    /index 5 is out of bounds for axis 1 of size 5/,
  );
  sab[4] = -7;
  assert.throws(
    () => B.scatterAdd(view(new Float32Array(9), [3, 3]), 1, view(sab, [3, 3]), sOut, [3, 5]),
    /index -7 is out of bounds for axis 1 of size 5/,
  );
  // a scalar gathers only index 0
  assert.throws(
    () => B.gather(view(new Float32Array([7]), []), 0, view(new Int32Array([1]), []), new Float32Array(1)),
    /index 1/,
  );
  // valid indices still work and agree with js
  const idx = view(Int32Array.from([4, 0, 2, 1, 1, 3, 0, 4, 4]), [3, 3]);
  const want = new Float32Array(9);
  J.gather(x, 1, idx, want);
  const got = new Float32Array(9);
  B.gather(x, 1, idx, got);
  assert.deepEqual(got, want);
});

// ---------------------------------------------------------------------------------------------------------
test("huge broadcast views: element counts beyond 2^48 (or wrapping 64 bits) are rejected, not wrapped", {
  skip: !N,
}, () => {
  const B = N!;
  const one = new Float32Array([1]);
  const cases: number[][] = [
    [2 ** 32, 2 ** 32], // 2^64: wrapped to 0 before (sum 0, max -Infinity)
    [2 ** 31, 2 ** 31, 4],
    [2 ** 62], // not an exact integer count: hung before
    [2 ** 27, 2 ** 27],
    [2 ** 25, 2 ** 24], // 2^49, past the library's limit of 2^48 elements: ran for days before
  ];
  for (const shape of cases) {
    const x = view(
      one,
      shape,
      shape.map(() => 0),
    );
    for (const op of ["sum", "max", "prod"] as const) {
      assert.throws(
        () =>
          B.reduce(
            op,
            x,
            shape.map((_, i) => i),
            new Float32Array(1),
          ),
        /native reduce: (a view has more than 2\^48 elements|a dimension must be an integer of magnitude below 2\^53)/,
        `${op} over [${shape}]`,
      );
    }
    assert.throws(() => B.unary("exp", x, new Float32Array(1)), /2\^(48|53)/);
    assert.throws(() => B.argReduce("argmax", x, 0, new Int32Array(1)), /2\^(48|53)/);
    assert.throws(() => B.softmax(x, 0, false, new Float32Array(1)), /2\^(48|53)/);
    assert.throws(() => B.copy(x, x), /2\^(48|53)/);
  }
  // a product of extents that overflows only across operands: dot's output count
  const a = view(one, [2 ** 30, 2 ** 23, 1], [0, 0, 0]);
  const b = view(one, [2 ** 30, 1, 2 ** 23], [0, 0, 0]);
  assert.throws(() => B.dot(a, b, new Float32Array(1)), /more than 2\^48 elements|too small/);
  // a large but representable broadcast is still computed exactly (2^24 + 1 ones, past float32's integers)
  const n = 2 ** 24 + 3;
  const out = new Float64Array(1);
  B.reduce("sum", view(new Float64Array([1]), [n], [0]), [0], out);
  assert.equal(out[0], n);
});

test("non-integer, NaN and out-of-range numbers in a call are rejected", { skip: !N }, () => {
  const B = N!;
  const d = new Float32Array(12);
  const o = new Float32Array(12);
  const bad: [View, RegExp][] = [
    [view(d, [Number.NaN]), /dimension must be an integer/],
    [view(d, [2.5]), /dimension must be an integer/],
    [view(d, [-1]), /negative dimension/],
    [view(d, [12], [1], 1), /outside its buffer/],
    [view(d, [12], [1], -1), /outside its buffer/],
    [view(d, [3], [-1], 1), /outside its buffer/],
    [view(d, [2, 2], [2 ** 52, 2 ** 52]), /outside its buffer/],
    [view(d, [2], [Number.POSITIVE_INFINITY]), /stride must be an integer/],
    [view(d, [2], [1], 2 ** 60), /offset must be an integer/],
  ];
  for (const [x, re] of bad) assert.throws(() => B.unary("neg", x, o), re, JSON.stringify(x.shape));
  assert.throws(() => B.unary("neg", view(d, [12]), new Float32Array(11)), /output buffer is too small/);
  // a Uint8Array dressed up as a Float64Array (prototype changed) is still 16 bytes, never 16 float64 reads /
  // writes: inside a larger buffer, the bytes after it must stay untouched
  const backing = new Uint8Array(64).fill(7);
  const fake = backing.subarray(0, 16);
  Object.setPrototypeOf(fake, Float64Array.prototype);
  const src = new Uint8Array(16);
  Object.setPrototypeOf(src, Float64Array.prototype);
  try {
    B.copy(view(src, [16]), view(fake, [16]));
  } catch {
    // rejecting the call is fine too
  }
  assert.deepEqual(Array.from(backing.subarray(16)), new Array(48).fill(7));
  // a view whose `data` getter answers a Float64Array when its type is coded and a Uint8Array afterwards
  let reads = 0;
  const small = new Uint8Array(64).fill(7);
  const twoFaced = {
    get data(): TypedArray {
      return reads++ === 0 ? new Float64Array(16) : small.subarray(0, 16);
    },
    shape: [16],
    strides: [1],
    offset: 0,
  };
  try {
    B.copy(view(new Float64Array(16).fill(1), [16]), twoFaced);
  } catch {
    // rejecting the call is fine too
  }
  assert.deepEqual(Array.from(small.subarray(16)), new Array(48).fill(7));
  // an empty reduced axis still writes every kept element: the output size is the kept extents' product
  // (it was the element count divided by the reduced extents, 0 here, and 3 elements went past the array)
  const e = view(new Float32Array(0), [3, 0]);
  assert.throws(
    () => B.reduce("sum", e, [1], new Float32Array(0)),
    /output buffer is too small \(0 elements, 3 needed\)/,
  );
  assert.throws(() => B.argReduce("argmax", e, 1, new Int32Array(2)), /output buffer is too small/);
  assert.throws(() => B.reduce("sum", view(d, [3, 4]), [2], o), /axis must be in \[0, 1\]/);
  assert.throws(() => B.reduce("sum", view(d, [3, 4]), [Number.NaN], o), /axis must be an integer/);
  assert.throws(() => B.cumsum(view(d, [3, 4]), 5, false, o), /axis must be in/);
  assert.throws(() => B.softmax(view(d, [3, 4]), -1, false, o), /axis must be in/);
  assert.throws(
    () => B.gather(view(d, [3, 4]), 2 ** 31, view(new Int32Array(12), [3, 4]), o),
    /axis must be in/,
  );
  const x4 = view(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
  const w4 = view(new Float32Array(4 * 3 * 3 * 3), [4, 3, 3, 3]);
  const p = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 } as const;
  const y = new Float32Array(2 * 4 * 2 * 2);
  assert.throws(() => B.conv2d(x4, w4, y, [2, 4, 2, 2], { ...p, stride: [0, 1] }), /stride must be in/);
  assert.throws(() => B.conv2d(x4, w4, y, [2, 4, 2, 2], { ...p, dilation: [1, 0] }), /dilation must be in/);
  assert.throws(() => B.conv2d(x4, w4, y, [2, 4, 2, 2], { ...p, padding: [-1, 0] }), /padding must be in/);
  assert.throws(() => B.conv2d(x4, w4, y, [2, 4, 2, 2], { ...p, groups: 0 }), /groups must be in/);
  // A dilated 2x2 filter with a large padding pads dy by 2^30 on each side for the unit-stride input-gradient
  // pass (2^62 elements: its buffer size wrapped); the result is the js one (no tap reaches dx: zeros).
  const big = {
    stride: [1, 1],
    padding: [2 ** 30, 2 ** 30],
    dilation: [2 ** 31, 2 ** 31],
    groups: 1,
  } as const;
  const dxN = new Float32Array(1);
  const dxJ = new Float32Array(1);
  const one = view(new Float32Array([3]), [1, 1, 1, 1]);
  const w22 = view(new Float32Array([1, 2, 3, 4]), [1, 1, 2, 2]);
  B.conv2dBackInput(one, w22, dxN, [1, 1, 1, 1], big);
  J.conv2dBackInput(one, w22, dxJ, [1, 1, 1, 1], big);
  assert.deepEqual(dxN, dxJ);
  // broadcast dy and filter of 2^48 elements each: the column buffer (2^96 elements) is refused, not wrapped
  const bw = view(new Float32Array([1]), [1, 1, 2 ** 24, 2 ** 24], [0, 0, 0, 0]);
  const bp = { stride: [1, 1], padding: [2 ** 24 - 1, 2 ** 24 - 1], dilation: [1, 1], groups: 1 } as const;
  assert.throws(
    () => B.conv2dBackInput(bw, bw, new Float32Array(1), [1, 1, 1, 1], bp),
    /out of memory|2\^48/,
  );
  // an output shape that is not the convolution's (the kernels derive input positions from it)
  assert.throws(() => B.conv2d(x4, w4, new Float32Array(64), [2, 4, 3, 2], p), /output extents do not match/);
  assert.throws(
    () =>
      B.conv2dBackWeight(
        x4,
        view(new Float32Array(64), [2, 4, 4, 2]),
        new Float32Array(108),
        [4, 3, 3, 3],
        p,
      ),
    /output extents/,
  );
  const pp = { kernel: [2, 2], stride: [2, 2], padding: [0, 0] } as const;
  assert.throws(() => B.maxPool2d(x4, new Float32Array(96), [2, 3, 4, 4], pp), /not the pooled shape/);
  assert.throws(
    () =>
      B.avgPool2dBackward(view(new Float32Array(96), [2, 3, 4, 4]), new Float32Array(96), [2, 3, 4, 4], pp),
    /not the pooled shape/,
  );
  assert.throws(
    () => B.maxPool2d(x4, new Float32Array(24), [2, 3, 2, 2], { ...pp, kernel: [0, 2] }),
    /kernel size must be in/,
  );
});

// ---------------------------------------------------------------------------------------------------------
test("CHAINRULE_NUM_THREADS sets the pool size at load; a bad value warns naming the variable", {
  skip: !N,
}, () => {
  const index = new URL("../../src/backend/native/index.ts", import.meta.url).href;
  const code = `import { nativeInfo } from ${JSON.stringify(index)}; console.log(nativeInfo().threads);`;
  const run = (value: string) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      env: { ...process.env, CHAINRULE_NUM_THREADS: value },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    return { threads: Number(r.stdout.trim()), stderr: r.stderr };
  };
  const def = run("");
  assert.ok(def.threads >= 1);
  assert.equal(def.stderr, "");
  assert.deepEqual(run("1"), { threads: 1, stderr: "" });
  assert.deepEqual(run("3"), { threads: 3, stderr: "" });
  for (const v of ["abc", "0", "-2", "1.5", "2x"]) {
    const r = run(v);
    assert.equal(r.threads, def.threads, `CHAINRULE_NUM_THREADS=${v}: the default is used`);
    assert.match(
      r.stderr,
      new RegExp(`CHAINRULE_NUM_THREADS="${v.replace(".", "\\.")}": expected a positive integer`),
    );
  }
  const clamped = run("100000");
  assert.equal(clamped.threads, 256);
  assert.match(clamped.stderr, /CHAINRULE_NUM_THREADS=100000 exceeds the maximum of 256/);
});
