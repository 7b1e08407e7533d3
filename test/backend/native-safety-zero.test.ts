/**
 * Zero-sized extents in every native kernel (issue 8, items 1 and 5).
 *
 * Each kernel of the backend object runs with each of its dimensions set to zero in turn (batch, channels,
 * groups' channels, height, width, kernel extents, matrix sizes, reduced and kept axes), on the js reference and
 * on every native instruction-set build with all threads and with one, and the outputs must agree. An empty
 * sum must give zeros (or the bias / activation of conv2d's epilogue), never a crash: the weight gradient of a
 * convolution over an empty batch used to divide by zero in its image chunking (SIGFPE, killing the process),
 * and a convolution with no input channel or a 0x0 kernel reported "out of memory". The public ops are
 * exercised too, forward and backward, so the shapes they produce reach the kernels exactly as in use.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, Conv2dParams, Pool2dParams, View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { setBackend } from "../../src/backend/registry.ts";
import type { DType, TypedArray } from "../../src/dtype.ts";
import { avgPool2d, conv2d, maxPool2d, type Tensor, tensor } from "../../src/index.ts";
import { crossEntropy } from "../../src/nn/index.ts";
import { assertClose, check, makeView, N, prng, size, tolFor } from "./native-helpers.ts";

const F32 = { rtol: 2e-5, atol: 2e-5 };

/** Run on js first; if js rejects the call, every native build must reject it too (no crash, no result). */
function checkOrBothThrow(what: string, dtype: DType, run: (b: Backend) => TypedArray): void {
  let jsError: unknown = null;
  try {
    run(J);
  } catch (e) {
    jsError = e;
  }
  if (jsError === null) {
    check(what, tolFor(dtype, F32), run);
    return;
  }
  assert.throws(() => run(N!), `${what}: js throws (${String(jsError)}), native must too`);
}

// ---------------------------------------------------------------------------------------------------------
// conv2d and its adjoints

const convOut = (n: number, k: number, s: number, p: number, d: number) =>
  Math.max(0, Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1);

interface ConvCase {
  n: number;
  c: number;
  h: number;
  w: number;
  o: number;
  kh: number;
  kw: number;
  groups: number;
}

const CONV_BASE: ConvCase = { n: 2, c: 2, h: 4, w: 5, o: 4, kh: 2, kw: 3, groups: 1 };
const CONV_DIMS = ["n", "c", "h", "w", "o", "kh", "kw"] as const;

test("conv2d, conv2dBackInput, conv2dBackWeight: each extent zero, agree with js", { skip: !N }, () => {
  const rng = prng(81);
  for (const zero of [null, ...CONV_DIMS]) {
    for (const groups of [1, 2]) {
      for (const [s, pad] of [
        [1, 0],
        [1, 1],
        [2, 1],
      ]) {
        const k: ConvCase = { ...CONV_BASE, groups };
        if (zero !== null) k[zero] = 0;
        for (const [kh, kw] of zero === null ? [[k.kh, k.kw]] : [[k.kh, k.kw]]) {
          const oh = convOut(k.h, kh, s, pad, 1);
          const ow = convOut(k.w, kw, s, pad, 1);
          const p: Conv2dParams = { stride: [s, s], padding: [pad, pad], dilation: [1, 1], groups };
          const xs = [k.n, k.c, k.h, k.w];
          const ws = [k.o, k.c / groups, kh, kw];
          const ys = [k.n, k.o, oh, ow];
          for (const dtype of ["float32", "float64", "int32"] as DType[]) {
            const name = `${dtype} x [${xs}] w [${ws}] y [${ys}] stride ${s} pad ${pad} groups ${groups}`;
            const how = rng() < 0.5 ? "contiguous" : "transposed";
            const x = makeView(xs, dtype, how, rng, "plain");
            const w = makeView(ws, dtype, "gaps", rng, "plain");
            const dy = makeView(ys, dtype, how, rng, "plain");
            check(`conv2d ${name}`, tolFor(dtype, F32), (b) => {
              const out = b.alloc(dtype, size(ys));
              b.conv2d(x, w, out, ys, p);
              return out;
            });
            if (dtype !== "int32") {
              const bias = makeView([k.o], dtype, "gaps", rng, "plain");
              check(`conv2d + bias + tanh ${name}`, tolFor(dtype, F32), (b) => {
                const out = b.alloc(dtype, size(ys));
                b.conv2d(x, w, out, ys, p, { bias, act: "tanh" });
                return out;
              });
              check(`conv2d + relu ${name}`, tolFor(dtype, F32), (b) => {
                const out = b.alloc(dtype, size(ys));
                b.conv2d(x, w, out, ys, p, { bias: null, act: "sigmoid" });
                return out;
              });
            }
            check(`conv2dBackInput ${name}`, tolFor(dtype, F32), (b) => {
              const out = b.alloc(dtype, size(xs));
              b.conv2dBackInput(dy, w, out, xs, p);
              return out;
            });
            check(`conv2dBackWeight ${name}`, tolFor(dtype, F32), (b) => {
              const out = b.alloc(dtype, size(ws));
              b.conv2dBackWeight(x, dy, out, ws, p);
              return out;
            });
          }
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// pooling

test("pooling kernels: each extent zero, agree with js", { skip: !N }, () => {
  const rng = prng(82);
  const params: Pool2dParams[] = [
    { kernel: [2, 2], stride: [2, 2], padding: [0, 0] },
    { kernel: [3, 2], stride: [1, 2], padding: [1, 1] },
  ];
  for (const xs of [
    [0, 3, 4, 5],
    [2, 0, 4, 5],
    [2, 3, 0, 5],
    [2, 3, 4, 0],
    [1, 1, 1, 1],
  ]) {
    for (const p of params) {
      const oh = Math.max(0, Math.floor((xs[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1);
      const ow = Math.max(0, Math.floor((xs[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1);
      const ys = [xs[0], xs[1], oh, ow];
      for (const dtype of ["float32", "float64", "int32"] as DType[]) {
        const name = `${dtype} x [${xs}] y [${ys}] ${JSON.stringify(p)}`;
        const x = makeView(xs, dtype, "contiguous", rng, "plain");
        const dy = makeView(ys, dtype, "contiguous", rng, "plain");
        checkOrBothThrow(`maxPool2d ${name}`, dtype, (b) => {
          const out = b.alloc(dtype, size(ys));
          b.maxPool2d(x, out, ys, p);
          return out;
        });
        checkOrBothThrow(`maxPool2dArgmax ${name}`, "int32", (b) => {
          const out = b.alloc("int32", size(ys));
          b.maxPool2dArgmax(x, out, ys, p);
          return out;
        });
        checkOrBothThrow(`maxPool2dBackward ${name}`, dtype, (b) => {
          const out = b.alloc(dtype, size(xs));
          b.maxPool2dBackward(x, dy, out, xs, p);
          return out;
        });
        if (dtype !== "int32") {
          checkOrBothThrow(`avgPool2d ${name}`, dtype, (b) => {
            const out = b.alloc(dtype, size(ys));
            b.avgPool2d(x, out, ys, p);
            return out;
          });
          checkOrBothThrow(`avgPool2dBackward ${name}`, dtype, (b) => {
            const out = b.alloc(dtype, size(xs));
            b.avgPool2dBackward(dy, out, xs, p);
            return out;
          });
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// dot

test("dot: batch, M, K or N zero, agree with js (an empty K gives zeros)", { skip: !N }, () => {
  const rng = prng(83);
  for (const [batch, m, k, n] of [
    [0, 3, 4, 5],
    [2, 0, 4, 5],
    [2, 3, 0, 5],
    [2, 3, 4, 0],
    [1, 40, 0, 70],
    [3, 0, 0, 0],
  ]) {
    for (const dtype of ["float32", "float64", "int32"] as DType[]) {
      const a = makeView([batch, m, k], dtype, "transposed", rng, "plain");
      const bb = makeView([batch, k, n], dtype, "contiguous", rng, "plain");
      check(`dot ${dtype} [${batch},${m},${k}] @ [${batch},${k},${n}]`, tolFor(dtype, F32), (b) => {
        const out = b.alloc(dtype, batch * m * n);
        b.dot(a, bb, out);
        return out;
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// reductions, cumsum, softmax: empty reduced axes and empty kept axes

const EMPTY_SHAPES: readonly (readonly number[])[] = [[0], [3, 0], [0, 4], [2, 0, 3], [0, 0]];

test("reduce, argReduce, cumsum, softmax: empty reduced or kept axes, agree with js", { skip: !N }, () => {
  const rng = prng(84);
  for (const shape of EMPTY_SHAPES) {
    for (const dtype of ["float32", "float64", "int32"] as DType[]) {
      const x = makeView(shape, dtype, "contiguous", rng, "plain");
      const axesSets: number[][] = [shape.map((_, i) => i), ...shape.map((_, i) => [i])];
      for (const axes of axesSets) {
        const kept = shape.filter((_, i) => !axes.includes(i));
        for (const op of ["sum", "prod", "max", "min"] as const) {
          checkOrBothThrow(`reduce ${op} ${dtype} [${shape}] axes [${axes}]`, dtype, (b) => {
            const out = b.alloc(dtype, size(kept));
            b.reduce(op, x, axes, out);
            return out;
          });
        }
      }
      for (let axis = 0; axis < shape.length; axis++) {
        const kept = shape.filter((_, i) => i !== axis);
        for (const op of ["argmax", "argmin"] as const) {
          checkOrBothThrow(`${op} ${dtype} [${shape}] axis ${axis}`, "int32", (b) => {
            const out = b.alloc("int32", size(kept));
            b.argReduce(op, x, axis, out);
            return out;
          });
        }
        for (const reverse of [false, true]) {
          checkOrBothThrow(`cumsum ${dtype} [${shape}] axis ${axis}`, dtype, (b) => {
            const out = b.alloc(dtype, size(shape));
            b.cumsum(x, axis, reverse, out);
            return out;
          });
        }
        if (dtype !== "int32") {
          const ct = makeView(shape, dtype, "contiguous", rng, "plain");
          for (const log of [false, true]) {
            checkOrBothThrow(`softmax ${dtype} [${shape}] axis ${axis} log ${log}`, dtype, (b) => {
              const out = b.alloc(dtype, size(shape));
              b.softmax(x, axis, log, out);
              return out;
            });
            checkOrBothThrow(`softmaxBackward ${dtype} [${shape}] axis ${axis} log ${log}`, dtype, (b) => {
              const out = b.alloc(dtype, size(shape));
              b.softmaxBackward(x, ct, axis, log, out);
              return out;
            });
          }
        }
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// elementwise, copies, indexing, Adam

test("elementwise, copy, gather, scatterAdd, adamUpdate on empty views, agree with js", { skip: !N }, () => {
  const rng = prng(85);
  for (const shape of EMPTY_SHAPES) {
    const n = size(shape);
    for (const dtype of ["float32", "float64"] as DType[]) {
      const v = (): View => makeView(shape, dtype, "contiguous", rng, "plain");
      const a = v();
      const bb = v();
      checkOrBothThrow(`unary exp [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.unary("exp", a, out);
        return out;
      });
      checkOrBothThrow(`binary add [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.binary("add", a, bb, out);
        return out;
      });
      const cond = makeView(shape, "bool", "contiguous", rng);
      checkOrBothThrow(`where [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.where(cond, a, bb, out);
        return out;
      });
      checkOrBothThrow(`cast [${shape}]`, "int32", (b) => {
        const out = b.alloc("int32", n);
        b.cast(a, out);
        return out;
      });
      checkOrBothThrow(`copy [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.copy(a, {
          data: out,
          shape,
          strides: makeView(shape, dtype, "contiguous", rng).strides,
          offset: 0,
        });
        return out;
      });
      checkOrBothThrow(`biasAct relu [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.biasAct("relu", a, null, out);
        return out;
      });
      checkOrBothThrow(`actGrad tanh [${shape}]`, dtype, (b) => {
        const out = b.alloc(dtype, n);
        b.actGrad("tanh", a, bb, out);
        return out;
      });
      for (let axis = 0; axis < shape.length; axis++) {
        // gather with idx of x's shape (an empty x along the axis can only take an empty idx there)
        const idx = makeView(shape, "int32", "contiguous", rng, "positive");
        checkOrBothThrow(`gather [${shape}] axis ${axis}`, dtype, (b) => {
          const out = b.alloc(dtype, n);
          b.gather(a, axis, idx, out);
          return out;
        });
        // scatterAdd of an empty src into a non-empty output along the axis: nothing is added
        const outShape = shape.map((s, i) => (i === axis ? 3 : s));
        checkOrBothThrow(`scatterAdd [${shape}] -> [${outShape}] axis ${axis}`, dtype, (b) => {
          const out = b.alloc(dtype, size(outShape));
          b.scatterAdd(a, axis, idx, out, outShape);
          return out;
        });
      }
      checkOrBothThrow(`adamUpdate [${shape}]`, dtype, (b) => {
        const p = b.alloc(dtype, n);
        const h = {
          lr: 0.1,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          decoupled: false,
          maximize: false,
          bc1: 0.1,
          bc2Sqrt: 0.03,
        };
        b.adamUpdate!(p, a, b.alloc(dtype, n), b.alloc(dtype, n), null, h);
        return p;
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// The public ops, forward and backward, with empty extents: native must give what js gives (values, gradients,
// or the same kind of error), never crash.

const sizeOf = (sh: readonly number[]) => sh.reduce((a, b) => a * b, 1);
const leaf = (sh: number[]) =>
  tensor(
    Float32Array.from({ length: sizeOf(sh) }, (_, i) => Math.cos(i + 1)),
    { shape: sh, requiresGrad: true },
  );

type Case = [string, number[][], (...xs: Tensor[]) => Tensor];
const OPS: Case[] = [
  [
    "matmul [2,0]@[0,3]",
    [
      [2, 0],
      [0, 3],
    ],
    (a, b) => a.matmul(b),
  ],
  [
    "matmul [0,4]@[4,3]",
    [
      [0, 4],
      [4, 3],
    ],
    (a, b) => a.matmul(b),
  ],
  [
    "batched matmul [0,2,3]@[0,3,2]",
    [
      [0, 2, 3],
      [0, 3, 2],
    ],
    (a, b) => a.matmul(b),
  ],
  ["sum over an empty axis", [[3, 0]], (a) => a.sum(1)],
  ["mean of [0, 4] along 1", [[0, 4]], (a) => a.mean(1)],
  ["max along a kept empty axis", [[0, 5]], (a) => a.max(1)],
  ["cumsum of [2, 0]", [[2, 0]], (a) => a.cumsum(1)],
  ["softmax of [0, 7]", [[0, 7]], (a) => a.softmax(-1)],
  ["logSoftmax of [3, 0] along 0", [[3, 0]], (a) => a.logSoftmax(0)],
  ["tanh of [0]", [[0]], (a) => a.tanh()],
  ["relu of [2, 0, 3]", [[2, 0, 3]], (a) => a.relu()],
  [
    "conv2d batch 0",
    [
      [0, 3, 5, 5],
      [4, 3, 3, 3],
    ],
    (x, w) => conv2d(x, w, null, { padding: 1 }),
  ],
  [
    "conv2d stride 2 batch 0",
    [
      [0, 2, 6, 6],
      [2, 2, 2, 2],
    ],
    (x, w) => conv2d(x, w, null, { stride: 2 }),
  ],
  ["conv2d 0 channels", [[2, 0, 4, 4], [3, 0, 3, 3], [3]], (x, w, b) => conv2d(x, w, b, { padding: 1 })],
  [
    "conv2d 0 filters",
    [
      [2, 3, 4, 4],
      [0, 3, 3, 3],
    ],
    (x, w) => conv2d(x, w),
  ],
  [
    "conv2d groups 2, 0 filters per group",
    [
      [1, 4, 4, 4],
      [0, 2, 3, 3],
    ],
    (x, w) => conv2d(x, w, null, { groups: 2 }),
  ],
  ["maxPool2d batch 0", [[0, 2, 4, 4]], (x) => maxPool2d(x, 2)],
  ["maxPool2d 0 channels", [[2, 0, 4, 4]], (x) => maxPool2d(x, 2, { padding: 1 })],
  ["avgPool2d batch 0", [[0, 2, 4, 4]], (x) => avgPool2d(x, 2)],
  ["crossEntropy of 0 samples", [[0, 5]], (x) => crossEntropy(x, tensor(new Int32Array(0)))],
  ["gather of 0 columns", [[3, 4]], (x) => x.gather(1, tensor(new Int32Array(0), { shape: [3, 0] }))],
];

test("public ops and their gradients with empty extents: native equals js", { skip: !N }, () => {
  for (const [name, shapes, f] of OPS) {
    const run = () => {
      const xs = shapes.map(leaf);
      const y = f(...xs);
      y.sum().backward();
      return [y.dataSync(), ...xs.map((x) => x.grad?.dataSync() ?? new Float32Array(0))];
    };
    setBackend(J);
    let want: TypedArray[] | null = null;
    let jsError: unknown = null;
    try {
      want = run();
    } catch (e) {
      jsError = e;
    }
    setBackend(N!);
    try {
      if (want === null) {
        assert.throws(run, `${name}: js throws ${String(jsError)}, native must too`);
        continue;
      }
      const got = run();
      for (let i = 0; i < want.length; i++) assertClose(got[i], want[i], F32, `${name} #${i}`);
    } finally {
      setBackend(J);
    }
  }
});
