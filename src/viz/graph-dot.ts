/**
 * Graphviz DOT text of a computation graph, from plain data (`GraphData`: value nodes, primitive nodes and module
 * scopes with their numbers already formatted). Kept separate from the tracing so a viewer can redraw the same
 * graph with other modules collapsed without evaluating anything again.
 *
 * Value nodes are rounded boxes (name, shape/dtype, value, adjoint or tangent), primitives are grey ellipses
 * between them, literals are plain text. Module scopes are nested clusters; a collapsed scope is one box whose
 * edges are the values entering and leaving it. In the reverse sweep the edges point the way adjoints flow
 * (from a primitive back to its inputs) and carry the share of the adjoint flowing along them.
 *
 * The output is deterministic: nodes, edges and clusters are emitted in program order.
 */

/** Which numbers a picture shows besides the values. */
export type Sweep = "forward" | "reverse" | "tangent";

/** A value: an input, a constant or an equation's output. */
export interface ValueNode {
  readonly id: string;
  /** The variable's name in the printed program (a, b, ...). */
  readonly name: string;
  /** What the user calls it (an argument name, a parameter path), if known. */
  readonly alias?: string;
  readonly kind: "input" | "const" | "value";
  /** `f32[2,3]`. */
  readonly aval: string;
  /** Formatted numbers (present only for small tensors when asked). */
  readonly value?: string;
  readonly adjoint?: string;
  readonly tangent?: string;
  /** Index into `scopes` of the scope it is drawn in (-1: top level). */
  readonly scope: number;
  /** Position among the program's outputs, or -1. */
  readonly output: number;
}

/** One input edge of a primitive node. */
export interface OpInput {
  /** A value node's id, or null for a literal. */
  readonly from: string | null;
  /** The literal's text (`3.0`) when `from` is null. */
  readonly literal?: string;
  /** The share of the input's adjoint flowing along this edge (reverse sweep, small tensors). */
  readonly adjoint?: string;
}

/** A primitive application (or a higher-order call). */
export interface OpNode {
  readonly id: string;
  /** Primitive name and its short params (`reduce_sum[axes=[1]]`). */
  readonly label: string;
  readonly inputs: readonly OpInput[];
  /** Ids of the value nodes it binds. */
  readonly outputs: readonly string[];
  readonly scope: number;
}

/** A module scope (a `Module.call`, or the adjoint equations of one). */
export interface ScopeNode {
  /** Module path (`4.conv1`; "" for the root module). */
  readonly path: string;
  /** `conv1: Conv2d(16→16, 3x3)`. */
  readonly label: string;
  /** Enclosing scope (-1: top level). */
  readonly parent: number;
  /** 1 for a scope at the top level, 2 inside it, ... */
  readonly depth: number;
  /** The adjoint equations of the module (backward), drawn apart from its forward. */
  readonly adjoint: boolean;
}

/** Everything a picture is drawn from. */
export interface GraphData {
  readonly values: readonly ValueNode[];
  readonly ops: readonly OpNode[];
  readonly scopes: readonly ScopeNode[];
  /** Literal program outputs (rare), by output position. */
  readonly literalOutputs: readonly { output: number; text: string }[];
}

/** How to draw it. */
export interface DotView {
  sweep: Sweep;
  /** Scopes deeper than this are drawn as one box (default: none collapsed). */
  depth?: number;
  /** Module paths drawn open whatever their depth (their enclosing scopes open too). */
  expand?: readonly string[];
  /** Module paths drawn collapsed whatever their depth. */
  collapse?: readonly string[];
  title?: string;
  /** Layout direction (default "LR"). */
  rankdir?: "LR" | "TB";
}

/** Escape for a double-quoted DOT string. */
function q(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Escape for text inside an HTML-like label. */
function h(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const ADJ_COLOR = "#c0392b";
const TAN_COLOR = "#1f618d";
const GREY = "#5d6d7e";

/** The adjoint mark of a name: a combining overline (ā). */
export function adjointName(name: string): string {
  return `${name}\u0304`;
}

/** The tangent mark of a name: a combining dot above (ȧ). */
export function tangentName(name: string): string {
  return `${name}\u0307`;
}

function valueLabel(v: ValueNode, sweep: Sweep): string {
  const head = v.alias === undefined ? `<B>${h(v.name)}</B>` : `<B>${h(v.name)}</B> ${h(v.alias)}`;
  const lines = [head, `<FONT POINT-SIZE="10" COLOR="${GREY}">${h(v.aval)}</FONT>`];
  if (v.value !== undefined) lines.push(`= ${h(v.value)}`);
  if (sweep === "reverse" && v.adjoint !== undefined) {
    lines.push(`<FONT COLOR="${ADJ_COLOR}">${h(adjointName(v.name))} = ${h(v.adjoint)}</FONT>`);
  }
  if (sweep === "tangent" && v.tangent !== undefined) {
    lines.push(`<FONT COLOR="${TAN_COLOR}">${h(tangentName(v.name))} = ${h(v.tangent)}</FONT>`);
  }
  return `<${lines.join("<BR/>")}>`;
}

/** Which scopes are open, and for every scope the box (collapsed scope) it is hidden in, or -1. */
function collapseMap(scopes: readonly ScopeNode[], view: DotView): number[] {
  const depth = view.depth ?? Number.POSITIVE_INFINITY;
  const expand = view.expand ?? [];
  const collapse = new Set(view.collapse ?? []);
  const opened = (s: ScopeNode) =>
    !collapse.has(s.path) &&
    (s.depth <= depth || expand.some((p) => p === s.path || p.startsWith(s.path === "" ? "" : `${s.path}.`)));
  const hidden: number[] = [];
  scopes.forEach((s, i) => {
    // parents come before children (scopes are listed in order of first appearance, outer first)
    const outer = s.parent < 0 ? -1 : hidden[s.parent];
    hidden.push(outer >= 0 ? outer : opened(s) ? -1 : i);
  });
  return hidden;
}

/**
 * DOT text of `data` drawn as `view` says.
 *
 * @example
 * ```ts
 * const dot = toDot(data, { sweep: "reverse", depth: 1 });
 * ```
 */
export function toDot(data: GraphData, view: DotView): string {
  const { sweep } = view;
  const hidden = collapseMap(data.scopes, view);
  // where a node lands: its own id, or the box of the collapsed scope hiding it
  const box = (scope: number): string | null =>
    scope >= 0 && hidden[scope] >= 0 ? `s${hidden[scope]}` : null;
  const place = (scope: number): number =>
    scope >= 0 && hidden[scope] >= 0 ? data.scopes[hidden[scope]].parent : scope;
  const members = new Map<number, string[]>(); // cluster (-1 top) -> node statements
  const add = (scope: number, stmt: string) => {
    const list = members.get(scope);
    if (list === undefined) members.set(scope, [stmt]);
    else list.push(stmt);
  };
  const valueById = new Map(data.values.map((v) => [v.id, v]));
  const endpoint = new Map<string, string>(); // value/op id -> drawn id
  for (const v of data.values) {
    // a program output hidden in a collapsed scope is still drawn, next to the box it leaves
    const b = v.output >= 0 ? null : box(v.scope);
    endpoint.set(v.id, b ?? v.id);
    if (b !== null) continue;
    const at = place(v.scope);
    const style = v.kind === "input" ? "rounded,filled" : v.kind === "const" ? "rounded,dashed" : "rounded";
    const attrs = [`shape=box`, `style=${q(style)}`, `label=${valueLabel(v, sweep)}`];
    if (v.kind === "input") attrs.push(`fillcolor="#fef9e7"`);
    if (v.output >= 0) attrs.push("peripheries=2");
    add(at, `${v.id} [${attrs.join(", ")}];`);
  }
  for (const o of data.ops) {
    const b = box(o.scope);
    endpoint.set(o.id, b ?? o.id);
    if (b === null)
      add(o.scope, `${o.id} [shape=ellipse, style=filled, fillcolor="#eaeded", label=${q(o.label)}];`);
  }
  // boxes of collapsed scopes, in the cluster that holds them
  data.scopes.forEach((s, i) => {
    if (hidden[i] !== i) return;
    const fill = s.adjoint ? "#fadbd8" : "#d6eaf8";
    const label = `${s.label}${s.adjoint ? " (adjoint)" : ""} \u25b8`;
    add(place(i), `s${i} [shape=box, style="filled,bold", fillcolor="${fill}", label=${q(label)}];`);
  });
  const edges: string[] = [];
  const seen = new Set<string>();
  const back = sweep === "reverse";
  // an edge into or out of a box stands for all the uses it replaces: drawn once; a primitive using a value twice
  // (mul a a) gets two edges
  const edge = (from: string, to: string, attrs: string[], boxed: boolean) => {
    if (from === to) return;
    const key = `${from}->${to}`;
    if (boxed && seen.has(key)) return;
    seen.add(key);
    if (back && !attrs.includes("dir=none")) attrs.push("dir=back", `color="${ADJ_COLOR}"`);
    edges.push(`${from} -> ${to}${attrs.length > 0 ? ` [${attrs.join(", ")}]` : ""};`);
  };
  for (const o of data.ops) {
    const to = endpoint.get(o.id)!;
    o.inputs.forEach((inp, k) => {
      if (inp.from === null) {
        if (to !== o.id) return; // literals of a hidden primitive are hidden with it
        const lit = `${o.id}_l${k}`;
        add(o.scope, `${lit} [shape=plaintext, fontsize=10, label=${q(inp.literal ?? "")}];`);
        edge(lit, to, back ? ["dir=none", "style=dashed"] : [], false); // no adjoint flows to a literal
        return;
      }
      const from = endpoint.get(inp.from)!;
      const attrs: string[] = [];
      const src = valueById.get(inp.from)!;
      if (from !== inp.from) attrs.push(`label=${q(src.aval)}`, "fontsize=9");
      else if (back && inp.adjoint !== undefined && to === o.id) {
        attrs.push(`label=${q(inp.adjoint)}`, "fontsize=10", `fontcolor="${ADJ_COLOR}"`);
      }
      edge(from, to, attrs, from !== inp.from || to !== o.id);
    });
    for (const out of o.outputs) {
      const t = endpoint.get(out)!;
      const boxed = to !== o.id || t !== out;
      edge(
        to,
        t,
        to !== o.id && t === out ? [`label=${q(valueById.get(out)!.aval)}`, "fontsize=9"] : [],
        boxed,
      );
    }
  }
  for (const lo of data.literalOutputs) {
    add(-1, `out${lo.output} [shape=plaintext, label=${q(`out ${lo.output} = ${lo.text}`)}];`);
  }
  const lines: string[] = ["digraph G {"];
  lines.push(`  graph [rankdir=${view.rankdir ?? "LR"}, fontname="Helvetica", nodesep=0.3, ranksep=0.35];`);
  if (view.title !== undefined) lines.push(`  label=${q(view.title)}; labelloc=t; fontsize=16;`);
  lines.push(`  node [fontname="Helvetica", fontsize=12, margin="0.08,0.04"];`);
  lines.push(`  edge [fontname="Helvetica", arrowsize=0.7, color="${GREY}"];`);
  const children = new Map<number, number[]>();
  data.scopes.forEach((s, i) => {
    if (hidden[i] >= 0) return;
    const list = children.get(s.parent);
    if (list === undefined) children.set(s.parent, [i]);
    else list.push(i);
  });
  const emit = (scope: number, indent: string) => {
    for (const stmt of members.get(scope) ?? []) lines.push(`${indent}${stmt}`);
    for (const c of children.get(scope) ?? []) {
      const s = data.scopes[c];
      const fill = s.adjoint ? "#fdf2f1" : "#f2f8fd";
      lines.push(`${indent}subgraph cluster_s${c} {`);
      lines.push(
        `${indent}  label=${q(`${s.label}${s.adjoint ? " (adjoint)" : ""}`)}; style="rounded,filled"; fillcolor="${fill}"; color="#aab7b8"; fontsize=11;`,
      );
      emit(c, `${indent}  `);
      lines.push(`${indent}}`);
    }
  };
  emit(-1, "  ");
  for (const e of edges) lines.push(`  ${e}`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
