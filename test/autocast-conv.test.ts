/**
 * autocast's conv2d under bfloat16 (issue 13): values and float32 gradients against float64 references of the
 * bfloat16-rounded operands, for the bfloat16 implicit-GEMM convolution (src/amp-conv.ts, native/src/kernels/half.cc
 * conv_bf16; native with AVX512_BF16, forced on for every shape here) and for the widened float32 path that every
 * other backend / CPU runs: odd sizes, more than one K block, stride, padding, dilation, groups, batch 1, an empty
 * batch, a non-contiguous input, a bfloat16 input, relu, no bias; and the K / N blocking of the bfloat16 GEMM.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { lowConvRoute, lowConvStats } from "../src/amp-conv.ts";
import { halfKernelsOf } from "../src/backend/half.ts";
import { nativeInfo, setNativeAmx, setNativeIsa } from "../src/backend/native/index.ts";
import { autocast, conv2d, getBackend, manualSeed, randn, type Tensor } from "../src/node.ts";
import { allocOut } from "../src/prims/impl.ts";

/** Whether this process runs the bfloat16 GEMM (native backend, AVX512_BF16). */
const fused = getBackend().name === "native" && halfKernelsOf("native")?.gemmBF16Ready?.() === true;

/** |got - want| <= rel |want| + (K + 2) 2^-24 mag (float32 accumulation of K terms), elementwise. */
function assertNear(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  mag: ArrayLike<number>,
  K: number,
  rel: number,
  what: string,
) {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.abs(want[i]) + (K + 2) * 2 ** -24 * mag[i] + 1e-30;
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what} [${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
  }
}

interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: [number, number] | number;
  padding?: [number, number] | number;
  dilation?: [number, number] | number;
  groups?: number;
  relu?: boolean;
  bias?: boolean;
  /** the input as a transposed (non-contiguous) view */
  strided?: boolean;
  bf16In?: boolean;
}

const cases: Case[] = [
  { x: [2, 3, 7, 6], w: [4, 3, 3, 3], padding: 1 },
  { x: [1, 5, 9, 11], w: [6, 5, 3, 2], stride: 2, padding: [2, 1], relu: true },
  { x: [3, 4, 10, 9], w: [5, 4, 3, 3], dilation: [2, 1], padding: 2, relu: true, strided: true },
  { x: [2, 6, 8, 7], w: [9, 2, 3, 3], groups: 3, padding: 1, stride: [1, 2], bf16In: true },
  { x: [1, 7, 5, 5], w: [3, 7, 5, 5], bias: false },
  { x: [2, 16, 6, 5], w: [8, 16, 1, 1], relu: true, bf16In: true, strided: true },
  { x: [4, 1, 12, 12], w: [8, 1, 5, 5], padding: 2, relu: true },
  // more than one K block (600 taps; 630 positions in the weight gradient), several column chunks and a partial
  // row block (13 output channels)
  { x: [3, 24, 15, 14], w: [13, 24, 5, 5], padding: 2, relu: true, bf16In: true },
  // 7 output channels (the 8-row micro-tile) over two K blocks (550 taps)
  { x: [2, 22, 13, 12], w: [7, 22, 5, 5], padding: 2, bf16In: true },
  // stride 2 with dilation and groups: the input gradient takes the float32 transposed convolution
  {
    x: [2, 6, 11, 10],
    w: [4, 3, 3, 2],
    stride: 2,
    dilation: [1, 2],
    padding: [1, 2],
    groups: 2,
    bf16In: true,
    relu: true,
  },
  // padding beyond the kernel's reach (a 1x1 kernel, padding 1): the float32 transposed convolution too
  { x: [2, 3, 5, 4], w: [4, 3, 1, 1], padding: 1, relu: true },
  // stride 1, dilation 2, groups: the input gradient as a convolution with the flipped weight
  { x: [2, 4, 9, 9], w: [6, 2, 3, 3], dilation: 2, padding: [1, 2], groups: 2, relu: true, bf16In: true },
  // width-1 images (a segment of one position) and rows longer than a vector (37 positions)
  { x: [3, 4, 6, 1], w: [5, 4, 3, 1], padding: [1, 0], relu: true },
  { x: [2, 3, 5, 37], w: [4, 3, 3, 3], padding: 1, bf16In: true, strided: true },
  // 40 output channels and 36 input channels (AMX: two 32-row blocks both ways), 324 taps
  { x: [2, 36, 9, 9], w: [40, 36, 3, 3], padding: 1, relu: true },
];

function label(c: Case): string {
  const o = [`x ${c.x}`, `w ${c.w}`];
  for (const k of ["stride", "padding", "dilation", "groups"] as const)
    if (c[k] !== undefined) o.push(`${k} ${c[k]}`);
  if (c.relu) o.push("relu");
  if (c.bias === false) o.push("no bias");
  if (c.strided) o.push("strided input");
  if (c.bf16In) o.push("bfloat16 input");
  return o.join(", ");
}

// The bfloat16 GEMM's paths: AMX tiles where the CPU and OS have them, and vdpbf16ps (AMX switched off).
const native = getBackend().name === "native";
const defaultAmx = native ? nativeInfo().amx : false;
const hasAmx = native ? setNativeAmx(true) : false;
if (native) setNativeAmx(defaultAmx);
const PATHS = hasAmx ? (["AMX", "vdpbf16ps"] as const) : (["vdpbf16ps"] as const);

/** The tests on one path of the bfloat16 GEMM (run below for each of PATHS). */
const convSuite = (path: (typeof PATHS)[number]) => () => {
  before(() => {
    if (native) assert.equal(setNativeAmx(path === "AMX"), path === "AMX");
  });
  after(() => {
    if (native) setNativeAmx(defaultAmx);
  });

  for (const c of cases)
    for (const mode of ["always", "auto"] as const)
      test(`${label(c)} (route ${mode})`, () => {
        manualSeed(11);
        const [n, ch, h, wd] = c.x;
        let xv: Tensor = c.strided ? randn([n, ch, wd, h]).transpose(2, 3) : randn(c.x);
        if (c.bf16In) xv = xv.to("bfloat16");
        const x = xv.detach().requiresGrad_();
        const w = randn(c.w).requiresGrad_();
        const b = c.bias === false ? null : randn([c.w[0]]).requiresGrad_();
        const opts = {
          stride: c.stride,
          padding: c.padding,
          dilation: c.dilation,
          groups: c.groups,
          activation: c.relu ? ("relu" as const) : undefined,
        };
        lowConvRoute.mode = mode;
        const before = lowConvStats.calls;
        let y: Tensor;
        try {
          y = autocast({ dtype: "bfloat16" }, () => conv2d(x, w, b, opts));
        } finally {
          lowConvRoute.mode = "auto";
        }
        if (fused && mode === "always")
          assert.equal(lowConvStats.calls, before + 1, "the bfloat16 GEMM path ran");
        if (!fused) assert.equal(lowConvStats.calls, before, "no bfloat16 GEMM here: the widened path");
        assert.equal(y.dtype, "bfloat16");
        // float64 reference of the rounded operands (the bias too: both paths round it to bfloat16)
        const x64 = x.detach().to("bfloat16").to("float64");
        const w64 = w.detach().to("bfloat16").to("float64");
        const b64 = b === null ? null : b.detach().to("bfloat16").to("float64");
        const o64 = { ...opts, activation: undefined };
        const pre = conv2d(x64, w64, b64, o64);
        const mag = conv2d(x64.abs(), w64.abs(), b64?.abs() ?? null, o64).dataSync();
        const want = (c.relu ? pre.relu() : pre).dataSync();
        const K = c.w[1] * c.w[2] * c.w[3] + 1;
        // one rounding of the float32 result to bfloat16
        assertNear(y.to("float32").dataSync(), want, mag, K, 2 ** -8, "forward");

        const ct = randn(y.shape);
        y.to("float32").mul(ct).sum().backward();
        assert.deepEqual(
          [x.grad!.dtype, w.grad!.dtype, b?.grad?.dtype ?? "float32"],
          [x.dtype, "float32", "float32"],
        );
        // the cotangent reaching the convolution: ct rounded to bfloat16 (y's dtype), through relu's mask
        let dz = ct.to("bfloat16").to("float64");
        if (c.relu) dz = dz.mul(y.to("float64").gt(0).to("float64"));
        const dzAbs = dz.abs();
        // references by float64 reverse mode of sum(conv(x, w) * dz) (linear in each operand)
        const grads = (xa: Tensor, wa: Tensor, d: Tensor): Tensor[] => {
          const xr = xa.detach().requiresGrad_();
          const wr = wa.detach().requiresGrad_();
          conv2d(xr, wr, null, o64).mul(d).sum().backward();
          return [xr.grad!, wr.grad!];
        };
        const [dx64, dw64] = grads(x64, w64, dz);
        const [mx, mw] = grads(x64.abs(), w64.abs(), dzAbs);
        const P = y.shape[0] * y.shape[2] * y.shape[3];
        // weight and bias gradients: float32 accumulators of the GEMM path (not rounded); the widened path
        // rounds them to bfloat16 once
        const rel = fused && mode === "always" ? 0 : 2 ** -8;
        assertNear(w.grad!.dataSync(), dw64.dataSync(), mw.dataSync(), P, rel, "dw");
        if (b !== null) {
          const db64 = dz.sum([0, 2, 3]);
          assertNear(b.grad!.dataSync(), db64.dataSync(), dzAbs.sum([0, 2, 3]).dataSync(), P, rel, "db");
        }
        // input gradient: within one bfloat16 rounding (float32 accumulation of the output channels' terms)
        const Kx = (c.w[0] / (c.groups ?? 1)) * c.w[2] * c.w[3];
        assertNear(x.grad!.to("float32").dataSync(), dx64.dataSync(), mx.dataSync(), Kx, 2 ** -8, "dx");
      });

  test("an empty batch: the widened path, an empty output and zero gradients", () => {
    const x = randn([0, 3, 6, 6]).requiresGrad_();
    const w = randn([4, 3, 3, 3]).requiresGrad_();
    const b = randn([4]).requiresGrad_();
    lowConvRoute.mode = "always";
    try {
      const before = lowConvStats.calls;
      const y = autocast({ dtype: "bfloat16" }, () => conv2d(x, w, b, { padding: 1, activation: "relu" }));
      assert.equal(lowConvStats.calls, before);
      assert.deepEqual(y.shape, [0, 4, 6, 6]);
      y.to("float32").sum().backward();
      assert.deepEqual(Array.from(w.grad!.dataSync()), new Array(4 * 27).fill(0));
      assert.deepEqual(Array.from(b.grad!.dataSync()), [0, 0, 0, 0]);
    } finally {
      lowConvRoute.mode = "auto";
    }
  });

  test("the bfloat16 GEMM's K and N blocks: K = 1101 (three K blocks, odd), N = 700 (three column chunks)", {
    skip: !fused && "no AVX512_BF16",
  }, () => {
    manualSeed(14);
    const kern = halfKernelsOf("native")!;
    const view = (t: Tensor) => ({ data: t._data!, shape: t.shape, strides: t._strides, offset: t._offset });
    const [M, K, N] = [50, 1101, 700];
    const a = randn([M, K]);
    const bT = randn([N, K]).to("bfloat16");
    const bias = randn([N]);
    // float64 products of the rounded operands
    const a64 = a.to("bfloat16").to("float64");
    const b64 = bT.to("float64").T;
    const want = a64.matmul(b64).add(bias.to("bfloat16").to("float64")).relu().dataSync();
    const mag = a64.abs().matmul(b64.abs()).add(bias.to("bfloat16").to("float64").abs()).dataSync();
    const out = new Float32Array(M * N);
    assert.equal(kern.gemmBF16!(view(a), view(bT.T), out, { bias: view(bias), relu: true }), true);
    assertNear(out, want, mag, K, 0, "float32 out");
    // a bfloat16 output is the float32 result rounded once
    const out16 = allocOut({ shape: [M, N], dtype: "bfloat16" });
    assert.equal(
      kern.gemmBF16!(view(a), view(bT.T), out16._data as Uint16Array, { bias: view(bias), relu: true }),
      true,
    );
    assertNear(out16.to("float32").dataSync(), want, mag, K, 2 ** -8, "bfloat16 out");
  });

  test("convBF16 checks every size it is handed and writes only its output", {
    skip: !fused && "no AVX512_BF16",
  }, () => {
    manualSeed(15);
    const kern = halfKernelsOf("native")!;
    const view = (t: Tensor) => ({ data: t._data!, shape: t.shape, strides: t._strides, offset: t._offset });
    const x = randn([2, 4, 7, 6]).to("bfloat16");
    const w = randn([6, 2, 3, 3]);
    const b = randn([6]);
    const cp = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 2 };
    const yShape = [2, 6, 7, 6];
    const ny = 2 * 6 * 7 * 6;
    /** A bfloat16 output window of n values inside guard values. */
    const guarded = (n: number) => {
      const buf = allocOut({ shape: [n + 64], dtype: "bfloat16" })._data as Uint16Array;
      buf.fill(0xa5a5);
      return { buf, win: buf.subarray(32, 32 + n) as Uint16Array };
    };
    const g = guarded(ny);
    assert.equal(
      kern.convBF16!("forward", view(x), view(w), g.win, yShape, cp, { bias: view(b), relu: true }),
      true,
    );
    for (const i of [...Array(32).keys(), ...Array.from({ length: 32 }, (_, i) => 32 + ny + i)])
      assert.equal(g.buf[i], 0xa5a5, `guard ${i}`);
    const bad: [string, () => boolean][] = [
      [
        "output one value short",
        () => kern.convBF16!("forward", view(x), view(w), guarded(ny - 1).win, yShape, cp),
      ],
      [
        "output extents off by one",
        () => kern.convBF16!("forward", view(x), view(w), guarded(ny).win, [2, 6, 8, 6], cp),
      ],
      [
        "groups not dividing",
        () => kern.convBF16!("forward", view(x), view(w), guarded(ny).win, yShape, { ...cp, groups: 3 }),
      ],
      [
        "bias of 5 values",
        () =>
          kern.convBF16!("forward", view(x), view(w), guarded(ny).win, yShape, cp, {
            bias: view(randn([5])),
          }),
      ],
      [
        "x strides past its storage",
        () =>
          kern.convBF16!(
            "forward",
            { ...view(x), strides: [168, 42, 6, 2] },
            view(w),
            guarded(ny).win,
            yShape,
            cp,
          ),
      ],
      [
        "a mask of another shape",
        () =>
          kern.convBF16!("forward", view(x), view(w), guarded(ny).win, yShape, cp, {
            mask: view(randn([2, 4, 7, 5]).to("bfloat16")),
          }),
      ],
      [
        "a weight gradient without room for the bias's",
        () =>
          kern.convBF16!(
            "weight",
            view(x),
            view(randn([2, 6, 7, 6])),
            new Float32Array(6 * 18),
            [6, 2, 3, 3],
            cp,
            {
              biasGrad: true,
            },
          ),
      ],
    ];
    for (const [what, call] of bad) assert.throws(call, Error, what);
  });

  test("a data input (no gradient), a retained graph's second backward, and create_graph", () => {
    manualSeed(12);
    const x = randn([2, 5, 9, 8]);
    const w = randn([6, 5, 3, 3]).requiresGrad_();
    const b = randn([6]).requiresGrad_();
    lowConvRoute.mode = "always";
    try {
      const y = autocast({ dtype: "bfloat16" }, () => conv2d(x, w, b, { padding: 1, activation: "relu" }));
      const l = y.to("float32").square().sum();
      l.backward(undefined, { retainGraph: true });
      const g1 = [w.grad!.dataSync().slice(), b.grad!.dataSync().slice()];
      w.grad = null;
      b.grad = null;
      // another convolution of the same geometry in between (reusing the kernels' scratch buffers)
      autocast({ dtype: "bfloat16" }, () =>
        conv2d(randn([2, 5, 9, 8]), w, b, { padding: 1, activation: "relu" }),
      );
      l.backward();
      assert.deepEqual(Array.from(w.grad!.dataSync()), Array.from(g1[0]), "second backward: the same dw");
      assert.deepEqual(Array.from(b.grad!.dataSync()), Array.from(g1[1]), "second backward: the same db");
      // create_graph: the backward runs differentiable ops; the same first-order gradients within bfloat16
      w.grad = null;
      b.grad = null;
      const xg = x.detach().requiresGrad_();
      autocast({ dtype: "bfloat16" }, () => conv2d(xg, w, b, { padding: 1, activation: "relu" }))
        .to("float32")
        .square()
        .sum()
        .backward(undefined, { createGraph: true });
      const got = w.grad!.dataSync();
      for (let i = 0; i < got.length; i++)
        assert.ok(
          Math.abs(got[i] - g1[0][i]) <= 2 ** -6 * (1 + Math.abs(g1[0][i])),
          `create_graph dw [${i}]`,
        );
      assert.equal(xg.grad!.requiresGrad, true);
      const gx = xg.grad!;
      w.grad = null;
      gx.sum().backward();
      assert.equal(w.grad!.dtype, "float32");
      assert.ok(Number.isFinite(w.grad!.sum().item()));
    } finally {
      lowConvRoute.mode = "auto";
    }
  });

  test("native without AVX512_BF16 (the avx2 and base builds): the widened float32 path, same values", {
    skip: getBackend().name !== "native" && "the native backend is not loaded",
  }, () => {
    manualSeed(13);
    const x = randn([2, 4, 7, 7]);
    const w = randn([5, 4, 3, 3]);
    const b = randn([5]);
    const run = () =>
      autocast({ dtype: "bfloat16" }, () => conv2d(x, w, b, { padding: 1, activation: "relu" }));
    const isa = nativeInfo().isa as "avx512";
    const want = run().to("float32").dataSync();
    lowConvRoute.mode = "always";
    try {
      for (const other of ["avx2", "base"] as const) {
        if (!setNativeIsa(other)) continue;
        const before = lowConvStats.calls;
        const y = run();
        assert.equal(lowConvStats.calls, before, `${other}: no bfloat16 GEMM, the widened path`);
        // the same widened computation; float32 accumulation order may differ per build: one bfloat16 step
        const got = y.to("float32").dataSync();
        for (let i = 0; i < want.length; i++)
          assert.ok(Math.abs(got[i] - want[i]) <= 2 ** -7 * Math.abs(want[i]), `${other} [${i}]`);
      }
    } finally {
      setNativeIsa(isa);
      lowConvRoute.mode = "auto";
    }
  });
};
for (const path of PATHS) describe(`conv2d under bfloat16 autocast (${path})`, convSuite(path));
if (fused && !hasAmx)
  test("conv2d under bfloat16 autocast (AMX)", {
    skip: "this CPU or OS has no AMX: only the vdpbf16ps path is tested here",
  }, () => {});
