/**
 * Programs as data: the IR that `makeJaxpr` produces (JAX's jaxpr, autodidax part 2) and its printer.
 *
 * A `Program` is plain data a test (or a renderer, or the future jit) can walk: typed input variables, constants
 * captured from the closure (each bound to a constant variable), equations `outs = prim[params](ins)` in
 * execution order, and output atoms. An atom is a variable or a literal (a concrete scalar, printed inline).
 * Higher-order calls (checkpoint, customJvp, customVjp) are equations with a nested, closed sub-program: its first
 * `numConsts` inputs are the values the called function closed over, hoisted into explicit inputs.
 */
import type { DType } from "../dtype.ts";
import { fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { TreeDef } from "../tree.ts";
import type { Aval, Primitive } from "./primitive.ts";
import type { ScopeFrame } from "./scope.ts";
import type { CallRule } from "./trace.ts";

/** A typed variable: bound once, by an input, a constant or an equation. */
export class Var implements Aval {
  constructor(
    /** Unique within the trace that created it (names are assigned only when printing). */
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {}
}

/**
 * A concrete value with one distinct element used directly as an equation input (the 2 of `x.mul(2)`, or that 2
 * broadcast eagerly to the other operand's shape): printed inline as `2.0:f32[]` or `2.0:f32[3]`.
 */
export class Literal implements Aval {
  constructor(readonly value: Tensor) {}
  get shape(): readonly number[] {
    return this.value.shape;
  }
  get dtype(): DType {
    return this.value.dtype;
  }
}

export type Atom = Var | Literal;

/** One equation: a primitive (or a higher-order call) applied to atoms, binding output variables. */
export interface Eqn {
  /** The primitive object (null for a higher-order call). */
  readonly prim: Primitive<unknown> | null;
  /** The primitive's registry name, or the call's name (checkpoint, customJvp, customVjp). */
  readonly name: string;
  /** The primitive's params, as given to bind (for a call: `{ numConsts }`). */
  readonly params: unknown;
  readonly inputs: readonly Atom[];
  readonly outputs: readonly Var[];
  /** A call's body, a closed program whose first `numConsts` inputs are the hoisted closure values. */
  readonly sub: Program | null;
  /** A call's rule, whose jvp/vjp the evaluator binds again (the custom rules are host functions). */
  readonly rule: CallRule | null;
  /** The module call (named scope, `core/scope.ts`) the equation was recorded in; null or absent outside any. */
  readonly scope?: ScopeFrame | null;
}

/** A traced program: constants, inputs, equations and outputs, with the pytree structure of arguments/result. */
export class Program {
  constructor(
    readonly constvars: readonly Var[],
    /** The constant tensors bound to `constvars`, in order. */
    readonly consts: readonly Tensor[],
    readonly invars: readonly Var[],
    readonly eqns: readonly Eqn[],
    readonly outs: readonly Atom[],
    /** Structure of the traced function's arguments (null for sub-programs, whose inputs are flat). */
    readonly inTree: TreeDef | null,
    /** Structure of its result (null for sub-programs). */
    readonly outTree: TreeDef | null,
  ) {}

  /** The program in jaxpr-like text: `{ lambda consts; inputs . let eqns in (outs) }`. */
  toString(): string {
    return printProgram(this, 0);
  }
}

const SHORT: Record<DType, string> = {
  float32: "f32",
  float64: "f64",
  int32: "i32",
  bool: "bool",
  float16: "f16",
  bfloat16: "bf16",
};

/** `f32[3,4]`: the abbreviated dtype and the shape. */
export function fmtAval(a: Aval): string {
  return `${SHORT[a.dtype]}${fmtShape(a.shape).replace(/ /g, "")}`;
}

/** Variable names a, b, ..., z, ba, bb, ... (JAX's scheme), in order of first binding. */
export function varName(i: number): string {
  let s = "";
  let n = i;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  } while (n > 0);
  return s;
}

function fmtNumber(v: number, dtype: DType): string {
  if (dtype === "bool") return v !== 0 ? "true" : "false";
  if (dtype === "int32" || !Number.isFinite(v)) return String(v);
  return Number.isInteger(v) ? v.toFixed(1) : String(v);
}

export function fmtLiteral(l: Literal): string {
  const c = l.value;
  return `${fmtNumber(c._data![c._offset], l.dtype)}:${fmtAval(l)}`;
}

/** A param value, compactly: arrays as [..], objects as {k=v}, tensors by aval, functions omitted. */
function fmtParam(v: unknown): string | null {
  if (v === undefined || typeof v === "function" || isPrograms(v)) return null;
  if (v === null) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "string") return v;
  if (v instanceof Tensor) return `<${fmtAval(v)}>`;
  if (Array.isArray(v)) return `[${v.map((x) => fmtParam(x) ?? "?").join(",")}]`;
  if (typeof v === "object") {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v)) {
      const s = fmtParam(x);
      if (s !== null) parts.push(`${k}=${s}`);
    }
    return `{${parts.join(", ")}}`;
  }
  return String(v);
}

/** A program, or a non-empty array of programs (control flow keeps its bodies in its params). */
function isPrograms(v: unknown): v is Program | Program[] {
  return v instanceof Program || (Array.isArray(v) && v.length > 0 && v.every((p) => p instanceof Program));
}

/** `[axes=[0], keepdim=false]`, or "" when there are no params. */
export function fmtParams(params: unknown): string {
  if (params === null || params === undefined) return "";
  if (typeof params === "object" && !Array.isArray(params) && !(params instanceof Tensor)) {
    const s = fmtParam(params)!;
    return s === "{}" ? "" : `[${s.slice(1, -1)}]`;
  }
  return `[${fmtParam(params) ?? ""}]`;
}

function printProgram(p: Program, indent: number): string {
  const names = new Map<Var, string>();
  const name = (v: Var): string => {
    let n = names.get(v);
    if (n === undefined) {
      n = varName(names.size);
      names.set(v, n);
    }
    return n;
  };
  const atom = (a: Atom): string => (a instanceof Literal ? fmtLiteral(a) : name(a));
  const decl = (v: Var): string => `${name(v)}:${fmtAval(v)}`;
  const pad = " ".repeat(indent);
  const head = `{ lambda ${p.constvars.map(decl).join(", ")}; ${p.invars.map(decl).join(", ")} . let`;
  const lines = [head];
  for (const e of p.eqns) {
    const lhs = e.outputs.map(decl).join(" ");
    const args = e.inputs.map(atom).join(" ");
    let rhs = `${e.name}${fmtParams(e.params)}`;
    if (e.sub !== null) rhs += ` ${printProgram(e.sub, indent + 4)}`;
    // bodies held in params (control flow): printed after the params, by name
    if (e.params !== null && typeof e.params === "object") {
      for (const [k, v] of Object.entries(e.params)) {
        if (v instanceof Program) rhs += ` ${k}=${printProgram(v, indent + 4)}`;
        else if (Array.isArray(v) && isPrograms(v)) {
          v.forEach((b: Program, i: number) => {
            rhs += ` ${k}[${i}]=${printProgram(b, indent + 4)}`;
          });
        }
      }
    }
    lines.push(`${pad}    ${lhs} = ${rhs} ${args}`.trimEnd());
  }
  lines.push(`${pad}  in (${p.outs.map(atom).join(", ")}) }`);
  return lines.join("\n");
}
