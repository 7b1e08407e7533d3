/**
 * WGSL sources of the webgpu kernels, generated per (kernel, op, dtypes) and cached by key in the pipeline
 * cache. Every shader binds its inputs (read-only storage), its output(s) (read-write storage) and last the
 * parameter block `P` (int32 words; float parameters are their bits). Views are strided: a shader walks the
 * output's row-major index and adds index * stride per axis for each input, so broadcast (stride 0), negative
 * strides and offsets need nothing special.
 *
 * dtypes: float32 is f32, int32 is i32, bool is u32 (0/1; WGSL has no 8-bit storage).
 */
import type { Activation, BinaryOp, UnaryOp } from "../backend.ts";
import type { GpuDType } from "./gpu.ts";

/** The WGSL type of a dtype on the device. */
export function wgslType(d: GpuDType): string {
  return d === "float32" ? "f32" : d === "int32" ? "i32" : "u32";
}

/** Threads per workgroup of the one-thread-per-element kernels. */
export const EW_GROUP = 256;
/** Threads per workgroup of the tree reductions (one workgroup per output element / row). */
export const RED_GROUP = 64;
/** Tile edge of the matrix product. */
export const TILE = 16;

/** Float helpers the op expressions use (unused ones cost nothing: compilers drop them). */
export const FLOAT_PRELUDE = /* wgsl */ `
fn f_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// NaN and Infinity are no WGSL constants (constant expressions reject them): read them from private variables
var<private> NAN_BITS: u32 = 0x7fc00000u;
var<private> INF_BITS: u32 = 0x7f800000u;
fn f_nan() -> f32 { return bitcast<f32>(NAN_BITS); }
fn f_inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn f_sign(x: f32) -> f32 { if (f_isnan(x)) { return x; } return sign(x); }
fn f_relu(x: f32) -> f32 { if (x < 0.0) { return 0.0; } return x; }
fn f_sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn f_tanh(x: f32) -> f32 {
  if (abs(x) > 15.0) { return sign(x); }
  if (abs(x) < 0.0005) { return x * (1.0 - x * x / 3.0); }
  return tanh(x);
}
fn f_log1p(x: f32) -> f32 {
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  if (f_isnan(u) || u == f_inf()) { return log(u); }
  return log(u) * (x / (u - 1.0));
}
fn f_expm1(x: f32) -> f32 {
  if (abs(x) < 1e-5) { return x + 0.5 * x * x; }
  if (x > 88.0) { return exp(x); }
  let u = exp(x);
  if (u == 1.0) { return x; }
  let um1 = u - 1.0;
  if (um1 == -1.0) { return -1.0; }
  return um1 * x / log(u);
}
fn f_erf(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.5) {
    let z = x * x;
    return x * 1.1283791670955126 * (1.0 + z * (-0.3333333333 + z * (0.1 + z * (-0.0238095238 + z * (0.0046296296 + z * -0.0007575758)))));
  }
  // erfc by the Chebyshev fit of Numerical Recipes (fractional error < 1.2e-7)
  let t = 1.0 / (1.0 + 0.5 * a);
  let y = t * exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(x) * (1.0 - y);
}
// Phi(x), the standard normal CDF: erfc(|x| / sqrt 2) / 2 by the same Chebyshev fit (relative precision in the
// lower tail), 1 minus it for x >= 0; gelu = x Phi(x), geluDeriv = Phi(x) + x phi(x) (0 at -inf, 1 at +inf)
fn f_normcdf(x: f32) -> f32 {
  let z = abs(x) * 0.70710678118654752;
  let t = 1.0 / (1.0 + 0.5 * z);
  let h = 0.5 * t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(1.0 - h, h, x < 0.0);
}
fn f_gelu(x: f32) -> f32 { return x * f_normcdf(x); }
fn f_geluDeriv(x: f32) -> f32 {
  let xphi = select(0.0, x * exp(-0.5 * x * x) * 0.39894228040143268, abs(x) < f_inf());
  return f_normcdf(x) + xphi;
}
// sin, cos, asin, acos: WGSL guarantees only 2^-11 absolute error for the built-ins (SwiftShader is that
// coarse), so they are computed here in the manner of Cephes' single-precision routines: reduction by pi/4 in
// three parts (Cody-Waite) and minimax polynomials, a few ulp for |x| < 8192.
fn f_sincos(x: f32, cosine: bool) -> f32 {
  var sgn = select(1.0, -1.0, x < 0.0 && !cosine);
  let a = abs(x);
  var j = u32(a * 1.27323954473516);
  var y = f32(j);
  if ((j & 1u) == 1u) { j += 1u; y += 1.0; }
  j = j & 7u;
  if (j > 3u) { j -= 4u; sgn = -sgn; }
  if (cosine && j > 1u) { sgn = -sgn; }
  let r = ((a - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
  let z = r * r;
  let c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z - 0.5 * z + 1.0;
  let s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
  let useCos = select(j == 1u || j == 2u, !(j == 1u || j == 2u), cosine);
  return sgn * select(s, c, useCos);
}
fn f_sin(x: f32) -> f32 { return f_sincos(x, false); }
fn f_cos(x: f32) -> f32 { return f_sincos(x, true); }
fn f_tan(x: f32) -> f32 { return f_sin(x) / f_cos(x); }
fn f_asin(x: f32) -> f32 {
  let a = abs(x);
  if (a > 1.0) { return f_nan(); }
  var z: f32;
  var r: f32;
  if (a > 0.5) { z = 0.5 * (1.0 - a); r = sqrt(z); } else { z = a * a; r = a; }
  var y = ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z + 1.6666752422e-1) * z * r + r;
  if (a > 0.5) { y = 1.5707963267948966 - (y + y); }
  return select(y, -y, x < 0.0);
}
fn f_acos(x: f32) -> f32 {
  if (x < -0.5) { return 3.14159265358979 - 2.0 * f_asin(sqrt(0.5 * (1.0 + x))); }
  if (x > 0.5) { return 2.0 * f_asin(sqrt(0.5 * (1.0 - x))); }
  return 1.5707963267948966 - f_asin(x);
}
fn f_asinh(x: f32) -> f32 { let a = abs(x); return sign(x) * f_log1p(a + a * a / (1.0 + sqrt(1.0 + a * a))); }
fn f_acosh(x: f32) -> f32 { return log(x + sqrt(x - 1.0) * sqrt(x + 1.0)); }
fn f_atanh(x: f32) -> f32 { return 0.5 * f_log1p(2.0 * x / (1.0 - x)); }
fn f_sinh(x: f32) -> f32 { if (abs(x) < 1.0) { let e = f_expm1(x); return 0.5 * (e + e / (e + 1.0)); } return sinh(x); }
fn f_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0 || a == 1.0) { return 1.0; }
  if (f_isnan(a) || f_isnan(b)) { return f_nan(); }
  if (a == 0.0) { if (b < 0.0) { return f_inf(); } return 0.0; }
  if (a < 0.0) {
    if (floor(b) != b) { return f_nan(); }
    let r = exp2(b * log2(-a));
    if (abs(b) < 16777216.0 && (i32(b) & 1) == 1) { return -r; }
    return r;
  }
  return exp2(b * log2(a));
}
fn f_max(a: f32, b: f32) -> f32 { if (f_isnan(a) || f_isnan(b)) { return a + b; } return max(a, b); }
fn f_min(a: f32, b: f32) -> f32 { if (f_isnan(a) || f_isnan(b)) { return a + b; } return min(a, b); }
fn i_div(a: i32, b: i32) -> i32 { if (b == 0) { return 0; } if (b == -1) { return 0 - a; } return a / b; }
fn i_pow(a: i32, b: i32) -> i32 {
  if (b < 0) { if (a == 1) { return 1; } if (a == -1) { return select(1, -1, (b & 1) == 1); } return 0; }
  var r = 1; var base = a; var e = b;
  loop { if (e <= 0) { break; } if ((e & 1) == 1) { r = r * base; } base = base * base; e = e >> 1u; }
  return r;
}
`;

/** The WGSL expression of `op` applied to `x` (null when the op has no WGSL form for the dtype). */
export function unaryExpr(op: UnaryOp, d: GpuDType, x: string): string | null {
  if (d === "bool") return op === "not" ? `(1u - ${x})` : null;
  if (d === "int32") {
    if (op === "neg") return `(0 - ${x})`;
    if (op === "abs") return `select(${x}, 0 - ${x}, ${x} < 0)`;
    if (op === "sign") return `sign(${x})`;
    return null;
  }
  switch (op) {
    case "neg":
      return `(-${x})`;
    case "abs":
    case "exp":
    case "log":
    case "sqrt":
    case "floor":
    case "ceil":
    case "round":
    case "atan":
    case "cosh":
    case "log2":
      return `${op}(${x})`;
    case "log10":
      return `(log2(${x}) * 0.30102999566398120)`;
    case "not":
      return null;
    default:
      return `f_${op}(${x})`;
  }
}

/** The WGSL expression of `op` on `a`, `b` of dtype `d` (the output is u32 for comparisons). */
export function binaryExpr(op: BinaryOp, d: GpuDType, a: string, b: string): string | null {
  const cmp: Partial<Record<BinaryOp, string>> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" };
  const c = cmp[op];
  if (c !== undefined && d === "float32") {
    // IEEE: a comparison with NaN is false (ne true); NaN is tested by bit pattern, since compilers may take
    // floats as never NaN and fold the bare comparison (lavapipe gave NaN != NaN as false)
    const ordered = `!f_isnan(${a}) && !f_isnan(${b})`;
    if (op === "ne") return `select(1u, 0u, ${ordered} && ${a} == ${b})`;
    return `select(0u, 1u, ${ordered} && ${a} ${c} ${b})`;
  }
  if (c !== undefined) return `select(0u, 1u, ${a} ${c} ${b})`;
  if (d === "bool") {
    if (op === "and") return `(${a} & ${b})`;
    if (op === "or") return `(${a} | ${b})`;
    if (op === "xor") return `(${a} ^ ${b})`;
    return null;
  }
  const arith: Partial<Record<BinaryOp, string>> = { add: "+", sub: "-", mul: "*" };
  if (arith[op] !== undefined) return `(${a} ${arith[op]} ${b})`;
  if (d === "int32") {
    if (op === "div") return `i_div(${a}, ${b})`;
    if (op === "pow") return `i_pow(${a}, ${b})`;
    if (op === "maximum") return `max(${a}, ${b})`;
    if (op === "minimum") return `min(${a}, ${b})`;
    return null;
  }
  if (op === "div") return `(${a} / ${b})`;
  if (op === "pow") return `f_pow(${a}, ${b})`;
  if (op === "maximum") return `f_max(${a}, ${b})`;
  if (op === "minimum") return `f_min(${a}, ${b})`;
  if (op === "atan2") return `atan2(${a}, ${b})`;
  return null;
}

/** act(x) in f32. */
export function actExpr(act: Activation, x: string): string {
  return act === "relu" ? `f_relu(${x})` : act === "tanh" ? `f_tanh(${x})` : `f_sigmoid(${x})`;
}

/** ct * act'(.) written through the activation's output y, in f32. */
export function actGradExpr(act: Activation, y: string, ct: string): string {
  if (act === "relu") return `select(0.0, ${ct}, ${y} > 0.0)`;
  if (act === "tanh") return `(${ct} * (1.0 - ${y} * ${y}))`;
  return `(${ct} * (${y} * (1.0 - ${y})))`;
}

/**
 * The bindings of a shader (inputs in0.. read-only, outputs out0.. read-write, then the parameter block P) and
 * the float helpers.
 */
export function header(inputs: readonly GpuDType[], outputs: readonly GpuDType[]): string {
  const lines: string[] = [];
  inputs.forEach((d, k) => {
    lines.push(`@group(0) @binding(${k}) var<storage, read> in${k}: array<${wgslType(d)}>;`);
  });
  outputs.forEach((d, k) => {
    const b = inputs.length + k;
    lines.push(`@group(0) @binding(${b}) var<storage, read_write> out${k}: array<${wgslType(d)}>;`);
  });
  lines.push(`@group(0) @binding(${inputs.length + outputs.length}) var<storage, read> P: array<i32>;`);
  lines.push(FLOAT_PRELUDE);
  return lines.join("\n");
}

/**
 * The entry point of a one-thread-per-item kernel, `size` threads per workgroup (`gid`, `nwg` in scope; the body
 * follows); `linearId` names the thread's item.
 */
export function threadMain(size: number): string {
  return `@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;
}

/** `let name` = the linear item index of a threadMain(size) kernel (2-D grids past 65535 workgroups). */
export function linearId(name: string, size: number): string {
  return `let ${name} = i32(gid.x + gid.y * nwg.x * ${size}u);`;
}

/**
 * The entry point of a kernel with one workgroup of `size` threads per item (`wid`, `lid`, `nwg` in scope; the
 * item is `i32(wid.x + wid.y * nwg.x)`).
 */
export function groupMain(size: number | string): string {
  return `@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;
}

/** The entry point of a 16 x 16 (or `x` x `y`) tiled kernel (`wid`, `lid` in scope). */
function tileMain(x: number | string, y: number | string): string {
  return `@compute @workgroup_size(${x}, ${y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;
}

/**
 * A tree over `arr` (RED_GROUP entries in workgroup memory, thread `t`'s own at arr[t]): halving steps
 * combining entry t with entry t + s, so arr[0] ends with the combination of all (the caller stores first).
 */
function treeSteps(arr: string, t: string, comb: (a: string, b: string) => string): string {
  return `for (var s = ${RED_GROUP / 2}u; s > 0u; s = s >> 1u) {
    if (${t} < s) { ${arr}[${t}] = ${comb(`${arr}[${t}]`, `${arr}[${t} + s]`)}; }
    workgroupBarrier();
  }`;
}

/** The linear thread index `i` of a one-thread-per-element kernel (2-D grids past 65535 workgroups). */
export const LINEAR_ID = linearId("i", EW_GROUP);
/** The entry point of a one-thread-per-element kernel (EW_GROUP threads per workgroup). */
export const MAIN = threadMain(EW_GROUP);

/**
 * One thread per element of a contiguous (or, with `stridedOut`, strided) output of rank P[1] and shape
 * P[2..]: input k's offset and strides follow at 2 + rank + k (rank + 1); a strided output's come last.
 * `body` is an expression of x0, x1, ... (the loaded inputs).
 * Parameters: [n, rank, shape[rank], (off, strides[rank]) per input, (off, strides[rank]) for a strided out].
 */
export function elementwiseShader(
  inputs: readonly GpuDType[],
  out: GpuDType,
  body: string,
  stridedOut = false,
): string {
  const k = inputs.length;
  const load: string[] = [];
  for (let j = 0; j < k; j++) load.push(`let x${j} = in${j}[o${j}];`);
  const dst = stridedOut ? `o${k}` : "i";
  return `${header(inputs, [out])}
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let rank = P[1];
${stridedOffsets(stridedOut ? k + 1 : k)}
  ${load.join("\n  ")}
  out0[${dst}] = ${body};
}`;
}

/**
 * The offsets o0 .. o{count-1} of element i (rank, i in scope) in `count` strided views laid out as the
 * elementwise parameters: shape at P[2..], view j's (offset, strides[rank]) at 2 + rank + j (rank + 1).
 */
export function stridedOffsets(count: number): string {
  const decl: string[] = [];
  const acc: string[] = [];
  for (let j = 0; j < count; j++) {
    decl.push(`var o${j} = P[2 + rank + ${j} * (rank + 1)];`);
    acc.push(`o${j} += q * P[3 + rank + ${j} * (rank + 1) + d];`);
  }
  return `  var rem = i;
  ${decl.join("\n  ")}
  for (var d = rank - 1; d >= 0; d--) {
    let s = P[2 + d];
    let q = rem % s;
    rem = rem / s;
    ${acc.join("\n    ")}
  }`;
}

/**
 * gather along an axis: one thread per output element (idx's shape). Parameters: [n, rank, shape, idxOff,
 * idxStrides, xOff, xStrides, axis].
 */
export function gatherShader(d: GpuDType): string {
  return `${header([d, "int32"], [d])}
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let rank = P[1];
  let axis = P[4 + 3 * rank];
  var rem = i;
  var oi = P[2 + rank];
  var ox = P[3 + 2 * rank];
  for (var d = rank - 1; d >= 0; d--) {
    let s = P[2 + d];
    let q = rem % s;
    rem = rem / s;
    oi += q * P[3 + rank + d];
    if (d != axis) { ox += q * P[4 + 2 * rank + d]; }
  }
  out0[i] = in0[ox + in1[oi] * P[4 + 2 * rank + axis]];
}`;
}

/**
 * scatterAdd: one thread per element of out (contiguous, zero-initialised, outShape): it adds every src element
 * whose index along `axis` points at it. Parameters: [n, rank, outShape, srcOff, srcStrides, idxOff, idxStrides,
 * axis, m (idx's length along axis)].
 */
export function scatterAddShader(d: GpuDType): string {
  const zero = d === "float32" ? "0.0" : "0";
  return `${header([d, "int32"], [d])}
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let rank = P[1];
  let axis = P[4 + 3 * rank];
  let m = P[5 + 3 * rank];
  var rem = i;
  var os = P[2 + rank];
  var oi = P[3 + 2 * rank];
  var tgt = 0;
  for (var d = rank - 1; d >= 0; d--) {
    let s = P[2 + d];
    let q = rem % s;
    rem = rem / s;
    if (d == axis) { tgt = q; } else {
      os += q * P[3 + rank + d];
      oi += q * P[4 + 2 * rank + d];
    }
  }
  var acc = ${zero};
  let ss = P[3 + rank + axis];
  let si = P[4 + 2 * rank + axis];
  for (var j = 0; j < m; j++) {
    if (in1[oi + j * si] == tgt) { acc += in0[os + j * ss]; }
  }
  out0[i] = out0[i] + acc;
}`;
}

/** Identity and combination of a reduction in WGSL. */
function reduceOps(
  op: "sum" | "prod" | "max" | "min",
  d: GpuDType,
): { id: string; comb: (a: string, b: string) => string } {
  const f = d === "float32";
  switch (op) {
    case "sum":
      return { id: f ? "0.0" : "0", comb: (a, b) => `(${a} + ${b})` };
    case "prod":
      return { id: f ? "1.0" : "1", comb: (a, b) => `(${a} * ${b})` };
    case "max":
      return f
        ? { id: "-f_inf()", comb: (a, b) => `f_max(${a}, ${b})` }
        : { id: "(-2147483647 - 1)", comb: (a, b) => `max(${a}, ${b})` };
    case "min":
      return f
        ? { id: "f_inf()", comb: (a, b) => `f_min(${a}, ${b})` }
        : { id: "2147483647", comb: (a, b) => `min(${a}, ${b})` };
  }
}

/**
 * Reduction over some axes. Parameters: [M (outputs), K (elements per output), keptRank, redRank, keptShape,
 * keptStrides, redShape, redStrides, offset]. With `tree`, one workgroup of RED_GROUP threads per output:
 * each thread folds a strided share of the K elements, then a tree in workgroup memory combines them. Without,
 * one thread per output folds its K elements serially (small K).
 */
export function reduceShader(op: "sum" | "prod" | "max" | "min", d: GpuDType, tree: boolean): string {
  const t = wgslType(d);
  const { id, comb } = reduceOps(op, d);
  const base = `
  let M = P[0];
  let K = P[1];
  let kr = P[2];
  let rr = P[3];
  var rem = o;
  var base = P[4 + 2 * kr + 2 * rr];
  for (var q = kr - 1; q >= 0; q--) {
    let s = P[4 + q];
    base += (rem % s) * P[4 + kr + q];
    rem = rem / s;
  }`;
  const offK = `
    var r2 = k;
    var off = base;
    for (var q = rr - 1; q >= 0; q--) {
      let s = P[4 + 2 * kr + q];
      off += (r2 % s) * P[4 + 2 * kr + rr + q];
      r2 = r2 / s;
    }`;
  if (!tree) {
    return `${header([d], [d])}
${MAIN} {
  ${LINEAR_ID}
  let o = i;
  if (o >= P[0]) { return; }
  ${base}
  var acc: ${t} = ${id};
  for (var k = 0; k < K; k++) {
    ${offK}
    acc = ${comb("acc", "in0[off]")};
  }
  out0[o] = acc;
}`;
  }
  return `${header([d], [d])}
var<workgroup> sh: array<${t}, ${RED_GROUP}>;
${groupMain(RED_GROUP)} {
  let o = i32(wid.x + wid.y * nwg.x);
  let valid = o < P[0];
  ${base}
  var acc: ${t} = ${id};
  if (valid) {
    for (var k = i32(lid.x); k < K; k += ${RED_GROUP}) {
      ${offK}
      acc = ${comb("acc", "in0[off]")};
    }
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  ${treeSteps("sh", "lid.x", comb)}
  if (valid && lid.x == 0u) { out0[o] = sh[0]; }
}`;
}

/**
 * Row-wise kernels (softmax and its VJP): one workgroup per row along an axis; tree reductions in workgroup
 * memory. Parameters: [R (rows), L (row length), rank (of the other axes), shape, then per operand (inputs, then
 * the contiguous output) (off, axisStride, strides[rank])].
 */
export function rowHeader(n: number, rowExpr = "i32(wid.x + wid.y * nwg.x)"): string {
  const lines = [
    "  let R = P[0];",
    "  let L = P[1];",
    "  let rank = P[2];",
    `  let row = ${rowExpr};`,
    "  let valid = row < R;",
    "  var rem = row;",
  ];
  for (let j = 0; j < n; j++) {
    lines.push(`  var b${j} = P[3 + rank + ${j} * (rank + 2)];`);
    lines.push(`  let a${j} = P[4 + rank + ${j} * (rank + 2)];`);
  }
  lines.push("  for (var q = rank - 1; q >= 0; q--) {");
  lines.push("    let s = P[3 + q];");
  lines.push("    let c = rem % s;");
  lines.push("    rem = rem / s;");
  for (let j = 0; j < n; j++) lines.push(`    b${j} += c * P[5 + rank + ${j} * (rank + 2) + q];`);
  lines.push("  }");
  return lines.join("\n");
}

/** A WGSL function `name(v, lid)`: the combination of every thread's v by a tree over `sh`, for all threads. */
function treeFn(name: string, comb: (a: string, b: string) => string): string {
  return `fn ${name}(v: f32, lid: u32) -> f32 {
  sh[lid] = v;
  workgroupBarrier();
  ${treeSteps("sh", "lid", comb)}
  let r = sh[0];
  workgroupBarrier();
  return r;
}`;
}

const ROW_MAIN = `var<workgroup> sh: array<f32, ${RED_GROUP}>;
${treeFn("tree_max", (a, b) => `f_max(${a}, ${b})`)}
${treeFn("tree_sum", (a, b) => `${a} + ${b}`)}
${groupMain(RED_GROUP)}`;

/** softmax / log-softmax of in0 along the axis into out0 (float32). */
export function softmaxShader(log: boolean): string {
  const write = log ? "(x - m) - ls" : "exp(x - m) / s";
  return `${header(["float32"], ["float32"])}
${ROW_MAIN} {
${rowHeader(2)}
  let t = i32(lid.x);
  var m = -f_inf();
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { m = f_max(m, in0[b0 + j * a0]); } }
  m = tree_max(m, lid.x);
  var s = 0.0;
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { s += exp(in0[b0 + j * a0] - m); } }
  s = tree_sum(s, lid.x);
  let ls = log(s);
  if (valid) {
    for (var j = t; j < L; j += ${RED_GROUP}) {
      let x = in0[b0 + j * a0];
      out0[b1 + j * a1] = ${write};
    }
  }
}`;
}

/** An f32 WGSL literal of `v` (eps of the layerNorm shaders, baked into the pipeline). */
function f32Literal(v: number): string {
  const t = Math.fround(v).toExponential(9);
  return t.includes("e") ? t.replace("e+", "e") : t;
}

/**
 * Layer normalisation of the rows of in0 along the (last) axis into out0, float32: the workgroup sums the row
 * (shifted by its first element), then its squared deviations from the mean (two sweeps, as the other
 * backends); out = (x - mean) rstd. With
 * `backward`, in1 is g and out0 = rstd (g - mean(g) - xhat mean(xhat g)) (Backend.layerNormBackward).
 */
export function layerNormShader(backward: boolean, eps: number): string {
  const stats = `  let t = i32(lid.x);
  let n = f32(L);
  // the sum shifted by the row's first element: a constant row (a broadcast) then has mean x0 exactly and
  // normalises to exactly 0, as on the other backends (whose float64 sums are exact there)
  var x0 = 0.0;
  if (valid && L > 0) { x0 = in0[b0]; }
  var s = 0.0;
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { s += in0[b0 + j * a0] - x0; } }
  let mean = x0 + tree_sum(s, lid.x) / n;
  var q = 0.0;
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { let d = in0[b0 + j * a0] - mean; q += d * d; } }
  let r = 1.0 / sqrt(tree_sum(q, lid.x) / n + ${f32Literal(eps)});`;
  if (!backward) {
    return `${header(["float32"], ["float32"])}
${ROW_MAIN} {
${rowHeader(2)}
${stats}
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { out0[b1 + j * a1] = (in0[b0 + j * a0] - mean) * r; } }
}`;
  }
  return `${header(["float32", "float32"], ["float32"])}
${ROW_MAIN} {
${rowHeader(3)}
${stats}
  var sg = 0.0;
  var sgx = 0.0;
  if (valid) {
    for (var j = t; j < L; j += ${RED_GROUP}) {
      let g = in1[b1 + j * a1];
      sg += g;
      sgx += g * ((in0[b0 + j * a0] - mean) * r);
    }
  }
  let mg = tree_sum(sg, lid.x) / n;
  let mgx = tree_sum(sgx, lid.x) / n;
  if (valid) {
    for (var j = t; j < L; j += ${RED_GROUP}) {
      let h = (in0[b0 + j * a0] - mean) * r;
      out0[b2 + j * a2] = r * (in1[b1 + j * a1] - mg - h * mgx);
    }
  }
}`;
}

/** The VJP of softmax (log: ct - exp(y) sum(ct); else y (ct - sum(ct y))): y = in0, ct = in1, out0. */
export function softmaxBackwardShader(log: boolean): string {
  const term = log ? "in1[b1 + j * a1]" : "in1[b1 + j * a1] * in0[b0 + j * a0]";
  const write = log ? "ct - exp(y) * s" : "y * (ct - s)";
  return `${header(["float32", "float32"], ["float32"])}
${ROW_MAIN} {
${rowHeader(3)}
  let t = i32(lid.x);
  var s = 0.0;
  if (valid) { for (var j = t; j < L; j += ${RED_GROUP}) { s += ${term}; } }
  s = tree_sum(s, lid.x);
  if (valid) {
    for (var j = t; j < L; j += ${RED_GROUP}) {
      let y = in0[b0 + j * a0];
      let ct = in1[b1 + j * a1];
      out0[b2 + j * a2] = ${write};
    }
  }
}`;
}

/**
 * The start of both matrix products: sizes M, N, K, the batch element wid.z + P[4] decoded into the operands'
 * offsets oa, ob, their row and column strides, the thread's tx, ty.
 */
const DOT_PRELUDE = `  let M = P[0];
  let N = P[1];
  let K = P[2];
  let br = P[3];
  let e = 5 + 3 * br;
  var rem = i32(wid.z) + P[4];
  var oa = P[e];
  var ob = P[e + 3];
  for (var q = br - 1; q >= 0; q--) {
    let s = P[5 + q];
    let c = rem % s;
    rem = rem / s;
    oa += c * P[5 + br + q];
    ob += c * P[5 + 2 * br + q];
  }
  let aSM = P[e + 1];
  let aSK = P[e + 2];
  let bSK = P[e + 4];
  let bSN = P[e + 5];
  let tx = i32(lid.x);
  let ty = i32(lid.y);`;

/**
 * Batched matrix product, tiled in workgroup memory: a TILE x TILE workgroup computes a TILE x TILE block of
 * one batch's output, loading TILE x TILE tiles of a and b per step. Parameters: [M, N, K, batchRank,
 * batchBase, batchShape, aBatchStrides, bBatchStrides, aOff, aSM, aSK, bOff, bSK, bSN].
 */
export function dotShader(d: GpuDType): string {
  const t = wgslType(d);
  const zero = d === "float32" ? "0.0" : "0";
  return `${header([d, d], [d])}
var<workgroup> ta: array<array<${t}, ${TILE}>, ${TILE}>;
var<workgroup> tb: array<array<${t}, ${TILE}>, ${TILE}>;
${tileMain(TILE, TILE)} {
${DOT_PRELUDE}
  let row = i32(wid.y) * ${TILE} + ty;
  let col = i32(wid.x) * ${TILE} + tx;
  var acc: ${t} = ${zero};
  for (var k0 = 0; k0 < K; k0 += ${TILE}) {
    let ka = k0 + tx;
    if (row < M && ka < K) { ta[ty][tx] = in0[oa + row * aSM + ka * aSK]; } else { ta[ty][tx] = ${zero}; }
    let kb = k0 + ty;
    if (col < N && kb < K) { tb[ty][tx] = in1[ob + kb * bSK + col * bSN]; } else { tb[ty][tx] = ${zero}; }
    workgroupBarrier();
    for (var k = 0; k < ${TILE}; k++) { acc += ta[ty][k] * tb[k][tx]; }
    workgroupBarrier();
  }
  if (row < M && col < N) {
    out0[(i32(wid.z) + P[4]) * M * N + row * N + col] = acc;
  }
}`;
}

/** Output tile edge of the register-blocked matrix product (each of its 16 x 16 threads computes 4 x 4). */
export const BIG_TILE = 64;

/** The register-blocked kernels' tiles (64 x 16 of A, transposed, and 16 x 64 of B) and entry point. */
function blockedMain(t: string): string {
  return `var<workgroup> ta: array<array<${t}, 64>, 16>;
var<workgroup> tb: array<array<${t}, 64>, 16>;
${tileMain(16, 16)}`;
}

/** The thread's place in a register-blocked kernel (tx, ty in scope): tid, the block's row0, col0, and acc. */
function blockedThread(t: string): string {
  return `  let tid = ty * 16 + tx;
  let row0 = i32(wid.y) * 64;
  let col0 = i32(wid.x) * 64;
  var acc: array<${t}, 16>;`;
}

/** acc (4 x 4: rows ty + 16 i, columns tx + 16 j) += the products of the staged tiles, k in order. */
function blockedProducts(t: string): string {
  return `    for (var k = 0; k < 16; k++) {
      var a: array<${t}, 4>;
      var b: array<${t}, 4>;
      for (var i = 0; i < 4; i++) {
        a[i] = ta[k][ty + 16 * i];
        b[i] = tb[k][tx + 16 * i];
      }
      for (var i = 0; i < 4; i++) {
        for (var j = 0; j < 4; j++) { acc[i * 4 + j] += a[i] * b[j]; }
      }
    }`;
}

/**
 * Batched matrix product with register blocking: a 16 x 16 workgroup computes a 64 x 64 block of the output,
 * each thread a 4 x 4 sub-block (rows ty + 16 i, columns tx + 16 j: neighbouring threads write neighbouring
 * columns), from 64 x 16 tiles of a and 16 x 64 tiles of b staged in workgroup memory (8 KiB for f32); every
 * value read from workgroup memory feeds four products. Each output still sums its K terms in order, as the
 * 16 x 16 kernel does. Parameters as dotShader's.
 */
export function dotBlockedShader(d: GpuDType): string {
  const t = wgslType(d);
  const zero = d === "float32" ? "0.0" : "0";
  return `${header([d, d], [d])}
${blockedMain(t)} {
${DOT_PRELUDE}
${blockedThread(t)}
  for (var k0 = 0; k0 < K; k0 += 16) {
    for (var u = 0; u < 4; u++) {
      let idx = tid + u * 256;
      let m = idx / 16;
      let ka = k0 + idx % 16;
      var va: ${t} = ${zero};
      if (row0 + m < M && ka < K) { va = in0[oa + (row0 + m) * aSM + ka * aSK]; }
      ta[idx % 16][m] = va;
      let kb = k0 + idx / 64;
      let n = idx % 64;
      var vb: ${t} = ${zero};
      if (col0 + n < N && kb < K) { vb = in1[ob + kb * bSK + (col0 + n) * bSN]; }
      tb[idx / 64][n] = vb;
    }
    workgroupBarrier();
${blockedProducts(t)}
    workgroupBarrier();
  }
  let base = (i32(wid.z) + P[4]) * M * N;
  for (var i = 0; i < 4; i++) {
    let row = row0 + ty + 16 * i;
    for (var j = 0; j < 4; j++) {
      let col = col0 + tx + 16 * j;
      if (row < M && col < N) { out0[base + row * N + col] = acc[i * 4 + j]; }
    }
  }
}`;
}

/**
 * Adam/AdamW in place: p, m, v (and vmax) contiguous read-write, g = in0 strided like an elementwise input.
 * Parameters: [n, rank, shape, gOff, gStrides] then floats [decay, l2, b1, b2, step, bc2Sqrt, eps, sign].
 */
export function adamShader(amsgrad: boolean): string {
  const outs: GpuDType[] = amsgrad
    ? ["float32", "float32", "float32", "float32"]
    : ["float32", "float32", "float32"];
  return `${header(["float32"], outs)}
${MAIN} {
  ${LINEAR_ID}
  if (i >= P[0]) { return; }
  let rank = P[1];
  var rem = i;
  var o0 = P[2 + rank];
  for (var d = rank - 1; d >= 0; d--) {
    let s = P[2 + d];
    let q = rem % s;
    rem = rem / s;
    o0 += q * P[3 + rank + d];
  }
  let h = 3 + 2 * rank;
  let decay = bitcast<f32>(P[h]);
  let l2 = bitcast<f32>(P[h + 1]);
  let b1 = bitcast<f32>(P[h + 2]);
  let b2 = bitcast<f32>(P[h + 3]);
  let step = bitcast<f32>(P[h + 4]);
  let bc2 = bitcast<f32>(P[h + 5]);
  let eps = bitcast<f32>(P[h + 6]);
  let sg = bitcast<f32>(P[h + 7]);
  let p = out0[i] * decay;
  let g = sg * in0[o0] + l2 * p;
  let m = b1 * out1[i] + (1.0 - b1) * g;
  let v = b2 * out2[i] + (1.0 - b2) * g * g;
  out1[i] = m;
  out2[i] = v;
  ${amsgrad ? "let vh = max(out3[i], v);\n  out3[i] = vh;" : "let vh = v;"}
  out0[i] = p - (step * m) / (sqrt(vh) / bc2 + eps);
}`;
}

// ------------------------------------------------------------------------------------ convolution, pooling

/**
 * `let` c, b, a = the digits of x in the mixed radix (_, B, A): a = x % A, b = (x / A) % B, c = x / (A B) (the
 * convolutions' positions and reduction indices).
 */
function unravel3(x: string, c: string, b: string, a: string, B: string, A: string): string {
  return `let ${a} = ${x} % ${A};
  let ${b} = (${x} / ${A}) % ${B};
  let ${c} = ${x} / (${A} * ${B});`;
}

/** The convolutions' epilogue activation of `v` in place: the parameter act is 0 none, 1 relu, 2 tanh, 3 sigmoid. */
function actCode(v: string): string {
  return `if (act == 1) { ${v} = f_relu(${v}); } else if (act == 2) { ${v} = f_tanh(${v}); } else if (act == 3) { ${v} = f_sigmoid(${v}); }`;
}

/** `let` declarations of named int parameters P[0..], in order. */
function named(names: readonly string[]): string {
  return names.map((n, i) => `  let ${n} = P[${i}];`).join("\n");
}

/** The parameter names of the convolution kernels (x, w or dy, bias as 4-d strided views). */
export const CONV_PARAMS = [
  "N",
  "C",
  "H",
  "W",
  "O",
  "OH",
  "OW",
  "KH",
  "KW",
  "sh",
  "sw",
  "ph",
  "pw",
  "dh",
  "dw",
  "G",
  "xo",
  "xs0",
  "xs1",
  "xs2",
  "xs3",
  "wo",
  "ws0",
  "ws1",
  "ws2",
  "ws3",
  "bo",
  "bs",
  "act",
] as const;

/**
 * Direct convolution, one thread per output element [n, o, oh, ow] (x = in0, w = in1, bias = in2 when
 * `bias`); the epilogue adds bias[o] and applies act (0 none, 1 relu, 2 tanh, 3 sigmoid).
 */
export function conv2dShader(bias: boolean): string {
  const ins: GpuDType[] = bias ? ["float32", "float32", "float32"] : ["float32", "float32"];
  return `${header(ins, ["float32"])}
${MAIN} {
  ${LINEAR_ID}
${named(CONV_PARAMS)}
  if (i >= N * O * OH * OW) { return; }
  let ow = i % OW;
  let oh = (i / OW) % OH;
  let o = (i / (OW * OH)) % O;
  let n = i / (OW * OH * O);
  let cg = C / G;
  let g = o / (O / G);
  var acc = 0.0;
  for (var ci = 0; ci < cg; ci++) {
    let c = g * cg + ci;
    for (var kh = 0; kh < KH; kh++) {
      let ih = oh * sh - ph + kh * dh;
      if (ih < 0 || ih >= H) { continue; }
      for (var kw = 0; kw < KW; kw++) {
        let iw = ow * sw - pw + kw * dw;
        if (iw < 0 || iw >= W) { continue; }
        acc += in0[xo + n * xs0 + c * xs1 + ih * xs2 + iw * xs3] * in1[wo + o * ws0 + ci * ws1 + kh * ws2 + kw * ws3];
      }
    }
  }
  ${bias ? "acc = acc + in2[bo + o * bs];" : ""}
  ${actCode("acc")}
  out0[i] = acc;
}`;
}

/**
 * An implicit GEMM per group g = wid.z over the convolution parameters (CONV_PARAMS), register-blocked like
 * dotBlockedShader: a 16 x 16 workgroup computes a 64 x 64 block of the group's [M, NC] result, 4 x 4 per
 * thread, from 64 x 16 tiles of A and 16 x 64 tiles of B gathered on the fly (`loadA` sets va from row m and
 * reduction index ka, `loadB` sets vb from reduction index kb and column col; both run only in range), then
 * `store` writes y for (m, col). Terms are added in the order of the reduction index.
 */
function convGemm(
  ins: readonly GpuDType[],
  dims: { M: string; NC: string; KK: string },
  loadA: string,
  loadB: string,
  store: string,
): string {
  return `${header(ins, ["float32"])}
${blockedMain("f32")} {
${named(CONV_PARAMS)}
  let g = i32(wid.z);
  let cg = C / G;
  let og = O / G;
  let M = ${dims.M};
  let NC = ${dims.NC};
  let KK = ${dims.KK};
  let tx = i32(lid.x);
  let ty = i32(lid.y);
${blockedThread("f32")}
  for (var k0 = 0; k0 < KK; k0 += 16) {
    for (var u = 0; u < 4; u++) {
      let idx = tid + u * 256;
      let m = row0 + idx / 16;
      let ka = k0 + idx % 16;
      var va = 0.0;
      if (m < M && ka < KK) {${loadA}
      }
      ta[idx % 16][idx / 16] = va;
      let kb = k0 + idx / 64;
      let col = col0 + idx % 64;
      var vb = 0.0;
      if (col < NC && kb < KK) {${loadB}
      }
      tb[idx / 64][idx % 64] = vb;
    }
    workgroupBarrier();
${blockedProducts("f32")}
    workgroupBarrier();
  }
  for (var i = 0; i < 4; i++) {
    let m = row0 + ty + 16 * i;
    if (m >= M) { continue; }
    for (var j = 0; j < 4; j++) {
      let col = col0 + tx + 16 * j;
      if (col >= NC) { continue; }
      var y = acc[i * 4 + j];${store}
    }
  }
}`;
}

/**
 * conv2d as an implicit GEMM per group: rows the group's output channels, columns the output positions
 * (n, oh, ow), reduction (ci, kh, kw) in the direct kernel's order; the x tile is gathered on the fly (im2col
 * never exists; padding taps read 0). Bindings and parameters as conv2dShader's, and its epilogue.
 */
export function conv2dGemmShader(bias: boolean): string {
  const ins: GpuDType[] = bias ? ["float32", "float32", "float32"] : ["float32", "float32"];
  return convGemm(
    ins,
    { M: "og", NC: "N * OH * OW", KK: "cg * KH * KW" },
    `
        ${unravel3("ka", "ci", "kh", "kw", "KH", "KW")}
        va = in1[wo + (g * og + m) * ws0 + ci * ws1 + kh * ws2 + kw * ws3];`,
    `
        ${unravel3("kb", "ci", "kh", "kw", "KH", "KW")}
        ${unravel3("col", "n", "oh", "ow", "OH", "OW")}
        let ih = oh * sh - ph + kh * dh;
        let iw = ow * sw - pw + kw * dw;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
          vb = in0[xo + n * xs0 + (g * cg + ci) * xs1 + ih * xs2 + iw * xs3];
        }`,
    `
      let o = g * og + m;
      ${bias ? "y = y + in2[bo + o * bs];" : ""}
      ${actCode("y")}
      ${unravel3("col", "n", "oh", "ow", "OH", "OW")}
      out0[((n * O + o) * OH + oh) * OW + ow] = y;`,
  );
}

/**
 * conv2dBackInput as an implicit GEMM per group: rows the group's input channels ci, columns the input
 * positions (n, ih, iw), reduction (kh, kw, oo) in the direct kernel's order; the dy tile gathered on the fly
 * (0 where no output position reaches the input one). Bindings and parameters as conv2dBackInputShader's.
 */
export function conv2dBackInputGemmShader(): string {
  return convGemm(
    ["float32", "float32"],
    { M: "cg", NC: "N * H * W", KK: "KH * KW * og" },
    `
        ${unravel3("ka", "kh", "kw", "oo", "KW", "og")}
        va = in1[wo + (g * og + oo) * ws0 + m * ws1 + kh * ws2 + kw * ws3];`,
    `
        ${unravel3("kb", "kh", "kw", "oo", "KW", "og")}
        ${unravel3("col", "n", "ih", "iw", "H", "W")}
        let th = ih + ph - kh * dh;
        let tw = iw + pw - kw * dw;
        if (th >= 0 && tw >= 0 && th % sh == 0 && tw % sw == 0 && th / sh < OH && tw / sw < OW) {
          vb = in0[xo + n * xs0 + (g * og + oo) * xs1 + (th / sh) * xs2 + (tw / sw) * xs3];
        }`,
    `
      ${unravel3("col", "n", "ih", "iw", "H", "W")}
      out0[((n * C + g * cg + m) * H + ih) * W + iw] = y;`,
  );
}

/**
 * conv2dBackWeight as an implicit GEMM per group: rows the group's output channels, columns (ci, kh, kw),
 * reduction over the N * OH * OW output positions (dy rows and x columns gathered on the fly). Bindings and
 * parameters as conv2dBackWeightShader's (x in the x slots, dy in the w slots).
 */
export function conv2dBackWeightGemmShader(): string {
  return convGemm(
    ["float32", "float32"],
    { M: "og", NC: "cg * KH * KW", KK: "N * OH * OW" },
    `
        ${unravel3("ka", "n", "oh", "ow", "OH", "OW")}
        va = in1[wo + n * ws0 + (g * og + m) * ws1 + oh * ws2 + ow * ws3];`,
    `
        ${unravel3("kb", "n", "oh", "ow", "OH", "OW")}
        ${unravel3("col", "ci", "kh", "kw", "KH", "KW")}
        let ih = oh * sh - ph + kh * dh;
        let iw = ow * sw - pw + kw * dw;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
          vb = in0[xo + n * xs0 + (g * cg + ci) * xs1 + ih * xs2 + iw * xs3];
        }`,
    `
      out0[(g * og + m) * cg * KH * KW + col] = y;`,
  );
}

/** Gradient of conv2d with respect to x: one thread per [n, c, h, w] (dy = in0 as "x", w = in1). */
export function conv2dBackInputShader(): string {
  return `${header(["float32", "float32"], ["float32"])}
${MAIN} {
  ${LINEAR_ID}
${named(CONV_PARAMS)}
  if (i >= N * C * H * W) { return; }
  let iw = i % W;
  let ih = (i / W) % H;
  let c = (i / (W * H)) % C;
  let n = i / (W * H * C);
  let cg = C / G;
  let og = O / G;
  let g = c / cg;
  let ci = c - g * cg;
  var acc = 0.0;
  for (var kh = 0; kh < KH; kh++) {
    let th = ih + ph - kh * dh;
    if (th < 0 || th % sh != 0) { continue; }
    let oh = th / sh;
    if (oh >= OH) { continue; }
    for (var kw = 0; kw < KW; kw++) {
      let tw = iw + pw - kw * dw;
      if (tw < 0 || tw % sw != 0) { continue; }
      let ow = tw / sw;
      if (ow >= OW) { continue; }
      for (var oo = 0; oo < og; oo++) {
        let o = g * og + oo;
        acc += in0[xo + n * xs0 + o * xs1 + oh * xs2 + ow * xs3] * in1[wo + o * ws0 + ci * ws1 + kh * ws2 + kw * ws3];
      }
    }
  }
  out0[i] = acc;
}`;
}

/**
 * Gradient of conv2d with respect to w: one workgroup per weight element [o, ci, kh, kw], its threads sharing
 * the N * OH * OW terms, combined by a tree in workgroup memory (x = in0, dy = in1 in the "w" slots).
 */
export function conv2dBackWeightShader(): string {
  return `${header(["float32", "float32"], ["float32"])}
var<workgroup> sh_: array<f32, ${RED_GROUP}>;
${groupMain(RED_GROUP)} {
  let i = i32(wid.x + wid.y * nwg.x);
${named(CONV_PARAMS)}
  let cg = C / G;
  let valid = i < O * cg * KH * KW;
  let kw = i % KW;
  let kh = (i / KW) % KH;
  let ci = (i / (KW * KH)) % cg;
  let o = i / (KW * KH * cg);
  let g = o / (O / G);
  let c = g * cg + ci;
  var acc = 0.0;
  if (valid) {
    for (var t = i32(lid.x); t < N * OH * OW; t += ${RED_GROUP}) {
      ${unravel3("t", "n", "oh", "ow", "OH", "OW")}
      let ih = oh * sh - ph + kh * dh;
      let iw = ow * sw - pw + kw * dw;
      if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
        acc += in0[xo + n * xs0 + c * xs1 + ih * xs2 + iw * xs3] * in1[wo + n * ws0 + o * ws1 + oh * ws2 + ow * ws3];
      }
    }
  }
  sh_[lid.x] = acc;
  workgroupBarrier();
  ${treeSteps("sh_", "lid.x", (a, b) => `${a} + ${b}`)}
  if (valid && lid.x == 0u) { out0[i] = sh_[0]; }
}`;
}

/** The parameter names of the pooling kernels (x or dy a 4-d strided view, in0; x of maxPool2dBackward in1). */
export const POOL_PARAMS = [
  "N",
  "C",
  "H",
  "W",
  "OH",
  "OW",
  "KH",
  "KW",
  "sh",
  "sw",
  "ph",
  "pw",
  "xo",
  "xs0",
  "xs1",
  "xs2",
  "xs3",
  "yo",
  "ys0",
  "ys1",
  "ys2",
  "ys3",
] as const;

/** The first maximum of window (oh, ow) of plane (n, c) of in{src} (padding never wins, NaN wins): h * W + w. */
const WINDOW_ARGMAX = (src: string, pre: string) => `
fn ${pre}argmax(n: i32, c: i32, oh: i32, ow: i32) -> i32 {
${named(POOL_PARAMS)}
  var best = -1;
  var bv = 0.0;
  for (var kh = 0; kh < KH; kh++) {
    let ih = oh * sh - ph + kh;
    if (ih < 0 || ih >= H) { continue; }
    for (var kw = 0; kw < KW; kw++) {
      let iw = ow * sw - pw + kw;
      if (iw < 0 || iw >= W) { continue; }
      let v = ${src}[${pre === "" ? "xo + n * xs0 + c * xs1 + ih * xs2 + iw * xs3" : "yo + n * ys0 + c * ys1 + ih * ys2 + iw * ys3"}];
      if (f_isnan(v)) { return ih * W + iw; }
      if (best < 0 || v > bv) { best = ih * W + iw; bv = v; }
    }
  }
  return best;
}`;

/**
 * Pooling forward: kind 0 max, 1 argmax (int32 out), 2 average (padding counted in the divisor). One thread
 * per output [n, c, oh, ow].
 */
export function poolShader(kind: 0 | 1 | 2): string {
  const out: GpuDType = kind === 1 ? "int32" : "float32";
  const body =
    kind === 2
      ? `  var acc = 0.0;
  for (var kh = 0; kh < KH; kh++) {
    let ih = oh * sh - ph + kh;
    if (ih < 0 || ih >= H) { continue; }
    for (var kw = 0; kw < KW; kw++) {
      let iw = ow * sw - pw + kw;
      if (iw < 0 || iw >= W) { continue; }
      acc += in0[xo + n * xs0 + c * xs1 + ih * xs2 + iw * xs3];
    }
  }
  out0[i] = acc / f32(KH * KW);`
      : `  let a = argmax(n, c, oh, ow);
  ${kind === 1 ? "out0[i] = a;" : "out0[i] = in0[xo + n * xs0 + c * xs1 + (a / W) * xs2 + (a % W) * xs3];"}`;
  return `${header(["float32"], [out])}
${WINDOW_ARGMAX("in0", "")}
${MAIN} {
  ${LINEAR_ID}
${named(POOL_PARAMS)}
  if (i >= N * C * OH * OW) { return; }
  let ow = i % OW;
  let oh = (i / OW) % OH;
  let c = (i / (OW * OH)) % C;
  let n = i / (OW * OH * C);
${body}
}`;
}

/**
 * Pooling backward, one thread per input position [n, c, h, w] summing the windows that cover it: kind 0 max
 * (dy = in0, x = in1 read through the y* strides; a window adds its dy where its argmax is this position), 2
 * average (dy = in0; every covering window adds dy / (KH * KW)).
 */
export function poolBackwardShader(kind: 0 | 2): string {
  const ins: GpuDType[] = kind === 0 ? ["float32", "float32"] : ["float32"];
  const add =
    kind === 0
      ? "if (xargmax(n, c, oh, ow) == ih * W + iw) { acc += in0[xo + n * xs0 + c * xs1 + oh * xs2 + ow * xs3]; }"
      : "acc += in0[xo + n * xs0 + c * xs1 + oh * xs2 + ow * xs3];";
  return `${header(ins, ["float32"])}
${kind === 0 ? WINDOW_ARGMAX("in1", "x") : ""}
${MAIN} {
  ${LINEAR_ID}
${named(POOL_PARAMS)}
  if (i >= N * C * H * W) { return; }
  let iw = i % W;
  let ih = (i / W) % H;
  let c = (i / (W * H)) % C;
  let n = i / (W * H * C);
  var acc = 0.0;
  for (var kh = 0; kh < KH; kh++) {
    let th = ih + ph - kh;
    if (th < 0 || th % sh != 0) { continue; }
    let oh = th / sh;
    if (oh >= OH) { continue; }
    for (var kw = 0; kw < KW; kw++) {
      let tw = iw + pw - kw;
      if (tw < 0 || tw % sw != 0) { continue; }
      let ow = tw / sw;
      if (ow >= OW) { continue; }
      ${add}
    }
  }
  ${kind === 2 ? "out0[i] = acc / f32(KH * KW);" : "out0[i] = acc;"}
}`;
}

/**
 * One thread per row along an axis, serial along it (row parameters as for softmax: in0, then the contiguous
 * out0): kind "argmax" / "argmin" (int32 out: the first extremum, the first NaN wins) or "cumsum" /
 * "cumsumRev" (inclusive running sum, from the end for the latter).
 */
export function rowScanShader(kind: "argmax" | "argmin" | "cumsum" | "cumsumRev", d: GpuDType): string {
  const t = wgslType(d);
  const isF = d === "float32";
  let body: string;
  if (kind === "argmax" || kind === "argmin") {
    const better = kind === "argmax" ? ">" : "<";
    body = `
  var best = 0;
  var bv = in0[b0];
  for (var j = 0; j < L; j++) {
    let v = in0[b0 + j * a0];
    ${isF ? "if (f_isnan(v)) { best = j; break; }" : ""}
    if (v ${better} bv) { best = j; bv = v; }
  }
  out0[b1] = best;`;
  } else {
    const rev = kind === "cumsumRev";
    body = `
  var acc: ${t} = ${isF ? "0.0" : "0"};
  for (var q = 0; q < L; q++) {
    let j = ${rev ? "L - 1 - q" : "q"};
    acc += in0[b0 + j * a0];
    out0[b1 + j * a1] = acc;
  }`;
  }
  const out: GpuDType = kind === "argmax" || kind === "argmin" ? "int32" : d;
  return `${header([d], [out])}
${MAIN} {
  ${LINEAR_ID}
${rowHeader(2, "i")}
  if (!valid) { return; }
${body}
}`;
}
