/**
 * `chainrule train --model transformer` and `chainrule sample` on a small text generated here (no corpus
 * needed): the first loss is ln(vocabulary) (an untrained model with N(0, 0.02) weights predicts almost
 * uniformly), the held-out bits per character are finite and fall, the vocabulary saved is the text's
 * characters, `sample` writes the requested number of characters from the vocabulary and is deterministic
 * under a seed, top-k 1 is greedy decoding (= temperature 0), the categorical draw follows
 * softmax(logits / temperature) restricted to the top k, and bad options fail with clear messages. Also the
 * parts the LM is made of: the parameter count formula against the built model, the epoch windows.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { resolveConfig } from "../../src/cli/args.ts";
import { countParameters } from "../../src/cli/models.ts";
import { drawNext, generate, loadTextModel, runSample } from "../../src/cli/sample.ts";
import { epochWindows, evalWindows, prepareText, readFortunes } from "../../src/cli/text-data.ts";
import { CharTransformer, checkTextSpec, textModelParameters, Vocab } from "../../src/cli/text-model.ts";
import type { TextMetricsFile } from "../../src/cli/text-train.ts";
import { runTrainText, type TextTrainResult } from "../../src/cli/text-train.ts";
import { Generator } from "../../src/ops/creation.ts";
import { parseXml } from "../viz/xml.ts";
import { run, tempDirs } from "./helpers.ts";

const tmp = tempDirs("cli-text");
const silent = { log: () => {}, tty: false };

/** A text with structure to learn: lines of words from a small list, drawn with a seeded generator. */
function makeText(chars: number): string {
  const words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "big", "red", "hut"];
  const g = new Generator(7);
  let s = "";
  while (s.length < chars) {
    const n = 3 + g.int(0, 5);
    s += `${Array.from({ length: n }, () => words[g.int(0, words.length)]).join(" ")}.\n`;
  }
  return s.slice(0, chars);
}

const TEXT = makeText(6000);
const TEXT_FILE = join(tmp("data"), "tiny.txt");
writeFileSync(TEXT_FILE, TEXT);
const small = {
  model: "transformer",
  data: `text:${TEXT_FILE}`,
  layers: 2,
  width: 32,
  heads: 4,
  context: 24,
  batchSize: 16,
  epochs: 2,
  evalEvery: 4,
  seed: 0,
  quiet: true,
  backend: "js",
} as const;

let trained: TextTrainResult | undefined;
async function trainedRun(): Promise<TextTrainResult> {
  trained ??= await runTrainText({ ...small, out: tmp("run") }, silent);
  return trained;
}

test("transformer: first loss is ln(vocabulary), held-out bpc finite and falling, outputs written", async () => {
  const r = await trainedRun();
  assert.equal(r.status, "completed");
  const m = JSON.parse(readFileSync(join(r.outDir, "metrics.json"), "utf8")) as TextMetricsFile;
  const v = new Set(TEXT).size;
  assert.equal(m.model.vocabSize, v);
  assert.ok(Math.abs(m.steps.loss[0] - Math.log(v)) < 0.05, `first loss ${m.steps.loss[0]} vs ln ${v}`);
  assert.ok(m.evals.length >= 3);
  for (const e of m.evals) assert.ok(Number.isFinite(e.bpc) && e.bpc > 0, `bpc ${e.bpc}`);
  const first = m.evals[0];
  assert.ok(m.final !== null);
  assert.ok(m.final.bpc < first.bpc - 0.3, `held-out bpc ${first.bpc} -> ${m.final.bpc}`);
  assert.ok(Math.abs(m.final.bpc - m.final.loss / Math.log(2)) < 1e-12);
  // the last 10% of the characters are held out, cut into whole windows of context + 1
  assert.equal(m.sizes.valChars, Math.round(0.1 * TEXT.length));
  assert.equal(m.final.chars, Math.floor(m.sizes.valChars / (small.context + 1)) * small.context);
  assert.equal(m.epochs.length, 2);
  assert.ok(typeof m.sample === "string" && [...m.sample].length === 200);
  const svg = parseXml(readFileSync(join(r.outDir, "loss.svg"), "utf8"));
  assert.equal(svg[0].name, "svg");
  assert.ok(svg.map((e) => e.text).includes("held-out"));
  const saved = loadTextModel(r.outDir);
  assert.deepEqual(saved.spec.vocab, [...new Set(TEXT)].sort());
  assert.equal(countParameters(saved.net), m.model.parameters);
});

test("sample: requested length, vocabulary characters only, deterministic under a seed", async () => {
  const r = await trainedRun();
  const vocab = new Set(TEXT);
  const args = [
    "sample",
    "--model-path",
    r.outDir,
    "--prompt",
    "the ",
    "--length",
    "80",
    "--seed",
    "5",
    "--backend",
    "js",
  ];
  const a = await run(args);
  assert.equal(a.code, 0, a.err);
  const outA = a.out.replace(/\n$/, "");
  assert.ok(outA.startsWith("the "));
  const gen = [...outA.slice(4)];
  assert.equal(gen.length, 80);
  for (const c of gen) assert.ok(vocab.has(c), `${JSON.stringify(c)} is not in the vocabulary`);
  const b = await run(args); // the same run again
  assert.equal(b.out, a.out);
  const c = runSample({ modelPath: r.outDir, prompt: "the ", length: 80, seed: 6 });
  assert.notEqual(c.text, outA.slice(4));
  // top-k 1 keeps only the likeliest character: greedy decoding, the same as temperature 0
  const k1 = runSample({ modelPath: r.outDir, prompt: "a ", length: 40, topK: 1, temperature: 1, seed: 1 });
  const t0 = runSample({ modelPath: r.outDir, prompt: "a ", length: 40, temperature: 0, seed: 2 });
  assert.equal(k1.text, t0.text);
  // a prompt longer than the context is cut to its last `context` characters
  const long = runSample({ modelPath: r.outDir, prompt: TEXT.slice(0, 100), length: 5, seed: 0 });
  assert.equal([...long.text].length, 5);
});

test("sample: bad options and prompts fail with clear errors", async () => {
  const r = await trainedRun();
  const v = new Set(TEXT).size;
  const cases: [string[], RegExp][] = [
    [["--temperature", "-1"], /--temperature: expected a number in \[0, 100\], got "-1"/],
    [["--temperature", "hot"], /--temperature: expected a number/],
    [["--top-k", "0"], /--top-k: expected a positive integer/],
    [["--top-k", String(v + 1)], new RegExp(`--top-k: .*at most ${v}`)],
    [["--top-k", "2.5"], /--top-k: expected a positive integer/],
    [["--length", "0"], /--length: expected a positive integer/],
    [["--seed", "-3"], /--seed: expected an integer >= 0/],
    [["--prompt", "THE"], /--prompt has 3 character\(s\) not in the model's vocabulary .*"T", "H", "E"/],
  ];
  for (const [args, re] of cases) {
    const o = await run(["sample", "--model-path", r.outDir, "--backend", "js", ...args]);
    assert.equal(o.code, 1, args.join(" "));
    assert.match(o.err, re, args.join(" "));
  }
  const none = await run(["sample", "--model-path", join(r.outDir, "nope"), "--backend", "js"]);
  assert.match(none.err, /does not exist/);
});

test("drawNext: softmax(logits / temperature) over the top k, and greedy at temperature 0", () => {
  const logits = [0, Math.log(2), Math.log(3), -1];
  const freq = (temperature: number, topK: number | null, n = 30000) => {
    const g = new Generator(11);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[drawNext(logits, temperature, topK, g)]++;
    return counts.map((c) => c / n);
  };
  const e1 = Math.exp(-1);
  const z = 6 + e1;
  const close = (got: number[], want: number[]) => {
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 0.012, `${got} vs ${want}`);
  };
  close(freq(1, null), [1 / z, 2 / z, 3 / z, e1 / z]);
  close(freq(1, 2), [0, 2 / 5, 3 / 5, 0]);
  // temperature 0.5 squares the probabilities' ratios
  const z2 = 1 + 4 + 9 + Math.exp(-2);
  close(freq(0.5, null), [1 / z2, 4 / z2, 9 / z2, Math.exp(-2) / z2]);
  assert.equal(drawNext(logits, 0, null, new Generator(0)), 2);
});

test("transformer: config checks, the fortunes corpus message, windows and the parameter formula", () => {
  assert.throws(() => resolveConfig({ model: "transformer", data: "digits" }), /give a text corpus/);
  assert.throws(
    () => resolveConfig({ model: "lstm", data: `text:${TEXT_FILE}` }),
    /--model transformer only/,
  );
  assert.throws(
    () => resolveConfig({ model: "transformer", width: 30, heads: 4 }),
    /--heads: .*divide --width 30/,
  );
  assert.throws(
    () => resolveConfig({ model: "transformer", data: "text:/no/such/file" }),
    /existing text file/,
  );
  const c = resolveConfig({ model: "transformer" });
  assert.deepEqual(
    [c.data, c.layers, c.width, c.heads, c.context, c.batchSize, c.clipGrad],
    ["fortunes", 4, 128, 4, 128, 32, 1],
  );
  assert.throws(() => readFortunes("/no/such/fortunes"), /apt-get install fortunes/);
  // every training window is context + 1 characters inside the text, none overlapping, a permutation
  const n = 1000;
  const starts = [...epochWindows(n, 24, new Generator(3))].sort((a, b) => a - b);
  assert.equal(starts.length, Math.floor((n - 23) / 25)); // as many windows as the largest offset (23) allows
  for (let seed = 0; seed < 30; seed++) assert.equal(epochWindows(n, 24, new Generator(seed)).length, 39);
  starts.forEach((s, i) => {
    assert.ok(s + 25 <= n);
    if (i > 0) assert.equal(s - starts[i - 1], 25);
  });
  assert.deepEqual([...evalWindows(100, 24)], [0, 25, 50, 75]);
  const d = prepareText({ text: TEXT, source: "t" }, 0.1, 24, 3000);
  assert.equal(d.train.length + d.val.length, 3000);
  assert.equal(new Vocab(d.vocab.chars).decode(d.val), TEXT.slice(2700, 3000));
  for (const spec of [
    { layers: 1, width: 8, heads: 2, context: 5, vocab: [..."ab"] },
    { layers: 3, width: 48, heads: 6, context: 40, vocab: [..."abcdefg\n"] },
  ]) {
    const s = checkTextSpec({ name: "transformer", dropout: 0, ...spec });
    assert.equal(textModelParameters(s), countParameters(new CharTransformer(s)));
  }
  assert.throws(
    () =>
      checkTextSpec({
        name: "transformer",
        layers: 1,
        width: 8,
        heads: 3,
        context: 4,
        dropout: 0,
        vocab: ["a", "b"],
      }),
    /"heads" must divide "width"/,
  );
  assert.throws(
    () =>
      checkTextSpec({
        name: "transformer",
        layers: 1,
        width: 8,
        heads: 2,
        context: 4,
        dropout: 0,
        vocab: ["a", "a"],
      }),
    /repeated/,
  );
});

test("transformer --jit: the same run as eager", async () => {
  const cfg = { ...small, epochs: 1, evalEvery: 1000, limit: 2000 };
  const e = await runTrainText({ ...cfg, out: tmp("eager") }, silent);
  const j = await runTrainText({ ...cfg, jit: true, out: tmp("jit") }, silent);
  assert.equal(j.metrics.steps.loss.length, e.metrics.steps.loss.length);
  j.metrics.steps.loss.forEach((l, i) => {
    const r = e.metrics.steps.loss[i];
    assert.ok(Math.abs(l - r) <= 1e-4 * r, `step ${i + 1}: jit ${l}, eager ${r}`);
  });
  assert.ok(existsSync(join(j.outDir, "model.safetensors")));
  const a = generate(loadTextModel(e.outDir).net, new Vocab([...new Set(TEXT)].sort()), {
    prompt: "a",
    length: 20,
    temperature: 0,
    topK: null,
    seed: 0,
  });
  assert.equal([...a].length, 20);
});
