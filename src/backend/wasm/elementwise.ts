/**
 * Elementwise kernels of the wasm backend (unary, binary, where, cast, copy): argument checks, op codes, and
 * the (dtype, op) pairs the wasm module implements. Each function returns false when the pair is not
 * implemented in wasm; the backend then runs the js kernel on the same views (which are plain typed arrays).
 */
import { type DType, dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { contiguousStrides, isContiguous, sizeOf } from "../../shape.ts";
import { BINARY_OPS, type BinaryOp, UNARY_OPS, type UnaryOp, type View } from "../backend.ts";
import { assertOutSize, assertSameShape } from "../js/strided.ts";
import { coalesce, copyRaw, type Ctx, span, stageIn, stageOut, withScope, writeArgs } from "./context.ts";
import { viewAt } from "./heap.ts";

/**
 * The ops this backend implements (its BackendImpl lists; others run the js kernel, see ../complete.ts). The
 * wasm module's op codes are positions in the contract's lists (wasm/assembly/elementwise.ts follows their
 * order): every unary op (neg .. not, then asin, acos, atan, sinh, cosh, asinh, acosh, atanh, log2, log10,
 * gelu, geluDeriv), and the binary ops up to atan2 (float dtypes; float32 atan2 is
 * a SIMD approximation too, float64 Math.atan2). A code out of step with the module computes the wrong op, which the kernel conformance suite
 * reports. Float32 transcendental ops run SIMD approximations (wasm/assembly/math.ts, within 4 ulp of float64
 * rounded to float32, test/backend/wasm-vmath.test.ts) on contiguous rows and the float64 route rounded once on
 * strided rows and row tails; float64 runs the scalar float64 functions (AssemblyScript's Math, the js
 * backend's erf algorithm).
 */
export const WASM_UNARY_OPS: readonly UnaryOp[] = UNARY_OPS.slice(0, UNARY_OPS.indexOf("geluDeriv") + 1);
export const WASM_BINARY_OPS: readonly BinaryOp[] = BINARY_OPS.slice(0, BINARY_OPS.indexOf("atan2") + 1);

const UNARY_CODE = new Map(WASM_UNARY_OPS.map((op, i) => [op, i]));
const BINARY_CODE = new Map(WASM_BINARY_OPS.map((op, i) => [op, i]));

/** Element kind codes shared with the wasm module. */
// the 16-bit float dtypes never reach wasm kernels (their copies and casts run on js, see prims/impl.ts)
export const KIND: Record<DType, number> = {
  float32: 0,
  float64: 1,
  int32: 2,
  bool: 3,
  float16: -1,
  bfloat16: -1,
};

const COMPARE = new Set<BinaryOp>(["eq", "ne", "lt", "le", "gt", "ge"]);
const LOGICAL = new Set<BinaryOp>(["and", "or", "xor"]);
const FLOAT_ARITH = new Set<BinaryOp>(["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"]);
const INT_ARITH = new Set<BinaryOp>(["add", "sub", "mul", "maximum", "minimum"]);

/** The output dtype a binary op writes in wasm for input dtype `dt`, or null if wasm does not implement it. */
function binaryOutType(op: BinaryOp, dt: DType): DType | null {
  if (COMPARE.has(op)) return "bool";
  if (dt === "bool") return LOGICAL.has(op) ? "bool" : null;
  if (dt === "int32") return INT_ARITH.has(op) ? "int32" : null;
  return FLOAT_ARITH.has(op) ? dt : null;
}

function unarySupported(op: UnaryOp, dt: DType): boolean {
  if (dt === "bool") return op === "not";
  if (dt === "int32") return op === "neg" || op === "abs" || op === "sign";
  return op !== "not";
}

/** out = op(x) in wasm; false if (op, dtype) is not implemented there. */
export function unary(c: Ctx, op: UnaryOp, x: View, out: TypedArray): boolean {
  const dt = dtypeOfTyped(x.data);
  if (dtypeOfTyped(out) !== dt || !unarySupported(op, dt)) return false;
  const n = sizeOf(x.shape);
  assertOutSize(op, out, n);
  if (n === 0) return true;
  return withScope(c, (s) => {
    const X = stageIn(c, s, x);
    const O = stageOut(c, s, out, n);
    const g = coalesce(x.shape, [X.strides, contiguousStrides(x.shape)]);
    if (g === null) return false;
    const es = x.data.BYTES_PER_ELEMENT;
    writeArgs(c, g.shape, g.strides, [es, es]);
    c.k.unary(KIND[dt], UNARY_CODE.get(op)!, g.shape.length, c.args, X.ptr, O.ptr);
    O.finish();
    return true;
  });
}

/** out = op(a, b) in wasm; false if (op, dtype) is not implemented there. */
export function binary(c: Ctx, op: BinaryOp, a: View, b: View, out: TypedArray): boolean {
  const dt = dtypeOfTyped(a.data);
  if (dtypeOfTyped(b.data) !== dt || binaryOutType(op, dt) !== dtypeOfTyped(out)) return false;
  assertSameShape(op, a.shape, b.shape);
  const n = sizeOf(a.shape);
  assertOutSize(op, out, n);
  if (n === 0) return true;
  return withScope(c, (s) => {
    const A = stageIn(c, s, a);
    const B = stageIn(c, s, b);
    const O = stageOut(c, s, out, n);
    const g = coalesce(a.shape, [A.strides, B.strides, contiguousStrides(a.shape)]);
    if (g === null) return false;
    const es = a.data.BYTES_PER_ELEMENT;
    writeArgs(c, g.shape, g.strides, [es, es, out.BYTES_PER_ELEMENT]);
    c.k.binary(KIND[dt], BINARY_CODE.get(op)!, g.shape.length, c.args, A.ptr, B.ptr, O.ptr);
    O.finish();
    return true;
  });
}

/** out = cond ? a : b in wasm; false unless a, b and out share a dtype and cond is bool. */
export function where(c: Ctx, cond: View, a: View, b: View, out: TypedArray): boolean {
  const dt = dtypeOfTyped(out);
  if (dtypeOfTyped(a.data) !== dt || dtypeOfTyped(b.data) !== dt || !(cond.data instanceof Uint8Array)) {
    return false;
  }
  assertSameShape("where", cond.shape, a.shape);
  assertSameShape("where", cond.shape, b.shape);
  const n = sizeOf(cond.shape);
  assertOutSize("where", out, n);
  if (n === 0) return true;
  return withScope(c, (s) => {
    const C = stageIn(c, s, cond);
    const A = stageIn(c, s, a);
    const B = stageIn(c, s, b);
    const O = stageOut(c, s, out, n);
    const g = coalesce(a.shape, [C.strides, A.strides, B.strides, contiguousStrides(a.shape)]);
    if (g === null) return false;
    const es = out.BYTES_PER_ELEMENT;
    writeArgs(c, g.shape, g.strides, [1, es, es, es]);
    c.k.where(es, g.shape.length, c.args, C.ptr, A.ptr, B.ptr, O.ptr);
    O.finish();
    return true;
  });
}

/** out = cast(x) to out's dtype, in wasm (every pair of dtypes). */
export function cast(c: Ctx, x: View, out: TypedArray): boolean {
  const n = sizeOf(x.shape);
  assertOutSize("cast", out, n);
  if (n === 0) return true;
  return withScope(c, (s) => {
    const X = stageIn(c, s, x);
    const O = stageOut(c, s, out, n);
    const g = coalesce(x.shape, [X.strides, contiguousStrides(x.shape)]);
    if (g === null) return false;
    writeArgs(c, g.shape, g.strides, [x.data.BYTES_PER_ELEMENT, out.BYTES_PER_ELEMENT]);
    c.k.cast(KIND[dtypeOfTyped(x.data)], KIND[dtypeOfTyped(out)], g.shape.length, c.args, X.ptr, O.ptr);
    O.finish();
    return true;
  });
}

/**
 * Strided copy: a plain memcpy (TypedArray.set) when both views are contiguous; else in wasm through the
 * arena when the destination's span is compact (it is copied in first, so the elements between its strides
 * survive) and the dtypes agree; false otherwise (the js copy runs).
 */
export function copy(c: Ctx, src: View, dst: View): boolean {
  assertSameShape("copy", src.shape, dst.shape);
  const n = sizeOf(src.shape);
  if (n === 0) return true;
  if (dtypeOfTyped(src.data) !== dtypeOfTyped(dst.data)) return false;
  const dstContiguous = isContiguous(dst.shape, dst.strides);
  if (dstContiguous && isContiguous(src.shape, src.strides)) {
    dst.data.set(src.data.subarray(src.offset, src.offset + n), dst.offset);
    return true;
  }
  const [lo, hi] = span(dst);
  const len = hi - lo + 1;
  if (len > 2 * n + 4096) return false;
  const es = src.data.BYTES_PER_ELEMENT;
  return withScope(c, (s) => {
    const S = stageIn(c, s, src);
    // a private copy of the destination span (never shared with the source's, which may overlap it)
    const p = dstContiguous ? s.alloc(len * es) : s.copyIn(dst.data, lo, len, false);
    copyRaw(c, es, src.shape, S, { ptr: p + (dst.offset - lo) * es, strides: dst.strides });
    dst.data.set(viewAt(c.heap.buffer, dtypeOfTyped(dst.data), p, len), lo);
    return true;
  });
}
