/**
 * A graph as one self-contained HTML page: `await graphHtml(g)` (`chainrule graph --out graph.html`). The page
 * embeds the picture's data (`GraphData` as JSON), Graphviz's browser build (@viz-js/viz's dist/viz-global.js:
 * Graphviz compiled to WebAssembly, the wasm inlined) and the viewer script (graph-viewer.ts, drawing with the
 * library's own `toDot` from graph-dot.ts). It opens from file:// with no server and no network; module boxes
 * open and fold on click, the backward pass can be toggled when the page has it, and the view is in the URL hash.
 *
 * No bundler is needed at run time: the two modules are read from beside this file and linked into one script
 * by {@link linkModules} (they import nothing but each other). An installed package reads the compiled
 * dist/viz/graph-dot.js and graph-viewer.js; a checkout running the TypeScript sources (tsx) strips their types
 * with esbuild, a devDependency.
 *
 * Node only (reads files); the rest of the graph code is browser-safe.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Graph } from "./graph.ts";
import type { ViewerInput } from "./graph-viewer.ts";

/** Options of {@link graphHtml}. */
export interface GraphHtmlOptions {
  /**
   * The same picture with the backward pass (e.g. `trainingStepGraph(..., { backward: true })`): the page gets a
   * "backward pass" toggle switching between the two.
   */
  backward?: Graph;
  /** Show the backward graph first (default false). */
  showBackward?: boolean;
  /** The page's title (default the graph's title, else "computation graph"). */
  title?: string;
}

/** The modules the page's script is made of, in dependency order. */
const VIEWER_MODULES = ["graph-dot", "graph-viewer"] as const;

/**
 * Link ES modules that import only each other (`import { a, b as c } from "./name.js"`) into one script: each
 * becomes a function returning its exports, kept in `__modules`. Exports may be inline (`export function f`,
 * tsc's output) or a list (`export { f, g };`, esbuild's); anything else (default exports, re-exports, imports of
 * other files) is refused, so a change to the viewer that this cannot link fails loudly instead of at page load.
 *
 * @internal Exported for tests.
 */
export function linkModules(modules: readonly { name: string; code: string }[]): string {
  const out = ["const __modules = {};"];
  const known = new Set<string>();
  for (const { name, code } of modules) {
    const exports: string[] = [];
    let body = code.replace(/^\/\/# sourceMappingURL=.*$/gm, "");
    body = body.replace(
      /^import\s*\{([^}]*)\}\s*from\s*["']\.\/([\w-]+)\.(?:js|ts)["'];?[ \t]*$/gm,
      (_m, names: string, from: string) => {
        if (!known.has(from))
          throw new Error(`graphHtml: ${name} imports ./${from}, which is not linked before it`);
        const binds = names
          .split(",")
          .map((n) => n.trim())
          .filter((n) => n !== "")
          .map((n) => n.replace(/\s+as\s+/, ": "));
        return `const { ${binds.join(", ")} } = __modules[${JSON.stringify(from)}];`;
      },
    );
    body = body.replace(/^export\s*\{([^}]*)\};?[ \t]*$/gm, (_m, names: string) => {
      for (const n of names.split(",").map((x) => x.trim())) {
        if (n === "") continue;
        const m = /^(\w+)(?:\s+as\s+(\w+))?$/.exec(n);
        if (m === null) throw new Error(`graphHtml: cannot link the export "${n}" of ${name}`);
        exports.push(m[2] === undefined ? m[1] : `${m[2]}: ${m[1]}`);
      }
      return "";
    });
    body = body.replace(
      /^export\s+((?:async\s+)?function\*?|const|let|class)\s+(\w+)/gm,
      (_m, kind: string, id: string) => {
        exports.push(id);
        return `${kind} ${id}`;
      },
    );
    const left = /^\s*(import|export)\b.*$/m.exec(body);
    if (left !== null) throw new Error(`graphHtml: cannot link ${name}: "${left[0].trim()}"`);
    out.push(
      `__modules[${JSON.stringify(name)}] = (() => {\n${body.trim()}\nreturn { ${exports.join(", ")} };\n})();`,
    );
    known.add(name);
  }
  return out.join("\n");
}

/** A module's JavaScript: the compiled name.js beside `dir` (an installed package), else name.ts with types stripped. */
async function moduleCode(dir: string, name: string): Promise<string> {
  const js = join(dir, `${name}.js`);
  if (existsSync(js)) return readFileSync(js, "utf8");
  const ts = join(dir, `${name}.ts`);
  if (!existsSync(ts)) throw new Error(`graphHtml: neither ${js} nor ${ts} exists`);
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch (err) {
    throw new Error(
      `graphHtml: running from the TypeScript sources needs esbuild (a devDependency) to strip the viewer's types: ${(err as Error).message}`,
    );
  }
  return esbuild.transformSync(readFileSync(ts, "utf8"), { loader: "ts", format: "esm", target: "es2022" })
    .code;
}

/**
 * The page's script: graph-dot and graph-viewer linked (from `dir`, default this file's directory).
 *
 * @internal Exported for tests (which link the compiled .js files as an installed package has them).
 */
export async function viewerScript(dir: string = dirname(fileURLToPath(import.meta.url))): Promise<string> {
  const modules = [];
  for (const name of VIEWER_MODULES) modules.push({ name, code: await moduleCode(dir, name) });
  return linkModules(modules);
}

/** Graphviz's browser build: @viz-js/viz's dist/viz-global.js (a classic script defining the global `Viz`). */
function vizGlobalScript(): string {
  const main = createRequire(import.meta.url).resolve("@viz-js/viz"); // dist/viz.cjs
  const file = join(dirname(main), "viz-global.js");
  if (!existsSync(file)) throw new Error(`graphHtml: ${file} is missing (a broken @viz-js/viz install?)`);
  return readFileSync(file, "utf8");
}

/** Script text safe inside <script>...</script>: no "</script" and no "<!--" (both only in strings and comments). */
function scriptText(s: string): string {
  return s.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const GRAPHVIZ_NOTICE = `Graphviz in this page: @viz-js/viz (Viz.js, Copyright (c) Michael Daines, MIT License), whose
dist/viz-global.js is included unchanged below. It contains in object code form Graphviz (graphviz.org,
Eclipse Public License 1.0) and Expat (libexpat, MIT License); their license texts come with their sources.`;

const STYLE = `
  body { margin: 0; font: 14px Helvetica, Arial, sans-serif; color: #1b2631; }
  header { position: sticky; top: 0; background: #fbfcfc; border-bottom: 1px solid #d5d8dc; padding: 8px 12px; z-index: 1; }
  header h1 { font-size: 16px; margin: 0 0 6px; }
  header button { font: inherit; margin-right: 6px; }
  header label { margin: 0 12px 0 6px; }
  #status { color: #5d6d7e; }
  .hint { color: #5d6d7e; margin: 6px 0 0; font-size: 12px; }
  #graph { padding: 12px; }
  #graph svg { max-width: none; height: auto; }
  #graph .module-box, #graph .module-label { cursor: pointer; }
  #graph .module-box:hover polygon { stroke-width: 3; }
  #graph .module-label:hover { text-decoration: underline; }
`;

/**
 * The page for `graph` (and, with `opts.backward`, the same picture with the backward pass behind a toggle).
 *
 * @example
 * ```ts
 * const fwd = trainingStepGraph(net, x, y, { depth: 1 });
 * const bwd = trainingStepGraph(net, x, y, { depth: 1, backward: true });
 * writeFileSync("step.html", await graphHtml(fwd, { backward: bwd }));
 * ```
 */
export async function graphHtml(graph: Graph, opts: GraphHtmlOptions = {}): Promise<string> {
  const input: ViewerInput = {
    forward: { data: graph.data, view: graph.view },
    backward:
      opts.backward === undefined ? undefined : { data: opts.backward.data, view: opts.backward.view },
    showBackward: opts.showBackward === true && opts.backward !== undefined,
  };
  const title = opts.title ?? graph.view.title ?? "computation graph";
  // JSON in a script element: "<" escaped, so no label can close the element
  const json = JSON.stringify(input).replace(/</g, "\\u003c");
  const script = await viewerScript();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<button id="expand-all" type="button">expand all</button><button id="collapse-all" type="button">collapse all</button>
<label id="backward-toggle"><input id="backward" type="checkbox"> backward pass</label>
<span id="status">loading Graphviz\u2026</span>
<p class="hint">Click a module's box to open it; click an open module's label to fold it. The view is in the address (#\u2026): a link to it shows the same view.</p>
</header>
<main id="graph"></main>
<script type="application/json" id="graph-data">${json}</script>
<!--
${GRAPHVIZ_NOTICE}
-->
<script>
${scriptText(vizGlobalScript())}
</script>
<script type="module">
${scriptText(script)}
__modules["graph-viewer"].startViewer(JSON.parse(document.getElementById("graph-data").textContent), globalThis.Viz);
</script>
</body>
</html>
`;
}
