/**
 * The native float16 / bfloat16 kernels (native/src/kernels/half.cc): the vectorised casts against the js
 * reference for every 16-bit pattern and for special float32 values, on every instruction-set build; the
 * bfloat16 GEMM (vdpbf16ps where the CPU has AVX512_BF16) against the float32 GEMM of the same (rounded)
 * operands on odd sizes, transposed, batched, broadcast and empty operands; and the kernels' own checks of
 * malformed calls (sizes are never trusted).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { halfKernelsOf } from "../src/backend/half.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { nativeInfo, setNativeAmx, setNativeIsa } from "../src/backend/native/index.ts";
import { BFloat16Bits, Float16Bits } from "../src/dtype.ts";
import { castKernel } from "../src/prims/half.ts";
import { isContiguous } from "../src/shape.ts";
import { getBackend, randn, setBackend, type Tensor, tensor } from "../src/node.ts";

const native = getBackend().name === "native";
const half = native ? halfKernelsOf("native") : undefined;
// the ISA chosen at load, before probing which builds run (setNativeIsa switches)
const defaultIsa = native ? nativeInfo().isa : "";
const ISAS = native ? (["avx512", "avx2", "base"] as const).filter((i) => setNativeIsa(i)) : [];
if (native) setNativeIsa(defaultIsa as "avx512");
/** Whether this CPU has AVX512_BF16 (Linux: the cpuinfo flag; the kernel checks cpuid itself). */
const hasBF16 = (() => {
  try {
    return /\bavx512_bf16\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
})();

// The bfloat16 GEMM's paths: AMX tiles where the CPU and OS have them, and vdpbf16ps (AMX switched off).
const defaultAmx = native ? nativeInfo().amx : false;
const hasAmx = native ? setNativeAmx(true) : false;
if (native) setNativeAmx(defaultAmx);
const GEMM_PATHS = hasAmx ? (["AMX", "vdpbf16ps"] as const) : (["vdpbf16ps"] as const);

function onEachIsa(f: (isa: string) => void): void {
  try {
    for (const isa of ISAS) {
      setNativeIsa(isa);
      f(isa);
    }
  } finally {
    if (native) setNativeIsa(defaultIsa as "avx512");
  }
}

describe("native half casts", { skip: !native && "the native backend is not loaded" }, () => {
  test("the addon registers the half kernels", () => {
    assert.ok(half?.castHalf !== undefined && half.dotBF16 !== undefined);
  });

  test("16-bit -> float32 agrees with js for every pattern (NaN payloads aside)", () => {
    for (const Ctor of [Float16Bits, BFloat16Bits]) {
      const src = new Ctor(65536 + 3);
      for (let i = 0; i < 65536; i++) src[i + 3] = i;
      const view = { data: src, shape: [65536], strides: [1], offset: 3 };
      const want = new Float32Array(65536);
      jsBackend.cast(view, want);
      onEachIsa((isa) => {
        const got = new Float32Array(65536);
        assert.equal(half!.castHalf!(view, got), true);
        for (let i = 0; i < 65536; i++) {
          if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `${Ctor.name} ${isa} ${i}`);
          else
            assert.ok(
              Object.is(got[i], want[i]),
              `${Ctor.name} ${isa} pattern ${i}: ${got[i]} vs ${want[i]}`,
            );
        }
      });
    }
  });

  test("float32 -> 16-bit agrees with js bit for bit (ties, subnormals, overflow, signed zeros)", () => {
    const vals: number[] = [
      0,
      -0,
      1,
      -1,
      65504,
      65519,
      65520,
      1e9,
      -1e9,
      2 ** -24,
      2 ** -25,
      2 ** -130,
      2 ** -149,
    ];
    for (let e = -30; e < 20; e++)
      for (const m of [1, 1.00048828125, 1.0009765625, 1.5, 1.99951171875]) vals.push(m * 2 ** e);
    for (let i = 0; i < 3000; i++) vals.push((Math.random() - 0.5) * 2 ** (Math.random() * 80 - 40));
    vals.push(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);
    const src = Float32Array.from(vals);
    // the raw float32 patterns around every rounding boundary of both formats
    const u = new Uint32Array(4096);
    for (let i = 0; i < u.length; i++) u[i] = ((0x38000000 + i * 0x1fff7) ^ (i << 31)) >>> 0;
    const all = new Float32Array(src.length + u.length);
    all.set(src);
    all.set(new Float32Array(u.buffer), src.length);
    const view = { data: all, shape: [all.length], strides: [1], offset: 0 };
    for (const Ctor of [Float16Bits, BFloat16Bits]) {
      const want = new Ctor(all.length);
      jsBackend.cast(view, want);
      onEachIsa((isa) => {
        const got = new Ctor(all.length);
        assert.equal(half!.castHalf!(view, got), true);
        for (let i = 0; i < all.length; i++)
          assert.equal(got[i], want[i], `${Ctor.name} ${isa} of ${all[i]}`);
      });
    }
  });

  test("the cast kernel refuses malformed calls (never trusting a size)", () => {
    const x = new Float32Array(100);
    // a 16-bit output of 50 values for 100: its 100 bytes pass the addon's element count, the kernel refuses
    const small = new Float16Bits(50).fill(0x1234);
    assert.throws(
      () => half!.castHalf!({ data: x, shape: [100], strides: [1], offset: 0 }, small),
      /castHalf: the 16-bit output must hold 2n bytes/,
    );
    assert.ok(
      small.every((v) => v === 0x1234),
      "nothing written",
    );
    // a view reaching past its array: refused by the addon's bounds check
    assert.throws(() =>
      half!.castHalf!({ data: x, shape: [100], strides: [1], offset: 10 }, new Float16Bits(100)),
    );
    assert.throws(() =>
      half!.castHalf!(
        { data: new BFloat16Bits(100), shape: [100], strides: [1], offset: 1 },
        new Float32Array(100),
      ),
    );
  });
});

describe("casts of strided views through the native kernels", {
  skip: !native && "the native backend is not loaded",
}, () => {
  // transposed, broadcast (stride 0), negative-stride and sparse (span > 2n) views of sizes above the js cutoff
  const views = (n: number) => [
    { name: "transposed", shape: [48, 40], strides: [1, 48], offset: 0, len: 48 * 40 },
    { name: "broadcast", shape: [64, 40], strides: [0, 1], offset: 3, len: 43 },
    { name: "negative", shape: [40, 48], strides: [-48, -1], offset: 40 * 48 - 1, len: 40 * 48 },
    { name: "sparse", shape: [40, 30], strides: [100, 3], offset: 5, len: n },
  ];
  test("16-bit -> float32 equals the js cast", () => {
    for (const Ctor of [Float16Bits, BFloat16Bits]) {
      for (const v of views(4100)) {
        const src = new Ctor(v.len);
        for (let i = 0; i < v.len; i++) src[i] = (i * 40503) & 0xffff;
        const view = { data: src, shape: v.shape, strides: v.strides, offset: v.offset };
        const n = v.shape[0] * v.shape[1];
        const want = new Float32Array(n);
        jsBackend.cast(view, want);
        const got = new Float32Array(n);
        castKernel(view, got);
        for (let i = 0; i < n; i++) {
          if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `${Ctor.name} ${v.name} ${i}`);
          else
            assert.ok(Object.is(got[i], want[i]), `${Ctor.name} ${v.name} [${i}]: ${got[i]} vs ${want[i]}`);
        }
      }
    }
  });
  test("ops on strided 16-bit views (broadcast, transposed, reversed) equal the ops on float32 copies, rounded once", () => {
    for (const dtype of ["bfloat16", "float16"] as const) {
      const a = randn([64, 40]).to(dtype);
      const b = randn([40]).to(dtype);
      const m = randn([40, 64]).to(dtype);
      const cases: [string, Tensor, Tensor][] = [
        ["broadcast", a.add(b), a.to("float32").add(b.to("float32")).to(dtype)],
        ["transposed", m.T.mul(a), m.T.contiguous().to("float32").mul(a.to("float32")).to(dtype)],
        [
          "reversed",
          a.flip([0, 1]).sub(m.T),
          a.flip([0, 1]).contiguous().to("float32").sub(m.T.to("float32")).to(dtype),
        ],
      ];
      for (const [name, got, want] of cases)
        assert.deepEqual(Array.from(got.storageSync()), Array.from(want.storageSync()), `${dtype} ${name}`);
    }
  });

  test("float32 -> 16-bit equals the js cast bit for bit", () => {
    for (const Ctor of [Float16Bits, BFloat16Bits]) {
      for (const v of views(4100)) {
        const src = new Float32Array(v.len);
        for (let i = 0; i < v.len; i++) src[i] = Math.sin(i) * 2 ** ((i % 60) - 30);
        const view = { data: src, shape: v.shape, strides: v.strides, offset: v.offset };
        const n = v.shape[0] * v.shape[1];
        const want = new Ctor(n);
        jsBackend.cast(view, want);
        const got = new Ctor(n);
        castKernel(view, got);
        assert.deepEqual(Array.from(got), Array.from(want), `${Ctor.name} ${v.name}`);
      }
    }
  });
});

/** a @ b in float32 of bfloat16 operands, with the widened operands (the reference). */
function widenedProduct(a: Tensor, b: Tensor): Float32Array {
  return a.to("float32").matmul(b.to("float32")).dataSync() as Float32Array;
}

/** |got - want| within float32 accumulation error: K terms of magnitude |a||b|. */
function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  bound: ArrayLike<number>,
  K: number,
  what: string,
) {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const tol = (K + 2) * 2 ** -23 * bound[i] + 1e-30;
    assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what} [${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
  }
}

/** The bfloat16 GEMM tests on one path (run below for each of GEMM_PATHS). */
const gemmSuite = (path: (typeof GEMM_PATHS)[number]) => () => {
  before(() => {
    if (native) assert.equal(setNativeAmx(path === "AMX"), path === "AMX");
  });
  after(() => {
    if (native) setNativeAmx(defaultAmx);
  });

  test("vdpbf16ps is used where the CPU has AVX512_BF16, and agrees with the float32 GEMM", () => {
    const a = randn([37, 45]).to("bfloat16");
    const b = randn([45, 29]).to("bfloat16");
    const out = new Float32Array(37 * 29);
    const view = (t: Tensor) => ({ data: t._data!, shape: t.shape, strides: t._strides, offset: t._offset });
    const ran = half!.dotBF16!(view(a), view(b), out);
    assert.equal(defaultIsa, hasBF16 ? "avx512" : defaultIsa);
    assert.equal(ran, hasBF16, "the bf16 kernel runs exactly when the CPU has it");
    if (!ran) return;
    const bound = a.to("float32").abs().matmul(b.to("float32").abs()).dataSync();
    assertClose(out, widenedProduct(a, b), bound, 45, "37x45 @ 45x29");
    // the float32 products before rounding, on strided and batched operands (K odd: a zero-padded pair)
    // (views taken after the cast: a cast writes a contiguous tensor)
    const bf = (s: number[]) => randn(s).to("bfloat16");
    const more: [string, Tensor, Tensor][] = [
      ["batched, b transposed", bf([3, 13, 101]), bf([3, 70, 101]).transpose(1, 2)],
      ["a transposed, b with gaps", bf([90, 41]).T, bf([180, 77]).index([0, 180, 2])],
      ["one row block, negative strides", bf([5, 300]).flip(1), bf([300, 33]).flip(0)],
    ];
    for (const [name, xa, ya] of more) {
      const shape = [...xa.shape.slice(0, -1), ya.shape[ya.ndim - 1]];
      const o = new Float32Array(shape.reduce((p, q) => p * q, 1));
      assert.ok(!isContiguous(ya.shape, ya._strides), `${name}: b is a strided view`);
      assert.equal(half!.dotBF16!(view(xa), view(ya), o), true, name);
      const bnd = xa.to("float32").abs().matmul(ya.to("float32").abs()).dataSync();
      assertClose(o, widenedProduct(xa, ya), bnd, xa.shape[xa.ndim - 1], name);
    }
  });

  test("matmul of bfloat16 tensors: odd sizes, transposed, batched, broadcast, sliced and empty operands", () => {
    const cases: [string, () => [Tensor, Tensor]][] = [
      ["odd", () => [randn([33, 17]), randn([17, 65])]],
      ["K = 1", () => [randn([80, 1]), randn([1, 70])]],
      ["transposed b (linear)", () => [randn([31, 50]), randn([47, 50]).T]],
      ["transposed a", () => [randn([50, 31]).T, randn([50, 47])]],
      ["batched", () => [randn([3, 2, 20, 30]), randn([3, 2, 30, 25])]],
      ["broadcast batch", () => [randn([4, 20, 30]), randn([30, 25])]],
      [
        "sliced rows and columns",
        () => [randn([60, 80]).index([1, 50, 2], [3, 70]), randn([67, 90]).index(":", [5, 80, 3])],
      ],
      ["negative strides", () => [randn([30, 40]).flip(0), randn([40, 33]).flip(1)]],
      ["M = 0", () => [randn([0, 30]), randn([30, 20])]],
      ["K = 0", () => [randn([20, 0]), randn([0, 30])]],
      ["N = 0", () => [randn([20, 30]), randn([30, 0])]],
    ];
    onEachIsa((isa) => {
      for (const [name, make] of cases) {
        const [a32, b32] = make();
        const a = a32.to("bfloat16");
        const b = b32.to("bfloat16");
        const got = a.matmul(b);
        assert.equal(got.dtype, "bfloat16");
        // chainrule's bfloat16 matmul is the float32 product rounded once: compare the float32 products before
        // rounding through the kernel directly where it runs, and the rounded results always
        const want = a.to("float32").matmul(b.to("float32"));
        const K = a.shape[a.ndim - 1];
        const bound = a.to("float32").abs().matmul(b.to("float32").abs()).to("bfloat16").dataSync();
        const g = got.dataSync();
        const w = want.to("bfloat16").dataSync();
        for (let i = 0; i < w.length; i++) {
          // one bfloat16 rounding of values that may differ by the float32 accumulation error
          const tol = 2 ** -8 * Math.abs(w[i]) + (K + 2) * 2 ** -22 * bound[i];
          assert.ok(Math.abs(g[i] - w[i]) <= tol, `${isa} ${name} [${i}]: ${g[i]} vs ${w[i]}`);
        }
        assert.deepEqual(got.shape, want.shape, `${isa} ${name}`);
      }
    });
  });

  test("gemmBF16: float32 or bfloat16 operands (rounded while packed), bias, relu, masks, float32 or bfloat16 out", {
    skip: !hasBF16 && "no AVX512_BF16",
  }, () => {
    assert.equal(half!.gemmBF16Ready!(), true);
    const view = (t: Tensor) => ({ data: t._data!, shape: t.shape, strides: t._strides, offset: t._offset });
    /** The bfloat16 value of float32 v (the js cast: round to nearest even). */
    const r16 = (t: Tensor) => (t.dtype === "bfloat16" ? t : t.to("bfloat16")).to("float64");
    // [name, a, b, bias, relu, mask on a / b] with odd sizes, strided, negative strides and an odd K
    const cases: [string, Tensor, Tensor, Tensor | null, boolean, "a" | "b" | null][] = [
      ["f32 x f32^T, bias, relu", randn([37, 61]), randn([45, 61]).T, randn([45]), true, null],
      ["f32 a transposed, f32 b", randn([61, 37]).T, randn([61, 45]), null, false, null],
      [
        "bf16 x f32 with a bf16 bias",
        randn([13, 20]).to("bfloat16"),
        randn([20, 70]),
        randn([70]).to("bfloat16"),
        false,
        null,
      ],
      [
        "bf16 masked a x f32 (relu backward)",
        randn([40, 33]).to("bfloat16"),
        randn([33, 50]),
        null,
        false,
        "a",
      ],
      [
        "bf16 masked a transposed",
        randn([33, 40]).to("bfloat16").T,
        randn([33, 50]).to("bfloat16"),
        null,
        false,
        "a",
      ],
      [
        "ones x masked bf16 b",
        randn([1, 64]).abs().to("bfloat16"),
        randn([64, 70]).to("bfloat16"),
        null,
        false,
        "b",
      ],
      [
        "strided f32 and flipped bf16",
        randn([60, 90]).index([0, 60, 2]),
        randn([90, 19]).to("bfloat16").flip(0),
        randn([19]),
        true,
        null,
      ],
      ["batched", randn([2, 20, 35]), randn([2, 35, 40]).to("bfloat16"), randn([40]), false, null],
    ];
    for (const [name, a, b, bias, relu, maskOn] of cases) {
      const nd = a.ndim;
      const [M, K, N] = [a.shape[nd - 2], a.shape[nd - 1], b.shape[nd - 1]];
      const batch = a.shape.slice(0, nd - 2);
      const target = maskOn === "a" ? a : b;
      // a mask with the masked operand's shape and strides, about half of it > 0 (and some -0, NaN, Infinity)
      let mask: Tensor | null = null;
      if (maskOn !== null) {
        const m = randn(target.shape).to("bfloat16");
        const bits = m._data as Uint16Array;
        bits[0] = 0x8000;
        bits[1] = 0x7fc0;
        bits[2] = 0x7f80;
        mask = maskOn === "a" && !isContiguous(target.shape, target._strides) ? m.T.contiguous().T : m;
        assert.deepEqual(mask._strides, target._strides, `${name}: mask strided like its operand`);
      }
      const keep = (t: Tensor, on: boolean) => {
        if (!on || mask === null) return r16(t);
        const mv = mask.to("float64");
        const pos = mv.gt(0).logicalAnd(mv.eq(mv)); // > 0, not NaN
        return r16(t).mul(pos.to("float64"));
      };
      let ref = keep(a, maskOn === "a").matmul(keep(b, maskOn === "b"));
      const mag = r16(a).abs().matmul(r16(b).abs()).dataSync();
      if (bias !== null) ref = ref.add(r16(bias));
      if (relu) ref = ref.relu();
      const want = ref.dataSync();
      const opts = {
        bias: bias === null ? null : view(bias),
        relu,
        maskA: maskOn === "a" ? view(mask!) : null,
        maskB: maskOn === "b" ? view(mask!) : null,
      };
      const n = [...batch, M, N].reduce((p, q) => p * q, 1);
      const o32 = new Float32Array(n);
      assert.equal(half!.gemmBF16!(view(a), view(b), o32, opts), true, name);
      for (let i = 0; i < n; i++) {
        const tol = (K + 2) * 2 ** -23 * mag[i] + 2 ** -126;
        assert.ok(Math.abs(o32[i] - want[i]) <= tol, `${name} f32 [${i}]: ${o32[i]} vs ${want[i]}`);
      }
      // bfloat16 out: the float32 result rounded once (the js cast of the float32 out)
      const o16 = new BFloat16Bits(n);
      assert.equal(half!.gemmBF16!(view(a), view(b), o16, opts), true, name);
      const rounded = new BFloat16Bits(n);
      jsBackend.cast({ data: o32, shape: [n], strides: [1], offset: 0 }, rounded);
      assert.deepEqual(Array.from(o16), Array.from(rounded), `${name}: bfloat16 out`);
    }
    // a mask on a float32 operand, or strided unlike it, is refused
    const a = randn([20, 30]);
    const b = randn([30, 40]).to("bfloat16");
    assert.throws(
      () => half!.gemmBF16!(view(a), view(b), new Float32Array(800), { maskA: view(a.to("bfloat16")) }),
      /dotBF16: a mask needs a bfloat16 operand/,
    );
    assert.throws(
      () => half!.gemmBF16!(view(a), view(b), new Float32Array(800), { maskB: view(b.T.contiguous().T) }),
      /dotBF16: the mask must have its operand's shape and strides/,
    );
  });

  test("the GEMM kernel checks its operands' shapes and spans", {
    skip: !hasBF16 && "no AVX512_BF16",
  }, () => {
    const view = (data: BFloat16Bits, shape: number[], offset = 0) => ({
      data,
      shape,
      strides: [shape[1], 1],
      offset,
    });
    const a = new BFloat16Bits(40 * 30);
    const b = new BFloat16Bits(30 * 25);
    // inner dimensions differ (a's K is 30, b has 20 rows)
    assert.throws(
      () => half!.dotBF16!(view(a, [40, 30]), view(b, [20, 25]), new Float32Array(40 * 25)),
      /dotBF16: operand shapes do not match/,
    );
    // an output smaller than [40, 25]
    assert.throws(() => half!.dotBF16!(view(a, [40, 30]), view(b, [30, 25]), new Float32Array(40 * 25 - 1)));
    // an operand view reaching past its storage
    assert.throws(() => half!.dotBF16!(view(a, [40, 30], 1), view(b, [30, 25]), new Float32Array(40 * 25)));
    assert.equal(half!.dotBF16!(view(a, [40, 30]), view(b, [30, 25]), new Float32Array(40 * 25)), true);
  });
};
for (const path of GEMM_PATHS)
  describe(
    `native bfloat16 GEMM (${path})`,
    { skip: !native && "the native backend is not loaded" },
    gemmSuite(path),
  );
if (native && !hasAmx)
  test("native bfloat16 GEMM (AMX)", {
    skip: "this CPU or OS has no AMX: only the vdpbf16ps path is tested here",
  }, () => {});

test("js backend: half tensors never reach the native kernels", () => {
  const prev = getBackend().name;
  setBackend("js");
  try {
    const x = tensor([1.5, 2.5, -3], { dtype: "bfloat16" });
    assert.deepEqual(x.mul(x).toArray(), [2.25, 6.25, 9]);
  } finally {
    setBackend(prev);
  }
});
