/**
 * The script of the interactive graph page (`graphHtml`, `chainrule graph --out graph.html`). It runs in the
 * browser: graph-html.ts copies this module and graph-dot.ts into the page, so the page draws with the library's
 * own `toDot` and lays the DOT text out with Graphviz's browser build (the global `Viz` of @viz-js/viz).
 *
 * What is open is a {@link ViewState}: a depth (modules nested deeper are folded boxes), module paths opened or
 * folded whatever the depth, and whether the backward pass is shown. Clicking a folded box opens that module;
 * clicking an open module's cluster label folds it; "expand all" / "collapse all" reset the depth. The state lives
 * in the URL hash (`#depth=1&expand=4,4.conv1`), so a link shares the view and the back button undoes a click.
 *
 * The state functions are pure and exported for tests; only {@link startViewer} touches the DOM. Nothing here
 * may import anything but graph-dot.ts (the page has no module loader; see `linkModules` in graph-html.ts).
 */
import { type DotView, type GraphData, toDot } from "./graph-dot.ts";

/** One picture the page can show: its data and the view it was made with (sweep, depth, title, layout). */
export interface ViewerGraph {
  data: GraphData;
  view: DotView;
}

/** What the page is given: the graph, optionally the same graph with the backward pass, and which to show first. */
export interface ViewerInput {
  forward: ViewerGraph;
  backward?: ViewerGraph;
  /** Show the backward graph first (when there is one). */
  showBackward: boolean;
}

/** What is open. */
export interface ViewState {
  /** Scopes nested deeper than this are folded (Infinity: all open). */
  depth: number;
  /** Module paths open whatever the depth. */
  expand: string[];
  /** Module paths folded whatever the depth. */
  collapse: string[];
  /** Showing the graph with the backward pass. */
  backward: boolean;
}

/** The root module's path ("") as written in the hash. */
const ROOT = ".";

const encodePaths = (ps: readonly string[]) =>
  ps.map((p) => encodeURIComponent(p === "" ? ROOT : p)).join(",");

const decodePaths = (s: string): string[] =>
  s === ""
    ? []
    : s.split(",").map((p) => {
        const d = decodeURIComponent(p);
        return d === ROOT ? "" : d;
      });

/** The hash of a state: `#depth=1&expand=4,4.conv1&collapse=5&backward=1` (`depth=all`: everything open). */
export function formatHash(s: ViewState): string {
  const parts = [`depth=${Number.isFinite(s.depth) ? s.depth : "all"}`];
  if (s.expand.length > 0) parts.push(`expand=${encodePaths(s.expand)}`);
  if (s.collapse.length > 0) parts.push(`collapse=${encodePaths(s.collapse)}`);
  if (s.backward) parts.push("backward=1");
  return `#${parts.join("&")}`;
}

/** The state a hash describes; what it does not say (or says wrongly) is taken from `base`. */
export function parseHash(hash: string, base: ViewState): ViewState {
  const s: ViewState = { ...base, expand: [...base.expand], collapse: [...base.collapse] };
  const body = hash.startsWith("#") ? hash.slice(1) : hash;
  if (body === "") return s;
  // a hash that names anything replaces the base's lists (a shared link is the whole view)
  s.expand = [];
  s.collapse = [];
  s.backward = false;
  for (const kv of body.split("&")) {
    const i = kv.indexOf("=");
    const k = i < 0 ? kv : kv.slice(0, i);
    const v = i < 0 ? "" : kv.slice(i + 1);
    try {
      if (k === "depth") {
        const n = v === "all" ? Number.POSITIVE_INFINITY : Number(v);
        if (v !== "" && (n === Number.POSITIVE_INFINITY || (Number.isInteger(n) && n >= 0))) s.depth = n;
      } else if (k === "expand") s.expand = decodePaths(v);
      else if (k === "collapse") s.collapse = decodePaths(v);
      else if (k === "backward") s.backward = v === "1";
    } catch {
      // a malformed percent escape: keep the base's value for this key
    }
  }
  return s;
}

/** The view `toDot` draws for a state, on top of the graph's own view (sweep, title, layout). */
export function dotView(base: DotView, s: ViewState): DotView {
  return {
    ...base,
    depth: Number.isFinite(s.depth) ? s.depth : undefined,
    expand: s.expand,
    collapse: s.collapse,
  };
}

const within = (p: string, root: string) => root === "" || p === root || p.startsWith(`${root}.`);

/** Open the module at `path` (a folded box was clicked). */
export function expandPath(s: ViewState, path: string): ViewState {
  return {
    ...s,
    expand: s.expand.includes(path) ? s.expand : [...s.expand, path],
    // folds of it and of the modules around it are lifted, so it shows
    collapse: s.collapse.filter((c) => !within(path, c)),
  };
}

/** Fold the module at `path` (an open module's label was clicked); what was opened inside it is forgotten. */
export function collapsePath(s: ViewState, path: string): ViewState {
  return {
    ...s,
    expand: s.expand.filter((e) => !within(e, path)),
    collapse: [...s.collapse.filter((c) => !within(c, path)), path],
  };
}

/** Everything open. */
export function expandAll(s: ViewState): ViewState {
  return { ...s, depth: Number.POSITIVE_INFINITY, expand: [], collapse: [] };
}

/** Everything folded into the outermost boxes. */
export function collapseAll(s: ViewState): ViewState {
  return { ...s, depth: 0, expand: [], collapse: [] };
}

/** Graphviz's browser build (the global `Viz` of @viz-js/viz's dist/viz-global.js), as far as the page uses it. */
export interface VizGlobal {
  instance(): Promise<{ renderSVGElement(dot: string): SVGSVGElement }>;
}

/**
 * Run the page: draw `input` in the element #graph, wire the buttons (#expand-all, #collapse-all, the checkbox
 * #backward inside #backward-toggle) and the clicks on boxes and labels, and keep the URL hash in step. After each
 * drawing, #graph's `data-view` attribute is the hash of what is drawn and #status says how many nodes it has.
 */
export function startViewer(input: ViewerInput, viz: VizGlobal): void {
  const $ = (id: string) => {
    const el = document.getElementById(id);
    if (el === null) throw new Error(`graph page: no element #${id}`);
    return el;
  };
  const root = $("graph");
  const status = $("status");
  const toggle = $("backward") as HTMLInputElement;
  const hasBackward = input.backward !== undefined;
  if (!hasBackward) $("backward-toggle").hidden = true;
  const first = input.showBackward && hasBackward ? input.backward! : input.forward;
  const base: ViewState = {
    depth: first.view.depth ?? Number.POSITIVE_INFINITY,
    expand: [...(first.view.expand ?? [])],
    collapse: [...(first.view.collapse ?? [])],
    backward: input.showBackward && hasBackward,
  };
  const read = (): ViewState => {
    const s = parseHash(location.hash, base);
    return hasBackward ? s : { ...s, backward: false };
  };
  let state = read();
  const go = (next: ViewState) => {
    const h = formatHash(next);
    state = next;
    if (h !== location.hash) location.hash = h; // hashchange draws it (and the back button can undo it)
  };
  const instance = viz.instance();
  let drawn = "";
  let queue = Promise.resolve();

  const draw = async () => {
    const s = state;
    const key = formatHash(s);
    if (key === drawn) return;
    const g = s.backward && input.backward !== undefined ? input.backward : input.forward;
    toggle.checked = s.backward;
    status.textContent = "laying out\u2026";
    await new Promise((r) => setTimeout(r, 0)); // let the status show before a long layout
    try {
      const svg = (await instance).renderSVGElement(toDot(g.data, dotView(g.view, s)));
      annotate(svg, g.data);
      root.replaceChildren(svg);
      drawn = key;
      root.dataset.view = key;
      status.textContent = `${svg.querySelectorAll("g.node").length} nodes`;
    } catch (err) {
      status.textContent = `could not draw the graph: ${err instanceof Error ? err.message : String(err)}`;
      console.error(err);
    }
  };
  const redraw = () => {
    queue = queue.then(draw);
  };

  root.addEventListener("click", (e) => {
    const t = e.target instanceof Element ? e.target : null;
    const box = t?.closest("[data-expand]");
    if (box) {
      go(expandPath(state, box.getAttribute("data-expand") ?? ""));
      return;
    }
    const label = t?.closest("[data-collapse]");
    if (label) go(collapsePath(state, label.getAttribute("data-collapse") ?? ""));
  });
  $("expand-all").addEventListener("click", () => go(expandAll(state)));
  $("collapse-all").addEventListener("click", () => go(collapseAll(state)));
  toggle.addEventListener("change", () => go({ ...state, backward: toggle.checked }));
  window.addEventListener("hashchange", () => {
    state = read();
    redraw();
  });
  history.replaceState(null, "", formatHash(state));
  redraw();
}

/** Mark the folded boxes and the open modules' labels as clickable, with a tooltip saying what a click does. */
function annotate(svg: SVGSVGElement, data: GraphData): void {
  const scopeOf = (g: Element, re: RegExp) => {
    const m = re.exec(g.querySelector(":scope > title")?.textContent ?? "");
    return m === null ? undefined : data.scopes[Number(m[1])];
  };
  for (const g of Array.from(svg.querySelectorAll("g.node"))) {
    const s = scopeOf(g, /^s(\d+)$/);
    if (s === undefined) continue;
    g.setAttribute("data-expand", s.path);
    g.setAttribute("class", "node module-box");
    g.querySelector(":scope > title")!.textContent = `${s.label}: click to open`;
  }
  for (const g of Array.from(svg.querySelectorAll("g.cluster"))) {
    const s = scopeOf(g, /^cluster_s(\d+)$/);
    if (s === undefined) continue;
    g.querySelector(":scope > title")!.textContent = `${s.label}: click the label to fold`;
    for (const t of Array.from(g.querySelectorAll(":scope > text"))) {
      t.setAttribute("data-collapse", s.path);
      t.setAttribute("class", "module-label");
    }
  }
}
