/**
 * The native backend object: implements the Backend interface by marshalling each call to the N-API addon.
 *
 * Per-call cost is what matters for small tensors, so the path allocates nothing: views' offsets, shapes and
 * strides are written into one module-level Float64Array (the meta buffer the addon reads), the typed arrays
 * are passed as they are (the kernels work on them in place), and op names map to codes through tables built
 * once at load from what the addon reports of native/src/kernels.def (`describe`): op codes, and which kernel
 * family and `kind` serves each Backend method. A method or op code the addon does not declare is left out, and
 * the registry (../complete.ts) runs the js kernel for it. The meta layout of each family is written in
 * kernels.def; test/backend/kernels-def.test.ts checks this file's packing against it. Allocation is plain
 * typed arrays (garbage-collected, like the js backend); large outputs that the kernel overwrites entirely skip the zero fill (Buffer.allocUnsafeSlow), which with the addon's malloc
 * settings makes them reused heap memory: no zeroing pass and no page faults.
 */
import {
  allocTyped,
  bytesPerElement,
  type DType,
  dtypeOfTyped,
  type TypedArray,
  typedOver,
} from "../../dtype.ts";
import {
  ACTIVATIONS,
  type Activation,
  BINARY_OPS,
  type Backend,
  type BackendImpl,
  type BinaryOp,
  type Conv2dParams,
  type ConvEpilogue,
  type FusedInstr,
  type FusedProgram,
  KERNELS,
  type KernelName,
  type LayerNormAffineKernel,
  type Pool2dParams,
  REDUCE_OPS,
  type ReduceOp,
  UNARY_OPS,
  type UnaryOp,
  type View,
} from "../backend.ts";
import { completeBackend } from "../complete.ts";
import {
  checkFusedArgs,
  FUSED_BINARY,
  FUSED_REDUCE,
  FUSED_STORE,
  FUSED_UNARY,
  dotFusedByOps,
  fusedByOps,
  fusedProgram,
  fusedShape,
  reducedShape,
} from "../fused.ts";
import { registerHalfKernels } from "../half.ts";
import { fusedChecked as jsFused } from "../js/fused.ts";
import { contiguousStrides } from "../../shape.ts";
import type { NativeAddon, NativeDescription } from "./addon.ts";
import { createNativeHalfKernels } from "./half.ts";

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

/** The most inputs and instructions of a program the native fused kernel runs (kMaxListViews, kMaxInstr). */
const FUSED_MAX_INPUTS = 64;
const FUSED_MAX_INSTRS = 4096;

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

/** Largest output (elements) of a fused program of exact ops run in JavaScript rather than by the addon. */
const SMALL_FUSED = 64;
const EXACT_UNARY = new Set<string>(["neg", "abs", "sqrt", "floor", "ceil"]);
const EXACT_BINARY = new Set<string>(["add", "sub", "mul", "div"]);

function isExactInstr(i: FusedInstr): boolean {
  if (i.kind === "unary") return EXACT_UNARY.has(i.op);
  if (i.kind === "binary") return EXACT_BINARY.has(i.op);
  return true;
}

/**
 * True if `prog`'s flat form and consts are those its instructions build (fusedProgram's): the JavaScript kernel
 * runs the instructions, the addon the flat form, which it checks; a program whose two forms disagree goes to
 * the addon, whatever its size, so that it is rejected there.
 */
function selfConsistent(prog: FusedProgram): boolean {
  let built: FusedProgram;
  try {
    built = fusedProgram(prog.dtype, prog.instrs, Array.from(prog.outputs));
  } catch {
    return false;
  }
  const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => Object.is(v, b[i]));
  return built.numInputs === prog.numInputs && same(built.code, prog.code) && same(built.consts, prog.consts);
}

/** Per addon, the backend's record of its flush-denormal mode (set by index.ts setFlushDenormal). */
const flushDenormalSetters = new WeakMap<NativeAddon, (on: boolean) => void>();

/** Tell the backends over `addon` that its flush-denormal mode is now `on`. */
export function flushDenormalChanged(addon: NativeAddon, on: boolean): void {
  flushDenormalSetters.get(addon)?.(on);
}

/**
 * Build the Backend over a loaded addon. The meta buffer holds the largest call: `fused` with 66 views of rank
 * 32 (the program's code and consts, 64 inputs) and the output's shape, 66 * (3 + 64) + 36 numbers.
 */
export function createNativeBackend(addon: NativeAddon): Backend {
  const meta = new Float64Array(4608);
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
  const LSTM = kind("lstmCell");
  const LSTM_BACKWARD = kind("lstmCellBackward");
  const GRU = kind("gruCell");
  const GRU_BACKWARD = kind("gruCellBackward");

  // Each method writes its family's call as kernels.def's `meta` layout gives it: the numbers first, then one
  // view (put) or output dtype code (output) per typed array, written as the array is passed (JavaScript
  // evaluates arguments in order). The arrays passed are those put / output return: reading `v.data` again
  // could give another array (a getter) than the one whose type the code describes.
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
  const opt = (v: View | null | undefined) => (v == null ? null : put(v));
  /** put() of a whole 1-d array (a fused program's code or constants): no view object built per call. */
  function putFlat(data: TypedArray): TypedArray {
    meta[p++] = code(data);
    meta[p++] = 0;
    meta[p++] = 1;
    meta[p++] = data.length;
    meta[p++] = 1;
    return data;
  }
  /** A recurrent cell: the output's shape (the first operand's with last dim `width`), the output, the operands. */
  function cell(k: number, width: number, out: TypedArray, ...vs: View[]): void {
    p = 0;
    const x = vs[0];
    const nd = x.shape.length;
    meta[p++] = nd;
    list(x.shape, nd - 1);
    if (nd > 0) meta[p++] = width;
    const o = output(out);
    meta[p++] = vs.length;
    if (vs.length === 2) addon.rnnCell(k, o, put(vs[0]), put(vs[1]));
    else if (vs.length === 3) addon.rnnCell(k, o, put(vs[0]), put(vs[1]), put(vs[2]));
    else addon.rnnCell(k, o, put(vs[0]), put(vs[1]), put(vs[2]), put(vs[3]));
  }
  function output(a: TypedArray): TypedArray {
    meta[p++] = code(a);
    return a;
  }
  /** Write the numbers of `s` (its first n). */
  function list(s: readonly number[], n = s.length): void {
    for (let i = 0; i < n; i++) meta[p++] = s[i];
  }
  function pool(c: Pool2dParams, s?: readonly number[]): void {
    p = 0;
    if (s) list(s, 4);
    list(c.kernel, 2);
    list(c.stride, 2);
    list(c.padding, 2);
  }
  function conv(
    kind: number,
    a: View,
    b: View,
    out: TypedArray,
    s: readonly number[],
    c: Conv2dParams,
    ep?: ConvEpilogue,
  ) {
    p = 0;
    list(s, 4);
    list(c.stride, 2);
    list(c.padding, 2);
    list(c.dilation, 2);
    meta[p++] = c.groups;
    meta[p++] = ep?.act ? actCode[ep.act] : -1;
    addon.conv2d(kind, put(a), put(b), opt(ep?.bias), output(out));
  }

  const all: Backend = {
    name: "native",
    alloc(dtype, size, uninitialized) {
      const a = allocNative(dtype, size, uninitialized);
      // fresh heap for a large tensor: huge pages before its first touch (see adviseHeap in addon.cc)
      if (size >= HUGE_PAGE / 8 && adviseHeap && a.byteLength >= HUGE_PAGE) addon.adviseHeap();
      return a;
    },
    unary(op, x, out) {
      p = 0;
      addon.unary(unaryCode[op], put(x), output(out));
    },
    binary(op, a, b, out) {
      p = 0;
      addon.binary(binaryCode[op], put(a), put(b), output(out));
    },
    where(cond, a, b, out) {
      p = 0;
      addon.where(put(cond), put(a), put(b), output(out));
    },
    cast(x, out) {
      p = 0;
      addon.cast(put(x), output(out));
    },
    copy(src, dst) {
      p = 0;
      addon.copy(put(src), put(dst));
    },
    reduce(op, x, axes, out) {
      p = 0;
      meta[p++] = axes.length;
      list(axes);
      addon.reduce(reduceCode[op], put(x), output(out));
    },
    argReduce(op, x, axis, out) {
      p = 0;
      meta[p++] = axis;
      addon.argReduce(op === "argmin" ? 1 : 0, put(x), output(out));
    },
    cumsum(x, axis, reverse, out) {
      p = 0;
      meta[p++] = axis;
      meta[p++] = reverse ? 1 : 0;
      addon.cumsum(put(x), output(out));
    },
    dot(a, b, out) {
      p = 0;
      addon.dot(put(a), put(b), output(out));
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
      pool(params, outShape);
      addon.pool2d(POOL_MAX, put(x), output(out));
    },
    maxPool2dArgmax(x, out, outShape, params) {
      pool(params, outShape);
      addon.pool2d(POOL_MAX_ARGMAX, put(x), output(out));
    },
    maxPool2dBackward(x, dy, out, outShape, params) {
      // out is x's shape by contract; the addon checks dy against x's pooled shape and out's length against x
      if (outShape.length !== 4 || outShape.some((v, i) => v !== x.shape[i])) {
        throw new RangeError(
          `native maxPool2dBackward: output [${outShape.join(", ")}] is not the input's shape [${x.shape.join(", ")}]`,
        );
      }
      pool(params);
      addon.maxPool2dBackward(put(x), put(dy), output(out));
    },
    avgPool2d(x, out, outShape, params) {
      pool(params, outShape);
      addon.pool2d(POOL_AVG, put(x), output(out));
    },
    avgPool2dBackward(dy, out, outShape, params) {
      pool(params, outShape);
      addon.pool2d(POOL_AVG_BACKWARD, put(dy), output(out));
    },
    gather(x, axis, idx, out) {
      p = 0;
      meta[p++] = axis;
      addon.gather(put(x), put(idx), output(out));
    },
    scatterAdd(src, axis, idx, out, outShape) {
      p = 0;
      meta[p++] = axis;
      meta[p++] = outShape.length;
      list(outShape);
      addon.scatterAdd(put(src), put(idx), output(out));
    },
    adamUpdate(param, g, m, v, vmax, h) {
      p = 0;
      list([
        h.lr,
        h.beta1,
        h.beta2,
        h.eps,
        h.weightDecay,
        h.decoupled ? 1 : 0,
        h.maximize ? 1 : 0,
        h.bc1,
        h.bc2Sqrt,
      ]);
      addon.adamUpdate(output(param), put(g), output(m), output(v), vmax && output(vmax));
    },
    biasAct(act, x, b, out) {
      p = 0;
      meta[p++] = actCode[act];
      addon.activation(BIAS_ACT, put(x), opt(b), output(out));
    },
    actGrad(act, y, ct, out) {
      p = 0;
      meta[p++] = actCode[act];
      addon.activation(ACT_GRAD, put(y), put(ct), output(out));
    },
    softmax(x, axis, log, out) {
      p = 0;
      meta[p++] = axis;
      addon.softmax(log ? 1 : 0, put(x), output(out));
    },
    softmaxBackward(y, ct, axis, log, out) {
      p = 0;
      meta[p++] = axis;
      addon.softmaxBackward(log ? 1 : 0, put(y), put(ct), output(out));
    },
    layerNorm(x, eps, out) {
      p = 0;
      meta[p++] = eps;
      addon.layerNorm(0, put(x), opt(null), output(out));
    },
    layerNormBackward(x, g, eps, out) {
      p = 0;
      meta[p++] = eps;
      addon.layerNorm(1, put(x), opt(g), output(out));
    },
    attention(q, k, v, mask, causal, scale, out) {
      p = 0;
      meta[p++] = scale;
      const nd = q.shape.length;
      meta[p++] = nd;
      list(q.shape, nd - 1);
      meta[p++] = nd >= 2 ? v.shape[nd - 1] + 1 : 0;
      addon.attention(causal ? 1 : 0, put(q), put(k), put(v), opt(mask), output(out));
    },
    lstmCell(gates, c, out) {
      cell(LSTM, 2 * c.shape[c.shape.length - 1], out, gates, c);
    },
    lstmCellBackward(gates, c, ct, out) {
      cell(LSTM_BACKWARD, 5 * c.shape[c.shape.length - 1], out, gates, c, ct);
    },
    gruCell(xp, hp, h, out) {
      cell(GRU, h.shape[h.shape.length - 1], out, xp, hp, h);
    },
    gruCellBackward(xp, hp, h, ct, out) {
      cell(GRU_BACKWARD, 7 * h.shape[h.shape.length - 1], out, xp, hp, h, ct);
    },
    attentionBackward(q, k, v, mask, o, dout, causal, scale, out) {
      p = 0;
      meta[p++] = scale;
      const nd = q.shape.length;
      meta[p++] = nd;
      list(q.shape, nd - 2);
      // the output's shape: [...B, 1, L E + S E + S Ev] (rank nd, so the kernel checks it against the views)
      const [l, e] = [q.shape[nd - 2], q.shape[nd - 1]];
      const [s, ev] = [k.shape[nd - 2], v.shape[nd - 1]];
      meta[p++] = 1;
      meta[p++] = l * e + s * e + s * ev;
      const a = output(out);
      if (mask === null) {
        meta[p++] = 5;
        addon.attentionBackward(causal ? 1 : 0, a, put(q), put(k), put(v), put(o), put(dout));
      } else {
        meta[p++] = 6;
        addon.attentionBackward(causal ? 1 : 0, a, put(q), put(k), put(v), put(mask), put(o), put(dout));
      }
    },
  };
  // jit's fused programs (Backend.fused, declared only when the addon has the kernel). The meta layout:
  // the output's shape, then code (ending in one store per output) and consts as 1-d views, the first
  // output, the number of views and each input, then the other outputs (kernels/fused.cc).
  // Programs beyond the kernel's limits (never made by jit's fusion pass) or with an op the addon does not
  // declare run op by op.
  const fusedFn = kinds.has("fused") ? addon.fused : undefined;
  // The argument list of a fused / dotFused call, one array per length, reused: filled per call and emptied
  // after it (truncating and regrowing one array went through V8's runtime each call: a tenth of a one-element
  // program's call).
  const argLists: TypedArray[][] = [];
  const NO_ARG = new Float32Array(0);
  let nargs = 0;
  let argv: TypedArray[] = [];
  const beginArgs = (n: number) => {
    argv = argLists[n] ??= new Array<TypedArray>(n).fill(NO_ARG);
    nargs = 0;
  };
  const arg = (a: TypedArray) => {
    argv[nargs++] = a;
  };
  const endArgs = () => {
    // hold no tensor storage between calls
    for (let i = 0; i < nargs; i++) argv[i] = NO_ARG;
  };
  // A program's code with the addon's op codes (FusedProgram.code holds positions in UNARY_OPS / BINARY_OPS)
  // and its stores ([4, 0, register, j] per output j), once per program; null when it uses an op the addon
  // does not declare.
  const nativeCode = new WeakMap<FusedProgram, Int32Array | null>();
  // Small programs of correctly rounded ops run in JavaScript (js/fused.ts): the same bits as the kernel (each
  // op's exact result rounded once to the dtype, in both; a float32 op computed in double and then rounded is
  // the float32 op), without the N-API call and the output's externalisation, which cost more than the work
  // (a scalar x * y + z: 1.45 us through the addon). Not while flush-denormal mode is on, which only the
  // addon's kernels honour.
  let flushDenormal = typeof addon.flushDenormal === "function" ? addon.flushDenormal() : false;
  flushDenormalSetters.set(addon, (on) => {
    flushDenormal = on;
  });
  const exactMemo = new WeakMap<FusedProgram, boolean>();
  const exactOnly = (prog: FusedProgram): boolean => {
    let r = exactMemo.get(prog);
    if (r === undefined) {
      r = prog.reduce === undefined && prog.instrs.every(isExactInstr) && selfConsistent(prog);
      exactMemo.set(prog, r);
    }
    return r;
  };
  const translate = (prog: FusedProgram): Int32Array | null => {
    let c = nativeCode.get(prog);
    if (c === undefined) {
      const code = prog.code;
      const red = prog.reduce;
      c = new Int32Array(code.length + 4 * prog.outputs.length + (red === undefined ? 0 : 4));
      c.set(code);
      for (let j = 0; j < prog.outputs.length; j++)
        c.set([FUSED_STORE, 0, prog.outputs[j], j], code.length + 4 * j);
      if (red !== undefined) {
        // the reduction terminal [5, op, register, mask of the reduced axes] (ranks up to 30)
        let mask = 0;
        for (const a of red.axes) mask = a < 30 ? mask | (1 << a) : -1;
        const op = reduceCode[red.op];
        if (mask < 0 || op === undefined || op < 0) c = null;
        else c.set([FUSED_REDUCE, op, red.reg, mask], c.length - 4);
      }
      if (c === null) {
        nativeCode.set(prog, null);
        return null;
      }
      for (let i = 0; i < code.length; i += 4) {
        if (c[i] === FUSED_UNARY) c[i + 1] = unaryCode[UNARY_OPS[c[i + 1]]] ?? -1;
        else if (c[i] === FUSED_BINARY) c[i + 1] = binaryCode[BINARY_OPS[c[i + 1]]] ?? -1;
        if ((c[i] === FUSED_UNARY || c[i] === FUSED_BINARY) && c[i + 1] < 0) c = null;
        if (c === null) break;
      }
      nativeCode.set(prog, c);
    }
    return c;
  };
  const fused: Pick<Backend, "fused" | "fusedReduce"> =
    fusedFn === undefined
      ? {}
      : {
          fusedReduce: true,
          fused(prog, inputs, outs) {
            checkFusedArgs(prog, inputs, outs);
            if (outs[0].length <= SMALL_FUSED && !flushDenormal && exactOnly(prog)) {
              jsFused(prog, inputs, outs);
              return;
            }
            const code = translate(prog);
            if (
              code === null ||
              inputs.length + outs.length - 1 > FUSED_MAX_INPUTS ||
              prog.instrs.length + outs.length > FUSED_MAX_INSTRS
            ) {
              fusedByOps(backend, prog, inputs, outs);
              return;
            }
            const shape = fusedShape(inputs, outs);
            // a reducing program: `shape` and `out` are the reduced output's, every stored output a view
            const red = prog.reduce !== undefined;
            const first = red ? outs.length - 1 : 0;
            const oshape = red ? reducedShape(shape, prog.reduce!.axes) : shape;
            p = 0;
            meta[p++] = oshape.length;
            list(oshape);
            beginArgs(2 + inputs.length + outs.length);
            arg(putFlat(code));
            arg(putFlat(prog.consts));
            arg(output(outs[first]));
            meta[p++] = inputs.length + outs.length - 1;
            for (const v of inputs) arg(put(v));
            if (outs.length > 1) {
              const strides = contiguousStrides(shape);
              for (let j = 0; j < outs.length; j++)
                if (j !== first) arg(put({ data: outs[j], shape, strides, offset: 0 }));
            }
            try {
              fusedFn.apply(addon, argv as [Int32Array, Float64Array, TypedArray, ...TypedArray[]]);
            } finally {
              endArgs();
            }
          },
        };
  // jit's GEMM epilogues (Backend.dotFused): a, b, the program's code and consts, the output (holding the
  // product while the epilogue runs over it), then the list: the program's other inputs and the other outputs.
  const dotFusedFn = kinds.has("dotFused") && fusedFn !== undefined ? addon.dotFused : undefined;
  const dotFused: Pick<Backend, "dotFused"> =
    dotFusedFn === undefined
      ? {}
      : {
          dotFused(prog, a, b, inputs, outs) {
            const nd = a.shape.length;
            const shape = [...a.shape.slice(0, nd - 1), b.shape[nd - 1]];
            const code = prog.reduce === undefined ? translate(prog) : null;
            if (
              code === null ||
              nd < 2 ||
              b.shape.length !== nd ||
              inputs.length + outs.length > FUSED_MAX_INPUTS ||
              prog.instrs.length + outs.length > FUSED_MAX_INSTRS ||
              !(a.data instanceof Float32Array || a.data instanceof Float64Array)
            ) {
              dotFusedByOps(backend, prog, a, b, inputs, outs);
              return;
            }
            // (the kernel checks the views' shapes and dtypes against the product; no array built per call here)
            if (outs.length !== prog.outputs.length || inputs.length !== prog.numInputs - 1) {
              throw new TypeError(
                `dotFused: the program reads ${prog.numInputs - 1} inputs besides the product and writes ${prog.outputs.length} outputs, got ${inputs.length} and ${outs.length}`,
              );
            }
            const strides = contiguousStrides(shape);
            p = 0;
            beginArgs(4 + inputs.length + outs.length);
            arg(put(a));
            arg(put(b));
            arg(putFlat(code));
            arg(putFlat(prog.consts));
            arg(output(outs[0]));
            meta[p++] = inputs.length + outs.length - 1;
            for (const v of inputs) arg(put(v));
            for (let j = 1; j < outs.length; j++) arg(put({ data: outs[j], shape, strides, offset: 0 }));
            try {
              dotFusedFn.apply(addon, argv as [TypedArray, TypedArray, Int32Array, Float64Array, TypedArray]);
            } finally {
              endArgs();
            }
          },
        };
  // LayerNorm's affine kernels (optional in the Backend contract): w and b go to the kernel as one contiguous
  // [2, N] array ([N] for the scaled backward), copied per call (2N numbers).
  const lnAffineFn = kinds.has("layerNormAffine") ? addon.layerNormAffine : undefined;
  const vecData = (x: View, vs: View[]): TypedArray => {
    const n = x.shape[x.shape.length - 1];
    const d = allocTyped(dtypeOfTyped(x.data), vs.length * n);
    vs.forEach((v, k) => {
      for (let i = 0; i < n; i++) d[k * n + i] = v.data[v.offset + i * v.strides[0]] as number;
    });
    return d;
  };
  const lnAffine: Pick<Backend, LayerNormAffineKernel> =
    lnAffineFn === undefined
      ? {}
      : {
          layerNormAffine(x, w, b, eps, out) {
            const n = x.shape[x.shape.length - 1];
            const wb = vecData(x, [w, b]);
            p = 0;
            meta[p++] = eps;
            meta[p++] = x.shape.length;
            list(x.shape);
            lnAffineFn.call(
              addon,
              0,
              put(x),
              put({ data: wb, shape: [2, n], strides: [n, 1], offset: 0 }),
              opt(null),
              output(out),
            );
          },
          layerNormScaledBackward(x, w, g, eps, out) {
            const n = x.shape[x.shape.length - 1];
            const wv: View =
              w.strides[0] === 1 || n <= 1
                ? { ...w, strides: [1] }
                : { data: vecData(x, [w]), shape: [n], strides: [1], offset: 0 };
            p = 0;
            meta[p++] = eps;
            meta[p++] = x.shape.length;
            list(x.shape);
            lnAffineFn.call(addon, 1, put(x), put(wv), put(g), output(out));
          },
          layerNormAffineGrads(x, g, eps, out) {
            p = 0;
            meta[p++] = eps;
            meta[p++] = 2;
            meta[p++] = 2;
            meta[p++] = x.shape[x.shape.length - 1];
            lnAffineFn.call(addon, 2, put(x), opt(null), put(g), output(out));
          },
        };
  // Offer only what the addon declares; the registry fills the rest with js kernels. Built by one spread (a
  // literal's fast properties): adding the 24 methods by keyed stores would leave the object in dictionary
  // mode, a hash lookup on every getBackend().<kernel> (measured: +30-60 ns per eager op).
  const impl: BackendImpl = {
    ...all,
    ...fused,
    ...dotFused,
    ...lnAffine,
    unaryOps: implemented(UNARY_OPS, d.unary),
    binaryOps: implemented(BINARY_OPS, d.binary),
    reduceOps: implemented(REDUCE_OPS, d.reduce),
  };
  // (only a stale or partial addon gets here; the object may then leave fast mode)
  for (const m of KERNELS) if (!kinds.has(m)) delete impl[m];
  const backend = completeBackend(impl);
  // float16 / bfloat16 casts and the bfloat16 GEMM, beside the Backend contract (see ../half.ts)
  const half = createNativeHalfKernels(addon, meta);
  if (half !== undefined) registerHalfKernels(backend.name, half);
  return backend;
}
