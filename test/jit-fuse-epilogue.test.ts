/**
 * GEMM epilogue fusion under jit: a float matrix product and the elementwise chain reading it (bias add,
 * activation, scale, residual add) run as one `Backend.dotFused` call, which native implements inside its GEMM
 * (each block of the product finished by the chain as the GEMM completes it). The kernel against `dot` followed
 * by `fused` on the same backend, bit for bit, on every instruction set with one and two threads and through
 * every path of the product (tiny, matrix-vector, packed GEMM with several blocks, batches, transposed and
 * broadcast operands); the pass puts the dot into the chain's group; jitted layers equal eager execution, and
 * gradients through jitted functions stay right. Backends without `dotFused` (js, wasm) keep the product
 * unfused.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend, FusedInstr, View } from "../src/backend/backend.ts";
import { dotFusedByOps, fusedProgram } from "../src/backend/fused.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { Executor } from "../src/core/jit-exec.ts";
import { planFusion, setEpilogueOutputs } from "../src/core/jit-fuse.ts";
import { splitBiasRelu } from "../src/core/jit-rewrite.ts";
import { grad, jit, randn, type Tensor, tensor } from "../src/index.ts";
import { functionalCall, Linear, ReLU, Sequential, Tanh } from "../src/nn/index.ts";
import { assertSameBits, contiguous, nativeBackend, nativeConfigs, size, wasm } from "./fuse-programs.ts";
import { useBackend } from "./backends.ts";
import { prng } from "./prng.ts";

/** The native backend, where its addon loads (a local const, so that closures see it narrowed). */
const native = nativeBackend;

type Dt = "float32" | "float64";

/** Random data of `shape`, read contiguously, transposed (last two axes) or as a row broadcast down. */
function view(rnd: () => number, dtype: Dt, shape: number[], layout: "c" | "t" | "bias"): View {
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const fill = (n: number) => {
    const d = new T(n);
    for (let i = 0; i < n; i++) d[i] = rnd() * 2 - 1;
    return d;
  };
  const nd = shape.length;
  if (layout === "bias") {
    const last = shape[nd - 1];
    return { data: fill(last), shape, strides: [...shape.slice(0, -1).map(() => 0), 1], offset: 0 };
  }
  if (layout === "t") {
    const sh = [...shape.slice(0, -2), shape[nd - 1], shape[nd - 2]];
    const st = contiguous(sh);
    return {
      data: fill(size(shape)),
      shape,
      strides: [...st.slice(0, -2), st[nd - 1], st[nd - 2]],
      offset: 0,
    };
  }
  return { data: fill(size(shape) + 1), shape, strides: contiguous(shape), offset: 1 };
}

/** act(product * s + bias) (+ residual): input 0 the product, 1 the bias, 2 the residual. */
function epilogueProgram(
  dtype: Dt,
  act: "relu" | "tanh" | "sigmoid",
  residual: boolean,
  outputs: "one" | "two",
) {
  const instrs: FusedInstr[] = [
    { kind: "input", index: 0 },
    { kind: "input", index: 1 },
    { kind: "const", value: 0.75 },
    { kind: "binary", op: "mul", a: 0, b: 2 },
    { kind: "binary", op: "add", a: 3, b: 1 },
    { kind: "unary", op: act, a: 4 },
  ];
  if (residual) {
    instrs.push({ kind: "input", index: 2 });
    instrs.push({ kind: "binary", op: "add", a: 5, b: 6 });
  }
  const last = instrs.length - 1;
  return fusedProgram(dtype, instrs, outputs === "one" ? [last] : [4, last]);
}

/** [M, K] @ [K, N] shapes (and batches) through every path of native's dot. */
const SHAPES: { a: number[]; b: number[] }[] = [
  { a: [3, 4], b: [4, 5] }, // tiny
  { a: [1, 300], b: [300, 70] }, // matrix-vector (M = 1)
  { a: [90, 200], b: [200, 1] }, // matrix-vector (N = 1)
  { a: [128, 784], b: [784, 100] }, // packed GEMM, several row blocks
  { a: [37, 50], b: [50, 1000] }, // packed GEMM, two column blocks (NC)
  { a: [4, 20, 30], b: [4, 30, 25] }, // a batch (one matrix per thread)
  { a: [2, 150, 64], b: [2, 64, 150] }, // a batch of larger products
];

function dotFusedMatches(b: () => Backend, label: string): void {
  test(`${label}: dotFused equals dot then fused, bit for bit`, () => {
    const be = b();
    const rnd = prng(17);
    for (const dtype of ["float32", "float64"] as const) {
      for (const { a: as, b: bs } of SHAPES) {
        const nd = as.length;
        const shape = [...as.slice(0, -1), bs[nd - 1]];
        const n = size(shape);
        for (const [act, residual, outputs, ta] of [
          ["relu", false, "one", "c"],
          ["tanh", true, "one", "t"],
          ["sigmoid", true, "two", "c"],
        ] as const) {
          const prog = epilogueProgram(dtype, act, residual, outputs);
          const x = view(rnd, dtype, as, ta);
          const y = view(rnd, dtype, bs, ta === "t" ? "c" : "t");
          const inputs = [view(rnd, dtype, shape, "bias")];
          if (residual) inputs.push(view(rnd, dtype, shape, nd === 2 && ta === "t" ? "t" : "c"));
          const T = dtype === "float32" ? Float32Array : Float64Array;
          const got = Array.from(prog.outputs, () => new T(n));
          const want = Array.from(prog.outputs, () => new T(n));
          be.dotFused!(prog, x, y, inputs, got);
          dotFusedByOps(be, prog, x, y, inputs, want);
          for (let j = 0; j < got.length; j++)
            assertSameBits(got[j], want[j], `${dtype} ${act} [${as}] @ [${bs}] out ${j}`);
        }
      }
    }
  });
}

if (native !== undefined) {
  test("native declares the GEMM epilogue kernel", () => assert.equal(typeof native.dotFused, "function"));
}
for (const { label, select } of nativeConfigs()) dotFusedMatches(select, label);

test("js and wasm have no GEMM epilogue kernel (the product stays a step of its own)", () => {
  const r = loadWasmBackend();
  assert.equal(jsBackend.dotFused, undefined);
  if ("backend" in r) assert.equal(r.backend.dotFused, undefined);
});

describe("the fusion pass with GEMM epilogues", () => {
  const layer = (x: Tensor, w: Tensor, b: Tensor) => x.matmul(w.mT).add(b).relu();

  test("a linear layer with bias and ReLU: the dot, the add and the relu are one kernel", () => {
    const p = jit(layer).lower(randn([16, 8]), randn([4, 8]), randn([4]));
    const gs = planFusion(p, { epilogue: true });
    const dot = p.eqns.findIndex((e) => e.name === "dot");
    assert.equal(gs.length, 1);
    assert.ok(gs[0].members.includes(dot), "the dot is in the group");
    assert.equal(gs[0].dot, p.eqns[dot]);
    assert.equal(gs[0].inputs[0], p.eqns[dot].outputs[0], "the product is input 0");
    // steps: the broadcast of the bias, the fused dot + add + relu (the transpose of w is a view step)
    const fusedSteps = new Executor(p, { fuse: true, fuseEpilogue: true }).stepCount;
    assert.equal(fusedSteps, new Executor(p, { fuse: true }).stepCount - 1);
    const plain = planFusion(p);
    assert.deepEqual(
      plain.map((g) => g.members.length),
      [2],
      "without the option: add and relu fused, the dot apart",
    );
    assert.equal(plain[0].dot, undefined);
  });

  test("a residual block: relu(x W^T + b) + x", () => {
    const f = (x: Tensor, w: Tensor, b: Tensor) => x.matmul(w.mT).add(b).relu().add(x);
    const p = jit(f).lower(randn([16, 8]), randn([8, 8]), randn([8]));
    const gs = planFusion(p, { epilogue: true });
    assert.equal(gs.length, 1);
    assert.equal(gs[0].members.length, 4, "dot, add, relu, add");
  });

  test("a Linear + ReLU layer's biasAct becomes add and relu, the product's epilogue", () => {
    const model = new Sequential(new Linear(8, 4), new ReLU());
    const f = (x: Tensor, w: Tensor, b: Tensor) =>
      functionalCall(model, { "0.weight": w, "0.bias": b }, x) as Tensor;
    const p = jit(f).executed(randn([16, 8]), randn([4, 8]), randn([4]));
    assert.ok(
      p.eqns.some((e) => e.name === "biasAct"),
      "the layer traces to biasAct",
    );
    const q = splitBiasRelu(p);
    assert.deepEqual(
      q.eqns.filter((e) => ["biasAct", "add", "relu"].includes(e.name)).map((e) => e.name),
      ["add", "relu"],
    );
    const gs = planFusion(q, { epilogue: true });
    assert.equal(gs.length, 1);
    assert.equal(gs[0].dot?.name, "dot");
    assert.equal(gs[0].members.length, 3, "dot, add, relu");
    // tanh keeps its biasAct; a product read elsewhere too keeps it (no epilogue to gain)
    const t = new Sequential(new Linear(8, 4), new Tanh());
    const g = (x: Tensor, w: Tensor, b: Tensor) =>
      functionalCall(t, { "0.weight": w, "0.bias": b }, x) as Tensor;
    const pt = jit(g).executed(randn([16, 8]), randn([4, 8]), randn([4]));
    assert.equal(splitBiasRelu(pt), pt);
  });

  test("a product read elsewhere too is not an epilogue's", () => {
    const f = (x: Tensor, w: Tensor) => {
      const y = x.matmul(w);
      return [y.tanh().mul(2), y];
    };
    const p = jit(f).lower(randn([6, 5]), randn([5, 4]));
    assert.ok(planFusion(p, { epilogue: true }).every((g) => g.dot === undefined));
  });
});

function jitSuite(label: string, b: () => Backend): void {
  describe(`${label}: jit with GEMM epilogues equals eager`, () => {
    useBackend(b);
    const fns: [string, (...xs: Tensor[]) => Tensor, number[][]][] = [
      ["linear + relu", (x, w, c) => x.matmul(w.mT).add(c).relu(), [[64, 100], [48, 100], [48]]],
      [
        "linear + tanh, scaled",
        (x, w, c) => x.matmul(w).add(c).tanh().mul(0.5),
        [[33, 70], [70, 300], [300]],
      ],
      ["residual", (x, w, c) => x.matmul(w).add(c).sigmoid().add(x), [[40, 64], [64, 64], [64]]],
      [
        "batched",
        (x, w) => x.matmul(w).relu(),
        [
          [3, 20, 30],
          [3, 30, 10],
        ],
      ],
      [
        "vector",
        (x, w) => x.matmul(w).exp(),
        [
          [1, 50],
          [50, 20],
        ],
      ],
      [
        "one element",
        (x, w) => x.matmul(w.mT).add(w),
        [
          [1, 1],
          [1, 1],
        ],
      ],
    ];
    for (const [name, f, shapes] of fns) {
      test(`${name}: bit for bit, float32 and float64, twice`, () => {
        for (const dtype of ["float32", "float64"] as const) {
          const xs = shapes.map((s) => randn(s, { dtype }));
          const want = f(...xs).dataSync();
          const jf = jit(f);
          assertSameBits(jf(...xs).dataSync(), want, `${name} ${dtype}`);
          assertSameBits(jf(...xs).dataSync(), want, `${name} ${dtype}, second call`);
        }
      });
    }

    test("Linear + ReLU layers (biasAct, split into the product's epilogue) equal eager bit for bit", () => {
      for (const dtype of ["float32", "float64"] as const) {
        const model = new Sequential(new Linear(70, 300), new ReLU(), new Linear(300, 33), new ReLU());
        if (dtype === "float64") model.to("float64");
        const ps = Object.fromEntries(model.namedParameters().map(([n, t]) => [n, t.detach()]));
        const f = (x: Tensor, p: Record<string, Tensor>) => functionalCall(model, p, x) as Tensor;
        const x = randn([45, 70], { dtype });
        // a NaN and an infinity in the input: relu keeps NaN, as biasAct does
        const xd = x.dataSync().slice();
        xd[3] = Number.NaN;
        xd[80] = Number.POSITIVE_INFINITY;
        const x2 = tensor(xd, { shape: [45, 70], dtype });
        const want = f(x2, ps).dataSync();
        const jf = jit(f);
        assertSameBits(jf(x2, ps).dataSync(), want, `${dtype}`);
        assertSameBits(jf(x2, ps).dataSync(), want, `${dtype}, second call`);
      }
    });

    test("an optimizer update as a multi-output epilogue, moments donated, equals eager bit for bit", () => {
      // Adam on a weight gradient g = dy^T x: with epilogues of several outputs the update runs on the GEMM's
      // blocks, its later outputs in the donated moments' storage; dy and x (the GEMM's operands, square here so
      // that they could fit an output) are donated and die at that step too, and must not be written
      const adam = (p: Tensor, m: Tensor, v: Tensor, dy: Tensor, x: Tensor) => {
        const g = dy.mT.matmul(x);
        const m2 = m.mul(0.9).add(g.mul(0.1));
        const v2 = v.mul(0.999).add(g.square().mul(0.001));
        return [p.sub(m2.mul(1e-3).div(v2.sqrt().add(1e-8))), m2, v2];
      };
      const prev = setEpilogueOutputs(8);
      try {
        for (const dtype of ["float32", "float64"] as const) {
          for (const n of [5, 40, 200]) {
            type Args = [Tensor, Tensor, Tensor, Tensor, Tensor];
            const xs = [0, 1, 2, 3, 4].map(() => randn([n, n], { dtype })) as Args;
            const copies = () => xs.map((t) => t.clone()) as Args;
            const want = adam(...xs).map((t) => t.dataSync());
            const step = jit(adam, { donateArgnums: [0, 1, 2, 3, 4] });
            const groups = planFusion(step.executed(...copies()), { epilogue: true });
            assert.ok(
              groups.some((g) => g.dot !== undefined && g.outputs.length === 3) || !("dotFused" in b()),
              "the update is the product's epilogue",
            );
            for (let call = 0; call < 2; call++) {
              const args = copies();
              const buffers = args.map((t) => t._data);
              const got = step(...args);
              for (let j = 0; j < 3; j++)
                assertSameBits(got[j].dataSync(), want[j], `${dtype} n=${n} output ${j}`);
              if (b().dotFused !== undefined && call === 1) {
                const reused = got.slice(1).filter((t) => buffers.slice(0, 3).includes(t._data)).length;
                assert.ok(reused >= 1, `${dtype} n=${n}: a later output takes a donated moment's storage`);
              }
            }
          }
        }
      } finally {
        setEpilogueOutputs(prev);
      }
    });

    test("a two-layer MLP's loss gradient through jit equals the eager gradient", () => {
      const loss = (w1: Tensor, w2: Tensor, x: Tensor) =>
        x.matmul(w1).add(0.1).relu().matmul(w2).tanh().square().mean();
      const xs = [randn([9, 6], { dtype: "float64" }), randn([6, 4], { dtype: "float64" })];
      const x = randn([13, 9], { dtype: "float64" });
      const g = grad(loss, { argnums: [0, 1] });
      const want = (g(xs[0], xs[1], x) as Tensor[]).map((t) => t.dataSync());
      const got = (jit(g)(xs[0], xs[1], x) as Tensor[]).map((t) => t.dataSync());
      for (let i = 0; i < 2; i++) {
        for (let k = 0; k < want[i].length; k++)
          assert.ok(Math.abs(got[i][k] - want[i][k]) <= 1e-14, `${i} ${k}`);
      }
    });
  });
}

jitSuite("js", () => jsBackend);
jitSuite("wasm", wasm);
if (native !== undefined) jitSuite("native", () => native);

test("native dotFused rejects inputs of another shape or dtype, naming the problem", {
  skip: native === undefined,
}, () => {
  const prog = fusedProgram("float32", [
    { kind: "input", index: 0 },
    { kind: "input", index: 1 },
    { kind: "binary", op: "add", a: 0, b: 1 },
  ]);
  const a: View = { data: new Float32Array(6).fill(1), shape: [2, 3], strides: [3, 1], offset: 0 };
  const b: View = { data: new Float32Array(12).fill(1), shape: [3, 4], strides: [4, 1], offset: 0 };
  const out = new Float32Array(8);
  const wrongShape: View = { data: new Float32Array(6), shape: [2, 3], strides: [3, 1], offset: 0 };
  assert.throws(
    () => native!.dotFused!(prog, a, b, [wrongShape], [out]),
    /input 1's shape is not the output's/,
  );
  const wrongType: View = { data: new Float64Array(8), shape: [2, 4], strides: [4, 1], offset: 0 };
  assert.throws(() => native!.dotFused!(prog, a, b, [wrongType], [out]), /dtype/);
  const bias: View = { data: Float32Array.from([1, 2, 3, 4]), shape: [2, 4], strides: [0, 1], offset: 0 };
  native!.dotFused!(prog, a, b, [bias], [out]);
  assert.deepEqual([...out], [4, 5, 6, 7, 4, 5, 6, 7]);
});
