/**
 * Fused elementwise programs (`Backend.fused`): building one (checked, with its flat form and cache key) and the
 * reference semantics, running it instruction by instruction through a backend's own `unary` / `binary`
 * kernels. Backends use that reference as their fallback for programs their fused kernel does not handle.
 */
import { allocTyped, type TypedArray } from "../dtype.ts";
import { sizeOf } from "../shape.ts";
import {
  type Backend,
  BINARY_OPS,
  type BinaryOp,
  type FusedInstr,
  type FusedProgram,
  type FusedReduce,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "./backend.ts";

/** Instruction kinds of the flat form (`FusedProgram.code`). */
export const FUSED_INPUT = 0;
export const FUSED_CONST = 1;
export const FUSED_UNARY = 2;
export const FUSED_BINARY = 3;
/** Not an instruction of FusedProgram.code: the native kernel's store of a register to an output. */
export const FUSED_STORE = 4;
/** Not an instruction of FusedProgram.code: the native kernel's reduction terminal [5, op, register, 0]. */
export const FUSED_REDUCE = 5;

const UNARY_CODE = new Map<UnaryOp, number>(UNARY_OPS.map((op, i) => [op, i]));
const BINARY_CODE = new Map<BinaryOp, number>(BINARY_OPS.map((op, i) => [op, i]));

/** Ops a float program may use: every unary op but `not` (bool), and the arithmetic binary ops. */
const FLOAT_UNARY = new Set<UnaryOp>(UNARY_OPS.filter((op) => op !== "not"));
const FLOAT_BINARY = new Set<BinaryOp>(["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"]);

/** True if `op` maps float operands to a float of the same dtype (so it may appear in a fused program). */
export function isFusableOp(name: string): boolean {
  return FLOAT_UNARY.has(name as UnaryOp) || FLOAT_BINARY.has(name as BinaryOp);
}

/**
 * Check `instrs` and build the program: its flat form, its consts (rounded to `dtype`) and its structural key.
 * `outputs` are the registers written out (default: the last one), each an op's result, once. Throws a TypeError naming the instruction
 * when an operand is not an earlier register, an op is not a float elementwise op, or input indices are not
 * 0 .. k-1, or naming the output that is not a register.
 *
 * @example
 * ```ts
 * // out = tanh(x * 2) + x
 * const p = fusedProgram("float32", [
 *   { kind: "input", index: 0 }, { kind: "const", value: 2 }, { kind: "binary", op: "mul", a: 0, b: 1 },
 *   { kind: "unary", op: "tanh", a: 2 }, { kind: "binary", op: "add", a: 3, b: 0 },
 * ]);
 * ```
 */
export function fusedProgram(
  dtype: "float32" | "float64",
  instrs: readonly FusedInstr[],
  outputs: readonly number[] = [instrs.length - 1],
  reduce?: FusedReduce,
): FusedProgram {
  if (dtype !== "float32" && dtype !== "float64") {
    throw new TypeError(`fusedProgram: dtype must be float32 or float64, got ${String(dtype)}`);
  }
  if (instrs.length === 0) throw new TypeError("fusedProgram: a program needs at least one instruction");
  const code = new Int32Array(4 * instrs.length);
  const consts: number[] = [];
  const inputs = new Set<number>();
  const round = dtype === "float32" ? Math.fround : (v: number) => v;
  let key = dtype === "float32" ? "f32" : "f64";
  const reg = (i: number, r: number, what: string) => {
    if (!Number.isInteger(r) || r < 0 || r >= i) {
      throw new TypeError(
        `fusedProgram: instruction ${i}: operand ${what} = ${r} is not an earlier register`,
      );
    }
    return r;
  };
  instrs.forEach((ins, i) => {
    const o = 4 * i;
    switch (ins.kind) {
      case "input":
        if (!Number.isInteger(ins.index) || ins.index < 0) {
          throw new TypeError(`fusedProgram: instruction ${i}: input index ${ins.index} is not an index`);
        }
        code[o] = FUSED_INPUT;
        code[o + 2] = ins.index;
        inputs.add(ins.index);
        key += `;i${ins.index}`;
        break;
      case "const":
        code[o] = FUSED_CONST;
        code[o + 2] = consts.length;
        consts.push(round(ins.value));
        key += ";c";
        break;
      case "unary":
        if (!FLOAT_UNARY.has(ins.op)) {
          throw new TypeError(`fusedProgram: instruction ${i}: '${ins.op}' is not a float elementwise op`);
        }
        code[o] = FUSED_UNARY;
        code[o + 1] = UNARY_CODE.get(ins.op)!;
        code[o + 2] = reg(i, ins.a, "a");
        key += `;${ins.op} ${ins.a}`;
        break;
      case "binary":
        if (!FLOAT_BINARY.has(ins.op)) {
          throw new TypeError(`fusedProgram: instruction ${i}: '${ins.op}' is not a float elementwise op`);
        }
        code[o] = FUSED_BINARY;
        code[o + 1] = BINARY_CODE.get(ins.op)!;
        code[o + 2] = reg(i, ins.a, "a");
        code[o + 3] = reg(i, ins.b, "b");
        key += `;${ins.op} ${ins.a} ${ins.b}`;
        break;
      default:
        throw new TypeError(
          `fusedProgram: instruction ${i}: unknown kind ${(ins as { kind: unknown }).kind}`,
        );
    }
  });
  for (let k = 0; k < inputs.size; k++) {
    if (!inputs.has(k)) throw new TypeError(`fusedProgram: inputs must be numbered 0..${inputs.size - 1}`);
  }
  if (outputs.length === 0 && reduce === undefined) {
    throw new TypeError("fusedProgram: a program needs at least one output");
  }
  if (reduce !== undefined) {
    if (reduce.op !== "sum" && reduce.op !== "max" && reduce.op !== "min") {
      throw new TypeError(`fusedProgram: reduce op must be sum, max or min, got ${String(reduce.op)}`);
    }
    const r = reduce.reg;
    if (!Number.isInteger(r) || r < 0 || r >= instrs.length) {
      throw new TypeError(`fusedProgram: the reduced register ${r} is not a register`);
    }
    const k = instrs[r].kind;
    if (k === "input" || k === "const") {
      throw new TypeError(`fusedProgram: the reduced register ${r} is an ${k}; only op results are reduced`);
    }
    if (inputs.size === 0) throw new TypeError("fusedProgram: a reducing program needs an input (its shape)");
    reduce.axes.forEach((a, i) => {
      if (!Number.isInteger(a) || a < 0 || (i > 0 && a <= reduce.axes[i - 1])) {
        throw new TypeError(
          `fusedProgram: reduce axes [${reduce.axes.join(", ")}] must be sorted, unique, non-negative`,
        );
      }
    });
  }
  outputs.forEach((r, j) => {
    if (!Number.isInteger(r) || r < 0 || r >= instrs.length) {
      throw new TypeError(`fusedProgram: output ${j} = ${r} is not a register`);
    }
    const k = instrs[r].kind;
    if (k === "input" || k === "const") {
      throw new TypeError(`fusedProgram: output ${j} = ${r} is an ${k}; only op results are written out`);
    }
    if (outputs.indexOf(r) !== j) throw new TypeError(`fusedProgram: register ${r} is written out twice`);
  });
  if (outputs.length !== 1 || outputs[0] !== instrs.length - 1) key += `;->${outputs.join(",")}`;
  const prog: FusedProgram = {
    dtype,
    instrs,
    code,
    consts: Float64Array.from(consts),
    numInputs: inputs.size,
    outputs: Int32Array.from(outputs),
    key,
  };
  if (reduce === undefined) return prog;
  const red: FusedReduce = { op: reduce.op, reg: reduce.reg, axes: Object.freeze([...reduce.axes]) };
  return { ...prog, key: `${key};R${red.op} ${red.reg} @${red.axes.join(",")}`, reduce: red };
}

/** The shape of a reducing program's reduced output: `shape` without the reduced axes. */
export function reducedShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.filter((_, d) => !axes.includes(d));
}

/**
 * The shape a fused call computes over: the inputs' (all equal), or [outs[0].length] without inputs (a
 * reducing program always has inputs).
 */
export function fusedShape(inputs: readonly View[], outs: readonly TypedArray[]): readonly number[] {
  return inputs.length > 0 ? inputs[0].shape : [outs[0].length];
}

/** Check a fused call's arguments against its program (shapes equal, dtypes, sizes); throws naming the problem. */
export function checkFusedArgs(
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
): void {
  if (inputs.length !== prog.numInputs) {
    throw new TypeError(`fused: the program reads ${prog.numInputs} inputs, got ${inputs.length}`);
  }
  const nout = prog.outputs.length + (prog.reduce === undefined ? 0 : 1);
  if (outs.length !== nout) {
    throw new TypeError(`fused: the program writes ${nout} outputs, got ${outs.length}`);
  }
  const want = prog.dtype === "float32" ? Float32Array : Float64Array;
  const shape = fusedShape(inputs, outs);
  if (prog.reduce !== undefined) {
    const ax = prog.reduce.axes;
    if (ax.length > 0 && ax[ax.length - 1] >= shape.length) {
      throw new TypeError(`fused: reduce axes [${ax.join(", ")}] out of range for shape [${shape}]`);
    }
  }
  // (plain loops: this runs at every call of a jitted program's fused steps)
  for (let k = 0; k < inputs.length; k++) {
    const v = inputs[k];
    if (!(v.data instanceof want)) throw new TypeError(`fused: input ${k} is not ${prog.dtype}`);
    let same = v.shape.length === shape.length;
    for (let i = 0; same && i < shape.length; i++) same = v.shape[i] === shape[i];
    if (!same) {
      throw new TypeError(
        `fused: input ${k} has shape [${v.shape}], expected [${shape}] (broadcast already)`,
      );
    }
  }
  for (let j = 0; j < outs.length; j++) {
    const out = outs[j];
    if (!(out instanceof want)) throw new TypeError(`fused: out ${j} is not ${prog.dtype}`);
    const sh = j === prog.outputs.length ? reducedShape(shape, prog.reduce!.axes) : shape;
    if (out.length < sizeOf(sh)) {
      throw new TypeError(
        `fused: out ${j} has ${out.length} elements, the shape [${sh}] needs ${sizeOf(sh)}`,
      );
    }
    for (let i = 0; i < j; i++)
      if (outs[i] === out) throw new TypeError(`fused: outs ${i} and ${j} are one array`);
  }
}

/**
 * The reference semantics of `Backend.fused`: run the program one instruction at a time through `b`'s own
 * `unary` and `binary` kernels (a const is a stride-0 view of its value), each into a fresh contiguous
 * temporary, then copy the output registers into `outs` (after every instruction ran: an out may be an
 * input's storage) and reduce the reduced register with `b.reduce`. Bit for bit what the unfused program
 * computes on `b`.
 */
export function fusedByOps(
  b: Backend,
  prog: FusedProgram,
  inputs: readonly View[],
  outs: readonly TypedArray[],
): void {
  const shape = fusedShape(inputs, outs);
  const n = sizeOf(shape);
  const red = prog.reduce;
  if (n === 0) {
    // the reduction of nothing: sum 0 (max / min of an empty axis never reaches a kernel)
    if (red !== undefined) outs[outs.length - 1].fill(0, 0, sizeOf(reducedShape(shape, red.axes)));
    return;
  }
  const zeros = shape.map(() => 0);
  const contiguous = (data: TypedArray): View => {
    const strides = new Array<number>(shape.length);
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      strides[d] = s;
      s *= shape[d];
    }
    return { data, shape, strides, offset: 0 };
  };
  const regs: View[] = [];
  prog.instrs.forEach((ins) => {
    if (ins.kind === "input") {
      regs.push(inputs[ins.index]);
      return;
    }
    if (ins.kind === "const") {
      const d = allocTyped(prog.dtype, 1);
      d[0] = ins.value;
      regs.push({ data: d, shape, strides: zeros, offset: 0 });
      return;
    }
    const dst = b.alloc(prog.dtype, n, true);
    if (ins.kind === "unary") b.unary(ins.op, regs[ins.a], dst);
    else b.binary(ins.op, regs[ins.a], regs[ins.b], dst);
    regs.push(contiguous(dst));
  });
  for (let j = 0; j < prog.outputs.length; j++) b.copy(regs[prog.outputs[j]], contiguous(outs[j]));
  if (red !== undefined) b.reduce(red.op, regs[red.reg], red.axes, outs[outs.length - 1]);
}

/**
 * The reference semantics of `Backend.dotFused`: `b.dot` into a temporary, then `b.fused` (or, without one,
 * `fusedByOps`) with the product as input 0.
 */
export function dotFusedByOps(
  b: Backend,
  prog: FusedProgram,
  x: View,
  y: View,
  inputs: readonly View[],
  outs: readonly TypedArray[],
): void {
  const nd = x.shape.length;
  const shape = [...x.shape.slice(0, nd - 1), y.shape[nd - 1]];
  const n = sizeOf(shape);
  const prod = b.alloc(prog.dtype, n, true);
  b.dot(x, y, prod);
  const strides = new Array<number>(nd);
  for (let d = nd - 1, s = 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  const all = [{ data: prod, shape, strides, offset: 0 }, ...inputs];
  if (b.fused !== undefined) b.fused(prog, all, outs);
  else fusedByOps(b, prog, all, outs);
}
