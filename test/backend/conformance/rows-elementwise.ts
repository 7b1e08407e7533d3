/**
 * Table rows of the elementwise and copy kernels: unary and binary per op, biasAct and actGrad per activation,
 * where, cast per dtype pair, copy per dtype (the reductions are in rows-reduce.ts).
 * Each row declares its dtypes, shapes, layouts, value generator (special values included wherever the
 * contract defines them: NaN, infinities, signed zeros, rounding ties, int32 wrap-around) and tolerance per
 * dtype; `cases` expands the declaration. Operand layouts rotate over the shapes so every (op, dtype) meets
 * every layout, and each operand of a call gets a different one.
 */
import {
  ACTIVATIONS,
  type Activation,
  type BinaryOp,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "../../../src/backend/backend.ts";
import { allocTyped, type DType } from "../../../src/dtype.ts";
import { type Case, kcase, EXACT, type Row, type Tol, type Tols } from "./runner.ts";
import { broadcastRow, DEST_LAYOUTS, LAYOUTS, type Layout, makeView, prng, size } from "./views.ts";

const F32: Tol = { rtol: 2e-6, atol: 1e-6 };
export const F64: Tol = { rtol: 1e-12, atol: 1e-12 };
const FLOAT_TOLS: Tols = { float32: F32, float64: F64 };
const FLOATS: readonly DType[] = ["float32", "float64"];
export const ALL: readonly DType[] = ["float32", "float64", "int32", "bool"];

/** Odd sizes (SIMD tails), 0-d, empty extents and several ranks. */
export const SHAPES: readonly (readonly number[])[] = [
  [],
  [0],
  [3, 0],
  [0, 4, 2],
  [1],
  [7],
  [15],
  [17],
  [33],
  [257],
  [3, 5],
  [4, 1, 9],
  [2, 3, 4, 5],
  [2, 17, 3],
];
/** A large input, split into parallel chunks by the native backend. */
const BIG: readonly number[] = [300, 401];

/** The layout of operand `k` of the `i`-th case: rotates, and differs between operands. */
export const lay = (i: number, k: number, list: readonly Layout[] = LAYOUTS): Layout =>
  list[(i + 3 * k) % list.length];

export const tolOf = (tols: Tols, dtype: DType): Tol => tols[dtype] ?? EXACT;
const name = (shape: readonly number[]) => `[${shape}]`;
let seed = 1000;

// ------------------------------------------------------------------------------------------------- unary
const EXACT_UNARY: readonly UnaryOp[] = [
  "neg",
  "abs",
  "sign",
  "relu",
  "floor",
  "ceil",
  "round",
  "sqrt",
  "not",
];

function unaryRow(op: UnaryOp): Row {
  const dtypes: readonly DType[] = op === "not" ? ["bool"] : ALL.filter((d) => d !== "bool");
  const tols = EXACT_UNARY.includes(op) ? {} : FLOAT_TOLS;
  const s = seed++;
  return {
    kernel: "unary",
    variant: op,
    covers: `${dtypes.join("/")}, every layout, odd/0-d/empty sizes, special values, [${BIG}]`,
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      for (const dtype of dtypes) {
        const shapes = dtype === "float32" ? [...SHAPES, BIG, BIG] : SHAPES;
        shapes.forEach((shape, i) => {
          const how = shape === BIG ? (["contiguous", "transposed"] as const)[i % 2] : lay(i, 0);
          const x = makeView(shape, dtype, how, rng, shape === BIG ? "plain" : "special");
          out.push(
            kcase(`${dtype} ${name(shape)} ${how}`, dtype, tolOf(tols, dtype), shape, dtype, (b, y) => {
              b.unary(op, x, y);
            }),
          );
        });
        if (dtype === "float32") {
          for (const x of sparseViews())
            out.push(unaryCase(op, x, dtype, `sparse view strides [${x.strides}]`));
        }
      }
      return out;
    },
  };
}

function unaryCase(op: UnaryOp, x: View, dtype: DType, label: string): Case {
  return kcase(
    label,
    dtype,
    tolOf(EXACT_UNARY.includes(op) ? {} : FLOAT_TOLS, dtype),
    x.shape,
    dtype,
    (b, y) => {
      b.unary(op, x, y);
    },
  );
}

let sparse: View[] | undefined;
/** Views of one large float32 buffer whose span is far beyond their element count (wasm gathers them). */
function sparseViews(): View[] {
  if (sparse) return sparse;
  const big = makeView([200_000], "float32", "contiguous", prng(99), "plain").data;
  sparse = [
    { data: big, shape: [50, 20], strides: [2000, 1], offset: 7 }, // contiguous runs of 20
    { data: big, shape: [40, 3, 10], strides: [-4000, 1000, 1], offset: 170_000 }, // runs, negative stride
    { data: big, shape: [300], strides: [97], offset: 3 }, // no contiguous run
    { data: big, shape: [20, 15], strides: [5, 9000], offset: 11 }, // transposed and sparse
  ];
  return sparse;
}

// ------------------------------------------------------------------------------------------------ binary
const ARITH = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"] as const;
const COMPARE = ["eq", "ne", "lt", "le", "gt", "ge"] as const;
const LOGICAL = ["and", "or", "xor"] as const;
const FLOAT_ONLY = ["atan2"] as const;
const BINARY_OPS = [...ARITH, ...COMPARE, ...LOGICAL, ...FLOAT_ONLY] satisfies readonly BinaryOp[];
// every BinaryOp has a row: this line names a missing one
export const BINARY_COMPLETE: [Exclude<BinaryOp, (typeof BINARY_OPS)[number]>] extends [never]
  ? true
  : never = true;

function binaryRow(op: BinaryOp): Row {
  const arith = (ARITH as readonly string[]).includes(op);
  const logical = (LOGICAL as readonly string[]).includes(op);
  const floatOnly = (FLOAT_ONLY as readonly string[]).includes(op);
  // ops writing their operands' dtype (atan2 too; its cases once wrote into bool outputs, equal on every backend)
  const numeric = arith || floatOnly;
  const dtypes: readonly DType[] = logical
    ? ["bool"]
    : floatOnly
      ? ["float32", "float64"]
      : arith
        ? ["float32", "float64", "int32"]
        : ALL;
  // (atan2: float32 SIMD approximations on native and wasm, within 4 ulp; float64 another libm than V8's)
  const tols =
    op === "pow"
      ? { float32: { rtol: 1e-6, atol: 0 }, float64: { rtol: 1e-13, atol: 0 } }
      : floatOnly
        ? { float32: { rtol: 1e-6, atol: 0 }, float64: { rtol: 1e-15, atol: 0 } }
        : {};
  const s = seed++;
  return {
    kernel: "binary",
    variant: op,
    covers: `${dtypes.join("/")}, mixed layouts incl. broadcast, odd/0-d/empty, specials, row/column/scalar broadcasts of [250, 300]`,
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      for (const dtype of dtypes) {
        const outType: DType = numeric ? dtype : "bool";
        SHAPES.forEach((shape, i) => {
          const [ha, hb] = [lay(i, 0), lay(i, 1)];
          const a = makeView(shape, dtype, ha, rng);
          const b2 = makeView(shape, dtype, hb, rng);
          if (size(shape) > 4 && ha === "contiguous" && hb !== "broadcast") {
            b2.data[b2.offset + b2.strides[b2.strides.length - 1]] = a.data[a.offset + a.strides.at(-1)!]; // a tie
          }
          out.push(
            kcase(
              `${dtype} ${name(shape)} ${ha}/${hb}`,
              dtype,
              tolOf(tols, dtype),
              shape,
              outType,
              (b, y) => {
                b.binary(op, a, b2, y);
              },
            ),
          );
        });
      }
      for (const dtype of dtypes) {
        // edge pairs, deterministic: NaN either side, signed zeros, x / 0; int32 overflow, INT_MIN / -1, x / 0
        const pairs: [number, number][] =
          dtype === "int32"
            ? [
                [2147483647, 3],
                [-2147483648, -1],
                [7, 0],
                [-7, 2],
                [2147483647, 2147483647],
                [-2147483648, 1],
                [3, -2],
                [0, 0],
              ]
            : dtype === "bool"
              ? [
                  [0, 0],
                  [0, 1],
                  [1, 0],
                  [1, 1],
                ]
              : [
                  [Number.NaN, 1],
                  [1, Number.NaN],
                  [-0, 0],
                  [0, -0],
                  [1, 0],
                  [-1, 0],
                  [0, 0],
                  [Infinity, -Infinity],
                  [2, 0.5],
                  [-8, 1 / 3],
                ];
        const a: View = {
          data: allocTyped(dtype, pairs.length),
          shape: [pairs.length],
          strides: [1],
          offset: 0,
        };
        const b2: View = { ...a, data: allocTyped(dtype, pairs.length) };
        pairs.forEach(([x, y], i) => {
          a.data[i] = x;
          b2.data[i] = y;
        });
        out.push(
          binaryCase(
            op,
            a,
            b2,
            dtype,
            numeric ? dtype : "bool",
            tolOf(tols, dtype),
            `${dtype} edge pairs ${JSON.stringify(pairs)}`,
          ),
        );
      }
      if (dtypes.includes("float32")) {
        const [s0, s1] = sparseViews();
        const dense = makeView(s0.shape, "float32", "contiguous", rng, "plain");
        out.push(
          binaryCase(
            op,
            s0,
            dense,
            "float32",
            numeric ? "float32" : "bool",
            tolOf(tols, "float32"),
            "a sparse view against a dense one",
          ),
        );
        out.push(
          binaryCase(
            op,
            s1,
            s1,
            "float32",
            numeric ? "float32" : "bool",
            tolOf(tols, "float32"),
            "a sparse view with itself",
          ),
        );
        // a full operand against a row, a column and a scalar broadcast (stride 0), both operand orders
        const full = makeView([250, 300], "float32", "contiguous", rng, "plain");
        const row = makeView([300], "float32", "contiguous", rng, "plain");
        const col = makeView([250], "float32", "contiguous", rng, "plain");
        const others: [string, View][] = [
          ["row", broadcastRow(row, [250, 300])],
          ["column", { ...col, shape: [250, 300], strides: [1, 0] }],
          ["scalar", { data: new Float32Array([2.5]), shape: [250, 300], strides: [0, 0], offset: 0 }],
        ];
        const outType: DType = numeric ? "float32" : "bool";
        for (const [what, other] of others) {
          out.push(
            kcase(
              `float32 [250, 300] against a ${what} broadcast, both orders`,
              "float32",
              tolOf(tols, "float32"),
              [2, 250, 300],
              outType,
              (b, y) => {
                b.binary(op, full, other, y);
                b.binary(op, other, full, y.subarray(250 * 300)); // an output with a byte offset
              },
            ),
          );
        }
      }
      return out;
    },
  };
}

function binaryCase(
  op: BinaryOp,
  a: View,
  b2: View,
  dtype: DType,
  outType: DType,
  tol: Tol,
  label: string,
): Case {
  return kcase(label, dtype, tol, a.shape, outType, (b, y) => {
    b.binary(op, a, b2, y);
  });
}

// ---------------------------------------------------------------------------------- biasAct and actGrad
const ACT_TOLS: Tols = { float32: { rtol: 4e-6, atol: 2e-6 }, float64: { rtol: 1e-14, atol: 1e-15 } };

function biasActRow(act: Activation): Row {
  const s = seed++;
  return {
    kernel: "biasAct",
    variant: act,
    covers: "float32/float64, bias broadcast by stride 0 or none, every layout of x, odd/0-d/empty, specials",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      for (const dtype of FLOATS) {
        [...SHAPES, [64, 33, 7]].forEach((shape, i) => {
          const how = lay(i, 0);
          const x = makeView(shape, dtype, how, rng);
          const last = shape.length - 1;
          const row = makeView(last >= 0 ? [shape[last]] : [], dtype, i % 2 ? "reversed" : "contiguous", rng);
          for (const bias of [broadcastRow(row, shape), null]) {
            out.push(
              kcase(
                `${dtype} ${name(shape)} x ${how}, ${bias ? "bias" : "no bias"}`,
                dtype,
                tolOf(ACT_TOLS, dtype),
                shape,
                dtype,
                (b, y) => {
                  b.biasAct(act, x, bias, y);
                },
              ),
            );
          }
        });
      }
      return out;
    },
  };
}

function actGradRow(act: Activation): Row {
  const s = seed++;
  return {
    kernel: "actGrad",
    variant: act,
    covers:
      "float32/float64, y the activation's output (relu's exact zeros), ct in every layout, odd/0-d/empty",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      for (const dtype of FLOATS) {
        [...SHAPES, [64, 33, 7]].forEach((shape, i) => {
          const yv = makeView(shape, dtype, lay(i, 1), rng);
          const y = { ...yv, data: yv.data.map((v) => (act === "relu" ? Math.max(v, 0) : Math.tanh(v))) };
          const ct = makeView(shape, dtype, lay(i, 0), rng);
          out.push(
            kcase(
              `${dtype} ${name(shape)} y ${lay(i, 1)} ct ${lay(i, 0)}`,
              dtype,
              tolOf(ACT_TOLS, dtype),
              shape,
              dtype,
              (b, r) => {
                b.actGrad(act, y, ct, r);
              },
            ),
          );
        });
      }
      return out;
    },
  };
}

// ------------------------------------------------------------------------------------ where, cast, copy
function whereRow(dtype: DType): Row {
  const s = seed++;
  return {
    kernel: "where",
    variant: dtype,
    covers: "condition and both branches in rotating layouts (broadcast included), odd/0-d/empty, specials",
    cases: () => {
      const rng = prng(s);
      return SHAPES.map((shape, i) => {
        const c = makeView(shape, "bool", lay(i, 2), rng);
        const a = makeView(shape, dtype, lay(i, 0), rng);
        const b2 = makeView(shape, dtype, lay(i, 1), rng);
        return kcase(
          `${name(shape)} cond ${lay(i, 2)} a ${lay(i, 0)} b ${lay(i, 1)}`,
          dtype,
          EXACT,
          shape,
          dtype,
          (b, y) => {
            b.where(c, a, b2, y);
          },
        );
      });
    },
  };
}

/** NaN, infinities, values outside int32, truncation toward zero, -0. */
const CAST_SPECIALS = [
  Number.NaN,
  Infinity,
  -Infinity,
  3e9,
  -3e9,
  2 ** 32 + 5,
  -(2 ** 40) - 3.7,
  2.9,
  -2.9,
  1e300,
  -0,
];

function castRow(from: DType, to: DType): Row {
  const s = seed++;
  return {
    kernel: "cast",
    variant: `${from} -> ${to}`,
    covers: "every layout, odd/0-d/empty, specials (NaN, infinities, out-of-range floats, -0)",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = SHAPES.map((shape, i) => {
        const x = makeView(shape, from, lay(i, 0), rng);
        return kcase(`${name(shape)} ${lay(i, 0)}`, from, EXACT, shape, to, (b, y) => {
          b.cast(x, y);
        });
      });
      if (from === "float64" || from === "float32") {
        const data = from === "float64" ? Float64Array.from(CAST_SPECIALS) : Float32Array.from(CAST_SPECIALS);
        const x: View = { data, shape: [data.length], strides: [1], offset: 0 };
        out.push(
          kcase(`the special values ${CAST_SPECIALS.join(", ")}`, from, EXACT, x.shape, to, (b, y) => {
            b.cast(x, y);
          }),
        );
      }
      return out;
    },
  };
}

function copyRow(dtype: DType): Row {
  const s = seed++;
  return {
    kernel: "copy",
    variant: dtype,
    covers: "every source layout into every destination layout, 2-D transposes at block edges, empty and 0-d",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      const shapes: (readonly number[])[] = [[5, 7], [3, 4, 6], [33], [2, 0, 3], [], [1, 17, 2]];
      shapes.forEach((shape, i) => {
        LAYOUTS.forEach((hs, j) => {
          const hd = DEST_LAYOUTS[(i + j) % DEST_LAYOUTS.length];
          const src = makeView(shape, dtype, hs, rng);
          const dst = makeView(shape, dtype, hd, rng);
          out.push({
            label: `${name(shape)} ${hs} -> ${hd}`,
            dtype,
            tol: EXACT,
            outShape: [dst.data.length], // the whole destination buffer: elements outside the view must survive
            run: (b) => {
              const d = { ...dst, data: dst.data.slice() };
              b.copy(src, d);
              return d.data;
            },
          });
        });
      });
      // stored [r, c], read as its transpose [c, r] into a contiguous destination (wasm's blocked transpose)
      for (const [r, c] of [
        [4, 4],
        [8, 12],
        [13, 7],
        [33, 17],
        [1, 9],
        [70, 41],
      ]) {
        const stored = makeView([r, c], dtype, "contiguous", rng);
        const src: View = { ...stored, shape: [c, r], strides: [1, c] };
        out.push(
          kcase(`transpose of a stored [${r}, ${c}]`, dtype, EXACT, [c, r], dtype, (b, y) => {
            b.copy(src, { data: y, shape: [c, r], strides: [r, 1], offset: 0 });
          }),
        );
      }
      return out;
    },
  };
}

export const ELEMENTWISE_ROWS: readonly Row[] = [
  ...UNARY_OPS.map(unaryRow),
  ...BINARY_OPS.map(binaryRow),
  ...ACTIVATIONS.map(biasActRow),
  ...ACTIVATIONS.map(actGradRow),
  ...ALL.map(whereRow),
  ...ALL.flatMap((from) => ALL.map((to) => castRow(from, to))),
  ...ALL.map(copyRow),
];
