/**
 * The interactive graph page (`chainrule graph --out graph.html`, `graphHtml`): the view state and its URL hash;
 * the module linking that puts graph-dot and the viewer into the page, from the TypeScript sources (this
 * checkout) and from compiled ESM as an installed package's dist/ has it; the page is self-contained (no
 * http(s) resource, the data is the traced graph's); and in headless Chromium, opened from file://, it draws the
 * folded boxes, a click on a box opens the module (its children's boxes appear, more nodes), a click on the open
 * module's label folds it, the hash follows, "expand all" / "collapse all" and the backward toggle work, and a
 * link with a hash opens that view.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { before, test } from "node:test";
import vm from "node:vm";
import puppeteer, { type Page } from "puppeteer-core";
import ts from "typescript";
import { setBackend } from "../../src/backend/registry.ts";
import { DEFAULTS } from "../../src/cli/args.ts";
import { buildModel } from "../../src/cli/models.ts";
import { manualSeed, randn, tensor } from "../../src/ops/creation.ts";
import { type GraphData, toDot } from "../../src/viz/graph-dot.ts";
import { linkModules, viewerScript } from "../../src/viz/graph-html.ts";
import { trainingStepGraph } from "../../src/viz/graph-model.ts";
import {
  collapseAll,
  collapsePath,
  dotView,
  expandAll,
  expandPath,
  formatHash,
  parseHash,
  type ViewState,
} from "../../src/viz/graph-viewer.ts";
import { CHROMIUM, FLAGS } from "../browser/chromium.ts";
import { run, tempDirs } from "./helpers.ts";

before(() => setBackend("js"));
const tmp = tempDirs("graph-html");
const src = join(import.meta.dirname, "../../src/viz");

function resnetStep(backward: boolean) {
  manualSeed(0);
  const { net } = buildModel({
    name: "resnet",
    inputShape: [1, 28, 28],
    numClasses: 10,
    hidden: [...DEFAULTS.hidden],
    dropout: 0,
    mean: 0.1307,
    std: 0.3081,
  });
  return trainingStepGraph(net, randn([2, 1, 28, 28]), tensor([3, 7], { dtype: "int32" }), {
    backward,
    depth: 1,
  });
}

const base: ViewState = { depth: 1, expand: [], collapse: [], backward: false };

test("view state: hash round trip, opening and folding by path as toDot draws it", () => {
  const states: ViewState[] = [
    base,
    { depth: Number.POSITIVE_INFINITY, expand: [], collapse: [], backward: true },
    { depth: 0, expand: ["", "4", "4.conv1"], collapse: ["5", "a,b&c=d"], backward: false },
  ];
  for (const s of states) assert.deepEqual(parseHash(formatHash(s), base), s, formatHash(s));
  assert.equal(formatHash(states[1]), "#depth=all&backward=1");
  assert.equal(formatHash({ ...base, expand: ["4", "4.conv1"] }), "#depth=1&expand=4,4.conv1");
  // an empty hash is the base; a malformed one keeps what it cannot read
  assert.deepEqual(parseHash("", { ...base, expand: ["3"] }), { ...base, expand: ["3"] });
  assert.deepEqual(parseHash("#depth=-2&expand=%E0%A4%A&backward=1", base), { ...base, backward: true });

  const g = resnetStep(false);
  const draw = (s: ViewState) => toDot(g.data, dotView(g.view, s));
  const box = (label: string) => `${label} \u25b8`;
  const at1 = draw(base);
  assert.ok(at1.includes(box("4: BasicBlock()")) && !at1.includes("conv1: Conv2d"));
  const open4 = expandPath(base, "4");
  assert.deepEqual(open4, { ...base, expand: ["4"] });
  const d4 = draw(open4);
  assert.ok(d4.includes('label="4: BasicBlock()"'), "block 4 is a cluster");
  assert.ok(d4.includes(box("conv1: Conv2d(16\u219216, 3x3)")), "its children are boxes");
  const open41 = expandPath(open4, "4.conv1");
  assert.ok(!draw(open41).includes(box("conv1: Conv2d(16\u219216, 3x3)")), "conv1 open");
  // folding 4 forgets what was opened inside it; opening it again lifts the fold
  const fold4 = collapsePath(open41, "4");
  assert.deepEqual(fold4, { ...base, collapse: ["4"] });
  assert.ok(draw(fold4).includes(box("4: BasicBlock()")));
  assert.deepEqual(expandPath(fold4, "4"), { ...base, expand: ["4"] });
  // folding a module inside an open depth; opening a module inside a folded one lifts the outer fold
  const all = expandAll(fold4);
  assert.deepEqual(all, { ...base, depth: Number.POSITIVE_INFINITY });
  assert.ok(!draw(all).includes("\u25b8"), "nothing folded");
  assert.deepEqual(expandPath(collapsePath(all, ""), "4").collapse, []);
  const none = collapseAll(open41);
  assert.deepEqual(none, { ...base, depth: 0 });
  const boxes = draw(none).match(/\u25b8"/g) ?? [];
  assert.equal(boxes.length, 1, "collapse all: the network is one box");
});

/** Evaluate a linked viewer script in a fresh context; returns its modules. */
function linked(script: string): Record<string, Record<string, unknown>> {
  const ctx = vm.createContext({});
  vm.runInContext(`${script}\nglobalThis.__out = __modules;`, ctx);
  return (ctx as { __out: Record<string, Record<string, unknown>> }).__out;
}

test("the viewer links from the TypeScript sources and from compiled ESM (an installed package's dist/)", async () => {
  const g = resnetStep(true);
  const view = { ...g.view, expand: ["4"] };
  const want = toDot(g.data, view);
  // dist/: tsc's ESM output (inline `export function`, `import { toDot } from "./graph-dot.js"`)
  const dist = tmp("dist");
  for (const name of ["graph-dot", "graph-viewer"]) {
    const out = ts.transpileModule(readFileSync(join(src, `${name}.ts`), "utf8"), {
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        rewriteRelativeImportExtensions: true,
        sourceMap: false,
      },
    }).outputText;
    assert.match(out, /^export function toDot|^import \{ toDot \} from "\.\/graph-dot\.js"/m);
    writeFileSync(join(dist, `${name}.js`), `${out}\n//# sourceMappingURL=${name}.js.map\n`);
  }
  for (const script of [await viewerScript(), await viewerScript(dist)]) {
    const m = linked(script);
    const dot = (m["graph-dot"].toDot as typeof toDot)(g.data, view);
    assert.equal(dot, want);
    const fh = m["graph-viewer"].formatHash as typeof formatHash;
    assert.equal(fh({ ...base, expand: ["4"] }), "#depth=1&expand=4");
    assert.equal(typeof m["graph-viewer"].startViewer, "function");
  }
  // export lists (esbuild's output), renamed imports; unlinkable forms are refused
  const m = linked(
    linkModules([
      { name: "a", code: "function f() { return 2; }\nconst k = 3;\nexport { f, k as three };\n" },
      { name: "b", code: 'import { f, three as t } from "./a.js";\nexport const g = () => f() * t;\n' },
    ]),
  );
  assert.equal((m.b.g as () => number)(), 6);
  assert.throws(() => linkModules([{ name: "c", code: 'import x from "y";\n' }]), /cannot link c/);
  assert.throws(
    () => linkModules([{ name: "c", code: 'import { x } from "./d.js";\n' }]),
    /not linked before/,
  );
  assert.throws(() => linkModules([{ name: "c", code: "export default 1;\n" }]), /cannot link c/);
});

let page = "";
let data: { forward: { data: GraphData }; backward: { data: GraphData }; showBackward: boolean };

test("chainrule graph --out x.html writes one self-contained page holding both graphs", async () => {
  const dir = tmp("cli");
  page = join(dir, "sub", "resnet.html");
  const r = await run(["graph", "--model", "resnet", "--out", page]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote .*resnet\.html \(\d+ equations/);
  const html = readFileSync(page, "utf8");
  assert.ok(html.startsWith("<!doctype html>"));
  // nothing is fetched: no http(s) src/href, no external script or style sheet, no import of a URL
  assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  assert.doesNotMatch(html, /<script[^>]*\ssrc=/i);
  assert.doesNotMatch(html, /<link[^>]*rel=["']?stylesheet/i);
  assert.doesNotMatch(html, /\bimport\s*\(\s*["'`]https?:/);
  // Graphviz is @viz-js/viz's browser build, inlined unchanged (its notice first); in it the only addresses are
  // the license header's and XML namespace names (identifiers, never fetched)
  const vizFile = join(dirname(createRequire(import.meta.url).resolve("@viz-js/viz")), "viz-global.js");
  const viz = readFileSync(vizFile, "utf8");
  const at = html.indexOf(viz);
  assert.ok(at > 0, "viz-global.js inlined unchanged");
  assert.match(
    viz,
    /^\/\*!\nViz\.js 3\.\d+\.\d+\nCopyright \(c\) Michael Daines/,
    "viz.js's own notice is kept",
  );
  const vizUrls = new Set(viz.match(/https?:\/\/[\w./-]+/g) ?? []);
  for (const u of vizUrls) {
    assert.ok(/^https:\/\/(www\.graphviz\.org|libexpat\.github\.io)$|^http:\/\/www\.w3\.org\//.test(u), u);
  }
  // the rest of the page (our markup, data and viewer) has no address at all but the notice's
  const rest = html.slice(0, at) + html.slice(at + viz.length);
  assert.deepEqual(rest.match(/https?:\/\//g) ?? [], []);
  assert.match(
    rest,
    /<!--\nGraphviz in this page: @viz-js\/viz \(Viz\.js, Copyright \(c\) Michael Daines, MIT License\)/,
  );
  assert.match(
    rest,
    /Graphviz \(graphviz\.org,\nEclipse Public License 1\.0\) and Expat \(libexpat, MIT License\)/,
  );
  // the embedded data are the traced graphs (the CLI's batch is random: compare the structure, not numbers)
  const m = /<script type="application\/json" id="graph-data">([^<]*)<\/script>/.exec(html);
  assert.ok(m !== null);
  data = JSON.parse(m[1]);
  const [fwd, bwd] = [resnetStep(false), resnetStep(true)];
  const shape = (d: GraphData) => ({
    scopes: d.scopes,
    ops: d.ops.map((o) => o.label),
    values: d.values.map((v) => [v.name, v.aval, v.scope]),
  });
  assert.deepEqual(shape(data.forward.data), shape(fwd.data));
  assert.deepEqual(shape(data.backward.data), shape(bwd.data));
  assert.equal(data.showBackward, false);
  const r2 = await run([
    "graph",
    "--model",
    "mlp",
    "--hidden",
    "8",
    "--backward",
    "--out",
    join(dir, "m.html"),
  ]);
  assert.equal(r2.code, 0, r2.err);
  assert.match(readFileSync(join(dir, "m.html"), "utf8"), /"showBackward":true/);
});

/** Texts of the drawn SVG, the node count, the hash and the drawn view, once the view `want` is drawn. */
async function drawn(p: Page, want: string) {
  await p.waitForFunction(
    (w) => document.getElementById("graph")?.dataset.view === w,
    { timeout: 15_000 },
    want,
  );
  return p.evaluate(() => ({
    hash: location.hash,
    nodes: document.querySelectorAll("#graph svg g.node").length,
    texts: Array.from(document.querySelectorAll("#graph svg text"), (t) => t.textContent ?? ""),
    boxes: Array.from(document.querySelectorAll("#graph [data-expand]"), (g) =>
      g.getAttribute("data-expand"),
    ),
  }));
}

test("in Chromium from file://: boxes open on click, labels fold, the hash follows, toggles work", async () => {
  assert.ok(page !== "", "the page was written by the previous test");
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const p = await browser.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    p.on("pageerror", (e) => errors.push(String(e)));
    p.on("console", (msg) => {
      if (msg.type() === "error") errors.push(msg.text());
    });
    p.on("request", (req) => {
      if (!req.url().startsWith("data:")) requests.push(req.url());
    });
    const url = pathToFileURL(page).href;
    await p.goto(url);
    const first = await drawn(p, "#depth=1");
    assert.equal(first.hash, "#depth=1");
    const labels = data.forward.data.scopes.filter((s) => s.depth === 2).map((s) => `${s.label} \u25b8`);
    for (const l of labels) assert.ok(first.texts.includes(l), `box ${l}`);
    assert.ok(first.boxes.includes("4"));
    assert.ok(!first.texts.some((t) => t.startsWith("conv1:")));

    await p.click('[data-expand="4"]');
    const open = await drawn(p, "#depth=1&expand=4");
    assert.equal(open.hash, "#depth=1&expand=4");
    assert.ok(open.nodes > first.nodes, `${open.nodes} > ${first.nodes} nodes`);
    assert.ok(open.texts.includes("4: BasicBlock()"), "block 4's cluster label");
    for (const child of ["conv1: Conv2d(16\u219216, 3x3) \u25b8", "bn2: BatchNorm2d("]) {
      assert.ok(
        open.texts.some((t) => t.startsWith(child)),
        `child ${child} in ${open.texts.join(" | ")}`,
      );
    }

    await p.click('text[data-collapse="4"]');
    const folded = await drawn(p, "#depth=1&collapse=4");
    assert.equal(folded.nodes, first.nodes);
    assert.ok(folded.texts.includes("4: BasicBlock() \u25b8"));

    await p.goBack(); // the back button undoes the fold
    assert.equal((await drawn(p, "#depth=1&expand=4")).nodes, open.nodes);

    await p.click("#collapse-all");
    const none = await drawn(p, "#depth=0");
    assert.equal(none.boxes.length, 1, "the whole network is one box");

    await p.click("#backward");
    const back = await drawn(p, "#depth=0&backward=1");
    assert.ok(
      back.texts.some((t) => t.endsWith("(adjoint) \u25b8")),
      "the adjoint box",
    );
    assert.ok(back.nodes > none.nodes, "gradients are outputs, drawn beside the boxes");

    // a shared link opens its view
    await p.goto(`${url}#depth=1&expand=5&backward=1`);
    const shared = await drawn(p, "#depth=1&expand=5&backward=1");
    assert.ok(shared.texts.includes("5: BasicBlock()") && shared.texts.includes("5: BasicBlock() (adjoint)"));
    assert.equal(await p.$eval("#backward", (e) => (e as HTMLInputElement).checked), true);

    assert.deepEqual(errors, []);
    assert.deepEqual(
      requests.filter((u) => !u.startsWith(url.split("#")[0])),
      [],
      "nothing fetched but the page",
    );
    mkdirSync("runs", { recursive: true });
    await p.screenshot({ path: "runs/graph-html.png" });
  } finally {
    await browser.close();
  }
});
