/**
 * The js cast kernel for the 16-bit float dtypes (float16, bfloat16): every conversion to or from them goes
 * through float32, as PyTorch's CPU casts do. Widening is exact; narrowing rounds to nearest with ties to even
 * (src/io/half.ts). From float32 the value is the float32 itself; from float64 and int32 it is first rounded
 * to float32 (PyTorch converts a double to half the same way); to int32 and bool the float32 value converts as
 * the other js casts do (truncation toward zero with NaN -> 0; x != 0).
 */
import { BFloat16Bits, type TypedArray } from "../../dtype.ts";
import { narrowHalfInto, widenHalfInto } from "../../io/half.ts";

/** out[i] = cast(src[i]) for contiguous `src` (n elements) where src or out is 16-bit float storage. */
export function castHalf(src: TypedArray, out: TypedArray, n: number): void {
  let f: Float32Array;
  if (src instanceof Uint16Array) {
    f = out instanceof Float32Array ? out : new Float32Array(n);
    widenHalfInto(src, f, n, src instanceof BFloat16Bits);
  } else if (src instanceof Float32Array) {
    f = src;
  } else {
    f = new Float32Array(n);
    if (src instanceof Uint8Array) for (let i = 0; i < n; i++) f[i] = src[i] !== 0 ? 1 : 0;
    else for (let i = 0; i < n; i++) f[i] = src[i];
  }
  if (out === f) return;
  if (out instanceof Uint16Array) narrowHalfInto(f, out, n, out instanceof BFloat16Bits);
  else if (out instanceof Uint8Array) for (let i = 0; i < n; i++) out[i] = f[i] !== 0 ? 1 : 0;
  else for (let i = 0; i < n; i++) out[i] = f[i];
}
