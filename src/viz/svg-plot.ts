/**
 * Standalone SVG charts for training curves and quick looks at data: `linePlot` (loss/accuracy curves, with an
 * optional log y axis), `scatterPlot` (2-D points coloured by class, e.g. embeddings) and `barPlot` (grouped
 * bars, e.g. per-class accuracy). Each returns a complete SVG document as a string, ready to write to a
 * `.svg` file or to put into a web page; no DOM, no dependencies, so it works in Node and in browsers.
 *
 * Non-finite values (NaN, +-Infinity) and, on a log axis, values <= 0 are treated as missing: lines break at
 * them instead of shooting off the chart.
 */
import { ShapeError } from "../errors.ts";
import {
  buildFrame,
  dashFor,
  escapeXml,
  formatValue,
  type LegendEntry,
  linearTicks,
  logTicks,
  PALETTE,
  px,
  scaleX,
  scaleY,
  seriesColor,
  svgDocument,
  textEl,
  textWidth,
} from "./svg.ts";

/** One named line. `x` defaults to 0, 1, ..., y.length - 1. */
export interface LineSeries {
  name: string;
  x?: ArrayLike<number>;
  y: ArrayLike<number>;
}

/** Options of {@link linePlot}. */
export interface LinePlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  series: LineSeries[];
  /** Document width in px (default 640). */
  width?: number;
  /** Document height in px (default 400). */
  height?: number;
  /** Logarithmic y axis (values <= 0 become gaps). */
  logY?: boolean;
}

function checkSize(op: string, width: number, height: number): void {
  if (!(width >= 120 && height >= 100 && Number.isFinite(width) && Number.isFinite(height))) {
    throw new RangeError(
      `${op}: width and height must be finite and at least 120 x 100 px, got ${width} x ${height}`,
    );
  }
}

/** Min and max of the values accepted by `ok`, or [Infinity, -Infinity] if none. */
function extent(arrays: ArrayLike<number>[], ok: (v: number) => boolean): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (!ok(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return [lo, hi];
}

/**
 * A line chart as a standalone SVG document: nice 1-2-5 ticks, grid, legend, one colour per series, title.
 * Points with a non-finite coordinate (or y <= 0 when `logY`) split the line; an isolated point is drawn as a
 * dot so that single-point series stay visible.
 *
 * @example
 * const svg = linePlot({
 *   title: "Training", xLabel: "epoch", yLabel: "loss", logY: true,
 *   series: [{ name: "train", y: [2.3, 0.9, 0.4, 0.2] }, { name: "test", y: [2.3, 1.0, 0.6, 0.5] }],
 * });
 * // writeFileSync("loss.svg", svg)
 */
export function linePlot(opts: LinePlotOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  checkSize("linePlot", width, height);
  const xs: ArrayLike<number>[] = [];
  for (const s of opts.series) {
    const x = s.x ?? Array.from({ length: s.y.length }, (_, i) => i);
    if (x.length !== s.y.length) {
      throw new ShapeError(
        `linePlot: series "${s.name}" has x of length ${x.length} but y of length ${s.y.length}; expected equal lengths`,
      );
    }
    xs.push(x);
  }
  const logY = opts.logY ?? false;
  const yOk = logY ? (v: number) => v > 0 && Number.isFinite(v) : Number.isFinite;
  // A point is drawn only if both of its coordinates are usable; the axes cover exactly the drawn points.
  const usable = opts.series.map((s, k) => {
    const keep: boolean[] = [];
    for (let i = 0; i < s.y.length; i++) keep.push(Number.isFinite(xs[k]![i]!) && yOk(s.y[i]!));
    return keep;
  });
  const [x0, x1] = extent(
    xs.map((x, k) => Array.from(x).filter((_, i) => usable[k]![i])),
    () => true,
  );
  const [y0, y1] = extent(
    opts.series.map((s, k) => Array.from(s.y).filter((_, i) => usable[k]![i])),
    () => true,
  );
  const legend: LegendEntry[] = opts.series.map((s, i) => ({
    name: s.name,
    color: seriesColor(i),
    dash: dashFor(i),
    kind: "line",
  }));
  const frame = buildFrame({
    width,
    height,
    title: opts.title,
    xLabel: opts.xLabel,
    yLabel: opts.yLabel,
    legend,
    // 5% headroom above and below, so a flat or extreme curve never hides under the axis line.
    yTicks: (t) => (logY ? logTicks(y0, y1) : linearTicks(y0, y1, t, 0.05)),
    xTicks: (t) => linearTicks(x0, x1, t),
  });
  const body: string[] = [...frame.under];
  opts.series.forEach((s, k) => {
    const color = seriesColor(k);
    const dash = dashFor(k);
    const x = xs[k]!;
    const keep = usable[k]!;
    // Split into runs of consecutive usable points; each run of >= 2 points is one path command chain.
    let d = "";
    const dots: string[] = [];
    let i = 0;
    while (i < s.y.length) {
      if (!keep[i]) {
        i++;
        continue;
      }
      let j = i;
      while (j + 1 < s.y.length && keep[j + 1]) j++;
      if (j === i) {
        dots.push(
          `<circle cx="${px(scaleX(frame.x!, frame.area, x[i]!))}" ` +
            `cy="${px(scaleY(frame.y, frame.area, s.y[i]!))}" r="3" fill="${color}"/>`,
        );
      } else {
        for (let m = i; m <= j; m++) {
          const cmd = m === i ? "M" : "L";
          d += `${cmd}${px(scaleX(frame.x!, frame.area, x[m]!))},${px(scaleY(frame.y, frame.area, s.y[m]!))}`;
        }
      }
      i = j + 1;
    }
    body.push(`<g><title>${escapeXml(s.name)}</title>`);
    if (d) {
      const da = dash ? ` stroke-dasharray="${dash}"` : "";
      body.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" ` +
          `stroke-linecap="round"${da}/>`,
      );
    }
    body.push(...dots, "</g>");
  });
  body.push(...frame.over);
  return svgDocument(width, height, body, opts.title);
}

/** Options of {@link scatterPlot}. */
export interface ScatterPlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  /** Integer class per point (0, 1, ...); selects the colour and the legend entry. */
  classes?: ArrayLike<number>;
  /** Legend names for the classes (default "class 0", "class 1", ...). */
  classNames?: string[];
  width?: number;
  height?: number;
  /** Dot radius in px (default 3). */
  radius?: number;
}

/**
 * A scatter plot as a standalone SVG document, optionally coloured by integer class with a legend.
 * Points with a non-finite coordinate are skipped.
 *
 * @example
 * const svg = scatterPlot({ x: [0, 1, 2], y: [1, 0, 1], classes: [0, 1, 1], classNames: ["cat", "dog"] });
 */
export function scatterPlot(opts: ScatterPlotOptions): string {
  const width = opts.width ?? 560;
  const height = opts.height ?? 440;
  checkSize("scatterPlot", width, height);
  const n = opts.x.length;
  if (opts.y.length !== n || (opts.classes && opts.classes.length !== n)) {
    throw new ShapeError(
      `scatterPlot: x has length ${n}, y has length ${opts.y.length}` +
        (opts.classes ? `, classes has length ${opts.classes.length}` : "") +
        "; expected equal lengths",
    );
  }
  const keep: boolean[] = [];
  for (let i = 0; i < n; i++) keep.push(Number.isFinite(opts.x[i]!) && Number.isFinite(opts.y[i]!));
  const fx = Array.from(opts.x).filter((_, i) => keep[i]);
  const fy = Array.from(opts.y).filter((_, i) => keep[i]);
  const [x0, x1] = extent([fx], () => true);
  const [y0, y1] = extent([fy], () => true);
  const classOf = (i: number): number => {
    const c = opts.classes ? opts.classes[i]! : 0;
    if (!(Number.isInteger(c) && c >= 0)) {
      throw new RangeError(`scatterPlot: classes[${i}] = ${c}; expected a non-negative integer`);
    }
    return c;
  };
  const present = new Set<number>();
  for (let i = 0; i < n; i++) if (keep[i]) present.add(classOf(i));
  const legend: LegendEntry[] = opts.classes
    ? [...present]
        .sort((a, b) => a - b)
        .map((c) => ({ name: opts.classNames?.[c] ?? `class ${c}`, color: seriesColor(c), kind: "dot" }))
    : [];
  const frame = buildFrame({
    width,
    height,
    title: opts.title,
    xLabel: opts.xLabel,
    yLabel: opts.yLabel,
    legend,
    yTicks: (t) => linearTicks(y0, y1, t, 0.04),
    xTicks: (t) => linearTicks(x0, x1, t, 0.04),
  });
  const r = px(opts.radius ?? 3);
  // One group per class, so a viewer can toggle or restyle a class, and each dot is a short element.
  const byClass = new Map<number, string[]>();
  for (let i = 0; i < n; i++) {
    if (!keep[i]) continue;
    const c = classOf(i);
    let list = byClass.get(c);
    if (!list) byClass.set(c, (list = []));
    list.push(
      `<circle cx="${px(scaleX(frame.x!, frame.area, opts.x[i]!))}" cy="${px(scaleY(frame.y, frame.area, opts.y[i]!))}" r="${r}"/>`,
    );
  }
  const body: string[] = [...frame.under];
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const color = opts.classes ? seriesColor(c) : PALETTE[0]!;
    body.push(`<g fill="${color}" fill-opacity="0.75">`, ...byClass.get(c)!, "</g>");
  }
  body.push(...frame.over);
  return svgDocument(width, height, body, opts.title);
}

/** Options of {@link barPlot}. */
export interface BarPlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** One label per bar group along x. */
  categories: string[];
  /** One or more series; each has one value per category (grouped side by side). */
  series: { name: string; values: ArrayLike<number> }[];
  width?: number;
  height?: number;
  /** Print each value above its bar (default: when every value label fits within its bar's width). */
  showValues?: boolean;
}

/**
 * A (grouped) bar chart as a standalone SVG document. The y axis always includes 0; negative values hang
 * below it; NaN values draw no bar. Long category labels are rotated.
 *
 * @example
 * const svg = barPlot({
 *   title: "Per-class accuracy", categories: ["cat", "dog"], series: [{ name: "acc", values: [0.9, 0.8] }],
 * });
 */
export function barPlot(opts: BarPlotOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  checkSize("barPlot", width, height);
  const nc = opts.categories.length;
  for (const s of opts.series) {
    if (s.values.length !== nc) {
      throw new ShapeError(
        `barPlot: series "${s.name}" has ${s.values.length} values for ${nc} categories; expected one per category`,
      );
    }
  }
  let [y0, y1] = extent(
    opts.series.map((s) => s.values),
    Number.isFinite,
  );
  if (y0 > y1) [y0, y1] = [0, 1];
  y0 = Math.min(0, y0);
  y1 = Math.max(0, y1);
  let labelW = 0;
  for (const c of opts.categories) labelW = Math.max(labelW, textWidth(c, 11));
  // Estimate the band width before layout (the legend/left margins are small compared to the plot).
  const approxBand = (width - 140) / Math.max(1, nc);
  const rotate = labelW > approxBand - 4;
  const legend: LegendEntry[] =
    opts.series.length > 1
      ? opts.series.map((s, i) => ({ name: s.name, color: seriesColor(i), kind: "box" }))
      : [];
  const frame = buildFrame({
    width,
    height,
    title: opts.title,
    xLabel: opts.xLabel,
    yLabel: opts.yLabel,
    legend,
    yTicks: (t) => linearTicks(y0, y1, t),
    xTickSpace: rotate ? Math.min(160, labelW * 0.72 + 20) : 22,
  });
  const { area } = frame;
  const band = area.width / Math.max(1, nc);
  const ns = Math.max(1, opts.series.length);
  const barW = (band * 0.8) / ns;
  const zeroY = scaleY(frame.y, area, 0);
  // Value labels are shown by default only when every label fits over its bar.
  let showValues = opts.showValues;
  if (showValues === undefined) {
    showValues = true;
    for (const s of opts.series) {
      for (let c = 0; c < nc; c++)
        if (textWidth(formatValue(s.values[c]!), 10) > barW + 2) showValues = false;
    }
  }
  const body: string[] = [...frame.under];
  opts.series.forEach((s, k) => {
    body.push(`<g fill="${seriesColor(k)}"><title>${escapeXml(s.name)}</title>`);
    for (let c = 0; c < nc; c++) {
      const v = s.values[c]!;
      if (!Number.isFinite(v)) continue;
      const x = area.left + c * band + band * 0.1 + k * barW;
      const yv = scaleY(frame.y, area, v);
      const top = Math.min(yv, zeroY);
      const h = Math.abs(yv - zeroY);
      body.push(`<rect x="${px(x)}" y="${px(top)}" width="${px(barW)}" height="${px(h)}"/>`);
    }
    body.push("</g>");
  });
  body.push(...frame.over);
  // Zero line on top of the bars when the axis straddles 0, so negative bars read as negative.
  if (frame.y.lo < 0) {
    body.push(
      `<line x1="${px(area.left)}" y1="${px(zeroY)}" x2="${px(area.left + area.width)}" y2="${px(zeroY)}" stroke="#333333"/>`,
    );
  }
  if (showValues) {
    body.push(`<g fill="#333333" font-size="10">`);
    opts.series.forEach((s, k) => {
      for (let c = 0; c < nc; c++) {
        const v = s.values[c]!;
        if (!Number.isFinite(v)) continue;
        const cx = area.left + c * band + band * 0.1 + (k + 0.5) * barW;
        const yv = scaleY(frame.y, area, v);
        body.push(textEl(cx, v >= 0 ? yv - 4 : yv + 12, formatValue(v), "middle"));
      }
    });
    body.push("</g>");
  }
  body.push(`<g fill="#333333">`);
  const bottomY = area.top + area.height;
  opts.categories.forEach((c, i) => {
    const cx = area.left + (i + 0.5) * band;
    if (rotate) {
      const ty = bottomY + 14;
      body.push(textEl(cx, ty, c, "end", `transform="rotate(-40 ${px(cx)} ${px(ty)})"`));
    } else {
      body.push(textEl(cx, bottomY + 18, c, "middle"));
    }
  });
  body.push("</g>");
  return svgDocument(width, height, body, opts.title);
}
