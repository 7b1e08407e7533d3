/**
 * Reduction fusion under jit: a chain of elementwise ops and the sum / max / min it feeds run as one fused
 * kernel (`FusedProgram.reduce`). The kernels (js; native on each instruction set, one and two threads) against
 * the unfused program on the same backend (the elementwise program op by op, then the backend's own `reduce`):
 * bit for bit where the fold has the reduce kernel's order (js always; native when the reduced axes are the
 * innermost ones, or the tensor is 2-d), else within a stated tolerance. The pass puts the reduction in the
 * chain's group, and jitted functions (mean squared error, log-sum-exp, softmax, a bias gradient) equal eager
 * execution on js, wasm (which does not fuse reductions: unfused there) and native.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend, BinaryOp, FusedInstr, FusedReduce, UnaryOp, View } from "../src/backend/backend.ts";
import { fusedByOps, fusedProgram, reducedShape } from "../src/backend/fused.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { setFusedCodegen } from "../src/backend/js/fused.ts";
import { Executor } from "../src/core/jit-exec.ts";
import { planFusion } from "../src/core/jit-fuse.ts";
import { grad, jit, randn, type Tensor } from "../src/index.ts";
import {
  assertSameBits,
  type Layout,
  makeView,
  nativeBackend,
  nativeConfigs,
  Rng,
  randomProgram,
  size,
  wasm,
} from "./fuse-programs.ts";
import { useBackend } from "./backends.ts";

/** The native backend, where its addon loads (a local const, so that closures see it narrowed). */
const native = nativeBackend;

const UNARY: UnaryOp[] = ["neg", "abs", "exp", "tanh", "sigmoid", "sin", "relu", "sqrt", "log1p"];
const BINARY: BinaryOp[] = ["add", "sub", "mul", "div", "maximum", "minimum"];

/** An elementwise program over `nIn` inputs (randomProgram's, on the ops above) whose last register is reduced; maybe more outputs. */
function randomReducing(
  rng: Rng,
  dtype: "float32" | "float64",
  nIn: number,
  nOps: number,
  red: Omit<FusedReduce, "reg">,
) {
  const { instrs } = randomProgram(rng, dtype, nIn, nOps, { unary: UNARY, binary: BINARY });
  const last = instrs.length - 1;
  const ops = instrs.flatMap((ins, r) =>
    (ins.kind === "unary" || ins.kind === "binary") && r !== last ? [r] : [],
  );
  const outputs = ops.length > 0 && rng.next() < 0.4 ? [rng.choice(ops)] : [];
  return fusedProgram(dtype, instrs, outputs, { ...red, reg: last });
}

/**
 * Equal up to the reassociation of a sum: |got - want| <= tol * (sum of |terms|), with the sum of |terms| over
 * the reduced elements (`mags`); non-finite results must be equal.
 */
function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  mags: ArrayLike<number>,
  tol: number,
  what: string,
) {
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    if (!Number.isFinite(b) || !Number.isFinite(a)) {
      if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))))
        assert.fail(`${what}: element ${i}: got ${a}, expected ${b}`);
      continue;
    }
    assert.ok(
      Math.abs(a - b) <= tol * mags[i] + 1e-300,
      `${what}: element ${i}: got ${a}, expected ${b} (tolerance ${tol * mags[i]})`,
    );
  }
}

/** True if the reduced axes are the innermost ones, size-1 axes aside (the fold then has the kernel's order). */
function innerAxes(shape: readonly number[], axes: readonly number[]): boolean {
  let lastKept = -1;
  let firstRed = shape.length;
  shape.forEach((d, i) => {
    if (d === 1) return;
    if (axes.includes(i)) firstRed = Math.min(firstRed, i);
    else lastKept = i;
  });
  return lastKept < firstRed;
}

const CASES: { shape: number[]; axes: number[] }[] = [
  { shape: [0], axes: [0] },
  { shape: [7], axes: [0] },
  { shape: [31], axes: [0] },
  { shape: [1031], axes: [0] },
  { shape: [70001], axes: [0] },
  { shape: [5, 33], axes: [1] },
  { shape: [5, 33], axes: [0] },
  { shape: [64, 10], axes: [1] },
  { shape: [64, 10], axes: [0] },
  { shape: [300, 40], axes: [0, 1] },
  { shape: [3, 0, 4], axes: [1] },
  { shape: [4, 9, 40], axes: [0, 2] },
  { shape: [4, 9, 6], axes: [1] },
  { shape: [2, 3, 70], axes: [1, 2] },
  { shape: [6, 1, 5], axes: [0, 1] },
  { shape: [7, 5], axes: [] },
  { shape: [3, 1000], axes: [1] },
];

/** The reducing kernels of `b` against its unfused program; `exact(shape, axes)`: bit for bit expected. */
function reduceMatchesOps(
  b: () => Backend,
  label: string,
  exact: (shape: number[], axes: number[], op: string) => boolean,
) {
  describe(`${label}: reducing fused programs equal the unfused program`, () => {
    for (const dtype of ["float32", "float64"] as const) {
      test(`random programs, sum / max / min, ${dtype}`, () => {
        const be = b();
        const rng = new Rng(dtype === "float32" ? 41 : 42);
        const T = dtype === "float32" ? Float32Array : Float64Array;
        for (const { shape, axes } of CASES) {
          for (const op of ["sum", "max", "min"] as const) {
            if (op !== "sum" && axes.some((a) => shape[a] === 0)) continue; // (max of nothing: an error earlier)
            for (let trial = 0; trial < 3; trial++) {
              const nIn = rng.int(1, 4);
              const prog = randomReducing(rng, dtype, nIn, rng.int(1, 8), { op, axes });
              const layouts: Layout[] = ["contiguous", "broadcast", "transposed", "scalar"];
              const inputs = Array.from({ length: nIn }, (_, k) =>
                makeView(rng, dtype, shape, k === 0 ? "contiguous" : rng.choice(layouts)),
              );
              const n = size(shape);
              const k = size(reducedShape(shape, axes));
              const mk = () => [...Array.from(prog.outputs, () => new T(n)), new T(k)];
              const got = mk();
              const want = mk();
              be.fused!(prog, inputs, got);
              fusedByOps(be, prog, inputs, want);
              const what = `${prog.key} on [${shape}]`;
              for (let j = 0; j < got.length - 1; j++) assertSameBits(got[j], want[j], `${what} out ${j}`);
              if (exact(shape, axes, op)) {
                assertSameBits(got[got.length - 1], want[want.length - 1], what);
              } else {
                // the sum of |register| per output bounds the reassociation error
                const abs = fusedProgram(
                  dtype,
                  [...prog.instrs, { kind: "unary", op: "abs", a: prog.reduce!.reg }],
                  [],
                  {
                    op: "sum",
                    axes,
                    reg: prog.instrs.length,
                  },
                );
                const mags = new Float64Array(k);
                const m32 = new T(k);
                fusedByOps(jsBackend, abs, inputs, [m32]);
                mags.set(m32);
                assertClose(
                  got[got.length - 1],
                  want[want.length - 1],
                  mags,
                  dtype === "float32" ? 2e-7 : Math.max(1, n / Math.max(k, 1)) * 2.3e-16,
                  what,
                );
              }
            }
          }
        }
      });
    }
  });
}

reduceMatchesOps(
  () => jsBackend,
  "js",
  () => true,
);

test("js: the interpreter (no code generation) reduces with the compiled kernel's bits", () => {
  const rng = new Rng(7);
  const prev = setFusedCodegen(true);
  try {
    for (const { shape, axes } of CASES.filter((c) => size(c.shape) > 0)) {
      const prog = randomReducing(rng, "float32", 2, 6, { op: "sum", axes });
      const inputs = [
        makeView(rng, "float32", shape, "contiguous"),
        makeView(rng, "float32", shape, "transposed"),
      ];
      const k = size(reducedShape(shape, axes));
      const outs = () => [
        ...Array.from(prog.outputs, () => new Float32Array(size(shape))),
        new Float32Array(k),
      ];
      const a = outs();
      const c = outs();
      setFusedCodegen(true);
      jsBackend.fused!(prog, inputs, a);
      setFusedCodegen(false);
      jsBackend.fused!(prog, inputs, c);
      for (let j = 0; j < a.length; j++) assertSameBits(c[j], a[j], `${prog.key} [${shape}] out ${j}`);
    }
  } finally {
    setFusedCodegen(prev);
  }
});

test("fusedProgram checks the reduction terminal", () => {
  const body: FusedInstr[] = [
    { kind: "input", index: 0 },
    { kind: "unary", op: "exp", a: 0 },
  ];
  assert.throws(
    () => fusedProgram("float32", body, [], { op: "prod" as "sum", reg: 1, axes: [0] }),
    /sum, max or min/,
  );
  assert.throws(() => fusedProgram("float32", body, [], { op: "sum", reg: 0, axes: [0] }), /only op results/);
  assert.throws(() => fusedProgram("float32", body, [], { op: "sum", reg: 1, axes: [1, 0] }), /sorted/);
  assert.throws(() => fusedProgram("float32", body, []), /at least one output/);
  const p = fusedProgram("float32", body, [], { op: "sum", reg: 1, axes: [0] });
  assert.notEqual(p.key, fusedProgram("float32", body, [1], { op: "sum", reg: 1, axes: [0] }).key);
  assert.notEqual(p.key, fusedProgram("float32", body, [], { op: "max", reg: 1, axes: [0] }).key);
  assert.throws(
    () => jsBackend.fused!(p, [makeView(new Rng(1), "float32", [3], "contiguous")], []),
    /writes 1 outputs/,
  );
});

if (native !== undefined) {
  test("native fuses reductions", () => assert.equal(native.fusedReduce, true));
}
for (const { label, select } of nativeConfigs()) {
  // exact where the fold has reduce.cc's association: innermost axes, 2-d tensors, max / min
  const exact = (shape: number[], axes: number[], op: string) =>
    op !== "sum" || innerAxes(shape, axes) || shape.filter((d) => d > 1).length <= 2;
  reduceMatchesOps(select, label, exact);
}

describe("the fusion pass with reductions", () => {
  const plan = (f: (...xs: Tensor[]) => unknown, ...xs: Tensor[]) => {
    const p = jit(f).lower(...xs);
    return { p, gs: planFusion(p, { reduce: true }) };
  };

  test("((x - y) ** 2).mean(): the difference, the square and the sum are one kernel", () => {
    const { p, gs } = plan((x, y) => x.sub(y).square().mean(), randn([8, 5]), randn([8, 5]));
    const sum = p.eqns.findIndex((e) => e.name === "sum");
    assert.equal(gs.length, 1);
    assert.ok(gs[0].members.includes(sum), "the reduction is inside the group");
    assert.equal(gs[0].members.length, 3);
    assert.equal(gs[0].program.reduce?.op, "sum");
    assert.deepEqual(gs[0].program.reduce?.axes, [0, 1]);
    assert.equal(gs[0].program.outputs.length, 0, "the squared difference is never stored");
    assert.equal(gs[0].outputs[0], p.eqns[sum].outputs[0]);
    // sub, mul and sum: one step; the division by the count another
    assert.equal(new Executor(p, { fuse: true, fuseReduce: true }).stepCount, 2);
    assert.equal(new Executor(p, { fuse: true }).stepCount, 3);
  });

  test("softmax written out: exp feeds the sum and is also handed on to the division", () => {
    const sm = (x: Tensor) => {
      const e = x.sub(x.max(1, true)).exp();
      return e.div(e.sum(1, true));
    };
    const { p, gs } = plan(sm, randn([4, 9]));
    const sumAt = p.eqns.findIndex((e) => e.name === "sum");
    const expAt = p.eqns.findIndex((e) => e.name === "exp");
    const g = gs.find((x) => x.members.includes(sumAt))!;
    assert.ok(g.members.includes(expAt));
    assert.equal(g.outputs[0], p.eqns[expAt].outputs[0], "exp stored for the division");
    assert.equal(g.program.outputs.length, 1);
  });

  test("without the option (backends without fusedReduce) reductions stay out", () => {
    const p = jit((x: Tensor) => x.exp().sum()).lower(randn([5]));
    assert.deepEqual(planFusion(p), []);
    assert.equal(planFusion(p, { reduce: true }).length, 1);
  });

  test("a reduction of an input alone is not a group", () => {
    const p = jit((x: Tensor) => x.sum(0)).lower(randn([5, 3]));
    assert.deepEqual(planFusion(p, { reduce: true }), []);
  });
});

function jitSuite(label: string, b: () => Backend): void {
  describe(`${label}: jit with reduction fusion equals eager`, () => {
    useBackend(b);
    const fns: [string, (...xs: Tensor[]) => Tensor, number[][]][] = [
      [
        "mse",
        (x, y) => x.sub(y).square().mean(),
        [
          [64, 10],
          [64, 10],
        ],
      ],
      ["logsumexp rows", (x) => x.sub(x.max(1, true)).exp().sum(1).log().add(x.max(1)), [[32, 10]]],
      [
        "softmax",
        (x) => {
          const e = x.sub(x.max(1, true)).exp();
          return e.div(e.sum(1, true));
        },
        [[16, 33]],
      ],
      [
        "bias-gradient-like column sums",
        (x, y) => x.mul(y).relu().sum(0),
        [
          [128, 48],
          [128, 48],
        ],
      ],
      ["max and min of a chain", (x) => x.tanh().mul(3).max(0).add(x.exp().min(1).sum()), [[12, 40]]],
      ["axes 0 and 2", (x) => x.sin().mul(x).sum([0, 2]), [[4, 9, 40]]],
      ["big full sum", (x) => x.mul(x).add(1).sqrt().sum(), [[70001]]],
    ];
    for (const [name, f, shapes] of fns) {
      test(`${name}: float32 and float64, twice`, () => {
        for (const dtype of ["float32", "float64"] as const) {
          const xs = shapes.map((s) => randn(s, { dtype }));
          const want = f(...xs);
          const jf = jit(f);
          for (let i = 0; i < 2; i++) {
            const got = jf(...xs);
            assert.deepEqual(got.shape, want.shape);
            const g = got.dataSync();
            const w = want.dataSync();
            // the fused fold sums in the unfused kernel's order except between kept axes (see the module doc)
            const mags = f(...xs.map((x) => x.abs()))
              .abs()
              .add(1)
              .dataSync();
            assertClose(g, w, mags, dtype === "float32" ? 4e-7 : 1e-14, `${name} ${dtype}`);
          }
        }
      });
    }

    test("bit for bit where the order is the kernel's: mse, row sums, column sums", () => {
      const x = randn([64, 33]);
      const y = randn([64, 33]);
      for (const f of [
        (a: Tensor, c: Tensor) => a.sub(c).square().mean(),
        (a: Tensor, c: Tensor) => a.mul(c).exp().sum(1),
        (a: Tensor, c: Tensor) => a.mul(c).relu().sum(0),
      ]) {
        assertSameBits(jit(f)(x, y).dataSync(), f(x, y).dataSync(), String(f));
      }
    });

    test("grad of a jitted loss with a fused reduction equals grad of the eager loss", () => {
      const loss = (w: Tensor, x: Tensor, t: Tensor) => x.matmul(w).tanh().sub(t).square().mean();
      const w = randn([7, 5], { dtype: "float64" });
      const x = randn([11, 7], { dtype: "float64" });
      const t = randn([11, 5], { dtype: "float64" });
      const g1 = jit(grad(loss))(w, x, t).dataSync();
      const g2 = grad(loss)(w, x, t).dataSync();
      assertClose(g1, g2, new Float64Array(g2.length).fill(1), 1e-14, "jit(grad)");
      const g3 = grad(jit(loss))(w, x, t).dataSync();
      assertClose(g3, g2, new Float64Array(g2.length).fill(1), 1e-14, "grad(jit)");
    });
  });
}

jitSuite("js", () => jsBackend);
jitSuite("wasm", wasm);
if (native !== undefined) jitSuite("native", () => native);

test("native: a malformed reducing program is rejected, naming the problem, before anything is written", {
  skip: native === undefined,
}, () => {
  const body: FusedInstr[] = [
    { kind: "input", index: 0 },
    { kind: "unary", op: "exp", a: 0 },
  ];
  const good = fusedProgram("float32", body, [], { op: "sum", reg: 1, axes: [1] });
  const x: View = { data: new Float32Array(12).fill(1), shape: [3, 4], strides: [4, 1], offset: 0 };
  const out = new Float32Array(3).fill(7);
  // the structured program checked, a corrupted copy sent: the kernel's own checks answer
  const bad = (reduce: FusedReduce) => ({ ...good, reduce });
  assert.throws(
    () => native!.fused!(bad({ op: "sum", reg: 5, axes: [1] }), [x], [out]),
    /reduction reads register 5/,
  );
  assert.throws(
    () => native!.fused!(bad({ op: "sum", reg: 1, axes: [2] }), [x], [out]),
    /reduce axes \[2\] out of range/,
  );
  assert.deepEqual([...out], [7, 7, 7], "nothing written");
  native!.fused!(good, [x], [out]);
  assert.deepEqual(
    [...out],
    [4 * Math.fround(Math.E), 4 * Math.fround(Math.E), 4 * Math.fround(Math.E)].map(Math.fround),
  );
});
