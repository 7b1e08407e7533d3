/**
 * What the jit fusion tests share (jit-fuse, jit-fuse-reduce, jit-fuse-epilogue, jit-fuse-compiled, the wasm
 * codegen tests): seeded random fused programs, the optimizer programs as jit traces them (Adam, momentum, near
 * misses), strided views of random data in every layout a kernel must read, the bit-for-bit comparison, and the
 * backends the kernels run on (js, wasm, and native on each instruction set with one and two threads).
 */
import assert from "node:assert/strict";
import { after } from "node:test";
import type { Backend, BinaryOp, FusedInstr, FusedProgram, UnaryOp, View } from "../src/backend/backend.ts";
import { fusedProgram } from "../src/backend/fused.ts";
import { loadNativeBackend, nativeInfo, setNativeIsa, setNumThreads } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { jit, tensor } from "../src/index.ts";
import { functional as optFunctional } from "../src/optim/index.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { onBackend } from "./backends.ts";
import { prng } from "./prng.ts";

/** Seeded random helpers over the tests' PRNG. */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  choice<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }
}

/** Every float unary op a fused program may hold. */
export const UNARY: readonly UnaryOp[] = [
  "neg",
  "abs",
  "sign",
  "exp",
  "log",
  "log1p",
  "expm1",
  "sqrt",
  "sin",
  "cos",
  "tan",
  "tanh",
  "sigmoid",
  "erf",
  "relu",
  "floor",
  "ceil",
  "round",
];
/** Every float binary op a fused program may hold. */
export const BINARY: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"];

/**
 * A random program: `nIn` inputs, a few consts, then `nOps` ops over earlier registers (the last one an op),
 * drawn from `pools` (default every op). Its one output is the last register.
 */
export function randomProgram(
  rng: Rng,
  dtype: "float32" | "float64",
  nIn: number,
  nOps: number,
  pools: { unary?: readonly UnaryOp[]; binary?: readonly BinaryOp[] } = {},
): FusedProgram {
  const instrs: FusedInstr[] = [];
  for (let k = 0; k < nIn; k++) instrs.push({ kind: "input", index: k });
  const nConst = rng.int(0, 3);
  for (let k = 0; k < nConst; k++)
    instrs.push({ kind: "const", value: rng.choice([0.5, -1.25, 2, 3, 0, 1e-3]) });
  for (let k = 0; k < nOps; k++) {
    const r = instrs.length;
    // prefer recent registers, so programs are chains with side branches
    const pick = () => Math.max(0, r - 1 - rng.int(0, Math.min(r, 4)));
    if (rng.next() < 0.45) instrs.push({ kind: "unary", op: rng.choice(pools.unary ?? UNARY), a: pick() });
    else instrs.push({ kind: "binary", op: rng.choice(pools.binary ?? BINARY), a: pick(), b: rng.int(0, r) });
  }
  return fusedProgram(dtype, instrs);
}

/** How a view reads its storage. */
export type Layout = "contiguous" | "broadcast" | "transposed" | "sliced" | "flipped" | "scalar";

/** The number of elements of `shape`. */
export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Row-major strides of `shape`. */
export function contiguous(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d];
  }
  return st;
}

/** A view of `shape` with the given layout over fresh random data (values in [-3, 3]). */
export function makeView(rng: Rng, dtype: "float32" | "float64", shape: number[], layout: Layout): View {
  const T = dtype === "float32" ? Float32Array : Float64Array;
  const nd = shape.length;
  const fill = (n: number) => {
    const d = new T(n);
    for (let i = 0; i < n; i++) d[i] = rng.next() * 6 - 3;
    return d;
  };
  const n = size(shape);
  if (layout === "scalar" || n === 0) {
    return { data: fill(3), shape, strides: shape.map(() => 0), offset: 1 };
  }
  if (layout === "broadcast" && nd >= 1) {
    // stride 0 on the first axis (a row broadcast down), contiguous otherwise
    const inner = shape.slice(1);
    return { data: fill(Math.max(1, size(inner))), shape, strides: [0, ...contiguous(inner)], offset: 0 };
  }
  if (layout === "transposed" && nd >= 2) {
    // storage [..., b, a] read as [..., a, b]
    const sh = [...shape.slice(0, -2), shape[nd - 1], shape[nd - 2]];
    const st = contiguous(sh);
    const strides = [...st.slice(0, -2), st[nd - 1], st[nd - 2]];
    return { data: fill(n), shape, strides, offset: 0 };
  }
  if (layout === "sliced") {
    // every other element of the last axis of a larger array, at an offset
    const sh = [...shape];
    sh[nd - 1] = 2 * shape[nd - 1] + 1;
    const st = contiguous(sh);
    return { data: fill(st[0] * sh[0] + 3), shape, strides: [...st.slice(0, -1), 2], offset: 3 };
  }
  if (layout === "flipped") {
    const st = contiguous(shape);
    return { data: fill(n), shape, strides: [...st.slice(0, -1), -1], offset: shape[nd - 1] - 1 };
  }
  return { data: fill(n + 2), shape, strides: contiguous(shape), offset: 2 };
}

/** Equal bits, except that any NaN equals any NaN (payloads are not specified). */
export function assertSameBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const a = got[i];
    const b = want[i];
    if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)))) {
      assert.fail(`${what}: element ${i}: got ${a}, expected ${b}`);
    }
  }
}

/** A program written as jit traces it: `input(k)`, `konst(x)`, ops of earlier registers. */
class Builder {
  readonly instrs: FusedInstr[] = [];
  private push(i: FusedInstr): number {
    this.instrs.push(i);
    return this.instrs.length - 1;
  }
  input(index: number): number {
    return this.push({ kind: "input", index });
  }
  konst(value: number): number {
    return this.push({ kind: "const", value });
  }
  bin(op: "add" | "sub" | "mul" | "div", a: number, b: number): number {
    return this.push({ kind: "binary", op, a, b });
  }
  sqrt(a: number): number {
    return this.push({ kind: "unary", op: "sqrt", a });
  }
}

export type OptimizerVariant =
  | "adam"
  | "adam-eps"
  | "adam-lib"
  | "adamw-lib"
  | "momentum"
  | "swapped"
  | "extra-output";

/**
 * The program of `variant` and its named inputs in input order. Adam: inputs m, g, v, [a, c,] p; outputs m', v',
 * p' (in `order`); "adam-lib" / "adamw-lib": the library's functional Adam / AdamW (inputs m, g, v, [c,] [a,] p); with `scalarInputs`, the step's scalars a and c are broadcast inputs (as in the bench's step),
 * else consts. Momentum: inputs b, g, p; outputs b', p'.
 */
export function optimizerProgram(
  dtype: "float32" | "float64",
  variant: OptimizerVariant,
  scalarInputs: boolean,
  order: number[],
): { prog: FusedProgram; names: string[] } {
  const B = new Builder();
  const names: string[] = [];
  const inp = (name: string) => {
    names.push(name);
    return B.input(names.length - 1);
  };
  /** The program with `outs` (by role) stored in `order`. */
  const done = (outs: number[]) => ({
    prog: fusedProgram(
      dtype,
      B.instrs,
      order.map((j) => outs[j]),
    ),
    names,
  });
  if (variant === "momentum") {
    const b = B.bin("mul", inp("m"), B.konst(0.9));
    const b2 = B.bin("add", b, inp("g"));
    const p2 = B.bin("sub", inp("p"), B.bin("mul", b2, B.konst(0.01)));
    const outs = [b2, p2];
    return done(outs);
  }
  const m = inp("m");
  const m2 =
    variant === "swapped"
      ? B.bin("add", B.bin("mul", B.konst(0.9), m), B.bin("mul", B.input(1), B.konst(0.1)))
      : B.bin("add", B.bin("mul", m, B.konst(0.9)), B.bin("mul", B.input(1), B.konst(0.1)));
  names.push("g");
  const g = B.instrs.findIndex((i) => i.kind === "input" && i.index === 1);
  const v2 = B.bin(
    "add",
    B.bin("mul", inp("v"), B.konst(0.999)),
    B.bin("mul", B.bin("mul", g, g), B.konst(0.001)),
  );
  if (variant === "adam-lib" || variant === "adamw-lib") {
    // the library's functional Adam (optim/functional.ts): p' = p [d] - (m' / (sqrt(v') / c + eps)) a
    const den = B.bin(
      "add",
      B.bin("div", B.sqrt(v2), scalarInputs ? inp("c") : B.konst(0.95)),
      B.konst(1e-8),
    );
    const upd = B.bin("mul", B.bin("div", m2, den), scalarInputs ? inp("a") : B.konst(0.0123));
    const base = variant === "adamw-lib" ? B.bin("mul", inp("p"), B.konst(0.99)) : inp("p");
    const outs = [m2, v2, B.bin("sub", base, upd)];
    return done(outs);
  }
  const a = scalarInputs ? inp("a") : B.konst(0.0123);
  const num = B.bin("mul", m2, a);
  const root = B.sqrt(v2);
  let den: number;
  if (variant === "adam-eps") den = B.bin("add", root, B.konst(1e-8));
  else {
    const c = scalarInputs ? inp("c") : B.konst(1.7);
    den = B.bin("add", B.bin("mul", root, c), B.konst(1e-8));
  }
  const q = B.bin("div", num, den);
  const p2 = B.bin("sub", inp("p"), q);
  const outs = variant === "extra-output" ? [m2, v2, p2, q] : [m2, v2, p2];
  return done(outs);
}

/** The wasm backend (an error if it does not load). */
/** Tensors by parameter name. */
export type TensorDict = Record<string, Tensor>;

/**
 * Adam as a user writes it for jit (the step's scalars a = lr / bc1 and c = 1 / bc2Sqrt as tensors), over dicts of
 * parameters p, gradients g and moments m, v: returns [p', m', v']. Jitted with p, m, v donated, its update
 * programs are the compiled Adam shapes (kernels/fused.cc PatAdam; wasm codegen's flush).
 */
export function adamUpdateOps(
  p: TensorDict,
  g: TensorDict,
  m: TensorDict,
  v: TensorDict,
  a: Tensor,
  c: Tensor,
): readonly [TensorDict, TensorDict, TensorDict] {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const p2: TensorDict = {};
  const m2: TensorDict = {};
  const v2: TensorDict = {};
  for (const k of Object.keys(p)) {
    m2[k] = m[k].mul(b1).add(g[k].mul(1 - b1));
    v2[k] = v[k].mul(b2).add(g[k].square().mul(1 - b2));
    p2[k] = p[k].sub(m2[k].mul(a).div(v2[k].sqrt().mul(c).add(eps)));
  }
  return [p2, m2, v2] as const;
}

export function wasm(): Backend {
  const r = loadWasmBackend();
  if ("error" in r) throw new Error(r.error);
  return r.backend;
}

const nativeLoaded = loadNativeBackend();
/** The native backend, or undefined where its addon does not load. */
export const nativeBackend: Backend | undefined =
  "backend" in nativeLoaded ? nativeLoaded.backend : undefined;

/**
 * Every instruction-set build of native this CPU runs, with one thread and with two: `select()` switches native to
 * that configuration and returns it (each test calls it, so the tests can run in any order). Registers an `after`
 * hook that restores native's instruction set and thread count. Empty without native.
 */
export function nativeConfigs(): { label: string; select: () => Backend }[] {
  const be = nativeBackend;
  if (be === undefined) return [];
  const isa0 = nativeInfo().isa as "avx512" | "avx2" | "base";
  const threads0 = nativeInfo().threads;
  const isas = (["avx512", "avx2", "base"] as const).filter((i) => setNativeIsa(i));
  setNativeIsa(isa0);
  after(() => {
    setNativeIsa(isa0);
    setNumThreads(threads0);
  });
  return isas.flatMap((isa) =>
    [1, 2].map((threads) => ({
      label: `native ${isa}, ${threads} thread${threads > 1 ? "s" : ""}`,
      select: () => {
        assert.ok(setNativeIsa(isa));
        setNumThreads(threads);
        return be;
      },
    })),
  );
}

/**
 * A jitted step of the library's functional Adam or AdamW (`functional.adam` / `adamw`, whose programs the backends
 * flush as the Adam patterns: native PatAdamLib / PatAdamWLib, wasm's ADAM_LIB / ADAMW_LIB) on backend `be`, three
 * steps over 3,000 float32 parameters against the same update run op by op: p and m are the op-by-op bits; every
 * third gradient is 1e-20, whose second moment (1e-43) op by op is subnormal and jitted is flushed to 0.
 */
export function checkFunctionalAdamFlush(be: Backend, name: "adam" | "adamw"): void {
  onBackend(be, () => {
    const rng = new Rng(5);
    const n = 3000;
    const f = optFunctional[name]({ lr: 1e-3 });
    const init = Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
    let params = { w: tensor(init.slice(), { shape: [n] }) };
    let state = f.init(params);
    let refParams = { w: tensor(init.slice(), { shape: [n] }) };
    let refState = f.init(refParams);
    const step = jit((ps: { w: Tensor }, g: { w: Tensor }, st: typeof state) => f.update(g, st, ps), {
      donateArgnums: [0, 2],
    });
    const moment = (st: typeof state, k: string) => (st[k] as { w: Tensor }).w.dataSync();
    for (let t = 1; t <= 3; t++) {
      const g = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1e-20 : rng.next() * 2 - 1));
      [refParams, refState] = f.update({ w: tensor(g.slice(), { shape: [n] }) }, refState, refParams);
      [params, state] = step(params, { w: tensor(g, { shape: [n] }) }, state);
      const what = `${name} step ${t}`;
      assertSameBits(params.w.dataSync(), refParams.w.dataSync(), `${what}: p`);
      assertSameBits(moment(state, "expAvg"), moment(refState, "expAvg"), `${what}: m`);
      const [v, vRef] = [moment(state, "expAvgSq"), moment(refState, "expAvgSq")];
      for (let i = 0; i < n; i++) {
        if (i % 3 === 0 && t === 1) {
          assert.ok(vRef[i] > 0 && vRef[i] < 1.2e-38, `${what}: op-by-op v[${i}] is subnormal (${vRef[i]})`);
          assert.equal(v[i], 0, `${what}: jitted v[${i}] flushed`);
        } else if (vRef[i] >= 1.2e-38) {
          assert.ok(Object.is(v[i], vRef[i]), `${what}: v[${i}] ${v[i]} against ${vRef[i]}`);
        }
      }
    }
  });
}
