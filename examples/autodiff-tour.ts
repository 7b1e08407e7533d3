/**
 * A tour of every autodiff mode in chainrule. Run: npx tsx examples/autodiff-tour.ts
 */
import {
  checkKinks,
  checkpoint,
  customVjp,
  grad,
  gradCheck,
  hessian,
  hvp,
  jacfwd,
  jacrev,
  jvp,
  linearize,
  randn,
  type Tensor,
  tensor,
  valueAndGrad,
  vjp,
} from "../src/index.ts";

const f64 = { dtype: "float64" as const };
const show = (label: string, v: unknown) =>
  console.log(`${label.padEnd(44)} ${v instanceof Object && "toString" in v ? String(v) : v}`);

// 1. Eager reverse mode, PyTorch style
const x = tensor([1, 2, 3], { requiresGrad: true });
const loss = x.mul(x).sum();
loss.backward();
show("eager: d/dx sum(x^2) at [1,2,3]", x.grad);

// 2. Functional reverse mode, JAX style: f(x) = 10 log(1 + exp(-2x)) from the lectures
const f = (z: Tensor) => z.mul(-2).exp().add(1).log().mul(10);
show("grad of 10 log(1+exp(-2x)) at 0", grad(f)(tensor(0, f64)));
const [value, g] = valueAndGrad((z: Tensor) => z.sin().sum())(tensor([0, 1], f64));
show("valueAndGrad of sum(sin x) at [0, 1]", `${value.item()} ${g}`);
const [out, back] = vjp((a: Tensor, b: Tensor) => a.mul(b).add(b).mul(3), tensor(2, f64), tensor(5, f64));
show(
  "vjp of l(x,y) = 3(xy + y) at (2, 5)",
  `l = ${out.item()}, [dl/dx, dl/dy] = ${(back(tensor(1, f64)) as Tensor[]).map((t) => t.item())}`,
);

// 3. Forward mode: dual numbers, f(x, y) = x^2 + log y
const [fv, ft] = jvp(
  (a: Tensor, b: Tensor) => a.square().add(b.log()),
  [tensor(3, f64), tensor(2, f64)],
  [tensor(1, f64), tensor(0, f64)],
);
show("jvp of x^2 + log y at (3, 2) along x", `${fv.item()} ${ft.item()}`);
const [, lin] = linearize((z: Tensor) => z.sin().mul(z), tensor([1, 2], f64));
show("linearize x sin x, applied to [1, 0]", lin(tensor([1, 0], f64)));

// 4. Any nesting
show("d^3/dx^3 x^4 at 2 (grad of grad of grad)", grad(grad(grad((z: Tensor) => z.pow(4))))(tensor(2, f64)));
const A = tensor(
  [
    [1, 2],
    [3, 4],
  ],
  f64,
);
show("hessian of x^T A x (= A + A^T)", hessian((z: Tensor) => z.matmul(A).dot(z))(tensor([1, 1], f64)));
show(
  "hvp of sum(x^3) at [1, 2] with v = [1, 1]",
  hvp((z: Tensor) => z.pow(3).sum(), tensor([1, 2], f64), tensor([1, 1], f64)),
);
show("jacfwd of x^2", jacfwd((z: Tensor) => z.square())(tensor([1, 2], f64)));
show("jacrev of x^2", jacrev((z: Tensor) => z.square())(tensor([1, 2], f64)));
const confusion = (a: Tensor) => a.mul(grad((b: Tensor) => a.add(b))(tensor(1, f64)));
show("perturbation confusion d/dx[x d/dy(x+y)]", grad(confusion)(tensor(3, f64)));

// 5. Checkpointing, custom rules, stopGradient
const block = checkpoint((z: Tensor) => z.tanh().mul(z).sin());
show("grad through a checkpointed block", grad((z: Tensor) => block(z).sum())(tensor([1, 2], f64)));
const ste = customVjp((z: Tensor) => z.round(), {
  fwd: (z: Tensor) => [z.round(), null],
  bwd: (_r, ct: Tensor) => [ct],
});
show("straight-through estimator: grad of round", grad((z: Tensor) => ste(z).sum())(tensor([0.3, 1.7], f64)));

// 6. Numerical checks and the kink check
const report = gradCheck((z: Tensor) => z.tanh().matmul(z.T).sum(), [randn([3, 2], f64)]);
show(
  "gradCheck of sum(tanh(X) X^T)",
  `ok=${report.ok}, worst error ratio ${report.worstRatio.toExponential(2)}`,
);
const { result, kinks } = checkKinks(() => grad((z: Tensor) => z.relu().sub(z.neg().relu()))(tensor(0, f64)));
show("d/dx [relu(x) - relu(-x)] at 0 (truly 1)", `${result.item()}, kink reports: ${kinks.length}`);
for (const k of kinks) console.log(`  kink: ${k.message}`);
