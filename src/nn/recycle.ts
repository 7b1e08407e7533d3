/**
 * Which module calls recycle their forward activations across steps (`ActivationScope` in core/eager-pool.ts).
 *
 * A call may recycle when the module tree it runs is made only of built-in layers known to keep nothing they
 * compute (exact classes: a subclass may keep anything), none with hooks, and it runs as top-level eager
 * evaluation: no transform, jit trace, backward pass (a checkpoint recomputes inside one) or functional call in
 * progress. Its intermediates are then reachable only through the tape, and the pool takes them back when backward
 * frees the graph. Under autocast too: the casts of the weights that autocast caches for the rest of its region
 * are allocated outside the scope (`castLow` in amp.ts), so the scope never takes them back.
 *
 * Only "roots" open a scope: containers and composite layers with intermediates of their own (Sequential, the
 * Transformer layers and stacks, MultiheadAttention, the recurrent layers). A root nested in a recycling one
 * finds the arena taken and just runs. The classes register themselves here (`recycle-classes.ts`), so this
 * file imports no layer and `Module.call` can consult it.
 */
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
const WRITES_STATE = new Set<unknown>();

/** The registry `recycle-classes.ts` fills. */
export const recycle = {
  /** Register built-in layer classes that keep nothing they compute in a forward pass. */
  keepsNothing(...classes: unknown[]): void {
    for (const c of classes) KEEPS_NOTHING.add(c);
  },
  /**
   * Mark registered classes whose forward may replace a buffer with a tensor it computes (BatchNorm's running
   * statistics): a recycling call then excludes the module state's storage from what it takes back. Calls whose
   * tree has none skip collecting the state.
   */
  writesState(...classes: unknown[]): void {
    for (const c of classes) WRITES_STATE.add(c);
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

/** The tree may not recycle / may, and no module in it writes state / may, and some module writes state. */
const INELIGIBLE = 0;
const STATELESS = 1;
const WRITES = 2;

/** Whether every module under `m` keeps nothing it computes and has no hooks, and whether any writes state. */
function treeStatus(m: ModuleLike): number {
  const c = m.constructor;
  if (!KEEPS_NOTHING.has(c) || m._hasHooks()) return INELIGIBLE;
  let status = WRITES_STATE.has(c) ? WRITES : STATELESS;
  const cs = m.children();
  for (let i = 0; i < cs.length; i++) {
    const k = treeStatus(cs[i]);
    if (k === INELIGIBLE) return INELIGIBLE;
    if (k === WRITES) status = WRITES;
  }
  return status;
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
    functionalContext() !== null
  ) {
    return forward();
  }
  const status = treeStatus(m);
  if (status === INELIGIBLE) return forward();
  const scope = beginActivations();
  if (scope === null) return forward();
  let out: Out | undefined;
  let done = false;
  try {
    out = forward();
    done = true;
  } finally {
    // on an exception, everything recorded is left to the garbage collector
    endActivations(
      scope,
      done ? outputTensors(out, []) : null,
      status === WRITES ? () => [...m.parameters(), ...m.buffers()] : null,
    );
  }
  return out as Out;
}
