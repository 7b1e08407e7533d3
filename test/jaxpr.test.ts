/**
 * Programs as data (makeJaxpr / evalJaxpr): the lectures' hand-derived programs and the programs of their
 * gradients (the adjoint equations), printing, pytrees, constants and literals, nested sub-programs for
 * checkpoint/customJvp/customVjp, composition with every transform, and the errors of tracing with abstract values.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AutodiffError,
  checkpoint,
  customJvp,
  customVjp,
  DTypeError,
  evalJaxpr,
  grad,
  jvp,
  Literal,
  linearize,
  makeJaxpr,
  type Program,
  randn,
  ShapeError,
  type Tensor,
  tensor,
  type Var,
  vjp,
  vmap,
} from "../src/index.ts";
import { BatchNorm2d, crossEntropy, Linear, ReLU, Sequential } from "../src/nn/index.ts";

const x1x2 = (x1: Tensor, x2: Tensor) => x1.sin().add(x1.mul(x2));

/** Equations as [name, input atoms as "in<i>" / "eq<j>" / literal value] for structural assertions. */
function wiring(p: Program): [string, string[]][] {
  const where = (a: Var | Literal): string => {
    if (a instanceof Literal) return `lit ${a.value.dataSync()[0]}`;
    const i = p.invars.indexOf(a);
    if (i >= 0) return `in${i}`;
    const c = p.constvars.indexOf(a);
    if (c >= 0) return `const${c}`;
    return `eq${p.eqns.findIndex((e) => e.outputs.includes(a))}`;
  };
  return p.eqns.map((e) => [e.name, e.inputs.map(where)]);
}

describe("the lectures' programs", () => {
  test("sin(x1) + x1*x2: three equations wired as in the lecture's graph", () => {
    const p = makeJaxpr(x1x2)(tensor(1), tensor(2));
    assert.deepEqual(wiring(p), [
      ["sin", ["in0"]],
      ["mul", ["in0", "in1"]],
      ["add", ["eq0", "eq1"]],
    ]);
    assert.equal(p.outs[0], p.eqns[2].outputs[0]);
    assert.deepEqual(
      p.invars.map((v) => [v.shape, v.dtype]),
      [
        [[], "float32"],
        [[], "float32"],
      ],
    );
    assert.equal(p.eqns[0].prim?.name, "sin");
    assert.equal(
      String(p),
      [
        "{ lambda ; a:f32[], b:f32[] . let",
        "    c:f32[] = sin a",
        "    d:f32[] = mul a b",
        "    e:f32[] = add c d",
        "  in (e) }",
      ].join("\n"),
    );
  });

  test("grad of sin(x1) + x1*x2: the forward sweep, then the adjoints x2 + cos(x1) and x1", () => {
    const p = makeJaxpr(grad(x1x2, { argnums: [0, 1] }))(tensor(1), tensor(2));
    assert.equal(
      String(p),
      [
        "{ lambda ; a:f32[], b:f32[] . let",
        "    c:f32[] = sin a",
        "    d:f32[] = mul a b",
        "    e:f32[] = add c d",
        "    f:f32[] = mul 1.0:f32[] b",
        "    g:f32[] = mul 1.0:f32[] a",
        "    h:f32[] = cos a",
        "    i:f32[] = mul 1.0:f32[] h",
        "    j:f32[] = add f i",
        "  in (j, g) }",
      ].join("\n"),
    );
    // x1bar = 1*x2 + 1*cos(x1) (eq 7 adds the mul-adjoint eq 3 and the sin-adjoint eq 6); x2bar = 1*x1 (eq 4)
    const w = wiring(p);
    assert.deepEqual(w.slice(3), [
      ["mul", ["lit 1", "in1"]],
      ["mul", ["lit 1", "in0"]],
      ["cos", ["in0"]],
      ["mul", ["lit 1", "eq5"]],
      ["add", ["eq3", "eq6"]],
    ]);
    assert.equal(p.outs[0], p.eqns[7].outputs[0]);
    assert.equal(p.outs[1], p.eqns[4].outputs[0]);
    const [g1, g2] = evalJaxpr(p, tensor(1), tensor(2)) as Tensor[];
    assert.ok(Math.abs(g1.item() - (2 + Math.cos(1))) < 1e-6);
    assert.equal(g2.item(), 1);
  });

  test("x^2 + log y and its adjoints 2x (as x + x) and 1/y", () => {
    const f = (x: Tensor, y: Tensor) => x.pow(2).add(y.log());
    assert.deepEqual(wiring(makeJaxpr(f)(tensor(3), tensor(2))), [
      ["mul", ["in0", "in0"]],
      ["log", ["in1"]],
      ["add", ["eq0", "eq1"]],
    ]);
    const p = makeJaxpr(grad(f, { argnums: [0, 1] }))(tensor(3), tensor(2));
    const w = wiring(p);
    assert.deepEqual(w.slice(3), [
      ["div", ["lit 1", "in1"]],
      ["mul", ["lit 1", "eq3"]],
      ["mul", ["lit 1", "in0"]],
      ["mul", ["lit 1", "in0"]],
      ["add", ["eq5", "eq6"]],
    ]);
    const [gx, gy] = evalJaxpr(p, tensor(3), tensor(2)) as Tensor[];
    assert.equal(gx.item(), 6);
    assert.equal(gy.item(), 0.5);
  });

  test("3(xy + y): the constant 3 is a literal; the adjoints are 3y and 3x + 3", () => {
    const f = (x: Tensor, y: Tensor) => x.mul(y).add(y).mul(3);
    const p0 = makeJaxpr(f)(tensor(3), tensor(2));
    assert.deepEqual(wiring(p0), [
      ["mul", ["in0", "in1"]],
      ["add", ["eq0", "in1"]],
      ["mul", ["eq1", "lit 3"]],
    ]);
    assert.match(String(p0), /e:f32\[\] = mul d 3\.0:f32\[\]/);
    const p = makeJaxpr(grad(f, { argnums: [0, 1] }))(tensor(3), tensor(2));
    assert.deepEqual(wiring(p).slice(3), [
      ["mul", ["lit 3", "in1"]],
      ["mul", ["lit 3", "in0"]],
      ["add", ["lit 3", "eq4"]],
    ]);
    const [gx, gy] = evalJaxpr(p, tensor(3), tensor(2)) as Tensor[];
    assert.equal(gx.item(), 6);
    assert.equal(gy.item(), 12);
  });
});

describe("makeJaxpr: structure", () => {
  test("a captured tensor is a constant variable bound to that tensor; params print compactly", () => {
    const w = tensor([1, 2, 3]);
    const p = makeJaxpr((x: Tensor) => x.mul(w).sum())(tensor([4, 5, 6]));
    assert.equal(p.consts.length, 1);
    assert.equal(p.consts[0], w);
    assert.equal(
      String(p),
      [
        "{ lambda a:f32[3]; b:f32[3] . let",
        "    c:f32[3] = mul b a",
        "    d:f32[] = sum[axes=[0]] c",
        "  in (d) }",
      ].join("\n"),
    );
    assert.equal(evalJaxpr(p, tensor([1, 1, 2])).item(), 9);
  });

  test("ops on constants only run eagerly and enter as one constant", () => {
    const w = tensor([1, 2]);
    const p = makeJaxpr((x: Tensor) => x.add(w.exp()))(tensor([0, 0]));
    assert.deepEqual(wiring(p), [["add", ["in0", "const0"]]]);
    assert.deepEqual(p.consts[0].toArray(), w.exp().toArray());
  });

  test("pytrees in and out: evalJaxpr returns the traced function's structure", () => {
    const f = (a: { x: Tensor; y: Tensor }, s: Tensor[]) => ({ sum: a.x.add(a.y), prod: [a.x.mul(s[0])] });
    const args = [{ x: tensor([1, 2]), y: tensor([3, 4]) }, [tensor(2)]] as const;
    const p = makeJaxpr(f)(...args);
    assert.equal(p.invars.length, 3);
    assert.equal(p.outs.length, 2);
    const r = evalJaxpr(p, { x: tensor([5, 6]), y: tensor([1, 1]) }, [tensor(3)]) as {
      sum: Tensor;
      prod: Tensor[];
    };
    assert.deepEqual(r.sum.toArray(), [6, 7]);
    assert.deepEqual(r.prod[0].toArray(), [15, 18]);
  });

  test("dtypes are abbreviated and shapes kept: f64, i32, bool", () => {
    const p = makeJaxpr((x: Tensor) => x.gt(0).logicalAnd(x.to("int32").eq(1)))(
      tensor([0.5, 1.5], { dtype: "float64" }),
    );
    const s = String(p);
    assert.match(s, /a:f64\[2\]/);
    assert.match(s, /:i32\[2\] = cast\[.*int32/);
    assert.match(s, /:bool\[2\] = and /);
    assert.deepEqual(evalJaxpr(p, tensor([1, 1.2], { dtype: "float64" })).toArray(), [true, true]);
  });

  test("evaluating a program is traced again like any function (same program)", () => {
    const p = makeJaxpr(x1x2)(tensor(1), tensor(2));
    const q = makeJaxpr((a: Tensor, b: Tensor) => evalJaxpr(p, a, b))(tensor(0), tensor(0));
    assert.equal(String(q), String(p));
  });
});

describe("modules", () => {
  test("an MLP's forward pass: parameters (and ops on them alone) enter as constants; evaluation equals forward", () => {
    const m = new Sequential(new Linear(4, 3), new ReLU(), new Linear(3, 2));
    const x = randn([5, 4]);
    const p = makeJaxpr((z: Tensor) => m.forward(z))(x);
    assert.deepEqual(
      p.eqns.map((e) => e.name),
      ["dot", "biasAct", "dot", "add"],
    );
    assert.equal(p.consts.length, 4);
    const x2 = randn([5, 4]);
    assert.deepEqual(evalJaxpr(p, x2).toArray(), m.forward(x2).toArray());
  });
});

describe("makeJaxpr composes with the transforms", () => {
  test("jvp: the primal and the tangent equations (dual numbers)", () => {
    const p = makeJaxpr((x: Tensor, t: Tensor) => jvp((a: Tensor) => a.sin(), [x], [t]))(
      tensor([1, 2]),
      tensor([1, 1]),
    );
    assert.deepEqual(wiring(p), [
      ["sin", ["in0"]],
      ["cos", ["in0"]],
      ["mul", ["in1", "eq1"]],
    ]);
    const [y, ty] = evalJaxpr(p, tensor([0, 1]), tensor([2, 3])) as Tensor[];
    assert.deepEqual(y.toArray(), [0, Math.fround(Math.sin(1))]);
    assert.deepEqual(ty.toArray(), [2, Math.fround(3 * Math.fround(Math.cos(1)))]);
  });

  test("vjp and linearize trace; evaluation matches running them", () => {
    const f = (x: Tensor) => {
      const [o, back] = vjp((a: Tensor) => a.exp().sum(), x);
      return { o, g: (back(tensor(1)) as Tensor[])[0] };
    };
    const x = tensor([0.5, -1]);
    const p = makeJaxpr(f)(x);
    assert.deepEqual(
      wiring(p).map((e) => e[0]),
      ["exp", "sum", "mul"],
    );
    const r = evalJaxpr(p, x) as { o: Tensor; g: Tensor };
    assert.deepEqual(r.g.toArray(), f(x).g.toArray());
    const lin = (x: Tensor) => linearize((a: Tensor) => a.sin().mul(a), x)[1](tensor(1));
    assert.equal(evalJaxpr(makeJaxpr(lin)(tensor(2)), tensor(0.7)).item(), lin(tensor(0.7)).item());
  });

  test("grad and jvp of evalJaxpr: a program is differentiable like the function it came from", () => {
    const p = makeJaxpr(x1x2)(tensor(0), tensor(0));
    const g = grad((a: Tensor, b: Tensor) => evalJaxpr(p, a, b), { argnums: [0, 1] })(tensor(1), tensor(2));
    const want = grad(x1x2, { argnums: [0, 1] })(tensor(1), tensor(2));
    assert.deepEqual(
      g.map((t: Tensor) => t.item()),
      want.map((t: Tensor) => t.item()),
    );
    const [, t] = jvp((a: Tensor) => evalJaxpr(p, a, tensor(2)), [tensor(1)], [tensor(1)]);
    assert.equal((t as Tensor).item(), Math.fround(2 + Math.fround(Math.cos(1))));
  });

  test("vmap(grad(f)) traces to one batched program that evaluates to the per-example gradients", () => {
    const f = (x: Tensor) => x.sin().mul(x).sum();
    const xs = tensor([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const p = makeJaxpr(vmap(grad(f)))(xs);
    assert.deepEqual(p.invars[0].shape, [3, 2]);
    assert.ok(p.eqns.every((e) => e.outputs[0].shape[0] === 3));
    assert.deepEqual(evalJaxpr(p, xs).toArray(), vmap(grad(f))(xs).toArray());
  });

  test("grad of grad traces (second-order adjoints recorded)", () => {
    const d2 = grad(grad((x: Tensor) => x.sin()));
    const p = makeJaxpr(d2)(tensor(1));
    assert.ok(p.eqns.some((e) => e.name === "sin"));
    assert.ok(Math.abs(evalJaxpr(p, tensor(0.3)).item() + Math.sin(0.3)) < 1e-6);
  });
});

describe("nested sub-programs", () => {
  test("checkpoint: a closed sub-program; the closed-over tensor becomes an explicit input", () => {
    const f = (x: Tensor) => checkpoint((a: Tensor) => a.sin().mul(x))(x.cos()).sum();
    const p = makeJaxpr(f)(tensor([1, 2, 3]));
    const e = p.eqns[1];
    assert.equal(e.name, "checkpoint");
    assert.deepEqual(e.params, { numConsts: 1 });
    assert.ok(e.sub !== null);
    assert.equal(e.sub.invars.length, 2);
    assert.deepEqual(
      e.sub.eqns.map((q) => q.name),
      ["sin", "mul"],
    );
    assert.deepEqual(wiring(p)[1], ["checkpoint", ["in0", "eq0"]]);
    assert.match(
      String(p),
      /checkpoint\[numConsts=1\] \{ lambda ; a:f32\[3\], b:f32\[3\] \. let\n {8}c:f32\[3\] = sin b/,
    );
    const x = tensor([0.1, 0.2, 0.3]);
    assert.equal(evalJaxpr(p, x).item(), f(x).item());
    const direct = grad((a: Tensor) => a.cos().sin().mul(a).sum())(x);
    assert.deepEqual(grad((a: Tensor) => evalJaxpr(p, a))(x).toArray(), direct.toArray());
  });

  test("customJvp and customVjp: sub-programs of the body; their rules still apply when evaluated", () => {
    const cj = customJvp(
      (x: Tensor) => x.sin(),
      ([x], [t]) => [x.sin(), t.mul(2)],
    );
    const pj = makeJaxpr((x: Tensor) => cj(x).sum())(tensor([1, 2]));
    assert.equal(pj.eqns[0].name, "customJvp");
    assert.deepEqual(
      pj.eqns[0].sub?.eqns.map((q) => q.name),
      ["sin"],
    );
    assert.deepEqual(grad((x: Tensor) => evalJaxpr(pj, x))(tensor([1, 2])).toArray(), [2, 2]);
    const ste = customVjp((x: Tensor) => x.round(), {
      fwd: (x: Tensor) => [x.round(), null],
      bwd: (_r: null, ct: Tensor) => [ct],
    });
    const pv = makeJaxpr((x: Tensor) => ste(x).mul(x).sum())(tensor([1.4, 2.6]));
    assert.equal(pv.eqns[0].name, "customVjp");
    assert.deepEqual(
      pv.eqns[0].sub?.eqns.map((q) => q.name),
      ["round"],
    );
    // d/dx round(x)*x with the straight-through rule: x + round(x)
    const g = grad((x: Tensor) => evalJaxpr(pv, x))(tensor([1.5, 2.25]));
    assert.deepEqual(g.toArray(), [3.5, 4.25]);
  });
});

describe("errors", () => {
  test("reading an abstract value names the op and says it is abstract under makeJaxpr", () => {
    assert.throws(
      () => makeJaxpr((x: Tensor) => x.mul(x.sum().item()))(tensor([1, 2])),
      (e: Error) =>
        e instanceof AutodiffError && /^item: .*shape \[\] .*abstract under makeJaxpr/.test(e.message),
    );
    assert.throws(
      () => makeJaxpr((x: Tensor) => tensor(x.toArray() as number[]))(tensor([1, 2])),
      /toArray: .*abstract under makeJaxpr/,
    );
    // index checks are the exception: a traced index is checked by the gather kernel when the program runs
    const sel = makeJaxpr((x: Tensor, i: Tensor) => x.indexSelect(0, i))(
      tensor([1, 2]),
      tensor([0], { dtype: "int32" }),
    );
    assert.ok(sel.eqns.some((e) => e.name === "gather"));
    assert.deepEqual(evalJaxpr(sel, tensor([1, 2]), tensor([1], { dtype: "int32" })).toArray(), [2]);
    assert.throws(
      () => evalJaxpr(sel, tensor([1, 2]), tensor([2], { dtype: "int32" })),
      /index 2 is out of bounds/,
    );
  });

  test("a data-dependent check in a module names the op; a running-statistics write is a clear error", () => {
    const logits = tensor([
      [1, 2],
      [3, 4],
    ]);
    // class-index targets trace (the general, ignoreIndex-aware path; the range is checked when the program runs)
    const ce = makeJaxpr((z: Tensor, y: Tensor) => crossEntropy(z, y))(
      logits,
      tensor([0, 1], { dtype: "int32" }),
    );
    const y = tensor([1, 0], { dtype: "int32" });
    assert.ok(Math.abs(evalJaxpr(ce, logits, y).item() - crossEntropy(logits, y).item()) < 1e-6);
    assert.throws(
      () => evalJaxpr(ce, logits, tensor([0, 2], { dtype: "int32" })),
      /index 2 is out of bounds/,
    );
    const bn = new BatchNorm2d(2);
    assert.throws(
      () => makeJaxpr((x: Tensor) => bn.forward(x))(randn([2, 2, 3, 3])),
      /in-place write into a concrete tensor of shape \[2\]: the value written is a traced value of a makeJaxpr transform/,
    );
  });

  test("shape errors are raised at trace time by the primitive's abstract rule", () => {
    assert.throws(
      () => makeJaxpr((x: Tensor, y: Tensor) => x.add(y))(tensor([1, 2]), tensor([1, 2, 3])),
      ShapeError,
    );
  });

  test("a non-tensor result, a leaked tracer, and evalJaxpr with the wrong inputs", () => {
    assert.throws(() => makeJaxpr(() => 3)(tensor(1)), /makeJaxpr: the traced function must return a tensor/);
    let leaked: Tensor | null = null;
    makeJaxpr((x: Tensor) => {
      leaked = x;
      return x.neg();
    })(tensor(1));
    assert.throws(() => leaked!.add(1), /makeJaxpr transform was used after that transform returned/);
    const p = makeJaxpr(x1x2)(tensor(1), tensor(2));
    assert.throws(
      () => evalJaxpr(p, tensor(1)),
      /evalJaxpr: the program takes 2 input tensors \(f32\[\], f32\[\]\), got 1/,
    );
    assert.throws(
      () => evalJaxpr(p, tensor([1]), tensor(1)),
      (e: Error) => e instanceof ShapeError && /input 0 has shape \[1\]/.test(e.message),
    );
    assert.throws(
      () => evalJaxpr(p, tensor(1, { dtype: "float64" }), tensor(1)),
      (e: Error) => e instanceof DTypeError && /input 0 has dtype float64/.test(e.message),
    );
  });
});
