/**
 * `chainrule train` / `chainrule eval` end to end on the embedded digits, through the same functions the CLI
 * calls (runTrain, runEval, main), seeded so every number is deterministic: the accuracy reached, every output
 * file (metrics.json fields, model.safetensors read back by an independent minimal reader and by loadModel,
 * well-formed SVGs), eval reproducing the training run's test accuracy, interruption (as by Ctrl-C) and
 * resumption reproducing the uninterrupted run exactly, extending a finished run by an epoch, and a real
 * SIGINT sent to the command.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadModel, runEval } from "../../src/cli/eval.ts";
import { main } from "../../src/cli/main.ts";
import type { MetricsFile } from "../../src/cli/report.ts";
import { evaluate } from "../../src/cli/setup.ts";
import { runTrain, type TrainResult } from "../../src/cli/train.ts";
import { loadImageDataset } from "../../src/data/datasets.ts";
import { parseXml } from "../viz/xml.ts";
import { tempDirs } from "./helpers.ts";

const tmp = tempDirs("cli");
const silent = { log: () => {}, tty: false };
// main() picks the native backend when none is given; these in-process calls stay on the reference backend
const JS = ["--backend", "js"];
// 2000 digits (1800 train / 200 val), two epochs of the default MLP (plus dropout 0.1, so that resuming must
// also reproduce the dropout masks), Adam + one-cycle, batch 64
const base = { limit: 2000, epochs: 2, seed: 0, dropout: 0.1, quiet: true, backend: "js" } as const;
/** Measured with this config: 88.35% (1767 / 2000); the threshold leaves margin for kernel changes. */
const THRESHOLD = 0.86;

let reference: TrainResult | undefined;
async function referenceRun(): Promise<TrainResult> {
  reference ??= await runTrain({ ...base, out: tmp("ref") }, silent);
  return reference;
}

/** Read a .safetensors file with nothing but the format's definition: u64 header size, JSON header, bytes. */
function readSafetensorsByHand(path: string): {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  meta: Record<string, string>;
  tensor: (name: string) => Float32Array;
} {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const json = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  const meta = json.__metadata__ ?? {};
  delete json.__metadata__;
  const start = 8 + n;
  return {
    header: json,
    meta,
    tensor: (name) => {
      const [a, b] = json[name].data_offsets;
      const copy = Uint8Array.from(bytes.subarray(start + a, start + b));
      return new Float32Array(copy.buffer);
    },
  };
}

test("train: reaches the accuracy threshold and writes every output file", async () => {
  const r = await referenceRun();
  assert.equal(r.status, "completed");
  const dir = r.outDir;
  for (const f of [
    "metrics.json",
    "model.safetensors",
    "checkpoint.safetensors",
    "loss.svg",
    "accuracy.svg",
  ]) {
    assert.ok(existsSync(join(dir, f)), f);
  }
  assert.ok(existsSync(join(dir, "confusion.svg")));
  const m = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as MetricsFile;
  assert.equal(m.status, "completed");
  assert.equal(m.config.model, "mlp");
  assert.equal(m.config.limit, 2000);
  assert.deepEqual(m.sizes, { train: 1800, val: 200, test: 2000 });
  assert.equal(m.model.parameters, 235146);
  assert.deepEqual(m.classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.deepEqual(
    m.epochs.map((e) => e.epoch),
    [1, 2],
  );
  for (const e of m.epochs) {
    for (const v of [e.trainLoss, e.trainAcc, e.valLoss!, e.valAcc!, e.lr, e.seconds, e.examplesPerSec]) {
      assert.ok(Number.isFinite(v));
    }
  }
  assert.ok(m.epochs[1].trainLoss < m.epochs[0].trainLoss);
  assert.equal(m.steps.loss.length, 2 * Math.ceil(1800 / 64));
  assert.ok(m.test !== null);
  assert.ok(m.test.accuracy >= THRESHOLD, `test accuracy ${m.test.accuracy} < ${THRESHOLD}`);
  assert.equal(m.test.total, 2000);
  assert.equal(
    m.test.confusion.flat().reduce((a, b) => a + b, 0),
    2000,
  );
  assert.equal(
    m.test.correct,
    m.test.confusion.reduce((s, row, k) => s + row[k], 0),
  );
  assert.ok(m.wallTime > 0);
  for (const f of ["loss.svg", "accuracy.svg", "confusion.svg"]) {
    const els = parseXml(readFileSync(join(dir, f), "utf8"));
    assert.equal(els[0].name, "svg", f);
    assert.ok(els.length > 20, f);
  }
  const legend = parseXml(readFileSync(join(dir, "loss.svg"), "utf8")).map((e) => e.text);
  assert.ok(legend.includes("validation (end of epoch)"));
  const conf = parseXml(readFileSync(join(dir, "confusion.svg"), "utf8")).map((e) => e.text);
  assert.ok(conf.some((t) => t.includes(`${(100 * m.test!.accuracy).toFixed(1)}%`)));
});

test("model.safetensors: a plain safetensors file; the rebuilt model predicts like the trained one", async () => {
  const r = await referenceRun();
  const path = join(r.outDir, "model.safetensors");
  const raw = readSafetensorsByHand(path);
  const sd = r.net.stateDict();
  assert.deepEqual(Object.keys(raw.header).sort(), Object.keys(sd).sort());
  for (const [name, t] of Object.entries(sd)) {
    assert.equal(raw.header[name].dtype, "F32", name);
    assert.deepEqual(raw.header[name].shape, t.shape, name);
    assert.deepEqual(raw.tensor(name), t.dataSync(), name);
  }
  const spec = JSON.parse(raw.meta["chainrule.model"]);
  assert.equal(spec.name, "mlp");
  assert.deepEqual(spec.inputShape, [1, 28, 28]);
  const loaded = loadModel(r.outDir);
  const test = loadImageDataset("digits").test;
  const split = { x: test.images, y: test.labels };
  const a = evaluate(r.net, split);
  const b = evaluate(loaded.net, split);
  assert.deepEqual(b.predictions, a.predictions);
  assert.equal(b.accuracy, r.metrics.test!.accuracy);
});

test("eval: reproduces the test accuracy and confusion matrix; writes confusion.svg", async () => {
  const r = await referenceRun();
  const e = runEval({ modelPath: r.outDir, quiet: true }, () => {});
  assert.equal(e.test.accuracy, r.metrics.test!.accuracy);
  assert.deepEqual(e.test.confusion, r.metrics.test!.confusion);
  assert.equal(e.data, "digits");
  assert.deepEqual(e.files, [join(r.outDir, "confusion.svg")]);
  // the checkpoint holds the same weights and its own spec
  const fromCkpt = runEval(
    { modelPath: join(r.outDir, "checkpoint.safetensors"), plots: false, quiet: true },
    () => {},
  );
  assert.deepEqual(fromCkpt.test.confusion, r.metrics.test!.confusion);
  // through the command line, given the model file itself
  let out = "";
  const code = await main(
    ["eval", "--model-path", join(r.outDir, "model.safetensors"), "--no-plots", ...JS],
    {
      log: (l) => {
        out += `${l}\n`;
      },
      handleSignals: false,
    },
  );
  assert.equal(code, 0);
  assert.match(out, new RegExp(`accuracy ${(100 * r.metrics.test!.accuracy).toFixed(2)}%`));
  assert.match(out, /true \\ pred/);
});

test("interrupt mid-epoch, then resume: the same run as without the interruption", async () => {
  const r = await referenceRun();
  const dir = tmp("int");
  const ctl = new AbortController();
  const stopped = await runTrain(
    { ...base, out: dir },
    { ...silent, signal: ctl.signal, onStep: (s) => (s === 20 ? ctl.abort() : undefined) },
  );
  assert.equal(stopped.status, "interrupted");
  const partial = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as MetricsFile;
  assert.equal(partial.status, "interrupted");
  assert.equal(partial.epochs.length, 0);
  assert.equal(partial.steps.loss.length, 20);
  assert.equal(partial.test, null);
  const resumed = await runTrain({}, { ...silent, resume: dir });
  assert.equal(resumed.status, "completed");
  assert.deepEqual(resumed.metrics.steps.loss, r.metrics.steps.loss);
  const strip = (m: MetricsFile) => m.epochs.map(({ seconds: _s, examplesPerSec: _e, ...rest }) => rest);
  assert.deepEqual(strip(resumed.metrics), strip(r.metrics));
  assert.deepEqual(resumed.metrics.test, r.metrics.test);
});

test("train 1 epoch, then --resume with --epochs 2: the epoch count and the metrics continue", async () => {
  const dir = tmp("more");
  // a smaller set (540 train / 60 val, 9 steps per epoch) keeps this test short
  const one = await runTrain({ ...base, limit: 600, epochs: 1, out: dir }, silent);
  assert.equal(one.metrics.epochs.length, 1);
  let out = "";
  const code = await main(["train", "--resume", dir, "--epochs", "2", ...JS], {
    log: (l) => {
      out += `${l}\n`;
    },
    tty: false,
    handleSignals: false,
  });
  assert.equal(code, 0);
  assert.match(out, /resuming at epoch 2, step 0/);
  const m = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as MetricsFile;
  assert.equal(m.config.epochs, 2);
  assert.deepEqual(
    m.epochs.map((e) => e.epoch),
    [1, 2],
  );
  assert.deepEqual(m.epochs[0], one.metrics.epochs[0]);
  assert.equal(m.steps.loss.length, 2 * 9);
  assert.deepEqual(m.steps.loss.slice(0, 9), one.metrics.steps.loss);
  assert.ok(m.epochs[1].trainLoss < m.epochs[0].trainLoss);
  assert.ok(m.wallTime > one.metrics.wallTime);
  assert.ok(m.test !== null && m.test.accuracy >= 0.6, String(m.test?.accuracy));
  // the saved run cannot be shortened or have its hyper-parameters changed
  await assert.rejects(runTrain({ epochs: 1 }, { ...silent, resume: dir }), /already trained 2 epoch/);
});

test("Ctrl-C on the command: checkpoint, resume hint, exit code 130", async () => {
  const dir = tmp("sigint");
  const bin = fileURLToPath(new URL("../../bin/chainrule.mjs", import.meta.url));
  const child = spawn(process.execPath, [bin, "train", "--limit", "1000", "--epochs", "3", "--out", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let sent = false;
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    // interrupt once training has started (the first progress line)
    if (!sent && /step\s+\d+\/\d+/.test(out)) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  assert.equal(code, 130, `stdout:\n${out}\nstderr:\n${err}`);
  assert.match(err, /finishing the current step and saving a checkpoint/);
  assert.match(
    out,
    new RegExp(`resume with: chainrule train --resume ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
  );
  assert.ok(existsSync(join(dir, "checkpoint.safetensors")));
  const m = JSON.parse(readFileSync(join(dir, "metrics.json"), "utf8")) as MetricsFile;
  assert.equal(m.status, "interrupted");
  assert.ok(m.steps.loss.length >= 1);
});
