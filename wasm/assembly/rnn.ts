/**
 * Fused recurrent cells of the wasm backend (AssemblyScript): the elementwise part of one LSTM or GRU step and
 * its VJP (Backend.lstmCell, lstmCellBackward, gruCell, gruCellBackward; the js kernels in
 * src/backend/js/rnn-cell.ts are the specification), over n contiguous rows of k H elements each (the JS side
 * makes the operands contiguous).
 *
 * float32 runs four hidden units at a time with the SIMD sigmoid and tanh of math.ts (about 2 ulp) and float32
 * products; the last H mod 4 units of a row, and every float64 element, are computed in float64 with the
 * reference's formulas (sigmoid64, Math.tanh) and rounded once.
 */
import { sigmoid64, sigmoidF32x4, tanhF32x4 } from "./math";

// ------------------------------------------------------------------------------------------------ scalar
// One hidden unit in float64 (the float32 tails and the float64 kernels). Operands: element pointers and the
// distance between gate blocks (H elements, in bytes).

@inline
function ld<T>(p: usize): f64 {
  return <f64>load<T>(p);
}

@inline
function st<T>(p: usize, x: f64): void {
  store<T>(p, <T>x);
}

/** [h', c'] of one unit: gates at pg (stride gh between i, f, g, o), c at pc, out h' at po, c' at po + oh. */
@inline
function lstmUnit<T>(pg: usize, gh: usize, pc: usize, po: usize, oh: usize): void {
  const i = sigmoid64(ld<T>(pg));
  const f = sigmoid64(ld<T>(pg + gh));
  const gg = Math.tanh(ld<T>(pg + 2 * gh));
  const o = sigmoid64(ld<T>(pg + 3 * gh));
  const cp = f * ld<T>(pc) + i * gg;
  st<T>(po, o * Math.tanh(cp));
  st<T>(po + oh, cp);
}

/** [di, df, dg, do, dc] of one unit (out blocks oh apart); ct's blocks [dh, dc'] th apart. */
@inline
function lstmBackUnit<T>(pg: usize, gh: usize, pc: usize, pt: usize, th: usize, po: usize, oh: usize): void {
  const i = sigmoid64(ld<T>(pg));
  const f = sigmoid64(ld<T>(pg + gh));
  const gg = Math.tanh(ld<T>(pg + 2 * gh));
  const o = sigmoid64(ld<T>(pg + 3 * gh));
  const c0 = ld<T>(pc);
  const tc = Math.tanh(f * c0 + i * gg);
  const dh = ld<T>(pt);
  const dcp = ld<T>(pt + th) + dh * o * (1 - tc * tc);
  st<T>(po, dcp * gg * (i * (1 - i)));
  st<T>(po + oh, dcp * c0 * (f * (1 - f)));
  st<T>(po + 2 * oh, dcp * i * (1 - gg * gg));
  st<T>(po + 3 * oh, dh * tc * (o * (1 - o)));
  st<T>(po + 4 * oh, dcp * f);
}

/** h' of one GRU unit: xp, hp blocks (r, z, n) gh apart, h at p0. */
@inline
function gruUnit<T>(px: usize, ph: usize, gh: usize, p0: usize, po: usize): void {
  const r = sigmoid64(ld<T>(px) + ld<T>(ph));
  const z = sigmoid64(ld<T>(px + gh) + ld<T>(ph + gh));
  const nn = Math.tanh(ld<T>(px + 2 * gh) + r * ld<T>(ph + 2 * gh));
  st<T>(po, nn + z * (ld<T>(p0) - nn));
}

/** [dxp (r, z, n), dhp (r, z, n), dh] of one GRU unit (out blocks oh apart). */
@inline
function gruBackUnit<T>(px: usize, ph: usize, gh: usize, p0: usize, pt: usize, po: usize, oh: usize): void {
  const hn = ld<T>(ph + 2 * gh);
  const r = sigmoid64(ld<T>(px) + ld<T>(ph));
  const z = sigmoid64(ld<T>(px + gh) + ld<T>(ph + gh));
  const nn = Math.tanh(ld<T>(px + 2 * gh) + r * hn);
  const c = ld<T>(pt);
  const dnp = c * (1 - z) * (1 - nn * nn);
  const dzp = c * (ld<T>(p0) - nn) * (z * (1 - z));
  const drp = dnp * hn * (r * (1 - r));
  st<T>(po, drp);
  st<T>(po + oh, dzp);
  st<T>(po + 2 * oh, dnp);
  st<T>(po + 3 * oh, drp);
  st<T>(po + 4 * oh, dzp);
  st<T>(po + 5 * oh, dnp * r);
  st<T>(po + 6 * oh, c * z);
}

// ------------------------------------------------------------------------------------------------ kernels

/** Units of a row handled by SIMD (float32: a multiple of 4; float64: none). */
@inline
function simdUnits<T>(h: i32): i32 {
  return sizeof<T>() == 4 ? h & ~3 : 0;
}

function lstm<T>(n: i32, h: i32, pg: usize, pc: usize, po: usize): void {
  const es = sizeof<T>();
  const hb = <usize>h * es;
  const hv = simdUnits<T>(h);
  for (let r = 0; r < n; r++) {
    const g = pg + <usize>r * 4 * hb;
    const c = pc + <usize>r * hb;
    const o = po + <usize>r * 2 * hb;
    for (let j = 0; j < hv; j += 4) {
      const b = <usize>j * 4;
      const i = sigmoidF32x4(v128.load(g + b));
      const f = sigmoidF32x4(v128.load(g + hb + b));
      const gg = tanhF32x4(v128.load(g + 2 * hb + b));
      const og = sigmoidF32x4(v128.load(g + 3 * hb + b));
      const cp = f32x4.add(f32x4.mul(f, v128.load(c + b)), f32x4.mul(i, gg));
      v128.store(o + b, f32x4.mul(og, tanhF32x4(cp)));
      v128.store(o + hb + b, cp);
    }
    for (let j = hv; j < h; j++) {
      const b = <usize>j * es;
      lstmUnit<T>(g + b, hb, c + b, o + b, hb);
    }
  }
}

function lstmBack<T>(n: i32, h: i32, pg: usize, pc: usize, pt: usize, po: usize): void {
  const es = sizeof<T>();
  const hb = <usize>h * es;
  const hv = simdUnits<T>(h);
  const one = f32x4.splat(1);
  for (let r = 0; r < n; r++) {
    const g = pg + <usize>r * 4 * hb;
    const c = pc + <usize>r * hb;
    const t = pt + <usize>r * 2 * hb;
    const o = po + <usize>r * 5 * hb;
    for (let j = 0; j < hv; j += 4) {
      const b = <usize>j * 4;
      const i = sigmoidF32x4(v128.load(g + b));
      const f = sigmoidF32x4(v128.load(g + hb + b));
      const gg = tanhF32x4(v128.load(g + 2 * hb + b));
      const og = sigmoidF32x4(v128.load(g + 3 * hb + b));
      const c0 = v128.load(c + b);
      const tc = tanhF32x4(f32x4.add(f32x4.mul(f, c0), f32x4.mul(i, gg)));
      const dh = v128.load(t + b);
      const dcp = f32x4.add(v128.load(t + hb + b), f32x4.mul(f32x4.mul(dh, og), f32x4.sub(one, f32x4.mul(tc, tc))));
      v128.store(o + b, f32x4.mul(f32x4.mul(dcp, gg), f32x4.mul(i, f32x4.sub(one, i))));
      v128.store(o + hb + b, f32x4.mul(f32x4.mul(dcp, c0), f32x4.mul(f, f32x4.sub(one, f))));
      v128.store(o + 2 * hb + b, f32x4.mul(f32x4.mul(dcp, i), f32x4.sub(one, f32x4.mul(gg, gg))));
      v128.store(o + 3 * hb + b, f32x4.mul(f32x4.mul(dh, tc), f32x4.mul(og, f32x4.sub(one, og))));
      v128.store(o + 4 * hb + b, f32x4.mul(dcp, f));
    }
    for (let j = hv; j < h; j++) {
      const b = <usize>j * es;
      lstmBackUnit<T>(g + b, hb, c + b, t + b, hb, o + b, hb);
    }
  }
}

function gru<T>(n: i32, h: i32, px: usize, ph: usize, p0: usize, po: usize): void {
  const es = sizeof<T>();
  const hb = <usize>h * es;
  const hv = simdUnits<T>(h);
  for (let r = 0; r < n; r++) {
    const x = px + <usize>r * 3 * hb;
    const hh = ph + <usize>r * 3 * hb;
    const h0 = p0 + <usize>r * hb;
    const o = po + <usize>r * hb;
    for (let j = 0; j < hv; j += 4) {
      const b = <usize>j * 4;
      const rg = sigmoidF32x4(f32x4.add(v128.load(x + b), v128.load(hh + b)));
      const z = sigmoidF32x4(f32x4.add(v128.load(x + hb + b), v128.load(hh + hb + b)));
      const nn = tanhF32x4(f32x4.add(v128.load(x + 2 * hb + b), f32x4.mul(rg, v128.load(hh + 2 * hb + b))));
      v128.store(o + b, f32x4.add(nn, f32x4.mul(z, f32x4.sub(v128.load(h0 + b), nn))));
    }
    for (let j = hv; j < h; j++) {
      const b = <usize>j * es;
      gruUnit<T>(x + b, hh + b, hb, h0 + b, o + b);
    }
  }
}

function gruBack<T>(n: i32, h: i32, px: usize, ph: usize, p0: usize, pt: usize, po: usize): void {
  const es = sizeof<T>();
  const hb = <usize>h * es;
  const hv = simdUnits<T>(h);
  const one = f32x4.splat(1);
  for (let r = 0; r < n; r++) {
    const x = px + <usize>r * 3 * hb;
    const hh = ph + <usize>r * 3 * hb;
    const h0 = p0 + <usize>r * hb;
    const t = pt + <usize>r * hb;
    const o = po + <usize>r * 7 * hb;
    for (let j = 0; j < hv; j += 4) {
      const b = <usize>j * 4;
      const hn = v128.load(hh + 2 * hb + b);
      const rg = sigmoidF32x4(f32x4.add(v128.load(x + b), v128.load(hh + b)));
      const z = sigmoidF32x4(f32x4.add(v128.load(x + hb + b), v128.load(hh + hb + b)));
      const nn = tanhF32x4(f32x4.add(v128.load(x + 2 * hb + b), f32x4.mul(rg, hn)));
      const c = v128.load(t + b);
      const dnp = f32x4.mul(f32x4.mul(c, f32x4.sub(one, z)), f32x4.sub(one, f32x4.mul(nn, nn)));
      const dzp = f32x4.mul(f32x4.mul(c, f32x4.sub(v128.load(h0 + b), nn)), f32x4.mul(z, f32x4.sub(one, z)));
      const drp = f32x4.mul(f32x4.mul(dnp, hn), f32x4.mul(rg, f32x4.sub(one, rg)));
      v128.store(o + b, drp);
      v128.store(o + hb + b, dzp);
      v128.store(o + 2 * hb + b, dnp);
      v128.store(o + 3 * hb + b, drp);
      v128.store(o + 4 * hb + b, dzp);
      v128.store(o + 5 * hb + b, f32x4.mul(dnp, rg));
      v128.store(o + 6 * hb + b, f32x4.mul(c, z));
    }
    for (let j = hv; j < h; j++) {
      const b = <usize>j * es;
      gruBackUnit<T>(x + b, hh + b, hb, h0 + b, t + b, o + b, hb);
    }
  }
}

/**
 * One LSTM step's elementwise part on n rows: gates [n, 4H] at pg, c [n, H] at pc (contiguous), out [n, 2H]
 * = [h', c'] at po. es: element bytes (4 float32, 8 float64).
 */
export function lstmCell(es: i32, n: i32, h: i32, pg: usize, pc: usize, po: usize): void {
  if (es == 4) lstm<f32>(n, h, pg, pc, po);
  else lstm<f64>(n, h, pg, pc, po);
}

/** Its VJP: ct [n, 2H] at pt, out [n, 5H] = [di, df, dg, do, dc] at po. */
export function lstmCellBack(es: i32, n: i32, h: i32, pg: usize, pc: usize, pt: usize, po: usize): void {
  if (es == 4) lstmBack<f32>(n, h, pg, pc, pt, po);
  else lstmBack<f64>(n, h, pg, pc, pt, po);
}

/** One GRU step's elementwise part: xp, hp [n, 3H], h [n, H] (contiguous), out h' [n, H]. */
export function gruCell(es: i32, n: i32, h: i32, px: usize, ph: usize, p0: usize, po: usize): void {
  if (es == 4) gru<f32>(n, h, px, ph, p0, po);
  else gru<f64>(n, h, px, ph, p0, po);
}

/** Its VJP: ct [n, H] at pt, out [n, 7H] = [dxp, dhp, dh] at po. */
export function gruCellBack(es: i32, n: i32, h: i32, px: usize, ph: usize, p0: usize, pt: usize, po: usize): void {
  if (es == 4) gruBack<f32>(n, h, px, ph, p0, pt, po);
  else gruBack<f64>(n, h, px, ph, p0, pt, po);
}
