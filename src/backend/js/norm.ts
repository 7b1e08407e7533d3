/**
 * Layer normalisation over the last axis, the js reference (Backend.layerNorm, Backend.layerNormBackward): one
 * kernel per call, each row (the elements along the last axis at fixed other indices) in float64, with the mean
 * and the biased variance from two sweeps (mean first, then the squared deviations: no cancellation).
 */
import type { TypedArray } from "../../dtype.ts";
import { internal } from "../../errors.ts";
import type { View } from "../backend.ts";
import { assertOutSize, assertSameShape, contiguousData } from "./strided.ts";

function checkRows(op: string, x: View): [number, number] {
  if (x.shape.length === 0) throw internal(`${op}: rank >= 1 expected`);
  if (!(x.data instanceof Float32Array || x.data instanceof Float64Array)) {
    throw internal(`${op}: float32 or float64 input expected`);
  }
  let n = 1;
  for (const d of x.shape) n *= d;
  return [n, x.shape[x.shape.length - 1]];
}

/** Mean and 1 / sqrt(biased variance + eps) of the row [base, base + r) of src. */
function rowStats(src: TypedArray, base: number, r: number, eps: number): [number, number] {
  let s = 0;
  for (let i = 0; i < r; i++) s += src[base + i];
  const mean = s / r;
  let q = 0;
  for (let i = 0; i < r; i++) {
    const d = src[base + i] - mean;
    q += d * d;
  }
  return [mean, 1 / Math.sqrt(q / r + eps)];
}

/** out = (x - mean) / sqrt(var + eps) per row of the last axis (see Backend.layerNorm). */
export function layerNorm(x: View, eps: number, out: TypedArray): void {
  const [n, r] = checkRows("layerNorm", x);
  assertOutSize("layerNorm", out, n);
  if (n === 0) return;
  const src = contiguousData(x);
  for (let base = 0; base < n; base += r) {
    const [mean, rstd] = rowStats(src, base, r, eps);
    for (let i = 0; i < r; i++) out[base + i] = (src[base + i] - mean) * rstd;
  }
}

/**
 * The VJP (and JVP) of layerNorm at x applied to g: with xhat = layerNorm(x) and rstd as there, per row
 * out = rstd (g - mean(g) - xhat mean(xhat g)) (see Backend.layerNormBackward).
 */
export function layerNormBackward(x: View, g: View, eps: number, out: TypedArray): void {
  backwardRows("layerNormBackward", x, null, g, eps, out);
}

/** layerNormBackward(x, g w), or with w null layerNormBackward(x, g), row by row in float64. */
function backwardRows(op: string, x: View, w: View | null, g: View, eps: number, out: TypedArray): void {
  const [n, r] = checkRows(op, x);
  if (w !== null) checkVec(op, "w", w, r);
  assertSameShape(op, x.shape, g.shape);
  assertOutSize(op, out, n);
  if (n === 0) return;
  const src = contiguousData(x);
  const gs = contiguousData(g);
  const xhat = new Float64Array(r);
  const gw = new Float64Array(r);
  for (let base = 0; base < n; base += r) {
    const [mean, rstd] = rowStats(src, base, r, eps);
    let sg = 0;
    let sgx = 0;
    for (let i = 0; i < r; i++) {
      const h = (src[base + i] - mean) * rstd;
      const v = w === null ? gs[base + i] : gs[base + i] * at(w, i);
      xhat[i] = h;
      gw[i] = v;
      sg += v;
      sgx += v * h;
    }
    const mg = sg / r;
    const mgx = sgx / r;
    for (let i = 0; i < r; i++) out[base + i] = rstd * (gw[i] - mg - xhat[i] * mgx);
  }
}

/** Element i of a 1-d view (any stride). */
function at(v: View, i: number): number {
  return v.data[v.offset + i * v.strides[0]] as number;
}

function checkVec(op: string, name: string, v: View, r: number): void {
  if (v.shape.length !== 1 || v.shape[0] !== r)
    throw internal(`${op}: ${name} must have shape [${r}], got [${v.shape.join(", ")}]`);
}

/** out = layerNorm(x) * w + b per row of the last axis (see Backend.layerNormAffine). */
export function layerNormAffine(x: View, w: View, b: View, eps: number, out: TypedArray): void {
  const [n, r] = checkRows("layerNormAffine", x);
  checkVec("layerNormAffine", "w", w, r);
  checkVec("layerNormAffine", "b", b, r);
  assertOutSize("layerNormAffine", out, n);
  if (n === 0) return;
  const src = contiguousData(x);
  for (let base = 0; base < n; base += r) {
    const [mean, rstd] = rowStats(src, base, r, eps);
    for (let i = 0; i < r; i++) out[base + i] = (src[base + i] - mean) * rstd * at(w, i) + at(b, i);
  }
}

/** out = layerNormBackward(x, g * w) (see Backend.layerNormScaledBackward). */
export function layerNormScaledBackward(x: View, w: View, g: View, eps: number, out: TypedArray): void {
  backwardRows("layerNormScaledBackward", x, w, g, eps, out);
}

/** out ([2, N]) = [sum of g * layerNorm(x), sum of g] over the rows (see Backend.layerNormAffineGrads). */
export function layerNormAffineGrads(x: View, g: View, eps: number, out: TypedArray): void {
  const [n, r] = checkRows("layerNormAffineGrads", x);
  assertSameShape("layerNormAffineGrads", x.shape, g.shape);
  assertOutSize("layerNormAffineGrads", out, 2 * r);
  const src = contiguousData(x);
  const gs = contiguousData(g);
  const sw = new Float64Array(r);
  const sb = new Float64Array(r);
  for (let base = 0; base < n; base += r) {
    const [mean, rstd] = rowStats(src, base, r, eps);
    for (let i = 0; i < r; i++) {
      sw[i] += gs[base + i] * ((src[base + i] - mean) * rstd);
      sb[i] += gs[base + i];
    }
  }
  for (let i = 0; i < r; i++) {
    out[i] = sw[i];
    out[r + i] = sb[i];
  }
}
