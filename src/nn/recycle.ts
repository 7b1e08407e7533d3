/**
 * Which module calls recycle their forward activations across steps (`ActivationScope` in core/eager-pool.ts).
 *
 * A call may recycle when the module tree it runs is made only of built-in layers known to keep nothing they
 * compute (exact classes: a subclass may keep anything), none with hooks, and it runs as top-level eager
 * evaluation: no transform, jit trace, backward pass (a checkpoint recomputes inside one) or functional call in
 * progress, and no autocast (which caches casts of the weights for the rest of its region). Its intermediates
 * are then reachable only through the tape, and the pool takes them back when backward frees the graph.
 *
 * Only "roots" open a scope: containers and composite layers with intermediates of their own (Sequential, the
 * Transformer layers and stacks, MultiheadAttention, the recurrent layers). A root nested in a recycling one
 * finds the arena taken and just runs. The classes register themselves here (`recycle-classes.ts`), so this
 * file imports no layer and `Module.call` can consult it.
 */
import { autocastDtype } from "../amp.ts";
import { beginActivations, endActivations, recordingActivations } from "../core/eager-pool.ts";
import { state } from "../core/trace.ts";
import { Tensor } from "../tensor/tensor.ts";
import { functionalContext } from "./functional-context.ts";

/** What recycling needs of a module: its class, children, hooks and state. */
interface ModuleLike {
  children(): ModuleLike[];
  _hasHooks(): boolean;
  parameters(): Tensor[];
  buffers(): Tensor[];
}

const KEEPS_NOTHING = new Set<unknown>();
const ROOTS = new Set<unknown>();

/** The registry `recycle-classes.ts` fills. */
export const recycle = {
  /** Register built-in layer classes that keep nothing they compute in a forward pass. */
  keepsNothing(...classes: unknown[]): void {
    for (const c of classes) KEEPS_NOTHING.add(c);
  },
  /** Register built-in composite classes whose calls recycle their intermediates (they keep nothing either). */
  roots(...classes: unknown[]): void {
    for (const c of classes) {
      KEEPS_NOTHING.add(c);
      ROOTS.add(c);
    }
  },
};

/** Whether a call of `m` opens a recycling scope (its class is a root; the rest is checked by `recycledCall`). */
export function isRecyclingRoot(m: object): boolean {
  return ROOTS.has(m.constructor);
}

/** Whether every module under `m` keeps nothing it computes and has no hooks. */
function keepsNothing(m: ModuleLike): boolean {
  if (!KEEPS_NOTHING.has(m.constructor) || m._hasHooks()) return false;
  const cs = m.children();
  for (let i = 0; i < cs.length; i++) if (!keepsNothing(cs[i])) return false;
  return true;
}

/** The tensors of an output: a tensor, or arrays and plain objects of them (other values skipped). */
function outputTensors(out: unknown, acc: Tensor[]): Tensor[] {
  if (out instanceof Tensor) acc.push(out);
  else if (Array.isArray(out)) for (const o of out) outputTensors(o, acc);
  else if (out !== null && typeof out === "object") for (const o of Object.values(out)) outputTensors(o, acc);
  return acc;
}

/** Run `forward` of root `m`, recycling its intermediates when allowed (see the module comment). */
export function recycledCall<Out>(m: ModuleLike, forward: () => Out): Out {
  if (
    recordingActivations() ||
    state.nextLevel !== 2 ||
    state.jitTracing !== 0 ||
    state.inBackward !== 0 ||
    functionalContext() !== null ||
    autocastDtype() !== null ||
    !keepsNothing(m)
  ) {
    return forward();
  }
  const scope = beginActivations();
  if (scope === null) return forward();
  let out: Out | undefined;
  let done = false;
  try {
    out = forward();
    done = true;
  } finally {
    // on an exception, everything recorded is left to the garbage collector
    endActivations(scope, done ? outputTensors(out, []) : null, () => [...m.parameters(), ...m.buffers()]);
  }
  return out as Out;
}
