/**
 * `chainrule sample` as a function: load the character-level Transformer a `chainrule train --model
 * transformer` run saved, and continue a prompt one character at a time: the model reads the last `context`
 * characters, its next-character logits are divided by the temperature, all but the `topK` largest dropped,
 * and the next character drawn from the softmax by `multinomial` with a seeded generator (temperature 0:
 * always the most likely character).
 */
import { noGrad } from "../core/trace.ts";
import { FormatError } from "../errors.ts";
import { readSafetensorsFileHeader } from "../io/files-node.ts";
import { loadSafetensors } from "../io/tensors-node.ts";
import { Generator, tensor } from "../ops/creation.ts";
import { multinomial } from "../ops/random.ts";
import { modelFile } from "./eval.ts";
import { ConfigError, parseNonNegativeInt, parseNumberIn, parsePositiveInt, LIMITS } from "./args.ts";
import { metadataJson } from "./saved.ts";
import { CharTransformer, checkTextSpec, TEXT_MODEL_META, type TextModelSpec, Vocab } from "./text-model.ts";

/** Bounds of the sampling options. */
export const SAMPLE_LIMITS = { length: 1_000_000, temperature: 100 } as const;

/** How to continue a prompt. */
export interface GenerateOptions {
  /** The text to continue (every character must be in the vocabulary); "" starts from a newline. */
  prompt: string;
  /** Characters to generate. */
  length: number;
  /** Softmax temperature (> 0; 0 picks the most likely character). */
  temperature: number;
  /** Draw only among the k most likely characters (null: all). */
  topK: number | null;
  seed: number;
}

/** Options of {@link runSample} (what `chainrule sample` takes). */
export interface SampleInput {
  /** A run directory of `chainrule train --model transformer`, or its model.safetensors. */
  modelPath: string;
  prompt?: string;
  /** Default 500. */
  length?: number | string;
  /** Default 0.8. */
  temperature?: number | string;
  /** Default none (all characters). */
  topK?: number | string | null;
  /** Default 0. */
  seed?: number | string;
}

/** A loaded language model. */
export interface LoadedTextModel {
  net: CharTransformer;
  spec: TextModelSpec;
  vocab: Vocab;
  path: string;
}

/**
 * Load a model.safetensors written by `chainrule train --model transformer` (or the run directory holding
 * it): the spec and vocabulary from its metadata (checked before any layer is built), then the weights.
 */
export function loadTextModel(modelPath: string): LoadedTextModel {
  const path = modelFile(modelPath);
  const header = readSafetensorsFileHeader(path);
  const raw = header.metadata[TEXT_MODEL_META];
  if (raw === undefined) {
    throw new FormatError(
      `${path}: no "${TEXT_MODEL_META}" metadata; chainrule sample needs a model trained by chainrule train --model transformer${header.metadata["chainrule.model"] !== undefined ? " (this is an image classifier: use chainrule eval)" : ""}`,
    );
  }
  const spec = checkTextSpec(
    metadataJson(path, TEXT_MODEL_META, raw),
    `${path}: metadata "${TEXT_MODEL_META}"`,
  );
  const net = new CharTransformer(spec);
  try {
    net.loadStateDict(loadSafetensors(path).tensors);
  } catch (err) {
    throw new FormatError(
      `${path}: the tensors do not fit the model its metadata describes: ${(err as Error).message}`,
    );
  }
  net.eval();
  return { net, spec, vocab: new Vocab(spec.vocab), path };
}

/**
 * An index drawn from logits: the k largest kept (all with `topK` null), softmax(logits / temperature) computed
 * in float64 on the host, one `multinomial` draw from `gen`; temperature 0 returns the argmax.
 */
export function drawNext(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number | null,
  gen: Generator,
): number {
  const n = logits.length;
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  // the k largest: a threshold at the k-th largest value (ties at the threshold all stay)
  let threshold = Number.NEGATIVE_INFINITY;
  if (topK !== null && topK < n) threshold = Array.from(logits).sort((a, b) => b - a)[topK - 1];
  const max = logits[best];
  const p = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (logits[i] >= threshold) {
      p[i] = Math.exp((logits[i] - max) / temperature);
      total += p[i];
    }
  }
  if (!(total > 0)) return best;
  // one categorical draw from the (unnormalised) weights
  return multinomial(tensor(p, { dtype: "float64" }), 1, { generator: gen }).item();
}

/**
 * Continue `opts.prompt` by `opts.length` characters with `net` (in eval mode, no gradients); returns only the
 * generated characters.
 *
 * @example
 * ```ts
 * const { net, vocab } = loadTextModel("runs/lm");
 * generate(net, vocab, { prompt: "The ", length: 100, temperature: 0.8, topK: 20, seed: 0 });
 * ```
 */
export function generate(net: CharTransformer, vocab: Vocab, opts: GenerateOptions): string {
  let start = opts.prompt;
  if (start === "") {
    if (!vocab.has("\n")) {
      throw new ConfigError("--prompt: give a prompt (the model's vocabulary has no newline to start from)");
    }
    start = "\n";
  }
  const tokens = Array.from(vocab.encode(start, "--prompt"));
  const first = tokens.length;
  const gen = new Generator(opts.seed);
  const ctx = net.spec.context;
  const v = vocab.size;
  noGrad(() => {
    for (let i = 0; i < opts.length; i++) {
      const window = tokens.slice(Math.max(0, tokens.length - ctx));
      const x = tensor(Int32Array.from(window), { dtype: "int32" }).reshape([1, window.length]);
      const logits = net
        .call(x)
        .narrow(1, window.length - 1, 1)
        .reshape([v])
        .dataSync();
      tokens.push(drawNext(logits, opts.temperature, opts.topK, gen));
    }
  });
  return vocab.decode(tokens.slice(first));
}

/** Check the sampling options (the same messages from the command line and from code). */
export function resolveSampleOptions(
  input: Omit<SampleInput, "modelPath">,
  vocabSize: number,
): Omit<GenerateOptions, "prompt"> {
  const length = parsePositiveInt("--length", input.length ?? 500, SAMPLE_LIMITS.length);
  const temperature = parseNumberIn(
    "--temperature",
    input.temperature ?? 0.8,
    0,
    SAMPLE_LIMITS.temperature,
    true,
  );
  const topK =
    input.topK === undefined || input.topK === null
      ? null
      : parsePositiveInt("--top-k", input.topK, vocabSize);
  const seed = parseNonNegativeInt("--seed", input.seed ?? 0, LIMITS.seed);
  return { length, temperature, topK, seed };
}

/**
 * Sample from a saved language model as `chainrule sample` does; returns the prompt and the generated text.
 *
 * @example
 * ```ts
 * runSample({ modelPath: "runs/lm", prompt: "Q: ", length: 200, temperature: 0.7, topK: 10, seed: 1 }).text;
 * ```
 */
export function runSample(input: SampleInput): { prompt: string; text: string; spec: TextModelSpec } {
  const model = loadTextModel(input.modelPath);
  const o = resolveSampleOptions(input, model.vocab.size);
  const prompt = input.prompt ?? "";
  const text = generate(model.net, model.vocab, { ...o, prompt });
  return { prompt, text, spec: model.spec };
}
