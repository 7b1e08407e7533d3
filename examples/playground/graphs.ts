/**
 * Panel 1: type an expression in x and y and see its computation graph three times, as `graph` draws it: the
 * forward pass with every value, the reverse sweep with every adjoint v̄ = ∂f/∂v (and the share flowing along
 * each edge), and the forward-mode sweep with every value's tangent (the dual number (v, v̇)). Redrawn shortly
 * after each keystroke or slider move; a syntax error is shown under the input with a caret at its position.
 */
import * as cr from "../../src/index.ts";
import { compile, ExprError, parse } from "./expr.ts";

/** The panel's elements. */
export interface GraphElements {
  expr: HTMLInputElement;
  x: HTMLInputElement;
  y: HTMLInputElement;
  xRange: HTMLInputElement;
  yRange: HTMLInputElement;
  seedY: HTMLInputElement;
  seedX: HTMLInputElement;
  error: HTMLElement;
  summary: HTMLElement;
  forward: HTMLElement;
  reverse: HTMLElement;
  tangent: HTMLElement;
}

/** What the last drawing showed (exact numbers, for the page's test hook). */
export interface Drawn {
  expr: string;
  x: number;
  y: number;
  seed: "x" | "y";
  value: number;
  dfdx: number;
  dfdy: number;
  tangent: number;
}

/** A number in at most 4 significant digits (as the graphs print them). */
export const fmt = (v: number) => String(Number(v.toPrecision(4)));

/** The expression with a caret under position `pos` and the message. */
function caret(src: string, pos: number, message: string): string {
  return `${src}\n${" ".repeat(pos)}^\n${message}`;
}

/** Wire the panel; returns its live state (for the page's test hook). */
export function setupGraphs(el: GraphElements) {
  const state: { drawn: Drawn | null; error: string | null; draws: number } = {
    drawn: null,
    error: null,
    draws: 0,
  };
  let gen = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const f64 = { dtype: "float64" as const };

  const draw = async () => {
    const my = ++gen;
    const src = el.expr.value;
    const x = Number(el.x.value);
    const y = Number(el.y.value);
    const seed = el.seedY.checked ? "y" : "x";
    let f: (x: cr.Tensor, y: cr.Tensor) => cr.Tensor;
    try {
      f = compile(parse(src));
    } catch (e) {
      if (!(e instanceof ExprError)) throw e;
      state.error = e.message;
      el.error.textContent = caret(src, e.pos, e.message);
      el.error.hidden = false;
      for (const box of [el.forward, el.reverse, el.tangent]) box.classList.add("stale");
      return;
    }
    el.error.hidden = true;
    state.error = null;
    const args = [cr.tensor(x, f64), cr.tensor(y, f64)];
    const tangents =
      seed === "x" ? [cr.tensor(1, f64), cr.tensor(0, f64)] : [cr.tensor(0, f64), cr.tensor(1, f64)];
    const draw1 = (sweep: cr.viz.Sweep) =>
      cr.graph(f, {
        sweep,
        inputNames: ["x", "y"],
        tangents: sweep === "tangent" ? tangents : undefined,
        rankdir: "TB",
      })(...args);
    let gs: Record<cr.viz.Sweep, cr.Graph>;
    let svgs: string[];
    try {
      gs = { forward: draw1("forward"), reverse: draw1("reverse"), tangent: draw1("tangent") };
      svgs = await Promise.all([gs.forward.svg(), gs.reverse.svg(), gs.tangent.svg()]);
    } catch (e) {
      if (my !== gen) return;
      state.error = String(e instanceof Error ? e.message : e);
      el.error.textContent = state.error;
      el.error.hidden = false;
      return;
    }
    if (my !== gen) return; // a newer drawing has started
    [el.forward.innerHTML, el.reverse.innerHTML, el.tangent.innerHTML] = svgs;
    for (const box of [el.forward, el.reverse, el.tangent]) box.classList.remove("stale");
    // the output's numbers, from the pictures (an expression without x and y has a constant output)
    const outName = gs.tangent.data.values.find((v) => v.output === 0)?.name;
    const out = (g: cr.Graph) => (outName === undefined ? undefined : g.value(outName));
    // a constant output (a literal of the program) has no node: its value is f's, its derivatives are 0
    const item = (t: cr.Tensor | undefined) =>
      t !== undefined ? t.item() : outName === undefined ? 0 : Number.NaN;
    const drawn: Drawn = {
      expr: src,
      x,
      y,
      seed,
      value: outName === undefined ? f(args[0], args[1]).item() : item(out(gs.forward)?.value),
      dfdx: item(gs.reverse.value("x").adjoint),
      dfdy: item(gs.reverse.value("y").adjoint),
      tangent: item(out(gs.tangent)?.tangent),
    };
    state.drawn = drawn;
    state.draws++;
    el.summary.innerHTML =
      `f(${fmt(x)}, ${fmt(y)}) = <b>${fmt(drawn.value)}</b>; reverse mode, one sweep: ` +
      `<span class="adj">∂f/∂x = <b>${fmt(drawn.dfdx)}</b>, ∂f/∂y = <b>${fmt(drawn.dfdy)}</b></span>; ` +
      `forward mode with ${seed === "x" ? "ẋ = 1, ẏ = 0" : "ẋ = 0, ẏ = 1"}: ` +
      `<span class="tan">ḟ = ∂f/∂${seed} = <b>${fmt(drawn.tangent)}</b></span>`;
  };

  /** Redraw soon: typing quickly redraws once, after a short pause. */
  const schedule = (ms = 150) => {
    clearTimeout(timer);
    timer = setTimeout(() => void draw(), ms);
  };
  const link = (num: HTMLInputElement, range: HTMLInputElement) => {
    range.addEventListener("input", () => {
      num.value = range.value;
      schedule(30);
    });
    num.addEventListener("input", () => {
      range.value = num.value;
      schedule();
    });
  };
  link(el.x, el.xRange);
  link(el.y, el.yRange);
  el.expr.addEventListener("input", () => schedule());
  el.seedX.addEventListener("change", () => schedule(0));
  el.seedY.addEventListener("change", () => schedule(0));
  return { state, ready: draw() };
}
