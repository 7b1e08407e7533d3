/**
 * jit's fusion measured: per MLP training step (784-512-256-10 MLP, batch 128, cross-entropy, Adam: one jitted
 * program) and per softmax-cross-entropy, the kernel launches (executor steps) and the bytes of intermediates
 * that fusion keeps out of memory, with and without reduction / epilogue fusion; then timings of the two
 * interleaved in one process (A/B/A/B..., medians and the ratio), and the micro targets against eager.
 *
 *   node --import tsx bench/jit-fusion.ts [--backend native|js|wasm] [--threads 1] [--rounds 15] [--print]
 */
import { performance } from "node:perf_hooks";
import { loadBackend, setBackend } from "../src/backend/registry.ts";
import type { Backend } from "../src/backend/backend.ts";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { Executor } from "../src/core/jit-exec.ts";
import type { Program } from "../src/core/jaxpr.ts";
import { arange, grad, jit, randn, type Tensor, tensor } from "../src/index.ts";

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const backendName = opt("backend", "native");
const rounds = Number(opt("rounds", "15"));
const loaded =
  backendName === "native"
    ? loadNativeBackend()
    : backendName === "wasm"
      ? loadWasmBackend()
      : { backend: loadBackend("js") as Backend };
if ("error" in loaded) throw new Error(loaded.error);
const be: Backend = loaded.backend;
setBackend(be);
if (backendName === "native") setNumThreads(Number(opt("threads", "1")));

type Dict = Record<string, Tensor>;
const B = 128;
const sizes = [784, 512, 256, 10];

function mlpStep() {
  const p: Dict = {};
  for (let i = 0; i < 3; i++) {
    p[`w${i}`] = randn([sizes[i + 1], sizes[i]]).mul(1 / Math.sqrt(sizes[i]));
    p[`b${i}`] = randn([sizes[i + 1]]).mul(0.01);
  }
  const x = randn([B, 784]);
  const y = randn([B]).mul(3).add(5).floor().clamp(0, 9).to("int32");
  const y1h = y
    .unsqueeze(1)
    .eq(arange(10, undefined, 1, { dtype: "int32" }))
    .to("float32");
  const loss = (q: Dict) => {
    let h = x;
    for (let i = 0; i < 3; i++) {
      h = h.matmul(q[`w${i}`].mT).add(q[`b${i}`]);
      if (i < 2) h = h.relu();
    }
    return h.logSoftmax(-1).mul(y1h).sum().neg().div(B);
  };
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const f = (q: Dict, m: Dict, v: Dict, a: Tensor, c: Tensor) => {
    const l = loss(q);
    const g = grad(loss)(q) as Dict;
    const q2: Dict = {};
    const m2: Dict = {};
    const v2: Dict = {};
    for (const k of Object.keys(q)) {
      m2[k] = m[k].mul(b1).add(g[k].mul(1 - b1));
      v2[k] = v[k].mul(b2).add(g[k].square().mul(1 - b2));
      q2[k] = q[k].sub(m2[k].mul(a).div(v2[k].sqrt().mul(c).add(eps)));
    }
    return [l, q2, m2, v2] as const;
  };
  const m: Dict = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.mul(0)]));
  const v: Dict = Object.fromEntries(Object.entries(p).map(([k, t]) => [k, t.mul(0)]));
  return { f, args: [p, m, v, tensor(1e-3), tensor(1.1)] as const };
}

/** Softmax cross-entropy written out (max, exp, sum, log, gather by one-hot), forward and backward. */
function softmaxXent() {
  const logits = randn([B, 1000]);
  const y1h = randn([B])
    .mul(300)
    .add(500)
    .floor()
    .clamp(0, 999)
    .to("int32")
    .unsqueeze(1)
    .eq(arange(1000, undefined, 1, { dtype: "int32" }))
    .to("float32");
  const xent = (z: Tensor) => {
    const m = z.max(1, true);
    const lse = z.sub(m).exp().sum(1, true).log().add(m);
    return z.sub(lse).mul(y1h).sum().neg().div(B);
  };
  const f = (z: Tensor) => [xent(z), grad(xent)(z)] as const;
  return { f, args: [logits] as const };
}

/** Steps, and bytes written to memory by the executor's steps (each step's outputs), for a program. */
function census(p: Program, x: Executor): { steps: number; bytes: number } {
  let bytes = 0;
  const steps = (
    x as unknown as { steps: { outAvals: readonly { shape: readonly number[]; dtype: string }[] }[] }
  ).steps;
  for (const s of steps)
    for (const v of s.outAvals) bytes += v.shape.reduce((a, b) => a * b, 1) * (v.dtype === "float64" ? 8 : 4);
  void p;
  return { steps: x.stepCount, bytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/**
 * Time the functions interleaved: `rounds` rounds, each calling every function `reps` times (the order rotating
 * from round to round); per function the median over rounds of wall ms per call and of process CPU ms per call
 * (user + system: less disturbed by other work on a shared machine than wall time, for one thread).
 */
function interleaveN(fs: (() => void)[], reps: number): { wall: number; cpu: number }[] {
  for (let i = 0; i < 3; i++) for (const f of fs) f();
  const wall: number[][] = fs.map(() => []);
  const cpu: number[][] = fs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let q = 0; q < fs.length; q++) {
      const k = (q + r) % fs.length;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) fs[k]();
      wall[k].push((performance.now() - t0) / reps);
      const c = process.cpuUsage(c0);
      cpu[k].push((c.user + c.system) / 1000 / reps);
    }
  }
  return fs.map((_, k) => ({ wall: median(wall[k]), cpu: median(cpu[k]) }));
}

function interleave(fa: () => void, fb: () => void, reps: number): { a: number; b: number } {
  const [a, b] = interleaveN([fa, fb], reps);
  return { a: a.wall, b: b.wall };
}

/** The backend with jit's new fusion switched off: elementwise chains only (the A side of the A/B). */
const beOld: Backend = { ...be, fusedReduce: false, dotFused: undefined };
/** Reductions fused, epilogues not. */
const beRed: Backend = { ...be, dotFused: undefined };

function report(name: string, f: (...a: never[]) => unknown, a: readonly unknown[], reps: number) {
  const jf = jit(f as (...xs: unknown[]) => unknown);
  const prog = jf.lower(...(a as unknown[]));
  const none = census(prog, new Executor(prog));
  const ew = census(prog, new Executor(prog, { fuse: true }));
  const red = new Executor(prog, { fuse: true, fuseReduce: be.fusedReduce === true });
  const cr = census(prog, red);
  const full = new Executor(prog, {
    fuse: true,
    fuseReduce: be.fusedReduce === true,
    fuseEpilogue: be.dotFused !== undefined,
  });
  const cf = census(prog, full);
  const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
  console.log(`\n${name} (${prog.eqns.length} equations, backend ${be.name})`);
  console.log(
    `  kernel launches: unfused ${none.steps}, elementwise fusion ${ew.steps}, + reductions ${cr.steps}, + GEMM epilogues ${cf.steps}`,
  );
  console.log(
    `  bytes written by the steps: unfused ${kib(none.bytes)}, elementwise ${kib(ew.bytes)}, + reductions ${kib(cr.bytes)}, + epilogues ${kib(cf.bytes)} (the new fusion keeps ${kib(ew.bytes - cf.bytes)} of intermediates out of memory, each also read back once)`,
  );
  if (args.includes("--print")) {
    console.log(String(prog));
    for (const g of full.fusion) {
      if (g.program.reduce !== undefined) console.log("   reducing group:", g.program.key);
      if (g.dot !== undefined) console.log("   GEMM epilogue:", g.program.key);
    }
  }
  const call = () => jf(...(a as unknown[]));
  const on = (b: Backend) => () => {
    setBackend(b);
    call();
  };
  const [t0, t1, t2] = interleaveN([on(beOld), on(beRed), on(be)], reps);
  setBackend(be);
  const fmt = (t: { wall: number; cpu: number }) => `${t.wall.toFixed(3)} ms (cpu ${t.cpu.toFixed(3)} ms)`;
  console.log(`  per call, medians of ${rounds} interleaved rounds of ${reps}:`);
  console.log(`    elementwise fusion only      ${fmt(t0)}`);
  console.log(
    `    + reductions                 ${fmt(t1)}: ${(t0.wall / t1.wall).toFixed(3)}x wall, ${(t0.cpu / t1.cpu).toFixed(3)}x cpu`,
  );
  console.log(
    `    + reductions and epilogues   ${fmt(t2)}: ${(t0.wall / t2.wall).toFixed(3)}x wall, ${(t0.cpu / t2.cpu).toFixed(3)}x cpu`,
  );
}

const mlp = mlpStep();
report("MLP training step (784-512-256-10, batch 128, Adam)", mlp.f as never, mlp.args, 20);
const sx = softmaxXent();
report("softmax cross-entropy forward+backward [128, 1000]", sx.f as never, sx.args, 50);

// the micro targets, interleaved with eager
{
  const g = jit(grad((a: Tensor, b: Tensor, c: Tensor) => a.mul(b).add(c), { argnums: [0, 1, 2] }));
  const ge = grad((a: Tensor, b: Tensor, c: Tensor) => a.mul(b).add(c), { argnums: [0, 1, 2] });
  const [a, b, c] = [tensor(2), tensor(3), tensor(1)];
  const t = interleave(
    () => g(a, b, c),
    () => ge(a, b, c),
    2000,
  );
  console.log(
    `\njitted x*y+z forward+backward: ${(t.a * 1000).toFixed(2)} us per call (eager grad ${(t.b * 1000).toFixed(2)} us; target < 1 us)`,
  );
}
{
  const chain = (v: Tensor) =>
    v.mul(1.5).add(0.5).tanh().mul(v).sub(0.25).exp().mul(0.1).add(v).sigmoid().mul(2);
  const x = randn([1 << 20]);
  const jc = jit(chain);
  const t = interleave(
    () => jc(x),
    () => chain(x),
    5,
  );
  const src = new Float32Array(1 << 20);
  const dst = new Float32Array(1 << 20);
  const tm = interleave(
    () => dst.set(src),
    () => dst.set(src),
    20,
  );
  console.log(
    `10-op chain on 1M float32: jit ${t.a.toFixed(3)} ms, eager ${t.b.toFixed(3)} ms: ${(t.b / t.a).toFixed(2)}x (target >= 3x); a 4 MiB memcpy ${tm.a.toFixed(3)} ms (the jit kernel reads 4 MiB and writes 4 MiB)`,
  );
}
