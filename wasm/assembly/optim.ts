/**
 * Fused optimizer update of the wasm backend (AssemblyScript): one in-place pass of Adam / AdamW / AMSGrad
 * over contiguous parameter, gradient and state arrays, as specified by Backend.adamUpdate (see the js
 * reference, src/backend/js/optim.ts). float32 runs four lanes in float32 arithmetic (the reference computes
 * each element in float64 and rounds the stored values: expect a few ulp of difference); float64 runs two
 * lanes in the reference's order of operations.
 *
 * Hyper-parameters come as a float64 descriptor `h`: [lr, beta1, beta2, eps, weightDecay, decoupled (0/1),
 * maximize (0/1), bc1, bc2Sqrt]. pvmax is 0 when there is no AMSGrad state.
 */

/** Adam on n float32 elements. */
export function adamF32(n: i32, pp: usize, pg: usize, pm: usize, pv: usize, pvmax: usize, h: usize): void {
  const lr = load<f64>(h), beta1 = load<f64>(h, 8), beta2 = load<f64>(h, 16), eps = load<f64>(h, 24);
  const wd = load<f64>(h, 32), decoupled = load<f64>(h, 40) != 0, maximize = load<f64>(h, 48) != 0;
  const bc1 = load<f64>(h, 56), bc2Sqrt = load<f64>(h, 64);
  const decay = <f32>(decoupled ? 1 - lr * wd : 1);
  const l2 = <f32>(decoupled ? 0 : wd);
  const sign = <f32>(maximize ? -1 : 1);
  const step = <f32>(lr / bc1);
  const b1 = <f32>beta1, c1 = <f32>(1 - beta1), b2 = <f32>beta2, c2 = <f32>(1 - beta2);
  const bc2 = <f32>bc2Sqrt, ep = <f32>eps;
  const vDecay = f32x4.splat(decay), vL2 = f32x4.splat(l2), vSign = f32x4.splat(sign), vStep = f32x4.splat(step);
  const vB1 = f32x4.splat(b1), vC1 = f32x4.splat(c1), vB2 = f32x4.splat(b2), vC2 = f32x4.splat(c2);
  const vBc2 = f32x4.splat(bc2), vEps = f32x4.splat(ep);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const p = f32x4.mul(v128.load(pp + o), vDecay);
    const g = f32x4.add(f32x4.mul(v128.load(pg + o), vSign), f32x4.mul(vL2, p));
    const m = f32x4.add(f32x4.mul(vB1, v128.load(pm + o)), f32x4.mul(vC1, g));
    let v = f32x4.add(f32x4.mul(vB2, v128.load(pv + o)), f32x4.mul(f32x4.mul(vC2, g), g));
    v128.store(pm + o, m);
    v128.store(pv + o, v);
    if (pvmax != 0) {
      v = f32x4.max(v128.load(pvmax + o), v);
      v128.store(pvmax + o, v);
    }
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(v), vBc2), vEps);
    v128.store(pp + o, f32x4.sub(p, f32x4.div(f32x4.mul(vStep, m), denom)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const p = load<f32>(pp + o) * decay;
    const g = load<f32>(pg + o) * sign + l2 * p;
    const m = b1 * load<f32>(pm + o) + c1 * g;
    let v = b2 * load<f32>(pv + o) + c2 * g * g;
    store<f32>(pm + o, m);
    store<f32>(pv + o, v);
    if (pvmax != 0) {
      v = max(load<f32>(pvmax + o), v);
      store<f32>(pvmax + o, v);
    }
    store<f32>(pp + o, p - (step * m) / (sqrt<f32>(v) / bc2 + ep));
  }
}

/** Adam on n float64 elements (the reference's operations, in its order). */
export function adamF64(n: i32, pp: usize, pg: usize, pm: usize, pv: usize, pvmax: usize, h: usize): void {
  const lr = load<f64>(h), beta1 = load<f64>(h, 8), beta2 = load<f64>(h, 16), eps = load<f64>(h, 24);
  const wd = load<f64>(h, 32), decoupled = load<f64>(h, 40) != 0, maximize = load<f64>(h, 48) != 0;
  const bc1 = load<f64>(h, 56), bc2Sqrt = load<f64>(h, 64);
  const decay = decoupled ? 1 - lr * wd : 1;
  const l2 = decoupled ? 0 : wd;
  const step = lr / bc1;
  const c1 = 1 - beta1, c2 = 1 - beta2;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 3;
    const p = load<f64>(pp + o) * decay;
    const gr = load<f64>(pg + o);
    const g = (maximize ? -gr : gr) + l2 * p;
    const m = beta1 * load<f64>(pm + o) + c1 * g;
    let v = beta2 * load<f64>(pv + o) + c2 * g * g;
    store<f64>(pm + o, m);
    store<f64>(pv + o, v);
    if (pvmax != 0) {
      v = max(load<f64>(pvmax + o), v);
      store<f64>(pvmax + o, v);
    }
    store<f64>(pp + o, p - (step * m) / (sqrt<f64>(v) / bc2Sqrt + eps));
  }
}
