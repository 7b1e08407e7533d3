/**
 * Numerical checks of derivatives, public so users can test their own functions and custom rules:
 * `gradCheck` compares forward mode with central finite differences along random directions and reverse mode
 * with forward mode by the dot-product identity <u, J v> = <J^T u, v>, in float64; `checkKinks` reports where a
 * non-differentiable primitive was evaluated exactly at its kink inside a derivative computation.
 */
import { Generator } from "../ops/creation.ts";
import { contiguousStrides } from "../shape.ts";
import { Tensor } from "../tensor/tensor.ts";
import { jvpFlat, vjpFlat } from "./autodiff.ts";
import { type KinkReport, state } from "./trace.ts";

export interface GradCheckOpts {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Tolerances on |a - b| <= atol + rtol |b| (defaults 1e-5 and 1e-4). */
  atol?: number;
  rtol?: number;
  /** Random directions to try (default 3). */
  directions?: number;
  seed?: number;
  /** Throw an Error with the report when a check fails (default true). */
  raise?: boolean;
}

export interface GradCheckReport {
  ok: boolean;
  /** Worst |a - b| / (atol + rtol |b|) over all checks (<= 1 passes). */
  worstRatio: number;
  /** Which check and where the worst disagreement is. */
  worst: string;
}

function randomLike(t: Tensor, g: Generator): Tensor {
  const d = new Float64Array(t.size);
  for (let i = 0; i < d.length; i++) d[i] = g.normal();
  return Tensor._concrete(d, t.shape, "float64", contiguousStrides(t.shape));
}

function vdot(a: readonly Tensor[], b: readonly Tensor[]): number {
  let s = 0;
  a.forEach((t, i) => {
    const x = t.dataSync();
    const y = b[i].dataSync();
    for (let k = 0; k < x.length; k++) s += x[k] * y[k];
  });
  return s;
}

/**
 * Check the derivatives of f (tensors in, tensor or tensors out) at `inputs`, in float64.
 *
 * @example
 * ```ts
 * gradCheck((x: Tensor) => x.tanh().sum(), [randn([3], { dtype: "float64" })]); // { ok: true, ... }
 * ```
 */
export function gradCheck(
  f: (...xs: Tensor[]) => Tensor | Tensor[],
  inputs: readonly Tensor[],
  opts: GradCheckOpts = {},
): GradCheckReport {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-4;
  const g = new Generator(opts.seed ?? 1234);
  const xs = inputs.map((x) => x.detach().to("float64"));
  const flat = (ys: Tensor[]): Tensor[] => {
    const r = f(...ys);
    return Array.isArray(r) ? r : [r];
  };
  let worstRatio = 0;
  let worst = "none";
  const compare = (what: string, a: number, b: number) => {
    const r = Math.abs(a - b) / (atol + rtol * Math.abs(b));
    if (!(r <= worstRatio) || Number.isNaN(r)) {
      worstRatio = Number.isNaN(r) ? Number.POSITIVE_INFINITY : r;
      worst = `${what}: ${a} vs ${b}`;
    }
  };
  for (let k = 0; k < (opts.directions ?? 3); k++) {
    const v = xs.map((x) => randomLike(x, g));
    const [outs, jv] = jvpFlat(flat, xs, v);
    const plus = flat(xs.map((x, i) => x.add(v[i].mul(eps))));
    const minus = flat(xs.map((x, i) => x.sub(v[i].mul(eps))));
    outs.forEach((_, o) => {
      const fd = plus[o]
        .sub(minus[o])
        .div(2 * eps)
        .dataSync();
      const an = jv[o].dataSync();
      for (let i = 0; i < fd.length; i++)
        compare(`direction ${k}, output ${o}, element ${i}: jvp vs central difference`, an[i], fd[i]);
    });
    const u = outs.map((o) => randomLike(o, g));
    const { backward } = vjpFlat(flat, xs, { retain: false });
    const jtu = backward(u);
    compare(`direction ${k}: <u, J v> vs <J^T u, v>`, vdot(jtu, v), vdot(u, jv));
  }
  const report = { ok: worstRatio <= 1, worstRatio, worst };
  if (!report.ok && (opts.raise ?? true)) {
    throw new Error(`gradCheck failed: worst error ratio ${worstRatio.toPrecision(3)} at ${worst}`);
  }
  return report;
}

/**
 * Run fn with the kink check on: returns fn's result and a report for every relu/abs/max/min/clamp evaluated
 * exactly at its non-differentiable point while a derivative was being taken (where the reported derivative is
 * the 0 convention rather than a true derivative).
 *
 * @example
 * ```ts
 * const { kinks } = checkKinks(() => grad((x: Tensor) => x.relu().sub(x.neg().relu()))(tensor(0)));
 * // kinks: relu evaluated at its kink (twice); the true derivative of relu(x) - relu(-x) = x is 1, not 0
 * ```
 */
export function checkKinks<R>(fn: () => R): { result: R; kinks: KinkReport[] } {
  const prev = state.kinkLog;
  const log: KinkReport[] = [];
  state.kinkLog = log;
  try {
    const result = fn();
    return { result, kinks: log };
  } finally {
    state.kinkLog = prev;
  }
}
