/**
 * Attention under autocast (issue 13): nn.scaledDotProductAttention and MultiheadAttention run the fused sdpa
 * primitive on 16-bit q, k, v (bfloat16 or float16, cast once by castLow), with float32 scores, softmax and
 * accumulation inside and the output rounded once to the autocast dtype; gradients come back through the casts
 * to float32 leaves, each rounded once to the 16-bit dtype on the way (PyTorch's convention: an op's input
 * gradients are in its input dtype).
 *
 * The reference is independent of the 16-bit path: the float64 composition (softmax(q k^T scale + mask) v in
 * float64 ops) of the operands rounded to the 16-bit dtype, and its float64 gradients for the cotangent rounded
 * the same way. The fused results must agree with it to the 16-bit dtype's rounding (half an ulp of the value,
 * at most 2^-8 relative for bfloat16, 2^-11 for float16) plus float32 accumulation error: far tighter than the
 * composition under autocast meets (its scores and probabilities are rounded to the 16-bit dtype), which one
 * test also checks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import {
  autocast,
  grad,
  jit,
  jvp,
  makeJaxpr,
  manualSeed,
  nn,
  randn,
  type Tensor,
  tensor,
  vmap,
} from "../src/index.ts";
import { _attention } from "../src/nn/attention.ts";
import { onBackend } from "./backends.ts";

const loaded = loadNativeBackend();
const wasm = loadWasmBackend();
const BACKENDS: Backend[] = [
  jsBackend,
  ...("backend" in loaded ? [loaded.backend] : []),
  ...("backend" in wasm ? [wasm.backend] : []),
];

type Half = "bfloat16" | "float16";
/** Unit roundoff (half an ulp, relative) of each 16-bit dtype. */
const UNIT: Record<Half, number> = { bfloat16: 2 ** -8, float16: 2 ** -11 };

const f64 = (t: Tensor) => Array.from(t.to("float64").dataSync());
/** t rounded to `dt` and back to float64: the values the 16-bit path computes with. */
const rounded = (t: Tensor, dt: Half) => t.to(dt).to("float64");

/**
 * Assert |got - want| <= unit |want| + abs for every element (NaN where want is NaN), abs = absTol times the
 * largest |want| (float32 accumulation error scales with the magnitudes summed, not with each result).
 */
function near(got: number[], want: number[], unit: number, absTol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let big = 0;
  for (const w of want) if (Number.isFinite(w)) big = Math.max(big, Math.abs(w));
  const abs = absTol * Math.max(big, 1e-30);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      assert.ok(Number.isNaN(got[i]), `${what}[${i}]: got ${got[i]}, expected NaN`);
      continue;
    }
    const err = Math.abs(got[i] - want[i]);
    assert.ok(
      err <= unit * Math.abs(want[i]) + abs,
      `${what}[${i}]: got ${got[i]}, expected ${want[i]} (error ${err.toExponential(2)})`,
    );
  }
}

/** The float64 composition (q, k, v, a float mask already float64; no autocast). */
const ref64 = (q: Tensor, k: Tensor, v: Tensor, opts: nn.SDPAOpts) =>
  _attention("ref", q, k, v, opts, "keep")[0];

/** opts with a float mask rounded to `dt` and widened to float64 (a bool mask as it is). */
function refOpts(opts: nn.SDPAOpts, dt: Half): nn.SDPAOpts {
  const m = opts.attnMask;
  return m == null || m.dtype === "bool" ? opts : { ...opts, attnMask: rounded(m, dt) };
}

/**
 * Fused under autocast against the float64 reference: output (and its dtype) and the gradients of q, k, v
 * (and of a float mask with `maskGrad`). `sumAbs`: for operands broadcast over batch dims, whose gradient sums
 * per-entry gradients each rounded to the 16-bit dtype (sdpa's cotangents are in its operands' dtype), an
 * absolute tolerance of that many roundings of the largest gradient.
 */
function checkCase(
  dt: Half,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: nn.SDPAOpts,
  what: string,
  maskGrad = false,
  sumAbs = 0,
): void {
  const fused = (a: Tensor, b: Tensor, c: Tensor, m?: Tensor) =>
    autocast({ dtype: dt }, () =>
      nn.scaledDotProductAttention(a, b, c, m === undefined ? opts : { ...opts, attnMask: m }),
    );
  const out = fused(q, k, v);
  assert.equal(out.dtype, dt, `${what}: output dtype`);
  const [qr, kr, vr] = [q, k, v].map((t) => rounded(t, dt));
  const ro = refOpts(opts, dt);
  const want = ref64(qr, kr, vr, ro);
  near(f64(out), f64(want), UNIT[dt], 2e-6, `${what} out`);
  // gradients: the float32 leaves get the float32 widening of gradients rounded once to dt
  const w = randn(out.shape);
  const wr = rounded(w, dt);
  const args = maskGrad ? [q, k, v, opts.attnMask!] : [q, k, v];
  const argnums = args.map((_, i) => i);
  const got = grad(
    (...xs: Tensor[]) =>
      (fused as (...a: Tensor[]) => Tensor)(...xs)
        .mul(w)
        .sum(),
    {
      argnums,
    },
  )(...args) as Tensor[];
  const refArgs = maskGrad ? [qr, kr, vr, ro.attnMask!] : [qr, kr, vr];
  const wantG = grad(
    (a: Tensor, b: Tensor, c: Tensor, m?: Tensor) =>
      ref64(a, b, c, m === undefined ? ro : { ...ro, attnMask: m })
        .mul(wr)
        .sum(),
    { argnums },
  )(...(refArgs as [Tensor, Tensor, Tensor])) as Tensor[];
  for (const [i, g] of got.entries()) {
    assert.equal(g.dtype, args[i].dtype, `${what} grad ${i} dtype`);
    // the mask's gradient is composed from 16-bit-free float32 ops but reaches a 16-bit cast twice (the
    // mask's castLow and the rounding of dS): one more rounding's worth
    near(f64(g), f64(wantG[i]), UNIT[dt] * (i === 3 ? 2 : 1), 2e-5 + sumAbs * UNIT[dt], `${what} grad ${i}`);
  }
}

for (const b of BACKENDS) {
  test(`${b.name}: fused under autocast equals the float64 attention of the rounded operands, rounded once`, () => {
    onBackend(b, () => {
      manualSeed(21);
      // [lead, L, S, E, Ev]: odd sizes, L != S, Ev != E, one key, broadcast batch dims below
      const sizes: [number[], number, number, number, number][] = [
        [[1], 1, 1, 1, 1],
        [[2, 2], 7, 33, 5, 3],
        [[3], 33, 7, 8, 11],
        [[2], 65, 130, 16, 9],
      ];
      for (const dt of ["bfloat16", "float16"] as const) {
        for (const [lead, l, s, e, ev] of sizes) {
          const q = randn([...lead, l, e]);
          const k = randn([...lead, s, e]);
          const v = randn([...lead, s, ev]);
          const fm = randn([l, s]);
          // key padding [lead0, 1, S] with key 0 always kept (no fully masked row)
          const pad = randn([lead[0], 1, s])
            .gt(0)
            .logicalOr(tensor(Array.from({ length: s }, (_, j) => j === 0)));
          for (const [name, opts] of [
            ["plain", {}],
            ["causal", { isCausal: true }],
            ["float mask", { attnMask: fm }],
            ["bool mask", { attnMask: pad }],
            ["scale", { scale: 0.3 }],
          ] as [string, nn.SDPAOpts][]) {
            checkCase(dt, q, k, v, opts, `${dt} [${lead}] L ${l} S ${s} E ${e} Ev ${ev} ${name}`);
          }
        }
      }
    });
  });

  test(`${b.name}: autocast attention: broadcast batch dims, a float mask's gradient, a fully masked row`, () => {
    onBackend(b, () => {
      manualSeed(22);
      for (const dt of ["bfloat16", "float16"] as const) {
        // q [2, 3, L, E] against k, v shared over the heads [2, 1, S, E] and a mask [L, S]
        const q = randn([2, 3, 9, 6]);
        const k = randn([2, 1, 13, 6]);
        const v = randn([2, 1, 13, 4]);
        // k, v and the mask are shared by 3 heads: their gradients are sums of 3 rounded per-head gradients
        checkCase(dt, q, k, v, { isCausal: true }, `${dt} broadcast causal`, false, 4);
        checkCase(dt, q, k, v, { attnMask: randn([9, 13]) }, `${dt} broadcast, mask gradient`, true, 4);
        // row 2 fully masked: NaN in that row, as PyTorch and the composition; the other rows unaffected
        const keep = Array.from({ length: 9 }, (_, i) =>
          Array.from({ length: 13 }, (_, j) => i !== 2 && j <= i),
        );
        const out = autocast({ dtype: dt }, () =>
          nn.scaledDotProductAttention(q, k, v, { attnMask: tensor(keep) }),
        );
        const want = ref64(...([q, k, v].map((t) => rounded(t, dt)) as [Tensor, Tensor, Tensor]), {
          attnMask: tensor(keep),
        });
        near(f64(out), f64(want), UNIT[dt], 2e-6, `${dt} fully masked row`);
      }
    });
  });
}

test("autocast attention: the fused path is closer to the float64 reference than the composition", () => {
  manualSeed(23);
  const q = randn([2, 2, 40, 16]).mul(2);
  const k = randn([2, 2, 50, 16]).mul(2);
  const v = randn([2, 2, 50, 16]);
  const ref = f64(ref64(...([q, k, v].map((t) => rounded(t, "bfloat16")) as [Tensor, Tensor, Tensor]), {}));
  const err = (got: Tensor) => {
    const g = f64(got);
    return g.reduce((s, x, i) => s + Math.abs(x - ref[i]), 0) / g.length;
  };
  const fused = autocast({ dtype: "bfloat16" }, () => nn.scaledDotProductAttention(q, k, v));
  const composed = autocast({ dtype: "bfloat16" }, () => _attention("c", q, k, v, {}, "keep")[0]);
  assert.equal(composed.dtype, "bfloat16");
  const [ef, ec] = [err(fused), err(composed)];
  // rounding once (mean error about a quarter ulp) against scores, probabilities and output each rounded
  assert.ok(ef < ec, `mean error fused ${ef} vs composed ${ec}`);
});

test("16-bit q, k, v outside autocast: the fused primitive, output and gradients in their dtype", () => {
  manualSeed(24);
  for (const dt of ["bfloat16", "float16"] as const) {
    const [q, k, v] = [randn([3, 7, 5]), randn([3, 9, 5]), randn([3, 9, 4])].map((t) => t.to(dt));
    const f = (a: Tensor, b: Tensor, c: Tensor) => nn.scaledDotProductAttention(a, b, c, { isCausal: true });
    const text = makeJaxpr(f)(q, k, v).toString();
    assert.match(text, /sdpa/);
    assert.doesNotMatch(text, /softmax/);
    const out = f(q, k, v);
    assert.equal(out.dtype, dt);
    const want = ref64(q.to("float64"), k.to("float64"), v.to("float64"), { isCausal: true });
    near(f64(out), f64(want), UNIT[dt], 2e-6, `${dt} out`);
    const w = randn(out.shape).to(dt);
    const g = grad((a: Tensor, b: Tensor, c: Tensor) => f(a, b, c).mul(w).sum(), { argnums: [0, 1, 2] })(
      q,
      k,
      v,
    ) as Tensor[];
    const wantG = grad(
      (a: Tensor, b: Tensor, c: Tensor) => ref64(a, b, c, { isCausal: true }).mul(w.to("float64")).sum(),
      { argnums: [0, 1, 2] },
    )(q.to("float64"), k.to("float64"), v.to("float64")) as Tensor[];
    for (const [i, gi] of g.entries()) {
      assert.equal(gi.dtype, dt, `${dt} grad ${i} dtype (PyTorch's: the input dtype)`);
      near(f64(gi), f64(wantG[i]), UNIT[dt], 2e-5, `${dt} grad ${i}`);
    }
  }
});

test("autocast attention: empty sequences and batches", () => {
  for (const [lead, l, s] of [
    [[2], 0, 5],
    [[2], 4, 0],
    [[0, 3], 4, 5],
  ] as [number[], number, number][]) {
    const q = randn([...lead, l, 3]);
    const k = randn([...lead, s, 3]);
    const v = randn([...lead, s, 2]);
    const f = (a: Tensor, b: Tensor, c: Tensor) =>
      autocast({ dtype: "bfloat16" }, () => nn.scaledDotProductAttention(a, b, c));
    const out = f(q, k, v);
    assert.equal(out.dtype, "bfloat16");
    assert.deepEqual(out.shape, [...lead, l, 2]);
    // no keys: output 0 (the kernels' contract), as the empty sum of PyTorch's composition
    for (const x of f64(out)) assert.equal(x, 0);
    const g = grad((a: Tensor, b: Tensor, c: Tensor) => f(a, b, c).sum(), { argnums: [0, 1, 2] })(
      q,
      k,
      v,
    ) as Tensor[];
    for (const [i, gi] of g.entries()) {
      assert.deepEqual(gi.shape, [q, k, v][i].shape);
      for (const x of f64(gi)) assert.equal(x, 0);
    }
  }
});

test("autocast attention under jit and vmap: one sdpa equation, the eager values", () => {
  manualSeed(25);
  const q = randn([4, 6, 8]);
  const k = randn([4, 10, 8]);
  const v = randn([4, 10, 5]);
  const f = (a: Tensor, b: Tensor, c: Tensor) =>
    autocast({ dtype: "bfloat16" }, () => nn.scaledDotProductAttention(a, b, c, { isCausal: true }));
  const text = makeJaxpr(f)(q, k, v).toString();
  assert.match(text, /sdpa/);
  assert.doesNotMatch(text, /softmax|dot/);
  const eager = f64(f(q, k, v));
  assert.deepEqual(f64(jit(f)(q, k, v)), eager, "jit");
  // vmap over the batch axis: each example's result is that example's eager result
  assert.deepEqual(f64(vmap(f)(q, k, v)), eager, "vmap");
  // gradients under jit equal the eager ones
  const w = randn([4, 6, 5]);
  const loss = (a: Tensor, b: Tensor, c: Tensor) => f(a, b, c).mul(w).sum();
  const ge = grad(loss, { argnums: [0, 1, 2] })(q, k, v) as Tensor[];
  const gj = jit(grad(loss, { argnums: [0, 1, 2] }))(q, k, v) as Tensor[];
  for (const [i, g] of gj.entries()) assert.deepEqual(f64(g), f64(ge[i]), `jit grad ${i}`);
});

test("MultiheadAttention under autocast: the fused path (needWeights false), float32 parameter gradients", () => {
  manualSeed(26);
  const mha = new nn.MultiheadAttention(16, 4, { batchFirst: true });
  const x = randn([2, 9, 16]);
  const mem = randn([2, 11, 16]);
  const pad = tensor([
    Array.from({ length: 11 }, (_, j) => j >= 9),
    Array.from({ length: 11 }, (_, j) => j >= 10),
  ]);
  const am = randn([9, 11]); // float32: cast to bfloat16 with q, k, v
  const call = (needWeights: boolean) =>
    autocast({ dtype: "bfloat16" }, () =>
      mha.call(x, mem, mem, { keyPaddingMask: pad, attnMask: am, needWeights }),
    )[0];
  const text = makeJaxpr((xx: Tensor) =>
    autocast({ dtype: "bfloat16" }, () => mha.call(xx, xx, xx, { needWeights: false })[0]),
  )(x).toString();
  assert.match(text, /sdpa/);
  assert.doesNotMatch(text, /softmax/);
  const fused = call(false);
  assert.equal(fused.dtype, "bfloat16");
  // the float32 module without autocast: bfloat16 projections, attention and output differ by a few ulps
  const full = f64(mha.call(x, mem, mem, { keyPaddingMask: pad, attnMask: am, needWeights: false })[0]);
  near(f64(fused), full, 2 ** -5, 2e-2, "fused against float32");
  near(f64(call(true)), full, 2 ** -5, 2e-2, "composed against float32");
  const w = randn(fused.shape);
  fused.mul(w).sum().backward();
  const g16 = f64(mha.in_proj_weight!.grad!);
  assert.equal(mha.in_proj_weight!.grad!.dtype, "float32");
  mha.zeroGrad();
  mha.call(x, mem, mem, { keyPaddingMask: pad, attnMask: am, needWeights: false })[0].mul(w).sum().backward();
  near(g16, f64(mha.in_proj_weight!.grad!), 2 ** -4, 3e-2, "in_proj_weight grad against float32");
});

test("native: long autocast attention (L = S = 4096) runs without an [L, S] matrix", {
  skip: !("backend" in loaded),
}, () => {
  if (!("backend" in loaded)) return;
  onBackend(loaded.backend, () => {
    manualSeed(27);
    const [h, n, e] = [4, 4096, 64];
    const [q, k, v, w] = [0, 1, 2, 3].map(() => randn([h, n, e]));
    const before = process.memoryUsage().rss;
    const f = (a: Tensor) =>
      autocast({ dtype: "bfloat16" }, () => nn.scaledDotProductAttention(a, k, v, { isCausal: true }));
    const out = f(q);
    const dq = grad((a: Tensor) => f(a).mul(w).sum())(q);
    const grown = process.memoryUsage().rss - before;
    // one [h, L, S] bfloat16 score matrix is 128 MiB (float32: 256 MiB); the fused path needs O(h L E): the
    // 16-bit casts of q, k, v, their float32 widenings for the kernels, the outputs and gradients (4 MiB each
    // in float32)
    assert.ok(grown < 100 * 2 ** 20, `rss grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(out.dtype, "bfloat16");
    assert.deepEqual(dq.shape, [h, n, e]);
    // one row against a float64 loop over the rounded operands
    const [qa, ka, va] = [q, k, v].map((t) => f64(rounded(t, "bfloat16")));
    const o = f64(out);
    const [hh, i] = [3, 3000];
    const sc: number[] = [];
    for (let j = 0; j <= i; j++) {
      let d = 0;
      for (let c = 0; c < e; c++) d += qa[(hh * n + i) * e + c] * ka[(hh * n + j) * e + c];
      sc.push(d / Math.sqrt(e));
    }
    const m = Math.max(...sc);
    const p = sc.map((x) => Math.exp(x - m));
    const z = p.reduce((a, b) => a + b, 0);
    const row: number[] = [];
    const want: number[] = [];
    for (let c = 0; c < e; c++) {
      let s = 0;
      for (let j = 0; j <= i; j++) s += (p[j] / z) * va[(hh * n + j) * e + c];
      want.push(s);
      row.push(o[(hh * n + i) * e + c]);
    }
    near(row, want, UNIT.bfloat16, 1e-5, "row 3000 of head 3");
  });
});

test("TransformerEncoderLayer under autocast: self-attention is one sdpa, gradients float32 near float32's", () => {
  manualSeed(28);
  const layer = new nn.TransformerEncoderLayer(16, 2, { dimFeedforward: 32, dropout: 0, batchFirst: true });
  const x = randn([2, 10, 16]);
  const run = (xx: Tensor) => autocast({ dtype: "bfloat16" }, () => layer.call(xx, { isCausal: true }));
  const text = makeJaxpr(run)(x).toString();
  assert.equal(text.match(/sdpa/g)?.length, 1, text);
  assert.doesNotMatch(text, /softmax/);
  const w = randn([2, 10, 16]);
  run(x).mul(w).sum().backward();
  const g16 = f64(layer.self_attn.in_proj_weight!.grad!);
  assert.equal(layer.self_attn.in_proj_weight!.grad!.dtype, "float32");
  layer.zeroGrad();
  layer.call(x, { isCausal: true }).mul(w).sum().backward();
  // bfloat16 projections, attention and feed-forward: a few ulps of 2^-8 each, against the largest entry
  near(g16, f64(layer.self_attn.in_proj_weight!.grad!), 2 ** -4, 3e-2, "in_proj_weight grad against float32");
});

test("16-bit sdpa: forward mode and second order (the rules in float32) near the float64 ones", () => {
  manualSeed(29);
  const [q, k, v] = [randn([2, 5, 4]), randn([2, 6, 4]), randn([2, 6, 3])].map((t) => t.to("bfloat16"));
  const [w, r] = [randn([2, 5, 3]), randn([2, 5, 4])];
  const mask = randn([5, 6]);
  // d/dq of sum(dq(q) * r), dq the gradient of sum(attention * w): through sdpaBackward's own VJP
  const second = (dtype: "bfloat16" | "float64") => {
    const [qq, kk, vv, m] = [q, k, v, mask].map((t) => t.to(dtype));
    const loss = (a: Tensor) =>
      nn.scaledDotProductAttention(a, kk, vv, { attnMask: m }).to("float64").mul(w.to("float64")).sum();
    const h = (a: Tensor) => grad(loss)(a).to("float64").mul(r.to("float64")).sum();
    return grad(h)(qq);
  };
  const g16 = second("bfloat16");
  assert.equal(g16.dtype, "bfloat16");
  // bfloat16 operands of the composed second-order rules: a few roundings of 2^-8 against the largest entry
  near(f64(g16), f64(second("float64")), 2 ** -5, 2 ** -5, "second order");
  // forward mode: the JVP of the 16-bit path against float64's
  const tq = randn([2, 5, 4]).to("bfloat16");
  const jv = (dtype: "bfloat16" | "float64") =>
    jvp(
      (a: Tensor) => nn.scaledDotProductAttention(a, k.to(dtype), v.to(dtype)),
      [q.to(dtype)],
      [tq.to(dtype)],
    )[1];
  const t16 = jv("bfloat16");
  assert.equal(t16.dtype, "bfloat16");
  near(f64(t16), f64(jv("float64")), 2 ** -6, 2 ** -7, "jvp");
});

test("autocast attention with dropout composes, a float32 mask cast with q, k, v as on the fused path", () => {
  manualSeed(30);
  const [q, k, v] = [randn([2, 4, 6]), randn([2, 5, 6]), randn([2, 5, 3])];
  const fm = randn([4, 5]);
  const dropoutMask = randn([2, 4, 5])
    .gt(-0.5)
    .to("float32")
    .mul(1 / 0.7);
  const f = (opts: nn.SDPAOpts) =>
    autocast({ dtype: "bfloat16" }, () => nn.scaledDotProductAttention(q, k, v, { attnMask: fm, ...opts }));
  const dropped = f({ dropoutMask });
  assert.equal(dropped.dtype, "bfloat16");
  // the composition's reference: softmax of the bfloat16 scores plus the rounded mask, the mask applied
  const [qr, kr, vr] = [q, k, v].map((t) => rounded(t, "bfloat16"));
  const sc = qr
    .matmul(kr.transpose(-2, -1))
    .mul(1 / Math.sqrt(6))
    .add(rounded(fm, "bfloat16"));
  const want = sc.softmax(-1).mul(dropoutMask.to("float64")).matmul(vr);
  // two 16-bit matmuls and the rounded scores: a few roundings against the largest entry
  near(f64(dropped), f64(want), 2 ** -6, 2 ** -6, "dropout composition");
  // without dropout the same mask takes the fused path
  near(
    f64(f({})),
    f64(ref64(qr, kr, vr, { attnMask: rounded(fm, "bfloat16") })),
    UNIT.bfloat16,
    2e-6,
    "fused",
  );
});
