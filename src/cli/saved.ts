/**
 * Reading back what `chainrule train` saved, without trusting it: the model spec, class names and training
 * state stored as JSON in the metadata of model.safetensors and checkpoint.safetensors.
 *
 * A received file may hold anything there: invalid or deeply nested JSON, a string where a list belongs, a spec
 * asking for billions of weights. Everything is parsed strictly (bounded depth, no duplicate keys), checked
 * field by field, and compared with the tensors listed in the file's header, all before a layer is built or
 * the tensor data is read. Every error names the file and the metadata key (and the field inside it).
 */
import { FormatError } from "../errors.ts";
import { isJsonObject, type JsonValue, parseJsonStrict } from "../io/json-strict.ts";
import type { SafetensorsEntry } from "../io/safetensors.ts";
import { CHECKPOINT_KEY } from "../io/tensors.ts";
import { checkSpec, checkTensorsMatchSpec, type ModelSpec } from "./models.ts";

/** Metadata keys of model.safetensors. */
export const MODEL_META = {
  spec: "chainrule.model",
  classes: "chainrule.classes",
  data: "chainrule.data",
} as const;

/** A parsed JSON value as plain JS (objects as null-prototype records, so "__proto__" is an ordinary key). */
function plain(v: JsonValue): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (!isJsonObject(v)) return v;
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, x] of v) out[k] = plain(x);
  return out;
}

/** Parse the JSON text of metadata `key` of file `path` (errors name both). */
export function metadataJson(path: string, key: string, text: string): unknown {
  return plain(parseJsonStrict(text, `${path}: metadata "${key}"`));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** What a saved model file says about the model, validated against its tensors. */
export interface SavedModelInfo {
  spec: ModelSpec;
  classes: string[];
  data: string;
  /** The file is a checkpoint (weights under "model.*"), not a model.safetensors. */
  checkpoint: boolean;
}

const MAX_CLASS_NAME = 256;

function checkClasses(where: string, classes: unknown, numClasses: number): string[] {
  if (
    !Array.isArray(classes) ||
    classes.length !== numClasses ||
    !classes.every((c) => typeof c === "string" && c.length <= MAX_CLASS_NAME)
  ) {
    const got = Array.isArray(classes) ? `an array of ${classes.length}` : typeof classes;
    throw new FormatError(
      `${where}: expected an array of ${numClasses} class names (strings of at most ${MAX_CLASS_NAME} characters, one per class of the model spec), got ${got}`,
    );
  }
  return classes as string[];
}

/**
 * Read and check the model description in a file's metadata (`metadata` and `entries` come from its header:
 * no tensor data is needed). Throws a FormatError naming `path` and the key for anything malformed, for a spec
 * beyond the bounds of SPEC_LIMITS, and for tensors whose shapes differ from those the spec implies.
 */
export function savedModelInfo(
  path: string,
  metadata: Record<string, string>,
  entries: readonly SafetensorsEntry[],
): SavedModelInfo {
  if (metadata[CHECKPOINT_KEY] !== undefined) {
    if (metadata.extra === undefined) {
      throw new FormatError(
        `${path}: checkpoint without "extra" metadata; it was not written by chainrule train, so the model spec is unknown`,
      );
    }
    const extra = metadataJson(path, "extra", metadata.extra);
    if (!isRecord(extra) || extra.spec === undefined) {
      throw new FormatError(
        `${path}: metadata "extra" has no "spec"; this checkpoint was not written by chainrule train`,
      );
    }
    const spec = extra.spec as ModelSpec;
    checkSpec(spec, `${path}: metadata "extra", key "spec"`);
    checkTensorsMatchSpec(spec, entries, path, "model.");
    const classes =
      extra.classes === undefined
        ? defaultClasses(spec)
        : checkClasses(`${path}: metadata "extra", key "classes"`, extra.classes, spec.numClasses);
    const config = extra.config;
    const data = isRecord(config) && typeof config.data === "string" ? config.data : "digits";
    return { spec, classes, data, checkpoint: true };
  }
  const rawSpec = metadata[MODEL_META.spec];
  if (rawSpec === undefined) {
    throw new FormatError(
      `${path}: no "${MODEL_META.spec}" metadata; the file was not written by chainrule train, so the architecture is unknown`,
    );
  }
  const spec = metadataJson(path, MODEL_META.spec, rawSpec) as ModelSpec;
  checkSpec(spec, `${path}: metadata "${MODEL_META.spec}"`);
  checkTensorsMatchSpec(spec, entries, path);
  const rawClasses = metadata[MODEL_META.classes];
  const classes =
    rawClasses === undefined
      ? defaultClasses(spec)
      : checkClasses(
          `${path}: metadata "${MODEL_META.classes}"`,
          metadataJson(path, MODEL_META.classes, rawClasses),
          spec.numClasses,
        );
  return { spec, classes, data: metadata[MODEL_META.data] ?? "digits", checkpoint: false };
}

function defaultClasses(spec: ModelSpec): string[] {
  return Array.from({ length: spec.numClasses }, (_, k) => String(k));
}

/**
 * Check the fields of a decoded checkpoint "extra" that `train --resume` relies on (types and ranges), naming
 * the file and the field. The config and the spec are checked by their own validators.
 */
export function checkResumeExtra(path: string, extra: unknown): void {
  const where = (key: string) => `${path}: metadata "extra", key "${key}"`;
  if (!isRecord(extra)) throw new FormatError(`${path}: metadata "extra" must be an object`);
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const pos = extra.position;
  if (!isRecord(pos) || !count(pos.epoch) || !count(pos.step) || !count(pos.globalStep)) {
    throw new FormatError(`${where("position")}: expected {epoch, step, globalStep} of integers >= 0`);
  }
  const sums = extra.sums;
  if (!isRecord(sums) || !["loss", "correct", "count", "seconds"].every((k) => finite(sums[k]))) {
    throw new FormatError(`${where("sums")}: expected {loss, correct, count, seconds} of finite numbers`);
  }
  if (!Array.isArray(extra.epochs) || !extra.epochs.every(isRecord)) {
    throw new FormatError(`${where("epochs")}: expected an array of per-epoch metrics objects`);
  }
  const steps = extra.steps;
  if (!isRecord(steps) || !["x", "loss", "acc"].every((k) => Array.isArray(steps[k]))) {
    throw new FormatError(`${where("steps")}: expected {x, loss, acc} arrays`);
  }
  if (extra.scheduler !== null && !isRecord(extra.scheduler)) {
    throw new FormatError(`${where("scheduler")}: expected an object or null`);
  }
  if (!finite(extra.wallTime)) throw new FormatError(`${where("wallTime")}: expected a finite number`);
  if (typeof extra.startedAt !== "string") throw new FormatError(`${where("startedAt")}: expected a string`);
  if (!isRecord(extra.config)) throw new FormatError(`${where("config")}: expected an object`);
  checkSpec(extra.spec as ModelSpec, where("spec"));
  checkClasses(where("classes"), extra.classes, (extra.spec as ModelSpec).numClasses);
}
