/**
 * The checks of a webgpu run (webgpu-page.ts's `runWebgpuChecks`), shared by the Chromium test and the Node
 * test of the npm package \`webgpu\`: the kernel checks found no mismatch, the synchronous-read errors, the
 * memory figure, and the MLP / CNN training compared with the same scenario run on the js backend here.
 */
import assert from "node:assert/strict";
import { setBackend } from "../../src/index.ts";
import type { DeviceErrorReport } from "./webgpu-errors-checks.ts";
import { cnnStepsAsync, type MlpResult, mlpStepsAsync } from "./webgpu-scenario.ts";

/** What `runWebgpuChecks` reports (as JSON from the page, or directly in Node). */
export interface WebgpuReport {
  skip?: string;
  init: { backend: string; fallback?: string; adapter?: string };
  info: { adapter: string; software?: boolean; submits: number; dispatches: number };
  checked: number;
  failures: string[];
  kernelsMs: number;
  syncRead: {
    message: string;
    afterData: number;
    sum: number[];
    toFloat64: string;
    fresh: number[];
    lstm: string;
  };
  memory: { before: number; held: number; afterGc: number; pool: number };
  mlp: MlpResult;
  cnn: number[];
  /** Null when the run left the op table out. */
  opTable: { checked: number; failures: string[]; syncOnly: string[] } | null;
  jit: number[];
  deviceErrors: DeviceErrorReport;
}

const CHOLESKY_1_2 =
  "(Batch element 1): The factorization could not be completed because the input is not positive-definite " +
  "(the leading minor of order 2 is not positive-definite).";

/** The device-error checks (webgpu-errors-checks.ts): PyTorch's messages when values are read, info, NaN, masks. */
function assertDeviceErrors(d: DeviceErrorReport): void {
  const chol = `LinAlgError: linalg.cholesky: ${CHOLESKY_1_2}`;
  assert.equal(d.cholesky.factor, chol, "cholesky of device-only values: the error when the factor is read");
  assert.equal(d.cholesky.derived, chol, "... when a value computed from it is read");
  assert.equal(d.cholesky.again, chol, "... and again on a second read");
  assert.match(d.cholesky.dataSync, /^DeviceReadError: /, "no host copy after the failed read");
  assert.deepEqual(d.cholesky.unrelated, [2, 3], "unrelated values read fine");
  assert.equal(d.jit, chol, "through jit");
  assert.equal(d.atOnce, chol, "host-readable values: at once");
  assert.equal(
    d.inv,
    "LinAlgError: linalg.inv: (Batch element 0): The diagonal element 2 is zero, the inversion could not be completed because the input matrix is singular.",
  );
  assert.equal(
    d.solve,
    "LinAlgError: linalg.solve: (Batch element 0): The solver failed because the input matrix is singular.",
  );
  assert.equal(
    d.invSingle,
    "LinAlgError: linalg.inv: The diagonal element 2 is zero, the inversion could not be completed because the input matrix is singular.",
  );
  // the good results (by hand: L of [[4,2],[2,3]] and [[9,3],[3,5]], their inverses and solutions)
  const num = (v: (number | string)[]) => v.map(Number);
  close(num(d.good.chol), [2, 0, 1, Math.SQRT2, 3, 0, 1, 2], 1e-6, "good cholesky");
  close(num(d.good.inv), [0.375, -0.25, -0.25, 0.5, 1, 0, 0, 1], 1e-6, "good inv");
  close(num(d.good.solve), [-1 / 36, 15 / 36, 1, 2], 1e-6, "good solve");
  // the *Ex functions: info on the device (PyTorch's values: cholesky_ex info [0, 2, 0], inv_ex [2, 0])
  assert.deepEqual(d.ex.cholInfo, [0, 2, 0]);
  const L = d.ex.cholL;
  assert.equal(L[7], "NaN", "choleskyEx: NaN from the failing column on");
  close(
    num([...L.slice(0, 7), ...L.slice(8)]),
    [2, 0, 1, Math.SQRT2, 1, 0, 2, 3, 0, 1, 2],
    1e-6,
    "choleskyEx L",
  );
  assert.deepEqual(d.ex.invInfo, [2, 0]);
  assert.ok(
    d.ex.inverse.slice(0, 4).every((v) => typeof v === "string"),
    `invEx inf/NaN: ${d.ex.inverse}`,
  );
  assert.deepEqual(d.ex.inverse.slice(4), [1, 0, 0, 1]);
  assert.deepEqual(d.ex.solveInfo, [2, 0]);
  assert.equal(d.ex.checkErrors, `LinAlgError: linalg.choleskyEx: ${CHOLESKY_1_2}`);
  // IEEE comparisons with NaN, as JavaScript's
  const x = [Number.NaN, 1, Number.NaN, 2, 3];
  const z = [Number.NaN, 1, 3, Number.NaN, 3];
  const cmp: Record<string, (a: number, b: number) => boolean> = {
    eq: (a, b) => a === b,
    ne: (a, b) => a !== b,
    lt: (a, b) => a < b,
    le: (a, b) => a <= b,
    gt: (a, b) => a > b,
    ge: (a, b) => a >= b,
  };
  for (const [op, f] of Object.entries(cmp)) {
    assert.deepEqual(
      d.nan[op],
      x.map((a, i) => (f(a, z[i]) ? 1 : 0)),
      `${op} with NaN on the GPU`,
    );
  }
  assert.equal(d.boolMask.float64, "ok", "a bool mask used on the GPU, then negated inside float64 work");
}

/** Elementwise |got - want| <= tol (1 + |want|), naming `what` and the index on failure. */
function close(got: readonly number[], want: readonly number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((g, i) => {
    assert.ok(Math.abs(g - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

/**
 * Assert everything `r` reports; `memory` checks the memory figure (needs a garbage collector the run could
 * call), `opTable` the op table's forward checks. Leaves the js backend selected.
 */
export async function assertWebgpuReport(
  r: WebgpuReport,
  opts: { memory: boolean; opTable: boolean },
): Promise<void> {
  console.log(
    `# adapter: ${r.info.adapter}; ${r.checked} kernel checks in ${Math.round(r.kernelsMs)} ms; ` +
      `${r.info.dispatches} dispatches in ${r.info.submits} submissions`,
  );
  assert.deepEqual(r.init, { backend: "webgpu", adapter: r.info.adapter }, "init names the adapter");
  assert.ok(r.checked > 500, `kernel checks ran: ${r.checked}`);
  assert.deepEqual(r.failures, [], "webgpu kernels vs js");
  assert.ok(r.info.submits < r.info.dispatches, "dispatches are batched into fewer submissions");

  // sync reads fail naming the async call; after it they work
  assert.match(r.syncRead.message, /^DeviceReadError: .*await t\.data\(\)/);
  assert.deepEqual(r.syncRead.sum, [20]);
  assert.equal(r.syncRead.afterData, 20);
  assert.match(r.syncRead.toFloat64, /^DeviceReadError: webgpu: kernel 'cast' .*await t\.data\(\)/);
  assert.deepEqual(r.syncRead.fresh, [5, 6]);
  assert.match(r.syncRead.lstm, /^DeviceReadError: webgpu: kernel 'lstmCell' has no WGSL implementation/);

  if (opts.memory) {
    // eight 256x256 float32 tensors held: at least 2 MiB in use; dropped and collected: back in the pool
    const mib2 = 8 * 256 * 256 * 4;
    assert.ok(r.memory.held >= mib2, `in use: ${JSON.stringify(r.memory)}`);
    assert.ok(r.memory.afterGc <= r.memory.held - mib2 + 4096, `released: ${JSON.stringify(r.memory)}`);
    assert.ok(r.memory.pool >= mib2, `pooled: ${JSON.stringify(r.memory)}`);
  }

  // the same MLP steps on the js reference backend in Node
  setBackend("js");
  const want = await mlpStepsAsync(3, 3);
  close(r.mlp.grad0, want.grad0, 1e-4, "first weight gradient on webgpu vs js");
  close(r.mlp.losses, want.losses, 1e-4, "MLP losses on webgpu vs js");
  close(r.mlp.logits, want.logits, 1e-4, "trained logits on webgpu vs js");
  assert.ok(r.mlp.losses[5] < r.mlp.losses[0] - 0.05, `the loss falls: ${r.mlp.losses}`);
  // the CNN (convolutions, pooling and their gradients on the GPU)
  close(r.cnn, await cnnStepsAsync(4), 1e-4, "CNN losses on webgpu vs js");
  assert.ok(r.cnn[3] < r.cnn[0], `the CNN loss falls: ${r.cnn}`);

  // jit on webgpu: relu(a * b + 1) = [[3, 0, 0], [1.5, 5, 0]]; times b^T, summed over rows:
  // row 0: [3*2, 3*1] -> 6 + 3 = 9; row 1: [1.5*2 + 5*1, 1.5 + 5] -> 8 + 6.5 = 14.5
  assert.deepEqual(r.jit, [9, 14.5, 9, 14.5], "jitted function on webgpu, twice");

  assertDeviceErrors(r.deviceErrors);

  // the op table's float32 forward checks on webgpu (ops reading GPU values synchronously listed apart)
  if (!opts.opTable) return;
  assert.ok(r.opTable !== null, "the op table ran");
  console.log(
    `# op table on webgpu: ${r.opTable.checked} samples; needing a synchronous read: ${r.opTable.syncOnly.join(", ") || "none"}`,
  );
  assert.deepEqual(r.opTable.failures, [], "op table forward on webgpu (float32) vs the float64 references");
  assert.ok(r.opTable.checked > 300, `op table samples checked: ${r.opTable.checked}`);
}
