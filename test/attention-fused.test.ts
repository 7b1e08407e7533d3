/**
 * The fused attention primitive (sdpa, src/prims/attention.ts) behind nn.scaledDotProductAttention and
 * MultiheadAttention, on the js reference, the wasm backend and (when built) the native backend:
 * - float64 values and gradients against PyTorch 1.13 (which has no F.scaled_dot_product_attention, so the
 *   reference is softmax(q k^T scale + mask) v composed in torch, by the script below);
 * - against the composed path (_attention, which materialises the scores) on random inputs: odd sizes around
 *   the native tiles (1, 7, 33, 130), L != S, E != Ev, causal, bool and float masks, broadcast batch dims,
 *   float32 and float64, forward and gradients;
 * - fully masked rows: NaN in that row's output (as PyTorch and the composition), the other rows unaffected;
 * - a long sequence (L = S = 2048, E = 64) on native, forward and backward, whose memory growth stays far below
 *   one [L, S] score matrix per head, checked row by row against a float64 loop;
 * - jit and MultiheadAttention's fused path against its composed one.
 * Derivative checks in float64 (JVP, VJP, second order through sdpaBackward, vmap) are op-table rows
 * (test/opinfo.ts), and native-vs-js kernel conformance rows are in test/backend/conformance/rows-attention.ts.
 *
 * PyTorch 1.13 values from:
 * ```python
 * import torch, json, math
 * torch.set_default_dtype(torch.float64)
 * def mk(shape, f):
 *     n = 1
 *     for d in shape: n *= d
 *     return torch.tensor([f(i) for i in range(n)]).reshape(shape)
 * B, L, S, E, Ev = 2, 3, 5, 4, 3
 * q = mk([B, L, E], lambda i: math.sin(0.37 * i + 0.1))
 * k = mk([B, S, E], lambda i: math.cos(0.23 * i - 0.4))
 * v = mk([B, S, Ev], lambda i: 1.5 * math.sin(0.51 * i))
 * fm = torch.tensor([[0.3 * math.cos(i + 2 * j) for j in range(S)] for i in range(L)])
 * keep = torch.tensor([[(i + j) % 3 != 1 for j in range(S)] for i in range(L)])
 * w = mk([B, L, Ev], lambda i: math.cos(0.13 * i))
 * def attn(q, k, v, mask=None, causal=False, scale=None):
 *     scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
 *     s = q @ k.transpose(-2, -1) * scale
 *     if causal:
 *         s = s.masked_fill(~torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), float("-inf"))
 *     if mask is not None:
 *         s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
 *     return torch.softmax(s, -1) @ v
 * out = {}
 * for name, kw in [("plain", {}), ("causal", {"causal": True}), ("float", {"mask": fm}), ("bool", {"mask": keep}), ("scale", {"scale": 0.3, "causal": True})]:
 *     qq, kk, vv = [t.clone().requires_grad_() for t in (q, k, v)]
 *     o = attn(qq, kk, vv, **kw)
 *     (o * w).sum().backward()
 *     out[name] = {"out": o.detach().flatten().tolist(), "dq": qq.grad.flatten().tolist(), "dk": kk.grad.flatten().tolist(), "dv": vv.grad.flatten().tolist()}
 * # fully masked row: torch gives NaN
 * fully = keep.clone(); fully[1, :] = False
 * out["fully"] = attn(q, k, v, mask=fully).flatten().tolist()
 * print(json.dumps(out))
 * ```
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend } from "../src/backend/backend.ts";
import { jsBackend } from "../src/backend/js/index.ts";
import { loadNativeBackend, nativeInfo, setNumThreads } from "../src/backend/native/index.ts";
import { loadWasmBackend } from "../src/backend/wasm/index.ts";
import { grad, jit, makeJaxpr, manualSeed, nn, randn, type Tensor, tensor } from "../src/index.ts";
import { _attention } from "../src/nn/attention.ts";
import { onBackend } from "./backends.ts";

const TORCH = {
  plain: {
    out: [
      0.345085264135213, 0.623410709362202, 0.743071281071594, 0.455682663005198, 0.734596094588357,
      0.826546750774818, -0.392565955139373, -0.271405206315911, -0.0811688511779737, 1.01640200529515,
      1.04738764982915, 0.811801632233616, 0.0508919636707054, -0.0167601921389182, -0.0801466949433622,
      -0.504435906941764, -0.550976306261845, -0.457287183324173,
    ],
    dq: [
      0.402094646304751, 0.431481515845946, 0.438143457785602, 0.421729606228648, 0.245671768021058,
      0.254663767639315, 0.250243337130658, 0.232643288236929, 0.224406759187945, 0.273843640077891,
      0.308857940471634, 0.32760555485771, -0.116826857775034, -0.123343980550151, -0.123364920000724,
      -0.116888573304311, 0.0665182138958668, 0.0779457462687871, 0.0852680936552005, 0.0880996084476924,
      0.192368344435854, 0.217467146923483, 0.23111256151833, 0.232585922304537,
    ],
    dk: [
      -0.00549088732900599, 0.000164174412351116, 0.00579701591717348, 0.0106452585126375, 0.288045127921974,
      0.317782127068533, 0.304508806099715, 0.250021646740687, -0.166900893617124, -0.205079242060144,
      -0.215501077160538, -0.196755852428508, -0.119723325115339, -0.0515737306238953, 0.0235561263641855,
      0.095497772155658, 0.00406997813949509, -0.0612933287968448, -0.118360871220536, -0.159408824980474,
      -0.111907185041104, -0.130339987565695, -0.131131884225791, -0.114175695523405, 0.022440961550175,
      0.0358258329222047, 0.0443618458747937, 0.0468936910990562, 0.277967488087373, 0.313971417842897,
      0.307480789099889, 0.2593740780098, -0.0747537549773001, -0.0925491802163467, -0.0978185080809421,
      -0.0898485597641477, -0.113747509619144, -0.12690808298306, -0.122892242667949, -0.102243513821303,
    ],
    dv: [
      1.0018834730194, 0.962033090212691, 0.905947232475768, 0.667588307418408, 0.63632967534821,
      0.594332208411967, 0.346733050915608, 0.319878870672477, 0.287626346611089, 0.324854590305952,
      0.28985694879445, 0.249967619800077, 0.29476317621022, 0.265028237853423, 0.230820626617446,
      0.117592169236679, 0.0447057071303898, -0.0289352179925433, -0.0571585428813753, -0.131268559421105,
      -0.203163259848232, -0.143872702167915, -0.236358013254397, -0.324854496266474, -0.0345145471145418,
      -0.0935634724100696, -0.151033400656378, 0.148720592942363, 0.0775794949487977, 0.00512914890737041,
    ],
  },
  causal: {
    out: [
      0.0, 0.732265870324361, 1.27816203292404, 0.58779005014497, 0.969784556915337, 1.10495824115009,
      0.46910451162759, 0.13764182359389, -0.228852220499764, 1.4689016740293, 1.43031097447586,
      1.0276904203692, 0.810960839372322, 0.344945318570757, -0.208862574930838, -0.620456895975738,
      -0.889085156537521, -0.931431478419231,
    ],
    dq: [
      0.0, 0.0, 0.0, 0.0, -0.00990073140395095, -0.0472139261757909, -0.0820404951833135, -0.112546220203394,
      0.252749827435391, 0.298166761419636, 0.327880083968379, 0.340324877283467, 0.0, 0.0, 0.0, 0.0,
      0.0766187954855924, 0.0755170818546404, 0.0704380942158747, 0.0616493286777989, 0.219695391433959,
      0.183556056907909, 0.137749336987892, 0.0846877438108543,
    ],
    dk: [
      -0.180307182177771, -0.192439372788176, -0.178525797065609, -0.140449592212586, 0.207835455722579,
      0.0963713715296189, -0.0281361257013338, -0.148835530311143, -0.0275282735448079, 0.0960680012585569,
      0.206661922766943, 0.28928512252373, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0857152043797423,
      -0.124544853714922, -0.146517941366108, -0.148660513000126, -0.10611247843377, -0.079936039401613,
      -0.0429406324333606, -0.000133412308866002, 0.191827682813512, 0.204480893116535, 0.189458573799468,
      0.148793925308992, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ],
    dv: [
      1.68609894160287, 1.62602251828133, 1.53850499329697, 0.552879791145455, 0.504501129381332,
      0.447608399315751, 0.396843865121264, 0.342603175218589, 0.282580641303622, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.366730309710909, 0.182762749591435, -0.00428915354009902, -0.116873523150304, -0.233153560199836,
      -0.345498848205884, -0.219089816545394, -0.288514032397984, -0.353069224110275, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0,
    ],
  },
  float: {
    out: [
      0.23409497519184, 0.606387009769232, 0.824346889375816, 0.314271625000146, 0.657617862260122,
      0.833593129834378, -0.386803687318382, -0.369542430271371, -0.258228565404421, 1.04034466387439,
      1.09146539621097, 0.864796195782639, -0.0206473164944285, -0.00666998186610071, 0.0090049364149561,
      -0.69894309825124, -0.720437830907355, -0.558573221797986,
    ],
    dq: [
      0.400722735053425, 0.431436364712622, 0.4394274447545, 0.424275107288453, 0.26472209477292,
      0.285685366147193, 0.291602386351736, 0.282161522440925, 0.208690887197323, 0.254265518756426,
      0.286448694846158, 0.303545417373281, -0.111939063260257, -0.110792326845635, -0.103810467687836,
      -0.0913612008292397, 0.0699227295522278, 0.0781401589898123, 0.082242164265287, 0.0820127042054315,
      0.179263932461874, 0.200253113242194, 0.210695521256387, 0.210041184008775,
    ],
    dk: [
      0.0518373805852893, 0.0632651111508504, 0.066130205712197, 0.0600448871612168, 0.238114051281457,
      0.25662762557318, 0.240407854638188, 0.191650008382146, -0.162366758514469, -0.183708085771609,
      -0.180185385433151, -0.15227543846417, -0.134862022824804, -0.085014652137365, -0.0236609471048964,
      0.0408951561196993, 0.00727734947252628, -0.0511699988150569, -0.102691727812338, -0.140314613198892,
      -0.108093132900196, -0.127457330573558, -0.129570776483156, -0.114147425639749, -0.000629715988768667,
      0.00882038489466802, 0.0170766880609075, 0.0230217416084682, 0.267262886567009, 0.306393948612549,
      0.304056027072369, 0.260565548659249, -0.0695506163095309, -0.0891163506871027, -0.096620605062875,
      -0.0910477138111358, -0.0889894213685133, -0.098640652246556, -0.0949413335872455, -0.0783921508168314,
    ],
    dv: [
      1.16660926469352, 1.12186026136263, 1.05817850578667, 0.511420762817487, 0.487251111616849,
      0.45485850708139, 0.380202916922041, 0.345410310071389, 0.304788485403956, 0.339282111768151,
      0.304126715384059, 0.263838811902801, 0.238307541668387, 0.214478424446322, 0.187029723741532,
      0.149932469488266, 0.0654564474317177, -0.0201242315457931, -0.0426892861107453, -0.0986264862073463,
      -0.152899244757638, -0.187541776925864, -0.293649838015343, -0.394802202017204, -0.0182212100772734,
      -0.0826478510915593, -0.145679709402335, 0.129286773640828, 0.0705628848761463, 0.0106481618667128,
    ],
  },
  bool: {
    out: [
      -0.109691665229643, 0.315864193964142, 0.661029146117958, 1.10449554768386, 0.882282826964898,
      0.435519435163702, -0.531103173035898, -0.176755438563723, 0.222578496629888, 0.803528224606136,
      0.923518690734214, 0.808463505486825, -0.197327939045515, -0.503759119912793, -0.68197807111518,
      0.249871507844376, 0.184443584249518, 0.0720727424041508,
    ],
    dq: [
      0.498161267964375, 0.602557152550836, 0.675218033053377, 0.712317063620568, 0.327183064896366,
      0.354649448645076, 0.363437435409424, 0.353084186445109, 0.318837924932093, 0.371527496973862,
      0.404649752315727, 0.416460234180283, -0.20726339132034, -0.167390640956732, -0.118701892555621,
      -0.0637614466531611, 0.0497874820822469, 0.0680712964521524, 0.0827699855575721, 0.0931094104528238,
      0.0814372357848521, 0.129254468224603, 0.17026422844432, 0.202306646790902,
    ],
    dk: [
      0.0464941955464779, 0.170517806316252, 0.271462631936312, 0.335666263812568, 0.408354933289651,
      0.317058299475147, 0.182849312214404, 0.0238925283303404, -0.383022478371236, -0.432608435896098,
      -0.423642871080338, -0.357339231062405, -0.0552245640701826, 0.0307805819671548, 0.112619720633475,
      0.179216308435048, -0.0166020863947106, -0.0857482518624564, -0.143288793703853, -0.181435869515551,
      -0.226298977407501, -0.230758646503324, -0.203986215332669, -0.149605206859332, 0.18906909780412,
      0.208154787798049, 0.199067703761764, 0.163037739890139, 0.0732516277098072, 0.0884989897927209,
      0.0917684287747188, 0.0826174414272191, 0.0120380217902325, 0.00832571642090432, 0.00348656439170809,
      -0.00182447777169291, -0.0480597698966588, -0.0742208475083504, -0.0903364815955223,
      -0.0942254966863331,
    ],
    dv: [
      0.80202948519209, 0.787600550066611, 0.759879900637625, 0.767423946960772, 0.71318425769875,
      0.646908719301923, 0.359914561885929, 0.346761226251126, 0.327755874450928, 0.391718050696412,
      0.349417635786871, 0.301220374579935, 0.314736553134388, 0.276163153077893, 0.232929164945936,
      0.237539162399866, 0.138945325653974, 0.0380066180566785, -0.16365486936718, -0.270371066790411,
      -0.372524424617595, 0.0419205015416416, -0.023325300840887, -0.0881774604881558, -0.0578582622050824,
      -0.124957077157489, -0.189947089913606, -0.0271795623540354, -0.0591967238715719, -0.0902148688935792,
    ],
  },
  scale: {
    out: [
      0.0, 0.732265870324361, 1.27816203292404, 0.651441791479048, 0.995505438031256, 1.08620201526746,
      0.507397980050576, 0.281009996250142, -0.016898118408847, 1.4689016740293, 1.43031097447586,
      1.0276904203692, 0.85256237283515, 0.413572880921528, -0.130675452164162, -0.378488131601341,
      -0.663906678220853, -0.780353682411827,
    ],
    dq: [
      0.0, 0.0, 0.0, 0.0, -0.00612370292203049, -0.0292022928293807, -0.0507428794481184, -0.0696109801795028,
      0.150184479760263, 0.176924234106991, 0.194345882663818, 0.201531875807845, 0.0, 0.0, 0.0, 0.0,
      0.0470684337348991, 0.0463916293724102, 0.043271507324021, 0.0378723957128462, 0.191892207488282,
      0.165389512763834, 0.130176213840632, 0.0881068969274812,
    ],
    dk: [
      -0.111762836427596, -0.118184620346755, -0.108610670331099, -0.0843367756018163, 0.128127692682885,
      0.0610746447149643, -0.0142445699010166, -0.0876358488051931, -0.0163648562552896, 0.0571099756317912,
      0.122855240232116, 0.171972624407009, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0997624039928473,
      -0.12672338760539, -0.136532955191828, -0.127863427798099, -0.0383397460113509, -0.0204881647628121,
      0.000136393472047556, 0.0207424914903162, 0.138102150004198, 0.147211552368202, 0.13639656171978,
      0.107120936307783, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    ],
    dv: [
      1.68809698192471, 1.62480316628305, 1.53408882702209, 0.615603922191664, 0.561596414880465,
      0.498111287092955, 0.332121693753212, 0.286727241717738, 0.236493919801304, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.341250469668806, 0.144198274271008, -0.0552874418556754, -0.125207306349577, -0.239117420085415,
      -0.348992137410599, -0.185276193304017, -0.243985697191977, -0.298577646589982, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0,
    ],
  },
  fully: [
    -0.109691665229643,
    0.315864193964142,
    0.661029146117958,
    Number.NaN,
    Number.NaN,
    Number.NaN,
    -0.531103173035898,
    -0.176755438563723,
    0.222578496629888,
    0.803528224606136,
    0.923518690734214,
    0.808463505486825,
    Number.NaN,
    Number.NaN,
    Number.NaN,
    0.249871507844376,
    0.184443584249518,
    0.0720727424041508,
  ],
};

const loaded = loadNativeBackend();
const wasm = loadWasmBackend();
const BACKENDS: Backend[] = [
  jsBackend,
  ...("backend" in loaded ? [loaded.backend] : []),
  ...("backend" in wasm ? [wasm.backend] : []),
];

function close(
  got: Tensor | Float64Array | number[],
  want: readonly number[],
  tol: number,
  what: string,
): void {
  const g =
    got instanceof Float64Array || Array.isArray(got)
      ? Array.from(got)
      : Array.from(got.to("float64").dataSync());
  assert.equal(g.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      assert.ok(Number.isNaN(g[i]), `${what}[${i}]: got ${g[i]}, expected NaN`);
      continue;
    }
    assert.ok(
      Math.abs(g[i] - want[i]) <= tol * (1 + Math.abs(want[i])),
      `${what}[${i}]: got ${g[i]}, expected ${want[i]}`,
    );
  }
}

/** The torch script's inputs. */
function mkf(shape: number[], f: (i: number) => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Float64Array.from({ length: n }, (_, i) => f(i)),
    { shape, dtype: "float64" },
  );
}
const [B, L, S, E, EV] = [2, 3, 5, 4, 3];
const Q = mkf([B, L, E], (i) => Math.sin(0.37 * i + 0.1));
const K = mkf([B, S, E], (i) => Math.cos(0.23 * i - 0.4));
const V = mkf([B, S, EV], (i) => 1.5 * Math.sin(0.51 * i));
const FM = mkf([L, S], (t) => 0.3 * Math.cos(Math.floor(t / S) + 2 * (t % S)));
const KEEP = mkf([L, S], (t) => ((Math.floor(t / S) + (t % S)) % 3 !== 1 ? 1 : 0)).gt(0);
const W = mkf([B, L, EV], (i) => Math.cos(0.13 * i));

const CASES: [keyof typeof TORCH, nn.SDPAOpts][] = [
  ["plain", {}],
  ["causal", { isCausal: true }],
  ["float", { attnMask: FM }],
  ["bool", { attnMask: KEEP }],
  ["scale", { scale: 0.3, isCausal: true }],
];

for (const b of BACKENDS) {
  test(`${b.name}: values and gradients against PyTorch 1.13 (float64)`, () => {
    onBackend(b, () => {
      for (const [name, opts] of CASES) {
        const want = TORCH[name] as { out: number[]; dq: number[]; dk: number[]; dv: number[] };
        close(nn.scaledDotProductAttention(Q, K, V, opts), want.out, 1e-12, `${name} out`);
        const loss = (q: Tensor, k: Tensor, v: Tensor) =>
          nn.scaledDotProductAttention(q, k, v, opts).mul(W).sum();
        const [dq, dk, dv] = grad(loss, { argnums: [0, 1, 2] })(Q, K, V) as Tensor[];
        close(dq, want.dq, 1e-11, `${name} dq`);
        close(dk, want.dk, 1e-11, `${name} dk`);
        close(dv, want.dv, 1e-11, `${name} dv`);
      }
    });
  });

  test(`${b.name}: a fully masked row is NaN (as PyTorch), the other rows are not affected`, () => {
    onBackend(b, () => {
      const keep = KEEP.toArray() as boolean[][];
      keep[1] = keep[1].map(() => false);
      const out = nn.scaledDotProductAttention(Q, K, V, { attnMask: tensor(keep) });
      close(out, TORCH.fully, 1e-12, "fully masked");
      const composed = _attention("ref", Q, K, V, { attnMask: tensor(keep) }, "keep")[0];
      close(out, Array.from(composed.dataSync()), 1e-12, "against the composition");
    });
  });

  test(`${b.name}: fused against the composition, odd sizes, masks, causal, float32 and float64`, () => {
    onBackend(b, () => {
      manualSeed(7);
      const sizes: [number[], number, number, number, number][] = [
        [[1], 1, 1, 1, 1],
        [[2, 2], 7, 33, 5, 3],
        [[3], 33, 7, 8, 8],
        [[1], 130, 130, 16, 9],
        [[2], 33, 130, 7, 1],
      ];
      for (const dtype of ["float64", "float32"] as const) {
        const tol = dtype === "float64" ? 1e-10 : 2e-4;
        for (const [lead, l, s, e, ev] of sizes) {
          const q = randn([...lead, l, e], { dtype });
          const k = randn([...lead, s, e], { dtype });
          const v = randn([...lead, s, ev], { dtype });
          const fm = randn([l, s], { dtype });
          const bm = randn([lead[0], 1, s]).gt(0); // about half the keys dropped
          const bmKeepOne = bm.logicalOr(tensor(Array.from({ length: s }, (_, j) => j === 0)));
          for (const opts of [
            {},
            { isCausal: true },
            { attnMask: fm },
            { attnMask: bmKeepOne },
            { scale: 0.2 },
          ] as nn.SDPAOpts[]) {
            const what = `${dtype} [${lead}] L ${l} S ${s} E ${e} Ev ${ev} ${JSON.stringify(Object.keys(opts))}`;
            const f = nn.scaledDotProductAttention(q, k, v, opts);
            const c = _attention("ref", q, k, v, opts, "keep")[0];
            close(f, Array.from(c.to("float64").dataSync()), tol, `${what} out`);
            const w = randn(f.shape, { dtype });
            const gf = grad(
              (a: Tensor, bb: Tensor, cc: Tensor) =>
                nn.scaledDotProductAttention(a, bb, cc, opts).mul(w).sum(),
              { argnums: [0, 1, 2] },
            )(q, k, v) as Tensor[];
            const gc = grad(
              (a: Tensor, bb: Tensor, cc: Tensor) =>
                _attention("ref", a, bb, cc, opts, "keep")[0].mul(w).sum(),
              { argnums: [0, 1, 2] },
            )(q, k, v) as Tensor[];
            for (const [i, g] of gf.entries()) {
              close(g, Array.from(gc[i].to("float64").dataSync()), tol * 5, `${what} grad ${i}`);
            }
          }
        }
      }
    });
  });

  test(`${b.name}: the native kernel's block edges: L, S around 64, head dims 1 to 128, causal L != S, fully masked rows`, () => {
    onBackend(b, () => {
      manualSeed(17);
      // the native kernels tile 64 queries x 64 keys and pad head dims to the SIMD width (16 or 32 floats)
      const sizes: [number[], number, number, number, number][] = [
        [[2], 65, 65, 1, 1],
        [[1, 2], 127, 129, 7, 7],
        [[2], 64, 64, 64, 64],
        [[2], 129, 200, 80, 80],
        [[2], 200, 70, 128, 128],
        [[2], 70, 150, 128, 40],
      ];
      for (const dtype of ["float64", "float32"] as const) {
        const tol = dtype === "float64" ? 1e-10 : 2e-4;
        for (const [lead, l, s, e, ev] of sizes) {
          const q = randn([...lead, l, e], { dtype });
          const k = randn([...lead, s, e], { dtype });
          const v = randn([...lead, s, ev], { dtype });
          // key padding: batch entry 0 keeps its first s - 5 keys, entry 1 none (every row fully masked, NaN)
          const pad = tensor(
            Array.from({ length: 2 }, (_, bi) => [
              Array.from({ length: s }, (_, j) => bi === 0 && j < s - 5),
            ]),
          );
          const keyPad = lead.length === 1 ? pad : pad.unsqueeze(0);
          // query row 3 fully masked, the other rows keep every other key
          const rows = tensor(
            Array.from({ length: l }, (_, i) =>
              Array.from({ length: s }, (_, j) => i !== 3 && (i + j) % 2 === 0),
            ),
          );
          for (const opts of [
            {},
            { isCausal: true },
            { attnMask: keyPad },
            { attnMask: rows },
          ] as nn.SDPAOpts[]) {
            const what = `${dtype} [${lead}] L ${l} S ${s} E ${e} Ev ${ev} ${JSON.stringify(Object.keys(opts))}`;
            const f = nn.scaledDotProductAttention(q, k, v, opts);
            const c = _attention("ref", q, k, v, opts, "keep")[0];
            close(f, Array.from(c.to("float64").dataSync()), tol, `${what} out`);
            if (opts.attnMask === keyPad) {
              // the contract: a row with no visible key is NaN (as PyTorch); entry 0's rows are finite
              const fo = f.to("float64").dataSync();
              const per = l * ev;
              for (let t = 0; t < fo.length; t++) {
                const entry = Math.floor(t / per) % 2;
                assert.equal(Number.isNaN(fo[t]), entry === 1, `${what} out[${t}]`);
              }
            }
            const w = randn(f.shape, { dtype });
            const lossOf = (fn: typeof nn.scaledDotProductAttention) => (a: Tensor, bb: Tensor, cc: Tensor) =>
              fn(a, bb, cc, opts).mul(w).sum();
            const gf = grad(lossOf(nn.scaledDotProductAttention), { argnums: [0, 1, 2] })(
              q,
              k,
              v,
            ) as Tensor[];
            const gc = grad(
              lossOf((a, bb, cc, o) => _attention("ref", a, bb, cc, o ?? {}, "keep")[0]),
              {
                argnums: [0, 1, 2],
              },
            )(q, k, v) as Tensor[];
            // A fully masked row has p = exp(-Inf - (-Inf)) = NaN in the fused backward (the kernels' contract,
            // src/backend/js/attention.ts), so its NaN reaches dq of that row and dk, dv of its batch entry; the
            // composition (and PyTorch 1.13's masked_fill + softmax) give dq = 0 there and a finite dk, dv NaN.
            // So: gradients compared where no fully masked row is involved, dv NaN where one is.
            const widths = [e, e, ev];
            const rowsOf = [l, s, s];
            for (const [i, g] of gf.entries()) {
              const got = Array.from(g.to("float64").dataSync());
              const want = Array.from(gc[i].to("float64").dataSync());
              const entrySize = rowsOf[i] * widths[i];
              const involved = (t: number) =>
                opts.attnMask === keyPad
                  ? Math.floor(t / entrySize) % 2 === 1
                  : opts.attnMask === rows
                    ? i > 0 || Math.floor(t / widths[i]) % l === 3
                    : false;
              const keep = got.map((_, t) => !involved(t));
              close(
                got.filter((_, t) => keep[t]),
                want.filter((_, t) => keep[t]),
                tol * 5,
                `${what} grad ${i}`,
              );
              if (i === 2) for (let t = 0; t < got.length; t++) if (!keep[t]) assert.ok(Number.isNaN(got[t]));
            }
          }
        }
      }
    });
  });

  test(`${b.name}: MultiheadAttention's fused path (needWeights false) equals its composed path`, () => {
    onBackend(b, () => {
      manualSeed(3);
      const mha = new nn.MultiheadAttention(12, 3, { batchFirst: true, dtype: "float64" });
      const x = randn([2, 7, 12], { dtype: "float64" });
      const mem = randn([2, 9, 12], { dtype: "float64" });
      const pad = tensor([
        [false, false, false, false, false, false, false, true, true],
        [false, false, false, false, false, false, false, false, true],
      ]);
      for (const [kx, opts] of [
        [x, { isCausal: true }],
        [mem, { keyPaddingMask: pad }],
        [mem, { keyPaddingMask: pad, attnMask: randn([7, 9], { dtype: "float64" }) }],
      ] as const) {
        const fused = mha.call(x, kx, kx, { ...opts, needWeights: false })[0];
        const composed = mha.call(x, kx, kx, { ...opts, needWeights: true })[0];
        close(fused, Array.from(composed.dataSync()), 1e-12, "mha");
      }
    });
  });
}

test("jit: the fused primitive traces as one sdpa equation and runs", () => {
  const q = randn([2, 5, 4], { dtype: "float64" });
  const f = (a: Tensor) => nn.scaledDotProductAttention(a, a, a, { isCausal: true });
  const text = makeJaxpr(f)(q).toString();
  assert.match(text, /sdpa/);
  assert.doesNotMatch(text, /softmax/);
  close(jit(f)(q), Array.from(f(q).dataSync()), 1e-14, "jit");
});

test("native: a long sequence (L = S = 2048, E = 64) runs without an [L, S] matrix", {
  skip: !("backend" in loaded),
}, () => {
  if (!("backend" in loaded)) return;
  onBackend(loaded.backend, () => {
    manualSeed(11);
    const [h, n, e] = [4, 2048, 64];
    const q = randn([h, n, e]);
    const k = randn([h, n, e]);
    const v = randn([h, n, e]);
    const w = randn([h, n, e]);
    const before = process.memoryUsage().rss;
    const out = nn.scaledDotProductAttention(q, k, v, { isCausal: true });
    const dq = grad((a: Tensor) => nn.scaledDotProductAttention(a, k, v, { isCausal: true }).mul(w).sum())(q);
    const grown = process.memoryUsage().rss - before;
    // one [h, L, S] float32 score matrix is 64 MiB; the fused kernels need O(L E) (the outputs: ~2 MiB each)
    assert.ok(grown < 40 * 2 ** 20, `rss grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(dq.shape.join(), [h, n, e].join());
    // rows checked against float64 loops
    const [qa, ka, va] = [q, k, v].map((t) => t.dataSync());
    const o = out.dataSync();
    for (const [hh, i] of [
      [0, 0],
      [1, 1000],
      [3, 2047],
    ]) {
      const sc: number[] = [];
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let c = 0; c < e; c++) d += qa[(hh * n + i) * e + c] * ka[(hh * n + j) * e + c];
        sc.push(d / Math.sqrt(e));
      }
      const m = Math.max(...sc);
      const p = sc.map((x) => Math.exp(x - m));
      const z = p.reduce((a, b) => a + b, 0);
      for (let c = 0; c < e; c++) {
        let want = 0;
        for (let j = 0; j <= i; j++) want += (p[j] / z) * va[(hh * n + j) * e + c];
        const got = o[(hh * n + i) * e + c];
        assert.ok(
          Math.abs(got - want) <= 1e-4 * (1 + Math.abs(want)),
          `head ${hh} row ${i} col ${c}: ${got} vs ${want}`,
        );
      }
    }
  });
});

for (const nb of BACKENDS.filter((b) => b !== jsBackend))
  test(`${nb.name} kernels: causal attention over NaN or infinite inputs skips the keys j > i, as the js kernels`, () => {
    // the tiled kernels multiply the excluded keys by an exact 0 (0 x Inf = NaN); these inputs take its exact loops
    const same = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) => {
      assert.equal(got.length, want.length, what);
      for (let t = 0; t < want.length; t++) {
        const [g, w] = [got[t], want[t]];
        const ok = Number.isFinite(w) ? Math.abs(g - w) <= tol * (1 + Math.abs(w)) : Object.is(g, w);
        assert.ok(ok, `${what}[${t}]: got ${g}, expected ${w}`);
      }
    };
    for (const dtype of ["float32", "float64"] as const) {
      const view = (shape: number[], f: (i: number) => number) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = dtype === "float32" ? new Float32Array(n) : new Float64Array(n);
        for (let i = 0; i < n; i++) data[i] = f(i);
        const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
        return { data, shape, strides, offset: 0 };
      };
      const q = view([2, 9, 4], (i) => (i === 5 ? Number.NaN : Math.sin(0.7 * i)));
      const k = view([2, 11, 4], (i) => (i === 30 ? Number.NaN : Math.cos(0.3 * i)));
      const v = view([2, 11, 3], (i) => Math.sin(0.45 * i + 1));
      const vInf = view([2, 11, 3], (i) => (i === 22 ? Number.POSITIVE_INFINITY : Math.sin(0.45 * i + 1)));
      const dout = view([2, 9, 4], (i) => Math.cos(0.21 * i));
      const q0 = view([2, 9, 4], (i) => Math.sin(0.7 * i));
      const k0 = view([2, 11, 4], (i) => Math.cos(0.3 * i));
      for (const [name, qq, kk, vv, dd] of [
        ["NaN in q and k", q, k, v, dout],
        ["Infinity in v", q0, k0, vInf, dout],
        // the cotangent's output part and its lse column (index 3 of each row)
        ["NaN in dout", q0, k0, v, view([2, 9, 4], (i) => (i === 5 ? Number.NaN : Math.cos(0.21 * i)))],
        [
          "-Infinity in dout's lse column",
          q0,
          k0,
          v,
          view([2, 9, 4], (i) => (i === 27 ? Number.NEGATIVE_INFINITY : Math.cos(0.21 * i))),
        ],
      ] as const) {
        const want = jsBackend.alloc(dtype, 2 * 9 * 4);
        const got = nb.alloc(dtype, 2 * 9 * 4);
        jsBackend.attention(qq, kk, vv, null, true, 0.5, want);
        nb.attention(qq, kk, vv, null, true, 0.5, got);
        same(got, want, 1e-5, `${dtype} ${name} forward`);
        const o = { data: want, shape: [2, 9, 4], strides: [36, 4, 1], offset: 0 };
        const per = 9 * 4 + 11 * 4 + 11 * 3;
        const gw = jsBackend.alloc(dtype, 2 * per);
        const gg = nb.alloc(dtype, 2 * per);
        jsBackend.attentionBackward(qq, kk, vv, null, o, dd, true, 0.5, gw);
        nb.attentionBackward(qq, kk, vv, null, o, dd, true, 0.5, gg);
        same(gg, gw, 1e-4, `${dtype} ${name} backward`);
        // and the contract holds something finite to compare: rows before the bad key are numbers
        assert.ok(
          Array.from(want).some((x) => Number.isFinite(x)) &&
            Array.from(gw).some((x) => Number.isNaN(x) === false),
        );
      }
    }
  });

test("native: one batch entry (the two-pass backward on several threads) gives the bits of one thread", {
  skip: !("backend" in loaded),
}, () => {
  if (!("backend" in loaded)) return;
  onBackend(loaded.backend, () => {
    manualSeed(6);
    const q = randn([1, 300, 40]);
    const k = randn([1, 250, 40]);
    const v = randn([1, 250, 24]);
    const w = randn([1, 300, 24]);
    const run = (causal: boolean) => {
      const opts = { isCausal: causal };
      const out = nn.scaledDotProductAttention(q, k, v, opts);
      const g = grad(
        (a: Tensor, b: Tensor, c: Tensor) => nn.scaledDotProductAttention(a, b, c, opts).mul(w).sum(),
        { argnums: [0, 1, 2] },
      )(q, k, v) as Tensor[];
      return [out, ...g].map((t) => Array.from(t.dataSync()));
    };
    const threads = nativeInfo().threads;
    for (const causal of [false, true]) {
      setNumThreads(1);
      let one: number[][];
      try {
        one = run(causal);
      } finally {
        setNumThreads(threads);
      }
      const all = run(causal);
      for (const [i, a] of one.entries()) assert.deepEqual(a, all[i], `causal ${causal} output ${i}`);
    }
  });
});

test("native: attention and its backward give the same bits on 1 thread and on all", {
  skip: !("backend" in loaded),
}, () => {
  if (!("backend" in loaded)) return;
  onBackend(loaded.backend, () => {
    manualSeed(5);
    const q = randn([3, 2, 100, 24]);
    const k = randn([3, 2, 130, 24]);
    const v = randn([3, 2, 130, 16]);
    const w = randn([3, 2, 100, 16]);
    const run = () => {
      const out = nn.scaledDotProductAttention(q, k, v, { isCausal: true });
      const g = grad(
        (a: Tensor, b: Tensor, c: Tensor) => nn.scaledDotProductAttention(a, b, c).mul(w).sum(),
        {
          argnums: [0, 1, 2],
        },
      )(q, k, v) as Tensor[];
      return [out, ...g].map((t) => Array.from(t.dataSync()));
    };
    const threads = nativeInfo().threads;
    setNumThreads(1);
    let one: number[][];
    try {
      one = run();
    } finally {
      setNumThreads(threads);
    }
    const all = run();
    for (const [i, a] of one.entries()) assert.deepEqual(a, all[i], `output ${i}`);
  });
});
