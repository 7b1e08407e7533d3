/**
 * Resampling with PyTorch 1.13's semantics: `interpolate` (F.interpolate) and the `Upsample`,
 * `UpsamplingNearest2d` and `UpsamplingBilinear2d` layers. Separable: along each spatial axis in turn the
 * output is a sum of one to four gathers (`indexSelect`) of the input, each scaled by a constant weight per
 * output position. The positions and weights depend only on the sizes, so they are computed here once, and the
 * derivative (a scatter-add of weighted cotangents) is the transpose of the gathers, as every composition's.
 */
import { DTypeError, ShapeError } from "../errors.ts";
import { tensor } from "../ops/creation.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Module } from "./module.ts";

/**
 * The resampling modes: "nearest" (PyTorch's legacy nearest: source floor(dst * in / out)), "nearest-exact"
 * (floor((dst + 0.5) * in / out), as Pillow and OpenCV), "linear" (3-d input), "bilinear" (4-d), "trilinear"
 * (5-d) and "bicubic" (4-d; cubic convolution with a = -0.75, border samples repeated).
 */
export type InterpolateMode = "nearest" | "nearest-exact" | "linear" | "bilinear" | "trilinear" | "bicubic";

/** Options of `interpolate` (PyTorch's F.interpolate, without antialias and "area"). */
export interface InterpolateOpts {
  /** Output spatial size: one number for every spatial dim, or one per dim. Exclusive with scaleFactor. */
  size?: number | readonly number[];
  /** Output size = floor(input size * scaleFactor) per spatial dim. Exclusive with size. */
  scaleFactor?: number | readonly number[];
  /** Default "nearest". */
  mode?: InterpolateMode;
  /**
   * linear modes only: true maps the corner pixels' centres onto each other (source = dst (in - 1) / (out - 1));
   * false (the default) uses half-pixel centres (source = (dst + 0.5) in / out - 0.5).
   */
  alignCorners?: boolean;
  /**
   * With scaleFactor: compute the source positions from the sizes (in / out) instead of 1 / scaleFactor, as
   * PyTorch's recompute_scale_factor=True. Default false.
   */
  recomputeScaleFactor?: boolean;
}

const RANK: Record<InterpolateMode, number[]> = {
  nearest: [3, 4, 5],
  "nearest-exact": [3, 4, 5],
  linear: [3],
  bilinear: [4],
  trilinear: [5],
  bicubic: [4],
};

/** Along one axis: out = sum over taps of w[j] * x[idx[j]] (w null: weight 1). */
interface Tap {
  idx: Int32Array;
  w: Float64Array | null;
}

// cubic convolution (Keys, a = -0.75 as PyTorch): |s| <= 1 and 1 < |s| < 2
const A = -0.75;
const cubic1 = (s: number) => ((A + 2) * s - (A + 3)) * s * s + 1;
const cubic2 = (s: number) => ((A * s - 5 * A) * s + 8 * A) * s - 4 * A;

/** The taps resampling an axis of size n to m; scale is PyTorch's optional scale factor (null: from sizes). */
function taps(
  mode: InterpolateMode,
  n: number,
  m: number,
  scale: number | null,
  alignCorners: boolean,
): Tap[] {
  if (mode === "nearest" || mode === "nearest-exact") {
    const idx = new Int32Array(m);
    // PyTorch computes the ratio and the products in float32
    const r = Math.fround(scale !== null && scale > 0 ? 1 / scale : n / m);
    const half = mode === "nearest" ? 0 : 0.5;
    for (let j = 0; j < m; j++) idx[j] = Math.min(Math.floor(Math.fround((j + half) * r)), n - 1);
    return [{ idx, w: null }];
  }
  // the ratio of source to destination coordinates
  const r = alignCorners ? (m > 1 ? (n - 1) / (m - 1) : 0) : scale !== null && scale > 0 ? 1 / scale : n / m;
  const src = (j: number, cubic: boolean): number => {
    if (alignCorners) return r * j;
    const s = r * (j + 0.5) - 0.5;
    return !cubic && s < 0 ? 0 : s;
  };
  if (mode === "bicubic") {
    const ts: Tap[] = [0, 1, 2, 3].map(() => ({ idx: new Int32Array(m), w: new Float64Array(m) }));
    for (let j = 0; j < m; j++) {
      const s = src(j, true);
      const i = Math.floor(s);
      const t = s - i;
      const ws = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
      for (let k = 0; k < 4; k++) {
        ts[k].idx[j] = Math.min(Math.max(i - 1 + k, 0), n - 1);
        (ts[k].w as Float64Array)[j] = ws[k];
      }
    }
    return ts;
  }
  // linear: the two neighbours of the source position (the last one twice at the border)
  const lo: Tap = { idx: new Int32Array(m), w: new Float64Array(m) };
  const hi: Tap = { idx: new Int32Array(m), w: new Float64Array(m) };
  for (let j = 0; j < m; j++) {
    const s = src(j, false);
    const i = Math.min(Math.floor(s), n - 1);
    const l = Math.min(Math.max(s - i, 0), 1);
    lo.idx[j] = i;
    hi.idx[j] = i + (i < n - 1 ? 1 : 0);
    (lo.w as Float64Array)[j] = 1 - l;
    (hi.w as Float64Array)[j] = l;
  }
  return [lo, hi];
}

/** x resampled along `axis` by the taps. */
function applyTaps(x: Tensor, axis: number, ts: readonly Tap[]): Tensor {
  const m = ts[0].idx.length;
  const wShape = x.shape.map((_, i) => (i === axis ? m : 1));
  let out: Tensor | null = null;
  for (const t of ts) {
    const g = x.indexSelect(axis, tensor(t.idx, { dtype: "int32", shape: [m] }));
    const term = t.w === null ? g : g.mul(tensor(t.w, { dtype: x.dtype, shape: wShape }));
    out = out === null ? term : out.add(term);
  }
  return out as Tensor;
}

function perDim(op: string, name: string, v: number | readonly number[], k: number): number[] {
  const a = typeof v === "number" ? new Array<number>(k).fill(v) : [...v];
  if (a.length !== k) {
    throw new ShapeError(
      `${op}: ${name} must have one entry per spatial dim (${k}), got ${JSON.stringify(v)}`,
    );
  }
  return a;
}

/**
 * Resample the spatial dims (those after [N, C]) of x, as PyTorch 1.13's F.interpolate: give the output `size`
 * or a `scaleFactor`; `mode` "nearest" (default; PyTorch's legacy rule), "nearest-exact", "linear" (3-d
 * input), "bilinear" (4-d), "trilinear" (5-d) or "bicubic" (4-d), with `alignCorners` for the linear modes.
 * Differentiable in x (the gradient scatters the weighted cotangents back); works under vmap and jit.
 *
 * @example
 * ```ts
 * interpolate(randn([1, 3, 8, 8]), { scaleFactor: 2, mode: "bilinear" }); // [1, 3, 16, 16]
 * ```
 */
export function interpolate(x: Tensor, opts: InterpolateOpts): Tensor {
  const op = "interpolate";
  const mode = opts.mode ?? "nearest";
  const ranks = RANK[mode];
  if (ranks === undefined) {
    throw new RangeError(
      `${op}: mode must be one of ${Object.keys(RANK).join(", ")}, got ${JSON.stringify(mode)} ("area" and antialias are not implemented)`,
    );
  }
  if (!ranks.includes(x.ndim)) {
    throw new ShapeError(
      `${op}: got ${x.ndim}-d input ${fmtShape(x.shape)}, but ${mode} mode needs ${ranks.join("-d, ")}-d input [N, C, ...spatial]`,
    );
  }
  const linear = mode !== "nearest" && mode !== "nearest-exact";
  if (opts.alignCorners !== undefined && !linear) {
    throw new RangeError(
      `${op}: alignCorners can only be set with the interpolating modes linear, bilinear, bicubic and trilinear, not ${mode}`,
    );
  }
  if (linear && x.dtype !== "float32" && x.dtype !== "float64") {
    throw new DTypeError(`${op}: ${mode} mode needs a float input, got ${x.dtype}`);
  }
  const k = x.ndim - 2;
  const inSize = x.shape.slice(2);
  if ((opts.size === undefined) === (opts.scaleFactor === undefined)) {
    throw new TypeError(`${op}: give exactly one of size and scaleFactor`);
  }
  let outSize: number[];
  let scales: (number | null)[];
  if (opts.size !== undefined) {
    outSize = perDim(op, "size", opts.size, k);
    scales = outSize.map(() => null);
  } else {
    const sf = perDim(op, "scaleFactor", opts.scaleFactor as number | readonly number[], k);
    if (!sf.every((s) => Number.isFinite(s) && s > 0)) {
      throw new RangeError(
        `${op}: scaleFactor must be positive and finite, got ${JSON.stringify(opts.scaleFactor)}`,
      );
    }
    outSize = inSize.map((n, i) => Math.floor(n * sf[i]));
    scales = opts.recomputeScaleFactor === true ? sf.map(() => null) : sf;
  }
  if (!outSize.every((v) => Number.isInteger(v) && v > 0) || !inSize.every((v) => v > 0)) {
    throw new ShapeError(
      `${op}: input and output sizes must be greater than 0, got input ${fmtShape(x.shape)} and output size ${fmtShape(outSize)}`,
    );
  }
  const align = opts.alignCorners ?? false;
  let y = x;
  for (let i = 0; i < k; i++) {
    const n = inSize[i];
    const m = outSize[i];
    // equal sizes: the identity for the linear modes whatever the scale factor (PyTorch's kernels copy); the
    // nearest and cubic rules with a scale factor other than 1 still move samples
    const lin = mode === "linear" || mode === "bilinear" || mode === "trilinear";
    if (n === m && (lin || scales[i] === null || scales[i] === 1)) continue;
    y = applyTaps(y, i + 2, taps(mode, n, m, scales[i], align));
  }
  return y;
}

/** Options of Upsample (PyTorch's nn.Upsample). */
export interface UpsampleOpts {
  size?: number | readonly number[];
  scaleFactor?: number | readonly number[];
  /** Default "nearest". */
  mode?: InterpolateMode;
  alignCorners?: boolean;
  recomputeScaleFactor?: boolean;
}

/**
 * Resampling layer (PyTorch's nn.Upsample): `interpolate` with fixed options; no parameters.
 *
 * @example
 * ```ts
 * new Upsample({ scaleFactor: 2, mode: "bilinear" }).call(randn([1, 3, 8, 8])); // [1, 3, 16, 16]
 * ```
 */
export class Upsample extends Module {
  readonly size: number | readonly number[] | undefined;
  readonly scaleFactor: number | readonly number[] | undefined;
  readonly mode: InterpolateMode;
  readonly alignCorners: boolean | undefined;
  readonly recomputeScaleFactor: boolean | undefined;

  constructor(opts: UpsampleOpts = {}) {
    super();
    this.size = opts.size;
    this.scaleFactor = opts.scaleFactor;
    this.mode = opts.mode ?? "nearest";
    this.alignCorners = opts.alignCorners;
    this.recomputeScaleFactor = opts.recomputeScaleFactor;
    if ((this.size === undefined) === (this.scaleFactor === undefined)) {
      throw new TypeError(`${this.constructor.name}: give exactly one of size and scaleFactor`);
    }
  }

  forward(x: Tensor): Tensor {
    const { size, scaleFactor, mode, alignCorners, recomputeScaleFactor } = this;
    return interpolate(x, { size, scaleFactor, mode, alignCorners, recomputeScaleFactor });
  }

  override extraRepr(): string {
    const v = this.size ?? this.scaleFactor;
    const parts = [
      `${this.size !== undefined ? "size" : "scaleFactor"}=${typeof v === "number" ? v : `[${v}]`}`,
    ];
    parts.push(`mode=${this.mode}`);
    if (this.alignCorners !== undefined) parts.push(`alignCorners=${this.alignCorners}`);
    return parts.join(", ");
  }
}

/** PyTorch's nn.UpsamplingNearest2d: Upsample with mode "nearest" (4-d input). */
export class UpsamplingNearest2d extends Upsample {
  constructor(opts: {
    size?: number | readonly [number, number];
    scaleFactor?: number | readonly [number, number];
  }) {
    super({ ...opts, mode: "nearest" });
  }
}

/** PyTorch's nn.UpsamplingBilinear2d: Upsample with mode "bilinear" and alignCorners true (4-d input). */
export class UpsamplingBilinear2d extends Upsample {
  constructor(opts: {
    size?: number | readonly [number, number];
    scaleFactor?: number | readonly [number, number];
  }) {
    super({ ...opts, mode: "bilinear", alignCorners: true });
  }
}
