/**
 * Smoke tests of the runnable examples: each one runs in a child process (`node --import tsx examples/x.ts`)
 * with tiny settings (a few hundred images, one epoch), must exit 0, print what it promises, and write its
 * output files (SVG documents, PNG images with the expected size, safetensors). Examples run two at a time to
 * use both cores. fashion-cnn needs the Debian package dataset-fashion-mnist and is skipped without it.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import assert from "node:assert/strict";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const OUT = mkdtempSync(join(tmpdir(), "chainrule-examples-"));
after(() => rmSync(OUT, { recursive: true, force: true }));

/** Run examples/<name>.ts with args and --out <tmp>/<name>; returns stdout and the output directory. */
async function runExample(name: string, args: string[]): Promise<{ stdout: string; out: string }> {
  const out = join(OUT, name);
  try {
    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", join("examples", `${name}.ts`), ...args, "--out", out],
      { cwd: ROOT, env: { ...process.env, CHAINRULE_BACKEND: "js" }, maxBuffer: 16 << 20 },
    );
    return { stdout, out };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    assert.fail(`examples/${name}.ts exited with code ${e.code}\nstdout:\n${e.stdout}\nstderr:\n${e.stderr}`);
  }
}

/** Assert `file` is a standalone SVG document with at least one drawn path or shape. */
function assertSvg(file: string): void {
  const text = readFileSync(file, "utf8");
  assert.match(text, /^(<\?xml[^>]*>\s*)?<svg[\s>]/, `${file} is not an SVG document`);
  assert.match(text, /<\/svg>\s*$/);
  assert.match(text, /<(path|rect|circle)\b/, `${file} draws nothing`);
}

/** Assert `file` is a PNG of width x height (read from its IHDR chunk). */
function assertPng(file: string, width: number, height: number): void {
  const b = readFileSync(file);
  assert.deepEqual(
    [...b.subarray(0, 8)],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    `${file} is not a PNG`,
  );
  assert.equal(b.toString("latin1", 12, 16), "IHDR");
  assert.deepEqual([b.readUInt32BE(16), b.readUInt32BE(20)], [width, height], `${file} size`);
}

/** The number in the first match of a "label: 12.34%" line. */
function percent(stdout: string, label: RegExp): number {
  const m = stdout.match(new RegExp(`${label.source}\\s*([0-9.]+)%`));
  assert.ok(m, `no ${label} in the output:\n${stdout}`);
  return Number(m[1]);
}

describe("examples", { concurrency: 2 }, () => {
  test("sawtooth: counts 2^depth - 1 kinks from autodiff slopes and flags the kinks", async () => {
    const { stdout, out } = await runExample("sawtooth", ["--max-depth", "6", "--points", "4001"]);
    // table rows "depth pieces kinks 2^depth-1 |slope|"
    for (let d = 1; d <= 6; d++) {
      const row = stdout.match(new RegExp(`^\\s*${d}\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)$`, "m"));
      assert.ok(row, `no table row for depth ${d}:\n${stdout}`);
      assert.deepEqual(row.slice(1).map(Number), [2 ** d, 2 ** d - 1, 2 ** d - 1, 2 ** d]);
    }
    // at each of the 7 kinks of f_3 the slope is the convention 0, with 2 relu kink reports
    const atKinks = stdout.match(/slope 0 {2}checkKinks: 2 reports \(relu, relu\)/g) ?? [];
    assert.equal(atKinks.length, 7);
    assert.match(stdout, /away from the kinks \(x = 0\.3, -1\.1\): slopes -8, 8, 0 reports/);
    assertSvg(join(out, "kinks.svg"));
    assertSvg(join(out, "functions.svg"));
  });

  test("mnist-mlp: trains on the digits, beats chance, writes curves and weights", async () => {
    const { stdout, out } = await runExample("mnist-mlp", [
      "--epochs",
      "1",
      "--limit",
      "500",
      "--test-limit",
      "500",
    ]);
    assert.match(stdout, /digits: 500 training and 500 test images/);
    assert.ok(percent(stdout, /final test accuracy:/) > 40, stdout); // chance is 10%
    assertSvg(join(out, "loss.svg"));
    assertSvg(join(out, "confusion.svg"));
    assert.ok(statSync(join(out, "model.safetensors")).size > 4 * (784 * 128 + 128 * 10));
  });

  test("unit-visualization: saliency, attribution and activation-maximisation pictures", async () => {
    const { stdout, out } = await runExample("unit-visualization", [
      ...["--epochs", "1", "--limit", "500", "--images", "2", "--ascent-steps", "10", "--scale", "2"],
    ]);
    assert.equal((stdout.match(/^test image \d+: label \d, predicted \d$/gm) ?? []).length, 2);
    assert.equal((stdout.match(/^class \d: objective/gm) ?? []).length, 10);
    // 11 columns (image + 10 classes) and 3 rows (header + 2 images) of 28 px tiles, 3 px gaps, scaled 2x
    const w = 2 * (11 * 28 + 12 * 3);
    assertPng(join(out, "saliency.png"), w, 2 * (3 * 28 + 4 * 3));
    assertPng(join(out, "attribution.png"), w, 2 * (3 * 28 + 4 * 3));
    assertPng(join(out, "maximize.png"), 2 * (10 * 28 + 11 * 3), 2 * (2 * 28 + 3 * 3));
  });

  test("resnet: a small ResNet of BasicBlocks trains and evaluates", async () => {
    const { stdout, out } = await runExample("resnet", [
      ...["--epochs", "1", "--limit", "256", "--test-limit", "200", "--width", "4"],
    ]);
    assert.match(stdout, /BasicBlock/);
    const acc = percent(stdout, /test accuracy/);
    assert.ok(acc >= 0 && acc <= 100);
    assertSvg(join(out, "curves.svg"));
    assert.ok(statSync(join(out, "model.safetensors")).size > 0);
  });

  test("lstm-rows: an LSTM reads the digits row by row and beats chance", async () => {
    const { stdout, out } = await runExample("lstm-rows", [
      ...["--epochs", "3", "--limit", "512", "--test-limit", "200", "--hidden", "32", "--lr", "1e-2"],
    ]);
    assert.match(stdout, /digits: 512 training and 200 test images/);
    assert.match(stdout, /LSTM/);
    assert.ok(percent(stdout, /final test accuracy:/) > 25, stdout); // chance is 10%
    assertSvg(join(out, "loss.svg"));
  });

  test("char-lm: a tiny Transformer on a generated text learns below the uniform bits per character", async () => {
    const text = join(OUT, "char-lm.txt");
    const words = ["ab", "ba", "abc", "cab"];
    let s = "";
    for (let i = 0; s.length < 3000; i++) s += `${words[(i * 7) % 4]} ${words[(i * 3) % 4]}\n`;
    writeFileSync(text, s);
    const { stdout, out } = await runExample("char-lm", [
      ...[
        "--text",
        text,
        "--steps",
        "50",
        "--layers",
        "1",
        "--width",
        "16",
        "--heads",
        "2",
        "--context",
        "16",
      ],
      ...["--batch", "8", "--lr", "1e-2", "--sample-length", "40"],
    ]);
    // 5 characters (a, b, c, space, newline): log2 5 = 2.32 bits for a uniform guess
    assert.match(stdout, /vocabulary of 5/);
    const m = stdout.match(/final held-out: ([0-9.]+) bits per character/);
    assert.ok(m, stdout);
    assert.ok(Number(m[1]) < 2, stdout);
    const sample = stdout.split("sample:\n")[1].split("\nwrote")[0];
    assert.equal(sample.length, 41); // the newline it starts from and 40 characters
    assert.match(sample, /^[abc \n]+$/);
    assertSvg(join(out, "loss.svg"));
  });

  const fashionDir = "/usr/share/datasets/fashion-mnist";
  test("fashion-cnn: trains the two-conv CNN and prints per-epoch test accuracy", {
    skip: existsSync(fashionDir) ? false : `${fashionDir} missing (apt-get install dataset-fashion-mnist)`,
  }, async () => {
    const { stdout, out } = await runExample("fashion-cnn", [
      ...["--epochs", "1", "--limit", "500", "--test-limit", "500"],
    ]);
    assert.match(stdout, /fashion-mnist: 500 training and 500 test images/);
    assert.ok(percent(stdout, /epoch 1\/1: .*test accuracy/) > 30, stdout); // chance is 10%
    assertSvg(join(out, "curves.svg"));
    assertSvg(join(out, "confusion.svg"));
  });
});
