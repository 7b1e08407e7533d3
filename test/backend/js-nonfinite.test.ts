/**
 * NaN / Inf semantics of conv2d and float32 matmul, the same on every backend and the same as PyTorch
 * (issue 8, item 12). Expected values are literals printed by PyTorch 1.13 (CPU); the script is quoted above
 * each case.
 *
 * - conv2d padding is zeros that take part in the products: a non-finite weight whose tap lands on padding
 *   gives NaN there (0 * Inf), and a non-finite dy where a tap lands on padding gives that weight's gradient
 *   NaN; the input gradient gets nothing from padding. This is the convolution of the zero-padded input
 *   (F.pad then conv2d, on every PyTorch path) and what PyTorch's own CPU kernels (im2col, slow_conv2d) compute;
 *   the native and wasm kernels did so already, the js reference used to skip padding. PyTorch is not
 *   consistent here: its oneDNN (mkldnn) float32 path and its depthwise kernel skip padding taps, so for some
 *   float32 shapes PyTorch gives a finite value where we give NaN; we follow the definition, not that artefact.
 * - float32 matmul accumulates in float32, so partial sums may overflow to +-Inf: PyTorch gives Inf for
 *   [3e38, 3e38, -3e38, -3e38, -3e38] . ones(5), where a float64 sum (the old js reference) gives -3e38.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Backend,
  conv2d,
  loadBackend,
  matmul,
  ones,
  setBackend,
  type Tensor,
  tensor,
} from "../../src/node.ts";

const I = Infinity;
const N = Number.NaN;

/** js and wasm always; native when its addon loads (ops-native.test.ts and kernels.test.ts assert that it does). */
function backends(): Backend[] {
  const out: Backend[] = [];
  for (const name of ["js", "wasm", "native"]) {
    const b = loadBackend(name);
    if ("error" in b) assert.notEqual(name, "wasm", `wasm backend failed to load: ${b.error}`);
    else out.push(b);
  }
  return out;
}

/** Same NaN positions, infinities exactly, finite values within float32 rounding of a short sum. */
function expectValues(t: Tensor, want: number[], what: string): void {
  const got = Array.from(t.dataSync());
  assert.equal(got.length, want.length, `${what}: size`);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    const ok = Number.isNaN(w)
      ? Number.isNaN(g)
      : g === w || Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w));
    assert.ok(ok, `${what}: element ${i}: got ${g}, PyTorch gives ${w}\n  got  [${got.join(", ")}]`);
  }
}

function onEach(f: (name: string) => void): void {
  const prev = setBackend("js");
  try {
    for (const b of backends()) {
      setBackend(b);
      f(b.name);
    }
  } finally {
    setBackend(prev);
  }
}

// x = torch.arange(1., 10.).reshape(1, 1, 3, 3)
const x9 = () => tensor([1, 2, 3, 4, 5, 6, 7, 8, 9]).reshape([1, 1, 3, 3]);

test("conv2d: a NaN weight whose tap lands on padding gives NaN (PyTorch: zero padding multiplies)", () => {
  onEach((name) => {
    // w = torch.ones(1,1,2,2); w[0,0,0,0] = nan; F.conv2d(x, w, padding=1)
    const w = tensor([N, 1, 1, 1]).reshape([1, 1, 2, 2]);
    expectValues(conv2d(x9(), w, null, { padding: 1 }), new Array(16).fill(N), `${name} NaN weight`);
    // w = torch.ones(1,1,2,2); w[0,0,1,1] = inf; F.conv2d(x, w, padding=1)
    const wi = tensor([1, 1, 1, I]).reshape([1, 1, 2, 2]);
    expectValues(
      conv2d(x9(), wi, null, { padding: 1 }),
      [I, I, I, N, I, I, I, N, I, I, I, N, N, N, N, N],
      `${name} Inf weight`,
    );
  });
});

test("conv2d: stride, dilation, asymmetric padding, two channels: NaN / Inf weights as in PyTorch", () => {
  onEach((name) => {
    // x = torch.arange(40.).reshape(1,2,4,5)/10 - 3; w = torch.ones(2,2,2,2); w[0,1,1,0] = inf;
    // w[1,0,0,1] = nan; F.conv2d(x, w, stride=2, padding=(2,1), dilation=2)
    const x = tensor(Array.from({ length: 40 }, (_, i) => i / 10 - 3)).reshape([1, 2, 4, 5]);
    const wv = new Array(16).fill(1);
    wv[0 * 8 + 1 * 4 + 1 * 2 + 0] = I;
    wv[1 * 8 + 0 * 4 + 0 * 2 + 1] = N;
    const w = tensor(wv).reshape([2, 2, 2, 2]);
    const y = conv2d(x, w, null, { stride: 2, padding: [2, 1], dilation: 2 });
    assert.deepEqual(y.shape, [1, 2, 3, 3]);
    expectValues(y, [N, -I, -I, N, I, I, N, N, N, N, N, N, N, N, N, N, N, N], `${name} strided/dilated`);
  });
});

test("conv2d backward: Inf in dy gives NaN weight gradients where taps meet padding, none in dx", () => {
  onEach((name) => {
    // xg = x.clone().requires_grad_(); wg = torch.ones(1,1,2,2, requires_grad=True)
    // yg = F.conv2d(xg, wg, padding=1); dy = torch.ones_like(yg); dy[0,0,0,0] = inf; yg.backward(dy)
    const x = x9().requiresGrad_();
    const w = ones([1, 1, 2, 2]).requiresGrad_();
    const dy = tensor([I, ...new Array(15).fill(1)]).reshape([1, 1, 4, 4]);
    conv2d(x, w, null, { padding: 1 }).backward(dy);
    expectValues(w.grad as Tensor, [N, N, N, I], `${name} dw`);
    expectValues(x.grad as Tensor, [I, 4, 4, 4, 4, 4, 4, 4, 4], `${name} dx`);
    // the strided, dilated case: x as in the previous test, wg = torch.ones(2,2,2,2, requires_grad=True),
    // yg = F.conv2d(xg, wg, stride=2, padding=(2,1), dilation=2); dy = ones; dy[0,1,0,2] = inf
    const x2 = tensor(Array.from({ length: 40 }, (_, i) => i / 10 - 3))
      .reshape([1, 2, 4, 5])
      .requiresGrad_();
    const w2 = ones([2, 2, 2, 2]).requiresGrad_();
    const dyv = new Array(18).fill(1);
    dyv[9 + 2] = I;
    conv2d(x2, w2, null, { stride: 2, padding: [2, 1], dilation: 2 }).backward(
      tensor(dyv).reshape([1, 2, 3, 3]),
    );
    const a = -9.200000762939453;
    const b = -1.200000286102295;
    expectValues(w2.grad as Tensor, [a, a, a, a, b, b, b, b, N, N, -I, N, N, N, -I, N], `${name} strided dw`);
    const dx = new Array(40).fill(0);
    for (const i of [1, 11, 13, 21, 31, 33]) dx[i] = 8;
    dx[3] = I;
    dx[23] = I;
    expectValues(x2.grad as Tensor, dx, `${name} strided dx`);
  });
});

test("float32 matmul accumulates in float32: partial sums overflow to Inf as in PyTorch", () => {
  onEach((name) => {
    // torch.tensor([[3e38, 3e38, -3e38, -3e38, -3e38]]) @ torch.ones(5, 1) -> [[inf]]
    expectValues(matmul(tensor([[3e38, 3e38, -3e38, -3e38, -3e38]]), ones([5, 1])), [I], `${name} overflow`);
    // torch.tensor([[-3e38, -3e38, 3e38]]) @ torch.ones(3, 4) -> [[-inf, -inf, -inf, -inf]]
    expectValues(
      matmul(tensor([[-3e38, -3e38, 3e38]]), ones([3, 4])),
      [-I, -I, -I, -I],
      `${name} overflow 2`,
    );
    // the same in float64 does not overflow: -3.0000000055e+38 (the float32 value of 3e38, summed)
    const a64 = tensor([[3e38, 3e38, -3e38, -3e38, -3e38]], { dtype: "float32" }).to("float64");
    expectValues(
      matmul(a64, ones([5, 1], { dtype: "float64" })),
      [-3.0000000054977558e38],
      `${name} float64`,
    );
  });
});
