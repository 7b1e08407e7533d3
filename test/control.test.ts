/**
 * Control flow (scan, cond, switchCase, whileLoop, foriLoop), in float64, against independent references: plain
 * JavaScript loops over number arrays for values, central finite differences of those plain functions for
 * derivatives, and the same computation unrolled with ordinary ops (whose derivatives the op table checks).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AutodiffError,
  cond,
  DTypeError,
  evalJaxpr,
  foriLoop,
  grad,
  gradCheck,
  jit,
  jvp,
  makeJaxpr,
  scan,
  ShapeError,
  switchCase,
  type Tensor,
  tensor,
  vjp,
  vmap,
  whileLoop,
} from "../src/index.ts";
import { prng } from "./prng.ts";

const F64 = { dtype: "float64" } as const;

/** A float64 tensor of `shape` with values in [-1, 1) from a seeded generator, and the plain values. */
function rand(shape: number[], seed: number): Tensor {
  const r = prng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const flat = Array.from({ length: n }, () => 2 * r() - 1);
  return tensor(flat, F64).reshape(shape);
}

function vals(t: Tensor): number[] {
  return Array.from(t.dataSync());
}

function assertClose(
  got: Tensor | number[] | number,
  want: Tensor | number[] | number,
  tol: number,
  what: string,
) {
  const g = typeof got === "number" ? [got] : Array.isArray(got) ? got : vals(got);
  const w = typeof want === "number" ? [want] : Array.isArray(want) ? want : vals(want);
  assert.equal(g.length, w.length, `${what}: ${g.length} values, expected ${w.length}`);
  for (let i = 0; i < w.length; i++) {
    const d = Math.abs(g[i] - w[i]);
    assert.ok(
      d <= tol * (1 + Math.abs(w[i])),
      `${what}: element ${i}: got ${g[i]}, expected ${w[i]} (|d| = ${d})`,
    );
  }
}

/** Central differences of a plain function of a flat number array. */
function numGrad(f: (x: number[]) => number, x: number[], h = 1e-6): number[] {
  return x.map((_, i) => {
    const p = [...x];
    const m = [...x];
    p[i] += h;
    m[i] -= h;
    return (f(p) - f(m)) / (2 * h);
  });
}

/** Row i of a [n, ...] tensor through ordinary ops (the unrolled references use these). */
const row = (x: Tensor, i: number) => x.narrow(0, i, 1).reshape(x.shape.slice(1));

const cumsumBody = (c: Tensor, x: Tensor): [Tensor, Tensor] => {
  const s = c.add(x);
  return [s, s];
};

// ---- the RNN cell: h' = tanh(W h + U x + b), y = 2 h' ----------------------------------------------------------
const H = 3;
const I = 2;
const T = 5;

/** Plain JS: the final state and ys of the RNN over xs (flat arrays, row-major). */
function rnnJs(
  W: number[],
  U: number[],
  b: number[],
  h0: number[],
  xs: number[],
): { h: number[]; ys: number[][] } {
  let h = [...h0];
  const ys: number[][] = [];
  for (let t = 0; t < T; t++) {
    const next: number[] = [];
    for (let i = 0; i < H; i++) {
      let s = b[i];
      for (let j = 0; j < H; j++) s += W[i * H + j] * h[j];
      for (let j = 0; j < I; j++) s += U[i * I + j] * xs[t * I + j];
      next.push(Math.tanh(s));
    }
    h = next;
    ys.push(h.map((v) => 2 * v));
  }
  return { h, ys };
}

/** The loss both implementations compute: sum(ys * weights) + sum(h_T^2). */
const lossWeights = Array.from({ length: T * H }, (_, k) => Math.sin(k + 1));
function rnnLossJs(W: number[], U: number[], b: number[], h0: number[], xs: number[]): number {
  const { h, ys } = rnnJs(W, U, b, h0, xs);
  let s = 0;
  ys.flat().forEach((v, k) => {
    s += v * lossWeights[k];
  });
  for (const v of h) s += v * v;
  return s;
}

function rnnScan(W: Tensor, U: Tensor, b: Tensor, h0: Tensor, xs: Tensor): [Tensor, Tensor] {
  return scan(
    (h: Tensor, x: Tensor) => {
      const n = W.matmul(h).add(U.matmul(x)).add(b).tanh();
      return [n, n.mul(2)];
    },
    h0,
    xs,
  );
}

function rnnLoss(W: Tensor, U: Tensor, b: Tensor, h0: Tensor, xs: Tensor): Tensor {
  const [h, ys] = rnnScan(W, U, b, h0, xs);
  return ys
    .mul(tensor(lossWeights, F64).reshape([T, H]))
    .sum()
    .add(h.square().sum());
}

function rnnLossUnrolled(W: Tensor, U: Tensor, b: Tensor, h0: Tensor, xs: Tensor): Tensor {
  let h = h0;
  let s = tensor(0, F64);
  const wts = tensor(lossWeights, F64).reshape([T, H]);
  for (let t = 0; t < T; t++) {
    h = W.matmul(h)
      .add(U.matmul(row(xs, t)))
      .add(b)
      .tanh();
    s = s.add(h.mul(2).mul(row(wts, t)).sum());
  }
  return s.add(h.square().sum());
}

const rnnArgs = () => [rand([H, H], 1), rand([H, I], 2), rand([H], 3), rand([H], 4), rand([T, I], 5)];

describe("scan: values", () => {
  test("cumulative sum equals a JS loop; reverse=true scans from the end, ys aligned with xs", () => {
    const x = [0.5, -1.25, 2, 3.5, -0.75, 1];
    const xs = tensor(x, F64);
    const [c, ys] = scan(cumsumBody, tensor(0, F64), xs);
    const fwd: number[] = [];
    let s = 0;
    for (const v of x) fwd.push((s += v));
    assertClose(ys, fwd, 0, "ys");
    assertClose(c, s, 0, "carry");
    const [cr, ysr] = scan(cumsumBody, tensor(0, F64), xs, { reverse: true });
    const rev = new Array<number>(x.length);
    s = 0;
    for (let i = x.length - 1; i >= 0; i--) rev[i] = s += x[i];
    assertClose(ysr, rev, 0, "reverse ys");
    assertClose(cr, s, 0, "reverse carry");
  });

  test("the RNN cell over a sequence equals the JS loop", () => {
    const args = rnnArgs();
    const [h, ys] = rnnScan(...(args as [Tensor, Tensor, Tensor, Tensor, Tensor]));
    const ref = rnnJs(...(args.map(vals) as [number[], number[], number[], number[], number[]]));
    assertClose(h, ref.h, 1e-14, "final state");
    assert.deepEqual(ys.shape, [T, H]);
    assertClose(ys, ref.ys.flat(), 1e-14, "ys");
  });

  test("pytrees: an object carry, a list of xs, structured ys; no xs with length", () => {
    const a = tensor([1, 2, 3], F64);
    const b = tensor(
      [
        [1, 0],
        [0, 1],
        [2, 2],
      ],
      F64,
    );
    const [c, ys] = scan(
      (carry: { s: Tensor; n: Tensor }, [x, y]: [Tensor, Tensor]) => {
        const s = carry.s.add(x.mul(y.sum()));
        return [
          { s, n: carry.n.add(1) },
          { prod: s.mul(2), pair: [x, y.neg()] },
        ];
      },
      { s: tensor(0, F64), n: tensor(0, { dtype: "int32" }) },
      [a, b],
    );
    assertClose(c.s, 1 * 1 + 2 * 1 + 3 * 4, 0, "s");
    assert.equal(c.n.item(), 3);
    assert.equal(c.n.dtype, "int32");
    assertClose(ys.prod, [2, 6, 30], 0, "ys.prod");
    assertClose(ys.pair[0], [1, 2, 3], 0, "ys.pair[0]");
    assertClose(ys.pair[1], [-1, 0, 0, -1, -2, -2], 0, "ys.pair[1]");
    const [p, none] = scan((c: Tensor) => [c.mul(2), null] as [Tensor, null], tensor(1.5, F64), null, {
      length: 4,
    });
    assertClose(p, 24, 0, "length without xs");
    assert.equal(none, null);
    const [z, zs] = scan(cumsumBody, tensor(7, F64), tensor([], F64));
    assertClose(z, 7, 0, "length 0 carry");
    assert.deepEqual(zs.shape, [0]);
  });

  test("carries that alias xs, a closed-over tensor or the ys are never overwritten by later steps", () => {
    const xs = rand([4, 3], 71);
    const before = vals(xs);
    const W = rand([3], 72);
    const wBefore = vals(W);
    // the carry is a row of xs, then a closed-over tensor, then a fresh value also returned as y
    const [c, ys] = scan(
      (cr: Tensor, x: Tensor) => [x, cr.mul(2)] as [Tensor, Tensor],
      tensor([0, 0, 0], F64),
      xs,
    );
    assertClose(c, before.slice(9), 0, "last row");
    assertClose(ys, [0, 0, 0, ...before.slice(0, 9).map((v) => 2 * v)], 0, "ys");
    const [c2, ys2] = scan(
      (cr: Tensor, x: Tensor) => [W, cr.add(x)] as [Tensor, Tensor],
      tensor([1, 1, 1], F64),
      xs,
    );
    assertClose(c2, wBefore, 0, "closed-over carry");
    assertClose(
      ys2,
      [...before.slice(0, 3).map((v) => v + 1), ...before.slice(3).map((v, i) => v + wBefore[i % 3])],
      0,
      "ys2",
    );
    const [c3, ys3] = scan(
      (cr: Tensor, x: Tensor) => {
        const n = cr.mul(x).add(1);
        return [n, n] as [Tensor, Tensor];
      },
      tensor([1, 1, 1], F64),
      xs,
    );
    const want: number[] = [];
    let h = [1, 1, 1];
    for (let t = 0; t < 4; t++) {
      h = h.map((v, i) => v * before[t * 3 + i] + 1);
      want.push(...h);
    }
    assertClose(ys3, want, 1e-15, "ys3");
    assertClose(c3, want.slice(9), 1e-15, "c3");
    assert.deepEqual(vals(xs), before);
    assert.deepEqual(vals(W), wBefore);
  });

  test("the body is traced once, not once per step", () => {
    let calls = 0;
    scan(
      (c: Tensor, x: Tensor) => {
        calls++;
        return [c.add(x), c];
      },
      tensor(0, F64),
      rand([50], 9),
    );
    assert.equal(calls, 1);
  });
});

describe("scan: derivatives", () => {
  test("grad of the RNN loss equals central differences of the JS loop and the grad of the unrolled loop", () => {
    const args = rnnArgs();
    const argnums = [0, 1, 2, 3, 4];
    const g = grad(rnnLoss, { argnums }) as unknown as (...a: Tensor[]) => Tensor[];
    const gu = grad(rnnLossUnrolled, { argnums }) as unknown as (...a: Tensor[]) => Tensor[];
    const got = g(...args);
    const unrolled = gu(...args);
    const plain = args.map(vals);
    assertClose(
      rnnLoss(...(args as [Tensor, Tensor, Tensor, Tensor, Tensor])),
      rnnLossJs(...(plain as [number[], number[], number[], number[], number[]])),
      1e-13,
      "loss",
    );
    got.forEach((gi, k) => {
      assert.deepEqual(gi.shape, args[k].shape);
      assertClose(gi, unrolled[k], 1e-12, `argument ${k} vs unrolled`);
      const fd = numGrad((x) => {
        const p = plain.map((v, j) => (j === k ? x : v));
        return rnnLossJs(...(p as [number[], number[], number[], number[], number[]]));
      }, plain[k]);
      assertClose(gi, fd, 1e-7, `argument ${k} vs central differences`);
    });
  });

  test("reverse=true: grad matches central differences", () => {
    const w = rand([4], 11);
    const f = (x: Tensor) =>
      scan(
        (c: Tensor, xi: Tensor) => [c.mul(xi).add(xi.sin()), c.square()] as [Tensor, Tensor],
        tensor(0.3, F64),
        x,
        {
          reverse: true,
        },
      );
    const loss = (x: Tensor) => {
      const [c, ys] = f(x);
      return c.add(ys.mul(w).sum());
    };
    const js = (x: number[]) => {
      let c = 0.3;
      let s = 0;
      for (let i = x.length - 1; i >= 0; i--) {
        s += c * c * vals(w)[i];
        c = c * x[i] + Math.sin(x[i]);
      }
      return c + s;
    };
    const x = rand([4], 12);
    assertClose(loss(x), js(vals(x)), 1e-14, "value");
    assertClose(grad(loss)(x) as Tensor, numGrad(js, vals(x)), 1e-8, "grad");
  });

  test("jvp and vjp agree with central differences (gradCheck), closed-over and explicit operands", () => {
    const [W, U, b, h0, xs] = rnnArgs();
    gradCheck((w: Tensor, x: Tensor) => rnnScan(w, U, b, h0, x)[1], [W, xs]);
    gradCheck((hh: Tensor, bb: Tensor) => rnnScan(W, U, bb, hh, xs)[0], [h0, b]);
    // jvp explicitly against the unrolled loop
    const tW = rand([H, H], 21);
    const [, t1] = jvp((w: Tensor) => rnnLoss(w, U, b, h0, xs), [W], [tW]);
    const [, t2] = jvp((w: Tensor) => rnnLossUnrolled(w, U, b, h0, xs), [W], [tW]);
    assertClose(t1 as Tensor, t2 as Tensor, 1e-12, "jvp");
  });

  test("second order: grad of grad through scan (and through a reverse scan)", () => {
    const xs = rand([6], 31);
    const js = (a: number) => {
      let c = 0.5;
      for (const x of vals(xs)) c = Math.sin(c * a + x) + 0.1 * c;
      return c;
    };
    const f = (a: Tensor) =>
      scan(
        (c: Tensor, x: Tensor) => [c.mul(a).add(x).sin().add(c.mul(0.1)), null] as [Tensor, null],
        tensor(0.5, F64),
        xs,
      )[0];
    const fu = (a: Tensor) => {
      let c = tensor(0.5, F64);
      for (let i = 0; i < 6; i++) c = c.mul(a).add(row(xs, i)).sin().add(c.mul(0.1));
      return c;
    };
    const a = tensor(0.7, F64);
    const d2 = grad(grad(f) as (a: Tensor) => Tensor)(a) as Tensor;
    const d2u = grad(grad(fu) as (a: Tensor) => Tensor)(a) as Tensor;
    assertClose(d2, d2u, 1e-12, "grad grad vs unrolled");
    const h = 1e-4;
    const fd2 = (js(0.7 + h) - 2 * js(0.7) + js(0.7 - h)) / (h * h);
    assertClose(d2, fd2, 1e-5, "grad grad vs second difference");
    // forward over reverse
    const [, hv] = jvp(grad(f) as (a: Tensor) => Tensor, [a], [tensor(1, F64)]);
    assertClose(hv as Tensor, d2u, 1e-12, "jvp of grad");
  });

  test("eager tape: requiresGrad parameters closed over by the body (a scalar one too) get .grad", () => {
    const [W, U, b, h0, xs] = rnnArgs();
    const want = grad(rnnLossUnrolled, { argnums: [0, 1] })(W, U, b, h0, xs) as unknown as Tensor[];
    const Wp = W.detach();
    Wp.requiresGrad = true;
    const scale = tensor(1.5, F64);
    scale.requiresGrad = true;
    const Up = U.detach();
    const loss = scan(
      (h: Tensor, x: Tensor) => {
        const n = Wp.matmul(h).add(Up.matmul(x)).add(b).tanh();
        return [n, n.mul(scale)];
      },
      h0,
      xs,
    );
    const [hT, ys] = loss;
    const total = ys
      .mul(tensor(lossWeights, F64).reshape([T, H]))
      .sum()
      .div(scale)
      .mul(2)
      .add(hT.square().sum());
    total.backward();
    assertClose(Wp.grad!, want[0], 1e-12, "W.grad");
    // d total / d scale is 0: scale multiplies and divides the ys term
    assertClose(scale.grad!, 0, 1e-12, "scale.grad");
  });

  test("eager tape, createGraph: double backward through scan and cond equals the unrolled loop", () => {
    // a gradient penalty |dL/da|^2 + |dL/dw|^2 differentiated again, w closed over by the body
    const X = rand([4, 3], 71);
    const run = (kind: "scan" | "unrolled"): Tensor[] => {
      const w = rand([3], 72);
      w.requiresGrad = true;
      const a = rand([3], 73);
      a.requiresGrad = true;
      const step = (c: Tensor, e: Tensor) =>
        cond(
          e.sum().gt(0),
          (q: Tensor) => q.mul(e).add(w).sin(),
          (q: Tensor) => q.mul(w).tanh(),
          c,
        );
      let loss: Tensor;
      if (kind === "scan")
        loss = scan((c: Tensor, e: Tensor) => [step(c, e), c.sum()], a.mul(1.3), X)[1].sum();
      else {
        let c = a.mul(1.3);
        loss = c.sum().mul(0);
        for (let i = 0; i < 4; i++) {
          loss = loss.add(c.sum());
          const e = X.narrow(0, i, 1).reshape([3]);
          c = e.sum().item() > 0 ? c.mul(e).add(w).sin() : c.mul(w).tanh();
        }
      }
      loss.backward(undefined, { createGraph: true });
      const ga = a.grad!;
      const gw = w.grad!;
      a.grad = null;
      w.grad = null;
      ga.square().sum().add(gw.square().sum()).backward();
      return [ga, gw, a.grad!, w.grad!];
    };
    const want = run("unrolled");
    for (const [i, t] of run("scan").entries()) assertClose(t, vals(want[i]), 1e-12, `part ${i}`);
  });
});

describe("scan: vmap", () => {
  const perExample = (
    f: (...a: Tensor[]) => Tensor,
    batches: (Tensor | null)[],
    shared: Tensor[],
    n: number,
  ) => Array.from({ length: n }, (_, i) => f(...batches.map((b, k) => (b === null ? shared[k] : row(b, i)))));

  test("batched xs, batched init, an unbatched carry that becomes batched, a batched closed-over weight", () => {
    const [W, U, b, h0] = rnnArgs();
    const xsB = rand([4, T, I], 41);
    const h0B = rand([4, H], 42);
    const WB = rand([4, H, H], 43);
    const lastY = (w: Tensor, hh: Tensor, x: Tensor) => rnnScan(w, U, b, hh, x)[1];
    const cases: [string, (Tensor | null)[], (number | null)[]][] = [
      // h0 unbatched, xs batched: the carry becomes batched after one step (the fixed point)
      ["batched xs", [null, null, xsB], [null, null, 0]],
      ["batched init", [null, h0B, null], [null, 0, null]],
      ["batched closed-over weight", [WB, null, null], [0, null, null]],
      ["all batched", [WB, h0B, xsB], [0, 0, 0]],
    ];
    for (const [name, batches, inAxes] of cases) {
      const args = batches.map((x, k) => x ?? [W, h0, rand([T, I], 5)][k]);
      const got = vmap(lastY, { inAxes })(...(args as [Tensor, Tensor, Tensor]));
      const want = perExample(lastY, batches, args, 4);
      assert.deepEqual(got.shape, [4, T, H], name);
      want.forEach((w, i) => {
        assertClose(row(got, i), w, 1e-14, `${name}: example ${i}`);
      });
    }
  });

  test("per-example gradients: vmap(grad(scan)) equals the loop of grads", () => {
    const [W, U, b, h0] = rnnArgs();
    const xsB = rand([3, T, I], 51);
    const g = grad((w: Tensor, x: Tensor) => rnnLoss(w, U, b, h0, x));
    const got = vmap(g, { inAxes: [null, 0] })(W, xsB) as Tensor;
    for (let i = 0; i < 3; i++) {
      const want = grad((w: Tensor) => rnnLossUnrolled(w, U, b, h0, row(xsB, i)))(W) as Tensor;
      assertClose(row(got, i), want, 1e-12, `example ${i}`);
    }
  });
});

describe("scan: programs and jit", () => {
  test("makeJaxpr shows one scan equation with its body; evalJaxpr runs it", () => {
    const xs = rand([5], 61);
    const f = (x: Tensor) =>
      scan((c: Tensor, xi: Tensor) => [c.mul(xi).sin(), c] as [Tensor, Tensor], tensor(0.5, F64), x);
    const p = makeJaxpr(f)(xs);
    assert.equal(p.eqns.length, 1);
    assert.equal(p.eqns[0].name, "scan");
    const s = String(p);
    assert.match(
      s,
      /scan\[length=5, reverse=false, numConsts=0, numCarry=1\] body=\{ lambda ; a:f64\[\], b:f64\[\] \. let/,
    );
    assert.match(s, /= mul a b\n\s+d:f64\[\] = sin c/);
    const [c1, y1] = evalJaxpr(p, xs) as Tensor[];
    const [c2, y2] = f(xs);
    assertClose(c1, c2, 0, "carry");
    assertClose(y1, y2, 0, "ys");
    // the gradient program: a forward scan (with residuals) and a reverse scan
    const pg = makeJaxpr(grad((x: Tensor) => f(x)[0]))(xs);
    const scans = pg.eqns.filter((e) => e.name === "scan");
    assert.equal(scans.length, 2);
    assert.deepEqual(
      scans.map((e) => (e.params as { reverse: boolean }).reverse),
      [false, true],
    );
  });

  test("reverse mode saves per-step values only: no stacked weight transposes, no copies of xs", () => {
    const args = rnnArgs();
    const p = makeJaxpr(grad(rnnLoss, { argnums: [0, 4] }))(...args);
    const fwd = p.eqns.find((e) => e.name === "scan" && !(e.params as { reverse: boolean }).reverse)!;
    const stacked = fwd.outputs.slice(1).map((v) => v.shape.join("x"));
    // ys [T, H], and per-step residuals of the carry's size; nothing of W's size ([T, H, H]) or of x's ([T, I])
    for (const s of stacked) {
      const [t, ...rest] = s.split("x").map(Number);
      assert.equal(t, T);
      assert.equal(
        rest.reduce((a, b) => a * b, 1),
        H,
        `a stacked residual of shape ${s} (only carry-sized values expected)`,
      );
    }
  });

  test("jit(scan) equals eager and traces once; scan inside jit(grad) equals eager grad", () => {
    const args = rnnArgs();
    let traces = 0;
    const jf = jit((...a: Tensor[]) => {
      traces++;
      return rnnScan(...(a as [Tensor, Tensor, Tensor, Tensor, Tensor]));
    });
    const [h1, y1] = jf(...args) as Tensor[];
    const [h2, y2] = rnnScan(...(args as [Tensor, Tensor, Tensor, Tensor, Tensor]));
    assertClose(h1, h2, 0, "h");
    assertClose(y1, y2, 0, "ys");
    const args2 = rnnArgs().map((t) => t.mul(0.5));
    const [h3] = jf(...args2) as Tensor[];
    assertClose(h3, rnnScan(...(args2 as [Tensor, Tensor, Tensor, Tensor, Tensor]))[0], 0, "second call");
    assert.equal(traces, 1);
    const jg = jit(grad(rnnLoss, { argnums: [0, 4] }));
    const got = jg(...(args as [Tensor, Tensor, Tensor, Tensor, Tensor])) as unknown as Tensor[];
    const want = grad(rnnLossUnrolled, { argnums: [0, 4] })(
      ...(args as [Tensor, Tensor, Tensor, Tensor, Tensor]),
    ) as unknown as Tensor[];
    assertClose(got[0], want[0], 1e-12, "dW");
    assertClose(got[1], want[1], 1e-12, "dxs");
    // grad of a jitted scan, vmap of a jitted scan
    const gj = grad((w: Tensor) => jit(rnnLoss)(w, ...(args.slice(1) as [Tensor, Tensor, Tensor, Tensor])))(
      args[0],
    );
    assertClose(gj as Tensor, want[0], 1e-12, "grad(jit)");
  });
});

describe("cond and switchCase", () => {
  const tf = (x: Tensor, y: Tensor) => x.sin().mul(y);
  const ff = (x: Tensor, y: Tensor) => x.mul(y).exp();

  test("value and gradients are those of the chosen branch", () => {
    const x = tensor(0.3, F64);
    const y = tensor(-1.2, F64);
    for (const p of [true, false]) {
      const f = (a: Tensor, b: Tensor) => cond(tensor(p), tf, ff, a, b);
      assertClose(f(x, y), p ? Math.sin(0.3) * -1.2 : Math.exp(0.3 * -1.2), 1e-15, `value ${p}`);
      const [gx, gy] = grad(f, { argnums: [0, 1] })(x, y) as unknown as Tensor[];
      if (p) {
        assertClose(gx, Math.cos(0.3) * -1.2, 1e-15, "d/dx true");
        assertClose(gy, Math.sin(0.3), 1e-15, "d/dy true");
      } else {
        assertClose(gx, -1.2 * Math.exp(-0.36), 1e-15, "d/dx false");
        assertClose(gy, 0.3 * Math.exp(-0.36), 1e-15, "d/dy false");
      }
      const [, t] = jvp(f, [x, y], [tensor(1, F64), tensor(0, F64)]);
      assertClose(t as Tensor, p ? Math.cos(0.3) * -1.2 : -1.2 * Math.exp(-0.36), 1e-15, `jvp ${p}`);
    }
    // a predicate computed from the input, pytrees, a closed-over value per branch
    const w = tensor([2, 3], F64);
    const g = (v: Tensor) =>
      cond(
        v.sum().gt(0),
        (o: { a: Tensor }) => ({ r: o.a.mul(w) }),
        (o: { a: Tensor }) => ({ r: o.a.square() }),
        { a: v },
      ).r.sum();
    assertClose(grad(g)(tensor([1, 2], F64)) as Tensor, [2, 3], 0, "true branch grad");
    assertClose(grad(g)(tensor([-1, -2], F64)) as Tensor, [-2, -4], 0, "false branch grad");
    gradCheck((v: Tensor) => g(v), [tensor([0.4, -0.1], F64)]);
  });

  test("switchCase picks branches[index] with the index clamped", () => {
    const branches = [(x: Tensor) => x.add(1), (x: Tensor) => x.mul(10), (x: Tensor) => x.neg()];
    const x = tensor(2, F64);
    const want = [3, 3, 20, -2, -2];
    [-3, 0, 1, 2, 7].forEach((i, k) => {
      assertClose(switchCase(i, branches, x), want[k], 0, `index ${i}`);
      assertClose(switchCase(tensor(i, { dtype: "int32" }), branches, x), want[k], 0, `tensor index ${i}`);
    });
    const dx = grad((v: Tensor) => switchCase(1, branches, v))(x) as Tensor;
    assertClose(dx, 10, 0, "grad of branch 1");
  });

  test("vmap with a batched predicate runs both branches and selects per example", () => {
    const xs = tensor([-2, -0.5, 0.5, 3], F64);
    // (as in JAX, both branches run on every example: a branch must be finite where it is not taken, or the
    // gradient through the select is NaN; sqrt of the negative examples here would be)
    const f = (v: Tensor) =>
      cond(
        v.gt(0),
        (a: Tensor) => a.exp(),
        (a: Tensor) => a.square(),
        v,
      );
    assertClose(vmap(f)(xs), [4, 0.25, Math.exp(0.5), Math.exp(3)], 1e-15, "values");
    assertClose(vmap(grad(f))(xs), [-4, -1, Math.exp(0.5), Math.exp(3)], 1e-15, "per-example grads");
    assertClose(
      grad((v: Tensor) => vmap(f)(v).sum())(xs) as Tensor,
      [-4, -1, Math.exp(0.5), Math.exp(3)],
      1e-15,
      "grad of vmap",
    );
    // switchCase with a batched index (clamped per example); an unbatched index with a batched operand
    const idx = tensor([-1, 0, 1, 2, 5], { dtype: "int32" });
    const br = [(a: Tensor) => a.add(1), (a: Tensor) => a.mul(10), (a: Tensor) => a.neg()];
    const got = vmap((i: Tensor) => switchCase(i, br, tensor(2, F64)))(idx);
    assertClose(got, [3, 3, 20, -2, -2], 0, "batched index");
    const got2 = vmap((a: Tensor) => switchCase(1, br, a))(xs);
    assertClose(got2, [-20, -5, 5, 30], 0, "unbatched index");
  });

  test("under jit the predicate is traced: one program, the branch chosen at run time", () => {
    let traces = 0;
    const jf = jit((v: Tensor) => {
      traces++;
      return cond(
        v.sum().gt(0),
        (a: Tensor) => a.mul(2),
        (a: Tensor) => a.exp(),
        v,
      );
    });
    assertClose(jf(tensor([1, 2], F64)), [2, 4], 0, "true");
    assertClose(jf(tensor([-1, -2], F64)), [Math.exp(-1), Math.exp(-2)], 1e-15, "false");
    assert.equal(traces, 1);
    const p = jf.lower(tensor([1, 2], F64));
    const c = p.eqns.find((e) => e.name === "cond");
    assert.ok(c !== undefined, "a cond equation");
    assert.match(String(p), /branches\[0\]=\{ lambda .*\n.*exp/);
    const jg = jit(
      grad((v: Tensor) =>
        cond(
          v.sum().gt(0),
          (a: Tensor) => a.square(),
          (a: Tensor) => a.sin(),
          v,
        ).sum(),
      ),
    );
    assertClose(jg(tensor([1, 2], F64)) as Tensor, [2, 4], 0, "jit(grad) true");
    assertClose(jg(tensor([-1, -2], F64)) as Tensor, [Math.cos(-1), Math.cos(-2)], 1e-15, "jit(grad) false");
  });

  test("errors: mismatched branch outputs, a non-scalar predicate, a float index", () => {
    const x = tensor([1, 2], F64);
    assert.throws(
      () =>
        cond(
          tensor(true),
          (a: Tensor) => a.sum(),
          (a: Tensor) => a,
          x,
        ),
      (e: unknown) =>
        e instanceof ShapeError &&
        /cond: trueFn's output: leaf out has shape \[\], but falseFn's output has shape \[2\] \(dtype float64\); every branch must return/.test(
          e.message,
        ),
    );
    assert.throws(
      () =>
        cond(
          tensor(true),
          (a: Tensor) => a,
          (a: Tensor) => a.to("float32"),
          x,
        ),
      (e: unknown) =>
        e instanceof DTypeError &&
        /cond: trueFn's output: leaf out has dtype float64, but falseFn's output has dtype float32/.test(
          e.message,
        ),
    );
    assert.throws(
      () =>
        cond(
          tensor(true),
          (a: Tensor) => [a] as unknown as Tensor,
          (a: Tensor) => a,
          x,
        ),
      (e: unknown) =>
        e instanceof ShapeError && /cond: .*structure \[Tensor\].*structure Tensor/.test(e.message),
    );
    assert.throws(
      () =>
        cond(
          tensor([true, false]),
          (a: Tensor) => a,
          (a: Tensor) => a,
          x,
        ),
      (e: unknown) =>
        e instanceof ShapeError &&
        /cond: the predicate must be a scalar \(shape \[\]\), got shape \[2\]/.test(e.message),
    );
    assert.throws(() => switchCase(tensor(1.0, F64), [(a: Tensor) => a], x), DTypeError);
  });
});

describe("whileLoop and foriLoop", () => {
  test("whileLoop: value equals a JS loop; pytree carries", () => {
    const f = (x: Tensor) =>
      whileLoop(
        (v: Tensor) => v.lt(100),
        (v: Tensor) => v.mul(1.5).add(1),
        x,
      );
    let v = 2;
    while (v < 100) v = v * 1.5 + 1;
    assertClose(f(tensor(2, F64)), v, 1e-13, "value");
    const [n, s] = whileLoop(
      ([k]: [Tensor, Tensor]) => k.lt(10),
      ([k, acc]: [Tensor, Tensor]) => [k.add(1), acc.add(k.to("float64").square())] as [Tensor, Tensor],
      [tensor(0, { dtype: "int32" }), tensor(0, F64)] as [Tensor, Tensor],
    );
    assert.equal(n.item(), 10);
    assertClose(s, 285, 0, "sum of squares");
  });

  test("whileLoop: jvp (forward mode) matches central differences; reverse mode is a clear error", () => {
    const a = tensor(0.3, F64);
    const f = (x: Tensor) =>
      whileLoop(
        (v: Tensor) => v.lt(100),
        (v: Tensor) => v.mul(1.5).add(x),
        tensor(2, F64),
      );
    const js = (x: number) => {
      let v = 2;
      while (v < 100) v = v * 1.5 + x;
      return v;
    };
    const [y, t] = jvp(f, [a], [tensor(1, F64)]);
    assertClose(y as Tensor, js(0.3), 1e-13, "value");
    const h = 1e-6;
    assertClose(t as Tensor, (js(0.3 + h) - js(0.3 - h)) / (2 * h), 1e-7, "jvp");
    assert.throws(
      () => grad(f)(a),
      (e: unknown) => e instanceof AutodiffError && /whileLoop: reverse-mode.*scan.*foriLoop/.test(e.message),
    );
    assert.throws(() => vjp(f, a)[1](tensor(1, F64)), AutodiffError);
    // on the eager tape the forward pass runs; backward through the loop is the error
    const p = tensor(0.3, F64);
    p.requiresGrad = true;
    const ye = f(p);
    assertClose(ye, js(0.3), 1e-13, "eager forward");
    assert.throws(
      () => ye.backward(),
      (e: unknown) => e instanceof AutodiffError && /whileLoop/.test(e.message),
    );
  });

  test("whileLoop under vmap: per-example trip counts, finished examples frozen", () => {
    const x0 = [1, 3, 20, 0.5, 99];
    const f = (v: Tensor) =>
      whileLoop(
        (c: Tensor) => c.lt(10),
        (c: Tensor) => c.mul(2),
        v,
      );
    const want = x0.map((v) => {
      let c = v;
      while (c < 10) c *= 2;
      return c;
    });
    assertClose(vmap(f)(tensor(x0, F64)), want, 0, "values");
    // a counter carry: steps per example; the bound is a batched value closed over by the condition
    const g = (lim: Tensor) =>
      whileLoop(
        ([k]: [Tensor, Tensor]) => k.to("float64").lt(lim),
        ([k, s]: [Tensor, Tensor]) => [k.add(1), s.add(0.5)] as [Tensor, Tensor],
        [tensor(0, { dtype: "int32" }), tensor(0, F64)] as [Tensor, Tensor],
      );
    const [ks, ss] = vmap(g)(tensor([0, 2, 5], F64)) as unknown as Tensor[];
    assert.deepEqual(vals(ks), [0, 2, 5]);
    assertClose(ss, [0, 1, 2.5], 0, "per-example sums");
    // jvp under vmap: tangents of the batched while
    const [, t] = jvp((v: Tensor) => vmap(f)(v), [tensor(x0, F64)], [tensor([1, 1, 1, 1, 1], F64)]);
    assertClose(t as Tensor, [16, 4, 1, 32, 1], 0, "jvp of the per-example doubling");
  });

  test("foriLoop with static bounds: value and grad (a scan); traced bounds fall back to whileLoop", () => {
    const body = (x: Tensor) => (i: Tensor, v: Tensor) => v.mul(x).add(i.to("float64"));
    const f = (x: Tensor) => foriLoop(1, 5, body(x), tensor(0.5, F64));
    const js = (x: number) => {
      let v = 0.5;
      for (let i = 1; i < 5; i++) v = v * x + i;
      return v;
    };
    assertClose(f(tensor(1.3, F64)), js(1.3), 1e-14, "value");
    const h = 1e-6;
    assertClose(grad(f)(tensor(1.3, F64)) as Tensor, (js(1.3 + h) - js(1.3 - h)) / (2 * h), 1e-8, "grad");
    assert.equal(makeJaxpr(f)(tensor(1.3, F64)).eqns.filter((e) => e.name === "scan").length, 1);
    assertClose(foriLoop(3, 1, body(tensor(2, F64)), tensor(7, F64)), 7, 0, "empty range");
    // traced upper bound: a while loop
    const g = (x: Tensor, n: Tensor) => foriLoop(0, n, body(x), tensor(0.5, F64));
    const p = makeJaxpr(g)(tensor(1.3, F64), tensor(4, { dtype: "int32" }));
    assert.ok(p.eqns.some((e) => e.name === "while"));
    assert.match(
      String(p),
      /while\[condNumConsts=0, bodyNumConsts=1\] cond=\{ lambda ; [^\n]*\n\s+\w+:bool\[\] = lt [^\n]*\n[^\n]*\} body=\{ lambda/,
    );
    assert.ok(!p.eqns.some((e) => e.name === "scan"));
    const jg = jit(g);
    const js0 = (x: number, n: number) => {
      let v = 0.5;
      for (let i = 0; i < n; i++) v = v * x + i;
      return v;
    };
    assertClose(jg(tensor(1.3, F64), tensor(4, { dtype: "int32" })), js0(1.3, 4), 1e-14, "jit, n = 4");
    assertClose(jg(tensor(1.3, F64), tensor(6, { dtype: "int32" })), js0(1.3, 6), 1e-14, "jit, n = 6");
    assert.equal(jg.traceCount, 1);
    const [, t] = jvp(
      (x: Tensor) => jg(x, tensor(4, { dtype: "int32" })),
      [tensor(1.3, F64)],
      [tensor(1, F64)],
    );
    assertClose(t as Tensor, (js0(1.3 + h, 4) - js0(1.3 - h, 4)) / (2 * h), 1e-8, "jvp through the while");
  });
});

describe("errors", () => {
  test("scan: a carry of another structure, shape or dtype names scan and the leaf", () => {
    const xs = tensor([1, 2, 3], F64);
    const init = { h: tensor([0, 0], F64), n: tensor(0, F64) };
    assert.throws(
      () => scan((c: typeof init, x: Tensor) => [{ h: c.h.sum().add(x), n: c.n }, null], init, xs),
      (e: unknown) =>
        e instanceof ShapeError &&
        /scan: the body's output carry: leaf carry\.h has shape \[\], but the input carry has shape \[2\]/.test(
          e.message,
        ),
    );
    assert.throws(
      () =>
        scan(
          (c: typeof init, x: Tensor) => [{ h: c.h, n: c.n.to("float32").add(x.to("float32")) }, null],
          init,
          xs,
        ),
      (e: unknown) =>
        e instanceof DTypeError &&
        /scan: .*leaf carry\.n has dtype float32, but the input carry has dtype float64/.test(e.message),
    );
    assert.throws(
      () => scan((c: typeof init) => [[c.h, c.n] as unknown as typeof init, null], init, xs),
      (e: unknown) =>
        e instanceof ShapeError &&
        /scan: the body's output carry has structure \[Tensor, Tensor\], but the input carry has structure \{h: Tensor, n: Tensor\}/.test(
          e.message,
        ),
    );
    assert.throws(
      () => scan((c: Tensor) => c as unknown as [Tensor, null], tensor(0, F64), xs),
      (e: unknown) => e instanceof ShapeError && /scan: the body must return a pair/.test(e.message),
    );
    assert.throws(
      () => scan(cumsumBody, tensor(0, F64), [xs, tensor([1, 2], F64)] as unknown as Tensor),
      (e: unknown) => e instanceof ShapeError && /scan: xs\[1\] has leading size 2/.test(e.message),
    );
    assert.throws(
      () => scan(cumsumBody, tensor(0, F64)),
      (e: unknown) => e instanceof ShapeError && /opts\.length/.test(e.message),
    );
  });

  test("whileLoop: a non-bool or non-scalar condition, a body changing the carry", () => {
    assert.throws(
      () =>
        whileLoop(
          (v: Tensor) => v,
          (v: Tensor) => v,
          tensor(1, F64),
        ),
      (e: unknown) =>
        e instanceof ShapeError && /whileLoop: condFn must return a bool scalar/.test(e.message),
    );
    assert.throws(
      () =>
        whileLoop(
          (v: Tensor) => v.sum().lt(3),
          (v: Tensor) => v.sum(),
          tensor([1, 2], F64),
        ),
      (e: unknown) =>
        e instanceof ShapeError && /whileLoop: bodyFn's output: leaf carry has shape \[\]/.test(e.message),
    );
  });
});
