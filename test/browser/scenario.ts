/**
 * What the browser test runs, shared by the page (bundled by esbuild, run in Chromium) and the Node side (which
 * runs the same functions on the js backend to get the values the browser must reproduce): the op table's
 * forward checks against the float64 references, nested derivatives, and a few MLP training steps.
 * Browser-safe: imports only the library's browser entry and the op table.
 */
import * as cr from "../../src/index.ts";
import { OPS } from "../opinfo.ts";
import { type Nd, nd } from "../ref.ts";

/** The first element where `got` is not within atol + rtol |want| of `want`, or null if all are. */
function mismatch(got: Nd, want: Nd, rtol: number, atol: number): string | null {
  if (got.shape.join() !== want.shape.join()) return `shape [${got.shape}], expected [${want.shape}]`;
  for (let i = 0; i < want.data.length; i++) {
    const a = got.data[i];
    const b = want.data[i];
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) return `element ${i}: got ${a}, expected ${b}`;
  }
  return null;
}

/**
 * Run every op of the op table on every sample in float64 and float32 on the current backend and compare with
 * the float64 reference (the tolerances of test/op-suites.ts). Returns the number of comparisons and the
 * failures, one line each.
 */
export function opForwardChecks(): { checked: number; failures: string[] } {
  const failures: string[] = [];
  let checked = 0;
  for (const op of OPS) {
    try {
      op.samples().forEach((xs, k) => {
        const m64 = mismatch(nd(op.fn(...xs)), op.ref(...xs.map(nd)), op.tol ?? 1e-10, 1e-12);
        if (m64 !== null) failures.push(`${op.name} sample ${k} float64: ${m64}`);
        const xs32 = xs.map((x) => x.to("float32"));
        const m32 = mismatch(nd(op.fn(...xs32)), op.ref(...xs32.map(nd)), 2e-5, 2e-5);
        if (m32 !== null) failures.push(`${op.name} sample ${k} float32: ${m32}`);
        checked += 2;
      });
    } catch (e) {
      failures.push(`${op.name}: threw ${e instanceof Error ? e.message : e}`);
    }
  }
  return { checked, failures };
}

/**
 * Nested derivatives in float64: d3/dx3 x^4 at 2 (= 48), d2/dx2 sin at 1 (= -sin 1), the Hessian of
 * x^T A x (= A + A^T) and d/dx [x d/dy (x + y)] at 3 (= 1: no perturbation confusion).
 */
export function nestedGrads(): { third: number; secondSin: number; hessian: number[]; confusion: number } {
  const f64 = { dtype: "float64" as const };
  const third = cr
    .grad(cr.grad(cr.grad((z: cr.Tensor) => z.pow(4))))(cr.tensor(2, f64))
    .item();
  const secondSin = cr
    .grad(cr.grad((z: cr.Tensor) => z.sin()))(cr.tensor(1, f64))
    .item();
  const A = cr.tensor(
    [
      [1, 2],
      [3, 4],
    ],
    f64,
  );
  const h = cr.hessian((z: cr.Tensor) => z.matmul(A).dot(z))(cr.tensor([1, 1], f64));
  const confusion = cr
    .grad((a: cr.Tensor) => a.mul(cr.grad((b: cr.Tensor) => a.add(b))(cr.tensor(1, f64))))(cr.tensor(3, f64))
    .item();
  return { third, secondSin, hessian: Array.from(h.dataSync(), Number), confusion };
}

/**
 * `steps` Adam steps of a 16-32-4 MLP with cross-entropy on 64 fixed random examples, seeded: the losses
 * before each step, and the first logits of the trained model (float32).
 */
export function mlpSteps(steps: number): { losses: number[]; logits: number[] } {
  cr.manualSeed(7);
  const g = new cr.Generator(11);
  const x = cr.tensor(Array.from({ length: 64 * 16 }, () => g.normal())).reshape([64, 16]);
  const y = cr.tensor(
    Array.from({ length: 64 }, (_, i) => i % 4),
    { dtype: "int32" },
  );
  const model = new cr.nn.Sequential(new cr.nn.Linear(16, 32), new cr.nn.ReLU(), new cr.nn.Linear(32, 4));
  const opt = new cr.optim.Adam(model.parameters(), { lr: 0.01 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const loss = cr.nn.crossEntropy(model.call(x), y);
    losses.push(loss.item());
    loss.backward();
    opt.step();
  }
  const logits = cr.noGrad(() => model.call(x.narrow(0, 0, 2)));
  return { losses, logits: Array.from(logits.dataSync(), Number) };
}
