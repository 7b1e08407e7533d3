/**
 * float16 and bfloat16: rounding against PyTorch 1.13, casts between every dtype pair, promotion, ops on half
 * tensors against PyTorch's CPU results, movement ops on 16-bit storage, gradients, jit and vmap, safetensors.
 *
 * Expected bit patterns were computed with PyTorch 1.13 (`/usr/bin/python3`); the script is quoted above each
 * table.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  BFloat16Bits,
  cat,
  Float16Bits,
  getBackend,
  grad,
  init,
  io,
  jit,
  loadBackend,
  nn,
  optim,
  promoteTypes,
  setBackend,
  type Tensor,
  tensor,
  vmap,
  where,
} from "../src/node.ts";
import { f32BitsToBF16Bits, f32BitsToF16Bits, f16BitsToNumber } from "../src/io/half.ts";
import type { DType } from "../src/dtype.ts";

/** The 16-bit patterns of a half tensor (a contiguous copy of its storage). */
function bitsOf(t: Tensor): number[] {
  return Array.from(t.storageSync());
}

/** A half tensor holding exactly the given bit patterns. */
function fromBits(bits: number[], dtype: "float16" | "bfloat16", shape?: number[]): Tensor {
  const s = dtype === "float16" ? new Float16Bits(bits) : new BFloat16Bits(bits);
  return tensor(s, shape === undefined ? undefined : { shape });
}

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const isBF16NaN = (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

// PyTorch 1.13:
//   vals = [0.0, -0.0, 1.0, -1.0, 1/3, 65504.0, 65519.0, 65520.0, 65536.0, 1e9, -1e9, 6.103515625e-05,
//           6.097555160522461e-05, 5.960464477539063e-08, 2.9802322387695312e-08, 2.98023259404e-08, 1e-8,
//           8.940696716308594e-08, 1.0009765625*1.0004882812, 1.00048828125, 1.00146484375, 1.0009765625+2**-20,
//           3.0e38, 3.4e38, -3.4e38, 1.00390625, 1.01171875, 1.0078125, 2.0**-130, 2.0**-149, 1e-40, 0.1,
//           -2.7182818, 1234.5678, inf, -inf, nan]
//   x = torch.tensor(vals, dtype=torch.float32)
//   x.view(torch.int32) & 0xffffffff; x.half().view(torch.int16) & 0xffff; x.bfloat16().view(torch.int16) & 0xffff
// The cases: ties to even (65520 -> inf, 1.00048828125 -> 1, 1.00146484375 -> 1.001953125), the largest
// subnormal and smallest normal, the smallest subnormal 2^-24 and the tie 2^-25 (-> 0) and just above it (-> 1),
// float32 subnormals (bfloat16 keeps them), overflow to inf, NaN.
const F32_BITS = [
  0, 2147483648, 1065353216, 3212836864, 1051372203, 1199562752, 1199566592, 1199566848, 1199570944,
  1315859240, 3463342888, 947912704, 947896320, 864026624, 855638016, 855638017, 841731191, 868220928,
  1065365508, 1065357312, 1065365504, 1065361416, 2137108966, 2139081118, 4286564766, 1065385984, 1065451520,
  1065418752, 524288, 1, 71362, 1036831949, 3224238164, 1150964267, 2139095040, 4286578688, 2143289344,
];
const TORCH_F16 = [
  0, 32768, 15360, 48128, 13653, 31743, 31743, 31744, 31744, 31744, 64512, 1024, 1023, 1, 0, 1, 0, 2, 15362,
  15360, 15362, 15361, 31744, 31744, 64512, 15364, 15372, 15368, 0, 0, 0, 11878, 49520, 25811, 31744, 64512,
  32256,
];
// (PyTorch's vectorised bfloat16 cast writes NaN as 0xffff, its scalar one as 0x7fc0: both are NaN; chainrule
// writes 0x7fc0 with the sign kept)
const TORCH_BF16 = [
  0, 32768, 16256, 49024, 16043, 18304, 18304, 18304, 18304, 20078, 52846, 14464, 14464, 13184, 13056, 13056,
  12844, 13248, 16256, 16256, 16256, 16256, 32610, 32640, 65408, 16256, 16258, 16257, 8, 0, 1, 15821, 49198,
  17562, 32640, 65408, 65535,
];

describe("rounding float32 to float16 / bfloat16 (PyTorch 1.13 bit patterns)", () => {
  const f32 = new Float32Array(new Uint32Array(F32_BITS).buffer);
  for (const [dtype, want, isNaNBits] of [
    ["float16", TORCH_F16, isF16NaN],
    ["bfloat16", TORCH_BF16, isBF16NaN],
  ] as const) {
    test(`${dtype}: the cast kernel`, () => {
      const got = bitsOf(tensor(f32).to(dtype));
      for (let i = 0; i < want.length; i++) {
        if (isNaNBits(want[i])) assert.ok(isNaNBits(got[i]), `${dtype} NaN at ${i}: ${got[i]}`);
        else assert.equal(got[i], want[i], `${dtype} of float32 bits ${F32_BITS[i]} (${f32[i]})`);
      }
    });
    test(`${dtype}: creation from numbers and the scalar helpers agree`, () => {
      const got = bitsOf(tensor(Array.from(f32), { dtype }));
      const scalar = dtype === "float16" ? f32BitsToF16Bits : f32BitsToBF16Bits;
      for (let i = 0; i < want.length; i++) {
        if (isNaNBits(want[i])) continue;
        assert.equal(got[i], want[i], `tensor(${f32[i]}, ${dtype})`);
        assert.equal(scalar(F32_BITS[i]), want[i]);
      }
    });
  }

  test("every float16 pattern widens exactly and rounds back to itself", () => {
    const all = new Float16Bits(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const wide = tensor(all).to("float32");
    const vals = wide.dataSync();
    for (let i = 0; i < 65536; i++) {
      const v = f16BitsToNumber(i);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(vals[i]));
      else assert.ok(Object.is(vals[i], v), `pattern ${i}: ${vals[i]} vs ${v}`);
    }
    const back = bitsOf(wide.to("float16"));
    for (let i = 0; i < 65536; i++) {
      if (isF16NaN(i)) assert.ok(isF16NaN(back[i]));
      else assert.equal(back[i], i);
    }
  });

  test("every bfloat16 pattern widens to the float32 with those top bits, and back", () => {
    const all = new BFloat16Bits(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const wide = tensor(all).to("float32");
    const u = new Uint32Array(new Float32Array(wide.dataSync()).buffer);
    for (let i = 0; i < 65536; i++) assert.equal(u[i], i * 65536);
    const back = bitsOf(wide.to("bfloat16"));
    for (let i = 0; i < 65536; i++) {
      if (isBF16NaN(i)) assert.ok(isBF16NaN(back[i]));
      else assert.equal(back[i], i);
    }
  });
});

describe("casts and promotion", () => {
  const ALL: DType[] = ["float32", "float64", "int32", "bool", "float16", "bfloat16"];
  test("every dtype pair round-trips values all of them hold", () => {
    const vals = [0, 1, -2, 3, 7, -100];
    for (const a of ALL) {
      for (const b of ALL) {
        const got = tensor(vals, { dtype: a }).to(b);
        assert.equal(got.dtype, b);
        const want = vals.map((v) => (a === "bool" || b === "bool" ? (v !== 0 ? 1 : 0) : v));
        const arr = (got.toArray() as (number | boolean)[]).map(Number);
        assert.deepEqual(arr, want, `${a} -> ${b}`);
      }
    }
  });

  test("casts into a half go through float32 and round to nearest even (PyTorch 1.13)", () => {
    // torch.tensor([2049, 2051, 65535, -70000], dtype=torch.int32).half() -> [2048, 2052, inf, -inf]
    assert.deepEqual(tensor([2049, 2051, 65535, -70000], { dtype: "int32" }).to("float16").toArray(), [
      2048,
      2052,
      Infinity,
      -Infinity,
    ]);
    // torch.tensor([257, 259, 1e39], dtype=torch.float64).bfloat16() -> [256, 260, inf]
    assert.deepEqual(tensor([257, 259, 1e39], { dtype: "float64" }).to("bfloat16").toArray(), [
      256,
      260,
      Infinity,
    ]);
    // half -> int32 truncates toward zero; -> bool is x != 0 (NaN is true)
    assert.deepEqual(tensor([2.75, -2.75, 0.5], { dtype: "float16" }).to("int32").toArray(), [2, -2, 0]);
    assert.deepEqual(tensor([0, Number.NaN, -0.25], { dtype: "bfloat16" }).to("bool").toArray(), [
      false,
      true,
      true,
    ]);
    // bfloat16 -> float16: 3.140625 is exact in both; 1e-6 becomes a float16 subnormal (torch: 17 * 2^-24)
    assert.deepEqual(bitsOf(tensor([3.140625, 1e-6], { dtype: "bfloat16" }).to("float16")), [0x4248, 17]);
  });

  test("a plain Uint16Array holds numbers; Float16Bits / BFloat16Bits hold bit patterns", () => {
    assert.deepEqual(tensor(new Uint16Array([1, 65535])).toArray(), [1, 65535]);
    assert.equal(tensor(new Uint16Array([1])).dtype, "int32");
    assert.deepEqual(tensor(new Uint16Array([0x3c00]), { dtype: "float16" }).toArray(), [0x3c00]);
    assert.deepEqual(tensor(new Float16Bits([0x3c00])).toArray(), [1]);
    assert.deepEqual(tensor(new BFloat16Bits([0x3c00])).toArray(), [2 ** -7]);
    // bit patterns converted to another dtype by value
    assert.deepEqual(tensor(new Float16Bits([0x3c00, 0xc100]), { dtype: "int32" }).toArray(), [1, -2]);
  });

  test("promotion follows PyTorch", () => {
    assert.equal(promoteTypes("float16", "bfloat16"), "float32");
    assert.equal(promoteTypes("float16", "float32"), "float32");
    assert.equal(promoteTypes("bfloat16", "float64"), "float64");
    assert.equal(promoteTypes("float16", "int32"), "float16");
    assert.equal(promoteTypes("bool", "bfloat16"), "bfloat16");
    const h = tensor([1.5], { dtype: "float16" });
    const b = tensor([1.5], { dtype: "bfloat16" });
    assert.equal(h.add(b).dtype, "float32");
    assert.equal(h.add(tensor([1])).dtype, "float32");
    assert.equal(h.add(tensor([1], { dtype: "int32" })).dtype, "float16");
    assert.equal(h.mul(2.5).dtype, "float16");
    assert.equal(b.add(1).dtype, "bfloat16");
    assert.equal(tensor([1], { dtype: "int32" }).add(b).dtype, "bfloat16");
    assert.deepEqual(h.add(b).toArray(), [3]);
  });
});

// PyTorch 1.13:
//   torch.manual_seed(0); bits = lambda t: [v & 0xffff for v in t.contiguous().view(torch.int16).flatten().tolist()]
//   for dt in [torch.float16, torch.bfloat16]:
//     a = (torch.randn(3, 5) * 3).to(dt); b = (torch.randn(3, 5) * 3).to(dt); m = torch.randn(5, 4).to(dt)
//     bits(a + b), bits(a * b), bits(a.exp()), bits(a.sum()), bits(a.sum(1)), bits(a @ m)
//     bits(a.float().exp().to(dt)), bits((a.float() @ m.float()).to(dt))
// PyTorch 1.13 has no CPU float16 exp or matmul: there the reference is PyTorch's float32 op rounded once.
// PyTorch's bfloat16 matmul (oneDNN) rounds differently from its float32 matmul rounded once (up to a few
// bfloat16 ulps where terms cancel); chainrule computes the latter, so it is compared exactly with that and
// within a tolerance with the former.
const OPS = {
  float16: {
    a: [
      17567, 47883, 50825, 16082, 49794, 50226, 15575, 16647, 49233, 48343, 48937, 14430, 49444, 17051, 49773,
    ],
    b: [
      13796, 48844, 15482, 49498, 50311, 15474, 17503, 16804, 16550, 14491, 17301, 50110, 49343, 44034, 49232,
    ],
    m: [
      14529, 15915, 14351, 47290, 44537, 14719, 47797, 4942, 15036, 46695, 15400, 13755, 46047, 16539, 49031,
      43613, 48174, 48039, 10315, 14766,
    ],
    add: [
      17661, 49449, 50538, 48068, 51144, 49707, 17813, 17750, 12624, 47379, 16384, 49830, 50418, 17019, 50526,
    ],
    mul: [
      16078, 15868, 51024, 50320, 19294, 50346, 17738, 18199, 50436, 47507, 50889, 49210, 17945, 45726, 18158,
    ],
    exp: [
      22106, 13986, 5618, 17792, 10482, 9143, 17077, 18989, 12133, 13509, 12632, 16104, 11494, 20172, 10535,
    ],
    sum: [51700],
    sum1: [50264, 50094, 50035],
    matmulF32: [13548, 19467, 50951, 51063, 15673, 51514, 17147, 16706, 47582, 18601, 51502, 49310],
    matmulTorch: null,
  },
  bfloat16: {
    a: [
      16582, 48602, 15937, 49171, 16467, 16644, 16135, 49203, 49297, 49150, 16510, 15844, 48987, 48845, 16566,
    ],
    b: [
      16661, 49072, 49025, 49303, 16492, 16518, 16481, 16294, 49318, 49280, 16426, 16403, 15919, 16172, 16340,
    ],
    m: [
      49102, 48885, 48659, 48802, 48519, 48823, 49096, 48822, 16266, 15879, 16329, 16200, 49034, 48953, 16316,
      16013, 16171, 49023, 49048, 49049,
    ],
    add: [
      16760, 49086, 48978, 49376, 16608, 16711, 16513, 49088, 49436, 49344, 16596, 16410, 48943, 16011, 16619,
    ],
    mul: [
      16998, 15894, 48707, 16685, 16707, 16906, 16365, 49256, 16828, 16638, 16681, 16003, 48662, 48778, 16663,
    ],
    exp: [
      17395, 16230, 16283, 15822, 16856, 17775, 16345, 15738, 15408, 15885, 16980, 16271, 16090, 16172, 17300,
    ],
    sum: [16756],
    sum1: [16617, 48905, 16648],
    matmulF32: [49314, 49297, 49399, 49355, 49484, 16191, 49451, 49271, 49222, 49390, 49431, 49422],
    matmulTorch: [49314, 49296, 49399, 49355, 49485, 16186, 49452, 49272, 49221, 49389, 49431, 49422],
  },
} as const;

describe("ops on half tensors match PyTorch's CPU results", () => {
  for (const dtype of ["float16", "bfloat16"] as const) {
    const r = OPS[dtype];
    const a = fromBits([...r.a], dtype, [3, 5]);
    const b = fromBits([...r.b], dtype, [3, 5]);
    const m = fromBits([...r.m], dtype, [5, 4]);
    test(`${dtype}: add, mul, exp, sum`, () => {
      for (const [name, got] of [
        ["add", a.add(b)],
        ["mul", a.mul(b)],
        ["exp", a.exp()],
        ["sum", a.sum()],
        ["sum1", a.sum(1)],
      ] as const) {
        assert.equal(got.dtype, dtype);
        assert.deepEqual(bitsOf(got), [...r[name]], `${dtype} ${name}`);
      }
    });
    test(`${dtype}: matmul`, () => {
      const got = a.matmul(m);
      assert.equal(got.dtype, dtype);
      assert.deepEqual(bitsOf(got), [...r.matmulF32]);
      if (r.matmulTorch !== null) {
        const want = fromBits([...r.matmulTorch], dtype).dataSync();
        const g = got.dataSync();
        // products are O(1) here: the two orders differ by a couple of bfloat16 ulps of the result, plus a
        // few ulps of the terms where they cancel
        for (let i = 0; i < want.length; i++) {
          assert.ok(Math.abs(g[i] - want[i]) <= 2 ** -6 * Math.abs(want[i]) + 0.04, `${g[i]} vs ${want[i]}`);
        }
      }
    });
  }
});

describe("movement and selection on 16-bit storage", () => {
  test("views, copies, gather, concat and where keep the bits and the dtype", () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000];
    for (const dtype of ["float16", "bfloat16"] as const) {
      const x = fromBits(bits, dtype, [2, 3]);
      const check = (t: Tensor, want: number[], what: string) => {
        assert.equal(t.dtype, dtype, what);
        assert.deepEqual(bitsOf(t), want, `${dtype} ${what}`);
      };
      check(x.T, [bits[0], bits[3], bits[1], bits[4], bits[2], bits[5]], "transpose");
      check(x.T.contiguous(), [bits[0], bits[3], bits[1], bits[4], bits[2], bits[5]], "contiguous");
      check(
        x.T.reshape([6]),
        [bits[0], bits[3], bits[1], bits[4], bits[2], bits[5]],
        "reshape of a transpose",
      );
      check(x.flip(1), [bits[2], bits[1], bits[0], bits[5], bits[4], bits[3]], "flip");
      check(x.index(":", [1, null]), [bits[1], bits[2], bits[4], bits[5]], "slice");
      check(cat([x, x], 0), [...bits, ...bits], "cat");
      check(x.gather(1, tensor([[2], [0]], { dtype: "int32" })), [bits[2], bits[3]], "gather");
      check(
        where(
          tensor([
            [true, false, true],
            [false, true, false],
          ]),
          x,
          x.flip(1),
        ),
        [bits[0], bits[1], bits[2], bits[5], bits[4], bits[3]],
        "where",
      );
      check(x.expand([2, 2, 3]).reshape([12]).index([6, null]), bits, "broadcast");
    }
  });
});

describe("optimizers and state dicts with half tensors", () => {
  test("Adam on bfloat16 parameters follows float32 Adam to bfloat16 precision", () => {
    const x0 = [1.5, -1.25, 2, 3.75, -2.5];
    const run = (dtype: "float32" | "bfloat16") => {
      const p = tensor(x0, { dtype, requiresGrad: true });
      const opt = new optim.Adam([p], { lr: 0.1 });
      for (let i = 0; i < 5; i++) {
        opt.zeroGrad();
        p.mul(p).sum().backward();
        opt.step();
      }
      assert.equal(p.dtype, dtype);
      return p.dataSync();
    };
    const f = run("float32");
    const b = run("bfloat16");
    // Adam moves each coordinate by about lr per step: 5 steps from x0, rounded to bfloat16 each step
    for (let i = 0; i < f.length; i++)
      assert.ok(Math.abs(b[i] - f[i]) <= 0.03 * Math.abs(f[i]) + 0.02, `${b[i]} vs ${f[i]}`);
    for (let i = 0; i < f.length; i++) assert.ok(Math.abs(f[i] - x0[i]) > 0.3, "the parameters moved");
  });

  test("a float32 module loads bfloat16 / float16 weights by casting them", () => {
    const lin = new nn.Linear(3, 2);
    const w = tensor(
      [
        [1.5, -2, 0.25],
        [3, 4, 5],
      ],
      { dtype: "bfloat16" },
    );
    const b = tensor([0.1, -0.1], { dtype: "float16" });
    lin.loadStateDict({ weight: w, bias: b });
    assert.equal(lin.weight.dtype, "float32");
    assert.deepEqual(lin.weight.toArray(), w.toArray());
    assert.deepEqual(lin.bias!.toArray(), b.toArray());
  });
});

describe("backends", () => {
  test("js, wasm and native give the same bits (half storage never reaches their arithmetic kernels)", async () => {
    await init();
    const prev = getBackend().name;
    const results: [string, number[][]][] = [];
    try {
      for (const name of ["js", "wasm", "native"]) {
        if ("error" in loadBackend(name)) continue;
        setBackend(name);
        const out: number[][] = [];
        for (const dtype of ["float16", "bfloat16"] as const) {
          const x = tensor(
            [
              [1.5, -2, 3.25],
              [4, 5, -6],
              [0.1, 0.2, 0.3],
            ],
            { dtype, requiresGrad: true },
          );
          const y = x.matmul(x.T).tanh().mul(x.sum(0)).softmax(1).sum();
          y.backward();
          out.push(bitsOf(y), bitsOf(x.grad!), bitsOf(cat([x.T, x.flip(0)], 1).detach()));
        }
        results.push([name, out]);
      }
    } finally {
      setBackend(prev);
    }
    assert.ok(results.length >= 2);
    for (const [name, r] of results.slice(1))
      assert.deepEqual(r, results[0][1], `${name} vs ${results[0][0]}`);
  });
});

describe("derivatives, jit and vmap", () => {
  test("gradients of half tensors are half and equal the float32 gradients rounded", () => {
    for (const dtype of ["float16", "bfloat16"] as const) {
      const x0 = [0.5, -1.25, 2, 3.75];
      const f = (x: Tensor) => x.mul(x).mul(3).add(x.sin()).sum();
      const g = grad(f)(tensor(x0, { dtype }));
      assert.equal(g.dtype, dtype);
      // d/dx (3x^2 + sin x) = 6x + cos x, each op rounded to the dtype: compare with the float64 value
      const tol = dtype === "float16" ? 2 ** -8 : 2 ** -5;
      const got = g.dataSync();
      x0.forEach((v, i) => {
        const want = 6 * v + Math.cos(v);
        assert.ok(Math.abs(got[i] - want) <= tol * Math.abs(want), `${dtype}: ${got[i]} vs ${want}`);
      });
      const w = tensor(x0, { dtype, requiresGrad: true });
      f(w).backward();
      assert.equal(w.grad!.dtype, dtype);
      assert.deepEqual(bitsOf(w.grad!), bitsOf(g));
    }
  });

  test("jit and vmap run half programs with the eager results", () => {
    const x = tensor(
      [
        [1.5, -2, 0.1],
        [3, 4, 5],
      ],
      { dtype: "bfloat16" },
    );
    const f = (t: Tensor) => t.mul(t).add(1).exp().sum(1);
    const eager = f(x);
    const jitted = jit(f)(x) as Tensor;
    assert.equal(jitted.dtype, "bfloat16");
    assert.deepEqual(bitsOf(jitted), bitsOf(eager));
    const mapped = vmap(f)(x.reshape([2, 1, 3])) as Tensor;
    assert.deepEqual(bitsOf(mapped.reshape([2])), bitsOf(eager));
  });
});

// PyTorch 1.13 (the safetensors package is not installed; the file is written by hand from its documented
// layout, with the tensors' bytes from torch):
//   t = {"h": torch.tensor([[1.0, -2.5, 65504.0], [1e-7, inf, 0.1]], dtype=torch.float16),
//        "b": torch.tensor([3.140625, -1e30, 2.0**-130], dtype=torch.bfloat16),
//        "f": torch.tensor([0.5], dtype=torch.float32)}
//   header = {k: {"dtype": ..., "shape": ..., "data_offsets": [...]}} for k in f, b, h (data in that order)
//   hj = json.dumps(header, separators=(",", ":")).encode(); hj += b" " * ((8 - len(hj) % 8) % 8)
//   data = struct.pack("<Q", len(hj)) + hj + raw bytes (tensor.view(torch.int16/int32).numpy().tobytes())
const TORCH_FILE =
  "a8000000000000007b2266223a7b226474797065223a22463332222c227368617065223a5b315d2c22646174615f6f66667365" +
  "7473223a5b302c345d7d2c2262223a7b226474797065223a2242463136222c227368617065223a5b335d2c22646174615f6f66" +
  "6673657473223a5b342c31305d7d2c2268223a7b226474797065223a22463136222c227368617065223a5b322c335d2c226461" +
  "74615f6f666673657473223a5b31302c32325d7d7d20200000003f49404af10800003c00c1ff7b0200007c662e";

describe("safetensors F16 / BF16", () => {
  test("a file written from PyTorch 1.13 tensors loads as float16 / bfloat16 with torch's bits", () => {
    const bytes = Uint8Array.from(TORCH_FILE.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    const { tensors } = io.safetensorsToTensors(bytes);
    assert.equal(tensors.h.dtype, "float16");
    assert.deepEqual(tensors.h.shape, [2, 3]);
    // torch: t["h"].view(torch.int16) & 0xffff, t["b"].view(torch.int16) & 0xffff
    assert.deepEqual(bitsOf(tensors.h), [15360, 49408, 31743, 2, 31744, 11878]);
    assert.equal(tensors.b.dtype, "bfloat16");
    assert.deepEqual(bitsOf(tensors.b), [16457, 61770, 8]);
    // torch: t["b"].float().tolist()
    assert.deepEqual(tensors.b.toArray(), [3.140625, -1.0002555517425873e30, 7.346839692639297e-40]);
    assert.deepEqual(tensors.f.toArray(), [0.5]);
  });

  test("float16 / bfloat16 tensors save as F16 / BF16 and round-trip bit for bit", () => {
    const h = tensor([1, -2.5, 65504, 1e-7, Number.POSITIVE_INFINITY, 0.1], { dtype: "float16" }).reshape([
      2, 3,
    ]);
    const b = tensor([3.140625, -1e30, 2 ** -130, Number.NaN], { dtype: "bfloat16" });
    const bytes = io.tensorsToSafetensors({ h: h.T, b, f: tensor([0.5]) });
    const header = io.parseSafetensorsHeader(bytes);
    assert.deepEqual(
      header.entries.map((e) => [e.name, e.dtype]),
      [
        ["f", "F32"],
        ["b", "BF16"],
        ["h", "F16"],
      ],
    );
    const back = io.safetensorsToTensors(bytes).tensors;
    assert.equal(back.h.dtype, "float16");
    assert.deepEqual(bitsOf(back.h), bitsOf(h.T));
    assert.equal(back.b.dtype, "bfloat16");
    assert.deepEqual(bitsOf(back.b), bitsOf(b));
    // the same bytes PyTorch's layout gives for equal tensors: h's data is its bit patterns, little-endian
    const { tensors: raw } = io.parseSafetensors(bytes);
    assert.ok(raw.h.data instanceof Float16Bits && raw.b.data instanceof BFloat16Bits);
  });
});
