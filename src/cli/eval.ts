/**
 * `chainrule eval` as a function: rebuild a saved model from model.safetensors (the architecture comes from
 * the file's metadata, the weights from its tensors), evaluate it on a dataset's test split under noGrad in
 * eval mode, print the accuracy and the confusion table, and write confusion.svg next to the model.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { loadImageDataset } from "../data/datasets.ts";
import { FormatError } from "../errors.ts";
import { readSafetensorsFileHeader } from "../io/files-node.ts";
import { loadCheckpoint, loadSafetensors } from "../io/tensors-node.ts";
import type { Sequential } from "../nn/container.ts";
import { parseData } from "./args.ts";
import { buildModel, type ModelSpec } from "./models.ts";
import { formatConfusion, type TestMetrics, testMetrics, writeConfusion } from "./report.ts";
import { confusionOf, evaluate } from "./setup.ts";
import { savedModelInfo } from "./saved.ts";
import { TEXT_MODEL_META } from "./text-model.ts";

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

/** The model file `--model-path` names: the file itself, or model.safetensors in the run directory it names. */
export function modelFile(modelPath: string): string {
  const path =
    existsSync(modelPath) && statSync(modelPath).isDirectory()
      ? join(modelPath, "model.safetensors")
      : modelPath;
  if (!existsSync(path)) {
    throw new Error(`--model-path: ${path} does not exist (give a run directory or its model.safetensors)`);
  }
  return path;
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
  const path = modelFile(modelPath);
  // Header first (regular files only, bounded header): the spec in the metadata is validated and compared
  // with the tensors' shapes before the data is read or a layer is built.
  const header = readSafetensorsFileHeader(path);
  if (header.metadata[TEXT_MODEL_META] !== undefined) {
    throw new FormatError(
      `${path}: a character-level language model (chainrule train --model transformer); generate text with chainrule sample --model-path ${modelPath}`,
    );
  }
  const info = savedModelInfo(path, header.metadata, header.entries);
  const weights = info.checkpoint ? loadCheckpoint(path).model : loadSafetensors(path).tensors;
  const { net } = buildModel(info.spec);
  try {
    net.loadStateDict(weights);
  } catch (err) {
    throw new FormatError(
      `${path}: the tensors do not fit the model its metadata describes: ${(err as Error).message}`,
    );
  }
  net.eval();
  return { net, spec: info.spec, classes: info.classes, data: info.data, path };
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
