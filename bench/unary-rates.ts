/**
 * Elementwise math functions, chainrule native against PyTorch (1.13, Debian's python3-torch) in the same run, one
 * thread each, both pinned to the same core: ns per element of `x.op()` on a float32 tensor of 2^18 elements
 * (1 MB: the operand and the result stay in L2 on the CPUs this project meets, so the figures are the functions'
 * arithmetic rather than memory), median of 41 calls after a warm-up of every op. Inputs are in each function's domain: (-1, 1)
 * for asin, acos and atanh, [1, 3) for acosh, (0, 3) for the logarithms, [-3, 3) for the others. The ratio column
 * is PyTorch's time over chainrule's (> 1: chainrule faster). atan2(x, y) takes y = the same values reversed.
 * A standalone script (not part of `npm run bench`). With `--backend wasm` it times the wasm backend instead
 * (its elementwise kernels are single-threaded; no PyTorch column).
 *
 *   taskset -c 1 node --import tsx bench/unary-rates.ts [--threads 1] [--ops sin,cos] [--ab-addon PATH]
 *     [--backend native|wasm]
 *
 * `--ab-addon PATH` compares another build of the addon (e.g. a copy of main's
 * native/build/Release/chainrule_native.node) as "old" with this checkout's as "new" instead of PyTorch, both in
 * this process on the same instruction set, alternating call by call (medians of 41 pairs; native only).
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { loadNativeBackend, nativeInfo, setNumThreads } from "../src/backend/native/index.ts";
import { otherAddon } from "./native-rates.ts";
import { setBackend } from "../src/backend/registry.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { type Tensor, tensor } from "../src/index.ts";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "1" },
    ops: { type: "string" },
    "ab-addon": { type: "string" },
    backend: { type: "string", default: "native" },
  },
});
const threads = Number(values.threads);
const wasm = values.backend === "wasm";
if (!wasm && values.backend !== "native") throw new Error(`--backend: native or wasm, not ${values.backend}`);
if (wasm && values["ab-addon"] !== undefined)
  throw new Error("--ab-addon compares native addons: not with --backend wasm");
const r = wasm ? loadWasmBackend({ threads }) : loadNativeBackend();
if ("error" in r) throw new Error(r.error);
setBackend(r.backend);
if (!wasm) setNumThreads(threads);

const N = 1 << 18;
const ALL_OPS = [
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
type Op = (typeof ALL_OPS)[number];
const OPS: readonly Op[] = values.ops === undefined ? ALL_OPS : (values.ops.split(",") as Op[]);
for (const op of OPS) if (!ALL_OPS.includes(op)) throw new Error(`unary-rates: unknown op ${op}`);

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
if (values["ab-addon"] !== undefined) {
  const other = otherAddon("unary-rates", values["ab-addon"], nativeInfo().isa);
  other.addon.setNumThreads(threads);
  console.log(
    `${cpus()[0]?.model ?? "unknown CPU"}, ${threads} thread(s); float32, ${N} elements; ns per element`,
  );
  console.log("op           old       new   old / new");
  for (const [k, op] of OPS.entries()) {
    const ts: [number[], number[]] = [[], []];
    for (let i = 0; i < 41; i++) {
      for (const [j, be] of [other.backend, r.backend].entries()) {
        setBackend(be);
        const t0 = performance.now();
        calls[k]();
        ts[j].push(performance.now() - t0);
      }
    }
    const [a, b] = ts.map((t) => (median(t) * 1e6) / N);
    console.log(
      `${op.padEnd(8)} ${a.toFixed(2).padStart(8)} ${b.toFixed(2).padStart(9)} ${(a / b).toFixed(3).padStart(11)}`,
    );
  }
  process.exit(0);
}
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
const res = wasm
  ? null
  : spawnSync("/usr/bin/python3", ["-c", py, OPS.join(","), ...OPS.map((op) => range(op).join(":"))], {
      encoding: "utf8",
    });
if (res?.status === 0) {
  for (const line of res.stdout.trim().split("\n")) {
    const [op, ns] = line.split(" ");
    torch.set(op as Op, Number(ns));
  }
} else if (res !== null) {
  console.log(`PyTorch unavailable (${(res.stderr ?? "").trim().split("\n").pop()}): chainrule only`);
}

console.log(
  `${cpus()[0]?.model ?? "unknown CPU"}, ${values.backend} backend, ${threads} thread(s); float32, ${N} elements; ns per element (median)`,
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
