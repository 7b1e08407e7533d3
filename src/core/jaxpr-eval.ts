/**
 * The evaluator of programs: `evalJaxpr(program, ...args)` runs a traced program on tensors, equation by
 * equation, through `bind`. That makes it the reference semantics for the future jit, and, because every
 * equation binds like any op, evaluating a program under grad/jvp/vjp (or under makeJaxpr again) works.
 *
 * Calls: a checkpoint is rebuilt entirely from its sub-program (reverse mode differentiates the sub-program's
 * evaluation, recomputing it), so it needs nothing from trace time. customJvp/customVjp evaluate their body from
 * the sub-program but keep the user's rule functions (host code, not programs); a rule that closed over a
 * traced value of the original trace therefore cannot be re-run (a leaked-tracer error says so).
 */
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { treeFlatten, treeUnflatten } from "../tree.ts";
import { vjpFlat } from "./autodiff.ts";
import { type Atom, type Eqn, fmtAval, Literal, type Program, type Var } from "./jaxpr.ts";
import { bind, bindCall, type CallRule } from "./trace.ts";

/** Run the flat program on flat inputs (already checked), returning the flat outputs. */
export function evalFlat(p: Program, args: readonly Tensor[]): Tensor[] {
  const env = new Map<Var, Tensor>();
  for (let i = 0; i < p.constvars.length; i++) env.set(p.constvars[i], p.consts[i]);
  for (let i = 0; i < p.invars.length; i++) env.set(p.invars[i], args[i]);
  const read = (a: Atom): Tensor => (a instanceof Literal ? a.value : env.get(a)!);
  for (const e of p.eqns) {
    const ins = e.inputs.map(read);
    if (e.prim !== null) {
      env.set(e.outputs[0], bind(e.prim, ins, e.params));
    } else {
      const outs = evalCall(e, ins);
      for (let i = 0; i < outs.length; i++) env.set(e.outputs[i], outs[i]);
    }
  }
  return p.outs.map(read);
}

/** Evaluate a call equation (checkpoint, customJvp, customVjp, jit) on its inputs through bindCall. */
export function evalCall(e: Eqn, ins: readonly Tensor[]): Tensor[] {
  const orig = e.rule!;
  // control flow (scan, cond, while): the rule is built from the programs in its params alone; bind it again
  if (orig.staged !== undefined) return bindCall(orig, ins);
  const sub = e.sub!;
  if (orig.name === "checkpoint") {
    const fn = (xs: readonly Tensor[]) => evalFlat(sub, xs);
    const rule: CallRule = {
      name: "checkpoint",
      fn,
      vjp: (primals) => ({
        outs: fn(primals),
        backward: (cts) => vjpFlat((xs) => fn(xs), primals, { retain: false }).backward(cts),
      }),
    };
    return bindCall(rule, ins);
  }
  const k = (e.params as { numConsts: number }).numConsts;
  const consts = ins.slice(0, k);
  const rule: CallRule = {
    name: orig.name,
    fn: (xs) => evalFlat(sub, [...consts, ...xs]),
    jvp: orig.jvp,
    vjp: orig.vjp,
  };
  return bindCall(rule, ins.slice(k));
}

/**
 * Evaluate `program` (from `makeJaxpr`) on arguments with the same structure, shapes and dtypes as the ones it
 * was traced with; returns the result with the traced function's output structure.
 */
export function evalJaxpr(program: Program, ...args: unknown[]): any {
  const [leaves] = treeFlatten(args);
  const n = program.invars.length;
  if (leaves.length !== n) {
    throw new ShapeError(
      `evalJaxpr: the program takes ${n} input tensors (${program.invars.map(fmtAval).join(", ")}), got ${leaves.length}`,
    );
  }
  program.invars.forEach((v, i) => {
    const x = leaves[i];
    if (!shapesEqual(x.shape, v.shape)) {
      throw new ShapeError(
        `evalJaxpr: input ${i} has shape ${fmtShape(x.shape)}, but the program was traced with ${fmtShape(v.shape)}`,
      );
    }
    if (x.dtype !== v.dtype) {
      throw new DTypeError(
        `evalJaxpr: input ${i} has dtype ${x.dtype}, but the program was traced with ${v.dtype}`,
      );
    }
  });
  const outs = evalFlat(program, leaves);
  return program.outTree === null ? outs : treeUnflatten(program.outTree, outs);
}
