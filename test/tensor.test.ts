/**
 * Tensors: creation, dtypes and promotion, views, display, reading values, random seeding, and the error
 * messages for bad input (which must name the op and the shapes/dtypes, and leave state intact).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AutodiffError,
  arange,
  DTypeError,
  eye,
  full,
  grad,
  jvp,
  linspace,
  manualSeed,
  ones,
  rand,
  randint,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  zeros,
} from "../src/index.ts";
import { state } from "../src/core/trace.ts";

describe("creation and dtypes", () => {
  test("tensor infers shape and dtype; typed arrays keep theirs", () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, "float32");
    assert.equal(tensor([true, false]).dtype, "bool");
    assert.equal(tensor(new Int32Array([1, 2])).dtype, "int32");
    assert.equal(tensor(new Float64Array(6), { shape: [2, 3] }).dtype, "float64");
    assert.deepEqual(tensor(5).shape, []);
    assert.deepEqual(tensor([]).shape, [0]);
    assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
    assert.throws(() => tensor(new Float32Array(5), { shape: [2, 3] }), ShapeError);
    // the shape option applies to nested arrays and tensors too (it was ignored there)
    assert.deepEqual(tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] }).toArray(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(tensor(tensor([1, 2, 3, 4]), { shape: [2, 2] }).shape, [2, 2]);
    assert.throws(
      () => tensor([1, 2, 3], { shape: [2, 2] }),
      /tensor: shape \[2, 2\] needs 4 elements, the data has 3/,
    );
    assert.throws(() => tensor(tensor([1, 2]), { shape: [3] }), ShapeError);
  });

  test("fills, ranges and identity", () => {
    assert.deepEqual(zeros([2]).toArray(), [0, 0]);
    assert.deepEqual(ones([2], { dtype: "int32" }).toArray(), [1, 1]);
    assert.deepEqual(full([2], 7).toArray(), [7, 7]);
    assert.deepEqual(arange(5).toArray(), [0, 1, 2, 3, 4]);
    assert.equal(arange(5).dtype, "int32");
    assert.deepEqual(arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
    assert.deepEqual(linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(eye(2, 3).toArray(), [
      [1, 0, 0],
      [0, 1, 0],
    ]);
  });

  test("PyTorch-like promotion: int with float gives float, float32 with float64 gives float64", () => {
    const i = tensor([1, 2], { dtype: "int32" });
    const f = tensor([0.5, 0.5]);
    const d = tensor([1, 1], { dtype: "float64" });
    assert.equal(i.add(f).dtype, "float32");
    assert.equal(f.add(d).dtype, "float64");
    assert.equal(i.add(1).dtype, "int32");
    assert.equal(i.add(0.5).dtype, "float32");
    assert.equal(i.div(2).dtype, "float32");
    assert.deepEqual(i.div(2).toArray(), [0.5, 1]);
    assert.equal(tensor([true]).add(tensor([true])).dtype, "int32");
    assert.equal(f.to("float64").dtype, "float64");
    assert.deepEqual(tensor([1.7, -1.7]).to("int32").toArray(), [1, -1]);
  });

  test("seeded random numbers are reproducible", () => {
    manualSeed(42);
    const a = randn([5]).toArray();
    const b = rand([3]).toArray();
    const c = randint(0, 10, [4]).toArray() as number[];
    manualSeed(42);
    assert.deepEqual(randn([5]).toArray(), a);
    assert.deepEqual(rand([3]).toArray(), b);
    assert.deepEqual(randint(0, 10, [4]).toArray(), c);
    assert.ok(c.every((v) => Number.isInteger(v) && v >= 0 && v < 10));
    manualSeed(1);
    const big = randn([20000], { dtype: "float64" });
    const mean = (big.mean().item() as number) ?? 0;
    const std = big.std().item() as number;
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(std - 1) < 0.03, `mean ${mean} std ${std}`);
  });
});

describe("views and values", () => {
  test("reshape, transpose, slicing and expand share storage; in-place writes show through", () => {
    const t = arange(12).reshape(3, 4).to("float32");
    const v = t.T;
    assert.equal(v._data, t._data);
    const s = t.index([0, 3, 2], [1, null]);
    assert.equal(s._data, t._data);
    assert.deepEqual(s.toArray(), [
      [1, 2, 3],
      [9, 10, 11],
    ]);
    t.index(0).fill_(-1);
    assert.deepEqual(v.index(0).toArray(), [-1, 4, 8]);
    assert.deepEqual(v.index(":", 0).toArray(), [-1, -1, -1, -1]);
    const e = tensor([1, 2]).reshape(2, 1).expand(2, 3);
    assert.deepEqual(e.toArray(), [
      [1, 1, 1],
      [2, 2, 2],
    ]);
    assert.throws(() => t.T.view(12), /cannot be viewed as \[12\] without a copy/);
    assert.deepEqual(t.T.reshape(12).shape, [12]);
  });

  test("toString shows values, dtype and shape like PyTorch", () => {
    assert.equal(
      tensor([
        [1, 2],
        [3, 4],
      ]).toString(),
      "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], dtype=float32, shape=[2, 2])",
    );
    assert.equal(tensor([1, 2], { dtype: "int32" }).toString(), "tensor([1, 2], dtype=int32, shape=[2])");
    assert.ok(zeros([100, 100]).toString().includes("..."));
    assert.ok(tensor([1], { requiresGrad: true }).toString().includes("requiresGrad=true"));
  });

  test("item, dataSync, data()", async () => {
    assert.equal(tensor([[3]]).item(), 3);
    assert.throws(() => tensor([1, 2]).item(), /one element/);
    assert.deepEqual(Array.from(await tensor([1, 2]).data()), [1, 2]);
    assert.ok(tensor([1, 2]).T.dataSync() instanceof Float32Array);
  });
});

test("mT transposes the last two dims of a batch of matrices (a view), and needs 2 dims", () => {
  const t = arange(24).reshape(2, 3, 4);
  const m = t.mT;
  assert.deepEqual(m.shape, [2, 4, 3]);
  assert.equal(m._data, t._data);
  for (let b = 0; b < 2; b++)
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++) assert.equal(m.index(b, j, i).item(), b * 12 + i * 4 + j);
  assert.throws(() => arange(3).mT, /mT: expected a tensor with at least 2 dims, got shape \[3\]/);
});

describe("bad input gives clear errors and leaves state intact", () => {
  const levelBefore = () => state.nextLevel;

  test("shape mismatch names the op and both shapes", () => {
    assert.throws(() => tensor([1, 2]).add(tensor([1, 2, 3])), /add: shapes \[2\] and \[3\]/);
    assert.throws(() => ones([2, 3]).matmul(ones([2, 3])), /matmul: inner dimensions.*\[2, 3\] @ \[2, 3\]/);
    assert.throws(() => ones([2, 3]).reshape(4), /reshape: cannot reshape \[2, 3\]/);
    assert.throws(() => ones([2, 3]).sum(2), /dim 2 is out of range for a tensor of rank 2/);
    assert.throws(() => ones([2, 3]).index(0, 5), /index 5 is out of range for dim 1 of size 3/);
    assert.throws(
      () => ones([2, 3]).gather(1, tensor([[0, 3]], { dtype: "int32" })),
      /gather: index 3 is out of range for size 3/,
    );
    assert.throws(() => ones([2, 3]).gather(1, tensor([[0, 1]])), DTypeError);
  });

  test("grad of an integer or bool tensor is an error", () => {
    const start = levelBefore();
    assert.throws(
      () => grad((x: Tensor) => x.sum())(tensor([1, 2], { dtype: "int32" })),
      /only floating-point/,
    );
    assert.throws(() => tensor([1], { dtype: "int32", requiresGrad: true }), DTypeError);
    assert.throws(() => grad((x: Tensor) => x)(tensor([1, 2])), /must return a scalar, got shape \[2\]/);
    assert.equal(state.nextLevel, start);
  });

  test("an error inside a transform restores the trace stack", () => {
    const start = levelBefore();
    assert.throws(() => grad((x: Tensor) => x.add(ones([3])).sum())(ones([2])), ShapeError);
    assert.throws(() => jvp((x: Tensor) => x.matmul(x), [ones([2, 3])], [ones([2, 3])]), ShapeError);
    assert.equal(state.nextLevel, start);
    // and transforms still work afterwards
    assert.equal(grad((x: Tensor) => x.square())(tensor(3)).item(), 6);
  });

  test("nodes that saved nothing can be differentiated through again, as in PyTorch", () => {
    // PyTorch: h = w + 1; l1 = h.sum(); l2 = (h * 3).sum(); l1.backward(); l2.backward() -> w.grad = [4, 4]
    const w = tensor([1, 2], { requiresGrad: true });
    const h = w.add(1);
    const l1 = h.sum();
    const l2 = h.mul(3).sum();
    l1.backward();
    l2.backward();
    assert.deepEqual(w.grad!.toArray(), [4, 4]);
    // a graph of such nodes only: backward twice accumulates twice
    const s = w.add(1).sum();
    s.backward();
    s.backward();
    assert.deepEqual(w.grad!.toArray(), [6, 6]);
    // a shared node that saved a value (exp saves its output) is still freed by the first pass
    const e = w.exp();
    const m1 = e.sum();
    const m2 = e.mul(2).sum();
    m1.backward();
    assert.throws(() => m2.backward(), /the graph through 'exp' was already freed.*retainGraph/);
  });

  test("backward twice, non-scalar backward, and in-place modification of a saved tensor", () => {
    const w = tensor([1, 2], { requiresGrad: true });
    const y = w.exp().sum();
    y.backward();
    assert.throws(() => y.backward(), /already freed.*retainGraph/);
    const z = w.exp();
    assert.throws(() => z.backward(), /seed cotangent is required for a non-scalar output of shape \[2\]/);
    assert.throws(() => z.backward(ones([3])), /seed shape \[3\] does not match output shape \[2\]/);
    const e = w.mul(2);
    const l = e.mul(e).sum();
    e.detach().add_(1);
    assert.throws(
      () => l.backward(),
      /modified by an inplace operation: input 0 .* is at version 1; expected version 0/,
    );
    assert.throws(() => w.add_(1), /in-place operation on a tensor that requires grad/);
    assert.throws(() => tensor([1]).backward(), /does not require grad/);
    const r = w.sin().sum();
    r.backward(undefined, { retainGraph: true });
    w.grad = null;
    r.backward();
    assert.ok(w.grad !== null);
  });

  test("retainGraph allows a second backward, which accumulates into .grad", () => {
    const w = tensor([3], { dtype: "float64", requiresGrad: true });
    const y = w.square().sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assert.deepEqual(w.grad!.toArray(), [12]);
  });

  test("residuals are released once backward has used them", () => {
    const w = tensor([1, 2], { requiresGrad: true });
    const y = w.exp().mul(w).sum();
    const node = y._node!;
    const parents = node.parents.filter((p) => p !== null);
    y.backward();
    assert.equal(node.saved, null);
    for (const p of parents) {
      assert.equal(p!.saved, null);
      assert.equal(p!.out, null);
    }
  });

  test("AutodiffError for backward of a tracer", () => {
    assert.throws(
      () =>
        grad((x: Tensor) => {
          x.backward();
          return x;
        })(tensor(1)),
      AutodiffError,
    );
  });
});
