/**
 * Shared by bench/gemm-native.ts and bench/conv-native.ts: GFLOP/s by wall and CPU time, and the FMA peak of the
 * core this process runs on for their "fraction of peak" columns. The peak: compiles bench/fma-peak.c once (cc -O2) and runs it, inheriting this process's CPU
 * affinity (run the benchmark under `taskset -c N`). With clock "cpu" the program times with the process CPU
 * clock, which other processes sharing the core change far less than the wall clock.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend, View } from "../src/backend/backend.ts";
import type { NativeAddon } from "../src/backend/native/addon.ts";
import { createNativeBackend } from "../src/backend/native/backend.ts";

let exe: string | null | undefined;

function build(): string | null {
  if (exe !== undefined) return exe;
  const src = fileURLToPath(new URL("./fma-peak.c", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "cr-peak-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "fma-peak");
  exe = spawnSync("cc", ["-O2", src, "-o", out], { encoding: "utf8" }).status === 0 ? out : null;
  return exe;
}

/**
 * GFLOP/s float32 of one core per vector width the CPU has ({ avx512, avx2 }), or null without a C compiler.
 * `forIsa` picks the figure a kernel build can reach: the width of its vectors (the baseline SSE build: half the
 * AVX2 figure, and it has no FMA, so even that is out of its reach).
 */
export function fmaPeak(clock: "wall" | "cpu" = "cpu"): Record<string, number> | null {
  const path = build();
  if (path === null) return null;
  const r = spawnSync(path, [], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, FMA_PEAK_CLOCK: clock },
  });
  if (r.status !== 0) return null;
  const widths: Record<string, number> = {};
  for (const line of r.stdout.trim().split("\n")) {
    const [width, g] = line.split(" ");
    if (Number.isFinite(Number(g))) widths[width] = Number(g);
  }
  return Object.keys(widths).length > 0 ? widths : null;
}

/** The peak of `widths` (from fmaPeak) that kernels of instruction set `isa` can reach. */
export function peakForIsa(widths: Record<string, number> | null, isa: string): number | undefined {
  if (!widths) return undefined;
  if (isa === "base") return widths.avx2 !== undefined ? widths.avx2 / 2 : undefined;
  return widths[isa] ?? Math.max(...Object.values(widths));
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** Median GFLOP/s of `run` (which does `flops` flops) by wall time and by CPU time / threads. */
export function rates(run: () => void, flops: number, threads: number, samples: number) {
  // warm-up: at least 3 calls and 0.2 s
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) run();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < samples; r++) {
    let reps = 0;
    const c0 = process.cpuUsage();
    const s = performance.now();
    let e = s;
    while (e - s < 50) {
      run();
      reps++;
      e = performance.now();
    }
    const c = process.cpuUsage(c0);
    wall.push((flops * reps) / ((e - s) / 1e3) / 1e9);
    cpu.push((flops * reps) / ((c.user + c.system) / 1e6 / threads) / 1e9);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

/** GFLOP/s by CPU time / threads of `go` (which does `flops` flops) over ~`ms` of back-to-back calls, after one call. */
export function cpuRateSample(go: () => void, flops: number, threads: number, ms = 40): number {
  go(); // the first call after a switch warms its own buffers
  let reps = 0;
  const c0 = process.cpuUsage();
  const s = performance.now();
  while (performance.now() - s < ms) {
    go();
    reps++;
  }
  const c = process.cpuUsage(c0);
  return (flops * reps) / ((c.user + c.system) / 1e6 / threads) / 1e9;
}

/**
 * Another build of the addon for `--ab-addon PATH` (e.g. a copy of main's), set to the instruction set `isa`
 * of the loaded one; exits with a message naming `tool` when it cannot run it.
 */
export function otherAddon(
  tool: string,
  path: string,
  isa: string,
): { addon: NativeAddon; backend: Backend } {
  const addon = createRequire(import.meta.url)(resolve(path)) as NativeAddon;
  if (!addon.setIsa(isa)) {
    console.error(`${tool}: ${path} cannot run the ${isa} kernels`);
    process.exit(1);
  }
  return { addon, backend: createNativeBackend(addon) };
}

/** A contiguous float32 view of `shape` allocated by `b`, filled with values in [-0.5, 0.5) from an LCG seeded by `seed`. */
export function seededView(b: Backend, shape: number[], seed: number): View {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = b.alloc("float32", n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((x, y) => x * y, 1));
  return { data, shape, strides, offset: 0 };
}
