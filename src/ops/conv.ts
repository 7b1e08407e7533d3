/**
 * More convolutions, PyTorch's: `conv1d`, `convTranspose2d` and `convTranspose1d`. None is a primitive:
 * conv1d is conv2d over an [N, C, 1, L] view, and a transposed convolution is the `conv2dBackInput` primitive
 * (the adjoint of conv2d in its input), so every backend's fast conv2d kernels serve them and their derivatives
 * (of any order) are those of the conv2d primitives. Checks name the op, the shapes and what was expected.
 */
import { DTypeError, ShapeError } from "../errors.ts";
import * as X from "../prims/lax.ts";
import { fmtShape } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { resultType } from "./math.ts";
import { checkOptionalTensor, conv2d } from "./nn.ts";
import { pad, reshape } from "./shape.ts";

type Pair = number | readonly [number, number];

function ints(op: string, name: string, v: number | readonly number[], n: number, min: number): number[] {
  const p = typeof v === "number" ? new Array<number>(n).fill(v) : [...v];
  if (p.length !== n || !p.every((x) => Number.isInteger(x) && x >= min)) {
    throw new RangeError(
      `${op}: ${name} must be ${n === 1 ? "an integer" : `${n} integers`} >= ${min}, got ${JSON.stringify(v)}`,
    );
  }
  return p;
}

function floatType(op: string, xs: readonly (Tensor | null)[]): "float32" | "float64" {
  const ts = xs.filter((t): t is Tensor => t !== null);
  const d = resultType(ts);
  if (d !== "float32" && d !== "float64") {
    throw new DTypeError(`${op}: expected float tensors, got ${ts.map((t) => t.dtype).join(", ")}`);
  }
  return d;
}

/** A result computed with a leading batch of one, without that batch dim (the unbatched forms). */
function unbatched(y: Tensor): Tensor {
  return reshape(y, y.shape.slice(1));
}

/** Options of `conv1d` (PyTorch defaults: stride 1, padding 0, dilation 1, groups 1). */
export interface Conv1dOpts {
  stride?: number;
  /** Zero padding on both ends, or "valid" (none) or "same" (output length = input length; stride 1). */
  padding?: number | "valid" | "same";
  dilation?: number;
  groups?: number;
}

/**
 * 1-d cross-correlation (PyTorch's `conv1d`): x [N, C, L] (or unbatched [C, L]), weight [O, C / groups, K],
 * bias [O] or null; the output is [N, O, L'] with L' = floor((L + 2 padding - dilation (K - 1) - 1) / stride) + 1.
 * `padding: "same"` pads dilation (K - 1) in total, the odd one after (as PyTorch). Runs as conv2d over an
 * [N, C, 1, L] view.
 *
 * @example
 * ```ts
 * conv1d(randn([8, 3, 100]), randn([16, 3, 5]), null, { padding: "same" }); // [8, 16, 100]
 * ```
 */
export function conv1d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv1dOpts = {}): Tensor {
  checkOptionalTensor("conv1d", "bias", bias, "conv1d(x, w, null, { padding: 1 })");
  const op = "conv1d";
  const [stride] = ints(op, "stride", opts.stride ?? 1, 1, 1);
  const [dilation] = ints(op, "dilation", opts.dilation ?? 1, 1, 1);
  const groups = opts.groups ?? 1;
  const p = opts.padding ?? 0;
  if (p !== "same" && p !== "valid") ints(op, "padding", p, 1, 0);
  if (x.ndim !== 2 && x.ndim !== 3) {
    throw new ShapeError(`${op}: input must be 3-d [N, C, L] or 2-d [C, L], got ${fmtShape(x.shape)}`);
  }
  if (x.ndim === 2) return unbatched(conv1d(reshape(x, [1, ...x.shape]), weight, bias, opts));
  if (weight.ndim !== 3) {
    throw new ShapeError(`${op}: weight must be 3-d [O, C/groups, K], got ${fmtShape(weight.shape)}`);
  }
  const [n, c, l] = x.shape;
  const [o, cg, k] = weight.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0 || o % groups !== 0 || cg * groups !== c) {
    throw new ShapeError(
      `${op}: weight ${fmtShape(weight.shape)} with groups=${groups} expects ${cg * groups} input channels (and output channels divisible by groups), input ${fmtShape(x.shape)} has ${c}`,
    );
  }
  const b = bias ?? null;
  if (b !== null && (b.ndim !== 1 || b.shape[0] !== o)) {
    throw new ShapeError(`${op}: bias must have shape [${o}], got ${fmtShape(b.shape)}`);
  }
  floatType(op, [x, weight, b]);
  let xs = x;
  let padding = 0;
  if (p === "same") {
    if (stride !== 1) throw new RangeError(`${op}: padding "same" needs stride 1, got stride ${stride}`);
    const total = dilation * (k - 1);
    padding = Math.floor(total / 2);
    if (total % 2 === 1) xs = pad(x, [0, 1]); // the odd one after, as explicit zero padding
  } else if (p !== "valid") padding = p;
  const lOut = Math.floor((xs.shape[2] + 2 * padding - dilation * (k - 1) - 1) / stride) + 1;
  if (lOut <= 0) {
    throw new ShapeError(
      `${op}: kernel size ${k} (dilation ${dilation}) is larger than the padded input length ${l + 2 * padding} (input ${fmtShape(x.shape)}, weight ${fmtShape(weight.shape)})`,
    );
  }
  const y = conv2d(reshape(xs, [n, c, 1, xs.shape[2]]), reshape(weight, [o, cg, 1, k]), b, {
    stride: [1, stride],
    padding: [0, padding],
    dilation: [1, dilation],
    groups,
  });
  return reshape(y, [n, o, lOut]);
}

/** Options of `convTranspose2d` (PyTorch defaults: stride 1, padding 0, outputPadding 0, dilation 1, groups 1). */
export interface ConvTranspose2dOpts {
  stride?: Pair;
  /** Rows and columns cropped from each side of the full transposed output (dilation (k - 1) - padding zero
   * padding of the equivalent direct convolution). */
  padding?: Pair;
  /** Extra rows/columns added after the output (each smaller than the stride or the dilation). */
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/**
 * 2-d transposed convolution (PyTorch's `conv_transpose2d`, the gradient of conv2d with respect to its input):
 * x [N, Cin, H, W] (or unbatched [Cin, H, W]), weight [Cin, Cout / groups, KH, KW], bias [Cout] or null;
 * the output is [N, Cout, H', W'] with H' = (H - 1) stride - 2 padding + dilation (KH - 1) + outputPadding + 1.
 * Runs as the conv2dBackInput primitive, whose derivatives are conv2d and conv2dBackWeight.
 *
 * @example
 * ```ts
 * convTranspose2d(randn([1, 8, 7, 7]), randn([8, 4, 3, 3]), null, { stride: 2, padding: 1, outputPadding: 1 }); // [1, 4, 14, 14]
 * ```
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  opts: ConvTranspose2dOpts = {},
): Tensor {
  checkOptionalTensor("convTranspose2d", "bias", bias, "convTranspose2d(x, w, null, { stride: 2 })");
  return convTransposeNd("convTranspose2d", 2, x, weight, bias ?? null, opts);
}

/** Options of `convTranspose1d` (PyTorch defaults: stride 1, padding 0, outputPadding 0, dilation 1, groups 1). */
export interface ConvTranspose1dOpts {
  stride?: number;
  padding?: number;
  outputPadding?: number;
  dilation?: number;
  groups?: number;
}

/**
 * 1-d transposed convolution (PyTorch's `conv_transpose1d`): x [N, Cin, L] (or unbatched [Cin, L]), weight
 * [Cin, Cout / groups, K], bias [Cout] or null; the output is [N, Cout, L'] with
 * L' = (L - 1) stride - 2 padding + dilation (K - 1) + outputPadding + 1.
 */
export function convTranspose1d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  opts: ConvTranspose1dOpts = {},
): Tensor {
  checkOptionalTensor("convTranspose1d", "bias", bias, "convTranspose1d(x, w, null, { stride: 2 })");
  return convTransposeNd("convTranspose1d", 1, x, weight, bias ?? null, opts);
}

function convTransposeNd(
  op: string,
  nd: 1 | 2,
  x: Tensor,
  weight: Tensor,
  b: Tensor | null,
  opts: ConvTranspose2dOpts | ConvTranspose1dOpts,
): Tensor {
  const stride = ints(op, "stride", opts.stride ?? 1, nd, 1);
  const padding = ints(op, "padding", opts.padding ?? 0, nd, 0);
  const outPad = ints(op, "outputPadding", opts.outputPadding ?? 0, nd, 0);
  const dilation = ints(op, "dilation", opts.dilation ?? 1, nd, 1);
  const groups = opts.groups ?? 1;
  const dims = nd === 1 ? "[N, C, L] or 2-d [C, L]" : "[N, C, H, W] or 3-d [C, H, W]";
  if (x.ndim === nd + 1)
    return unbatched(convTransposeNd(op, nd, reshape(x, [1, ...x.shape]), weight, b, opts));
  if (x.ndim !== nd + 2)
    throw new ShapeError(`${op}: input must be ${nd + 2}-d ${dims}, got ${fmtShape(x.shape)}`);
  if (weight.ndim !== nd + 2) {
    throw new ShapeError(
      `${op}: weight must be ${nd + 2}-d [Cin, Cout/groups, ${nd === 1 ? "K" : "KH, KW"}], got ${fmtShape(weight.shape)}`,
    );
  }
  const [n, cin] = x.shape;
  const [wi, og] = weight.shape;
  if (wi !== cin) {
    throw new ShapeError(
      `${op}: weight ${fmtShape(weight.shape)} expects ${wi} input channels, input ${fmtShape(x.shape)} has ${cin}`,
    );
  }
  if (!Number.isInteger(groups) || groups < 1 || cin % groups !== 0) {
    throw new ShapeError(
      `${op}: groups=${groups} must be a positive integer dividing the input channels ${cin}`,
    );
  }
  const cout = og * groups;
  if (b !== null && (b.ndim !== 1 || b.shape[0] !== cout)) {
    throw new ShapeError(`${op}: bias must have shape [${cout}], got ${fmtShape(b.shape)}`);
  }
  for (let i = 0; i < nd; i++) {
    if (outPad[i] >= stride[i] && outPad[i] >= dilation[i]) {
      throw new RangeError(
        `${op}: outputPadding ${outPad[i]} must be smaller than the stride ${stride[i]} or the dilation ${dilation[i]} (as PyTorch)`,
      );
    }
  }
  const d = floatType(op, [x, weight, b]);
  const spatial = x.shape.slice(2);
  const ks = weight.shape.slice(2);
  const outSp = spatial.map(
    (h, i) => (h - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ks[i] - 1) + outPad[i] + 1,
  );
  if (outSp.some((v) => v <= 0)) {
    throw new ShapeError(
      `${op}: the output size would be ${fmtShape(outSp)} (input ${fmtShape(x.shape)}, weight ${fmtShape(weight.shape)}, stride ${stride}, padding ${padding}, dilation ${dilation}, outputPadding ${outPad}): not positive`,
    );
  }
  // as 2-d: a 1-d transposed convolution is one over [N, C, 1, L]
  const two = (v: number[], one: number): [number, number] => (nd === 1 ? [one, v[0]] : [v[0], v[1]]);
  const x4 = X.castTo(nd === 1 ? reshape(x, [n, cin, 1, spatial[0]]) : x, d);
  const w4 = X.castTo(nd === 1 ? reshape(weight, [wi, og, 1, ks[0]]) : weight, d);
  const [sh, sw] = two(stride, 1);
  const [dh, dw] = two(dilation, 1);
  const [ph, pw] = two(padding, 0);
  const [oph, opw] = two(outPad, 0);
  const [h, w] = two(spatial, 1);
  const [oh, ow] = two(outSp, 1);
  let y: Tensor;
  if (oph < sh && opw < sw) {
    // the output size is one conv2d maps back onto the input's: conv2dBackInput gives it directly
    y = X.conv2dBackInput(x4, w4, { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups }, [
      n,
      cout,
      oh,
      ow,
    ]);
  } else {
    // an output padding reaching a stride (allowed below the dilation): the full transposed output, then crop
    // the padding and append the zero rows/columns of outputPadding that no input reaches
    const [kh, kw] = two(ks, 1);
    const full = [n, cout, (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1];
    const f = X.conv2dBackInput(
      x4,
      w4,
      { stride: [sh, sw], padding: [0, 0], dilation: [dh, dw], groups },
      full,
    );
    y = pad(f, [-pw, opw - pw, -ph, oph - ph]);
  }
  if (b !== null) y = y.add(reshape(X.castTo(b, d), [1, cout, 1, 1]));
  return nd === 1 ? reshape(y, [n, cout, outSp[0]]) : y;
}
