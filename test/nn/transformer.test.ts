/**
 * Transformer layers against PyTorch 1.13 in float64 with identical weights (post/pre-norm, relu/gelu,
 * batchFirst both ways, source/target/memory masks and key padding, encoder and decoder stacks with a final
 * norm, PyTorch's state-dict names), RMSNorm (PyTorch 2.4's formula) and GroupNorm; gradCheck through an
 * encoder layer; eval vs train (dropout); jit(forward) equals eager; deep copies in the stacks; a short
 * training run of a 1-layer encoder on a toy sequence-reversal task.
 *
 * Weights and inputs come from det(shape, seed) as in attention.test.ts; REF was printed by the PyTorch 1.13
 * script in attention.test.ts's header comment (layers run in training mode with dropout 0, so 1.13's
 * inference fast path, with its nested-tensor padding, is not taken).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  gradCheck,
  io,
  jit,
  manualSeed,
  noGrad,
  optim,
  randint,
  randn,
  type Tensor,
  tensor,
} from "../../src/index.ts";
import {
  crossEntropy,
  Embedding,
  functionalCall,
  GroupNorm,
  LayerNorm,
  Linear,
  Module,
  RMSNorm,
  sinusoidalPositionEncoding,
  TransformerDecoder,
  TransformerDecoderLayer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };

const REF = {
  enc_post_relu: [
    1.072622663, -0.1962758128, 0.3478575552, -0.4206696874, 1.164245519, -0.2276131632, 0.7396301005,
    -0.2130877883, 1.093720446, -0.2085794444, 0.3768268759, -0.4170047266, 1.163347695, -0.2271570383,
    0.7335400665, -0.2174081415, 1.154101993, -0.2522935925, 0.4373627085, -0.4095125596, 1.151579896,
    -0.2170588702, 0.7249367427, -0.2191614267,
  ],
  enc_pre_gelu: [
    4.628962683, -1.957540064, 2.356736282, -5.531601853, 4.699649928, -2.268310115, 2.756417046,
    -5.708654901, 4.969296995, -2.659707111, 3.050047236, -5.734754223, 5.457459838, -2.068156128,
    0.9913370398, -3.701692383, 5.302140048, -1.722004863, 0.6107879446, -3.603096855, 4.967573128,
    -1.343885525, 0.3782344017, -3.659539523,
  ],
  dec_post_relu: [
    1.697954339, -0.9042681198, 0.9166380965, -1.07443575, 1.627887016, -1.001202669, 0.9273519894,
    -1.100691072, 1.695270484, -0.9099624457, 0.9184309601, -1.071814448, 1.635669581, -0.9938778631,
    0.9289173987, -1.089834177, 1.69068159, -0.9190425211, 0.9211266557, -1.068125461, 1.635276168,
    -0.9942895937, 0.9288778325, -1.090257795,
  ],
  dec_pre_gelu: [
    5.31706769, -1.597569922, -1.608424499, 0.4291923028, 9.438266617, -8.674733147, 6.414874617,
    -8.137219994, 4.76512488, -0.9961064418, -1.984934434, 0.4203546347, 9.893839299, -9.047994083,
    6.530149917, -7.910632724, 4.076389965, -0.3756132713, -2.345288967, 0.4675054292, 10.39235181,
    -9.284215422, 6.426048704, -7.500175758,
  ],
  enc_stack: [
    -0.9003225044, -1.88061696, 0.9212206647, -0.9630951758, -1.105038416, -1.861487035, 0.8835617675,
    -0.7518090079, -0.8988872486, -1.880262476, 0.9216152417, -0.9645520415, -1.104640512, -1.861477185,
    0.88400116, -0.7529614009, -0.8981783048, -1.880087071, 0.9218088657, -0.9652687839, -1.103617439,
    -1.861607852, 0.8847469567, -0.7552120169,
  ],
  enc_stack_keys: [
    "layers.0.self_attn.in_proj_weight",
    "layers.0.self_attn.in_proj_bias",
    "layers.0.self_attn.out_proj.weight",
    "layers.0.self_attn.out_proj.bias",
    "layers.0.linear1.weight",
    "layers.0.linear1.bias",
    "layers.0.linear2.weight",
    "layers.0.linear2.bias",
    "layers.0.norm1.weight",
    "layers.0.norm1.bias",
    "layers.0.norm2.weight",
    "layers.0.norm2.bias",
    "layers.1.self_attn.in_proj_weight",
    "layers.1.self_attn.in_proj_bias",
    "layers.1.self_attn.out_proj.weight",
    "layers.1.self_attn.out_proj.bias",
    "layers.1.linear1.weight",
    "layers.1.linear1.bias",
    "layers.1.linear2.weight",
    "layers.1.linear2.bias",
    "layers.1.norm1.weight",
    "layers.1.norm1.bias",
    "layers.1.norm2.weight",
    "layers.1.norm2.bias",
    "norm.weight",
    "norm.bias",
  ],
  dec_stack: [
    -0.6275765086, 1.655754444, -0.8650524664, 1.167987202, 1.373784811, 0.8633139924, -0.8776241844,
    -0.1641949918, -0.6275170485, 1.655778391, -0.8650530982, 1.168013526, 1.373644651, 0.8625993925,
    -0.8776370443, -0.1638346095, -0.6272777658, 1.655877857, -0.8650553568, 1.168101333, 1.372024727,
    0.8571320436, -0.8776781665, -0.1649360586,
  ],
  dec_stack_keys: [
    "layers.0.self_attn.in_proj_weight",
    "layers.0.self_attn.in_proj_bias",
    "layers.0.self_attn.out_proj.weight",
    "layers.0.self_attn.out_proj.bias",
    "layers.0.multihead_attn.in_proj_weight",
    "layers.0.multihead_attn.in_proj_bias",
    "layers.0.multihead_attn.out_proj.weight",
    "layers.0.multihead_attn.out_proj.bias",
    "layers.0.linear1.weight",
    "layers.0.linear1.bias",
    "layers.0.linear2.weight",
    "layers.0.linear2.bias",
    "layers.0.norm1.weight",
    "layers.0.norm1.bias",
    "layers.0.norm2.weight",
    "layers.0.norm2.bias",
    "layers.0.norm3.weight",
    "layers.0.norm3.bias",
    "layers.1.self_attn.in_proj_weight",
    "layers.1.self_attn.in_proj_bias",
    "layers.1.self_attn.out_proj.weight",
    "layers.1.self_attn.out_proj.bias",
    "layers.1.multihead_attn.in_proj_weight",
    "layers.1.multihead_attn.in_proj_bias",
    "layers.1.multihead_attn.out_proj.weight",
    "layers.1.multihead_attn.out_proj.bias",
    "layers.1.linear1.weight",
    "layers.1.linear1.bias",
    "layers.1.linear2.weight",
    "layers.1.linear2.bias",
    "layers.1.norm1.weight",
    "layers.1.norm1.bias",
    "layers.1.norm2.weight",
    "layers.1.norm2.bias",
    "layers.1.norm3.weight",
    "layers.1.norm3.bias",
  ],
  groupnorm: [
    -0.8823749608, -0.7368301357, -1.106870415, 1.072507926, 0.7001392533, -0.1938702566, -1.140355581,
    0.7423743022, 0.7081489116, -0.06685764953, -1.594685464, -0.6895097339, 0.8917725773, 0.7655035808,
    0.9033142522, -0.2752972825, 0.4546206515, -1.200487101, -1.008044714, -0.9382168472, -0.700172712,
    -0.2390477986, 0.8717459824, 0.9396891914, 1.441507633, -0.9843770898, 0.3470702165, -1.275170846,
    0.1638254233, -1.327432236, 0.8528274546, 0.9248507292, 0.7769791479, -0.9421469009, -0.7193627533,
    0.4709775041,
  ],
  rmsnorm: [
    0.9411954647, 0.3860947083, -0.3610000565, 0.3616778314, 0.9466722936, 0.09277719133, 0.6353782938,
    1.153850471, 0.3970555244, 0.04833627856, 0.8833507143, 1.044772002, -0.5055263971, 0.514626742,
    0.711838223, -0.3525504479, -0.3110141708, 0.7440577033, -0.9225979577, -0.888096817, -0.01172595207,
    -0.2428015068, -1.067340957, -0.6513170365, -0.2059798045, -1.09745231, -0.6476571102, 0.1429240588,
    -0.4842024927, -1.134116007, 0.9070442016, 0.2465405151, -0.4379629092, 0.3760783548, 0.8779882095,
    -0.04863397149,
  ],
};

function det(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Array.from({ length: n }, (_, i) => Math.sin(2.3 * i + 1.1 * seed + 0.5) * 0.9),
    f64,
  ).reshape(shape);
}

function loadDet<M extends Module<never[], unknown>>(m: M): M {
  const vals: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(m.stateDict())) {
    vals[k] = det(
      [...t.shape],
      [...k].reduce((s, c) => s + c.charCodeAt(0), 0),
    );
  }
  m.loadStateDict(vals);
  return m;
}

function close(actual: Tensor, expected: readonly number[], tol = 1e-8, what = "value"): void {
  const a = Array.from(actual.contiguous().to("float64").dataSync());
  assert.equal(a.length, expected.length, `${what}: length`);
  a.forEach((x, i) => {
    const e = expected[i];
    assert.ok(Math.abs(x - e) <= tol * (1 + Math.abs(e)), `${what}[${i}]: ${x} vs ${e}`);
  });
}

const values = (t: Tensor) => Array.from(t.contiguous().dataSync());
const bool = (rows: boolean[][]) => tensor(rows, { dtype: "bool" });
const F = false;
const T = true;
const kpm = bool([
  [F, F, F],
  [F, F, T],
]);
const kpmC = bool([
  [F, F, F, F, T],
  [F, T, F, F, F],
]);
const causal = bool([
  [F, T, T],
  [F, F, T],
  [F, F, F],
]);
const small = { dimFeedforward: 6, dropout: 0, ...f64 };

test("TransformerEncoderLayer matches PyTorch 1.13: post-norm relu with masks; pre-norm gelu batchFirst", () => {
  const enc = loadDet(new TransformerEncoderLayer(4, 2, small));
  assert.deepEqual(Object.keys(enc.stateDict()), [
    "self_attn.in_proj_weight",
    "self_attn.in_proj_bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
  ]);
  const src = det([3, 2, 4], 21);
  close(enc.call(src, { srcMask: causal, srcKeyPaddingMask: kpm }), REF.enc_post_relu, 1e-8, "post relu");
  close(enc.call(src, { isCausal: true, srcKeyPaddingMask: kpm }), REF.enc_post_relu, 1e-8, "isCausal");
  const enc2 = loadDet(
    new TransformerEncoderLayer(4, 2, {
      ...small,
      activation: "gelu",
      batchFirst: true,
      normFirst: true,
      layerNormEps: 1e-3,
    }),
  );
  const out = enc2.call(src.transpose(0, 1), { srcKeyPaddingMask: kpm });
  assert.deepEqual(out.shape, [2, 3, 4]);
  close(out, REF.enc_pre_gelu, 1e-8, "pre gelu");
});

test("TransformerDecoderLayer matches PyTorch 1.13: post-norm relu (causal, memory padding); pre-norm gelu (memory mask)", () => {
  const dec = loadDet(new TransformerDecoderLayer(4, 2, small));
  const mem = det([5, 2, 4], 22);
  const tgt = det([3, 2, 4], 23);
  close(dec.call(tgt, mem, { tgtMask: causal, memoryKeyPaddingMask: kpmC }), REF.dec_post_relu, 1e-8, "post");
  close(
    dec.call(tgt, mem, { tgtIsCausal: true, memoryKeyPaddingMask: kpmC }),
    REF.dec_post_relu,
    1e-8,
    "isCausal",
  );
  const dec2 = loadDet(new TransformerDecoderLayer(4, 2, { ...small, activation: "gelu", normFirst: true }));
  close(dec2.call(tgt, mem, { memoryMask: det([3, 5], 7) }), REF.dec_pre_gelu, 1e-8, "pre gelu");
});

test("TransformerEncoder / TransformerDecoder: deep copies with PyTorch's names, final norm, match PyTorch 1.13", () => {
  const layer = new TransformerEncoderLayer(4, 2, small);
  const stack = new TransformerEncoder(layer, 2, { norm: new LayerNorm(4, f64) });
  assert.deepEqual(Object.keys(stack.stateDict()), REF.enc_stack_keys);
  // copies: equal to the layer at first, independent storage
  const p0 = stack.layers.at(0).linear1.weight;
  assert.deepEqual(values(p0), values(layer.linear1.weight));
  assert.notEqual(p0, stack.layers.at(1).linear1.weight);
  noGrad(() => p0.add_(1));
  assert.notDeepEqual(values(p0), values(stack.layers.at(1).linear1.weight));
  loadDet(stack);
  close(stack.call(det([3, 2, 4], 21), { srcKeyPaddingMask: kpm }), REF.enc_stack, 1e-8, "encoder stack");
  const dstack = loadDet(new TransformerDecoder(new TransformerDecoderLayer(4, 2, small), 2));
  assert.deepEqual(Object.keys(dstack.stateDict()), REF.dec_stack_keys);
  close(
    dstack.call(det([3, 2, 4], 23), det([5, 2, 4], 22), { tgtMask: causal }),
    REF.dec_stack,
    1e-8,
    "decoder stack",
  );
  assert.throws(() => new TransformerEncoder(layer, 0), /numLayers must be an integer >= 1/);
});

test("GroupNorm matches PyTorch; RMSNorm matches PyTorch 2.4's formula (default eps: the dtype's epsilon)", () => {
  const gn = loadDet(new GroupNorm(2, 6, { eps: 1e-4, ...f64 }));
  close(gn.call(det([2, 6, 3], 31)), REF.groupnorm, 1e-8, "groupnorm");
  const rms = new RMSNorm(6, { eps: 1e-6, ...f64 });
  noGrad(() => rms.weight!.copy_(det([6], 33)));
  close(rms.call(det([2, 3, 6], 32)), REF.rmsnorm, 1e-8, "rmsnorm");
  const plain = new RMSNorm([3, 6], { elementwiseAffine: false });
  assert.equal(plain.weight, null);
  const x = det([2, 3, 6], 32);
  const y = plain.call(x);
  const ms = x.square().mean([1, 2], true);
  close(y, values(x.div(ms.add(2.220446049250313e-16).sqrt())), 1e-12, "eps = float64 epsilon");
  assert.throws(() => new GroupNorm(4, 6), /numGroups must be an integer >= 1 dividing numChannels 6/);
  assert.throws(() => gn.call(det([2, 5, 3], 1)), /GroupNorm: expected input \[N, 6, \*\]/);
});

test("TransformerEncoderLayer: gradCheck in float64 through the input and every parameter", () => {
  manualSeed(21);
  const layer = new TransformerEncoderLayer(4, 2, { ...small, activation: "gelu", batchFirst: true });
  const names = layer.namedParameters().map(([n]) => n);
  const x = randn([2, 3, 4], f64);
  const f = (...xs: Tensor[]) =>
    functionalCall(layer, Object.fromEntries(names.map((n, i) => [n, xs[i + 1]])), xs[0], {
      srcKeyPaddingMask: kpm,
    });
  const report = gradCheck(f, [x, ...layer.namedParameters().map(([, p]) => p.detach())]);
  assert.ok(report.ok, report.worst);
});

test("RMSNorm and GroupNorm: gradCheck in float64 (input and affine parameters)", () => {
  manualSeed(25);
  const rms = new RMSNorm(5, f64);
  const gn = new GroupNorm(2, 4, f64);
  noGrad(() => {
    rms.weight!.copy_(randn([5], f64));
    gn.weight!.copy_(randn([4], f64));
    gn.bias!.copy_(randn([4], f64));
  });
  const r1 = gradCheck((x, w) => functionalCall(rms, { weight: w }, x), [randn([3, 5], f64), rms.weight!]);
  assert.ok(r1.ok, r1.worst);
  const r2 = gradCheck(
    (x, w, b) => functionalCall(gn, { weight: w, bias: b }, x),
    [randn([2, 4, 3], f64), gn.weight!, gn.bias!],
  );
  assert.ok(r2.ok, r2.worst);
});

test("eval vs train: dropout is off in eval mode (eval equals a dropout-0 layer), on in training", () => {
  manualSeed(22);
  const a = new TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0.3, ...f64 });
  const b = new TransformerEncoderLayer(8, 2, { dimFeedforward: 16, dropout: 0, ...f64 });
  b.loadStateDict(a.stateDict());
  const x = randn([5, 3, 8], f64);
  const ref = b.call(x);
  close(a.eval().call(x), values(ref), 1e-12, "eval");
  a.train();
  const t1 = a.call(x);
  const t2 = a.call(x);
  assert.ok(t1.sub(ref).abs().max().item() > 1e-3, "training applies dropout");
  assert.ok(t1.sub(t2).abs().max().item() > 1e-3, "fresh masks every call");
  // the copies in a stack keep the layer's mode
  assert.ok(new TransformerEncoder(a.eval(), 2).layers.at(1).dropout1.training === false);
});

test("jit(forward) equals eager (encoder and decoder layers, eval mode)", () => {
  manualSeed(23);
  const enc = new TransformerEncoderLayer(8, 2, { dimFeedforward: 16, ...f64, normFirst: true }).eval();
  const x = randn([2, 5, 8], f64).transpose(0, 1);
  const f = jit((s: Tensor) => enc.call(s, { isCausal: true }));
  close(f(x), values(enc.call(x, { isCausal: true })), 1e-12, "encoder");
  const dec = new TransformerDecoderLayer(8, 2, { dimFeedforward: 16, activation: "gelu", ...f64 }).eval();
  const mem = randn([4, 2, 8], f64);
  const g = jit((t: Tensor, m: Tensor) => dec.call(t, m, { tgtIsCausal: true }));
  close(g(x, mem), values(dec.call(x, mem, { tgtIsCausal: true })), 1e-12, "decoder");
});

test("training: a 1-layer encoder learns to reverse short sequences (loss falls clearly)", () => {
  manualSeed(24);
  const vocab = 8;
  const len = 6;
  const d = 32;
  class Reverser extends Module {
    embed = new Embedding(vocab, d);
    encoder = new TransformerEncoder(
      new TransformerEncoderLayer(d, 4, { dimFeedforward: 64, dropout: 0, batchFirst: true }),
      1,
    );
    head = new Linear(d, vocab);
    pe = sinusoidalPositionEncoding(len, d);
    forward(tokens: Tensor): Tensor {
      return this.head.call(this.encoder.call(this.embed.call(tokens).add(this.pe)));
    }
  }
  const model = new Reverser();
  const opt = new optim.Adam(model.parameters(), { lr: 3e-3 });
  const losses: number[] = [];
  for (let step = 0; step < 300; step++) {
    const x = randint(0, vocab, [32, len]);
    const y = x.flip(1);
    const loss = crossEntropy(model.call(x).reshape([32 * len, vocab]), y.reshape([32 * len]));
    opt.zeroGrad();
    loss.backward();
    opt.step();
    losses.push(loss.item());
  }
  const first = losses.slice(0, 10).reduce((a, b) => a + b) / 10;
  const last = losses.slice(-10).reduce((a, b) => a + b) / 10;
  assert.ok(first > 1.9, `initial loss near ln 8: ${first}`);
  assert.ok(last < 0.25, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
});

/*
 * A TransformerEncoderLayer initialised by PyTorch 1.13 itself, its state dict written as safetensors (the
 * format's 8-byte header length, JSON header, raw little-endian data; the `safetensors` package is not
 * installed here) and its output on det([3, 2, 4], 21), by this script:
 *
 * import base64, json, math, struct, torch
 * import torch.nn as nn
 * torch.set_default_dtype(torch.float64)
 * torch.manual_seed(0)
 * def det(shape, seed):
 *     n = math.prod(shape)
 *     return torch.tensor([math.sin(2.3 * i + 1.1 * seed + 0.5) * 0.9 for i in range(n)]).reshape(shape)
 * layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0)  # PyTorch's own initialisation
 * header, blobs, off = {}, [], 0
 * for k, t in layer.state_dict().items():
 *     b = t.contiguous().numpy().tobytes()
 *     header[k] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
 *     blobs.append(b); off += len(b)
 * h = json.dumps(header, separators=(",", ":")).encode()
 * h += b" " * (-len(h) % 8)
 * data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
 * print(base64.b64encode(data).decode())
 * print(json.dumps([round(x, 12) for x in layer(det([3, 2, 4], 21)).flatten().tolist()]))
 */
const TORCH_LAYER_SAFETENSORS = [
  "eAMAAAAAAAB7InNlbGZfYXR0bi5pbl9wcm9qX3dlaWdodCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbMTIsNF0sImRhdGFfb2Zm",
  "c2V0cyI6WzAsMzg0XX0sInNlbGZfYXR0bi5pbl9wcm9qX2JpYXMiOnsiZHR5cGUiOiJGNjQiLCJzaGFwZSI6WzEyXSwiZGF0YV9v",
  "ZmZzZXRzIjpbMzg0LDQ4MF19LCJzZWxmX2F0dG4ub3V0X3Byb2oud2VpZ2h0Ijp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOls0LDRd",
  "LCJkYXRhX29mZnNldHMiOls0ODAsNjA4XX0sInNlbGZfYXR0bi5vdXRfcHJvai5iaWFzIjp7ImR0eXBlIjoiRjY0Iiwic2hhcGUi",
  "Ols0XSwiZGF0YV9vZmZzZXRzIjpbNjA4LDY0MF19LCJsaW5lYXIxLndlaWdodCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbNiw0",
  "XSwiZGF0YV9vZmZzZXRzIjpbNjQwLDgzMl19LCJsaW5lYXIxLmJpYXMiOnsiZHR5cGUiOiJGNjQiLCJzaGFwZSI6WzZdLCJkYXRh",
  "X29mZnNldHMiOls4MzIsODgwXX0sImxpbmVhcjIud2VpZ2h0Ijp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOls0LDZdLCJkYXRhX29m",
  "ZnNldHMiOls4ODAsMTA3Ml19LCJsaW5lYXIyLmJpYXMiOnsiZHR5cGUiOiJGNjQiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMi",
  "OlsxMDcyLDExMDRdfSwibm9ybTEud2VpZ2h0Ijp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOls0XSwiZGF0YV9vZmZzZXRzIjpbMTEw",
  "NCwxMTM2XX0sIm5vcm0xLmJpYXMiOnsiZHR5cGUiOiJGNjQiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMiOlsxMTM2LDExNjhd",
  "fSwibm9ybTIud2VpZ2h0Ijp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOls0XSwiZGF0YV9vZmZzZXRzIjpbMTE2OCwxMjAwXX0sIm5v",
  "cm0yLmJpYXMiOnsiZHR5cGUiOiJGNjQiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMiOlsxMjAwLDEyMzJdfX0gICAgICBgl0qb",
  "2bPWvwwmPN/4tMs/AYGNWyOX3r/+vc4k08mdP9ah+Sa9edW/Mr9pmt9Csj/ct29pgHG7Py0JL5/shcw/DNa5osU70z/Ime0B7FjV",
  "v4wLe8tdStg/UpnHbOh4xD+3SuQXYNbXvxvPbsF4ONu/hl2SdYMxl79g5H654VzgP0zNRjlClrY//Fk1bOUKmL+2P/LzxjTXP2Vd",
  "TYetssS/ppItamnb0b8FI6y+yfjhv99qccY7ftM/w1InR7nOyL+RM29eQPinP1TuLepZF6W/Fw6Incx93D/rk14Nmvzhv3m6THAR",
  "feM/veJtX2zC3T/S9Q/qW53UP4Q7AXArItO/cUYVgWRU2L/yP6Psyx3jP8OM8IGN6tU/BqG6ax6nxb9Vs0gR86S0P1MQgU/359I/",
  "ya8QHMdr478uyrENhDa6P1I1ix2H27U/OYWHXBq04b8X6PSOOWrav8JGmClSi+M/GvXt0AWQvz+vKJuGcIDbv1cUoUSLmMC/zBpx",
  "DSN83D8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABdVIkvWRXeP/8yh2DXmco/T9DaRcLLpL/N+sqxh+3aP0t7h34mkMI/463NxCqi0j9R",
  "i6lnt5HUv58I7cXnDsO/X2xmLsLStD/79N4WFhvLv49dWwGTIai/o25AClGv1L+70sltnobCv8cQSrAuNb8///YMNFWWkr+/hhah",
  "ZU+uvwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAtxUWp5ri2L9fxqLxRc/TPwWTosG7ftI/U3ztBMUM0z9/dOWNl+G3",
  "v1Ou/M2dn8w/AS3E9W0+37/XIbA7/ifPv6mbcwoa7dO/AeX2R4uY1b9/ohRyQvRzvw3NZ5/6Hta/g0MyPTpP0b8PKXSn4OK2v/Ng",
  "+SETHsC/o5Cf3lpL1L9fG0UU4ai5vz9GeUkwGpI/b9hyVd+svD8vHnihsB68vz/CbVQRrKM/U9/OcetJ07+/ZNbspx6yvwN2R68X",
  "0NY/oGhaS2cC2z+U1jVRvo/dv5hsFQ8BEso/pNZQNNm91L8alfTkqpPUv4jsjKuPdtS/B4gNB1uuwT/CzvQ3vVG4Pw+g0aasVdG/",
  "iPdyg/bj2D/tpQldGYnCP9LMxtE7+qk/51gS/v1kpr97x5bTaZLYP9QqZoO79Vg/YaYcmcKo2D+LODL+c2XTP2Pdx7SbOMy/uwOa",
  "asw8xj+T0QPUlQOnvyNRjBo+D5w/7BqFjWE+0r+S4CV5ioHAP8ou+cdt19e/u3inNMw+Qb/vfqiBGzimv7r3s4Vous4/p6M2bUBp",
  "xL/Muo+4U7vCv1/WvfsPMcY/P2Sa/ocH17/ZmnQE8HrUP52pLko8P9e/S59MoHmN1D8AAAAAAADwPwAAAAAAAPA/AAAAAAAA8D8A",
  "AAAAAADwPwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8D8AAAAAAADwPwAAAAAAAPA/AAAAAAAA8D8AAAAA",
  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
].join("");
const TORCH_LAYER_OUT = [
  -1.243930508688, 1.426334654771, 0.356869837973, -0.539273984056, 0.617673601055, -0.698727585203,
  -1.209861718222, 1.29091570237, -1.245891624738, 1.118556480729, 0.834524318754, -0.707189174745,
  0.413443494777, -0.249770355453, -1.451737657316, 1.288064517993, -1.155388013632, 0.669342116716,
  1.267448381517, -0.781402484601, 0.155303915786, 0.211006857915, -1.573162513372, 1.206851739671,
];

test("a TransformerEncoderLayer saved by PyTorch (safetensors) loads by its state-dict names and matches", () => {
  const { tensors } = io.safetensorsToTensors(new Uint8Array(Buffer.from(TORCH_LAYER_SAFETENSORS, "base64")));
  const layer = new TransformerEncoderLayer(4, 2, small);
  const r = layer.loadStateDict(tensors);
  assert.deepEqual([r.missingKeys, r.unexpectedKeys], [[], []]);
  close(layer.call(det([3, 2, 4], 21)), TORCH_LAYER_OUT, 1e-9, "PyTorch-initialised layer");
});
