/**
 * Eager autograd safety (issue 8, items 9 and 13):
 * - `retainGrad()` on a non-leaf keeps its gradient, accumulates it over backward passes like a leaf's, and
 *   gives a differentiable gradient under `createGraph`;
 * - a primitive that saved its OUTPUT for backward (exp, sigmoid, tanh, sqrt, relu, softmax, fused bias +
 *   activation, max, ...) refuses to run backward once that output was changed in place, with PyTorch's message,
 *   in eager mode and inside a functional transform, instead of silently returning a wrong gradient;
 * - `checkKinks` states the derivative value each primitive actually used at its kink (0.5 at maximum's ties).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkKinks } from "../src/core/check.ts";
import {
  AutodiffError,
  conv1d,
  conv2d,
  convTranspose1d,
  convTranspose2d,
  grad,
  jvp,
  logSoftmax,
  max,
  maximum,
  min,
  prod,
  randn,
  softmax,
  type Tensor,
  tensor,
} from "../src/index.ts";
import { biasActivation, linear } from "../src/ops/nn.ts";

const f64 = { dtype: "float64" as const };

function close(a: unknown, b: unknown, tol = 1e-9): void {
  const fa = [a].flat(Number.POSITIVE_INFINITY) as number[];
  const fb = [b].flat(Number.POSITIVE_INFINITY) as number[];
  assert.equal(fa.length, fb.length);
  fa.forEach((v, i) => {
    assert.ok(Math.abs(v - fb[i]) <= tol * (1 + Math.abs(fb[i])), `element ${i}: ${v} vs ${fb[i]}`);
  });
}

describe("retainGrad (PyTorch semantics)", () => {
  test("a non-leaf that called retainGrad has .grad after backward; others stay null", () => {
    const x = tensor([0.5, -1, 2], { ...f64, requiresGrad: true });
    const y = x.mul(3).retainGrad();
    const z = y.sin();
    z.sum().backward();
    // d sum(sin(y)) / dy = cos(y), y = 3x
    close(y.grad!.toArray(), [1.5, -3, 6].map(Math.cos));
    close(
      x.grad!.toArray(),
      [1.5, -3, 6].map((v) => 3 * Math.cos(v)),
    );
    assert.equal(z.grad, null);
    assert.equal(y.retainsGrad, true);
    assert.equal(z.retainsGrad, false);
  });

  test("the retained gradient accumulates across backward calls, like a leaf's", () => {
    const x = tensor([1, 2], { ...f64, requiresGrad: true });
    const y = x.square().retainGrad();
    const l = y.mul(tensor([5, 7], f64)).sum();
    l.backward(undefined, { retainGraph: true });
    close(y.grad!.toArray(), [5, 7]);
    l.backward(undefined, { retainGraph: true });
    close(y.grad!.toArray(), [10, 14]);
    // a fresh graph through the same non-leaf (whose graph is still retained) adds again
    y.mul(2).sum().backward();
    close(y.grad!.toArray(), [12, 16]);
  });

  test("a root and a tensor used twice get the summed cotangent", () => {
    const x = tensor(3, { ...f64, requiresGrad: true });
    const y = x.mul(2).retainGrad();
    const out = y.mul(y).add(y).retainGrad();
    out.backward();
    close(out.grad!.item(), 1);
    close(y.grad!.item(), 2 * 6 + 1);
  });

  test("with createGraph the retained gradient is differentiable", () => {
    const x = tensor(1.5, { ...f64, requiresGrad: true });
    const y = x.square().retainGrad();
    y.pow(3).backward(undefined, { createGraph: true });
    // dy^3/dy = 3 y^2 = 3 x^4, itself a function of x
    close(y.grad!.item(), 3 * 1.5 ** 4);
    assert.equal(y.grad!.requiresGrad, true);
    x.grad = null;
    y.grad!.backward();
    close(x.grad!.item(), 12 * 1.5 ** 3);
  });

  test("on a leaf it changes nothing; on a tensor without grad it is an error", () => {
    const w = tensor([1, 2], { requiresGrad: true });
    assert.equal(w.retainGrad(), w);
    w.mul(2).sum().backward();
    close(w.grad!.toArray(), [2, 2]);
    assert.throws(
      () => tensor([1]).retainGrad(),
      (e: Error) => {
        return e instanceof AutodiffError && /retainGrad: .* does not require grad/.test(e.message);
      },
    );
  });
});

/**
 * Each case builds y = f(x) through a primitive that saves its output, changes y in place through a detached
 * view, and expects backward to refuse. The same graph without the in-place change must still differentiate.
 */
const savedOutputCases: [string, (x: Tensor) => Tensor][] = [
  ["exp", (x) => x.exp()],
  ["expm1", (x) => x.expm1()],
  ["sqrt", (x) => x.abs().add(1).sqrt()],
  ["tan", (x) => x.mul(0.1).tan()],
  ["sigmoid", (x) => x.sigmoid()],
  ["tanh", (x) => x.tanh()],
  ["relu", (x) => x.relu()],
  ["softmax", (x) => softmax(x, -1)],
  ["logSoftmax", (x) => logSoftmax(x, -1)],
  ["biasAct", (x) => biasActivation(x, tensor([0.1, -0.2, 0.3], f64), "tanh")],
  ["biasAct", (x) => linear(x, randn([4, 3], f64), tensor([0, 1, 2, 3], f64), { activation: "sigmoid" })],
  [
    "conv2dBiasAct",
    (x) =>
      conv2d(x.reshape(1, 1, 2, 3), randn([2, 1, 2, 2], f64), tensor([0.5, -0.5], f64), {
        activation: "relu",
      }),
  ],
  ["max", (x) => max(x, 1)],
  ["min", (x) => min(x)],
  ["prod", (x) => prod(x, 0)],
];

const INPLACE =
  /one of the variables needed for gradient computation has been modified by an inplace operation: its output .* is at version 1; expected version 0/;

describe("a saved output changed in place is an error, not a wrong gradient", () => {
  for (const [name, f] of savedOutputCases) {
    test(`${name}: eager backward refuses; untouched it still works`, () => {
      const x = tensor(
        [
          [0.3, -1.2, 0.7],
          [1.1, 0.4, -0.6],
        ],
        { ...f64, requiresGrad: true },
      );
      const y = f(x);
      y.detach().copy_(1.25);
      assert.throws(
        () => y.sum().backward(),
        (e: Error) =>
          e instanceof AutodiffError &&
          e.message.includes(`backward of '${name}'`) &&
          INPLACE.test(e.message),
      );
      const y2 = f(x);
      y2.sum().backward();
      assert.ok(x.grad !== null && x.grad.toArray() !== null);
    });
  }

  test("a write through a view of the output is caught too", () => {
    const x = tensor([1, 2, 3, 4], { ...f64, requiresGrad: true });
    const y = x.exp();
    y.detach().index([1, 3]).mul_(2);
    assert.throws(() => y.sum().backward(), INPLACE);
  });

  test("inside a functional transform (grad) the saved output is guarded as well", () => {
    const f = (x: Tensor) => {
      const y = x.exp();
      y.detach().fill_(0);
      return y.sum();
    };
    assert.throws(() => grad(f)(tensor([0.5, 1], f64)), INPLACE);
    // control: without the write, grad of sum(exp(x)) is exp(x)
    close(grad((x: Tensor) => x.exp().sum())(tensor([0.5, 1], f64)).toArray(), [0.5, 1].map(Math.exp));
  });

  test("a write after backward has run is no error: the gradient was computed from the original values", () => {
    const x = tensor([0.5, 1], { ...f64, requiresGrad: true });
    const y = x.exp();
    y.sum().backward();
    y.detach().copy_(0);
    close(x.grad!.toArray(), [0.5, 1].map(Math.exp));
  });
});

describe("checkKinks states the value used at each kink", () => {
  const report = (fn: () => unknown) => checkKinks(fn).kinks.map((k) => k.message);

  test("maximum/minimum at a tie: 0.5 to each operand, and that is the gradient", () => {
    const a = tensor([2], f64);
    const { result, kinks } = checkKinks(() => grad((x: Tensor) => maximum(x, a).sum())(tensor([2], f64)));
    close(result.toArray(), [0.5]);
    assert.equal(kinks.length, 1);
    assert.match(kinks[0].message, /maximum .* the convention \(0\.5 to each operand/);
    assert.doesNotMatch(kinks[0].message, /convention \(0\)/);
    assert.match(
      report(() => grad((x: Tensor) => x.clamp(null, 1).sum())(tensor([1], f64)))[0],
      /minimum .*convention \(0\.5 to each operand/,
    );
  });

  test("max/min reductions at ties: 1/k to each tied entry, and that is the gradient", () => {
    const { result, kinks } = checkKinks(() => grad((x: Tensor) => max(x))(tensor([3, 1, 3, 3], f64)));
    close(result.toArray(), [1 / 3, 0, 1 / 3, 1 / 3]);
    assert.match(kinks[0].message, /max .*convention \(1\/k to each of the k tied entries/);
    // forward mode reports the same value (and its tangent is the same mean over the tied entries)
    const fwd = checkKinks(() =>
      jvp((x: Tensor) => max(x), [tensor([3, 1, 3, 3], f64)], [tensor([3, 0, 0, 0], f64)]),
    );
    close(fwd.result[1].item(), 1);
    assert.match(fwd.kinks[0].message, /max .*convention \(1\/k to each of the k tied entries/);
  });

  test("relu and abs at 0 use 0, and say so", () => {
    assert.match(
      report(() => grad((x: Tensor) => x.relu().sum())(tensor([0], f64)))[0],
      /relu .*convention \(0\),/,
    );
    assert.match(
      report(() => grad((x: Tensor) => x.abs().sum())(tensor([0], f64)))[0],
      /abs .*convention \(0\),/,
    );
  });
});

describe("arguments in the wrong place get a clear error", () => {
  test("backward takes its options alone or after the seed; anything else is named", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward({ retainGraph: true }); // the options alone, on a scalar
    y.backward(undefined, { retainGraph: true });
    y.backward(null, {});
    assert.deepEqual([...x.grad!.dataSync()], [6, 12]);
    assert.throws(
      () => y.backward({ retain_graph: true } as never),
      /backward: unknown option "retain_graph"/,
    );
    assert.throws(
      () => y.backward([1] as never),
      /backward: the first argument is the seed cotangent .* got an array/,
    );
    assert.throws(() => y.backward(2 as never), /got number/);
  });
  test("conv2d, conv1d, the transposed convolutions and linear name options passed where the bias goes", () => {
    const x4 = tensor(Array(16).fill(1)).reshape([1, 1, 4, 4]);
    const w4 = tensor(Array(9).fill(1)).reshape([1, 1, 3, 3]);
    const re = /bias must be a Tensor or null, got an object with keys padding; options come after it/;
    assert.throws(() => conv2d(x4, w4, { padding: 1 } as never), re);
    const x3 = tensor(Array(8).fill(1)).reshape([1, 1, 8]);
    const w3 = tensor([1, 1, 1]).reshape([1, 1, 3]);
    assert.throws(() => conv1d(x3, w3, { padding: 1 } as never), re);
    assert.throws(() => convTranspose2d(x4, w4, { stride: 2 } as never), /convTranspose2d: bias must be/);
    assert.throws(() => convTranspose1d(x3, w3, { stride: 2 } as never), /convTranspose1d: bias must be/);
    assert.throws(
      () => linear(tensor([[1, 2]]), tensor([[1, 2]]), { activation: "relu" } as never),
      /linear: bias/,
    );
    assert.equal(conv2d(x4, w4, null, { padding: 1 }).shape.join(), "1,1,4,4");
  });
});
