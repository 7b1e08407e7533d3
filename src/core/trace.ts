/**
 * Tagged traces and `bind`, the single entry point through which every primitive application flows.
 *
 * Levels: 0 is plain evaluation; 1 is the eager tape (PyTorch-style `requiresGrad` tensors, active while grad
 * mode is on); each call of a transform (`jvp`, `vjp`, `grad`, ...) pushes a new trace with the next level and
 * pops it when it returns. `bind` hands a primitive to the trace of highest level among its arguments; that trace
 * unwraps only its own tracers, applies the primitive to the primal values (which recursively binds at lower
 * levels) and wraps the result. Tracers of another transform are just constants to it, which is what rules out
 * perturbation confusion. A tracer used after its transform returned is reported as a leak.
 */
import { AutodiffError } from "../errors.ts";
import type { TypedArray } from "../dtype.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { evalTrace } from "./eval.ts";
import { type Aval, kinkMessage, type Primitive } from "./primitive.ts";
import { eagerTrace } from "./tape.ts";

/** A trace: one level of interpretation. */
export interface Trace {
  readonly level: number;
  /** False once the transform that created this trace has returned. */
  alive: boolean;
  /** Interpret `prim` applied to args (at least one of which belongs to this trace). */
  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor;
  /** Interpret a higher-order call (checkpoint, custom rules) whose args include this trace's tracers. */
  processCall(call: CallRule, args: readonly Tensor[]): Tensor[];
  /** A short name for error messages. */
  readonly kind: string;
}

/**
 * A higher-order primitive: a function of several tensors to several tensors, with transform-specific
 * behaviour (checkpoint recomputes in reverse mode; customJvp/customVjp supply rules).
 */
export interface CallRule {
  readonly name: string;
  /** Plain evaluation on primal values (which may be tracers of lower levels). */
  readonly fn: (args: readonly Tensor[]) => Tensor[];
  /** Forward mode: primal and tangent outputs; undefined means "just trace through fn". */
  readonly jvp?: (primals: readonly Tensor[], tangents: readonly Tensor[]) => [Tensor[], Tensor[]];
  /**
   * Reverse mode: run the forward on primals, returning outputs and a backward closure mapping output
   * cotangents to input cotangents. Used by the tape traces; `eager` is true on the eager (requiresGrad) tape.
   */
  readonly vjp: (
    primals: readonly Tensor[],
    eager: boolean,
  ) => { outs: Tensor[]; backward: (cts: readonly Tensor[]) => Tensor[] };
  /**
   * The backward closure keeps none of the storage it allocates beyond the cotangents it returns (library calls
   * with hand-written VJPs): a recycling eager backward pass may then take back its temporaries, as it does a
   * primitive's (core/eager-pool.ts). Unset: whatever the closure allocates is left to the garbage collector.
   */
  readonly backwardKeepsNothing?: boolean;
  /**
   * The backward closure holds no tensor, only shapes and constants (split's, which concatenates the
   * cotangents): like a primitive that saves nothing, its node may then be differentiated through again after a
   * pass without retainGraph (PyTorch's SplitBackward saves only sizes).
   */
  readonly savesNothing?: boolean;
  /**
   * The eager vjp's backward handles a `createGraph` pass itself (checkpoint: the gradients of what its body
   * closes over). Unset: on the eager tape a createGraph backward differentiates the call again from its inputs
   * (core/tape.ts), so the residuals its recorded forward computed without history do not cut the gradients' own.
   */
  readonly ownsCreateGraph?: boolean;
  /**
   * Control flow (scan, cond, while, core/control.ts): a call whose bodies are already closed programs, held in
   * `params`. makeJaxpr records it as one equation with these params and output avals instead of tracing `fn`,
   * and the evaluator binds the same rule again (it depends on the programs alone).
   */
  readonly staged?: { readonly params: unknown; readonly outAvals: readonly Aval[] };
  /**
   * vmap: apply the call to values batched along axis 0 (`batched[i]` false: shared by every example); returns
   * the outputs and which of them are batched. Undefined: vmap traces fn and the rules through generically.
   */
  readonly batch?: (
    vals: readonly Tensor[],
    batched: readonly boolean[],
    size: number,
  ) => { outs: Tensor[]; batched: boolean[] };
}

/** Global autodiff state: the stack depth of transforms and the eager grad mode. */
export const state = {
  /** Next level to hand out; 0 and 1 are taken by evaluation and the eager tape. */
  nextLevel: 2,
  /** PyTorch's grad mode: when false, `requiresGrad` tensors are plain values (noGrad). */
  gradEnabled: true,
  /** Opt-in kink check: when set, rules applied at a non-differentiable point are reported here. */
  kinkLog: null as null | KinkReport[],
  /** Depth of `jit` traces in progress: random number generation is an error inside (it would be frozen). */
  jitTracing: 0,
  /** Depth of eager backward passes in progress (a checkpoint recomputes its forward inside one). */
  inBackward: 0,
  /**
   * While jit traces a function: its trace, and the buffers allocated during the trace. An application whose
   * arguments are all concrete but one holds storage the trace did not allocate (a tensor the function closes
   * over, such as a parameter or a BatchNorm buffer) is recorded by that trace instead of being computed now,
   * so the program reads the tensor's current values at every call (see topTrace).
   */
  jitStage: null as null | { readonly trace: Trace; readonly fresh: WeakSet<TypedArray> },
  /**
   * While jit traces a function: the modules whose `training` flag it read, with the value read (nn/module.ts
   * records them). The compiled program holds only for those values: jit traces again when one changes.
   */
  modeReads: null as null | Map<{ readonly training: boolean }, boolean>,
};

/** True if `t` is a concrete tensor whose storage the current jit trace did not allocate (see state.jitStage). */
export function isClosedOver(t: Tensor, fresh: WeakSet<TypedArray>): boolean {
  return t._trace === null && t._data !== null && !fresh.has(t._data);
}

export interface KinkReport {
  readonly op: string;
  readonly message: string;
}

/**
 * Called where random numbers are drawn on the host (rand, randn, randint, randperm, Dropout): inside a `jit`
 * trace they would be drawn once and frozen into the compiled program as constants, so that is an error.
 */
export function checkNotJitTracing(op: string): void {
  if (state.jitTracing > 0) {
    throw new AutodiffError(
      `${op}: random numbers drawn while jit traces a function (or scan, cond, whileLoop trace a body) would be ` +
        "frozen into the traced program (the same numbers at every call or iteration); draw them outside " +
        "and pass them in as an argument (a dropout mask, a noise tensor), or put the model in eval mode",
    );
  }
}

/** Allocate a level for a new transform; `release` must be called when it returns. */
export function pushLevel(): number {
  return state.nextLevel++;
}

export function popLevel(level: number): void {
  if (state.nextLevel !== level + 1) throw new Error(`internal: trace level ${level} popped out of order`);
  state.nextLevel = level;
}

/** Run `fn` with eager grad recording disabled, like `torch.no_grad()`. */
export function noGrad<T>(fn: () => T): T {
  const prev = state.gradEnabled;
  state.gradEnabled = false;
  try {
    return fn();
  } finally {
    state.gradEnabled = prev;
  }
}

/** Run `fn` with eager grad recording enabled (inside a noGrad region, for example). */
export function enableGrad<T>(fn: () => T): T {
  const prev = state.gradEnabled;
  state.gradEnabled = true;
  try {
    return fn();
  } finally {
    state.gradEnabled = prev;
  }
}

/** The trace that should interpret an application to `args`: the one of highest level. */
export function topTrace(args: readonly Tensor[]): Trace {
  let top: Trace | null = null;
  let level = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const t = a._trace;
    if (t !== null) {
      if (t.level > level) {
        level = t.level;
        top = t;
      }
    } else if (level < 1 && a.requiresGrad && state.gradEnabled) {
      level = 1;
      top = eagerTrace;
    }
  }
  if (level < 2 && state.jitStage !== null) {
    // inside a jit trace, computing from a closed-over tensor is staged (see state.jitStage)
    const { trace, fresh } = state.jitStage;
    for (let i = 0; i < args.length; i++) if (isClosedOver(args[i], fresh)) return trace;
  }
  if (top === null) return evalTrace;
  if (!top.alive) {
    throw new AutodiffError(
      `a tracer of a ${top.kind} transform was used after that transform returned (it leaked out of the function ` +
        "being transformed, for example through a closure or a global); return it as an output instead",
    );
  }
  return top;
}

/**
 * The kink check (opt-in, see `checkKinks`), shared by forward and reverse mode: called where a derivative rule
 * is about to apply, it records `prim` if it is evaluated exactly at a point where it is not differentiable.
 */
export function checkKink<P>(prim: Primitive<P>, primals: readonly Tensor[], out: Tensor, params: P): void {
  if (
    state.kinkLog !== null &&
    prim.atKink !== undefined &&
    noGrad(() => prim.atKink!(primals, out, params))
  ) {
    state.kinkLog.push({ op: prim.name, message: kinkMessage(prim) });
  }
}

/** Apply a primitive: the one path every operation takes. */
export function bind<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
  const t = topTrace(args);
  if (state.jitStage !== null && outsideStage(t)) return unstaged(() => t.process(prim, args, params));
  return t.process(prim, args, params);
}

/** Apply a higher-order call rule. */
export function bindCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
  const t = topTrace(args);
  if (state.jitStage !== null && outsideStage(t)) return unstaged(() => t.processCall(call, args));
  return t.processCall(call, args);
}

/**
 * True if `t` is a transform enclosing the jit trace in progress (a jitted function closing over a grad or
 * vmap tracer): what it computes on its own values is outside the jitted function, so not staged.
 */
function outsideStage(t: Trace): boolean {
  return t.level > 1 && t.level < state.jitStage!.trace.level;
}

function unstaged<T>(fn: () => T): T {
  const stage = state.jitStage;
  state.jitStage = null;
  try {
    return fn();
  } finally {
    state.jitStage = stage;
  }
}
