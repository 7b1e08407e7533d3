/**
 * WGSL of the optional argsort kernel (Backend.argsort; src/backend/js/sort.ts is the specification): bitonic
 * sorting networks over (key, index) pairs. Keys are u32 in the order wanted: floats by their bits (negative
 * ones complemented, positive ones with the sign bit set), -0 as +0, every NaN as the one quiet NaN above
 * +Infinity; int32 with the sign bit flipped; bool as 0/1; descending complements the key. Ties are broken by
 * the index, so the network (not stable by itself) gives the stable permutation, and padding (key and index
 * 0xffffffff) sorts after everything.
 *
 * - rows of at most LOCAL_SORT elements: one workgroup per row sorts it in workgroup memory (`argsortShader`);
 * - longer rows, padded to a power of two NP in a scratch buffer of pairs: every LOCAL_SORT-block is sorted in
 *   workgroup memory (`argsortBlockShader`, presort: the stages k <= LOCAL_SORT), then each wider stage k runs
 *   its steps j >= LOCAL_SORT one dispatch each over global memory (`argsortStepShader`) and its steps
 *   j < LOCAL_SORT in workgroup memory again (a merge); the indices are written out last (`argsortFinalShader`).
 *   For NP = 2^m that is (m - 10)(m - 9) / 2 global steps plus m - 9 block passes and the last write: 4 dispatches for 2048.
 *
 * Row parameters as the row kernels' (wgsl.ts rowHeader: x, then the contiguous int32 out), then [NP, desc].
 */
import type { GpuDType } from "./gpu.ts";
import { FLOAT_PRELUDE, groupMain, header, LINEAR_ID, MAIN, rowHeader, wgslType } from "./wgsl.ts";

/** Longest row sorted in workgroup memory (8 KiB of keys and indices). */
export const LOCAL_SORT = 1024;
const SORT_GROUP = 256;

/** The sort key of a value of dtype d (u32, ascending). */
function keyFn(d: GpuDType): string {
  const t = wgslType(d);
  let body: string;
  if (d === "float32") {
    body = `
  var b = bitcast<u32>(x);
  if (f_isnan(x)) { b = 0x7fc00000u; }
  if (x == 0.0) { b = 0u; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;`;
  } else if (d === "int32") {
    body = "\n  return bitcast<u32>(x) ^ 0x80000000u;";
  } else {
    body = "\n  return x;";
  }
  return `fn skey(x: ${t}) -> u32 {${body}\n}`;
}

/** Where [NP, desc] follow the row parameters of two operands. */
const TAIL = "(3 + P[2] + 2 * (P[2] + 2))";

/** One workgroup per row (rows of at most LOCAL_SORT): in0 x, out0 the int32 permutation. */
export function argsortShader(d: GpuDType): string {
  return `${header([d], ["int32"])}
${keyFn(d)}
var<workgroup> sk: array<u32, ${LOCAL_SORT}>;
var<workgroup> si: array<u32, ${LOCAL_SORT}>;
${groupMain(SORT_GROUP)} {
${rowHeader(2)}
  let NP = P[${TAIL}];
  let desc = P[${TAIL} + 1] != 0;
  for (var t = i32(lid.x); t < NP; t += ${SORT_GROUP}) {
    var kk = 0xffffffffu;
    var ix = 0xffffffffu;
    if (valid && t < L) {
      kk = skey(in0[b0 + t * a0]);
      if (desc) { kk = ~kk; }
      ix = u32(t);
    }
    sk[t] = kk;
    si[t] = ix;
  }
  workgroupBarrier();
  for (var k = 2; k <= NP; k = k * 2) {
    for (var j = k / 2; j > 0; j = j / 2) {
      for (var t = i32(lid.x); t < NP; t += ${SORT_GROUP}) {
        let p = t ^ j;
        if (p > t) {
          let ka = sk[t];
          let kb = sk[p];
          let ia = si[t];
          let ib = si[p];
          let gt = ka > kb || (ka == kb && ia > ib);
          if (gt == ((t & k) == 0)) {
            sk[t] = kb;
            sk[p] = ka;
            si[t] = ib;
            si[p] = ia;
          }
        }
      }
      workgroupBarrier();
    }
  }
  if (valid) {
    for (var t = i32(lid.x); t < L; t += ${SORT_GROUP}) { out0[b1 + t * a1] = i32(si[t]); }
  }
}`;
}

/** The compare-exchange stages (k, j) for j from `j0` down to 1 on the block in sk/si (global positions base + t). */
const LOCAL_STAGES = (k: string, j0: string) => `
    for (var j = ${j0}; j > 0; j = j / 2) {
      for (var t = i32(lid.x); t < ${LOCAL_SORT}; t += ${SORT_GROUP}) {
        let p = t ^ j;
        if (p > t) {
          let ka = sk[t];
          let kb = sk[p];
          let ia = si[t];
          let ib = si[p];
          let gt = ka > kb || (ka == kb && ia > ib);
          if (gt == (((base + t) & ${k}) == 0)) {
            sk[t] = kb;
            sk[p] = ka;
            si[t] = ib;
            si[p] = ia;
          }
        }
      }
      workgroupBarrier();
    }`;

/**
 * Long rows, in workgroup memory, one workgroup per LOCAL_SORT-block of a row: with `presort`, the block's
 * (key, index) pairs are formed from x and every stage k <= LOCAL_SORT runs (in0 x, pairs, P: the row
 * parameters, [NP, desc]); otherwise (a merge) the block is read from the scratch and the stages j < LOCAL_SORT
 * of stage k = P[2] run (pairs, P = [rows * blocks, NP, k]). The pairs go back to the scratch. Directions come
 * from the global position, so this is the same network as the stage-per-dispatch one.
 */
export function argsortBlockShader(d: GpuDType, presort: boolean): string {
  const B = LOCAL_SORT;
  const bindings = presort
    ? `@group(0) @binding(0) var<storage, read> in0: array<${wgslType(d)}>;
@group(0) @binding(1) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> P: array<i32>;
${FLOAT_PRELUDE}
${keyFn(d)}`
    : `@group(0) @binding(0) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> P: array<i32>;`;
  const load = presort
    ? `
  let NP = P[${TAIL}];
  let desc = P[${TAIL} + 1] != 0;
  let nblk = NP / ${B};
  if (g >= P[0] * nblk) { return; }
  let base = (g % nblk) * ${B};
${rowHeader(2, "g / nblk")}
  for (var t = i32(lid.x); t < ${B}; t += ${SORT_GROUP}) {
    var kk = 0xffffffffu;
    var ix = 0xffffffffu;
    if (base + t < L) {
      kk = skey(in0[b0 + (base + t) * a0]);
      if (desc) { kk = ~kk; }
      ix = u32(base + t);
    }
    sk[t] = kk;
    si[t] = ix;
  }
  workgroupBarrier();
  for (var k = 2; k <= ${B}; k = k * 2) {${LOCAL_STAGES("k", "k / 2")}
  }`
    : `
  let NP = P[1];
  let nblk = NP / ${B};
  if (g >= P[0]) { return; }
  let base = (g % nblk) * ${B};
  let k = P[2];
  for (var t = i32(lid.x); t < ${B}; t += ${SORT_GROUP}) {
    let v = pairs[g * ${B} + t];
    sk[t] = v.x;
    si[t] = v.y;
  }
  workgroupBarrier();
  ${LOCAL_STAGES("k", `${B / 2}`)}`;
  return `${bindings}
var<workgroup> sk: array<u32, ${B}>;
var<workgroup> si: array<u32, ${B}>;
${groupMain(SORT_GROUP)} {
  let g = i32(wid.x + wid.y * nwg.x);
${load}
  for (var t = i32(lid.x); t < ${B}; t += ${SORT_GROUP}) {
    pairs[g * ${B} + t] = vec2<u32>(sk[t], si[t]);
  }
}`;
}

/** Long rows, one compare-exchange step (k, j >= LOCAL_SORT) over every row. Parameters: [rows * NP, NP, k, j]. */
export function argsortStepShader(): string {
  return `@group(0) @binding(0) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> P: array<i32>;
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let NP = P[1];
  let k = P[2];
  let j = P[3];
  let t = i % NP;
  let p = t ^ j;
  if (p <= t) { return; }
  let base = i - t;
  let a = pairs[base + t];
  let b = pairs[base + p];
  let gt = a.x > b.x || (a.x == b.x && a.y > b.y);
  if (gt == ((t & k) == 0)) {
    pairs[base + t] = b;
    pairs[base + p] = a;
  }
}`;
}

/** Long rows, last step: one thread per (row, position < L) writes the index into out0. */
export function argsortFinalShader(): string {
  return `@group(0) @binding(0) var<storage, read> pairs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read_write> out0: array<i32>;
@group(0) @binding(2) var<storage, read> P: array<i32>;
${MAIN} {
  ${LINEAR_ID}
  let NP = P[${TAIL}];
  if (i >= P[0] * P[1]) { return; }
  let t = i % P[1];
${rowHeader(2, "i / P[1]")}
  out0[b1 + t * a1] = i32(pairs[(i / L) * NP + t].y);
}`;
}
