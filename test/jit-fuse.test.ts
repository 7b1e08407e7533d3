/**
 * Fusion of elementwise chains under jit: the fused kernels (js, wasm, native: each instruction set, one and
 * two threads) give exactly the bits of the unfused
 * program on the same backend (random programs over every float unary/binary op, broadcast, transposed, sliced
 * and flipped inputs, float32 and float64, empty to large sizes), the pass groups what it should, and jitted
 * functions with fusion equal eager execution while memory planning keeps working.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend, UnaryOp, View } from "../src/backend/backend.ts";
import { fusedByOps, fusedProgram } from "../src/backend/fused.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { setFusedCodegen } from "../src/backend/js/fused.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { Executor } from "../src/core/jit-exec.ts";
import { planFusion } from "../src/core/jit-fuse.ts";
import { jit, randn, type Tensor, tensor } from "../src/index.ts";
import {
  assertSameBits,
  contiguous,
  type Layout,
  makeView,
  nativeBackend,
  nativeConfigs,
  Rng,
  randomProgram,
  wasm,
} from "./fuse-programs.ts";
import { useBackend } from "./backends.ts";

/** The native backend, where its addon loads (a local const, so that closures see it narrowed). */
const native = nativeBackend;

const SHAPES: number[][] = [[0], [1], [7], [3, 5], [1031], [4, 33, 9], [2, 1, 6]];
const LAYOUTS: Layout[] = ["contiguous", "broadcast", "transposed", "sliced", "flipped", "scalar"];

function fusedMatchesOps(b: () => Backend, label: string, large = false): void {
  describe(`${label}: fused equals the unfused program bit for bit`, () => {
    if (large) {
      test("large outputs (split over threads), every layout; matrices with a transposed input", () => {
        // (native iterates over 2-d blocks of a matrix when an input is read transposed)
        const be = b();
        const rng = new Rng(21);
        for (const dtype of ["float32", "float64"] as const) {
          for (const shape of [[70001], [3, 5, 4099], [33, 17], [130, 70], [1, 64, 48], [16, 300]]) {
            for (let trial = 0; trial < 4; trial++) {
              const nIn = rng.int(1, 4);
              const prog = randomProgram(rng, dtype, nIn, rng.int(4, 14));
              const matrix = shape.filter((d) => d > 1).length === 2;
              const inputs = Array.from({ length: nIn }, (_, k) =>
                makeView(
                  rng,
                  dtype,
                  shape,
                  k === 0 ? (matrix ? "transposed" : "contiguous") : rng.choice(LAYOUTS),
                ),
              );
              const n = shape.reduce((x, y) => x * y, 1);
              const T = dtype === "float32" ? Float32Array : Float64Array;
              const got = new T(n);
              const want = new T(n);
              be.fused!(prog, inputs, [got]);
              fusedByOps(be, prog, inputs, [want]);
              assertSameBits(got, want, `${prog.key} on [${shape}]`);
            }
          }
        }
      });
    }

    for (const dtype of ["float32", "float64"] as const) {
      test(`random programs, ${dtype}`, () => {
        const be = b();
        const rng = new Rng(dtype === "float32" ? 11 : 12);
        let cases = 0;
        for (const shape of SHAPES) {
          for (let trial = 0; trial < 14; trial++) {
            const nIn = rng.int(1, 4);
            const prog = randomProgram(rng, dtype, nIn, rng.int(1, 12));
            const inputs = Array.from({ length: nIn }, (_, k) =>
              makeView(rng, dtype, shape, k === 0 && trial % 2 === 0 ? "contiguous" : rng.choice(LAYOUTS)),
            );
            const n = shape.reduce((x, y) => x * y, 1);
            const T = dtype === "float32" ? Float32Array : Float64Array;
            const got = new T(n);
            const want = new T(n);
            be.fused!(prog, inputs, [got]);
            fusedByOps(be, prog, inputs, [want]);
            assertSameBits(got, want, `${prog.key} on [${shape}]`);
            cases++;
          }
        }
        assert.ok(cases >= 90);
      });
    }

    test("float32 transcendental ops read straight from inputs of every layout", () => {
      // the wasm unary kernels approximate exp/log/tanh/sigmoid with SIMD on contiguous rows only: the fused
      // kernel must follow the same split wherever an op reads an input directly
      const be = b();
      const rng = new Rng(5);
      for (const op of ["exp", "log", "tanh", "sigmoid", "neg", "relu", "sign"] as UnaryOp[]) {
        for (const shape of [[7], [5, 6], [5, 8], [3, 9], [1031]]) {
          for (const layout of LAYOUTS) {
            const prog = fusedProgram("float32", [
              { kind: "input", index: 0 },
              { kind: "unary", op, a: 0 },
              { kind: "const", value: 1.5 },
              { kind: "binary", op: "mul", a: 1, b: 2 },
              { kind: "unary", op, a: 3 },
            ]);
            const x = makeView(rng, "float32", shape, layout);
            const n = shape.reduce((p, q) => p * q, 1);
            const got = new Float32Array(n);
            const want = new Float32Array(n);
            be.fused!(prog, [x], [got]);
            fusedByOps(be, prog, [x], [want]);
            assertSameBits(got, want, `${op} on ${layout} [${shape}]`);
          }
        }
      }
    });

    test("several outputs, some written over contiguous inputs (in place)", () => {
      const be = b();
      const rng = new Rng(31);
      for (const dtype of ["float32", "float64"] as const) {
        const T = dtype === "float32" ? Float32Array : Float64Array;
        for (const shape of [[0], [9], [1029], [40, 50], [3, 7, 5]]) {
          for (let trial = 0; trial < 6; trial++) {
            const nIn = rng.int(1, 4);
            const base = randomProgram(rng, dtype, nIn, rng.int(2, 12));
            // 1 to 4 distinct op registers
            const ops = base.instrs.flatMap((ins, r) =>
              ins.kind === "unary" || ins.kind === "binary" ? [r] : [],
            );
            const regs = new Set<number>([base.instrs.length - 1]);
            const want = Math.min(rng.int(1, 5), ops.length);
            while (regs.size < want) regs.add(rng.choice(ops));
            const outputs = [...regs].sort(() => rng.next() - 0.5);
            const prog = fusedProgram(dtype, base.instrs, outputs);
            const n = shape.reduce((x, y) => x * y, 1);
            const inputs = Array.from({ length: nIn }, () =>
              makeView(rng, dtype, shape, rng.choice(LAYOUTS)),
            );
            // a contiguous input j lends its storage to output j, where there are both
            const outs = outputs.map(() => new T(n));
            for (let j = 0; j < Math.min(nIn, outs.length); j++) {
              if (rng.next() < 0.5) {
                inputs[j] = {
                  data: new T(n).map(() => rng.next() * 6 - 3),
                  shape,
                  strides: contiguous(shape),
                  offset: 0,
                };
                outs[j] = inputs[j].data as InstanceType<typeof T>;
              }
            }
            const wants = outs.map(() => new T(n));
            fusedByOps(be, prog, inputs, wants);
            be.fused!(prog, inputs, outs);
            for (let j = 0; j < outs.length; j++) {
              assertSameBits(outs[j], wants[j], `${prog.key} out ${j} on [${shape}]`);
            }
          }
        }
      }
    });

    test("the output may be the storage of a contiguous input (in place)", () => {
      const be = b();
      const rng = new Rng(8);
      const cases = [
        { shape: [1001], other: "broadcast" },
        { shape: [40, 50], other: "transposed" },
      ] as const;
      for (const dtype of ["float32", "float64"] as const) {
        for (const { shape, other } of cases) {
          const prog = randomProgram(rng, dtype, 2, 8);
          const n = shape.reduce((p, q) => p * q, 1);
          const x = makeView(rng, dtype, [...shape], "contiguous");
          const xs: View = { ...x, data: x.data.subarray(2, 2 + n), offset: 0 };
          const y = makeView(rng, dtype, [...shape], other);
          const want = new (dtype === "float32" ? Float32Array : Float64Array)(n);
          fusedByOps(be, prog, [xs, y], [want]);
          be.fused!(prog, [xs, y], [xs.data]);
          assertSameBits(xs.data, want, `in place ${dtype} [${shape}]`);
        }
      }
    });
  });
}

fusedMatchesOps(() => jsBackend, "js");
fusedMatchesOps(wasm, "wasm");

if (native !== undefined) {
  test("native declares the fused kernel", () => assert.equal(typeof native.fused, "function"));
}
// every instruction-set build this CPU runs, with one thread and two (each test selects its configuration)
for (const { label, select } of nativeConfigs()) fusedMatchesOps(select, label, true);

test("js: the interpreter (no code generation) gives the compiled kernel's bits", () => {
  const rng = new Rng(3);
  for (let t = 0; t < 30; t++) {
    const dtype = t % 2 === 0 ? "float32" : "float64";
    const prog = randomProgram(rng, dtype, 2, 10);
    const inputs = [makeView(rng, dtype, [6, 7], "transposed"), makeView(rng, dtype, [6, 7], "broadcast")];
    const T = dtype === "float32" ? Float32Array : Float64Array;
    const compiled = new T(42);
    const interpreted = new T(42);
    jsBackend.fused!(prog, inputs, [compiled]);
    const prev = setFusedCodegen(false);
    try {
      jsBackend.fused!(prog, inputs, [interpreted]);
    } finally {
      setFusedCodegen(prev);
    }
    assertSameBits(interpreted, compiled, prog.key);
  }
});

test("fusedProgram rejects malformed programs, naming the instruction", () => {
  assert.throws(
    () => fusedProgram("float32", [{ kind: "unary", op: "exp", a: 0 }]),
    /instruction 0: operand a = 0 is not an earlier register/,
  );
  assert.throws(
    () =>
      fusedProgram("float32", [
        { kind: "input", index: 0 },
        { kind: "unary", op: "not", a: 0 },
      ]),
    /'not' is not a float elementwise op/,
  );
  assert.throws(() => fusedProgram("float32", [{ kind: "input", index: 1 }]), /inputs must be numbered 0..0/);
  assert.throws(
    () =>
      fusedProgram(
        "float32",
        [
          { kind: "input", index: 0 },
          { kind: "unary", op: "exp", a: 0 },
        ],
        [1, 0],
      ),
    /output 1 = 0 is an input; only op results are written out/,
  );
  assert.throws(
    () =>
      fusedProgram(
        "float32",
        [
          { kind: "input", index: 0 },
          { kind: "unary", op: "exp", a: 0 },
        ],
        [1, 1],
      ),
    /register 1 is written out twice/,
  );
  assert.throws(
    () =>
      fusedProgram(
        "float32",
        [
          { kind: "input", index: 0 },
          { kind: "unary", op: "exp", a: 0 },
        ],
        [],
      ),
    /needs at least one output/,
  );
  assert.throws(
    () => fusedProgram("int32" as "float32", [{ kind: "input", index: 0 }]),
    /float32 or float64/,
  );
});

describe("the fusion pass", () => {
  const groups = (f: (...xs: Tensor[]) => unknown, ...xs: Tensor[]) => {
    const p = jit(f).lower(...xs);
    return { p, gs: planFusion(p) };
  };

  test("a chain of elementwise ops is one group and one executor step", () => {
    const x = randn([10]);
    const { p, gs } = groups((v) => v.mul(1.5).add(0.5).tanh().mul(v).sub(0.25).exp(), x);
    assert.equal(p.eqns.length, 6);
    assert.equal(gs.length, 1);
    assert.deepEqual(gs[0].members, [0, 1, 2, 3, 4, 5]);
    assert.equal(gs[0].inputs.length, 1, "x read once");
    assert.equal(gs[0].program.consts.length, 3);
    assert.equal(new Executor(p, { fuse: true }).stepCount, 1);
    assert.equal(new Executor(p).stepCount, 6);
  });

  test("an intermediate also read after the group is another output of it", () => {
    const x = randn([10]);
    // t = exp(x * 2) is returned too: one group computes t and tanh(t + 1), and hands both on
    const { p, gs } = groups((v) => {
      const t = v.mul(2).exp();
      return [t, t.add(1).tanh()];
    }, x);
    assert.deepEqual(
      gs.map((g) => g.members),
      [[0, 1, 2, 3]],
    );
    assert.deepEqual(gs[0].outputs, [p.eqns[1].outputs[0], p.eqns[3].outputs[0]]);
    assert.deepEqual([...gs[0].program.outputs], [3, 6], "registers of exp and tanh (after x, 2 and 1)");
    assert.equal(new Executor(p, { fuse: true }).stepCount, 1);
    // without multi-output fusion: two groups
    assert.deepEqual(
      planFusion(p, false).map((g) => g.members),
      [
        [0, 1],
        [2, 3],
      ],
    );
  });

  test("an intermediate read by something that runs before the group's end ends the group", () => {
    // t is read by a reduction whose result the rest of the group reads: t cannot wait for the group's end
    const x = randn([10]);
    const r = groups((v) => {
      const t = v.mul(2).exp();
      return t.add(t.sum()).tanh();
    }, x);
    assert.ok(
      r.gs.every((g) => !g.members.includes(2)),
      "sum is not in a group",
    );
    assert.deepEqual(r.gs[0].members, [0, 1]);
    assert.equal(r.gs[0].outputs.length, 1);
  });

  test("Adam's update is one group: new moments and parameters in one pass", () => {
    const [b1, b2] = [0.9, 0.999];
    const upd = (p: Tensor, g: Tensor, m: Tensor, v: Tensor, a: Tensor, c: Tensor) => {
      const m2 = m.mul(b1).add(g.mul(1 - b1));
      const v2 = v.mul(b2).add(g.square().mul(1 - b2));
      return [p.sub(m2.mul(a).div(v2.sqrt().mul(c).add(1e-8))), m2, v2];
    };
    const args = [randn([33]), randn([33]), randn([33]), randn([33]).abs(), tensor(1e-3), tensor(1.2)];
    const { p, gs } = groups(upd, ...args);
    assert.equal(gs.length, 1);
    assert.equal(gs[0].outputs.length, 3);
    assert.equal(
      new Executor(p, { fuse: true }).stepCount,
      p.eqns.filter((e) => e.name === "broadcast").length + 1,
    );
  });

  test("a value read twice inside the group stays in it", () => {
    const { gs } = groups(
      (v) => {
        const t = v.exp();
        return t.mul(t).add(t.mul(2));
      },
      randn([5]),
    );
    assert.equal(gs.length, 1);
    assert.equal(gs[0].members.length, 4);
  });

  test("different shapes do not fuse: a broadcast stands between, its output is an input", () => {
    const a = randn([3]);
    const z = randn([4, 3]);
    const { p, gs } = groups((u, w) => u.exp().mul(w).tanh(), a, z);
    const names = p.eqns.map((e) => e.name);
    assert.deepEqual(names, ["exp", "broadcast", "mul", "tanh"]);
    assert.deepEqual(
      gs.map((g) => g.members),
      [[2, 3]],
      "exp ([3]) stays alone; mul and tanh ([4, 3]) fuse",
    );
    assert.equal(gs[0].inputs[0], p.eqns[1].outputs[0], "the broadcast view is read by the kernel");
  });

  test("only float ops of one dtype: comparisons, casts and int32 arithmetic stay out", () => {
    const x = randn([6]);
    const { gs } = groups((v) => v.mul(2).gt(0.5).to("float32").add(1).exp(), x);
    assert.deepEqual(
      gs.map((g) => g.members.length),
      [2],
      "add, exp after the cast",
    );
    const i = tensor([1, 2, 3], { dtype: "int32" });
    assert.equal(groups((v) => v.add(1).mul(3).neg(), i).gs.length, 0);
  });
});

function jitSuite(label: string, b: () => Backend): void {
  describe(`${label}: jit with fusion equals eager`, () => {
    useBackend(b);
    const chain = (v: Tensor) =>
      v.mul(1.5).add(0.5).tanh().mul(v).sub(0.25).exp().mul(0.1).add(v).sigmoid().mul(2);

    test("the 10-op chain, float32 and float64, several sizes", () => {
      for (const dtype of ["float32", "float64"] as const) {
        for (const shape of [[0], [1], [7], [33, 31], [4099]]) {
          const v = randn(shape, { dtype });
          const jf = jit(chain);
          const want = chain(v).dataSync();
          assertSameBits(jf(v).dataSync(), want, `${dtype} [${shape}]`);
          assertSameBits(jf(v).dataSync(), want, `${dtype} [${shape}], second call`);
        }
      }
    });

    test("broadcast and transposed operands, a training-step-like update", () => {
      const w = randn([16, 8]);
      const g = randn([8, 16]).transpose(0, 1);
      const bias = randn([8]);
      const lr = tensor(0.01);
      const f = (w: Tensor, g: Tensor, bias: Tensor, lr: Tensor) =>
        w
          .sub(g.mul(lr).add(w.mul(1e-4)))
          .add(bias)
          .relu()
          .mul(w.sigmoid());
      const want = f(w, g, bias, lr).dataSync();
      const jf = jit(f);
      assertSameBits(jf(w, g, bias, lr).dataSync(), want, "first call");
      assertSameBits(jf(w, g, bias, lr).dataSync(), want, "second call");
    });

    test("memory planning: after the first call, a call allocates only its output", () => {
      const a = randn([64, 64]);
      const jf = jit((x: Tensor) => x.matmul(x).tanh().add(x).exp().mul(2).sum(0));
      jf(a);
      const after1 = jf.memoryStats().allocations;
      for (let i = 0; i < 4; i++) jf(a);
      assert.equal(jf.memoryStats().allocations - after1, 4);
    });

    test("donated storage is written over in place by a fused step", () => {
      const step = jit((w: Tensor, g: Tensor) => w.sub(g.mul(0.5)).mul(0.9).add(0.1), { donateArgnums: 0 });
      let w = tensor([1, 2, 3, 4, 5]);
      const g = tensor([2, 2, 2, 2, 2]);
      w = step(w, g);
      const storage = w._data;
      w = step(w, g);
      assert.equal(w._data, storage, "the second update reused the donated storage");
      const want = [1, 2, 3, 4, 5].map((x) => {
        let y = x;
        for (let i = 0; i < 2; i++)
          y = Math.fround(Math.fround(Math.fround(y - 1) * Math.fround(0.9)) + Math.fround(0.1));
        return y;
      });
      assertSameBits(w.dataSync(), want, "values");
    });
  });
}

jitSuite("js", () => jsBackend);
jitSuite("wasm", wasm);
if (native !== undefined) jitSuite("native", () => native);

test("switching backends switches executors (fusion follows the backend)", () => {
  const prev = getBackend();
  try {
    const v = randn([257]);
    const f = (x: Tensor) => x.exp().mul(0.5).tanh().add(x);
    const jf = jit(f);
    for (const b of [jsBackend, wasm(), ...(native ? [native] : []), jsBackend]) {
      setBackend(b);
      assertSameBits(jf(v).dataSync(), f(v).dataSync(), b.name);
    }
    assert.equal(jf.traceCount, 1, "one trace, one executor per backend");
  } finally {
    setBackend(prev);
  }
});
