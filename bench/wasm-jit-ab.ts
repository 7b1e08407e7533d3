/**
 * The MLP training step (784-512-256-10, batch 128, cross-entropy, Adam) on wasm, measured A/B/C/D
 * interleaved in one process: chainrule eager, chainrule jit with generated fused kernels (codegen.ts), chainrule
 * jit with the tile interpreter (the previous fused path), and jax-js jit on its wasm device. Run it pinned to
 * one core; it prints medians of wall and process CPU time per step and the ratios.
 *
 * Then the 10-op elementwise chain on 1M float32 elements, the same way: eager, jit generated, jit
 * interpreter.
 *
 *   taskset -c 1 node --import tsx bench/wasm-jit-ab.ts [--rounds 40] [--no-jax]
 */
import { performance } from "node:perf_hooks";
import { setFusedCodegen } from "../src/backend/wasm/fused.ts";
import { jit, randn, type Tensor } from "../src/index.ts";
import type { Step } from "./harness.ts";
import { prng } from "./harness.ts";
import { isSkip, type Peer } from "./peers/types.ts";
import { type LinearInit, MLP_BATCH, MLP_LAYERS, type MlpData } from "./workloads.ts";

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] ?? 40) || 40;

function mlpData(): MlpData {
  const r = prng(7);
  const layers: LinearInit[] = [];
  for (let i = 0; i + 1 < MLP_LAYERS.length; i++) {
    const [inF, outF] = [MLP_LAYERS[i], MLP_LAYERS[i + 1]];
    const bound = 1 / Math.sqrt(inF);
    const w = new Float32Array(inF * outF).map(() => (2 * r() - 1) * bound);
    const b = new Float32Array(outF).map(() => (2 * r() - 1) * bound);
    layers.push({ w, b, in: inF, out: outF });
  }
  const x = new Float32Array(MLP_BATCH * 784).map(() => r());
  const y = new Int32Array(MLP_BATCH).map(() => Math.floor(r() * 10));
  return { x, y, batch: MLP_BATCH, layers };
}

async function stepOf(peer: Peer, d: MlpData): Promise<Step> {
  const s = peer.mlpStep!(d);
  if (isSkip(s)) throw new Error(s.skip);
  return s;
}

async function main() {
  const d = mlpData();
  const cr = await import("./peers/chainrule.ts");
  const eager = await cr.create("wasm-1t", { full: false, quick: false });
  const jitted = await cr.create("wasm-1t-jit", { full: false, quick: false });
  if ("unavailable" in eager || "unavailable" in jitted) throw new Error("wasm backend unavailable");
  const cases: { name: string; step: Step; before?: () => void }[] = [
    { name: "cr wasm eager", step: await stepOf(eager.peer, d) },
    {
      name: "cr wasm jit (generated)",
      step: await stepOf(jitted.peer, d),
      before: () => setFusedCodegen(true),
    },
    {
      name: "cr wasm jit (interpreter)",
      step: await stepOf(jitted.peer, d),
      before: () => setFusedCodegen(false),
    },
  ];
  if (!args.includes("--no-jax")) {
    const jx = await import("./peers/jaxjs.ts");
    const j = await jx.create("jit", { full: false, quick: false });
    if ("unavailable" in j) console.log(`jax-js: ${j.unavailable}`);
    else cases.push({ name: "jax-js wasm jit", step: await stepOf(j.peer, d) });
  }
  await measure("MLP step", cases);
  // the 10-op chain (the backend the chainrule peers selected: wasm, one thread)
  const chain = (v: Tensor) =>
    v.mul(1.5).add(0.5).tanh().mul(v).sub(0.25).exp().mul(0.1).add(v).sigmoid().mul(2);
  const x = randn([1 << 20]);
  const jc = jit(chain);
  await measure("10-op chain on 1M float32", [
    { name: "cr wasm eager", step: () => chain(x).dataSync()[0] },
    { name: "cr wasm jit (generated)", step: () => jc(x).dataSync()[0], before: () => setFusedCodegen(true) },
    {
      name: "cr wasm jit (interpreter)",
      step: () => jc(x).dataSync()[0],
      before: () => setFusedCodegen(false),
    },
  ]);
}

/** Run the cases interleaved (after a warm-up) and print medians of wall and CPU time, ratios to case 1. */
async function measure(title: string, cases: { name: string; step: Step; before?: () => void }[]) {
  const wall = cases.map(() => [] as number[]);
  const cpu = cases.map(() => [] as number[]);
  const last = cases.map(() => 0);
  // warm-up (traces, compiles, tier-up; the first ~10 calls of a new jitted function run slower)
  for (let w = 0; w < 15; w++) {
    for (const c of cases) {
      c.before?.();
      await c.step();
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < cases.length; k++) {
      const c = cases[k];
      c.before?.();
      const u0 = process.cpuUsage();
      const t0 = performance.now();
      last[k] = await c.step();
      const t1 = performance.now();
      const u = process.cpuUsage(u0);
      wall[k].push(t1 - t0);
      cpu[k].push((u.user + u.system) / 1000);
    }
  }
  setFusedCodegen(true);
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const base = med(cpu[1]);
  const baseW = med(wall[1]);
  console.log(
    `${title}, ${rounds} interleaved rounds (medians per call; ratios: other / cr wasm jit generated)`,
  );
  cases.forEach((c, k) => {
    const w = med(wall[k]);
    const u = med(cpu[k]);
    console.log(
      `${c.name.padEnd(28)} wall ${w.toFixed(2)} ms (${(w / baseW).toFixed(3)}x)  cpu ${u.toFixed(2)} ms (${(
        u / base
      ).toFixed(3)}x)  last loss ${last[k].toFixed(4)}`,
    );
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
