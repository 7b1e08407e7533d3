/**
 * Browser-page checks of the WGSL kernels added for issue 15's second round (fused attention, recurrent
 * cells, argsort, jit's fused kernel): each against the js kernel on random shapes, odd sizes, empty tensors
 * and strided views. Called by webgpu-page.ts with its checking kit (its `check`, `randView`, generators).
 */
import type { View } from "../../src/backend/backend.ts";
import { jsBackend as J } from "../../src/backend/js/index.ts";
import { allocTyped, type DType, type TypedArray } from "../../src/dtype.ts";
import * as cr from "../../src/index.ts";

type Gen = (r: () => number) => number;
interface Pair {
  js: View;
  gpu: View;
}
interface Tol {
  rtol: number;
  atol: number;
}

/** What webgpu-page.ts lends: its comparison of one kernel call on js and webgpu, and its random views. */
export interface CheckKit {
  check(
    label: string,
    outType: DType,
    outShape: readonly number[],
    tol: Tol,
    call: (b: cr.Backend, side: "js" | "gpu", out: TypedArray) => void,
  ): Promise<void>;
  randView(shape: readonly number[], dtype: DType, gen: Gen, broadcast?: boolean): Pair;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const unit: Gen = (r) => (r() - 0.5) * 2;
const any: Gen = (r) => (r() - 0.5) * 6;

/** A pair over given host values: js reads them, webgpu reads a device array holding them (or them). */
function pairOf(data: TypedArray, shape: readonly number[], device: boolean): Pair {
  const strides = shape.map((_, k) => size(shape.slice(k + 1)));
  let dev = data;
  if (device) {
    dev = cr.getBackend().alloc("float32", data.length);
    for (let i = 0; i < data.length; i++) dev[i] = data[i];
  }
  return { js: { data, shape, strides, offset: 0 }, gpu: { data: dev, shape, strides, offset: 0 } };
}

/** [lead, L, S, E, Ev, causal, mask]: mask "none", "rand" (finite), "pad" (-Infinity on some keys), "all" (-Infinity). */
type AttCase = [number[], number, number, number, number, boolean, "none" | "rand" | "pad" | "all"];
const ATTENTION: AttCase[] = [
  [[], 1, 1, 1, 1, false, "none"],
  [[2], 5, 7, 3, 4, false, "none"],
  [[2], 5, 7, 3, 4, true, "rand"],
  [[2, 3], 17, 33, 8, 5, true, "none"],
  [[1], 40, 20, 40, 70, false, "pad"],
  [[3], 20, 40, 33, 9, true, "pad"],
  [[2], 16, 16, 16, 16, true, "rand"],
  [[2], 3, 5, 4, 2, false, "all"],
  [[2], 0, 5, 3, 3, false, "none"],
  [[2], 4, 0, 3, 3, false, "rand"],
  [[0], 3, 3, 3, 3, true, "none"],
  [[1], 9, 9, 0, 4, false, "none"],
  [[1], 9, 9, 4, 0, true, "rand"],
  [[], 70, 50, 24, 40, true, "none"],
];

async function attentionChecks(kit: CheckKit): Promise<void> {
  let alt = 0;
  for (const [lead, L, S, E, Ev, causal, maskKind] of ATTENTION) {
    const q = kit.randView([...lead, L, E], "float32", unit, true);
    const k = kit.randView([...lead, S, E], "float32", unit, true);
    const v = kit.randView([...lead, S, Ev], "float32", any, true);
    const maskGen: Gen =
      maskKind === "all"
        ? () => -Infinity
        : maskKind === "pad"
          ? (r) => (r() < 0.25 ? -Infinity : unit(r))
          : unit;
    const mask = maskKind === "none" ? null : kit.randView([...lead, L, S], "float32", maskGen, true);
    const scale = 1 / Math.sqrt(Math.max(1, E));
    const label = `[${lead}] L=${L} S=${S} E=${E} Ev=${Ev} causal=${causal} mask=${maskKind}`;
    const outShape = [...lead, L, Ev + 1];
    const tol = { rtol: 1e-4, atol: 2e-5 * (1 + Math.sqrt(Math.max(E, Ev))) };
    await kit.check(`attention ${label}`, "float32", outShape, tol, (b, s, o) =>
      b.attention(q[s], k[s], v[s], mask === null ? null : mask[s], causal, scale, o),
    );
    // the backward pass reads the forward output (lse in its last column) and a cotangent of its shape
    const o = allocTyped("float32", size(outShape));
    J.attention(q.js, k.js, v.js, mask === null ? null : mask.js, causal, scale, o);
    const ov = pairOf(o, outShape, alt++ % 2 === 0);
    const dout = kit.randView(outShape, "float32", any, true);
    const per = L * E + S * E + S * Ev;
    const btol = { rtol: 1e-4, atol: 1e-4 * (1 + Math.sqrt(Math.max(L, S) * Math.max(E, Ev))) };
    await kit.check(`attentionBackward ${label}`, "float32", [...lead, per], btol, (b, s, out) =>
      b.attentionBackward(
        q[s],
        k[s],
        v[s],
        mask === null ? null : mask[s],
        ov[s],
        dout[s],
        causal,
        scale,
        out,
      ),
    );
  }
}

async function cellChecks(kit: CheckKit): Promise<void> {
  const F32 = { rtol: 2e-5, atol: 2e-5 };
  for (const lead of [[], [3], [2, 5], [0], [1]]) {
    for (const H of [1, 7, 33]) {
      const label = `[${lead}] H=${H}`;
      const gates = kit.randView([...lead, 4 * H], "float32", any, true);
      const c = kit.randView([...lead, H], "float32", any, true);
      const ct2 = kit.randView([...lead, 2 * H], "float32", any, true);
      await kit.check(`lstmCell ${label}`, "float32", [...lead, 2 * H], F32, (b, s, o) =>
        b.lstmCell(gates[s], c[s], o),
      );
      await kit.check(`lstmCellBackward ${label}`, "float32", [...lead, 5 * H], F32, (b, s, o) =>
        b.lstmCellBackward(gates[s], c[s], ct2[s], o),
      );
      const xp = kit.randView([...lead, 3 * H], "float32", any, true);
      const hp = kit.randView([...lead, 3 * H], "float32", any, true);
      const h = kit.randView([...lead, H], "float32", any, true);
      const ct = kit.randView([...lead, H], "float32", any, true);
      await kit.check(`gruCell ${label}`, "float32", [...lead, H], F32, (b, s, o) =>
        b.gruCell(xp[s], hp[s], h[s], o),
      );
      await kit.check(`gruCellBackward ${label}`, "float32", [...lead, 7 * H], F32, (b, s, o) =>
        b.gruCellBackward(xp[s], hp[s], h[s], ct[s], o),
      );
    }
  }
}

/** Every check of this file; returns how many kernel calls were compared. */
export async function wgslKernelChecks(kit: CheckKit): Promise<void> {
  await attentionChecks(kit);
  await cellChecks(kit);
}
