/**
 * Fused Adam / AdamW / AMSGrad update of the wasm backend (kernel: wasm/assembly/optim.ts). The parameter and
 * its state are staged into the arena, updated there in one SIMD pass and copied back: seven array copies at
 * memcpy speed, cheaper than the js loop (which computes every element in float64) even counting them.
 */
import { dtypeOfTyped, type TypedArray } from "../../dtype.ts";
import { sizeOf } from "../../shape.ts";
import type { AdamUpdateParams, View } from "../backend.ts";
import { assertOutSize } from "../js/strided.ts";
import { type Ctx, stageContiguous, withScope } from "./context.ts";
import { viewAt } from "./heap.ts";

/** The Adam step in wasm; false unless every array is float32, or every one float64. */
export function adamUpdate(
  c: Ctx,
  p: TypedArray,
  g: View,
  m: TypedArray,
  v: TypedArray,
  vmax: TypedArray | null,
  h: AdamUpdateParams,
): boolean {
  const dt = dtypeOfTyped(p);
  if (dt !== "float32" && dt !== "float64") return false;
  for (const a of [g.data, m, v, vmax ?? p]) if (dtypeOfTyped(a) !== dt) return false;
  const n = p.length;
  if (sizeOf(g.shape) !== n) return false;
  assertOutSize("adamUpdate", m, n);
  assertOutSize("adamUpdate", v, n);
  if (vmax !== null) assertOutSize("adamUpdate", vmax, n);
  if (n === 0) return true;
  return withScope(c, (s) => {
    const G = stageContiguous(c, s, g);
    // private copies of what is written back (never shared with the gradient's staging)
    const P = s.copyIn(p, 0, n, false);
    const M = s.copyIn(m, 0, n, false);
    const V = s.copyIn(v, 0, n, false);
    const X = vmax === null ? 0 : s.copyIn(vmax, 0, n, false);
    const H = s.alloc(9 * 8);
    new Float64Array(c.heap.buffer, H, 9).set([
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
    (dt === "float32" ? c.k.adamF32 : c.k.adamF64)(n, P, G, M, V, X, H);
    const buf = c.heap.buffer;
    p.set(viewAt(buf, dt, P, n));
    m.set(viewAt(buf, dt, M, n));
    v.set(viewAt(buf, dt, V, n));
    if (vmax !== null) vmax.set(viewAt(buf, dt, X, n));
    return true;
  });
}
