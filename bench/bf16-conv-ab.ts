/**
 * autocast's conv2d under bfloat16: the widened float32 convolution (the casts, then conv2d's float32 kernel on
 * widened operands, its output rounded) against the bfloat16 implicit-GEMM convolution (src/amp-conv.ts, native
 * conv_bf16), alternating call by call in one process (issue 13), on the bench CNN's two convolutions and larger
 * ones, forward alone and forward + backward; then the bench CNN's training step: float32, and under autocast
 * with each route. The report is the
 * median process CPU time and wall time per call of each route and their ratio (new / old). Run pinned to one
 * core, native backend, one thread:
 *
 *   taskset -c 1 npx tsx bench/bf16-conv-ab.ts [--rounds 15]
 */
import { lowConvRoute } from "../src/amp-conv.ts";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { autocast, conv2d, manualSeed, randint, randn, type Tensor } from "../src/index.ts";
import { crossEntropy } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { benchCnn } from "./cnn-model.ts";

const loaded = loadNativeBackend();
if (!("backend" in loaded)) throw new Error(`native backend: ${loaded.error}`);
setBackend(loaded.backend);
setNumThreads(1);
const arg = (name: string, dflt: number) => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : dflt;
};
const rounds = arg("--rounds", 15);
const only = process.argv.includes("--step-only");

type Mode = "never" | "always" | "auto";
const med = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

/**
 * Alternate the variants call by call (`modes[v]` is the route of variant v; `pick(v)`, when given, selects
 * variant v before its calls); returns [cpu ms, wall ms] medians per variant.
 */
function ab(
  run: () => void,
  modes: Mode[],
  inner: number,
  pick?: (v: number) => void,
): { cpu: number; wall: number }[] {
  const cpu: number[][] = modes.map(() => []);
  const wall: number[][] = modes.map(() => []);
  for (let i = 0; i < 2; i++)
    modes.forEach((m, v) => {
      lowConvRoute.mode = m;
      pick?.(v);
      run();
    });
  for (let r = 0; r < rounds; r++) {
    modes.forEach((m, v) => {
      lowConvRoute.mode = m;
      pick?.(v);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < inner; i++) run();
      wall[v].push((performance.now() - t0) / inner);
      const c = process.cpuUsage(c0);
      cpu[v].push((c.user + c.system) / 1000 / inner);
    });
  }
  lowConvRoute.mode = "auto";
  return modes.map((_, v) => ({ cpu: med(cpu[v]), wall: med(wall[v]) }));
}

interface Shape {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  pad: number;
  stride?: number;
  groups?: number;
  bf16In?: boolean;
}
const shapes: Shape[] = [
  { name: "cnn conv1 (f32 data in)", x: [64, 1, 28, 28], w: [32, 1, 5, 5], pad: 2 },
  { name: "cnn conv2 (bf16 in)", x: [64, 32, 14, 14], w: [64, 32, 5, 5], pad: 2, bf16In: true },
  { name: "3x3 64->128 32x32 (bf16 in)", x: [32, 64, 32, 32], w: [128, 64, 3, 3], pad: 1, bf16In: true },
  { name: "3x3 128->256 16x16 (bf16 in)", x: [16, 128, 16, 16], w: [256, 128, 3, 3], pad: 1, bf16In: true },
  { name: "1x1 256->64 14x14 (bf16 in)", x: [32, 256, 14, 14], w: [64, 256, 1, 1], pad: 0, bf16In: true },
  { name: "7x7/2 3->64 64x64 (f32 in)", x: [16, 3, 64, 64], w: [64, 3, 7, 7], pad: 3, stride: 2 },
  { name: "3x3 8->16 28x28 (bf16 in)", x: [64, 8, 28, 28], w: [16, 8, 3, 3], pad: 1, bf16In: true },
  {
    name: "3x3 g4 64->64 28x28 (bf16 in)",
    x: [32, 64, 28, 28],
    w: [64, 16, 3, 3],
    pad: 1,
    groups: 4,
    bf16In: true,
  },
];

const fmt = (r: { cpu: number; wall: number }) => `cpu ${r.cpu.toFixed(2)} wall ${r.wall.toFixed(2)}`;

if (!only) {
  for (const s of shapes) {
    manualSeed(1);
    const xf = randn(s.x);
    const x = s.bf16In ? xf.to("bfloat16") : xf;
    const w = randn(s.w).mul(0.1).requiresGrad_();
    const b = randn([s.w[0]]).requiresGrad_();
    const opts = {
      padding: s.pad,
      stride: s.stride ?? 1,
      groups: s.groups ?? 1,
      activation: "relu" as const,
    };
    const xg = x.detach().requiresGrad_();
    const fwd = () => {
      autocast({ dtype: "bfloat16" }, () => conv2d(x, w, b, opts)).dataSync();
    };
    const both = () => {
      // the input needs a gradient unless it is the data (the first layer)
      const xi = s.bf16In ? xg : x;
      const y: Tensor = autocast({ dtype: "bfloat16" }, () => conv2d(xi, w, b, opts));
      y.sum().backward();
      w.grad = null;
      b.grad = null;
      xg.grad = null;
    };
    const macs =
      s.x[0] * s.w[0] * s.w[1] * s.w[2] * s.w[3] * (s.x[2] / (s.stride ?? 1)) * (s.x[3] / (s.stride ?? 1));
    const inner = Math.max(1, Math.round(2e8 / macs));
    const f = ab(fwd, ["never", "always"], inner);
    const fb = ab(both, ["never", "always"], inner);
    console.log(
      `${s.name}: forward f32 ${fmt(f[0])} | bf16 ${fmt(f[1])} | ratio cpu ${(f[1].cpu / f[0].cpu).toFixed(2)} wall ${(f[1].wall / f[0].wall).toFixed(2)}`,
    );
    console.log(
      `${s.name}: fwd+bwd f32 ${fmt(fb[0])} | bf16 ${fmt(fb[1])} | ratio cpu ${(fb[1].cpu / fb[0].cpu).toFixed(2)} wall ${(fb[1].wall / fb[0].wall).toFixed(2)}`,
    );
  }
}

// the bench CNN step (bench/peers/chainrule.ts cnnStep) under bfloat16 autocast: the float32 step, and the
// autocast step with each conv route (never: both convolutions widened; auto: the rule; always: both GEMM)
manualSeed(2);
const model = benchCnn();
const opt = new Adam(model.parameters(), { lr: 1e-3 });
const x = randn([64, 1, 28, 28]);
const y = randint(0, 10, [64], { dtype: "int32" });
let low = true;
const step = () => {
  opt.zeroGrad();
  const loss = () => crossEntropy(model.call(x) as Tensor, y);
  const l = low ? autocast({ dtype: "bfloat16" }, loss) : loss();
  l.backward();
  opt.step();
  l.item();
};
// four variants interleaved call by call: the float32 step ("f32" runs with autocast off), then autocast with
// both convolutions widened (the old route), the rule, and both on the bfloat16 convolution
const variants = ["f32", "never", "auto", "always"] as const;
let at = 0;
const r = ab(
  () => {
    const v = variants[at];
    low = v !== "f32";
    lowConvRoute.mode = v === "f32" ? "auto" : v;
    step();
  },
  variants.map(() => "auto" as Mode),
  2,
  (i) => {
    at = i;
  },
);
console.log(`cnn step float32 ${fmt(r[0])}`);
console.log(
  `cnn step bf16 autocast, conv widened (old) ${fmt(r[1])}  ratio /float32 cpu ${(r[1].cpu / r[0].cpu).toFixed(2)}`,
);
console.log(
  `cnn step bf16 autocast, conv rule (new)  ${fmt(r[2])}  ratio new/old cpu ${(r[2].cpu / r[1].cpu).toFixed(2)}, /float32 cpu ${(r[2].cpu / r[0].cpu).toFixed(2)}`,
);
console.log(
  `cnn step bf16 autocast, conv all bf16    ${fmt(r[3])}  ratio /old cpu ${(r[3].cpu / r[1].cpu).toFixed(2)}, /float32 cpu ${(r[3].cpu / r[0].cpu).toFixed(2)}`,
);
