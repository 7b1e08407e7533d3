/**
 * The bench's MLP 784-512-256-10 training step (batch 128, Adam, nn.Sequential of Linear and ReLU) in float32
 * and under bfloat16 autocast, alternating in one process (issue 13): on a shared machine, alternating spreads
 * the noise over both; the report is the median of each step's process CPU time and wall time and their ratio.
 * Run pinned to one core, native backend, one thread:
 *
 *   taskset -c 1 npx tsx bench/bf16-ab.ts [--rounds 20]
 */
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { autocast, manualSeed, randint, randn } from "../src/index.ts";
import { crossEntropy, Linear, ReLU, Sequential } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";

const loaded = loadNativeBackend();
if (!("backend" in loaded)) throw new Error(`native backend: ${loaded.error}`);
setBackend(loaded.backend);
setNumThreads(1);
const at = process.argv.indexOf("--rounds");
const rounds = at >= 0 ? Number(process.argv[at + 1]) : 20;

function step(bf16: boolean): () => number {
  manualSeed(1);
  const model = new Sequential(
    new Linear(784, 512),
    new ReLU(),
    new Linear(512, 256),
    new ReLU(),
    new Linear(256, 10),
  );
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = randn([128, 784]);
  const y = randint(0, 10, [128], { dtype: "int32" });
  const loss = () => crossEntropy(model.call(x), y);
  return () => {
    opt.zeroGrad();
    const l = bf16 ? autocast({ dtype: "bfloat16" }, loss) : loss();
    l.backward();
    opt.step();
    return l.item();
  };
}

const variants = [step(false), step(true)];
const inner = 10;
const cpu: number[][] = [[], []];
const wall: number[][] = [[], []];
for (let i = 0; i < 5; i++) for (const f of variants) f();
for (let r = 0; r < rounds; r++) {
  variants.forEach((f, v) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) f();
    wall[v].push((performance.now() - t0) / inner);
    const c = process.cpuUsage(c0);
    cpu[v].push((c.user + c.system) / 1000 / inner);
  });
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
const fmt = (v: number) => `cpu ${med(cpu[v]).toFixed(2)} ms, wall ${med(wall[v]).toFixed(2)} ms`;
console.log(`float32 step: ${fmt(0)}`);
console.log(`bfloat16 autocast step: ${fmt(1)}`);
const ratio = (a: number[][]) => (med(a[1]) / med(a[0])).toFixed(3);
console.log(`bfloat16 / float32: cpu ${ratio(cpu)}, wall ${ratio(wall)}`);
