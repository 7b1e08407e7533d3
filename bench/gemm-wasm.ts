/**
 * float32 GEMM throughput of the wasm backend against the machine's wasm ceiling.
 *
 * 1. The FMA-free SIMD128 peak: a loop of independent f32x4 multiply + add pairs (12 accumulators, no memory
 *    traffic), compiled here with AssemblyScript (a devDependency). Without relaxed SIMD (Node 20 has it only
 *    behind --experimental-wasm-relaxed-simd) a multiply-add is two instructions, so this is the ceiling of
 *    any float32 GEMM in wasm on this runtime.
 * 2. Square products C = A B, n = 128, 256, 512: the module variant the runtime picked on one thread and on the
 *    worker pool, the plain-SIMD variant if relaxed SIMD was picked, and the js backend (n <= 256).
 * 3. The products of the bench's MLP training step (784-512-256-10, batch 128), with the operand layouts the
 *    jitted step hands to `dot` (x W^T reads W transposed, weight gradients read dz transposed), on one thread:
 *    per product and in all, as GFLOP/s and as a share of the peak.
 *
 * Figures are medians over several samples of process CPU time (less sensitive to other load than wall time;
 * wall time is printed beside it). Run it pinned and state the load:
 *
 *   taskset -c 1 node --import tsx bench/gemm-wasm.ts [--only peak,square,mlp]
 *   (add --experimental-wasm-relaxed-simd before --import for the FMA variant)
 */
import asc from "assemblyscript/asc";
import type { Backend, View } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { createWasmBackend, loadWasmBackend } from "../src/backend/wasm/index.ts";

const args = process.argv.slice(2);
const only = (args[args.indexOf("--only") + 1] ?? "peak,square,mlp").split(",");

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** Median GFLOP/s by CPU time and by wall time of `fn` (doing `flops` each call) over `runs` samples. */
function rate(fn: () => void, flops: number, runs: number): { cpu: number; wall: number } {
  // warm-up: at least 3 calls and 0.2 s (tier-up of the wasm code)
  const t0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - t0 < 200; i++) fn();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let r = 0; r < runs; r++) {
    // repeat small products so that one sample lasts at least ~30 ms
    let reps = 0;
    const c0 = cpuMs();
    const w0 = performance.now();
    do {
      fn();
      reps++;
    } while (performance.now() - w0 < 30);
    const w = performance.now() - w0;
    const c = cpuMs() - c0;
    cpu.push((flops * reps) / (Math.max(c, 1e-3) / 1000) / 1e9);
    wall.push((flops * reps) / (w / 1000) / 1e9);
  }
  return { cpu: median(cpu), wall: median(wall) };
}

/** The peak kernel: `iters` rounds of 12 independent f32x4 multiply-adds (96 flops per round). */
const PEAK_SOURCE = `
export function peak(iters: i32): f32 {
  const a = f32x4.splat(0.999);
  const b = f32x4.splat(1e-6);
  let c0 = f32x4.splat(0); let c1 = f32x4.splat(1); let c2 = f32x4.splat(2); let c3 = f32x4.splat(3);
  let c4 = f32x4.splat(4); let c5 = f32x4.splat(5); let c6 = f32x4.splat(6); let c7 = f32x4.splat(7);
  let c8 = f32x4.splat(8); let c9 = f32x4.splat(9); let c10 = f32x4.splat(10); let c11 = f32x4.splat(11);
  for (let i = 0; i < iters; i++) {
    c0 = f32x4.add(c0, f32x4.mul(a, b)); c1 = f32x4.add(c1, f32x4.mul(a, b));
    c2 = f32x4.add(c2, f32x4.mul(a, b)); c3 = f32x4.add(c3, f32x4.mul(a, b));
    c4 = f32x4.add(c4, f32x4.mul(a, b)); c5 = f32x4.add(c5, f32x4.mul(a, b));
    c6 = f32x4.add(c6, f32x4.mul(a, b)); c7 = f32x4.add(c7, f32x4.mul(a, b));
    c8 = f32x4.add(c8, f32x4.mul(a, b)); c9 = f32x4.add(c9, f32x4.mul(a, b));
    c10 = f32x4.add(c10, f32x4.mul(a, b)); c11 = f32x4.add(c11, f32x4.mul(a, b));
  }
  const s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))), 0);
}
`;

/** The FMA-free SIMD128 peak in GFLOP/s (CPU time), or null if the kernel cannot be compiled here. */
async function measurePeak(): Promise<{ cpu: number; wall: number } | null> {
  const r = await asc.compileString(PEAK_SOURCE, {
    optimizeLevel: 3,
    runtime: "stub",
    noAssert: true,
    enable: ["simd"],
  });
  if (r.error || !r.binary) {
    console.log(`peak kernel: AssemblyScript failed: ${r.error?.message ?? "no binary"}`);
    return null;
  }
  const bytes = new Uint8Array(r.binary); // (a copy over a plain ArrayBuffer)
  const { instance } = await WebAssembly.instantiate(bytes, { env: { abort: () => {} } });
  const peak = instance.exports.peak as (n: number) => number;
  const iters = 200_000;
  return rate(() => peak(iters), iters * 96, 9);
}

function matrix(b: Backend, rows: number, cols: number, seed: number): Float32Array {
  const data = b.alloc("float32", rows * cols) as Float32Array;
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return data;
}

/** A [rows, cols] view of fresh data, row-major or (transposed) column-major. */
function operand(b: Backend, rows: number, cols: number, transposed: boolean, seed: number): View {
  const data = matrix(b, rows, cols, seed);
  return { data, shape: [rows, cols], strides: transposed ? [1, rows] : [cols, 1], offset: 0 };
}

/** GFLOP/s of `b.dot` for [m, k] x [k, n] with the given operand layouts. */
function gemmRate(b: Backend, m: number, k: number, n: number, ta = false, tb = false, runs = 7) {
  const a = operand(b, m, k, ta, 1);
  const bb = operand(b, k, n, tb, 2);
  const out = b.alloc("float32", m * n);
  return rate(() => b.dot(a, bb, out), 2 * m * n * k, runs);
}

const fmt = (x: number) => x.toFixed(1).padStart(6);

async function main() {
  const loaded = loadWasmBackend();
  if ("error" in loaded) {
    console.error(loaded.error);
    process.exit(1);
  }
  const one = createWasmBackend({ threads: 1 });
  const simd = one.relaxedSimd ? "relaxed SIMD, FMA" : "SIMD128";
  // lines to print, with the GFLOP/s (cpu) to relate to the peak (null: none); the peak is measured last,
  // because loading the AssemblyScript compiler (binaryen, a large wasm module) keeps V8's background
  // compiler busy for a while, which delays the tier-up of the backend's kernels measured after it
  const out: [string, number | null][] = [];
  if (only.includes("square")) {
    const variants: [string, Backend][] = [[`wasm ${simd}, 1 thread`, one]];
    if (loaded.backend.threads > 1) {
      variants.push([`wasm ${simd}, ${loaded.backend.threads} threads`, loaded.backend]);
    }
    if (one.relaxedSimd) {
      variants.push(["wasm SIMD128 (no FMA), 1 thread", createWasmBackend({ noRelaxed: true, threads: 1 })]);
    }
    variants.push(["js (reference)", jsBackend]);
    out.push(["\nfloat32 GEMM C = A B (n x n), GFLOP/s: medians of 7 samples, cpu (wall)", null]);
    for (const n of [128, 256, 512]) {
      for (const [name, b] of variants) {
        if (b === jsBackend && n > 256) continue; // the reference is slow; one size is enough to compare
        const r = gemmRate(b, n, n, n);
        out.push([
          `n=${n}  ${name.padEnd(34)} ${fmt(r.cpu)} (${fmt(r.wall)})`,
          name.includes("1 thread") ? r.cpu : null,
        ]);
      }
    }
  }
  if (only.includes("mlp")) {
    // [name, m, k, n, A transposed, B transposed]: the eight products of one step (batch 128)
    const shapes: [string, number, number, number, boolean, boolean][] = [
      ["fc1 forward   x W1^T", 128, 784, 512, false, true],
      ["fc2 forward   h1 W2^T", 128, 512, 256, false, true],
      ["fc3 forward   h2 W3^T", 128, 256, 10, false, true],
      ["fc3 backward  dz3 W3", 128, 10, 256, false, false],
      ["fc3 weights   dz3^T h2", 10, 128, 256, true, false],
      ["fc2 backward  dz2 W2", 128, 256, 512, false, false],
      ["fc2 weights   dz2^T h1", 256, 128, 512, true, false],
      ["fc1 weights   dz1^T x", 512, 128, 784, true, false],
    ];
    out.push([
      `\nthe MLP step's products through dot (wasm ${simd}, 1 thread), GFLOP/s cpu (wall), ms cpu:`,
      null,
    ]);
    let ms = 0;
    let flops = 0;
    for (const [name, m, k, n, ta, tb] of shapes) {
      const r = gemmRate(one, m, k, n, ta, tb);
      const f = 2 * m * n * k;
      const t = f / r.cpu / 1e6;
      ms += t;
      flops += f;
      const dims = `[${m}, ${k}] x [${k}, ${n}]`;
      out.push([
        `${name.padEnd(24)} ${dims.padEnd(24)} ${fmt(r.cpu)} (${fmt(r.wall)}) ${t.toFixed(3).padStart(7)} ms`,
        r.cpu,
      ]);
    }
    const all = flops / ms / 1e6;
    out.push([`all ${(flops / 1e6).toFixed(0)} MFLOP in ${ms.toFixed(2)} ms cpu: ${fmt(all)} GFLOP/s`, all]);
  }
  let peak: number | null = null;
  if (only.includes("peak")) {
    const p = await measurePeak();
    if (p !== null) {
      peak = p.cpu;
      console.log(
        `FMA-free SIMD128 peak (f32x4 mul + add, 1 thread): ${fmt(p.cpu)} GFLOP/s cpu (${fmt(p.wall)} wall)`,
      );
    }
  }
  for (const [line, x] of out) {
    const share =
      x === null || peak === null ? "" : `  ${((100 * x) / peak).toFixed(0).padStart(3)}% of peak`;
    console.log(line + share);
  }
  loaded.backend.stopThreads();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
