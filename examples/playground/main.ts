/**
 * The lecture playground (`npm run playground`): three panels on chainrule's wasm backend.
 *
 * 1. an expression in x and y -> its computation graph with values, adjoints (reverse mode) and dual numbers
 *    (forward mode), redrawn as you type (graphs.ts, expression language in expr.ts);
 * 2. the sawtooth network, whose linear pieces double with every layer (sawtooth.ts);
 * 3. a small MLP training live on a 2-D toy problem, with its loss curve and one training step as a graph
 *    (mlp.ts).
 *
 * URL parameter: backend (default wasm; "js" for the reference backend; "webgpu" where the browser has WebGPU,
 * falling back to wasm otherwise), also set by the backend menu. Once started, `window.playground`
 * holds the panels' state for the browser test (test/browser/playground.test.ts). In your own project, import from
 * "chainrule" instead of the sources.
 */
import * as cr from "../../src/index.ts";
import { setupGraphs } from "./graphs.ts";
import { setupMlp } from "./mlp.ts";
import { setupSawtooth } from "./sawtooth.ts";

// Graphviz (wasm) goes into the page's bundle: chainrule leaves its import to the application's bundler
cr.viz.setGraphvizLoader(() => import("@viz-js/viz"));

const byId = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/**
 * The backend menu: wasm, js, or WebGPU where the browser has `navigator.gpu`; choosing one reloads the page
 * with `?backend=`.
 */
function backendMenu(current: string): void {
  const menu = byId<HTMLSelectElement>("backend-choice");
  const gpu = menu.querySelector('option[value="webgpu"]') as HTMLOptionElement;
  if (!("gpu" in navigator)) {
    gpu.disabled = true;
    gpu.textContent = "WebGPU (not in this browser)";
  }
  menu.value = current;
  menu.onchange = () => {
    const params = new URLSearchParams(location.search);
    params.set("backend", menu.value);
    location.search = params.toString();
  };
}

async function main() {
  const badge = byId("backend");
  const { backend, fallback } = await cr.init({
    backend: new URLSearchParams(location.search).get("backend") ?? "wasm",
  });
  badge.textContent = `backend: ${backend}`;
  if (fallback !== undefined) badge.title = fallback;
  badge.classList.add(backend);
  backendMenu(backend);
  const graphs = setupGraphs({
    expr: byId("expr"),
    x: byId("x"),
    y: byId("y"),
    xRange: byId("x-range"),
    yRange: byId("y-range"),
    seedX: byId("seed-x"),
    seedY: byId("seed-y"),
    error: byId("expr-error"),
    summary: byId("summary"),
    forward: byId("graph-forward"),
    reverse: byId("graph-reverse"),
    tangent: byId("graph-tangent"),
  });
  const sawtooth = setupSawtooth({
    depth: byId("depth"),
    depthValue: byId("depth-value"),
    pieces: byId("pieces"),
    plot: byId("sawtooth-plot"),
    countsPlot: byId("pieces-plot"),
    graph: byId("sawtooth-graph"),
  });
  const mlp = setupMlp({
    dataset: byId("dataset"),
    train: byId("train"),
    step: byId("step"),
    reset: byId("reset"),
    status: byId("mlp-status"),
    boundary: byId("boundary"),
    lossPlot: byId("loss-plot"),
    speed: byId("speed"),
    stepGraph: byId("step-graph"),
    openModules: byId("open-modules"),
    showBackward: byId("show-backward"),
  });
  await graphs.ready;
  return { backend, graphs: graphs.state, sawtooth, mlp };
}

main().then(
  (state) => Object.assign(window, { playground: state }),
  (e) => {
    byId("backend").textContent = `failed to start: ${e instanceof Error ? e.message : e}`;
    Object.assign(window, { playgroundError: String(e) });
  },
);
