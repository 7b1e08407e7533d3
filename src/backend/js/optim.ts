/**
 * Fused optimizer updates (reference implementations): one pass over the parameter, in place, instead of a
 * dozen elementwise ops that each allocate a parameter-sized temporary.
 */
import type { TypedArray } from "../../dtype.ts";
import type { AdamUpdateParams, View } from "../backend.ts";
import { contiguousData } from "./strided.ts";

/** Adam/AdamW step as specified by `Backend.adamUpdate`. */
export function adamUpdate(
  p: TypedArray,
  g: View,
  m: TypedArray,
  v: TypedArray,
  vmax: TypedArray | null,
  h: AdamUpdateParams,
): void {
  const gd = contiguousData(g);
  const { lr, beta1, beta2, eps, weightDecay, decoupled, maximize, bc1, bc2Sqrt } = h;
  const decay = decoupled ? 1 - lr * weightDecay : 1;
  const l2 = decoupled ? 0 : weightDecay;
  const step = lr / bc1;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] * decay;
    const gi = (maximize ? -gd[i] : gd[i]) + l2 * pi;
    const mi = beta1 * m[i] + (1 - beta1) * gi;
    let vi = beta2 * v[i] + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    if (vmax !== null) {
      vi = Math.max(vmax[i], v[i]);
      vmax[i] = vi;
    } else vi = v[i];
    p[i] = pi - (step * m[i]) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}
