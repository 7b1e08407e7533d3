/**
 * Tests of the recurrent layers (src/nn/rnn.ts): forward outputs and final states against PyTorch 1.13 in
 * float64 with identical weights (RNN tanh/relu, LSTM with and without projections, GRU; 2 layers,
 * bidirectional, batchFirst both ways, given initial states, unbatched input, no bias; the three cells),
 * state-dict names and shapes as PyTorch's, PyTorch's init bounds, gradCheck in float64 for every kind, dropout
 * between layers in training mode only, the scan time loop against a JavaScript loop of the cells, jit and vmap
 * against eager, and a short training run.
 *
 * The PyTorch reference values were made once: `RNN_TORCH_DUMP=/tmp/rnn_cases.json node --import tsx --test
 * test/nn/rnn.test.ts` writes every case (weights drawn by our seeded initialisers, inputs drawn by a seeded
 * Generator) to JSON, and this script (PyTorch 1.13.0, run with /usr/bin/python3) printed the outputs pasted
 * into TORCH below:
 *
 * ```python
 * import json, torch
 * cases = json.load(open("/tmp/rnn_cases.json"))
 * T = lambda d: torch.tensor(d["data"], dtype=torch.float64).reshape(d["shape"])
 * keys = {"numLayers": "num_layers", "batchFirst": "batch_first", "projSize": "proj_size",
 *         "nonlinearity": "nonlinearity", "bias": "bias", "bidirectional": "bidirectional"}
 * out = {}
 * for c in cases:
 *     kw = {keys[k]: v for k, v in c["opts"].items()}
 *     m = getattr(torch.nn, c["kind"])(3, 3, **kw).double()
 *     m.load_state_dict({k: T(v) for k, v in c["stateDict"].items()})
 *     x = T(c["x"])
 *     h0 = T(c["h0"]) if c["h0"] else None
 *     c0 = T(c["c0"]) if c["c0"] else None
 *     with torch.no_grad():
 *         if c["kind"] in ("RNN", "GRU"):
 *             o, h = m(x, h0); r = [o, h]
 *         elif c["kind"] == "LSTM":
 *             o, (h, cc) = m(x, None if h0 is None else (h0, c0)); r = [o, h, cc]
 *         elif c["kind"] == "LSTMCell":
 *             r = list(m(x, (h0, c0)))
 *         else:
 *             r = [m(x, h0)]
 *     out[c["name"]] = [[float("%.15g" % v) for v in t.flatten().tolist()] for t in r]
 * print(json.dumps(out))
 * ```
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";
import {
  Generator,
  grad,
  gradCheck,
  jit,
  makeJaxpr,
  manualSeed,
  randint,
  randn,
  type Tensor,
  tensor,
  vmap,
  zeros,
} from "../../src/index.ts";
import {
  crossEntropy,
  functionalCall,
  GRU,
  GRUCell,
  Linear,
  LSTM,
  LSTMCell,
  Module,
  RNN,
  RNNCell,
} from "../../src/nn/index.ts";
import { setRnnTimeLoop } from "../../src/nn/rnn.ts";
import { Adam, functional, makeTrainStep } from "../../src/optim/index.ts";

const f64 = { dtype: "float64" as const };

type Kind = "RNN" | "LSTM" | "GRU" | "RNNCell" | "LSTMCell" | "GRUCell";
interface Case {
  name: string;
  kind: Kind;
  opts: Record<string, unknown>;
  x: number[];
  h0?: number[];
  c0?: number[];
}

// inputSize = hiddenSize = 3 everywhere; sequences of 4 steps, batches of 2
const CASES: Case[] = [
  { name: "rnn_tanh_h0", kind: "RNN", opts: {}, x: [4, 2, 3], h0: [1, 2, 3] },
  {
    name: "rnn_relu_2l_bi_bf",
    kind: "RNN",
    opts: { nonlinearity: "relu", numLayers: 2, bidirectional: true, batchFirst: true },
    x: [2, 4, 3],
  },
  {
    name: "lstm_2l_bi_h0c0",
    kind: "LSTM",
    opts: { numLayers: 2, bidirectional: true },
    x: [4, 2, 3],
    h0: [4, 2, 3],
    c0: [4, 2, 3],
  },
  { name: "lstm_bf", kind: "LSTM", opts: { batchFirst: true }, x: [2, 4, 3] },
  {
    name: "lstm_proj_2l_bi",
    kind: "LSTM",
    opts: { numLayers: 2, bidirectional: true, projSize: 2 },
    x: [4, 2, 3],
    h0: [4, 2, 2],
    c0: [4, 2, 3],
  },
  { name: "lstm_unbatched", kind: "LSTM", opts: { numLayers: 2 }, x: [4, 3], h0: [2, 3], c0: [2, 3] },
  {
    name: "gru_2l_bi_bf_h0",
    kind: "GRU",
    opts: { numLayers: 2, bidirectional: true, batchFirst: true },
    x: [2, 4, 3],
    h0: [4, 2, 3],
  },
  { name: "gru_nobias", kind: "GRU", opts: { bias: false }, x: [4, 2, 3] },
  { name: "gru_unbatched_bi", kind: "GRU", opts: { bidirectional: true }, x: [4, 3], h0: [2, 3] },
  { name: "rnncell", kind: "RNNCell", opts: {}, x: [2, 3], h0: [2, 3] },
  { name: "rnncell_relu_unbatched", kind: "RNNCell", opts: { nonlinearity: "relu" }, x: [3], h0: [3] },
  { name: "lstmcell", kind: "LSTMCell", opts: {}, x: [2, 3], h0: [2, 3], c0: [2, 3] },
  { name: "grucell", kind: "GRUCell", opts: {}, x: [2, 3], h0: [2, 3] },
];

type AnyRec = Module<[Tensor, never?], unknown>;

/** The module of a case (weights from its seeded generator) and its inputs (from the same stream). */
function build(c: Case, i: number): { m: AnyRec; x: Tensor; h0: Tensor | null; c0: Tensor | null } {
  const generator = new Generator(100 + i);
  const o = { ...c.opts, ...f64, generator };
  const ctor = { RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell }[c.kind] as unknown as new (
    i: number,
    h: number,
    o: object,
  ) => AnyRec;
  const m = new ctor(3, 3, o);
  const x = randn(c.x, { ...f64, generator });
  const h0 = c.h0 ? randn(c.h0, { ...f64, generator }) : null;
  const c0 = c.c0 ? randn(c.c0, { ...f64, generator }) : null;
  return { m, x, h0, c0 };
}

/** Run a case; the results flattened as the python script lists them. */
function run(c: Case, m: AnyRec, x: Tensor, h0: Tensor | null, c0: Tensor | null): Tensor[] {
  const call = m.call.bind(m) as (x: Tensor, s?: unknown) => unknown;
  switch (c.kind) {
    case "RNN":
    case "GRU": {
      const [o, h] = call(x, h0 ?? undefined) as [Tensor, Tensor];
      return [o, h];
    }
    case "LSTM": {
      const [o, [h, cc]] = call(x, h0 === null ? undefined : [h0, c0]) as [Tensor, [Tensor, Tensor]];
      return [o, h, cc];
    }
    case "LSTMCell":
      return call(x, [h0, c0]) as Tensor[];
    default:
      return [call(x, h0 ?? undefined) as Tensor];
  }
}

function close(got: Tensor, want: readonly number[], tol: number, what: string): void {
  const g = Array.from(got.dataSync());
  assert.equal(g.length, want.length, `${what}: ${g.length} values, expected ${want.length}`);
  g.forEach((v, i) => {
    assert.ok(Math.abs(v - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${v} vs ${want[i]}`);
  });
}

/** PyTorch 1.13 outputs of every case (the script above), in its order: output, h (, c). */
const TORCH: Record<string, number[][]> = {
  rnn_tanh_h0: [
    [
      -0.316799713816399, 0.956264675245795, -0.23376526159431, -0.652217231109568, -0.757349066513687,
      0.657758365687878, 0.95740532103484, -0.997395503144692, -0.819904280507155, -0.0461655901496786,
      -0.0947364068692526, -0.276162397646255, 0.84454598146314, -0.63376783062136, -0.577477328818732,
      0.739434973032651, -0.777520652622838, -0.308569891712951, 0.893160105297749, -0.546848457517629,
      -0.777469921309516, 0.0353189256442547, 0.51058770787571, 0.113691568104302,
    ],
    [
      0.893160105297749, -0.546848457517629, -0.777469921309516, 0.0353189256442547, 0.51058770787571,
      0.113691568104302,
    ],
  ],
  rnn_relu_2l_bi_bf: [
    [
      0.0, 0.0, 1.08021922883199, 0.0, 0.0, 0.607881825739925, 0.0, 0.0, 1.73638220756011, 0.0, 0.0,
      0.181028063316925, 0.0, 0.0, 0.783568494744881, 0.2870721599681, 0.0, 0.648692551539255, 0.0, 0.0,
      1.28597458588979, 0.0, 0.0, 0.468046857219767, 0.0, 0.0, 0.163440958689879, 1.01427885664234,
      0.136273140684548, 0.763460160090652, 0.0, 0.0686331327657334, 0.506899981419735, 0.317883007834249,
      0.0, 0.914429879492977, 0.0, 0.0, 1.61450198846223, 0.0, 0.0, 0.760564901409477, 0.0, 0.0,
      0.805442451996399, 0.0, 0.0, 0.482181650622485,
    ],
    [
      0.0, 0.0, 1.04012463197165, 0.0, 0.260217328419239, 0.864250584081609, 1.20024051315474, 0.0, 0.0, 0.0,
      0.0, 0.677003573320134, 0.0, 0.0, 1.28597458588979, 0.0, 0.0, 0.805442451996399, 0.0, 0.0,
      0.607881825739925, 1.01427885664234, 0.136273140684548, 0.763460160090652,
    ],
  ],
  lstm_2l_bi_h0c0: [
    [
      -0.301497604785951, -0.288168363133941, 0.0465137059119178, -0.0460760048259015, -0.147043924405748,
      -0.00536048999982173, -0.011816241368685, 0.0206956330166063, -0.0966471794821575, 0.0421140134050946,
      -0.126481941236739, -0.160107147251783, -0.0789244526182205, -0.15622790348065, -0.000218940625866047,
      -0.0809886118601871, -0.192733329088273, 0.116803428423782, -0.0353568019400024, -0.0580505721588475,
      -0.228052586607164, 0.054550354577074, -0.0955913948049042, -0.0585221277385958, -0.0072096796316909,
      -0.0984376262371241, -0.0139522344089996, -0.14137054899869, -0.228176032602465, 0.353232126568966,
      -0.0634706577396297, -0.0930803364356783, -0.183759809978541, 0.124067633826779, -0.0824017337197064,
      0.0227955610982756, 0.0698297700550586, -0.0797543819782453, -0.0197293227999995, -0.333636998943731,
      -0.259235276491406, 0.581753338715731, -0.0865304068407513, -0.123074568160642, -0.154364111388921,
      0.215555453104765, -0.0239425260829238, 0.14973926767735,
    ],
    [
      -0.0948354730205775, 0.0995264287949414, -0.106038413931319, -0.217161589095221, -0.0129265786457088,
      -0.179906174495612, 0.0137800172712559, 0.213147796811072, -0.00720953711687966, 0.221952516256314,
      0.286826996118943, -0.124923254420505, 0.0698297700550586, -0.0797543819782453, -0.0197293227999995,
      -0.0865304068407513, -0.123074568160642, -0.154364111388921, -0.0460760048259015, -0.147043924405748,
      -0.00536048999982173, 0.0421140134050946, -0.126481941236739, -0.160107147251783,
    ],
    [
      -0.182475092855762, 0.192945926590957, -0.625499643614803, -0.545472800000957, -0.0234664788369748,
      -0.600995302943851, 0.0258735383330929, 0.835032910847652, -0.0219603170994038, 0.600435102597479,
      0.795725053039371, -0.393938831259842, 0.147924531447214, -0.122173975696196, -0.0645558233587976,
      -0.144533608567816, -0.218159343193348, -0.522727524894038, -0.135650456604072, -0.479231632588174,
      -0.00728361081952211, 0.127285806183153, -0.397981174824674, -0.238978455281777,
    ],
  ],
  lstm_bf: [
    [
      -0.168473438907034, -0.0905974313350156, 0.0466701176894858, -0.228231197787555, -0.119725653437492,
      -0.0319649076942008, -0.339632129250829, -0.0501333127546684, 0.127829815182515, -0.19582763220052,
      -0.00193462602386994, -0.0560228842267756, -0.158077511518789, -0.0720935543367372, 0.0248740994824918,
      0.0573275486282069, 0.0834708314703151, 0.133806748480671, 0.0602853885422002, 0.0526181314730077,
      0.130040166283285, -0.0256650517060983, 0.0511506230436702, -0.106664464346507,
    ],
    [
      -0.19582763220052, -0.00193462602386994, -0.0560228842267756, -0.0256650517060983, 0.0511506230436702,
      -0.106664464346507,
    ],
    [
      -0.751515723074706, -0.00879900633307421, -0.174307372634659, -0.072062279878683, 0.200252461584946,
      -0.287206717273144,
    ],
  ],
  lstm_proj_2l_bi: [
    [
      0.0502734488395462, 0.201202781442521, 0.0212910870347862, 0.0280940897530115, -0.01401252332744,
      -0.0921553694825362, 0.0902703096115198, 0.104994392855283, 0.0875054677575323, 0.164520395039952,
      0.0170048131828432, 0.0110830890372646, 0.0662904720133193, 0.0870900227858387, 0.0894280949920129,
      0.122188724177133, 0.0960608275779332, 0.154702665607383, 0.0133795588830935, -0.0265760828804348,
      0.087331878482069, 0.124408189542355, 0.106353387603397, 0.173384978545457, 0.0991636822844261,
      0.147265911417189, 0.0275990519380556, -0.0908707971626954, 0.0933136143711399, 0.135619430679815,
      0.0949402410248973, 0.224311480203537,
    ],
    [
      0.0876275759234144, 0.0405818012824688, 0.326349459308996, 0.230725148223553, -0.0579793204368804,
      0.0489244996970758, 0.000416203550701621, -0.00588420251197803, 0.0991636822844261, 0.147265911417189,
      0.0933136143711399, 0.135619430679815, 0.0212910870347862, 0.0280940897530115, 0.0902703096115198,
      0.104994392855283,
    ],
    [
      0.122248151873099, -0.104565750974554, -0.368032549013774, -0.239396430897286, 0.129483157370238,
      -0.565870614479201, 0.278962765722537, -0.368815657107649, 0.773538369581635, -0.0573194097663872,
      0.0888644904539391, -0.021333919851365, -0.777437972157773, 0.322065793436676, 0.318333533555675,
      -0.741499051486664, 0.235769584668986, 0.208132337240573, 0.440873370452211, -0.0405516115962285,
      0.126493422971378, 0.512672397911302, -0.309073687541556, 0.113656199377198,
    ],
  ],
  lstm_unbatched: [
    [
      0.236715313454856, -0.036805850606276, -0.280469649162001, 0.210641249435687, 0.0797403706176252,
      -0.248873591578402, 0.17544241741312, 0.132394230428376, -0.203276343847559, 0.134562451688415,
      0.161950762307227, -0.243468803622547,
    ],
    [
      -0.264961719790196, -0.198894685671142, 0.0852770804373346, 0.134562451688415, 0.161950762307227,
      -0.243468803622547,
    ],
    [
      -0.381524667062004, -0.688523981571269, 0.16563058347491, 0.370688404600436, 0.314609918263094,
      -0.440437720579865,
    ],
  ],
  gru_2l_bi_bf_h0: [
    [
      -0.289750576915484, -0.456048913188369, -0.332311109003708, 0.82060701921548, 0.417827318127481,
      -0.353943789363347, -0.176561257928483, -0.473378255081252, -0.497784352047764, 0.80022923572323,
      0.491316021237493, -0.261710644643623, 0.0716094605814504, -0.381008592596199, -0.629925835995797,
      0.889267089883448, 0.3978919512581, -0.31386287973551, -0.366043901109934, 0.135584795349211,
      -0.485247521727197, 1.14573301401057, 0.259853578494242, 0.10558013752704, 0.245053104812894,
      0.490875026110172, -1.4751828296255, -0.490530730539871, 0.503993073353511, 0.033423527148793,
      0.0127577130213825, 0.200882438197907, -0.956245013304859, -0.242129406966551, 0.479149959126228,
      0.0151997126904949, 0.0643487604814902, 0.235487682882265, -0.737719029638025, -0.0429505703827888,
      0.287885388939793, -0.328928167884983, 0.0735324008953031, 0.0989347660523439, -0.698936898142728,
      0.353143176441867, -0.244095189976343, -0.465250413984447,
    ],
    [
      0.611769730078882, 8.7482312868814e-5, -0.531022919066487, 0.537406960712591, 0.0442884486607364,
      -0.294428003438187, -0.287734760777653, 0.127228551504439, -0.0146067590446117, 0.438138525256332,
      0.333728528966706, -0.104005447683478, -0.366043901109934, 0.135584795349211, -0.485247521727197,
      0.0735324008953031, 0.0989347660523439, -0.698936898142728, 0.82060701921548, 0.417827318127481,
      -0.353943789363347, -0.490530730539871, 0.503993073353511, 0.033423527148793,
    ],
  ],
  gru_nobias: [
    [
      -0.111083762622546, 0.0770193774380848, -0.300850201214992, 0.0708870756577464, -0.0933664075744085,
      -0.233580809163719, -0.0368135657692825, -0.12801030296519, 0.16431396895753, 0.0798317418588103,
      0.0272075705595859, -0.0936095729771194, -0.115254165307419, 0.0621536255031354, 0.00380295839700914,
      -0.0626159166987869, 0.14464219515598, -0.312049262088043, -0.261140276107486, 0.0990521158505556,
      0.149260601822788, -0.226613060246558, -0.0866839449196408, -0.0632585567874163,
    ],
    [
      -0.261140276107486, 0.0990521158505556, 0.149260601822788, -0.226613060246558, -0.0866839449196408,
      -0.0632585567874163,
    ],
  ],
  gru_unbatched_bi: [
    [
      -0.542179143035171, -0.111786719544332, -0.155341517784528, 0.109060974830248, 0.236310782043747,
      -0.640298104176148, -0.00821245747774152, -0.327497077235907, -0.300784286805248, -0.0584550109336495,
      0.492441386336746, -0.599169884752317, 0.143886745272281, -0.295838001992981, -0.0480521464963196,
      0.220429050948708, 0.893872412442185, -0.457097815005922, 0.257317663956564, -0.29238547934114,
      0.102247206015337, 0.0654494438065055, 1.22668136532148, -0.171489870867621,
    ],
    [
      0.257317663956564, -0.29238547934114, 0.102247206015337, 0.109060974830248, 0.236310782043747,
      -0.640298104176148,
    ],
  ],
  rnncell: [
    [
      -0.11918201812653, 0.756906901620283, -0.237376840011584, 0.124595557605668, -0.866171722011451,
      -0.479006258721515,
    ],
  ],
  rnncell_relu_unbatched: [[0.0, 0.0, 1.77354302457426]],
  lstmcell: [
    [
      0.0707319176212029, 0.0546479382610388, -0.316644110274186, -0.385653538581834, 0.0870261971803844,
      -0.183651271314543,
    ],
    [
      0.14183786791691, 0.142309569719225, -0.630784804083326, -0.544724110738024, 0.517442194163968,
      -0.220535047138499,
    ],
  ],
  grucell: [
    [
      0.305026856344674, -0.172339888553965, -0.453093216112611, 0.508502658207947, -0.819858677713738,
      -0.122740133213719,
    ],
  ],
};

test("dump the cases for the PyTorch script (only with RNN_TORCH_DUMP)", () => {
  const path = process.env.RNN_TORCH_DUMP;
  if (path === undefined) return;
  const json = (t: Tensor | null) => (t === null ? null : { shape: t.shape, data: Array.from(t.dataSync()) });
  const out = CASES.map((c, i) => {
    const { m, x, h0, c0 } = build(c, i);
    const sd = Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, json(v)]));
    return { ...c, stateDict: sd, x: json(x), h0: json(h0), c0: json(c0) };
  });
  writeFileSync(path, JSON.stringify(out));
});

test("forward outputs and final states match PyTorch 1.13 (float64, identical weights)", () => {
  CASES.forEach((c, i) => {
    const { m, x, h0, c0 } = build(c, i);
    const got = run(c, m, x, h0, c0);
    const want = TORCH[c.name];
    assert.equal(got.length, want.length, c.name);
    got.forEach((t, k) => void close(t, want[k], 1e-12, `${c.name} result ${k}`));
  });
});

test("shapes as PyTorch's: batchFirst, bidirectional, projections, unbatched input", () => {
  const lstm = new LSTM(5, 6, { numLayers: 3, bidirectional: true, batchFirst: true, projSize: 4 });
  const [o, [h, c]] = lstm.call(zeros([2, 7, 5]));
  assert.deepEqual(
    [o.shape, h.shape, c.shape],
    [
      [2, 7, 8],
      [6, 2, 4],
      [6, 2, 6],
    ],
  );
  const [o1, [h1, c1]] = lstm.call(zeros([7, 5]));
  assert.deepEqual(
    [o1.shape, h1.shape, c1.shape],
    [
      [7, 8],
      [6, 4],
      [6, 6],
    ],
  );
  const [o2, h2] = new GRU(5, 6).call(zeros([7, 2, 5]));
  assert.deepEqual(
    [o2.shape, h2.shape],
    [
      [7, 2, 6],
      [1, 2, 6],
    ],
  );
  assert.deepEqual(new GRUCell(5, 6).call(zeros([5])).shape, [6]);
  assert.throws(() => new GRU(5, 6).call(zeros([7, 2, 4])), /GRU: input has 4 features/);
  assert.throws(
    () => new RNN(5, 6).call(zeros([7, 2, 5]), zeros([1, 3, 6])),
    /RNN: expected h0 of shape \[1, 2, 6\]/,
  );
  assert.throws(() => new LSTM(5, 6, { projSize: 6 }), /projSize must be smaller than hiddenSize/);
  assert.throws(
    () => new LSTM(5, 6, f64).call(zeros([7, 2, 5])),
    /LSTM: input is float32 but the weights are float64/,
  );
  assert.throws(
    () => new GRUCell(5, 6).call(zeros([2, 5], f64)),
    /GRUCell: input is float64 but the weights are float32/,
  );
  assert.throws(() => new RNN(5, 6, { nonlinearity: "gelu" as "relu" }), /nonlinearity/);
});

test("state dict keys, order and shapes are PyTorch's; PyTorch-named weights load; init bound 1/sqrt(hidden)", () => {
  // torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2).state_dict() (PyTorch 1.13)
  const lstm = new LSTM(3, 5, { numLayers: 2, bidirectional: true, projSize: 2 });
  const shapes = Object.entries(lstm.stateDict()).map(([k, v]) => `${k}:${v.shape.join("x")}`);
  const expected: string[] = [];
  for (const l of [0, 1]) {
    for (const s of ["", "_reverse"]) {
      const inSize = l === 0 ? 3 : 4;
      expected.push(
        `weight_ih_l${l}${s}:20x${inSize}`,
        `weight_hh_l${l}${s}:20x2`,
        `bias_ih_l${l}${s}:20`,
        `bias_hh_l${l}${s}:20`,
        `weight_hr_l${l}${s}:2x5`,
      );
    }
  }
  assert.deepEqual(shapes, expected);
  assert.deepEqual(Object.keys(new GRUCell(2, 3).stateDict()), [
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
  ]);
  assert.deepEqual(Object.keys(new RNN(2, 3, { bias: false }).stateDict()), ["weight_ih_l0", "weight_hh_l0"]);
  // every weight U(-1/sqrt(5), 1/sqrt(5)), spread over the range
  for (const p of lstm.parameters()) {
    const v = Array.from(p.dataSync());
    assert.ok(v.every((e) => Math.abs(e) <= 1 / Math.sqrt(5)));
  }
  const all = lstm.parameters().flatMap((p) => Array.from(p.dataSync()));
  assert.ok(Math.max(...all) > 0.4 && Math.min(...all) < -0.4);
  // a state dict with PyTorch's names loads into a fresh module and reproduces the PyTorch outputs
  const i = CASES.findIndex((c) => c.name === "gru_2l_bi_bf_h0");
  const { m, x, h0 } = build(CASES[i], i);
  const fresh = new GRU(3, 3, { numLayers: 2, bidirectional: true, batchFirst: true, ...f64 });
  fresh.loadStateDict(m.stateDict());
  const [o, h] = fresh.call(x, h0!);
  close(o, TORCH.gru_2l_bi_bf_h0[0], 1e-12, "loaded output");
  close(h, TORCH.gru_2l_bi_bf_h0[1], 1e-12, "loaded hN");
});

test("the scan time loop equals a JavaScript loop of the cells, forward and gradients", () => {
  manualSeed(5);
  const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, ...f64 });
  const x = randn([6, 2, 3], f64);
  const loss = () => {
    lstm.zeroGrad();
    const [o, [h, c]] = lstm.call(x);
    const l = o.square().sum().add(h.sum()).add(c.tanh().sum());
    l.backward();
    return [l, ...lstm.parameters().map((p) => p.grad!)];
  };
  const a = loss();
  setRnnTimeLoop("unrolled");
  let b: Tensor[];
  try {
    b = loss();
  } finally {
    setRnnTimeLoop("scan");
  }
  a.forEach((t, k) => void close(t, Array.from(b[k].dataSync()), 1e-12, `result ${k}`));
});

test("LSTM: lstmSequence (one dW_hh GEMM over time) equals scan's generic reverse mode and the JavaScript loop", () => {
  manualSeed(6);
  const cases: [string, LSTM, number[], boolean][] = [
    [
      "2 layers, bidirectional",
      new LSTM(3, 5, { numLayers: 2, bidirectional: true, ...f64 }),
      [7, 2, 3],
      true,
    ],
    ["batchFirst", new LSTM(4, 3, { batchFirst: true, ...f64 }), [3, 5, 4], true],
    ["unbatched, one step", new LSTM(2, 3, f64), [1, 2], false],
  ];
  for (const [name, lstm, shape, withState] of cases) {
    const dirs = lstm.bidirectional ? 2 : 1;
    const batched = shape.length === 3;
    const B = batched ? (lstm.batchFirst ? shape[0] : shape[1]) : 0;
    const sShape = batched ? [lstm.numLayers * dirs, B, 5] : [lstm.numLayers * dirs, 3];
    sShape[sShape.length - 1] = lstm.hiddenSize;
    const x = randn(shape, f64).requiresGrad_();
    const h0 = randn(sShape, f64).requiresGrad_();
    const c0 = randn(sShape, f64).requiresGrad_();
    const w = randn(
      batched ? [...shape.slice(0, 2), lstm.hiddenSize * dirs] : [shape[0], lstm.hiddenSize * dirs],
      f64,
    );
    const run = (mode: "scan" | "plainScan" | "unrolled") => {
      setRnnTimeLoop(mode);
      try {
        lstm.zeroGrad();
        for (const t of [x, h0, c0]) t.grad = null;
        const [o, [h, c]] = withState ? lstm.call(x, [h0, c0]) : lstm.call(x);
        const l = o.mul(w).sum().add(h.square().sum()).add(c.tanh().sum());
        l.backward();
        const ins = withState ? [x, h0, c0] : [x];
        return [o, h, c, ...ins.map((t) => t.grad!), ...lstm.parameters().map((p) => p.grad!)];
      } finally {
        setRnnTimeLoop("scan");
      }
    };
    const a = run("scan");
    for (const mode of ["plainScan", "unrolled"] as const) {
      const b = run(mode);
      assert.equal(a.length, b.length);
      a.forEach((t, k) => void close(t, Array.from(b[k].dataSync()), 1e-12, `${name}: ${mode} result ${k}`));
    }
  }
});

test("LSTM: second-order gradients through lstmSequence equal the generic scan's", () => {
  manualSeed(7);
  const lstm = new LSTM(2, 3, { bidirectional: true, ...f64 });
  const x = randn([4, 2, 2], f64);
  const names = lstm.namedParameters().map(([n]) => n);
  // the squared norm of the input gradient, differentiated with respect to the weights
  const gg = grad((ps: Tensor[]) => {
    const gx = grad((xi: Tensor) => {
      const [o] = functionalCall(lstm, Object.fromEntries(names.map((n, i) => [n, ps[i]])), xi) as [
        Tensor,
        unknown,
      ];
      return o.tanh().sum();
    })(x) as Tensor;
    return gx.square().sum();
  });
  const a = gg(lstm.parameters()) as Tensor[];
  setRnnTimeLoop("plainScan");
  let b: Tensor[];
  try {
    b = gg(lstm.parameters()) as Tensor[];
  } finally {
    setRnnTimeLoop("scan");
  }
  a.forEach((t, k) => void close(t, Array.from(b[k].dataSync()), 1e-12, `second order ${names[k]}`));
});

test("LSTM: eager backward with createGraph, differentiated again, equals grad of grad", () => {
  manualSeed(8);
  const lstm = new LSTM(2, 3, { ...f64 });
  const x = randn([4, 2], f64);
  // functional: d/dx |d/dx sum(tanh(out))|^2
  const outOf = (xi: Tensor) => (lstm.call(xi) as [Tensor, unknown])[0].tanh().sum();
  const want = grad((xi: Tensor) => (grad(outOf)(xi) as Tensor).square().sum())(x) as Tensor;
  const xe = x.clone().requiresGrad_();
  outOf(xe).backward(undefined, { createGraph: true });
  const gx = xe.grad!;
  xe.grad = null;
  for (const p of lstm.parameters()) p.grad = null;
  gx.square().sum().backward();
  assert.ok(xe.grad !== null, "the input gradient has a history through the input");
  close(xe.grad, Array.from(want.dataSync()), 1e-12, "second order");
});

/** gradCheck of f(input, h0 (, c0), ...params) = module(input, state) with the parameters replaced. */
function checkModule(m: AnyRec, kind: Kind, x: Tensor, h0: Tensor | null, c0: Tensor | null): void {
  const named = m.namedParameters();
  const states = [h0, c0].filter((t): t is Tensor => t !== null);
  const f = (...xs: Tensor[]) => {
    const [xi, ...rest] = xs;
    const st = rest.slice(0, states.length);
    const ps = Object.fromEntries(named.map(([n], i) => [n, rest[states.length + i]]));
    const state = kind === "LSTM" || kind === "LSTMCell" ? (st.length > 0 ? st : undefined) : st[0];
    const r = functionalCall(m, ps, xi, state as never) as unknown;
    return (Array.isArray(r) ? r.flat() : [r]) as Tensor[];
  };
  const report = gradCheck(f, [x, ...states, ...named.map(([, p]) => p)]);
  assert.ok(report.ok, `${kind}: ${report.worst}`);
}

test("gradCheck in float64 (input, initial states, every parameter) for each kind", () => {
  manualSeed(21);
  const o = { numLayers: 2, bidirectional: true, ...f64 };
  checkModule(new RNN(2, 3, o) as AnyRec, "RNN", randn([3, 2, 2], f64), randn([4, 2, 3], f64), null);
  // relu: random weights put no pre-activation exactly at the kink
  checkModule(
    new RNN(2, 3, { nonlinearity: "relu", batchFirst: true, ...f64 }) as AnyRec,
    "RNN",
    randn([2, 3, 2], f64),
    null,
    null,
  );
  checkModule(
    new LSTM(2, 3, o) as AnyRec,
    "LSTM",
    randn([3, 2, 2], f64),
    randn([4, 2, 3], f64),
    randn([4, 2, 3], f64),
  );
  checkModule(
    new LSTM(2, 3, { projSize: 2, ...f64 }) as AnyRec,
    "LSTM",
    randn([3, 2], f64),
    randn([1, 2], f64),
    randn([1, 3], f64),
  );
  checkModule(new GRU(2, 3, o) as AnyRec, "GRU", randn([3, 2, 2], f64), randn([4, 2, 3], f64), null);
  checkModule(new RNNCell(2, 3, f64) as AnyRec, "RNNCell", randn([2, 2], f64), randn([2, 3], f64), null);
  checkModule(
    new LSTMCell(2, 3, f64) as AnyRec,
    "LSTMCell",
    randn([2, 2], f64),
    randn([2, 3], f64),
    randn([2, 3], f64),
  );
  checkModule(new GRUCell(2, 3, f64) as AnyRec, "GRUCell", randn([2, 2], f64), randn([2, 3], f64), null);
});

test("dropout between layers, in training mode only, never after the last layer", () => {
  manualSeed(22);
  const lstm = new LSTM(3, 4, { numLayers: 2, dropout: 1, ...f64 });
  // the dropout is a child module without parameters: the state dict stays PyTorch's
  assert.deepEqual(
    lstm.namedModules().map(([n]) => n),
    ["", "interLayerDropout"],
  );
  assert.equal(Object.keys(lstm.stateDict()).length, 8);
  const x1 = randn([5, 2, 3], f64);
  const x2 = randn([5, 2, 3], f64);
  // train, p = 1: layer 1 reads zeros, so its output does not depend on the input; layer 0's state does
  const [o1, [h1]] = lstm.call(x1);
  const [o2, [h2]] = lstm.call(x2);
  close(o1, Array.from(o2.dataSync()), 0, "layer-1 output with p = 1");
  assert.notDeepEqual(Array.from(h1.narrow(0, 0, 1).dataSync()), Array.from(h2.narrow(0, 0, 1).dataSync()));
  // eval: no dropout, the same as a dropout-free copy
  const plain = new LSTM(3, 4, { numLayers: 2, ...f64 });
  plain.loadStateDict(lstm.stateDict());
  lstm.eval();
  close(lstm.call(x1)[0], Array.from(plain.call(x1)[0].dataSync()), 0, "eval output");
  // train, p = 0.5: two calls draw different masks; one layer has no dropout at all
  const d = new GRU(3, 4, { numLayers: 2, dropout: 0.5, ...f64 });
  assert.notDeepEqual(Array.from(d.call(x1)[0].dataSync()), Array.from(d.call(x1)[0].dataSync()));
  const single = new GRU(3, 4, { dropout: 0.5, ...f64 });
  close(single.call(x1)[0], Array.from(single.eval().call(x1)[0].dataSync()), 0, "one layer");
});

test("jit(forward) equals eager and holds one scan per layer and direction; jit(grad) equals eager grad", () => {
  manualSeed(23);
  const lstm = new LSTM(3, 4, { numLayers: 2, bidirectional: true, batchFirst: true, ...f64 });
  const x = randn([2, 6, 3], f64);
  const h0 = randn([4, 2, 4], f64);
  const c0 = randn([4, 2, 4], f64);
  const fwd = (a: Tensor, h: Tensor, c: Tensor) => {
    const [o, [hn, cn]] = lstm.call(a, [h, c]);
    return [o, hn, cn];
  };
  const eager = fwd(x, h0, c0);
  const jitted = jit(fwd)(x, h0, c0);
  eager.forEach((t, k) => void close(jitted[k], Array.from(t.dataSync()), 1e-13, `jit result ${k}`));
  const prog = makeJaxpr(fwd)(x, h0, c0);
  // each layer and direction is one lstmSequence call (its own reverse mode) holding one scan
  const calls = prog.eqns.filter((e) => e.name === "lstmSequence");
  assert.equal(calls.length, 4);
  for (const e of calls) assert.equal(e.sub!.eqns.filter((q) => q.name === "scan").length, 1);
  // gradients with respect to the weights through functionalCall, eager against jitted
  const names = lstm.namedParameters().map(([n]) => n);
  const loss = (ps: Tensor[], a: Tensor) => {
    const [o] = functionalCall(lstm, Object.fromEntries(names.map((n, i) => [n, ps[i]])), a) as [
      Tensor,
      unknown,
    ];
    return o.tanh().sum();
  };
  const g = grad(loss);
  const ps = lstm.parameters();
  const ge = g(ps, x) as Tensor[];
  const gj = jit(g)(ps, x) as Tensor[];
  ge.forEach((t, k) => void close(gj[k], Array.from(t.dataSync()), 1e-12, `jit grad ${k}`));
});

test("vmap over unbatched sequences equals the batched call", () => {
  manualSeed(24);
  const gru = new GRU(3, 4, { numLayers: 2, bidirectional: true, ...f64 });
  const xs = randn([5, 6, 3], f64); // 5 unbatched sequences of 6 steps
  const [ov, hv] = vmap((x: Tensor) => gru.call(x))(xs) as [Tensor, Tensor];
  const [ob, hb] = gru.call(xs.transpose(0, 1)); // [6, 5, 3]
  close(ov, Array.from(ob.transpose(0, 1).contiguous().dataSync()), 1e-12, "vmapped output");
  close(hv, Array.from(hb.transpose(0, 1).contiguous().dataSync()), 1e-12, "vmapped hN");
});

test("training: an LSTM learns to count the ones of a 6-bit sequence", () => {
  manualSeed(25);
  class Counter extends Module {
    lstm = new LSTM(1, 16, { batchFirst: true });
    head = new Linear(16, 7);
    forward(x: Tensor): Tensor {
      const [, [h]] = this.lstm.call(x);
      return this.head.call(h.squeeze(0));
    }
  }
  const model = new Counter();
  const opt = new Adam(model.parameters(), { lr: 0.03 });
  const losses: number[] = [];
  for (let step = 0; step < 120; step++) {
    const bits = randint(0, 2, [64, 6]);
    const target = bits.sum(-1);
    const loss = crossEntropy(model.call(bits.float().unsqueeze(-1)), target);
    opt.zeroGrad();
    loss.backward();
    opt.step();
    losses.push(loss.item());
  }
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(first > 1.5, `initial loss ${first}`);
  assert.ok(last < 0.35 * first, `loss went from ${first} to ${last}`);
});

test("makeTrainStep: a jitted training step of a 2-layer LSTM with dropout equals its eager twin", () => {
  class Net extends Module {
    lstm = new LSTM(3, 4, { numLayers: 2, dropout: 0.3, batchFirst: true, ...f64 });
    head = new Linear(4, 2, f64);
    forward(x: Tensor): Tensor {
      return this.head.call(this.lstm.call(x)[0].narrow(1, 4, 1).squeeze(1));
    }
  }
  manualSeed(26);
  const net = new Net();
  const x = randn([3, 5, 3], f64);
  const y = randn([3, 2], f64);
  const loss = (out: Tensor, t: Tensor) => out.sub(t).square().mean();
  const results = [true, false].map((useJit) => {
    manualSeed(27); // the same dropout masks for both
    const step = makeTrainStep(net, loss, functional.adam({ lr: 0.01 }), { jit: useJit });
    let state = step.init();
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      let l: Tensor;
      [l, state] = step(state, x, y);
      losses.push(l.item());
    }
    return { losses, w: Array.from(state.params["lstm.weight_hh_l1"].dataSync()) };
  });
  close(tensor(results[0].losses, f64), results[1].losses, 1e-12, "losses");
  close(tensor(results[0].w, f64), results[1].w, 1e-12, "weight_hh_l1 after 3 steps");
  assert.ok(results[0].losses[2] < results[0].losses[0]);
});
