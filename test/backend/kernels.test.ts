/**
 * Kernel conformance: every kernel of the Backend contract on every backend against the js reference, from one
 * declarative table (conformance/rows-*.ts: one row per kernel and op / dtype pair, with its input generators,
 * layouts, sizes, special values and tolerance per dtype), checked by one runner (conformance/runner.ts) on every
 * target (conformance/targets.ts): native on each instruction-set build this CPU runs, with all threads and with
 * one; wasm with its worker pool and with one thread. Outputs start poisoned, so a skipped element fails; a
 * kernel or op a backend does not provide is reported as falling back to js and checked to equal js exactly;
 * wasm's per-call js fallbacks are checked against a declaration. A failure names kernel, op, target (ISA,
 * threads), case (dtype, shapes, layouts, parameters), element index and both values.
 *
 * Where the per-backend tests this suite replaced went (every case ran on every ISA and thread count there and
 * does here; wasm ran with its pool only, now also with one thread):
 * - native.test.ts unary (every op/dtype/layout, odd + empty) and [300, 401] chunks -> unary rows (float ops on
 *   float32/float64/int32, not on bool; 14 shapes incl. 0-d and empty, 7 layouts rotating, special values;
 *   every op at [300, 401] contiguous and transposed). Dropped: float ops on bool and arithmetic on bool / logic
 *   on numbers in the binary test, which the contract does not define.
 * - native binary, its scalar/row/column broadcasts; wasm binary, scalar, 0-d, int32 wrap-around and NaN pairs
 *   -> binary rows (arith on float32/float64/int32, comparisons on all dtypes, logic on bool; [250, 300] against
 *   row / column / scalar broadcasts, both orders, offset output; deterministic edge pairs).
 * - native biasAct / actGrad -> biasAct, actGrad rows (same shapes, bias broadcast or none).
 * - native and wasm where, cast (every pair, float64 specials), copy (every source x destination layout, wasm's
 *   blocked 2-D transposes) -> where, cast (16 pairs, float32 and float64 specials), copy rows (each layout
 *   pair on one of the shapes rather than on every shape).
 * - native and wasm reduce (every axis subset, empty axes, 0-d, long chunked / column reductions) -> reduce rows;
 *   argReduce, cumsum (and wasm's "delegated kernels") -> argReduce, cumsum rows.
 * - wasm sparse views of large buffers -> sparse cases of the float32 unary and binary rows and of dot.
 * - native-linalg dot (transposes, odd sizes, broadcast batches, negative strides) and wasm-nn dot (GEMM block
 *   edges, batched, k = 0 into a dirty output, empty batch, 0 * Inf) -> dot rows; 97x131x413 now float32 with
 *   both operands transposed only. Tolerances: wasm-nn's bound gamma * sum |a| |b| for every backend.
 * - native-linalg conv2d + epilogue + adjoints (14 shapes) and wasm-nn conv (8 shapes) -> conv rows (all 22,
 *   plus an empty batch, an empty image with padding and NaN/Inf weights); the epilogue rotates over two
 *   (bias, activation) pairs per shape instead of all five.
 * - native-linalg pooling and maxPool2dBackward, wasm-nn pooling -> the five pooling rows, each on the union
 *   of cases (7 window configurations x 9 shapes + wasm's 8), one rotating layout per case (was contiguous and
 *   one random).
 * - gather / scatterAdd (native, wasm; incl. broadcast indices) -> gather, scatterAdd rows (+ 0 indices).
 * - adamUpdate (native, wasm) -> adamUpdate rows (union of shapes; float64 within 1e-12, which wasm met exactly).
 * - softmax.test.ts native softmax (every axis, layout, dtype), 0-d / empty / large, special rows (rows and
 *   columns), softmaxBackward, and wasm's small (js) and large (composed) paths -> softmax and softmaxBackward
 *   rows (layouts rotate per (shape, axis) instead of all six; wasm small inputs within tolerance, not exactly).
 * - wasm inWasm(...) assertions -> targets.ts `wasmRunsJs` and the runner's fallback counter check.
 * Kept elsewhere: js hand-computed values and adjoint identities (js*.test.ts, js-nn.test.ts, softmax.test.ts),
 * native memmove / bitwise thread independence / rejected views (native.test.ts), wasm ulp bounds, worker-pool
 * bit identity and memory (wasm.test.ts), safety / zero-size / fuzz / threads files.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ATTENTION_ROWS, CELL_ROWS } from "./conformance/rows-attention.ts";
import { checkRow, type Row } from "./conformance/runner.ts";
import { ELEMENTWISE_ROWS } from "./conformance/rows-elementwise.ts";
import { REDUCE_ROWS } from "./conformance/rows-reduce.ts";
import { MISC_ROWS } from "./conformance/rows-misc.ts";
import { NN_ROWS_A } from "./conformance/rows-nn.ts";
import { KERNELS, nativeLoad, provides, TARGETS } from "./conformance/targets.ts";

const ROWS: readonly Row[] = [
  ...ELEMENTWISE_ROWS,
  ...REDUCE_ROWS,
  ...NN_ROWS_A,
  ...MISC_ROWS,
  ...ATTENTION_ROWS,
  ...CELL_ROWS,
];

test("the native addon loads (built by npm run build:native)", () => {
  assert.ok("backend" in nativeLoad, "error" in nativeLoad ? nativeLoad.error : "");
});

test("the table has a row for every kernel of the Backend contract; who falls back to js", (t) => {
  for (const k of KERNELS)
    assert.ok(
      ROWS.some((r) => r.kernel === k),
      `no conformance row for ${k}`,
    );
  for (const tg of TARGETS) {
    // by row, so an op list (a backend's unaryOps ...) shows which ops fall back
    const js = new Map<string, string[]>();
    for (const r of ROWS) {
      if (provides(tg, r.kernel, r.variant)) continue;
      js.set(r.kernel, [...(js.get(r.kernel) ?? []), r.variant]);
    }
    const all = (k: string) => ROWS.filter((r) => r.kernel === k).length;
    const list = [...js].map(([k, v]) => (v.length === all(k) ? k : `${k} (${v.join(", ")})`));
    t.diagnostic(
      `${tg.label}: ${list.length === 0 ? "every kernel its own" : `falls back to js for ${list.join("; ")}`}`,
    );
  }
});

for (const row of ROWS) {
  test(`${row.kernel}${row.variant ? ` ${row.variant}` : ""}: ${row.covers}`, (t) =>
    checkRow(t, row, TARGETS));
}
