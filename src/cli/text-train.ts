/**
 * `chainrule train --model transformer` as a function: `runTrainText(config)` trains the character-level
 * Transformer of text-model.ts on a text corpus (text-data.ts), reports the held-out loss in bits per
 * character every `evalEvery` steps (on the first held-out windows) and at the end of every epoch (on all of
 * them), and writes model.safetensors (weights, spec and vocabulary), metrics.json and loss.svg into the
 * output directory, like `chainrule train` for the image models.
 *
 * Unlike the image models, a text run is not resumable (no checkpoint): Ctrl-C (the `signal`) stops it after
 * the current step and saves the model and the metrics so far (status "interrupted").
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { nativeInfo } from "../backend/native/index.ts";
import { getBackend, setBackend } from "../backend/registry.ts";
import { noGrad } from "../core/trace.ts";
import { saveSafetensors } from "../io/tensors-node.ts";
import { crossEntropy } from "../nn/loss.ts";
import { Generator, manualSeed } from "../ops/creation.ts";
import { clipGradNorm_ } from "../optim/clip.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { linePlot } from "../viz/index.ts";
import { writeFileAtomic } from "../io/files-node.ts";
import { ConfigError, resolveConfig, type TrainConfig, type TrainInput } from "./args.ts";
import { countParameters } from "./models.ts";
import { lockOutDir } from "./outdir.ts";
import { EpochProgress, formatDuration } from "./progress.ts";
import { ema } from "./report.ts";
import { generate } from "./sample.ts";
import { deriveSeed, makeOptimizer, makeScheduler, STREAM } from "./setup.ts";
import { evalWindows, epochWindows, prepareText, readCorpus, windowBatch } from "./text-data.ts";
import { CharTransformer, TEXT_MODEL_META, type TextModelSpec } from "./text-model.ts";
import { DivergedError, jitTrainer, oneHotCrossEntropy, type TrainOptions } from "./train.ts";

/** Windows evaluated at each periodic evaluation (the end-of-epoch evaluations take every held-out window). */
export const PERIODIC_EVAL_WINDOWS = 256;

/** One held-out evaluation. */
export interface TextEval {
  /** Global step after which it ran. */
  step: number;
  /** Mean cross-entropy per character in nats, and the same in bits (bits per character). */
  loss: number;
  bpc: number;
  /** Characters predicted. */
  chars: number;
}

/** One epoch of a text run. */
export interface TextEpochMetrics {
  epoch: number;
  /** Mean training loss of the epoch's steps (nats per character) and in bits per character. */
  trainLoss: number;
  trainBpc: number;
  /** The held-out result on every held-out window (null without a held-out part). */
  val: TextEval | null;
  lr: number;
  seconds: number;
  charsPerSec: number;
}

/** The content of a text run's metrics.json. */
export interface TextMetricsFile {
  status: "running" | "completed" | "interrupted";
  config: TrainConfig;
  model: Omit<TextModelSpec, "vocab"> & { vocabSize: number; parameters: number };
  backend: string;
  source: string;
  sizes: { trainChars: number; valChars: number };
  /** Training loss of every step (nats per character); x is the global step. */
  steps: { x: number[]; loss: number[] };
  /** Periodic and end-of-epoch held-out evaluations. */
  evals: TextEval[];
  epochs: TextEpochMetrics[];
  /** The last full held-out evaluation (null without a held-out part or before the first epoch ends). */
  final: TextEval | null;
  /** A sample drawn at the end of the run (seeded, temperature 0.8, top-k 20). */
  sample: string | null;
  wallTime: number;
  startedAt: string;
  updatedAt: string;
}

/** What `runTrainText` returns. */
export interface TextTrainResult {
  status: "completed" | "interrupted";
  outDir: string;
  config: TrainConfig;
  metrics: TextMetricsFile;
  files: string[];
  net: CharTransformer;
}

const LN2 = Math.log(2);

/** Mean next-character loss of `net` on windows of `tokens`, under noGrad in eval mode. */
export function evaluateText(
  net: CharTransformer,
  tokens: Int32Array,
  context: number,
  maxWindows = Number.POSITIVE_INFINITY,
  batchSize = 64,
): { loss: number; chars: number } {
  const all = evalWindows(tokens.length, context);
  const starts = all.subarray(0, Math.min(all.length, maxWindows));
  net.eval();
  let sum = 0;
  noGrad(() => {
    for (let s = 0; s < starts.length; s += batchSize) {
      const [x, y] = windowBatch(tokens, starts.subarray(s, s + batchSize), context);
      const logits = net.call(x);
      sum += crossEntropy(logits.reshape([-1, logits.shape[2]]), y.reshape([-1]), {
        reduction: "sum",
      }).item();
    }
  });
  const chars = starts.length * context;
  return { loss: chars > 0 ? sum / chars : Number.NaN, chars };
}

/**
 * Train the character-level Transformer as `chainrule train --model transformer` does.
 *
 * @example
 * ```ts
 * const r = await runTrainText({ model: "transformer", data: "text:notes.txt", layers: 2, width: 64,
 *   context: 64, out: "runs/lm", quiet: true });
 * r.metrics.final?.bpc; // held-out bits per character
 * ```
 */
export async function runTrainText(input: TrainInput, opts: TrainOptions = {}): Promise<TextTrainResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  if (opts.resume !== undefined) {
    throw new ConfigError(
      "--resume: a --model transformer run writes no checkpoint and cannot be resumed (train it again with more --epochs)",
    );
  }
  const config = resolveConfig({ ...input, model: "transformer" });
  if (config.backend !== null) setBackend(config.backend);
  const say = (line: string) => {
    if (!config.quiet) log(line);
  };
  const t0 = performance.now();
  const data = prepareText(readCorpus(config.data), config.valFraction, config.context, config.limit);
  const spec: TextModelSpec = {
    name: "transformer",
    vocab: [...data.vocab.chars],
    layers: config.layers,
    width: config.width,
    heads: config.heads,
    context: config.context,
    dropout: config.dropout,
  };
  manualSeed(config.seed);
  const dropoutGen = new Generator(0);
  const net = new CharTransformer(spec, { generator: dropoutGen });
  const opt = makeOptimizer(config, net.parameters());
  const T = config.context;
  const stepsPerEpoch = Math.ceil(
    epochWindows(data.train.length, T, new Generator(deriveSeed(config.seed, STREAM.SHUFFLE, 0))).length /
      config.batchSize,
  );
  const sched = makeScheduler(config, opt, stepsPerEpoch);
  const v = data.vocab.size;
  const lossOf = (logits: Tensor, y: Tensor) => crossEntropy(logits.reshape([-1, v]), y.reshape([-1]));
  const jitted = config.jit
    ? jitTrainer(
        net,
        opt,
        (logits, y) => oneHotCrossEntropy(v)(logits.reshape([-1, v]), y.reshape([-1])),
        config.clipGrad,
      )
    : null;
  const outDir = config.out;
  mkdirSync(outDir, { recursive: true });
  const lock = lockOutDir(outDir, ["model.safetensors", "metrics.json"]);
  try {
    return await trainIn();
  } finally {
    lock.release();
  }

  async function trainIn(): Promise<TextTrainResult> {
    const params = countParameters(net);
    const backendName = getBackend().name;
    const threads = backendName === "native" ? nativeInfo().threads : 0;
    const backendDesc =
      threads > 0 ? `${backendName} (${threads} thread${threads === 1 ? "" : "s"})` : backendName;
    const startedAt = new Date().toISOString();
    const steps = { x: [] as number[], loss: [] as number[] };
    const evals: TextEval[] = [];
    const epochs: TextEpochMetrics[] = [];
    let final: TextEval | null = null;
    let sample: string | null = null;
    const files = { model: join(outDir, "model.safetensors"), metrics: join(outDir, "metrics.json") };
    const wall = () => (performance.now() - t0) / 1000;
    const { vocab: _vocab, ...modelShape } = spec;
    const save = (status: TextMetricsFile["status"]): TextMetricsFile => {
      saveSafetensors(files.model, net.stateDict(), {
        [TEXT_MODEL_META]: JSON.stringify(spec),
        "chainrule.data": config.data,
        format: "pt",
      });
      const m: TextMetricsFile = {
        status,
        config,
        model: { ...modelShape, vocabSize: v, parameters: params },
        backend: backendName,
        source: data.source,
        sizes: { trainChars: data.train.length, valChars: data.val.length },
        steps,
        evals,
        epochs,
        final,
        sample,
        wallTime: wall(),
        startedAt,
        updatedAt: new Date().toISOString(),
      };
      writeFileAtomic(files.metrics, `${JSON.stringify(m, null, 2)}\n`);
      return m;
    };
    const heldOut = (step: number, maxWindows?: number): TextEval | null => {
      if (data.val.length === 0) return null;
      jitted?.sync();
      const r = evaluateText(net, data.val, T, maxWindows);
      const e = { step, loss: r.loss, bpc: r.loss / LN2, chars: r.chars };
      evals.push(e);
      return e;
    };

    say(
      `training transformer (${params.toLocaleString("en-US")} parameters: ${config.layers} layers, width ${config.width}, ${config.heads} heads, context ${T}, vocabulary ${v}) on ${data.source} (${data.train.length.toLocaleString("en-US")} train / ${data.val.length.toLocaleString("en-US")} held-out characters), ` +
        `${config.optimizer} lr ${config.lr} ${config.schedule === "none" ? "constant" : config.schedule}, batch ${config.batchSize} x ${T}, ${config.epochs} epoch${config.epochs === 1 ? "" : "s"} of ${stepsPerEpoch} steps, clip ${config.clipGrad || "off"}, seed ${config.seed}, backend ${backendDesc}${config.jit ? ", jit" : ""}`,
    );
    say(`output: ${resolve(outDir)}`);
    const progress = new EpochProgress({
      tty: opts.tty ?? process.stdout.isTTY === true,
      quiet: config.quiet,
      log,
    });
    const interrupted = () => opts.signal?.aborted === true;
    let globalStep = 0;
    let lastLr = opt.paramGroups[0].lr;
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      const epochStart = performance.now();
      const starts = epochWindows(
        data.train.length,
        T,
        new Generator(deriveSeed(config.seed, STREAM.SHUFFLE, epoch)),
      );
      progress.start(epoch + 1, config.epochs, stepsPerEpoch, 0);
      let lossSum = 0;
      let count = 0;
      for (let b = 0; b < stepsPerEpoch; b++) {
        if (interrupted()) {
          progress.stop();
          jitted?.sync();
          const m = save("interrupted");
          say(`interrupted at epoch ${epoch + 1}, step ${b}/${stepsPerEpoch}; saved ${files.model}`);
          return { status: "interrupted", outDir, config, metrics: m, files: Object.values(files), net };
        }
        const [x, y] = windowBatch(
          data.train,
          starts.subarray(b * config.batchSize, (b + 1) * config.batchSize),
          T,
        );
        net.train();
        dropoutGen.seed(deriveSeed(config.seed, STREAM.DROPOUT, globalStep));
        let lossValue: number;
        if (jitted !== null) {
          lossValue = jitted.step(x, y)[0].item();
        } else {
          const loss = lossOf(net.call(x), y);
          lossValue = loss.item();
          if (Number.isFinite(lossValue)) {
            opt.zeroGrad();
            loss.backward();
            if (config.clipGrad > 0) clipGradNorm_(net.parameters(), config.clipGrad);
            opt.step();
          }
        }
        if (!Number.isFinite(lossValue)) {
          progress.stop();
          throw new DivergedError(
            `train: the loss became ${lossValue} at epoch ${epoch + 1}, step ${b + 1} (global step ${globalStep + 1}) with ${config.optimizer} lr ${config.lr}; training stopped (try a smaller --lr)`,
          );
        }
        lastLr = opt.paramGroups[0].lr;
        sched?.step();
        globalStep++;
        lossSum += lossValue;
        count++;
        steps.x.push(globalStep);
        steps.loss.push(lossValue);
        const seconds = (performance.now() - epochStart) / 1000;
        // the bar shows bits per character and windows (examples) per second
        progress.update(b + 1, { loss: lossValue / LN2, speed: (count * config.batchSize) / seconds });
        if (globalStep % config.evalEvery === 0 && b + 1 < stepsPerEpoch) {
          const e = heldOut(globalStep, PERIODIC_EVAL_WINDOWS);
          if (e !== null && !config.quiet) {
            progress.stop();
            say(
              `step ${globalStep}: train ${(lossValue / LN2).toFixed(3)} bpc, held-out ${e.bpc.toFixed(3)} bpc (first ${e.chars.toLocaleString("en-US")} characters), ${formatDuration(wall())}`,
            );
            progress.start(epoch + 1, config.epochs, stepsPerEpoch, b + 1);
          }
        }
        opts.onStep?.(globalStep);
        await new Promise<void>((r) => setImmediate(r));
      }
      progress.stop();
      const val = heldOut(globalStep);
      if (val !== null) final = val;
      const seconds = (performance.now() - epochStart) / 1000;
      const em: TextEpochMetrics = {
        epoch: epoch + 1,
        trainLoss: lossSum / count,
        trainBpc: lossSum / count / LN2,
        val,
        lr: lastLr,
        seconds,
        charsPerSec: (count * config.batchSize * T) / seconds,
      };
      epochs.push(em);
      say(
        `epoch ${epoch + 1}/${config.epochs}: train ${em.trainBpc.toFixed(3)} bpc, held-out ${val === null ? "-" : `${val.bpc.toFixed(3)} bpc (${val.chars.toLocaleString("en-US")} characters)`}, ${formatDuration(seconds)}, ${Math.round(em.charsPerSec)} chars/s`,
      );
      if (epoch + 1 < config.epochs) save("running");
    }
    jitted?.sync();
    net.eval();
    sample = generate(net, data.vocab, {
      prompt: "",
      length: 200,
      temperature: 0.8,
      topK: 20,
      seed: config.seed,
    });
    const m = save("completed");
    const written = [files.metrics, files.model];
    if (config.plots) written.push(writeTextCurves(outDir, m));
    log(
      `held-out ${final === null ? "-" : `${final.bpc.toFixed(3)} bits per character (loss ${final.loss.toFixed(4)} nats, ${final.chars.toLocaleString("en-US")} characters)`}, wall time ${formatDuration(m.wallTime)}`,
    );
    say(`sample (temperature 0.8, top-k 20, seed ${config.seed}):\n${sample}`);
    say("wrote:");
    for (const f of written) say(`  ${f}`);
    return { status: "completed", outDir, config, metrics: m, files: written, net };
  }
}

/** Write loss.svg: training bits per character per step (smoothed) and the held-out evaluations; its path. */
export function writeTextCurves(dir: string, m: TextMetricsFile): string {
  const bpc = m.steps.loss.map((l) => l / LN2);
  const svg = linePlot({
    title: `transformer on ${m.config.data}: bits per character`,
    xLabel: "step",
    yLabel: "bits per character",
    series: [
      { name: "train (per step, smoothed)", x: m.steps.x, y: ema(bpc) },
      { name: "held-out", x: m.evals.map((e) => e.step), y: m.evals.map((e) => e.bpc) },
    ],
    width: 720,
    height: 440,
  });
  const path = join(dir, "loss.svg");
  writeFileAtomic(path, svg);
  return path;
}
