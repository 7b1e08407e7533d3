/**
 * The contract between the benchmark runner and one framework adapter (chainrule on a backend, TF.js, jax-js).
 * PyTorch runs in Python (bench/torch_bench.py) and produces the same records.
 *
 * Each case method prepares its inputs in the framework and returns a Step (one timed sample that computes
 * and reads a value back), or `{ skip }` with the reason the case is not run for this framework. A method that
 * is absent means the framework has no such API (reported as "n/a").
 */
import type { Step } from "../harness.ts";
import type {
  AttnData,
  CnnData,
  E2EData,
  E2EResult,
  LstmData,
  MlpData,
  TransformerData,
} from "../workloads.ts";

/** A case this framework does not run, and why. */
export interface Skip {
  skip: string;
}

/** Options every adapter receives. */
export interface AdapterOpts {
  /** Run cases that are skipped by default because they are very slow in this framework. */
  full: boolean;
  quick: boolean;
}

/** One framework, ready to run cases. */
export interface Peer {
  sgemm?(n: number, a: Float32Array, b: Float32Array): Step | Skip;
  mlpStep?(d: MlpData): Step | Skip;
  /** The n x n product of a and b rounded to bfloat16, accumulating in float32 (bf16.gemmN). */
  bf16Gemm?(n: number, a: Float32Array, b: Float32Array): Step | Skip;
  /** mlpStep with the forward under bfloat16 autocast, weights and optimizer in float32 (bf16.mlp). */
  bf16MlpStep?(d: MlpData): Step | Skip;
  /** cnnStep with the forward under bfloat16 autocast, weights and optimizer in float32 (bf16.cnn). */
  bf16CnnStep?(d: CnnData): Step | Skip;
  cnnStep?(d: CnnData): Step | Skip;
  /** One training step (forward, cross-entropy over every position, backward, Adam) of the char Transformer. */
  transformerStep?(d: TransformerData): Step | Skip;
  /** One training step of the row-by-row LSTM classifier. */
  lstmStep?(d: LstmData): Step | Skip;
  /** A chain of k adds of one-element tensors, then one read. */
  dispatchAdd?(k: number): Step | Skip;
  /** k iterations of forward + backward of x*y+z on scalars, then one read. */
  dispatchGrad?(k: number): Step | Skip;
  /** k iterations of jvp of x*y+z on scalars, then one read. */
  dispatchJvp?(k: number): Step | Skip;
  /**
   * Per-example gradients of the MLP's cross-entropy with respect to every weight and bias, through the
   * framework's vmap of grad; reads the last bias gradient of example 5, element 3.
   */
  perExampleGrads?(d: MlpData): Step | Skip;
  /** The gradient of the mean loss over the batch, the same functional loss; reads the last bias gradient[3]. */
  batchedGrad?(d: MlpData): Step | Skip;
  /**
   * Attention forward and backward: the gradients of sum(attention(q, k, v) * w) with respect to q, k and v,
   * through the framework's fused attention (`fused`) or the composition softmax(q k^T / sqrt(E)) v; reads
   * dq[0, 0, 0, 0]. With `peakMemory` the step returns instead its peak resident memory above the resident set
   * before it, in MiB (after a garbage collection, from VmHWM reset through /proc/self/clear_refs). With
   * `autocast`, the step runs under that autocast dtype (float32 inputs, float32 gradients).
   */
  attention?(d: AttnData, fused: boolean, peakMemory?: boolean, autocast?: "bfloat16"): Step | Skip;
  /** Train for d.epochs epochs and evaluate training accuracy. */
  e2e?(d: E2EData): Promise<E2EResult | Skip>;
}

/** What an adapter's `create` returns: the framework, or why it cannot run here. */
export type Created =
  | { peer: Peer; label: string; version: string; notes: string[] }
  | { unavailable: string };

/** Narrow a case result to a skip. */
export function isSkip(x: unknown): x is Skip {
  return typeof x === "object" && x !== null && "skip" in x;
}
