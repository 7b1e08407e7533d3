/**
 * Elementwise primitives: unary math, binary arithmetic, comparisons and logic, select and cast.
 * Operands of binary primitives arrive with equal shapes (the ops layer broadcasts with `broadcastP`) and,
 * for arithmetic, equal dtypes (the ops layer promotes). *
 * Each primitive's binder (JAX's lax) is declared here too. Rules use only binders and Tensor methods; a method
 * delegates to src/ops, which binds these primitives: the Tensor-facade loop, closed at call time only (see
 * docs/architecture.md, "Layers").
 */
import {
  type Activation,
  type BinaryOp,
  type FusedProgram,
  UNARY_OPS,
  type UnaryOp,
} from "../backend/backend.ts";
import { fusedProgram } from "../backend/fused.ts";
import type { Aval, Derivative, Primitive } from "../core/primitive.ts";
import { isZero, Zero } from "../core/primitive.ts";
import { evalTrace } from "../core/eval.ts";
import { bind, state, topTrace } from "../core/trace.ts";
import { type DType, isFloat } from "../dtype.ts";
import { DTypeError, ShapeError } from "../errors.ts";
import { fmtShape, shapesEqual } from "../shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { backendFor, castKernel } from "./half.ts";
import { allocOut, getBackend, instantiate, viewOf } from "./impl.ts";
import { batchAll } from "./batching.ts";
import { elementwise, linear, rule, unaryRule, zeroDerivative } from "./rules.ts";

/** The unary ops defined on float dtypes only: all but these, which int32 has too (and `not`, on bool). */
const FLOAT_ONLY = new Set<UnaryOp>(
  UNARY_OPS.filter((op) => !["neg", "abs", "sign", "relu", "floor", "ceil", "round", "not"].includes(op)),
);

function unary(
  op: UnaryOp,
  derivative: Derivative<null>,
  atKink?: Primitive<null>["atKink"],
): Primitive<null> {
  return {
    name: op,
    abstract([x]) {
      if (
        op === "not" ? x.dtype !== "bool" : x.dtype === "bool" || (FLOAT_ONLY.has(op) && !isFloat(x.dtype))
      ) {
        throw new DTypeError(`${op}: unsupported dtype ${x.dtype}`);
      }
      return x;
    },
    impl([x], _p, out) {
      const o = allocOut(out);
      getBackend().unary(op, viewOf(x), o._data!);
      return o;
    },
    derivative,
    // elementwise: unbatched operands broadcast over the batch, the primitive bound once
    batch: batchAll<null>(),
    atKink,
  };
}

/** A unary primitive whose derivative is a function of its input: d op(x) = df(x) dx (x is saved). */
function ofInput(
  op: UnaryOp,
  df: (x: Tensor) => Tensor,
  atKink?: Primitive<null>["atKink"],
): Primitive<null> {
  return unary(op, elementwise(df, "x"), atKink);
}

/** A unary primitive whose derivative is a function of its output: d op(x) = df(op(x)) dx (op(x) is saved). */
function ofOutput(op: UnaryOp, df: (y: Tensor) => Tensor): Primitive<null> {
  return unary(
    op,
    elementwise((_x, y) => df(y), "out"),
  );
}

const anyEqualZero = ([x]: readonly Tensor[]) => x.eq(0).any().item() !== 0;

// d(-x) = -dx
export const negP = unary(
  "neg",
  linear<null>((ct) => [ct.neg()]),
);
// d|x| = sign(x) dx (0 at x = 0, the subgradient convention)
export const absP = ofInput("abs", (x) => x.sign(), anyEqualZero);
export const signP = unary("sign", zeroDerivative);
// d exp(x) = exp(x) dx
export const expP = ofOutput("exp", (y) => y);
// d log(x) = dx / x
export const logP = ofInput("log", (x) => x.reciprocal());
// d log1p(x) = dx / (1 + x)
export const log1pP = ofInput("log1p", (x) => x.add(1).reciprocal());
// d expm1(x) = exp(x) dx = (expm1(x) + 1) dx
export const expm1P = ofOutput("expm1", (y) => y.add(1));
// d sqrt(x) = dx / (2 sqrt(x))
export const sqrtP = ofOutput("sqrt", (y) => y.reciprocal().mul(0.5));
// d sin(x) = cos(x) dx
export const sinP = ofInput("sin", (x) => x.cos());
// d cos(x) = -sin(x) dx
export const cosP = ofInput("cos", (x) => x.sin().neg());
// d tan(x) = (1 + tan(x)^2) dx
export const tanP = ofOutput("tan", (y) => y.mul(y).add(1));
// d asin(x) = dx / sqrt(1 - x^2)
export const asinP = ofInput("asin", (x) => x.mul(x).neg().add(1).rsqrt());
// d acos(x) = -dx / sqrt(1 - x^2)
export const acosP = ofInput("acos", (x) => x.mul(x).neg().add(1).rsqrt().neg());
// d atan(x) = dx / (1 + x^2)
export const atanP = ofInput("atan", (x) => x.mul(x).add(1).reciprocal());
// d sinh(x) = cosh(x) dx
export const sinhP = ofInput("sinh", (x) => x.cosh());
// d cosh(x) = sinh(x) dx
export const coshP = ofInput("cosh", (x) => x.sinh());
// d asinh(x) = dx / sqrt(x^2 + 1)
export const asinhP = ofInput("asinh", (x) => x.mul(x).add(1).rsqrt());
// d acosh(x) = dx / sqrt(x^2 - 1)
export const acoshP = ofInput("acosh", (x) => x.mul(x).sub(1).rsqrt());
// d atanh(x) = dx / (1 - x^2)
export const atanhP = ofInput("atanh", (x) => x.mul(x).neg().add(1).reciprocal());
// d log2(x) = dx / (x ln 2)
export const log2P = ofInput("log2", (x) => x.mul(Math.LN2).reciprocal());
// d log10(x) = dx / (x ln 10)
export const log10P = ofInput("log10", (x) => x.mul(Math.LN10).reciprocal());
/** The program t * gelu'(x) of `Backend.fused` (inputs x, t), per float dtype, built once. */
const geluGradPrograms = new Map<string, FusedProgram>();
function geluGradProgram(dtype: "float32" | "float64"): FusedProgram {
  let p = geluGradPrograms.get(dtype);
  if (p === undefined) {
    p = fusedProgram(dtype, [
      { kind: "input", index: 0 },
      { kind: "input", index: 1 },
      { kind: "unary", op: "geluDeriv", a: 0 },
      { kind: "binary", op: "mul", a: 1, b: 2 },
    ]);
    geluGradPrograms.set(dtype, p);
  }
  return p;
}

/**
 * t * gelu'(x), the tangent or cotangent of gelu. Evaluated on concrete values (the eager backward pass), on a
 * backend that runs fused programs: one kernel, as PyTorch's GeluBackward, with the bits of the two ops (the
 * fused kernels compute each element as the unfused ones do) but one pass over memory instead of two and no
 * gelu'(x) temporary: in the bench Transformer's backward the two passes took 6-7 ms per layer on one core of an
 * Intel Xeon, x and the cotangent being cold by then. Under a transform or a jit trace: the two ops (jit fuses
 * them itself; higher orders differentiate them).
 */
function geluGrad(x: Tensor, t: Tensor): Tensor {
  const be = getBackend();
  if (
    be.fused !== undefined &&
    (x.dtype === "float32" || x.dtype === "float64") &&
    t.dtype === x.dtype &&
    shapesEqual(x.shape, t.shape) &&
    state.jitStage === null &&
    topTrace([x, t]) === evalTrace
  ) {
    const o = allocOut({ shape: x.shape, dtype: x.dtype });
    be.fused(geluGradProgram(x.dtype), [viewOf(x), viewOf(t)], [o._data!]);
    return o;
  }
  return t.mul(bind(geluDerivP, [x], null));
}

// d gelu(x) = (Phi(x) + x phi(x)) dx: geluDeriv on the saved input, fused with the product where it can be
export const geluP = unary(
  "gelu",
  unaryRule<null>(
    (x, t) => geluGrad(x, t),
    (ct, [x]) => [geluGrad(x!, ct)],
    { saveInputs: true, saveOutput: false },
  ),
);
// d geluDeriv(x) = (2 - x^2) phi(x) dx, phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
export const geluDerivP = ofInput("geluDeriv", (x) => {
  const x2 = x.mul(x);
  return x2
    .mul(-0.5)
    .exp()
    .mul(1 / Math.sqrt(2 * Math.PI))
    .mul(x2.neg().add(2));
});
/**
 * Rules of an activation whose derivative is a function of its output y (relu: [y > 0], tanh: 1 - y^2,
 * sigmoid: y (1 - y)): both directions are one fused `actGrad` kernel on the saved output.
 */
function throughOutput(act: Activation): Derivative<null> {
  return unaryRule<null>(
    (_x, t, out) => actGrad(act, out, t),
    (ct, _x, out) => [actGrad(act, out!, ct)],
    { saveInputs: false, saveOutput: true },
  );
}

// d tanh(x) = (1 - tanh(x)^2) dx
export const tanhP = unary("tanh", throughOutput("tanh"));
// d sigmoid(x) = s (1 - s) dx
export const sigmoidP = unary("sigmoid", throughOutput("sigmoid"));
// d erf(x) = 2 / sqrt(pi) exp(-x^2) dx
export const erfP = ofInput("erf", (x) =>
  x
    .mul(x)
    .neg()
    .exp()
    .mul(2 / Math.sqrt(Math.PI)),
);
// d relu(x) = [x > 0] dx = [relu(x) > 0] dx (0 at x = 0, the subgradient convention); a select in one kernel,
// not a multiply by a cast mask
export const reluP = unary("relu", throughOutput("relu"), anyEqualZero);
export const floorP = unary("floor", zeroDerivative);
export const ceilP = unary("ceil", zeroDerivative);
export const roundP = unary("round", zeroDerivative);
export const notP = unary("not", zeroDerivative);

const ARITH = new Set<BinaryOp>(["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2"]);
const FLOAT_ONLY_BINARY = new Set<BinaryOp>(["atan2"]);
const LOGIC = new Set<BinaryOp>(["and", "or", "xor"]);

function binary(
  op: BinaryOp,
  derivative: Derivative<null>,
  atKink?: Primitive<null>["atKink"],
): Primitive<null> {
  return {
    name: op,
    abstract([a, b]): Aval {
      if (!shapesEqual(a.shape, b.shape)) {
        throw new ShapeError(`internal: ${op} got shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
      }
      if (ARITH.has(op)) {
        if (a.dtype !== b.dtype || a.dtype === "bool" || (FLOAT_ONLY_BINARY.has(op) && !isFloat(a.dtype))) {
          throw new DTypeError(`${op}: unsupported dtypes ${a.dtype} and ${b.dtype}`);
        }
        return a;
      }
      if (LOGIC.has(op) && (a.dtype !== "bool" || b.dtype !== "bool")) {
        throw new DTypeError(`${op}: expected bool operands, got ${a.dtype} and ${b.dtype}`);
      }
      return { shape: a.shape, dtype: "bool" };
    },
    impl([a, b], _p, out) {
      const o = allocOut(out);
      getBackend().binary(op, viewOf(a), viewOf(b), o._data!);
      return o;
    },
    derivative,
    // elementwise: unbatched operands broadcast over the batch, the primitive bound once
    batch: batchAll<null>(),
    atKink,
  };
}

// d(a + b) = da + db
// (linear, but a symbolic-zero operand skips the kernel instead of adding instantiated zeros)
export const addP = binary(
  "add",
  rule<null>(
    (_, [ta, tb]) => (isZero(ta) ? tb : isZero(tb) ? ta : ta.add(tb)),
    (ct) => [ct, ct],
    { saveInputs: false },
  ),
);
// d(a - b) = da - db
export const subP = binary(
  "sub",
  rule<null>(
    (_, [ta, tb]) => (isZero(tb) ? ta : isZero(ta) ? tb.neg() : ta.sub(tb)),
    (ct) => [ct, ct.neg()],
    { saveInputs: false },
  ),
);
// d(a b) = da b + a db
export const mulP = binary(
  "mul",
  rule<null>(
    ([a, b], [ta, tb], out) => {
      const l = isZero(ta) ? null : ta.mul(b);
      const r = isZero(tb) ? null : a.mul(tb);
      return l === null ? (r ?? new Zero(out.shape, out.dtype)) : r === null ? l : l.add(r);
    },
    (ct, [a, b], _o, _p, needs) => [needs[0] ? ct.mul(b!) : ct, needs[1] ? ct.mul(a!) : ct],
  ),
);
// d(a / b) = da / b - (a / b) db / b
export const divP = binary(
  "div",
  rule<null>(
    ([, b], [ta, tb], out) => {
      if (isZero(ta)) return isZero(tb) ? new Zero(out.shape, out.dtype) : tb.mul(out).neg().div(b);
      return (isZero(tb) ? ta : ta.sub(tb.mul(out))).div(b);
    },
    (ct, [, b], out, _p, needs) => {
      const g = ct.div(b!);
      return [g, needs[1] ? g.mul(out!).neg() : g];
    },
    { saveOutput: true },
  ),
);
// d(a^b) = b a^(b-1) da + a^b log(a) db   (the log term is taken as 0 where a = 0)
function powPartials(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  needA: boolean,
  needB: boolean,
): [Tensor | null, Tensor | null] {
  const da = needA ? b.mul(a.pow(b.sub(1))) : null;
  if (!needB) return [da, null];
  const a0 = a.eq(0);
  return [da, out.mul(a.maskedFill(a0, 1).log().maskedFill(a0, 0))];
}
export const powP = binary(
  "pow",
  rule<null>(
    ([a, b], [ta, tb], out) => {
      const [da, db] = powPartials(a, b, out, !isZero(ta), !isZero(tb));
      const l = isZero(ta) ? null : ta.mul(da!);
      const r = isZero(tb) ? null : tb.mul(db!);
      return l === null ? r! : r === null ? l : l.add(r);
    },
    (ct, [a, b], out, _p, needs) => {
      const [da, db] = powPartials(a!, b!, out!, needs[0], needs[1]);
      return [da === null ? ct : ct.mul(da), db === null ? ct : ct.mul(db)];
    },
    { saveOutput: true },
  ),
);

/**
 * maximum/minimum: the derivative flows to the selected operand; at ties it is split equally (as PyTorch),
 * which is where the kink check reports.
 */
function selectRule(pick: (a: Tensor, b: Tensor) => Tensor): Derivative<null> {
  const weights = (a: Tensor, b: Tensor): [Tensor, Tensor] => {
    const wa = pick(a, b).to(a.dtype).add(a.eq(b).to(a.dtype).mul(0.5));
    return [wa, wa.neg().add(1)];
  };
  return rule<null>(
    ([a, b], [ta, tb]) => {
      const [wa, wb] = weights(a, b);
      return instantiate(ta).mul(wa).add(instantiate(tb).mul(wb));
    },
    (ct, [a, b]) => {
      const [wa, wb] = weights(a!, b!);
      return [ct.mul(wa), ct.mul(wb)];
    },
  );
}
const anyTie = ([a, b]: readonly Tensor[]) => a.eq(b).any().item() !== 0;
const TIE_SPLIT = "0.5 to each operand: at a tie the gradient is split equally";
export const maximumP: Primitive<null> = {
  ...binary(
    "maximum",
    selectRule((a, b) => a.gt(b)),
    anyTie,
  ),
  kinkDerivative: TIE_SPLIT,
};
export const minimumP: Primitive<null> = {
  ...binary(
    "minimum",
    selectRule((a, b) => a.lt(b)),
    anyTie,
  ),
  kinkDerivative: TIE_SPLIT,
};
// d atan2(y, x) = (x dy - y dx) / (x^2 + y^2)
export const atan2P = binary(
  "atan2",
  rule<null>(
    ([y, x], [ty, tx]) => {
      const l = isZero(ty) ? null : x.mul(ty);
      const r = isZero(tx) ? null : y.mul(tx);
      return (l === null ? r!.neg() : r === null ? l : l.sub(r)).div(x.mul(x).add(y.mul(y)));
    },
    (ct, [y, x], _o, _p, needs) => {
      const g = ct.div(x!.mul(x!).add(y!.mul(y!)));
      return [needs[0] ? g.mul(x!) : g, needs[1] ? g.mul(y!).neg() : g];
    },
  ),
);
export const eqP = binary("eq", zeroDerivative);
export const neP = binary("ne", zeroDerivative);
export const ltP = binary("lt", zeroDerivative);
export const leP = binary("le", zeroDerivative);
export const gtP = binary("gt", zeroDerivative);
export const geP = binary("ge", zeroDerivative);
export const andP = binary("and", zeroDerivative);
export const orP = binary("or", zeroDerivative);
export const xorP = binary("xor", zeroDerivative);

/** where(cond, a, b): linear in a and b. */
export const whereP: Primitive<null> = {
  name: "where",
  abstract([c, a, b]) {
    if (c.dtype !== "bool") throw new DTypeError(`where: condition must be bool, got ${c.dtype}`);
    if (!shapesEqual(c.shape, a.shape) || !shapesEqual(a.shape, b.shape) || a.dtype !== b.dtype) {
      throw new ShapeError(
        `internal: where got ${fmtShape(c.shape)}, ${fmtShape(a.shape)}, ${fmtShape(b.shape)}`,
      );
    }
    return a;
  },
  impl([c, a, b], _p, out) {
    const o = allocOut(out);
    backendFor(out.dtype).where(viewOf(c), viewOf(a), viewOf(b), o._data!);
    return o;
  },
  // d where(c, a, b) = where(c, da, db)
  derivative: rule<null>(
    ([c], [, ta, tb], out) =>
      isZero(ta) && isZero(tb) ? new Zero(out.shape, out.dtype) : where(c, instantiate(ta), instantiate(tb)),
    // where(c, ct, 0) rather than maskedFill(not c): no bool kernel on the residual (on webgpu a bool `not`
    // runs on the GPU, and a float64 backward on the host could then not read its result)
    (ct, [c], _o, _p, needs) => [
      ct,
      needs[1] ? where(c!, ct, instantiate(new Zero(ct.shape, ct.dtype))) : ct,
      needs[2] ? ct.maskedFill(c!, 0) : ct,
    ],
  ),
  batch: batchAll<null>(),
};

export interface CastParams {
  readonly dtype: DType;
}

/** Dtype conversion; differentiable between float dtypes (integer outputs are constants). */
export const castP: Primitive<CastParams> = {
  name: "cast",
  abstract([x], p) {
    return { shape: x.shape, dtype: p.dtype };
  },
  impl([x], _p, out) {
    const o = allocOut(out);
    castKernel(viewOf(x), o._data!);
    return o;
  },
  derivative: linear<CastParams>((ct, _x, _o, _p, _n, avals) => [castTo(ct, avals[0].dtype)]),
  batch: batchAll<CastParams>(),
};

export interface ActParams {
  readonly act: Activation;
}

function checkActOperands(op: string, xs: readonly Aval[]): Aval {
  const [x] = xs;
  if (!isFloat(x.dtype)) throw new DTypeError(`${op}: expected float tensors, got ${x.dtype}`);
  for (const y of xs.slice(1)) {
    if (!shapesEqual(x.shape, y.shape) || y.dtype !== x.dtype) {
      throw new ShapeError(
        `internal: ${op} got ${fmtShape(x.shape)} ${x.dtype} and ${fmtShape(y.shape)} ${y.dtype}`,
      );
    }
  }
  return x;
}

/**
 * The fused bias and activation act(x + b), or act(x) with one operand; b arrives broadcast to x's shape (its
 * broadcast's transpose sums the gradient back to the bias shape).
 */
export const biasActP: Primitive<ActParams> = {
  name: "biasAct",
  abstract: (xs) => checkActOperands("biasAct", xs),
  impl(xs, p, out) {
    const o = allocOut(out);
    getBackend().biasAct(p.act, viewOf(xs[0]), xs.length > 1 ? viewOf(xs[1]) : null, o._data!);
    return o;
  },
  // d act(x + b) = act'(x + b) (dx + db), the factor taken through the output by actGrad
  derivative: rule<ActParams>(
    (_xs, ts, out, p) => {
      const live = ts.filter((t): t is Tensor => !isZero(t));
      if (live.length === 0) return new Zero(out.shape, out.dtype);
      return actGrad(p.act, out, live.length === 1 ? live[0] : live[0].add(live[1]));
    },
    (ct, _xs, out, p, _needs, avals) => {
      const g = actGrad(p.act, out!, ct);
      return avals.map(() => g);
    },
    { saveInputs: false, saveOutput: true },
  ),
  batch: batchAll<ActParams>(),
  // relu's kink is x + b = 0
  atKink: (xs, _out, p) => p.act === "relu" && anyEqualZero([xs.length > 1 ? xs[0].add(xs[1]) : xs[0]]),
};

/** d/dy of actGrad(y, ct) = ct act'(x(y)): 0 for relu (piecewise constant), -2 y ct for tanh, (1 - 2y) ct for sigmoid. */
function actGradDy(act: Activation, y: Tensor, ct: Tensor, dy: Tensor): Tensor | null {
  if (act === "relu") return null;
  return dy.mul(ct).mul(act === "tanh" ? y.mul(-2) : y.mul(-2).add(1));
}

/**
 * An activation's backward in one kernel: ct * act'(x) written through the activation's output y. Linear in ct;
 * its own derivative in y keeps reverse-over-reverse and higher orders exact.
 */
export const actGradP: Primitive<ActParams> = {
  name: "actGrad",
  abstract: (xs) => checkActOperands("actGrad", xs),
  impl([y, ct], p, out) {
    const o = allocOut(out);
    getBackend().actGrad(p.act, viewOf(y), viewOf(ct), o._data!);
    return o;
  },
  derivative: rule<ActParams>(
    ([y, ct], [ty, tct], out, p) => {
      const a = isZero(tct) ? null : actGrad(p.act, y, tct);
      const b = isZero(ty) ? null : actGradDy(p.act, y, ct, ty);
      if (a === null) return b ?? new Zero(out.shape, out.dtype);
      return b === null ? a : a.add(b);
    },
    (g, [y, ct], _out, p, needs, avals) => [
      (needs[0] && actGradDy(p.act, y!, ct!, g)) || new Zero(avals[0].shape, avals[0].dtype),
      needs[1] ? actGrad(p.act, y!, g) : new Zero(avals[1].shape, avals[1].dtype),
    ],
  ),
  batch: batchAll<ActParams>(),
};

/** This module's primitives by name: src/prims/index.ts merges the modules' tables into the registry. */
// biome-ignore format: rows read better than one entry per line
export const elementwisePrimitives = {
  neg: negP, abs: absP, sign: signP, exp: expP, log: logP, log1p: log1pP, expm1: expm1P, sqrt: sqrtP, sin: sinP,
  cos: cosP, tan: tanP, tanh: tanhP, sigmoid: sigmoidP, erf: erfP, relu: reluP, biasAct: biasActP,
  actGrad: actGradP, floor: floorP, ceil: ceilP, round: roundP, not: notP, add: addP, sub: subP, mul: mulP,
  div: divP, pow: powP, maximum: maximumP, minimum: minimumP, atan2: atan2P, eq: eqP, ne: neP, lt: ltP, le: leP, gt: gtP, ge: geP,
  and: andP, or: orP, xor: xorP, where: whereP, cast: castP, asin: asinP, acos: acosP, atan: atanP, sinh: sinhP,
  cosh: coshP, asinh: asinhP, acosh: acoshP, atanh: atanhP, log2: log2P, log10: log10P, gelu: geluP,
  geluDeriv: geluDerivP,
};

// Binders (JAX's lax): bind one primitive with exact params (equal shapes, no promotion). Rules and the ops layer
// use these.
/** where(c, a, b) of equal shapes and one dtype. */
export function where(c: Tensor, a: Tensor, b: Tensor): Tensor {
  return bind(whereP, [c, a, b], null);
}
export function castTo(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? x : bind(castP, [x], { dtype });
}
export function biasAct(act: Activation, x: Tensor, b: Tensor | null): Tensor {
  return bind(biasActP, b === null ? [x] : [x, b], { act });
}
export function actGrad(act: Activation, y: Tensor, ct: Tensor): Tensor {
  return bind(actGradP, [y, ct], { act });
}
