import { check, close, done, f64 } from "./h.ts";
import { getBackend, jit, randn, type Tensor, manualSeed, randint, grad, vmap } from "../../src/index.ts";
import * as nn from "../../src/nn/index.ts";
import { functional, makeTrainStep } from "../../src/optim/index.ts";
console.log("backend", getBackend().name);
class Seq2 extends nn.Module<[Tensor], Tensor> {
  emb = new nn.Embedding(11, 8);
  lstm = new nn.LSTM(8, 6, { batchFirst: true } as never);
  ln = new nn.LayerNorm(6);
  head = new nn.Linear(6, 11);
  forward(x: Tensor): Tensor {
    const e = this.emb.call(x);
    const [o] = this.lstm.call(e) as [Tensor, unknown];
    return this.head.call(this.ln.call(o));
  }
}
class Cnn extends nn.Module<[Tensor], Tensor> {
  c = new nn.Conv2d(2, 4, 3, { padding: 1 });
  bn = new nn.BatchNorm2d(4);
  dr = new nn.Dropout(0.3);
  fc = new nn.Linear(4 * 5 * 5, 3);
  forward(x: Tensor): Tensor {
    return this.fc.call(this.dr.call(this.bn.call(this.c.call(x)).relu()).reshape([x.shape[0], -1]));
  }
}
const cases: [
  string,
  () => nn.Module<[Tensor], Tensor>,
  () => [Tensor, Tensor],
  (o: Tensor, y: Tensor) => Tensor,
][] = [
  [
    "mlp bn+dropout",
    () =>
      new nn.Sequential(
        new nn.Linear(5, 16),
        new nn.BatchNorm1d(16),
        new nn.ReLU(),
        new nn.Dropout(0.2),
        new nn.Linear(16, 3),
      ) as never,
    () => [randn([8, 5]), randn([8, 3])],
    (o, y) => nn.mseLoss(o, y),
  ],
  ["cnn", () => new Cnn(), () => [randn([4, 2, 5, 5]), randn([4, 3])], (o, y) => nn.mseLoss(o, y)],
  [
    "emb+lstm+ln",
    () => new Seq2(),
    () => [randint(0, 11, [3, 7]), randn([3, 7, 11])],
    (o, y) => nn.mseLoss(o, y),
  ],
  [
    "transformer",
    () =>
      new nn.TransformerEncoderLayer(8, 2, {
        dimFeedforward: 16,
        batchFirst: true,
        dropout: 0.1,
      } as never) as never,
    () => [randn([2, 5, 8]), randn([2, 5, 8])],
    (o, y) => nn.mseLoss(o, y),
  ],
];
const opts: [string, () => ReturnType<typeof functional.adam>][] = [
  [
    "sgd mom nesterov wd",
    () => functional.sgd({ lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 } as never),
  ],
  ["adam", () => functional.adam({ lr: 1e-2 })],
  ["adamw", () => functional.adamw({ lr: 1e-2, weightDecay: 0.1 } as never)],
  ["rmsprop", () => functional.rmsprop({ lr: 1e-2, momentum: 0.5 } as never)],
  ["adagrad", () => functional.adagrad({ lr: 1e-1 })],
];
for (const [mn, mk, data, loss] of cases)
  for (const [on, ok] of opts) {
    check(`${mn} / ${on}: jit step == eager twin over 3 steps`, () => {
      manualSeed(7);
      const m1 = mk();
      manualSeed(7);
      const m2 = mk();
      nn.loadModuleState(m2, nn.moduleState(m1, { copy: true }));
      const sj = makeTrainStep(m1, loss, ok());
      const se = makeTrainStep(m2, loss, ok(), { jit: false });
      let a = sj.init(),
        b = se.init();
      const out: number[] = [];
      for (let i = 0; i < 3; i++) {
        manualSeed(100 + i);
        const [x, y] = data();
        manualSeed(200 + i);
        const [lj, na] = sj(a, x, y, { lr: 0.01 / (i + 1) });
        manualSeed(200 + i);
        const [le, nb] = se(b, x, y, { lr: 0.01 / (i + 1) });
        a = na;
        b = nb;
        out.push(lj.item());
        close(lj, le, 1e-5, `loss step ${i}`);
      }
      for (const k of Object.keys(b.params)) close(a.params[k], b.params[k], 1e-4, k);
      for (const k of Object.keys(b.buffers)) close(a.buffers[k], b.buffers[k], 1e-4, k);
      return `losses ${out.map((v) => v.toFixed(4)).join(",")} traces ${sj.traceCount}`;
    });
  }
check("old state after donation -> clear error", () => {
  manualSeed(1);
  const m = new nn.Linear(3, 2);
  const st = makeTrainStep(m, (o: Tensor, y: Tensor) => nn.mseLoss(o, y), functional.adam({ lr: 1e-2 }));
  const s0 = st.init();
  const x = randn([4, 3]),
    y = randn([4, 2]);
  st(s0, x, y);
  try {
    st(s0, x, y);
    return "NO ERROR reusing donated state";
  } catch (e) {
    return `err: ${(e as Error).message.slice(0, 120)}`;
  }
});
check("eval mode retrace, batch size retrace", () => {
  manualSeed(1);
  const m = new nn.Sequential(
    new nn.Linear(3, 4),
    new nn.Dropout(0.5),
    new nn.Linear(4, 2),
  ) as unknown as nn.Module<[Tensor], Tensor>;
  const st = makeTrainStep(m, (o: Tensor, y: Tensor) => nn.mseLoss(o, y), functional.sgd({ lr: 0.1 }));
  let s = st.init();
  [, s] = st(s, randn([4, 3]), randn([4, 2]));
  m.eval();
  [, s] = st(s, randn([4, 3]), randn([4, 2]));
  m.train();
  [, s] = st(s, randn([5, 3]), randn([5, 2]));
  return `traces ${st.traceCount}`;
});
check("step output, loss is 0-d float32", () => {
  manualSeed(1);
  const m = new nn.Linear(3, 2);
  const st = makeTrainStep(m, (o: Tensor, y: Tensor) => nn.mseLoss(o, y), functional.adam({ lr: 1e-2 }));
  const [l, , o] = st(st.init(), randn([4, 3]), randn([4, 2]));
  return `${l.shape} ${l.dtype} out ${o.shape}`;
});
check("float64 model", () => {
  manualSeed(1);
  const m = new nn.Linear(3, 2, { dtype: "float64" } as never);
  const st = makeTrainStep(m, (o: Tensor, y: Tensor) => nn.mseLoss(o, y), functional.adam({ lr: 1e-2 }));
  const [l] = st(st.init(), randn([4, 3], f64), randn([4, 2], f64));
  return `${l.dtype}`;
});
// manual functional path: jit(grad(functionalCall))
check("jit(grad(functionalCall)) == eager backward", () => {
  manualSeed(3);
  const m = new nn.Sequential(
    new nn.Linear(4, 8),
    new nn.Tanh(),
    new nn.Linear(8, 1),
  ) as unknown as nn.Module<[Tensor], Tensor>;
  const x = randn([6, 4]),
    y = randn([6, 1]);
  const params = Object.fromEntries(m.namedParameters()) as Record<string, Tensor>;
  const lossf = (p: Record<string, Tensor>, a: Tensor, b: Tensor) =>
    nn.mseLoss(nn.functionalCall(m, p, a) as Tensor, b);
  const g = jit(grad(lossf))(params, x, y) as Record<string, Tensor>;
  nn.mseLoss(m.call(x), y).backward();
  for (const [k, p] of m.namedParameters()) close(g[k], p.grad!, 1e-5, k);
  return Object.keys(g).join(",");
});
check("per-example grads vmap(grad(functionalCall)) under jit", () => {
  manualSeed(3);
  const m = new nn.Linear(4, 2);
  const x = randn([5, 4]),
    y = randn([5, 2]);
  const params = Object.fromEntries(m.namedParameters()) as Record<string, Tensor>;
  const lossf = (p: Record<string, Tensor>, a: Tensor, b: Tensor) =>
    nn.mseLoss(nn.functionalCall(m, p, a.reshape([1, 4])) as Tensor, b.reshape([1, 2]));
  const pe = jit(vmap(grad(lossf), { inAxes: [null, 0, 0] }))(params, x, y) as Record<string, Tensor>;
  const pe2 = vmap(grad(lossf), { inAxes: [null, 0, 0] })(params, x, y) as Record<string, Tensor>;
  for (const k of Object.keys(pe2)) close(pe[k], pe2[k], 1e-6, k);
  return `${pe.weight.shape}`;
});
done();
