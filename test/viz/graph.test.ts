/**
 * viz.graph: the lectures' hand-derived computation graphs (sin(x1) + x1*x2, x^2 + log y, 3(xy + y)) traced,
 * evaluated and drawn. Equations and wiring, forward values, adjoints of every value and of every edge (the
 * reverse sweep) and tangents (the forward-mode sweep, dual numbers) are compared with the hand derivation; DOT
 * is deterministic and well-formed, the SVG lays out in Node; module scopes nest as the module tree, fold into
 * boxes, and the adjoint equations of grad carry the scope of the operation they differentiate.
 *
 * Everything is float64 and evaluated on the js backend.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setBackend } from "../../src/backend/registry.ts";
import { grad } from "../../src/core/autodiff.ts";
import { Literal, type Var } from "../../src/core/jaxpr.ts";
import { currentScope } from "../../src/core/scope.ts";
import { Linear } from "../../src/nn/linear.ts";
import { ReLU } from "../../src/nn/activation.ts";
import { functionalCall, Module } from "../../src/nn/module.ts";
import { manualSeed, randn, tensor } from "../../src/ops/creation.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { type Graph, graph } from "../../src/viz/graph.ts";
import { programVars } from "../../src/viz/graph-values.ts";
import { parseXml } from "./xml.ts";

before(() => setBackend("js"));

const d = (v: number) => tensor(v, { dtype: "float64" });
const close = (a: number | undefined, b: number, what: string) =>
  assert.ok(a !== undefined && Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

/** The value, adjoint and tangent of a named value as numbers. */
function num(g: Graph, name: string, which: "value" | "adjoint" | "tangent"): number | undefined {
  return g.value(name)[which]?.item();
}

/** Equations as "out = prim in1 in2" with the printed program's names (literals by value). */
function eqns(g: Graph): string[] {
  const names = new Map<Var, string>();
  const vals = g.values(); // binding order, as programVars
  programVars(g.program).forEach((v, i) => {
    names.set(v, vals[i].name);
  });
  return g.program.eqns.map((e) => {
    const ins = e.inputs.map((a) => (a instanceof Literal ? String(a.value.item()) : names.get(a)!));
    return `${e.outputs.map((v) => names.get(v)).join(" ")} = ${e.name} ${ins.join(" ")}`;
  });
}

/** Share of the adjoint flowing along input `k` of equation `i`. */
function edge(g: Graph, i: number, k: number): number | undefined {
  return g.edgeAdjoints.get(`${i}:${k}`)?.item();
}

/** Structural DOT checks: balanced braces, every edge endpoint declared as a node. */
function checkDot(dot: string): void {
  assert.ok(dot.startsWith("digraph G {") && dot.trimEnd().endsWith("}"));
  let depth = 0;
  for (const line of dot.split("\n")) {
    const t = line.trim();
    if (t.endsWith("{")) depth++;
    if (t === "}") depth--;
    assert.ok(depth >= 0, "unbalanced braces");
  }
  assert.equal(depth, 0);
  const nodes = new Set([...dot.matchAll(/^\s*(\w+) \[/gm)].map((m) => m[1]));
  const edges = [...dot.matchAll(/^\s*(\w+) -> (\w+)/gm)];
  assert.ok(edges.length > 0);
  for (const [, a, b] of edges) {
    assert.ok(nodes.has(a) && nodes.has(b), `edge ${a} -> ${b} between declared nodes`);
  }
}

describe("the lecture graphs", () => {
  // f(x1, x2) = sin(x1) + x1 x2 at (2, 5): w3 = sin x1, w4 = x1 x2, w5 = w3 + w4
  const sinf = (x1: Tensor, x2: Tensor) => x1.sin().add(x1.mul(x2));

  test("sin(x1) + x1*x2: equations, values, adjoints and edge shares of the reverse sweep", () => {
    const g = graph(sinf, { sweep: "reverse", inputNames: ["x1", "x2"] })(d(2), d(5));
    assert.deepEqual(eqns(g), ["c = sin a", "d = mul a b", "e = add c d"]);
    assert.equal(g.value("x1").name, "a");
    close(num(g, "c", "value"), Math.sin(2), "c");
    close(num(g, "d", "value"), 10, "d");
    close(num(g, "e", "value"), Math.sin(2) + 10, "e");
    // ybar = 1; cbar = dbar = 1 (add); x2bar = x1; x1bar = cos(x1) + x2 (two paths)
    close(num(g, "e", "adjoint"), 1, "ebar");
    close(num(g, "c", "adjoint"), 1, "cbar");
    close(num(g, "d", "adjoint"), 1, "dbar");
    close(num(g, "x2", "adjoint"), 2, "x2bar");
    close(num(g, "x1", "adjoint"), Math.cos(2) + 5, "x1bar");
    // what flows back along each edge: cos(x1) through sin, x2 and x1 through mul
    close(edge(g, 0, 0), Math.cos(2), "sin edge");
    close(edge(g, 1, 0), 5, "mul edge to x1");
    close(edge(g, 1, 1), 2, "mul edge to x2");
    close(edge(g, 0, 0)! + edge(g, 1, 0)!, num(g, "x1", "adjoint")!, "x1bar is the sum of its edges");
    // the picture says so
    const dot = g.dot;
    checkDot(dot);
    assert.ok(dot.includes(`a\u0304 = ${Number((Math.cos(2) + 5).toPrecision(4))}`));
    assert.ok(dot.includes("b\u0304 = 2"));
    assert.ok(dot.includes("dir=back"), "reverse-sweep edges point the way adjoints flow");
  });

  test("sin(x1) + x1*x2: tangents of the forward-mode sweep, seeded on each input", () => {
    const g1 = graph(sinf, { sweep: "tangent", tangents: [d(1), d(0)] })(d(2), d(5));
    close(num(g1, "a", "tangent"), 1, "x1dot");
    close(num(g1, "b", "tangent"), 0, "x2dot");
    close(num(g1, "c", "tangent"), Math.cos(2), "cdot");
    close(num(g1, "d", "tangent"), 5, "ddot");
    close(num(g1, "e", "tangent"), Math.cos(2) + 5, "edot = df/dx1");
    const g2 = graph(sinf, { sweep: "tangent", tangents: [d(0), d(1)] })(d(2), d(5));
    close(num(g2, "c", "tangent"), 0, "cdot");
    close(num(g2, "e", "tangent"), 2, "edot = df/dx2");
    // default: ones on every input, the directional derivative along (1, 1)
    const g3 = graph(sinf, { sweep: "tangent" })(d(2), d(5));
    close(num(g3, "e", "tangent"), Math.cos(2) + 5 + 2, "edot along (1, 1)");
    assert.ok(g1.dot.includes(`e\u0307 = ${Number((Math.cos(2) + 5).toPrecision(4))}`));
  });

  test("x^2 + log y: forward mode with dual numbers and the reverse sweep", () => {
    const f = (x: Tensor, y: Tensor) => x.square().add(y.log());
    const gx = graph(f, { sweep: "tangent", tangents: [d(1), d(0)], inputNames: ["x", "y"] })(d(3), d(2));
    assert.deepEqual(eqns(gx), ["c = mul a a", "d = log b", "e = add c d"]);
    close(num(gx, "c", "value"), 9, "x^2");
    close(num(gx, "d", "value"), Math.log(2), "log y");
    close(num(gx, "c", "tangent"), 6, "d(x^2)/dx = 2x");
    close(num(gx, "d", "tangent"), 0, "d(log y)/dx");
    close(num(gx, "e", "tangent"), 6, "de/dx");
    const gy = graph(f, { sweep: "tangent", tangents: [d(0), d(1)] })(d(3), d(2));
    close(num(gy, "d", "tangent"), 0.5, "d(log y)/dy = 1/y");
    close(num(gy, "e", "tangent"), 0.5, "de/dy");
    const r = graph(f, { sweep: "reverse" })(d(3), d(2));
    close(num(r, "a", "adjoint"), 6, "xbar = 2x");
    close(num(r, "b", "adjoint"), 0.5, "ybar = 1/y");
    // x is used twice by mul: each use receives x (the product rule), two edges in the picture
    close(edge(r, 0, 0), 3, "first use");
    close(edge(r, 0, 1), 3, "second use");
    assert.equal([...r.dot.matchAll(/v_a -> e0/g)].length, 2);
  });

  test("3(xy + y): the lecture's P1, P2, P3 and Dy = DP1y + DP2y", () => {
    const f = (x: Tensor, y: Tensor) => x.mul(y).add(y).mul(3);
    const g = graph(f, { sweep: "reverse", inputNames: ["x", "y"] })(d(2), d(4));
    assert.deepEqual(eqns(g), ["c = mul a b", "d = add c b", "e = mul d 3"]);
    close(num(g, "c", "value"), 8, "P1 = xy");
    close(num(g, "d", "value"), 12, "P2 = P1 + y");
    close(num(g, "e", "value"), 36, "P3 = 3 P2");
    close(num(g, "d", "adjoint"), 3, "DP3P2");
    close(num(g, "c", "adjoint"), 3, "DP2P1");
    close(num(g, "x", "adjoint"), 12, "Dx = DP1x = 3y");
    close(edge(g, 0, 1), 6, "DP1y = 3x");
    close(edge(g, 1, 1), 3, "DP2y");
    close(num(g, "y", "adjoint"), 9, "Dy = DP1y + DP2y");
    assert.ok(g.dot.includes('label="3.0"'), "the literal 3 is drawn");
    const t = graph(f, { sweep: "tangent", tangents: [d(1), d(0)] })(d(2), d(4));
    close(num(t, "e", "tangent"), 12, "dl/dx by forward mode");
  });

  test("the numbers agree with grad of the function itself", () => {
    const f = (x: Tensor, y: Tensor) => x.mul(y).sin().add(y.exp().mul(x));
    const [gx, gy] = grad(f, { argnums: [0, 1] })(d(0.7), d(-1.3)) as Tensor[];
    const g = graph(f, { sweep: "reverse" })(d(0.7), d(-1.3));
    close(num(g, "a", "adjoint"), gx.item(), "xbar");
    close(num(g, "b", "adjoint"), gy.item(), "ybar");
  });
});

describe("DOT and SVG", () => {
  const f = (x1: Tensor, x2: Tensor) => x1.sin().add(x1.mul(x2));

  test("DOT is deterministic; the SVG is well-formed XML holding the labels", async () => {
    const a = graph(f, { sweep: "reverse", inputNames: ["x1", "x2"], title: "sin(x1) + x1*x2" })(d(2), d(5));
    const b = graph(f, { sweep: "reverse", inputNames: ["x1", "x2"], title: "sin(x1) + x1*x2" })(d(2), d(5));
    assert.equal(a.dot, b.dot);
    checkDot(a.dot);
    const svg = await a.svg();
    const els = parseXml(svg.replace(/<!DOCTYPE[^>]*>/, ""));
    const texts = els.filter((e) => e.name === "text").map((e) => e.text);
    for (const want of ["sin", "mul", "add", "x1", "x2", "sin(x1) + x1*x2", "a\u0304 = 4.584"]) {
      assert.ok(texts.includes(want) || texts.some((t) => t.includes(want)), `SVG text ${want}`);
    }
  });

  test("values are shown for small tensors only; values: false shows none", () => {
    const h = (x: Tensor) => x.exp().sum();
    const g = graph(h, { maxElements: 3 })(tensor([1, 2, 3, 4, 5], { dtype: "float64" }));
    const exp = g.data.values.find((v) => v.name === "b")!;
    assert.equal(exp.value, undefined, "5 elements > maxElements");
    const sum = g.data.values.find((v) => v.name === "c")!;
    assert.equal(
      sum.value,
      String(Number([1, 2, 3, 4, 5].reduce((s, v) => s + Math.exp(v), 0).toPrecision(4))),
    );
    const off = graph(h, { values: false })(tensor([1, 2], { dtype: "float64" }));
    assert.ok(off.data.values.every((v) => v.value === undefined));
    assert.equal(off.value("c").value, undefined);
    const small = graph((x: Tensor) => x.mul(2))(tensor([1, 2], { dtype: "float64" }));
    assert.equal(small.data.values.find((v) => v.name === "b")!.value, "[2, 4]");
  });

  test("errors: unknown value names and tangents of the wrong shape", () => {
    const g = graph(f)(d(2), d(5));
    assert.throws(() => g.value("zz"), /no value named "zz".*a, b, c, d, e/);
    assert.throws(
      () => graph(f, { sweep: "tangent", tangents: [tensor([1, 2]), d(0)] })(d(2), d(5)),
      /tangent 0 has shape \[2\], the input has \[\]/,
    );
  });
});

class Block extends Module {
  fc1 = new Linear(3, 4);
  act = new ReLU();
  forward(x: Tensor): Tensor {
    return this.act.call(this.fc1.call(x));
  }
}

class Net extends Module {
  block = new Block();
  head = new Linear(4, 2);
  forward(x: Tensor): Tensor {
    return this.head.call(this.block.call(x));
  }
}

describe("module scopes", () => {
  test("Module.call enters and leaves its scope, also when forward throws", () => {
    manualSeed(0);
    const net = new Net();
    net.call(randn([2, 3]));
    assert.equal(currentScope(), null);
    assert.throws(() => net.call(randn([2, 5])));
    assert.equal(currentScope(), null);
  });

  test("scopes nest as the module tree; the adjoint equations of grad carry their operation's scope", () => {
    manualSeed(0);
    const net = new Net();
    const x = randn([2, 3]);
    const params = Object.fromEntries(net.namedParameters());
    const loss = (p: Record<string, Tensor>) => (functionalCall(net, p, x) as Tensor).square().sum();
    const g = graph(grad(loss), { modules: net, inputNames: ["params"] })(params);
    const fwd = g.data.scopes.filter((s) => !s.adjoint).map((s) => s.path);
    assert.deepEqual(fwd, ["", "block", "block.fc1", "block.act", "head"]);
    for (const s of g.data.scopes) {
      if (s.parent < 0) assert.equal(s.path, "");
      else {
        const p = g.data.scopes[s.parent];
        assert.equal(p.adjoint, s.adjoint);
        assert.equal(s.path.split(".").slice(0, -1).join("."), p.path, `${s.path} inside ${p.path}`);
      }
    }
    const adj = g.data.scopes.filter((s) => s.adjoint).map((s) => s.path);
    assert.deepEqual([...adj].sort(), ["", "block", "block.act", "block.fc1", "head"]);
    // the forward dot of fc1 sits in block.fc1; the relu adjoint (actGrad) sits in block.act's adjoint scope
    const scopeOf = (i: number) => g.data.scopes[g.data.ops[i].scope];
    const dot = g.program.eqns.findIndex((e) => e.name === "dot");
    assert.equal(scopeOf(dot).path, "block.fc1");
    assert.equal(scopeOf(dot).label, "fc1: Linear(3\u21924)");
    const actGrad = g.program.eqns.findIndex((e) => e.name === "actGrad");
    assert.deepEqual([scopeOf(actGrad).path, scopeOf(actGrad).adjoint], ["block.act", true]);
    // parameters are named inputs
    assert.equal(g.value("params.head.weight").shape.join(","), "2,4");
  });

  test("depth / expand / collapse fold scopes into labelled boxes", () => {
    manualSeed(0);
    const net = new Net();
    const g = graph((x: Tensor) => net.call(x), { modules: net })(randn([2, 3]));
    const full = g.dot;
    assert.ok(full.includes("subgraph cluster_") && full.includes('label="fc1: Linear(3\u21924)"'));
    const folded = g.toDot({ depth: 1 });
    checkDot(folded);
    // block and head are boxes; nothing inside them is drawn; the root stays a cluster
    assert.match(
      folded,
      /s\d+ \[shape=box, style="filled,bold", fillcolor="#d6eaf8", label="block: Block\(\) \u25b8"\]/,
    );
    assert.match(folded, /label="head: Linear\(4\u21922\) \u25b8"/);
    assert.ok(!folded.includes('label="relu"'), "ops inside a folded box are hidden");
    assert.ok(folded.includes("f32[2,4]"), "the edge leaving block carries its shape");
    const opened = g.toDot({ depth: 1, expand: ["block.fc1"] });
    assert.ok(opened.includes('label="fc1: Linear(3\u21924)"') && !opened.includes("block: Block() \u25b8"));
    assert.match(opened, /act: ReLU\(\) \u25b8/);
    const closed = g.toDot({ collapse: ["block"] });
    assert.match(closed, /block: Block\(\) \u25b8/);
    assert.ok(closed.includes('label="head: Linear(4\u21922)"'));
  });
});
