import assert from "node:assert/strict";
import { test } from "node:test";
import { ShapeError } from "../../src/errors.ts";
import { barPlot, linePlot, scatterPlot } from "../../src/viz/svg-plot.ts";
import { escapeXml, formatTicks, linearTicks, logTicks, niceStep, PALETTE } from "../../src/viz/svg.ts";
import { parseXml, texts, type XmlElement } from "./xml.ts";

/** Text of the y tick labels (right-aligned <text> elements left of the plot). */
function yTickLabels(els: XmlElement[]): string[] {
  return els.filter((e) => e.name === "text" && e.attrs["text-anchor"] === "end").map((e) => e.text);
}

/** Number of subpaths (M commands) in each <path>. */
function subpaths(els: XmlElement[]): number[] {
  return els.filter((e) => e.name === "path").map((e) => (e.attrs.d!.match(/M/g) ?? []).length);
}

test("the XML checker itself rejects malformed documents", () => {
  assert.throws(() => parseXml("<svg><g></svg>"), /does not close/);
  assert.throws(() => parseXml("<svg>a < b</svg>"), /malformed tag/);
  assert.throws(() => parseXml("<svg>a & b</svg>"), /bare or unknown '&'/);
  assert.throws(() => parseXml('<svg a="1" a="2"/>'), /duplicate attribute/);
  assert.throws(() => parseXml("<svg/><svg/>"), /second root/);
  assert.throws(() => parseXml("<svg>"), /unclosed/);
  assert.deepEqual(texts(parseXml("<svg><text>x &amp; y &#60;</text></svg>")), ["x & y <"]);
});

test("niceStep picks 1-2-5 steps", () => {
  assert.equal(niceStep(1, 5), 0.2);
  assert.equal(niceStep(100, 5), 20);
  assert.equal(niceStep(7, 5), 2);
  assert.equal(niceStep(0.03, 6), 0.005);
  assert.equal(niceStep(1000, 4), 500);
});

test("linearTicks: known ranges give the expected labels and axis extent", () => {
  assert.deepEqual(linearTicks(0, 1, 5).labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
  assert.deepEqual(linearTicks(0, 1, 5).values, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(linearTicks(0, 100, 5).labels, ["0", "20", "40", "60", "80", "100"]);
  const t = linearTicks(-3.7, 12.2, 5);
  assert.deepEqual(t.labels, ["-5", "0", "5", "10", "15"]);
  assert.equal(t.lo, -5);
  assert.equal(t.hi, 15);
  assert.deepEqual(linearTicks(0.1, 0.3, 5).labels, ["0.1", "0.15", "0.2", "0.25", "0.3"]);
  // Tiny and huge magnitudes switch to exponential notation.
  assert.deepEqual(linearTicks(0, 1e-5, 5).labels, ["0", "2e-6", "4e-6", "6e-6", "8e-6", "1e-5"]);
  assert.deepEqual(linearTicks(0, 3e6, 5).labels, ["0", "1e6", "2e6", "3e6"]);
  // A constant range is widened around the value.
  const c = linearTicks(5, 5, 5);
  assert.ok(c.lo < 5 && c.hi > 5, `constant axis ${c.lo}..${c.hi}`);
  assert.ok(c.labels.includes("5"));
  // No data: a default 0..1 axis.
  assert.deepEqual(linearTicks(Infinity, -Infinity, 5).labels, linearTicks(0, 1, 5).labels);
  // Padded axis: ticks stay inside a slightly widened range.
  const p = linearTicks(0, 1, 6, 0.05);
  assert.deepEqual([p.lo, p.hi], [-0.05, 1.05]);
  assert.deepEqual(p.labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
});

test("formatTicks drops -0 and trailing zeros", () => {
  assert.deepEqual(formatTicks([-0, 0.5, 1, 1.5], 0.5), ["0", "0.5", "1", "1.5"]);
  assert.deepEqual(formatTicks([1500000, 2000000], 500000), ["1.5e6", "2e6"]);
});

test("logTicks: decades, 2-5 ticks on short ranges, thinned decades on long ones", () => {
  const a = logTicks(0.01, 10);
  assert.deepEqual(a.labels, ["0.01", "0.1", "1", "10"]);
  assert.deepEqual([a.lo, a.hi], [-2, 1]);
  assert.ok(a.minor.includes(0.02) && a.minor.includes(9));
  assert.deepEqual(logTicks(3, 7).labels, ["1", "2", "5", "10"]);
  const wide = logTicks(1e-12, 1e3);
  assert.deepEqual(wide.labels, ["1e-12", "1e-10", "1e-8", "1e-6", "0.0001", "0.01", "1", "100", "10000"]);
  assert.deepEqual(logTicks(0, -1).labels, ["1", "2", "5", "10"]);
});

test("escapeXml escapes markup characters and drops characters XML forbids", () => {
  assert.equal(escapeXml(`a<b & "c" 'd'>`), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  assert.equal(escapeXml("ok\u0001\u0008tab\tnl\n"), "oktab\tnl\n");
  assert.equal(escapeXml("ünïcødé ✓"), "ünïcødé ✓");
});

test("linePlot: a standalone, well-formed SVG with ticks, series names, title and labels", () => {
  const svg = linePlot({
    title: "Loss",
    xLabel: "epoch",
    yLabel: "value",
    series: [
      { name: "train", x: [0, 2, 4, 6, 8, 10], y: [1, 0.8, 0.6, 0.4, 0.2, 0] },
      { name: "test", x: [0, 2, 4, 6, 8, 10], y: [0.9, 0.7, 0.65, 0.5, 0.45, 0.4] },
    ],
  });
  assert.ok(
    svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'),
  );
  const els = parseXml(svg);
  assert.equal(els[0]!.name, "svg");
  assert.equal(els[0]!.attrs.width, "640");
  assert.equal(els[0]!.attrs.height, "400");
  const t = texts(els);
  for (const s of ["Loss", "epoch", "value", "train", "test"]) assert.ok(t.includes(s), `missing text ${s}`);
  assert.deepEqual(yTickLabels(els), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
  for (const s of ["0", "2", "4", "6", "8", "10"]) assert.ok(t.includes(s), `missing x tick ${s}`);
  // One path per series, each in its own colour, each a single unbroken line.
  const paths = els.filter((e) => e.name === "path");
  assert.equal(paths.length, 2);
  assert.deepEqual(
    paths.map((p) => p.attrs.stroke),
    [PALETTE[0], PALETTE[1]],
  );
  assert.deepEqual(subpaths(els), [1, 1]);
  // The first series runs from the bottom-left to the top-left: y = 1 maps above y = 0.
  const pts = paths[0]!.attrs
    .d!.slice(1)
    .split("L")
    .map((p) => p.split(",").map(Number));
  assert.equal(pts.length, 6);
  assert.ok(pts[0]![1]! < pts[5]![1]!, "larger y must be drawn higher (smaller pixel y)");
  assert.ok(pts[0]![0]! < pts[5]![0]!, "larger x must be drawn further right");
});

test("linePlot escapes <, & and quotes in every piece of text", () => {
  const svg = linePlot({
    title: "a < b & c",
    xLabel: 'x "quoted"',
    yLabel: "y's",
    series: [{ name: "<script>&amp;", y: [1, 2, 3] }],
  });
  assert.ok(svg.includes("a &lt; b &amp; c"));
  assert.ok(!svg.includes("<script>"));
  const t = texts(parseXml(svg));
  for (const s of ["a < b & c", 'x "quoted"', "y's", "<script>&amp;"])
    assert.ok(t.includes(s), `missing ${s}`);
});

test("linePlot breaks lines at NaN and Infinity and draws isolated points as dots", () => {
  const svg = linePlot({
    series: [
      { name: "gappy", y: [0, 1, Number.NaN, 3, 4, Number.POSITIVE_INFINITY, 6, Number.NaN] },
      { name: "lonely", x: [1, Number.NaN, 3], y: [2, 2, Number.NaN] },
    ],
  });
  const els = parseXml(svg);
  // "gappy": runs [0,1], [3,4] and the isolated point 6 -> one path with two subpaths plus one dot.
  assert.deepEqual(subpaths(els), [2]);
  const dots = els.filter((e) => e.name === "circle");
  assert.equal(dots.length, 2); // gappy's point at x=6 and lonely's point at x=1
  assert.ok(!svg.includes("NaN") && !svg.includes("Infinity"), "no non-finite coordinates in the output");
  // The axis covers the finite data only: 0..6 (plus 5% headroom).
  assert.deepEqual(yTickLabels(els), ["0", "2", "4", "6"]);
});

test("linePlot handles a single point, a constant series, empty and all-NaN series", () => {
  const single = parseXml(linePlot({ series: [{ name: "one", x: [3], y: [7] }] }));
  assert.equal(single.filter((e) => e.name === "circle").length, 1);
  assert.ok(yTickLabels(single).includes("7"));

  const flat = parseXml(linePlot({ series: [{ name: "flat", y: [5, 5, 5, 5] }] }));
  const d = flat.find((e) => e.name === "path")!.attrs.d!;
  const ys = d
    .slice(1)
    .split("L")
    .map((p) => Number(p.split(",")[1]));
  assert.equal(new Set(ys).size, 1, "a constant series is a horizontal line");
  const labels = yTickLabels(flat).map(Number);
  assert.ok(labels[0]! < 5 && labels[labels.length - 1]! > 5, "the constant sits inside the axis");

  for (const series of [[], [{ name: "empty", y: [] }], [{ name: "nan", y: [Number.NaN, Number.NaN] }]]) {
    const els = parseXml(linePlot({ title: "nothing", series }));
    assert.equal(els.filter((e) => e.name === "path" || e.name === "circle").length, 0);
    assert.deepEqual(yTickLabels(els), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
  }
});

test("linePlot with logY uses decade ticks and treats y <= 0 as gaps", () => {
  const svg = linePlot({ logY: true, series: [{ name: "loss", y: [5, 1, 0.3, 0, 0.05, -1, 0.02] }] });
  const els = parseXml(svg);
  assert.deepEqual(yTickLabels(els), ["0.01", "0.1", "1", "10"]);
  assert.deepEqual(subpaths(els), [1]); // [5, 1, 0.3]
  assert.equal(els.filter((e) => e.name === "circle").length, 2); // 0.05 and 0.02 are isolated
});

test("linePlot gives many series distinct colour/dash combinations", () => {
  const series = Array.from({ length: 12 }, (_, i) => ({ name: `s${i}`, y: [i, i + 1] }));
  const paths = parseXml(linePlot({ series })).filter((e) => e.name === "path");
  const styles = paths.map((p) => `${p.attrs.stroke}|${p.attrs["stroke-dasharray"] ?? ""}`);
  assert.equal(new Set(styles).size, 12);
});

test("linePlot rejects x/y length mismatch and tiny sizes with clear errors", () => {
  assert.throws(
    () => linePlot({ series: [{ name: "bad", x: [1, 2], y: [1, 2, 3] }] }),
    (e: unknown) =>
      e instanceof ShapeError && /linePlot: series "bad" has x of length 2 but y of length 3/.test(e.message),
  );
  assert.throws(() => linePlot({ series: [], width: 10 }), /linePlot: width and height/);
});

test("scatterPlot colours points by class with a legend and skips non-finite points", () => {
  const svg = scatterPlot({
    title: "Embedding",
    x: [0, 1, 2, 3, Number.NaN],
    y: [0, 1, 0, 1, 1],
    classes: [0, 2, 2, 0, 1],
    classNames: ["cat", "dog", "b&rd"],
  });
  const els = parseXml(svg);
  const groups = els.filter((e) => e.name === "g" && e.attrs["fill-opacity"] !== undefined);
  assert.deepEqual(
    groups.map((g) => g.attrs.fill),
    [PALETTE[0], PALETTE[2]],
  );
  const points = els.filter((e) => e.name === "circle" && e.ancestors.at(-1) === "g" && !e.attrs.fill);
  assert.equal(points.length, 4);
  const t = texts(els);
  assert.ok(t.includes("cat") && t.includes("b&rd"));
  assert.ok(!t.includes("dog"), "class 1 only has a NaN point, so it has no legend entry");
  assert.throws(() => scatterPlot({ x: [1], y: [1, 2] }), ShapeError);
  assert.throws(() => scatterPlot({ x: [1], y: [1], classes: [0.5] }), /classes\[0\] = 0.5/);
  // Without classes: one colour, no legend; a single point still gives a valid document.
  const one = parseXml(scatterPlot({ x: [4], y: [4] }));
  assert.equal(one.filter((e) => e.name === "circle").length, 1);
});

test("barPlot draws one bar per finite value, includes 0 on the axis and labels categories", () => {
  const svg = barPlot({
    title: "Per-class",
    categories: ["a", "b<c", "d"],
    series: [
      { name: "m1", values: [0.5, -0.25, Number.NaN] },
      { name: "m2", values: [1, 0.75, 0.25] },
    ],
  });
  const els = parseXml(svg);
  // Bars inherit the fill of their series group; background, legend swatches and frames set their own.
  const bars = els.filter((e) => e.name === "rect" && e.attrs.fill === undefined);
  assert.equal(bars.length, 5);
  const t = texts(els);
  for (const s of ["a", "b<c", "d", "m1", "m2", "-0.25", "0.75"]) assert.ok(t.includes(s), `missing ${s}`);
  const y = yTickLabels(els).map(Number);
  assert.ok(y[0]! <= -0.25 && y.includes(0) && y[y.length - 1]! >= 1);
  assert.throws(() => barPlot({ categories: ["a"], series: [{ name: "s", values: [1, 2] }] }), ShapeError);
});
