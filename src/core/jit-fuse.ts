/**
 * Fusion of elementwise chains for `jit`: in a simplified program, find the groups of pointwise equations that
 * can run as one `Backend.fused` kernel (one pass over memory instead of one per equation).
 *
 * A group is grown backwards from a root: a float unary/binary equation (every op of UNARY_OPS / BINARY_OPS that
 * maps operands of one float dtype to that dtype) joins the group of a consumer when every consumer it has in
 * a group is in that one, at least one is, and every other reader runs after the group's root (an equation
 * later in the program, a group whose root is later, or the program's outputs). A value read inside the group
 * only (as in `t * t` or `exp(x) * 2 + exp(x)`) stays in the kernel's registers; one also read after the
 * group becomes another output of it (multi-output fusion: an optimizer's new moments, which the parameter
 * update reads, leave the same pass that computes the update). Its operands' shapes equal its output's (the
 * ops layer broadcast them with explicit `broadcast` equations, which stay outside: their outputs are
 * stride-0 views the kernel reads as inputs), so a group has one shape. The group's other operands become its
 * inputs, literals become consts. The group runs as one step at its root's place: every member precedes the
 * root, and no path leaves the group and comes back, since whatever reads a member outside runs after the
 * root, and everything a member reads runs before it.
 */
import { fusedProgram, isFusableOp } from "../backend/fused.ts";
import type { BinaryOp, FusedInstr, FusedProgram, UnaryOp } from "../backend/backend.ts";
import { type Atom, type Eqn, Literal, type Program, type Var } from "./jaxpr.ts";

/** One fused step: which equations it replaces, what it reads and writes, and the program it runs. */
export interface FusionGroup {
  /** Indices (into program.eqns) of the group's equations, ascending; the last one is the root. */
  readonly members: readonly number[];
  /** The group's inputs, in the order of the program's input indices. */
  readonly inputs: readonly Var[];
  /** The values it hands on (the root's, and any member's read after it), in the order of program.outputs. */
  readonly outputs: readonly Var[];
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
 * `multiOutput: false` keeps to the single-output groups (every member but the root read inside only).
 */
export function planFusion(program: Program, multiOutput = true): FusionGroup[] {
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
  // where a consumer runs: its own place, or its group's root's
  const runsAt = (c: number) => (groupOf[c] >= 0 ? members[groupOf[c]][0] : c);
  for (let i = eqns.length - 1; i >= 0; i--) {
    const e = eqns[i];
    if (!fusable(e)) continue;
    const v = e.outputs[0];
    const cs = consumers.get(v) ?? [];
    let g = -1;
    for (const c of cs) {
      if (groupOf[c] < 0) continue;
      if (g < 0) g = groupOf[c];
      else if (groupOf[c] !== g) g = -2; // read by two groups
    }
    if (g >= 0) {
      const root = members[g][0];
      const outside = outputs.has(v) || cs.some((c) => groupOf[c] !== g);
      if (members[g].length >= MAX_GROUP || (outside && !multiOutput)) g = -1;
      else if (cs.some((c) => groupOf[c] !== g && runsAt(c) < root)) g = -1;
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
    groups.push(
      build(
        eqns,
        m,
        (i) =>
          i === m[m.length - 1] ||
          outputs.has(eqns[i].outputs[0]) ||
          (consumers.get(eqns[i].outputs[0]) ?? []).some((c) => groupOf[c] !== groupOf[i]),
      ),
    );
  }
  groups.sort((a, b) => a.members[a.members.length - 1] - b.members[b.members.length - 1]);
  return groups;
}

/** The fused program of one group (members ascending); `handsOn(i)`: member i's value is read after it. */
function build(
  eqns: readonly Eqn[],
  members: readonly number[],
  handsOn: (i: number) => boolean,
): FusionGroup {
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
  const outs: Var[] = [];
  const outRegs: number[] = [];
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
    if (handsOn(i)) {
      outs.push(e.outputs[0]);
      outRegs.push(instrs.length - 1);
    }
  }
  return { members, inputs, outputs: outs, program: fusedProgram(dtype, instrs, outRegs) };
}
