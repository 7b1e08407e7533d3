/**
 * Model graphs and `chainrule graph`: the training steps of the zoo's mlp, cnn and resnet drawn forward and with
 * the backward pass; module scopes nest as the module tree; folded boxes carry the modules' labels; the loss on
 * the picture is the loss computed eagerly; the CLI writes .svg and .dot files and rejects bad arguments.
 *
 * All on the js backend, batch 2.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { setBackend } from "../../src/backend/registry.ts";
import { runGraph } from "../../src/cli/graph.ts";
import { buildModel, type ImageModelName } from "../../src/cli/models.ts";
import { crossEntropy } from "../../src/nn/loss.ts";
import { manualSeed, randn, tensor } from "../../src/ops/creation.ts";
import { trainingStepGraph } from "../../src/viz/graph-model.ts";
import { parseXml } from "../viz/xml.ts";
import { run, tempDirs } from "./helpers.ts";

before(() => setBackend("js"));
const tmp = tempDirs("graph");

function model(name: ImageModelName) {
  manualSeed(0);
  return buildModel({
    name,
    inputShape: [1, 28, 28],
    numClasses: 10,
    hidden: [32, 16],
    dropout: 0,
    mean: 0.13,
    std: 0.31,
  }).net;
}

for (const name of ["mlp", "cnn", "resnet"] as const) {
  test(`${name}: the training step's scopes are the module tree, folded boxes are labelled, the loss is right`, async () => {
    const net = model(name);
    manualSeed(1);
    const x = randn([2, 1, 28, 28]);
    const y = tensor([3, 7], { dtype: "int32" });
    const paths = new Map(net.namedModules().map(([n, m]) => [n, m]));
    for (const backward of [false, true]) {
      const g = trainingStepGraph(net, x, y, { backward, depth: 1 });
      for (const s of g.data.scopes) {
        assert.ok(paths.has(s.path), `scope ${s.path} is a module of the net`);
        const parent = s.parent < 0 ? null : g.data.scopes[s.parent].path;
        const expected = s.path === "" ? null : s.path.split(".").slice(0, -1).join(".");
        assert.equal(parent, expected, `${s.path} nested in its parent module`);
        assert.equal(s.depth, s.path === "" ? 1 : s.path.split(".").length + 1);
      }
      // every child of the root was called, forward; with backward, each one that has parameters has adjoints
      const fwd = new Set(g.data.scopes.filter((s) => !s.adjoint).map((s) => s.path));
      for (const [n] of net.namedChildren()) assert.ok(fwd.has(n), `module ${n} drawn`);
      const adj = new Set(g.data.scopes.filter((s) => s.adjoint).map((s) => s.path));
      if (backward) {
        for (const [n, m] of net.namedChildren())
          if (m.parameters().length > 0) assert.ok(adj.has(n), `adjoint of ${n}`);
        // outputs: the loss and one gradient per parameter, with its shape
        assert.equal(g.program.outs.length, 1 + net.parameters().length);
        net.namedParameters().forEach(([, p], i) => {
          assert.deepEqual([...g.program.outs[1 + i].shape], [...p.shape]);
        });
      } else {
        assert.equal(adj.size, 0);
      }
      // the loss value on the picture is the eagerly computed loss (eval statistics are not used: batch stats)
      net.train();
      const eager = crossEntropy(net.call(x), y).item();
      const out = g.values().find((v) => v.name === g.data.values.find((n) => n.output === 0)!.name)!;
      assert.ok(Math.abs(out.value!.item() - eager) < 1e-5, `loss ${out.value!.item()} vs ${eager}`);
      // folded boxes: one per child of the root, labelled with its path and class
      const dot = g.dot;
      for (const [n, m] of net.namedChildren()) {
        assert.ok(dot.includes(`label="${n}: ${m.constructor.name}(`), `box of ${n}`);
      }
      if (name === "mlp") assert.ok(dot.includes("Linear(784\u219232) \u25b8"));
      if (name === "cnn") assert.ok(dot.includes("Conv2d(1\u219232, 5x5) \u25b8"));
      if (name === "resnet") {
        // BasicBlocks nest their convolutions and norms
        const inner = g.data.scopes.filter((s) => s.path.startsWith("4.")).map((s) => s.path);
        assert.ok(inner.includes("4.conv1") && inner.includes("4.bn1"), inner.join(","));
      }
      const svg = await g.svg();
      parseXml(svg.replace(/<!DOCTYPE[^>]*>/, ""));
    }
    // the running statistics were set aside while tracing and are back
    for (const m of net.modules()) {
      const r = m as unknown as { runningMean?: unknown };
      if ("runningMean" in r) assert.ok(r.runningMean !== null);
    }
  });
}

test("chainrule graph writes .svg and .dot files", async () => {
  const dir = tmp("out");
  const svgPath = join(dir, "sub", "mlp.svg");
  const r = await run(["graph", "--model", "mlp", "--hidden", "16", "--backward", "--out", svgPath]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote .*mlp\.svg \(\d+ equations/);
  const svg = readFileSync(svgPath, "utf8");
  const texts = parseXml(svg.replace(/<!DOCTYPE[^>]*>/, ""))
    .filter((e) => e.name === "text")
    .map((e) => e.text);
  assert.ok(texts.some((t) => t.includes("Linear(784\u219216)")));
  assert.ok(texts.some((t) => t.includes("(adjoint)")));
  const dotPath = join(dir, "resnet.dot");
  const r2 = await run(["graph", "--model", "resnet", "--expand", "4", "--out", dotPath]);
  assert.equal(r2.code, 0, r2.err);
  const dot = readFileSync(dotPath, "utf8");
  assert.ok(dot.startsWith("digraph G {"));
  assert.ok(dot.includes('label="4: BasicBlock()"'), "block 4 is drawn open");
  assert.ok(dot.includes("conv1: Conv2d(16\u219216, 3x3) \u25b8"), "its children folded");
  assert.ok(dot.includes("5: BasicBlock() \u25b8"), "block 5 folded");
});

test("chainrule graph: bad arguments are clear errors and write nothing", async () => {
  const dir = tmp("bad");
  const cases: [string[], RegExp][] = [
    [
      ["--model", "vgg", "--out", join(dir, "a.svg")],
      /argument 'vgg' is invalid. Allowed choices are mlp, cnn, resnet/,
    ],
    [
      ["--model", "mlp", "--out", join(dir, "a.png")],
      /--out: .*a\.png" has extension "\.png"; expected one of \.svg, \.dot/,
    ],
    [["--model", "mlp"], /required option '--out <file>' not specified/],
    [["--model", "mlp", "--depth", "-1", "--out", join(dir, "a.svg")], /--depth/],
    [
      ["--model", "resnet", "--expand", "4.conv9", "--out", join(dir, "a.svg")],
      /--expand: the resnet has no module "4.conv9"/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = await run(["graph", ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.err, re);
  }
  const asDir = join(dir, "d.svg");
  mkdirSync(asDir);
  const r = await run(["graph", "--model", "mlp", "--out", asDir]);
  assert.equal(r.code, 1);
  assert.match(r.err, /d\.svg is a directory/);
  await assert.rejects(runGraph({ model: "mlp", out: join(dir, "x.svg"), batch: 1 }), /--batch/);
});
