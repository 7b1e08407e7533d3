/**
 * The AMX path of the native bfloat16 GEMM (native/src/kernels/half.cc, amx_matrix) against the vdpbf16ps path
 * and against a float64 product of the same bfloat16-rounded operands, on edge sizes around its 16-pair, 32-row
 * and 32-column blocks (M, N, K of 1, 15..17, 31..33, odd K, K over one K block), every operand layout the kernel
 * reads differently (float32 or bfloat16, transposed, negative and zero strides, batched), bias, relu, masks, float32
 * or bfloat16 output, on one thread and two. On a CPU without AMX (or an OS that does not grant the tile state)
 * the AMX tests are skipped, saying so; the switch and the report (`nativeInfo().amx`) are tested everywhere.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import type { View } from "../src/backend/backend.ts";
import { type GemmBF16Opts, halfKernelsOf } from "../src/backend/half.ts";
import { nativeInfo, setNativeAmx, setNumThreads } from "../src/backend/native/index.ts";
import { BFloat16Bits } from "../src/dtype.ts";
import { getBackend } from "../src/node.ts";

const native = getBackend().name === "native";
const half = native ? halfKernelsOf("native") : undefined;
const cpuinfo = (() => {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
})();
const hasBF16 = /\bavx512_bf16\b/.test(cpuinfo);
const cpuHasAmx = /\bamx_tile\b/.test(cpuinfo) && /\bamx_bf16\b/.test(cpuinfo);
const defaultAmx = native ? nativeInfo().amx : false;
const defaultThreads = native ? nativeInfo().threads : 1;
/** Whether AMX runs here (the CPU and the OS): setNativeAmx(true) says so; the default is restored after. */
const amx = native ? setNativeAmx(true) : false;
if (native) setNativeAmx(defaultAmx);
const noAmx = !native
  ? "the native backend is not loaded"
  : !hasBF16
    ? "this CPU lacks AVX512_BF16 (no native bfloat16 GEMM)"
    : !amx
      ? "this CPU or OS has no AMX (amx_tile, amx_bf16 and the XTILEDATA permission): only the vdpbf16ps path runs here"
      : false;

after(() => {
  if (!native) return;
  setNativeAmx(defaultAmx);
  setNumThreads(defaultThreads);
});

// ------------------------------------------------------------------------------------------------------------
// Operands built by hand (views over float32 or bfloat16 storage with any strides) and a float64 reference.

/** A deterministic generator of normal-ish values (sum of uniforms), seeded. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  return () => u() + u() + u() - 1.5;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** float32 -> bfloat16 bits, round to nearest even (NaN -> quiet, sign kept), as the kernel packs. */
function toBF16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBF16(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** The value the kernel multiplies for element i of a view: float32 rounded to bfloat16, or bfloat16. */
function valueAt(v: View, i: number): number {
  return v.data instanceof BFloat16Bits ? fromBF16(v.data[i]) : fromBF16(toBF16(v.data[i] as number));
}

/**
 * An R x C operand (with a batch of `batch` matrices when > 0): float32 or bfloat16 storage holding random
 * values, viewed row-major, transposed (storage C x R), with negative strides (both axes flipped) or with a zero row
 * stride (every row the same line).
 */
type Layout = "rows" | "transposed" | "flipped" | "broadcast";
function operand(R: number, C: number, bf: boolean, layout: Layout, next: () => number, batch = 0): View {
  const lines = layout === "broadcast" ? 1 : R;
  const per = lines * C + 3; // 3 elements of gap between batch matrices
  const n = Math.max(1, batch) * per + 2;
  const data = bf ? new BFloat16Bits(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = bf ? toBF16(next()) : next();
  let strides: number[];
  let offset = 1;
  if (layout === "rows") strides = [C, 1];
  else if (layout === "transposed") strides = [1, R];
  else if (layout === "flipped") {
    strides = [-C, -1];
    offset += R * C - 1;
  } else strides = [0, 1];
  const shape = [R, C];
  if (batch > 0) return { data, shape: [batch, ...shape], strides: [per, ...strides], offset };
  return { data, shape, strides, offset };
}

/** The element offset of (b, r, c) in view v (rank 2 or 3). */
function at(v: View, b: number, r: number, c: number): number {
  const nd = v.shape.length;
  return v.offset + (nd === 3 ? b * v.strides[0] : 0) + r * v.strides[nd - 2] + c * v.strides[nd - 1];
}

/** Whether bfloat16 bits are > 0 (NaN and -0 are not): the masks' rule. */
const positive = (h: number) => h >= 1 && h <= 0x7f80;

/**
 * out[b, i, j] = sum_k a[b, i, k] b[b, k, j] in float64 over the bfloat16 values (masked), + bias, relu; and
 * mag = the same over absolute values (the scale of the float32 accumulation error).
 */
function reference(a: View, b: View, opts: GemmBF16Opts): { want: Float64Array; mag: Float64Array } {
  const nd = a.shape.length;
  const batch = nd === 3 ? a.shape[0] : 1;
  const [M, K] = a.shape.slice(nd - 2);
  const N = b.shape[nd - 1];
  const want = new Float64Array(batch * M * N);
  const mag = new Float64Array(batch * M * N);
  const mA = opts.maskA ?? null;
  const mB = opts.maskB ?? null;
  // dense copies of one matrix of the batch: a's rows, and b's columns (as rows), masked
  const ad = new Float64Array(M * K);
  const bd = new Float64Array(N * K);
  for (let t = 0; t < batch; t++) {
    for (let i = 0; i < M; i++)
      for (let k = 0; k < K; k++) {
        const ia = at(a, t, i, k);
        const keep = mA === null || positive((mA.data as BFloat16Bits)[ia]);
        ad[i * K + k] = keep ? valueAt(a, ia) : 0;
      }
    for (let k = 0; k < K; k++)
      for (let j = 0; j < N; j++) {
        const ib = at(b, t, k, j);
        const keep = mB === null || positive((mB.data as BFloat16Bits)[ib]);
        bd[j * K + k] = keep ? valueAt(b, ib) : 0;
      }
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        let m = 0;
        for (let k = 0; k < K; k++) {
          const p = ad[i * K + k] * bd[j * K + k];
          s += p;
          m += Math.abs(p);
        }
        if (opts.bias) s += valueAt(opts.bias, opts.bias.offset + j * opts.bias.strides[0]);
        if (opts.relu) s = Math.max(0, s);
        want[(t * M + i) * N + j] = s;
        mag[(t * M + i) * N + j] = m;
      }
    }
  }
  return { want, mag };
}

/** A bfloat16 mask over the storage of a bfloat16 operand (same offsets and strides): about half > 0, and -0. */
function maskOf(v: View, next: () => number): View {
  const m = new BFloat16Bits(v.data.length);
  for (let i = 0; i < m.length; i++) m[i] = toBF16(next());
  m[v.offset] = 0x8000;
  return { data: m, shape: v.shape, strides: v.strides, offset: v.offset };
}

/** Run the kernel on one path into a float32 and a bfloat16 output. */
function run(path: boolean, a: View, b: View, opts: GemmBF16Opts, n: number): [Float32Array, BFloat16Bits] {
  assert.equal(setNativeAmx(path), path, `AMX ${path ? "on" : "off"}`);
  const o32 = new Float32Array(n);
  const o16 = new BFloat16Bits(n);
  assert.equal(half!.gemmBF16!(a, b, o32, opts), true);
  assert.equal(half!.gemmBF16!(a, b, o16, opts), true);
  return [o32, o16];
}

/**
 * Both paths against the reference (float32 accumulation error of K products) and against each other; each
 * path's bfloat16 output is its float32 output rounded once, bit for bit.
 */
function check(name: string, a: View, b: View, opts: GemmBF16Opts): void {
  const nd = a.shape.length;
  const K = a.shape[nd - 1];
  const n = (nd === 3 ? a.shape[0] : 1) * a.shape[nd - 2] * b.shape[nd - 1];
  const { want, mag } = reference(a, b, opts);
  const [x32, x16] = run(true, a, b, opts, n);
  const [v32, v16] = run(false, a, b, opts, n);
  for (let i = 0; i < n; i++) {
    const tol = (K + 2) * 2 ** -23 * mag[i] + 2 ** -126;
    if (!(Math.abs(x32[i] - want[i]) <= tol))
      assert.fail(`${name}: AMX [${i}] ${x32[i]} vs ${want[i]} (tolerance ${tol})`);
    if (!(Math.abs(x32[i] - v32[i]) <= 2 * tol))
      assert.fail(`${name}: AMX [${i}] ${x32[i]} vs vdpbf16ps ${v32[i]}`);
    if (x16[i] !== toBF16(x32[i]))
      assert.fail(`${name}: AMX bfloat16 out [${i}] is not its float32 out rounded`);
    if (v16[i] !== toBF16(v32[i]))
      assert.fail(`${name}: vdpbf16ps bfloat16 out [${i}] is not its float32 out rounded`);
  }
}

const LAYOUTS: Layout[] = ["rows", "transposed", "flipped"];

describe("native bfloat16 GEMM on AMX tiles", () => {
  test("nativeInfo().amx reports AMX exactly where the CPU has it and CHAINRULE_NATIVE_AMX does not switch it off", {
    skip: !native && "the native backend is not loaded",
  }, () => {
    const env = process.env.CHAINRULE_NATIVE_AMX;
    // (Linux shows the amx flags only on kernels that manage the tile state, which is what grants it)
    assert.equal(amx, cpuHasAmx, "setNativeAmx(true) is true exactly on a CPU with amx_tile and amx_bf16");
    assert.equal(defaultAmx, cpuHasAmx && env !== "0", "AMX is on at load unless CHAINRULE_NATIVE_AMX=0");
    assert.equal(setNativeAmx(false), false);
    assert.equal(nativeInfo().amx, false);
    assert.equal(setNativeAmx(true), amx);
    assert.equal(nativeInfo().amx, amx);
    setNativeAmx(defaultAmx);
  });

  for (const threads of [1, 2]) {
    test(`edge sizes, every operand layout, ${threads} thread(s): AMX = vdpbf16ps = float64 within tolerance`, {
      skip: noAmx,
    }, () => {
      setNumThreads(threads);
      const next = rng(17 + threads);
      let c = 0;
      for (const M of [1, 15, 16, 17, 31, 32, 33, 65]) {
        for (const N of [1, 16, 31, 32, 33, 100]) {
          for (const K of [1, 2, 3, 31, 32, 33, 64]) {
            c++;
            const aLay = LAYOUTS[c % 3];
            const bLay = LAYOUTS[(c >> 2) % 3];
            const a = operand(M, K, c % 2 === 0, aLay, next);
            const b = operand(K, N, c % 5 < 2, bLay, next);
            check(`${M}x${K} (${aLay}) @ ${K}x${N} (${bLay})`, a, b, {});
          }
        }
      }
    });

    test(`bias, relu, masks, bfloat16 and float32 operands, ${threads} thread(s)`, { skip: noAmx }, () => {
      setNumThreads(threads);
      const next = rng(5 + threads);
      for (const [M, K, N] of [
        [33, 61, 45],
        [64, 64, 64], // whole blocks: a bfloat16 a is read in place, float32 blocks stored from the tiles
        [7, 130, 290], // N over one chunk of 8 panels
        [40, 2100, 37], // K over one K block (1050 pairs > 1024)
        // over 2^24 multiply-adds (the smaller products run on one thread): split between threads by panel
        // chunks, or by row blocks too (each part packing its own B)
        [300, 400, 150],
        [70, 600, 520],
      ]) {
        for (let v = 0; v < 6; v++) {
          const abf = v % 2 === 0;
          const a = operand(M, K, abf || v === 3, v === 5 ? "transposed" : "rows", next);
          const b = operand(K, N, v >= 3, v === 4 ? "transposed" : "rows", next);
          const bias = v % 3 === 0 ? null : operand(1, N, v === 2, "rows", next);
          const biasView: View | null =
            bias === null ? null : { data: bias.data, shape: [N], strides: [1], offset: bias.offset };
          const opts: GemmBF16Opts = {
            bias: biasView,
            relu: v % 2 === 1,
            maskA: v === 3 ? maskOf(a, next) : null,
            maskB: v === 4 ? maskOf(b, next) : null,
          };
          check(`${M}x${K}x${N} variant ${v}`, a, b, opts);
        }
      }
    });
  }

  test("batched operands, zero strides, a large bfloat16 a (packed, not read in place)", {
    skip: noAmx,
  }, () => {
    const next = rng(99);
    check("batch 3", operand(20, 35, true, "rows", next, 3), operand(35, 40, false, "flipped", next, 3), {});
    check(
      "batch 2, a transposed",
      operand(33, 64, false, "transposed", next, 2),
      operand(64, 17, true, "rows", next, 2),
      {
        relu: true,
      },
    );
    check(
      "a with a zero row stride",
      operand(40, 50, true, "broadcast", next),
      operand(50, 33, true, "rows", next),
      {},
    );
    check(
      "b with a zero row stride",
      operand(40, 50, false, "rows", next),
      operand(50, 33, false, "broadcast", next),
      {},
    );
    // 576 x 512 bfloat16 = 576 KiB: over the in-place limit
    check(
      "576x512 @ 512x40",
      operand(576, 512, true, "rows", next),
      operand(512, 40, true, "rows", next),
      {},
    );
  });

  test("an odd K never reads past a row (a bfloat16 a of whole 32-row blocks, K = 31: packed, not read in place)", {
    skip: noAmx,
  }, () => {
    const next = rng(8);
    const [M, K, N] = [64, 31, 20];
    const a = operand(M, K, true, "rows", next);
    const b = operand(K, N, true, "rows", next);
    // +inf first in every odd row: the element just past the even rows' last one
    for (let i = 1; i < M; i += 2) (a.data as BFloat16Bits)[at(a, 0, i, 0)] = 0x7f80;
    const { want } = reference(a, b, {});
    const [x32] = run(true, a, b, {}, M * N);
    for (let i = 0; i < M; i += 2)
      for (let j = 0; j < N; j++) {
        const g = x32[i * N + j];
        assert.ok(Number.isFinite(g), `row ${i} [${j}]: ${g} (read past the row?)`);
        assert.ok(Math.abs(g - want[i * N + j]) <= 1e-3 * (1 + Math.abs(want[i * N + j])), `row ${i} [${j}]`);
      }
  });

  test("infinities and NaN propagate as on the vdpbf16ps path (zero padding never meets an infinity)", {
    skip: noAmx,
  }, () => {
    const next = rng(3);
    const [M, K, N] = [20, 33, 35]; // odd K: the last pair and the K padding hold zeros
    const a = operand(M, K, true, "rows", next);
    const b = operand(K, N, true, "rows", next);
    const ad = a.data as BFloat16Bits;
    const bd = b.data as BFloat16Bits;
    ad[at(a, 0, 0, K - 1)] = 0x7f80; // +inf in the last column of a's row 0
    ad[at(a, 0, 1, 5)] = 0x7fc0; // NaN in row 1
    bd[at(b, 0, K - 1, 3)] = 0; // +inf x 0: NaN in (0, 3)
    for (let j = 0; j < N; j++) if (j !== 3) bd[at(b, 0, K - 1, j)] = 0x3f80; // 1: +inf elsewhere in row 0
    const { want } = reference(a, b, {});
    const [x32] = run(true, a, b, {}, M * N);
    const [v32] = run(false, a, b, {}, M * N);
    for (let i = 0; i < M * N; i++) {
      if (!Number.isFinite(want[i]) || i < 2 * N) {
        assert.ok(
          Object.is(x32[i], want[i]) || (Number.isNaN(x32[i]) && Number.isNaN(want[i])),
          `[${i}] ${x32[i]} vs ${want[i]}`,
        );
        assert.ok(
          Object.is(x32[i], v32[i]) || (Number.isNaN(x32[i]) && Number.isNaN(v32[i])),
          `[${i}] vs vdpbf16ps`,
        );
      } else {
        assert.ok(Number.isFinite(x32[i]), `[${i}] finite`);
      }
    }
    assert.ok(Number.isNaN(x32[3]) && x32[0] === Infinity && Number.isNaN(x32[N]), "inf, inf x 0, NaN rows");
  });
});
