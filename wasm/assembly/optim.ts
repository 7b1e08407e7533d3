/**
 * Fused optimizer update of the wasm backend (AssemblyScript): one in-place pass of Adam / AdamW / AMSGrad
 * over contiguous parameter, gradient and state arrays, as specified by Backend.adamUpdate (see the js
 * reference, src/backend/js/optim.ts). float32 runs four lanes in float32 arithmetic (the reference computes
 * each element in float64 and rounds the stored values: expect a few ulp of difference); float64 runs two
 * lanes in the reference's order of operations.
 *
 * Hyper-parameters come as a float64 descriptor `h`: [lr, beta1, beta2, eps, weightDecay, decoupled (0/1),
 * maximize (0/1), bc1, bc2Sqrt]. pvmax is 0 when there is no AMSGrad state.
 *
 * float32 flushes subnormals to zero, as the native kernel does with FTZ/DAZ: WebAssembly has no such mode, and
 * on Intel cores each operation on a subnormal input or result takes a microcode assist (401,408 parameters with
 * g = 1e-20: 11.4 ms per update against 1.15 with normal values, on an Intel Xeon). As a model converges g^2 and
 * then v (and m) fall below float32's smallest normal, FLT_MIN. So every operand that would make a product
 * subnormal is zeroed before the multiply, by an integer compare of its magnitude bits (no floating-point
 * operation touches a subnormal): the gradient below FLT_MIN / (1 - b1) (so below FLT_MIN too: DAZ), g below
 * sqrt(FLT_MIN / (1 - b2)) in v, v below FLT_MIN / b2 before its decay, and m below FLT_MIN / b1 or FLT_MIN / step
 * (whichever is larger) before its decay, so that a moment decaying under a zero gradient (a dead unit) leaves the
 * range where step * m is subnormal at once. Four flushes of three integer operations each (the update of 401,408
 * parameters with normal values: 1.15 ms with none, 1.27 with these four, 1.34 with six). The result is what FTZ
 * gives for these products (each flushed term is below FLT_MIN), except that an old moment m below FLT_MIN / step
 * (1.2e-35 at lr 1e-3) counts as 0, which moves the parameter by less than lr * 1.2e-35 / eps. Stored moments are
 * 0 or normal but after a rare near-cancellation in m. NaN and infinities pass through unchanged.
 */

/** Bits of the smallest normal float32. */
const FLT_MIN_BITS: i32 = 0x00800000;

/** The bits of the smallest float32 t with t * b >= FLT_MIN (all finite values when b is 0: +inf). */
@inline
function flushBound(b: f32): v128 {
  if (b <= 0) return i32x4.splat(0x7f800000);
  const t = <f32>((<f64>reinterpret<f32>(FLT_MIN_BITS) / <f64>b) * (1 + 1.0 / 1048576));
  return i32x4.splat(reinterpret<i32>(t));
}

/** x with each lane whose magnitude is below the bound's (positive float32 bits, see flushBound) set to +0. */
@inline
function flushBelow(x: v128, bound: v128): v128 {
  const mag = v128.and(x, i32x4.splat(0x7fffffff));
  return v128.andnot(x, i32x4.lt_s(mag, bound));
}

/** The scalar flushBelow. */
@inline
function flush1(x: f32, bound: i32): f32 {
  return (reinterpret<i32>(x) & 0x7fffffff) < bound ? 0 : x;
}

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
  // the flush bounds (see the file's comment); for g in v: (c2 g) g >= FLT_MIN needs |g| >= sqrt(FLT_MIN / c2)
  const fG = flushBound(c1), fV = flushBound(b2);
  const fM = i32x4.max_s(flushBound(b1), flushBound(step));
  const fG2 =
    c2 <= 0
      ? i32x4.splat(0x7f800000)
      : i32x4.splat(
          reinterpret<i32>(<f32>(Math.sqrt(<f64>reinterpret<f32>(FLT_MIN_BITS) / <f64>c2) * (1 + 1.0 / 1048576))),
        );
  const sG = i32x4.extract_lane(fG, 0), sG2 = i32x4.extract_lane(fG2, 0);
  const sM = i32x4.extract_lane(fM, 0), sV = i32x4.extract_lane(fV, 0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const p = f32x4.mul(v128.load(pp + o), vDecay);
    const g = f32x4.add(f32x4.mul(flushBelow(v128.load(pg + o), fG), vSign), f32x4.mul(vL2, p));
    const m = f32x4.add(f32x4.mul(vB1, flushBelow(v128.load(pm + o), fM)), f32x4.mul(vC1, g));
    const gv = flushBelow(g, fG2);
    let v = f32x4.add(f32x4.mul(vB2, flushBelow(v128.load(pv + o), fV)), f32x4.mul(f32x4.mul(vC2, gv), gv));
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
    const g = flush1(load<f32>(pg + o), sG) * sign + l2 * p;
    const m = b1 * flush1(load<f32>(pm + o), sM) + c1 * g;
    const gv = flush1(g, sG2);
    let v = b2 * flush1(load<f32>(pv + o), sV) + c2 * gv * gv;
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
