/**
 * Print the README's benchmark table from bench/RESULTS.md (the last `npm run bench`): one row per workload,
 * chainrule native 1 thread, jit 1 thread, 2 threads (jit), wasm (jit), PyTorch 1 and 2 threads, jax-js (jit, or
 * eager where jit did not run) and the speed ratio native 1 thread / PyTorch 1 thread (with jit's).
 *
 *   node --import tsx bench/readme-table.ts [bench/RESULTS.md]
 */
import { readFileSync } from "node:fs";

interface Section {
  title: string;
  higherIsBetter: boolean;
  /** framework label -> [median, % of peak or ""], the first row of each label */
  rows: Map<string, [string, string]>;
}

function parse(md: string): Section[] {
  const out: Section[] = [];
  const parts = md.split(/^### /m).slice(1);
  for (const p of parts) {
    const lines = p.split("\n");
    const title = lines[0].trim();
    const higherIsBetter = /higher is better/.test(p);
    const head = lines.find((l) => l.startsWith("| framework"));
    if (head === undefined) continue;
    const cols = head.split("|").map((c) => c.trim());
    const med = cols.findIndex((c) => c.startsWith("median"));
    const pct = cols.indexOf("% of peak");
    const rows = new Map<string, [string, string]>();
    for (const l of lines) {
      if (!l.startsWith("| ") || l.startsWith("| framework") || l.startsWith("| ---")) continue;
      const c = l.split("|").map((x) => x.trim());
      // "-": the case did not run for that framework
      const v = c[med] === "-" ? "" : (c[med] ?? "");
      if (!rows.has(c[1])) rows.set(c[1], [v, pct >= 0 ? (c[pct] ?? "") : ""]);
    }
    out.push({ title, higherIsBetter, rows });
  }
  return out;
}

/** The README's rows: label, the start of the RESULTS.md section title, whether to show % of peak. */
const ROWS: [string, string, boolean][] = [
  ["sgemm n=128 (GFLOP/s, % of one core's peak)", "sgemm 128x128", true],
  ["sgemm n=256 (GFLOP/s)", "sgemm 256x256", true],
  ["sgemm n=512 (GFLOP/s)", "sgemm 512x512", true],
  ["sgemm n=1024 (GFLOP/s)", "sgemm 1024x1024", true],
  ["MLP 784-512-256-10 step, batch 128, Adam (ms)", "MLP 784-512-256-10 training step, batch", false],
  ["CNN step, batch 64, Adam (ms)", "CNN training step (", false],
  ["char Transformer step, 4 layers, width 128, batch 32 x 128 (ms)", "char Transformer", false],
  ["LSTM step, 28 rows, hidden 128, batch 64 (ms)", "LSTM training step", false],
  ["eager add, one element (us/op)", "eager add", false],
  ["x*y+z forward + backward (us)", "x*y+z forward + backward", false],
  ["x*y+z forward mode, jvp (us)", "x*y+z forward mode", false],
  ["per-example grads of the MLP, vmap(grad), batch 128 (ms)", "per-example gradients", false],
  ["the same MLP's batched gradient (ms)", "the same MLP's batched gradient", false],
  ["bf16 GEMM n=256 (GFLOP/s; AMX)", "bf16 gemm 256x256", false],
  ["bf16 GEMM n=1024 (GFLOP/s; AMX)", "bf16 gemm 1024x1024", false],
  [
    "MLP step under bfloat16 autocast (ms)",
    "MLP 784-512-256-10 training step as mlp.step under bfloat16",
    false,
  ],
  ["CNN step under bfloat16 autocast (ms)", "CNN training step as cnn.step under bfloat16", false],
  [
    "attention fwd+bwd, 8 x 8 heads, L = S = 512, E = 64, fused kernel (ms)",
    "attention forward + backward",
    false,
  ],
  ["the same composed (ms)", "the same attention composed", false],
  ["the same fused, under bfloat16 autocast (ms)", "the same attention under bfloat16", false],
  ["5 epochs MLP on 10k digits (s; median of 3 fresh processes)", "end-to-end", false],
];

const num = (s: string | undefined) => (s === undefined || s === "" ? Number.NaN : Number.parseFloat(s));
const fmt = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(3))) : "");

function row(label: string, s: Section, pct: boolean, eager: boolean): string {
  const get = (fw: string) => s.rows.get(fw)?.[0] ?? "";
  const withPct = (fw: string) => {
    const v = get(fw);
    const p = s.rows.get(fw)?.[1] ?? "";
    return pct && v !== "" && p !== "" ? `${v} (${p})` : v;
  };
  const pair = (a: string, b: string) => (a === "" ? "" : b === "" ? a : `${a} (${b})`);
  const n1 = get("chainrule native 1 thread");
  const j1 = get("chainrule native jit 1 thread");
  const jaxJit = get("jax-js wasm jit");
  const jaxEager = get("jax-js wasm eager");
  const t1 = get("PyTorch 1 thread");
  const ratio = (c: string) => {
    const a = num(c);
    const b = num(t1);
    return s.higherIsBetter ? a / b : b / a;
  };
  let r = fmt(ratio(n1));
  if (r !== "" && j1 !== "") r += ` (jit ${fmt(ratio(j1))})`;
  return [
    label,
    withPct("chainrule native 1 thread"),
    withPct("chainrule native jit 1 thread"),
    pair(get("chainrule native 2 threads"), get("chainrule native jit 2 threads")),
    pair(get("chainrule wasm 1 thread"), get("chainrule wasm jit 1 thread")),
    t1,
    get("PyTorch 2 threads"),
    // an eager workload (one-element adds) against jax-js eager; otherwise jax-js jit where it ran
    (eager || jaxJit === "") && jaxEager !== "" ? `${jaxEager} (eager)` : jaxJit,
    r,
  ].join(" | ");
}

const sections = parse(readFileSync(process.argv[2] ?? "bench/RESULTS.md", "utf8"));
console.log(
  "| workload | chainrule native 1T | native jit 1T | native 2T (jit 2T) | chainrule wasm 1T (jit) | PyTorch 1.13 1T | PyTorch 2T | jax-js wasm (jit) | native 1T / PyTorch 1T |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const [label, prefix, pct] of ROWS) {
  const s = sections.find((x) => x.title.startsWith(prefix));
  if (s !== undefined) console.log(`| ${row(label, s, pct, label.startsWith("eager add"))} |`);
}
