/**
 * `makeJaxpr`: trace a function with abstract values (shapes and dtypes only) into a `Program`.
 *
 * The jaxpr trace is one more interpreter in the trace stack. Its tracers are abstract tensors (no data, no
 * `_primal`); `process` checks the arguments with the primitive's abstract rule and appends an equation instead
 * of computing. Because `makeJaxpr` pushes its level first, every transform called inside it (grad, jvp, vjp,
 * linearize) runs at a higher level and its derivative rules bind down to this trace, so they are recorded too:
 * the program of `grad(f)` holds the forward sweep followed by the adjoint equations.
 *
 * Values not derived from the inputs are concrete: ops on them alone run eagerly (level 0) and enter the program as
 * constants (scalars inline as literals). Reading the values of an abstract tensor (`item`, `dataSync`, an index
 * check) is an error naming the op. Higher-order calls are traced into closed sub-programs at a fresh level; the
 * values their function closes over become explicit inputs of the call equation.
 */
import { AutodiffError } from "../errors.ts";
import { contiguousStrides } from "../shape.ts";
import { stagedValues, Tensor, weakScalars } from "../tensor/tensor.ts";
import { treeDescribe, treeFlatten, treeUnflatten } from "../tree.ts";
import { type Atom, type Eqn, Literal, Program, Var } from "./jaxpr.ts";
import type { Aval, Primitive } from "./primitive.ts";
import { evalTrace } from "./eval.ts";
import { currentScope } from "./scope.ts";
import type { TypedArray } from "../dtype.ts";
import { type CallRule, isClosedOver, popLevel, pushLevel, state, type Trace } from "./trace.ts";

/** The trace recording one program (the top-level one, or a call's body). */
class JaxprTrace implements Trace {
  alive = true;
  readonly kind = "makeJaxpr";
  private readonly vars = new Map<Tensor, Var>();
  private readonly constIndex = new Map<Tensor, Var>();
  readonly constvars: Var[] = [];
  readonly consts: Tensor[] = [];
  readonly eqns: Eqn[] = [];
  private nextId = 0;

  /**
   * @param stage when set (jit's trace), the buffers the trace allocated: a concrete scalar held elsewhere (a
   *   closed-over scalar parameter) is then a constant read at each call, not a literal fixed now.
   */
  constructor(
    readonly level: number,
    private readonly stage: WeakSet<TypedArray> | null = null,
  ) {}

  /** A fresh abstract tracer bound to a fresh variable of aval `av`. */
  fresh(av: Aval): [Tensor, Var] {
    const v = new Var(this.nextId++, [...av.shape], av.dtype);
    const t = new Tensor(v.shape, v.dtype);
    t._trace = this;
    // abstract values are laid out contiguously, so view() and friends see valid strides
    t._strides = contiguousStrides(v.shape);
    this.vars.set(t, v);
    return [t, v];
  }

  /** The atom standing for `t`: its variable, a literal (concrete scalar) or a constant variable. */
  atom(t: Tensor): Atom {
    if (t._trace === this) return this.vars.get(t)!;
    if (t._trace === null && isUniform(t) && (this.stage === null || !isClosedOver(t, this.stage))) {
      return new Literal(t);
    }
    let v = this.constIndex.get(t);
    if (v === undefined) {
      v = new Var(this.nextId++, [...t.shape], t.dtype);
      this.constIndex.set(t, v);
      this.constvars.push(v);
      this.consts.push(t);
    }
    return v;
  }

  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    const aval = prim.abstract(args, params);
    const inputs = args.map((a) => this.atom(a));
    const [t, v] = this.fresh(aval);
    if (this.stage !== null) {
      // computed from closed-over tensors alone: recorded, and also computed now for ops that read values
      const known = knownValues(args);
      if (known !== null) stagedValues.set(t, evalTrace.process(prim, known, params));
    }
    this.eqns.push({
      prim: prim as Primitive<unknown>,
      name: prim.name,
      params,
      inputs,
      outputs: [v],
      sub: null,
      rule: null,
      scope: currentScope(),
    });
    return t;
  }

  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    if (call.staged !== undefined) return this.recordStaged(call, args);
    const body = traceFlat(call.fn, args, null, null);
    // closed sub-program: the body's constants (concrete or tracers of this trace) become its leading inputs
    const sub = new Program([], [], [...body.constvars, ...body.invars], body.eqns, body.outs, null, null);
    const inputs = [...body.consts.map((c) => this.atom(c)), ...args.map((a) => this.atom(a))];
    const outs: Tensor[] = [];
    const outputs: Var[] = [];
    for (const o of body.outs) {
      const [t, v] = this.fresh(o);
      outs.push(t);
      outputs.push(v);
    }
    this.eqns.push({
      prim: null,
      name: call.name,
      params: { numConsts: body.consts.length },
      inputs,
      outputs,
      sub,
      rule: call,
      scope: currentScope(),
    });
    return outs;
  }

  /** A control-flow call (core/control.ts): one equation whose params already hold its closed bodies. */
  private recordStaged(call: CallRule, args: readonly Tensor[]): Tensor[] {
    const inputs = args.map((a) => this.atom(a));
    const outs: Tensor[] = [];
    const outputs: Var[] = [];
    for (const av of call.staged!.outAvals) {
      const [t, v] = this.fresh(av);
      outs.push(t);
      outputs.push(v);
    }
    this.eqns.push({
      prim: null,
      name: call.name,
      params: call.staged!.params,
      inputs,
      outputs,
      sub: null,
      rule: call,
      scope: currentScope(),
    });
    return outs;
  }

  /** The program whose inputs are `ins` (tracers made by `fresh`) and outputs `outs`. */
  finish(
    ins: readonly Tensor[],
    outs: readonly Tensor[],
    inTree: Program["inTree"],
    outTree: Program["outTree"],
  ) {
    return new Program(
      this.constvars,
      this.consts,
      ins.map((t) => this.vars.get(t)!),
      this.eqns,
      outs.map((o) => this.atom(o)),
      inTree,
      outTree,
    );
  }
}

/** The values of `args` if every one is concrete or a staged value known at trace time, else null. */
function knownValues(args: readonly Tensor[]): Tensor[] | null {
  const out: Tensor[] = [];
  for (const a of args) {
    const k = a._trace === null ? a : stagedValues.get(a);
    if (k === undefined || k._data === null) return null;
    out.push(k);
  }
  return out;
}

/** A concrete scalar, or a broadcast view of one element (a scalar operand broadcast eagerly): a literal. */
function isUniform(t: Tensor): boolean {
  if (t._data === null || t.size === 0) return false;
  for (const s of t._strides) if (s !== 0) return false;
  return true;
}

/**
 * Trace a flat function on abstract copies of `avals` at a fresh level. The values it closes over become the
 * program's constants (concrete tensors, or tracers of enclosing transforms); core/control.ts closes over them.
 */
export function traceFlat(
  fn: (xs: readonly Tensor[]) => Tensor[],
  avals: readonly Aval[],
  inTree: Program["inTree"],
  outTreeOf: ((outs: unknown) => [Tensor[], Program["outTree"]]) | null,
  stage: WeakSet<TypedArray> | null = null,
): Program {
  const level = pushLevel();
  const trace = new JaxprTrace(level, stage);
  const prevStage = state.jitStage;
  if (stage !== null) state.jitStage = { trace, fresh: stage };
  try {
    const ins = avals.map((a) => {
      const t = trace.fresh(a)[0];
      // a weakly typed scalar (a number jit was given) stays weak as jit's input (not as a loop's carry,
      // whose dtype is fixed)
      const weak = stage === null ? undefined : weakScalars.kinds.get(a as Tensor);
      if (weak !== undefined) weakScalars.kinds.set(t, weak);
      return t;
    });
    const outs = fn(ins);
    if (outTreeOf === null) return trace.finish(ins, outs, inTree, null);
    const [leaves, outTree] = outTreeOf(outs);
    return trace.finish(ins, leaves, inTree, outTree);
  } finally {
    state.jitStage = prevStage;
    trace.alive = false;
    popLevel(level);
  }
}

/**
 * JAX's `make_jaxpr`: `makeJaxpr(f)(...args)` traces f on abstract values with the shapes and dtypes of `args`
 * (pytrees of tensors; their values are not read) and returns the program. Transforms compose:
 * `makeJaxpr(grad(f))(x)` is the program of the gradient, forward sweep and adjoint equations.
 *
 * @example
 * ```ts
 * const p = makeJaxpr((x: Tensor, y: Tensor) => x.sin().add(x.mul(y)))(tensor(1), tensor(2));
 * console.log(String(p)); // { lambda ; a:f32[], b:f32[] . let c:f32[] = sin a ... in (e) }
 * ```
 */
export function makeJaxpr(f: (...args: any[]) => unknown): (...args: unknown[]) => Program {
  return stagedJaxpr(f, null);
}

/**
 * @internal makeJaxpr for jit: with `fresh` (the buffers the trace allocates, see setAllocLog), computations on
 * tensors the function closes over are recorded rather than done at trace time (see state.jitStage).
 */
export function stagedJaxpr(
  f: (...args: unknown[]) => unknown,
  fresh: WeakSet<TypedArray> | null,
): (...args: unknown[]) => Program {
  return (...args: unknown[]): Program => {
    const [leaves, inTree] = treeFlatten(args);
    let result: unknown;
    const flat = (xs: readonly Tensor[]): Tensor[] => {
      result = f(...(treeUnflatten(inTree, xs) as unknown[]));
      return [];
    };
    return traceFlat(
      flat,
      leaves,
      inTree,
      () => {
        const [outs, outTree] = treeFlatten(result);
        if (outs.length === 0) {
          throw new AutodiffError(
            `${fresh === null ? "makeJaxpr: the traced" : "jit: the jitted"} function must return a tensor or a ` +
              `pytree of tensors, got ${describe(result)} ` +
              `(arguments: ${treeDescribe(inTree)})`,
          );
        }
        return [outs, outTree];
      },
      fresh,
    );
  };
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v;
}
