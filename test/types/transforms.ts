/**
 * Type-level tests of the transforms (grad, valueAndGrad, vjp, jvp, linearize, hvp, jacrev, jacfwd, hessian): checked by
 * `tsc --noEmit` (npm run typecheck, part of npm test), never run. Each `expectType<Equal<A, B>>()` fails to
 * compile unless the inferred type A is exactly B, and each `@ts-expect-error` fails to compile if the line
 * below it type-checks. The functions are only declared inside `never`-called wrappers, so nothing executes.
 */
import {
  grad,
  hessian,
  hvp,
  jacfwd,
  jacrev,
  jvp,
  linearize,
  type Tensor,
  tensor,
  valueAndGrad,
  vjp,
  vmap,
} from "../../src/index.ts";

/** True when A and B are mutually assignable in the strict sense (the usual identity check on generic functions). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

type Params = { w: Tensor; b: Tensor; layers: [Tensor, Tensor] };

export function checks(x: Tensor, y: Tensor, p: Params): void {
  // grad of a one-argument function: a Tensor, not any
  const g1 = grad((a: Tensor) => a.mul(a).sum())(x);
  expectType<Equal<typeof g1, Tensor>>();

  // argnums picks the argument, and an array of argnums gives a tuple in that order
  const g2 = grad((a: Tensor, q: Params) => a.sum().add(q.w.sum()), { argnums: 1 })(x, p);
  expectType<Equal<typeof g2, Params>>();
  const g3 = grad((a: Tensor, q: Params) => a.sum().add(q.b.sum()), { argnums: [1, 0] })(x, p);
  expectType<Equal<typeof g3, [Params, Tensor]>>();

  // pytrees: the gradient has the parameter's structure
  const loss = (q: Params, input: Tensor) => q.layers[0].matmul(input).add(q.b).sum();
  const gp = grad(loss)(p, x);
  expectType<Equal<typeof gp, Params>>();
  expectType<Equal<typeof gp.layers, [Tensor, Tensor]>>();

  // a number argument is accepted where a Tensor is declared, and a number parameter has a Tensor gradient
  const gn = grad((a: Tensor) => a.mul(a))(3);
  expectType<Equal<typeof gn, Tensor>>();
  const gnum = grad((s: number, a: Tensor) => a.mul(s).sum())(2, x);
  expectType<Equal<typeof gnum, Tensor>>();

  // nested grad keeps the types
  const g2nd = grad((a: Tensor) => grad((b: Tensor) => b.pow(3).sum())(a).sum())(x);
  expectType<Equal<typeof g2nd, Tensor>>();

  // valueAndGrad: [value, gradient], and with hasAux [value, gradient, aux] with aux's own type
  const vg = valueAndGrad((a: Tensor) => a.sum())(x);
  expectType<Equal<typeof vg, [Tensor, Tensor]>>();
  const vga = valueAndGrad((a: Tensor) => [a.sum(), { count: 3, label: "x" }] as const, { hasAux: true })(x);
  expectType<Equal<typeof vga, [Tensor, Tensor, { readonly count: 3; readonly label: "x" }]>>();
  const ga = grad((a: Tensor) => [a.sum(), "aux"] as [Tensor, string], { hasAux: true })(x);
  expectType<Equal<typeof ga, [Tensor, string]>>();

  // vjp: the output's type, and a pullback from a cotangent of that type to one gradient per argument
  const [out, back] = vjp((a: Tensor, q: Params) => ({ s: a.sin(), t: q.w }), x, p);
  expectType<Equal<typeof out, { s: Tensor; t: Tensor }>>();
  const cts = back({ s: x, t: y });
  expectType<Equal<typeof cts, [Tensor, Params]>>();

  // jvp and linearize: output and tangent of the output's type
  const [yv, dy] = jvp((a: Tensor, b: Tensor) => [a.mul(b), a] as [Tensor, Tensor], [x, y], [y, x]);
  expectType<Equal<typeof yv, [Tensor, Tensor]>>();
  expectType<Equal<typeof dy, [Tensor, Tensor]>>();
  const [lin, fJvp] = linearize((a: Tensor) => a.exp(), x);
  expectType<Equal<typeof lin, Tensor>>();
  expectType<Equal<ReturnType<typeof fJvp>, Tensor>>();

  // hvp
  const hv = hvp((q: Params) => q.w.sum(), p, p);
  expectType<Equal<typeof hv, Params>>();

  // jacrev, jacfwd, hessian: the output's structure, each leaf replaced by the argument's structure
  const j1 = jacrev((a: Tensor) => a.sin())(x);
  expectType<Equal<typeof j1, Tensor>>();
  const jn = jacfwd((a: Tensor) => a.square())(3);
  expectType<Equal<typeof jn, Tensor>>();
  const j2 = jacfwd((a: Tensor, q: Params) => ({ s: a.sum(), t: q.w }), { argnums: [0, 1] })(x, p);
  expectType<Equal<typeof j2, { s: [Tensor, Params]; t: [Tensor, Params] }>>();
  const j3 = jacrev((q: Params) => [q.w, q.b] as [Tensor, Tensor])(p);
  expectType<Equal<typeof j3, [Params, Params]>>();
  const j4 = jacrev((a: Tensor) => [a.exp(), "note"] as [Tensor, string], { hasAux: true })(x);
  expectType<Equal<typeof j4, [Tensor, string]>>();
  const h1 = hessian((a: Tensor) => a.square().sum())(x);
  expectType<Equal<typeof h1, Tensor>>();
  const h2 = hessian((a: Tensor, b: Tensor) => a.mul(b).sum(), { argnums: [0, 1] })(x, y);
  expectType<Equal<typeof h2, [[Tensor, Tensor], [Tensor, Tensor]]>>();

  // what the types reject
  // @ts-expect-error grad needs a function returning a Tensor (a scalar), not a string
  grad((a: Tensor) => a.toString());
  // @ts-expect-error the gradient function takes f's parameters: a string is not a Tensor
  grad((a: Tensor) => a.sum())("x");
  // @ts-expect-error and as many as f declares
  grad((a: Tensor, b: Tensor) => a.add(b).sum())(x);
  // @ts-expect-error a pytree argument must have the parameter's structure
  grad(loss)({ w: x, b: x }, x);
  // @ts-expect-error hasAux needs f to return [value, aux]
  valueAndGrad((a: Tensor) => a.sum(), { hasAux: true })(x)[2].foo;
  // @ts-expect-error the vjp cotangent has the output's structure
  back(x);
  // @ts-expect-error jvp's tangents have the primals' structure
  jvp((a: Tensor, b: Tensor) => a.add(b), [x, y], [x]);
  // @ts-expect-error a jacobian function takes f's parameters too
  jacrev((a: Tensor) => a.sin())("x");
  // @ts-expect-error the gradient of a Tensor argument is not a number
  const wrong: number = grad((a: Tensor) => a.sum())(x);
  void wrong;
  void tensor;
}

// A transform written inside another's call: vmap's parameters come from the function it maps, not from the
// outer call's constraint (jvp(vmap(f), [x], [t]) once typed vmap(f) as (...args: never[]) => R).
function _nested(): void {
  const perRow = (r: Tensor) => r.sum();
  const xs = tensor([[1, 2]]);
  const [, tOut] = jvp(vmap(perRow), [xs], [xs]);
  const _t: Tensor = tOut;
  linearize(vmap(perRow), xs);
}
