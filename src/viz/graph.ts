/**
 * Pictures of computation graphs: `graph(f, opts)(...args)` traces `f` with `makeJaxpr`, evaluates the program at
 * `args` and draws it, values as nodes and primitives between them, as Graphviz DOT (`.dot`, deterministic) and SVG
 * (`await .svg()`, laid out by Graphviz compiled to WebAssembly, `@viz-js/viz`, loaded on first use).
 *
 * Sweeps (`opts.sweep`): "forward" shows each value; "reverse" also the adjoint x̄ = ∂y/∂x of every value for the
 * output y (seeded ȳ = 1, ones for a non-scalar output), with the edges pointing the way adjoints flow and labelled
 * with the share flowing along them; "tangent" shows each value's tangent ẋ (the dual number (x, ẋ) of forward
 * mode) for the given input tangents. The numbers come from the library's own evaluator and transforms
 * (`graph-values.ts`); numbers are shown for small tensors only.
 *
 * Module calls are recorded as named scopes (`core/scope.ts`): pass the root module as `opts.modules` to name them
 * by their attribute paths; each is drawn as a cluster, and `depth` / `expand` / `collapse` fold modules into one
 * box. The adjoint equations of a module (the program of `grad` through it) form a cluster of their own.
 *
 * Browser-safe: nothing here touches the file system.
 */
import { makeJaxpr } from "../core/jaxpr-trace.ts";
import {
  type Eqn,
  fmtAval,
  fmtLiteral,
  fmtParams,
  Literal,
  type Program,
  type Var,
  varName,
} from "../core/jaxpr.ts";
import type { ScopeFrame } from "../core/scope.ts";
import { isFloat } from "../dtype.ts";
import { ShapeError } from "../errors.ts";
import { onesLike } from "../ops/creation.ts";
import { fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type TreeDef, treeFlatten } from "../tree.ts";
import {
  type DotView,
  type GraphData,
  type OpNode,
  type ScopeNode,
  type Sweep,
  toDot,
  type ValueNode,
} from "./graph-dot.ts";
import { edgeKey, programVars, recordAdjoints, recordTangents, recordValues } from "./graph-values.ts";

export type { DotView, GraphData, OpInput, OpNode, ScopeNode, Sweep, ValueNode } from "./graph-dot.ts";

/** A module tree, as far as `graph` needs it (any `nn.Module`). */
export interface ModuleTree {
  namedModules(): [string, object][];
  namedParameters?(): [string, Tensor][];
  namedBuffers?(): [string, Tensor][];
}

/** Options of {@link graph}. */
export interface GraphOptions {
  /** "forward" (values, the default), "reverse" (adjoints) or "tangent" (forward-mode tangents). */
  sweep?: Sweep;
  /** Show numbers (values, adjoints, tangents) of small tensors (default true). */
  values?: boolean;
  /** "Small": at most this many elements (default 4). */
  maxElements?: number;
  /** Input tangents for the tangent sweep, with the structure of the arguments (default ones for every input). */
  tangents?: readonly unknown[];
  /** Names of the arguments, shown next to the input variables (an object argument's leaves get `name.key`). */
  inputNames?: readonly string[];
  /** Names of constants the function closes over (shown next to them). */
  constNames?: ReadonlyMap<Tensor, string>;
  /** The root module, to name module scopes by attribute path and constants by parameter name. */
  modules?: ModuleTree;
  /** Module scopes nested deeper than this are drawn as one box (default: all open). */
  depth?: number;
  /** Module paths drawn open whatever `depth` says (and their enclosing modules). */
  expand?: readonly string[];
  /** Module paths drawn as one box whatever `depth` says. */
  collapse?: readonly string[];
  /** Title above the picture. */
  title?: string;
  /** Layout direction: "LR" (left to right, the default) or "TB". */
  rankdir?: "LR" | "TB";
}

/** Numbers recorded for one value. */
export interface GraphValue {
  /** Name in the printed program. */
  readonly name: string;
  readonly alias?: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  /** Its value (absent when numbers are off). */
  readonly value?: Tensor;
  /** Its adjoint (reverse sweep, float values). */
  readonly adjoint?: Tensor;
  /** Its tangent (tangent sweep). */
  readonly tangent?: Tensor;
}

/** A drawn program: DOT text, SVG on demand, and the numbers behind the picture. */
export class Graph {
  /** The traced program. */
  readonly program: Program;
  /** The picture's content, as plain data (what `toDot` draws). */
  readonly data: GraphData;
  readonly #view: DotView;
  readonly #values: Map<string, GraphValue>;
  /** Adjoint shares of edges by "eqnIndex:inputIndex" (reverse sweep). */
  readonly edgeAdjoints: ReadonlyMap<string, Tensor>;

  /** @internal Built by {@link graph}. */
  constructor(
    program: Program,
    data: GraphData,
    view: DotView,
    values: Map<string, GraphValue>,
    edges: Map<string, Tensor>,
  ) {
    this.program = program;
    this.data = data;
    this.#view = view;
    this.#values = values;
    this.edgeAdjoints = edges;
  }

  /** The view it is drawn with by default (sweep, depth, expand/collapse, title, layout); a copy. */
  get view(): DotView {
    return { ...this.#view };
  }

  /** Graphviz DOT text of the picture. */
  get dot(): string {
    return toDot(this.data, this.#view);
  }

  /** DOT text with some view options changed (e.g. another `depth`, or a module expanded). */
  toDot(view: Partial<DotView> = {}): string {
    return toDot(this.data, { ...this.#view, ...view });
  }

  /** The picture as SVG text (Graphviz's dot layout, run in WebAssembly). */
  svg(view: Partial<DotView> = {}): Promise<string> {
    return renderSvg(this.toDot(view));
  }

  /** The numbers of a value, by its name in the printed program (`a`, `b`, ...) or its alias (`x1`). */
  value(name: string): GraphValue {
    const v = this.#values.get(name);
    if (v === undefined) {
      throw new RangeError(
        `graph: no value named "${name}" (the program's values are ${[...new Set(this.#values.values())].map((x) => x.name).join(", ")})`,
      );
    }
    return v;
  }

  /** Every value, in binding order (constants, inputs, equation outputs). */
  values(): GraphValue[] {
    return [...new Set(this.#values.values())];
  }

  /** The printed program. */
  toString(): string {
    return String(this.program);
  }
}

/** The part of `@viz-js/viz`'s module `renderSvg` uses. */
export interface GraphvizModule {
  instance(): Promise<{ renderString(src: string, opts: { format: "svg" }): string }>;
}

// A variable specifier: bundlers leave the import alone (the 1.2 MB wasm build is not pulled into the browser
// bundle), Node resolves it from chainrule's dependencies, a page can map it with an import map.
const VIZ_MODULE = "@viz-js/viz";
let loadGraphviz = (): Promise<GraphvizModule> =>
  import(/* @vite-ignore */ VIZ_MODULE) as Promise<GraphvizModule>;
let vizPromise: ReturnType<GraphvizModule["instance"]> | null = null;

/**
 * Tell `renderSvg` how to load Graphviz, for bundled browser code:
 * `setGraphvizLoader(() => import("@viz-js/viz"))`. The default imports "@viz-js/viz" by name.
 */
export function setGraphvizLoader(load: () => Promise<GraphvizModule>): void {
  loadGraphviz = load;
  vizPromise = null;
}

/**
 * Lay out DOT text with Graphviz (`@viz-js/viz`, WebAssembly, loaded with a dynamic import on first use) and
 * return the SVG.
 */
export async function renderSvg(dot: string): Promise<string> {
  if (vizPromise === null) {
    const p = loadGraphviz().then((m) => m.instance());
    vizPromise = p;
    p.catch(() => {
      if (vizPromise === p) vizPromise = null;
    });
  }
  const viz = await vizPromise;
  return viz.renderString(dot, { format: "svg" });
}

/** A number in at most 4 significant digits. */
function fmtNum(x: number, dtype: string): string {
  if (dtype === "bool") return x !== 0 ? "true" : "false";
  if (!Number.isFinite(x) || dtype === "int32") return String(x);
  const s = String(Number(x.toPrecision(4)));
  return s === "-0" ? "0" : s;
}

/** Small tensors as numbers or nested lists. */
function fmtTensor(t: Tensor): string {
  const walk = (x: unknown): string =>
    Array.isArray(x) ? `[${x.map(walk).join(", ")}]` : fmtNum(Number(x), t.dtype);
  return walk(t.toArray());
}

/** Path of every leaf of the arguments' pytree: `x1`, `params.fc1.weight`, ... (undefined when unnamed). */
function leafPaths(inTree: TreeDef | null, names: readonly string[]): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  const walk = (d: TreeDef, path: string[]) => {
    if (d.kind === "leaf") {
      const parts = path.filter((p, i) => i > 0 || p !== "");
      out.push(parts.length > 0 ? parts.join(".") : undefined);
    } else if (d.kind === "array")
      d.children.forEach((c, i) => {
        walk(c, [...path, String(i)]);
      });
    else if (d.kind === "object")
      d.children.forEach((c, i) => {
        walk(c, [...path, d.keys[i]]);
      });
  };
  if (inTree !== null && inTree.kind === "array")
    inTree.children.forEach((c, i) => {
      walk(c, [names[i] ?? ""]);
    });
  return out;
}

/** Short label of a module: `Linear(784→256)`, `Conv2d(1→32, 5x5)`, else its class and (short) extra repr. */
function moduleLabel(m: object): string {
  const r = m as Record<string, unknown>;
  const cls = m.constructor.name;
  if (typeof r.inFeatures === "number" && typeof r.outFeatures === "number") {
    return `${cls}(${r.inFeatures}\u2192${r.outFeatures})`;
  }
  if (typeof r.inChannels === "number" && typeof r.outChannels === "number") {
    const k = r.kernelSize;
    const ks = Array.isArray(k) ? k.join("x") : typeof k === "number" ? `${k}x${k}` : "";
    return `${cls}(${r.inChannels}\u2192${r.outChannels}${ks === "" ? "" : `, ${ks}`})`;
  }
  const extra = typeof r.extraRepr === "function" ? String((r.extraRepr as () => string).call(m)) : "";
  return `${cls}(${extra.length > 40 ? `${extra.slice(0, 39)}\u2026` : extra})`;
}

/** Scope nodes for the equations' frames, and each equation's scope index. */
function buildScopes(
  eqns: readonly Eqn[],
  modules: ModuleTree | undefined,
): { scopes: ScopeNode[]; chains: number[][] } {
  const paths = new Map<object, string>();
  if (modules !== undefined) for (const [n, m] of modules.namedModules()) if (!paths.has(m)) paths.set(m, n);
  const unnamed = new Map<object, string>();
  const pathOf = (o: object): string => {
    const p = paths.get(o);
    if (p !== undefined) return p;
    let u = unnamed.get(o);
    if (u === undefined) {
      u = `${o.constructor.name}#${unnamed.size}`;
      unnamed.set(o, u);
    }
    return u;
  };
  const scopes: ScopeNode[] = [];
  const byKey = new Map<string, number>();
  const chainOf = (frame: ScopeFrame | null | undefined): number[] => {
    const frames: ScopeFrame[] = [];
    let adjoint = false;
    for (let f = frame ?? null; f !== null; f = f.parent) {
      frames.push(f);
      if (f.adjoint === true) adjoint = true;
    }
    frames.reverse();
    const chain: number[] = [];
    let key = adjoint ? "adj" : "fwd";
    for (const f of frames) {
      const path = pathOf(f.owner);
      key += `/${path}`;
      let i = byKey.get(key);
      if (i === undefined) {
        i = scopes.length;
        byKey.set(key, i);
        const last = path.split(".").pop() ?? "";
        const cls = moduleLabel(f.owner);
        scopes.push({
          path,
          label: path === "" || paths.get(f.owner) === undefined ? cls : `${last}: ${cls}`,
          parent: chain.length > 0 ? chain[chain.length - 1] : -1,
          depth: chain.length + 1,
          adjoint,
        });
      }
      chain.push(i);
    }
    return chain;
  };
  return { scopes, chains: eqns.map((e) => chainOf(e.scope)) };
}

/** Longest common prefix of scope chains. */
function commonPrefix(chains: readonly (readonly number[])[]): readonly number[] {
  if (chains.length === 0) return [];
  let n = chains[0].length;
  for (const c of chains) {
    let k = 0;
    while (k < n && k < c.length && c[k] === chains[0][k]) k++;
    n = k;
  }
  return chains[0].slice(0, n);
}

/**
 * Draw the program of `f` at `args`: `graph(f, opts)(...args)` returns a {@link Graph} with `.dot`, `await .svg()`
 * and the numbers behind the picture (`.value("a")`).
 *
 * @example
 * ```ts
 * const g = graph((x1: Tensor, x2: Tensor) => x1.sin().add(x1.mul(x2)), { sweep: "reverse", inputNames: ["x1", "x2"] })(
 *   tensor(2), tensor(5));
 * g.value("x1").adjoint?.item(); // cos(2) + 5
 * writeFileSync("graph.svg", await g.svg());
 * ```
 */
export function graph(
  // biome-ignore lint/suspicious/noExplicitAny: any function of tensors (makeJaxpr takes the same)
  f: (...args: any[]) => unknown,
  opts: GraphOptions = {},
): (...args: unknown[]) => Graph {
  return (...args: unknown[]): Graph => {
    const program = makeJaxpr(f)(...args);
    const [leaves] = treeFlatten(args);
    const sweep = opts.sweep ?? "forward";
    const small = opts.maxElements ?? 4;
    const numbers = opts.values ?? true;
    const vars = programVars(program);
    const show = (v: Var) => numbers && v.shape.reduce((a, b) => a * b, 1) <= small;
    const anyShown = vars.some(show);
    const values = numbers && anyShown ? recordValues(program, leaves) : null;
    let adjoints: Map<Var, Tensor> | null = null;
    let edgeAdj = new Map<string, Tensor>();
    if (sweep === "reverse" && numbers && anyShown) {
      const r = recordAdjoints(program, leaves);
      adjoints = r.adjoints;
      edgeAdj = r.edges;
    }
    let tangents: Map<Var, Tensor> | null = null;
    if (sweep === "tangent" && numbers && anyShown) {
      tangents = recordTangents(program, leaves, inputTangents(leaves, opts.tangents));
    }

    const names = new Map<Var, string>();
    vars.forEach((v, i) => {
      names.set(v, varName(i));
    });
    const aliases = new Map<Var, string>();
    const paths = leafPaths(program.inTree, opts.inputNames ?? []);
    program.invars.forEach((v, i) => {
      if (paths[i] !== undefined) aliases.set(v, paths[i]!);
    });
    {
      const byTensor = new Map<Tensor, string>(opts.constNames ?? []);
      const named = [...(opts.modules?.namedParameters?.() ?? []), ...(opts.modules?.namedBuffers?.() ?? [])];
      for (const [n, t] of named) if (!byTensor.has(t)) byTensor.set(t, n);
      program.constvars.forEach((v, i) => {
        const n = byTensor.get(program.consts[i]);
        if (n !== undefined) aliases.set(v, n);
      });
    }

    const { scopes, chains } = buildScopes(program.eqns, opts.modules);
    const innermost = (c: readonly number[]) => (c.length > 0 ? c[c.length - 1] : -1);
    const uses = new Map<Var, number[][]>();
    program.eqns.forEach((e, i) => {
      for (const a of e.inputs) {
        if (a instanceof Literal) continue;
        const list = uses.get(a);
        if (list === undefined) uses.set(a, [chains[i]]);
        else list.push(chains[i]);
      }
    });
    const defScope = new Map<Var, number>();
    program.eqns.forEach((e, i) => {
      for (const v of e.outputs) defScope.set(v, innermost(chains[i]));
    });
    const outputIndex = new Map<Var, number>();
    program.outs.forEach((a, k) => {
      if (!(a instanceof Literal) && !outputIndex.has(a)) outputIndex.set(a, k);
    });
    const inputs = new Set(program.invars);
    const consts = new Set(program.constvars);
    const fmt = (m: Map<Var, Tensor> | null, v: Var) => {
      const t = m?.get(v);
      return t !== undefined && show(v) ? fmtTensor(t) : undefined;
    };
    const valueNodes: ValueNode[] = vars.map((v) => {
      const name = names.get(v)!;
      const scope = defScope.get(v) ?? innermost(commonPrefix(uses.get(v) ?? []));
      return {
        id: `v_${name}`,
        name,
        alias: aliases.get(v),
        kind: inputs.has(v) ? "input" : consts.has(v) ? "const" : "value",
        aval: fmtAval(v),
        value: fmt(values, v),
        adjoint: fmt(adjoints, v),
        tangent: fmt(tangents, v),
        scope,
        output: outputIndex.get(v) ?? -1,
      };
    });
    const ops: OpNode[] = program.eqns.map((e, i) => {
      const label = `${e.name}${fmtParams(e.params)}`;
      return {
        id: `e${i}`,
        label: label.length > 48 ? `${label.slice(0, 47)}\u2026` : label,
        inputs: e.inputs.map((a, k) => {
          if (a instanceof Literal) return { from: null, literal: fmtLiteral(a).split(":")[0] };
          const t = edgeAdj.get(edgeKey(i, k));
          return {
            from: `v_${names.get(a)}`,
            adjoint: t !== undefined && show(a) ? fmtTensor(t) : undefined,
          };
        }),
        outputs: e.outputs.map((v) => `v_${names.get(v)}`),
        scope: innermost(chains[i]),
      };
    });
    const literalOutputs: { output: number; text: string }[] = [];
    program.outs.forEach((a, k) => {
      if (a instanceof Literal) literalOutputs.push({ output: k, text: fmtLiteral(a) });
    });
    const data: GraphData = { values: valueNodes, ops, scopes, literalOutputs };

    const byName = new Map<string, GraphValue>();
    for (const v of vars) {
      const gv: GraphValue = {
        name: names.get(v)!,
        alias: aliases.get(v),
        shape: v.shape,
        dtype: v.dtype,
        value: values?.get(v),
        adjoint: adjoints?.get(v),
        tangent: tangents?.get(v),
      };
      byName.set(gv.name, gv);
      if (gv.alias !== undefined && !byName.has(gv.alias)) byName.set(gv.alias, gv);
    }
    const view: DotView = {
      sweep,
      depth: opts.depth,
      expand: opts.expand,
      collapse: opts.collapse,
      title: opts.title,
      rankdir: opts.rankdir,
    };
    return new Graph(program, data, view, byName, edgeAdj);
  };
}

/** The flat input tangents: given ones (checked against the inputs), or ones for every float input. */
function inputTangents(leaves: readonly Tensor[], given: readonly unknown[] | undefined): Tensor[] {
  if (given === undefined) return leaves.map((x) => (isFloat(x.dtype) ? onesLike(x) : x));
  const [ts] = treeFlatten([...given]);
  if (ts.length !== leaves.length) {
    throw new ShapeError(`graph: ${ts.length} tangent tensors given for ${leaves.length} input tensors`);
  }
  return ts.map((t, i) => {
    if (
      !(t instanceof Tensor) ||
      t.shape.length !== leaves[i].shape.length ||
      t.shape.some((d, j) => d !== leaves[i].shape[j])
    ) {
      throw new ShapeError(
        `graph: tangent ${i} has shape ${fmtShape(t.shape)}, the input has ${fmtShape(leaves[i].shape)}`,
      );
    }
    return t.dtype === leaves[i].dtype ? t : t.to(leaves[i].dtype);
  });
}
