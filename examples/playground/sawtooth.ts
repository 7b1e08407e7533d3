/**
 * Panel 2: the lectures' sawtooth network, f_0(x) = x, f_l(x) = 2 ReLU(f_{l-1}(x)) + 2 ReLU(-f_{l-1}(x)) - 2.
 * Each layer has two ReLU units and folds the previous function in two, so f_l has 2^l linear pieces on [-2, 2].
 * The page does not take that on trust: it counts the pieces from autodiff slopes (the gradient of sum_i f(x_i)
 * over a fine grid is f'(x_i) at every grid point) and plots the function and the counts against depth, next to
 * the most a one-hidden-layer network with the same 2l ReLUs can have (2l + 1 pieces).
 */
import * as cr from "../../src/index.ts";

const f64 = { dtype: "float64" as const };

/** The depth-`depth` sawtooth network applied to every element of x. */
export function sawtooth(x: cr.Tensor, depth: number): cr.Tensor {
  let f = x;
  for (let l = 0; l < depth; l++) f = f.relu().mul(2).add(f.neg().relu().mul(2)).sub(2);
  return f;
}

/**
 * Linear pieces of f_depth on [-2, 2], counted where the autodiff slope changes between neighbouring points of a
 * grid with 16 points per piece, shifted off the kinks (which are at -2 + 4k / 2^depth) by irrational amounts.
 */
export function countPieces(depth: number): number {
  const n = 16 * 2 ** depth + 1;
  const xs = cr.linspace(-2 + 1e-7 * Math.PI, 2 - 1e-7 * Math.E, n, f64);
  const slopes = cr.grad((x: cr.Tensor) => sawtooth(x, depth).sum())(xs) as cr.Tensor;
  const s = slopes.dataSync();
  let pieces = 1;
  for (let i = 1; i < s.length; i++) if (s[i] !== s[i - 1]) pieces++;
  return pieces;
}

/** The panel's elements. */
export interface SawtoothElements {
  depth: HTMLInputElement;
  depthValue: HTMLElement;
  pieces: HTMLElement;
  plot: HTMLElement;
  countsPlot: HTMLElement;
  /** The network's graph (depth <= 3) with the reverse sweep at one point. */
  graph: HTMLElement;
}

/** The point the network's graph is evaluated at (not a kink at any depth: kinks are dyadic rationals). */
const AT = 0.3;

/** Wire the panel; returns its live state (for the page's test hook). */
export function setupSawtooth(el: SawtoothElements) {
  const state = { depth: -1, pieces: 0, counts: [] as number[], graphs: 0 };
  let gen = 0;
  const drawGraph = async (depth: number) => {
    const my = ++gen;
    if (depth > 3) {
      el.graph.innerHTML = `<p class="help">The network's graph is drawn up to depth 3.</p>`;
      return;
    }
    const g = cr.graph((x: cr.Tensor) => sawtooth(x, depth), {
      sweep: "reverse",
      inputNames: ["x"],
      title: `f_${depth} at x = ${AT}: the adjoint of x is the slope f'(x)`,
    })(cr.tensor(AT, f64));
    const svg = await g.svg();
    if (my !== gen) return;
    el.graph.innerHTML = svg;
    state.graphs++;
  };
  const draw = () => {
    const depth = Number(el.depth.value);
    for (let d = state.counts.length; d <= depth; d++) state.counts.push(countPieces(d));
    // every kink -2 + 4k / 2^depth is a grid point, so the polyline through the grid is the function exactly
    const xs = cr.linspace(-2, 2, Math.max(401, 4 * 2 ** depth + 1), f64);
    const ys = cr.noGrad(() => sawtooth(xs, depth));
    el.depthValue.textContent = String(depth);
    el.plot.innerHTML = cr.viz.linePlot({
      title: `f_${depth}(x): ${2 ** depth} linear piece${depth === 0 ? "" : "s"}`,
      xLabel: "x",
      yLabel: `f_${depth}(x)`,
      width: 520,
      height: 300,
      series: [{ name: `f_${depth}`, x: xs.dataSync(), y: ys.dataSync() }],
    });
    const depths = Array.from({ length: depth + 1 }, (_, d) => d);
    // the counts as dots (a point between gaps is drawn as a dot) on top of the 2^depth line
    const dotted = (v: number[]) => v.flatMap((a) => [a, Number.NaN]);
    el.countsPlot.innerHTML = cr.viz.linePlot({
      title: "linear pieces on [-2, 2]",
      xLabel: "depth (layers of 2 ReLUs)",
      yLabel: "pieces",
      logY: true,
      width: 460,
      height: 300,
      series: [
        { name: "2^depth", x: depths, y: depths.map((d) => 2 ** d) },
        { name: "1 layer of 2·depth ReLUs (max)", x: depths, y: depths.map((d) => 2 * d + 1) },
        { name: "counted (autodiff slopes)", x: dotted(depths), y: dotted(state.counts.slice(0, depth + 1)) },
      ],
    });
    state.depth = depth;
    state.pieces = state.counts[depth];
    el.pieces.innerHTML =
      `depth ${depth}: <b id="piece-count">${state.pieces}</b> linear pieces counted from the slopes autodiff ` +
      `reports (2<sup>${depth}</sup> = ${2 ** depth}), with only ${2 * depth} ReLU units; one hidden layer of ` +
      `${2 * depth} ReLUs gives at most ${2 * depth + 1}.`;
    void drawGraph(depth);
  };
  el.depth.addEventListener("input", draw);
  draw();
  return state;
}
