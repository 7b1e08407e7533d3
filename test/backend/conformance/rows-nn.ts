/**
 * Table rows of the contraction and network kernels: dot per dtype, conv2d (with and without its bias /
 * activation epilogue) and both adjoints, the five pooling kernels, gather, scatterAdd, softmax and its VJP
 * (plain and log), and the fused Adam update. float32 products are compared within the classic error bound of
 * a sum of products, gamma * sum |a| |b| with gamma = 2 u (k + 2), the bound computed by js on absolute values
 * (the reference accumulates in float64, the fast kernels in float32).
 */
import {
  ACTIVATIONS,
  type Conv2dParams,
  type Pool2dParams,
  type View,
} from "../../../src/backend/backend.ts";
import { jsBackend as J } from "../../../src/backend/js/index.ts";
import type { DType, TypedArray } from "../../../src/dtype.ts";
import { type Case, kcase, EXACT, type Row, type Tol } from "./runner.ts";
import { absView, type Gen, LAYOUTS, type Layout, makeView, prng, size } from "./views.ts";

// (the 16-bit floats never reach these kernels: they are widened to float32 first)
const U: Record<DType, number> = {
  float32: 6e-8,
  float64: 1.2e-16,
  int32: 0,
  bool: 0,
  float16: 0,
  bfloat16: 0,
};
/** The sum-of-products tolerance for `terms` products per output element. */
const productTol = (dtype: DType, terms: number, rtol = 0): Tol =>
  dtype === "int32" ? EXACT : { rtol, atol: 0, gamma: 2 * U[dtype] * (terms + 2) };
const lay = (i: number, list: readonly Layout[]): Layout => list[i % list.length];

// ------------------------------------------------------------------------------------------------------ dot
/** A [...batch, r, c] operand, its matrix stored transposed when `t`, its first batch axis broadcast if `bc`. */
function matrix(
  batch: number[],
  r: number,
  c: number,
  t: boolean,
  dtype: DType,
  rng: () => number,
  gen: Gen,
  bc = false,
): View {
  const stored = makeView([...batch, t ? c : r, t ? r : c], dtype, "contiguous", rng, gen);
  const nd = stored.shape.length;
  const strides = [...stored.strides];
  if (t) [strides[nd - 2], strides[nd - 1]] = [strides[nd - 1], strides[nd - 2]];
  if (bc && batch.length > 0) strides[0] = 0;
  return { ...stored, shape: [...batch, r, c], strides };
}

function dotCase(a: View, b2: View, dtype: DType, label: string): Case {
  const nd = a.shape.length;
  const [m, k, n] = [a.shape[nd - 2], a.shape[nd - 1], b2.shape[nd - 1]];
  const outShape = [...a.shape.slice(0, -2), m, n];
  return kcase(
    `${label} (${m}x${k} @ ${k}x${n}, batch [${a.shape.slice(0, -2)}])`,
    dtype,
    productTol(dtype, k),
    outShape,
    dtype,
    (b, y) => {
      b.dot(a, b2, y);
    },
    () => {
      const y = new Float64Array(size(outShape));
      J.dot(absView(a), absView(b2), y);
      return y;
    },
  );
}

function dotRow(dtype: DType): Row {
  return {
    kernel: "dot",
    variant: dtype,
    covers:
      "every transpose pair, odd and unit sizes, k = 0, batches with a broadcast axis, GEMM block edges, worker-pool sizes, negative strides, sparse views, NaN/Inf",
    cases: () => {
      const rng = prng(2001 + dtype.length);
      const gen: Gen = dtype === "int32" ? "special" : "small";
      const out: Case[] = [];
      const sizes = [
        [1, 1, 1],
        [7, 17, 33],
        [33, 65, 15],
        [13, 1, 40],
        [1, 300, 40],
        [300, 1, 70],
        [1, 1, 500],
        [64, 50, 0],
        [130, 70, 257],
      ];
      for (const [m, n, k] of sizes) {
        for (const [ta, tb] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ]) {
          for (const batch of m * n * k > 1e6 ? [[]] : [[], [3], [2, 2], [0]]) {
            const bc = batch.length > 0 && rng() < 0.5;
            const a = matrix(batch, m, k, ta, dtype, rng, gen, bc);
            const b2 = matrix(batch, k, n, tb, dtype, rng, gen);
            out.push(dotCase(a, b2, dtype, `ta=${ta} tb=${tb}${bc ? " a's batch broadcast" : ""}`));
          }
        }
      }
      // GEMM cache blocks (m > 128, k > 256, n > 1024) and the sizes the wasm worker pool splits by rows / columns
      for (const [m, k, n, ta, tb] of [
        [129, 257, 1030, false, false],
        [257, 33, 257, true, true],
        [61, 300, 1033, true, false],
        [1030, 129, 37, false, true],
        [65, 257, 67, true, false],
        [97, 413, 131, true, true],
      ] as const) {
        if (dtype !== "float32" && m * k * n > 2e6) continue; // the blocked GEMM and the worker pool are float32
        out.push(
          dotCase(
            matrix([], m, k, ta, dtype, rng, gen),
            matrix([], k, n, tb, dtype, rng, gen),
            dtype,
            `large ta=${ta} tb=${tb}`,
          ),
        );
      }
      out.push(
        dotCase(
          makeView([20, 9, 11], dtype, "reversed", rng, gen),
          makeView([20, 11, 5], dtype, "gaps", rng, gen),
          dtype,
          "reversed @ gaps",
        ),
      );
      out.push(
        dotCase(
          makeView([3, 7, 17], dtype, "scrambled", rng, gen),
          makeView([3, 17, 9], dtype, "scrambled", rng, gen),
          dtype,
          "scrambled @ scrambled",
        ),
      );
      // sparse views of one large buffer (a span far beyond the element count)
      const big = makeView([200_000], dtype, "contiguous", rng, gen).data;
      const sa: View = { data: big, shape: [50, 20], strides: [2000, 1], offset: 7 };
      const sb: View = { data: big, shape: [20, 30], strides: [1, 3000], offset: 5 };
      out.push(dotCase(sa, sb, dtype, "sparse views"));
      if (dtype !== "int32") {
        // 0 * Inf and 0 * NaN are NaN: no product may be skipped (zeros @ [[Inf, 1], [NaN, 2]] = [[NaN, 0], ...])
        const z = makeView([2, 2], dtype, "contiguous", rng, "plain");
        z.data.fill(0);
        const inf: View = { ...makeView([2, 2], dtype, "contiguous", rng, "plain"), offset: 0 };
        inf.data.set([Infinity, 1, Number.NaN, 2]);
        out.push(dotCase(z, inf, dtype, "zeros @ [[Inf, 1], [NaN, 2]]"));
        out.push(
          dotCase(
            makeView([2, 9, 17], dtype, "contiguous", rng, "nonfinite"),
            makeView([2, 17, 33], dtype, "transposed", rng, "nonfinite"),
            dtype,
            "NaN/Inf/zeros",
          ),
        );
      }
      return out;
    },
  };
}

// ----------------------------------------------------------------------------------------------------- conv
interface ConvShape {
  x: number[];
  w: number[];
  p: Conv2dParams;
  /** dy's layout (default: rotating through DY_LAYOUTS) */
  dy?: Layout;
}
const cp = (
  s: [number, number],
  pad: [number, number],
  d: [number, number],
  groups: number,
): Conv2dParams => ({ stride: s, padding: pad, dilation: d, groups });
const CONVS: ConvShape[] = [
  { x: [2, 3, 9, 8], w: [4, 3, 3, 3], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [2, 4, 10, 11], w: [6, 2, 3, 2], p: cp([2, 1], [1, 2], [1, 2], 2) },
  { x: [1, 3, 7, 7], w: [3, 1, 3, 3], p: cp([2, 2], [1, 1], [1, 1], 3) },
  { x: [3, 2, 5, 6], w: [2, 2, 5, 6], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [2, 2, 6, 6], w: [5, 2, 1, 1], p: cp([3, 2], [0, 1], [1, 1], 1) },
  { x: [1, 16, 20, 20], w: [32, 16, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1) },
  { x: [5, 3, 12, 12], w: [8, 3, 5, 5], p: cp([1, 1], [2, 2], [1, 1], 1) },
  { x: [2, 8, 6, 7], w: [8, 2, 3, 3], p: cp([1, 2], [1, 1], [2, 1], 4) },
  // unit stride: native's direct kernels (channel counts off the tile, padding wider than the window reach,
  // dilation with groups, images narrower than a vector, the benchmark's first layer)
  { x: [9, 5, 7, 9], w: [10, 5, 3, 2], p: cp([1, 1], [3, 2], [1, 1], 1) },
  { x: [4, 6, 9, 10], w: [34, 3, 3, 3], p: cp([1, 1], [2, 1], [2, 3], 2) },
  { x: [3, 2, 3, 2], w: [5, 2, 2, 2], p: cp([1, 1], [1, 0], [1, 1], 1) },
  // 64 and more channels per group: native's wide weight-gradient tile
  { x: [2, 3, 6, 7], w: [70, 3, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1) },
  { x: [5, 4, 5, 5], w: [128, 2, 3, 3], p: cp([1, 1], [1, 2], [1, 1], 2) },
  { x: [3, 1, 28, 28], w: [32, 1, 5, 5], p: cp([1, 1], [2, 2], [1, 1], 1) },
  // native's channel tiles (vectorised over output channels, rows split into chunks): the benchmark's second
  // layer (forward and input gradient), channels off the tile with groups, dilation and uneven chunks, and an
  // input gradient whose forward pass over dy has 31 output channels
  { x: [2, 32, 14, 14], w: [64, 32, 5, 5], p: cp([1, 1], [2, 2], [1, 1], 1) },
  { x: [2, 20, 11, 13], w: [30, 10, 5, 3], p: cp([1, 1], [1, 2], [1, 2], 2) },
  { x: [2, 31, 6, 11], w: [16, 31, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1) },
  // wasm's im2col paths: 1x1 without im2col, strided 1x1 with groups, a 1-row image
  { x: [2, 6, 5, 6], w: [3, 2, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 3) },
  { x: [1, 2, 9, 7], w: [2, 2, 2, 3], p: cp([3, 2], [2, 1], [2, 1], 1) },
  { x: [2, 4, 7, 7], w: [4, 1, 1, 1], p: cp([2, 2], [0, 0], [1, 1], 4) },
  { x: [1, 3, 1, 17], w: [5, 3, 1, 3], p: cp([1, 2], [0, 1], [1, 3], 1) },
  { x: [1, 2, 3, 3], w: [2, 2, 3, 3], p: cp([1, 1], [0, 0], [1, 1], 1) },
  // empty batch and an empty image with padding (every output a padding tap)
  { x: [0, 2, 5, 5], w: [3, 2, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1) },
  { x: [1, 1, 0, 2], w: [2, 1, 1, 1], p: cp([1, 1], [1, 1], [1, 1], 1) },
  // few taps (Cin * KH * KW <= 100, unit stride): native's shifted-plane forward tiles and its weight gradient
  // over flat dy planes (dy contiguous, or at an offset, else the older kernel): 1-3 input channels, odd widths,
  // batch 1, output channels off the register tiles, tap counts for each tap tile (3, 4, 5, 6 and their
  // remainders), padding wider than the window reach, dilation, groups, a one-position image, 100 taps, empty
  { x: [1, 1, 9, 13], w: [5, 1, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1), dy: "contiguous" },
  { x: [2, 2, 7, 5], w: [9, 2, 5, 3], p: cp([1, 1], [2, 0], [1, 1], 1), dy: "offset" },
  { x: [3, 3, 11, 17], w: [7, 3, 3, 5], p: cp([1, 1], [1, 3], [2, 1], 1), dy: "contiguous" },
  { x: [2, 4, 6, 6], w: [6, 2, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 2), dy: "contiguous" },
  { x: [1, 1, 1, 1], w: [3, 1, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "contiguous" },
  { x: [2, 1, 5, 40], w: [33, 1, 2, 2], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "offset" },
  { x: [2, 1, 8, 9], w: [3, 1, 1, 7], p: cp([1, 1], [0, 3], [1, 1], 1), dy: "contiguous" },
  { x: [1, 2, 6, 6], w: [4, 2, 1, 3], p: cp([1, 1], [0, 4], [1, 1], 1), dy: "contiguous" },
  { x: [1, 4, 6, 7], w: [5, 4, 5, 5], p: cp([1, 1], [2, 2], [1, 1], 1), dy: "contiguous" },
  { x: [2, 3, 13, 31], w: [17, 3, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1), dy: "contiguous" },
  { x: [0, 1, 6, 6], w: [4, 1, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 1), dy: "contiguous" },
  // rows wider than native's precomputed row masks for the shifted planes (256 float lanes on AVX-512)
  { x: [1, 1, 3, 300], w: [3, 1, 2, 3], p: cp([1, 1], [0, 1], [1, 1], 1), dy: "contiguous" },
  // one output channel per group (native's 1 x 4-vector tiles): depthwise 3x3 over planes of more and fewer
  // positions than a tile, with dilation; one output channel of few taps and of many (the wide tiles), with
  // groups; and their input gradients (one input channel per group)
  { x: [2, 5, 9, 13], w: [5, 1, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 5), dy: "contiguous" },
  { x: [1, 3, 4, 5], w: [3, 1, 3, 3], p: cp([1, 1], [1, 1], [1, 1], 3), dy: "contiguous" },
  { x: [2, 4, 11, 21], w: [4, 1, 3, 5], p: cp([1, 1], [2, 1], [2, 1], 4), dy: "contiguous" },
  { x: [2, 5, 11, 70], w: [1, 5, 3, 5], p: cp([1, 1], [1, 2], [1, 1], 1) },
  { x: [2, 12, 9, 37], w: [2, 6, 5, 5], p: cp([1, 1], [2, 2], [1, 1], 2) },
  { x: [3, 9, 6, 5], w: [1, 9, 4, 4], p: cp([1, 1], [0, 3], [1, 1], 1) },
  // pointwise (1 x 1, no padding, unit stride: native's per-image products): groups, dilation (no effect),
  // planes larger than a GEMM tile, more images than the weight gradient's chunks, one-row and one-column images
  // (forward passes only from 64 positions per plane on AVX-512, 32 on AVX2; x's layout rotates with the row:
  // contiguous and offset views run the products, transposed and scrambled ones the general paths)
  { x: [2, 70, 1, 67], w: [33, 70, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [2, 6, 8, 9], w: [4, 3, 1, 1], p: cp([1, 1], [0, 0], [2, 3], 2), dy: "contiguous" },
  { x: [11, 40, 9, 13], w: [27, 40, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [4, 8, 9, 8], w: [6, 4, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2) },
  { x: [2, 6, 5, 6], w: [4, 3, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "contiguous" },
  { x: [3, 5, 70, 1], w: [130, 5, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [2, 70, 1, 67], w: [33, 70, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [4, 8, 9, 8], w: [6, 4, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2) },
  { x: [2, 6, 5, 6], w: [4, 3, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "contiguous" },
  // strides up to 8 with filters wider than 1 (native's phase planes): residues some taps skip (stride 4 with
  // dilation 2 reads 2 of 4 row phases), padding wider than the filter, planes of one output row or column,
  // channel counts for the channel tiles and the 64-wide weight-gradient tile, a stem-like 7x7 stride 2 over 3
  // channels, depthwise stride 2, and a stride of 9 (the im2col GEMM)
  { x: [2, 3, 17, 19], w: [5, 3, 3, 3], p: cp([4, 3], [1, 2], [2, 1], 1) },
  { x: [1, 4, 9, 8], w: [6, 4, 2, 3], p: cp([2, 2], [3, 4], [1, 1], 1) },
  { x: [2, 6, 5, 23], w: [4, 3, 5, 3], p: cp([8, 2], [1, 1], [1, 2], 2) },
  { x: [2, 32, 15, 15], w: [64, 32, 3, 3], p: cp([2, 2], [1, 1], [1, 1], 1) },
  { x: [2, 16, 12, 12], w: [70, 16, 3, 3], p: cp([2, 2], [1, 1], [1, 1], 1) },
  { x: [2, 3, 33, 30], w: [8, 3, 7, 7], p: cp([2, 2], [3, 3], [1, 1], 1) },
  { x: [2, 8, 13, 11], w: [8, 1, 3, 3], p: cp([2, 2], [1, 1], [1, 1], 8) },
  { x: [1, 2, 20, 20], w: [3, 2, 3, 3], p: cp([9, 9], [1, 1], [1, 1], 1) },
  // pointwise forward passes on planes under 64 positions (native's one product over all images): rows 59, 60, 63
  // and 64 take contiguous or offset x (the layouts rotate by row), with groups, 7 x 7 planes and 1 x 1 ones
  { x: [3, 8, 5, 6], w: [12, 8, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [4, 6, 3, 7], w: [8, 3, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2) },
  { x: [2, 6, 5, 6], w: [4, 3, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2) },
  { x: [1, 4, 3, 3], w: [5, 4, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [5, 40, 7, 7], w: [70, 40, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  { x: [3, 3, 1, 1], w: [4, 3, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1) },
  // pointwise input and weight gradients on planes under two column panels (native's one product over all
  // images). The input gradient takes it with 64 and more output channels per group and dy contiguous or offset;
  // the weight gradient with 64 and more input channels per group (or no more output than input channels) and x
  // contiguous, offset or a transposed one-row plane (rows 67-69, 71, 72, 75, 76). Groups, planes just under and
  // at the threshold (64 positions for float32 on AVX-512, 32 for float64 there and float32 on AVX2), one product
  // deep enough for two K slices (400 output channels; 8 images of 49 positions), and one-row planes whose
  // positions are not contiguous (x transposed, dy read backwards)
  { x: [3, 8, 7, 9], w: [128, 4, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "contiguous" },
  { x: [4, 6, 8, 8], w: [192, 2, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 3), dy: "offset" },
  { x: [5, 128, 7, 9], w: [130, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "offset" },
  { x: [2, 128, 8, 8], w: [128, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "contiguous" },
  { x: [3, 128, 1, 31], w: [128, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "contiguous" },
  { x: [2, 8, 4, 8], w: [64, 8, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "offset" },
  { x: [4, 64, 1, 31], w: [64, 32, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "offset" },
  { x: [3, 16, 4, 8], w: [16, 16, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "contiguous" },
  { x: [2, 4, 2, 3], w: [64, 4, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "contiguous" },
  { x: [8, 64, 7, 7], w: [400, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "offset" },
  { x: [8, 64, 7, 7], w: [400, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 1), dy: "contiguous" },
  { x: [3, 128, 1, 20], w: [128, 64, 1, 1], p: cp([1, 1], [0, 0], [1, 1], 2), dy: "reversed" },
];

function convOut(c: ConvShape): number[] {
  const [n, , h, w] = c.x;
  const [o, , kh, kw] = c.w;
  const oh = Math.floor((h + 2 * c.p.padding[0] - c.p.dilation[0] * (kh - 1) - 1) / c.p.stride[0]) + 1;
  const ow = Math.floor((w + 2 * c.p.padding[1] - c.p.dilation[1] * (kw - 1) - 1) / c.p.stride[1]) + 1;
  return [n, o, oh, ow];
}

type ConvKernel = "conv2d" | "conv2dBackInput" | "conv2dBackWeight";
const X_LAYOUTS: readonly Layout[] = ["contiguous", "transposed", "scrambled", "offset"];
const W_LAYOUTS: readonly Layout[] = ["contiguous", "gaps", "transposed", "reversed"];
const DY_LAYOUTS: readonly Layout[] = ["contiguous", "reversed", "scrambled", "gaps"];

function convRow(kernel: ConvKernel, epilogue = false): Row {
  return {
    kernel,
    variant: epilogue ? "bias / activation epilogue" : "",
    covers: `${epilogue ? "float32/float64" : "float32/float64/int32"}, stride, padding, dilation, groups, 1x1, wide channel tiles, strided x / w / dy, empty batch and image, NaN/Inf weights`,
    cases: () => {
      const rng = prng(3001 + kernel.length + (epilogue ? 7 : 0));
      const out: Case[] = [];
      for (const dtype of (epilogue ? ["float32", "float64"] : ["float32", "float64", "int32"]) as DType[]) {
        const gen: Gen = dtype === "int32" ? "plain" : "small";
        CONVS.forEach((c, i) => {
          if (dtype === "int32" && size(c.x) * c.w[0] > 20000) return;
          const y = convOut(c);
          const x = makeView(c.x, dtype, lay(i, X_LAYOUTS), rng, gen);
          const w = makeView(c.w, dtype, lay(i, W_LAYOUTS), rng, gen);
          const dyLay = c.dy ?? lay(i, DY_LAYOUTS);
          const dy = makeView(y, dtype, dyLay, rng, gen);
          const what = `${dtype} x [${c.x}] ${lay(i, X_LAYOUTS)} w [${c.w}] ${lay(i, W_LAYOUTS)} ${JSON.stringify(c.p)}`;
          const [o, cg, kh, kw] = c.w;
          if (kernel === "conv2d" && !epilogue)
            out.push(
              convCase(
                dtype,
                what,
                y,
                cg * kh * kw,
                (b, r) => b.conv2d(x, w, r, y, c.p),
                (r) => J.conv2d(absView(x), absView(w), r, y, c.p),
              ),
            );
          if (kernel === "conv2d" && epilogue) {
            const bias = makeView([o], dtype, i % 2 ? "reversed" : "contiguous", rng, gen);
            // two epilogues per shape, rotating: a bias with no / each activation, and an activation alone
            const epilogues = [
              { bias, act: [null, ...ACTIVATIONS][i % 4] },
              { bias: null, act: ACTIVATIONS[i % 3] },
            ];
            for (const ep of epilogues) {
              const [bv, act] = [ep.bias, ep.act];
              // the bound of the convolution, plus 4 ulp for the bias sum and the activation
              out.push(
                convCase(
                  dtype,
                  `${what} bias ${bv ? "yes" : "no"} act ${act}`,
                  y,
                  cg * kh * kw,
                  (b, r) => b.conv2d(x, w, r, y, c.p, ep),
                  (r) => J.conv2d(absView(x), absView(w), r, y, c.p),
                  4 * U[dtype],
                ),
              );
            }
          }
          if (kernel === "conv2dBackInput")
            out.push(
              convCase(
                dtype,
                `${what} dy ${dyLay}`,
                c.x,
                o * kh * kw,
                (b, r) => b.conv2dBackInput(dy, w, r, c.x, c.p),
                (r) => J.conv2dBackInput(absView(dy), absView(w), r, c.x, c.p),
              ),
            );
          if (kernel === "conv2dBackWeight")
            out.push(
              convCase(
                dtype,
                `${what} dy ${dyLay}`,
                c.w,
                c.x[0] * y[2] * y[3],
                (b, r) => b.conv2dBackWeight(x, dy, r, c.w, c.p),
                (r) => J.conv2dBackWeight(absView(x), absView(dy), r, c.w, c.p),
              ),
            );
        });
        if (dtype !== "int32") {
          // weights with NaN / Inf: padding zeros take part in the products (0 * Inf = NaN), dy's padding never does
          const c: ConvShape = { x: [1, 2, 5, 6], w: [3, 2, 2, 3], p: cp([1, 1], [1, 1], [1, 1], 1) };
          const y = convOut(c);
          const x = makeView(c.x, dtype, "contiguous", rng, "small");
          const w = makeView(c.w, dtype, "contiguous", rng, "nonfinite");
          for (const k of [3, 11, 20]) w.data[k] = [Number.NaN, Infinity, -Infinity][k % 3];
          const dy = makeView(y, dtype, "contiguous", rng, "small");
          const what = `${dtype} NaN/Inf weights x [${c.x}] w [${c.w}] padding 1`;
          if (kernel === "conv2d")
            out.push(
              convCase(
                dtype,
                what,
                y,
                18,
                (b, r) => b.conv2d(x, w, r, y, c.p, epilogue ? { bias: null, act: "relu" } : undefined),
                (r) => J.conv2d(absView(x), absView(w), r, y, c.p),
                epilogue ? 4 * U[dtype] : 0,
              ),
            );
          if (kernel === "conv2dBackInput")
            out.push(
              convCase(
                dtype,
                what,
                c.x,
                18,
                (b, r) => b.conv2dBackInput(dy, w, r, c.x, c.p),
                (r) => J.conv2dBackInput(absView(dy), absView(w), r, c.x, c.p),
              ),
            );
        }
      }
      return out;
    },
  };
}

function convCase(
  dtype: DType,
  label: string,
  shape: number[],
  terms: number,
  run: (b: typeof J, out: TypedArray) => void,
  bound: (out: TypedArray) => void,
  rtol = 0,
): Case {
  return kcase(label, dtype, productTol(dtype, terms, rtol), shape, dtype, run, () => {
    const r = new Float64Array(size(shape));
    bound(r);
    return r;
  });
}

// -------------------------------------------------------------------------------------------------- pooling
const pp = (k: [number, number], s: [number, number], pad: [number, number]): Pool2dParams => ({
  kernel: k,
  stride: s,
  padding: pad,
});
const POOL_PARAMS: Pool2dParams[] = [
  pp([2, 2], [2, 2], [0, 0]), // tiled 2x2: native's fused fast path
  pp([3, 2], [3, 2], [0, 0]), // tiled, other sizes
  pp([2, 2], [3, 3], [0, 0]), // disjoint with gaps
  pp([2, 2], [2, 2], [1, 1]), // disjoint, padded
  pp([3, 3], [2, 2], [1, 1]), // overlapping
  pp([3, 2], [1, 2], [1, 0]), // overlapping rows only
  pp([1, 1], [1, 1], [0, 0]),
];
const POOL_SHAPES = [
  [2, 3, 9, 8],
  [1, 2, 5, 5],
  [3, 1, 7, 33],
  [2, 3, 14, 14], // 7 windows a row: 128-bit float vectors / a 256-bit double vector plus an overlapping one
  [1, 2, 6, 28], // 14 windows a row
  [1, 2, 3, 301],
  [0, 3, 4, 4],
  [2, 0, 4, 4],
  [1, 2, 1, 1], // smaller than most windows: no window at all
];
/** wasm's cases: its four-window SIMD path (stride 1, 2 with padding, 3), padded disjoint rows, an empty image. */
const POOL_EXTRA: [number[], Pool2dParams][] = [
  [[1, 2, 7, 5], pp([3, 3], [2, 1], [1, 1])],
  [[3, 1, 5, 9], pp([2, 3], [1, 3], [1, 1])],
  [[2, 2, 0, 4], pp([1, 1], [1, 1], [0, 0])],
  [[1, 2, 9, 6], pp([3, 3], [3, 3], [1, 0])],
  [[1, 2, 2, 6], pp([3, 3], [2, 2], [0, 0])],
  [[2, 2, 9, 13], pp([3, 3], [2, 1], [1, 1])],
  [[1, 2, 6, 18], pp([2, 2], [2, 2], [1, 1])],
  [[1, 3, 6, 20], pp([2, 3], [1, 3], [0, 1])],
];
const POOL_CASES: [number[], Pool2dParams][] = [
  ...POOL_PARAMS.flatMap((p) => POOL_SHAPES.map((s): [number[], Pool2dParams] => [s, p])),
  ...POOL_EXTRA,
];

type PoolKernel = "maxPool2d" | "maxPool2dArgmax" | "maxPool2dBackward" | "avgPool2d" | "avgPool2dBackward";

function poolRow(kernel: PoolKernel): Row {
  return {
    kernel,
    variant: "",
    covers:
      "float32/float64/int32, tiled / disjoint / overlapping / padded windows, no window, empty, rotating layouts, ties, NaN/Inf",
    cases: () => {
      const rng = prng(4001 + kernel.length);
      const out: Case[] = [];
      for (const dtype of ["float32", "float64", "int32"] as const) {
        POOL_CASES.forEach(([shape, p], i) => {
          const oh = Math.max(0, Math.floor((shape[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1);
          const ow = Math.max(0, Math.floor((shape[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1);
          const y = [shape[0], shape[1], oh, ow];
          const how = lay(i, LAYOUTS);
          const x = makeView(shape, dtype, how, rng, "special");
          const dy = makeView(
            y,
            dtype,
            lay(i + 3, LAYOUTS),
            rng,
            kernel === "maxPool2dBackward" ? "special" : "plain",
          );
          const label = `${dtype} [${shape}] ${JSON.stringify(p)} x ${how}`;
          // avg pooling divides a float64 sum; max pooling and its transpose copy values (exact, by contract)
          const tol: Tol = kernel.startsWith("avg") && dtype !== "int32" ? { rtol: 1e-6, atol: 1e-6 } : EXACT;
          const outShape = kernel.endsWith("Backward") ? shape : y;
          const outType: DType = kernel === "maxPool2dArgmax" ? "int32" : dtype;
          const run = (b: typeof J, r: TypedArray) => {
            if (kernel === "maxPool2d") b.maxPool2d(x, r, y, p);
            else if (kernel === "maxPool2dArgmax") b.maxPool2dArgmax(x, r, y, p);
            else if (kernel === "avgPool2d") b.avgPool2d(x, r, y, p);
            else if (kernel === "avgPool2dBackward") b.avgPool2dBackward(dy, r, shape, p);
            else b.maxPool2dBackward(x, dy, r, shape, p);
          };
          out.push(
            kcase(
              kernel.endsWith("Backward") ? `${label} dy ${lay(i + 3, LAYOUTS)}` : label,
              dtype,
              tol,
              outShape,
              outType,
              run,
            ),
          );
        });
      }
      return out;
    },
  };
}

export const NN_ROWS_A: readonly Row[] = [
  ...(["float32", "float64", "int32"] as const).map(dotRow),
  convRow("conv2d"),
  convRow("conv2d", true),
  convRow("conv2dBackInput"),
  convRow("conv2dBackWeight"),
  ...(["maxPool2d", "maxPool2dArgmax", "maxPool2dBackward", "avgPool2d", "avgPool2dBackward"] as const).map(
    poolRow,
  ),
];
