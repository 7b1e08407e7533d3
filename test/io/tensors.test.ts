/**
 * Tensor-level safetensors io: Tensor round trips for every dtype (special floats, 0-d, empty, views,
 * tensors that require grad), metadata, optimizer-state encoding (key names, JSON metadata, non-finite
 * numbers, the inverse), and checkpoints through files (model + optimizer-like state built by hand + extras),
 * with the file's raw header checked as a plain safetensors reader would see it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { FormatError, randn, Tensor, tensor, zeros } from "../../src/index.ts";
import { parseSafetensorsHeader } from "../../src/io/safetensors.ts";
import {
  CHECKPOINT_KEY,
  decodeOptimizerState,
  encodeOptimizerState,
  type OptimizerStateDict,
  safetensorsToTensors,
  tensorsToSafetensors,
} from "../../src/io/tensors.ts";
import {
  loadCheckpoint,
  loadSafetensors,
  saveCheckpoint,
  saveSafetensors,
} from "../../src/io/tensors-node.ts";

const tmp = mkdtempSync(join(tmpdir(), "chainrule-tensors-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Same dtype, shape and values (NaN equal to NaN, -0 distinct from 0). */
function sameTensor(a: Tensor, b: Tensor, what: string): void {
  assert.ok(b instanceof Tensor, `${what} is a Tensor`);
  assert.equal(b.dtype, a.dtype, `${what} dtype`);
  assert.deepEqual(b.shape, a.shape, `${what} shape`);
  const x = a.dataSync();
  const y = b.dataSync();
  assert.equal(y.length, x.length);
  for (let i = 0; i < x.length; i++) assert.ok(Object.is(x[i], y[i]), `${what}[${i}]: ${x[i]} vs ${y[i]}`);
}

const base = randn([3, 4], { dtype: "float64" });
const all: Record<string, Tensor> = {
  f32: tensor([1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, -3e-38, 1e-45]),
  f64: tensor([Math.PI, -1e300, 5e-324, Number.NEGATIVE_INFINITY], { dtype: "float64" }),
  i32: tensor(new Int32Array([-2147483648, 2147483647, 0, -1])).reshape([2, 2]),
  bool: tensor([true, false, true]),
  scalar: tensor(7, { dtype: "int32" }),
  empty: zeros([0, 3]),
  view: base.T, // non-contiguous: saved as its values in row-major order
  param: randn([2, 2], { requiresGrad: true }),
};

test("tensors -> safetensors -> tensors: every dtype, 0-d, empty, views, grad-requiring tensors", () => {
  const bytes = tensorsToSafetensors(all, { note: "hi", ünï: "cödé" });
  const { tensors, metadata } = safetensorsToTensors(bytes);
  assert.deepEqual(Object.keys(tensors).sort(), Object.keys(all).sort());
  for (const [k, t] of Object.entries(all)) sameTensor(t, tensors[k], k);
  assert.deepEqual(metadata, { note: "hi", ünï: "cödé" });
  assert.deepEqual(tensors.view.toArray(), base.T.toArray());
  assert.equal(tensors.param.requiresGrad, false);
  // the file dtypes are the spec names
  const header = parseSafetensorsHeader(bytes);
  const dt = Object.fromEntries(header.entries.map((e) => [e.name, e.dtype]));
  assert.deepEqual(dt, {
    f32: "F32",
    f64: "F64",
    i32: "I32",
    bool: "BOOL",
    scalar: "I32",
    empty: "F32",
    view: "F64",
    param: "F32",
  });
  // loaded tensors are usable in ops
  assert.deepEqual(tensors.i32.add(1).toArray(), [
    [-2147483647, -2147483648],
    [1, 0],
  ]);
});

test("tensorsToSafetensors rejects non-tensors; saveSafetensors / loadSafetensors through a file", () => {
  assert.throws(
    () => tensorsToSafetensors({ w: [1, 2] as unknown as Tensor }),
    (e: Error) => e instanceof FormatError && /'w' is not a Tensor/.test(e.message),
  );
  const path = join(tmp, "weights.safetensors");
  saveSafetensors(path, { "fc.weight": all.f32, "fc.bias": all.f64 }, { epoch: "3" });
  const { tensors, metadata } = loadSafetensors(path);
  sameTensor(all.f32, tensors["fc.weight"], "fc.weight");
  sameTensor(all.f64, tensors["fc.bias"], "fc.bias");
  assert.deepEqual(metadata, { epoch: "3" });
});

/** Adam-like state built by hand: per-parameter moments and step counts, param groups with hyperparameters. */
function adamLike(): OptimizerStateDict {
  return {
    state: {
      "0": { step: 12, exp_avg: tensor([0.1, -0.2]), exp_avg_sq: tensor([0.01, 0.04]) },
      "3": {
        step: 12,
        exp_avg: randn([2, 3]),
        exp_avg_sq: randn([2, 3]).square(),
        max_exp_avg_sq: zeros([2, 3], { dtype: "float64" }),
      },
    },
    paramGroups: [
      {
        params: [0, 3],
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weightDecay: 0,
        amsgrad: true,
        name: "body",
        clip: Number.POSITIVE_INFINITY,
        unused: null,
      },
      { params: [], lr: Number.NaN, $tag: "escaped", nested: { $tensor: "not a reference" } },
    ],
  };
}

function sameOptimizerState(a: OptimizerStateDict, b: OptimizerStateDict): void {
  assert.deepEqual(Object.keys(b.state).sort(), Object.keys(a.state).sort());
  for (const [id, entry] of Object.entries(a.state)) {
    assert.deepEqual(Object.keys(b.state[id]).sort(), Object.keys(entry).sort());
    for (const [k, v] of Object.entries(entry)) {
      if (v instanceof Tensor) sameTensor(v, b.state[id][k] as Tensor, `state.${id}.${k}`);
      else assert.equal(b.state[id][k], v);
    }
  }
  assert.deepEqual(b.paramGroups, a.paramGroups);
}

test("encodeOptimizerState: tensors as state.<id>.<key>, numbers and param groups as JSON; exact inverse", () => {
  const sd = adamLike();
  const enc = encodeOptimizerState(sd);
  assert.deepEqual(Object.keys(enc.tensors).sort(), [
    "state.0.exp_avg",
    "state.0.exp_avg_sq",
    "state.3.exp_avg",
    "state.3.exp_avg_sq",
    "state.3.max_exp_avg_sq",
  ]);
  assert.equal(enc.tensors["state.3.exp_avg"], sd.state["3"].exp_avg);
  assert.deepEqual(Object.keys(enc.metadata).sort(), ["param_groups", "state"]);
  const stateJson = JSON.parse(enc.metadata.state);
  assert.deepEqual(stateJson["0"], {
    step: 12,
    exp_avg: { $tensor: "state.0.exp_avg" },
    exp_avg_sq: { $tensor: "state.0.exp_avg_sq" },
  });
  const groups = JSON.parse(enc.metadata.param_groups);
  assert.deepEqual(groups[0].clip, { $number: "Infinity" });
  assert.deepEqual(groups[1].$$tag, "escaped");
  // through bytes and back
  const bytes = tensorsToSafetensors(enc.tensors, enc.metadata);
  sameOptimizerState(sd, decodeOptimizerState(safetensorsToTensors(bytes)));
  // with a prefix
  const pre = encodeOptimizerState(sd, "opt.");
  assert.ok(Object.hasOwn(pre.tensors, "opt.state.3.exp_avg"));
  sameOptimizerState(sd, decodeOptimizerState(pre, "opt."));
  assert.throws(() => decodeOptimizerState({ tensors: {}, metadata: {} }), /no 'state' entry/);
  assert.throws(
    () => decodeOptimizerState({ tensors: {}, metadata: { state: enc.metadata.state, param_groups: "[]" } }),
    /refers to a tensor "state.0.exp_avg" the file lacks/,
  );
});

test("checkpoint round trip through a file: model, optimizer-like state and extras", () => {
  const model = {
    "fc1.weight": randn([4, 3]),
    "fc1.bias": zeros([4]),
    "bn.num_batches": tensor(5, { dtype: "int32" }),
  };
  const optimizer = adamLike();
  const extra = {
    epoch: 7,
    losses: [0.9, 0.5, Number.NaN],
    config: { lr: 0.001, layers: [3, 4], name: "mlp" },
    bestLogits: tensor([[1, 2]]),
  };
  const path = join(tmp, "ckpt.safetensors");
  saveCheckpoint(path, { model, optimizer, extra });
  const back = loadCheckpoint(path);
  assert.deepEqual(Object.keys(back.model).sort(), Object.keys(model).sort());
  for (const [k, t] of Object.entries(model)) sameTensor(t, back.model[k], `model ${k}`);
  assert.ok(back.optimizer !== undefined);
  sameOptimizerState(optimizer, back.optimizer);
  const e = back.extra as typeof extra;
  assert.equal(e.epoch, 7);
  assert.deepEqual(e.losses, [0.9, 0.5, Number.NaN]);
  assert.deepEqual(e.config, extra.config);
  sameTensor(extra.bestLogits, e.bestLogits, "extra.bestLogits");
  assert.equal(back.metadata[CHECKPOINT_KEY], "1");

  // what any safetensors reader sees: plain tensors with spec dtypes and string metadata
  const bytes = new Uint8Array(readFileSync(path));
  const n = new DataView(bytes.buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const names = Object.keys(header)
    .filter((k) => k !== "__metadata__")
    .sort();
  assert.deepEqual(names, [
    "extra.bestLogits",
    "model.bn.num_batches",
    "model.fc1.bias",
    "model.fc1.weight",
    "optim.state.0.exp_avg",
    "optim.state.0.exp_avg_sq",
    "optim.state.3.exp_avg",
    "optim.state.3.exp_avg_sq",
    "optim.state.3.max_exp_avg_sq",
  ]);
  assert.deepEqual(header["model.fc1.weight"].dtype, "F32");
  assert.deepEqual(header["model.bn.num_batches"].dtype, "I32");
  assert.deepEqual(header["optim.state.3.max_exp_avg_sq"].dtype, "F64");
  assert.deepEqual(Object.keys(header.__metadata__).sort(), [
    "chainrule.checkpoint",
    "extra",
    "optim.param_groups",
    "optim.state",
  ]);
  for (const v of Object.values(header.__metadata__)) assert.equal(typeof v, "string");
  assert.equal(n % 8, 0, "header padded to 8 bytes");
});

test("checkpoint without optimizer or extras; loadCheckpoint refuses plain tensor files", () => {
  const path = join(tmp, "model-only.safetensors");
  saveCheckpoint(path, { model: { w: tensor([1, 2]) } });
  const back = loadCheckpoint(path);
  assert.equal(back.optimizer, undefined);
  assert.equal(back.extra, undefined);
  assert.deepEqual(back.model.w.toArray(), [1, 2]);
  const plain = join(tmp, "plain.safetensors");
  writeFileSync(plain, tensorsToSafetensors({ w: tensor([1]) }));
  assert.throws(
    () => loadCheckpoint(plain),
    (err: Error) => err instanceof FormatError && /not a chainrule checkpoint/.test(err.message),
  );
  assert.throws(
    () => saveCheckpoint(join(tmp, "bad.safetensors"), { model: {}, extra: { f: () => 1 } }),
    /cannot store function at 'extra.f'/,
  );
});
