/**
 * vmap: the batching transform (JAX semantics). `vmap(f)` runs f once on whole batches: each call pushes a
 * `BatchTrace` (a tagged level like the JVP trace, so vmap nests and composes with grad/jvp/vjp in any order),
 * whose tracers show f the per-example shape while carrying the batched value one level down with its batch
 * axis moved to the front (axis 0, one canonical place, so rules need no bookkeeping of where it is). Applying
 * a primitive to tracers runs the primitive's batching rule (declared with the primitive, see
 * src/prims/batching.ts), which binds ordinary primitives on the batched values.
 */
import { AutodiffError, ShapeError } from "../errors.ts";
import { broadcast, permute } from "../prims/movement.ts";
import { fmtShape } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { treeFlatten, treeUnflatten } from "../tree.ts";
import { type Primitive, ruleRecorder } from "./primitive.ts";
import { bindCall, type CallRule, popLevel, pushLevel, type Trace } from "./trace.ts";

export class BatchTrace implements Trace {
  alive = true;
  readonly kind = "vmap";
  constructor(
    readonly level: number,
    readonly size: number,
  ) {}

  /** A tracer over `batched` (batch axis 0): f sees the per-example shape. */
  lift(batched: Tensor): Tensor {
    const t = new Tensor(batched.shape.slice(1), batched.dtype);
    t._trace = this;
    t._primal = batched;
    return t;
  }

  private split(args: readonly Tensor[]): [Tensor[], boolean[]] {
    const vals = new Array<Tensor>(args.length);
    const batched = new Array<boolean>(args.length);
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      batched[i] = a._trace === this;
      vals[i] = batched[i] ? a._primal! : a;
    }
    return [vals, batched];
  }

  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    const [vals, batched] = this.split(args);
    if (ruleRecorder !== null) ruleRecorder(prim.name, "batch");
    return this.lift(prim.batch(vals, batched, params, this.size, prim));
  }

  /**
   * Higher-order calls. checkpoint is traced through (values and derivatives exact; under vmap it does not save
   * memory). customJvp/customVjp become one batched call rule, so a differentiation level below (grad(vmap(f)),
   * jvp(vmap(f))) still uses the custom rule: its forward and JVP are vmapped directly, its VJP is vmapped with
   * the forward recomputed inside the backward (the residuals of a batched forward cannot outlive its trace).
   */
  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    if (call.name === "checkpoint") return call.fn(args);
    const [vals, batched] = this.split(args);
    if (call.batch !== undefined) {
      const r = call.batch(vals, batched, this.size);
      return r.outs.map((o, i) => (r.batched[i] ? this.lift(o) : o));
    }
    const n = this.size;
    const cjvp = call.jvp;
    const batchedCall: CallRule = {
      name: call.name,
      fn: (xs) => batchFlat(call.fn, xs, batched, n),
      jvp:
        cjvp === undefined
          ? undefined
          : (ps, ts) => {
              const k = ps.length;
              const both = batchFlat(
                (xs) => {
                  const [o, t] = cjvp(xs.slice(0, k), xs.slice(k));
                  return [...o, ...t];
                },
                [...ps, ...ts],
                [...batched, ...batched],
                n,
              );
              const m = both.length / 2;
              return [both.slice(0, m), both.slice(m)];
            },
      vjp: (ps, eager) => {
        const outs = batchFlat(call.fn, ps, batched, n);
        const backward = (cts: readonly Tensor[]): Tensor[] => {
          const k = ps.length;
          return batchFlat(
            (xs) => call.vjp(xs.slice(0, k), eager).backward(xs.slice(k)),
            [...ps, ...cts],
            [...batched, ...cts.map(() => true)],
            n,
          );
        };
        return { outs, backward };
      },
    };
    return bindCall(batchedCall, vals).map((o) => this.lift(o));
  }
}

/** `x` with its batch axis moved from `from` to `to`. */
function moveAxis(x: Tensor, from: number, to: number): Tensor {
  if (from === to) return x;
  const perm = x.shape.map((_, i) => i).filter((i) => i !== from);
  perm.splice(to, 0, from);
  return permute(x, perm);
}

/**
 * Flat vmap on values batched along axis 0 (`batched[i]` false: shared): runs f under a new BatchTrace and
 * returns every output batched along axis 0 (unbatched outputs broadcast).
 */
export function batchFlat(
  f: (xs: Tensor[]) => Tensor[],
  xs: readonly Tensor[],
  batched: readonly boolean[],
  size: number,
): Tensor[] {
  const level = pushLevel();
  const trace = new BatchTrace(level, size);
  let outs: Tensor[];
  try {
    outs = f(xs.map((x, i) => (batched[i] ? trace.lift(x) : x)));
  } finally {
    trace.alive = false;
    popLevel(level);
  }
  return outs.map((o) => (o._trace === trace ? o._primal! : broadcast(o, [size, ...o.shape])));
}

/** An axis spec: a number (the mapped axis, negative counts from the end), null (not mapped), or a pytree. */
export type AxisSpec = number | null | readonly AxisSpec[] | { readonly [k: string]: AxisSpec };

export interface VmapOpts {
  /** Per argument (an array with one entry per argument) or for all: the axis each input leaf is mapped over. */
  inAxes?: AxisSpec;
  /** The axis of each output leaf where the batch axis goes (null: the output is the same for every example). */
  outAxes?: AxisSpec;
}

/** The axis spec of each tensor leaf of `tree`, expanding a number/null spec over a whole subtree. */
function axesOf(spec: AxisSpec | undefined, tree: unknown, what: string): (number | null)[] {
  if (spec === undefined || spec === null || typeof spec === "number") {
    return treeFlatten(tree)[0].map(() => (spec === undefined ? 0 : spec));
  }
  if (Array.isArray(spec)) {
    if (!Array.isArray(tree) || tree.length !== spec.length) {
      throw new ShapeError(
        `vmap: ${what} has an axis spec with ${spec.length} entries for a value that is ${Array.isArray(tree) ? `an array of ${tree.length}` : "not an array"}`,
      );
    }
    return tree.flatMap((t, i) => axesOf(spec[i], t, `${what}[${i}]`));
  }
  if (tree === null || typeof tree !== "object" || tree instanceof Tensor) {
    throw new ShapeError(`vmap: ${what} has an object axis spec for a value that is not an object`);
  }
  const obj = tree as Record<string, unknown>;
  const s = spec as { readonly [k: string]: AxisSpec };
  return Object.keys(obj).flatMap((k) => {
    if (!(k in s)) throw new ShapeError(`vmap: the axis spec of ${what} has no entry for key "${k}"`);
    return axesOf(s[k], obj[k], `${what}.${k}`);
  });
}

function checkAxis(axis: number, ndim: number, what: string): number {
  if (!Number.isInteger(axis) || axis < -ndim || axis >= ndim) {
    throw new ShapeError(
      `vmap: ${what} has ${ndim} dims, so axis ${axis} is out of range [${-ndim}, ${ndim})`,
    );
  }
  return axis < 0 ? axis + ndim : axis;
}

/**
 * Vectorising map: `vmap(f)(xs)` equals stacking `f(x)` over the examples `x` of `xs` (along `inAxes`, default
 * 0), computed in one batched pass. Arguments and results are pytrees; `inAxes`/`outAxes` are a number or null
 * for all leaves, or a pytree matching the arguments (as an array with one entry per argument) or the result.
 *
 * @example
 * ```ts
 * const perExample = vmap(grad(loss), { inAxes: [null, 0, 0] })(params, xs, ys);
 * ```
 */
// Typed as the function it maps (F in, F out) rather than through its parameter and result types: inferred
// from them, a vmap written inside another transform's call, jvp(vmap(f), [x], [t]), took its parameters from
// that call's constraint and became (...args: never[]) => R.
// biome-ignore lint/suspicious/noExplicitAny: any function (unknown[] parameters would reject typed ones)
export function vmap<F extends (...args: any[]) => any>(f: F, opts: VmapOpts = {}): F {
  type A = Parameters<F>;
  type R = ReturnType<F>;
  return ((...args: A): R => {
    const inSpec = opts.inAxes === undefined ? 0 : opts.inAxes;
    if (Array.isArray(inSpec) && inSpec.length !== args.length) {
      throw new ShapeError(
        `vmap: inAxes has ${inSpec.length} entries (one per argument) but the function got ${args.length} arguments`,
      );
    }
    const [leaves, def] = treeFlatten(args);
    const axes = Array.isArray(inSpec) ? axesOf(inSpec, args, "argument") : axesOf(inSpec, args, "arguments");
    let size = -1;
    let sizeFrom = "";
    leaves.forEach((x, i) => {
      const a = axes[i];
      if (a === null) return;
      const ax = checkAxis(a, x.ndim, `input leaf ${i} (shape ${fmtShape(x.shape)})`);
      const n = x.shape[ax];
      const here = `input leaf ${i} has size ${n} on axis ${a} (shape ${fmtShape(x.shape)})`;
      if (size === -1) {
        size = n;
        sizeFrom = here;
      } else if (n !== size) {
        throw new ShapeError(`vmap: inconsistent sizes for the mapped axis: ${sizeFrom}, but ${here}`);
      }
    });
    if (size === -1) {
      throw new ShapeError(
        "vmap: no input is mapped (every inAxes entry is null), so the batch size is unknown",
      );
    }
    const level = pushLevel();
    const trace = new BatchTrace(level, size);
    let out: R;
    try {
      const ins = leaves.map((x, i) => {
        const a = axes[i];
        return a === null ? x : trace.lift(moveAxis(x, a < 0 ? a + x.ndim : a, 0));
      });
      out = f(...(treeUnflatten(def, ins) as A));
    } finally {
      trace.alive = false;
      popLevel(level);
    }
    const [outLeaves, outDef] = treeFlatten(out);
    const outAxes = axesOf(opts.outAxes, out, "the output");
    const res = outLeaves.map((o, i) => {
      const a = outAxes[i];
      const mine = o._trace === trace;
      if (a === null) {
        if (mine) {
          throw new AutodiffError(
            `vmap: output leaf ${i} (per-example shape ${fmtShape(o.shape)}) varies over the batch but its outAxes is null`,
          );
        }
        return o;
      }
      const b = mine ? o._primal! : broadcast(o, [size, ...o.shape]);
      return moveAxis(b, 0, checkAxis(a, b.ndim, `output leaf ${i} (batched shape ${fmtShape(b.shape)})`));
    });
    return treeUnflatten(outDef, res) as R;
  }) as F;
}
