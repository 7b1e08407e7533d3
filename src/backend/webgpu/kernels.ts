/**
 * The webgpu kernels: pack a call's views into a parameter block and record one dispatch (see gpu.ts for
 * batching). A call the GPU cannot take (float64, an op code without a WGSL form, an output that is an
 * ordinary host array) runs the js kernel on the host copies instead (`onHost`), which works as long as every
 * input's host copy is valid and fails with a message naming the kernel otherwise.
 */
import {
  ACTIVATIONS,
  type Activation,
  type AdamUpdateParams,
  type BinaryOp,
  type Conv2dParams,
  type ConvEpilogue,
  type FusedProgram,
  type Pool2dParams,
  type ReduceOp,
  type UnaryOp,
  type Backend,
  type View,
} from "../backend.ts";
import { DeviceReadError, deviceReadMessage } from "../device.ts";
import { checkFusedArgs, fusedByOps, fusedShape } from "../fused.ts";
import { jsBackend as js } from "../js/index.ts";
import type { TypedArray } from "../../dtype.ts";
import { type Gpu, type GpuDType, gpuStorage } from "./gpu.ts";
import {
  actExpr,
  actGradExpr,
  adamShader,
  binaryExpr,
  conv2dBackInputGemmShader,
  conv2dBackInputShader,
  conv2dBackWeightGemmShader,
  conv2dBackWeightShader,
  conv2dGemmShader,
  conv2dShader,
  BIG_TILE,
  dotBlockedShader,
  dotShader,
  EW_GROUP,
  elementwiseShader,
  gatherShader,
  poolBackwardShader,
  poolShader,
  reduceShader,
  rowScanShader,
  scatterAddShader,
  layerNormShader,
  softmaxBackwardShader,
  softmaxShader,
  TILE,
  unaryExpr,
  wgslType,
} from "./wgsl.ts";
import {
  ATT_BQ,
  ATT_DC,
  attentionBackwardShader,
  attentionParams,
  attentionShader,
} from "./wgsl-attention.ts";
import { fusedShader } from "./wgsl-fused.ts";
import { CELL_WIDTHS, type CellKind, cellShader } from "./wgsl-rnn.ts";
import {
  argsortBlockShader,
  argsortFinalShader,
  argsortShader,
  argsortStepShader,
  LOCAL_SORT,
} from "./wgsl-sort.ts";

const MAX_GROUPS = 65535;

/** The dtype of a typed array (device arrays report theirs through their prototype). */
function dtypeOf(a: TypedArray): GpuDType | "host" {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Uint8Array) return "bool";
  // float64, float16, bfloat16: no GPU storage on this backend (ordinary host arrays, js kernels)
  return "host";
}

function onGpu(d: GpuDType | "host"): d is GpuDType {
  return d !== "host";
}

function size(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Workgroup counts for `groups` workgroups (2-D when over the per-dimension limit). */
function grid(groups: number): [number, number, number] {
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, Math.ceil(groups / MAX_GROUPS), 1];
}

/**
 * Run a kernel on the host (the js reference) over the host copies: the inputs' copies must be valid. Used for
 * float64 (no WGSL type), op codes without a WGSL form and the kernels this backend does not implement.
 */
export function onHost(kernel: string, arrays: readonly (TypedArray | null)[]): void {
  for (const a of arrays) {
    const s = a === null ? undefined : gpuStorage(a);
    if (s !== undefined && !s.hostOk) {
      throw new DeviceReadError(
        deviceReadMessage(
          "webgpu",
          `webgpu: kernel '${kernel}' has no WGSL implementation for this call and runs on the host, but an input`,
        ),
      );
    }
  }
}

/** The kernels, bound to one device context. */
export class Kernels {
  constructor(readonly gpu: Gpu) {}

  /** The buffer to read `data` from: a device array's own, or a temporary upload of a host array. */
  private input(data: TypedArray, d: GpuDType): GPUBuffer {
    const s = gpuStorage(data);
    return s === undefined ? this.gpu.temporary(data, d) : s.deviceBuffer();
  }

  /**
   * The buffers of one dispatch: the inputs' (uploaded if needed), then the output's (`partial`: its old values
   * kept). An input that shares the output's buffer (jit writes in place over dying inputs) is read from a
   * snapshot, since a dispatch may not read and write one buffer.
   */
  private buffers(inputs: readonly [TypedArray, GpuDType][], out: TypedArray, partial = false): GPUBuffer[] {
    this.gpu.reserve();
    const ins = inputs.map(([data, d]) => this.input(data, d));
    const ob = gpuStorage(out)!.writeBuffer(partial);
    const bufs = ins.map((b) => (b === ob ? this.gpu.snapshot(b) : b));
    bufs.push(ob);
    return bufs;
  }

  /** True when the output can be written on the GPU (it is a device array of a GPU dtype). */
  private gpuOut(out: TypedArray): boolean {
    return gpuStorage(out) !== undefined;
  }

  private viewParams(v: View): number[] {
    return [v.offset, ...v.strides];
  }

  /** Record an elementwise kernel over `views` into the contiguous (or strided) output. */
  private elementwise(
    key: string,
    inputs: readonly View[],
    dtypes: readonly GpuDType[],
    out: TypedArray,
    outDtype: GpuDType,
    body: string,
    shape: readonly number[],
    outView: View | null = null,
  ): void {
    const n = size(shape);
    if (n === 0) return;
    const bufs = this.buffers(
      inputs.map((v, k) => [v.data, dtypes[k]]),
      out,
      outView !== null,
    );
    const params = [n, shape.length, ...shape];
    for (const v of inputs) params.push(...this.viewParams(v));
    if (outView !== null) params.push(...this.viewParams(outView));
    const pipe = this.gpu.pipeline(key, () => elementwiseShader(dtypes, outDtype, body, outView !== null));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  unary(op: UnaryOp, x: View, out: TypedArray): void {
    const d = dtypeOf(out);
    const e = onGpu(d) && this.gpuOut(out) ? unaryExpr(op, d, "x0") : null;
    if (e === null || !onGpu(d)) {
      onHost("unary", [x.data]);
      js.unary(op, x, out);
      return;
    }
    this.elementwise(`u:${op}:${d}`, [x], [d], out, d, e, x.shape);
  }

  binary(op: BinaryOp, a: View, b: View, out: TypedArray): void {
    const d = dtypeOf(a.data);
    const od = dtypeOf(out);
    const e = onGpu(d) && onGpu(od) && this.gpuOut(out) ? binaryExpr(op, d, "x0", "x1") : null;
    if (e === null || !onGpu(d) || !onGpu(od)) {
      onHost("binary", [a.data, b.data]);
      js.binary(op, a, b, out);
      return;
    }
    this.elementwise(`b:${op}:${d}`, [a, b], [d, d], out, od, e, a.shape);
  }

  biasAct(act: Activation, x: View, b: View | null, out: TypedArray): void {
    const d = dtypeOf(out);
    if (d !== "float32" || !this.gpuOut(out)) {
      onHost("biasAct", [x.data, b?.data ?? null]);
      js.biasAct(act, x, b, out);
      return;
    }
    if (b === null) this.elementwise(`ba:${act}:1`, [x], [d], out, d, actExpr(act, "x0"), x.shape);
    else this.elementwise(`ba:${act}:2`, [x, b], [d, d], out, d, actExpr(act, "(x0 + x1)"), x.shape);
  }

  actGrad(act: Activation, y: View, ct: View, out: TypedArray): void {
    const d = dtypeOf(out);
    if (d !== "float32" || !this.gpuOut(out)) {
      onHost("actGrad", [y.data, ct.data]);
      js.actGrad(act, y, ct, out);
      return;
    }
    this.elementwise(`ag:${act}`, [y, ct], [d, d], out, d, actGradExpr(act, "x0", "x1"), y.shape);
  }

  where(cond: View, a: View, b: View, out: TypedArray): void {
    const d = dtypeOf(out);
    if (!onGpu(d) || !this.gpuOut(out)) {
      onHost("where", [cond.data, a.data, b.data]);
      js.where(cond, a, b, out);
      return;
    }
    this.elementwise(`w:${d}`, [cond, a, b], ["bool", d, d], out, d, "select(x2, x1, x0 != 0u)", a.shape);
  }

  cast(x: View, out: TypedArray): void {
    const from = dtypeOf(x.data);
    const to = dtypeOf(out);
    if (!onGpu(from) || !onGpu(to) || !this.gpuOut(out)) {
      onHost("cast", [x.data]);
      js.cast(x, out);
      return;
    }
    let e: string;
    if (to === "bool")
      e = from === "bool" ? "x0" : `select(0u, 1u, x0 != ${from === "float32" ? "0.0" : "0"})`;
    else if (to === "int32" && from === "float32") e = "select(i32(x0), 0, f_isnan(x0))";
    else e = `${wgslType(to)}(x0)`;
    this.elementwise(`c:${from}:${to}`, [x], [from], out, to, e, x.shape);
  }

  copy(src: View, dst: View): void {
    const d = dtypeOf(dst.data);
    const sd = gpuStorage(src.data);
    if (!onGpu(d) || gpuStorage(dst.data) === undefined) {
      // into host memory (dataSync, toArray...): from the host copy, which must be valid
      if (sd !== undefined && !sd.hostOk) {
        throw new DeviceReadError(
          deviceReadMessage("webgpu", "dataSync/item/toArray/printing (a synchronous read)"),
        );
      }
      const from = sd === undefined ? src : { ...src, data: sd.hostArray() };
      js.copy(from, dst);
      return;
    }
    const n = size(src.shape);
    if (n === 0) return;
    const whole = dst.offset === 0 && n === dst.data.length && isContiguous(dst);
    const bufs = this.buffers([[src.data, d]], dst.data, !whole);
    const params = [n, src.shape.length, ...src.shape, ...this.viewParams(src), ...this.viewParams(dst)];
    const pipe = this.gpu.pipeline(`cp:${d}`, () => elementwiseShader([d], d, "x0", true));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: TypedArray): void {
    const d = dtypeOf(out);
    if (d === "host" || d === "bool" || !this.gpuOut(out)) {
      onHost("reduce", [x.data]);
      js.reduce(op, x, axes, out);
      return;
    }
    const kept: number[] = [];
    const red: number[] = [];
    for (let i = 0; i < x.shape.length; i++) (axes.includes(i) ? red : kept).push(i);
    const M = size(kept.map((i) => x.shape[i]));
    const K = size(red.map((i) => x.shape[i]));
    if (M === 0) return;
    const bufs = this.buffers([[x.data, d]], out);
    const params = [
      M,
      K,
      kept.length,
      red.length,
      ...kept.map((i) => x.shape[i]),
      ...kept.map((i) => x.strides[i]),
      ...red.map((i) => x.shape[i]),
      ...red.map((i) => x.strides[i]),
      x.offset,
    ];
    const tree = K > 32;
    const pipe = this.gpu.pipeline(`r:${op}:${d}:${tree}`, () => reduceShader(op, d, tree));
    this.gpu.dispatch(pipe, bufs, params, grid(tree ? M : Math.ceil(M / EW_GROUP)));
  }

  dot(a: View, b: View, out: TypedArray): void {
    const d = dtypeOf(out);
    if (d === "host" || d === "bool" || !this.gpuOut(out)) {
      onHost("dot", [a.data, b.data]);
      js.dot(a, b, out);
      return;
    }
    const r = a.shape.length;
    const M = a.shape[r - 2];
    const K = a.shape[r - 1];
    const N = b.shape[r - 1];
    const batch = a.shape.slice(0, r - 2);
    const B = size(batch);
    if (B * M * N === 0) return;
    if (K === 0) {
      this.gpu.clear(gpuStorage(out)!.writeBuffer(false));
      return;
    }
    const bufs = this.buffers(
      [
        [a.data, d],
        [b.data, d],
      ],
      out,
    );
    // register blocking (64 x 64 blocks, 4 x 4 per thread) once both sides fill more than a 16 x 16 tile
    const blocked = M > TILE && N > TILE;
    const tile = blocked ? BIG_TILE : TILE;
    const pipe = blocked
      ? this.gpu.pipeline(`dot64:${d}`, () => dotBlockedShader(d))
      : this.gpu.pipeline(`dot:${d}`, () => dotShader(d));
    const tail = [a.offset, a.strides[r - 2], a.strides[r - 1], b.offset, b.strides[r - 2], b.strides[r - 1]];
    for (let base = 0; base < B; base += MAX_GROUPS) {
      const params = [
        M,
        N,
        K,
        batch.length,
        base,
        ...batch,
        ...a.strides.slice(0, r - 2),
        ...b.strides.slice(0, r - 2),
        ...tail,
      ];
      const groups: [number, number, number] = [
        Math.ceil(N / tile),
        Math.ceil(M / tile),
        Math.min(MAX_GROUPS, B - base),
      ];
      this.gpu.dispatch(pipe, bufs, params, groups);
    }
  }

  /** Parameters of a row kernel: rows over every axis but `axis`, per operand (off, axisStride, strides). */
  private rowParams(views: readonly View[], axis: number): { R: number; L: number; params: number[] } {
    const shape = views[0].shape;
    const other = shape.map((_, i) => i).filter((i) => i !== axis);
    const R = size(other.map((i) => shape[i]));
    const L = shape[axis];
    const params = [R, L, other.length, ...other.map((i) => shape[i])];
    for (const v of views) params.push(v.offset, v.strides[axis], ...other.map((i) => v.strides[i]));
    return { R, L, params };
  }

  softmax(x: View, axis: number, log: boolean, out: TypedArray): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("softmax", [x.data]);
      js.softmax(x, axis, log, out);
      return;
    }
    const xv = x.shape.length === 0 ? { ...x, shape: [1], strides: [0] } : x;
    const ov = contiguousView(out, xv.shape);
    const { R, L, params } = this.rowParams([xv, ov], axis);
    if (R * L === 0) return;
    const bufs = this.buffers([[x.data, "float32"]], out);
    const pipe = this.gpu.pipeline(`sm:${log}`, () => softmaxShader(log));
    this.gpu.dispatch(pipe, bufs, params, grid(R));
  }

  softmaxBackward(y: View, ct: View, axis: number, log: boolean, out: TypedArray): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("softmaxBackward", [y.data, ct.data]);
      js.softmaxBackward(y, ct, axis, log, out);
      return;
    }
    const scalar = y.shape.length === 0;
    const yv = scalar ? { ...y, shape: [1], strides: [0] } : y;
    const cv = scalar ? { ...ct, shape: [1], strides: [0] } : ct;
    const ov = contiguousView(out, yv.shape);
    const { R, L, params } = this.rowParams([yv, cv, ov], axis);
    if (R * L === 0) return;
    const bufs = this.buffers(
      [
        [y.data, "float32"],
        [ct.data, "float32"],
      ],
      out,
    );
    const pipe = this.gpu.pipeline(`smb:${log}`, () => softmaxBackwardShader(log));
    this.gpu.dispatch(pipe, bufs, params, grid(R));
  }

  layerNorm(x: View, eps: number, out: TypedArray): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("layerNorm", [x.data]);
      js.layerNorm(x, eps, out);
      return;
    }
    const axis = x.shape.length - 1;
    const { R, L, params } = this.rowParams([x, contiguousView(out, x.shape)], axis);
    if (R * L === 0) return;
    const bufs = this.buffers([[x.data, "float32"]], out);
    const pipe = this.gpu.pipeline(`ln:${eps}`, () => layerNormShader(false, eps));
    this.gpu.dispatch(pipe, bufs, params, grid(R));
  }

  layerNormBackward(x: View, g: View, eps: number, out: TypedArray): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("layerNormBackward", [x.data, g.data]);
      js.layerNormBackward(x, g, eps, out);
      return;
    }
    const axis = x.shape.length - 1;
    const { R, L, params } = this.rowParams([x, g, contiguousView(out, x.shape)], axis);
    if (R * L === 0) return;
    const bufs = this.buffers(
      [
        [x.data, "float32"],
        [g.data, "float32"],
      ],
      out,
    );
    const pipe = this.gpu.pipeline(`lnb:${eps}`, () => layerNormShader(true, eps));
    this.gpu.dispatch(pipe, bufs, params, grid(R));
  }

  argReduce(op: "argmax" | "argmin", x: View, axis: number, out: TypedArray): void {
    const d = dtypeOf(x.data);
    if ((d !== "float32" && d !== "int32") || !this.gpuOut(out)) {
      onHost("argReduce", [x.data]);
      js.argReduce(op, x, axis, out);
      return;
    }
    // out has x's shape without `axis`: as a row view, axis stride 0
    const ov = contiguousView(
      out,
      x.shape.filter((_, i) => i !== axis),
    );
    const os = [...ov.strides];
    os.splice(axis, 0, 0);
    const { R, L, params } = this.rowParams([x, { ...ov, shape: x.shape, strides: os }], axis);
    if (R * L === 0) return;
    const bufs = this.buffers([[x.data, d]], out);
    const pipe = this.gpu.pipeline(`ar:${op}:${d}`, () => rowScanShader(op, d));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(R / EW_GROUP)));
  }

  cumsum(x: View, axis: number, reverse: boolean, out: TypedArray): void {
    const d = dtypeOf(out);
    if ((d !== "float32" && d !== "int32") || !this.gpuOut(out)) {
      onHost("cumsum", [x.data]);
      js.cumsum(x, axis, reverse, out);
      return;
    }
    const { R, L, params } = this.rowParams([x, contiguousView(out, x.shape)], axis);
    if (R * L === 0) return;
    const kind = reverse ? "cumsumRev" : "cumsum";
    const bufs = this.buffers([[x.data, d]], out);
    const pipe = this.gpu.pipeline(`cs:${kind}:${d}`, () => rowScanShader(kind, d));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(R / EW_GROUP)));
  }

  gather(x: View, axis: number, idx: View, out: TypedArray): void {
    const d = dtypeOf(out);
    if (!onGpu(d) || !this.gpuOut(out)) {
      onHost("gather", [x.data, idx.data]);
      js.gather(x, axis, idx, out);
      return;
    }
    const n = size(idx.shape);
    if (n === 0) return;
    const bufs = this.buffers(
      [
        [x.data, d],
        [idx.data, "int32"],
      ],
      out,
    );
    const r = idx.shape.length;
    const params = [n, r, ...idx.shape, ...this.viewParams(idx), ...this.viewParams(x), axis];
    const pipe = this.gpu.pipeline(`g:${d}`, () => gatherShader(d));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  scatterAdd(src: View, axis: number, idx: View, out: TypedArray, outShape: readonly number[]): void {
    const d = dtypeOf(out);
    if (d === "host" || d === "bool" || !this.gpuOut(out)) {
      onHost("scatterAdd", [src.data, idx.data, out]);
      js.scatterAdd(src, axis, idx, out, outShape);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const bufs = this.buffers(
      [
        [src.data, d],
        [idx.data, "int32"],
      ],
      out,
      true,
    );
    const r = outShape.length;
    const m = idx.shape[axis];
    const params = [n, r, ...outShape, ...this.viewParams(src), ...this.viewParams(idx), axis, m];
    const pipe = this.gpu.pipeline(`sa:${d}`, () => scatterAddShader(d));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  /**
   * Whether a convolution runs as an implicit GEMM per group ([rows, cols] per group): once both sides fill
   * more than a 16 x 16 tile (and the column blocks fit one grid dimension, the groups being the third).
   */
  private gemmFits(rows: number, cols: number): boolean {
    return rows > TILE && cols > TILE && Math.ceil(cols / BIG_TILE) <= MAX_GROUPS;
  }

  /** The convolution parameter block (CONV_PARAMS order) for views a (the "x" slot) and b (the "w" slot). */
  private convParams(
    dims: readonly number[],
    p: Conv2dParams,
    a: View,
    b: View,
    bias: View | null,
    act: number,
  ): number[] {
    return [
      ...dims,
      p.stride[0],
      p.stride[1],
      p.padding[0],
      p.padding[1],
      p.dilation[0],
      p.dilation[1],
      p.groups,
      a.offset,
      ...a.strides,
      b.offset,
      ...b.strides,
      bias?.offset ?? 0,
      bias?.strides[0] ?? 0,
      act,
    ];
  }

  conv2d(
    x: View,
    w: View,
    out: TypedArray,
    outShape: readonly number[],
    p: Conv2dParams,
    epilogue?: ConvEpilogue,
  ): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("conv2d", [x.data, w.data, epilogue?.bias?.data ?? null]);
      js.conv2d(x, w, out, outShape, p, epilogue);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const [N, C, H, W] = x.shape;
    const [O, , KH, KW] = w.shape;
    const bias = epilogue?.bias ?? null;
    const act = epilogue?.act ? ACTIVATIONS.indexOf(epilogue.act) + 1 : 0;
    const ins: [TypedArray, GpuDType][] = [
      [x.data, "float32"],
      [w.data, "float32"],
    ];
    if (bias !== null) ins.push([bias.data, "float32"]);
    const bufs = this.buffers(ins, out);
    const params = this.convParams([N, C, H, W, O, outShape[2], outShape[3], KH, KW], p, x, w, bias, act);
    // an implicit GEMM per group once a group has more than 16 output channels and positions
    const og = O / p.groups;
    const cols = N * outShape[2] * outShape[3];
    if (this.gemmFits(og, cols)) {
      const pipe = this.gpu.pipeline(`convgemm:${bias !== null}`, () => conv2dGemmShader(bias !== null));
      this.gpu.dispatch(pipe, bufs, params, gemmGrid(og, cols, p.groups));
      return;
    }
    const pipe = this.gpu.pipeline(`conv:${bias !== null}`, () => conv2dShader(bias !== null));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  conv2dBackInput(dy: View, w: View, out: TypedArray, outShape: readonly number[], p: Conv2dParams): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("conv2dBackInput", [dy.data, w.data]);
      js.conv2dBackInput(dy, w, out, outShape, p);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const [N, C, H, W] = outShape;
    const [O, , KH, KW] = w.shape;
    const bufs = this.buffers(
      [
        [dy.data, "float32"],
        [w.data, "float32"],
      ],
      out,
    );
    const params = this.convParams([N, C, H, W, O, dy.shape[2], dy.shape[3], KH, KW], p, dy, w, null, 0);
    const cols = N * H * W;
    if (this.gemmFits(C / p.groups, cols)) {
      const pipe = this.gpu.pipeline("convbigemm", conv2dBackInputGemmShader);
      this.gpu.dispatch(pipe, bufs, params, gemmGrid(C / p.groups, cols, p.groups));
      return;
    }
    const pipe = this.gpu.pipeline("convbi", conv2dBackInputShader);
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  conv2dBackWeight(x: View, dy: View, out: TypedArray, outShape: readonly number[], p: Conv2dParams): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("conv2dBackWeight", [x.data, dy.data]);
      js.conv2dBackWeight(x, dy, out, outShape, p);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const [N, C, H, W] = x.shape;
    const [O, , KH, KW] = outShape;
    const bufs = this.buffers(
      [
        [x.data, "float32"],
        [dy.data, "float32"],
      ],
      out,
    );
    const params = this.convParams([N, C, H, W, O, dy.shape[2], dy.shape[3], KH, KW], p, x, dy, null, 0);
    const cols = (C / p.groups) * KH * KW;
    if (this.gemmFits(O / p.groups, cols)) {
      const pipe = this.gpu.pipeline("convbwgemm", conv2dBackWeightGemmShader);
      this.gpu.dispatch(pipe, bufs, params, gemmGrid(O / p.groups, cols, p.groups));
      return;
    }
    const pipe = this.gpu.pipeline("convbw", conv2dBackWeightShader);
    this.gpu.dispatch(pipe, bufs, params, grid(n));
  }

  /** The pooling parameter block (POOL_PARAMS order): a in the x* slots, b (or a again) in the y* slots. */
  private poolParams(
    xShape: readonly number[],
    oShape: readonly number[],
    p: Pool2dParams,
    a: View,
    b: View,
  ) {
    return [
      ...xShape,
      oShape[2],
      oShape[3],
      p.kernel[0],
      p.kernel[1],
      p.stride[0],
      p.stride[1],
      p.padding[0],
      p.padding[1],
      a.offset,
      ...a.strides,
      b.offset,
      ...b.strides,
    ];
  }

  private pool(
    kind: 0 | 1 | 2,
    name: "maxPool2d" | "maxPool2dArgmax" | "avgPool2d",
    x: View,
    out: TypedArray,
    outShape: readonly number[],
    p: Pool2dParams,
  ): void {
    if (dtypeOf(x.data) !== "float32" || !this.gpuOut(out)) {
      onHost(name, [x.data]);
      js[name](x, out, outShape, p);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const bufs = this.buffers([[x.data, "float32"]], out);
    const pipe = this.gpu.pipeline(`pool:${kind}`, () => poolShader(kind));
    this.gpu.dispatch(pipe, bufs, this.poolParams(x.shape, outShape, p, x, x), grid(Math.ceil(n / EW_GROUP)));
  }

  maxPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
    this.pool(0, "maxPool2d", x, out, outShape, p);
  }

  maxPool2dArgmax(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
    this.pool(1, "maxPool2dArgmax", x, out, outShape, p);
  }

  avgPool2d(x: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
    this.pool(2, "avgPool2d", x, out, outShape, p);
  }

  maxPool2dBackward(x: View, dy: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("maxPool2dBackward", [x.data, dy.data]);
      js.maxPool2dBackward(x, dy, out, outShape, p);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const bufs = this.buffers(
      [
        [dy.data, "float32"],
        [x.data, "float32"],
      ],
      out,
    );
    const pipe = this.gpu.pipeline("poolb:0", () => poolBackwardShader(0));
    this.gpu.dispatch(
      pipe,
      bufs,
      this.poolParams(outShape, dy.shape, p, dy, x),
      grid(Math.ceil(n / EW_GROUP)),
    );
  }

  avgPool2dBackward(dy: View, out: TypedArray, outShape: readonly number[], p: Pool2dParams): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("avgPool2dBackward", [dy.data]);
      js.avgPool2dBackward(dy, out, outShape, p);
      return;
    }
    const n = size(outShape);
    if (n === 0) return;
    const bufs = this.buffers([[dy.data, "float32"]], out);
    const pipe = this.gpu.pipeline("poolb:2", () => poolBackwardShader(2));
    this.gpu.dispatch(
      pipe,
      bufs,
      this.poolParams(outShape, dy.shape, p, dy, dy),
      grid(Math.ceil(n / EW_GROUP)),
    );
  }

  // ---- fused attention and recurrent cells (wgsl-attention.ts, wgsl-rnn.ts) --------------------------------

  attention(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    causal: boolean,
    scale: number,
    out: TypedArray,
  ): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("attention", [q.data, k.data, v.data, mask?.data ?? null]);
      js.attention(q, k, v, mask, causal, scale, out);
      return;
    }
    const d = attentionDims(q, k, v);
    if (d.nb * d.l === 0) return;
    const nc = Math.max(1, Math.ceil(d.ev / ATT_DC));
    const ins = mask === null ? [q, k, v] : [q, k, v, mask];
    const bufs = this.buffers(
      ins.map((x) => [x.data, "float32"]),
      out,
    );
    const params = attentionParams(d, d.lead, causal, scale, nc, [q, k, v, mask]);
    const pipe = this.gpu.pipeline(`att:${mask !== null}`, () => attentionShader(mask !== null));
    this.gpu.dispatch(pipe, bufs, params, grid(d.nb * Math.ceil(d.l / ATT_BQ) * nc));
  }

  attentionBackward(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    o: View,
    dout: View,
    causal: boolean,
    scale: number,
    out: TypedArray,
  ): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost("attentionBackward", [q.data, k.data, v.data, mask?.data ?? null, o.data, dout.data]);
      js.attentionBackward(q, k, v, mask, o, dout, causal, scale, out);
      return;
    }
    const d = attentionDims(q, k, v);
    if (d.nb * (d.l * d.e + d.s * d.e + d.s * d.ev) === 0) return;
    const ins = mask === null ? [q, k, v, o, dout] : [q, k, v, mask, o, dout];
    // one preparation for both dispatches (each writes its part of out)
    const bufs = this.buffers(
      ins.map((x) => [x.data, "float32"]),
      out,
    );
    const params = attentionParams(d, d.lead, causal, scale, 0, [q, k, v, mask, o, dout]);
    const m = mask !== null;
    const kvGroups = d.nb * Math.ceil(d.s / ATT_BQ) * (Math.ceil(d.e / ATT_DC) + Math.ceil(d.ev / ATT_DC));
    if (kvGroups > 0) {
      const pipe = this.gpu.pipeline(`attb:dkv:${m}`, () => attentionBackwardShader("dkv", m));
      this.gpu.dispatch(pipe, bufs, params, grid(kvGroups));
    }
    const qGroups = d.nb * Math.ceil(d.l / ATT_BQ) * Math.ceil(d.e / ATT_DC);
    if (qGroups > 0) {
      const pipe = this.gpu.pipeline(`attb:dq:${m}`, () => attentionBackwardShader("dq", m));
      this.gpu.dispatch(pipe, bufs, params, grid(qGroups));
    }
  }

  /** One of the fused recurrent cells: rows over the leading axes, one thread per (row, hidden unit). */
  private cell(kind: CellKind, views: readonly View[], out: TypedArray): void {
    if (dtypeOf(out) !== "float32" || !this.gpuOut(out)) {
      onHost(
        kind,
        views.map((v) => v.data),
      );
      (js[kind] as (...a: unknown[]) => void)(...views, out);
      return;
    }
    const x = views[0];
    const nd = x.shape.length;
    const H = x.shape[nd - 1] / CELL_WIDTHS[kind].ins[0];
    const lead = x.shape.slice(0, nd - 1);
    const n = size(lead) * H;
    if (n === 0) return;
    const bufs = this.buffers(
      views.map((v) => [v.data, "float32"]),
      out,
    );
    const params = [n, H, lead.length, ...lead];
    for (const v of views) params.push(v.offset, ...v.strides.slice(0, nd - 1), v.strides[nd - 1]);
    const pipe = this.gpu.pipeline(`cell:${kind}`, () => cellShader(kind));
    this.gpu.dispatch(pipe, bufs, params, grid(Math.ceil(n / EW_GROUP)));
  }

  lstmCell(gates: View, c: View, out: TypedArray): void {
    this.cell("lstmCell", [gates, c], out);
  }

  lstmCellBackward(gates: View, c: View, ct: View, out: TypedArray): void {
    this.cell("lstmCellBackward", [gates, c, ct], out);
  }

  gruCell(xp: View, hp: View, h: View, out: TypedArray): void {
    this.cell("gruCell", [xp, hp, h], out);
  }

  gruCellBackward(xp: View, hp: View, h: View, ct: View, out: TypedArray): void {
    this.cell("gruCellBackward", [xp, hp, h, ct], out);
  }

  // ---- argsort (wgsl-sort.ts) --------------------------------------------------------------------------------

  /**
   * The stable sorting permutation along `axis` by bitonic networks: in workgroup memory for rows of at most
   * LOCAL_SORT elements, else through a scratch buffer with one dispatch per compare-exchange stage.
   */
  argsort(x: View, axis: number, descending: boolean, out: TypedArray): void {
    const d = dtypeOf(x.data);
    if (!onGpu(d) || !this.gpuOut(out)) {
      onHost("argsort", [x.data]);
      js.argsort!(x, axis, descending, out);
      return;
    }
    const xv = x.shape.length === 0 ? { ...x, shape: [1], strides: [0] } : x;
    const ax = x.shape.length === 0 ? 0 : axis;
    const { R, L, params } = this.rowParams([xv, contiguousView(out, xv.shape)], ax);
    if (R * L === 0) return;
    const NP = 2 ** Math.ceil(Math.log2(L));
    params.push(NP, descending ? 1 : 0);
    const g = this.gpu;
    if (NP <= LOCAL_SORT) {
      const bufs = this.buffers([[x.data, d]], out);
      g.dispatch(
        g.pipeline(`sort:${d}`, () => argsortShader(d)),
        bufs,
        params,
        grid(R),
      );
      return;
    }
    const total = R * NP;
    const blocks = total / LOCAL_SORT;
    const pairs = g.acquire(total * 8);
    g.reserve();
    const xb = this.input(x.data, d);
    g.dispatch(
      g.pipeline(`sortb:${d}`, () => argsortBlockShader(d, true)),
      [xb, pairs],
      params,
      grid(blocks),
    );
    const step = g.pipeline("sort1", argsortStepShader);
    const merge = g.pipeline("sortm", () => argsortBlockShader(d, false));
    for (let k = 2 * LOCAL_SORT; k <= NP; k *= 2) {
      for (let j = k >> 1; j >= LOCAL_SORT; j >>= 1) {
        g.dispatch(step, [pairs], [total, NP, k, j], grid(Math.ceil(total / EW_GROUP)));
      }
      g.dispatch(merge, [pairs], [blocks, NP, k], grid(blocks));
    }
    g.reserve();
    const ob = gpuStorage(out)!.writeBuffer(false);
    g.dispatch(
      g.pipeline("sort2", argsortFinalShader),
      [pairs, ob],
      params,
      grid(Math.ceil((R * L) / EW_GROUP)),
    );
    g.free(pairs);
  }

  // ---- jit's fused elementwise kernel (wgsl-fused.ts) --------------------------------------------------------

  /**
   * One dispatch per fused program (its shader compiled once per `prog.key`). float64 programs and outputs in
   * host memory run js's fused kernel on the host copies; a program with more inputs and outputs than a shader
   * may bind runs instruction by instruction through this backend's own kernels (the same values).
   */
  fused(prog: FusedProgram, inputs: readonly View[], outs: readonly TypedArray[]): void {
    checkFusedArgs(prog, inputs, outs);
    if (prog.dtype !== "float32" || outs.some((o) => !this.gpuOut(o))) {
      onHost(
        "fused",
        inputs.map((v) => v.data),
      );
      js.fused!(prog, inputs, outs);
      return;
    }
    const shape = fusedShape(inputs, outs);
    const n = size(shape);
    if (n === 0) return;
    if (inputs.length + outs.length + 1 > this.gpu.device.limits.maxStorageBuffersPerShaderStage) {
      fusedByOps(this.asBackend(), prog, inputs, outs);
      return;
    }
    this.gpu.reserve();
    const ins = inputs.map((v) => this.input(v.data, "float32"));
    const obs = outs.map((o) => gpuStorage(o)!.writeBuffer(false));
    // jit writes in place over a dying input: read it from a snapshot (a dispatch may not read and write one buffer)
    const bufs = ins.map((b) => (obs.includes(b) ? this.gpu.snapshot(b) : b));
    const rank = Math.max(1, shape.length);
    const params = [n, rank, ...(shape.length === 0 ? [1] : shape)];
    for (const v of inputs) params.push(v.offset, ...(shape.length === 0 ? [0] : v.strides));
    const pipe = this.gpu.pipeline(`fused:${prog.key}`, () => fusedShader(prog));
    this.gpu.dispatch(
      pipe,
      [...bufs, ...obs],
      params,
      grid(Math.ceil(n / EW_GROUP)),
      [...prog.consts, 0], // the consts, then the zero word wgsl-fused.ts's opq reads
    );
  }

  /** The kernels fusedByOps needs, as a Backend (the allocator and the elementwise kernels of this device). */
  private asBackend(): Backend {
    return {
      alloc: (d: GpuDType, n: number) => this.gpu.alloc(d, n),
      unary: this.unary.bind(this),
      binary: this.binary.bind(this),
      copy: this.copy.bind(this),
    } as unknown as Backend;
  }

  adamUpdate(
    p: TypedArray,
    g: View,
    m: TypedArray,
    v: TypedArray,
    vmax: TypedArray | null,
    h: AdamUpdateParams,
  ): void {
    const states = vmax === null ? [p, m, v] : [p, m, v, vmax];
    const storages = states.map((a) => gpuStorage(a));
    if (dtypeOf(p) !== "float32" || storages.some((s) => s === undefined)) {
      onHost("adamUpdate", [p, g.data, m, v, vmax]);
      js.adamUpdate!(p, g, m, v, vmax, h);
      return;
    }
    const n = p.length;
    if (n === 0) return;
    this.gpu.reserve();
    const gb = this.input(g.data, "float32");
    const bufs = storages.map((s) => s!.writeBuffer(true));
    const gbuf = bufs.includes(gb) ? this.gpu.snapshot(gb) : gb;
    const params = [n, g.shape.length, ...g.shape, ...this.viewParams(g)];
    const floats = [
      h.decoupled ? 1 - h.lr * h.weightDecay : 1,
      h.decoupled ? 0 : h.weightDecay,
      h.beta1,
      h.beta2,
      h.lr / h.bc1,
      h.bc2Sqrt,
      h.eps,
      h.maximize ? -1 : 1,
    ];
    const pipe = this.gpu.pipeline(`adam:${vmax !== null}`, () => adamShader(vmax !== null));
    this.gpu.dispatch(pipe, [gbuf, ...bufs], params, grid(Math.ceil(n / EW_GROUP)), floats);
  }
}

/** The workgroups of a convolution's implicit GEMM: 64 x 64 blocks of [rows, cols], one layer per group. */
function gemmGrid(rows: number, cols: number, groups: number): [number, number, number] {
  return [Math.ceil(cols / BIG_TILE), Math.ceil(rows / BIG_TILE), groups];
}

/** The sizes of an attention call (the primitive checked the shapes): q [...B, L, E], k [...B, S, E], v [..., Ev]. */
function attentionDims(q: View, k: View, v: View) {
  const nd = q.shape.length;
  const lead = q.shape.slice(0, nd - 2);
  return {
    lead,
    nb: size(lead),
    l: q.shape[nd - 2],
    e: q.shape[nd - 1],
    s: k.shape[nd - 2],
    ev: v.shape[nd - 1],
  };
}

function isContiguous(v: View): boolean {
  let s = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.strides[i] !== s) return false;
    s *= v.shape[i];
  }
  return true;
}

function contiguousView(data: TypedArray, shape: readonly number[]): View {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return { data, shape, strides, offset: 0 };
}
