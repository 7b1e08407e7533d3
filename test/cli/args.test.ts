/**
 * The `chainrule` command line without training: argument validation through `main` (commander) and through
 * `resolveConfig` (in-process callers), resume conflicts, the model zoo's shapes and sizes, and the text
 * report helpers.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  ConfigError,
  DEFAULT_LR,
  flagOf,
  mergeResumeConfig,
  OPTIMIZER_NAMES,
  parseHidden,
  resolveConfig,
  type SCHEDULE_NAMES,
} from "../../src/cli/args.ts";
import { buildModel, countParameters, type ModelSpec } from "../../src/cli/models.ts";
import { formatDuration } from "../../src/cli/progress.ts";
import { ema, formatConfusion, testMetrics } from "../../src/cli/report.ts";
import { deriveSeed, makeOptimizer, makeScheduler } from "../../src/cli/setup.ts";
import { manualSeed, noGrad, rand, tensor, zeros } from "../../src/index.ts";
import { crossEntropy } from "../../src/nn/loss.ts";
import { run } from "./helpers.ts";

test("bad --model and --data values give an error listing the choices", async () => {
  const m = await run(["train", "--model", "vgg"]);
  assert.equal(m.code, 1);
  assert.match(m.err, /--model/);
  assert.match(m.err, /'vgg' is invalid/);
  assert.match(m.err, /mlp, cnn, resnet/);
  const d = await run(["train", "--data", "no-such-dataset"]);
  assert.equal(d.code, 1);
  assert.match(d.err, /--data/);
  assert.match(d.err, /digits, fashion-mnist, mnist, fortunes, text:<file> .*, or the path of a directory/);
  const o = await run(["train", "--optimizer", "lbfgs"]);
  assert.equal(o.code, 1);
  assert.match(o.err, /sgd, momentum, adam, adamw, rmsprop, adagrad/);
  const s = await run(["train", "--schedule", "linear"]);
  assert.match(s.err, /none, cosine, onecycle, step/);
  const b = await run(["eval", "--model-path", "x", "--data", "nope"]);
  assert.equal(b.code, 1);
  assert.match(b.err, /digits, fashion-mnist, mnist/);
});

test("bad numbers are rejected with the option and the expected range", async () => {
  const cases: [string[], RegExp][] = [
    [["--epochs", "0"], /--epochs.*positive integer/],
    [["--epochs", "2.5"], /--epochs.*positive integer .*, got "2.5"/],
    [["--batch-size", "abc"], /--batch-size.*positive integer/],
    [["--lr", "-1"], /--lr.*number in \[0, 10\]/],
    [["--val-fraction", "1"], /--val-fraction.*\[0, 1\)/],
    [["--hidden", "256,x"], /--hidden.*comma-separated positive integers/],
    [["--dropout", "1.5"], /--dropout/],
    [["--backend", "cuda"], /js, native, wasm/],
  ];
  for (const [args, re] of cases) {
    const r = await run(["train", ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.err, re, args.join(" "));
  }
  const unknown = await run(["train", "--modle", "cnn"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /unknown option '--modle'/);
  const noPath = await run(["eval"]);
  assert.equal(noPath.code, 1);
  assert.match(noPath.err, /--model-path/);
});

test("--help lists the commands and the train options; exit code 0", async () => {
  const top = await run(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.out, /train \[options\]/);
  assert.match(top.out, /eval \[options\]/);
  const tr = await run(["train", "--help"]);
  assert.equal(tr.code, 0);
  for (const flag of ["--data", "--model", "--hidden", "--epochs", "--batch-size", "--lr", "--optimizer"]) {
    assert.ok(tr.out.includes(flag), flag);
  }
  for (const flag of ["--weight-decay", "--schedule", "--val-fraction", "--seed", "--out", "--resume"]) {
    assert.ok(tr.out.includes(flag), flag);
  }
  for (const flag of ["--backend", "--limit", "--quiet"]) assert.ok(tr.out.includes(flag), flag);
});

test("resolveConfig fills the defaults and checks in-process configs the same way", () => {
  const c = resolveConfig({ out: "o" });
  assert.equal(c.data, "digits");
  assert.equal(c.model, "mlp");
  assert.deepEqual(c.hidden, [256, 128]);
  assert.equal(c.optimizer, "adam");
  assert.equal(c.lr, DEFAULT_LR.adam);
  assert.equal(c.limit, null);
  assert.equal(c.backend, null);
  assert.equal(resolveConfig({ optimizer: "sgd" }).lr, DEFAULT_LR.sgd);
  assert.equal(resolveConfig({ optimizer: "sgd", lr: 0.3 }).lr, 0.3);
  assert.match(resolveConfig({}).out, /^runs\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d$/);
  assert.throws(() => resolveConfig({ model: "vgg" as "mlp" }), {
    name: "ConfigError",
    message: '--model: invalid value "vgg"; expected one of mlp, cnn, resnet, lstm, transformer',
  });
  assert.throws(
    () => resolveConfig({ data: "/nonexistent/dir" }),
    /expected one of digits, fashion-mnist, mnist/,
  );
  assert.throws(
    () => resolveConfig({ epochs: 0 }),
    /--epochs: expected a positive integer \(decimal digits\) of at most 100000, got 0/,
  );
  assert.throws(() => resolveConfig({ bogus: 1 } as never), /unknown training option "bogus"/);
  assert.deepEqual(parseHidden("512, 64,10"), [512, 64, 10]);
  assert.deepEqual(parseHidden(""), []);
  const dir = mkdtempSync(join(tmpdir(), "chainrule-cli-dir-"));
  try {
    assert.equal(resolveConfig({ data: dir }).data, dir); // a directory is accepted (read when training starts)
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("resuming accepts --epochs and friends but rejects a changed hyper-parameter", () => {
  const saved = resolveConfig({ out: "runs/a", epochs: 1 });
  const more = mergeResumeConfig(saved, { epochs: 3, quiet: true });
  assert.equal(more.epochs, 3);
  assert.equal(more.quiet, true);
  assert.equal(more.lr, saved.lr);
  // giving the same value as the saved run is fine
  assert.equal(mergeResumeConfig(saved, { lr: saved.lr }).lr, saved.lr);
  assert.throws(() => mergeResumeConfig(saved, { lr: 0.5 }), ConfigError);
  assert.throws(() => mergeResumeConfig(saved, { batchSize: 7 }), /--batch-size cannot change when resuming/);
  assert.equal(flagOf("valFraction"), "--val-fraction");
  assert.equal(flagOf("plots"), "--no-plots");
});

test("the model zoo: output shapes and parameter counts", () => {
  const base: ModelSpec = {
    name: "mlp",
    inputShape: [1, 28, 28],
    numClasses: 10,
    hidden: [256, 128],
    dropout: 0,
    mean: 0.13,
    std: 0.31,
  };
  manualSeed(0);
  const counts: Record<string, number> = {};
  for (const name of ["mlp", "cnn", "resnet"] as const) {
    const { net } = buildModel({ ...base, name });
    const y = noGrad(() => net.eval().call(zeros([2, 1, 28, 28])));
    assert.deepEqual(y.shape, [2, 10], name);
    counts[name] = countParameters(net);
  }
  // 784*256+256 + 256*128+128 + 128*10+10
  assert.equal(counts.mlp, 235146);
  // conv 1->32 5x5 (832), conv 32->64 5x5 (51264), fc 3136->128 (401536), fc 128->10 (1290)
  assert.equal(counts.cnn, 454922);
  assert.ok(counts.resnet > 50000 && counts.resnet < 120000, String(counts.resnet));
  const custom = buildModel({ ...base, hidden: [100, 50, 25], dropout: 0.3 });
  assert.equal(countParameters(custom.net), 784 * 100 + 100 + 100 * 50 + 50 + 50 * 25 + 25 + 25 * 10 + 10);
  assert.throws(
    () => buildModel({ ...base, name: "vgg" as "mlp" }),
    /"name" must be one of mlp, cnn, resnet/,
  );
});

test("report helpers: confusion table, metrics, smoothing, durations, seeds", () => {
  const m = testMetrics(
    [
      [9, 1],
      [0, 10],
    ],
    0.5,
  );
  assert.equal(m.accuracy, 19 / 20);
  assert.deepEqual(m.perClassAccuracy, [0.9, 1]);
  const table = formatConfusion(m.confusion, ["cat", "dog"]).split("\n");
  assert.equal(table.length, 3);
  assert.match(table[1], /^0 cat\s+9\s+1\s+90\.0%$/);
  assert.match(table[2], /^1 dog\s+0\s+10\s+100\.0%$/);
  // a constant sequence stays constant under the bias-corrected EMA
  assert.deepEqual(
    ema([2, 2, 2]).map((v) => Number(v.toFixed(12))),
    [2, 2, 2],
  );
  assert.equal(formatDuration(59.4), "59s");
  assert.equal(formatDuration(185), "3m05s");
  const seeds = new Set([
    deriveSeed(0, 1),
    deriveSeed(0, 2),
    deriveSeed(1, 1),
    deriveSeed(0, 2, 1),
    deriveSeed(0, 2, 2),
  ]);
  assert.equal(seeds.size, 5);
  assert.equal(deriveSeed(7, 2, 3), deriveSeed(7, 2, 3));
});

test("every model and optimizer fits a small fixed batch (the loss goes down)", () => {
  const spec: ModelSpec = {
    name: "mlp",
    inputShape: [1, 12, 12],
    numClasses: 4,
    hidden: [32],
    dropout: 0.1,
    mean: 0.5,
    std: 0.3,
  };
  manualSeed(1);
  const x = rand([8, 1, 12, 12]);
  const y = tensor([0, 1, 2, 3, 0, 1, 2, 3], { dtype: "int32" });
  const fit = (s: ModelSpec, optimizer: (typeof OPTIMIZER_NAMES)[number]) => {
    manualSeed(2);
    const { net } = buildModel(s);
    const config = resolveConfig({ optimizer, out: "unused" });
    const opt = makeOptimizer(config, net.parameters());
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const loss = crossEntropy(net.train().call(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      losses.push(loss.item());
    }
    return losses;
  };
  for (const optimizer of OPTIMIZER_NAMES) {
    const l = fit(spec, optimizer);
    assert.ok(l[7] < l[0], `${optimizer}: ${l.join(", ")}`);
  }
  for (const name of ["cnn", "resnet"] as const) {
    const l = fit({ ...spec, name }, "adam");
    assert.ok(l[7] < l[0], `${name}: ${l.join(", ")}`);
  }
});

test("schedules, stepped per batch: one-cycle, cosine, step", () => {
  const params = () => [zeros([2], { requiresGrad: true })];
  const at = (schedule: (typeof SCHEDULE_NAMES)[number], steps: number) => {
    const config = resolveConfig({ schedule, epochs: 3, lr: 0.1, out: "unused" });
    const opt = makeOptimizer(config, params());
    const sched = makeScheduler(config, opt, 10);
    const lrs = [opt.paramGroups[0].lr];
    for (let i = 0; i < steps; i++) {
      sched?.step();
      lrs.push(opt.paramGroups[0].lr);
    }
    return lrs;
  };
  const one = at("onecycle", 30);
  assert.ok(Math.abs(one[0] - 0.1 / 25) < 1e-12);
  assert.ok(Math.abs(Math.max(...one) - 0.1) < 1e-12);
  // the lr of the last of the 30 steps (the one after it is never used)
  assert.ok(one[29] < 1e-5);
  const cos = at("cosine", 30);
  assert.equal(cos[0], 0.1);
  assert.ok(Math.abs(cos[15] - 0.05) < 1e-12);
  assert.ok(cos[30] < 1e-12);
  const step = at("step", 30);
  assert.equal(step[9], 0.1);
  assert.ok(Math.abs(step[10] - 0.01) < 1e-12);
  assert.deepEqual(at("none", 5), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]);
});
