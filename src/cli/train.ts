/**
 * `chainrule train` as a function: `runTrain(config)` trains a model of the zoo on an image dataset, shows
 * progress, evaluates on the validation split after each epoch and on the test set at the end, and writes
 * metrics.json, model.safetensors, checkpoint.safetensors and the SVG charts to the output directory. The CLI
 * calls exactly this function; tests call it in-process.
 *
 * Interruption: when `signal` aborts (the CLI aborts it on Ctrl-C), the current step finishes, then the
 * checkpoint (model, optimizer, schedule position, the position in the epoch and the partial epoch sums) and
 * metrics.json are written and the run returns with status "interrupted". `runTrain(overrides, { resume: dir })`
 * continues from there; since every random stream is re-derived from the seed (see setup.ts), the resumed run
 * takes the same steps the uninterrupted run would have taken (same batches, same Dropout masks).
 *
 * The loop yields to the event loop after every step (one setImmediate) so that signals are delivered while a
 * long synchronous computation is running.
 *
 * Files: a run writes only into its output directory (`out`, or when resuming without `--out` the directory
 * holding the checkpoint, never a directory named inside a checkpoint), holds a lock file there while it runs
 * (outdir.ts), and writes each output atomically and durably: checkpoint first (what --resume trusts), then the
 * model, metrics.json last, so metrics never describe a state the other files do not hold. A non-finite loss
 * stops the run with a DivergedError before anything is saved from the diverged state.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { nativeInfo } from "../backend/native/index.ts";
import { getBackend, setBackend } from "../backend/registry.ts";
import { DataLoader } from "../data/dataloader.ts";
import { TensorDataset } from "../data/dataset.ts";
import { FormatError } from "../errors.ts";
import { readSafetensorsFileHeader } from "../io/files-node.ts";
import { CHECKPOINT_KEY } from "../io/tensors.ts";
import { loadCheckpoint, saveCheckpoint, saveSafetensors } from "../io/tensors-node.ts";
import { noGrad } from "../core/trace.ts";
import { arange, Generator, manualSeed } from "../ops/creation.ts";
import type { Sequential } from "../nn/container.ts";
import { loadModuleState } from "../nn/functional.ts";
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { crossEntropy } from "../nn/loss.ts";
import {
  fromOptimizer,
  type FunctionalOptimizer,
  hyperOf,
  stateFromOptimizer,
  stateToOptimizer,
} from "../optim/functional.ts";
import { makeTrainStep, type TrainState } from "../optim/functional-step.ts";
import { clipGradNorm_ } from "../optim/clip.ts";
import { treeFlatten, treeMap } from "../tree.ts";
import type { Optimizer, OptimizerStateDict } from "../optim/optimizer.ts";
import type { SchedulerStateDict } from "../optim/scheduler.ts";
import { ConfigError, mergeResumeConfig, resolveConfig, type TrainConfig, type TrainInput } from "./args.ts";
import { buildModel, countParameters, type ModelSpec } from "./models.ts";
import { lockOutDir } from "./outdir.ts";
import { EpochProgress, formatDuration } from "./progress.ts";
import {
  type EpochMetrics,
  epochHeader,
  epochLine,
  formatConfusion,
  type MetricsFile,
  type StepCurve,
  type TestMetrics,
  testMetrics,
  writeConfusion,
  writeCurves,
  writeMetrics,
} from "./report.ts";
import {
  applyScheduleAt,
  confusionOf,
  deriveSeed,
  evaluate,
  makeOptimizer,
  makeScheduler,
  prepareData,
  STREAM,
} from "./setup.ts";
import { checkResumeExtra, MODEL_META, savedModelInfo } from "./saved.ts";
import { startDistributedRun } from "../distributed/train-run.ts";
import { type DistributedTrainStep, makeDistributedTrainStep } from "../distributed/train-step.ts";

/** Metadata keys of model.safetensors (defined in saved.ts, which validates them when read back). */
export { MODEL_META } from "./saved.ts";

/** The files a run writes and rewrites (their temporary files are cleaned when a run takes the directory). */
const OUTPUT_NAMES = ["checkpoint.safetensors", "model.safetensors", "metrics.json"] as const;

/** How a run reports and is controlled (everything optional). */
export interface TrainOptions {
  /** Continue the run saved in this directory (or checkpoint file). */
  resume?: string;
  /** Abort to stop after the current step (the CLI aborts it on SIGINT). */
  signal?: AbortSignal;
  /** Line sink for the report (default console.log). */
  log?: (line: string) => void;
  /** Draw a redrawn progress bar (default: process.stdout.isTTY). */
  tty?: boolean;
  /** Called after every training step with the global step count (tests use it to interrupt). */
  onStep?: (globalStep: number) => void;
  /**
   * Data-parallel training over the ranks of an MPI job (`mpirun -np N chainrule train --distributed`): each
   * global batch is split over the ranks, gradients are averaged (DistributedDataParallel), and only rank 0
   * prints and writes files. See src/distributed/train-run.ts.
   */
  distributed?: boolean;
}

/** What `runTrain` returns. */
export interface TrainResult {
  status: "completed" | "interrupted";
  outDir: string;
  config: TrainConfig;
  metrics: MetricsFile;
  /** Paths of the files written. */
  files: string[];
  /** The trained network (in eval mode after the final evaluation). */
  net: Sequential;
}

/** Where a run is: epoch index (0-based) and steps done within it. */
interface Position {
  epoch: number;
  step: number;
  globalStep: number;
}

/** Running sums of the current epoch. */
interface EpochSums {
  loss: number;
  correct: number;
  count: number;
  seconds: number;
}

/** Everything a checkpoint stores besides the model and optimizer tensors. */
interface CheckpointExtra {
  config: TrainConfig;
  spec: ModelSpec;
  classes: string[];
  position: Position;
  sums: EpochSums;
  scheduler: SchedulerStateDict | null;
  epochs: EpochMetrics[];
  steps: StepCurve;
  wallTime: number;
  startedAt: string;
}

function checkpointPath(resume: string): string {
  if (existsSync(resume) && statSync(resume).isDirectory()) return join(resume, "checkpoint.safetensors");
  return resume;
}

/** The checkpoint's extras, once checkResumeExtra has checked every field the loop relies on. */
function asCheckpointExtra(path: string, extra: unknown): CheckpointExtra {
  checkResumeExtra(path, extra);
  return extra as CheckpointExtra;
}

function readResume(resume: string): {
  path: string;
  extra: CheckpointExtra;
  model: Record<string, Tensor>;
  optim: OptimizerStateDict;
} {
  const path = checkpointPath(resume);
  if (!existsSync(path)) {
    throw new Error(
      `--resume: no checkpoint at ${path} (expected the output directory of a chainrule train run)`,
    );
  }
  // header first: the spec is checked against the tensors' shapes before any data is read
  const header = readSafetensorsFileHeader(path);
  if (header.metadata[CHECKPOINT_KEY] === undefined) {
    throw new Error(`--resume: ${path} is not a checkpoint written by chainrule train`);
  }
  savedModelInfo(path, header.metadata, header.entries);
  const ck = loadCheckpoint(path);
  if (ck.extra === undefined || ck.optimizer === undefined) {
    throw new Error(`--resume: ${path} is not a checkpoint written by chainrule train`);
  }
  const extra = asCheckpointExtra(path, ck.extra);
  try {
    resolveConfig(extra.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new FormatError(`${path}: metadata "extra", key "config": ${err.message}`);
    }
    throw err;
  }
  return { path, extra, model: ck.model, optim: ck.optimizer as OptimizerStateDict };
}

/** A jitted trainer: `step` returns [loss, logits]; `sync` writes the state back into the model and optimizer. */
interface JitTrainer {
  /** One step; `weight` multiplies the loss before backward (a rank's share, --distributed). */
  step(x: Tensor, y: Tensor, weight?: number): [Tensor, Tensor];
  sync(): void;
}

/** makeDistributedTrainStep's call, which makeTrainStep's (no weight) can stand for. */
type WeightedStep = ((
  ...a: Parameters<DistributedTrainStep<Tensor, Tensor, Tensor>>
) => [Tensor, TrainState, Tensor]) & {
  init(): TrainState;
};

/**
 * The --jit path (also of the text model): parameters, buffers and optimizer state live in one state pytree stepped by a jitted training
 * step (forward, cross-entropy, backward, update; the state donated), with the learning rate and momentum read
 * from the stateful optimizer's group each step, so its scheduler drives the run as in the eager path. `sync`
 * writes the state back into the model and the optimizer (before evaluation and checkpoints). Dropout masks are
 * drawn by the layers' generator outside the program, in the order the eager forward draws them.
 *
 * With `distributed` (--jit with --distributed) the step runs on the ranks of the process group, through
 * distributed.makeDistributedTrainStep (forward and backward compiled, the gradients averaged over the ranks,
 * then the clipped update compiled), so that clipping sees the averaged gradients, as in the eager DDP path.
 * The first step starts every rank from rank 0's parameters and buffers.
 */
export function jitTrainer(
  net: Module<[Tensor], Tensor>,
  opt: Optimizer<{ lr: number }>,
  loss: (logits: Tensor, y: Tensor) => Tensor,
  clipGrad: number,
  distributed = false,
): JitTrainer {
  const f: FunctionalOptimizer = fromOptimizer(opt);
  const named = Object.fromEntries(net.namedParameters().filter(([, p]) => p.requiresGrad));
  const update = clipGrad > 0 ? clippedOptimizer(f, clipGrad) : f;
  const step: WeightedStep = distributed
    ? makeDistributedTrainStep(net, loss, update)
    : makeTrainStep(net, loss, update); // (no weight: it is 1 without --distributed)
  let state: TrainState | null = null; // made at the first step, from the model and optimizer as loaded
  return {
    step(x, y, weight = 1) {
      state ??= { ...step.init(), opt: stateFromOptimizer(f, opt, named) };
      const [l, next, logits] = step(state, x, y, hyperOf(f, opt), weight);
      state = next;
      return [l, logits];
    },
    sync() {
      if (state === null) return;
      loadModuleState(net, state);
      stateToOptimizer(f, state.opt, opt, named);
    },
  };
}

/**
 * Cross-entropy of logits [N, C] against class indices [N] as one-hot targets: crossEntropy's class-index path
 * checks the indices on the host, which a trace cannot do.
 */
export function oneHotCrossEntropy(numClasses: number): (logits: Tensor, y: Tensor) => Tensor {
  const classes = arange(numClasses, undefined, 1, { dtype: "int32" });
  return (logits, y) => crossEntropy(logits, y.unsqueeze(1).eq(classes).to(logits.dtype));
}

/**
 * `f` with the gradients' joint 2-norm clipped to `maxNorm` before each update (clipGradNorm_ as traceable
 * tensor arithmetic: the scale min(1, maxNorm / (norm + 1e-6)) stays on the device), for jitted steps.
 */
export function clippedOptimizer(f: FunctionalOptimizer, maxNorm: number): FunctionalOptimizer {
  return {
    name: f.name,
    options: f.options,
    dynamic: f.dynamic,
    moments: f.moments,
    init: (params) => f.init(params),
    update(grads, state, params, hyper) {
      const leaves = treeFlatten(grads)[0];
      if (leaves.length === 0) return f.update(grads, state, params, hyper);
      let sq = leaves[0].square().sum().to("float64");
      for (let i = 1; i < leaves.length; i++) sq = sq.add(leaves[i].square().sum().to("float64"));
      const coef = sq.sqrt().add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
      const scaled = treeMap(grads, (g) => g.mul(coef.to(g.dtype))) as typeof grads;
      return f.update(scaled, state, params, hyper);
    },
  };
}

/** The loss became NaN or infinite: training stops, keeping the last checkpoint written before it. */
export class DivergedError extends Error {
  override name = "DivergedError";
}

/**
 * Train a model as `chainrule train` does and return the metrics. Throws a ConfigError for bad options.
 *
 * @example
 * ```ts
 * const r = await runTrain({ limit: 2000, epochs: 2, out: "runs/quick", quiet: true });
 * r.metrics.test?.accuracy; // about 0.9
 * await runTrain({ epochs: 3 }, { resume: "runs/quick" }); // one more epoch
 * ```
 */
export async function runTrain(input: TrainInput, opts: TrainOptions = {}): Promise<TrainResult> {
  const dist = opts.distributed ? startDistributedRun() : null;
  const log = dist?.isMain === false ? () => {} : (opts.log ?? ((line: string) => console.log(line)));
  if (input.model === "transformer") {
    throw new ConfigError(
      "runTrain: --model transformer is a language model; train it with runTrainText (text-train.ts)",
    );
  }
  const saved = opts.resume === undefined ? null : readResume(opts.resume);
  const config =
    saved === null
      ? resolveConfig(input)
      : mergeResumeConfig(saved.extra.config, {
          ...input,
          // how this session runs and talks is its own choice, not the saved run's
          quiet: input.quiet ?? false,
          backend: input.backend ?? null,
          jit: input.jit ?? false,
          // where the user said: --out, else the directory holding the checkpoint (never the `out` recorded
          // inside the checkpoint, which a received file could point anywhere)
          out: input.out ?? dirname(saved.path),
        });
  if (config.backend !== null) setBackend(config.backend);
  const outDir = config.out;
  const say = (line: string) => {
    if (!config.quiet) log(line);
  };

  // ---- data, model, optimizer, schedule ----
  const t0 = performance.now();
  const data = prepareData(config);
  if (config.model === "transformer")
    throw new ConfigError("runTrain: --model transformer: use runTrainText");
  const spec: ModelSpec = saved?.extra.spec ?? {
    name: config.model,
    inputShape: data.inputShape,
    numClasses: data.classes.length,
    hidden: config.model === "mlp" || config.model === "lstm" ? config.hidden : [],
    dropout: config.dropout,
    mean: data.mean,
    std: data.std,
  };
  manualSeed(config.seed);
  const dropoutGen = new Generator(0);
  const { net } = buildModel(spec, { dropoutGenerator: dropoutGen });
  const opt = makeOptimizer(config, net.parameters());
  const dataset = new TensorDataset(data.train.x, data.train.y);
  const stepsPerEpoch = Math.ceil(data.train.x.shape[0] / config.batchSize);
  const sched = makeScheduler(config, opt, stepsPerEpoch);
  const jitted: JitTrainer | null = !config.jit
    ? null
    : jitTrainer(net, opt, oneHotCrossEntropy(data.classes.length), config.clipGrad, dist !== null);
  let pos: Position = { epoch: 0, step: 0, globalStep: 0 };
  let sums: EpochSums = { loss: 0, correct: 0, count: 0, seconds: 0 };
  const epochs: EpochMetrics[] = saved?.extra.epochs ?? [];
  const steps: StepCurve = saved?.extra.steps ?? { x: [], loss: [], acc: [] };
  const wallBefore = saved?.extra.wallTime ?? 0;
  const startedAt = saved?.extra.startedAt ?? new Date().toISOString();
  if (saved !== null) {
    net.loadStateDict(saved.model);
    opt.loadStateDict(saved.optim);
    pos = saved.extra.position;
    sums = saved.extra.sums;
    const done = pos.epoch + (pos.step > 0 ? 1 : 0);
    if (config.epochs < done) {
      throw new ConfigError(
        `--epochs ${config.epochs}: the run being resumed has already trained ${done} epoch(s); give --epochs ${done} or more`,
      );
    }
    if (sched !== null && saved.extra.scheduler !== null) {
      sched.loadStateDict(saved.extra.scheduler);
      // a different epoch count re-plans the schedule: take its value at the current step
      if (config.epochs !== saved.extra.config.epochs) applyScheduleAt(sched, pos.globalStep);
    }
  }
  // after a resume loaded the weights: DDP broadcasts rank 0's (the jitted step does at its first call)
  const model = dist !== null && jitted === null ? dist.wrap(net) : net;
  mkdirSync(outDir, { recursive: true }); // only once the data and the model are there
  // one run per directory; stale temporary files of a killed run are removed once the lock is held
  const lock = dist?.isMain === false ? { release() {} } : lockOutDir(outDir, OUTPUT_NAMES);
  try {
    return await trainIn();
  } finally {
    lock.release();
  }

  async function trainIn(): Promise<TrainResult> {
    const params = countParameters(net);
    const backendName = getBackend().name;
    // the native kernels' thread count ($CHAINRULE_NUM_THREADS or --threads), shown with the backend
    const threads = backendName === "native" ? nativeInfo().threads : 0;
    const backendDesc =
      threads > 0 ? `${backendName} (${threads} thread${threads === 1 ? "" : "s"})` : backendName;

    const metricsFile = (
      status: MetricsFile["status"],
      test: TestMetrics | null,
      wallTime: number,
    ): MetricsFile => ({
      status,
      config,
      model: { ...spec, parameters: params },
      backend: backendName,
      classes: data.classes,
      sizes: { train: data.train.x.shape[0], val: data.val?.x.shape[0] ?? 0, test: data.test.x.shape[0] },
      epochs,
      steps,
      test,
      wallTime,
      startedAt,
      updatedAt: new Date().toISOString(),
    });
    const files = {
      metrics: join(outDir, "metrics.json"),
      model: join(outDir, "model.safetensors"),
      checkpoint: join(outDir, "checkpoint.safetensors"),
    };
    const wall = () => wallBefore + (performance.now() - t0) / 1000;
    const saveModel = () =>
      saveSafetensors(files.model, net.stateDict(), {
        [MODEL_META.spec]: JSON.stringify(spec),
        [MODEL_META.classes]: JSON.stringify(data.classes),
        [MODEL_META.data]: config.data,
        format: "pt",
      });
    /** Write the checkpoint, the model and metrics.json (in this order: metrics last); returns the metrics. */
    const saveState = (status: MetricsFile["status"], test: TestMetrics | null = null): MetricsFile => {
      if (dist?.isMain === false) return metricsFile(status, test, wall()); // rank 0 writes
      const extra: CheckpointExtra = {
        config,
        spec,
        classes: data.classes,
        position: pos,
        sums,
        scheduler: sched?.stateDict() ?? null,
        epochs,
        steps,
        wallTime: wall(),
        startedAt,
      };
      saveCheckpoint(files.checkpoint, {
        model: net.stateDict(),
        optimizer: opt.stateDict(),
        extra: { ...extra },
      });
      saveModel();
      const m = metricsFile(status, test, extra.wallTime);
      writeMetrics(outDir, m);
      return m;
    };

    const sizes = `${data.train.x.shape[0]} train / ${data.val?.x.shape[0] ?? 0} val / ${data.test.x.shape[0]} test`;
    say(
      `${saved === null ? "training" : `resuming at epoch ${pos.epoch + 1}, step ${pos.step}:`} ${spec.name} (${params.toLocaleString("en-US")} parameters) on ${config.data} (${sizes}), ` +
        `${config.optimizer} lr ${config.lr} ${config.schedule === "none" ? "constant" : config.schedule}, batch ${config.batchSize}, ${config.epochs} epoch${config.epochs === 1 ? "" : "s"}, seed ${config.seed}, backend ${backendDesc}`,
    );
    say(`output: ${resolve(outDir)}`);
    if (pos.epoch < config.epochs) say(epochHeader());

    // ---- the loop ----
    let lastLr = opt.paramGroups[0].lr; // the lr of the latest step (reported per epoch)
    const progress = new EpochProgress({
      tty: dist?.isMain === false ? false : (opts.tty ?? process.stdout.isTTY === true),
      quiet: config.quiet,
      log,
    });
    const interrupted = () => opts.signal?.aborted === true;
    /** Nothing is saved from a diverged state: the checkpoint on disk is the last good one, if any. */
    const diverged = (value: number): DivergedError => {
      const kept =
        epochs.length > 0 && existsSync(files.checkpoint)
          ? `the last good checkpoint (after epoch ${epochs.length}) is kept in ${files.checkpoint}`
          : "no checkpoint was written before it";
      return new DivergedError(
        `train: the loss became ${value} at epoch ${pos.epoch + 1}, step ${pos.step + 1} (global step ${pos.globalStep + 1}) with ${config.optimizer} lr ${config.lr}; training stopped (try a smaller --lr); ${kept}`,
      );
    };
    const stopHere = (): TrainResult => {
      progress.stop();
      jitted?.sync();
      const metrics = saveState("interrupted");
      say(
        `interrupted at epoch ${pos.epoch + 1}, step ${pos.step}/${stepsPerEpoch}; saved ${files.checkpoint}`,
      );
      return {
        status: "interrupted",
        outDir,
        config,
        metrics,
        files: Object.values(files),
        net,
      };
    };
    while (pos.epoch < config.epochs) {
      const epoch = pos.epoch;
      const epochStart = performance.now() - sums.seconds * 1000;
      const loader = new DataLoader(dataset, {
        batchSize: config.batchSize,
        shuffle: true,
        generator: new Generator(deriveSeed(config.seed, STREAM.SHUFFLE, epoch)),
      });
      progress.start(epoch + 1, config.epochs, stepsPerEpoch, pos.step);
      let b = 0;
      for (const [gx, gy] of loader) {
        if (b++ < pos.step) continue; // resumed mid-epoch: these batches were trained on before
        const [x, y, share, rows] = dist?.shard(gx, gy) ?? [gx, gy, 1, gy.shape[0]];
        if (interrupted()) return stopHere();
        net.train();
        dropoutGen.seed(deriveSeed(config.seed, STREAM.DROPOUT, pos.globalStep));
        let logits: Tensor;
        let lossValue: number;
        if (jitted !== null) {
          const [loss, out] = jitted.step(x, y, share);
          logits = out;
          lossValue = loss.item();
          if (!Number.isFinite(lossValue)) {
            progress.stop();
            throw diverged(lossValue);
          }
        } else {
          logits = model.call(x) as Tensor;
          const loss = crossEntropy(logits, y);
          lossValue = loss.item();
          if (!Number.isFinite(lossValue)) {
            progress.stop();
            throw diverged(lossValue);
          }
          opt.zeroGrad();
          (share === 1 ? loss : loss.mul(share)).backward();
          if (config.clipGrad > 0) clipGradNorm_(net.parameters(), config.clipGrad);
          opt.step();
        }
        lastLr = opt.paramGroups[0].lr;
        sched?.step();
        const [lossAll, correct, n] = (dist?.reduceStep ?? ((l: number, c: number, k: number) => [l, c, k]))(
          rows === 0 ? 0 : lossValue * rows,
          rows === 0 ? 0 : noGrad(() => logits.argmax(1).eq(y).sum().item()),
          rows,
        );
        lossValue = lossAll / n;
        sums.loss += lossValue * n;
        sums.correct += correct;
        sums.count += n;
        pos = { epoch, step: pos.step + 1, globalStep: pos.globalStep + 1 };
        steps.x.push(pos.globalStep / stepsPerEpoch);
        steps.loss.push(lossValue);
        steps.acc.push(correct / n);
        const seconds = (performance.now() - epochStart) / 1000;
        sums.seconds = seconds;
        progress.update(pos.step, {
          loss: sums.loss / sums.count,
          speed: sums.count / Math.max(seconds, 1e-9),
        });
        opts.onStep?.(pos.globalStep);
        await new Promise<void>((r) => setImmediate(r));
      }
      if (interrupted()) return stopHere();
      progress.stop();
      jitted?.sync();
      const val = data.val === null ? null : evaluate(net, data.val);
      const seconds = (performance.now() - epochStart) / 1000;
      const m: EpochMetrics = {
        epoch: epoch + 1,
        trainLoss: sums.loss / sums.count,
        trainAcc: sums.correct / sums.count,
        valLoss: val?.loss ?? null,
        valAcc: val?.accuracy ?? null,
        lr: lastLr,
        seconds,
        examplesPerSec: sums.count / seconds,
      };
      epochs.push(m);
      say(epochLine(m, config.epochs));
      pos = { epoch: epoch + 1, step: 0, globalStep: pos.globalStep };
      sums = { loss: 0, correct: 0, count: 0, seconds: 0 };
      saveState("running");
    }

    // ---- test set and outputs ----
    const t = evaluate(net, data.test);
    const confusion = confusionOf(t.predictions, data.test.y, data.classes.length);
    const test = testMetrics(confusion, t.loss);
    const final = saveState("completed", test);
    const written = [files.metrics, files.model, files.checkpoint];
    if (config.plots && dist?.isMain !== false) {
      written.push(...writeCurves(outDir, final));
      const title = `${spec.name} on ${config.data}: test`;
      written.push(writeConfusion(join(outDir, "confusion.svg"), confusion, data.classes, title));
    }
    log(
      `test accuracy ${(100 * test.accuracy).toFixed(2)}% (${test.correct}/${test.total}), loss ${test.loss.toFixed(4)}, wall time ${formatDuration(final.wallTime)}`,
    );
    say(formatConfusion(confusion, data.classes));
    say("wrote:");
    for (const f of written) say(`  ${f}`);
    return { status: "completed", outDir, config, metrics: final, files: written, net };
  }
}
