/**
 * Text charts for terminals (the CLI's training progress and summaries): `sparkline` squeezes a series into
 * one line of block characters, `barChart` draws labelled horizontal bars with 1/8-character resolution.
 * Output is plain Unicode, no ANSI colour codes, so it also reads fine in logs.
 */

const SPARKS = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
/** Left-aligned partial blocks: index i is (i + 1) / 8 of a cell. */
const EIGHTHS = ["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"];

/** Options of {@link sparkline}. */
export interface SparklineOptions {
  /** Value drawn as the lowest block (default: the smallest finite value). */
  min?: number;
  /** Value drawn as the highest block (default: the largest finite value). */
  max?: number;
  /** Maximum number of characters; longer series are averaged into this many buckets. */
  width?: number;
}

/**
 * One-line chart of a series with the eight block characters ▁▂▃▄▅▆▇█. NaN (or a bucket of only NaN) is a
 * space; a constant series is a flat line of "▄".
 *
 * @example sparkline([0, 1, 2, 3, 4, 5, 6, 7]) // "▁▂▃▄▅▆▇█"
 */
export function sparkline(values: ArrayLike<number>, opts: SparklineOptions = {}): string {
  let vals = Array.from(values);
  const width = opts.width;
  if (width !== undefined) {
    if (!(Number.isInteger(width) && width >= 1)) {
      throw new RangeError(`sparkline: width must be a positive integer, got ${width}`);
    }
    if (vals.length > width) vals = buckets(vals, width);
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of vals) {
    if (!Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  lo = opts.min ?? lo;
  hi = opts.max ?? hi;
  let out = "";
  for (const v of vals) {
    if (Number.isNaN(v)) out += " ";
    else if (!(hi > lo)) out += SPARKS[3];
    else {
      const t = Math.min(1, Math.max(0, (v - lo) / (hi - lo)));
      out += SPARKS[Math.round(t * (SPARKS.length - 1))];
    }
  }
  return out;
}

/** Average `vals` into `n` contiguous buckets of near-equal size, ignoring NaN (an all-NaN bucket is NaN). */
function buckets(vals: number[], n: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < n; b++) {
    const s = Math.floor((b * vals.length) / n);
    const e = Math.floor(((b + 1) * vals.length) / n);
    let sum = 0;
    let cnt = 0;
    for (let i = s; i < e; i++) {
      if (Number.isNaN(vals[i]!)) continue;
      sum += vals[i]!;
      cnt++;
    }
    out.push(cnt > 0 ? sum / cnt : Number.NaN);
  }
  return out;
}

/** Options of {@link barChart}. */
export interface BarChartOptions {
  /** Characters available for the bars (default 40). */
  width?: number;
  /** How values are printed after the bars (default: up to 4 significant digits). */
  format?: (v: number) => string;
}

/** A label and its value, or a plain record { label: value }. */
export type BarData = { label: string; value: number }[] | Record<string, number>;

function defaultFormat(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Number(v.toPrecision(4)));
}

/**
 * Horizontal bar chart, one line per entry: the label padded to a column, a bar proportional to the value,
 * then the value. Positive bars have 1/8-character resolution. With negative values a "│" marks zero and
 * negative bars grow to its left (whole characters). Non-finite values get no bar.
 *
 * @example
 * barChart({ cat: 0.91, dog: 0.5 }, { width: 10 })
 * // cat │██████████ 0.91
 * // dog │█████▌     0.5
 */
export function barChart(data: BarData, opts: BarChartOptions = {}): string {
  const entries = Array.isArray(data)
    ? data
    : Object.entries(data).map(([label, value]) => ({ label, value }));
  const width = opts.width ?? 40;
  if (!(Number.isInteger(width) && width >= 1)) {
    throw new RangeError(`barChart: width must be a positive integer, got ${width}`);
  }
  const format = opts.format ?? defaultFormat;
  let maxPos = 0;
  let maxNeg = 0;
  let labelW = 0;
  for (const { label, value } of entries) {
    labelW = Math.max(labelW, [...label].length);
    if (!Number.isFinite(value)) continue;
    maxPos = Math.max(maxPos, value);
    maxNeg = Math.max(maxNeg, -value);
  }
  // Split the width between the negative and positive sides in proportion to their extents (one scale).
  const total = maxPos + maxNeg;
  const negW = maxNeg > 0 ? Math.max(1, Math.round((width * maxNeg) / total)) : 0;
  const posW = width - negW;
  const scale = total > 0 ? width / total : 0; // characters per unit of value
  const lines: string[] = [];
  for (const { label, value } of entries) {
    const name = label + " ".repeat(labelW - [...label].length);
    let neg = "";
    let pos = "";
    if (Number.isFinite(value) && value < 0) {
      const n = Math.min(negW, Math.round(-value * scale));
      neg = "█".repeat(n);
    } else if (Number.isFinite(value) && value > 0) {
      const eighths = Math.min(posW * 8, Math.round(value * scale * 8));
      pos = "█".repeat(Math.floor(eighths / 8)) + (eighths % 8 > 0 ? EIGHTHS[(eighths % 8) - 1] : "");
    }
    const left = negW > 0 ? " ".repeat(negW - neg.length) + neg : "";
    const bar = pos + " ".repeat(Math.max(0, posW - [...pos].length));
    lines.push(`${name} ${left}│${bar} ${format(value)}`);
  }
  return lines.join("\n");
}
