/**
 * Relative timings of attention on the wasm backend, forward + backward (float32, batch 1, 8 heads, E = 64,
 * L = S = 128 and 512, not causal): the fused flash-style kernels (wasm/assembly/attention.ts) against
 *   - composed: _attention (matmul, softmax, matmul: the [L, S] scores materialised) on the same wasm backend;
 *   - old: the fused primitive running the js reference kernels (what the wasm backend did before it had its own
 *     attention kernels).
 * The variants run interleaved in one process, round after round, and the script prints the median of each and
 * the median per-round ratios, which stay meaningful on a loaded machine where absolute times do not. The
 * wasm variants run on a one-thread backend and on one with the worker pool (the fused kernels split the heads
 * over it, the composition its GEMMs).
 *
 * Run: node --import tsx bench/attention-wasm.ts   (add --experimental-wasm-relaxed-simd before --import for FMA)
 */
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { getBackend, setBackend } from "../src/backend/registry.ts";
import { createWasmBackend } from "../src/backend/wasm/index.ts";
import { grad, manualSeed, nn, randn, type Tensor } from "../src/index.ts";
import { _attention } from "../src/nn/attention.ts";

const W1 = createWasmBackend({ threads: 1 });
const WP = createWasmBackend();
/** The wasm backend with the js attention kernels (the state before the wasm kernels existed). */
const OLD: Backend = {
  ...W1,
  attention: jsBackend.attention,
  attentionBackward: jsBackend.attentionBackward,
};

function on<T>(b: Backend, f: () => T): T {
  const prev = getBackend();
  setBackend(b);
  try {
    return f();
  } finally {
    setBackend(prev);
  }
}

const fused = (q: Tensor, k: Tensor, v: Tensor) => nn.scaledDotProductAttention(q, k, v);
const composed = (q: Tensor, k: Tensor, v: Tensor) => _attention("bench", q, k, v, {}, "keep")[0];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

for (const len of [128, 512]) {
  manualSeed(1);
  const [heads, dim] = [8, 64];
  const q = randn([1, heads, len, dim]);
  const k = randn([1, heads, len, dim]);
  const v = randn([1, heads, len, dim]);
  const w = randn([1, heads, len, dim]);
  const step = (attn: typeof fused) => () => {
    const g = grad((a: Tensor, b: Tensor, c: Tensor) => attn(a, b, c).mul(w).sum(), { argnums: [0, 1, 2] })(
      q,
      k,
      v,
    ) as Tensor[];
    g[0].dataSync();
  };
  const variants: [string, Backend, () => void][] = [
    ["wasm fused (1 thread)", W1, step(fused)],
    ["wasm composed (1 thread)", W1, step(composed)],
    ["wasm fused (pool)", WP, step(fused)],
    ["wasm composed (pool)", WP, step(composed)],
    ["old: js kernels", OLD, step(fused)],
  ];
  const reps = len === 128 ? 5 : 1;
  const times = variants.map(() => [] as number[]);
  for (const [, b, f] of variants) on(b, f); // warm-up
  const rounds = len === 128 ? 9 : 5;
  for (let r = 0; r < rounds; r++) {
    for (const [i, [, b, f]] of variants.entries()) {
      on(b, () => {
        const t0 = performance.now();
        for (let t = 0; t < reps; t++) f();
        times[i].push((performance.now() - t0) / reps);
      });
    }
  }
  console.log(
    `L = S = ${len}, ${heads} heads, E = ${dim}, float32, forward + backward (relaxed SIMD: ${W1.relaxedSimd})`,
  );
  for (const [i, [name]] of variants.entries()) {
    const ratio = median(times[i].map((t, r) => t / times[0][r]));
    console.log(
      `  ${name.padEnd(26)} median ${median(times[i]).toFixed(1).padStart(8)} ms   / fused: ${ratio.toFixed(2)}`,
    );
  }
}
