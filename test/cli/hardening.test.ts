/**
 * Regression tests of issue 8's CLI items: untrusted model files and checkpoints (a spec asking for billions
 * of weights, metadata that is not JSON, of the wrong type or nested 100,000 deep, devices and FIFOs given as
 * model paths), `train --resume` writing only where the user said, the output-directory lock, stale temporary
 * files of a killed run, bounded numeric options, a diverging run stopping with a non-zero exit code while
 * keeping its last good checkpoint, and `--threads`.
 *
 * Every run is small (a few hundred digits, one hidden layer of 16 or 32 units, the js backend) and seeded.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { ConfigError, resolveConfig, type TrainInput } from "../../src/cli/args.ts";
import { loadModel } from "../../src/cli/eval.ts";
import { buildModel, type ModelSpec, specWeightShapes } from "../../src/cli/models.ts";
import { LOCK_NAME, OutDirLockedError } from "../../src/cli/outdir.ts";
import { runTrain } from "../../src/cli/train.ts";
import { FormatError } from "../../src/errors.ts";
import { parseSafetensors, serializeSafetensors } from "../../src/io/safetensors.ts";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/tensors-node.ts";
import { nativeInfo, setNumThreads } from "../../src/node.ts";
import { run, tempDirs } from "./helpers.ts";

const tmp = tempDirs("hard");

const silent = { log: () => {}, tty: false };
const small: TrainInput = {
  limit: 200,
  epochs: 1,
  hidden: [16],
  batchSize: 50,
  seed: 0,
  quiet: true,
  plots: false,
  backend: "js",
};

/** A finished one-epoch run, shared by the tests that need a real model file. */
let runDir = "";
before(async () => {
  runDir = tmp("run");
  await runTrain({ ...small, out: runDir }, silent);
});

/** Rewrite a safetensors file's metadata (tensors unchanged) into `out`. */
function withMetadata(src: string, out: string, edit: (m: Record<string, string>) => void): string {
  const parsed = parseSafetensors(readFileSync(src));
  const meta = { ...parsed.metadata };
  edit(meta);
  writeFileSync(out, serializeSafetensors(parsed.tensors, meta));
  return out;
}

test("numeric options: decimal integers only, bounded; seeds below 2^32; lr and weight decay bounded", async () => {
  const cases: [string[], RegExp][] = [
    [["--epochs", "1e300"], /--epochs/],
    [["--epochs", "0x10"], /--epochs/],
    [["--epochs", "100001"], /--epochs.*at most 100000/],
    [["--seed", "4294967296"], /--seed.*at most 4294967295/],
    [["--seed", "1e3"], /--seed/],
    [["--batch-size", "1e3"], /--batch-size/],
    [["--lr", "1e308"], /--lr.*in \[0, 10\]/],
    [["--lr", "0x1"], /--lr/],
    [["--weight-decay", "Infinity"], /--weight-decay/],
    [["--hidden", "3000000"], /--hidden.*at most 65536/],
    [["--hidden", Array(17).fill("8").join(",")], /--hidden.*At most 16 hidden layers, got 17/],
    [["--threads", "0"], /--threads/],
    [["--threads", "2.5"], /--threads/],
  ];
  for (const [args, re] of cases) {
    const r = await run(["train", ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.err, re, args.join(" "));
  }
  // in-process callers get the same checks
  assert.throws(() => resolveConfig({ seed: 2 ** 32, out: "o" }), ConfigError);
  assert.throws(() => resolveConfig({ epochs: 1e300, out: "o" }), /--epochs/);
  assert.throws(() => resolveConfig({ lr: 1e308, out: "o" }), /--lr/);
  assert.equal(resolveConfig({ seed: 2 ** 32 - 1, out: "o" }).seed, 2 ** 32 - 1);
});

test("a diverging run stops with exit code 1 naming the step, keeping the last good checkpoint", async () => {
  const out = tmp("diverge");
  // plain SGD at lr 10 with weight decay 1 overflows to NaN in the second epoch (seeded: always step 5)
  const r = await run([
    "train",
    ...["--backend", "js", "--limit", "300", "--epochs", "3", "--hidden", "32", "--batch-size", "30"],
    ...["--optimizer", "sgd", "--schedule", "none", "--lr", "10", "--weight-decay", "1"],
    ...["--no-plots", "--quiet", "--out", out],
  ]);
  assert.equal(r.code, 1);
  assert.match(r.err, /the loss became NaN at epoch 2, step 5/);
  assert.match(r.err, /last good checkpoint \(after epoch 1\)/);
  const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
  const extra = ck.extra as { position: { epoch: number; step: number } };
  assert.deepEqual([extra.position.epoch, extra.position.step], [1, 0]);
  for (const [name, t] of Object.entries(ck.model)) {
    assert.ok(
      Array.from(t.dataSync()).every((v) => Number.isFinite(v)),
      `${name} of the kept checkpoint is finite`,
    );
  }
  const metrics = JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"));
  assert.equal(metrics.epochs.length, 1);
  assert.ok(!existsSync(join(out, LOCK_NAME)), "the lock is released on the error path");
});

test("train --resume FILE writes next to the checkpoint, never where its recorded config.out points", async () => {
  const received = tmp("received");
  const elsewhere = join(tmp("target"), "planted");
  // a checkpoint whose recorded output directory points elsewhere
  const ck = loadCheckpoint(join(runDir, "checkpoint.safetensors"));
  const extra = ck.extra as { config: { out: string } };
  extra.config.out = elsewhere;
  const file = join(received, "checkpoint.safetensors");
  saveCheckpoint(file, { model: ck.model, optimizer: ck.optimizer, extra });
  const r = await runTrain({ epochs: 2 }, { ...silent, resume: file });
  assert.equal(r.outDir, received);
  assert.ok(!existsSync(elsewhere), "nothing is written where the checkpoint's config.out points");
  assert.ok(existsSync(join(received, "metrics.json")));
  assert.equal(r.metrics.epochs.length, 2);
  // --out still wins when given
  const chosen = join(tmp("chosen"), "here");
  const r2 = await runTrain({ epochs: 2, out: chosen }, { ...silent, resume: file });
  assert.equal(r2.outDir, chosen);
  assert.ok(existsSync(join(chosen, "model.safetensors")));
});

test("two runs into one --out: the second is refused while the first holds the lock", async () => {
  const out = tmp("lock");
  let second: Promise<unknown> | undefined;
  const first = await runTrain(
    { ...small, out },
    {
      ...silent,
      onStep: (s) => {
        if (s === 1) second = runTrain({ ...small, out }, silent).catch((e: unknown) => e);
      },
    },
  );
  assert.equal(first.status, "completed");
  const err = await second;
  assert.ok(err instanceof OutDirLockedError, String(err));
  assert.match(
    (err as Error).message,
    /another chainrule train run \(this process\) is writing to this directory/,
  );
  assert.ok(!existsSync(join(out, LOCK_NAME)), "released after the run");
});

test("a lock held by another live process refuses the run; a dead owner's lock is taken over", async () => {
  const out = tmp("lock2");
  const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  try {
    writeFileSync(join(out, LOCK_NAME), `${sleeper.pid}\n`);
    const r = await run(["train", "--backend", "js", "--limit", "200", "--epochs", "1", "--out", out]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`process ${sleeper.pid}\\) is writing to this directory`));
  } finally {
    sleeper.kill("SIGKILL");
    await new Promise((resolve) => sleeper.once("exit", resolve));
  }
  // the owner is dead now: its lock is stale
  const r = await runTrain({ ...small, out }, silent);
  assert.equal(r.status, "completed");
  assert.ok(!existsSync(join(out, LOCK_NAME)));
});

test("temporary files a killed writer left next to the outputs are removed; others are kept", async () => {
  const out = tmp("stale");
  const stale = [
    "checkpoint.safetensors.tmp-999999-0badf00d",
    "model.safetensors.tmp-1-deadbeef",
    "metrics.json.tmp-2-cafebabe",
  ];
  for (const name of stale) writeFileSync(join(out, name), "partial");
  writeFileSync(join(out, "notes.tmp-1"), "mine");
  await runTrain({ ...small, out }, silent);
  for (const name of stale) assert.ok(!existsSync(join(out, name)), `${name} removed`);
  assert.ok(existsSync(join(out, "notes.tmp-1")), "unrelated files stay");
});

test("--threads sets the native backend's thread count (over any earlier setting)", async () => {
  const before = nativeInfo().threads;
  try {
    setNumThreads(2);
    const r = await run([
      "eval",
      "--backend",
      "native",
      "--threads",
      "1",
      "--model-path",
      runDir,
      "--no-plots",
      "--quiet",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(nativeInfo().threads, 1);
  } finally {
    setNumThreads(before);
  }
});

test("the command honours $CHAINRULE_NUM_THREADS, and --threads overrides it", () => {
  const cli = (args: string[]) =>
    spawnSync(
      process.execPath,
      [
        ...["--import", "tsx", "--input-type=module", "-e"],
        'import { main } from "./src/cli/main.ts"; process.exitCode = await main(process.argv.slice(1));',
        "--",
        ...["train", "--backend", "native", "--limit", "100", "--epochs", "1", "--hidden", "8", "--no-plots"],
        ...args,
      ],
      {
        cwd: new URL("../..", import.meta.url),
        encoding: "utf8",
        env: { ...process.env, CHAINRULE_NUM_THREADS: "3" },
      },
    );
  const byEnv = cli(["--out", join(tmp("env"), "o")]);
  assert.equal(byEnv.status, 0, byEnv.stderr);
  assert.match(byEnv.stdout, /backend native \(3 threads\)/);
  const byFlag = cli(["--threads", "1", "--out", join(tmp("flag"), "o")]);
  assert.equal(byFlag.status, 0, byFlag.stderr);
  assert.match(byFlag.stdout, /backend native \(1 thread\)/);
});

test("a model file whose spec asks for huge layers is refused from its header, before anything is built", () => {
  const dir = tmp("huge");
  const src = join(runDir, "model.safetensors");
  const spec = JSON.parse(parseSafetensors(readFileSync(src)).metadata["chainrule.model"]) as ModelSpec;
  const huge = withMetadata(src, join(dir, "huge.safetensors"), (m) => {
    m["chainrule.model"] = JSON.stringify({ ...spec, hidden: [3000000] });
  });
  assert.throws(
    () => loadModel(huge),
    (e: unknown) => {
      assert.ok(e instanceof FormatError);
      assert.match(
        e.message,
        /huge\.safetensors: metadata "chainrule\.model": "hidden" must be at most 16 integers in \[1, 65536\]/,
      );
      return true;
    },
  );
  const tooMany = withMetadata(src, join(dir, "many.safetensors"), (m) => {
    m["chainrule.model"] = JSON.stringify({ ...spec, hidden: [65536, 65536] });
  });
  assert.throws(() => loadModel(tooMany), /would have \d+ parameters, more than the limit of 134217728/);
  // within the bounds but not what the file holds: 60000 x 784 floats (188 MB) are never allocated
  const wide = withMetadata(src, join(dir, "wide.safetensors"), (m) => {
    m["chainrule.model"] = JSON.stringify({ ...spec, hidden: [60000] });
  });
  const rss = process.resourceUsage().maxRSS;
  assert.throws(
    () => loadModel(wide),
    /wide\.safetensors: tensor "2\.weight" has shape \[16, 784\] but the model spec implies \[60000, 784\]/,
  );
  assert.ok((process.resourceUsage().maxRSS - rss) * 1024 < 100e6, "no 188 MB layer was built");
});

test("model paths that are devices, FIFOs or directories without a model are refused, never read", async () => {
  const zero = await run(["eval", "--model-path", "/dev/zero", "--no-plots"]);
  assert.equal(zero.code, 1);
  assert.match(zero.err, /\/dev\/zero is a device; expected a regular file/);
  const fifo = join(tmp("fifo"), "model.safetensors");
  const mk = spawnSync("mkfifo", [fifo]);
  assert.equal(mk.status, 0, "mkfifo");
  const f = await run(["eval", "--model-path", fifo, "--no-plots"]);
  assert.equal(f.code, 1);
  assert.match(f.err, /is a FIFO \(named pipe\); expected a regular file/);
});

test("bad metadata: every failure is a FormatError naming the file and the key", () => {
  const dir = tmp("meta");
  const src = join(runDir, "model.safetensors");
  const spec = JSON.parse(parseSafetensors(readFileSync(src)).metadata["chainrule.model"]) as ModelSpec;
  const deep = `${"[".repeat(100000)}${"]".repeat(100000)}`;
  const cases: [string, (m: Record<string, string>) => void, RegExp][] = [
    ["syntax", (m) => void (m["chainrule.model"] = "{not json"), /"chainrule\.model": invalid JSON/],
    ["deep", (m) => void (m["chainrule.model"] = deep), /"chainrule\.model": invalid JSON.*nest/],
    [
      "classes",
      (m) => void (m["chainrule.classes"] = '{"a":1}'),
      /"chainrule\.classes": expected an array of 10 class names/,
    ],
    ["classes-deep", (m) => void (m["chainrule.classes"] = deep), /"chainrule\.classes": invalid JSON/],
    [
      "classes-count",
      (m) => void (m["chainrule.classes"] = '["a","b"]'),
      /"chainrule\.classes": expected an array of 10/,
    ],
    [
      "numClasses",
      (m) => void (m["chainrule.model"] = JSON.stringify({ ...spec, numClasses: "10" })),
      /"chainrule\.model": "numClasses" must be an integer/,
    ],
    ["spec-array", (m) => void (m["chainrule.model"] = "[1]"), /"chainrule\.model": expected an object/],
    ["no-spec", (m) => void delete m["chainrule.model"], /no "chainrule\.model" metadata/],
  ];
  for (const [name, edit, re] of cases) {
    const file = withMetadata(src, join(dir, `${name}.safetensors`), edit);
    assert.throws(
      () => loadModel(file),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, `${name}: ${String(e)}`);
        assert.ok(e.message.includes(file), `${name} names the file: ${e.message}`);
        assert.match(e.message, re, name);
        return true;
      },
      name,
    );
  }
});

test("bad checkpoint extras: eval and --resume name the file and the key", async () => {
  const dir = tmp("ckmeta");
  const src = join(runDir, "checkpoint.safetensors");
  const deep = join(dir, "deep.safetensors");
  withMetadata(src, deep, (m) => {
    m.extra = `{"a":${"[".repeat(100000)}${"]".repeat(100000)}}`;
  });
  assert.throws(() => loadModel(deep), /deep\.safetensors: metadata "extra": invalid JSON.*nest/);
  await assert.rejects(
    runTrain({ epochs: 2 }, { ...silent, resume: deep }),
    /deep\.safetensors: metadata "extra"/,
  );

  const ck = loadCheckpoint(src);
  const badPos = join(mkdirOk(join(dir, "pos")), "checkpoint.safetensors");
  saveCheckpoint(badPos, { model: ck.model, optimizer: ck.optimizer, extra: { ...ck.extra, position: "x" } });
  await assert.rejects(
    runTrain({ epochs: 2 }, { ...silent, resume: badPos }),
    (e: unknown) =>
      e instanceof FormatError &&
      /pos\/checkpoint\.safetensors: metadata "extra", key "position"/.test(e.message),
  );
  const badCfg = join(mkdirOk(join(dir, "cfg")), "checkpoint.safetensors");
  const extra = ck.extra as { config: Record<string, unknown> };
  saveCheckpoint(badCfg, {
    model: ck.model,
    optimizer: ck.optimizer,
    extra: { ...extra, config: { ...extra.config, epochs: "1e300" } },
  });
  await assert.rejects(
    runTrain({}, { ...silent, resume: badCfg }),
    /cfg\/checkpoint\.safetensors: metadata "extra", key "config": --epochs/,
  );
});

function mkdirOk(d: string): string {
  mkdirSync(d, { recursive: true });
  return d;
}

test("specWeightShapes gives exactly the state-dict shapes of the built mlp and cnn", () => {
  const base: ModelSpec = {
    name: "mlp",
    inputShape: [1, 12, 10],
    numClasses: 3,
    hidden: [7, 5],
    dropout: 0,
    mean: 0,
    std: 1,
  };
  const specs: ModelSpec[] = [
    base,
    { ...base, dropout: 0.5 },
    { ...base, hidden: [] },
    { ...base, name: "cnn", hidden: [] },
    { ...base, name: "cnn", dropout: 0.2, inputShape: [3, 9, 13] },
  ];
  for (const spec of specs) {
    const built = new Map(Object.entries(buildModel(spec).net.stateDict()).map(([k, t]) => [k, t.shape]));
    assert.deepEqual(specWeightShapes(spec), built, JSON.stringify(spec));
  }
  assert.equal(specWeightShapes({ ...base, name: "resnet" }), null);
});

test("metadata fuzzer: random edits of a saved model's spec and classes load correctly or fail naming the file", () => {
  const dir = tmp("specfuzz");
  const src = join(runDir, "model.safetensors");
  const orig = parseSafetensors(readFileSync(src));
  const spec = JSON.parse(orig.metadata["chainrule.model"]) as Record<string, unknown>;
  let s = 12345;
  const rand = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const values: unknown[] = [
    null,
    true,
    "mlp",
    "resnet",
    "cnn",
    0,
    -1,
    0.5,
    1.5,
    10,
    2 ** 31,
    2 ** 53,
    1e308,
    [],
    [16],
    [16, 16],
    [3000000],
    [1, 28, 28],
    [3, 28, 28],
    [1, 2, 2],
    [0, 28, 28],
    ["1", 28, 28],
    {},
    "x",
  ];
  let loaded = 0;
  for (let it = 0; it < 150; it++) {
    const edited: Record<string, unknown> = { ...spec };
    for (let k = 1 + Math.floor(rand() * 2); k > 0; k--) {
      const key = pick([...Object.keys(spec), "extra"]);
      if (rand() < 0.15) delete edited[key];
      else edited[key] = pick(values);
    }
    const meta: Record<string, string> = { ...orig.metadata, "chainrule.model": JSON.stringify(edited) };
    if (rand() < 0.2) meta["chainrule.classes"] = JSON.stringify(pick(values));
    const file = join(dir, `m${it}.safetensors`);
    writeFileSync(file, serializeSafetensors(orig.tensors, meta));
    try {
      const m = loadModel(file);
      assert.equal(m.spec.numClasses, 10, `iteration ${it}`);
      loaded++;
    } catch (e) {
      if (!(e instanceof FormatError) || !e.message.includes(file)) {
        assert.fail(`iteration ${it} ${JSON.stringify(edited)}: ${String(e)}`);
      }
    }
  }
  assert.ok(loaded > 5, `loaded ${loaded}`);
});
