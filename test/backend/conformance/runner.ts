/**
 * The generic part of the kernel conformance suite: what a table row declares, and the runner that checks one
 * row on every target against the js reference.
 *
 * A row names a Backend kernel (and its op or dtype pair) and produces its cases; a case is one call: a label
 * (dtype, shapes, layouts, parameters), the output's logical shape (to name a wrong element by its index),
 * a tolerance, and `run`, which calls the kernel on a backend and returns what it wrote. The js result is
 * computed once per case; every target then runs the same inputs. Outputs are allocated uninitialised and
 * filled with a poison value first, so a kernel that skips an element fails.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import type { Backend } from "../../../src/backend/backend.ts";
import { jsBackend as J } from "../../../src/backend/js/index.ts";
import type { DType, TypedArray } from "../../../src/dtype.ts";
import { type Kernel, provides, restoreDefaults, type Target, wasmRunsJs } from "./targets.ts";
import { unravel } from "./views.ts";

/**
 * |got - want| <= atol + rtol |want| + gamma * bound[i], where bound (a case's `bound`) is the same
 * computation on absolute values: the classic error bound of a float32 sum of products.
 */
export interface Tol {
  readonly rtol: number;
  readonly atol: number;
  readonly gamma?: number;
}
export const EXACT: Tol = { rtol: 0, atol: 0 };

/** Per-dtype tolerances of a row; dtypes not named are compared exactly. */
export type Tols = Partial<Record<DType, Tol>>;

/** An output allocator: the backend's uninitialised buffer, filled with a poison value. */
export type Out = (b: Backend, dtype: DType, n: number) => TypedArray;

export interface Case {
  readonly label: string;
  /** The dtype that selects the tolerance and the wasm declaration (the inputs' dtype). */
  readonly dtype: DType;
  readonly tol: Tol;
  /** The logical shape of the returned array (row-major), for error messages. */
  readonly outShape: readonly number[];
  run(b: Backend, out: Out): TypedArray;
  /** For a tolerance with gamma: the computation on absolute values (js, float64). */
  bound?(): TypedArray;
}

export interface Row {
  readonly kernel: Kernel;
  /** The op or dtype pair, "" if the kernel has none. */
  readonly variant: string;
  /** What the cases cover (shown in the test name). */
  readonly covers: string;
  /** The cases, drawn from a PRNG seeded by the row (so every row is reproducible on its own). */
  cases(): Case[];
}

/**
 * A case whose result is one fresh output of `outType` and shape `outShape`, which `call` fills (the runner
 * allocates it poisoned, on the backend under test).
 */
export function kcase(
  label: string,
  dtype: DType,
  tol: Tol,
  outShape: readonly number[],
  outType: DType,
  call: (b: Backend, out: TypedArray) => void,
  bound?: () => TypedArray,
): Case {
  const n = outShape.reduce((a, d) => a * d, 1);
  return {
    label,
    dtype,
    tol,
    outShape,
    run: (b, o) => {
      const y = o(b, outType, n);
      call(b, y);
      return y;
    },
    bound,
  };
}

const POISON: Record<DType, number> = {
  float32: -777.25,
  float64: -777.25,
  int32: -777,
  bool: 7,
  float16: 0xfc01, // a NaN bit pattern
  bfloat16: 0xff81,
};

export const poisoned: Out = (b, dtype, n) => b.alloc(dtype, n, true).fill(POISON[dtype]);

/** The first element where got and want disagree, as a sentence; null if they agree. */
export function mismatch(
  got: TypedArray,
  want: TypedArray,
  c: Case,
  bound: TypedArray | null,
): string | null {
  if (got.constructor !== want.constructor)
    return `output is a ${got.constructor.name}, js gives ${want.constructor.name}`;
  if (got.length !== want.length) return `output has ${got.length} elements, js ${want.length}`;
  const { rtol, atol, gamma = 0 } = c.tol;
  const exact = rtol === 0 && atol === 0 && gamma === 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (exact ? Object.is(g, w) : g === w) continue;
    const lim = atol + rtol * Math.abs(w) + (bound ? gamma * bound[i] : 0);
    if (!exact && Math.abs(g - w) <= lim) continue;
    const where = c.outShape.length > 0 ? ` (index [${unravel(i, c.outShape)}] of [${c.outShape}])` : "";
    const allowed =
      Number.isNaN(g) || Number.isNaN(w)
        ? "NaN against a number"
        : exact
          ? "exact"
          : `|diff| ${Math.abs(g - w)} > ${lim}`;
    return `element ${i}${where} is ${Object.is(g, -0) ? "-0" : g}, js gives ${Object.is(w, -0) ? "-0" : w} (${allowed})`;
  }
  return null;
}

/**
 * Check one row on every target. Fails with up to 8 messages naming kernel, variant, target (ISA, threads),
 * case, index and values; reports (as test diagnostics) targets that run the js kernel for it.
 */
export function checkRow(t: TestContext, row: Row, targets: readonly Target[]): void {
  const name = row.variant ? `${row.kernel} ${row.variant}` : row.kernel;
  const failures: string[] = [];
  const wasmPaths = new Set<string>();
  const cases = row.cases();
  assert.ok(cases.length > 0, `${name}: the row has no cases`);
  const fallsBack = targets.filter((tg) => !provides(tg, row.kernel, row.variant));
  for (const tg of fallsBack)
    t.diagnostic(`${tg.label}: ${name} falls back to js (checked to equal js exactly)`);
  let compared = 0;
  // js once per case; then each target runs every case (switching a target's threads costs milliseconds)
  const refs = cases.map((c) => {
    const want = c.run(J, poisoned);
    const bound = c.tol.gamma ? c.bound!() : null;
    return { c, want, bound };
  });
  try {
    for (const tg of targets) {
      const own = !fallsBack.includes(tg);
      tg.enter();
      // a kernel or op the backend omits runs as the registry completes a Partial backend: the js kernel
      const backend = own ? tg.backend : { ...tg.backend, [row.kernel]: J[row.kernel] };
      for (const { c, want, bound } of refs) {
        const before = tg.jsCalls(row.kernel);
        let got: TypedArray;
        try {
          got = c.run(backend, poisoned);
        } catch (e) {
          failures.push(`${name} on ${tg.label}: case ${c.label}: threw ${(e as Error).message}`);
          if (failures.length >= 8) break;
          continue;
        }
        const m = mismatch(got, want, own ? c : { ...c, tol: EXACT }, bound);
        compared++;
        if (m !== null)
          failures.push(`${name} on ${tg.label}${own ? "" : " (js fallback)"}: case ${c.label}: ${m}`);
        const after = tg.jsCalls(row.kernel);
        if (before !== null && after !== null && own) {
          const ranJs = after > before;
          const declared = wasmRunsJs(row.kernel, c.dtype, row.variant || undefined);
          if (ranJs) wasmPaths.add(`${name} ${c.dtype}`);
          if (declared === false && ranJs) {
            failures.push(
              `${name} on ${tg.label}: case ${c.label}: ran the js kernel, but targets.ts declares that ` +
                `${c.dtype} runs in wasm`,
            );
          }
        }
        if (failures.length >= 8) break;
      }
      if (failures.length >= 8) break;
    }
  } finally {
    restoreDefaults();
  }
  for (const k of wasmPaths) t.diagnostic(`wasm: ${k} runs the js kernel (declared)`);
  if (failures.length > 0) assert.fail(`${failures.length} mismatch(es):\n  ${failures.join("\n  ")}`);
  assert.ok(compared > 0, `${name}: nothing compared`);
}
