/**
 * TensorFlow.js in the benchmark: `@tensorflow/tfjs` with its `cpu` backend (plain JavaScript kernels) and
 * `@tensorflow/tfjs-backend-wasm` (XNNPACK kernels in WebAssembly SIMD).
 *
 * Written the way TF.js's own layers run: NHWC activations, HWIO filters, fused matMul/conv2d with bias and
 * ReLU (`tf.fused.*`, what `tf.layers.dense`/`conv2d` call), `tf.train.adam` minimising a closure, `tf.tidy`
 * for temporaries. Weights arrive in PyTorch layouts and are permuted here once, so the functions computed are
 * the same as everywhere else (the fc1 rows are permuted from (c, h, w) to TF's (h, w, c) flatten order).
 */
import { cpus } from "node:os";
import * as tf from "@tensorflow/tfjs";
import type { Step } from "../harness.ts";
import {
  type CnnData,
  convToHWIO,
  type E2EData,
  type E2EResult,
  type LinearInit,
  type MlpData,
  transpose2d,
} from "../workloads.ts";
import type { AdapterOpts, Created, Peer, Skip } from "./types.ts";

/** The TF.js backends this adapter runs. */
export type TfjsVariant = "cpu" | "wasm";

interface Dense {
  w: tf.Variable;
  b: tf.Variable;
}

function dense(l: LinearInit): Dense {
  return {
    w: tf.variable(tf.tensor2d(transpose2d(l.w, l.out, l.in), [l.in, l.out])),
    b: tf.variable(tf.tensor1d(l.b)),
  };
}

function applyDense(x: tf.Tensor2D, d: Dense, relu: boolean): tf.Tensor2D {
  return tf.fused.matMul({
    a: x,
    b: d.w as tf.Tensor2D,
    bias: d.b,
    activation: relu ? "relu" : "linear",
  }) as tf.Tensor2D;
}

function mlpLogits(x: tf.Tensor2D, layers: Dense[]): tf.Tensor2D {
  const h1 = applyDense(x, layers[0], true);
  const h2 = applyDense(h1, layers[1], true);
  return applyDense(h2, layers[2], false);
}

function adam(lr: number): tf.AdamOptimizer {
  return tf.train.adam(lr, 0.9, 0.999, 1e-8);
}

function varsOf(layers: Dense[]): tf.Variable[] {
  return layers.flatMap((l) => [l.w, l.b]);
}

/** One optimizer step; returns the loss tensor (caller disposes). */
function minimize(opt: tf.Optimizer, loss: () => tf.Scalar, vars: tf.Variable[]): tf.Scalar {
  const cost = opt.minimize(loss, true, vars);
  if (cost === null) throw new Error("tfjs: minimize returned no cost");
  return cost;
}

function makePeer(variant: TfjsVariant, opts: AdapterOpts): Peer {
  return {
    sgemm(n: number, a: Float32Array, b: Float32Array): Step {
      const ta = tf.tensor2d(a, [n, n]);
      const tb = tf.tensor2d(b, [n, n]);
      return () => tf.tidy(() => tf.matMul(ta, tb).slice([0, 0], [1, 1]).dataSync()[0]);
    },
    mlpStep(d: MlpData): Step {
      const layers = d.layers.map(dense);
      const vars = varsOf(layers);
      const opt = adam(1e-3);
      const x = tf.tensor2d(d.x, [d.batch, 784]);
      const y = tf.oneHot(tf.tensor1d(d.y, "int32"), 10);
      const loss = () => tf.losses.softmaxCrossEntropy(y, mlpLogits(x, layers)) as tf.Scalar;
      return () => {
        const cost = minimize(opt, loss, vars);
        const v = cost.dataSync()[0];
        cost.dispose();
        return v;
      };
    },
    cnnStep(d: CnnData): Step | Skip {
      if (variant === "cpu" && !opts.full) {
        return { skip: "tfjs cpu: about 100 s per step here (2 calls take minutes); --full runs it" };
      }
      const f1 = d.f1;
      // fc1 weight [128, 3136] with inputs in (c, h, w) order -> TF kernel [3136 in (h, w, c) order, 128].
      const k1 = new Float32Array(f1.w.length);
      for (let o = 0; o < 128; o++)
        for (let c = 0; c < 64; c++)
          for (let hw = 0; hw < 49; hw++) k1[(hw * 64 + c) * 128 + o] = f1.w[o * 3136 + c * 49 + hw];
      const c1w = tf.variable(tf.tensor4d(convToHWIO(d.c1), [5, 5, 1, 32]));
      const c1b = tf.variable(tf.tensor1d(d.c1.b));
      const c2w = tf.variable(tf.tensor4d(convToHWIO(d.c2), [5, 5, 32, 64]));
      const c2b = tf.variable(tf.tensor1d(d.c2.b));
      const fc1: Dense = { w: tf.variable(tf.tensor2d(k1, [3136, 128])), b: tf.variable(tf.tensor1d(f1.b)) };
      const fc2 = dense(d.f2);
      const vars = [c1w, c1b, c2w, c2b, fc1.w, fc1.b, fc2.w, fc2.b];
      const opt = adam(1e-3);
      // [N, 1, 28, 28] and [N, 28, 28, 1] have the same memory order.
      const x = tf.tensor4d(d.x, [d.batch, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(d.y, "int32"), 10);
      const loss = () => {
        let h = tf.fused.conv2d({
          x,
          filter: c1w as tf.Tensor4D,
          strides: 1,
          pad: "same",
          bias: c1b,
          activation: "relu",
        });
        h = tf.maxPool(h, 2, 2, "valid");
        h = tf.fused.conv2d({
          x: h,
          filter: c2w as tf.Tensor4D,
          strides: 1,
          pad: "same",
          bias: c2b,
          activation: "relu",
        });
        h = tf.maxPool(h, 2, 2, "valid");
        const f = applyDense(h.reshape([d.batch, 3136]), fc1, true);
        return tf.losses.softmaxCrossEntropy(y, applyDense(f, fc2, false)) as tf.Scalar;
      };
      return () => {
        const cost = minimize(opt, loss, vars);
        const v = cost.dataSync()[0];
        cost.dispose();
        return v;
      };
    },
    dispatchAdd(k: number): Step {
      const zero = tf.tensor1d([0]);
      const one = tf.tensor1d([1]);
      return () =>
        tf.tidy(() => {
          let acc: tf.Tensor = zero;
          for (let i = 0; i < k; i++) acc = tf.add(acc, one);
          return acc.dataSync()[0];
        });
    },
    dispatchGrad(k: number): Step {
      const x = tf.scalar(2);
      const y = tf.scalar(3);
      const z = tf.scalar(1);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => a.mul(b).add(c));
      return () =>
        tf.tidy(() => {
          let dx: tf.Tensor | null = null;
          for (let i = 0; i < k; i++) dx = g([x, y, z])[0];
          return dx === null ? Number.NaN : dx.dataSync()[0];
        });
    },
    // TF.js has no forward-mode autodiff: no dispatchJvp.
    async e2e(d: E2EData): Promise<E2EResult | Skip> {
      const layers = d.layers.map(dense);
      const vars = varsOf(layers);
      const opt = adam(d.lr);
      const X = tf.tensor2d(d.images, [d.n, 784]);
      const Y = tf.tensor1d(d.labels, "int32");
      const steps = Math.floor(d.n / d.batch);
      let finalLoss = Number.NaN;
      const t0 = performance.now();
      for (let e = 0; e < d.epochs; e++) {
        for (let s = 0; s < steps; s++) {
          const start = e * d.n + s * d.batch;
          const idx = tf.tensor1d(d.perm.subarray(start, start + d.batch), "int32");
          const xb = tf.gather(X, idx) as tf.Tensor2D;
          const yb = tf.tidy(() => tf.oneHot(tf.gather(Y, idx) as tf.Tensor1D, 10));
          const cost = minimize(
            opt,
            () => tf.losses.softmaxCrossEntropy(yb, mlpLogits(xb, layers)) as tf.Scalar,
            vars,
          );
          if (e === d.epochs - 1 && s === steps - 1) finalLoss = cost.dataSync()[0];
          tf.dispose([idx, xb, yb, cost]);
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const pred = tf.tidy(() => mlpLogits(X, layers).argMax(1).dataSync());
      let correct = 0;
      for (let i = 0; i < d.n; i++) if (pred[i] === d.labels[i]) correct++;
      return { seconds, accuracy: correct / d.n, finalLoss };
    },
  };
}

/** Initialise the TF.js backend for `variant` and return the peer. */
export async function create(variant: TfjsVariant, opts: AdapterOpts): Promise<Created> {
  const notes: string[] = [];
  tf.enableProdMode();
  let label = "TF.js cpu";
  if (variant === "wasm") {
    let w: typeof import("@tensorflow/tfjs-backend-wasm");
    try {
      w = await import("@tensorflow/tfjs-backend-wasm");
    } catch (e) {
      return { unavailable: `@tensorflow/tfjs-backend-wasm: ${(e as Error).message.split("\n")[0]}` };
    }
    w.setThreadsCount(cpus().length);
    if (!(await tf.setBackend("wasm"))) return { unavailable: "tf.setBackend('wasm') failed" };
    await tf.ready();
    const mt = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT");
    const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
    const threads = w.getThreadsCount();
    label = `TF.js wasm (${threads} thread${threads === 1 ? "" : "s"})`;
    notes.push(
      `wasm SIMD ${simd ? "on" : "off"}, multi-threaded build ${mt ? "on" : "off"} (threads need Web Workers)`,
    );
  } else {
    if (!(await tf.setBackend("cpu"))) return { unavailable: "tf.setBackend('cpu') failed" };
    await tf.ready();
  }
  return { peer: makePeer(variant, opts), label, version: tf.version.tfjs, notes };
}
