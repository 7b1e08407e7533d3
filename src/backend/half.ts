/**
 * Optional fast kernels for the 16-bit float dtypes, kept beside the Backend contract rather than in it: the
 * contract's kernels never see float16/bfloat16 storage (the primitive layer widens it to float32, see
 * src/prims/half.ts), so only a cast and a bfloat16 GEMM can use it. A backend registers what it has under its
 * name; everything else runs the js cast and the float32 GEMM of the widened operands.
 */
import type { TypedArray } from "../dtype.ts";
import type { View } from "./backend.ts";

export interface HalfKernels {
  /**
   * out = cast(x) where x or out (contiguous) is float16/bfloat16 storage; the other side is float32. Returns
   * false for a pair it does not handle (the caller runs the js cast).
   */
  castHalf?(x: View, out: TypedArray): boolean;
  /**
   * Batched matrix product of bfloat16 operands with float32 accumulation into a float32 out: a [...batch, M,
   * K], b [...batch, K, N] (any strides), out [...batch, M, N] contiguous; each product of two bfloat16 values
   * is exact in float32. Returns false when it cannot run (the caller widens and runs the float32 GEMM).
   */
  dotBF16?(a: View, b: View, out: Float32Array): boolean;
  /**
   * The bfloat16 GEMM with an epilogue, for autocast's fused linear layer: out = act(a @ b + bias) where a
   * [...batch, M, K] and b [...batch, K, N] are each float32 (rounded to bfloat16 while the kernel packs them,
   * no bfloat16 copy) or bfloat16 views, products accumulate in float32, `bias` (float32 or bfloat16 [N], rounded
   * to bfloat16) is added, relu applied, and out (contiguous) is float32 or bfloat16 storage (rounded once).
   * `maskA` / `maskB`: a bfloat16 view with a's / b's shape and strides (that operand bfloat16) zeroing its
   * elements whose mask value is not > 0 (relu's derivative through its output). Returns false when it cannot
   * run.
   */
  gemmBF16?(a: View, b: View, out: Float32Array | Uint16Array, opts?: GemmBF16Opts): boolean;
  /** Whether `gemmBF16` runs here (the CPU and the selected instruction-set build have AVX512_BF16). */
  gemmBF16Ready?(): boolean;
  /**
   * Backend.attention on 16-bit q, k, v and mask (one 16-bit dtype, any strides) into a float32 out: the values
   * of the float32 kernel on the widened operands, except that a bfloat16 forward may round P to bfloat16 for
   * P v (native/src/kernels/attention.cc). Returns false when it cannot run (the caller widens).
   */
  attention?(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    causal: boolean,
    scale: number,
    out: Float32Array,
  ): boolean;
  /** Backend.attentionBackward likewise: 16-bit q, k, v and mask, float32 o, dout and out. */
  attentionBackward?(
    q: View,
    k: View,
    v: View,
    mask: View | null,
    o: View,
    dout: View,
    causal: boolean,
    scale: number,
    out: Float32Array,
  ): boolean;
  /**
   * The bfloat16 convolution (an implicit GEMM, no im2col matrix; runs where `gemmBF16Ready`), operands rounded to
   * bfloat16, products accumulated in float32. "forward": out [N, O, OH, OW] (contiguous, float32 or bfloat16
   * storage, rounded once) = act(conv2d(p, q) + bias) for p = x [N, C, H, W] (float32 or bfloat16, any strides),
   * q = the float32 weight [O, C / groups, KH, KW], bias float32 [O] or null (rounded to bfloat16), relu or
   * not. "weight": out (float32 [O, C / groups, KH, KW], the float32 accumulators) = the weight gradient of
   * p = x and q = dz [N, O, OH, OW] (float32 or bfloat16); with `biasGrad` out holds O more values after them, the
   * bias gradient (dz summed over N, OH, OW). `mask` (bfloat16, the shape of "forward"'s x / "weight"'s dz; no
   * bias then) zeroes that operand's elements whose mask is not > 0: relu's derivative through its output.
   * Returns false when it cannot run.
   */
  convBF16?(
    kind: "forward" | "weight",
    p: View,
    q: View,
    out: Float32Array | Uint16Array,
    outShape: readonly number[],
    params: {
      stride: readonly number[];
      padding: readonly number[];
      dilation: readonly number[];
      groups: number;
    },
    opts?: { bias?: View | null; relu?: boolean; mask?: View | null; biasGrad?: boolean },
  ): boolean;
}

/** The epilogue and operand mask of `HalfKernels.gemmBF16`. */
export interface GemmBF16Opts {
  bias?: View | null;
  relu?: boolean;
  maskA?: View | null;
  maskB?: View | null;
}

const registered = new Map<string, HalfKernels>();

/** Register the half kernels of the backend named `name` (replaces an earlier registration). */
export function registerHalfKernels(name: string, k: HalfKernels): void {
  registered.set(name, k);
}

/** The half kernels of the backend named `name`, or undefined. */
export function halfKernelsOf(name: string): HalfKernels | undefined {
  return registered.get(name);
}
