/**
 * The bfloat16 GEMM kernel (native/src/kernels/half.cc, gemm_bf16) on its AMX path and on its AVX512_BF16
 * vdpbf16ps path, alternating (setNativeAmx) so that the noise of a shared machine falls on both: GFLOP/s of
 * n x n x n products from the median CPU time per call (one thread) or wall time (more threads), and from the
 * best sample. bfloat16 operands and float32 output by default; --out16 a bfloat16 output, --f32 float32 operands
 * (rounded while packed); --only amx|vdpbf16ps runs one path (for a profiler). Run pinned:
 *
 *   taskset -c 0 npx tsx bench/amx-gemm.ts [--threads 1] [--sizes 256,1024] [--rounds 7] [--f32] [--out16] [--only amx]
 */
import { halfKernelsOf } from "../src/backend/half.ts";
import { loadNativeBackend, nativeInfo, setNativeAmx, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { BFloat16Bits } from "../src/dtype.ts";
import { randn, type Tensor } from "../src/node.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const loaded = loadNativeBackend();
if (!("backend" in loaded)) throw new Error(`native backend: ${loaded.error}`);
setBackend(loaded.backend);
const threads = Number(arg("--threads", "1"));
setNumThreads(threads);
const sizes = arg("--sizes", "256,1024").split(",").map(Number);
const rounds = Number(arg("--rounds", "7"));
const f32 = process.argv.includes("--f32");
const out16 = process.argv.includes("--out16");
const half = halfKernelsOf("native");
if (half?.gemmBF16 === undefined || !half.gemmBF16Ready!()) throw new Error("no native bfloat16 GEMM here");
const hasAmx = setNativeAmx(true);
console.log(
  JSON.stringify({ ...nativeInfo(), amxAvailable: hasAmx, operands: f32 ? "float32" : "bfloat16" }),
);
const view = (t: Tensor) => ({ data: t._data!, shape: t.shape, strides: t._strides, offset: t._offset });
const median = (v: number[]) => [...v].sort((p, q) => p - q)[v.length >> 1];

for (const n of sizes) {
  const a = f32 ? randn([n, n]) : randn([n, n]).to("bfloat16");
  const b = f32 ? randn([n, n]) : randn([n, n]).to("bfloat16");
  const out = out16 ? new BFloat16Bits(n * n) : new Float32Array(n * n);
  const flop = 2 * n * n * n;
  // calls per sample: about 10 ms of work at 500 GFLOP/s
  const reps = Math.max(1, Math.round(5e9 / flop));
  const only = arg("--only", "");
  const modes = (hasAmx ? [true, false] : [false]).filter(
    (m) => only === "" || only === (m ? "amx" : "vdpbf16ps"),
  );
  const times = new Map<boolean, number[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const m of modes) {
      setNativeAmx(m);
      half.gemmBF16(view(a), view(b), out, {}); // warm the scratch buffers
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) half.gemmBF16(view(a), view(b), out, {});
      const wall = (performance.now() - t0) / 1e3;
      const cu = process.cpuUsage(c0);
      const cpu = (cu.user + cu.system) / 1e6;
      times.get(m)!.push((threads === 1 ? cpu : wall) / reps);
    }
  }
  const row: Record<string, number | string> = { n, threads, clock: threads === 1 ? "cpu" : "wall" };
  for (const m of modes) {
    const name = m ? "amx" : "vdpbf16ps";
    row[name] = Math.round(flop / median(times.get(m)!) / 1e9);
    row[`${name}Best`] = Math.round(flop / Math.min(...times.get(m)!) / 1e9);
  }
  console.log(JSON.stringify(row));
}
setNativeAmx(true);
