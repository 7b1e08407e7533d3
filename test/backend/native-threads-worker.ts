/**
 * The workload of native-threads.test.ts, shared by the main thread and its worker_threads.
 *
 * `workload(backend, seed)` runs, through the public ops, a matmul large enough to use the packed GEMM (and so
 * the pool's scratch buffers), a conv2d forward and backward (im2col / direct kernels with their scratch), and
 * a cross-entropy forward and backward (softmax kernels), on inputs derived from `seed` only, and returns every
 * result as a float64 copy. When this file runs as a worker, it loads the native backend itself (its own
 * instance of the addon in this thread), runs the workloads for the seeds it is given `rounds` times each,
 * posts the results back and increments the shared `done` counter.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Backend } from "../../src/backend/backend.ts";
import { loadNativeBackend } from "../../src/backend/native/index.ts";
import { setBackend } from "../../src/backend/registry.ts";
import { conv2d, matmul, tensor } from "../../src/index.ts";
import { crossEntropy } from "../../src/nn/index.ts";
import { prng } from "../prng.ts";

function randArray(n: number, rng: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 2 * rng() - 1;
  return a;
}

/** Named results of one workload. */
export type Results = Record<string, Float64Array>;

const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

export function workload(backend: Backend, seed: number): Results {
  setBackend(backend);
  const rng = prng(seed);
  const a = tensor(randArray(96 * 130, rng), { shape: [96, 130] });
  const b = tensor(randArray(130 * 100, rng), { shape: [130, 100] });
  const mm = matmul(a, b);

  const x = tensor(randArray(6 * 3 * 18 * 18, rng), { shape: [6, 3, 18, 18], requiresGrad: true });
  const w = tensor(randArray(16 * 3 * 3 * 3, rng), { shape: [16, 3, 3, 3], requiresGrad: true });
  const y = conv2d(x, w, null, { padding: 1 });
  y.mul(y).sum().backward();

  const logits = tensor(randArray(200 * 37, rng), { shape: [200, 37], requiresGrad: true });
  const target = tensor(Int32Array.from({ length: 200 }, () => Math.floor(rng() * 37)));
  const loss = crossEntropy(logits, target);
  loss.backward();

  return {
    matmul: f64(mm.dataSync()),
    conv: f64(y.dataSync()),
    convGradX: f64(x.grad!.dataSync()),
    convGradW: f64(w.grad!.dataSync()),
    crossEntropy: f64(loss.dataSync()),
    crossEntropyGrad: f64(logits.grad!.dataSync()),
  };
}

if (!isMainThread && parentPort) {
  const { seeds, rounds, done } = workerData as { seeds: number[]; rounds: number; done: Int32Array };
  const r = loadNativeBackend();
  if ("error" in r) throw new Error(r.error);
  const out: { seed: number; results: Results }[] = [];
  for (let k = 0; k < rounds; k++)
    for (const seed of seeds) out.push({ seed, results: workload(r.backend, seed) });
  parentPort.postMessage(out);
  Atomics.add(done, 0, 1); // lets the main thread, busy with its own workloads, know when to stop
}
