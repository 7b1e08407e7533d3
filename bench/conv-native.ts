/**
 * conv2d throughput of the native backend, float32: the forward pass and both backward passes (input and weight
 * gradients) for the two convolutions of the benchmark's CNN (bench/workloads.ts `cnn`, batch 64):
 *   conv1  x [64, 1, 28, 28],  w [32, 1, 5, 5],  padding 2
 *   conv2  x [64, 32, 14, 14], w [64, 32, 5, 5], padding 2
 * Each pass does 2 N O OH OW (C/groups) KH KW flops (the input gradient of conv1 is not needed by the CNN's
 * training step but is measured too). Figures as in bench/gemm-native.ts: median GFLOP/s by wall time and by
 * process CPU time / threads, and the cpu figure as a fraction of the FMA peak measured with the same clock.
 *
 * Run pinned: `taskset -c 1 node --import tsx bench/conv-native.ts [--threads 1] [--isa avx2] [--ab]`.
 *
 * `--ab` compares the few-taps kernels (conv_direct.h: forward tiles stored straight into the output, the weight
 * gradient vectorised over positions) with the paths they replace, interleaved in this process: the native
 * code reads CHAINRULE_CONV_SMALL (0: off) at every call, so the two alternate sample by sample, and the table
 * gives the median cpu GFLOP/s of each, its fraction of peak and the ratio new / old. `--ab --cnn` instead times
 * the bench CNN's eager training step (bench/workloads.ts `cnn`: batch 64, Adam) the same way, with
 * CHAINRULE_CONV_SMALL switched between steps. `--ab-env NAME` flips another switch instead, e.g.
 * CHAINRULE_CONV_PREFETCH (the few-taps weight gradient's prefetch of its next dy planes), CHAINRULE_CONV_CHAN (the
 * channel tiles of conv_direct.h, which conv2's forward pass and input gradient run), or
 * `--ab-env poolBeforeRelu` (with `--cnn`: Sequential's Conv2d, ReLU, MaxPool2d run as relu(maxPool(conv))).
 *
 * `--ab-addon PATH` instead compares another build of the addon (e.g. a copy of main's
 * native/build/Release/chainrule_native.node) as "old" with this checkout's as "new", both loaded in this process
 * and set to the same instruction set and thread count, alternating sample by sample like `--ab`.
 *
 * `--breakdown` times every backend call of the bench CNN's eager step (see `breakdown`); `--no-pool-first` runs
 * the CNN's Conv2d, ReLU, MaxPool2d as written instead of as relu(maxPool(conv)).
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Backend, Conv2dParams, View } from "../src/backend/backend.ts";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { loadNativeBackend, nativeInfo, setNativeIsa, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { manualSeed, randint, randn, type Tensor } from "../src/index.ts";
import { sequentialOpts } from "../src/nn/container.ts";
import { crossEntropy } from "../src/nn/index.ts";
import { Adam } from "../src/optim/index.ts";
import { benchCnn } from "./cnn-model.ts";
import { cpuRateSample, fmaPeak, otherAddon, peakForIsa, rates, seededView } from "./native-rates.ts";

const tensor = seededView;

const CONVS = [
  { name: "conv1", x: [64, 1, 28, 28], w: [32, 1, 5, 5], pad: 2 },
  { name: "conv2", x: [64, 32, 14, 14], w: [64, 32, 5, 5], pad: 2 },
] as const;

/** The switch `--ab` flips between 0 (old) and 1 (new), read by the native code at every call. */
let abVar = "CHAINRULE_CONV_SMALL";

/** Switch to the old (0) or new (1) path, or back to the default (undefined). `poolBeforeRelu` is not an
 * environment variable but Sequential's reordering of Conv2d, ReLU, MaxPool2d (sequentialOpts). */
function setMode(mode: "0" | "1" | undefined) {
  if (abVar === "poolBeforeRelu") sequentialOpts.poolBeforeRelu = mode !== "0";
  else if (mode === undefined) delete process.env[abVar];
  else process.env[abVar] = mode;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median cpu GFLOP/s of the old (mode "0": CHAINRULE_CONV_SMALL=0, or `runOld` on the other addon) and the new
 * path, alternating ~40 ms samples.
 */
function abRates(
  run: () => void,
  runOld: (() => void) | undefined,
  flops: number,
  threads: number,
  rounds: number,
): { old: number; new: number } {
  const r: Record<"0" | "1", number[]> = { "0": [], "1": [] };
  for (let i = 0; i < rounds; i++) {
    for (const mode of ["0", "1"] as const) {
      if (!runOld) setMode(mode);
      const go = mode === "0" && runOld ? runOld : run;
      r[mode].push(cpuRateSample(go, flops, threads));
    }
  }
  if (!runOld) setMode(undefined);
  return { old: median(r["0"]), new: median(r["1"]) };
}

/** The bench CNN's eager training step, old and new conv kernels alternating step by step: median ms. */
function cnnAb(threads: number, rounds: number) {
  manualSeed(2);
  const model = benchCnn();
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = randn([64, 1, 28, 28]);
  const y = randint(0, 10, [64], { dtype: "int32" });
  const step = () => {
    opt.zeroGrad();
    const l = crossEntropy(model.call(x) as Tensor, y);
    l.backward();
    opt.step();
    l.item();
  };
  const cpu: Record<"0" | "1", number[]> = { "0": [], "1": [] };
  const wall: Record<"0" | "1", number[]> = { "0": [], "1": [] };
  for (let i = 0; i < rounds + 2; i++) {
    for (const mode of ["0", "1"] as const) {
      setMode(mode);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let k = 0; k < 3; k++) step();
      const c = process.cpuUsage(c0);
      if (i < 2) continue; // warm-up rounds
      wall[mode].push((performance.now() - t0) / 3);
      cpu[mode].push((c.user + c.system) / 1000 / 3 / threads);
    }
  }
  setMode(undefined);
  const f = (m: "0" | "1") => `cpu ${median(cpu[m]).toFixed(2)} ms, wall ${median(wall[m]).toFixed(2)} ms`;
  console.log(
    `cnn step eager ${threads} thread${threads > 1 ? "s" : ""}: old ${f("0")} | new ${f("1")} | new/old cpu ${(median(cpu["1"]) / median(cpu["0"])).toFixed(3)} wall ${(median(wall["1"]) / median(wall["0"])).toFixed(3)}`,
  );
}

/**
 * Per-op breakdown of the bench CNN's eager training step: every backend method wrapped with a timer around
 * the call (so it includes the N-API crossing; process CPU time on one thread, wall time on more), medians per
 * step over `rounds` steps. `alloc` includes the garbage collections V8 runs when a new array buffer pushes its
 * external memory over the limit; the rest of the step (JS autograd and tensor bookkeeping) is the step's time
 * minus the ops' total. Run pinned: `taskset -c 1 node --import tsx bench/conv-native.ts --breakdown --threads 1`.
 */
function breakdown(b: Backend, threads: number, rounds: number) {
  // one thread: process CPU time (far less sensitive to other load than wall time), else wall time
  const clock =
    threads === 1
      ? () => {
          const c = process.cpuUsage();
          return (c.user + c.system) / 1000;
        }
      : () => performance.now();
  const wrapped = Object.create(b) as Record<string, unknown>;
  const acc = new Map<string, number[]>();
  let cur = new Map<string, number>();
  const names = new Set<string>();
  for (let o: object | null = b; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) names.add(k);
  }
  for (const k of names) {
    const f = (b as unknown as Record<string, unknown>)[k];
    if (typeof f !== "function" || k === "constructor") continue;
    wrapped[k] = (...args: unknown[]) => {
      const t0 = clock();
      const r = (f as (...a: unknown[]) => unknown).apply(b, args);
      const dt = clock() - t0;
      // the conv passes and pooling by kind and shape, the rest by name
      let key = k;
      if (k.startsWith("conv2d") || k.startsWith("maxPool2d"))
        key = `${k} ${(args[0] as View).shape.join("x")}`;
      else if (k === "alloc" && (args[1] as number) >= 65536)
        key = `alloc ${args[1]}${args[2] ? " uninit" : ""}`;
      cur.set(key, (cur.get(key) ?? 0) + dt);
      return r;
    };
  }
  setBackend(wrapped as unknown as Backend);
  setNumThreads(threads);
  manualSeed(2);
  const model = benchCnn();
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = randn([64, 1, 28, 28]);
  const y = randint(0, 10, [64], { dtype: "int32" });
  const steps: number[] = [];
  for (let i = 0; i < rounds + 3; i++) {
    cur = new Map();
    const t0 = clock();
    opt.zeroGrad();
    const l = crossEntropy(model.call(x) as Tensor, y);
    l.backward();
    opt.step();
    l.item();
    const dt = clock() - t0;
    if (i < 3) continue;
    steps.push(dt);
    for (const [k, v] of cur) {
      if (!acc.has(k)) acc.set(k, []);
      acc.get(k)?.push(v);
    }
  }
  const rows = [...acc].map(([k, v]) => [k, median(v)] as const).sort((p, q) => q[1] - p[1]);
  const total = rows.reduce((s, r) => s + r[1], 0);
  console.log(
    `cnn step eager, ${threads} thread(s): median step ${median(steps).toFixed(2)} ms, backend ops ${total.toFixed(2)} ms; load ${loadavg()[0].toFixed(2)}`,
  );
  for (const [k, v] of rows) if (v >= 0.02) console.log(`  ${k.padEnd(44)} ${v.toFixed(3).padStart(8)} ms`);
  setBackend(b);
}

function main() {
  const { values } = parseArgs({
    options: {
      isa: { type: "string" },
      threads: { type: "string" },
      ab: { type: "boolean" },
      cnn: { type: "boolean" },
      breakdown: { type: "boolean" },
      "ab-env": { type: "string" },
      "ab-addon": { type: "string" },
      "no-pool-first": { type: "boolean" },
    },
  });
  if (values["ab-env"]) abVar = values["ab-env"];
  const loaded = loadNativeBackend();
  if ("error" in loaded) {
    console.error(loaded.error);
    process.exit(1);
  }
  const b = loaded.backend;
  if (values.isa && !setNativeIsa(values.isa as "avx512" | "avx2" | "base")) {
    console.error(`conv-native: this CPU cannot run the ${values.isa} kernels`);
    process.exit(1);
  }
  const info = nativeInfo();
  // the other build for --ab-addon, on the same instruction set
  let other: { addon: NativeAddon; backend: Backend } | undefined;
  if (values["ab-addon"]) other = otherAddon("conv-native", values["ab-addon"], info.isa);
  const threadCounts = values.threads ? [Number(values.threads)] : info.threads > 1 ? [1, info.threads] : [1];
  const peak = () => peakForIsa(fmaPeak("cpu"), info.isa);
  if (values["no-pool-first"]) sequentialOpts.poolBeforeRelu = false;
  if (values.breakdown) {
    for (const threads of threadCounts) breakdown(b, threads, 30);
    console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
    return;
  }
  if (values.cnn) {
    setBackend(b);
    console.log(
      `native backend (${info.isa} kernels), bench CNN step; load average ${loadavg()[0].toFixed(2)}`,
    );
    for (const threads of threadCounts) {
      setNumThreads(threads);
      cnnAb(threads, 15);
    }
    setNumThreads(0);
    console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
    return;
  }
  console.log(
    `native backend (${info.isa} kernels), conv2d float32 of the CNN bench, batch 64; load average ${loadavg()[0].toFixed(2)}`,
  );
  console.log(
    values.ab || other
      ? "case                                    old cpu GFLOP/s (% peak)   new cpu GFLOP/s (% peak)   new/old"
      : "case                                    wall GFLOP/s   cpu GFLOP/s   % peak (cpu)",
  );
  for (const threads of threadCounts) {
    setNumThreads(threads);
    other?.addon.setNumThreads(threads);
    for (const c of CONVS) {
      const [N, C, H, W] = c.x;
      const [O, , KH, KW] = c.w;
      const OH = H + 2 * c.pad - KH + 1;
      const OW = W + 2 * c.pad - KW + 1;
      const p: Conv2dParams = { stride: [1, 1], padding: [c.pad, c.pad], dilation: [1, 1], groups: 1 };
      const x = tensor(b, [...c.x], 1);
      const w = tensor(b, [...c.w], 2);
      const dy = tensor(b, [N, O, OH, OW], 3);
      const y = b.alloc("float32", N * O * OH * OW);
      const dx = b.alloc("float32", N * C * H * W);
      const dw = b.alloc("float32", O * C * KH * KW);
      const flops = 2 * N * O * OH * OW * C * KH * KW;
      const passesOf = (b: Backend): [string, () => void][] => [
        ["forward", () => b.conv2d(x, w, y, [N, O, OH, OW], p)],
        ["input grad", () => b.conv2dBackInput(dy, w, dx, [...c.x], p)],
        ["weight grad", () => b.conv2dBackWeight(x, dy, dw, [...c.w], p)],
      ];
      const passes = passesOf(b);
      const oldPasses = other ? passesOf(other.backend) : undefined;
      for (const [i, [pass, run]] of passes.entries()) {
        const pk = peak();
        const pct = (g: number) => (pk ? `${((100 * g) / (pk * threads)).toFixed(1)}%` : "-");
        const label = `${c.name} ${pass} ${threads} thread${threads > 1 ? "s" : ""}`.padEnd(39);
        if (values.ab || oldPasses) {
          const r = abRates(run, oldPasses?.[i][1], flops, threads, 15);
          console.log(
            `${label} ${`${r.old.toFixed(1)} (${pct(r.old)})`.padStart(24)} ${`${r.new.toFixed(1)} (${pct(r.new)})`.padStart(26)} ${(r.new / r.old).toFixed(2).padStart(9)}`,
          );
          continue;
        }
        const r = rates(run, flops, threads, 5);
        const frac = pk ? `${((100 * r.cpu) / (pk * threads)).toFixed(1)}%` : "-";
        console.log(
          `${`${c.name} ${pass} ${threads} thread${threads > 1 ? "s" : ""}`.padEnd(39)} ${r.wall
            .toFixed(1)
            .padStart(12)} ${r.cpu.toFixed(1).padStart(13)} ${frac.padStart(14)}`,
        );
      }
    }
  }
  setNumThreads(0);
  console.log(`load average after: ${loadavg()[0].toFixed(2)}`);
}

main();
