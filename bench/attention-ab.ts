/**
 * Fused attention against the composed path, interleaved in one process (issue 13): for each sequence length,
 * the forward + backward of bench/workloads.ts's attention row (gradients of sum(attention(q, k, v) * w) with
 * respect to q, k and v; batch and heads as ATTN, E = ATTN.dim, float32, native backend) alternately through
 * nn.scaledDotProductAttention (the sdpa primitive) and through the composition (_attention: softmax(q k^T /
 * sqrt(E)) v with the [L, S] scores materialised). Alternating A and B within one process spreads a shared
 * machine's noise over both; the report is the median of each and the median of the per-round ratios.
 *
 *   npx tsx bench/attention-ab.ts [--lens 128,512,1024] [--rounds 9] [--causal]
 *   npx tsx bench/attention-ab.ts --mem fused|composed [--len 1024] [--steps 3]   (for /usr/bin/time -v)
 */
import { loadNativeBackend } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { grad, manualSeed, nn, randn, type Tensor } from "../src/index.ts";
import { _attention } from "../src/nn/attention.ts";
import { ATTN } from "./workloads.ts";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const loaded = loadNativeBackend();
if (!("backend" in loaded)) throw new Error(`native backend: ${loaded.error}`);
setBackend(loaded.backend);
const causal = process.argv.includes("--causal");

function step(len: number, fused: boolean): () => number {
  manualSeed(13);
  const shape = [ATTN.batch, ATTN.heads, len, ATTN.dim];
  const [q, k, v, w] = [0, 1, 2, 3].map(() => randn(shape));
  const attn = fused
    ? (a: Tensor, b: Tensor, c: Tensor) => nn.scaledDotProductAttention(a, b, c, { isCausal: causal })
    : (a: Tensor, b: Tensor, c: Tensor) => _attention("attention", a, b, c, { isCausal: causal }, "keep")[0];
  const g = grad((a: Tensor, b: Tensor, c: Tensor) => attn(a, b, c).mul(w).sum(), { argnums: [0, 1, 2] });
  return () => (g(q, k, v) as Tensor[])[0].index(0, 0, 0, 0).item();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function time(f: () => number): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}

const mem = arg("mem", "");
if (mem !== "") {
  const f = step(Number(arg("len", "1024")), mem === "fused");
  for (let i = 0; i < Number(arg("steps", "3")); i++) f();
  console.log(
    `${mem} L=${arg("len", "1024")}: done, rss now ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
} else {
  const rounds = Number(arg("rounds", "9"));
  console.log(
    `batch ${ATTN.batch}, heads ${ATTN.heads}, E ${ATTN.dim}, float32, forward + backward${causal ? ", causal" : ""}`,
  );
  for (const len of arg("lens", "128,512,1024").split(",").map(Number)) {
    const f = step(len, true);
    const c = step(len, false);
    f();
    c();
    const tf: number[] = [];
    const tc: number[] = [];
    const ratio: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const a = time(f);
      const b = time(c);
      tf.push(a);
      tc.push(b);
      ratio.push(a / b);
    }
    console.log(
      `L=${len}: fused ${median(tf).toFixed(1)} ms (min ${Math.min(...tf).toFixed(1)}), composed ${median(tc).toFixed(1)} ms (min ${Math.min(...tc).toFixed(1)}), fused/composed median ratio ${median(ratio).toFixed(3)}`,
    );
  }
}
