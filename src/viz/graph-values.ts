/**
 * The numbers on a computation-graph picture: the value of every variable of a program (forward sweep), the
 * adjoint of every variable and of every edge (reverse sweep), and the tangent of every variable (forward-mode
 * sweep with dual numbers). All three are computed with the library's own evaluator and transforms:
 *
 * - values: the program is evaluated equation by equation (through `bind`, as `evalJaxpr` does), keeping every
 *   variable;
 * - adjoints: the same evaluation with a zero "probe" added to every float variable where it is bound (v + p_v)
 *   and to every use of it by an equation (an edge, v + p_e); the reverse-mode gradient of the outputs with respect
 *   to the probes, at probes = 0, is the adjoint v̄ = ∂y/∂v of each variable and the share of it that flows back
 *   along each edge (v̄ is the sum of its edges' shares, plus the seed if v is an output);
 * - tangents: forward mode (`jvp`) of "the function returning every variable", seeded with the input tangents.
 */
import { vjpFlat, jvpFlat } from "../core/autodiff.ts";
import { evalFlat } from "../core/jaxpr-eval.ts";
import { type Atom, type Eqn, Literal, Program, Var } from "../core/jaxpr.ts";
import { bind } from "../core/trace.ts";
import { isFloat } from "../dtype.ts";
import { onesLike, zeros } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Key of an edge: equation index and input position. */
export function edgeKey(eqn: number, input: number): string {
  return `${eqn}:${input}`;
}

/** Every variable of a program in binding order: constants, inputs, then equation outputs. */
export function programVars(p: Program): Var[] {
  const out: Var[] = [...p.constvars, ...p.invars];
  for (const e of p.eqns) out.push(...e.outputs);
  return out;
}

/** One equation on tensors: a primitive through `bind`, a call through the evaluator (its rules kept). */
function evalEqn(e: Eqn, ins: readonly Tensor[]): Tensor[] {
  if (e.prim !== null) return [bind(e.prim, ins, e.params)];
  const fresh = ins.map((t, i) => new Var(-1 - i, t.shape, t.dtype));
  const one = new Program([], [], fresh, [{ ...e, inputs: fresh }], e.outputs, null, null);
  return evalFlat(one, ins);
}

interface Probes {
  vars: Map<Var, Tensor>;
  edges: Map<string, Tensor>;
}

/** Evaluate `p` on flat `args`, adding probes where given; returns every variable's value. */
function run(p: Program, args: readonly Tensor[], probes: Probes | null): Map<Var, Tensor> {
  const env = new Map<Var, Tensor>();
  const bindVar = (v: Var, t: Tensor) => {
    const q = probes?.vars.get(v);
    env.set(v, q === undefined ? t : t.add(q));
  };
  p.constvars.forEach((v, i) => {
    bindVar(v, p.consts[i]);
  });
  p.invars.forEach((v, i) => {
    bindVar(v, args[i]);
  });
  const read = (a: Atom): Tensor => (a instanceof Literal ? a.value : env.get(a)!);
  p.eqns.forEach((e, i) => {
    const ins = e.inputs.map((a, k) => {
      const t = read(a);
      const q = probes?.edges.get(edgeKey(i, k));
      return q === undefined ? t : t.add(q);
    });
    const outs = evalEqn(e, ins);
    e.outputs.forEach((v, k) => {
      bindVar(v, outs[k]);
    });
  });
  return env;
}

/** Values of every variable of `p` at `args` (flat, checked by the caller). */
export function recordValues(p: Program, args: readonly Tensor[]): Map<Var, Tensor> {
  return run(p, args, null);
}

/** Indices of the float inputs: the ones a derivative can be taken with respect to. */
function floatInputs(p: Program): number[] {
  const idx: number[] = [];
  p.invars.forEach((v, i) => {
    if (isFloat(v.dtype)) idx.push(i);
  });
  return idx;
}

/** What the reverse sweep finds: adjoints of variables and of edges (`edgeKey`), and the output values. */
export interface ReverseSweep {
  adjoints: Map<Var, Tensor>;
  edges: Map<string, Tensor>;
}

/**
 * Reverse sweep of `p` at `args`: the adjoint of every float variable and edge, for the output cotangents
 * `seeds` (default ones: for a scalar output y, ȳ = 1).
 */
export function recordAdjoints(p: Program, args: readonly Tensor[], seeds?: readonly Tensor[]): ReverseSweep {
  const fi = floatInputs(p);
  const vars = programVars(p).filter((v) => isFloat(v.dtype));
  const edges: [string, Var][] = [];
  p.eqns.forEach((e, i) => {
    e.inputs.forEach((a, k) => {
      if (a instanceof Var && isFloat(a.dtype)) edges.push([edgeKey(i, k), a]);
    });
  });
  const primals = [
    ...fi.map((i) => args[i]),
    ...vars.map((v) => zerosOf(v)),
    ...edges.map(([, v]) => zerosOf(v)),
  ];
  const nIn = fi.length;
  const f = (xs: Tensor[]): Tensor[] => {
    const full = [...args];
    fi.forEach((i, j) => {
      full[i] = xs[j];
    });
    const probes: Probes = { vars: new Map(), edges: new Map() };
    vars.forEach((v, j) => {
      probes.vars.set(v, xs[nIn + j]);
    });
    edges.forEach(([key], j) => {
      probes.edges.set(key, xs[nIn + vars.length + j]);
    });
    const env = run(p, full, probes);
    return p.outs.map((a) => (a instanceof Literal ? a.value : env.get(a)!));
  };
  const { outs, backward } = vjpFlat(f, primals, { retain: false });
  const cts = backward(seeds ?? outs.map((o) => onesLike(o)));
  const adjoints = new Map<Var, Tensor>();
  vars.forEach((v, j) => {
    adjoints.set(v, cts[nIn + j]);
  });
  const edgeCts = new Map<string, Tensor>();
  edges.forEach(([key], j) => {
    edgeCts.set(key, cts[nIn + vars.length + j]);
  });
  return { adjoints, edges: edgeCts };
}

/**
 * Forward-mode sweep of `p` at `args` with input tangents `tangents` (one per input; ignored for non-float
 * inputs): the tangent of every variable (zero for non-float ones).
 */
export function recordTangents(
  p: Program,
  args: readonly Tensor[],
  tangents: readonly Tensor[],
): Map<Var, Tensor> {
  const fi = floatInputs(p);
  const all = programVars(p);
  const f = (xs: Tensor[]): Tensor[] => {
    const full = [...args];
    fi.forEach((i, j) => {
      full[i] = xs[j];
    });
    const env = run(p, full, null);
    return all.map((v) => env.get(v)!);
  };
  const [, ts] = jvpFlat(
    f,
    fi.map((i) => args[i]),
    fi.map((i) => tangents[i]),
  );
  const out = new Map<Var, Tensor>();
  all.forEach((v, j) => {
    out.set(v, isFloat(v.dtype) ? ts[j] : zerosOf(v));
  });
  return out;
}

function zerosOf(v: Var): Tensor {
  return zeros(v.shape, { dtype: v.dtype });
}
