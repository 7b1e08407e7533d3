/**
 * The native backend's float16 / bfloat16 kernels (src/backend/half.ts's HalfKernels): vectorised casts between
 * float32 and the 16-bit formats, and the bfloat16 GEMM (vdpbf16ps, when the CPU has AVX512_BF16). The addon's
 * dtype codes have no 16-bit type, so 16-bit storage is passed as a Uint8Array over the same bytes and each view
 * gains a trailing axis of the two bytes of a value (extent 2, stride 1; the other strides and the offset
 * doubled): the addon then bounds-checks every byte the kernel reads (native/src/kernels/half.cc). Layouts are
 * kernels.def's (`half_cast`: "kind shape[#] view out:shape"; `gemm_bf16`: "kind shape[#] view view view? view? out:shape").
 */
import { BFloat16Bits, type TypedArray } from "../../dtype.ts";
import { isContiguous, sizeOf } from "../../shape.ts";
import type { View } from "../backend.ts";
import type { GemmBF16Opts, HalfKernels } from "../half.ts";
import type { NativeAddon } from "./addon.ts";

/** Below this many elements a cast stays in js (a call costs about as much as the loop). */
const CAST_MIN = 64;
/** Below this many multiply-adds the widened float32 product is as fast. */
const GEMM_MIN = 4096;
/** The largest rank of a native view (kMaxDims); a 16-bit view needs one more axis. */
const MAX_RANK = 32;

/** A 1 x 1 float32 matrix (gemmBF16Ready's probe). */
const ONE_F32: View = { data: new Float32Array(1), shape: [1, 1], strides: [1, 1], offset: 0 };

const byteViews = new WeakMap<Uint16Array, Uint8Array>();

/**
 * The bytes of 16-bit storage, as the Uint8Array the addon reads (code BOOL: one byte per element); one per
 * storage array, so repeated calls on a tensor allocate nothing.
 */
export function bytesOf(u: Uint16Array): Uint8Array {
  let b = byteViews.get(u);
  if (b === undefined) {
    b = new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
    byteViews.set(u, b);
  }
  return b;
}

/**
 * The half kernels over a loaded addon, writing their calls into the backend's meta buffer (the one the addon
 * was initialised with); undefined when the addon has none.
 */
export function createNativeHalfKernels(addon: NativeAddon, meta: Float64Array): HalfKernels | undefined {
  const halfCast = addon.halfCast;
  const dotBF16 = addon.dotBF16;
  const convBF16 = addon.convBF16;
  let relu = -2;
  /** relu's activation code, as the addon reports it. */
  const reluCode = () => {
    if (relu === -2) relu = addon.describe().activation.indexOf("relu");
    return relu;
  };
  if (typeof halfCast !== "function" || typeof dotBF16 !== "function") return undefined;
  /** ISA builds whose dotBF16 reported that it cannot run (no AVX512_BF16). */
  const noGemm = new Set<string>();
  /** ISA builds gemmBF16Ready has probed. */
  const probed = new Set<string>();
  let p = 0;
  /** A float32 view: dtype code 0, offset, rank, shape, strides. */
  function putF32(offset: number, shape: readonly number[], strides: readonly number[]): void {
    meta[p++] = 0;
    meta[p++] = offset;
    meta[p++] = shape.length;
    for (const d of shape) meta[p++] = d;
    for (const s of strides) meta[p++] = s;
  }
  /** A 16-bit view as bytes: code 3, offset and strides doubled, a trailing [2] of stride 1. */
  function put16(offset: number, shape: readonly number[], strides: readonly number[]): void {
    meta[p++] = 3;
    meta[p++] = 2 * offset;
    meta[p++] = shape.length + 1;
    for (const d of shape) meta[p++] = d;
    meta[p++] = 2;
    for (const s of strides) meta[p++] = 2 * s;
    meta[p++] = 1;
  }
  /** A float32 view or a bfloat16 one (as bytes); false for any other storage. */
  function putOperand(v: View): boolean {
    if (v.data instanceof Float32Array) putF32(v.offset, v.shape, v.strides);
    else if (v.data instanceof BFloat16Bits) put16(v.offset, v.shape, v.strides);
    else return false;
    return true;
  }
  const arrayOf = (v: View): TypedArray =>
    v.data instanceof BFloat16Bits ? bytesOf(v.data) : (v.data as TypedArray);
  function gemm(
    av: View,
    bv: View,
    out: Float32Array | Uint16Array,
    opts: GemmBF16Opts | undefined,
    small = false,
  ): boolean {
    const nd = av.shape.length;
    if (nd < 2 || nd + 1 > MAX_RANK || bv.shape.length !== nd) return false;
    const shape = [...av.shape.slice(0, nd - 1), bv.shape[nd - 1]];
    if (!small && sizeOf(shape) * av.shape[nd - 1] < GEMM_MIN) return false;
    const isa = addon.isa();
    if (noGemm.has(isa)) return false;
    const bias = opts?.bias ?? null;
    const mask = opts?.maskA ?? opts?.maskB ?? null;
    const kind = (opts?.relu ? 1 : 0) | (opts?.maskA ? 2 : 0) | (opts?.maskB ? 4 : 0);
    if (opts?.maskA && opts?.maskB) return false;
    if (mask !== null && !(mask.data instanceof BFloat16Bits)) return false;
    p = 0;
    meta[p++] = nd;
    for (const d of shape) meta[p++] = d;
    if (!putOperand(av) || !putOperand(bv)) return false;
    if (bias !== null && !putOperand(bias)) return false;
    if (mask !== null) put16(mask.offset, mask.shape, mask.strides);
    meta[p++] = out instanceof BFloat16Bits ? 3 : 0;
    try {
      dotBF16!.call(
        addon,
        kind,
        arrayOf(av),
        arrayOf(bv),
        bias === null ? null : arrayOf(bias),
        mask === null ? null : arrayOf(mask),
        out instanceof BFloat16Bits ? bytesOf(out) : out,
      );
    } catch (e) {
      // the ISA build or the CPU has no AVX512_BF16: the caller widens and runs the float32 GEMM
      if (e instanceof Error && e.message.includes("AVX512_BF16")) {
        noGemm.add(isa);
        return false;
      }
      throw e;
    }
    return true;
  }
  /** ISA builds whose attention kernel predates 16-bit operands (it rejects them before reading anything). */
  const noAttn16 = new Set<string>();
  /**
   * The attention kernels on 16-bit operands: kind bit 0 causal, bits 1-2 the format (1 float16, 2 bfloat16);
   * q, k, v and mask as byte views, o and dout float32, out float32 (kernels.def's `attention` layouts).
   */
  function attention16(
    views: readonly View[],
    nq: number,
    causal: boolean,
    scale: number,
    out: Float32Array,
  ): boolean {
    const q = views[0];
    const nd = q.shape.length;
    if (nd < 2 || nd + 1 > MAX_RANK) return false;
    const isa = addon.isa();
    if (noAttn16.has(isa)) return false;
    const bf = q.data instanceof BFloat16Bits;
    for (let i = 0; i < nq; i++) {
      const x = views[i].data;
      if (!(x instanceof Uint16Array) || x instanceof BFloat16Bits !== bf) return false;
    }
    const kind = (causal ? 1 : 0) | (bf ? 4 : 2);
    const e = q.shape[nd - 1];
    const [s, ev] = views[2].shape.slice(nd - 2);
    const backward = views.length > nq;
    p = 0;
    meta[p++] = scale;
    meta[p++] = nd;
    for (let i = 0; i < nd - 2; i++) meta[p++] = q.shape[i];
    if (backward) {
      meta[p++] = 1;
      meta[p++] = q.shape[nd - 2] * e + s * e + s * ev;
      meta[p++] = 0;
      meta[p++] = views.length;
    } else {
      meta[p++] = q.shape[nd - 2];
      meta[p++] = ev + 1;
    }
    const arrays: TypedArray[] = [];
    for (let i = 0; i < views.length; i++) {
      const x = views[i];
      if (i < nq) put16(x.offset, x.shape, x.strides);
      else if (x.data instanceof Float32Array) putF32(x.offset, x.shape, x.strides);
      else return false;
      arrays.push(i < nq ? bytesOf(x.data as Uint16Array) : (x.data as TypedArray));
    }
    try {
      if (backward) addon.attentionBackward.call(addon, kind, out, ...arrays);
      else {
        meta[p++] = 0;
        addon.attention.call(addon, kind, arrays[0], arrays[1], arrays[2], arrays[3] ?? null, out);
      }
    } catch (err) {
      // an addon built before 16-bit operands: the caller widens
      if (err instanceof Error && err.message.includes("float32 or float64 expected")) {
        noAttn16.add(isa);
        return false;
      }
      throw err;
    }
    return true;
  }
  return {
    attention(q, k, v, mask, causal, scale, out) {
      return attention16(
        mask === null ? [q, k, v] : [q, k, v, mask],
        mask === null ? 3 : 4,
        causal,
        scale,
        out,
      );
    },
    attentionBackward(q, k, v, mask, o, dout, causal, scale, out) {
      const vs = mask === null ? [q, k, v, o, dout] : [q, k, v, mask, o, dout];
      return attention16(vs, mask === null ? 3 : 4, causal, scale, out);
    },
    castHalf(x: View, out: TypedArray): boolean {
      const n = sizeOf(x.shape);
      if (n < CAST_MIN || !isContiguous(x.shape, x.strides)) return false;
      const src = x.data;
      p = 0;
      if (src instanceof Float32Array && out instanceof Uint16Array) {
        meta[p++] = 1;
        meta[p++] = n;
        putF32(x.offset, [n], [1]);
        meta[p++] = 3;
        halfCast.call(addon, out instanceof BFloat16Bits ? 1 : 0, src, bytesOf(out));
        return true;
      }
      if (src instanceof Uint16Array && out instanceof Float32Array) {
        meta[p++] = 1;
        meta[p++] = n;
        put16(x.offset, [n], [1]);
        meta[p++] = 0;
        halfCast.call(addon, src instanceof BFloat16Bits ? 3 : 2, bytesOf(src), out);
        return true;
      }
      return false;
    },
    dotBF16(av: View, bv: View, out: Float32Array): boolean {
      if (!(av.data instanceof BFloat16Bits && bv.data instanceof BFloat16Bits)) return false;
      return gemm(av, bv, out, undefined);
    },
    gemmBF16Ready(): boolean {
      const isa = addon.isa();
      if (noGemm.has(isa)) return false;
      if (!probed.has(isa)) {
        probed.add(isa);
        // a 1 x 1 x 1 product: throws (and marks the ISA) where there is no AVX512_BF16
        gemm(ONE_F32, ONE_F32, new Float32Array(1), undefined, true);
      }
      return !noGemm.has(isa);
    },
    gemmBF16(av: View, bv: View, out: Float32Array | Uint16Array, opts?: GemmBF16Opts): boolean {
      if (out instanceof Uint16Array && !(out instanceof BFloat16Bits)) return false;
      return gemm(av, bv, out, opts, true);
    },
    convBF16(kind, pv, qv, out, outShape, params, opts): boolean {
      const isa = addon.isa();
      if (convBF16 === undefined || noGemm.has(isa)) return false;
      if (out instanceof Uint16Array && !(out instanceof BFloat16Bits)) return false;
      const bias = opts?.bias ?? null;
      const mask = opts?.mask ?? null;
      if (bias !== null && (mask !== null || kind !== "forward" || !(bias.data instanceof Float32Array)))
        return false;
      if (mask !== null && !(mask.data instanceof BFloat16Bits)) return false;
      if ((opts?.relu && (kind !== "forward" || mask !== null)) || (opts?.biasGrad && kind !== "weight"))
        return false;
      p = 0;
      for (const d of outShape) meta[p++] = d;
      for (const v of [params.stride, params.padding, params.dilation]) for (const d of v) meta[p++] = d;
      meta[p++] = params.groups;
      meta[p++] = opts?.relu ? reluCode() : opts?.biasGrad ? 1 : -1;
      if (!putOperand(pv) || !putOperand(qv)) return false;
      if (bias !== null) putF32(bias.offset, bias.shape, bias.strides);
      if (mask !== null) put16(mask.offset, mask.shape, mask.strides);
      meta[p++] = out instanceof BFloat16Bits ? 3 : 0;
      const third = mask ?? bias;
      try {
        convBF16.call(
          addon,
          kind === "weight" ? 1 : mask !== null ? 2 : 0,
          arrayOf(pv),
          arrayOf(qv),
          third === null ? null : arrayOf(third),
          out instanceof BFloat16Bits ? bytesOf(out) : out,
        );
      } catch (e) {
        if (e instanceof Error && e.message.includes("AVX512_BF16")) {
          noGemm.add(isa);
          return false;
        }
        throw e;
      }
      return true;
    },
  };
}
