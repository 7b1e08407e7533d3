/**
 * Example: a character-level language model, a small decoder-only Transformer (GPT-style) that learns to
 * continue text one character at a time.
 *
 * The text is a file (--text) or, by default, Debian's fortunes (`apt-get install fortunes`). Every character
 * of the text is a token; the last 10% is held out. Each step trains on a batch of random windows: the model
 * sees characters 0..T-1 and predicts 1..T, with a causal mask so position t attends only to positions <= t.
 * The loss is reported in bits per character (cross-entropy / ln 2). At the end the model writes a sample.
 * `chainrule train --model transformer` and `chainrule sample` do the same from the command line.
 *
 * Run:  npx tsx examples/char-lm.ts [--text file] [--steps 300] [--layers 4] [--width 128] [--context 128]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  arange,
  Generator,
  manualSeed,
  multinomial,
  nn,
  noGrad,
  optim,
  type Tensor,
  tensor,
  viz,
} from "../src/node.ts";

const { values: opts } = parseArgs({
  options: {
    text: { type: "string" },
    steps: { type: "string", default: "300" },
    layers: { type: "string", default: "4" },
    width: { type: "string", default: "128" },
    heads: { type: "string", default: "4" },
    context: { type: "string", default: "128" },
    batch: { type: "string", default: "32" },
    lr: { type: "string", default: "2e-3" },
    "sample-length": { type: "string", default: "300" },
    out: { type: "string", default: "runs/examples/char-lm" },
  },
});
const num = (name: keyof typeof opts): number => {
  const v = Number(opts[name]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`char-lm: --${name} must be a number > 0`);
  return v;
};
const [T, B, width] = [num("context"), num("batch"), num("width")];
manualSeed(0);
mkdirSync(opts.out, { recursive: true });

// ---- data: characters -> indices, the last 10% held out ---------------------------------------------------
function fortunes(dir = "/usr/share/games/fortunes"): string {
  const names = readdirSync(dir).filter((n) => !n.endsWith(".dat") && !n.endsWith(".u8"));
  return names
    .sort()
    .map((n) => readFileSync(join(dir, n), "utf8"))
    .join("");
}
const text = opts.text === undefined ? fortunes() : readFileSync(opts.text, "utf8");
const vocab = [...new Set(text)].sort();
const index = new Map(vocab.map((c, i) => [c, i]));
const ids = Int32Array.from([...text], (c) => index.get(c)!);
const split = Math.floor(0.9 * ids.length);
const [train, heldOut] = [ids.subarray(0, split), ids.subarray(split)];
console.log(`${ids.length} characters, vocabulary of ${vocab.length}`);

const gen = new Generator(0);
/** A batch of windows starting at `starts`: inputs [B, T] and the next characters [B, T]. */
function batch(src: Int32Array, starts: number[]): [Tensor, Tensor] {
  const x = starts.flatMap((s) => Array.from(src.subarray(s, s + T)));
  const y = starts.flatMap((s) => Array.from(src.subarray(s + 1, s + T + 1)));
  const shape = [starts.length, T];
  return [tensor(x, { dtype: "int32" }).reshape(shape), tensor(y, { dtype: "int32" }).reshape(shape)];
}

// ---- model: token + position embeddings, pre-norm Transformer layers (causal), LayerNorm, vocabulary head --
class CharLM extends nn.Module {
  tok = new nn.Embedding(vocab.length, width);
  pos = new nn.Embedding(T, width);
  blocks = new nn.TransformerEncoder(
    new nn.TransformerEncoderLayer(width, num("heads"), {
      dimFeedforward: 4 * width,
      dropout: 0,
      activation: "gelu",
      batchFirst: true,
      normFirst: true,
    }),
    num("layers"),
    { norm: new nn.LayerNorm(width) },
  );
  head = new nn.Linear(width, vocab.length);
  forward(x: Tensor): Tensor {
    const h = this.tok.call(x).add(this.pos.call(arange(x.shape[1], undefined, 1, { dtype: "int32" })));
    return this.head.call(this.blocks.call(h, { isCausal: true })); // logits [B, T, vocab]
  }
}
const model = new CharLM();
const lossOf = (logits: Tensor, y: Tensor) =>
  nn.crossEntropy(logits.reshape([-1, vocab.length]), y.reshape([-1]));
const bits = (nats: number) => nats / Math.LN2;

/** Bits per character on (up to 64 windows of) the held-out text. */
function heldOutBpc(): number {
  model.eval();
  const starts = Array.from({ length: Math.min(64, Math.floor((heldOut.length - 1) / T)) }, (_, k) => k * T);
  const loss = noGrad(() => lossOf(model.call(batch(heldOut, starts)[0]), batch(heldOut, starts)[1]).item());
  model.train();
  return bits(loss);
}

// ---- training: AdamW, cosine decay, gradient clipping ------------------------------------------------------
const steps = num("steps");
const optimizer = new optim.AdamW(model.parameters(), { lr: num("lr"), weightDecay: 0.01 });
const schedule = new optim.CosineAnnealingLR(optimizer, { tMax: steps });
console.log(
  `${nn.countParameters(model).toLocaleString("en-US")} parameters; held-out before training: ${heldOutBpc().toFixed(3)} bpc`,
);
const curve: number[] = [];
const evalX: number[] = [];
const evalY: number[] = [];
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const starts = Array.from({ length: B }, () => gen.int(0, train.length - T - 1));
  const [x, y] = batch(train, starts);
  const loss = lossOf(model.call(x), y);
  optimizer.zeroGrad();
  loss.backward();
  optim.clipGradNorm_(model.parameters(), 1);
  optimizer.step();
  schedule.step();
  curve.push(bits(loss.item()));
  if (step % 50 === 0 || step === steps) {
    evalX.push(step);
    evalY.push(heldOutBpc());
    const secs = ((performance.now() - t0) / 1000).toFixed(0);
    console.log(
      `step ${step}: train ${curve[step - 1].toFixed(3)} bpc, held-out ${evalY.at(-1)!.toFixed(3)} bpc (${secs} s)`,
    );
  }
}
console.log(`final held-out: ${evalY.at(-1)!.toFixed(3)} bits per character`);

// ---- sampling: temperature 0.8, one character at a time --------------------------------------------------
model.eval();
const out = [index.get("\n") ?? 0];
noGrad(() => {
  for (let i = 0; i < num("sample-length"); i++) {
    const ctx = out.slice(-T);
    const logits = model
      .call(tensor([ctx], { dtype: "int32" }))
      .narrow(1, ctx.length - 1, 1)
      .reshape([-1]);
    // softmax(logits / temperature), then one draw from that distribution
    out.push(multinomial(logits.div(0.8).softmax(0), 1, { generator: gen }).item());
  }
});
console.log(`sample:\n${out.map((i) => vocab[i]).join("")}`);
writeFileSync(
  join(opts.out, "loss.svg"),
  viz.linePlot({
    title: "character-level Transformer: bits per character",
    xLabel: "step",
    yLabel: "bits per character",
    series: [
      { name: "train", x: curve.map((_, i) => i + 1), y: curve },
      { name: "held-out", x: evalX, y: evalY },
    ],
  }),
);
console.log(`wrote ${join(opts.out, "loss.svg")}`);
