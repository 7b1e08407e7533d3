/**
 * Seeded differential fuzzer for conv2d over the layer shapes whose kernels differ on the native backend: strides
 * up to 9 (the phase planes serve strides up to 8 for filters wider than 1x1), filters up to 7x7, dilation,
 * wide and asymmetric padding, pointwise layers (1x1, no padding, unit stride: products per image, or one
 * product over all images on small planes), depthwise layers and channel multipliers (one output channel per
 * group has tiles of its own; over many taps, row tiles, as conv1's input gradient), groups, channel counts past
 * the register tiles, a bias and a fused activation,
 * inputs in every layout. Each case runs forward and backward (the gradients of sum(conv(x, w, b) * u) with
 * respect to x, w and b) on native in every instruction-set build this CPU runs with 1 and 2 threads, and on
 * wasm, against the js reference (test/fuzz/run.ts: same shapes, values within an ulp- and magnitude-aware
 * tolerance, the same error class).
 *
 * The seeds are fixed (CHAINRULE_FUZZ_SEEDS=a,b,... runs others); a failure names the seed and case index.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DType } from "../../src/dtype.ts";
import { setBackend } from "../../src/node.ts";
import { restoreDefaults, TARGETS } from "../backend/conformance/targets.ts";
import { type Case, convCase } from "./cases.ts";
import { input, int, pick, prng, type Rng, type Values } from "./gen.ts";
import { type Finding, type FuzzTarget, runCase } from "./run.ts";

const SEEDS = (process.env.CHAINRULE_FUZZ_SEEDS ?? "5,17,29").split(",").map(Number);
const CASES_PER_SEED = 120;

/** One convolution layer drawn from the shapes the native kernels tell apart. */
function wideConv(rng: Rng): Case {
  const kind = pick(rng, [
    "dense",
    "dense",
    "pointwise",
    "depthwise",
    "grouped",
    "strided",
    "one-out",
    "one-in",
  ] as const);
  let groups = 1;
  let cg = int(rng, 1, 6);
  let og = int(rng, 1, 12);
  let [kh, kw] = [int(rng, 1, 7), int(rng, 1, 7)];
  let stride = [int(rng, 1, 3), int(rng, 1, 3)];
  let dilation = rng() < 0.2 ? [int(rng, 1, 3), int(rng, 1, 3)] : [1, 1];
  let padding = [int(rng, 0, kh), int(rng, 0, kw)];
  if (kind === "pointwise") {
    [kh, kw] = [1, 1];
    stride = rng() < 0.8 ? [1, 1] : [2, 2];
    dilation = [1, 1];
    padding = [0, 0];
    groups = rng() < 0.3 ? int(rng, 2, 4) : 1;
    cg = int(rng, 1, 40);
    og = int(rng, 1, 40);
  } else if (kind === "depthwise") {
    cg = 1;
    groups = int(rng, 1, 12);
    og = rng() < 0.7 ? 1 : int(rng, 2, 3);
    stride = rng() < 0.5 ? [1, 1] : [2, 2];
  } else if (kind === "grouped") {
    groups = int(rng, 2, 4);
  } else if (kind === "strided") {
    stride = [int(rng, 2, 9), int(rng, 2, 9)];
  } else if (kind === "one-out" || kind === "one-in") {
    // one output channel over many taps (a forward pass; with one input channel, the input gradient): the
    // row tiles of native's OneRows (unit stride, filters 2 to 7 rows, 10 or more output rows)
    [kh, kw] = [int(rng, 2, 7), int(rng, 1, 7)];
    stride = [1, 1];
    dilation = [1, rng() < 0.3 ? 2 : 1];
    padding = [int(rng, 0, kh), int(rng, 0, kw)];
    groups = rng() < 0.2 ? 2 : 1;
    if (kind === "one-out") [cg, og] = [int(rng, 5, 24), 1];
    else [cg, og] = [1, int(rng, 5, 24)];
  }
  const ext = (k: number, d: number, p: number) => Math.max(1, d * (k - 1) + 1 - 2 * p);
  // planes from one output row or column up to past 64 positions (the pointwise paths switch there)
  const one = kind === "one-out" || kind === "one-in";
  const h =
    ext(kh, dilation[0], padding[0]) + int(rng, one ? 9 : 0, kind === "pointwise" ? 12 : one ? 18 : 14);
  const w = ext(kw, dilation[1], padding[1]) + int(rng, 0, kind === "pointwise" ? 12 : one ? 24 : 14);
  const n = int(rng, 1, one ? 2 : 3);
  const dt: DType = rng() < 0.8 ? "float32" : "float64";
  const vals: Values = rng() < 0.1 ? "special" : "plain";
  const inputs = [
    input(rng, [n, cg * groups, h, w], dt, vals),
    input(rng, [og * groups, cg, kh, kw], dt, vals, rng() < 0.7 ? "contiguous" : undefined),
  ];
  if (rng() < 0.4) inputs.push(input(rng, [og * groups], dt, vals, "contiguous"));
  const act = rng() < 0.2 ? pick(rng, ["relu", "tanh", "sigmoid"] as const) : undefined;
  const label = `conv2d ${kind} groups ${groups}${inputs.length > 2 ? " bias" : ""}`;
  return convCase(label, inputs, { stride, padding, dilation, groups, act });
}

const targets: FuzzTarget[] = TARGETS.map((t) => ({
  name: t.label,
  backend: t.backend,
  enter: () => t.enter(),
}));

for (const seed of SEEDS) {
  test(`conv2d fuzz: seed ${seed}, ${CASES_PER_SEED} layers, native (every ISA, 1 and 2 threads) and wasm against js`, () => {
    const prev = setBackend("js");
    const found: Finding[] = [];
    try {
      for (let i = 0; i < CASES_PER_SEED; i++) {
        const caseSeed = seed * 100003 + i;
        found.push(...runCase(wideConv(prng(caseSeed)), caseSeed, `seed ${seed} case ${i}`, targets));
      }
    } finally {
      restoreDefaults();
      setBackend(prev);
    }
    assert.equal(
      found.length,
      0,
      `${found.length} disagreement(s) with the js reference:\n` +
        found
          .slice(0, 20)
          .map((f) => `${f.where}\n    ${f.what}`)
          .join("\n"),
    );
  });
}
