/**
 * Turns the benchmark records into tables: plain text for stdout and Markdown for bench/RESULTS.md.
 *
 * Each case gets one table with every framework's median, min-max and check value, and two speed ratios
 * against chainrule: "cr 1T / peer" uses the fastest single-threaded chainrule variant (native 1 thread, wasm or
 * js) and "cr best / peer" the fastest chainrule variant of all. A ratio is always a speed ratio, whatever the
 * unit: above 1 means chainrule is faster than that row, below 1 slower (for GFLOP/s it is chainrule / peer, for
 * times peer time / chainrule time).
 */
import { type CaseSpec, DISPATCH_K, SGEMM_SIZES } from "./workloads.ts";

/** A framework variant (one child process). */
export interface FwInfo {
  id: string;
  label: string;
  version: string;
  notes: string[];
  chainrule: boolean;
  singleThread: boolean;
  /** Runs on a GPU: no CPU-peak percentage, and not a reference of the ratio columns. */
  gpu?: boolean;
  unavailable?: string;
}

/** What one framework produced for one case. */
export type CaseResult =
  | {
      sample: {
        medianMs: number;
        minMs: number;
        maxMs: number;
        reps: number;
        cpu?: number;
        check: number | null;
        note?: string;
        gcPerCall?: number;
        gcMsPerCall?: number;
      };
    }
  /** seconds: the median of `runs` (each run a fresh process) when there are several. */
  | { e2e: { seconds: number; accuracy: number; finalLoss: number; cpu?: number; runs?: number[] } }
  | { skip: string }
  | { error: string };

/** A figure in the case's unit: value plus range (for sgemm the range is from the min/max times). */
interface Figure {
  value: number;
  lo: number;
  hi: number;
  cpu: string;
  check: string;
  note?: string;
  /** end-to-end rows: how many fresh-process runs the figure is the median of */
  runs?: number;
}

function figureOf(c: CaseSpec, r: CaseResult): Figure | null {
  if ("e2e" in r) {
    const { seconds, accuracy, finalLoss } = r.e2e;
    const runs = r.e2e.runs ?? [seconds];
    return {
      value: seconds,
      lo: Math.min(...runs),
      hi: Math.max(...runs),
      runs: runs.length,
      cpu: fmtCpu(r.e2e.cpu),
      check: `acc ${(100 * accuracy).toFixed(2)}%, loss ${finalLoss.toFixed(4)}`,
    };
  }
  if (!("sample" in r)) return null;
  const s = r.sample;
  const check = s.check === null ? "" : fmtCheck(s.check);
  const cpu = fmtCpu(s.cpu);
  if (c.unit === "GFLOP/s") {
    const n = SGEMM_SIZES.find((k) => c.id === `sgemm.${k}` || c.id === `bf16.gemm${k}`) ?? 0;
    const g = (ms: number) => (2 * n ** 3) / (ms * 1e6);
    return { value: g(s.medianMs), lo: g(s.maxMs), hi: g(s.minMs), cpu, check, note: s.note };
  }
  if (c.unit === "us") {
    const k =
      c.id === "dispatch.add" ? DISPATCH_K.add : c.id === "dispatch.grad" ? DISPATCH_K.grad : DISPATCH_K.jvp;
    const u = (ms: number) => (ms * 1000) / k;
    return { value: u(s.medianMs), lo: u(s.minMs), hi: u(s.maxMs), cpu, check, note: s.note };
  }
  // per-step figures: how many garbage collections a step triggers, and their pause (JS frameworks)
  const gc =
    s.gcPerCall === undefined ? "" : `GC ${fmtNum(s.gcPerCall)}/call, ${fmtNum(s.gcMsPerCall ?? 0)} ms/call`;
  const note = [s.note, gc].filter(Boolean).join("; ");
  return { value: s.medianMs, lo: s.minMs, hi: s.maxMs, cpu, check, note };
}

function fmtCpu(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "" : v.toFixed(2);
}

function fmtCheck(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(4) : v.toPrecision(6);
}

/** Three significant digits, without exponent notation for the usual ranges. */
export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

/** Speed of `a` relative to `b` (> 1: a faster). */
function speedRatio(c: CaseSpec, a: number, b: number): number {
  return c.higherIsBetter ? a / b : b / a;
}

/** The measured float32 FMA peak of one core in GFLOP/s (bench/fma-peak.c), and the core count; null if unknown. */
let peak: { perCore: number; cores: number } | null = null;

/** Set the peak that GFLOP/s rows are compared with (a "% of peak" column: 1 core, or all for multi-threaded). */
export function setPeak(p: { perCore: number; cores: number } | null): void {
  peak = p;
}

interface Row {
  label: string;
  cells: string[];
}

/** Header and rows of one case's table. */
function tableRows(
  c: CaseSpec,
  fws: FwInfo[],
  results: Map<string, CaseResult>,
): { head: string[]; rows: Row[]; legend: string[] } {
  const figs = new Map<string, Figure>();
  for (const fw of fws) {
    const r = results.get(fw.id);
    const f = r === undefined ? null : figureOf(c, r);
    if (f !== null) figs.set(fw.id, f);
  }
  const best = (pred: (fw: FwInfo) => boolean): FwInfo | undefined => {
    let out: FwInfo | undefined;
    for (const fw of fws) {
      const f = figs.get(fw.id);
      if (!pred(fw) || f === undefined) continue;
      const o = out === undefined ? undefined : figs.get(out.id);
      if (o === undefined || speedRatio(c, f.value, o.value) > 1) out = fw;
    }
    return out;
  };
  const cr1 = best((fw) => fw.chainrule && fw.singleThread && !fw.gpu);
  const crAll = best((fw) => fw.chainrule && !fw.gpu);
  const refs = [cr1, crAll === cr1 ? undefined : crAll].filter((x): x is FwInfo => x !== undefined);
  const withPeak = peak !== null && c.unit === "GFLOP/s";
  const head = [
    "framework",
    `median ${c.unit}`,
    ...(withPeak ? ["% of peak"] : []),
    "min-max",
    "cpu/wall",
    "check",
  ];
  if (cr1) head.push("cr 1T / peer");
  if (crAll && crAll !== cr1) head.push("cr best / peer");
  head.push("notes");
  const rows: Row[] = [];
  for (const fw of fws) {
    const r = results.get(fw.id);
    const f = figs.get(fw.id);
    const cells: string[] = [];
    let note = "";
    if (f !== undefined) {
      const ofPeak =
        peak === null || fw.gpu
          ? ""
          : `${((100 * f.value) / (peak.perCore * (fw.singleThread ? 1 : peak.cores))).toFixed(0)}%`;
      cells.push(
        fmtNum(f.value),
        ...(withPeak ? [ofPeak] : []),
        f.runs === 1
          ? "(1 run)"
          : f.runs !== undefined
            ? `${fmtNum(f.lo)}-${fmtNum(f.hi)} (${f.runs} runs)`
            : `${fmtNum(f.lo)}-${fmtNum(f.hi)}`,
        f.cpu,
        f.check,
      );
      note = f.note ?? "";
    } else {
      cells.push("-", ...(withPeak ? [""] : []), "", "", "");
      if (fw.unavailable !== undefined) note = `unavailable: ${fw.unavailable}`;
      else if (r !== undefined && "skip" in r) note = `skipped: ${r.skip}`;
      else if (r !== undefined && "error" in r) note = `error: ${r.error}`;
      else note = "n/a (no such API)";
    }
    for (const ref of refs) {
      const rf = figs.get(ref.id);
      cells.push(
        f === undefined || rf === undefined || ref === fw ? "" : fmtNum(speedRatio(c, rf.value, f.value)),
      );
    }
    cells.push(note);
    rows.push({ label: fw.label, cells });
  }
  const legend = [
    cr1 ? `cr 1T = ${cr1.label}` : "",
    crAll && crAll !== cr1 ? `cr best = ${crAll.label}` : "",
  ].filter(Boolean);
  return { head, rows, legend };
}

function direction(c: CaseSpec): string {
  return c.higherIsBetter ? "higher is better" : "lower is better";
}

/** Plain-text table of one case for the terminal. */
export function textTable(c: CaseSpec, fws: FwInfo[], results: Map<string, CaseResult>): string {
  const { head, rows, legend } = tableRows(c, fws, results);
  const all = [head, ...rows.map((r) => [r.label, ...r.cells])];
  const last = head.length - 1;
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((s, i) =>
        i === last ? s : i === 0 || head[i] === "check" ? s.padEnd(widths[i]) : s.padStart(widths[i]),
      )
      .join("  ")
      .trimEnd();
  return [
    `${c.title}: ${direction(c)}`,
    ...(legend.length ? [`  ratios are speed ratios, > 1 = chainrule faster; ${legend.join("; ")}`] : []),
    `  ${line(head)}`,
    ...rows.map((r) => `  ${line([r.label, ...r.cells])}`),
  ].join("\n");
}

/** Markdown table of one case for RESULTS.md. */
export function markdownTable(c: CaseSpec, fws: FwInfo[], results: Map<string, CaseResult>): string {
  const { head, rows, legend } = tableRows(c, fws, results);
  const esc = (s: string) => s.replaceAll("|", "\\|");
  return [
    `### ${c.title}`,
    "",
    `${direction(c)}; ratio columns are speed ratios, > 1 = chainrule faster${legend.length ? ` (${legend.join("; ")})` : ""}.`,
    "",
    `| ${head.map(esc).join(" | ")} |`,
    `|${head.map((_, i) => (i === 0 || i === 4 || i === head.length - 1 ? " --- " : " ---: ")).join("|")}|`,
    ...rows.map((r) => `| ${[r.label, ...r.cells].map(esc).join(" | ")} |`),
  ].join("\n");
}
