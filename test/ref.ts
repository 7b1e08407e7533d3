/**
 * Float64 reference implementations for the op table: plain loops over nested-index arrays, written
 * independently of chainrule's kernels (no strides, no backends), so they can serve as the oracle.
 */
import type { Tensor } from "../src/index.ts";

export interface Nd {
  shape: number[];
  data: number[];
}

export function nd(t: Tensor): Nd {
  return { shape: [...t.shape], data: Array.from(t.dataSync(), Number) };
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function strides(shape: readonly number[]): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Multi-index of flat position i. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

export function at(a: Nd, idx: readonly number[]): number {
  const s = strides(a.shape);
  let off = 0;
  for (let d = 0; d < idx.length; d++) off += idx[d] * s[d];
  return a.data[off];
}

/** Broadcast map over any number of arrays (NumPy rules). */
export function mapN(f: (...v: number[]) => number, ...xs: Nd[]): Nd {
  const n = Math.max(...xs.map((x) => x.shape.length));
  const shape: number[] = [];
  for (let i = 0; i < n; i++) {
    shape.push(Math.max(...xs.map((x) => x.shape[x.shape.length - n + i] ?? 1)));
  }
  const data: number[] = [];
  for (let i = 0; i < size(shape); i++) {
    const idx = unravel(i, shape);
    data.push(
      f(
        ...xs.map((x) =>
          at(
            x,
            idx.slice(n - x.shape.length).map((v, k) => (x.shape[k] === 1 ? 0 : v)),
          ),
        ),
      ),
    );
  }
  return { shape, data };
}

/** Reduce over axes with keepdim. */
export function reduceNd(
  x: Nd,
  axes: number[] | undefined,
  keepdim: boolean,
  f: (vals: number[]) => number,
): Nd {
  const ax =
    axes === undefined ? x.shape.map((_, i) => i) : axes.map((a) => (a < 0 ? a + x.shape.length : a));
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const groups = new Map<number, number[]>();
  const ks = strides(kept);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    let off = 0;
    idx.forEach((v, d) => {
      if (!ax.includes(d)) off += v * ks[d];
    });
    if (!groups.has(off)) groups.set(off, []);
    groups.get(off)!.push(x.data[i]);
  }
  const data: number[] = [];
  for (let i = 0; i < size(kept); i++) data.push(f(groups.get(i) ?? []));
  return { shape: keepdim ? kept : x.shape.filter((_, i) => !ax.includes(i)), data };
}

/** Apply f along one axis: f maps a 1-d slice to a slice of the same length. */
export function alongAxis(x: Nd, axis: number, f: (v: number[]) => number[]): Nd {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const out = [...x.data];
  const s = strides(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    if (idx[a] !== 0) continue;
    const pos = Array.from({ length: x.shape[a] }, (_, k) => i + k * s[a]);
    const r = f(pos.map((p) => x.data[p]));
    pos.forEach((p, k) => {
      out[p] = r[k];
    });
  }
  return { shape: x.shape, data: out };
}

/**
 * softmax (log = false) or log-softmax (log = true) along `axis`, by the definition with the row max m
 * subtracted: exp(x - m) / sum(exp(x - m)) or (x - m) - log(sum(exp(x - m))). A -Infinity entry gives 0 /
 * -Infinity; a row holding NaN or +Infinity, or only -Infinity, is NaN throughout. A 0-d x is a row of one.
 */
export function softmaxNd(x: Nd, axis: number, log: boolean): Nd {
  if (x.shape.length === 0) return { shape: [], data: softmaxNd({ shape: [1], data: x.data }, 0, log).data };
  return alongAxis(x, axis, (v) => {
    const m = Math.max(...v);
    if (!Number.isFinite(m)) return v.map(() => Number.NaN);
    let s = 0;
    for (const a of v) s += Math.exp(a - m);
    return v.map((a) => (log ? a - m - Math.log(s) : Math.exp(a - m) / s));
  });
}

export function matmulNd(a: Nd, b: Nd): Nd {
  const va = a.shape.length === 1;
  const vb = b.shape.length === 1;
  const A = va ? { shape: [1, a.shape[0]], data: a.data } : a;
  const B = vb ? { shape: [b.shape[0], 1], data: b.data } : b;
  const m = A.shape[A.shape.length - 2];
  const k = A.shape[A.shape.length - 1];
  const n = B.shape[B.shape.length - 1];
  const ba = A.shape.slice(0, -2);
  const bb = B.shape.slice(0, -2);
  const nb = Math.max(ba.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < nb; i++) batch.push(Math.max(ba[ba.length - nb + i] ?? 1, bb[bb.length - nb + i] ?? 1));
  const data: number[] = [];
  for (let bi = 0; bi < size(batch); bi++) {
    const idx = unravel(bi, batch);
    const ia = idx.slice(nb - ba.length).map((v, d) => (ba[d] === 1 ? 0 : v));
    const ib = idx.slice(nb - bb.length).map((v, d) => (bb[d] === 1 ? 0 : v));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += at(A, [...ia, i, q]) * at(B, [...ib, q, j]);
        data.push(s);
      }
    }
  }
  let shape = [...batch, m, n];
  if (va) shape = shape.filter((_, i) => i !== shape.length - 2);
  if (vb) shape = shape.slice(0, -1);
  return { shape, data };
}

export function conv2dNd(x: Nd, w: Nd, stride: number, pad: number, dil: number, groups: number): Nd {
  const [n, c, h, wd] = x.shape;
  const [o, cg, kh, kw] = w.shape;
  const oh = Math.floor((h + 2 * pad - dil * (kh - 1) - 1) / stride) + 1;
  const ow = Math.floor((wd + 2 * pad - dil * (kw - 1) - 1) / stride) + 1;
  const og = o / groups;
  const data: number[] = [];
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let s = 0;
          const g = Math.floor(oc / og);
          for (let ic = 0; ic < cg; ic++)
            for (let p = 0; p < kh; p++)
              for (let q = 0; q < kw; q++) {
                const y = i * stride - pad + p * dil;
                const z = j * stride - pad + q * dil;
                if (y < 0 || y >= h || z < 0 || z >= wd) continue;
                s += at(x, [b, g * cg + ic, y, z]) * at(w, [oc, ic, p, q]);
              }
          data.push(s);
        }
  return { shape: [n, o, oh, ow], data };
}

/** A pooling size given as one number (square) or [rows, columns]. */
export type Pair2 = number | readonly [number, number];
const pair2 = (v: Pair2): [number, number] => (typeof v === "number" ? [v, v] : [v[0], v[1]]);

export function poolNd(x: Nd, k: Pair2, stride: Pair2, pad: Pair2, kind: "max" | "avg"): Nd {
  const [n, c, h, w] = x.shape;
  const [kh, kw] = pair2(k);
  const [sh, sw] = pair2(stride);
  const [ph, pw] = pair2(pad);
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const data: number[] = [];
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let m = Number.NEGATIVE_INFINITY;
          let s = 0;
          for (let p = 0; p < kh; p++)
            for (let q = 0; q < kw; q++) {
              const y = i * sh - ph + p;
              const z = j * sw - pw + q;
              if (y < 0 || y >= h || z < 0 || z >= w) continue;
              const v = at(x, [b, ch, y, z]);
              m = Math.max(m, v);
              s += v;
            }
          data.push(kind === "max" ? m : s / (kh * kw));
        }
  return { shape: [n, c, oh, ow], data };
}

/**
 * The VJP of max pooling at x applied to dy, in plain loops: each dy[b, ch, i, j] is added to the first
 * maximum of its window in row-major order (a NaN is taken at once; padding never wins).
 */
export function maxPoolBackNd(x: Nd, dy: Nd, k: Pair2, stride: Pair2, pad: Pair2): Nd {
  const [n, c, h, w] = x.shape;
  const [kh, kw] = pair2(k);
  const [sh, sw] = pair2(stride);
  const [ph, pw] = pair2(pad);
  const [, , oh, ow] = dy.shape;
  const data = new Array<number>(size(x.shape)).fill(0);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let best: number[] | null = null;
          let bv = Number.NEGATIVE_INFINITY;
          scan: for (let p = 0; p < kh; p++)
            for (let q = 0; q < kw; q++) {
              const y = i * sh - ph + p;
              const z = j * sw - pw + q;
              if (y < 0 || y >= h || z < 0 || z >= w) continue;
              const v = at(x, [b, ch, y, z]);
              if (Number.isNaN(v)) {
                best = [y, z];
                break scan;
              }
              if (best === null || v > bv) {
                best = [y, z];
                bv = v;
              }
            }
          if (best !== null) data[((b * c + ch) * h + best[0]) * w + best[1]] += at(dy, [b, ch, i, j]);
        }
  return { shape: [n, c, h, w], data };
}

/** erf by its Maclaurin series (|x| < 3 is plenty for the test domains), summed in float64. */
export function erfRef(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** The VJP of average pooling (count includes padding) applied to dy: each dy spreads dy / (kh kw) over its window. */
export function avgPoolBackNd(dy: Nd, inShape: readonly number[], k: Pair2, stride: Pair2, pad: Pair2): Nd {
  const [n, c, h, w] = inShape;
  const [kh, kw] = pair2(k);
  const [sh, sw] = pair2(stride);
  const [ph, pw] = pair2(pad);
  const [, , oh, ow] = dy.shape;
  const data = new Array<number>(size(inShape)).fill(0);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          const v = at(dy, [b, ch, i, j]) / (kh * kw);
          for (let p = 0; p < kh; p++)
            for (let q = 0; q < kw; q++) {
              const y = i * sh - ph + p;
              const z = j * sw - pw + q;
              if (y >= 0 && y < h && z >= 0 && z < w) data[((b * c + ch) * h + y) * w + z] += v;
            }
        }
  return { shape: [...inShape], data };
}

/** Zeros of `shape` with src[i] added at index idx[i] along `axis` (idx given as plain numbers, src's shape). */
export function scatterAddNd(src: Nd, idx: readonly number[], axis: number, shape: readonly number[]): Nd {
  const data = new Array<number>(size(shape)).fill(0);
  for (let i = 0; i < src.data.length; i++) {
    const pos = unravel(i, src.shape);
    pos[axis] = idx[i];
    let flat = 0;
    for (let d = 0; d < shape.length; d++) flat = flat * shape[d] + pos[d];
    data[flat] += src.data[i];
  }
  return { shape: [...shape], data };
}

/**
 * The stable sorting order of v (positions), by insertion sort: ascending, or descending with `desc`; NaN above
 * every number; equal values (-0 and +0 included) keep their order.
 */
export function stableOrder(v: readonly number[], desc: boolean): number[] {
  const key = (a: number) => (Number.isNaN(a) ? Number.POSITIVE_INFINITY : a);
  // strictly before: a NaN is above +Infinity too
  const above = (a: number, b: number) =>
    Number.isNaN(a) ? !Number.isNaN(b) : Number.isNaN(b) ? false : key(a) > key(b);
  const order: number[] = [];
  for (let i = 0; i < v.length; i++) {
    let p = order.length;
    while (p > 0 && (desc ? above(v[i], v[order[p - 1]]) : above(v[order[p - 1]], v[i]))) p--;
    order.splice(p, 0, i);
  }
  return order;
}

/**
 * The first k of each row's stable order along `axis` (all of it when k is the row length): the values, or the
 * positions when `indices`.
 */
export function sortNd(x: Nd, axis: number, desc: boolean, k: number, indices: boolean): Nd {
  const a = axis < 0 ? axis + x.shape.length : axis;
  const shape = x.shape.map((d, i) => (i === a ? k : d));
  const data: number[] = [];
  for (let i = 0; i < size(shape); i++) {
    const idx = unravel(i, shape);
    const row = Array.from({ length: x.shape[a] }, (_, j) =>
      at(
        x,
        idx.map((v, d) => (d === a ? j : v)),
      ),
    );
    const pos = stableOrder(row, desc)[idx[a]];
    data.push(indices ? pos : row[pos]);
  }
  return { shape, data };
}

/**
 * Scaled dot-product attention by its definition: out[..., i, :] = sum_j softmax_j(scale q_i . k_j + mask_ij)
 * v_j, the leading dims of q [..., L, E], k [..., S, E], v [..., S, Ev] and mask (broadcastable to [..., L, S];
 * a bool one as 1 = keep, 0 = drop) broadcast; causal keeps j <= i. With `lse`, the row logsumexp is appended
 * as a last column ([..., L, Ev + 1]).
 */
export function attentionNd(
  q: Nd,
  k: Nd,
  v: Nd,
  mask: Nd | null,
  causal: boolean,
  scale: number,
  opts: { boolMask?: boolean; lse?: boolean } = {},
): Nd {
  const r = (x: Nd) => x.shape.length;
  const [l, e] = q.shape.slice(-2);
  const [s, ev] = [k.shape[r(k) - 2], v.shape[r(v) - 1]];
  const leads = [q, k, v].map((x) => x.shape.slice(0, -2));
  if (mask !== null) leads.push(mask.shape.slice(0, -2));
  const nb = Math.max(...leads.map((x) => x.length));
  const lead: number[] = [];
  for (let i = 0; i < nb; i++) lead.push(Math.max(...leads.map((x) => x[x.length - nb + i] ?? 1)));
  // element [...b, i, j] of x, broadcasting its leading dims and (for a mask) its last two
  const get = (x: Nd, b: number[], i: number, j: number) => {
    const n = r(x);
    const idx = x.shape.map((d, a) => {
      if (a === n - 2) return d === 1 ? 0 : i;
      if (a === n - 1) return d === 1 ? 0 : j;
      const bi = b[b.length - (n - 2) + a];
      return d === 1 ? 0 : bi;
    });
    return at(x, idx);
  };
  const w = opts.lse ? ev + 1 : ev;
  const data: number[] = [];
  for (let bflat = 0; bflat < size(lead); bflat++) {
    const b = unravel(bflat, lead);
    for (let i = 0; i < l; i++) {
      const sc: number[] = [];
      for (let j = 0; j < s; j++) {
        let x = 0;
        for (let c = 0; c < e; c++) x += get(q, b, i, c) * get(k, b, j, c);
        x *= scale;
        if (mask !== null) {
          const m = mask.shape.length < 2 ? at(mask, mask.shape.length === 0 ? [] : [j]) : get(mask, b, i, j);
          x = opts.boolMask ? (m ? x : -Infinity) : x + m;
        }
        if (causal && j > i) x = -Infinity;
        sc.push(x);
      }
      const mx = Math.max(...sc);
      const ex = sc.map((x) => Math.exp(x - mx));
      const tot = ex.reduce((a, c) => a + c, 0);
      for (let c = 0; c < ev; c++) {
        let o = 0;
        for (let j = 0; j < s; j++) o += (ex[j] / tot) * get(v, b, j, c);
        data.push(o);
      }
      if (opts.lse) data.push(mx + Math.log(tot));
    }
  }
  return { shape: [...lead, l, w], data };
}

// ---- linear algebra (cr.linalg): plain textbook algorithms on number[][] matrices, batched over leading dims

/** The matrices of the last two axes of x, in order. */
export function matricesOf(x: Nd): number[][][] {
  const r = x.shape.length;
  const m = x.shape[r - 2];
  const n = x.shape[r - 1];
  const out: number[][][] = [];
  for (let b = 0; b < x.data.length / (m * n || 1) && m * n > 0; b++) {
    out.push(Array.from({ length: m }, (_, i) => x.data.slice(b * m * n + i * n, b * m * n + (i + 1) * n)));
  }
  return out;
}

/** Nd of batch shape `batch` from one matrix (or vector, or number) per batch element. */
export function fromMatrices(batch: readonly number[], mats: (number[][] | number[] | number)[]): Nd {
  const first = mats[0];
  const inner =
    typeof first === "number"
      ? []
      : Array.isArray(first[0])
        ? [first.length, (first[0] as number[]).length]
        : [first.length];
  const data = mats.flatMap((m) =>
    typeof m === "number" ? [m] : ((m as (number | number[])[]).flat() as number[]),
  );
  return { shape: [...batch, ...inner], data };
}

export function transposeM(a: number[][]): number[][] {
  return (a[0] ?? []).map((_, j) => a.map((row) => row[j]));
}

export function mulM(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

/** a + c I. */
export function shiftM(a: number[][], c: number): number[][] {
  return a.map((row, i) => row.map((v, j) => (i === j ? v + c : v)));
}

/** X with A X = B by Gaussian elimination with partial pivoting (B n x k). */
export function gaussSolve(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const M = A.map((row, i) => [...row, ...B[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(M[i][c]) > Math.abs(M[p][c])) p = i;
    [M[c], M[p]] = [M[p], M[c]];
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = M[i][c] / M[c][c];
      for (let j = c; j < M[i].length; j++) M[i][j] -= f * M[c][j];
    }
  }
  return M.map((row, i) => row.slice(n).map((v) => v / M[i][i]));
}

/** det by Gaussian elimination with partial pivoting. */
export function detRef(A: number[][]): number {
  const n = A.length;
  const M = A.map((r) => [...r]);
  let d = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(M[i][c]) > Math.abs(M[p][c])) p = i;
    if (p !== c) {
      [M[c], M[p]] = [M[p], M[c]];
      d = -d;
    }
    d *= M[c][c];
    if (M[c][c] === 0) return 0;
    for (let i = c + 1; i < n; i++) {
      const f = M[i][c] / M[c][c];
      for (let j = c; j < n; j++) M[i][j] -= f * M[c][j];
    }
  }
  return d;
}

/** Cholesky-Banachiewicz: lower L with A = L L^T. */
export function choleskyRef(A: number[][]): number[][] {
  const n = A.length;
  const L = A.map(() => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i][j];
      for (let k = 0; k < j; k++) s -= L[i][k] * L[j][k];
      L[i][j] = i === j ? Math.sqrt(s) : s / L[j][j];
    }
  }
  return L;
}

/**
 * QR by modified Gram-Schmidt with R's diagonal positive (the unique such factorization): Q m x k, R k x n,
 * k = min(m, n); the columns after the first k are projected on Q.
 */
export function mgsQR(A: number[][]): { Q: number[][]; R: number[][] } {
  const m = A.length;
  const n = A[0].length;
  const k = Math.min(m, n);
  const cols = transposeM(A);
  const qs: number[][] = [];
  const R = Array.from({ length: k }, () => new Array<number>(n).fill(0));
  for (let j = 0; j < n; j++) {
    const v = [...cols[j]];
    for (let i = 0; i < Math.min(j, k); i++) {
      const r = qs[i].reduce((s, q, t) => s + q * v[t], 0);
      R[i][j] = r;
      for (let t = 0; t < m; t++) v[t] -= r * qs[i][t];
    }
    if (j < k) {
      const nrm = Math.hypot(...v);
      R[j][j] = nrm;
      qs.push(v.map((x) => x / nrm));
    }
  }
  return { Q: transposeM(qs), R };
}

/** Eigenvalues of a symmetric 3 x 3 matrix, ascending (the trigonometric solution of the characteristic cubic). */
export function symEig3(A: number[][]): number[] {
  const q = (A[0][0] + A[1][1] + A[2][2]) / 3;
  const p1 = A[0][1] ** 2 + A[0][2] ** 2 + A[1][2] ** 2;
  const p2 = (A[0][0] - q) ** 2 + (A[1][1] - q) ** 2 + (A[2][2] - q) ** 2 + 2 * p1;
  const p = Math.sqrt(p2 / 6);
  const B = A.map((row, i) => row.map((v, j) => (v - (i === j ? q : 0)) / p));
  const r = Math.max(-1, Math.min(1, detRef(B) / 2));
  const phi = Math.acos(r) / 3;
  const e1 = q + 2 * p * Math.cos(phi);
  const e3 = q + 2 * p * Math.cos(phi + (2 * Math.PI) / 3);
  return [e3, 3 * q - e1 - e3, e1];
}

/** 1-d cross-correlation, x [N, C, L], w [O, C / groups, K], zero padding `pad` on both ends. */
export function conv1dNd(x: Nd, w: Nd, stride: number, pad: number, dil: number, groups: number): Nd {
  const [n, , l] = x.shape;
  const [o, cg, k] = w.shape;
  const ol = Math.floor((l + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
  const og = o / groups;
  const data: number[] = [];
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let i = 0; i < ol; i++) {
        let s = 0;
        const g = Math.floor(oc / og);
        for (let ic = 0; ic < cg; ic++)
          for (let q = 0; q < k; q++) {
            const z = i * stride - pad + q * dil;
            if (z >= 0 && z < l) s += at(x, [b, g * cg + ic, z]) * at(w, [oc, ic, q]);
          }
        data.push(s);
      }
  return { shape: [n, o, ol], data };
}

/**
 * 2-d transposed convolution by its definition: each input entry x[b, ci, i, j] adds x * w[ci, oc, p, q] at
 * output row i stride - pad + p dil (column likewise) of channel group(ci) * (Cout / groups) + oc; w is
 * [Cin, Cout / groups, KH, KW]. Pairs are [rows, columns].
 */
export function convTranspose2dNd(
  x: Nd,
  w: Nd,
  stride: readonly [number, number],
  pad: readonly [number, number],
  outPad: readonly [number, number],
  dil: readonly [number, number],
  groups: number,
): Nd {
  const [n, cin, h, wd] = x.shape;
  const [, og, kh, kw] = w.shape;
  const cout = og * groups;
  const oh = (h - 1) * stride[0] - 2 * pad[0] + dil[0] * (kh - 1) + outPad[0] + 1;
  const ow = (wd - 1) * stride[1] - 2 * pad[1] + dil[1] * (kw - 1) + outPad[1] + 1;
  const data = new Array<number>(n * cout * oh * ow).fill(0);
  const ig = cin / groups;
  for (let b = 0; b < n; b++)
    for (let ci = 0; ci < cin; ci++)
      for (let i = 0; i < h; i++)
        for (let j = 0; j < wd; j++) {
          const v = at(x, [b, ci, i, j]);
          const g = Math.floor(ci / ig);
          for (let oc = 0; oc < og; oc++)
            for (let p = 0; p < kh; p++)
              for (let q = 0; q < kw; q++) {
                const y = i * stride[0] - pad[0] + p * dil[0];
                const z = j * stride[1] - pad[1] + q * dil[1];
                if (y < 0 || y >= oh || z < 0 || z >= ow) continue;
                data[((b * cout + g * og + oc) * oh + y) * ow + z] += v * at(w, [ci, oc, p, q]);
              }
        }
  return { shape: [n, cout, oh, ow], data };
}

/**
 * Resampling of the spatial dims of x [N, C, ...spatial] to `out` (PyTorch 1.13's interpolate with `size`), by
 * its definition: each output entry is the sum over every combination of per-axis source taps of the product
 * of their weights times the source entry. Per axis: nearest floor(dst * in / out) (ratio and product in
 * float32, as PyTorch), linear with half-pixel centres clamped at 0 (or alignCorners), cubic convolution
 * (a = -0.75) with border samples repeated.
 */
export function interpolateNd(
  x: Nd,
  out: readonly number[],
  mode: "nearest" | "linear" | "cubic",
  alignCorners = false,
): Nd {
  const [n, c, ...inSp] = x.shape;
  const axisTaps = inSp.map((size, ax): [number, number][][] => {
    const m = out[ax];
    return Array.from({ length: m }, (_, j) => {
      if (mode === "nearest") {
        const r = Math.fround(size / m);
        return [[Math.min(Math.floor(Math.fround(j * r)), size - 1), 1]];
      }
      if (mode === "linear" && size === m) return [[j, 1]];
      const ratio = alignCorners ? (m > 1 ? (size - 1) / (m - 1) : 0) : size / m;
      let s = alignCorners ? ratio * j : ratio * (j + 0.5) - 0.5;
      const clampI = (i: number) => Math.min(Math.max(i, 0), size - 1);
      if (mode === "linear") {
        if (s < 0) s = 0;
        const i0 = Math.min(Math.floor(s), size - 1);
        const t = s - i0;
        return [
          [i0, 1 - t],
          [clampI(i0 + 1), t],
        ];
      }
      const i0 = Math.floor(s);
      const t = s - i0;
      const a = -0.75;
      const k = (d: number) => {
        const u = Math.abs(d);
        if (u <= 1) return (a + 2) * u ** 3 - (a + 3) * u ** 2 + 1;
        if (u < 2) return a * u ** 3 - 5 * a * u ** 2 + 8 * a * u - 4 * a;
        return 0;
      };
      return [-1, 0, 1, 2].map((o): [number, number] => [clampI(i0 + o), k(t - o)]);
    });
  });
  const shape = [n, c, ...out];
  const data: number[] = [];
  for (let f = 0; f < size(shape); f++) {
    const [b, ch, ...dst] = unravel(f, shape);
    let acc = 0;
    const walk = (ax: number, w: number, src: number[]): void => {
      if (ax === dst.length) {
        acc += w * at(x, [b, ch, ...src]);
        return;
      }
      for (const [i, wi] of axisTaps[ax][dst[ax]]) walk(ax + 1, w * wi, [...src, i]);
    };
    walk(0, 1, []);
    data.push(acc);
  }
  return { shape, data };
}

const sigm = (x: number) => 1 / (1 + Math.exp(-x));

/** One LSTM step's elementwise part by its definition: gates [..., 4H] (i, f, g, o), c [..., H] -> [h', c']. */
export function lstmCellNd(g: Nd, c: Nd): Nd {
  const h = c.shape[c.shape.length - 1];
  const rows = size(c.shape) / h;
  const data: number[] = [];
  for (let r = 0; r < rows; r++) {
    const gate = (k: number, j: number) => g.data[r * 4 * h + k * h + j];
    const hs: number[] = [];
    const cs: number[] = [];
    for (let j = 0; j < h; j++) {
      const cp = sigm(gate(1, j)) * c.data[r * h + j] + sigm(gate(0, j)) * Math.tanh(gate(2, j));
      hs.push(sigm(gate(3, j)) * Math.tanh(cp));
      cs.push(cp);
    }
    data.push(...hs, ...cs);
  }
  return { shape: [...c.shape.slice(0, -1), 2 * h], data };
}

/** One GRU step's elementwise part by its definition (PyTorch's r, z, n): h' = (1 - z) n + z h. */
export function gruCellNd(x: Nd, hp: Nd, hv: Nd): Nd {
  const h = hv.shape[hv.shape.length - 1];
  const rows = size(hv.shape) / h;
  const data: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < h; j++) {
      const at3 = (t: Nd, k: number) => t.data[r * 3 * h + k * h + j];
      const rg = sigm(at3(x, 0) + at3(hp, 0));
      const z = sigm(at3(x, 1) + at3(hp, 1));
      const n = Math.tanh(at3(x, 2) + rg * at3(hp, 2));
      data.push((1 - z) * n + z * hv.data[r * h + j]);
    }
  }
  return { shape: [...hv.shape], data };
}

/**
 * Layer normalisation over the last k dims of x (rows of the row-major data), in plain loops:
 * (x - mean) / sqrt(var + eps) * w + b with the biased variance; w and b (the last k dims' shape) optional.
 */
export function layerNormNd(x: Nd, k: number, w: Nd | null, b: Nd | null, eps: number): Nd {
  const r = size(x.shape.slice(x.shape.length - k));
  const data = new Array<number>(x.data.length);
  for (let base = 0; base < x.data.length; base += r) {
    let s = 0;
    for (let i = 0; i < r; i++) s += x.data[base + i];
    const mean = s / r;
    let q = 0;
    for (let i = 0; i < r; i++) q += (x.data[base + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(q / r + eps);
    for (let i = 0; i < r; i++) {
      data[base + i] = (x.data[base + i] - mean) * rstd * (w ? w.data[i] : 1) + (b ? b.data[i] : 0);
    }
  }
  return { shape: [...x.shape], data };
}

/**
 * The VJP of layerNormNd (no affine, k = 1) at x applied to g, from the Jacobian written out entry by entry:
 * d xhat_i / d x_j = rstd (delta_ij - 1/N - xhat_i xhat_j / N), out_j = sum_i g_i d xhat_i / d x_j.
 */
export function layerNormVjpNd(x: Nd, g: Nd, eps: number): Nd {
  const r = x.shape[x.shape.length - 1];
  const xhat = layerNormNd(x, 1, null, null, eps);
  const data = new Array<number>(x.data.length).fill(0);
  for (let base = 0; base < x.data.length; base += r) {
    let s = 0;
    for (let i = 0; i < r; i++) s += x.data[base + i];
    const mean = s / r;
    let q = 0;
    for (let i = 0; i < r; i++) q += (x.data[base + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(q / r + eps);
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let i = 0; i < r; i++) {
        const jac = rstd * ((i === j ? 1 : 0) - 1 / r - (xhat.data[base + i] * xhat.data[base + j]) / r);
        acc += g.data[base + i] * jac;
      }
      data[base + j] = acc;
    }
  }
  return { shape: [...x.shape], data };
}
