/**
 * Forward mode: the JVP trace. A tracer carries a primal (one level down) and a tangent. Applying a primitive
 * computes the primal output one level down and the output tangent with the primitive's JVP rule, whose tangent
 * arithmetic is ordinary ops on lower-level values. Tangents known to be zero stay symbolic (`Zero`): an
 * application whose tangents are all zero returns the plain primal output, no tracer at all.
 */
import { isFloat } from "../dtype.ts";
import { AutodiffError } from "../errors.ts";
import { Tensor } from "../tensor/tensor.ts";
import { zerosLike } from "./helpers.ts";
import { isZero, type MaybeZero, type Primitive, ruleRecorder, Zero } from "./primitive.ts";
import { bind, type CallRule, checkKink, type Trace } from "./trace.ts";

export class JVPTrace implements Trace {
  alive = true;
  readonly kind = "jvp";
  constructor(readonly level: number) {}

  /** A tracer with the given primal and tangent. */
  lift(primal: Tensor, tangent: Tensor): Tensor {
    const t = Tensor._tracer(this, primal);
    t._tangent = tangent;
    return t;
  }

  private split(args: readonly Tensor[]): [Tensor[], MaybeZero[]] {
    const primals = new Array<Tensor>(args.length);
    const tangents = new Array<MaybeZero>(args.length);
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a._trace === this) {
        primals[i] = a._primal!;
        tangents[i] = a._tangent!;
      } else {
        primals[i] = a;
        tangents[i] = new Zero(a.shape, a.dtype);
      }
    }
    return [primals, tangents];
  }

  process<P>(prim: Primitive<P>, args: readonly Tensor[], params: P): Tensor {
    const [primals, tangents] = this.split(args);
    const out = bind(prim, primals, params);
    const d = prim.derivative;
    if (d.kind === "zero" || !isFloat(out.dtype)) return out;
    let any = false;
    for (let i = 0; i < tangents.length; i++) {
      if (!isZero(tangents[i]) && isFloat(args[i].dtype)) any = true;
      else tangents[i] = new Zero(args[i].shape, args[i].dtype);
    }
    if (!any) return out;
    if (d.kind === "none") throw new AutodiffError(`${prim.name}: cannot differentiate: ${d.why}`);
    checkKink(prim, primals, out, params);
    if (ruleRecorder !== null) ruleRecorder(prim.name, "jvp");
    const tout = d.jvp(primals, tangents, out, params, prim);
    if (isZero(tout)) return out;
    return this.lift(out, tout.dtype === out.dtype ? tout : tout.to(out.dtype));
  }

  processCall(call: CallRule, args: readonly Tensor[]): Tensor[] {
    if (call.jvp === undefined) return call.fn(args);
    const [primals, tangents] = this.split(args);
    const [outs, touts] = call.jvp(
      primals,
      tangents.map((t) => (isZero(t) ? zerosLike(t) : t)),
    );
    return outs.map((o, i) => (isFloat(o.dtype) ? this.lift(o, touts[i]) : o));
  }
}
