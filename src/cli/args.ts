/**
 * The configuration of a `chainrule train` run: its type, the defaults, the allowed choices, and the checks
 * shared by the command line (commander argument parsers) and in-process callers (`runTrain(config)`), so both
 * report a bad value the same way: the option, the value, and what is allowed.
 *
 * The defaults are chosen so that `chainrule train` with no arguments finishes in about a minute on a 2-core
 * machine with the js reference backend and reaches about 95% test accuracy on the embedded digits: the MLP
 * (the fastest model per accuracy point on that backend), Adam with a one-cycle schedule, batch 64, 4 epochs.
 * Some models change a few defaults ({@link MODEL_DEFAULTS}): the row-by-row LSTM trains longer with gradient
 * clipping, the character-level Transformer reads the fortunes corpus in batches of 32 windows.
 */
import { existsSync, statSync } from "node:fs";
import { MODEL_NAMES, type ModelName, SPEC_LIMITS } from "./models.ts";

/** Built-in datasets (anything else must be a directory of IDX files). */
export const DATA_NAMES = ["digits", "fashion-mnist", "mnist"] as const;
/** Built-in text corpora of `--model transformer` (any other text: `text:<file>`). */
export const TEXT_DATA_NAMES = ["fortunes"] as const;
/** The prefix of a text file given as `--data text:<file>`. */
export const TEXT_PREFIX = "text:";
/** Optimizers: "momentum" is SGD with momentum 0.9 (Nesterov off). */
export const OPTIMIZER_NAMES = ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"] as const;
/** Learning-rate schedules (all stepped once per batch). */
export const SCHEDULE_NAMES = ["none", "cosine", "onecycle", "step"] as const;
/** Backends that `--backend` may select (they must also be registered to load). */
export const BACKEND_NAMES = ["js", "native", "wasm"] as const;

export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/** A complete, validated training configuration (what metrics.json and the checkpoint record). */
export interface TrainConfig {
  /** "digits", "fashion-mnist", "mnist", or a directory holding an MNIST-like IDX quadruple. */
  data: string;
  model: ModelName;
  /** Hidden layer sizes of the MLP; the LSTM's hidden size (one entry per stacked layer, all equal). */
  hidden: number[];
  /** Dropout before the output layer (mlp, cnn, lstm); everywhere inside the Transformer's layers. */
  dropout: number;
  /** Transformer: number of layers. */
  layers: number;
  /** Transformer: model width (embedding size); the feed-forward block is 4 times wider. */
  width: number;
  /** Transformer: attention heads (must divide width). */
  heads: number;
  /** Transformer: context length in characters. */
  context: number;
  /** Clip the gradients' joint 2-norm to this value before each update (0: no clipping). */
  clipGrad: number;
  /** Transformer: evaluate the held-out loss every this many steps (and at the end of every epoch). */
  evalEvery: number;
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerName;
  weightDecay: number;
  schedule: ScheduleName;
  /** Fraction of the training set held out for validation (0 for none). */
  valFraction: number;
  seed: number;
  /** Output directory. */
  out: string;
  /** Use only the first `limit` training examples (null: all). */
  limit: number | null;
  /** Backend name, or null to keep the current one. */
  backend: string | null;
  /** Write loss.svg, accuracy.svg and confusion.svg. */
  plots: boolean;
  quiet: boolean;
  /** Run each training step as one jit-compiled program (forward, backward and optimizer update). */
  jit: boolean;
}

/** What a caller may give: any subset of the config (defaults fill the rest). */
export type TrainInput = Partial<TrainConfig>;

/** The defaults (out is resolved at run time to runs/<timestamp>; lr depends on the optimizer). */
export const DEFAULTS = {
  data: "digits",
  model: "mlp",
  hidden: [256, 128],
  dropout: 0,
  layers: 4,
  width: 128,
  heads: 4,
  context: 128,
  clipGrad: 0,
  evalEvery: 100,
  epochs: 4,
  batchSize: 64,
  optimizer: "adam",
  weightDecay: 0,
  schedule: "onecycle",
  valFraction: 0.1,
  seed: 0,
  limit: null,
  backend: null,
  plots: true,
  quiet: false,
  jit: false,
} as const satisfies Omit<TrainConfig, "lr" | "out">;

/**
 * Defaults that differ per model (applied where the caller gave no value). The LSTM on 28 rows: gradient
 * clipping at norm 1 (the usual guard of recurrent nets), hidden size 128, 12 epochs. The Transformer: the
 * fortunes corpus, batches of 32 windows of `context` characters, clipping at 1, one epoch (one pass over the
 * training text's windows).
 */
export const MODEL_DEFAULTS: Partial<Record<ModelName, Partial<Omit<TrainConfig, "lr" | "out">>>> = {
  lstm: { hidden: [128], clipGrad: 1, epochs: 12 },
  transformer: { data: "fortunes", batchSize: 32, clipGrad: 1, epochs: 1 },
};

/** Default (peak) learning rate of each optimizer. */
export const DEFAULT_LR: Record<OptimizerName, number> = {
  sgd: 0.1,
  momentum: 0.05,
  adam: 2e-3,
  adamw: 2e-3,
  rmsprop: 1e-3,
  adagrad: 0.02,
};

/** Keys that may differ from the saved config when resuming (everything else must match it). */
export const RESUMABLE_KEYS: readonly (keyof TrainConfig)[] = [
  "epochs",
  "out",
  "backend",
  "plots",
  "quiet",
  "jit",
];

/** A bad option value; the message names the option, the value and what is allowed. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

function choice<T extends string>(option: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    throw new ConfigError(
      `${option}: invalid value ${JSON.stringify(value)}; expected one of ${choices.join(", ")}`,
    );
  }
  return value as T;
}

/**
 * Upper bounds of the numeric options. Far beyond any sensible run, they stop values that only waste hours or
 * memory before failing (`--epochs 1e300`), alias silently (`--seed` above 2^32 is reduced mod 2^32 by the
 * generator) or diverge at once (`--lr 1e308`).
 */
export const LIMITS = {
  epochs: 100_000,
  batchSize: 1_048_576,
  /** The generators take 32-bit seeds: a larger seed would alias a smaller one. */
  seed: 2 ** 32 - 1,
  limit: 2 ** 31 - 1,
  lr: 10,
  weightDecay: 1,
  threads: 1024,
  layers: 64,
  width: 8192,
  heads: 256,
  context: 65_536,
  clipGrad: 1e6,
  evalEvery: 1_000_000,
} as const;

/** Decimal integers only ("10", not "0x10", "1e3", "10.0" or " 10"). */
const DECIMAL_INT = /^[0-9]+$/;
/** A decimal number ("0.002", "2e-3", ".5"), not hex, binary, "Infinity" or an empty string. */
const DECIMAL_NUMBER = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** An integer option: a decimal string or a safe integer, else undefined. */
function toInt(value: unknown): number | undefined {
  if (typeof value === "string") return DECIMAL_INT.test(value) ? Number(value) : undefined;
  return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
}

/** Parse/check an integer option in [lo, max]. */
function parseIntIn(option: string, value: unknown, lo: number, max: number, what: string): number {
  const n = toInt(value);
  if (n === undefined || n < lo || n > max) {
    throw new ConfigError(
      `${option}: expected ${what} (decimal digits) of at most ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Parse/check a positive integer option (decimal digits only), at most `max`. */
export function parsePositiveInt(option: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return parseIntIn(option, value, 1, max, "a positive integer");
}

/** Parse/check a non-negative integer option (decimal digits only), at most `max`. */
export function parseNonNegativeInt(option: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return parseIntIn(option, value, 0, max, "an integer >= 0");
}

/** Parse/check a (decimal) number in [lo, hi) (hi exclusive unless `hiInclusive`). */
export function parseNumberIn(
  option: string,
  value: unknown,
  lo: number,
  hi: number,
  hiInclusive = false,
): number {
  const n = typeof value === "string" ? (DECIMAL_NUMBER.test(value) ? Number(value) : Number.NaN) : value;
  const ok = typeof n === "number" && Number.isFinite(n) && n >= lo && (hiInclusive ? n <= hi : n < hi);
  if (!ok) {
    const range = hi === Number.POSITIVE_INFINITY ? `>= ${lo}` : `in [${lo}, ${hi}${hiInclusive ? "]" : ")"}`;
    throw new ConfigError(`${option}: expected a number ${range}, got ${JSON.stringify(value)}`);
  }
  return n as number;
}

/** Parse/check --lr: a number in [0, LIMITS.lr]. */
export function parseLr(value: unknown): number {
  return parseNumberIn("--lr", value, 0, LIMITS.lr, true);
}

/** Parse/check --weight-decay: a number in [0, LIMITS.weightDecay]. */
export function parseWeightDecay(value: unknown): number {
  return parseNumberIn("--weight-decay", value, 0, LIMITS.weightDecay, true);
}

/** Parse "256,128" (or an array) into positive integer layer sizes (bounded as model specs are). */
export function parseHidden(value: unknown): number[] {
  const parts = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : null;
  if (parts === null) throw new ConfigError(`--hidden: expected sizes such as 256,128, got ${String(value)}`);
  const sizes = parts.map((p) => (typeof p === "string" ? p.trim() : p));
  // an empty list (--hidden "") means no hidden layer: a linear classifier
  if (sizes.length === 1 && sizes[0] === "") return [];
  if (sizes.length > SPEC_LIMITS.hiddenLayers) {
    throw new ConfigError(`--hidden: at most ${SPEC_LIMITS.hiddenLayers} hidden layers, got ${sizes.length}`);
  }
  return sizes.map((s) => {
    const n = toInt(s);
    if (n === undefined || n <= 0 || n > SPEC_LIMITS.width) {
      throw new ConfigError(
        `--hidden: expected comma-separated positive integers of at most ${SPEC_LIMITS.width} such as 256,128, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  });
}

/** Check a --data value: a built-in dataset name or an existing directory. */
export function parseData(value: unknown): string {
  if (typeof value === "string" && (DATA_NAMES as readonly string[]).includes(value)) return value;
  if (typeof value === "string" && value !== "" && existsSync(value) && statSync(value).isDirectory()) {
    return value;
  }
  throw new ConfigError(
    `--data: invalid value ${JSON.stringify(value)}; expected one of ${DATA_NAMES.join(", ")}, or the path of a directory of IDX files`,
  );
}

/**
 * Check a `chainrule train --data` value: an image dataset (as {@link parseData}), a built-in text corpus
 * ("fortunes") or `text:<file>` naming an existing file.
 */
export function parseTrainData(value: unknown): string {
  if (typeof value === "string" && (TEXT_DATA_NAMES as readonly string[]).includes(value)) return value;
  if (typeof value === "string" && value.startsWith(TEXT_PREFIX)) {
    const file = value.slice(TEXT_PREFIX.length);
    if (file !== "" && existsSync(file) && statSync(file).isFile()) return value;
    throw new ConfigError(
      `--data: invalid value ${JSON.stringify(value)}; ${TEXT_PREFIX}<file> must name an existing text file`,
    );
  }
  try {
    return parseData(value);
  } catch {
    throw new ConfigError(
      `--data: invalid value ${JSON.stringify(value)}; expected one of ${[...DATA_NAMES, ...TEXT_DATA_NAMES].join(", ")}, ${TEXT_PREFIX}<file> (a text file, --model transformer), or the path of a directory of IDX files`,
    );
  }
}

/** True if a --data value names text (a corpus of `--model transformer`), not images. */
export function isTextData(data: string): boolean {
  return (TEXT_DATA_NAMES as readonly string[]).includes(data) || data.startsWith(TEXT_PREFIX);
}

/** Parse/check a model name. */
export function parseModel(value: unknown): ModelName {
  return choice("--model", value, MODEL_NAMES);
}

/** "runs/2026-01-31T12-34-56" from a date (the default output directory). */
export function defaultOutDir(now = new Date()): string {
  return `runs/${now.toISOString().slice(0, 19).replaceAll(":", "-")}`;
}

/**
 * Fill in defaults and check every field of a training configuration; throws a ConfigError naming the first
 * bad option. Unknown keys are errors too (a typo must not be silently ignored).
 *
 * @example
 * ```ts
 * resolveConfig({ model: "cnn", epochs: 2 }); // { data: "digits", model: "cnn", ..., lr: 0.002, ... }
 * resolveConfig({ model: "vgg" });            // ConfigError: --model: invalid value "vgg"; expected one of mlp, cnn, resnet, lstm, transformer
 * ```
 */
export function resolveConfig(input: TrainInput): TrainConfig {
  const known = new Set<string>([...Object.keys(DEFAULTS), "lr", "out"]);
  for (const k of Object.keys(input)) {
    if (!known.has(k)) throw new ConfigError(`unknown training option "${k}"`);
  }
  const model = parseModel(input.model ?? DEFAULTS.model);
  const v = { ...DEFAULTS, ...MODEL_DEFAULTS[model], ...stripUndefined(input) };
  const optimizer = choice("--optimizer", v.optimizer, OPTIMIZER_NAMES);
  const backend = v.backend === null ? null : choice("--backend", v.backend, BACKEND_NAMES);
  const data = parseTrainData(v.data);
  if (isTextData(data) !== (model === "transformer")) {
    throw new ConfigError(
      model === "transformer"
        ? `--data ${data}: --model transformer is a character-level language model; give a text corpus (${TEXT_DATA_NAMES.join(", ")} or ${TEXT_PREFIX}<file>)`
        : `--data ${data}: a text corpus is read by --model transformer only; --model ${model} classifies images (${DATA_NAMES.join(", ")} or a directory of IDX files)`,
    );
  }
  const hidden = parseHidden(v.hidden);
  if (model === "lstm" && (hidden.length === 0 || hidden.some((h) => h !== hidden[0]))) {
    throw new ConfigError(
      `--hidden: the lstm takes one hidden size per stacked layer, all equal (such as 128 or 128,128), got ${JSON.stringify(v.hidden)}`,
    );
  }
  const width = parsePositiveInt("--width", v.width, LIMITS.width);
  const heads = parsePositiveInt("--heads", v.heads, LIMITS.heads);
  if (width % heads !== 0) {
    throw new ConfigError(`--heads: the number of heads must divide --width ${width}, got ${heads}`);
  }
  return {
    data,
    model,
    hidden,
    dropout: parseNumberIn("--dropout", v.dropout, 0, 1),
    layers: parsePositiveInt("--layers", v.layers, LIMITS.layers),
    width,
    heads,
    context: parsePositiveInt("--context", v.context, LIMITS.context),
    clipGrad: parseNumberIn("--clip-grad", v.clipGrad, 0, LIMITS.clipGrad, true),
    evalEvery: parsePositiveInt("--eval-every", v.evalEvery, LIMITS.evalEvery),
    epochs: parsePositiveInt("--epochs", v.epochs, LIMITS.epochs),
    batchSize: parsePositiveInt("--batch-size", v.batchSize, LIMITS.batchSize),
    lr: input.lr === undefined ? DEFAULT_LR[optimizer] : parseLr(v.lr),
    optimizer,
    weightDecay: parseWeightDecay(v.weightDecay),
    schedule: choice("--schedule", v.schedule, SCHEDULE_NAMES),
    valFraction: parseNumberIn("--val-fraction", v.valFraction, 0, 1),
    seed: parseNonNegativeInt("--seed", v.seed, LIMITS.seed),
    out: typeof input.out === "string" && input.out !== "" ? input.out : defaultOutDir(),
    limit: v.limit === null ? null : parsePositiveInt("--limit", v.limit, LIMITS.limit),
    backend,
    plots: Boolean(v.plots),
    quiet: Boolean(v.quiet),
    jit: Boolean(v.jit),
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, val] of Object.entries(o)) if (val !== undefined) (out as Record<string, unknown>)[k] = val;
  return out;
}

/** The command-line flag of a config key: batchSize -> --batch-size (plots -> --no-plots). */
export function flagOf(key: string): string {
  return key === "plots" ? "--no-plots" : `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * The config of a resumed run: the saved one, with the keys of {@link RESUMABLE_KEYS} taken from `input` when
 * given. Any other key given with a different value is an error (a resumed run continues the same experiment).
 */
export function mergeResumeConfig(saved: TrainConfig, input: TrainInput): TrainConfig {
  const merged: TrainConfig = { ...saved };
  for (const [k, val] of Object.entries(stripUndefined(input)) as [keyof TrainConfig, unknown][]) {
    if (RESUMABLE_KEYS.includes(k)) {
      Object.assign(merged, { [k]: val });
    } else if (JSON.stringify(val) !== JSON.stringify(saved[k])) {
      const flag = flagOf(k);
      throw new ConfigError(
        `--resume: ${flag} cannot change when resuming (the run used ${JSON.stringify(saved[k])}, got ${JSON.stringify(val)}); only ${RESUMABLE_KEYS.map(flagOf).join(", ")} may be given`,
      );
    }
  }
  // re-check the overridden values
  return resolveConfig(merged);
}
