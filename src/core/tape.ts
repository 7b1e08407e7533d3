/**
 * Reverse mode: the tape traces and the backward pass.
 *
 * A tape trace records, for every primitive applied to its tracers, a `TapeNode`: the primitive, its params, the
 * input avals, the saved primal values its VJP rule needs (nothing more: linear ops save no inputs), and edges to
 * the nodes that produced its active inputs. Backward walks the nodes from the output in reverse topological
 * order and applies each VJP rule with the library's own ops, so the backward computation is itself traced by any
 * enclosing transform: that is what makes grad-of-grad and forward-over-reverse work.
 *
 * Two tapes share this machinery: the eager tape at level 1 (PyTorch-style `requiresGrad` tensors, where the
 * tracer is the concrete tensor itself and `backward()` accumulates into `.grad`), and one functional tape per
 * `vjp`/`grad` call at levels >= 2. Saved values are dropped as soon as backward has used them, unless the graph
 * is retained; a second backward through a freed node that saved values is an error (one that saved none, a cast
 * or an add shared by two graphs, can be differentiated through again, as in PyTorch).
 *
 * Saved values are guarded by version counters (shared by all views of one storage, bumped by in-place writes):
 * the version of every saved input and of a saved output is recorded with the node, and backward refuses, with
 * PyTorch's message, to use one that was modified since; otherwise the rule would silently use the new values.
 * `retainGrad()` registers a non-leaf on its node, and backward accumulates the node's cotangent into `.grad`.
 */
import { bytesPerElement, isFloat, type TypedArray } from "../dtype.ts";
import { AutodiffError, internal, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual, sizeOf } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import {
  type ActivationRecord,
  eagerPoolOpts,
  giveBack,
  noteSavingNode,
  type Recycler,
  startRecycling,
  stopRecycling,
} from "./eager-pool.ts";
import { accumulate, onesLike, zerosLike } from "./helpers.ts";
import { type Aval, isZero, type MaybeZero, type Primitive, ruleRecorder } from "./primitive.ts";
import { adjointScope, currentScope, restoreScope, type ScopeFrame } from "./scope.ts";
import {
  bind,
  bindCall,
  type CallRule,
  checkKink,
  noGrad,
  popLevel,
  pushLevel,
  state,
  type Trace,
} from "./trace.ts";

/** One recorded application of a primitive (or a higher-order call) on a tape. */
export class TapeNode {
  /** Node that produced each active input (null: a leaf or an inactive input). */
  readonly parents: (TapeNode | null)[];
  /** Output index within the parent node. */
  readonly parentIdx: number[];
  /** Leaf tensor for active inputs that are leaves. */
  readonly leaves: (Tensor | null)[];
  /** Tensors whose `.grad` should be kept (retainGrad), by output index. */
  retained: (Tensor | null)[] | null = null;
  freed = false;
  /**
   * Whether the node saved values for its backward (inputs, its output, or a call's closure). A freed node that
   * saved none can be differentiated through again, as in PyTorch (a cast or an add shared by two graphs).
   */
  savesValues = false;
  /** A call whose backward keeps nothing it allocates (`CallRule.backwardKeepsNothing`): its temporaries recycle. */
  recyclableCall = false;
  /**
   * The forward activations of the module call that recorded this node, which saved some value
   * (`ActivationRecord` in eager-pool.ts): recycled once backward passes have freed every such node, or null.
   */
  recycle: ActivationRecord | null = null;
  /** Version of the saved output `out` when it was recorded (see `versions`). */
  outVersion = 0;
  /** The named scope (module call) it was recorded in; backward binds its adjoint equations there too. */
  readonly scope: ScopeFrame | null = currentScope();

  constructor(
    readonly name: string,
    readonly prim: Primitive<unknown> | null,
    readonly params: unknown,
    /** Backward closure of a higher-order call (checkpoint, custom rules). */
    public call: ((cts: readonly Tensor[]) => Tensor[]) | null,
    readonly needs: readonly boolean[],
    readonly avals: readonly Aval[],
    readonly outAvals: readonly Aval[],
    public saved: readonly (Tensor | null)[] | null,
    public out: Tensor | null,
    /** Versions of saved eager tensors when recorded, to detect in-place modification. */
    readonly versions: readonly number[] | null,
    inputs: readonly Tensor[],
    /** The trace recording the node: which inputs are its traced values. */
    trace: { isActive(t: Tensor): boolean },
  ) {
    const n = inputs.length;
    const parents = new Array<TapeNode | null>(n);
    const parentIdx = new Array<number>(n);
    const leaves = new Array<Tensor | null>(n);
    for (let i = 0; i < n; i++) {
      parents[i] = null;
      parentIdx[i] = 0;
      leaves[i] = null;
      if (!needs[i]) continue;
      const a = inputs[i];
      if (!trace.isActive(a)) continue;
      if (a._node !== null) {
        parents[i] = a._node;
        parentIdx[i] = a._outIndex;
      } else leaves[i] = a;
    }
    this.parents = parents;
    this.parentIdx = parentIdx;
    this.leaves = leaves;
  }
}

/** Shared recording logic of both tapes. */
abstract class TapeTraceBase implements Trace {
  alive = true;
  abstract readonly level: number;
  abstract readonly kind: string;
  /** Whether `t` is a traced value of this tape (a tracer, or an eager tensor that requires grad). */
  abstract isActive(t: Tensor): boolean;
  /** The value one level down. */
  abstract unwrap(t: Tensor): Tensor;
  /** Evaluate one level down. */
  abstract lower<R>(fn: () => R): R;
  /** Make `out` a traced value of this tape produced by `node`. */
  abstract wrap(out: Tensor, node: TapeNode, index: number): Tensor;
  /** What to save for backward: the primal (functional) or the eager tensor itself (createGraph). */
  abstract saveValue(arg: Tensor): Tensor;

  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    // one pass over the arguments: their primals, and which ones the node differentiates (whether an argument
    // is active cannot change while the primitive evaluates)
    const n = args.length;
    const primals = new Array<Tensor>(n);
    const needs = new Array<boolean>(n);
    let anyNeeded = false;
    for (let i = 0; i < n; i++) {
      const a = args[i];
      const active = this.isActive(a);
      primals[i] = active ? this.unwrap(a) : a;
      const need = active && isFloat(a.dtype);
      needs[i] = need;
      if (need) anyNeeded = true;
    }
    const out = this.lower(() => bind(prim, primals, params));
    const d = prim.derivative;
    if (d.kind === "zero" || !isFloat(out.dtype) || !anyNeeded) return out;
    if (d.kind === "none") throw new AutodiffError(`${prim.name}: cannot differentiate: ${d.why}`);
    checkKink(prim, primals, out, params);
    const avals = new Array<Aval>(n);
    for (let i = 0; i < n; i++) avals[i] = avalOf(args[i]);
    let saved: Tensor[] | null = null;
    let versions: number[] | null = null;
    if (d.saveInputs) {
      saved = new Array<Tensor>(n);
      versions = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        const s = this.saveValue(args[i]);
        saved[i] = s;
        versions[i] = s._ver === null ? 0 : s._ver.v;
      }
    }
    const node = new TapeNode(
      prim.name,
      prim as Primitive<unknown>,
      params,
      null,
      needs,
      avals,
      [avalOf(out)],
      saved,
      null,
      versions,
      args,
      this,
    );
    const res = this.wrap(out, node, 0);
    if (d.saveOutput) {
      const o = this.saveValue(res);
      node.out = o;
      node.outVersion = o._ver === null ? 0 : o._ver.v;
    }
    if (saved !== null || d.saveOutput) {
      node.savesValues = true;
      noteSavingNode(node);
    }
    return res;
  }

  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    const primals = args.map((a) => (this.isActive(a) ? this.unwrap(a) : a));
    const eager = this.level === 1;
    const r = this.lower(() => call.vjp(primals, eager));
    const { outs } = r;
    // a createGraph backward (grad mode on while it runs) differentiates the call again, see graphBackward
    const backward =
      eager && call.ownsCreateGraph !== true && call.savesNothing !== true
        ? (cts: readonly Tensor[]) =>
            state.gradEnabled ? graphBackward(call, primals, cts) : r.backward(cts)
        : r.backward;
    const needs = args.map((a) => this.isActive(a) && isFloat(a.dtype));
    const node = new TapeNode(
      call.name,
      null,
      null,
      backward,
      needs,
      args.map(avalOf),
      outs.map(avalOf),
      null,
      null,
      null,
      args,
      this,
    );
    node.recyclableCall = call.backwardKeepsNothing === true;
    if (call.savesNothing !== true) {
      node.savesValues = true;
      noteSavingNode(node); // its backward closure holds what it saved
    }
    return outs.map((o, k) => (isFloat(o.dtype) ? this.wrap(o, node, k) : o));
  }
}

/**
 * The backward of a call on the eager tape in a `createGraph` pass: a functional vjp of the same call from its
 * inputs (the eager tensors themselves) while grad mode is on, so everything it computes, the residuals of its
 * forward included, is recorded on the eager tape and the input cotangents carry their history. The recorded
 * forward computed its residuals without one (a scan's per-step values, an LSTM's gates): differentiating through
 * them gave gradients with no second-order terms through the residuals (double backward lost them).
 */
function graphBackward(call: CallRule, primals: readonly Tensor[], cts: readonly Tensor[]): Tensor[] {
  const level = pushLevel();
  const trace = new TapeTrace(level);
  const inputs = primals.map((p) => trace.newInput(p));
  let traced: Tensor[];
  try {
    traced = bindCall(call, inputs);
  } finally {
    trace.alive = false;
    popLevel(level);
  }
  const roots: { value: Tensor; ct: Tensor }[] = [];
  traced.forEach((o, i) => {
    if (o._trace === trace && cts[i] !== undefined) roots.push({ value: o, ct: cts[i] });
  });
  const leafCts = runBackward(roots, false, "backward");
  return inputs.map((x) => leafCts.get(x) ?? zerosLike(x));
}

function avalOf(t: Aval): Aval {
  return { shape: t.shape, dtype: t.dtype };
}

/** The functional tape of one `vjp`/`grad` call. */
export class TapeTrace extends TapeTraceBase {
  readonly kind = "vjp";
  constructor(readonly level: number) {
    super();
  }
  isActive(t: Tensor): boolean {
    return t._trace === this;
  }
  unwrap(t: Tensor): Tensor {
    return t._primal!;
  }
  lower<R>(fn: () => R): R {
    return fn();
  }
  wrap(out: Tensor, node: TapeNode, index: number): Tensor {
    const t = Tensor._tracer(this, out);
    t._node = node;
    t._outIndex = index;
    return t;
  }
  saveValue(arg: Tensor): Tensor {
    return arg._trace === this ? arg._primal! : arg;
  }
  /** A leaf tracer for an input of the function being differentiated. */
  newInput(primal: Tensor): Tensor {
    return Tensor._tracer(this, primal);
  }
}

/** The eager tape (level 1): tensors with requiresGrad record their history here while grad mode is on. */
class EagerTrace extends TapeTraceBase {
  readonly kind = "eager autograd";
  readonly level = 1;
  isActive(t: Tensor): boolean {
    return t._trace === null && t._requiresGrad;
  }
  unwrap(t: Tensor): Tensor {
    return t;
  }
  lower<R>(fn: () => R): R {
    return noGrad(fn);
  }
  wrap(out: Tensor, node: TapeNode, index: number): Tensor {
    // `out` is a fresh tensor from a kernel or view: it becomes the non-leaf result itself.
    out._requiresGrad = true;
    out._node = node;
    out._outIndex = index;
    return out;
  }
  saveValue(arg: Tensor): Tensor {
    return arg;
  }
}

export const eagerTrace: Trace = new EagerTrace();

/**
 * Run backward from `roots` (traced values with their cotangents). Returns the cotangent of every leaf reached.
 * With `retain` false the saved values are released as each node is processed.
 */
export function runBackward(
  roots: readonly { value: Tensor; ct: Tensor }[],
  retain: boolean,
  what: string,
  onLeafDone?: (leaf: Tensor, ct: Tensor) => void,
  recycle = false,
): Map<Tensor, Tensor> {
  const leafCts = new Map<Tensor, Tensor>();
  const nodeCts = new Map<TapeNode, (Tensor | undefined)[]>();
  const starts: TapeNode[] = [];
  for (const { value, ct } of roots) {
    if (value._node === null) addLeaf(leafCts, value, ct, null);
    else {
      addNodeCt(nodeCts, value._node, value._outIndex, ct, null);
      starts.push(value._node);
    }
  }
  const order = topoOrder(starts);
  // Leaves with post-accumulate hooks are handed to `onLeafDone` as soon as the last node that feeds them ran
  // (lowest position in `order`), so the hooks overlap the rest of the pass (DistributedDataParallel starts
  // reducing gradients there). Not computed when no leaf has a hook.
  const doneAt = onLeafDone !== undefined && hookedLeafCount > 0 ? leavesDoneAt(order) : null;
  const rc = recycle && worthRecycling(order) ? startRecycling() : null;
  state.inBackward++;
  try {
    backwardNodes(order, nodeCts, leafCts, retain, what, onLeafDone, doneAt, rc);
  } finally {
    state.inBackward--;
    if (rc !== null) stopRecycling(rc);
  }
  recycleFreed(order, retain, leafCts);
  return leafCts;
}

/**
 * After a pass over `order`: a recording's forward activations (`ActivationRecord`) are dead once passes have
 * freed every node of the recording that saved anything (a leaf's gradient is checked all the same). A pass
 * that retains the graph forfeits them: it may have saved them in a new graph (createGraph).
 */
function recycleFreed(order: readonly TapeNode[], retain: boolean, leafCts: Map<Tensor, Tensor>): void {
  let escaped: Set<TypedArray> | null = null;
  for (let k = 0; k < order.length; k++) {
    const node = order[k];
    const rec = node.recycle;
    if (rec === null) continue;
    node.recycle = null;
    if (retain) rec.forfeit = true;
    if (--rec.pending > 0 || rec.forfeit) continue;
    if (escaped === null) {
      escaped = new Set();
      for (const ct of leafCts.values()) if (ct._data !== null) escaped.add(ct._data);
    }
    for (const d of escaped) rec.owned.delete(d);
    giveBack(rec.owned);
  }
}

/**
 * Whether a pass over `order` makes enough storage for recycling it to save collections (eager-pool.ts). A
 * 16-bit output counts as float32: the CPU backends run 16-bit kernels on float32 copies of their operands
 * (prims/half.ts), so its backward allocates float32 temporaries of its size (an autocast CNN step, whose
 * bfloat16 activations add up to under the threshold, allocated 36 MiB per step unrecycled).
 */
function worthRecycling(order: readonly TapeNode[]): boolean {
  let bytes = 0;
  for (let k = 0; k < order.length; k++) {
    const outs = order[k].outAvals;
    for (let i = 0; i < outs.length; i++)
      bytes += sizeOf(outs[i].shape) * Math.max(4, bytesPerElement(outs[i].dtype));
  }
  return bytes >= eagerPoolOpts.minPassBytes;
}

/** The node loop of `runBackward`: each node's VJP, in reverse topological order. */
function backwardNodes(
  order: readonly TapeNode[],
  nodeCts: Map<TapeNode, (Tensor | undefined)[]>,
  leafCts: Map<Tensor, Tensor>,
  retain: boolean,
  what: string,
  onLeafDone: ((leaf: Tensor, ct: Tensor) => void) | undefined,
  doneAt: Map<number, Tensor[]> | null,
  rc: Recycler | null,
): void {
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k];
    const cts = nodeCts.get(node);
    nodeCts.delete(node);
    if (cts !== undefined) {
      if (node.freed && node.savesValues) {
        throw new AutodiffError(
          `${what}: the graph through '${node.name}' was already freed by an earlier backward pass; ` +
            "pass {retainGraph: true} to the first backward() to differentiate the same graph twice",
        );
      }
      if (node.retained !== null) {
        node.retained.forEach((t, i) => {
          if (t !== null && cts[i] !== undefined) {
            rc?.escape(cts[i]!);
            t.grad = t.grad === null ? cts[i]! : accumulate(t.grad, cts[i]!);
          }
        });
      }
      const outer = currentScope();
      restoreScope(adjointScope(node.scope));
      let grads: readonly (MaybeZero | undefined)[];
      // a higher-order call's backward (checkpoint, custom rules, jit) may keep what it allocates: not recorded,
      // unless the call says it keeps nothing (library calls with hand-written VJPs)
      const tracked = node.prim !== null || node.recyclableCall;
      if (rc !== null && tracked) rc.begin();
      try {
        grads = nodeVjp(node, cts);
      } finally {
        restoreScope(outer);
      }
      if (rc !== null && !tracked) rc.begin();
      for (let i = 0; i < node.needs.length; i++) {
        const g = grads[i];
        if (!node.needs[i] || g === undefined || isZero(g)) continue;
        const av = node.avals[i];
        if (!shapesEqual(g.shape, av.shape)) {
          throw internal(
            `vjp of '${node.name}' returned shape ${fmtShape(g.shape)} for input ${i} of shape ${fmtShape(av.shape)}`,
          );
        }
        const gi = g.dtype === av.dtype ? g : g.to(av.dtype);
        const p = node.parents[i];
        if (p !== null) addNodeCt(nodeCts, p, node.parentIdx[i], gi, rc);
        else if (node.leaves[i] !== null) addLeaf(leafCts, node.leaves[i]!, gi, rc);
      }
      if (rc !== null) {
        // the cotangents this node consumed are dead unless a VJP passed them on (counted above)
        for (let i = 0; i < cts.length; i++) if (cts[i] !== undefined) rc.unref(cts[i]!);
        rc.sweep();
      }
    }
    if (!retain) {
      node.freed = true;
      node.saved = null;
      node.out = null;
      if (node.savesValues) node.call = null; // (a call that saved nothing keeps its closure for a later pass)
    }
    const done = doneAt?.get(k);
    if (done !== undefined) {
      for (const leaf of done) {
        const ct = leafCts.get(leaf);
        if (ct === undefined) continue;
        leafCts.delete(leaf);
        onLeafDone!(leaf, ct);
      }
    }
  }
}

/** For each hooked leaf fed by a node of `order`, the lowest such position: where its cotangent is final. */
function leavesDoneAt(order: readonly TapeNode[]): Map<number, Tensor[]> {
  const last = new Map<Tensor, number>();
  for (let k = order.length - 1; k >= 0; k--) {
    for (const leaf of order[k].leaves) {
      if (leaf !== null && postAccumulateHooks.has(leaf)) last.set(leaf, k);
    }
  }
  const byPos = new Map<number, Tensor[]>();
  for (const [leaf, k] of last) {
    const list = byPos.get(k);
    if (list === undefined) byPos.set(k, [leaf]);
    else list.push(leaf);
  }
  return byPos;
}

/** Hooks run right after backward accumulated a leaf's gradient into `.grad` (PyTorch 2.1's post-accumulate hooks). */
const postAccumulateHooks = new WeakMap<Tensor, ((t: Tensor) => void)[]>();
/** How many leaves have hooks: zero keeps backward free of any bookkeeping for them. */
let hookedLeafCount = 0;

/**
 * `t.registerPostAccumulateGradHook(fn)`: after an eager backward pass has accumulated `t`'s gradient into
 * `t.grad`, call `fn(t)`. It runs during the pass, as soon as no later node can add to the gradient (so work
 * started there overlaps the rest of backward), and only for leaves that received a gradient. Returns a
 * handle whose `remove()` unregisters it.
 */
export function registerPostAccumulateGradHook(t: Tensor, fn: (t: Tensor) => void): { remove(): void } {
  if (t._trace !== null || t._node !== null || !t._requiresGrad) {
    throw new AutodiffError(
      "registerPostAccumulateGradHook: only a leaf tensor that requires grad accumulates a gradient " +
        `(got a ${t._trace !== null ? "tracer" : t._node !== null ? "non-leaf" : "tensor without requiresGrad"} of shape ${fmtShape(t.shape)})`,
    );
  }
  let list = postAccumulateHooks.get(t);
  if (list === undefined) {
    list = [];
    postAccumulateHooks.set(t, list);
    hookedLeafCount++;
  }
  list.push(fn);
  return {
    remove: () => {
      const l = postAccumulateHooks.get(t);
      const i = l === undefined ? -1 : l.indexOf(fn);
      if (l === undefined || i < 0) return;
      l.splice(i, 1);
      if (l.length === 0) {
        postAccumulateHooks.delete(t);
        hookedLeafCount--;
      }
    },
  };
}

/** Accumulate `g` into `leaf.grad`, then run the leaf's post-accumulate hooks. */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  leaf.grad = leaf.grad === null ? g : accumulate(leaf.grad, g);
  const hooks = hookedLeafCount > 0 ? postAccumulateHooks.get(leaf) : undefined;
  if (hooks !== undefined) for (const h of hooks.slice()) h(leaf);
}

function nodeVjp(node: TapeNode, cts: readonly (Tensor | undefined)[]): readonly (MaybeZero | undefined)[] {
  if (node.prim !== null) {
    const d = node.prim.derivative;
    if (d.kind !== "rule") throw internal(`node '${node.name}' has no rule`);
    const versions = node.versions;
    const saved = node.saved;
    if (versions !== null && saved !== null) {
      for (let i = 0; i < saved.length; i++) {
        const s = saved[i];
        if (s !== null && s._ver !== null && s._ver.v !== versions[i]) {
          throw modifiedInPlace(node, `input ${i}`, s, versions[i]);
        }
      }
    }
    const o = node.out;
    if (o !== null && o._ver !== null && o._ver.v !== node.outVersion) {
      throw modifiedInPlace(node, "its output", o, node.outVersion);
    }
    if (ruleRecorder !== null) ruleRecorder(node.prim.name, "vjp");
    return d.vjp(
      cts[0]!,
      node.saved ?? node.avals.map(() => null),
      node.out,
      node.params,
      node.needs,
      node.avals,
    );
  }
  const full = node.outAvals.map((av, i) => cts[i] ?? zerosLike(av));
  return node.call!(full);
}

/** PyTorch's error for a saved tensor changed in place between the forward pass and backward. */
function modifiedInPlace(node: TapeNode, which: string, t: Tensor, expected: number): AutodiffError {
  return new AutodiffError(
    `backward of '${node.name}': one of the variables needed for gradient computation has been modified by an ` +
      `inplace operation: ${which} (shape ${fmtShape(t.shape)}, ${t.dtype}) is at version ${t._ver!.v}; ` +
      `expected version ${expected} instead. Clone it (or compute it again) before modifying it in place`,
  );
}

/**
 * `t.retainGrad()` for an eager non-leaf: backward will accumulate t's cotangent into `t.grad`, as for a leaf.
 * Leaves keep their gradient anyway, so for them this does nothing (as PyTorch).
 */
export function retainGradOf(t: Tensor): void {
  if (t._trace !== null) {
    throw new AutodiffError(
      "retainGrad: called on a tracer inside a transform (grad, vjp, jvp ...); transforms return gradients instead",
    );
  }
  if (!t._requiresGrad) {
    throw new AutodiffError(
      `retainGrad: the tensor (shape ${fmtShape(t.shape)}) does not require grad, so it has no gradient to retain`,
    );
  }
  const node = t._node;
  if (node === null) return;
  if (node.retained === null) node.retained = new Array(node.outAvals.length).fill(null);
  node.retained[t._outIndex] = t;
}

/** Add `ct` to a leaf's cotangent; with a recycler, both leave the pass (they become `.grad`). */
function addLeaf(m: Map<Tensor, Tensor>, leaf: Tensor, ct: Tensor, rc: Recycler | null): void {
  const prev = m.get(leaf);
  const v = prev === undefined ? ct : accumulate(prev, ct);
  m.set(leaf, v);
  if (rc !== null) {
    rc.escape(ct);
    rc.escape(v);
  }
}

/** Add `ct` to a node's pending cotangent; with a recycler, count the pending value's reference. */
function addNodeCt(
  m: Map<TapeNode, (Tensor | undefined)[]>,
  node: TapeNode,
  idx: number,
  ct: Tensor,
  rc: Recycler | null,
): void {
  let arr = m.get(node);
  if (arr === undefined) {
    arr = new Array(node.outAvals.length).fill(undefined);
    m.set(node, arr);
  }
  const prev = arr[idx];
  const v = prev === undefined ? ct : accumulate(prev, ct);
  arr[idx] = v;
  if (rc !== null) {
    rc.ref(v);
    if (prev !== undefined) rc.unref(prev);
  }
}

/** Nodes reachable from `starts`, parents before children (iterative DFS post-order). */
function topoOrder(starts: readonly TapeNode[]): TapeNode[] {
  const order: TapeNode[] = [];
  const seen = new Set<TapeNode>();
  const stack: [TapeNode, number][] = [];
  for (const s of starts) {
    if (seen.has(s)) continue;
    seen.add(s);
    stack.push([s, 0]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.parents.length) {
        top[1]++;
        const p = node.parents[i];
        if (p !== null && !seen.has(p)) {
          seen.add(p);
          stack.push([p, 0]);
        }
      } else {
        stack.pop();
        order.push(node);
      }
    }
  }
  return order;
}

/** `tensor.backward(seed?, opts)`: PyTorch-style reverse mode over the eager tape. */
export function backwardEager(
  t: Tensor,
  seed?: Tensor,
  opts: { retainGraph?: boolean; createGraph?: boolean } = {},
): void {
  for (const k of Object.keys(opts)) {
    if (k !== "retainGraph" && k !== "createGraph")
      throw new TypeError(`backward: unknown option "${k}" (the options are retainGraph and createGraph)`);
  }
  if (t._trace !== null) {
    throw new AutodiffError(
      "backward: called on a tracer inside a transform (grad, vjp, jvp ...); use the transform's result instead",
    );
  }
  if (!t._requiresGrad) {
    throw new AutodiffError(
      `backward: the tensor (shape ${fmtShape(t.shape)}) does not require grad and has no grad history; ` +
        "set requiresGrad on the inputs you want gradients for",
    );
  }
  if (seed === undefined) {
    if (t.size !== 1) {
      throw new AutodiffError(
        `backward: a seed cotangent is required for a non-scalar output of shape ${fmtShape(t.shape)}; ` +
          "call backward(seed) with a tensor of that shape, or reduce the output to a scalar first",
      );
    }
    seed = onesLike(t);
  } else if (!shapesEqual(seed.shape, t.shape)) {
    throw new ShapeError(
      `backward: seed shape ${fmtShape(seed.shape)} does not match output shape ${fmtShape(t.shape)}`,
    );
  }
  const createGraph = opts.createGraph ?? false;
  const retain = opts.retainGraph ?? createGraph;
  const prev = state.gradEnabled;
  state.gradEnabled = createGraph;
  // recycle backward's own storage only at top level: no transform or jit trace can then hold a temporary
  const recycle = !createGraph && state.nextLevel === 2 && state.jitTracing === 0;
  try {
    const s = seed;
    const leafCts = runBackward([{ value: t, ct: s }], retain, "backward", accumulateLeaf, recycle);
    for (const [leaf, g] of leafCts) accumulateLeaf(leaf, g);
  } finally {
    state.gradEnabled = prev;
  }
}
