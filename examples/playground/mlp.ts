/**
 * Panel 3: a small MLP (2 -> 16 tanh -> 16 tanh -> 2) learns a 2-D toy problem (two moons or two spirals, made
 * in the page from a seeded generator) while you watch: the loss curve after every step, the decision regions
 * every few steps, and one training step drawn as a computation graph (`trainingStepGraph`, with the module
 * boxes of the model and the adjoint equations of the backward pass).
 */
import * as cr from "../../src/index.ts";

/** Points (n x 2, float32) and their classes (int32). */
export interface ToyData {
  x: cr.Tensor;
  y: cr.Tensor;
  /** The same as plain arrays, for drawing. */
  px: Float32Array;
  labels: Int32Array;
}

/** `n` points of one of the toy problems, the same for the same seed. Coordinates lie roughly in [-2, 2]. */
export function toyData(kind: "moons" | "spirals", n = 200, seed = 0): ToyData {
  const g = new cr.Generator(seed);
  const px = new Float32Array(2 * n);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    let a: number;
    let b: number;
    if (kind === "moons") {
      // two interleaved half circles, centred on the origin
      const t = Math.PI * g.uniform();
      a = c === 0 ? Math.cos(t) - 0.5 : 0.5 - Math.cos(t);
      b = c === 0 ? Math.sin(t) - 0.25 : 0.25 - Math.sin(t);
      a = 1.6 * a + 0.25 * g.normal();
      b = 1.6 * b + 0.25 * g.normal();
    } else {
      // two arms winding 1.5 times around the origin, the second turned by half a turn
      const u = g.uniform();
      const r = 0.15 + 1.85 * u;
      const th = 3 * Math.PI * u + c * Math.PI;
      a = r * Math.cos(th) + 0.08 * g.normal();
      b = r * Math.sin(th) + 0.08 * g.normal();
    }
    px[2 * i] = a;
    px[2 * i + 1] = b;
    labels[i] = c;
  }
  return { x: cr.tensor(px, { shape: [n, 2] }), y: cr.tensor(labels, { shape: [n] }), px, labels };
}

/** The model: 2 -> 16 tanh -> 16 tanh -> 2 logits. */
export function makeModel(seed = 0): cr.nn.Sequential {
  cr.manualSeed(seed);
  return new cr.nn.Sequential(
    new cr.nn.Linear(2, 16),
    new cr.nn.Tanh(),
    new cr.nn.Linear(16, 16),
    new cr.nn.Tanh(),
    new cr.nn.Linear(16, 2),
  );
}

/** A training run: data, model, optimizer and the losses so far. */
export class Trainer {
  readonly data: ToyData;
  readonly model: cr.nn.Sequential;
  readonly opt: cr.optim.Adam;
  readonly losses: number[] = [];

  constructor(kind: "moons" | "spirals") {
    this.data = toyData(kind);
    this.model = makeModel();
    this.opt = new cr.optim.Adam(this.model.parameters(), { lr: 0.01 });
  }

  /**
   * One full-batch step; resolves to the loss before the update. Values are read with `await t.data()`, which
   * every backend supports (on webgpu they live on the GPU and cannot be read synchronously).
   */
  async step(): Promise<number> {
    this.opt.zeroGrad();
    const loss = cr.nn.crossEntropy(this.model.call(this.data.x), this.data.y);
    loss.backward();
    this.opt.step();
    const v = (await loss.data())[0];
    this.losses.push(v);
    return v;
  }

  /** Fraction of the points classified right. */
  async accuracy(): Promise<number> {
    const pred = cr.noGrad(() => this.model.call(this.data.x).argmax(1));
    return (await pred.eq(this.data.y).sum().data())[0] / this.data.labels.length;
  }

  /** P(class 1) on a `k` x `k` grid over [-lim, lim]^2, row by row from the top. */
  async probabilities(k: number, lim: number): Promise<Float32Array> {
    const pts = new Float32Array(2 * k * k);
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) {
        pts[2 * (r * k + c)] = -lim + ((c + 0.5) * 2 * lim) / k;
        pts[2 * (r * k + c) + 1] = lim - ((r + 0.5) * 2 * lim) / k;
      }
    }
    const p = cr.noGrad(() => cr.softmax(this.model.call(cr.tensor(pts, { shape: [k * k, 2] })), 1));
    return (await p.narrow(1, 1, 1).contiguous().data()) as Float32Array;
  }
}

const LIM = 2.6;

/** Decision regions (blue: class 0, orange: class 1, paler where the model is unsure) and the points. */
async function drawBoundary(canvas: HTMLCanvasElement, t: Trainer): Promise<void> {
  const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
  const { width: w, height: h } = canvas;
  const k = 100;
  const p = await t.probabilities(k, LIM);
  const cw = w / k;
  const ch = h / k;
  for (let r = 0; r < k; r++) {
    for (let c = 0; c < k; c++) {
      const q = p[r * k + c];
      // blend from blue (q = 0) through white (q = 0.5) to orange (q = 1)
      const s = Math.abs(2 * q - 1) * 0.55;
      const [R, G, B] = q < 0.5 ? [31, 119, 180] : [255, 127, 14];
      ctx.fillStyle = `rgb(${255 + (R - 255) * s},${255 + (G - 255) * s},${255 + (B - 255) * s})`;
      ctx.fillRect(c * cw, r * ch, cw + 0.5, ch + 0.5);
    }
  }
  const { px, labels } = t.data;
  for (let i = 0; i < labels.length; i++) {
    ctx.beginPath();
    ctx.arc(
      ((px[2 * i] + LIM) / (2 * LIM)) * w,
      ((LIM - px[2 * i + 1]) / (2 * LIM)) * h,
      3.2,
      0,
      2 * Math.PI,
    );
    ctx.fillStyle = labels[i] === 0 ? "#1f77b4" : "#ff7f0e";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
}

/** The panel's elements. */
export interface MlpElements {
  dataset: HTMLSelectElement;
  train: HTMLButtonElement;
  step: HTMLButtonElement;
  reset: HTMLButtonElement;
  status: HTMLElement;
  boundary: HTMLCanvasElement;
  lossPlot: HTMLElement;
  /** Steps per frame. */
  speed: HTMLInputElement;
  stepGraph: HTMLElement;
  openModules: HTMLInputElement;
  showBackward: HTMLInputElement;
}

/** Wire the panel; returns its live state (for the page's test hook). */
export function setupMlp(el: MlpElements) {
  const state = {
    trainer: new Trainer("moons"),
    running: false,
    /** Number of step-graph pictures drawn so far. */
    stepGraphs: 0,
  };
  let graphGen = 0;

  const redraw = async () => {
    const t = state.trainer;
    await drawBoundary(el.boundary, t);
    el.lossPlot.innerHTML = cr.viz.linePlot({
      title: "training loss (cross-entropy)",
      xLabel: "step",
      yLabel: "loss",
      logY: true,
      width: 520,
      height: 300,
      series: [{ name: "full batch", y: t.losses.length > 0 ? t.losses : [Number.NaN] }],
    });
    const last = t.losses.at(-1);
    const acc = last === undefined ? 0 : await t.accuracy();
    el.status.textContent =
      `step ${t.losses.length}` +
      (last === undefined ? "" : `, loss ${last.toFixed(4)}, accuracy ${(100 * acc).toFixed(1)}%`);
  };

  // the training loop's promise: a step still running after a pause (or a reset) writes the parameters on the
  // device, so the step graph waits for the loop to end before it reads them
  let loopDone: Promise<void> = Promise.resolve();

  const drawStepGraph = async () => {
    const gen = ++graphGen;
    await loopDone;
    if (gen !== graphGen) return;
    const t = state.trainer;
    const idx = cr.tensor([0, 1, 2, 3], { dtype: "int32" });
    const x4 = t.data.x.indexSelect(0, idx);
    const y4 = t.data.y.indexSelect(0, idx);
    const opts = { depth: el.openModules.checked ? undefined : 1, backward: el.showBackward.checked };
    const backend = cr.getBackend();
    let g: cr.viz.Graph;
    if (backend.name === "webgpu") {
      // the picture shows every value, read synchronously: on webgpu, bring the (tiny) model's and the four
      // points' values to the host and trace the step on the js backend
      await Promise.all([...t.model.parameters(), x4, y4].map((p) => p.data()));
      if (gen !== graphGen || t !== state.trainer || state.running) return;
      cr.setBackend("js");
      try {
        g = cr.viz.trainingStepGraph(t.model, x4, y4, opts);
      } finally {
        cr.setBackend(backend);
      }
    } else {
      g = cr.viz.trainingStepGraph(t.model, x4, y4, opts);
    }
    const svg = await g.svg();
    if (gen !== graphGen) return;
    el.stepGraph.innerHTML = svg;
    state.stepGraphs++;
  };

  const loop = async () => {
    while (state.running) {
      // a few steps, then let the page paint
      const t = state.trainer;
      for (let i = Number(el.speed.value); i > 0 && state.running && t === state.trainer; i--) await t.step();
      await redraw();
      await new Promise((r) => requestAnimationFrame(r));
    }
  };

  const setRunning = (on: boolean) => {
    if (state.running === on) return;
    state.running = on;
    el.train.textContent = on ? "Pause" : "Train";
    if (on)
      loopDone = loopDone.then(loop); // one loop at a time: a quick pause and resume waits for the old one
    else void drawStepGraph();
  };

  const reset = () => {
    setRunning(false);
    state.trainer = new Trainer(el.dataset.value === "spirals" ? "spirals" : "moons");
    void redraw();
    void drawStepGraph();
  };

  el.train.addEventListener("click", () => setRunning(!state.running));
  el.step.addEventListener("click", async () => {
    setRunning(false);
    await state.trainer.step();
    await redraw();
    void drawStepGraph();
  });
  el.reset.addEventListener("click", reset);
  el.dataset.addEventListener("change", reset);
  el.openModules.addEventListener("change", () => void drawStepGraph());
  el.showBackward.addEventListener("change", () => void drawStepGraph());
  reset();
  return state;
}
