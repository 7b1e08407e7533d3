/**
 * Fused recurrent cells as primitives: the elementwise part of one LSTM or GRU step after its two matmuls
 * (Backend.lstmCell, gruCell: one kernel instead of ~10 elementwise ops and their temporaries), and their VJPs
 * (Backend.lstmCellBackward, gruCellBackward: one kernel each).
 *
 * - `lstmCell(gates [...B, 4H], c [...B, H])` -> [...B, 2H] = [h', c'] (one output per primitive, so the two
 *   states are packed; the caller narrows them): c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c').
 * - `gruCell(xp [...B, 3H], hp [...B, 3H], h [...B, H])` -> h' = n + z (h - n), r = sigmoid(x_r + h_r),
 *   z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n).
 *
 * Their VJPs are the backward primitives. Every other rule (the cells' JVPs, and the JVP and VJP of the
 * backward primitives, which second order needs) is forward or reverse mode over the same formulas written in
 * ops (`lstmRef`, `lstmBackRef`, ...): small elementwise compositions, differentiable to any order. Batching:
 * every leading axis is a row of the kernels, so vmap binds once (batchAll).
 */
import { jvpFlat, vjpFlat } from "../core/autodiff.ts";
import type { Aval, MaybeZero, Primitive } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll } from "./batching.ts";
import { allocOut, getBackend, instantiate, viewOf } from "./impl.ts";
import { concat } from "./movement.ts";
import { rule } from "./rules.ts";

/** Check operands [...B, widths[k] H] of one float dtype; returns [leading shape, H]. */
function check(name: string, avals: readonly Aval[], widths: readonly number[]): [number[], number] {
  const x = avals[0];
  const nd = x.shape.length;
  const shapes = () => avals.map((a) => fmtShape(a.shape)).join(", ");
  if (x.dtype !== "float32" && x.dtype !== "float64") {
    throw new DTypeError(`${name}: expected float32 or float64 operands, got ${x.dtype}`);
  }
  if (avals.some((a) => a.dtype !== x.dtype)) {
    throw new DTypeError(
      `${name}: operands must share one dtype, got ${avals.map((a) => a.dtype).join(", ")}`,
    );
  }
  const h = nd >= 1 ? x.shape[nd - 1] / widths[0] : Number.NaN;
  const ok =
    Number.isInteger(h) &&
    avals.every(
      (a, k) =>
        a.shape.length === nd &&
        a.shape[nd - 1] === widths[k] * h &&
        a.shape.slice(0, -1).every((d, i) => d === x.shape[i]),
    );
  if (!ok) {
    throw new ShapeError(
      `${name}: expected operands [...B, ${widths.map((w) => `${w}H`).join("], [...B, ")}] with one batch shape, got ${shapes()}`,
    );
  }
  return [x.shape.slice(0, -1), h];
}

const nar = (t: Tensor, k: number, h: number) => t.narrow(-1, k * h, h);
const cat = (ts: readonly Tensor[]) => concat(ts, ts[0].ndim - 1);
const hOf = (t: Tensor | Aval, w: number) => t.shape[t.shape.length - 1] / w;

/** lstmCell in ops: [h', c']. */
function lstmRef([gates, c]: Tensor[]): Tensor[] {
  const h = hOf(c, 1);
  const [i, f, g, o] = [0, 1, 2, 3].map((k) => nar(gates, k, h));
  const cp = f.sigmoid().mul(c).add(i.sigmoid().mul(g.tanh()));
  return [cat([o.sigmoid().mul(cp.tanh()), cp])];
}
/** lstmCellBackward in ops: [d gates, dc] (Backend.lstmCellBackward's formulas). */
function lstmBackRef([gates, c, ct]: Tensor[]): Tensor[] {
  const h = hOf(c, 1);
  const [i, f, o] = [0, 1, 3].map((k) => nar(gates, k, h).sigmoid());
  const g = nar(gates, 2, h).tanh();
  const tc = f.mul(c).add(i.mul(g)).tanh();
  const dh = nar(ct, 0, h);
  const dcp = nar(ct, 1, h).add(dh.mul(o).mul(tc.mul(tc).neg().add(1)));
  const dsig = (s: Tensor) => s.mul(s.neg().add(1));
  return [
    cat([
      dcp.mul(g).mul(dsig(i)),
      dcp.mul(c).mul(dsig(f)),
      dcp.mul(i).mul(g.mul(g).neg().add(1)),
      dh.mul(tc).mul(dsig(o)),
      dcp.mul(f),
    ]),
  ];
}
/** gruCell in ops: h'. */
function gruRef([xp, hp, hv]: Tensor[]): Tensor[] {
  const h = hOf(hv, 1);
  const r = nar(xp, 0, h)
    .add(nar(hp, 0, h))
    .sigmoid();
  const z = nar(xp, 1, h)
    .add(nar(hp, 1, h))
    .sigmoid();
  const n = nar(xp, 2, h)
    .add(r.mul(nar(hp, 2, h)))
    .tanh();
  return [n.add(z.mul(hv.sub(n)))];
}
/** gruCellBackward in ops: [dxp, dhp, dh]. */
function gruBackRef([xp, hp, hv, ct]: Tensor[]): Tensor[] {
  const h = hOf(hv, 1);
  const hn = nar(hp, 2, h);
  const r = nar(xp, 0, h)
    .add(nar(hp, 0, h))
    .sigmoid();
  const z = nar(xp, 1, h)
    .add(nar(hp, 1, h))
    .sigmoid();
  const n = nar(xp, 2, h).add(r.mul(hn)).tanh();
  const dsig = (s: Tensor) => s.mul(s.neg().add(1));
  const dnp = ct.mul(z.neg().add(1)).mul(n.mul(n).neg().add(1));
  const dzp = ct.mul(hv.sub(n)).mul(dsig(z));
  const drp = dnp.mul(hn).mul(dsig(r));
  return [cat([drp, dzp, dnp, drp, dzp, dnp.mul(r), ct.mul(z)])];
}

/** Rules by mode over a formula in ops: forward mode for the JVP, reverse mode for the VJP (any order). */
function viaOps<P>(f: (xs: Tensor[]) => Tensor[], vjp?: (ct: Tensor, xs: Tensor[]) => MaybeZero[]) {
  return rule<P>(
    (xs, ts) => jvpFlat(f, xs, ts.map(instantiate))[1][0],
    (ct, xs) => (vjp !== undefined ? vjp(ct, xs as Tensor[]) : vjpFlat(f, xs as Tensor[]).backward([ct])),
  );
}

function cellPrimitive(
  name: string,
  widths: readonly number[],
  outWidth: number,
  kernel: (views: ReturnType<typeof viewOf>[], out: ReturnType<typeof allocOut>) => void,
  ref: (xs: Tensor[]) => Tensor[],
  vjp?: (ct: Tensor, xs: Tensor[]) => MaybeZero[],
): Primitive<null> {
  return {
    name,
    abstract(args) {
      if (args.length !== widths.length) {
        throw new ShapeError(`${name}: expected ${widths.length} operands, got ${args.length}`);
      }
      const [lead, h] = check(name, args, widths);
      return { shape: [...lead, outWidth * h], dtype: args[0].dtype };
    },
    impl(args, _p, out) {
      const o = allocOut(out);
      kernel(args.map(viewOf), o);
      return o;
    },
    batch: batchAll<null>(),
    derivative: viaOps<null>(ref, vjp),
  };
}

export const lstmCellBackwardP = cellPrimitive(
  "lstmCellBackward",
  [4, 1, 2],
  5,
  ([g, c, ct], o) => getBackend().lstmCellBackward(g, c, ct, o._data!),
  lstmBackRef,
);
export const lstmCellP = cellPrimitive(
  "lstmCell",
  [4, 1],
  2,
  ([g, c], o) => getBackend().lstmCell(g, c, o._data!),
  lstmRef,
  (ct, [gates, c]) => {
    const d = bind(lstmCellBackwardP, [gates, c, ct], null);
    const h = hOf(c, 1);
    return [d.narrow(-1, 0, 4 * h), nar(d, 4, h)];
  },
);
export const gruCellBackwardP = cellPrimitive(
  "gruCellBackward",
  [3, 3, 1, 1],
  7,
  ([x, hp, h, ct], o) => getBackend().gruCellBackward(x, hp, h, ct, o._data!),
  gruBackRef,
);
export const gruCellP = cellPrimitive(
  "gruCell",
  [3, 3, 1],
  1,
  ([x, hp, h], o) => getBackend().gruCell(x, hp, h, o._data!),
  gruRef,
  (ct, [xp, hp, hv]) => {
    const d = bind(gruCellBackwardP, [xp, hp, hv, ct], null);
    const h = hOf(hv, 1);
    return [d.narrow(-1, 0, 3 * h), d.narrow(-1, 3 * h, 3 * h), nar(d, 6, h)];
  },
);

/** This module's primitives by name (merged into the registry by src/prims/index.ts). */
export const rnnPrimitives = {
  lstmCell: lstmCellP,
  lstmCellBackward: lstmCellBackwardP,
  gruCell: gruCellP,
  gruCellBackward: gruCellBackwardP,
};

/** One fused LSTM step: gates [...B, 4H] (i, f, g, o), c [...B, H] -> [...B, 2H] = [h', c']. */
export function lstmCell(gates: Tensor, c: Tensor): Tensor {
  return bind(lstmCellP, [gates, c], null);
}
/**
 * The VJP of one LSTM step: gates [...B, 4H], c [...B, H] and the cotangent [dh', dc'] [...B, 2H] ->
 * [d gates, dc] [...B, 5H].
 */
export function lstmCellBackward(gates: Tensor, c: Tensor, ct: Tensor): Tensor {
  return bind(lstmCellBackwardP, [gates, c, ct], null);
}
/** One fused GRU step: xp, hp [...B, 3H] (r, z, n), h [...B, H] -> h' [...B, H]. */
export function gruCell(xp: Tensor, hp: Tensor, h: Tensor): Tensor {
  return bind(gruCellP, [xp, hp, h], null);
}
