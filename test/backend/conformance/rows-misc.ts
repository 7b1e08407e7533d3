/**
 * Table rows of the indexing, softmax, layerNorm and optimizer kernels: gather and scatterAdd per dtype, softmax and
 * softmaxBackward (plain and log) per dtype, layerNorm, layerNormBackward and the affine forms' kernels per dtype, and the fused Adam update per dtype. The softmax rows include the
 * special rows of the contract (a NaN, a +Infinity, all -Infinity, some -Infinity entries) along a row and
 * along a column, 0-d and empty inputs, and sizes that take wasm's composed path (>= 8192 elements).
 */
import type { AdamUpdateParams, View } from "../../../src/backend/backend.ts";
import { jsBackend as J } from "../../../src/backend/js/index.ts";
import { contiguousStrides } from "../../../src/shape.ts";
import type { DType } from "../../../src/dtype.ts";
import { type Case, kcase, EXACT, type Row, type Tol } from "./runner.ts";
import { type Gen, LAYOUTS, type Layout, makeView, prng, size } from "./views.ts";

const lay = (i: number, list: readonly Layout[] = LAYOUTS): Layout => list[i % list.length];

// ------------------------------------------------------------------------------------- gather, scatterAdd
function indexView(shape: number[], extent: number, how: Layout, rng: () => number): View {
  const v = makeView(shape, "int32", how, rng, "plain");
  for (let i = 0; i < v.data.length; i++) v.data[i] = Math.floor(rng() * extent);
  return v;
}

function indexRow(kernel: "gather" | "scatterAdd", dtype: DType): Row {
  const tol: Tol =
    dtype === "float32"
      ? { rtol: 1e-6, atol: 1e-6 }
      : dtype === "float64"
        ? { rtol: 1e-12, atol: 1e-12 }
        : EXACT;
  return {
    kernel,
    variant: dtype,
    covers:
      "every axis, fewer / more / no indices than the axis (duplicates), strided and broadcast operands",
    cases: () => {
      const rng = prng(5001 + dtype.length + kernel.length);
      const out: Case[] = [];
      const base = [4, 5, 6];
      let i = 0;
      for (let axis = 0; axis < 3; axis++) {
        for (const extent of [3, 7, 0]) {
          const iShape = [...base];
          iShape[axis] = extent;
          const how = lay(i);
          const idx = indexView(iShape, base[axis], lay(i + 2), rng);
          const label = `axis ${axis}, ${extent} indices, ${kernel === "gather" ? "x" : "src"} ${how}, idx ${lay(i + 2)}`;
          i++;
          if (kernel === "gather") {
            const x = makeView(base, dtype, how, rng);
            out.push(
              kcase(label, dtype, EXACT, iShape, dtype, (b, y) => {
                b.gather(x, axis, idx, y);
              }),
            );
          } else {
            const src = makeView(iShape, dtype, how, rng, "plain");
            const init = makeView(base, dtype, "contiguous", rng, "plain").data.subarray(0, size(base));
            out.push(
              kcase(`${label}, accumulating into existing contents`, dtype, tol, base, dtype, (b, y) => {
                y.set(init);
                b.scatterAdd(src, axis, idx, y, base);
              }),
            );
          }
        }
      }
      // index and source broadcast along an axis (stride 0)
      const idx: View = {
        data: Int32Array.from([0, 2, 1, 2, 2, 0]),
        shape: [3, 2, 1],
        strides: [2, 1, 0],
        offset: 0,
      };
      if (kernel === "gather") {
        const x0 = makeView([3, 4, 5], dtype, "scrambled", rng);
        const x: View = { ...x0, shape: [3, 4, 1], strides: [x0.strides[0], x0.strides[1], 0] };
        out.push(
          kcase("broadcast x and idx", dtype, EXACT, [3, 2, 1], dtype, (b, y) => {
            b.gather(x, 1, idx, y);
          }),
        );
      } else {
        const s0 = makeView([5], dtype, "contiguous", rng, "plain");
        const src: View = { ...s0, shape: [3, 2, 1], strides: [1, 0, 0] };
        out.push(
          kcase("broadcast src and idx", dtype, tol, [3, 4, 1], dtype, (b, y) => {
            b.scatterAdd(src, 1, idx, y, [3, 4, 1]);
          }),
        );
      }
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------------------ softmax
const SOFTMAX_SHAPES = [
  [1],
  [7],
  [17],
  [33],
  [257],
  [3, 5],
  [4, 1, 9],
  [2, 3, 4, 5],
  [3, 40, 5],
  [2, 7, 37],
  [5, 64],
];
/** Large inputs: native's parallel chunks; wasm's composed path (>= 8192 elements). */
const SOFTMAX_LARGE: [number[], number][] = [
  [[300, 401], 1],
  [[300, 401], 0],
  [[50, 30, 40], 1],
  [[256, 40], 1],
  [[256, 40], 0],
  [[3, 80, 37], 2],
  [[8193], 0],
];
const TOL: Record<"fwd" | "bwd", Partial<Record<DType, Tol>>> = {
  fwd: { float32: { rtol: 3e-6, atol: 3e-6 }, float64: { rtol: 1e-12, atol: 1e-12 } },
  bwd: { float32: { rtol: 1e-5, atol: 1e-5 }, float64: { rtol: 1e-12, atol: 1e-12 } },
};

/** 40 rows of 37: row k holds, by k mod 5, nothing special / a NaN / a +Infinity / all -Infinity / some -Infinity. */
function specialRows(dtype: DType): View {
  const [rows, r] = [40, 37];
  const data = dtype === "float32" ? new Float32Array(rows * r) : new Float64Array(rows * r);
  for (let k = 0; k < rows; k++) {
    for (let i = 0; i < r; i++) {
      let v = Math.sin(k * 13 + i * 7) * 3;
      const kind = k % 5;
      if (kind === 1 && i === (k * 3) % r) v = Number.NaN;
      if (kind === 2 && i === (k * 5) % r) v = Infinity;
      if (kind === 3) v = -Infinity;
      if (kind === 4 && i % 3 === 0) v = -Infinity;
      data[k * r + i] = v;
    }
  }
  return { data, shape: [rows, r], strides: [r, 1], offset: 0 };
}

function softmaxCase(x: View, axis: number, log: boolean, dtype: DType, label: string): Case {
  return kcase(label, dtype, TOL.fwd[dtype]!, x.shape, dtype, (b, y) => {
    b.softmax(x, axis, log, y);
  });
}

function softmaxRow(dtype: DType, log: boolean): Row {
  return {
    kernel: "softmax",
    variant: `${log ? "log " : ""}${dtype}`,
    covers:
      "every axis, rotating layouts, special values and the contract's special rows (rows and columns), 0-d, empty, large",
    cases: () => {
      const rng = prng(6001 + dtype.length + (log ? 1 : 0));
      const out: Case[] = [];
      let i = 0;
      for (const shape of SOFTMAX_SHAPES) {
        for (let axis = 0; axis < shape.length; axis++, i++) {
          const x = makeView(shape, dtype, lay(i), rng);
          out.push(softmaxCase(x, axis, log, dtype, `[${shape}] axis ${axis} ${lay(i)}`));
        }
      }
      for (const [shape, axis] of SOFTMAX_LARGE) {
        const how = lay(i++, ["contiguous", "transposed", "reversed", "broadcast"]);
        out.push(
          softmaxCase(
            makeView(shape, dtype, how, rng),
            axis,
            log,
            dtype,
            `large [${shape}] axis ${axis} ${how}`,
          ),
        );
      }
      const s = specialRows(dtype);
      out.push(softmaxCase(s, 1, log, dtype, "special rows [40, 37] axis 1"));
      out.push(
        softmaxCase(
          { ...s, shape: [37, 40], strides: [1, 37] },
          0,
          log,
          dtype,
          "special rows as columns [37, 40] axis 0",
        ),
      );
      out.push(
        softmaxCase(
          { data: makeView([], dtype, "offset", rng).data, shape: [], strides: [], offset: 2 },
          0,
          log,
          dtype,
          "0-d",
        ),
      );
      for (const shape of [[0], [3, 0], [0, 4, 2]])
        out.push(
          softmaxCase(
            makeView(shape, dtype, "contiguous", rng),
            shape.length - 1,
            log,
            dtype,
            `empty [${shape}]`,
          ),
        );
      return out;
    },
  };
}

function softmaxBackwardRow(dtype: DType, log: boolean): Row {
  return {
    kernel: "softmaxBackward",
    variant: `${log ? "log " : ""}${dtype}`,
    covers:
      "every axis, y a real (log-)softmax output or a transposed view, ct in rotating layouts incl. broadcast, large",
    cases: () => {
      const rng = prng(7001 + dtype.length + (log ? 1 : 0));
      const out: Case[] = [];
      const add = (shape: number[], axis: number, yv: View, ct: View, label: string) =>
        out.push(
          kcase(label, dtype, TOL.bwd[dtype]!, shape, dtype, (b, r) => {
            b.softmaxBackward(yv, ct, axis, log, r);
          }),
        );
      let i = 0;
      const shapes: [number[], number, boolean][] = [
        ...SOFTMAX_SHAPES.flatMap((s) => s.map((_, a): [number[], number, boolean] => [s, a, false])),
        ...SOFTMAX_LARGE.map(([s, a]): [number[], number, boolean] => [s, a, true]),
        [[3, 0], 1, false],
      ];
      for (const [shape, axis, large] of shapes) {
        const how = lay(i++);
        const ct = makeView(shape, dtype, how, rng, "plain");
        // y: a real (log-)softmax output, so exp(y) and the sums have their usual sizes
        const y = J.alloc(dtype, size(shape));
        J.softmax(makeView(shape, dtype, "contiguous", rng, "plain"), axis, log, y);
        const yv: View = { data: y, shape, strides: contiguousStrides(shape), offset: 0 };
        add(shape, axis, yv, ct, `${large ? "large " : ""}[${shape}] axis ${axis} ct ${how}`);
        if (!large)
          add(
            shape,
            axis,
            makeView(shape, dtype, "transposed", rng, "small"),
            ct,
            `[${shape}] axis ${axis} y transposed, ct ${how}`,
          );
      }
      return out;
    },
  };
}

// --------------------------------------------------------------------------------------------- layerNorm
/** Rows along the last axis: odd lengths, a row of one, rank 1 to 4; large ones for native's parallel chunks. */
const LN_SHAPES = [
  [1],
  [7],
  [33],
  [257],
  [3, 5],
  [4, 1],
  [4, 1, 9],
  [2, 3, 4, 5],
  [3, 40, 5],
  [2, 7, 37],
  [5, 64],
];
const LN_LARGE = [
  [300, 401],
  [4096, 128],
  [50, 30, 40],
];

function layerNormRow(dtype: DType, backward: boolean): Row {
  return {
    kernel: backward ? "layerNormBackward" : "layerNorm",
    variant: dtype,
    covers: `rows along the last axis: rotating layouts${backward ? " of x and g (incl. broadcast g)" : ""}, special rows (NaN, +-Infinity), eps 1e-5 and 0.5, empty, large`,
    cases: () => {
      const rng = prng(9001 + dtype.length + (backward ? 1 : 0));
      const out: Case[] = [];
      const tol = (backward ? TOL.bwd : TOL.fwd)[dtype]!;
      const add = (x: View, eps: number, label: string) => {
        const g = backward ? makeView(x.shape, dtype, lay(out.length + 1), rng, "plain") : null;
        out.push(
          kcase(label, dtype, tol, x.shape, dtype, (b, y) => {
            if (g === null) b.layerNorm(x, eps, y);
            else b.layerNormBackward(x, g, eps, y);
          }),
        );
      };
      let i = 0;
      for (const shape of LN_SHAPES) {
        const how = lay(i++);
        add(makeView(shape, dtype, how, rng), i % 2 === 0 ? 1e-5 : 0.5, `[${shape}] ${how}`);
      }
      for (const shape of LN_LARGE) {
        const how = lay(i++, ["contiguous", "transposed", "reversed"]);
        add(makeView(shape, dtype, how, rng, "plain"), 1e-5, `large [${shape}] ${how}`);
      }
      add(specialRows(dtype), 1e-5, "special rows [40, 37]");
      for (const shape of [[0], [3, 0], [0, 4, 2]])
        add(makeView(shape, dtype, "contiguous", rng), 1e-5, `empty [${shape}]`);
      return out;
    },
  };
}

/** LayerNorm's affine kernels (optional: wasm runs the js kernel, checked to equal it exactly). */
function layerNormAffineRow(
  dtype: DType,
  kernel: "layerNormAffine" | "layerNormScaledBackward" | "layerNormAffineGrads",
): Row {
  return {
    kernel,
    variant: dtype,
    covers:
      "rows along the last axis: rotating layouts of x, g, w and b (strided, reversed, broadcast), eps 1e-5 and 0.5, special rows, empty, large (native's row chunks)",
    cases: () => {
      const rng = prng(9101 + dtype.length + kernel.length);
      const out: Case[] = [];
      // the sums over the rows in float32: relative to the sum of magnitudes rather than to the (cancelling) sum
      const tol =
        kernel === "layerNormAffine"
          ? TOL.fwd[dtype]!
          : kernel === "layerNormScaledBackward"
            ? TOL.bwd[dtype]!
            : dtype === "float32"
              ? { rtol: 3e-5, atol: 3e-4 }
              : { rtol: 1e-11, atol: 1e-10 };
      const add = (x: View, eps: number, label: string) => {
        const n = x.shape[x.shape.length - 1];
        const k = out.length;
        const w = makeView([n], dtype, lay(k + 1), rng, "plain");
        const b = makeView([n], dtype, lay(k + 2), rng, "plain");
        const g = makeView(x.shape, dtype, lay(k + 3), rng, "plain");
        const oshape = kernel === "layerNormAffineGrads" ? [2, n] : x.shape;
        out.push(
          kcase(label, dtype, tol, oshape, dtype, (be, y) => {
            if (kernel === "layerNormAffine") be.layerNormAffine!(x, w, b, eps, y);
            else if (kernel === "layerNormScaledBackward") be.layerNormScaledBackward!(x, w, g, eps, y);
            else be.layerNormAffineGrads!(x, g, eps, y);
          }),
        );
      };
      let i = 0;
      for (const shape of LN_SHAPES) {
        const how = lay(i++);
        add(makeView(shape, dtype, how, rng, "plain"), i % 2 === 0 ? 1e-5 : 0.5, `[${shape}] ${how}`);
      }
      for (const shape of [...LN_LARGE, [70, 33], [129, 5]]) {
        const how = lay(i++, ["contiguous", "transposed", "reversed"]);
        add(makeView(shape, dtype, how, rng, "plain"), 1e-5, `large [${shape}] ${how}`);
      }
      if (kernel !== "layerNormAffineGrads") add(specialRows(dtype), 1e-5, "special rows [40, 37]");
      for (const shape of [[0], [3, 0], [0, 4, 2]])
        add(makeView(shape, dtype, "contiguous", rng), 1e-5, `empty [${shape}]`);
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------------------- adam
function adamRow(dtype: DType): Row {
  return {
    kernel: "adamUpdate",
    variant: dtype,
    covers:
      "Adam, AdamW, AMSGrad, maximize, weight decay; gradient contiguous / reversed / scrambled / transposed / broadcast; SIMD tails",
    cases: () => {
      const rng = prng(8001 + dtype.length);
      const out: Case[] = [];
      for (const [decoupled, amsgrad, maximize, weightDecay] of [
        [false, false, false, 0],
        [false, true, false, 0.01],
        [true, false, true, 0.1],
        [true, true, false, 0.05],
      ] as const) {
        for (const [shape, how] of [
          [[1], "contiguous"],
          [[33], "reversed"],
          [[37], "scrambled"],
          [[70, 41], "transposed"],
          [[5, 9], "broadcast"],
          [[70, 401], "transposed"],
        ] as const) {
          const n = size(shape);
          const g = makeView(shape, dtype, how, rng, "small");
          const init = (gen: Gen) => makeView([n], dtype, "contiguous", rng, gen).data.subarray(0, n);
          const [p0, m0, v0, x0] = [init("plain"), init("small"), init("positive"), init("positive")];
          const h: AdamUpdateParams = {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay,
            decoupled,
            maximize,
            bc1: 1 - 0.9 ** 3,
            bc2Sqrt: Math.sqrt(1 - 0.999 ** 3),
          };
          out.push({
            label: `[${shape}] g ${how} ${JSON.stringify({ decoupled, amsgrad, maximize, weightDecay })} (output: p, m, v, vmax)`,
            dtype,
            // float64 in float64 (native fuses multiply-adds: a few ulp apart); float32
            // may compute in float32 (a few ulp)
            tol: dtype === "float32" ? { rtol: 1e-6, atol: 1e-7 } : { rtol: 1e-12, atol: 1e-14 },
            outShape: [4, n],
            run: (b, o) => {
              const all = o(b, dtype, 4 * n);
              const [p, m, v, x] = [0, 1, 2, 3].map((k) => all.subarray(k * n, (k + 1) * n));
              p.set(p0);
              m.set(m0);
              v.set(v0);
              x.set(x0);
              b.adamUpdate!(p, g, m, v, amsgrad ? x : null, h);
              return all;
            },
          });
        }
      }
      return out;
    },
  };
}

export const MISC_ROWS: readonly Row[] = [
  ...(["float32", "float64", "int32", "bool"] as const).map((d) => indexRow("gather", d)),
  ...(["float32", "float64", "int32"] as const).map((d) => indexRow("scatterAdd", d)),
  ...(["float32", "float64"] as const).flatMap((d) => [softmaxRow(d, false), softmaxRow(d, true)]),
  ...(["float32", "float64"] as const).flatMap((d) => [
    softmaxBackwardRow(d, false),
    softmaxBackwardRow(d, true),
  ]),
  ...(["float32", "float64"] as const).flatMap((d) => [layerNormRow(d, false), layerNormRow(d, true)]),
  ...(["float32", "float64"] as const).flatMap((d) =>
    (["layerNormAffine", "layerNormScaledBackward", "layerNormAffineGrads"] as const).map((k) =>
      layerNormAffineRow(d, k),
    ),
  ),
  ...(["float32", "float64"] as const).map(adamRow),
];
