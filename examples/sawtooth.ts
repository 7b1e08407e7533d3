/**
 * Example: the lectures' "sawtooth" network, which shows why depth buys expressive power.
 *
 *   f_0(x) = x,   f_l(x) = 2 ReLU(f_{l-1}(x)) + 2 ReLU(-f_{l-1}(x)) - 2     (= 2 |f_{l-1}(x)| - 2)
 *
 * Each layer has just two ReLU units, yet on [-2, 2] it folds the previous function in two: f_l has 2^l linear
 * pieces, i.e. 2^l - 1 kinks, while a network with one hidden layer of n ReLUs has at most n kinks. So the
 * number of kinks grows exponentially with depth but only linearly with width.
 *
 * We never look at the formula to count: we take derivatives with autodiff (`grad` of sum f(x) over a fine grid
 * gives f'(x) at every grid point, because f acts on each point separately) and count where the slope changes.
 * The grid is shifted by an irrational amount so that no grid point lands exactly on a kink; at a kink, ReLU is
 * not differentiable and autodiff reports the convention ReLU'(0) = 0 instead of a true derivative. The last
 * part evaluates the derivative *at* the kinks under `checkKinks` (src/core/check.ts), which reports each ReLU
 * evaluated exactly at 0 during a derivative computation.
 *
 * Outputs (in --out, default runs/examples/sawtooth/): kinks.svg (depth vs number of kinks, log scale) and
 * functions.svg (f_1 .. f_4).
 *
 * Run:  npx tsx examples/sawtooth.ts [--max-depth 8] [--points 20001] [--out dir]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { checkKinks, grad, linspace, noGrad, type Tensor, tensor, viz } from "../src/index.ts";

const { values: opts } = parseArgs({
  options: {
    "max-depth": { type: "string", default: "8" },
    points: { type: "string", default: "20001" }, // grid points on [-2, 2]
    out: { type: "string", default: "runs/examples/sawtooth" },
  },
});
const maxDepth = Number(opts["max-depth"]);
const points = Number(opts.points);
if (!(Number.isInteger(maxDepth) && maxDepth >= 1 && maxDepth <= 20)) {
  throw new RangeError(`sawtooth: --max-depth must be an integer in [1, 20], got ${opts["max-depth"]}`);
}
// A piece of f_l is 4 / 2^l wide; we want a few grid points on every piece.
if (!(Number.isInteger(points) && points >= 4 * 2 ** maxDepth)) {
  throw new RangeError(`sawtooth: --points must be an integer >= 4 * 2^max-depth = ${4 * 2 ** maxDepth}`);
}
mkdirSync(opts.out, { recursive: true });
const f64 = { dtype: "float64" as const }; // exact slopes (+-2^l) and exactly representable kinks

/** The depth-l sawtooth network applied to every element of x. */
function sawtooth(x: Tensor, depth: number): Tensor {
  let f = x;
  for (let l = 0; l < depth; l++) f = f.relu().mul(2).add(f.neg().relu().mul(2)).sub(2);
  return f;
}

/** f'(x) at every element of xs: the gradient of sum_i f(x_i) with respect to x_i is f'(x_i). */
function slopes(xs: Tensor, depth: number): Float64Array {
  const g = grad((x: Tensor) => sawtooth(x, depth).sum())(xs) as Tensor;
  return g.dataSync() as Float64Array;
}

// ---- 1. count linear pieces from autodiff slopes ------------------------------------------------------------
// Shift both ends by irrational multiples of 1e-7 so no grid point is a dyadic rational (the kinks are at
// x = -2 + 4k / 2^l).
const xs = linspace(-2 + 1e-7 * Math.PI, 2 - 1e-7 * Math.E, points, f64);
const grid = xs.dataSync() as Float64Array;
const depths: number[] = [];
const kinkCounts: number[] = [];
const kinkPoints = new Map<number, number[]>(); // depth -> estimated kink locations
console.log("depth  pieces  kinks  2^depth-1  |slope|");
for (let depth = 1; depth <= maxDepth; depth++) {
  const s = slopes(xs, depth);
  const f = noGrad(() => sawtooth(xs, depth)).dataSync() as Float64Array;
  const found: number[] = [];
  for (let i = 1; i < s.length; i++) {
    if (s[i] === s[i - 1]) continue;
    // Between grid points i-1 and i the slope changes: intersect the two linear pieces
    // y = f[i-1] + s[i-1] (x - x[i-1]) and y = f[i] + s[i] (x - x[i]) to locate the kink.
    const x = (f[i] - s[i] * grid[i] - f[i - 1] + s[i - 1] * grid[i - 1]) / (s[i - 1] - s[i]);
    found.push(x);
  }
  depths.push(depth);
  kinkCounts.push(found.length);
  kinkPoints.set(depth, found);
  const maxSlope = s.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  console.log(
    `${String(depth).padStart(5)}  ${String(found.length + 1).padStart(6)}  ${String(found.length).padStart(5)}` +
      `  ${String(2 ** depth - 1).padStart(9)}  ${maxSlope}`,
  );
}

// linePlot draws a point between two gaps (NaN) as a dot: the counts show as dots on top of the 2^depth - 1
// line they should lie on, instead of a second line hiding the first.
const dotted = (v: number[]) => v.flatMap((a) => [a, Number.NaN]);
writeFileSync(
  join(opts.out, "kinks.svg"),
  viz.linePlot({
    title: "Sawtooth: kinks double with every layer",
    xLabel: "depth (layers of 2 ReLUs)",
    yLabel: "kinks on [-2, 2]",
    logY: true,
    width: 720,
    series: [
      { name: "2^depth - 1", x: depths, y: depths.map((d) => 2 ** d - 1) },
      // A network with one hidden layer has at most one kink per ReLU: the same 2 * depth units spent on
      // width instead of depth give at most 2 * depth kinks.
      { name: "1 layer, 2·depth ReLUs (max)", x: depths, y: depths.map((d) => 2 * d) },
      { name: "counted (autodiff)", x: dotted(depths), y: dotted(kinkCounts) },
    ],
  }),
);

// ---- 2. plot f_1 .. f_4 -------------------------------------------------------------------------------------
const plotX = linspace(-2, 2, 801, f64);
const plotDepths = [1, 2, 3, 4].filter((d) => d <= maxDepth);
writeFileSync(
  join(opts.out, "functions.svg"),
  viz.linePlot({
    title: "f_l = 2 ReLU(f_{l-1}) + 2 ReLU(-f_{l-1}) - 2,  f_0 = x",
    xLabel: "x",
    yLabel: "f_l(x)",
    series: plotDepths.map((d) => ({
      name: `f_${d}`,
      x: plotX.dataSync(),
      y: noGrad(() => sawtooth(plotX, d)).dataSync(),
    })),
  }),
);

// ---- 3. derivatives exactly at the kinks --------------------------------------------------------------------
// At a kink f_{j}(x) = 0 for some layer j, so both ReLU(f_j) and ReLU(-f_j) see exactly 0. The one-sided slopes
// are +-2^depth, but autodiff uses ReLU'(0) = 0 and reports slope 0: a valid element of neither one-sided
// derivative. checkKinks reports every such evaluation.
const depth = Math.min(3, maxDepth);
const kinks = kinkPoints.get(depth) ?? [];
const exact = Array.from({ length: 2 ** depth - 1 }, (_, k) => -2 + (4 * (k + 1)) / 2 ** depth);
console.log(`\ndepth ${depth}: kinks located at ${kinks.map((x) => x.toPrecision(6)).join(", ")}`);
console.log(`          (exactly -2 + 4k/2^${depth}: ${exact.join(", ")})`);
console.log(
  `autodiff slopes at the kinks, where the true one-sided slopes are -${2 ** depth} and +${2 ** depth}:`,
);
for (const x of exact) {
  const { result, kinks: reports } = checkKinks(() => slopes(tensor([x], f64), depth));
  console.log(
    `  x = ${String(x).padEnd(4)}  slope ${result[0]}  checkKinks: ${reports.length} reports (${reports.map((r) => r.op).join(", ")})`,
  );
}
const away = checkKinks(() => slopes(tensor([0.3, -1.1], f64), depth));
console.log(
  `  away from the kinks (x = 0.3, -1.1): slopes ${Array.from(away.result).join(", ")}, ${away.kinks.length} reports`,
);
console.log(`a report says: "${checkKinks(() => slopes(tensor([0], f64), depth)).kinks[0]?.message}"`);
console.log(`\nwrote kinks.svg and functions.svg to ${opts.out}`);
