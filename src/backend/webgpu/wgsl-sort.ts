/**
 * WGSL of the optional argsort kernel (Backend.argsort; src/backend/js/sort.ts is the specification): bitonic
 * sorting networks over (key, index) pairs. Keys are u32 in the order wanted: floats by their bits (negative
 * ones complemented, positive ones with the sign bit set), -0 as +0, every NaN as the one quiet NaN above
 * +Infinity; int32 with the sign bit flipped; bool as 0/1; descending complements the key. Ties are broken by
 * the index, so the network (not stable by itself) gives the stable permutation, and padding (key and index
 * 0xffffffff) sorts after everything.
 *
 * - rows of at most LOCAL_SORT elements: one workgroup per row sorts it in workgroup memory (`argsortShader`);
 * - longer rows: the pairs of every row, padded to a power of two NP, go to a scratch buffer
 *   (`argsortInitShader`), each of the log2(NP) (log2(NP) + 1) / 2 compare-exchange stages is one dispatch over
 *   all rows (`argsortStepShader`), and the indices are written out (`argsortFinalShader`).
 *
 * Row parameters as the row kernels' (wgsl.ts rowHeader: x, then the contiguous int32 out), then [NP, desc].
 */
import type { GpuDType } from "./gpu.ts";
import { FLOAT_PRELUDE, header, LINEAR_ID, MAIN, rowHeader, wgslType } from "./wgsl.ts";

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
@compute @workgroup_size(${SORT_GROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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

/** Long rows, step 1: one thread per (row, position < NP) writes its (key, index) pair into the scratch. */
export function argsortInitShader(d: GpuDType): string {
  return `@group(0) @binding(0) var<storage, read> in0: array<${wgslType(d)}>;
@group(0) @binding(1) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> P: array<i32>;
${FLOAT_PRELUDE}
${keyFn(d)}
${MAIN} {
  ${LINEAR_ID}
  let NP = P[${TAIL}];
  let desc = P[${TAIL} + 1] != 0;
  if (i >= P[0] * NP) { return; }
  let t = i % NP;
${rowHeader(2, "i / NP")}
  var kk = 0xffffffffu;
  var ix = 0xffffffffu;
  if (t < L) {
    kk = skey(in0[b0 + t * a0]);
    if (desc) { kk = ~kk; }
    ix = u32(t);
  }
  pairs[i] = vec2<u32>(kk, ix);
}`;
}

/** Long rows, one compare-exchange stage (k, j) over every row. Parameters: [rows * NP, NP, k, j]. */
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
