/**
 * Table rows of the reduction kernels: reduce per op (every subset of axes, long reductions on the chunked and
 * column paths), argReduce per op (ties, NaN wins), cumsum per dtype (both directions, bool into int32).
 */
import type { ReduceOp, View } from "../../../src/backend/backend.ts";
import type { DType } from "../../../src/dtype.ts";
import { ALL, F64, lay, tolOf } from "./rows-elementwise.ts";
import { type Case, kcase, EXACT, type Row, type Tol, type Tols } from "./runner.ts";
import { type Gen, type Layout, makeView, prng } from "./views.ts";

const name = (shape: readonly number[]) => `[${shape}]`;
let seed = 1500;
// ------------------------------------------------------------------------------------------- reductions
function subsets(nd: number): number[][] {
  const out: number[][] = [];
  for (let m = 0; m < 1 << nd; m++) out.push([...Array(nd).keys()].filter((i) => m & (1 << i)));
  return out;
}

const REDUCE_SHAPES: (readonly number[])[] = [
  [5, 6, 7],
  [2, 33, 17],
  [17],
  [3, 1, 4, 2],
  [],
  [257],
  [3, 0, 2],
  [7, 1, 33],
  [17, 15],
];
/** Long reductions: the chunked (parallel) and column paths. */
const LONG: [readonly number[], number[], Layout][] = [
  [[200000], [0], "contiguous"],
  [[3, 70000], [1], "contiguous"],
  [[70000, 3], [0], "contiguous"],
  [[500, 300], [0], "gaps"],
  [[300, 500], [1], "transposed"],
  [[2, 40000], [1], "reversed"],
];

const REDUCE_OPS = ["sum", "prod", "max", "min"] as const satisfies readonly ReduceOp[];
export const REDUCE_COMPLETE: [Exclude<ReduceOp, (typeof REDUCE_OPS)[number]>] extends [never]
  ? true
  : never = true;

function reduceRow(op: ReduceOp): Row {
  const s = seed++;
  const tols: Tols = { float32: { rtol: 1e-6, atol: 1e-6 }, float64: F64 };
  return {
    kernel: "reduce",
    variant: op,
    covers:
      "float32/float64/int32, every subset of axes (none = copy), every layout, empty axes, specials, long reductions",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      // sums get NaN / Inf / -0 but no 1e30: a float32 sum of +-1e30 and small terms cancels differently in
      // another order (left open by the contract); max / min are exact with every special value
      const gen: Gen = op === "prod" ? "small" : op === "sum" ? "nonfinite" : "special";
      for (const dtype of ["float32", "float64", "int32"] as const) {
        REDUCE_SHAPES.forEach((shape, i) => {
          subsets(shape.length).forEach((axes, j) => {
            // max/min of an empty axis never reaches a backend
            if ((op === "max" || op === "min") && axes.some((a) => shape[a] === 0)) return;
            const how = lay(i + j, 0);
            const x = makeView(shape, dtype, how, rng, gen);
            const kept = shape.filter((_, d) => !axes.includes(d));
            out.push(
              reduceCase(
                op,
                x,
                axes,
                kept,
                dtype,
                tolOf(tols, dtype),
                `${dtype} ${name(shape)} axes [${axes}] ${how}`,
              ),
            );
          });
        });
        if (op === "prod") continue;
        for (const [shape, axes, how] of LONG) {
          const x = makeView(shape, dtype, how, rng, "plain");
          const kept = shape.filter((_, d) => !axes.includes(d));
          const tol = dtype === "int32" ? EXACT : { rtol: 1e-5, atol: 1e-3 };
          out.push(
            reduceCase(op, x, axes, kept, dtype, tol, `${dtype} ${name(shape)} axes [${axes}] ${how}`),
          );
        }
      }
      return out;
    },
  };
}

function reduceCase(
  op: ReduceOp,
  x: View,
  axes: number[],
  kept: number[],
  dtype: DType,
  tol: Tol,
  label: string,
): Case {
  return kcase(label, dtype, tol, kept, dtype, (b, y) => {
    b.reduce(op, x, axes, y);
  });
}

function argReduceRow(op: "argmax" | "argmin"): Row {
  const s = seed++;
  return {
    kernel: "argReduce",
    variant: op,
    covers: "every dtype and axis, rotating layouts, frequent ties, NaN and infinities, long rows",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      const shapes: [number[], Gen][] = [
        [[5, 6, 7], "round"],
        [[40, 33], "round"],
        [[300], "round"],
        [[9, 1], "round"],
        [[4, 1000], "plain"],
        [[3, 517], "round"],
      ];
      for (const dtype of ALL) {
        shapes.forEach(([shape, gen], i) => {
          for (let axis = 0; axis < shape.length; axis++) {
            const how = lay(i + axis, 0);
            const x = makeView(shape, dtype, how, rng, gen);
            const kept = shape.filter((_, d) => d !== axis);
            out.push(
              kcase(`${dtype} ${name(shape)} axis ${axis} ${how}`, dtype, EXACT, kept, "int32", (b, y) => {
                b.argReduce(op, x, axis, y);
              }),
            );
          }
        });
      }
      return out;
    },
  };
}

function cumsumRow(from: DType): Row {
  const to: DType = from === "bool" ? "int32" : from;
  const s = seed++;
  return {
    kernel: "cumsum",
    variant: `${from} -> ${to}`,
    covers: "every axis, both directions, rotating layouts, empty",
    cases: () => {
      const rng = prng(s);
      const out: Case[] = [];
      const tol = tolOf({ float32: { rtol: 1e-6, atol: 1e-5 }, float64: F64 }, to);
      [[5, 6, 7], [40, 33], [257], [9, 1], [3, 0]].forEach((shape, i) => {
        for (let axis = 0; axis < shape.length; axis++) {
          for (const reverse of [false, true]) {
            const how = lay(i + axis + (reverse ? 1 : 0), 0);
            const x = makeView(shape, from, how, rng, "plain");
            out.push(
              kcase(
                `${name(shape)} axis ${axis}${reverse ? " reverse" : ""} ${how}`,
                from,
                tol,
                shape,
                to,
                (b, y) => {
                  b.cumsum(x, axis, reverse, y);
                },
              ),
            );
          }
        }
      });
      return out;
    },
  };
}

export const REDUCE_ROWS: readonly Row[] = [
  ...REDUCE_OPS.map(reduceRow),
  argReduceRow("argmax"),
  argReduceRow("argmin"),
  ...ALL.map(cumsumRow),
];
