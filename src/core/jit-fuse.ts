/**
 * Fusion of elementwise chains for `jit`: in a simplified program, find the groups of pointwise equations that
 * can run as one `Backend.fused` kernel (one pass over memory instead of one per equation).
 *
 * A group is grown backwards from a root: a float unary/binary equation (every op of UNARY_OPS / BINARY_OPS that
 * maps operands of one float dtype to that dtype) joins the group of its consumers when all of them are in one
 * group and its output is not a program output, so every value a group computes, except the root's, is used
 * only inside it (a value read twice inside the group, as in `t * t` or `exp(x) * 2 + exp(x)`, stays in). Its
 * operands' shapes equal its output's (the ops layer broadcast them with explicit `broadcast` equations, which
 * stay outside: their outputs are stride-0 views the kernel reads as inputs), so a group has one shape. The
 * group's other operands become its inputs, literals become consts. Every member precedes the root, and no path
 * leaves the group and comes back (only the root has consumers outside), so the group runs as one step at the
 * root's place.
 */
import { fusedProgram, isFusableOp } from "../backend/fused.ts";
import type { BinaryOp, FusedInstr, FusedProgram, UnaryOp } from "../backend/backend.ts";
import { type Atom, type Eqn, Literal, type Program, type Var } from "./jaxpr.ts";

/** One fused step: which equations it replaces, what it reads, and the program it runs. */
export interface FusionGroup {
  /** Indices (into program.eqns) of the group's equations, ascending; the last one is the root. */
  readonly members: readonly number[];
  /** The group's inputs, in the order of the program's input indices. */
  readonly inputs: readonly Var[];
  readonly program: FusedProgram;
}

/** Largest group (equations); a longer chain becomes several groups. */
const MAX_GROUP = 256;

function fusable(e: Eqn): boolean {
  if (e.prim === null || e.outputs.length !== 1 || !isFusableOp(e.name)) return false;
  const dt = e.outputs[0].dtype;
  if (dt !== "float32" && dt !== "float64") return false;
  return e.inputs.every((a) => a.dtype === dt);
}

/**
 * The fusion groups of `program` (groups of at least two equations; anything else runs as it is).
 *
 * @example
 * ```ts
 * const p = jit((x: Tensor) => x.mul(2).add(1).tanh()).lower(x);
 * planFusion(p); // one group: members [0, 1, 2], inputs [x], consts 2 and 1
 * ```
 */
export function planFusion(program: Program): FusionGroup[] {
  const eqns = program.eqns;
  const consumers = new Map<Var, number[]>();
  eqns.forEach((e, i) => {
    for (const a of e.inputs) {
      if (a instanceof Literal) continue;
      let l = consumers.get(a);
      if (l === undefined) consumers.set(a, (l = []));
      if (l[l.length - 1] !== i) l.push(i);
    }
  });
  const outputs = new Set<Atom>(program.outs);
  const groupOf = new Int32Array(eqns.length).fill(-1);
  const members: number[][] = [];
  for (let i = eqns.length - 1; i >= 0; i--) {
    const e = eqns[i];
    if (!fusable(e)) continue;
    const v = e.outputs[0];
    const cs = consumers.get(v);
    let g = -1;
    if (!outputs.has(v) && cs !== undefined && cs.length > 0) {
      g = groupOf[cs[0]];
      for (const c of cs) if (groupOf[c] !== g) g = -1;
      if (g >= 0 && members[g].length >= MAX_GROUP) g = -1;
    }
    if (g < 0) {
      g = members.length;
      members.push([]);
    }
    groupOf[i] = g;
    members[g].push(i);
  }
  const groups: FusionGroup[] = [];
  for (const m of members) {
    if (m.length < 2) continue;
    m.reverse();
    groups.push(build(eqns, m));
  }
  groups.sort((a, b) => a.members[a.members.length - 1] - b.members[b.members.length - 1]);
  return groups;
}

/** The fused program of one group (members ascending). */
function build(eqns: readonly Eqn[], members: readonly number[]): FusionGroup {
  const instrs: FusedInstr[] = [];
  const inputs: Var[] = [];
  const reg = new Map<Var, number>();
  const consts = new Map<string, number>();
  const dtype = eqns[members[0]].outputs[0].dtype as "float32" | "float64";
  const operand = (a: Atom): number => {
    if (a instanceof Literal) {
      const v = a.value._data![a.value._offset];
      const key = Object.is(v, -0) ? "-0" : String(v); // by value (-0 is its own)
      let r = consts.get(key);
      if (r === undefined) {
        r = instrs.length;
        instrs.push({ kind: "const", value: v });
        consts.set(key, r);
      }
      return r;
    }
    let r = reg.get(a);
    if (r === undefined) {
      r = instrs.length;
      instrs.push({ kind: "input", index: inputs.length });
      inputs.push(a);
      reg.set(a, r);
    }
    return r;
  };
  for (const i of members) {
    const e = eqns[i];
    if (e.inputs.length === 1) {
      const a = operand(e.inputs[0]);
      instrs.push({ kind: "unary", op: e.name as UnaryOp, a });
    } else {
      const a = operand(e.inputs[0]);
      const b = operand(e.inputs[1]);
      instrs.push({ kind: "binary", op: e.name as BinaryOp, a, b });
    }
    reg.set(e.outputs[0], instrs.length - 1);
  }
  return { members, inputs, program: fusedProgram(dtype, instrs) };
}
