/**
 * Shared building blocks for the SVG charts in `viz/`: XML escaping, "nice" axis ticks (1-2-5 steps, or
 * decades on a log axis), tick label formatting, a colour-blind-friendly palette, text-width estimates for
 * layout, and the axis frame (grid, ticks, labels, title, legend) that line, scatter and bar plots share.
 *
 * Everything here is plain string building on numbers, so it runs unchanged in Node and in browsers and
 * produces a standalone SVG document (no CSS, no scripts, no external fonts).
 */

/** Tableau 10: ten hues that stay distinguishable for most colour-vision deficiencies. */
export const PALETTE: readonly string[] = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

/** Colour of series `i`; wraps around after the palette (pair it with {@link dashFor} to keep series apart). */
export function seriesColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** Dash pattern for series `i`: solid for the first palette cycle, then dashed, dotted, dash-dot. */
export function dashFor(i: number): string | undefined {
  const cycle = Math.floor(i / PALETTE.length) % 4;
  return [undefined, "7 4", "2 3", "8 3 2 3"][cycle];
}

/**
 * Escape text for XML content and attribute values. Characters XML 1.0 forbids (C0 controls other than tab,
 * newline, carriage return; lone surrogates) are dropped, since no escape makes them legal.
 */
export function escapeXml(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "&") out += "&amp;";
    else if (ch === "<") out += "&lt;";
    else if (ch === ">") out += "&gt;";
    else if (ch === '"') out += "&quot;";
    else if (ch === "'") out += "&apos;";
    else if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || (c >= 0xd800 && c <= 0xdfff)) continue;
    else if (c === 0xfffe || c === 0xffff) continue;
    else out += ch;
  }
  return out;
}

/** A coordinate rounded to 0.01 px, so documents stay small and diffs stay stable. */
export function px(v: number): string {
  const r = Math.round(v * 100) / 100;
  return String(r === 0 ? 0 : r);
}

/** Rough width in px of `s` in a sans-serif font of `fontSize` (average glyph ~0.58 em); used for layout. */
export function textWidth(s: string, fontSize: number): number {
  let w = 0;
  for (const ch of s) w += /[ijl.,:;'|!]/.test(ch) ? 0.3 : /[mwMW@%]/.test(ch) ? 0.85 : 0.58;
  return w * fontSize;
}

/** A `<text>` element; `anchor` is the SVG text-anchor, `extra` raw extra attributes. */
export function textEl(x: number, y: number, s: string, anchor = "start", extra = ""): string {
  const sp = extra ? ` ${extra}` : "";
  return `<text x="${px(x)}" y="${px(y)}" text-anchor="${anchor}"${sp}>${escapeXml(s)}</text>`;
}

/** Wrap body elements into a complete standalone SVG document with a white background. */
export function svgDocument(width: number, height: number, body: string[], description?: string): string {
  const w = px(width);
  const h = px(height);
  const head = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  ];
  if (description) head.push(`<title>${escapeXml(description)}</title>`);
  head.push(`<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`);
  return `${[...head, ...body, "</svg>"].join("\n")}\n`;
}

/** Tick positions on one axis: the axis spans [lo, hi] (data units; log10 units for a log axis). */
export interface Ticks {
  /** Tick values in data units. */
  values: number[];
  /** One label per value. */
  labels: string[];
  /** Unlabelled minor grid positions in data units (log axes only). */
  minor: number[];
  /** Axis start, in axis units (log10 of data for a log axis). */
  lo: number;
  /** Axis end, in axis units. */
  hi: number;
  /** True if the axis maps log10(value). */
  log: boolean;
}

/**
 * The smallest step of the form {1, 2, 5} x 10^k that divides `range` into at most ~`target` intervals.
 *
 * @example niceStep(1, 5) // 0.2
 */
export function niceStep(range: number, target: number): number {
  const rough = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(rough));
  for (const m of [1, 2, 5, 10]) if (m * mag >= rough * (1 - 1e-9)) return m * mag;
  return 10 * mag;
}

/** Number of decimals needed to show multiples of `step` exactly (step is 1, 2 or 5 times a power of 10). */
function decimalsFor(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** "1.50e+6" -> "1.5e6", "2e-5" stays. */
function tidyExponential(s: string): string {
  const [mant, exp] = s.split("e");
  let m = mant!;
  if (m.includes(".")) m = m.replace(/0+$/, "").replace(/\.$/, "");
  return `${m}e${Number(exp)}`;
}

/**
 * Labels for linear ticks that are multiples of `step`: fixed notation with just enough decimals
 * (trailing zeros dropped, so 0..1 reads "0, 0.2, ..., 1"), exponential when magnitudes are >= 1e6 or < 1e-3.
 */
export function formatTicks(values: readonly number[], step: number): string[] {
  let maxAbs = 0;
  for (const v of values) maxAbs = Math.max(maxAbs, Math.abs(v));
  if (maxAbs >= 1e6 || (maxAbs > 0 && maxAbs < 1e-3)) {
    const digits = Math.max(0, Math.floor(Math.log10(maxAbs)) - Math.floor(Math.log10(step) + 1e-9));
    return values.map((v) => (v === 0 ? "0" : tidyExponential(v.toExponential(Math.min(digits, 20)))));
  }
  const d = Math.min(decimalsFor(step), 20);
  return values.map((v) => {
    let s = v.toFixed(d);
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s === "-0" ? "0" : s;
  });
}

/** A short label for a single value (3 significant digits, exponential outside [1e-3, 1e6)). */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return tidyExponential(v.toExponential(2));
  return String(Number(v.toPrecision(3)));
}

/**
 * Linear ticks covering [min, max]. By default the axis is extended outward to whole steps, so it starts
 * and ends on a labelled tick (good for curves). With `pad` > 0 the axis is instead [min, max] widened by that
 * fraction of the range on each side, with ticks at the step multiples inside it (good for scatter plots,
 * where a dot on the axis line would be cut in half). A degenerate range (one value, or no data) is widened
 * so the data sits in the middle of a readable axis.
 *
 * @example linearTicks(0, 1, 5).labels // ["0", "0.2", "0.4", "0.6", "0.8", "1"]
 */
export function linearTicks(min: number, max: number, target: number, pad = 0): Ticks {
  if (!(Number.isFinite(min) && Number.isFinite(max)) || min > max) {
    min = 0;
    max = 1;
  }
  if (min === max) {
    const w = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= w;
    max += w;
  }
  let lo = min - pad * (max - min);
  let hi = max + pad * (max - min);
  const step = niceStep(hi - lo, target);
  const k0 = pad > 0 ? Math.ceil(lo / step - 1e-9) : Math.floor(lo / step + 1e-9);
  const k1 = pad > 0 ? Math.floor(hi / step + 1e-9) : Math.ceil(hi / step - 1e-9);
  const values: number[] = [];
  for (let k = k0; k <= k1; k++) values.push(Number((k * step).toPrecision(12)));
  if (pad === 0) {
    lo = values[0]!;
    hi = values[values.length - 1]!;
  }
  return { values, labels: formatTicks(values, step), minor: [], lo, hi, log: false };
}

/** Label for a power-of-ten-ish tick on a log axis: plain between 1e-4 and 1e5, else "1e-7". */
function logLabel(v: number): string {
  if (v >= 1e-4 && v < 1e5) return String(Number(v.toPrecision(6)));
  return tidyExponential(v.toExponential(0));
}

/**
 * Ticks for a log10 axis over positive [min, max]: whole decades (every n-th decade if many), plus labelled
 * 2x and 5x ticks when the axis spans at most two decades, and unlabelled minor grid at 2..9 x 10^k.
 */
export function logTicks(min: number, max: number): Ticks {
  if (!(min > 0 && Number.isFinite(min) && Number.isFinite(max)) || min > max) {
    min = 1;
    max = 10;
  }
  let lo = Math.floor(Math.log10(min) + 1e-12);
  let hi = Math.ceil(Math.log10(max) - 1e-12);
  if (hi <= lo) {
    lo -= 1;
    hi += 1;
  }
  const span = hi - lo;
  const every = Math.ceil(span / 8);
  lo = Math.floor(lo / every) * every + 0; // + 0 turns -0 into 0
  hi = Math.ceil(hi / every) * every + 0;
  const values: number[] = [];
  const minor: number[] = [];
  for (let e = lo; e <= hi; e++) {
    const p = 10 ** e;
    if ((e - lo) % every === 0) values.push(Number(p.toPrecision(12)));
    if (e === hi || span > 6) continue;
    for (let m = 2; m <= 9; m++) {
      const v = Number((m * p).toPrecision(12));
      if (span <= 2 && (m === 2 || m === 5)) values.push(v);
      else minor.push(v);
    }
  }
  values.sort((a, b) => a - b);
  return { values, labels: values.map(logLabel), minor, lo, hi, log: true };
}

/** Map a data value to the axis coordinate system (log10 for a log axis). */
export function axisValue(t: Ticks, v: number): number {
  return t.log ? Math.log10(v) : v;
}

/** The rectangle of the plotting area inside the document. */
export interface PlotArea {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Pixel x of a value on a horizontal axis. */
export function scaleX(t: Ticks, area: PlotArea, v: number): number {
  return area.left + ((axisValue(t, v) - t.lo) / (t.hi - t.lo)) * area.width;
}

/** Pixel y of a value on a vertical axis (up is larger). */
export function scaleY(t: Ticks, area: PlotArea, v: number): number {
  return area.top + area.height - ((axisValue(t, v) - t.lo) / (t.hi - t.lo)) * area.height;
}

/** One legend entry: a name and how its swatch is drawn. */
export interface LegendEntry {
  name: string;
  color: string;
  dash?: string;
  /** "line" draws a short stroke, "dot" a circle, "box" a filled square. */
  kind: "line" | "dot" | "box";
}

const LEGEND_FONT = 12;
const LEGEND_ROW = 18;

/** Width the legend needs to the right of the plot (0 when there is nothing to show). */
export function legendWidth(entries: readonly LegendEntry[]): number {
  if (entries.length === 0) return 0;
  let w = 0;
  for (const e of entries) w = Math.max(w, textWidth(e.name, LEGEND_FONT));
  return 22 + 6 + w + 10;
}

/** The legend, top-aligned, starting at pixel (x, y). */
export function legendSvg(entries: readonly LegendEntry[], x: number, y: number): string[] {
  const out: string[] = [`<g font-size="${LEGEND_FONT}">`];
  entries.forEach((e, i) => {
    const cy = y + 8 + i * LEGEND_ROW;
    if (e.kind === "line") {
      const dash = e.dash ? ` stroke-dasharray="${e.dash}"` : "";
      out.push(
        `<line x1="${px(x)}" y1="${px(cy)}" x2="${px(x + 22)}" y2="${px(cy)}" stroke="${e.color}" ` +
          `stroke-width="2.5"${dash}/>`,
      );
    } else if (e.kind === "dot") {
      out.push(`<circle cx="${px(x + 11)}" cy="${px(cy)}" r="4" fill="${e.color}"/>`);
    } else {
      out.push(`<rect x="${px(x + 5)}" y="${px(cy - 6)}" width="12" height="12" fill="${e.color}"/>`);
    }
    out.push(textEl(x + 28, cy + 4, e.name, "start", `fill="#222"`));
  });
  out.push("</g>");
  return out;
}

/** Everything the shared axis frame needs to know. */
export interface FrameSpec {
  width: number;
  height: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  legend: LegendEntry[];
  /** Build the y ticks once the plot height is known (target = roughly how many intervals fit). */
  yTicks: (target: number) => Ticks;
  /** Build the x ticks once the plot width is known; omit for a categorical x axis. */
  xTicks?: (target: number) => Ticks;
  /** Extra space under the plot for x tick labels (default 22; a bar chart with rotated labels needs more). */
  xTickSpace?: number;
}

/** The computed frame: plotting area, ticks, and the SVG elements (background, grid, axes, labels, legend). */
export interface Frame {
  area: PlotArea;
  x?: Ticks;
  y: Ticks;
  /** Elements drawn below the data (plot background and grid). */
  under: string[];
  /** Elements drawn above the data (axes, tick labels, titles, legend). */
  over: string[];
}

/**
 * Lay out a standard 2-D chart: title on top, y tick labels and y label on the left, x tick labels and x
 * label below, legend on the right. Margins are sized from the actual label text so nothing is clipped.
 */
export function buildFrame(spec: FrameSpec): Frame {
  const top = spec.title ? 40 : 16;
  const bottom = (spec.xTickSpace ?? 22) + (spec.xLabel ? 22 : 0) + 10;
  const plotH = Math.max(40, spec.height - top - bottom);
  const y = spec.yTicks(Math.max(2, Math.round(plotH / 55)));
  let yLabelW = 0;
  for (const l of y.labels) yLabelW = Math.max(yLabelW, textWidth(l, 11));
  const left = 12 + (spec.yLabel ? 20 : 0) + yLabelW + 8;
  const legW = legendWidth(spec.legend);
  const right = legW > 0 ? legW + 24 : 20;
  const plotW = Math.max(40, spec.width - left - right);
  const area: PlotArea = { left, top, width: plotW, height: plotH };
  const x = spec.xTicks?.(Math.max(2, Math.round(plotW / 90)));

  const under: string[] = [];
  const over: string[] = [];
  const bottomY = top + plotH;
  under.push(
    `<rect x="${px(left)}" y="${px(top)}" width="${px(plotW)}" height="${px(plotH)}" fill="#fbfbfb"/>`,
  );
  under.push(`<g stroke="#f0f0f0" stroke-width="1">`);
  for (const v of y.minor) {
    const py = scaleY(y, area, v);
    under.push(`<line x1="${px(left)}" y1="${px(py)}" x2="${px(left + plotW)}" y2="${px(py)}"/>`);
  }
  for (const v of x?.minor ?? []) {
    const pxv = scaleX(x!, area, v);
    under.push(`<line x1="${px(pxv)}" y1="${px(top)}" x2="${px(pxv)}" y2="${px(bottomY)}"/>`);
  }
  under.push(`</g>`, `<g stroke="#dddddd" stroke-width="1">`);
  for (const v of y.values) {
    const py = scaleY(y, area, v);
    under.push(`<line x1="${px(left)}" y1="${px(py)}" x2="${px(left + plotW)}" y2="${px(py)}"/>`);
  }
  for (const v of x?.values ?? []) {
    const pxv = scaleX(x!, area, v);
    under.push(`<line x1="${px(pxv)}" y1="${px(top)}" x2="${px(pxv)}" y2="${px(bottomY)}"/>`);
  }
  under.push(`</g>`);

  over.push(`<g stroke="#333333" stroke-width="1" fill="none">`);
  over.push(`<line x1="${px(left)}" y1="${px(top)}" x2="${px(left)}" y2="${px(bottomY)}"/>`);
  over.push(`<line x1="${px(left)}" y1="${px(bottomY)}" x2="${px(left + plotW)}" y2="${px(bottomY)}"/>`);
  for (const v of y.values) {
    const py = scaleY(y, area, v);
    over.push(`<line x1="${px(left - 5)}" y1="${px(py)}" x2="${px(left)}" y2="${px(py)}"/>`);
  }
  for (const v of x?.values ?? []) {
    const pxv = scaleX(x!, area, v);
    over.push(`<line x1="${px(pxv)}" y1="${px(bottomY)}" x2="${px(pxv)}" y2="${px(bottomY + 5)}"/>`);
  }
  over.push(`</g>`, `<g fill="#333333">`);
  y.values.forEach((v, i) => {
    over.push(textEl(left - 8, scaleY(y, area, v) + 4, y.labels[i]!, "end"));
  });
  if (x) {
    x.values.forEach((v, i) => {
      over.push(textEl(scaleX(x, area, v), bottomY + 18, x.labels[i]!, "middle"));
    });
  }
  over.push(`</g>`);
  if (spec.xLabel) {
    const ly = bottomY + (spec.xTickSpace ?? 22) + 16;
    over.push(textEl(left + plotW / 2, ly, spec.xLabel, "middle", `font-size="13" fill="#222"`));
  }
  if (spec.yLabel) {
    const lx = 16;
    const ly = top + plotH / 2;
    over.push(
      textEl(
        lx,
        ly,
        spec.yLabel,
        "middle",
        `font-size="13" fill="#222" transform="rotate(-90 ${px(lx)} ${px(ly)})"`,
      ),
    );
  }
  if (spec.title) {
    over.push(
      textEl(spec.width / 2, 24, spec.title, "middle", `font-size="15" font-weight="bold" fill="#111"`),
    );
  }
  if (legW > 0) over.push(...legendSvg(spec.legend, left + plotW + 16, top));
  return { area, x, y, under, over };
}
