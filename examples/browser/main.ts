/**
 * The browser demo: train the digits MLP in the page with chainrule's wasm backend, drawing the loss curve as it
 * trains and then a few test digits with their predicted class. Served (and bundled by esbuild) by serve.ts:
 * `npm run demo:browser`. In your own project, import from "chainrule" instead of the sources.
 *
 * URL parameters: epochs (default 3), limit (training examples, default 8000), backend (`webgpu` trains on the
 * GPU where the browser has WebGPU, falling back to wasm otherwise; the page's backend menu sets it). Values
 * are read with `await t.data()`, which every backend supports (webgpu has no synchronous reads).
 */
import * as cr from "../../src/index.ts";

const params = new URLSearchParams(location.search);
const epochs = Number(params.get("epochs") ?? 3);
const limit = Number(params.get("limit") ?? 8000);
const status = document.getElementById("status") as HTMLElement;

/**
 * The backend menu: wasm (the default) or WebGPU, offered where the browser has `navigator.gpu`; choosing one
 * reloads the page with `?backend=`.
 */
function backendMenu(current: string): void {
  const menu = document.getElementById("backend") as HTMLSelectElement;
  const gpu = menu.querySelector('option[value="webgpu"]') as HTMLOptionElement;
  if (!("gpu" in navigator)) {
    gpu.disabled = true;
    gpu.textContent = "WebGPU (not in this browser)";
  }
  menu.value = current === "webgpu" ? "webgpu" : "wasm";
  menu.onchange = () => {
    params.set("backend", menu.value);
    location.search = params.toString();
  };
}

/** Fetch a gzipped IDX file and parse it (the browser's DecompressionStream gunzips). */
async function fetchIdx(url: string): Promise<cr.io.IdxArray> {
  const res = await fetch(url);
  if (!res.ok || res.body === null) throw new Error(`${url}: HTTP ${res.status}`);
  const raw = await new Response(res.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
  return cr.io.parseIdx(new Uint8Array(raw));
}

/** Draw the loss per step (light) and its running mean (dark) on the canvas, y on a log scale. */
function drawLoss(canvas: HTMLCanvasElement, losses: number[], totalSteps: number): void {
  const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
  const { width: w, height: h } = canvas;
  const pad = 36;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(pad, 8, w - pad - 8, h - pad - 8);
  const lo = Math.log(0.05);
  const hi = Math.log(3);
  const x = (i: number) => pad + ((w - pad - 8) * i) / Math.max(1, totalSteps - 1);
  const y = (v: number) => 8 + ((h - pad - 8) * (hi - Math.log(Math.max(v, 0.05)))) / (hi - lo);
  ctx.fillStyle = "#555";
  ctx.font = "11px system-ui";
  for (const v of [0.1, 0.3, 1, 3]) ctx.fillText(String(v), 4, y(v) + 4);
  ctx.fillText(`step ${losses.length} / ${totalSteps}`, w - 120, h - 10);
  const line = (vals: number[], color: string) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    for (const [i, v] of vals.entries()) {
      if (i === 0) ctx.moveTo(x(i), y(v));
      else ctx.lineTo(x(i), y(v));
    }
    ctx.stroke();
  };
  line(losses, "#9ec5fe");
  let m = losses[0] ?? 0;
  line(
    losses.map((v) => {
      m = 0.9 * m + 0.1 * v;
      return m;
    }),
    "#0b57d0",
  );
}

/** One test digit as a small canvas with its predicted class under it. */
function drawDigit(pixels: Uint8Array, pred: number, label: number): HTMLElement {
  const div = document.createElement("div");
  div.className = `pred ${pred === label ? "right" : "wrong"}`;
  const c = document.createElement("canvas");
  c.width = 28;
  c.height = 28;
  const ctx = c.getContext("2d") as CanvasRenderingContext2D;
  const img = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = 255 - pixels[i];
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  div.append(c, `${pred}${pred === label ? "" : ` (${label})`}`);
  return div;
}

async function main() {
  const { backend, fallback } = await cr.init(
    params.get("backend") === "webgpu" ? { backend: "webgpu" } : {},
  );
  backendMenu(backend);
  status.textContent = `backend ${backend}${fallback ? ` (${fallback})` : ""}; loading the digits…`;
  const [images, labels] = await Promise.all([
    fetchIdx("./digits-images-idx3-ubyte.gz"),
    fetchIdx("./digits-labels-idx1-ubyte.gz"),
  ]);
  const n = labels.shape[0];
  // a seeded shuffle (the files are sorted by class), then 80% for training, 20% for testing
  const order = cr.randperm(n, { generator: new cr.Generator(0) });
  const x = cr
    .tensor(
      Float32Array.from(images.data, (v) => v / 255),
      { shape: [n, 784] },
    )
    .indexSelect(0, order);
  const y = cr.tensor(Int32Array.from(labels.data), { shape: [n] }).indexSelect(0, order);
  const nTest = Math.floor(n / 5);
  const nTrain = Math.min(limit, n - nTest);
  const [xTest, yTest] = [x.narrow(0, 0, nTest), y.narrow(0, 0, nTest)];
  const train = new cr.data.TensorDataset(x.narrow(0, nTest, nTrain), y.narrow(0, nTest, nTrain));
  const loader = new cr.data.DataLoader(train, {
    batchSize: 64,
    shuffle: true,
    generator: new cr.Generator(1),
  });

  cr.manualSeed(0);
  const model = new cr.nn.Sequential(new cr.nn.Linear(784, 128), new cr.nn.ReLU(), new cr.nn.Linear(128, 10));
  const opt = new cr.optim.Adam(model.parameters(), { lr: 2e-3 });
  const canvas = document.getElementById("loss") as HTMLCanvasElement;
  const totalSteps = epochs * Math.ceil(nTrain / 64);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let e = 0; e < epochs; e++) {
    for (const [xb, yb] of loader) {
      // crossEntropy checks the class indices on the host: on webgpu the batch's labels (gathered on the GPU)
      // must be read back first (on wasm their values are already there)
      await yb.data();
      opt.zeroGrad();
      const loss = cr.nn.crossEntropy(model.call(xb), yb);
      loss.backward();
      opt.step();
      losses.push((await loss.data())[0]);
      if (losses.length % 10 === 0) {
        drawLoss(canvas, losses, totalSteps);
        status.textContent = `backend ${backend}; epoch ${e + 1}/${epochs}, loss ${losses.at(-1)?.toFixed(3)}`;
        await new Promise((r) => setTimeout(r, 0)); // let the page paint
      }
    }
  }
  drawLoss(canvas, losses, totalSteps);
  const pred = cr.noGrad(() => model.call(xTest).argmax(1));
  const accuracy = (await pred.eq(yTest).sum().data())[0] / nTest;
  const seconds = (performance.now() - t0) / 1000;
  status.textContent = `backend ${backend}: ${losses.length} steps in ${seconds.toFixed(1)} s, test accuracy ${(100 * accuracy).toFixed(1)}% on ${nTest} digits`;
  const first18 = async (t: cr.Tensor) => Array.from(await t.narrow(0, 0, 18).data(), Number);
  const preds = await first18(pred);
  const truth = await first18(yTest);
  const testPixels = await first18(order);
  const box = document.getElementById("preds") as HTMLElement;
  preds.forEach((p, i) => {
    const k = testPixels[i];
    box.append(drawDigit(images.data.subarray(k * 784, (k + 1) * 784) as Uint8Array, p, truth[i]));
  });
  return { backend, steps: losses.length, losses, accuracy, preds, truth };
}

Object.assign(window, { __result: main() });
