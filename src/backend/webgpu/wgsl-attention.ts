/**
 * WGSL of the fused attention kernels (Backend.attention, attentionBackward; the js kernels in
 * src/backend/js/attention.ts are the specification), flash-style: no [L, S] score matrix exists.
 *
 * Tiles: a workgroup of 64 threads owns BQ = 16 query rows (or, for dk/dv, BK = 16 keys) and one chunk of
 * DC = 32 output columns, and streams the other side through workgroup memory in blocks of 16. A 16 x 16 score
 * tile is formed from feature chunks of EC = 32 (q and k rows staged in workgroup memory, each thread four
 * scores: row t / 4, keys 4 (t % 4) ..), and each thread accumulates 8 output columns of one row in registers.
 * Outputs wider than DC are split over more workgroups (each recomputing its scores), so any E and Ev work with
 * fixed register and workgroup memory budgets (8.3 KiB of workgroup memory).
 *
 * - forward: one workgroup per (batch entry, query block, Ev chunk); online softmax per row (running max m,
 *   sum l, accumulators rescaled by exp(m - m') when a block raises the max); the chunk-0 workgroup writes lse.
 * - backward (FlashAttention-2, two kernels so that every output has one owner and no atomics are needed):
 *   `dkv`, one workgroup per (batch entry, key block, column chunk of dk or dv), loops over the query blocks;
 *   `dq`, one workgroup per (batch entry, query block, column chunk of dq), loops over the key blocks. Both
 *   recompute p = exp(s - lse) and ds = scale p (dout . v - D) tile by tile, D_i = dout_i . o_i - dlse_i.
 *
 * float32 throughout (products, exp and sums), so results agree with js (float64) to ~1e-5 relative.
 * Special rows as js: causal skips keys j > i (p = 0 there, whatever the mask), S = 0 gives output 0 and lse
 * -Infinity, a row whose every score is -Infinity gives NaN and lse -Infinity, NaN or +Infinity scores NaN.
 *
 * Parameters: [nb, L, S, E, Ev, causal, scale (f32 bits), nc (forward: Ev chunks), lr, leadShape[lr], then
 * per operand slot q, k, v, mask, o, dout: (offset, leadStrides[lr], rowStride, colStride)] (absent operands
 * zeros). out is contiguous: [nb, L, Ev + 1] forward, [nb, L E + S E + S Ev] backward.
 */
import { FLOAT_PRELUDE, groupMain } from "./wgsl.ts";

/** Query rows per workgroup tile (and keys per streamed block). */
export const ATT_BQ = 16;
/** Output columns per workgroup. */
export const ATT_DC = 32;

const SLOT = { q: 0, k: 1, v: 2, mask: 3, o: 4, dout: 5 } as const;

/** Bindings (the named inputs read-only, OUT read-write, P last) and the shared helpers. */
function prelude(inputs: readonly string[]): string {
  const lines = inputs.map((n, k) => `@group(0) @binding(${k}) var<storage, read> ${n}: array<f32>;`);
  lines.push(`@group(0) @binding(${inputs.length}) var<storage, read_write> OUT: array<f32>;`);
  lines.push(`@group(0) @binding(${inputs.length + 1}) var<storage, read> P: array<i32>;`);
  return `${lines.join("\n")}
${FLOAT_PRELUDE}
const BQ = ${ATT_BQ};
const BK = ${ATT_BQ};
const DC = ${ATT_DC};
const EC = 32;
var<workgroup> sa: array<f32, 512>;
var<workgroup> sb: array<f32, 512>;
var<workgroup> ss: array<f32, 256>;
var<workgroup> sd: array<f32, 256>;
var<workgroup> sx: array<f32, 512>;
var<workgroup> srow: array<f32, 32>;
// exp propagating NaN (SwiftShader's exp(NaN) is +Infinity): a fully masked row's -Infinity - -Infinity
fn f_exp(x: f32) -> f32 { if (f_isnan(x)) { return x; } return exp(x); }
// offset of batch entry b in operand slot k
fn boff(k: i32, b: i32) -> i32 {
  let lr = P[8];
  let base = 9 + lr + k * (lr + 3);
  var off = P[base];
  var rem = b;
  for (var a = lr - 1; a >= 0; a--) {
    let n = P[9 + a];
    off += (rem % n) * P[base + 1 + a];
    rem = rem / n;
  }
  return off;
}
fn rstr(k: i32) -> i32 { let lr = P[8]; return P[9 + lr + k * (lr + 3) + 1 + lr]; }
fn cstr(k: i32) -> i32 { let lr = P[8]; return P[9 + lr + k * (lr + 3) + 2 + lr]; }`;
}

/**
 * `dots_<name>`: the 16 x 16 tile of row products A[i0 + r] . B[j0 + c] over `width` features (A, B the
 * arrays of operand slots ka, kb), four per thread (row t / 4, columns 4 (t % 4) ..), staged through sa/sb.
 */
function dotsFn(name: string, A: string, ka: number, B: string, kb: number): string {
  return `
fn dots_${name}(i0: i32, j0: i32, t: i32, ao: i32, bo: i32, rowsA: i32, rowsB: i32, width: i32) -> array<f32, 4> {
  let asr = rstr(${ka});
  let asc = cstr(${ka});
  let bsr = rstr(${kb});
  let bsc = cstr(${kb});
  var acc: array<f32, 4>;
  let r = t / 4;
  let kq = (t % 4) * 4;
  for (var e0 = 0; e0 < width; e0 += EC) {
    for (var u = 0; u < 8; u++) {
      let idx = t + u * 64;
      let rr = idx / EC;
      let e = e0 + idx % EC;
      var va = 0.0;
      if (i0 + rr < rowsA && e < width) { va = ${A}[ao + (i0 + rr) * asr + e * asc]; }
      sa[idx] = va;
      var vb = 0.0;
      if (j0 + rr < rowsB && e < width) { vb = ${B}[bo + (j0 + rr) * bsr + e * bsc]; }
      sb[idx] = vb;
    }
    workgroupBarrier();
    for (var u = 0; u < 4; u++) {
      var d = 0.0;
      for (var c = 0; c < EC; c++) { d += sa[r * EC + c] * sb[(kq + u) * EC + c]; }
      acc[u] += d;
    }
    workgroupBarrier();
  }
  return acc;
}`;
}

const HEAD = `${groupMain(64)} {
  let g = i32(wid.x + wid.y * nwg.x);
  let nb = P[0];
  let L = P[1];
  let S = P[2];
  let E = P[3];
  let Ev = P[4];
  let causal = P[5] != 0;
  let scale = bitcast<f32>(P[6]);
  let t = i32(lid.x);
  let r = t / 4;
  let kq = (t % 4) * 4;
  let cc = (t % 4) * 8;`;

/** The score of (row i, key j) from the dot product `dot` (mask added when present); valid entries only. */
function score(mask: boolean, dot: string): string {
  return `scale * ${dot}${mask ? " + M[mo + i * msr + j * msc]" : ""}`;
}

const maskOffsets = (mask: boolean) =>
  mask
    ? `let mo = boff(${SLOT.mask}, b);\n  let msr = rstr(${SLOT.mask});\n  let msc = cstr(${SLOT.mask});`
    : "";

/** Forward: bindings Q, K, V, [M], OUT. */
export function attentionShader(mask: boolean): string {
  const ins = mask ? ["Q", "K", "V", "M"] : ["Q", "K", "V"];
  return `${prelude(ins)}
${dotsFn("qk", "Q", SLOT.q, "K", SLOT.k)}
${HEAD}
  let nc = P[7];
  let nqb = (L + BQ - 1) / BQ;
  if (g >= nb * nqb * nc) { return; }
  let ch = g % nc;
  let b = g / (nc * nqb);
  let i0 = ((g / nc) % nqb) * BQ;
  let c0 = ch * DC;
  let i = i0 + r;
  let qo = boff(${SLOT.q}, b);
  let ko = boff(${SLOT.k}, b);
  let vo = boff(${SLOT.v}, b);
  let vsr = rstr(${SLOT.v});
  let vsc = cstr(${SLOT.v});
  ${maskOffsets(mask)}
  var m = -f_inf();
  var l = 0.0;
  var acc: array<f32, 8>;
  var kend = S;
  if (causal) { kend = min(S, i0 + BQ); }
  for (var j0 = 0; j0 < kend; j0 += BK) {
    var d = dots_qk(i0, j0, t, qo, ko, L, S, E);
    for (var u = 0; u < 4; u++) {
      let j = j0 + kq + u;
      var x = -f_inf();
      if (i < L && j < S && (!causal || j <= i)) { x = ${score(mask, "d[u]")}; }
      ss[r * BK + kq + u] = x;
    }
    for (var u = 0; u < 8; u++) {
      let idx = t + u * 64;
      let j = j0 + idx / DC;
      let col = c0 + idx % DC;
      var vv = 0.0;
      if (j < S && col < Ev) { vv = V[vo + j * vsr + col * vsc]; }
      sx[idx] = vv;
    }
    workgroupBarrier();
    var bm = -f_inf();
    for (var jj = 0; jj < BK; jj++) { bm = f_max(bm, ss[r * BK + jj]); }
    let mn = f_max(m, bm);
    if (mn != -f_inf()) {
      let alpha = f_exp(m - mn);
      l = l * alpha;
      for (var u = 0; u < 8; u++) { acc[u] = acc[u] * alpha; }
      for (var jj = 0; jj < BK; jj++) {
        let p = f_exp(ss[r * BK + jj] - mn);
        l += p;
        for (var u = 0; u < 8; u++) { acc[u] += p * sx[jj * DC + cc + u]; }
      }
      m = mn;
    }
    workgroupBarrier();
  }
  if (i < L) {
    let ob = (b * L + i) * (Ev + 1);
    for (var u = 0; u < 8; u++) {
      let col = c0 + cc + u;
      if (col < Ev) {
        var y = 0.0;
        if (S > 0) { y = select(acc[u] / l, f_nan(), l == 0.0); }
        OUT[ob + col] = y;
      }
    }
    if (ch == 0 && t % 4 == 0) {
      var lse = -f_inf();
      if (S > 0 && l != 0.0) { lse = m + log(l); }
      OUT[ob + Ev] = lse;
    }
  }
}`;
}

/** Per query block i0: lse_i into srow[0..BQ) and D_i into srow[BQ..2 BQ) (threads t < BQ), then a barrier. */
const ROW_STATS = `
    if (t < BQ) {
      let ii = i0 + t;
      var lse = 0.0;
      var dd = 0.0;
      if (ii < L) {
        lse = O[oo + ii * osr + Ev * osc];
        for (var c = 0; c < Ev; c++) { dd += G[go + ii * gsr + c * gsc] * O[oo + ii * osr + c * osc]; }
        dd -= G[go + ii * gsr + Ev * gsc];
      }
      srow[t] = lse;
      srow[BQ + t] = dd;
    }
    workgroupBarrier();`;

/** The tile (i0, j0): p into ss, ds (scale included) into sd; row r = t / 4 of the tile is query i. */
function probTile(mask: boolean): string {
  return `
    var dqk = dots_qk(i0, j0, t, qo, ko, L, S, E);
    var dgv = dots_gv(i0, j0, t, go, vo, L, S, Ev);
    for (var u = 0; u < 4; u++) {
      let j = j0 + kq + u;
      var p = 0.0;
      var ds = 0.0;
      if (i < L && j < S && (!causal || j <= i)) {
        let x = ${score(mask, "dqk[u]")};
        p = f_exp(x - srow[r]);
        ds = scale * p * (dgv[u] - srow[BQ + r]);
      }
      ss[r * BK + kq + u] = p;
      sd[r * BK + kq + u] = ds;
    }`;
}

function backwardCommon(mask: boolean): string {
  return `
  let qo = boff(${SLOT.q}, b);
  let ko = boff(${SLOT.k}, b);
  let vo = boff(${SLOT.v}, b);
  let oo = boff(${SLOT.o}, b);
  let go = boff(${SLOT.dout}, b);
  let osr = rstr(${SLOT.o});
  let osc = cstr(${SLOT.o});
  let gsr = rstr(${SLOT.dout});
  let gsc = cstr(${SLOT.dout});
  ${maskOffsets(mask)}
  let base = b * (L * E + S * E + S * Ev);
  var acc: array<f32, 8>;`;
}

/**
 * Backward, kind "dkv" (one workgroup per batch entry, key block and column chunk of dk (E / DC chunks) then
 * dv (Ev / DC chunks)) or "dq" (per batch entry, query block and column chunk of dq). Bindings Q, K, V, [M],
 * O, G (dout), OUT.
 */
export function attentionBackwardShader(kind: "dkv" | "dq", mask: boolean): string {
  const ins = mask ? ["Q", "K", "V", "M", "O", "G"] : ["Q", "K", "V", "O", "G"];
  const fns = `${dotsFn("qk", "Q", SLOT.q, "K", SLOT.k)}\n${dotsFn("gv", "G", SLOT.dout, "V", SLOT.v)}`;
  if (kind === "dkv") {
    return `${prelude(ins)}
${fns}
${HEAD}
  let nkb = (S + BK - 1) / BK;
  let nck = (E + DC - 1) / DC;
  let nc = nck + (Ev + DC - 1) / DC;
  if (g >= nb * nkb * nc) { return; }
  let ch = g % nc;
  let b = g / (nc * nkb);
  let j0 = ((g / nc) % nkb) * BK;
  let isK = ch < nck;
  let c0 = select((ch - nck) * DC, ch * DC, isK);
  let width = select(Ev, E, isK);
  let qsr = rstr(${SLOT.q});
  let qsc = cstr(${SLOT.q});
  ${backwardCommon(mask)}
  var istart = 0;
  if (causal) { istart = (j0 / BQ) * BQ; }
  for (var i0 = istart; i0 < L; i0 += BQ) {
    let i = i0 + r;
    ${ROW_STATS}
    ${probTile(mask)}
    for (var u = 0; u < 8; u++) {
      let idx = t + u * 64;
      let ii = i0 + idx / DC;
      let col = c0 + idx % DC;
      var xv = 0.0;
      if (ii < L && col < width) {
        if (isK) { xv = Q[qo + ii * qsr + col * qsc]; } else { xv = G[go + ii * gsr + col * gsc]; }
      }
      sx[idx] = xv;
    }
    workgroupBarrier();
    for (var ir = 0; ir < BQ; ir++) {
      let w = select(ss[ir * BK + r], sd[ir * BK + r], isK);
      for (var u = 0; u < 8; u++) { acc[u] += w * sx[ir * DC + cc + u]; }
    }
    workgroupBarrier();
  }
  let j = j0 + r;
  if (j < S) {
    for (var u = 0; u < 8; u++) {
      let col = c0 + cc + u;
      if (col < width) {
        if (isK) { OUT[base + L * E + j * E + col] = acc[u]; } else { OUT[base + L * E + S * E + j * Ev + col] = acc[u]; }
      }
    }
  }
}`;
  }
  return `${prelude(ins)}
${fns}
${HEAD}
  let nqb = (L + BQ - 1) / BQ;
  let nc = (E + DC - 1) / DC;
  if (g >= nb * nqb * nc) { return; }
  let ch = g % nc;
  let b = g / (nc * nqb);
  let i0 = ((g / nc) % nqb) * BQ;
  let c0 = ch * DC;
  let i = i0 + r;
  let ksr = rstr(${SLOT.k});
  let ksc = cstr(${SLOT.k});
  ${backwardCommon(mask)}
  ${ROW_STATS}
  var kend = S;
  if (causal) { kend = min(S, i0 + BQ); }
  for (var j0 = 0; j0 < kend; j0 += BK) {
    ${probTile(mask)}
    for (var u = 0; u < 8; u++) {
      let idx = t + u * 64;
      let j = j0 + idx / DC;
      let col = c0 + idx % DC;
      var kv = 0.0;
      if (j < S && col < E) { kv = K[ko + j * ksr + col * ksc]; }
      sx[idx] = kv;
    }
    workgroupBarrier();
    for (var jj = 0; jj < BK; jj++) {
      let w = sd[r * BK + jj];
      for (var u = 0; u < 8; u++) { acc[u] += w * sx[jj * DC + cc + u]; }
    }
    workgroupBarrier();
  }
  if (i < L) {
    for (var u = 0; u < 8; u++) {
      let col = c0 + cc + u;
      if (col < E) { OUT[base + i * E + col] = acc[u]; }
    }
  }
}`;
}

/** The parameter block of an attention call (see the module comment); views as [offset, strides, shape]. */
export function attentionParams(
  dims: { nb: number; l: number; s: number; e: number; ev: number },
  lead: readonly number[],
  causal: boolean,
  scale: number,
  nc: number,
  views: readonly ({ offset: number; strides: readonly number[] } | null)[],
): number[] {
  const lr = lead.length;
  const bits = new Int32Array(new Float32Array([scale]).buffer)[0];
  const params = [dims.nb, dims.l, dims.s, dims.e, dims.ev, causal ? 1 : 0, bits, nc, lr, ...lead];
  for (let k = 0; k < 6; k++) {
    const v = views[k] ?? null;
    if (v === null) params.push(...new Array<number>(lr + 3).fill(0));
    else params.push(v.offset, ...v.strides.slice(0, lr), v.strides[lr], v.strides[lr + 1]);
  }
  return params;
}
