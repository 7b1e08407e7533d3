/**
 * The native fused kernel's safety (issue 8's standard for a public backend object): a malformed program or
 * call is rejected with an Error naming the kernel and the problem, before anything is written; a seeded
 * mutation fuzzer corrupts one number of valid calls (an instruction field, an input's offset, stride or
 * dimension) and every call must succeed or throw, never write outside its output; programs at the kernel's
 * limits run (64 inputs), beyond them run op by op with the same bits.
 *
 * Bit-identity with the unfused kernels on random programs (every instruction set, one and two threads) is in
 * test/jit-fuse.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BINARY_OPS,
  type FusedInstr,
  type FusedProgram,
  UNARY_OPS,
  type View,
} from "../../src/backend/backend.ts";
import { fusedByOps, fusedProgram } from "../../src/backend/fused.ts";
import { setFlushDenormal } from "../../src/backend/native/index.ts";
import { N, prng } from "./native-helpers.ts";

const skip = !N;

/** A contiguous float32 view of `n` values from `rng`. */
function vec(rng: () => number, n: number, shape: number[] = [n]): View {
  const data = Float32Array.from({ length: n }, () => rng() * 4 - 2);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { data, shape, strides, offset: 0 };
}

// out = tanh(x * 2) + y
const PROG = fusedProgram("float32", [
  { kind: "input", index: 0 },
  { kind: "const", value: 2 },
  { kind: "binary", op: "mul", a: 0, b: 1 },
  { kind: "unary", op: "tanh", a: 2 },
  { kind: "input", index: 1 },
  { kind: "binary", op: "add", a: 3, b: 4 },
]);

/** PROG with its flat code replaced (the structured instrs stay valid: only the kernel sees the code). */
const withCode = (code: number[], p: FusedProgram = PROG): FusedProgram => ({
  ...p,
  code: Int32Array.from(code),
});

const GUARD = 12345.5;

/** An output window of n elements inside a larger buffer whose guard elements must stay untouched. */
function window(n: number) {
  const buf = new Float32Array(n + 16).fill(GUARD);
  const out = buf.subarray(8, 8 + n);
  const intact = () => {
    for (let i = 0; i < 8; i++) {
      if (buf[i] !== GUARD || buf[buf.length - 1 - i] !== GUARD) return false;
    }
    return true;
  };
  return { out, intact };
}

test("malformed programs are rejected, naming the kernel and the problem, with nothing written", {
  skip,
}, () => {
  const rng = prng(1);
  const x = vec(rng, 10);
  const y = vec(rng, 10);
  const code = Array.from(PROG.code);
  const set = (i: number, v: number) => code.map((c, j) => (j === i ? v : c));
  const cases: [string, FusedProgram, RegExp][] = [
    ["unknown kind", withCode(set(4 * 3, 7)), /native fused: instruction 3: unknown kind 7/],
    [
      "operand a not earlier",
      withCode(set(4 * 3 + 2, 3)),
      /instruction 3: operand a = 3 is not an earlier register/,
    ],
    [
      "operand a negative",
      withCode(set(4 * 2 + 2, -1)),
      /instruction 2: operand a = -1 is not an earlier register/,
    ],
    [
      "operand b not earlier",
      withCode(set(4 * 5 + 3, 9)),
      /instruction 5: operand b = 9 is not an earlier register/,
    ],
    ["const out of range", withCode(set(4 * 1 + 2, 5)), /instruction 1 reads const 5 of 1/],
    ["input out of range", withCode(set(4 * 4 + 2, 2)), /instruction 4 reads input 2 of 2/],
    ["an input never read", withCode(set(4 * 4 + 2, 0)), /the program reads 1 input\(s\), got 2/],
    // (the backend appends one store, 4 ints, to the 22)
    ["code not 4 ints per instruction", withCode(code.slice(0, 22)), /26 ints, not 4 per instruction/],
    ["no instruction", withCode([]), /at least one instruction/],
    [
      "a store of no instruction's register",
      { ...PROG, outputs: Int32Array.from([9]) },
      /store 0: register 9 is not an instruction's/,
    ],
    [
      "too many instructions",
      withCode([...code, ...new Array(4 * 4096).fill(0)]),
      /at most 4096 instructions/,
    ],
  ];
  // ops the fused kernel does not take, by their TypeScript codes (the backend maps them to the addon's)
  const bad = (ins: FusedInstr): FusedProgram => {
    const p = fusedProgram("float32", [{ kind: "input", index: 0 }, { kind: "input", index: 1 }, ins]);
    return p;
  };
  const notProg = bad({ kind: "unary", op: "exp", a: 0 });
  const notCode = Array.from(notProg.code);
  notCode[4 * 2 + 1] = UNARY_OPS.indexOf("not");
  cases.push(["`not`", withCode(notCode, notProg), /unary op code \d+ is not a float elementwise op/]);
  const eqProg = bad({ kind: "binary", op: "add", a: 0, b: 1 });
  const eqCode = Array.from(eqProg.code);
  eqCode[4 * 2 + 1] = BINARY_OPS.indexOf("eq");
  cases.push(["a comparison", withCode(eqCode, eqProg), /binary op code \d+ is not a float elementwise op/]);
  for (const [what, prog, re] of cases) {
    const w = window(10);
    assert.throws(() => N!.fused!(prog, [x, y], [w.out]), re, what);
    assert.ok(w.out.every((v) => v === GUARD) && w.intact(), `${what}: nothing written`);
  }
});

test("calls whose views do not fit their buffers or the limits are rejected", { skip }, () => {
  const rng = prng(2);
  const x = vec(rng, 10);
  const y = vec(rng, 10);
  const w = window(10);
  assert.throws(
    () => N!.fused!(PROG, [x, { ...y, offset: 5 }], [w.out]),
    /native fused: view reaches outside/,
  );
  assert.throws(
    () => N!.fused!(PROG, [{ ...x, strides: [2] }, y], [w.out]),
    /native fused: view reaches outside/,
  );
  assert.throws(
    () => N!.fused!(PROG, [x, { ...y, offset: -1 }], [w.out]),
    /native fused: view reaches outside/,
  );
  // a huge broadcast: the output cannot hold it, whatever the strides say
  const big = [2 ** 25, 2 ** 25];
  assert.throws(
    () =>
      N!.fused!(
        PROG,
        [
          { ...x, shape: big, strides: [0, 0] },
          { ...y, shape: big, strides: [0, 0] },
        ],
        [w.out],
      ),
    /fused/,
  );
  assert.throws(() => N!.fused!(PROG, [x], [w.out]), /fused: the program reads 2 inputs, got 1/);
  assert.ok(w.out.every((v) => v === GUARD) && w.intact(), "nothing written");
});

test("mutated calls throw or succeed, never write outside their output", { skip }, () => {
  const rng = prng(3);
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo));
  const SPECIAL = [-1, 0, 1, 2, 3, 4, 7, 17, 18, 255, -2147483648, 2147483647];
  let threw = 0;
  let ran = 0;
  for (let t = 0; t < 1500; t++) {
    const shape = [int(1, 4), int(1, 40)];
    const n = shape[0] * shape[1];
    const x = vec(rng, n, shape);
    const y: View = { ...vec(rng, shape[1], [shape[1]]), shape, strides: [0, 1] };
    const inputs = [x, y];
    let prog = PROG;
    const what = int(0, 3);
    if (what === 0) {
      const code = Array.from(PROG.code);
      code[int(0, code.length)] = rng() < 0.5 ? SPECIAL[int(0, SPECIAL.length)] : int(-50, 50);
      prog = withCode(code);
    } else {
      const k = int(0, 2);
      const v = inputs[k];
      const field = int(0, 3);
      const value = rng() < 0.5 ? SPECIAL[int(0, SPECIAL.length)] : int(-100, 100);
      if (field === 0) inputs[k] = { ...v, offset: value };
      else if (field === 1)
        inputs[k] = { ...v, strides: v.strides.map((s, d) => (d === int(0, 2) ? value : s)) };
      else {
        const d = int(0, 2);
        const sh = v.shape.map((s, i) => (i === d ? Math.abs(value) : s));
        inputs[k] = { ...v, shape: sh };
      }
    }
    const w = window(n);
    try {
      N!.fused!(prog, inputs, [w.out]);
      ran++;
    } catch (e) {
      assert.ok(e instanceof Error && /fused/.test(e.message), `an Error naming the kernel, got ${e}`);
      threw++;
    }
    assert.ok(w.intact(), `call ${t}: wrote outside its output`);
  }
  assert.ok(threw > 100 && ran > 100, `both outcomes occur (threw ${threw}, ran ${ran})`);
});

test("64 inputs run in the kernel; more run op by op, with the same bits", { skip }, () => {
  const rng = prng(4);
  for (const k of [64, 65]) {
    const instrs: FusedInstr[] = [];
    for (let i = 0; i < k; i++) instrs.push({ kind: "input", index: i });
    let acc = 0;
    for (let i = 1; i < k; i++) {
      instrs.push({ kind: "binary", op: i % 2 ? "add" : "maximum", a: acc, b: i });
      acc = instrs.length - 1;
    }
    instrs.push({ kind: "unary", op: "tanh", a: acc });
    const prog = fusedProgram("float32", instrs);
    const inputs = Array.from({ length: k }, (_, i) =>
      i % 3 === 0 ? { ...vec(rng, 7, [7]), shape: [5, 7], strides: [0, 1] } : vec(rng, 35, [5, 7]),
    );
    const got = new Float32Array(35);
    const want = new Float32Array(35);
    N!.fused!(prog, inputs, [got]);
    fusedByOps(N!, prog, inputs, [want]);
    assert.deepEqual(got, want, `${k} inputs`);
  }
});

test("small programs of exact ops (run in JavaScript) give the kernels' bits; flush-denormal mode sends them to the addon", {
  skip,
}, () => {
  const rng = prng(5);
  // out0 = sqrt(abs(x * y + z) / w) - floor(x) + ceil(-y), out1 = x * y + z
  const instrs: FusedInstr[] = [
    { kind: "input", index: 0 },
    { kind: "input", index: 1 },
    { kind: "binary", op: "mul", a: 0, b: 1 },
    { kind: "input", index: 2 },
    { kind: "binary", op: "add", a: 2, b: 3 },
    { kind: "unary", op: "abs", a: 4 },
    { kind: "input", index: 3 },
    { kind: "binary", op: "div", a: 5, b: 6 },
    { kind: "unary", op: "sqrt", a: 7 },
    { kind: "unary", op: "floor", a: 0 },
    { kind: "binary", op: "sub", a: 8, b: 9 },
    { kind: "unary", op: "neg", a: 1 },
    { kind: "unary", op: "ceil", a: 11 },
    { kind: "binary", op: "add", a: 10, b: 12 },
  ];
  const specials = [0, -0, 1e-39, -3e-40, 1e-310, Number.NaN, Infinity, -Infinity, 1e-20, 3e38, 0.5, -2.5];
  const bytes = (a: Float32Array | Float64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const dtype of ["float32", "float64"] as const) {
    const prog = fusedProgram(dtype, instrs, [13, 4]);
    const T = dtype === "float32" ? Float32Array : Float64Array;
    for (const n of [1, 5, 64, 65]) {
      const inputs = Array.from({ length: 4 }, (_, k) => {
        const data = T.from(
          Array.from({ length: n }, (_, i) =>
            (i + k) % 3 === 0 ? specials[(i * 7 + k) % specials.length] : rng() * 8 - 4,
          ),
        );
        return { data, shape: [n], strides: [1], offset: 0 };
      });
      const got = [new T(n), new T(n)];
      const want = [new T(n), new T(n)];
      N!.fused!(prog, inputs, got);
      fusedByOps(N!, prog, inputs, want);
      for (let j = 0; j < 2; j++)
        assert.deepEqual(bytes(got[j]), bytes(want[j]), `${dtype}, ${n} elements, output ${j}`);
    }
  }
  // a subnormal product: IEEE in JavaScript, flushed to zero by the kernels while the mode is on
  const prog = fusedProgram("float32", instrs.slice(0, 3));
  const x = { data: Float32Array.of(1e-20), shape: [1], strides: [1], offset: 0 };
  const y = { data: Float32Array.of(1e-20), shape: [1], strides: [1], offset: 0 };
  const out = new Float32Array(1);
  N!.fused!(prog, [x, y], [out]);
  assert.equal(out[0], Math.fround(1e-40));
  assert.ok(setFlushDenormal(true), "flush-denormal mode is available on x86-64");
  try {
    N!.fused!(prog, [x, y], [out]);
    assert.equal(out[0], 0, "flushed, as the kernels flush");
  } finally {
    setFlushDenormal(false);
  }
  N!.fused!(prog, [x, y], [out]);
  assert.equal(out[0], Math.fround(1e-40), "IEEE again once the mode is off");
});
