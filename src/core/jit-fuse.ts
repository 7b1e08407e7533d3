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
 *
 * With `reduce`, a float sum / max / min is always the root of a group of its own, and the chain producing its
 * operand joins it as above: the group computes the chain and folds the operand into the reduced output in one
 * pass (`FusedProgram.reduce`), storing a member only when something after the group reads it (softmax's exp,
 * which the division reads too). Of several groups reading a value, it may join the one whose root runs
 * first, as another output, when the others run later.
 */
import { fusedProgram, isFusableOp } from "../backend/fused.ts";
import type { BinaryOp, FusedInstr, FusedProgram, FusedReduce, UnaryOp } from "../backend/backend.ts";
import { type Atom, type Eqn, Literal, type Program, type Var } from "./jaxpr.ts";

/** One fused step: which equations it replaces, what it reads and writes, and the program it runs. */
export interface FusionGroup {
  /** Indices (into program.eqns) of the group's equations, ascending; the last one is the root. */
  readonly members: readonly number[];
  /** The group's inputs, in the order of the program's input indices. */
  readonly inputs: readonly Var[];
  /**
   * The values it hands on (the root's, and any member's read after it), in the order of program.outputs; for
   * a reducing group (the root a reduction: `program.reduce`), the members' first and the reduction's last.
   */
  readonly outputs: readonly Var[];
  readonly program: FusedProgram;
  /**
   * A GEMM epilogue group: the `dot` equation whose product is the program's input 0 (`inputs[0]`, read by
   * nothing else), run with the chain by `Backend.dotFused`; its index is among `members`. Else undefined.
   */
  readonly dot?: Eqn;
}

/** Largest group (equations); a longer chain becomes several groups. */
const MAX_GROUP = 256;

/**
 * The most values a GEMM epilogue group may hand on: one (an activation). An optimizer update reading a weight
 * gradient (new parameter and moments) runs as one flat pass instead: as an epilogue, with the moments written
 * in place and the next block's operands prefetched into L2 while the GEMM computes it, it measured no faster
 * (MLP 784-512-256-10 weight gradients with Adam, 1 thread: 1.06-1.11x slower in the step; alone, equal), the
 * update's ~13 ops per element costing as much over the blocks as in one pass.
 */
let epilogueOutputs = 1;

/**
 * @internal How many outputs a GEMM epilogue group may have (measurements: more than 1 lets optimizer updates
 * into epilogues). Returns the previous setting.
 */
export function setEpilogueOutputs(n: number): number {
  const prev = epilogueOutputs;
  epilogueOutputs = n;
  return prev;
}

function fusable(e: Eqn): boolean {
  if (e.prim === null || e.outputs.length !== 1 || !isFusableOp(e.name)) return false;
  const dt = e.outputs[0].dtype;
  if (dt !== "float32" && dt !== "float64") return false;
  return e.inputs.every((a) => a.dtype === dt);
}

/** A float sum / max / min of a variable over axes of its rank: it may end a group (a reduction terminal). */
function reducible(e: Eqn): boolean {
  if (e.prim === null || e.outputs.length !== 1 || e.inputs.length !== 1) return false;
  if (e.name !== "sum" && e.name !== "max" && e.name !== "min") return false;
  const x = e.inputs[0];
  if (x instanceof Literal || (x.dtype !== "float32" && x.dtype !== "float64")) return false;
  if (e.outputs[0].dtype !== x.dtype) return false;
  const axes = (e.params as { axes?: readonly number[] }).axes;
  return Array.isArray(axes) && axes.every((a, i) => a < x.shape.length && (i === 0 || a > axes[i - 1]));
}

/** Options of `planFusion`. */
export interface FusionOptions {
  /** Members read after the group become further outputs (default true); false: single-output groups. */
  readonly multiOutput?: boolean;
  /**
   * A float sum / max / min may end a group (`FusedProgram.reduce`): the chain feeding it is computed and
   * reduced in one pass, its value never stored unless read elsewhere (default false: for backends declaring
   * `fusedReduce`).
   */
  readonly reduce?: boolean;
  /**
   * A float `dot` whose product only an elementwise group reads joins that group as its producer (GEMM epilogue
   * fusion: bias, activation, scale, residual run on each block of the product as the GEMM finishes it), so a
   * group of one elementwise equation is kept then (default false: for backends with `dotFused`).
   */
  readonly epilogue?: boolean;
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
export function planFusion(program: Program, opts: FusionOptions | boolean = {}): FusionGroup[] {
  const o: FusionOptions = typeof opts === "boolean" ? { multiOutput: opts } : opts;
  const multiOutput = o.multiOutput !== false;
  const reduce = o.reduce === true;
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
    if (reduce && reducible(e)) {
      // a reduction is always a group's root (nothing of its input's shape can follow it in a group)
      groupOf[i] = members.length;
      members.push([i]);
      continue;
    }
    if (!fusable(e)) continue;
    const v = e.outputs[0];
    const cs = consumers.get(v) ?? [];
    // the candidate: of the groups reading v, the one whose root runs first (the others read v later)
    let g = -1;
    for (const c of cs) {
      if (groupOf[c] < 0) continue;
      if (g < 0 || members[groupOf[c]][0] < members[g][0]) g = groupOf[c];
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
  // GEMM epilogues: a float dot read only by one elementwise group (not a program output) joins it
  const dotOf = new Map<number, number>(); // group -> its dot's equation
  if (o.epilogue === true) {
    const producer = new Map<Var, number>();
    eqns.forEach((e, i) => {
      for (const v of e.outputs) producer.set(v, i);
    });
    members.forEach((m, g) => {
      const root = m[0];
      if (!fusable(eqns[root])) return; // (a reducing group: no epilogue)
      // values out: an activation, or (epilogueOutputs > 1) an optimizer's parameter and moments computed from
      // the weight gradient as the GEMM finishes each block of it (the gradient never stored and read back)
      let escaping = 0;
      for (const k of m) {
        const v = eqns[k].outputs[0];
        if (outputs.has(v) || (consumers.get(v) ?? []).some((c) => groupOf[c] !== g)) escaping++;
      }
      if (escaping > epilogueOutputs) return;
      const dt = eqns[root].outputs[0].dtype;
      for (let k = m.length - 1; k >= 0 && !dotOf.has(g); k--) {
        for (const a of eqns[m[k]].inputs) {
          if (a instanceof Literal) continue;
          const d = producer.get(a);
          if (d === undefined || groupOf[d] >= 0) continue;
          const e = eqns[d];
          if (e.name !== "dot" || e.prim === null || e.outputs.length !== 1 || a.dtype !== dt) continue;
          if (e.inputs.some((x) => x.dtype !== dt) || a.shape.length < 2 || outputs.has(a)) continue;
          if (!(consumers.get(a) ?? []).every((c) => groupOf[c] === g)) continue;
          dotOf.set(g, d);
          groupOf[d] = g;
          break;
        }
      }
    });
  }
  const groups: FusionGroup[] = [];
  for (let g = 0; g < members.length; g++) {
    const m = members[g];
    const dot = dotOf.get(g);
    if (m.length < (dot === undefined ? 2 : 1)) continue;
    m.reverse();
    const root = m[m.length - 1];
    const reducing = !fusable(eqns[root]);
    if (dot !== undefined) {
      const group = build(
        eqns,
        m,
        (i) =>
          i === root ||
          outputs.has(eqns[i].outputs[0]) ||
          (consumers.get(eqns[i].outputs[0]) ?? []).some((c) => groupOf[c] !== groupOf[i]),
        false,
        eqns[dot].outputs[0],
      );
      const all = [...m, dot].sort((x, y) => x - y);
      groups.push({ ...group, members: all, dot: eqns[dot] });
      continue;
    }
    groups.push(
      build(
        eqns,
        m,
        (i) =>
          (i === root && !reducing) ||
          outputs.has(eqns[i].outputs[0]) ||
          (consumers.get(eqns[i].outputs[0]) ?? []).some((c) => groupOf[c] !== groupOf[i]),
        reducing,
      ),
    );
  }
  groups.sort((a, b) => a.members[a.members.length - 1] - b.members[b.members.length - 1]);
  return groups;
}

/**
 * The fused program of one group (members ascending); `handsOn(i)`: member i's value is read after it;
 * `reducing`: the root is a reduction of a member (the program's reduction terminal, its last output).
 */
function build(
  eqns: readonly Eqn[],
  members: readonly number[],
  handsOn: (i: number) => boolean,
  reducing: boolean,
  first?: Var,
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
  if (first !== undefined) operand(first); // (a GEMM epilogue's product: input 0)
  const outs: Var[] = [];
  const outRegs: number[] = [];
  const body = reducing ? members.slice(0, -1) : members;
  for (const i of body) {
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
  if (!reducing) return { members, inputs, outputs: outs, program: fusedProgram(dtype, instrs, outRegs) };
  const root = eqns[members[members.length - 1]];
  const reduce: FusedReduce = {
    op: root.name as FusedReduce["op"],
    reg: reg.get(root.inputs[0] as Var)!,
    axes: (root.params as { axes: readonly number[] }).axes,
  };
  outs.push(root.outputs[0]);
  return { members, inputs, outputs: outs, program: fusedProgram(dtype, instrs, outRegs, reduce) };
}
