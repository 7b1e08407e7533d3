/**
 * Fused scaled dot-product attention as primitives (FlashAttention's forward and backward, one kernel each:
 * Backend.attention, Backend.attentionBackward).
 *
 * `sdpa(q, k, v[, mask])`, q [...B, L, E], k [...B, S, E], v [...B, S, Ev], mask [...B, L, S] (additive; one
 * batch shape B, broadcasting is the caller's, as stride-0 views), params { scale, causal }:
 *   S = scale q k^T + mask (and -Infinity where j > i when causal),  P = softmax(S) by rows,
 *   output [...B, L, Ev + 1] = [P v, lse] with lse = logsumexp(S) by rows.
 * A primitive has one output, so the row logsumexp the backward pass needs rides along as a last column (the
 * public op slices it off; a cotangent reaching it is handled exactly: d lse_i / d S_ij = P_ij).
 *
 * `sdpaBackward(q, k, v[, mask], out, ct)` is its VJP: the packed gradients [...B, L E + S E + S Ev] (dq, dk,
 * dv row-major per batch entry). With O, lse = out's columns and dO, dl = ct's:
 *   D = rowsum(dO * O) - dl,  dS = P * (dO v^T - D),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO
 * (P = exp(S - lse) recomputed by the kernel block by block). The mask's cotangent is dS itself; it is
 * composed from ops (it is an [L, S] matrix anyway), and only when a mask needs a gradient.
 *
 * The JVP of sdpa and both rules of sdpaBackward are written in ops (they materialise P: fine for forward mode
 * and for second order), so derivatives nest to any order. Batching: every leading axis is a batch axis of the
 * kernels, so vmap binds once on the batched operands (batchAll).
 *
 * 16-bit operands (float16 / bfloat16 q, k, v and mask, one dtype: autocast's attention): the scores, the
 * softmax and both products accumulate in float32, and the packed output is float32 (the attention output
 * unrounded, for the caller to round once to the 16-bit dtype, and the logsumexp, which the backward pass
 * needs in float32: rounded to bfloat16 it would be off by up to |lse| 2^-9, scaling every recomputed
 * probability by as much). sdpaBackward then takes that float32 output and a float32 cotangent and returns
 * the packed gradients in float32, which sdpa's VJP rounds once each to the operands' 16-bit dtype (PyTorch's
 * convention: gradients in the input dtype). (Packed float32 and rounded per gradient, rather than packed in
 * the 16-bit dtype: a float32 strided gradient rounds through the backend's copy and cast, where a 16-bit one
 * would widen through the js strided copy; measured 3-4% faster per attention step.) Backends with 16-bit
 * attention kernels (HalfKernels.attention: native, which reads q, k, v in place and runs bfloat16 products on
 * vdpbf16ps, rounding P to bfloat16 for P v) get the 16-bit operands; the others get float32 widenings from the
 * primitive layer (src/prims/half.ts; O(L E) copies, still no [L, S] matrix). The derivative rules widen
 * 16-bit operands to float32 first.
 */
import type { Aval, MaybeZero, Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { bind } from "../core/trace.ts";
import { allocTyped, type DType, isHalf } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { batchAll } from "./batching.ts";
import { castTo } from "./elementwise.ts";
import { allocOut, fromData, getBackend, instantiate, viewOf } from "./impl.ts";
import { concat, reshape } from "./movement.ts";
import { rule } from "./rules.ts";

export interface SdpaParams {
  /** Multiplies q k^T. */
  readonly scale: number;
  /** Keep only the scores j <= i (top-left aligned), as if an additive -Infinity mask covered j > i. */
  readonly causal: boolean;
}

function checkArgs(
  name: string,
  avals: readonly Aval[],
  withMask: boolean,
): { lead: number[]; l: number; s: number; e: number; ev: number } {
  const [q, k, v] = avals;
  const mask = withMask ? avals[3] : null;
  const shapes = () => avals.map((a) => fmtShape(a.shape)).join(", ");
  const dtype = q.dtype;
  if (dtype !== "float32" && dtype !== "float64" && !isHalf(dtype)) {
    throw new DTypeError(`${name}: expected float32, float64, float16 or bfloat16 q, k, v, got ${q.dtype}`);
  }
  for (const a of avals) {
    if (a.dtype !== dtype) {
      throw new DTypeError(
        `${name}: q, k, v (and mask) must share one dtype, got ${avals.map((x) => x.dtype).join(", ")}`,
      );
    }
  }
  const nd = q.shape.length;
  const sameLead = (a: Aval) =>
    a.shape.length === nd && a.shape.slice(0, nd - 2).every((d, i) => d === q.shape[i]);
  if (nd < 2 || !sameLead(k) || !sameLead(v) || (mask !== null && !sameLead(mask))) {
    throw new ShapeError(
      `${name}: expected q [...B, L, E], k [...B, S, E], v [...B, S, Ev]${withMask ? ", mask [...B, L, S]" : ""} with one batch shape B, got ${shapes()}`,
    );
  }
  const l = q.shape[nd - 2];
  const e = q.shape[nd - 1];
  const s = k.shape[nd - 2];
  const ev = v.shape[nd - 1];
  if (
    k.shape[nd - 1] !== e ||
    v.shape[nd - 2] !== s ||
    (mask !== null && (mask.shape[nd - 2] !== l || mask.shape[nd - 1] !== s))
  ) {
    throw new ShapeError(
      `${name}: expected q [...B, L, E], k [...B, S, E], v [...B, S, Ev]${withMask ? ", mask [...B, L, S]" : ""}, got ${shapes()}`,
    );
  }
  return { lead: q.shape.slice(0, nd - 2), l, s, e, ev };
}

/** The additive [L, S] causal bias (0 where j <= i, -Infinity above the diagonal), a constant. */
function causalBias(l: number, s: number, dtype: DType): Tensor {
  const d = allocTyped(dtype, l * s);
  for (let i = 0; i < l; i++) for (let j = i + 1; j < s; j++) d[i * s + j] = -Infinity;
  return fromData(d, [l, s], dtype);
}

/** The scores S = scale q k^T (+ mask) (+ causal bias), materialised: for the derivative rules only. */
function scores(q: Tensor, k: Tensor, mask: Tensor | null, p: SdpaParams): Tensor {
  let sc = q.matmul(k.transpose(-2, -1)).mul(p.scale);
  if (mask !== null) sc = sc.add(mask);
  if (p.causal) sc = sc.add(causalBias(q.shape[q.ndim - 2], k.shape[k.ndim - 2], q.dtype));
  return sc;
}

/** The dtype of sdpa's output (and of sdpaBackward's operands out, ct and its output) for operands of `d`. */
export function sdpaOutDtype(d: DType): DType {
  return isHalf(d) ? "float32" : d;
}
/** A 16-bit operand widened to float32 for the derivative rules (others as they are). */
const wide = (t: Tensor): Tensor => (isHalf(t.dtype) ? castTo(t, "float32") : t);
/** A float32 gradient as the cotangent of an operand of dtype `d` (rounded once when `d` is 16-bit). */
const asDtype = (t: Tensor, d: DType): Tensor => castTo(t, d);

const rowSum = (x: Tensor) => x.sum(-1, true);
const lastDim = (t: Tensor | Aval) => t.shape[t.shape.length - 1];
/** [..., L, Ev + 1] -> [..., L, Ev] and [..., L, 1]. */
function split(packed: Tensor): [Tensor, Tensor] {
  const ev = lastDim(packed) - 1;
  return [packed.narrow(-1, 0, ev), packed.narrow(-1, ev, 1)];
}
/** Each of xs [...B, a, b] flattened to [...B, a b] and joined along the last axis. */
function pack(xs: readonly Tensor[]): Tensor {
  const flat = xs.map((x) =>
    reshape(x, [...x.shape.slice(0, -2), x.shape[x.ndim - 2] * x.shape[x.ndim - 1]]),
  );
  return concat(flat, flat[0].ndim - 1);
}
/** The packed gradients [...B, L E + S E + S Ev] as dq [...B, L, E], dk [...B, S, E], dv [...B, S, Ev]. */
function unpack(g: Tensor, l: number, s: number, e: number, ev: number): [Tensor, Tensor, Tensor] {
  const lead = g.shape.slice(0, -1);
  return [
    reshape(g.narrow(-1, 0, l * e), [...lead, l, e]),
    reshape(g.narrow(-1, l * e, s * e), [...lead, s, e]),
    reshape(g.narrow(-1, l * e + s * e, s * ev), [...lead, s, ev]),
  ];
}
const orZero = (t: MaybeZero): Tensor => instantiate(t);
const sumAll = (ts: readonly (Tensor | null)[], like: Aval): MaybeZero => {
  const parts = ts.filter((t): t is Tensor => t !== null);
  return parts.length === 0 ? new Zero(like.shape, like.dtype) : parts.reduce((a, b) => a.add(b));
};

/**
 * The fused attention primitive (see the module header): output [...B, L, Ev + 1], attention output and row
 * logsumexp. Forward mode: tS = scale (tq k^T + q tk^T) + tmask, tlse = rowsum(P tS),
 * tO = (P (tS - tlse)) v + P tv. Reverse mode: sdpaBackward (the fused kernel), plus dS for a mask.
 */
export const sdpaP: Primitive<SdpaParams> = {
  name: "sdpa",
  abstract(args, _p) {
    if (args.length !== 3 && args.length !== 4)
      throw new ShapeError(`sdpa: expected 3 or 4 operands, got ${args.length}`);
    const { lead, l, ev } = checkArgs("sdpa", args, args.length === 4);
    return { shape: [...lead, l, ev + 1], dtype: sdpaOutDtype(args[0].dtype) };
  },
  impl(args, p, out) {
    const o = allocOut(out);
    const mask = args.length === 4 ? viewOf(args[3]) : null;
    getBackend().attention(
      viewOf(args[0]),
      viewOf(args[1]),
      viewOf(args[2]),
      mask,
      p.causal,
      p.scale,
      o._data!,
    );
    return o;
  },
  batch: batchAll<SdpaParams>(),
  derivative: rule<SdpaParams>(
    (args0, ts0, out, p) => {
      const args = args0.map(wide);
      const ts = ts0.map((t) => (isZero(t) ? t : wide(t)));
      const [q, k, v] = args;
      const mask = args.length === 4 ? args[3] : null;
      const [tq, tk, tv] = ts;
      const tm = args.length === 4 ? ts[3] : null;
      const lse = split(out)[1];
      const tsParts: Tensor[] = [];
      if (!isZero(tq)) tsParts.push(tq.matmul(k.transpose(-2, -1)).mul(p.scale));
      if (!isZero(tk)) tsParts.push(q.matmul(tk.transpose(-2, -1)).mul(p.scale));
      if (tm !== null && !isZero(tm)) tsParts.push(tm);
      const P = scores(q, k, mask, p).sub(lse).exp();
      const oParts: Tensor[] = [];
      let tl: Tensor | null = null;
      if (tsParts.length > 0) {
        const tS = tsParts.reduce((a, b) => a.add(b));
        tl = rowSum(P.mul(tS));
        oParts.push(P.mul(tS.sub(tl)).matmul(v));
      }
      if (!isZero(tv)) oParts.push(P.matmul(tv));
      const tO = oParts.reduce((a, b) => a.add(b));
      return concat([tO, tl ?? instantiate(new Zero([...tO.shape.slice(0, -1), 1], tO.dtype))], tO.ndim - 1);
    },
    (ct, args0, out, p, needs, avals) => {
      const args = (args0 as Tensor[]).map(wide);
      const [q, k, v] = args;
      const mask = args.length === 4 ? args[3] : null;
      const o = out!;
      const [l, e] = avals[0].shape.slice(-2);
      const [s, ev] = avals[2].shape.slice(-2);
      const grads: MaybeZero[] = avals.map((a) => new Zero(a.shape, a.dtype));
      if (needs[0] || needs[1] || needs[2]) {
        // the operands as they are; 16-bit ones get their float32 gradients rounded once to their dtype
        const [q0, k0, v0] = args0 as Tensor[];
        const m0 = args0.length === 4 ? (args0[3] as Tensor) : null;
        const g = sdpaBackward(q0, k0, v0, m0, o, ct, p);
        const [dq, dk, dv] = unpack(g, l, s, e, ev);
        grads[0] = asDtype(dq, avals[0].dtype);
        grads[1] = asDtype(dk, avals[1].dtype);
        grads[2] = asDtype(dv, avals[2].dtype);
      }
      if (mask !== null && needs[3]) {
        // dS = P (dO v^T - D), D = rowsum(dO O) - dlse: the [L, S] cotangent of an additive mask
        const [oo, lse] = split(o);
        const [dO, dl] = split(ct);
        const P = scores(q, k, mask, p).sub(lse).exp();
        grads[3] = asDtype(
          P.mul(dO.matmul(v.transpose(-2, -1)).sub(rowSum(dO.mul(oo)).sub(dl))),
          avals[3].dtype,
        );
      }
      return grads;
    },
    { saveInputs: true, saveOutput: true },
  ),
};

/**
 * The VJP of sdpa as a primitive (one kernel, Backend.attentionBackward): operands q, k, v[, mask], out (sdpa's
 * packed output) and ct (its cotangent, the same shape); output the packed [dq, dk, dv]. Its own rules, from
 * the formulas of the module header with P = exp(S - lse), dP = dO v^T, D = rowsum(dO O) - dl,
 * dS = P (dP - D):
 *   forward: tS = scale (tq k^T + q tk^T) + tmask, tP = P (tS - tlse), tD = rowsum(tdO O + dO tO) - tdl,
 *            tdS = tP (dP - D) + P (tdO v^T + dO tv^T - tD),
 *            t(dq) = scale (tdS k + dS tk), t(dk) = scale (tdS^T q + dS^T tq), t(dv) = tP^T dO + P^T tdO;
 *   reverse, from gq, gk, gv: gdS = scale (gq k^T + q gk^T), gP = dO gv^T + gdS (dP - D), gD = -rowsum(gdS P),
 *            gS = gP P, then q <- scale (dS gk + gS k), k <- scale (dS^T gq + gS^T q), v <- (gdS P)^T dO,
 *            mask <- gS, O <- gD dO, lse <- -rowsum(gS), dO <- P gv + (gdS P) v + gD O, dl <- -gD.
 */
export const sdpaBackwardP: Primitive<SdpaParams> = {
  name: "sdpaBackward",
  abstract(args, _p) {
    if (args.length !== 5 && args.length !== 6) {
      throw new ShapeError(`sdpaBackward: expected 5 or 6 operands, got ${args.length}`);
    }
    const withMask = args.length === 6;
    const { lead, l, s, e, ev } = checkArgs("sdpaBackward", args.slice(0, withMask ? 4 : 3), withMask);
    const want = [...lead, l, ev + 1];
    const od = sdpaOutDtype(args[0].dtype);
    for (const a of args.slice(-2)) {
      if (a.dtype !== od || a.shape.length !== want.length || a.shape.some((d, i) => d !== want[i])) {
        throw new ShapeError(
          `sdpaBackward: the output and its cotangent must be ${fmtShape(want)} ${od}, got ${fmtShape(a.shape)} ${a.dtype}`,
        );
      }
    }
    return { shape: [...lead, l * e + s * e + s * ev], dtype: od };
  },
  impl(args, p, out) {
    const o = allocOut(out);
    const n = args.length;
    const mask = n === 6 ? viewOf(args[3]) : null;
    getBackend().attentionBackward(
      viewOf(args[0]),
      viewOf(args[1]),
      viewOf(args[2]),
      mask,
      viewOf(args[n - 2]),
      viewOf(args[n - 1]),
      p.causal,
      p.scale,
      o._data!,
    );
    return o;
  },
  batch: batchAll<SdpaParams>(),
  derivative: rule<SdpaParams>(
    (args0, ts0, _out, p) => {
      const args = args0.map(wide);
      const ts = ts0.map((t) => (isZero(t) ? t : wide(t)));
      const n = args.length;
      const withMask = n === 6;
      const [q, k, v] = args;
      const mask = withMask ? args[3] : null;
      const [O, lse] = split(args[n - 2]);
      const [dO, dl] = split(args[n - 1]);
      const [tq, tk, tv] = ts.slice(0, 3).map(orZero);
      const tm = withMask ? orZero(ts[3]) : null;
      const [tO, tl] = split(orZero(ts[n - 2]));
      const [tdO, tdl] = split(orZero(ts[n - 1]));
      const c = p.scale;
      const P = scores(q, k, mask, p).sub(lse).exp();
      const dP = dO.matmul(v.transpose(-2, -1));
      const D = rowSum(dO.mul(O)).sub(dl);
      const dS = P.mul(dP.sub(D));
      let tS = tq
        .matmul(k.transpose(-2, -1))
        .add(q.matmul(tk.transpose(-2, -1)))
        .mul(c);
      if (tm !== null) tS = tS.add(tm);
      const tP = P.mul(tS.sub(tl));
      const tD = rowSum(tdO.mul(O).add(dO.mul(tO))).sub(tdl);
      const tdP = tdO.matmul(v.transpose(-2, -1)).add(dO.matmul(tv.transpose(-2, -1)));
      const tdS = tP.mul(dP.sub(D)).add(P.mul(tdP.sub(tD)));
      const tdq = tdS.matmul(k).add(dS.matmul(tk)).mul(c);
      const tdk = tdS.transpose(-2, -1).matmul(q).add(dS.transpose(-2, -1).matmul(tq)).mul(c);
      const tdv = tP.transpose(-2, -1).matmul(dO).add(P.transpose(-2, -1).matmul(tdO));
      return pack([tdq, tdk, tdv]);
    },
    (u, args0, _out, p, needs, avals) => {
      const args = (args0 as Tensor[]).map(wide);
      const n = args.length;
      const withMask = n === 6;
      const [q, k, v] = args;
      const mask = withMask ? args[3] : null;
      const [O, lse] = split(args[n - 2]!);
      const [dO, dl] = split(args[n - 1]!);
      const [l, e] = avals[0].shape.slice(-2);
      const [s, ev] = avals[2].shape.slice(-2);
      const [gq, gk, gv] = unpack(u, l, s, e, ev);
      const c = p.scale;
      const kT = k.transpose(-2, -1);
      const P = scores(q, k, mask, p).sub(lse).exp();
      const dP = dO.matmul(v.transpose(-2, -1));
      const D = rowSum(dO.mul(O)).sub(dl);
      const dS = P.mul(dP.sub(D));
      const gdS = gq
        .matmul(kT)
        .add(q.matmul(gk.transpose(-2, -1)))
        .mul(c);
      const gdSP = gdS.mul(P);
      const gD = rowSum(gdSP).neg();
      const gP = dO.matmul(gv.transpose(-2, -1)).add(gdS.mul(dP.sub(D)));
      const gS = gP.mul(P);
      const grads: MaybeZero[] = avals.map((a) => new Zero(a.shape, a.dtype));
      const as = (i: number, t: Tensor) => asDtype(t, avals[i].dtype);
      if (needs[0]) grads[0] = as(0, dS.matmul(gk).add(gS.matmul(k)).mul(c));
      if (needs[1])
        grads[1] = as(1, dS.transpose(-2, -1).matmul(gq).add(gS.transpose(-2, -1).matmul(q)).mul(c));
      if (needs[2]) grads[2] = as(2, gdSP.transpose(-2, -1).matmul(dO));
      if (withMask && needs[3]) grads[3] = as(3, gS);
      if (needs[n - 2]) grads[n - 2] = concat([gD.mul(dO), rowSum(gS).neg()], O.ndim - 1);
      if (needs[n - 1]) {
        const gdO = sumAll([P.matmul(gv), gdSP.matmul(v), gD.mul(O)], O);
        grads[n - 1] = concat([gdO as Tensor, gD.neg()], O.ndim - 1);
      }
      return grads;
    },
    { saveInputs: true, saveOutput: false },
  ),
};

/** This module's primitives by name (merged into the registry by src/prims/index.ts). */
export const attentionPrimitives = { sdpa: sdpaP, sdpaBackward: sdpaBackwardP };

/**
 * Bind sdpa: the packed [...B, L, Ev + 1] output (attention output, then the row logsumexp). q, k, v and mask
 * (or null) must already share the batch shape B (broadcast views are fine).
 */
export function sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, p: SdpaParams): Tensor {
  return bind(sdpaP, mask === null ? [q, k, v] : [q, k, v, mask], p);
}

/** Bind sdpaBackward: the packed [dq, dk, dv] of sdpa (see sdpaBackwardP). */
export function sdpaBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  out: Tensor,
  ct: Tensor,
  p: SdpaParams,
): Tensor {
  return bind(sdpaBackwardP, mask === null ? [q, k, v, out, ct] : [q, k, v, mask, out, ct], p);
}
