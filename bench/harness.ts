/**
 * Timing method shared by every framework adapter of the side-by-side benchmark (bench/torch_bench.py
 * reimplements the same rules in Python so PyTorch is measured the same way).
 *
 * One *sample* is one call of a step function that computes and synchronises (reads a value back), so lazy
 * or asynchronous frameworks cannot hide work. The rules:
 * - warm-up: at least one call, and more until `warmupMs` has passed or 100,000 calls were made (JIT
 *   compilation, allocator growth and V8 tier-up land here, not in the figures; the LSTM step, ~2,000 ops in
 *   10-20 ms, took about 60 calls (~1 s) before V8 stopped recompiling it; a loop of 128-cube products, which
 *   drops its outputs to the garbage collector, page-faulted fresh heap for its first ~500 calls, ~60 ms, and
 *   the former cap of 2,000 calls ended the warm-up after 60 ms);
 * - timed: at least `minReps` samples spanning at least `windowMs`, then more until `budgetMs` has passed or
 *   `maxReps` is reached. The window matters for fast steps: 30 samples of a 90 us product span 3 ms, so one
 *   stretch of scheduling (a worker thread sharing its CPU for ~10 ms) decided the figure; 300 ms of samples
 *   (thousands of calls) give the typical call;
 * - a step whose first call already exceeded `slowMs` is "slow": warm-up stops after that call and only
 *   `slowReps` samples are taken (`verySlowReps` past `verySlowMs`); the note on the figure says so.
 * The figure is the median of the samples, with min and max. The process CPU time over the timed samples
 * divided by their wall time is recorded too: about 1 for one busy thread, about N for N busy threads, so a
 * "1 thread" row that shows 2 is not single-threaded (V8's garbage-collector threads add a little).
 */
import { readFileSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";

/** How many samples to take (see the module comment). */
export interface Method {
  warmupMs: number;
  windowMs: number;
  budgetMs: number;
  minReps: number;
  maxReps: number;
  slowMs: number;
  slowReps: number;
  verySlowMs: number;
  verySlowReps: number;
}

/** The full run: about 2 s of samples per figure. */
export const FULL_METHOD: Method = {
  warmupMs: 1500,
  windowMs: 300,
  budgetMs: 2000,
  minReps: 5,
  maxReps: 30,
  slowMs: 1500,
  slowReps: 3,
  verySlowMs: 10_000,
  verySlowReps: 1,
};

/** `--quick`: a smoke test of the whole harness, figures are rough. */
export const QUICK_METHOD: Method = {
  warmupMs: 50,
  windowMs: 20,
  budgetMs: 250,
  minReps: 2,
  maxReps: 5,
  slowMs: 500,
  slowReps: 1,
  verySlowMs: 10_000,
  verySlowReps: 1,
};

/** Median, min and max of the sample times, in milliseconds per call. */
export interface Sample {
  medianMs: number;
  minMs: number;
  maxMs: number;
  reps: number;
  /** Process CPU time / wall time over the timed samples (threads kept busy). */
  cpu: number;
  /** The value the first call returned (a checksum or the initial loss): frameworks should agree on it. */
  check: number | null;
  /** Why fewer samples than usual were taken, if they were. */
  note?: string;
  /** Garbage collections per timed call, and their pause time per call in ms (JS frameworks only). */
  gcPerCall?: number;
  gcMsPerCall?: number;
}

/** A step: one sample's work, returning a number read back from the framework (which forces completion). */
export type Step = () => number | Promise<number>;

async function call(step: Step): Promise<number> {
  const r = step();
  return typeof r === "number" ? r : await r;
}

/** The most warm-up calls (a bound for steps of a few microseconds; warm-up is otherwise `warmupMs`). */
const WARMUP_MAX_CALLS = 100_000;

/**
 * Time `step` by the rules above.
 *
 * @example
 * const s = await measure(() => a.matmul(b).dataSync()[0], FULL_METHOD);
 * s.medianMs; // milliseconds per product
 */
export async function measure(step: Step, m: Method): Promise<Sample> {
  let t = performance.now();
  const check = await call(step);
  const first = performance.now() - t;
  const slow = first > m.slowMs;
  if (!slow) {
    const warmStart = performance.now();
    let n = 1;
    while (performance.now() - warmStart + first < m.warmupMs && n < WARMUP_MAX_CALLS) {
      await call(step);
      n++;
    }
  }
  const times: number[] = [];
  const slowReps = first > m.verySlowMs ? m.verySlowReps : m.slowReps;
  const minReps = slow ? slowReps : m.minReps;
  const maxReps = slow ? slowReps : m.maxReps;
  // garbage collections during the timed calls (V8's gc performance entries), reported per call
  const seen: PerformanceEntry[] = [];
  const gcs = new PerformanceObserver((list) => {
    seen.push(...list.getEntries());
  });
  gcs.observe({ entryTypes: ["gc"] });
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const windowMs = slow ? 0 : m.windowMs;
  for (;;) {
    const elapsed = performance.now() - start;
    if (times.length >= minReps && elapsed >= windowMs && (times.length >= maxReps || elapsed >= m.budgetMs))
      break;
    t = performance.now();
    await call(step);
    times.push(performance.now() - t);
  }
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu0);
  // gc entries are queued for the event loop: let it turn before reading them
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  const gcEntries = [...seen, ...gcs.takeRecords()].filter(
    (e) => e.startTime >= start && e.startTime <= start + wall,
  );
  gcs.disconnect();
  const gcMs = gcEntries.reduce((a, e) => a + e.duration, 0);
  const out: Sample = {
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    reps: times.length,
    cpu: (used.user + used.system) / 1000 / wall,
    check: Number.isFinite(check) ? check : null,
  };
  out.gcPerCall = gcEntries.length / times.length;
  out.gcMsPerCall = gcMs / times.length;
  if (slow) out.note = `slow (first call ${(first / 1000).toFixed(1)} s): 1 warm-up, ${times.length} timed`;
  return out;
}

/** Deterministic uniform numbers in [0, 1) (mulberry32): the same inputs for every framework. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

/** The installed version of an npm package (read from node_modules; some packages do not export package.json). */
export function packageVersion(name: string): string {
  try {
    const url = new URL(`../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/** Median of a list of numbers (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 === 1 ? s[k] : (s[k - 1] + s[k]) / 2;
}

/**
 * Run `fns` interleaved, call by call (A, B, A, B, ...), `rounds` times, and report per variant the medians of
 * wall and process CPU time per call and the garbage collections per call (attributed by start time to the
 * call that was running), and for two variants their ratio: the A/B method of the tuning scripts.
 */
export async function interleavedAB(
  label: string,
  fns: Record<string, () => unknown>,
  rounds: number,
  digits = 2,
): Promise<string> {
  const variants = Object.keys(fns);
  const seen: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => {
    seen.push(...list.getEntries());
  });
  obs.observe({ entryTypes: ["gc"] });
  const wall: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const gcs: Record<string, [number, number]> = {};
  for (const v of variants) {
    wall[v] = [];
    cpu[v] = [];
    gcs[v] = [0, 0];
  }
  const windows: [number, number, string][] = [];
  for (let i = 0; i < rounds; i++) {
    for (const v of variants) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      fns[v]();
      const t1 = performance.now();
      const c = process.cpuUsage(c0);
      wall[v].push(t1 - t0);
      cpu[v].push((c.user + c.system) / 1000);
      windows.push([t0, t1, v]);
    }
  }
  // gc entries are queued for the event loop: collected after the timed loop
  for (let i = 0; i < 3; i++) await new Promise((res) => setImmediate(res));
  for (const e of [...seen, ...obs.takeRecords()]) {
    const w = windows.find(([a, b]) => e.startTime >= a && e.startTime <= b);
    if (w !== undefined) {
      gcs[w[2]][0]++;
      gcs[w[2]][1] += e.duration;
    }
  }
  obs.disconnect();
  const line = variants.map(
    (v) =>
      `${v} ${median(wall[v]).toFixed(digits)} ms (cpu ${median(cpu[v]).toFixed(digits)}, GC ${(gcs[v][0] / rounds).toFixed(1)}/call ${(gcs[v][1] / rounds).toFixed(1)} ms)`,
  );
  let ratio = "";
  if (variants.length === 2) {
    const [a, b] = variants;
    ratio = `  ${a}/${b}: wall ${(median(wall[a]) / median(wall[b])).toFixed(3)}x, cpu ${(median(cpu[a]) / median(cpu[b])).toFixed(3)}x`;
  }
  return `${label} (${rounds} rounds): ${line.join(" | ")}${ratio}`;
}

/**
 * Wrap every method of backend `be` (but `alloc`) in place to add up its wall time per key (`key(name, args)`:
 * the method's name, or with its operands' shapes): the kernel time of a step, by call. Returns the running
 * totals (clear() it after warm-up).
 */
export function timeBackendCalls(
  be: object,
  key: (name: string, args: unknown[]) => string,
): Map<string, { ms: number; calls: number }> {
  const totals = new Map<string, { ms: number; calls: number }>();
  const methods = be as Record<string, unknown>;
  for (const k of Object.keys(methods)) {
    const f = methods[k];
    if (typeof f !== "function" || k === "alloc") continue;
    methods[k] = function (this: unknown, ...args: unknown[]) {
      const t = performance.now();
      try {
        return (f as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        const name = key(k, args);
        const e = totals.get(name) ?? { ms: 0, calls: 0 };
        e.ms += performance.now() - t;
        e.calls++;
        totals.set(name, e);
      }
    };
  }
  return totals;
}
