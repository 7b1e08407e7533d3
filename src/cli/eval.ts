/**
 * `chainrule eval` as a function: rebuild a saved model from model.safetensors (the architecture comes from
 * the file's metadata, the weights from its tensors), evaluate it on a dataset's test split under noGrad in
 * eval mode, print the accuracy and the confusion table, and write confusion.svg next to the model.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadImageDataset } from "../data/datasets.ts";
import { CHECKPOINT_KEY } from "../io/tensors.ts";
import { loadCheckpoint, loadSafetensors } from "../io/tensors-node.ts";
import type { Sequential } from "../nn/container.ts";
import { parseData } from "./args.ts";
import { buildModel, checkSpec, type ModelSpec } from "./models.ts";
import { formatConfusion, type TestMetrics, testMetrics, writeConfusion } from "./report.ts";
import { confusionOf, evaluate } from "./setup.ts";
import { MODEL_META } from "./train.ts";

/** Options of {@link runEval}. */
export interface EvalInput {
  /** A run directory (holding model.safetensors), or a model or checkpoint file written by chainrule train. */
  modelPath: string;
  /** Dataset to evaluate on (default: the one the model was trained on). */
  data?: string;
  /** Write confusion.svg next to the model (default true). */
  plots?: boolean;
  /** Print only the accuracy line. */
  quiet?: boolean;
}

/** What {@link runEval} returns. */
export interface EvalResult {
  test: TestMetrics;
  classes: string[];
  spec: ModelSpec;
  data: string;
  files: string[];
}

/** A model saved by chainrule train, rebuilt: the network (in eval mode), its spec, classes and dataset. */
export interface LoadedModel {
  net: Sequential;
  spec: ModelSpec;
  classes: string[];
  data: string;
  path: string;
}

/**
 * Load model.safetensors (or the model file of a run directory, or a checkpoint.safetensors) and rebuild the
 * network it holds.
 *
 * @example
 * ```ts
 * const { net, classes } = loadModel("runs/quick");
 * net.call(images).argmax(1); // predicted class indices
 * ```
 */
export function loadModel(modelPath: string): LoadedModel {
  const path =
    existsSync(modelPath) && statSync(modelPath).isDirectory()
      ? join(modelPath, "model.safetensors")
      : modelPath;
  if (!existsSync(path)) {
    throw new Error(`--model-path: ${path} does not exist (give a run directory or its model.safetensors)`);
  }
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata[CHECKPOINT_KEY] !== undefined) return fromCheckpoint(path);
  const rawSpec = metadata[MODEL_META.spec];
  if (rawSpec === undefined) {
    throw new Error(
      `--model-path: ${path} has no "${MODEL_META.spec}" metadata; it was not written by chainrule train, so the architecture is unknown`,
    );
  }
  const spec = JSON.parse(rawSpec) as ModelSpec;
  checkSpec(spec);
  const classes =
    metadata[MODEL_META.classes] === undefined
      ? Array.from({ length: spec.numClasses }, (_, k) => String(k))
      : (JSON.parse(metadata[MODEL_META.classes]) as string[]);
  const { net } = buildModel(spec);
  net.loadStateDict(tensors);
  net.eval();
  return { net, spec, classes, data: metadata[MODEL_META.data] ?? "digits", path };
}

/** The model of a checkpoint.safetensors written by chainrule train (its extras hold the spec). */
function fromCheckpoint(path: string): LoadedModel {
  const ck = loadCheckpoint(path);
  const extra = ck.extra as { spec?: ModelSpec; classes?: string[]; config?: { data?: string } } | undefined;
  if (extra?.spec === undefined) {
    throw new Error(
      `--model-path: ${path} is a checkpoint without a model spec; it was not written by chainrule train`,
    );
  }
  checkSpec(extra.spec);
  const { net } = buildModel(extra.spec);
  net.loadStateDict(ck.model);
  net.eval();
  const classes = extra.classes ?? Array.from({ length: extra.spec.numClasses }, (_, k) => String(k));
  return { net, spec: extra.spec, classes, data: extra.config?.data ?? "digits", path };
}

/**
 * Evaluate a saved model on the test split of its dataset (or `data`), as `chainrule eval` does.
 *
 * @example
 * ```ts
 * const r = runEval({ modelPath: "runs/quick", quiet: true });
 * r.test.accuracy; // the accuracy printed at the end of training
 * ```
 */
export function runEval(input: EvalInput, log: (line: string) => void = (l) => console.log(l)): EvalResult {
  const model = loadModel(input.modelPath);
  const dataName = input.data === undefined ? model.data : parseData(input.data);
  const ds = loadImageDataset(dataName);
  const [, c, h, w] = ds.test.images.shape;
  const [ec, eh, ew] = model.spec.inputShape;
  if (c !== ec || h !== eh || w !== ew) {
    throw new Error(
      `eval: the model takes [${ec}, ${eh}, ${ew}] images but ${dataName} has [${c}, ${h}, ${w}]`,
    );
  }
  if (ds.classes.length > model.spec.numClasses) {
    throw new Error(
      `eval: the model has ${model.spec.numClasses} classes but ${dataName} has ${ds.classes.length}`,
    );
  }
  const split = { x: ds.test.images, y: ds.test.labels };
  const r = evaluate(model.net, split);
  const confusion = confusionOf(r.predictions, split.y, model.spec.numClasses);
  const test = testMetrics(confusion, r.loss);
  log(
    `${model.path}: ${model.spec.name} on ${dataName} test: accuracy ${(100 * test.accuracy).toFixed(2)}% (${test.correct}/${test.total}), loss ${test.loss.toFixed(4)}`,
  );
  if (!input.quiet) log(formatConfusion(confusion, model.classes));
  const files: string[] = [];
  if (input.plots ?? true) {
    const title = `${model.spec.name} on ${dataName}: test`;
    files.push(writeConfusion(join(dirname(model.path), "confusion.svg"), confusion, model.classes, title));
    if (!input.quiet) log(`wrote ${files[0]}`);
  }
  return { test, classes: model.classes, spec: model.spec, data: dataName, files };
}
