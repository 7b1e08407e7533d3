import assert from "node:assert/strict";
import { test } from "node:test";
import { barChart, sparkline } from "../../src/viz/ascii.ts";

test("sparkline maps the range onto the eight block characters", () => {
  assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7]), "▁▂▃▄▅▆▇█");
  assert.equal(sparkline(new Float32Array([1, Number.NaN, 3])), "▁ █");
  assert.equal(sparkline([4, 4, 4]), "▄▄▄");
  assert.equal(sparkline([]), "");
  assert.equal(sparkline([Number.NaN]), " ");
  assert.equal(sparkline([0, 0.5, 1], { min: 0, max: 2 }), "▁▃▅");
  assert.equal(sparkline([-5, 10], { min: 0, max: 1 }), "▁█"); // clamped
  assert.equal(sparkline([Number.NEGATIVE_INFINITY, 0, 1]), "▁▁█");
});

test("sparkline with a width averages buckets", () => {
  // Buckets [0,1], [2,3], [4,5], [6,7] -> 0.5, 2.5, 4.5, 6.5.
  assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7], { width: 4 }), "▁▃▆█");
  assert.equal(sparkline([0, 1], { width: 5 }), "▁█");
  assert.equal(sparkline([Number.NaN, Number.NaN, 1, 3], { width: 2 }), " ▄");
  assert.throws(() => sparkline([1], { width: 0 }), /width must be a positive integer, got 0/);
});

test("barChart draws proportional bars with 1/8 resolution and aligned values", () => {
  const out = barChart({ cat: 0.91, dog: 0.5, "long label": 0.123 }, { width: 10 });
  assert.equal(
    out,
    ["cat        │██████████ 0.91", "dog        │█████▌     0.5", "long label │█▍         0.123"].join("\n"),
  );
});

test("barChart with negative values puts zero in the middle; non-finite values get no bar", () => {
  const out = barChart(
    [
      { label: "a", value: -2 },
      { label: "b", value: 2 },
      { label: "c", value: Number.NaN },
      { label: "d", value: 0 },
    ],
    { width: 8, format: (v) => v.toFixed(1) },
  );
  assert.equal(out, ["a ████│     -2.0", "b     │████ 2.0", "c     │     NaN", "d     │     0.0"].join("\n"));
  assert.equal(barChart([]), "");
  assert.throws(() => barChart({ a: 1 }, { width: 1.5 }), /width must be a positive integer/);
});
