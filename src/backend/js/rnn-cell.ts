/**
 * Fused recurrent cells of the js reference backend (Backend.lstmCell, lstmCellBackward, gruCell,
 * gruCellBackward): the elementwise part of one LSTM or GRU step after its two matmuls, and its VJP, in one pass
 * over the hidden units of each row. Operands are [...B, k H] views (any strides); arithmetic is float64, stores
 * round into a float32 out.
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import { sigmoid } from "./scalar.ts";
import { assertOutSize } from "./strided.ts";

/** Rows (the leading axes, row-major) of views of one leading shape, each `widths[k] * H` wide. */
function rowsOf(
  op: string,
  vs: readonly View[],
  widths: readonly number[],
): { n: number; h: number; offs: Float64Array[] } {
  const x = vs[0];
  const nd = x.shape.length;
  const f32 = x.data instanceof Float32Array;
  if (!f32 && !(x.data instanceof Float64Array))
    throw internal(`${op}: float32 or float64 operands expected`);
  if (nd < 1) throw internal(`${op}: operands must have rank >= 1`);
  const h = x.shape[nd - 1] / widths[0];
  if (!Number.isInteger(h))
    throw internal(`${op}: the first operand's last dim ${x.shape[nd - 1]} is not ${widths[0]} H`);
  let n = 1;
  for (let a = 0; a < nd - 1; a++) n *= x.shape[a];
  const offs = vs.map((v, k) => {
    let ok =
      v.shape.length === nd && v.shape[nd - 1] === widths[k] * h && v.data instanceof Float32Array === f32;
    for (let a = 0; ok && a < nd - 1; a++) ok = v.shape[a] === x.shape[a];
    if (!ok)
      throw internal(
        `${op}: operand ${k} must be [${[...x.shape.slice(0, -1), widths[k] * h]}], got [${v.shape}]`,
      );
    const o = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      let off = v.offset;
      let rr = r;
      for (let a = nd - 2; a >= 0; a--) {
        off += (rr % v.shape[a]) * v.strides[a];
        rr = Math.floor(rr / v.shape[a]);
      }
      o[r] = off;
    }
    return o;
  });
  return { n, h, offs };
}

const last = (v: View) => v.strides[v.shape.length - 1];

/** out = [h', c'] of one LSTM step (see Backend.lstmCell). */
export function lstmCell(gates: View, c: View, out: TypedArray): void {
  const { n, h, offs } = rowsOf("lstmCell", [gates, c], [4, 1]);
  assertOutSize("lstmCell", out, n * 2 * h);
  const [g, cd] = [gates.data, c.data];
  const [sg, sc] = [last(gates), last(c)];
  for (let r = 0; r < n; r++) {
    const [og, oc] = [offs[0][r], offs[1][r]];
    for (let j = 0; j < h; j++) {
      const i = sigmoid(g[og + j * sg]);
      const f = sigmoid(g[og + (h + j) * sg]);
      const gg = Math.tanh(g[og + (2 * h + j) * sg]);
      const o = sigmoid(g[og + (3 * h + j) * sg]);
      const cp = f * cd[oc + j * sc] + i * gg;
      out[r * 2 * h + j] = o * Math.tanh(cp);
      out[r * 2 * h + h + j] = cp;
    }
  }
}

/** out = [d gates, dc] of one LSTM step (see Backend.lstmCellBackward). */
export function lstmCellBackward(gates: View, c: View, ct: View, out: TypedArray): void {
  const { n, h, offs } = rowsOf("lstmCellBackward", [gates, c, ct], [4, 1, 2]);
  assertOutSize("lstmCellBackward", out, n * 5 * h);
  const [g, cd, td] = [gates.data, c.data, ct.data];
  const [sg, sc, st] = [last(gates), last(c), last(ct)];
  for (let r = 0; r < n; r++) {
    const [og, oc, ot] = [offs[0][r], offs[1][r], offs[2][r]];
    const base = r * 5 * h;
    for (let j = 0; j < h; j++) {
      const i = sigmoid(g[og + j * sg]);
      const f = sigmoid(g[og + (h + j) * sg]);
      const gg = Math.tanh(g[og + (2 * h + j) * sg]);
      const o = sigmoid(g[og + (3 * h + j) * sg]);
      const c0 = cd[oc + j * sc];
      const tc = Math.tanh(f * c0 + i * gg);
      const dh = td[ot + j * st];
      const dcp = td[ot + (h + j) * st] + dh * o * (1 - tc * tc);
      out[base + j] = dcp * gg * (i * (1 - i));
      out[base + h + j] = dcp * c0 * (f * (1 - f));
      out[base + 2 * h + j] = dcp * i * (1 - gg * gg);
      out[base + 3 * h + j] = dh * tc * (o * (1 - o));
      out[base + 4 * h + j] = dcp * f;
    }
  }
}

/** out = h' of one GRU step (see Backend.gruCell). */
export function gruCell(xp: View, hp: View, hv: View, out: TypedArray): void {
  const { n, h, offs } = rowsOf("gruCell", [xp, hp, hv], [3, 3, 1]);
  assertOutSize("gruCell", out, n * h);
  const [xd, hd, h0] = [xp.data, hp.data, hv.data];
  const [sx, sh, s0] = [last(xp), last(hp), last(hv)];
  for (let r = 0; r < n; r++) {
    const [ox, oh, o0] = [offs[0][r], offs[1][r], offs[2][r]];
    for (let j = 0; j < h; j++) {
      const rg = sigmoid(xd[ox + j * sx] + hd[oh + j * sh]);
      const z = sigmoid(xd[ox + (h + j) * sx] + hd[oh + (h + j) * sh]);
      const nn = Math.tanh(xd[ox + (2 * h + j) * sx] + rg * hd[oh + (2 * h + j) * sh]);
      out[r * h + j] = nn + z * (h0[o0 + j * s0] - nn);
    }
  }
}

/** out = [dxp, dhp, dh] of one GRU step (see Backend.gruCellBackward). */
export function gruCellBackward(xp: View, hp: View, hv: View, ct: View, out: TypedArray): void {
  const { n, h, offs } = rowsOf("gruCellBackward", [xp, hp, hv, ct], [3, 3, 1, 1]);
  assertOutSize("gruCellBackward", out, n * 7 * h);
  const [xd, hd, h0, td] = [xp.data, hp.data, hv.data, ct.data];
  const [sx, sh, s0, st] = [last(xp), last(hp), last(hv), last(ct)];
  for (let r = 0; r < n; r++) {
    const [ox, oh, o0, ot] = [offs[0][r], offs[1][r], offs[2][r], offs[3][r]];
    const base = r * 7 * h;
    for (let j = 0; j < h; j++) {
      const hn = hd[oh + (2 * h + j) * sh];
      const rg = sigmoid(xd[ox + j * sx] + hd[oh + j * sh]);
      const z = sigmoid(xd[ox + (h + j) * sx] + hd[oh + (h + j) * sh]);
      const nn = Math.tanh(xd[ox + (2 * h + j) * sx] + rg * hn);
      const c = td[ot + j * st];
      const dnp = c * (1 - z) * (1 - nn * nn);
      const dzp = c * (h0[o0 + j * s0] - nn) * (z * (1 - z));
      const drp = dnp * hn * (rg * (1 - rg));
      out[base + j] = drp;
      out[base + h + j] = dzp;
      out[base + 2 * h + j] = dnp;
      out[base + 3 * h + j] = drp;
      out[base + 4 * h + j] = dzp;
      out[base + 5 * h + j] = dnp * rg;
      out[base + 6 * h + j] = c * z;
    }
  }
}
