/**
 * The bench's MLP, CNN, LSTM and Transformer training steps (bench/peers/chainrule.ts: same shapes, Adam, one-hot
 * cross-entropy), eager and jitted, on the native backend: where a jitted step spends its time, and how it
 * compares with eager code, measured interleaved in one process.
 *
 *   node --import tsx bench/jit-profile.ts [--only mlp,cnn,lstm,transformer] [--threads 1] [--rounds 15]
 *     [--profile] [--program] [--variants eager,jit,jit-biasact,jit-epmulti,jit-all,jit-all-noepilogue,jit-sums,jit-norewrite]
 *     [--backend native|wasm] [--isa avx512|avx2|base] [--calls]
 *   node --import tsx bench/jit-profile.ts --only adam-calls [--rounds 15] [--reps 10]
 *
 * `--profile` prints the jitted step's exclusive time per executor step kind (core/jit-exec.ts
 * `setJitProfile`); `--program` prints its step count and equations by name. The A/B part alternates the
 * variants call by call (A, B, A, B, ...) and reports medians of wall and process CPU time per call, the
 * ratio, and garbage collections per call. Run it pinned (`taskset -c 1`) and state the load (`uptime`).
 *
 * `--only adam-calls` times one parameter's Adam update alone, per size of the MLP's parameters, three ways
 * interleaved: the program jit fuses from the step's Adam (native runs it as a compiled loop, kernels/fused.cc),
 * the same program with one product's operands swapped (which the compiled shapes do not match: the tile
 * interpreter, the cost before), and eager's `adamUpdate`; each on its own parameter and moments, in place,
 * `--reps` calls per timed sample.
 */
import { interleavedAB } from "./harness.ts";
import type { Backend, FusedInstr, View } from "../src/backend/backend.ts";
import { fusedProgram } from "../src/backend/fused.ts";
import { loadNativeBackend, setNativeIsa, setNumThreads } from "../src/backend/native/index.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { setJitProfile, type JitProfile } from "../src/core/jit-exec.ts";
import { setEpilogueOutputs } from "../src/core/jit-fuse.ts";
import { setBiasReluSplit } from "../src/core/jit-rewrite.ts";
import { setProductRewrites } from "../src/core/jit-simplify.ts";
import { arange, grad, jit, manualSeed, type Tensor, tensor } from "../src/index.ts";
import { crossEntropy, functionalCall, Linear, LSTM, Module, ReLU, Sequential } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { CHAR_VOCAB, charTransformer } from "./char-transformer.ts";
import { benchCnn } from "./cnn-model.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const flag = (name: string) => args.includes(`--${name}`);
const only = opt("only", "mlp,lstm,transformer").split(",");
const rounds = Number(opt("rounds", "15"));
const variants = opt("variants", "eager,jit").split(",");

// (--backend wasm: the jitted steps on wasm, e.g. to check an execution-program change there)
const r = opt("backend", "native") === "wasm" ? loadWasmBackend() : loadNativeBackend();
if ("error" in r) throw new Error(r.error);
setBackend(r.backend);
setNumThreads(Number(opt("threads", "1")));
if (args.includes("--isa") && !setNativeIsa(opt("isa", "avx512") as "avx512" | "avx2" | "base")) {
  throw new Error(`--isa ${opt("isa", "")}: not available on this CPU`);
}
manualSeed(1);

type Dict = Record<string, Tensor>;
type StepFn = () => number;

class RowLstm extends Module {
  lstm = new LSTM(28, 128, { batchFirst: true });
  fc = new Linear(128, 10);
  forward(x: Tensor): Tensor {
    const [out] = this.lstm.call(x);
    return this.fc.call(out.narrow(1, x.shape[1] - 1, 1).reshape([x.shape[0], 128]));
  }
}

/** The bench's jitted Adam step (bench/peers/chainrule.ts jitAdamStep). */
function jitAdamStep(model: Module, x: Tensor, y: Int32Array, classes: number) {
  const y1h = tensor(y, { dtype: "int32" })
    .unsqueeze(1)
    .eq(arange(classes, undefined, 1, { dtype: "int32" }))
    .to("float32");
  const loss = (p: Dict) =>
    (functionalCall(model, p, x) as Tensor).logSoftmax(-1).mul(y1h).sum().neg().div(y.length);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const step = jit(
    (p: Dict, m: Dict, v: Dict, a: Tensor, c: Tensor) => {
      const l = loss(p);
      const g = grad(loss)(p) as Dict;
      const p2: Dict = {};
      const m2: Dict = {};
      const v2: Dict = {};
      for (const k of Object.keys(p)) {
        m2[k] = m[k].mul(b1).add(g[k].mul(1 - b1));
        v2[k] = v[k].mul(b2).add(g[k].square().mul(1 - b2));
        p2[k] = p[k].sub(m2[k].mul(a).div(v2[k].sqrt().mul(c).add(eps)));
      }
      return [l, p2, m2, v2] as const;
    },
    { donateArgnums: [0, 1, 2] },
  );
  let p: Dict = Object.fromEntries(model.namedParameters().map(([n, t]) => [n, t.detach().clone()]));
  let m: Dict = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.mul(0)]));
  let v: Dict = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.mul(0)]));
  let t = 0;
  const args = () => [p, m, v, tensor(1e-3 / (1 - b1 ** t)), tensor(1 / Math.sqrt(1 - b2 ** t))] as const;
  const run: StepFn = () => {
    t++;
    const out = step(...args());
    [, p, m, v] = out;
    return out[0].item();
  };
  return { run, step, args };
}

function eagerStep(model: Module, x: Tensor, y: Int32Array): StepFn {
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const yt = tensor(y, { dtype: "int32" });
  return () => {
    opt.zeroGrad();
    const loss = crossEntropy(model.call(x) as Tensor, yt);
    loss.backward();
    opt.step();
    return loss.item();
  };
}

function labels(n: number, classes: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % classes);
}

function workload(name: string): { model: () => Module; x: Tensor; y: Int32Array; classes: number } {
  switch (name) {
    case "mlp":
      return {
        model: () =>
          new Sequential(
            new Linear(784, 512),
            new ReLU(),
            new Linear(512, 256),
            new ReLU(),
            new Linear(256, 10),
          ),
        x: tensor(
          Float32Array.from({ length: 128 * 784 }, (_, i) => ((i * 37) % 101) / 101),
          {
            shape: [128, 784],
          },
        ),
        y: labels(128, 10),
        classes: 10,
      };
    case "cnn":
      // the bench's CNN (conv5x5x32-pool-conv5x5x64-pool-fc128-fc10), batch 64
      return {
        model: () => benchCnn(),
        x: tensor(
          Float32Array.from({ length: 64 * 784 }, (_, i) => ((i * 37) % 101) / 101),
          {
            shape: [64, 1, 28, 28],
          },
        ),
        y: labels(64, 10),
        classes: 10,
      };
    case "lstm":
      return {
        model: () => new Sequential(new RowLstm()),
        x: tensor(
          Float32Array.from({ length: 64 * 784 }, (_, i) => ((i * 37) % 101) / 101),
          {
            shape: [64, 28, 28],
          },
        ),
        y: labels(64, 10),
        classes: 10,
      };
    case "transformer": {
      const vocab = CHAR_VOCAB;
      return {
        model: charTransformer,
        x: tensor(
          Int32Array.from({ length: 32 * 128 }, (_, i) => (i * 13) % vocab),
          {
            dtype: "int32",
            shape: [32, 128],
          },
        ),
        y: labels(32 * 128, vocab),
        classes: vocab,
      };
    }
    default:
      throw new Error(`unknown workload ${name}`);
  }
}

/**
 * The Adam program jit fuses for one parameter of the step above (inputs m, g, v, a, c, p; outputs m', v', p'),
 * as it traces it; `swapped` writes m b1 as b1 m (the same values; not a compiled shape).
 */
function adamProgram(swapped: boolean) {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const f = (x: number) => Math.fround(x);
  const ins: FusedInstr[] = [];
  const push = (i: FusedInstr) => ins.push(i) - 1;
  const bin = (op: "add" | "sub" | "mul" | "div", a: number, b: number) => push({ kind: "binary", op, a, b });
  const konst = (value: number) => push({ kind: "const", value: f(value) });
  const input = (index: number) => push({ kind: "input", index });
  const m = input(0);
  const mb = swapped ? bin("mul", konst(b1), m) : bin("mul", m, konst(b1));
  const g = input(1);
  const m2 = bin("add", mb, bin("mul", g, konst(1 - b1)));
  const v2 = bin("add", bin("mul", input(2), konst(b2)), bin("mul", bin("mul", g, g), konst(1 - b2)));
  const num = bin("mul", m2, input(3));
  const den = bin("add", bin("mul", push({ kind: "unary", op: "sqrt", a: v2 }), input(4)), konst(eps));
  const p2 = bin("sub", input(5), bin("div", num, den));
  return fusedProgram("float32", ins, [m2, v2, p2]);
}

/** One parameter's Adam update alone: compiled program, interpreted program and adamUpdate, interleaved. */
async function adamCalls(be: Backend): Promise<void> {
  const reps = Number(opt("reps", "10"));
  const compiled = adamProgram(false);
  const interpreted = adamProgram(true);
  for (const n of [401408, 131072, 2560, 512]) {
    const state = () => {
      const p = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.1);
      const g = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7) * 0.01);
      return { p, g, m: new Float32Array(n), v: new Float32Array(n) };
    };
    const flat = (data: Float32Array): View => ({ data, shape: [n], strides: [1], offset: 0 });
    const scalar = (x: number): View => ({ data: Float32Array.of(x), shape: [n], strides: [0], offset: 0 });
    const runProgram = (prog: ReturnType<typeof adamProgram>) => {
      const s = state();
      const inputs = [flat(s.m), flat(s.g), flat(s.v), scalar(0.01), scalar(31.6), flat(s.p)];
      return () => {
        for (let r = 0; r < reps; r++) be.fused!(prog, inputs, [s.m, s.v, s.p]);
      };
    };
    const s = state();
    const h = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      decoupled: false,
      maximize: false,
      bc1: 0.1,
      bc2Sqrt: 0.0316,
    };
    const fns = {
      compiled: runProgram(compiled),
      interpreted: runProgram(interpreted),
      adamUpdate: () => {
        for (let r = 0; r < reps; r++) be.adamUpdate!(s.p, flat(s.g), s.m, s.v, null, h);
      },
    };
    for (const f of Object.values(fns)) f();
    console.log(await interleavedAB(`adam ${n} elements, ${reps} calls per sample`, fns, rounds, 3));
  }
}

for (const name of only) {
  if (name === "adam-calls") {
    await adamCalls(r.backend);
    continue;
  }
  const w = workload(name);
  const fns: Record<string, StepFn> = {};
  let jitted: ReturnType<typeof jitAdamStep> | null = null;
  for (const v of variants) {
    if (v === "eager") fns[v] = eagerStep(w.model(), w.x, w.y);
    else if (v === "jit") {
      jitted = jitAdamStep(w.model(), w.x, w.y, w.classes);
      fns[v] = jitted.run;
    } else if (v === "jit-all-noepilogue") {
      // transposed products without GEMM epilogues: the backend seen without dotFused (its own executor)
      const j = jitAdamStep(w.model(), w.x, w.y, w.classes);
      const noEp = { ...r.backend, dotFused: undefined };
      const prev = setProductRewrites("all");
      const run = () => {
        setBackend(noEp);
        try {
          return j.run();
        } finally {
          setBackend(r.backend);
        }
      };
      run();
      setProductRewrites(prev);
      fns[v] = run;
    } else if (v === "jit-biasact") {
      // ReLU layers' bias and activation as biasAct steps, not their products' epilogues
      const j = jitAdamStep(w.model(), w.x, w.y, w.classes);
      const prev = setBiasReluSplit(false);
      j.run();
      setBiasReluSplit(prev);
      fns[v] = j.run;
    } else if (v === "jit-epmulti") {
      // GEMM epilogues with several outputs (optimizer updates run on the weight gradients' blocks): the
      // executor is built at the first call
      const j = jitAdamStep(w.model(), w.x, w.y, w.classes);
      const prev = setEpilogueOutputs(8);
      j.run();
      setEpilogueOutputs(prev);
      fns[v] = j.run;
    } else if (v === "jit-norewrite" || v === "jit-sums" || v === "jit-all") {
      // the executor is built at the first call: built with other product rewrites than the default
      const j = jitAdamStep(w.model(), w.x, w.y, w.classes);
      const prev = setProductRewrites(v === "jit-sums" ? "sums" : v === "jit-all" ? "all" : "none");
      j.run();
      setProductRewrites(prev);
      fns[v] = j.run;
    }
  }
  const warm = name === "transformer" ? 2 : 5;
  for (const v of variants) for (let i = 0; i < warm; i++) fns[v]();
  if (jitted !== null) {
    const a0 = jitted.step.memoryStats().allocations;
    jitted.run();
    jitted.run();
    const a1 = jitted.step.memoryStats();
    console.log(
      `${name} jit: ${(a1.allocations - a0) / 2} fresh buffers per call in steady state, ${(a1.pooledBytes / 2 ** 20).toFixed(1)} MiB pooled`,
    );
  }
  if (jitted !== null && flag("program")) {
    const prog = jitted.step.executed(...jitted.args());
    const byName = new Map<string, number>();
    for (const e of prog.eqns) byName.set(e.name, (byName.get(e.name) ?? 0) + 1);
    console.log(`${name}: ${prog.eqns.length} equations executed`, Object.fromEntries(byName));
  }
  if (jitted !== null && flag("profile")) {
    const prof: JitProfile = new Map();
    const n = name === "transformer" ? 3 : Number(opt("profile-calls", "20"));
    const t0 = performance.now();
    setJitProfile(prof);
    for (let i = 0; i < n; i++) jitted.run();
    setJitProfile(null);
    const total = (performance.now() - t0) / n;
    const rows = [...prof.entries()].sort((a, b) => b[1].ms - a[1].ms);
    rows.sort((a, b) => b[1].cpuMs - a[1].cpuMs);
    let sum = 0;
    let sumCpu = 0;
    for (const [, x] of rows) {
      sum += x.ms / n;
      sumCpu += x.cpuMs / n;
    }
    console.log(
      `${name} jit profile: ${total.toFixed(2)} ms per call, steps ${sum.toFixed(2)} ms wall, ${sumCpu.toFixed(2)} ms cpu`,
    );
    let sumBest = 0;
    for (const [, x] of rows) for (const b of x.best.values()) sumBest += b;
    console.log(
      `  (best: per step, its shortest wall time over the ${n} calls, summed by kind: ${sumBest.toFixed(2)} ms per call in all)`,
    );
    for (const [k, x] of rows.slice(0, 25)) {
      let best = 0;
      for (const b of x.best.values()) best += b;
      console.log(
        `  ${k.padEnd(24)} cpu ${(x.cpuMs / n).toFixed(3).padStart(8)} ms  wall ${(x.ms / n).toFixed(3).padStart(8)} ms  best ${best.toFixed(3).padStart(8)} ms  ${(x.n / n).toFixed(0).padStart(5)}x`,
      );
    }
  }
  if (variants.length === 0 || rounds === 0) continue;
  const n = name === "transformer" ? Math.min(rounds, 7) : rounds;
  const picked: Record<string, () => unknown> = {};
  for (const v of variants) picked[v] = fns[v];
  const calls = flag("calls") ? timeCalls(getBackend()) : null;
  console.log(await interleavedAB(name, picked, n));
  calls?.report();
}

/**
 * `--calls`: while the A/B part runs, time every `fused` and `adamUpdate` call of the backend (wall time per
 * call, by kernel and element count) and print their 25th percentile and median: the optimizer's update in
 * jitted and eager steps, measured inside the steps.
 */
function timeCalls(be: Backend): { report: () => void } {
  const times = new Map<string, number[]>();
  const record = (key: string, t0: number) => {
    const t = performance.now() - t0;
    const xs = times.get(key);
    if (xs === undefined) times.set(key, [t]);
    else xs.push(t);
  };
  const b = be as { -readonly [K in keyof Backend]: Backend[K] };
  const fused = b.fused;
  const adam = b.adamUpdate;
  if (fused !== undefined) {
    b.fused = (prog, inputs, outs) => {
      const t0 = performance.now();
      fused.call(be, prog, inputs, outs);
      record(`fused ${prog.outputs.length} out ${outs[0].length}`, t0);
    };
  }
  if (adam !== undefined) {
    b.adamUpdate = (p, g, m, v, vmax, h) => {
      const t0 = performance.now();
      adam.call(be, p, g, m, v, vmax, h);
      record(`adamUpdate ${p.length}`, t0);
    };
  }
  return {
    report() {
      b.fused = fused;
      b.adamUpdate = adam;
      const q = (xs: number[], f: number) => [...xs].sort((x, y) => x - y)[Math.floor(f * (xs.length - 1))];
      for (const [k, xs] of [...times.entries()].sort()) {
        console.log(
          `  ${k.padEnd(28)} ${String(xs.length).padStart(6)} calls  p25 ${(q(xs, 0.25) * 1000).toFixed(0).padStart(5)} us  median ${(q(xs, 0.5) * 1000).toFixed(0).padStart(5)} us`,
        );
      }
    },
  };
}
