/**
 * The wasm backend's flash-style attention kernels beyond agreement with js on small shapes (the conformance
 * rows in conformance/rows-attention.ts check every case on wasm against js, and that no call falls back to
 * js): a long causal sequence (L = S = 2048, E = 64, four heads) runs with scratch memory linear in the
 * sequence length, far below one [heads, L, S] score matrix, and its outputs and gradients match float64 loops
 * on sampled rows.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { createWasmBackend } from "../../src/backend/wasm/index.ts";
import { prng } from "./conformance/views.ts";

function view(shape: number[], rnd: () => number): View {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = 2 * rnd() - 1;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return { data, shape, strides, offset: 0 };
}

/** Forward and backward of causal attention on [h, n, e] operands; returns outputs and the arena peak. */
function run(h: number, n: number, e: number, seed: number) {
  const W = createWasmBackend({ threads: 1 });
  const rnd = prng(seed);
  const [q, k, v] = [0, 1, 2].map(() => view([h, n, e], rnd));
  const g = view([h, n, e + 1], rnd);
  const scale = 1 / Math.sqrt(e);
  const o = new Float32Array(h * n * (e + 1));
  W.attention(q, k, v, null, true, scale, o);
  const ov: View = { data: o, shape: [h, n, e + 1], strides: [n * (e + 1), e + 1, 1], offset: 0 };
  const d = new Float32Array(h * 3 * n * e);
  W.attentionBackward(q, k, v, null, ov, g, true, scale, d);
  assert.deepEqual(W.fallbacks(), {}, "no call ran the js kernel");
  return { q, k, v, g, o, d, scale, peak: W.heapStats().peakBytes };
}

test("wasm attention: L = S = 2048 causal runs in scratch linear in L, and matches float64 loops", () => {
  const [h, n, e] = [4, 2048, 64];
  const small = run(h, n / 2, e, 7);
  const big = run(h, n, e, 11);
  const scoreMatrix = h * n * n * 4;
  // the peak is mostly the staged operands and outputs (about 16 MiB here); the kernel's own work is O(L E)
  assert.ok(
    big.peak < scoreMatrix / 2,
    `peak scratch ${(big.peak / 2 ** 20).toFixed(1)} MiB vs ${scoreMatrix / 2 ** 20} MiB for one score matrix`,
  );
  // doubling the sequence doubles the scratch (a score matrix would quadruple it)
  assert.ok(big.peak < 2.2 * small.peak, `peak ${big.peak} at L = ${n}, ${small.peak} at L = ${n / 2}`);

  const { q, k, v, g, o, d, scale } = big;
  const [qa, ka, va, ga] = [q, k, v, g].map((x) => x.data);
  const w = e + 1;
  const row = (width: number, hh: number, i: number) => (hh * n + i) * width;
  const dot = (a: ArrayLike<number>, ia: number, b: ArrayLike<number>, ib: number, len: number) => {
    let s = 0;
    for (let c = 0; c < len; c++) s += a[ia + c] * b[ib + c];
    return s;
  };
  /** Probabilities of row i of head hh (keys 0..i), in float64, and the row's logsumexp. */
  const probs = (hh: number, i: number) => {
    const sc: number[] = [];
    for (let j = 0; j <= i; j++) sc.push(scale * dot(qa, row(e, hh, i), ka, row(e, hh, j), e));
    const m = Math.max(...sc);
    const z = sc.reduce((a, x) => a + Math.exp(x - m), 0);
    return { p: sc.map((x) => Math.exp(x - m) / z), lse: m + Math.log(z) };
  };
  const near = (got: number, want: number, tol: number, what: string) =>
    assert.ok(Math.abs(got - want) <= tol * (1 + Math.abs(want)), `${what}: ${got} vs ${want}`);
  const per = 3 * n * e;
  // D_i = dO_i . O_i - dlse_i, from the float64 output
  const D = (hh: number, i: number, p: number[]) => {
    let s = 0;
    for (let c = 0; c < e; c++) {
      let oc = 0;
      for (let j = 0; j <= i; j++) oc += p[j] * va[row(e, hh, j) + c];
      s += ga[row(w, hh, i) + c] * oc;
    }
    return s - ga[row(w, hh, i) + e];
  };
  for (const [hh, i] of [
    [0, 0],
    [1, 1000],
    [3, n - 1],
  ]) {
    const { p, lse } = probs(hh, i);
    near(o[row(w, hh, i) + e], lse, 1e-5, `lse head ${hh} row ${i}`);
    for (let c = 0; c < e; c++) {
      let want = 0;
      for (let j = 0; j <= i; j++) want += p[j] * va[row(e, hh, j) + c];
      near(o[row(w, hh, i) + c], want, 1e-4, `out head ${hh} row ${i} col ${c}`);
    }
    // dq_i = scale sum_j p_ij (dO_i . v_j - D_i) k_j
    const di = D(hh, i, p);
    const ds = p.map((pj, j) => pj * (dot(ga, row(w, hh, i), va, row(e, hh, j), e) - di));
    for (let c = 0; c < e; c++) {
      let want = 0;
      for (let j = 0; j <= i; j++) want += scale * ds[j] * ka[row(e, hh, j) + c];
      near(d[hh * per + i * e + c], want, 1e-4, `dq head ${hh} row ${i} col ${c}`);
    }
  }
  // dk_j and dv_j of a late key: only the rows i >= j see it
  const [hh, j] = [2, n - 5];
  const dk = new Float64Array(e);
  const dv = new Float64Array(e);
  for (let i = j; i < n; i++) {
    const { p } = probs(hh, i);
    const di = D(hh, i, p);
    const dsij = p[j] * (dot(ga, row(w, hh, i), va, row(e, hh, j), e) - di);
    for (let c = 0; c < e; c++) {
      dk[c] += scale * dsij * qa[row(e, hh, i) + c];
      dv[c] += p[j] * ga[row(w, hh, i) + c];
    }
  }
  for (let c = 0; c < e; c++) {
    near(d[hh * per + n * e + j * e + c], dk[c], 1e-4, `dk head ${hh} key ${j} col ${c}`);
    near(d[hh * per + 2 * n * e + j * e + c], dv[c], 1e-4, `dv head ${hh} key ${j} col ${c}`);
  }
});

test("wasm attention on the worker pool: the same bits as one thread, float32 and float64, with a mask", (t) => {
  const pool = createWasmBackend();
  if (pool.threads < 2) {
    t.diagnostic("no worker pool on this machine: compared one thread with itself");
  }
  const one = createWasmBackend({ threads: 1 });
  for (const dtype of ["float32", "float64"] as const) {
    const rnd = prng(dtype.length);
    // 2 x 3 batch entries (enough work to split), odd sizes, a key-padding mask broadcast by stride 0
    const [lead, l, s, e, ev] = [[2, 3], 100, 130, 40, 24];
    const mk = (shape: number[]) => {
      const v = view(shape, rnd);
      return dtype === "float32" ? v : { ...v, data: Float64Array.from(v.data) };
    };
    const q = mk([...lead, l, e]);
    const k = mk([...lead, s, e]);
    const v = mk([...lead, s, ev]);
    const row = mk([s]);
    for (let j = 0; j < s; j += 7) row.data[j] = -Infinity;
    const mask: View = { data: row.data, shape: [...lead, l, s], strides: [0, 0, 0, 1], offset: 0 };
    const g = mk([...lead, l, ev + 1]);
    const nb = 6;
    const run = (b: typeof one) => {
      const o =
        dtype === "float32" ? new Float32Array(nb * l * (ev + 1)) : new Float64Array(nb * l * (ev + 1));
      b.attention(q, k, v, mask, false, 0.2, o);
      const ov: View = {
        data: o,
        shape: [...lead, l, ev + 1],
        strides: [3 * l * (ev + 1), l * (ev + 1), ev + 1, 1],
        offset: 0,
      };
      const per = l * e + s * e + s * ev;
      const d = dtype === "float32" ? new Float32Array(nb * per) : new Float64Array(nb * per);
      b.attentionBackward(q, k, v, mask, ov, g, true, 0.2, d);
      return [o, d];
    };
    const [o1, d1] = run(one);
    const [o2, d2] = run(pool);
    assert.deepEqual(o2, o1, `${dtype} forward`);
    assert.deepEqual(d2, d1, `${dtype} backward`);
    assert.deepEqual(pool.fallbacks(), {});
  }
  pool.stopThreads();
});

test("wasm attention of one long entry on the worker pool: rows and keys split, the same bits", () => {
  const pool = createWasmBackend();
  const one = createWasmBackend({ threads: 1 });
  const rnd = prng(3);
  const [l, s, e] = [300, 290, 48];
  const q = view([1, l, e], rnd);
  const k = view([1, s, e], rnd);
  const v = view([1, s, e], rnd);
  for (const causal of [false, true]) {
    const run = (b: typeof one) => {
      const o = new Float32Array(l * (e + 1));
      b.attention(q, k, v, null, causal, 0.15, o);
      return o;
    };
    const want = run(one);
    assert.deepEqual(run(pool), want, causal ? "causal" : "full");
    // the backward: dq by query rows, dk and dv by keys, on each thread
    const ov: View = { data: want, shape: [1, l, e + 1], strides: [l * (e + 1), e + 1, 1], offset: 0 };
    const g = view([1, l, e + 1], rnd);
    const back = (b: typeof one) => {
      const d = new Float32Array(l * e + 2 * s * e);
      b.attentionBackward(q, k, v, null, ov, g, causal, 0.15, d);
      return d;
    };
    const d1 = back(one);
    assert.deepEqual(back(pool), d1, `${causal ? "causal" : "full"} backward`);
    const js = new Float32Array(d1.length);
    J.attentionBackward(q, k, v, null, ov, g, causal, 0.15, js);
    for (let t = 0; t < js.length; t++) {
      assert.ok(
        Math.abs(d1[t] - js[t]) <= 1e-4 * (1 + Math.abs(js[t])),
        `backward element ${t}: ${d1[t]} vs ${js[t]}`,
      );
    }
    // and the split rows are right, not only equal: row 299 against a float64 loop
    const i = l - 1;
    const end = causal ? Math.min(s, i + 1) : s;
    const sc: number[] = [];
    for (let j = 0; j < end; j++) {
      let d = 0;
      for (let c = 0; c < e; c++) d += q.data[i * e + c] * k.data[j * e + c];
      sc.push(0.15 * d);
    }
    const m = Math.max(...sc);
    const z = sc.reduce((a, x) => a + Math.exp(x - m), 0);
    for (let c = 0; c < e; c++) {
      let o = 0;
      for (let j = 0; j < end; j++) o += (Math.exp(sc[j] - m) / z) * v.data[j * e + c];
      assert.ok(Math.abs(want[i * (e + 1) + c] - o) <= 1e-5, `row ${i} col ${c}`);
    }
  }
  assert.deepEqual(pool.fallbacks(), {});
  pool.stopThreads();
});

test("wasm attention: weights below e^-87 are exact zeros; causal over a non-finite value takes the js kernel", () => {
  const W = createWasmBackend({ threads: 1 });
  const flat = (data: number[], shape: number[]): View => ({
    data: Float32Array.from(data),
    shape,
    strides: shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1)),
    offset: 0,
  });
  // one query, 9 keys (SIMD lanes and a tail): key 0 scores 0, the others -100 below it (scale 1)
  const q = flat([1], [1, 1, 1]);
  const k = flat([0, -100, -100, -100, -100, -100, -100, -100, -100], [1, 9, 1]);
  const v = flat([2, 5, 5, 5, 5, 5, 5, 5, 5], [1, 9, 1]);
  const out = new Float32Array(2);
  W.attention!(q, k, v, null, false, 1, out);
  assert.equal(out[0], 2, "the output is v of key 0 exactly");
  // causal, an Infinity in a key the first query may not see: the spec skips it (the tiled products would
  // multiply it by 0), so every output is finite and equals the js reference
  const q2 = flat([0.5, -0.25, 1, 0.75], [1, 4, 1]);
  const k2 = flat([0.1, 0.2, Infinity, -0.3], [1, 4, 1]);
  const v2 = flat([1, 2, 3, 4], [1, 4, 1]);
  const o2 = new Float32Array(4 * 2);
  const r2 = new Float32Array(4 * 2);
  W.attention!(q2, k2, v2, null, true, 1, o2);
  J.attention(q2, k2, v2, null, true, 1, r2);
  for (let i = 0; i < 2; i++) {
    assert.ok(Number.isFinite(o2[i * 2]), `row ${i} (keys before the Infinity): ${o2[i * 2]}`);
  }
  for (let i = 0; i < o2.length; i++)
    assert.ok(Object.is(o2[i], r2[i]) || Math.abs(o2[i] - r2[i]) <= 1e-6 * Math.abs(r2[i]), `element ${i}`);
});
