/**
 * The text of `chainrule train --model transformer`: the corpus (Debian's `fortunes` package, or any UTF-8
 * file given as `--data text:<file>`), its deterministic split (the last `valFraction` of the characters held
 * out), and the training windows: each epoch cuts the training text into non-overlapping windows of
 * `context + 1` characters from a seeded offset and visits them in a seeded order, so a run is reproducible
 * from its seed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Generator, tensor } from "../ops/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { TEXT_PREFIX } from "./args.ts";
import { Vocab } from "./text-model.ts";

/** Where Debian's `fortunes` package installs its fortune files. */
export const FORTUNES_DIR = "/usr/share/games/fortunes";

/** A corpus read from disk. */
export interface Corpus {
  text: string;
  /** What was read: the file, or the directory and how many files. */
  source: string;
}

/** True if the bytes look like text: valid UTF-8 with no NUL byte (the strfile .dat indexes are binary). */
function isText(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * The fortunes corpus: the text files of `dir` (not the strfile indexes *.dat, not the *.u8 variants, nothing
 * binary), in name order, concatenated. Throws an Error naming `apt-get install fortunes` when absent.
 */
export function readFortunes(dir = FORTUNES_DIR): Corpus {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `--data fortunes: ${dir} does not exist; install Debian's fortunes package (apt-get install fortunes), or give another text with --data ${TEXT_PREFIX}<file>`,
    );
  }
  const names = readdirSync(dir)
    .filter((n) => !n.endsWith(".dat") && !n.endsWith(".u8") && !n.startsWith("."))
    .sort();
  const parts: string[] = [];
  for (const n of names) {
    const path = join(dir, n);
    if (!statSync(path).isFile()) continue;
    const bytes = readFileSync(path);
    if (isText(bytes)) parts.push(bytes.toString("utf8"));
  }
  if (parts.length === 0) {
    throw new Error(
      `--data fortunes: no fortune text files in ${dir}; reinstall Debian's fortunes package (apt-get install --reinstall fortunes)`,
    );
  }
  return { text: parts.join(""), source: `${dir} (${parts.length} files)` };
}

/** The corpus named by a --data value: "fortunes" or "text:<file>". */
export function readCorpus(data: string): Corpus {
  if (data === "fortunes") return readFortunes();
  if (!data.startsWith(TEXT_PREFIX)) throw new Error(`--data ${data}: not a text corpus`);
  const file = data.slice(TEXT_PREFIX.length);
  const bytes = readFileSync(file);
  if (!isText(bytes)) throw new Error(`--data ${data}: ${file} is not UTF-8 text`);
  return { text: bytes.toString("utf8"), source: file };
}

/** A corpus encoded and split. */
export interface TextData {
  vocab: Vocab;
  train: Int32Array;
  /** The held-out characters (the end of the text); empty when valFraction is 0. */
  val: Int32Array;
  source: string;
}

/**
 * Encode a corpus (its first `limit` characters if given) with its own vocabulary (every character of the
 * text, so the held-out part has no unknown character) and hold out its last `valFraction` of characters. Both parts must hold at least one window of
 * `context + 1` characters (the held-out part only when valFraction > 0).
 */
export function prepareText(
  corpus: Corpus,
  valFraction: number,
  context: number,
  limit: number | null = null,
): TextData {
  const text = limit === null ? corpus.text : [...corpus.text].slice(0, limit).join("");
  const vocab = Vocab.of(text);
  const all = vocab.encode(text);
  const nVal = Math.round(valFraction * all.length);
  const train = all.subarray(0, all.length - nVal);
  const val = all.subarray(all.length - nVal);
  const need = context + 1;
  if (train.length < need || (nVal > 0 && val.length < need)) {
    throw new Error(
      `--data: ${corpus.source} has ${all.length} characters; with --val-fraction ${valFraction} and --context ${context}, the training part (${train.length}) and the held-out part (${val.length}) must each hold at least ${need} characters (give a longer text or a smaller --context)`,
    );
  }
  if (vocab.size < 2) throw new Error(`--data: ${corpus.source} uses a single character; nothing to learn`);
  return { vocab, train, val, source: corpus.source };
}

/** Start positions of the non-overlapping windows of `len` characters of a text of `n`, from `offset`. */
function windowStarts(n: number, len: number, offset: number): Int32Array {
  const count = Math.max(0, Math.floor((n - offset) / len));
  const starts = new Int32Array(count);
  for (let k = 0; k < count; k++) starts[k] = offset + k * len;
  return starts;
}

/**
 * The windows of one training epoch: a seeded offset in [0, context) and a seeded order of the
 * non-overlapping windows of context + 1 characters from there (as many in every epoch) (input = the first context characters,
 * target = the last context characters).
 */
export function epochWindows(n: number, context: number, gen: Generator): Int32Array {
  const len = context + 1;
  const shifted = n - len >= context;
  const offset = shifted ? gen.int(0, context) : 0;
  // the same number of windows whatever the offset (that of the largest one), so every epoch has as many steps
  const count = Math.floor((n - (shifted ? context - 1 : 0)) / len);
  const starts = windowStarts(n, len, offset).slice(0, count);
  for (let i = starts.length - 1; i > 0; i--) {
    const j = gen.int(0, i + 1);
    const t = starts[i];
    starts[i] = starts[j];
    starts[j] = t;
  }
  return starts;
}

/** The held-out windows: non-overlapping, from the start of the held-out text, in order. */
export function evalWindows(n: number, context: number): Int32Array {
  return windowStarts(n, context + 1, 0);
}

/** The batch of windows `starts` of `tokens`: inputs [B, context] and next-character targets [B, context]. */
export function windowBatch(
  tokens: Int32Array,
  starts: ArrayLike<number>,
  context: number,
): [Tensor, Tensor] {
  const b = starts.length;
  const x = new Int32Array(b * context);
  const y = new Int32Array(b * context);
  for (let i = 0; i < b; i++) {
    const s = starts[i];
    x.set(tokens.subarray(s, s + context), i * context);
    y.set(tokens.subarray(s + 1, s + 1 + context), i * context);
  }
  return [
    tensor(x, { dtype: "int32" }).reshape([b, context]),
    tensor(y, { dtype: "int32" }).reshape([b, context]),
  ];
}
