/**
 * Elementwise math functions, chainrule native against PyTorch (1.13, Debian's python3-torch) in the same run, one
 * thread each, both pinned to the same core: ns per element of `x.op()` on a float32 tensor of 2^18 elements
 * (1 MB: the operand and the result stay in L2 on the CPUs this project meets, so the figures are the functions'
 * arithmetic rather than memory), median of 41 calls after a warm-up of every op. Inputs are in each function's domain: (-1, 1)
 * for asin, acos and atanh, [1, 3) for acosh, (0, 3) for the logarithms, [-3, 3) for the others. The ratio column
 * is PyTorch's time over chainrule's (> 1: chainrule faster). atan2(x, y) takes y = the same values reversed.
 * A standalone script (not part of `npm run bench`).
 *
 *   taskset -c 1 node --import tsx bench/unary-rates.ts [--threads 1]
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { loadNativeBackend, setNumThreads } from "../src/backend/native/index.ts";
import { setBackend } from "../src/backend/registry.ts";
import { type Tensor, tensor } from "../src/index.ts";

const { values } = parseArgs({ options: { threads: { type: "string", default: "1" } } });
const threads = Number(values.threads);
const r = loadNativeBackend();
if ("error" in r) throw new Error(r.error);
setBackend(r.backend);
setNumThreads(threads);

const N = 1 << 18;
const OPS = [
  "exp",
  "log",
  "log1p",
  "expm1",
  "log2",
  "log10",
  "sqrt",
  "sin",
  "cos",
  "tan",
  "tanh",
  "sigmoid",
  "erf",
  "asin",
  "acos",
  "atan",
  "sinh",
  "cosh",
  "asinh",
  "acosh",
  "atanh",
  "atan2",
] as const;
type Op = (typeof OPS)[number];

/** The input range of each function (lo, hi), and the same formula for PyTorch. */
function range(op: Op): [number, number] {
  if (op === "asin" || op === "acos" || op === "atanh") return [-0.999, 0.999];
  if (op === "acosh") return [1, 3];
  if (op.startsWith("log")) return op === "log1p" ? [-0.999, 3] : [1e-3, 3];
  return [-3, 3];
}
/** Deterministic inputs in [lo, hi): a scrambled ramp, so both frameworks read the same values. */
function input(op: Op): Float32Array {
  const [lo, hi] = range(op);
  const x = new Float32Array(N);
  for (let i = 0; i < N; i++) x[i] = lo + (hi - lo) * (((i * 7919) % N) / N);
  return x;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const ours = new Map<Op, number>();
const calls = OPS.map((op) => {
  const xs = input(op);
  const x = tensor(xs);
  if (op === "atan2") {
    const y = tensor(xs.slice().reverse());
    return () => x.atan2(y);
  }
  return () => (x[op] as () => Tensor).call(x);
});
// warm-up of every op first: the first products of a fresh process also fill the buffer pool (fresh memory's
// page faults would otherwise be charged to whichever op runs first)
for (let i = 0; i < 10; i++) for (const f of calls) f();
for (const [k, op] of OPS.entries()) {
  const f = calls[k];
  const ts: number[] = [];
  for (let i = 0; i < 41; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  ours.set(op, (median(ts) * 1e6) / N);
}

const py = `
import sys, time, torch
torch.set_num_threads(${threads})
N = ${N}
ops = sys.argv[1].split(",")
for op in ops:
    lo, hi = [float(v) for v in sys.argv[2 + ops.index(op)].split(":")]
    i = torch.arange(N, dtype=torch.int64)
    x = (lo + (hi - lo) * ((i * 7919) % N).double() / N).float()
    f = getattr(torch, op)
    if op == "atan2":
        y = x.flip(0)
        f = lambda v, g=f: g(v, y)
    for _ in range(5): f(x)
    ts = []
    for _ in range(41):
        t0 = time.perf_counter(); f(x); ts.append(time.perf_counter() - t0)
    ts.sort()
    print(op, ts[len(ts) // 2] * 1e9 / N)
`;
const torch = new Map<Op, number>();
const res = spawnSync(
  "/usr/bin/python3",
  ["-c", py, OPS.join(","), ...OPS.map((op) => range(op).join(":"))],
  { encoding: "utf8" },
);
if (res.status === 0) {
  for (const line of res.stdout.trim().split("\n")) {
    const [op, ns] = line.split(" ");
    torch.set(op as Op, Number(ns));
  }
} else {
  console.log(`PyTorch unavailable (${(res.stderr ?? "").trim().split("\n").pop()}): chainrule only`);
}

console.log(
  `${cpus()[0]?.model ?? "unknown CPU"}, ${threads} thread(s); float32, ${N} elements; ns per element (median)`,
);
console.log("op        chainrule   PyTorch   PyTorch / chainrule");
for (const op of OPS) {
  const a = ours.get(op)!;
  const b = torch.get(op);
  console.log(
    `${op.padEnd(8)} ${a.toFixed(2).padStart(10)} ${b === undefined ? "-".padStart(9) : b.toFixed(2).padStart(9)} ${
      b === undefined ? "" : (b / a).toFixed(2).padStart(12)
    }`,
  );
}
