/**
 * The fused softmax / log-softmax kernels and their VJP kernel (Backend.softmax, Backend.softmaxBackward):
 * hand-checked values and the special rows of the contract on the js reference, and, through the ops, the
 * derivative rules to third order and forward-over-reverse. The native and wasm kernels are checked against
 * js (special rows included) by the conformance suite, kernels.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, View } from "../../src/backend/backend.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import { grad, gradCheck, hvp, logSoftmax, softmax, type Tensor, tensor, vjp } from "../../src/index.ts";
import { mk } from "../opinfo.ts";
import { size } from "./conformance/views.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { loadNativeBackend, nativeInfo, setNativeIsa } from "../../src/backend/native/index.ts";

const nativeLoaded = loadNativeBackend();
/** The native backend, or undefined where the addon does not load. */
function nativeBackendOrUndefined(): Backend | undefined {
  return "backend" in nativeLoaded ? nativeLoaded.backend : undefined;
}

function view(data: number[], shape: number[], dtype: DType = "float64"): View {
  const a = allocTyped(dtype, data.length);
  a.set(data);
  const strides: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i];
  }
  return { data: a, shape, strides, offset: 0 };
}

function run(b: Backend, x: View, axis: number, log: boolean): TypedArray {
  const out = b.alloc(x.data instanceof Float32Array ? "float32" : "float64", size(x.shape));
  b.softmax(x, axis, log, out);
  return out;
}

function runBackward(b: Backend, y: View, ct: View, axis: number, log: boolean): TypedArray {
  const out = b.alloc(y.data instanceof Float32Array ? "float32" : "float64", size(y.shape));
  b.softmaxBackward(y, ct, axis, log, out);
  return out;
}

function near(got: ArrayLike<number>, want: number[], tol = 1e-15): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `element ${i}: ${got[i]}, expected NaN`);
    else if (!Number.isFinite(want[i])) assert.equal(got[i], want[i], `element ${i}`);
    else
      assert.ok(
        Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])),
        `element ${i}: ${got[i]} vs ${want[i]}`,
      );
  }
}

const NAN = Number.NaN;
const INF = Number.POSITIVE_INFINITY;

// ---------------------------------------------------------------------------------------------------------
test("js softmax: hand-checked rows along the last axis and along axis 0", () => {
  const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
  near(run(J, view([1, 2, 3], [3]), 0, false), [Math.exp(1) / z, Math.exp(2) / z, Math.exp(3) / z]);
  near(run(J, view([1, 2, 3], [3]), 0, true), [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z)]);
  // [[0, 1], [0, 3]] along axis 0: columns (0, 0) and (1, 3)
  const c = Math.log(Math.exp(1) + Math.exp(3));
  near(run(J, view([0, 1, 0, 3], [2, 2]), 0, true), [Math.log(0.5), 1 - c, Math.log(0.5), 3 - c]);
  // shift invariance at magnitudes where exp overflows: the max is subtracted
  near(
    run(J, view([1e4, 1e4 + 1, -1e4], [3]), 0, true),
    [-Math.log1p(Math.E), 1 - Math.log1p(Math.E), -2e4 - 1 - Math.log1p(1 / Math.E)],
    1e-12,
  );
  // float32 out: computed in float64, rounded once
  const out = run(J, view([0, Math.log(3)], [2], "float32"), 0, false);
  assert.ok(out instanceof Float32Array);
  near(out, [Math.fround(0.25), Math.fround(0.75)], 0);
});

test("js softmax: special rows (NaN, +Infinity, all -Infinity, -Infinity entries), 0-d and empty", () => {
  const x = view([NAN, 1, 2, INF, 1, 2, -INF, -INF, -INF, -INF, 0, Math.log(3)], [4, 3]);
  near(run(J, x, 1, false), [NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, 0.25, 0.75]);
  near(run(J, x, 1, true), [
    NAN,
    NAN,
    NAN,
    NAN,
    NAN,
    NAN,
    NAN,
    NAN,
    NAN,
    -INF,
    Math.log(0.25),
    Math.log(0.75),
  ]);
  const s = { data: new Float64Array([7]), shape: [], strides: [], offset: 0 };
  near(run(J, s, 0, false), [1]);
  near(run(J, s, 0, true), [0]);
  for (const shape of [[0], [3, 0], [0, 4]]) {
    const e = { data: new Float64Array(0), shape, strides: shape.map(() => 1), offset: 0 };
    assert.equal(run(J, e, shape.length - 1, true).length, 0);
  }
});

test("js softmaxBackward: ct - exp(y) sum(ct) and y (ct - sum(ct y)), by hand", () => {
  const y = view([Math.log(0.25), Math.log(0.75)], [2]);
  near(runBackward(J, y, view([1, 0], [2]), 0, true), [0.75, -0.75]);
  const s = view([0.25, 0.75], [2]);
  // sum(ct s) = 0.25: [0.25 (1 - 0.25), 0.75 (0 - 0.25)]
  near(runBackward(J, s, view([1, 0], [2]), 0, false), [0.1875, -0.1875]);
  // a stride-0 cotangent (the gradient of a sum) along axis 0 of [2, 2]
  const y2 = view([Math.log(0.5), Math.log(0.25), Math.log(0.5), Math.log(0.75)], [2, 2]);
  const ones = { data: new Float64Array([1]), shape: [2, 2], strides: [0, 0], offset: 0 };
  near(runBackward(J, y2, ones, 0, true), [0, 1 - 0.25 * 2, 0, 1 - 0.75 * 2]);
});

// ---------------------------------------------------------------------------------------------------------
// The rules through the ops: third order in reverse mode, and forward-over-reverse against reverse-over-
// reverse (the JVP rules of the backward primitives, which the op table's suites do not reach).

test("softmax and logSoftmax derivatives nest: third order and forward-over-reverse", () => {
  const x = mk([3, 5]);
  const u = mk([3, 5]);
  const v = mk([3, 5]);
  for (const [name, f] of [
    ["softmax", (a: Tensor) => softmax(a, 1)],
    ["logSoftmax", (a: Tensor) => logSoftmax(a, 1)],
    ["logSoftmax dim 0", (a: Tensor) => logSoftmax(a, 0)],
  ] as const) {
    const loss = (a: Tensor) =>
      f(a)
        .mul(u)
        .sum()
        .add(f(a).mul(f(a)).sum());
    // reverse over reverse: the Hessian-vector product; its gradCheck is a third-order check
    const hv = (a: Tensor) => grad((b: Tensor) => (grad(loss)(b) as Tensor).mul(v).sum())(a) as Tensor;
    const r = gradCheck(hv, [x]);
    assert.ok(r.ok, `${name}: ${r.worst}`);
    // forward over reverse runs the JVP rules of the backward primitives
    const fwd = hvp(loss, x, v) as Tensor;
    near(fwd.dataSync(), Array.from(hv(x).dataSync()), 1e-12);
  }
});

test("the VJP of softmax / logSoftmax is the dense Jacobian transpose, row by row", () => {
  const x = mk([4, 6]);
  const u = mk([4, 6]);
  const xs = x.dataSync();
  const us = u.dataSync();
  for (const log of [false, true]) {
    const [y, back] = vjp((a: Tensor) => (log ? logSoftmax(a, 1) : softmax(a, 1)), x);
    const got = (back(u) as Tensor[])[0].dataSync();
    const ys = (y as Tensor).dataSync();
    for (let i = 0; i < 4; i++) {
      // p = softmax of the row; J = diag(p) - p p^T (softmax) or I - 1 p^T (log-softmax)
      const row = Array.from(xs.slice(i * 6, i * 6 + 6));
      const m = Math.max(...row);
      const e = row.map((a) => Math.exp(a - m));
      const z = e.reduce((a, b) => a + b);
      const p = e.map((a) => a / z);
      for (let k = 0; k < 6; k++) near([ys[i * 6 + k]], [log ? Math.log(p[k]) : p[k]], 1e-14);
      for (let k = 0; k < 6; k++) {
        let want = 0;
        for (let j = 0; j < 6; j++) {
          const jac = log ? (j === k ? 1 : 0) - p[k] : p[j] * ((j === k ? 1 : 0) - p[k]);
          want += us[i * 6 + j] * jac;
        }
        near([got[i * 6 + k]], [want], 1e-13);
      }
    }
  }
});

test("softmax / logSoftmax ops: integer input computes in float32, dims are checked", () => {
  const t = tensor([[1, 2, 3]], { dtype: "int32" });
  const y = logSoftmax(t, -1);
  assert.equal(y.dtype, "float32");
  near(y.dataSync(), Array.from(run(J, view([1, 2, 3], [1, 3], "float32"), 1, true)), 0);
  assert.throws(() => softmax(t, 2), /softmax: dim 2 is out of range for a tensor of rank 2/);
  assert.throws(() => logSoftmax(t, -3), /logSoftmax: dim -3 is out of range/);
});

test("native float32 softmax and attention flush probabilities below e^-87 to zero (no subnormal results)", {
  skip: nativeBackendOrUndefined() === undefined,
}, () => {
  const N = nativeBackendOrUndefined()!;
  const isa0 = nativeInfo().isa;
  // the AVX builds (vmath.h exp_f32_flush); the baseline SSE2 build keeps libm's expf
  const isas = (["avx512", "avx2"] as const).filter((i) => setNativeIsa(i));
  try {
    for (const isa of isas) {
      assert.ok(setNativeIsa(isa));
      // e^-90 = 8.2e-40 and e^-100 = 3.7e-44 are float32 subnormals in the js reference; native gives exact zeros
      const x = view([0, -90, -100, Number.NEGATIVE_INFINITY, -80], [5], "float32");
      const js = run(J, x, 0, false);
      assert.ok(
        js[1] > 0 && js[1] < 1.2e-38 && js[2] > 0,
        `js keeps subnormal probabilities: ${js[1]}, ${js[2]}`,
      );
      const nat = run(N, x, 0, false);
      assert.deepEqual(Array.from(nat.subarray(0, 4)), [1, 0, 0, 0], isa);
      // e^-80 = 1.8e-35 is normal: kept, within float32 precision of js
      assert.ok(Math.abs(nat[4] - js[4]) <= 1e-6 * js[4], `${isa} e^-80: ${nat[4]} vs ${js[4]}`);
      // log-softmax keeps its finite values (no exp of them is stored)
      const lg = run(N, x, 0, true);
      assert.ok(
        Math.abs(lg[2] + 100) < 1e-4 && lg[3] === Number.NEGATIVE_INFINITY,
        `${isa} log-softmax ${lg[2]}`,
      );
      // attention: one query whose second key scores -100 below the first (scale 1): its weight is an exact 0
      const q = view([1], [1, 1, 1], "float32");
      const k = view([0, -100], [1, 2, 1], "float32");
      const v = view([2, 5], [1, 2, 1], "float32");
      const out = new Float32Array(2);
      N.attention!(q, k, v, null, false, 1, out);
      assert.equal(out[0], 2, `${isa}: output = v of the first key exactly`);
      assert.ok(Math.abs(out[1]) < 1e-6, `${isa}: lse = log(1 + 0) = ${out[1]}`);
    }
  } finally {
    setNativeIsa(isa0 as "avx512" | "avx2" | "base");
  }
});
