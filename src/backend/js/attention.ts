/**
 * Fused scaled dot-product attention of the js reference backend (Backend.attention, Backend.attentionBackward):
 * the specification of the flash-style kernels of the other backends.
 *
 * Forward: each query row runs over the keys in blocks of BLOCK with an online softmax (FlashAttention): the
 * running max m, the running sum l of exp(s - m) and the unnormalised output acc are rescaled by exp(m - m')
 * whenever a block raises the max, so no [L, S] score matrix exists; the row's logsumexp m + log(l) is written
 * beside its output for the backward pass. Backward: the probabilities are recomputed from that logsumexp,
 * p = exp(s - lse), one score at a time (FlashAttention-2), with D_i = dout_i . o_i - dlse_i folding the
 * softmax's row sum into one number per row. All arithmetic is float64; stores round into a float32 out.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import { assertOutSize } from "./strided.ts";

/** Keys per block of the forward's online softmax. */
const BLOCK = 64;

/** The shapes of one attention call, checked (the primitive's shape rule already did; this is the kernel's). */
interface Dims {
  /** Batch offsets of q, k, v, mask, o, dout: element b of each list is that view's offset of batch entry b. */
  readonly nb: number;
  readonly l: number;
  readonly s: number;
  readonly e: number;
  readonly ev: number;
}

function checkFloat(op: string, vs: readonly (View | null)[]): void {
  const d = vs[0]!.data;
  const f32 = d instanceof Float32Array;
  if (!f32 && !(d instanceof Float64Array)) throw internal(`${op}: float32 or float64 inputs expected`);
  for (const v of vs) {
    if (v !== null && v.data instanceof Float32Array !== f32) throw internal(`${op}: inputs differ in dtype`);
  }
}

/** Check q [...B, L, E], k [...B, S, E], v [...B, S, Ev], mask [...B, L, S] and return the sizes. */
function dims(op: string, q: View, k: View, v: View, mask: View | null): Dims {
  const nd = q.shape.length;
  const bad = () =>
    internal(
      `${op}: expected q [...B, L, E], k [...B, S, E], v [...B, S, Ev], mask [...B, L, S], got [${q.shape}], [${k.shape}], [${v.shape}]${mask === null ? "" : `, [${mask.shape}]`}`,
    );
  if (nd < 2 || k.shape.length !== nd || v.shape.length !== nd) throw bad();
  if (mask !== null && mask.shape.length !== nd) throw bad();
  let nb = 1;
  for (let d = 0; d < nd - 2; d++) {
    const n = q.shape[d];
    if (k.shape[d] !== n || v.shape[d] !== n || (mask !== null && mask.shape[d] !== n)) throw bad();
    nb *= n;
  }
  const l = q.shape[nd - 2];
  const e = q.shape[nd - 1];
  const s = k.shape[nd - 2];
  const ev = v.shape[nd - 1];
  if (k.shape[nd - 1] !== e || v.shape[nd - 2] !== s) throw bad();
  if (mask !== null && (mask.shape[nd - 2] !== l || mask.shape[nd - 1] !== s)) throw bad();
  return { nb, l, s, e, ev };
}

/** Offsets of each batch entry (the leading nd - 2 axes, row-major) in view v. */
function batchOffsets(v: View, nb: number): Float64Array {
  const nd = v.shape.length - 2;
  const offs = new Float64Array(nb);
  const idx = new Array<number>(nd).fill(0);
  let off = v.offset;
  for (let b = 0; b < nb; b++) {
    offs[b] = off;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      off += v.strides[d];
      if (idx[d] < v.shape[d]) break;
      off -= idx[d] * v.strides[d];
      idx[d] = 0;
    }
  }
  return offs;
}

/** out = attention(q, k, v, mask) with lse in the last column (see Backend.attention). */
export function attention(
  q: View,
  k: View,
  v: View,
  mask: View | null,
  causal: boolean,
  scale: number,
  out: TypedArray,
): void {
  const op = "attention";
  checkFloat(op, [q, k, v, mask]);
  const { nb, l, s, e, ev } = dims(op, q, k, v, mask);
  const w = ev + 1;
  assertOutSize(op, out, nb * l * w);
  if (nb * l === 0) return;
  const nd = q.shape.length;
  const [qd, kd, vd, md] = [q.data, k.data, v.data, mask?.data];
  const [qsl, qse] = [q.strides[nd - 2], q.strides[nd - 1]];
  const [ksl, kse] = [k.strides[nd - 2], k.strides[nd - 1]];
  const [vsl, vse] = [v.strides[nd - 2], v.strides[nd - 1]];
  const [msl, mss] = mask === null ? [0, 0] : [mask.strides[nd - 2], mask.strides[nd - 1]];
  const [qo, ko, vo] = [batchOffsets(q, nb), batchOffsets(k, nb), batchOffsets(v, nb)];
  const mo = mask === null ? null : batchOffsets(mask, nb);
  const qi = new Float64Array(e);
  const acc = new Float64Array(ev);
  const sc = new Float64Array(BLOCK);
  for (let b = 0; b < nb; b++) {
    for (let i = 0; i < l; i++) {
      const qb = qo[b] + i * qsl;
      for (let c = 0; c < e; c++) qi[c] = qd[qb + c * qse];
      const mrow = mo === null ? 0 : mo[b] + i * msl;
      const end = causal ? Math.min(s, i + 1) : s;
      let m = -Infinity;
      let sum = 0;
      acc.fill(0);
      for (let j0 = 0; j0 < end; j0 += BLOCK) {
        const n = Math.min(BLOCK, end - j0);
        let bm = -Infinity;
        for (let t = 0; t < n; t++) {
          const kb = ko[b] + (j0 + t) * ksl;
          let dotv = 0;
          for (let c = 0; c < e; c++) dotv += qi[c] * kd[kb + c * kse];
          let x = scale * dotv;
          if (md !== undefined) x += md[mrow + (j0 + t) * mss];
          sc[t] = x;
          // Math.max propagates NaN, which then reaches every output of the row
          bm = Math.max(bm, x);
        }
        const mNew = Math.max(m, bm);
        if (mNew === -Infinity) continue; // every score so far masked: nothing to add yet
        const alpha = Math.exp(m - mNew);
        sum *= alpha;
        for (let c = 0; c < ev; c++) acc[c] *= alpha;
        for (let t = 0; t < n; t++) {
          const p = Math.exp(sc[t] - mNew);
          sum += p;
          const vb = vo[b] + (j0 + t) * vsl;
          for (let c = 0; c < ev; c++) acc[c] += p * vd[vb + c * vse];
        }
        m = mNew;
      }
      const ob = (b * l + i) * w;
      if (end === 0) {
        for (let c = 0; c < ev; c++) out[ob + c] = 0;
        out[ob + ev] = -Infinity;
      } else if (sum === 0) {
        for (let c = 0; c < ev; c++) out[ob + c] = Number.NaN;
        out[ob + ev] = -Infinity;
      } else {
        for (let c = 0; c < ev; c++) out[ob + c] = acc[c] / sum;
        out[ob + ev] = m + Math.log(sum);
      }
    }
  }
}

/** out = [dq, dk, dv] per batch entry (see Backend.attentionBackward). */
export function attentionBackward(
  q: View,
  k: View,
  v: View,
  mask: View | null,
  o: View,
  dout: View,
  causal: boolean,
  scale: number,
  out: TypedArray,
): void {
  const op = "attentionBackward";
  checkFloat(op, [q, k, v, mask, o, dout]);
  const { nb, l, s, e, ev } = dims(op, q, k, v, mask);
  const nd = q.shape.length;
  for (const [name, t] of [
    ["o", o],
    ["dout", dout],
  ] as const) {
    let ok = t.shape.length === nd && t.shape[nd - 2] === l && t.shape[nd - 1] === ev + 1;
    for (let d = 0; ok && d < nd - 2; d++) ok = t.shape[d] === q.shape[d];
    if (!ok)
      throw internal(
        `${op}: ${name} must be [...B, L, Ev + 1] = [${[...q.shape.slice(0, -1), ev + 1]}], got [${t.shape}]`,
      );
  }
  const per = l * e + s * e + s * ev;
  assertOutSize(op, out, nb * per);
  if (nb * per === 0) return;
  const [qd, kd, vd, md, od, gd] = [q.data, k.data, v.data, mask?.data, o.data, dout.data];
  const [qsl, qse] = [q.strides[nd - 2], q.strides[nd - 1]];
  const [ksl, kse] = [k.strides[nd - 2], k.strides[nd - 1]];
  const [vsl, vse] = [v.strides[nd - 2], v.strides[nd - 1]];
  const [osl, ose] = [o.strides[nd - 2], o.strides[nd - 1]];
  const [gsl, gse] = [dout.strides[nd - 2], dout.strides[nd - 1]];
  const [msl, mss] = mask === null ? [0, 0] : [mask.strides[nd - 2], mask.strides[nd - 1]];
  const [qo, ko, vo, oo, go] = [q, k, v, o, dout].map((t) => batchOffsets(t, nb));
  const mo = mask === null ? null : batchOffsets(mask, nb);
  const dq = new Float64Array(l * e);
  const dk = new Float64Array(s * e);
  const dv = new Float64Array(s * ev);
  const qi = new Float64Array(e);
  const gi = new Float64Array(ev);
  for (let b = 0; b < nb; b++) {
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    for (let i = 0; i < l; i++) {
      const qb = qo[b] + i * qsl;
      for (let c = 0; c < e; c++) qi[c] = qd[qb + c * qse];
      const gb = go[b] + i * gsl;
      const ob = oo[b] + i * osl;
      let dd = 0;
      for (let c = 0; c < ev; c++) {
        gi[c] = gd[gb + c * gse];
        dd += gi[c] * od[ob + c * ose];
      }
      dd -= gd[gb + ev * gse];
      const lse = od[ob + ev * ose];
      const mrow = mo === null ? 0 : mo[b] + i * msl;
      const end = causal ? Math.min(s, i + 1) : s;
      for (let j = 0; j < end; j++) {
        const kb = ko[b] + j * ksl;
        const vb = vo[b] + j * vsl;
        let dotv = 0;
        for (let c = 0; c < e; c++) dotv += qi[c] * kd[kb + c * kse];
        let x = scale * dotv;
        if (md !== undefined) x += md[mrow + j * mss];
        const p = Math.exp(x - lse);
        let dp = 0;
        for (let c = 0; c < ev; c++) {
          dv[j * ev + c] += p * gi[c];
          dp += gi[c] * vd[vb + c * vse];
        }
        const ds = scale * p * (dp - dd);
        for (let c = 0; c < e; c++) {
          dq[i * e + c] += ds * kd[kb + c * kse];
          dk[j * e + c] += ds * qi[c];
        }
      }
    }
    const base = b * per;
    for (let t = 0; t < l * e; t++) out[base + t] = dq[t];
    for (let t = 0; t < s * e; t++) out[base + l * e + t] = dk[t];
    for (let t = 0; t < s * ev; t++) out[base + l * e + s * e + t] = dv[t];
  }
}
