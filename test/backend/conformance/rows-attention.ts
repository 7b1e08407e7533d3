/**
 * Table rows of the fused attention kernels (Backend.attention, Backend.attentionBackward) per dtype: odd sizes
 * around the native and wasm tiles (native 64 query rows x 64 keys, wasm 32 x 64: 1, 7, 33, 65, 129, 130, 200; head
 * dims to 128), one case large enough for wasm's worker pool (eight batch entries, L = S = 80), L != S, E != Ev,
 * empty L, S, E, Ev and
 * batch, causal and not, no mask / a full mask / a mask broadcast over batch and rows (stride 0) / a mask with
 * -Infinity entries and a fully masked row, q, k, v in rotating layouts or as views into one packed [B, L, 3 H E]
 * array, and NaN inputs. The backward rows read
 * a real forward output (js) and a cotangent whose lse column is non-zero.
 */
import type { View } from "../../../src/backend/backend.ts";
import { jsBackend as J } from "../../../src/backend/js/index.ts";
import type { DType } from "../../../src/dtype.ts";
import { contiguousStrides } from "../../../src/shape.ts";
import { type Case, kcase, type Row, type Tol } from "./runner.ts";
import { LAYOUTS, type Layout, makeView, prng, size } from "./views.ts";

const TOL: Record<"float32" | "float64", Tol> = {
  // native runs float32 in float32 (scores, exp, the P V products); js in float64
  float32: { rtol: 3e-5, atol: 3e-5 },
  float64: { rtol: 1e-10, atol: 1e-12 },
};

/**
 * Head dims of 64 and more: float32 scores and sums over up to 200 terms drift further from js's float64 (the
 * previous native kernel and the FlashAttention-2 one alike reach 6e-5 on these rows).
 */
const TOL_WIDE: Tol = { rtol: 2e-4, atol: 2e-4 };
const tolOf = (dtype: "float32" | "float64", q: View): Tol =>
  dtype === "float32" && q.shape[q.shape.length - 1] >= 64 ? TOL_WIDE : TOL[dtype];

type Mask = "none" | "full" | "broadcast" | "neginf";

interface Shape {
  lead: number[];
  l: number;
  s: number;
  e: number;
  ev: number;
}

const SHAPES: Shape[] = [
  { lead: [], l: 1, s: 1, e: 1, ev: 1 },
  { lead: [2], l: 7, s: 5, e: 3, ev: 4 },
  { lead: [2, 3], l: 33, s: 70, e: 16, ev: 8 },
  { lead: [1], l: 130, s: 67, e: 33, ev: 5 },
  { lead: [2], l: 65, s: 130, e: 8, ev: 12 },
  // enough work for wasm to split the eight batch entries over its worker pool
  { lead: [2, 4], l: 80, s: 80, e: 32, ev: 16 },
  { lead: [3], l: 0, s: 4, e: 2, ev: 2 },
  { lead: [2], l: 5, s: 0, e: 3, ev: 2 },
  { lead: [1], l: 4, s: 3, e: 0, ev: 2 },
  { lead: [1], l: 4, s: 3, e: 2, ev: 0 },
  { lead: [0, 2], l: 3, s: 3, e: 2, ev: 2 },
  // native's FlashAttention-2 blocks (64 x 64) and SIMD-padded head dims
  { lead: [2], l: 129, s: 70, e: 80, ev: 7 },
  { lead: [1], l: 64, s: 200, e: 128, ev: 64 },
];
const MASKS: Mask[] = ["none", "full", "broadcast", "neginf"];

const lay = (i: number): Layout => LAYOUTS[i % LAYOUTS.length];

function maskView(sh: Shape, how: Mask, dtype: DType, rng: () => number, i: number): View | null {
  const full = [...sh.lead, sh.l, sh.s];
  if (how === "none") return null;
  if (how === "full") return makeView(full, dtype, lay(i + 3), rng, "plain");
  // one [S] row, broadcast over the batch and the query rows by stride 0 (a key padding mask)
  const row = makeView([sh.s], dtype, "contiguous", rng, "plain");
  if (how === "neginf") {
    for (let j = 0; j < sh.s; j += 3) row.data[row.offset + j] = -Infinity;
    const m = makeView(full, dtype, "contiguous", rng, "plain");
    // a -Infinity pattern, and the first query row of every batch entry fully masked
    for (let t = 0; t < size(full); t++) if (t % 5 === 1 || t % (sh.l * sh.s) < sh.s) m.data[t] = -Infinity;
    return m;
  }
  return {
    data: row.data,
    shape: full,
    strides: [...full.map(() => 0).slice(0, -1), row.strides[0]],
    offset: row.offset,
  };
}

interface Inputs {
  q: View;
  k: View;
  v: View;
  mask: View | null;
  causal: boolean;
  scale: number;
  label: string;
}

function inputs(dtype: DType, seed: number): Inputs[] {
  const rng = prng(seed);
  const out: Inputs[] = [];
  let i = 0;
  for (const sh of SHAPES) {
    for (const how of MASKS) {
      for (const causal of [false, true]) {
        const qk = [...sh.lead, sh.l, sh.e];
        const q = makeView(qk, dtype, lay(i), rng, "plain");
        const k = makeView([...sh.lead, sh.s, sh.e], dtype, lay(i + 1), rng, "plain");
        const v = makeView([...sh.lead, sh.s, sh.ev], dtype, lay(i + 2), rng, "plain");
        const mask = maskView(sh, how, dtype, rng, i);
        const scale = i % 3 === 0 ? 0.7 : 1 / Math.sqrt(Math.max(sh.e, 1));
        const label = `lead [${sh.lead}] L ${sh.l} S ${sh.s} E ${sh.e} Ev ${sh.ev} mask ${how}${causal ? " causal" : ""} q ${lay(i)} k ${lay(i + 1)} v ${lay(i + 2)}`;
        out.push({ q, k, v, mask, causal, scale, label });
        i++;
      }
    }
  }
  // q, k and v as views into one packed projection [B, L, 3 H E] (heads split by strides, as a Transformer's QKV
  // layer leaves them): wasm copies the shared array in once; lengths off the 32 x 64 tiles, causal and not
  for (const [b, h, n, e] of [
    [2, 3, 70, 16],
    [1, 2, 33, 8],
  ]) {
    const packed = makeView([b, n, 3 * h * e], dtype, "contiguous", rng, "plain");
    const [q, k, v] = [0, 1, 2].map(
      (t): View => ({
        data: packed.data,
        shape: [b, h, n, e],
        strides: [n * 3 * h * e, e, 3 * h * e, 1],
        offset: packed.offset + t * h * e,
      }),
    );
    for (const causal of [false, true]) {
      const label = `packed q k v [${b}, ${h}, ${n}, ${e}]${causal ? " causal" : ""}`;
      out.push({ q, k, v, mask: null, causal, scale: 1 / Math.sqrt(e), label });
    }
  }
  // NaN in one query and one key
  const q = makeView([2, 9, 4], dtype, "contiguous", rng, "plain");
  const k = makeView([2, 11, 4], dtype, "contiguous", rng, "plain");
  q.data[5] = Number.NaN;
  k.data[30] = Number.NaN;
  out.push({
    q,
    k,
    v: makeView([2, 11, 3], dtype, "gaps", rng, "plain"),
    mask: null,
    causal: false,
    scale: 0.5,
    label: "NaN in q and k",
  });
  return out;
}

function forwardRow(dtype: "float32" | "float64"): Row {
  return {
    kernel: "attention",
    variant: dtype,
    covers:
      "odd sizes around the tiles, empty dims, causal, full / broadcast / -Infinity masks, strided q k v, q k v packed in one array, NaN",
    cases: () =>
      inputs(dtype, 9101 + dtype.length).map(
        (c): Case =>
          kcase(
            c.label,
            dtype,
            tolOf(dtype, c.q),
            [...c.q.shape.slice(0, -1), c.v.shape[c.v.shape.length - 1] + 1],
            dtype,
            (b, o) => {
              b.attention(c.q, c.k, c.v, c.mask, c.causal, c.scale, o);
            },
          ),
      ),
  };
}

function backwardRow(dtype: "float32" | "float64"): Row {
  return {
    kernel: "attentionBackward",
    variant: dtype,
    covers:
      "the forward row's cases, o from js's forward, dout with a non-zero lse column in rotating layouts",
    cases: () => {
      const rng = prng(9201 + dtype.length);
      return inputs(dtype, 9101 + dtype.length).map((c, i): Case => {
        const nd = c.q.shape.length;
        const [l, e] = [c.q.shape[nd - 2], c.q.shape[nd - 1]];
        const [s, ev] = [c.k.shape[nd - 2], c.v.shape[nd - 1]];
        const oShape = [...c.q.shape.slice(0, -1), ev + 1];
        const o = J.alloc(dtype, size(oShape));
        J.attention(c.q, c.k, c.v, c.mask, c.causal, c.scale, o);
        const ov: View = { data: o, shape: oShape, strides: contiguousStrides(oShape), offset: 0 };
        const g = makeView(oShape, dtype, lay(i + 4), rng, "small");
        const per = l * e + s * e + s * ev;
        return kcase(
          `${c.label} dout ${lay(i + 4)}`,
          dtype,
          tolOf(dtype, c.q),
          [...c.q.shape.slice(0, -2), per],
          dtype,
          (b, r) => {
            b.attentionBackward(c.q, c.k, c.v, c.mask, ov, g, c.causal, c.scale, r);
          },
        );
      });
    },
  };
}

export const ATTENTION_ROWS: readonly Row[] = [
  forwardRow("float32"),
  forwardRow("float64"),
  backwardRow("float32"),
  backwardRow("float64"),
];

// ------------------------------------------------------------------------------------- recurrent cells
type CellKernel = "lstmCell" | "lstmCellBackward" | "gruCell" | "gruCellBackward";
/** Operand widths (in units of H) and the output's. */
const CELLS: Record<CellKernel, [number[], number]> = {
  lstmCell: [[4, 1], 2],
  lstmCellBackward: [[4, 1, 2], 5],
  gruCell: [[3, 3, 1], 1],
  gruCellBackward: [[3, 3, 1, 1], 7],
};

function cellRow(kernel: CellKernel, dtype: "float32" | "float64"): Row {
  const [widths, ow] = CELLS[kernel];
  return {
    kernel,
    variant: dtype,
    covers:
      "rows x H from 1 x 1 to 70 x 33, 1-d and 3-d, every layout, special values (saturating gates, NaN)",
    cases: () => {
      const rng = prng(9301 + kernel.length + dtype.length);
      const out: Case[] = [];
      let i = 0;
      for (const [lead, h] of [
        [[1], 1],
        [[], 5],
        [[3], 7],
        [[2, 3], 4],
        [[70], 33],
        [[0], 3],
        [[4], 0],
      ] as [number[], number][]) {
        const vs = widths.map((w, k) =>
          makeView([...lead, w * h], dtype, lay(i + k), rng, k === 0 ? "special" : "plain"),
        );
        const label = `lead [${lead}] H ${h} layouts ${widths.map((_, k) => lay(i + k)).join(", ")}`;
        i++;
        out.push(
          kcase(label, dtype, TOL_CELL[dtype], [...lead, ow * h], dtype, (b, o) => {
            if (kernel === "lstmCell") b.lstmCell(vs[0], vs[1], o);
            else if (kernel === "lstmCellBackward") b.lstmCellBackward(vs[0], vs[1], vs[2], o);
            else if (kernel === "gruCell") b.gruCell(vs[0], vs[1], vs[2], o);
            else b.gruCellBackward(vs[0], vs[1], vs[2], vs[3], o);
          }),
        );
      }
      return out;
    },
  };
}

// float32 through vmath's tanh / sigmoid (1-3 ulp) and float32 products; special gate values (1e30, NaN ...)
const TOL_CELL: Record<"float32" | "float64", Tol> = {
  float32: { rtol: 1e-5, atol: 1e-5 },
  float64: { rtol: 1e-12, atol: 1e-14 },
};

export const CELL_ROWS: readonly Row[] = (
  ["lstmCell", "lstmCellBackward", "gruCell", "gruCellBackward"] as const
).flatMap((k) => [cellRow(k, "float32"), cellRow(k, "float64")]);
