/**
 * conv2d kernels of the native backend on the layers of common networks, pass by pass (forward, input gradient,
 * weight gradient), float32, one thread: 3x3 stride 1 and 2, 1x1 (pointwise, also stride 2, also on 7x7 planes),
 * a 7x7 stride-2 stem over 3 channels, depthwise 3x3 (stride 1 and 2), and the bench CNN's two layers. GFLOP/s is
 * 2 N O OH OW (C/groups) KH KW per pass over the median time of 7 samples of >= 60 ms, outputs reused (a fresh
 * output costs its first write to memory as well, see docs/performance.md).
 *
 *   taskset -c 1 node --import tsx bench/conv-shapes.ts              # chainrule and PyTorch 1.13 (one thread each)
 *   taskset -c 1 node --import tsx bench/conv-shapes.ts --ab-addon OLD.node
 *
 * With --ab-addon, another build of the addon ("old") runs next to this checkout's ("new") in this process,
 * alternating sample by sample, and the relative difference of their outputs is printed. `--shapes JSON` replaces
 * the list ([[N, C, H, O, K, stride, pad, groups], ...], square images and filters). PyTorch runs from
 * /usr/bin/python3 (bench/conv_shapes_torch.py) unless --no-torch.
 */
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import type { Backend, Conv2dParams } from "../src/backend/backend.ts";
import { loadNativeBackend, nativeInfo, setNumThreads } from "../src/backend/native/index.ts";
import { otherAddon, seededView } from "./native-rates.ts";

const { values } = parseArgs({
  options: {
    "ab-addon": { type: "string" },
    shapes: { type: "string" },
    "no-torch": { type: "boolean" },
  },
});

type Shape = [number, number, number, number, number, number, number, number];
const SHAPES: Shape[] = values.shapes
  ? (JSON.parse(values.shapes) as Shape[])
  : [
      [64, 1, 28, 32, 5, 1, 2, 1],
      [64, 32, 14, 64, 5, 1, 2, 1],
      [32, 64, 56, 64, 3, 1, 1, 1],
      [32, 128, 28, 128, 3, 1, 1, 1],
      [32, 64, 56, 128, 3, 2, 1, 1],
      [32, 128, 28, 256, 3, 2, 1, 1],
      [32, 256, 14, 64, 1, 1, 0, 1],
      [32, 512, 7, 2048, 1, 1, 0, 1],
      [32, 256, 56, 512, 1, 2, 0, 1],
      [16, 3, 224, 64, 7, 2, 3, 1],
      [32, 128, 28, 128, 3, 1, 1, 128],
      [32, 64, 28, 64, 3, 2, 1, 64],
    ];

const loaded = loadNativeBackend();
if ("error" in loaded) throw new Error(loaded.error);
setNumThreads(1);
const other = values["ab-addon"] ? otherAddon("conv-shapes", values["ab-addon"], "avx512") : null;
other?.addon.setNumThreads(1);

const view = seededView;

type Pass = { run: () => void; out: Float32Array };
function passes(b: Backend, [N, C, H, O, K, s, pd, g]: Shape): Pass[] {
  const OH = Math.floor((H + 2 * pd - K) / s) + 1;
  const p: Conv2dParams = { stride: [s, s], padding: [pd, pd], dilation: [1, 1], groups: g };
  const x = view(b, [N, C, H, H], 1);
  const w = view(b, [O, C / g, K, K], 2);
  const dy = view(b, [N, O, OH, OH], 3);
  const y = b.alloc("float32", N * O * OH * OH) as Float32Array;
  const dx = b.alloc("float32", N * C * H * H) as Float32Array;
  const dw = b.alloc("float32", O * (C / g) * K * K) as Float32Array;
  return [
    { run: () => b.conv2d(x, w, y, [N, O, OH, OH], p), out: y },
    { run: () => b.conv2dBackInput(dy, w, dx, [N, C, H, H], p), out: dx },
    { run: () => b.conv2dBackWeight(x, dy, dw, [O, C / g, K, K], p), out: dw },
  ];
}

const median = (a: number[]) => a.slice().sort((x, y) => x - y)[a.length >> 1];
function sample(f: () => void): number {
  const t0 = performance.now();
  let n = 0;
  do {
    f();
    n++;
  } while (performance.now() - t0 < 60);
  return (performance.now() - t0) / n;
}
const flops = ([N, C, H, O, K, s, pd, g]: Shape) => {
  const OH = Math.floor((H + 2 * pd - K) / s) + 1;
  return 2 * N * O * OH * OH * (C / g) * K * K;
};
const label = (sh: Shape) =>
  `${sh[1]}->${sh[3]} ${sh[4]}x${sh[4]}${sh[5] > 1 ? ` s${sh[5]}` : ""}${sh[7] > 1 ? ` g${sh[7]}` : ""} @${sh[2]} N${sh[0]}`;

let torch: Map<string, number[]> | null = null;
if (!values["no-torch"] && !other) {
  const py = spawnSync(
    "/usr/bin/python3",
    [fileURLToPath(new URL("./conv_shapes_torch.py", import.meta.url)), JSON.stringify(SHAPES)],
    { encoding: "utf8", timeout: 1_800_000 },
  );
  if (py.status === 0) {
    torch = new Map();
    for (const line of py.stdout.trim().split("\n")) {
      const r = JSON.parse(line) as { shape: Shape; ms: number[] };
      torch.set(JSON.stringify(r.shape), r.ms);
    }
  } else
    console.error(
      `conv-shapes: PyTorch not run (${(py.stderr || py.error?.message || "").trim().split("\n").at(-1)})`,
    );
}

console.log(
  `${cpus()[0]?.model ?? "?"}; native backend (${nativeInfo().isa} kernels), 1 thread; load average ${loadavg()[0].toFixed(2)}`,
);
console.log(
  other
    ? "layer                              GFLOP/s new / old: forward, input grad, weight grad (ratio)"
    : "layer                              GFLOP/s chainrule | PyTorch: forward, input grad, weight grad",
);
for (const sh of SHAPES) {
  const f = flops(sh);
  const mine = passes(loaded.backend, sh);
  const theirs = other ? passes(other.backend, sh) : null;
  const cells: string[] = [];
  mine.forEach((m, i) => {
    const t: number[] = [];
    const u: number[] = [];
    m.run();
    theirs?.[i].run();
    for (let r = 0; r < 7; r++) {
      t.push(sample(m.run));
      if (theirs) u.push(sample(theirs[i].run));
    }
    const g = f / median(t) / 1e6;
    if (theirs) {
      const o = theirs[i].out;
      let diff = 0;
      for (let j = 0; j < o.length; j++)
        diff = Math.max(diff, Math.abs(m.out[j] - o[j]) / (1 + Math.abs(o[j])));
      const go = f / median(u) / 1e6;
      cells.push(
        `${g.toFixed(0)} / ${go.toFixed(0)} (${(g / go).toFixed(2)}x, diff ${diff.toExponential(0)})`,
      );
    } else {
      const ms = torch?.get(JSON.stringify(sh))?.[i];
      cells.push(`${g.toFixed(0)} | ${ms === undefined ? "-" : (f / ms / 1e6).toFixed(0)}`);
    }
  });
  console.log(`${label(sh).padEnd(34)} ${cells.join("   ")}`);
}
