/**
 * Page checks of what the webgpu backend does with errors and values that depend on GPU values (webgpu-page.ts
 * runs them; webgpu-report.ts asserts the result):
 * - LinAlgErrors of device-only values: cholesky / inv / solve of a batch with one bad matrix on values only
 *   the GPU has raise PyTorch's message when the result, or a value computed from it (also through jit), is
 *   read with `await t.data()`, and again on a second read; unrelated values and the good results read fine;
 *   host-readable inputs raise at once; the `*Ex` functions return info on the device and raise nothing (or,
 *   with checkErrors, on reading).
 * - float32 comparisons with NaN on the GPU (IEEE: false, `ne` true).
 * - A bool mask made from host-readable float32 values, used by float32 GPU work and then negated inside
 *   float64 (host) work: a float64 gradCheck of masked attention passes.
 */
import * as cr from "../../src/index.ts";

/** Values read back; NaN and infinities as strings. */
export type Values = (number | string)[];

/** What the checks found (strings are messages, "" where nothing was thrown). */
export interface DeviceErrorReport {
  cholesky: { factor: string; derived: string; again: string; dataSync: string; unrelated: Values };
  inv: string;
  solve: string;
  invSingle: string;
  jit: string;
  /** cholesky of host-readable values: thrown by the call itself. */
  atOnce: string;
  /** After the failures, a good batched cholesky, inv and solve on device-only values. */
  good: { chol: Values; inv: Values; solve: Values };
  ex: {
    cholInfo: Values;
    cholL: Values;
    invInfo: Values;
    inverse: Values;
    solveInfo: Values;
    checkErrors: string;
  };
  nan: Record<string, Values>;
  boolMask: { float32: number; float64: string };
}

const SPD = [
  [4, 2],
  [2, 3],
];
const NOT_PD = [
  [1, 2],
  [2, 1],
];
const SPD2 = [
  [9, 3],
  [3, 5],
];
const SINGULAR = [
  [1, 2],
  [2, 4],
];
const EYE = [
  [1, 0],
  [0, 1],
];

/** A tensor whose values only the GPU has (written by a kernel). */
const dev = (x: number[][] | number[][][] | number[]) => cr.tensor(x).mul(1);

async function readError(t: cr.Tensor): Promise<string> {
  try {
    await t.data();
    return "";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

function syncError(f: () => unknown): string {
  try {
    f();
    return "";
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

/** The values, non-finite ones as strings (the page's result travels as JSON). */
const values = async (t: cr.Tensor): Promise<(number | string)[]> =>
  Array.from(await t.data(), (v) => (Number.isFinite(Number(v)) ? Number(v) : String(v)));

export async function deviceErrorChecks(): Promise<DeviceErrorReport> {
  const la = cr.linalg;
  const A = dev([SPD, NOT_PD, SPD2]);
  const L = la.cholesky(A);
  const y = L.matmul(L.mT).sum();
  const unrelated = await values(dev([1, 2]).add(1));
  const cholesky = {
    factor: await readError(L),
    derived: await readError(y),
    again: await readError(L),
    dataSync: syncError(() => L.dataSync()),
    unrelated,
  };
  const B = dev([SINGULAR, EYE]);
  const inv = await readError(la.inv(B).add(1));
  const solve = await readError(la.solve(B, cr.ones([2, 2, 1])));
  const invSingle = await readError(la.inv(dev(SINGULAR)));
  const f = cr.jit((a: cr.Tensor) => la.cholesky(a).sum(-1));
  const jit = await readError(f(A) as cr.Tensor);
  const atOnce = syncError(() => la.cholesky(cr.tensor([SPD, NOT_PD])));

  const good = {
    chol: await values(la.cholesky(dev([SPD, SPD2]))),
    inv: await values(la.inv(dev([SPD, EYE]))),
    solve: await values(la.solve(dev([SPD2, EYE]), dev([1, 2]))),
  };

  const c = la.choleskyEx(A);
  const i = la.invEx(B);
  const s = la.solveEx(B, cr.ones([2, 2]));
  const ex = {
    cholInfo: await values(c.info),
    cholL: await values(c.L),
    invInfo: await values(i.info),
    inverse: await values(i.inverse),
    solveInfo: await values(s.info),
    checkErrors: await readError(la.choleskyEx(A, { checkErrors: true }).info),
  };

  const x = dev([Number.NaN, 1, Number.NaN, 2, 3]);
  const z = dev([Number.NaN, 1, 3, Number.NaN, 3]);
  const nan: Record<string, Values> = {};
  for (const op of ["eq", "ne", "lt", "le", "gt", "ge"] as const) nan[op] = await values(x[op](z));

  // a bool mask from host-readable float32 values (computed on the host, index.ts hostFirst): first in float32
  // attention on the GPU, then negated inside float64 work
  const keep = [
    [1, 1, 0, 1, 1],
    [1, 0, 1, 1, 1],
    [1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1],
  ];
  const mask = () => cr.tensor(keep).gt(0);
  cr.manualSeed(3);
  const q = cr.randn([2, 4, 3], { dtype: "float64" });
  const k = cr.randn([2, 5, 3], { dtype: "float64" });
  const v = cr.randn([2, 5, 2], { dtype: "float64" });
  const m = mask();
  const o32 = cr.nn.scaledDotProductAttention(q.to("float32"), k.to("float32"), v.to("float32"), {
    attnMask: m,
  });
  const float32 = Number((await values(o32.sum())).at(0));
  let float64 = "";
  try {
    const fn = (a: cr.Tensor, b: cr.Tensor, c2: cr.Tensor) =>
      cr.nn.scaledDotProductAttention(a, b, c2, { attnMask: m });
    const r = cr.gradCheck(fn, [q, k, v], { directions: 2, raise: false });
    float64 = r.ok ? "ok" : `gradCheck failed: ${r.worst}`;
    const ref = Number((await values(fn(q, k, v).sum())).at(0));
    if (Math.abs(ref - float32) > 1e-4 * (1 + Math.abs(ref)))
      float64 = `float64 ${ref} vs float32 ${float32}`;
  } catch (e) {
    float64 = `threw ${(e as Error).name}: ${(e as Error).message}`;
  }
  return { cholesky, inv, solve, invSingle, jit, atOnce, good, ex, nan, boolMask: { float32, float64 } };
}
