/**
 * The native backend object: implements the Backend interface by marshalling each call to the N-API addon.
 *
 * Per-call cost is what matters for small tensors, so the path allocates nothing: views' offsets, shapes and
 * strides are written into one module-level Float64Array (the meta buffer the addon reads), the typed arrays
 * are passed as they are (the kernels work on them in place), and op names map to codes through tables built
 * once at load from what the addon reports of native/src/kernels.def (`describe`): op codes, and which kernel
 * family and `kind` serves each Backend method. A method or op code the addon does not declare is left out, and
 * the registry (../complete.ts) runs the js kernel for it. The meta layout of each family is written in
 * kernels.def; test/backend/kernels-def.test.ts checks this file's packing against it. Allocation is plain typed arrays (garbage-collected, like the js backend); large outputs that the
 * kernel overwrites entirely skip the zero fill (Buffer.allocUnsafeSlow), which with the addon's malloc
 * settings makes them reused heap memory: no zeroing pass and no page faults.
 */
import { allocTyped, bytesPerElement, type DType, type TypedArray, typedOver } from "../../dtype.ts";
import {
  ACTIVATIONS,
  type Activation,
  BINARY_OPS,
  type Backend,
  type BackendImpl,
  type BinaryOp,
  type Conv2dParams,
  type ConvEpilogue,
  KERNELS,
  type KernelName,
  type Pool2dParams,
  REDUCE_OPS,
  type ReduceOp,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "../backend.ts";
import { completeBackend } from "../complete.ts";
import type { NativeAddon, NativeDescription } from "./addon.ts";

/** Below this many bytes, zero-filled typed arrays are as cheap as uninitialised ones. */
const UNINIT_MIN_BYTES = 16384;

function allocNative(dtype: DType, size: number, uninitialized = false): TypedArray {
  const bytes = size * bytesPerElement(dtype);
  if (!uninitialized || bytes < UNINIT_MIN_BYTES) return allocTyped(dtype, size);
  return typedOver(dtype, Buffer.allocUnsafeSlow(bytes).buffer, size);
}

/** Allocations of at least this many bytes ask the addon for huge pages on the heap they came from. */
const HUGE_PAGE = 2 << 20;

/** The largest rank a native kernel accepts (kMaxDims in common.h). */
export const MAX_RANK = 32;

/**
 * The getter of %TypedArray%.prototype[Symbol.toStringTag]: a typed array's internal type name, which (unlike
 * instanceof, constructor or BYTES_PER_ELEMENT) a changed prototype cannot fake; undefined for anything else.
 */
const typedArrayName = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Int8Array.prototype),
  Symbol.toStringTag,
)?.get;

/**
 * dtype code of a typed array (enum DType in common.h). Anything that is not one of the three wider types
 * reads as bool (bytes), so a code never claims more bytes per element than the array has: the addon reads
 * and writes `length` elements of the coded width, so a Uint8Array passed off as a Float64Array (by
 * Object.setPrototypeOf) must not get code 1.
 */
function code(a: TypedArray): number {
  const name: unknown = typedArrayName?.call(a);
  return name === "Float32Array" ? 0 : name === "Float64Array" ? 1 : name === "Int32Array" ? 2 : 3;
}

/** Op name -> code (its position in the addon's list) for the ops of `all` the addon declares. */
function codes<Op extends string>(all: readonly Op[], declared: readonly string[]): Record<Op, number> {
  const t = {} as Record<Op, number>;
  for (const op of all) t[op] = declared.indexOf(op);
  return t;
}

/** The ops of `all` that the addon declares, for BackendImpl's op lists. */
function implemented<Op extends string>(all: readonly Op[], declared: readonly string[]): Op[] {
  return all.filter((op) => declared.includes(op));
}

/**
 * Backend method -> the `kind` its family takes (its position in the family's `serves`), for the methods the
 * addon serves with an exported function.
 */
function kindsOf(addon: NativeAddon, d: NativeDescription): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const f of d.families) {
    if (typeof Reflect.get(addon, f.name) !== "function") continue;
    const methods = f.serves.split(" ");
    for (let i = 0; i < methods.length; i++) kinds.set(methods[i], i);
  }
  return kinds;
}

/**
 * Build the Backend over a loaded addon. The meta buffer holds at most four views of rank 32 plus
 * parameters: 4 * (2 + 64) + 48 numbers.
 */
export function createNativeBackend(addon: NativeAddon): Backend {
  const meta = new Float64Array(512);
  addon.init(meta);
  const adviseHeap = typeof addon.adviseHeap === "function";
  let p = 0;
  const d = addon.describe();
  const unaryCode = codes<UnaryOp>(UNARY_OPS, d.unary);
  const binaryCode = codes<BinaryOp>(BINARY_OPS, d.binary);
  const reduceCode = codes<ReduceOp>(REDUCE_OPS, d.reduce);
  const actCode = codes<Activation>(ACTIVATIONS, d.activation);
  const kinds = kindsOf(addon, d);
  const kind = (m: KernelName) => kinds.get(m) ?? -1;
  const CONV_FORWARD = kind("conv2d");
  const CONV_BACK_INPUT = kind("conv2dBackInput");
  const CONV_BACK_WEIGHT = kind("conv2dBackWeight");
  const POOL_MAX = kind("maxPool2d");
  const POOL_MAX_ARGMAX = kind("maxPool2dArgmax");
  const POOL_AVG = kind("avgPool2d");
  const POOL_AVG_BACKWARD = kind("avgPool2dBackward");
  const BIAS_ACT = kind("biasAct");
  const ACT_GRAD = kind("actGrad");

  // Meta layout (read in this order by native/src/addon.cc): each view as dtype code, offset, rank, shape,
  // strides; then the op's numbers; the output's dtype code last.
  // Returns the array it coded, which the caller must pass to the addon: reading `v.data` again could give
  // another array (a getter) than the one whose type the code describes.
  function put(v: View): TypedArray {
    const nd = v.shape.length;
    if (nd > MAX_RANK) {
      throw new RangeError(`native backend: rank ${nd} exceeds the supported maximum of ${MAX_RANK}`);
    }
    const data = v.data;
    meta[p++] = code(data);
    meta[p++] = v.offset;
    meta[p++] = nd;
    for (let i = 0; i < nd; i++) meta[p++] = v.shape[i];
    for (let i = 0; i < nd; i++) meta[p++] = v.strides[i];
    return data;
  }

  function putShape(s: readonly number[]): void {
    for (let i = 0; i < s.length; i++) meta[p++] = s[i];
  }

  function putConv(c: Conv2dParams): void {
    meta[p++] = c.stride[0];
    meta[p++] = c.stride[1];
    meta[p++] = c.padding[0];
    meta[p++] = c.padding[1];
    meta[p++] = c.dilation[0];
    meta[p++] = c.dilation[1];
    meta[p++] = c.groups;
  }

  function putPool(c: Pool2dParams): void {
    meta[p++] = c.kernel[0];
    meta[p++] = c.kernel[1];
    meta[p++] = c.stride[0];
    meta[p++] = c.stride[1];
    meta[p++] = c.padding[0];
    meta[p++] = c.padding[1];
  }

  function conv(
    kind: number,
    a: View,
    b: View,
    out: Parameters<Backend["conv2d"]>[2],
    s: readonly number[],
    c: Conv2dParams,
    ep?: ConvEpilogue,
  ): void {
    p = 0;
    const aD = put(a);
    const bD = put(b);
    putShape(s);
    putConv(c);
    const bias = ep?.bias ?? null;
    const biasD = bias === null ? null : put(bias);
    meta[p++] = ep?.act ? actCode[ep.act] : -1;
    meta[p++] = code(out);
    addon.conv2d(kind, aD, bD, out, biasD);
  }

  function pool(
    kind: number,
    x: View,
    out: Parameters<Backend["maxPool2d"]>[1],
    s: readonly number[],
    c: Pool2dParams,
  ): void {
    p = 0;
    const xD = put(x);
    putShape(s);
    putPool(c);
    meta[p++] = code(out);
    addon.pool2d(kind, xD, out);
  }

  const all: Backend = {
    name: "native",
    alloc(dtype, size, uninitialized) {
      const a = allocNative(dtype, size, uninitialized);
      // fresh heap for a large tensor: huge pages before its first touch (see adviseHeap in addon.cc)
      if (a.byteLength >= HUGE_PAGE && adviseHeap) addon.adviseHeap();
      return a;
    },
    unary(op, x, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = code(out);
      addon.unary(unaryCode[op], xD, out);
    },
    binary(op, a, b, out) {
      p = 0;
      const aD = put(a);
      const bD = put(b);
      meta[p++] = code(out);
      addon.binary(binaryCode[op], aD, bD, out);
    },
    where(cond, a, b, out) {
      p = 0;
      const condD = put(cond);
      const aD = put(a);
      const bD = put(b);
      meta[p++] = code(out);
      addon.where(condD, aD, bD, out);
    },
    cast(x, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = code(out);
      addon.cast(xD, out);
    },
    copy(src, dst) {
      p = 0;
      const srcD = put(src);
      const dstD = put(dst);
      addon.copy(srcD, dstD);
    },
    reduce(op, x, axes, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = axes.length;
      for (let i = 0; i < axes.length; i++) meta[p++] = axes[i];
      meta[p++] = code(out);
      addon.reduce(reduceCode[op], xD, out);
    },
    argReduce(op, x, axis, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = axis;
      meta[p++] = code(out);
      addon.argReduce(op === "argmin" ? 1 : 0, xD, out);
    },
    cumsum(x, axis, reverse, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = axis;
      meta[p++] = reverse ? 1 : 0;
      meta[p++] = code(out);
      addon.cumsum(xD, out);
    },
    dot(a, b, out) {
      p = 0;
      const aD = put(a);
      const bD = put(b);
      meta[p++] = code(out);
      addon.dot(aD, bD, out);
    },
    conv2d(x, w, out, outShape, params, epilogue) {
      conv(CONV_FORWARD, x, w, out, outShape, params, epilogue);
    },
    conv2dBackInput(dy, w, out, outShape, params) {
      conv(CONV_BACK_INPUT, dy, w, out, outShape, params);
    },
    conv2dBackWeight(x, dy, out, outShape, params) {
      conv(CONV_BACK_WEIGHT, x, dy, out, outShape, params);
    },
    maxPool2d(x, out, outShape, params) {
      pool(POOL_MAX, x, out, outShape, params);
    },
    maxPool2dArgmax(x, out, outShape, params) {
      pool(POOL_MAX_ARGMAX, x, out, outShape, params);
    },
    maxPool2dBackward(x, dy, out, outShape, params) {
      // out is x's shape by contract; the addon checks dy against x's pooled shape and out's length against x
      if (outShape.length !== 4 || outShape.some((v, i) => v !== x.shape[i])) {
        throw new RangeError(
          `native maxPool2dBackward: output [${outShape.join(", ")}] is not the input's shape [${x.shape.join(", ")}]`,
        );
      }
      p = 0;
      const xD = put(x);
      const dyD = put(dy);
      putPool(params);
      meta[p++] = code(out);
      addon.maxPool2dBackward(xD, dyD, out);
    },
    avgPool2d(x, out, outShape, params) {
      pool(POOL_AVG, x, out, outShape, params);
    },
    avgPool2dBackward(dy, out, outShape, params) {
      pool(POOL_AVG_BACKWARD, dy, out, outShape, params);
    },
    gather(x, axis, idx, out) {
      p = 0;
      const xD = put(x);
      const idxD = put(idx);
      meta[p++] = axis;
      meta[p++] = code(out);
      addon.gather(xD, idxD, out);
    },
    adamUpdate(param, g, m, v, vmax, h) {
      p = 0;
      const gD = put(g);
      meta[p++] = h.lr;
      meta[p++] = h.beta1;
      meta[p++] = h.beta2;
      meta[p++] = h.eps;
      meta[p++] = h.weightDecay;
      meta[p++] = h.decoupled ? 1 : 0;
      meta[p++] = h.maximize ? 1 : 0;
      meta[p++] = h.bc1;
      meta[p++] = h.bc2Sqrt;
      meta[p++] = code(param);
      meta[p++] = code(m);
      meta[p++] = code(v);
      if (vmax !== null) meta[p++] = code(vmax);
      addon.adamUpdate(param, gD, m, v, vmax);
    },
    biasAct(act, x, b, out) {
      p = 0;
      const xD = put(x);
      const bD = b === null ? null : put(b);
      meta[p++] = code(out);
      addon.activation(BIAS_ACT, actCode[act], xD, bD, out);
    },
    actGrad(act, y, ct, out) {
      p = 0;
      const yD = put(y);
      const ctD = put(ct);
      meta[p++] = code(out);
      addon.activation(ACT_GRAD, actCode[act], yD, ctD, out);
    },
    scatterAdd(src, axis, idx, out, outShape) {
      p = 0;
      const srcD = put(src);
      const idxD = put(idx);
      meta[p++] = axis;
      putShape(outShape);
      meta[p++] = code(out);
      addon.scatterAdd(srcD, idxD, out);
    },
    softmax(x, axis, log, out) {
      p = 0;
      const xD = put(x);
      meta[p++] = axis;
      meta[p++] = code(out);
      addon.softmax(log ? 1 : 0, xD, out);
    },
    softmaxBackward(y, ct, axis, log, out) {
      p = 0;
      const yD = put(y);
      const ctD = put(ct);
      meta[p++] = axis;
      meta[p++] = code(out);
      addon.softmaxBackward(log ? 1 : 0, yD, ctD, out);
    },
  };
  // Offer only what the addon declares; the registry fills the rest with js kernels. Built by one spread (a
  // literal's fast properties): adding the 24 methods by keyed stores would leave the object in dictionary
  // mode, a hash lookup on every getBackend().<kernel> (measured: +30-60 ns per eager op).
  const impl: BackendImpl = {
    ...all,
    unaryOps: implemented(UNARY_OPS, d.unary),
    binaryOps: implemented(BINARY_OPS, d.binary),
    reduceOps: implemented(REDUCE_OPS, d.reduce),
  };
  // (only a stale or partial addon gets here; the object may then leave fast mode)
  for (const m of KERNELS) if (!kinds.has(m)) delete impl[m];
  return completeBackend(impl);
}
