/**
 * The page of webgpu-ops.test.ts (bundled by esbuild, run in Chromium with SwiftShader's WebGPU adapter): the
 * op table's derivatives in float32 on the device, the op-table rows whose float32 forward needs a GPU value on
 * the host, and the sequence-model training scenario.
 *
 * Derivatives (every differentiable row, every sample; second order on the first sample as in op-suites.ts):
 * the inputs are cast to float32 (the rows' views stay views), random float32 directions v and cotangents u are
 * drawn, and on the device
 *
 * - the JVP J v is compared with central differences (f(x + eps v) - f(x - eps v)) / 2 eps of the device's own
 *   float32 forward, with eps = 2^-8 max(1, max |x|) (op rows with their own gradCheck step use the larger);
 * - the same J v is compared with the float64 JVP on the host at the same (float32-rounded) point;
 * - the VJP J^T u passes the dot-product test <u, J v> = <J^T u, v> (both sides from device values, summed in
 *   float64 on the host) and is compared with the float64 VJP on the host;
 * - second order: the same four checks on the VJP map x -> J(x)^T u (forward over reverse for the JVP and the
 *   differences, reverse over reverse for the dot-product test).
 *
 * Tolerances. The float32 finite difference differs from the true derivative by its truncation error (and any
 * kink between x - eps v and x + eps v) and by the float32 rounding of the two forwards divided by 2 eps. Both
 * are measured, not guessed: the truncation part as |fd64 - jvp64| of the same difference in float64 on the
 * host at the same float32 points, the rounding part as the device forward's largest deviation from the host's
 * float64 forward at those points, divided by eps. The check is |jvp32 - fd32| <= 2 (trunc + noise) +
 * 1e-3 |jvp64| + 1e-4 max |jvp64|; the comparisons with the host's float64 values use 1e-3 |want| + 1e-4 max
 * |want|; the dot-product test 1e-4 times the sum of the absolute products. All values are read with
 * `await t.data()`.
 */
import { jvpFlat, vjpFlat } from "../../src/core/autodiff.ts";
import * as cr from "../../src/index.ts";
import { type OpInfo, OPS } from "../opinfo.ts";
import { nd } from "../ref.ts";
import { lstmStepsAsync, transformerStepsAsync } from "./webgpu-seq-scenario.ts";

type Fn = (...xs: cr.Tensor[]) => cr.Tensor | cr.Tensor[];

const gen = new cr.Generator(20261206);

/** Rows left out of the float32 derivative checks, with the reason (reported, never silently). */
const EXCLUDED: Record<string, string> = {};

function flatOf(f: Fn, xs: cr.Tensor[]): cr.Tensor[] {
  const r = f(...xs);
  return Array.isArray(r) ? r : [r];
}

/** A float32 tensor and a float64 tensor of `shape` holding the same (float32-rounded) values. */
function pair(shape: readonly number[], values: ArrayLike<number>): [cr.Tensor, cr.Tensor] {
  const v32 = Float32Array.from(values);
  return [
    cr.tensor(v32, { dtype: "float32", shape: [...shape] }),
    cr.tensor(Float64Array.from(v32), { dtype: "float64", shape: [...shape] }),
  ];
}

function normals(n: number): number[] {
  return Array.from({ length: n }, () => gen.normal());
}

async function values(ts: readonly cr.Tensor[]): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  for (const t of ts) out.push(Float64Array.from(await t.data(), Number));
  return out;
}

/** The largest finite |a_i| (0 for none). */
const maxAbs = (a: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i])) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** Counts of samples passed per kind, and the failures. */
interface DerivReport {
  counts: Record<string, number>;
  failures: string[];
  /** Rows or samples that could not run on the device (e.g. a kernel without WGSL on GPU-written values). */
  hostOnly: Record<string, string>;
  excluded: Record<string, string>;
  ms: number;
}

/** The first element where `got` is not within rtol |want| + atol max |want| of `want`. */
function mismatch(got: Float64Array, want: Float64Array, rtol: number, atol: number): string | null {
  const scale = maxAbs(want);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= rtol * Math.abs(want[i]) + atol * scale) && !(Number.isNaN(got[i]) && Number.isNaN(want[i])))
      return `element ${i}: ${got[i]} vs ${want[i]}`;
  }
  return null;
}

/**
 * The four derivative checks of f at the float32 point xs32 (see the module header). Returns the failures (empty
 * when all pass); `counts` gains one per check kind passed, under `prefix`.
 */
async function checkDerivs(
  f32: Fn,
  f64: Fn,
  xs32: cr.Tensor[],
  epsMin: number,
  prefix: string,
  counts: Record<string, number>,
): Promise<string[]> {
  const fails: string[] = [];
  const xv = await values(xs32);
  const xs64 = xs32.map((x, i) => cr.tensor(xv[i], { dtype: "float64", shape: [...x.shape] }));
  const eps = Math.max(epsMin, 2 ** -8 * Math.max(1, ...xv.map(maxAbs)));
  const [v32, v64] = xs32
    .map((x) => pair(x.shape, normals(x.size)))
    .reduce(
      ([a, b], [p, q]) => [
        [...a, p],
        [...b, q],
      ],
      [[], []] as [cr.Tensor[], cr.Tensor[]],
    );
  const vv = await values(v32);
  // the difference points, rounded to float32 once, shared by device and host
  const plus = xs32.map((x, i) =>
    pair(
      x.shape,
      xv[i].map((a, k) => a + eps * vv[i][k]),
    ),
  );
  const minus = xs32.map((x, i) =>
    pair(
      x.shape,
      xv[i].map((a, k) => a - eps * vv[i][k]),
    ),
  );

  // device (float32)
  const [outs32, jv32t] = jvpFlat((zs) => flatOf(f32, zs), xs32, v32);
  const p32t = flatOf(
    f32,
    plus.map((p) => p[0]),
  );
  const m32t = flatOf(
    f32,
    minus.map((p) => p[0]),
  );
  const u = outs32.map((o) => pair(o.shape, normals(o.size)));
  const u32 = outs32.map((o, i) => (o.dtype === "float32" ? u[i][0] : u[i][1]));
  const jtu32t = vjpFlat((zs) => flatOf(f32, zs), xs32, { retain: false }).backward(u32);
  const jv32 = await values(jv32t);
  const p32 = await values(p32t);
  const m32 = await values(m32t);
  const jtu32 = await values(jtu32t);
  // host (float64) at the same points, on the js backend (on webgpu, bool kernels inside a float64 backward
  // would run on the GPU and the float64 kernels after them could not read their results synchronously)
  cr.setBackend("js");
  let p64: Float64Array[];
  let m64: Float64Array[];
  let jv64: Float64Array[];
  let jtu64: Float64Array[];
  try {
    const [, jv64t] = jvpFlat((zs) => flatOf(f64, zs), xs64, v64);
    p64 = await values(
      flatOf(
        f64,
        plus.map((p) => p[1]),
      ),
    );
    m64 = await values(
      flatOf(
        f64,
        minus.map((p) => p[1]),
      ),
    );
    jv64 = await values(jv64t);
    jtu64 = await values(
      vjpFlat((zs) => flatOf(f64, zs), xs64, { retain: false }).backward(u.map((p) => p[1])),
    );
  } finally {
    cr.setBackend("webgpu");
  }
  const uv = await values(u.map((p) => p[1]));

  // JVP vs the device's central differences
  let fdOk = true;
  jv32.forEach((jv, o) => {
    let noise = 0;
    for (let i = 0; i < jv.length; i++)
      noise = Math.max(noise, Math.abs(p32[o][i] - p64[o][i]), Math.abs(m32[o][i] - m64[o][i]));
    noise /= eps;
    const scale = maxAbs(jv64[o]);
    for (let i = 0; i < jv.length && fdOk; i++) {
      const fd32 = (p32[o][i] - m32[o][i]) / (2 * eps);
      const fd64 = (p64[o][i] - m64[o][i]) / (2 * eps);
      const trunc = Math.abs(fd64 - jv64[o][i]);
      const tol = 2 * (trunc + noise) + 1e-3 * Math.abs(jv64[o][i]) + 1e-4 * scale;
      if (!(Math.abs(jv[i] - fd32) <= tol)) {
        fails.push(
          `${prefix} jvp vs central difference (eps ${eps}): output ${o} element ${i}: ${jv[i]} vs ${fd32} (host float64: jvp ${jv64[o][i]}, difference ${fd64}; tolerance ${tol.toPrecision(3)})`,
        );
        fdOk = false;
      }
    }
  });
  if (fdOk) counts[`${prefix}jvp-fd`] = (counts[`${prefix}jvp-fd`] ?? 0) + 1;
  // JVP vs the host's float64 JVP
  const jvMis = jv32.map((jv, o) => mismatch(jv, jv64[o], 1e-3, 1e-4)).find((m) => m !== null);
  if (jvMis) fails.push(`${prefix} jvp vs host float64 jvp: ${jvMis}`);
  else counts[`${prefix}jvp-host`] = (counts[`${prefix}jvp-host`] ?? 0) + 1;
  // the dot-product test
  let a = 0;
  let b = 0;
  let absSum = 0;
  jv32.forEach((jv, o) => {
    for (let i = 0; i < jv.length; i++) {
      a += uv[o][i] * jv[i];
      absSum += Math.abs(uv[o][i] * jv[i]);
    }
  });
  jtu32.forEach((jt, k) => {
    for (let i = 0; i < jt.length; i++) {
      b += jt[i] * vv[k][i];
      absSum += Math.abs(jt[i] * vv[k][i]);
    }
  });
  if (!(Math.abs(a - b) <= 1e-4 * absSum + 1e-30))
    fails.push(`${prefix} <u, J v> vs <J^T u, v>: ${a} vs ${b} (sum of |products| ${absSum})`);
  else counts[`${prefix}vjp-dot`] = (counts[`${prefix}vjp-dot`] ?? 0) + 1;
  const jtMis = jtu32.map((jt, k) => mismatch(jt, jtu64[k], 1e-3, 1e-4)).find((m) => m !== null);
  if (jtMis) fails.push(`${prefix} vjp vs host float64 vjp: ${jtMis}`);
  else counts[`${prefix}vjp-host`] = (counts[`${prefix}vjp-host`] ?? 0) + 1;
  return fails;
}

const isDeviceRead = (e: unknown) => e instanceof Error && e.name === "DeviceReadError";
const msg = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 300);

/** The float32 derivative checks over the op table (see the module header). */
async function derivativeChecks(): Promise<DerivReport> {
  const t0 = performance.now();
  const counts: Record<string, number> = {};
  const failures: string[] = [];
  const hostOnly: Record<string, string> = {};
  const run = async (op: OpInfo, what: string, body: () => Promise<string[]>) => {
    try {
      failures.push(...(await body()).map((f) => `${op.name} ${what}:${f}`));
    } catch (e) {
      if (isDeviceRead(e))
        hostOnly[`${op.name} ${what}`] =
          `${msg(e)} ${(e as Error).stack?.split("\n").slice(1, 8).join(" < ")}`;
      else failures.push(`${op.name} ${what}: threw ${msg(e)}`);
    }
  };
  for (const op of OPS) {
    if (!op.diff || op.name in EXCLUDED) continue;
    const epsMin = op.gradCheck?.eps ?? 0;
    const samples = op.samples();
    for (let k = 0; k < samples.length; k++) {
      await run(op, `sample ${k}`, () =>
        checkDerivs(
          op.fn,
          op.fn,
          samples[k].map((x) => x.to("float32")),
          epsMin,
          "",
          counts,
        ),
      );
    }
    if (op.noSecondOrder) continue;
    await run(op, "second order", async () => {
      const xs32 = samples[0].map((x) => x.to("float32"));
      const out = flatOf(op.fn, xs32)[0];
      const [u32, u64] = pair(out.shape, normals(out.size));
      const vjpMap =
        (u: cr.Tensor): Fn =>
        (...zs) =>
          vjpFlat((ys) => [op.fn(...ys)], zs).backward([u]);
      return checkDerivs(
        vjpMap(out.dtype === "float32" ? u32 : u64),
        vjpMap(u64),
        xs32,
        epsMin,
        "2nd ",
        counts,
      );
    });
  }
  return { counts, failures, hostOnly, excluded: EXCLUDED, ms: performance.now() - t0 };
}

/**
 * float64 on webgpu runs the js kernels on the host: gradCheck (float64, one direction) of every differentiable
 * row's first sample with webgpu selected. Bool / int32 intermediates of a float64 computation must stay on the
 * host for this to work (index.ts, hostFirst).
 */
async function float64Checks(): Promise<{ passed: number; failures: string[] }> {
  const failures: string[] = [];
  let passed = 0;
  for (const op of OPS) {
    if (!op.diff) continue;
    try {
      const r = cr.gradCheck(op.fn, op.samples()[0], { directions: 1, raise: false, ...op.gradCheck });
      if (r.ok) passed++;
      else failures.push(`${op.name}: ${r.worst}`);
    } catch (e) {
      failures.push(`${op.name}: threw ${(e as Error).name}: ${msg(e)}`);
    }
  }
  return { passed, failures };
}

/**
 * The forwards of the rows that end in `.to("float64")` of a bool / int32 / float32 device result (comparisons,
 * logical ops, any/all, argmax/argmin, sort and topk indices): the op table's row is run with that final cast
 * deferred (`to("float64")` of a non-float64 tensor returns it unchanged while the row runs), the result is read
 * with `await t.data()` and converted to float64 numbers on the host, then compared with the float64 reference
 * (exactly for bool/int32 results). Rows that still need a GPU value synchronously are reported with the error.
 * The inputs are device-only values, so the kernels run their WGSL.
 */
async function deferredCastForwards(): Promise<{
  checked: number;
  rows: string[];
  failures: string[];
  hostOnly: Record<string, string>;
}> {
  const proto = cr.Tensor.prototype as { to(d: cr.DType): cr.Tensor };
  const to = proto.to;
  let defer = false;
  proto.to = function (this: cr.Tensor, d: cr.DType) {
    return defer && d === "float64" && this.dtype !== "float64" ? this : to.call(this, d);
  };
  const failures: string[] = [];
  const hostOnly: Record<string, string> = {};
  const rows = new Set<string>();
  let checked = 0;
  try {
    for (const op of OPS) {
      const samples = op.samples();
      for (let k = 0; k < samples.length; k++) {
        // inputs only the GPU holds (written by a kernel): with host-readable ones, the bool / int32 kernels
        // of these rows would run on the host (index.ts, hostFirst) and their WGSL would go unchecked here
        const host32 = samples[k].map((x) => x.to("float32"));
        const xs32 = host32.map((x) => x.mul(1));
        try {
          // rows that run without the deferral are the webgpu test's; only the others are counted here
          const y0 = op.fn(...xs32);
          await y0.data();
          nd(y0);
          continue;
        } catch (e) {
          if (!isDeviceRead(e)) {
            failures.push(`${op.name} sample ${k}: threw ${msg(e)}`);
            continue;
          }
        }
        try {
          defer = true;
          let y: cr.Tensor;
          try {
            y = op.fn(...xs32);
          } finally {
            defer = false;
          }
          await y.data();
          const got = nd(y);
          const want = op.ref(...host32.map(nd));
          const exact = y.dtype === "bool" || y.dtype === "int32";
          const tol = exact ? 0 : (op.tol ?? 2e-5);
          const m = mismatch(Float64Array.from(got.data), Float64Array.from(want.data), tol, tol);
          if (got.shape.join() !== want.shape.join())
            failures.push(`${op.name} sample ${k}: shape [${got.shape}] vs [${want.shape}]`);
          else if (m !== null) failures.push(`${op.name} sample ${k} (${y.dtype}): ${m}`);
          else {
            checked++;
            rows.add(`${op.name} (${y.dtype})`);
          }
        } catch (e) {
          if (isDeviceRead(e)) hostOnly[op.name] = msg(e);
          else failures.push(`${op.name} sample ${k}: threw ${msg(e)}`);
        }
      }
    }
  } finally {
    proto.to = to;
  }
  return { checked, rows: [...rows], failures, hostOnly };
}

async function run() {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const adapter = nav?.gpu ? await nav.gpu.requestAdapter() : null;
  if (adapter === null) return { skip: nav?.gpu ? "no WebGPU adapter" : "no navigator.gpu" };
  const init = await cr.init({ backend: "webgpu" });
  const t0 = performance.now();
  const forwards = await deferredCastForwards();
  const forwardsMs = performance.now() - t0;
  const derivs = await derivativeChecks();
  const t2 = performance.now();
  const float64 = await float64Checks();
  const float64Ms = performance.now() - t2;
  const t1 = performance.now();
  const lstm = await lstmStepsAsync(4).catch((e: unknown) => ({ error: `${(e as Error).name}: ${msg(e)}` }));
  const transformer = await transformerStepsAsync(4).catch((e: unknown) => ({
    error: `${(e as Error).name}: ${msg(e)}`,
  }));
  const trainMs = performance.now() - t1;
  return { init, forwards, forwardsMs, derivs, float64, float64Ms, lstm, transformer, trainMs };
}

Object.assign(globalThis, { __result: run() });
