/**
 * NAdam, RAdam, Adamax and Adadelta against PyTorch 1.13 (NAdam: against PyTorch 2's fixed rule, see NADAM
 * below): the parameter after each of ten steps on a float64
 * Rosenbrock problem (gradients from our own backward pass), for the defaults and for every option; maximize;
 * state dicts saved mid-run (through safetensors bytes) continue the same trajectory; parameter groups; bad
 * options give clear errors.
 *
 * The literals in TORCH were produced by this script (torch 1.13.0, /usr/bin/python3), output pasted as is:
 *
 *   import torch, json
 *   torch.set_default_dtype(torch.float64)
 *   def rosen(w):  # w: [2, 2], rows are (x, y) pairs
 *       x, y = w[:, 0], w[:, 1]
 *       return ((1 - x) ** 2 + 100 * (y - x * x) ** 2).sum()
 *   W0 = [[-1.2, 1.0], [0.5, -0.3]]
 *   def run(cls, kw, sign=1.0, steps=10):
 *       w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
 *       opt = cls([w], **kw)
 *       out = []
 *       for _ in range(steps):
 *           opt.zero_grad()
 *           (sign * rosen(w)).backward()
 *           opt.step()
 *           out.append(w.detach().flatten().tolist())
 *       return out
 *   O = torch.optim
 *   cases = {
 *     "radam default": run(O.RAdam, dict(lr=5e-4)),
 *     "radam all": run(O.RAdam, dict(lr=5e-4, betas=(0.9, 0.9), eps=1e-6, weight_decay=0.1)),
 *     "adamax default": run(O.Adamax, {}),
 *     "adamax all": run(O.Adamax, dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1)),
 *     "adamax maximize": run(O.Adamax, dict(lr=0.05, maximize=True), sign=-1.0),
 *     "adadelta default": run(O.Adadelta, {}),
 *     "adadelta all": run(O.Adadelta, dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1)),
 *     "adadelta maximize": run(O.Adadelta, dict(lr=2.0, maximize=True), sign=-1.0),
 *   }
 *   print(json.dumps(cases))
 *
 * RAdam's lr is small because its first steps (before the variance is rectified, rho_t <= 5, steps 1-5 with
 * either beta2) are SGD with momentum, unstable on Rosenbrock at larger rates; ten steps cover the switch.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeOptimizerState,
  encodeOptimizerState,
  safetensorsToTensors,
  tensorsToSafetensors,
} from "../../src/io/tensors.ts";
import { tensor } from "../../src/ops/creation.ts";
import { Adadelta } from "../../src/optim/adadelta.ts";
import { Adamax } from "../../src/optim/adamax.ts";
import { NAdam } from "../../src/optim/nadam.ts";
import type { Optimizer } from "../../src/optim/optimizer.ts";
import { RAdam } from "../../src/optim/radam.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, F64, param, values } from "./helpers.ts";

const TORCH: Record<string, number[][]> = {
  "radam default": [
    [-1.0922, 1.044, 0.4455, -0.245],
    [-1.022916789742316, 1.0726789915789474, 0.3991796319605263, -0.19560682894736842],
    [-0.9804398433535576, 1.0898041031345849, 0.3597165812388374, -0.15134208974000643],
    [-0.9570678723271837, 1.098211769727855, 0.326041871201548, -0.11178538436560334],
    [-0.9474432446601121, 1.1001163100624338, 0.2972821716652352, -0.07656259922762478],
    [-0.9474432954977907, 1.1001146983763508, 0.2972720553230814, -0.07655140232808512],
    [-0.9474456630227371, 1.1001101725770324, 0.2972599545246586, -0.07653769007298408],
    [-0.9474506240530838, 1.1001025849754258, 0.29724629414867976, -0.07652188390800309],
    [-0.9474582663633463, 1.1000919572184098, 0.2972313268095131, -0.07650424250667641],
    [-0.9474685853985556, 1.10007838162616, 0.29721521405383916, -0.07648493900347228],
  ],
  "radam all": [
    [-1.0921399999999999, 1.04395, 0.445475, -0.24498499999999998],
    [-1.022809919042911, 1.072573568663158, 0.39913399488773194, -0.19558023851973683],
    [-0.9802929034338486, 1.0896397420648212, 0.35965362692027847, -0.15130690288038123],
    [-0.9568842612542403, 1.0979861678820204, 0.325964135499474, -0.11174424094573118],
    [-0.9472245247342989, 1.099827943514807, 0.29719159301006487, -0.07651783181683378],
    [-0.9472249778406344, 1.0998107056111286, 0.2970825132641609, -0.07639975439570756],
    [-0.9472509076223921, 1.0997621541348286, 0.29694612159081046, -0.07624943433480869],
    [-0.9473057152821406, 1.0996809898432158, 0.2967878175416264, -0.07607241373557315],
    [-0.947390174359729, 1.0995680726133492, 0.29661072507548075, -0.07587211075897747],
    [-0.9475037916612741, 1.0994250991577124, 0.2964168429233228, -0.07565091339609437],
  ],
  "adamax default": [
    [-1.1980000000000928, 1.0019999999997726, 0.49800000000018346, -0.2980000000001818],
    [-1.196015653790875, 1.0039857273536965, 0.4960099849075319, -0.29600565350075275],
    [-1.1940474371083043, 1.0059567108193295, 0.4940302852953189, -0.29401719664528114],
    [-1.1920958118913614, 1.0079124900215517, 0.49206122360132687, -0.29203486206621804],
    [-1.1901612248408184, 1.0098526168544675, 0.4901031132100524, -0.2900588782724435],
    [-1.1882441060593814, 1.011776656819949, 0.4881562575852877, -0.28808946906032956],
    [-1.1863448677838477, 1.0136841902923248, 0.4862209494596719, -0.28612685295281287],
    [-1.1844639032187336, 1.015574813699672, 0.4842974700870592, -0.28417124267058685],
    [-1.182601585479513, 1.0174481406132747, 0.48238608856272575, -0.282222844639085],
    [-1.1807582666522023, 1.019303802737997, 0.4804870612155589, -0.28028185853444126],
  ],
  "adamax all": [
    [-1.150000231780865, 1.0499994311782574, 0.4500004585010683, -0.25000045441739144],
    [-1.1067428354913365, 1.0937900046504476, 0.4025554358856316, -0.19991659660808428],
    [-1.0710644353728644, 1.1300193612085936, 0.35819043535889317, -0.15042528539215144],
    [-1.0436013899734367, 1.1575150025925474, 0.31735211290163723, -0.10228880250638786],
    [-1.0247248933618955, 1.175418998051177, 0.28039470404875355, -0.05634725864990046],
    [-1.0144612668332507, 1.183343019605183, 0.24757247430146792, -0.013505562540147759],
    [-1.0123942663920757, 1.1815328853549498, 0.21903859213868154, 0.025287009324106158],
    [-1.0175539052643126, 1.171020388204746, 0.19485020211744436, 0.059067022223612944],
    [-1.0283131003471415, 1.1537236715728008, 0.17497876271173554, 0.0868994406617196],
    [-1.0423410991366633, 1.1324375626627854, 0.15932390069913324, 0.10793486470423264],
  ],
  "adamax maximize": [
    [-1.1500000000023192, 1.0499999999943181, 0.4500000000045872, -0.2500000000045455],
    [-1.1104513702293093, 1.0900220794861935, 0.4068738221642579, -0.20461969147005224],
    [-1.0796598779605384, 1.1213128319010104, 0.3696174702982624, -0.16351383758974103],
    [-1.056223250767287, 1.1449969728302916, 0.33740022364121786, -0.12637391861010427],
    [-1.03896415017849, 1.1620966929699972, 0.30952889222511615, -0.09292127302116976],
    [-1.0268806299370423, 1.1735459394630545, 0.2854207229251309, -0.0629016991396568],
    [-1.0191092636628147, 1.1802008565168711, 0.2645825761973671, -0.03608118378274309],
    [-1.0148976417575735, 1.1828472948991353, 0.24659471411651906, -0.012242511928906113],
    [-1.0135839242646336, 1.182206082181651, 0.2310980253400205, 0.00881742727016531],
    [-1.0145817859355881, 1.1789365968132424, 0.21778384446636329, 0.02728977878530438],
  ],
  "adadelta default": [
    [-1.1968377223401718, 1.0031622776581266, 0.4968377223411624, -0.2968377223411383],
    [-1.1936348244907617, 1.0063684544709455, 0.49362128065235494, -0.2936110992617385],
    [-1.190433398855774, 1.0095775488605168, 0.49038726934346094, -0.2903528732647157],
    [-1.1872545489088047, 1.0127688659667378, 0.48715394881495555, -0.2870794078099811],
    [-1.1841106290583998, 1.0159301371168958, 0.483932085635332, -0.28380045903207674],
    [-1.181009465652604, 1.0190534472118744, 0.48072862680523226, -0.2805224486403832],
    [-1.1779562224458386, 1.0221334413221252, 0.4775482999809312, -0.27724987535361606],
    [-1.1749543608513413, 1.025166404390073, 0.4743944263701042, -0.27398602563322566],
    [-1.172006188473152, 1.0281497368818662, 0.4712693794625557, -0.27073337156937666],
    [-1.1691131971014705, 1.0310816323412628, 0.46817486452671064, -0.2674938115395039],
  ],
  "adadelta all": [
    [-1.177639320705514, 1.0223606768809403, 0.4776393221053301, -0.27763932207198433],
    [-1.1573306487088908, 1.042836106137921, 0.45648785224710925, -0.2559380020644411],
    [-1.1398848060590216, 1.0605873143383773, 0.4370625613507865, -0.23529605472168136],
    [-1.1253349588440957, 1.075492976429821, 0.41945275677106353, -0.21584740946233652],
    [-1.1133920348628514, 1.0877618296338005, 0.4035790560713303, -0.19761298904745583],
    [-1.1036696872483642, 1.0977278253656837, 0.3892991825318953, -0.18056168575507892],
    [-1.0957857848554404, 1.1057469634334276, 0.37645442513073546, -0.16463854443722864],
    [-1.089401251666616, 1.112150712869166, 0.364889993171955, -0.1497787280086628],
    [-1.084229887484658, 1.1172288065688007, 0.354463314120996, -0.1359146595721417],
    [-1.0800360931060033, 1.121226159111592, 0.34504669387170905, -0.12297969114554422],
  ],
  "adadelta maximize": [
    [-1.1936754446803435, 1.0063245553162532, 0.4936754446823249, -0.2936754446822767],
    [-1.187355688652287, 1.0126575471970516, 0.4872995509029541, -0.2872583450951554],
    [-1.1811581750140472, 1.0188852072056462, 0.4809665180861335, -0.28082804845414944],
    [-1.1751391474130908, 1.0249515831772966, 0.47472188842752155, -0.27442396313722994],
    [-1.169327942178263, 1.0308261071846885, 0.46859063966867975, -0.26806896642215355],
    [-1.16373958590194, 1.0364917945362395, 0.4625870859530419, -0.2617774470985826],
    [-1.158380661627208, 1.0419397821770269, 0.45671932837524465, -0.2555588483372495],
    [-1.1532524594098141, 1.0471664024617913, 0.4509915747863876, -0.24941948482939977],
    [-1.1483528347682699, 1.0521714541596798, 0.4454054752160589, -0.24336357624962912],
    [-1.1436773782580707, 1.056957107897931, 0.4399609467615118, -0.23739388058005323],
  ],
};

/**
 * NAdam: PyTorch 1.13's NAdam counts mu_t twice in the product used for the momentum term
 * (mu_product_next = mu_product * mu * mu_next after mu_product was already multiplied by mu), a bug fixed in
 * PyTorch 2.0 (pytorch/pytorch#92699). chainrule follows the fixed rule (PyTorch 2, and Dozat's paper), so the
 * expected values come from NAdam written out with torch ops by the script below, which first asserts that its
 * unfixed variant reproduces torch 1.13's torch.optim.NAdam on the same runs (to 1e-14):
 *
 *   import torch, json
 *   torch.set_default_dtype(torch.float64)
 *   def rosen(w):
 *       x, y = w[:, 0], w[:, 1]
 *       return ((1 - x) ** 2 + 100 * (y - x * x) ** 2).sum()
 *   W0 = [[-1.2, 1.0], [0.5, -0.3]]
 *   def nadam_run(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3, fixed=True, steps=10):
 *       # NAdam written out with torch ops; fixed=False reproduces torch 1.13 (mu counted twice in mu_product_next)
 *       b1, b2 = betas
 *       w = torch.tensor(W0, requires_grad=True)
 *       m = torch.zeros_like(w); v = torch.zeros_like(w); prod = 1.0; out = []
 *       for t in range(1, steps + 1):
 *           w.grad = None
 *           rosen(w).backward()
 *           with torch.no_grad():
 *               g = w.grad + weight_decay * w
 *               mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
 *               mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
 *               prod = prod * mu
 *               prod_next = prod * mu_next if fixed else prod * mu * mu_next
 *               m = b1 * m + (1 - b1) * g
 *               v = b2 * v + (1 - b2) * g * g
 *               d = (v / (1 - b2 ** t)).sqrt() + eps
 *               w -= lr * (1 - mu) / (1 - prod) * g / d
 *               w -= lr * mu_next / (1 - prod_next) * m / d
 *           out.append(w.detach().flatten().tolist())
 *       return out
 *   def torch_run(kw, steps=10):
 *       w = torch.tensor(W0, requires_grad=True)
 *       opt = torch.optim.NAdam([w], **kw); out = []
 *       for _ in range(steps):
 *           opt.zero_grad(); rosen(w).backward(); opt.step()
 *           out.append(w.detach().flatten().tolist())
 *       return out
 *   ALL = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, momentum_decay=0.01)
 *   for kw in ({}, ALL):  # the script's unfixed variant is torch 1.13's NAdam
 *       a, b = torch.tensor(nadam_run(fixed=False, **kw)), torch.tensor(torch_run(kw))
 *       assert (a - b).abs().max() <= 1e-14 * b.abs().max(), (a - b).abs().max()
 *   print(json.dumps({"nadam default": nadam_run(), "nadam all": nadam_run(**ALL)}))
 */
const NADAM: Record<string, number[][]> = {
  "nadam default": [
    [-1.1978870964433872, 1.0021129035564706, 0.49788709644348306, -0.29788709644348127],
    [-1.1963321854539974, 1.0036688006055423, 0.49632814731509245, -0.29632508733286667],
    [-1.1948860281802156, 1.0051163893956363, 0.4948760365799976, -0.29486850142432636],
    [-1.1934480793223958, 1.0065562112400113, 0.4934301789603661, -0.29341674864610645],
    [-1.1919868086140621, 1.0080198409167662, 0.4919587930408452, -0.29193788727033637],
    [-1.1904927568014694, 1.0095167852801008, 0.4904521418877592, -0.29042200539017154],
    [-1.1889648592502964, 1.0110481517358374, 0.4889088901626433, -0.2888676030714899],
    [-1.1874053700807174, 1.01261172299677, 0.48733103387855625, -0.28727652590307257],
    [-1.1858177662111047, 1.0142040534894625, 0.4857218034246008, -0.28565186683888594],
    [-1.1842058498007866, 1.0158213676038934, 0.4840847637964158, -0.2839970644002129],
  ],
  "nadam all": [
    [-1.1890466194753788, 1.010953380450785, 0.4890466195250466, -0.289046619524152],
    [-1.1807127508554922, 1.0193134889323896, 0.4805943008683721, -0.2805104421786583],
    [-1.1728495858966517, 1.0272155192844978, 0.47253849326416414, -0.27232437620440747],
    [-1.1650777580497675, 1.0350381195042433, 0.4644887935195619, -0.26409559279257044],
    [-1.1573415806326501, 1.0428366656200931, 0.4563726704158486, -0.2557461651712677],
    [-1.1496741686411796, 1.050577032070056, 0.44820554948793234, -0.24728660713558373],
    [-1.1421322264440468, 1.0582006529709154, 0.4400267101213668, -0.23875229035748666],
    [-1.1347744864642704, 1.065646105888122, 0.43187812902845507, -0.2301822748975678],
    [-1.127654529149314, 1.0728563551153363, 0.4237975788909674, -0.22161229439983704],
    [-1.1208187280677555, 1.079780886050486, 0.41581686871610307, -0.2130728834201785],
  ],
};

const W0 = [
  [-1.2, 1.0],
  [0.5, -0.3],
];

/** Sum of the 2-D Rosenbrock function over the rows (x, y) of w. */
function rosen(w: Tensor): Tensor {
  const x = w.narrow(1, 0, 1);
  const y = w.narrow(1, 1, 1);
  return x.neg().add(1).square().add(y.sub(x.square()).square().mul(100)).sum();
}

type Opt = Optimizer<{ lr: number }>;

/** One step on sign * rosen(w), gradient by backward. */
function rosenStep(opt: Opt, w: Tensor, sign = 1): void {
  opt.zeroGrad();
  rosen(w).mul(sign).backward();
  opt.step();
}

/** The flattened parameter after each of `steps` steps. */
function trajectory(make: (w: Tensor) => Opt, sign = 1, steps = 10): number[][] {
  const w = param(W0);
  const opt = make(w);
  const out: number[][] = [];
  for (let k = 0; k < steps; k++) {
    rosenStep(opt, w, sign);
    out.push(values(w));
  }
  return out;
}

function assertTrajectory(got: number[][], want: number[][], what: string, tol = 1e-12): void {
  assert.equal(got.length, want.length);
  got.forEach((row, k) => {
    assertClose(row, want[k], tol, `${what} step ${k + 1}`);
  });
}

const cases: Array<[string, (w: Tensor) => Opt, number]> = [
  ["nadam default", (w) => new NAdam([w]), 1],
  [
    "nadam all",
    (w) => new NAdam([w], { lr: 0.01, betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1, momentumDecay: 0.01 }),
    1,
  ],
  ["radam default", (w) => new RAdam([w], { lr: 5e-4 }), 1],
  ["radam all", (w) => new RAdam([w], { lr: 5e-4, betas: [0.9, 0.9], eps: 1e-6, weightDecay: 0.1 }), 1],
  ["adamax default", (w) => new Adamax([w]), 1],
  ["adamax all", (w) => new Adamax([w], { lr: 0.05, betas: [0.8, 0.9], eps: 1e-3, weightDecay: 0.1 }), 1],
  ["adamax maximize", (w) => new Adamax([w], { lr: 0.05, maximize: true }), -1],
  ["adadelta default", (w) => new Adadelta([w]), 1],
  ["adadelta all", (w) => new Adadelta([w], { lr: 0.5, rho: 0.95, eps: 1e-4, weightDecay: 0.1 }), 1],
  ["adadelta maximize", (w) => new Adadelta([w], { lr: 2, maximize: true }), -1],
];

for (const [name, make, sign] of cases) {
  test(`${name}: ten steps on Rosenbrock match PyTorch 1.13`, () => {
    assertTrajectory(trajectory(make, sign), (TORCH[name] ?? NADAM[name])!, name);
  });
}

test("defaults are PyTorch's", () => {
  const w = param([1]);
  assert.deepEqual(
    { ...new NAdam([w]).defaults },
    { lr: 2e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, momentumDecay: 4e-3, maximize: false },
  );
  assert.deepEqual(
    { ...new RAdam([w]).defaults },
    { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, maximize: false },
  );
  assert.deepEqual(
    { ...new Adamax([w]).defaults },
    { lr: 2e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, maximize: false },
  );
  assert.deepEqual(
    { ...new Adadelta([w]).defaults },
    { lr: 1, rho: 0.9, eps: 1e-6, weightDecay: 0, maximize: false },
  );
});

test("NAdam and RAdam maximize (PyTorch 2's option): maximizing -f follows the trajectory of minimizing f", () => {
  const nadam = { lr: 0.01, betas: [0.8, 0.95] as [number, number], weightDecay: 0.1 };
  assertTrajectory(
    trajectory((w) => new NAdam([w], { ...nadam, maximize: true }), -1),
    trajectory((w) => new NAdam([w], nadam)),
    "nadam maximize",
    0,
  );
  assertTrajectory(
    trajectory((w) => new RAdam([w], { lr: 5e-4, maximize: true }), -1),
    TORCH["radam default"],
    "radam maximize",
  );
});

test("a float32 parameter stays float32 and follows the float64 trajectory closely", () => {
  for (const [name, make, sign] of cases) {
    const w = tensor(W0, { requiresGrad: true });
    const opt = make(w);
    for (let k = 0; k < 3; k++) rosenStep(opt, w, sign);
    assert.equal(w.dtype, "float32");
    assertClose(values(w), (TORCH[name] ?? NADAM[name])![2], 1e-4, `${name} float32`);
  }
});

const groupMakers: Array<[string, (a: Tensor, b: Tensor) => Opt]> = [
  ["NAdam", (a, b) => new NAdam([{ params: [a] }, { params: [b], betas: [0.5, 0.6] }], { lr: 0.01 })],
  ["RAdam", (a, b) => new RAdam([{ params: [a] }, { params: [b], weightDecay: 0.1 }], { lr: 1e-3 })],
  [
    "Adamax",
    (a, b) =>
      new Adamax([
        { params: [a], lr: 0.05 },
        { params: [b], maximize: true },
      ]),
  ],
  ["Adadelta", (a, b) => new Adadelta([{ params: [a] }, { params: [b], rho: 0.5, lr: 0.1 }])],
];

/** Gradients for the second parameter: none at step 0, so its state starts later than the first's. */
function stepBoth(opt: Opt, a: Tensor, b: Tensor, k: number): void {
  opt.zeroGrad();
  rosen(a).backward();
  if (k > 0) b.grad = tensor([0.3 * Math.sin(k), -0.2 * Math.cos(3 * k), 0.05 * k], F64);
  opt.step();
}

for (const [name, make] of groupMakers) {
  test(`${name}: state dict saved after 5 of 10 steps (as safetensors bytes) continues the same trajectory`, () => {
    const a1 = param(W0);
    const b1 = param([1, 2, 3]);
    const o1 = make(a1, b1);
    for (let k = 0; k < 10; k++) stepBoth(o1, a1, b1, k);

    const a2 = param(W0);
    const b2 = param([1, 2, 3]);
    const o2 = make(a2, b2);
    for (let k = 0; k < 5; k++) stepBoth(o2, a2, b2, k);
    const enc = encodeOptimizerState(o2.stateDict());
    const bytes = tensorsToSafetensors(enc.tensors, enc.metadata);

    const b3 = param(values(b2));
    const a4 = param(a2.toArray() as number[][]);
    const o4 = make(a4, b3);
    o4.paramGroups[0].lr = 123; // overwritten by the load
    o4.loadStateDict(decodeOptimizerState(safetensorsToTensors(bytes)));
    assert.deepEqual(
      o4.paramGroups.map((g) => g.lr),
      o1.paramGroups.map((g) => g.lr),
    );
    for (let k = 5; k < 10; k++) stepBoth(o4, a4, b3, k);
    assert.deepEqual(values(a4), values(a1), `${name}: first parameter`);
    assert.deepEqual(values(b3), values(b1), `${name}: second parameter`);
  });
}

test("bad options give clear errors", () => {
  const w = param([1]);
  assert.throws(() => new NAdam([w], { lr: -1 }), /NAdam: invalid lr -1 \(expected lr >= 0\)/);
  assert.throws(() => new NAdam([w], { betas: [1, 0.9] }), /NAdam: invalid betas \[1,0.9\]/);
  assert.throws(() => new NAdam([w], { momentumDecay: -0.1 }), /NAdam: invalid momentumDecay -0.1/);
  assert.throws(() => new RAdam([w], { eps: -1 }), /RAdam: invalid eps -1/);
  assert.throws(() => new RAdam([w], { weightDecay: Number.NaN }), /RAdam: invalid weightDecay NaN/);
  assert.throws(() => new Adamax([w], { betas: [0.9, -0.1] }), /Adamax: invalid betas/);
  assert.throws(
    () => new Adadelta([w], { rho: 1.5 }),
    /Adadelta: invalid rho 1.5 \(expected rho in \[0, 1\]\)/,
  );
  assert.throws(() => new Adadelta([w], { lr: -0.5 }), /Adadelta: invalid lr -0.5/);
  const opt = new Adamax([w]);
  opt.paramGroups[0].eps = -1;
  w.grad = tensor([1], F64);
  assert.throws(() => opt.step(), /Adamax: invalid eps -1/);
});

test("parameters without a gradient are skipped and get no state", () => {
  for (const [name, make] of groupMakers) {
    const a = param(W0);
    const b = param([1, 2, 3]);
    const opt = make(a, b);
    rosen(a).backward();
    opt.step();
    assert.deepEqual(values(b), [1, 2, 3], name);
    assert.equal(opt.state.has(b), false, name);
    assert.equal(opt.state.get(a)!.step, 1, name);
  }
});
