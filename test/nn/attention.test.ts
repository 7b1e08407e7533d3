/**
 * Attention: scaledDotProductAttention and MultiheadAttention against PyTorch 1.13 in float64 with identical
 * weights (all masks, weights averaged or per head, batchFirst both ways, kdim/vdim, no bias), dropout
 * (generator, given masks, jit, eval mode, functionalApply), gradCheck, vmap and jit against eager, position
 * encodings (sinusoidal against its formula, rotary against a complex-number rotation and its relative-position
 * property), ModuleDict and ParameterList.
 *
 * Weights and inputs are deterministic: det(shape, seed)[i] = 0.9 sin(2.3 i + 1.1 seed + 0.5), each parameter
 * seeded by the sum of the character codes of its state-dict name. PyTorch 1.13 has no
 * F.scaled_dot_product_attention, so the SDPA references are PyTorch's own softmax(q k^T s + mask) v. The
 * reference values (REF here and in transformer.test.ts) were printed by this script, run once with
 * /usr/bin/python3 (torch 1.13):
 *
 * import json, math, torch
 * import torch.nn as nn
 * import torch.nn.functional as F
 * torch.set_default_dtype(torch.float64)
 * def det(shape, seed):
 *     n = math.prod(shape)
 *     return torch.tensor([math.sin(2.3 * i + 1.1 * seed + 0.5) * 0.9 for i in range(n)]).reshape(shape)
 * def load(m):
 *     with torch.no_grad():
 *         for k, p in m.state_dict().items():
 *             p.copy_(det(list(p.shape), sum(ord(c) for c in k)))
 *     return m
 * R = {}
 * def put(k, t): R[k] = t.detach().flatten().tolist()
 * def sdpa(q, k, v, mask=None, causal=False, scale=None):
 *     s = q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
 *     if mask is not None:
 *         s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
 *     if causal:
 *         s = s.masked_fill(~torch.ones(s.shape[-2], s.shape[-1]).tril().bool(), float("-inf"))
 *     return s.softmax(-1) @ v
 * q, k, v = det([2, 3, 4], 1), det([2, 5, 4], 2), det([2, 5, 3], 3)
 * put("sdpa_plain", sdpa(q, k, v))
 * put("sdpa_bool", sdpa(q, k, v, det([3, 5], 4) > 0))
 * put("sdpa_float", sdpa(q, k, v, det([3, 5], 5)))
 * put("sdpa_scale", sdpa(q, k, v, scale=0.3))
 * q2, k2, v2 = det([2, 4, 4], 1), det([2, 4, 4], 2), det([2, 4, 3], 3)
 * put("sdpa_causal", sdpa(q2, k2, v2, causal=True))
 * # MultiheadAttention (training mode, dropout 0: no fast path)
 * mha = load(nn.MultiheadAttention(4, 2))
 * x = det([3, 2, 4], 11)
 * o, w = mha(x, x, x); put("mha_self", o); put("mha_self_w", w)
 * kpm = torch.tensor([[False, False, False], [False, False, True]])
 * causal = torch.ones(3, 3).triu(1).bool()
 * o, w = mha(x, x, x, key_padding_mask=kpm, attn_mask=causal, average_attn_weights=False)
 * put("mha_masked", o); put("mha_masked_w", w)
 * kv = det([5, 2, 4], 12)
 * kpm_c = torch.tensor([[False, False, False, False, True], [False, True, False, False, False]])
 * o, w = mha(x, kv, kv, key_padding_mask=kpm_c, attn_mask=det([3, 5], 7))
 * put("mha_cross", o); put("mha_cross_w", w)
 * mha2 = load(nn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True))
 * qb, kb, vb = det([2, 3, 4], 13), det([2, 5, 3], 14), det([2, 5, 5], 15)
 * o, w = mha2(qb, kb, vb, attn_mask=det([4, 3, 5], 8))
 * put("mha_kv", o); put("mha_kv_w", w); R["mha_kv_keys"] = list(mha2.state_dict().keys())
 * mha3 = load(nn.MultiheadAttention(4, 2, bias=False))
 * o, _ = mha3(x, kv, kv, need_weights=False); put("mha_nobias", o)
 * # Transformer layers (training mode with dropout 0: PyTorch 1.13's fast path is off)
 * src = det([3, 2, 4], 21)
 * enc = load(nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0))
 * put("enc_post_relu", enc(src, src_mask=causal, src_key_padding_mask=kpm))
 * enc2 = load(nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, activation="gelu", batch_first=True, norm_first=True, layer_norm_eps=1e-3))
 * put("enc_pre_gelu", enc2(src.transpose(0, 1), src_key_padding_mask=kpm))
 * mem = det([5, 2, 4], 22)
 * tgt = det([3, 2, 4], 23)
 * dec = load(nn.TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0))
 * put("dec_post_relu", dec(tgt, mem, tgt_mask=causal, memory_key_padding_mask=kpm_c))
 * dec2 = load(nn.TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0, activation="gelu", norm_first=True))
 * put("dec_pre_gelu", dec2(tgt, mem, memory_mask=det([3, 5], 7)))
 * stack = load(nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0), 2, norm=nn.LayerNorm(4), enable_nested_tensor=False))
 * put("enc_stack", stack(src, src_key_padding_mask=kpm)); R["enc_stack_keys"] = list(stack.state_dict().keys())
 * dstack = load(nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0), 2))
 * put("dec_stack", dstack(tgt, mem, tgt_mask=causal)); R["dec_stack_keys"] = list(dstack.state_dict().keys())
 * gn = load(nn.GroupNorm(2, 6, eps=1e-4))
 * put("groupnorm", gn(det([2, 6, 3], 31)))
 * xr = det([2, 3, 6], 32); wr = det([6], 33)
 * put("rmsnorm", xr * torch.rsqrt(xr.pow(2).mean(-1, keepdim=True) + 1e-6) * wr)
 * print(json.dumps(R))
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Generator,
  gradCheck,
  jit,
  manualSeed,
  noGrad,
  ones,
  randn,
  type Tensor,
  tensor,
  vmap,
} from "../../src/index.ts";
import {
  applyRotary,
  dropoutRequests,
  functionalApply,
  Linear,
  ModuleDict,
  type Module,
  moduleState,
  MultiheadAttention,
  ParameterList,
  rotaryCosSin,
  scaledDotProductAttention,
  sinusoidalPositionEncoding,
} from "../../src/nn/index.ts";

const f64 = { dtype: "float64" as const };

const REF = {
  sdpa_plain: [
    -0.4805965117, 0.5183036676, -0.2100700992, -0.6165772385, 0.5577086335, -0.1265985402, -0.4852004993,
    0.5383709468, -0.2322068055, 0.5104325754, -0.4633203627, 0.1069659203, 0.6468411909, -0.5665091222,
    0.108061697, 0.5001382843, -0.4970819271, 0.162249253,
  ],
  sdpa_bool: [
    -0.188249594, 0.6184704255, -0.6358944348, -0.4841551628, 0.7367123197, -0.4975523436, -0.7303670318,
    0.3958532173, 0.2028720185, 0.1948525822, -0.6499917462, 0.6712952468, 0.4776064105, -0.7341081296,
    0.5006308771, 0.7121214308, -0.3322218925, -0.2694184694,
  ],
  sdpa_float: [
    -0.3833809066, 0.5304441439, -0.3234635209, -0.6297280979, 0.5296853864, -0.07610524569, -0.4869880422,
    0.6377452126, -0.3628406434, 0.4028307175, -0.4923157186, 0.2532055989, 0.6711053499, -0.4943164944,
    -0.01240289564, 0.5244938484, -0.6287984565, 0.3134128191,
  ],
  sdpa_scale: [
    -0.5126696467, 0.5094319454, -0.1661749327, -0.5999540911, 0.5337921326, -0.1113517055, -0.5189959845,
    0.5243579307, -0.1797382471, 0.5287437597, -0.4692959026, 0.09661745388, 0.6210293863, -0.5356935956,
    0.09281020869, 0.5268091552, -0.4895688795, 0.1255668551,
  ],
  sdpa_causal: [
    -0.5506721018, -0.1639462538, 0.7691390173, -0.749638079, 0.1836495608, 0.5049154817, -0.7616745083,
    0.3916096216, 0.2398343072, -0.6697586902, 0.4853523294, 0.02300145225, -0.01433327634, 0.6805994929,
    -0.8926009681, 0.3325949739, 0.3715488065, -0.8277030949, 0.4912501444, 0.1203429196, -0.6516133477,
    0.555357957, -0.08435042992, -0.4429566194,
  ],
  mha_self: [
    2.155461556, -1.057343318, -0.3152978039, 1.439662025, 2.699255706, -2.03186134, 1.0409134, -0.2300076368,
    1.988905745, -0.91781742, -0.4207738574, 1.505781442, 2.713487211, -2.032207127, 1.027356071,
    -0.2032292992, 1.999507109, -0.945010058, -0.3783580813, 1.450276583, 2.629773338, -1.924470389, 0.901017,
    -0.06464436136,
  ],
  mha_self_w: [
    0.1199364722, 0.2863618629, 0.5937016649, 0.08363270621, 0.2696098835, 0.6467574103, 0.08796688309,
    0.2777046622, 0.6343284547, 0.1026633861, 0.2677912322, 0.6295453817, 0.1081081964, 0.2575507027,
    0.6343411009, 0.1408309234, 0.2601277436, 0.599041333,
  ],
  mha_masked: [
    4.255652051, -3.346780152, 2.048197489, -0.8789777624, 0.2475011127, 0.4212466977, -1.290125452,
    1.861681039, 3.192822586, -2.183784484, 0.8435491365, 0.3067140943, 1.466788514, -0.8068961515,
    -0.1149184084, 0.7985377068, 1.999507109, -0.945010058, -0.3783580813, 1.450276583, 1.417575953,
    -0.7431096429, -0.190069589, 0.8812724964,
  ],
  mha_masked_w: [
    1, 0, 0, 0.1515982811, 0.8484017189, 0, 0.06151601743, 0.2706925933, 0.6677913893, 1, 0, 0, 0.2970343809,
    0.7029656191, 0, 0.1144177488, 0.2847167311, 0.6008655202, 1, 0, 0, 0.3622085786, 0.6377914214, 0,
    0.430692866, 0.569307134, 0, 1, 0, 0, 0.1037076739, 0.8962923261, 0, 0.1135955868, 0.8864044132, 0,
  ],
  mha_cross: [
    3.974206744, -2.977574738, 1.609807709, -0.3934602158, 1.541936706, -0.8072126703, -0.1894494872,
    0.9441665192, 3.723921515, -2.743859314, 1.404420959, -0.2267357124, 1.698626715, -0.979926134,
    -0.009402259678, 0.7658442003, 3.877118286, -2.899780074, 1.555220904, -0.3648276824, 2.061273709,
    -1.339848434, 0.3296866623, 0.4646491546,
  ],
  mha_cross_w: [
    0.09853668345, 0.02854911636, 0.163522686, 0.7093915141, 0, 0.03630705162, 0.03413068107, 0.04963718256,
    0.8799250848, 0, 0.02152271251, 0.1147651049, 0.06712501528, 0.7965871673, 0, 0.02969008497, 0,
    0.110742006, 0.4762628444, 0.3833050646, 0.02963313521, 0, 0.0387093011, 0.5113299352, 0.4203276285,
    0.03935714789, 0, 0.04261551453, 0.2533205592, 0.6647067784,
  ],
  mha_kv: [
    0.8287250664, 0.1386408854, -1.320356459, 2.203227859, 1.854340194, -1.002337866, -0.1214198715,
    1.006655241, 1.284877014, -0.2124066227, -1.092075559, 2.109199008, 2.218573903, -1.434153509, 0.35625187,
    0.5071603829, 3.559261309, -2.751580825, 1.584135697, -0.5694017331, 2.147942154, -1.246024741,
    0.06009135975, 0.8964519838,
  ],
  mha_kv_w: [
    0.2097793353, 0.2576602699, 0.2250421167, 0.1341840058, 0.1733342723, 0.2214717651, 0.2334560399,
    0.1695790104, 0.1834844959, 0.1920086887, 0.1562076591, 0.1603827019, 0.18385808, 0.3162897969,
    0.1832617621, 0.1167637434, 0.1557308001, 0.2645479608, 0.2034676139, 0.2594898817, 0.3982201162,
    0.1582756931, 0.1202188137, 0.0869611782, 0.2363241988, 0.09987400833, 0.1073145572, 0.1859979677,
    0.296773804, 0.3100396629,
  ],
  mha_kv_keys: [
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "in_proj_bias",
    "out_proj.weight",
    "out_proj.bias",
  ],
  mha_nobias: [
    0.6952349593, -0.5025865583, 0.2846516418, -0.05239511633, 0.05966307352, -0.2529929822, 0.4335941163,
    -0.592379935, 0.5646550935, -0.3921428432, 0.1999008052, 0.002398793387, 0.09993557279, -0.2687129986,
    0.4239707326, -0.5578973301, 0.619564381, -0.4783311028, 0.313031668, -0.1319827468, -0.05917859537,
    -0.06392224035, 0.1838069719, -0.2944438679,
  ],
};

/** The script's det(shape, seed). */
export function det(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, (_, i) => Math.sin(2.3 * i + 1.1 * seed + 0.5) * 0.9);
  return tensor(v, f64).reshape(shape);
}

/** The script's load(m): every state-dict entry from det, seeded by its name. */
export function loadDet<M extends Module<never[], unknown>>(m: M): M {
  const sd = m.stateDict();
  const vals: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(sd)) {
    vals[k] = det(
      [...t.shape],
      [...k].reduce((s, c) => s + c.charCodeAt(0), 0),
    );
  }
  m.loadStateDict(vals);
  return m;
}

export function close(
  actual: Tensor | number[],
  expected: readonly number[],
  tol = 1e-8,
  what = "value",
): void {
  const a = Array.isArray(actual) ? actual : Array.from(actual.to("float64").dataSync());
  assert.equal(a.length, expected.length, `${what}: length`);
  a.forEach((x, i) => {
    const e = expected[i];
    assert.ok(Math.abs(x - e) <= tol * (1 + Math.abs(e)), `${what}[${i}]: ${x} vs ${e}`);
  });
}

const bool = (rows: boolean[][]) => tensor(rows, { dtype: "bool" });
const F = false;
const T = true;

test("scaledDotProductAttention matches PyTorch: plain, bool mask (keep where true), float mask, scale, causal", () => {
  const q = det([2, 3, 4], 1);
  const k = det([2, 5, 4], 2);
  const v = det([2, 5, 3], 3);
  close(scaledDotProductAttention(q, k, v), REF.sdpa_plain, 1e-8, "plain");
  close(scaledDotProductAttention(q, k, v, { attnMask: det([3, 5], 4).gt(0) }), REF.sdpa_bool, 1e-8, "bool");
  close(scaledDotProductAttention(q, k, v, { attnMask: det([3, 5], 5) }), REF.sdpa_float, 1e-8, "float");
  close(scaledDotProductAttention(q, k, v, { scale: 0.3 }), REF.sdpa_scale, 1e-8, "scale");
  const out = scaledDotProductAttention(det([2, 4, 4], 1), det([2, 4, 4], 2), det([2, 4, 3], 3), {
    isCausal: true,
  });
  close(out, REF.sdpa_causal, 1e-8, "causal");
  // batch dims broadcast: one k, v for two heads
  const q4 = det([2, 2, 3, 4], 6);
  const both = scaledDotProductAttention(q4, k.narrow(0, 0, 1), v.narrow(0, 0, 1));
  assert.deepEqual(both.shape, [2, 2, 3, 3]);
  close(
    both.narrow(1, 1, 1),
    Array.from(
      scaledDotProductAttention(q4.narrow(1, 1, 1), k.narrow(0, 0, 1), v.narrow(0, 0, 1)).dataSync(),
    ),
  );
});

test("scaledDotProductAttention: argument errors name the op", () => {
  const q = det([2, 3, 4], 1);
  assert.throws(
    () => scaledDotProductAttention(q, det([2, 5, 3], 2), det([2, 5, 3], 3)),
    /scaledDotProductAttention: expected q/,
  );
  assert.throws(
    () => scaledDotProductAttention(q, q, q, { isCausal: true, attnMask: ones([3, 3]).gt(0) }),
    /either attnMask or isCausal/,
  );
  assert.throws(() => scaledDotProductAttention(q, q, q, { dropoutP: 1.5 }), /dropoutP must be in \[0, 1\]/);
  assert.throws(
    () => scaledDotProductAttention(q, q, q, { attnMask: ones([3, 3], { dtype: "int32" }) }),
    /mask must be bool or float64/,
  );
});

test("scaledDotProductAttention dropout: mask from the generator, reproducible, given masks, jit", () => {
  const q = det([2, 3, 4], 1);
  const k = det([2, 5, 4], 2);
  const v = det([2, 5, 3], 3);
  const a = scaledDotProductAttention(q, k, v, { dropoutP: 0.5, generator: new Generator(7) });
  const b = scaledDotProductAttention(q, k, v, { dropoutP: 0.5, generator: new Generator(7) });
  close(a, Array.from(b.dataSync()), 0, "same seed");
  // the drawn mask is what the generator gives, in the order of the weights
  const g = new Generator(7);
  const m = tensor(
    Array.from({ length: 30 }, () => (g.uniform() < 0.5 ? 2 : 0)),
    f64,
  ).reshape([2, 3, 5]);
  const w = q.matmul(k.transpose(-2, -1)).mul(0.5).softmax(-1);
  close(a, Array.from(w.mul(m).matmul(v).dataSync()), 1e-12, "mask from generator");
  close(
    scaledDotProductAttention(q, k, v, { dropoutP: 0.5, dropoutMask: m }),
    Array.from(a.dataSync()),
    1e-12,
    "given mask",
  );
  // under jit a mask cannot be drawn; passed in, jit equals eager
  assert.throws(
    () => jit((x: Tensor) => scaledDotProductAttention(x, k, v, { dropoutP: 0.5 }))(q),
    /jit|frozen/,
  );
  const f = jit((x: Tensor, mask: Tensor) =>
    scaledDotProductAttention(x, k, v, { dropoutP: 0.5, dropoutMask: mask }),
  );
  close(f(q, m), Array.from(a.dataSync()), 1e-12, "jit with mask");
});

test("scaledDotProductAttention: gradCheck in float64 (q, k, v, float mask; bool mask; causal)", () => {
  manualSeed(3);
  const q = randn([2, 3, 4], f64);
  const k = randn([2, 5, 4], f64);
  const v = randn([2, 5, 3], f64);
  const mask = randn([3, 5], f64);
  assert.ok(
    gradCheck((a, b, c, m) => scaledDotProductAttention(a, b, c, { attnMask: m }), [q, k, v, mask]).ok,
  );
  const keep = bool([
    [T, F, T, T, F],
    [F, T, T, F, T],
    [T, T, F, F, F],
  ]);
  assert.ok(
    gradCheck((a, b, c) => scaledDotProductAttention(a, b, c, { attnMask: keep, scale: 0.7 }), [q, k, v]).ok,
  );
  const q2 = randn([2, 4, 4], f64);
  assert.ok(
    gradCheck(
      (a, b, c) => scaledDotProductAttention(a, b, c, { isCausal: true }),
      [q2, q2.mul(0.5), randn([2, 4, 3], f64)],
    ).ok,
  );
});

test("scaledDotProductAttention: vmap over a batch equals the batched call; jit equals eager", () => {
  manualSeed(4);
  const q = randn([3, 2, 4, 8], f64);
  const k = randn([3, 2, 6, 8], f64);
  const v = randn([3, 2, 6, 5], f64);
  const mask = randn([4, 6], f64);
  const f = (a: Tensor, b: Tensor, c: Tensor) => scaledDotProductAttention(a, b, c, { attnMask: mask });
  const batched = f(q, k, v);
  close(vmap(f)(q, k, v), Array.from(batched.dataSync()), 1e-12, "vmap");
  const c = (a: Tensor, b: Tensor, cc: Tensor) => scaledDotProductAttention(a, b, cc, { isCausal: true });
  const q2 = randn([3, 2, 6, 8], f64);
  close(vmap(c)(q2, k, v), Array.from(c(q2, k, v).dataSync()), 1e-12, "vmap causal");
  close(jit(f)(q, k, v), Array.from(batched.dataSync()), 1e-12, "jit");
  close(jit(c)(q2, k, v), Array.from(c(q2, k, v).dataSync()), 1e-12, "jit causal");
});

test("MultiheadAttention matches PyTorch 1.13: self-attention, masks, per-head weights, cross-attention", () => {
  const mha = loadDet(new MultiheadAttention(4, 2, f64));
  assert.deepEqual(Object.keys(mha.stateDict()), [
    "in_proj_weight",
    "in_proj_bias",
    "out_proj.weight",
    "out_proj.bias",
  ]);
  const x = det([3, 2, 4], 11);
  let [o, w] = mha.call(x, x, x);
  close(o, REF.mha_self, 1e-8, "self out");
  close(w!, REF.mha_self_w, 1e-8, "self weights");
  assert.deepEqual(w!.shape, [2, 3, 3]);
  const kpm = bool([
    [F, F, F],
    [F, F, T],
  ]);
  const causal = bool([
    [F, T, T],
    [F, F, T],
    [F, F, F],
  ]);
  [o, w] = mha.call(x, x, x, { keyPaddingMask: kpm, attnMask: causal, averageAttnWeights: false });
  close(o, REF.mha_masked, 1e-8, "masked out");
  close(w!, REF.mha_masked_w, 1e-8, "masked weights");
  assert.deepEqual(w!.shape, [2, 2, 3, 3]);
  // isCausal (2.x's hint) is the same as the triu mask
  const [oc] = mha.call(x, x, x, { keyPaddingMask: kpm, isCausal: true, averageAttnWeights: false });
  close(oc, REF.mha_masked, 1e-8, "isCausal");
  const kv = det([5, 2, 4], 12);
  const kpmC = bool([
    [F, F, F, F, T],
    [F, T, F, F, F],
  ]);
  [o, w] = mha.call(x, kv, kv, { keyPaddingMask: kpmC, attnMask: det([3, 5], 7) });
  close(o, REF.mha_cross, 1e-8, "cross out");
  close(w!, REF.mha_cross_w, 1e-8, "cross weights");
  // a float key padding mask is added: -inf where padded is the bool mask
  const kpmF = tensor(
    [
      [0, 0, 0, 0, -Infinity],
      [0, -Infinity, 0, 0, 0],
    ],
    f64,
  );
  close(
    mha.call(x, kv, kv, { keyPaddingMask: kpmF, attnMask: det([3, 5], 7) })[0],
    REF.mha_cross,
    1e-8,
    "float kpm",
  );
});

test("MultiheadAttention kdim/vdim (separate projections, PyTorch names), 3-d mask, batchFirst; no bias", () => {
  const mha = loadDet(new MultiheadAttention(4, 2, { kdim: 3, vdim: 5, batchFirst: true, ...f64 }));
  assert.deepEqual(Object.keys(mha.stateDict()).sort(), [...REF.mha_kv_keys].sort());
  const [o, w] = mha.call(det([2, 3, 4], 13), det([2, 5, 3], 14), det([2, 5, 5], 15), {
    attnMask: det([4, 3, 5], 8),
  });
  close(o, REF.mha_kv, 1e-8, "out");
  close(w!, REF.mha_kv_w, 1e-8, "weights");
  const nb = loadDet(new MultiheadAttention(4, 2, { bias: false, ...f64 }));
  assert.deepEqual(Object.keys(nb.stateDict()), ["in_proj_weight", "out_proj.weight"]);
  const kv = det([5, 2, 4], 12);
  const [o2, w2] = nb.call(det([3, 2, 4], 11), kv, kv, { needWeights: false });
  close(o2, REF.mha_nobias, 1e-8, "no bias");
  assert.equal(w2, null);
  assert.throws(
    () => mha.call(det([2, 3, 4], 1), det([2, 5, 4], 1), det([2, 5, 5], 1)),
    /MultiheadAttention: expected query/,
  );
  assert.throws(() => new MultiheadAttention(6, 4), /numHeads must divide embedDim 6/);
});

test("MultiheadAttention: batchFirst both ways and unbatched inputs agree", () => {
  const a = loadDet(new MultiheadAttention(4, 2, f64));
  const b = loadDet(new MultiheadAttention(4, 2, { batchFirst: true, ...f64 }));
  const x = det([3, 2, 4], 11);
  const kpm = bool([
    [F, F, F],
    [F, T, F],
  ]);
  const [oa, wa] = a.call(x, x, x, { keyPaddingMask: kpm });
  const xb = x.transpose(0, 1);
  const [ob, wb] = b.call(xb, xb, xb, { keyPaddingMask: kpm });
  close(ob.transpose(0, 1).contiguous(), Array.from(oa.contiguous().dataSync()), 1e-12, "batchFirst out");
  close(wb!, Array.from(wa!.dataSync()), 1e-12, "batchFirst weights");
  const x0 = x.narrow(1, 1, 1).squeeze(1);
  const [ou, wu] = a.call(x0, x0, x0, { keyPaddingMask: kpm.narrow(0, 1, 1).squeeze(0) });
  assert.deepEqual(ou.shape, [3, 4]);
  assert.deepEqual(wu!.shape, [3, 3]);
  close(ou, Array.from(oa.narrow(1, 1, 1).contiguous().dataSync()), 1e-12, "unbatched out");
  close(wu!, Array.from(wa!.narrow(0, 1, 1).contiguous().dataSync()), 1e-12, "unbatched weights");
});

test("MultiheadAttention dropout: train draws masks (returned weights after dropout, as 1.13), eval is off; functionalApply", () => {
  const make = () =>
    loadDet(new MultiheadAttention(4, 2, { dropout: 0.4, generator: new Generator(5), ...f64 }));
  const ref = loadDet(new MultiheadAttention(4, 2, f64));
  const x = det([3, 2, 4], 11);
  const [oRef, wRef] = ref.call(x, x, x, { averageAttnWeights: false });
  const m = make();
  const [oe] = m.eval().call(x, x, x);
  close(oe, Array.from(oRef.dataSync()), 1e-12, "eval");
  m.train();
  const [ot, wt] = m.call(x, x, x, { averageAttnWeights: false });
  const g = new Generator(5);
  const mask = tensor(
    Array.from({ length: 36 }, () => (g.uniform() < 0.6 ? 1 / 0.6 : 0)),
    f64,
  ).reshape([2, 2, 3, 3]);
  close(wt!, Array.from(wRef!.mul(mask).dataSync()), 1e-12, "weights after dropout");
  assert.ok(Math.abs(ot.sub(oRef).abs().sum().item()) > 1e-3, "dropout changes the output");
  // functionalApply: the mask is requested and passed in like any Dropout's
  const m2 = make();
  const state = moduleState(m2);
  const req = dropoutRequests(m2, state, [x, x, x]);
  assert.equal(req.length, 1);
  assert.deepEqual(req[0].shape, [2, 2, 3, 3]);
  const [[of]] = functionalApply(m2, state, [x, x, x], { masks: [mask] });
  close(of, Array.from(ot.dataSync()), 1e-12, "functional with the same mask");
  const jf = jit((s: typeof state, mk: Tensor) => functionalApply(m2, s, [x, x, x], { masks: [mk] })[0][0]);
  close(jf(state, mask), Array.from(ot.dataSync()), 1e-12, "jit functional");
});

test("sinusoidalPositionEncoding: the formula of Vaswani et al. (interleaved sin/cos)", () => {
  const pe = sinusoidalPositionEncoding(7, 6, f64);
  assert.deepEqual(pe.shape, [7, 6]);
  const v = pe.dataSync();
  for (let p = 0; p < 7; p++) {
    for (let i = 0; i < 3; i++) {
      const angle = p * Math.exp((-2 * i * Math.log(10000)) / 6);
      assert.ok(Math.abs(v[p * 6 + 2 * i] - Math.sin(angle)) < 1e-12);
      assert.ok(Math.abs(v[p * 6 + 2 * i + 1] - Math.cos(angle)) < 1e-12);
    }
  }
  assert.equal(sinusoidalPositionEncoding(3, 5).shape[1], 5); // odd width: last column is a sin
  assert.equal(sinusoidalPositionEncoding(3, 4).dtype, "float32");
});

test("applyRotary: half-split pairs rotated by position * base^(-2i/d); relative-position property", () => {
  manualSeed(9);
  const d = 8;
  const x = randn([2, 5, d], f64);
  const y = applyRotary(x);
  const xv = x.dataSync();
  const yv = y.dataSync();
  // (x[j], x[j + d/2]) as the complex number x[j] + i x[j + d/2], multiplied by e^{i p theta_j}
  for (let b = 0; b < 2; b++) {
    for (let p = 0; p < 5; p++) {
      for (let j = 0; j < d / 2; j++) {
        const o = (b * 5 + p) * d;
        const th = p * 10000 ** ((-2 * j) / d);
        const re = xv[o + j] * Math.cos(th) - xv[o + j + d / 2] * Math.sin(th);
        const im = xv[o + j] * Math.sin(th) + xv[o + j + d / 2] * Math.cos(th);
        assert.ok(Math.abs(yv[o + j] - re) < 1e-12 && Math.abs(yv[o + j + d / 2] - im) < 1e-12);
      }
    }
  }
  // <R(m) q, R(n) k> depends only on m - n
  const q = randn([1, d], f64);
  const k = randn([1, d], f64);
  const dot = (m: number, n: number) =>
    applyRotary(q, [m])
      .mul(applyRotary(k, [n]))
      .sum()
      .item();
  assert.ok(Math.abs(dot(3, 1) - dot(10, 8)) < 1e-10);
  assert.ok(Math.abs(dot(0, 0) - q.mul(k).sum().item()) < 1e-12);
  // explicit positions and precomputed tables agree
  const t = rotaryCosSin([4, 5, 6, 7, 8], d, f64);
  close(applyRotary(x, t), Array.from(applyRotary(x, [4, 5, 6, 7, 8]).dataSync()), 1e-12);
  assert.throws(() => applyRotary(randn([2, 3])), /applyRotary: expected x \[\.\.\., P, dim\] with dim even/);
});

test("ModuleDict and ParameterList: PyTorch names, state dicts, lookups", () => {
  const d = new ModuleDict({ cls: new Linear(3, 2), box: new Linear(3, 4, { bias: false }) });
  assert.deepEqual(
    d.namedParameters().map(([n]) => n),
    ["cls.weight", "cls.bias", "box.weight"],
  );
  assert.deepEqual(d.keys(), ["cls", "box"]);
  assert.equal(d.get("box").outFeatures, 4);
  assert.throws(() => d.get("nope"), /no module "nope" \(keys: "cls", "box"\)/);
  d.set("cls", new Linear(3, 5));
  assert.deepEqual(d.keys(), ["cls", "box"]);
  assert.equal(d.size, 2);
  const pl = new ParameterList([ones([2]), randn([3], { requiresGrad: true })]);
  assert.deepEqual(
    pl.namedParameters().map(([n]) => n),
    ["0", "1"],
  );
  assert.ok(pl.at(0).requiresGrad);
  pl.append(ones([4]));
  assert.equal(pl.length, 3);
  assert.deepEqual(
    [...pl].map((p) => p.shape[0]),
    [2, 3, 4],
  );
  assert.deepEqual(Object.keys(pl.stateDict()), ["0", "1", "2"]);
  noGrad(() => pl.at(-1).mul_(3));
  assert.equal(pl.at(2).sum().item(), 12);
});

test("MultiheadAttention initialisation as PyTorch: xavier_uniform projections, zero biases", () => {
  manualSeed(12);
  const m = new MultiheadAttention(16, 4);
  const bound = Math.sqrt(6 / (16 + 48)); // in_proj_weight [48, 16]
  const w = m.in_proj_weight!;
  assert.ok(w.abs().max().item() <= bound);
  assert.ok(w.abs().max().item() > 0.9 * bound, "spread over the whole interval");
  assert.equal(m.in_proj_bias!.abs().sum().item(), 0);
  assert.equal(m.out_proj.bias!.abs().sum().item(), 0);
  const s = new MultiheadAttention(16, 4, { kdim: 8, vdim: 8 });
  assert.ok(s.k_proj_weight!.abs().max().item() <= Math.sqrt(6 / (8 + 16)));
  assert.equal(s.in_proj_weight, null);
});
