/**
 * Fused scaled dot-product attention of the wasm backend (AssemblyScript, SIMD128): Backend.attention and
 * Backend.attentionBackward over a table of batch entries (each call runs its entries in turn; the JS side
 * splits the entries over the worker threads), float32 and float64 (the js kernels in
 * src/backend/js/attention.ts are the specification).
 *
 * Forward (FlashAttention): the queries run in tiles of BR rows, the keys stream past in tiles of BC. For each
 * (query tile, key tile) the BR x BC score tile is one small GEMM (Q rows against K^T, the GEMM micro-kernel's
 * 4 x NR register tile), each row's running max m, sum l and unnormalised output acc are rescaled by
 * exp(m - m') when the tile raises the max, the tile's exp(s - m') overwrite the scores, and acc += P V is a
 * second small GEMM. At the end out = acc / l and lse = m + log l. Memory: the staged operands (O((L + S)(E +
 * Ev))) plus the BR x BC tile and BR x Ev accumulators: no [L, S] matrix, whatever the sequence length.
 *
 * Backward (FlashAttention-2, one pass): for each (query tile, key tile) the scores are recomputed, P = exp(s -
 * lse), dP = dO V^T, dS = scale P (dP - D) with D_i = dout_i . o_i - dlse_i, and four more small GEMMs
 * accumulate dv += P^T dO, dk += dS^T Q (into whole-sequence dk, dv buffers) and dq += dS K. Under a causal mask
 * the tiles on the diagonal run only their unmasked register blocks (tileGemmCausal): the score and dP columns
 * left of the diagonal, dq's sum up to the row block's last key, dk's and dv's from the key block's first query;
 * the exp runs only over the vectors holding unmasked keys.
 *
 * Operands are staged once per call into zero-padded contiguous buffers (gathered through any byte strides: a
 * broadcast mask has stride 0): Q [Lp, Ep], K^T [E, Sp], V [Sp, Evp] and, for the backward, K [Sp, Ep], V^T
 * [Ev, Sp], dO [Lp, Evp]; rows are padded to MR and columns to NR so that the micro-kernel has no edge cases.
 * Padded rows and columns only feed outputs that are never written out, and the probabilities beyond a row's
 * last key (causal exclusions, tile padding) are set to exactly 0, so nothing leaks from padding.
 *
 * Under a causal mask the products meet the excluded keys as exact zeros, and 0 x Inf = NaN where the
 * specification skips them: each kernel checks its staged operands and, if one holds a NaN or an infinity, sets
 * the caller's flag word and leaves the entry (the JS side then runs the js kernel).
 *
 * float32 runs in float32 (scores, SIMD exp, products; row sums gathered in float64), float64 in float64 with
 * a scalar exp. The fused multiply-add of the relaxed-SIMD build is used in the products. Special rows follow
 * the specification: no keys gives output 0 and lse -Infinity, only -Infinity scores give NaN and -Infinity,
 * NaN or +Infinity scores NaN (f32x4.max and f32.max propagate NaN).
 */
import { expFlushF32x4, fmaF32, fmaF64 } from "./math";

/** Query rows per tile. */
const BR = 32;
/** Keys per tile. */
const BC = 64;
/** Rows of the micro-kernel's register tile. */
const MR = 4;

/** Columns of the micro-kernel's register tile: two vectors (8 float32 or 4 float64). */
@inline
function nrOf<T>(): i32 {
  return 32 / sizeof<T>();
}

@inline
function roundUp(x: i32, m: i32): i32 {
  return ((x + m - 1) / m) * m;
}

@inline
function fma<T>(a: v128, b: v128, c: v128): v128 {
  if (sizeof<T>() == 4) return fmaF32(a, b, c);
  return fmaF64(a, b, c);
}

/** Largest lane, NaN if any lane is NaN. */
@inline
function hmax<T>(v: v128): T {
  if (sizeof<T>() == 4) {
    const a = max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1));
    const b = max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3));
    return <T>max(a, b);
  }
  return <T>max(f64x2.extract_lane(v, 0), f64x2.extract_lane(v, 1));
}

/** Sum of the lanes in float64. */
@inline
function hsum<T>(v: v128): f64 {
  if (sizeof<T>() == 4) {
    return (
      <f64>f32x4.extract_lane(v, 0) +
      <f64>f32x4.extract_lane(v, 1) +
      <f64>f32x4.extract_lane(v, 2) +
      <f64>f32x4.extract_lane(v, 3)
    );
  }
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/**
 * exp of each lane: the float32 SIMD exp (math.ts, ~2 ulp; probabilities below e^-87 flushed to 0, see
 * expFlushF32x4) or float64 Math.exp per lane.
 */
@inline
function expV<T>(x: v128): v128 {
  if (sizeof<T>() == 4) return expFlushF32x4(x);
  return f64x2.replace_lane(
    f64x2.splat(Math.exp(f64x2.extract_lane(x, 0))),
    1,
    Math.exp(f64x2.extract_lane(x, 1)),
  );
}

@inline
function expS<T>(x: T): T {
  if (sizeof<T>() == 4) return <f32>x < -87 ? <T>0 : <T>Mathf.exp(<f32>x);
  return <T>Math.exp(<f64>x);
}

/**
 * The micro-kernel: C[MR, NR] (+)= sum_{p < kc} A(i, p) B(p, :), with A(i, p) at a + i rsa + p csa (any byte
 * strides: a row-major tile or a transposed one), row p of B contiguous at b + p rsb and row i of C at
 * c + i ldc. Per p: two loads of B, four broadcasts of A, eight multiply-adds (fused in the relaxed build).
 * Inlined into its two callers (a call per register tile cost ~5% of the backward).
 */
@inline
function micro<T>(
  kc: i32,
  a: usize,
  rsa: usize,
  csa: usize,
  b: usize,
  rsb: usize,
  c: usize,
  ldc: usize,
  beta: bool,
): void {
  let c0a = v128.splat<T>(0);
  let c0b = c0a;
  let c1a = c0a;
  let c1b = c0a;
  let c2a = c0a;
  let c2b = c0a;
  let c3a = c0a;
  let c3b = c0a;
  const a1 = a + rsa;
  const a2 = a1 + rsa;
  const a3 = a2 + rsa;
  let o: usize = 0;
  let bp = b;
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let av = v128.load_splat<T>(a + o);
    c0a = fma<T>(av, b0, c0a);
    c0b = fma<T>(av, b1, c0b);
    av = v128.load_splat<T>(a1 + o);
    c1a = fma<T>(av, b0, c1a);
    c1b = fma<T>(av, b1, c1b);
    av = v128.load_splat<T>(a2 + o);
    c2a = fma<T>(av, b0, c2a);
    c2b = fma<T>(av, b1, c2b);
    av = v128.load_splat<T>(a3 + o);
    c3a = fma<T>(av, b0, c3a);
    c3b = fma<T>(av, b1, c3b);
    o += csa;
    bp += rsb;
  }
  const r1 = c + ldc;
  const r2 = r1 + ldc;
  const r3 = r2 + ldc;
  if (beta) {
    c0a = v128.add<T>(c0a, v128.load(c));
    c0b = v128.add<T>(c0b, v128.load(c, 16));
    c1a = v128.add<T>(c1a, v128.load(r1));
    c1b = v128.add<T>(c1b, v128.load(r1, 16));
    c2a = v128.add<T>(c2a, v128.load(r2));
    c2b = v128.add<T>(c2b, v128.load(r2, 16));
    c3a = v128.add<T>(c3a, v128.load(r3));
    c3b = v128.add<T>(c3b, v128.load(r3, 16));
  }
  v128.store(c, c0a);
  v128.store(c, c0b, 16);
  v128.store(r1, c1a);
  v128.store(r1, c1b, 16);
  v128.store(r2, c2a);
  v128.store(r2, c2b, 16);
  v128.store(r3, c3a);
  v128.store(r3, c3b, 16);
}

/**
 * C[m, n] (+)= A[m, kc] B[kc, n] by micro-kernel tiles; m a multiple of MR, n of NR (the buffers are padded).
 * A(i, p) at a + i rsa + p csa; B row-major with row stride rsb; C row stride ldc (bytes).
 */
function tileGemm<T>(
  m: i32,
  n: i32,
  kc: i32,
  a: usize,
  rsa: usize,
  csa: usize,
  b: usize,
  rsb: usize,
  c: usize,
  ldc: usize,
  beta: bool,
): void {
  const NR = nrOf<T>();
  for (let i = 0; i < m; i += MR) {
    const ai = a + <usize>i * rsa;
    const ci = c + <usize>i * ldc;
    for (let j = 0; j < n; j += NR) {
      const off = <usize>j * sizeof<T>();
      micro<T>(kc, ai, rsa, csa, b + off, rsb, ci + off, ldc, beta);
    }
  }
}

/** tileGemmCausal's limits: which part of each MR-row block of C a causal tile needs. */
const CAUSAL_COLS = 0;
const CAUSAL_KC_END = 1;
const CAUSAL_KC_START = 2;

/**
 * tileGemm over the part of a causal tile that is not masked, for the tile of query rows i0.. and keys j0.. with
 * d = i0 - j0 (query row i0 + r sees the keys j0 + c with c <= r + d). Per block of MR rows i.. of C:
 *   CAUSAL_COLS (C = scores or dP, rows = queries, columns = keys): only the columns c < i + MR + d, rounded up
 *     to NR (the rest of the block's columns is left as it was: the caller zeroes the masked keys);
 *   CAUSAL_KC_END (C = dq, rows = queries, A = dS, the sum over keys p): only p < i + MR + d (the later dS are
 *     exact zeros);
 *   CAUSAL_KC_START (C = dk or dv, rows = keys, A = dS^T or P^T, the sum over query rows p): only p >= i - d
 *     (the earlier rows' dS and P are exact zeros, and skipping leading zero terms leaves the sum's bits as
 *     they were).
 * The limits depend only on indices, so every output element still sums its terms in one order whatever the
 * thread split.
 */
function tileGemmCausal<T>(
  m: i32,
  n: i32,
  kc: i32,
  a: usize,
  rsa: usize,
  csa: usize,
  b: usize,
  rsb: usize,
  c: usize,
  ldc: usize,
  beta: bool,
  how: i32,
  d: i32,
): void {
  const NR = nrOf<T>();
  for (let i = 0; i < m; i += MR) {
    let ai = a + <usize>i * rsa;
    const ci = c + <usize>i * ldc;
    let ni = n;
    let ki = kc;
    let bi = b;
    if (how == CAUSAL_COLS) ni = min(n, max(0, roundUp(i + MR + d, NR)));
    else if (how == CAUSAL_KC_END) ki = min(kc, max(0, i + MR + d));
    else {
      const p0 = min(kc, max(0, i - d));
      ki = kc - p0;
      ai += <usize>p0 * csa;
      bi += <usize>p0 * rsb;
    }
    if (ki == 0 && beta) continue;
    for (let j = 0; j < ni; j += NR) {
      const off = <usize>j * sizeof<T>();
      micro<T>(ki, ai, rsa, csa, bi + off, rsb, ci + off, ldc, beta);
    }
  }
}

/**
 * Whether the n elements at p (contiguous, n a multiple of the lanes) are all finite: x * 0 is NaN for NaN and
 * +-Infinity and +-0 otherwise, so one vector of sums over the buffer stays 0 exactly when every element is.
 */
function allFinite<T>(p: usize, n: i32): bool {
  let acc = v128.splat<T>(0);
  const z = v128.splat<T>(0);
  const end = p + <usize>n * sizeof<T>();
  for (let q = p; q < end; q += 16) acc = v128.add<T>(acc, v128.mul<T>(v128.load(q), z));
  return hsum<T>(acc) == 0;
}

/**
 * Copy n bytes (a multiple of 4) from s to d, not overlapping, by vectors: for the short rows of the staging and
 * the output copies, where memory.copy's call into the runtime cost more than the copy (~1000 calls per batch
 * entry of the Transformer step's backward).
 */
@inline
function copyShort(d: usize, s: usize, n: usize): void {
  let o: usize = 0;
  for (; o + 16 <= n; o += 16) v128.store(d + o, v128.load(s + o));
  for (; o < n; o += 4) store<u32>(d + o, load<u32>(s + o));
}

/** Zero n bytes (a multiple of 4) at d by vectors (as copyShort). */
@inline
function zeroShort(d: usize, n: usize): void {
  const z = v128.splat<i32>(0);
  let o: usize = 0;
  for (; o + 16 <= n; o += 16) v128.store(d + o, z);
  for (; o < n; o += 4) store<u32>(d + o, 0);
}

/**
 * Copy a [rows, cols] operand (byte strides rs, cs) into dst [rowsPad, colsPad] row-major (row stride ldd
 * elements), zero-filling the padding.
 */
function stageRows<T>(
  src: usize,
  rs: i32,
  cs: i32,
  rows: i32,
  cols: i32,
  dst: usize,
  ldd: i32,
  rowsPad: i32,
): void {
  const es = sizeof<T>();
  for (let r = 0; r < rows; r++) {
    const s = src + <usize>(r * rs);
    const d = dst + <usize>(r * ldd) * es;
    if (cs == <i32>es) copyShort(d, s, <usize>cols * es);
    else for (let c = 0; c < cols; c++) store<T>(d + <usize>c * es, load<T>(s + <usize>(c * cs)));
    if (ldd > cols) zeroShort(d + <usize>cols * es, <usize>(ldd - cols) * es);
  }
  if (rowsPad > rows) memory.fill(dst + <usize>(rows * ldd) * es, 0, <usize>((rowsPad - rows) * ldd) * es);
}

/**
 * Copy the transpose of a [rows, cols] operand (byte strides rs, cs) into dst [cols, ldd] row-major:
 * dst[c][r] = src[r][c], the columns r in [rows, ldd) zero. Rows of contiguous elements go by register
 * transposes of 4 x 4 float32 or 2 x 2 float64 blocks, the edges element by element.
 */
function stageT<T>(src: usize, rs: i32, cs: i32, rows: i32, cols: i32, dst: usize, ldd: i32): void {
  const es = sizeof<T>();
  const B = 16 / <i32>es;
  const rb = cs == <i32>es ? rows - (rows % B) : 0;
  const cb = rb > 0 ? cols - (cols % B) : 0;
  const ldb = <usize>ldd * es;
  for (let r = 0; r < rb; r += B) {
    const s0 = src + <usize>(r * rs);
    const d0 = dst + <usize>r * es;
    for (let c = 0; c < cb; c += B) {
      const s = s0 + <usize>c * es;
      const d = d0 + <usize>c * ldb;
      if (sizeof<T>() == 4) {
        const a0 = v128.load(s);
        const a1 = v128.load(s + <usize>rs);
        const a2 = v128.load(s + <usize>(2 * rs));
        const a3 = v128.load(s + <usize>(3 * rs));
        const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5);
        const t1 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
        const t2 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
        const t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
        v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
        v128.store(d + ldb, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
        v128.store(d + 2 * ldb, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
        v128.store(d + 3 * ldb, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
      } else {
        const a0 = v128.load(s);
        const a1 = v128.load(s + <usize>rs);
        v128.store(d, v128.shuffle<f64>(a0, a1, 0, 2));
        v128.store(d + ldb, v128.shuffle<f64>(a0, a1, 1, 3));
      }
    }
  }
  for (let c = 0; c < cols; c++) {
    const s = src + <usize>(c * cs);
    const d = dst + <usize>c * ldb;
    // the columns c < cb have their rows below rb from the blocks
    for (let r = c < cb ? rb : 0; r < rows; r++) store<T>(d + <usize>r * es, load<T>(s + <usize>(r * rs)));
    if (ldd > rows) zeroShort(d + <usize>rows * es, <usize>(ldd - rows) * es);
  }
}

/**
 * Row i of a score tile in place: x = scale s + mask for the keys j < je, -Infinity for je <= j < ncp. The
 * mask row (byte stride mss) is 0 when there is no mask.
 */
@inline
function scoreRow<T>(row: usize, je: i32, ncp: i32, scale: T, mrow: usize, mss: i32): void {
  const es = sizeof<T>();
  const vs = v128.splat<T>(scale);
  for (let j = 0; j < ncp; j += 16 / <i32>es) {
    const q = row + <usize>j * es;
    v128.store(q, v128.mul<T>(v128.load(q), vs));
  }
  if (mrow != 0) {
    for (let j = 0; j < je; j++) {
      const q = row + <usize>j * es;
      store<T>(q, load<T>(q) + load<T>(mrow + <usize>(j * mss)));
    }
  }
  for (let j = je; j < ncp; j++) store<T>(row + <usize>j * es, <T>-Infinity);
}

/**
 * The score tile of the query rows [i0, i0 + nr) against the keys [j0, j0 + nc), shared by the forward and
 * backward passes: ST[nrp, ncp] (row stride BC) = Q[i0.., :E] K^T[:, j0..] by one small GEMM (qt and kt point at
 * the tile's first row of the staged Q [., ep] and column of K^T [E, sp]), then each of its nr rows scaled,
 * masked and set to -Infinity past the row's last key (causal exclusions, padding): scoreRow.
 */
@inline
function scoreTile<T>(
  nr: i32,
  nrp: i32,
  nc: i32,
  ncp: i32,
  e: i32,
  qt: usize,
  ep: i32,
  kt: usize,
  sp: i32,
  st: usize,
  i0: i32,
  j0: i32,
  causal: bool,
  scale: T,
  pm: usize,
  msl: i32,
  mss: i32,
): void {
  const es = sizeof<T>();
  const rowB = <usize>BC * es;
  tileGemm<T>(nrp, ncp, e, qt, <usize>ep * es, es, kt, <usize>sp * es, st, rowB, false);
  for (let i = 0; i < nr; i++) {
    const je = causal ? max(0, min(nc, i0 + i - j0 + 1)) : nc;
    const mrow = pm == 0 ? 0 : pm + <usize>((i0 + i) * msl) + <usize>(j0 * mss);
    scoreRow<T>(st + <usize>i * rowB, je, ncp, scale, mrow, mss);
  }
}

/**
 * Bytes of scratch one attnFwd (backward = 0) or attnBwd (backward = 1) call needs for its entries, in float64
 * (the JS side refuses sizes beyond the memory instead of seeing a wrapped i32).
 */
export function attnWork(l: i32, s: i32, e: i32, ev: i32, es: i32, backward: i32): f64 {
  const NR = 32 / es;
  const lp = <f64>roundUp(l, MR);
  const sp = <f64>roundUp(s, NR);
  const ep = <f64>roundUp(e, NR);
  const evp = <f64>roundUp(ev, NR);
  const fe = <f64>e;
  const fev = <f64>ev;
  let n = lp * ep + fe * sp + sp * evp + <f64>(BR * BC) + <f64>BR * evp;
  if (backward != 0) {
    n = lp * ep + sp * ep + fe * sp + fev * sp + lp * evp + <f64>(2 * BR * BC) + lp * ep + sp * ep + sp * evp;
  }
  // + the row statistics (float64) and 16-byte alignment slack per buffer
  return n * <f64>es + 2 * (lp + <f64>BR) * 8 + 16 * 16;
}

@inline
function align16(p: usize): usize {
  return (p + 15) & ~(<usize>15);
}

/**
 * Rows [r0, r1) of out [L, Ev + 1] (contiguous) = attention of one batch entry (r0 a multiple of BR). q [L, E],
 * k [S, E], v [S, Ev], mask [L, S] (pm = 0: none) at the given pointers with byte strides; work:
 * attnWork(l, s, e, ev, sizeof<T>, 0) bytes.
 */
function attnForward<T>(
  l: i32,
  s: i32,
  e: i32,
  ev: i32,
  pq: usize,
  qsl: i32,
  qse: i32,
  pk: usize,
  ksl: i32,
  kse: i32,
  pv: usize,
  vsl: i32,
  vse: i32,
  pm: usize,
  msl: i32,
  mss: i32,
  causal: bool,
  scale: T,
  out: usize,
  work: usize,
  r0: i32,
  r1: i32,
  flag: usize,
): void {
  if (r1 <= r0) return;
  const es = sizeof<T>();
  const NR = nrOf<T>();
  const lp = roundUp(l, MR);
  const sp = roundUp(s, NR);
  const ep = roundUp(e, NR);
  const evp = roundUp(ev, NR);
  const Q = align16(work);
  const KT = align16(Q + <usize>(lp * ep) * es);
  const V = align16(KT + <usize>(e * sp) * es);
  const ST = align16(V + <usize>(sp * evp) * es);
  const ACC = align16(ST + <usize>(BR * BC) * es);
  const M = align16(ACC + <usize>(BR * evp) * es); // running max per row (f64)
  const LS = M + <usize>BR * 8; // running sum per row (f64)
  // the rows [r0, r1) of q, and the keys those rows see
  stageRows<T>(pq + <usize>(r0 * qsl), qsl, qse, r1 - r0, e, Q + <usize>(r0 * ep) * es, ep, roundUp(r1 - r0, MR));
  const sees = causal ? min(s, r1) : s;
  if (sees > 0) {
    stageT<T>(pk, ksl, kse, sees, e, KT, sp);
    stageRows<T>(pv, vsl, vse, sees, ev, V, evp, sp);
  }
  // under a causal mask the excluded keys meet exact zeros in the products (0 x Inf = NaN where the specification
  // skips them): a non-finite staged element sets the flag, and the JS side runs the js kernel instead
  if (causal) {
    const fin =
      allFinite<T>(Q + <usize>(r0 * ep) * es, roundUp(r1 - r0, MR) * ep) &&
      allFinite<T>(KT, e * sp) &&
      allFinite<T>(V, sp * evp);
    if (!fin) {
      store<i32>(flag, 1);
      return;
    }
  }
  const w = ev + 1;
  const rowB = <usize>BC * es;
  for (let i0 = r0; i0 < r1; i0 += BR) {
    const nr = min(BR, r1 - i0);
    const nrp = roundUp(nr, MR);
    for (let i = 0; i < nr; i++) {
      store<f64>(M + <usize>i * 8, -Infinity);
      store<f64>(LS + <usize>i * 8, 0);
    }
    memory.fill(ACC, 0, <usize>(nrp * evp) * es);
    const send = causal ? min(s, i0 + nr) : s;
    for (let j0 = 0; j0 < send; j0 += BC) {
      const nc = min(BC, send - j0);
      const ncp = roundUp(nc, NR);
      // scores: ST[nrp, ncp] = Q[i0.., :E] K^T[:, j0..], scaled and masked
      const qt = Q + <usize>(i0 * ep) * es;
      scoreTile<T>(nr, nrp, nc, ncp, e, qt, ep, KT + <usize>j0 * es, sp, ST, i0, j0, causal, scale, pm, msl, mss);
      for (let i = 0; i < nr; i++) {
        const row = ST + <usize>i * rowB;
        let vm = v128.splat<T>(<T>-Infinity);
        for (let j = 0; j < ncp; j += 16 / <i32>es) vm = v128.max<T>(vm, v128.load(row + <usize>j * es));
        const mo = load<f64>(M + <usize>i * 8);
        const mn = max(mo, <f64>hmax<T>(vm));
        if (mn == -Infinity) {
          // every score so far masked: nothing to add yet (and nothing from this row into P V)
          memory.fill(row, 0, <usize>ncp * es);
          continue;
        }
        const alpha = expS<T>(<T>(mo - mn));
        const vmn = v128.splat<T>(<T>mn);
        let vsum = v128.splat<T>(0);
        for (let j = 0; j < ncp; j += 16 / <i32>es) {
          const q = row + <usize>j * es;
          const p = expV<T>(v128.sub<T>(v128.load(q), vmn));
          v128.store(q, p);
          vsum = v128.add<T>(vsum, p);
        }
        store<f64>(LS + <usize>i * 8, load<f64>(LS + <usize>i * 8) * <f64>alpha + hsum<T>(vsum));
        store<f64>(M + <usize>i * 8, mn);
        if (alpha != <T>1) {
          const va = v128.splat<T>(alpha);
          const arow = ACC + <usize>(i * evp) * es;
          for (let c = 0; c < evp; c += 16 / <i32>es) {
            const q = arow + <usize>c * es;
            v128.store(q, v128.mul<T>(v128.load(q), va));
          }
        }
      }
      // rows nr..nrp of the tile are padding: zero, so they add nothing (their acc rows are never read)
      if (nrp > nr) memory.fill(ST + <usize>nr * rowB, 0, <usize>(nrp - nr) * rowB);
      // acc[nrp, evp] += P[nrp, nc] V[j0.., :]
      tileGemm<T>(
        nrp,
        evp,
        nc,
        ST,
        rowB,
        es,
        V + <usize>(j0 * evp) * es,
        <usize>evp * es,
        ACC,
        <usize>evp * es,
        true,
      );
    }
    for (let i = 0; i < nr; i++) {
      const o = out + <usize>((i0 + i) * w) * es;
      const none = (causal ? min(s, i0 + i + 1) : s) == 0;
      const sum = load<f64>(LS + <usize>i * 8);
      if (none || sum == 0) {
        const fill: T = none ? <T>0 : <T>NaN;
        for (let c = 0; c < ev; c++) store<T>(o + <usize>c * es, fill);
        store<T>(o + <usize>ev * es, <T>-Infinity);
      } else {
        const inv = 1 / sum;
        const arow = ACC + <usize>(i * evp) * es;
        for (let c = 0; c < ev; c++) store<T>(o + <usize>c * es, <T>(<f64>load<T>(arow + <usize>c * es) * inv));
        store<T>(o + <usize>ev * es, <T>(load<f64>(M + <usize>i * 8) + Math.log(sum)));
      }
    }
  }
}

/**
 * out [L E + S E + S Ev] (contiguous: dq, dk, dv row-major) = the attention VJP of one batch entry, or the part
 * of it this call owns: dq rows [r0, r1) and dk, dv rows [c0, c1) (r0 a multiple of BR, c0 of BC). q, k, v, mask
 * as for attnForward; o and dout [L, Ev + 1] with byte strides; work: attnWork(l, s, e, ev, sizeof<T>, 1) bytes.
 * Owning everything, it makes one pass over the tiles; otherwise two (FlashAttention-2's split): the key tiles
 * [c0, c1) against every query tile for dk, dv, then the query tiles [r0, r1) against every key tile for dq.
 * Either way each output element sums its terms in the same order, so a split gives the same bits.
 */
function attnBackward<T>(
  l: i32,
  s: i32,
  e: i32,
  ev: i32,
  pq: usize,
  qsl: i32,
  qse: i32,
  pk: usize,
  ksl: i32,
  kse: i32,
  pv: usize,
  vsl: i32,
  vse: i32,
  pm: usize,
  msl: i32,
  mss: i32,
  po: usize,
  osl: i32,
  ose: i32,
  pg: usize,
  gsl: i32,
  gse: i32,
  causal: bool,
  scale: T,
  out: usize,
  work: usize,
  r0: i32,
  r1: i32,
  c0: i32,
  c1: i32,
  flag: usize,
): void {
  const es = sizeof<T>();
  const NR = nrOf<T>();
  const lp = roundUp(l, MR);
  const sp = roundUp(s, NR);
  const ep = roundUp(e, NR);
  const evp = roundUp(ev, NR);
  const Q = align16(work);
  const K = align16(Q + <usize>(lp * ep) * es);
  const KT = align16(K + <usize>(sp * ep) * es);
  const VT = align16(KT + <usize>(e * sp) * es);
  const GO = align16(VT + <usize>(ev * sp) * es);
  const ST = align16(GO + <usize>(lp * evp) * es);
  const DP = align16(ST + <usize>(BR * BC) * es);
  const DQ = align16(DP + <usize>(BR * BC) * es);
  const DK = align16(DQ + <usize>(lp * ep) * es);
  const DV = align16(DK + <usize>(sp * ep) * es);
  const DD = align16(DV + <usize>(sp * evp) * es); // D_i (f64)
  const LSE = DD + <usize>lp * 8; // lse_i (f64)
  memory.fill(DQ, 0, <usize>(lp * ep) * es);
  memory.fill(DK, 0, <usize>(sp * ep) * es);
  memory.fill(DV, 0, <usize>(sp * evp) * es);
  if (l > 0 && s > 0) {
    stageRows<T>(pq, qsl, qse, l, e, Q, ep, lp);
    stageRows<T>(pk, ksl, kse, s, e, K, ep, sp);
    stageT<T>(pk, ksl, kse, s, e, KT, sp);
    stageT<T>(pv, vsl, vse, s, ev, VT, sp);
    stageRows<T>(pg, gsl, gse, l, ev, GO, evp, lp);
    for (let i = 0; i < l; i++) {
      const orow = po + <usize>(i * osl);
      const grow = pg + <usize>(i * gsl);
      let d: f64 = 0;
      for (let c = 0; c < ev; c++) d += <f64>load<T>(grow + <usize>(c * gse)) * <f64>load<T>(orow + <usize>(c * ose));
      store<f64>(DD + <usize>i * 8, d - <f64>load<T>(grow + <usize>(ev * gse)));
      store<f64>(LSE + <usize>i * 8, <f64>load<T>(orow + <usize>(ev * ose)));
    }
    // as in the forward: under a causal mask, non-finite q, k, v or dout run the js kernel (0 x Inf = NaN; the
    // lse column of dout only enters D, which meets the excluded keys as the exact zeros written into dS)
    if (causal) {
      const fin =
        allFinite<T>(Q, lp * ep) &&
        allFinite<T>(K, sp * ep) &&
        allFinite<T>(VT, ev * sp) &&
        allFinite<T>(GO, lp * evp);
      if (!fin) {
        store<i32>(flag, 1);
        return;
      }
    }
  }
  const rowB = <usize>BC * es;
  const lanes = 16 / <i32>es;
  const vscale = v128.splat<T>(scale);
  const whole = r0 <= 0 && r1 >= l && c0 <= 0 && c1 >= s;
  // pass 0: everything at once; pass 1: keys [c0, c1), dk and dv only; pass 2: rows [r0, r1), dq only
  const lastPass = whole ? 0 : 2;
  for (let pass = whole ? 0 : 1; pass <= lastPass; pass++) {
    const doKV = pass != 2;
    const doQ = pass != 1;
    const qb = pass == 2 ? r1 : l;
    const ka = pass == 1 ? c0 : 0;
    const kb = pass == 1 ? c1 : s;
    for (let i0 = pass == 2 ? r0 : 0; i0 < qb && s > 0; i0 += BR) {
      const nr = min(BR, qb - i0);
      const nrp = roundUp(nr, MR);
      const send = min(kb, causal ? min(s, i0 + nr) : s);
      for (let j0 = ka; j0 < send; j0 += BC) {
        const nc = min(BC, send - j0);
        const ncp = roundUp(nc, NR);
        const qt = Q + <usize>(i0 * ep) * es;
        const gt = GO + <usize>(i0 * evp) * es;
        // scores and dP = dO V^T for the tile (under a causal mask only the blocks left of the diagonal)
        const d = i0 - j0;
        const kt = KT + <usize>j0 * es;
        const vt = VT + <usize>j0 * es;
        if (causal) {
          tileGemmCausal<T>(nrp, ncp, e, qt, <usize>ep * es, es, kt, <usize>sp * es, ST, rowB, false, CAUSAL_COLS, d);
          tileGemmCausal<T>(nrp, ncp, ev, gt, <usize>evp * es, es, vt, <usize>sp * es, DP, rowB, false, CAUSAL_COLS, d);
        } else {
          tileGemm<T>(nrp, ncp, e, qt, <usize>ep * es, es, kt, <usize>sp * es, ST, rowB, false);
          tileGemm<T>(nrp, ncp, ev, gt, <usize>evp * es, es, vt, <usize>sp * es, DP, rowB, false);
        }
        for (let i = 0; i < nr; i++) {
          const row = ST + <usize>i * rowB;
          const drow = DP + <usize>i * rowB;
          const je = causal ? max(0, min(nc, i + d + 1)) : nc;
          const jv = roundUp(je, lanes);
          // x = scale s (+ mask): with a mask x is formed in place first (same operations as scoreRow), and the
          // vector pass below then multiplies by 1
          let vs = vscale;
          if (pm != 0) {
            const mrow = pm + <usize>((i0 + i) * msl) + <usize>(j0 * mss);
            for (let j = 0; j < je; j++) {
              const q = row + <usize>j * es;
              store<T>(q, load<T>(q) * scale + load<T>(mrow + <usize>(j * mss)));
            }
            vs = v128.splat<T>(<T>1);
          }
          const vl = v128.splat<T>(<T>load<f64>(LSE + <usize>(i0 + i) * 8));
          const vd = v128.splat<T>(<T>load<f64>(DD + <usize>(i0 + i) * 8));
          // P = exp(x - lse) and dS = scale P (dP - D) over the vectors holding keys < je, then exact zeros
          for (let j = 0; j < jv; j += lanes) {
            const o = <usize>j * es;
            const p = expV<T>(v128.sub<T>(v128.mul<T>(v128.load(row + o), vs), vl));
            v128.store(row + o, p);
            v128.store(drow + o, v128.mul<T>(vscale, v128.mul<T>(p, v128.sub<T>(v128.load(drow + o), vd))));
          }
          for (let j = je; j < jv; j++) {
            store<T>(row + <usize>j * es, 0);
            store<T>(drow + <usize>j * es, 0);
          }
          if (ncp > jv) {
            zeroShort(row + <usize>jv * es, <usize>(ncp - jv) * es);
            zeroShort(drow + <usize>jv * es, <usize>(ncp - jv) * es);
          }
        }
        // dv[j0.., :] += P^T dO,  dk[j0.., :] += dS^T Q   (P^T read through swapped strides; kc = the tile's rows)
        const dvt = DV + <usize>(j0 * evp) * es;
        const dkt = DK + <usize>(j0 * ep) * es;
        if (doKV && causal) {
          tileGemmCausal<T>(ncp, evp, nr, ST, es, rowB, gt, <usize>evp * es, dvt, <usize>evp * es, true, CAUSAL_KC_START, d);
          tileGemmCausal<T>(ncp, ep, nr, DP, es, rowB, qt, <usize>ep * es, dkt, <usize>ep * es, true, CAUSAL_KC_START, d);
        } else if (doKV) {
          tileGemm<T>(ncp, evp, nr, ST, es, rowB, gt, <usize>evp * es, dvt, <usize>evp * es, true);
          tileGemm<T>(ncp, ep, nr, DP, es, rowB, qt, <usize>ep * es, dkt, <usize>ep * es, true);
        }
        // dq[i0.., :] += dS K[j0.., :]   (rows nr..nrp of dS are never zeroed: they only reach padded dq rows)
        const kr = K + <usize>(j0 * ep) * es;
        const dqt = DQ + <usize>(i0 * ep) * es;
        if (doQ && causal) {
          tileGemmCausal<T>(nrp, ep, nc, DP, rowB, es, kr, <usize>ep * es, dqt, <usize>ep * es, true, CAUSAL_KC_END, d);
        } else if (doQ) {
          tileGemm<T>(nrp, ep, nc, DP, rowB, es, kr, <usize>ep * es, dqt, <usize>ep * es, true);
        }
      }
    }
  }
  // out: dq [L, E], dk [S, E], dv [S, Ev]; the rows this call owns
  const ue = <usize>e * es;
  const uev = <usize>ev * es;
  for (let i = max(r0, 0); i < min(r1, l); i++) copyShort(out + <usize>i * ue, DQ + <usize>(i * ep) * es, ue);
  const dkOut = out + <usize>l * ue;
  const dvOut = dkOut + <usize>s * ue;
  for (let j = max(c0, 0); j < min(c1, s); j++) {
    copyShort(dkOut + <usize>j * ue, DK + <usize>(j * ep) * es, ue);
    copyShort(dvOut + <usize>j * uev, DV + <usize>(j * evp) * es, uev);
  }
}

/**
 * Forward attention of `count` batch entries: entry t's pointers (q, k, v, mask or 0, out) are the five i32 at
 * table + 20 t; sizes and byte strides as for attnForward, shared by every entry. es: 4 (float32) or 8
 * (float64). Entries run one after the other on this thread, reusing `work` (attnWork(..., 0) bytes); each
 * computes its query rows [r0, r1) (r0 a multiple of 32), so that threads may share one entry's rows. flag: an
 * i32 the JS side zeroed, set to 1 when a causal entry stages a non-finite operand (see the header).
 */
export function attnFwd(
  es: i32,
  count: i32,
  table: usize,
  l: i32,
  s: i32,
  e: i32,
  ev: i32,
  qsl: i32,
  qse: i32,
  ksl: i32,
  kse: i32,
  vsl: i32,
  vse: i32,
  msl: i32,
  mss: i32,
  causal: i32,
  scale: f64,
  work: usize,
  r0: i32,
  r1: i32,
  flag: usize,
): void {
  for (let t = 0; t < count; t++) {
    const p = table + <usize>t * 20;
    const pq = <usize>load<u32>(p);
    const pk = <usize>load<u32>(p, 4);
    const pv = <usize>load<u32>(p, 8);
    const pm = <usize>load<u32>(p, 12);
    const po = <usize>load<u32>(p, 16);
    if (es == 4) {
      attnForward<f32>(l, s, e, ev, pq, qsl, qse, pk, ksl, kse, pv, vsl, vse, pm, msl, mss, causal != 0, <f32>scale, po, work, r0, r1, flag);
    } else {
      attnForward<f64>(l, s, e, ev, pq, qsl, qse, pk, ksl, kse, pv, vsl, vse, pm, msl, mss, causal != 0, scale, po, work, r0, r1, flag);
    }
  }
}

/**
 * The attention VJP of `count` batch entries: entry t's pointers (q, k, v, mask or 0, o, dout, out) are the
 * seven i32 at table + 28 t; the rest as for attnFwd and attnBackward (work: attnWork(..., 1) bytes): each
 * entry's dq rows [r0, r1) and dk, dv rows [c0, c1), so that threads may share one entry; flag as for attnFwd.
 */
export function attnBwd(
  es: i32,
  count: i32,
  table: usize,
  l: i32,
  s: i32,
  e: i32,
  ev: i32,
  qsl: i32,
  qse: i32,
  ksl: i32,
  kse: i32,
  vsl: i32,
  vse: i32,
  msl: i32,
  mss: i32,
  osl: i32,
  ose: i32,
  gsl: i32,
  gse: i32,
  causal: i32,
  scale: f64,
  work: usize,
  r0: i32,
  r1: i32,
  c0: i32,
  c1: i32,
  flag: usize,
): void {
  for (let t = 0; t < count; t++) {
    const p = table + <usize>t * 28;
    const pq = <usize>load<u32>(p);
    const pk = <usize>load<u32>(p, 4);
    const pv = <usize>load<u32>(p, 8);
    const pm = <usize>load<u32>(p, 12);
    const po = <usize>load<u32>(p, 16);
    const pg = <usize>load<u32>(p, 20);
    const out = <usize>load<u32>(p, 24);
    if (es == 4) {
      attnBackward<f32>(
        l, s, e, ev, pq, qsl, qse, pk, ksl, kse, pv, vsl, vse, pm, msl, mss, po, osl, ose, pg, gsl, gse,
        causal != 0, <f32>scale, out, work, r0, r1, c0, c1, flag,
      );
    } else {
      attnBackward<f64>(
        l, s, e, ev, pq, qsl, qse, pk, ksl, kse, pv, vsl, vse, pm, msl, mss, po, osl, ose, pg, gsl, gse,
        causal != 0, scale, out, work, r0, r1, c0, c1, flag,
      );
    }
  }
}
