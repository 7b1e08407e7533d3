/**
 * Browser-page checks of the webgpu backend's linalg kernels (wgsl-linalg.ts: every kernel)
 * against the js reference (src/backend/js/decomp.ts) on batched, strided and odd-sized matrices and empty
 * batches, plus the value-dependent failures: a zero pivot column, a zero diagonal with `op` (host-readable
 * and device-only: the LinAlgError at once or when the result is read) and without, a matrix that is not
 * positive-definite (the same, and the NaN columns without `op`). Called by webgpu-page.ts with its checking kit.
 */
import type { View } from "../../src/backend/backend.ts";
import { syncToHost } from "../../src/backend/device.ts";
import { linalgKernels as J } from "../../src/backend/js/decomp.ts";
import type { TypedArray } from "../../src/dtype.ts";
import { LinAlgError } from "../../src/errors.ts";
import * as cr from "../../src/index.ts";
import type { CheckKit } from "./webgpu-wgsl-checks.ts";

interface Pair {
  js: View;
  gpu: View;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * A batch of rows x cols matrices with entries f(batch, i, j) in a random layout: row- or column-major, rows or
 * matrices padded, an offset, a reversed batch axis. `where`: "host" (a device array written on the host: its
 * host copy valid), "device" (copied on the GPU: device-only values) or "plain" (an ordinary array).
 */
function matPair(
  kit: CheckKit,
  batch: readonly number[],
  rows: number,
  cols: number,
  f: (b: number, i: number, j: number) => number,
  where: "host" | "device" | "plain",
): Pair {
  const colMajor = kit.rng() < 0.5;
  const pad = kit.rng() < 0.5 ? 1 : 0;
  const inner = colMajor ? rows : cols;
  const outer = colMajor ? cols : rows;
  const ld = inner + pad;
  const per = ld * outer + pad * 3;
  const rs = colMajor ? 1 : ld;
  const cs = colMajor ? ld : 1;
  const bstrides = new Array<number>(batch.length);
  let s = per;
  for (let d = batch.length - 1; d >= 0; d--) {
    bstrides[d] = s;
    s *= batch[d];
  }
  let offset = kit.rng() < 0.5 ? 2 : 0;
  const total = s + offset;
  if (batch.length > 0 && batch[0] > 1 && kit.rng() < 0.5) {
    offset += (batch[0] - 1) * bstrides[0];
    bstrides[0] = -bstrides[0];
  }
  const host = new Float32Array(total).fill(Number.NaN); // padding never read
  const nb = size(batch);
  for (let b = 0; b < nb; b++) {
    let o = offset;
    let r = b;
    for (let d = batch.length - 1; d >= 0; d--) {
      o += (r % batch[d]) * bstrides[d];
      r = Math.floor(r / batch[d]);
    }
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) host[o + i * rs + j * cs] = f(b, i, j);
  }
  const shape = [...batch, rows, cols];
  const strides = [...bstrides, rs, cs];
  const g = cr.getBackend();
  let dev: TypedArray = host;
  if (where !== "plain" && total > 0) {
    dev = g.alloc("float32", total);
    if (where === "host") {
      for (let i = 0; i < total; i++) dev[i] = host[i];
    } else {
      const tmp = g.alloc("float32", total);
      for (let i = 0; i < total; i++) tmp[i] = host[i];
      const flat = (data: TypedArray): View => ({ data, shape: [total], strides: [1], offset: 0 });
      g.copy(flat(tmp), flat(dev));
    }
  }
  return { js: { data: host, shape, strides, offset }, gpu: { data: dev, shape, strides, offset } };
}

const WHERE = ["host", "device", "plain"] as const;
const TOL = (n: number) => ({ rtol: 2e-3, atol: 1e-4 * (1 + n) });

/** [batch, n] of the square kernels (n = 0 and empty batches included). */
const SQUARE: [number[], number][] = [
  [[], 1],
  [[], 3],
  [[2], 17],
  [[3, 2], 5],
  [[], 33],
  [[2], 70],
  [[0], 4],
  [[2], 0],
  [[1, 1], 2],
];

async function luChecks(kit: CheckKit): Promise<void> {
  let w = 0;
  for (const [batch, n] of SQUARE) {
    const a = matPair(kit, batch, n, n, () => (kit.rng() - 0.5) * 4, WHERE[w++ % 3]);
    await kit.check(`lu [${batch}] n=${n}`, "float32", [...batch, n + 1, n], TOL(n), (b, s, o) =>
      (s === "js" ? J : b.linalg!).lu(a[s], o),
    );
  }
  // det: the same LU (into a scratch buffer) and the diagonal's product with the permutation's sign
  for (const [batch, n] of [...SQUARE, [[4], 6] as [number[], number]]) {
    const a = matPair(kit, batch, n, n, () => (kit.rng() - 0.5) * 3, WHERE[w++ % 3]);
    await kit.check(`det [${batch}] n=${n}`, "float32", batch, TOL(n), (b, s, o) =>
      (s === "js" ? J : b.linalg!).det(a[s], o),
    );
  }
  // a zero pivot column (left unscaled), a zero row, and ties in the pivot search (the first one wins)
  const fixed: [string, number[]][] = [
    ["zero column", [0, 1, 2, 0, 3, 4, 0, 5, 6]],
    ["zero row", [1, 2, 3, 0, 0, 0, 4, 5, 7]],
    ["ties", [1, 2, 3, -2, 1, 0, 2, 4, 1]],
  ];
  for (const [what, m] of fixed) {
    const a = matPair(kit, [2], 3, 3, (b, i, j) => m[i * 3 + j] * (b + 1), WHERE[w++ % 3]);
    await kit.check(`lu ${what}`, "float32", [2, 4, 3], TOL(3), (b, s, o) =>
      (s === "js" ? J : b.linalg!).lu(a[s], o),
    );
    await kit.check(`det ${what}`, "float32", [2], TOL(3), (b, s, o) =>
      (s === "js" ? J : b.linalg!).det(a[s], o),
    );
  }
}

/** A well-conditioned triangular-solve operand: diagonal 2..3 (or its sign flipped), small off-diagonal. */
const triEntry = (kit: CheckKit) => (_b: number, i: number, j: number) =>
  i === j
    ? (kit.rng() < 0.5 ? -1 : 1) * (2 + kit.rng())
    : (kit.rng() - 0.5) * (2 / Math.max(1, Math.abs(i - j)));

async function triangularSolveChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number, number][] = [
    [[], 1, 1],
    [[], 3, 2],
    [[2], 17, 5],
    [[], 33, 1],
    [[3, 2], 6, 9],
    [[2], 70, 3],
    [[0], 4, 2],
    [[2], 5, 0],
    [[2], 0, 3],
  ];
  let w = 0;
  for (const [batch, n, k] of cases) {
    for (const lower of [true, false]) {
      for (const unitDiagonal of [false, true]) {
        const op = w % 2 === 0 ? null : "linalg.solve";
        const a = matPair(kit, batch, n, n, triEntry(kit), WHERE[w % 3]);
        const rhs = matPair(kit, batch, n, k, () => (kit.rng() - 0.5) * 4, WHERE[(w + 1) % 3]);
        w++;
        const label = `triangularSolve [${batch}] n=${n} k=${k} lower=${lower} unit=${unitDiagonal} op=${op}`;
        await kit.check(label, "float32", [...batch, n, k], TOL(n), (b, s, o) =>
          (s === "js" ? J : b.linalg!).triangularSolve(a[s], rhs[s], lower, unitDiagonal, op, o),
        );
      }
    }
  }
  // a zero on the diagonal with `op`: a LinAlgError, at once where a's values can be read on the host, when the
  // solution is read (`await`) on device-only values (the kernel's info word); unitDiagonal never reads it
  const g = cr.getBackend();
  for (const where of WHERE) {
    const a = matPair(
      kit,
      [2],
      4,
      4,
      (b, i, j) => (b === 1 && i === 2 && j === 2 ? 0 : i === j ? 2 : 0.5),
      where,
    );
    const rhs = matPair(kit, [2], 4, 2, () => 1, "host");
    const out = g.alloc("float32", 16);
    let failure: string | null = null;
    let thrown = "";
    try {
      g.linalg!.triangularSolve(a.gpu, rhs.gpu, true, false, "linalg.solve", out);
      thrown = "on reading";
      await syncToHost(out);
      failure = `triangularSolve zero diagonal (${where}): no LinAlgError`;
    } catch (e) {
      const want = "linalg.solve: (Batch element 1): The solver failed because the input matrix is singular.";
      if (
        (where === "device") !== (thrown === "on reading") ||
        !(e instanceof LinAlgError) ||
        e.message !== want
      ) {
        failure = `triangularSolve zero diagonal (${where}): threw ${thrown || "at once"}: ${e}`;
      }
    }
    kit.note(failure);
    // without `op`: no error, inf/NaN in batch element 1 only
    const o2 = g.alloc("float32", 16);
    g.linalg!.triangularSolve(a.gpu, rhs.gpu, true, false, null, o2);
    await syncToHost(o2);
    kit.note(
      o2.slice(0, 8).some((x) => !Number.isFinite(x)) || !o2.slice(8).some((x) => !Number.isFinite(x))
        ? `triangularSolve zero diagonal without op (${where}): want inf/NaN in batch element 1 only, got ${o2}`
        : null,
    );
  }
}

async function choleskyChecks(kit: CheckKit): Promise<void> {
  let w = 0;
  for (const [batch, n] of SQUARE) {
    // A = M M^T + n I (lower triangle), the upper triangle junk that must not be read
    const nb = size(batch);
    const M = Array.from({ length: nb * n * n }, () => kit.rng() - 0.5);
    const spd = (b: number, i: number, j: number) => {
      if (j > i) return 1e3 * (kit.rng() - 0.5);
      let s = i === j ? n : 0;
      for (let p = 0; p < n; p++) s += M[b * n * n + i * n + p] * M[b * n * n + j * n + p];
      return s;
    };
    const a = matPair(kit, batch, n, n, spd, WHERE[w++ % 3]);
    await kit.check(`cholesky [${batch}] n=${n}`, "float32", [...batch, n, n], TOL(n), (b, s, o) =>
      (s === "js" ? J : b.linalg!).cholesky(a[s], o),
    );
  }
  // not positive-definite (batch element 1, its leading minor of order 2): the LinAlgError, at once where the
  // values can be read on the host, when the factor is read (`await`) on device-only values; with `op` null no
  // error, and batch element 1 has its first column and NaN in the others, as js
  const g = cr.getBackend();
  const m0 = [4, 0, 0, 2, 5, 0, 1, 1, 6];
  const m1 = [1, 0, 0, 2, 1, 0, 0, 0, 1];
  for (const where of WHERE) {
    const a = matPair(kit, [2], 3, 3, (b, i, j) => (b === 0 ? m0 : m1)[i * 3 + j], where);
    const out = g.alloc("float32", 18);
    let failure: string | null = null;
    let thrown = "";
    try {
      g.linalg!.cholesky(a.gpu, out);
      thrown = "on reading";
      await syncToHost(out);
      failure = `cholesky not positive-definite (${where}): no LinAlgError`;
    } catch (e) {
      if (
        (where === "device") !== (thrown === "on reading") ||
        !(e instanceof LinAlgError) ||
        !/^linalg\.cholesky: \(Batch element 1\).*order 2 /.test(e.message)
      ) {
        failure = `cholesky not positive-definite (${where}): threw ${thrown || "at once"}: ${e}`;
      }
    }
    kit.note(failure);
    await kit.check(
      `cholesky not positive-definite, op null (${where})`,
      "float32",
      [2, 3, 3],
      TOL(3),
      (b, s, o) => (s === "js" ? J : b.linalg!).cholesky(a[s], o, null),
    );
  }
}

async function qrChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number, number, boolean][] = [
    [[], 1, 1, false],
    [[], 3, 3, true],
    [[2], 17, 17, false],
    [[], 33, 5, false],
    [[], 33, 5, true],
    [[2], 5, 33, false],
    [[2], 5, 8, true],
    [[3, 2], 6, 4, true],
    [[], 70, 66, false],
    [[0], 3, 3, false],
    [[2], 0, 3, true],
    [[2], 3, 0, false],
  ];
  let w = 0;
  for (const [batch, m, n, complete] of cases) {
    const c = complete ? m : Math.min(m, n);
    const a = matPair(kit, batch, m, n, () => (kit.rng() - 0.5) * 4, WHERE[w++ % 3]);
    const label = `qr [${batch}] ${m}x${n} complete=${complete}`;
    await kit.check(label, "float32", [...batch, m + c, Math.max(c, n)], TOL(Math.max(m, n)), (b, s, o) =>
      (s === "js" ? J : b.linalg!).qr(a[s], complete, o),
    );
  }
  // a zero column (no reflector: tau 0) and a negative leading entry (R's diagonal sign)
  const a = matPair(
    kit,
    [2],
    4,
    3,
    (b, i, j) => (j === 1 ? 0 : b === 0 ? i + j * j - 2 : -1 - i * j),
    "device",
  );
  await kit.check("qr zero column", "float32", [2, 7, 3], TOL(4), (b, s, o) =>
    (s === "js" ? J : b.linalg!).qr(a[s], false, o),
  );
}

async function eighChecks(kit: CheckKit): Promise<void> {
  let w = 0;
  for (const [batch, n] of SQUARE) {
    for (const lower of [true, false]) {
      // only one triangle is read: the other is junk
      const a = matPair(kit, batch, n, n, () => (kit.rng() - 0.5) * 4, WHERE[w++ % 3]);
      await kit.check(
        `eigh [${batch}] n=${n} lower=${lower}`,
        "float32",
        [...batch, n + 1, n],
        TOL(n),
        (b, s, o) => (s === "js" ? J : b.linalg!).eigh(a[s], lower, o),
      );
    }
  }
  // a non-finite entry in the read triangle: NaN throughout that matrix only
  const a = matPair(
    kit,
    [2],
    3,
    3,
    (b, i, j) => (b === 1 && i === 2 && j === 0 ? Infinity : i + j),
    "device",
  );
  await kit.check("eigh non-finite", "float32", [2, 4, 3], TOL(3), (b, s, o) =>
    (s === "js" ? J : b.linalg!).eigh(a[s], true, o),
  );
}

async function svdChecks(kit: CheckKit): Promise<void> {
  const cases: [number[], number, number, boolean][] = [
    [[], 1, 1, false],
    [[], 3, 3, true],
    [[2], 17, 17, false],
    [[], 33, 5, false],
    [[], 12, 5, true],
    [[2], 5, 33, false],
    [[2], 4, 9, true],
    [[3, 2], 6, 4, false],
    [[0], 3, 3, false],
    [[2], 0, 3, true],
    [[2], 3, 0, false],
  ];
  let w = 0;
  for (const [batch, m, n, full] of cases) {
    const k = Math.min(m, n);
    const [ku, kv] = full ? [m, n] : [k, k];
    const a = matPair(kit, batch, m, n, () => (kit.rng() - 0.5) * 4, WHERE[w++ % 3]);
    const shape = [...batch, m + 1 + kv, Math.max(ku, n)];
    await kit.check(
      `svd [${batch}] ${m}x${n} full=${full}`,
      "float32",
      shape,
      TOL(Math.max(m, n)),
      (b, s, o) => (s === "js" ? J : b.linalg!).svd(a[s], full, o),
    );
  }
  // rank-deficient (a zero column: its vectors completed) and non-finite (NaN throughout) matrices
  const a = matPair(
    kit,
    [2],
    4,
    3,
    (b, i, j) => (j === 1 ? 0 : b === 1 && i === 3 && j === 2 ? NaN : i + 2 * j * j - 3),
    "device",
  );
  await kit.check("svd rank-deficient / non-finite", "float32", [2, 8, 4], TOL(4), (b, s, o) =>
    (s === "js" ? J : b.linalg!).svd(a[s], true, o),
  );
}

/** The linalg kernels' checks (each call compared with the js reference by `kit.check`). */
export async function linalgKernelChecks(kit: CheckKit): Promise<void> {
  await luChecks(kit);
  await triangularSolveChecks(kit);
  await choleskyChecks(kit);
  await qrChecks(kit);
  await eighChecks(kit);
  await svdChecks(kit);
}
