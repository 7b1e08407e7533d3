/**
 * Conv1d, ConvTranspose2d and ConvTranspose1d (layers and functional forms) against PyTorch 1.13 in float64:
 * outputs and the gradients of sum(y * c) with respect to x, weight and bias. Inputs are sin(0.37 k + a) over
 * the flat index k (built the same way here); the expected values were printed by this script and pasted:
 *
 * import torch, json
 * import torch.nn.functional as F
 * torch.set_default_dtype(torch.float64)
 * def seq(shape, a):  # deterministic inputs: sin(0.37 k + a) for k = 0, 1, ...
 *     n = 1
 *     for s in shape: n *= s
 *     return torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + a).reshape(shape)
 * def fmt(t): return "[" + ", ".join(f"{v:.12g}" for v in t.detach().reshape(-1).tolist()) + "]"
 * def case(name, fn, xs, ws, bs, **kw):
 *     x = seq(xs, 0.1).requires_grad_(); w = seq(ws, 0.7).requires_grad_()
 *     b = seq([bs], 1.3).requires_grad_() if bs else None
 *     y = fn(x, w, b, **kw)
 *     c = seq(list(y.shape), 2.1)
 *     (y * c).sum().backward()
 *     out = f"  {json.dumps(name)}: {{ shape: {list(y.shape)}, y: {fmt(y)}, gx: {fmt(x.grad)}, gw: {fmt(w.grad)}"
 *     if bs: out += f", gb: {fmt(b.grad)}"
 *     print(out + " },")
 * case("conv1d g2 s2 p1 d2", F.conv1d, [2, 4, 7], [4, 2, 3], 4, stride=2, padding=1, dilation=2, groups=2)
 * case("conv1d same k4", F.conv1d, [1, 3, 6], [2, 3, 4], 2, padding="same")
 * case("conv1d same k3 d2", F.conv1d, [1, 2, 5], [3, 2, 3], 0, padding="same", dilation=2)
 * case("conv1d valid", F.conv1d, [1, 2, 6], [2, 2, 3], 2, padding="valid")
 * case("convT2d s23 p10 op12", F.conv_transpose2d, [2, 3, 3, 2], [3, 2, 3, 2], 2, stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
 * case("convT2d g2 s2 p1 d21", F.conv_transpose2d, [1, 4, 3, 2], [4, 1, 2, 3], 2, stride=2, padding=1, dilation=(2, 1), groups=2)
 * case("convT2d op>=s d2", F.conv_transpose2d, [1, 2, 3, 3], [2, 2, 2, 2], 0, stride=1, padding=(0, 2), dilation=2, output_padding=1)
 * case("convT1d s3 p2 op1", F.conv_transpose1d, [2, 3, 4], [3, 2, 4], 2, stride=3, padding=2, output_padding=1)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as cr from "../../src/index.ts";
import { grad, nn, type Tensor } from "../../src/index.ts";
import { close, seq } from "../torch-ref.ts";

const TORCH: Record<string, { shape: number[]; y: number[]; gx: number[]; gw: number[]; gb?: number[] }> = {
  "conv1d g2 s2 p1 d2": {
    shape: [2, 4, 3],
    y: [
      2.01407161203, 2.02504009188, 0.978797870629, 0.997808043345, 1.99851739968, 2.47569823236,
      1.84894425611, 0.984473354987, 0.161248944897, 0.787379089165, 1.91111264953, 1.69590591854,
      0.441647403398, 1.29557242528, 1.76441309647, -0.158378803815, -1.22985478127, -0.615693522293,
      1.66271767639, 2.92529674936, 2.65640851591, -0.500506534016, -1.13964806501, -0.157635561454,
    ],
    gx: [
      0, 1.07487089682, 0, 1.53071096293, 0, 1.19475399608, 0, 0, 1.70692332404, 0, 2.31371483209, 0,
      1.70259532937, 0, 0, 0.39841246001, 0, 0.625135995395, 0, 0.486207628593, 0, 0, -1.0672716709, 0,
      -1.40848111633, 0, -1.121335597, 0, 0, 0.672651333435, 0, 0.86525213265, 0, 0.702373259675, 0, 0,
      -0.91909727827, 0, -1.14485067096, 0, -0.786955086515, 0, 0, -1.76342562093, 0, -2.33235334588, 0,
      -1.68693314961, 0, 0, -0.637582862711, 0, -0.750727081666, 0, -0.502783092946, 0,
    ],
    gw: [
      -0.723798560155, 0.293157578171, 1.02369052513, 1.15057221158, 0.78188106538, -0.463218303976,
      -2.56340128856, -3.11178108751, -1.53047930951, 2.01072398133, 3.31216582178, 2.15198357623,
      0.469798276952, -0.625078687447, -1.66420366169, -1.43785685019, -1.09895652901, 0.457747634047,
      1.27943210254, 1.97420555721, 0.655156050102, -0.735679679425, -1.97489237888, -1.07794216559,
    ],
    gb: [3.46279892498, 1.60922723638, -2.03167607756, -3.41604356873],
  },
  "conv1d same k4": {
    shape: [1, 2, 6],
    y: [
      5.25524310625, 6.61848189763, 6.20196028665, 5.07644552573, 2.99540671864, 1.4893710207, 0.138520131086,
      -1.76773846698, -3.01909239312, -3.72714646379, -2.8919749021, -1.4873667759,
    ],
    gx: [
      2.71312992784, 3.50932700702, 3.43717861255, 1.91658853183, 0.136597184441, -0.835495481685,
      0.0612362595476, -0.993170576026, -2.53797072339, -2.87563815028, -2.82410144375, -1.71650418982,
      -2.70202514558, -3.68943178602, -3.89742246922, -2.43806609674, -0.648728915555, 0.524219035103,
    ],
    gw: [
      -0.974578271816, -0.571077743593, 0.669501637115, 1.45848523955, 1.14290304703, 1.82638947144,
      0.748327049938, -0.229829195579, -0.407310993543, -1.63721806199, -1.57430727218, -1.18059771526,
      -1.63423380726, -2.51950013378, -3.22752229566, -3.26343836582, -1.00249727636, -0.594212965402,
      0.641582632568, 1.42956115856, 2.84635781756, 3.23796572923, 2.45178182047, 1.53494947578,
    ],
    gb: [0.566444173584, -4.19486155637],
  },
  "conv1d same k3 d2": {
    shape: [1, 3, 5],
    y: [
      1.83107275301, 1.97085469415, 2.81071455491, 1.89070300589, 1.54759044249, -1.70340545861,
      -1.3087203702, -1.43590058219, -0.684625416176, -0.0522119642731, 0.228522524069, -0.388474950175,
      -1.07456063895, -1.06291930555, -1.48446071933,
    ],
    gx: [
      0.929127576305, -0.0230949415213, 0.424269050215, 0.788460132546, -0.157246779298, 2.29859581718,
      1.99603025899, 2.32497793619, 2.22860635972, 1.97500349869,
    ],
    gw: [
      -0.317401431354, 0.100734890053, 1.5219833576, 0.0406379721856, 1.5023014139, 0.342930950975,
      -1.08660556334, -2.86812392878, -2.40273155811, -1.94593683171, -1.64702998061, -0.106552042757,
      0.916317222158, 1.48011907286, -0.197644591288, 1.03192445132, -0.594490616136, -0.284201543449,
    ],
  },
  "conv1d valid": {
    shape: [1, 2, 4],
    y: [
      3.27815497259, 3.16833527607, 2.76010934341, 2.10872863952, -0.483815653069, 0.388640479759,
      1.3431758101, 2.25059845891,
    ],
    gx: [
      0.462797044669, 1.06188427246, 1.70720988062, 1.10868320286, 0.840208735029, 0.427603040001,
      1.16807059725, 2.27763462677, 3.10934441094, 2.90134725297, 1.9834265097, 0.95997082097,
    ],
    gw: [
      0.525214880561, 1.06384314987, 1.45848523955, 0.947262339661, 0.384753888998, -0.229829195579,
      -1.99333145246, -2.59498086666, -2.84541179418, -0.41738280394, 0.630321467609, 1.59271468549,
    ],
    gb: [1.71413026715, -3.07143362954],
  },
  "convT2d s23 p10 op12": {
    shape: [2, 2, 6, 7],
    y: [
      1.54402915251, 1.97579294633, 0.963558185417, 2.00651592644, 2.32418434993, 0.963558185417,
      0.963558185417, 2.80646054213, 3.40747949447, 0.963558185417, 3.41073345, 3.70504781644, 0.963558185417,
      0.963558185417, 2.32784326285, 2.48842138515, 0.963558185417, 2.46452101419, 2.44627533974,
      0.963558185417, 0.963558185417, 3.68379266603, 3.63156837777, 0.963558185417, 3.58868090631,
      3.19698627576, 0.963558185417, 0.963558185417, 2.39805048798, 2.20345048324, 0.963558185417,
      2.13742815813, 1.79281202082, 0.963558185417, 0.963558185417, 1.84103687258, 1.35986063805,
      0.963558185417, 1.33596026708, 0.828705638615, 0.963558185417, 0.963558185417, 1.68177670324,
      1.1833296548, 0.99508334981, 1.21979281157, 0.66944546928, 0.99508334981, 0.99508334981, 1.47959529026,
      0.477214818852, 0.99508334981, 0.528751159011, -0.422647051135, 0.99508334981, 0.99508334981,
      0.727395548406, 0.199634843253, 0.99508334981, 0.271228573383, -0.162515559029, 0.99508334981,
      0.99508334981, -0.358977097877, -1.13062576223, 0.99508334981, -1.06343962536, -1.55089971716,
      0.99508334981, 0.99508334981, -0.0869680534058, -0.367990379541, 0.99508334981, -0.298714098902,
      -0.388979565253, 0.99508334981, 0.99508334981, -0.464527070876, -0.363512339114, 0.99508334981,
      -0.291918608983, -0.0206679751896, 0.99508334981, 0.99508334981, 2.01387719452, 2.32898299581,
      0.963558185417, 2.33212713545, 2.48953637983, 0.963558185417, 0.963558185417, 3.41894328538,
      3.7070956359, 0.963558185417, 3.68540621161, 3.62671921882, 0.963558185417, 0.963558185417,
      2.46514768925, 2.44355577391, 0.963558185417, 2.39493514798, 2.19726443738, 0.963558185417,
      0.963558185417, 3.58347977627, 3.18589644931, 0.963558185417, 3.12695924421, 2.44429062125,
      0.963558185417, 0.963558185417, 2.13099244971, 1.78399674722, 0.963558185417, 1.70904300046,
      1.25968654657, 0.963558185417, 0.963558185417, 1.32595853424, 0.818871134136, 0.963558185417,
      0.770250508201, 0.306977757095, 0.963558185417, 0.963558185417, 1.21079494102, 0.660184169934,
      0.99508334981, 0.718463921158, 0.191814163874, 0.99508334981, 0.99508334981, 0.511438045852,
      -0.437764003318, 0.99508334981, -0.373948068321, -1.14120735988, 0.99508334981, 0.99508334981,
      0.263572043288, -0.167837126175, 0.99508334981, -0.0923132109187, -0.370092585306, 0.99508334981,
      0.99508334981, -1.07404220247, -1.55551379068, 0.99508334981, -1.49408989982, -1.62460886391,
      0.99508334981, 0.99508334981, -0.301024441839, -0.387577885949, 0.99508334981, -0.334313563475,
      -0.217926474689, 0.99508334981, 0.99508334981, -0.286994618156, -0.012888111899, 0.99508334981,
      0.062635803357, 0.469400482506, 0.99508334981, 0.99508334981,
    ],
    gx: [
      -0.759380661251, -1.93604142231, -0.147825568323, -1.0777181324, 0.941905555225, -0.15552150955,
      -2.0633711643, 0.329376832915, 1.23457347687, -0.74321392906, 1.84426994099, 1.22471365798,
      1.86961095568, 1.7588148794, -0.516456698696, 1.47761643163, -1.93424488565, -0.503455522126,
      -0.128685562991, -1.79047098807, 0.232878310578, -0.895516349718, 1.10063633541, 0.225271807527,
      -2.40692845185, -0.502318372289, 1.64112891393, -0.125685947714, 1.59226612589, 1.63458251706,
      1.42377242376, 2.06075152897, -1.11591431924, 0.963143710781, -1.95738092908, -1.10478542126,
    ],
    gw: [
      -4.93164416795, -4.93156064051, 4.42037655252, 4.86519951558, -2.68666371185, -3.97614791379,
      4.70799458995, 5.01648292767, -4.01423687301, -4.74329953203, 1.96867485952, 3.44845882192,
      2.91374777059, 3.14574952245, -0.815417501472, -2.02498491551, -1.13835976968, 0.1703749454,
      -2.67433249108, -3.09264092612, 0.219249622367, 1.50065724279, 1.6917537357, 0.431719886976,
      1.40861850394, 1.12802060455, -3.43445154777, -2.41678105652, 4.06305967993, 3.77014679345,
      -1.47444702785, -1.27715673676, 3.74914115875, 2.92884804362, -4.01418198551, -3.97045329819,
    ],
    gb: [-0.984104802855, -0.807898342319],
  },
  "convT2d g2 s2 p1 d21": {
    shape: [1, 2, 5, 3],
    y: [
      0.963558185417, 0.963558185417, 0.963558185417, 0.989789157319, 1.62765955548, 1.78247266119,
      0.963558185417, 0.963558185417, 0.963558185417, 2.46431993247, 4.13197933647, 2.94304614167,
      0.963558185417, 0.963558185417, 0.963558185417, 0.99508334981, 0.99508334981, 0.99508334981,
      2.44254504284, 3.75646705904, 2.49004944362, 0.99508334981, 0.99508334981, 0.99508334981, 2.33521719681,
      3.02730941541, 1.99900412066, 0.99508334981, 0.99508334981, 0.99508334981,
    ],
    gx: [
      -0.292792995902, -1.00550065548, -1.35778225498, -1.45184927968, -1.12149800714, -0.398379294615,
      0.48883951763, 1.01762674772, 1.40119291336, 0.481675778973, 0.341606145611, -0.0854117173875,
      0.392542265811, -0.0344755971879, -1.48432539333, -0.428255842503, 1.06629783623, 1.37643312491,
      0.402449223551, 0.195639748746, 0.142097941275, -0.997627581303, -1.9018110034, -1.5688601651,
    ],
    gw: [
      -0.828763801054, -1.58579288725, -0.780681994302, -0.626938541966, -1.00101638756, -0.388341899077,
      0.518659670858, 0.757816958557, 0.249673011693, -0.0531057183357, -0.394927463581, -0.348696838518,
      -0.27189493177, -0.295394706472, -0.000981488466537, 0.270064794697, 0.752157286462, 0.504559074829,
      -0.391861541787, -0.967672257472, -0.596320331318, -0.720069961471, -1.4598515568, -0.746361500339,
    ],
    gb: [-1.94810273108, -1.41833633448],
  },
  "convT2d op>=s d2": {
    shape: [1, 2, 6, 2],
    y: [
      1.21240256506, 0.872115607753, 2.60153769125, 1.63812814578, 3.03545837018, 1.63554350279,
      3.61592355076, 1.95039743809, 1.28147055707, 0.683699347439, 0, 0, 1.64436828855, 0.679900158756,
      2.73895401476, 1.24248622433, 1.28582162063, 0.378407221257, 0.429339296658, -0.115323415448,
      -0.112553690506, -0.0558955315888, 0, 0,
    ],
    gx: [
      0.34061855562, 0.0432210183337, 0.560291626113, -0.260026281025, -0.528080243085, 0.0995134393861,
      -0.72466102158, -0.823162330342, -0.413316533798, -0.456237759222, -0.199103132365, -0.64185097184,
      0.0849791694214, 0.357559939283, -0.274073565392, 0.581746648751, 0.727196678408, 0.237061550198,
    ],
    gw: [
      0.884124867093, -0.0488856805863, -1.25108400209, -3.25132549801, 1.049611561, 3.15326953138,
      1.3013404753, 1.11254439012, -1.03503788341, -0.412527391175, 1.04244191798, 3.2061433583,
      -0.82046369316, -3.02589907769, -1.37286323938, -1.54266621398,
    ],
  },
  "convT1d s3 p2 op1": {
    shape: [2, 2, 10],
    y: [
      0.182735822871, -0.11941051643, 0.455183769145, 0.278152892309, 0.108573628114, 0.651148271788,
      0.466336352788, 0.452275921574, 0.88939599066, 0.72181645574, 0.66968184149, 0.2147513759,
      0.366703901434, 0.573135734342, 0.187625595737, 0.399565209447, 0.533698257501, 0.269785434633,
      0.513027104057, 0.556707088449, 1.06022582239, 0.842891340073, 0.670022988076, 0.770282351535,
      0.432259035098, 0.469363743426, 0.5064978581, 0.0935355776823, 0.335591398128, 0.304574335801,
      1.39841962383, 1.41791278125, 1.18987423415, 1.2896913902, 1.13902702502, 0.960437946148, 1.14108934036,
      0.840659167624, 0.735690751002, 0.972726064652,
    ],
    gx: [
      1.37494108722, 0.235014449422, -1.47080229046, -1.10277134618, -1.25659890285, -0.382626897339,
      0.785395999141, 0.614772816028, 1.09693299367, 0.517656516661, -0.0741616667006, -0.106557251933,
      -0.487488987234, -1.47753199354, -1.53702702356, -0.601980146344, 0.2411733572, 0.790945904868,
      1.078754535, 0.728678975447, 0.0130733488686, -0.0783492643542, -0.585006800177, -0.831414923966,
    ],
    gw: [
      0.567017762549, 0.283667759977, 0.122139011326, 0.916757904977, -0.121947312778, 0.202710238745,
      -0.129748584248, -0.59217493878, -1.01743866367, -1.2514653707, -0.433388177004, -0.709197394994,
      1.30666644323, 1.28017483567, 0.46180270746, 1.13093990292, -0.751523395404, -0.510612556221,
      -0.200731031392, -1.04536606472, 0.358902450859, 0.029440825152, 0.213493387583, 0.797263255118,
    ],
    gb: [-8.20188686633, 8.73715274487],
  },
};

type Fn = (x: Tensor, w: Tensor, b: Tensor | null) => Tensor;

/** Output and gradients of fn against TORCH[name]. */
function check(name: string, fn: Fn, xs: number[], ws: number[], bs: number): void {
  const want = TORCH[name];
  const x = seq(xs, 0.1);
  const w = seq(ws, 0.7);
  const b = bs > 0 ? seq([bs], 1.3) : null;
  const y = fn(x, w, b);
  assert.deepEqual(y.shape, want.shape, `${name}: shape`);
  close(y, want.y, `${name}: y`);
  const c = seq(want.shape, 2.1);
  const args = b === null ? [x, w] : [x, w, b];
  const gs = grad(
    (...a: Tensor[]) =>
      fn(a[0], a[1], a[2] ?? null)
        .mul(c)
        .sum(),
    {
      argnums: args.map((_, i) => i),
    },
  )(...args) as Tensor[];
  close(gs[0], want.gx, `${name}: grad x`);
  close(gs[1], want.gw, `${name}: grad w`);
  if (b !== null) close(gs[2], want.gb ?? [], `${name}: grad b`);
}

describe("conv1d / nn.Conv1d (torch 1.13)", () => {
  test("groups, stride, padding, dilation and bias", () => {
    check(
      "conv1d g2 s2 p1 d2",
      (x, w, b) => cr.conv1d(x, w, b, { stride: 2, padding: 1, dilation: 2, groups: 2 }),
      [2, 4, 7],
      [4, 2, 3],
      4,
    );
  });
  test('padding "same" (odd total: the extra zero after) and "valid"', () => {
    check("conv1d same k4", (x, w, b) => cr.conv1d(x, w, b, { padding: "same" }), [1, 3, 6], [2, 3, 4], 2);
    check(
      "conv1d same k3 d2",
      (x, w) => cr.conv1d(x, w, null, { padding: "same", dilation: 2 }),
      [1, 2, 5],
      [3, 2, 3],
      0,
    );
    check("conv1d valid", (x, w, b) => cr.nn.conv1d(x, w, b, { padding: "valid" }), [1, 2, 6], [2, 2, 3], 2);
  });
  test("the layer: weight layout, init bounds, unbatched input and a batch of 0", () => {
    const m = new nn.Conv1d(4, 6, 3, { stride: 2, padding: 1, dilation: 2, groups: 2, dtype: "float64" });
    assert.deepEqual(m.weight.shape, [6, 2, 3]);
    assert.deepEqual(m.bias?.shape, [6]);
    // kaiming_uniform(a = sqrt(5)) gives bound 1/sqrt(fanIn), fanIn = 2 * 3; the bias has the same bound
    const bound = 1 / Math.sqrt(6);
    for (const t of [m.weight, m.bias as Tensor]) {
      assert.ok(Array.from(t.dataSync(), Number).every((v) => Math.abs(v) <= bound));
    }
    assert.deepEqual(
      m.namedParameters().map(([n]) => n),
      ["weight", "bias"],
    );
    // the layer is the functional form with its parameters
    m.weight.detach().copy_(seq([6, 2, 3], 0.4));
    const x = seq([2, 4, 7], 0.9);
    const want = cr.conv1d(x, m.weight, m.bias, { stride: 2, padding: 1, dilation: 2, groups: 2 });
    close(m.call(x), Array.from(want.dataSync(), Number), "layer", 0);
    // unbatched [C, L] is the batch of one without its batch dim
    const one = m.call(x.index(1));
    assert.deepEqual(one.shape, [6, 3]);
    close(one, Array.from(want.index(1).dataSync(), Number), "unbatched", 0);
    assert.deepEqual(m.call(cr.zeros([0, 4, 7], { dtype: "float64" })).shape, [0, 6, 3]);
    const same = new nn.Conv1d(3, 5, 4, { padding: "same", bias: false });
    assert.equal(same.bias, null);
    assert.deepEqual(same.call(cr.randn([1, 3, 11])).shape, [1, 5, 11]);
    assert.match(String(m), /Conv1d\(4, 6, kernel=3, stride=2, padding=1, dilation=2, groups=2\)/);
  });
  test("errors name the op and the shapes", () => {
    const w = cr.zeros([4, 2, 3]);
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 4, 5, 1]), w),
      /conv1d: input must be 3-d \[N, C, L\] or 2-d \[C, L\], got \[2, 4, 5, 1\]/,
    );
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 3, 5]), w, null, { groups: 2 }),
      /conv1d: weight \[4, 2, 3\] with groups=2 expects 4 input channels.*input \[2, 3, 5\] has 3/,
    );
    assert.throws(() => cr.conv1d(cr.zeros([2, 2, 5]), cr.zeros([4, 2, 3, 1])), /conv1d: weight must be 3-d/);
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 2, 2]), w),
      /conv1d: kernel size 3 \(dilation 1\) is larger than the padded input length 2/,
    );
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 2, 9]), w, null, { padding: "same", stride: 2 }),
      /conv1d: padding "same" needs stride 1/,
    );
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 2, 9]), w, cr.zeros([3])),
      /conv1d: bias must have shape \[4\], got \[3\]/,
    );
    assert.throws(
      () => cr.conv1d(cr.zeros([2, 2, 9], { dtype: "int32" }), cr.zeros([4, 2, 3], { dtype: "int32" })),
      /conv1d: expected float tensors, got int32, int32/,
    );
    assert.throws(
      () => new nn.Conv1d(3, 4, 3, { groups: 2 }),
      /Conv1d: groups=2 must be a positive integer dividing inChannels=3/,
    );
    assert.throws(
      () => new nn.Conv1d(4, 4, 3).call(cr.zeros([1, 3, 8])),
      /Conv1d: expected input \[N, 4, L\] or \[4, L\], got \[1, 3, 8\]/,
    );
  });
});

describe("convTranspose2d / nn.ConvTranspose2d, convTranspose1d / nn.ConvTranspose1d (torch 1.13)", () => {
  test("stride, padding, output padding, bias", () => {
    check(
      "convT2d s23 p10 op12",
      (x, w, b) => cr.convTranspose2d(x, w, b, { stride: [2, 3], padding: [1, 0], outputPadding: [1, 2] }),
      [2, 3, 3, 2],
      [3, 2, 3, 2],
      2,
    );
  });
  test("groups and dilation", () => {
    check(
      "convT2d g2 s2 p1 d21",
      (x, w, b) => cr.convTranspose2d(x, w, b, { stride: 2, padding: 1, dilation: [2, 1], groups: 2 }),
      [1, 4, 3, 2],
      [4, 1, 2, 3],
      2,
    );
  });
  test("an output padding reaching the stride (below the dilation)", () => {
    check(
      "convT2d op>=s d2",
      (x, w) => cr.nn.convTranspose2d(x, w, null, { padding: [0, 2], dilation: 2, outputPadding: 1 }),
      [1, 2, 3, 3],
      [2, 2, 2, 2],
      0,
    );
  });
  test("1-d", () => {
    check(
      "convT1d s3 p2 op1",
      (x, w, b) => cr.convTranspose1d(x, w, b, { stride: 3, padding: 2, outputPadding: 1 }),
      [2, 3, 4],
      [3, 2, 4],
      2,
    );
  });
  test("is the adjoint of conv2d: <convTranspose2d(y, w), x> = <y, conv2d(x, w)>", () => {
    const x = seq([2, 3, 9, 8], 0.2);
    const w = seq([4, 3, 3, 2], 0.5); // conv2d: [O, C, kh, kw]; as a transposed weight: [in = O, out = C, ...]
    const opts = {
      stride: [2, 3] as [number, number],
      padding: [1, 1] as [number, number],
      dilation: [2, 1] as [number, number],
    };
    const y = cr.conv2d(x, w, null, opts);
    const dy = seq(y.shape.slice(), 1.1);
    // x's size is reached with outputPadding = the rows conv2d's floor dropped
    const t = cr.convTranspose2d(dy, w, null, { ...opts, outputPadding: [0, 2] });
    assert.deepEqual(t.shape, x.shape);
    const lhs = t.mul(x).sum().item();
    const rhs = dy.mul(y).sum().item();
    assert.ok(Math.abs(lhs - rhs) <= 1e-12 * Math.abs(rhs), `${lhs} vs ${rhs}`);
  });
  test("the layers: weight layout [in, out / groups, ...], init, outputSize, unbatched, batch 0", () => {
    const m = new nn.ConvTranspose2d(4, 6, [3, 2], { stride: 2, padding: 1, groups: 2, dtype: "float64" });
    assert.deepEqual(m.weight.shape, [4, 3, 3, 2]);
    // PyTorch's fanIn of a transposed weight is dim 1 times the kernel: 3 * 3 * 2
    const bound = 1 / Math.sqrt(18);
    for (const t of [m.weight, m.bias as Tensor]) {
      assert.ok(Array.from(t.dataSync(), Number).every((v) => Math.abs(v) <= bound));
    }
    const x = seq([1, 4, 5, 4], 0.3);
    assert.deepEqual(m.call(x).shape, [1, 6, 9, 6]);
    // torch: m(x, output_size=[10, 7]).shape == [1, 6, 10, 7]; the sizes allowed are 9..10 and 6..7
    const big = m.call(x, [10, 7]);
    assert.deepEqual(big.shape, [1, 6, 10, 7]);
    const want = cr.convTranspose2d(x, m.weight, m.bias, {
      stride: 2,
      padding: 1,
      groups: 2,
      outputPadding: 1,
    });
    close(big, Array.from(want.dataSync(), Number), "outputSize", 0);
    assert.throws(
      () => m.call(x, [11, 7]),
      /ConvTranspose2d: requested output size \[11, 7\], but valid sizes for input \[1, 4, 5, 4\] range from 9 to 10 in dim 0/,
    );
    assert.deepEqual(m.call(x.index(0)).shape, [6, 9, 6]);
    assert.deepEqual(m.call(cr.zeros([0, 4, 5, 4], { dtype: "float64" })).shape, [0, 6, 9, 6]);
    assert.match(String(m), /ConvTranspose2d\(4, 6, kernel=3x2, stride=2x2, padding=1x1, groups=2\)/);
    const m1 = new nn.ConvTranspose1d(3, 2, 4, { stride: 3, padding: 2, outputPadding: 1, dtype: "float64" });
    assert.deepEqual(m1.weight.shape, [3, 2, 4]);
    assert.deepEqual(m1.call(seq([2, 3, 4], 0)).shape, [2, 2, 10]);
    assert.deepEqual(m1.call(seq([2, 3, 4], 0), [9]).shape, [2, 2, 9]);
  });
  test("errors name the op and the shapes", () => {
    const w = cr.zeros([4, 2, 3, 3]);
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([4, 5]), w),
      /convTranspose2d: input must be 4-d \[N, C, H, W\] or 3-d \[C, H, W\], got \[4, 5\]/,
    );
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([1, 3, 5, 5]), w),
      /convTranspose2d: weight \[4, 2, 3, 3\] expects 4 input channels, input \[1, 3, 5, 5\] has 3/,
    );
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([1, 4, 5, 5]), w, null, { groups: 3 }),
      /convTranspose2d: groups=3 must be a positive integer dividing the input channels 4/,
    );
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([1, 4, 1, 1]), w, null, { padding: 2 }),
      /convTranspose2d: the output size would be \[-1, -1\]/,
    );
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([1, 4, 3, 3]), w, null, { stride: 2, outputPadding: 2 }),
      /convTranspose2d: outputPadding 2 must be smaller than the stride 2 or the dilation 1/,
    );
    assert.throws(
      () => cr.convTranspose2d(cr.zeros([1, 4, 3, 3]), w, cr.zeros([4])),
      /convTranspose2d: bias must have shape \[2\], got \[4\]/,
    );
    assert.throws(
      () => cr.convTranspose1d(cr.zeros([1, 4, 3]), cr.zeros([4, 2])),
      /convTranspose1d: weight must be 3-d \[Cin, Cout\/groups, K\], got \[4, 2\]/,
    );
    assert.throws(
      () => new nn.ConvTranspose2d(4, 2, 3).call(cr.zeros([1, 2, 5, 5])),
      /ConvTranspose2d: expected input \[N, 4, H, W\] or \[4, H, W\], got \[1, 2, 5, 5\]/,
    );
  });
  test("under vmap, jit and makeJaxpr", () => {
    const x = seq([3, 2, 4, 3], 0.1);
    const w = seq([2, 3, 3, 3], 0.2);
    const f = (v: Tensor) => cr.convTranspose2d(v, w, null, { stride: 2, padding: 1 });
    const batched = cr.vmap(f)(x.reshape(3, 1, 2, 4, 3));
    const eager = f(x);
    close(batched.reshape(eager.shape), Array.from(eager.dataSync(), Number), "vmap", 1e-14);
    close(cr.jit(f)(x), Array.from(eager.dataSync(), Number), "jit", 1e-14);
    assert.match(String(cr.makeJaxpr(f)(x)), /conv2dBackInput/);
    const g = (v: Tensor) => cr.conv1d(v, seq([4, 2, 3], 0.3), null, { padding: "same" });
    assert.match(String(cr.makeJaxpr(g)(seq([1, 2, 6], 0))), /conv2d/);
  });
});
