/**
 * The control-flow call rules: `scan`, `cond` (also switch) and `while`, each a `CallRule` built from closed
 * programs alone (its `params`), so a recorded equation is evaluated, differentiated and batched again from the
 * program (`evalJaxpr`, jit's executor). Per trace:
 *
 * - evaluation (concrete operands): scan and while run their body program in a loop through a jit executor
 *   compiled once per body; cond runs the chosen branch (the index is read here, never earlier).
 * - makeJaxpr/jit: one equation holding the bodies (`CallRule.staged`).
 * - jvp: the same construct over the JVP of its bodies, tangents carried beside the primals.
 * - vjp: scan runs a forward scan of the body's known half, which also emits the per-step residuals, then the
 *   reverse scan of the body's backward half (accumulating the cotangents of loop constants in its carry);
 *   cond runs a cond of the branches' forward halves (each branch fills its own residuals, zeros for the
 *   others'), then a cond of their backward halves on the same index; while is forward-mode only.
 * - vmap (`CallRule.batch`): bodies batched as programs; a carry that becomes batched is broadcast first (a
 *   fixed point over the carries); a batched cond index runs every branch and selects per example; a batched
 *   while predicate iterates while any example continues, freezing finished examples with `where`.
 */
import { isFloat } from "../dtype.ts";
import { AutodiffError } from "../errors.ts";
import { any } from "../ops/reduce.ts";
import { where } from "../ops/math.ts";
import { broadcast, concat, permute, reshape, slice } from "../prims/movement.ts";
import { allocOut, getBackend, viewOf } from "../prims/impl.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  allConcrete,
  avalOf,
  batchProgram,
  groups,
  jvpProgram,
  memo,
  partialEval,
  runProgram,
  traceProgram,
  vjpProgram,
} from "./control-programs.ts";
import { accumulate, zerosLike } from "./helpers.ts";
import { evalFlat } from "./jaxpr-eval.ts";
import { Program } from "./jaxpr.ts";
import { simplifyProgram } from "./jit-simplify.ts";
import type { Aval } from "./primitive.ts";
import { bindCall, type CallRule } from "./trace.ts";

const isF = (a: Aval) => isFloat(a.dtype);
const castTo = (t: Tensor, like: Aval) => (t.dtype === like.dtype ? t : t.to(like.dtype));

// ---- scan ----------------------------------------------------------------------------------------------------

/** Operands `[consts, carry, xs]`; the body maps `[consts, carry, x] -> [carry', y]`; results `[carry, ys]`. */
export interface ScanParams {
  readonly length: number;
  readonly reverse: boolean;
  readonly numConsts: number;
  readonly numCarry: number;
  readonly body: Program;
}

export function bindScan(params: ScanParams, args: readonly Tensor[]): Tensor[] {
  const { body, numCarry: nk, length } = params;
  const outAvals = body.outs.map((o, i) =>
    i < nk ? avalOf(o) : { shape: [length, ...o.shape], dtype: o.dtype },
  );
  const rule: CallRule = {
    name: "scan",
    staged: { params, outAvals },
    fn: (xs) => scanEval(params, xs),
    jvp: (ps, ts) => scanJvp(params, ps, ts),
    vjp: (ps) => scanVjp(params, ps),
    batch: (vals, b, size) => scanBatch(params, vals, b, size),
  };
  return bindCall(rule, args);
}

/** Row i of x (a view). */
function rowOf(x: Tensor, i: number): Tensor {
  const rest = x.shape.slice(1);
  return reshape(
    slice(
      x,
      x.shape.map((_, d) => (d === 0 ? i : 0)),
      x.shape.map(() => 1),
      [1, ...rest],
    ),
    rest,
  );
}

/** Stack per-step values along a new leading axis. */
function stackRows(rows: readonly Tensor[], av: Aval): Tensor {
  if (rows.length === 0) return zerosLike({ shape: [0, ...av.shape], dtype: av.dtype });
  const parts = rows.map((r) => reshape(r, [1, ...av.shape]));
  return parts.length === 1 ? parts[0] : concat(parts, 0);
}

/**
 * The carries (inputs `offset + j`) a loop step may donate to the body's executor, so their buffers are reused
 * for the next carry: those computed by the previous step and shared with nothing the loop keeps (`kept`: the
 * operands and the ys). Null when the body has call equations (their outputs may view an input the executor
 * does not track), or when nothing qualifies.
 */
function donatable(carry: readonly Tensor[], offset: number, kept: Set<unknown> | null): Set<number> | null {
  if (kept === null) return null;
  let d: Set<number> | null = null;
  carry.forEach((c, j) => {
    if (c._data !== null && !kept.has(c._data)) (d ??= new Set()).add(offset + j);
  });
  return d;
}

function scanEval(params: ScanParams, args: readonly Tensor[]): Tensor[] {
  const { body, length, reverse, numConsts: nc, numCarry: nk } = params;
  const consts = args.slice(0, nc);
  let carry = args.slice(nc, nc + nk);
  const xs = args.slice(nc + nk);
  const ny = body.outs.length - nk;
  const concrete = allConcrete(args);
  if (!concrete || length === 0) return scanEvalRows(params, args);
  // the stacked ys are allocated once (from the enclosing executor's arena when a jitted program runs this
  // scan) and each step's ys are written into their rows: no per-step result is kept alive
  const stacked = body.outs.slice(nk).map((o) => allocOut({ shape: [length, ...o.shape], dtype: o.dtype }));
  // storage the loop must never recycle: the operands and the stacked ys
  const donate = memo(body, "loop-donate", () => body.eqns.every((e) => e.prim !== null));
  const kept = donate
    ? new Set<unknown>([...args.map((a) => a._data), ...stacked.map((y) => y._data)])
    : null;
  const dest: (Tensor | null)[] = new Array(nk + ny).fill(null);
  const ins: Tensor[] = new Array(nc + nk + xs.length);
  for (let j = 0; j < nc; j++) ins[j] = consts[j];
  for (let t = 0; t < length; t++) {
    const i = reverse ? length - 1 - t : t;
    for (let j = 0; j < nk; j++) ins[nc + j] = carry[j];
    for (let j = 0; j < xs.length; j++) ins[nc + nk + j] = rowOf(xs[j], i);
    for (let j = 0; j < ny; j++) dest[nk + j] = rowOf(stacked[j], i);
    const outs = runProgram(body, ins, t > 0 ? donatable(carry, nc, kept) : null, dest);
    carry = outs.slice(0, nk);
    for (let j = 0; j < ny; j++) {
      const y = outs[nk + j];
      if (y !== dest[nk + j]) copyInto(y, dest[nk + j]!); // (evaluated, not run by the executor)
    }
  }
  return [...carry, ...stacked];
}

/** Copy `src` into the contiguous `dst` of its shape. */
function copyInto(src: Tensor, dst: Tensor): void {
  getBackend().copy(viewOf(src), viewOf(dst));
}

/** scanEval on operands that may be tracers: every step's ys kept and stacked at the end. */
function scanEvalRows(params: ScanParams, args: readonly Tensor[]): Tensor[] {
  const { body, length, reverse, numConsts: nc, numCarry: nk } = params;
  const consts = args.slice(0, nc);
  let carry = args.slice(nc, nc + nk);
  const xs = args.slice(nc + nk);
  const ny = body.outs.length - nk;
  const ys: Tensor[][] = Array.from({ length: ny }, () => new Array<Tensor>(length));
  for (let t = 0; t < length; t++) {
    const i = reverse ? length - 1 - t : t;
    const outs = runProgram(body, [...consts, ...carry, ...xs.map((x) => rowOf(x, i))]);
    carry = outs.slice(0, nk);
    for (let j = 0; j < ny; j++) ys[j][i] = outs[nk + j];
  }
  return [...carry, ...ys.map((rows, j) => stackRows(rows, body.outs[nk + j]))];
}

function scanJvp(params: ScanParams, ps: readonly Tensor[], ts: readonly Tensor[]): [Tensor[], Tensor[]] {
  const { body, length, reverse, numConsts: nc, numCarry: nk } = params;
  const nx = ps.length - nc - nk;
  const ny = body.outs.length - nk;
  const jp = jvpProgram(body, [nc, nk, nx], [nk, ny]);
  const args: Tensor[] = [];
  const pg = groups(ps, [nc, nk, nx]);
  const tg = groups(ts, [nc, nk, nx]);
  pg.forEach((g, k) => {
    args.push(...g);
    g.forEach((p, i) => {
      if (isFloat(p.dtype)) args.push(castTo(tg[k][i], p));
    });
  });
  const nfc = pg[0].filter(isF).length;
  const nfk = pg[1].filter(isF).length;
  const outs = bindScan({ body: jp, length, reverse, numConsts: nc + nfc, numCarry: nk + nfk }, args);
  return splitTangents(outs, [nk, ny]);
}

/** `[a, ta, b, tb]` (tangents of floating-point members only) -> `[[a, b], [ta', tb']]` with zero tangents filled. */
function splitTangents(outs: readonly Tensor[], sizes: readonly number[]): [Tensor[], Tensor[]] {
  const prim: Tensor[] = [];
  const tan: Tensor[] = [];
  let k = 0;
  for (const n of sizes) {
    const g = outs.slice(k, k + n);
    k += n;
    prim.push(...g);
    for (const o of g) tan.push(isFloat(o.dtype) ? outs[k++] : zerosLike(o));
  }
  return [prim, tan];
}

function scanVjp(
  params: ScanParams,
  ps: readonly Tensor[],
): { outs: Tensor[]; backward: (cts: readonly Tensor[]) => Tensor[] } {
  const { body, length, reverse, numConsts: nc, numCarry: nk } = params;
  const nIn = body.invars.length;
  const nx = nIn - nc - nk;
  const ny = body.outs.length - nk;
  const { split, fwd, fromY } = memo(body, `scan-split:${nc}:${nk}`, () => {
    const vp = vjpProgram(body);
    const sp = partialEval(
      vp,
      vp.invars.map((_, i) => (i < nc ? "C" : i < nIn ? "K" : "U")),
      body.outs.length,
      vp.invars.map((_, i) => i >= nc + nk && i < nIn),
    );
    // a residual that is also one of the ys (often the carry itself) is read from the stacked ys, not saved twice
    const f = sp.fwd;
    const ysOut = f.outs.slice(nk, nk + ny);
    const from = f.outs.slice(nk + ny).map((r) => ysOut.indexOf(r));
    const kept = f.outs.filter((_, i) => i < nk + ny || from[i - nk - ny] < 0);
    const fw =
      kept.length === f.outs.length
        ? f
        : simplifyProgram(new Program(f.constvars, f.consts, f.invars, f.eqns, kept, null, null));
    return { split: sp, fwd: fw, fromY: from };
  });
  const [consts, init, xs] = groups(ps, [nc, nk, nx]);
  const fo = bindScan({ body: fwd, length, reverse, numConsts: nc, numCarry: nk }, ps);
  const outs = fo.slice(0, nk + ny);
  let saved = nk + ny;
  const res = fromY.map((m) => (m >= 0 ? outs[nk + m] : fo[saved++]));
  const fc = consts.map(isF);
  const fk = init.map(isF);
  const fx = xs.map(isF);
  const nfc = fc.filter(Boolean).length;
  const nfk = fk.filter(Boolean).length;
  const nfx = fx.filter(Boolean).length;
  const xUsed = split.bypassUsed.map((i) => xs[i - nc - nk]);
  const backward = (cts: readonly Tensor[]): Tensor[] => {
    const ctCarry = init.flatMap((c, j) => (fk[j] ? [castTo(cts[j], c)] : []));
    const ctYs = outs.slice(nk).flatMap((y, j) => (isF(y) ? [castTo(cts[nk + j], y)] : []));
    const fcs = consts.filter(isF);
    // the backward body: [consts, acc, ctCarry, x rows read, residuals, ctY] -> [acc + gConsts, gCarry, gX]
    const back = memo(split.bwd, `scan-back:${nc}:${nfc}:${nfk}:${xUsed.length}:${res.length}`, () => {
      const avals: Aval[] = [
        ...consts.map(avalOf),
        ...fcs.map(avalOf),
        ...ctCarry.map(avalOf),
        ...xUsed.map((x) => ({ shape: x.shape.slice(1), dtype: x.dtype })),
        ...res.map((r) => ({ shape: r.shape.slice(1), dtype: r.dtype })),
        ...ctYs.map((y) => ({ shape: y.shape.slice(1), dtype: y.dtype })),
      ];
      return traceProgram((ins) => {
        const [c, acc, ctc, xu, r, cty] = groups(ins, [nc, nfc, nfk, xUsed.length, res.length, ctYs.length]);
        const g = evalFlat(split.bwd, [...c, ...xu, ...r, ...ctc, ...cty]);
        const [gc, gk, gx] = groups(g, [nfc, nfk, nfx]);
        return [...acc.map((a, j) => accumulate(a, gc[j])), ...gk, ...gx];
      }, avals);
    });
    const bo = bindScan({ body: back, length, reverse: !reverse, numConsts: nc, numCarry: nfc + nfk }, [
      ...consts,
      ...fcs.map((c) => zerosLike(c)),
      ...ctCarry,
      ...xUsed,
      ...res,
      ...ctYs,
    ]);
    const [acc, gInit, gXs] = groups(bo, [nfc, nfk, nfx]);
    let a = 0;
    let b = 0;
    let x = 0;
    return [
      ...consts.map((c, j) => (fc[j] ? acc[a++] : zerosLike(c))),
      ...init.map((c, j) => (fk[j] ? gInit[b++] : zerosLike(c))),
      ...xs.map((c, j) => (fx[j] ? gXs[x++] : zerosLike(c))),
    ];
  };
  return { outs, backward };
}

/** `x` with axes 0 and 1 swapped (between [batch, length, ...] and [length, batch, ...]). */
function swap01(x: Tensor): Tensor {
  return permute(
    x,
    x.shape.map((_, i) => (i === 0 ? 1 : i === 1 ? 0 : i)),
  );
}

function scanBatch(
  params: ScanParams,
  vals: readonly Tensor[],
  batched: readonly boolean[],
  size: number,
): { outs: Tensor[]; batched: boolean[] } {
  const { body, length, reverse, numConsts: nc, numCarry: nk } = params;
  const ny = body.outs.length - nk;
  const cb = batched.slice(0, nc);
  const kb = batched.slice(nc, nc + nk);
  const xb = batched.slice(nc + nk);
  // a carry that comes out batched must go in batched: iterate to the fixed point (at most nk rounds)
  for (;;) {
    const { outBatched } = batchProgram(body, [...cb, ...kb, ...xb], size);
    let changed = false;
    for (let j = 0; j < nk; j++) {
      if (outBatched[j] && !kb[j]) {
        kb[j] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const force = [...kb, ...new Array<boolean>(ny).fill(false)];
  const { prog, outBatched } = batchProgram(body, [...cb, ...kb, ...xb], size, force);
  const [consts, init, xs] = groups(vals, [nc, nk, vals.length - nc - nk]);
  const args = [
    ...consts,
    ...init.map((c, j) => (kb[j] && !batched[nc + j] ? broadcast(c, [size, ...c.shape]) : c)),
    ...xs.map((x, j) => (xb[j] ? swap01(x) : x)),
  ];
  const outs = bindScan({ body: prog, length, reverse, numConsts: nc, numCarry: nk }, args);
  const yb = outBatched.slice(nk);
  return {
    outs: [...outs.slice(0, nk), ...outs.slice(nk).map((y, j) => (yb[j] ? swap01(y) : y))],
    batched: [...kb, ...yb],
  };
}

// ---- cond / switch -------------------------------------------------------------------------------------------

/** Operands `[index, ...ops]`; branch i maps ops to the outputs (every branch has the same output avals). */
export interface CondParams {
  readonly branches: readonly Program[];
}

export function bindCond(params: CondParams, args: readonly Tensor[]): Tensor[] {
  const rule: CallRule = {
    name: "cond",
    staged: { params, outAvals: params.branches[0].outs.map(avalOf) },
    fn: (xs) => condEval(params, xs),
    jvp: (ps, ts) => condJvp(params, ps, ts),
    vjp: (ps) => condVjp(params, ps),
    batch: (vals, b, size) => condBatch(params, vals, b, size),
  };
  return bindCall(rule, args);
}

/** The branch a concrete index selects, clamped to the branches as JAX does. */
function branchIndex(index: Tensor, n: number): number {
  const v = index._data![index._offset];
  return Math.min(Math.max(Math.trunc(v), 0), n - 1);
}

function condEval(params: CondParams, args: readonly Tensor[]): Tensor[] {
  const { branches } = params;
  const k = branchIndex(args[0], branches.length);
  return runProgram(branches[k], args.slice(1));
}

function condJvp(params: CondParams, ps: readonly Tensor[], ts: readonly Tensor[]): [Tensor[], Tensor[]] {
  const { branches } = params;
  const ops = ps.slice(1);
  const nOut = branches[0].outs.length;
  const jb = branches.map((b) => jvpProgram(b, [ops.length], [nOut]));
  const args = [ps[0], ...ops];
  ops.forEach((p, i) => {
    if (isFloat(p.dtype)) args.push(castTo(ts[i + 1], p));
  });
  return splitTangents(bindCond({ branches: jb }, args), [nOut]);
}

function condVjp(
  params: CondParams,
  ps: readonly Tensor[],
): { outs: Tensor[]; backward: (cts: readonly Tensor[]) => Tensor[] } {
  const { branches } = params;
  const ops = ps.slice(1);
  const nOps = ops.length;
  const nOut = branches[0].outs.length;
  const splits = branches.map((b) =>
    memo(b, "cond-split", () => {
      const vp = vjpProgram(b);
      return partialEval(
        vp,
        vp.invars.map((_, i) => (i < nOps ? "K" : "U")),
        nOut,
        vp.invars.map((_, i) => i < nOps),
      );
    }),
  );
  const resAvals = splits.map((s) => s.fwd.outs.slice(nOut).map(avalOf));
  const opAvals = ops.map(avalOf);
  // forward branch i: [ops] -> [outs, res_0, ..., res_n-1] with zeros in the other branches' residuals
  const fwd = memo(params, "cond-fwd", () =>
    splits.map((s, i) =>
      traceProgram((ins) => {
        const r = evalFlat(s.fwd, ins);
        const all: Tensor[] = [...r.slice(0, nOut)];
        resAvals.forEach((avs, j) => {
          all.push(...(j === i ? r.slice(nOut) : avs.map((a) => zerosLike(a))));
        });
        return all;
      }, opAvals),
    ),
  );
  const fo = bindCond({ branches: fwd }, ps);
  const outs = fo.slice(0, nOut);
  const res = fo.slice(nOut);
  const backward = (cts: readonly Tensor[]): Tensor[] => {
    const fcts = outs.flatMap((o, j) => (isF(o) ? [castTo(cts[j], o)] : []));
    const counts = resAvals.map((r) => r.length);
    const key = `cond-bwd:${fcts.map((c) => c.dtype).join(",")}`;
    const bwd = memo(params, key, () =>
      splits.map((s) =>
        traceProgram(
          (ins) => {
            const [o, r, c] = groups(ins, [nOps, res.length, fcts.length]);
            const rs = groups(r, counts);
            const mine = rs[splits.indexOf(s)];
            return evalFlat(s.bwd, [...s.bypassUsed.map((i) => o[i]), ...mine, ...c]);
          },
          [...opAvals, ...res.map(avalOf), ...fcts.map(avalOf)],
        ),
      ),
    );
    const g = bindCond({ branches: bwd }, [ps[0], ...ops, ...res, ...fcts]);
    let k = 0;
    return [zerosLike(ps[0]), ...ops.map((p) => (isF(p) ? g[k++] : zerosLike(p)))];
  };
  return { outs, backward };
}

/** A [size] mask reshaped to broadcast against a [size, ...shape] value. */
function maskFor(mask: Tensor, ndim: number): Tensor {
  return reshape(mask, [mask.shape[0], ...new Array<number>(ndim - 1).fill(1)]);
}

function condBatch(
  params: CondParams,
  vals: readonly Tensor[],
  batched: readonly boolean[],
  size: number,
): { outs: Tensor[]; batched: boolean[] } {
  const { branches } = params;
  const opsB = batched.slice(1);
  const nOut = branches[0].outs.length;
  if (!batched[0]) {
    const ob = new Array<boolean>(nOut).fill(false);
    for (const b of branches) {
      batchProgram(b, opsB, size).outBatched.forEach((x, j) => {
        if (x) ob[j] = true;
      });
    }
    const progs = branches.map((b) => batchProgram(b, opsB, size, ob).prog);
    return { outs: bindCond({ branches: progs }, vals), batched: ob };
  }
  // a batched index: every branch runs on the whole batch, then each example takes its branch's values
  const all = new Array<boolean>(nOut).fill(true);
  const per = branches.map((b) => evalFlat(batchProgram(b, opsB, size, all).prog, vals.slice(1)));
  const index = vals[0];
  const outs = per[0].map((first, j) => {
    let r = first;
    for (let k = 1; k < per.length; k++) {
      // indices below 0 take branch 0, above n-1 branch n-1 (clamped)
      r = where(maskFor(index.ge(k), r.ndim), per[k][j], r);
    }
    return r;
  });
  return { outs, batched: all };
}

// ---- while ---------------------------------------------------------------------------------------------------

/**
 * Operands `[condConsts, bodyConsts, carry]`; `cond` maps `[condConsts, carry]` to a bool scalar, `body` maps
 * `[bodyConsts, carry]` to the next carry.
 */
export interface WhileParams {
  readonly condNumConsts: number;
  readonly bodyNumConsts: number;
  readonly cond: Program;
  readonly body: Program;
}

export function bindWhile(params: WhileParams, args: readonly Tensor[]): Tensor[] {
  const rule: CallRule = {
    name: "while",
    staged: { params, outAvals: params.body.outs.map(avalOf) },
    fn: (xs) => whileEval(params, xs),
    jvp: (ps, ts) => whileJvp(params, ps, ts),
    vjp: (ps) => ({
      // on tracers of a lower level (grad inside jit) the forward is staged there; backward is the error
      outs: allConcrete(ps) ? whileEval(params, ps) : bindWhile(params, ps),
      backward: () => {
        throw new AutodiffError(
          "whileLoop: reverse-mode differentiation (grad, vjp, backward) is not supported: the trip count is only " +
            "known at run time, so the forward values a reverse pass needs cannot be saved; use scan, or foriLoop " +
            "with a static trip count (concrete lower and upper bounds), or forward mode (jvp, jacfwd)",
        );
      },
    }),
    batch: (vals, b, size) => whileBatch(params, vals, b, size),
  };
  return bindCall(rule, args);
}

function whileEval(params: WhileParams, args: readonly Tensor[]): Tensor[] {
  const { cond, body, condNumConsts: ncc, bodyNumConsts: nbc } = params;
  const cc = args.slice(0, ncc);
  const bc = args.slice(ncc, ncc + nbc);
  let carry = args.slice(ncc + nbc);
  const donate =
    allConcrete(args) && memo(body, "loop-donate", () => body.eqns.every((e) => e.prim !== null));
  const kept = donate ? new Set(args.map((a) => a._data)) : null;
  for (let t = 0; ; t++) {
    const p = runProgram(cond, [...cc, ...carry])[0];
    if (p._data === null || p._trace !== null) {
      // only reached with tracers below (a bound rule runs on concrete values); read it the checked way
      if (p.item() === 0) break;
    } else if (p._data[p._offset] === 0) break;
    carry = runProgram(body, [...bc, ...carry], t > 0 ? donatable(carry, nbc, kept) : null);
  }
  return carry;
}

function whileJvp(params: WhileParams, ps: readonly Tensor[], ts: readonly Tensor[]): [Tensor[], Tensor[]] {
  const { cond, body, condNumConsts: ncc, bodyNumConsts: nbc } = params;
  const nk = ps.length - ncc - nbc;
  const [cc, bc, carry] = groups(ps, [ncc, nbc, nk]);
  const tb = groups(ts, [ncc, nbc, nk]);
  const jb = jvpProgram(body, [nbc, nk], [nk]);
  const fcarry = carry.filter(isF);
  // the condition reads the primal carry only
  const jc = memo(cond, `while-jvp-cond:${carry.map((c) => Number(isF(c))).join("")}`, () =>
    traceProgram(
      (ins) => {
        const [c, k] = groups(ins, [ncc, nk + fcarry.length]);
        return evalFlat(cond, [...c, ...k.slice(0, nk)]);
      },
      [...cc.map(avalOf), ...carry.map(avalOf), ...fcarry.map(avalOf)],
    ),
  );
  const args = [...cc, ...bc];
  bc.forEach((p, i) => {
    if (isF(p)) args.push(castTo(tb[1][i], p));
  });
  args.push(...carry);
  carry.forEach((p, i) => {
    if (isF(p)) args.push(castTo(tb[2][i], p));
  });
  const nfb = bc.filter(isF).length;
  const outs = bindWhile({ cond: jc, body: jb, condNumConsts: ncc, bodyNumConsts: nbc + nfb }, args);
  return splitTangents(outs, [nk]);
}

function whileBatch(
  params: WhileParams,
  vals: readonly Tensor[],
  batched: readonly boolean[],
  size: number,
): { outs: Tensor[]; batched: boolean[] } {
  const { cond, body, condNumConsts: ncc, bodyNumConsts: nbc } = params;
  const nk = vals.length - ncc - nbc;
  const ccb = batched.slice(0, ncc);
  const bcb = batched.slice(ncc, ncc + nbc);
  let kb = batched.slice(ncc + nbc);
  for (;;) {
    const { outBatched } = batchProgram(body, [...bcb, ...kb], size);
    let changed = false;
    for (let j = 0; j < nk; j++) {
      if (outBatched[j] && !kb[j]) {
        kb[j] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const predBatched = batchProgram(cond, [...ccb, ...kb], size).outBatched[0];
  // with a per-example predicate every carry is per example: finished examples are frozen by a select
  if (predBatched) kb = kb.map(() => true);
  const [cc, bc, carry] = groups(vals, [ncc, nbc, nk]);
  const init = carry.map((c, j) => (kb[j] && !batched[ncc + nbc + j] ? broadcast(c, [size, ...c.shape]) : c));
  const bodyB = batchProgram(body, [...bcb, ...kb], size, kb).prog;
  if (!predBatched) {
    const condB = batchProgram(cond, [...ccb, ...kb], size).prog;
    const outs = bindWhile({ cond: condB, body: bodyB, condNumConsts: ncc, bodyNumConsts: nbc }, [
      ...cc,
      ...bc,
      ...init,
    ]);
    return { outs, batched: kb };
  }
  const condB = batchProgram(cond, [...ccb, ...kb], size, [true]).prog;
  const carryAvals = init.map(avalOf);
  const key = `while-batch:${size}:${[...ccb, ...bcb].map(Number).join("")}`;
  const { anyCond, selBody } = memo(bodyB, key, () => ({
    anyCond: traceProgram((ins) => [any(evalFlat(condB, ins)[0])], [...cc.map(avalOf), ...carryAvals]),
    selBody: traceProgram(
      (ins) => {
        const [c, b, k] = groups(ins, [ncc, nbc, nk]);
        const p = evalFlat(condB, [...c, ...k])[0];
        const next = evalFlat(bodyB, [...b, ...k]);
        return next.map((n, j) => where(maskFor(p, n.ndim), n, k[j]));
      },
      [...cc.map(avalOf), ...bc.map(avalOf), ...carryAvals],
    ),
  }));
  const outs = bindWhile({ cond: anyCond, body: selBody, condNumConsts: ncc, bodyNumConsts: ncc + nbc }, [
    ...cc,
    ...cc,
    ...bc,
    ...init,
  ]);
  return { outs, batched: kb };
}
