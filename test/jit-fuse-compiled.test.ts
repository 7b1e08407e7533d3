/**
 * Native fused programs of the compiled shapes (kernels/fused.cc "Compiled programs": Adam as jit traces it,
 * Adam with the usual sqrt(v) + eps, the library's functional Adam and AdamW, SGD with momentum), which run as one generated loop instead of the tile
 * interpreter: every instruction set, one and two threads, float32 and float64, sizes around every vector width
 * (the scalar tails), special values, the step's scalars as consts or as broadcast inputs, outputs in any order,
 * fresh or in place of their inputs (jit's donated parameters and moments), give exactly the bits of the same
 * program run op by op on the same backend; near misses (operands swapped, a transposed gradient, an extra
 * output, an output overlapping an input elsewhere) run on the interpreter with the same bits; a jitted Adam step
 * equals its eager ops, and a jitted functional Adam / AdamW its op-by-op update. The one difference: the Adam patterns flush subnormal values to zero, as the eager fused
 * Adam does (momentum keeps them), and leave the caller's floating-point mode as it was.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Backend, FusedProgram, View } from "../src/backend/backend.ts";
import { fusedByOps } from "../src/backend/fused.ts";
import { jit, tensor } from "../src/index.ts";
import { onBackend } from "./backends.ts";
import {
  adamUpdateOps,
  assertSameBits,
  checkFunctionalAdamFlush,
  nativeBackend,
  nativeConfigs,
  type OptimizerVariant as Variant,
  optimizerProgram as program,
  Rng,
  type TensorDict,
} from "./fuse-programs.ts";

type F = "float32" | "float64";
type Arr = Float32Array | Float64Array;

const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 1e30, -1e-30, 1, -1];

function values(rng: Rng, dtype: F, n: number, positive: boolean): Arr {
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const d = new T(n);
  for (let i = 0; i < n; i++) {
    const u = rng.next();
    d[i] = u < 0.08 ? rng.choice(SPECIAL) : positive ? rng.next() * 2 : rng.next() * 6 - 3;
  }
  return d;
}

const flat = (data: Arr, shape: number[]): View => ({
  data,
  shape,
  strides: shape.map((_, d) => shape.slice(d + 1).reduce((x, y) => x * y, 1)),
  offset: 0,
});

interface Case {
  inputs: View[];
  /** the output buffers: fresh, or the storage of the inputs they replace */
  outs: Arr[];
  /** the op-by-op result, computed on copies */
  want: Arr[];
}

/**
 * The inputs of `names` (shape `shape`; the step's scalars broadcast from one element) and the op-by-op result.
 * `inPlace`: output j is written into the storage of the input it updates (m' into m, v' into v, p' into p);
 * `transposedG`: g is a transposed view of a [c, r] array.
 */
function makeCase(
  be: Backend,
  rng: Rng,
  dtype: F,
  prog: FusedProgram,
  names: string[],
  shape: number[],
  inPlace: boolean,
  transposedG = false,
): Case {
  const n = shape.reduce((x, y) => x * y, 1);
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const inputs = names.map((name): View => {
    if (name === "a" || name === "c") {
      return {
        data: T.of(name === "a" ? 0.0123 : 1.7),
        shape,
        strides: shape.map(() => 0),
        offset: 0,
      };
    }
    const data = values(rng, dtype, n, name === "v");
    if (name === "g" && transposedG && shape.length === 2) {
      return { data, shape, strides: [1, shape[0]], offset: 0 };
    }
    return flat(data, shape);
  });
  // the op-by-op result on copies of the inputs (the inputs then stay as they were)
  const copies = inputs.map((v) => ({ ...v, data: v.data.slice() as Arr }));
  const want = Array.from(prog.outputs, () => new T(n));
  fusedByOps(be, prog, copies, want);
  // which input each output updates: by the output's register, in the program's output order
  const updates = Array.from(prog.outputs, (_, j) => updatedInput(prog, j));
  const outs = Array.from(prog.outputs, (_, j) => {
    const k = updates[j];
    return inPlace && k >= 0
      ? (inputs[names.indexOf(k === 0 ? "m" : k === 1 ? "v" : "p")].data as Arr)
      : new T(n);
  });
  return { inputs, outs, want };
}

/** 0: the output is m' (or momentum's b'), 1: v', 2: p', -1: another register. */
function updatedInput(prog: FusedProgram, j: number): number {
  const r = prog.outputs[j];
  const ins = prog.instrs[r];
  if (ins.kind === "binary" && ins.op === "sub") return 2;
  if (ins.kind !== "binary" || ins.op !== "add") return -1;
  // m' = m b1 + ...: its first operand multiplies input 0 (m or b); v' = v b2 + ...: input 2 (v)
  const first = prog.instrs[ins.a];
  if (first.kind !== "binary") return -1;
  const x = prog.instrs[first.a].kind === "input" ? prog.instrs[first.a] : prog.instrs[first.b];
  if (x.kind !== "input") return -1;
  return x.index === 0 ? 0 : x.index === 2 ? 1 : -1;
}

const SIZES: number[][] = [[1], [3], [7], [8], [15], [16], [17], [31], [33], [100], [1031], [5, 13], [40001]];

describe("compiled fused programs equal the program run op by op, bit for bit", () => {
  for (const cfg of nativeConfigs()) {
    test(cfg.label, () => {
      const be = cfg.select();
      const rng = new Rng(7);
      for (const dtype of ["float32", "float64"] as const) {
        for (const variant of ["adam", "adam-eps", "adam-lib", "adamw-lib", "momentum"] as const) {
          const nout = variant === "momentum" ? 2 : 3;
          const orders =
            nout === 2
              ? [
                  [0, 1],
                  [1, 0],
                ]
              : [
                  [0, 1, 2],
                  [2, 0, 1],
                  [1, 2, 0],
                ];
          for (const shape of SIZES) {
            for (const scalarInputs of variant === "momentum" ? [false] : [true, false]) {
              const order = rng.choice(orders);
              const { prog, names } = program(dtype, variant, scalarInputs, order);
              for (const inPlace of [false, true]) {
                const c = makeCase(be, rng, dtype, prog, names, shape, inPlace);
                be.fused!(prog, c.inputs, c.outs);
                const what = `${dtype} ${variant} [${shape}] scalars ${scalarInputs ? "inputs" : "consts"} order ${order} ${inPlace ? "in place" : "fresh"}`;
                for (const [j, o] of c.outs.entries()) assertSameBits(o, c.want[j], `${what}: output ${j}`);
              }
            }
          }
        }
      }
    });
  }
});

describe("near misses run on the interpreter with the same bits", () => {
  for (const cfg of nativeConfigs().filter((c) => c.label.endsWith("1 thread"))) {
    test(cfg.label, () => {
      const be = cfg.select();
      const rng = new Rng(11);
      for (const dtype of ["float32", "float64"] as const) {
        const cases: [string, Variant, number[], boolean][] = [
          ["operands swapped", "swapped", [1031], false],
          ["an extra output", "extra-output", [1031], false],
          ["g transposed", "adam", [33, 70], true],
        ];
        for (const [what, variant, shape, transposedG] of cases) {
          const order = variant === "extra-output" ? [0, 1, 2, 3] : [0, 1, 2];
          const { prog, names } = program(dtype, variant, true, order);
          for (const inPlace of [false, true]) {
            const c = makeCase(be, rng, dtype, prog, names, shape, inPlace, transposedG);
            be.fused!(prog, c.inputs, c.outs);
            for (const [j, o] of c.outs.entries())
              assertSameBits(o, c.want[j], `${dtype} ${what}: output ${j}`);
          }
        }
        // p' written into a buffer that holds g one element further on: an overlap other than in place
        const { prog, names } = program(dtype, "adam", true, [0, 1, 2]);
        const n = 1031;
        const T = dtype === "float32" ? Float32Array : Float64Array;
        const c = makeCase(be, rng, dtype, prog, names, [n], false);
        const shared = new T(n + 1);
        const gi = names.indexOf("g");
        shared.set(c.inputs[gi].data as Arr, 1);
        const inputs = c.inputs.map((v, k) => (k === gi ? { ...v, data: shared, offset: 1 } : v));
        const outs = [c.outs[0], c.outs[1], shared.subarray(0, n)];
        be.fused!(prog, inputs, outs);
        // the interpreter reads each tile of g before the tile's outputs are written, and p' element i goes
        // below g element i: every g element is read before it is overwritten
        for (const [j, o] of outs.entries())
          assertSameBits(o, c.want[j], `${dtype} overlapping output: output ${j}`);
      }
    });
  }
});

test("a jitted Adam step equals its eager ops, bit for bit", { skip: nativeBackend === undefined }, () => {
  const be = nativeBackend!;
  onBackend(be, () => {
    const [b1, b2] = [0.9, 0.999];
    type D = TensorDict;
    const update = adamUpdateOps;
    const step = jit(update, { donateArgnums: [0, 2, 3] });
    const rng = new Rng(3);
    const shapes: Record<string, number[]> = { w: [37, 29], b: [29], s: [1] };
    const rand = (shape: number[], positive = false) =>
      tensor(
        Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () =>
          positive ? rng.next() : rng.next() * 2 - 1,
        ),
        { shape },
      );
    let p: D = {};
    let m: D = {};
    let v: D = {};
    for (const [k, s] of Object.entries(shapes)) {
      p[k] = rand(s);
      m[k] = rand(s);
      v[k] = rand(s, true);
    }
    let pe = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.clone()]));
    let me = Object.fromEntries(Object.entries(m).map(([k, t]) => [k, t.clone()]));
    let ve = Object.fromEntries(Object.entries(v).map(([k, t]) => [k, t.clone()]));
    for (let t = 1; t <= 3; t++) {
      const g: D = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, rand(s)]));
      const a = tensor(1e-3 / (1 - b1 ** t));
      const c = tensor(1 / Math.sqrt(1 - b2 ** t));
      [pe, me, ve] = update(pe, g, me, ve, a, c);
      [p, m, v] = step(p, g, m, v, a, c);
      for (const k of Object.keys(shapes)) {
        assertSameBits(p[k].dataSync(), pe[k].dataSync(), `step ${t} p.${k}`);
        assertSameBits(m[k].dataSync(), me[k].dataSync(), `step ${t} m.${k}`);
        assertSameBits(v[k].dataSync(), ve[k].dataSync(), `step ${t} v.${k}`);
      }
    }
    assert.ok(Object.keys(p).length === 3);
  });
});

// The library's functional Adam and AdamW (makeTrainStep, the CLI's --jit) trace to the PatAdamLib / PatAdamWLib
// shapes: jitted, they run the compiled loop. It gives the bits of the same update run op by op, except that it
// flushes a subnormal second moment to zero (as the stateful optimizers' fused kernel does), which the tile
// interpreter would not: the flush shows that the compiled loop ran.
for (const name of ["adam", "adamw"] as const) {
  test(
    `jitted functional ${name} runs the compiled loop: the op-by-op bits, subnormal moments flushed`,
    {
      skip: nativeBackend === undefined,
    },
    () => checkFunctionalAdamFlush(nativeBackend!, name),
  );
}

describe("the compiled Adam patterns flush subnormals to zero, as the eager fused Adam; momentum keeps them", () => {
  for (const cfg of nativeConfigs()) {
    test(cfg.label, () => {
      const be = cfg.select();
      // 70,000 elements: above the loop's parallel grain, so on 2 threads both run a part
      const n = 70_000;
      for (const variant of ["adam", "adam-eps", "adam-lib", "adamw-lib", "momentum"] as const) {
        for (const scalarInputs of variant === "momentum" ? [false] : [true, false]) {
          const { prog, names } = program(
            "float32",
            variant,
            scalarInputs,
            variant === "momentum" ? [0, 1] : [0, 1, 2],
          );
          const inputs = names.map((name): View => {
            if (name === "a" || name === "c") {
              return {
                data: Float32Array.of(name === "a" ? 0.0123 : 1.7),
                shape: [n],
                strides: [0],
                offset: 0,
              };
            }
            // Adam: g = 1e-20, so g^2 (1 - b2) = 1e-43 is subnormal and v' would be; momentum: g = 1e-40 itself
            const fill = name === "g" ? (variant === "momentum" ? 1e-40 : 1e-20) : name === "p" ? 0.5 : 0;
            return flat(new Float32Array(n).fill(fill), [n]);
          });
          const want = Array.from(prog.outputs, () => new Float32Array(n));
          fusedByOps(be, prog, inputs, want);
          const outs = Array.from(prog.outputs, () => new Float32Array(n));
          be.fused!(prog, inputs, outs);
          const what = `${variant} scalars ${scalarInputs ? "inputs" : "consts"}`;
          if (variant === "momentum") {
            // b' = 0.9 b + g = 1e-40 (subnormal): kept, the op-by-op bits
            assert.ok(
              want[0][0] > 0 && want[0][0] < 1.2e-38,
              `${what}: op by op b' is subnormal (${want[0][0]})`,
            );
            for (const [j, o] of outs.entries()) assertSameBits(o, want[j], `${what}: output ${j}`);
            continue;
          }
          // op by op v' is subnormal; compiled it is flushed, and m', p' are the op-by-op bits
          assert.ok(
            want[1][0] > 0 && want[1][0] < 1.2e-38,
            `${what}: op by op v' is subnormal (${want[1][0]})`,
          );
          assert.ok(
            outs[1].every((x) => x === 0),
            `${what}: v' flushed to zero`,
          );
          assertSameBits(outs[0], want[0], `${what}: m'`);
          // p' = 0.5 - m' a / (sqrt(v') c + eps): sqrt of 0 or of 1e-43 (3e-22) against eps = 1e-8 changes nothing
          assertSameBits(outs[2], want[2], `${what}: p'`);
        }
      }
      // the calling thread's floating-point mode is restored: a subnormal product still comes out subnormal
      const x: View = flat(Float32Array.of(1e-20), [1]);
      const out = new Float32Array(1);
      be.binary!("mul", x, x, out);
      assert.ok(
        out[0] > 0 && out[0] < 1.2e-38,
        `1e-20 * 1e-20 after the update: ${out[0]} (subnormal, not flushed)`,
      );
    });
  }
});
