/**
 * The ops of issue 13 against PyTorch 1.13: the expected values below were computed with torch 1.13 (float64
 * unless noted) and pasted here; the op table (test/opinfo.ts) checks the same ops against float64 references
 * on every backend, with their derivatives.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as cr from "../src/index.ts";
import { grad, type Tensor, tensor } from "../src/index.ts";

const f64 = (v: unknown) => tensor(v as number[], { dtype: "float64" });

function close(got: Tensor | number[], want: number[], rtol = 1e-14, what = ""): void {
  const g = Array.isArray(got) ? got : Array.from(got.dataSync(), Number);
  assert.equal(g.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const v = g[i];
    if (Number.isNaN(w)) assert.ok(Number.isNaN(v), `${what}[${i}]: got ${v}, expected NaN`);
    else if (!Number.isFinite(w)) assert.equal(v, w, `${what}[${i}]`);
    else
      assert.ok(Math.abs(v - w) <= rtol * Math.max(1, Math.abs(w)), `${what}[${i}]: got ${v}, expected ${w}`);
  }
}

describe("inverse trigonometric and hyperbolic functions, log2, log10 (torch 1.13)", () => {
  const x = [-0.9, -0.3, 0.0, 0.45, 0.99];
  // [op, values at x, derivative at x] from torch
  const rows: [string, number[], number[]][] = [
    [
      "asin",
      [-1.1197695149986342, -0.30469265401539747, 0.0, 0.4667653390472964, 1.4292568534704693],
      [2.294157338705618, 1.0482848367219182, 1.0, 1.1197850219117087, 7.088812050083354],
    ],
    [
      "acos",
      [2.6905658417935308, 1.8754889808102941, 1.5707963267948966, 1.1040309877476002, 0.1415394733244273],
      [-2.294157338705618, -1.0482848367219182, -1.0, -1.1197850219117087, -7.088812050083354],
    ],
    [
      "atan",
      [-0.7328151017865066, -0.2914567944778671, 0.0, 0.4228539261329407, 0.7803730800666359],
      [0.5524861878453039, 0.9174311926605504, 1.0, 0.8316008316008315, 0.5050249987374376],
    ],
    [
      "sinh",
      [-1.0265167257081753, -0.3045202934471426, 0.0, 0.46534201693419774, 1.1598288906636083],
      [1.4330863854487745, 1.0453385141288605, 1.0, 1.102970168555971, 1.5314055816856538],
    ],
    [
      "cosh",
      [1.4330863854487745, 1.0453385141288605, 1.0, 1.102970168555971, 1.5314055816856538],
      [-1.0265167257081753, -0.3045202934471426, 0.0, 0.46534201693419774, 1.1598288906636083],
    ],
    [
      "asinh",
      [-0.8088669356527824, -0.29567304756342244, 0.0, 0.43604966885174057, 0.8742848121872949],
      [0.7432941462471663, 0.9578262852211513, 1.0, 0.9119215051751063, 0.7106511090102073],
    ],
    [
      "atanh",
      [-1.4722194895832204, -0.30951960420311175, 0.0, 0.48470027859405174, 2.6466524123622457],
      [5.263157894736843, 1.0989010989010988, 1.0, 1.2539184952978057, 50.25125628140696],
    ],
  ];
  for (const [op, want, dwant] of rows) {
    test(op, () => {
      const f = (t: Tensor) => (cr as unknown as Record<string, (t: Tensor) => Tensor>)[op](t);
      close(f(f64(x)), want, 1e-14, op);
      close(grad((t: Tensor) => f(t).sum())(f64(x)) as Tensor, dwant, 1e-13, `${op}'`);
      // the method form and float32
      close((f64(x) as unknown as Record<string, () => Tensor>)[op](), want, 1e-14, `${op} method`);
      close(f(f64(x).to("float32")), want.map(Math.fround), 1e-6, `${op} float32`);
    });
  }
  test("acosh, log2, log10 and their derivatives", () => {
    const a = f64([1.0, 1.5, 3.0, 10.0]);
    close(cr.acosh(a), [0.0, 0.9624236501192069, 1.762747174039086, 2.993222846126381], 1e-14, "acosh");
    close(
      grad((t: Tensor) => t.acosh().sum())(a) as Tensor,
      [Infinity, 0.8944271909999159, 0.35355339059327373, 0.10050378152592121],
      1e-13,
      "acosh'",
    );
    const l = f64([0.125, 1.0, 3.0, 1000.0, 1e-300]);
    // exact at powers of two and ten (a dedicated kernel, not log(x) / ln 2)
    close(cr.log2(l), [-3.0, 0.0, 1.584962500721156, 9.965784284662087, -996.5784284662087], 0, "log2");
    close(cr.log10(l), [-0.9030899869919435, 0.0, 0.47712125471966244, 3.0, -300.0], 0, "log10");
    close(
      grad((t: Tensor) => t.log2().sum())(l) as Tensor,
      [
        11.541560327111707, 1.4426950408889634, 0.48089834696298783, 0.0014426950408889636,
        1.4426950408889635e300,
      ],
      1e-14,
      "log2'",
    );
    close(
      grad((t: Tensor) => t.log10().sum())(l) as Tensor,
      [
        3.474355855226015, 0.43429448190325187, 0.14476482730108395, 0.00043429448190325184,
        4.342944819032518e299,
      ],
      1e-14,
      "log10'",
    );
  });
  test("domain edges and integer inputs as in torch", () => {
    close(cr.asin(tensor([2.0, -1.0])), [Number.NaN, -1.5707963705062866], 0, "asin edge (float32)");
    close(cr.atanh(tensor([1.0, -1.0])), [Infinity, -Infinity], 0, "atanh poles");
    close(cr.acosh(tensor([0.5])), [Number.NaN], 0, "acosh below 1");
    const li = cr.log2(tensor([8, 1024], { dtype: "int32" }));
    assert.equal(li.dtype, "float32");
    close(li, [3, 10], 0, "log2 int32");
  });
});

describe("tril/triu, repeat/tile, roll, meshgrid, cumprod (torch 1.13)", () => {
  const x = () =>
    f64([
      [1, 2, 3],
      [4, 5, 6],
    ]);
  test("repeat and tile", () => {
    const r = x().repeat(2, 1, 2);
    assert.deepEqual(r.toArray(), [
      [
        [1, 2, 3, 1, 2, 3],
        [4, 5, 6, 4, 5, 6],
      ],
      [
        [1, 2, 3, 1, 2, 3],
        [4, 5, 6, 4, 5, 6],
      ],
    ]);
    assert.deepEqual(x().tile([2]).toArray(), [
      [1, 2, 3, 1, 2, 3],
      [4, 5, 6, 4, 5, 6],
    ]);
    assert.throws(() => x().repeat(2), /repeat: got 1 repeats \[2\] for a tensor of rank 2/);
  });
  test("roll", () => {
    assert.deepEqual(cr.roll(x(), 1).toArray(), [
      [6, 1, 2],
      [3, 4, 5],
    ]);
    assert.deepEqual(x().roll([1, -1], [0, 1]).toArray(), [
      [5, 6, 4],
      [2, 3, 1],
    ]);
    assert.deepEqual(x().roll(5, 1).toArray(), [
      [2, 3, 1],
      [5, 6, 4],
    ]);
    assert.throws(() => x().roll([1, 2], 0), /roll: got 2 shifts \[1, 2\] and 1 dims \[0\]/);
  });
  test("tril and triu with diagonal offsets", () => {
    assert.deepEqual(x().tril(-1).toArray(), [
      [0, 0, 0],
      [4, 0, 0],
    ]);
    assert.deepEqual(x().triu(1).toArray(), [
      [0, 2, 3],
      [0, 0, 6],
    ]);
    assert.deepEqual(x().tril(1).toArray(), [
      [1, 2, 0],
      [4, 5, 6],
    ]);
    assert.throws(() => f64([1, 2]).tril(), /tril: expected a tensor of at least 2 dims .* got shape \[2\]/);
  });
  test("meshgrid xy", () => {
    const [p, q] = cr.meshgrid([f64([1, 2, 3]), f64([4, 5])], { indexing: "xy" });
    assert.deepEqual(p.toArray(), [
      [1, 2, 3],
      [1, 2, 3],
    ]);
    assert.deepEqual(q.toArray(), [
      [4, 4, 4],
      [5, 5, 5],
    ]);
  });
  test("cumprod and its gradient at zeros", () => {
    const w = f64([1, 2, 3, 4, 5]);
    const c1 = f64([2, 0, 3, -1, 0.5]);
    close(cr.cumprod(c1, 0), [2, 0, 0, -0, -0], 0, "cumprod");
    close(
      grad((t: Tensor) => t.cumprod(0).mul(w).sum())(c1) as Tensor,
      [1, -17, 0, 0, 0],
      0,
      "cumprod' one zero",
    );
    const c2 = f64([2, 0, 3, 0, 0.5]);
    close(
      grad((t: Tensor) => t.cumprod(0).mul(w).sum())(c2) as Tensor,
      [1, 22, 0, 0, 0],
      0,
      "cumprod' two zeros",
    );
    const b = cr.cumprod(tensor([true, true, false]), 0);
    assert.equal(b.dtype, "int32");
    assert.deepEqual(b.toArray(), [1, 1, 0]);
  });
});

describe("sort, argsort, topk (torch 1.13, stable=True)", () => {
  const x = () =>
    f64([
      [3, 1, Number.NaN, 1, -0, 0, 2],
      [5, 5, -1, 5, 2, 2, 0],
    ]);
  test("stable sort, ascending and descending, NaN largest", () => {
    const [v, i] = x().sort();
    close(v, [-0, 0, 1, 1, 2, 3, Number.NaN, -1, 0, 2, 2, 5, 5, 5], 0, "values");
    assert.deepEqual(i.toArray(), [
      [4, 5, 1, 3, 6, 0, 2],
      [2, 6, 4, 5, 0, 1, 3],
    ]);
    assert.equal(i.dtype, "int32");
    const d = cr.sort(x(), { descending: true });
    close(d.values, [Number.NaN, 3, 2, 1, 1, -0, 0, 5, 5, 5, 2, 2, 0, -1], 0, "descending values");
    assert.deepEqual(d.indices.toArray(), [
      [2, 0, 6, 1, 3, 4, 5],
      [0, 1, 3, 4, 5, 6, 2],
    ]);
    assert.deepEqual(cr.argsort(x(), 0).toArray(), [
      [0, 0, 1, 0, 0, 0, 1],
      [1, 1, 0, 1, 1, 1, 0],
    ]);
  });
  test("gradients go to the selected positions", () => {
    const y = f64([4, 1, 4, 2, 4, 0]);
    const w = f64([0, 1, 2, 3, 4, 5]);
    // torch: sort(descending, stable) indices [0, 2, 4, 3, 1, 5], gradient of sum(values * w)
    assert.deepEqual(y.sort(0, true).indices.toArray(), [0, 2, 4, 3, 1, 5]);
    close(
      grad((t: Tensor) => t.sort(0, true).values.mul(w).sum())(y) as Tensor,
      [0, 4, 1, 3, 2, 5],
      0,
      "sort'",
    );
    // topk of distinct values (torch leaves the order of ties to the implementation; ours takes the first)
    const z = f64([0.5, 3, -2, 7, 1, 6]);
    const t = z.topk(3);
    close(t.values, [7, 6, 3], 0, "topk values");
    assert.deepEqual(t.indices.toArray(), [3, 5, 1]);
    const s = z.topk(2, { largest: false });
    close(s.values, [-2, 0.5], 0, "topk smallest");
    assert.deepEqual(s.indices.toArray(), [2, 0]);
    close(
      grad((u: Tensor) =>
        u
          .topk(2)
          .values.mul(f64([1, 10]))
          .sum(),
      )(z) as Tensor,
      [0, 0, 0, 1, 0, 10],
      0,
      "topk'",
    );
    // at a tie, the gradient goes to the positions selected (here the first two of three equal maxima)
    close(
      grad((u: Tensor) =>
        u
          .topk(2)
          .values.mul(f64([1, 10]))
          .sum(),
      )(f64([4, 1, 4, 2, 4, 0])) as Tensor,
      [1, 0, 10, 0, 0, 0],
      0,
      "topk' at ties",
    );
  });
  test("errors name the op, the shape and what was expected", () => {
    assert.throws(
      () => f64([1, 2, 3]).topk(4),
      /topk: k = 4 is out of range for dim -1 of size 3 \(shape \[3\]\); expected an integer in \[0, 3\]/,
    );
    assert.throws(() => f64([1, 2, 3]).sort(1), /sort: dim 1 is out of range for a tensor of rank 1/);
    assert.throws(() => f64([1, 2, 3]).topk(1.5), /topk: k = 1.5/);
  });
  test("the js argsort kernel on a strided view (reversed rows, -0 and NaN)", async () => {
    const { argsort } = await import("../src/backend/js/sort.ts");
    const data = new Float64Array([9, Number.NaN, 1, -0, 0, 1, 3]);
    // [2, 3] view reading positions (6, 4, 2) and (5, 3, 1): strides [-1, -2], offset 6
    const out = new Int32Array(6);
    argsort({ data, shape: [2, 3], strides: [-1, -2], offset: 6 }, 1, false, out);
    // rows [3, 0, 1] and [1, -0, NaN]
    assert.deepEqual([...out], [1, 2, 0, 1, 0, 2]);
    argsort({ data, shape: [2, 3], strides: [-1, -2], offset: 6 }, 0, true, out);
    // columns [3, 1], [0, -0] (equal: order kept), [1, NaN]
    assert.deepEqual([...out], [0, 0, 1, 1, 1, 0]);
  });
});

describe("scatter, indexPut, maskedSelect, index with a mask and an ellipsis (torch 1.13)", () => {
  const i32 = (v: unknown) => tensor(v as number[], { dtype: "int32" });
  test("values", () => {
    const s = cr.zeros([3, 4]).scatter(
      1,
      i32([
        [0, 3],
        [2, 1],
      ]),
      tensor([
        [1, 2],
        [3, 4],
      ]),
    );
    assert.deepEqual(s.toArray(), [
      [1, 0, 0, 2],
      [0, 4, 3, 0],
      [0, 0, 0, 0],
    ]);
    const a = cr.scatter(cr.zeros([3, 4]), 0, i32([[0, 1, 0, 0]]), cr.ones([1, 4]), { reduce: "add" });
    assert.deepEqual(a.toArray(), [
      [1, 0, 1, 1],
      [0, 1, 0, 0],
      [0, 0, 0, 0],
    ]);
    const y = cr.arange(6).to("float32").reshape(2, 3);
    const p = y.indexPut([i32([1, 0, 1]), i32([2, 0, 2])], tensor([10, 20, 30]), { accumulate: true });
    assert.deepEqual(p.toArray(), [
      [20, 1, 2],
      [3, 4, 45],
    ]);
    const m = tensor([true, false, true], { dtype: "bool" });
    assert.deepEqual(y.maskedSelect(m).toArray(), [0, 2, 3, 5]);
    assert.deepEqual(y.index("...", tensor([false, true, true], { dtype: "bool" })).toArray(), [
      [1, 2],
      [4, 5],
    ]);
  });
  test("errors", () => {
    const y = cr.zeros([2, 3]);
    assert.throws(
      () => y.indexPut([i32([2])], 1),
      /indexPut: index 0 value 2 is out of range for a dim of size 2/,
    );
    assert.throws(() => y.indexPut([i32([1, 1])], 1), /indexPut: position 1 is written more than once/);
    assert.throws(() => y.scatter(1, i32([[0, 0]]), 1), /scatter: index writes a position twice along dim 1/);
    assert.throws(
      () => y.index(tensor([true, false, true], { dtype: "bool" })),
      /index: the mask of shape \[3\] does not match the dims 0 .. 0 of the indexed tensor of shape \[2, 3\]/,
    );
    assert.throws(() => y.maskedSelect(tensor([true, false], { dtype: "bool" })), /maskedSelect/);
  });
});

// python3 -c 'import torch; x = torch.arange(24., dtype=torch.float64).reshape(2, 3, 4); ...' (torch 1.13)
describe("index with null as a new axis (PyTorch's None) and an ellipsis (torch 1.13)", () => {
  const x = cr.arange(24, undefined, 1, { dtype: "float64" }).reshape(2, 3, 4);
  test("shapes and values", () => {
    // x[:, None].shape, x[None].shape, x[..., None].shape, x[1, None, ..., None, 2].shape, x[None, ..., None].shape
    assert.deepEqual(x.index(":", null).shape, [2, 1, 3, 4]);
    assert.deepEqual(x.index(null).shape, [1, 2, 3, 4]);
    assert.deepEqual(x.index("...", null).shape, [2, 3, 4, 1]);
    assert.deepEqual(x.index(null, "...", null).shape, [1, 2, 3, 4, 1]);
    // x[1, None, :, None, 2].tolist() == [[[14.0], [18.0], [22.0]]]; the ellipsis form has the same shape
    assert.deepEqual(x.index(1, null, ":", null, 2).toArray(), [[[14], [18], [22]]]);
    assert.deepEqual(x.index(1, null, "...", null, 2).shape, [1, 3, 1]);
    // x[None, 0, None, [1, 2]].tolist() (a slice 1:3 here)
    assert.deepEqual(x.index(null, 0, null, [1, 3]).toArray(), [
      [
        [
          [4, 5, 6, 7],
          [8, 9, 10, 11],
        ],
      ],
    ]);
    // x[:, None, [2, 0]].shape == [2, 1, 2, 4]; x[None, ..., mask].shape == [1, 2, 3, 2]
    const ix = tensor([2, 0], { dtype: "int32" });
    const xi = x.index(":", null, ix);
    assert.deepEqual(xi.shape, [2, 1, 2, 4]);
    assert.deepEqual(xi.index(1, 0, 0).toArray(), [20, 21, 22, 23]);
    const mask = tensor([true, false, true, false], { dtype: "bool" });
    assert.deepEqual(x.index(null, "...", mask).shape, [1, 2, 3, 2]);
    // 0-d: torch.tensor(5.)[None].shape == [1], [None, ..., None] == [1, 1]
    assert.deepEqual(f64(5).index(null).toArray(), [5]);
    assert.deepEqual(f64(5).index(null, "...", null).shape, [1, 1]);
    // a view: writes show through
    const base = x.clone();
    base.index(null, 1, ":", null).fill_(-1);
    assert.deepEqual(base.index(1, 0).toArray(), [-1, -1, -1, -1]);
    // the whole dim is ":" (null no longer means it); too many dims still an error
    assert.throws(() => x.index(0, 0, 0, 0), /index: too many indices \(4\) for a tensor of rank 3/);
    assert.deepEqual(x.index(null, null, null, null, 0, 0, 0).shape, [1, 1, 1, 1]);
  });
  test("gradient, vmap, jit and makeJaxpr", () => {
    // w[1, None, :, None, 2] * [[[1], [2], [3]]], summed: w.grad has 1, 2, 3 at w[1, :, 2]
    const c = f64([[[1], [2], [3]]]);
    const f = (w: Tensor) => w.index(1, null, ":", null, 2).mul(c).sum();
    const g = grad(f)(x);
    const want = new Array(24).fill(0);
    want[12 + 2] = 1;
    want[16 + 2] = 2;
    want[20 + 2] = 3;
    close(g, want, 0, "grad");
    // vmap over the leading axis: per example [3, 4] -> [1, 3, 1]
    const h = (w: Tensor) => w.index(null, "...", 2, null);
    const vm = cr.vmap(h)(x);
    assert.deepEqual(vm.shape, [2, 1, 3, 1]);
    close(vm, [2, 6, 10, 14, 18, 22], 0, "vmap");
    const jh = cr.jit(h);
    close(jh(x.index(0)), [2, 6, 10], 0, "jit");
    close(jh(x.index(1)), [14, 18, 22], 0, "jit again");
    const jg = cr.jit(grad(f));
    close(jg(x), want, 0, "jit(grad)");
    const prog = cr.makeJaxpr(h)(x.index(0));
    assert.match(String(prog), /reshape/);
  });
});

describe("diagonal and diag (torch 1.13 values)", () => {
  const x = () => cr.arange(24, undefined, 1, { dtype: "float64" }).reshape([2, 3, 4]);
  test("diagonal: offsets, other dims, batches, past the matrix", () => {
    const m = x().index(0);
    assert.deepEqual(cr.diagonal(m).toArray(), [0, 5, 10]);
    assert.deepEqual(m.diagonal(1).toArray(), [1, 6, 11]);
    assert.deepEqual(m.diagonal(-1).toArray(), [4, 9]);
    assert.deepEqual(m.diagonal(5).shape, [0]);
    assert.deepEqual(x().diagonal(0, 1, 2).toArray(), [
      [0, 5, 10],
      [12, 17, 22],
    ]);
    assert.deepEqual(x().diagonal(1, 0, 2).toArray(), [
      [1, 14],
      [5, 18],
      [9, 22],
    ]);
    assert.deepEqual(x().diagonal(-1, 2, 1).toArray(), [
      [1, 6, 11],
      [13, 18, 23],
    ]);
    assert.throws(() => m.diagonal(0, 1, 1), /diagonal: dim1 and dim2 must differ/);
    assert.throws(() => cr.diagonal(f64([1, 2])), /diagonal: expected a tensor of at least 2 dims/);
  });
  test("diag: a vector onto a diagonal, a matrix's diagonal", () => {
    const v = f64([1, 2, 3]);
    assert.deepEqual(cr.diag(v, 1).toArray(), [
      [0, 1, 0, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 3],
      [0, 0, 0, 0],
    ]);
    assert.deepEqual(v.diag(-2).toArray(), [
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [1, 0, 0, 0, 0],
      [0, 2, 0, 0, 0],
      [0, 0, 3, 0, 0],
    ]);
    assert.deepEqual(x().index(0).diag(-1).toArray(), [4, 9]);
    assert.throws(() => cr.diag(x()), /diag: expected a 1-d or 2-d tensor, got shape \[2, 3, 4\]/);
  });
  test("derivatives against finite differences, and under vmap", () => {
    const w = f64([0.5, -1, 2, 0.25]);
    const a = cr.randn([3, 4], { dtype: "float64" });
    for (const f of [
      (t: Tensor) =>
        t
          .diagonal(1)
          .mul(w.narrow(0, 0, 3))
          .sum(),
      (t: Tensor) => t.diagonal(-1).square().sum(),
      (t: Tensor) => t.diagonal(0).diag(1).exp().sum(),
    ]) {
      const r = cr.gradCheck(f, [a]);
      assert.ok(r.ok, JSON.stringify(r).slice(0, 300));
    }
    // per-example diagonals: vmap over a batch of matrices equals the batched diagonal
    const b = cr.randn([5, 3, 4], { dtype: "float64" });
    const per = cr.vmap((t: Tensor) => t.diagonal(1))(b) as Tensor;
    assert.deepEqual(per.toArray(), b.diagonal(1, 1, 2).toArray());
    const g = grad((t: Tensor) => t.diagonal(-1).sum())(a) as Tensor;
    assert.deepEqual(g.toArray(), [
      [0, 0, 0, 0],
      [1, 0, 0, 0],
      [0, 1, 0, 0],
    ]);
  });
});
