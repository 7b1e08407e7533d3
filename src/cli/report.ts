/**
 * What a training run shows and writes: the per-epoch table printed on the terminal, the compact confusion
 * table printed at the end, metrics.json, and the SVG charts (loss.svg, accuracy.svg, confusion.svg) drawn with
 * chainrule's own viz helpers.
 */
import { writeFileSync } from "node:fs";
import { writeFileAtomic } from "../io/files-node.ts";
import { join } from "node:path";
import { confusionMatrixSvg, linePlot } from "../viz/index.ts";
import type { TrainConfig } from "./args.ts";
import type { ModelSpec } from "./models.ts";
import { formatDuration } from "./progress.ts";

/** Metrics of one epoch (train values are means over the epoch's batches, in training mode). */
export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainAcc: number;
  /** null when there is no validation split. */
  valLoss: number | null;
  valAcc: number | null;
  /** Learning rate of the epoch's last step. */
  lr: number;
  /** Wall-clock seconds of the epoch (training and validation). */
  seconds: number;
  /** Training examples per second. */
  examplesPerSec: number;
}

/** Per-batch training curve: x in epochs (fractional), the batch loss and accuracy. */
export interface StepCurve {
  x: number[];
  loss: number[];
  acc: number[];
}

/** Test-set results. */
export interface TestMetrics {
  loss: number;
  accuracy: number;
  correct: number;
  total: number;
  /** confusion[true][predicted] counts. */
  confusion: number[][];
  /** Recall of each class: confusion[k][k] / row sum. */
  perClassAccuracy: number[];
}

/** The content of metrics.json. */
export interface MetricsFile {
  status: "running" | "completed" | "interrupted";
  config: TrainConfig;
  model: ModelSpec & { parameters: number };
  backend: string;
  classes: string[];
  sizes: { train: number; val: number; test: number };
  epochs: EpochMetrics[];
  steps: StepCurve;
  test: TestMetrics | null;
  /** Total training wall time in seconds (summed over resumed sessions). */
  wallTime: number;
  startedAt: string;
  updatedAt: string;
}

const pct = (v: number | null) => (v === null ? "-" : `${(100 * v).toFixed(2)}%`);
const num = (v: number | null) => (v === null ? "-" : v.toFixed(4));

/** The header of the per-epoch table. */
export function epochHeader(): string {
  return `${"epoch".padStart(6)}  ${"train loss".padStart(10)}  ${"train acc".padStart(9)}  ${"val loss".padStart(8)}  ${"val acc".padStart(8)}  ${"lr".padStart(9)}  ${"time".padStart(6)}`;
}

/** One row of the per-epoch table. */
export function epochLine(m: EpochMetrics, epochs: number): string {
  return [
    `${m.epoch}/${epochs}`.padStart(6),
    num(m.trainLoss).padStart(10),
    pct(m.trainAcc).padStart(9),
    num(m.valLoss).padStart(8),
    pct(m.valAcc).padStart(8),
    m.lr.toExponential(2).padStart(9),
    formatDuration(m.seconds).padStart(6),
  ].join("  ");
}

/** Build the test metrics from predictions and labels. */
export function testMetrics(confusion: number[][], loss: number): TestMetrics {
  let correct = 0;
  let total = 0;
  const perClassAccuracy = confusion.map((row, k) => {
    const n = row.reduce((a, b) => a + b, 0);
    correct += row[k];
    total += n;
    return n > 0 ? row[k] / n : 0;
  });
  return { loss, accuracy: total > 0 ? correct / total : 0, correct, total, confusion, perClassAccuracy };
}

/**
 * The confusion matrix as a compact text table: one row per true class (index and name), one column per
 * predicted class index, and the class's accuracy (recall) on the right.
 *
 * @example
 * ```ts
 * formatConfusion([[9, 1], [0, 10]], ["cat", "dog"]);
 * // true \ pred     0    1    acc
 * //      0 cat      9    1  90.0%
 * //      1 dog      0   10 100.0%
 * ```
 */
export function formatConfusion(confusion: number[][], classes: string[]): string {
  const k = confusion.length;
  const cell = Math.max(3, ...confusion.flat().map((v) => String(v).length)) + 1;
  // "3 Dress"; just "3" when the class is named by its index (digits)
  const names = classes.map((c, i) => {
    const idx = String(i).padStart(String(k - 1).length);
    return c === String(i) ? idx : `${idx} ${c.slice(0, 12)}`;
  });
  const nameWidth = Math.max(12, ...names.map((s) => s.length)) + 1;
  const head =
    "true \\ pred".padEnd(nameWidth) +
    confusion.map((_, j) => String(j).padStart(cell)).join("") +
    "acc".padStart(8);
  const rows = confusion.map((row, i) => {
    const n = row.reduce((a, b) => a + b, 0);
    const acc = n > 0 ? `${((100 * row[i]) / n).toFixed(1)}%` : "-";
    return names[i].padEnd(nameWidth) + row.map((v) => String(v).padStart(cell)).join("") + acc.padStart(8);
  });
  return [head, ...rows].join("\n");
}

/** Write metrics.json into `dir`; returns its path. */
export function writeMetrics(dir: string, m: MetricsFile): string {
  const path = join(dir, "metrics.json");
  // atomic and durable like the safetensors outputs: a crash never leaves half a metrics.json
  writeFileAtomic(path, `${JSON.stringify(m, null, 2)}\n`);
  return path;
}

/** Exponential moving average (bias-corrected, as Adam's), to draw a readable per-batch curve. */
export function ema(values: readonly number[], beta = 0.9): number[] {
  const out: number[] = [];
  let avg = 0;
  values.forEach((v, i) => {
    avg = beta * avg + (1 - beta) * v;
    out.push(avg / (1 - beta ** (i + 1)));
  });
  return out;
}

/**
 * Write loss.svg and accuracy.svg: the training curve (per-batch values in training mode, smoothed by an
 * exponential moving average) and the validation values at the end of each epoch, against epochs; the loss on
 * a log scale. The accuracy chart's title carries the test accuracy once known. Returns the paths.
 */
export function writeCurves(dir: string, m: MetricsFile): string[] {
  const ep = m.epochs.map((e) => e.epoch);
  const hasVal = m.epochs.some((e) => e.valLoss !== null);
  const what = `${m.model.name} on ${m.config.data}`;
  const testAcc = m.test === null ? "" : ` (test ${(100 * m.test.accuracy).toFixed(2)}%)`;
  const charts = [
    {
      file: "loss.svg",
      title: `${what}: loss`,
      yLabel: "cross-entropy loss (log scale)",
      batch: m.steps.loss,
      val: m.epochs.map((e) => e.valLoss ?? Number.NaN),
      logY: true,
    },
    {
      file: "accuracy.svg",
      title: `${what}: accuracy${testAcc}`,
      yLabel: "accuracy",
      batch: m.steps.acc,
      val: m.epochs.map((e) => e.valAcc ?? Number.NaN),
      logY: false,
    },
  ];
  return charts.map((c) => {
    const series = [{ name: "train (batches, smoothed)", x: m.steps.x, y: ema(c.batch) }];
    if (hasVal) series.push({ name: "validation (end of epoch)", x: ep, y: c.val });
    const svg = linePlot({
      title: c.title,
      xLabel: "epoch",
      yLabel: c.yLabel,
      logY: c.logY,
      series,
      width: 720,
      height: 440,
    });
    const path = join(dir, c.file);
    writeFileSync(path, svg);
    return path;
  });
}

/** Write confusion.svg (true class rows, predicted columns, class names) and return its path. */
export function writeConfusion(
  path: string,
  confusion: number[][],
  classes: string[],
  title: string,
): string {
  writeFileSync(path, confusionMatrixSvg(confusion, classes, { title }));
  return path;
}
