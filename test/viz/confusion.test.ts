import assert from "node:assert/strict";
import { test } from "node:test";
import { ShapeError } from "../../src/errors.ts";
import { confusionMatrix, confusionMatrixSvg } from "../../src/viz/confusion.ts";
import { parseXml, texts } from "./xml.ts";

test("confusionMatrix counts (true, predicted) pairs with rows = true class", () => {
  const pred = new Int32Array([0, 1, 1, 2, 2, 2, 0]);
  const truth = [0, 1, 0, 2, 2, 1, 0];
  assert.deepEqual(confusionMatrix(pred, truth, 3), [
    [2, 1, 0],
    [0, 1, 1],
    [0, 0, 2],
  ]);
  assert.deepEqual(confusionMatrix([], [], 2), [
    [0, 0],
    [0, 0],
  ]);
});

test("confusionMatrix rejects bad input with messages naming the problem", () => {
  assert.throws(
    () => confusionMatrix([0, 1], [0], 2),
    (e: unknown) => e instanceof ShapeError && /pred has length 2 but truth has length 1/.test(e.message),
  );
  assert.throws(
    () => confusionMatrix([0, 3], [0, 1], 3),
    /at index 1 pred = 3, truth = 1; expected integers in \[0, 3\)/,
  );
  assert.throws(() => confusionMatrix([0.5], [0], 2), /pred = 0.5/);
  assert.throws(() => confusionMatrix([0], [0], 0), /positive integer/);
});

test("confusionMatrixSvg: counts, labels, per-class and overall accuracy, row-normalised colour", () => {
  const m = [
    [8, 2, 0],
    [1, 3, 0],
    [0, 0, 0],
  ];
  const svg = confusionMatrixSvg(m, ["cat", "dog & co", "<bird>"], { title: "Test" });
  const els = parseXml(svg);
  const t = texts(els);
  assert.ok(t.includes("Test (accuracy 78.6%, 11/14)"), `title missing: ${t[0]}`);
  // Each label appears twice (row and column).
  for (const l of ["cat", "dog & co", "<bird>"]) assert.equal(t.filter((s) => s === l).length, 2, l);
  assert.ok(svg.includes("dog &amp; co") && svg.includes("&lt;bird&gt;"));
  // Per-class accuracy (recall): 8/10, 3/4, and n/a for the empty row.
  for (const s of ["80.0%", "75.0%", "n/a", "accuracy", "true class", "predicted class"]) {
    assert.ok(t.includes(s), `missing ${s}`);
  }
  // Nine cells, each with its count, in row-major order.
  const cellTexts = els.filter(
    (e) => e.name === "text" && e.ancestors.at(-1) === "g" && /^\d+$/.test(e.text),
  );
  assert.deepEqual(
    cellTexts.map((e) => Number(e.text)),
    [8, 2, 0, 1, 3, 0, 0, 0, 0],
  );
  // Colour follows the row share: 8/10 is darker than 3/4, which is darker than 2/10; zero is the lightest.
  const cells = els.filter((e) => e.name === "rect" && e.ancestors.at(-1) === "g").map((e) => e.attrs.fill!);
  assert.equal(cells.length, 9);
  const lum = (hex: string) => Number.parseInt(hex.slice(1, 3), 16) + Number.parseInt(hex.slice(3, 5), 16);
  assert.ok(lum(cells[0]!) < lum(cells[4]!), "80% is darker than 75%");
  assert.ok(lum(cells[4]!) < lum(cells[1]!), "75% is darker than 20%");
  assert.equal(cells[2], "#f7fbff"); // 0 share
  assert.equal(cells[8], "#f7fbff"); // empty row
  // Hover tooltips give the details.
  const tips = els.filter((e) => e.name === "title").map((e) => e.text);
  assert.ok(tips.includes("true cat, predicted dog & co: 2 (20.0% of row)"));
});

test("confusionMatrixSvg defaults labels to class indices and validates the matrix", () => {
  const t = texts(parseXml(confusionMatrixSvg([[5]])));
  assert.ok(t.includes("Confusion matrix (accuracy 100.0%, 5/5)"));
  assert.ok(t.includes("0") && t.includes("5"));
  assert.throws(() => confusionMatrixSvg([]), ShapeError);
  assert.throws(() => confusionMatrixSvg([[1, 2]]), /row 0 has 2 entries in a matrix with 1 rows/);
  assert.throws(() => confusionMatrixSvg([[1]], ["a", "b"]), /2 labels for a 1 x 1 matrix/);
  assert.throws(() => confusionMatrixSvg([[-1]]), /matrix\[0\]\[0\] = -1/);
});

test("confusionMatrixSvg stays well-formed for many classes with long labels", () => {
  const k = 40;
  const m = Array.from({ length: k }, (_, i) =>
    Array.from({ length: k }, (_, j) => (i === j ? 1000 : (i * j) % 7)),
  );
  const labels = Array.from({ length: k }, (_, i) => `a rather long class name ${i}`);
  const els = parseXml(confusionMatrixSvg(m, labels));
  assert.equal(els.filter((e) => e.name === "rect" && e.ancestors.at(-1) === "g").length, k * k);
  assert.ok(els.some((e) => e.name === "text" && (e.attrs.transform ?? "").startsWith("rotate(-40")));
});
