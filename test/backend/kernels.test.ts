/**
 * Kernel conformance: every kernel of the Backend contract on every backend against the js reference, from
 * one table (conformance/rows-*.ts), by one runner (conformance/runner.ts), on every target
 * (conformance/targets.ts): native on each instruction-set build this CPU runs with all threads and with one,
 * wasm with its worker pool and with one thread. MAPPING: filled in below.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkRow, type Row } from "./conformance/runner.ts";
import { ELEMENTWISE_ROWS } from "./conformance/rows-elementwise.ts";
import { REDUCE_ROWS } from "./conformance/rows-reduce.ts";
import { MISC_ROWS } from "./conformance/rows-misc.ts";
import { NN_ROWS_A } from "./conformance/rows-nn.ts";
import { KERNELS, nativeLoad, provides, TARGETS } from "./conformance/targets.ts";

const ROWS: readonly Row[] = [...ELEMENTWISE_ROWS, ...REDUCE_ROWS, ...NN_ROWS_A, ...MISC_ROWS];

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
