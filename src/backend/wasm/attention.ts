/**
 * Fused scaled dot-product attention of the wasm backend (Backend.attention, Backend.attentionBackward; kernels
 * in wasm/assembly/attention.ts, flash-style: query tiles, keys streamed in tiles, online softmax, no [L, S]
 * matrix). The operands are staged into the arena as they are (strides kept, so a stride-0 broadcast mask stays
 * one row), a table of every batch entry's pointers is written beside them, and the kernel runs the entries;
 * with the worker pool (threads.ts) and enough work, the entries are split into one contiguous range per
 * thread, each with its own work buffer (every entry writes only its own output, so the result does not
 * depend on the split). The output is copied out at the end.
 * float32 and float64; other dtypes, or operands whose shapes or dtypes disagree, return false (the js kernel
 * then runs and reports the error).
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import { assertOutSize } from "../js/strided.ts";
import {
  type Ctx,
  type Operand,
  type Scope,
  compact,
  span,
  stageIn,
  stageOut,
  withScope,
} from "./context.ts";
import type { CALLS } from "./threads.ts";

/** Calls with fewer multiply-adds than this run on one thread (a hand-off costs ~10-50 us). */
const MIN_WORK = 1 << 21;

/** Sizes of one call: nb batch entries, L queries, S keys, E and Ev features; null if the shapes disagree. */
function dims(
  q: View,
  k: View,
  v: View,
  mask: View | null,
): { lead: number[]; nb: number; l: number; s: number; e: number; ev: number } | null {
  const nd = q.shape.length;
  if (nd < 2 || k.shape.length !== nd || v.shape.length !== nd) return null;
  if (mask !== null && mask.shape.length !== nd) return null;
  const lead = q.shape.slice(0, nd - 2);
  for (let d = 0; d < nd - 2; d++) {
    const n = lead[d];
    if (k.shape[d] !== n || v.shape[d] !== n || (mask !== null && mask.shape[d] !== n)) return null;
  }
  const [l, e] = q.shape.slice(nd - 2);
  const s = k.shape[nd - 2];
  const ev = v.shape[nd - 1];
  if (k.shape[nd - 1] !== e || v.shape[nd - 2] !== s) return null;
  if (mask !== null && (mask.shape[nd - 2] !== l || mask.shape[nd - 1] !== s)) return null;
  // the kernels take i32 sizes (anything larger could not be staged anyway)
  if (Math.max(l, s, e, ev) > 0x7fffffff) return null;
  return { lead, nb: sizeOf(lead), l, s, e, ev };
}

/** The common float dtype of the arrays, or null. */
function floatDtype(arrays: readonly TypedArray[]): "float32" | "float64" | null {
  const dt = dtypeOfTyped(arrays[0]);
  if (dt !== "float32" && dt !== "float64") return null;
  return arrays.every((a) => dtypeOfTyped(a) === dt) ? dt : null;
}

/**
 * The kernels' flag word, zeroed: under a causal mask a kernel that stages a NaN or an infinity in q, k, v or
 * dout sets it and stops, and the call returns false so that the js kernel runs (the specification skips the
 * keys j > i, whereas the tiled products multiply them by an exact 0, and 0 x Inf = NaN). The check runs over
 * the kernel's staged copies, which it reads anyway (a check in JavaScript over strided views cost ~2 ms per
 * [32, 4, 128, 32] operand, a fifth of the Transformer step's attention backward).
 */
function newFlag(c: Ctx, sc: Scope): number {
  const flag = sc.alloc(16);
  c.heap.i32[flag >> 2] = 0;
  return flag;
}

/**
 * Views into one array (q, k and v split from one packed projection) copied in as one span when that is no
 * longer than their separate spans: stageIn's copies then find it (Scope.copyIn reuses an enclosing copy), so
 * the packed [B, L, 3 H E] buffer is copied once instead of three nearly whole times.
 */
function stageShared(sc: Scope, views: readonly (View | null)[]): void {
  const seen = new Set<TypedArray>();
  for (const v of views) {
    if (v === null || seen.has(v.data) || sizeOf(v.shape) === 0) continue;
    seen.add(v.data);
    const group = views.filter((w): w is View => w !== null && w.data === v.data && sizeOf(w.shape) > 0);
    if (group.length < 2) continue;
    let lo = Infinity;
    let hi = -Infinity;
    let sum = 0;
    let copies = true; // stageIn copies each one's span (rather than gathering its elements)
    for (const w of group) {
      const [a, b] = span(w);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
      sum += b - a + 1;
      copies &&= compact(b - a + 1, sizeOf(w.shape));
    }
    if (copies && hi - lo + 1 <= sum) sc.copyIn(v.data, lo, hi - lo + 1);
  }
}

/** A staged operand: its element pointer and element strides (an empty view gets a harmless pointer). */
function stage(c: Ctx, s: Scope, v: View | null, dummy: number): Operand | null {
  if (v === null) return null;
  if (sizeOf(v.shape) === 0) return { ptr: dummy, strides: v.strides.map(() => 0) };
  return stageIn(c, s, v);
}

/**
 * Write the pointer table: for each batch entry (row-major over `lead`), the entry's pointer in each operand
 * (null operands give 0) and then its output pointer (out + entry * outBytes), as i32 at `table`.
 */
function writeTable(
  c: Ctx,
  table: number,
  lead: readonly number[],
  ops: readonly (Operand | null)[],
  es: number,
  out: number,
  outBytes: number,
): void {
  const nb = sizeOf(lead);
  const idx = new Array<number>(lead.length).fill(0);
  const t = c.heap.i32;
  let w = table >> 2;
  for (let b = 0; b < nb; b++) {
    for (const o of ops) {
      let off = 0;
      if (o !== null) for (let d = 0; d < lead.length; d++) off += idx[d] * o.strides[d];
      t[w++] = o === null ? 0 : o.ptr + off * es;
    }
    t[w++] = out + b * outBytes;
    for (let d = lead.length - 1; d >= 0; d--) {
      if (++idx[d] < lead[d]) break;
      idx[d] = 0;
    }
  }
}

/** Query rows and keys per tile of the kernels (wasm/assembly/attention.ts BR, BC): ranges start at multiples. */
const BR = 32;
const BC = 64;

/**
 * Boundaries t = 0..parts of `n` items split into `parts` ranges of equal work, at multiples of `unit`: equal
 * counts, or under a causal mask equal areas of the triangle, where item i costs ~i (`rising`, query rows) or
 * ~n - i (keys).
 */
function cuts(n: number, parts: number, unit: number, causal: boolean, rising: boolean): number[] {
  const share = (f: number) => (!causal ? f : rising ? Math.sqrt(f) : 1 - Math.sqrt(1 - f));
  const out = [0];
  for (let t = 1; t < parts; t++) out.push(Math.min(n, Math.round((n * share(t / parts)) / unit) * unit));
  out.push(n);
  return out;
}

/**
 * Run kernel `name` over nb batch entries whose table rows are `row` bytes apart: args(count, table, work, r0,
 * r1, c0, c1) gives one call's arguments (the query rows [r0, r1) and, for the backward, the keys [c0, c1) it
 * owns in each entry). One thread, or, on the pool with enough work (`flops` multiply-adds per entry), one
 * contiguous range of entries per thread, each with its own `workBytes` of scratch; with fewer entries than
 * threads the threads share every entry, one range of query rows (and keys, when `keys` is given) each,
 * balanced for the triangle of a causal mask. Every output element sums its terms in the same order whatever the
 * split, so results do not depend on the thread count.
 */
function runEntries(
  c: Ctx,
  s: Scope,
  name: (typeof CALLS)[number],
  nb: number,
  l: number,
  keys: number | null,
  causal: boolean,
  table: number,
  row: number,
  flops: number,
  workBytes: number,
  args: (
    count: number,
    table: number,
    work: number,
    r0: number,
    r1: number,
    c0: number,
    c1: number,
  ) => number[],
): void {
  const S = keys ?? 0;
  const pool = c.pool?.threads ?? 1;
  const share = nb < pool && (l > BR || S > BC);
  const threads = Math.min(pool, share ? Math.max(Math.ceil(l / BR), Math.ceil(S / BC)) : nb);
  if (threads <= 1 || nb * flops < MIN_WORK) {
    c.k[name](...args(nb, table, s.alloc(workBytes), 0, l, 0, S));
    return;
  }
  const jobs: number[][] = [];
  if (share) {
    const rc = cuts(l, threads, BR, causal, true);
    const kc = cuts(S, threads, BC, causal, false);
    for (let t = 0; t < threads; t++) {
      if (rc[t + 1] > rc[t] || kc[t + 1] > kc[t]) {
        jobs.push(args(nb, table, s.alloc(workBytes), rc[t], rc[t + 1], kc[t], kc[t + 1]));
      }
    }
  } else {
    const chunk = Math.ceil(nb / threads);
    for (let b0 = 0; b0 < nb; b0 += chunk) {
      jobs.push(args(Math.min(chunk, nb - b0), table + b0 * row, s.alloc(workBytes), 0, l, 0, S));
    }
  }
  c.pool!.call(c.k, name, jobs);
}

/** Byte strides of the last two axes of a staged operand ([0, 0] for none). */
function inner(o: Operand | null, es: number): [number, number] {
  if (o === null) return [0, 0];
  const n = o.strides.length;
  return [o.strides[n - 2] * es, o.strides[n - 1] * es];
}

/** Backend.attention in wasm; false for dtypes or shapes it does not handle. */
export function attention(
  c: Ctx,
  q: View,
  k: View,
  v: View,
  mask: View | null,
  causal: boolean,
  scale: number,
  out: TypedArray,
): boolean {
  const dt = floatDtype([q.data, k.data, v.data, out, ...(mask === null ? [] : [mask.data])]);
  const d = dims(q, k, v, mask);
  if (dt === null || d === null) return false;
  const { lead, nb, l, s, e, ev } = d;
  const n = nb * l * (ev + 1);
  assertOutSize("attention", out, n);
  if (n === 0) return true;
  const es = out.BYTES_PER_ELEMENT;
  return withScope(c, (sc) => {
    const O = stageOut(c, sc, out, n);
    const table = sc.alloc(nb * 5 * 4);
    const flag = newFlag(c, sc);
    stageShared(sc, [q, k, v, mask]);
    const ops = [q, k, v, mask].map((x) => stage(c, sc, x, table));
    const [Q, K, V, M] = ops;
    const [qsl, qse] = inner(Q, es);
    const [ksl, kse] = inner(K, es);
    const [vsl, vse] = inner(V, es);
    const [msl, mss] = inner(M, es);
    writeTable(c, table, lead, ops, es, O.ptr, l * (ev + 1) * es);
    const work = c.k.attnWork(l, s, e, ev, es, 0);
    runEntries(
      c,
      sc,
      "attnFwd",
      nb,
      l,
      null,
      causal,
      table,
      5 * 4,
      l * s * (e + ev),
      work,
      (count, tab, wk, r0, r1) => [
        es,
        count,
        tab,
        l,
        s,
        e,
        ev,
        qsl,
        qse,
        ksl,
        kse,
        vsl,
        vse,
        msl,
        mss,
        causal ? 1 : 0,
        scale,
        wk,
        r0,
        r1,
        flag,
      ],
    );
    if (c.heap.i32[flag >> 2] !== 0) return false;
    O.finish();
    return true;
  });
}

/** Backend.attentionBackward in wasm; false for dtypes or shapes it does not handle. */
export function attentionBackward(
  c: Ctx,
  q: View,
  k: View,
  v: View,
  mask: View | null,
  o: View,
  dout: View,
  causal: boolean,
  scale: number,
  out: TypedArray,
): boolean {
  const dt = floatDtype([
    q.data,
    k.data,
    v.data,
    o.data,
    dout.data,
    out,
    ...(mask === null ? [] : [mask.data]),
  ]);
  const d = dims(q, k, v, mask);
  if (dt === null || d === null) return false;
  const { lead, nb, l, s, e, ev } = d;
  const nd = q.shape.length;
  for (const t of [o, dout]) {
    if (t.shape.length !== nd || t.shape[nd - 2] !== l || t.shape[nd - 1] !== ev + 1) return false;
    for (let a = 0; a < nd - 2; a++) if (t.shape[a] !== lead[a]) return false;
  }
  const per = l * e + s * e + s * ev;
  assertOutSize("attentionBackward", out, nb * per);
  if (nb * per === 0) return true;
  const es = out.BYTES_PER_ELEMENT;
  return withScope(c, (sc) => {
    const O = stageOut(c, sc, out, nb * per);
    const table = sc.alloc(nb * 7 * 4);
    const flag = newFlag(c, sc);
    stageShared(sc, [q, k, v, mask, o, dout]);
    const ops = [q, k, v, mask, o, dout].map((x) => stage(c, sc, x, table));
    const [Q, K, V, M, OO, G] = ops;
    const [qsl, qse] = inner(Q, es);
    const [ksl, kse] = inner(K, es);
    const [vsl, vse] = inner(V, es);
    const [msl, mss] = inner(M, es);
    const [osl, ose] = inner(OO, es);
    const [gsl, gse] = inner(G, es);
    writeTable(c, table, lead, ops, es, O.ptr, per * es);
    const work = c.k.attnWork(l, s, e, ev, es, 1);
    runEntries(
      c,
      sc,
      "attnBwd",
      nb,
      l,
      s,
      causal,
      table,
      7 * 4,
      3 * l * s * (e + ev),
      work,
      (count, tab, wk, r0, r1, c0, c1) => [
        es,
        count,
        tab,
        l,
        s,
        e,
        ev,
        qsl,
        qse,
        ksl,
        kse,
        vsl,
        vse,
        msl,
        mss,
        osl,
        ose,
        gsl,
        gse,
        causal ? 1 : 0,
        scale,
        wk,
        r0,
        r1,
        c0,
        c1,
        flag,
      ],
    );
    if (c.heap.i32[flag >> 2] !== 0) return false;
    O.finish();
    return true;
  });
}
