/**
 * jax-js (`@jax-js/jax`) in the benchmark, on its `wasm` device, eager and under `jit`.
 *
 * jax-js follows JAX: pure functions over pytrees, `valueAndGrad`, `jvp`, `jit`, plus reference-counted arrays
 * (a function consumes its arguments; `.ref` keeps one alive), so the code below threads `.ref` where a value
 * is used twice. Its operations are lazy: a step ends with `blockUntilReady` on everything it produced, so the
 * timed work is the work done. Adam is written by hand in PyTorch's form
 * (p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)) because the optimizer lives in another
 * package. In Node there is no Web Worker global, so jax-js runs its wasm kernels on one thread.
 */
import {
  blockUntilReady,
  grad,
  init,
  jit,
  jvp,
  lax,
  nn,
  numpy as np,
  tree,
  valueAndGrad,
  vmap,
} from "@jax-js/jax";
import { packageVersion, type Step } from "../harness.ts";
import {
  type CnnData,
  type E2EData,
  type E2EResult,
  type LinearInit,
  type MlpData,
  transpose2d,
} from "../workloads.ts";
import type { AdapterOpts, Created, Peer, Skip } from "./types.ts";

/** jax-js modes this adapter runs. */
export type JaxVariant = "eager" | "jit";

type Params = Record<string, np.Array>;
type StepResult = [np.Array, Params, Params, Params];
type StepFn = (
  p: Params,
  m: Params,
  v: Params,
  x: np.Array,
  y: np.Array,
  a: np.Array,
  c: np.Array,
) => StepResult;

const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;

function f32(data: Float32Array, shape: number[]): np.Array {
  return np.array(data).reshape(shape);
}

function oneHot(y: Int32Array): np.Array {
  return nn.oneHot(np.array(y, { dtype: np.int32 }), 10);
}

function mlpParams(layers: LinearInit[]): Params {
  const p: Params = {};
  layers.forEach((l, i) => {
    p[`w${i}`] = f32(transpose2d(l.w, l.out, l.in), [l.in, l.out]);
    p[`b${i}`] = f32(l.b, [l.out]);
  });
  return p;
}

function mlpLogits(p: Params, x: np.Array): np.Array {
  const h1 = nn.relu(np.matmul(x, p.w0).add(p.b0));
  const h2 = nn.relu(np.matmul(h1, p.w1).add(p.b1));
  return np.matmul(h2, p.w2).add(p.b2);
}

/** Mean cross-entropy from logits and one-hot targets. */
function xent(logits: np.Array, y1h: np.Array, batch: number): np.Array {
  return nn
    .logSoftmax(logits, -1)
    .mul(y1h)
    .sum()
    .mul(-1 / batch);
}

const pool2 = (x: np.Array) => lax.reduceWindow(x, (w: np.Array) => np.max(w), [2, 2], [2, 2]);

function cnnLogits(p: Params, x: np.Array, batch: number): np.Array {
  const pad: [number, number][] = [
    [2, 2],
    [2, 2],
  ];
  let h = lax.conv(x, p.c1w, [1, 1], pad).add(p.c1b.reshape([1, 32, 1, 1]));
  h = pool2(nn.relu(h));
  h = lax.conv(h, p.c2w, [1, 1], pad).add(p.c2b.reshape([1, 64, 1, 1]));
  h = pool2(nn.relu(h)).reshape([batch, 3136]);
  h = nn.relu(np.matmul(h, p.f1w).add(p.f1b));
  return np.matmul(h, p.f2w).add(p.f2b);
}

/**
 * A training step over any loss(params, x, y): returns [loss, params', m', v']. `a` = lr / (1 - b1^t) and
 * `c` = 1 / sqrt(1 - b2^t) arrive as arrays so a jitted step is traced once.
 */
function makeTrainStep(loss: (p: Params, x: np.Array, y: np.Array) => np.Array): StepFn {
  return (p, m, v, x, y, a, c) => {
    const [l, g] = valueAndGrad(loss)(tree.ref(p), x, y) as [np.Array, Params];
    const p2: Params = {};
    const m2: Params = {};
    const v2: Params = {};
    for (const k of Object.keys(p)) {
      const gk = g[k];
      const mk = m[k].mul(B1).add(gk.ref.mul(1 - B1));
      const vk = v[k].mul(B2).add(gk.ref.mul(gk).mul(1 - B2));
      const denom = np.sqrt(vk.ref).mul(c.ref).add(EPS);
      p2[k] = p[k].sub(mk.ref.mul(a.ref).div(denom));
      m2[k] = mk;
      v2[k] = vk;
    }
    a.dispose();
    c.dispose();
    return [l, p2, m2, v2] as StepResult;
  };
}

/** Holds parameters and Adam moments across steps; `run` does one step and waits for all of it. */
class Trainer {
  p: Params;
  m: Params;
  v: Params;
  t = 0;
  readonly fn: StepFn;
  constructor(
    params: Params,
    loss: (p: Params, x: np.Array, y: np.Array) => np.Array,
    useJit: boolean,
    readonly lr: number,
  ) {
    this.p = params;
    this.m = tree.map((q: np.Array) => np.zeros(q.shape), params) as Params;
    this.v = tree.map((q: np.Array) => np.zeros(q.shape), params) as Params;
    const raw = makeTrainStep(loss);
    this.fn = useJit ? (jit(raw) as unknown as StepFn) : raw;
  }
  /** One step on (x, y), both consumed; returns the loss array (caller consumes it). */
  async run(x: np.Array, y: np.Array): Promise<np.Array> {
    this.t++;
    const a = np.array(this.lr / (1 - B1 ** this.t));
    const c = np.array(1 / Math.sqrt(1 - B2 ** this.t));
    const [l, p, m, v] = this.fn(this.p, this.m, this.v, x, y, a, c);
    this.p = p;
    this.m = m;
    this.v = v;
    await blockUntilReady([l, p, m, v]);
    return l;
  }
}

function makePeer(variant: JaxVariant, opts: AdapterOpts): Peer {
  const useJit = variant === "jit";
  return {
    sgemm(n: number, a: Float32Array, b: Float32Array): Step {
      const ta = f32(a, [n, n]);
      const tb = f32(b, [n, n]);
      const mm = useJit ? jit((x: np.Array, y: np.Array) => np.matmul(x, y)) : np.matmul;
      let first = true;
      return async () => {
        const c = await blockUntilReady(mm(ta.ref, tb.ref));
        if (!first) {
          c.dispose();
          return 0;
        }
        first = false;
        return c.dataSync()[0];
      };
    },
    mlpStep(d: MlpData): Step {
      const tr = new Trainer(
        mlpParams(d.layers),
        (p, x, y) => xent(mlpLogits(p, x), y, d.batch),
        useJit,
        1e-3,
      );
      const x = f32(d.x, [d.batch, 784]);
      const y = oneHot(d.y);
      return async () => (await tr.run(x.ref, y.ref)).dataSync()[0];
    },
    perExampleGrads(d: MlpData): Step {
      const p = mlpParams(d.layers);
      const x = f32(d.x, [d.batch, 784]);
      const y = oneHot(d.y);
      const perEx = vmap(
        grad((q: Params, xi: np.Array, yi: np.Array) => xent(mlpLogits(q, xi), yi, 1)),
        [null, 0, 0],
      );
      const f = useJit ? jit(perEx) : perEx;
      return async () => {
        const g = (await blockUntilReady(f(tree.ref(p), x.ref, y.ref))) as Params;
        const v = g.b2.ref.slice(5, 3).dataSync()[0];
        tree.dispose(g);
        return v;
      };
    },
    batchedGrad(d: MlpData): Step {
      const p = mlpParams(d.layers);
      const x = f32(d.x, [d.batch, 784]);
      const y = oneHot(d.y);
      const g0 = grad((q: Params, xb: np.Array, yb: np.Array) => xent(mlpLogits(q, xb), yb, d.batch));
      const f = useJit ? jit(g0) : g0;
      return async () => {
        const g = (await blockUntilReady(f(tree.ref(p), x.ref, y.ref))) as Params;
        const v = g.b2.ref.slice(3).dataSync()[0];
        tree.dispose(g);
        return v;
      };
    },
    cnnStep(d: CnnData): Step | Skip {
      if (useJit && !opts.full)
        return { skip: "jit: skipped (compiling the CNN step took ~90 s in probing; --full runs it)" };
      if (opts.quick) return { skip: "skipped in --quick (seconds per step)" };
      const p: Params = {
        c1w: f32(d.c1.w, [32, 1, 5, 5]),
        c1b: f32(d.c1.b, [32]),
        c2w: f32(d.c2.w, [64, 32, 5, 5]),
        c2b: f32(d.c2.b, [64]),
        f1w: f32(transpose2d(d.f1.w, 128, 3136), [3136, 128]),
        f1b: f32(d.f1.b, [128]),
        f2w: f32(transpose2d(d.f2.w, 10, 128), [128, 10]),
        f2b: f32(d.f2.b, [10]),
      };
      const tr = new Trainer(p, (q, x, y) => xent(cnnLogits(q, x, d.batch), y, d.batch), useJit, 1e-3);
      const x = f32(d.x, [d.batch, 1, 28, 28]);
      const y = oneHot(d.y);
      return async () => (await tr.run(x.ref, y.ref)).dataSync()[0];
    },
    dispatchAdd(k: number): Step {
      const one = np.array([1]);
      const add = useJit
        ? jit((a: np.Array, b: np.Array) => a.add(b))
        : (a: np.Array, b: np.Array) => a.add(b);
      return () => {
        let acc = np.array([0]);
        for (let i = 0; i < k; i++) acc = add(acc, one.ref);
        return acc.dataSync()[0];
      };
    },
    dispatchGrad(k: number): Step {
      const x = np.array(2);
      const y = np.array(3);
      const z = np.array(1);
      const f = (a: np.Array, b: np.Array, c: np.Array) => a.mul(b).add(c);
      const g0 = grad(f, { argnums: [0, 1, 2] });
      const g = useJit ? jit(g0) : g0;
      return async () => {
        let last: np.Array[] = [];
        for (let i = 0; i < k; i++) {
          tree.dispose(last);
          last = (await blockUntilReady(g(x.ref, y.ref, z.ref))) as np.Array[];
        }
        const v = last[0].dataSync()[0];
        tree.dispose(last.slice(1));
        return v;
      };
    },
    dispatchJvp(k: number): Step {
      const x = np.array(2);
      const y = np.array(3);
      const z = np.array(1);
      const one = np.array(1);
      const f = (a: np.Array, b: np.Array, c: np.Array) => a.mul(b).add(c);
      const fj = (a: np.Array, b: np.Array, c: np.Array, ta: np.Array, tb: np.Array, tc: np.Array) =>
        jvp(f, [a, b, c], [ta, tb, tc]) as np.Array[];
      const j = useJit ? jit(fj) : fj;
      return async () => {
        let last: np.Array[] = [];
        for (let i = 0; i < k; i++) {
          tree.dispose(last);
          last = (await blockUntilReady(j(x.ref, y.ref, z.ref, one.ref, one.ref, one.ref))) as np.Array[];
        }
        const v = last[1].dataSync()[0];
        last[0].dispose();
        return v;
      };
    },
    async e2e(d: E2EData): Promise<E2EResult | Skip> {
      const tr = new Trainer(
        mlpParams(d.layers),
        (p, x, y) => xent(mlpLogits(p, x), y, d.batch),
        useJit,
        d.lr,
      );
      const X = f32(d.images, [d.n, 784]);
      const Y = oneHot(d.labels);
      const steps = Math.floor(d.n / d.batch);
      let finalLoss = Number.NaN;
      const t0 = performance.now();
      for (let e = 0; e < d.epochs; e++) {
        for (let s = 0; s < steps; s++) {
          const start = e * d.n + s * d.batch;
          const idx = np.array(d.perm.subarray(start, start + d.batch), { dtype: np.int32 });
          const l = await tr.run(np.take(X.ref, idx.ref, 0), np.take(Y.ref, idx, 0));
          if (e === d.epochs - 1 && s === steps - 1) finalLoss = l.dataSync()[0];
          else l.dispose();
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const pred = np.argmax(mlpLogits(tree.ref(tr.p), X), 1).dataSync();
      let correct = 0;
      for (let i = 0; i < d.n; i++) if (pred[i] === d.labels[i]) correct++;
      Y.dispose();
      return { seconds, accuracy: correct / d.n, finalLoss };
    },
  };
}

/** Start jax-js's wasm device and return the peer for `variant`. */
export async function create(variant: JaxVariant, opts: AdapterOpts): Promise<Created> {
  const devices = await init("wasm");
  if (!devices.includes("wasm")) return { unavailable: `jax-js: no wasm device (got ${devices.join(", ")})` };
  return {
    peer: makePeer(variant, opts),
    label: `jax-js wasm ${variant}`,
    version: packageVersion("@jax-js/jax"),
    notes: ["1 thread: jax-js parallelises wasm with Web Workers, which Node does not provide"],
  };
}
